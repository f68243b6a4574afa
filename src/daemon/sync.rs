//! The connection-sync daemons' commands as they enter the daemon, from uvsadm and
//! from the configuration file's plan. The table is pure; here, where the host is
//! known, a `--start-daemon` is checked as the kernel checks it before it starts a
//! daemon (ip_vs_ctl.c `ip_vs_genl_new_daemon`, ip_vs_sync.c `start_sync_thread`): the
//! settings first (EINVAL), then that the interface exists (ENODEV, "No such device"),
//! and the daemon goes to the table resolved for the interface's MTU
//! ([`SyncDaemon::resolved`]), so `-L --daemon` prints ipvsadm 1.31's line and the
//! runner has every setting. In kernel mode uvsadm's start and stop go to the kernel
//! first ([`in_kernel`]) and to the table only if the kernel took them; in userspace
//! mode a start's socket is made first ([`in_userspace`]); the file's go to the table
//! (resolved by the reloader), and the mirror or `syncd` follows it.

use std::sync::Mutex;

use crate::kernel::daemons::refusal;
use crate::kernel::mirror::Mirror;
use crate::lock::Locked;
use crate::sync::Shared;
use crate::sync::counters::DaemonState;
use crate::table::{Command, SyncDaemon, TableError, TableHandle, sync};

/// `daemon` as the kernel would run it: its settings checked, its interface looked
/// up, its defaults filled in for the interface's MTU.
///
/// # Errors
/// `SyncDaemonInvalid` for settings the kernel refuses, `NoSuchDevice` for an
/// interface this host does not have, `Kernel` when the interface cannot be looked up.
pub fn resolve(daemon: &SyncDaemon) -> Result<SyncDaemon, TableError> {
    sync::check(daemon)?;
    let mtu = crate::sys::interface_mtu(&daemon.interface).map_err(|e| match e.raw_os_error() {
        Some(libc::ENODEV) => TableError::NoSuchDevice,
        Some(libc::EINVAL) => TableError::SyncDaemonInvalid,
        _ => TableError::Kernel {
            message: e.to_string(),
        },
    })?;
    Ok(daemon.resolved(mtu))
}

/// A `--start-daemon` or `--stop-daemon` from uvsadm in userspace mode: `to_table`
/// with the command as the table takes it.
///
/// A start is refused as the kernel refuses it: its settings and interface, then
/// "Daemon has already run" while uvs's daemon of that role runs (or is starting),
/// then the socket it would run with, made and dropped first, so that uvsadm hears at
/// once why it could not run (the port held by another user, no IPv4 address on the
/// interface, ...). A daemon of that role the table has but that is down (its socket
/// could not be made: shown in `uvs status`, tried again every 2 s) does not stand in
/// the way, as nothing runs, just as the kernel's refusal of one does not in kernel
/// mode: the asked daemon replaces it (or, asked with the settings it has, is tried
/// again at once).
pub fn in_userspace(
    table: &TableHandle,
    shared: &Shared,
    command: &Command,
    to_table: &dyn Fn(&Command) -> Result<(), TableError>,
) -> Result<(), TableError> {
    let Command::StartSyncDaemon(asked) = command else {
        return to_table(command);
    };
    let resolved = resolve(asked)?;
    let role = asked.role;
    let snapshot = table.snapshot();
    let held = snapshot.sync_daemons().get(role);
    let down = matches!(shared.state(role), Some(DaemonState::Down { .. }));
    if held.is_some() && !down {
        return Err(TableError::SyncDaemonRunning);
    }
    crate::syncd::socket::probe(&resolved).map_err(|e| TableError::Kernel {
        message: format!(
            "cannot run the {} sync daemon on {}: {e}",
            role.name(),
            resolved.interface
        ),
    })?;
    match held {
        // The daemon that is down, asked for again as it is: nothing for the table to
        // change (its runner would not see a stop and start of the same settings),
        // so its runner tries again now.
        Some(held) if *held == resolved => {
            shared.retry_now(role);
            Ok(())
        }
        Some(_) => {
            to_table(&Command::StopSyncDaemon { role })?;
            to_table(&Command::StartSyncDaemon(resolved))
        }
        None => to_table(&Command::StartSyncDaemon(resolved)),
    }
}

/// A `--start-daemon` or `--stop-daemon` from uvsadm in kernel mode, under the
/// mirror's lock (so that no repair pass comes between the kernel and the table):
/// the kernel first, then `to_table` with the command as the table takes it.
///
/// A start is refused as ipvsadm's would be: its settings and interface, then the
/// kernel's own answer ("Daemon has already run" while any daemon of that role runs,
/// uvs's or someone else's; "No such device", ...). The kernel decides, not the table:
/// a daemon of that role the table has and the kernel does not run (the kernel
/// refused it, shown down in `uvs status`; or someone stopped it and the mirror has
/// not started it again yet) does not stand in the way, and once the kernel runs the
/// asked daemon it replaces the table's (a `[sync]` role's: until the next reload
/// puts the file's back, as for any uvsadm change to what the file owns). Should the
/// table then refuse it (a reload started one meanwhile), the kernel's is stopped
/// again.
///
/// A stop stops the kernel's daemon of that role whoever started it, as ipvsadm's
/// would, and removes the table's; "No daemon is running" only when neither had one.
pub fn in_kernel(
    mirror: &Mutex<Mirror>,
    table: &TableHandle,
    command: &Command,
    to_table: &dyn Fn(&Command) -> Result<(), TableError>,
) -> Result<(), TableError> {
    let mut mirror = mirror.locked();
    match command {
        Command::StartSyncDaemon(asked) => {
            let resolved = resolve(asked)?;
            mirror.start_daemon(asked)?;
            let role = asked.role;
            let replaced = match table.snapshot().sync_daemons().get(role) {
                Some(_) => to_table(&Command::StopSyncDaemon { role }),
                None => Ok(()),
            };
            let result = replaced.and_then(|()| to_table(&Command::StartSyncDaemon(resolved)));
            if result.is_err()
                && let Err(e) = mirror.stop_daemon(asked.role)
            {
                tracing::error!(error = %e, "kernel: cannot stop the {} sync daemon the table refused", asked.role.name());
            }
            result
        }
        Command::StopSyncDaemon { role } => {
            let kernel = mirror.stop_daemon(*role);
            let in_table = table.snapshot().sync_daemons().get(*role).is_some();
            match kernel {
                Err(e) if !in_table || e.raw_os_error() != Some(libc::ESRCH) => {
                    Err(refusal(&e, true))
                }
                // Someone stopped it already: uvs's is stopped now too.
                _ if in_table => to_table(command),
                // Someone else's, stopped as ipvsadm would.
                _ => Ok(()),
            }
        }
        other => to_table(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{SyncRole, UnicastOnly};
    use std::cell::RefCell;

    fn free_port() -> u16 {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.local_addr().expect("its address").port()
    }

    /// A table with the backup `daemon` (resolved for lo), shown down by its runner.
    fn down_backup(port: u16) -> (TableHandle, Shared, SyncDaemon) {
        let table = TableHandle::new(Box::new(UnicastOnly));
        let daemon = resolve(&SyncDaemon {
            port,
            ..SyncDaemon::new(SyncRole::Backup, "lo")
        })
        .expect("lo");
        table
            .apply(&Command::StartSyncDaemon(daemon.clone()))
            .expect("a backup");
        let shared = Shared::default();
        shared.set_state(
            SyncRole::Backup,
            Some(DaemonState::Down {
                reason: "bind: Address already in use".into(),
            }),
        );
        (table, shared, daemon)
    }

    fn start(port: u16) -> Command {
        Command::StartSyncDaemon(SyncDaemon {
            port,
            ..SyncDaemon::new(SyncRole::Backup, "lo")
        })
    }

    /// Asked again with the settings it has, a daemon that is down is tried again at
    /// once by its runner: a stop and a start of the same settings in the table would
    /// be one unchanged table to the runner, and nothing would happen.
    #[test]
    fn a_down_daemon_asked_for_as_it_is_is_tried_again_now() {
        let port = free_port();
        let (table, shared, _) = down_backup(port);
        let sent = RefCell::new(Vec::new());
        let to_table = |c: &Command| {
            sent.borrow_mut().push(c.clone());
            Ok(())
        };
        in_userspace(&table, &shared, &start(port), &to_table).expect("taken");
        assert!(sent.borrow().is_empty(), "{:?}", sent.borrow());
        let mut retry = std::pin::pin!(shared.retry_wanted(SyncRole::Backup));
        let polled = std::future::Future::poll(
            retry.as_mut(),
            &mut std::task::Context::from_waker(std::task::Waker::noop()),
        );
        assert!(polled.is_ready(), "the runner is not told to try again");
    }

    /// Asked with other settings, it is replaced; while it runs, a start is refused.
    #[test]
    fn a_down_daemon_is_replaced_and_a_running_one_is_not() {
        let (port, other) = (free_port(), free_port());
        let (table, shared, held) = down_backup(port);
        let sent = RefCell::new(Vec::new());
        let to_table = |c: &Command| {
            sent.borrow_mut().push(c.clone());
            Ok(())
        };
        in_userspace(&table, &shared, &start(other), &to_table).expect("taken");
        let asked = resolve(&SyncDaemon {
            port: other,
            ..SyncDaemon::new(SyncRole::Backup, "lo")
        })
        .expect("lo");
        assert_eq!(
            *sent.borrow(),
            [
                Command::StopSyncDaemon {
                    role: SyncRole::Backup
                },
                Command::StartSyncDaemon(asked)
            ]
        );
        assert_ne!(held.port, other);
        shared.set_state(SyncRole::Backup, Some(DaemonState::Up));
        assert_eq!(
            in_userspace(&table, &shared, &start(other), &to_table),
            Err(TableError::SyncDaemonRunning)
        );
    }
}
