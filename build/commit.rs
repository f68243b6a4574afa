//! Which commit `uvs --version` names, for build.rs (and tests/build_commit.rs, which
//! includes this file): the environment's `UVS_COMMIT` first (a build from a tarball or
//! a package sets it), else git's HEAD, but only when the crate is the top of its own
//! git work tree: a tarball unpacked inside another repository (a packaging tree, a
//! home directory under git) must not name that repository's commit. Else `unknown`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The commit's name, and the git directory whose HEAD it was read from (to rebuild
/// when HEAD moves); None when it did not come from git.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub name: String,
    pub git_dir: Option<PathBuf>,
}

/// The commit of the crate at `manifest_dir` (`CARGO_MANIFEST_DIR`), given the
/// environment's `UVS_COMMIT` (`from_env`; empty counts as unset).
pub fn commit(manifest_dir: &Path, from_env: Option<&str>) -> Commit {
    if let Some(name) = from_env.map(str::trim).filter(|s| !s.is_empty()) {
        return Commit {
            name: name.to_owned(),
            git_dir: None,
        };
    }
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(manifest_dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let own_tree = git(&["rev-parse", "--show-toplevel"])
        .is_some_and(|top| same(Path::new(&top), manifest_dir));
    if own_tree && let Some(name) = git(&["rev-parse", "--short=12", "HEAD"]) {
        return Commit {
            name,
            git_dir: git(&["rev-parse", "--absolute-git-dir"]).map(PathBuf::from),
        };
    }
    Commit {
        name: "unknown".into(),
        git_dir: None,
    }
}
