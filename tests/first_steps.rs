//! What a newcomer meets around the daemon (issue 16): `uvs status` with no daemon says
//! in one line where it looked and how to start one; a port below the unprivileged
//! limit says why it is refused and what to do, once, while the daemon serves the rest;
//! a second SIGINT ends the drain at once.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{AsNobody, Backend, Behaviour, Daemon, UVS, eventually, text};

/// `uvs status` on a socket nobody serves, with this environment.
fn status_without_daemon(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = Command::new(UVS);
    command
        .arg("status")
        .args(args)
        .env_remove("UVS_SOCKET")
        .env("UVS_LOG", "warn");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = common::bounded(command, "uvs status");
    assert_eq!(text(&out.stdout), "");
    (out.status.code(), text(&out.stderr))
}

#[test]
fn uvs_status_without_a_daemon_says_where_it_looked_and_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("uvs.sock");
    let s = socket.to_str().unwrap();
    let tail = "No such file or directory (os error 2); start one with `uvs run -c FILE` \
                (or `uvs demo`, which prints its own --socket)\n";
    assert_eq!(
        status_without_daemon(&["--socket", s], &[]),
        (
            Some(1),
            format!("uvs: no uvs daemon at {s} (given by --socket): {tail}")
        )
    );
    assert_eq!(
        status_without_daemon(&[], &[("UVS_SOCKET", s)]),
        (
            Some(1),
            format!("uvs: no uvs daemon at {s} (from $UVS_SOCKET): {tail}")
        )
    );
    // A socket file nobody answers on (a daemon that died): refused, said the same way.
    let _dead = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    drop(_dead);
    let (code, said) = status_without_daemon(&["--socket", s], &[]);
    assert_eq!(code, Some(1));
    assert_eq!(
        said,
        format!(
            "uvs: no uvs daemon at {s} (given by --socket): Connection refused (os error 111); \
             start one with `uvs run -c FILE` (or `uvs demo`, which prints its own --socket)\n"
        )
    );
    // A path that is no socket at all (connecting to it is refused too) is said as such.
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    for (path, what) in [
        (dir.path(), "a directory"),
        (file.as_path(), "not a socket"),
    ] {
        let p = path.to_str().unwrap();
        assert_eq!(
            status_without_daemon(&["--socket", p], &[]),
            (
                Some(1),
                format!(
                    "uvs: {p} (given by --socket) is {what}, not a uvs control socket; give the \
                     daemon's socket (--socket PATH, or $UVS_SOCKET)\n"
                )
            )
        );
    }
}

/// Another user's socket (root's, mode 0600, as `uvs run` makes it) is no missing
/// daemon: `uvs status` says the socket is there, whose it is, and that access is
/// denied; not "start one". A directory on the way closed to the user is said as such.
#[test]
fn uvs_status_denied_the_socket_says_so_and_not_start_one() {
    let Some(nobody) = AsNobody::new() else {
        return;
    };
    let dir = &nobody.dir;
    let as_nobody = |socket: &std::path::Path| {
        let mut c = nobody.command(["status", "--socket"]);
        c.arg(socket).env("UVS_LOG", "warn");
        let out = common::bounded(c, "uvs status");
        assert_eq!(text(&out.stdout), "");
        (out.status.code(), text(&out.stderr))
    };
    let socket = dir.path().join("uvs.sock");
    let _listening = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).unwrap();
    let s = socket.to_str().unwrap();
    assert_eq!(
        as_nobody(&socket),
        (
            Some(1),
            format!(
                "uvs: access to the uvs control socket at {s} (given by --socket) is denied: \
                 Permission denied (os error 13); the socket is there (owner uid 0, group gid 0, \
                 mode 0600): run `uvs status` as root or as its owner\n"
            )
        )
    );
    let closed = dir.path().join("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let socket = closed.join("uvs.sock");
    let _listening = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let s = socket.to_str().unwrap();
    assert_eq!(
        as_nobody(&socket),
        (
            Some(1),
            format!(
                "uvs: access to the uvs control socket at {s} (given by --socket) is denied: \
                 Permission denied (os error 13); a directory on the way to it is closed to \
                 this user: run `uvs status` as root, or as a user who may enter that \
                 directory\n"
            )
        )
    );
}

/// The default rule is named too: another user's runtime directory.
#[test]
fn uvs_status_without_a_daemon_names_the_default_rule() {
    let runtime = tempfile::tempdir().unwrap();
    let r = runtime.path().to_str().unwrap();
    let uid = text(&Command::new("id").arg("-u").output().unwrap().stdout);
    let expected = if uid.trim() == "0" {
        "uvs: no uvs daemon at /run/uvs/uvs.sock (root's default; --socket or $UVS_SOCKET choose another): "
            .to_string()
    } else {
        format!(
            "uvs: no uvs daemon at {r}/uvs/uvs.sock (the default, in $XDG_RUNTIME_DIR; --socket or $UVS_SOCKET choose another): "
        )
    };
    if uid.trim() == "0" && std::path::Path::new("/run/uvs/uvs.sock").exists() {
        eprintln!("a daemon may run at /run/uvs/uvs.sock: the test does nothing");
        return;
    }
    let (code, said) = status_without_daemon(&[], &[("XDG_RUNTIME_DIR", r)]);
    assert_eq!(code, Some(1));
    assert!(said.starts_with(&expected), "{said}");
    assert!(
        said.ends_with(
            "; start one with `uvs run -c FILE` (or `uvs demo`, which prints its own --socket)\n"
        ),
        "{said}"
    );
    assert_eq!(said.lines().count(), 1, "{said}");
}

/// A process killed when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `child` to exit, at most `bound`; its status, None if it did not.
fn exited_within(
    child: &mut std::process::Child,
    bound: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Not root, a TCP VIP on a low port: the log says once why (the sysctl's value, the
/// capability, setcap, AmbientCapabilities, a higher port), the daemon keeps retrying
/// it quietly and serves its other service.
#[test]
fn a_low_port_without_the_privilege_is_explained_once_and_the_rest_is_served() {
    // The binary where any uid can run it, a socket directory of the user's own.
    let Some(nobody) = AsNobody::new() else {
        return;
    };
    let Some(start) = common::unprivileged_port_start() else {
        return;
    };
    let dir = &nobody.dir;
    let socket = nobody.run.join("uvs.sock");

    let backend = Backend::start("A", Behaviour::Name);
    let low = std::net::SocketAddr::from(([127, 0, 0, 1], start - 1));
    let high = common::vip();
    let config = dir.path().join("uvs.toml");
    std::fs::write(
        &config,
        format!(
            "[[service]]\ntcp = \"{low}\"\nscheduler = \"rr\"\n[[service.server]]\naddress = \"{b}\"\n\n\
             [[service]]\ntcp = \"{high}\"\nscheduler = \"rr\"\n[[service.server]]\naddress = \"{b}\"\n",
            b = backend.addr
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let log_path = dir.path().join("uvs.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut command = nobody.command(["run", "--mode", "userspace", "--metrics", "off", "-c"]);
    command
        .arg(&config)
        .arg("--socket")
        .arg(&socket)
        .env("PATH", "/usr/bin:/bin")
        .env("UVS_LOG", "info")
        .stdin(Stdio::null())
        .stderr(log);
    let mut daemon = Running(command.spawn().unwrap());
    eventually("the daemon listens", || {
        UnixStream::connect(&socket).is_ok()
    });
    // Serves the other service, meanwhile retrying the low one (every 2 s): past three
    // retries, the hint is still there once.
    eventually("the high VIP answers", || {
        common::connect(high, None)
            .is_ok_and(|mut s| common::read_all(&mut s).is_ok_and(|b| b == b"A"))
    });
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(common::ask(high, None), "A");
    assert!(daemon.0.try_wait().unwrap().is_none(), "the daemon runs on");
    let logged = std::fs::read_to_string(&log_path).unwrap();
    let hint = format!(
        "cannot listen: port {port} is below net.ipv4.ip_unprivileged_port_start ({start}): only root \
         or a process with CAP_NET_BIND_SERVICE may listen on it. Run uvs as root, give it the \
         capability (setcap cap_net_bind_service=+ep {uvs}, or \
         AmbientCapabilities=CAP_NET_BIND_SERVICE in its systemd unit), lower the limit \
         (sysctl net.ipv4.ip_unprivileged_port_start={port}), or use a port from {start} up",
        port = low.port(),
        uvs = nobody.uvs.display(),
    );
    assert_eq!(logged.matches(&hint).count(), 1, "{logged}");
    assert_eq!(
        logged.matches("cannot listen; retrying every 2 s").count(),
        1,
        "{logged}"
    );
    // uvs status shows it failing, not gone.
    let status = common::bounded(
        {
            let mut c = nobody.command(["status", "--socket"]);
            c.arg(&socket);
            c
        },
        "uvs status",
    );
    let status = text(&status.stdout);
    assert!(
        status.contains(&format!(
            "listen tcp {low}: cannot listen: Permission denied"
        )),
        "{status}"
    );
    common::sigterm(&daemon.0);
    assert!(exited_within(&mut daemon.0, Duration::from_secs(20)).is_some_and(|s| s.success()));
}

/// Root without CAP_NET_BIND_SERVICE (a container or unit that dropped it): the hint
/// says what it lacks, not "run uvs as root", which it already is.
#[test]
fn a_root_without_the_capability_is_told_what_it_lacks() {
    if !common::is_root() {
        eprintln!("not root: the test does nothing");
        return;
    }
    let Some(start) = common::unprivileged_port_start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("uvs.sock");
    let backend = Backend::start("A", Behaviour::Name);
    let low = std::net::SocketAddr::from(([127, 0, 0, 1], start - 1));
    let config = dir.path().join("uvs.toml");
    std::fs::write(
        &config,
        format!(
            "[[service]]\ntcp = \"{low}\"\nscheduler = \"rr\"\n[[service.server]]\naddress = \"{b}\"\n",
            b = backend.addr
        ),
    )
    .unwrap();
    let log_path = dir.path().join("uvs.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut command = Command::new("setpriv");
    command
        .args([
            "--bounding-set=-net_bind_service",
            "--inh-caps=-net_bind_service",
            "--",
            UVS,
            "run",
            "--mode",
            "userspace",
            "--metrics",
            "off",
            "-c",
        ])
        .arg(&config)
        .arg("--socket")
        .arg(&socket)
        .env("UVS_LOG", "info")
        .stdin(Stdio::null())
        .stderr(log);
    let daemon = Running(command.spawn().unwrap());
    eventually("the low port's hint is logged", || {
        std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains("cannot listen: port"))
    });
    let logged = std::fs::read_to_string(&log_path).unwrap();
    let hint = format!(
        "cannot listen: port {port} is below net.ipv4.ip_unprivileged_port_start ({start}): uvs \
         runs as root but without CAP_NET_BIND_SERVICE among its effective capabilities \
         (dropped by its container or its service manager). Give it back (docker run --cap-add \
         NET_BIND_SERVICE; CAP_NET_BIND_SERVICE in the unit's CapabilityBoundingSet), lower the \
         limit (sysctl net.ipv4.ip_unprivileged_port_start={port}), or use a port from {start} up",
        port = low.port(),
    );
    assert_eq!(logged.matches(&hint).count(), 1, "{logged}");
    assert!(!logged.contains("Run uvs as root"), "{logged}");
    common::sigterm(&daemon.0);
}

/// A connection held open through the daemon, a SIGINT: the daemon drains (the
/// connection still works); a second SIGINT: it ends the drain at once (well before
/// its 300 s drain timeout), says so, and exits 0 as for a normal stop.
#[test]
fn a_second_sigint_ends_the_drain_at_once() {
    let daemon = Daemon::start_logged(&["--drain-timeout", "300"]);
    let backend = Backend::start("E", Behaviour::Echo);
    let vip = common::vip();
    daemon.balance_on("-t", vip, &["-s", "rr"], &[(backend.addr, &[])]);
    let mut held = common::connect(vip, None).unwrap();
    assert_eq!(common::echoed(&mut held, b"one"), b"one");

    let sigint = |d: &Daemon| {
        let status = Command::new("kill")
            .args(["-INT", &d.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    sigint(&daemon);
    eventually("the drain begins", || {
        daemon.log().contains("draining open connections")
    });
    // Still draining: the held connection works, the daemon has not exited.
    assert_eq!(common::echoed(&mut held, b"two"), b"two");
    let mut daemon = daemon;
    assert!(daemon.child.try_wait().unwrap().is_none());

    sigint(&daemon);
    let status = exited_within(&mut daemon.child, Duration::from_secs(20))
        .expect("the daemon exits within 20 s of the second SIGINT (its drain timeout is 300 s)");
    assert!(status.success(), "{status}");
    let log = daemon.log();
    assert!(
        log.contains("second signal: closing 1 connection now"),
        "{log}"
    );
    assert!(log.contains("uvs daemon stopped"), "{log}");
    assert!(!daemon.socket.exists(), "the socket is removed");
}

/// Two SIGINTs delivered together (as `kill -INT $P; kill -INT $P` can be) are two: the
/// drain is cut at once. The daemon is stopped while they are sent, one to the process
/// and one to its main thread, so that the kernel keeps both (two signals to the
/// process alone would be merged by the kernel) and delivers them back to back when
/// it continues, before its event loop has seen the first.
#[test]
fn two_sigints_sent_together_end_the_drain_at_once() {
    let mut daemon = Daemon::start_logged(&["--drain-timeout", "300"]);
    let backend = Backend::start("E", Behaviour::Echo);
    let vip = common::vip();
    daemon.balance_on("-t", vip, &["-s", "rr"], &[(backend.addr, &[])]);
    let mut held = common::connect(vip, None).unwrap();
    assert_eq!(common::echoed(&mut held, b"one"), b"one");

    let pid = daemon.child.id();
    let kill = |signal: &str| {
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    kill("-STOP");
    eventually("the daemon is stopped", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('T')
        })
    });
    kill("-INT");
    uvs::sys::signals::signal_thread(pid, pid, libc::SIGINT).unwrap();
    kill("-CONT");

    let status = exited_within(&mut daemon.child, Duration::from_secs(20))
        .expect("the daemon exits within 20 s of the two SIGINTs (its drain timeout is 300 s)");
    assert!(status.success(), "{status}");
    let log = daemon.log();
    assert!(log.contains("draining open connections"), "{log}");
    assert!(
        log.contains("second signal: closing 1 connection now"),
        "{log}"
    );
    assert!(!daemon.socket.exists(), "the socket is removed");
}
