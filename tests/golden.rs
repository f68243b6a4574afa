//! Replays the reference session of real ipvsadm 1.31 on a real IPVS kernel
//! (tests/golden, copied from shared/golden: INDEX.tsv lists every command with its
//! captured stdout, stderr and exit status) against `uvs run`, with `uvsadm` standing in
//! for `ipvsadm` and `ipvsadm-save`, and requires the same bytes and status for every
//! command except those that need kernel traffic, /proc files or the environment (the
//! sync daemon's group runs on `lo`, which every host has).
//!
//! The `--nosort` listings, which depend on the kernel's hash order, are compared
//! exactly too: uvs reproduces that order (see `table::order`).

mod common;

use std::process::Command;

use common::{Daemon, fixture, run_with_input, text};

/// Groups that need what uvs (in userspace) does not have: traffic through the kernel,
/// or the host environment.
const EXCLUDED: [&str; 4] = ["traffic_", "env_", "proc_", "empty_proc_"];

/// Reads of /proc/net/ip_vs* (also inside other groups, e.g. `sort_proc_net_ip_vs`).
fn reads_proc(name: &str) -> bool {
    name.contains("proc_net_ip_vs")
}

fn needs_shell(line: &str) -> bool {
    line.contains(['|', '>', '<', ';', '&', '$', '"', '\''])
}

struct Mismatch {
    name: String,
    command: String,
    what: String,
}

#[test]
fn uvsadm_answers_every_reference_command_as_ipvsadm_did() {
    let daemon = Daemon::start();
    let index = std::fs::read_to_string(fixture("golden/INDEX.tsv")).expect("INDEX.tsv");
    let tmp = format!("{}/", daemon.dir.path().display());
    let mut mismatches = Vec::new();
    let mut compared = 0;

    for row in index.lines() {
        let mut fields = row.splitn(3, '\t');
        let (Some(name), Some(_rc), Some(line)) = (fields.next(), fields.next(), fields.next())
        else {
            panic!("bad INDEX.tsv row: {row}");
        };
        if EXCLUDED.iter().any(|p| name.starts_with(p)) || reads_proc(name) {
            continue;
        }
        let line = line.replace("/tmp/", &tmp);
        let out = if needs_shell(&line) {
            daemon.shell(&line)
        } else {
            let words: Vec<&str> = line.split_whitespace().collect();
            let mut cmd = Command::new(words[0]);
            cmd.args(&words[1..]);
            daemon.configure(&mut cmd);
            run_with_input(cmd, "")
        };
        compared += 1;

        let golden = |ext: &str| {
            std::fs::read(fixture(&format!("golden/{name}.{ext}")))
                .unwrap_or_else(|e| panic!("golden/{name}.{ext}: {e}"))
        };
        let want_rc: i32 = text(&golden("rc")).trim().parse().expect("rc");
        let got_rc = out.status.code().unwrap_or(-1);
        let mut what = Vec::new();
        if got_rc != want_rc {
            what.push(format!("exit status {got_rc}, ipvsadm gave {want_rc}"));
        }
        for (stream, got, want) in [
            ("stdout", &out.stdout, golden("out")),
            ("stderr", &out.stderr, golden("err")),
        ] {
            if *got != want {
                what.push(format!(
                    "{stream} differs:\n--- ipvsadm\n{}--- uvsadm\n{}",
                    text(&want),
                    text(got)
                ));
            }
        }
        if !what.is_empty() {
            mismatches.push(Mismatch {
                name: name.to_string(),
                command: line.clone(),
                what: what.join("\n"),
            });
        }
    }

    assert!(
        compared > 180,
        "only {compared} reference commands were compared"
    );
    if !mismatches.is_empty() {
        let report: Vec<String> = mismatches
            .iter()
            .map(|m| format!("== {} ({})\n{}", m.name, m.command, m.what))
            .collect();
        panic!(
            "{} of {compared} reference commands differ:\n{}",
            mismatches.len(),
            report.join("\n")
        );
    }
}
