//! PROXY protocol v2 over UDP on real sockets on loopback, both ways: a UDP service with
//! `proxy_protocol = "v2"` puts a header naming the client in front of every datagram
//! to its real servers (one-packet scheduling too), and one with `accept_proxy` reads
//! and cuts off the header of every datagram, takes the client it names for everything
//! (`-L -c`, scheduling) and answers the peer that sent it; bad headers are dropped and
//! counted; v1 over UDP is refused by `uvs check` and uvsadm.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Daemon, Reply, UdpBackend, bounded, eventually, free_udp_port, text};
use ppp::v2::{Addresses, Builder, Command as PpCommand, Header, Protocol, Version};

/// A client socket on `from` (an address of 127.0.0.0/8, or [::1]).
fn client(from: &str) -> UdpSocket {
    let s = UdpSocket::bind(format!("{from}:0")).expect("client bind");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// The next datagram on `c`, and who sent it.
fn receive(c: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 65536];
    let (n, from) = c.recv_from(&mut buf).expect("an answer");
    buf.truncate(n);
    (buf, from)
}

/// What a header-reading real server received: the header's source and destination,
/// and the payload after it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    source: SocketAddr,
    destination: SocketAddr,
    payload: Vec<u8>,
}

/// A real server that reads the PROXY v2 header of every datagram (DGRAM, PROXY
/// command), records it, and answers with the payload alone; a datagram without such a
/// header is recorded as `bad` and not answered.
struct HeaderServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    bad: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
}

impl HeaderServer {
    fn start(bind: &str) -> HeaderServer {
        let socket = UdpSocket::bind(bind).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let (seen, bad, stop) = (
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(AtomicBool::new(false)),
        );
        let (seen2, bad2, stop2) = (Arc::clone(&seen), Arc::clone(&bad), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let datagram = &buf[..n];
                let header = Header::try_from(datagram)
                    .ok()
                    .filter(|h| h.command == PpCommand::Proxy && h.protocol == Protocol::Datagram);
                let addresses = header.as_ref().and_then(|h| match h.addresses {
                    Addresses::IPv4(a) => Some((
                        SocketAddr::from((a.source_address, a.source_port)),
                        SocketAddr::from((a.destination_address, a.destination_port)),
                    )),
                    Addresses::IPv6(a) => Some((
                        SocketAddr::from((a.source_address, a.source_port)),
                        SocketAddr::from((a.destination_address, a.destination_port)),
                    )),
                    _ => None,
                });
                let (Some(header), Some((source, destination))) = (header, addresses) else {
                    bad2.lock().unwrap().push(datagram.to_vec());
                    continue;
                };
                let payload = datagram[header.len()..].to_vec();
                // Recorded before the answer, which the test waits for.
                seen2.lock().unwrap().push(Seen {
                    source,
                    destination,
                    payload: payload.clone(),
                });
                let _ = socket.send_to(&payload, from);
            }
        });
        HeaderServer {
            addr,
            seen,
            bad,
            stop,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for HeaderServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A PROXY v2 header (DGRAM) naming `client` and `local`, in front of `payload`.
fn with_header(client: SocketAddr, local: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut d = Builder::with_addresses(
        Version::Two | PpCommand::Proxy,
        Protocol::Datagram,
        (client, local),
    )
    .build()
    .unwrap();
    d.extend(payload);
    d
}

/// The UDP entries of `-L -n -c` (not templates): (client, virtual, destination).
fn flows(d: &Daemon) -> Vec<(String, String, String)> {
    let mut flows: Vec<_> = d
        .list(&["-L", "-n", "-c"])
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 6 && f[0] == "UDP" && f[2] == "UDP")
                .then(|| (f[3].to_string(), f[4].to_string(), f[5].to_string()))
        })
        .collect();
    flows.sort();
    flows
}

/// `uvs status`'s count of PROXY headers rejected for the service on `vip`.
fn proxy_rejected(d: &Daemon) -> u64 {
    let status = d.status();
    let line = status
        .lines()
        .find(|l| l.contains("PROXY headers rejected"))
        .unwrap_or_else(|| panic!("no PROXY line in\n{status}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_real_server_reads_the_client_from_every_datagram_header() {
    let d = Daemon::start();
    let server = HeaderServer::start("127.0.0.1:0");
    let v = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    d.balance_on(
        "-u",
        v,
        &["-s", "rr", "--proxy-protocol", "v2"],
        &[(server.addr, &[])],
    );
    let clients: Vec<UdpSocket> = ["127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.3"]
        .iter()
        .map(|a| client(a))
        .collect();
    let mut sent = Vec::new();
    for round in 0..3u8 {
        for (k, c) in clients.iter().enumerate() {
            let payload = vec![b'a' + k as u8; 10 + usize::from(round) * 100];
            c.send_to(&payload, v).unwrap();
            let (answer, from) = receive(c);
            assert_eq!(from, v, "the answer comes from the VIP");
            assert_eq!(answer, payload, "the answer has no header");
            sent.push(Seen {
                source: c.local_addr().unwrap(),
                destination: v,
                payload,
            });
        }
    }
    assert_eq!(server.seen(), sent, "every datagram, each with its client");
    assert!(server.bad.lock().unwrap().is_empty());
    // Counted as the clients sent them: 12 datagrams in, 12 out, without headers.
    let bytes: usize = sent.iter().map(|s| s.payload.len()).sum();
    let stats = d.list(&["-L", "-n", "--stats", "-u", &v.to_string()]);
    let line = stats.lines().find(|l| l.starts_with("UDP")).unwrap();
    assert_eq!(
        line.split_whitespace().skip(2).collect::<Vec<_>>(),
        ["4", "12", "12", &bytes.to_string(), &bytes.to_string()],
        "{stats}"
    );
}

#[test]
fn one_packet_scheduling_and_ipv6_send_the_header_too_and_oversized_datagrams_are_dropped() {
    let d = Daemon::start();
    let server = HeaderServer::start("127.0.0.1:0");
    let v = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    d.balance_on(
        "-u",
        v,
        &["-s", "rr", "-o", "--proxy-protocol", "v2"],
        &[(server.addr, &[])],
    );
    let server6 = HeaderServer::start("[::1]:0");
    let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, free_udp_port()));
    d.balance_on(
        "-u",
        v6,
        &["-s", "rr", "--proxy-protocol", "v2"],
        &[(server6.addr, &[])],
    );
    for (vip, from, server) in [(v, "127.0.0.2", &server), (v6, "[::1]", &server6)] {
        let c = client(from);
        for k in 0..3u8 {
            c.send_to(&[k; 5], vip).unwrap();
            assert_eq!(receive(&c), (vec![k; 5], vip));
        }
        let want: Vec<Seen> = (0..3u8)
            .map(|k| Seen {
                source: c.local_addr().unwrap(),
                destination: vip,
                payload: vec![k; 5],
            })
            .collect();
        assert_eq!(server.seen(), want, "through {vip}");
    }
    // The largest IPv4 datagram cannot carry 28 bytes more: dropped and counted; the
    // next one passes.
    let c = client("127.0.0.3");
    c.send_to(&vec![7; 65507], v).unwrap();
    c.send_to(&vec![7; 65507 - 28], v).unwrap();
    let (answer, _) = receive(&c);
    assert_eq!(answer.len(), 65507 - 28);
    let said = "UDP datagrams dropped as too large for their PROXY v2 header 1";
    assert!(d.status().contains(said), "{}", d.status());
    assert_eq!(server.seen().len(), 4);
}

/// A file's UDP service on `vip`, scheduled by source hash, taking PROXY v2 headers,
/// with `servers`.
fn accepting(vip: SocketAddr, servers: &[SocketAddr]) -> String {
    service(vip, "accept_proxy = \"v2\"\n", servers)
}

/// A file's UDP service on `vip`, scheduled by source hash, with `options` (lines) and
/// `servers`.
fn service(vip: SocketAddr, options: &str, servers: &[SocketAddr]) -> String {
    let mut file = format!("[[service]]\nudp = \"{vip}\"\nscheduler = \"sh\"\n{options}");
    for s in servers {
        file.push_str(&format!("[[service.server]]\naddress = \"{s}\"\n"));
    }
    file
}

#[test]
fn behind_a_uvs_that_sends_headers_the_inner_uvs_sees_the_original_clients() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = UdpBackend::pair(Reply::Echo);
    let inner_vip = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    // The same service without the header, for the clients to come to directly.
    let direct_vip = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    let inner = Daemon::start_with_file(
        &dir.path().join("inner.toml"),
        &(accepting(inner_vip, &[a.addr, b.addr]) + &service(direct_vip, "", &[a.addr, b.addr])),
        &[],
    );
    inner.wait_listening_on("udp", inner_vip);
    inner.wait_listening_on("udp", direct_vip);
    let outer = Daemon::start();
    let outer_vip = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    outer.balance_on(
        "-u",
        outer_vip,
        &["-s", "rr", "--proxy-protocol", "v2"],
        &[(inner_vip, &[])],
    );
    let clients = [client("127.0.0.2"), client("127.0.0.3")];
    for round in 0..3u8 {
        for (k, c) in clients.iter().enumerate() {
            let payload = format!("client {k} round {round}").into_bytes();
            c.send_to(&payload, outer_vip).unwrap();
            assert_eq!(
                receive(c),
                (payload, outer_vip),
                "the real server behind the inner uvs got the payload alone (it echoes)"
            );
        }
    }
    // The inner uvs knows the clients themselves (one flow each, though all came from
    // the outer uvs), and source hashing put each where it puts the client coming
    // directly.
    let through: Vec<(String, String)> = flows(&inner)
        .into_iter()
        .filter(|e| e.1 == inner_vip.to_string())
        .map(|e| (e.0, e.2))
        .collect();
    let mut want: Vec<String> = clients
        .iter()
        .map(|c| c.local_addr().unwrap().to_string())
        .collect();
    want.sort();
    assert_eq!(
        through.iter().map(|e| e.0.clone()).collect::<Vec<_>>(),
        want,
        "{through:?}"
    );
    for c in &clients {
        c.send_to(b"direct", direct_vip).unwrap();
        assert_eq!(receive(c), (b"direct".to_vec(), direct_vip));
    }
    let direct: Vec<(String, String)> = flows(&inner)
        .into_iter()
        .filter(|e| e.1 == direct_vip.to_string())
        .map(|e| (e.0, e.2))
        .collect();
    assert_eq!(
        through, direct,
        "sh picks alike with or without the outer hop"
    );
    assert_eq!(
        a.received.load(Ordering::Relaxed) + b.received.load(Ordering::Relaxed),
        8
    );
    assert_eq!(proxy_rejected(&inner), 0);
}

#[test]
fn clients_multiplexed_over_one_socket_get_a_flow_each_and_their_replies() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = UdpBackend::pair(Reply::Echo);
    let vip = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    let d = Daemon::start_with_file(
        &dir.path().join("uvs.toml"),
        &accepting(vip, &[a.addr, b.addr]),
        &[],
    );
    d.wait_listening_on("udp", vip);
    let balancer = client("127.0.0.1");
    let named: [SocketAddr; 2] = [
        "127.0.0.2:4000".parse().unwrap(),
        "127.0.0.3:5000".parse().unwrap(),
    ];
    for round in 0..3u8 {
        for (k, who) in named.iter().enumerate() {
            let payload = format!("{k}/{round}").into_bytes();
            balancer
                .send_to(&with_header(*who, vip, &payload), vip)
                .unwrap();
            assert_eq!(
                receive(&balancer),
                (payload, vip),
                "the reply comes back to the balancer, without a header"
            );
        }
    }
    let entries = flows(&d);
    assert_eq!(
        entries.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        ["127.0.0.2:4000", "127.0.0.3:5000"],
        "{entries:?}"
    );
    assert!(
        entries.iter().all(|e| e.1 == vip.to_string()),
        "{entries:?}"
    );
    // LOCAL: the balancer's own datagram, served as from the balancer.
    let local = Builder::with_addresses(
        Version::Two | PpCommand::Local,
        Protocol::Unspecified,
        Addresses::Unspecified,
    )
    .build()
    .unwrap();
    balancer
        .send_to(&[local.as_slice(), b"ping"].concat(), vip)
        .unwrap();
    assert_eq!(receive(&balancer), (b"ping".to_vec(), vip));
    let me = balancer.local_addr().unwrap().to_string();
    eventually("the balancer's own flow", || {
        flows(&d).iter().any(|e| e.0 == me)
    });
    assert_eq!(flows(&d).len(), 3);
    assert_eq!(proxy_rejected(&d), 0);
}

#[test]
fn bad_headers_are_dropped_and_counted_while_a_good_client_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let echo = UdpBackend::start("E", Reply::Echo);
    let vip = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    let d = Daemon::start_with_file(
        &dir.path().join("uvs.toml"),
        &accepting(vip, &[echo.addr]),
        &[],
    );
    d.wait_listening_on("udp", vip);
    let good = client("127.0.0.2");
    let bad = client("127.0.0.3");
    let named: SocketAddr = "127.0.0.9:9999".parse().unwrap();
    let header = with_header(named, vip, b"");
    let mut garbage = header.clone();
    garbage[13] = 0x77;
    let stream = Builder::with_addresses(
        Version::Two | PpCommand::Proxy,
        Protocol::Stream,
        (named, vip),
    )
    .build()
    .unwrap();
    let bads: Vec<Vec<u8>> = vec![
        b"no header at all".to_vec(),
        [garbage.as_slice(), b"x"].concat(),
        header[..20].to_vec(),
        [stream.as_slice(), b"tcp?"].concat(),
        b"PROXY UDP4 127.0.0.9 127.0.0.1 9999 53\r\nv1".to_vec(),
    ];
    for (k, datagram) in bads.iter().enumerate() {
        bad.send_to(datagram, vip).unwrap();
        let payload = format!("good {k}").into_bytes();
        good.send_to(&with_header(good.local_addr().unwrap(), vip, &payload), vip)
            .unwrap();
        assert_eq!(receive(&good), (payload, vip));
    }
    eventually("five rejected", || proxy_rejected(&d) == bads.len() as u64);
    bad.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        bad.recv_from(&mut buf).is_err(),
        "nothing answers a bad datagram"
    );
    assert_eq!(echo.received.load(Ordering::Relaxed), bads.len());
    let entries = flows(&d);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].0, good.local_addr().unwrap().to_string());
    assert!(
        d.status()
            .contains("accepts PROXY v2 in every datagram: PROXY headers rejected 5"),
        "{}",
        d.status()
    );
}

#[test]
fn uvs_check_refuses_v1_on_udp_services() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uvs.toml");
    std::fs::write(
        &path,
        "[[service]]\nudp = \"127.0.0.1:5353\"\nproxy_protocol = \"v1\"\n\
         [[service]]\nudp = \"127.0.0.1:5354\"\naccept_proxy = \"v1\"\n\
         [[service]]\nudp = \"127.0.0.1:5355\"\nproxy_protocol = \"v2\"\naccept_proxy = \"any\"\n\
         [[service]]\ntcp = \"127.0.0.1:5356\"\nproxy_protocol = \"v1\"\naccept_proxy = \"v1\"\n",
    )
    .unwrap();
    let mut check = Command::new(common::UVS);
    check.args(["check", "-c"]).arg(&path);
    let out = bounded(check, "uvs check");
    let said = text(&out.stderr).replace(path.to_str().unwrap(), "uvs.toml");
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert_eq!(
        said,
        "uvs.toml:3:18: service[0].proxy_protocol: PROXY protocol v1 cannot be sent over UDP: \
         only \"v2\" works over UDP (a header in front of each datagram)\n\
         uvs.toml:6:16: service[1].accept_proxy: PROXY protocol v1 cannot be taken over UDP: \
         only \"v2\" works over UDP (a header at the front of each datagram; \"any\" means v2 \
         there)\n\
         uvs: uvs.toml: 2 problems\n"
    );
}

#[test]
fn uvsadm_refuses_proxy_protocol_v1_on_a_udp_service() {
    let d = Daemon::start();
    let out = d.uvsadm(&["-A", "-u", "127.0.0.1:5353", "--proxy-protocol", "v1"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(
            "PROXY protocol v1 is for TCP virtual services: a UDP virtual service sends \
             only v2 (--proxy-protocol v2)"
        ),
        "{}",
        text(&out.stderr)
    );
    d.ok(&["-A", "-u", "127.0.0.1:5353", "--proxy-protocol", "v2"]);
    assert!(
        d.save()
            .contains("-A -u 127.0.0.1:5353 -s wlc --proxy-protocol v2"),
        "{}",
        d.save()
    );
}

#[test]
fn a_reload_that_turns_accept_proxy_on_reads_headers_from_then_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uvs.toml");
    let echo = UdpBackend::start("E", Reply::Echo);
    let vip = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    let d = Daemon::start_with_file(&path, &service(vip, "", &[echo.addr]), &[]);
    d.wait_listening_on("udp", vip);
    let plain = client("127.0.0.2");
    plain.send_to(b"plain", vip).unwrap();
    assert_eq!(receive(&plain), (b"plain".to_vec(), vip));
    common::write_file(&path, &accepting(vip, &[echo.addr]));
    common::sighup(&d.child);
    eventually("the reload", || d.status().contains("accepts PROXY v2"));
    // The listener follows the table a moment later: until then a datagram read the
    // old way is dropped, never passed on with its header.
    let balancer = client("127.0.0.1");
    balancer
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let named: SocketAddr = "127.0.0.7:7000".parse().unwrap();
    let mut answered = None;
    for _ in 0..100 {
        balancer
            .send_to(&with_header(named, vip, b"proxied"), vip)
            .unwrap();
        let mut buf = [0u8; 256];
        if let Ok((n, from)) = balancer.recv_from(&mut buf) {
            answered = Some((buf[..n].to_vec(), from));
            break;
        }
    }
    assert_eq!(answered, Some((b"proxied".to_vec(), vip)));
    assert!(
        flows(&d).iter().any(|e| e.0 == named.to_string()),
        "{:?}",
        flows(&d)
    );
    // A datagram without a header is now refused.
    plain.send_to(b"plain", vip).unwrap();
    eventually("one rejected", || proxy_rejected(&d) == 1);
}

#[test]
fn only_the_peers_in_accept_proxy_from_may_send_headers() {
    let dir = tempfile::tempdir().unwrap();
    let echo = UdpBackend::start("E", Reply::Echo);
    let vip = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    let d = Daemon::start_with_file(
        &dir.path().join("uvs.toml"),
        &service(
            vip,
            "accept_proxy = \"v2\"\naccept_proxy_from = [\"127.0.0.1/32\"]\n",
            &[echo.addr],
        ),
        &[],
    );
    d.wait_listening_on("udp", vip);
    let claimed: SocketAddr = "127.0.0.2:4000".parse().unwrap();
    // From a peer not in the list: dropped unread, counted, not answered.
    let untrusted = client("127.0.0.9");
    untrusted
        .send_to(&with_header(claimed, vip, b"from .9"), vip)
        .unwrap();
    eventually("one rejected", || proxy_rejected(&d) == 1);
    // From the trusted balancer: the claimed client is the flow's client.
    let trusted = client("127.0.0.1");
    trusted
        .send_to(&with_header(claimed, vip, b"from .1"), vip)
        .unwrap();
    assert_eq!(receive(&trusted), (b"from .1".to_vec(), vip));
    untrusted
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        untrusted.recv_from(&mut buf).is_err(),
        "nothing answers an untrusted peer"
    );
    assert_eq!(echo.received.load(Ordering::Relaxed), 1);
    let entries = flows(&d);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].0, claimed.to_string());
    let status = d.status();
    assert!(
        status
            .lines()
            .any(|l| l
                == "  accepts PROXY v2 in every datagram from 1 prefix: PROXY headers rejected 1"),
        "{status}"
    );
}
