//! The `uvs run` daemon: holds the table, serves the control socket and runs the rate
//! estimator, until told to stop. `main` wires signals to it; tests start it directly.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;

use crate::control::server::{self, BindError};
use crate::stats::ESTIMATOR_INTERVAL;
use crate::table::TableHandle;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    ControlSocket(#[from] BindError),
}

/// A daemon whose control socket is bound, ready to run.
pub struct Daemon {
    table: Arc<TableHandle>,
    listener: UnixListener,
    socket: PathBuf,
}

impl Daemon {
    /// Binds the control socket. Must be called inside a Tokio runtime.
    pub fn bind(socket: &Path, table: Arc<TableHandle>) -> Result<Daemon, DaemonError> {
        let listener = server::bind(socket)?;
        Ok(Daemon {
            table,
            listener,
            socket: socket.to_path_buf(),
        })
    }

    pub fn table(&self) -> &Arc<TableHandle> {
        &self.table
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Serves until `shutdown` completes, then removes the control socket.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tracing::info!(socket = %self.socket.display(), "uvs daemon listening");
        let estimator = tokio::spawn(estimate_rates(Arc::clone(&self.table)));
        tokio::select! {
            () = server::serve(self.listener, Arc::clone(&self.table)) => {}
            () = shutdown => {}
        }
        estimator.abort();
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
        for service in snapshot.services() {
            service.state.stats.estimate();
            for server in &service.servers {
                server.state.stats.estimate();
            }
        }
        snapshot.totals().estimate();
    }
}
