//! The file's `[sync]` section against the rest of the file: a daemon whose interface
//! is missing waits and is shown down while everything else is applied, and health
//! changes, which re-apply the file, leave the sync daemons as they are.

mod common;

use std::net::{SocketAddr, TcpListener};

use common::{Daemon, eventually, free_port};

/// An address on loopback nothing listens on (yet).
fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("its address")
}

/// A file with `sync` and one service at `vip` whose one real server, `server`, is
/// checked by connecting every second and listed only while it answers.
fn file(sync: &str, vip: SocketAddr, server: SocketAddr) -> String {
    format!(
        "{sync}\n[[service]]\ntcp = \"{vip}\"\nscheduler = \"rr\"\nquiescent = false\n\n\
         [service.check]\ntype = \"connect\"\ninterval = \"1s\"\ntimeout = \"1s\"\n\n\
         [[service.server]]\naddress = \"{server}\"\n"
    )
}

/// The real servers `-L -n -t vip` lists.
fn listed(d: &Daemon, vip: SocketAddr) -> Vec<String> {
    d.list(&["-L", "-n", "-t", &vip.to_string()])
        .lines()
        .filter(|l| l.trim_start().starts_with("->") && !l.contains("RemoteAddress"))
        .map(|l| l.split_whitespace().nth(1).unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_sync_daemon_whose_interface_is_missing_waits_and_the_rest_of_the_file_runs() {
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("uvs.toml");
    let (vip, server) = (
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        closed_port(),
    );
    // 15 bytes, a valid name no host has.
    let sync = "[sync]\nrole = \"master\"\ninterface = \"uvs-no-such-if0\"\n";
    let d = Daemon::start_with_file(&path, &file(sync, vip, server), &[]);
    d.wait_listening(vip);
    let down = "the master sync daemon is not running: No such device \
                (sync.interface = \"uvs-no-such-if0\"); retrying every 2 s";
    eventually("the daemon shown down", || d.status().contains(down));
    let metrics = common::http_get(d.metrics_address(), "GET", "/metrics").1;
    assert!(
        metrics.contains("uvs_sync_daemon_up{role=\"master\"} 0\n"),
        "{metrics}"
    );
    assert_eq!(d.list(&["-L", "-n", "--daemon"]), "");
    assert!(
        d.log()
            .contains("the master sync daemon cannot start: No such device")
    );
    // A health change is applied all the same.
    eventually("the server found down", || listed(&d, vip).is_empty());
    let _up = TcpListener::bind(server).expect("the real server comes up");
    eventually("the server listed", || {
        listed(&d, vip) == [server.to_string()]
    });
    // uvsadm takes the role over: the file's daemon stops waiting.
    let port = free_port().to_string();
    d.ok(&[
        "--start-daemon",
        "master",
        "--mcast-interface",
        "lo",
        "--mcast-port",
        &port,
    ]);
    eventually("the waiting forgotten", || {
        !d.status().contains("is not running")
    });
    assert!(
        d.list(&["-L", "-n", "--daemon"])
            .starts_with("master sync daemon (mcast=lo,"),
    );
}

#[test]
fn a_health_change_does_not_start_again_a_sync_daemon_uvsadm_stopped() {
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("uvs.toml");
    let (vip, server) = (
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        closed_port(),
    );
    let sync = format!(
        "[sync]\nrole = \"master\"\ninterface = \"lo\"\nport = {}\n",
        free_port()
    );
    let d = Daemon::start_with_file(&path, &file(&sync, vip, server), &[]);
    d.wait_listening(vip);
    eventually("the server found down", || listed(&d, vip).is_empty());
    assert!(
        d.list(&["-L", "-n", "--daemon"])
            .starts_with("master sync daemon (mcast=lo,")
    );
    d.ok(&["--stop-daemon", "master"]);
    assert_eq!(d.list(&["-L", "-n", "--daemon"]), "");
    let _up = TcpListener::bind(server).expect("the real server comes up");
    eventually("the server listed", || {
        listed(&d, vip) == [server.to_string()]
    });
    // The health change re-applied the file's services, not its [sync].
    assert_eq!(d.list(&["-L", "-n", "--daemon"]), "");
}

#[test]
fn check_warns_of_a_sync_interface_this_host_does_not_have_and_passes() {
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("uvs.toml");
    let sync = "[sync]\nrole = \"both\"\ninterface = \"uvs-no-such-if0\"\n";
    common::write_file(&path, sync);
    let mut cmd = std::process::Command::new(common::UVS);
    cmd.args(["check", "-c"]).arg(&path);
    let out = common::bounded(cmd, "uvs check");
    assert!(out.status.success(), "{out:?}");
    let p = path.display();
    assert_eq!(
        common::text(&out.stderr),
        format!(
            "{p}: warning: sync.interface = \"uvs-no-such-if0\": No such device on this host: \
             the master sync daemon will not run until it is there (tried every 2 s)\n\
             {p}: warning: sync.interface = \"uvs-no-such-if0\": No such device on this host: \
             the backup sync daemon will not run until it is there (tried every 2 s)\n"
        )
    );
    // On an interface the host has: nothing to say.
    common::write_file(&path, &sync.replace("uvs-no-such-if0", "lo"));
    let mut cmd = std::process::Command::new(common::UVS);
    cmd.args(["check", "-c"]).arg(&path);
    let out = common::bounded(cmd, "uvs check");
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
}

#[test]
fn a_running_daemon_a_reload_moves_to_a_missing_interface_is_shown_down_and_said_once() {
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("uvs.toml");
    let port = free_port();
    let on = |interface: &str| {
        format!("[sync]\nrole = \"master\"\ninterface = \"{interface}\"\nport = {port}\n")
    };
    let d = Daemon::start_with_file(&path, &on("lo"), &[]);
    let up = |d: &Daemon| {
        common::http_get(d.metrics_address(), "GET", "/metrics")
            .1
            .contains("uvs_sync_daemon_up{role=\"master\"} 1\n")
    };
    eventually("the master up", || up(&d));
    common::write_file(&path, &on("uvs-no-such-if0"));
    common::sighup(&d.child);
    let down = "the master sync daemon is not running: No such device \
                (sync.interface = \"uvs-no-such-if0\"); retrying every 2 s";
    eventually("the master shown down", || d.status().contains(down));
    // The stop of the daemon that ran, and the retries after it, do not clear it.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(d.status().contains(down), "{}", d.status());
    let metrics = common::http_get(d.metrics_address(), "GET", "/metrics").1;
    assert!(
        metrics.contains("uvs_sync_daemon_up{role=\"master\"} 0\n"),
        "{metrics}"
    );
    assert_eq!(d.list(&["-L", "-n", "--daemon"]), "");
    // Reloads of the same file say it no more.
    for n in 2..=4 {
        common::sighup(&d.child);
        eventually("the reload done", || {
            d.status().contains(&format!("reloads {n},"))
        });
    }
    let said = "the master sync daemon cannot start: No such device";
    assert_eq!(d.log().matches(said).count(), 1, "{}", d.log());
    // Back on lo: up again.
    common::write_file(&path, &on("lo"));
    common::sighup(&d.child);
    eventually("the master up again", || up(&d));
    assert!(!d.status().contains("is not running"), "{}", d.status());
}

#[test]
fn a_file_daemon_that_is_down_is_not_listed_and_uvsadm_may_start_one_in_its_place() {
    let port = free_port();
    // Held without SO_REUSEADDR: the backup cannot bind the group's port.
    let group = std::net::SocketAddrV4::new(std::net::Ipv4Addr::new(224, 0, 0, 81), port);
    let _squatter = std::net::UdpSocket::bind(group).expect("hold the port");
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("uvs.toml");
    let d = Daemon::start_with_file(
        &path,
        &format!("[sync]\nrole = \"backup\"\ninterface = \"lo\"\nport = {port}\n"),
        &[],
    );
    eventually("the daemon shown down", || {
        d.status()
            .contains("the backup sync daemon is not running: bind: Address already in use")
    });
    // Nothing runs, so nothing is listed, and a start is not "Daemon has already run".
    assert_eq!(d.list(&["-L", "-n", "--daemon"]), "");
    let other = free_port();
    d.ok(&[
        "--start-daemon",
        "backup",
        "--mcast-interface",
        "lo",
        "--mcast-port",
        &other.to_string(),
    ]);
    eventually("uvsadm's daemon up", || {
        !d.status().contains("is not running")
    });
    let listed = d.list(&["-L", "-n", "--daemon"]);
    assert!(
        listed.starts_with("backup sync daemon (mcast=lo, syncid=0, ")
            && listed.ends_with(&format!("port={other}, ttl=1)\n")),
        "{listed}"
    );
    // A second start is refused as the kernel refuses it.
    let out = d.uvsadm(&["--start-daemon", "backup", "--mcast-interface", "lo"]);
    assert!(!out.status.success());
    assert_eq!(common::text(&out.stderr), "Daemon has already run\n");
}
