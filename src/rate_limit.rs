//! Warnings that can repeat, logged at most once per interval with the count of what
//! was held back in between: a flood (of clients, of failed binds, of datagrams for a
//! full flow table) must not turn into a flood of log lines. Used by every part of the
//! daemon that warns about something outside its control. [`Tally`] does the same for
//! events counted by kind where they happen (a real server's failed connects, by
//! cause), for the data plane (`proxy::failure_log`); [`RateLimit`] is a tally of one
//! kind. Intervals are measured on the monotonic clock (`clock::monotonic_seconds`):
//! a step back of the wall clock must not silence a warning for as long.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

/// The shortest time between two lines of one warning, in seconds.
pub const INTERVAL_SECONDS: u64 = 10;

/// One warning's rate limit: a [`Tally`] of one kind, whose owner logs a line of its
/// own with the count held back. Cheap to hold in a `static` or per object.
#[derive(Debug, Default)]
pub struct RateLimit(Tally<1>);

impl RateLimit {
    pub const fn new() -> RateLimit {
        RateLimit(Tally::new())
    }

    /// Runs `log(suppressed)` unless this warning was logged less than
    /// [`INTERVAL_SECONDS`] ago; `suppressed` is how many occurrences were held back
    /// since the last line. Returns whether it logged.
    pub fn warn(&self, log: impl FnOnce(u64)) -> bool {
        self.warn_at(crate::clock::monotonic_seconds(), log)
    }

    fn warn_at(&self, now: u64, log: impl FnOnce(u64)) -> bool {
        match self.0.count_at(now, 0) {
            Some(Line::First) => log(0),
            // The summary counts this occurrence too, which the line itself is.
            Some(Line::Summary { counts, .. }) => log(counts[0].saturating_sub(1)),
            None => return false,
        }
        true
    }

    /// How many occurrences were held back since the last line, once the interval
    /// since it is over (for a periodic task, so that the count is said even when no
    /// occurrence comes after); None when none is held or it is too soon.
    pub fn flush(&self) -> Option<u64> {
        match self.0.flush()? {
            Line::Summary { counts, .. } => Some(counts[0]),
            Line::First => None,
        }
    }

    /// As [`RateLimit::flush`], whatever the time: for a line said at once that takes
    /// the count with it.
    pub fn flush_now(&self) -> Option<u64> {
        match self.0.flush_now()? {
            Line::Summary { counts, .. } => Some(counts[0]),
            Line::First => None,
        }
    }
}

/// Events of `N` kinds (the causes of a real server's failed connects, say) counted
/// where they happen, for a log that says the first at once and sums up the rest: the
/// first event after a quiet interval is to be logged by itself ([`Line::First`]); the
/// ones after it are held back and summed up, by kind, at most once per
/// [`INTERVAL_SECONDS`], by [`Tally::flush`] (a periodic task) or by the first event
/// that finds the interval over. Atomics only and a fixed size: cheap on a data path,
/// and bounded however many servers hold one.
#[derive(Debug)]
pub struct Tally<const N: usize> {
    /// When a line was last logged (`clock::monotonic_seconds`; 0: never).
    last: AtomicU64,
    /// Events held back since then, by kind.
    held: [AtomicU64; N],
}

/// What a [`Tally`] asks its owner to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<const N: usize> {
    /// The event just counted, by itself: none came in the interval before it.
    First,
    /// The events held back, by kind, over the last `seconds`.
    Summary { counts: [u64; N], seconds: u64 },
}

impl<const N: usize> Default for Tally<N> {
    fn default() -> Self {
        Tally::new()
    }
}

impl<const N: usize> Tally<N> {
    pub const fn new() -> Tally<N> {
        Tally {
            last: AtomicU64::new(0),
            held: [const { AtomicU64::new(0) }; N],
        }
    }

    /// Counts one event of kind `kind` (an index below `N`); Some: the line to log now.
    pub fn count(&self, kind: usize) -> Option<Line<N>> {
        self.count_at(crate::clock::monotonic_seconds(), kind)
    }

    /// The summary of the events held back, once the interval since the last line is
    /// over; None when nothing is held or it is too soon.
    pub fn flush(&self) -> Option<Line<N>> {
        self.flush_at(crate::clock::monotonic_seconds())
    }

    /// Whether any event is held back.
    pub fn holds(&self) -> bool {
        self.held.iter().any(|n| n.load(Relaxed) != 0)
    }

    /// The summary of the events held back, whatever the time: for the last word on
    /// something that is going away (a real server deleted, say), whose events would
    /// otherwise never be summed up. None when nothing is held.
    pub fn flush_now(&self) -> Option<Line<N>> {
        self.flush_now_at(crate::clock::monotonic_seconds())
    }

    fn flush_now_at(&self, now: u64) -> Option<Line<N>> {
        let counts: [u64; N] = std::array::from_fn(|i| self.held[i].swap(0, Relaxed));
        if counts.iter().all(|&n| n == 0) {
            return None;
        }
        let before = self.last.swap(now.max(1), Relaxed);
        Some(Line::Summary {
            counts,
            seconds: now.saturating_sub(before),
        })
    }

    fn due(before: u64, now: u64) -> bool {
        before == 0 || now >= before + INTERVAL_SECONDS
    }

    /// Takes the line's turn (the one caller whose compare-exchange wins) and what is
    /// held; the counts are None when another caller took the turn.
    fn take(&self, before: u64, now: u64) -> Option<[u64; N]> {
        self.last
            .compare_exchange(before, now.max(1), Relaxed, Relaxed)
            .ok()?;
        Some(std::array::from_fn(|i| self.held[i].swap(0, Relaxed)))
    }

    fn count_at(&self, now: u64, kind: usize) -> Option<Line<N>> {
        let slot = self.held.get(kind)?;
        let before = self.last.load(Relaxed);
        if Self::due(before, now)
            && let Some(mut counts) = self.take(before, now)
        {
            if counts.iter().all(|&n| n == 0) {
                return Some(Line::First);
            }
            counts[kind] += 1;
            return Some(Line::Summary {
                counts,
                seconds: now.saturating_sub(before),
            });
        }
        slot.fetch_add(1, Relaxed);
        None
    }

    fn flush_at(&self, now: u64) -> Option<Line<N>> {
        let before = self.last.load(Relaxed);
        if !Self::due(before, now) || self.held.iter().all(|n| n.load(Relaxed) == 0) {
            return None;
        }
        let counts = self.take(before, now)?;
        if counts.iter().all(|&n| n == 0) {
            return None;
        }
        Some(Line::Summary {
            counts,
            seconds: now.saturating_sub(before),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_says_the_first_at_once_and_sums_up_the_rest_by_kind() {
        let tally = Tally::<2>::new();
        assert_eq!(tally.flush_at(1000), None, "nothing yet");
        assert_eq!(tally.count_at(1000, 0), Some(Line::First));
        for _ in 0..5 {
            assert_eq!(tally.count_at(1003, 0), None);
        }
        assert_eq!(tally.count_at(1004, 1), None);
        assert_eq!(tally.flush_at(1009), None, "too soon");
        assert_eq!(
            tally.flush_at(1010),
            Some(Line::Summary {
                counts: [5, 1],
                seconds: 10
            })
        );
        assert_eq!(tally.flush_at(1030), None, "nothing held");
        // Held, and an event finds the interval over before the flush does.
        assert_eq!(tally.count_at(1015, 1), None);
        assert_eq!(
            tally.count_at(1021, 1),
            Some(Line::Summary {
                counts: [0, 2],
                seconds: 11
            })
        );
        // Quiet for an interval: the next event is a first again.
        assert_eq!(tally.count_at(1040, 0), Some(Line::First));
        assert_eq!(tally.count_at(1040, 7), None, "no such kind");
    }

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

    #[test]
    fn what_is_held_is_said_at_once_when_its_owner_goes() {
        let tally = Tally::<2>::new();
        assert_eq!(tally.flush_now_at(1000), None, "nothing held");
        assert_eq!(tally.count_at(1000, 0), Some(Line::First));
        tally.count_at(1001, 1);
        tally.count_at(1002, 1);
        assert_eq!(
            tally.flush_at(1003),
            None,
            "too soon for the periodic flush"
        );
        assert_eq!(
            tally.flush_now_at(1003),
            Some(Line::Summary {
                counts: [0, 2],
                seconds: 3
            })
        );
        assert_eq!(tally.flush_now_at(1004), None, "said once");
    }

    /// The lines' intervals are on the monotonic clock: a line logged "now" on it
    /// holds the next one back, where the wall clock (seconds since 1970, which an
    /// administrator or NTP may step back) would read as another time altogether.
    #[test]
    fn the_limits_read_the_monotonic_clock_not_the_wall_clock() {
        let now = crate::clock::monotonic_seconds();
        let tally = Tally::<1>::new();
        assert_eq!(tally.count_at(now, 0), Some(Line::First));
        assert_eq!(tally.count(0), None, "held back: same interval");
        let limit = RateLimit::new();
        let mut lines = 0;
        limit.warn_at(now, |_| lines += 1);
        limit.warn(|_| lines += 1);
        assert_eq!(lines, 1);
    }
}
