//! Kernel mode's policy for the connection-sync daemons: what the mirror sends so that
//! the kernel runs the daemons the table asks for, as it keeps uvs's services
//! (`mirror`). It repairs what uvs owns and leaves others' daemons alone:
//!
//! - a daemon the table asks for and the kernel does not run is started, whoever
//!   stopped it (an `ipvsadm --stop-daemon` behind uvs's back is undone within a
//!   repair pass, as an `ipvsadm -D` of one of uvs's services is; `uvsadm
//!   --stop-daemon`, or the file's `[sync]` removed, stops it for good);
//! - one uvs started that no longer runs as the table says (a reload changed the
//!   file's `[sync]`) is stopped and started again with the table's settings;
//! - one the table no longer asks for is stopped if uvs started it;
//! - one that runs as the table says but that uvs did not start (left running by an
//!   earlier uvs with `cleanstop = false`, or started by hand the same way) is taken as
//!   uvs's: the kernel keeps no owner of a daemon, and it is what uvs would start;
//! - one that runs with other settings and that uvs did not start is someone else's:
//!   reported once and left alone (the kernel holds one daemon per role, so uvs's
//!   cannot run until it is stopped).
//!
//! A clean stop stops the daemons uvs owns, unless `cleanstop = false`
//! (`Mirror::clean`).

use std::collections::HashSet;

use crate::table::{SyncDaemon, SyncDaemons, SyncRole};

/// One thing to do about one role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Start this daemon in the kernel; it is uvs's once started.
    Start(SyncDaemon),
    /// Stop uvs's daemon of this role in the kernel.
    Stop(SyncRole),
    /// The kernel's daemon of this role is what the table asks for: uvs's from now.
    Adopt(SyncRole),
    /// The kernel runs this daemon, which uvs did not start and the table does not
    /// describe: left alone, and said once.
    Foreign(SyncDaemon),
    /// Neither the table nor the kernel has uvs's daemon of this role any more.
    Forget(SyncRole),
}

/// The steps that make the kernel's daemons (`running`, as GET_DAEMON lists them) what
/// the table asks for (`wanted`), given the roles uvs started (`owned`); master first.
pub fn steps(wanted: &SyncDaemons, running: &[SyncDaemon], owned: &HashSet<SyncRole>) -> Vec<Step> {
    let mut steps = Vec::new();
    for role in [SyncRole::Master, SyncRole::Backup] {
        let ours = owned.contains(&role);
        let have = running.iter().find(|d| d.role == role);
        match (wanted.get(role), have) {
            (Some(want), None) => steps.push(Step::Start(want.clone())),
            (Some(want), Some(have)) if have.runs_as(want) => {
                if !ours {
                    steps.push(Step::Adopt(role));
                }
            }
            (Some(want), Some(_)) if ours => {
                steps.push(Step::Stop(role));
                steps.push(Step::Start(want.clone()));
            }
            (Some(_), Some(have)) => steps.push(Step::Foreign(have.clone())),
            (None, Some(_)) if ours => steps.push(Step::Stop(role)),
            (None, None) if ours => steps.push(Step::Forget(role)),
            // Someone else's, which the table does not ask about: not uvs's business.
            (None, _) => {}
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon(role: SyncRole, syncid: u8) -> SyncDaemon {
        SyncDaemon {
            role,
            interface: "lo".into(),
            syncid,
            maxlen: 0,
            group: None,
            port: 0,
            ttl: 0,
        }
        .resolved(65536)
    }

    fn wanted(master: Option<SyncDaemon>, backup: Option<SyncDaemon>) -> SyncDaemons {
        SyncDaemons { master, backup }
    }

    fn owned(roles: &[SyncRole]) -> HashSet<SyncRole> {
        roles.iter().copied().collect()
    }

    use SyncRole::{Backup, Master};

    #[test]
    fn what_the_table_asks_for_is_started_and_what_it_dropped_is_stopped() {
        let m = daemon(Master, 7);
        let b = daemon(Backup, 7);
        // Nothing runs: both are started, master first.
        assert_eq!(
            steps(&wanted(Some(m.clone()), Some(b.clone())), &[], &owned(&[])),
            [Step::Start(m.clone()), Step::Start(b.clone())]
        );
        // Both run as asked: nothing to do.
        let running = [m.clone(), b.clone()];
        let both = owned(&[Master, Backup]);
        assert!(steps(&wanted(Some(m.clone()), Some(b.clone())), &running, &both).is_empty());
        // The table dropped the backup: uvs's is stopped.
        assert_eq!(
            steps(&wanted(Some(m.clone()), None), &running, &both),
            [Step::Stop(Backup)]
        );
        // It is gone from both: forgotten.
        assert_eq!(
            steps(&wanted(Some(m.clone()), None), &running[..1], &both),
            [Step::Forget(Backup)]
        );
    }

    #[test]
    fn a_daemon_stopped_behind_uvss_back_is_started_again_and_a_changed_one_restarted() {
        let m = daemon(Master, 7);
        // ipvsadm --stop-daemon master: the next pass starts it again.
        assert_eq!(
            steps(&wanted(Some(m.clone()), None), &[], &owned(&[Master])),
            [Step::Start(m.clone())]
        );
        // The file's [sync] changed the sync id: stop, then start with the new one.
        let changed = daemon(Master, 9);
        assert_eq!(
            steps(
                &wanted(Some(changed.clone()), None),
                std::slice::from_ref(&m),
                &owned(&[Master])
            ),
            [Step::Stop(Master), Step::Start(changed)]
        );
    }

    #[test]
    fn others_daemons_are_left_alone_unless_they_are_what_the_table_asks_for() {
        let m = daemon(Master, 7);
        let theirs = daemon(Master, 3);
        // Not asked for, not uvs's: untouched.
        assert!(
            steps(
                &wanted(None, None),
                std::slice::from_ref(&theirs),
                &owned(&[])
            )
            .is_empty()
        );
        // Asked for with other settings: reported, not stopped.
        assert_eq!(
            steps(
                &wanted(Some(m.clone()), None),
                std::slice::from_ref(&theirs),
                &owned(&[])
            ),
            [Step::Foreign(theirs)]
        );
        // Already running as asked (an older kernel lists no maxlen, group, port or
        // TTL): taken as uvs's.
        let old_kernel = SyncDaemon {
            maxlen: 0,
            group: None,
            port: 0,
            ttl: 0,
            ..m.clone()
        };
        assert_eq!(
            steps(&wanted(Some(m), None), &[old_kernel], &owned(&[])),
            [Step::Adopt(Master)]
        );
    }
}
