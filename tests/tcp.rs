//! The TCP data plane over real sockets on loopback: scheduling sequences through the
//! VIP, persistence by client address, fwmark groups, quiescing and deleting servers
//! under open connections, thresholds, connect failures and retries, PROXY headers,
//! listeners that follow the table, idle timeouts, half-close, byte-exact bulk data.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use common::{
    Backend, Behaviour, Daemon, Zone, ask, connect, echoed, eventually, free_port, read_all,
    refusing_port, sigterm, vip,
};

fn service(d: &Daemon, vip: SocketAddr, options: &[&str]) {
    d.add_service("-t", vip, options);
}

fn server(d: &Daemon, vip: SocketAddr, backend: SocketAddr, extra: &[&str]) {
    d.set_server("-a", "-t", vip, backend, extra);
}

/// `-e`: real server `backend` of `vip` now has weight `weight`.
fn set_weight(d: &Daemon, vip: SocketAddr, backend: SocketAddr, weight: &str) {
    d.set_server("-e", "-t", vip, backend, &["-w", weight]);
}

/// A TCP service on a fresh VIP with these `-A` options and real servers (each with its
/// `-a` options, added in this order), once the daemon listens on it.
fn balance(d: &Daemon, options: &[&str], servers: &[(SocketAddr, &[&str])]) -> SocketAddr {
    let v = vip();
    d.balance_on("-t", v, options, servers);
    v
}

/// Column `n` (0: the arrow) of the real-server lines of `listing`, a `-L` of one service.
fn server_column(listing: &str, n: usize) -> Vec<&str> {
    listing
        .lines()
        .skip(2)
        .filter(|l| l.starts_with("  -> "))
        .map(|l| l.split_whitespace().nth(n).unwrap())
        .collect()
}

#[test]
fn round_robin_alternates_exactly() {
    let d = Daemon::start();
    let (a, b) = Backend::pair(Behaviour::Name);
    let v = balance(&d, &["-s", "rr"], &[(a.addr, &[]), (b.addr, &[])]);
    // IPVS walks the newest server first: B, then A.
    let seq: String = (0..8).map(|_| ask(v, None)).collect();
    assert_eq!(seq, "BABABABA");
    let listing = d.list(&["-L", "-n", "--stats", "-t", &v.to_string()]);
    let conns = server_column(&listing, 2);
    assert_eq!(conns, vec!["4", "4"], "{listing}");
}

#[test]
fn weighted_round_robin_in_ipvs_order() {
    let d = Daemon::start();
    let (a, b) = Backend::pair(Behaviour::Name);
    let v = balance(
        &d,
        &["-s", "wrr"],
        &[(b.addr, &["-w", "1"]), (a.addr, &["-w", "3"])],
    );
    // Adding B (weight 1) set the current weight to 1; adding A (3) kept it (IPVS's
    // wrr_dest_changed), so the first pass takes every server, then 3:1 passes follow.
    let seq: String = (0..12).map(|_| ask(v, None)).collect();
    assert_eq!(seq, "ABAAABAAABAA");
    // Turning the weights round (B to 3, then A to 1) restarts from the list head with
    // the current weight clamped to 1, as IPVS does: one pass over both, then 3:1.
    set_weight(&d, v, b.addr, "3");
    set_weight(&d, v, a.addr, "1");
    let seq: String = (0..8).map(|_| ask(v, None)).collect();
    assert_eq!(seq, "ABBBABBB");
}

#[test]
fn persistent_clients_stick_and_templates_are_listed() {
    let d = Daemon::start();
    let (a, b) = Backend::pair(Behaviour::Name);
    let v = balance(
        &d,
        &["-s", "rr", "-p", "60"],
        &[(a.addr, &[]), (b.addr, &[])],
    );
    let first2 = ask(v, Some("127.0.0.2"));
    let first3 = ask(v, Some("127.0.0.3"));
    assert_ne!(first2, first3, "rr gives the two clients different servers");
    for _ in 0..6 {
        assert_eq!(ask(v, Some("127.0.0.2")), first2);
        assert_eq!(ask(v, Some("127.0.0.3")), first3);
    }
    let conns = d.list(&["-L", "-n", "-c"]);
    let templates: Vec<&str> = conns
        .lines()
        .filter(|l| l.contains(":0 ") && l.starts_with("TCP"))
        .collect();
    assert_eq!(templates.len(), 2, "{conns}");
    assert!(
        templates.iter().any(|l| l.contains("127.0.0.2:0")),
        "{conns}"
    );
    assert!(
        templates.iter().any(|l| l.contains("127.0.0.3:0")),
        "{conns}"
    );
    assert!(templates.iter().all(|l| l.contains("ASSURED")), "{conns}");
    let pc = d.list(&["-L", "-n", "--persistent-conn", "-t", &v.to_string()]);
    let persist: u32 = server_column(&pc, 3)
        .iter()
        .map(|n| n.parse::<u32>().unwrap())
        .sum();
    assert_eq!(persist, 2, "{pc}");
}

#[test]
fn an_fwmark_group_shares_servers_and_persistence_across_ports() {
    let d = Daemon::start();
    let (a, b) = Backend::pair(Behaviour::Name);
    let (p1, p2) = (vip(), vip());
    d.ok(&[
        "-A",
        "-f",
        "5",
        "-s",
        "rr",
        "-p",
        "600",
        "-M",
        "255.255.255.255",
    ]);
    for backend in [&a, &b] {
        d.ok(&["-a", "-f", "5", "-r", &backend.addr.to_string(), "-m"]);
    }
    for p in [p1, p2] {
        d.ok(&["--add-listener", "-t", &p.to_string(), "--mark", "5"]);
    }
    d.wait_listening(p1);
    d.wait_listening(p2);
    let home = ask(p1, Some("127.0.0.2"));
    for _ in 0..3 {
        assert_eq!(ask(p2, Some("127.0.0.2")), home);
        assert_eq!(ask(p1, Some("127.0.0.2")), home);
    }
    let listing = d.list(&["-L", "-n"]);
    assert!(listing.contains("FWM  5 rr persistent 600\n"), "{listing}");
    let rules = d.list(&["-L", "--listeners", "-n"]);
    assert_eq!(
        rules,
        format!("--add-listener -t {p1} --mark 5\n--add-listener -t {p2} --mark 5\n")
            .lines()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    let conns = d.list(&["-L", "-n", "-c"]);
    assert!(
        conns
            .lines()
            .any(|l| l.starts_with("IP ") && l.contains("0.0.0.5:0")),
        "{conns}"
    );
}

/// Waits (bounded) until connections to `v` are refused.
fn listener_closes(v: SocketAddr, what: &str) {
    eventually(what, || {
        std::net::TcpStream::connect_timeout(&v, Duration::from_millis(500)).is_err()
    });
}

/// Asserts that a new connection to `v` is reset (which the client may see as soon as
/// its connect completes, or at its first read) or closed without a byte.
fn turned_away(v: SocketAddr) {
    let mut c = match connect(v, None) {
        Err(e) => {
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
            return;
        }
        Ok(c) => c,
    };
    let mut buf = [0u8; 8];
    match c.read(&mut buf) {
        Ok(0) => {}
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!("got {n} bytes from nowhere"),
    }
}

#[test]
fn quiescing_or_deleting_a_server_never_cuts_open_connections() {
    let d = Daemon::start();
    let (a, b) = Backend::pair(Behaviour::Echo);
    let v = balance(&d, &["-s", "rr"], &[(a.addr, &[]), (b.addr, &[])]);
    // Two open connections, one on each server.
    let mut c1 = connect(v, None).unwrap();
    let mut c2 = connect(v, None).unwrap();
    for c in [&mut c1, &mut c2] {
        assert_eq!(echoed(c, b"ping"), b"ping");
    }
    let before = (
        a.accepted.load(std::sync::atomic::Ordering::Relaxed),
        b.accepted.load(std::sync::atomic::Ordering::Relaxed),
    );
    assert_eq!(before, (1, 1));
    // Quiesce B and delete A: the open connections go on...
    set_weight(&d, v, b.addr, "0");
    d.ok(&["-d", "-t", &v.to_string(), "-r", &a.addr.to_string()]);
    for c in [&mut c1, &mut c2] {
        for _ in 0..3 {
            assert_eq!(echoed(c, b"more"), b"more");
        }
    }
    // ...and new ones have nowhere to go (B quiesced, A gone): refused.
    turned_away(v);
    // Bring B back: new connections go there.
    set_weight(&d, v, b.addr, "1");
    let mut c4 = connect(v, None).unwrap();
    echoed(&mut c4, b"new!");
    assert_eq!(b.accepted.load(std::sync::atomic::Ordering::Relaxed), 2);
    for c in [c1, c2, c4] {
        c.shutdown(Shutdown::Both).unwrap();
    }
}

#[test]
fn an_upper_threshold_sends_new_connections_elsewhere() {
    let d = Daemon::start();
    let (a, b) = (
        Backend::start("A", Behaviour::Echo),
        Backend::start("B", Behaviour::Name),
    );
    let v = balance(
        &d,
        &["-s", "wlc"],
        &[(b.addr, &[]), (a.addr, &["-w", "100", "-x", "1"])],
    );
    // A (weight 100) takes the first; with it open, A reaches its threshold of 1.
    let mut held = connect(v, None).unwrap();
    echoed(&mut held, b"x");
    assert_eq!(ask(v, None), "B");
    let th = d.list(&["-L", "-n", "--thresholds", "-t", &v.to_string()]);
    assert!(
        th.contains(&format!(
            "  -> {:<28} 1          0          1",
            a.addr.to_string()
        )),
        "{th}"
    );
}

#[test]
fn a_refused_connect_is_retried_on_another_server_and_none_reachable_resets() {
    let d = Daemon::start();
    let live = Backend::start("LIVE", Behaviour::Name);
    let (_held, dead) = refusing_port();
    let v = balance(
        &d,
        &["-s", "rr", "--connect-timeout", "2"],
        &[(live.addr, &[]), (dead, &[])],
    );
    for _ in 0..6 {
        assert_eq!(ask(v, None), "LIVE");
    }
    d.ok(&["-d", "-t", &v.to_string(), "-r", &live.addr.to_string()]);
    turned_away(v);
    // rr put every other connection on the dead server first: six retries, and the
    // seventh had nowhere else to go.
    connect_failures_are(&d, (6, 1), (7, 0));
}

#[test]
fn retries_set_how_many_other_servers_a_connection_tries() {
    let live = Backend::start("LIVE", Behaviour::Name);
    let ((_h1, dead1), (_h2, dead2)) = (refusing_port(), refusing_port());
    // rr tries the newest first: dead2, then dead1, then the live one.
    let servers: [(SocketAddr, &[&str]); 3] = [(live.addr, &[]), (dead1, &[]), (dead2, &[])];
    let once = Daemon::start();
    let v = balance(&once, &["-s", "rr"], &servers);
    turned_away(v);
    connect_failures_are(&once, (1, 1), (1, 0));
    let twice = Daemon::start_with(Zone::default(), &["--retries", "2"]);
    let v = balance(&twice, &["-s", "rr"], &servers);
    assert_eq!(ask(v, None), "LIVE");
    let status = twice.status();
    assert!(
        status.contains("connections retried elsewhere 2, reset for want of a server 0"),
        "{status}"
    );
}

/// `uvs status` shows (connections retried, reset for want of a server) for the one
/// service, and (refused, timed out) connects for one of its servers.
fn connect_failures_are(
    d: &Daemon,
    (retried, reset): (u32, u32),
    (refused, timed_out): (u32, u32),
) {
    let status = d.status();
    let service =
        format!("connections retried elsewhere {retried}, reset for want of a server {reset}");
    let server = format!(
        "failed connects {} (refused {refused}, timed out {timed_out}, other 0)",
        refused + timed_out
    );
    assert!(status.contains(&service), "{status}");
    assert!(status.contains(&server), "{status}");
}

#[test]
fn a_real_server_that_never_answers_times_out_and_the_client_goes_elsewhere() {
    let d = Daemon::start();
    let live = Backend::start("LIVE", Behaviour::Name);
    // A listener whose accept queue is full: its kernel drops every further SYN, so a
    // connect to it neither succeeds nor fails until the connect timeout.
    let silent = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    silent
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    silent.listen(0).unwrap();
    let silent_addr = silent.local_addr().unwrap().as_socket().unwrap();
    let _queued = std::net::TcpStream::connect(silent_addr).unwrap();
    assert!(
        std::net::TcpStream::connect_timeout(&silent_addr, Duration::from_millis(300)).is_err(),
        "the silent server's queue is full"
    );
    let v = balance(
        &d,
        &["-s", "rr", "--connect-timeout", "300ms"],
        &[(live.addr, &[]), (silent_addr, &[])],
    );
    // The silent server is first in the list, so rr tries it for both connections.
    for _ in 0..2 {
        assert_eq!(ask(v, None), "LIVE");
    }
    connect_failures_are(&d, (2, 0), (0, 2));
}

#[test]
fn proxy_protocol_headers_tell_the_client_address() {
    let d = Daemon::start();
    let backend = Backend::start("", Behaviour::ProxyHeader);
    for (version, check) in [("v1", 1), ("v2", 2)] {
        let v = balance(
            &d,
            &["-s", "rr", "--proxy-protocol", version],
            &[(backend.addr, &[])],
        );
        let mut c = connect(v, Some("127.0.0.7")).unwrap();
        let client_port = c.local_addr().unwrap().port();
        c.write_all(b"END").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let got = read_all(&mut c).unwrap();
        if check == 1 {
            let expected = format!(
                "PROXY TCP4 127.0.0.7 127.0.0.1 {client_port} {}\r\nEND",
                v.port()
            );
            assert_eq!(String::from_utf8_lossy(&got), expected);
        } else {
            assert_eq!(&got[..12], b"\r\n\r\n\x00\r\nQUIT\n");
            assert_eq!(&got[16..20], &[127, 0, 0, 7], "source address");
            assert_eq!(&got[20..24], &[127, 0, 0, 1], "destination address");
            assert_eq!(u16::from_be_bytes([got[24], got[25]]), client_port);
            assert_eq!(u16::from_be_bytes([got[26], got[27]]), v.port());
            assert_eq!(&got[28..], b"END");
        }
    }
    let saved = d.save();
    assert!(saved.contains("--proxy-protocol v1"), "{saved}");
}

#[test]
fn listeners_follow_the_table_and_deleting_a_service_keeps_its_connections() {
    let d = Daemon::start();
    let echo = Backend::start("E", Behaviour::Echo);
    let v = balance(&d, &["-s", "rr"], &[(echo.addr, &[])]);
    let mut open = connect(v, None).unwrap();
    echoed(&mut open, b"hello");
    d.ok(&["-D", "-t", &v.to_string()]);
    listener_closes(v, "the listener closes");
    assert_eq!(echoed(&mut open, b"still"), b"still");
    open.shutdown(Shutdown::Write).unwrap();
    assert!(read_all(&mut open).unwrap().is_empty());
}

#[test]
fn a_vip_that_is_not_local_is_accepted_and_reported() {
    let d = Daemon::start();
    // TEST-NET-1: never local here. Only a bind is tried; nothing is sent there.
    d.ok(&["-A", "-t", "192.0.2.10:80", "-s", "rr"]);
    eventually("the bind failure in uvs status", || {
        let s = d.status();
        s.contains("listen tcp 192.0.2.10:80: cannot listen:") && s.contains("retrying")
    });
    // With --freebind the same address can be listened on before it exists.
    d.ok(&["-E", "-t", "192.0.2.10:80", "-s", "rr", "--freebind"]);
    eventually("listening with freebind", || {
        d.status().contains("listen tcp 192.0.2.10:80: listening")
    });
}

#[test]
fn idle_connections_are_closed_after_the_tcp_timeout() {
    let d = Daemon::start();
    let echo = Backend::start("E", Behaviour::Echo);
    let v = balance(&d, &["-s", "rr"], &[(echo.addr, &[])]);
    d.ok(&["--set", "1", "1", "0"]);
    let mut c = connect(v, None).unwrap();
    echoed(&mut c, b"x");
    let mut got = [0u8; 1];
    // Idle for longer than 1 s: uvs closes it (EOF or reset), bounded by the read timeout.
    let r = c.read(&mut got);
    assert!(matches!(r, Ok(0)) || r.is_err(), "{r:?}");
    let conns = d.list(&["-L", "-n", "-c"]);
    assert!(conns.contains("CLOSE"), "{conns}");
}

/// `-L -n --stats --exact` of the service on `v`, and its counters: Conns, InPkts,
/// OutPkts, InBytes, OutBytes.
fn service_counters(d: &Daemon, v: SocketAddr) -> (String, Vec<u64>) {
    let stats = d.list(&["-L", "-n", "--stats", "--exact", "-t", &v.to_string()]);
    let line = stats.lines().find(|l| l.starts_with("TCP")).unwrap();
    let n = line
        .split_whitespace()
        .skip(2)
        .map(|x| x.parse().unwrap())
        .collect();
    (stats, n)
}

/// Every way of moving bytes: `auto` (copy, splice while reads are large), `splice`, `copy`.
const FORWARDINGS: [&str; 3] = ["auto", "splice", "copy"];

#[test]
fn half_close_and_a_gibibyte_each_way_arrive_byte_exact() {
    for forwarding in FORWARDINGS {
        gibibyte_each_way(forwarding);
    }
}

fn gibibyte_each_way(forwarding: &str) {
    let d = Daemon::start_with(Zone::default(), &["--forwarding", forwarding]);
    // The backend reads everything (checking it) until the client's FIN, then answers
    // with its own gibibyte and closes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = listener.local_addr().unwrap();
    const TOTAL: u64 = 1 << 30;
    let server_side = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let received = check_stream(&mut s, 1);
        send_stream(&mut s, 2, TOTAL);
        s.shutdown(Shutdown::Write).unwrap();
        received
    });
    let v = balance(&d, &["-s", "rr"], &[(backend, &[])]);
    let mut c = connect(v, None).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let reader = c.try_clone().unwrap();
    let client_reader = std::thread::spawn(move || {
        let mut r = reader;
        check_stream(&mut r, 2)
    });
    send_stream(&mut c, 1, TOTAL);
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(
        server_side.join().unwrap(),
        TOTAL,
        "{forwarding}: client to server"
    );
    assert_eq!(
        client_reader.join().unwrap(),
        TOTAL,
        "{forwarding}: server to client"
    );
    let (stats, n) = service_counters(&d, v);
    assert_eq!(
        (n[0], n[3], n[4]),
        (1, TOTAL, TOTAL),
        "{forwarding}: {stats}"
    );
    assert!(
        n[1] > 1000 && n[2] > 1000,
        "packet counts from TCP_INFO: {stats}"
    );
}

/// A conversation of messages from 1 byte to 1 MiB, each echoed back whole before the
/// next is sent, so every message ends in a short read: no byte may be lost, reordered,
/// or left waiting (a missed wake-up would stall until the read timeout), including
/// when `auto` switches between copying and splicing.
#[test]
fn messages_of_every_size_cross_in_every_forwarding() {
    let sizes = [
        1usize,
        100,
        20_000,
        1 << 20,
        5,
        70_000,
        3,
        16_384,
        300_000,
        1,
    ];
    let echo = Backend::start("", Behaviour::Echo);
    for forwarding in FORWARDINGS {
        let d = Daemon::start_with(Zone::default(), &["--forwarding", forwarding]);
        let v = balance(&d, &["-s", "rr"], &[(echo.addr, &[])]);
        let mut c = connect(v, None).unwrap();
        let mut total = 0u64;
        for (i, size) in sizes.iter().enumerate() {
            let mut msg = vec![0u8; *size];
            pattern(i as u64, 0, &mut msg);
            c.write_all(&msg).unwrap();
            let mut back = vec![0u8; *size];
            c.read_exact(&mut back)
                .unwrap_or_else(|e| panic!("{forwarding}: message {i} ({size} bytes): {e}"));
            assert!(back == msg, "{forwarding}: message {i} came back different");
            total += *size as u64;
        }
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(
            read_all(&mut c).unwrap(),
            b"",
            "{forwarding}: EOF after the echo"
        );
        let (stats, n) = service_counters(&d, v);
        assert_eq!((n[3], n[4]), (total, total), "{forwarding}: {stats}");
    }
}

/// The byte at offset `i` of stream `seed`: a pattern that exposes any loss,
/// duplication or reordering.
fn pattern(seed: u64, block: u64, buf: &mut [u8]) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ block;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

const BLOCK: usize = 1 << 20;

fn send_stream(s: &mut std::net::TcpStream, seed: u64, total: u64) {
    let mut buf = vec![0u8; BLOCK];
    for block in 0..total / BLOCK as u64 {
        pattern(seed, block, &mut buf);
        s.write_all(&buf).unwrap();
    }
}

/// Reads until EOF, comparing with the pattern; returns the byte count.
fn check_stream(s: &mut std::net::TcpStream, seed: u64) -> u64 {
    let mut expected = vec![0u8; BLOCK];
    let mut got = vec![0u8; BLOCK];
    let mut block = 0u64;
    loop {
        let mut filled = 0;
        while filled < BLOCK {
            match s.read(&mut got[filled..]).unwrap() {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            return block * BLOCK as u64;
        }
        pattern(seed, block, &mut expected);
        assert!(got[..filled] == expected[..filled], "block {block} differs");
        if filled < BLOCK {
            return block * BLOCK as u64 + filled as u64;
        }
        block += 1;
    }
}

#[test]
fn ipv6_through_the_loopback() {
    let d = Daemon::start();
    let backend = Backend::start_on("[::1]:0", "six", Behaviour::Name);
    let v: SocketAddr = format!("[::1]:{}", free_port()).parse().unwrap();
    d.balance_on("-t", v, &["-s", "rr"], &[(backend.addr, &[])]);
    assert_eq!(ask(v, None), "six");
}

#[test]
fn sigterm_drains_open_connections_then_exits() {
    let mut d = Daemon::start();
    let echo = Backend::start("E", Behaviour::Echo);
    let v = balance(&d, &["-s", "rr"], &[(echo.addr, &[])]);
    let mut open = connect(v, None).unwrap();
    echoed(&mut open, b"a");
    sigterm(&d.child);
    listener_closes(v, "the listener closes on SIGTERM");
    assert!(d.alive(), "still draining while a connection is open");
    assert_eq!(echoed(&mut open, b"b"), b"b");
    open.shutdown(Shutdown::Both).unwrap();
    eventually("the daemon exits once drained", || !d.alive());
    assert!(d.child.wait().unwrap().success());
}

/// The congestion control `ss -tin` reports for the established sockets `filter` picks.
fn congestion_of(filter: &str) -> Vec<String> {
    let out = std::process::Command::new("ss")
        .args(["-tinH", "state", "established", filter])
        .output()
        .expect("ss (iproute2) runs");
    assert!(out.status.success(), "ss: {out:?}");
    let known = ["reno", "cubic", "bbr", "dctcp", "htcp", "vegas", "westwood"];
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| known.contains(w))
        .map(str::to_string)
        .collect()
}

/// The congestion control of uvs's two sockets of `client`'s connection through `v`
/// to `server`: the one accepted on the VIP (client leg), the one connected to the
/// real server (server leg).
fn congestion_of_legs(
    v: SocketAddr,
    client: &std::net::TcpStream,
    server: SocketAddr,
) -> (Vec<String>, Vec<String>) {
    let accepted = congestion_of(&format!(
        "( sport = :{} and dport = :{} )",
        v.port(),
        client.local_addr().unwrap().port()
    ));
    let to_server = congestion_of(&format!("( dport = :{} )", server.port()));
    (accepted, to_server)
}

#[test]
fn congestion_control_is_set_on_both_legs_and_unknown_ones_are_refused() {
    // One that is not the system's default, so the test sees uvs's choice.
    let system = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").unwrap();
    let chosen = if system.trim() == "reno" {
        "cubic"
    } else {
        "reno"
    };
    let d = Daemon::start_with(
        Zone::default(),
        &[
            "--client-congestion-control",
            chosen,
            "--server-congestion-control",
            chosen,
        ],
    );
    let backend = Backend::start("echo", Behaviour::Echo);
    let v = balance(&d, &["-s", "rr"], &[(backend.addr, &[])]);
    let mut client = connect(v, None).unwrap();
    assert_eq!(echoed(&mut client, b"ping"), b"ping");
    let (accepted, to_server) = congestion_of_legs(v, &client, backend.addr);
    assert_eq!(accepted, [chosen], "client leg");
    assert_eq!(to_server, [chosen], "server leg");
    // The test's own client socket keeps the system's.
    let own = congestion_of(&format!(
        "( sport = :{} )",
        client.local_addr().unwrap().port()
    ));
    assert_eq!(own, [system.trim()], "the client's own socket");
    drop(client);
    assert!(
        d.status().contains(&format!(
            "\nTCP congestion control: clients {chosen}, real servers {chosen}\n"
        )),
        "{}",
        d.status()
    );

    let out = std::process::Command::new(common::UVS)
        .args(["run", "--mode", "userspace", "--metrics", "off"])
        .args(["--socket", "/nonexistent/uvs.sock"])
        .args(["--server-congestion-control", "nonesuch"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("uvs: server_congestion_control: congestion control `nonesuch' is not available in this kernel (available: "),
        "{err}"
    );
}

/// Unset, the real-server leg takes cubic where the system's default is BBR (and
/// cubic may be set: root may), the system's default otherwise; `system` keeps the
/// system's on both legs.
#[test]
fn the_real_server_leg_defaults_to_cubic_in_place_of_bbr() {
    let system = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").unwrap();
    let system = system.trim().to_string();
    let cubic_here = system.starts_with("bbr") && common::is_root();
    let backend = Backend::start("echo", Behaviour::Echo);
    for (args, server_leg) in [
        (&[][..], if cubic_here { "cubic" } else { &system }),
        (&["--server-congestion-control", "system"][..], &system[..]),
    ] {
        let d = Daemon::start_with(Zone::default(), args);
        let v = balance(&d, &["-s", "rr"], &[(backend.addr, &[])]);
        let mut client = connect(v, None).unwrap();
        assert_eq!(echoed(&mut client, b"ping"), b"ping");
        let (accepted, to_server) = congestion_of_legs(v, &client, backend.addr);
        assert_eq!(accepted, [system.as_str()], "client leg, {args:?}");
        assert_eq!(to_server, [server_leg], "server leg, {args:?}");
        let said = d
            .status()
            .lines()
            .find(|l| l.starts_with("TCP congestion control"))
            .map(str::to_string);
        let expected = (server_leg != system).then(|| {
            format!("TCP congestion control: clients the system's, real servers {server_leg}")
        });
        assert_eq!(said, expected, "{args:?}");
    }
}

/// The "TCP connections per worker" counts and the hand-over count of `uvs status`.
fn worker_connections(d: &Daemon) -> (Vec<usize>, u64) {
    let status = d.status();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("TCP connections per worker "))
        .unwrap_or_else(|| panic!("no worker line in {status}"));
    let (counts, handed) = line
        .split_once(", handed to a less loaded worker ")
        .unwrap();
    (
        counts.split(' ').map(|n| n.parse().unwrap()).collect(),
        handed.parse().unwrap(),
    )
}

#[test]
fn connections_are_spread_over_the_workers_and_counted_until_they_end() {
    let d = Daemon::start_with(Zone::default(), &["--threads", "2"]);
    let backend = Backend::start("echo", Behaviour::Echo);
    let v = balance(&d, &["-s", "rr"], &[(backend.addr, &[])]);
    assert_eq!(worker_connections(&d), (vec![0, 0], 0));
    // A burst: all connect first, then each proves it is being served.
    let mut clients: Vec<_> = (0..40).map(|_| connect(v, None).unwrap()).collect();
    for c in &mut clients {
        assert_eq!(echoed(c, b"ping"), b"ping");
    }
    let (counts, _) = worker_connections(&d);
    assert_eq!(counts.iter().sum::<usize>(), 40, "{counts:?}");
    // Without the hand-over a burst like this one lands on one worker (40 and 0).
    let (most, least) = (counts[0].max(counts[1]), counts[0].min(counts[1]));
    assert!(most <= 2 * least + 8, "{counts:?}");
    drop(clients);
    eventually("every worker's count back to 0", || {
        worker_connections(&d).0 == [0, 0]
    });
}

/// The loop refusals `uvs status` shows for real server `server` (0 when none).
fn loops_of(status: &str, server: &str) -> u64 {
    status
        .lines()
        .find(|l| l.starts_with(&format!("  -> {server} ")))
        .and_then(|l| l.split("refused as loops back into this director ").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_real_server_that_is_the_director_itself_is_refused_not_looped() {
    let d = Daemon::start_limited(1024, &[]);
    let neighbour = Backend::start("N", Behaviour::Name);
    let next_door = balance(&d, &["-s", "rr"], &[(neighbour.addr, &[])]);
    let baseline = d.open_descriptors();

    // The case that was found: -A -t V; -a -t V -r V -m.
    let v = vip();
    let vs = v.to_string();
    service(&d, v, &["-s", "rr"]);
    server(&d, v, v, &[]);
    // A port-less server on the VIP's own address.
    let w = vip();
    service(&d, w, &["-s", "rr"]);
    server(&d, w, SocketAddr::new(w.ip(), 0), &[]);
    // Two services that point at each other.
    let (x, y) = (vip(), vip());
    service(&d, x, &["-s", "rr"]);
    service(&d, y, &["-s", "rr"]);
    server(&d, x, y, &[]);
    server(&d, y, x, &[]);
    // A wildcard VIP with a real server on one of the host's addresses, same port.
    let port = free_port();
    let z = SocketAddr::from(([0, 0, 0, 0], port));
    service(&d, z, &["-s", "rr"]);
    let z_server = SocketAddr::from(([127, 0, 0, 3], port));
    server(&d, z, z_server, &[]);
    for l in [v, w, x, y, z] {
        d.wait_listening(l);
    }

    // One client connection each: turned away, not looped.
    for target in [v, w, x, y, SocketAddr::from(([127, 0, 0, 1], port))] {
        turned_away(target);
    }
    // The neighbour answers all along, and nothing piled up.
    assert_eq!(ask(next_door, None), "N");
    eventually("the refused connections are gone", || {
        d.status().contains(", 0 open connections\n")
    });
    let open = d.open_descriptors();
    assert!(
        open <= baseline + 5 * 2 * 2 + 4,
        "{open} descriptors open, {baseline} before the five services came"
    );
    let status = d.status();
    assert_eq!(loops_of(&status, &vs), 1, "{status}");
    assert_eq!(loops_of(&status, &format!("{}:0", w.ip())), 1, "{status}");
    // x's connection went to y: refused there, as y's own server is x.
    assert_eq!(loops_of(&status, &y.to_string()), 1, "{status}");
    assert_eq!(loops_of(&status, &x.to_string()), 1, "{status}");
    assert_eq!(loops_of(&status, &z_server.to_string()), 1, "{status}");
    // Named once each, when the table made it so.
    let log = d.log();
    for named in [&vs, &y.to_string(), &z_server.to_string()] {
        let lines = log
            .lines()
            .filter(|l| l.contains(&format!("real server {named} of")))
            .count();
        assert_eq!(lines, 1, "{named} in\n{log}");
    }
    // More connections are refused the same way, and not named again.
    for _ in 0..20 {
        turned_away(v);
    }
    assert_eq!(loops_of(&d.status(), &vs), 21);
    assert_eq!(
        d.log()
            .lines()
            .filter(|l| l.contains(&format!("real server {vs} of")))
            .count(),
        1
    );
    // A real server elsewhere in the same service is still used: the loop is skipped.
    let good = Backend::start("G", Behaviour::Name);
    server(&d, v, good.addr, &[]);
    for _ in 0..4 {
        assert_eq!(ask(v, None), "G");
    }
}

#[test]
fn uvs_check_warns_of_real_servers_that_would_loop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loop.toml");
    std::fs::write(
        &path,
        "[[service]]\ntcp = \"127.0.0.1:8080\"\n[[service.server]]\naddress = \"127.0.0.1:8080\"\n\
         [[service.server]]\naddress = \"127.0.0.2:8080\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::UVS)
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "a warning, not a problem");
    assert_eq!(
        common::text(&out.stderr),
        format!(
            "{}: warning: real server 127.0.0.1:8080 of tcp 127.0.0.1:8080: connections \
             arriving on -t 127.0.0.1:8080 would go to 127.0.0.1:8080, a listen address of \
             this director itself, and loop back into it; they are refused\n",
            path.display()
        )
    );
}

/// (TCP connections, the data plane's descriptors in use, its share) from `uvs status`.
fn budget(status: &str) -> (usize, usize, usize) {
    let numbers = |line: &str| -> Vec<usize> {
        line.split([' ', ',', ';'])
            .filter_map(|w| w.parse().ok())
            .collect()
    };
    let descriptors = status
        .lines()
        .find(|l| l.starts_with("descriptors: "))
        .map(numbers)
        .unwrap_or_else(|| panic!("no descriptors line in\n{status}"));
    let connections = status
        .lines()
        .find(|l| l.starts_with("TCP connections ") && l.contains("accepting paused"))
        .map(numbers)
        .unwrap_or_else(|| panic!("no connections line in\n{status}"));
    // "descriptors: open-files limit L; data plane U of S in use; ..."
    (connections[0], descriptors[1], descriptors[2])
}

#[test]
fn out_of_descriptors_clients_wait_their_turn_and_the_control_plane_answers() {
    const LIMIT: usize = 256;
    const CLIENTS: usize = 150;
    let d = Daemon::start_limited(LIMIT as u64, &["--threads", "2"]);
    let echo = Backend::start("E", Behaviour::Echo);
    let v = balance(&d, &["-s", "rr"], &[(echo.addr, &[])]);
    let (_, _, share) = budget(&d.status());
    // The listener holds one descriptor per worker; each connection two.
    let most = (share - 2) / 2;
    assert!(
        most < CLIENTS,
        "the share ({share}) must run out for the test"
    );
    let mut clients: Vec<std::net::TcpStream> = (0..CLIENTS)
        .map(|i| {
            let mut c = connect(v, None).expect("the kernel's backlog takes the connection");
            c.write_all(format!("hello {i:03}\n").as_bytes()).unwrap();
            c
        })
        .collect();
    // Two workers may race for the last room: one connection over, at most.
    eventually("the data plane full", || budget(&d.status()).0 >= most);
    // Full, and the rest wait in the backlog: the control plane still answers.
    let listed = d.list(&["-L", "-n", "-t", &v.to_string()]);
    assert!(listed.contains(&format!("{} ", echo.addr)), "{listed}");
    let (scraped, _) = common::http_get(d.metrics_address(), "GET", "/metrics");
    assert_eq!(scraped, "HTTP/1.1 200 OK");
    let (connections, used, _) = budget(&d.status());
    assert!(
        connections <= most + 1,
        "{connections} connections, the share is {most}"
    );
    assert!(
        used <= share + 2,
        "{used} descriptors used, the share is {share}"
    );
    assert!(
        d.open_descriptors() <= LIMIT,
        "{} descriptors",
        d.open_descriptors()
    );
    let status = d.status();
    assert!(
        !status.contains("accepting paused for want of room 0 times"),
        "{status}"
    );
    // As connections end, the waiting clients are served, every byte intact.
    for (i, c) in clients.iter_mut().enumerate() {
        let mut line = [0u8; 10];
        c.read_exact(&mut line).expect("the echo, in turn");
        assert_eq!(&line, format!("hello {i:03}\n").as_bytes());
        c.shutdown(Shutdown::Both).unwrap();
    }
    drop(clients);
    eventually("every connection ended", || budget(&d.status()).0 == 0);
}

#[test]
fn max_connections_caps_what_is_proxied_and_the_rest_wait() {
    let d = Daemon::start_with(Zone::default(), &["--max-connections", "3"]);
    let echo = Backend::start("E", Behaviour::Echo);
    let v = balance(&d, &["-s", "rr"], &[(echo.addr, &[])]);
    let mut clients: Vec<std::net::TcpStream> = (0..6)
        .map(|i| {
            let mut c = connect(v, None).unwrap();
            c.write_all(format!("hi {i}\n").as_bytes()).unwrap();
            c
        })
        .collect();
    // The first three are served; two workers racing may take one more.
    eventually("three connections", || budget(&d.status()).0 >= 3);
    let status = d.status();
    assert!(budget(&status).0 <= 4, "{status}");
    assert!(status.contains("at most 3 (--max-connections)"), "{status}");
    for (i, c) in clients.iter_mut().enumerate() {
        let mut line = [0u8; 5];
        c.read_exact(&mut line).expect("the echo, in turn");
        assert_eq!(&line, format!("hi {i}\n").as_bytes());
        c.shutdown(Shutdown::Both).unwrap();
    }
}

#[test]
fn listen_addresses_without_descriptors_wait_quietly_and_uvsadm_answers() {
    let d = Daemon::start_limited(256, &["--threads", "2"]);
    let rules: String = (0..2000u16)
        .map(|i| format!("-A -t 127.0.0.2:{} -s rr\n", 20_000 + i))
        .collect();
    let out = d.uvsadm_with_input(&["-R"], &rules);
    assert!(out.status.success(), "taken, as ipvsadm takes it");
    let waiting = "cannot listen: no descriptors left in the data plane's share for its 2 sockets";
    eventually("the addresses over the share wait", || {
        d.status().matches(waiting).count() > 1900
    });
    // Two more rounds of retries.
    std::thread::sleep(Duration::from_secs(5));
    let log = d.log();
    // The case that was found: a line per address and retry. Now eight a window of ten
    // seconds, and a sum of the rest (this test spans two windows at most).
    let one_by_one = log
        .lines()
        .filter(|l| l.contains("cannot listen; retrying"))
        .count();
    assert!((8..=16).contains(&one_by_one), "{one_by_one} lines:\n{log}");
    let summed = log
        .lines()
        .filter(|l| l.contains("more listen addresses cannot listen"))
        .count();
    assert!((1..=2).contains(&summed), "{log}");
    assert!(d.open_descriptors() <= 256);
    // The control plane answers, and deleting services frees their descriptors.
    let listed = d.list(&["-L", "-n"]);
    assert_eq!(
        listed.lines().filter(|l| l.starts_with("TCP")).count(),
        2000
    );
    let (scraped, _) = common::http_get(d.metrics_address(), "GET", "/metrics");
    assert_eq!(scraped, "HTTP/1.1 200 OK");
    d.ok(&["-C"]);
    let echo = Backend::start("E", Behaviour::Name);
    let v = balance(&d, &["-s", "rr"], &[(echo.addr, &[])]);
    assert_eq!(ask(v, None), "E");
}
