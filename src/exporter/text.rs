//! The Prometheus text exposition format (version 0.0.4), written straight from one table
//! snapshot into a chunked [`BodyWriter`]: node_exporter's `node_ipvs_*` series with its
//! exact names, HELP texts and labels, uvs's own `uvs_*` series and the connect-latency
//! histograms. `exporter::render` calls [`write`], on the render thread, once per scrape
//! (or fewer: the endpoint shares one body between scrapers). Family names are the
//! constants of `names` (which says how to add a family); HELP texts, types and labels
//! are written here, beside the samples.
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
use super::names;
use super::source::{BackendHealth, ServiceQuorum, State};
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
    /// The daemon's state apart from the table: health checks, UDP flows, templates,
    /// connections, descriptors, the configuration file.
    pub daemon: &'a State,
    /// The metrics endpoint's own clients it reset, by reason.
    pub clients_dropped: DropCounts,
    /// The `version` label of `uvs_build_info`.
    pub version: &'a str,
    /// The `commit` label of `uvs_build_info`: what `uvs --version` names, `git
    /// rev-parse --short=12 HEAD` at build time or `unknown` (build.rs).
    pub commit: &'a str,
}

/// node_exporter's ipvs collector: names and HELP texts, exactly.
const NODE_TOTALS: [(&str, &str); 5] = [
    (
        names::NODE_CONNECTIONS_TOTAL,
        "The total number of connections made.",
    ),
    (
        names::NODE_INCOMING_PACKETS_TOTAL,
        "The total number of incoming packets.",
    ),
    (
        names::NODE_OUTGOING_PACKETS_TOTAL,
        "The total number of outgoing packets.",
    ),
    (
        names::NODE_INCOMING_BYTES_TOTAL,
        "The total amount of incoming data.",
    ),
    (
        names::NODE_OUTGOING_BYTES_TOTAL,
        "The total amount of outgoing data.",
    ),
];

/// The HELP texts of the five IPVS counters of uvs's own per-service and per-server
/// series, in the order of [`counter_values`] (each followed by its scope).
const COUNTER_HELP: [&str; 5] = [
    "Connections (UDP: flows) scheduled",
    "Packets (UDP: datagrams) from clients",
    "Packets (UDP: datagrams) to clients",
    "Payload bytes from clients",
    "Payload bytes to clients",
];

/// The five IPVS counters per virtual service, in the order of [`counter_values`].
const SERVICE_COUNTERS: [&str; 5] = [
    names::SERVICE_CONNECTIONS_TOTAL,
    names::SERVICE_INCOMING_PACKETS_TOTAL,
    names::SERVICE_OUTGOING_PACKETS_TOTAL,
    names::SERVICE_INCOMING_BYTES_TOTAL,
    names::SERVICE_OUTGOING_BYTES_TOTAL,
];

/// The five IPVS counters per real server, in the order of [`counter_values`].
const BACKEND_COUNTERS: [&str; 5] = [
    names::BACKEND_CONNECTIONS_TOTAL,
    names::BACKEND_INCOMING_PACKETS_TOTAL,
    names::BACKEND_OUTGOING_PACKETS_TOTAL,
    names::BACKEND_INCOMING_BYTES_TOTAL,
    names::BACKEND_OUTGOING_BYTES_TOTAL,
];

const LATENCY_HELP: &str = "How long successful TCP connects to the real server took.";

/// Writes the whole exposition of `sources` to `out`.
pub fn write(sources: &Sources<'_>, out: &mut BodyWriter) {
    // Once, not per family: the kernel's dump order costs a sort.
    let services = sources.table.services();
    node_series(sources.table, &services, out);
    service_series(&services, out);
    admission_series(&services, !sources.table.admission().is_open(), out);
    access_rule_series(sources.table, &services, out);
    backend_series(&services, out);
    latency_series(&services, out);
    ejection_series(&services, out);
    health_series(&sources.daemon.health, out);
    quorum_series(&sources.daemon.quorum, out);
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
            names::NODE_BACKEND_CONNECTIONS_ACTIVE,
            "The current active connections by local and remote address.",
            |r| Number::Int(r.state.active().into()),
        ),
        (
            names::NODE_BACKEND_CONNECTIONS_INACTIVE,
            "The current inactive connections by local and remote address.",
            |r| Number::Int(r.state.inactive().into()),
        ),
        (
            names::NODE_BACKEND_WEIGHT,
            "The current backend weight by local and remote address.",
            |r| Number::Int(r.weight_in_force().into()),
        ),
    ];
    for (name, help, value) in backends {
        let samples =
            servers(services).filter_map(|(s, r)| Some((node_labels(&s.key, &r.key())?, value(r))));
        family(out, name, help, Kind::Gauge, samples);
    }
}

fn service_series(services: &[&Arc<Service>], out: &mut BodyWriter) {
    for (i, (name, help)) in SERVICE_COUNTERS.iter().zip(COUNTER_HELP).enumerate() {
        let samples = services.iter().map(|s| {
            let value = counter_values(&s.state.stats.totals())[i];
            (service_labels(&s.key), Number::Int(value))
        });
        let help = format!("{help}, per virtual service.");
        family(out, name, &help, Kind::Counter, samples);
    }
    let others: [Reading<Service>; 3] = [
        (
            names::SERVICE_CONNECTIONS_RETRIED_TOTAL,
            "Connections retried on another real server after a failed connect.",
            |s| Number::Int(s.state.retries.load(Relaxed)),
        ),
        (
            names::SERVICE_UNAVAILABLE_TOTAL,
            "Connections reset (UDP: datagrams dropped) for want of an available real server.",
            |s| Number::Int(s.state.unavailable.load(Relaxed)),
        ),
        (
            names::SERVICE_UDP_FLOWS_DROPPED_TOTAL,
            "New UDP flows dropped because the flow table was full.",
            |s| Number::Int(s.state.flows_dropped.load(Relaxed)),
        ),
    ];
    for (name, help, value) in others {
        let samples = services.iter().map(|s| (service_labels(&s.key), value(s)));
        family(out, name, help, Kind::Counter, samples);
    }
    // Only for services with `source`: for the others the counts cannot move.
    let sourced: [Reading<Service>; 2] = [
        (
            names::SERVICE_SOURCE_PORT_EXHAUSTED_TOTAL,
            "TCP connects to real servers that failed because every source address and port tried was busy.",
            |s| Number::Int(s.state.source_port_exhausted.load(Relaxed)),
        ),
        (
            names::SERVICE_SOURCE_ADDRESS_UNAVAILABLE_TOTAL,
            "Binds of TCP connects to real servers that found the source address not on this host (EADDRNOTAVAIL); the connect went on from another address, if any.",
            |s| Number::Int(s.state.source_address_unavailable.load(Relaxed)),
        ),
    ];
    for (name, help, value) in sourced {
        let samples = services
            .iter()
            .filter(|s| s.options.source.is_some())
            .map(|s| (service_labels(&s.key), value(s)));
        family(out, name, help, Kind::Counter, samples);
    }
    queue_series(services, out);
}

/// The queues (`table::queue`) of the services that have one or whose servers have a
/// `max_connections`: the others never queue nor refuse at a limit.
fn queue_series(services: &[&Arc<Service>], out: &mut BodyWriter) {
    let limited = |s: &&&Arc<Service>| {
        s.options.queue.is_some() || s.servers.iter().any(|r| r.options.max_connections > 0)
    };
    let queued = |s: &&&Arc<Service>| s.options.queue.is_some();
    let gauges: [Reading<Service>; 2] = [
        (
            names::SERVICE_QUEUE_LENGTH,
            "Connections waiting in the virtual service's queue for a real server's slot.",
            |s| Number::Int(s.state.queue.waiting().into()),
        ),
        (
            names::SERVICE_QUEUE_MAX_LENGTH,
            "The most connections the virtual service's queue holds (queue.length).",
            |s| Number::Int(s.options.queue.map_or(0, |q| q.length.get()).into()),
        ),
    ];
    for (name, help, value) in gauges {
        let samples = services
            .iter()
            .filter(queued)
            .map(|s| (service_labels(&s.key), value(s)));
        family(out, name, help, Kind::Gauge, samples);
    }
    let counters: [Reading<Service>; 5] = [
        (
            names::SERVICE_QUEUED_TOTAL,
            "Connections that waited in the virtual service's queue.",
            |s| Number::Int(s.state.queue.queued.load(Relaxed)),
        ),
        (
            names::SERVICE_QUEUE_SERVED_TOTAL,
            "Connections from the queue that got a real server.",
            |s| Number::Int(s.state.queue.served.load(Relaxed)),
        ),
        (
            names::SERVICE_QUEUE_TIMEOUTS_TOTAL,
            "Connections reset when their wait in the queue ran out.",
            |s| Number::Int(s.state.queue.timed_out.load(Relaxed)),
        ),
        (
            names::SERVICE_QUEUE_FULL_TOTAL,
            "New connections reset (UDP: flows dropped) with every usable real server at its max_connections and no room in the queue (full, or none).",
            |s| Number::Int(s.state.queue.refused.load(Relaxed)),
        ),
        (
            names::SERVICE_QUEUE_WAIT_SECONDS_TOTAL,
            "Seconds waited in the queue by the connections it served, summed (the mean wait: divided by uvs_service_queue_served_total).",
            |s| Number::Float(s.state.queue.wait_ms.load(Relaxed) as f64 / 1000.0),
        ),
    ];
    for (name, help, value) in counters {
        let samples = services
            .iter()
            .filter(limited)
            .map(|s| (service_labels(&s.key), value(s)));
        family(out, name, help, Kind::Counter, samples);
    }
}

/// What the access lists, per-client limits and PROXY header checks refused, for the
/// services that have any of them (all services when `global`: the global lists and
/// limits apply to every one), or that refused anything.
fn admission_series(services: &[&Arc<Service>], global: bool, out: &mut BodyWriter) {
    let watched = |s: &&&Arc<Service>| {
        let a = s.state.admission.view();
        global
            || s.options.accept_proxy.is_some()
            || !s.options.admission.is_open()
            || a != crate::table::entry::AdmissionCounts::default()
    };
    let counters: [Reading<Service>; 3] = [
        (
            names::SERVICE_REFUSED_ACCESS_LIST_TOTAL,
            "New connections (UDP: datagrams that would open a flow) refused by an access list, the global one included.",
            |s| Number::Int(s.state.admission.refused_access.load(Relaxed)),
        ),
        (
            names::SERVICE_REFUSED_LIMITS_TOTAL,
            "New connections (UDP: datagrams that would open a flow) refused by a per-client limit, the global ones included.",
            |s| Number::Int(s.state.admission.refused_limits.load(Relaxed)),
        ),
        (
            names::SERVICE_PROXY_HEADERS_REJECTED_TOTAL,
            "Connections closed (UDP: datagrams dropped) for a missing, malformed or late PROXY header.",
            |s| Number::Int(s.state.admission.proxy_rejected.load(Relaxed)),
        ),
    ];
    for (name, help, value) in counters {
        let samples = services
            .iter()
            .filter(watched)
            .map(|s| (service_labels(&s.key), value(s)));
        family(out, name, help, Kind::Counter, samples);
    }
    let tracked = services.iter().filter_map(|s| {
        let limits = s.options.admission.limits?;
        let n = s.state.sources.tracked(&limits);
        Some((service_labels(&s.key), Number::Int(n)))
    });
    family(
        out,
        names::SERVICE_LIMITS_SOURCES,
        "Client sources the service's per-client limits track now (at most its max_sources).",
        Kind::Gauge,
        tracked,
    );
}

/// The global per-client limits: the sources they track over all services, and what
/// they refused.
fn global_limits_series(table: &crate::table::Table, out: &mut BodyWriter) {
    let Some(g) = table.global_limits() else {
        return;
    };
    family(
        out,
        names::LIMITS_SOURCES,
        "Client sources the global per-client limits track now, over all services.",
        Kind::Gauge,
        [(Labels::NONE, Number::Int(g.sources))],
    );
    family(
        out,
        names::LIMITS_REFUSED_TOTAL,
        "New connections (UDP: datagrams that would open a flow) the global per-client limits refused, over all services.",
        Kind::Counter,
        [(Labels::NONE, Number::Int(g.refused_limits))],
    );
}

/// What each access-list rule refused, per service and for the global list: one
/// sample per `deny` rule that refused anything (`rule` its prefix) and one for the
/// clients in no `allow` prefix (`list="allow"`, `rule=""`), when any were. Only rules
/// that refused at least once have a series, so a list of a million prefixes costs
/// nothing here until they refuse.
fn access_rule_series(table: &Table, services: &[&Arc<Service>], out: &mut BodyWriter) {
    let texts = |r: &crate::table::access::RuleRefusals| {
        (
            r.list(),
            r.rule.map(|c| c.to_string()).unwrap_or_default(),
            r.refused,
        )
    };
    let per_service: Vec<_> = services
        .iter()
        .filter_map(|s| Some((s, s.options.admission.access.as_ref()?)))
        .flat_map(|(s, list)| {
            list.refusals()
                .iter()
                .map(|r| (s.key, texts(r)))
                .collect::<Vec<_>>()
        })
        .collect();
    family(
        out,
        names::ACCESS_RULE_REFUSED_TOTAL,
        "New connections (UDP: datagrams that would open a flow) refused by a rule of a service's own access list: a deny prefix (rule), or being in no allow prefix (list=\"allow\"); only rules that refused any.",
        Kind::Counter,
        per_service.iter().map(|(key, (list, rule, n))| {
            let labels = service_labels(key)
                .with("list", Value::Text(list))
                .with("rule", Value::Text(rule));
            (labels, Number::Int(*n))
        }),
    );
    let global: Vec<_> = table
        .admission()
        .access
        .as_ref()
        .map(|l| l.refusals().iter().map(texts).collect())
        .unwrap_or_default();
    family(
        out,
        names::GLOBAL_ACCESS_RULE_REFUSED_TOTAL,
        "New connections (UDP: datagrams that would open a flow) refused by a rule of the global access list, over all services; only rules that refused any.",
        Kind::Counter,
        global.iter().map(|(list, rule, n)| {
            let labels = Labels::NONE
                .with("list", Value::Text(list))
                .with("rule", Value::Text(rule));
            (labels, Number::Int(*n))
        }),
    );
}

fn backend_series(services: &[&Arc<Service>], out: &mut BodyWriter) {
    for (i, (name, help)) in BACKEND_COUNTERS.iter().zip(COUNTER_HELP).enumerate() {
        let samples = servers(services).map(|(s, r)| {
            let value = counter_values(&r.state.stats.totals())[i];
            (server_labels(&s.key, &r.key()), Number::Int(value))
        });
        let help = format!("{help}, per real server.");
        family(out, name, &help, Kind::Counter, samples);
    }
    let gauges: [Reading<RealServer>; 6] = [
        (
            names::BACKEND_CONNECTIONS_ACTIVE,
            "Active connections (IPVS ActiveConn) per real server.",
            |r| Number::Int(r.state.active().into()),
        ),
        (
            names::BACKEND_CONNECTIONS_INACTIVE,
            "Inactive connections and UDP flows (IPVS InActConn) per real server.",
            |r| Number::Int(r.state.inactive().into()),
        ),
        (
            names::BACKEND_CONNECTIONS_PERSISTENT,
            "Persistence templates (IPVS PersistConn) per real server.",
            |r| Number::Int(r.state.persistent_conns.load(Relaxed).into()),
        ),
        (
            names::BACKEND_WEIGHT,
            "Current weight per real server: the weight in force (0 while draining, ramped in slow start), as listings show it.",
            |r| Number::Int(r.weight_in_force().into()),
        ),
        (
            names::BACKEND_CONNECTIONS_OPEN,
            "Connections and UDP flows open now (TIME_WAIT not counted) per real server.",
            |r| Number::Int(r.state.open().into()),
        ),
        (
            names::BACKEND_DRAINING,
            "Whether the real server is draining (1) or not (0).",
            |r| Number::Int(u64::from(r.drain.is_some())),
        ),
    ];
    for (name, help, value) in gauges {
        let samples = servers(services).map(|(s, r)| (server_labels(&s.key, &r.key()), value(r)));
        family(out, name, help, Kind::Gauge, samples);
    }
    // Only servers with a slow-start window: none without the control configured.
    let ramps = servers(services)
        .filter(|(_, r)| r.state.slow_start.window_ms() != 0)
        .map(|(s, r)| {
            let share = r
                .state
                .slow_start_share()
                .map_or(1.0, |p| f64::from(p) / 1000.0);
            (server_labels(&s.key, &r.key()), Number::Float(share))
        });
    family(
        out,
        names::BACKEND_SLOW_START_RATIO,
        "Slow start: the share of the new connections it would get that the real server takes now, from 0.05 to 1 over its window (1: not ramping); only servers with a window.",
        Kind::Gauge,
        ramps,
    );
    let limits = servers(services)
        .filter(|(_, r)| r.options.max_connections > 0)
        .map(|(s, r)| {
            (
                server_labels(&s.key, &r.key()),
                Number::Int(r.options.max_connections.into()),
            )
        });
    family(
        out,
        names::BACKEND_MAX_CONNECTIONS,
        "The real server's max_connections (only servers with one).",
        Kind::Gauge,
        limits,
    );
    let failures = servers(services).flat_map(|(s, r)| {
        let labels = server_labels(&s.key, &r.key());
        let f = &r.state.connect_failures;
        // source: only for the servers of a service with sources.
        let source = s.options.source.is_some().then_some(("source", &f.source));
        [
            ("refused", &f.refused),
            ("timeout", &f.timeout),
            ("other", &f.other),
            ("loop", &f.looped),
        ]
        .into_iter()
        .chain(source)
        .map(move |(reason, n)| {
            (
                labels.with("reason", Value::Text(reason)),
                Number::Int(n.load(Relaxed)),
            )
        })
    });
    family(
        out,
        names::BACKEND_CONNECT_FAILURES_TOTAL,
        "Failed connects to the real server (UDP: flows ended by ICMP errors), by reason; \
         loop: not tried, the server being the director's own listen address; source \
         (servers of a service with source or source_ports): no source address and port \
         to connect from.",
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
    let mut header = Header::new(
        names::BACKEND_CONNECT_DURATION_SECONDS,
        LATENCY_HELP,
        Kind::Histogram,
    );
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
            out.push(names::BACKEND_CONNECT_DURATION_SECONDS.as_bytes());
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
            out.push(names::BACKEND_CONNECT_DURATION_SECONDS.as_bytes());
            out.push(suffix.as_bytes());
            out.push(labels.as_bytes());
            out.push(b"} ");
            write_number(out, value);
            out.push(b"\n");
        }
    }
    header.close(out);
}

/// Passive ejection, for the real servers of services that configure it (none
/// else: a family without samples writes nothing).
fn ejection_series(services: &[&Arc<Service>], out: &mut BodyWriter) {
    let ejecting: Vec<&Arc<Service>> = services
        .iter()
        .copied()
        .filter(|s| s.options.ejection.is_some())
        .collect();
    let readings: [(Reading<RealServer>, Kind); 3] = [
        (
            (
                names::BACKEND_EJECTED,
                "1 while the real server is passively ejected, else 0.",
                |r| Number::Int(r.state.ejection.until_ms().is_some().into()),
            ),
            Kind::Gauge,
        ),
        (
            (
                names::BACKEND_EJECTIONS_TOTAL,
                "Passive ejections of the real server.",
                |r| Number::Int(r.state.ejection.total()),
            ),
            Kind::Counter,
        ),
        (
            (
                names::BACKEND_CONSECUTIVE_FAILURES,
                "Failed connects (UDP: flows ended by ICMP errors) in a row, as passive ejection counts them.",
                |r| Number::Int(r.state.ejection.consecutive().into()),
            ),
            Kind::Gauge,
        ),
    ];
    for ((name, help, value), kind) in readings {
        let samples = servers(&ejecting).map(|(s, r)| (server_labels(&s.key, &r.key()), value(r)));
        family(out, name, help, kind, samples);
    }
}

fn health_series(health: &[BackendHealth], out: &mut BodyWriter) {
    let gauges: [Reading<BackendHealth>; 5] = [
        (
            names::BACKEND_UP,
            "1 while the health checks find the real server up, 0 while down.",
            |h| Number::Int(h.up.into()),
        ),
        (
            names::BACKEND_CHECK_FAILURES,
            "Failed health checks in a row.",
            |h| Number::Int(h.failures.into()),
        ),
        (
            names::BACKEND_CHECK_DURATION_SECONDS,
            "How long the last health check took.",
            |h| Number::Float(h.last_duration_ms as f64 / 1000.0),
        ),
        (
            names::BACKEND_CHECK_PENDING,
            "1 while the real server is down until its first good check (alpha), else 0.",
            |h| Number::Int(h.pending.into()),
        ),
        (
            names::BACKEND_CHECK_SUSPENDED,
            "1 while the real server's checks are suspended (ha_suspend), else 0.",
            |h| Number::Int(h.suspended.into()),
        ),
    ];
    for (name, help, value) in gauges {
        let samples = health
            .iter()
            .map(|h| (server_labels(&h.service, &h.server), value(h)));
        family(out, name, help, Kind::Gauge, samples);
    }
}

/// keepalived's quorum of each service that has one (check/ipwrapper.c
/// `update_quorum_state`), as `uvs status` shows it.
fn quorum_series(quorum: &[ServiceQuorum], out: &mut BodyWriter) {
    let gauges: [Reading<ServiceQuorum>; 2] = [
        (
            names::SERVICE_QUORUM_UP,
            "1 while the virtual service is in quorum, 0 while it has lost it.",
            |q| Number::Int(q.up.into()),
        ),
        (
            names::SERVICE_QUORUM_LIVE_WEIGHT,
            "The sum of the weights of the virtual service's live real servers, judged against its quorum.",
            |q| Number::Int(q.live),
        ),
    ];
    for (name, help, value) in gauges {
        let samples = quorum
            .iter()
            .map(|q| (service_labels(&q.service), value(q)));
        family(out, name, help, Kind::Gauge, samples);
    }
}

fn daemon_series(sources: &Sources<'_>, out: &mut BodyWriter) {
    let daemon = sources.daemon;
    let scalars = [
        (
            names::UDP_FLOWS,
            "UDP flows open.",
            Kind::Gauge,
            daemon.udp_flows,
        ),
        (
            names::UDP_FLOWS_MAX,
            "The most UDP flows open at once (--max-udp-flows).",
            Kind::Gauge,
            daemon.udp_flows_max,
        ),
        (
            names::UDP_FLOWS_DROPPED_TOTAL,
            "New UDP flows dropped because the flow table was full, in all.",
            Kind::Counter,
            daemon.udp_flows_dropped,
        ),
        (
            names::PERSISTENCE_TEMPLATES,
            "Persistence templates held.",
            Kind::Gauge,
            daemon.persistence_templates,
        ),
        (
            names::PERSISTENCE_TEMPLATES_MAX,
            "The most persistence templates held at once (--max-templates).",
            Kind::Gauge,
            daemon.templates_max,
        ),
        (
            names::PERSISTENCE_TEMPLATES_EVICTED_TOTAL,
            "Persistence templates that controlled no connection, ended to make room.",
            Kind::Counter,
            daemon.templates_evicted,
        ),
        (
            names::PERSISTENCE_TEMPLATES_NOT_MADE_TOTAL,
            "Clients scheduled without a persistence template, every one being in use.",
            Kind::Counter,
            daemon.templates_not_made,
        ),
        (
            names::CONNECTIONS_OPEN,
            "TCP connections being proxied.",
            Kind::Gauge,
            daemon.connections_open,
        ),
    ];
    for (name, help, kind, value) in scalars {
        family(out, name, help, kind, [(Labels::NONE, Number::Int(value))]);
    }
    udp_admission_series(&daemon.udp, out);
    global_limits_series(sources.table, out);
    if let Some(d) = &daemon.descriptors {
        descriptor_series(d, out);
    }
    if let Some(c) = &daemon.config {
        family(
            out,
            names::CONFIG_LAST_RELOAD_SUCCESSFUL,
            "1 if the last load or reload of the configuration file was applied.",
            Kind::Gauge,
            [(Labels::NONE, Number::Int(c.last_applied.into()))],
        );
        family(
            out,
            names::CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS,
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
            names::CONFIG_RELOADS_TOTAL,
            "Reloads of the configuration file, by result.",
            Kind::Counter,
            reloads,
        );
    }
    sync_up_series(&daemon.sync_daemons, out);
    if let Some(s) = &daemon.sync {
        sync_series(s, out);
    }
    let dropped = sources.clients_dropped.by_reason().map(|(reason, n)| {
        (
            Labels::NONE.with("reason", Value::Text(reason)),
            Number::Int(n),
        )
    });
    family(
        out,
        names::METRICS_CLIENTS_DROPPED_TOTAL,
        "Clients of the metrics endpoint reset, by reason: evicted at the connection cap, \
         no request head in time (head_timeout) or no request at all (bad_request), the \
         response not taken in time (write_timeout), or still reading a body two newer \
         ones replaced (stale_body).",
        Kind::Counter,
        dropped,
    );
    family(
        out,
        names::BUILD_INFO,
        "1, labelled with the version of uvs and the commit it was built from.",
        Kind::Gauge,
        [(
            Labels::NONE
                .with("version", Value::Text(sources.version))
                .with("commit", Value::Text(sources.commit)),
            Number::Int(1),
        )],
    );
}

/// New UDP flows refused and unanswered flows ended, by reason.
/// Whether each of the table's sync daemons runs, in either mode.
fn sync_up_series(
    daemons: &std::collections::BTreeMap<String, crate::sync::counters::DaemonState>,
    out: &mut BodyWriter,
) {
    let up = daemons.iter().map(|(role, state)| {
        let up = matches!(state, crate::sync::counters::DaemonState::Up);
        (
            Labels::NONE.with("role", Value::Text(role)),
            Number::Int(up.into()),
        )
    });
    family(
        out,
        names::SYNC_DAEMON_UP,
        "1 while the sync daemon of the role runs; 0 while it cannot (userspace mode: its \
         socket cannot be made; kernel mode: the kernel refuses it, or runs another daemon \
         of that role), tried again every 2 s; uvs status says why.",
        Kind::Gauge,
        up,
    );
}

/// uvs's own sync daemons (userspace mode): datagrams and entries sent and received,
/// what was dropped by reason (every reason seen so far; `sync::counters` names them),
/// the connections held from masters.
fn sync_series(s: &crate::sync::counters::SyncStatus, out: &mut BodyWriter) {
    let scalars = [
        (
            names::SYNC_SENT_DATAGRAMS_TOTAL,
            "Sync datagrams the master sent.",
            Kind::Counter,
            s.sent_messages,
        ),
        (
            names::SYNC_SENT_ENTRIES_TOTAL,
            "Connections and templates the master sent.",
            Kind::Counter,
            s.sent_entries,
        ),
        (
            names::SYNC_SEND_ERRORS_TOTAL,
            "Sync datagrams the master could not send.",
            Kind::Counter,
            s.send_errors,
        ),
        (
            names::SYNC_RECEIVED_DATAGRAMS_TOTAL,
            "Sync datagrams the backup received from other directors.",
            Kind::Counter,
            s.received_messages,
        ),
        (
            names::SYNC_RECEIVED_ENTRIES_TOTAL,
            "Connections and templates the backup applied.",
            Kind::Counter,
            s.received_entries,
        ),
        (
            names::SYNC_CONNECTIONS,
            "Connections held from masters (listed by -L -c).",
            Kind::Gauge,
            s.synced_connections,
        ),
    ];
    for (name, help, kind, value) in scalars {
        family(out, name, help, kind, [(Labels::NONE, Number::Int(value))]);
    }
    let dropped = s.dropped.iter().map(|(reason, n)| {
        (
            Labels::NONE.with("reason", Value::Text(reason)),
            Number::Int(*n),
        )
    });
    family(
        out,
        names::SYNC_DROPPED_TOTAL,
        "Sync datagrams and entries dropped, by reason (a malformed datagram, a foreign \
         sync id, a service or real server this director lacks, a full table, ...).",
        Kind::Counter,
        dropped,
    );
}

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
        names::UDP_FLOWS_REFUSED_TOTAL,
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
        names::UDP_FLOWS_EVICTED_TOTAL,
        "UDP flows ended to make room for a new one in a full table: unanswered ones first, \
         then ones answered once that carried nothing since their first two seconds.",
        Kind::Counter,
        evicted,
    );
    family(
        out,
        names::UDP_FLOWS_UNANSWERED_EXPIRED_TOTAL,
        "UDP flows whose real server never answered, ended at the unreplied timeout.",
        Kind::Counter,
        [(Labels::NONE, Number::Int(u.unreplied_expired))],
    );
}

/// The open-files limit, its split, and what the data plane holds.
fn descriptor_series(d: &DescriptorStatus, out: &mut BodyWriter) {
    let gauges = [
        (
            names::OPEN_FILES_LIMIT,
            "The daemon's open-files limit.",
            d.open_files,
        ),
        (
            names::DESCRIPTORS_RESERVED,
            "Descriptors kept for the control plane (uvsadm, metrics, health checks, the daemon).",
            d.reserved,
        ),
        (
            names::DATA_PLANE_DESCRIPTORS_MAX,
            "Descriptors the data plane may hold (the open-files limit less the reserve).",
            d.limit,
        ),
        (
            names::DATA_PLANE_DESCRIPTORS,
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
            names::CONNECTIONS_MAX,
            "The most TCP connections proxied at once (--max-connections).",
            Kind::Gauge,
            [(Labels::NONE, Number::Int(max))],
        );
    }
    family(
        out,
        names::ACCEPT_PAUSES_TOTAL,
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
