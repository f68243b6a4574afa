//! Per-client limits (`limits = { ... }`, `table::sources`) over real sockets on
//! loopback, clients bound to their own 127.x.y.z addresses: exact counts of accepted
//! and refused connections and flows per source, the new-connections-per-second bucket
//! against a bound computed from the time the test measured, a flood from one source
//! that leaves another whole, prefixes that make one source of two addresses, the
//! source table within its cap under thousands of sources, global limits counted over
//! two services, and `uvs check`'s words for bad limits.

mod common;

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    Backend, Behaviour, Daemon, Reply, UVS, UdpBackend, bounded, connect, echoed, eventually,
    read_all, text, write_file,
};

fn config_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uvs.toml");
    (dir, path)
}

/// A daemon from `file`, once it listens on each of `tcp` and `udp`.
fn daemon(path: &std::path::Path, file: &str, tcp: &[SocketAddr], udp: &[SocketAddr]) -> Daemon {
    let d = Daemon::start_with_file(path, file, &[]);
    for v in tcp {
        d.wait_listening(*v);
    }
    for v in udp {
        d.wait_listening_on("udp", *v);
    }
    d
}

/// A TCP service on `vip` with one echoing real server and these extra lines.
fn tcp_service(vip: SocketAddr, server: SocketAddr, extra: &str) -> String {
    format!(
        "[[service]]\ntcp = \"{vip}\"\nscheduler = \"rr\"\n{extra}\n\
         [[service.server]]\naddress = \"{server}\"\n"
    )
}

/// A connection from `from` through `vip` to an echoing server, if it is admitted (an
/// echo comes back); None if it was refused (reset before any byte).
fn open(vip: SocketAddr, from: &str) -> Option<TcpStream> {
    use std::io::{Read, Write};
    let mut s = match connect(vip, Some(from)) {
        Ok(s) => s,
        // The reset can come before connect(2) has told its end.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
        Err(e) => panic!("connect to the VIP: {e}"),
    };
    let mut back = [0u8; 4];
    match s.write_all(b"ping").and_then(|()| s.read_exact(&mut back)) {
        Ok(()) => {
            assert_eq!(&back, b"ping");
            Some(s)
        }
        Err(_) => None,
    }
}

/// The service line `  limits: ...` of `uvs status`.
fn limits_line(d: &Daemon) -> String {
    let status = d.status();
    status
        .lines()
        .find(|l| l.starts_with("  limits: "))
        .unwrap_or_else(|| panic!("no limits line in:\n{status}"))
        .trim()
        .to_string()
}

/// TCP connections the daemon's workers hold now (`uvs status`): each gives its place
/// under the limits back before it is counted out here.
fn connections_held(d: &Daemon) -> usize {
    let status = d.status();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("TCP connections per worker "))
        .unwrap_or_else(|| panic!("no worker line in:\n{status}"));
    line.split(',')
        .next()
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse::<usize>().unwrap())
        .sum()
}

/// The `N` of `sources tracked N/CAP` in `line`.
fn tracked(line: &str) -> usize {
    let after = line
        .split("sources tracked ")
        .nth(1)
        .unwrap_or_else(|| panic!("no sources tracked in {line}"));
    after.split('/').next().unwrap().parse().unwrap()
}

#[test]
fn connections_per_source_counts_each_source_exactly() {
    let (_dir, path) = config_path();
    let echo = Backend::start("E", Behaviour::Echo);
    let vip = common::vip();
    let file = tcp_service(vip, echo.addr, "limits = { connections_per_source = 2 }");
    let d = daemon(&path, &file, &[vip], &[]);
    let first = open(vip, "127.0.0.2").expect("the first of .2");
    let _second = open(vip, "127.0.0.2").expect("the second of .2");
    assert!(open(vip, "127.0.0.2").is_none(), "a third of .2 is reset");
    let _others = [
        open(vip, "127.0.0.3").expect("the first of .3"),
        open(vip, "127.0.0.3").expect("the second of .3"),
    ];
    assert_eq!(
        limits_line(&d),
        "limits: connections_per_source 2 (sources /32 and /64): refused by limits 1, \
         sources tracked 2/65536"
    );
    // One of .2's closes: once its connection is gone, .2's next gets in.
    drop(first);
    eventually("the closed connection gone", || connections_held(&d) == 3);
    let _third = open(vip, "127.0.0.2").expect("room again for .2");
    assert!(open(vip, "127.0.0.2").is_none());
    assert!(open(vip, "127.0.0.3").is_none());
    assert!(limits_line(&d).contains("refused by limits 3,"));
}

#[test]
fn flows_per_source_drops_and_counts_each_flow_over() {
    let (_dir, path) = config_path();
    let server = UdpBackend::start_on("127.0.0.1:0", "A", Reply::Name);
    let vip = SocketAddr::from(([127, 0, 0, 1], common::free_udp_port()));
    let file = format!(
        "[timeouts]\nudp = \"1s\"\n\n[[service]]\nudp = \"{vip}\"\nscheduler = \"rr\"\n\
         limits = {{ flows_per_source = 2 }}\n[[service.server]]\naddress = \"{}\"\n",
        server.addr
    );
    let d = daemon(&path, &file, &[], &[vip]);
    // A flow of its own per socket: `wait` is how long an answer may take.
    let flow = |from: &str, wait: Duration| {
        let s = UdpSocket::bind((from, 0)).unwrap();
        s.set_read_timeout(Some(wait)).unwrap();
        s.send_to(b"hello", vip).unwrap();
        let mut buf = [0u8; 16];
        let answered = s.recv(&mut buf).is_ok();
        (s, answered)
    };
    let long = Duration::from_secs(10);
    let _a = [flow("127.0.0.2", long), flow("127.0.0.2", long)];
    assert!(_a.iter().all(|(_, answered)| *answered));
    let (_, answered) = flow("127.0.0.2", Duration::from_millis(300));
    assert!(!answered, "a third flow of .2 is dropped");
    let _b = [flow("127.0.0.3", long), flow("127.0.0.3", long)];
    assert!(_b.iter().all(|(_, answered)| *answered));
    eventually("the drop counted", || {
        limits_line(&d)
            == "limits: flows_per_source 2 (sources /32 and /64): refused by limits 1, \
                sources tracked 2/65536"
    });
    assert_eq!(
        server.received.load(std::sync::atomic::Ordering::Relaxed),
        4
    );
    // The flows end at their idle timeout, giving their places back.
    eventually("the flows ended", || d.status().contains("UDP flows 0 of"));
    let (_s, answered) = flow("127.0.0.2", long);
    assert!(answered, "room again for .2");
}

#[test]
fn new_connections_per_second_keep_to_the_bucket() {
    let (_dir, path) = config_path();
    let echo = Backend::start("E", Behaviour::Echo);
    let vip = common::vip();
    let rate = 5;
    let file = tcp_service(
        vip,
        echo.addr,
        &format!("limits = {{ new_per_second_per_source = {rate} }}"),
    );
    let d = daemon(&path, &file, &[vip], &[]);
    let attempts = 40;
    let start = Instant::now();
    let accepted = (0..attempts)
        .filter(|_| open(vip, "127.0.0.2").is_some())
        .count();
    let elapsed = start.elapsed();
    // The daemon saw the first and last connection within the span measured here (its
    // clock counts whole milliseconds: one more); at most `rate` at first and `rate`
    // per second since.
    let most = rate + (((elapsed.as_millis() as usize) + 1) * rate).div_ceil(1000);
    assert!(
        (rate..=most).contains(&accepted),
        "{accepted} of {attempts} accepted in {elapsed:?}: expected {rate} to {most}"
    );
    eventually("every refusal counted", || {
        limits_line(&d).contains(&format!("refused by limits {},", attempts - accepted))
    });
    // Another source has a bucket of its own.
    assert!(open(vip, "127.0.0.3").is_some());
}

#[test]
fn a_flood_from_one_source_does_not_hurt_another() {
    let (_dir, path) = config_path();
    let echo = Backend::start("E", Behaviour::Echo);
    let vip = common::vip();
    let file = tcp_service(vip, echo.addr, "limits = { connections_per_source = 4 }");
    let d = daemon(&path, &file, &[vip], &[]);
    let flood = 300;
    let flooder = std::thread::spawn(move || {
        let held: Vec<TcpStream> = (0..4)
            .map(|_| open(vip, "127.0.0.2").expect("the flooder's first four"))
            .collect();
        let refused = (0..flood)
            .filter(|_| open(vip, "127.0.0.2").is_none())
            .count();
        drop(held);
        refused
    });
    // Meanwhile .3 moves 64 KiB through each of 20 connections, one after another.
    let payload: Vec<u8> = (0..65_536u32).map(|i| (i * 7 + i / 251) as u8).collect();
    for _ in 0..20 {
        let mut s = connect(vip, Some("127.0.0.3")).expect("connect from .3");
        assert!(echoed(&mut s, &payload) == payload, "bytes intact");
    }
    let refused = flooder.join().unwrap();
    assert_eq!(refused, flood, "every one over the flooder's four is reset");
    // Every refusal the daemon counted is one of the flooder's: .3 had none.
    eventually("the flood counted", || {
        limits_line(&d).contains(&format!("refused by limits {flood},"))
    });
}

#[test]
fn a_prefix_makes_one_source_of_two_addresses() {
    let echo = Backend::start("E", Behaviour::Echo);
    for (prefix, third_of_dot3) in [(24, false), (32, true)] {
        let (_dir, path) = config_path();
        let vip = common::vip();
        let file = tcp_service(
            vip,
            echo.addr,
            &format!("limits = {{ connections_per_source = 2, source_prefix_v4 = {prefix} }}"),
        );
        let d = daemon(&path, &file, &[vip], &[]);
        let _held = [
            open(vip, "127.0.0.2").expect("the first of .2"),
            open(vip, "127.0.0.3").expect("the first of .3"),
        ];
        assert_eq!(open(vip, "127.0.0.3").is_some(), third_of_dot3, "/{prefix}");
        let line = limits_line(&d);
        let sources = if third_of_dot3 { 2 } else { 1 };
        assert_eq!(tracked(&line), sources, "/{prefix}: {line}");
    }
}

#[test]
fn the_source_table_stays_within_its_cap_under_thousands_of_sources() {
    let (_dir, path) = config_path();
    let named = Backend::start("N", Behaviour::Name);
    let vip = common::vip();
    let file = tcp_service(
        vip,
        named.addr,
        "limits = { connections_per_source = 5, max_sources = 1000 }",
    );
    let d = daemon(&path, &file, &[vip], &[]);
    let sources = 3000u32;
    for i in 0..sources {
        // 127.1.0.0 on: each client its own address.
        let [_, _, b, c] = i.to_be_bytes();
        let from = format!("127.1.{b}.{c}");
        let mut s = connect(vip, Some(&from)).expect("connect");
        assert_eq!(read_all(&mut s).expect("read"), b"N", "from {from}");
        if i % 500 == 499 {
            let line = limits_line(&d);
            assert!(tracked(&line) <= 1000, "after {} sources: {line}", i + 1);
        }
    }
    let line = limits_line(&d);
    assert_eq!(
        line,
        "limits: connections_per_source 5 (sources /32 and /64): refused by limits 0, \
         sources tracked 1000/1000"
    );
    // And the daemon still serves, old sources and new.
    let mut s = connect(vip, Some("127.1.0.0")).unwrap();
    assert_eq!(read_all(&mut s).unwrap(), b"N");
    let mut s = connect(vip, Some("127.0.0.2")).unwrap();
    assert_eq!(read_all(&mut s).unwrap(), b"N");
}

#[test]
fn global_limits_count_over_two_services() {
    let (_dir, path) = config_path();
    let echo = Backend::start("E", Behaviour::Echo);
    let (one, two) = (common::vip(), common::vip());
    let file = format!(
        "[global]\nlimits = {{ connections_per_source = 2 }}\n\n{}\n{}",
        tcp_service(one, echo.addr, ""),
        tcp_service(two, echo.addr, "")
    );
    let d = daemon(&path, &file, &[one, two], &[]);
    let _held = [
        open(one, "127.0.0.2").expect("to the first service"),
        open(two, "127.0.0.2").expect("to the second service"),
    ];
    assert!(open(one, "127.0.0.2").is_none(), "a third over both");
    assert!(open(two, "127.0.0.2").is_none(), "a fourth over both");
    let _other = open(two, "127.0.0.3").expect("another source");
    let status = d.status();
    assert!(
        status.contains(
            "\nglobal limits: connections_per_source 2 (sources /32 and /64), deny_action \
             reset: refused by limits 2, sources tracked 2/65536\n"
        ),
        "{status}"
    );
    // Each refusal counted on its service too.
    let refused: Vec<&str> = status
        .lines()
        .filter(|l| l.trim() == "refused by limits 1")
        .collect();
    assert_eq!(refused.len(), 2, "{status}");
    let (_, metrics) = common::http_get(d.metrics_address(), "GET", "/metrics");
    assert!(metrics.contains("\nuvs_limits_sources 2\n"), "{metrics}");
    assert!(
        metrics.contains("\nuvs_limits_refused_total 2\n"),
        "{metrics}"
    );
}

#[test]
fn check_says_what_is_wrong_with_limits() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    write_file(
        &bad,
        r#"[global]
limits = { connections_per_source = -1 }

[[service]]
tcp = "127.0.0.1:80"
scheduler = "rr"
limits = { connections_per_source = 20000000, source_prefix_v4 = 33, per_source = 3 }

[[service]]
tcp = "127.0.0.1:81"
scheduler = "rr"
limits = { source_prefix_v4 = 24 }

[[service]]
udp = "127.0.0.1:82"
scheduler = "rr"
limits = { flows_per_source = 0, source_prefix_v6 = 129, max_sources = 0 }
"#,
    );
    let mut cmd = Command::new(UVS);
    cmd.args(["check", "-c"]).arg(&bad);
    let out = bounded(cmd, "uvs check");
    assert_eq!(out.status.code(), Some(1));
    let b = bad.display();
    assert_eq!(
        text(&out.stderr),
        format!(
            "{b}:2:37: global.limits.connections_per_source: expected an integer from 0 to 16777216, found the integer -1\n\
             {b}:7:37: service[0].limits.connections_per_source: expected an integer from 0 to 16777216, found the integer 20000000\n\
             {b}:7:66: service[0].limits.source_prefix_v4: expected an integer from 0 to 32, found the integer 33\n\
             {b}:7:70: service[0].limits.per_source: unknown key\n\
             {b}:12:10: service[1].limits: sets no limit: give connections_per_source, new_per_second_per_source or flows_per_source above 0\n\
             {b}:17:10: service[2].limits: sets no limit: give connections_per_source, new_per_second_per_source or flows_per_source above 0\n\
             {b}:17:53: service[2].limits.source_prefix_v6: expected an integer from 0 to 128, found the integer 129\n\
             {b}:17:72: service[2].limits.max_sources: expected an integer from 1 to 16777216, found the integer 0\n\
             uvs: {b}: 8 problems\n"
        )
    );
}
