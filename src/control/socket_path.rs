//! Where the control socket lives (`--socket`, else `UVS_SOCKET`, else a default under
//! the runtime directory; the daemon and uvsadm compute the same default), and whether
//! its directory can be trusted. Both sides refuse a socket whose directory another
//! user could replace it in, as ssh-agent, tmux and gpg-agent do: otherwise another
//! user who made `$TMPDIR/uvs-<uid>` first could swap the daemon's socket for their
//! own and receive the owner's commands.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::sys;

/// `/run/uvs/uvs.sock` for root; `$XDG_RUNTIME_DIR/uvs/uvs.sock` for other users, or
/// `$TMPDIR/uvs-<uid>/uvs.sock` where there is no runtime directory.
pub fn default_path() -> PathBuf {
    let uid = sys::effective_uid();
    if uid == 0 {
        return PathBuf::from("/run/uvs/uvs.sock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir.join("uvs").join("uvs.sock"),
        _ => std::env::temp_dir()
            .join(format!("uvs-{uid}"))
            .join("uvs.sock"),
    }
}

/// `UVS_SOCKET` when set and not empty, else [`default_path`].
pub fn from_env() -> PathBuf {
    chosen(None).0
}

/// Which rule chose the control socket's path, for messages that say where a daemon
/// was looked for (`uvs status` with none running).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `--socket PATH`.
    Flag,
    /// `$UVS_SOCKET`.
    Env,
    /// Root's default, `/run/uvs/uvs.sock`.
    Root,
    /// Another user's default under `$XDG_RUNTIME_DIR`.
    RuntimeDir,
    /// Another user's default under `$TMPDIR` (no runtime directory).
    TempDir,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rule::Flag => "given by --socket",
            Rule::Env => "from $UVS_SOCKET",
            Rule::Root => "root's default; --socket or $UVS_SOCKET choose another",
            Rule::RuntimeDir => {
                "the default, in $XDG_RUNTIME_DIR; --socket or $UVS_SOCKET choose another"
            }
            Rule::TempDir => {
                "the default when $XDG_RUNTIME_DIR is unset; --socket or $UVS_SOCKET choose another"
            }
        })
    }
}

/// The control socket's path and the rule that chose it: `flag` (`--socket`) when
/// given, else `UVS_SOCKET` when set and not empty, else [`default_path`]'s.
pub fn chosen(flag: Option<PathBuf>) -> (PathBuf, Rule) {
    if let Some(path) = flag {
        return (path, Rule::Flag);
    }
    if let Some(p) = std::env::var_os("UVS_SOCKET").filter(|p| !p.is_empty()) {
        return (PathBuf::from(p), Rule::Env);
    }
    let path = default_path();
    let rule = if sys::effective_uid() == 0 {
        Rule::Root
    } else if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| Path::new(&d).is_absolute()) {
        Rule::RuntimeDir
    } else {
        Rule::TempDir
    };
    (path, rule)
}

/// Why a directory on the way to the control socket is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Untrusted {
    #[error(
        "{} is owned by uid {owner}, not by {}",
        path.display(),
        if *uid == 0 { "root".to_string() } else { format!("uid {uid} or root") }
    )]
    Owner { path: PathBuf, owner: u32, uid: u32 },
    #[error(
        "{} is writable by {who} (mode {mode:04o}), so they could replace the socket; \
         make it 0700 (chmod go-w)",
        path.display()
    )]
    Writable {
        path: PathBuf,
        who: &'static str,
        mode: u32,
    },
    #[error("cannot check {}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
}

/// The socket's directory: its parent, or the current directory for a bare name.
pub fn directory(socket: &Path) -> PathBuf {
    match socket.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Checks that nobody but this user (and root) can replace what is in `dir`: every
/// directory from it up to `/`, both as written and with symbolic links resolved, is
/// owned by the effective user or root and writable by nobody else, unless it has the
/// sticky bit (like /tmp, where only an entry's owner may remove or rename it). A
/// symbolic link on the way must be owned by the user or root too. `also` is one more
/// owner to trust: root's uvsadm trusts the uid its daemon runs as (a systemd
/// `DynamicUser` daemon owns its runtime directory).
pub fn check_directory(dir: &Path, also: Option<u32>) -> Result<(), Untrusted> {
    let uid = sys::effective_uid();
    let trusted = |owner: u32| owner == uid || owner == 0 || Some(owner) == also;
    let unreadable = |path: &Path, e: std::io::Error| Untrusted::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let absolute = std::path::absolute(dir).map_err(|e| unreadable(dir, e))?;
    // As written: a link is judged by who owns it, the directories holding it as any.
    let mut prefix = PathBuf::new();
    for part in absolute.components() {
        if part == Component::ParentDir {
            prefix.pop();
            continue;
        }
        prefix.push(part);
        let meta = std::fs::symlink_metadata(&prefix).map_err(|e| unreadable(&prefix, e))?;
        if meta.file_type().is_symlink() {
            trusted_owner(&prefix, meta.uid(), uid, &trusted)?;
        } else {
            trusted_directory(&prefix, &meta, uid, &trusted)?;
        }
    }
    // And where the links lead.
    let real = std::fs::canonicalize(&absolute).map_err(|e| unreadable(&absolute, e))?;
    for dir in real.ancestors() {
        let meta = std::fs::metadata(dir).map_err(|e| unreadable(dir, e))?;
        trusted_directory(dir, &meta, uid, &trusted)?;
    }
    Ok(())
}

fn trusted_owner(
    path: &Path,
    owner: u32,
    uid: u32,
    trusted: &impl Fn(u32) -> bool,
) -> Result<(), Untrusted> {
    if trusted(owner) {
        Ok(())
    } else {
        Err(Untrusted::Owner {
            path: path.to_path_buf(),
            owner,
            uid,
        })
    }
}

fn trusted_directory(
    path: &Path,
    meta: &std::fs::Metadata,
    uid: u32,
    trusted: &impl Fn(u32) -> bool,
) -> Result<(), Untrusted> {
    trusted_owner(path, meta.uid(), uid, trusted)?;
    let mode = meta.permissions().mode() & 0o7777;
    const STICKY: u32 = 0o1000;
    if mode & STICKY != 0 {
        return Ok(());
    }
    let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (_, true) => "other users",
        (true, false) => "its group",
        (false, false) => return Ok(()),
    };
    Err(Untrusted::Writable {
        path: path.to_path_buf(),
        who,
        mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A new directory `name` in `parent`, with `mode`.
    fn directory(parent: &Path, name: &str, mode: u32) -> std::path::PathBuf {
        let path = parent.join(name);
        std::fs::create_dir(&path).unwrap();
        chmod(&path, mode);
        path
    }

    #[test]
    fn private_and_sticky_directories_are_trusted() {
        let base = tempfile::tempdir().unwrap();
        let private = directory(base.path(), "private", 0o700);
        assert_eq!(check_directory(&private, None), Ok(()));
        // A shared directory with the sticky bit, as /tmp.
        let sticky = directory(base.path(), "sticky", 0o1777);
        assert_eq!(check_directory(&sticky, None), Ok(()));
    }

    #[test]
    fn directories_others_can_write_are_not() {
        let base = tempfile::tempdir().unwrap();
        let open = directory(base.path(), "open", 0o777);
        assert!(matches!(
            check_directory(&open, None),
            Err(Untrusted::Writable {
                who: "other users",
                mode: 0o777,
                ..
            })
        ));
        chmod(&open, 0o770);
        let e = check_directory(&open, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{} is writable by its group (mode 0770), so they could replace the socket; \
                 make it 0700 (chmod go-w)",
                open.display()
            )
        );
        // Below a directory others can write, a private one is no better: the parent's
        // writers could rename it away and put their own in its place.
        chmod(&open, 0o777);
        let inner = directory(&open, "inner", 0o700);
        assert!(matches!(
            check_directory(&inner, None),
            Err(Untrusted::Writable { path, .. }) if path == open
        ));
        // Also through a symbolic link that hides it.
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&inner, &link).unwrap();
        assert!(check_directory(&link, None).is_err());
    }
}
