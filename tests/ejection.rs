//! Passive ejection through the uvs binary, over real servers on 127.0.0.x: a server
//! that starts refusing is out after exactly `failures` refusals (sequential
//! connections, counted by the daemon), no client is reset meanwhile or after, it is
//! back once its ejection time is up, or sooner when its health check passes; at most
//! the configured share of the servers is ever out; a UDP server whose port is closed
//! (ICMP port unreachable) is ejected alike.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{Backend, Behaviour, Daemon, connect, eventually, vip};

/// The lines `uvs status` gives real server `server`: its `->` line and those under it.
fn server_block(status: &str, server: SocketAddr) -> String {
    let head = format!("  -> {server} ");
    let mut lines = status.lines().skip_while(|l| !l.starts_with(&head));
    let Some(first) = lines.next() else {
        panic!("{server} is not in\n{status}");
    };
    let mut block = first.to_string();
    for l in lines.take_while(|l| l.starts_with("     ")) {
        block.push('\n');
        block.push_str(l);
    }
    block
}

/// The number after `word` in `text` ("refused 3" gives 3).
fn number_after(text: &str, word: &str) -> u64 {
    let at = text
        .find(word)
        .unwrap_or_else(|| panic!("no {word:?} in\n{text}"));
    text[at + word.len()..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after {word:?} in\n{text}"))
}

/// (refused connects the daemon counted, ejected now) of `server`.
fn refusals(d: &Daemon, server: SocketAddr) -> (u64, bool) {
    let block = server_block(&d.status(), server);
    let refused = if block.contains("port unreachable") {
        number_after(&block, "port unreachable")
    } else {
        number_after(&block, "refused")
    };
    (refused, block.contains("ejected ("))
}

/// One client through `vip`: the name of the server that answered; an error if the
/// client was reset or could not connect.
fn try_ask(vip: SocketAddr) -> std::io::Result<String> {
    let mut s = connect(vip, None)?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    if answer.is_empty() {
        return Err(std::io::Error::other("closed without an answer"));
    }
    Ok(answer)
}

/// A service on `v` with scheduler rr, `ejection` (a TOML inline table), `extra` lines
/// in the service's table, and these real servers (masquerading).
fn config(v: SocketAddr, ejection: &str, extra: &str, servers: &[SocketAddr]) -> String {
    let mut text =
        format!("[[service]]\ntcp = \"{v}\"\nscheduler = \"rr\"\nejection = {ejection}\n{extra}\n");
    for s in servers {
        text.push_str(&format!(
            "\n[[service.server]]\naddress = \"{s}\"\nforward = \"masq\"\n"
        ));
    }
    text
}

fn start(dir: &Path, config: &str) -> Daemon {
    Daemon::start_with_file(&dir.join("uvs.toml"), config, &[])
}

/// Three servers on 127.0.0.2, .3 and .4, named A, B, C.
fn three() -> [Backend; 3] {
    [
        Backend::start_on("127.0.0.2:0", "A", Behaviour::Name),
        Backend::start_on("127.0.0.3:0", "B", Behaviour::Name),
        Backend::start_on("127.0.0.4:0", "C", Behaviour::Name),
    ]
}

/// Stops `backend` and waits until its port refuses (its thread drops the listener).
fn refuse(backend: Backend) -> SocketAddr {
    let addr = backend.addr;
    drop(backend);
    eventually("the stopped server's port refuses", || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err()
    });
    addr
}

/// Sequential clients through `v` until `server` is ejected, each served (never reset):
/// the daemon's count of refusals by `server` when that happened, checked after every
/// client, so that the ejection is seen at the very failure that made it.
fn clients_until_ejected(d: &Daemon, v: SocketAddr, server: SocketAddr) -> u64 {
    for i in 0..60 {
        let answer = try_ask(v).unwrap_or_else(|e| panic!("client {i} was not served: {e}"));
        assert_ne!(answer, "A", "the refusing server answered");
        let (refused, ejected) = refusals(d, server);
        if ejected {
            return refused;
        }
    }
    panic!("{server} was never ejected:\n{}", d.status());
}

#[test]
fn a_refusing_server_is_out_after_exactly_n_failures_and_back_after_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let [a, b, c] = three();
    let v = vip();
    let a_addr = a.addr;
    let d = start(
        dir.path(),
        &config(
            v,
            "{ failures = 3, base_time = \"1s\", max_share = 0.5 }",
            "",
            &[a.addr, b.addr, c.addr],
        ),
    );
    d.wait_listening(v);
    // All three serve first.
    let names: std::collections::BTreeSet<String> =
        (0..6).map(|_| try_ask(v).expect("served")).collect();
    assert_eq!(names.len(), 3, "{names:?}");

    refuse(a);
    assert_eq!(
        clients_until_ejected(&d, v, a_addr),
        3,
        "ejected at the third refusal"
    );
    let status = d.status();
    assert!(status.contains("ejections so far 1"), "{status}");
    // Out, then back when its second is up (polled, bounded): a later client meanwhile
    // is never reset and never tries it.
    let back = Backend::start_on(&a_addr.to_string(), "A", Behaviour::Name);
    eventually("the ejection time passes", || {
        let _ = try_ask(v).expect("served while the server is out");
        !refusals(&d, a_addr).1
    });
    assert_eq!(refusals(&d, a_addr).0, 3, "never tried while out");
    eventually("the readmitted server serves again", || {
        try_ask(v).expect("served") == "A"
    });
    assert!(back.accepted.load(std::sync::atomic::Ordering::Relaxed) > 0);
    let log = d.log();
    assert!(
        log.contains(&format!(
            "real server {a_addr} of tcp {v}: ejected for 1 s after 3 consecutive failed connects (ejection 1 in a row)"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "real server {a_addr} of tcp {v}: back from ejection (its time is up)"
        )),
        "{log}"
    );
}

#[test]
fn a_good_health_check_readmits_an_ejected_server_before_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let [a, b, c] = three();
    let v = vip();
    let a_addr = a.addr;
    // An hour out, unless the check (which needs 100 failures to take it down) passes.
    let check = "\n[service.check]\ntype = \"connect\"\ninterval = \"1s\"\ntimeout = \"1s\"\nfailures = 100\n";
    let d = start(
        dir.path(),
        &config(
            v,
            "{ failures = 2, base_time = \"1h\", max_share = 0.5 }",
            check,
            &[a.addr, b.addr, c.addr],
        ),
    );
    d.wait_listening(v);
    refuse(a);
    assert_eq!(clients_until_ejected(&d, v, a_addr), 2);
    let status = server_block(&d.status(), a_addr);
    assert!(
        status.contains("ejected (3600s left)") || status.contains("ejected (3599s left)"),
        "{status}"
    );
    let _back = Backend::start_on(&a_addr.to_string(), "A", Behaviour::Name);
    eventually("the good check readmits it", || !refusals(&d, a_addr).1);
    eventually("the readmitted server serves again", || {
        try_ask(v).expect("served") == "A"
    });
    assert!(
        d.log().contains(&format!(
            "real server {a_addr} of tcp {v}: back from ejection (its health check passed)"
        )),
        "{}",
        d.log()
    );
}

#[test]
fn at_most_the_configured_share_is_out_and_no_client_is_reset() {
    let dir = tempfile::tempdir().unwrap();
    let [a, b, c] = three();
    let e = Backend::start_on("127.0.0.5:0", "E", Behaviour::Name);
    let v = vip();
    let d = start(
        dir.path(),
        &config(
            v,
            "{ failures = 1, base_time = \"1h\", max_share = 0.5 }",
            "",
            &[a.addr, b.addr, c.addr, e.addr],
        ),
    );
    d.wait_listening(v);
    // Three of four fail at once; half of four may be out.
    let failing = [refuse(a), refuse(b), refuse(c)];
    let mut most = 0;
    for i in 0..40 {
        let answer = try_ask(v).unwrap_or_else(|err| panic!("client {i} was reset: {err}"));
        assert_eq!(answer, "E");
        let status = d.status();
        let out = failing
            .iter()
            .filter(|s| server_block(&status, **s).contains("ejected ("))
            .count();
        assert!(out <= 2, "more than the share out:\n{status}");
        most = most.max(out);
    }
    assert_eq!(most, 2, "{}", d.status());
    assert!(
        !server_block(&d.status(), e.addr).contains("ejected"),
        "the last usable server stays"
    );
    // One failure, said in the singular.
    let status = d.status();
    assert!(
        status.contains("  ejection: after 1 failure in a row,"),
        "{status}"
    );
    assert!(status.contains("), 1 consecutive failure\n"), "{status}");
}

#[test]
fn a_server_removed_while_ejected_frees_its_place_in_the_share() {
    let dir = tempfile::tempdir().unwrap();
    let [a, b, c] = three();
    let e = Backend::start_on("127.0.0.5:0", "E", Behaviour::Name);
    let f = Backend::start_on("127.0.0.6:0", "F", Behaviour::Name);
    let v = vip();
    let d = start(
        dir.path(),
        &config(
            v,
            "{ failures = 1, base_time = \"1h\", max_share = 0.5 }",
            "",
            &[a.addr, b.addr, c.addr, e.addr, f.addr],
        ),
    );
    d.wait_listening(v);
    // Two of five out: the share is full.
    let (a_addr, b_addr) = (refuse(a), refuse(b));
    clients_until_ejected(&d, v, a_addr);
    clients_until_ejected(&d, v, b_addr);
    // A leaves while out: of the four left one is out, so another may go.
    d.ok(&["-d", "-t", &v.to_string(), "-r", &a_addr.to_string()]);
    let c_addr = refuse(c);
    clients_until_ejected(&d, v, c_addr);
    let log = d.log();
    assert!(
        !log.contains(&format!(
            "real server {a_addr} of tcp {v}: back from ejection"
        )),
        "{log}"
    );
}

#[test]
fn a_udp_server_whose_port_is_closed_is_ejected_after_n_icmp_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = common::UdpBackend::start_on("127.0.0.3:0", "B", common::Reply::Name);
    // Nothing listens there: each datagram comes back as ICMP port unreachable.
    let closed = SocketAddr::from(([127, 0, 0, 2], common::free_port()));
    let v = vip();
    let text = format!(
        "[[service]]\nudp = \"{v}\"\nscheduler = \"rr\"\n\
         ejection = {{ failures = 3, base_time = \"1h\", max_share = 0.5 }}\n\n\
         [[service.server]]\naddress = \"{closed}\"\nforward = \"masq\"\n\n\
         [[service.server]]\naddress = \"{g}\"\nforward = \"masq\"\n",
        g = good.addr
    );
    let d = start(dir.path(), &text);
    d.wait_listening_on("udp", v);
    let mut answered = 0;
    for i in 0..40 {
        // A new client (a new flow) each time, which waits for its failure to be
        // counted or its answer.
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let before = refusals(&d, closed).0;
        client.send_to(format!("q{i}").as_bytes(), v).unwrap();
        let mut buf = [0u8; 16];
        eventually("an answer, or the ICMP error counted", || {
            if let Ok((n, _)) = client.recv_from(&mut buf) {
                assert_eq!(&buf[..n], b"B");
                answered += 1;
                return true;
            }
            refusals(&d, closed).0 == before + 1
        });
        if refusals(&d, closed).1 {
            break;
        }
    }
    let (refused, ejected) = refusals(&d, closed);
    assert!(ejected, "{}", d.status());
    assert_eq!(refused, 3, "{}", d.status());
    assert!(answered >= 2, "the good server answered its turns");
    // From now on every new client is answered.
    for i in 0..6 {
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client.send_to(format!("after{i}").as_bytes(), v).unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = client.recv_from(&mut buf).expect("answered");
        assert_eq!(&buf[..n], b"B");
    }
    assert_eq!(refusals(&d, closed).0, 3);
    let log = d.log();
    assert!(
        log.contains(&format!(
            "real server {closed} of udp {v}: ejected for 3600 s after 3 consecutive ICMP errors (ejection 1 in a row)"
        )),
        "{log}"
    );
}
