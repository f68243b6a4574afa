//! The commit `uvs --version` names (build.rs, through `build/commit.rs`, included here):
//! the environment's `UVS_COMMIT` wins; git's HEAD only for a crate that is the top of
//! its own work tree, never that of a repository the sources were unpacked inside.
//! Real git repositories in temporary directories.

#[path = "../build/commit.rs"]
mod commit;

use std::path::Path;
use std::process::Command;

use commit::commit;

/// Runs git in `dir` (as a throwaway identity), which must succeed; its output.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .expect("git runs (it is needed to build uvs from its repository)");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A repository at `dir` with one commit; its short HEAD.
fn repository(dir: &Path) -> String {
    git(dir, &["init", "-q"]);
    std::fs::write(dir.join("README"), "x\n").unwrap();
    git(dir, &["add", "README"]);
    git(dir, &["commit", "-q", "-m", "one"]);
    git(dir, &["rev-parse", "--short=12", "HEAD"])
}

#[test]
fn sources_unpacked_inside_another_repository_do_not_name_its_commit() {
    let outer = tempfile::tempdir().unwrap();
    let outer_head = repository(outer.path());
    let crate_dir = outer.path().join("uvs-0.1.0");
    std::fs::create_dir(&crate_dir).unwrap();
    std::fs::write(crate_dir.join("Cargo.toml"), "[package]\n").unwrap();
    let found = commit(&crate_dir, None);
    assert_ne!(found.name, outer_head);
    assert_eq!(found.name, "unknown");
    assert_eq!(found.git_dir, None);
    // The packager's UVS_COMMIT names it.
    assert_eq!(
        commit(&crate_dir, Some("0123456789ab")).name,
        "0123456789ab"
    );
}

#[test]
fn the_environment_wins_over_the_crates_own_repository() {
    let dir = tempfile::tempdir().unwrap();
    let head = repository(dir.path());
    let own = commit(dir.path(), None);
    assert_eq!(own.name, head);
    assert!(own.git_dir.is_some_and(|d| d.join("HEAD").exists()));
    let given = commit(dir.path(), Some("fedcba987654"));
    assert_eq!(given.name, "fedcba987654");
    assert_eq!(given.git_dir, None);
    // Empty is unset.
    assert_eq!(commit(dir.path(), Some("")).name, head);
}
