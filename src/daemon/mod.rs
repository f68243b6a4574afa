//! The `uvs run` daemon: holds the director (table, connections, templates), serves the
//! control socket, runs the data plane (listeners that follow the table), the rate
//! estimator and the expiry sweeper, until told to stop; then it stops accepting, lets
//! open connections finish up to a drain timeout, and removes its socket. Its settings
//! are read in `settings`; `run` wires it all from them ([`run()`]), which `main` calls
//! with the signals as its shutdown, and tests in-process.
//!
//! - `reload`: the reloader: the configuration file, followed, and the health checks
//!   it asks for;
//! - `report`: the status report, built from each part's typed piece;
//! - `handles`: what the control server and the exporter get to read it through;
//! - `sync`: the sync daemons' commands, checked against the host (and in kernel
//!   mode sent to the kernel) before the table takes them;
//! - `waiting_sync`: the file's sync daemons whose interface is missing, retried.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::UnixListener;

use crate::control::server::{self, BindError};
use crate::proxy::director::Director;
use crate::proxy::listeners;
use crate::stats::ESTIMATOR_INTERVAL;
use crate::table::TableHandle;
use report::{Mode, Reporter};

mod handles;
pub mod reload;
pub mod report;

mod run;
pub mod settings;
pub mod sync;
mod waiting_sync;

pub use run::{ConfigFile, RunError, director, run, serve};

/// How long a stopping daemon waits for open connections by default.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Set by a second stop signal: the drain under way ends at once. Process-wide, as the
/// signals that set it are.
static DRAIN_CUT: AtomicBool = AtomicBool::new(false);

/// Ends the drain of a stopping daemon now, closing its open connections as the drain
/// timeout would (`main` calls it on a second SIGINT or SIGTERM). Before a stop, the
/// drain that follows is cut from its start.
pub fn cut_drain() {
    DRAIN_CUT.store(true, Ordering::Relaxed);
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    ControlSocket(#[from] BindError),
}

/// A daemon whose control socket is bound, ready to run.
pub struct Daemon {
    reporter: Arc<Reporter>,
    listener: UnixListener,
    socket: PathBuf,
}

impl Daemon {
    /// Binds the control socket. Must be called inside a Tokio runtime. `reporter`
    /// holds the director and what the status report reads.
    pub fn bind(socket: &Path, reporter: Arc<Reporter>) -> Result<Daemon, DaemonError> {
        let listener = server::bind(socket)?;
        Ok(Daemon {
            reporter,
            listener,
            socket: socket.to_path_buf(),
        })
    }

    pub fn director(&self) -> &Arc<Director> {
        self.reporter.director()
    }

    pub fn reporter(&self) -> &Arc<Reporter> {
        &self.reporter
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Serves until `shutdown` completes, then drains for at most `drain` and removes
    /// the control socket.
    pub async fn run(self, shutdown: impl Future<Output = ()>, drain: Duration) {
        tracing::info!(
            socket = %self.socket.display(),
            forwarding = %self.director().options.forwarding,
            max_udp_flows = self.director().udp_flows.max(),
            "uvs daemon listening"
        );
        let director = Arc::clone(self.reporter.director());
        let control: Arc<dyn server::Daemon> = Arc::clone(&self.reporter) as _;
        let tasks = [
            tokio::spawn(server::serve(self.listener, control)),
            tokio::spawn(estimate_rates(Arc::clone(&director.table))),
            tokio::spawn(Arc::clone(&director).sweep()),
            // Timed drains (`pool`): asleep until one starts.
            tokio::spawn(crate::pool::run(Arc::clone(&director))),
            // `close_denied` (`pool::denied`): asleep until a list changes under it.
            tokio::spawn(crate::pool::denied::run(Arc::clone(&director))),
        ];
        // In kernel mode the kernel moves the traffic: no listeners here.
        let plane = (self.reporter.mode() == Mode::Userspace)
            .then(|| tokio::spawn(listeners::manage(Arc::clone(&director))));
        shutdown.await;

        if let Some(plane) = plane {
            plane.abort();
        }
        director.listeners.stop_all();
        let open = director.conns.live_streams();
        if open > 0 {
            tracing::info!(
                open,
                timeout_s = drain.as_secs(),
                "draining open connections (a second Ctrl-C or SIGTERM closes them now)"
            );
        }
        let deadline = tokio::time::Instant::now() + drain;
        let cut = || DRAIN_CUT.load(Ordering::Relaxed);
        while director.conns.live_streams() > 0 && tokio::time::Instant::now() < deadline && !cut()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = director.conns.live_streams();
        if left > 0 && cut() {
            tracing::warn!(
                left,
                "second signal: closing {left} {} now",
                crate::words::plural(left as u64, "connection", "connections")
            );
        } else if left > 0 {
            tracing::warn!(left, "drain timeout: closing the remaining connections");
        }
        for task in tasks {
            task.abort();
        }
        let _ = std::fs::remove_file(&self.socket);
        tracing::info!("uvs daemon stopped");
    }
}

/// IPVS's estimator: every 2 s, every service, every real server and the totals.
async fn estimate_rates(table: Arc<TableHandle>) {
    let mut tick = tokio::time::interval(ESTIMATOR_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let snapshot = table.snapshot();
        for service in snapshot.each_service() {
            service.state.stats.estimate();
            for server in &service.servers {
                server.state.stats.estimate();
            }
        }
        snapshot.totals().estimate();
    }
}
