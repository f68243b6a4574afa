//! IPVS connection sync, the part the data plane and the report share: the kernel's
//! datagram format (`wire`), the master's queue the data plane pushes connections and
//! templates to (`queue`), the connections a backup holds from its masters (`synced`),
//! and what the daemons did (`counters`), all in [`Shared`], which the director holds.
//! The daemons that send and receive (userspace mode) are `syncd`'s.

pub mod counters;
pub mod queue;
pub mod synced;
pub mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use counters::{DaemonState, SyncCounters, SyncStatus};
use queue::SyncQueue;
use synced::SyncedConns;

use crate::lock::Locked;
use crate::rate_limit::RateLimit;
use crate::table::SyncRole;

/// What the sync daemons share with the data plane and the report.
#[derive(Debug, Default)]
pub struct Shared {
    pub queue: SyncQueue,
    pub synced: SyncedConns,
    pub counters: SyncCounters,
    /// The address the master sends from: the backup ignores datagrams from it.
    own: Mutex<Option<SocketAddr>>,
    /// The daemons uvs runs, by role, and how each is doing (kernel mode: whether the
    /// kernel runs the table's, `kernel::mirror`).
    daemons: Mutex<BTreeMap<&'static str, DaemonState>>,
    /// Sends that failed, warned of at most once per interval.
    pub warned: RateLimit,
}

/// How long a daemon whose socket could not be made waits before it tries again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(2);

impl Shared {
    /// The address the master sends from (None: no master runs).
    pub fn set_own(&self, at: Option<SocketAddr>) {
        *self.own.locked() = at;
    }

    /// Whether `peer` is this director's master: its port, and its address unless the
    /// master is bound to none (an IPv6 master sends from the interface's address).
    pub fn is_own(&self, peer: SocketAddr) -> bool {
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

    /// How the daemon of `role` is doing (None: it does not run).
    pub fn set_state(&self, role: SyncRole, state: Option<DaemonState>) {
        let mut daemons = self.daemons.locked();
        match state {
            Some(state) => daemons.insert(role.name(), state),
            None => daemons.remove(role.name()),
        };
    }
}
