//! Passive ejection, the table's half: a service's setting ([`EjectionConfig`], the
//! `ejection` key: Envoy's `outlier_detection` with `consecutive_5xx` read as failed
//! connects, HAProxy's `observe layer4` + `error-limit` + `on-error mark-down`), a real
//! server's live state in atomics ([`Ejection`], in `RealServerState`), and the two
//! moves: [`eject`] (the data plane, `proxy::ejection`, after the N-th consecutive
//! failure) and [`readmit`] (the data plane's timer when the time is up, or the health
//! checks, `health::checker`, at a good check), and the log line of a readmission.
//! Holding the server out is
//! `Hold::Ejected`: the schedulers skip it at once and templates naming it are void.
//!
//! No lock and no table command: an ejection must act at once and exactly, from the
//! connection that saw the failure. The servers out are counted in the service's list
//! at the moment of an ejection (a rare event), after the server's own hold is set, so
//! at most floor(max_share × servers) are ever out and one usable server always stays
//! in; a server that leaves its service leaves the count with it (no separate counter
//! to leak). A server that left (retired) is never readmitted nor said to be back.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU32, AtomicU64};

use serde::{Deserialize, Serialize};

use super::real_server::{Hold, RealServer, RealServerState};
use crate::rate_limit::RateLimit;

/// A service's passive ejection (`ejection = { failures = N, base_time = "30s",
/// max_share = 0.5, max_time = "300s" }`). Durations in milliseconds, the share in
/// permille, so that `ServiceOptions` stays `Copy + Eq + Hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EjectionConfig {
    /// Consecutive failed connects (refused, timed out; ICMP errors on UDP flows) that
    /// eject a server (Envoy's `consecutive_5xx`), at least 1.
    pub failures: u32,
    /// The first ejection's length (Envoy's `base_ejection_time`), ms, above 0.
    pub base_time_ms: u32,
    /// The most of the service's servers out at once, in permille of their number
    /// (Envoy's `max_ejection_percent`), 1..=1000.
    pub max_share_permille: u16,
    /// The longest an ejection lasts (Envoy's `max_ejection_time`), ms; 0: the default,
    /// [`EjectionConfig::DEFAULT_MAX_TIME_MS`].
    pub max_time_ms: u32,
}

impl EjectionConfig {
    /// Envoy's default `max_ejection_time`: 300 s.
    pub const DEFAULT_MAX_TIME_MS: u32 = 300_000;

    /// How many of `servers` servers may be out at once: floor(max_share × servers).
    pub fn cap(&self, servers: usize) -> u32 {
        let n = servers as u64 * u64::from(self.max_share_permille) / 1000;
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The longest ejection, ms: `max_time` (300 s unless set), and never below
    /// `base_time` (as Envoy, which takes the larger of the two).
    pub fn max_ms(&self) -> u64 {
        let max = if self.max_time_ms == 0 {
            Self::DEFAULT_MAX_TIME_MS
        } else {
            self.max_time_ms
        };
        u64::from(max.max(self.base_time_ms))
    }

    /// An ejection's length, ms, when it is the server's `times`-th in a row:
    /// base_time × times, at most [`EjectionConfig::max_ms`].
    pub fn duration_ms(&self, times: u32) -> u64 {
        (u64::from(self.base_time_ms) * u64::from(times.max(1))).min(self.max_ms())
    }

    /// The multiplier left of `times` after `quiet_ms` in service without a failure:
    /// each whole base_time takes one off (Envoy takes one off per interval that
    /// a host spends back in without being ejected).
    pub fn decayed(&self, times: u32, quiet_ms: u64) -> u32 {
        let periods = quiet_ms / u64::from(self.base_time_ms.max(1));
        times.saturating_sub(u32::try_from(periods).unwrap_or(u32::MAX))
    }
}

/// A real server's passive ejection state: all atomics, written by the data plane's
/// failed and successful connects and by the readmissions. Times are
/// `clock::monotonic_ms`.
#[derive(Debug, Default)]
pub struct Ejection {
    /// Failed connects (or ICMP errors on flows) in a row; a good connect, a reply or a
    /// readmission sets it back to 0. Counted only where ejection is configured.
    consecutive: AtomicU32,
    /// When the current run of failures began (its first failure).
    run_began_ms: AtomicU64,
    /// The multiplier of the ejection time (Envoy's ejection count, which decays).
    times: AtomicU32,
    /// Ejections so far.
    total: AtomicU64,
    /// When the ejection in force ends; 0 while the server is not ejected. A
    /// readmission takes it back to 0 with a compare-and-swap: each ejection ends once.
    until_ms: AtomicU64,
    /// When the server was last readmitted (0: never ejected).
    readmitted_ms: AtomicU64,
    /// The log of its ejections and readmissions: each said once, at most one line
    /// per interval each (`rate_limit`), with the count held back.
    pub ejections_logged: RateLimit,
    pub readmissions_logged: RateLimit,
    /// Timer tasks running for this server (`proxy::ejection`): at most one, taken with
    /// [`Ejection::start_timer`], so that a server flapping against its health check
    /// does not pile up sleeping tasks.
    timers: AtomicU32,
    /// Wakes the running timer when an ejection moves `until_ms` (it may end sooner
    /// than the one the timer sleeps for).
    pub wake: tokio::sync::Notify,
}

impl Ejection {
    /// Failures in a row now.
    pub fn consecutive(&self) -> u32 {
        self.consecutive.load(Relaxed)
    }

    /// Ejections so far.
    pub fn total(&self) -> u64 {
        self.total.load(Relaxed)
    }

    /// When the ejection in force ends (`clock::monotonic_ms`), None when not ejected.
    pub fn until_ms(&self) -> Option<u64> {
        Some(self.until_ms.load(Relaxed)).filter(|&u| u != 0)
    }

    /// The ms left of the ejection in force at `now_ms`, None when not ejected.
    pub fn left_ms(&self, now_ms: u64) -> Option<u64> {
        self.until_ms().map(|u| u.saturating_sub(now_ms))
    }

    /// One more failure at `now_ms`; the number in a row now.
    pub fn failed(&self, now_ms: u64) -> u32 {
        let n = self.consecutive.fetch_add(1, Relaxed).saturating_add(1);
        if n == 1 {
            self.run_began_ms.store(now_ms, Relaxed);
        }
        n
    }

    /// Takes the server's one timer: true when none was running (the caller then runs
    /// one, and calls [`Ejection::timer_ended`] when it ends).
    pub fn start_timer(&self) -> bool {
        self.timers.compare_exchange(0, 1, Relaxed, Relaxed).is_ok()
    }

    /// The server's timer ended.
    pub fn timer_ended(&self) {
        self.timers.fetch_sub(1, Relaxed);
    }

    /// Timer tasks running now (0 or 1).
    pub fn timers(&self) -> u32 {
        self.timers.load(Relaxed)
    }

    /// A good connect or a reply: the run of failures is over. A load, and a store only
    /// when there was a run (the common path writes nothing).
    pub fn succeeded(&self) {
        if self.consecutive.load(Relaxed) != 0 {
            self.consecutive.store(0, Relaxed);
        }
    }
}

/// What an ejection did: for how long, the how-manieth in a row, after how many
/// failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ejected {
    pub until_ms: u64,
    pub duration_ms: u64,
    pub times: u32,
    pub failures: u32,
}

/// Ejects `server` of a service (`servers` its list, `config` its setting) at `now_ms`,
/// if it is still in the service and not out already, the servers of `servers` out
/// with it stay within [`EjectionConfig::cap`], and another of `servers` stays usable
/// (weight above 0, nothing holding it out). None: it stays in (or was out already).
pub fn eject(
    config: &EjectionConfig,
    servers: &[RealServer],
    server: &RealServerState,
    now_ms: u64,
) -> Option<Ejected> {
    if !server.is_available() {
        return None;
    }
    // The hold first: it is the gate (one ejection at a time), and no readmission can
    // take it off before `until_ms` is set below.
    if !server.set_hold(Hold::Ejected, true) {
        return None;
    }
    // Counted after the hold, so two servers ejected at once cannot both see room for
    // one more, nor both see the other usable and leave none: each sees the other's
    // hold (both may then back off, which is safe). The server itself counts once,
    // whether or not the list (maybe a connection's older snapshot) still holds it;
    // one that left the service since (retired) counts no more.
    let others = |s: &&RealServer| !std::ptr::eq(&*s.state, server);
    let out = servers
        .iter()
        .filter(others)
        .filter(|s| s.state.is_available() && s.state.holds(Hold::Ejected))
        .count()
        + 1;
    let within_share =
        u64::try_from(out).unwrap_or(u64::MAX) <= u64::from(config.cap(servers.len()));
    let other_usable = servers
        .iter()
        .filter(others)
        .any(|s| s.is_usable() && s.state.is_available());
    if !within_share || !other_usable {
        server.set_hold(Hold::Ejected, false);
        return None;
    }
    let e = &server.ejection;
    let quiet = match e.readmitted_ms.load(Relaxed) {
        0 => 0,
        back => e.run_began_ms.load(Relaxed).saturating_sub(back),
    };
    let times = config
        .decayed(e.times.load(Relaxed), quiet)
        .saturating_add(1);
    e.times.store(times, Relaxed);
    let duration_ms = config.duration_ms(times);
    let until_ms = now_ms + duration_ms;
    e.total.fetch_add(1, Relaxed);
    e.until_ms.store(until_ms, Relaxed);
    Some(Ejected {
        until_ms,
        duration_ms,
        times,
        failures: e.consecutive(),
    })
}

/// Why a server comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readmission {
    /// Its ejection time passed (at `now_ms` or before).
    TimeUp,
    /// Its active health check passed.
    GoodCheck,
}

impl Readmission {
    /// Why, as the log says it.
    pub fn words(self) -> &'static str {
        match self {
            Readmission::TimeUp => "its time is up",
            Readmission::GoodCheck => "its health check passed",
        }
    }
}

/// Logs at INFO that real server `server` (its state `state`) of `service` is back
/// (rate-limited per server, as the failure log is: `rate_limit`).
pub fn log_readmission(
    service: &dyn std::fmt::Display,
    server: &dyn std::fmt::Display,
    state: &RealServerState,
    why: Readmission,
) {
    state.ejection.readmissions_logged.warn(|held_back| {
        let more = if held_back > 0 {
            format!("; {held_back} more readmissions since the last line")
        } else {
            String::new()
        };
        tracing::info!(
            "real server {server} of {service}: back from ejection ({}){more}",
            why.words()
        );
    });
}

/// Takes `server` back in at `now_ms`: when its ejection time has passed, or at once
/// for a good check. True when this call ended an ejection (each ends once, whoever
/// comes first); the server then starts slow (`begin_slow_start`), its failures
/// counted afresh. False for a server that left its service (retired): it is not
/// back.
pub fn readmit(server: &RealServerState, why: Readmission, now_ms: u64) -> bool {
    if !server.is_available() {
        return false;
    }
    let e = &server.ejection;
    let until = e.until_ms.load(Relaxed);
    if until == 0 || (why == Readmission::TimeUp && now_ms < until) {
        return false;
    }
    if e.until_ms
        .compare_exchange(until, 0, Relaxed, Relaxed)
        .is_err()
    {
        return false;
    }
    e.consecutive.store(0, Relaxed);
    e.readmitted_ms.store(now_ms, Relaxed);
    // Back from ejection is coming back up: it ramps (when it has a window) from its
    // first pick on, so the ramp begins before the hold is lifted.
    server.begin_slow_start();
    server.set_hold(Hold::Ejected, false);
    // The server's timer, if it sleeps for this ejection, ends now rather than then.
    e.wake.notify_one();
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::real_server::Hold;

    /// The servers of `servers` passively ejected now.
    fn ejected(servers: &[RealServer]) -> usize {
        servers
            .iter()
            .filter(|s| s.state.holds(Hold::Ejected))
            .count()
    }

    fn config(failures: u32, base_s: u32, share: u16) -> EjectionConfig {
        EjectionConfig {
            failures,
            base_time_ms: base_s * 1000,
            max_share_permille: share,
            max_time_ms: 0,
        }
    }

    #[test]
    fn the_share_is_rounded_down() {
        let half = config(3, 30, 500);
        assert_eq!(
            [1, 2, 3, 4, 5].map(|n| half.cap(n)),
            [0, 1, 1, 2, 2],
            "floor(0.5 × n)"
        );
        let all = config(3, 30, 1000);
        assert_eq!(all.cap(3), 3);
        let tenth = config(3, 30, 100);
        assert_eq!([9, 10, 25].map(|n| tenth.cap(n)), [0, 1, 2]);
    }

    #[test]
    fn the_time_grows_with_each_ejection_up_to_the_cap_and_decays() {
        let c = config(3, 30, 500);
        assert_eq!(
            [1, 2, 3, 10, 11].map(|t| c.duration_ms(t)),
            [30_000, 60_000, 90_000, 300_000, 300_000],
            "base × times, at most 300 s"
        );
        let capped = EjectionConfig {
            max_time_ms: 45_000,
            ..c
        };
        assert_eq!(capped.duration_ms(2), 45_000);
        let long_base = EjectionConfig {
            base_time_ms: 600_000,
            ..c
        };
        assert_eq!(
            long_base.duration_ms(3),
            600_000,
            "never shorter than base_time"
        );
        assert_eq!(c.decayed(3, 29_999), 3);
        assert_eq!(c.decayed(3, 30_000), 2, "one base_time takes one off");
        assert_eq!(c.decayed(3, 95_000), 0);
        assert_eq!(c.decayed(3, u64::MAX), 0);
    }

    fn servers(n: usize) -> Vec<RealServer> {
        crate::sched::testing::servers(&vec![1; n])
    }

    #[test]
    fn ejections_stay_within_the_share_and_leave_one_server_in() {
        let s = servers(4);
        let c = config(1, 30, 500);
        assert!(eject(&c, &s, &s[0].state, 1).is_some());
        assert!(eject(&c, &s, &s[0].state, 1).is_none(), "out already");
        assert!(eject(&c, &s, &s[1].state, 1).is_some());
        assert!(eject(&c, &s, &s[2].state, 1).is_none(), "2 of 4 are out");
        assert!(!s[2].state.holds(Hold::Ejected));
        assert_eq!(ejected(&s), 2);

        // All may go, but the last usable one stays.
        let two = servers(2);
        let all = config(1, 30, 1000);
        assert!(eject(&all, &two, &two[0].state, 1).is_some());
        assert!(eject(&all, &two, &two[1].state, 1).is_none());
        assert_eq!(ejected(&two), 1);
    }

    #[test]
    fn a_readmission_ends_each_ejection_once_and_the_next_lasts_longer() {
        let s = servers(2);
        let c = config(1, 30, 500);
        let state = &s[0].state;
        state.ejection.failed(1_000);
        let first = eject(&c, &s, state, 1_000).unwrap();
        assert_eq!((first.duration_ms, first.times), (30_000, 1));
        assert!(!readmit(state, Readmission::TimeUp, 30_999));
        assert!(readmit(state, Readmission::TimeUp, 31_000));
        assert!(!readmit(state, Readmission::GoodCheck, 31_000));
        assert!(!state.holds(Hold::Ejected));
        assert_eq!(ejected(&s), 0);
        assert_eq!(state.ejection.consecutive(), 0);

        // Failing again at once: twice as long.
        state.ejection.failed(31_500);
        let second = eject(&c, &s, state, 31_500).unwrap();
        assert_eq!((second.duration_ms, second.times), (60_000, 2));
        assert!(readmit(state, Readmission::GoodCheck, 32_000));
        // Two quiet base times later: one again.
        state.ejection.failed(92_000);
        let third = eject(&c, &s, state, 92_000).unwrap();
        assert_eq!(third.times, 1);
        assert_eq!(state.ejection.total(), 3);
    }

    /// An ejected server that leaves its service (file reload, `uvsadm -d`, a finished
    /// drain) takes its place in the share with it: another may be ejected at once,
    /// and the left server's time up does not bring it "back".
    #[test]
    fn a_server_that_leaves_frees_its_share_and_is_never_back() {
        let s = servers(5);
        let c = config(1, 30, 500);
        assert!(eject(&c, &s[..4], &s[0].state, 1_000).is_some());
        assert!(eject(&c, &s[..4], &s[1].state, 1_000).is_some());
        // s[0] leaves (retired, as the table's publish does) and s[4] comes in.
        let proof = crate::table::effect::CarryingOut::in_a_test();
        s[0].state.retire(&proof);
        let now: Vec<RealServer> = s[1..].to_vec();
        assert!(
            eject(&c, &now, &now[1].state, 2_000).is_some(),
            "1 of the 4 servers it has now is out: room for another"
        );
        assert_eq!(ejected(&now), 2);
        assert!(
            !readmit(&s[0].state, Readmission::TimeUp, 40_000),
            "a server that left is not back"
        );
    }
}
