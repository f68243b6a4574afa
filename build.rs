//! Build script: names the commit in `uvs --version`, and finds the outside programs some
//! tests drive (promtool, prometheus, chromium; groff, zsh and fish for the
//! man pages and completions), so that a test whose program is absent
//! is reported as ignored, with the reason, instead of passing having checked nothing.
//!
//! - `UVS_COMMIT` (compile-time env): the environment's `UVS_COMMIT` (a build from a
//!   tarball or a package), else `git rev-parse --short=12 HEAD` when the crate is the
//!   top of its own work tree, else `unknown` (`build/commit.rs`).
//! - `cfg(uvs_has_TOOL)` and the compile-time env `UVS_TOOL_PATH` for each tool found:
//!   `UVS_TOOL` (e.g. `UVS_PROMTOOL=/path/promtool`) when set, else the first match on
//!   `PATH` as it was when this script last ran (it re-runs when build.rs or a
//!   `UVS_*` variable changes). With `UVS_REQUIRE_TOOLS=1` (CI) a missing tool fails
//!   the build.

use std::env;
use std::path::{Path, PathBuf};

#[path = "build/commit.rs"]
mod commit;

/// The tools: (cfg suffix and env name, the program names to look for on PATH).
const TOOLS: [(&str, &[&str]); 6] = [
    ("promtool", &["promtool"]),
    ("prometheus", &["prometheus"]),
    ("chromium", &["chromium", "chromium-browser"]),
    ("groff", &["groff"]),
    ("zsh", &["zsh"]),
    ("fish", &["fish"]),
];

fn main() {
    commit();
    tools();
}

fn commit() {
    println!("cargo::rerun-if-env-changed=UVS_COMMIT");
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let from_env = env::var("UVS_COMMIT").ok();
    let commit = commit::commit(&manifest_dir, from_env.as_deref());
    // Rebuild when HEAD moves: HEAD itself (a checkout) and its reflog (a commit).
    if let Some(dir) = &commit.git_dir {
        for f in ["HEAD", "logs/HEAD"] {
            let p = dir.join(f);
            if p.exists() {
                println!("cargo::rerun-if-changed={}", p.display());
            }
        }
    }
    println!("cargo::rustc-env=UVS_COMMIT={}", commit.name);
}

fn tools() {
    let require = env::var("UVS_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
    println!("cargo::rerun-if-env-changed=UVS_REQUIRE_TOOLS");
    // Not PATH nor /usr/bin: a re-run recompiles the whole crate, and both change for
    // reasons of their own (another shell, any package installed). A tool installed
    // later is found once this script runs again: `touch build.rs`, or set UVS_TOOL.
    let mut missing = Vec::new();
    for (name, programs) in TOOLS {
        let var = format!("UVS_{}", name.to_uppercase());
        println!("cargo::rustc-check-cfg=cfg(uvs_has_{name})");
        println!("cargo::rerun-if-env-changed={var}");
        let found = match env::var_os(&var) {
            Some(p) => Some(PathBuf::from(p)).filter(|p| is_program(p)),
            None => programs.iter().find_map(|p| on_path(p)),
        };
        match found {
            Some(path) => {
                println!("cargo::rustc-cfg=uvs_has_{name}");
                println!("cargo::rustc-env={var}_PATH={}", path.display());
            }
            None => missing.push(name),
        }
    }
    if require && !missing.is_empty() {
        panic!(
            "UVS_REQUIRE_TOOLS=1 but not found: {} (set UVS_<TOOL>=PATH or put it on PATH)",
            missing.join(", ")
        );
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| is_program(p))
}

fn is_program(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
