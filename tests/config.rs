//! Configuration files over real processes: `uvs check` on good and broken files,
//! `uvs run -c` loading a table, reloads (SIGHUP and autoreload) under steady load that
//! change weights and add and remove servers and services without one failed request,
//! counters that carry on, services made with uvsadm left alone, and broken files that
//! change nothing; files that are no configuration (a FIFO in place of the file, a file
//! over the size limit) refused at once without holding the daemon up, a file
//! written in place under autoreload taken only once whole, and files of junk (checked,
//! run, imported, or put in place under autoreload) read in time in proportion to their
//! size, with the first hundred problems shown and the rest counted.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{
    Backend, Behaviour, Daemon, UVS, bounded, connect, eventually, sighup, text, write_file,
};

/// `uvs check -c PATH`, killed if it runs past the bound (a file that hangs its reader).
fn check(path: &Path) -> std::process::Output {
    let mut cmd = Command::new(UVS);
    cmd.args(["check", "-c"]).arg(path);
    bounded(cmd, "uvs check")
}

#[test]
fn check_accepts_a_good_file_and_lists_every_problem_of_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    write_file(
        &good,
        r#"
[[service]]
tcp = "127.0.0.1:80"
scheduler = "rr"
[[service.server]]
address = "127.0.0.1:8080"
[[service.server]]
address = "127.0.0.1:8081"

[[service]]
fwmark = 7
persistent = 600
netmask = "255.255.255.0"
listen = ["tcp 127.0.0.1:443", "udp 127.0.0.1:443"]
[[service.server]]
address = "127.0.0.2"
"#,
    );
    let out = check(&good);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("{}: OK, 2 services, 3 real servers\n", good.display())
    );

    let bad = dir.path().join("bad.toml");
    write_file(
        &bad,
        r#"[global]
threads = "two"

[[service]]
tcp = "127.0.0.1:80"
scheduler = "fastest"
persistant = 300
[[service.server]]
address = "127.0.0.1:8080"
weight = 70000
"#,
    );
    let out = check(&bad);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let b = bad.display();
    assert_eq!(
        text(&out.stderr),
        format!(
            "{b}:2:11: global.threads: expected an integer from 1 to 1024, found the string \"two\"\n\
             {b}:4:1: service[0]: Scheduler or persistence engine not found\n\
             {b}:7:1: service[0].persistant: unknown key\n\
             {b}:10:10: service[0].server[0].weight: expected an integer from 0 to 65535, found the integer 70000\n\
             uvs: {b}: 4 problems\n"
        )
    );

    let out = check(&dir.path().join("missing.toml"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot read"),
        "{}",
        text(&out.stderr)
    );
}

/// Round trips through `vip` on new connections (`fresh`) or on one kept-alive
/// connection, until told to stop (or 60 s pass); counts successes and failures.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(vip: SocketAddr, fresh: usize, kept: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        for i in 0..fresh + kept {
            let (stop, ok, failed) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed));
            let keep_alive = i >= fresh;
            threads.push(std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut kept = None;
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let result = (|| -> std::io::Result<()> {
                        let mut fresh_conn;
                        let s = if keep_alive {
                            if kept.is_none() {
                                kept = Some(connect(vip, None)?);
                            }
                            kept.as_mut().unwrap()
                        } else {
                            fresh_conn = connect(vip, None)?;
                            &mut fresh_conn
                        };
                        let msg = format!("req {i}");
                        s.write_all(msg.as_bytes())?;
                        let mut back = vec![0u8; msg.len()];
                        s.read_exact(&mut back)?;
                        if back != msg.as_bytes() {
                            return Err(std::io::Error::other("wrong answer"));
                        }
                        Ok(())
                    })();
                    match result {
                        Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }));
        }
        Load {
            stop,
            ok,
            failed,
            threads,
        }
    }

    /// Waits until `more` further round trips have succeeded.
    fn wait_for(&self, more: usize) {
        let target = self.ok.load(Ordering::Relaxed) + more;
        eventually("more round trips through the VIP", || {
            self.ok.load(Ordering::Relaxed) >= target
        });
    }

    /// Stops; returns (succeeded, failed).
    fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

fn config_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uvs.toml");
    (dir, path)
}

/// The Conns of `server` of TCP service `vip` in `-L -n --stats --exact`.
fn conns_of(d: &Daemon, vip: SocketAddr, server: SocketAddr) -> u64 {
    let stats = d.list(&["-L", "-n", "--stats", "--exact", "-t", &vip.to_string()]);
    stats
        .lines()
        .find(|l| l.contains(&format!("-> {server} ")))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{server} in\n{stats}"))
}

#[test]
fn a_reload_under_load_changes_the_table_and_fails_no_request() {
    let (_dir, path) = config_dir();
    let (a, b, c) = (
        Backend::start("A", Behaviour::Echo),
        Backend::start("B", Behaviour::Echo),
        Backend::start("C", Behaviour::Echo),
    );
    let (vip, other) = (common::vip(), common::vip());
    let d = Daemon::start_with_file(
        &path,
        &format!(
            r#"
[[service]]
tcp = "{vip}"
scheduler = "wrr"
[[service.server]]
address = "{a}"
[[service.server]]
address = "{b}"

[[service]]
tcp = "{other}"
[[service.server]]
address = "{c}"
"#,
            a = a.addr,
            b = b.addr,
            c = c.addr
        ),
        &[],
    );
    d.wait_listening(vip);
    // Made with uvsadm, never named by the file: reloads leave it alone.
    let runtime = common::vip();
    d.add_service("-t", runtime, &["-s", "rr"]);

    let load = Load::start(vip, 3, 2);
    load.wait_for(300);
    let a_before = conns_of(&d, vip, a.addr);

    // Weights change, B leaves, C joins; the second service goes, a third comes.
    let third = common::vip();
    write_file(
        &path,
        &format!(
            r#"
[[service]]
tcp = "{vip}"
scheduler = "wrr"
[[service.server]]
address = "{a}"
weight = 3
[[service.server]]
address = "{c}"
weight = 2

[[service]]
tcp = "{third}"
scheduler = "rr"
[[service.server]]
address = "{a}"
"#,
            a = a.addr,
            c = c.addr
        ),
    );
    sighup(&d.child);
    eventually("the reload is logged", || {
        d.log().contains("SIGHUP: configuration reloaded")
    });
    load.wait_for(300);
    let (ok, failed) = load.finish();
    assert_eq!(failed, 0, "{failed} of {} round trips failed", ok + failed);

    let mut expected = vec![format!("{} Masq 3", a.addr), format!("{} Masq 2", c.addr)];
    expected.sort();
    let listing = d.list(&["-L", "-n"]);
    let mut vip_servers: Vec<String> = listing
        .lines()
        .skip_while(|l| !l.starts_with(&format!("TCP  {vip} wrr")))
        .skip(1)
        .take_while(|l| l.starts_with("  ->"))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    vip_servers.sort();
    assert_eq!(vip_servers, expected, "{listing}");
    assert!(!listing.contains(&format!("TCP  {other} ")), "{listing}");
    assert!(listing.contains(&format!("TCP  {third} rr")), "{listing}");
    assert!(listing.contains(&format!("TCP  {runtime} rr")), "{listing}");
    // A was in both files: its counters went on from where they were.
    assert!(conns_of(&d, vip, a.addr) > a_before);
    // The log names every change as the ipvsadm line that makes it.
    let log = d.log();
    for line in [
        format!("table changed: -d -t {vip} -r {}", b.addr),
        format!("table changed: -e -t {vip} -r {} -m -w 3", a.addr),
        format!("table changed: -D -t {other}"),
    ] {
        assert!(log.contains(&line), "{line} in\n{log}");
    }
    // ... and nothing else touched the service or A: no delete and re-add.
    for line in [
        format!("-D -t {vip}"),
        format!("-E -t {vip}"),
        format!("-d -t {vip} -r {}", a.addr),
    ] {
        assert!(!log.contains(&line), "{line} in\n{log}");
    }
}

#[test]
fn a_broken_file_changes_nothing_and_says_where() {
    let (_dir, path) = config_dir();
    let a = Backend::start("A", Behaviour::Echo);
    let vip = common::vip();
    let good = format!(
        "[global]\nautoreload = true\n\n[[service]]\ntcp = \"{vip}\"\n[[service.server]]\naddress = \"{}\"\n",
        a.addr
    );
    let d = Daemon::start_with_file(&path, &good, &[]);
    d.wait_listening(vip);
    let load = Load::start(vip, 1, 1);
    load.wait_for(100);
    let before = d.save();

    write_file(
        &path,
        &format!(
            "[global]\nautoreload = true\n\n[[service]]\ntcp = \"{vip}\"\n[[service.server]]\naddress = \"{}\"\nweight = \"heavy\"\n",
            a.addr
        ),
    );
    let expected = format!(
        "{}:8:10: service[0].server[0].weight: expected an integer from 0 to 65535, found the string \"heavy\"",
        path.display()
    );
    eventually("the broken file is reported", || {
        d.log().contains(&expected)
    });
    assert!(
        d.log()
            .contains("reload refused, the running table is unchanged")
    );
    load.wait_for(100);
    assert_eq!(d.save(), before, "nothing changed");
    let status = d.status();
    assert!(
        status.contains(&format!("configuration {}: applied ", path.display()))
            && status.contains("reloads 0, refused 1; the last reload was refused:")
            && status.contains(&format!("  {expected}")),
        "{status}"
    );

    // Fixed, it is taken (autoreload: no signal needed).
    write_file(
        &path,
        &good.replace(
            &format!("\"{}\"\n", a.addr),
            &format!("\"{}\"\nweight = 4\n", a.addr),
        ),
    );
    eventually("the fixed file is loaded", || {
        d.save().contains(&format!("-r {} -m -w 4", a.addr))
    });
    load.wait_for(100);
    let (ok, failed) = load.finish();
    assert_eq!(failed, 0, "{failed} of {} round trips failed", ok + failed);
}

#[test]
fn a_file_the_daemon_cannot_use_stops_it_at_start() {
    let (_dir, path) = config_dir();
    write_file(
        &path,
        "[[service]]\ntcp = \"127.0.0.1:80\"\nscheduler = 7\n",
    );
    let out = Command::new(UVS)
        .args(["run", "--socket"])
        .arg(path.with_extension("sock"))
        .arg("-c")
        .arg(&path)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "{p}:3:13: service[0].scheduler: expected a scheduler name, as \"wlc\", found the integer 7\n\
             uvs: {p}: 1 problem\n",
            p = path.display()
        )
    );
}

/// `uvs import FORMAT FILE`, killed if it runs past the bound.
fn import(format: &str, file: &Path) -> std::process::Output {
    let mut cmd = Command::new(UVS);
    cmd.args(["import", format]).arg(file);
    bounded(cmd, &format!("uvs import {format}"))
}

/// Editing a group and reloading changes exactly the members that changed: a member
/// dropped from the group leaves the table, a new one comes, the others keep their
/// services and servers untouched but for the server that changed.
#[test]
fn a_reload_changes_only_the_members_of_a_group_that_changed() {
    let (_dir, path) = config_dir();
    let a = Backend::start_on("127.0.0.2:0", "A", Behaviour::Name);
    let (one, two, three) = (common::vip(), common::vip(), common::vip());
    let group = |members: &[SocketAddr], weight: u32| {
        let list: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
        format!(
            "[[service]]\ngroup = \"web\"\ntcp = [{}]\nscheduler = \"rr\"\n[[service.server]]\naddress = \"{}\"\nweight = {weight}\n",
            list.join(", "),
            a.addr
        )
    };
    let d = Daemon::start_with_file(&path, &group(&[one, two], 1), &[]);
    d.wait_listening(one);
    d.wait_listening(two);
    write_file(&path, &group(&[two, three], 4));
    sighup(&d.child);
    eventually("the reload is logged", || {
        d.log().contains("SIGHUP: configuration reloaded")
    });
    d.wait_listening(three);
    let listing = d.list(&["-L", "-n"]);
    assert!(!listing.contains(&format!("TCP  {one} ")), "{listing}");
    for member in [two, three] {
        assert!(
            listing.contains(&format!(
                "TCP  {member} rr\n  -> {:<28} Masq    4 ",
                a.addr.to_string()
            )),
            "{listing}"
        );
    }
    let log = d.log();
    for line in [
        format!("table changed: -D -t {one} "),
        format!("table changed: -A -t {three} -s rr "),
        format!("table changed: -e -t {two} -r {} -m -w 4 ", a.addr),
    ] {
        assert!(log.contains(&line), "{line}\n{log}");
    }
    // The member both files name was added once, at start, and never again.
    assert_eq!(log.matches(&format!("-A -t {two} ")).count(), 1, "{log}");
}

#[test]
fn every_example_in_conf_passes_check() {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let mut checked = 0;
    for entry in std::fs::read_dir(&conf).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = check(&path);
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                text(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 5,
        "the five scenario examples at least ({checked})"
    );
}

#[test]
fn debians_sample_ldirectord_cf_imports_whole_and_checks() {
    let sample = common::fixture("fixtures/ldirectord/debian-example.cf");
    let out = import("ldirectord", &sample);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let toml = text(&out.stdout);
    for line in [
        "autoreload = true",
        "quiescent = false",
        "tcp = \"192.168.6.240:80\"",
        "fallback = { address = \"127.0.0.1:80\", forward = \"gate\" }",
        "receive = \"Test Page\"",
        "virtualhost = \"www.x.y.z\"",
    ] {
        assert!(toml.contains(line), "{line} in\n{toml}");
    }
    let (_dir, path) = config_dir();
    write_file(&path, &toml);
    let out = check(&path);
    assert_eq!(
        text(&out.stdout),
        format!("{}: OK, 1 service, 3 real servers\n", path.display()),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_ipvsadm_save_dump_imports_into_the_same_table() {
    // ipvsadm 1.31's own `-S -n` of the reference table (shared/golden).
    let dump = common::fixture("golden/S_n.out");
    let out = import("ipvsadm", &dump);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (_dir, path) = config_dir();
    write_file(&path, &text(&out.stdout));
    // The addresses are documentation and private ones: the daemon only fails to bind
    // them (it never sends to them).
    let d = Daemon::start_with(common::Zone::default(), &["-c", path.to_str().unwrap()]);
    assert_eq!(
        d.save(),
        std::fs::read_to_string(&dump).unwrap(),
        "the table made from the imported file saves as the dump it came from"
    );
}

#[test]
fn import_reports_every_line_it_could_not_take() {
    let (_dir, path) = config_dir();
    write_file(
        &path,
        "logfile=\"local0\"\nvirtual=127.0.0.1:3306\n\treal=127.0.0.2:3306 gate\n\tservice=mysql\n\tlogin=\"readuser\"\n\temailalert=\"root@localhost\"\n",
    );
    let out = import("ldirectord", &path);
    assert_eq!(out.status.code(), Some(1));
    let p = path.display();
    assert_eq!(
        text(&out.stderr),
        format!(
            "{p}:1: logfile: no uvs counterpart; not taken\n\
             {p}:4: service=mysql: uvs negotiates http, https, simpletcp, smtp and dns only; a connect check is used instead\n\
             {p}:5: login: no uvs counterpart; not taken\n\
             {p}:6: emailalert: no uvs counterpart; not taken\n\
             uvs: {p}: 4 lines not taken\n"
        )
    );
    // What was taken is still printed, and usable.
    assert!(text(&out.stdout).contains("tcp = \"127.0.0.1:3306\""));
}

#[test]
fn a_reload_keeps_live_udp_flows_on_their_servers() {
    let (_dir, path) = config_dir();
    let (a, b) = common::UdpBackend::pair(common::Reply::Name);
    let vip = SocketAddr::from(([127, 0, 0, 1], common::free_udp_port()));
    let file = |wa: u32, wb: u32| {
        format!(
            "[[service]]\nudp = \"{vip}\"\nscheduler = \"wrr\"\n[[service.server]]\naddress = \"{}\"\nweight = {wa}\n[[service.server]]\naddress = \"{}\"\nweight = {wb}\n",
            a.addr, b.addr
        )
    };
    let d = Daemon::start_with_file(&path, &file(1, 1), &[]);
    d.wait_listening_on("udp", vip);
    let ask = |c: &std::net::UdpSocket| {
        c.send_to(b"who", vip).unwrap();
        let mut buf = [0u8; 8];
        let (n, _) = c.recv_from(&mut buf).expect("an answer");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let clients: Vec<std::net::UdpSocket> = (0..4)
        .map(|_| {
            let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c
        })
        .collect();
    let first: Vec<String> = clients.iter().map(ask).collect();
    // Weights change both ways, one server to 0: live flows stay where they are.
    write_file(&path, &file(5, 0));
    sighup(&d.child);
    eventually("the reload is logged", || {
        d.log().contains("SIGHUP: configuration reloaded")
    });
    let after: Vec<String> = clients.iter().map(ask).collect();
    assert_eq!(after, first);
    let new_client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    new_client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(ask(&new_client), "A", "new flows follow the new weights");
}

#[test]
fn kernel_mode_refuses_to_start_where_the_kernel_has_no_ipvs() {
    if Path::new("/proc/net/ip_vs").exists() {
        // This kernel has IPVS: kernel mode is tested against it in tests/kernel.
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(UVS)
        .args(["run", "--mode", "kernel", "--metrics", "off", "--socket"])
        .arg(dir.path().join("uvs.sock"))
        .env_remove("RUST_BACKTRACE")
        .env("UVS_LOG", "error")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "uvs: mode kernel: the kernel has no IPVS (no generic netlink family \"IPVS\": is ip_vs loaded?)\n"
    );
    assert!(!dir.path().join("uvs.sock").exists(), "nothing was started");
}

/// uvsadm with `args` against `d`, bounded.
fn uvsadm(d: &Daemon, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(common::UVSADM);
    cmd.args(args);
    d.configure(&mut cmd);
    bounded(cmd, &format!("uvsadm {}", args.join(" ")))
}

/// `uvs status` of `d`, bounded.
fn status(d: &Daemon) -> String {
    let out = bounded(common::status_at(&d.socket), "uvs status");
    assert!(out.status.success(), "uvs status: {}", text(&out.stderr));
    text(&out.stdout)
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(made.success(), "mkfifo {}", path.display());
}

#[test]
fn a_fifo_in_place_of_the_file_is_refused_and_holds_nothing_up() {
    let (_dir, path) = config_dir();
    let a = Backend::start("A", Behaviour::Name);
    let vip = common::vip();
    let mut d = Daemon::start_with_file(
        &path,
        &format!(
            "[[service]]\ntcp = \"{vip}\"\n[[service.server]]\naddress = \"{}\"\n",
            a.addr
        ),
        &[],
    );
    d.wait_listening(vip);
    let before = text(&uvsadm(&d, &["-S", "-n"]).stdout);
    let metrics = d.metrics_address();

    // A FIFO no one will ever write to, where the file was.
    std::fs::remove_file(&path).unwrap();
    mkfifo(&path);
    sighup(&d.child);
    let refusal = format!(
        "{} is a FIFO (named pipe), not a regular file",
        path.display()
    );
    eventually("the reload is refused", || {
        status(&d).contains("; the last reload was refused:")
    });
    let shown = status(&d);
    assert!(
        shown.contains("reloads 0, refused 1; the last reload was refused:")
            && shown.contains(&format!("\n  {refusal}\n")),
        "{shown}"
    );
    // The daemon answers on every channel, and the table is what it was.
    let listing = uvsadm(&d, &["-L", "-n"]);
    assert!(listing.status.success(), "{}", text(&listing.stderr));
    assert!(text(&listing.stdout).contains(&format!("TCP  {vip} wlc")));
    assert_eq!(text(&uvsadm(&d, &["-S", "-n"]).stdout), before);
    let (status_line, _) = common::http_get(metrics, "GET", "/metrics");
    assert_eq!(status_line, "HTTP/1.1 200 OK");
    assert!(d.log().contains(&refusal), "{}", d.log());

    common::sigterm(&d.child);
    eventually("the daemon exits on SIGTERM", || !d.alive());

    // The tools refuse it at once too.
    let p = path.to_str().unwrap();
    let sock = path.with_extension("sock");
    let runs: [(&str, Vec<&str>); 4] = [
        ("uvs check", vec!["check", "-c", p]),
        (
            "uvs run",
            vec![
                "run",
                "--metrics",
                "off",
                "--socket",
                sock.to_str().unwrap(),
                "-c",
                p,
            ],
        ),
        ("uvs import ldirectord", vec!["import", "ldirectord", p]),
        ("uvs import ipvsadm", vec!["import", "ipvsadm", p]),
    ];
    for (what, args) in runs {
        let mut cmd = Command::new(UVS);
        cmd.args(&args).env("UVS_LOG", "error");
        let out = bounded(cmd, what);
        assert_eq!(out.status.code(), Some(1), "{what}");
        assert_eq!(text(&out.stderr), format!("uvs: {refusal}\n"), "{what}");
    }
    assert!(!sock.exists(), "uvs run started nothing");
}

#[test]
fn check_refuses_a_file_over_the_size_limit_and_names_the_limit() {
    let (_dir, path) = config_dir();
    let limit = uvs::config::file::MAX_BYTES;
    // Sparse: one byte over the limit costs no disk and is refused before any read.
    std::fs::File::create(&path)
        .unwrap()
        .set_len(limit + 1)
        .unwrap();
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "uvs: {} is too large for a configuration file: {} bytes, over the limit of {limit} bytes (16 MiB)\n",
            path.display(),
            limit + 1
        )
    );
}

/// A configuration of the services `vips`, each with one server of weight `weight`, in
/// pieces: the header, then each service's head and its server. Every prefix of it is a
/// valid file.
fn pieces(vips: &[SocketAddr], server: SocketAddr, weight: u32) -> Vec<String> {
    let mut out = vec!["[global]\nautoreload = true\n".to_string()];
    for vip in vips {
        out.push(format!(
            "\n[[service]]\ntcp = \"{vip}\"\nscheduler = \"rr\"\n"
        ));
        out.push(format!(
            "[[service.server]]\naddress = \"{server}\"\nweight = {weight}\n"
        ));
    }
    out
}

#[test]
fn autoreload_applies_a_file_written_in_place_only_once_it_is_whole() {
    let (_dir, path) = config_dir();
    let vips: Vec<SocketAddr> = (0..6).map(|_| common::vip()).collect();
    // Never connected to: no check, no traffic.
    let server = common::vip();
    let d = Daemon::start_with_file(&path, &pieces(&vips, server, 1).concat(), &[]);
    let old = text(&uvsadm(&d, &["-S", "-n"]).stdout);
    assert_eq!(old.matches("-A -t").count(), 6, "{old}");

    // Every table the daemon shows while the file is rewritten.
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
        let (socket, env) = (d.socket.clone(), d.dir.path().to_path_buf());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let mut cmd = Command::new(common::UVSADM);
                cmd.args(["-S", "-n"])
                    .env("UVS_SOCKET", &socket)
                    .current_dir(&env);
                let out = bounded(cmd, "uvsadm -S -n");
                let table = text(&out.stdout);
                let mut seen = seen.lock().unwrap();
                if !seen.contains(&table) {
                    seen.push(table);
                }
                drop(seen);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    // Rewritten in place, as `cat > file` or a careless script would, in 13 pieces with
    // pauses between them: about four seconds in all.
    {
        let mut file = std::fs::File::create(&path).unwrap();
        for piece in pieces(&vips, server, 2) {
            file.write_all(piece.as_bytes()).unwrap();
            file.flush().unwrap();
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    eventually("the whole new file is applied", || {
        let now = text(&uvsadm(&d, &["-S", "-n"]).stdout);
        now.matches(&format!("-r {server} -m -w 2")).count() == 6
    });
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let new = text(&uvsadm(&d, &["-S", "-n"]).stdout);
    let seen = seen.lock().unwrap();
    for table in seen.iter() {
        assert!(
            *table == old || *table == new,
            "a table that is neither the old nor the new one:\n{table}\nold:\n{old}\nnew:\n{new}"
        );
    }
    // The file was read once, whole: no reload of a part, refused or applied.
    let log = d.log();
    assert_eq!(
        log.matches("file changed: configuration reloaded").count(),
        1,
        "{log}"
    );
    assert!(!log.contains("reload refused"), "{log}");
}

/// A file of `vips.len()` TCP services, each with `server` (and the metrics endpoint on
/// a port of its own choosing, and `global`'s lines in [global]).
fn services_file(global: &str, vips: &[SocketAddr], server: SocketAddr) -> String {
    let mut text = format!("[global]\nmetrics = \"127.0.0.1:0\"\n{global}");
    for vip in vips {
        text.push_str(&format!(
            "\n[[service]]\ntcp = \"{vip}\"\nscheduler = \"rr\"\n[[service.server]]\naddress = \"{server}\"\n"
        ));
    }
    text
}

#[test]
fn a_reload_that_needs_more_descriptors_than_there_are_is_refused_and_the_next_works() {
    const LIMIT: u64 = 256;
    let (_dir, path) = config_dir();
    let backend = Backend::start("B", Behaviour::Name);
    let vips: Vec<SocketAddr> = (0..3).map(|_| common::vip()).collect();
    write_file(&path, &services_file("", &vips, backend.addr));
    let d = Daemon::start_limited(LIMIT, &["-c", path.to_str().unwrap()]);
    for vip in &vips {
        d.wait_listening(*vip);
        assert_eq!(common::ask(*vip, None), "B");
    }
    let before = d.save();

    // The case that was found, scaled to the limit: far more listeners than descriptors.
    let many: Vec<SocketAddr> = (0..2000u16)
        .map(|i| SocketAddr::from(([127, 0, 0, 2], 20_000 + i)))
        .collect();
    write_file(&path, &services_file("", &many, backend.addr));
    sighup(&d.child);
    eventually("the reload refused", || status(&d).contains("refused 1"));
    let shown = status(&d);
    assert!(
        shown.contains("the configuration adds 2000 listen addresses, which take ")
            && shown.contains("raise the open-files limit"),
        "{shown}"
    );
    assert_eq!(d.save(), before, "the running table stays");
    // A scrape, as in the case found, and everything still answers.
    let (scraped, body) = common::http_get(d.metrics_address(), "GET", "/metrics");
    assert_eq!(scraped, "HTTP/1.1 200 OK");
    assert!(body.contains("node_ipvs_connections_total"));
    for vip in &vips {
        assert_eq!(common::ask(*vip, None), "B");
    }
    assert!(
        d.open_descriptors() <= LIMIT as usize,
        "{} descriptors open",
        d.open_descriptors()
    );

    // The corrected file is applied at once.
    let mut fixed = vips.clone();
    fixed.push(common::vip());
    write_file(&path, &services_file("", &fixed, backend.addr));
    sighup(&d.child);
    eventually("the corrected file applied", || {
        status(&d).contains("reloads 1, refused 1\n")
    });
    d.wait_listening(fixed[3]);
    assert_eq!(common::ask(fixed[3], None), "B");
    let listed = uvsadm(&d, &["-L", "-n"]);
    assert!(listed.status.success());
    assert_eq!(
        text(&listed.stdout)
            .lines()
            .filter(|l| l.starts_with("TCP"))
            .count(),
        4
    );
    // One error line for the refused reload, none per listener.
    let log = d.log();
    assert_eq!(log.matches("reload refused").count(), 1, "{log}");
    assert_eq!(log.matches("cannot listen").count(), 0, "{log}");
}

#[test]
fn an_empty_file_under_autoreload_is_not_taken_for_an_empty_table() {
    let (_dir, path) = config_dir();
    let backend = Backend::start("B", Behaviour::Name);
    let vips: Vec<SocketAddr> = (0..2).map(|_| common::vip()).collect();
    let whole = services_file("autoreload = true\n", &vips, backend.addr);
    let d = Daemon::start_with_file(&path, &whole, &[]);
    for vip in &vips {
        d.wait_listening(*vip);
    }
    let before = d.save();
    // The case that was found: a writer that truncates, then writes seconds later.
    std::fs::File::create(&path).unwrap();
    eventually("the empty file refused", || {
        status(&d).contains("refused 1")
    });
    assert!(
        status(&d).contains("is empty: a reload would remove every service it made"),
        "{}",
        status(&d)
    );
    assert_eq!(d.save(), before, "every service is still there");
    for vip in &vips {
        assert_eq!(common::ask(*vip, None), "B");
    }
    // Autoreload is still on: the whole file, written afterwards, is read.
    let mut more = vips.clone();
    more.push(common::vip());
    write_file(
        &path,
        &services_file("autoreload = true\n", &more, backend.addr),
    );
    d.wait_listening(more[2]);
    assert!(status(&d).contains("reloads 1, refused 1"));
}

#[test]
fn a_storm_of_sighups_is_not_a_storm_of_log_lines() {
    let (_dir, path) = config_dir();
    let backend = Backend::start("B", Behaviour::Name);
    let vip = common::vip();
    let d = Daemon::start_with_file(&path, &services_file("", &[vip], backend.addr), &[]);
    d.wait_listening(vip);
    let storm = |times: usize| {
        for _ in 0..times {
            sighup(&d.child);
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // (reloads, refused) once they stop moving (SIGHUPs during a read are taken as one).
    let settled = || {
        let counts = || {
            let shown = status(&d);
            let line = shown
                .lines()
                .find(|l| l.starts_with("configuration "))
                .unwrap_or_default()
                .to_string();
            let n: Vec<u64> = line
                .split([' ', ',', ';'])
                .filter_map(|w| w.parse().ok())
                .collect();
            (n.first().copied(), n.get(1).copied())
        };
        let mut last = counts();
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = counts();
            if now == last {
                return (now.0.unwrap_or(0), now.1.unwrap_or(0));
            }
            last = now;
        }
    };
    // Unchanged: each SIGHUP reloads and changes nothing.
    storm(40);
    let (reloads, _) = settled();
    assert!(reloads >= 10, "{reloads} reloads");
    // Broken: each is refused for the same reasons.
    write_file(
        &path,
        "[global]\nthreads = \"two\"\n[[service]]\ntcp = \"bad\"\n",
    );
    storm(40);
    let (_, refused) = settled();
    assert!(refused >= 10, "{refused} refused");
    let log = d.log();
    let count = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    assert!(count("SIGHUP: configuration reloaded") <= 2, "{log}");
    assert_eq!(
        count("SIGHUP: reload refused, the running table"),
        1,
        "{log}"
    );
    assert!(count("reload refused again") <= 2, "{log}");
    assert!(log.lines().count() < 40, "{log}");
}

/// The lines of `out`'s stderr.
fn stderr_lines(out: &std::process::Output) -> Vec<String> {
    text(&out.stderr).lines().map(str::to_string).collect()
}

#[test]
fn a_file_of_junk_lists_its_first_hundred_problems_and_counts_the_rest() {
    let (dir, path) = config_dir();
    let p = path.display().to_string();
    let junk = |line: usize| format!("{p}:{line}:2: TOML syntax: key with no value, expected `=`");

    // 100 000 lines of junk (200 000 bytes): every syntax error counted, the first
    // hundred shown. Before, 30 s of placing each one.
    write_file(&path, &"x\n".repeat(100_000));
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 102, "{}", text(&out.stderr));
    assert_eq!(lines[0], junk(1));
    assert_eq!(lines[99], junk(100));
    assert_eq!(lines[100], format!("{p}: 99900 more problems not shown"));
    assert_eq!(lines[101], format!("uvs: {p}: 100000 problems"));

    // `uvs run -c` says the same, and starts nothing.
    let sock = dir.path().join("uvs.sock");
    let run = bounded(
        {
            let mut cmd = Command::new(UVS);
            cmd.args(["run", "--metrics", "off", "--socket"])
                .arg(&sock)
                .arg("-c")
                .arg(&path)
                .env("UVS_LOG", "error");
            cmd
        },
        "uvs run -c",
    );
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(text(&run.stderr), text(&out.stderr));
    assert!(!sock.exists());

    // 200 000 lines (400 000 bytes, over 256 KiB): the first syntax error found, and
    // word that there may be more.
    write_file(&path, &"x\n".repeat(200_000));
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr_lines(&out),
        [
            junk(1),
            format!(
                "{p}: the file is over 256 KiB, so only the first TOML syntax error found is reported"
            ),
            format!("uvs: {p}: at least 1 problem"),
        ]
    );

    // Problems the schema finds out of the file's order (unknown keys come in the
    // order of their names: k0, k1, k10, k100, ...) are shown in the file's.
    let keys: String = (0..1000).map(|i| format!("k{i} = 1\n")).collect();
    write_file(&path, &keys);
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 102, "{}", text(&out.stderr));
    assert_eq!(lines[0], format!("{p}:1:1: k0: unknown key"));
    assert_eq!(lines[99], format!("{p}:100:1: k99: unknown key"));
    assert_eq!(lines[100], format!("{p}: 900 more problems not shown"));
    assert_eq!(lines[101], format!("uvs: {p}: 1000 problems"));
}

#[test]
fn imports_of_junk_list_the_first_hundred_lines_not_taken_and_count_the_rest() {
    let (_dir, path) = config_dir();
    let p = path.display().to_string();
    write_file(&path, &"x\n".repeat(100_000));
    for (format, message) in [
        ("ldirectord", "`x': not a key=value directive"),
        ("ipvsadm", "not an ipvsadm rule"),
    ] {
        let out = import(format, &path);
        assert_eq!(out.status.code(), Some(1), "{format}");
        let lines = stderr_lines(&out);
        assert_eq!(lines.len(), 102, "{format}: {}", text(&out.stderr));
        assert_eq!(lines[0], format!("{p}:1: {message}"), "{format}");
        assert_eq!(lines[99], format!("{p}:100: {message}"), "{format}");
        assert_eq!(
            lines[100],
            format!("{p}: 99900 more lines not taken, not shown"),
            "{format}"
        );
        assert_eq!(
            lines[101],
            format!("uvs: {p}: 100000 lines not taken"),
            "{format}"
        );
    }
}

#[test]
fn import_refuses_standard_input_over_the_size_limit() {
    let limit = uvs::config::file::MAX_BYTES;
    let mut child = Command::new(UVS)
        .args(["import", "ipvsadm", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .env_remove("RUST_BACKTRACE")
        .spawn()
        .expect("spawn uvs import");
    let mut stdin = child.stdin.take().unwrap();
    // One byte over, in blank lines; the writer stops if the reader goes first.
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'\n'; 1 << 20];
        let mut left = limit + 1;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if stdin.write_all(&chunk[..n]).is_err() {
                break;
            }
            left -= n as u64;
        }
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "uvs: standard input is too large for a configuration file: over the limit of {limit} bytes (16 MiB)\n"
        )
    );
}

#[test]
fn a_file_of_junk_under_autoreload_is_refused_and_the_corrected_file_follows() {
    let (_dir, path) = config_dir();
    let vip = common::vip();
    // Never connected to: no check, no traffic.
    let server = common::vip();
    let good = |weight: u32| {
        format!(
            "[global]\nautoreload = true\n\n[[service]]\ntcp = \"{vip}\"\n[[service.server]]\naddress = \"{server}\"\nweight = {weight}\n"
        )
    };
    let d = Daemon::start_with_file(&path, &good(1), &[]);
    d.wait_listening(vip);
    let before = d.save();

    // The case found: a megabyte of junk lines moved into place. Its read took 12.5
    // minutes of a core, and held up every reload after it.
    write_file(&path, &"x\n".repeat(1 << 19));
    let first = format!(
        "{}:1:2: TOML syntax: key with no value, expected `=`",
        path.display()
    );
    eventually("the junk refused", || status(&d).contains("refused 1"));
    let shown = status(&d);
    assert!(
        shown.contains("reloads 0, refused 1; the last reload was refused:\n")
            && shown.contains(&format!("\n  {first}\n"))
            && shown.contains(
                "the file is over 256 KiB, so only the first TOML syntax error found is reported"
            ),
        "{shown}"
    );
    assert_eq!(d.save(), before, "the running table stays");

    // Corrected: taken at the next look, no signal needed.
    write_file(&path, &good(2));
    eventually("the corrected file applied", || {
        d.save().contains(&format!("-r {server} -m -w 2"))
    });
    let shown = status(&d);
    assert!(shown.contains("reloads 1, refused 1\n"), "{shown}");
    let log = d.log();
    assert_eq!(log.matches("reload refused").count(), 1, "{log}");
    assert!(log.contains(&first), "{log}");
}

/// A file of one persistent round-robin TCP service `vip` over `servers` (address,
/// weight), with `global`'s lines in [global].
fn persistent_file(global: &str, vip: SocketAddr, servers: &[(SocketAddr, u32)]) -> String {
    let mut text = format!(
        "[global]\n{global}\n\n[[service]]\ntcp = \"{vip}\"\nscheduler = \"rr\"\npersistent = \"10m\"\n"
    );
    for (address, weight) in servers {
        text.push_str(&format!(
            "[[service.server]]\naddress = \"{address}\"\nweight = {weight}\n"
        ));
    }
    text
}

/// Two backends answering their names, and which is which.
struct Pair {
    a: Backend,
    b: Backend,
}

impl Pair {
    fn start() -> Pair {
        let (a, b) = Backend::pair(Behaviour::Name);
        Pair { a, b }
    }

    /// The address of the backend that answers a connection to `vip`, and the other's.
    fn answering(&self, vip: SocketAddr) -> (SocketAddr, SocketAddr) {
        match common::ask(vip, None).as_str() {
            "A" => (self.a.addr, self.b.addr),
            "B" => (self.b.addr, self.a.addr),
            other => panic!("an answer from neither backend: {other:?}"),
        }
    }
}

/// Writes `contents` to `path`, and waits for the SIGHUP reload of it that makes the
/// `n`th reload in the log.
fn reload_to(d: &Daemon, path: &Path, contents: &str, n: usize) {
    write_file(path, contents);
    sighup(&d.child);
    eventually("the reload is logged", || {
        d.log().matches("SIGHUP: configuration reloaded").count() == n
    });
}

/// IPVS's expire_quiescent_template, set by the command line and denied by the file:
/// the command line wins at start (the client of a server quiesced with uvsadm goes to
/// the other one) and on a reload (so does the client of a server the file quiesces).
#[test]
fn the_command_line_wins_over_the_file_at_start_and_on_reload() {
    let (_dir, path) = config_dir();
    let pair = Pair::start();
    let vip = common::vip();
    let denied = "expire_quiescent_template = false";
    let both = [(pair.a.addr, 1), (pair.b.addr, 1)];
    let d = Daemon::start_with_file(
        &path,
        &persistent_file(denied, vip, &both),
        &["--expire-quiescent-template"],
    );
    d.wait_listening(vip);

    let (first, other) = pair.answering(vip);
    d.set_server("-e", "-t", vip, first, &["-w", "0"]);
    let (now, _) = pair.answering(vip);
    assert_eq!(
        now, other,
        "at start, the client stayed on its quiesced server"
    );

    // The file quiesces the server the client is on now, and still denies it.
    let swapped = persistent_file(denied, vip, &[(first, 1), (other, 0)]);
    reload_to(&d, &path, &swapped, 1);
    let listing = d.list(&["-L", "-n", "-t", &vip.to_string()]);
    assert!(listing.contains(&format!("{other}  ")), "{listing}");
    let (now, _) = pair.answering(vip);
    assert_eq!(
        now, first,
        "on reload, the client stayed on its quiesced server"
    );
}

/// A live setting the file changes applies on the reload, and the log says so.
#[test]
fn a_reload_applies_a_live_setting_it_changes() {
    let (_dir, path) = config_dir();
    let pair = Pair::start();
    let vip = common::vip();
    let both = [(pair.a.addr, 1), (pair.b.addr, 1)];
    let d = Daemon::start_with_file(&path, &persistent_file("", vip, &both), &[]);
    d.wait_listening(vip);

    let (first, other) = pair.answering(vip);
    // Off, as by default: a quiesced server keeps its persistent client.
    let quiesced = [(first, 0), (other, 1)];
    reload_to(&d, &path, &persistent_file("", vip, &quiesced), 1);
    let (now, _) = pair.answering(vip);
    assert_eq!(now, first);

    let on = "expire_quiescent_template = true";
    reload_to(&d, &path, &persistent_file(on, vip, &quiesced), 2);
    let (now, _) = pair.answering(vip);
    assert_eq!(now, other, "the reloaded setting was not applied");
    let log = d.log();
    assert!(
        log.lines().any(|l| l.contains("changed; applied")
            && l.contains("key=global.expire_quiescent_template")),
        "{log}"
    );
    assert!(!log.contains("next start"), "{log}");
}

/// Settings that shape what the daemon built at start (its worker threads, what it does
/// with the kernel's services when it stops) are named in a warning when a reload
/// changes them, and left as they were.
#[test]
fn a_reload_names_the_next_start_settings_it_changes_and_leaves_them() {
    let (_dir, path) = config_dir();
    let a = Backend::start("A", Behaviour::Name);
    let vip = common::vip();
    let d = Daemon::start_with_file(
        &path,
        &persistent_file("threads = 2", vip, &[(a.addr, 1)]),
        &[],
    );
    d.wait_listening(vip);
    let workers = || {
        let mut client = uvs::control::client::Client::new(d.socket.clone());
        match client.call(&uvs::control::protocol::Request::Status {}) {
            Ok(uvs::control::protocol::Response::Status { status }) => {
                status.worker_connections.len()
            }
            other => panic!("status: {other:?}"),
        }
    };
    assert_eq!(workers(), 2);

    let changed = persistent_file("threads = 3\ncleanstop = false", vip, &[(a.addr, 1)]);
    reload_to(&d, &path, &changed, 1);
    let log = d.log();
    for key in ["global.threads", "global.cleanstop"] {
        assert!(
            log.lines().any(|l| l.contains("WARN")
                && l.contains("changed; it takes effect at the next start")
                && l.contains(&format!("key={key}"))),
            "{key} in\n{log}"
        );
    }
    assert!(!log.contains("global.retries"), "{log}");
    assert_eq!(workers(), 2, "the reload changed the worker threads");
    assert_eq!(common::ask(vip, None), "A");
}
