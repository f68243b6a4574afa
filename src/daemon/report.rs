//! The status report: what the running daemon says of itself (`uvs status`, and the
//! daemon's own `/metrics` series), built here and nowhere else. Each part gives a typed
//! piece of its own: the data plane its listeners, counts, descriptors, UDP admission,
//! templates and workers ([`PlaneReport`]); the reloader the configuration file's fate
//! ([`ConfigStatus`]); the health checks what they know of each server
//! ([`HealthStatus`]); the mode chooser where the traffic is balanced and why
//! ([`ModeChoice`]); the metrics endpoint where it is served or why not
//! ([`MetricsEndpoint`]). [`Reporter`] gathers them into a [`Report`]; the wire form
//! (`control::protocol::Status`) and the exporter's [`crate::exporter::State`] are made
//! from a `Report` (in `handles`), so the text `uvs status` prints comes from typed
//! fields, and tests look at the fields.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use super::reload::Reloader;
use crate::config::status::ConfigStatus;
use crate::control::protocol::{ListenerStatus, Status};
use crate::health::{Findings, HealthStatus, QuorumStatus};
use crate::kernel::mirror::Mirror;
use crate::proxy::congestion::CongestionControl;
use crate::proxy::director::{Director, PlaneReport};
use crate::table::ServiceEntry;

/// Where the traffic is balanced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// uvs moves the traffic itself.
    Userspace,
    /// The kernel's IPVS moves it; uvs programs it.
    Kernel,
}

impl Mode {
    /// As `uvs status` says it.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Userspace => "userspace",
            Mode::Kernel => "kernel",
        }
    }
}

/// The mode chooser's piece: the mode, and why, in words (None when nothing chose:
/// `uvs demo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeChoice {
    pub mode: Mode,
    pub reason: Option<String>,
}

/// The metrics endpoint's piece: where it serves, or why it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsEndpoint {
    /// Serving /metrics at this address; `page`: the status page at / too.
    Serving { at: SocketAddr, page: bool },
    /// The bind failed; the daemon runs on without metrics.
    NotServed { addr: SocketAddr, error: String },
}

/// What the daemon says of itself at one moment; the table's services are read apart
/// (see [`Report::status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub version: &'static str,
    pub mode: ModeChoice,
    pub plane: PlaneReport,
    /// One entry per checked real server.
    pub health: Vec<HealthStatus>,
    /// The quorum of each service that has one (keepalived's `quorum`).
    pub quorum: Vec<QuorumStatus>,
    /// None without `--metrics`.
    pub metrics: Option<MetricsEndpoint>,
    /// None without a configuration file.
    pub config: Option<ConfigStatus>,
}

/// Gathers the parts' pieces. The daemon makes one at start; the parts that come later
/// (the reloader, the metrics endpoint) are added once each.
pub struct Reporter {
    director: Arc<Director>,
    health: Arc<Findings>,
    /// Why the daemon balances where it does (None when nothing chose: `uvs demo`). The
    /// mode itself is the director's (`options.userspace`), not kept twice.
    mode_reason: Option<String>,
    reloader: OnceLock<Arc<Reloader>>,
    metrics: OnceLock<MetricsEndpoint>,
    /// Kernel mode's mirror: the sync daemons' commands and listing go to the kernel
    /// through it (`handles`, `sync`).
    kernel: OnceLock<Arc<Mutex<Mirror>>>,
}

impl Reporter {
    /// A reporter for `director` (which knows where it balances), with why it balances
    /// there, and no health findings yet for the checks to write.
    pub fn new(director: Arc<Director>, mode_reason: Option<String>) -> Arc<Reporter> {
        Arc::new(Reporter {
            director,
            health: Arc::default(),
            mode_reason,
            reloader: OnceLock::new(),
            metrics: OnceLock::new(),
            kernel: OnceLock::new(),
        })
    }

    pub fn director(&self) -> &Arc<Director> {
        &self.director
    }

    /// What the health checks find, which they write (the reloader's checker gets it).
    pub fn health(&self) -> &Arc<Findings> {
        &self.health
    }

    pub fn mode(&self) -> Mode {
        if self.director.options.userspace {
            Mode::Userspace
        } else {
            Mode::Kernel
        }
    }

    /// The reloader, whose piece is the configuration file's fate. Later calls are
    /// ignored: a daemon has one.
    pub fn set_reloader(&self, reloader: Arc<Reloader>) {
        let _ = self.reloader.set(reloader);
    }

    /// Kernel mode's mirror. Later calls are ignored: a daemon has one.
    pub fn set_kernel(&self, mirror: Arc<Mutex<Mirror>>) {
        let _ = self.kernel.set(mirror);
    }

    /// Kernel mode's mirror (None in userspace mode).
    pub fn kernel(&self) -> Option<&Arc<Mutex<Mirror>>> {
        self.kernel.get()
    }

    /// Where the metrics endpoint serves, or why not. Later calls are ignored.
    pub fn set_metrics(&self, endpoint: MetricsEndpoint) {
        let _ = self.metrics.set(endpoint);
    }

    /// Every part's piece, now.
    pub fn report(&self) -> Report {
        Report {
            version: env!("CARGO_PKG_VERSION"),
            mode: ModeChoice {
                mode: self.mode(),
                reason: self.mode_reason.clone(),
            },
            plane: self.director.report(),
            health: self.health.statuses(),
            quorum: self.health.quorum_statuses(),
            metrics: self.metrics.get().cloned(),
            config: self.config(),
        }
    }

    /// The reloader (None without a configuration file).
    pub fn reloader(&self) -> Option<&Arc<Reloader>> {
        self.reloader.get()
    }

    /// The reloader's piece: the configuration file's fate (None without one).
    pub fn config(&self) -> Option<ConfigStatus> {
        self.reloader.get().and_then(|r| r.status())
    }
}

impl Report {
    /// The wire form of `uvs status`, with the table's `services`. In kernel mode the
    /// data plane's workers and descriptors serve nothing, so they are left out.
    pub fn status(&self, services: Vec<ServiceEntry>) -> Status {
        let plane = &self.plane;
        let userspace = self.mode.mode == Mode::Userspace;
        Status {
            version: self.version.to_string(),
            mode: self.mode.mode.label().to_string(),
            forwarding: plane.forwarding.to_string(),
            services,
            listeners: plane
                .listeners
                .iter()
                .map(|l| ListenerStatus {
                    listen: l.listen,
                    service: l.state.service,
                    state: match &l.state.error {
                        None => "listening".to_string(),
                        Some(e) => format!("cannot listen: {e}; retrying"),
                    },
                })
                .collect(),
            // The table's, which the caller has (`Handles::status`).
            shadowed: Vec::new(),
            live_connections: plane.live_connections,
            udp_flows: plane.udp_flows,
            max_udp_flows: plane.max_udp_flows,
            udp_flows_dropped: plane.udp_flows_dropped,
            config: self.config.clone(),
            health: self.health.clone(),
            quorum: self.quorum.clone(),
            metrics: self.metrics.as_ref().map(|m| match m {
                MetricsEndpoint::Serving { at, page: true } => format!("at http://{at}/metrics"),
                // `uvs status` names the page only from the first form.
                MetricsEndpoint::Serving { at, page: false } => {
                    format!("at http://{at}/metrics (status page off)")
                }
                MetricsEndpoint::NotServed { addr, error } => {
                    format!("not served: cannot listen on {addr}: {error}")
                }
            }),
            mode_reason: self.mode.reason.clone(),
            congestion: congestion(plane.client_congestion, plane.server_congestion),
            worker_connections: if userspace {
                plane.worker_connections.clone()
            } else {
                Vec::new()
            },
            handed_over: plane.handed_over,
            descriptors: userspace.then(|| plane.descriptors.clone()),
            udp: plane.udp.clone(),
            templates: plane.templates,
            // The table's, which the caller has (`Handles::status`).
            global_access: None,
            global_limits: None,
            sync_daemons: Vec::new(),
            sync: plane.sync.clone(),
        }
    }
}

/// The congestion control of both TCP legs, in words; None when neither was chosen.
fn congestion(
    client: Option<CongestionControl>,
    server: Option<CongestionControl>,
) -> Option<String> {
    if client.is_none() && server.is_none() {
        return None;
    }
    let name = |cc: Option<CongestionControl>| {
        cc.map_or_else(|| "the system's".to_string(), |cc| cc.to_string())
    };
    Some(format!(
        "clients {}, real servers {}",
        name(client),
        name(server)
    ))
}

#[cfg(test)]
mod tests;
