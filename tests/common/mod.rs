//! Shared helpers for the integration tests: a real `uvs run` daemon on a private
//! socket, `uvsadm` runs against it (also under the names `ipvsadm` and
//! `ipvsadm-save`) and the virtual services they make, TCP and UDP backends and clients
//! on loopback, and a fake DNS server on loopback so name lookups never leave the
//! machine. Every wait here is bounded.

#![allow(dead_code)]

pub mod http;

use std::collections::HashMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use simple_dns::rdata::{A, PTR, RData};
use simple_dns::{CLASS, Name, Packet, PacketFlag, RCODE, ResourceRecord};

pub const UVS: &str = env!("CARGO_BIN_EXE_uvs");
pub const UVSADM: &str = env!("CARGO_BIN_EXE_uvsadm");

/// Writes `contents` to `path` beside it and renamed, as editors do, so that a reader
/// (a daemon's autoreload) never sees half a file.
pub fn write_file(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

pub fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(path)
}

/// What the fake DNS server knows: PTR names for reverse names and A records.
#[derive(Default, Clone)]
pub struct Zone {
    pub ptr: HashMap<String, String>,
    pub a: HashMap<String, Ipv4Addr>,
}

/// A DNS server on 127.0.0.1 that answers from a [`Zone`] and NXDOMAIN otherwise.
pub struct FakeDns {
    pub port: u16,
    pub queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeDns {
    pub fn start(zone: Zone) -> FakeDns {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind fake DNS");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let port = socket.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(AtomicUsize::new(0));
        let (stop2, queries2) = (Arc::clone(&stop), Arc::clone(&queries));
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                queries2.fetch_add(1, Ordering::Relaxed);
                let Ok(query) = Packet::parse(&buf[..n]) else {
                    continue;
                };
                let mut reply = Packet::new_reply(query.id());
                reply.set_flags(PacketFlag::RECURSION_AVAILABLE);
                let Some(q) = query.questions.first() else {
                    continue;
                };
                let qname = q.qname.to_string().to_ascii_lowercase();
                let name = Name::new_unchecked(&qname).into_owned();
                let rdata = if let Some(target) = zone.ptr.get(&qname) {
                    Some(RData::PTR(PTR(Name::new_unchecked(target).into_owned())))
                } else {
                    zone.a.get(&qname).map(|a| {
                        RData::A(A {
                            address: u32::from(*a),
                        })
                    })
                };
                reply.questions.push(q.clone());
                match rdata {
                    Some(rdata) => {
                        reply
                            .answers
                            .push(ResourceRecord::new(name, CLASS::IN, 60, rdata))
                    }
                    None => *reply.rcode_mut() = RCODE::NameError,
                }
                if let Ok(bytes) = reply.build_bytes_vec() {
                    let _ = socket.send_to(&bytes, peer);
                }
            }
        });
        FakeDns {
            port,
            queries,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A running `uvs run` on a private socket, killed when dropped.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub child: Child,
    pub dns: FakeDns,
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with_zone(Zone::default())
    }

    pub fn start_with_zone(zone: Zone) -> Daemon {
        Daemon::start_with(zone, &[])
    }

    /// `uvs run` with these extra arguments.
    pub fn start_with(zone: Zone, args: &[&str]) -> Daemon {
        Daemon::spawn(zone, args, false, None)
    }

    /// `uvs run` with these extra arguments, logging at info level to a file that
    /// [`Daemon::log`] reads.
    pub fn start_logged(args: &[&str]) -> Daemon {
        Daemon::spawn(Zone::default(), args, true, None)
    }

    /// `uvs run -c CONFIG` (with these extra arguments) on a file it writes first with
    /// `contents`, logged as by [`Daemon::start_logged`].
    pub fn start_with_file(config: &Path, contents: &str, args: &[&str]) -> Daemon {
        write_file(config, contents);
        let config = config.to_str().expect("a UTF-8 path");
        Daemon::start_logged(&[&["-c", config][..], args].concat())
    }

    /// As [`Daemon::start_logged`], under an open-files limit of `open_files` (soft and
    /// hard, set by prlimit(1), so the daemon cannot raise it).
    pub fn start_limited(open_files: u64, args: &[&str]) -> Daemon {
        Daemon::spawn(Zone::default(), args, true, Some(open_files))
    }

    fn spawn(zone: Zone, args: &[&str], logged: bool, open_files: Option<u64>) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("uvs.sock");
        let mut command = match open_files {
            // prlimit execs the command: the child is the daemon itself.
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg("--").arg(UVS);
                c
            }
            None => Command::new(UVS),
        };
        command.args(["run", "--socket"]).arg(&socket).args(args);
        if !args.contains(&"--mode") {
            // The tests are about the userspace data plane, wherever they run.
            command.args(["--mode", "userspace"]);
        }
        if !args.contains(&"--metrics") {
            // Every daemon its own port: many run at once.
            command.args(["--metrics", "127.0.0.1:0"]);
        }
        // The log goes to a file of the test's, shown only if the test fails (or with
        // UVS_TEST_LOG set): `cargo test` stays quiet, and a failure shows its daemon's
        // side.
        let log = std::fs::File::create(dir.path().join(DAEMON_LOG)).expect("log file");
        command
            .env(
                "UVS_LOG",
                std::env::var("UVS_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        if logged {
            command.env("UVS_LOG", "info").env_remove("RUST_BACKTRACE");
        }
        let child = command.spawn().expect("spawn uvs run");
        let daemon = Daemon {
            dir,
            socket,
            child,
            dns: FakeDns::start(zone),
        };
        daemon.wait_ready();
        daemon
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("uvs run did not open {} within 20 s", self.socket.display());
    }

    /// A directory with `ipvsadm` and `ipvsadm-save` links to uvsadm, for running
    /// command lines written for ipvsadm.
    pub fn ipvsadm_bin(&self) -> PathBuf {
        let bin = self.dir.path().join("bin");
        if !bin.exists() {
            std::fs::create_dir(&bin).unwrap();
            for name in ["ipvsadm", "ipvsadm-save", "uvsadm"] {
                std::os::unix::fs::symlink(UVSADM, bin.join(name)).unwrap();
            }
        }
        bin
    }

    /// The environment every uvsadm run gets: this daemon, fixed name files, and the
    /// fake DNS server as the only nameserver.
    pub fn configure(&self, cmd: &mut Command) {
        let resolv = self.dir.path().join("resolv.conf");
        if !resolv.exists() {
            std::fs::write(&resolv, "").unwrap();
        }
        let path = format!(
            "{}:{}",
            self.ipvsadm_bin().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env("UVS_SOCKET", &self.socket)
            .env("UVS_HOSTS", fixture("fixtures/etc/hosts"))
            .env("UVS_SERVICES", fixture("fixtures/etc/services"))
            .env("UVS_RESOLV_CONF", resolv)
            .env("UVS_NAMESERVERS", format!("127.0.0.1:{}", self.dns.port))
            .env("PATH", path)
            .env_remove("POSIXLY_CORRECT")
            .current_dir(self.dir.path());
    }

    /// Runs uvsadm with `args`.
    pub fn uvsadm(&self, args: &[&str]) -> Output {
        self.uvsadm_with_input(args, "")
    }

    pub fn uvsadm_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut cmd = Command::new(UVSADM);
        cmd.args(args);
        self.configure(&mut cmd);
        run_with_input(cmd, input)
    }

    /// Runs a shell command line with this daemon's environment.
    pub fn shell(&self, line: &str) -> Output {
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(line);
        self.configure(&mut cmd);
        run_with_input(cmd, "")
    }

    /// Runs uvsadm and requires success.
    pub fn ok(&self, args: &[&str]) {
        let out = self.uvsadm(args);
        assert!(
            out.status.success(),
            "uvsadm {args:?} failed: {}",
            text(&out.stderr)
        );
    }

    /// uvsadm's stdout, which must succeed.
    pub fn list(&self, args: &[&str]) -> String {
        let out = self.uvsadm(args);
        assert!(
            out.status.success(),
            "uvsadm {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// The `->` lines of `-L -n` for TCP service `vip`, in the listing's order:
    /// (address, weight).
    pub fn servers(&self, vip: std::net::SocketAddr) -> Vec<(String, u32)> {
        self.list(&["-L", "-n", "-t", &vip.to_string()])
            .lines()
            .filter(|l| l.starts_with("  -> ") && !l.starts_with("  -> RemoteAddress"))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[1].to_string(), f[3].parse().expect("a weight"))
            })
            .collect()
    }

    /// What the daemon has logged so far (at info level if started with
    /// [`Daemon::start_logged`], else at warn or `UVS_TEST_LOG`'s level).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(DAEMON_LOG)).unwrap_or_default()
    }

    /// Where this daemon serves metrics, from `uvs status`.
    pub fn metrics_address(&self) -> std::net::SocketAddr {
        let status = self.status();
        let url = status
            .lines()
            .find_map(|l| l.strip_prefix("metrics at http://"))
            .unwrap_or_else(|| panic!("no metrics address in\n{status}"));
        url.trim_end_matches(" (status page off)")
            .trim_end_matches("/metrics")
            .parse()
            .expect("metrics address")
    }

    /// `uvs status` of this daemon.
    pub fn status(&self) -> String {
        let out = status_at(&self.socket).output().expect("uvs status");
        assert!(out.status.success(), "uvs status: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// Adds virtual service `kind` ("-t" or "-u") `vip` with these `-A` options.
    pub fn add_service(&self, kind: &str, vip: std::net::SocketAddr, options: &[&str]) {
        let v = vip.to_string();
        self.ok(&[&["-A", kind, &v][..], options].concat());
    }

    /// `command` ("-a" to add, "-e" to edit) real server `server` of virtual service
    /// `kind` `vip`, masqueraded, with these further options (`-w 3`...).
    pub fn set_server(
        &self,
        command: &str,
        kind: &str,
        vip: std::net::SocketAddr,
        server: std::net::SocketAddr,
        extra: &[&str],
    ) {
        let (v, s) = (vip.to_string(), server.to_string());
        self.ok(&[&[command, kind, &v, "-r", &s, "-m"][..], extra].concat());
    }

    /// Virtual service `kind` ("-t" or "-u") `vip` with these `-A` options and real
    /// servers (added in this order, each with its `-a` options), once the daemon
    /// listens on it.
    pub fn balance_on(
        &self,
        kind: &str,
        vip: std::net::SocketAddr,
        options: &[&str],
        servers: &[(std::net::SocketAddr, &[&str])],
    ) {
        self.add_service(kind, vip, options);
        for (server, extra) in servers {
            self.set_server("-a", kind, vip, *server, extra);
        }
        let protocol = if kind == "-u" { "udp" } else { "tcp" };
        self.wait_listening_on(protocol, vip);
    }

    /// Waits until `uvs status` shows TCP `vip` listening (without connecting to it).
    pub fn wait_listening(&self, vip: std::net::SocketAddr) {
        self.wait_listening_on("tcp", vip);
    }

    /// Waits until `uvs status` shows `vip` listening on `protocol` ("tcp", "udp").
    pub fn wait_listening_on(&self, protocol: &str, vip: std::net::SocketAddr) {
        let line = format!("listen {protocol} {vip}: listening");
        eventually(&line, || self.status().contains(&line));
    }

    /// Descriptors the daemon has open now.
    pub fn open_descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .expect("read /proc/PID/fd")
            .count()
    }

    /// The process's resident memory, in bytes (VmRSS).
    pub fn resident_bytes(&self) -> u64 {
        self.status_bytes("VmRSS")
    }

    /// `uvs run` with these extra arguments under an open-files limit of `limit` (soft
    /// and hard, so the daemon cannot raise it).
    pub fn start_with_open_files(limit: u32, args: &[&str]) -> Daemon {
        Daemon::spawn(Zone::default(), args, false, Some(u64::from(limit)))
    }

    /// A `kB` field of /proc/PID/status (VmRSS, VmHWM...), in bytes.
    pub fn status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/PID/status"));
        kib * 1024
    }

    /// Resets the peak resident size (VmHWM) to the current one.
    pub fn reset_peak_resident(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5")
            .expect("write /proc/PID/clear_refs");
    }

    /// `uvsadm -S -n`, which must succeed.
    pub fn save(&self) -> String {
        let out = self.uvsadm(&["-S", "-n"]);
        assert!(out.status.success(), "-S -n failed: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Whether the daemon process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() || std::env::var_os("UVS_TEST_LOG").is_some() {
            let log = log_tail(&self.dir.path().join(DAEMON_LOG));
            eprintln!(
                "--- log of uvs run (pid {}, socket {}) ---\n{log}--- end of its log ---",
                self.child.id(),
                self.socket.display(),
            );
        }
    }
}

/// A test daemon's log file, in its directory.
const DAEMON_LOG: &str = "uvs.log";

/// The most of a log a failing test shows: its last 64 KiB.
pub const LOG_SHOWN: usize = 64 * 1024;

/// The last [`LOG_SHOWN`] bytes of the file at `path` (from the first line start in
/// them, after a line saying so), read without reading the rest; empty if there is no
/// such file.
pub fn log_tail(path: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(LOG_SHOWN as u64);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    if start > 0
        && let Some(newline) = bytes.iter().position(|b| *b == b'\n')
    {
        bytes.drain(..=newline);
        return format!(
            "[... the log's first {start} bytes and more left out ...]\n{}",
            text(&bytes)
        );
    }
    text(&bytes)
}

pub fn run_with_input(mut cmd: Command, input: &str) -> Output {
    use std::io::Write;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    child.wait_with_output().expect("wait")
}

/// Runs `cmd` to its end, which must come within 20 s (else it is killed and the test
/// fails, naming `what`): for commands that a daemon stuck in a read, or an importer
/// stuck in its input, would never finish. Standard input is empty.
pub fn bounded(mut cmd: Command, what: &str) -> Output {
    cmd.stdin(Stdio::null());
    bounded_run(cmd, None, what)
}

/// As [`bounded`], with `input` on standard input.
pub fn bounded_with_input(mut cmd: Command, input: &[u8], what: &str) -> Output {
    cmd.stdin(Stdio::piped());
    bounded_run(cmd, Some(input.to_vec()), what)
}

fn bounded_run(mut cmd: Command, input: Option<Vec<u8>>, what: &str) -> Output {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_BACKTRACE");
    let mut child = cmd.spawn().expect("spawn");
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        // From a thread of its own: a command that does not read must not hang the test.
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&input);
        });
    }
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{what} did not finish within 20 s");
        }
    }
}

/// `uvsadm --socket SOCKET`, for its arguments to follow: the daemon named by option
/// rather than by environment, and nothing of [`Daemon::configure`]'s environment.
pub fn uvsadm_at(socket: &Path) -> Command {
    let mut cmd = Command::new(UVSADM);
    cmd.arg("--socket").arg(socket);
    cmd
}

/// `uvs status --socket SOCKET`, to be run.
pub fn status_at(socket: &Path) -> Command {
    let mut cmd = Command::new(UVS);
    cmd.args(["status", "--socket"]).arg(socket);
    cmd
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A port free for TCP and UDP on 127.0.0.1 (bound then released; tests use them at
/// once), below the system's ephemeral range where it can: a port the system hands out
/// to a client socket meanwhile (the UDP flood tests take thousands) cannot then take
/// it from the daemon the test starts there.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let first_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    // Below 20000 stay the fixed ports some tests use (18000-18999).
    if first_ephemeral > 21000 {
        let span = u64::from(first_ephemeral - 20000);
        for _ in 0..1000 {
            let random = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish();
            let port = 20000 + (random % span) as u16;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
                && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
            {
                return port;
            }
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// 127.0.0.1 and a [`free_port`]: an address for a TCP virtual service, or for a real
/// server the test puts there.
pub fn vip() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Sends SIGTERM to a child process (through kill(1), so the tests need no unsafe code).
pub fn sigterm(child: &Child) {
    signal(child, "TERM");
}

/// Sends SIGHUP to a child process.
pub fn sighup(child: &Child) {
    signal(child, "HUP");
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {}", child.id());
}

/// A port on 127.0.0.1 that refuses connections for as long as the socket is kept: it
/// is bound but not listening, so no other test can take the port meanwhile.
pub fn refusing_port() -> (socket2::Socket, std::net::SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    (s, addr)
}

/// What a test backend does with each connection.
#[derive(Clone, Copy)]
pub enum Behaviour {
    /// Writes its name and closes.
    Name,
    /// Echoes until the client closes.
    Echo,
    /// Reads a PROXY header line (v1) or block (v2) and answers with it, hex-free: the
    /// raw bytes it got before the first request byte.
    ProxyHeader,
}

/// A TCP server on 127.0.0.1 (or ::1) run by a thread per connection; stops when dropped.
pub struct Backend {
    pub addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    pub accepted: Arc<AtomicUsize>,
}

impl Backend {
    pub fn start(name: &'static str, behaviour: Behaviour) -> Backend {
        Backend::start_on("127.0.0.1:0", name, behaviour)
    }

    /// Two backends that do the same, named A and B.
    pub fn pair(behaviour: Behaviour) -> (Backend, Backend) {
        (
            Backend::start("A", behaviour),
            Backend::start("B", behaviour),
        )
    }

    pub fn start_on(bind: &str, name: &'static str, behaviour: Behaviour) -> Backend {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind(bind).expect("backend bind");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (stop2, accepted2) = (Arc::clone(&stop), Arc::clone(&accepted));
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        accepted2.fetch_add(1, Ordering::Relaxed);
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                        std::thread::spawn(move || match behaviour {
                            Behaviour::Name => {
                                let _ = s.write_all(name.as_bytes());
                            }
                            Behaviour::Echo => {
                                let mut buf = [0u8; 65536];
                                loop {
                                    match s.read(&mut buf) {
                                        Ok(0) | Err(_) => break,
                                        Ok(n) => {
                                            if s.write_all(&buf[..n]).is_err() {
                                                break;
                                            }
                                        }
                                    }
                                }
                            }
                            Behaviour::ProxyHeader => {
                                let mut got = Vec::new();
                                let mut buf = [0u8; 256];
                                // The client sends "END" after its header.
                                while !got.ends_with(b"END") {
                                    match s.read(&mut buf) {
                                        Ok(0) | Err(_) => break,
                                        Ok(n) => got.extend_from_slice(&buf[..n]),
                                    }
                                }
                                let _ = s.write_all(&got);
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Backend {
            addr,
            stop,
            accepted,
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What a UDP test backend answers to each datagram.
#[derive(Clone, Copy)]
pub enum Reply {
    /// Its name.
    Name,
    /// The datagram itself.
    Echo,
    /// The datagram itself, but nothing to datagrams that begin with these bytes (as a
    /// server ignores what it cannot parse).
    EchoIgnoring(&'static [u8]),
}

/// A UDP server on one address, answering from one thread; stops when dropped.
pub struct UdpBackend {
    pub addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    /// Datagrams received.
    pub received: Arc<AtomicUsize>,
    /// Who sent the last one (uvs's socket towards this server).
    pub last_peer: Arc<std::sync::Mutex<Option<std::net::SocketAddr>>>,
}

impl UdpBackend {
    pub fn start(name: &'static str, reply: Reply) -> UdpBackend {
        UdpBackend::start_on("127.0.0.1:0", name, reply)
    }

    /// Two UDP backends that answer alike, named A and B.
    pub fn pair(reply: Reply) -> (UdpBackend, UdpBackend) {
        (UdpBackend::start("A", reply), UdpBackend::start("B", reply))
    }

    pub fn start_on(bind: &str, name: &'static str, reply: Reply) -> UdpBackend {
        let socket = std::net::UdpSocket::bind(bind).expect("UDP backend bind");
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicUsize::new(0));
        let last_peer = Arc::new(std::sync::Mutex::new(None));
        let (stop2, received2, last_peer2) = (
            Arc::clone(&stop),
            Arc::clone(&received),
            Arc::clone(&last_peer),
        );
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !stop2.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    received2.fetch_add(1, Ordering::Relaxed);
                    *last_peer2.lock().unwrap() = Some(from);
                    let answer = match reply {
                        Reply::Name => name.as_bytes(),
                        Reply::Echo => &buf[..n],
                        Reply::EchoIgnoring(prefix) if buf[..n].starts_with(prefix) => continue,
                        Reply::EchoIgnoring(_) => &buf[..n],
                    };
                    let _ = socket.send_to(answer, from);
                }
            }
        });
        UdpBackend {
            addr,
            stop,
            received,
            last_peer,
        }
    }
}

impl Drop for UdpBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A request for `path` to `addr`: (status line, body).
pub fn http_get(addr: std::net::SocketAddr, method: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = connect(addr, None).expect("connect to the HTTP endpoint");
    // By address, as a browser sends it: the status page refuses names (DNS rebinding).
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or((response.as_str(), ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// A UDP port on 127.0.0.1 free at the time of asking.
pub fn free_udp_port() -> u16 {
    free_port()
}

/// Connects to `to`, from `from` if given, with bounded waits.
pub fn connect(
    to: std::net::SocketAddr,
    from: Option<&str>,
) -> std::io::Result<std::net::TcpStream> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(to),
        socket2::Type::STREAM,
        None,
    )?;
    if let Some(from) = from {
        let addr: std::net::SocketAddr = format!("{from}:0").parse().unwrap();
        socket.bind(&addr.into())?;
    }
    socket.connect_timeout(&to.into(), Duration::from_secs(10))?;
    let s: std::net::TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.set_write_timeout(Some(Duration::from_secs(20)))?;
    Ok(s)
}

/// Reads everything until the peer closes.
pub fn read_all(s: &mut std::net::TcpStream) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

/// Writes `message` on `s` and reads as many bytes back: what an echo returned.
pub fn echoed(s: &mut std::net::TcpStream, message: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    s.write_all(message).expect("write to the echo");
    let mut back = vec![0u8; message.len()];
    s.read_exact(&mut back).expect("read the echo back");
    back
}

/// The name a `Behaviour::Name` backend answers through `vip`.
pub fn ask(vip: std::net::SocketAddr, from: Option<&str>) -> String {
    let mut s = connect(vip, from).expect("connect to the VIP");
    String::from_utf8(read_all(&mut s).expect("read")).unwrap()
}

/// This process's open-files limit raised to at least `wanted` (up to the hard limit,
/// through prlimit(1), so the tests need no unsafe code); false if it cannot be.
pub fn raise_own_open_files(wanted: u64) -> bool {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let (soft, hard) = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .map(|l| {
            let mut n = l.split_whitespace().skip(3);
            let mut next = || match n.next() {
                Some("unlimited") => u64::MAX,
                Some(v) => v.parse().unwrap_or(0),
                None => 0,
            };
            (next(), next())
        })
        .unwrap_or((0, 0));
    if soft >= wanted {
        return true;
    }
    if hard < wanted {
        return false;
    }
    let hard_text = if hard == u64::MAX {
        "unlimited".to_string()
    } else {
        hard.to_string()
    };
    Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={hard_text}:{hard_text}"))
        .status()
        .is_ok_and(|s| s.success())
}

/// Waits (bounded) until `check` holds.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `test` on a thread in a network namespace of its own (with its loopback up):
/// everything the thread starts (the daemon, backends' threads, clients) lives there,
/// so a test may bind 0.0.0.0 or set the namespace's own sysctls (/proc/sys/net is the
/// opening thread's namespace's) without touching the host's. Root only (unshare needs
/// CAP_SYS_ADMIN); elsewhere the test does nothing, and says so.
pub fn in_own_network(test: impl FnOnce() + Send + 'static) {
    if !is_root() {
        eprintln!("not root: the test does nothing");
        return;
    }
    let thread = std::thread::spawn(move || {
        uvs::sys::unshare_network().expect("unshare");
        let up = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .expect("ip link set lo up");
        assert!(up.success());
        test();
    });
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

/// Whether the tests run as root (`id -u` is 0).
pub fn is_root() -> bool {
    text(&Command::new("id").arg("-u").output().unwrap().stdout).trim() == "0"
}

/// net.ipv4.ip_unprivileged_port_start (1024 when unreadable); None, and says so, when
/// every port is unprivileged (a low-port test then has nothing to test).
pub fn unprivileged_port_start() -> Option<u16> {
    let start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .map_or(1024, |s| s.trim().parse().unwrap_or(1024));
    if start <= 1 {
        eprintln!("every port is unprivileged here: the test does nothing");
        return None;
    }
    Some(start)
}

/// uvs run as another user (nobody, 65534) under setpriv, as root plays it: a copy of
/// the binary in a 0755 temporary directory (any uid can run it there; the build's
/// target directory may be closed) and a run directory of that user's own (0700) for
/// its socket. Removed on drop.
pub struct AsNobody {
    pub dir: tempfile::TempDir,
    /// The copy of uvs.
    pub uvs: PathBuf,
    /// `dir/run`, owned by nobody.
    pub run: PathBuf,
}

impl AsNobody {
    pub const UID: u32 = 65534;

    /// None, and says so, when the tests do not run as root (only root can play another
    /// user).
    pub fn new() -> Option<Self> {
        use std::os::unix::fs::PermissionsExt as _;
        if !is_root() {
            eprintln!("not root: another user cannot be played, the test does nothing");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let uvs = dir.path().join("uvs");
        std::fs::copy(UVS, &uvs).unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::os::unix::fs::chown(&run, Some(Self::UID), Some(Self::UID)).unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
        Some(Self { dir, uvs, run })
    }

    /// `setpriv … -- uvs ARGS` as nobody (no supplementary groups), with an empty
    /// environment: the caller adds what it wants (PATH, UVS_LOG) and more arguments.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = Command::new("setpriv");
        command
            .args([
                format!("--reuid={}", Self::UID),
                format!("--regid={}", Self::UID),
                "--clear-groups".into(),
                "--".into(),
            ])
            .arg(&self.uvs)
            .args(args)
            .env_clear();
        command
    }
}
