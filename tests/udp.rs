//! The UDP data plane over real sockets on loopback: flows scheduled per client and
//! followed by the rest of their datagrams, one-packet scheduling, persistence, the
//! flow cap under a flood, refused and removed servers, idle expiry, deleted services,
//! wildcard VIPs, fwmark groups spanning TCP and UDP, IPv6 and the largest datagrams.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::{
    Backend, Behaviour, Daemon, Reply, UdpBackend, Zone, ask, eventually, free_port, free_udp_port,
};

fn vip() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_udp_port()))
}

/// A UDP service on `v` with these `-A` options and real servers (added in this order,
/// each with its `-a` options), once the daemon listens on it.
fn balance_on(d: &Daemon, v: SocketAddr, options: &[&str], servers: &[(SocketAddr, &[&str])]) {
    d.balance_on("-u", v, options, servers);
}

fn balance(d: &Daemon, options: &[&str], servers: &[(SocketAddr, &[&str])]) -> SocketAddr {
    let v = vip();
    balance_on(d, v, options, servers);
    v
}

/// A client socket on `from` (an address of 127.0.0.0/8 or ::1), port chosen by the
/// kernel.
fn client(from: &str) -> UdpSocket {
    let s = UdpSocket::bind(format!("{from}:0")).expect("client bind");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Sends `payload` to `vip` and returns the answer, which must come from `vip`.
fn exchange(c: &UdpSocket, vip: SocketAddr, payload: &[u8]) -> Vec<u8> {
    c.send_to(payload, vip).expect("send to the VIP");
    let mut buf = vec![0u8; 65536];
    let (n, from) = c.recv_from(&mut buf).expect("an answer through the VIP");
    assert_eq!(
        from, vip,
        "the answer comes from the address the client spoke to"
    );
    buf.truncate(n);
    buf
}

fn name(c: &UdpSocket, vip: SocketAddr) -> String {
    String::from_utf8(exchange(c, vip, b"who")).unwrap()
}

/// Whether an answer arrives within `wait` (for datagrams that must go unanswered).
fn answered_within(c: &UdpSocket, vip: SocketAddr, wait: Duration) -> bool {
    c.set_read_timeout(Some(wait)).unwrap();
    c.send_to(b"who", vip).unwrap();
    let mut buf = [0u8; 64];
    let got = c.recv_from(&mut buf).is_ok();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    got
}

/// The UDP entries of `-L -n -c` (not templates): (client, virtual, destination).
fn flows(d: &Daemon) -> Vec<(String, String, String)> {
    d.list(&["-L", "-n", "-c"])
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 6 && f[0] == "UDP" && f[2] == "UDP")
                .then(|| (f[3].to_string(), f[4].to_string(), f[5].to_string()))
        })
        .collect()
}

/// The ActiveConn and InActConn of `server` in `-L -n`.
fn conn_counts(d: &Daemon, server: SocketAddr) -> (u32, u32) {
    let listing = d.list(&["-L", "-n"]);
    let line = listing
        .lines()
        .find(|l| l.contains(&format!("-> {server} ")))
        .unwrap_or_else(|| panic!("{server} in\n{listing}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    (f[4].parse().unwrap(), f[5].parse().unwrap())
}

#[test]
fn round_robin_alternates_per_flow_and_each_flow_keeps_its_server() {
    let d = Daemon::start();
    let (a, b) = UdpBackend::pair(Reply::Name);
    let v = balance(&d, &["-s", "rr"], &[(a.addr, &[]), (b.addr, &[])]);
    let clients: Vec<UdpSocket> = (0..6).map(|_| client("127.0.0.1")).collect();
    let mut firsts = String::new();
    for c in &clients {
        let answers: Vec<String> = (0..3).map(|_| name(c, v)).collect();
        assert!(
            answers.iter().all(|n| *n == answers[0]),
            "a flow stays with its server: {answers:?}"
        );
        firsts.push_str(&answers[0]);
    }
    // IPVS walks the newest server first.
    assert_eq!(firsts, "BABABA");
    // Every flow is an IPVS UDP entry, inactive, expiring after the udp timeout.
    let entries = d.list(&["-L", "-n", "-c"]);
    let udp_lines: Vec<&str> = entries.lines().filter(|l| l.starts_with("UDP")).collect();
    assert_eq!(udp_lines.len(), 6, "{entries}");
    for line in &udp_lines {
        assert!(
            line.starts_with("UDP 04:5") || line.starts_with("UDP 05:00"),
            "{line}"
        );
        assert_eq!(line.split_whitespace().nth(2), Some("UDP"), "{line}");
    }
    assert_eq!(conn_counts(&d, a.addr), (0, 3));
    assert_eq!(conn_counts(&d, b.addr), (0, 3));
    // Conns are flows; each datagram is a packet, both ways.
    let stats = d.list(&["-L", "-n", "--stats", "-u", &v.to_string()]);
    let line = |who: SocketAddr| {
        stats
            .lines()
            .find(|l| l.contains(&format!("-> {who} ")))
            .unwrap()
            .split_whitespace()
            .skip(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    // 9 datagrams of 3 bytes in, 9 answers of 1 byte out, per server.
    assert_eq!(line(a.addr), "3 9 9 27 9");
    assert_eq!(line(b.addr), "3 9 9 27 9");
    let status = d.status();
    assert!(status.contains("UDP flows 6 of at most "), "{status}");
}

#[test]
fn one_packet_scheduling_schedules_every_datagram_and_keeps_no_entry() {
    let d = Daemon::start();
    let (a, b) = UdpBackend::pair(Reply::Name);
    let v = balance(&d, &["-s", "rr", "-o"], &[(a.addr, &[]), (b.addr, &[])]);
    let c = client("127.0.0.1");
    let seq: String = (0..6).map(|_| name(&c, v)).collect();
    assert_eq!(seq, "BABABA", "each datagram scheduled on its own");
    assert!(flows(&d).is_empty(), "no connection entries with -o");
    assert_eq!(conn_counts(&d, a.addr), (0, 0));
    let stats = d.list(&["-L", "-n", "--stats", "-u", &v.to_string()]);
    let service = stats.lines().find(|l| l.starts_with("UDP")).unwrap();
    assert_eq!(
        service.split_whitespace().skip(2).collect::<Vec<_>>(),
        ["6", "6", "6", "18", "6"],
        "a connection per datagram:\n{stats}"
    );
    assert!(d.list(&["-L", "-n"]).contains(" rr ops"));
}

#[test]
fn only_real_servers_reach_the_client() {
    let d = Daemon::start();
    let a = UdpBackend::start("A", Reply::Name);
    let scheduled = balance(&d, &["-s", "rr"], &[(a.addr, &[])]);
    let one_packet = balance(&d, &["-s", "rr", "-o"], &[(a.addr, &[])]);
    for v in [scheduled, one_packet] {
        let c = client("127.0.0.1");
        assert_eq!(name(&c, v), "A");
        // The socket uvs used towards the server, as the server saw it.
        let towards_server = a.last_peer.lock().unwrap().expect("the server heard uvs");
        let stranger = client("127.0.0.1");
        stranger.send_to(b"forged", towards_server).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 64];
        assert!(
            c.recv_from(&mut buf).is_err(),
            "a datagram from a stranger reached the client through {v}"
        );
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(name(&c, v), "A", "the flow is unharmed");
    }
}

#[test]
fn persistent_clients_stick_to_their_servers() {
    let d = Daemon::start();
    let (a, b) = UdpBackend::pair(Reply::Name);
    let v = balance(
        &d,
        &["-s", "rr", "-p", "300"],
        &[(a.addr, &[]), (b.addr, &[])],
    );
    let mut per_client = Vec::new();
    for host in 2..=9 {
        let from = format!("127.0.0.{host}");
        // Two sockets (two flows) per client address, two datagrams each.
        let answers: Vec<String> = (0..2)
            .flat_map(|_| {
                let c = client(&from);
                [name(&c, v), name(&c, v)]
            })
            .collect();
        assert!(
            answers.iter().all(|n| *n == answers[0]),
            "{from} sticks to one server: {answers:?}"
        );
        per_client.push(answers[0].clone());
    }
    assert_eq!(per_client.concat(), "BABABABA");
    let entries = d.list(&["-L", "-n", "-c"]);
    let templates = entries
        .lines()
        .filter(|l| l.starts_with("UDP") && l.contains(":0 "))
        .count();
    assert_eq!(templates, 8, "one template per client:\n{entries}");
    assert_eq!(flows(&d).len(), 16);
    let listing = d.list(&["-L", "-n", "--persistent-conn"]);
    assert!(
        listing
            .lines()
            .filter(|l| l.contains("-> 127."))
            .all(|l| l.split_whitespace().nth(3) == Some("4")),
        "four templates each:\n{listing}"
    );
}

#[test]
fn a_flood_of_new_flows_stays_within_the_flow_cap() {
    const CAP: usize = 10_000;
    const FLOOD: usize = 50_000;
    let d = Daemon::start_with(Zone::default(), &["--max-udp-flows", &CAP.to_string()]);
    let echo = UdpBackend::start("E", Reply::Echo);
    let v = balance(&d, &["-s", "rr"], &[(echo.addr, &[])]);
    let established: Vec<UdpSocket> = (0..20).map(|_| client("127.0.0.1")).collect();
    for (i, c) in established.iter().enumerate() {
        assert_eq!(
            exchange(c, v, format!("hello {i}").as_bytes()),
            format!("hello {i}").as_bytes()
        );
    }
    // (open, refused because the table was full, ended otherwise): every datagram of a
    // new source is one of them.
    let counts = || {
        let (open, full, per_source, evicted, expired) = admission(&d);
        assert_eq!(per_source, 0);
        (open, full, evicted + expired)
    };
    // Distinct sources: 127.0.1.1 and 127.0.1.2, 25 000 ports each, one datagram per
    // source, sent in paced chunks so that no datagram is lost in a socket buffer.
    let mut sent = 0;
    let mut rss_at_cap = None;
    'flood: for host in 1..=2u8 {
        for chunk in 0..25 {
            for port in 0..1000u16 {
                let port = 20_000 + chunk * 1000 + port;
                let Ok(s) = UdpSocket::bind((std::net::Ipv4Addr::new(127, 0, 1, host), port))
                else {
                    continue;
                };
                if s.send_to(b"x", v).is_ok() {
                    sent += 1;
                }
                if sent == FLOOD {
                    break 'flood;
                }
            }
            let expected = sent;
            eventually("uvs has taken every datagram sent", || {
                let (open, dropped, ended) = counts();
                // 20 established flows were there before the flood.
                open + dropped + ended == expected + 20
            });
            if rss_at_cap.is_none() && counts().0 == CAP {
                rss_at_cap = Some(d.resident_bytes());
            }
        }
    }
    assert!(
        sent >= 40_000,
        "enough distinct sources could be bound ({sent})"
    );
    // The last chunk, taken whole.
    eventually("uvs has taken every datagram sent", || {
        let (open, dropped, ended) = counts();
        open + dropped + ended == sent + 20
    });
    let (open, dropped, ended) = counts();
    assert_eq!(open, CAP);
    assert_eq!(
        dropped + ended,
        sent + 20 - CAP,
        "{sent} sent; refused {dropped}, ended {ended}:\n{}",
        d.status()
    );
    let status = d.status();
    assert!(
        status.contains(&format!("new flows dropped (flow table full) {dropped}")),
        "{status}"
    );
    // Memory: what the flood added beyond the cap is small next to what 40 000 more
    // flows would take (a socket, a task and table entries each).
    let growth = d
        .resident_bytes()
        .saturating_sub(rss_at_cap.expect("the cap was reached"));
    assert!(
        growth < 8 << 20,
        "resident memory grew by {growth} bytes after the cap was reached"
    );
    // The flows that were there before still get answers.
    for (i, c) in established.iter().enumerate() {
        assert_eq!(
            exchange(c, v, format!("again {i}").as_bytes()),
            format!("again {i}").as_bytes()
        );
    }
}

#[test]
fn a_refusing_server_ends_the_flow_and_the_next_datagram_is_scheduled_anew() {
    let d = Daemon::start();
    let b = UdpBackend::start("B", Reply::Name);
    // A port nobody listens on: the kernel answers with ICMP port unreachable.
    let closed = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    // Added last, so rr tries it first.
    let v = balance(&d, &["-s", "rr"], &[(b.addr, &[]), (closed, &[])]);
    let c = client("127.0.0.1");
    let mut answer = None;
    for _ in 0..50 {
        c.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        c.send_to(b"who", v).unwrap();
        let mut buf = [0u8; 16];
        if let Ok((n, _)) = c.recv_from(&mut buf) {
            answer = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            break;
        }
    }
    assert_eq!(
        answer.as_deref(),
        Some("B"),
        "rescheduled to the live server"
    );
    let f = flows(&d);
    assert_eq!(f.len(), 1, "only the live flow is left: {f:?}");
    assert_eq!(f[0].2, b.addr.to_string());
    let status = d.status();
    assert!(
        status.contains(&format!("{closed}"))
            && status.contains("flows ended by ICMP errors 1 (port unreachable 1, other 0)"),
        "{status}"
    );
}

#[test]
fn edits_and_quiesced_servers_keep_flows_and_removed_servers_lose_them() {
    let d = Daemon::start();
    let (a, b) = UdpBackend::pair(Reply::Name);
    let v = balance(&d, &["-s", "rr"], &[(a.addr, &[]), (b.addr, &[])]);
    let f = client("127.0.0.1");
    assert_eq!(name(&f, v), "B");
    let (vs, bs) = (v.to_string(), b.addr.to_string());
    d.ok(&["-E", "-u", &vs, "-s", "wlc"]);
    assert_eq!(name(&f, v), "B", "an edited service keeps its flows");
    d.ok(&["-e", "-u", &vs, "-r", &bs, "-m", "-w", "0"]);
    assert_eq!(name(&f, v), "B", "weight 0: the live flow goes on");
    assert_eq!(name(&client("127.0.0.1"), v), "A", "new flows avoid it");
    d.ok(&["-d", "-u", &vs, "-r", &bs]);
    assert_eq!(
        name(&f, v),
        "A",
        "its server gone, the flow is scheduled anew"
    );
    let port = f.local_addr().unwrap().port();
    let entry = flows(&d)
        .into_iter()
        .find(|e| e.0.ends_with(&format!(":{port}")))
        .unwrap();
    assert_eq!(entry.2, a.addr.to_string());
    assert_eq!(conn_counts(&d, a.addr), (0, 2));
}

#[test]
fn idle_flows_expire_after_the_udp_timeout() {
    let d = Daemon::start();
    let (a, b) = UdpBackend::pair(Reply::Name);
    d.ok(&["--set", "0", "0", "1"]);
    let v = balance(&d, &["-s", "rr"], &[(a.addr, &[]), (b.addr, &[])]);
    let c = client("127.0.0.1");
    assert_eq!(name(&c, v), "B");
    eventually("the idle flow expires", || flows(&d).is_empty());
    assert_eq!(conn_counts(&d, b.addr), (0, 0));
    assert_eq!(
        name(&c, v),
        "A",
        "the same client is a new flow, scheduled anew"
    );
}

#[test]
fn deleting_the_service_keeps_live_flows_and_takes_no_new_ones() {
    let d = Daemon::start();
    let (a, b) = UdpBackend::pair(Reply::Name);
    let v = balance(&d, &["-s", "rr"], &[(a.addr, &[])]);
    let live = client("127.0.0.1");
    assert_eq!(name(&live, v), "A");
    d.ok(&["-D", "-u", &v.to_string()]);
    // As IPVS forwards the connections of a deleted service until they expire.
    assert_eq!(name(&live, v), "A", "the live flow goes on");
    assert!(
        !answered_within(&client("127.0.0.1"), v, Duration::from_millis(300)),
        "a new client has no service"
    );
    // The same address again: the same sockets take new flows.
    balance_on(&d, v, &["-s", "rr"], &[(b.addr, &[])]);
    assert_eq!(name(&client("127.0.0.1"), v), "B");
}

#[test]
fn a_wildcard_vip_answers_from_the_address_the_client_spoke_to() {
    let d = Daemon::start();
    let a = UdpBackend::start("A", Reply::Name);
    let port = free_udp_port();
    let any = SocketAddr::from(([0, 0, 0, 0], port));
    balance_on(&d, any, &["-s", "rr"], &[(a.addr, &[])]);
    for reached in ["127.0.0.3", "127.0.0.4"] {
        let v: SocketAddr = format!("{reached}:{port}").parse().unwrap();
        // exchange() checks the answer's source address.
        assert_eq!(name(&client("127.0.0.1"), v), "A");
    }
    let virtuals: Vec<String> = flows(&d).into_iter().map(|f| f.1).collect();
    assert!(
        virtuals.contains(&format!("127.0.0.3:{port}")),
        "{virtuals:?}"
    );
    assert!(
        virtuals.contains(&format!("127.0.0.4:{port}")),
        "{virtuals:?}"
    );
}

#[test]
fn the_largest_datagrams_pass_unchanged_over_ipv4_and_ipv6() {
    let d = Daemon::start();
    let e4 = UdpBackend::start("E", Reply::Echo);
    let e6 = UdpBackend::start_on("[::1]:0", "E", Reply::Echo);
    let v4 = balance(&d, &["-s", "rr"], &[(e4.addr, &[])]);
    let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, free_udp_port()));
    balance_on(&d, v6, &["-s", "rr"], &[(e6.addr, &[])]);
    for (v, from, largest) in [(v4, "127.0.0.1", 65507usize), (v6, "[::1]", 65527)] {
        let c = client(from);
        for size in [1, 1472, 9000, largest] {
            let payload: Vec<u8> = (0..size).map(|i| (i * 7 % 256) as u8).collect();
            assert_eq!(
                exchange(&c, v, &payload),
                payload,
                "{size} bytes through {v}"
            );
        }
        // Zero-length datagrams are datagrams too.
        assert_eq!(exchange(&c, v, b""), b"");
    }
    let stats = d.list(&["-L", "-n", "--stats", "-u", &v4.to_string()]);
    let service = stats.lines().find(|l| l.starts_with("UDP")).unwrap();
    let total = 1 + 1472 + 9000 + 65507;
    assert_eq!(
        service.split_whitespace().skip(2).collect::<Vec<_>>(),
        ["1", "5", "5", &total.to_string(), &total.to_string()],
        "{stats}"
    );
}

#[test]
fn an_fwmark_group_keeps_a_client_on_one_server_across_tcp_and_udp() {
    let d = Daemon::start();
    // Real servers without a port on two addresses: each answers on the port the client
    // reached, in both protocols.
    let (tcp_port, udp_port) = (free_port(), free_udp_port());
    let tcp_servers = [
        Backend::start_on(&format!("127.0.0.1:{tcp_port}"), "A", Behaviour::Name),
        Backend::start_on(&format!("127.0.0.2:{tcp_port}"), "B", Behaviour::Name),
    ];
    let udp_servers = [
        UdpBackend::start_on(&format!("127.0.0.1:{udp_port}"), "A", Reply::Name),
        UdpBackend::start_on(&format!("127.0.0.2:{udp_port}"), "B", Reply::Name),
    ];
    d.ok(&["-A", "-f", "7", "-s", "rr", "-p", "300"]);
    d.ok(&["-a", "-f", "7", "-r", "127.0.0.1", "-m"]);
    d.ok(&["-a", "-f", "7", "-r", "127.0.0.2", "-m"]);
    let (tv, uv) = (
        SocketAddr::from(([127, 0, 0, 10], tcp_port)),
        SocketAddr::from(([127, 0, 0, 10], udp_port)),
    );
    d.ok(&["--add-listener", "-t", &tv.to_string(), "--mark", "7"]);
    d.ok(&["--add-listener", "-u", &uv.to_string(), "--mark", "7"]);
    d.wait_listening_on("tcp", tv);
    d.wait_listening_on("udp", uv);
    for (host, expected) in [("127.0.0.5", "B"), ("127.0.0.6", "A")] {
        assert_eq!(ask(tv, Some(host)), expected, "{host} over TCP");
        assert_eq!(name(&client(host), uv), expected, "{host} over UDP");
        assert_eq!(ask(tv, Some(host)), expected, "{host} over TCP again");
    }
    drop((tcp_servers, udp_servers));
}

/// (flows open, refused because the table was full, refused by the per-source limit,
/// unanswered flows ended to make room, unanswered flows expired) from `uvs status`.
fn admission(d: &Daemon) -> (usize, usize, usize, usize, usize) {
    let status = d.status();
    let open: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("UDP flows "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no UDP flows line in\n{status}"));
    let refused = status
        .lines()
        .find_map(|l| l.strip_prefix("  new flows refused: "))
        .unwrap_or_else(|| panic!("no refused line in\n{status}"));
    let n: Vec<usize> = refused
        .split([' ', ',', ';'])
        .filter_map(|w| w.parse().ok())
        .collect();
    // table full, per-source limit, no descriptors, no socket; ended to make room
    // unanswered, answered once; unanswered at their timeout
    assert_eq!(n.len(), 7, "{refused}");
    assert_eq!(
        n[2] + n[3],
        0,
        "no flow refused for want of a socket: {refused}"
    );
    (open, n[0], n[1], n[4] + n[5], n[6])
}

/// One datagram `payload` from each of `per_source` sources on each of the addresses
/// 127.0.3.1 to 127.0.3.`sources`, taking turns, each source a port of its own (from
/// 30 000 up: a port the kernel picked could come back and join an earlier flow), paced
/// so that uvs takes each few hundred before the next are sent (a socket buffer would
/// drop them otherwise; `taken` says how many datagrams uvs has taken). Returns how
/// many were sent (a port in use elsewhere is skipped).
fn flood(
    v: SocketAddr,
    sources: u8,
    per_source: u16,
    payload: &[u8],
    taken: impl Fn() -> usize,
) -> usize {
    let mut sent = 0;
    for port in 30_000..30_000 + per_source {
        for host in 1..=sources {
            let Ok(s) = UdpSocket::bind((std::net::Ipv4Addr::new(127, 0, 3, host), port)) else {
                continue;
            };
            s.send_to(payload, v).expect("send");
            sent += 1;
            if sent % 500 == 0 {
                eventually("uvs has taken every datagram sent", || taken() >= sent);
            }
        }
    }
    eventually("uvs has taken every datagram sent", || taken() >= sent);
    sent
}

#[test]
fn a_flood_of_unanswered_flows_locks_no_new_client_out() {
    const CAP: usize = 10_000;
    let d = Daemon::start_with(Zone::default(), &["--max-udp-flows", &CAP.to_string()]);
    // A server that answers its clients and ignores the flood's garbage.
    let server = UdpBackend::start("S", Reply::EchoIgnoring(b"flood"));
    let v = balance(&d, &["-s", "rr"], &[(server.addr, &[])]);
    let old = client("127.0.0.1");
    assert_eq!(exchange(&old, v, b"hello"), b"hello");

    // The case that was found: 30 000 datagrams from 150 source addresses.
    let taken = || {
        let (open, full, per_source, evicted, expired) = admission(&d);
        open + full + per_source + evicted + expired - 1
    };
    let sent = flood(v, 150, 200, b"flood", taken);
    assert!(sent > 29_000, "enough sources could be bound ({sent})");
    let (open, full, _, evicted, expired) = admission(&d);
    assert_eq!(open, CAP, "the table is full");
    assert_eq!(
        full, 0,
        "no new flow was refused: unanswered ones made room"
    );
    assert_eq!(evicted + expired, sent + 1 - CAP);

    // A new client is answered at its first datagram, and the old flow goes on.
    let new = client("127.0.0.5");
    assert_eq!(exchange(&new, v, b"new here"), b"new here");
    assert_eq!(exchange(&old, v, b"again"), b"again");
    // Its flow, answered, is not made room with by the next flood.
    flood(v, 150, 100, b"flood again", || {
        let (open, full, per_source, evicted, expired) = admission(&d);
        open + full + per_source + evicted + expired - 1 - sent - 1
    });
    assert_eq!(exchange(&new, v, b"still here"), b"still here");
    assert_eq!(exchange(&old, v, b"and here"), b"and here");
    assert_eq!(
        flows(&d)
            .iter()
            .filter(|f| f.0.starts_with("127.0.0.5:"))
            .count(),
        1
    );
}

#[test]
fn a_per_source_limit_holds_back_an_answered_flood() {
    let d = Daemon::start_with(
        Zone::default(),
        &["--max-udp-flows", "10000", "--udp-flows-per-source", "20"],
    );
    let echo = UdpBackend::start("E", Reply::Echo);
    let v = balance(&d, &["-s", "rr"], &[(echo.addr, &[])]);
    // Answered flows are never made room with; the per-source limit is what holds a
    // flood from few sources back.
    let taken = || {
        let (open, full, per_source, evicted, expired) = admission(&d);
        open + full + per_source + evicted + expired
    };
    let sent = flood(v, 150, 200, b"flood", taken);
    let (open, full, per_source, evicted, _) = admission(&d);
    assert_eq!(open, 150 * 20);
    assert_eq!(per_source, sent - 150 * 20);
    assert_eq!((full, evicted), (0, 0));
    let new = client("127.0.0.5");
    assert_eq!(exchange(&new, v, b"new here"), b"new here");
    let status = d.status();
    assert!(
        status.contains("UDP flows 3001 of at most 10000, 20 per client address"),
        "{status}"
    );
}

#[test]
fn a_second_daemon_cannot_share_a_udp_or_tcp_vip() {
    let first = Daemon::start();
    let second = Daemon::start_logged(&[]);
    let (a, b) = UdpBackend::pair(Reply::Name);
    let v = vip();
    balance_on(&first, v, &["-s", "rr"], &[(a.addr, &[])]);
    let tcp_backend = Backend::start("T", Behaviour::Name);
    let t = SocketAddr::from(([127, 0, 0, 1], v.port()));
    first.balance_on("-t", t, &["-s", "rr"], &[(tcp_backend.addr, &[])]);

    // The same services in a second daemon (same user, its own socket).
    second.add_service("-u", v, &["-s", "rr"]);
    second.set_server("-a", "-u", v, b.addr, &[]);
    second.add_service("-t", t, &["-s", "rr"]);
    for protocol in ["udp", "tcp"] {
        let line = format!("listen {protocol} {v}: cannot listen: Address already in use");
        eventually(&line, || second.status().contains(&line));
    }
    // Every new flow goes to the first daemon's server.
    for i in 0..20 {
        assert_eq!(name(&client("127.0.0.1"), v), "A", "flow {i}");
    }
    assert_eq!(ask(t, None), "T");
    assert_eq!(b.received.load(std::sync::atomic::Ordering::Relaxed), 0);
    let log = second.log();
    assert!(
        log.contains(&format!(
            "listen=-u {v} error=Address already in use (another process is bound to it)"
        )),
        "{log}"
    );
}

#[test]
fn a_udp_real_server_that_is_the_director_itself_gets_no_flow() {
    let d = Daemon::start();
    let (a, _b) = UdpBackend::pair(Reply::Name);
    let neighbour = balance(&d, &["-s", "rr"], &[(a.addr, &[])]);
    let v = vip();
    balance_on(&d, v, &["-s", "rr"], &[(v, &[])]);
    let before = {
        let (open, ..) = admission(&d);
        open
    };
    let c = client("127.0.0.1");
    for _ in 0..5 {
        assert!(!answered_within(&c, v, Duration::from_millis(200)));
    }
    assert_eq!(name(&client("127.0.0.1"), neighbour), "A");
    let (open, ..) = admission(&d);
    assert_eq!(open, before + 1, "only the neighbour's new flow");
    let status = d.status();
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("  -> {v} ")))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        line.ends_with("refused as loops back into this director 5"),
        "{line}"
    );
}

/// (templates held, their cap, ended to make room, clients without one) from `uvs
/// status` (zeros while there is none).
fn templates(d: &Daemon) -> (usize, usize, usize, usize) {
    let status = d.status();
    let Some(line) = status
        .lines()
        .find_map(|l| l.strip_prefix("persistence templates "))
    else {
        return (0, 0, 0, 0);
    };
    let n: Vec<usize> = line
        .split([' ', ',', ';'])
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(n.len(), 4, "{line}");
    (n[0], n[1], n[2], n[3])
}

#[test]
fn persistence_templates_stay_within_their_cap_under_a_flood_of_sources() {
    let d = Daemon::start_with(Zone::default(), &["--max-templates", "1000"]);
    // The case that was found: a persistent service whose server refuses, so flows end
    // at once and only the templates stay, one per source, for the whole timeout.
    let closed = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    let v = balance(&d, &["-s", "rr", "-p", "3600"], &[(closed, &[])]);
    // Templates are per client address: 3 000 addresses, 127.0.4.1 and on.
    let mut sent = 0;
    for i in 0..3000u32 {
        let ip = std::net::Ipv4Addr::new(127, 0, 4 + (i / 250) as u8, 1 + (i % 250) as u8);
        let s = UdpSocket::bind((ip, 0)).expect("a source socket");
        s.send_to(b"hello", v).expect("send");
        sent += 1;
        if sent % 500 == 0 {
            eventually("uvs has taken every datagram sent", || {
                let (held, _, evicted, without) = templates(&d);
                held + evicted + without >= sent
            });
        }
    }
    let (held, max, evicted, without) = templates(&d);
    assert_eq!((held, max), (1000, 1000));
    assert_eq!(evicted + without, sent - 1000);
    assert_eq!(
        without, 0,
        "every template was free to go: its flow had ended"
    );
    // A client of an answering service still gets its template, and keeps its server.
    let (a, b) = UdpBackend::pair(Reply::Name);
    let w = balance(
        &d,
        &["-s", "rr", "-p", "3600"],
        &[(a.addr, &[]), (b.addr, &[])],
    );
    let c = client("127.0.0.7");
    let first = name(&c, w);
    for _ in 0..5 {
        assert_eq!(name(&client("127.0.0.7"), w), first);
    }
}

#[test]
fn an_answered_flood_makes_room_with_its_own_flows_not_with_flows_in_use() {
    const CAP: usize = 2_000;
    let d = Daemon::start_with(Zone::default(), &["--max-udp-flows", &CAP.to_string()]);
    let echo = UdpBackend::start("E", Reply::Echo);
    let v = balance(&d, &["-s", "rr"], &[(echo.addr, &[])]);
    // A flow in use: datagrams both ways for more than two seconds.
    let stream = client("127.0.0.1");
    for i in 0..6 {
        assert_eq!(
            exchange(&stream, v, format!("tick {i}").as_bytes()),
            format!("tick {i}").as_bytes()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let port = stream.local_addr().unwrap().port();
    let mine = |d: &Daemon| {
        flows(d)
            .into_iter()
            .filter(|f| f.0 == format!("127.0.0.1:{port}"))
            .count()
    };
    assert_eq!(mine(&d), 1);
    // The case that was found: one answered datagram each from many sources fills the
    // table with flows that were answered, and used to lock new clients out for the
    // whole udp timeout (300 s).
    let taken = || {
        let (open, full, per_source, evicted, expired) = admission(&d);
        open + full + per_source + evicted + expired - 1
    };
    let sent = flood(v, 50, 100, b"one query", taken);
    let (open, full, _, evicted, _) = admission(&d);
    assert_eq!(open, CAP);
    assert_eq!(full, 0, "answered-once flows made room");
    assert!(evicted >= sent + 1 - CAP, "{evicted} evicted of {sent}");
    // A new client is answered at its first datagram; the flow in use is still there.
    let new = client("127.0.0.5");
    assert_eq!(exchange(&new, v, b"new here"), b"new here");
    assert_eq!(mine(&d), 1, "the flow in use was not made room with");
    assert_eq!(exchange(&stream, v, b"still mine"), b"still mine");
}

/// A deleted UDP service that carried no traffic closes its sockets at once: its port
/// is free again for anything else, and the same address can be added back.
#[test]
fn a_deleted_udp_service_without_traffic_frees_its_address() {
    let d = Daemon::start();
    let a = UdpBackend::start("A", Reply::Name);
    let v = balance(&d, &["-s", "rr"], &[(a.addr, &[])]);
    d.ok(&["-D", "-u", &v.to_string()]);
    eventually("the port is free again", || UdpSocket::bind(v).is_ok());
    // With a flow that has expired, alike.
    d.ok(&["--set", "0", "0", "1"]);
    balance_on(&d, v, &["-s", "rr"], &[(a.addr, &[])]);
    assert_eq!(name(&client("127.0.0.1"), v), "A");
    d.ok(&["-D", "-u", &v.to_string()]);
    eventually("the port is free again once the flow expired", || {
        UdpSocket::bind(v).is_ok()
    });
}

/// A UDP service at 0.0.0.0 added on the port of a listen rule shadows it: the rule's
/// socket drains (its live flow goes on, a new client gets no flow from it, and the
/// wildcard's failure to bind says the socket in the way is uvs's own), and once its
/// last flow has ended the socket closes and the wildcard service listens and serves.
#[test]
fn a_wildcard_service_shadowing_a_udp_listen_rule_listens_once_the_rule_has_drained() {
    common::in_own_network(|| {
        let d = Daemon::start();
        let (a, b) = UdpBackend::pair(Reply::Name);
        let port = free_udp_port();
        let at = SocketAddr::from(([127, 0, 0, 1], port));
        let any = SocketAddr::from(([0, 0, 0, 0], port));
        d.ok(&["-A", "-f", "7", "-s", "rr"]);
        d.ok(&["-a", "-f", "7", "-r", &a.addr.to_string(), "-m"]);
        d.ok(&["--add-listener", "-u", &at.to_string(), "--mark", "7"]);
        d.wait_listening_on("udp", at);
        let live = client("127.0.0.1");
        assert_eq!(name(&live, at), "A");

        d.ok(&["-A", "-u", &any.to_string(), "-s", "rr"]);
        d.ok(&[
            "-a",
            "-u",
            &any.to_string(),
            "-r",
            &b.addr.to_string(),
            "-m",
        ]);
        let held = format!(
            "listen udp {any}: cannot listen: Address already in use (by a socket of uvs's own"
        );
        eventually(&held, || d.status().contains(&held));
        assert!(
            !answered_within(&client("127.0.0.1"), at, Duration::from_millis(300)),
            "a draining address makes no new flow"
        );
        assert_eq!(name(&live, at), "A", "the live flow goes on");
        assert_eq!(b.received.load(std::sync::atomic::Ordering::Relaxed), 0);

        // The live flow ends (its server leaves; its client's next datagram finds it
        // gone), the rule's socket closes, the wildcard binds.
        d.ok(&["-d", "-f", "7", "-r", &a.addr.to_string()]);
        live.send_to(b"who", at).unwrap();
        d.wait_listening_on("udp", any);
        assert_eq!(name(&client("127.0.0.1"), at), "B");
    });
}
