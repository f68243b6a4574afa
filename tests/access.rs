//! Access lists on a real daemon (`uvs run -c`), clients bound to 127.0.0.2..9: exact
//! counts of what a global and a service list admit and refuse, per rule in `uvs
//! status` and the metrics; a reset against a silent drop; UDP datagrams of a denied
//! client dropped; a reload that changes a list, with and without `close_denied`; and
//! `uvs check`'s words for bad prefixes.

mod common;

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use common::{
    Backend, Behaviour, Daemon, Reply, UVS, UdpBackend, bounded, connect, echoed, eventually,
    http_get, is_root, read_all, sighup, text, vip, write_file,
};

/// How a refused or a served connection ended, as the client saw it.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// The server's answer (the backend's name).
    Served(String),
    /// A reset.
    Reset,
}

fn try_ask(v: SocketAddr, from: &str) -> Seen {
    // The kernel accepts before uvs decides; the reset may come before connect returns.
    let mut s = match connect(v, Some(from)) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => return Seen::Reset,
        Err(e) => panic!("from {from}: {e}"),
    };
    match read_all(&mut s) {
        Ok(bytes) => Seen::Served(String::from_utf8(bytes).unwrap()),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Seen::Reset,
        Err(e) => panic!("from {from}: {e}"),
    }
}

/// The config file's text with a TCP service at `v` to `backend` (and these keys), and
/// a `[global]` of these keys.
fn file(global: &str, v: SocketAddr, service: &str, backend: SocketAddr) -> String {
    format!(
        "[global]\n{global}\n\n[[service]]\ntcp = \"{v}\"\nscheduler = \"rr\"\n{service}\n\
         [[service.server]]\naddress = \"{backend}\"\n"
    )
}

/// Rewrites the file and reloads it (SIGHUP), once the reload is logged.
fn reload(d: &Daemon, path: &Path, contents: &str) {
    let before = d.log().matches("configuration reloaded").count();
    write_file(path, contents);
    sighup(&d.child);
    eventually("the reload is logged", || {
        d.log().matches("configuration reloaded").count() > before
    });
}

/// The lines of `uvs status` from the one that starts with `first`, `n` of them.
fn status_lines(d: &Daemon, first: &str, n: usize) -> Vec<String> {
    let status = d.status();
    let lines: Vec<String> = status
        .lines()
        .skip_while(|l| !l.starts_with(first))
        .take(n)
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), n, "{status}");
    lines
}

#[test]
fn a_global_and_a_service_list_admit_and_refuse_exactly_and_count_per_rule() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uvs.toml");
    let backend = Backend::start("A", Behaviour::Name);
    let v = vip();
    let contents = file(
        "deny = [\"127.0.0.5\"]",
        v,
        "allow = [\"127.0.0.0/29\"]\ndeny = [\"127.0.0.3/32\"]",
        backend.addr,
    );
    let d = Daemon::start_with_file(&path, &contents, &[]);
    d.wait_listening(v);
    for round in 0..2 {
        for n in 2..=9 {
            let from = format!("127.0.0.{n}");
            let expected = match n {
                // 3: the service's deny; 5: the global deny; 8, 9: in no allow prefix.
                3 | 5 | 8 | 9 => Seen::Reset,
                _ => Seen::Served("A".into()),
            };
            assert_eq!(try_ask(v, &from), expected, "round {round}, from {from}");
        }
    }
    assert_eq!(
        backend.accepted.load(std::sync::atomic::Ordering::Relaxed),
        8
    );
    assert_eq!(
        status_lines(&d, "global access list", 2),
        [
            "global access list: allow 0, deny 1, deny_action reset: refused by access list 2",
            "    deny 127.0.0.5/32: 2",
        ]
    );
    assert_eq!(
        status_lines(&d, "  access list", 3),
        [
            "  access list: allow 1, deny 1, deny_action reset: refused by access list 8",
            "    deny 127.0.0.3/32: 2",
            "    not in allow: 4",
        ]
    );
    let (_, metrics) = http_get(d.metrics_address(), "GET", "/metrics");
    let labels = format!(
        "proto=\"TCP\",local_address=\"127.0.0.1\",local_port=\"{}\",local_mark=\"\"",
        v.port()
    );
    for line in [
        format!("uvs_service_refused_access_list_total{{{labels}}} 8"),
        format!("uvs_access_rule_refused_total{{{labels},list=\"deny\",rule=\"127.0.0.3/32\"}} 2"),
        format!("uvs_access_rule_refused_total{{{labels},list=\"allow\",rule=\"\"}} 4"),
        "uvs_global_access_rule_refused_total{list=\"deny\",rule=\"127.0.0.5/32\"} 2".into(),
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

#[test]
fn a_dropped_client_hears_nothing_where_uvs_may_repair_its_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uvs.toml");
    let backend = Backend::start("A", Behaviour::Name);
    let v = vip();
    let contents = file(
        "",
        v,
        "deny = [\"127.0.0.3\"]\ndeny_action = \"drop\"",
        backend.addr,
    );
    let d = Daemon::start_with_file(&path, &contents, &[]);
    d.wait_listening(v);
    assert_eq!(try_ask(v, "127.0.0.2"), Seen::Served("A".into()));
    let mut s = connect(v, Some("127.0.0.3")).unwrap();
    eventually("the refusal is counted", || {
        d.status().contains("refused by access list 1")
    });
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = [0u8; 16];
    let got = s.read(&mut buf);
    if is_root() {
        // TCP_REPAIR: no data, no FIN, no RST; the client waits in vain.
        match got {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            other => panic!("a silent drop said something: {other:?}"),
        }
    } else {
        // Without CAP_NET_ADMIN the reset goes with a TTL of 1: on loopback (no router)
        // it still arrives.
        println!("not root: uvs cannot repair the socket; its reset (TTL 1) arrives on loopback");
        assert_eq!(
            got.map_err(|e| e.kind()),
            Err(ErrorKind::ConnectionReset),
            "the fallback resets"
        );
    }
    assert_eq!(
        status_lines(&d, "  access list", 2),
        [
            "  access list: allow 0, deny 1, deny_action drop: refused by access list 1",
            "    deny 127.0.0.3/32: 1",
        ]
    );
}

#[test]
fn a_denied_clients_datagrams_are_dropped_and_counted_and_an_allowed_one_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uvs.toml");
    let backend = UdpBackend::start("A", Reply::Echo);
    let v = vip();
    let contents = format!(
        "[[service]]\nudp = \"{v}\"\nscheduler = \"rr\"\ndeny = [\"127.0.0.3\"]\n\
         [[service.server]]\naddress = \"{}\"\n",
        backend.addr
    );
    let d = Daemon::start_with_file(&path, &contents, &[]);
    d.wait_listening_on("udp", v);
    let denied = UdpSocket::bind("127.0.0.3:0").unwrap();
    // One at a time: datagrams of one client read in one batch make one flow (here:
    // one refusal).
    for n in 1..=3 {
        denied.send_to(b"let me in", v).unwrap();
        let counted = format!("refused by access list {n}");
        eventually(&counted, || d.status().contains(&counted));
    }
    let allowed = UdpSocket::bind("127.0.0.2:0").unwrap();
    allowed
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    allowed.send_to(b"hello", v).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = allowed
        .recv_from(&mut buf)
        .expect("the allowed client's echo");
    assert_eq!(&buf[..n], b"hello");
    denied
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(
        denied.recv_from(&mut buf).is_err(),
        "nothing for the denied"
    );
    assert_eq!(
        backend.received.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        status_lines(&d, "  access list", 2),
        [
            "  access list: allow 0, deny 1: refused by access list 3",
            "    deny 127.0.0.3/32: 3",
        ]
    );
}

#[test]
fn a_reload_keeps_counts_of_unchanged_lists_and_established_connections_of_now_denied_clients() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uvs.toml");
    let backend = Backend::start("E", Behaviour::Echo);
    let v = vip();
    let lists = "deny = [\"127.0.0.3\"]";
    let d = Daemon::start_with_file(&path, &file("", v, lists, backend.addr), &[]);
    d.wait_listening(v);
    assert_eq!(try_ask(v, "127.0.0.3"), Seen::Reset);
    let mut established = connect(v, Some("127.0.0.4")).unwrap();
    assert_eq!(echoed(&mut established, b"one"), b"one");
    // The same lists, the service edited otherwise: the counts go on.
    let edited = file("", v, lists, backend.addr).replace("\"rr\"", "\"wrr\"");
    reload(&d, &path, &edited);
    eventually("the edit is in force", || d.status().contains(" wrr"));
    assert_eq!(
        status_lines(&d, "  access list", 2),
        [
            "  access list: allow 0, deny 1, deny_action reset: refused by access list 1",
            "    deny 127.0.0.3/32: 1",
        ]
    );
    // Now .4 is denied too: its established connection goes on, a new one is refused.
    let more = "deny = [\"127.0.0.3\", \"127.0.0.4\"]";
    reload(&d, &path, &file("", v, more, backend.addr));
    assert_eq!(try_ask(v, "127.0.0.4"), Seen::Reset);
    assert_eq!(echoed(&mut established, b"two"), b"two");
    // A changed list counts from zero; the service's total goes on.
    assert_eq!(
        status_lines(&d, "  access list", 2),
        [
            "  access list: allow 0, deny 2, deny_action reset: refused by access list 2",
            "    deny 127.0.0.4/32: 1",
        ]
    );
}

#[test]
fn with_close_denied_a_reload_closes_the_connections_and_flows_of_now_denied_clients() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uvs.toml");
    let backend = Backend::start("E", Behaviour::Echo);
    let udp_backend = UdpBackend::start("U", Reply::Echo);
    let (v, u) = (vip(), vip());
    let with = |deny: &str| {
        format!(
            "{}\n[[service]]\nudp = \"{u}\"\ndeny = {deny}\nclose_denied = true\n\
             [[service.server]]\naddress = \"{}\"\n",
            file(
                "",
                v,
                &format!("deny = {deny}\nclose_denied = true"),
                backend.addr
            ),
            udp_backend.addr
        )
    };
    let d = Daemon::start_with_file(&path, &with("[\"127.0.0.3\"]"), &[]);
    d.wait_listening(v);
    d.wait_listening_on("udp", u);
    let mut doomed = connect(v, Some("127.0.0.4")).unwrap();
    let mut kept = connect(v, Some("127.0.0.6")).unwrap();
    assert_eq!(echoed(&mut doomed, b"one"), b"one");
    assert_eq!(echoed(&mut kept, b"one"), b"one");
    let flow = UdpSocket::bind("127.0.0.4:0").unwrap();
    flow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    flow.send_to(b"one", u).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(flow.recv_from(&mut buf).map(|(n, _)| n).unwrap(), 3);

    reload(&d, &path, &with("[\"127.0.0.3\", \"127.0.0.4\"]"));
    // The denied client's connection ends (bounded by its read timeout); the other's
    // still carries bytes.
    match doomed.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("the now denied connection is still open: {other:?}"),
    }
    assert_eq!(echoed(&mut kept, b"two"), b"two");
    eventually("the flow is closed and counted", || {
        d.status().matches("refused by access list 1").count() == 2
    });
    // Its next datagram is a new flow, refused.
    flow.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    flow.send_to(b"two", u).unwrap();
    eventually("the datagram is refused", || {
        d.status().contains("refused by access list 2")
    });
    assert!(flow.recv_from(&mut buf).is_err(), "nothing for the denied");
    let status = d.status();
    let rules: Vec<&str> = status
        .lines()
        .filter(|l| l.starts_with("    deny "))
        .collect();
    assert_eq!(
        rules,
        ["    deny 127.0.0.4/32: 1", "    deny 127.0.0.4/32: 2"],
        "TCP (closed), then UDP (closed, then refused)\n{status}"
    );
    let closed = d.log();
    assert!(
        closed.contains("2 established connections or flows of clients now denied closed"),
        "{closed}"
    );
}

/// `uvs check -c PATH`.
fn check(path: &Path) -> std::process::Output {
    let mut cmd = std::process::Command::new(UVS);
    cmd.args(["check", "-c"]).arg(path);
    bounded(cmd, "uvs check")
}

#[test]
fn check_names_each_bad_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    write_file(
        &bad,
        r#"[global]
deny = "10.0.0.0/8"

[[service]]
tcp = "127.0.0.1:80"
allow = ["10.0.0.1/8", "10.0.0.0/33", "example.com", 7, "::/129"]
deny = ["fe80::1/10"]
[[service.server]]
address = "127.0.0.1:8080"
"#,
    );
    let out = check(&bad);
    assert_eq!(out.status.code(), Some(1));
    let b = bad.display();
    assert_eq!(
        text(&out.stderr),
        format!(
            "{b}:2:8: global.deny: expected an array of CIDR prefixes, as [\"10.0.0.0/8\", \"2001:db8::/32\"], found the string \"10.0.0.0/8\"\n\
             {b}:6:10: service[0].allow[0]: \"10.0.0.1/8\" is not a CIDR prefix: host bits are set (the prefix is 10.0.0.0/8)\n\
             {b}:6:24: service[0].allow[1]: \"10.0.0.0/33\" is not a CIDR prefix: the prefix length is not a number from 0 to 32\n\
             {b}:6:39: service[0].allow[2]: \"example.com\" is not a CIDR prefix: not an IPv4 or IPv6 address\n\
             {b}:6:54: service[0].allow[3]: expected a CIDR prefix, as \"10.0.0.0/8\", found the integer 7\n\
             {b}:6:57: service[0].allow[4]: \"::/129\" is not a CIDR prefix: the prefix length is not a number from 0 to 128\n\
             {b}:7:9: service[0].deny[0]: \"fe80::1/10\" is not a CIDR prefix: host bits are set (the prefix is fe80::/10)\n\
             uvs: {b}: 7 problems\n"
        )
    );
}
