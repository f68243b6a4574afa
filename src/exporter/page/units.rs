//! Numbers and times as the status page (`page::html`) shows them: counts exact up to
//! 99 999 and then with an SI prefix (the exact value goes in the cell's `title`), byte
//! rates with a unit, an uptime in two units (times of day: `clock::utc`).

use std::fmt::Write as _;

/// `n` exact below 100 000, else with k, M, G, T, P or E and one decimal: `123.4k`.
pub fn compact(n: u64) -> String {
    if n < 100_000 {
        return n.to_string();
    }
    let mut value = n as f64;
    let mut prefix = ' ';
    for p in ['k', 'M', 'G', 'T', 'P', 'E'] {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        prefix = p;
    }
    format!("{value:.1}{prefix}")
}

/// Bytes (or bytes per second, `per` = "/s") with a decimal prefix: `512 B`, `1.5 kB`.
pub fn bytes(n: u64, per: &str) -> String {
    if n < 1000 {
        return format!("{n} B{per}");
    }
    let mut value = n as f64;
    let mut prefix = "";
    for p in ["k", "M", "G", "T", "P", "E"] {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        prefix = p;
    }
    let digits = if value < 10.0 {
        2
    } else if value < 100.0 {
        1
    } else {
        0
    };
    format!("{value:.digits$} {prefix}B{per}")
}

/// A span of seconds in its two largest units: `45s`, `3m 20s`, `5h 2m`, `12d 3h`.
pub fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    let mut out = String::new();
    let _ = match (d, h, m) {
        (0, 0, 0) => write!(out, "{s}s"),
        (0, 0, _) => write!(out, "{m}m {s}s"),
        (0, _, _) => write!(out, "{h}h {m}m"),
        _ => write!(out, "{d}d {h}h"),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::utc;

    #[test]
    fn counts_are_exact_until_they_get_long() {
        assert_eq!(compact(0), "0");
        assert_eq!(compact(99_999), "99999");
        assert_eq!(compact(123_456), "123.5k");
        assert_eq!(compact(7_200_000_000), "7.2G");
        assert_eq!(compact(u64::MAX), "18.4E");
    }

    #[test]
    fn bytes_have_a_unit() {
        assert_eq!(bytes(0, "/s"), "0 B/s");
        assert_eq!(bytes(999, ""), "999 B");
        assert_eq!(bytes(1500, "/s"), "1.50 kB/s");
        assert_eq!(bytes(25_000_000, ""), "25.0 MB");
        assert_eq!(bytes(640_000_000_000, ""), "640 GB");
    }

    #[test]
    fn spans_and_times_read_as_people_write_them() {
        assert_eq!(uptime(45), "45s");
        assert_eq!(uptime(200), "3m 20s");
        assert_eq!(uptime(5 * 3600 + 120 + 7), "5h 2m");
        assert_eq!(uptime(12 * 86_400 + 3 * 3600), "12d 3h");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_795_827_723), "2026-11-28 01:02:03 UTC");
    }
}
