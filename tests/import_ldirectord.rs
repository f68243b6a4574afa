//! `uvs import ldirectord` on the field files (tests/fixtures/field, from
//! shared/cases/field: what ldirectord 4.12 does with each is in its README): the exact
//! TOML and stderr, and the TOML passing `uvs check`'s schema; and, over fuzzed input,
//! the importer never panics and what it renders always passes the schema. Names are
//! resolved from the fixture hosts and services files only (no nameserver answers).

mod common;

use std::path::Path;
use std::process::Command;

use proptest::prelude::*;

use uvs::adm::names::NoNames;
use uvs::config::import::ldirectord;
use uvs::config::render::render;

use common::{bounded, bounded_with_input, fixture, text};

/// `uvs import ldirectord`, for its file argument to follow, with names from the
/// fixtures only.
fn import_command() -> Command {
    let mut cmd = Command::new(common::UVS);
    cmd.args(["import", "ldirectord"])
        .env("UVS_HOSTS", fixture("fixtures/etc/hosts"))
        .env("UVS_SERVICES", fixture("fixtures/etc/services"))
        // Nothing listens there: a name not in the hosts file is not resolved.
        .env("UVS_NAMESERVERS", "127.0.0.1:1");
    cmd
}

/// `uvs import ldirectord FILE`; (exit code, stdout, stderr).
fn import(file: &Path) -> (Option<i32>, String, String) {
    let mut cmd = import_command();
    cmd.arg(file);
    let out = bounded(cmd, "uvs import ldirectord");
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// The TOML passes the schema `uvs check` reads it with.
fn passes_check(toml: &str) {
    if let Err(problems) = uvs::config::schema::parse(toml, Path::new("imported.toml")) {
        panic!("{problems:?}\n{toml}");
    }
}

fn field(name: &str, toml: &str) {
    let (code, out, err) = import(&fixture(&format!("fixtures/field/{name}")));
    assert_eq!(err, "", "{name}");
    assert_eq!(code, Some(0), "{name}");
    assert_eq!(out, toml, "{name}");
    passes_check(&out);
}

#[test]
fn comments_after_values_are_dropped_as_ldirectord_drops_them() {
    field(
        "ldirectord-trailing-comments.cf",
        r#"[global]
cleanstop = true
quiescent = true

[global.check]
interval = "1s"
failures = 1

[[service]]
tcp = "192.0.2.10:80"
scheduler = "rr"
fallback = { address = "198.51.100.99:80", forward = "gate" }

[service.check]
type = "negotiate"
service = "http"
timeout = "3s"
request = "index.html"
receive = "OK"

[[service.server]]
address = "198.51.100.11:80"
forward = "gate"

[[service.server]]
address = "198.51.100.12:80"
forward = "gate"

[[service.server]]
address = "198.51.100.13:80"
forward = "gate"
"#,
    );
}

#[test]
fn the_first_number_after_the_forwarding_method_is_the_weight() {
    field(
        "ldirectord-real-weight-dash-w.cf",
        r#"[global]
cleanstop = true
quiescent = false

[global.check]
interval = "5s"
failures = 1

[[service]]
tcp = "192.0.2.20:80"
scheduler = "wlc"

[service.check]
type = "on"
timeout = "5s"

[[service.server]]
address = "198.51.100.21:80"
weight = 5
forward = "gate"

[[service.server]]
address = "198.51.100.22:80"
forward = "gate"
"#,
    );
}

#[test]
fn a_comment_that_is_not_utf8_is_still_a_comment() {
    let path = fixture("fixtures/field/ldirectord-non-utf8-comment.cf");
    assert!(
        std::str::from_utf8(&std::fs::read(&path).unwrap()).is_err(),
        "the fixture holds GBK"
    );
    field(
        "ldirectord-non-utf8-comment.cf",
        r#"[global]
cleanstop = true
quiescent = false

[global.check]
interval = "5s"
failures = 1

[[service]]
tcp = "192.0.2.30:80"
scheduler = "rr"

[service.check]
type = "on"
timeout = "5s"

[[service.server]]
address = "198.51.100.31:80"
weight = 2
forward = "gate"
"#,
    );
}

#[test]
fn port_53_without_a_protocol_is_udp() {
    field(
        "ldirectord-port53.cf",
        r#"[global]
cleanstop = true
quiescent = false

[global.check]
interval = "10s"
failures = 1

[[service]]
udp = "192.0.2.40:53"
scheduler = "rr"

[service.check]
type = "on"
timeout = "5s"

[[service.server]]
address = "198.51.100.41:53"

[[service.server]]
address = "198.51.100.42:53"
"#,
    );
}

#[test]
fn names_are_resolved_from_the_hosts_and_services_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ld.cf");
    std::fs::write(
        &path,
        "virtual=localhost:domain\n\treal=localhost:domain masq\n\tchecktype=on\n\
         virtual=127.0.0.1:http\n\treal=nowhere.invalid:80 gate\n\treal=127.0.0.2:www gate\n\tchecktype=connect\n",
    )
    .unwrap();
    let (code, out, err) = import(&path);
    let p = path.display();
    assert_eq!(
        err,
        format!(
            "{p}:5: invalid address (nowhere.invalid: could not resolve host) for real server\n\
             uvs: {p}: 1 line not taken\n"
        )
    );
    assert_eq!(code, Some(1));
    assert!(out.contains("udp = \"127.0.0.1:53\""), "{out}");
    assert!(out.contains("tcp = \"127.0.0.1:80\""), "{out}");
    assert!(out.contains("address = \"127.0.0.2:80\""), "{out}");
    passes_check(&out);
}

/// Lines an ldirectord.cf is made of, right and wrong, for the fuzzer to put together.
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    let words = prop::sample::select(vec![
        "virtual=192.0.2.1:80",
        "virtual=192.0.2.1:53",
        "virtual=192.0.2.1:domain",
        "virtual6=[2001:db8::1]:80",
        "virtual=7",
        "virtual=0",
        "virtual=4294967296",
        "virtual=web:http",
        "\tnetmask=255.0.255.0",
        "\tnetmask=0.0.0.0",
        "\tnetmask=129",
        "\treal=198.51.100.1:0 gate",
        "\treal=198.51.100.4:80 gate 1 \"/\", \"[\"",
        "\treal=198.51.100.1->198.51.101.1:80 gate",
        "\tchecktype=external",
        "\tcheckport=65535",
        "virtual=",
        "\treal=198.51.100.1:80 gate",
        "\treal=198.51.100.1->198.51.100.9:80 masq 3",
        "\treal=198.51.100.2 ipip -w 70000",
        "\treal=198.51.100.3:80 gate 2 \"/a\", \"b\" l:3 u:9",
        "\treal6=[2001:db8::2]:80 gate",
        "\tprotocol=tcp",
        "\tprotocol=udp",
        "\tprotocol=fwm",
        "\tops=yes",
        "\tscheduler=sh",
        "\tscheduler=zz",
        "\tpersistent=600",
        "\tpersistent=99999999999",
        "\tnetmask=255.255.255.0",
        "\tnetmask=64",
        "\tconnecttimeout=99999",
        "\tchecktimeout=99999",
        "\tnegotiatetimeout=4",
        "\tcheckinterval=0",
        "\tfailurecount=5000",
        "\tchecktype=negotiate",
        "\tchecktype=3",
        "\tservice=mysql",
        "\tservice=dns",
        "\trequest=\"x#y\"",
        "\treceive=\"(\"",
        "\tfallback=127.0.0.1:80 masq",
        "\tquiescent=yes",
        "\thttpmethod=head",
        "\tvirtualhost=\"a\"",
        "checkinterval=99999999999999999999",
        "checktimeout=3 ## c",
        "quiescent=yes",
        "fork=yes",
        "fallback=127.0.0.1 gate",
        "fallback6=[::1]:80",
        "autoreload=yes # c",
        "# comment",
        "",
        "  ",
    ])
    .prop_map(|s| s.as_bytes().to_vec());
    prop_oneof![
        8 => words,
        1 => prop::collection::vec(any::<u8>(), 0..40),
        1 => "[ \ta-z0-9=.:#\">-]{0,40}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_importer_never_panics_and_renders_what_passes_check(
        lines in prop::collection::vec(fragment(), 0..40)
    ) {
        let input = lines.join(&b'\n');
        let imported = ldirectord::import(&input, &mut NoNames);
        let toml = render(&imported.config);
        prop_assert!(
            uvs::config::schema::parse(&toml, Path::new("imported.toml")).is_ok(),
            "{}\n{:?}",
            toml,
            uvs::config::schema::parse(&toml, Path::new("imported.toml")).err()
        );
    }
}

#[test]
fn standard_input_is_read_as_bytes_too() {
    let gbk = std::fs::read(fixture("fixtures/field/ldirectord-non-utf8-comment.cf")).unwrap();
    let mut cmd = import_command();
    cmd.arg("-");
    let out = bounded_with_input(cmd, &gbk, "uvs import ldirectord -");
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("tcp = \"192.0.2.30:80\""));
}
