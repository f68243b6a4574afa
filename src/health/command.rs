//! The one way the health checker runs a command: an external check's (`check::External`)
//! and the notify commands keepalived runs on a change of state (`notify_up`,
//! `notify_down`, `quorum_up`, `quorum_down`: `notify`). Each runs without a shell
//! (its words as [`crate::config::words`] splits them, as keepalived's core/notify.c
//! `system_call_script` execs them), in a process group of its own killed when it ends
//! or its bound passes ([`orphans::spawn`]: what leaves the group is the reaper's),
//! with standard input, output and error on /dev/null, so nothing it writes is kept.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use super::orphans::{self, CheckCommand};
use crate::config::NotifyCommand;

/// How long a notify command may run before it is killed with its group. keepalived
/// lets a notify script run as long as it likes while it runs (`notify_exec`); a bound
/// keeps one that hangs from piling up behind every later change.
pub const NOTIFY_BOUND: Duration = Duration::from_secs(30);

/// How long the notify commands of a stop (`omega`) may run: keepalived gives them
/// one second (`system_call_script(..., TIMER_HZ, ...)` in check/ipwrapper.c), uvs
/// two, the time its reaper gives the children left at exit.
pub const STOP_BOUND: Duration = Duration::from_secs(2);

/// Spawns `words` (the program, then its arguments) with `extra` arguments after them,
/// as the user and group ids `run_as` gives (setgid, then setuid in the child, with no
/// supplementary groups: the daemon must be root), or as the daemon's own.
///
/// # Errors
/// No word at all, or the program could not be started.
pub fn spawn(
    words: &[String],
    extra: &[String],
    run_as: Option<(u32, u32)>,
) -> io::Result<CheckCommand> {
    let (program, args) = words
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no command to run"))?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some((uid, gid)) = run_as {
        command.uid(uid).gid(gid);
    }
    orphans::spawn(&mut command)
}

/// Why a notify command did not run to a good end.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("not a command: {0}")]
    Words(#[from] crate::config::words::WordsError),
    /// Its user or group, which the system does not know (any more).
    #[error("{0}")]
    RunAs(#[from] crate::config::words::RunAsError),
    #[error("cannot run it as user {0}: uvs does not run as root")]
    NotRoot(String),
    #[error("cannot run it: {0}")]
    Spawn(io::Error),
    #[error("it ran over {0:?} and was killed")]
    Timeout(Duration),
    #[error("it exited with {0}")]
    Exit(ExitStatus),
}

/// Runs the command `line` once, as its user if it names one, bounded by `bound`;
/// `what` says why, for the log. A failure is logged (keepalived: "Script errors aren't
/// server errors").
pub async fn notify(what: String, line: NotifyCommand, bound: Duration) -> Result<(), NotifyError> {
    let result = run(&line, bound).await;
    match &result {
        Ok(()) => tracing::info!(command = %line, "{what}: ran"),
        Err(e) => tracing::warn!(command = %line, "{what}: {e}"),
    }
    result
}

async fn run(line: &NotifyCommand, bound: Duration) -> Result<(), NotifyError> {
    let words = crate::config::words(line)?;
    let ids = match &line.user {
        None => None,
        Some(user) => {
            let ids = crate::config::words::run_as(user, line.group.as_deref())?;
            let own = (crate::sys::effective_uid(), crate::sys::effective_gid());
            if ids == own {
                // Already that user and group: nothing to switch, root or not.
                None
            } else if own.0 != 0 {
                // setuid needs root, as for an external check's user.
                return Err(NotifyError::NotRoot(user.clone()));
            } else {
                Some(ids)
            }
        }
    };
    let mut child = spawn(&words, &[], ids).map_err(NotifyError::Spawn)?;
    match tokio::time::timeout(bound, child.wait()).await {
        Err(_) => Err(NotifyError::Timeout(bound)),
        Ok(Err(e)) => Err(NotifyError::Spawn(e)),
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(NotifyError::Exit(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_notify_command_runs_without_a_shell_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        // Words, not a shell line: the quotes group, `>` is an argument.
        let line = format!("/bin/sh -c 'echo \"$0 $1\" > {}' 'a b' '>'", out.display());
        notify("test".into(), line.into(), NOTIFY_BOUND)
            .await
            .unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "a b >\n");
        let failed = notify("test".into(), "/bin/sh -c 'exit 3'".into(), NOTIFY_BOUND).await;
        assert!(matches!(failed, Err(NotifyError::Exit(s)) if s.code() == Some(3)));
        let hung = notify(
            "test".into(),
            "/bin/sleep 30".into(),
            Duration::from_millis(200),
        )
        .await;
        assert!(matches!(hung, Err(NotifyError::Timeout(_))), "{hung:?}");
        let missing = notify("test".into(), "/nonexistent/x".into(), NOTIFY_BOUND).await;
        assert!(matches!(missing, Err(NotifyError::Spawn(_))));
    }

    /// keepalived's `notify_up CMD USER [GROUP]`: as that user and group, which needs
    /// root; without root it is refused, not run as the daemon's user.
    #[tokio::test]
    async fn a_notify_command_runs_as_its_user_or_is_refused_without_root() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let out = dir.path().join("id");
        let line = NotifyCommand {
            line: format!("/bin/sh -c 'id > {}'", out.display()),
            user: Some("nobody".into()),
            group: None,
        };
        let result = notify("test".into(), line.clone(), NOTIFY_BOUND).await;
        let (uid, _) = crate::config::words::run_as("nobody", None).unwrap();
        if crate::sys::effective_uid() == 0 {
            result.unwrap();
            let id = std::fs::read_to_string(&out).unwrap();
            assert!(id.starts_with(&format!("uid={uid}(")), "{id}");
        } else {
            assert!(
                matches!(&result, Err(NotifyError::NotRoot(u)) if u == "nobody"),
                "{result:?}"
            );
            assert!(!out.exists(), "not run as the daemon's user instead");
        }
        let unknown = NotifyCommand {
            user: Some("no-such-user-uvs".into()),
            ..line
        };
        assert!(matches!(
            notify("test".into(), unknown, NOTIFY_BOUND).await,
            Err(NotifyError::RunAs(_))
        ));
    }
}
