//! ldirectord's `checktype = external`: `command` run with vip vport rip rport appended
//! (with `target_arguments = false`, as keepalived's MISC_CHECK runs its misc_path:
//! the words alone);
//! exit 0 is up. With `dynamic_weight` (keepalived's misc_dynamic), an exit code in
//! 2..=255 is up with weight code-2. The command runs in a process group of its own,
//! killed when the probe ends or is dropped (its timeout), and what leaves the group is
//! the reaper's: spawned as every command the checker runs is (`health::command`).

use super::{BuildError, Endpoint, Failure, Outcome, Probe};
use crate::config::Check;
use crate::health::command;

/// The command and how its exit code is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    /// The program, then its own arguments (`config::CheckCommand::words`).
    words: Vec<String>,
    /// Whether vip vport rip rport follow them.
    target_arguments: bool,
    dynamic_weight: bool,
    /// The user (by name) and the user and group ids the command runs as
    /// (keepalived's MISC_CHECK `user`).
    run_as: Option<(String, u32, u32)>,
}

impl External {
    /// # Errors
    /// A `user` or `group` the system does not know ([`BuildError::RunAs`]).
    pub fn build(settings: &Check) -> Result<External, BuildError> {
        let run_as = match &settings.user {
            None => None,
            Some(user) => {
                let (uid, gid) = crate::config::words::run_as(user, settings.group.as_deref())?;
                Some((user.clone(), uid, gid))
            }
        };
        Ok(External {
            words: settings
                .command
                .as_ref()
                .map(crate::config::CheckCommand::words)
                .unwrap_or_default(),
            target_arguments: settings.target_arguments != Some(false),
            dynamic_weight: settings.dynamic_weight == Some(true),
            run_as,
        })
    }
}

impl Probe for External {
    async fn run(&self, at: &Endpoint) -> Outcome {
        let program = self
            .words
            .first()
            .ok_or_else(|| Failure::Garbled("no command to run".into()))?;
        let target = [
            at.vip.clone(),
            at.vport.to_string(),
            at.target.server.addr.to_string(),
            at.dest.port().to_string(),
        ];
        let extra = if self.target_arguments {
            &target[..]
        } else {
            &[]
        };
        let ids = match &self.run_as {
            // Already that user and group: nothing to switch, root or not.
            Some((_, uid, gid))
                if (*uid, *gid) == (crate::sys::effective_uid(), crate::sys::effective_gid()) =>
            {
                None
            }
            // setuid needs root; keepalived runs as root, uvs may not.
            Some((user, _, _)) if crate::sys::effective_uid() != 0 => {
                return Err(Failure::Io(format!(
                    "cannot run {program} as user {user}: uvs does not run as root"
                )));
            }
            Some((_, uid, gid)) => Some((*uid, *gid)),
            None => None,
        };
        // Dropped, by any return or by the probe's timeout, it kills its group.
        let mut child = command::spawn(&self.words, extra, ids)
            .map_err(|e| Failure::Io(format!("cannot run {program}: {e}")))?;
        let status = child.wait().await.map_err(|e| Failure::Io(e.to_string()))?;
        match status.code() {
            Some(0) => Ok(None),
            Some(code @ 2..=255) if self.dynamic_weight => Ok(Some(code as u32 - 2)),
            Some(code) => Err(Failure::ExitCode(code)),
            None => Err(Failure::Killed),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing::{endpoint, everything};
    use super::super::{build, probe};
    use super::*;
    use crate::config::{CheckCommand, CheckKind};
    use crate::table::Protocol;

    #[test]
    fn keeps_only_its_own_settings() {
        assert_eq!(
            External::build(&everything(CheckKind::External, None)).unwrap(),
            External {
                words: vec!["/bin/check".into(), "-v".into()],
                target_arguments: false,
                dynamic_weight: true,
                run_as: Some(("root".into(), 0, 0)),
            }
        );
    }

    #[tokio::test]
    async fn the_command_gets_vip_vport_rip_rport_and_its_exit_code_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("check.sh");
        let args = dir.path().join("args");
        // Run by /bin/sh rather than executed: a file just written can be "busy".
        std::fs::write(
            &script,
            format!("echo \"$@\" > '{}'\nexit 9\n", args.display()),
        )
        .unwrap();
        let at = endpoint("127.0.0.1:8080".parse().unwrap(), Protocol::Tcp);
        let settings = Check {
            kind: Some(CheckKind::External),
            command: Some(CheckCommand::Line(format!(
                "/bin/sh {} -x",
                script.display()
            ))),
            ..Check::default()
        };
        let timeout = Duration::from_secs(30);
        let plain = build(&settings, None).unwrap();
        assert_eq!(
            probe(&*plain, &at, timeout).await,
            Err(Failure::ExitCode(9))
        );
        assert_eq!(
            std::fs::read_to_string(&args).unwrap(),
            "-x 127.0.0.1 1 127.0.0.1 8080\n"
        );
        let dynamic = Check {
            dynamic_weight: Some(true),
            ..settings
        };
        let weighing = build(&dynamic, None).unwrap();
        assert_eq!(probe(&*weighing, &at, timeout).await, Ok(Some(7)));
    }

    /// keepalived's misc_path as `uvs import keepalived` writes it: the words as
    /// written, one of them with a space, and nothing after them.
    #[tokio::test]
    async fn words_as_written_run_as_they_are_without_the_target_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("my check.sh");
        let args = dir.path().join("args");
        std::fs::write(
            &script,
            format!("echo \"$# $@\" > '{}'\nexit 0\n", args.display()),
        )
        .unwrap();
        let at = endpoint("127.0.0.1:8080".parse().unwrap(), Protocol::Tcp);
        let settings = Check {
            kind: Some(CheckKind::External),
            command: Some(CheckCommand::Words(vec![
                "/bin/sh".into(),
                script.display().to_string(),
                "a b".into(),
            ])),
            target_arguments: Some(false),
            ..Check::default()
        };
        let check = build(&settings, None).unwrap();
        assert_eq!(probe(&*check, &at, Duration::from_secs(30)).await, Ok(None));
        assert_eq!(std::fs::read_to_string(&args).unwrap(), "1 a b\n");
    }

    #[tokio::test]
    async fn the_daemons_own_user_needs_no_root() {
        let me = std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap();
        let me = String::from_utf8(me.stdout).unwrap().trim().to_string();
        let (uid, gid) = crate::config::words::run_as(&me, None).unwrap();
        if (uid, gid) != (crate::sys::effective_uid(), crate::sys::effective_gid()) {
            return; // Run under another group than the user's own: nothing to show.
        }
        let at = endpoint("127.0.0.1:8080".parse().unwrap(), Protocol::Tcp);
        let settings = Check {
            kind: Some(CheckKind::External),
            command: Some("/bin/sh -c exit".into()),
            user: Some(me),
            ..Check::default()
        };
        let check = build(&settings, None).unwrap();
        assert_eq!(probe(&*check, &at, Duration::from_secs(30)).await, Ok(None));
    }

    #[tokio::test]
    async fn a_user_runs_the_command_as_that_user_or_is_refused_without_root() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // Anyone may write here: the command runs as nobody.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let out = dir.path().join("id");
        let at = endpoint("127.0.0.1:8080".parse().unwrap(), Protocol::Tcp);
        let settings = Check {
            kind: Some(CheckKind::External),
            command: Some(CheckCommand::Line(format!(
                "/bin/sh -c id>{}",
                out.display()
            ))),
            user: Some("nobody".into()),
            ..Check::default()
        };
        let check = build(&settings, None).unwrap();
        let result = probe(&*check, &at, Duration::from_secs(30)).await;
        let (uid, gid) = crate::config::words::run_as("nobody", None).unwrap();
        if crate::sys::effective_uid() == 0 {
            assert_eq!(result, Ok(None));
            let id = std::fs::read_to_string(&out).unwrap();
            assert!(
                id.starts_with(&format!("uid={uid}(")) && id.contains(&format!("gid={gid}(")),
                "{id}"
            );
        } else {
            assert_eq!(
                result,
                Err(Failure::Io(
                    "cannot run /bin/sh as user nobody: uvs does not run as root".into()
                ))
            );
        }
        let unknown = Check {
            user: Some("no-such-user-uvs".into()),
            ..settings
        };
        assert_eq!(
            build(&unknown, None).unwrap_err().to_string(),
            "no user named no-such-user-uvs in the system's user database"
        );
    }
}
