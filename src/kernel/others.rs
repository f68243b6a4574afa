//! Kernel mode's rule for the services in the kernel that uvs did not create (made by
//! ipvsadm or another tool before uvs, or behind its back, at a key uvs had not
//! taken): the mirror never edits, flushes or deletes them (`mirror`), the listings
//! show them as the kernel has them (`listing`), and uvsadm's commands that name one
//! are refused with [`TableError::OthersService`], which says whose it is and that
//! ipvsadm changes it. Called by the daemon's control handle (`daemon::handles`)
//! before a command reaches the table.
//!
//! Why a refusal rather than passing the command to the kernel: uvs's table is the
//! one source of what uvs sends, and the mirror would undo any change uvs made to a
//! service it does not own the next time the table and the kernel disagree, or leave
//! uvs owning a service somebody else still manages; and why not the table alone, as
//! before: the listing would then show the kernel's service while `-E` changed an
//! entry nobody sees, `-D` answered "No such service" for a listed service, and `-A`
//! succeeded without effect. So the command that names someone else's service fails,
//! and changes nothing, whatever the table holds at that key. `-C` and `-Z` without a
//! service act on uvs's services only and succeed: others' stay, as they are listed.

use std::io;

use crate::table::{Command, ServiceKey, TableError};

/// The service `command` names, when it names one (the commands on a service and on
/// its real servers); None for the others (`-C`, `-Z` of everything, timeouts, the
/// sync daemons, listeners, admission).
pub fn named(command: &Command) -> Option<ServiceKey> {
    match command {
        Command::AddService(c) | Command::EditService(c) => Some(c.key),
        Command::DeleteService { service }
        | Command::AddServer { service, .. }
        | Command::EditServer { service, .. }
        | Command::DeleteServer { service, .. }
        | Command::Drain { service, .. }
        | Command::Undrain { service, .. }
        | Command::Zero {
            service: Some(service),
        } => Some(*service),
        Command::Flush {}
        | Command::Zero { service: None }
        | Command::SetTimeouts(_)
        | Command::SetAdmission(_)
        | Command::StartSyncDaemon(_)
        | Command::StopSyncDaemon { .. }
        | Command::AddListener(_)
        | Command::DeleteListener { .. } => None,
    }
}

/// Refuses `command` when the service it names is someone else's in the kernel
/// (`others`: whether the kernel holds a service at that key that uvs did not create).
///
/// # Errors
/// [`TableError::OthersService`] for such a service; `Kernel` with the errno's words
/// when the kernel's services cannot be read (the command is refused then too: what
/// it would change is not known).
pub fn refuse(
    command: &Command,
    others: impl FnOnce(&ServiceKey) -> io::Result<bool>,
) -> Result<(), TableError> {
    let Some(service) = named(command) else {
        return Ok(());
    };
    match others(&service) {
        Ok(false) => Ok(()),
        Ok(true) => Err(TableError::OthersService { service }),
        Err(e) => Err(super::daemons::refusal(&e, false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Forward, Protocol, ServerConfig, ServiceConfig, Timeouts};

    #[test]
    fn commands_on_someone_elses_service_are_refused_with_whose_it_is() {
        let tcp = |addr: &str, port| ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr: addr.parse().unwrap(),
            port,
        };
        let (theirs, ours) = (tcp("127.0.0.99", 99), tcp("127.0.0.10", 80));
        let server = ServerConfig::new("127.0.0.1".parse().unwrap(), 8080, Forward::Masq);
        let on = |service: ServiceKey| {
            vec![
                Command::AddService(ServiceConfig::new(service, "rr")),
                Command::EditService(ServiceConfig::new(service, "wlc")),
                Command::DeleteService { service },
                Command::AddServer {
                    service,
                    server: server.clone(),
                },
                Command::EditServer {
                    service,
                    server: server.clone(),
                },
                Command::DeleteServer {
                    service,
                    server: server.key(),
                },
                Command::Zero {
                    service: Some(service),
                },
            ]
        };
        let kernel = |key: &ServiceKey| Ok(*key == theirs);
        for command in on(theirs) {
            let refused = refuse(&command, kernel);
            assert_eq!(
                refused,
                Err(TableError::OthersService { service: theirs }),
                "{command}"
            );
        }
        assert_eq!(
            TableError::OthersService { service: theirs }.to_string(),
            "virtual service -t 127.0.0.99:99 in the kernel is not uvs's (uvs did not \
             create it, and leaves it alone): change it with ipvsadm"
        );
        for command in on(ours) {
            assert_eq!(refuse(&command, kernel), Ok(()), "{command}");
        }
        // -C, -Z of everything and the rest name no service: not asked about.
        for command in [
            Command::Flush {},
            Command::Zero { service: None },
            Command::SetTimeouts(Timeouts {
                tcp: 1,
                tcp_fin: 1,
                udp: 1,
            }),
        ] {
            assert_eq!(
                refuse(&command, |_: &ServiceKey| -> io::Result<bool> {
                    panic!("asked for {command}")
                }),
                Ok(())
            );
        }
        // The kernel cannot be read: refused with its words.
        let unreadable = refuse(&on(ours)[0], |_: &ServiceKey| {
            Err(io::Error::from_raw_os_error(libc::EPERM))
        });
        assert_eq!(
            unreadable,
            Err(TableError::Kernel {
                message: "Permission denied (you must be root)".into()
            })
        );
    }
}
