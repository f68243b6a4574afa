//! The virtual-server table: the single source of truth of uvs.
//!
//! Writers (uvsadm over the control socket, the config loader, health checks) send typed
//! [`Command`]s; [`Table::apply`] is the one place that changes the table, and it refuses
//! exactly what the kernel refuses, in the kernel's order, with the kernel's error. The
//! [`TableHandle`] publishes each new table as an immutable snapshot that readers (data
//! plane, listings, metrics, kernel backend) load without locking; live counters sit
//! behind `Arc`s so they survive edits.
//!
//! All or nothing, by construction: `Table::apply` changes only the table it is given
//! (the handle gives it a clone of the running one, whose maps are copied on write) and
//! never the live state that table shares with the running one. What a command must do
//! to that state (mark a removed server unavailable, mirror an edited server's weight and
//! thresholds, zero counters on `-Z`) it returns as [`Effects`], and the handle carries
//! them out only after the whole batch was accepted and the new snapshot stored (see
//! [`effect`]). A refused batch is dropped with its effects, and nothing a reader can see
//! has changed; the writers of the shared marks cannot even be called from `apply`.
//! Single commands go through the same path as a batch of one.

pub mod access;
pub mod admission;
pub mod command;
pub mod effect;
pub mod ejection;
pub mod entry;
pub mod error;
pub mod key;
pub mod limit;
pub mod listener;
pub mod loops;
pub mod order;
pub mod pool;
pub mod queue;
pub mod real_server;
pub mod server_address;
pub mod service;
pub mod slow_start;
pub mod source;
pub mod sources;
pub mod sync;
pub mod timeouts;

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

pub use admission::Admission;
pub use command::{Command, ServerConfig, ServerOptions, ServiceConfig};
pub use effect::{Effects, Retired};
pub use entry::{
    ConnEntry, EjectionCounts, FailureCounts, Info, QueueCounts, ServerEntry, ServiceEntry,
};
pub use error::TableError;
pub use key::{Family, Protocol, ServerKey, ServiceKey};
pub use listener::{ListenAddr, ListenRule};
pub use loops::{Loop, OwnAddresses};
pub use real_server::{Forward, RealServer, RealServerState, Tunnel, TunnelChecksum, TunnelKind};
pub use server_address::{AddressClassifier, HostInterfaces, UnicastOnly};
pub use service::{
    AcceptProxy, Netmask, PersistenceEngine, ProxyProtocol, ProxyTlvs, QueueOptions, Service,
    ServiceFlags, ServiceOptions, ServiceState,
};
pub use sync::{SyncDaemon, SyncDaemons, SyncFromFile, SyncRole};
pub use timeouts::Timeouts;

use crate::lock::Locked;
use crate::sched::{ListChange, Scheduler};
use crate::stats::Stats;
use effect::{Effect, Note};

/// The whole table at one moment. Cloning is O(1) and a change is O(log n): the
/// service map is persistent (structurally shared between snapshots), so publishing a
/// snapshot per command stays cheap on tables of many thousands of services.
#[derive(Debug, Clone, Default)]
pub struct Table {
    services: imbl::HashMap<ServiceKey, Arc<Service>>,
    listeners: imbl::HashMap<ListenAddr, Option<u32>>,
    timeouts: Timeouts,
    next_created: u64,
    /// Services created before this number were in a published table: a server added
    /// to one, or brought in, begins a slow start (`slow_start`); servers that come
    /// with a new service (the daemon's start, a reload adding the service) do not, as
    /// HAProxy's `slowstart` never applies when it starts.
    published: u64,
    totals: Arc<Stats>,
    /// The access lists and per-client limits of every service (`[global]`), checked
    /// before each service's own.
    admission: Admission,
    /// What the global admission refused and the sources its limits track: kept
    /// across edits, as the totals are.
    admission_state: Arc<admission::GlobalState>,
    /// The connection-sync daemons asked for (`--start-daemon`, the file's `[sync]`).
    sync: SyncDaemons,
    /// The roles whose daemon in `sync` came from a configuration file
    /// ([`Source::File`]): the file's `[sync]` owns them (`kernel::daemon_mirror`).
    sync_from_file: SyncFromFile,
}

impl Table {
    pub fn new() -> Table {
        Table::default()
    }

    pub fn service(&self, key: &ServiceKey) -> Option<&Arc<Service>> {
        self.services.get(key)
    }

    pub fn len(&self) -> usize {
        self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The connection-sync daemons the table asks for: as the daemon gave them, which
    /// is resolved for the interface (`SyncDaemon::resolved`, `daemon::sync`).
    pub fn sync_daemons(&self) -> &SyncDaemons {
        &self.sync
    }

    /// Which of [`Table::sync_daemons`] a configuration file's reload started
    /// ([`Source::File`]); the others came from uvsadm.
    pub fn sync_from_file(&self) -> SyncFromFile {
        self.sync_from_file
    }

    /// The access lists and limits of every service (`Command::SetAdmission`).
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// The global access list and what it refused, for `uvs status`; None without one.
    pub fn global_access_entry(&self) -> Option<entry::GlobalAccessEntry> {
        let list = self.admission.access.as_ref()?;
        Some(entry::GlobalAccessEntry {
            allow: list.allow().len(),
            deny: list.deny().len(),
            deny_action: self.admission.deny_action.name().to_string(),
            close_denied: self.admission.close_denied,
            refused: (self.admission_state.counts.refused_access)
                .load(std::sync::atomic::Ordering::Relaxed),
            rules: list.refusals(),
        })
    }

    /// The global per-client limits with what they track and refused (`uvs status`).
    pub fn global_limits(&self) -> Option<admission::GlobalLimitsView> {
        self.admission_state.limits_view(&self.admission)
    }

    /// The global admission's live state.
    pub fn admission_state(&self) -> &Arc<admission::GlobalState> {
        &self.admission_state
    }

    /// Counters over all services, past and present.
    pub fn totals(&self) -> &Stats {
        &self.totals
    }

    /// Services in the order the kernel would dump them (see [`order`]).
    pub fn services(&self) -> Vec<&Arc<Service>> {
        // The position is a hash of the key: computed once per service, not once per
        // comparison (at 100 000 services that was most of a listing's sort). No two
        // services share a creation number, so the unstable sort gives the one order.
        let mut all: Vec<_> = self
            .services
            .values()
            .map(|s| {
                (
                    order::dump_position(&s.key),
                    std::cmp::Reverse(s.created),
                    s,
                )
            })
            .collect();
        all.sort_unstable_by_key(|&(position, created, _)| (position, created));
        all.into_iter().map(|(_, _, s)| s).collect()
    }

    /// Every service once, in no particular order: for the periodic walks whose order
    /// nobody sees (the sweeper's failure log, the rate estimator, the drains), which
    /// at 100 000 services must not pay for [`Table::services`]' sort every second.
    pub fn each_service(&self) -> impl Iterator<Item = &Arc<Service>> {
        self.services.values()
    }

    /// Applies one command to this table, or changes nothing and says why. Writes only
    /// to this table, never to the live state it shares with the snapshots it was cloned
    /// from: what the command does to that state comes back as [`Effects`], for whoever
    /// publishes this table to carry out once it is the one readers see ([`effect`]).
    /// The owner of a table nobody else reads carries them out right away
    /// (`table.apply(&c, &a)?.carry_out()`); a trial copy drops them.
    pub fn apply(
        &mut self,
        command: &Command,
        addresses: &dyn AddressClassifier,
    ) -> Result<Effects, TableError> {
        self.apply_from(command, addresses, Source::Command)
    }

    /// [`Table::apply`] for a command from `source`: a reload's `--add-listener` at a
    /// virtual service's own address keeps the rule shadowed (said) rather than being
    /// refused (`listener::check_shadowable`).
    pub fn apply_from(
        &mut self,
        command: &Command,
        addresses: &dyn AddressClassifier,
        source: Source,
    ) -> Result<Effects, TableError> {
        let mut effects = Effects::default();
        match command {
            Command::AddService(config) => {
                if self.services.contains_key(&config.key) {
                    return Err(TableError::ServiceExists);
                }
                let resolved = ResolvedService::from_config(config)?;
                let service = Service {
                    key: config.key,
                    scheduler: resolved.scheduler,
                    flags: config.flags,
                    timeout: config.timeout,
                    netmask: config.netmask,
                    pe: resolved.pe,
                    options: config.options.clone(),
                    servers: Vec::new(),
                    created: self.next_created,
                    state: Arc::default(),
                    algorithm: Arc::from(resolved.scheduler.algorithm(&[])),
                    drained_out: std::collections::BTreeSet::new(),
                    trash: std::collections::BTreeMap::new(),
                };
                self.next_created += 1;
                self.services.insert(config.key, Arc::new(service));
                // ipvsadm's command is not refused for a rule's sake: the service wins
                // its address, and the rules there are shadowed, which is said.
                let shadowed = self.rules_shadowed_by(&config.key);
                if !shadowed.is_empty() {
                    effects.push(Effect::Say(Note::Shadowed {
                        service: config.key,
                        rules: shadowed,
                    }));
                }
            }
            Command::EditService(config) => {
                let current = self
                    .services
                    .get(&config.key)
                    .ok_or(TableError::NoSuchService)?;
                let resolved = ResolvedService::from_config(config)?;
                let mut service = Service::clone(current);
                // uvsadm's `-E` knows only some of uvs's own settings: it keeps the
                // others (a reload, which knows them all, sets them as the file says).
                let mut options = if source == Source::File {
                    config.options.clone()
                } else {
                    config.options.clone().from_command(&service.options)
                };
                let access = &mut options.admission;
                if admission::keep_running_list(&service.options.admission, access) {
                    effects.push(Effect::CloseDenied(Some(config.key)));
                }
                if service.options.slow_start_ms != options.slow_start_ms {
                    // Each server without its own window follows the service's.
                    for server in &service.servers {
                        effects.push(Effect::SlowStart {
                            state: Arc::clone(&server.state),
                            window_ms: options.slow_start_of(&server.options),
                            begin: false,
                        });
                    }
                }
                if service.scheduler != resolved.scheduler {
                    service.algorithm = Arc::from(resolved.scheduler.algorithm(&service.servers));
                }
                service.scheduler = resolved.scheduler;
                service.flags = config.flags;
                service.timeout = config.timeout;
                service.netmask = config.netmask;
                service.pe = resolved.pe;
                service.options = options;
                self.services.insert(config.key, Arc::new(service));
            }
            Command::DeleteService { service } => {
                let gone = self
                    .services
                    .remove(service)
                    .ok_or(TableError::NoSuchService)?;
                effects.push(Effect::RetireServers(gone));
                // Its listen rules go with it (`listener`), and those it shadowed have
                // their addresses back; both are said.
                let deleted: Vec<ListenRule> = self
                    .listen_rules()
                    .into_iter()
                    .filter(|r| r.leads_to(service))
                    .collect();
                for rule in &deleted {
                    self.listeners.remove(&rule.listen);
                }
                if !deleted.is_empty() {
                    effects.push(Effect::Say(Note::RulesDeleted {
                        service: *service,
                        rules: deleted,
                    }));
                }
                let freed: Vec<ListenRule> = self
                    .rules_shadowed_by(service)
                    .into_iter()
                    .filter(|r| !self.is_shadowed(r))
                    .collect();
                if !freed.is_empty() {
                    effects.push(Effect::Say(Note::Unshadowed {
                        service: *service,
                        rules: freed,
                    }));
                }
            }
            Command::Flush {} => {
                for gone in self.services.values() {
                    effects.push(Effect::RetireServers(Arc::clone(gone)));
                }
                self.services.clear();
                self.listeners.clear();
            }
            Command::AddServer { service, server } => {
                let server = &server.in_service(service);
                let published = self.published;
                let svc = self.server_command_target(service, server)?;
                check_server_numbers(server)?;
                if svc.servers.iter().any(|s| s.key() == server.key()) {
                    return Err(TableError::ServerExists);
                }
                if !addresses.may_be_real_server(server.addr) {
                    return Err(TableError::InvalidOperation);
                }
                let svc = Arc::make_mut(svc);
                let window_ms = svc.options.slow_start_of(&server.options);
                // Back while connections from before its delete are still open: its
                // old state, so they count (IPVS takes its destination from the trash).
                // Not an ejected one, whose readmission ended with its delete.
                let reused = (svc.trash.remove(&server.key()))
                    .and_then(|w| w.upgrade())
                    .filter(|old| old.open() > 0 && !old.holds(real_server::Hold::Ejected));
                let added = match &reused {
                    Some(old) => {
                        let added = real_server(server, Some(old), None, window_ms);
                        effects.push(Effect::Configure {
                            state: Arc::clone(old),
                            weight: added.weight,
                            u_threshold: added.u_threshold,
                            l_threshold: added.l_threshold,
                        });
                        effects.push(Effect::Drain {
                            state: Arc::clone(old),
                            keep_persistent: None,
                        });
                        effects.push(Effect::SlowStart {
                            state: Arc::clone(old),
                            window_ms,
                            begin: false,
                        });
                        added
                    }
                    None => real_server(server, None, None, window_ms),
                };
                if window_ms != 0 && added.weight != 0 && svc.created < published {
                    effects.push(Effect::SlowStart {
                        state: Arc::clone(&added.state),
                        window_ms,
                        begin: true,
                    });
                }
                // `-a` of a server a drain removed: it is wanted again.
                svc.drained_out.remove(&added.key());
                effects.push(limit(&added, &svc.state));
                svc.servers.insert(0, added);
                svc.algorithm = Arc::from(svc.algorithm.next(&svc.servers, &ListChange::Added));
            }
            Command::EditServer { service, server } => {
                // The edited server is looked for at the port it is normalised to, as
                // ipvsadm's `-e` looks for it (see `ServerConfig::in_service`).
                let server = &server.in_service(service);
                let published = self.published;
                let svc = self.server_command_target(service, server)?;
                check_server_numbers(server)?;
                let index = svc
                    .servers
                    .iter()
                    .position(|s| s.key() == server.key())
                    .ok_or(TableError::NoSuchServer)?;
                let svc = Arc::make_mut(svc);
                // uvsadm's `-e` knows nothing of uvs's own per-server settings: it keeps
                // the server's (a reload, which does, sets them as the file says).
                let kept;
                let server = if source == Source::File {
                    server
                } else {
                    kept = ServerConfig {
                        options: svc.servers[index].options,
                        ..server.clone()
                    };
                    &kept
                };
                let window_ms = svc.options.slow_start_of(&server.options);
                let running = svc.created < published;
                let slot = &mut svc.servers[index];
                let was_weight = slot.weight;
                let drain = slot.drain;
                *slot = real_server(server, Some(&slot.state), Some(slot.last_weight), 0);
                // `-e` of a draining server changes what comes back on undrain; the
                // weight in force stays 0.
                if drain.is_some() {
                    slot.drain = drain;
                    slot.weight = 0;
                }
                effects.push(Effect::Configure {
                    state: Arc::clone(&slot.state),
                    weight: slot.weight,
                    u_threshold: slot.u_threshold,
                    l_threshold: slot.l_threshold,
                });
                // Back from weight 0 (a health check, `-e`, an undrain): a ramp.
                effects.push(Effect::SlowStart {
                    state: Arc::clone(&slot.state),
                    window_ms,
                    begin: running && was_weight == 0 && slot.weight != 0,
                });
                effects.push(limit(slot, &svc.state));
                svc.algorithm = Arc::from(svc.algorithm.next(&svc.servers, &ListChange::Updated));
            }
            Command::DeleteServer { service, server } => {
                let (svc, index) = self.server_at(service, server)?;
                let svc = Arc::make_mut(svc);
                let change = ListChange::Removed {
                    removed: *server,
                    previous: index.checked_sub(1).map(|i| svc.servers[i].key()),
                };
                let gone = svc.servers.remove(index);
                svc.trash.retain(|_, state| state.strong_count() > 0);
                svc.trash.insert(*server, Arc::downgrade(&gone.state));
                // A command-line drain's end: the file must not add it back (`pool`).
                // A `-d` from uvsadm is a delete like any other, which a reload undoes.
                if source == Source::Pool && gone.drain.is_some_and(|d| d.origin == Source::Command)
                {
                    svc.drained_out.insert(*server);
                }
                effects.push(Effect::RetireServer {
                    service: *service,
                    server: gone,
                    // The pool controller says its own removals (`pool`).
                    drain_ended: source != Source::Pool,
                });
                svc.algorithm = Arc::from(svc.algorithm.next(&svc.servers, &change));
            }
            Command::Zero { service: None } => {
                for svc in self.services.values() {
                    effects.push(Effect::ZeroService(Arc::clone(svc)));
                }
                effects.push(Effect::ZeroTotals(Arc::clone(&self.totals)));
            }
            Command::Zero { service: Some(key) } => {
                let svc = self.services.get(key).ok_or(TableError::NoSuchService)?;
                effects.push(Effect::ZeroService(Arc::clone(svc)));
            }
            Command::SetTimeouts(set) => self.timeouts = self.timeouts.updated_with(*set),
            Command::SetAdmission(admission) => {
                let mut admission = admission.clone();
                if admission::keep_running_list(&self.admission, &mut admission) {
                    effects.push(Effect::CloseDenied(None));
                }
                self.admission = admission;
            }
            Command::Drain {
                service,
                server,
                deadline_ms,
                keep_persistent,
            } => {
                let drain = |started: Option<u64>| {
                    let now = crate::clock::monotonic_ms();
                    pool::Drain {
                        started_ms: started.unwrap_or(now),
                        deadline_ms: deadline_ms.map(|d| now.saturating_add(d)),
                        asked_ms: *deadline_ms,
                        keep_persistent: *keep_persistent,
                        origin: source,
                    }
                };
                self.set_drain(service, server, &mut effects, |s| {
                    Some(drain(s.drain.map(|d| d.started_ms)))
                })?;
            }
            Command::Undrain { service, server } => {
                let svc = self
                    .services
                    .get_mut(service)
                    .ok_or(TableError::ServiceNotDefined)?;
                if !svc.servers.iter().any(|s| s.key() == *server) {
                    if !svc.drained_out.contains(server) {
                        return Err(TableError::NoSuchServer);
                    }
                    Arc::make_mut(svc).drained_out.remove(server);
                    return Ok(effects);
                }
                self.set_drain(service, server, &mut effects, |_| None)?;
            }
            Command::StartSyncDaemon(daemon) => {
                sync::check(daemon)?;
                let slot = self.sync.slot(daemon.role);
                if slot.is_some() {
                    return Err(TableError::SyncDaemonRunning);
                }
                *slot = Some(daemon.clone());
                self.sync_from_file.set(daemon.role, source == Source::File);
            }
            Command::StopSyncDaemon { role } => {
                if self.sync.slot(*role).take().is_none() {
                    return Err(TableError::NoSyncDaemon);
                }
                self.sync_from_file.set(*role, false);
            }
            Command::AddListener(rule) => {
                let l = &rule.listen;
                if l.protocol == Protocol::Sctp || l.port == 0 || rule.mark == Some(0) {
                    return Err(TableError::InvalidOperation);
                }
                if let Some(mark) = self.listeners.get(l) {
                    return Err(TableError::ListenerExists {
                        listen: *l,
                        service: ListenRule::new(*l, *mark).service(),
                    });
                }
                let exists = |key: &ServiceKey| self.services.contains_key(key);
                let owner = match source {
                    Source::Command | Source::Pool => {
                        listener::check(rule, exists).map(|()| None)?
                    }
                    Source::File => listener::check_shadowable(rule, exists)?,
                };
                self.listeners.insert(*l, rule.mark);
                if let Some(service) = owner {
                    effects.push(Effect::Say(Note::Shadowed {
                        service,
                        rules: vec![*rule],
                    }));
                }
            }
            Command::DeleteListener { listen } => {
                self.listeners
                    .remove(listen)
                    .ok_or(TableError::NoSuchListener)?;
            }
        }
        Ok(effects)
    }

    /// The service a real-server add or edit works on, after the checks the kernel
    /// makes before looking at the server itself. Changed through `Arc::make_mut`: a
    /// service shared with a published snapshot is copied first, one this table already
    /// copied (earlier in the same batch) is changed in place, so a batch adding many
    /// servers to one service copies its list once, not once per server.
    fn server_command_target(
        &mut self,
        key: &ServiceKey,
        server: &ServerConfig,
    ) -> Result<&mut Arc<Service>, TableError> {
        // Mixed families are possible only where the packet is encapsulated anyway.
        if self.services.contains_key(key)
            && Family::of(&server.addr) != key.family()
            && server.forward != Forward::Tunnel
        {
            return Err(TableError::InvalidOperation);
        }
        self.services
            .get_mut(key)
            .ok_or(TableError::ServiceNotDefined)
    }

    /// Sets (Some) or clears (None) the drain of `server` of `service` to what `drain`
    /// makes of the server: the weight in force follows (0 while draining, the asked
    /// weight else), and the live marks follow once published.
    fn set_drain(
        &mut self,
        service: &ServiceKey,
        server: &ServerKey,
        effects: &mut Effects,
        drain: impl FnOnce(&RealServer) -> Option<pool::Drain>,
    ) -> Result<(), TableError> {
        let published = self.published;
        let (svc, index) = self.server_at(service, server)?;
        let svc = Arc::make_mut(svc);
        let running = svc.created < published;
        let window_ms = svc.options.slow_start_of(&svc.servers[index].options);
        let slot = &mut svc.servers[index];
        let was_weight = slot.weight;
        slot.drain = drain(slot);
        slot.weight = if slot.drain.is_some() {
            0
        } else {
            slot.asked_weight
        };
        // Back from a drain is coming back up: a ramp, as from weight 0.
        if running && was_weight == 0 && slot.weight != 0 {
            effects.push(Effect::SlowStart {
                state: Arc::clone(&slot.state),
                window_ms,
                begin: true,
            });
        }
        effects.push(Effect::Configure {
            state: Arc::clone(&slot.state),
            weight: slot.weight,
            u_threshold: slot.u_threshold,
            l_threshold: slot.l_threshold,
        });
        effects.push(Effect::Drain {
            state: Arc::clone(&slot.state),
            keep_persistent: slot.drain.map(|d| d.keep_persistent),
        });
        svc.algorithm = Arc::from(svc.algorithm.next(&svc.servers, &ListChange::Updated));
        Ok(())
    }

    /// The service `service` (to change through `Arc::make_mut`) and the index of its
    /// real server `server`, with the kernel's errors for either missing (`-d`'s
    /// order: "Service not defined", then "No such destination").
    fn server_at(
        &mut self,
        service: &ServiceKey,
        server: &ServerKey,
    ) -> Result<(&mut Arc<Service>, usize), TableError> {
        let svc = self
            .services
            .get_mut(service)
            .ok_or(TableError::ServiceNotDefined)?;
        let index = svc
            .servers
            .iter()
            .position(|s| s.key() == *server)
            .ok_or(TableError::NoSuchServer)?;
        Ok((svc, index))
    }

    /// The listen rules, sorted.
    pub fn listen_rules(&self) -> Vec<ListenRule> {
        let mut rules: Vec<ListenRule> = self
            .listeners
            .iter()
            .map(|(listen, mark)| ListenRule::new(*listen, *mark))
            .collect();
        rules.sort_by_key(|r| (r.listen.protocol, r.listen.addr, r.listen.port));
        rules
    }

    /// The service whose own address `listen` is: the service at it, or one at 0.0.0.0
    /// or :: on its port (`listener::owners`).
    fn owner(&self, listen: &ListenAddr) -> Option<&Arc<Service>> {
        listener::owners(listen).find_map(|key| self.services.get(&key))
    }

    /// Whether a virtual service holds `rule`'s address, so that the rule is not used.
    pub fn is_shadowed(&self, rule: &ListenRule) -> bool {
        self.owner(&rule.listen).is_some()
    }

    /// The listen rules a service holds the address of (shadowed), sorted, each with
    /// that service: kept, not listened on, shown by `uvs status`.
    pub fn shadowed_rules(&self) -> Vec<(ListenRule, ServiceKey)> {
        self.listen_rules()
            .into_iter()
            .filter_map(|r| self.owner(&r.listen).map(|svc| (r, svc.key)))
            .collect()
    }

    /// The rules whose address `service` holds as its own (whether or not another
    /// service holds it too). A concrete service is looked up, one at 0.0.0.0/:: scans.
    pub fn rules_shadowed_by(&self, service: &ServiceKey) -> Vec<ListenRule> {
        match service {
            ServiceKey::Inet {
                protocol,
                addr,
                port,
            } if !addr.is_unspecified() => {
                let listen = ListenAddr {
                    protocol: *protocol,
                    addr: *addr,
                    port: *port,
                };
                self.listeners
                    .get(&listen)
                    .map(|mark| ListenRule::new(listen, *mark))
                    .into_iter()
                    .collect()
            }
            ServiceKey::Fwmark { .. } => Vec::new(),
            ServiceKey::Inet { .. } => self
                .listen_rules()
                .into_iter()
                .filter(|r| r.shadowed_by(service))
                .collect(),
        }
    }

    /// The service a connection to `listen` belongs to: the service whose own address
    /// it is (exact, or at 0.0.0.0/:: on its port), else through a listen rule the
    /// fwmark group of its mark or the address's port-0 service. A service's own
    /// address wins over a rule (uvs's rules are its own, not iptables's: the service
    /// added at an address is the one reached there; see `listener`).
    pub fn route(&self, listen: &ListenAddr) -> Option<&Arc<Service>> {
        if let Some(svc) = self.owner(listen) {
            return Some(svc);
        }
        let mark = self.listeners.get(listen)?;
        self.services
            .get(&ListenRule::new(*listen, *mark).service())
    }

    /// Every address the data plane should listen on, with the service it leads to.
    pub fn listen_addresses(&self) -> Vec<(ListenAddr, Arc<Service>)> {
        let own = self.services.values().filter_map(|svc| match svc.key {
            ServiceKey::Inet {
                protocol: protocol @ (Protocol::Tcp | Protocol::Udp),
                addr,
                port,
            } if port != 0 => Some(ListenAddr {
                protocol,
                addr,
                port,
            }),
            _ => None,
        });
        // A shadowed rule's address is its service's (a wildcard service's socket
        // already takes it).
        let ruled = self
            .listen_rules()
            .into_iter()
            .filter(|r| !self.is_shadowed(r))
            .map(|r| r.listen);
        let mut all: Vec<ListenAddr> = own.chain(ruled).collect();
        all.sort_by_key(|l| (l.protocol, l.addr, l.port));
        all.dedup();
        all.into_iter()
            .filter_map(|l| self.route(&l).map(|svc| (l, Arc::clone(svc))))
            .collect()
    }

    /// Counters over all services, for readers that keep them (the data plane).
    pub fn totals_handle(&self) -> Arc<Stats> {
        Arc::clone(&self.totals)
    }

    /// Every service as a listing sees it, in dump order.
    pub fn entries(&self) -> Vec<ServiceEntry> {
        self.services().into_iter().map(|s| entry_of(s)).collect()
    }

    /// One service as a listing sees it.
    pub fn entry(&self, key: &ServiceKey) -> Result<ServiceEntry, TableError> {
        self.services
            .get(key)
            .map(|s| entry_of(s))
            .ok_or(TableError::NoSuchService)
    }
}

/// The parts of a service config the kernel looks up by name.
struct ResolvedService {
    scheduler: Scheduler,
    pe: Option<PersistenceEngine>,
}

impl ResolvedService {
    fn from_config(config: &ServiceConfig) -> Result<ResolvedService, TableError> {
        let scheduler: Scheduler = config
            .scheduler
            .parse()
            .map_err(|_| TableError::SchedulerNotFound)?;
        let pe = match config.pe.as_deref() {
            None | Some("") => None,
            Some(name) => {
                Some(PersistenceEngine::from_name(name).ok_or(TableError::SchedulerNotFound)?)
            }
        };
        let netmask_fits = match (config.key.family(), config.netmask) {
            (Family::Inet, Netmask::V4(_)) => true,
            (Family::Inet6, Netmask::V6(prefix)) => (1..=128).contains(&prefix),
            _ => false,
        };
        if !netmask_fits || config.flags.0 & !ServiceFlags::KNOWN != 0 {
            return Err(TableError::InvalidOperation);
        }
        Ok(ResolvedService { scheduler, pe })
    }
}

/// The kernel's range checks on a destination (ip_vs_add_dest / ip_vs_edit_dest).
fn check_server_numbers(server: &ServerConfig) -> Result<(), TableError> {
    if server.weight < 0 || server.l_threshold > server.u_threshold {
        return Err(TableError::OutOfRange);
    }
    if server.forward == Forward::Tunnel
        && server.tunnel.kind == TunnelKind::Gue
        && server.tunnel.port == 0
    {
        return Err(TableError::InvalidOperation);
    }
    Ok(())
}

/// The effect that mirrors `server`'s connection limit and links it to the queue of
/// its service (whose state is `service`).
fn limit(server: &RealServer, service: &service::ServiceState) -> Effect {
    Effect::Limit {
        state: Arc::clone(&server.state),
        max_connections: server.options.max_connections,
        queue: Arc::clone(&service.queue),
    }
}

/// The server a config describes. An edited server keeps its live state (`edited`, which
/// the caller updates through an effect) and its last non-zero weight (`previous_last_weight`:
/// an edit to weight 0 keeps it); an added one (None, None) gets a state of its own,
/// with its slow-start window `slow_start_ms`.
fn real_server(
    config: &ServerConfig,
    edited: Option<&Arc<RealServerState>>,
    previous_last_weight: Option<u32>,
    slow_start_ms: u32,
) -> RealServer {
    // check_server_numbers has refused negative weights.
    let weight = config.weight.unsigned_abs();
    let state = match edited {
        Some(state) => Arc::clone(state),
        // Nothing shares a new server's state yet: it is born with its settings.
        None => Arc::new(RealServerState::with_settings(
            weight,
            config.u_threshold,
            config.l_threshold,
            slow_start_ms,
        )),
    };
    let last_weight = match previous_last_weight {
        Some(previous) if weight == 0 => previous,
        _ => weight,
    };
    RealServer {
        addr: config.addr,
        port: config.port,
        weight,
        asked_weight: weight,
        drain: None,
        last_weight,
        forward: config.forward,
        u_threshold: config.u_threshold,
        l_threshold: config.l_threshold,
        tunnel: config.tunnel,
        options: config.options,
        state,
    }
}

fn entry_of(svc: &Service) -> ServiceEntry {
    use std::sync::atomic::Ordering::Relaxed;
    // A listing shows a service's settings as `-A` would set them.
    let config = svc.config();
    let now_ms = crate::clock::monotonic_ms();
    ServiceEntry {
        key: config.key,
        scheduler: config.scheduler,
        flags: config.flags,
        timeout: config.timeout,
        netmask: config.netmask,
        pe: config.pe,
        options: config.options,
        stats: svc.state.stats.view(),
        retries: svc.state.retries.load(Relaxed),
        unavailable: svc.state.unavailable.load(Relaxed),
        flows_dropped: svc.state.flows_dropped.load(Relaxed),
        source_port_exhausted: svc.state.source_port_exhausted.load(Relaxed),
        source_address_unavailable: svc.state.source_address_unavailable.load(Relaxed),
        queue: svc.state.queue.counts(),
        admission: crate::table::entry::AdmissionCounts {
            sources: (svc.options.admission.limits).map_or(0, |l| svc.state.sources.tracked(&l)),
            ..svc.state.admission.view()
        },
        access_rules: (svc.options.admission.access.as_ref())
            .map(|l| l.refusals())
            .unwrap_or_default(),
        drained_out: svc.drained_out.iter().copied().collect(),
        servers: svc
            .servers
            .iter()
            .map(|s| ServerEntry {
                addr: s.addr,
                port: s.port,
                forward: s.forward,
                // While it ramps, what IPVS would show for the weight in force.
                weight: s.weight_in_force(),
                u_threshold: s.u_threshold,
                l_threshold: s.l_threshold,
                active_conns: s.state.active_conns.load(Relaxed),
                inactive_conns: s.state.inactive_conns.load(Relaxed),
                persistent_conns: s.state.persistent_conns.load(Relaxed),
                tunnel: s.tunnel,
                stats: s.state.stats.view(),
                connect_failures: FailureCounts {
                    refused: s.state.connect_failures.refused.load(Relaxed),
                    timed_out: s.state.connect_failures.timeout.load(Relaxed),
                    other: s.state.connect_failures.other.load(Relaxed),
                    looped: s.state.connect_failures.looped.load(Relaxed),
                    source: s.state.connect_failures.source.load(Relaxed),
                },
                draining: s.drain.map(|d| pool::DrainStatus {
                    open: s.state.connections_left(),
                    left_ms: d.left_ms(now_ms),
                    keep_persistent: d.keep_persistent,
                    from_file: d.origin == Source::File,
                }),
                ejection: EjectionCounts {
                    ejections: s.state.ejection.total(),
                    consecutive_failures: s.state.ejection.consecutive(),
                    left_ms: s.state.ejection.left_ms(now_ms),
                },
                slow_start: s.state.slow_start_share(),
                open_conns: s.state.open(),
                max_connections: s.state.max_connections(),
            })
            .collect(),
    }
}

/// Where a command comes from, for the checks that differ: uvs's own
/// `--add-listener` is strict, a configuration reload's is not (`listener`); only the
/// pool controller's removal of a drained server ends a command-line drain
/// (`pool`), which the file must then not undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// uvsadm, `-R`, the control socket, an import: a rule at a service's address is
    /// refused.
    Command,
    /// A configuration file's reload: such a rule is kept, shadowed, and said.
    File,
    /// The pool controller (`pool`): a drain's end. Its commands are checked as a
    /// command's.
    Pool,
}

/// The table as a running daemon holds it: one writer at a time, any number of readers
/// loading the latest snapshot without waiting.
pub struct TableHandle {
    current: ArcSwap<Table>,
    writer: Mutex<()>,
    addresses: Box<dyn AddressClassifier>,
    /// Bumped on every published change, for readers that follow the table.
    version: tokio::sync::watch::Sender<u64>,
    /// What left the table with log lines held back, until the failure log takes it
    /// (every second; never filled where nothing is counted, as in kernel mode).
    retired: Mutex<Vec<Retired>>,
    /// Whether servers brought in begin a slow start (`slow_start`): not in kernel
    /// mode, where the kernel schedules with the full weight.
    slow_starts: bool,
    /// Poked when a published change starts a drain: the pool controller sleeps on it
    /// while nothing drains (`pool`).
    drains: tokio::sync::Notify,
    /// Access lists changed under `close_denied` (a service's, None: the global one),
    /// until `pool::denied` takes them; poked when one is added.
    denied: Mutex<Vec<Option<ServiceKey>>>,
    denials: tokio::sync::Notify,
}

impl TableHandle {
    pub fn new(addresses: Box<dyn AddressClassifier>) -> TableHandle {
        TableHandle {
            current: ArcSwap::from_pointee(Table::new()),
            writer: Mutex::new(()),
            addresses,
            version: tokio::sync::watch::Sender::new(0),
            retired: Mutex::new(Vec::new()),
            slow_starts: true,
            drains: tokio::sync::Notify::new(),
            denied: Mutex::new(Vec::new()),
            denials: tokio::sync::Notify::new(),
        }
    }

    /// This handle with slow starts (`slow_start`) begun only if `on`: off in kernel
    /// mode, where the kernel's IPVS schedules with the full weight and the listing
    /// must show what it holds.
    pub fn with_slow_starts(mut self, on: bool) -> TableHandle {
        self.slow_starts = on;
        self
    }

    /// The servers and services that left the table since the last call while their
    /// log held counts back (`proxy::failure_log` says them at once).
    pub fn take_retired(&self) -> Vec<Retired> {
        std::mem::take(&mut *self.retired.locked())
    }

    /// Woken when a published change starts a drain (a permit is kept when nobody
    /// waits): what the pool controller sleeps on while nothing drains.
    pub fn drain_started(&self) -> &tokio::sync::Notify {
        &self.drains
    }

    /// Woken when a published change gave a service (or every service) an access list
    /// under `close_denied` (a permit is kept when nobody waits): `pool::denied` sleeps
    /// on it, then takes the changes with [`TableHandle::take_denied`].
    pub fn denials(&self) -> &tokio::sync::Notify {
        &self.denials
    }

    /// The access lists changed under `close_denied` since the last call: each the
    /// service's, None for the global one.
    pub fn take_denied(&self) -> Vec<Option<ServiceKey>> {
        std::mem::take(&mut *self.denied.locked())
    }

    /// A receiver that wakes on every change (the listener manager follows it).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// The latest published table.
    pub fn snapshot(&self) -> Arc<Table> {
        self.current.load_full()
    }

    /// Applies `commands` in order and publishes the result once: all of them or, when
    /// one is refused, none (the index of the refused one and why), and then nothing a
    /// reader can see has changed.
    pub fn apply_all(&self, commands: &[Command]) -> Result<(), (usize, TableError)> {
        self.apply_all_checked(commands, |i, e| (i, e), |_, _| Ok(()))
    }

    /// Applies a command and publishes the result: a batch of one.
    pub fn apply(&self, command: &Command) -> Result<(), TableError> {
        self.apply_all(std::slice::from_ref(command))
            .map_err(|(_, e)| e)
    }

    /// As [`TableHandle::apply_all`], and before publishing, `check` looks at the
    /// running table and the one `commands` make and may still refuse (the reloader
    /// refuses a table it has no descriptors to listen for). A refused command becomes
    /// the caller's error through `refused` (its index and why).
    pub fn apply_all_checked<E>(
        &self,
        commands: &[Command],
        refused: impl FnOnce(usize, TableError) -> E,
        check: impl FnOnce(&Table, &Table) -> Result<(), E>,
    ) -> Result<(), E> {
        self.apply_all_from(commands, Source::Command, refused, check)
    }

    /// As [`TableHandle::apply_all_checked`], for commands from `source`
    /// ([`Table::apply_from`]).
    pub fn apply_all_from<E>(
        &self,
        commands: &[Command],
        source: Source,
        refused: impl FnOnce(usize, TableError) -> E,
        check: impl FnOnce(&Table, &Table) -> Result<(), E>,
    ) -> Result<(), E> {
        let _writer = self.writer.locked();
        let now = self.current.load_full();
        let mut next = Table::clone(&now);
        let mut effects = Effects::default();
        let batch = self.addresses.for_batch();
        let addresses = batch.as_deref().unwrap_or(self.addresses.as_ref());
        for (i, command) in commands.iter().enumerate() {
            match next.apply_from(command, addresses, source) {
                Ok(more) => effects.append(more),
                // `next` and `effects` are dropped: the running table never saw them.
                Err(e) => return Err(refused(i, e)),
            }
        }
        check(&now, &next)?;
        next.published = next.next_created;
        if !self.slow_starts {
            effects.begin_no_slow_start();
        }
        let drain_started = effects.start_a_drain();
        let denied = effects.close_denied();
        self.current.store(Arc::new(next));
        // The batch is whole and published: now, and only now, the state the new
        // snapshot shares with the old one follows it. Still under the writer lock, so
        // the next batch sees it done.
        effects.carry_out_keeping(|r| self.retired.locked().push(r));
        self.version.send_modify(|v| *v += 1);
        if drain_started {
            self.drains.notify_one();
        }
        if !denied.is_empty() {
            self.denied.locked().extend(denied);
            self.denials.notify_one();
        }
        Ok(())
    }
}

impl std::fmt::Debug for TableHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableHandle")
            .field("services", &self.current.load().len())
            .finish()
    }
}

#[cfg(test)]
mod batch_tests;
#[cfg(test)]
mod drain_tests;
#[cfg(test)]
mod slow_start_tests;
#[cfg(test)]
mod tests;
