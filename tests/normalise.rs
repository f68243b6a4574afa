//! ipvsadm's normalisation of a real server's port on every path into the table (issue
//! 15, section 2), over real processes: the field case of ldirectord asking for a gate
//! real server on another port than the VIP's, imported, checked, run and listed by
//! `uvsadm`, saved and restored, and the same rules given as uvsadm commands. The
//! addresses are documentation ones: they are listed, never sent traffic (the checks
//! are `type = "on"`, no client connects, and the daemon only fails to bind the VIP).

mod common;

use std::process::{Command, Output, Stdio};

use common::{Daemon, UVS, Zone, text, write_file};

/// What real ipvsadm 1.31 lists for the field case: ipvsadm's parser gives the
/// direct-routing server the VIP's port; the NAT server keeps its own.
const LISTING: &str = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.0.2.50:80 rr
  -> 198.51.100.51:80             Route   1      0          0         
  -> 198.51.100.52:8080           Masq    1      0          0         
";

const SAVED: &str = "\
-A -t 192.0.2.50:80 -s rr
-a -t 192.0.2.50:80 -r 198.51.100.51:80 -g -w 1
-a -t 192.0.2.50:80 -r 198.51.100.52:8080 -m -w 1
";

fn uvs(args: &[&str]) -> Output {
    Command::new(UVS)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run uvs")
}

fn ok(d: &Daemon, args: &[&str], input: &str) {
    let out = d.uvsadm_with_input(args, input);
    assert!(
        out.status.success(),
        "uvsadm {args:?}: {}",
        text(&out.stderr)
    );
}

#[test]
fn a_gate_real_server_on_another_port_lists_as_ipvsadm_lists_it_on_every_path() {
    let cf = common::fixture("fixtures/field/ldirectord-gate-real-port.cf");
    let out = uvs(&["import", "ldirectord", cf.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "every line is taken");
    let toml = text(&out.stdout);
    for lines in [
        "type = \"on\"",
        "# port 8080 asked for: a gate real server takes the service's port, as ipvsadm gives it\n\
         address = \"198.51.100.51:80\"\n\
         forward = \"gate\"\n",
        "address = \"198.51.100.52:8080\"\n",
    ] {
        assert!(toml.contains(lines), "{lines} in\n{toml}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uvs.toml");
    write_file(&path, &toml);
    let out = uvs(&["check", "-c", path.to_str().unwrap()]);
    assert_eq!(
        (text(&out.stdout), text(&out.stderr)),
        (
            format!("{}: OK, 1 service, 2 real servers\n", path.display()),
            String::new()
        )
    );

    // The table loaded from the file.
    let d = Daemon::start_with(Zone::default(), &["-c", path.to_str().unwrap()]);
    assert_eq!(d.list(&["-L", "-n"]), LISTING);
    let saved = d.save();
    assert_eq!(saved, SAVED);
    ok(&d, &["-C"], "");
    ok(&d, &["-R"], &saved);
    assert_eq!(d.list(&["-L", "-n"]), LISTING, "-S -n, -C, -R give it back");
    assert_eq!(d.save(), SAVED);

    // The rules ldirectord gives ipvsadm, as uvsadm commands (the newest server is
    // listed first, as IPVS lists it: the NAT server is added first here).
    ok(&d, &["-C"], "");
    ok(&d, &["-A", "-t", "192.0.2.50:80", "-s", "rr"], "");
    for (server, forward) in [("198.51.100.52:8080", "-m"), ("198.51.100.51:8080", "-g")] {
        ok(
            &d,
            &[
                "-a",
                "-t",
                "192.0.2.50:80",
                "-r",
                server,
                forward,
                "-w",
                "1",
            ],
            "",
        );
    }
    assert_eq!(d.list(&["-L", "-n"]), LISTING);
    // `-e` finds the gate server at the port it was given, whatever port it names;
    // `-d` does not rewrite, as ipvsadm does not.
    ok(
        &d,
        &[
            "-e",
            "-t",
            "192.0.2.50:80",
            "-r",
            "198.51.100.51:9999",
            "-g",
            "-w",
            "1",
        ],
        "",
    );
    let out = d.uvsadm(&["-d", "-t", "192.0.2.50:80", "-r", "198.51.100.51:8080"]);
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (Some(255), "No such destination\n".to_string())
    );
    assert_eq!(d.list(&["-L", "-n"]), LISTING);
}

#[test]
fn check_warns_of_a_gate_real_server_named_at_another_port() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uvs.toml");
    write_file(
        &path,
        r#"[[service]]
tcp = "192.0.2.50:80"
scheduler = "rr"

[[service.server]]
address = "198.51.100.51:8080"
forward = "gate"

[[service.server]]
address = "198.51.100.52:8080"
"#,
    );
    let out = uvs(&["check", "-c", path.to_str().unwrap()]);
    let p = path.display();
    assert_eq!(
        (out.status.code(), text(&out.stdout), text(&out.stderr)),
        (
            Some(0),
            format!("{p}: OK, 1 service, 2 real servers\n"),
            format!(
                "{p}:5:1: warning: service[0].server[0]: a gate real server takes the service's port, 80, as ipvsadm gives it; port 8080 is not used\n"
            )
        )
    );
}
