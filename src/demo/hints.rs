//! What `uvs demo` tells its user to try, in lines that work as printed: the uvs and
//! uvsadm named are the ones beside the running binary (the pair `cargo build --release`
//! made), written as the user's shell reaches them: the bare name when the first such
//! name on `PATH` is that very file, else a path relative to the current directory when
//! the binary is under it (`target/release/uvsadm`), else its absolute path. Called by
//! `main` (the demo's banner).

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// How a shell in `cwd` with `path_var` as `PATH` runs `program` (an absolute path):
/// the bare file name when `PATH`'s first file of that name is `program` (symbolic
/// links resolved), else `program` relative to `cwd` when under it (`./uvsadm` when in
/// it), else `program` as it is; quoted for the shell when it must be.
pub fn shown(program: &Path, cwd: Option<&Path>, path_var: Option<&OsStr>) -> String {
    let Some(name) = program.file_name() else {
        return quoted(&program.to_string_lossy());
    };
    if let Some(found) = path_var.and_then(|p| on_path(name, p, cwd))
        && same_file(&found, program)
    {
        return quoted(&name.to_string_lossy());
    }
    if let Some(rest) = cwd.and_then(|cwd| program.strip_prefix(cwd).ok()) {
        let rest = rest.to_string_lossy();
        if !rest.is_empty() {
            return quoted(&if rest.contains('/') {
                rest.into_owned()
            } else {
                format!("./{rest}")
            });
        }
    }
    quoted(&program.to_string_lossy())
}

/// The first executable file `name` in the directories of `path_var`, as the shell
/// looks (an empty entry is the current directory).
fn on_path(name: &OsStr, path_var: &OsStr, cwd: Option<&Path>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path_var).find_map(|dir| {
        let dir = if dir.is_absolute() {
            dir
        } else {
            cwd?.join(dir)
        };
        let candidate = dir.join(name);
        let meta = std::fs::metadata(&candidate).ok()?;
        (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(candidate)
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    matches!(
        (std::fs::canonicalize(a), std::fs::canonicalize(b)),
        (Ok(a), Ok(b)) if a == b
    )
}

/// `word` as one shell word: as it is when only safe characters make it, else in
/// single quotes.
fn quoted(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._+-:@%,=".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The programs the hints run, as [`shown`] writes them: `uvs` (the running binary)
/// and `uvsadm` beside it, None when it is not there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Programs {
    pub uvs: String,
    pub uvsadm: Option<String>,
}

impl Programs {
    /// The running binary's and its uvsadm's, as this process's shell would reach them.
    pub fn here() -> Programs {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("uvs"));
        let cwd = std::env::current_dir().ok();
        let path_var = std::env::var_os("PATH");
        let show = |p: &Path| shown(p, cwd.as_deref(), path_var.as_deref());
        let uvsadm = exe.with_file_name("uvsadm");
        Programs {
            uvs: show(&exe),
            uvsadm: uvsadm.is_file().then(|| show(&uvsadm)),
        }
    }
}

/// The "Try, in another terminal" block: traffic to `vip` over TCP and UDP, then the
/// table, connections and status of the daemon on `socket`, and its status page when
/// it serves one at `page` (the `--metrics` address).
pub fn hints(
    vip: SocketAddr,
    socket: &Path,
    programs: &Programs,
    page: Option<SocketAddr>,
) -> String {
    let s = quoted(&socket.to_string_lossy());
    let mut out = format!(
        "Try, in another terminal:\n  \
         for i in $(seq 10); do curl -s {vip}; done\n  \
         for i in $(seq 10); do exec 3<>/dev/udp/{ip}/{port}; echo hi >&3; timeout 1 dd bs=64 count=1 status=none <&3; exec 3<&-; done\n",
        ip = vip.ip(),
        port = vip.port(),
    );
    match &programs.uvsadm {
        Some(uvsadm) => out.push_str(&format!(
            "  {uvsadm} --socket {s} -L -n --stats\n  {uvsadm} --socket {s} -L -n -c\n"
        )),
        None => {
            out.push_str("  (uvsadm is not beside this uvs: `cargo build --release` builds both)\n")
        }
    }
    out.push_str(&format!("  {} status --socket {s}\n", programs.uvs));
    if let Some(page) = page {
        out.push_str(&format!(
            "  curl -sI http://{page}/    # the status page: open it in a browser\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory with executable files `names`, and one with links to them.
    fn programs(names: &[&str]) -> (tempfile::TempDir, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("target").join("release");
        std::fs::create_dir_all(&bin).unwrap();
        for name in names {
            let file = bin.join(name);
            std::fs::write(&file, "").unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let real = std::fs::canonicalize(&bin).unwrap();
        (dir, real)
    }

    #[test]
    fn a_program_under_the_current_directory_is_shown_relative_to_it() {
        let (_dir, bin) = programs(&["uvsadm"]);
        let top = bin.parent().unwrap().parent().unwrap();
        let uvsadm = bin.join("uvsadm");
        assert_eq!(shown(&uvsadm, Some(top), None), "target/release/uvsadm");
        assert_eq!(shown(&uvsadm, Some(&bin), None), "./uvsadm");
        // Elsewhere: as it is.
        let elsewhere = tempfile::tempdir().unwrap();
        assert_eq!(
            shown(&uvsadm, Some(elsewhere.path()), None),
            uvsadm.display().to_string()
        );
    }

    #[test]
    fn the_bare_name_only_when_path_finds_that_very_file_first() {
        let (_dir, bin) = programs(&["uvsadm"]);
        let uvsadm = bin.join("uvsadm");
        let (_other_dir, other) = programs(&["uvsadm"]);
        let elsewhere = tempfile::tempdir().unwrap();
        let cwd = Some(elsewhere.path());
        // A link to it on PATH is the same file.
        let links = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&uvsadm, links.path().join("uvsadm")).unwrap();
        let path = std::env::join_paths([links.path()]).unwrap();
        assert_eq!(shown(&uvsadm, cwd, Some(&path)), "uvsadm");
        // Another uvsadm found first: the path, not the name.
        let path = std::env::join_paths([other.as_path(), links.path()]).unwrap();
        assert_eq!(
            shown(&uvsadm, cwd, Some(&path)),
            uvsadm.display().to_string()
        );
        // An empty entry is the current directory.
        let path = OsStr::new(":/nonexistent");
        assert_eq!(shown(&uvsadm, Some(&bin), Some(path)), "uvsadm");
    }

    #[test]
    fn a_path_the_shell_would_split_is_quoted() {
        assert_eq!(
            shown(Path::new("/tmp/my dir/uvsadm"), None, None),
            "'/tmp/my dir/uvsadm'"
        );
        assert_eq!(quoted("it's"), r"'it'\''s'");
    }

    #[test]
    fn without_uvsadm_the_hints_say_how_to_build_it() {
        let vip: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let programs = Programs {
            uvs: "target/release/uvs".into(),
            uvsadm: None,
        };
        let text = hints(vip, Path::new("/tmp/d/uvs.sock"), &programs, None);
        assert!(!text.contains(" -L -n"), "{text}");
        assert!(text.contains("cargo build --release"), "{text}");
        assert!(text.ends_with("  target/release/uvs status --socket /tmp/d/uvs.sock\n"));
    }

    #[test]
    fn the_status_page_is_named_where_the_daemon_serves_it() {
        let vip: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let programs = Programs {
            uvs: "uvs".into(),
            uvsadm: Some("uvsadm".into()),
        };
        let page = "127.0.0.1:9280".parse().ok();
        let text = hints(vip, Path::new("/tmp/d/uvs.sock"), &programs, page);
        assert!(
            text.ends_with(
                "  uvs status --socket /tmp/d/uvs.sock\n  \
                 curl -sI http://127.0.0.1:9280/    # the status page: open it in a browser\n"
            ),
            "{text}"
        );
        let text = hints(vip, Path::new("/tmp/d/uvs.sock"), &programs, None);
        assert!(!text.contains("status page"), "{text}");
    }
}
