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
    /// Where the master sends from: the backup ignores datagrams from there.
    own: Mutex<Option<Own>>,
    /// The daemons uvs runs, by role, and how each is doing (kernel mode: whether the
    /// kernel runs the table's, `kernel::mirror`).
    daemons: Mutex<BTreeMap<&'static str, DaemonState>>,
    /// The file's daemons that wait for their interface, by role, and why (the
    /// reloader's word, `daemon::waiting_sync`): shown down whatever the runners say,
    /// as a waiting role is one the table has no daemon of.
    waiting: Mutex<BTreeMap<&'static str, String>>,
    /// Sends that failed, warned of at most once per interval.
    pub warned: RateLimit,
    /// Rung to have a daemon that is down try again at once, by role (master, backup).
    retry: [tokio::sync::Notify; 2],
}

/// How long a daemon whose socket could not be made waits before it tries again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(2);

impl Shared {
    /// Where the master sends from (None: no master runs).
    pub fn set_own(&self, own: Option<Own>) {
        *self.own.locked() = own;
    }

    /// Whether `peer` is this director's master: its port, and its address, or one of
    /// the host's ([`Own::addresses`]) when it is bound to none (an IPv6 master sends
    /// from the address the route picks). Another director's master that happens to
    /// send from the same port is not taken for it.
    pub fn is_own(&self, peer: SocketAddr) -> bool {
        self.own.locked().as_ref().is_some_and(|own| {
            own.at.port() == peer.port()
                && if own.at.ip().is_unspecified() {
                    own.addresses.contains(&peer.ip())
                } else {
                    own.at.ip() == peer.ip()
                }
        })
    }

    /// The counters at this moment.
    pub fn status(&self) -> SyncStatus {
        let mut daemons: BTreeMap<String, DaemonState> = self
            .daemons
            .locked()
            .iter()
            .map(|(role, state)| ((*role).to_string(), state.clone()))
            .collect();
        for (role, reason) in self.waiting.locked().iter() {
            daemons.insert(
                (*role).to_string(),
                DaemonState::Down {
                    reason: reason.clone(),
                },
            );
        }
        self.counters
            .status(self.synced.len() as u64, self.queue.overflow(), daemons)
    }

    /// Why the file's daemon of `role` waits for its interface (None: it does not).
    pub fn set_waiting(&self, role: SyncRole, reason: Option<String>) {
        let mut waiting = self.waiting.locked();
        match reason {
            Some(reason) => waiting.insert(role.name(), reason),
            None => waiting.remove(role.name()),
        };
    }

    /// How the runner says the daemon of `role` is doing (None: it runs none, or has
    /// not said yet).
    pub fn state(&self, role: SyncRole) -> Option<DaemonState> {
        self.daemons.locked().get(role.name()).cloned()
    }

    /// Has the daemon of `role`, if it is down, try again now rather than at its next
    /// retry (uvsadm's `--start-daemon` of the settings it already has).
    pub fn retry_now(&self, role: SyncRole) {
        self.retry[role_index(role)].notify_one();
    }

    /// Waits until [`Shared::retry_now`] is called for `role`.
    pub async fn retry_wanted(&self, role: SyncRole) {
        self.retry[role_index(role)].notified().await;
    }

    /// The master's port when its socket is bound to no address: a datagram from that
    /// port may be its own, from any of the host's addresses (`set_own_addresses`).
    pub fn own_unbound_port(&self) -> Option<u16> {
        self.own
            .locked()
            .as_ref()
            .filter(|own| own.at.ip().is_unspecified())
            .map(|own| own.at.port())
    }

    /// The host's addresses the master, bound to none, may send from, looked up again.
    pub fn set_own_addresses(&self, addresses: Vec<std::net::IpAddr>) {
        if let Some(own) = self.own.locked().as_mut() {
            own.addresses = addresses;
        }
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

fn role_index(role: SyncRole) -> usize {
    match role {
        SyncRole::Master => 0,
        SyncRole::Backup => 1,
    }
}

/// Where this director's master sends from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Own {
    /// Its socket's address (an unspecified address when it is bound to none).
    pub at: SocketAddr,
    /// The host's addresses it may send from when `at` names none (the route picks
    /// the source, RFC 6724, not always on the interface): looked up when it starts,
    /// and again when a datagram comes from its port and another address; empty when
    /// `at` names one.
    pub addresses: Vec<std::net::IpAddr>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_master_is_known_by_its_port_and_address_and_not_by_the_port_alone() {
        let shared = Shared::default();
        let sock = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(!shared.is_own(sock("127.0.0.1:6000")));
        shared.set_own(Some(Own {
            at: sock("127.0.0.1:6000"),
            addresses: vec!["127.0.0.1".parse().unwrap()],
        }));
        assert!(shared.is_own(sock("127.0.0.1:6000")));
        assert!(!shared.is_own(sock("127.0.0.2:6000")));
        assert!(!shared.is_own(sock("127.0.0.1:6001")));
        // Bound to none (IPv6): one of the host's addresses, at its port.
        shared.set_own(Some(Own {
            at: sock("[::]:7000"),
            addresses: vec!["::1".parse().unwrap(), "fe80::1".parse().unwrap()],
        }));
        assert!(shared.is_own(sock("[::1]:7000")));
        assert!(shared.is_own(sock("[fe80::1]:7000")));
        // Another director's master that sends from the same port.
        assert!(!shared.is_own(sock("[fe80::2]:7000")));
        shared.set_own(None);
        assert!(!shared.is_own(sock("[::1]:7000")));
    }

    #[test]
    fn a_waiting_daemon_is_down_whatever_its_runner_said() {
        let shared = Shared::default();
        shared.set_state(SyncRole::Master, Some(DaemonState::Up));
        shared.set_waiting(SyncRole::Master, Some("No such device".into()));
        shared.set_state(SyncRole::Master, None); // the runner stopped the old one
        let down = DaemonState::Down {
            reason: "No such device".into(),
        };
        assert_eq!(
            shared.status().daemons.into_iter().collect::<Vec<_>>(),
            [("master".to_string(), down)]
        );
        shared.set_waiting(SyncRole::Master, None);
        assert!(shared.status().daemons.is_empty());
    }
}
