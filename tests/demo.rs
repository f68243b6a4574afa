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
    // uvs status lists the services in the same order: TCP, then UDP.
    let status = text(&status_at(&socket).output().unwrap().stdout);
    let at = |s: &str| {
        status
            .find(&format!("{s}  {vip}"))
            .unwrap_or_else(|| panic!("no {s} service in\n{status}"))
    };
    assert!(at("TCP") < at("UDP"), "{status}");

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

/// `uvs demo ARGS` in `cwd` with `env`, once its banner is out: the process and the
/// banner. The demo's metrics are off (many tests run at once) unless ARGS say where.
fn demo_in(
    args: &[&str],
    cwd: &std::path::Path,
    env: &[(&str, &std::ffi::OsStr)],
) -> (Running, String) {
    let mut command = Command::new(UVS);
    command
        .arg("demo")
        .args(args)
        .args(if args.contains(&"--metrics") {
            &[][..]
        } else {
            &["--metrics", "off"][..]
        })
        .current_dir(cwd)
        .env("UVS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut demo = command.spawn().expect("spawn uvs demo");
    let stdout = demo.stdout.take().unwrap();
    let demo = Running(demo);
    // Read from a thread of its own, so that a demo that never finishes its banner
    // fails the test within a bound.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut banner = String::new();
        let mut lines = BufReader::new(stdout);
        while !banner.contains("Stop with Ctrl-C.") {
            let mut line = String::new();
            if lines.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            banner.push_str(&line);
        }
        let _ = tx.send(banner);
    });
    let banner = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the demo's banner within 60 s");
    assert!(banner.contains("Stop with Ctrl-C."), "{banner}");
    (demo, banner)
}

/// The commands under "Try, in another terminal:".
fn hints(banner: &str) -> Vec<String> {
    banner
        .lines()
        .skip_while(|l| *l != "Try, in another terminal:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.trim().to_string())
        .collect()
}

/// Runs every hint of a demo started in `cwd` with `PATH` = `path`, with bash in the
/// same place (each within 60 s), and requires each to succeed: the TCP and UDP
/// loops answer RS1 and RS2, uvsadm and uvs status reach the demo. Returns the hints.
fn every_hint_runs(cwd: &std::path::Path, path: &std::ffi::OsStr) -> Vec<String> {
    every_hint_runs_on(cwd, path, vip())
}

/// [`every_hint_runs`] with the VIP on `vip`.
fn every_hint_runs_on(
    cwd: &std::path::Path,
    path: &std::ffi::OsStr,
    vip: SocketAddr,
) -> Vec<String> {
    // One demo's hints at a time: the UDP hint waits 1 s for each answer (as a user's
    // shell does), and five demos with their loops at once on a small machine could
    // make one late.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("uvs.sock");
    let (demo, banner) = demo_in(
        &[
            "--vip",
            &vip.to_string(),
            "--socket",
            socket.to_str().unwrap(),
        ],
        cwd,
        &[("PATH", path)],
    );
    let hints = hints(&banner);
    assert_eq!(hints.len(), 5, "{banner}");
    for hint in &hints {
        let out = common::bounded(
            {
                let mut bash = Command::new("timeout");
                bash.args(["60", "bash", "-c", hint])
                    .current_dir(cwd)
                    .env("PATH", path);
                bash
            },
            hint,
        );
        assert!(
            out.status.success(),
            "`{hint}' failed ({}): {}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        let said = text(&out.stdout);
        if hint.contains("curl") || hint.contains("/dev/udp") {
            assert_eq!(said, "RS1\nRS2\n".repeat(5), "{hint}");
        } else if hint.contains(" status ") {
            assert!(said.contains(&format!("listen tcp {vip}")), "{said}");
        } else {
            assert!(said.contains(&vip.to_string()), "{said}");
        }
    }
    sigterm(&demo.0);
    hints
}

/// The PATH the hints run with: the tools they use (curl, timeout, dd, seq), without
/// uvs or uvsadm unless `first` puts them there.
fn path_with(first: Option<&std::path::Path>) -> std::ffi::OsString {
    let mut dirs: Vec<std::path::PathBuf> = first.into_iter().map(Into::into).collect();
    dirs.extend(["/usr/local/bin", "/usr/bin", "/bin"].map(Into::into));
    std::env::join_paths(dirs).unwrap()
}

/// The demo's hints name the uvs and uvsadm beside it as the shell reaches them from
/// elsewhere: by their absolute paths.
#[test]
fn every_hint_the_demo_prints_works_from_another_directory() {
    let elsewhere = tempfile::tempdir().unwrap();
    let hints = every_hint_runs(elsewhere.path(), &path_with(None));
    let beside = std::path::Path::new(UVS).parent().unwrap();
    assert!(
        hints[2].starts_with(&format!("{}/uvsadm ", beside.display())),
        "{hints:?}"
    );
}

/// From the repository, as the README's quick start runs it.
#[test]
fn every_hint_the_demo_prints_works_from_the_repository() {
    every_hint_runs(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        &path_with(None),
    );
}

/// From above the binaries (where `target/release/uvs demo` is typed): a path relative
/// to the current directory.
#[test]
fn every_hint_the_demo_prints_works_from_above_its_binaries() {
    let beside = std::fs::canonicalize(std::path::Path::new(UVS).parent().unwrap()).unwrap();
    let above = beside.parent().unwrap();
    let name = beside.file_name().unwrap().to_str().unwrap();
    let hints = every_hint_runs(above, &path_with(None));
    assert!(
        hints[2].starts_with(&format!("{name}/uvsadm ")),
        "{hints:?}"
    );
    assert!(
        hints[4].starts_with(&format!("{name}/uvs status ")),
        "{hints:?}"
    );
}

/// With uvs and uvsadm on PATH (links to the very files): their bare names.
#[test]
fn every_hint_the_demo_prints_works_with_uvs_on_path() {
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(UVS, bin.path().join("uvs")).unwrap();
    std::os::unix::fs::symlink(common::UVSADM, bin.path().join("uvsadm")).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let hints = every_hint_runs(elsewhere.path(), &path_with(Some(bin.path())));
    assert!(hints[2].starts_with("uvsadm --socket "), "{hints:?}");
    assert!(hints[4].starts_with("uvs status --socket "), "{hints:?}");
}

/// The arguments of `uvs demo` on `vip` with its control socket at `socket` and no
/// metrics, as the tests of a demo that fails before its banner run it.
fn demo_args(vip: SocketAddr, socket: &std::path::Path) -> Vec<std::ffi::OsString> {
    vec![
        "demo".into(),
        "--metrics".into(),
        "off".into(),
        "--vip".into(),
        vip.to_string().into(),
        "--socket".into(),
        socket.into(),
    ]
}

/// Runs `command`, a demo that fails before its banner: exit 1, nothing on stdout;
/// returns its stderr.
fn failed_demo(command: Command, what: &str) -> String {
    let out = common::bounded(command, what);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    text(&out.stderr)
}

/// `uvs demo` where its VIP cannot be had: the address and the cause on stderr, exit
/// 1, and no banner.
fn demo_refused(vip: SocketAddr, protocol: &str, cause: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(UVS);
    command
        .args(demo_args(vip, &dir.path().join("uvs.sock")))
        .env("UVS_LOG", "error");
    assert_eq!(
        failed_demo(command, "uvs demo on a taken port"),
        format!(
            "uvs: the demo cannot listen on {protocol} {vip}: {cause} \
             (choose another address with --vip ADDR:PORT)\n"
        )
    );
}

#[test]
fn the_demo_on_a_taken_tcp_port_says_so_and_exits_1_before_its_banner() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    demo_refused(
        taken.local_addr().unwrap(),
        "TCP",
        "Address already in use (os error 98)",
    );
}

#[test]
fn the_demo_on_a_taken_udp_port_says_so_and_exits_1_before_its_banner() {
    // A port free for both; UDP's is then taken, TCP's stays free.
    let vip = vip();
    let _taken = std::net::UdpSocket::bind(vip).unwrap();
    demo_refused(
        vip,
        "UDP",
        "Address already in use (another process is bound to it)",
    );
}

/// A control socket another demo holds: its error, exit 1, no banner.
#[test]
fn the_demo_on_a_taken_control_socket_says_so_and_exits_1_before_its_banner() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("uvs.sock");
    let (_first, _) = demo_in(
        &[
            "--vip",
            &vip().to_string(),
            "--socket",
            socket.to_str().unwrap(),
        ],
        dir.path(),
        &[],
    );
    let mut command = Command::new(UVS);
    command
        .args(demo_args(vip(), &socket))
        .env("UVS_LOG", "error");
    assert_eq!(
        failed_demo(command, "a second uvs demo"),
        format!(
            "uvs: cannot start the control socket {s}: another uvs daemon is already listening \
             on {s}; stop it, or give this one another socket (--socket PATH, or $UVS_SOCKET)\n",
            s = socket.display()
        )
    );
}

/// `UVS_SOCKET` places the demo's control socket, as `uvs demo --help` says, and the
/// hints name it.
#[test]
fn the_demo_serves_on_uvs_socket_and_its_hints_name_it() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("from-env.sock");
    let vip = vip();
    let (demo, banner) = demo_in(
        &["--vip", &vip.to_string()],
        dir.path(),
        &[("UVS_SOCKET", socket.as_os_str())],
    );
    for hint in &hints(&banner)[2..] {
        assert!(
            format!("{hint} ").contains(&format!(" --socket {} ", socket.display())),
            "{hint}"
        );
    }
    let out = common::bounded(status_at(&socket), "uvs status");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("listen tcp {vip}")));
    let help = common::bounded(
        {
            let mut c = Command::new(UVS);
            c.args(["demo", "--help"]);
            c
        },
        "uvs demo --help",
    );
    assert!(
        text(&help.stdout)
            .contains("[default: $UVS_SOCKET, else a new uvs-demo-<pid>/uvs.sock in $TMPDIR]")
    );
    sigterm(&demo.0);
}

/// With metrics on, the last hint names the status page, and runs as printed.
#[test]
fn the_demo_names_its_status_page_in_a_hint_that_works() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("uvs.sock");
    let metrics = vip();
    let (demo, banner) = demo_in(
        &[
            "--vip",
            &vip().to_string(),
            "--socket",
            socket.to_str().unwrap(),
            "--metrics",
            &metrics.to_string(),
        ],
        dir.path(),
        &[],
    );
    let hints = hints(&banner);
    assert_eq!(hints.len(), 6, "{banner}");
    let page = &hints[5];
    assert_eq!(
        page,
        &format!("curl -sI http://{metrics}/    # the status page: open it in a browser")
    );
    let out = common::bounded(
        {
            let mut bash = Command::new("timeout");
            bash.args(["60", "bash", "-c", page]);
            bash
        },
        page,
    );
    assert!(
        out.status.success(),
        "`{page}' failed: {}",
        text(&out.stderr)
    );
    let said = text(&out.stdout);
    assert!(said.starts_with("HTTP/1.1 200 OK\r\n"), "{said}");
    assert!(said.contains("text/html"), "{said}");
    // uvs status names it too.
    let out = common::bounded(status_at(&socket), "uvs status");
    let status = text(&out.stdout);
    assert!(
        status.contains(&format!("\nstatus page at http://{metrics}/\n")),
        "{status}"
    );
    sigterm(&demo.0);
}

/// No hint to a page this demo does not serve: its metrics address taken by another
/// program (whose page the hint would reach) says why instead; a page turned off is
/// not named.
#[test]
fn the_demo_names_no_status_page_it_does_not_serve() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics = taken.local_addr().unwrap();
    for (metrics, extra, note) in [
        (
            metrics,
            &[][..],
            Some(format!(
                "(no status page: metrics not served: cannot listen on {metrics}: Address \
                 already in use (os error 98))"
            )),
        ),
        (vip(), &["--status-page", "off"][..], None),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("uvs.sock");
        let mut args = vec![
            "--vip".to_string(),
            vip().to_string(),
            "--socket".into(),
            socket.to_str().unwrap().into(),
            "--metrics".into(),
            metrics.to_string(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (demo, banner) = demo_in(&args, dir.path(), &[]);
        let hints = hints(&banner);
        assert!(!banner.contains("curl -sI"), "{banner}");
        match &note {
            Some(note) => assert_eq!(hints.last(), Some(note), "{banner}"),
            None => assert_eq!(hints.len(), 5, "{banner}"),
        }
        sigterm(&demo.0);
    }
}

/// With no socket given, the demo makes `uvs-demo-PID/` in `$TMPDIR` for its socket and
/// removes it when it stops: a run leaves nothing behind.
#[test]
fn the_demo_leaves_nothing_in_tmpdir() {
    let tmp = tempfile::tempdir().unwrap();
    let vip = vip();
    let (mut demo, banner) = demo_in(
        &["--vip", &vip.to_string()],
        tmp.path(),
        &[
            ("TMPDIR", tmp.path().as_os_str()),
            ("UVS_SOCKET", std::ffi::OsStr::new("")),
        ],
    );
    let dir = tmp.path().join(format!("uvs-demo-{}", demo.0.id()));
    assert!(banner.contains(&dir.display().to_string()), "{banner}");
    assert!(dir.join("uvs.sock").exists());
    sigterm(&demo.0);
    assert!(demo.0.wait().unwrap().success());
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in $TMPDIR: {left:?}");
}

/// An IPv6 VIP: the backends take ::1 (IPVS forwards within one family), and every hint
/// works as printed.
#[test]
fn an_ipv6_vip_is_balanced_and_its_hints_work() {
    let vip = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, common::free_port()));
    let hints = every_hint_runs_on(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        &path_with(None),
        vip,
    );
    assert!(hints[0].contains(&format!("curl -s {vip}")), "{hints:?}");
}

/// As a user who may not bind a low port: one line, with the cause and what to do, and
/// none of the listener manager's "retrying" warnings (the demo does not retry).
#[test]
fn the_demo_on_a_low_port_without_the_privilege_says_what_to_do_in_one_line() {
    let Some(nobody) = common::AsNobody::new() else {
        return;
    };
    let Some(start) = common::unprivileged_port_start() else {
        return;
    };
    let vip = SocketAddr::from(([127, 0, 0, 1], start - 1));
    let mut command = nobody.command(demo_args(vip, &nobody.run.join("uvs.sock")));
    command.env("PATH", "/usr/bin:/bin");
    let err = failed_demo(command, "uvs demo on a low port");
    assert!(!err.contains("retrying"), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "uvs: the demo cannot listen on TCP {vip}: Permission denied (os error 13) (choose \
             another address with --vip ADDR:PORT; or: port {p} is below \
             net.ipv4.ip_unprivileged_port_start ({start}): only root or a process with \
             CAP_NET_BIND_SERVICE may listen on it. Run uvs as root, give it the capability \
             (setcap cap_net_bind_service=+ep {uvs}, or AmbientCapabilities=CAP_NET_BIND_SERVICE \
             in its systemd unit), lower the limit (sysctl \
             net.ipv4.ip_unprivileged_port_start={p}), or use a port from {start} up)",
            p = vip.port(),
            uvs = nobody.uvs.display()
        )
    );
}
