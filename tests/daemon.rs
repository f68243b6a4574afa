//! The daemon as a library: `uvs::daemon::run` started in-process, with a configuration
//! file of one loopback virtual service over a real server of the test's own.
//!
//! - On a runtime of its own (as `uvs run` on its main thread): one connection is
//!   balanced, the control socket answers a uvsadm listing, and resolving the shutdown
//!   future makes `run` return (and remove its socket).
//! - On the test's own runtime with time paused: the health checks' schedule in
//!   virtual seconds (a minute's interval, a server down after its third failed check
//!   and back after its second good one) in a few real milliseconds.
//!
//! One daemon at a time (`ONE_DAEMON`), and alone in its test binary: `run` makes the
//! process a child subreaper that kills the children it did not spawn, and this binary
//! spawns none (the shared helpers it uses are threads).

mod common;

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use common::{Backend, Behaviour, eventually, vip};

use uvs::config::Mode;
use uvs::control::client::Client;
use uvs::control::protocol::{Request, Response};
use uvs::daemon::ConfigFile;
use uvs::daemon::settings::{Overrides, Settings};

/// How long `run` may take to return once told to stop (a bound on a hang, not a
/// measure of speed).
const BOUND: Duration = Duration::from_secs(20);

/// Held by each test for as long as its daemon runs: one subreaper at a time.
static ONE_DAEMON: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The settings and file of a userspace daemon with one worker thread, no metrics
/// endpoint, and its control socket in `dir`, running `config` (TOML).
fn daemon_with(dir: &Path, config: &str) -> (Settings, ConfigFile, PathBuf) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let socket = dir.join("uvs.sock");
    let path = dir.join("uvs.toml");
    std::fs::write(&path, config).unwrap();
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
    (settings, file, socket)
}

fn services(socket: &Path) -> Vec<uvs::table::ServiceEntry> {
    match Client::new(socket.to_path_buf()).call(&Request::ListServices {}) {
        Ok(Response::Services { services }) => services,
        other => panic!("a listing: {other:?}"),
    }
}

#[test]
fn run_in_process_balances_a_connection_answers_a_listing_and_stops_when_told() {
    let _one = ONE_DAEMON.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let real = Backend::start("RS1", Behaviour::Name);
    let vip = vip();
    let (settings, file, socket) = daemon_with(
        dir.path(),
        &format!(
            "[[service]]\ntcp = \"{vip}\"\nscheduler = \"rr\"\n[[service.server]]\naddress = \"{}\"\n",
            real.addr
        ),
    );

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

    // One connection, made as soon as the VIP listens (the count below is exact).
    let mut answer = Vec::new();
    eventually("the VIP listens", || match TcpStream::connect(vip) {
        Ok(mut s) => {
            s.set_read_timeout(Some(BOUND)).unwrap();
            answer = common::read_all(&mut s).expect("read");
            true
        }
        Err(_) => false,
    });
    assert_eq!(answer, b"RS1");
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

/// The weight of the only server of the only service, asked over the control socket
/// from a blocking thread: the daemon answers on this runtime's thread (and virtual time
/// stands still while the thread waits).
async fn weight(socket: &Path) -> u32 {
    let socket = socket.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let listed = services(&socket);
        listed[0].servers[0].weight
    })
    .await
    .unwrap()
}

/// The virtual moment `done` first holds, asked once a virtual second; None if it does
/// not within `limit` seconds.
async fn when(limit: u64, mut done: impl AsyncFnMut() -> bool) -> Option<Instant> {
    for _ in 0..=limit {
        if done().await {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    None
}

/// A real server that accepts connections, closes them and notes when (virtual time),
/// until it is dropped. Its only clients are the health checks.
struct Listening {
    task: tokio::task::JoinHandle<()>,
    accepted: Arc<Mutex<Vec<Instant>>>,
}

impl Listening {
    async fn on(addr: SocketAddr) -> Listening {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let noted = Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                noted.lock().unwrap().push(Instant::now());
                drop(stream);
            }
        });
        Listening { task, accepted }
    }

    fn accepted(&self) -> Vec<Instant> {
        self.accepted.lock().unwrap().clone()
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Virtual seconds from `a` to `b`.
fn seconds(a: Instant, b: Instant) -> u64 {
    b.duration_since(a).as_secs()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn with_time_paused_a_server_goes_at_its_third_failed_check_and_returns_at_its_second_good_one()
 {
    let _one = ONE_DAEMON.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let real = vip();
    let vip = vip();
    let up = Listening::on(real).await;
    let (settings, file, socket) = daemon_with(
        dir.path(),
        &format!(
            "[[service]]\ntcp = \"{vip}\"\nquiescent = true\n\
             [service.check]\ntype = \"connect\"\ninterval = \"60s\"\nfailures = 3\nrise = 2\n\
             [[service.server]]\naddress = \"{real}\"\nweight = 5\n"
        ),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = uvs::daemon::run(settings, Some(file), async {
        let _ = stopped.await;
    });
    // A check is due an interval after the last one, give or take 5%: 57 to 63 s.
    let interval = 57..=63;
    let checks = async {
        // Up from the start and through its first two checks, an interval apart.
        assert_eq!(weight(&socket).await, 5);
        when(200, async || up.accepted().len() == 2)
            .await
            .expect("two checks");
        let good = up.accepted();
        assert!(interval.contains(&seconds(good[0], good[1])), "{good:?}");
        assert_eq!(weight(&socket).await, 5);

        // Gone: the three checks after the last good one fail, and the third takes it
        // out (quiescent: weight 0), not the first or the second.
        drop(up);
        let down = when(200, async || weight(&socket).await == 0)
            .await
            .expect("quiesced");
        let after = seconds(good[1], down);
        assert!((171..=190).contains(&after), "quiesced {after} s after");

        // Back: two good checks in a row, with the weight of its configuration, from
        // the second of them on.
        let up = Listening::on(real).await;
        let back = when(200, async || weight(&socket).await == 5)
            .await
            .expect("back");
        let good = up.accepted();
        assert_eq!(good.len(), 2, "back after {good:?}");
        assert!(interval.contains(&seconds(good[0], good[1])), "{good:?}");
        assert!(seconds(good[1], back) <= 1, "{good:?} back at {back:?}");
        stop.send(()).unwrap();
    };
    let (result, ()) = tokio::join!(daemon, checks);
    assert!(result.is_ok(), "{result:?}");
    assert!(!socket.exists(), "the control socket is left behind");
}
