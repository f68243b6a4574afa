//! Writes a [`Config`] as uvs TOML, in the schema `schema` reads: what the importers
//! print. Only what differs from the defaults is written, so a file reads like one a
//! person would write; reading the output back gives the same configuration.

use std::fmt::Write as _;
use std::time::Duration;

use super::{Check, CheckCommand, Config, Health, NotifyCommand, ServiceSpec, group};
use crate::table::{
    Family, Forward, ListenRule, Netmask, Protocol, ServerConfig, ServiceKey, Tunnel,
    TunnelChecksum,
};

/// A TOML basic string.
pub(super) fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A duration as a person writes it: days at most ("31d", not humantime's "1month 13h
/// 26m 24s" with its 30.44-day month), then h, m, s and what is below a second.
fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    let mut parts: Vec<String> = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")]
        .iter()
        .scan(secs, |left, &(unit, name)| {
            let n = *left / unit;
            *left %= unit;
            Some((n > 0).then(|| format!("{n}{name}")))
        })
        .flatten()
        .collect();
    let below = Duration::from_nanos(u64::from(d.subsec_nanos()));
    if !below.is_zero() || parts.is_empty() {
        parts.push(humantime::format_duration(below).to_string());
    }
    quoted(&parts.join(" "))
}

fn forward_name(f: Forward) -> &'static str {
    match f {
        Forward::Masq => "masq",
        Forward::Tunnel => "ipip",
        Forward::Route | Forward::Local => "gate",
    }
}

/// The port an address without one is read as in `service` (`schema`: ipvsadm's `-r
/// ADDRESS`): the service's, 0 in an fwmark service or in `[global]` (None).
fn portless_port(service: Option<&ServiceKey>) -> u16 {
    match service {
        Some(ServiceKey::Inet { port, .. }) => *port,
        _ => 0,
    }
}

/// A server's `address`: without its port only where the port is 0 and an address
/// without one reads back as 0; any other port is written, 0 included.
fn server_address(s: &ServerConfig, service: Option<&ServiceKey>) -> String {
    if s.port == 0 && portless_port(service) == 0 {
        s.addr.to_string()
    } else {
        std::net::SocketAddr::new(s.addr, s.port).to_string()
    }
}

/// `server` as `service`'s table will hold it (`ServerConfig::in_service`), and the
/// port it asked for when that is not the one it gets.
fn fitted(server: &ServerConfig, service: Option<&ServiceKey>) -> (ServerConfig, Option<u16>) {
    let fitted = service.map_or_else(|| server.clone(), |k| server.in_service(k));
    let asked = (fitted.port != server.port).then_some(server.port);
    (fitted, asked)
}

/// A server as an inline table (for `fallback`).
fn inline_server(s: &ServerConfig, service: Option<&ServiceKey>) -> String {
    let (s, _) = fitted(s, service);
    let mut out = format!("{{ address = {}", quoted(&server_address(&s, service)));
    if s.forward != Forward::Masq {
        let _ = write!(out, ", forward = {}", quoted(forward_name(s.forward)));
    }
    if s.weight != 1 {
        let _ = write!(out, ", weight = {}", s.weight);
    }
    if s.options.max_connections != 0 {
        let _ = write!(out, ", max_connections = {}", s.options.max_connections);
    }
    out.push_str(" }");
    out
}

/// A `key = value` line, for a value that is set (TOML has no null: unset is absent).
fn setting(out: &mut String, key: &str, value: Option<impl std::fmt::Display>) {
    if let Some(value) = value {
        let _ = writeln!(out, "{key} = {value}");
    }
}

fn check_lines(c: &Check) -> String {
    let mut out = String::new();
    setting(&mut out, "type", c.kind.map(|k| quoted(k.name())));
    setting(&mut out, "service", c.service.map(|s| quoted(s.name())));
    setting(&mut out, "port", c.port);
    setting(&mut out, "interval", c.interval.map(duration));
    setting(&mut out, "timeout", c.timeout.map(duration));
    setting(&mut out, "failures", c.failures);
    setting(&mut out, "rise", c.rise);
    for (key, value) in [
        ("request", &c.request),
        ("receive", &c.receive),
        ("virtualhost", &c.virtualhost),
        ("method", &c.method),
    ] {
        setting(&mut out, key, value.as_deref().map(quoted));
    }
    setting(
        &mut out,
        "command",
        c.command.as_ref().map(|command| match command {
            CheckCommand::Line(line) => quoted(line),
            CheckCommand::Words(words) => format!(
                "[{}]",
                words
                    .iter()
                    .map(|w| quoted(w))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    );
    setting(&mut out, "target_arguments", c.target_arguments);
    setting(&mut out, "status", c.status.as_deref().map(statuses));
    setting(&mut out, "dynamic_weight", c.dynamic_weight);
    setting(&mut out, "verify_certificate", c.verify_certificate);
    setting(&mut out, "warmup", c.warmup.map(duration));
    setting(&mut out, "retry_delay", c.retry_delay.map(duration));
    setting(&mut out, "failures_at_start", c.failures_at_start);
    setting(&mut out, "user", c.user.as_deref().map(quoted));
    setting(&mut out, "group", c.group.as_deref().map(quoted));
    check_kinds_lines(&mut out, c);
    out
}

/// A service's or a server's checks under `header`: one as a table (not written when
/// it sets nothing, as ever), several as an array of tables, each written even empty
/// so that the others keep their places.
fn checks_lines(out: &mut String, header: &str, first: &Check, more: &[Check]) {
    if more.is_empty() {
        let lines = check_lines(first);
        if !lines.is_empty() {
            let _ = write!(out, "\n[{header}]\n{lines}");
        }
        return;
    }
    for check in std::iter::once(first).chain(more) {
        let _ = write!(out, "\n[[{header}]]\n{}", check_lines(check));
    }
}

/// The settings of keepalived's check kinds (schema's `read_check_kinds`); URLs as an
/// array of inline tables, which reads as `[[...check.url]]` tables do.
fn check_kinds_lines(out: &mut String, c: &Check) {
    setting(out, "digest", c.digest.as_deref().map(quoted));
    if let Some(urls) = &c.urls {
        let tables: Vec<String> = urls
            .iter()
            .map(|u| {
                let mut t = format!("{{ path = {}", quoted(&u.path));
                if let Some(s) = &u.status {
                    let _ = write!(t, ", status = {}", statuses(s));
                }
                for (key, value) in [
                    ("receive", &u.receive),
                    ("digest", &u.digest),
                    ("virtualhost", &u.virtualhost),
                ] {
                    if let Some(v) = value {
                        let _ = write!(t, ", {key} = {}", quoted(v));
                    }
                }
                t.push_str(" }");
                t
            })
            .collect();
        let _ = writeln!(out, "url = [{}]", tables.join(", "));
    }
    setting(out, "query_type", c.query_type.map(|t| quoted(t.name())));
    setting(out, "require_answer", c.require_answer);
    setting(
        out,
        "transport",
        c.transport.map(|p| quoted(&p.label().to_ascii_lowercase())),
    );
    setting(
        out,
        "path",
        c.path.as_deref().map(|p| quoted(&p.to_string_lossy())),
    );
    setting(out, "weight", c.file_weight);
    setting(out, "reverse", c.reverse);
    setting(out, "helo", c.helo.as_deref().map(quoted));
    setting(out, "source", c.source.map(|a| quoted(&a.to_string())));
    setting(out, "source_port", c.source_port);
    setting(out, "address", c.address.map(|a| quoted(&a.to_string())));
    if let Some(hosts) = &c.hosts {
        let hosts: Vec<String> = hosts.iter().map(|h| quoted(&h.to_string())).collect();
        let _ = writeln!(out, "hosts = [{}]", hosts.join(", "));
    }
}

/// `status`: one range as "200-299" (as before several were taken), several as an
/// array, a single status in it as a number.
fn statuses(ranges: &[(u16, u16)]) -> String {
    let one = |&(a, b): &(u16, u16)| {
        if a == b {
            a.to_string()
        } else {
            quoted(&format!("{a}-{b}"))
        }
    };
    match ranges {
        [(a, b)] => quoted(&format!("{a}-{b}")),
        _ => format!(
            "[{}]",
            ranges.iter().map(one).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// `service` is None for `[global]`'s defaults.
fn health_lines(out: &mut String, h: &Health, service: Option<&ServiceKey>) {
    setting(out, "quiescent", h.quiescent);
    setting(
        out,
        "fallback",
        h.fallback.as_ref().map(|f| {
            let mut table = inline_server(f, service);
            if let Some(q) = h.fallback_quiescent {
                table.truncate(table.len() - 2);
                let _ = write!(table, ", quiescent = {q} }}");
            }
            table
        }),
    );
    setting(out, "alpha", h.alpha);
    setting(out, "omega", h.omega);
    setting(out, "quorum", h.quorum);
    setting(out, "hysteresis", h.hysteresis);
    setting(out, "quorum_up", h.quorum_up.as_ref().map(notify));
    setting(out, "quorum_down", h.quorum_down.as_ref().map(notify));
    setting(out, "ha_suspend", h.ha_suspend);
}

/// A notify command: its line, or with a user an inline table (schema's `command`).
fn notify(c: &NotifyCommand) -> String {
    let Some(user) = &c.user else {
        return quoted(&c.line);
    };
    let mut t = format!("{{ command = {}, user = {}", quoted(&c.line), quoted(user));
    if let Some(group) = &c.group {
        let _ = write!(t, ", group = {}", quoted(group));
    }
    t.push_str(" }");
    t
}

/// A group's `group`, member lists and (for marks alone) `ipv6`: each kind of member in
/// the order its first member comes, consecutive addresses of one port as ranges.
fn group_lines(out: &mut String, name: &str, members: &[ServiceSpec]) {
    let _ = writeln!(out, "group = {}", quoted(name));
    let mut kinds: Vec<Option<Protocol>> = Vec::new();
    for m in members {
        let kind = match m.service.key {
            ServiceKey::Inet { protocol, .. } => Some(protocol),
            ServiceKey::Fwmark { .. } => None,
        };
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    for kind in kinds {
        let mut written = Vec::new();
        match kind {
            Some(protocol) => {
                // Runs of one port, each written as its ranges.
                let mut run: Vec<std::net::IpAddr> = Vec::new();
                let mut run_port = None;
                for m in members {
                    if let ServiceKey::Inet {
                        protocol: p,
                        addr,
                        port,
                    } = m.service.key
                        && p == protocol
                    {
                        if run_port.is_some_and(|rp| rp != port) {
                            written.extend(group::write_members(&run, run_port.unwrap_or(0)));
                            run.clear();
                        }
                        run_port = Some(port);
                        run.push(addr);
                    }
                }
                written.extend(group::write_members(&run, run_port.unwrap_or(0)));
                let list: Vec<String> = written.iter().map(|w| quoted(w)).collect();
                let _ = writeln!(
                    out,
                    "{} = [{}]",
                    protocol.label().to_ascii_lowercase(),
                    list.join(", ")
                );
            }
            None => {
                let marks: Vec<String> = members
                    .iter()
                    .filter_map(|m| match m.service.key {
                        ServiceKey::Fwmark { mark, .. } => Some(mark.to_string()),
                        ServiceKey::Inet { .. } => None,
                    })
                    .collect();
                let _ = writeln!(out, "fwmark = [{}]", marks.join(", "));
            }
        }
    }
    let marks_only = members
        .iter()
        .all(|m| matches!(m.service.key, ServiceKey::Fwmark { .. }));
    if marks_only && members[0].service.key.family() == Family::Inet6 {
        out.push_str("ipv6 = true\n");
    }
}

/// One `[[service]]`: a service alone, or the members of one group (`members`, in
/// order, all of one group; the first one's settings and servers are the group's).
fn service(
    out: &mut String,
    members: &[ServiceSpec],
    global_source: Option<&std::sync::Arc<crate::table::source::Source>>,
) {
    let spec = &members[0];
    out.push_str("\n[[service]]\n");
    let s = &spec.service;
    if let Some(n) = &spec.name {
        let _ = writeln!(out, "name = {}", quoted(n));
    }
    if let Some(c) = &spec.comment {
        let _ = writeln!(out, "comment = {}", quoted(c));
    }
    match s.key {
        _ if spec.group.is_some() => {
            let name = spec.group.as_ref().map_or("", |g| g.name.as_str());
            group_lines(out, name, members);
        }
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => {
            let _ = writeln!(
                out,
                "{} = {}",
                protocol.label().to_ascii_lowercase(),
                quoted(&std::net::SocketAddr::new(addr, port).to_string())
            );
        }
        ServiceKey::Fwmark { mark, family } => {
            let _ = writeln!(out, "fwmark = {mark}");
            if family == Family::Inet6 {
                out.push_str("ipv6 = true\n");
            }
        }
    }
    let _ = writeln!(out, "scheduler = {}", quoted(&s.scheduler));
    let flags = s.flags.scheduler_flag_names(&s.scheduler);
    if !flags.is_empty() {
        let names: Vec<String> = flags.split(',').map(quoted).collect();
        let _ = writeln!(out, "flags = [{}]", names.join(", "));
    }
    if s.flags.one_packet() {
        out.push_str("one_packet = true\n");
    }
    if s.flags.persistent() {
        let _ = writeln!(
            out,
            "persistent = {}",
            duration(Duration::from_secs(u64::from(s.timeout)))
        );
    }
    if !s.netmask.is_full() {
        match s.netmask {
            Netmask::V4(m) => {
                let _ = writeln!(out, "netmask = {}", quoted(&m.to_string()));
            }
            Netmask::V6(p) => {
                let _ = writeln!(out, "netmask = {p}");
            }
        }
    }
    if let Some(pe) = &s.pe {
        let _ = writeln!(out, "pe = {}", quoted(pe));
    }
    let o = &s.options;
    if o.connect_timeout_ms != 0 {
        let _ = writeln!(
            out,
            "connect_timeout = {}",
            duration(Duration::from_millis(u64::from(o.connect_timeout_ms)))
        );
    }
    if let Some(p) = o.proxy_protocol {
        let _ = writeln!(out, "proxy_protocol = {}", quoted(p.name()));
    }
    if o.freebind {
        out.push_str("freebind = true\n");
    }
    if o.drain_on_remove_ms != 0 {
        let d = Duration::from_millis(u64::from(o.drain_on_remove_ms));
        let _ = writeln!(out, "drain_on_remove = {}", duration(d));
    }
    if let Some(e) = o.ejection {
        let ms = |ms: u32| duration(Duration::from_millis(u64::from(ms)));
        let _ = write!(
            out,
            "ejection = {{ failures = {}, base_time = {}, max_share = {}",
            e.failures,
            ms(e.base_time_ms),
            f64::from(e.max_share_permille) / 1000.0
        );
        if e.max_time_ms != 0 {
            let _ = write!(out, ", max_time = {}", ms(e.max_time_ms));
        }
        out.push_str(" }\n");
    }
    if o.slow_start_ms != 0 {
        let window = Duration::from_millis(u64::from(o.slow_start_ms));
        let _ = writeln!(out, "slow_start = {}", duration(window));
    }
    if let Some(q) = o.queue {
        let _ = writeln!(
            out,
            "queue = {{ length = {}, timeout = {} }}",
            q.length,
            duration(Duration::from_millis(u64::from(q.timeout_ms)))
        );
    }
    super::admission::render_accept_proxy(out, o);
    super::admission::render_admission(out, &o.admission);
    super::source::render_service_source(out, o.source.as_ref(), global_source);
    // A group's rules are its members'.
    let listen: Vec<&ListenRule> = members.iter().flat_map(|m| &m.listen).collect();
    if !listen.is_empty() {
        let rules: Vec<String> = listen
            .iter()
            .map(|r| {
                quoted(&format!(
                    "{} {}",
                    r.listen.protocol.label().to_ascii_lowercase(),
                    std::net::SocketAddr::new(r.listen.addr, r.listen.port)
                ))
            })
            .collect();
        let _ = writeln!(out, "listen = [{}]", rules.join(", "));
    }
    health_lines(out, &spec.health, Some(&s.key));
    checks_lines(
        out,
        "service.check",
        &spec.health.check,
        &spec.health.more_checks,
    );
    for (i, asked) in spec.servers.iter().enumerate() {
        out.push_str("\n[[service.server]]\n");
        // The file says the port the table will hold, and why when that is not the
        // one the imported line asked for.
        let (server, asked_port) = fitted(asked, Some(&s.key));
        let server = &server;
        if let Some(port) = asked_port {
            let _ = writeln!(
                out,
                "# port {port} asked for: {} real server takes the service's port, as ipvsadm gives it",
                if server.forward == Forward::Tunnel {
                    "an ipip"
                } else {
                    "a gate"
                }
            );
        }
        // In a group, a server every member holds at its own port is written without
        // one, as it is read.
        let each_at_its_own = spec.group.is_some()
            && members.iter().all(|m| {
                m.servers.get(i).is_some_and(|x| {
                    x.in_service(&m.service.key).port == portless_port(Some(&m.service.key))
                })
            });
        let address = if each_at_its_own {
            server.addr.to_string()
        } else {
            server_address(server, Some(&s.key))
        };
        let _ = writeln!(out, "address = {}", quoted(&address));
        if server.weight != 1 {
            let _ = writeln!(out, "weight = {}", server.weight);
        }
        if server.forward != Forward::Masq {
            let _ = writeln!(out, "forward = {}", quoted(forward_name(server.forward)));
        }
        if server.u_threshold != 0 {
            let _ = writeln!(out, "upper_threshold = {}", server.u_threshold);
        }
        if server.l_threshold != 0 {
            let _ = writeln!(out, "lower_threshold = {}", server.l_threshold);
        }
        if let Some(ms) = server.options.slow_start_ms {
            let window = Duration::from_millis(u64::from(ms));
            let _ = writeln!(out, "slow_start = {}", duration(window));
        }
        match server.options.drain {
            Some(crate::table::pool::DrainSetting::UntilEmpty) => out.push_str("drain = true\n"),
            Some(crate::table::pool::DrainSetting::Deadline { ms }) => {
                let d = Duration::from_millis(u64::from(ms));
                let _ = writeln!(out, "drain = {}", duration(d));
            }
            None => {}
        }
        if server.options.max_connections != 0 {
            let _ = writeln!(out, "max_connections = {}", server.options.max_connections);
        }
        if server.forward == Forward::Tunnel && server.tunnel != Tunnel::default() {
            let t = server.tunnel;
            let _ = writeln!(out, "tunnel = {}", quoted(t.kind.name()));
            if t.port != 0 {
                let _ = writeln!(out, "tunnel_port = {}", t.port);
            }
            if t.checksum != TunnelChecksum::NoCsum {
                let _ = writeln!(out, "tunnel_checksum = {}", quoted(t.checksum.name()));
            }
        }
        let own = spec
            .health
            .servers
            .get(&asked.key())
            .or_else(|| spec.health.servers.get(&server.key()));
        if let Some(own) = own {
            setting(out, "quiescent", own.quiescent);
            setting(out, "notify_up", own.notify_up.as_ref().map(notify));
            setting(out, "notify_down", own.notify_down.as_ref().map(notify));
        }
        // Last: the keys after a table header belong to that table.
        let check = spec
            .server_checks
            .get(&asked.key())
            .or_else(|| spec.server_checks.get(&server.key()));
        let more = spec
            .server_more_checks
            .get(&asked.key())
            .or_else(|| spec.server_more_checks.get(&server.key()));
        if let Some(check) = check {
            checks_lines(
                out,
                "service.server.check",
                check,
                more.map_or(&[][..], Vec::as_slice),
            );
        }
    }
}

/// The whole configuration as TOML.
pub fn render(config: &Config) -> String {
    let mut out = String::new();
    let g = &config.global;
    let mut global = String::new();
    let path = |p: &std::path::PathBuf| quoted(&p.display().to_string());
    setting(&mut global, "mode", g.mode.map(|m| quoted(m.name())));
    setting(&mut global, "socket", g.socket.as_ref().map(path));
    setting(&mut global, "cleanstop", g.cleanstop);
    let metrics = g
        .metrics
        .map(|m| m.map_or_else(|| quoted("off"), |a| quoted(&a.to_string())));
    setting(&mut global, "metrics", metrics);
    setting(&mut global, "status_page", g.status_page);
    setting(&mut global, "autoreload", g.autoreload.then_some(true));
    setting(&mut global, "threads", g.threads);
    setting(
        &mut global,
        "forwarding",
        g.forwarding.map(|f| quoted(&f.to_string())),
    );
    setting(&mut global, "max_udp_flows", g.max_udp_flows);
    setting(&mut global, "max_connections", g.max_connections);
    setting(
        &mut global,
        "metrics_max_connections",
        g.metrics_max_connections,
    );
    setting(
        &mut global,
        "udp_unreplied_timeout",
        g.udp_unreplied_timeout.map(duration),
    );
    setting(&mut global, "max_templates", g.max_templates);
    setting(&mut global, "udp_flows_per_source", g.udp_flows_per_source);
    setting(&mut global, "drain_timeout", g.drain_timeout.map(duration));
    setting(
        &mut global,
        "expire_quiescent_template",
        g.expire_quiescent_template,
    );
    setting(
        &mut global,
        "connect_timeout",
        g.connect_timeout.map(duration),
    );
    setting(&mut global, "retries", g.retries);
    let legs = [
        ("client", g.client_congestion_control),
        ("server", g.server_congestion_control),
    ];
    for (leg, cc) in legs {
        let key = format!("{leg}_congestion_control");
        setting(&mut global, &key, cc.map(|cc| quoted(cc.as_str())));
    }
    setting(
        &mut global,
        "maintenance_dir",
        g.maintenance_dir.as_ref().map(path),
    );
    super::admission::render_admission(&mut global, &config.admission);
    super::source::render_source(&mut global, g.source.as_deref());
    health_lines(&mut global, &g.health, None);
    let global_check = check_lines(&g.health.check);
    if !global.is_empty() || !global_check.is_empty() {
        out.push_str("[global]\n");
        out.push_str(&global);
    }
    if !global_check.is_empty() {
        out.push_str("\n[global.check]\n");
        out.push_str(&global_check);
    }
    if let Some(t) = config.timeouts {
        out.push_str("\n[timeouts]\n");
        for (key, secs) in [("tcp", t.tcp), ("tcpfin", t.tcp_fin), ("udp", t.udp)] {
            if secs != 0 {
                let _ = writeln!(
                    out,
                    "{key} = {}",
                    duration(Duration::from_secs(u64::from(secs)))
                );
            }
        }
    }
    let mut rest = config.services.as_slice();
    while !rest.is_empty() {
        // A group's members are consecutive, as the reader and importers make them.
        let name = rest[0].group.as_ref().map(|g| &g.name);
        let n = match name {
            None => 1,
            Some(name) => rest
                .iter()
                .take_while(|m| m.group.as_ref().map(|g| &g.name) == Some(name))
                .count(),
        };
        service(&mut out, &rest[..n], g.source.as_ref());
        rest = &rest[n..];
    }
    super::sync::render_sync(&mut out, &config.sync);
    out.trim_start_matches('\n').to_string()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::schema::parse;

    #[test]
    fn durations_are_written_in_days_at_most_and_read_back() {
        for (secs, nanos, written) in [
            (2_678_400, 0, "\"31d\""),
            (90_061, 0, "\"1d 1h 1m 1s\""),
            (300, 0, "\"5m\""),
            (0, 0, "\"0s\""),
            (1, 500_000_000, "\"1s 500ms\""),
            (0, 250_000_000, "\"250ms\""),
        ] {
            let d = Duration::new(secs, nanos);
            assert_eq!(duration(d), written);
            let back = humantime::parse_duration(written.trim_matches('"')).unwrap();
            assert_eq!(back, d, "{written}");
        }
    }

    #[test]
    fn what_is_written_reads_back_the_same() {
        let text = r#"[global]
mode = "auto"
metrics = "127.0.0.1:9999"
autoreload = true
threads = 2
connect_timeout = "2s"
retries = 2
client_congestion_control = "bbr"
server_congestion_control = "cubic"
quiescent = false
fallback = { address = "127.0.0.1:80", forward = "gate" }

[global.check]
type = "negotiate"
interval = "1s"
timeout = "3s"

[timeouts]
tcp = "15m"
udp = "1m"

[[service]]
name = "Web \"site\""
comment = "a\\b"
tcp = "127.0.0.1:80"
scheduler = "sh"
flags = ["sh-fallback", "sh-port"]
persistent = "10m"
netmask = "255.255.255.0"
connect_timeout = "1s 500ms"
proxy_protocol = "v1"

[service.check]
type = "negotiate"
service = "http"
port = 8080
request = "/index.html"
receive = "Test Page"
virtualhost = "www.example.com"
status = "200-399"

[[service.server]]
address = "127.0.0.1:8080"
weight = 3
forward = "ipip"
upper_threshold = 10
lower_threshold = 5
tunnel = "gue"
tunnel_port = 6080

[service.server.check]
port = 9000
request = "/other"

[[service]]
fwmark = 7
ipv6 = true
scheduler = "rr"
netmask = 64
listen = ["tcp [::1]:443", "udp [::1]:443"]

[[service.server]]
address = "::1"
"#;
        let config = parse(text, Path::new("t.toml")).unwrap();
        let written = render(&config);
        let again = parse(&written, Path::new("written.toml")).unwrap();
        assert_eq!(again, config, "{written}");
    }

    #[test]
    fn drain_keys_are_written_and_read_back() {
        let text = r#"[[service]]
tcp = "127.0.0.1:80"
drain_on_remove = "1m 30s"

[[service.server]]
address = "127.0.0.1:8080"
drain = true

[[service.server]]
address = "127.0.0.1:8081"
drain = "30s"

[[service.server]]
address = "127.0.0.1:8082"
"#;
        let config = parse(text, Path::new("t.toml")).unwrap();
        let written = render(&config);
        assert!(
            written.contains("drain_on_remove = \"1m 30s\"\n"),
            "{written}"
        );
        assert!(written.contains("drain = true\n"), "{written}");
        assert!(written.contains("drain = \"30s\"\n"), "{written}");
        let again = parse(&written, Path::new("written.toml")).unwrap();
        assert_eq!(again, config, "{written}");
    }

    #[test]
    fn an_ejection_is_written_and_reads_back_the_same() {
        let text = "[[service]]\ntcp = \"127.0.0.1:80\"\n\
                    ejection = { failures = 3, base_time = \"1s 500ms\", max_share = 0.25, max_time = \"2m\" }\n\
                    [[service]]\ntcp = \"127.0.0.1:81\"\n\
                    ejection = { failures = 1, base_time = \"30s\", max_share = 1 }\n";
        let config = parse(text, Path::new("t.toml")).unwrap();
        let written = render(&config);
        assert!(
            written.contains(
                "ejection = { failures = 3, base_time = \"1s 500ms\", max_share = 0.25, max_time = \"2m\" }"
            ),
            "{written}"
        );
        let again = parse(&written, Path::new("written.toml")).unwrap();
        assert_eq!(again, config, "{written}");
    }

    #[test]
    fn slow_start_windows_are_written_and_read_back() {
        let text = "[[service]]\ntcp = \"127.0.0.1:80\"\nslow_start = \"1m 30s\"\n\n\
                    [[service.server]]\naddress = \"127.0.0.1:8080\"\nslow_start = \"0s\"\n\n\
                    [[service.server]]\naddress = \"127.0.0.2:8080\"\nslow_start = \"2s 500ms\"\n";
        let config = parse(text, Path::new("t.toml")).unwrap();
        let written = render(&config);
        assert!(written.contains("slow_start = \"1m 30s\"\n"), "{written}");
        assert!(written.contains("slow_start = \"0s\"\n"), "{written}");
        let again = parse(&written, Path::new("written.toml")).unwrap();
        assert_eq!(again, config, "{written}");
    }

    #[test]
    fn limits_and_queues_are_written_and_read_back() {
        let text = r#"
[[service]]
tcp = "127.0.0.1:80"
queue = { length = 40, timeout = "2s 500ms" }
fallback = { address = "127.0.0.9:80", max_connections = 7 }

[[service.server]]
address = "127.0.0.1:8080"
max_connections = 100
"#;
        let config = parse(text, Path::new("t.toml")).unwrap();
        let written = render(&config);
        assert!(
            written.contains("queue = { length = 40, timeout = \"2s 500ms\" }\n")
                && written.contains("max_connections = 100\n")
                && written.contains("max_connections = 7 }"),
            "{written}"
        );
        let again = parse(&written, Path::new("written.toml")).unwrap();
        assert_eq!(again, config, "{written}");
    }

    /// An import's servers are written at the port the table will give them, saying
    /// why where that is not the port asked for, and a port-0 server keeps its `:0`
    /// where an address alone would read as the service's port.
    #[test]
    fn servers_are_written_at_the_port_the_table_gives_them() {
        let mut config = parse(
            "[[service]]\ntcp = \"192.0.2.50:80\"\nscheduler = \"rr\"\n\n\
             [[service.server]]\naddress = \"198.51.100.51\"\nforward = \"gate\"\n\n\
             [[service.server]]\naddress = \"198.51.100.52:8080\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        // As an importer makes them: the port the source file names.
        let servers = &mut config.services[0].servers;
        servers[0].port = 8080;
        let mut any_port = servers[1].clone();
        any_port.addr = "198.51.100.53".parse().unwrap();
        any_port.port = 0;
        servers.push(any_port);
        let written = render(&config);
        assert_eq!(
            written,
            "[[service]]
tcp = \"192.0.2.50:80\"
scheduler = \"rr\"

[[service.server]]
# port 8080 asked for: a gate real server takes the service's port, as ipvsadm gives it
address = \"198.51.100.51:80\"
forward = \"gate\"

[[service.server]]
address = \"198.51.100.52:8080\"

[[service.server]]
address = \"198.51.100.53:0\"
"
        );
        let again = parse(&written, Path::new("written.toml")).unwrap();
        let ports: Vec<u16> = again.services[0].servers.iter().map(|s| s.port).collect();
        assert_eq!(ports, [80, 8080, 0]);
    }

    /// A group is written as one `[[service]]`: its members in order, consecutive
    /// addresses as ranges, its servers once; it reads back to the same members.
    #[test]
    fn a_group_is_written_once_with_its_members_and_ranges() {
        let text = r#"[[service]]
group = "web"
fwmark = 9
tcp = ["127.0.0.5-127.0.0.7:80", "127.0.0.9:80", "127.0.0.10:443"]
scheduler = "rr"
listen = ["tcp 127.0.0.20:8443"]

[[service.server]]
address = "127.0.0.2"
weight = 2

[[service.server]]
address = "127.0.0.3:8080"
forward = "gate"

[[service]]
group = "v6"
udp = ["[::1]:53", "[::1]:5353"]

[[service.server]]
address = "[::1]:5300"
"#;
        let config = parse(text, Path::new("t.toml")).unwrap();
        assert_eq!(config.services.len(), 8);
        let written = render(&config);
        assert_eq!(
            written,
            r#"[[service]]
group = "web"
fwmark = [9]
tcp = ["127.0.0.5-127.0.0.7:80", "127.0.0.9:80", "127.0.0.10:443"]
scheduler = "rr"
listen = ["tcp 127.0.0.20:8443"]

[[service.server]]
address = "127.0.0.2"
weight = 2

[[service.server]]
address = "127.0.0.3:8080"
forward = "gate"

[[service]]
group = "v6"
udp = ["[::1]:53", "[::1]:5353"]
scheduler = "wlc"

[[service.server]]
address = "[::1]:5300"
"#
        );
        let again = parse(&written, Path::new("written.toml")).unwrap();
        assert_eq!(again, config, "{written}");
    }
}
