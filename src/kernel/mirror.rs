//! Kernel mode: the table, programmed into the kernel's IPVS. After every change to the
//! table (and every two seconds, to repair what someone else changed), the kernel's
//! services and servers are compared with the table and only the differences are
//! sent; the kernel's counters, rates and connection counts are copied back, so
//! listings and metrics show the kernel's (a `-Z` is passed on to the kernel). uvs owns
//! the services it created: one that was in the kernel before uvs (someone's ipvsadm)
//! is reported and left alone, never edited or flushed. A change the kernel refuses is
//! logged with the kernel's reason and tried again at the next pass; the daemon runs
//! on (a sync daemon the kernel refuses is also shown down, with the reason, in `uvs
//! status` and the metrics, [`Mirror::report_daemons`]). On a clean stop uvs removes
//! its services unless told to leave them (ldirectord's cleanstop). The connection-sync
//! daemons the table asks for are kept running in the kernel the same way
//! (`daemon_mirror` has the policy), and `--start-daemon` / `--stop-daemon` from
//! uvsadm reach the kernel before the table ([`Mirror::start_daemon`],
//! [`Mirror::stop_daemon`]), so that uvsadm hears the kernel's refusal. Commands on
//! services the kernel holds and uvs did not create are refused (`others`). Run by
//! `uvs run --mode kernel`.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::daemon_mirror::{self, Step};
use super::daemons;
use super::ipvs::{self, Ipvs, KernelServer};
use crate::lock::Locked;
use crate::stats::{Counters, Rates};
use crate::sync::counters::DaemonState;
use crate::table::{
    ServerConfig, ServiceEntry, ServiceKey, SyncDaemon, SyncRole, Table, TableError, TableHandle,
    Timeouts,
};

/// Where the mirror says how each of the table's sync daemons is doing in the kernel
/// (`sync::Shared::set_state`: None when the table asks for none of that role).
pub type DaemonReport = Box<dyn Fn(SyncRole, Option<DaemonState>) + Send>;

/// How often the kernel is compared with the table when nothing changed, and its
/// counters read: as often as its estimator updates them.
const REPAIR_INTERVAL: Duration = Duration::from_secs(2);

/// Why kernel mode cannot be used here.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    #[error("the kernel has no IPVS (no generic netlink family \"IPVS\": is ip_vs loaded?)")]
    Absent,
    #[error("IPVS is there but uvs may not change it (CAP_NET_ADMIN is needed): {0}")]
    NotAllowed(io::Error),
    #[error("cannot talk to the kernel's IPVS: {0}")]
    Io(io::Error),
}

/// Opens the kernel's IPVS and checks that uvs may change it (a `--set 0 0 0`, which
/// changes nothing but needs the same permission as every change).
pub fn open() -> Result<Ipvs, Unusable> {
    let mut ipvs = Ipvs::open().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Unusable::Absent,
        _ => Unusable::Io(e),
    })?;
    let probe = ipvs::timeouts_request(
        ipvs.family(),
        Timeouts {
            tcp: 0,
            tcp_fin: 0,
            udp: 0,
        },
    );
    match ipvs.ask(&probe) {
        Ok(_) => Ok(ipvs),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {
            Err(Unusable::NotAllowed(e))
        }
        Err(e) => Err(Unusable::Io(e)),
    }
}

/// The kernel side of kernel mode.
pub struct Mirror {
    ipvs: Ipvs,
    /// Services uvs created in the kernel.
    owned: HashSet<ServiceKey>,
    /// Services found in the kernel that uvs did not make (reported once).
    foreign: HashSet<ServiceKey>,
    timeouts: Option<Timeouts>,
    /// The roles whose kernel sync daemon is uvs's (started or adopted by it).
    daemons: HashSet<SyncRole>,
    /// Roles whose daemon is someone else's, reported once.
    foreign_daemons: HashSet<SyncRole>,
    /// Why the kernel last refused to start the table's daemon of a role, said once
    /// per new reason.
    refused: HashMap<SyncRole, String>,
    report: Option<DaemonReport>,
}

impl Mirror {
    pub fn new(ipvs: Ipvs) -> Mirror {
        Mirror {
            ipvs,
            owned: HashSet::new(),
            foreign: HashSet::new(),
            timeouts: None,
            daemons: HashSet::new(),
            foreign_daemons: HashSet::new(),
            refused: HashMap::new(),
            report: None,
        }
    }

    /// Where each pass says whether the table's sync daemons run in the kernel: Up
    /// when the kernel runs it, Down with the kernel's refusal in ipvsadm's words (or
    /// because another daemon holds the role), None when the table asks for none.
    pub fn report_daemons(&mut self, report: DaemonReport) {
        self.report = Some(report);
    }

    /// Whether uvs created the kernel's service `key` (and so changes it).
    pub fn owns(&self, key: &ServiceKey) -> bool {
        self.owned.contains(key)
    }

    /// Whether the kernel holds a service at `key` that uvs did not create: someone
    /// else's, which uvs leaves alone. Errors: the kernel's, reading its services.
    pub fn others(&mut self, key: &ServiceKey) -> io::Result<bool> {
        if self.owned.contains(key) {
            return Ok(false);
        }
        Ok(self.ipvs.services()?.iter().any(|s| s.config.key == *key))
    }

    /// `--start-daemon` from uvsadm: `asked` (as uvsadm gave it, so the kernel fills
    /// in its defaults as it does for ipvsadm) is started in the kernel, and is uvs's.
    /// Errors: the kernel's refusal in ipvsadm's words ("Daemon has already run", "No
    /// such device", ...).
    pub fn start_daemon(&mut self, asked: &SyncDaemon) -> Result<(), TableError> {
        self.ipvs
            .start_daemon(asked)
            .map_err(|e| daemons::refusal(&e, false))?;
        tracing::info!("kernel: --start-daemon {}", asked.role.name());
        self.daemons.insert(asked.role);
        self.foreign_daemons.remove(&asked.role);
        self.refused.remove(&asked.role);
        Ok(())
    }

    /// `--stop-daemon` from uvsadm, or of uvs's own daemon: the kernel's daemon of
    /// `role` is stopped, whoever started it (as ipvsadm would). Errors: the kernel's
    /// errno (ESRCH: none runs; uvs's claim to the role is dropped then too).
    pub fn stop_daemon(&mut self, role: SyncRole) -> io::Result<()> {
        let result = self.ipvs.stop_daemon(role);
        match &result {
            Ok(()) => tracing::info!("kernel: --stop-daemon {}", role.name()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(_) => return result,
        }
        self.daemons.remove(&role);
        result
    }

    /// `-L` and `-S`: the kernel's whole table, uvs's services as `table` has them and
    /// the others as the kernel has them (`listing::merge`).
    pub fn listing(&mut self, table: Vec<ServiceEntry>) -> io::Result<Vec<ServiceEntry>> {
        let kernel = self.ipvs.services()?;
        let ipvs = &mut self.ipvs;
        super::listing::merge(&kernel, table, &self.owned, |k| {
            Ok(super::listing::entry(k, &ipvs.servers(k.config.key)?))
        })
    }

    /// `-L -t VIP` of a service uvs did not create: the kernel's, if it has it.
    pub fn kernel_entry(&mut self, key: ServiceKey) -> io::Result<Option<ServiceEntry>> {
        let Some(service) = self
            .ipvs
            .services()?
            .into_iter()
            .find(|s| s.config.key == key)
        else {
            return Ok(None);
        };
        let servers = self.ipvs.servers(key)?;
        Ok(Some(super::listing::entry(&service, &servers)))
    }

    /// The kernel's running sync daemons (`-L --daemon`), whoever started them.
    pub fn daemons(&mut self) -> io::Result<Vec<SyncDaemon>> {
        self.ipvs.daemons()
    }

    /// Makes the kernel's sync daemons what the table asks for (`daemon_mirror`), and
    /// reports how each of the table's is doing ([`Mirror::report_daemons`]); returns
    /// how many changes were sent. Not being able to list them (a kernel without
    /// GET_DAEMON) is logged and leaves them, and their report, as they are.
    fn sync_daemons(&mut self, table: &Table) -> usize {
        let running = match self.ipvs.daemons() {
            Ok(running) => running,
            Err(e) => {
                KERNEL_UNREADABLE.warn(|suppressed| {
                    tracing::error!(error = %e, suppressed, "kernel: cannot list the sync daemons");
                });
                return 0;
            }
        };
        let wanted = table.sync_daemons();
        let mut sent = 0;
        // Why the table's daemon of a role does not run, once this pass is done.
        let mut down: HashMap<SyncRole, String> = HashMap::new();
        for step in daemon_mirror::steps(wanted, table.sync_from_file(), &running, &self.daemons) {
            match step {
                Step::Start(daemon) => match self.start(&daemon) {
                    Ok(()) => sent += 1,
                    Err(reason) => {
                        down.insert(daemon.role, reason);
                    }
                },
                Step::Stop(role) => match self.stop_daemon(role) {
                    Ok(()) => sent += 1,
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                    Err(e) => {
                        KERNEL_REFUSED.warn(|suppressed| {
                            tracing::error!(error = %e, suppressed, "kernel refused: --stop-daemon {}", role.name());
                        });
                    }
                },
                Step::Adopt(role) => {
                    tracing::info!(
                        "kernel: the {} sync daemon already running is as the table asks; taken as uvs's",
                        role.name()
                    );
                    self.daemons.insert(role);
                    self.foreign_daemons.remove(&role);
                }
                Step::Replace { theirs, want } => {
                    let role = want.role;
                    if self.foreign_daemons.insert(role) {
                        tracing::warn!(
                            "kernel: a {theirs} that uvs did not start holds the role the file's [sync] names; stopped for the file's"
                        );
                    }
                    match self.stop_daemon(role) {
                        Ok(()) => sent += 1,
                        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                        Err(e) => {
                            let reason = daemons::refusal(&e, true).to_string();
                            self.say_refused(
                                role,
                                &format!("--stop-daemon {}", role.name()),
                                &reason,
                            );
                            down.insert(
                                role,
                                format!("{theirs} holds the role and cannot be stopped: {reason}"),
                            );
                            continue;
                        }
                    }
                    match self.start(&want) {
                        Ok(()) => sent += 1,
                        Err(reason) => {
                            down.insert(role, reason);
                        }
                    }
                }
                Step::Foreign(daemon) => {
                    if self.foreign_daemons.insert(daemon.role) {
                        tracing::warn!(
                            "kernel: a {} that uvs did not start runs with other settings than the table asks; left alone (stop it for uvs's to run)",
                            daemon
                        );
                    }
                    down.insert(
                        daemon.role,
                        format!("the kernel runs another {daemon}, which uvs did not start"),
                    );
                }
                Step::Forget(role) => {
                    self.daemons.remove(&role);
                }
            }
        }
        for role in [SyncRole::Master, SyncRole::Backup] {
            let state = wanted.get(role).map(|_| match down.remove(&role) {
                Some(reason) => DaemonState::Down { reason },
                None => DaemonState::Up,
            });
            if state.is_none() || state == Some(DaemonState::Up) {
                self.refused.remove(&role);
            }
            if let Some(report) = &self.report {
                report(role, state);
            }
        }
        sent
    }

    /// Starts the table's `daemon` in the kernel ([`Mirror::start_daemon`]). Errors: the
    /// kernel's refusal in ipvsadm's words, logged once per new reason.
    fn start(&mut self, daemon: &SyncDaemon) -> Result<(), String> {
        self.start_daemon(daemon).map_err(|refused| {
            let reason = refused.to_string();
            let role = daemon.role;
            self.say_refused(role, &format!("--start-daemon {}", role.name()), &reason);
            reason
        })
    }

    /// Logs the kernel's refusal of `what` for `role`, unless it is the reason said
    /// last for that role: the pass tries again every 2 s.
    fn say_refused(&mut self, role: SyncRole, what: &str, reason: &str) {
        if new_reason(&mut self.refused, role, reason) {
            tracing::error!(
                "kernel refused: {what}: {reason} (tried again every {} s; uvs status shows it down)",
                REPAIR_INTERVAL.as_secs()
            );
        }
    }

    /// Sends one request; a refusal is logged with the kernel's reason.
    fn send(&mut self, what: &str, request: &super::netlink::Request) -> bool {
        match self.ipvs.ask(request) {
            Ok(_) => {
                tracing::info!("kernel: {what}");
                true
            }
            Err(e) => {
                // The repair pass asks again every few seconds: said at most every ten.
                KERNEL_REFUSED.warn(|suppressed| {
                    tracing::error!(error = %e, suppressed, "kernel refused: {what}");
                });
                false
            }
        }
    }

    /// Makes the kernel's services (those uvs owns) what the table says; returns how
    /// many changes were sent.
    pub fn sync(&mut self, table: &Table) -> io::Result<usize> {
        let family = self.ipvs.family();
        let mut sent = 0;
        let timeouts = table.timeouts();
        if self.timeouts != Some(timeouts)
            && self.send(
                &format!(
                    "--set {} {} {}",
                    timeouts.tcp, timeouts.tcp_fin, timeouts.udp
                ),
                &ipvs::timeouts_request(family, timeouts),
            )
        {
            self.timeouts = Some(timeouts);
            sent += 1;
        }
        let mut totals = Sum::default();
        let in_kernel: HashMap<ServiceKey, _> = self
            .ipvs
            .services()?
            .into_iter()
            .map(|s| (s.config.key, s))
            .collect();
        for service in table.services() {
            let config = service.config();
            let key = config.key;
            match in_kernel.get(&key) {
                None => {
                    if !self.send(
                        &format!("-A {config}"),
                        &ipvs::service_request(family, &config, false),
                    ) {
                        continue;
                    }
                    self.owned.insert(key);
                    self.foreign.remove(&key);
                    sent += 1;
                }
                Some(_) if !self.owned.contains(&key) => {
                    if self.foreign.insert(key) {
                        tracing::warn!(service = %key, "kernel: a service uvs did not create is already there; left alone");
                    }
                    continue;
                }
                Some(k) if !same_service(&k.config, &config) => {
                    if self.send(
                        &format!("-E {config}"),
                        &ipvs::service_request(family, &config, true),
                    ) {
                        sent += 1;
                    }
                }
                Some(_) => {}
            }
            let kernel_servers: HashMap<_, KernelServer> = self
                .ipvs
                .servers(key)?
                .into_iter()
                .map(|s| (s.config.key(), s))
                .collect();
            // Listings and metrics show the kernel's counters and connection counts.
            if let Some(k) = in_kernel.get(&key) {
                totals.add(&k.stats, &k.rates);
                if service.state.stats.mirror(k.stats, k.rates)
                    && self.send(&format!("-Z {key}"), &ipvs::zero_request(family, Some(key)))
                {
                    sent += 1;
                }
            }
            for server in &service.servers {
                if let Some(k) = kernel_servers.get(&server.key()) {
                    let st = &server.state;
                    st.stats.mirror(k.stats, k.rates);
                    st.active_conns.store(k.active, Relaxed);
                    st.inactive_conns.store(k.inactive, Relaxed);
                    st.persistent_conns.store(k.persistent, Relaxed);
                }
            }
            let wanted: Vec<ServerConfig> =
                service.servers.iter().map(|s| s.ipvs_config()).collect();
            for k in kernel_servers.keys() {
                if !wanted.iter().any(|w| w.key() == *k)
                    && self.send(
                        &format!("-d {key} -r {k}"),
                        &ipvs::delete_server_request(family, key, *k),
                    )
                {
                    sent += 1;
                }
            }
            for server in wanted.iter().rev() {
                let (edit, what) = match kernel_servers.get(&server.key()) {
                    None => (false, "-a"),
                    Some(k) if k.config != *server => (true, "-e"),
                    Some(_) => continue,
                };
                if self.send(
                    &format!("{what} {key} -r {} -w {}", server.key(), server.weight),
                    &ipvs::server_request(family, key, server, edit),
                ) {
                    sent += 1;
                }
            }
        }
        // The kernel's own totals (node_exporter's), else those of uvs's services.
        let (counters, rates) =
            super::connections::totals().unwrap_or((totals.counters, totals.rates));
        table.totals().mirror(counters, rates);
        let gone: Vec<ServiceKey> = self
            .owned
            .iter()
            .filter(|k| table.service(k).is_none())
            .copied()
            .collect();
        for key in gone {
            if !in_kernel.contains_key(&key)
                || self.send(
                    &format!("-D {key}"),
                    &ipvs::delete_service_request(family, key),
                )
            {
                self.owned.remove(&key);
                sent += 1;
            }
        }
        sent += self.sync_daemons(table);
        Ok(sent)
    }

    /// Removes the services uvs created and stops the sync daemons it started (a
    /// clean stop).
    pub fn clean(&mut self) {
        let family = self.ipvs.family();
        for key in std::mem::take(&mut self.owned) {
            self.send(
                &format!("-D {key}"),
                &ipvs::delete_service_request(family, key),
            );
        }
        let mut roles: Vec<SyncRole> = self.daemons.iter().copied().collect();
        roles.sort_by_key(|r| r.state());
        for role in roles {
            if let Err(e) = self.stop_daemon(role)
                && e.raw_os_error() != Some(libc::ESRCH)
            {
                tracing::error!(error = %e, "kernel refused: --stop-daemon {}", role.name());
            }
        }
    }
}

/// The totals over uvs's services.
#[derive(Default)]
struct Sum {
    counters: Counters,
    rates: Rates,
}

impl Sum {
    fn add(&mut self, c: &Counters, r: &Rates) {
        self.counters.conns += c.conns;
        self.counters.inpkts += c.inpkts;
        self.counters.outpkts += c.outpkts;
        self.counters.inbytes += c.inbytes;
        self.counters.outbytes += c.outbytes;
        self.rates.cps += r.cps;
        self.rates.inpps += r.inpps;
        self.rates.outpps += r.outpps;
        self.rates.inbps += r.inbps;
        self.rates.outbps += r.outbps;
    }
}

/// Whether the kernel's service is what the table says (uvs's own options aside, the
/// kernel does not keep them).
fn same_service(kernel: &crate::table::ServiceConfig, table: &crate::table::ServiceConfig) -> bool {
    kernel.scheduler == table.scheduler
        && kernel.flags == table.flags
        && kernel.timeout == table.timeout
        && kernel.netmask == table.netmask
        && kernel.pe == table.pe
}

/// Records `reason` as the last said for `role`; true when it is new (none was said,
/// or another).
fn new_reason(said: &mut HashMap<SyncRole, String>, role: SyncRole, reason: &str) -> bool {
    if said.get(&role).is_some_and(|r| r == reason) {
        return false;
    }
    said.insert(role, reason.to_string());
    true
}

static KERNEL_REFUSED: crate::rate_limit::RateLimit = crate::rate_limit::RateLimit::new();
static KERNEL_UNREADABLE: crate::rate_limit::RateLimit = crate::rate_limit::RateLimit::new();

/// Follows `table` until the task is aborted.
pub async fn run(table: Arc<TableHandle>, mirror: Arc<std::sync::Mutex<Mirror>>) {
    let mut changes = table.subscribe();
    loop {
        // The snapshot is taken under the mirror's lock: a uvsadm --start-daemon holds
        // it from the kernel to the table (`daemon::sync::in_kernel`), and an older
        // snapshot would have the pass stop the daemon just started.
        let result = {
            let mut mirror = mirror.locked();
            mirror.sync(&table.snapshot())
        };
        if let Err(e) = result {
            KERNEL_UNREADABLE.warn(|suppressed| {
                tracing::error!(error = %e, suppressed, "kernel: cannot read the IPVS table");
            });
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(REPAIR_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_said_once_per_new_reason() {
        let mut said = HashMap::new();
        let master = SyncRole::Master;
        assert!(new_reason(&mut said, master, "Network is unreachable"));
        assert!(!new_reason(&mut said, master, "Network is unreachable"));
        assert!(new_reason(
            &mut said,
            SyncRole::Backup,
            "Network is unreachable"
        ));
        assert!(new_reason(&mut said, master, "No such device"));
        assert!(!new_reason(&mut said, master, "No such device"));
        // Once started (the reason forgotten), a new refusal is said again.
        said.remove(&master);
        assert!(new_reason(&mut said, master, "No such device"));
    }
}
