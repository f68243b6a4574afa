//! IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`), which uvs's IPv6-only sockets can
//! never bind (review 6): uvs's own listen rules (`--add-listener`, a file's `listen`)
//! and a file's VIPs refuse them with the IPv4 address to write; `uvsadm -A`, which is
//! ipvsadm's command, takes one as ipvsadm does, and the daemon says once why it cannot
//! listen there. Nothing is ever bound at such an address.

mod common;

use std::process::Command;

use common::{Daemon, bounded, eventually, free_port, text};

#[test]
fn uvs_check_refuses_v4_mapped_listen_rules_and_vips_naming_the_ipv4_address() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uvs.toml");
    std::fs::write(
        &path,
        "[[service]]\nfwmark = 5\nipv6 = true\n\
         listen = [\"tcp [::ffff:127.0.0.1]:9400\", \"tcp [::ffff:0.0.0.0]:9401\"]\n\
         [[service]]\ntcp = \"[::ffff:127.0.0.1]:9402\"\n\
         [[service]]\ngroup = \"g\"\ntcp = [\"[::ffff:127.0.0.2]:9403\"]\n",
    )
    .unwrap();
    let mut check = Command::new(common::UVS);
    check.args(["check", "-c"]).arg(&path);
    let out = bounded(check, "uvs check");
    let said = text(&out.stderr).replace(path.to_str().unwrap(), "uvs.toml");
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert_eq!(
        said,
        "uvs.toml:1:1: service[0].listen: -t [::ffff:127.0.0.1]:9400: -t \
         [::ffff:127.0.0.1]:9400: an IPv4-mapped IPv6 address cannot be listened on (uvs's \
         IPv6 sockets are IPv6-only): write the IPv4 address, 127.0.0.1\n\
         uvs.toml:1:1: service[0].listen: -t [::ffff:0.0.0.0]:9401: -t [::ffff:0.0.0.0]:9401: \
         a listener needs one address, not every address of the host (it would hold port \
         9401 on the VIPs added later too): add a listener for each address\n\
         uvs.toml:6:7: service[1].tcp: an IPv4-mapped IPv6 address cannot be listened on \
         (uvs's IPv6 sockets are IPv6-only): write the IPv4 address, as \"127.0.0.1:9402\"\n\
         uvs.toml:9:8: service[2].tcp[0]: an IPv4-mapped IPv6 address cannot be listened on \
         (uvs's IPv6 sockets are IPv6-only): write the IPv4 address, as \"127.0.0.2:9403\"\n\
         uvs: uvs.toml: 4 problems\n"
    );
}

#[test]
fn add_listener_refuses_v4_mapped_addresses_and_a_mapped_wildcard() {
    let d = Daemon::start();
    d.ok(&["-A", "-f", "5", "-6", "-s", "rr"]);
    for (address, expected) in [
        (
            "[::ffff:0.0.0.0]:7001",
            "-t [::ffff:0.0.0.0]:7001: a listener needs one address, not every address of the \
             host",
        ),
        (
            "[::ffff:127.0.0.1]:7001",
            "-t [::ffff:127.0.0.1]:7001: an IPv4-mapped IPv6 address cannot be listened on \
             (uvs's IPv6 sockets are IPv6-only): write the IPv4 address, 127.0.0.1",
        ),
    ] {
        let out = d.uvsadm(&["--add-listener", "-t", address, "--mark", "5"]);
        let said = text(&out.stderr);
        assert!(!out.status.success(), "{address} taken");
        assert!(said.contains(expected), "{said}");
    }
    assert!(!d.save().contains("ffff"), "{}", d.save());
}

#[test]
fn a_v4_mapped_service_is_taken_as_ipvsadm_does_and_the_daemon_says_why_it_cannot_listen() {
    let d = Daemon::start_logged(&[]);
    let vip = format!("[::ffff:127.0.0.1]:{}", free_port());
    d.ok(&["-A", "-t", &vip, "-s", "rr"]);
    assert!(
        d.save().contains(&format!("-A -t {vip} -s rr")),
        "{}",
        d.save()
    );
    let why = "an IPv4-mapped IPv6 address cannot be listened on in userspace mode (uvs's IPv6 \
               sockets are IPv6-only); use the IPv4 address, 127.0.0.1";
    eventually("the reason is logged", || d.log().contains(why));
    // In `uvs status` too, where the operator looks.
    eventually("the reason is in uvs status", || d.status().contains(why));
    let log = d.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(why)).collect();
    assert_eq!(lines.len(), 1, "once: {lines:#?}");
    assert!(
        lines[0].contains(" WARN ") && lines[0].contains("Invalid argument (os error 22): "),
        "{}",
        lines[0]
    );
}
