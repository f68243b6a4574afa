//! The typed piece health checks give `uvs status` (and, through the daemon, `/metrics`):
//! what the checks know of each checked real server. `Findings::statuses` makes them.

use serde::{Deserialize, Serialize};

/// What the checks know of one real server of one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthStatus {
    pub service: crate::table::ServiceKey,
    pub server: crate::table::ServerKey,
    pub up: bool,
    /// Failed checks in a row.
    pub failures: u32,
    /// When the last check ended (seconds since the epoch).
    pub last_check: Option<u64>,
    pub last_duration_ms: u64,
    pub last_error: Option<String>,
    /// `alpha`: no check has ended yet; down until a good one.
    #[serde(default)]
    pub pending: bool,
    /// The server's own `quiescent`, when it has one.
    #[serde(default)]
    pub quiescent: Option<bool>,
    /// Why its checks are suspended (`ha_suspend`), while they are.
    #[serde(default)]
    pub suspended: Option<String>,
    /// With several checks, each one's state, first to last (absent with one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckStatus>,
}

/// One of several checks of a real server (keepalived's checkers of one
/// `real_server`): the server is up only while every one of them is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckStatus {
    /// Its type, or a `negotiate` check's service (`connect`, `http`, `file`, ...).
    pub kind: String,
    pub up: bool,
    /// Failed checks in a row.
    pub failures: u32,
    /// When its last check ended (seconds since the epoch).
    pub last_check: Option<u64>,
    pub last_duration_ms: u64,
    pub last_error: Option<String>,
    /// `alpha`: it has not run yet.
    pub pending: bool,
}

/// A service's quorum (keepalived's `quorum`), as the checker last judged it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumStatus {
    pub service: crate::table::ServiceKey,
    pub up: bool,
    /// The sum of the weights of its live real servers.
    pub live: u64,
    /// The quorum as applied (lowered to the servers' total weight); None: any
    /// server up.
    pub quorum: Option<u32>,
    pub hysteresis: u32,
}
