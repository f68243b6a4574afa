//! Properties of the ipvsadm front end, checked in process over many generated inputs:
//! `-S -n`, `-C`, `-R` gives back the same table for any table; random argv and random
//! `-R` input never panic, always end with one of ipvsadm's exit statuses, and leave the
//! table untouched whenever they fail.

use std::io::Cursor;

use proptest::prelude::*;

use uvs::adm::backend::{Backend, LocalBackend};
use uvs::adm::names::NoNames;
use uvs::adm::session::Session;
use uvs::table::{Forward, ServiceEntry, ServiceKey, UnicastOnly};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(backend: &mut LocalBackend, args: &[String], input: &str) -> Run {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut stdin = Cursor::new(input.as_bytes().to_vec());
    let code = Session {
        program: "ipvsadm".into(),
        backend,
        names: &mut NoNames,
        stdout: &mut out,
        stderr: &mut err,
        stdin: &mut stdin,
        posix: false,
    }
    .run(args);
    Run {
        code,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

fn argv(line: &str) -> Vec<String> {
    std::iter::once("ipvsadm")
        .chain(line.split_whitespace())
        .map(String::from)
        .collect()
}

fn save(backend: &mut LocalBackend) -> String {
    let r = run(backend, &argv("-S -n"), "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
}

/// What `-S` can express of a table, in a canonical order: everything but counters,
/// thresholds (ipvsadm's save format has no place for them), and the netmask and timeout
/// of services that are not persistent (which nothing reads).
fn canonical(entries: Vec<ServiceEntry>) -> Vec<String> {
    let mut out: Vec<String> = entries
        .into_iter()
        .map(|e| {
            let persistence = if e.flags.persistent() {
                format!("{} {}", e.timeout, e.netmask)
            } else {
                String::new()
            };
            let mut servers: Vec<String> = e
                .servers
                .iter()
                .map(|s| {
                    let forward = if s.forward == Forward::Local {
                        Forward::Route
                    } else {
                        s.forward
                    };
                    let tunnel = if forward == Forward::Tunnel {
                        format!("{:?}", s.tunnel)
                    } else {
                        String::new()
                    };
                    format!("{}:{} {forward:?} {} {tunnel}", s.addr, s.port, s.weight)
                })
                .collect();
            servers.sort();
            format!(
                "{:?} {} {:#x} {persistence} {:?} [{}]",
                e.key,
                e.scheduler,
                e.flags.0,
                e.pe,
                servers.join(", ")
            )
        })
        .collect();
    out.sort();
    out
}

fn v4() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u8..=255, 0u8..=255).prop_map(|(a, b)| format!("172.20.{a}.{b}")),
        any::<u32>().prop_map(|n| std::net::Ipv4Addr::from(n).to_string()),
        Just("255.255.255.254".to_string()),
        Just("10.0.0.1".to_string()),
        Just("127.0.0.5".to_string()),
    ]
}

fn v6() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u16..=0xffff).prop_map(|n| format!("2001:db8::{n:x}")),
        any::<u128>().prop_map(|n| std::net::Ipv6Addr::from(n).to_string()),
        Just("::1".to_string()),
        Just("ffff::1".to_string()),
    ]
}

fn scheduler() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
    ])
}

/// `-t|-u|--sctp-service addr:port` or `-f mark [-6]`, and whether it is IPv6.
fn service() -> impl Strategy<Value = (String, bool, bool)> {
    let port = prop_oneof![Just(0u16), Just(80), Just(443), Just(65535), any::<u16>()];
    prop_oneof![
        (
            prop::sample::select(vec!["-t", "-u", "--sctp-service"]),
            v4(),
            port.clone()
        )
            .prop_map(|(p, a, port)| (format!("{p} {a}:{port}"), false, port == 0)),
        (
            prop::sample::select(vec!["-t", "-u", "--sctp-service"]),
            v6(),
            port
        )
            .prop_map(|(p, a, port)| (format!("{p} [{a}]:{port}"), true, port == 0)),
        (
            prop_oneof![
                1u32..=100,
                Just(2_147_483_647),
                Just(2_147_483_648),
                1u32..=u32::MAX
            ],
            any::<bool>()
        )
            .prop_map(|(m, six)| (
                if six {
                    format!("-f {m} -6")
                } else {
                    format!("-f {m}")
                },
                six,
                false
            )),
    ]
}

fn service_options(ipv6: bool, zero_port: bool) -> impl Strategy<Value = String> {
    (
        scheduler(),
        prop_oneof![
            Just(None),
            Just(Some(None)),
            (1u32..=2_678_400).prop_map(|t| Some(Some(t)))
        ],
        prop_oneof![Just(None), any::<u32>().prop_map(Some)],
        any::<bool>(),
        prop::sample::select(vec!["", "flag-1", "flag-2,flag-3", "fallback", "port"]),
    )
        .prop_map(move |(sched, persistent, mask, pe, flags)| {
            let mut s = format!("-s {sched}");
            // A port-0 service must be persistent.
            let persistent = if zero_port && persistent.is_none() {
                Some(None)
            } else {
                persistent
            };
            match persistent {
                Some(Some(t)) => s.push_str(&format!(" -p {t}")),
                Some(None) => s.push_str(" -p"),
                None => {}
            }
            if let Some(m) = mask {
                if ipv6 {
                    s.push_str(&format!(" -M {}", m % 128 + 1));
                } else {
                    s.push_str(&format!(" -M {}", std::net::Ipv4Addr::from(m)));
                }
            }
            if pe {
                s.push_str(" --pe sip");
            }
            let flags = match (flags, sched) {
                ("fallback", "sh" | "mh") => format!("{sched}-fallback"),
                ("port", "sh" | "mh") => format!("{sched}-port"),
                ("fallback" | "port", _) => String::new(),
                (f, _) => f.to_string(),
            };
            if !flags.is_empty() {
                s.push_str(&format!(" -b {flags}"));
            }
            s
        })
}

fn server(ipv6: bool) -> impl Strategy<Value = String> {
    let port = prop_oneof![Just(None), any::<u16>().prop_map(Some)];
    let (same, other) = if ipv6 {
        (v6().boxed(), v4().boxed())
    } else {
        (v4().boxed(), v6().boxed())
    };
    (
        prop_oneof![4 => same.prop_map(|a| (a, false)), 1 => other.prop_map(|a| (a, true))],
        port,
        prop::sample::select(vec!["-m", "-g", "-i", ""]),
        prop_oneof![Just(1i64), 0i64..=100, Just(70000), Just(2_147_483_647)],
        prop::sample::select(vec![
            "",
            "--tun-type ipip",
            "--tun-type gre --tun-csum",
            "--tun-type gue --tun-port 6080 --tun-remcsum",
        ]),
        prop_oneof![
            Just(String::new()),
            (0u32..100, 0u32..100).prop_map(|(u, l)| format!("-x {} -y {}", u.max(l), u.min(l)))
        ],
    )
        .prop_map(
            |((addr, other_family), port, fwd, weight, tunnel, thresholds)| {
                let is_v6 = addr.contains(':');
                let host = if is_v6 { format!("[{addr}]") } else { addr };
                let target = match port {
                    Some(p) => format!("{host}:{p}"),
                    None if is_v6 => format!("{host}:80"),
                    None => host,
                };
                // A server of the other family is possible only when tunnelled.
                let fwd = if other_family { "-i" } else { fwd };
                let tunnel = if fwd == "-i" { tunnel } else { "" };
                format!("-r {target} {fwd} -w {weight} {tunnel} {thresholds}")
            },
        )
}

/// A table as a list of command lines: services, their servers, and some edits and
/// deletions on top.
fn table_commands() -> impl Strategy<Value = Vec<String>> {
    let one_service = service().prop_flat_map(|(svc, ipv6, zero_port)| {
        (
            service_options(ipv6, zero_port),
            prop::collection::vec(server(ipv6), 0..4),
            prop::option::of(service_options(ipv6, zero_port)),
            any::<bool>(),
        )
            .prop_map(move |(opts, servers, edit, delete_first)| {
                let mut lines = vec![format!("-A {svc} {opts}")];
                for s in &servers {
                    lines.push(format!("-a {svc} {s}"));
                }
                if let Some(e) = edit {
                    lines.push(format!("-E {svc} {e}"));
                }
                if delete_first && let Some(first) = servers.first() {
                    let target = first.split_whitespace().nth(1).unwrap_or_default();
                    lines.push(format!("-d {svc} -r {target}"));
                }
                lines
            })
    });
    prop::collection::vec(one_service, 0..8).prop_map(|v| v.into_iter().flatten().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn save_clear_restore_gives_back_the_same_table(lines in table_commands()) {
        let mut b = LocalBackend::new(Box::new(UnicastOnly));
        for line in &lines {
            // Some generated commands are refused (duplicates, for instance): fine.
            run(&mut b, &argv(line), "");
        }
        let before = canonical(b.services().unwrap());
        let saved = save(&mut b);
        prop_assert_eq!(run(&mut b, &argv("-C"), "").code, 0);
        prop_assert!(b.services().unwrap().is_empty());
        let restored = run(&mut b, &argv("-R"), &saved);
        prop_assert_eq!(restored.code, 0, "restore failed: {}", restored.stderr);
        prop_assert_eq!(&restored.stderr, "");
        prop_assert_eq!(canonical(b.services().unwrap()), before);
        // The same rules come out again; their order may differ where ipvsadm's
        // comparator is not transitive (addresses 2^31 apart), as with ipvsadm.
        let again = save(&mut b);
        let mut a: Vec<&str> = saved.lines().collect();
        let mut c: Vec<&str> = again.lines().collect();
        a.sort_unstable();
        c.sort_unstable();
        prop_assert_eq!(a, c);
    }
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "-A",
            "-E",
            "-D",
            "-C",
            "-R",
            "-S",
            "-a",
            "-e",
            "-d",
            "-L",
            "-l",
            "-Z",
            "--set",
            "-h",
            "-v",
            "-t",
            "-u",
            "-f",
            "-6",
            "-s",
            "-p",
            "-M",
            "-b",
            "-o",
            "-r",
            "-g",
            "-i",
            "-m",
            "-w",
            "-x",
            "-y",
            "-n",
            "-c",
            "--stats",
            "--rate",
            "--exact",
            "--thresholds",
            "--persistent-conn",
            "--timeout",
            "--daemon",
            "--nosort",
            "--sort",
            "--tun-info",
            "--tun-type",
            "--tun-port",
            "--tun-csum",
            "--tun-nocsum",
            "--tun-remcsum",
            "--pe",
            "--sctp-service",
            "--start-daemon",
            "--stop-daemon",
            "--syncid",
            "--mcast-group",
            "--",
            "-",
            "",
            "=",
            "-Ln",
            "-w5",
            "--weight=7",
            "1.2.3.4:80",
            "[::1]:80",
            "[::1]",
            "1.2.3.4",
            "0",
            "-1",
            "4294967295",
            "rr",
            "sh",
            "sh-port",
            "master",
            "gue",
            "sip",
            "255.255.255.255",
            "10.1:http",
            "x",
            "-Q",
            "--bogus",
        ])
        .prop_map(String::from),
        "\\PC{0,12}",
        "[-0-9a-z.:\\[\\]=,]{0,20}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_argv_never_panics_and_failures_change_nothing(
        args in prop::collection::vec(word(), 0..10),
        setup in prop::bool::ANY,
    ) {
        let mut b = LocalBackend::new(Box::new(UnicastOnly));
        if setup {
            run(&mut b, &argv("-A -t 1.2.3.4:80 -s rr"), "");
            run(&mut b, &argv("-a -t 1.2.3.4:80 -r 5.6.7.8:80 -m -w 2"), "");
            run(&mut b, &argv("-A -f 7 -p"), "");
        }
        let before = save(&mut b);
        let mut full = vec!["ipvsadm".to_string()];
        full.extend(args);
        let r = run(&mut b, &full, "");
        prop_assert!([0, 1, 2, 255].contains(&r.code), "exit {}", r.code);
        if r.code != 0 {
            prop_assert_eq!(save(&mut b), before);
            prop_assert!(!r.stderr.is_empty(), "a failure says why");
        }
    }

    #[test]
    fn random_restore_input_never_panics(input in "(\\PC|\n|\t| ){0,300}") {
        let mut b = LocalBackend::new(Box::new(UnicastOnly));
        let r = run(&mut b, &argv("-R"), &input);
        prop_assert!([0, 1, 2, 255].contains(&r.code));
    }
}

#[test]
fn big_marks_and_cycles_survive_a_round_trip() {
    // The reference session's sort phase: marks above 2^31 print as negative numbers.
    let mut b = LocalBackend::new(Box::new(UnicastOnly));
    for m in [
        "1",
        "3000000000",
        "2147483647",
        "2147483648",
        "10",
        "4294967295",
    ] {
        assert_eq!(run(&mut b, &argv(&format!("-A -f {m} -s rr")), "").code, 0);
    }
    let before = canonical(b.services().unwrap());
    let saved = save(&mut b);
    assert!(saved.contains("-A -f -1294967296 -s rr\n"), "{saved}");
    run(&mut b, &argv("-C"), "");
    let r = run(&mut b, &argv("-R"), &saved);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(canonical(b.services().unwrap()), before);
    let key = ServiceKey::Fwmark {
        mark: 3_000_000_000,
        family: uvs::table::Family::Inet,
    };
    assert!(b.service(&key).is_ok());
}
