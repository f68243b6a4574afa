//! `uvs status`: what the daemon is doing, for people: each service with its options,
//! the addresses it listens on and their state (and the listen rules another service's
//! own address shadows), and its real servers.

use std::fmt::Write as _;

use crate::adm::inet::inet_ntop_port;
use crate::adm::sort::{compare_service_keys, merge_sort};
use crate::clock::utc;
use crate::control::protocol::Status;
use crate::table::{ServerEntry, ServiceEntry, ServiceKey};

fn service_name(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => format!("{:<4} {}", protocol.label(), inet_ntop_port(addr, *port)),
        ServiceKey::Fwmark { mark, family } => match family {
            crate::table::Family::Inet => format!("FWM  {mark}"),
            crate::table::Family::Inet6 => format!("FWM  {mark} IPv6"),
        },
    }
}

fn server_line(out: &mut String, s: &ServerEntry, udp: bool) {
    let addr = inet_ntop_port(&s.addr, s.port);
    let f = &s.connect_failures;
    let mut failures = if udp {
        // A UDP flow's "failed connect" is an ICMP error from the server's side.
        format!(
            "flows ended by ICMP errors {} (port unreachable {}, other {})",
            f.refused + f.other,
            f.refused,
            f.other
        )
    } else {
        // No source to connect from: only with `source` or `source_ports`, said only
        // when it happened.
        let source = match f.source {
            0 => String::new(),
            n => format!(", no source {n}"),
        };
        format!(
            "failed connects {} (refused {}, timed out {}, other {}{source})",
            f.refused + f.timed_out + f.other + f.source,
            f.refused,
            f.timed_out,
            f.other
        )
    };
    if f.looped > 0 {
        // Rare and a configuration fault: said only when it happened.
        let _ = write!(
            failures,
            ", refused as loops back into this director {}",
            f.looped
        );
    }
    let _ = writeln!(
        out,
        "  -> {addr:<28} {:<6} weight {:<5} active {:<5} inactive {:<5} persistent {:<5} {failures}",
        s.forward.label(),
        s.weight,
        s.active_conns,
        s.inactive_conns,
        s.persistent_conns,
    );
    if let Some(left) = s.ejection.left_ms {
        let _ = writeln!(
            out,
            "     ejected ({}s left), {} consecutive {}",
            left.div_ceil(1000),
            s.ejection.consecutive_failures,
            crate::words::plural(
                u64::from(s.ejection.consecutive_failures),
                "failure",
                "failures"
            )
        );
    }
}

/// A service's passive ejection, when it has one: its setting and the ejections so far
/// of the servers it has now.
fn ejection_line(out: &mut String, e: &ServiceEntry) {
    let Some(c) = e.options.ejection else {
        return;
    };
    let ms = |ms: u64| {
        if ms.is_multiple_of(1000) {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        }
    };
    let _ = writeln!(
        out,
        "  ejection: after {} {} in a row, for {} times the ejections in a row (at most \
         {}), at most {}% of the servers at once; ejections so far {}",
        c.failures,
        crate::words::plural(u64::from(c.failures), "failure", "failures"),
        ms(u64::from(c.base_time_ms)),
        ms(c.max_ms()),
        f64::from(c.max_share_permille) / 10.0,
        e.servers.iter().map(|s| s.ejection.ejections).sum::<u64>()
    );
}

/// The service's queue (`queue N/LENGTH` and what became of those that came), or
/// without one, the connections or flows refused at the servers' limits if any were.
fn queue_line(out: &mut String, e: &ServiceEntry, udp: bool) {
    let q = &e.queue;
    match e.options.queue {
        Some(options) if !udp => {
            let mean = q
                .wait_ms
                .checked_div(q.served)
                .map_or(String::new(), |ms| format!(", mean wait {ms} ms"));
            let left = if q.left > 0 {
                format!(", left while waiting {}", q.left)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  queue {}/{} (timeout {} ms): queued {}, served from the queue {}, timed out {}, reset with the queue full {}{left}{mean}",
                q.waiting,
                options.length,
                options.timeout_ms,
                q.queued,
                q.served,
                q.timed_out,
                q.refused
            );
        }
        _ if q.refused > 0 => {
            let what = if udp {
                "new flows dropped with every server at its max_connections"
            } else {
                "reset with every server at its max_connections (no queue)"
            };
            let _ = writeln!(out, "  {what} {}", q.refused);
        }
        _ => {}
    }
}

/// A service's sources (`source`, `source_ports`), the connects that found none free,
/// and the binds that found a source address not on this host; nothing for a service
/// without.
fn source_line(out: &mut String, e: &ServiceEntry) {
    let Some(source) = &e.options.source else {
        return;
    };
    let c = source.config();
    let addresses: Vec<String> = c.addresses.iter().map(|r| r.to_string()).collect();
    let from = match (addresses.is_empty(), c.ports) {
        (true, Some(p)) => format!("ports {p}"),
        (false, Some(p)) => format!("{}, ports {p}", addresses.join(", ")),
        (_, None) => addresses.join(", "),
    };
    let _ = writeln!(
        out,
        "  source {from}: connects with no free source port {}, source address not local {}",
        e.source_port_exhausted, e.source_address_unavailable
    );
}

/// Who may connect (`table::admission`): the PROXY header taken, the access list and
/// the per-client limits, each with what it refused (the global list's and limits'
/// refusals of this service's clients included), when the service has it or it refused
/// any.
fn admission_lines(out: &mut String, e: &ServiceEntry) {
    let o = &e.options;
    let a = &e.admission;
    let udp = matches!(
        e.key,
        crate::table::ServiceKey::Inet {
            protocol: crate::table::Protocol::Udp,
            ..
        }
    );
    // Who may send the header (`accept_proxy_from`): said only when it is limited.
    let from = match &o.accept_proxy_from {
        Some(list) if list.allow().len() == 1 => " from 1 prefix".to_string(),
        Some(list) => format!(" from {} prefixes", list.allow().len()),
        None => String::new(),
    };
    if o.accept_proxy.is_some() && udp {
        // Over UDP only v2 exists, one header per datagram: no deadline.
        let _ = writeln!(
            out,
            "  accepts PROXY v2 in every datagram{from}: PROXY headers rejected {}",
            a.proxy_rejected
        );
    } else if let Some(version) = o.accept_proxy {
        let within = match o.accept_proxy_timeout_ms {
            0 => crate::proxy::proxy_in::DEFAULT_TIMEOUT.as_millis(),
            ms => u128::from(ms),
        };
        let _ = writeln!(
            out,
            "  accepts PROXY {} (header within {within} ms){from}: PROXY headers rejected {}",
            version.name(),
            a.proxy_rejected
        );
    } else if a.proxy_rejected > 0 {
        let _ = writeln!(out, "  PROXY headers rejected {}", a.proxy_rejected);
    }
    let own = &o.admission;
    match &own.access {
        Some(list) => {
            // A refused datagram is always dropped: no deny_action to say.
            let action = if udp {
                String::new()
            } else {
                format!(", deny_action {}", own.deny_action.name())
            };
            let _ = writeln!(
                out,
                "  access list: allow {}, deny {}{action}{}: refused by access list {}",
                list.allow().len(),
                list.deny().len(),
                if own.close_denied {
                    ", close_denied"
                } else {
                    ""
                },
                a.refused_access
            );
            rule_lines(out, &e.access_rules);
        }
        None if a.refused_access > 0 => {
            let _ = writeln!(out, "  refused by access list {}", a.refused_access);
        }
        None => {}
    }
    match &own.limits {
        Some(l) => {
            let _ = writeln!(
                out,
                "  limits: {}: refused by limits {}, sources tracked {}/{}",
                limits_words(l),
                a.refused_limits,
                a.sources,
                l.max_sources
            );
        }
        None if a.refused_limits > 0 => {
            let _ = writeln!(out, "  refused by limits {}", a.refused_limits);
        }
        None => {}
    }
}

/// What each rule of an access list refused, one line each (only rules that refused
/// any): `    deny 127.0.0.66/32: 12`, `    not in allow: 3`.
fn rule_lines(out: &mut String, rules: &[crate::table::access::RuleRefusals]) {
    for r in rules {
        let _ = writeln!(out, "    {r}");
    }
}

/// The global access list (every service's, checked before their own), when there is
/// one: what it refused over all services, and per rule.
fn global_access_lines(out: &mut String, g: &crate::table::entry::GlobalAccessEntry) {
    let _ = writeln!(
        out,
        "global access list: allow {}, deny {}, deny_action {}{}: refused by access list {}",
        g.allow,
        g.deny,
        g.deny_action,
        if g.close_denied { ", close_denied" } else { "" },
        g.refused
    );
    rule_lines(out, &g.rules);
}

/// The limits set and the prefixes that make a source: `connections_per_source 2,
/// flows_per_source 8 (sources /32 and /64)`.
fn limits_words(l: &crate::table::admission::ClientLimits) -> String {
    let mut set = Vec::new();
    for (name, n) in [
        ("connections_per_source", l.connections_per_source),
        ("new_per_second_per_source", l.new_per_second_per_source),
        ("flows_per_source", l.flows_per_source),
    ] {
        if n > 0 {
            set.push(format!("{name} {n}"));
        }
    }
    format!(
        "{} (sources /{} and /{})",
        set.join(", "),
        l.source_prefix_v4,
        l.source_prefix_v6
    )
}

/// The global per-client limits, counted over all services.
fn global_limits_line(out: &mut String, g: &crate::table::admission::GlobalLimitsView) {
    let _ = writeln!(
        out,
        "global limits: {}, deny_action {}: refused by limits {}, sources tracked {}/{}",
        limits_words(&g.limits),
        g.deny_action.name(),
        g.refused_limits,
        g.sources,
        g.limits.max_sources
    );
}

/// A server with `max_connections`: `at limit (N/MAX)` while it takes no more, else
/// its open connections against the limit.
fn limit_line(out: &mut String, s: &ServerEntry) {
    if s.max_connections == 0 {
        return;
    }
    if s.open_conns >= s.max_connections {
        let _ = writeln!(
            out,
            "     at limit ({}/{})",
            s.open_conns, s.max_connections
        );
    } else {
        let _ = writeln!(
            out,
            "     open {} of max_connections {}",
            s.open_conns, s.max_connections
        );
    }
}

fn service_block(out: &mut String, status: &Status, e: &ServiceEntry) {
    let _ = write!(out, "{} {}", service_name(&e.key), e.scheduler);
    if e.flags.persistent() {
        let _ = write!(out, " persistent {}", e.timeout);
    }
    let options = e.options.arguments();
    if !options.is_empty() {
        let _ = write!(out, " ({})", options.trim_start());
    }
    out.push('\n');
    // A member of a group: the group, and whose checks its servers share.
    let group = status
        .config
        .as_ref()
        .and_then(|c| c.groups.iter().find(|g| g.members.contains(&e.key)));
    if let Some(g) = group {
        let names: Vec<String> = g
            .members
            .iter()
            .map(|m| service_name(m).replace("  ", " "))
            .collect();
        if g.members[0] == e.key {
            let _ = writeln!(
                out,
                "  group {}, {} members: {}; their real servers are checked once, here",
                g.name,
                g.members.len(),
                names.join(", ")
            );
        } else {
            let at = g.members.iter().position(|m| *m == e.key).unwrap_or(0);
            let _ = writeln!(
                out,
                "  group {}, member {} of {}; health as checked for {}",
                g.name,
                at + 1,
                g.members.len(),
                names[0]
            );
        }
    }
    let checked = group.map_or(e.key, |g| g.members[0]);
    // In a group, a gate server is held at each member's port: the same address.
    let same = |h: &crate::control::protocol::HealthStatus, addr: std::net::IpAddr, port: u16| {
        h.service == checked && h.server.addr == addr && (h.server.port == port || group.is_some())
    };
    let listeners: Vec<_> = status
        .listeners
        .iter()
        .filter(|l| l.service == e.key)
        .collect();
    // Rules that lead here but whose address another service holds.
    let shadowed: Vec<_> = status
        .shadowed
        .iter()
        .filter(|s| s.rule.leads_to(&e.key))
        .collect();
    if listeners.is_empty() && shadowed.is_empty() {
        let why = match e.key {
            ServiceKey::Inet {
                protocol: crate::table::Protocol::Sctp,
                ..
            } => "SCTP is served by the kernel backend only",
            ServiceKey::Inet { port: 0, .. } => "port 0: add listeners with uvsadm --add-listener",
            ServiceKey::Fwmark { .. } => {
                "fwmark group: add listeners with uvsadm --add-listener --mark"
            }
            ServiceKey::Inet { .. } => "not listening",
        };
        let _ = writeln!(out, "  listen: none ({why})");
    }
    for l in listeners {
        let addr = crate::table::ServerKey {
            addr: l.listen.addr,
            port: l.listen.port,
        };
        let _ = writeln!(
            out,
            "  listen {} {addr}: {}",
            l.listen.protocol.services_name(),
            l.state
        );
    }
    for s in shadowed {
        let addr = crate::table::ServerKey {
            addr: s.rule.listen.addr,
            port: s.rule.listen.port,
        };
        let _ = writeln!(
            out,
            "  listen {} {addr}: shadowed: virtual service {} holds this address and gets its \
             connections; not listened on until that service is deleted",
            s.rule.listen.protocol.services_name(),
            s.by
        );
    }
    let udp = matches!(
        e.key,
        ServiceKey::Inet {
            protocol: crate::table::Protocol::Udp,
            ..
        }
    );
    if udp {
        let _ = writeln!(
            out,
            "  datagrams dropped for want of a server {}, new flows dropped (flow table full) {}",
            e.unavailable, e.flows_dropped
        );
    } else {
        let _ = writeln!(
            out,
            "  connections retried elsewhere {}, reset for want of a server {}",
            e.retries, e.unavailable
        );
        source_line(out, e);
        if e.flows_dropped > 0 {
            let _ = writeln!(
                out,
                "  new UDP flows dropped (flow table full) {}",
                e.flows_dropped
            );
        }
    }
    ejection_line(out, e);
    queue_line(out, e, udp);
    admission_lines(out, e);
    if let Some(q) = status.quorum.iter().find(|q| q.service == e.key) {
        quorum_line(out, q);
    }
    for key in &e.drained_out {
        let _ = writeln!(
            out,
            "  -> {key}: drained out by uvs drain; not added back until uvs undrain"
        );
    }
    for s in &e.servers {
        server_line(out, s, udp);
        // A draining server takes no new connection: its ramp, if any, is moot.
        if let Some(share) = s.slow_start.filter(|_| s.draining.is_none()) {
            // The weight above is already the weight in force (`table::slow_start`).
            let _ = writeln!(out, "     slow start ({}%)", share / 10);
        }
        if let Some(d) = &s.draining {
            // `draining (3 connections, 25s left)`: a pool control's state.
            let _ = writeln!(out, "     {}", d.describe(&e.key));
        }
        limit_line(out, s);
        let health = status
            .health
            .iter()
            .find(|h| same(h, s.addr, s.port) && h.server.port == s.port)
            .or_else(|| status.health.iter().find(|h| same(h, s.addr, s.port)));
        if let Some(h) = health {
            health_line(out, h);
        }
    }
    // Servers a check took out of the table are still the file's: say where they are.
    for h in status
        .health
        .iter()
        .filter(|h| h.service == checked && !e.servers.iter().any(|s| same(h, s.addr, s.port)))
    {
        let _ = writeln!(
            out,
            "  -> {:<28} out of the table while down",
            inet_ntop_port(&h.server.addr, h.server.port)
        );
        health_line(out, h);
    }
}

fn health_line(out: &mut String, h: &crate::control::protocol::HealthStatus) {
    let _ = write!(
        out,
        "     health {}, failed checks in a row {}",
        if h.up { "up" } else { "down" },
        h.failures
    );
    match h.last_check {
        Some(t) => {
            let _ = write!(out, ", last check {} ({} ms)", utc(t), h.last_duration_ms);
        }
        None => out.push_str(", not checked yet"),
    }
    if let Some(e) = &h.last_error {
        let _ = write!(out, ", last error: {e}");
    }
    if h.pending {
        out.push_str(", down until its first good check (alpha)");
    }
    if let Some(why) = &h.suspended {
        let _ = write!(out, ", checks suspended: {why}");
    }
    match h.quiescent {
        Some(true) => out.push_str(", its own quiescent: weight 0 when down"),
        Some(false) => out.push_str(", its own quiescent off: out of the table when down"),
        None => {}
    }
    out.push('\n');
    // Several checks (keepalived's several checkers): each one's own state under the
    // server's, which is up only while every one is.
    for (n, c) in h.checks.iter().enumerate() {
        let _ = write!(
            out,
            "       check {} ({}): {}, failed checks in a row {}",
            n + 1,
            c.kind,
            if c.up { "up" } else { "down" },
            c.failures
        );
        match c.last_check {
            Some(t) => {
                let _ = write!(out, ", last check {} ({} ms)", utc(t), c.last_duration_ms);
            }
            None => out.push_str(", not checked yet"),
        }
        if let Some(e) = &c.last_error {
            let _ = write!(out, ", last error: {e}");
        }
        if c.pending {
            out.push_str(", down until its first good check (alpha)");
        }
        out.push('\n');
    }
}

/// A service's quorum (keepalived's `quorum`, `hysteresis`).
fn quorum_line(out: &mut String, q: &crate::health::QuorumStatus) {
    let state = if q.up { "up" } else { "lost" };
    match q.quorum {
        Some(quorum) => {
            let _ = writeln!(
                out,
                "  quorum {state}: live weight {} (quorum {quorum}, hysteresis {})",
                q.live, q.hysteresis
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  quorum {state}: {}",
                if q.up {
                    "a real server is up"
                } else {
                    "no real server is up"
                }
            );
        }
    }
}

/// Milliseconds as seconds, as a person writes them: 5 s, 1.5 s.
fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{} s", ms as f64 / 1000.0)
    }
}

/// How the open-files limit is shared, and how much of the data plane's share is used.
fn descriptor_lines(out: &mut String, d: &crate::control::protocol::DescriptorStatus) {
    let _ = writeln!(
        out,
        "descriptors: open-files limit {}; data plane {} of {} in use; {} kept for up to \
         {} uvsadm clients, {} metrics connections, {} health checks and the daemon itself",
        d.open_files,
        d.used,
        d.limit,
        d.reserved,
        d.control_clients,
        d.metrics_connections,
        d.health_probes
    );
    let most = match d.max_connections {
        Some(n) => format!("at most {n} (--max-connections)"),
        None => format!(
            "room for about {} more",
            (d.limit.saturating_sub(d.used)) / 2
        ),
    };
    let _ = writeln!(
        out,
        "TCP connections {}, {most}; accepting paused for want of room {} times",
        d.connections, d.pauses
    );
}

/// The text of `uvs status`.
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "uvs {} ({} mode, forwarding by {}): {} service{}, {} open connection{}",
        status.version,
        status.mode,
        status.forwarding,
        status.services.len(),
        if status.services.len() == 1 { "" } else { "s" },
        status.live_connections,
        if status.live_connections == 1 {
            ""
        } else {
            "s"
        },
    );
    if let Some(why) = &status.mode_reason {
        let _ = writeln!(out, "mode {why}");
    }
    if let Some(m) = &status.metrics {
        let _ = writeln!(out, "metrics {m}");
        // The page is served beside /metrics ("at http://ADDR/metrics" when served).
        if let Some(base) = m
            .strip_prefix("at ")
            .and_then(|url| url.strip_suffix("/metrics"))
        {
            let _ = writeln!(out, "status page at {base}/");
        }
    }
    if let Some(c) = &status.congestion {
        let _ = writeln!(out, "TCP congestion control: {c}");
    }
    if let Some(c) = &status.config {
        let _ = write!(
            out,
            "configuration {}: applied {}, reloads {}, refused {}",
            c.path,
            utc(c.applied_at),
            c.reloads,
            c.refused
        );
        match &c.last_error {
            Some(e) => {
                let _ = writeln!(out, "; the last reload was refused:");
                for line in e.lines() {
                    let _ = writeln!(out, "  {line}");
                }
            }
            None => out.push('\n'),
        }
    }
    if !status.worker_connections.is_empty() {
        let counts: Vec<String> = status
            .worker_connections
            .iter()
            .map(usize::to_string)
            .collect();
        let _ = writeln!(
            out,
            "TCP connections per worker {}, handed to a less loaded worker {}",
            counts.join(" "),
            status.handed_over
        );
    }
    if let Some(d) = &status.descriptors {
        descriptor_lines(&mut out, d);
    }
    let u = &status.udp;
    let _ = write!(
        out,
        "UDP flows {} of at most {}",
        status.udp_flows, status.max_udp_flows
    );
    if let Some(n) = u.per_source {
        let _ = write!(out, ", {n} per client address");
    }
    let _ = writeln!(
        out,
        "; unanswered ones live {}",
        seconds(u.unreplied_timeout_ms)
    );
    let _ = writeln!(
        out,
        "  new flows refused: table full {}, per-source limit {}, no descriptors {}, \
         no socket {}; flows ended to make room: unanswered {}, answered once {}; \
         unanswered flows ended at their timeout {}",
        status.udp_flows_dropped,
        u.refused_per_source,
        u.refused_descriptors,
        u.refused_socket,
        u.evicted,
        u.evicted_answered,
        u.unreplied_expired
    );
    if u.oversized > 0 {
        let _ = writeln!(
            out,
            "  UDP datagrams dropped as too large for their PROXY v2 header {}",
            u.oversized
        );
    }
    let t = &status.templates;
    if t.count > 0 || t.evicted > 0 || t.not_made > 0 {
        let _ = writeln!(
            out,
            "persistence templates {} of at most {}; ended to make room {}, clients \
             scheduled without one {}",
            t.count, t.max, t.evicted, t.not_made
        );
    }
    sync_lines(&mut out, status);
    if let Some(g) = &status.global_access {
        global_access_lines(&mut out, g);
    }
    if let Some(g) = &status.global_limits {
        global_limits_line(&mut out, g);
    }
    // In ipvsadm -L's order (TCP before UDP, then by address), as uvsadm lists them.
    let mut services: Vec<&ServiceEntry> = status.services.iter().collect();
    merge_sort(&mut services, &|a, b| compare_service_keys(&a.key, &b.key));
    for e in services {
        service_block(&mut out, status, e);
    }
    out
}

/// The sync daemons that run and what uvs's did: one line per daemon as `-L --daemon`
/// prints it, then the counts, then what was dropped by reason.
fn sync_lines(out: &mut String, status: &Status) {
    for d in &status.sync_daemons {
        let _ = writeln!(out, "{d}");
    }
    let s = &status.sync;
    for (role, state) in &s.daemons {
        if let crate::sync::counters::DaemonState::Down { reason } = state {
            let _ = writeln!(
                out,
                "  the {role} sync daemon is not running: {reason}; retrying every {} s",
                crate::sync::RETRY_INTERVAL.as_secs()
            );
        }
    }
    let active = s.sent_messages + s.send_errors + s.received_messages + s.synced_connections > 0;
    if !active && s.dropped.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "sync: sent {} datagrams ({} entries, {} failed); received {} datagrams ({} entries \
         applied); {} connections held from masters",
        s.sent_messages,
        s.sent_entries,
        s.send_errors,
        s.received_messages,
        s.received_entries,
        s.synced_connections
    );
    match s.last_peer {
        Some(peer) => {
            let _ = writeln!(out, "; last master {peer}");
        }
        None => out.push('\n'),
    }
    if !s.dropped.is_empty() {
        let reasons: Vec<String> = s.dropped.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "  sync dropped: {}", reasons.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn times_are_civil_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_795_827_723), "2026-11-28 01:02:03 UTC");
    }
}
