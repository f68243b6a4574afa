//! Timed drain (issue 17): `uvs drain` / `uvs undrain`, the configuration's `drain` and
//! `drain_on_remove`, and the pool controller that removes a drained real server, on a
//! real daemon with real servers on loopback. Every wait is bounded; nothing is timed
//! against the wall clock.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Daemon, UVS, eventually, sighup, text, vip};

/// A TCP real server that says its name and a newline, then echoes until the client
/// closes: its connections last as long as the client wants; stops when dropped.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(name: &'static str) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                std::thread::spawn(move || {
                    if s.write_all(format!("{name}\n").as_bytes()).is_err() {
                        return;
                    }
                    let mut buf = [0u8; 16384];
                    while let Ok(n @ 1..) = s.read(&mut buf) {
                        if s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Server { addr, stop }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A connection through the VIP (from `from`, if given): the name of the server it
/// reached, and the stream, open.
fn open(vip: SocketAddr, from: Option<&str>) -> (String, TcpStream) {
    let mut s = common::connect(vip, from).expect("connect to the VIP");
    let mut name = Vec::new();
    let mut byte = [0u8; 1];
    while name.last() != Some(&b'\n') {
        assert_eq!(s.read(&mut byte).expect("the server's name"), 1, "name cut");
        name.push(byte[0]);
    }
    (text(&name).trim().to_string(), s)
}

/// `bytes` through `s` and back, intact.
fn exchange(s: &mut TcpStream, round: usize) {
    let message: Vec<u8> = (0..4096).map(|i| ((i + round) % 251) as u8).collect();
    assert_eq!(common::echoed(s, &message), message, "bytes intact");
}

fn uvs(d: &Daemon, args: &[&str]) -> Output {
    let mut cmd = Command::new(UVS);
    cmd.arg(args[0])
        .arg("--socket")
        .arg(&d.socket)
        .args(&args[1..]);
    common::bounded(cmd, "uvs drain")
}

/// `uvs drain` (or undrain) that must succeed: its line.
fn uvs_ok(d: &Daemon, args: &[&str]) -> String {
    let out = uvs(d, args);
    assert!(out.status.success(), "uvs {args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// The `->` addresses and weights of TCP (or UDP) `vip`.
fn listed(d: &Daemon, kind: &str, vip: SocketAddr) -> Vec<(String, u32)> {
    d.list(&["-L", "-n", kind, &vip.to_string()])
        .lines()
        .filter(|l| l.starts_with("  -> ") && !l.starts_with("  -> RemoteAddress"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[1].to_string(), f[3].parse().unwrap())
        })
        .collect()
}

fn is_listed(d: &Daemon, kind: &str, vip: SocketAddr, server: SocketAddr) -> bool {
    listed(d, kind, vip)
        .iter()
        .any(|(a, _)| *a == server.to_string())
}

#[test]
fn drain_under_load_fails_no_request_and_removes_the_server_after_its_last_connection() {
    let d = Daemon::start();
    let (a, b) = (Server::start("A"), Server::start("B"));
    let vip = vip();
    // Long-lived connections to A first (A alone), then B joins.
    d.balance_on("-t", vip, &["-s", "wlc"], &[(a.addr, &[])]);
    let mut long: Vec<TcpStream> = (0..3)
        .map(|_| {
            let (name, s) = open(vip, None);
            assert_eq!(name, "A");
            s
        })
        .collect();
    d.set_server("-a", "-t", vip, b.addr, &[]);

    // A steady load of new, short connections, all through the drain.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, served, failed) = (Arc::clone(&stop), Arc::clone(&served), Arc::clone(&failed));
        std::thread::spawn(move || {
            for _ in 0..5000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match common::connect(vip, None).map(|mut s| {
                    let mut name = [0u8; 2];
                    s.read_exact(&mut name)?;
                    s.write_all(b"ping")?;
                    let mut back = [0u8; 4];
                    s.read_exact(&mut back)?;
                    Ok::<_, std::io::Error>((name, back))
                }) {
                    Ok(Ok((name, back))) if &back == b"ping" && name[1] == b'\n' => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    eventually("some load before the drain", || {
        served.load(Ordering::Relaxed) >= 20
    });

    let line = uvs_ok(
        &d,
        &["drain", "-t", &vip.to_string(), "-r", &a.addr.to_string()],
    );
    assert_eq!(
        line.trim(),
        format!(
            "draining {} of tcp {vip}: 3 connections open, removed when they end",
            a.addr
        )
    );
    let at_drain = served.load(Ordering::Relaxed);
    // Listings keep ipvsadm's format: weight 0 while draining.
    assert!(
        listed(&d, "-t", vip).contains(&(a.addr.to_string(), 0)),
        "{:?}",
        listed(&d, "-t", vip)
    );
    let status = d.status();
    assert!(status.contains("draining (3 connections)"), "{status}");
    let metrics = common::http_get(d.metrics_address(), "GET", "/metrics").1;
    let draining = format!(
        "remote_address=\"127.0.0.1\",remote_port=\"{}\"}} 1",
        a.addr.port()
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("uvs_backend_draining{") && l.ends_with(&draining)),
        "{metrics}"
    );
    let open_a = format!(
        "remote_address=\"127.0.0.1\",remote_port=\"{}\"}} 3",
        a.addr.port()
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("uvs_backend_connections_open{") && l.ends_with(&open_a)),
        "{metrics}"
    );

    // The long-lived connections go on, bytes intact, and then end one by one.
    for round in 0..3 {
        for s in &mut long {
            exchange(s, round);
        }
    }
    eventually("load after the drain", || {
        served.load(Ordering::Relaxed) >= at_drain + 40
    });
    while let Some(s) = long.pop() {
        drop(s);
        if !long.is_empty() {
            let n = long.len();
            let line = format!("draining ({n} connection");
            eventually("the status counts down", || d.status().contains(&line));
            assert!(
                is_listed(&d, "-t", vip, a.addr),
                "kept while connections last"
            );
        }
    }
    let ended = Instant::now();
    eventually("the drained server is removed", || {
        !is_listed(&d, "-t", vip, a.addr)
    });
    eprintln!(
        "removed {} ms after its last connection ended",
        ended.elapsed().as_millis()
    );
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request failed");
    assert_eq!(listed(&d, "-t", vip), [(b.addr.to_string(), 1)]);
}

#[test]
fn at_the_deadline_remaining_connections_are_closed_and_the_server_removed() {
    let d = Daemon::start_logged(&[]);
    let (a, b) = (Server::start("A"), Server::start("B"));
    let vip = vip();
    d.balance_on("-t", vip, &["-s", "rr"], &[(a.addr, &[])]);
    let (name, mut held) = open(vip, None);
    assert_eq!(name, "A");
    d.set_server("-a", "-t", vip, b.addr, &[]);
    let line = uvs_ok(
        &d,
        &[
            "drain",
            "-t",
            &vip.to_string(),
            "-r",
            &a.addr.to_string(),
            "--deadline",
            "2s",
        ],
    );
    assert!(
        line.contains(
            "1 connection open, removed when they end, or in 2s with what is left closed"
        ),
        "{line}"
    );
    let status = d.status();
    assert!(
        status.contains("draining (1 connection, 2s left)")
            || status.contains("draining (1 connection, 1s left)"),
        "{status}"
    );
    exchange(&mut held, 0);
    // Closed at the deadline: the client reads the end of the stream.
    let rest = common::read_all(&mut held);
    assert!(
        matches!(&rest, Ok(bytes) if bytes.is_empty()) || rest.is_err(),
        "{rest:?}"
    );
    eventually("the server is removed at the deadline", || {
        !is_listed(&d, "-t", vip, a.addr)
    });
    eventually("the log says it", || {
        d.log().contains(&format!(
            "drained real server {} of tcp {vip}: deadline reached, 1 connection closed; removed",
            a.addr
        ))
    });
    assert!(
        d.log().contains(&format!(
            "draining real server {} of tcp {vip}: 1 connection open, closing what is left in 2s",
            a.addr
        )),
        "{}",
        d.log()
    );
    assert_eq!(open(vip, None).0, "B");
}

#[test]
fn an_idle_server_is_removed_at_once() {
    let d = Daemon::start_logged(&[]);
    let (a, b) = (Server::start("A"), Server::start("B"));
    let vip = vip();
    d.balance_on("-t", vip, &["-s", "rr"], &[(a.addr, &[]), (b.addr, &[])]);
    let line = uvs_ok(
        &d,
        &["drain", "-t", &vip.to_string(), "-r", &a.addr.to_string()],
    );
    assert!(
        line.contains("removed") && line.contains("draining"),
        "{line}"
    );
    eventually("removed", || !is_listed(&d, "-t", vip, a.addr));
    eventually("the log says why", || {
        d.log().contains(&format!(
            "drained real server {} of tcp {vip}: its last connection ended; removed",
            a.addr
        ))
    });
}

/// A service made with uvsadm, which no file names: once drained out, a server is gone
/// for good, and `uvs undrain` says so rather than promising a file would add it back.
#[test]
fn undrain_of_a_server_drained_out_of_a_service_no_file_owns_says_no_such_destination() {
    let d = Daemon::start();
    let (a, b) = (Server::start("A"), Server::start("B"));
    let vip = vip();
    d.balance_on("-t", vip, &["-s", "rr"], &[(a.addr, &[]), (b.addr, &[])]);
    let target = ["-t", &vip.to_string(), "-r", &a.addr.to_string()].map(String::from);
    let target: Vec<&str> = target.iter().map(String::as_str).collect();
    uvs_ok(&d, &[&["drain"][..], &target].concat());
    eventually("removed", || !is_listed(&d, "-t", vip, a.addr));
    let out = uvs(&d, &[&["undrain"][..], &target].concat());
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stdout));
    assert_eq!(text(&out.stderr), "No such destination\n");
    assert_eq!(listed(&d, "-t", vip), [(b.addr.to_string(), 1)]);
    // The mark went with the answer: a second undrain says the same.
    let out = uvs(&d, &[&["undrain"][..], &target].concat());
    assert_eq!(out.status.code(), Some(255));
}

#[test]
fn persistent_clients_go_elsewhere_unless_kept() {
    let d = Daemon::start();
    let (a, b) = (Server::start("A"), Server::start("B"));
    let vip = vip();
    d.balance_on(
        "-t",
        vip,
        &["-s", "rr", "-p", "300"],
        &[(a.addr, &[]), (b.addr, &[])],
    );
    let addr_of = |name: &str| if name == "A" { a.addr } else { b.addr };

    // Without --keep-persistent: the client's template is void, it goes elsewhere.
    let (first, _hold) = open(vip, Some("127.0.0.2"));
    assert_eq!(open(vip, Some("127.0.0.2")).0, first, "persistent");
    uvs_ok(
        &d,
        &[
            "drain",
            "-t",
            &vip.to_string(),
            "-r",
            &addr_of(&first).to_string(),
        ],
    );
    let (moved, _hold2) = open(vip, Some("127.0.0.2"));
    assert_ne!(
        moved, first,
        "scheduled afresh, away from the draining server"
    );
    let undrain = uvs_ok(
        &d,
        &[
            "undrain",
            "-t",
            &vip.to_string(),
            "-r",
            &addr_of(&first).to_string(),
        ],
    );
    assert!(
        undrain.contains("takes new connections, weight 1"),
        "{undrain}"
    );
    assert!(listed(&d, "-t", vip).iter().all(|(_, w)| *w == 1));

    // With --keep-persistent: the client keeps its server, new clients do not get it.
    let (kept, _hold3) = open(vip, Some("127.0.0.3"));
    uvs_ok(
        &d,
        &[
            "drain",
            "-t",
            &vip.to_string(),
            "-r",
            &addr_of(&kept).to_string(),
            "--keep-persistent",
        ],
    );
    assert!(d.status().contains("persistent clients kept"));
    for _ in 0..3 {
        assert_eq!(open(vip, Some("127.0.0.3")).0, kept, "its template holds");
    }
    for from in ["127.0.0.4", "127.0.0.5", "127.0.0.6"] {
        assert_ne!(open(vip, Some(from)).0, kept, "no new client gets it");
    }
}

#[test]
fn udp_flows_go_on_and_new_flows_go_elsewhere() {
    let d = Daemon::start();
    let (a, b) = (
        common::UdpBackend::start("A", common::Reply::Name),
        common::UdpBackend::start("B", common::Reply::Name),
    );
    let vip = vip();
    d.balance_on("-u", vip, &["-s", "rr"], &[(a.addr, &[])]);
    let ask = |s: &std::net::UdpSocket| {
        s.send_to(b"hello", vip).unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = s.recv_from(&mut buf).expect("an answer");
        text(&buf[..n])
    };
    let client = |from: &str| {
        let s = std::net::UdpSocket::bind(format!("{from}:0")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    };
    let old = client("127.0.0.1");
    assert_eq!(ask(&old), "A");
    d.set_server("-a", "-u", vip, b.addr, &[]);
    let said = uvs_ok(
        &d,
        &["drain", "-u", &vip.to_string(), "-r", &a.addr.to_string()],
    );
    assert!(said.contains(": 1 flow open, removed when"), "{said}");
    // A UDP drain counts flows (this said "1 connection" before issue 17's review).
    assert!(d.status().contains("draining (1 flow)"), "{}", d.status());
    for _ in 0..3 {
        assert_eq!(ask(&old), "A", "the flow goes on");
    }
    for from in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        assert_eq!(ask(&client(from)), "B", "a new flow goes elsewhere");
    }
    // A deadline ends the flow and removes the server; the client is scheduled anew.
    uvs_ok(
        &d,
        &[
            "drain",
            "-u",
            &vip.to_string(),
            "-r",
            &a.addr.to_string(),
            "--deadline",
            "100ms",
        ],
    );
    eventually("removed at the deadline", || {
        !is_listed(&d, "-u", vip, a.addr)
    });
    assert_eq!(ask(&old), "B");
}

#[test]
fn drain_and_undrain_say_ipvsadms_errors_with_its_statuses() {
    let d = Daemon::start();
    let a = Server::start("A");
    let vip = vip();
    d.balance_on("-t", vip, &["-s", "rr"], &[(a.addr, &[])]);
    let other = common::vip();
    let out = uvs(
        &d,
        &["drain", "-t", &other.to_string(), "-r", &a.addr.to_string()],
    );
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(text(&out.stderr), "Service not defined\n");
    let out = uvs(&d, &["drain", "-t", &vip.to_string(), "-r", "127.0.0.9:1"]);
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(text(&out.stderr), "No such destination\n");
    let out = uvs(
        &d,
        &["undrain", "-t", &vip.to_string(), "-r", "127.0.0.9:1"],
    );
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(text(&out.stderr), "No such destination\n");
    // What uvsadm cannot read, uvsadm's words and status.
    let out = uvs(
        &d,
        &["drain", "-t", "127.0.0.1:http-nope", "-r", "127.0.0.9:1"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // No daemon there.
    let out = common::bounded(
        {
            let mut c = Command::new(UVS);
            c.args(["drain", "--socket"])
                .arg(d.dir.path().join("none.sock"))
                .args(["-t", &vip.to_string(), "-r", &a.addr.to_string()]);
            c
        },
        "uvs drain without a daemon",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot reach the uvs daemon"));
    // Nothing changed.
    assert_eq!(listed(&d, "-t", vip), [(a.addr.to_string(), 1)]);
}

#[test]
fn a_deadline_over_a_day_is_refused_and_undrain_of_a_server_not_draining_says_so() {
    let d = Daemon::start();
    let a = Server::start("A");
    let vip = vip();
    d.balance_on("-t", vip, &["-s", "rr"], &[(a.addr, &["-w", "0"])]);
    let target = ["-t", &vip.to_string(), "-r", &a.addr.to_string()].map(String::from);
    let args = |verb: &str, more: &[&str]| -> Vec<String> {
        [verb]
            .iter()
            .map(|s| s.to_string())
            .chain(target.iter().cloned())
            .chain(more.iter().map(|s| s.to_string()))
            .collect()
    };
    let run = |a: &[String]| uvs(&d, &a.iter().map(String::as_str).collect::<Vec<_>>());
    for long in ["18446744073709551615", "86401", "1d 1ms"] {
        let out = run(&args("drain", &["--deadline", long]));
        assert_eq!(out.status.code(), Some(2), "{long}");
        assert!(
            text(&out.stderr).contains("a deadline of at most a day"),
            "{long}: {}",
            text(&out.stderr)
        );
    }
    // A negative one is read as a deadline (and refused), not as an unknown option.
    let out = run(&args("drain", &["--deadline", "-5s"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("invalid value '-5s' for '--deadline <DURATION>'"),
        "{}",
        text(&out.stderr)
    );
    assert!(!d.status().contains("draining"), "nothing drains");
    // Not draining: said plainly, exit 0 (undrain is idempotent), nothing changed.
    let out = run(&args("undrain", &[]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "{} of tcp {vip} was not draining: nothing to undo, weight 0 (it takes no new connection)\n",
            a.addr
        )
    );
    assert_eq!(listed(&d, "-t", vip), [(a.addr.to_string(), 0)]);
}

/// A drain ended by a delete the pool controller did not make (`uvsadm -d` here) is
/// logged once, with what was open.
#[test]
fn a_drain_ended_by_uvsadm_is_logged_once() {
    let d = Daemon::start_logged(&[]);
    let (a, b) = (Server::start("A"), Server::start("B"));
    let vip = vip();
    d.balance_on("-t", vip, &["-s", "rr"], &[(a.addr, &[]), (b.addr, &[])]);
    let mut held = Vec::new();
    while held.len() < 2 {
        let (name, s) = open(vip, None);
        held.push((name, s));
    }
    assert!(held.iter().any(|(n, _)| n == "A"), "rr reaches both");
    uvs_ok(
        &d,
        &["drain", "-t", &vip.to_string(), "-r", &a.addr.to_string()],
    );
    d.ok(&["-d", "-t", &vip.to_string(), "-r", &a.addr.to_string()]);
    let line = format!(
        "drain of {} of tcp {vip} ended: deleted (1 connection open)",
        a.addr
    );
    eventually("the end logged", || d.log().contains(&line));
    assert_eq!(d.log().matches(&line).count(), 1, "{}", d.log());
    assert!(!d.log().contains("drained real server"), "{}", d.log());
}

/// The reloads `uvs status` counts.
fn reloads(d: &Daemon) -> usize {
    let status = d.status();
    status
        .split(", reloads ")
        .nth(1)
        .and_then(|rest| rest.split(',').next()?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no reload count in\n{status}"))
}

/// Reloads `d` (SIGHUP) and waits until it has.
fn reload(d: &Daemon) {
    let before = reloads(d);
    sighup(&d.child);
    eventually("the reload", || reloads(d) > before);
}

#[test]
fn a_reload_neither_undoes_a_command_line_drain_nor_adds_its_server_back() {
    let (a, b) = (Server::start("A"), Server::start("B"));
    let vip = vip();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uvs.toml");
    let file = format!(
        "[[service]]\ntcp = \"{vip}\"\nscheduler = \"rr\"\n\n[[service.server]]\naddress = \"{}\"\n\n[[service.server]]\naddress = \"{}\"\n",
        a.addr, b.addr
    );
    let d = Daemon::start_with_file(&path, &file, &[]);
    d.wait_listening(vip);
    let (name, held) = open(vip, None);
    let drained = if name == "A" { a.addr } else { b.addr };
    uvs_ok(
        &d,
        &["drain", "-t", &vip.to_string(), "-r", &drained.to_string()],
    );
    reload(&d);
    assert!(
        listed(&d, "-t", vip).contains(&(drained.to_string(), 0)),
        "still draining after the reload"
    );
    assert!(d.status().contains("draining (1 connection)"));
    drop(held);
    eventually("drained out", || !is_listed(&d, "-t", vip, drained));
    reload(&d);
    assert!(
        !is_listed(&d, "-t", vip, drained),
        "the reload does not add it back"
    );
    assert!(
        d.status().contains(&format!(
            "  -> {drained}: drained out by uvs drain; not added back until uvs undrain\n"
        )),
        "uvs status names it:\n{}",
        d.status()
    );
    assert!(
        !d.log().contains("will undo it"),
        "no file-owned warning for the drain:\n{}",
        d.log()
    );
    let line = uvs_ok(
        &d,
        &[
            "undrain",
            "-t",
            &vip.to_string(),
            "-r",
            &drained.to_string(),
        ],
    );
    assert!(line.contains("no longer drained out"), "{line}");
    eventually("the file's server is back at once", || {
        listed(&d, "-t", vip).contains(&(drained.to_string(), 1))
    });
    assert!(!d.status().contains("drained out"), "{}", d.status());
}

#[test]
fn drain_on_remove_drains_a_server_the_file_drops_and_drain_true_keeps_one_out() {
    let (a, b) = (Server::start("A"), Server::start("B"));
    let vip = vip();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uvs.toml");
    let head =
        format!("[[service]]\ntcp = \"{vip}\"\nscheduler = \"rr\"\ndrain_on_remove = \"30s\"\n");
    let server = |addr: SocketAddr, extra: &str| {
        format!("\n[[service.server]]\naddress = \"{addr}\"\n{extra}")
    };
    let both = format!("{head}{}{}", server(a.addr, ""), server(b.addr, ""));
    let d = Daemon::start_with_file(&path, &both, &[]);
    d.wait_listening(vip);
    let (name, held) = open(vip, None);
    let (gone, stays) = if name == "A" {
        (a.addr, b.addr)
    } else {
        (b.addr, a.addr)
    };
    common::write_file(&path, &format!("{head}{}", server(stays, "")));
    reload(&d);
    assert!(
        listed(&d, "-t", vip).contains(&(gone.to_string(), 0)),
        "drains instead of leaving: {:?}",
        listed(&d, "-t", vip)
    );
    let status = d.status();
    assert!(
        status.contains("draining (1 connection, 30s left)")
            || status.contains("draining (1 connection, 29s left)"),
        "{status}"
    );
    for _ in 0..3 {
        assert_eq!(open(vip, None).0, if stays == a.addr { "A" } else { "B" });
    }
    drop(held);
    eventually("removed once its connection ended", || {
        !is_listed(&d, "-t", vip, gone)
    });

    // `drain = true` on a server not in the table: it is not added.
    common::write_file(
        &path,
        &format!(
            "{head}{}{}",
            server(stays, ""),
            server(gone, "drain = true\n")
        ),
    );
    reload(&d);
    assert_eq!(listed(&d, "-t", vip), [(stays.to_string(), 1)]);
    // Named again without it: added back.
    common::write_file(&path, &both);
    reload(&d);
    assert!(is_listed(&d, "-t", vip, gone));
}

#[test]
fn a_file_drain_is_undone_by_the_file() {
    let (a, b) = (Server::start("A"), Server::start("B"));
    let vip = vip();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uvs.toml");
    let file = |drain: &str| {
        format!(
            "[[service]]\ntcp = \"{vip}\"\nscheduler = \"rr\"\n\n[[service.server]]\naddress = \"{}\"\nweight = 3\n{drain}\n[[service.server]]\naddress = \"{}\"\n",
            a.addr, b.addr
        )
    };
    let d = Daemon::start_with_file(&path, &file(""), &[]);
    d.wait_listening(vip);
    // Keep A busy so that its drain lasts: connections alternate (rr).
    let mut held = Vec::new();
    while !held.iter().any(|(n, _): &(String, TcpStream)| n == "A") {
        held.push(open(vip, None));
    }
    common::write_file(&path, &file("drain = true"));
    reload(&d);
    assert!(listed(&d, "-t", vip).contains(&(a.addr.to_string(), 0)));
    common::write_file(&path, &file(""));
    reload(&d);
    assert!(
        listed(&d, "-t", vip).contains(&(a.addr.to_string(), 3)),
        "undrained: the asked weight is back"
    );
    assert!(!d.status().contains("draining"));
}

/// sh sends a client by its address hash: a pick that lands on a draining server
/// falls back to another one (the hashing schedulers' fallback from a pool-held
/// server) rather than reset the client.
#[test]
fn sh_clients_of_a_draining_server_go_elsewhere() {
    let d = Daemon::start();
    let (a, b) = (Server::start("A"), Server::start("B"));
    let vip = vip();
    d.balance_on("-t", vip, &["-s", "sh"], &[(a.addr, &[]), (b.addr, &[])]);
    let (_, _hold) = open(vip, Some("127.0.0.2"));
    let (name, _hold_a) = open(vip, Some("127.0.0.2"));
    let drained = if name == "A" { a.addr } else { b.addr };
    uvs_ok(
        &d,
        &["drain", "-t", &vip.to_string(), "-r", &drained.to_string()],
    );
    for _ in 0..5 {
        assert_ne!(open(vip, Some("127.0.0.2")).0, name);
    }
}
