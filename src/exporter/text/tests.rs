//! The text writer on a small fixed table, byte for byte (`sample.prom`): a TCP service,
//! an fwmark group and an SCTP service (which node_exporter's series leave out), with
//! counters, connect times, a health check, a configuration file, the endpoint's resets
//! and a version label that needs escaping. (The escaping and numbers themselves are tested beside `format`.)

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::*;
use crate::exporter::{BackendHealth, ConfigReloads};
use crate::table::admission::ClientLimits;
use crate::table::{Command, Family, ServerConfig, ServiceConfig, UnicastOnly};

fn service(key: ServiceKey) -> Command {
    Command::AddService(ServiceConfig::new(key, "rr"))
}

fn server(service: ServiceKey, addr: &str, port: u16, weight: i32) -> Command {
    Command::AddServer {
        service,
        server: ServerConfig::masq(SocketAddr::new(addr.parse().unwrap(), port), weight),
    }
}

const TCP: ServiceKey = ServiceKey::Inet {
    protocol: Protocol::Tcp,
    addr: IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
    port: 80,
};
const FWM: ServiceKey = ServiceKey::Fwmark {
    mark: 0x1a,
    family: Family::Inet,
};
const SCTP: ServiceKey = ServiceKey::Inet {
    protocol: Protocol::Sctp,
    addr: IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
    port: 9,
};

fn table() -> Table {
    let mut t = Table::new();
    // The TCP service has a queue, its server a connection limit; it takes PROXY
    // headers.
    let mut queued = ServiceConfig::new(TCP, "rr");
    queued.options.accept_proxy = Some(crate::table::AcceptProxy::V2);
    // And an access list, as every service has the global one.
    let access = |allow: &[&str], deny: &[&str]| {
        let parse = |v: &[&str]| v.iter().map(|c| c.parse().unwrap()).collect();
        Some(std::sync::Arc::new(
            crate::table::admission::AccessList::new(parse(allow), parse(deny)),
        ))
    };
    queued.options.admission.access = access(&["127.0.0.0/8"], &["127.0.0.66/32", "127.0.0.67/32"]);
    // And per-client limits; the global limits too.
    let own_limits = ClientLimits {
        connections_per_source: 4,
        ..ClientLimits::default()
    };
    queued.options.admission.limits = Some(own_limits);
    let global_limits = ClientLimits {
        flows_per_source: 8,
        ..ClientLimits::default()
    };
    // And source addresses with ports (`table::source`).
    queued.options.source = Some(std::sync::Arc::new(crate::table::source::Source::new(
        crate::table::source::SourceConfig {
            addresses: vec![crate::table::source::AddrRange {
                first: "127.0.0.2".parse().unwrap(),
                last: "127.0.0.3".parse().unwrap(),
            }],
            ports: Some(crate::table::source::PortRange {
                low: 20000,
                high: 29999,
            }),
        },
    )));
    queued.options.queue = Some(crate::table::QueueOptions {
        length: std::num::NonZeroU32::new(8).unwrap(),
        timeout_ms: 5000,
    });
    let mut limited = ServerConfig::masq(SocketAddr::new("127.0.0.2".parse().unwrap(), 8080), 3);
    limited.options.max_connections = 2;
    for command in [
        Command::AddService(queued),
        Command::AddServer {
            service: TCP,
            server: limited,
        },
        Command::AddService(ServiceConfig {
            options: crate::table::ServiceOptions {
                ejection: Some(crate::table::ejection::EjectionConfig {
                    failures: 3,
                    base_time_ms: 30_000,
                    max_share_permille: 500,
                    max_time_ms: 0,
                }),
                ..Default::default()
            },
            ..ServiceConfig::new(FWM, "rr")
        }),
        server(FWM, "127.0.0.3", 0, 1),
        service(SCTP),
        server(SCTP, "127.0.0.4", 9, 0),
        Command::SetAdmission(crate::table::Admission {
            access: access(&[], &["10.0.0.0/8"]),
            limits: Some(global_limits),
            ..Default::default()
        }),
    ] {
        t.apply(&command, &UnicastOnly).unwrap().carry_out();
    }
    let tcp = t.service(&TCP).unwrap();
    tcp.state.stats.add_conn();
    tcp.state.stats.add_in(3, 120);
    tcp.state.stats.add_out(2, 4000);
    tcp.state.retries.store(1, Relaxed);
    tcp.state.source_port_exhausted.store(6, Relaxed);
    tcp.state.source_address_unavailable.store(7, Relaxed);
    let rs = &tcp.servers[0].state;
    rs.stats.add_conn();
    rs.stats.add_in(3, 120);
    rs.stats.add_out(2, 4000);
    rs.active_conns.store(1, Relaxed);
    rs.connect_failures.refused.store(2, Relaxed);
    rs.connect_failures.source.store(3, Relaxed);
    rs.connect_latency.record(Duration::from_micros(300));
    rs.connect_latency.record(Duration::from_secs(7));
    tcp.state.queue.queued.store(3, Relaxed);
    tcp.state.queue.served.store(2, Relaxed);
    tcp.state.queue.timed_out.store(1, Relaxed);
    tcp.state.queue.refused.store(4, Relaxed);
    tcp.state.queue.wait_ms.store(1500, Relaxed);
    tcp.state.admission.proxy_rejected.store(5, Relaxed);
    // Two refused by the first deny rule, one by none of the allow list; none by the
    // second rule (no series); one by the global list.
    let list = tcp.options.admission.access.as_ref().unwrap();
    for client in ["127.0.0.66", "127.0.0.66", "10.1.1.1"] {
        list.count(list.check(client.parse().unwrap()));
    }
    let global = t.admission().access.as_ref().unwrap();
    global.count(global.check("10.1.1.1".parse().unwrap()));
    tcp.state.admission.refused_access.store(4, Relaxed);
    tcp.state.admission.refused_limits.store(2, Relaxed);
    let client = |last| IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, last));
    let (connection, flow) = (
        crate::table::sources::Kind::Connection,
        crate::table::sources::Kind::Flow,
    );
    let _ = (tcp.state.sources.get(&own_limits)).admit(&own_limits, client(9), connection, 1);
    let global = t.admission_state();
    for last in [9, 10] {
        let _ = (global.sources.get(&global_limits)).admit(&global_limits, client(last), flow, 1);
    }
    global.counts.refused_limits.store(1, Relaxed);
    let fwm = t.service(&FWM).unwrap();
    fwm.state.unavailable.store(5, Relaxed);
    fwm.servers[0].state.inactive_conns.store(4, Relaxed);
    fwm.servers[0].state.persistent_conns.store(1, Relaxed);
    fwm.servers[0].state.ejection.failed(1);
    // A slow-start window, not ramping: its share is the whole.
    fwm.servers[0].state.slow_start.set_window(30_000);
    t.totals().add_conn();
    t
}

#[test]
fn a_small_table_is_written_exactly() {
    let table = table();
    let health = vec![BackendHealth {
        service: TCP,
        server: ServerKey {
            addr: "127.0.0.2".parse().unwrap(),
            port: 8080,
        },
        up: true,
        failures: 0,
        last_duration_ms: 12,
        pending: false,
        suspended: true,
        last_check: None,
        last_error: None,
    }];
    let quorum = vec![crate::exporter::ServiceQuorum {
        service: TCP,
        up: false,
        live: 3,
    }];
    let config = ConfigReloads {
        applied_at: 1_700_000_000,
        reloads: 2,
        refused: 1,
        last_applied: true,
        path: "uvs.toml".into(),
        last_error: None,
        groups: Vec::new(),
    };
    let daemon = State {
        health,
        quorum,
        udp_flows: 0,
        udp_flows_max: 10_000,
        udp_flows_dropped: 0,
        persistence_templates: 1,
        connections_open: 1,
        descriptors: Some(DescriptorStatus {
            open_files: 1024,
            reserved: 232,
            control_clients: 64,
            metrics_connections: 64,
            health_probes: 32,
            limit: 792,
            used: 6,
            max_connections: Some(100),
            connections: 1,
            pauses: 3,
        }),
        templates_max: 1 << 20,
        templates_evicted: 2,
        templates_not_made: 0,
        udp: UdpAdmissionStatus {
            unreplied_timeout_ms: 5000,
            per_source: Some(20),
            refused_per_source: 7,
            refused_descriptors: 0,
            refused_socket: 0,
            evicted: 11,
            evicted_answered: 5,
            unreplied_expired: 13,
            oversized: 0,
        },
        config: Some(config),
        sync_daemons: [("backup".to_string(), crate::sync::counters::DaemonState::Up)].into(),
        sync: Some(crate::sync::counters::SyncStatus {
            sent_messages: 4,
            sent_entries: 96,
            received_messages: 2,
            received_entries: 30,
            dropped: [("foreign_syncid".to_string(), 1)].into(),
            synced_connections: 12,
            daemons: [("backup".to_string(), crate::sync::counters::DaemonState::Up)].into(),
            ..Default::default()
        }),
    };
    let sources = Sources {
        table: &table,
        daemon: &daemon,
        clients_dropped: crate::exporter::drops::DropCounts {
            evicted: 4,
            head_timeout: 3,
            bad_request: 1,
            write_timeout: 2,
            stale_body: 9,
        },
        version: "0.1.0 \"a\\b\"\nc",
        commit: "0123456789ab",
    };
    let mut out = BodyWriter::new();
    write(&sources, &mut out);
    let text = String::from_utf8(out.finish().to_vec()).unwrap();
    let expected = include_str!("sample.prom");
    // UVS_WRITE_SAMPLE=PATH writes what was written, to compare with the sample.
    if let Ok(path) = std::env::var("UVS_WRITE_SAMPLE") {
        std::fs::write(path, &text).unwrap();
    }
    if text != expected {
        for (i, (got, want)) in text.lines().zip(expected.lines()).enumerate() {
            assert_eq!(got, want, "line {}", i + 1);
        }
        assert_eq!(text, expected);
    }
}

/// `sample.prom` holds every family (the test above keeps it equal to what `write`
/// writes): its families are those of `names`, in the same order, so a name cannot be
/// added there without being rendered, nor rendered without being added.
#[test]
fn families_are_written_in_the_order_of_the_names() {
    let written: Vec<&str> = include_str!("sample.prom")
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    assert_eq!(written, names::ALL);
}

/// A HELP text that points at another family names one that exists.
#[test]
fn names_quoted_in_help_texts_exist() {
    let help = include_str!("sample.prom")
        .lines()
        .filter_map(|line| line.strip_prefix("# HELP "))
        // The family's own name, then its text.
        .filter_map(|rest| rest.split_once(' ').map(|(_, text)| text));
    let mut quoted = 0;
    for text in help {
        let words = text.split(|c: char| !(c.is_ascii_lowercase() || c == '_'));
        for word in words.filter(|w| w.starts_with("uvs_") || w.starts_with("node_ipvs_")) {
            assert!(names::ALL.contains(&word), "{word} in HELP {text:?}");
            quoted += 1;
        }
    }
    assert!(
        quoted > 0,
        "uvs_udp_flows_refused_total's HELP names another family"
    );
}

/// Kernel mode: the kernel's threads do the syncing, so only whether each of the
/// table's daemons runs is uvs's to say (a refused start: 0), and no counters.
#[test]
fn kernel_mode_says_whether_the_sync_daemons_run_and_nothing_else_of_them() {
    let table = Table::new();
    let down = crate::sync::counters::DaemonState::Down {
        reason: "Network is unreachable".into(),
    };
    let daemon = State {
        sync_daemons: [
            ("backup".to_string(), crate::sync::counters::DaemonState::Up),
            ("master".to_string(), down),
        ]
        .into(),
        sync: None,
        ..State::default()
    };
    let sources = Sources {
        table: &table,
        daemon: &daemon,
        clients_dropped: crate::exporter::drops::DropCounts::default(),
        version: "0.1.0",
        commit: "0123456789ab",
    };
    let mut out = BodyWriter::new();
    write(&sources, &mut out);
    let text = String::from_utf8(out.finish().to_vec()).unwrap();
    let sync: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("uvs_sync_"))
        .collect();
    assert_eq!(
        sync,
        [
            "uvs_sync_daemon_up{role=\"backup\"} 1",
            "uvs_sync_daemon_up{role=\"master\"} 0"
        ]
    );
}
