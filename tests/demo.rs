//! `uvs demo`, the README's first command: with nothing else running, a VIP balances round
//! robin over two built-in backends, so successive HTTP requests and new UDP clients
//! alternate RS1, RS2, and uvsadm lists the table. (The test puts the VIP on a free port with `--vip`, so a
//! machine that already uses 8080 does not fail it.)

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{UVS, eventually, sigterm, status_at, text, uvsadm_at, vip};

/// The body of an HTTP GET to `vip`.
fn get(vip: SocketAddr) -> String {
    let mut s = TcpStream::connect(vip).expect("connect to the demo VIP");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    body.to_string()
}

/// The address after `name on ` in the demo's banner.
fn backend(banner: &str, name: &str) -> SocketAddr {
    let at = banner.find(&format!("{name} on ")).expect(name) + name.len() + 4;
    let rest = &banner[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    rest[..end]
        .trim_end_matches(':')
        .parse()
        .expect("backend address")
}

/// Kills the demo if the test fails before stopping it.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_demo_alternates_between_its_two_backends() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("uvs.sock");
    let vip = vip();
    let mut demo = Command::new(UVS)
        .args(["demo", "--vip", &vip.to_string(), "--socket"])
        .arg(&socket)
        .env("UVS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn uvs demo");
    let stdout = demo.stdout.take().unwrap();
    let mut demo = Running(demo);
    let mut banner = String::new();
    let mut lines = BufReader::new(stdout);
    while !banner.contains("Stop with Ctrl-C.") {
        let mut line = String::new();
        if lines.read_line(&mut line).unwrap() == 0 {
            break;
        }
        banner.push_str(&line);
    }
    let (rs1, rs2) = (backend(&banner, "RS1"), backend(&banner, "RS2"));
    // The UDP backends share the TCP ones' ports unless those were taken.
    let (udp1, udp2) = match banner.find("(over UDP: ") {
        Some(at) => (backend(&banner[at..], "RS1"), backend(&banner[at..], "RS2")),
        None => (rs1, rs2),
    };
    let uvsadm = |args: &[&str]| {
        let out = uvsadm_at(&socket).args(args).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    eventually("the demo VIP listening", || {
        let out = status_at(&socket).output().unwrap();
        let status = text(&out.stdout);
        status.contains(&format!("listen tcp {vip}: listening"))
            && status.contains(&format!("listen udp {vip}: listening"))
    });

    let lines = |a: SocketAddr, b: SocketAddr| {
        let mut servers = [a, b];
        servers.sort_by_key(|s| s.port());
        servers
            .iter()
            .map(|s| {
                format!(
                    "  -> {:<28} {:<7} {:<6} {:<10} {:<10}\n",
                    s, "Masq", 1, 0, 0
                )
            })
            .collect::<String>()
    };
    let expected = format!(
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  {vip} rr\n{}\
         UDP  {vip} rr\n{}",
        lines(rs1, rs2),
        lines(udp1, udp2),
    );
    assert_eq!(uvsadm(&["-L", "-n"]), expected);

    let bodies: Vec<String> = (0..10).map(|_| get(vip)).collect();
    assert_eq!(bodies, ["RS1\n", "RS2\n"].repeat(5));
    // Each new UDP client is a new flow, scheduled in turn.
    let answers: Vec<String> = (0..4)
        .map(|_| {
            let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            c.send_to(b"hi", vip).unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = c.recv_from(&mut buf).expect("a UDP answer");
            assert_eq!(from, vip);
            String::from_utf8_lossy(&buf[..n]).into_owned()
        })
        .collect();
    assert_eq!(answers, ["RS1\n", "RS2\n"].repeat(2));
    // Connections per backend: TCP's listed first, then UDP's flows.
    eventually(
        "five connections and two flows counted on each backend",
        || {
            let stats = uvsadm(&["-L", "-n", "--stats", "--exact"]);
            let conns: Vec<&str> = stats
                .lines()
                .filter(|l| l.starts_with("  -> 127.0.0.1:"))
                .filter_map(|l| l.split_whitespace().nth(2))
                .collect();
            conns == ["5", "5", "2", "2"]
        },
    );

    // SIGTERM: the demo drains and exits 0.
    sigterm(&demo.0);
    assert!(demo.0.wait().unwrap().success());
}
