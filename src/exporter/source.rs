//! What the exporter reads of the running daemon besides the table: a narrow handle the
//! daemon passes in ([`Source`]), so that the exporter knows nothing of the daemon's
//! parts (health checks, reloader, data plane). The daemon builds [`State`] from its
//! status report at each render.

use crate::descriptors::DescriptorStatus;
use crate::proxy::udp::admission::UdpAdmissionStatus;
use crate::table::{ServerKey, ServiceKey, TableHandle};

/// The running daemon, as the exporter sees it.
pub trait Source: Send + Sync + 'static {
    /// The table the series are read from.
    fn table(&self) -> &TableHandle;
    /// The daemon's state now, apart from the table (read once per render).
    fn state(&self) -> State;
}

/// The daemon's state apart from the table, read at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// What the health checks know, one entry per checked real server.
    pub health: Vec<BackendHealth>,
    /// The quorum of each service that has one, or quorum commands.
    pub quorum: Vec<ServiceQuorum>,
    /// UDP flows open, the cap on them, and new flows dropped at the cap.
    pub udp_flows: u64,
    pub udp_flows_max: u64,
    pub udp_flows_dropped: u64,
    /// Persistence templates held, their cap, templates ended to make room, clients
    /// scheduled without one.
    pub persistence_templates: u64,
    pub templates_max: u64,
    pub templates_evicted: u64,
    pub templates_not_made: u64,
    /// TCP connections being proxied.
    pub connections_open: u64,
    /// The open-files limit and its split (userspace mode).
    pub descriptors: Option<DescriptorStatus>,
    /// New UDP flows refused, unanswered flows ended, by reason.
    pub udp: UdpAdmissionStatus,
    /// The configuration file's fate, when the daemon runs from one.
    pub config: Option<ConfigReloads>,
    /// Whether each of the table's sync daemons runs, by role, in either mode
    /// (userspace: uvs's socket; kernel: the kernel took it).
    pub sync_daemons: std::collections::BTreeMap<String, crate::sync::counters::DaemonState>,
    /// What uvs's own sync daemons did (userspace mode); None in kernel mode, where
    /// the kernel's threads do the work.
    pub sync: Option<crate::sync::counters::SyncStatus>,
}

/// What the health checks know of one real server of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendHealth {
    pub service: ServiceKey,
    pub server: ServerKey,
    pub up: bool,
    /// Failed checks in a row.
    pub failures: u32,
    /// How long the last check took, in milliseconds.
    pub last_duration_ms: u64,
    /// `alpha`: no check has ended yet, so it is down until a good one.
    pub pending: bool,
    /// Its checks are suspended (`ha_suspend`: its service's address is not here).
    pub suspended: bool,
    /// When the last check ended (seconds since the epoch); None before the first.
    pub last_check: Option<u64>,
    /// Why the last check failed, as the check said it (text from the real server's
    /// answer may be in it: the status page escapes it). None after a good check.
    pub last_error: Option<String>,
}

/// A service's quorum as the checks last judged it (keepalived's `quorum`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceQuorum {
    pub service: ServiceKey,
    pub up: bool,
    /// The sum of the weights of its live real servers.
    pub live: u64,
}

/// What became of the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigReloads {
    /// When the file was last applied (seconds since the epoch).
    pub applied_at: u64,
    /// Reloads applied and refused since start.
    pub reloads: u64,
    pub refused: u64,
    /// Whether the last load or reload was applied.
    pub last_applied: bool,
    /// The file, as given to `uvs run -c`.
    pub path: String,
    /// Why the last reload was refused, while it is the last (the status page shows it).
    pub last_error: Option<String>,
    /// The groups of virtual services the file makes, each its members in the file's
    /// order: the first is the one its real servers' checks are run (and reported) for.
    pub groups: Vec<Vec<ServiceKey>>,
}
