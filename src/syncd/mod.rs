//! uvs's own connection-sync daemons (userspace mode): a master, a backup or both,
//! speaking the kernel's protocol (`sync::wire`) over UDP multicast (`socket`), so uvs
//! directors and kernel IPVS directors back each other up. A master task packs and
//! multicasts what the data plane queued (`master`); a backup task installs received
//! templates and holds received connections (`backup`). [`follow`] runs the daemons the
//! table asks for (`--start-daemon`, the file's `[sync]`); the daemon calls it in
//! userspace mode (in kernel mode the kernel's own threads do the work).

pub mod backup;
pub mod master;
pub mod socket;

use std::sync::Arc;

use crate::proxy::director::Director;
use crate::sync::RETRY_INTERVAL;
use crate::sync::counters::DaemonState;
use crate::table::{SyncDaemon, SyncRole};

/// Runs, forever, the sync daemons the table asks for: on every change of the table a
/// daemon whose settings changed is stopped and started again, a new one started, a
/// removed one stopped. A daemon whose socket cannot be made is shown down and tried
/// again every [`RETRY_INTERVAL`], or at once when told (`Shared::retry_now`).
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
                // An abort does not stop a poll running on another worker: waited for,
                // so that its last word (a retry's "down", the queue off) cannot land
                // after the new daemon's.
                let _ = task.await;
                director.sync.set_state(role, None);
                if role == SyncRole::Master {
                    director.sync.queue.set_on(false);
                    director.sync.set_own(None);
                }
                tracing::info!("sync: {} daemon stopped", role.name());
            }
            if let Some(daemon) = want {
                // Defaults as the kernel fills them; the table may hold them filled.
                let mtu = crate::sys::interface_mtu(&daemon.interface).unwrap_or(1500);
                let resolved = daemon.resolved(mtu);
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
        tokio::select! {
            () = tokio::time::sleep(RETRY_INTERVAL) => {}
            () = director.sync.retry_wanted(role) => {}
        }
    }
}
