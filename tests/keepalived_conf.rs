//! A keepalived.conf that uses every LVS keyword uvs takes
//! (fixtures/keepalived/every-keyword.conf: a group of three addresses and a mark, UDP
//! with sh and one-packet scheduling, an fwmark service with mh and direct routing, an
//! ipip service checked over TLS, a command's and a file's weights, SIP persistence,
//! and the checks uvs has not) imports with exactly what is not taken reported,
//! passes `uvs check`, and runs on loopback: `uvsadm -L -n` lists what keepalived
//! puts into IPVS for it, step by step, as its real servers go down and come back
//! (alpha, quorum with hysteresis and an inhibited sorry server, notify commands
//! once per change, an HTTP digest), and a stop runs the omega commands.
//!
//! The expected listings are written from keepalived's code (check/ipwrapper.c:
//! init_service_vs, update_quorum_state, perform_svr_state, clear_service_vs), not
//! from uvs's output. Every address is on 127.0.0.0/8, at fixed ports so that the
//! listing's order (the kernel's hash order) is fixed too.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::http::{Answer, HttpServer};
use common::{Daemon, UVS, UdpBackend, bounded, eventually, text, write_file};

/// The MD5 of "healthy\n", as keepalived's genhash prints it.
const HEALTHY_MD5: &str = "3b1fb749c971d7a2c6a517b37f735df2";

/// Stops a server thread of this file when dropped.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs `serve` on each connection accepted at `addr`, a thread each, until dropped.
fn tcp_server(addr: &str, serve: fn(std::net::TcpStream)) -> Running {
    let listener = TcpListener::bind(addr).expect("bind a real server");
    listener.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    std::thread::spawn(move || {
        while !stopping.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    std::thread::spawn(move || serve(s));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    });
    Running(stop)
}

/// An SMTP server as keepalived's SMTP_CHECK wants one: 220, 250 to HELO, 221 to QUIT.
fn smtp(s: std::net::TcpStream) {
    let mut w = s.try_clone().unwrap();
    let mut lines = BufReader::new(s).lines();
    let _ = w.write_all(b"220 mail.example.test ESMTP\r\n");
    while let Some(Ok(line)) = lines.next() {
        let reply: &[u8] = if line.starts_with("HELO ") {
            b"250 mail.example.test\r\n"
        } else if line == "QUIT" {
            b"221 bye\r\n"
        } else {
            b"500 what?\r\n"
        };
        if w.write_all(reply).is_err() || line == "QUIT" {
            return;
        }
    }
}

/// An HTTPS server (a self-signed certificate: SSL_GET does not verify) answering
/// 200 to every request.
fn https(s: std::net::TcpStream) {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let cert = rcgen::generate_simple_self_signed(vec!["tls.example.test".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let Ok(connection) = rustls::ServerConnection::new(Arc::new(config)) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(connection, s);
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let _ = tls.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\nsecure\n");
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

/// A DNS server that answers every query with its question and NOERROR, no records:
/// up for keepalived's DNS_CHECK, which wants the id, the answer bit and rcode 0.
fn dns_server(addr: &str) -> Running {
    let socket = UdpSocket::bind(addr).expect("bind the DNS server");
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while !stopping.load(Ordering::Relaxed) {
            let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                continue;
            };
            if n < 12 {
                continue;
            }
            buf[2] |= 0x80; // a response
            buf[3] = 0x80; // recursion available, NOERROR
            let _ = socket.send_to(&buf[..n], peer);
        }
    });
    Running(stop)
}

/// Writes an executable `path`.
fn write_script(path: &Path, body: &str) {
    write_file(path, body);
    let status = Command::new("chmod")
        .args(["+x", path.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The name of the user the test runs as.
fn user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    text(&out.stdout).trim().to_string()
}

/// What the notify commands recorded, a line per run.
fn records(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("records"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits (bounded) until the commands since the `from`th have run: exactly `want`, in
/// any order (each runs in a process of its own, as keepalived's do, so two of one
/// change may finish either way round).
fn ran(dir: &Path, from: usize, want: &[&str]) {
    eventually(&format!("{want:?} ran"), || {
        records(dir).len() >= from + want.len()
    });
    let mut got = records(dir)[from..].to_vec();
    got.sort();
    assert_eq!(got, want, "after the first {from}: {:?}", records(dir));
}

/// `uvsadm -L -n` as keepalived leaves IPVS for this file, with the group's two real
/// servers and its sorry server at these weights; the other services are steady.
fn listing(rs80: u32, rs81: u32, sorry: u32) -> String {
    let web = |head: &str| {
        format!(
            "{head} wrr persistent 600 mask 255.255.255.0\n  \
             -> 127.0.0.80:18000             Masq    {rs80:<6} 0          0         \n  \
             -> 127.0.0.81:18001             Masq    {rs81:<6} 0          0         \n  \
             -> 127.0.0.89:18089             Masq    {sorry:<6} 0          0         \n"
        )
    };
    let mut out = String::from(
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
    );
    out += "TCP  127.0.0.1:18443 lc\n  \
            -> 127.0.0.86:18443             Tunnel  2      0          0         \n";
    out += &web("TCP  127.0.0.70:18080");
    out += &web("TCP  127.0.0.71:18080");
    out += &web("TCP  127.0.0.72:18080");
    out += "TCP  127.0.0.76:18090 wlc\n  \
            -> 127.0.0.87:18090             Masq    5      0          0         \n  \
            -> 127.0.0.88:18090             Masq    10     0          0         \n";
    out += "UDP  127.0.0.73:18053 sh (sh-fallback,sh-port) ops\n  \
            -> 127.0.0.82:18053             Masq    1      0          0         \n  \
            -> 127.0.0.83:18053             Masq    1      0          0         \n";
    out += "UDP  127.0.0.77:18060 rr persistent 120 pe sip\n  \
            -> 127.0.0.90:18060             Masq    1      0          0         \n  \
            -> 127.0.0.91:18060             Masq    1      0          0         \n";
    out += &web("FWM  71");
    out += "FWM  74 mh (mh-fallback,mh-port) persistent 360\n  \
            -> 127.0.0.84:25                Route   3      0          0         \n";
    out
}

/// Waits (bounded, 20 s) until `uvsadm -L -n` lists `want`; else fails showing what
/// it listed last.
fn until_listed(daemon: &Daemon, want: &str, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = daemon.list(&["-L", "-n"]);
        if got == want {
            return;
        }
        if std::time::Instant::now() > deadline {
            assert_eq!(got, want, "{what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_keepalived_conf_with_every_keyword_imports_and_runs_as_keepalived_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_script(
        &d.join("record"),
        &format!("#!/bin/sh\necho \"$*\" >> {}/records\n", d.display()),
    );
    // misc_dynamic: exit status 7 is weight 5 (keepalived.conf(5): status - 2).
    write_script(&d.join("weigh"), "#!/bin/sh\nexit 7\n");
    // FILE_CHECK: 3 times the checker's weight 2, added to the server's 4: 10.
    write_file(&d.join("spare"), "3\n");
    let conf = std::fs::read_to_string(common::fixture("fixtures/keepalived/every-keyword.conf"))
        .unwrap()
        .replace("@DIR@", &d.display().to_string())
        .replace("@USER@", &user())
        .replace("@DIGEST@", HEALTHY_MD5);
    write_file(&d.join("keepalived.conf"), &conf);

    let mut import = Command::new(UVS);
    import
        .args(["import", "keepalived", "keepalived.conf"])
        .current_dir(d);
    let out = bounded(import, "uvs import keepalived");
    assert_eq!(
        text(&out.stderr),
        EXPECTED_IMPORT_STDERR,
        "what is not taken, and only that"
    );
    assert_eq!(out.status.code(), Some(1), "PING_CHECK and BFD_CHECK");
    let toml = text(&out.stdout);
    write_file(&d.join("uvs.toml"), &toml);
    let mut check = Command::new(UVS);
    check.args(["check", "-c", "uvs.toml"]).current_dir(d);
    let out = bounded(check, "uvs check");
    assert_eq!(
        text(&out.stdout),
        "uvs.toml: OK, 9 services, 16 real servers\n",
        "{}",
        text(&out.stderr)
    );

    // The real servers, each as its check wants it.
    let rs80 = HttpServer::start_on("127.0.0.80:18000", Answer::ok("healthy\n"));
    let rs81 = HttpServer::start_on("127.0.0.81:18001", Answer::ok("healthy\n"));
    let _dns = dns_server("127.0.0.82:18053");
    let _udp83 = UdpBackend::start_on("127.0.0.83:18053", "83", common::Reply::Echo);
    let _smtp84 = tcp_server("127.0.0.84:18025", smtp);
    let _smtp85 = tcp_server("127.0.0.85:18025", smtp);
    let _tls = tcp_server("127.0.0.86:18086", https);
    let _udp90 = UdpBackend::start_on("127.0.0.90:18060", "90", common::Reply::Echo);

    let daemon = Daemon::start_with_file(&d.join("uvs.toml"), &toml, &[]);
    let web: SocketAddr = "127.0.0.70:18080".parse().unwrap();
    daemon.wait_listening(web);
    let now = || daemon.list(&["-L", "-n"]);

    // alpha: both web servers start down, at weight 0 (inhibit_on_failure); the
    // quorum (4, hysteresis 1) starts lost, so the sorry server stands in and
    // quorum_down runs once. Their first good checks bring them in: 3 is not the 5 a
    // regained quorum needs, 5 is; then the sorry server goes back to weight 0
    // (sorry_server_inhibit) and quorum_up runs.
    until_listed(
        &daemon,
        &listing(3, 2, 0),
        "every server up, the sorry server at weight 0",
    );
    ran(d, 0, &["quorum down", "quorum up", "rs80 up", "rs81 up"]);
    // ha_suspend: 127.0.0.1 is this host's, so the TLS service's checks run.
    let status = daemon.status();
    assert!(!status.contains("checks suspended"), "{status}");
    // rs81 fails (status 500): weight 0; 3 left is not below quorum - hysteresis.
    rs81.set(Answer::Says("500 Internal Server Error", "broken\n".into()));
    until_listed(&daemon, &listing(3, 0, 0), "rs81 out, the quorum kept");
    ran(d, 4, &["rs81 down"]);
    // rs80's body changes (its digest): the quorum is lost, the sorry server in.
    rs80.set(Answer::ok("changed\n"));
    until_listed(&daemon, &listing(0, 0, 1), "the sorry server in");
    ran(d, 5, &["quorum down", "rs80 down"]);
    // rs80 back: 3 does not regain the quorum; the sorry server stays alone.
    rs80.set(Answer::ok("healthy\n"));
    ran(d, 7, &["rs80 up"]);
    assert_eq!(now(), listing(0, 0, 1));
    // rs81 back: 5 regains it.
    rs81.set(Answer::ok("healthy\n"));
    until_listed(&daemon, &listing(3, 2, 0), "the quorum regained");
    ran(d, 8, &["quorum up", "rs81 up"]);

    // And it serves (after the listings: the connection stays listed as inactive).
    let (status, body) = common::http_get(web, "GET", "/");
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.0 200 OK", "healthy\n")
    );

    // omega: a stop runs notify_down for each live server, and quorum_down.
    common::sigterm(&daemon.child);
    ran(d, 10, &["quorum down", "rs80 down", "rs81 down"]);
}

/// What `uvs import keepalived` reports for the file: keepalived's own jobs, and the
/// two checks uvs has not (which make it exit 1).
const EXPECTED_IMPORT_STDERR: &str = "\
keepalived.conf:5: global_defs: keepalived's own settings; not uvs's job, not taken
keepalived.conf:9: vrrp_instance VI_1: VRRP is keepalived's own job (it moves the VIP); not uvs's, not taken
keepalived.conf:19: lvs_sync_daemon: keepalived reads it in global_defs only (here it is an unknown keyword, ignored), and so does uvs
keepalived.conf:21: track_file spare: read by the FILE_CHECKs that name it; tracking by VRRP is keepalived's own job
keepalived.conf:93: hashed: keepalived sets nothing for it; nothing to take
keepalived.conf:197: PING_CHECK: uvs's checks speak TCP and UDP and send no ICMP echo; not taken
keepalived.conf:199: BFD_CHECK: BFD sessions are keepalived's bfd process's; uvs has none; not taken
uvs: keepalived.conf: 2 lines not taken
";
