//! The director (LVS's name for the balancing host) as the data plane sees it: the
//! table, and what the data plane keeps about live traffic (connections, persistence
//! templates, UDP admission, the descriptor budget, its listeners, its own addresses).
//! The data plane's tcp and udp halves, the listener manager and the sweeper share one;
//! the daemon reads its typed piece of the status report ([`Director::report`]). It
//! imports downwards only (core, and the data plane's own types): who shows its state,
//! and in which mode, is the daemon's business.

use std::sync::Arc;
use std::time::Duration;

use crate::conn::ConnTable;
use crate::descriptors::{Budget, DescriptorStatus, METRICS_CONNECTIONS, Reserve};
use crate::persist::{TemplateStatus, Templates};
use crate::proxy::congestion::CongestionControl;
use crate::proxy::forward::TransferMode;
use crate::proxy::registry::{ListenerReport, Listeners};
use crate::proxy::udp::admission::{
    Admission, DEFAULT_MAX_FLOWS, DEFAULT_UNREPLIED_TIMEOUT, UdpAdmissionStatus,
};
use crate::table::{ConnEntry, OwnAddresses, TableHandle};
use crate::workers::Workers;

/// How often connections and templates are expired.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Settings of the data plane that are not part of the table.
#[derive(Debug, Clone, Copy)]
pub struct PlaneOptions {
    pub forwarding: TransferMode,
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
            forwarding: TransferMode::best(),
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
    /// What serves each listen address, and how each is doing.
    pub listeners: Listeners,
    /// The userspace sync daemons' state: the master's queue, the connections held
    /// from masters, the counters; and in either mode whether each of the table's
    /// daemons runs (kernel mode: written by the mirror).
    pub sync: crate::sync::Shared,
}

/// The data plane's piece of the status report, read at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaneReport {
    /// How TCP bytes move.
    pub forwarding: TransferMode,
    /// The TCP congestion control of connections from clients and to real servers
    /// (None: the system's).
    pub client_congestion: Option<CongestionControl>,
    pub server_congestion: Option<CongestionControl>,
    /// Every listen address the table wants, and how it is doing.
    pub listeners: Vec<ListenerReport>,
    /// TCP connections being proxied.
    pub live_connections: usize,
    /// UDP flows open, their cap, and new flows dropped at the cap.
    pub udp_flows: usize,
    pub max_udp_flows: usize,
    pub udp_flows_dropped: u64,
    /// New UDP flows refused and unanswered flows ended, by reason.
    pub udp: UdpAdmissionStatus,
    pub templates: TemplateStatus,
    /// What uvs's own sync daemons did.
    pub sync: crate::sync::counters::SyncStatus,
    /// TCP connections per worker thread, and connections handed to a less loaded one.
    pub worker_connections: Vec<usize>,
    pub handed_over: u64,
    /// The open-files limit, its split and what the data plane holds.
    pub descriptors: DescriptorStatus,
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
            listeners: Listeners::default(),
            sync: crate::sync::Shared::default(),
        }))
    }

    /// `-L -c` of the data plane: its persistence templates and connections. (In
    /// kernel mode the daemon lists the kernel's instead.)
    pub fn connections(&self) -> Vec<ConnEntry> {
        let timeouts = self.table.snapshot().timeouts();
        let mut all = self.templates.entries();
        all.extend(self.conns.entries(&timeouts));
        all.extend(self.sync.synced.entries(self.conns.clock.now_ms()));
        all
    }

    /// `conn` entered `state`: queued for the sync master when one runs
    /// (`sync::queue::SyncQueue::conn` says which states are sent).
    pub fn sync_conn(&self, conn: &crate::conn::Conn, state: crate::conn::State) {
        if self.sync.queue.is_on() {
            let timeouts = self.table.snapshot().timeouts();
            self.sync.queue.conn(conn, state, &timeouts);
        }
    }

    /// The director's own listen addresses, as the listener manager last saw them.
    pub fn own_addresses(&self) -> arc_swap::Guard<Arc<OwnAddresses>> {
        self.own.load()
    }

    pub fn set_own_addresses(&self, own: OwnAddresses) {
        self.own.store(Arc::new(own));
    }

    /// The open-files limit, its split and what the data plane holds now.
    pub fn descriptor_status(&self) -> DescriptorStatus {
        self.descriptors.status()
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
            oversized: c.oversized,
        }
    }

    /// The data plane's piece of the status report.
    pub fn report(&self) -> PlaneReport {
        PlaneReport {
            forwarding: self.options.forwarding,
            client_congestion: self.options.client_congestion,
            server_congestion: self.options.server_congestion,
            listeners: self.listeners.report(),
            live_connections: self.conns.live_streams(),
            udp_flows: self.udp_flows.count(),
            max_udp_flows: self.udp_flows.max(),
            udp_flows_dropped: self.udp_flows.dropped(),
            udp: self.udp_admission(),
            templates: self.templates.status(),
            sync: self.sync.status(),
            worker_connections: self.workers.loads(),
            handed_over: self.workers.handed_over(),
            descriptors: self.descriptor_status(),
        }
    }

    /// Expires connections and templates, and sums up the failures the log held back
    /// (`failure_log`), every second, forever.
    pub async fn sweep(self: Arc<Director>) {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let timeouts = self.table.snapshot().timeouts();
            // What the failure log held back, summed up once its interval is over.
            crate::proxy::failure_log::flush(&self.table);
            let swept = self.conns.sweep(&timeouts);
            self.udp_flows.expired_unreplied(swept.unreplied_closed);
            if self.sync.queue.is_on() {
                self.templates
                    .sweep_telling(&mut |t| self.sync.queue.template(t));
            } else {
                self.templates.sweep();
            }
            self.sync.synced.sweep(self.conns.clock.now_ms());
        }
    }
}
