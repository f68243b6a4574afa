//! Configuration files over real processes: `uvs check` on good and broken files,
//! `uvs run -c` loading a table, reloads (SIGHUP and autoreload) under steady load that
//! change weights and add and remove servers and services without one failed request,
//! counters that carry on, services made with uvsadm left alone, and broken files that
//! change nothing.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Backend, Behaviour, Daemon, UVS, connect, eventually, free_port, sighup, text};

fn write(path: &Path, contents: &str) {
    // Written beside and renamed, as editors do, so a reader never sees half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn check(path: &Path) -> std::process::Output {
    Command::new(UVS)
        .args(["check", "-c"])
        .arg(path)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run uvs check")
}

#[test]
fn check_accepts_a_good_file_and_lists_every_problem_of_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    write(
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
    write(
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
    let (vip, other) = (
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        SocketAddr::from(([127, 0, 0, 1], free_port())),
    );
    write(
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
    );
    let d = Daemon::start_logged(&["-c", path.to_str().unwrap()]);
    d.wait_listening(vip);
    // Made with uvsadm, never named by the file: reloads leave it alone.
    let runtime = SocketAddr::from(([127, 0, 0, 1], free_port()));
    d.ok(&["-A", "-t", &runtime.to_string(), "-s", "rr"]);

    let load = Load::start(vip, 3, 2);
    load.wait_for(300);
    let a_before = conns_of(&d, vip, a.addr);

    // Weights change, B leaves, C joins; the second service goes, a third comes.
    let third = SocketAddr::from(([127, 0, 0, 1], free_port()));
    write(
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
    let vip = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let good = format!(
        "[global]\nautoreload = true\n\n[[service]]\ntcp = \"{vip}\"\n[[service.server]]\naddress = \"{}\"\n",
        a.addr
    );
    write(&path, &good);
    let d = Daemon::start_logged(&["-c", path.to_str().unwrap()]);
    d.wait_listening(vip);
    let load = Load::start(vip, 1, 1);
    load.wait_for(100);
    let before = d.save();

    write(
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

    // Fixed, it is taken (autoreload: no signal needed).
    write(
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
    write(
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
