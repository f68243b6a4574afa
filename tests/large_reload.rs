//! A reload of a file of many services that changes one weight: exactly one command
//! reaches the table, and every listening socket stays the one it was (no listener is
//! closed and opened again). Counted, never timed; the times at 1 000 to 100 000
//! services are benches/scale.sh's and `cargo bench --bench table`'s.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use common::{Daemon, eventually, sighup, write_file};

/// A file of TCP services on `vips`, each with one real server (nobody listens there:
/// no traffic is sent), the last one's at `last_weight`.
fn file(vips: &[SocketAddr], last_weight: u32) -> String {
    let mut text = String::from("[global]\nmetrics = \"127.0.0.1:0\"\n");
    for (i, vip) in vips.iter().enumerate() {
        let weight = if i + 1 == vips.len() { last_weight } else { 1 };
        text.push_str(&format!(
            "\n[[service]]\ntcp = \"{vip}\"\nscheduler = \"wrr\"\n[[service.server]]\naddress = \"127.0.0.3:{}\"\nweight = {weight}\n",
            20_000 + i
        ));
    }
    text
}

/// The inodes of the TCP sockets listening on `vips` (from /proc/net/tcp: the kernel's
/// own record, so a socket closed and opened again shows as a new inode).
fn listening(vips: &[SocketAddr]) -> BTreeSet<u64> {
    let wanted: BTreeSet<String> = vips
        .iter()
        .map(|v| format!("0100007F:{:04X}", v.port()))
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            (f.len() > 9 && f[3] == "0A" && wanted.contains(f[1]))
                .then(|| f[9].parse().expect("an inode"))
        })
        .collect()
}

#[test]
fn a_reload_that_changes_one_weight_makes_one_command_and_keeps_every_listener() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("uvs.toml");
    // Distinct: 64 random free ports would repeat one time in six.
    let mut vips: Vec<SocketAddr> = Vec::new();
    for _ in 0..1000 {
        let vip = common::vip();
        if vips.len() < 64 && !vips.contains(&vip) {
            vips.push(vip);
        }
    }
    assert_eq!(vips.len(), 64, "64 distinct free ports");
    let d = Daemon::start_with_file(&path, &file(&vips, 1), &[]);
    for vip in &vips {
        d.wait_listening(*vip);
    }
    let before = listening(&vips);
    assert!(before.len() >= vips.len(), "{before:?}");
    let changes_at_start = d.log().matches("table changed: ").count();
    assert_eq!(changes_at_start, 2 * vips.len(), "{}", d.log());

    write_file(&path, &file(&vips, 5));
    sighup(&d.child);
    eventually("the reload is logged", || {
        d.log().contains("SIGHUP: configuration reloaded")
    });
    let log = d.log();
    let changed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("table changed: "))
        .skip(changes_at_start)
        .collect();
    let last = vips.last().unwrap();
    assert_eq!(changed.len(), 1, "{log}");
    assert!(
        changed[0].contains(&format!("table changed: -e -t {last} -r 127.0.0.3:")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("SIGHUP: configuration reloaded") && l.contains("changes=1")),
        "{log}"
    );
    let listing = d.list(&["-L", "-n", "-t", &last.to_string()]);
    assert!(listing.contains(" 5 "), "{listing}");
    // The same sockets, every one: none closed, none opened.
    assert_eq!(listening(&vips), before);
}
