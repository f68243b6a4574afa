//! keepalived's check kinds through the uvs binary, over real servers on 127.0.0.x: an
//! HTTP body whose MD5 is not the `digest` takes its server out and the right body
//! brings it back; a `file` check's number sets its server's weight and takes it down.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use common::http::{Answer, HttpServer};
use common::{Daemon, eventually, vip, write_file};

/// The MD5 of "healthy\n" and of "broken\n", as keepalived's genhash prints them.
const HEALTHY_MD5: &str = "3b1fb749c971d7a2c6a517b37f735df2";
const BROKEN_MD5: &str = "7657a3a3c58088d06aa33ab174622ef4";

/// The `->` lines of `-L -n` for service `vip`: (address, weight), sorted.
fn servers_of(d: &Daemon, vip: SocketAddr) -> Vec<(String, u32)> {
    let mut servers = d.servers(vip);
    servers.sort();
    servers
}

fn start(dir: &Path, config: &str) -> Daemon {
    Daemon::start_with_file(&dir.join("uvs.toml"), config, &[])
}

#[test]
fn a_body_whose_digest_is_wrong_takes_its_server_out_until_it_is_right_again() {
    let dir = tempfile::tempdir().unwrap();
    let (good, flaky) = (
        HttpServer::start(Answer::ok("healthy\n")),
        HttpServer::start(Answer::ok("healthy\n")),
    );
    let v = vip();
    let d = start(
        dir.path(),
        &format!(
            r#"
[[service]]
tcp = "{v}"
quiescent = false

[service.check]
type = "negotiate"
service = "http"
digest = "{HEALTHY_MD5}"
interval = "1s"
timeout = "1s"

[[service.server]]
address = "{g}"
[[service.server]]
address = "{f}"
"#,
            g = good.addr,
            f = flaky.addr
        ),
    );
    d.wait_listening(v);
    let mut both = vec![(good.addr.to_string(), 1), (flaky.addr.to_string(), 1)];
    both.sort();
    eventually("both up", || servers_of(&d, v) == both);
    flaky.set(Answer::ok("broken\n"));
    eventually("the flaky server out", || {
        servers_of(&d, v) == [(good.addr.to_string(), 1)]
    });
    let reason = format!(
        "real server is down: MD5 digest {BROKEN_MD5} of the body, not the expected {HEALTHY_MD5}"
    );
    assert!(
        d.log()
            .lines()
            .any(|l| l.contains(&reason) && l.contains(&format!("server={}", flaky.addr))),
        "{}",
        d.log()
    );
    flaky.set(Answer::ok("healthy\n"));
    eventually("back", || servers_of(&d, v) == both);
}

#[test]
fn a_file_checks_number_sets_its_servers_weight_and_can_take_it_down() {
    let dir = tempfile::tempdir().unwrap();
    let server = HttpServer::start(Answer::ok("healthy\n"));
    let weight = dir.path().join("weight");
    write_file(&weight, "5\n");
    let v = vip();
    let d = start(
        dir.path(),
        &format!(
            r#"
[[service]]
tcp = "{v}"
quiescent = false

[service.check]
type = "file"
path = "{path}"
weight = 2
interval = "1s"
timeout = "1s"
failures = 1

[[service.server]]
address = "{s}"
weight = 3
"#,
            path = weight.display(),
            s = server.addr
        ),
    );
    d.wait_listening(v);
    // keepalived's track_file: 3 + 5 * 2.
    eventually("weight 13", || {
        servers_of(&d, v) == [(server.addr.to_string(), 13)]
    });
    write_file(&weight, "-1\n");
    eventually("weight 1", || {
        servers_of(&d, v) == [(server.addr.to_string(), 1)]
    });
    write_file(&weight, "-2147483648\n");
    eventually("down", || servers_of(&d, v).is_empty());
    write_file(&weight, "0\n");
    eventually("back with its own weight", || {
        servers_of(&d, v) == [(server.addr.to_string(), 3)]
    });
}
