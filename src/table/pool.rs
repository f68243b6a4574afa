//! The pool controls' state in the table (uvs's own, beyond IPVS): what a real server's
//! timed drain is ([`Drain`]) and what `uvs status` reads of it ([`DrainStatus`]).
//! `Table::apply` sets and clears a drain (`Command::Drain`, `Command::Undrain`); the
//! pool controller (`pool`) reads it to remove the server when its last connection
//! ends or its deadline passes; the configuration's planner reads it so that a reload
//! neither undoes a drain the command line started nor re-adds a server it drained out.
//!
//! Times are milliseconds of the process's monotonic clock (`clock::monotonic_ms`),
//! which the table and the controller read alike.

use serde::{Deserialize, Serialize};

use super::Source;

/// A real server being drained: it takes no new connection (its weight in force is
/// 0, and it is held out, `Hold::Draining`), its established connections go on, and
/// it leaves its service when the last one ends or at the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drain {
    /// When the drain started (a drain asked again keeps its start).
    pub started_ms: u64,
    /// When the remaining connections are closed and the server removed; None: only
    /// when its last connection ends.
    pub deadline_ms: Option<u64>,
    /// The deadline as it was asked, in milliseconds from when it was asked (None:
    /// none): what the configuration's planner compares with the file's, so that a
    /// changed `drain` or `drain_on_remove` drains again with the new deadline.
    pub asked_ms: Option<u64>,
    /// Whether persistence templates naming the server still lead to it (`uvs drain
    /// --keep-persistent`): its persistent clients keep coming until the drain ends.
    pub keep_persistent: bool,
    /// Who started it: the command line (`uvs drain`), which no reload undoes, or the
    /// configuration file (`drain`, `drain_on_remove`), which a reload may undo.
    pub origin: Source,
}

impl Drain {
    /// Milliseconds left until the deadline at `now_ms` (0 once passed); None without
    /// a deadline.
    pub fn left_ms(&self, now_ms: u64) -> Option<u64> {
        self.deadline_ms.map(|d| d.saturating_sub(now_ms))
    }

    /// Whether the deadline has passed at `now_ms`.
    pub fn is_due(&self, now_ms: u64) -> bool {
        self.deadline_ms.is_some_and(|d| now_ms >= d)
    }
}

/// A configuration file's `drain` of one real server (`[[service.server]] drain`): in
/// `ServerOptions`, so that a reload sees it change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainSetting {
    /// `drain = true`: until the last connection ends, or for at most the service's
    /// `drain_on_remove` when it has one.
    UntilEmpty,
    /// `drain = "30s"`: with this deadline, in milliseconds (at most a day: u32
    /// keeps `ServerConfig`, and so every `Command`, small).
    Deadline { ms: u32 },
}

impl DrainSetting {
    /// The deadline a drain from this setting gets, in milliseconds from its start;
    /// `drain_on_remove_ms` is the service's (0: none).
    pub fn deadline_ms(self, drain_on_remove_ms: u32) -> Option<u64> {
        match self {
            DrainSetting::Deadline { ms } => Some(u64::from(ms)),
            DrainSetting::UntilEmpty => {
                (drain_on_remove_ms != 0).then_some(u64::from(drain_on_remove_ms))
            }
        }
    }
}

/// What a drain waits for, counted: "3 connections" for TCP, "2 flows" for UDP, "3
/// connections and flows" where both may be (an fwmark service).
pub fn open_words(service: &super::ServiceKey, open: u64) -> String {
    use super::Protocol;
    let words = match service {
        super::ServiceKey::Inet {
            protocol: Protocol::Udp,
            ..
        } => ["flow", "flows"],
        super::ServiceKey::Inet { .. } => ["connection", "connections"],
        super::ServiceKey::Fwmark { .. } => ["connection or flow", "connections and flows"],
    };
    let words = words[usize::from(open != 1)];
    format!("{open} {words}")
}

/// A draining server as `uvs status` shows it: `draining (N connections, Ts left)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainStatus {
    /// Connections and flows still open (the kernel's active connections in kernel
    /// mode).
    pub open: u32,
    /// Milliseconds to the deadline; None without one.
    pub left_ms: Option<u64>,
    pub keep_persistent: bool,
    /// Started from the configuration file (true) or the command line.
    pub from_file: bool,
}

impl DrainStatus {
    /// As `uvs status` shows it for a server of `service`: `draining (3 connections,
    /// 25s left)`, `draining (1 flow)` for UDP, "connections and flows" for an fwmark
    /// service.
    pub fn describe(&self, service: &super::ServiceKey) -> String {
        let mut line = format!("draining ({}", open_words(service, u64::from(self.open)));
        if let Some(left) = self.left_ms {
            line.push_str(&format!(", {}s left", left.div_ceil(1000)));
        }
        if self.keep_persistent {
            line.push_str(", persistent clients kept");
        }
        line.push(')');
        line
    }
}

impl std::fmt::Display for DrainStatus {
    /// As [`DrainStatus::describe`] says it for a TCP service: `draining (3
    /// connections, 25s left)`, `draining (1 connection)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tcp = super::ServiceKey::Inet {
            protocol: super::Protocol::Tcp,
            addr: std::net::Ipv4Addr::UNSPECIFIED.into(),
            port: 0,
        };
        f.write_str(&self.describe(&tcp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drain_reads_its_time_left_and_status() {
        let d = Drain {
            started_ms: 1000,
            deadline_ms: Some(31_000),
            asked_ms: Some(30_000),
            keep_persistent: false,
            origin: Source::Command,
        };
        assert_eq!(d.left_ms(1000), Some(30_000));
        assert!(!d.is_due(30_999));
        assert!(d.is_due(31_000));
        assert_eq!(d.left_ms(40_000), Some(0));
        let status = DrainStatus {
            open: 3,
            left_ms: Some(24_100),
            keep_persistent: false,
            from_file: false,
        };
        assert_eq!(status.to_string(), "draining (3 connections, 25s left)");
        let one = DrainStatus {
            open: 1,
            left_ms: None,
            ..status
        };
        assert_eq!(one.to_string(), "draining (1 connection)");
    }

    #[test]
    fn udp_drains_count_flows_and_fwmark_drains_both() {
        let udp = crate::table::ServiceKey::Inet {
            protocol: crate::table::Protocol::Udp,
            addr: "127.0.0.1".parse().unwrap(),
            port: 53,
        };
        let mark = crate::table::ServiceKey::Fwmark {
            mark: 5,
            family: crate::table::Family::Inet,
        };
        let status = DrainStatus {
            open: 13,
            left_ms: Some(u64::MAX),
            keep_persistent: false,
            from_file: false,
        };
        assert_eq!(
            status.describe(&udp),
            format!("draining (13 flows, {}s left)", u64::MAX.div_ceil(1000))
        );
        assert_eq!(open_words(&udp, 1), "1 flow");
        assert_eq!(open_words(&mark, 2), "2 connections and flows");
        assert_eq!(open_words(&mark, 1), "1 connection or flow");
    }
}
