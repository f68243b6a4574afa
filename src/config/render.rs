//! Writes a [`Config`] as uvs TOML, in the schema `schema` reads: what the importers
//! print. Only what differs from the defaults is written, so a file reads like one a
//! person would write; reading the output back gives the same configuration.

use std::fmt::Write as _;
use std::time::Duration;

use super::{Check, Config, Health, ServiceSpec};
use crate::table::{Family, Forward, Netmask, ServerConfig, ServiceKey, Tunnel, TunnelChecksum};

/// A TOML basic string.
fn quoted(s: &str) -> String {
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

fn duration(d: Duration) -> String {
    quoted(&humantime::format_duration(d).to_string())
}

fn forward_name(f: Forward) -> &'static str {
    match f {
        Forward::Masq => "masq",
        Forward::Tunnel => "ipip",
        Forward::Route | Forward::Local => "gate",
    }
}

fn server_address(s: &ServerConfig) -> String {
    if s.port == 0 {
        s.addr.to_string()
    } else {
        std::net::SocketAddr::new(s.addr, s.port).to_string()
    }
}

/// A server as an inline table (for `fallback`).
fn inline_server(s: &ServerConfig) -> String {
    let mut out = format!("{{ address = {}", quoted(&server_address(s)));
    if s.forward != Forward::Masq {
        let _ = write!(out, ", forward = {}", quoted(forward_name(s.forward)));
    }
    if s.weight != 1 {
        let _ = write!(out, ", weight = {}", s.weight);
    }
    out.push_str(" }");
    out
}

fn check_lines(c: &Check) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: String| {
        let _ = writeln!(out, "{key} = {value}");
    };
    if let Some(k) = c.kind {
        line("type", quoted(k.name()));
    }
    if let Some(s) = c.service {
        line("service", quoted(s.name()));
    }
    if let Some(p) = c.port {
        line("port", p.to_string());
    }
    if let Some(d) = c.interval {
        line("interval", duration(d));
    }
    if let Some(d) = c.timeout {
        line("timeout", duration(d));
    }
    if let Some(n) = c.failures {
        line("failures", n.to_string());
    }
    if let Some(n) = c.rise {
        line("rise", n.to_string());
    }
    for (key, value) in [
        ("request", &c.request),
        ("receive", &c.receive),
        ("virtualhost", &c.virtualhost),
        ("method", &c.method),
        ("command", &c.command),
    ] {
        if let Some(v) = value {
            line(key, quoted(v));
        }
    }
    if let Some((a, b)) = c.status {
        line("status", quoted(&format!("{a}-{b}")));
    }
    if let Some(b) = c.dynamic_weight {
        line("dynamic_weight", b.to_string());
    }
    if let Some(b) = c.verify_certificate {
        line("verify_certificate", b.to_string());
    }
    out
}

fn health_lines(out: &mut String, h: &Health) {
    if let Some(q) = h.quiescent {
        let _ = writeln!(out, "quiescent = {q}");
    }
    if let Some(f) = &h.fallback {
        let _ = writeln!(out, "fallback = {}", inline_server(f));
    }
}

fn service(out: &mut String, spec: &ServiceSpec) {
    out.push_str("\n[[service]]\n");
    let s = &spec.service;
    if let Some(n) = &spec.name {
        let _ = writeln!(out, "name = {}", quoted(n));
    }
    if let Some(c) = &spec.comment {
        let _ = writeln!(out, "comment = {}", quoted(c));
    }
    match s.key {
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
    if !spec.listen.is_empty() {
        let rules: Vec<String> = spec
            .listen
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
    health_lines(out, &spec.health);
    let check = check_lines(&spec.health.check);
    if !check.is_empty() {
        out.push_str("\n[service.check]\n");
        out.push_str(&check);
    }
    for server in &spec.servers {
        out.push_str("\n[[service.server]]\n");
        let _ = writeln!(out, "address = {}", quoted(&server_address(server)));
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
        if server.forward == Forward::Tunnel && server.tunnel != Tunnel::default() {
            let t = server.tunnel;
            let _ = writeln!(out, "tunnel = {}", quoted(t.kind.name()));
            if t.port != 0 {
                let _ = writeln!(out, "tunnel_port = {}", t.port);
            }
            if t.checksum != TunnelChecksum::NoCsum {
                let name = match t.checksum {
                    TunnelChecksum::Csum => "csum",
                    TunnelChecksum::RemCsum => "remcsum",
                    TunnelChecksum::NoCsum => "nocsum",
                };
                let _ = writeln!(out, "tunnel_checksum = {}", quoted(name));
            }
        }
        // Last: the keys after a table header belong to that table.
        if let Some(check) = spec.server_checks.get(&server.key()) {
            let lines = check_lines(check);
            if !lines.is_empty() {
                out.push_str("\n[service.server.check]\n");
                out.push_str(&lines);
            }
        }
    }
}

/// The whole configuration as TOML.
pub fn render(config: &Config) -> String {
    let mut out = String::new();
    let g = &config.global;
    let mut global = String::new();
    if let Some(m) = g.mode {
        let _ = writeln!(global, "mode = {}", quoted(m.name()));
    }
    if let Some(p) = &g.socket {
        let _ = writeln!(global, "socket = {}", quoted(&p.display().to_string()));
    }
    if let Some(b) = g.cleanstop {
        let _ = writeln!(global, "cleanstop = {b}");
    }
    match g.metrics {
        Some(Some(addr)) => {
            let _ = writeln!(global, "metrics = {}", quoted(&addr.to_string()));
        }
        Some(None) => global.push_str("metrics = \"off\"\n"),
        None => {}
    }
    if g.autoreload {
        global.push_str("autoreload = true\n");
    }
    if let Some(n) = g.threads {
        let _ = writeln!(global, "threads = {n}");
    }
    if let Some(f) = g.forwarding {
        let _ = writeln!(global, "forwarding = {}", quoted(&f.to_string()));
    }
    if let Some(n) = g.max_udp_flows {
        let _ = writeln!(global, "max_udp_flows = {n}");
    }
    if let Some(n) = g.max_connections {
        let _ = writeln!(global, "max_connections = {n}");
    }
    if let Some(n) = g.metrics_max_connections {
        let _ = writeln!(global, "metrics_max_connections = {n}");
    }
    if let Some(d) = g.udp_unreplied_timeout {
        let _ = writeln!(global, "udp_unreplied_timeout = {}", duration(d));
    }
    if let Some(n) = g.max_templates {
        let _ = writeln!(global, "max_templates = {n}");
    }
    if let Some(n) = g.udp_flows_per_source {
        let _ = writeln!(global, "udp_flows_per_source = {n}");
    }
    if let Some(d) = g.drain_timeout {
        let _ = writeln!(global, "drain_timeout = {}", duration(d));
    }
    if let Some(b) = g.expire_quiescent_template {
        let _ = writeln!(global, "expire_quiescent_template = {b}");
    }
    if let Some(d) = g.connect_timeout {
        let _ = writeln!(global, "connect_timeout = {}", duration(d));
    }
    if let Some(n) = g.retries {
        let _ = writeln!(global, "retries = {n}");
    }
    let legs = [
        ("client", g.client_congestion_control),
        ("server", g.server_congestion_control),
    ];
    for (leg, cc) in legs {
        if let Some(cc) = cc {
            let _ = writeln!(global, "{leg}_congestion_control = {}", quoted(cc.as_str()));
        }
    }
    if let Some(p) = &g.maintenance_dir {
        let _ = writeln!(
            global,
            "maintenance_dir = {}",
            quoted(&p.display().to_string())
        );
    }
    health_lines(&mut global, &g.health);
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
    for spec in &config.services {
        service(&mut out, spec);
    }
    out.trim_start_matches('\n').to_string()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::schema::parse;

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
}
