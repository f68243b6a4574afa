//! `uvs import ipvsadm` against `uvs check`: every value ipvsadm 1.31's parser takes is
//! either held by the TOML it prints or reported with its line (exit 1); what it exits 0
//! on always passes the schema `uvs check` reads with, value kind by value kind and
//! over generated dumps.

mod common;

use std::path::Path;
use std::process::Command;

use proptest::prelude::*;

use uvs::adm::names::NoNames;
use uvs::config::import::ipvsadm;
use uvs::config::render::render;

use common::{bounded, text};

/// `uvs import ipvsadm` of `dump`, then `uvs check` of what it printed: (import's exit
/// code, its stderr, check's exit code, check's stderr).
fn import_then_check(dump: &str) -> (Option<i32>, String, Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("dump");
    std::fs::write(&input, dump).unwrap();
    let mut import = Command::new(common::UVS);
    import
        .args(["import", "ipvsadm"])
        .arg(&input)
        // Nothing listens there: no name is resolved.
        .env("UVS_NAMESERVERS", "127.0.0.1:1");
    let imported = bounded(import, "uvs import ipvsadm");
    let toml = dir.path().join("uvs.toml");
    std::fs::write(&toml, &imported.stdout).unwrap();
    let mut check = Command::new(common::UVS);
    check.args(["check", "-c"]).arg(&toml);
    let checked = bounded(check, "uvs check");
    (
        imported.status.code(),
        text(&imported.stderr).replace(input.to_str().unwrap(), "dump"),
        checked.status.code(),
        text(&checked.stderr),
    )
}

/// A dump whose every value a file holds: exit 0, nothing said, and check passes.
fn held(dump: &str) {
    let (code, said, checked, problems) = import_then_check(dump);
    assert_eq!((code, said.as_str()), (Some(0), ""), "{dump}");
    assert_eq!(checked, Some(0), "{dump}\n{problems}");
}

/// A dump with values a file cannot hold: each reported on its line, exit 1, and what
/// was printed passes check.
fn reported(dump: &str, expected: &str) {
    let (code, said, checked, problems) = import_then_check(dump);
    assert_eq!(said, expected, "{dump}");
    assert_eq!(code, Some(1), "{dump}");
    assert_eq!(checked, Some(0), "{dump}\n{problems}");
}

#[test]
fn a_weight_above_what_a_file_holds_is_reported_with_its_line() {
    reported(
        "-A -t 10.0.0.1:80 -s wrr\n\
         -a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 70000\n\
         -a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -w 65535\n",
        "dump:2: `-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 70000': weight 70000: a uvs \
         configuration holds weights from 0 to 65535; not taken\n\
         uvs: dump: 1 line not taken\n",
    );
}

#[test]
fn an_edit_to_a_weight_above_what_a_file_holds_is_reported_with_its_line() {
    reported(
        "-A -t 10.0.0.1:80 -s wrr\n\
         -a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 3\n\
         -e -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 2147483647\n",
        "dump:3: `-e -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 2147483647': weight 2147483647: a \
         uvs configuration holds weights from 0 to 65535; not taken\n\
         uvs: dump: 1 line not taken\n",
    );
}

#[test]
fn a_netmask_that_is_not_a_prefix_is_reported_with_its_line() {
    // Its service left out, its server's line is reported too, naming the line.
    reported(
        "-A -t 10.0.0.1:80 -s rr -p 600 -M 255.0.255.0\n\
         -a -t 10.0.0.1:80 -r 10.0.0.2:80 -m\n\
         -A -u 10.0.0.1:53 -s rr -p 600 -M 255.255.0.0\n",
        "dump:1: `-A -t 10.0.0.1:80 -s rr -p 600 -M 255.0.255.0': netmask 255.0.255.0: a uvs \
         configuration holds contiguous netmasks only (a prefix, as 255.255.255.0); not taken\n\
         dump:2: `-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m': Service not defined (its service, \
         line 1, was not taken)\n\
         uvs: dump: 2 lines not taken\n",
    );
}

/// A report quotes the line as written, with the option that caused it, in its place.
#[test]
fn a_netmask_report_quotes_the_line_as_written() {
    reported(
        "ipvsadm -A -t 10.0.0.1:80 -M 255.0.255.0 -s rr -p 600\n",
        "dump:1: `-A -t 10.0.0.1:80 -M 255.0.255.0 -s rr -p 600': netmask 255.0.255.0: a uvs \
         configuration holds contiguous netmasks only (a prefix, as 255.255.255.0); not taken\n\
         uvs: dump: 1 line not taken\n",
    );
}

/// Without persistence a netmask means nothing (IPVS groups only a persistent service's
/// clients by it): one a file cannot hold is left out with a note, and the service and
/// its servers are taken (exit 0, check passes).
#[test]
fn a_netmask_without_persistence_is_left_out_and_the_service_taken() {
    let dump = "-A -t 10.0.0.1:80 -s rr -M 255.0.255.0\n\
                -a -t 10.0.0.1:80 -r 10.0.0.2:80 -m\n\
                -E -t 10.0.0.1:80 -s wrr -M 0.255.0.255\n";
    let (code, said, checked, problems) = import_then_check(dump);
    assert_eq!(
        said,
        "dump:1: `-A -t 10.0.0.1:80 -s rr -M 255.0.255.0': netmask 255.0.255.0 without \
         persistence (-p) is not used; left out, the service taken\n\
         dump:3: `-E -t 10.0.0.1:80 -s wrr -M 0.255.0.255': netmask 0.255.0.255 without \
         persistence (-p) is not used; left out, the service taken\n"
    );
    assert_eq!(code, Some(0));
    assert_eq!(checked, Some(0), "{problems}");
    let imported = ipvsadm::import(dump.as_bytes(), &mut NoNames);
    let toml = render(&imported.config);
    assert!(
        toml.contains("tcp = \"10.0.0.1:80\"\nscheduler = \"wrr\""),
        "{toml}"
    );
    assert!(toml.contains("address = \"10.0.0.2:80\""), "{toml}");
    assert!(!toml.contains("netmask"), "{toml}");
}

/// The ends of every other range ipvsadm takes: a file holds them all.
#[test]
fn the_ends_of_every_other_range_ipvsadm_takes_are_held() {
    // Thresholds: 0 to INT_MAX.
    held(
        "-A -t 10.0.0.1:80 -s wlc\n\
         -a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 0 -x 2147483647 -y 2147483647\n\
         -a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -x 0 -y 0\n",
    );
    // Persistence: 1 s to 31 days; netmasks /0 to /32.
    held(
        "-A -t 10.0.0.1:80 -s rr -p 1 -M 0.0.0.0\n\
         -A -t 10.0.0.1:81 -s rr -p 2678400 -M 255.255.255.255\n",
    );
    // Ports 0 and 65535, fwmarks 1 to 2^32-1 (also written negative by -S), IPv6
    // prefixes 1 to 128.
    held(
        "-A -t 10.0.0.1:0 -s rr -p\n\
         -a -t 10.0.0.1:0 -r 10.0.0.2:0 -m\n\
         -A -u 10.0.0.1:65535 -s rr\n\
         -a -u 10.0.0.1:65535 -r 10.0.0.2:65535 -m\n\
         -A -f 1 -s rr\n\
         -A -f 4294967294 -s rr\n\
         -A -f -1 -s rr\n\
         -A -f 7 -6 -s rr -p 60 -M 1\n\
         -A -f 8 -6 -s rr -p 60 -M 128\n",
    );
    // Tunnels, --set to 31 days, connect timeouts, listeners.
    held(
        "-A -t 10.0.0.1:80 -s rr --connect-timeout 1ms\n\
         -A -t 10.0.0.1:81 -s rr --connect-timeout 3600\n\
         -a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 65535 --tun-csum\n\
         -a -t 10.0.0.1:80 -r 10.0.0.3 -i --tun-type gre --tun-nocsum\n\
         --set 2678400 2678400 2678400\n\
         -A -f 4294967295 -s rr\n\
         --add-listener -t 127.0.0.1:443 --mark 4294967295\n",
    );
}

/// A word of a dump line: a value drawn from every range ipvsadm takes, the ends first.
fn number(ends: &'static [i64], range: std::ops::RangeInclusive<i64>) -> BoxedStrategy<String> {
    prop_oneof![
        prop::sample::select(ends).prop_map(|n| n.to_string()),
        range.prop_map(|n| n.to_string()),
    ]
    .boxed()
}

const INT_MAX: i64 = i32::MAX as i64;

/// A service: TCP, UDP or SCTP on an address and port, or a fwmark (IPv4 or IPv6).
fn service() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            prop::sample::select(&["-t", "-u", "--sctp-service"][..]),
            0u8..3,
            number(&[0, 1, 80, 65535], 0..=65535)
        )
            .prop_map(|(kind, host, port)| format!("{kind} 10.0.0.{host}:{port}")),
        (0u8..3, number(&[0, 80, 65535], 0..=65535))
            .prop_map(|(host, port)| format!("-t [2001:db8::{host}]:{port}")),
        number(&[1, 4294967295, -1, 2147483648], 1..=4294967295).prop_map(|m| format!("-f {m}")),
        number(&[1, 4294967295], 1..=4294967295).prop_map(|m| format!("-f {m} -6")),
    ]
}

/// The options of `-A` and `-E`, each present or not.
fn service_options() -> impl Strategy<Value = String> {
    let scheduler = prop::sample::select(
        &[
            "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
            "twos",
        ][..],
    );
    let persistent = prop::option::of(prop_oneof![
        Just(String::new()),
        number(&[1, 2678400], 1..=2678400)
    ]);
    let netmask = prop::option::of(prop_oneof![
        (0u32..=32).prop_map(|bits| std::net::Ipv4Addr::from(if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        })
        .to_string()),
        any::<u32>().prop_map(|m| std::net::Ipv4Addr::from(m).to_string()),
        (1u32..=128).prop_map(|n| n.to_string()),
    ]);
    let flags = prop::option::of(prop::sample::select(
        &[
            "sh-port",
            "sh-fallback",
            "mh-port",
            "flag-1,flag-2",
            "sh-port,sh-fallback",
        ][..],
    ));
    let connect = prop::option::of(prop_oneof![
        number(&[1, 3600], 1..=3600),
        number(&[1, 3600000], 1..=3600000).prop_map(|ms| format!("{ms}ms")),
    ]);
    (
        scheduler,
        persistent,
        netmask,
        flags,
        any::<bool>(),
        connect,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(s, p, m, b, o, c, pp, fb)| {
            let mut out = format!("-s {s}");
            if let Some(p) = p {
                out += &format!(" -p {p}");
            }
            if let Some(m) = m {
                out += &format!(" -M {m}");
            }
            if let Some(b) = b {
                out += &format!(" -b {b}");
            }
            if o {
                out += " -o";
            }
            if let Some(c) = c {
                out += &format!(" --connect-timeout {c}");
            }
            if pp {
                out += " --proxy-protocol v2";
            }
            if fb {
                out += " --freebind";
            }
            out
        })
}

/// The options of `-a` and `-e`.
fn server_options() -> impl Strategy<Value = String> {
    let weight = number(&[0, 1, 65535, 65536, 70000, INT_MAX], 0..=INT_MAX);
    let threshold = prop::option::of(number(&[0, 1, INT_MAX], 0..=INT_MAX));
    let forward = prop_oneof![
        Just("-m".to_string()),
        Just("-g".to_string()),
        Just("-i".to_string()),
        (
            prop::sample::select(&["ipip", "gue", "gre"][..]),
            number(&[1, 65535], 1..=65535),
            prop::sample::select(&["--tun-nocsum", "--tun-csum", "--tun-remcsum"][..])
        )
            .prop_map(|(t, p, c)| if t == "gue" {
                format!("-i --tun-type gue --tun-port {p} {c}")
            } else {
                format!("-i --tun-type {t} {c}")
            }),
    ];
    (weight, threshold.clone(), threshold, forward).prop_map(|(w, x, y, f)| {
        let mut out = format!("{f} -w {w}");
        if let Some(x) = x {
            out += &format!(" -x {x}");
        }
        if let Some(y) = y {
            out += &format!(" -y {y}");
        }
        out
    })
}

/// A line of a dump: a service added or edited, a server added or edited, timeouts, a
/// listener.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (service(), service_options()).prop_map(|(s, o)| format!("-A {s} {o}")),
        1 => (service(), service_options()).prop_map(|(s, o)| format!("-E {s} {o}")),
        4 => (service(), 0u8..3, number(&[0, 80, 65535], 0..=65535), server_options())
            .prop_map(|(s, host, port, o)| {
                let server = if s.contains('[') {
                    format!("[2001:db8::1{host}]:{port}")
                } else {
                    format!("10.0.1.{host}:{port}")
                };
                format!("-a {s} -r {server} {o}")
            }),
        1 => (service(), 0u8..3, server_options())
            .prop_map(|(s, host, o)| format!("-e {s} -r 10.0.1.{host} {o}")),
        1 => (number(&[0, 1, 2678400], 0..=2678400), number(&[0, 2678400], 0..=2678400), number(&[0, 2678400], 0..=2678400))
            .prop_map(|(a, b, c)| format!("--set {a} {b} {c}")),
        1 => (prop::sample::select(&["-t", "-u"][..]), number(&[1, 443, 65535], 1..=65535), number(&[1, 4294967295], 1..=4294967295))
            .prop_map(|(k, port, mark)| format!("--add-listener {k} 127.0.0.1:{port} --mark {mark}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every dump the importer takes whole (it would exit 0) renders to TOML that
    /// passes `uvs check`'s schema; and whatever it leaves out, what it renders passes
    /// too.
    #[test]
    fn every_dump_taken_whole_passes_check(lines in prop::collection::vec(line(), 1..12)) {
        let dump = lines.join("\n");
        let imported = ipvsadm::import(dump.as_bytes(), &mut NoNames);
        let toml = render(&imported.config);
        let parsed = uvs::config::schema::parse(&toml, Path::new("imported.toml"));
        prop_assert!(
            parsed.is_ok(),
            "dump:\n{}\nnot taken: {:?}\nTOML:\n{}\nproblems:\n{}",
            dump,
            imported.skipped,
            toml,
            parsed.err().map(|p| p.to_string()).unwrap_or_default()
        );
    }
}

/// A service's -A not taken, then taken, then deleted: a later rule of it fails on the
/// deletion, not on the first line (review 9a).
#[test]
fn a_rule_after_a_service_was_taken_and_deleted_does_not_blame_its_first_line() {
    reported(
        "-A -t 10.0.0.1:80 -s nope\n\
         -A -t 10.0.0.1:80 -s rr\n\
         -D -t 10.0.0.1:80\n\
         -a -t 10.0.0.1:80 -r 10.0.0.2:80 -m\n",
        "dump:1: `-A -t 10.0.0.1:80 -s nope': Scheduler or persistence engine not found\n\
         dump:4: `-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m': Service not defined\n\
         uvs: dump: 2 lines not taken\n",
    );
}

/// Outside text in a report is escaped: a terminal escape and a bidi override in the
/// quoted line are shown as `\u{1b}` and `\u{202e}`, never sent as themselves (review 7).
#[test]
fn reports_escape_control_and_bidi_characters_of_the_input() {
    reported(
        "-A -t 127.0.0.1:81 -s \x1b]0;TITLE\x07rr\n\
         -A -t 127.0.0.1:80 -s rr \u{202e} evil\n",
        "dump:1: `-A -t 127.0.0.1:81 -s \\u{1b}]0;TITLE\\u{7}rr': Scheduler or persistence \
         engine not found\n\
         dump:2: unexpected argument \\u{202e}\n\
         uvs: dump: 2 lines not taken\n",
    );
}

/// A v4-mapped VIP, which ipvsadm takes and `uvs check` refuses (uvs cannot listen on
/// it), is reported, its servers with it (review 6).
#[test]
fn a_v4_mapped_vip_is_reported_with_the_ipv4_address_to_write() {
    reported(
        "-A -t [::ffff:127.0.0.1]:9402 -s rr\n\
         -a -t [::ffff:127.0.0.1]:9402 -r [::1]:80 -m\n",
        "dump:1: `-A -t [::ffff:127.0.0.1]:9402 -s rr': an IPv4-mapped IPv6 address cannot be \
         listened on (uvs's IPv6 sockets are IPv6-only): write the IPv4 address, \
         127.0.0.1:9402; not taken\n\
         dump:2: `-a -t [::ffff:127.0.0.1]:9402 -r [::1]:80 -m': Service not defined (its \
         service, line 1, was not taken)\n\
         uvs: dump: 2 lines not taken\n",
    );
}
