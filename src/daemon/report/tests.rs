//! The report tested on its fields: a listener that cannot bind, the configuration
//! piece after a refused reload, the descriptor split, the mode's effect on the wire
//! form, the metrics endpoint. Real sockets on 127.0.0.1 only; every wait is bounded in
//! tries, not in time.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::*;
use crate::proxy::director::PlaneOptions;
use crate::table::{
    Command, ListenAddr, Protocol, ServiceConfig, ServiceKey, TableHandle, UnicastOnly,
};

fn director(open_files: Option<u64>) -> Arc<Director> {
    let table = Arc::new(TableHandle::new(Box::new(UnicastOnly)));
    let options = PlaneOptions {
        threads: 1,
        open_files,
        ..PlaneOptions::default()
    };
    Director::new(table, options).expect("director")
}

fn tcp(port: u16) -> ServiceKey {
    ServiceKey::Inet {
        protocol: Protocol::Tcp,
        addr: "127.0.0.1".parse().unwrap(),
        port,
    }
}

/// Polls `report` until `done` holds of it, at most 500 times 10 ms apart.
async fn until(reporter: &Reporter, done: impl Fn(&Report) -> bool) -> Report {
    for _ in 0..500 {
        let report = reporter.report();
        if done(&report) {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    reporter.report()
}

#[tokio::test]
async fn a_listener_that_cannot_bind_shows_why_and_one_that_can_shows_none() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = taken.local_addr().expect("address").port();
    let free = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("address").port()
    };
    let d = director(None);
    for port in [busy, free] {
        d.table
            .apply(&Command::AddService(ServiceConfig::new(tcp(port), "rr")))
            .expect("add service");
    }
    let reporter = Reporter::new(Arc::clone(&d), None);
    let manager = tokio::spawn(crate::proxy::listeners::manage(Arc::clone(&d)));
    let report = until(&reporter, |r| r.plane.listeners.len() == 2).await;
    manager.abort();
    d.listeners.stop_all();

    let at = |port: u16| {
        report
            .plane
            .listeners
            .iter()
            .find(|l| l.listen.port == port)
            .expect("a listener of the port")
    };
    let failed = at(busy);
    assert_eq!(failed.state.service, tcp(busy));
    let why = failed.state.error.as_deref().expect("an error");
    assert!(why.contains("in use"), "{why}");
    assert_eq!(at(free).state.error, None);
    assert_eq!(
        at(free).listen,
        ListenAddr {
            protocol: Protocol::Tcp,
            addr: "127.0.0.1".parse().unwrap(),
            port: free,
        }
    );
    // The wire form says the same, in the words `uvs status` prints.
    let status = report.status(Vec::new());
    let wire = status
        .listeners
        .iter()
        .find(|l| l.listen.port == busy)
        .expect("on the wire");
    assert_eq!(wire.state, format!("cannot listen: {why}; retrying"));
}

#[tokio::test]
async fn the_config_piece_counts_a_refused_reload_and_keeps_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("uvs.toml");
    let good = "[[service]]\ntcp = \"127.0.0.1:1\"\nscheduler = \"rr\"\n";
    std::fs::write(&path, good).expect("write");
    let loaded = crate::config::load(&path).expect("load");
    let d = director(None);
    let reporter = Reporter::new(Arc::clone(&d), None);
    assert_eq!(reporter.report().config, None, "no file, no piece");

    let cli = crate::daemon::settings::Overrides::default();
    let global = loaded.config.global.clone();
    let settings = crate::daemon::settings::Settings::resolve(Some(&global), &cli);
    let reloader = Arc::new(Reloader::new(
        &path,
        &loaded,
        Arc::clone(reporter.health()),
        1,
        Box::new(crate::daemon::settings::Running::new(settings, global, cli)),
    ));
    reporter.set_reloader(Arc::clone(&reloader));
    reloader.apply(&d, &loaded.config).expect("apply");
    let applied = reporter.report().config.expect("a piece");
    assert_eq!(applied.path, path.display().to_string());
    assert_eq!((applied.reloads, applied.refused), (0, 0));
    assert_eq!(applied.last_error, None);
    assert!(applied.applied_at > 0);

    std::fs::write(
        &path,
        "[[service]]\ntcp = \"127.0.0.1:1\"\nscheduler = \"nope\"\n",
    )
    .expect("write");
    let hangup = Arc::new(Notify::new());
    let task = tokio::spawn(Arc::clone(&reloader).run(Arc::clone(&d), Arc::clone(&hangup)));
    hangup.notify_one();
    let report = until(&reporter, |r| {
        r.config.as_ref().is_some_and(|c| c.refused > 0)
    })
    .await;
    task.abort();
    let refused = report.config.expect("a piece");
    assert_eq!((refused.reloads, refused.refused), (0, 1));
    assert_eq!(
        refused.applied_at, applied.applied_at,
        "nothing applied since"
    );
    let why = refused.last_error.expect("why");
    assert!(why.contains("service[0]"), "{why}");
    assert_eq!(
        d.table.snapshot().entries().len(),
        1,
        "the table is unchanged"
    );
}

#[test]
fn descriptors_show_the_split_and_kernel_mode_leaves_the_plane_out() {
    let d = director(Some(1024));
    let reporter = Reporter::new(Arc::clone(&d), None);
    let report = reporter.report();
    let split = &report.plane.descriptors;
    assert_eq!(split.open_files, 1024);
    assert_eq!(split.limit + split.reserved, 1024);
    assert_eq!(split.used, 0);
    assert_eq!(split.max_connections, None);
    assert_eq!(report.plane.worker_connections, vec![0]);
    let status = report.status(Vec::new());
    assert_eq!(status.descriptors.as_ref(), Some(split));
    assert_eq!(status.mode, "userspace");

    // The same table balanced by the kernel: a director that serves nothing itself.
    let in_kernel = Director::new(
        Arc::clone(&d.table),
        PlaneOptions {
            threads: 1,
            open_files: Some(1024),
            userspace: false,
            ..PlaneOptions::default()
        },
    )
    .expect("director");
    let kernel = Reporter::new(in_kernel, Some("kernel: as asked".into()));
    let report = kernel.report();
    assert_eq!(report.mode.mode, Mode::Kernel);
    let status = report.status(Vec::new());
    assert_eq!(status.mode, "kernel");
    assert_eq!(status.mode_reason.as_deref(), Some("kernel: as asked"));
    assert_eq!(status.descriptors, None);
    assert!(status.worker_connections.is_empty());
}

#[test]
fn the_metrics_piece_is_set_once() {
    let reporter = Reporter::new(director(None), None);
    assert_eq!(reporter.report().metrics, None);
    let addr: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let failed = MetricsEndpoint::NotServed {
        addr,
        error: "Address already in use".into(),
    };
    reporter.set_metrics(failed.clone());
    reporter.set_metrics(MetricsEndpoint::Serving {
        at: addr,
        page: true,
    });
    assert_eq!(reporter.report().metrics, Some(failed));
}

#[test]
fn health_statuses_are_the_books() {
    let reporter = Reporter::new(director(None), None);
    assert!(reporter.report().health.is_empty());
    let target = crate::health::Target {
        service: tcp(80),
        server: crate::table::ServerKey {
            addr: "127.0.0.2".parse().unwrap(),
            port: 80,
        },
    };
    reporter.health().update(target, |h| {
        h.up = false;
        h.failures = 3;
    });
    let health = reporter.report().health;
    assert_eq!(health.len(), 1);
    assert_eq!((health[0].up, health[0].failures), (false, 3));
    assert_eq!(health[0].server, target.server);
}
