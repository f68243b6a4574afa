//! keepalived's server and service states in the running daemon, from a keepalived.conf
//! imported by `uvs import keepalived` and run by `uvs run`, with real servers on
//! 127.0.0.x going down and up: `alpha` (a server whose first check has not come is
//! out of the table, and `uvs status` says why), `quorum` (the sorry server in and out,
//! the live servers taken out while it stands in, `quorum_up`/`quorum_down` run once
//! each way), `notify_up`/`notify_down` once per change, a real server's own
//! `inhibit_on_failure`, and `omega` (`quorum_down` again when the daemon stops).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Backend, Behaviour, Daemon, UVS, bounded_with_input, eventually, free_port, text};

/// A backend on `addr` again, once the last one there has let go of it (bounded).
fn listen_again(addr: SocketAddr, name: &'static str) -> Backend {
    for _ in 0..500 {
        if std::net::TcpListener::bind(addr).is_ok() {
            return Backend::start_on(&addr.to_string(), name, Behaviour::Name);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{addr} stayed taken");
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A command that appends `word` to `file`, as keepalived.conf quotes one.
fn append(word: &str, file: &Path) -> String {
    format!("\"/bin/sh -c 'echo {word} >> {}'\"", file.display())
}

#[test]
fn alpha_quorum_notify_and_omega_from_an_imported_keepalived_conf() {
    let dir = tempfile::tempdir().unwrap();
    let (quorum_log, notify_log) = (dir.path().join("quorum"), dir.path().join("notify"));
    // alpha: every server starts down. A stays down (nothing listens), B comes up;
    // C's first check waits up to a day.
    let a: SocketAddr = format!("127.0.0.2:{}", free_port()).parse().unwrap();
    let b = Backend::start_on("127.0.0.3:0", "B", Behaviour::Name);
    let c = Backend::start_on("127.0.0.4:0", "C", Behaviour::Name);
    let sorry = Backend::start_on("127.0.0.5:0", "SORRY", Behaviour::Name);
    let v = common::vip();
    let conf = format!(
        r#"virtual_server {vip} {vport} {{
    protocol TCP
    lb_algo rr
    delay_loop 1
    alpha
    omega
    quorum 2
    hysteresis 0
    quorum_up {qup}
    quorum_down {qdown}
    sorry_server {sip} {sport}
    real_server {aip} {aport} {{
        notify_up {aup}
        notify_down {adown}
        TCP_CHECK {{ connect_timeout 1 }}
    }}
    real_server {bip} {bport} {{
        inhibit_on_failure
        TCP_CHECK {{ connect_timeout 1 }}
    }}
    real_server {cip} {cport} {{
        TCP_CHECK {{
            connect_timeout 1
            warmup 86400
        }}
    }}
}}
"#,
        vip = v.ip(),
        vport = v.port(),
        qup = append("up", &quorum_log),
        qdown = append("down", &quorum_log),
        sip = sorry.addr.ip(),
        sport = sorry.addr.port(),
        aip = a.ip(),
        aport = a.port(),
        aup = append("a-up", &notify_log),
        adown = append("a-down", &notify_log),
        bip = b.addr.ip(),
        bport = b.addr.port(),
        cip = c.addr.ip(),
        cport = c.addr.port(),
    );
    let mut import = Command::new(UVS);
    import
        .args(["import", "keepalived", "-"])
        .current_dir(dir.path());
    let out = bounded_with_input(import, conf.as_bytes(), "uvs import keepalived");
    assert!(
        out.status.success(),
        "every keyword taken: {}",
        text(&out.stderr)
    );
    let toml = text(&out.stdout);
    for line in [
        "alpha = true",
        "omega = true",
        "quorum = 2",
        "hysteresis = 0",
        "warmup = \"1d\"",
        "quiescent = true",
    ] {
        assert!(toml.lines().any(|l| l == line), "{line} in:\n{toml}");
    }
    let d = Daemon::start_with_file(&dir.path().join("uvs.toml"), &toml, &[]);
    d.wait_listening(v);
    // Started in quorum and lost it at once (live weight 1 of 2): quorum_down once, the
    // sorry server in, B (its own inhibit_on_failure) at weight 0, A and C (alpha,
    // no good check yet; removed when down) out.
    eventually("the sorry server stands in", || {
        d.servers(v) == [(b.addr.to_string(), 0), (sorry.addr.to_string(), 1)]
    });
    eventually("A's first check failed: notify_down (alpha)", || {
        lines(&notify_log) == ["a-down"]
    });
    assert_eq!(lines(&quorum_log), ["down"]);
    // B's first check may come after A's: then the live weight is 1.
    eventually("uvs status gives the quorum", || {
        d.status()
            .contains("  quorum lost: live weight 1 (quorum 2, hysteresis 0)")
    });
    // And /metrics: the quorum lost, with its live weight; C pending (alpha).
    let service = format!(
        "{{proto=\"TCP\",local_address=\"{}\",local_port=\"{}\",local_mark=\"\"}}",
        v.ip(),
        v.port()
    );
    let c_pending = format!(
        "uvs_backend_check_pending{}{}remote_address=\"{}\",remote_port=\"{}\"}} 1",
        &service[..service.len() - 1],
        ",",
        c.addr.ip(),
        c.addr.port()
    );
    eventually("/metrics gives the quorum and the pending server", || {
        let (_, body) = common::http_get(d.metrics_address(), "GET", "/metrics");
        let has = |l: &str| body.lines().any(|b| b == l);
        has(&format!("uvs_service_quorum_up{service} 0"))
            && has(&format!("uvs_service_quorum_live_weight{service} 1"))
            && has(&c_pending)
    });
    let status = d.status();
    assert!(
        status.contains(", down until its first good check (alpha)"),
        "C waits: {status}"
    );
    assert!(
        status.contains(", its own quiescent: weight 0 when down"),
        "{status}"
    );
    // A comes up: notify_up, quorum regained, the sorry server leaves.
    let a_up = listen_again(a, "A");
    eventually("A and B serve, without the sorry server", || {
        d.servers(v) == [(a.to_string(), 1), (b.addr.to_string(), 1)]
    });
    eventually("notify_up and quorum_up ran", || {
        lines(&notify_log) == ["a-down", "a-up"] && lines(&quorum_log) == ["down", "up"]
    });
    // A goes down again: notify_down, quorum lost, the sorry server back.
    drop(a_up);
    eventually("the sorry server is back", || {
        d.servers(v) == [(b.addr.to_string(), 0), (sorry.addr.to_string(), 1)]
    });
    eventually("notify_down and quorum_down ran once more", || {
        lines(&notify_log) == ["a-down", "a-up", "a-down"]
            && lines(&quorum_log) == ["down", "up", "down"]
    });
    // omega: stopping runs quorum_down once more (A is down: no notify_down).
    common::sigterm(&d.child);
    eventually("quorum_down ran at the stop", || {
        lines(&quorum_log) == ["down", "up", "down", "down"]
    });
    assert_eq!(lines(&notify_log), ["a-down", "a-up", "a-down"]);
}

/// keepalived's `ha_suspend`: the checks of a service whose address is not an address
/// of this host (127.0.0.77: in 127.0.0.0/8, but no interface has it) run no probe, so
/// its closed real server stays as it started, while the same server of a service at
/// 127.0.0.1 is found down; `uvs status` says which checks are suspended and why.
#[test]
fn ha_suspend_keeps_the_checks_of_a_vip_this_host_does_not_have_from_running() {
    let dir = tempfile::tempdir().unwrap();
    let closed: SocketAddr = format!("127.0.0.3:{}", free_port()).parse().unwrap();
    let away: SocketAddr = format!("127.0.0.77:{}", free_port()).parse().unwrap();
    let here = common::vip();
    let service = |vip: SocketAddr| {
        format!(
            r#"[[service]]
tcp = "{vip}"
quiescent = true
ha_suspend = true
[service.check]
type = "connect"
interval = "1s"
timeout = "1s"
[[service.server]]
address = "{closed}"
"#
        )
    };
    let toml = format!("{}\n{}", service(away), service(here));
    let d = Daemon::start_with_file(&dir.path().join("uvs.toml"), &toml, &[]);
    d.wait_listening(here);
    eventually("the checked server of the local VIP is down", || {
        d.servers(here) == [(closed.to_string(), 0)]
    });
    eventually("uvs status says the other's checks are suspended", || {
        d.status().contains(&format!(
            ", checks suspended: {} is not an address of this host (ha_suspend)",
            away.ip()
        ))
    });
    // Its checks had as long to run: it is still as it started.
    assert_eq!(d.servers(away), [(closed.to_string(), 1)]);
    let status = d.status();
    assert_eq!(status.matches("checks suspended").count(), 1, "{status}");
    // /metrics says the same (metrics scrapes may be a moment old: eventually).
    let suspended = |vip: SocketAddr, value: u8| {
        format!(
            "uvs_backend_check_suspended{{proto=\"TCP\",local_address=\"{}\",local_port=\"{}\",local_mark=\"\",remote_address=\"{}\",remote_port=\"{}\"}} {value}",
            vip.ip(),
            vip.port(),
            closed.ip(),
            closed.port()
        )
    };
    eventually("/metrics has the suspended checks", || {
        let (_, body) = common::http_get(d.metrics_address(), "GET", "/metrics");
        body.lines().any(|l| l == suspended(away, 1))
            && body.lines().any(|l| l == suspended(here, 0))
    });
}
