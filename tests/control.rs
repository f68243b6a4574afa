//! The daemon and its control socket, over real processes and a real Unix socket: who may
//! connect, what happens with no daemon, with a second daemon, with a stale socket, with
//! garbage on the socket, and on SIGTERM; and uvsadm's paths through it (-R from stdin,
//! names from DNS on loopback, the save script, the sync-daemon commands).

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, UVS, UVSADM, Zone, sigterm, status_at, text, uvsadm_at};

const RULES: &str = "\
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 192.168.1.2:8080 -m -w 3
-a -t 10.0.0.1:80 -r 192.168.1.3:8080 -m -w 1
-A -u 10.0.0.1:53 -s wlc -p 600 -M 255.255.255.0
-a -u 10.0.0.1:53 -r 192.168.1.4:53 -g -w 1
-A -f 5 -6 -s sh -p 120 -M 64 -b sh-port
-a -f 5 -6 -r [2001:db8::20]:0 -g -w 2
";

fn loaded() -> Daemon {
    let d = Daemon::start();
    let out = d.uvsadm_with_input(&["-R"], RULES);
    assert!(out.status.success(), "{out:?}");
    d
}

#[test]
fn restore_from_stdin_then_save_gives_the_rules_back_in_ipvsadm_order() {
    let d = loaded();
    assert_eq!(
        d.save(),
        "\
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 192.168.1.2:8080 -m -w 3
-a -t 10.0.0.1:80 -r 192.168.1.3:8080 -m -w 1
-A -u 10.0.0.1:53 -s wlc -p 600 -M 255.255.255.0
-a -u 10.0.0.1:53 -r 192.168.1.4:53 -g -w 1
-A -f 5 -6 -s sh -p 120 -M 64 -b sh-port
-a -f 5 -6 -r [2001:db8::20]:0 -g -w 2
"
    );
}

#[test]
fn without_a_daemon_uvsadm_names_the_socket_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nobody-here.sock");
    for args in [&["-L", "-n"][..], &["-A", "-t", "1.2.3.4:80"], &[]] {
        let out = Command::new(UVSADM)
            .args(args)
            .env("UVS_SOCKET", &socket)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.starts_with("Can't initialize ipvs: cannot reach the uvs daemon at ")
                && err.contains(&socket.display().to_string()),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
    // Argument errors are still reported as such, without a daemon.
    let out = Command::new(UVSADM)
        .args(["-A"])
        .env("UVS_SOCKET", &socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "You need to supply the 'service-address' option for the 'add-service' command\n"
    );
}

#[test]
fn the_socket_is_private_to_its_owner() {
    let d = Daemon::start();
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[test]
fn socket_option_overrides_the_environment() {
    let d = loaded();
    let out = uvsadm_at(&d.socket)
        .args(["-L", "-n", "-t", "10.0.0.1:80"])
        .env("UVS_SOCKET", "/nonexistent/uvs.sock")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "\
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.0.0.1:80 rr
  -> 192.168.1.2:8080             Masq    3      0          0         
  -> 192.168.1.3:8080             Masq    1      0          0         
"
    );
}

#[test]
fn a_live_socket_is_not_taken_over_and_a_stale_one_is() {
    let d = loaded();
    let out = Command::new(UVS)
        .args(["run", "--socket"])
        .arg(&d.socket)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("another uvs daemon is already listening on"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(d.save().lines().count(), 7, "the first daemon is untouched");

    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let mut child = Command::new(UVS)
        .args(["run", "--socket"])
        .arg(&stale)
        .env("UVS_LOG", "warn")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while UnixStream::connect(&stale).is_err() {
        assert!(
            Instant::now() < deadline,
            "daemon did not take the stale socket"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    std::fs::write(dir.path().join("plain"), "not a socket").unwrap();
    let out = Command::new(UVS)
        .args(["run", "--socket"])
        .arg(dir.path().join("plain"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("is not a socket"));
}

#[test]
fn sigterm_stops_the_daemon_cleanly_and_removes_the_socket() {
    let mut d = Daemon::start();
    sigterm(&d.child);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "daemon ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success());
    assert!(!d.socket.exists());
}

/// Sends one raw frame (or raw bytes) and reads one answer frame, if any.
fn exchange(socket: &std::path::Path, bytes: &[u8]) -> Option<serde_json::Value> {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

fn error_kind(answer: &Option<serde_json::Value>) -> String {
    let a = answer.as_ref().expect("an answer");
    assert_eq!(a["response"]["type"], "error", "{a}");
    a["response"]["error"]["kind"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn garbage_on_the_socket_gets_errors_and_never_changes_the_table() {
    let mut d = loaded();
    let before = d.save();

    assert_eq!(
        error_kind(&exchange(&d.socket, &frame(b"not json"))),
        "malformed"
    );
    assert_eq!(
        error_kind(&exchange(
            &d.socket,
            &frame(br#"{"version":9,"request":{"type":"info"}}"#)
        )),
        "unsupported_version"
    );
    assert_eq!(
        error_kind(&exchange(
            &d.socket,
            &frame(br#"{"version":1,"request":{"type":"drop_tables"}}"#)
        )),
        "malformed"
    );
    assert_eq!(
        error_kind(&exchange(
            &d.socket,
            &frame(br#"{"version":1,"request":{"type":"apply","command":{"op":"flush","extra":[1,2]}}}"#)
        )),
        "malformed",
        "unknown fields in a command are refused, not ignored"
    );
    assert_eq!(
        error_kind(&exchange(&d.socket, &(u32::MAX).to_be_bytes())),
        "too_large"
    );
    // A command the table refuses: the kernel's answer, nothing changed.
    let refused = exchange(
        &d.socket,
        &frame(
            br#"{"version":1,"request":{"type":"apply","command":{"op":"add_server","service":{"kind":"inet","protocol":"tcp","addr":"10.0.0.1","port":80},"server":{"addr":"192.168.9.9","port":80,"forward":"masq","weight":-5,"u_threshold":0,"l_threshold":0,"tunnel":{"kind":"ipip","port":0,"checksum":"nocsum"}}}}}"#,
        ),
    )
    .unwrap();
    assert_eq!(refused["response"]["type"], "refused");
    assert_eq!(refused["response"]["error"], "out_of_range");

    // Random bytes, truncated frames and early hang-ups, many times over.
    let mut seed: u64 = 0x5eed;
    for i in 0..200 {
        let mut bytes = Vec::new();
        for _ in 0..(i % 64) {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            bytes.push((seed >> 33) as u8);
        }
        if i % 3 == 0 {
            // A length that promises more than is sent, then hang up.
            let mut partial = 1000u32.to_be_bytes().to_vec();
            partial.extend_from_slice(&bytes);
            bytes = partial;
        }
        let mut s = UnixStream::connect(&d.socket).unwrap();
        let _ = s.write_all(&bytes);
    }

    assert!(d.alive(), "the daemon survived");
    assert_eq!(d.save(), before, "the table did not change");
    let ok = exchange(
        &d.socket,
        &frame(br#"{"version":1,"request":{"type":"get_timeouts"}}"#),
    );
    assert_eq!(ok.unwrap()["response"]["timeouts"]["tcp"], 900);
}

#[test]
fn names_come_from_the_hosts_file_dns_and_services() {
    let mut zone = Zone::default();
    zone.a
        .insert("web.example".into(), "10.0.0.7".parse().unwrap());
    zone.ptr
        .insert("7.0.0.10.in-addr.arpa".into(), "web.example".into());
    let d = Daemon::start_with_zone(zone);
    let out = d.uvsadm(&["-A", "-t", "web.example:http", "-s", "rr"]);
    assert!(out.status.success(), "{out:?}");
    let out = d.uvsadm(&[
        "-a",
        "-t",
        "web.example:www",
        "-r",
        "localhost:webcache",
        "-m",
    ]);
    assert!(out.status.success(), "{out:?}");
    let out = d.uvsadm(&["-L"]);
    assert_eq!(
        text(&out.stdout),
        "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  web.example:http rr
  -> localhost:http-alt           Masq    1      0          0         
"
    );
    assert!(d.dns.queries.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    assert_eq!(
        text(&d.uvsadm(&["-S"]).stdout),
        "-A -t web.example:http -s rr\n-a -t web.example:http -r localhost:http-alt -m -w 1\n"
    );
    let out = d.uvsadm(&["-A", "-t", "unknown.example:80"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "illegal virtual server address[:port] specified\n"
    );
}

#[test]
fn the_save_script() {
    let d = loaded();
    let save_script = |arg: &str| {
        let mut cmd = Command::new("ipvsadm-save");
        cmd.arg(arg);
        d.configure(&mut cmd);
        common::run_with_input(cmd, "")
    };
    let out = save_script("-n");
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), d.save());
    let out = save_script("--help");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "ipvsadm-save: Script to save the IPVS table to stdout.\n   With the -n option, prints out the table in numeric format.\n"
    );
}

/// The sync daemons in userspace mode: a start checks its interface as the kernel
/// does and is listed resolved for it (shared/golden/daemon_*), and the kernel's
/// refusals come in libipvs's words with ipvsadm's status 255.
#[test]
fn sync_daemons_start_list_and_stop_as_ipvsadm_says() {
    let d = loaded();
    let ok = |args: &[&str]| {
        let out = d.uvsadm(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let refused = |args: &[&str], words: &str| {
        let out = d.uvsadm(args);
        assert_eq!(out.status.code(), Some(255), "{args:?}");
        assert_eq!(text(&out.stderr), format!("{words}\n"), "{args:?}");
        assert!(out.stdout.is_empty());
    };
    assert_eq!(ok(&["-L", "-n", "--daemon"]), "");
    ok(&[
        "--start-daemon",
        "master",
        "--mcast-interface",
        "lo",
        "--syncid",
        "7",
    ]);
    let line = "master sync daemon (mcast=lo, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n";
    assert_eq!(ok(&["-L", "-n", "--daemon"]), line);
    assert_eq!(ok(&["-L", "--daemon"]), line);
    refused(
        &["--start-daemon", "master", "--mcast-interface", "lo"],
        "Daemon has already run",
    );
    // The interface is looked up before the role (ip_vs_sync.c start_sync_thread).
    for role in ["master", "backup"] {
        refused(
            &["--start-daemon", role, "--mcast-interface", "uvs-nosuch0"],
            "No such device",
        );
    }
    ok(&[
        "--start-daemon",
        "backup",
        "--mcast-interface",
        "lo",
        "--sync-maxlen",
        "100",
    ]);
    let listed = ok(&["-L", "-n", "--daemon"]);
    assert_eq!(
        listed,
        format!(
            "{line}backup sync daemon (mcast=lo, syncid=0, maxlen=1024, group=224.0.0.81, port=8848, ttl=1)\n"
        )
    );
    ok(&["--stop-daemon", "master"]);
    refused(&["--stop-daemon", "master"], "No daemon is running");
    ok(&["--stop-daemon", "backup"]);
    assert_eq!(ok(&["-L", "-n", "--daemon"]), "");
}

#[test]
fn many_clients_at_once() {
    let d = loaded();
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let socket = d.socket.clone();
            std::thread::spawn(move || {
                let out = Command::new(UVSADM)
                    .args(["-L", "-n", "--stats"])
                    .env("UVS_SOCKET", &socket)
                    .stdout(Stdio::piped())
                    .output()
                    .unwrap();
                assert!(out.status.success(), "client {i}");
                text(&out.stdout).lines().count()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 3 + 7);
    }
}

/// Another user on the same host, as the tests can play one: root sets the scene (it
/// owns nothing it hands over), and `setpriv` runs a command under a uid of its choice.
/// The binaries are copied where any uid can run them.
struct Users {
    dir: tempfile::TempDir,
    uvs: std::path::PathBuf,
    uvsadm: std::path::PathBuf,
}

/// The victim's uid and the other user's.
const OWNER: u32 = 65534;
const OTHER: u32 = 65533;

impl Users {
    /// None when the tests do not run as root (then no other user can be played).
    fn new() -> Option<Users> {
        if text(&Command::new("id").arg("-u").output().ok()?.stdout).trim() != "0" {
            eprintln!("not root: another user cannot be played, the test does nothing");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let copy = |from: &str, name: &str| {
            let to = dir.path().join(name);
            std::fs::copy(from, &to).unwrap();
            to
        };
        let (uvs, uvsadm) = (copy(UVS, "uvs"), copy(UVSADM, "uvsadm"));
        Some(Users { dir, uvs, uvsadm })
    }

    /// A directory owned by `uid` with `mode`, made by root.
    fn directory(&self, name: &str, uid: u32, mode: u32) -> std::path::PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(&path).unwrap();
        std::os::unix::fs::chown(&path, Some(uid), Some(uid)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// `program args` as `uid`, with a clean environment but for `env`.
    fn command(&self, uid: u32, program: &std::path::Path, env: &[(&str, &str)]) -> Command {
        let mut c = Command::new("setpriv");
        c.args([
            format!("--reuid={uid}"),
            format!("--regid={uid}"),
            "--clear-groups".into(),
            "--".into(),
        ])
        .arg(program)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("UVS_LOG", "warn")
        .stdin(Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    /// `uvs run --socket SOCKET` as `uid`, once it listens there.
    fn daemon(&self, uid: u32, socket: &std::path::Path) -> Running {
        let mut c = self.command(uid, &self.uvs, &[]);
        c.args(["run", "--mode", "userspace", "--metrics", "off", "--socket"])
            .arg(socket);
        let daemon = Running::spawn(c);
        common::eventually("the daemon listens", || UnixStream::connect(socket).is_ok());
        daemon
    }

    /// `uvsadm --socket SOCKET ARGS` as `uid`, run to its end.
    fn uvsadm_at(&self, uid: u32, socket: &std::path::Path, args: &[&str]) -> std::process::Output {
        let mut c = self.command(uid, &self.uvsadm, &[]);
        c.arg("--socket").arg(socket).args(args);
        finish(c)
    }
}

/// A process killed when the test ends, however it ends; what it writes to stderr is
/// kept in a file and shown only if the test fails (as a `Daemon`'s log).
struct Running(std::process::Child, tempfile::NamedTempFile);

impl Running {
    fn spawn(mut command: Command) -> Running {
        let log = tempfile::NamedTempFile::new().unwrap();
        command.stderr(log.reopen().unwrap());
        Running(command.spawn().unwrap(), log)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::thread::panicking() {
            let log = common::log_tail(self.1.path());
            eprintln!("--- stderr of pid {} ---\n{log}--- end ---", self.0.id());
        }
    }
}

/// Runs a command to its end within 20 s.
fn finish(mut command: Command) -> std::process::Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} did not end within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_socket_directory_another_user_made_or_can_write_is_refused_by_both_sides() {
    let Some(users) = Users::new() else { return };
    // /tmp as it is everywhere: root's, sticky, open to all.
    let tmp = users.directory("tmp", 0, 0o1777);
    let tmpdir = tmp.to_str().unwrap();
    let socket_dir = tmp.join(format!("uvs-{OWNER}"));

    // The case that was found: the other user made $TMPDIR/uvs-<uid> first, open to all.
    users.directory(&format!("tmp/uvs-{OWNER}"), OTHER, 0o777);
    for program in [&users.uvs, &users.uvsadm] {
        let mut c = users.command(OWNER, program, &[("TMPDIR", tmpdir)]);
        if program == &users.uvs {
            c.args(["run", "--mode", "userspace", "--metrics", "off"]);
        } else {
            c.args(["-A", "-t", "127.0.0.1:80"]);
        }
        // The other user's "daemon", which would take the owner's commands.
        let bait = socket_dir.join("uvs.sock");
        let _ = std::fs::remove_file(&bait);
        let listener = std::os::unix::net::UnixListener::bind(&bait).unwrap();
        std::os::unix::fs::chown(&bait, Some(OTHER), Some(OTHER)).unwrap();
        std::fs::set_permissions(&bait, std::fs::Permissions::from_mode(0o777)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let out = finish(c);
        let err = text(&out.stderr);
        let expected = format!(
            "{} is owned by uid {OTHER}, not by uid {OWNER} or root",
            socket_dir.display()
        );
        assert!(err.contains(&expected), "{program:?}: {err}");
        if program == &users.uvs {
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert!(
                err.starts_with("uvs: cannot start the control socket "),
                "the daemon names its socket: {err}"
            );
        } else {
            assert_eq!(out.status.code(), Some(2), "{err}");
            assert!(
                err.starts_with(&format!(
                    "Can't initialize ipvs: refusing to use the uvs control socket {}",
                    bait.display()
                )),
                "{err}"
            );
        }
        // uvsadm connected (that is how it could tell) but sent nothing.
        let mut got = Vec::new();
        if let Ok((mut s, _)) = listener.accept() {
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let _ = s.read_to_end(&mut got);
        }
        assert!(got.is_empty(), "a request reached the other user: {got:?}");
    }

    // The owner's own directory, but left open to others: refused too, with why.
    std::os::unix::fs::chown(&socket_dir, Some(OWNER), Some(OWNER)).unwrap();
    std::fs::remove_file(socket_dir.join("uvs.sock")).unwrap();
    let mut c = users.command(OWNER, &users.uvs, &[("TMPDIR", tmpdir)]);
    c.args(["run", "--mode", "userspace", "--metrics", "off"]);
    let out = finish(c);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!(
            "{} is writable by other users (mode 0777)",
            socket_dir.display()
        )),
        "{}",
        text(&out.stderr)
    );

    // Made private, the daemon starts there, and uvsadm talks to it.
    std::fs::set_permissions(&socket_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut c = users.command(OWNER, &users.uvs, &[("TMPDIR", tmpdir)]);
    c.args(["run", "--mode", "userspace", "--metrics", "off"]);
    let _daemon = Running::spawn(c);
    let socket = socket_dir.join("uvs.sock");
    common::eventually("the owner's daemon listens", || {
        UnixStream::connect(&socket).is_ok()
    });
    let mut add = users.command(OWNER, &users.uvsadm, &[("TMPDIR", tmpdir)]);
    add.args(["-A", "-t", "127.0.0.1:80", "-s", "rr"]);
    let out = finish(add);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn uvsadm_refuses_a_daemon_run_by_another_user() {
    let Some(users) = Users::new() else { return };
    // A shared sticky directory (as /tmp): the other user got to the name first.
    let shared = users.directory("shared", 0, 0o1777);
    let socket = shared.join("uvs.sock");
    let _other = users.daemon(OTHER, &socket);
    // A daemon that wants the owner's commands opens its socket to everyone (uvs's own
    // mode 0600 would keep the owner out before any of this).
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = users.uvsadm_at(OWNER, &socket, &["-A", "-t", "127.0.0.1:80", "-s", "rr"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "Can't initialize ipvs: refusing to use the uvs control socket {}: the process \
             answering on it runs as uid {OTHER}, not as uid {OWNER} or root\n",
            socket.display()
        )
    );
    // The other user's table did not get the command (as its owner sees it).
    let list = users.uvsadm_at(OTHER, &socket, &["-S", "-n"]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    assert_eq!(text(&list.stdout), "");
    // Root refuses it too: the directory is root's, the daemon another uid's.
    let out = uvsadm_at(&socket).args(["-S", "-n"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).ends_with(&format!(
            "runs as uid {OTHER}, not as root, nor as the owner of its directory\n"
        )),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn idle_clients_cannot_lock_uvsadm_out() {
    let d = loaded();
    // More idle clients than there are slots, each sending nothing.
    let idle: Vec<UnixStream> = (0..200)
        .map(|_| UnixStream::connect(&d.socket).unwrap())
        .collect();
    // And some that send half a request and stall.
    let mut stalled: Vec<UnixStream> = (0..20)
        .map(|_| UnixStream::connect(&d.socket).unwrap())
        .collect();
    for s in &mut stalled {
        s.write_all(&1000u32.to_be_bytes()).unwrap();
    }
    let started = Instant::now();
    let out = d.uvsadm(&["-L", "-n", "-t", "10.0.0.1:80"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("192.168.1.2:8080"));
    // Not a timing claim: the answer came while the idle clients were still connected
    // (the daemon drops silent clients after 5 s; these were never dropped for it).
    let waited = started.elapsed();
    eprintln!("uvsadm answered after {waited:?} with 220 idle clients connected");
    // The idle ones that were made to room are closed by the daemon: reading gives EOF.
    let mut closed = 0;
    for mut s in idle.into_iter().take(100) {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        if matches!(s.read(&mut [0u8; 1]), Ok(0)) {
            closed += 1;
        }
    }
    assert_eq!(closed, 100, "idle clients are dropped, not kept forever");
    assert_eq!(d.save().lines().count(), 7);
}

#[test]
fn a_request_with_a_duplicate_key_or_an_unknown_field_is_refused_whole() {
    let d = loaded();
    let before = d.save();
    // The case that was found: the second "request" used to win, and flush the table.
    let answer = exchange(
        &d.socket,
        &frame(br#"{"version":1,"request":{"type":"info"},"request":{"type":"apply","command":{"op":"flush"}}}"#),
    );
    assert_eq!(error_kind(&answer), "malformed");
    let detail = answer.unwrap()["response"]["error"]["detail"].to_string();
    assert!(detail.contains("duplicate field `request`"), "{detail}");
    for body in [
        &br#"{"version":1,"request":{"type":"apply","command":{"op":"flush"}},"dry_run":true}"#[..],
        br#"{"version":1,"request":{"type":"apply","command":{"op":"zero","service":null,"op":"flush"}}}"#,
        br#"{"version":1,"request":{"type":"apply","type":"info","command":{"op":"flush"}}}"#,
    ] {
        assert_eq!(
            error_kind(&exchange(&d.socket, &frame(body))),
            "malformed",
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(d.save(), before, "nothing was flushed");
}

#[test]
fn root_administers_a_daemon_run_by_its_own_uid_in_its_own_directory() {
    let Some(users) = Users::new() else { return };
    // As systemd's DynamicUser makes it: a runtime directory of the daemon's uid, 0755.
    let run = users.directory("run-uvs", OTHER, 0o755);
    let socket = run.join("uvs.sock");
    let _daemon = users.daemon(OTHER, &socket);
    for args in [&["-A", "-t", "127.0.0.1:80", "-s", "rr"][..], &["-S", "-n"]] {
        let out = uvsadm_at(&socket).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    let out = status_at(&socket).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("TCP  127.0.0.1:80 rr"));
    // Another user is not let in by that: only root is.
    let out = users.uvsadm_at(OWNER, &socket, &["-S", "-n"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn clients_that_never_read_their_answers_cannot_lock_uvsadm_out() {
    let d = Daemon::start();
    // A table whose listing (about 0.6 MB) is larger than a socket's buffers.
    let rules: String = (1..=500)
        .map(|mark| {
            let mut r = format!("-A -f {mark} -s rr\n");
            for i in 0..4 {
                r.push_str(&format!(
                    "-a -f {mark} -r 10.9.{}.{}:80 -m\n",
                    mark % 250,
                    i + 1
                ));
            }
            r
        })
        .collect();
    let out = d.uvsadm_with_input(&["-R"], &rules);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The case that was found: 64 (every slot) ask for the listing and never read it.
    let request = frame(br#"{"version":1,"request":{"type":"list_services"}}"#);
    let stalled: Vec<UnixStream> = (0..70)
        .map(|_| {
            let mut s = UnixStream::connect(&d.socket).unwrap();
            s.write_all(&request).unwrap();
            s
        })
        .collect();
    let out = d.uvsadm(&["-L", "-n", "-f", "7"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("FWM  7 rr"),
        "{}",
        text(&out.stdout)
    );
    // The stalled clients that made room were dropped (their answers cut short), not
    // kept for the minute an answer may take.
    let mut dropped = 0;
    for mut s in stalled.into_iter().take(5) {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        match s.read_to_end(&mut got) {
            Ok(_) => dropped += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => dropped += 1,
            Err(e) => eprintln!("{e} after {} bytes", got.len()),
        }
    }
    assert_eq!(dropped, 5);
}
