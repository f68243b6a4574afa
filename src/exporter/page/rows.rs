//! What the status page shows, read from one table snapshot and the daemon's [`State`]:
//! each virtual service with its real servers, each server's health as the checks and
//! its weight make it, and the sums of the header. No lock but the health checks'
//! brief one (taken by the daemon to build `State`): counters, rates and connection
//! counts are the table's atomics and estimators, as `/metrics` reads them.
//! `page::html` writes these rows out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crate::exporter::source::{BackendHealth, State};
use crate::stats::{Counters, Rates, Stats};
use crate::table::{Protocol, RealServer, ServerKey, Service, ServiceKey, Table};

/// A real server's health as the page colours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Checked and up, with a weight.
    Up,
    /// The checks find it down (in the table at weight 0 when quiescent, else out).
    Down,
    /// Weight 0: takes no new connections (set so by hand, or up again with no weight).
    Quiescent,
    /// No check has ended yet (`alpha`): down until its first good one.
    Pending,
    /// Its checks are suspended (`ha_suspend`).
    Suspended,
    /// Not checked: in service as long as it has a weight.
    Unchecked,
}

impl Health {
    /// What a server with these checks and this weight in force is.
    pub fn of(checked: Option<&BackendHealth>, weight: u32) -> Health {
        match checked {
            Some(h) if h.suspended => Health::Suspended,
            Some(h) if h.pending => Health::Pending,
            Some(h) if !h.up => Health::Down,
            _ if weight == 0 => Health::Quiescent,
            Some(_) => Health::Up,
            None => Health::Unchecked,
        }
    }

    /// The word in its cell.
    pub fn label(self) -> &'static str {
        match self {
            Health::Up => "UP",
            Health::Down => "DOWN",
            Health::Quiescent => "quiescent",
            Health::Pending => "pending",
            Health::Suspended => "suspended",
            Health::Unchecked => "no check",
        }
    }

    /// Its CSS class (the colour).
    pub fn class(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Down => "down",
            Health::Quiescent => "quiescent",
            Health::Pending => "pending",
            Health::Suspended => "suspended",
            Health::Unchecked => "unchecked",
        }
    }

    /// Whether new connections may go to it.
    pub fn serving(self) -> bool {
        matches!(self, Health::Up | Health::Unchecked)
    }
}

/// The figures of one row: a real server's, or a service's sums.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    pub active: u64,
    pub inactive: u64,
    /// Since start (monotonic, as `/metrics`), not since the last `-Z`.
    pub totals: Counters,
    /// The rate estimator's, as `uvsadm -L --rate` shows them.
    pub rates: Rates,
    /// Failed connects (UDP: flows ended by ICMP errors), every reason.
    pub failures: u64,
}

impl Figures {
    fn of_stats(stats: &Stats) -> Figures {
        Figures {
            totals: stats.totals(),
            rates: stats.view().rates,
            ..Figures::default()
        }
    }
}

/// One real server's row.
#[derive(Debug, Clone)]
pub struct ServerRow<'a> {
    pub key: ServerKey,
    /// None for a server its checks took out of the table.
    pub server: Option<&'a RealServer>,
    pub health: Health,
    pub checked: Option<&'a BackendHealth>,
    pub figures: Figures,
}

impl ServerRow<'_> {
    /// The weight in force, as listings show it (0 while draining or out of the table,
    /// ramped in slow start).
    pub fn weight(&self) -> u32 {
        self.server.map_or(0, RealServer::weight_in_force)
    }

    /// The weight it was given (what a check that quiesced it, or an undrain, will
    /// give back).
    pub fn configured_weight(&self) -> Option<u32> {
        self.server.map(|r| {
            if r.asked_weight == 0 {
                r.last_weight
            } else {
                r.asked_weight
            }
        })
    }

    /// What the pool controls are doing to it now, for its health cell: `draining (3
    /// open, 25s left)`, `ejected (30s left)`, `slow start 40%`, `at limit 2/2`; None
    /// when none is.
    pub fn pool(&self, now_ms: u64) -> Option<String> {
        let r = self.server?;
        let mut notes = Vec::new();
        if let Some(d) = r.drain {
            let mut note = format!("draining ({} open", r.state.connections_left());
            if let Some(left) = d.left_ms(now_ms) {
                note.push_str(&format!(", {}s left", left.div_ceil(1000)));
            }
            notes.push(note + ")");
        } else if let Some(share) = r.state.slow_start_share() {
            notes.push(format!("slow start {}%", share / 10));
        }
        if let Some(left) = r.state.ejection.left_ms(now_ms) {
            notes.push(format!("ejected ({}s left)", left.div_ceil(1000)));
        }
        let max = r.state.max_connections();
        if max != 0 && r.state.open() >= max {
            notes.push(format!("at limit {}/{max}", r.state.open()));
        }
        (!notes.is_empty()).then(|| notes.join("; "))
    }
}

/// One virtual service with its real servers.
#[derive(Debug, Clone)]
pub struct ServiceRow<'a> {
    pub service: &'a Service,
    pub servers: Vec<ServerRow<'a>>,
    /// The sums of its servers' connections and failures, its own counters and rates.
    pub figures: Figures,
    /// Connections retried elsewhere, and reset (UDP: dropped) for want of a server.
    pub retries: u64,
    pub unavailable: u64,
}

impl ServiceRow<'_> {
    /// Servers that take new connections, of all.
    pub fn serving(&self) -> (usize, usize) {
        let up = self.servers.iter().filter(|s| s.health.serving()).count();
        (up, self.servers.len())
    }

    pub fn udp(&self) -> bool {
        matches!(
            self.service.key,
            ServiceKey::Inet {
                protocol: Protocol::Udp,
                ..
            }
        )
    }
}

/// The checks' findings, by service and by server (looked up, not searched: a service
/// may have thousands of servers). A group's real servers are checked once, for its
/// first member (as `uvs status` says): every member's servers read those findings, by
/// address (a member's server may listen on the member's own port).
#[derive(Debug, Default)]
pub struct Checks<'a> {
    by_service: HashMap<ServiceKey, Vec<&'a BackendHealth>>,
    by_server: HashMap<(ServiceKey, ServerKey), &'a BackendHealth>,
    by_address: HashMap<(ServiceKey, IpAddr), &'a BackendHealth>,
    /// A group member's first member, the one checked.
    checked_as: HashMap<ServiceKey, ServiceKey>,
}

impl<'a> Checks<'a> {
    pub fn of(state: &'a State) -> Checks<'a> {
        let mut checks = Checks::default();
        for h in &state.health {
            checks.by_service.entry(h.service).or_default().push(h);
            checks.by_server.insert((h.service, h.server), h);
            checks
                .by_address
                .entry((h.service, h.server.addr))
                .or_insert(h);
        }
        for members in state.config.iter().flat_map(|c| &c.groups) {
            if let Some((first, rest)) = members.split_first() {
                for m in rest {
                    checks.checked_as.insert(*m, *first);
                }
            }
        }
        checks
    }

    /// The service whose checks stand for `key`'s: its group's first member, or itself.
    fn checked(&self, key: &ServiceKey) -> ServiceKey {
        self.checked_as.get(key).copied().unwrap_or(*key)
    }

    fn of_service(&self, key: &ServiceKey) -> &[&'a BackendHealth] {
        self.by_service
            .get(&self.checked(key))
            .map_or(&[], Vec::as_slice)
    }

    fn of_server(&self, service: &ServiceKey, server: &ServerKey) -> Option<&'a BackendHealth> {
        let checked = self.checked(service);
        self.by_server
            .get(&(checked, *server))
            .or_else(|| {
                (checked != *service)
                    .then(|| self.by_address.get(&(checked, server.addr)))
                    .flatten()
            })
            .copied()
    }
}

/// `service`'s row: its servers in list order, then the checked servers its checks took
/// out of the table (they are still the configuration's, and down).
pub fn service_row<'a>(service: &'a Arc<Service>, checks: &Checks<'a>) -> ServiceRow<'a> {
    let mut servers: Vec<ServerRow<'a>> = service
        .servers
        .iter()
        .map(|r| {
            let key = r.key();
            let h = checks.of_server(&service.key, &key);
            let f = &r.state.connect_failures;
            let failures = [&f.refused, &f.timeout, &f.other, &f.looped, &f.source]
                .iter()
                .map(|n| n.load(Relaxed))
                .fold(0u64, u64::saturating_add);
            ServerRow {
                key,
                server: Some(r),
                health: Health::of(h, r.weight),
                checked: h,
                figures: Figures {
                    active: r.state.active().into(),
                    inactive: r.state.inactive().into(),
                    failures,
                    ..Figures::of_stats(&r.state.stats)
                },
            }
        })
        .collect();
    let checked = checks.of_service(&service.key);
    let listed = servers.iter().filter(|s| s.checked.is_some()).count();
    if listed < checked.len() {
        let keys: std::collections::HashSet<ServerKey> =
            service.servers.iter().map(RealServer::key).collect();
        let addresses: std::collections::HashSet<IpAddr> =
            service.servers.iter().map(|r| r.addr).collect();
        let grouped = checks.checked(&service.key) != service.key;
        let in_table = |h: &&&BackendHealth| {
            keys.contains(&h.server) || (grouped && addresses.contains(&h.server.addr))
        };
        for h in checked.iter().filter(|h| !in_table(h)) {
            servers.push(ServerRow {
                key: h.server,
                server: None,
                health: Health::of(Some(h), 0),
                checked: Some(h),
                figures: Figures::default(),
            });
        }
    }
    let mut figures = Figures::of_stats(&service.state.stats);
    for s in &servers {
        figures.active += s.figures.active;
        figures.inactive += s.figures.inactive;
        figures.failures = figures.failures.saturating_add(s.figures.failures);
    }
    ServiceRow {
        service,
        servers,
        figures,
        retries: service.state.retries.load(Relaxed),
        unavailable: service.state.unavailable.load(Relaxed),
    }
}

/// The header's counts, over the whole table (however much of it the page shows).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub services: usize,
    pub servers: usize,
    pub up: usize,
    pub down: usize,
    pub quiescent: usize,
    pub unchecked: usize,
    /// Pending or suspended.
    pub pending: usize,
    pub active: u64,
    pub rates: Rates,
    pub totals: Counters,
}

/// Counts every service and server of `services` (cheap: no row is built).
pub fn summary(table: &Table, services: &[&Arc<Service>], checks: &Checks<'_>) -> Summary {
    let mut sum = Summary {
        services: services.len(),
        rates: table.totals().view().rates,
        totals: table.totals().totals(),
        ..Summary::default()
    };
    for s in services {
        let mut listed = 0;
        for r in &s.servers {
            let h = checks.of_server(&s.key, &r.key());
            listed += usize::from(h.is_some());
            sum.active += u64::from(r.state.active());
            count(&mut sum, Health::of(h, r.weight));
        }
        // Checked servers out of the table are down.
        for _ in listed..checks.of_service(&s.key).len() {
            count(&mut sum, Health::Down);
        }
    }
    sum
}

fn count(sum: &mut Summary, health: Health) {
    sum.servers += 1;
    match health {
        Health::Up => sum.up += 1,
        Health::Down => sum.down += 1,
        Health::Quiescent => sum.quiescent += 1,
        Health::Unchecked => sum.unchecked += 1,
        Health::Pending | Health::Suspended => sum.pending += 1,
    }
}
