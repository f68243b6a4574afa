//! The Prometheus text exposition format (version 0.0.4), written straight from one table
//! snapshot into a chunked [`BodyWriter`]: node_exporter's `node_ipvs_*` series with its
//! exact names, HELP texts and labels, uvs's own `uvs_*` series and the connect-latency
//! histograms. `exporter::render` calls [`write`], on the render thread, once per scrape
//! (or fewer: the endpoint shares one body between scrapers).
//!
//! Each family is one walk over the snapshot, so its samples sit under one HELP/TYPE
//! header and nothing per series is kept: labels are built on the stack and written out
//! at once (`format` writes the line shapes). No exposition crate on purpose:
//! `metrics-exporter-prometheus` (used before) builds a registry of every series with
//! owned label strings at each scrape, 3.7 GB for 100 000 services, while the format
//! itself is four line shapes (`# HELP`, `# TYPE`, a sample with labels, one without).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::body::BodyWriter;
use super::drops::DropCounts;
use super::source::{BackendHealth, ConfigReloads};
use crate::descriptors::DescriptorStatus;
use crate::proxy::udp::admission::UdpAdmissionStatus;
use crate::stats::{Counters, LATENCY_BOUNDS};
use crate::table::{Protocol, RealServer, ServerKey, Service, ServiceKey, Table};

mod format;

use format::{Header, Kind, Labels, Number, Value, family, write_float, write_number, write_pairs};

/// A family read from one kind of item: its name, its HELP text, an item's value.
type Reading<T> = (&'static str, &'static str, fn(&T) -> Number);

/// Everything one exposition is made of, read by the caller at one moment.
#[derive(Debug, Clone)]
pub struct Sources<'a> {
    /// The table snapshot: services, real servers, their live counters.
    pub table: &'a Table,
    /// What the health checks know, one entry per checked real server.
    pub health: &'a [BackendHealth],
    /// UDP flows open, the cap on them, and new flows dropped at the cap.
    pub udp_flows: u64,
    pub udp_flows_max: u64,
    pub udp_flows_dropped: u64,
    /// Persistence templates held.
    pub persistence_templates: u64,
    /// TCP connections being proxied.
    pub connections_open: u64,
    /// The open-files limit and its split (userspace mode).
    pub descriptors: Option<DescriptorStatus>,
    /// New UDP flows refused, unanswered flows ended, by reason.
    pub udp: UdpAdmissionStatus,
    /// The cap on persistence templates, templates ended to make room, clients
    /// scheduled without one.
    pub templates_max: u64,
    pub templates_evicted: u64,
    pub templates_not_made: u64,
    /// The configuration file's fate, when the daemon runs from one.
    pub config: Option<&'a ConfigReloads>,
    /// The metrics endpoint's own clients it reset, by reason.
    pub clients_dropped: DropCounts,
    /// The `version` label of `uvs_build_info`.
    pub version: &'a str,
}

/// node_exporter's ipvs collector: names and HELP texts, exactly.
const NODE_TOTALS: [(&str, &str); 5] = [
    (
        "node_ipvs_connections_total",
        "The total number of connections made.",
    ),
    (
        "node_ipvs_incoming_packets_total",
        "The total number of incoming packets.",
    ),
    (
        "node_ipvs_outgoing_packets_total",
        "The total number of outgoing packets.",
    ),
    (
        "node_ipvs_incoming_bytes_total",
        "The total amount of incoming data.",
    ),
    (
        "node_ipvs_outgoing_bytes_total",
        "The total amount of outgoing data.",
    ),
];

/// The five IPVS counters of uvs's own per-service and per-server series.
const COUNTER_SUFFIXES: [(&str, &str); 5] = [
    ("connections_total", "Connections (UDP: flows) scheduled"),
    (
        "incoming_packets_total",
        "Packets (UDP: datagrams) from clients",
    ),
    (
        "outgoing_packets_total",
        "Packets (UDP: datagrams) to clients",
    ),
    ("incoming_bytes_total", "Payload bytes from clients"),
    ("outgoing_bytes_total", "Payload bytes to clients"),
];

const LATENCY: &str = "uvs_backend_connect_duration_seconds";
const LATENCY_HELP: &str = "How long successful TCP connects to the real server took.";

/// Writes the whole exposition of `sources` to `out`.
pub fn write(sources: &Sources<'_>, out: &mut BodyWriter) {
    // Once, not per family: the kernel's dump order costs a sort.
    let services = sources.table.services();
    node_series(sources.table, &services, out);
    service_series(&services, out);
    backend_series(&services, out);
    latency_series(&services, out);
    health_series(sources.health, out);
    daemon_series(sources, out);
}

fn counter_values(c: &Counters) -> [u64; 5] {
    [c.conns, c.inpkts, c.outpkts, c.inbytes, c.outbytes]
}

/// Every real server of `services`, with its service, in order.
fn servers<'s>(
    services: &'s [&'s Arc<Service>],
) -> impl Iterator<Item = (&'s Service, &'s RealServer)> + 's {
    services
        .iter()
        .flat_map(|s| s.servers.iter().map(move |r| (s.as_ref(), r)))
}

fn node_series(table: &Table, services: &[&Arc<Service>], out: &mut BodyWriter) {
    let totals = counter_values(&table.totals().totals());
    for ((name, help), value) in NODE_TOTALS.iter().zip(totals) {
        family(
            out,
            name,
            help,
            Kind::Counter,
            [(Labels::NONE, Number::Int(value))],
        );
    }
    let backends: [Reading<RealServer>; 3] = [
        (
            "node_ipvs_backend_connections_active",
            "The current active connections by local and remote address.",
            |r| Number::Int(r.state.active().into()),
        ),
        (
            "node_ipvs_backend_connections_inactive",
            "The current inactive connections by local and remote address.",
            |r| Number::Int(r.state.inactive().into()),
        ),
        (
            "node_ipvs_backend_weight",
            "The current backend weight by local and remote address.",
            |r| Number::Int(r.weight.into()),
        ),
    ];
    for (name, help, value) in backends {
        let samples =
            servers(services).filter_map(|(s, r)| Some((node_labels(&s.key, &r.key())?, value(r))));
        family(out, name, help, Kind::Gauge, samples);
    }
}

fn service_series(services: &[&Arc<Service>], out: &mut BodyWriter) {
    for (i, (suffix, help)) in COUNTER_SUFFIXES.iter().enumerate() {
        let samples = services.iter().map(|s| {
            let value = counter_values(&s.state.stats.totals())[i];
            (service_labels(&s.key), Number::Int(value))
        });
        let name = format!("uvs_service_{suffix}");
        let help = format!("{help}, per virtual service.");
        family(out, &name, &help, Kind::Counter, samples);
    }
    let others: [Reading<Service>; 3] = [
        (
            "uvs_service_connections_retried_total",
            "Connections retried on another real server after a failed connect.",
            |s| Number::Int(s.state.retries.load(Relaxed)),
        ),
        (
            "uvs_service_unavailable_total",
            "Connections reset (UDP: datagrams dropped) for want of an available real server.",
            |s| Number::Int(s.state.unavailable.load(Relaxed)),
        ),
        (
            "uvs_service_udp_flows_dropped_total",
            "New UDP flows dropped because the flow table was full.",
            |s| Number::Int(s.state.flows_dropped.load(Relaxed)),
        ),
    ];
    for (name, help, value) in others {
        let samples = services.iter().map(|s| (service_labels(&s.key), value(s)));
        family(out, name, help, Kind::Counter, samples);
    }
}

fn backend_series(services: &[&Arc<Service>], out: &mut BodyWriter) {
    for (i, (suffix, help)) in COUNTER_SUFFIXES.iter().enumerate() {
        let samples = servers(services).map(|(s, r)| {
            let value = counter_values(&r.state.stats.totals())[i];
            (server_labels(&s.key, &r.key()), Number::Int(value))
        });
        let name = format!("uvs_backend_{suffix}");
        let help = format!("{help}, per real server.");
        family(out, &name, &help, Kind::Counter, samples);
    }
    let gauges: [Reading<RealServer>; 4] = [
        (
            "uvs_backend_connections_active",
            "Active connections (IPVS ActiveConn) per real server.",
            |r| Number::Int(r.state.active().into()),
        ),
        (
            "uvs_backend_connections_inactive",
            "Inactive connections and UDP flows (IPVS InActConn) per real server.",
            |r| Number::Int(r.state.inactive().into()),
        ),
        (
            "uvs_backend_connections_persistent",
            "Persistence templates (IPVS PersistConn) per real server.",
            |r| Number::Int(r.state.persistent_conns.load(Relaxed).into()),
        ),
        (
            "uvs_backend_weight",
            "Current weight per real server.",
            |r| Number::Int(r.weight.into()),
        ),
    ];
    for (name, help, value) in gauges {
        let samples = servers(services).map(|(s, r)| (server_labels(&s.key, &r.key()), value(r)));
        family(out, name, help, Kind::Gauge, samples);
    }
    let failures = servers(services).flat_map(|(s, r)| {
        let labels = server_labels(&s.key, &r.key());
        let f = &r.state.connect_failures;
        [
            ("refused", &f.refused),
            ("timeout", &f.timeout),
            ("other", &f.other),
            ("loop", &f.looped),
        ]
        .map(|(reason, n)| {
            (
                labels.with("reason", Value::Text(reason)),
                Number::Int(n.load(Relaxed)),
            )
        })
    });
    family(
        out,
        "uvs_backend_connect_failures_total",
        "Failed connects to the real server (UDP: flows ended by ICMP errors), by reason; \
         loop: not tried, the server being the director's own listen address.",
        Kind::Counter,
        failures,
    );
}

/// The connect-latency histograms of the TCP real servers (fwmark groups included:
/// their TCP addresses connect too).
fn latency_series(services: &[&Arc<Service>], out: &mut BodyWriter) {
    // The bounds' text, once per scrape (16 short strings).
    let le: Vec<String> = LATENCY_BOUNDS
        .iter()
        .chain(&[f64::INFINITY])
        .map(|b| {
            let mut text = String::new();
            let _ = write_float(&mut text, *b);
            text
        })
        .collect();
    let mut header = Header::new(LATENCY, LATENCY_HELP, Kind::Histogram);
    // One server's label text, reused by its 18 lines.
    let mut labels = String::new();
    for (s, r) in servers(services) {
        if matches!(
            s.key,
            ServiceKey::Inet {
                protocol: Protocol::Udp | Protocol::Sctp,
                ..
            }
        ) {
            continue;
        }
        header.open(out);
        labels.clear();
        write_pairs(&mut labels, &server_labels(&s.key, &r.key()));
        let view = r.state.connect_latency.view();
        let mut cumulative = 0u64;
        for (count, le) in view.buckets.iter().zip(&le) {
            cumulative = cumulative.saturating_add(*count);
            out.push(LATENCY.as_bytes());
            out.push(b"_bucket{");
            out.push(labels.as_bytes());
            out.push(b",le=\"");
            out.push(le.as_bytes());
            out.push(b"\"} ");
            out.push_u64(cumulative);
            out.push(b"\n");
        }
        for (suffix, value) in [
            ("_sum{", Number::Float(view.sum_seconds)),
            ("_count{", Number::Int(cumulative)),
        ] {
            out.push(LATENCY.as_bytes());
            out.push(suffix.as_bytes());
            out.push(labels.as_bytes());
            out.push(b"} ");
            write_number(out, value);
            out.push(b"\n");
        }
    }
    header.close(out);
}

fn health_series(health: &[BackendHealth], out: &mut BodyWriter) {
    let gauges: [Reading<BackendHealth>; 3] = [
        (
            "uvs_backend_up",
            "1 while the health checks find the real server up, 0 while down.",
            |h| Number::Int(h.up.into()),
        ),
        (
            "uvs_backend_check_failures",
            "Failed health checks in a row.",
            |h| Number::Int(h.failures.into()),
        ),
        (
            "uvs_backend_check_duration_seconds",
            "How long the last health check took.",
            |h| Number::Float(h.last_duration_ms as f64 / 1000.0),
        ),
    ];
    for (name, help, value) in gauges {
        let samples = health
            .iter()
            .map(|h| (server_labels(&h.service, &h.server), value(h)));
        family(out, name, help, Kind::Gauge, samples);
    }
}

fn daemon_series(sources: &Sources<'_>, out: &mut BodyWriter) {
    let scalars = [
        (
            "uvs_udp_flows",
            "UDP flows open.",
            Kind::Gauge,
            sources.udp_flows,
        ),
        (
            "uvs_udp_flows_max",
            "The most UDP flows open at once (--max-udp-flows).",
            Kind::Gauge,
            sources.udp_flows_max,
        ),
        (
            "uvs_udp_flows_dropped_total",
            "New UDP flows dropped because the flow table was full, in all.",
            Kind::Counter,
            sources.udp_flows_dropped,
        ),
        (
            "uvs_persistence_templates",
            "Persistence templates held.",
            Kind::Gauge,
            sources.persistence_templates,
        ),
        (
            "uvs_persistence_templates_max",
            "The most persistence templates held at once (--max-templates).",
            Kind::Gauge,
            sources.templates_max,
        ),
        (
            "uvs_persistence_templates_evicted_total",
            "Persistence templates that controlled no connection, ended to make room.",
            Kind::Counter,
            sources.templates_evicted,
        ),
        (
            "uvs_persistence_templates_not_made_total",
            "Clients scheduled without a persistence template, every one being in use.",
            Kind::Counter,
            sources.templates_not_made,
        ),
        (
            "uvs_connections_open",
            "TCP connections being proxied.",
            Kind::Gauge,
            sources.connections_open,
        ),
    ];
    for (name, help, kind, value) in scalars {
        family(out, name, help, kind, [(Labels::NONE, Number::Int(value))]);
    }
    udp_admission_series(&sources.udp, out);
    if let Some(d) = &sources.descriptors {
        descriptor_series(d, out);
    }
    if let Some(c) = sources.config {
        family(
            out,
            "uvs_config_last_reload_successful",
            "1 if the last load or reload of the configuration file was applied.",
            Kind::Gauge,
            [(Labels::NONE, Number::Int(c.last_applied.into()))],
        );
        family(
            out,
            "uvs_config_last_reload_success_timestamp_seconds",
            "When the configuration file was last applied.",
            Kind::Gauge,
            [(Labels::NONE, Number::Int(c.applied_at))],
        );
        let reloads = [("applied", c.reloads), ("refused", c.refused)].map(|(result, n)| {
            (
                Labels::NONE.with("result", Value::Text(result)),
                Number::Int(n),
            )
        });
        family(
            out,
            "uvs_config_reloads_total",
            "Reloads of the configuration file, by result.",
            Kind::Counter,
            reloads,
        );
    }
    let dropped = sources.clients_dropped.by_reason().map(|(reason, n)| {
        (
            Labels::NONE.with("reason", Value::Text(reason)),
            Number::Int(n),
        )
    });
    family(
        out,
        "uvs_metrics_clients_dropped_total",
        "Clients of the metrics endpoint reset, by reason: evicted at the connection cap, \
         no request head in time (head_timeout) or no request at all (bad_request), the \
         response not taken in time (write_timeout), or still reading a body two newer \
         ones replaced (stale_body).",
        Kind::Counter,
        dropped,
    );
    family(
        out,
        "uvs_build_info",
        "1, labelled with the version of uvs.",
        Kind::Gauge,
        [(
            Labels::NONE.with("version", Value::Text(sources.version)),
            Number::Int(1),
        )],
    );
}

/// New UDP flows refused and unanswered flows ended, by reason.
fn udp_admission_series(u: &UdpAdmissionStatus, out: &mut BodyWriter) {
    let refused = [
        ("per_source", u.refused_per_source),
        ("descriptors", u.refused_descriptors),
        ("socket", u.refused_socket),
    ]
    .map(|(reason, n)| {
        (
            Labels::NONE.with("reason", Value::Text(reason)),
            Number::Int(n),
        )
    });
    family(
        out,
        "uvs_udp_flows_refused_total",
        "New UDP flows refused by the per-source limit, for want of descriptors, or \
         because their socket could not be made (a full table: uvs_udp_flows_dropped_total).",
        Kind::Counter,
        refused,
    );
    let evicted = [
        ("unanswered", u.evicted),
        ("answered_once", u.evicted_answered),
    ]
    .map(|(flow, n)| (Labels::NONE.with("flow", Value::Text(flow)), Number::Int(n)));
    family(
        out,
        "uvs_udp_flows_evicted_total",
        "UDP flows ended to make room for a new one in a full table: unanswered ones first, \
         then ones answered once that carried nothing since their first two seconds.",
        Kind::Counter,
        evicted,
    );
    family(
        out,
        "uvs_udp_flows_unanswered_expired_total",
        "UDP flows whose real server never answered, ended at the unreplied timeout.",
        Kind::Counter,
        [(Labels::NONE, Number::Int(u.unreplied_expired))],
    );
}

/// The open-files limit, its split, and what the data plane holds.
fn descriptor_series(d: &DescriptorStatus, out: &mut BodyWriter) {
    let gauges = [
        (
            "uvs_open_files_limit",
            "The daemon's open-files limit.",
            d.open_files,
        ),
        (
            "uvs_descriptors_reserved",
            "Descriptors kept for the control plane (uvsadm, metrics, health checks, the daemon).",
            d.reserved,
        ),
        (
            "uvs_data_plane_descriptors_max",
            "Descriptors the data plane may hold (the open-files limit less the reserve).",
            d.limit,
        ),
        (
            "uvs_data_plane_descriptors",
            "Descriptors the data plane holds: listeners, connections, pipes, UDP flows.",
            d.used,
        ),
    ];
    for (name, help, value) in gauges {
        family(
            out,
            name,
            help,
            Kind::Gauge,
            [(Labels::NONE, Number::Int(value))],
        );
    }
    if let Some(max) = d.max_connections {
        family(
            out,
            "uvs_connections_max",
            "The most TCP connections proxied at once (--max-connections).",
            Kind::Gauge,
            [(Labels::NONE, Number::Int(max))],
        );
    }
    family(
        out,
        "uvs_accept_pauses_total",
        "Times accepting TCP connections waited for descriptors or a connection to end.",
        Kind::Counter,
        [(Labels::NONE, Number::Int(d.pauses))],
    );
}

/// A service's part of the labels: proto, local address, port and mark, as node_exporter
/// writes them (an fwmark service: proto FWM, no address, port 0, the mark).
fn local(key: &ServiceKey) -> [Value<'static>; 4] {
    match *key {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => [
            Value::Text(protocol.label()),
            Value::Ip(addr),
            Value::Int(port.into()),
            Value::Text(""),
        ],
        ServiceKey::Fwmark { mark, .. } => [
            Value::Text("FWM"),
            Value::Text(""),
            Value::Int(0),
            Value::Mark(mark),
        ],
    }
}

/// uvs's labels of a service: proto, local_address, local_port, local_mark.
fn service_labels(key: &ServiceKey) -> Labels<'static> {
    let [proto, address, port, mark] = local(key);
    Labels::NONE
        .with("proto", proto)
        .with("local_address", address)
        .with("local_port", port)
        .with("local_mark", mark)
}

/// uvs's labels of a real server: its service's, then remote_address, remote_port.
fn server_labels(key: &ServiceKey, server: &ServerKey) -> Labels<'static> {
    service_labels(key)
        .with("remote_address", Value::Ip(server.addr))
        .with("remote_port", Value::Int(server.port.into()))
}

/// node_exporter's labels of a backend, in its order: local_address, local_port,
/// remote_address, remote_port, proto, local_mark. None for SCTP, which node_exporter
/// does not read.
fn node_labels(key: &ServiceKey, server: &ServerKey) -> Option<Labels<'static>> {
    if let ServiceKey::Inet {
        protocol: Protocol::Sctp,
        ..
    } = key
    {
        return None;
    }
    let [proto, address, port, mark] = local(key);
    Some(
        Labels::NONE
            .with("local_address", address)
            .with("local_port", port)
            .with("remote_address", Value::Ip(server.addr))
            .with("remote_port", Value::Int(server.port.into()))
            .with("proto", proto)
            .with("local_mark", mark),
    )
}

#[cfg(test)]
mod tests;
