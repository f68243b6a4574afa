//! The bound on UDP flows. Every flow holds a socket and a little memory, and UDP
//! sources are trivially spoofed, so the number of flows is capped: when the cap is
//! reached, new flows are dropped (counted, and logged at most every ten seconds) while
//! existing flows go on. Held by the director, asked by the UDP plane for each new flow.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use crate::proxy::warn_rarely;

/// The default cap on UDP flows.
pub const DEFAULT_MAX_FLOWS: usize = 65536;

#[derive(Debug)]
pub struct FlowLimit {
    max: usize,
    count: AtomicUsize,
    dropped: AtomicU64,
    warned: AtomicU64,
}

impl FlowLimit {
    pub fn new(max: usize) -> FlowLimit {
        FlowLimit {
            max,
            count: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            warned: AtomicU64::new(0),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Flows open now.
    pub fn count(&self) -> usize {
        self.count.load(Relaxed)
    }

    /// New flows dropped because the table was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Takes a place for a new flow; false (and the drop counted) when there is none.
    pub fn admit(&self) -> bool {
        let taken = self
            .count
            .fetch_update(Relaxed, Relaxed, |n| (n < self.max).then_some(n + 1))
            .is_ok();
        if !taken {
            self.dropped.fetch_add(1, Relaxed);
            warn_rarely(&self.warned, || {
                tracing::warn!(
                    max = self.max,
                    dropped = self.dropped(),
                    "UDP flow table full: new flows are dropped (see --max-udp-flows)"
                );
            });
        }
        taken
    }

    /// A flow ended: its place is free.
    pub fn release(&self) {
        let _ = self
            .count
            .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_cap_and_counts_the_rest() {
        let limit = FlowLimit::new(2);
        assert!(limit.admit());
        assert!(limit.admit());
        assert!(!limit.admit());
        assert!(!limit.admit());
        assert_eq!((limit.count(), limit.dropped()), (2, 2));
        limit.release();
        assert!(limit.admit());
        assert_eq!((limit.count(), limit.dropped()), (2, 2));
    }
}
