//! The narrow handles the daemon gives the control server
//! ([`crate::control::server::Daemon`])
//! and the metrics exporter ([`exporter::Source`]): both read the [`Reporter`], so that
//! neither imports the daemon's parts. The kernel-or-userspace choice of `-L -c` is
//! made here, where the mode is known.

use crate::control::protocol::{ShadowedRule, Status};
use crate::control::server;
use crate::exporter::{self, BackendHealth, ConfigReloads};
use crate::lock::Locked;
use crate::rate_limit::RateLimit;
use crate::table::{
    Command, ConnEntry, ServiceEntry, ServiceKey, SyncDaemon, TableError, TableHandle,
};

use super::report::{Mode, Reporter};
use super::sync;

impl server::Daemon for Reporter {
    fn table(&self) -> &TableHandle {
        &self.director().table
    }

    fn connections(&self) -> Vec<ConnEntry> {
        match self.mode() {
            Mode::Userspace => self.director().connections(),
            // The kernel's own table, as ipvsadm reads it.
            Mode::Kernel => crate::kernel::connections::read().unwrap_or_else(|e| {
                static UNREADABLE: RateLimit = RateLimit::new();
                UNREADABLE.warn(|suppressed| {
                    tracing::warn!(error = %e, suppressed, "cannot read the kernel's connections");
                });
                Vec::new()
            }),
        }
    }

    fn status(&self) -> Status {
        let table = self.director().table.snapshot();
        let mut status = self.report().status(table.entries());
        status.shadowed = table
            .shadowed_rules()
            .into_iter()
            .map(|(rule, by)| ShadowedRule { rule, by })
            .collect();
        status.global_access = table.global_access_entry();
        status.global_limits = table.global_limits();
        status.sync_daemons = server::Daemon::sync_daemons(self).unwrap_or_default();
        status
    }

    fn max_clients(&self) -> usize {
        self.director().descriptors.reserve().control_clients
    }

    /// `-L`, `-S`: in kernel mode the kernel's whole table, as ipvsadm lists it (uvs's
    /// services as the table has them, `kernel::listing`); the table's alone when the
    /// kernel cannot be read (said in the log).
    fn services(&self) -> Vec<ServiceEntry> {
        let entries = self.table().snapshot().entries();
        let Some(mirror) = self.kernel() else {
            return entries;
        };
        mirror.locked().listing(entries).unwrap_or_else(|e| {
            static UNREADABLE: RateLimit = RateLimit::new();
            UNREADABLE.warn(|suppressed| {
                tracing::warn!(error = %e, suppressed, "cannot read the kernel's services; listing uvs's only");
            });
            self.table().snapshot().entries()
        })
    }

    /// `-L -t VIP`: the table's service; in kernel mode the kernel's when uvs did not
    /// create it there (someone else's, as `-L` lists it, `kernel::listing`), the
    /// table's when the kernel has none at that key yet.
    fn service(&self, key: &ServiceKey) -> Result<ServiceEntry, TableError> {
        let ours = self.table().snapshot().entry(key);
        let Some(mirror) = self.kernel() else {
            return ours;
        };
        let mut mirror = mirror.locked();
        if ours.is_ok() && mirror.owns(key) {
            return ours;
        }
        match mirror.kernel_entry(*key) {
            Ok(Some(theirs)) => Ok(theirs),
            Ok(None) | Err(_) => ours,
        }
    }

    /// `-L --daemon`: in kernel mode the kernel's daemons, whoever started them (as
    /// ipvsadm lists them); else the table's that are not down.
    fn sync_daemons(&self) -> Result<Vec<SyncDaemon>, TableError> {
        match self.kernel() {
            Some(mirror) => mirror
                .locked()
                .daemons()
                .map_err(|e| crate::kernel::daemons::refusal(&e, false)),
            // The table's that run: one that is down (its socket could not be made)
            // is shown in `uvs status`, not listed, as the kernel lists none it
            // could not start.
            None => Ok(self
                .table()
                .snapshot()
                .sync_daemons()
                .iter()
                .filter(|d| {
                    !matches!(
                        self.director().sync.state(d.role),
                        Some(crate::sync::counters::DaemonState::Down { .. })
                    )
                })
                .cloned()
                .collect()),
        }
    }

    /// With a configuration file, through its reloader: applied and recorded under
    /// its lock, and a change to what the file owns said in the log. A sync daemon's
    /// start is checked and resolved for its interface first, and in kernel mode a
    /// start or stop goes to the kernel before the table (`sync`), and a command on a
    /// service the kernel holds but uvs did not create is refused (`kernel::others`).
    fn apply(&self, command: &Command, applied: &dyn Fn()) -> Result<(), TableError> {
        let daemon = matches!(
            command,
            Command::StartSyncDaemon(_) | Command::StopSyncDaemon { .. }
        );
        match self.kernel() {
            Some(mirror) if daemon => {
                let table = &self.director().table;
                sync::in_kernel(mirror, table, command, &|step| {
                    self.apply_daemon_step(step, command, applied)
                })
            }
            Some(mirror) => {
                let refused = {
                    let mut mirror = mirror.locked();
                    crate::kernel::others::refuse(command, |key| mirror.others(key))
                };
                refused?;
                self.apply_to_table(command, applied)
            }
            None if daemon => {
                let director = self.director();
                sync::in_userspace(&director.table, &director.sync, command, &|step| {
                    self.apply_daemon_step(step, command, applied)
                })
            }
            None => self.apply_to_table(command, applied),
        }
    }
}

impl Reporter {
    /// [`Reporter::apply_to_table`] of one `step` uvsadm's `command` about a sync daemon
    /// becomes (`sync::in_kernel`, `sync::in_userspace`): when a start replaces the
    /// table's daemon of its role, the stop is said as itself, not as the start.
    fn apply_daemon_step(
        &self,
        step: &Command,
        command: &Command,
        applied: &dyn Fn(),
    ) -> Result<(), TableError> {
        if let (Command::StopSyncDaemon { .. }, Command::StartSyncDaemon(_)) = (step, command) {
            let said = || tracing::info!("table changed: {step} (replaced by uvsadm's {command})");
            self.apply_to_table(step, &said)
        } else {
            self.apply_to_table(step, applied)
        }
    }

    /// [`server::Daemon::apply`] once the command is ready for the table.
    fn apply_to_table(&self, command: &Command, applied: &dyn Fn()) -> Result<(), TableError> {
        let table = &self.director().table;
        match self.reloader() {
            Some(reloader) => reloader.apply_from_control(self.director(), command, applied),
            None => {
                if let Command::Undrain { service, server } = command
                    && (table.snapshot().service(service))
                        .is_some_and(|s| s.drained_out.contains(server))
                {
                    return gone_for_good(table, command);
                }
                table.apply(command)?;
                applied();
                Ok(())
            }
        }
    }
}

/// `uvs undrain` of a server a command-line drain removed from a service no
/// configuration file owns: nothing will add it back, so the answer is ipvsadm's "No
/// such destination" (add it again with `uvsadm -a`), and its drained-out mark, which
/// no plan reads, is cleared.
pub(super) fn gone_for_good(table: &TableHandle, undrain: &Command) -> Result<(), TableError> {
    table.apply(undrain)?;
    Err(TableError::NoSuchServer)
}

impl exporter::Source for Reporter {
    fn table(&self) -> &TableHandle {
        &self.director().table
    }

    /// Read from the parts directly rather than through [`Reporter::report`]: a scrape
    /// needs counts, not the listener list or the workers' loads.
    fn state(&self) -> exporter::State {
        let director = self.director();
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let templates = director.templates.status();
        exporter::State {
            health: self
                .health()
                .statuses()
                .into_iter()
                .map(|h| BackendHealth {
                    service: h.service,
                    server: h.server,
                    up: h.up,
                    failures: h.failures,
                    last_duration_ms: h.last_duration_ms,
                    pending: h.pending,
                    suspended: h.suspended.is_some(),
                    last_check: h.last_check,
                    last_error: h.last_error,
                })
                .collect(),
            quorum: self
                .health()
                .quorum_statuses()
                .iter()
                .map(|q| exporter::ServiceQuorum {
                    service: q.service,
                    up: q.up,
                    live: q.live,
                })
                .collect(),
            udp_flows: count(director.udp_flows.count()),
            udp_flows_max: count(director.udp_flows.max()),
            udp_flows_dropped: director.udp_flows.dropped(),
            persistence_templates: templates.count,
            templates_max: templates.max,
            templates_evicted: templates.evicted,
            templates_not_made: templates.not_made,
            connections_open: count(director.conns.live_streams()),
            descriptors: (self.mode() == Mode::Userspace).then(|| director.descriptor_status()),
            udp: director.udp_admission(),
            sync_daemons: director.sync.status().daemons,
            sync: (self.mode() == Mode::Userspace).then(|| director.sync.status()),
            config: self.config().map(|c| ConfigReloads {
                applied_at: c.applied_at,
                reloads: c.reloads,
                refused: c.refused,
                last_applied: c.last_error.is_none(),
                path: c.path.clone(),
                last_error: c.last_error.clone(),
                groups: c.groups.iter().map(|g| g.members.clone()).collect(),
            }),
        }
    }
}
