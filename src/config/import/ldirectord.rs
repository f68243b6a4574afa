//! ldirectord.cf to a configuration. ldirectord's format: `key=value` lines (blanks
//! around `=` allowed, values optionally in double quotes, `#` lines are comments);
//! unindented lines are global directives, a `virtual=` (or `virtual6=`) line opens a
//! virtual service and the indented lines after it belong to it. ldirectord's implicit
//! defaults are written out (direct routing for real servers, weight 1, the negotiate
//! check), so the result behaves as ldirectord would. Directives uvs has no
//! counterpart for (e-mail alerts, log files, checks of protocols uvs does not speak)
//! are reported with their line.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::{Imported, Importing};
use crate::config::{Check, CheckKind, Health, NegotiateService, ServiceSpec};
use crate::table::{
    Family, Forward, Netmask, Protocol, ServerConfig, ServiceConfig, ServiceFlags, ServiceKey,
    ServiceOptions, Tunnel,
};

/// A virtual service being read.
struct Virtual {
    line: usize,
    /// The address (or mark) as written, and whether `virtual6`.
    target: String,
    ipv6: bool,
    protocol: Option<String>,
    scheduler: String,
    persistent: u32,
    netmask: Option<String>,
    one_packet: bool,
    /// (line, text) of each real.
    reals: Vec<(usize, String)>,
    name: Option<String>,
    comment: Option<String>,
    health: Health,
    /// The line of `checktype`, `service`, for messages.
    service_line: usize,
    service: Option<String>,
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

fn yes(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "on" | "1" => Some(true),
        "no" | "n" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn seconds(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// `IP:port`, `[v6]:port`, or an address alone.
fn address(v: &str) -> Option<(IpAddr, u16)> {
    if let Ok(a) = v.parse::<SocketAddr>() {
        return Some((a.ip(), a.port()));
    }
    let bare = v.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().ok().map(|ip| (ip, 0))
}

fn forward(word: &str) -> Option<Forward> {
    match word {
        "gate" => Some(Forward::Route),
        "masq" => Some(Forward::Masq),
        "ipip" => Some(Forward::Tunnel),
        _ => None,
    }
}

/// `real=` (and `fallback=`): `ADDR[:PORT][->ADDR2[:PORT]] [gate|masq|ipip] [WEIGHT]`;
/// per-real request/receive strings are not taken.
fn reals(text: &str, line: usize, imported: &mut Importing) -> Vec<ServerConfig> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let Some(first) = words.first() else {
        imported.skip(line, "a real server needs an address");
        return Vec::new();
    };
    let mut method = Forward::Route;
    let mut weight = 1;
    for word in &words[1..] {
        if let Some(f) = forward(word) {
            method = f;
        } else if let Ok(w) = word.parse::<i32>() {
            weight = w;
        } else {
            imported.skip(
                line,
                format!("per-server check strings ({word} ...) are not taken; the service's check applies"),
            );
            break;
        }
    }
    let addrs: Vec<(IpAddr, u16)> = match first.split_once("->") {
        None => {
            match address(first) {
                Some(a) => vec![a],
                None => {
                    imported.skip(line, format!("`{first}': not a numeric address (host names are not resolved on import)"));
                    return Vec::new();
                }
            }
        }
        Some((from, to)) => {
            // ldirectord's ranges run over the last octet of an IPv4 address.
            let (to_addr, port) = match to.rsplit_once(':') {
                Some((a, p)) => (a, p.parse::<u16>().ok()),
                None => (to, Some(0)),
            };
            match (from.parse::<Ipv4Addr>(), to_addr.parse::<Ipv4Addr>(), port) {
                (Ok(a), Ok(b), Some(port)) if a.octets()[..3] == b.octets()[..3] && a <= b => {
                    (a.octets()[3]..=b.octets()[3])
                        .map(|last| {
                            let o = a.octets();
                            (IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], last)), port)
                        })
                        .collect()
                }
                _ => {
                    imported.skip(
                        line,
                        format!("`{first}': not a range of IPv4 addresses uvs can expand"),
                    );
                    return Vec::new();
                }
            }
        }
    };
    addrs
        .into_iter()
        .map(|(addr, port)| ServerConfig {
            addr,
            port,
            forward: method,
            weight,
            u_threshold: 0,
            l_threshold: 0,
            tunnel: Tunnel::default(),
        })
        .collect()
}

/// A check directive shared by the global section and virtual services.
fn check_directive(
    key: &str,
    value: &str,
    line: usize,
    health: &mut Health,
    imported: &mut Importing,
) -> bool {
    let c: &mut Check = &mut health.check;
    match key {
        "checktimeout" | "negotiatetimeout" | "connecttimeout" => match seconds(value) {
            Some(d) => c.timeout = Some(d),
            None => imported.skip(line, format!("{key}: not a number of seconds")),
        },
        "checkinterval" => match seconds(value) {
            Some(d) => c.interval = Some(d),
            None => imported.skip(line, "checkinterval: not a number of seconds"),
        },
        "failurecount" => match value.parse::<u32>() {
            Ok(n) if n > 0 => c.failures = Some(n),
            _ => imported.skip(line, "failurecount: not a positive number"),
        },
        "checktype" => match CheckKind::from_name(value) {
            Some(kind) => c.kind = Some(kind),
            None => imported.skip(
                line,
                format!("checktype={value} has no uvs counterpart (connect, negotiate, external, on, off)"),
            ),
        },
        "checkport" => match value.parse::<u16>() {
            Ok(p) if p > 0 => c.port = Some(p),
            _ => imported.skip(line, "checkport: not a port"),
        },
        "request" => c.request = Some(value.to_string()),
        "receive" => match regex::Regex::new(value) {
            Ok(_) => c.receive = Some(value.to_string()),
            Err(e) => imported.skip(line, format!("receive: not a regular expression uvs reads: {e}")),
        },
        "virtualhost" => c.virtualhost = Some(value.to_string()),
        "httpmethod" => match value {
            "GET" | "HEAD" => c.method = Some(value.to_string()),
            _ => imported.skip(line, "httpmethod: GET or HEAD"),
        },
        "checkcommand" => c.command = Some(value.to_string()),
        "quiescent" => match yes(value) {
            Some(q) => health.quiescent = Some(q),
            None => imported.skip(line, "quiescent: yes or no"),
        },
        _ => return false,
    }
    true
}

/// Imports an ldirectord.cf.
pub fn import(text: &str) -> Imported {
    let mut imported = Importing::default();
    // The block being read; each is made a service when the next begins, so a file of
    // a million `virtual=` lines holds one at a time.
    let mut current: Option<Virtual> = None;
    let mut global_health = Health::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            imported.skip_with(line, || format!("`{trimmed}': not a key=value directive"));
            continue;
        };
        let (key, value) = (key.trim(), unquote(value));
        let indented = raw.starts_with([' ', '\t']);
        if key == "virtual" || key == "virtual6" {
            let next = Virtual {
                line,
                target: value.to_string(),
                ipv6: key == "virtual6",
                protocol: None,
                scheduler: "wrr".to_string(),
                persistent: 0,
                netmask: None,
                one_packet: false,
                reals: Vec::new(),
                name: None,
                comment: None,
                health: Health::default(),
                service_line: line,
                service: None,
            };
            if let Some(done) = current.replace(next) {
                add_service(done, &mut imported);
            }
            continue;
        }
        match current.as_mut() {
            Some(v) if indented => virtual_directive(v, key, value, line, &mut imported),
            _ => global_directive(key, value, line, &mut global_health, &mut imported),
        }
    }
    imported.config.global.health.check = global_health.check.clone();
    imported.config.global.health.quiescent = global_health.quiescent;
    imported.config.global.health.fallback = global_health.fallback.clone();
    if let Some(done) = current {
        add_service(done, &mut imported);
    }
    // In the order of the file, though a service's lines come once its block is read.
    imported.finish()
}

fn global_directive(
    key: &str,
    value: &str,
    line: usize,
    health: &mut Health,
    imported: &mut Importing,
) {
    if check_directive(key, value, line, health, imported) {
        return;
    }
    match key {
        "autoreload" => match yes(value) {
            Some(on) => imported.config.global.autoreload = on,
            None => imported.skip(line, "autoreload: yes or no"),
        },
        "fallback" | "fallback6" => {
            health.fallback = reals(value, line, imported).into_iter().next();
        }
        "maintenancedir" => imported.config.global.maintenance_dir = Some(value.into()),
        "cleanstop" => match yes(value) {
            Some(on) => imported.config.global.cleanstop = Some(on),
            None => imported.skip(line, "cleanstop: yes or no"),
        },
        _ => imported.skip(line, format!("{key}: no uvs counterpart; not taken")),
    }
}

fn virtual_directive(
    v: &mut Virtual,
    key: &str,
    value: &str,
    line: usize,
    imported: &mut Importing,
) {
    if check_directive(key, value, line, &mut v.health, imported) {
        return;
    }
    match key {
        "real" | "real6" => v.reals.push((line, value.to_string())),
        "fallback" | "fallback6" => {
            v.health.fallback = reals(value, line, imported).into_iter().next();
        }
        "scheduler" => v.scheduler = value.to_string(),
        "persistent" => match value.parse::<u32>() {
            Ok(p) => v.persistent = p,
            Err(_) => imported.skip(line, "persistent: not a number of seconds"),
        },
        "netmask" => v.netmask = Some(value.to_string()),
        "protocol" => v.protocol = Some(value.to_ascii_lowercase()),
        "service" => {
            v.service = Some(value.to_ascii_lowercase());
            v.service_line = line;
        }
        "servicename" => v.name = Some(value.to_string()),
        "comment" => v.comment = Some(value.to_string()),
        "ops" => v.one_packet = yes(value).unwrap_or(false),
        _ => imported.skip(line, format!("{key}: no uvs counterpart; not taken")),
    }
}

/// The service a virtual block makes, if it makes one.
fn add_service(v: Virtual, imported: &mut Importing) {
    if let Some(spec) = service(v, imported) {
        imported.config.services.push(spec);
    }
}

/// ldirectord's default `service` for a port.
fn service_for_port(port: u16) -> Option<&'static str> {
    Some(match port {
        25 => "smtp",
        53 => "dns",
        80 => "http",
        443 => "https",
        _ => return None,
    })
}

fn service(v: Virtual, imported: &mut Importing) -> Option<ServiceSpec> {
    let protocol = v.protocol.as_deref().unwrap_or("tcp");
    let key = if protocol == "fwm" || v.target.parse::<u32>().is_ok() {
        let Ok(mark) = v.target.parse::<u32>() else {
            imported.skip(
                v.line,
                format!("virtual={}: protocol=fwm needs a mark", v.target),
            );
            return None;
        };
        ServiceKey::Fwmark {
            mark,
            family: if v.ipv6 { Family::Inet6 } else { Family::Inet },
        }
    } else {
        let Some((addr, port)) = address(&v.target) else {
            imported.skip(
                v.line,
                format!("virtual={}: not a numeric address and port", v.target),
            );
            return None;
        };
        let protocol = match protocol {
            "udp" => Protocol::Udp,
            "tcp" => Protocol::Tcp,
            other => {
                imported.skip(
                    v.line,
                    format!("protocol={other}: uvs serves tcp, udp and fwm"),
                );
                return None;
            }
        };
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        }
    };
    let family = key.family();
    let netmask = match (&v.netmask, family) {
        (None, _) => Netmask::full(family),
        (Some(m), Family::Inet) => match m.parse::<Ipv4Addr>() {
            Ok(m) => Netmask::V4(m),
            Err(_) => {
                imported.skip(v.line, format!("netmask={m}: not an IPv4 netmask"));
                Netmask::full(family)
            }
        },
        (Some(m), Family::Inet6) => match m.parse::<u32>() {
            Ok(p) => Netmask::V6(p),
            Err(_) => {
                imported.skip(v.line, format!("netmask={m}: not a prefix length"));
                Netmask::full(family)
            }
        },
    };
    let mut flags = 0;
    if v.persistent > 0 {
        flags |= ServiceFlags::PERSISTENT;
    }
    if v.one_packet {
        flags |= ServiceFlags::ONE_PACKET;
    }
    let mut health = v.health;
    // ldirectord checks with negotiate unless told otherwise, speaking the protocol its
    // `service` (or, failing that, the port) names.
    let kind = health.check.kind.unwrap_or(CheckKind::Negotiate);
    if kind == CheckKind::Negotiate {
        let port = match key {
            ServiceKey::Inet { port, .. } => port,
            ServiceKey::Fwmark { .. } => health.check.port.unwrap_or(0),
        };
        let name = v
            .service
            .clone()
            .or_else(|| service_for_port(health.check.port.unwrap_or(port)).map(str::to_string));
        match name.as_deref().map(|n| (n, NegotiateService::from_name(n))) {
            Some((_, Some(s))) => {
                health.check.kind = Some(CheckKind::Negotiate);
                health.check.service = Some(s);
            }
            Some(("none", None)) | None => {
                // ldirectord's negotiate without a protocol only connects.
                health.check.kind = Some(CheckKind::Connect);
            }
            Some((other, None)) => {
                imported.skip(
                    v.service_line,
                    format!("service={other}: uvs negotiates http, https, simpletcp, smtp and dns only; a connect check is used instead"),
                );
                health.check.kind = Some(CheckKind::Connect);
            }
        }
    }
    let mut servers: Vec<ServerConfig> = Vec::new();
    // The keys already listed, so that a service of many reals (ranges of 255 each)
    // takes steps in proportion to them, not to their square.
    let mut listed = HashSet::new();
    for (line, text) in &v.reals {
        // A line's servers listed before: the first, and how many. One message a line,
        // not one for each server of its range.
        let mut twice = None;
        for server in reals(text, *line, imported) {
            let key = server.key();
            if listed.insert(key) {
                servers.push(server);
            } else {
                twice.get_or_insert((key, 0)).1 += 1;
            }
        }
        match twice {
            Some((key, 1)) => imported.skip(*line, format!("{key}: listed twice")),
            Some((key, n)) => {
                imported.skip(*line, format!("{key} and {} more: listed twice", n - 1))
            }
            None => {}
        }
    }
    Some(ServiceSpec {
        service: ServiceConfig {
            key,
            scheduler: v.scheduler,
            flags: ServiceFlags(flags),
            timeout: v.persistent,
            netmask,
            pe: None,
            options: ServiceOptions::default(),
        },
        servers,
        listen: Vec::new(),
        name: v.name,
        comment: v.comment,
        health,
        server_checks: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::render::render;

    /// The lines not taken, with why.
    fn skipped_lines(imported: &Imported) -> Vec<(usize, &str)> {
        imported
            .skipped
            .iter()
            .map(|s| (s.line, s.message.as_str()))
            .collect()
    }

    #[test]
    fn a_virtual_service_with_its_checks_and_fallback() {
        let text = "\
checktimeout=3
checkinterval=1
autoreload=yes
quiescent=no
logfile=\"/var/log/ldirectord.log\"

virtual=10.0.0.1:80
\treal=10.0.0.2->10.0.0.3:80 gate
\treal=10.0.0.9:8080 masq 5
\tfallback=127.0.0.1:80 gate
\tservice=http
\tscheduler=rr
\tpersistent=600
\tprotocol=tcp
\tchecktype=negotiate
\trequest=\"index.html\"
\treceive=\"Test Page\"

virtual = 10.0.0.1:21
\treal=10.0.0.2:21
\tservice=ftp
\tlogin=\"anonymous\"
";
        let imported = import(text);
        let lines = skipped_lines(&imported);
        assert_eq!(
            lines,
            [
                (5, "logfile: no uvs counterpart; not taken"),
                (
                    21,
                    "service=ftp: uvs negotiates http, https, simpletcp, smtp and dns only; a connect check is used instead"
                ),
                (22, "login: no uvs counterpart; not taken"),
            ]
        );
        assert_eq!(
            render(&imported.config),
            r#"[global]
autoreload = true
quiescent = false

[global.check]
interval = "1s"
timeout = "3s"

[[service]]
tcp = "10.0.0.1:80"
scheduler = "rr"
persistent = "10m"
fallback = { address = "127.0.0.1:80", forward = "gate" }

[service.check]
type = "negotiate"
service = "http"
request = "index.html"
receive = "Test Page"

[[service.server]]
address = "10.0.0.2:80"
forward = "gate"

[[service.server]]
address = "10.0.0.3:80"
forward = "gate"

[[service.server]]
address = "10.0.0.9:8080"
weight = 5

[[service]]
tcp = "10.0.0.1:21"
scheduler = "wrr"

[service.check]
type = "connect"

[[service.server]]
address = "10.0.0.2:21"
forward = "gate"
"#
        );
    }

    #[test]
    fn servers_listed_twice_are_one_message_a_line() {
        let text = "\
virtual=10.0.0.1:80
\treal=10.0.0.1->10.0.0.3:80
\treal=10.0.0.2:80
\treal=10.0.0.1->10.0.0.4:80
";
        let imported = import(text);
        let lines = skipped_lines(&imported);
        assert_eq!(
            lines,
            [
                (3, "10.0.0.2:80: listed twice"),
                (4, "10.0.0.1:80 and 2 more: listed twice")
            ]
        );
        assert_eq!(imported.config.services[0].servers.len(), 4);
    }

    #[test]
    fn a_file_of_junk_keeps_the_first_hundred_lines_in_order_and_counts_all() {
        // Junk, and services whose problems are found once their block is read.
        let mut text = String::new();
        for i in 0..300 {
            text.push_str(if i % 3 == 0 {
                "virtual=nowhere\n"
            } else {
                "junk\n"
            });
        }
        let imported = import(&text);
        assert_eq!(imported.skipped_total, 300);
        assert_eq!(imported.skipped.len(), crate::config::capped::SHOWN);
        assert_eq!(
            (
                imported.skipped[0].line,
                imported.skipped[0].message.as_str()
            ),
            (1, "virtual=nowhere: not a numeric address and port")
        );
        assert_eq!(
            (
                imported.skipped[99].line,
                imported.skipped[99].message.as_str()
            ),
            (100, "virtual=nowhere: not a numeric address and port")
        );
        assert_eq!(
            imported.skipped[1].message, "`junk': not a key=value directive",
            "line 2"
        );
        assert!(imported.skipped.windows(2).all(|w| w[0].line < w[1].line));
    }
}
