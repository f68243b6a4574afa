//! An HTTP server for health checks to probe, on loopback, whose answer the test
//! switches while it runs: a status line and body, or silence.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server answers to each request.
#[derive(Clone, Debug)]
pub enum Answer {
    /// This status ("200 OK") and body, with its Content-Length, over HTTP/1.0.
    Says(&'static str, String),
    /// Reads the request and holds the connection, bounded (5 s), without a word.
    Hangs,
}

impl Answer {
    /// 200 with `body`.
    pub fn ok(body: impl Into<String>) -> Answer {
        Answer::Says("200 OK", body.into())
    }
}

/// An HTTP server run by a thread per connection; stops when dropped.
pub struct HttpServer {
    pub addr: SocketAddr,
    answer: Arc<Mutex<Answer>>,
    stop: Arc<AtomicBool>,
}

impl HttpServer {
    /// On 127.0.0.1, a port of the system's choosing.
    pub fn start(answer: Answer) -> HttpServer {
        HttpServer::start_on("127.0.0.1:0", answer)
    }

    pub fn start_on(bind: &str, answer: Answer) -> HttpServer {
        let listener = TcpListener::bind(bind).expect("HTTP server bind");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(Mutex::new(answer));
        let stop = Arc::new(AtomicBool::new(false));
        let (answer2, stop2) = (Arc::clone(&answer), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                let answer = answer2.lock().unwrap().clone();
                let stop = Arc::clone(&stop2);
                std::thread::spawn(move || {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let mut buf = [0u8; 2048];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    match answer {
                        Answer::Says(status, body) => {
                            let _ = write!(
                                s,
                                "HTTP/1.0 {status}\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            );
                        }
                        Answer::Hangs => {
                            for _ in 0..100 {
                                if stop.load(Ordering::Relaxed) {
                                    break;
                                }
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                });
            }
        });
        HttpServer { addr, answer, stop }
    }

    /// What the next requests get.
    pub fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
