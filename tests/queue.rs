//! max_connections and the per-service queue over real sockets on loopback: real
//! servers on 127.0.0.2 and 127.0.0.3 that hold each connection a while and count the
//! connections they hold at once; ten clients at once through the VIP; the queue long
//! enough for all, too short for all, and a wait that runs out; a UDP flow dropped
//! when its server is at its limit.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{Daemon, Reply, UdpBackend, connect, eventually};

/// A TCP real server that writes its name to each connection, holds it for `hold`,
/// then closes it; it counts the connections it holds at once and their most.
struct Holding {
    addr: SocketAddr,
    most: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Holding {
    fn start(ip: &str, name: &'static str, hold: Duration) -> Holding {
        let listener = TcpListener::bind((ip, 0)).expect("bind a real server");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (now, most, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (now2, most2, stop2) = (Arc::clone(&now), Arc::clone(&most), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let n = now2.fetch_add(1, Ordering::SeqCst) + 1;
                most2.fetch_max(n, Ordering::SeqCst);
                let now3 = Arc::clone(&now2);
                std::thread::spawn(move || {
                    use std::io::Write;
                    let _ = s.set_nonblocking(false);
                    let _ = s.write_all(name.as_bytes());
                    std::thread::sleep(hold);
                    // Counted out before the close the client sees: the director frees
                    // the slot only after that.
                    now3.fetch_sub(1, Ordering::SeqCst);
                    drop(s);
                });
            }
        });
        Holding { addr, most, stop }
    }

    fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What a client got: the real server's name (served), or nothing and a reset.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Served(String),
    Reset,
}

fn client(vip: SocketAddr) -> Outcome {
    // A reset that comes at once can reach the client before its connect returns.
    let Ok(mut s) = connect(vip, None) else {
        return Outcome::Reset;
    };
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) if !got.is_empty() => Outcome::Served(String::from_utf8(got).unwrap()),
        _ => Outcome::Reset,
    }
}

/// `n` clients started at once through `vip`, each reading until its connection ends.
fn clients_at_once(vip: SocketAddr, n: usize) -> Vec<Outcome> {
    let start = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                client(vip)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn served(outcomes: &[Outcome]) -> usize {
    outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Served(_)))
        .count()
}

fn config_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uvs.toml");
    (dir, path)
}

/// A daemon balancing `vip` (rr) over `servers`, each with `max_connections`, and the
/// service's `queue` line (empty: none).
fn daemon(path: &Path, vip: SocketAddr, queue: &str, servers: &[(SocketAddr, u32)]) -> Daemon {
    let mut file = format!("[[service]]\ntcp = \"{vip}\"\nscheduler = \"rr\"\n{queue}\n");
    for (addr, max) in servers {
        file.push_str(&format!(
            "[[service.server]]\naddress = \"{addr}\"\nmax_connections = {max}\n"
        ));
    }
    let d = Daemon::start_with_file(path, &file, &[]);
    d.wait_listening(vip);
    d
}

/// The service's queue line of `uvs status`.
fn queue_line(d: &Daemon) -> String {
    let status = d.status();
    status
        .lines()
        .find(|l| l.trim_start().starts_with("queue ") || l.contains("no queue"))
        .unwrap_or_else(|| panic!("no queue line in:\n{status}"))
        .trim()
        .to_string()
}

#[test]
fn a_queue_long_enough_serves_all_ten_and_the_limit_holds() {
    let (_dir, path) = config_path();
    let hold = Duration::from_secs(1);
    let (a, b) = (
        Holding::start("127.0.0.2", "A", hold),
        Holding::start("127.0.0.3", "B", hold),
    );
    let vip = common::vip();
    let d = daemon(
        &path,
        vip,
        "queue = { length = 6, timeout = \"20s\" }",
        &[(a.addr, 2), (b.addr, 2)],
    );
    let outcomes = clients_at_once(vip, 10);
    assert_eq!(served(&outcomes), 10, "{outcomes:?}");
    assert!(a.most() <= 2 && b.most() <= 2, "{} {}", a.most(), b.most());
    assert_eq!((a.most(), b.most()), (2, 2));
    // Four went straight to a server; six waited, and were served from the queue.
    eventually("the queue's counts", || {
        queue_line(&d).starts_with(
            "queue 0/6 (timeout 20000 ms): queued 6, served from the queue 6, timed out 0, reset with the queue full 0, mean wait",
        )
    });
}

#[test]
fn the_clients_beyond_a_short_queue_are_reset() {
    let (_dir, path) = config_path();
    let hold = Duration::from_secs(1);
    let (a, b) = (
        Holding::start("127.0.0.2", "A", hold),
        Holding::start("127.0.0.3", "B", hold),
    );
    let vip = common::vip();
    let d = daemon(
        &path,
        vip,
        "queue = { length = 2, timeout = \"20s\" }",
        &[(a.addr, 2), (b.addr, 2)],
    );
    let outcomes = clients_at_once(vip, 10);
    // Four at once, two from the queue, four reset with the queue full.
    assert_eq!(served(&outcomes), 6, "{outcomes:?}");
    assert_eq!((a.most(), b.most()), (2, 2));
    eventually("the queue's counts", || {
        queue_line(&d).starts_with(
            "queue 0/2 (timeout 20000 ms): queued 2, served from the queue 2, timed out 0, reset with the queue full 4",
        )
    });
}

#[test]
fn without_a_queue_the_clients_beyond_the_limits_are_reset() {
    let (_dir, path) = config_path();
    let hold = Duration::from_secs(1);
    let (a, b) = (
        Holding::start("127.0.0.2", "A", hold),
        Holding::start("127.0.0.3", "B", hold),
    );
    let vip = common::vip();
    let d = daemon(&path, vip, "", &[(a.addr, 2), (b.addr, 2)]);
    let outcomes = clients_at_once(vip, 10);
    assert_eq!(served(&outcomes), 4, "{outcomes:?}");
    assert_eq!((a.most(), b.most()), (2, 2));
    eventually("the count of resets", || {
        queue_line(&d) == "reset with every server at its max_connections (no queue) 6"
    });
}

#[test]
fn a_wait_that_runs_out_is_reset() {
    let (_dir, path) = config_path();
    // The server holds its one connection far longer than anyone may wait.
    let a = Holding::start("127.0.0.2", "A", Duration::from_secs(4));
    let vip = common::vip();
    let d = daemon(
        &path,
        vip,
        "queue = { length = 5, timeout = \"300ms\" }",
        &[(a.addr, 1)],
    );
    let first = std::thread::spawn(move || client(vip));
    eventually("the server at its limit", || {
        d.status().contains("at limit (1/1)")
    });
    let waiting = clients_at_once(vip, 2);
    assert_eq!(waiting, vec![Outcome::Reset, Outcome::Reset]);
    assert_eq!(first.join().unwrap(), Outcome::Served("A".into()));
    assert_eq!(a.most(), 1);
    eventually("the queue's counts", || {
        queue_line(&d)
            == "queue 0/5 (timeout 300 ms): queued 2, served from the queue 0, timed out 2, reset with the queue full 0"
    });
}

#[test]
fn a_new_udp_flow_is_dropped_when_its_server_is_full() {
    let (_dir, path) = config_path();
    let server = UdpBackend::start_on("127.0.0.2:0", "A", Reply::Name);
    let vip = SocketAddr::from(([127, 0, 0, 1], common::free_udp_port()));
    let file = format!(
        "[[service]]\nudp = \"{vip}\"\nscheduler = \"rr\"\n[[service.server]]\naddress = \"{}\"\nmax_connections = 1\n",
        server.addr
    );
    let d = Daemon::start_with_file(&path, &file, &[]);
    d.wait_listening_on("udp", vip);
    let ask = |socket: &UdpSocket| {
        socket.send_to(b"hello", vip).unwrap();
        let mut buf = [0u8; 16];
        socket.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
    };
    let first = UdpSocket::bind("127.0.0.1:0").unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(ask(&first).as_deref(), Some(&b"A"[..]));
    // A second flow finds the server's one slot taken: dropped, never sent on.
    let second = UdpSocket::bind("127.0.0.1:0").unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert_eq!(ask(&second), None);
    eventually("the drop counted", || {
        d.status()
            .contains("new flows dropped with every server at its max_connections 1")
    });
    assert_eq!(server.received.load(Ordering::Relaxed), 1);
    // The first flow goes on.
    assert_eq!(ask(&first).as_deref(), Some(&b"A"[..]));
}

#[test]
fn a_client_that_leaves_while_waiting_loses_its_place_and_reaches_no_server() {
    let (_dir, path) = config_path();
    let a = Holding::start("127.0.0.2", "A", Duration::from_secs(3));
    let vip = common::vip();
    let d = daemon(
        &path,
        vip,
        "queue = { length = 10, timeout = \"20s\" }",
        &[(a.addr, 1)],
    );
    let first = std::thread::spawn(move || client(vip));
    eventually("the server at its limit", || {
        d.status().contains("at limit (1/1)")
    });
    // Three clients wait, one of them having sent its request already, then all go.
    let mut leaving: Vec<std::net::TcpStream> = (0..3)
        .map(|_| connect(vip, None).expect("connect"))
        .collect();
    {
        use std::io::Write;
        leaving[0].write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    }
    eventually("three waiting", || queue_line(&d).starts_with("queue 3/10"));
    drop(leaving);
    eventually("their places gone", || {
        queue_line(&d).starts_with(
            "queue 0/10 (timeout 20000 ms): queued 3, served from the queue 0, timed out 0, reset with the queue full 0, left while waiting 3",
        )
    });
    assert_eq!(first.join().unwrap(), Outcome::Served("A".into()));
    // The slot that freed went to no one who had left: the next client has it at once.
    assert_eq!(client(vip), Outcome::Served("A".into()));
    assert_eq!(a.most(), 1, "never more than one at once");
}

#[test]
fn a_server_added_while_clients_wait_serves_them() {
    let (_dir, path) = config_path();
    let hold = Duration::from_secs(30);
    let a = Holding::start("127.0.0.2", "A", hold);
    let b = Holding::start("127.0.0.3", "B", Duration::from_millis(10));
    let vip = common::vip();
    let d = daemon(
        &path,
        vip,
        "queue = { length = 5, timeout = \"20s\" }",
        &[(a.addr, 1)],
    );
    // A holds its one slot far longer than the queue's timeout: only B can serve.
    let first = std::thread::spawn(move || {
        let _ = client(vip);
    });
    eventually("the server at its limit", || {
        d.status().contains("at limit (1/1)")
    });
    let waiting = std::thread::spawn(move || clients_at_once(vip, 2));
    eventually("two waiting", || queue_line(&d).starts_with("queue 2/5"));
    d.ok(&[
        "-a",
        "-t",
        &vip.to_string(),
        "-r",
        &b.addr.to_string(),
        "-m",
    ]);
    let outcomes = waiting.join().unwrap();
    assert_eq!(
        outcomes,
        vec![Outcome::Served("B".into()), Outcome::Served("B".into())]
    );
    drop(a);
    drop(first);
}
