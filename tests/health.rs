//! Health checks over real processes and sockets: a backend whose listener stops is
//! quiesced or removed (both modes) under load and `uvsadm -L -n` shows what ipvsadm
//! would under ldirectord; an HTTP backend answering 500 or the wrong body is taken out
//! and comes back after `rise` good checks with its weight; the fallback stands in while
//! every server is down (maintenance files) and leaves when one returns; a hanging
//! server blocks neither the other checks nor the traffic; external checks set weights
//! and leave no process behind them, not even those that left the check's process
//! group or session, nor zombies. A group of virtual services checks each real
//! server once, not once per member, and a server found down is quiesced in every
//! member.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;

use common::http::{Answer, HttpServer};
use common::{Backend, Behaviour, Daemon, ask, eventually, free_port, vip, write_file};

/// How a test HTTP server named `name` answers when it is well.
fn healthy(name: &str) -> Answer {
    Answer::ok(format!("OK from {name}"))
}

/// Whether the daemon logged `what` about real server `server`.
fn logged(d: &Daemon, server: SocketAddr, what: &str) -> bool {
    d.log()
        .lines()
        .any(|l| l.contains(what) && l.contains(&format!("server={server}")))
}

/// Writes an external check's command: `body`, executable.
fn write_script(path: &Path, body: &str) {
    write_file(path, body);
    std::process::Command::new("chmod")
        .args(["+x", path.to_str().unwrap()])
        .status()
        .unwrap();
}

fn start(dir: &Path, config: &str) -> Daemon {
    Daemon::start_with_file(&dir.join("uvs.toml"), config, &[])
}

#[test]
fn a_backend_that_stops_listening_is_quiesced_or_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (qa, qb) = (
        Backend::start("QA", Behaviour::Name),
        Backend::start("QB", Behaviour::Name),
    );
    let (ra, rb) = (
        Backend::start("RA", Behaviour::Name),
        Backend::start("RB", Behaviour::Name),
    );
    let (quiet, removing) = (vip(), vip());
    let d = start(
        dir.path(),
        &format!(
            r#"
[global.check]
type = "connect"
interval = "1s"
timeout = "1s"
failures = 2

[[service]]
tcp = "{quiet}"
scheduler = "rr"
quiescent = true
[[service.server]]
address = "{qa}"
[[service.server]]
address = "{qb}"

[[service]]
tcp = "{removing}"
scheduler = "rr"
quiescent = false
[[service.server]]
address = "{ra}"
[[service.server]]
address = "{rb}"
"#,
            qa = qa.addr,
            qb = qb.addr,
            ra = ra.addr,
            rb = rb.addr
        ),
    );
    d.wait_listening(quiet);
    d.wait_listening(removing);
    let (qb_addr, rb_addr) = (qb.addr, rb.addr);
    drop(qb);
    drop(rb);
    eventually("QB quiesced: weight 0, still listed", || {
        d.servers(quiet) == [(qa.addr.to_string(), 1), (qb_addr.to_string(), 0)]
            || d.servers(quiet) == [(qb_addr.to_string(), 0), (qa.addr.to_string(), 1)]
    });
    eventually("RB removed: no line", || {
        d.servers(removing) == [(ra.addr.to_string(), 1)]
    });
    // Both transitions came after two failed checks, and say why.
    for server in [qb_addr, rb_addr] {
        assert!(
            logged(
                &d,
                server,
                "real server is down: connection refused (2 failed checks)"
            ),
            "{}",
            d.log()
        );
    }
    // Clients see no errors: every connection reaches a live server at the first try.
    for _ in 0..20 {
        assert_eq!(ask(quiet, None), "QA");
        assert_eq!(ask(removing, None), "RA");
    }
    let status = d.status();
    assert!(
        status.contains("connections retried elsewhere 0"),
        "{status}"
    );
    assert!(
        status.contains("health down, failed checks in a row ")
            && status.contains("last error: connection refused"),
        "{status}"
    );
    assert!(
        status.contains(&format!(
            "  -> {:<28} out of the table while down\n     health down",
            rb_addr.to_string()
        )),
        "{status}"
    );
}

#[test]
fn a_wrong_http_answer_takes_a_server_out_until_it_rises_again() {
    let dir = tempfile::tempdir().unwrap();
    let (good, flaky) = (
        HttpServer::start(healthy("good")),
        HttpServer::start(healthy("flaky")),
    );
    let v = vip();
    let d = start(
        dir.path(),
        &format!(
            r#"
[[service]]
tcp = "{v}"
scheduler = "wrr"
quiescent = false

[service.check]
type = "negotiate"
service = "http"
request = "/health"
receive = "^OK"
interval = "1s"
timeout = "1s"
rise = 2

[[service.server]]
address = "{g}"
[[service.server]]
address = "{f}"
weight = 3
"#,
            g = good.addr,
            f = flaky.addr
        ),
    );
    d.wait_listening(v);
    let both = || {
        let mut s = d.servers(v);
        s.sort();
        let mut want = vec![(good.addr.to_string(), 1), (flaky.addr.to_string(), 3)];
        want.sort();
        s == want
    };
    let only_good = || d.servers(v) == [(good.addr.to_string(), 1)];
    assert!(both());
    for (mode, reason) in [
        (
            Answer::Says("500 Internal Server Error", "broken".into()),
            "wrong status 500",
        ),
        (Answer::ok("something else"), "answer did not match receive"),
    ] {
        flaky.set(mode);
        eventually(reason, only_good);
        assert!(
            logged(&d, flaky.addr, &format!("real server is down: {reason}")),
            "{}",
            d.log()
        );
        flaky.set(healthy("flaky"));
        eventually("back with its configured weight", both);
    }
    let ups = d
        .log()
        .lines()
        .filter(|l| {
            l.contains("real server is up after 2 good checks")
                && l.contains(&format!("server={}", flaky.addr))
        })
        .count();
    assert_eq!(ups, 2, "each return took two good checks");
}

#[test]
fn the_fallback_stands_in_while_every_server_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let maintenance = dir.path().join("maintenance");
    std::fs::create_dir(&maintenance).unwrap();
    // Three addresses, as a maintenance file named by address alone covers every port.
    let (a, b, sorry) = (
        Backend::start("A", Behaviour::Name),
        Backend::start_on("127.0.0.2:0", "B", Behaviour::Name),
        Backend::start_on("127.0.0.3:0", "SORRY", Behaviour::Name),
    );
    let v = vip();
    let d = start(
        dir.path(),
        &format!(
            r#"
[global]
maintenance_dir = "{m}"

[global.check]
type = "on"
interval = "1s"

[[service]]
tcp = "{v}"
scheduler = "rr"
quiescent = false
fallback = {{ address = "{s}" }}
[[service.server]]
address = "{a}"
[[service.server]]
address = "{b}"
"#,
            m = maintenance.display(),
            s = sorry.addr,
            a = a.addr,
            b = b.addr
        ),
    );
    d.wait_listening(v);
    // ldirectord's maintenance files: `ip:port`, or the address alone.
    std::fs::write(maintenance.join(a.addr.to_string()), "").unwrap();
    std::fs::write(maintenance.join(b.addr.ip().to_string()), "").unwrap();
    eventually("only the fallback is left", || {
        d.servers(v) == [(sorry.addr.to_string(), 1)]
    });
    assert_eq!(ask(v, None), "SORRY");
    std::fs::remove_file(maintenance.join(a.addr.to_string())).unwrap();
    eventually("A is back and the fallback gone", || {
        d.servers(v) == [(a.addr.to_string(), 1)]
    });
    for _ in 0..5 {
        assert_eq!(ask(v, None), "A");
    }
    assert!(d.log().contains("real server is down: maintenance file"));
}

#[test]
fn a_hanging_server_blocks_neither_other_checks_nor_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let (good, hung) = (
        HttpServer::start(healthy("good")),
        HttpServer::start(Answer::Hangs),
    );
    let v = vip();
    let d = start(
        dir.path(),
        &format!(
            r#"
[[service]]
tcp = "{v}"
scheduler = "rr"

[service.check]
type = "negotiate"
service = "http"
interval = "1s"
timeout = "2s"

[[service.server]]
address = "{g}"
[[service.server]]
address = "{h}"
"#,
            g = good.addr,
            h = hung.addr
        ),
    );
    d.wait_listening(v);
    eventually("the hanging server is quiesced", || {
        d.servers(v).contains(&(hung.addr.to_string(), 0))
    });
    assert!(
        logged(&d, hung.addr, "real server is down: timed out"),
        "{}",
        d.log()
    );
    // Meanwhile the good server was checked every second and traffic flowed.
    let checks_of_good = || {
        let status = d.status();
        let at = status.find(&format!("-> {}", good.addr)).unwrap();
        status[at..]
            .lines()
            .nth(1)
            .unwrap()
            .split("last check ")
            .nth(1)
            .unwrap()
            .to_string()
    };
    let before = checks_of_good();
    let mut answers = 0;
    eventually(
        "the good server is checked again while the other hangs",
        || {
            let mut s = common::connect(v, None).unwrap();
            s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
            let mut body = String::new();
            s.read_to_string(&mut body).unwrap();
            assert!(body.contains("OK from good"), "{body}");
            answers += 1;
            checks_of_good() != before
        },
    );
    assert!(answers > 0);
}

#[test]
fn an_external_check_can_set_the_weight() {
    let dir = tempfile::tempdir().unwrap();
    let a = Backend::start("A", Behaviour::Name);
    let script = dir.path().join("check.sh");
    let verdict = dir.path().join("verdict");
    // ldirectord's arguments: vip vport rip rport; the exit code is the verdict.
    write_script(
        &script,
        &format!("#!/bin/sh\nexit $(cat {})\n", verdict.display()),
    );
    write_file(&verdict, "7");
    let v = vip();
    let d = start(
        dir.path(),
        &format!(
            r#"
[[service]]
tcp = "{v}"
quiescent = false

[service.check]
type = "external"
command = "{s}"
dynamic_weight = true
interval = "1s"

[[service.server]]
address = "{a}"
"#,
            s = script.display(),
            a = a.addr
        ),
    );
    d.wait_listening(v);
    eventually("exit code 7 gives weight 5", || {
        d.servers(v) == [(a.addr.to_string(), 5)]
    });
    write_file(&verdict, "1");
    eventually("exit code 1 takes it out", || d.servers(v).is_empty());
    assert!(d.log().contains("real server is down: exit code 1"));
    write_file(&verdict, "0");
    eventually("exit code 0 brings it back with its own weight", || {
        d.servers(v) == [(a.addr.to_string(), 1)]
    });
}

/// Whether process `pid` still runs `sleep`: a zombie (state Z, waiting to be reaped by
/// whoever adopted it) is gone, and so is a pid now used by another program.
fn sleep_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) state ...": comm may hold spaces and parentheses, the state follows
    // the last ')'.
    let Some((head, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let state = rest.split_whitespace().next().unwrap_or("");
    state != "Z" && head.ends_with("(sleep")
}

/// The pids the check scripts recorded in `file`.
fn recorded_pids(file: &Path) -> Vec<u32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Kills what a test's check scripts started, whatever the test found: a failed test
/// leaves no `sleep 300` behind.
struct KillOnDrop(Vec<std::path::PathBuf>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for file in &self.0 {
            for pid in recorded_pids(file) {
                if sleep_alive(pid) {
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
            }
        }
    }
}

#[test]
fn an_external_check_leaves_nothing_running_behind_it() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = Backend::pair(Behaviour::Name);
    // One command waits for its background sleep (the timeout ends the check), the
    // other exits 0 at once (the check ends with it); both leave a `sleep 300` behind.
    let mut scripts = Vec::new();
    for (name, end) in [("waits", "wait"), ("exits", "exit 0")] {
        let script = dir.path().join(format!("{name}.sh"));
        let pids = dir.path().join(format!("{name}.pids"));
        write_script(
            &script,
            &format!(
                "#!/bin/sh\nsleep 300 &\necho $! >> {}\n{end}\n",
                pids.display()
            ),
        );
        scripts.push((script, pids));
    }
    let _cleanup = KillOnDrop(scripts.iter().map(|(_, p)| p.clone()).collect());
    let (v1, v2) = (vip(), vip());
    let mut d = start(
        dir.path(),
        &format!(
            r#"
[global.check]
type = "external"
interval = "1s"
timeout = "1s"

[[service]]
tcp = "{v1}"
[service.check]
command = "{waits}"
[[service.server]]
address = "{a}"

[[service]]
tcp = "{v2}"
[service.check]
command = "{exits}"
[[service.server]]
address = "{b}"
"#,
            waits = scripts[0].0.display(),
            exits = scripts[1].0.display(),
            a = a.addr,
            b = b.addr
        ),
    );
    d.wait_listening(v1);
    for (script, pids) in &scripts {
        eventually(&format!("four checks by {}", script.display()), || {
            recorded_pids(pids).len() >= 4
        });
    }
    // Every check but the one that may be running now has ended, and took its
    // background process with it.
    for (_, pids) in &scripts {
        let all = recorded_pids(pids);
        let ended = &all[..all.len() - 1];
        eventually("the processes of ended checks are gone", || {
            ended.iter().all(|&pid| !sleep_alive(pid))
        });
    }
    // A check running when the daemon stops ends with it, and so do its processes.
    common::sigterm(&d.child);
    eventually("the daemon exits on SIGTERM", || !d.alive());
    for (_, pids) in &scripts {
        let all = recorded_pids(pids);
        eventually("no process of any check is left", || {
            all.iter().all(|&pid| !sleep_alive(pid))
        });
    }
}

/// The children of process `parent` as (pid, state, command name), from /proc/*/stat.
fn children_of(parent: u32) -> Vec<(u32, String, String)> {
    let mut children = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return children;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some((head, rest)), Some(open)) = (stat.rsplit_once(')'), stat.find('(')) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let (Some(state), Some(ppid)) = (fields.next(), fields.next()) else {
            continue;
        };
        if ppid.parse() == Ok(parent) {
            children.push((pid, state.to_string(), head[open + 1..].to_string()));
        }
    }
    children
}

/// Whether a program is on the PATH.
fn installed(program: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn processes_that_leave_an_external_checks_group_are_killed_and_reaped() {
    let dir = tempfile::tempdir().unwrap();
    // Each script leaves a `sleep 300` behind outside its process group, and records
    // the sleep's pid (from the side that stays in the group: once re-parented to the
    // daemon, a leftover may be killed before it could record itself): by shell job control (bash's set -m puts a background job in a
    // group of its own), by a double fork into a new session (a daemon's way), by
    // setpgid (perl's setpgrp, where perl is installed), and, for a check the timeout
    // ends, by a setsid child the command waits for. A last script leaves a process in
    // its group that exits by itself after its parent: a zombie to reap.
    let mut variants = vec![
        (
            "job-control",
            "#!/bin/bash\nset -m\nsleep 300 &\necho $! >> PIDS\nexit 0\n",
        ),
        (
            "double-fork",
            "#!/bin/sh\n( setsid sh -c 'exec sleep 300' & echo $! >> PIDS )\nexit 0\n",
        ),
        (
            "setsid-timeout",
            "#!/bin/sh\nsetsid sh -c 'echo $$ >> PIDS; exec sleep 300' &\nwait\n",
        ),
    ];
    if installed("perl") {
        variants.push((
            "setpgid",
            "#!/bin/sh\nperl -e 'setpgrp(0, 0); exec \"sleep\", \"300\"' &\necho $! >> PIDS\nexit 0\n",
        ));
    }
    let mut scripts = Vec::new();
    for (name, body) in &variants {
        let script = dir.path().join(format!("{name}.sh"));
        let pids = dir.path().join(format!("{name}.pids"));
        write_script(&script, &body.replace("PIDS", pids.to_str().unwrap()));
        scripts.push((script, pids));
    }
    let zombie_maker = dir.path().join("zombie.sh");
    write_script(
        &zombie_maker,
        "#!/bin/sh\n( sleep 0.1 & )\nsleep 0.4\nexit 0\n",
    );
    let _cleanup = KillOnDrop(scripts.iter().map(|(_, p)| p.clone()).collect());
    let mut config =
        String::from("[global.check]\ntype = \"external\"\ninterval = \"1s\"\ntimeout = \"1s\"\n");
    let commands = scripts.iter().map(|(s, _)| s).chain([&zombie_maker]);
    let vips: Vec<SocketAddr> = commands
        .map(|command| {
            let v = vip();
            config.push_str(&format!(
                "\n[[service]]\ntcp = \"{v}\"\n[service.check]\ncommand = \"{}\"\n\
                 [[service.server]]\naddress = \"127.0.0.1:{}\"\n",
                command.display(),
                free_port()
            ));
            v
        })
        .collect();
    let mut d = start(dir.path(), &config);
    for v in &vips {
        d.wait_listening(*v);
    }
    let daemon = d.child.id();
    for (script, pids) in &scripts {
        eventually(&format!("four checks by {}", script.display()), || {
            recorded_pids(pids).len() >= 4
        });
    }
    // The processes of every check that has ended are gone, wherever they went.
    for (script, pids) in &scripts {
        let all = recorded_pids(pids);
        let ended = &all[..all.len() - 1];
        eventually(
            &format!("what {} left behind is gone", script.display()),
            || ended.iter().all(|&pid| !sleep_alive(pid)),
        );
    }
    // The daemon reaps what it adopted: no zombie children pile up.
    eventually("no zombie children of the daemon", || {
        !children_of(daemon).iter().any(|(_, state, _)| state == "Z")
    });
    assert!(
        d.log()
            .contains("killed processes that external checks left behind"),
        "{}",
        d.log()
    );
    common::sigterm(&d.child);
    eventually("the daemon exits on SIGTERM", || !d.alive());
    for (script, pids) in &scripts {
        let all = recorded_pids(pids);
        eventually(
            &format!("nothing {} started is left", script.display()),
            || all.iter().all(|&pid| !sleep_alive(pid)),
        );
    }
}

/// The `->` lines of `-L -n` for firewall-mark service `mark`: (address, weight).
fn fwmark_servers(d: &Daemon, mark: u32) -> Vec<(String, u32)> {
    let listing = d.list(&["-L", "-n", "-f", &mark.to_string()]);
    listing
        .lines()
        .filter(|l| l.starts_with("  -> 127."))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[1].to_string(), f[3].parse().unwrap())
        })
        .collect()
}

#[test]
fn a_groups_servers_are_checked_once_per_interval_and_quiesced_in_every_member() {
    let dir = tempfile::tempdir().unwrap();
    let a = Backend::start_on("127.0.0.2:0", "A", Behaviour::Name);
    let b = Backend::start_on("127.0.0.3:0", "B", Behaviour::Name);
    // The same check on a service of its own: the pace one check per interval gives.
    let alone = Backend::start_on("127.0.0.4:0", "C", Behaviour::Name);
    let members = [vip(), vip(), vip()];
    let single = vip();
    let d = start(
        dir.path(),
        &format!(
            r#"
[global.check]
type = "connect"
interval = "1s"
timeout = "1s"

[[service]]
group = "web"
tcp = ["{}", "{}", "{}"]
fwmark = 7
scheduler = "rr"
[[service.server]]
address = "{}"
[[service.server]]
address = "{}"

[[service]]
tcp = "{single}"
[[service.server]]
address = "{}"
"#,
            members[0], members[1], members[2], a.addr, b.addr, alone.addr
        ),
    );
    for m in members {
        d.wait_listening(m);
    }
    eventually("four checks of the lone server", || {
        alone.accepted.load(Ordering::Relaxed) >= 4
    });
    let paced = alone.accepted.load(Ordering::Relaxed);
    for server in [&a, &b] {
        let got = server.accepted.load(Ordering::Relaxed);
        // Checked for each of the four members, it would be about four times as many.
        assert!(
            got + 1 >= paced && got <= paced + 1,
            "{}: {got} checks while the lone server had {paced}",
            server.addr
        );
    }
    let b_addr = b.addr;
    drop(b);
    let both = |port_of_b: u16| {
        vec![
            (a.addr.to_string(), 1),
            (format!("127.0.0.3:{port_of_b}"), 0),
        ]
    };
    eventually("B quiesced in every member", || {
        let mut lists: Vec<Vec<(String, u32)>> = members.iter().map(|m| d.servers(*m)).collect();
        lists.push(fwmark_servers(&d, 7));
        lists.iter_mut().for_each(|l| l.sort());
        lists.iter().all(|l| *l == both(b_addr.port()))
    });
    let status = d.status();
    let name = |m: SocketAddr| format!("TCP 127.0.0.1:{}", m.port());
    assert!(
        status.contains(&format!(
            "  group web, 4 members: {}, {}, {}, FWM 7; their real servers are checked once, here",
            name(members[0]),
            name(members[1]),
            name(members[2])
        )),
        "{status}"
    );
    assert!(
        status.contains(&format!(
            "  group web, member 4 of 4; health as checked for {}",
            name(members[0])
        )),
        "{status}"
    );
}
