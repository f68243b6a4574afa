//! The ldirectord.cf reader: each of ldirectord 4.12's patterns, the values it takes and
//! the lines it refuses.

use super::*;
use std::net::Ipv4Addr;

use crate::adm::names::{Names, NoNames};
use crate::config::render::render;
use crate::config::{CheckKind, NegotiateService};

#[test]
fn a_virtual_service_with_its_checks_and_fallback() {
    let text = "\
checktimeout=3
checkinterval=1
autoreload=yes
quiescent=no
logfile=\"/var/log/ldirectord.log\"

virtual=10.0.0.1:80
\treal=10.0.0.2->10.0.0.3:80 gate
\treal=10.0.0.9:8080 masq 5
\tfallback=127.0.0.1:80 gate
\tservice=http
\tscheduler=rr
\tpersistent=600
\tprotocol=tcp
\tchecktype=negotiate
\trequest=\"index.html\"
\treceive=\"Test Page\"

virtual = 10.0.0.1:21
\treal=10.0.0.2:21 gate
\tservice=ftp
\tlogin=\"anonymous\"
";
    let imported = checked(import(text.as_bytes(), &mut NoNames));
    let lines = imported.skipped_lines();
    assert_eq!(
        lines,
        [
            (5, "logfile: no uvs counterpart; not taken"),
            (
                21,
                "service=ftp: uvs negotiates http, https, simpletcp, smtp and dns only; a connect check is used instead"
            ),
            (22, "login: no uvs counterpart; not taken"),
        ]
    );
    assert_eq!(
        render(&imported.config),
        r#"[global]
cleanstop = true
autoreload = true
quiescent = false

[global.check]
interval = "1s"
failures = 1

[[service]]
tcp = "10.0.0.1:80"
scheduler = "rr"
persistent = "10m"
fallback = { address = "127.0.0.1:80", forward = "gate" }

[service.check]
type = "negotiate"
service = "http"
timeout = "3s"
request = "index.html"
receive = "Test Page"

[[service.server]]
address = "10.0.0.2:80"
forward = "gate"

[[service.server]]
address = "10.0.0.3:80"
forward = "gate"

[[service.server]]
address = "10.0.0.9:8080"
weight = 5

[[service]]
tcp = "10.0.0.1:21"
scheduler = "wrr"

[service.check]
type = "connect"
timeout = "3s"

[[service.server]]
address = "10.0.0.2:21"
forward = "gate"
"#
    );
}

#[test]
fn servers_listed_twice_are_one_message_a_line() {
    let text = "\
virtual=10.0.0.1:80
\treal=10.0.0.1->10.0.0.3:80 gate
\treal=10.0.0.2:80 gate
\treal=10.0.0.1->10.0.0.4:80 gate
";
    let imported = checked(import(text.as_bytes(), &mut NoNames));
    let lines = imported.skipped_lines();
    assert_eq!(
        lines,
        [
            (3, "10.0.0.2:80: listed twice"),
            (4, "10.0.0.1:80 and 2 more: listed twice")
        ]
    );
    assert_eq!(imported.config.services[0].servers.len(), 4);
}

#[test]
fn a_gate_server_on_another_port_is_checked_there_and_listed_once_at_the_vips() {
    // ipvsadm gives both gate servers the VIP's port, and refuses the second as
    // already there (line 4); ldirectord still checks the first at the port it names,
    // unless checkport says another (the second service).
    let text = "\
virtual=10.0.0.1:80
\treal=10.0.0.2:8080 gate
\treal=10.0.0.3:8080 masq
\treal=10.0.0.2:80 gate
\tchecktype=connect
virtual=10.0.0.1:81
\treal=10.0.0.2:8080 gate
\tchecktype=connect
\tcheckport=9000
";
    let imported = checked(import(text.as_bytes(), &mut NoNames));
    assert_eq!(
        imported.skipped_lines(),
        [(
            4,
            "10.0.0.2:80: listed twice (a gate or ipip real server takes the service's port)"
        )]
    );
    let [first, second] = &imported.config.services[..] else {
        panic!("two services: {:?}", imported.config.services)
    };
    assert_eq!(first.servers.len(), 2);
    let gate = crate::table::ServerKey {
        addr: Ipv4Addr::new(10, 0, 0, 2).into(),
        port: 80,
    };
    assert_eq!(first.server_checks[&gate].port, Some(8080));
    assert_eq!(
        first.server_checks.len(),
        1,
        "the masq server keeps its port"
    );
    assert_eq!(second.health.check.port, Some(9000));
    assert!(second.server_checks.is_empty(), "checkport decides");
}

#[test]
fn what_ipvs_refuses_to_hold_is_reported_not_written() {
    let text = "\
virtual=127.0.0.1:80
\treal=255.255.255.255:80 masq
\treal=127.0.0.2:80 masq
\treal=223.255.255.255->224.0.0.1:80 masq
\tfallback=224.0.0.1:80
\tchecktype=on
";
    let imported = checked(import(text.as_bytes(), &mut NoNames));
    assert_eq!(
        imported.skipped_lines(),
        [
            (
                2,
                "real server 255.255.255.255: not a unicast address, which IPVS refuses"
            ),
            (
                4,
                "real server 224.0.0.0: not a unicast address, which IPVS refuses"
            ),
            (
                5,
                "fallback 224.0.0.1: not a unicast address, which IPVS refuses"
            ),
        ]
    );
    assert_eq!(imported.config.services[0].servers.len(), 1);
}

#[test]
fn a_file_of_junk_keeps_the_first_hundred_lines_in_order_and_counts_all() {
    // Junk, and services whose problems are found once their block is read.
    let mut text = String::new();
    for i in 0..300 {
        text.push_str(if i % 3 == 0 {
            "virtual=nowhere\n"
        } else {
            "junk\n"
        });
    }
    let imported = checked(import(text.as_bytes(), &mut NoNames));
    assert_eq!(imported.skipped_total, 300);
    assert_eq!(imported.skipped.len(), crate::config::capped::SHOWN);
    assert_eq!(
        (
            imported.skipped[0].line,
            imported.skipped[0].message.as_str()
        ),
        (1, "virtual=nowhere: invalid address for virtual server")
    );
    assert_eq!(
        (
            imported.skipped[99].line,
            imported.skipped[99].message.as_str()
        ),
        (100, "virtual=nowhere: invalid address for virtual server")
    );
    assert_eq!(
        imported.skipped[1].message, "`junk': not a key=value directive",
        "line 2"
    );
    assert!(imported.skipped.windows(2).all(|w| w[0].line < w[1].line));
}

/// Names for tests: `web` is 10.0.0.80, service `domain` is 53 (tcp and udp), `http` 80.
struct TestNames;

impl Names for TestNames {
    fn host_name(&mut self, _: std::net::IpAddr) -> Option<String> {
        None
    }
    fn service_name(&mut self, _: u16, _: &str) -> Option<String> {
        None
    }
    fn host_addr(&mut self, name: &str) -> Option<Ipv4Addr> {
        (name == "web").then_some(Ipv4Addr::new(10, 0, 0, 80))
    }
    fn service_port(&mut self, name: &str, protocol: &str) -> Option<u16> {
        match (name, protocol) {
            ("domain", _) => Some(53),
            ("http", "tcp") => Some(80),
            _ => None,
        }
    }
}

fn with_names(text: &str) -> Imported {
    checked(import(text.as_bytes(), &mut TestNames))
}

/// The import, once what it renders has passed the schema `uvs check` reads it with.
fn checked(imported: Imported) -> Imported {
    let toml = render(&imported.config);
    if let Err(problems) = crate::config::schema::parse(&toml, std::path::Path::new("t.toml")) {
        panic!("{problems:?}\n{toml}");
    }
    imported
}

#[test]
fn values_are_taken_with_ldirectords_unanchored_patterns() {
    let imported = with_names(
        "checkinterval=7 ## seven\n\
         checktimeout=x4\n\
         virtual=10.0.0.1:80 ## the VIP\n\
         \treal=web:http gate -w 5 ## five\n\
         \treal=10.0.0.3 masq 2 \"/a\", \"b\" l:3 u:9\n\
         \tscheduler=wlc   # comment\n\
         \tprotocol=tcp # comment\n\
         \tpersistent=600s\n\
         \tchecktype=connect\n",
    );
    assert_eq!(imported.skipped_lines(), []);
    let s = &imported.config.services[0];
    assert_eq!(s.service.scheduler, "wlc");
    assert_eq!(s.service.timeout, 600);
    assert_eq!(s.health.check.timeout, Some(Duration::from_secs(4)));
    assert_eq!(
        imported.config.global.health.check.interval,
        Some(Duration::from_secs(7))
    );
    let web = &s.servers[0];
    assert_eq!(
        (web.addr.to_string(), web.port, web.weight),
        ("10.0.0.80".into(), 80, 5)
    );
    let other = &s.servers[1];
    assert_eq!(
        (
            other.port,
            other.weight,
            other.l_threshold,
            other.u_threshold
        ),
        (0, 2, 3, 9)
    );
    let check = &s.server_checks[&other.key()];
    assert_eq!(
        (check.request.as_deref(), check.receive.as_deref()),
        (Some("/a"), Some("b"))
    );
}

#[test]
fn lines_ldirectord_refuses_are_reported_with_their_number() {
    let imported = with_names(
        "autoreload=yes # no comment here: ldirectord takes the whole rest\n\
         connecttimeout=99999\n\
         virtual=10.0.0.1:80\n\
         \treal=10.0.0.2:80\n\
         \treal=10.0.0.3:80 gate -w5\n\
         \trequest=\"a#b\"\n\
         \tquiescent=yes # trailing blanks stay\n\
         \tops=yes\n\
         \tconnecttimeout=99999\n\
         \tcheckinterval=3\n\
         \n\
         \treal=10.0.0.4:80 gate\n",
    );
    assert_eq!(
        imported.skipped_lines(),
        [
            (1, "autoreload must be 'yes' or 'no'"),
            (
                2,
                "connecttimeout directive deprecated in favour of negotiatetimeout: ldirectord refuses it; not taken"
            ),
            (4, "invalid address for real server (wrong format)"),
            (5, "Invalid real server line, around \" -w5\""),
            (6, "Unknown command \"request=\"a\""),
            (7, "quiescent must be 'yes' or 'no'"),
            (
                9,
                "connecttimeout directive deprecated in favour of negotiatetimeout: ldirectord refuses it; not taken"
            ),
            (
                10,
                "checkinterval in a virtual service: ldirectord ignores it when fork=no (its default); the global checkinterval applies"
            ),
            (
                12,
                "`real=10.0.0.4:80 gate': indented, but in no virtual block (a blank line ends one)"
            ),
        ]
    );
    // ops=yes on TCP: ldirectord does not pass -o to ipvsadm, and nor is it taken here.
    assert!(!imported.config.services[0].service.flags.one_packet());
}

#[test]
fn port_53_and_domain_are_udp_unless_told_otherwise_and_marks_are_not() {
    let imported = with_names(
        "virtual=10.0.0.1:domain\n\treal=10.0.0.2:53 masq\n\
         virtual=10.0.0.1:53\n\tprotocol=tcp\n\treal=10.0.0.2:53 masq\n\
         virtual=10.0.0.1:5353\n\treal=10.0.0.2:53 masq\n\
         virtual=53\n\treal=10.0.0.2:53 masq\n\tops=yes\n",
    );
    assert_eq!(imported.skipped_lines(), []);
    let keys: Vec<String> = imported
        .config
        .services
        .iter()
        .map(|s| s.service.key.to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "udp 10.0.0.1:53",
            "tcp 10.0.0.1:53",
            "tcp 10.0.0.1:5353",
            "fwmark 53"
        ]
    );
}

#[test]
fn values_that_are_not_utf8_are_reported_not_rewritten() {
    let mut text = b"# \xc4\xe3\xba\xc3 GBK\nvirtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\treceive=\"\xe9t\xe9\"\n".to_vec();
    text.extend_from_slice(b"\tcomment=caf\xe9\n");
    let imported = checked(import(&text, &mut TestNames));
    assert_eq!(
        imported.skipped_lines(),
        [
            (
                4,
                "receive: the value holds bytes that are not UTF-8 (uvs's configuration is UTF-8 text); not taken"
            ),
            (
                5,
                "comment: the value holds bytes that are not UTF-8 (uvs's configuration is UTF-8 text); not taken"
            ),
        ]
    );
    assert_eq!(imported.config.services[0].servers.len(), 1);
}

#[test]
fn ldirectords_defaults_are_written_out() {
    let imported = with_names(
        "virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\
         virtual=10.0.0.1:81\n\treal=10.0.0.2:81 gate\n\tchecktype=connect\n\
         virtual=10.0.0.1:82\n\treal=10.0.0.2:82 gate\n\tnegotiatetimeout=7\n\tchecktype=connect\n\
         virtual=10.0.0.1:53\n\treal=10.0.0.2:53 gate\n\tops=yes\n\tchecktype=on\n",
    );
    assert_eq!(imported.skipped_lines(), []);
    let g = &imported.config.global.health;
    assert_eq!(
        (g.check.interval, g.check.failures, g.quiescent),
        (Some(Duration::from_secs(10)), Some(1), Some(false))
    );
    let s = &imported.config.services;
    // Negotiate (http, from the port) bounded by negotiatetimeout's 30 s; connect by
    // checktimeout's 5 s, or by negotiatetimeout when only that is set.
    assert_eq!(s[0].health.check.kind, Some(CheckKind::Negotiate));
    assert_eq!(s[0].health.check.service, Some(NegotiateService::Http));
    assert_eq!(s[0].health.check.timeout, Some(Duration::from_secs(30)));
    assert_eq!(s[1].health.check.timeout, Some(Duration::from_secs(5)));
    assert_eq!(s[2].health.check.timeout, Some(Duration::from_secs(7)));
    assert_eq!(s[0].service.scheduler, "wrr");
    // ops=yes on a UDP service is One-Packet Scheduling.
    assert!(s[3].service.flags.one_packet());
}

#[test]
fn values_past_what_uvs_or_ipvsadm_takes_are_reported() {
    let imported = with_names(
        "checkinterval=86401\n\
         failurecount=1001\n\
         fork=yes\n\
         virtual=10.0.0.1:80\n\
         \treal=10.0.0.2:80 gate 70000\n\
         \treal=10.0.0.3:80 gate 3\n\
         \tchecktimeout=3601\n\
         \tpersistent=0\n\
         \tscheduler=fastest\n\
         \tcheckinterval=4\n",
    );
    assert_eq!(
        imported.skipped_lines(),
        [
            (
                1,
                "checkinterval=86401: past uvs's limit of 86400; not taken"
            ),
            (2, "failurecount=1001: past uvs's limit of 1000; not taken"),
            (5, "weight 70000: ipvsadm takes 0 to 65535; not taken"),
            (7, "checktimeout=3601: past uvs's limit of 3600; not taken"),
            (
                8,
                "persistent=0: ipvsadm takes 1 to 2678400 seconds; not persistent"
            ),
            (
                9,
                "scheduler=fastest: not a scheduler IPVS has; wrr is used"
            ),
        ]
    );
    let s = &imported.config.services[0];
    assert_eq!(s.servers.len(), 1);
    // fork=yes: the virtual service's own interval is used.
    assert_eq!(s.health.check.interval, Some(Duration::from_secs(4)));
}

#[test]
fn what_ipvsadm_or_uvss_table_would_refuse_is_reported() {
    let imported = with_names(
        "virtual=0\n\treal=10.0.0.2:80 gate\n\
         virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate \"/\", \"[\"\n\tnetmask=255.0.255.0\n\tpersistent=30\n\
         \treal=10.0.0.3->10.0.1.3:80 gate\n",
    );
    assert_eq!(
        imported.skipped_lines(),
        [
            (
                1,
                "firewall mark 0: ipvsadm takes 1 to 4294967295; not taken"
            ),
            (
                4,
                "receive string: not a regular expression uvs reads (unclosed character class)"
            ),
            (
                5,
                "netmask=255.0.255.0: uvs takes a netmask of leading ones (as 255.255.255.0); not taken"
            ),
            (
                7,
                "10.0.0.3->10.0.1.3: a range of more than 256 addresses; not taken"
            ),
        ]
    );
}

#[test]
fn requests_are_taken_as_ldirectords_checks_send_them() {
    let imported = with_names(
        "virtual=10.0.0.1:25\n\treal=10.0.0.2:25 gate \"/PING\\n\", \"PONG\"\n\treal=10.0.0.3:25 gate\n\tservice=simpletcp\n\trequest=\"HELO\\n\"\n\treceive=\"250\"\n\
         virtual=10.0.0.1:53\n\treal=10.0.0.2:53 gate\n\trequest=\"/www.example.com\"\n\
         virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\trequest=\"index.html\"\n",
    );
    assert_eq!(imported.skipped_lines(), []);
    let s = &imported.config.services;
    assert_eq!(s[0].health.check.request.as_deref(), Some("HELO\n"));
    let one = &s[0].server_checks[&s[0].servers[0].key()];
    assert_eq!(one.request.as_deref(), Some("PING\n"));
    assert_eq!(s[1].health.check.service, Some(NegotiateService::Dns));
    assert_eq!(
        s[1].health.check.request.as_deref(),
        Some("www.example.com")
    );
    // uvs's HTTP check puts the `/` before the path itself, as ldirectord does.
    assert_eq!(s[2].health.check.request.as_deref(), Some("index.html"));
}

#[test]
fn checks_uvs_has_not_are_stood_in_for_by_a_connect_check_and_say_so() {
    for (checktype, why) in [
        ("ping", "uvs sends no ICMP echo"),
        ("external-perl", "uvs runs no Perl inside itself"),
    ] {
        // Port 80 would have negotiated http had the check been left unset.
        let text =
            format!("virtual=192.0.2.1:80\n\treal=198.51.100.1:80 masq\n\tchecktype={checktype}\n");
        let imported = checked(import(text.as_bytes(), &mut NoNames));
        let said = format!("checktype={checktype}: {why}; a connect check is used instead");
        assert_eq!(imported.skipped_lines(), [(3, said.as_str())]);
        let toml = render(&imported.config);
        assert!(toml.contains("type = \"connect\"\n"), "{toml}");
        assert!(!toml.contains("negotiate"), "{toml}");
    }
}

/// ldirectord takes a v4-mapped VIP (in hex: its pattern has no dots) as the IPv6
/// address it is; a uvs file cannot hold one (uvs cannot listen on it): reported, not
/// taken (review 6).
#[test]
fn a_v4_mapped_virtual_service_is_reported_with_the_ipv4_address_to_write() {
    let text = "virtual6=[::ffff:c000:201]:80\n\treal6=[2001:db8::2]:80 masq\n";
    let imported = checked(import(text.as_bytes(), &mut NoNames));
    assert_eq!(
        imported.skipped_lines(),
        [(
            1,
            "virtual service: an IPv4-mapped IPv6 address cannot be listened on (uvs's IPv6 \
             sockets are IPv6-only): write the IPv4 address, 192.0.2.1:80; not taken"
        )]
    );
    assert!(imported.config.services.is_empty());
}
