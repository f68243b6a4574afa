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

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use counters::{DaemonState, SyncCounters, SyncStatus};
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
    /// The daemons uvs runs, by role, and how each is doing.
    daemons: Mutex<BTreeMap<&'static str, DaemonState>>,
    warned: RateLimit,
}

/// How long a daemon whose socket could not be made waits before it tries again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(2);

impl Shared {
    fn set_own(&self, at: Option<SocketAddr>) {
        *self.own.locked() = at;
    }

    /// Whether `peer` is this director's master: its port, and its address unless the
    /// master is bound to none (an IPv6 master sends from the interface's address).
    fn is_own(&self, peer: SocketAddr) -> bool {
        self.own.locked().is_some_and(|own| {
            own.port() == peer.port() && (own.ip().is_unspecified() || own.ip() == peer.ip())
        })
    }

    /// The counters at this moment.
    pub fn status(&self) -> SyncStatus {
        let daemons = self
            .daemons
            .locked()
            .iter()
            .map(|(role, state)| ((*role).to_string(), state.clone()))
            .collect();
        self.counters
            .status(self.synced.len() as u64, self.queue.overflow(), daemons)
    }

    fn set_state(&self, role: SyncRole, state: Option<DaemonState>) {
        let mut daemons = self.daemons.locked();
        match state {
            Some(state) => daemons.insert(role.name(), state),
            None => daemons.remove(role.name()),
        };
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
                director.sync.set_state(role, None);
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

/// Runs one daemon until aborted: when its socket cannot be made it is marked down
/// with the reason (status, metrics; logged once per new reason) and tried again every
/// [`RETRY_INTERVAL`], as a listener that cannot listen is.
async fn serve(daemon: SyncDaemon, director: Arc<Director>) {
    let role = daemon.role;
    let mut said = String::new();
    loop {
        let result = match role {
            SyncRole::Master => master::run(daemon.clone(), &director.sync).await,
            SyncRole::Backup => backup::run(daemon.clone(), &director).await,
        };
        if let Err(e) = result {
            if role == SyncRole::Master {
                director.sync.queue.set_on(false);
                director.sync.set_own(None);
            }
            let reason = e.to_string();
            if reason != said {
                tracing::error!(
                    "sync: the {} daemon on {} cannot run: {reason}; retrying every {} s",
                    role.name(),
                    daemon.interface,
                    RETRY_INTERVAL.as_secs()
                );
                said.clone_from(&reason);
            }
            director
                .sync
                .set_state(role, Some(DaemonState::Down { reason }));
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
}
