//! The daemon as a library: `uvs::daemon::run` started in-process on a runtime of the
//! test's own, with a configuration file of one loopback virtual service over a real
//! server of the test's own; one connection is balanced, the control socket answers a
//! uvsadm listing, and resolving the shutdown future makes `run` return (and remove its
//! socket). Alone in its test binary: `run` makes the process a child subreaper that
//! kills the children it did not spawn, and this binary spawns none.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use uvs::config::Mode;
use uvs::control::client::Client;
use uvs::control::protocol::{Request, Response};
use uvs::daemon::ConfigFile;
use uvs::daemon::settings::{Overrides, Settings};

/// How long any one wait here may take before the test fails (a bound on a hang, not a
/// measure of speed).
const BOUND: Duration = Duration::from_secs(20);

/// Retries `attempt` until it gives a value, for at most [`BOUND`].
fn eventually<T>(what: &str, mut attempt: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(value) = attempt() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A real server on 127.0.0.1 that writes `RS1` to each connection and closes it; it
/// stops when dropped.
struct RealServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl RealServer {
    fn start() -> RealServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.write_all(b"RS1");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        RealServer { addr, stop }
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What the VIP answers to one connection, once it listens.
fn ask(vip: SocketAddr) -> String {
    let mut stream = eventually("the VIP listens", || TcpStream::connect(vip).ok());
    stream.set_read_timeout(Some(BOUND)).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn services(socket: &Path) -> Vec<uvs::table::ServiceEntry> {
    match Client::new(socket.to_path_buf()).call(&Request::ListServices {}) {
        Ok(Response::Services { services }) => services,
        other => panic!("a listing: {other:?}"),
    }
}

#[test]
fn run_in_process_balances_a_connection_answers_a_listing_and_stops_when_told() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let socket = dir.path().join("uvs.sock");
    let real = RealServer::start();
    let vip = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let path = dir.path().join("uvs.toml");
    std::fs::write(
        &path,
        format!(
            "[[service]]\ntcp = \"{vip}\"\nscheduler = \"rr\"\n[[service.server]]\naddress = \"{}\"\n",
            real.addr
        ),
    )
    .unwrap();
    let loaded = uvs::config::load(&path).unwrap();
    let overrides = Overrides {
        socket: Some(socket.clone()),
        metrics: Some(None),
        mode: Some(Mode::Userspace),
        threads: Some(1),
        drain_timeout: Some(Duration::from_secs(5)),
        ..Overrides::default()
    };
    let settings = Settings::resolve(Some(&loaded.config.global), &overrides);
    let file = ConfigFile {
        path,
        loaded,
        overrides,
        reload: Arc::new(tokio::sync::Notify::new()),
    };

    // The daemon on a thread of its own, as `uvs run` on its main thread.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (done, returned) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let shutdown = async {
            let _ = stopped.await;
        };
        let result = runtime.block_on(uvs::daemon::run(settings, Some(file), shutdown));
        let _ = done.send(result.map_err(|e| format!("{e:#}")));
    });

    assert_eq!(ask(vip), "RS1");
    let listed = services(&socket);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let servers = &listed[0].servers;
    assert_eq!(servers.len(), 1, "{servers:?}");
    assert_eq!(
        (servers[0].addr, servers[0].port),
        (real.addr.ip(), real.addr.port())
    );
    assert_eq!(servers[0].stats.counters.conns, 1, "{servers:?}");

    stop.send(()).unwrap();
    let result = returned
        .recv_timeout(BOUND)
        .expect("run returns once its shutdown future completes");
    assert_eq!(result, Ok(()));
    assert!(!socket.exists(), "the control socket is left behind");
}
