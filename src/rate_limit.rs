//! Warnings that can repeat, logged at most once per interval with the count of what
//! was held back in between: a flood (of clients, of failed binds, of datagrams for a
//! full flow table) must not turn into a flood of log lines. Used by every part of the
//! daemon that warns about something outside its control.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

/// The shortest time between two lines of one warning, in seconds.
pub const INTERVAL_SECONDS: u64 = 10;

/// One warning's rate limit. Cheap to hold in a `static` or per object.
#[derive(Debug, Default)]
pub struct RateLimit {
    /// When it was last logged (seconds since the epoch; 0: never).
    last: AtomicU64,
    /// Occurrences held back since then.
    suppressed: AtomicU64,
}

impl RateLimit {
    pub const fn new() -> RateLimit {
        RateLimit {
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Runs `log(suppressed)` unless this warning was logged less than
    /// [`INTERVAL_SECONDS`] ago; `suppressed` is how many occurrences were held back
    /// since the last line. Returns whether it logged.
    pub fn warn(&self, log: impl FnOnce(u64)) -> bool {
        self.warn_at(crate::clock::unix_seconds(), log)
    }

    fn warn_at(&self, now: u64, log: impl FnOnce(u64)) -> bool {
        let before = self.last.load(Relaxed);
        let due = before == 0 || now >= before + INTERVAL_SECONDS;
        if due
            && self
                .last
                .compare_exchange(before, now.max(1), Relaxed, Relaxed)
                .is_ok()
        {
            log(self.suppressed.swap(0, Relaxed));
            return true;
        }
        self.suppressed.fetch_add(1, Relaxed);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_held_back() {
        let limit = RateLimit::new();
        let mut lines = Vec::new();
        for (now, times) in [(1000, 5), (1009, 3), (1010, 1), (1011, 2), (1100, 1)] {
            for _ in 0..times {
                limit.warn_at(now, |held| lines.push((now, held)));
            }
        }
        assert_eq!(lines, vec![(1000, 0), (1010, 7), (1100, 2)]);
    }
}
