//! The file's `[sync]` daemons that cannot start yet because their interface cannot be
//! looked up (`sync.interface` names one this host does not have, or not yet: a VLAN
//! or a bond that comes up after uvs). Such a daemon must not refuse the rest of the
//! file: a reload, or `uvs run` itself, applies everything else, and the daemon waits
//! here, shown down with the reason in `uvs status` and `uvs_sync_daemon_up`, and is
//! tried again every [`RETRY_INTERVAL`](crate::sync::RETRY_INTERVAL) until the
//! interface is there, the file no longer asks for it, or uvsadm starts a daemon of
//! that role itself (a `--stop-daemon` answers "No daemon is running", as nothing
//! runs; the file's daemon waits on). keepalived does the same with a
//! `lvs_sync_daemon` whose interface is missing: it logs and runs on (ipvswrapper.c
//! `ipvs_start`). Kept by the reloader, under its lock.

use crate::sync::Shared;
use crate::table::{Command, SyncDaemon, SyncRole, TableError};

/// One daemon of the file's that waits for its interface, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// As the file asks for it (unresolved: its defaults are filled in for the
    /// interface's MTU once the interface is there).
    pub daemon: SyncDaemon,
    /// What looking the interface up answered.
    pub error: TableError,
}

impl Waiting {
    /// What `uvs status` says after "the master sync daemon is not running: ".
    pub fn reason(&self) -> String {
        format!(
            "{} (sync.interface = \"{}\")",
            self.error, self.daemon.interface
        )
    }
}

/// The waiting daemons, one per role at most.
#[derive(Debug, Default)]
pub struct WaitingDaemons {
    waiting: Vec<Waiting>,
}

/// Resolves every `--start-daemon` among `commands` for this host (`sync::resolve`);
/// those that cannot be are taken out of `commands` and returned, to wait.
pub fn resolve_or_wait(commands: &mut Vec<Command>) -> Vec<Waiting> {
    let mut waiting = Vec::new();
    commands.retain_mut(|command| {
        let Command::StartSyncDaemon(daemon) = command else {
            return true;
        };
        match super::sync::resolve(daemon) {
            Ok(resolved) => {
                *daemon = resolved;
                true
            }
            Err(error) => {
                waiting.push(Waiting {
                    daemon: daemon.clone(),
                    error,
                });
                false
            }
        }
    });
    waiting
}

impl WaitingDaemons {
    /// Whether any daemon waits.
    pub fn any(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// The daemons a reload of the file left waiting, in place of those before: each
    /// shown down in `shared` with its reason (`Shared::set_waiting`, which no runner
    /// clears), a role that no longer waits cleared. Returns those that did not wait,
    /// or waited for another reason, before: what is news to say (a reload of an
    /// unchanged file says nothing again).
    pub fn replace(&mut self, now: Vec<Waiting>, shared: &Shared) -> Vec<Waiting> {
        for old in &self.waiting {
            shared.set_waiting(old.daemon.role, None);
        }
        for w in &now {
            shared.set_waiting(w.daemon.role, Some(w.reason()));
        }
        let news = now
            .iter()
            .filter(|w| !self.waiting.contains(w))
            .cloned()
            .collect();
        self.waiting = now;
        news
    }

    /// uvsadm started a daemon of `role`: it decides that role from now on (until the
    /// next reload of the file), so the file's stops waiting.
    pub fn forget(&mut self, role: SyncRole, shared: &Shared) {
        let before = self.waiting.len();
        self.waiting.retain(|w| w.daemon.role != role);
        if self.waiting.len() != before {
            shared.set_waiting(role, None);
        }
    }

    /// One more try: the waiting daemons whose interface can now be looked up, resolved
    /// and taken out to be started (shown down no more: their runner says how they
    /// do); the others' errors brought up to date (a changed reason is returned too,
    /// to be said). A role the table already runs (`running`) stops waiting.
    pub fn retry(&mut self, shared: &Shared, running: impl Fn(SyncRole) -> bool) -> Retried {
        let mut retried = Retried::default();
        let mut still = Vec::new();
        for mut w in std::mem::take(&mut self.waiting) {
            let role = w.daemon.role;
            if running(role) {
                shared.set_waiting(role, None);
                continue;
            }
            match super::sync::resolve(&w.daemon) {
                Ok(resolved) => {
                    shared.set_waiting(role, None);
                    retried.ready.push(resolved);
                }
                Err(error) => {
                    if error != w.error {
                        w.error = error;
                        shared.set_waiting(role, Some(w.reason()));
                        retried.changed.push(w.clone());
                    }
                    still.push(w);
                }
            }
        }
        self.waiting = still;
        retried
    }
}

/// What [`WaitingDaemons::retry`] found.
#[derive(Debug, Default)]
pub struct Retried {
    /// Resolved daemons to start now.
    pub ready: Vec<SyncDaemon>,
    /// Daemons still waiting, for another reason than before.
    pub changed: Vec<Waiting>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::counters::DaemonState;

    /// An interface name no host has (15 bytes, the kernel's longest).
    const NOWHERE: &str = "uvs-no-such-if0";

    fn start(role: SyncRole, interface: &str) -> Command {
        Command::StartSyncDaemon(SyncDaemon::new(role, interface))
    }

    fn states(shared: &Shared) -> Vec<(String, DaemonState)> {
        shared.status().daemons.into_iter().collect()
    }

    #[test]
    fn a_daemon_whose_interface_is_missing_waits_and_the_rest_is_applied() {
        let other = Command::StopSyncDaemon {
            role: SyncRole::Backup,
        };
        let mut commands = vec![start(SyncRole::Master, NOWHERE), other.clone()];
        let waiting = resolve_or_wait(&mut commands);
        assert_eq!(commands, [other]);
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].error, TableError::NoSuchDevice);
        assert_eq!(
            waiting[0].reason(),
            "No such device (sync.interface = \"uvs-no-such-if0\")"
        );
    }

    #[test]
    fn a_daemon_on_lo_is_resolved_in_place() {
        let mut commands = vec![start(SyncRole::Backup, "lo")];
        assert!(resolve_or_wait(&mut commands).is_empty());
        let Command::StartSyncDaemon(d) = &commands[0] else {
            panic!("{commands:?}");
        };
        // The kernel's rule for a backup: maxlen from the MTU (lo's, here).
        let mtu = crate::sys::interface_mtu("lo").unwrap();
        assert_eq!(*d, SyncDaemon::new(SyncRole::Backup, "lo").resolved(mtu));
    }

    #[test]
    fn waiting_is_shown_down_then_cleared_when_the_file_or_uvsadm_drops_it() {
        let shared = Shared::default();
        let mut waiting = WaitingDaemons::default();
        let mut commands = vec![
            start(SyncRole::Master, NOWHERE),
            start(SyncRole::Backup, NOWHERE),
        ];
        let news = waiting.replace(resolve_or_wait(&mut commands), &shared);
        assert_eq!(news.len(), 2);
        let down = DaemonState::Down {
            reason: "No such device (sync.interface = \"uvs-no-such-if0\")".into(),
        };
        assert_eq!(
            states(&shared),
            [
                ("backup".to_string(), down.clone()),
                ("master".to_string(), down.clone())
            ]
        );
        // A runner stopping its daemon of the role (the reload's stop) clears nothing.
        shared.set_state(SyncRole::Master, None);
        assert_eq!(states(&shared).len(), 2);
        // The same again (a reload of the same file): nothing new to say.
        let mut again = vec![
            start(SyncRole::Master, NOWHERE),
            start(SyncRole::Backup, NOWHERE),
        ];
        assert!(
            waiting
                .replace(resolve_or_wait(&mut again), &shared)
                .is_empty()
        );
        assert_eq!(states(&shared).len(), 2);
        // Still missing: waits on, nothing to say.
        let r = waiting.retry(&shared, |_| false);
        assert!(r.ready.is_empty() && r.changed.is_empty());
        assert!(waiting.any());
        // uvsadm took the backup role over.
        waiting.forget(SyncRole::Backup, &shared);
        assert_eq!(states(&shared), [("master".to_string(), down)]);
        // A reload whose file no longer names it.
        assert!(waiting.replace(Vec::new(), &shared).is_empty());
        assert!(states(&shared).is_empty());
        assert!(!waiting.any());
    }

    #[test]
    fn a_waiting_daemon_whose_interface_appears_is_handed_out_resolved() {
        let shared = Shared::default();
        let mut waiting = WaitingDaemons::default();
        // As if `lo` had been missing when the file was applied.
        waiting.replace(
            vec![Waiting {
                daemon: SyncDaemon::new(SyncRole::Master, "lo"),
                error: TableError::NoSuchDevice,
            }],
            &shared,
        );
        let r = waiting.retry(&shared, |_| false);
        let mtu = crate::sys::interface_mtu("lo").unwrap();
        assert_eq!(
            r.ready,
            [SyncDaemon::new(SyncRole::Master, "lo").resolved(mtu)]
        );
        assert!(!waiting.any());
        assert!(states(&shared).is_empty());
    }

    #[test]
    fn a_role_the_table_runs_meanwhile_stops_waiting_and_its_runner_says_how_it_does() {
        let shared = Shared::default();
        let mut waiting = WaitingDaemons::default();
        let mut commands = vec![start(SyncRole::Master, NOWHERE)];
        waiting.replace(resolve_or_wait(&mut commands), &shared);
        shared.set_state(SyncRole::Master, Some(DaemonState::Up));
        let r = waiting.retry(&shared, |role| role == SyncRole::Master);
        assert!(r.ready.is_empty());
        assert!(!waiting.any());
        assert_eq!(states(&shared), [("master".to_string(), DaemonState::Up)]);
    }
}
