//! `uvs import keepalived`: the field case of ../shared/cases/field as a test (exact TOML
//! and stderr, and the TOML passes `uvs check`), standard input, a file that does not
//! parse, a setting not taken; virtual_server_group as uvs groups; a real server with
//! several checkers; and a property: the importer never panics on fuzzed
//! input, and what it renders passes the schema.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::prelude::*;

use common::{UVS, bounded_with_input, text};

fn fixture(name: &str) -> PathBuf {
    common::fixture(&format!("fixtures/field/{name}"))
}

/// `uvs ARGS` in `dir` with `input` on stdin, killed if it runs past 20 s.
fn uvs(args: &[&str], dir: &Path, input: &str) -> std::process::Output {
    let mut cmd = Command::new(UVS);
    cmd.args(args).current_dir(dir);
    bounded_with_input(cmd, input.as_bytes(), &format!("uvs {args:?}"))
}

const VIRTUAL_SERVER_TOML: &str = r#"[[service]]
tcp = "192.0.2.60:80"
scheduler = "wlc"
persistent = "10m"
quiescent = false

[service.check]
type = "connect"
interval = "6s"
timeout = "3s"
failures = 2
warmup = "6s"
retry_delay = "1s"
failures_at_start = 1

[[service.server]]
address = "198.51.100.61:80"
weight = 100

[[service.server]]
address = "198.51.100.62:80"
weight = 100
"#;

#[test]
fn keepalived_virtual_server_imports_as_keepalived_runs_it_and_checks() {
    // TCP 192.0.2.60:80 wlc persistent 600, two NAT (masq) servers of weight 100, each
    // with a TCP connect check of 3 s every 6 s (keepalived's TCP_CHECK retries once:
    // down after two failures; a failed server is removed, not inhibited). The VRRP
    // instance and global_defs are reported, and do not make the import fail.
    let dir = fixture("");
    let out = uvs(
        &["import", "keepalived", "keepalived-virtual-server.conf"],
        &dir,
        "",
    );
    assert_eq!(text(&out.stdout), VIRTUAL_SERVER_TOML);
    assert_eq!(
        text(&out.stderr),
        "keepalived-virtual-server.conf:2: global_defs: keepalived's own settings; not uvs's job, not taken\n\
         keepalived-virtual-server.conf:5: vrrp_instance VI_1: VRRP is keepalived's own job (it moves the VIP); not uvs's, not taken\n"
    );
    assert_eq!(out.status.code(), Some(0));

    let tmp = tempfile::tempdir().unwrap();
    let toml = tmp.path().join("uvs.toml");
    std::fs::write(&toml, &out.stdout).unwrap();
    let out = uvs(&["check", "-c", "uvs.toml"], tmp.path(), "");
    assert_eq!(
        text(&out.stdout),
        "uvs.toml: OK, 1 service, 2 real servers\n"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn standard_input_is_read_and_a_setting_not_taken_fails_the_import() {
    let conf = std::fs::read_to_string(fixture("keepalived-virtual-server.conf")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = uvs(&["import", "keepalived", "-"], dir.path(), &conf);
    assert_eq!(text(&out.stdout), VIRTUAL_SERVER_TOML);
    assert_eq!(out.status.code(), Some(0));

    let conf = "virtual_server 192.0.2.1 80 {\n  real_server 198.51.100.1 80 {\n    notify_up /bin/up\n    PING_CHECK\n  }\n}\nvrrp_sync_group G { }\n";
    let out = uvs(&["import", "keepalived", "-"], dir.path(), conf);
    assert_eq!(
        text(&out.stderr),
        "-:1: virtual_server 192.0.2.1 80: no protocol; keepalived makes it UDP, and so does uvs\n\
         -:4: PING_CHECK: uvs's checks speak TCP and UDP and send no ICMP echo; not taken\n\
         -:7: vrrp_sync_group G: VRRP is keepalived's own job (it moves the VIP); not uvs's, not taken\n\
         uvs: -: 1 line not taken\n"
    );
    assert_eq!(out.status.code(), Some(1));
}

/// A keepalived.conf with `virtual_server_group`s: one read after the virtual server
/// that uses it, members, ranges (`IP-N` of the last octet or hextet, `IP-IP`,
/// `IP/MASK`), fwmarks; entries keepalived skips, an empty group, an unknown group, and
/// what a uvs group cannot hold (two families).
const GROUP_CONF: &str = r#"! a group of web VIPs, read before its group is defined
virtual_server group web {
    protocol TCP
    lb_algo rr
    lb_kind DR
    delay_loop 5
    real_server 198.51.100.1 80 {
        weight 2
        TCP_CHECK {
            connect_timeout 2
        }
    }
    real_server 198.51.100.2 8080 {
        TCP_CHECK {
            connect_timeout 2
        }
    }
}
virtual_server_group web {
    192.0.2.1 80
    192.0.2.10-12 80
    192.0.2.20-192.0.2.21 443
    192.0.2.32/31 80
    fwmark 7
    fwmark 8 inet6
    192.0.2.40-300 80
    192.0.2.50 http
}
virtual_server_group dns6 {
    2001:db8::a-c 53
}
virtual_server group dns6 {
    protocol UDP
    real_server 2001:db8::53 53 {
        MISC_CHECK {
            misc_path /bin/true
        }
    }
}
virtual_server_group empty {
}
virtual_server group empty {
    protocol TCP
    real_server 198.51.100.9 80
}
virtual_server group nowhere {
    protocol TCP
    real_server 198.51.100.9 80
}
virtual_server_group mixed {
    192.0.2.60 80
    2001:db8::60 80
}
virtual_server group mixed {
    protocol TCP
    real_server 198.51.100.9 80
}
"#;

const GROUP_TOML: &str = r#"[[service]]
group = "web"
tcp = ["192.0.2.1:80", "192.0.2.10-192.0.2.12:80", "192.0.2.20-192.0.2.21:443", "192.0.2.32-192.0.2.33:80"]
fwmark = [7]
scheduler = "rr"
quiescent = false

[[service.server]]
address = "198.51.100.1:80"
weight = 2
forward = "gate"

[service.server.check]
type = "connect"
interval = "5s"
timeout = "2s"
failures = 2
warmup = "5s"
retry_delay = "1s"
failures_at_start = 1

[[service.server]]
address = "198.51.100.2:80"
forward = "gate"

[service.server.check]
type = "connect"
port = 8080
interval = "5s"
timeout = "2s"
failures = 2
warmup = "5s"
retry_delay = "1s"
failures_at_start = 1

[[service]]
group = "dns6"
udp = ["[2001:db8::a-2001:db8::c]:53"]
scheduler = "wlc"
quiescent = false

[service.check]
type = "external"
interval = "1m"
timeout = "1m"
failures = 1
command = ["/bin/true"]
target_arguments = false
warmup = "1m"
retry_delay = "1s"

[[service.server]]
address = "2001:db8::53"
"#;

#[test]
fn virtual_server_groups_import_as_groups_with_keepalived_members_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let out = uvs(&["import", "keepalived", "-"], dir.path(), GROUP_CONF);
    assert_eq!(text(&out.stdout), GROUP_TOML);
    assert_eq!(
        text(&out.stderr),
        "-:25: virtual_server_group web: fwmark 8: of another family than the group's other members; a uvs group is of one family; not taken\n\
         -:26: virtual_server_group web: 192.0.2.40-300 80: not a range end (too large, or not a number); keepalived skips the entry, and so does uvs\n\
         -:27: virtual_server_group web: 192.0.2.50 http: not a port; keepalived skips the entry, and so does uvs\n\
         -:40: virtual_server_group empty: no entries; keepalived removes it, and so does uvs\n\
         -:42: virtual_server group empty: no virtual_server_group empty; keepalived ignores the virtual server, and so does uvs\n\
         -:46: virtual_server group nowhere: no virtual_server_group nowhere; keepalived ignores the virtual server, and so does uvs\n\
         -:54: virtual_server group mixed: IPv4 and IPv6 members; a uvs group is of one family, as its real servers are; not taken\n\
         uvs: -: 2 lines not taken\n"
    );
    assert_eq!(out.status.code(), Some(1));

    std::fs::write(dir.path().join("uvs.toml"), &out.stdout).unwrap();
    let out = uvs(&["check", "-c", "uvs.toml"], dir.path(), "");
    // web: 9 members (1 + 3 + 2 + 2 addresses, fwmark 7) of 2 servers; dns6: 3 of 1.
    assert_eq!(
        text(&out.stdout),
        "uvs.toml: OK, 12 services, 21 real servers\n"
    );
    assert_eq!(out.status.code(), Some(0));
}

/// A real server with three checkers (keepalived.conf(5): "Can be multiple of each
/// type"): keepalived runs every one and keeps the server only while none has failed;
/// uvs takes every one, in order, as the server's checks (an array of tables), and a
/// server with one checker keeps the single table.
const SEVERAL_CHECKS_CONF: &str = r#"track_file maint {
    file /run/lb/web.state
    weight 0
}
virtual_server 192.0.2.70 80 {
    protocol TCP
    lb_algo wrr
    lb_kind NAT
    delay_loop 10
    real_server 198.51.100.71 80 {
        weight 5
        TCP_CHECK {
            connect_timeout 3
        }
        MISC_CHECK {
            misc_path "/usr/local/bin/app-check --deep"
            misc_timeout 8
            misc_dynamic
        }
        FILE_CHECK {
            track_file maint
        }
    }
    real_server 198.51.100.72 80 {
        weight 5
        TCP_CHECK {
            connect_timeout 3
        }
    }
}
"#;

const SEVERAL_CHECKS_TOML: &str = r#"[[service]]
tcp = "192.0.2.70:80"
scheduler = "wrr"
quiescent = false

[[service.server]]
address = "198.51.100.71:80"
weight = 5

[[service.server.check]]
type = "connect"
interval = "10s"
timeout = "3s"
failures = 2
warmup = "10s"
retry_delay = "1s"
failures_at_start = 1

[[service.server.check]]
type = "external"
interval = "10s"
timeout = "8s"
failures = 1
command = ["/usr/local/bin/app-check", "--deep"]
target_arguments = false
dynamic_weight = true
warmup = "10s"
retry_delay = "1s"

[[service.server.check]]
type = "file"
interval = "1s"
timeout = "1s"
failures = 1
rise = 1
path = "/run/lb/web.state"
weight = 0

[[service.server]]
address = "198.51.100.72:80"
weight = 5

[service.server.check]
type = "connect"
interval = "10s"
timeout = "3s"
failures = 2
warmup = "10s"
retry_delay = "1s"
failures_at_start = 1
"#;

#[test]
fn a_real_server_with_tcp_misc_and_file_checks_imports_with_all_three() {
    let dir = tempfile::tempdir().unwrap();
    let out = uvs(
        &["import", "keepalived", "-"],
        dir.path(),
        SEVERAL_CHECKS_CONF,
    );
    assert_eq!(text(&out.stdout), SEVERAL_CHECKS_TOML);
    assert_eq!(
        text(&out.stderr),
        "-:1: track_file maint: read by the FILE_CHECKs that name it; tracking by VRRP is keepalived's own job\n"
    );
    assert_eq!(out.status.code(), Some(0));
    std::fs::write(dir.path().join("uvs.toml"), &out.stdout).unwrap();
    let out = uvs(&["check", "-c", "uvs.toml"], dir.path(), "");
    assert_eq!(
        text(&out.stdout),
        "uvs.toml: OK, 1 service, 2 real servers\n"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_file_whose_braces_do_not_balance_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lvs.conf"),
        "virtual_server 192.0.2.1 80 {\n  real_server 198.51.100.1 80 {\n  }\n}\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("keepalived.conf"),
        "! the LVS half\ninclude l*.conf\n",
    )
    .unwrap();
    let out = uvs(&["import", "keepalived", "keepalived.conf"], dir.path(), "");
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        "uvs: keepalived.conf:2: lvs.conf:5: `}' closes no block\n"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn bytes_that_are_not_utf8_in_a_comment_are_read_as_keepalived_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut conf = b"! r\xe9partiteur (Latin-1)\n".to_vec();
    conf.extend_from_slice(
        b"virtual_server 192.0.2.1 80 { # \xc4\xe3\xba\xc3 (GBK)\n  protocol TCP\n  real_server 198.51.100.1 80\n}\n",
    );
    std::fs::write(dir.path().join("keepalived.conf"), conf).unwrap();
    let out = uvs(&["import", "keepalived", "keepalived.conf"], dir.path(), "");
    assert_eq!(
        text(&out.stdout),
        "[[service]]\ntcp = \"192.0.2.1:80\"\nscheduler = \"wlc\"\n\n[[service.server]]\naddress = \"198.51.100.1:80\"\n"
    );
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
}

/// Words keepalived.conf is made of, and some that it is not.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "virtual_server",
            "real_server",
            "virtual_server_group",
            "group",
            "fwmark",
            "lb_algo",
            "lvs_sched",
            "lb_kind",
            "lvs_method",
            "NAT",
            "DR",
            "TUN",
            "wlc",
            "sh",
            "mh",
            "rr",
            "sh-port",
            "sh-fallback",
            "mh-port",
            "flag-1",
            "ops",
            "hashed",
            "persistence_timeout",
            "persistence_granularity",
            "persistence_engine",
            "sip",
            "protocol",
            "TCP",
            "UDP",
            "SCTP",
            "ip_family",
            "inet",
            "inet6",
            "delay_loop",
            "retry",
            "delay_before_retry",
            "connect_timeout",
            "virtualhost",
            "sorry_server",
            "sorry_server_lvs_method",
            "inhibit_on_failure",
            "quorum",
            "alpha",
            "weight",
            "uthreshold",
            "lthreshold",
            "TCP_CHECK",
            "HTTP_GET",
            "SSL_GET",
            "url",
            "path",
            "status_code",
            "regex",
            "digest",
            "SMTP_CHECK",
            "helo_name",
            "DNS_CHECK",
            "type",
            "name",
            "MISC_CHECK",
            "misc_path",
            "misc_timeout",
            "misc_dynamic",
            "UDP_CHECK",
            "payload",
            "require_reply",
            "FILE_CHECK",
            "PING_CHECK",
            "connect_port",
            "global_defs",
            "vrrp_instance",
            "{",
            "}",
            "{",
            "}",
            "!",
            "#",
            "\"",
            "@x",
            "@^x",
            "$V=1",
            "$V",
            "${V}",
            "~SEQ(i,1,3)",
            "192.0.2.1",
            "198.51.100.2",
            "2001:db8::1",
            "192.0.2.1-9",
            "192.0.2.1-192.0.2.3",
            "192.0.2.0/30",
            "2001:db8::1-ff",
            "inet6",
            "80",
            "0",
            "65536",
            "-1",
            "1.5",
            "200-299",
            "255.255.255.0",
            "64",
            "0a0b",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,8}",
    ]
}

fn line() -> impl Strategy<Value = String> {
    // No includes: a fuzzed one would read the working directory's files.
    prop::collection::vec(word(), 0..6)
        .prop_map(|w| w.join(" "))
        .prop_filter("no includes", |l| !l.contains("include"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn fuzzed_keepalived_conf_never_panics_and_renders_what_the_schema_reads(
        lines in prop::collection::vec(line(), 0..40),
    ) {
        let text = lines.join("\n");
        if let Ok(imported) = uvs::config::import::keepalived::import(&text, None) {
            let toml = uvs::config::render::render(&imported.config);
            let read = uvs::config::schema::parse(&toml, Path::new("fuzzed.toml"));
            prop_assert!(read.is_ok(), "{}\n---\n{}\n---\n{:?}", text, toml, read.err());
        }
    }
}

/// A line of keywords and values without braces, so that blocks stay whole.
fn flat_line() -> impl Strategy<Value = String> {
    line().prop_map(|l| l.replace(['{', '}'], ""))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn fuzzed_virtual_server_blocks_render_what_the_schema_reads(
        vip in prop::sample::select(vec!["192.0.2.1 80", "2001:db8::1 443", "fwmark 7", "192.0.2.1", "x y", "group g", "group g6"]),
        rips in prop::collection::vec(prop::sample::select(vec!["198.51.100.2 80", "198.51.100.3", "2001:db8::2 80", "198.51.100.2 80"]), 0..4),
        vs_lines in prop::collection::vec(flat_line(), 0..8),
        rs_lines in prop::collection::vec(flat_line(), 0..6),
        check in prop::sample::select(vec!["TCP_CHECK", "HTTP_GET", "SSL_GET", "SMTP_CHECK", "DNS_CHECK", "MISC_CHECK", "UDP_CHECK", "FILE_CHECK"]),
        check_lines in prop::collection::vec(flat_line(), 0..6),
        twice in prop::bool::ANY,
    ) {
        // The groups a `virtual_server group` names, after it as keepalived allows.
        let groups = "virtual_server_group g {\n192.0.2.1-3 80\n192.0.2.9\nfwmark 7\n}\nvirtual_server_group g6 {\n2001:db8::1-3 443\nfwmark 8 inet6\n}\n";
        let mut text = format!("virtual_server {vip} {{\n{}\n", vs_lines.join("\n"));
        for rip in &rips {
            text.push_str(&format!(
                "real_server {rip} {{\n{}\n{check} {{\n{}\nurl {{\n{}\n}}\n}}\n}}\n",
                rs_lines.join("\n"),
                check_lines.join("\n"),
                check_lines.join("\n"),
            ));
        }
        text.push_str("}\n");
        if twice {
            text = text.repeat(2);
        }
        text.push_str(groups);
        let imported = uvs::config::import::keepalived::import(&text, None);
        // Blocks are whole, unless a multi-line definition (`$V=... \`) took the line
        // after it, as keepalived's does.
        prop_assert!(imported.is_ok() || text.contains("\\\n"), "{}\n{:?}", text, imported.err());
        let Ok(imported) = imported else { return Ok(()) };
        let toml = uvs::config::render::render(&imported.config);
        let read = uvs::config::schema::parse(&toml, Path::new("fuzzed.toml"));
        prop_assert!(read.is_ok(), "{}\n---\n{}\n---\n{:?}", text, toml, read.err());
    }
}

/// A MISC_CHECK whose misc_path is quoted, with a path that has a space in it, runs
/// the words keepalived runs (check_misc.c `misc_path_handler`: the first word, split
/// with keepalived's quoting) and nothing after them: imported, then run by `uvs run`.
#[test]
fn a_quoted_misc_path_with_a_space_runs_the_words_keepalived_runs() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("my check.sh");
    let args = dir.path().join("args");
    std::fs::write(
        &script,
        format!(
            "echo \"$# $@\" > '{}.new'\nmv '{0}.new' '{0}'\n",
            args.display()
        ),
    )
    .unwrap();
    let vip = common::vip();
    let conf = format!(
        "virtual_server {} {} {{\n  protocol TCP\n  delay_loop 1\n  real_server 127.0.0.2 {} {{\n    MISC_CHECK {{\n      misc_path \"/bin/sh '{}' 'a b' c\"\n    }}\n  }}\n}}\n",
        vip.ip(),
        vip.port(),
        vip.port(),
        script.display()
    );
    let out = uvs(&["import", "keepalived", "-"], dir.path(), &conf);
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
    let toml = text(&out.stdout);
    assert!(
        toml.contains(&format!(
            "command = [\"/bin/sh\", \"{}\", \"a b\", \"c\"]\ntarget_arguments = false\n",
            script.display()
        )),
        "{toml}"
    );
    let d = common::Daemon::start_with_file(&dir.path().join("uvs.toml"), &toml, &[]);
    d.wait_listening(vip);
    common::eventually("the check ran", || args.exists());
    // Two arguments after the script, "a b" and "c"; no vip vport rip rport.
    assert_eq!(std::fs::read_to_string(&args).unwrap(), "2 a b c\n");
}

#[test]
fn the_deprecated_lvs_sync_daemon_interface_is_taken_first_come_as_keepalived_takes_it() {
    // keepalived/vrrp/vrrp_parser.c vrrp_lvs_syncd_handler: the first sync daemon
    // setting of the file is kept, of either form; the deprecated one follows its own
    // instance with sync id 0 (vrrp.c vrrp_complete_init).
    let dir = common::fixture("fixtures/keepalived");
    let out = uvs(
        &["import", "keepalived", "lvs-sync-daemon-interface.conf"],
        &dir,
        "",
    );
    assert_eq!(
        text(&out.stdout),
        "[sync]\nrole = \"both\"\ninterface = \"eth1\"\n"
    );
    let f = "lvs-sync-daemon-interface.conf";
    assert_eq!(
        text(&out.stderr),
        format!(
            "{f}:2: vrrp_instance VI_1: VRRP is keepalived's own job (it moves the VIP); not uvs's, not taken\n\
             {f}:10: lvs_sync_daemon_interface: deprecated in keepalived (vrrp_instance VI_1); the same in global_defs is `lvs_sync_daemon eth1 inst VI_1 id 0`\n\
             {f}:10: lvs_sync_daemon_interface eth1: taken as [sync] role = \"both\" (syncid 0): keepalived runs the master sync daemon while vrrp_instance VI_1 is MASTER and the backup otherwise, with sync id 0 (this form has no id); uvs has no VRRP and runs both at once\n\
             {f}:12: vrrp_instance VI_2: VRRP is keepalived's own job (it moves the VIP); not uvs's, not taken\n\
             {f}:17: lvs_sync_daemon_interface: deprecated in keepalived (vrrp_instance VI_2); the same in global_defs is `lvs_sync_daemon eth2 inst VI_2 id 0`\n\
             {f}:17: lvs_sync_daemon_interface: lvs_sync_daemon_interface eth1 is already given above; keepalived ignores this one, and so does uvs\n\
             {f}:19: global_defs: keepalived's own settings; not uvs's job, not taken\n\
             {f}:20: lvs_sync_daemon: lvs_sync_daemon_interface eth1 is already given above; keepalived ignores this one, and so does uvs\n\
             uvs: {f}: 2 lines not taken\n"
        )
    );
    assert_eq!(out.status.code(), Some(1));
}
