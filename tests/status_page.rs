//! The status page at `/` of the metrics address, in a real browser: a daemon runs three
//! services from a configuration file (two TCP ones, one with a real server whose SMTP
//! banner is hostile markup, and a UDP one), bounded traffic goes through them, and
//! headless Chromium (Debian's package) loads the page; the test reads the DOM Chromium
//! rendered (the services, the servers, the connection counts the traffic made, the
//! down server's error as text and no element made of it) and saves two screenshots,
//! 1280x900 and a phone's 390x844, under `target/test-artifacts/status-page/`.
//! Without Chromium when uvs was built the browser test is reported as ignored; the
//! response's own headers and methods are checked in any case.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{Backend, Behaviour, Daemon, Reply, UdpBackend, eventually, vip};

/// A banner no SMTP check accepts, made of markup a page must never run.
const HOSTILE: &str = "554 <script>document.title='pwned'</script><img src=x onerror=alert(1)>\r\n";

/// The daemon and everything the page should show of it.
struct Setup {
    d: Daemon,
    web: std::net::SocketAddr,
    mail: std::net::SocketAddr,
    echo: std::net::SocketAddr,
    dns: std::net::SocketAddr,
    a: Backend,
    b: Backend,
    hostile: Backend,
    good_mail: Backend,
    echo_server: Backend,
    udp_server: UdpBackend,
}

fn setup(dir: &std::path::Path) -> Setup {
    let (a, b) = Backend::pair(Behaviour::Name);
    let hostile = Backend::start(HOSTILE, Behaviour::Name);
    let good_mail = Backend::start("220 mail.example ESMTP\r\n", Behaviour::Name);
    let echo_server = Backend::start("E", Behaviour::Echo);
    let udp_server = UdpBackend::start("U", Reply::Echo);
    let (web, mail, echo) = (vip(), vip(), vip());
    let dns = std::net::SocketAddr::from(([127, 0, 0, 1], common::free_udp_port()));
    let config = format!(
        r#"
[[service]]
tcp = "{web}"
scheduler = "rr"
[[service.server]]
address = "{a}"
[[service.server]]
address = "{b}"

[[service]]
tcp = "{mail}"
scheduler = "wrr"
quiescent = true
[service.check]
type = "negotiate"
service = "smtp"
interval = "1s"
timeout = "1s"
failures = 1
[[service.server]]
address = "{hostile}"
weight = 5
[[service.server]]
address = "{good}"
weight = 2

[[service]]
tcp = "{echo}"
scheduler = "lc"
[[service.server]]
address = "{e}"

[[service]]
udp = "{dns}"
scheduler = "rr"
[[service.server]]
address = "{u}"
"#,
        a = a.addr,
        b = b.addr,
        hostile = hostile.addr,
        good = good_mail.addr,
        e = echo_server.addr,
        u = udp_server.addr,
    );
    let d = Daemon::start_with_file(&dir.join("uvs.toml"), &config, &[]);
    for v in [web, mail, echo] {
        d.wait_listening(v);
    }
    d.wait_listening_on("udp", dns);
    // The hostile server is found down (and quiesced: weight 0) before any traffic.
    eventually("the hostile real server checked down", || {
        d.status().contains("last error: SMTP banner")
    });
    Setup {
        d,
        web,
        mail,
        echo,
        dns,
        a,
        b,
        hostile,
        good_mail,
        echo_server,
        udp_server,
    }
}

/// A raw GET or HEAD of `/`, with the address in `Host` as a browser sends it: the
/// response head and body.
fn fetch(at: std::net::SocketAddr, method: &str, path: &str) -> (String, String) {
    fetch_as(at, &at.to_string(), method, path)
}

/// As [`fetch`], with `host` in the `Host` header.
fn fetch_as(at: std::net::SocketAddr, host: &str, method: &str, path: &str) -> (String, String) {
    let mut s = common::connect(at, None).expect("connect to the metrics address");
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
    (head.to_string(), body.to_string())
}

/// The row of real server `addr` in `page` (its `<tr>` up to `</tr>`).
fn row(page: &str, addr: std::net::SocketAddr) -> &str {
    let at = page
        .find(&format!("data-server=\"{addr}\""))
        .unwrap_or_else(|| panic!("no row for {addr} in\n{page}"));
    let end = page[at..].find("</tr>").expect("the row's end");
    &page[at..at + end]
}

/// The text of the first cell of `row` whose class list starts with `class`.
fn cell<'p>(row: &'p str, class: &str) -> &'p str {
    let at = row
        .find(&format!("<td class=\"{class}"))
        .unwrap_or_else(|| panic!("no {class} cell in {row}"));
    let open = at + row[at..].find('>').unwrap() + 1;
    let close = open + row[open..].find("</td>").unwrap();
    &row[open..close]
}

/// Sends the traffic the page must count: 10 connections to `web` (5 to each server by
/// rr), 4 to `mail` (all to the good server: the hostile one has weight 0), 6 datagrams
/// to `dns` from one socket (one flow), and 3 connections to `echo` that echo 64 KiB each
/// and are held open (returned).
fn traffic(s: &Setup) -> Vec<std::net::TcpStream> {
    for _ in 0..10 {
        let name = common::ask(s.web, None);
        assert!(name == "A" || name == "B", "{name}");
    }
    for _ in 0..4 {
        assert_eq!(common::ask(s.mail, None), "220 mail.example ESMTP\r\n");
    }
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 64];
    for n in 0..6u8 {
        udp.send_to(&[b'q', n], s.dns).unwrap();
        let (len, _) = udp.recv_from(&mut buf).expect("the UDP echo");
        assert_eq!(&buf[..len], &[b'q', n]);
    }
    (0..3)
        .map(|_| {
            let mut c = common::connect(s.echo, None).expect("connect to the echo VIP");
            let message = vec![b'x'; 64 << 10];
            assert!(common::echoed(&mut c, &message) == message);
            c
        })
        .collect()
}

/// What the page says once the traffic is counted (the body may be a second old:
/// waited for, bounded).
fn counted_page(s: &Setup) -> String {
    let at = s.d.metrics_address();
    let mut page = String::new();
    eventually("the page counts the traffic", || {
        page = fetch(at, "GET", "/").1;
        cell(row(&page, s.a.addr), "w conns") == "5"
            && cell(row(&page, s.echo_server.addr), "act") == "3"
    });
    page
}

/// The checks of the page's content, on the server's HTML or on Chromium's DOM.
fn check_content(page: &str, s: &Setup) {
    for service in [
        format!("TCP {}", s.web),
        format!("TCP {}", s.mail),
        format!("TCP {}", s.echo),
        format!("UDP {}", s.dns),
    ] {
        assert!(
            page.contains(&format!("data-service=\"{service}\"")),
            "{service} missing from\n{page}"
        );
    }
    let (a, b) = (row(page, s.a.addr), row(page, s.b.addr));
    assert_eq!((cell(a, "w conns"), cell(b, "w conns")), ("5", "5"));
    assert_eq!((cell(a, "h"), cell(b, "h")), ("no check", "no check"));
    assert_eq!(cell(a, "fwd"), "Masq");
    let good = row(page, s.good_mail.addr);
    assert_eq!(cell(good, "h up"), "UP");
    assert_eq!(cell(good, "w conns"), "4");
    assert_eq!(cell(good, "wt"), "2");
    let hostile = row(page, s.hostile.addr);
    assert!(cell(hostile, "h down").starts_with("DOWN"), "{hostile}");
    assert_eq!(cell(hostile, "wt"), "0 / 5", "quiesced by its check");
    assert_eq!(cell(hostile, "w conns"), "0");
    let echo = row(page, s.echo_server.addr);
    assert_eq!((cell(echo, "act"), cell(echo, "w conns")), ("3", "3"));
    let udp = row(page, s.udp_server.addr);
    assert_eq!(cell(udp, "w conns"), "1", "one flow");
    // The hostile banner is text beside its server, never an element.
    let after = &page[page
        .find(&format!("data-server=\"{}\"", s.hostile.addr))
        .unwrap()..];
    let why = &after[after.find("<tr class=\"why\">").expect("the error line")..];
    let why = &why[..why.find("</tr>").unwrap()];
    assert!(
        why.contains("SMTP banner `554 &lt;script&gt;document.title="),
        "{why}"
    );
    assert!(why.contains("&lt;img src=x onerror=alert(1)&gt;"), "{why}");
    assert!(!page.contains("<script"), "{page}");
    assert!(!page.contains("<img"), "{page}");
    assert!(
        page.contains("<title>uvs status</title>"),
        "the title is untouched"
    );
}

#[test]
fn the_page_is_read_only_self_contained_and_shows_the_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path());
    let held = traffic(&s);
    let page = counted_page(&s);
    check_content(&page, &s);
    let at = s.d.metrics_address();
    let (head, _) = fetch(at, "GET", "/");
    for header in [
        "HTTP/1.1 200 OK",
        "Content-Type: text/html; charset=utf-8",
        "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline';",
        "X-Content-Type-Options: nosniff",
        "Cache-Control: no-store",
    ] {
        assert!(head.contains(header), "{header} not in\n{head}");
    }
    let (head, body) = fetch(at, "HEAD", "/");
    assert!(
        head.starts_with("HTTP/1.1 200 OK") && body.is_empty(),
        "{head}"
    );
    for method in ["POST", "PUT", "DELETE"] {
        let (head, _) = fetch(at, method, "/");
        assert!(head.starts_with("HTTP/1.1 405"), "{method}: {head}");
        assert!(head.contains("Allow: GET, HEAD"), "{head}");
    }
    drop(held);
}

/// DNS rebinding: a web page whose own name was made to resolve to the metrics address
/// sends that name in `Host`. The page answers only an address or `localhost` there
/// (421 otherwise, with no page in it); `/metrics` and `/healthz` answer any name
/// (Prometheus may scrape by name).
#[test]
fn the_page_answers_only_an_address_or_localhost_in_host() {
    let d = Daemon::start_logged(&[]);
    let at = d.metrics_address();
    let port = at.port();
    for host in [
        "attacker.example".to_string(),
        format!("attacker.example:{port}"),
        format!("127.0.0.1.nip.io:{port}"),
        format!("localhost.attacker.example:{port}"),
    ] {
        for method in ["GET", "HEAD"] {
            let (head, body) = fetch_as(at, &host, method, "/");
            assert!(
                head.starts_with("HTTP/1.1 421 Misdirected Request"),
                "{host}: {head}"
            );
            assert!(!body.contains("<html") && !body.contains("uvs_"), "{body}");
        }
        let (head, body) = fetch_as(at, &host, "GET", "/metrics");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{host}: {head}");
        assert!(body.contains("node_ipvs_"), "{body}");
        let (head, _) = fetch_as(at, &host, "GET", "/healthz");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{host}: {head}");
    }
    let (_, body) = fetch_as(at, "attacker.example", "GET", "/");
    assert_eq!(
        body,
        "the status page answers only to an address or localhost in Host \
         (a guard against DNS rebinding): open it by address\n"
    );
    for host in [
        at.to_string(),
        "127.0.0.1".to_string(),
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
    ] {
        let (head, body) = fetch_as(at, &host, "GET", "/");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{host}: {head}");
        assert!(body.contains("<html"), "{host}: {body}");
    }
}

/// `--status-page off` (or `status_page = false` in `[global]`): `/` is not found,
/// `/metrics` and `/healthz` are served as before.
#[test]
fn the_status_page_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let by_flag = Daemon::start_logged(&["--status-page", "off"]);
    let by_file = Daemon::start_with_file(
        &dir.path().join("uvs.toml"),
        "[global]\nstatus_page = false\n",
        &[],
    );
    for d in [&by_flag, &by_file] {
        let at = d.metrics_address();
        for method in ["GET", "HEAD"] {
            let (head, body) = fetch(at, method, "/");
            assert!(head.starts_with("HTTP/1.1 404 Not Found"), "{head}");
            assert!(!body.contains("<html"), "{body}");
        }
        let (_, body) = fetch(at, "GET", "/");
        assert_eq!(
            body,
            "not found: the status page is off (--status-page); try /metrics\n"
        );
        let (head, body) = fetch(at, "GET", "/metrics");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(body.contains("node_ipvs_"), "{body}");
        let (head, _) = fetch(at, "GET", "/healthz");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        // Nothing names a page that is not served.
        let status = d.status();
        assert!(
            status.contains(&format!(
                "metrics at http://{at}/metrics (status page off)\n"
            )),
            "{status}"
        );
        assert!(!status.contains("status page at"), "{status}");
    }
    let log = by_flag.log();
    assert!(log.contains("(status page off)"), "{log}");
    assert!(!log.contains("status page at"), "{log}");
    // The flag wins over the file.
    let on = Daemon::start_with_file(
        &dir.path().join("on.toml"),
        "[global]\nstatus_page = false\n",
        &["--status-page", "on"],
    );
    let (head, _) = fetch(on.metrics_address(), "GET", "/");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
}

#[cfg(uvs_has_chromium)]
mod browser {
    //! Headless Chromium, bounded: each run has a deadline and its whole process group
    //! is killed when the run ends or the test fails.

    use std::os::unix::process::CommandExt as _;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// How long one Chromium run may take.
    const DEADLINE: Duration = Duration::from_secs(90);

    /// A Chromium process group, killed when dropped.
    struct Browser(Child);

    impl Drop for Browser {
        fn drop(&mut self) {
            // The group: the launcher script, the browser and its helper processes.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.0.id())])
                .stderr(Stdio::null())
                .status();
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Runs Chromium headless on `url` with `args` (a fresh profile in `profile`), its
    /// standard output going to `out`; panics past [`DEADLINE`] or on failure.
    pub fn run(profile: &Path, url: &str, args: &[String], out: &Path) {
        let stdout = std::fs::File::create(out).expect("chromium's output file");
        let stderr = std::fs::File::create(out.with_extension("stderr")).expect("stderr file");
        let child = Command::new(env!("UVS_CHROMIUM_PATH"))
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(args)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .expect("start chromium");
        let mut browser = Browser(child);
        let started = Instant::now();
        let status = loop {
            if let Some(status) = browser.0.try_wait().expect("chromium's status") {
                break status;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "chromium still running after {DEADLINE:?}: {}",
                std::fs::read_to_string(out.with_extension("stderr")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.success(),
            "chromium failed ({status}): {}",
            std::fs::read_to_string(out.with_extension("stderr")).unwrap_or_default()
        );
    }

    /// Where the screenshots go: `target/test-artifacts/status-page/`.
    pub fn artifacts() -> PathBuf {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = tmp
            .parent()
            .unwrap_or(tmp)
            .join("test-artifacts")
            .join("status-page");
        std::fs::create_dir_all(&dir).expect("the artifacts directory");
        dir
    }

    /// A PNG's width and height, from its IHDR chunk.
    pub fn png_size(path: &Path) -> (u32, u32) {
        let png = std::fs::read(path).expect("the screenshot");
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is no PNG",
            path.display()
        );
        let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
        (be(16), be(20))
    }
}

#[test]
#[cfg_attr(
    not(uvs_has_chromium),
    ignore = "chromium not found when uvs was built: apt-get install chromium, then touch build.rs"
)]
fn chromium_renders_the_services_servers_counts_and_the_down_servers_error() {
    #[cfg(uvs_has_chromium)]
    {
        let dir = tempfile::tempdir().unwrap();
        let s = setup(dir.path());
        let held = traffic(&s);
        counted_page(&s);
        // For the screenshots: the estimator's rates (every 2 s) of the traffic.
        eventually("the rates estimated", || {
            let page = fetch(s.d.metrics_address(), "GET", "/").1;
            cell(row(&page, s.echo_server.addr), "w outbps") != "0 B/s"
        });
        let url = format!("http://{}/", s.d.metrics_address());
        let dom_file = dir.path().join("dom.html");
        let profile = tempfile::tempdir().unwrap();
        browser::run(profile.path(), &url, &["--dump-dom".into()], &dom_file);
        let dom = std::fs::read_to_string(&dom_file).expect("the dumped DOM");
        check_content(&dom, &s);
        let artifacts = browser::artifacts();
        for (name, width, height) in [("desktop", 1280, 900), ("phone", 390, 844)] {
            let png = artifacts.join(format!("{name}.png"));
            let _ = std::fs::remove_file(&png);
            let profile = tempfile::tempdir().unwrap();
            browser::run(
                profile.path(),
                &url,
                &[
                    format!("--screenshot={}", png.display()),
                    format!("--window-size={width},{height}"),
                ],
                &dir.path().join(format!("{name}.out")),
            );
            assert_eq!(
                browser::png_size(&png),
                (width, height),
                "{}",
                png.display()
            );
            eprintln!("screenshot: {}", png.display());
        }
        drop(held);
    }
}
