//! `uvs --version` names the commit it was built from (build.rs's `UVS_COMMIT`): 12
//! hex digits, or "unknown" for a build outside a git checkout; and where git can say,
//! the commit of the checkout the test was built in.

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

    // What git says of the checkout, when it can: the binary is built from it.
    let git = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    if let Ok(git) = git
        && git.status.success()
    {
        let head = String::from_utf8_lossy(&git.stdout).trim().to_string();
        assert_eq!(commit, head, "uvs --version names another commit than HEAD");
    }
}
