//! Slow start (HAProxy's `slowstart`): after a real server is added to a running
//! service, or comes back (its weight in force from 0 to above 0, its passive ejection
//! over), it takes a growing share of the new connections it would otherwise get, from
//! [`FLOOR`] to all of them, linearly over its window.
//!
//! The ramp lives here, in atomics of the server's live state, not in table edits: an
//! integer IPVS weight such as 1 cannot ramp, and an edit a second through
//! `Table::apply` would rebuild the scheduler's state each time. The window is mirrored
//! at publish (`table::effect`), the ramp is begun there (or by the ejection's
//! readmission, [`RealServerState::begin_slow_start`](super::RealServerState::begin_slow_start)),
//! and the data plane reads it per pick (`sched::ramp`), where it ends by itself once
//! the window has passed. A server that never ramps costs one relaxed load per pick.
//! The listing (`table::entry_of`), `uvs status` and the metrics read [`SlowStart::share`].

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU32, AtomicU64};

/// Shares are counted in thousandths (permille).
pub const WHOLE: u32 = 1000;

/// The share a ramp starts from: 1/20 (50 permille), so that a server just back gets a
/// few connections at once rather than none for a while (HAProxy starts from a weight
/// of 1 in its scale of 256 per server weight unit; 1/20 is coarser and shows).
pub const FLOOR: u32 = 50;

/// The longest window a configuration may give (a day, in milliseconds).
pub const MAX_WINDOW_MS: u32 = 86_400_000;

/// A server's slow-start window and ramp.
#[derive(Debug, Default)]
pub struct SlowStart {
    /// The window in milliseconds (0: no slow start), as last published.
    window_ms: AtomicU32,
    /// When the ramp began, in `clock::monotonic_ms` (0: not ramping). The one word a
    /// pick reads of a server that is not ramping.
    began_ms: AtomicU64,
    /// Thousandths of a pick owed to the server: each pick adds the share in force, and
    /// a pick is accepted when that reaches a whole one ([`SlowStart::admit`]).
    credit: AtomicU32,
}

impl SlowStart {
    /// Whether a ramp is in force (it may have run out: [`SlowStart::share`] ends it).
    /// One relaxed load: the whole cost of slow start on a server not ramping.
    #[inline]
    pub fn is_ramping(&self) -> bool {
        self.began_ms.load(Relaxed) != 0
    }

    /// The window in milliseconds (0: none).
    pub fn window_ms(&self) -> u32 {
        self.window_ms.load(Relaxed)
    }

    /// Mirrors the window in force for the server (its own, else its service's); a
    /// window of 0 ends a ramp. Called when a change is published, and for a state
    /// nobody shares yet.
    pub(crate) fn set_window(&self, window_ms: u32) {
        self.window_ms.store(window_ms, Relaxed);
        if window_ms == 0 {
            self.began_ms.store(0, Relaxed);
        }
    }

    /// Begins a ramp now, from [`FLOOR`], if a window is set; a ramp in force starts
    /// over.
    pub fn begin(&self) {
        if self.window_ms() == 0 {
            return;
        }
        self.credit.store(0, Relaxed);
        self.began_ms.store(crate::clock::monotonic_ms(), Relaxed);
    }

    /// The share in force, in thousandths, while ramping; None when not ramping (the
    /// whole share). Ends a ramp whose window has passed.
    pub fn share(&self) -> Option<u32> {
        let began = self.began_ms.load(Relaxed);
        if began == 0 {
            return None;
        }
        let elapsed = crate::clock::monotonic_ms().saturating_sub(began);
        let share = share_at(elapsed, self.window_ms());
        if share.is_none() {
            // Only this ramp: a ramp begun meanwhile keeps going.
            let _ = self.began_ms.compare_exchange(began, 0, Relaxed, Relaxed);
        }
        share
    }

    /// Whether this pick of the ramping server is accepted, at `share` thousandths: the
    /// credit grows by `share` per pick and an accepted pick spends a whole one, so
    /// exactly that fraction of its picks is accepted, deterministically (at 250, every
    /// fourth).
    pub fn admit(&self, share: u32) -> bool {
        let mut accepted = false;
        let _ = self.credit.fetch_update(Relaxed, Relaxed, |credit| {
            let owed = credit.saturating_add(share);
            accepted = owed >= WHOLE;
            Some(if accepted { owed - WHOLE } else { owed })
        });
        accepted
    }
}

/// The share in thousandths `elapsed_ms` into a ramp of `window_ms`: [`FLOOR`] at the
/// start, growing linearly to the whole at the window's end; None once the window has
/// passed (or with none).
pub fn share_at(elapsed_ms: u64, window_ms: u32) -> Option<u32> {
    let window = u64::from(window_ms);
    if elapsed_ms >= window {
        return None;
    }
    let grown = u64::from(WHOLE - FLOOR) * elapsed_ms / window;
    Some(FLOOR + grown as u32)
}

/// The weight IPVS would show for `weight` at `share` thousandths: rounded up, and at
/// least 1 while the weight is not 0 (a server with weight in force takes connections).
pub fn weight_at(weight: u32, share: u32) -> u32 {
    if weight == 0 {
        return 0;
    }
    let shown = (u64::from(weight) * u64::from(share)).div_ceil(u64::from(WHOLE));
    u32::try_from(shown).unwrap_or(weight).clamp(1, weight)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(ramp: &SlowStart, share: u32, picks: usize) -> String {
        (0..picks)
            .map(|_| if ramp.admit(share) { 'y' } else { '.' })
            .collect()
    }

    #[test]
    fn the_credit_accepts_exactly_the_share_of_picks() {
        let ramp = SlowStart::default();
        assert_eq!(accepted(&ramp, 500, 6), ".y.y.y");
        let ramp = SlowStart::default();
        assert_eq!(accepted(&ramp, 250, 8), "...y...y");
        let ramp = SlowStart::default();
        assert_eq!(accepted(&ramp, FLOOR, 40).matches('y').count(), 2);
        assert!(
            !SlowStart::default().admit(FLOOR),
            "the first pick at 1/20 waits for its credit"
        );
        let ramp = SlowStart::default();
        assert_eq!(accepted(&ramp, 400, 5), "..y.y", "2 in 5, evenly spread");
        let ramp = SlowStart::default();
        assert_eq!(accepted(&ramp, WHOLE, 3), "yyy");
        // 3 in 10 over many picks, whatever the start.
        let ramp = SlowStart::default();
        assert_eq!(accepted(&ramp, 300, 1000).matches('y').count(), 300);
    }

    #[test]
    fn the_share_grows_linearly_from_the_floor_and_ends() {
        assert_eq!(share_at(0, 10_000), Some(FLOOR));
        assert_eq!(share_at(5_000, 10_000), Some(525));
        assert_eq!(share_at(9_999, 10_000), Some(999));
        assert_eq!(share_at(10_000, 10_000), None);
        assert_eq!(share_at(0, 0), None, "no window, no ramp");
    }

    #[test]
    fn the_listing_weight_is_rounded_up_and_never_0() {
        assert_eq!(weight_at(1, FLOOR), 1);
        assert_eq!(weight_at(100, FLOOR), 5);
        assert_eq!(weight_at(100, 525), 53);
        assert_eq!(weight_at(3, 500), 2);
        assert_eq!(weight_at(20, 999), 20);
        assert_eq!(weight_at(0, 500), 0);
    }

    #[test]
    fn a_ramp_begins_only_with_a_window_and_a_zero_window_ends_it() {
        let ramp = SlowStart::default();
        ramp.begin();
        assert!(!ramp.is_ramping(), "no window: no ramp");
        ramp.set_window(60_000);
        ramp.begin();
        assert!(ramp.is_ramping());
        assert!(ramp.share().is_some_and(|s| (FLOOR..WHOLE).contains(&s)));
        ramp.set_window(0);
        assert!(!ramp.is_ramping());
        assert_eq!(ramp.share(), None);
    }

    #[test]
    fn a_ramp_whose_window_passed_ends_at_its_next_reading() {
        let ramp = SlowStart::default();
        ramp.set_window(1);
        ramp.begin();
        // Monotonic milliseconds move on; wait for the clock, not a duration.
        let began = crate::clock::monotonic_ms();
        while crate::clock::monotonic_ms() <= began + 1 {
            std::thread::yield_now();
        }
        assert_eq!(ramp.share(), None);
        assert!(!ramp.is_ramping());
    }
}
