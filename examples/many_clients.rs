//! Many clients, each from a loopback address of its own, and servers that say who they
//! are: the traffic of tests/kernel/mh-in-vm.sh, which compares the real server the
//! kernel's IPVS picks for each client with the one uvs picks. The VM has no client
//! that can choose its source address (busybox nc has no -s, bash's /dev/tcp none).
//!
//! ```text
//! many_clients serve NAME=ADDR:PORT...    answer every connection with NAME, then close
//! many_clients ask ADDR:PORT FIRST COUNT  connect once from each of COUNT addresses,
//!                                         FIRST and the ones after it (127.100.0.1,
//!                                         127.100.0.2, ...); print "CLIENT ANSWER" a
//!                                         line ("-": refused, reset or nothing said)
//! ```
//!
//! `cargo build --example many_clients`. Every wait is bounded (5 s a connect, 5 s a
//! read); `serve` runs until it is killed.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use socket2::{Domain, Socket, Type};

const WAIT: Duration = Duration::from_secs(5);

fn serve(specs: &[String]) -> Result<(), String> {
    let mut listeners = Vec::new();
    for spec in specs {
        let (name, addr) = spec
            .split_once('=')
            .ok_or_else(|| format!("not NAME=ADDR:PORT: {spec}"))?;
        let addr: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
        let listener = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
        listeners.push((name.to_string(), listener));
    }
    println!("serving {}", specs.join(" "));
    let threads: Vec<_> = listeners
        .into_iter()
        .map(|(name, listener)| {
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let mut stream = stream;
                    let _ = stream.set_write_timeout(Some(WAIT));
                    let _ = stream.write_all(name.as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// What `to` answers a connection from `from` (None: refused, reset, or nothing).
fn answer(from: Ipv4Addr, to: SocketAddr) -> Option<String> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
    socket
        .bind(&SocketAddr::from((from, 0)).into())
        .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    socket.connect_timeout(&to.into(), WAIT).ok()?;
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(WAIT)).ok()?;
    let mut got = Vec::new();
    stream.read_to_end(&mut got).ok()?;
    let text = String::from_utf8_lossy(&got).trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn ask(to: &str, first: &str, count: &str) -> Result<(), String> {
    let to: SocketAddr = to.parse().map_err(|e| format!("{to}: {e}"))?;
    let first: Ipv4Addr = first.parse().map_err(|e| format!("{first}: {e}"))?;
    let count: u32 = count.parse().map_err(|e| format!("{count}: {e}"))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for i in 0..count {
        let from = Ipv4Addr::from(u32::from(first) + i);
        let said = answer(from, to).unwrap_or_else(|| "-".into());
        writeln!(out, "{from} {said}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") if args.len() > 1 => serve(&args[1..]),
        Some("ask") if args.len() == 4 => ask(&args[1], &args[2], &args[3]),
        _ => Err("usage: many_clients serve NAME=ADDR:PORT... | ask ADDR:PORT FIRST COUNT".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("many_clients: {e}");
            ExitCode::from(2)
        }
    }
}
