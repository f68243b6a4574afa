//! The director (LVS's name for the balancing host) as the daemon runs it: the table,
//! and what the data plane keeps about live traffic (connections, persistence
//! templates, listeners). The control server, the data plane and the sweepers share one.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::AbortHandle;

use crate::conn::ConnTable;
use crate::control::protocol::{
    ConfigStatus, DescriptorStatus, ListenerStatus, Status, TemplateStatus, UdpAdmissionStatus,
};
use crate::descriptors::{Budget, METRICS_CONNECTIONS, Reserve};
use crate::persist::Templates;
use crate::proxy::congestion::CongestionControl;
use crate::proxy::forward::Forwarding;
use crate::proxy::udp::Group;
use crate::proxy::udp::admission::{Admission, DEFAULT_MAX_FLOWS, DEFAULT_UNREPLIED_TIMEOUT};
use crate::table::{ConnEntry, ListenAddr, OwnAddresses, ServiceKey, TableHandle};
use crate::workers::Workers;

/// How often connections and templates are expired.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// What a listen address is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerState {
    pub service: ServiceKey,
    /// None when listening, else why not.
    pub error: Option<String>,
}

/// Settings of the data plane that are not part of the table.
#[derive(Debug, Clone, Copy)]
pub struct PlaneOptions {
    pub forwarding: Forwarding,
    /// Worker threads serving connections.
    pub threads: usize,
    /// The most UDP flows open at once.
    pub max_udp_flows: usize,
    /// How long a UDP flow lives before its real server answers.
    pub udp_unreplied_timeout: std::time::Duration,
    /// The most UDP flows one client address may hold.
    pub udp_flows_per_source: Option<u32>,
    /// The most persistence templates held at once.
    pub max_templates: usize,
    /// How long a TCP connect to a real server may take, unless the service says.
    pub connect_timeout: std::time::Duration,
    /// Other real servers tried after a failed connect.
    pub connect_retries: u32,
    /// Whether uvs moves the traffic itself (false in kernel mode: the kernel does).
    pub userspace: bool,
    /// TCP congestion control of connections accepted from clients (None: the system's).
    pub client_congestion: Option<CongestionControl>,
    /// TCP congestion control of connections to real servers (None: the system's).
    pub server_congestion: Option<CongestionControl>,
    /// The process's open-files limit (None: unknown, no budget is kept).
    pub open_files: Option<u64>,
    /// The most TCP connections proxied at once (`--max-connections`).
    pub max_connections: Option<u32>,
    /// Connections the metrics endpoint serves at once (part of the reserve).
    pub metrics_connections: usize,
}

impl Default for PlaneOptions {
    fn default() -> PlaneOptions {
        PlaneOptions {
            forwarding: Forwarding::best(),
            threads: Workers::default_count(),
            max_udp_flows: DEFAULT_MAX_FLOWS,
            udp_unreplied_timeout: DEFAULT_UNREPLIED_TIMEOUT,
            udp_flows_per_source: None,
            max_templates: crate::persist::DEFAULT_MAX_TEMPLATES,
            connect_timeout: crate::table::ServiceOptions::DEFAULT_CONNECT_TIMEOUT,
            connect_retries: 1,
            userspace: true,
            client_congestion: None,
            server_congestion: None,
            open_files: None,
            max_connections: None,
            metrics_connections: METRICS_CONNECTIONS,
        }
    }
}

#[derive(Debug)]
pub struct Director {
    pub table: Arc<TableHandle>,
    pub conns: ConnTable,
    pub templates: Templates,
    pub options: PlaneOptions,
    pub workers: Workers,
    /// Who gets a UDP flow, and how many are open.
    pub udp_flows: Admission,
    /// The data plane's share of the open-files limit.
    pub descriptors: Arc<Budget>,
    /// The addresses the table listens on, which no connection may be forwarded to
    /// (kept by the listener manager).
    own: arc_swap::ArcSwap<OwnAddresses>,
    listeners: Mutex<BTreeMap<ListenAddr, ListenerState>>,
    /// What serves each address being listened on.
    serving: Mutex<HashMap<ListenAddr, Serving>>,
    /// UDP addresses the table dropped whose flows are still running.
    draining: Mutex<HashMap<ListenAddr, Arc<Group>>>,
    /// The configuration file's fate, kept by the reloader.
    pub config: Mutex<Option<ConfigStatus>>,
    /// What the health checks know of the real servers.
    pub health: Arc<crate::health::Book>,
    /// Where `/metrics` is served, or why not (for `uvs status`).
    pub metrics_endpoint: Mutex<Option<String>>,
    /// Why the daemon balances where it does (for `uvs status`).
    pub mode_reason: Mutex<Option<String>>,
}

/// What serves a listen address.
#[derive(Debug)]
pub enum Serving {
    /// TCP: an accept loop per worker, each on its own copy of the listening socket,
    /// whose descriptors are held from the budget.
    Tcp(Vec<AbortHandle>, crate::descriptors::Held),
    /// UDP: a socket and receive loop per worker, with their flows.
    Udp(Arc<Group>),
}

impl Director {
    /// A director with its worker threads started.
    pub fn new(table: Arc<TableHandle>, options: PlaneOptions) -> std::io::Result<Arc<Director>> {
        let conns = ConnTable::new();
        conns.set_unreplied_timeout(options.udp_unreplied_timeout);
        let templates = Templates::new(conns.clock, options.max_templates);
        let workers = Workers::start(options.threads)?;
        let open_files = options
            .open_files
            .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let reserve = Reserve::for_limit(open_files, workers.len(), options.metrics_connections);
        let descriptors = Arc::new(Budget::new(
            open_files,
            reserve,
            options.max_connections.map(|n| n as usize),
        ));
        Ok(Arc::new(Director {
            table,
            conns,
            templates,
            options,
            workers,
            udp_flows: Admission::new(options.max_udp_flows, options.udp_flows_per_source),
            descriptors,
            own: arc_swap::ArcSwap::from_pointee(OwnAddresses::default()),
            listeners: Mutex::new(BTreeMap::new()),
            serving: Mutex::new(HashMap::new()),
            draining: Mutex::new(HashMap::new()),
            config: Mutex::new(None),
            health: Arc::default(),
            metrics_endpoint: Mutex::new(None),
            mode_reason: Mutex::new(None),
        }))
    }

    /// `-L -c`: connections and persistence templates.
    pub fn connections(&self) -> Vec<ConnEntry> {
        if !self.options.userspace {
            // Kernel mode: the kernel's own table, as ipvsadm reads it.
            static UNREADABLE: crate::rate_limit::RateLimit = crate::rate_limit::RateLimit::new();
            return crate::kernel::connections::read().unwrap_or_else(|e| {
                UNREADABLE.warn(|suppressed| {
                    tracing::warn!(error = %e, suppressed, "cannot read the kernel's connections");
                });
                Vec::new()
            });
        }
        let timeouts = self.table.snapshot().timeouts();
        let mut all = self.templates.entries();
        all.extend(self.conns.entries(&timeouts));
        all
    }

    /// The director's own listen addresses, as the listener manager last saw them.
    pub fn own_addresses(&self) -> arc_swap::Guard<Arc<OwnAddresses>> {
        self.own.load()
    }

    pub fn set_own_addresses(&self, own: OwnAddresses) {
        self.own.store(Arc::new(own));
    }

    /// Records what a listen address is doing (the listener manager calls this).
    pub fn set_listener(&self, listen: ListenAddr, state: Option<ListenerState>) {
        let mut board = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        match state {
            Some(s) => {
                board.insert(listen, s);
            }
            None => {
                board.remove(&listen);
            }
        }
    }

    pub fn listener_states(&self) -> Vec<(ListenAddr, ListenerState)> {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    fn serving_map(&self) -> std::sync::MutexGuard<'_, HashMap<ListenAddr, Serving>> {
        self.serving.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn draining_map(&self) -> std::sync::MutexGuard<'_, HashMap<ListenAddr, Arc<Group>>> {
        self.draining.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The addresses being listened on.
    pub fn accepting(&self) -> Vec<ListenAddr> {
        self.serving_map().keys().copied().collect()
    }

    pub fn is_accepting(&self, listen: &ListenAddr) -> bool {
        self.serving_map().contains_key(listen)
    }

    pub fn start_accepting(&self, listen: ListenAddr, service: ServiceKey, serving: Serving) {
        self.serving_map().insert(listen, serving);
        self.set_listener(
            listen,
            Some(ListenerState {
                service,
                error: None,
            }),
        );
    }

    /// A UDP address dropped by the table and wanted again while its flows still run:
    /// the same sockets take new flows again.
    pub fn take_back_draining(&self, listen: &ListenAddr) -> Option<Arc<Group>> {
        let group = self.draining_map().remove(listen)?;
        group.revive().then_some(group)
    }

    /// Stops listening on one address. TCP: the listener closes, established
    /// connections go on. UDP: no new flows; the sockets stay for the open ones.
    pub fn stop_accepting(&self, listen: &ListenAddr) {
        match self.serving_map().remove(listen) {
            Some(Serving::Tcp(tasks, _held)) => tasks.iter().for_each(AbortHandle::abort),
            Some(Serving::Udp(group)) => {
                group.drain();
                let mut draining = self.draining_map();
                draining.retain(|_, g| !g.is_closed());
                draining.insert(*listen, group);
            }
            None => {}
        }
        self.set_listener(*listen, None);
    }

    /// Closes every listener (shutdown: no new connections, the open ones drain; UDP
    /// flows end now, having nothing to finish).
    pub fn stop_listening(&self) {
        for listen in self.accepting() {
            self.stop_accepting(&listen);
        }
        for (_, group) in self.draining_map().drain() {
            group.close();
        }
    }

    /// The congestion control of both TCP legs, in words; None when neither was chosen.
    fn congestion(&self) -> Option<String> {
        let (client, server) = (
            self.options.client_congestion,
            self.options.server_congestion,
        );
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

    /// The open-files limit, its split and what the data plane holds now.
    pub fn descriptor_status(&self) -> DescriptorStatus {
        let b = &self.descriptors;
        let r = b.reserve();
        let n = |v: usize| v as u64;
        DescriptorStatus {
            open_files: n(b.open_files()),
            reserved: n(r.total()),
            control_clients: n(r.control_clients),
            metrics_connections: n(r.metrics_connections),
            health_probes: n(r.health_probes),
            limit: n(b.limit()),
            used: n(b.used()),
            max_connections: (b.max_connections() != usize::MAX).then(|| n(b.max_connections())),
            connections: n(b.connections()),
            pauses: n(b.pauses()),
        }
    }

    /// New UDP flows refused and unanswered flows ended, by reason.
    pub fn udp_admission(&self) -> UdpAdmissionStatus {
        let c = self.udp_flows.counts();
        UdpAdmissionStatus {
            unreplied_timeout_ms: self.conns.unreplied_ms(),
            per_source: self.options.udp_flows_per_source,
            refused_per_source: c.refused_per_source,
            refused_descriptors: c.refused_descriptors,
            refused_socket: c.refused_socket,
            evicted: c.evicted,
            evicted_answered: c.evicted_answered,
            unreplied_expired: c.unreplied_expired,
        }
    }

    /// `uvs status`.
    pub fn status(&self) -> Status {
        let snapshot = self.table.snapshot();
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            mode: if self.options.userspace {
                "userspace"
            } else {
                "kernel"
            }
            .to_string(),
            forwarding: self.options.forwarding.to_string(),
            services: snapshot.entries(),
            listeners: self
                .listener_states()
                .into_iter()
                .map(|(listen, s)| ListenerStatus {
                    listen,
                    service: s.service,
                    state: s.error.unwrap_or_else(|| "listening".to_string()),
                })
                .collect(),
            live_connections: self.conns.live_streams(),
            udp_flows: self.udp_flows.count(),
            max_udp_flows: self.udp_flows.max(),
            udp_flows_dropped: self.udp_flows.dropped(),
            health: self.health.statuses(),
            mode_reason: self
                .mode_reason
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            congestion: self.congestion(),
            // In kernel mode the workers serve nothing.
            worker_connections: if self.options.userspace {
                self.workers.loads()
            } else {
                Vec::new()
            },
            handed_over: self.workers.handed_over(),
            descriptors: self.options.userspace.then(|| self.descriptor_status()),
            udp: self.udp_admission(),
            templates: TemplateStatus {
                count: self.templates.len() as u64,
                max: self.templates.max() as u64,
                evicted: self.templates.evicted(),
                not_made: self.templates.not_made(),
            },
            metrics: self
                .metrics_endpoint
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            config: self
                .config
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Expires connections and templates, forever.
    pub async fn sweep(self: Arc<Director>) {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let timeouts = self.table.snapshot().timeouts();
            let swept = self.conns.sweep(&timeouts);
            self.udp_flows.expired_unreplied(swept.unreplied_closed);
            self.templates.sweep();
        }
    }
}
