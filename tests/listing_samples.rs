//! The reference session's traffic-phase listings, reproduced byte for byte: counters in
//! the hundreds of millions (the `K` suffix), rates, active and inactive connections,
//! persistence templates, the connection table (`-L -c`), and names (`localhost`,
//! `http-alt`, `tproxy`, `[localhost]`).
//!
//! uvs cannot replay the kernel's traffic, so the table is rebuilt by replaying the
//! session's commands (which gives the kernel's service order, cycles of ipvsadm's
//! comparator included), and the numbers each listing showed are put into the entries.
//! What is tested is everything uvs prints around those numbers.

mod common;

use std::collections::HashMap;
use std::io::Cursor;
use std::net::IpAddr;

use common::{fixture, text};
use uvs::adm::backend::{Backend, BackendError, LocalBackend};
use uvs::adm::names::{NameSources, NoNames, SystemNames};
use uvs::adm::session::Session;
use uvs::table::{Command, ConnEntry, HostInterfaces, Info, ServiceEntry, ServiceKey, Timeouts};

fn golden(name: &str) -> String {
    std::fs::read_to_string(fixture(&format!("golden/{name}"))).unwrap()
}

fn argv(words: &[&str]) -> Vec<String> {
    std::iter::once("ipvsadm")
        .chain(words.iter().copied())
        .map(String::from)
        .collect()
}

fn session_run(
    b: &mut dyn Backend,
    names: &mut dyn uvs::adm::names::Names,
    args: &[String],
    input: &str,
) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut stdin = Cursor::new(input.as_bytes().to_vec());
    let code = Session {
        program: "ipvsadm".into(),
        backend: b,
        names,
        stdout: &mut out,
        stderr: &mut err,
        stdin: &mut stdin,
        posix: false,
    }
    .run(args);
    (code, text(&out), text(&err))
}

/// The table as it was when the traffic listings were captured.
fn traffic_phase_table() -> LocalBackend {
    // The host's interfaces decide, as in the reference run (127.255.255.255 is refused).
    let mut b = LocalBackend::new(Box::new(HostInterfaces));
    for row in golden("INDEX.tsv").lines() {
        let mut f = row.splitn(3, '\t');
        let (name, _, line) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        if name == "traffic_gen_http" {
            break;
        }
        let skipped = ["env_", "empty_proc_", "proc_", "daemon_"];
        if skipped.iter().any(|p| name.starts_with(p)) || name.contains("proc_net") {
            continue;
        }
        match name {
            "restore_roundtrip" => {
                let (_, saved, _) = session_run(&mut b, &mut NoNames, &argv(&["-S", "-n"]), "");
                session_run(&mut b, &mut NoNames, &argv(&["-C"]), "");
                session_run(&mut b, &mut NoNames, &argv(&["-R"]), &saved);
            }
            "restore_bad_line" => {
                let input = "-A -t 172.20.0.50:80 -s rr\n-A -t 172.20.0.50:80 -s rr\n-X bogus\n";
                session_run(&mut b, &mut NoNames, &argv(&["-R"]), input);
            }
            _ => {
                let words: Vec<&str> = line.split_whitespace().skip(1).collect();
                session_run(&mut b, &mut NoNames, &argv(&words), "");
            }
        }
    }
    b
}

/// "TCP 127.0.0.10:80", "FWM 6 IPv6": a service's first column in `-L -n`.
fn service_label(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => format!("{} {}", protocol.label(), addr_port(addr, *port)),
        ServiceKey::Fwmark { mark, family } => {
            let six = if *family == uvs::table::Family::Inet6 {
                " IPv6"
            } else {
                ""
            };
            format!("FWM {}{six}", *mark as i32)
        }
    }
}

fn addr_port(addr: &IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// The numbers of one golden listing: service label -> numbers, and
/// (service label, server) -> numbers.
#[derive(Default)]
struct Numbers {
    services: HashMap<String, Vec<u64>>,
    servers: HashMap<(String, String), Vec<String>>,
}

/// Reads a numeric (`-n`) listing. Service lines keep their trailing numbers; server
/// lines keep every column after the address.
fn numbers(listing: &str) -> Numbers {
    let mut n = Numbers::default();
    let mut current = String::new();
    for line in listing.lines().skip(1) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"->") {
            if words.len() > 2 {
                n.servers.insert(
                    (current.clone(), words[1].to_string()),
                    words[2..].iter().map(|w| w.to_string()).collect(),
                );
            }
        } else if matches!(words.first(), Some(&("TCP" | "UDP" | "SCTP" | "FWM"))) {
            let label_len = if words[0] == "FWM" && words.get(2) == Some(&"IPv6") {
                3
            } else {
                2
            };
            current = words[..label_len].join(" ");
            let nums = words[label_len..]
                .iter()
                .filter_map(|w| w.parse().ok())
                .collect();
            n.services.insert(current.clone(), nums);
        }
    }
    n
}

fn counters(v: &[u64]) -> uvs::stats::Counters {
    uvs::stats::Counters {
        conns: v[0],
        inpkts: v[1],
        outpkts: v[2],
        inbytes: v[3],
        outbytes: v[4],
    }
}

fn rates(v: &[u64]) -> uvs::stats::Rates {
    uvs::stats::Rates {
        cps: v[0],
        inpps: v[1],
        outpps: v[2],
        inbps: v[3],
        outbps: v[4],
    }
}

fn parse_nums(v: &[String]) -> Vec<u64> {
    v.iter().filter_map(|w| w.parse().ok()).collect()
}

/// The entries with the numbers of the traffic phase.
fn traffic_entries(mut b: LocalBackend) -> Vec<ServiceEntry> {
    let stats = numbers(&golden("traffic_L_n_exact_stats.out"));
    let rate = numbers(&golden("traffic_L_n_exact_rate.out"));
    let conns = numbers(&golden("traffic_L_n.out"));
    let persist = numbers(&golden("traffic_L_n_persistent_conn.out"));
    let mut entries = b.services().unwrap();
    for e in &mut entries {
        let label = service_label(&e.key);
        e.stats.counters = counters(&stats.services[&label]);
        e.stats.rates = rates(&rate.services[&label]);
        for s in &mut e.servers {
            let key = (label.clone(), addr_port(&s.addr, s.port));
            let st = stats
                .servers
                .get(&key)
                .unwrap_or_else(|| panic!("no numbers for {key:?}"));
            s.stats.counters = counters(&parse_nums(st));
            let r = &rate.servers[&key];
            s.stats.rates = rates(&parse_nums(r));
            // "Masq 1 1 4": forward, weight, active, inactive.
            let c = &conns.servers[&key];
            s.active_conns = c[2].parse().unwrap();
            s.inactive_conns = c[3].parse().unwrap();
            s.persistent_conns = persist.servers[&key][1].parse().unwrap();
        }
    }
    entries
}

/// Connection entries read back from a `-L -c` listing; addresses from `numeric` (the
/// `-n` listing of the same table), expiry times from `own`.
fn connections(numeric: &str, own: &str) -> Vec<ConnEntry> {
    let parse = |s: &str| -> (IpAddr, u16) {
        let (a, p) = s.rsplit_once(':').unwrap();
        (
            a.trim_matches(['[', ']']).parse().unwrap(),
            p.parse().unwrap(),
        )
    };
    numeric
        .lines()
        .skip(2)
        .zip(own.lines().skip(2))
        .map(|(n, o)| {
            let w: Vec<&str> = n.split_whitespace().collect();
            let expire = o.split_whitespace().nth(1).unwrap();
            let (m, s) = expire.split_once(':').unwrap();
            let (c, v, d) = (parse(w[3]), parse(w[4]), parse(w[5]));
            ConnEntry {
                protocol: w[0].into(),
                client_addr: c.0,
                client_port: c.1,
                virtual_addr: v.0,
                virtual_port: v.1,
                dest_addr: d.0,
                dest_port: d.1,
                state: w[2].into(),
                expires: m.parse::<u32>().unwrap() * 60 + s.parse::<u32>().unwrap(),
                pe_name: None,
                pe_data: None,
            }
        })
        .collect()
}

/// Serves fixed entries, as the daemon would serve the traffic phase's table.
struct Fixed {
    services: Vec<ServiceEntry>,
    conns: Vec<ConnEntry>,
}

impl Backend for Fixed {
    fn info(&mut self) -> Result<Info, BackendError> {
        Ok(Info::default())
    }
    fn services(&mut self) -> Result<Vec<ServiceEntry>, BackendError> {
        Ok(self.services.clone())
    }
    fn service(&mut self, key: &ServiceKey) -> Result<ServiceEntry, BackendError> {
        Ok(self
            .services
            .iter()
            .find(|e| e.key == *key)
            .cloned()
            .unwrap())
    }
    fn timeouts(&mut self) -> Result<Timeouts, BackendError> {
        Ok(Timeouts::default())
    }
    fn connections(&mut self) -> Result<Vec<ConnEntry>, BackendError> {
        Ok(self.conns.clone())
    }
    fn listeners(&mut self) -> Result<Vec<uvs::table::ListenRule>, BackendError> {
        Ok(Vec::new())
    }
    fn daemons(&mut self) -> Result<Vec<uvs::table::SyncDaemon>, BackendError> {
        Ok(Vec::new())
    }
    fn apply(&mut self, _: &Command) -> Result<(), BackendError> {
        unreachable!("listings only")
    }
}

fn names() -> SystemNames {
    SystemNames::new(NameSources {
        hosts: fixture("fixtures/etc/hosts"),
        services: fixture("fixtures/etc/services"),
        resolv_conf: "/nonexistent/resolv.conf".into(),
        // No nameserver at all: names come from the files only, as in the reference VM.
        nameservers: Some(Vec::new()),
    })
}

#[test]
fn traffic_listings_match_ipvsadm() {
    let entries = traffic_entries(traffic_phase_table());
    let numeric_c = golden("traffic_L_n_c.out");
    let mut failures = Vec::new();
    for (file, args) in [
        ("traffic_L_n", &["-L", "-n"][..]),
        ("traffic_L", &["-L"]),
        ("traffic_L_n_stats", &["-L", "-n", "--stats"]),
        ("traffic_L_stats", &["-L", "--stats"]),
        (
            "traffic_L_n_exact_stats",
            &["-L", "-n", "--exact", "--stats"],
        ),
        ("traffic_L_n_rate", &["-L", "-n", "--rate"]),
        ("traffic_L_n_exact_rate", &["-L", "-n", "--exact", "--rate"]),
        (
            "traffic_L_n_persistent_conn",
            &["-L", "-n", "--persistent-conn"],
        ),
        ("traffic_L_n_thresholds", &["-L", "-n", "--thresholds"]),
        (
            "traffic_L_n_t_svc_stats",
            &["-L", "-n", "-t", "127.0.0.10:80", "--stats"],
        ),
        ("traffic_L_n_c", &["-L", "-n", "-c"]),
        ("traffic_L_c", &["-L", "-c"]),
        (
            "traffic_L_n_c_persistent_conn",
            &["-L", "-n", "-c", "--persistent-conn"],
        ),
        ("traffic_L_n_c_exact", &["-L", "-n", "-c", "--exact"]),
    ] {
        let want = golden(&format!("{file}.out"));
        let mut backend = Fixed {
            services: entries.clone(),
            conns: if args.contains(&"-c") {
                connections(&numeric_c, &want)
            } else {
                Vec::new()
            },
        };
        let (code, got, err) = session_run(&mut backend, &mut names(), &argv(args), "");
        if code != 0 || got != want {
            failures.push(format!(
                "== {file}: exit {code} {err}\n--- ipvsadm\n{want}--- uvsadm\n{got}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
