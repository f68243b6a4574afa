//! One descriptor budget for the whole daemon, as HAProxy derives `maxconn` from its
//! open-files limit: at start the limit is split into a reserve for the control plane
//! (the control socket's clients, the metrics endpoint's connections, health checks,
//! configuration reads, netlink, the runtime's own descriptors) and the data plane's
//! share (listening sockets, TCP connections with their two sockets, splice pipes, UDP
//! flows). The data plane takes descriptors from its share before it opens anything;
//! when the share is spent it stops accepting (clients wait in the kernel's backlog),
//! refuses new UDP flows and splices by copying, and picks up again as descriptors come
//! back. So no flood of clients can leave `uvsadm`, `/metrics` or a reload without a
//! descriptor. Made by the director; taken from by the listeners, the TCP and UDP paths
//! and the forwarder; read by `uvs status` and the metrics.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// A data plane share below this is worth a warning at start: a few listeners and
/// connections at most.
pub const SMALL_SHARE: usize = 64;
/// Clients the control socket serves at once (fewer under a small open-files limit).
pub const CONTROL_CLIENTS: usize = 64;
/// Connections the metrics endpoint serves at once, unless configured.
pub const METRICS_CONNECTIONS: usize = 64;
/// Health checks in progress at once (each holds a socket or a child process).
pub const HEALTH_PROBES: usize = 64;
/// Descriptors a health check may hold at once (a socket; a child's pipes while it
/// starts).
const PER_PROBE: usize = 2;
/// What the process holds besides: standard streams, the runtimes' event loops, signal
/// and netlink sockets, a configuration file being read, /proc files, a log file.
const BASE: usize = 32;
/// Descriptors of each worker thread's event loop (epoll and its wake-up eventfd).
const PER_WORKER: usize = 3;

/// The parts of the open-files limit kept for the control plane, in descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserve {
    /// Control socket clients served at once (its listener counted apart).
    pub control_clients: usize,
    /// Metrics connections served at once (its listener counted apart).
    pub metrics_connections: usize,
    /// Health checks in progress at once.
    pub health_probes: usize,
    /// The process's own descriptors and the two listeners.
    pub base: usize,
}

impl Reserve {
    /// The reserve under an open-files limit of `open_files` for `workers` worker
    /// threads and a metrics endpoint serving up to `metrics` connections. Under a small
    /// limit (below about 1 500) the three client caps shrink with it (a sixteenth of
    /// the limit each, at least 4), so that the data plane keeps a share.
    pub fn for_limit(open_files: usize, workers: usize, metrics: usize) -> Reserve {
        let scaled = |cap: usize, part: usize| cap.min((open_files / part).max(4));
        Reserve {
            control_clients: scaled(CONTROL_CLIENTS, 16),
            metrics_connections: scaled(metrics, 16),
            health_probes: scaled(HEALTH_PROBES, 32),
            base: BASE + PER_WORKER * workers + 2,
        }
    }

    /// Descriptors the reserve stands for.
    pub fn total(&self) -> usize {
        self.base + self.control_clients + self.metrics_connections + self.health_probes * PER_PROBE
    }
}

/// The data plane's share of the open-files limit, and what it holds of it.
#[derive(Debug)]
pub struct Budget {
    /// The process's open-files limit.
    open_files: usize,
    reserve: Reserve,
    /// Descriptors the data plane may hold.
    limit: usize,
    used: AtomicUsize,
    /// The most TCP connections proxied at once (`--max-connections`).
    max_connections: usize,
    connections: AtomicUsize,
    /// Accept loops waiting for room; released descriptors wake them only then.
    waiting: AtomicUsize,
    room: Notify,
    /// Times an accept loop had to wait for room.
    pauses: AtomicUsize,
}

impl Budget {
    /// The budget under `open_files`, with `reserve` kept back; `max_connections` caps
    /// TCP connections (each takes two descriptors) below what the share allows.
    pub fn new(open_files: usize, reserve: Reserve, max_connections: Option<usize>) -> Budget {
        let limit = open_files.saturating_sub(reserve.total());
        Budget {
            open_files,
            reserve,
            limit,
            used: AtomicUsize::new(0),
            max_connections: max_connections.unwrap_or(usize::MAX),
            connections: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            room: Notify::new(),
            pauses: AtomicUsize::new(0),
        }
    }

    /// A budget that never runs out (tests, and where the limit cannot be read).
    pub fn unlimited() -> Budget {
        let reserve = Reserve::for_limit(usize::MAX, 0, METRICS_CONNECTIONS);
        Budget::new(usize::MAX, reserve, None)
    }

    pub fn open_files(&self) -> usize {
        self.open_files
    }

    pub fn reserve(&self) -> Reserve {
        self.reserve
    }

    /// Descriptors the data plane may hold.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Descriptors the data plane holds now.
    pub fn used(&self) -> usize {
        self.used.load(Relaxed)
    }

    /// Descriptors still to be had.
    pub fn free(&self) -> usize {
        self.limit.saturating_sub(self.used())
    }

    /// The cap on TCP connections; `usize::MAX` when none was set.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// TCP connections being proxied now.
    pub fn connections(&self) -> usize {
        self.connections.load(Relaxed)
    }

    /// Times accepting had to wait for descriptors or for a connection to end.
    pub fn pauses(&self) -> usize {
        self.pauses.load(Relaxed)
    }

    /// The open-files limit, its split and what the data plane holds now, as `uvs
    /// status` and `/metrics` show them (`max_connections` None when none was set).
    pub fn status(&self) -> DescriptorStatus {
        let r = self.reserve;
        let n = |v: usize| v as u64;
        DescriptorStatus {
            open_files: n(self.open_files),
            reserved: n(r.total()),
            control_clients: n(r.control_clients),
            metrics_connections: n(r.metrics_connections),
            health_probes: n(r.health_probes),
            limit: n(self.limit),
            used: n(self.used()),
            max_connections: (self.max_connections != usize::MAX).then(|| n(self.max_connections)),
            connections: n(self.connections()),
            pauses: n(self.pauses()),
        }
    }

    /// Takes `n` descriptors, or nothing when fewer are left.
    pub fn try_take(self: &Arc<Self>, n: usize) -> Option<Held> {
        self.used
            .fetch_update(Relaxed, Relaxed, |used| {
                (used.saturating_add(n) <= self.limit).then_some(used + n)
            })
            .ok()?;
        Some(Held {
            budget: Arc::clone(self),
            descriptors: n,
            connection: false,
        })
    }

    /// Whether a TCP connection (two descriptors) can be had now.
    fn connection_room(&self) -> bool {
        self.free() >= 2 && self.connections() < self.max_connections
    }

    /// Waits until there is room for one more TCP connection. Called by an accept loop
    /// before it accepts, so that a data plane out of descriptors leaves clients in
    /// the listen backlog instead of accepting and dropping them.
    pub async fn room_for_connection(&self) {
        if self.connection_room() {
            return;
        }
        self.pauses.fetch_add(1, Relaxed);
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            // Registered before looking again, so a release in between is not missed.
            notified.as_mut().enable();
            self.waiting.fetch_add(1, SeqCst);
            let ready = self.connection_room();
            if !ready {
                notified.await;
            }
            self.waiting.fetch_sub(1, SeqCst);
            if ready || self.connection_room() {
                return;
            }
        }
    }

    /// Counts an accepted TCP connection and its two descriptors. The accept loop waited
    /// for room first; loops that raced for the last room may overshoot by a few,
    /// which the reserve absorbs.
    pub fn take_connection(self: &Arc<Self>) -> Held {
        self.used.fetch_add(2, Relaxed);
        self.connections.fetch_add(1, Relaxed);
        Held {
            budget: Arc::clone(self),
            descriptors: 2,
            connection: true,
        }
    }

    fn give_back(&self, n: usize, connection: bool) {
        self.used.fetch_sub(n, SeqCst);
        if connection {
            self.connections.fetch_sub(1, SeqCst);
        }
        // notify_waiters takes a lock: only when an accept loop waits.
        if self.waiting.load(SeqCst) > 0 {
            self.room.notify_waiters();
        }
    }
}

/// Descriptors taken from the budget, given back when dropped.
#[derive(Debug)]
pub struct Held {
    budget: Arc<Budget>,
    descriptors: usize,
    connection: bool,
}

impl Held {
    pub fn descriptors(&self) -> usize {
        self.descriptors
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.give_back(self.descriptors, self.connection);
    }
}

/// The open-files limit, the control plane's reserve and the data plane's share.
/// (`uvs status` and `/metrics` show it; `Budget::status` reads it.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescriptorStatus {
    pub open_files: u64,
    /// Descriptors kept for the control plane, and the caps they stand for.
    pub reserved: u64,
    pub control_clients: u64,
    pub metrics_connections: u64,
    pub health_probes: u64,
    /// The data plane's share, and what it holds now.
    pub limit: u64,
    pub used: u64,
    /// `--max-connections`, if set.
    pub max_connections: Option<u64>,
    /// TCP connections being proxied.
    pub connections: u64,
    /// Times accepting waited for room.
    pub pauses: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_shrinks_with_a_small_limit_and_the_share_is_the_rest() {
        let big = Reserve::for_limit(1 << 20, 2, METRICS_CONNECTIONS);
        assert_eq!(
            (
                big.control_clients,
                big.metrics_connections,
                big.health_probes
            ),
            (64, 64, 64)
        );
        assert_eq!(big.total(), 32 + 3 * 2 + 2 + 64 + 64 + 64 * 2);
        let small = Reserve::for_limit(256, 2, METRICS_CONNECTIONS);
        assert_eq!(
            (
                small.control_clients,
                small.metrics_connections,
                small.health_probes
            ),
            (16, 16, 8)
        );
        let budget = Budget::new(256, small, None);
        assert_eq!(budget.limit(), 256 - small.total());
        assert!(budget.limit() > 100, "{}", budget.limit());
    }

    #[test]
    fn descriptors_come_back_when_dropped() {
        let reserve = Reserve::for_limit(1024, 1, 64);
        let budget = Arc::new(Budget::new(reserve.total() + 5, reserve, None));
        assert_eq!(budget.limit(), 5);
        let a = budget.try_take(3).unwrap();
        assert!(budget.try_take(3).is_none());
        let b = budget.try_take(2).unwrap();
        assert_eq!((budget.used(), budget.free()), (5, 0));
        drop(a);
        assert_eq!(budget.free(), 3);
        let c = budget.take_connection();
        assert_eq!((budget.used(), budget.connections()), (4, 1));
        drop((b, c));
        assert_eq!((budget.used(), budget.connections()), (0, 0));
    }

    #[test]
    fn the_status_is_the_split_and_what_is_held() {
        let reserve = Reserve::for_limit(1024, 1, 64);
        let budget = Arc::new(Budget::new(reserve.total() + 10, reserve, Some(7)));
        let held = budget.take_connection();
        let status = budget.status();
        assert_eq!(status.open_files, reserve.total() as u64 + 10);
        assert_eq!(status.reserved, reserve.total() as u64);
        assert_eq!(
            (
                status.control_clients,
                status.metrics_connections,
                status.health_probes
            ),
            (64, 64, 32)
        );
        assert_eq!((status.limit, status.used), (10, 2));
        assert_eq!((status.max_connections, status.connections), (Some(7), 1));
        drop(held);
        let unset = Budget::new(1024, reserve, None).status();
        assert_eq!(unset.max_connections, None, "no cap set: none shown");
    }

    #[tokio::test]
    async fn an_accept_loop_waits_for_room_and_resumes_when_a_connection_ends() {
        let reserve = Reserve::for_limit(1024, 1, 64);
        let budget = Arc::new(Budget::new(reserve.total() + 100, reserve, Some(1)));
        let first = budget.take_connection();
        let waiter = {
            let budget = Arc::clone(&budget);
            tokio::spawn(async move { budget.room_for_connection().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one connection at most");
        drop(first);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken when the connection ended")
            .unwrap();
        assert_eq!(budget.pauses(), 1);
    }
}
