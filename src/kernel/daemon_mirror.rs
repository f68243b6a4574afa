//! Kernel mode's policy for the connection-sync daemons: what the mirror sends so that
//! the kernel runs the daemons the table asks for, as it keeps uvs's services
//! (`mirror`). It repairs what uvs owns and leaves others' daemons alone. uvs owns a
//! role's daemon when it started it (or took it over, below), and the file's `[sync]`
//! owns the roles it names, whoever started the kernel's daemon of that role:
//!
//! - a daemon the table asks for and the kernel does not run is started, whoever
//!   stopped it (an `ipvsadm --stop-daemon` behind uvs's back is undone within a
//!   repair pass, as an `ipvsadm -D` of one of uvs's services is; `uvsadm
//!   --stop-daemon`, or the file's `[sync]` removed, stops it for good); a start the
//!   kernel refuses is tried again at every pass, and the role shown down with the
//!   kernel's reason until the kernel takes it (`mirror`);
//! - one uvs started that no longer runs as the table says (a reload changed the
//!   file's `[sync]`) is stopped and started again with the table's settings;
//! - one the table no longer asks for is stopped if uvs started it;
//! - one that runs as the table says but that uvs did not start (left running by an
//!   earlier uvs with `cleanstop = false`, or started by hand the same way) is taken as
//!   uvs's: the kernel keeps no owner of a daemon, and it is what uvs would start;
//! - one that runs with other settings, that uvs did not start, in a role the file's
//!   `[sync]` names (left running by an earlier uvs with `cleanstop = false` and
//!   another `[sync]`, or started by hand) is stopped and the file's started in its
//!   place, said once in the log: the file declares what runs in that role, and the
//!   kernel holds one daemon per role, so the file's could never run otherwise;
//! - one that runs with other settings, that uvs did not start, in a role only
//!   uvsadm's `--start-daemon` asked for, is someone else's: reported once, shown down
//!   (the table's daemon does not run) and left alone. uvsadm's start, like ipvsadm's,
//!   is a one-time request that the kernel answered when it was made ("Daemon has
//!   already run" while another runs), not a claim on the role; and roles neither
//!   asks for are not uvs's business at all.
//!
//! A clean stop stops the daemons uvs owns, unless `cleanstop = false`
//! (`Mirror::clean`).

use std::collections::HashSet;

use crate::table::{SyncDaemon, SyncDaemons, SyncFromFile, SyncRole};

/// One thing to do about one role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Start this daemon in the kernel; it is uvs's once started.
    Start(SyncDaemon),
    /// Stop uvs's daemon of this role in the kernel.
    Stop(SyncRole),
    /// The kernel's daemon of this role is what the table asks for: uvs's from now.
    Adopt(SyncRole),
    /// The kernel runs `theirs`, which uvs did not start, in a role the file's
    /// `[sync]` names with other settings (`want`): stopped, and `want` started.
    Replace {
        theirs: SyncDaemon,
        want: SyncDaemon,
    },
    /// The kernel runs this daemon, which uvs did not start and the table does not
    /// describe, in a role the file does not name: left alone, and said once.
    Foreign(SyncDaemon),
    /// Neither the table nor the kernel has uvs's daemon of this role any more.
    Forget(SyncRole),
}

/// The steps that make the kernel's daemons (`running`, as GET_DAEMON lists them) what
/// the table asks for (`wanted`, of which the file started `from_file`), given the
/// roles uvs started (`owned`); master first.
pub fn steps(
    wanted: &SyncDaemons,
    from_file: SyncFromFile,
    running: &[SyncDaemon],
    owned: &HashSet<SyncRole>,
) -> Vec<Step> {
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
            (Some(want), Some(have)) if from_file.get(role) => steps.push(Step::Replace {
                theirs: have.clone(),
                want: want.clone(),
            }),
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

    /// `steps` for daemons uvsadm started (none from the file).
    fn steps_of(
        wanted: &SyncDaemons,
        running: &[SyncDaemon],
        owned: &HashSet<SyncRole>,
    ) -> Vec<Step> {
        steps(wanted, SyncFromFile::default(), running, owned)
    }

    #[test]
    fn what_the_table_asks_for_is_started_and_what_it_dropped_is_stopped() {
        let m = daemon(Master, 7);
        let b = daemon(Backup, 7);
        // Nothing runs: both are started, master first.
        assert_eq!(
            steps_of(&wanted(Some(m.clone()), Some(b.clone())), &[], &owned(&[])),
            [Step::Start(m.clone()), Step::Start(b.clone())]
        );
        // Both run as asked: nothing to do.
        let running = [m.clone(), b.clone()];
        let both = owned(&[Master, Backup]);
        assert!(steps_of(&wanted(Some(m.clone()), Some(b.clone())), &running, &both).is_empty());
        // The table dropped the backup: uvs's is stopped.
        assert_eq!(
            steps_of(&wanted(Some(m.clone()), None), &running, &both),
            [Step::Stop(Backup)]
        );
        // It is gone from both: forgotten.
        assert_eq!(
            steps_of(&wanted(Some(m.clone()), None), &running[..1], &both),
            [Step::Forget(Backup)]
        );
    }

    #[test]
    fn a_daemon_stopped_behind_uvss_back_is_started_again_and_a_changed_one_restarted() {
        let m = daemon(Master, 7);
        // ipvsadm --stop-daemon master: the next pass starts it again.
        assert_eq!(
            steps_of(&wanted(Some(m.clone()), None), &[], &owned(&[Master])),
            [Step::Start(m.clone())]
        );
        // The file's [sync] changed the sync id: stop, then start with the new one.
        let changed = daemon(Master, 9);
        assert_eq!(
            steps_of(
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
            steps_of(
                &wanted(None, None),
                std::slice::from_ref(&theirs),
                &owned(&[])
            )
            .is_empty()
        );
        // Asked for with other settings: reported, not stopped.
        assert_eq!(
            steps_of(
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
            steps_of(&wanted(Some(m), None), &[old_kernel], &owned(&[])),
            [Step::Adopt(Master)]
        );
    }

    #[test]
    fn the_files_sync_replaces_another_daemon_of_its_roles_uvsadms_does_not() {
        // cleanstop = false left the master with sync id 7 running; uvs starts again
        // with [sync] syncid = 9: the file's role, so the old one is replaced.
        let old = daemon(Master, 7);
        let file = daemon(Master, 9);
        let master_from_file = SyncFromFile {
            master: true,
            backup: false,
        };
        let running = std::slice::from_ref(&old);
        assert_eq!(
            steps(
                &wanted(Some(file.clone()), None),
                master_from_file,
                running,
                &owned(&[])
            ),
            [Step::Replace {
                theirs: old.clone(),
                want: file.clone()
            }]
        );
        // The same daemon from uvsadm: someone else's, left alone.
        assert_eq!(
            steps(
                &wanted(Some(file.clone()), None),
                SyncFromFile::default(),
                running,
                &owned(&[])
            ),
            [Step::Foreign(old.clone())]
        );
        // The file names the master only: another's backup is not its business, even
        // when the table also has a backup of uvsadm's.
        let their_backup = daemon(Backup, 3);
        let ours_backup = daemon(Backup, 4);
        assert_eq!(
            steps(
                &wanted(Some(file.clone()), Some(ours_backup)),
                master_from_file,
                &[file.clone(), their_backup.clone()],
                &owned(&[Master])
            ),
            [Step::Foreign(their_backup.clone())]
        );
        assert!(
            steps(
                &wanted(Some(file.clone()), None),
                master_from_file,
                &[file.clone(), their_backup],
                &owned(&[Master])
            )
            .is_empty()
        );
        // The old one runs as the file asks: taken over, not replaced.
        assert_eq!(
            steps(
                &wanted(Some(file.clone()), None),
                master_from_file,
                std::slice::from_ref(&file),
                &owned(&[])
            ),
            [Step::Adopt(Master)]
        );
    }
}
