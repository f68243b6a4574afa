//! Who gets a UDP flow. Every flow holds a socket (a descriptor of the data plane's
//! budget) and a little memory, and UDP sources are trivially spoofed, so a flow is
//! admitted only within bounds, as conntrack treats UDP:
//!
//! - at most `--max-udp-flows` flows at once;
//! - a flow whose real server has not answered yet lives only `udp_unreplied_timeout`
//!   (5 s by default; the connection table expires it), and when the table is full the
//!   oldest such flow of the worker makes room for a new one, else the oldest flow that
//!   was answered once and has carried nothing since its first two seconds (conntrack's
//!   early drop of entries not ASSURED); flows in use are never evicted for newcomers;
//! - optionally, one client address holds at most `udp_flows_per_source` flows.
//!
//! What is refused is counted by reason and warned about at most every ten seconds;
//! established flows carry on. Held by the director, asked by `flow` for each new flow.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lock::Locked;
use crate::rate_limit::RateLimit;

/// The default cap on UDP flows.
pub const DEFAULT_MAX_FLOWS: usize = 65536;
/// How long a flow lives before its real server answers, by default.
pub const DEFAULT_UNREPLIED_TIMEOUT: Duration =
    Duration::from_millis(crate::conn::DEFAULT_UNREPLIED_TIMEOUT_MS);

/// The local ports a flow may get (`net.ipv4.ip_local_port_range`, which IPv6 shares):
/// each flow's socket is connected to its real server from a port of its own, so the
/// flows the host can hold at once are no more than these (fewer, as other programs
/// take ports from the same range). None when it cannot be read.
pub fn local_ports() -> Option<usize> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut ends = range.split_whitespace().map(|n| n.parse::<usize>().ok());
    let (low, high) = (ends.next()??, ends.next()??);
    high.checked_sub(low).map(|n| n + 1)
}

/// The cap on UDP flows: as asked, else [`DEFAULT_MAX_FLOWS`] within what the host allows:
/// half the open-files limit (each flow holds a socket) and three quarters of the local
/// ports (leaving the rest to the host's other programs). Asking for more than those is
/// taken, with a warning.
pub fn max_flows(asked: Option<u32>, open_files: Option<u64>) -> usize {
    cap(asked, open_files, local_ports())
}

fn cap(asked: Option<u32>, open_files: Option<u64>, ports: Option<usize>) -> usize {
    let by_files = open_files.map_or(usize::MAX, |n| usize::try_from(n / 2).unwrap_or(usize::MAX));
    let by_ports = ports.map_or(usize::MAX, |n| n / 4 * 3);
    match asked {
        Some(n) => {
            let n = n as usize;
            if n > by_files {
                tracing::warn!(
                    max_udp_flows = n,
                    open_files = open_files.unwrap_or(0),
                    "--max-udp-flows is more than half the open-files limit: new flows \
                     will be refused when the descriptors run out"
                );
            }
            if n > by_ports {
                tracing::warn!(
                    max_udp_flows = n,
                    local_ports = ports.unwrap_or(0),
                    "--max-udp-flows is more than three quarters of the local ports \
                     (net.ipv4.ip_local_port_range): each flow takes one, and new flows, and \
                     other programs, will find none when they run out"
                );
            }
            n
        }
        None => DEFAULT_MAX_FLOWS.min(by_files).min(by_ports).max(1),
    }
}

/// Why a new flow was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The table is full of answered flows.
    Full,
    /// Its client holds `udp_flows_per_source` flows already.
    PerSource,
    /// The data plane has no descriptor left for its socket.
    Descriptors,
}

/// The counts behind `uvs status` and the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdmissionCounts {
    pub open: usize,
    pub max: usize,
    pub refused_full: u64,
    pub refused_per_source: u64,
    pub refused_descriptors: u64,
    /// Its socket could not be made (no local port left).
    pub refused_socket: u64,
    /// Unanswered flows ended to make room for a new one.
    pub evicted: u64,
    /// Flows answered once and done, ended to make room for a new one.
    pub evicted_answered: u64,
    /// Unanswered flows that ended at the unreplied timeout.
    pub unreplied_expired: u64,
    /// Datagrams dropped as too large to carry their PROXY v2 header.
    pub oversized: u64,
}

#[derive(Debug)]
pub struct Admission {
    max: usize,
    count: AtomicUsize,
    /// The most flows per client address, and each address's flows (kept only when
    /// there is a limit).
    per_source: Option<u32>,
    sources: Mutex<HashMap<IpAddr, u32>>,
    refused_full: AtomicU64,
    refused_per_source: AtomicU64,
    refused_descriptors: AtomicU64,
    refused_socket: AtomicU64,
    evicted: AtomicU64,
    evicted_answered: AtomicU64,
    unreplied_expired: AtomicU64,
    oversized: AtomicU64,
    warn_full: RateLimit,
    warn_per_source: RateLimit,
    warn_descriptors: RateLimit,
    warn_socket: RateLimit,
}

impl Admission {
    pub fn new(max: usize, per_source: Option<u32>) -> Admission {
        Admission {
            max,
            count: AtomicUsize::new(0),
            per_source,
            sources: Mutex::new(HashMap::new()),
            refused_full: AtomicU64::new(0),
            refused_per_source: AtomicU64::new(0),
            refused_descriptors: AtomicU64::new(0),
            refused_socket: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            evicted_answered: AtomicU64::new(0),
            unreplied_expired: AtomicU64::new(0),
            oversized: AtomicU64::new(0),
            warn_full: RateLimit::new(),
            warn_per_source: RateLimit::new(),
            warn_descriptors: RateLimit::new(),
            warn_socket: RateLimit::new(),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Flows open now.
    pub fn count(&self) -> usize {
        self.count.load(Relaxed)
    }

    /// New flows refused because the table was full, since start.
    pub fn dropped(&self) -> u64 {
        self.refused_full.load(Relaxed)
    }

    pub fn counts(&self) -> AdmissionCounts {
        AdmissionCounts {
            open: self.count(),
            max: self.max,
            refused_full: self.refused_full.load(Relaxed),
            refused_per_source: self.refused_per_source.load(Relaxed),
            refused_descriptors: self.refused_descriptors.load(Relaxed),
            refused_socket: self.refused_socket.load(Relaxed),
            evicted: self.evicted.load(Relaxed),
            evicted_answered: self.evicted_answered.load(Relaxed),
            unreplied_expired: self.unreplied_expired.load(Relaxed),
            oversized: self.oversized.load(Relaxed),
        }
    }

    /// Takes a place in the table; false when it is full.
    pub fn take_place(&self) -> bool {
        self.count
            .fetch_update(Relaxed, Relaxed, |n| (n < self.max).then_some(n + 1))
            .is_ok()
    }

    /// A flow ended: its place is free.
    pub fn release_place(&self) {
        let _ = self
            .count
            .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
    }

    /// Counts a flow of `client` against its limit; false (nothing counted) when it
    /// holds as many as it may.
    pub fn admit_source(&self, client: IpAddr) -> bool {
        let Some(limit) = self.per_source else {
            return true;
        };
        let mut sources = self.sources.locked();
        let n = sources.entry(client).or_insert(0);
        if *n >= limit {
            return false;
        }
        *n += 1;
        true
    }

    /// A flow of `client` ended (every flow admitted by `admit_source`).
    pub fn release_source(&self, client: IpAddr) {
        if self.per_source.is_none() {
            return;
        }
        let mut sources = self.sources.locked();
        if let Some(n) = sources.get_mut(&client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                sources.remove(&client);
            }
        }
    }

    /// A flow was ended to make room.
    pub fn evicted(&self, how: super::flow::Eviction) {
        match how {
            super::flow::Eviction::Unanswered => &self.evicted,
            super::flow::Eviction::AnsweredOnce => &self.evicted_answered,
        }
        .fetch_add(1, Relaxed);
    }

    /// Unanswered flows ended at the unreplied timeout.
    pub fn expired_unreplied(&self, n: usize) {
        self.unreplied_expired.fetch_add(n as u64, Relaxed);
    }

    /// A datagram was dropped as too large to carry its PROXY v2 header (a UDP
    /// service with `proxy_protocol = "v2"`).
    pub fn oversized(&self) {
        self.oversized.fetch_add(1, Relaxed);
    }

    /// Counts a refused flow and warns, at most every ten seconds per reason.
    pub fn refused(&self, why: Refusal) {
        let (counter, warn) = match why {
            Refusal::Full => (&self.refused_full, &self.warn_full),
            Refusal::PerSource => (&self.refused_per_source, &self.warn_per_source),
            Refusal::Descriptors => (&self.refused_descriptors, &self.warn_descriptors),
        };
        let total = counter.fetch_add(1, Relaxed) + 1;
        warn.warn(|suppressed| match why {
            Refusal::Full => tracing::warn!(
                max = self.max,
                refused = total,
                suppressed,
                "UDP flow table full of answered flows: new flows are refused (see --max-udp-flows)"
            ),
            Refusal::PerSource => tracing::warn!(
                limit = self.per_source.unwrap_or(0),
                refused = total,
                suppressed,
                "a client holds as many UDP flows as it may: its new flows are refused \
                 (see --udp-flows-per-source)"
            ),
            Refusal::Descriptors => tracing::warn!(
                refused = total,
                suppressed,
                "no descriptors left for new UDP flows: they are refused (see uvs status)"
            ),
        });
    }

    /// A new flow's socket could not be made: counted, and warned about with the reason
    /// at most every ten seconds.
    pub fn socket_failed(&self, e: &std::io::Error) {
        let total = self.refused_socket.fetch_add(1, Relaxed) + 1;
        self.warn_socket.warn(|suppressed| {
            tracing::warn!(
                error = %e,
                refused = total,
                suppressed,
                "cannot open a socket for a new UDP flow (no local port left?): it is refused"
            );
        });
    }
}

/// New UDP flows refused, and unanswered flows ended, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UdpAdmissionStatus {
    /// How long a flow lives before its server answers, in milliseconds.
    pub unreplied_timeout_ms: u64,
    /// The most flows per client address, if limited.
    pub per_source: Option<u32>,
    pub refused_per_source: u64,
    pub refused_descriptors: u64,
    /// Refused because their socket could not be made (no local port left).
    #[serde(default)]
    pub refused_socket: u64,
    /// Unanswered flows ended to make room.
    pub evicted: u64,
    /// Flows answered once and done, ended to make room.
    #[serde(default)]
    pub evicted_answered: u64,
    pub unreplied_expired: u64,
    /// Datagrams dropped as too large to carry their PROXY v2 header (over the UDP
    /// limit with it: 65 507 bytes over IPv4, 65 527 over IPv6).
    #[serde(default)]
    pub oversized: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_up_to_the_cap() {
        let a = Admission::new(2, None);
        assert!(a.take_place());
        assert!(a.take_place());
        assert!(!a.take_place());
        a.refused(Refusal::Full);
        assert_eq!((a.count(), a.dropped()), (2, 1));
        a.release_place();
        assert!(a.take_place());
    }

    #[test]
    fn the_default_cap_fits_the_descriptors_and_the_local_ports() {
        // Debian's port range (32768-60999) and a large limit: the ports decide.
        assert_eq!(cap(None, Some(1 << 20), Some(28_232)), 21_174);
        // A small open-files limit decides.
        assert_eq!(cap(None, Some(1024), Some(28_232)), 512);
        // Neither known: the default.
        assert_eq!(cap(None, None, None), DEFAULT_MAX_FLOWS);
        // Asked for: taken as asked (with a warning).
        assert_eq!(cap(Some(100_000), Some(1024), Some(1000)), 100_000);
        assert!(local_ports().is_some_and(|n| n > 0), "read from /proc");
    }

    #[test]
    fn per_source_limit() {
        let a = Admission::new(100, Some(2));
        let (x, y): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
        assert!(a.admit_source(x));
        assert!(a.admit_source(x));
        assert!(!a.admit_source(x), "a third flow of one client");
        assert!(a.admit_source(y), "another client is not held back");
        a.release_source(x);
        assert!(a.admit_source(x));
        // Without a limit nothing is kept.
        let free = Admission::new(100, None);
        for _ in 0..10 {
            assert!(free.admit_source(x));
        }
        assert!(free.sources.lock().unwrap().is_empty());
    }
}
