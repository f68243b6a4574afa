//! PROXY protocol headers taken on TCP listeners (`accept_proxy`) over real sockets on
//! loopback: uvs behind a second uvs that sends PROXY v2 schedules (sh) and lists
//! (`-L -c`) by the original clients on 127.0.0.2 and .3, and a real server behind both
//! sees the original client and the TLVs; clients that send no header, a wrong one or a
//! slow one are reset within the deadline and counted while others are served; v1,
//! "any" and LOCAL; the bytes after the header reach the real server first and whole.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Backend, Behaviour, Daemon, connect, eventually, vip};

/// A real server that reads the PROXY header uvs sends (any version, parsed with ppp)
/// and answers each connection with one line, `CLIENT DESTINATION TLVS` (TLVS: each
/// `type:hexvalue`, by spaces; `-` for none), then echoes what came after the header
/// (the bytes read with it first) until the client closes.
struct Parsing {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Parsing {
    fn start() -> Parsing {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        std::thread::spawn(move || Parsing::serve(s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Parsing { addr, stop }
    }

    fn serve(mut s: TcpStream) {
        use ppp::PartialResult;
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let (line, used) = loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            let header = ppp::HeaderResult::parse(&got);
            if header.is_incomplete() {
                continue;
            }
            break match header {
                ppp::HeaderResult::V1(Ok(h)) => {
                    let line = match h.addresses {
                        ppp::v1::Addresses::Tcp4(a) => format!(
                            "{}:{} {}:{} -",
                            a.source_address,
                            a.source_port,
                            a.destination_address,
                            a.destination_port
                        ),
                        other => format!("{other:?}"),
                    };
                    (line, h.header.len())
                }
                ppp::HeaderResult::V2(Ok(h)) => {
                    let addresses = match h.addresses {
                        ppp::v2::Addresses::IPv4(a) => format!(
                            "{}:{} {}:{}",
                            a.source_address,
                            a.source_port,
                            a.destination_address,
                            a.destination_port
                        ),
                        other => format!("{other:?}"),
                    };
                    let tlvs: Vec<String> = h
                        .tlvs()
                        .map(|t| {
                            let t = t.expect("well-formed TLVs");
                            let hex: String = t.value.iter().map(|b| format!("{b:02x}")).collect();
                            format!("{:02x}:{hex}", t.kind)
                        })
                        .collect();
                    let tlvs = if tlvs.is_empty() {
                        "-".to_string()
                    } else {
                        tlvs.join(" ")
                    };
                    (format!("{addresses} {tlvs}"), h.len())
                }
                other => (format!("BAD {other:?}"), got.len()),
            };
        };
        let mut answer = format!("{line}\n").into_bytes();
        answer.extend_from_slice(&got[used..]);
        if s.write_all(&answer).is_err() {
            return;
        }
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

impl Drop for Parsing {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads one line (to its `\n`, not included) from `s`, byte by byte so that nothing
/// after it is taken.
fn line(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8];
    for _ in 0..4096 {
        match s.read(&mut byte) {
            Ok(1) if byte[0] == b'\n' => break,
            Ok(1) => out.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8(out).unwrap()
}

/// Sends `first` (a header, say, and a request, in one write: one segment), then reads
/// the answer line and as many bytes as `expect_after` has.
fn exchange(to: SocketAddr, from: &str, first: &[u8], expect_after: usize) -> (String, Vec<u8>) {
    let mut s = connect(to, Some(from)).expect("connect");
    s.write_all(first).unwrap();
    let l = line(&mut s);
    let mut rest = vec![0u8; expect_after];
    s.read_exact(&mut rest).expect("the bytes after the header");
    (l, rest)
}

fn v2_header(command: ppp::v2::Command, client: SocketAddr, dest: SocketAddr) -> Vec<u8> {
    ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | command,
        ppp::v2::Protocol::Stream,
        (client, dest),
    )
    .build()
    .unwrap()
}

fn config_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn start(dir: &Path, name: &str, file: &str) -> Daemon {
    Daemon::start_with_file(&dir.join(name), file, &[])
}

/// A `[[service]]` on `vip` with these lines, and real servers `servers`.
fn service(vip: SocketAddr, lines: &str, servers: &[SocketAddr]) -> String {
    let mut s = format!("[[service]]\ntcp = \"{vip}\"\n{lines}\n");
    for addr in servers {
        s.push_str(&format!("[[service.server]]\naddress = \"{addr}\"\n"));
    }
    s
}

/// The name a Name backend answers through `vip`, connecting from `from`.
fn name_via(vip: SocketAddr, from: &str) -> String {
    common::ask(vip, Some(from))
}

#[test]
fn behind_a_second_uvs_the_original_clients_are_scheduled_listed_and_passed_on() {
    let dir = config_dir();
    let servers: Vec<Backend> = ["A", "B", "C"]
        .into_iter()
        .map(|n| Backend::start(n, Behaviour::Name))
        .collect();
    let addrs: Vec<SocketAddr> = servers.iter().map(|b| b.addr).collect();
    let parsing = Parsing::start();
    let (inner_vip, direct_vip, inner_tlv_vip) = (vip(), vip(), vip());
    let inner = start(
        dir.path(),
        "inner.toml",
        &[
            service(inner_vip, "scheduler = \"sh\"\naccept_proxy = \"v2\"", &addrs),
            // The same servers in the same order, without the outer hop: sh's own picks.
            service(direct_vip, "scheduler = \"sh\"", &addrs),
            service(
                inner_tlv_vip,
                "accept_proxy = \"v2\"\nproxy_protocol = \"v2\"\nproxy_protocol_tlvs = [\"service_name\"]",
                &[parsing.addr],
            ),
        ]
        .concat(),
    );
    let (outer_vip, outer_tlv_vip) = (vip(), vip());
    let outer = start(
        dir.path(),
        "outer.toml",
        &[
            service(
                outer_vip,
                "scheduler = \"rr\"\nproxy_protocol = \"v2\"",
                &[inner_vip],
            ),
            service(
                outer_tlv_vip,
                "proxy_protocol = \"v2\"\nproxy_protocol_tlvs = [\"unique_id\"]",
                &[inner_tlv_vip],
            ),
        ]
        .concat(),
    );
    for v in [inner_vip, direct_vip, inner_tlv_vip] {
        inner.wait_listening(v);
    }
    for v in [outer_vip, outer_tlv_vip] {
        outer.wait_listening(v);
    }

    for client in ["127.0.0.2", "127.0.0.3"] {
        let direct = name_via(direct_vip, client);
        assert!(["A", "B", "C"].contains(&direct.as_str()), "{direct:?}");
        for _ in 0..5 {
            assert_eq!(
                name_via(outer_vip, client),
                direct,
                "{client} through the outer uvs goes where sh sends it directly"
            );
        }
    }
    // The inner's connection table names the original clients, never the outer uvs.
    let conns = inner.list(&["-L", "-n", "-c"]);
    let sources: Vec<&str> = conns
        .lines()
        .filter(|l| l.starts_with("TCP") && l.contains(&format!(" {inner_vip} ")))
        .map(|l| l.split_whitespace().nth(3).unwrap())
        .collect();
    assert_eq!(sources.len(), 10, "{conns}");
    for (ip, n) in [("127.0.0.2:", 5), ("127.0.0.3:", 5)] {
        assert_eq!(
            sources.iter().filter(|s| s.starts_with(ip)).count(),
            n,
            "{conns}"
        );
    }

    // A real server behind both sees the original client and port, the address it
    // connected to (the outer's VIP), the outer's unique id and the inner's name.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut s = connect(outer_tlv_vip, Some("127.0.0.2")).expect("connect");
        let me = s.local_addr().unwrap();
        s.write_all(b"hello").unwrap();
        let l = line(&mut s);
        let mut rest = [0u8; 5];
        s.read_exact(&mut rest).unwrap();
        assert_eq!(&rest, b"hello");
        let fields: Vec<&str> = l.split(' ').collect();
        assert_eq!(fields.len(), 4, "{l}");
        assert_eq!(fields[0], me.to_string(), "{l}");
        assert_eq!(fields[1], outer_tlv_vip.to_string(), "{l}");
        let id = fields[2].strip_prefix("05:").expect("a unique id first");
        assert_eq!(id.len(), 32, "16 bytes: {l}");
        ids.push(id.to_string());
        let name: String = format!("tcp {inner_tlv_vip}")
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(fields[3], format!("e5:{name}"), "{l}");
    }
    assert_ne!(ids[0], ids[1], "each connection its own id");
}

/// How a client's connection ended: closed (EOF or a reset), and when.
fn closed_after(mut s: TcpStream, started: Instant) -> Duration {
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) | Err(_) => started.elapsed(),
        Ok(_) => panic!("the daemon sent bytes to a rejected client"),
    }
}

#[test]
fn clients_with_no_header_a_wrong_one_or_a_slow_one_are_reset_within_the_deadline() {
    let dir = config_dir();
    let echo = Backend::start("E", Behaviour::Echo);
    let v = vip();
    let d = start(
        dir.path(),
        "uvs.toml",
        &service(
            v,
            "accept_proxy = \"v2\"\naccept_proxy_timeout = \"1s\"",
            &[echo.addr],
        ),
    );
    d.wait_listening(v);
    let deadline = Duration::from_secs(1);
    let slack = Duration::from_secs(2);
    let good_header = v2_header(
        ppp::v2::Command::Proxy,
        "127.0.0.9:4000".parse().unwrap(),
        v,
    );

    // One byte a second of a good header: the deadline is for the whole of it.
    let slow = connect(v, Some("127.0.0.5")).unwrap();
    let slow_started = Instant::now();
    let mut writer = slow.try_clone().unwrap();
    let trickle = good_header.clone();
    let trickler = std::thread::spawn(move || {
        for b in trickle {
            if writer.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    // Says nothing at all.
    let silent = connect(v, Some("127.0.0.6")).unwrap();
    let silent_started = Instant::now();

    // Meanwhile, the wrong ones, each closed, and a good client served.
    let wrong: [&[u8]; 3] = [
        b"GET / HTTP/1.0\r\n\r\n",
        b"\x00\x01\x02 garbage that is no header at all",
        b"PROXY TCP4 127.0.0.9 127.0.0.1 4000 80\r\nGET /",
    ];
    for bytes in wrong {
        let mut s = connect(v, Some("127.0.0.4")).unwrap();
        let started = Instant::now();
        let _ = s.write_all(bytes);
        let took = closed_after(s, started);
        assert!(took < deadline + slack, "{bytes:?}: closed after {took:?}");
    }
    let mut good = connect(v, Some("127.0.0.7")).unwrap();
    let mut first = good_header.clone();
    first.extend_from_slice(b"request");
    good.write_all(&first).unwrap();
    let mut back = [0u8; 7];
    good.read_exact(&mut back).unwrap();
    assert_eq!(
        &back, b"request",
        "the bytes after the header, first and whole"
    );
    assert_eq!(common::echoed(&mut good, b"more"), b"more");

    let took = closed_after(silent, silent_started);
    assert!(
        took >= deadline - Duration::from_millis(100) && took < deadline + slack,
        "silent: {took:?}"
    );
    let took = closed_after(slow, slow_started);
    assert!(
        took >= deadline - Duration::from_millis(100) && took < deadline + slack,
        "slow: {took:?}"
    );
    trickler.join().unwrap();
    // The good client still served after all of it.
    assert_eq!(common::echoed(&mut good, b"again"), b"again");

    let expected = "  accepts PROXY v2 (header within 1000 ms): PROXY headers rejected 5";
    eventually("five rejected", || {
        d.status().lines().any(|l| l == expected)
    });
    let status = d.status();
    assert!(status.lines().any(|l| l == expected), "{status}");
}

#[test]
fn v1_any_local_and_unknown_are_taken_and_the_request_follows_the_header_whole() {
    let dir = config_dir();
    let parsing = Parsing::start();
    let (v1_vip, any_vip) = (vip(), vip());
    let d = start(
        dir.path(),
        "uvs.toml",
        &[
            service(
                v1_vip,
                "accept_proxy = \"v1\"\nproxy_protocol = \"v1\"",
                &[parsing.addr],
            ),
            service(
                any_vip,
                "accept_proxy = \"any\"\nproxy_protocol = \"v2\"",
                &[parsing.addr],
            ),
        ]
        .concat(),
    );
    d.wait_listening(v1_vip);
    d.wait_listening(any_vip);
    let request = b"GET / HTTP/1.0\r\nHost: x\r\n\r\n";
    let with = |header: &[u8]| [header, &request[..]].concat();

    // v1 to a v1 service: the header's client and destination go on (v1 again).
    let (l, rest) = exchange(
        v1_vip,
        "127.0.0.4",
        &with(b"PROXY TCP4 127.0.0.9 127.0.0.8 4000 80\r\n"),
        request.len(),
    );
    assert_eq!(l, "127.0.0.9:4000 127.0.0.8:80 -");
    assert_eq!(rest, request);

    // v1 and v2 to an "any" service, sent on as v2.
    let (l, rest) = exchange(
        any_vip,
        "127.0.0.4",
        &with(b"PROXY TCP4 127.0.0.9 127.0.0.8 4001 81\r\n"),
        request.len(),
    );
    assert_eq!(l, "127.0.0.9:4001 127.0.0.8:81 -");
    assert_eq!(rest, request);
    let v2 = v2_header(
        ppp::v2::Command::Proxy,
        "127.0.0.9:4002".parse().unwrap(),
        "127.0.0.8:82".parse().unwrap(),
    );
    let (l, rest) = exchange(any_vip, "127.0.0.4", &with(&v2), request.len());
    assert_eq!(l, "127.0.0.9:4002 127.0.0.8:82 -");
    assert_eq!(rest, request);

    // LOCAL (v2) and UNKNOWN (v1): the balancer's own connection, served as from it.
    let local = v2_header(
        ppp::v2::Command::Local,
        "127.0.0.9:4003".parse().unwrap(),
        "127.0.0.8:83".parse().unwrap(),
    );
    for header in [&local[..], b"PROXY UNKNOWN\r\n"] {
        let mut s = connect(any_vip, Some("127.0.0.4")).unwrap();
        let me = s.local_addr().unwrap();
        s.write_all(&with(header)).unwrap();
        let l = line(&mut s);
        assert_eq!(l, format!("{me} {any_vip} -"));
        let mut rest = vec![0u8; request.len()];
        s.read_exact(&mut rest).unwrap();
        assert_eq!(rest, request);
    }
    let status = d.status();
    assert!(
        status
            .lines()
            .any(|l| l == "  accepts PROXY any (header within 3000 ms): PROXY headers rejected 0"),
        "{status}"
    );
}

#[test]
fn only_the_peers_in_accept_proxy_from_may_send_the_header() {
    let dir = config_dir();
    let parsing = Parsing::start();
    let v = vip();
    let d = start(
        dir.path(),
        "uvs.toml",
        &service(
            v,
            "accept_proxy = \"v2\"\naccept_proxy_from = [\"127.0.0.1/32\"]\nproxy_protocol = \"v2\"",
            &[parsing.addr],
        ),
    );
    d.wait_listening(v);
    let claim = v2_header(
        ppp::v2::Command::Proxy,
        "127.0.0.2:4000".parse().unwrap(),
        "127.0.0.8:80".parse().unwrap(),
    );
    let request = b"GET / HTTP/1.0\r\n\r\n";
    let first = [&claim[..], &request[..]].concat();

    // From a peer not in the list: reset, nothing of it reaches the real server. The
    // reset comes without waiting for a byte, so it may already be there when the
    // socket's options are set after the connect.
    match connect(v, Some("127.0.0.9")) {
        Ok(mut s) => {
            let _ = s.write_all(&first);
            let _ = closed_after(s, Instant::now());
        }
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }

    // From the trusted balancer: the claimed client is the client.
    let (l, rest) = exchange(v, "127.0.0.1", &first, request.len());
    assert_eq!(l, "127.0.0.2:4000 127.0.0.8:80 -");
    assert_eq!(rest, request);

    let expected =
        "  accepts PROXY v2 (header within 3000 ms) from 1 prefix: PROXY headers rejected 1";
    eventually("one rejected", || d.status().lines().any(|l| l == expected));
    let status = d.status();
    assert!(status.lines().any(|l| l == expected), "{status}");
}
