//! The daemon's two clocks: wall-clock seconds for what people and scrapers read (logs,
//! `uvs status`, metrics timestamps), and a cheap monotonic millisecond count for the
//! connection table and persistence templates, which store it in atomics. The
//! connection table owns one `Clock`; templates share it.

use std::time::Instant;

/// Wall-clock seconds since the Unix epoch (0 if the clock is before it): what logs,
/// `uvs status` and metrics timestamps are kept in.
pub fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
