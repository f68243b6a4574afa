//! Why the metrics endpoint cut its clients off, counted for
//! `uvs_metrics_clients_dropped_total{reason}`. The endpoint (`http`) resets a client it
//! will not serve further; each reset is one [`Reason`], counted in [`Drops`], which the
//! renderer (`scrape`) reads into each body as [`DropCounts`]. A count that keeps rising
//! says some client is idle, too slow for its body, or sends no request at all.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a client was reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// At the connection cap, to make room for a new client.
    Evicted,
    /// No whole request head within the head deadline.
    HeadTimeout,
    /// A request head too long, or not text.
    BadRequest,
    /// The response not taken within the write deadline.
    WriteTimeout,
    /// Still reading a body two newer ones have replaced (`scrape::is_stale`).
    StaleBody,
}

/// The endpoint's resets so far, by reason.
#[derive(Debug, Default)]
pub struct Drops {
    evicted: AtomicU64,
    head_timeout: AtomicU64,
    bad_request: AtomicU64,
    write_timeout: AtomicU64,
    stale_body: AtomicU64,
}

impl Drops {
    /// One more client reset for `reason`.
    pub fn count(&self, reason: Reason) {
        let counter = match reason {
            Reason::Evicted => &self.evicted,
            Reason::HeadTimeout => &self.head_timeout,
            Reason::BadRequest => &self.bad_request,
            Reason::WriteTimeout => &self.write_timeout,
            Reason::StaleBody => &self.stale_body,
        };
        // Independent counters: no ordering with anything else is needed.
        counter.fetch_add(1, Relaxed);
    }

    /// The counts as of now.
    pub fn read(&self) -> DropCounts {
        DropCounts {
            evicted: self.evicted.load(Relaxed),
            head_timeout: self.head_timeout.load(Relaxed),
            bad_request: self.bad_request.load(Relaxed),
            write_timeout: self.write_timeout.load(Relaxed),
            stale_body: self.stale_body.load(Relaxed),
        }
    }
}

/// The resets of one moment, as the exposition writes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts {
    pub evicted: u64,
    pub head_timeout: u64,
    pub bad_request: u64,
    pub write_timeout: u64,
    pub stale_body: u64,
}

impl DropCounts {
    /// (the `reason` label, the count), in a fixed order.
    pub fn by_reason(&self) -> [(&'static str, u64); 5] {
        [
            ("evicted", self.evicted),
            ("head_timeout", self.head_timeout),
            ("bad_request", self.bad_request),
            ("write_timeout", self.write_timeout),
            ("stale_body", self.stale_body),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_counts_under_its_own_label() {
        let drops = Drops::default();
        drops.count(Reason::StaleBody);
        drops.count(Reason::StaleBody);
        drops.count(Reason::Evicted);
        drops.count(Reason::WriteTimeout);
        let counts = drops.read();
        assert_eq!(
            counts.by_reason(),
            [
                ("evicted", 1),
                ("head_timeout", 0),
                ("bad_request", 0),
                ("write_timeout", 1),
                ("stale_body", 2),
            ]
        );
    }
}
