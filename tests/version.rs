//! `uvs --version` names the commit it was built from (build.rs's `UVS_COMMIT`): 12
//! hex digits, or "unknown" for a build outside a git checkout; and where git can say
//! (the crate the top of its own checkout, no `UVS_COMMIT` given), the commit of the
//! checkout the test was built in. tests/build_commit.rs tests the choice itself.

use std::process::Command;

#[test]
fn the_version_names_the_commit_the_binary_was_built_from() {
    let out = Command::new(env!("CARGO_BIN_EXE_uvs"))
        .arg("--version")
        .output()
        .expect("run uvs --version");
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).expect("UTF-8");
    let prefix = format!("uvs {} (commit ", env!("CARGO_PKG_VERSION"));
    let commit = line
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(")\n"))
        .unwrap_or_else(|| panic!("unexpected version line {line:?}"));
    let hex = commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit());
    assert!(hex || commit == "unknown", "commit {commit:?}");

    // What git says of the checkout, when it can and build.rs asks it (no UVS_COMMIT
    // given, the crate the top of its work tree): the binary is built from it.
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    let own_tree = git(&["rev-parse", "--show-toplevel"]).is_some_and(|top| {
        let top = std::path::PathBuf::from(String::from_utf8_lossy(&top.stdout).trim());
        top.canonicalize().ok()
            == std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .canonicalize()
                .ok()
    });
    let given = std::env::var_os("UVS_COMMIT").is_some_and(|c| !c.is_empty());
    if let Some(git) = git(&["rev-parse", "--short=12", "HEAD"])
        && own_tree
        && !given
    {
        let head = String::from_utf8_lossy(&git.stdout).trim().to_string();
        assert_eq!(commit, head, "uvs --version names another commit than HEAD");
    }
}
