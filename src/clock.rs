//! The daemon's clocks: wall-clock seconds for what people and scrapers read (logs,
//! `uvs status`, metrics timestamps) and their words ([`utc`]); monotonic seconds
//! since the process started for what measures intervals between log lines
//! (`rate_limit`), which a step of the wall clock must not stretch; and a cheap
//! monotonic millisecond count for the connection table and persistence templates,
//! which store it in atomics. The connection table owns one `Clock`; templates share
//! it. Below everything that tells time: `status`, the exporter's page, `rate_limit`.

use std::time::Instant;

/// Wall-clock seconds since the Unix epoch (0 if the clock is before it): what logs,
/// `uvs status` and metrics timestamps are kept in.
pub fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// When the process first asked for monotonic time: the start of both counts.
static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Monotonic seconds since the process first asked, counted from 1 (so that 0 can
/// mean "never" in an atomic): CLOCK_MONOTONIC, which no setting of the wall clock
/// moves, for intervals between log lines.
pub fn monotonic_seconds() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_secs() + 1
}

/// Monotonic milliseconds since the process first asked (of [`monotonic_seconds`]'s
/// clock, counted from 1 so that 0 can mean "never"): when a passive ejection ends,
/// which the data plane and the health checks compare in atomics.
pub fn monotonic_ms() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC` (the proleptic Gregorian
/// calendar, counted from 1970-01-01 by days), as `uvs status` and the status page
/// show times.
pub fn utc(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Shift the epoch to 0000-03-01 so that leap days end each 4-, 100- and 400-year
    // cycle, then read the year, month and day off the cycles.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Milliseconds since the table was made; cheap to store in an atomic.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            epoch: Instant::now(),
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}
