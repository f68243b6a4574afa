//! The real-server leg's TIME_WAITs and the way out of them (`source`, `source_ports`;
//! README "Source addresses, ports and TIME_WAIT"): in a network namespace of the
//! test's own with `net.ipv4.tcp_tw_reuse = 0` and `ip_local_port_range` of 1 000
//! ports, a real server that reads until EOF, replies and closes (so the client closes
//! first, uvs half-closes the server leg first, and that leg ends in TIME_WAIT on
//! uvs's side), and sequential new connections, several times the port range:
//!
//! - without sources, uvs runs out of ports to the real server within ~1 000
//!   connections (the control: it shows that the test can fail);
//! - with `source_ports`, zero failures over 4 000 connections, each port taken 3-4
//!   times while its TIME_WAIT is still there (TcpExt TWRecycled counts the
//!   takeovers);
//! - with 8 `source` addresses and the kernel's ports (IP_BIND_ADDRESS_NO_PORT), zero
//!   failures over 4 000 (500 per address of its 1 000 ports);
//! - both over IPv6 ([::1]) as well; and a connect whose every source is busy fails
//!   as "no free source port", counted.
//!
//! Root only (unshare needs CAP_SYS_ADMIN); elsewhere each test does nothing, and says
//! so. Bounded: a fixed count of connections, each with 10 s timeouts, and 300 s in all
//! at most.

mod common;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Daemon;

const VIP: &str = "127.0.0.1:8080";
const BACKEND: &str = "127.0.0.1:9090";
const VIP6: &str = "[::1]:8080";
const BACKEND6: &str = "[::1]:9090";
/// The kernel's ports for connect() in the namespace: 1 000.
const PORT_RANGE: &str = "40000 40999";
/// Far more than the test needs; a stop of its own, never a measure.
const GIVE_UP: Duration = Duration::from_secs(300);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `test` on a thread in a network namespace of its own (with its loopback up,
/// `tcp_tw_reuse` off and 1 000 local ports): everything the thread starts (the daemon,
/// the backend's threads, the clients) lives there. Root only; elsewhere the test does
/// nothing, and says so (`common::in_own_network`, plus the two settings, which are
/// the namespace's own).
fn in_own_network(test: impl FnOnce() + Send + 'static) {
    common::in_own_network(move || {
        // /proc/sys/net is the opening thread's namespace's.
        let net = "/proc/sys/net/ipv4";
        std::fs::write(format!("{net}/tcp_tw_reuse"), "0").expect("tcp_tw_reuse");
        std::fs::write(format!("{net}/ip_local_port_range"), PORT_RANGE).expect("port range");
        test();
    });
}

/// The source addresses a real server accepted connections from, with how many each.
type Peers = Arc<Mutex<BTreeMap<IpAddr, u32>>>;

/// A real server on `at` that reads each connection until EOF, then answers "pong "
/// and what it read, and closes: the client (and so uvs, on this leg) closes first.
/// Its threads end with the test's process. It counts the addresses it accepted from.
fn start_backend(at: &str) -> Peers {
    let listener = TcpListener::bind(at).expect("bind the backend");
    let peers = Peers::default();
    let seen = Arc::clone(&peers);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            if let Ok(peer) = conn.peer_addr() {
                *seen.lock().unwrap().entry(peer.ip()).or_default() += 1;
            }
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
                let mut got = Vec::new();
                if conn.read_to_end(&mut got).is_ok() {
                    let _ = conn.write_all(b"pong ");
                    let _ = conn.write_all(&got);
                }
            });
        }
    });
    peers
}

/// What `peers` holds now, as "addr count" words in address order.
fn seen(peers: &Peers) -> Vec<String> {
    let peers = peers.lock().unwrap();
    peers.iter().map(|(a, n)| format!("{a} {n}")).collect()
}

/// A client connection to `vip` from 127.1.x.y (its own address: the client's own
/// ports and TIME_WAITs never run short; the port is the kernel's at connect, per
/// 4-tuple), or from ::1 to an IPv6 `vip`, that sends "ping N", closes its side and
/// reads the answer. Ok(true): the answer was exact; Ok(false): a reset or a wrong
/// answer.
fn ask(n: u32, vip: SocketAddr) -> std::io::Result<bool> {
    use socket2::{Domain, Socket, Type};
    let from = if vip.is_ipv6() {
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0))
    } else {
        SocketAddr::from(([127, 1, (n / 250) as u8, (n % 250 + 1) as u8], 0))
    };
    let socket = Socket::new(Domain::for_address(vip), Type::STREAM, None)?;
    {
        use std::os::fd::AsFd;
        uvs::sys::set_bind_address_no_port(socket.as_fd())?;
    }
    socket.bind(&from.into())?;
    match socket.connect_timeout(&vip.into(), IO_TIMEOUT) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(false),
        Err(e) => return Err(e),
    }
    let mut s = TcpStream::from(socket);
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    let ping = format!("ping {n}");
    if s.write_all(ping.as_bytes()).is_err() {
        return Ok(false);
    }
    s.shutdown(Shutdown::Write)?;
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => Ok(got == format!("pong {ping}").as_bytes()),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(false),
        Err(e) => Err(e),
    }
}

/// The sockets in TIME_WAIT toward `backend`'s port in this namespace
/// (/proc/thread-self/net: this thread's; /proc/net is the process's first thread's).
fn time_waits_to(backend: SocketAddr) -> usize {
    let port = format!(":{:04X}", backend.port());
    let table = if backend.is_ipv6() { "tcp6" } else { "tcp" };
    let tcp =
        std::fs::read_to_string(format!("/proc/thread-self/net/{table}")).expect("/proc/net/tcp");
    tcp.lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // rem_address, st: 06 is TCP_TIME_WAIT.
            f.len() > 3 && f[2].ends_with(&port) && f[3] == "06"
        })
        .count()
}

/// TcpExt's TWRecycled: connects that took over a TIME_WAIT of their 4-tuple
/// (inet_hashtables.c `__inet_check_established`, LINUX_MIB_TIMEWAITRECYCLED).
fn tw_recycled() -> u64 {
    let netstat = std::fs::read_to_string("/proc/thread-self/net/netstat").expect("netstat");
    let mut lines = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "TWRecycled")
        .and_then(|(_, v)| v.parse().ok())
        .expect("TcpExt TWRecycled")
}

/// What a run of connections saw.
struct Run {
    served: u32,
    failed: u32,
    /// The most TIME_WAITs toward the backend seen (sampled every 100 connections).
    most_time_waits: usize,
    recycled: u64,
    /// Each real server's peers (`start_backend`), in the order given.
    peers: Vec<Peers>,
}

/// `count` sequential connections through a daemon on a file with a TCP service at
/// `VIP` to `BACKEND` and these keys; stops at the first failure when `stop_at_failure`.
fn run(keys: &str, count: u32, stop_at_failure: bool) -> (Run, Daemon, tempfile::TempDir) {
    run_at((VIP, BACKEND), keys, count, stop_at_failure)
}

/// As [`run`], with the service at `vip` to `backend`.
fn run_at(
    (vip, backend): (&str, &str),
    keys: &str,
    count: u32,
    stop_at_failure: bool,
) -> (Run, Daemon, tempfile::TempDir) {
    run_servers(vip, &[backend], keys, count, stop_at_failure)
}

/// As [`run`], with the service at `vip` to each of `backends` (rr), the TIME_WAITs
/// sampled toward the first.
fn run_servers(
    vip: &str,
    backends: &[&str],
    keys: &str,
    count: u32,
    stop_at_failure: bool,
) -> (Run, Daemon, tempfile::TempDir) {
    let peers: Vec<Peers> = backends.iter().map(|b| start_backend(b)).collect();
    let (vip_addr, backend_addr): (SocketAddr, SocketAddr) =
        (vip.parse().unwrap(), backends[0].parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let servers: String = backends
        .iter()
        .map(|b| format!("[[service.server]]\naddress = \"{b}\"\n"))
        .collect();
    let file = format!("[[service]]\ntcp = \"{vip}\"\nscheduler = \"rr\"\n{keys}\n{servers}");
    // The metrics port outside the 1 000.
    let d = Daemon::start_with_file(
        &dir.path().join("uvs.toml"),
        &file,
        &["--metrics", "127.0.0.1:9280"],
    );
    d.wait_listening(vip_addr);
    let recycled_before = tw_recycled();
    let started = Instant::now();
    let mut run = Run {
        served: 0,
        failed: 0,
        most_time_waits: 0,
        recycled: 0,
        peers,
    };
    for n in 0..count {
        if started.elapsed() > GIVE_UP {
            panic!("gave up after {GIVE_UP:?}: {} served", run.served);
        }
        if ask(n, vip_addr).unwrap_or_else(|e| panic!("connection {n}: {e}\n{}", d.log())) {
            run.served += 1;
        } else {
            run.failed += 1;
            if stop_at_failure {
                break;
            }
        }
        if n % 100 == 99 {
            run.most_time_waits = run.most_time_waits.max(time_waits_to(backend_addr));
        }
    }
    run.recycled = tw_recycled() - recycled_before;
    eprintln!(
        "{keys:?}: served {}, failed {}, most TIME_WAITs to the backend {}, TWRecycled {}",
        run.served, run.failed, run.most_time_waits, run.recycled
    );
    (run, d, dir)
}

/// The control: with the kernel choosing the source port and TIME_WAITs not reused,
/// uvs runs out of ports to the one real server within the first ~1 000 connections,
/// and says why.
#[test]
fn without_sources_the_real_server_leg_runs_out_of_ports() {
    in_own_network(|| {
        let (run, d, _dir) = run("", 1_100, true);
        assert!(
            run.failed > 0,
            "{} served without a failure: the namespace's settings did not hold",
            run.served
        );
        assert!(run.served >= 900, "{} served", run.served);
        assert!(run.most_time_waits >= 900, "{}", run.most_time_waits);
        // No sources configured: no source line, no counter.
        let status = d.status();
        assert!(!status.contains("no free source port"), "{status}");
    });
}

/// With `source_ports`, uvs picks the ports itself and takes over its own TIME_WAITs
/// (they have timestamps): 4 000 connections over 1 200 ports, none failed, every
/// answer exact, the TIME_WAITs there all along.
#[test]
fn with_source_ports_time_waits_are_taken_over_and_nothing_fails() {
    in_own_network(|| {
        let keys = "source = [\"127.0.0.2\"]\nsource_ports = \"20000-21199\"";
        let (run, d, _dir) = run(keys, 4_000, false);
        assert_eq!((run.served, run.failed), (4_000, 0));
        assert!(run.most_time_waits >= 1_000, "{}", run.most_time_waits);
        // Every connection after the first round reused a 4-tuple in TIME_WAIT.
        assert!(run.recycled >= 4_000 - 1_200, "TWRecycled {}", run.recycled);
        let status = d.status();
        assert!(
            status.contains(
                "source 127.0.0.2, ports 20000-21199: connects with no free source port 0"
            ),
            "{status}"
        );
    });
}

/// With 8 `source` addresses and the kernel's ports (IP_BIND_ADDRESS_NO_PORT), each
/// address has its own 1 000 ports to the real server: 4 000 connections (500 per
/// address), none failed, every answer exact.
#[test]
fn with_eight_source_addresses_the_ports_are_eight_times_as_many() {
    in_own_network(|| {
        let keys = "source = [\"127.0.0.10-127.0.0.17\"]";
        let (run, d, _dir) = run(keys, 4_000, false);
        assert_eq!((run.served, run.failed), (4_000, 0));
        assert!(run.most_time_waits >= 3_000, "{}", run.most_time_waits);
        // Each address in turn: 500 connections from each (the key not ignored).
        let every: Vec<String> = (10..=17).map(|i| format!("127.0.0.{i} 500")).collect();
        assert_eq!(seen(&run.peers[0]), every);
        let status = d.status();
        assert!(
            status.contains("source 127.0.0.10-127.0.0.17: connects with no free source port 0"),
            "{status}"
        );
    });
}

/// When every source address and port is busy (here each held by a listener, which
/// no bind may share), the connect fails as "no free source port" after trying each
/// once: the client is reset, and the service's count, status line, metric and log
/// say so.
#[test]
fn when_every_source_port_is_busy_the_connect_fails_as_no_free_source_port() {
    in_own_network(|| {
        let held: Vec<TcpListener> = (20000..=20003)
            .map(|port| TcpListener::bind(("127.0.0.2", port)).expect("hold the port"))
            .collect();
        let keys = "source = [\"127.0.0.2\"]\nsource_ports = \"20000-20003\"";
        let (run, d, _dir) = run(keys, 2, false);
        assert_eq!((run.served, run.failed), (0, 2));
        let status = d.status();
        assert!(
            status.contains(
                "source 127.0.0.2, ports 20000-20003: connects with no free source port 2"
            ),
            "{status}"
        );
        let (_, metrics) = common::http_get(d.metrics_address(), "GET", "/metrics");
        assert!(
            metrics.contains(
                "uvs_service_source_port_exhausted_total{proto=\"TCP\",local_address=\"127.0.0.1\",local_port=\"8080\",local_mark=\"\"} 2"
            ),
            "{metrics}"
        );
        let log = d.log();
        assert!(
            log.contains(
                "connect failed: no free source port (4 tried; the last: Address already in use"
            ),
            "{log}"
        );
        drop(held);
    });
}

/// The same over IPv6 ([::1]), both ways: 8 addresses are not to be had on ::1 alone,
/// so one address with the kernel's ports (IP_BIND_ADDRESS_NO_PORT on an IPv6 socket)
/// for fewer connections than its 1 000 ports, then `source_ports` over 100 ports for
/// 3 times as many connections, each port's TIME_WAIT taken over.
#[test]
fn over_ipv6_both_settings_hold_too() {
    in_own_network(|| {
        // 2001:db8::1 is not on this host: its bind fails (no packet is ever sent), so
        // that the count shows the key bound every connect (::1 is the kernel's own
        // choice as well).
        let keys = "source = [\"2001:db8::1\", \"::1\"]";
        let (run, d, _dir) = run_at((VIP6, BACKEND6), keys, 300, false);
        assert_eq!((run.served, run.failed), (300, 0));
        assert!(run.most_time_waits >= 200, "{}", run.most_time_waits);
        assert_eq!(seen(&run.peers[0]), ["::1 300"]);
        let status = d.status();
        assert!(
            status.contains(
                "source 2001:db8::1, ::1: connects with no free source port 0, source address not local 300"
            ),
            "{status}"
        );
    });
    in_own_network(|| {
        let keys = "source = [\"::1\"]\nsource_ports = \"20000-20099\"";
        let (run, d, _dir) = run_at((VIP6, BACKEND6), keys, 300, false);
        assert_eq!((run.served, run.failed), (300, 0));
        assert!(run.recycled >= 200, "TWRecycled {}", run.recycled);
        let status = d.status();
        assert!(
            status.contains("source ::1, ports 20000-20099: connects with no free source port 0"),
            "{status}"
        );
    });
}

/// With `source_ports` holding the real server's own port and the server down here,
/// bind(0.0.0.0:P) then connect(127.0.0.1:P) would be a TCP self-connect: uvs would
/// "reach" itself and send the client its own bytes as the answer. That source is
/// never used: the connect fails as "no free source port", on the service and on the
/// server, and the client gets nothing back but a reset.
#[test]
fn a_source_port_that_is_the_real_servers_own_never_connects_to_itself() {
    in_own_network(|| {
        let vip: SocketAddr = VIP.parse().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = format!(
            "[[service]]\ntcp = \"{VIP}\"\nscheduler = \"rr\"\nsource_ports = \"9090\"\n\
             [[service.server]]\naddress = \"{BACKEND}\"\n"
        );
        let d = Daemon::start_with_file(
            &dir.path().join("uvs.toml"),
            &file,
            &["--metrics", "127.0.0.1:9280"],
        );
        d.wait_listening(vip);
        for n in 0..2 {
            // A reset may come as soon as the handshake: nothing came back then.
            let mut s = match TcpStream::connect_timeout(&vip, IO_TIMEOUT) {
                Ok(s) => s,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => continue,
                Err(e) => panic!("connect: {e}"),
            };
            s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let ping = format!("ping {n}");
            let _ = s.write_all(ping.as_bytes());
            let _ = s.shutdown(Shutdown::Write);
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            assert!(
                !String::from_utf8_lossy(&got).contains("ping"),
                "the client got its own bytes back: {:?}",
                String::from_utf8_lossy(&got)
            );
        }
        let status = d.status();
        assert!(
            status.contains("source ports 9090-9090: connects with no free source port 2"),
            "{status}"
        );
        assert!(
            status.contains("failed connects 2 (refused 0, timed out 0, other 0, no source 2)"),
            "{status}"
        );
        let log = d.log();
        assert!(log.contains("a connect to itself"), "{log}");
    });
}

/// An address of `source` that is not on this host (192.0.2.1: not on the namespace's
/// lo, so its bind fails with EADDRNOTAVAIL and no packet is ever sent) is skipped
/// for the other: every connection is served from 127.0.0.2, and each skip counted
/// (status, metric) and logged with the address. Alone, it fails every connect as
/// "source address not local", counted on the real server too (reason "source").
#[test]
fn a_source_address_not_on_this_host_is_skipped_counted_and_logged() {
    in_own_network(|| {
        let keys = "source = [\"192.0.2.1\", \"127.0.0.2\"]";
        let (run, d, _dir) = run(keys, 40, false);
        assert_eq!((run.served, run.failed), (40, 0));
        assert_eq!(seen(&run.peers[0]), ["127.0.0.2 40"]);
        let status = d.status();
        assert!(
            status.contains(
                "source 192.0.2.1, 127.0.0.2: connects with no free source port 0, source address not local 40"
            ),
            "{status}"
        );
        assert!(
            status.contains("failed connects 0 (refused 0, timed out 0, other 0)"),
            "{status}"
        );
        let (_, metrics) = common::http_get(d.metrics_address(), "GET", "/metrics");
        assert!(
            metrics.contains(
                "uvs_service_source_address_unavailable_total{proto=\"TCP\",local_address=\"127.0.0.1\",local_port=\"8080\",local_mark=\"\"} 40"
            ),
            "{metrics}"
        );
        let log = d.log();
        assert!(
            log.contains("connect failed: source address 192.0.2.1 is not local (bind: "),
            "{log}"
        );
    });
    in_own_network(|| {
        let (run, d, _dir) = run("source = [\"192.0.2.1\"]", 2, false);
        assert_eq!((run.served, run.failed), (0, 2));
        let status = d.status();
        assert!(
            status.contains(
                "source 192.0.2.1: connects with no free source port 0, source address not local 2"
            ),
            "{status}"
        );
        assert!(
            status.contains("failed connects 2 (refused 0, timed out 0, other 0, no source 2)"),
            "{status}"
        );
        let (_, metrics) = common::http_get(d.metrics_address(), "GET", "/metrics");
        assert!(
            metrics.contains(
                "uvs_backend_connect_failures_total{proto=\"TCP\",local_address=\"127.0.0.1\",local_port=\"8080\",local_mark=\"\",remote_address=\"127.0.0.1\",remote_port=\"9090\",reason=\"source\"} 2"
            ),
            "{metrics}"
        );
    });
}

/// With rr over two real servers and two source addresses, each server still gets
/// connections from both addresses: the sources turn per server, not in step with the
/// scheduler (one cursor for all would give each server one address only).
#[test]
fn each_real_server_gets_every_source_address() {
    in_own_network(|| {
        let keys = "source = [\"127.0.0.2-127.0.0.3\"]";
        let backends = [BACKEND, "127.0.0.1:9091"];
        let (run, _d, _dir) = run_servers(VIP, &backends, keys, 40, false);
        assert_eq!((run.served, run.failed), (40, 0));
        for peers in &run.peers {
            assert_eq!(seen(peers), ["127.0.0.2 10", "127.0.0.3 10"]);
        }
    });
}

/// One source address and the kernel's ports (IP_BIND_ADDRESS_NO_PORT: the port is
/// chosen at connect, per 4-tuple) reaches each of two real servers on its own 1 000
/// ports: 1 500 connections, none failed, though the address has only 1 000 ports to
/// bind (a bind that took the port itself would run out at 1 000).
#[test]
fn with_the_kernels_ports_one_source_address_has_its_ports_per_real_server() {
    in_own_network(|| {
        let keys = "source = [\"127.0.0.10\"]";
        let backends = [BACKEND, "127.0.0.1:9091"];
        let (run, _d, _dir) = run_servers(VIP, &backends, keys, 1_500, true);
        assert_eq!((run.served, run.failed), (1_500, 0));
        for peers in &run.peers {
            assert_eq!(seen(peers), ["127.0.0.10 750"]);
        }
    });
}
