//! Prometheus metrics, rendered from the running daemon at each scrape: node_exporter's
//! `node_ipvs_*` series with its exact names, HELP texts and labels (so dashboards built
//! for kernel IPVS work unchanged), and uvs's own `uvs_*` series. Every scrape builds
//! the exposition afresh from one table snapshot through the `metrics` facade into a
//! new `metrics-exporter-prometheus` recorder: values come from the table's monotonic
//! counters (never backwards, whatever `-Z` or reloads do), and the series of a deleted
//! service or server are gone from the very next scrape. The connect-latency histograms
//! are kept by the data plane as atomic buckets and written out here directly, since the
//! facade takes samples one at a time. Served by `http`.

pub mod http;

use std::fmt::Write as _;
use std::net::IpAddr;

use ::metrics::{Label, counter, describe_counter, describe_gauge, gauge, with_local_recorder};
use metrics_exporter_prometheus::PrometheusBuilder;

use crate::director::Director;
use crate::stats::{Counters, LATENCY_BOUNDS, LatencyView};
use crate::table::{Protocol, RealServer, ServerKey, Service, ServiceKey, Table};

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
const NODE_ACTIVE: &str = "node_ipvs_backend_connections_active";
const NODE_INACTIVE: &str = "node_ipvs_backend_connections_inactive";
const NODE_WEIGHT: &str = "node_ipvs_backend_weight";

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

fn counter_values(c: &Counters) -> [u64; 5] {
    [c.conns, c.inpkts, c.outpkts, c.inbytes, c.outbytes]
}

fn addr_text(addr: &IpAddr) -> String {
    addr.to_string()
}

/// node_exporter's labels of a backend, in its order: local_address, local_port,
/// remote_address, remote_port, proto, local_mark. None for SCTP, which node_exporter
/// does not read.
fn node_labels(service: &ServiceKey, server: &ServerKey) -> Option<Vec<Label>> {
    let (local_address, local_port, proto, mark) = match service {
        ServiceKey::Inet {
            protocol: Protocol::Sctp,
            ..
        } => return None,
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => (
            addr_text(addr),
            port.to_string(),
            protocol.label(),
            String::new(),
        ),
        ServiceKey::Fwmark { mark, .. } => {
            (String::new(), "0".into(), "FWM", format!("{mark:08X}"))
        }
    };
    Some(vec![
        Label::new("local_address", local_address),
        Label::new("local_port", local_port),
        Label::new("remote_address", addr_text(&server.addr)),
        Label::new("remote_port", server.port.to_string()),
        Label::new("proto", proto),
        Label::new("local_mark", mark),
    ])
}

/// uvs's labels of a service: proto, local_address, local_port, local_mark (as
/// node_exporter writes them, SCTP included).
fn service_labels(service: &ServiceKey) -> Vec<Label> {
    let (proto, local_address, local_port, mark) = match service {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => (
            protocol.label(),
            addr_text(addr),
            port.to_string(),
            String::new(),
        ),
        ServiceKey::Fwmark { mark, .. } => {
            ("FWM", String::new(), "0".into(), format!("{mark:08X}"))
        }
    };
    vec![
        Label::new("proto", proto),
        Label::new("local_address", local_address),
        Label::new("local_port", local_port),
        Label::new("local_mark", mark),
    ]
}

fn server_labels(service: &ServiceKey, server: &ServerKey) -> Vec<Label> {
    let mut labels = service_labels(service);
    labels.push(Label::new("remote_address", addr_text(&server.addr)));
    labels.push(Label::new("remote_port", server.port.to_string()));
    labels
}

fn describe() {
    for (name, help) in NODE_TOTALS {
        describe_counter!(name, help);
    }
    describe_gauge!(
        NODE_ACTIVE,
        "The current active connections by local and remote address."
    );
    describe_gauge!(
        NODE_INACTIVE,
        "The current inactive connections by local and remote address."
    );
    describe_gauge!(
        NODE_WEIGHT,
        "The current backend weight by local and remote address."
    );
    for (suffix, help) in COUNTER_SUFFIXES {
        describe_counter!(
            format!("uvs_service_{suffix}"),
            format!("{help}, per virtual service.")
        );
        describe_counter!(
            format!("uvs_backend_{suffix}"),
            format!("{help}, per real server.")
        );
    }
    let gauges = [
        (
            "uvs_backend_connections_active",
            "Active connections (IPVS ActiveConn) per real server.",
        ),
        (
            "uvs_backend_connections_inactive",
            "Inactive connections and UDP flows (IPVS InActConn) per real server.",
        ),
        (
            "uvs_backend_connections_persistent",
            "Persistence templates (IPVS PersistConn) per real server.",
        ),
        ("uvs_backend_weight", "Current weight per real server."),
        (
            "uvs_backend_up",
            "1 while the health checks find the real server up, 0 while down.",
        ),
        (
            "uvs_backend_check_failures",
            "Failed health checks in a row.",
        ),
        (
            "uvs_backend_check_duration_seconds",
            "How long the last health check took.",
        ),
        ("uvs_udp_flows", "UDP flows open."),
        (
            "uvs_udp_flows_max",
            "The most UDP flows open at once (--max-udp-flows).",
        ),
        ("uvs_persistence_templates", "Persistence templates held."),
        ("uvs_connections_open", "TCP connections being proxied."),
        (
            "uvs_config_last_reload_successful",
            "1 if the last load or reload of the configuration file was applied.",
        ),
        (
            "uvs_config_last_reload_success_timestamp_seconds",
            "When the configuration file was last applied.",
        ),
        ("uvs_build_info", "1, labelled with the version of uvs."),
    ];
    for (name, help) in gauges {
        describe_gauge!(name, help);
    }
    let counters = [
        (
            "uvs_backend_connect_failures_total",
            "Failed connects to the real server (UDP: flows ended by ICMP errors), by reason.",
        ),
        (
            "uvs_service_connections_retried_total",
            "Connections retried on another real server after a failed connect.",
        ),
        (
            "uvs_service_unavailable_total",
            "Connections reset (UDP: datagrams dropped) for want of an available real server.",
        ),
        (
            "uvs_service_udp_flows_dropped_total",
            "New UDP flows dropped because the flow table was full.",
        ),
        (
            "uvs_udp_flows_dropped_total",
            "New UDP flows dropped because the flow table was full, in all.",
        ),
        (
            "uvs_config_reloads_total",
            "Reloads of the configuration file, by result.",
        ),
    ];
    for (name, help) in counters {
        describe_counter!(name, help);
    }
}

fn publish_server(service: &Service, server: &RealServer) {
    let key = server.key();
    let st = &server.state;
    if let Some(labels) = node_labels(&service.key, &key) {
        gauge!(NODE_ACTIVE, labels.clone()).set(f64::from(st.active()));
        gauge!(NODE_INACTIVE, labels.clone()).set(f64::from(st.inactive()));
        gauge!(NODE_WEIGHT, labels).set(f64::from(server.weight));
    }
    let labels = server_labels(&service.key, &key);
    for ((suffix, _), value) in COUNTER_SUFFIXES
        .iter()
        .zip(counter_values(&st.stats.totals()))
    {
        counter!(format!("uvs_backend_{suffix}"), labels.clone()).absolute(value);
    }
    gauge!("uvs_backend_connections_active", labels.clone()).set(f64::from(st.active()));
    gauge!("uvs_backend_connections_inactive", labels.clone()).set(f64::from(st.inactive()));
    gauge!("uvs_backend_connections_persistent", labels.clone()).set(f64::from(
        st.persistent_conns
            .load(std::sync::atomic::Ordering::Relaxed),
    ));
    gauge!("uvs_backend_weight", labels.clone()).set(f64::from(server.weight));
    let failures = &st.connect_failures;
    for (reason, n) in [
        ("refused", &failures.refused),
        ("timeout", &failures.timeout),
        ("other", &failures.other),
    ] {
        let mut l = labels.clone();
        l.push(Label::new("reason", reason));
        counter!("uvs_backend_connect_failures_total", l)
            .absolute(n.load(std::sync::atomic::Ordering::Relaxed));
    }
}

fn publish(director: &Director, snapshot: &Table) {
    use std::sync::atomic::Ordering::Relaxed;
    let totals = counter_values(&snapshot.totals().totals());
    for ((name, _), value) in NODE_TOTALS.iter().zip(totals) {
        counter!(*name).absolute(value);
    }
    for service in snapshot.services() {
        let labels = service_labels(&service.key);
        for ((suffix, _), value) in COUNTER_SUFFIXES
            .iter()
            .zip(counter_values(&service.state.stats.totals()))
        {
            counter!(format!("uvs_service_{suffix}"), labels.clone()).absolute(value);
        }
        let state = &service.state;
        counter!("uvs_service_connections_retried_total", labels.clone())
            .absolute(state.retries.load(Relaxed));
        counter!("uvs_service_unavailable_total", labels.clone())
            .absolute(state.unavailable.load(Relaxed));
        counter!("uvs_service_udp_flows_dropped_total", labels)
            .absolute(state.flows_dropped.load(Relaxed));
        for server in &service.servers {
            publish_server(service, server);
        }
    }
    for h in director.health.statuses() {
        let labels = server_labels(&h.service, &h.server);
        gauge!("uvs_backend_up", labels.clone()).set(if h.up { 1.0 } else { 0.0 });
        gauge!("uvs_backend_check_failures", labels.clone()).set(f64::from(h.failures));
        gauge!("uvs_backend_check_duration_seconds", labels)
            .set(h.last_duration_ms as f64 / 1000.0);
    }
    gauge!("uvs_udp_flows").set(director.udp_flows.count() as f64);
    gauge!("uvs_udp_flows_max").set(director.udp_flows.max() as f64);
    counter!("uvs_udp_flows_dropped_total").absolute(director.udp_flows.dropped());
    gauge!("uvs_persistence_templates").set(director.templates.len() as f64);
    gauge!("uvs_connections_open").set(director.conns.live_streams() as f64);
    let config = director
        .config
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(c) = config {
        gauge!("uvs_config_last_reload_successful").set(if c.last_error.is_none() {
            1.0
        } else {
            0.0
        });
        gauge!("uvs_config_last_reload_success_timestamp_seconds").set(c.applied_at as f64);
        counter!("uvs_config_reloads_total", "result" => "applied").absolute(c.reloads);
        counter!("uvs_config_reloads_total", "result" => "refused").absolute(c.refused);
    }
    gauge!("uvs_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_text(labels: &[Label]) -> String {
    labels
        .iter()
        .map(|l| format!("{}=\"{}\"", l.key(), escape(l.value())))
        .collect::<Vec<_>>()
        .join(",")
}

/// A float as Prometheus writes it.
fn number(v: f64) -> String {
    if v.is_infinite() {
        "+Inf".into()
    } else {
        format!("{v}")
    }
}

/// The connect-latency histograms of the TCP real servers, in the text format.
fn latency_histograms(out: &mut String, snapshot: &Table) {
    let mut series: Vec<(String, LatencyView)> = Vec::new();
    for service in snapshot.services() {
        if matches!(
            service.key,
            ServiceKey::Inet {
                protocol: Protocol::Udp | Protocol::Sctp,
                ..
            }
        ) {
            continue;
        }
        for server in &service.servers {
            series.push((
                label_text(&server_labels(&service.key, &server.key())),
                server.state.connect_latency.view(),
            ));
        }
    }
    if series.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "# HELP {LATENCY} How long successful TCP connects to the real server took."
    );
    let _ = writeln!(out, "# TYPE {LATENCY} histogram");
    for (labels, view) in series {
        let mut cumulative = 0;
        for (i, count) in view.buckets.iter().enumerate() {
            cumulative += count;
            let le = LATENCY_BOUNDS.get(i).copied().unwrap_or(f64::INFINITY);
            let _ = writeln!(
                out,
                "{LATENCY}_bucket{{{labels},le=\"{}\"}} {cumulative}",
                number(le)
            );
        }
        let _ = writeln!(
            out,
            "{LATENCY}_sum{{{labels}}} {}",
            number(view.sum_seconds)
        );
        let _ = writeln!(out, "{LATENCY}_count{{{labels}}} {cumulative}");
    }
    out.push('\n');
}

/// The whole exposition, as of now.
pub fn render(director: &Director) -> String {
    let snapshot = director.table.snapshot();
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    with_local_recorder(&recorder, || {
        describe();
        publish(director, &snapshot);
    });
    let mut text = handle.render();
    latency_histograms(&mut text, &snapshot);
    text
}
