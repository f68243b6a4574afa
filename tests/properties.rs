//! Properties of the ipvsadm front end, checked in process over many generated inputs:
//! `-S -n`, `-C`, `-R` gives back the same table for any table; random argv and random
//! `-R` input never panic, always end with one of ipvsadm's exit statuses, and leave the
//! table untouched whenever they fail; and a table loaded from a TOML file saves as the
//! same rules given to uvsadm (ipvsadm's normalisation of real-server ports, one rule on
//! both paths).

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

/// A real server of a generated table, written both as a `[[service.server]]` and as a
/// `-a` line. Addresses are distinct within a service (the index), so every server is
/// its own whatever port the table gives it: the property is about the port.
#[derive(Debug, Clone)]
struct GenServer {
    addr: String,
    port: Option<u16>,
    forward: &'static str,
    weight: u16,
    thresholds: Option<(u32, u32)>,
    gue: bool,
}

/// A service of a generated table: `(protocol, address, port)` or an fwmark.
#[derive(Debug, Clone)]
struct GenService {
    key: Result<(&'static str, String, u16), (u32, bool)>,
    scheduler: &'static str,
    persistent: Option<(u32, bool)>,
    servers: Vec<GenServer>,
}

impl GenService {
    fn ipv6(&self) -> bool {
        match &self.key {
            Ok((_, addr, _)) => addr.contains(':'),
            Err((_, six)) => *six,
        }
    }

    fn toml(&self) -> String {
        let mut t = String::from("\n[[service]]\n");
        match &self.key {
            Ok((proto, addr, port)) => {
                let host = if addr.contains(':') {
                    format!("[{addr}]")
                } else {
                    addr.clone()
                };
                t += &format!("{proto} = \"{host}:{port}\"\n");
            }
            Err((mark, six)) => t += &format!("fwmark = {mark}\nipv6 = {six}\n"),
        }
        t += &format!("scheduler = \"{}\"\n", self.scheduler);
        if let Some((timeout, mask)) = self.persistent {
            t += &format!("persistent = {timeout}\n");
            match (mask, self.ipv6()) {
                (true, true) => t += "netmask = 64\n",
                (true, false) => t += "netmask = \"255.255.255.0\"\n",
                _ => {}
            }
        }
        for s in &self.servers {
            let address = match (s.port, s.addr.contains(':')) {
                (Some(p), true) => format!("[{}]:{p}", s.addr),
                (Some(p), false) => format!("{}:{p}", s.addr),
                (None, _) => s.addr.clone(),
            };
            t += &format!(
                "\n[[service.server]]\naddress = \"{address}\"\nforward = \"{}\"\nweight = {}\n",
                s.forward, s.weight
            );
            if let Some((u, l)) = s.thresholds {
                t += &format!("upper_threshold = {u}\nlower_threshold = {l}\n");
            }
            if s.gue {
                t += "tunnel = \"gue\"\ntunnel_port = 6080\ntunnel_checksum = \"csum\"\n";
            }
        }
        t
    }

    /// The uvsadm lines for the same service. IPVS lists the newest server first and a
    /// file lists them in its order: the servers are added last to first.
    fn commands(&self) -> Vec<String> {
        let svc = match &self.key {
            Ok((proto, addr, port)) => {
                let switch = match *proto {
                    "tcp" => "-t",
                    "udp" => "-u",
                    _ => "--sctp-service",
                };
                if addr.contains(':') {
                    format!("{switch} [{addr}]:{port}")
                } else {
                    format!("{switch} {addr}:{port}")
                }
            }
            Err((mark, true)) => format!("-f {mark} -6"),
            Err((mark, false)) => format!("-f {mark}"),
        };
        let mut add = format!("-A {svc} -s {}", self.scheduler);
        if let Some((timeout, mask)) = self.persistent {
            add += &format!(" -p {timeout}");
            match (mask, self.ipv6()) {
                (true, true) => add += " -M 64",
                (true, false) => add += " -M 255.255.255.0",
                _ => {}
            }
        }
        let mut lines = vec![add];
        for s in self.servers.iter().rev() {
            let target = match (s.port, s.addr.contains(':')) {
                (Some(p), true) => format!("[{}]:{p}", s.addr),
                (Some(p), false) => format!("{}:{p}", s.addr),
                (None, _) => s.addr.clone(),
            };
            let forward = match s.forward {
                "masq" => "-m",
                "gate" => "-g",
                _ => "-i",
            };
            let mut line = format!("-a {svc} -r {target} {forward} -w {}", s.weight);
            if let Some((u, l)) = s.thresholds {
                line += &format!(" -x {u} -y {l}");
            }
            if s.gue {
                line += " --tun-type gue --tun-port 6080 --tun-csum";
            }
            lines.push(line);
        }
        lines
    }
}

/// Servers of one service: addresses `172.20.N.I` (or `2001:db8:N::I`) by index, any
/// port or none, any forwarding method; a server of the other family is tunnelled.
fn gen_servers(n: usize, ipv6: bool) -> impl Strategy<Value = Vec<GenServer>> {
    let one = (
        prop_oneof![4 => Just(false), 1 => Just(true)],
        prop_oneof![
            Just(None),
            Just(Some(0u16)),
            Just(Some(80)),
            any::<u16>().prop_map(Some)
        ],
        prop::sample::select(vec!["masq", "gate", "ipip"]),
        0u16..=100,
        prop::option::of((0u32..100, 0u32..100).prop_map(|(a, b)| (a.max(b), a.min(b)))),
        any::<bool>(),
    );
    prop::collection::vec(one, 0..5).prop_map(move |all| {
        all.into_iter()
            .enumerate()
            .map(|(i, (other, port, forward, weight, thresholds, gue))| {
                let six = ipv6 != other;
                let addr = if six {
                    format!("2001:db8:{n:x}::{:x}", i + 1)
                } else {
                    format!("172.20.{n}.{}", i + 1)
                };
                let forward = if other { "ipip" } else { forward };
                GenServer {
                    addr,
                    port,
                    forward,
                    weight,
                    thresholds,
                    gue: gue && forward == "ipip",
                }
            })
            .collect()
    })
}

/// Services `n` of a table: address services on any port (port 0 ones persistent, as
/// ipvsadm requires), IPv4 or IPv6, and fwmark services.
fn gen_service(n: usize) -> impl Strategy<Value = GenService> {
    let key = prop_oneof![
        (
            prop::sample::select(vec!["tcp", "udp", "sctp"]),
            any::<bool>(),
            prop_oneof![Just(0u16), Just(80), Just(443), 1u16..=65535],
        )
            .prop_map(move |(proto, six, port)| {
                let addr = if six {
                    format!("2001:db8:ff::{:x}", n + 1)
                } else {
                    format!("10.0.{n}.1")
                };
                Ok((proto, addr, port))
            }),
        any::<bool>().prop_map(move |six| Err((n as u32 + 1, six))),
    ];
    (
        key,
        scheduler(),
        prop::option::of((1u32..=86_400, any::<bool>())),
    )
        .prop_flat_map(move |(key, scheduler, persistent)| {
            let zero_port = matches!(&key, Ok((_, _, 0)));
            let persistent = if zero_port {
                persistent.or(Some((300, false)))
            } else {
                persistent
            };
            let ipv6 = match &key {
                Ok((_, addr, _)) => addr.contains(':'),
                Err((_, six)) => *six,
            };
            gen_servers(n, ipv6).prop_map(move |servers| GenService {
                key: key.clone(),
                scheduler,
                persistent,
                servers,
            })
        })
}

fn gen_table() -> impl Strategy<Value = Vec<GenService>> {
    (0usize..6).prop_flat_map(|n| (0..n).map(gen_service).collect::<Vec<_>>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Issue 15, section 2: the same rules, loaded from a TOML file or given to uvsadm,
    /// make the same table: a DR or tunnel server takes the service's port, a server
    /// without a port the service's port, on both paths (one normalisation, the
    /// table's); `-S -n` says so byte for byte.
    #[test]
    fn a_table_loaded_from_toml_saves_as_the_same_rules_given_to_uvsadm(services in gen_table()) {
        let text: String = services.iter().map(GenService::toml).collect();
        let config = match uvs::config::schema::parse(&text, std::path::Path::new("t.toml")) {
            Ok(c) => c,
            Err(p) => return Err(TestCaseError::fail(format!("{p}\n{text}"))),
        };
        let from_file = LocalBackend::new(Box::new(UnicastOnly));
        let commands = uvs::config::plan::plan(
            &config,
            &from_file.table.snapshot(),
            &uvs::config::plan::Owned::default(),
        );
        prop_assert!(from_file.table.apply_all(&commands).is_ok(), "{}", text);
        let mut from_file = from_file;

        let mut from_uvsadm = LocalBackend::new(Box::new(UnicastOnly));
        for line in services.iter().flat_map(GenService::commands) {
            let r = run(&mut from_uvsadm, &argv(&line), "");
            prop_assert_eq!(r.code, 0, "{}: {}", line, r.stderr);
        }
        let saved = save(&mut from_file);
        prop_assert_eq!(&saved, &save(&mut from_uvsadm), "{}", text);
        // And what the file made comes back from its own save.
        prop_assert_eq!(run(&mut from_file, &argv("-C"), "").code, 0);
        prop_assert_eq!(run(&mut from_file, &argv("-R"), &saved).code, 0);
        prop_assert_eq!(save(&mut from_file), saved);
    }
}
