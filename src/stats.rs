//! Traffic counters and IPVS's 2-second rate estimator.
//!
//! Every service, every real server and the table as a whole own one [`Stats`]. The data
//! plane adds to the counters with relaxed atomics; the daemon calls [`Stats::estimate`]
//! every [`ESTIMATOR_INTERVAL`]; listings read a [`StatsView`]. Counters only ever grow:
//! `-Z` moves a zero point that listings subtract, so exported totals never go backwards.
//!
//! The estimator is the kernel's (net/netfilter/ipvs/ip_vs_est.c): every 2 s the change in
//! each counter is scaled (connections and packets by 2^9, i.e. 2^10 per second over two
//! seconds; bytes by 2^4) and folded into an average with weight 1/4; reading rounds back
//! (`(avg + 0x1FF) >> 10` and `(avg + 0xF) >> 5`). "bps" means bytes per second.

use crate::lock::Locked;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Upper bounds, in seconds, of the connect-latency buckets: 100 µs to 5 s.
pub const LATENCY_BOUNDS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A histogram of how long connects to one real server took: a count per bucket of
/// [`LATENCY_BOUNDS`] (and one above them) and the sum, added to with relaxed atomics by
/// the data plane, read by the metrics exporter.
#[derive(Debug, Default)]
pub struct Latency {
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

/// A [`Latency`] as read at one moment: counts per bucket (not cumulative), the sum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyView {
    pub buckets: [u64; LATENCY_BOUNDS.len() + 1],
    pub sum_seconds: f64,
}

impl Latency {
    pub fn record(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let i = LATENCY_BOUNDS
            .iter()
            .position(|&bound| secs <= bound)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(
            took.as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    pub fn view(&self) -> LatencyView {
        LatencyView {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// How often [`Stats::estimate`] must run for the rates to mean per-second figures.
pub const ESTIMATOR_INTERVAL: Duration = Duration::from_secs(2);

const CONNS: usize = 0;
const INPKTS: usize = 1;
const OUTPKTS: usize = 2;
const INBYTES: usize = 3;
const OUTBYTES: usize = 4;

/// The five counters of one service, real server or of the whole table, as a value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

impl Counters {
    fn from_array(a: [u64; 5]) -> Counters {
        Counters {
            conns: a[CONNS],
            inpkts: a[INPKTS],
            outpkts: a[OUTPKTS],
            inbytes: a[INBYTES],
            outbytes: a[OUTBYTES],
        }
    }
}

/// Rates as IPVS reports them: connections, packets and bytes per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// What a listing shows: counters since the last `-Z`, and the current rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsView {
    pub counters: Counters,
    pub rates: Rates,
}

#[derive(Debug, Default)]
struct Estimator {
    /// Counter values at the previous estimation.
    last: [u64; 5],
    /// Scaled moving averages (cps, inpps, outpps ×2^10; inbps, outbps ×2^5).
    avg: [i64; 5],
    /// Counter values at the last `-Z`; listings show the difference.
    zero_point: [u64; 5],
    /// Kernel mode: the kernel's own estimator's rates.
    kernel_rates: Option<Rates>,
}

/// Live counters plus their estimator. Shared by `Arc` between table snapshots, so a
/// service or real server keeps its counters when it is edited.
#[derive(Debug, Default)]
pub struct Stats {
    counters: [AtomicU64; 5],
    estimator: Mutex<Estimator>,
}

impl Stats {
    pub fn new() -> Stats {
        Stats::default()
    }

    /// One connection was scheduled.
    pub fn add_conn(&self) {
        self.counters[CONNS].fetch_add(1, Ordering::Relaxed);
    }

    /// Packets and bytes from the client towards the real server.
    pub fn add_in(&self, packets: u64, bytes: u64) {
        self.counters[INPKTS].fetch_add(packets, Ordering::Relaxed);
        self.counters[INBYTES].fetch_add(bytes, Ordering::Relaxed);
    }

    /// Packets and bytes from the real server back to the client.
    pub fn add_out(&self, packets: u64, bytes: u64) {
        self.counters[OUTPKTS].fetch_add(packets, Ordering::Relaxed);
        self.counters[OUTBYTES].fetch_add(bytes, Ordering::Relaxed);
    }

    fn load(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.counters[i].load(Ordering::Relaxed))
    }

    /// Monotonic totals since creation, untouched by `-Z` (for metrics).
    pub fn totals(&self) -> Counters {
        Counters::from_array(self.load())
    }

    fn estimator(&self) -> std::sync::MutexGuard<'_, Estimator> {
        // A panic while holding this lock cannot leave the numbers inconsistent in a way
        // that matters more than losing the listing, so recover the guard.
        self.estimator.locked()
    }

    /// One estimator step; call every [`ESTIMATOR_INTERVAL`].
    pub fn estimate(&self) {
        let now = self.load();
        let mut est = self.estimator();
        for (i, value) in now.into_iter().enumerate() {
            let delta = value.wrapping_sub(est.last[i]);
            let shift = if i >= INBYTES { 4 } else { 9 };
            let rate = (delta << shift) as i64;
            est.avg[i] = est.avg[i].wrapping_add(rate.wrapping_sub(est.avg[i]) >> 2);
            est.last[i] = value;
        }
    }

    /// `-Z`: counters restart from zero in listings and the rates are reset.
    pub fn zero(&self) {
        let now = self.load();
        let mut est = self.estimator();
        est.zero_point = now;
        est.last = now;
        est.avg = [0; 5];
    }

    /// Kernel mode: the counters and rates are the kernel's, copied in. A `-Z` since
    /// the last copy is returned (true) for the caller to pass on to the kernel, whose
    /// counters then restart.
    pub fn mirror(&self, counters: Counters, rates: Rates) -> bool {
        let values = [
            counters.conns,
            counters.inpkts,
            counters.outpkts,
            counters.inbytes,
            counters.outbytes,
        ];
        let mut est = self.estimator();
        let zeroed = est.zero_point != [0; 5];
        for (counter, value) in self.counters.iter().zip(values) {
            counter.store(value, Ordering::Relaxed);
        }
        est.zero_point = [0; 5];
        est.last = values;
        est.kernel_rates = Some(rates);
        zeroed
    }

    pub fn view(&self) -> StatsView {
        let now = self.load();
        let est = self.estimator();
        let shown: [u64; 5] = std::array::from_fn(|i| now[i].wrapping_sub(est.zero_point[i]));
        let per_sec = |avg: i64| (avg as u64).wrapping_add(0x1FF) >> 10;
        let bytes_per_sec = |avg: i64| (avg as u64).wrapping_add(0xF) >> 5;
        if let Some(rates) = est.kernel_rates {
            return StatsView {
                counters: Counters::from_array(shown),
                rates,
            };
        }
        StatsView {
            counters: Counters::from_array(shown),
            rates: Rates {
                cps: per_sec(est.avg[CONNS]),
                inpps: per_sec(est.avg[INPKTS]),
                outpps: per_sec(est.avg[OUTPKTS]),
                inbps: bytes_per_sec(est.avg[INBYTES]),
                outbps: bytes_per_sec(est.avg[OUTBYTES]),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_accumulate_and_zero_moves_the_baseline_only() {
        let s = Stats::new();
        s.add_conn();
        s.add_in(3, 300);
        s.add_out(2, 2000);
        let v = s.view();
        assert_eq!(
            v.counters,
            Counters {
                conns: 1,
                inpkts: 3,
                outpkts: 2,
                inbytes: 300,
                outbytes: 2000
            }
        );
        s.zero();
        assert_eq!(s.view().counters, Counters::default());
        assert_eq!(s.totals().outbytes, 2000, "totals never go backwards");
        s.add_in(1, 10);
        assert_eq!(s.view().counters.inbytes, 10);
        assert_eq!(s.totals().inbytes, 310);
    }

    #[test]
    fn estimator_follows_the_kernel_arithmetic() {
        // 100 connections and 1000 bytes per 2 s interval, steady: the kernel's EWMA
        // converges to 50 cps and 500 B/s. Check the exact sequence of the first steps.
        let s = Stats::new();
        let mut seen = Vec::new();
        for _ in 0..6 {
            for _ in 0..100 {
                s.add_conn();
            }
            s.add_in(0, 1000);
            s.estimate();
            let r = s.view().rates;
            seen.push((r.cps, r.inbps));
        }
        // avg_n = avg_{n-1} + (rate - avg_{n-1}) / 4 with rate = 100 << 9 = 51200
        // -> 12800, 22400, 29600, 35000, 39050, 42088 (scaled by 2^10):
        //    cps = (avg + 511) >> 10 = 12, 22, 29, 34, 38, 41
        // bytes: rate = 1000 << 4 = 16000 -> 4000, 7000, 9250, 10937, 12202, 13151
        //    bps = (avg + 15) >> 5 = 125, 219, 289, 342, 381, 411
        assert_eq!(
            seen,
            vec![
                (12, 125),
                (22, 219),
                (29, 289),
                (34, 342),
                (38, 381),
                (41, 411)
            ]
        );
        s.zero();
        assert_eq!(s.view().rates, Rates::default());
    }

    #[test]
    fn idle_rates_decay_to_zero() {
        let s = Stats::new();
        for _ in 0..1000 {
            s.add_conn();
        }
        s.estimate();
        assert!(s.view().rates.cps > 0);
        for _ in 0..100 {
            s.estimate();
        }
        assert_eq!(s.view().rates.cps, 0);
    }
}
