//! The daemon as a library: `uvs::daemon::run` started in-process on a runtime of the
//! test's own, with a configuration file of one loopback virtual service over a real
//! server of the test's own; one connection is balanced, the control socket answers a
//! uvsadm listing, and resolving the shutdown future makes `run` return (and remove its
//! socket). Alone in its test binary: `run` makes the process a child subreaper that
//! kills the children it did not spawn, and this binary spawns none (the shared helpers
//! it uses are threads).

mod common;

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{Backend, Behaviour, eventually, free_port};

use uvs::config::Mode;
use uvs::control::client::Client;
use uvs::control::protocol::{Request, Response};
use uvs::daemon::ConfigFile;
use uvs::daemon::settings::{Overrides, Settings};

/// How long `run` may take to return once told to stop (a bound on a hang, not a
/// measure of speed).
const BOUND: Duration = Duration::from_secs(20);

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
    let real = Backend::start("RS1", Behaviour::Name);
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
