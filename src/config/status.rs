//! The typed piece the reloader gives `uvs status` (and, through the daemon, `/metrics`):
//! what became of the configuration file, and the groups of virtual services it makes.
//! `Reloader::status` reads it.

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
    /// The groups of virtual services the applied file makes ([`super::group`]).
    #[serde(default)]
    pub groups: Vec<GroupStatus>,
}

/// One group of virtual services: its name and members, in the file's order; the
/// first is the one its real servers' checks are run for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    pub name: String,
    pub members: Vec<crate::table::ServiceKey>,
}

impl GroupStatus {
    /// The groups of `config`, in its order.
    pub fn of(config: &super::Config) -> Vec<GroupStatus> {
        let mut groups: Vec<GroupStatus> = Vec::new();
        for spec in &config.services {
            let Some(g) = &spec.group else { continue };
            match groups.last_mut() {
                Some(last) if last.name == g.name => last.members.push(spec.service.key),
                _ => groups.push(GroupStatus {
                    name: g.name.clone(),
                    members: vec![spec.service.key],
                }),
            }
        }
        groups
    }
}
