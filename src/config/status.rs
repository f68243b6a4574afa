//! The typed piece the reloader gives `uvs status` (and, through the daemon, `/metrics`):
//! what became of the configuration file. `Reloader::status` reads it.

use serde::{Deserialize, Serialize};

/// What became of the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigStatus {
    pub path: String,
    /// When the file was last applied (seconds since the epoch).
    pub applied_at: u64,
    /// Reloads applied and refused since start.
    pub reloads: u64,
    pub refused: u64,
    /// Why the last reload was refused, if it was (cleared by the next good one).
    pub last_error: Option<String>,
}
