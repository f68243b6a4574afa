//! The metrics endpoint over a real daemon: `promtool check metrics` accepts a scrape
//! taken under load; node_exporter's and uvs's series agree with `uvsadm -L -n --stats`
//! for the same moment; a deleted server's series are gone from the next scrape; the
//! other paths answer as a probe expects. And it cannot take the daemon down: 1 100 idle
//! connections under an open-files limit of 1 024 leave the VIPs, uvsadm and the
//! endpoint working; 50 clients stuck on a 31 MiB body share one copy of it and are
//! dropped by the write deadline; slow readers arriving one after the other, each on a
//! body of its own, hold at most two bodies between them, the older ones being reset.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;

use common::{Backend, Behaviour, Daemon, echoed, http_get, text, vip};

fn scrape(d: &Daemon) -> String {
    let (status, body) = http_get(d.metrics_address(), "GET", "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    body
}

/// Sample lines of `name` with their labels: (label text, value).
fn samples<'a>(text: &'a str, name: &str) -> Vec<(&'a str, f64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => r.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            Some((labels, value.parse().ok()?))
        })
        .collect()
}

/// The value of `name` for the sample whose labels contain every one of `with`.
fn value(text: &str, name: &str, with: &[String]) -> f64 {
    let found: Vec<f64> = samples(text, name)
        .into_iter()
        .filter(|(labels, _)| with.iter().all(|w| labels.contains(w.as_str())))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(found.len(), 1, "one {name} with {with:?} in\n{text}");
    found[0]
}

/// The endpoint's clients dropped for any of these `reasons`, from a scrape `body`.
fn dropped(body: &str, reasons: &[&str]) -> f64 {
    reasons
        .iter()
        .map(|r| {
            let reason = [format!("reason=\"{r}\"")];
            value(body, "uvs_metrics_clients_dropped_total", &reason)
        })
        .sum()
}

fn two_servers(behaviour: Behaviour) -> (Daemon, SocketAddr, Backend, Backend) {
    let d = Daemon::start();
    let (a, b) = Backend::pair(behaviour);
    let v = vip();
    d.balance_on("-t", v, &["-s", "rr"], &[(a.addr, &[]), (b.addr, &[])]);
    (d, v, a, b)
}

#[test]
#[cfg_attr(
    not(uvs_has_promtool),
    ignore = "promtool not found when uvs was built: apt-get install prometheus, then touch build.rs"
)]
fn promtool_accepts_a_scrape_taken_under_load() {
    #[cfg(uvs_has_promtool)]
    lint_scrapes_under_load(env!("UVS_PROMTOOL_PATH"));
}

/// Five scrapes taken while clients go through a VIP, each linted by `promtool check
/// metrics`, which must accept it.
#[cfg(uvs_has_promtool)]
fn lint_scrapes_under_load(promtool: &str) {
    use common::ask;
    use std::process::{Command, Stdio};
    let (d, v, _a, _b) = two_servers(Behaviour::Name);
    d.ok(&["-A", "-f", "3", "-s", "wlc"]);
    d.ok(&["-a", "-f", "3", "-r", "127.0.0.9", "-m"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 100_000 {
                ask(v, None);
                n += 1;
            }
        })
    };
    let mut taken = 0;
    for _ in 0..5 {
        let body = scrape(&d);
        let mut child = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run promtool");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics:\n{}{}\n--- the scrape:\n{body}",
            text(&out.stdout),
            text(&out.stderr)
        );
        taken += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.join().unwrap();
    assert_eq!(taken, 5);
}

#[test]
fn the_series_agree_with_the_listing_and_follow_the_table() {
    let (d, v, a, b) = two_servers(Behaviour::Echo);
    let round_trip = |s: &mut std::net::TcpStream| assert_eq!(echoed(s, b"ping"), b"ping");
    for _ in 0..7 {
        round_trip(&mut common::connect(v, None).unwrap());
    }
    // A connection held open (an echo server keeps it): one ActiveConn.
    let mut held = common::connect(v, None).unwrap();
    round_trip(&mut held);
    common::eventually("seven connections closed, one open", || {
        let stats = d.list(&["-L", "-n", "--stats", "--exact", "-t", &v.to_string()]);
        stats
            .lines()
            .any(|l| l.starts_with("TCP") && l.split_whitespace().nth(2) == Some("8"))
            && d.status().contains(", 1 open connection\n")
    });
    let body = scrape(&d);
    let stats = d.list(&["-L", "-n", "--stats", "--exact", "-t", &v.to_string()]);
    let listing = d.list(&["-L", "-n", "-t", &v.to_string()]);
    let column = |text: &str, server: SocketAddr, i: usize| -> f64 {
        text.lines()
            .find(|l| l.contains(&format!("-> {server} ")))
            .and_then(|l| l.split_whitespace().nth(i))
            .and_then(|x| x.parse().ok())
            .unwrap()
    };
    let active: f64 = [a.addr, b.addr]
        .iter()
        .map(|s| column(&listing, *s, 4))
        .sum();
    assert_eq!(active, 1.0, "the held connection:\n{listing}");
    let mut checked = HashMap::new();
    for server in [a.addr, b.addr] {
        let node = vec![
            format!("local_port=\"{}\"", v.port()),
            format!("remote_port=\"{}\"", server.port()),
            "proto=\"TCP\"".to_string(),
        ];
        assert_eq!(
            value(&body, "node_ipvs_backend_connections_active", &node),
            column(&listing, server, 4)
        );
        assert_eq!(
            value(&body, "node_ipvs_backend_connections_inactive", &node),
            column(&listing, server, 5)
        );
        assert_eq!(value(&body, "node_ipvs_backend_weight", &node), 1.0);
        for (name, i) in [
            ("uvs_backend_connections_total", 2),
            ("uvs_backend_incoming_packets_total", 3),
            ("uvs_backend_outgoing_packets_total", 4),
            ("uvs_backend_incoming_bytes_total", 5),
            ("uvs_backend_outgoing_bytes_total", 6),
        ] {
            assert_eq!(
                value(&body, name, &node),
                column(&stats, server, i),
                "{name}"
            );
        }
        checked.insert(server, ());
    }
    let service_line = stats.lines().find(|l| l.starts_with("TCP")).unwrap();
    let conns: f64 = service_line
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(conns, 8.0);
    assert_eq!(value(&body, "node_ipvs_connections_total", &[]), 8.0);
    // -Z zeroes the listing, not the counters Prometheus reads.
    d.ok(&["-Z"]);
    let after_zero = scrape(&d);
    assert_eq!(value(&after_zero, "node_ipvs_connections_total", &[]), 8.0);
    // A deleted server's series are gone from the next scrape.
    d.ok(&["-d", "-t", &v.to_string(), "-r", &b.addr.to_string()]);
    let after = scrape(&d);
    let b_port = format!("remote_port=\"{}\"", b.addr.port());
    assert!(
        !after
            .lines()
            .any(|l| !l.starts_with('#') && l.contains(&b_port)),
        "{after}"
    );
    assert!(after.contains(&format!("remote_port=\"{}\"", a.addr.port())));
    assert_eq!(checked.len(), 2);
}

#[test]
fn probes_and_strays_get_plain_answers() {
    let d = Daemon::start();
    let at = d.metrics_address();
    assert_eq!(
        http_get(at, "GET", "/healthz"),
        ("HTTP/1.1 200 OK".to_string(), "ok\n".to_string())
    );
    let (status, page) = http_get(at, "GET", "/");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(page.contains("<a href=\"/metrics\">"), "{page}");
    assert_eq!(http_get(at, "GET", "/nothing").0, "HTTP/1.1 404 Not Found");
    assert_eq!(
        http_get(at, "POST", "/metrics").0,
        "HTTP/1.1 405 Method Not Allowed"
    );
    let (status, body) = http_get(at, "HEAD", "/metrics");
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", ""));
    // Garbage and silence leave the endpoint serving.
    let mut junk = common::connect(at, None).unwrap();
    use std::io::Write;
    junk.write_all(&[0xff; 9000]).unwrap();
    drop(junk);
    assert_eq!(http_get(at, "GET", "/healthz").0, "HTTP/1.1 200 OK");
    // The garbage was reset and counted (a table change: a body of now, not the HEAD's).
    d.ok(&["-A", "-f", "1", "-s", "rr"]);
    let bad = ["reason=\"bad_request\"".to_string()];
    assert_eq!(
        value(&scrape(&d), "uvs_metrics_clients_dropped_total", &bad),
        1.0
    );
}

/// Reads one response with a bounded wait: (status line, Content-Length, body length).
fn fetch(at: SocketAddr, path: &str) -> (String, usize, usize) {
    use std::io::{Read, Write};
    let mut s = common::connect(at, None).expect("connect to the metrics endpoint");
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut response = Vec::new();
    s.read_to_end(&mut response).expect("read the response");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = text(&response[..split]);
    let length = content_length(&head);
    let status = head.lines().next().unwrap_or("").to_string();
    (status, length, response.len() - split - 4)
}

#[test]
fn idle_connections_cannot_exhaust_the_daemon() {
    use std::io::Read;
    const IDLE: usize = 1100;
    const OPEN_FILES: usize = 1024;
    // The test holds the idle connections itself.
    assert!(
        common::raise_own_open_files(IDLE as u64 + 512),
        "this test needs {} descriptors of its own (raise ulimit -Hn)",
        IDLE + 512
    );
    let d = Daemon::start_with_open_files(OPEN_FILES as u32, &[]);
    let echo = Backend::start("E", Behaviour::Echo);
    let v = vip();
    d.balance_on("-t", v, &["-s", "rr"], &[(echo.addr, &[])]);
    let at = d.metrics_address();
    let before = d.open_descriptors();
    let cap = uvs::exporter::Limits::default().max_connections;
    let mut most = 0;
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        idle.push(common::connect(at, None).expect("connect an idle client"));
        if i % 100 == 0 {
            most = most.max(d.open_descriptors());
        }
    }
    // Everything else works while the idle clients stay: traffic through the VIP, byte
    // for byte...
    let mut client = common::connect(v, None).expect("connect to the VIP");
    let sent: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
    let back = echoed(&mut client, &sent);
    assert!(back == sent, "the echo came back altered");
    drop(client);
    most = most.max(d.open_descriptors());
    // ...the control socket...
    assert!(d.list(&["-L", "-n"]).contains(&v.to_string()));
    // ...and the endpoint itself, whose answers come after every idle connection in the
    // accept queue.
    assert_eq!(
        http_get(at, "GET", "/healthz"),
        ("HTTP/1.1 200 OK".to_string(), "ok\n".to_string())
    );
    let body = scrape(&d);
    assert!(
        body.contains(&format!("local_port=\"{}\"", v.port())),
        "{body}"
    );
    // Every idle client but a cap's worth had gone before the scrape was accepted, each
    // counted.
    let gone = dropped(&body, &["evicted", "head_timeout"]);
    assert!(gone >= (IDLE - cap) as f64, "{gone} idle clients let go");
    most = most.max(d.open_descriptors());
    // The endpoint held its cap (and the one over it), nothing near the limit.
    assert!(
        most <= before + cap + 1 + 16,
        "{most} descriptors open, {before} before the flood, cap {cap}"
    );
    assert!(most < OPEN_FILES - 256, "{most} descriptors open");
    // The idle clients the endpoint let go of see their connection closed; at most a
    // cap's worth are still held.
    let mut still_open = 0;
    for s in &mut idle {
        s.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        if let Err(e) = s.read(&mut byte)
            && e.kind() == std::io::ErrorKind::WouldBlock
        {
            still_open += 1;
        }
    }
    assert!(still_open <= cap, "{still_open} idle clients still held");
    assert_eq!(idle.len(), IDLE);
}

/// `services` fwmark services of 4 servers each, 10.x.y.z:80 (mark m's first server is
/// 10.0.0.4m for small m), restored in one `uvsadm -R`. They are table entries only:
/// nothing listens there and nothing is contacted.
fn fwmark_table(d: &Daemon, services: u32) {
    let mut rules = String::new();
    for mark in 1..=services {
        rules.push_str(&format!("-A -f {mark} -s wlc\n"));
        for j in 0..4 {
            let n = mark * 4 + j;
            let (b, c, e) = ((n >> 16) & 255, (n >> 8) & 255, n & 255);
            rules.push_str(&format!("-a -f {mark} -r 10.{b}.{c}.{e}:80 -m\n"));
        }
    }
    let restored = d.uvsadm_with_input(&["-R"], &rules);
    assert!(restored.status.success(), "{}", text(&restored.stderr));
}

#[test]
fn clients_that_never_read_share_one_body_and_are_dropped() {
    use std::io::Write;
    const SERVICES: u32 = 1500;
    const STUCK: usize = 50;
    let d = Daemon::start();
    fwmark_table(&d, SERVICES);
    let at = d.metrics_address();
    let body = scrape(&d);
    let servers = samples(&body, "node_ipvs_backend_weight").len();
    assert_eq!(servers, SERVICES as usize * 4);
    let size = body.len();
    drop(body);
    let before = d.open_descriptors();
    // From here the peak resident size (VmHWM) covers the stuck clients, the probes and
    // the scrape, not just the moments sampled.
    d.reset_peak_resident();
    // Clients that ask for the whole table and never read a byte of it.
    let mut stuck = Vec::new();
    for _ in 0..STUCK {
        let mut s = common::connect(at, None).expect("connect");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
            .unwrap();
        stuck.push(s);
    }
    common::eventually("the daemon holds the stuck clients", || {
        d.open_descriptors() >= before + STUCK
    });
    let limit = 150 * 1024 * 1024;
    let resident = d.resident_bytes();
    assert!(
        resident < limit,
        "{resident} bytes resident with {STUCK} clients stuck on a {size}-byte body"
    );
    // Probes and a whole scrape still work meanwhile.
    assert_eq!(http_get(at, "GET", "/healthz").0, "HTTP/1.1 200 OK");
    let (status, length, got) = fetch(at, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(got, length);
    assert!(length > 0);
    let peak = d.status_bytes("VmHWM");
    assert!(
        peak < limit,
        "{peak} bytes resident at the peak, the body being {size} bytes"
    );
    // The write deadline (30 s) drops them all; bounded by twice that.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while d.open_descriptors() > before {
        assert!(
            std::time::Instant::now() < deadline,
            "{} descriptors still open, {before} before the stuck clients",
            d.open_descriptors()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Each one reset and counted: at the deadline, or as readers of a body two behind
    // (should the stuck clients have spanned several bodies).
    d.ok(&["-e", "-f", "1", "-r", "10.0.0.4:80", "-m", "-w", "2"]);
    let body = scrape(&d);
    let cut = dropped(&body, &["write_timeout", "stale_body"]);
    assert_eq!(cut, STUCK as f64);
    assert_eq!(stuck.len(), STUCK);
}

/// A client with a tiny receive buffer that asks for `/metrics` and reads its response
/// head only, byte by byte, so the body stays with the daemon: the stream and the
/// Content-Length.
fn slow_reader(at: SocketAddr) -> (std::net::TcpStream, usize) {
    use std::io::{Read, Write};
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    // Before connecting, so the window offered is small from the start.
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket
        .connect_timeout(&at.into(), std::time::Duration::from_secs(10))
        .expect("connect to the metrics endpoint");
    let mut s: std::net::TcpStream = socket.into();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = s.read(&mut byte).expect("the response head in time");
        assert_eq!(n, 1, "the endpoint closed before its head: {}", text(&head));
        head.push(byte[0]);
    }
    let head = text(&head);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    (s, content_length(&head))
}

/// The Content-Length of `/metrics`, from a HEAD request.
fn metrics_length(at: SocketAddr) -> usize {
    use std::io::{Read, Write};
    let mut s = common::connect(at, None).expect("connect to the metrics endpoint");
    s.write_all(b"HEAD /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut head = String::new();
    s.read_to_string(&mut head).expect("the response head");
    content_length(&head)
}

/// The Content-Length a response head gives.
fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("Content-Length in\n{head}"))
}

#[test]
fn slow_readers_arriving_apart_hold_at_most_two_bodies() {
    use std::io::Read;
    const SERVICES: u32 = 1500;
    const ARRIVALS: usize = 10;
    // The newest body and the one before it stay with their readers.
    const KEPT: usize = 2;
    let d = Daemon::start();
    fwmark_table(&d, SERVICES);
    let at = d.metrics_address();
    let idle = d.resident_bytes();
    let size = u64::try_from(metrics_length(at)).unwrap();
    let before = d.open_descriptors();
    d.reset_peak_resident();
    let mut readers = Vec::new();
    for i in 0..ARRIVALS {
        // A table change before each arrival, so each reader gets a body of its own, as
        // it would arriving more than a second after the last.
        let weight = (i + 2).to_string();
        d.ok(&["-e", "-f", "1", "-r", "10.0.0.4:80", "-m", "-w", &weight]);
        readers.push(slow_reader(at));
        // Probes and whole scrapes work throughout. (A scrape shares the newest body;
        // none just before the last two arrivals, whose readers must keep theirs.)
        assert_eq!(http_get(at, "GET", "/healthz").0, "HTTP/1.1 200 OK");
        if i % 3 == 1 && i + KEPT < ARRIVALS {
            let (status, length, got) = fetch(at, "/metrics");
            assert_eq!(status, "HTTP/1.1 200 OK");
            assert_eq!(got, length);
        }
    }
    // Without the bound, each reader would hold its own body until its write deadline:
    // ten of them here.
    let peak = d.status_bytes("VmHWM");
    assert!(
        peak < idle + 4 * size,
        "{peak} bytes resident at the peak, {idle} idle, bodies of {size} bytes"
    );
    // The daemon holds the newest readers only, at once. (At most: `before` may count
    // a connection the daemon was just closing.)
    common::eventually("the older readers let go", || {
        d.open_descriptors() <= before + KEPT
    });
    // The newest are still served: their whole bodies come.
    let (older, newest) = readers.split_at_mut(ARRIVALS - KEPT);
    for (s, length) in newest {
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).expect("the rest of the body");
        assert_eq!(rest.len(), *length, "a newest reader's whole body");
    }
    // The older ones were reset: at most what the kernel had queued for them comes, then
    // the reset (or an end before the whole body).
    for (i, (s, length)) in older.iter_mut().enumerate() {
        let mut rest = Vec::new();
        match s.read_to_end(&mut rest) {
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "reader {i}"),
            Ok(_) => assert!(rest.len() < *length, "reader {i} got its whole body"),
        }
    }
    // Counted (a table change: a body of now), and the endpoint serves on.
    d.ok(&["-e", "-f", "1", "-r", "10.0.0.4:80", "-m", "-w", "1"]);
    let body = scrape(&d);
    let stale = ["reason=\"stale_body\"".to_string()];
    assert_eq!(
        value(&body, "uvs_metrics_clients_dropped_total", &stale),
        (ARRIVALS - KEPT) as f64
    );
    assert_eq!(http_get(at, "GET", "/healthz").0, "HTTP/1.1 200 OK");
}

/// `uvs_build_info` names the version and the commit `uvs --version` names.
#[test]
fn build_info_names_the_version_and_commit_uvs_version_says() {
    let out = std::process::Command::new(common::UVS)
        .arg("--version")
        .output()
        .unwrap();
    // "uvs 0.1.0 (commit 0123456789ab)"
    let said = text(&out.stdout);
    let (version, commit) = said
        .trim()
        .strip_prefix("uvs ")
        .and_then(|s| s.strip_suffix(')'))
        .and_then(|s| s.split_once(" (commit "))
        .unwrap_or_else(|| panic!("uvs --version said {said:?}"));
    let d = Daemon::start();
    let with = [format!("version=\"{version}\",commit=\"{commit}\"")];
    assert_eq!(value(&scrape(&d), "uvs_build_info", &with), 1.0);
}

/// The startup log and `uvs status` name the status page beside /metrics, and it is
/// there.
#[test]
fn the_log_and_uvs_status_name_the_status_page() {
    let d = Daemon::start_logged(&[]);
    let at = d.metrics_address();
    let page = format!("status page at http://{at}/");
    assert!(
        d.status().contains(&format!("\n{page}\n")),
        "{}",
        d.status()
    );
    common::eventually("the startup log line", || d.log().contains(&page));
    let (status, body) = http_get(at, "GET", "/");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains("<title>uvs status</title>"), "{body}");
}
