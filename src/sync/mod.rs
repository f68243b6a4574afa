//! IPVS connection sync in userspace: uvs as a sync master, backup or both, speaking
//! the kernel's protocol (`wire`) over UDP multicast (`socket`), so uvs directors and
//! kernel IPVS directors back each other up. The data plane queues what a master
//! sends (`queue`); a master task packs and multicasts it (`master`); a backup task
//! installs received templates and holds received connections (`backup`, `synced`);
//! `counters` says what they did. [`follow`] runs the daemons the table asks for
//! (`--start-daemon`, the file's `[sync]`); the daemon calls it in userspace mode (in
//! kernel mode the kernel's own threads do the work).

pub mod backup;
pub mod counters;
pub mod master;
pub mod queue;
pub mod socket;
pub mod synced;
pub mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use counters::{SyncCounters, SyncStatus};
use queue::SyncQueue;
use synced::SyncedConns;

use crate::lock::Locked;
use crate::proxy::director::Director;
use crate::rate_limit::RateLimit;
use crate::table::{SyncDaemon, SyncRole};

/// What the sync daemons share with the data plane and the report.
#[derive(Debug, Default)]
pub struct Shared {
    pub queue: SyncQueue,
    pub synced: SyncedConns,
    pub counters: SyncCounters,
    /// The address the master sends from: the backup ignores datagrams from it.
    own: Mutex<Option<SocketAddr>>,
    warned: RateLimit,
}

impl Shared {
    fn set_own(&self, at: Option<SocketAddr>) {
        *self.own.locked() = at;
    }

    fn own(&self) -> Option<SocketAddr> {
        *self.own.locked()
    }

    /// The counters at this moment.
    pub fn status(&self) -> SyncStatus {
        self.counters
            .status(self.synced.len() as u64, self.queue.overflow())
    }
}

/// Runs, forever, the sync daemons the table asks for: on every change of the table a
/// daemon whose settings changed is stopped and started again, a new one started, a
/// removed one stopped. A daemon whose socket cannot be made is logged and left
/// stopped until its settings change.
pub async fn follow(director: Arc<Director>) {
    let mut changes = director.table.subscribe();
    let mut running: [Option<(SyncDaemon, tokio::task::JoinHandle<()>)>; 2] = [None, None];
    loop {
        let wanted = director.table.snapshot().sync_daemons().clone();
        for (i, role) in [SyncRole::Master, SyncRole::Backup].into_iter().enumerate() {
            let want = wanted.get(role);
            if running[i].as_ref().map(|(d, _)| d) == want {
                continue;
            }
            if let Some((_, task)) = running[i].take() {
                task.abort();
                if role == SyncRole::Master {
                    director.sync.queue.set_on(false);
                    director.sync.set_own(None);
                }
                tracing::info!("sync: {} daemon stopped", role.name());
            }
            if let Some(daemon) = want {
                // Defaults as the kernel fills them; the table may hold them filled.
                let resolved = daemon.resolved(socket::interface_mtu(&daemon.interface));
                tracing::info!("sync: {resolved}");
                let task = tokio::spawn(serve(resolved, Arc::clone(&director)));
                running[i] = Some((daemon.clone(), task));
            }
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

async fn serve(daemon: SyncDaemon, director: Arc<Director>) {
    let result = match daemon.role {
        SyncRole::Master => master::run(daemon.clone(), &director.sync).await,
        SyncRole::Backup => backup::run(daemon.clone(), &director).await,
    };
    if let Err(e) = result {
        if daemon.role == SyncRole::Master {
            director.sync.queue.set_on(false);
        }
        tracing::error!(
            "sync: {} daemon on {} stopped: {e}",
            daemon.role.name(),
            daemon.interface
        );
    }
}
