//! The TOML schema: `[global]`, `[timeouts]`, `[sync]` (`super::sync`), and
//! `[[service]]` tables each with their `[[service.server]]` tables, read into a
//! [`Config`]. Every problem is collected with
//! its position; a file that reads cleanly is then rehearsed against an empty table, so
//! that what the table itself would refuse (an unknown scheduler, a netmask of the wrong
//! family, thresholds the wrong way round) is reported at the service or server that
//! asks for it, with IPVS's own words.
//!
//! ```toml
//! [global]
//! autoreload = true
//!
//! [timeouts]
//! tcp = "15m"
//! udp = "5m"
//!
//! [[service]]
//! tcp = "127.0.0.1:80"            # or udp, sctp = "...", or fwmark = 7 (ipv6 = true)
//! scheduler = "wrr"
//! persistent = "10m"              # or true (300 s)
//! netmask = "255.255.255.0"       # or a prefix length
//!
//! [[service.server]]
//! address = "127.0.0.1:8080"      # without a port: the service's port
//! weight = 3
//! forward = "masq"                # masq (nat), gate (dr, route), ipip (tun)
//! ```
//!
//! A `[[service]]` with `group = "NAME"` is a group of virtual services sharing its
//! real servers and checks (keepalived's `virtual_server_group`, `group`): `tcp`,
//! `udp` and `sctp` then take an array of members, each `"ADDR:PORT"` or a range of
//! whole addresses `"10.0.0.1-10.0.0.9:80"` / `"[2001:db8::1-2001:db8::9]:80"`, and
//! `fwmark` an array of marks (of the addresses' family, or `ipv6 = true`); each
//! member becomes one virtual service, at most [`group::MAX_MEMBERS`] in all.
//!
//! A real server's port is read as ipvsadm's parser reads `-r`: an address without a
//! port takes the service's port (0 in an fwmark or port-0 service: the port the client
//! reached), and a gate or ipip server of an address service takes the service's port
//! whatever port it names (`ServerConfig::in_service`, the table's rule), so the
//! configuration holds the servers the table will list.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::group::{self, Written};
use super::reader::{Item, Problems, Report, Table, document};
use super::{
    Check, CheckCommand, CheckKind, Config, DnsType, Global, Health, MAX_CHECKS, Mode,
    NegotiateService, NotifyCommand, ServerHealth, ServiceSpec, Url,
};
use crate::proxy::congestion::CongestionControl;
use crate::table::slow_start::MAX_WINDOW_MS;
use crate::table::{
    Command, Family, Forward, ListenAddr, ListenRule, Netmask, Protocol, ProxyProtocol,
    QueueOptions, ServerConfig, ServiceConfig, ServiceFlags, ServiceKey, ServiceOptions,
    Table as VsTable, Timeouts, Tunnel, TunnelChecksum, TunnelKind, UnicastOnly, listener,
};

/// The longest persistence ipvsadm accepts (31 days).
const MAX_PERSISTENCE: u64 = 2_678_400;
/// The longest connection timeout `--set` takes here: a year.
const MAX_TIMEOUT: u64 = 31_536_000;
/// The most connections `max_connections` may allow on one server.
pub const MAX_CONNECTIONS: u32 = i32::MAX as u32;
/// The longest queue a service may have: far beyond what a descriptor budget serves.
pub const MAX_QUEUE_LENGTH: u32 = 1_000_000;
/// The heaviest real server a file may name: ipvsadm(8)'s documented 0 to 65535 (its
/// parser, and the table, take up to INT_MAX; `uvs import ipvsadm` reports what is
/// heavier, as the ldirectord and keepalived imports do).
pub const MAX_WEIGHT: i32 = 65_535;

/// Whether a file can hold IPv4 persistence netmask `mask`: only contiguous ones (a
/// prefix); ipvsadm's -M takes any address (`uvs import ipvsadm` reports the others).
pub fn holds_netmask(mask: Ipv4Addr) -> bool {
    u32::from(mask).leading_ones() == u32::from(mask).count_ones()
}

/// Reads `text` (the contents of `file`) into a configuration, or its problems (all
/// counted, the first hundred listed: `reader`).
pub fn parse(text: &str, file: &Path) -> Result<Config, Problems> {
    parse_noting(text, file, &Report::new(text))
}

/// What `uvs check` warns about in `text` (the contents of `file`), whether or not it
/// has problems: real servers the table will hold at another port than the file names
/// (a gate or ipip server of an address service takes the service's port, silently in
/// ipvsadm). One line each, `FILE:LINE:COLUMN: warning: KEY: MESSAGE`, in the file's
/// order.
pub fn warnings(text: &str, file: &Path) -> Vec<String> {
    let notes = Report::new(text);
    let _ = parse_noting(text, file, &notes);
    match notes.finish(file) {
        Ok(()) => Vec::new(),
        Err(found) => found
            .list
            .iter()
            .map(|n| {
                format!(
                    "{}:{}:{}: warning: {}: {}",
                    file.display(),
                    n.line,
                    n.column,
                    n.key,
                    n.message
                )
            })
            .collect(),
    }
}

/// [`parse`], with what is worth a warning but is no problem reported to `notes`.
fn parse_noting(text: &str, file: &Path, notes: &Report<'_>) -> Result<Config, Problems> {
    let report = Report::new(text);
    let Some(doc) = document(text, &report) else {
        return report.finish(file).map(|()| Config::default());
    };
    let root = Table::new(&doc, "", &report);
    let (global, admission) = root
        .get("global")
        .and_then(|g| g.table())
        .map(|t| {
            let global = read_global(&t);
            let ports = global.source.as_ref().and_then(|s| s.config().ports);
            super::source::note_ports(&t, ports, &[], notes);
            (global, super::admission::read_admission(&t))
        })
        .unwrap_or_default();
    let timeouts = root
        .get("timeouts")
        .and_then(|t| t.table())
        .and_then(|t| read_timeouts(&t));
    let mut services = Vec::new();
    let mut origins = Vec::new();
    if let Some(list) = root.get("service") {
        let mut seen = HashSet::new();
        let mut groups = HashSet::new();
        for (table, span) in list.tables() {
            let Some((mut spec, server_spans, members)) = read_service(&table, &span, notes) else {
                continue;
            };
            // A service that says nothing of its sources takes `[global]`'s.
            if table.get("source").is_none() && table.get("source_ports").is_none() {
                spec.service.options.source.clone_from(&global.source);
            }
            let Some(members) = members else {
                if !seen.insert(spec.service.key) {
                    report.at(&span, table.path(), "this service is already defined above");
                    continue;
                }
                services.push(spec);
                origins.push(Origin {
                    span,
                    path: table.path().to_string(),
                    servers: server_spans,
                });
                continue;
            };
            if !groups.insert(members.name.clone()) {
                report.at(
                    &members.name_span,
                    &format!("{}.group", table.path()),
                    format!("group {:?} is already defined above", members.name),
                );
                continue;
            }
            let keys: Vec<ServiceKey> = members.keys.iter().map(|m| m.0).collect();
            let expanded = group::expand(&spec, &members.written, &members.name, &keys);
            for (spec, (key, member_span, path)) in expanded.into_iter().zip(members.keys) {
                if !seen.insert(key) {
                    report.at(
                        &member_span,
                        &path,
                        format!("{key}: this virtual service is already defined above"),
                    );
                    continue;
                }
                services.push(spec);
                origins.push(Origin {
                    span: span.clone(),
                    path: table.path().to_string(),
                    servers: server_spans.clone(),
                });
            }
        }
    }
    let sync = root
        .get("sync")
        .and_then(|item| {
            let span = item.span.clone();
            item.table().map(|t| super::sync::read_sync(&t, &span))
        })
        .unwrap_or_default();
    drop(root);
    let config = Config {
        global,
        timeouts,
        admission,
        services,
        sync,
    };
    // What read cleanly is also tried on a table, so that its refusals come in the
    // same pass.
    rehearse(&config, &origins, &report);
    report.finish(file).map(|()| config)
}

/// Where a service came from in the file: its table's span and path, and its servers'
/// spans.
struct Origin {
    span: Range<usize>,
    path: String,
    servers: Vec<Range<usize>>,
}

/// Applies the whole configuration to an empty table, reporting what it refuses where
/// the file asked for it.
fn rehearse(config: &Config, origins: &[Origin], report: &Report<'_>) {
    let mut table = VsTable::new();
    // The members of a group ask for the same things at the same place: one report.
    let reported = std::cell::RefCell::new(HashSet::new());
    let report_at = |span: &Range<usize>, path: &str, message: String| {
        if reported
            .borrow_mut()
            .insert((path.to_string(), message.clone()))
        {
            report.at(span, path, message);
        }
    };
    // Services refused: their listen rules are not looked at.
    let mut refused = HashSet::new();
    for (
        spec,
        Origin {
            span,
            path,
            servers: server_spans,
        },
    ) in config.services.iter().zip(origins)
    {
        if let Err(e) = table.apply(&Command::AddService(spec.service.clone()), &UnicastOnly) {
            report_at(span, path, e.to_string());
            refused.insert(spec.service.key);
            continue;
        }
        for (i, server) in spec.servers.iter().enumerate() {
            let command = Command::AddServer {
                service: spec.service.key,
                server: server.clone(),
            };
            if let Err(e) = table.apply(&command, &UnicastOnly) {
                // In a group, which member refuses it (a gate server takes its port).
                let message = match &spec.group {
                    Some(_) => format!("in {}: {e}", spec.service.key),
                    None => e.to_string(),
                };
                report_at(&server_spans[i], &format!("{path}.server[{i}]"), message);
            }
        }
    }
    // Listen rules after every service, as the plan adds them: a rule is checked
    // against all the services of the file (`table::listener::check`).
    for (spec, Origin { span, path, .. }) in config.services.iter().zip(origins) {
        if refused.contains(&spec.service.key) {
            continue;
        }
        for rule in &spec.listen {
            if let Err(e) = table.apply(&Command::AddListener(*rule), &UnicastOnly) {
                report_at(
                    span,
                    &format!("{path}.listen"),
                    format!("{}: {e}", rule.listen),
                );
            }
        }
    }
}

fn read_global(t: &Table<'_, '_>) -> Global {
    let mut g = Global {
        source: super::source::read_source(t).flatten(),
        ..Global::default()
    };
    if let Some(item) = t.get("mode") {
        g.mode = item.parsed("\"auto\", \"userspace\" or \"kernel\"", Mode::from_name);
    }
    if let Some(item) = t.get("cleanstop") {
        g.cleanstop = item.bool();
    }
    if let Some(item) = t.get("metrics") {
        let expected = "an address and port, as \"127.0.0.1:9280\", or \"off\"";
        g.metrics = item.parsed(expected, |s| match s {
            "off" => Some(None),
            _ => s.parse::<SocketAddr>().ok().map(Some),
        });
    }
    if let Some(item) = t.get("status_page") {
        g.status_page = item.bool();
    }
    if let Some(item) = t.get("connect_timeout") {
        g.connect_timeout =
            item.nonzero_duration(3600, "a duration of at least 1ms and at most an hour");
    }
    if let Some(item) = t.get("retries") {
        g.retries = item.integer(0..=100).map(|n| n as u32);
    }
    g.client_congestion_control = read_congestion(t, "client_congestion_control");
    g.server_congestion_control = read_congestion(t, "server_congestion_control");
    if let Some(item) = t.get("socket") {
        g.socket = item.str("a path").map(PathBuf::from);
    }
    if let Some(item) = t.get("autoreload") {
        g.autoreload = item.bool().unwrap_or(false);
    }
    if let Some(item) = t.get("threads") {
        g.threads = item.integer(1..=1024).map(|n| n as u16);
    }
    if let Some(item) = t.get("forwarding") {
        g.forwarding = item
            .str("\"auto\", \"splice\" or \"copy\"")
            .and_then(|s| match s.parse() {
                Ok(f) => Some(f),
                Err(e) => {
                    item.problem(e);
                    None
                }
            });
    }
    if let Some(item) = t.get("max_udp_flows") {
        g.max_udp_flows = item.integer(1..=i64::from(u32::MAX)).map(|n| n as u32);
    }
    if let Some(item) = t.get("max_connections") {
        g.max_connections = item.integer(1..=i64::from(u32::MAX)).map(|n| n as u32);
    }
    if let Some(item) = t.get("metrics_max_connections") {
        g.metrics_max_connections = item.integer(1..=65_536).map(|n| n as u32);
    }
    if let Some(item) = t.get("udp_unreplied_timeout") {
        g.udp_unreplied_timeout =
            item.nonzero_duration(86_400, "a duration of at least 1s and at most a day");
    }
    if let Some(item) = t.get("max_templates") {
        g.max_templates = item.integer(1..=i64::from(u32::MAX)).map(|n| n as u32);
    }
    if let Some(item) = t.get("udp_flows_per_source") {
        g.udp_flows_per_source = item.integer(1..=i64::from(u32::MAX)).map(|n| n as u32);
    }
    if let Some(item) = t.get("drain_timeout") {
        g.drain_timeout = item.duration(0..=86_400);
    }
    if let Some(item) = t.get("expire_quiescent_template") {
        g.expire_quiescent_template = item.bool();
    }
    if let Some(item) = t.get("maintenance_dir") {
        g.maintenance_dir = item.str("a directory").map(PathBuf::from);
    }
    g.health = read_health(t, false, None);
    g
}

/// A congestion control's name, as the kernel takes it; whether this kernel has it is
/// for `uvs run` to find out.
fn read_congestion(t: &Table<'_, '_>, key: &str) -> Option<CongestionControl> {
    let item = t.get(key)?;
    let name = item.str("the name of a TCP congestion control, as \"cubic\"")?;
    match name.parse() {
        Ok(cc) => Some(cc),
        Err(e) => {
            item.problem(e.to_string());
            None
        }
    }
}

/// `check`, `quiescent` and `fallback` of a service (`in_service`; `service`: its key,
/// when it has one: a group whose members did not read has none), or their defaults
/// in `[global]` (a global fallback is fitted to each service by the planner).
fn read_health(
    t: &Table<'_, '_>,
    in_service: bool,
    service: Option<(&ServiceKey, &Report<'_>)>,
) -> Health {
    let mut health = Health::default();
    if let Some(item) = t.get("check") {
        if !in_service && matches!(item.value, toml::de::DeValue::Array(_)) {
            // One set of defaults: several checks are a service's or a server's.
            item.wrong("a table (the defaults of every check)");
        } else if let Some((first, more)) = read_checks(&item) {
            health.check = first;
            health.more_checks = more;
        }
    }
    if let Some(item) = t.get("quiescent") {
        health.quiescent = item.bool();
    }
    if let Some(item) = t.get("fallback")
        && let Some(table) = item.table()
    {
        let key = service.map(|(key, _)| key);
        health.fallback = read_server(&table, &item.span, key).map(|asked| match service {
            Some((key, notes)) => fitted(asked, key, false, &item.span, table.path(), notes),
            None => asked,
        });
        if let Some(q) = table.get("quiescent") {
            health.fallback_quiescent = q.bool();
        }
    }
    read_states(t, in_service, &mut health);
    if in_service && let Some(item) = t.get("ha_suspend") {
        health.ha_suspend = item.bool();
        if health.ha_suspend == Some(true)
            && service.is_some_and(|(key, _)| matches!(key, ServiceKey::Fwmark { .. }))
        {
            // check_data.c `validate_check_config` clears it, with an error.
            item.problem(
                "ha_suspend looks for the service's address, and a fwmark service has none",
            );
            health.ha_suspend = None;
        }
    }
    health
}

/// keepalived's `alpha` and `omega` (service or `[global]`), and a service's `quorum`,
/// `hysteresis`, `quorum_up` and `quorum_down`. keepalived's parser takes a quorum
/// from 1 (check_parser.c `quorum_handler`) and lowers a hysteresis that is not below
/// it (check_data.c `validate_check_config`); uvs refuses that instead of guessing.
fn read_states(t: &Table<'_, '_>, service: bool, health: &mut Health) {
    if let Some(item) = t.get("alpha") {
        health.alpha = item.bool();
    }
    if let Some(item) = t.get("omega") {
        health.omega = item.bool();
    }
    if !service {
        return;
    }
    if let Some(item) = t.get("quorum") {
        health.quorum = item.integer(1..=i64::from(u32::MAX)).map(|n| n as u32);
    }
    if let Some(item) = t.get("hysteresis")
        && let Some(n) = item.integer(0..=i64::from(u32::MAX))
    {
        let quorum = health.quorum.unwrap_or(1);
        if n >= i64::from(quorum) {
            item.problem(format!(
                "the hysteresis must be less than the quorum ({quorum}), or the quorum could never be regained or lost"
            ));
        } else {
            health.hysteresis = Some(n as u32);
        }
    }
    health.quorum_up = command(t, "quorum_up");
    health.quorum_down = command(t, "quorum_down");
}

/// A notify command from `key` of `t`: a command line that [`super::words`] can
/// split, or a table of one (`command`) with the `user` and `group` it runs as, names
/// the system knows (keepalived ignores a script whose user it cannot find).
fn command(t: &Table<'_, '_>, key: &str) -> Option<NotifyCommand> {
    let item = t.get(key)?;
    let expected =
        "a command line, as \"/usr/local/bin/notify up\", or a table with command, user and group";
    let line = |item: &Item<'_, '_>| {
        let line = item.str(expected)?;
        match super::words(line) {
            Ok(_) => Some(line.to_string()),
            Err(e) => {
                item.problem(format!("not a command: {e}"));
                None
            }
        }
    };
    let toml::de::DeValue::Table(_) = item.value else {
        return line(&item).map(NotifyCommand::from);
    };
    let table = item.table()?;
    let command = table.get("command");
    let name = |key: &str| {
        let item = table.get(key)?;
        let name = item.str(&format!("the name of a {key}"))?.to_string();
        Some((item, name))
    };
    let (user, group) = (name("user"), name("group"));
    match (&user, &group) {
        (Some((uitem, u)), g) => {
            match super::words::run_as(u, g.as_ref().map(|(_, g)| g.as_str())) {
                Ok(_) => {}
                Err(e @ super::words::RunAsError::NoGroup(_)) => {
                    if let Some((gitem, _)) = g {
                        gitem.problem(e.to_string());
                    }
                }
                Err(e) => uitem.problem(e.to_string()),
            }
        }
        (None, Some((gitem, _))) => gitem.problem("a group needs a user"),
        (None, None) => {}
    }
    let Some(command) = command else {
        item.problem("a notify table needs a command");
        return None;
    };
    Some(NotifyCommand {
        line: line(&command)?,
        user: user.map(|(_, u)| u),
        group: group.map(|(_, g)| g),
    })
}

/// A real server's own `quiescent`, `notify_up` and `notify_down`; None if it has none.
fn read_server_health(t: &Table<'_, '_>) -> Option<ServerHealth> {
    let mut own = ServerHealth::default();
    if let Some(item) = t.get("quiescent") {
        own.quiescent = item.bool();
    }
    own.notify_up = command(t, "notify_up");
    own.notify_down = command(t, "notify_down");
    (own != ServerHealth::default()).then_some(own)
}

/// `check` as one table, or as an array of tables (`[[service.check]]`: several checks,
/// keepalived's several checkers of one real server), at most [`MAX_CHECKS`] (the one
/// past it is refused where it starts); the first and the others, None without any.
fn read_checks(item: &Item<'_, '_>) -> Option<(Check, Vec<Check>)> {
    let mut checks = if matches!(item.value, toml::de::DeValue::Array(_)) {
        let tables = item.tables();
        if let Some((_, span)) = tables.get(MAX_CHECKS) {
            item.report.at(
                span,
                &format!("{}[{MAX_CHECKS}]", item.key),
                format!("at most {MAX_CHECKS} checks for one real server"),
            );
        }
        // Each is read, so that its own faults are told too.
        let mut checks: Vec<Check> = tables.iter().map(|(table, _)| read_check(table)).collect();
        checks.truncate(MAX_CHECKS);
        checks
    } else {
        vec![read_check(&item.table()?)]
    }
    .into_iter();
    let first = checks.next()?;
    Some((first, checks.collect()))
}

fn read_check(t: &Table<'_, '_>) -> Check {
    let mut c = Check::default();
    if let Some(item) = t.get("type") {
        c.kind = item.parsed(&one_of(CheckKind::NAMES), CheckKind::from_name);
    }
    if let Some(item) = t.get("service") {
        c.service = item.parsed(
            &one_of(NegotiateService::NAMES),
            NegotiateService::from_name,
        );
    }
    if let Some(item) = t.get("port") {
        c.port = item.integer(1..=65535).map(|p| p as u16);
    }
    if let Some(item) = t.get("interval") {
        c.interval = item.duration(1..=86_400);
    }
    if let Some(item) = t.get("timeout") {
        c.timeout = item.duration(1..=3600);
    }
    if let Some(item) = t.get("failures") {
        c.failures = item.integer(1..=1000).map(|n| n as u32);
    }
    if let Some(item) = t.get("rise") {
        c.rise = item.integer(1..=1000).map(|n| n as u32);
    }
    let text =
        |key: &str, expected: &str| t.get(key).and_then(|i| i.str(expected).map(str::to_string));
    c.request = text("request", "the request, as \"/index.html\"");
    c.virtualhost = text("virtualhost", "a host name");
    if let Some(item) = t.get("command") {
        c.command = read_check_command(&item);
    }
    if let Some(item) = t.get("target_arguments") {
        c.target_arguments = item.bool();
    }
    if let Some(item) = t.get("receive")
        && let Some(pattern) = item.str("a regular expression")
    {
        match regex::Regex::new(pattern) {
            Ok(_) => c.receive = Some(pattern.to_string()),
            Err(e) => item.problem(format!("not a regular expression: {e}")),
        }
    }
    if let Some(item) = t.get("method") {
        c.method = item.parsed("\"GET\" or \"HEAD\"", |m| {
            matches!(m, "GET" | "HEAD").then(|| m.to_string())
        });
    }
    if let Some(item) = t.get("status") {
        c.status = read_statuses(&item);
    }
    if let Some(item) = t.get("dynamic_weight") {
        c.dynamic_weight = item.bool();
    }
    if let Some(item) = t.get("verify_certificate") {
        c.verify_certificate = item.bool();
    }
    if let Some(item) = t.get("warmup") {
        c.warmup = item.duration(0..=86_400);
    }
    if let Some(item) = t.get("failures_at_start") {
        c.failures_at_start = item.integer(1..=1000).map(|n| n as u32);
    }
    if let Some(item) = t.get("retry_delay") {
        c.retry_delay = item.duration(0..=86_400);
    }
    read_run_as(t, &mut c);
    read_check_kinds(t, &mut c);
    // A dns check's name, where this table says it is one (as the checker would find
    // when it builds the check: `health::check::dns`).
    if c.service == Some(NegotiateService::Dns)
        && let Some(name) = &c.request
        && let Some(fault) = super::dns_name_fault(name)
        && let Some(item) = t.get("request")
    {
        item.problem(fault);
        c.request = None;
    }
    c
}

/// An external check's `command`: a line (split at white space when run) or an array
/// of its words, the program first, each run as written.
fn read_check_command(item: &Item<'_, '_>) -> Option<CheckCommand> {
    let expected = "a command line, or its words as an array of strings";
    match item.value {
        toml::de::DeValue::Array(_) => {
            let words: Option<Vec<String>> = item
                .array(expected)
                .iter()
                .map(|w| {
                    w.str("a word, as \"/usr/local/bin/check\"")
                        .map(str::to_string)
                })
                .collect();
            let words = words?;
            if words.first().is_none_or(|w| w.is_empty()) {
                item.problem("expected the program as the first word");
                return None;
            }
            Some(CheckCommand::Words(words))
        }
        _ => item
            .str(expected)
            .map(|line| CheckCommand::Line(line.to_string())),
    }
}

/// `transport` of a dns check: "tcp" or "udp" (keepalived's DNS_CHECK speaks UDP);
/// refused in a table that makes the check another kind, where it would mean nothing.
fn read_transport(t: &Table<'_, '_>, c: &mut Check) {
    let Some(item) = t.get("transport") else {
        return;
    };
    c.transport = item.parsed("\"tcp\" or \"udp\"", |p| match p {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        _ => None,
    });
    let dns = match (c.kind, c.service) {
        (Some(k), _) if k != CheckKind::Negotiate => false,
        (_, Some(s)) => s == NegotiateService::Dns,
        _ => true,
    };
    if c.transport.is_some() && !dns {
        item.problem("transport is for dns checks only (keepalived's DNS_CHECK speaks UDP)");
        c.transport = None;
    }
}

/// `user` and `group` of an external check: names the system knows (keepalived's
/// parser refuses unknown ones too).
fn read_run_as(t: &Table<'_, '_>, c: &mut Check) {
    let name = |key: &str| {
        let item = t.get(key)?;
        let name = item.str(&format!("the name of a {key}"))?;
        Some((item, name.to_string()))
    };
    let user = name("user");
    let group = name("group");
    if let Some((item, user)) = &user {
        let g = group.as_ref().map(|(_, g)| g.as_str());
        match super::words::run_as(user, g) {
            Ok(_) => {}
            Err(e @ super::words::RunAsError::NoGroup(_)) => {
                if let Some((gitem, _)) = &group {
                    gitem.problem(e.to_string());
                }
            }
            Err(e) => item.problem(e.to_string()),
        }
    } else if let Some((item, _)) = &group {
        item.problem("a group needs a user");
    }
    c.user = user.map(|(_, u)| u);
    c.group = group.map(|(_, g)| g);
}

/// The settings of keepalived's check kinds (issue 15): digest, several URLs, DNS
/// types, the file check, SMTP's HELO, and where a check connects from and to.
fn read_check_kinds(t: &Table<'_, '_>, c: &mut Check) {
    if let Some(item) = t.get("digest") {
        c.digest = read_digest(&item);
    }
    if let Some(item) = t.get("url") {
        let urls: Vec<Url> = item
            .tables()
            .into_iter()
            .filter_map(|(u, span)| read_url(&u, &span))
            .collect();
        if matches!(item.value, toml::de::DeValue::Array(a) if a.is_empty()) {
            item.problem("expected at least one [[url]] table");
        }
        if !urls.is_empty() {
            if let Some(request) = t.get("request") {
                request.problem("request and url tables: give each URL's path in its table");
            }
            c.urls = Some(urls);
        }
    }
    if let Some(item) = t.get("query_type") {
        c.query_type = item.parsed(&one_of(DnsType::NAMES), DnsType::from_name);
    }
    if let Some(item) = t.get("require_answer") {
        c.require_answer = item.bool();
    }
    read_transport(t, c);
    if let Some(item) = t.get("path") {
        c.path = item.parsed("an absolute path, as \"/run/weight\"", |p| {
            p.starts_with('/').then(|| PathBuf::from(p))
        });
    }
    if let Some(item) = t.get("weight") {
        c.file_weight = item
            .integer(-i64::from(i32::MAX)..=i64::from(i32::MAX))
            .map(|w| w as i32);
    }
    if let Some(item) = t.get("reverse") {
        c.reverse = item.bool();
    }
    if let Some(item) = t.get("helo") {
        c.helo = item.parsed("a host name, as \"lb.example.com\"", |h| {
            super::helo_sendable(h).then(|| h.to_string())
        });
    }
    if let Some(item) = t.get("source") {
        c.source = item.parsed("an address, as \"10.0.0.5\"", |a| a.parse().ok());
    }
    if let Some(item) = t.get("source_port") {
        c.source_port = item.integer(1..=65535).map(|p| p as u16);
    }
    if let Some(item) = t.get("address") {
        c.address = item.parsed("an address, as \"10.0.0.5\"", |a| a.parse().ok());
    }
    if let Some(item) = t.get("hosts") {
        let hosts: Vec<Option<SocketAddr>> = item
            .array("an array of addresses with ports, as [\"10.0.0.7:25\"]")
            .iter()
            .map(|h| {
                h.parsed("an address with a port, as \"10.0.0.7:25\"", |a| {
                    a.parse().ok()
                })
            })
            .collect();
        if hosts.is_empty() && matches!(item.value, toml::de::DeValue::Array(_)) {
            item.problem("expected at least one address with a port");
        }
        c.hosts = hosts
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .filter(|h| !h.is_empty());
    }
}

/// Names as the error messages list them: `"a", "b"`.
fn one_of(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `status`: 200, "200-399", or an array of them (keepalived's `status_code 200
/// 301-302`, check_http.c's `status_code_handler`).
fn read_statuses(item: &Item<'_, '_>) -> Option<Vec<(u16, u16)>> {
    let one = |item: &Item<'_, '_>| {
        let expected = "a status or a range of them, as 200 or \"200-399\"";
        match item.value {
            toml::de::DeValue::Integer(_) => item.integer(100..=599).map(|n| (n as u16, n as u16)),
            _ => item.parsed(expected, |s| {
                let (a, b) = s.split_once('-')?;
                let (a, b) = (a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?);
                ((100..=599).contains(&a) && (a..=599).contains(&b)).then_some((a, b))
            }),
        }
    };
    match item.value {
        toml::de::DeValue::Array(_) => {
            let elements = item.array("an array of statuses");
            if elements.is_empty() {
                item.problem("expected at least one status");
                return None;
            }
            let read: Vec<_> = elements.iter().map(one).collect();
            read.into_iter().collect()
        }
        _ => one(item).map(|r| vec![r]),
    }
}

/// `digest`: an MD5, 32 hex digits (check_http.c's `digest_handler`), kept in lower
/// case as genhash prints it.
fn read_digest(item: &Item<'_, '_>) -> Option<String> {
    item.parsed(
        "an MD5 digest, 32 hex digits, as \"9b3a0c85a887a256d6939da88aabd8cd\"",
        |d| {
            (d.len() == 32 && d.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| d.to_ascii_lowercase())
        },
    )
}

/// One `[[service.check.url]]` table: `path` (needed), `status`, `receive`, `digest`,
/// `virtualhost`.
fn read_url(t: &Table<'_, '_>, span: &Range<usize>) -> Option<Url> {
    let mut url = Url::default();
    let path = t.get("path").and_then(|i| {
        i.parsed("a path, as \"/index.html\"", |p| {
            (!p.is_empty()).then(|| p.to_string())
        })
    });
    if let Some(item) = t.get("status") {
        url.status = read_statuses(&item);
    }
    if let Some(item) = t.get("receive")
        && let Some(pattern) = item.str("a regular expression")
    {
        match regex::Regex::new(pattern) {
            Ok(_) => url.receive = Some(pattern.to_string()),
            Err(e) => item.problem(format!("not a regular expression: {e}")),
        }
    }
    if let Some(item) = t.get("digest") {
        url.digest = read_digest(&item);
    }
    url.virtualhost = t
        .get("virtualhost")
        .and_then(|i| i.str("a host name").map(str::to_string));
    match path {
        Some(path) => {
            url.path = path;
            Some(url)
        }
        None => {
            if t.get("path").is_none() {
                t.report().at(span, t.path(), "a url needs a path");
            }
            None
        }
    }
}

fn read_timeouts(t: &Table<'_, '_>) -> Option<Timeouts> {
    let read = |key: &str| {
        t.get(key)
            .and_then(|item| item.duration(1..=MAX_TIMEOUT))
            .map(|d| d.as_secs() as u32)
    };
    // Unset ones stay as they are (`--set` with a zero).
    Some(Timeouts {
        tcp: read("tcp").unwrap_or(0),
        tcp_fin: read("tcpfin").unwrap_or(0),
        udp: read("udp").unwrap_or(0),
    })
}

/// `"10.0.0.1:80"`, `"[::1]:53"`.
fn socket_addr(item: &Item<'_, '_>) -> Option<SocketAddr> {
    let expected = "an address and port, as \"10.0.0.1:80\" or \"[2001:db8::1]:80\"";
    item.parsed(expected, |s| s.parse().ok())
}

/// Which service a `[[service]]` table is: exactly one of tcp, udp, fwmark.
fn read_key(t: &Table<'_, '_>, span: &Range<usize>) -> Option<ServiceKey> {
    let tcp = t.get("tcp");
    let udp = t.get("udp");
    let sctp = t.get("sctp");
    let fwmark = t.get("fwmark");
    let ipv6 = t.get("ipv6");
    let given = [&tcp, &udp, &sctp, &fwmark]
        .iter()
        .filter(|k| k.is_some())
        .count();
    if given != 1 {
        t.report().at(
            span,
            t.path(),
            "a service needs exactly one of tcp = \"ADDR:PORT\", udp = \"ADDR:PORT\", sctp = \"ADDR:PORT\" or fwmark = MARK",
        );
        return None;
    }
    if let Some(ipv6) = &ipv6
        && fwmark.is_none()
    {
        ipv6.problem("ipv6 is only for fwmark services (an address says its own family)");
    }
    for (item, protocol) in [
        (tcp, Protocol::Tcp),
        (udp, Protocol::Udp),
        (sctp, Protocol::Sctp),
    ] {
        if let Some(item) = item {
            let addr = socket_addr(&item)?;
            if let Some(v4) = listener::v4_mapped(&addr.ip()) {
                item.problem(v4_mapped_vip(SocketAddr::from((v4, addr.port()))));
                return None;
            }
            return Some(ServiceKey::Inet {
                protocol,
                addr: addr.ip(),
                port: addr.port(),
            });
        }
    }
    let mark = fwmark?.integer(1..=i64::from(u32::MAX))? as u32;
    let family = match ipv6.and_then(|i| i.bool()) {
        Some(true) => Family::Inet6,
        _ => Family::Inet,
    };
    Some(ServiceKey::Fwmark { mark, family })
}

/// Why a file's VIP may not be IPv4-mapped (`::ffff:127.0.0.1`): uvs's IPv6 sockets are
/// IPv6-only and cannot bind it (`listener::v4_mapped`); `v4`: the address to write.
/// (`uvsadm -A` takes it, as ipvsadm does; a file is uvs's own and says so at once.)
fn v4_mapped_vip(v4: SocketAddr) -> String {
    format!(
        "an IPv4-mapped IPv6 address cannot be listened on (uvs's IPv6 sockets are \
         IPv6-only): write the IPv4 address, as \"{v4}\""
    )
}

/// The scheduler flags by ipvsadm's names (`-b`), checked against the scheduler.
fn read_flags(item: &Item<'_, '_>, scheduler: &str) -> u32 {
    let mut bits = 0;
    for name in item.array("an array of scheduler flags") {
        let Some(s) = name.str("a scheduler flag name") else {
            continue;
        };
        let Some((bit, only_for)) = ServiceFlags::scheduler_flag(s) else {
            name.wrong("flag-1, flag-2, flag-3, sh-fallback, sh-port, mh-fallback or mh-port");
            continue;
        };
        match only_for {
            Some(sched) if sched != scheduler => {
                name.problem(format!(
                    "incompatible scheduler flag `{s}' (it is for {sched})"
                ));
            }
            _ => bits |= bit,
        }
    }
    bits
}

fn read_netmask(item: &Item<'_, '_>, family: Family) -> Option<Netmask> {
    match family {
        Family::Inet => {
            let expected = "an IPv4 netmask, as \"255.255.255.0\", or a prefix length from 0 to 32";
            if let toml::de::DeValue::Integer(_) = item.value {
                let bits = item.integer(0..=32)? as u32;
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                return Some(Netmask::V4(Ipv4Addr::from(mask)));
            }
            // Only contiguous masks: as many leading ones as ones.
            item.parsed(expected, |s| {
                let m = s.parse::<Ipv4Addr>().ok()?;
                holds_netmask(m).then_some(Netmask::V4(m))
            })
        }
        Family::Inet6 => item.integer(1..=128).map(|n| Netmask::V6(n as u32)),
    }
}

/// `listen = ["tcp 127.0.0.1:8443", "udp [::1]:53"]`, for fwmark groups and port-0
/// services.
fn read_listen(item: &Item<'_, '_>, key: &ServiceKey) -> Vec<ListenRule> {
    let expected = "\"tcp ADDR:PORT\" or \"udp ADDR:PORT\"";
    let mut rules = Vec::new();
    for entry in item.array("an array of listen addresses") {
        let parsed = entry.parsed(expected, |s| {
            let (proto, addr) = s.split_once(' ')?;
            let protocol = match proto {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                _ => return None,
            };
            let addr: SocketAddr = addr.trim().parse().ok()?;
            Some(ListenAddr {
                protocol,
                addr: addr.ip(),
                port: addr.port(),
            })
        });
        let Some(listen) = parsed else {
            continue;
        };
        let mark = match key {
            ServiceKey::Fwmark { mark, family } => {
                if Family::of(&listen.addr) != *family {
                    entry.problem("the address is not of the group's family (set ipv6 = true for IPv6 groups)");
                    continue;
                }
                Some(*mark)
            }
            ServiceKey::Inet {
                protocol,
                addr,
                port: 0,
            } => {
                if listen.protocol != *protocol || listen.addr != *addr {
                    entry.problem(
                        "a port-0 service listens on its own protocol and address, on other ports",
                    );
                    continue;
                }
                None
            }
            ServiceKey::Inet { .. } => {
                entry.problem("listen is for fwmark groups and port-0 services; this service listens on its own address");
                continue;
            }
        };
        rules.push(ListenRule { listen, mark });
    }
    rules
}

/// What a `[[service]]` with `group = "NAME"` names: the group's name (and where),
/// its members in the file's order, each with where it is written, and its real
/// servers as written.
struct Members {
    name: String,
    name_span: Range<usize>,
    keys: Vec<(ServiceKey, Range<usize>, String)>,
    written: Vec<Written>,
}

/// A list of virtual services without `group`: reported (true) at each list.
fn listed_without_group(t: &Table<'_, '_>) -> bool {
    let mut listed = false;
    for k in ["tcp", "udp", "sctp", "fwmark"] {
        if let Some(item) = t.get(k)
            && matches!(item.value, toml::de::DeValue::Array(_))
        {
            item.problem("several virtual services sharing real servers are a group: name it with group = \"NAME\"");
            listed = true;
        }
    }
    if listed {
        let _ = t.get("ipv6");
    }
    listed
}

/// One member or an array of them.
fn entries<'a, 'i>(item: Item<'a, 'i>) -> Vec<Item<'a, 'i>> {
    match item.value {
        toml::de::DeValue::Array(_) => item.array("an array of members"),
        _ => vec![item],
    }
}

/// The members of a group: `tcp`, `udp`, `sctp` (each a member or an array of them,
/// see [`group::parse_member`]) and `fwmark` (a mark or an array), in the file's
/// order; the marks take the addresses' family, or `ipv6`'s when there are none.
fn read_members(t: &Table<'_, '_>, name: &Item<'_, '_>) -> Option<Members> {
    let expected = "a virtual address and port or a range of addresses, as \"10.0.0.1:80\", \"10.0.0.1-10.0.0.9:80\" or \"[2001:db8::1-2001:db8::9]:80\"";
    let mut found: Vec<(ServiceKey, Range<usize>, String)> = Vec::new();
    let mut ok = true;
    for (k, protocol) in [
        ("tcp", Protocol::Tcp),
        ("udp", Protocol::Udp),
        ("sctp", Protocol::Sctp),
    ] {
        for e in t.get(k).map(entries).unwrap_or_default() {
            // Past the most a group holds the group is refused below; what comes after
            // need not be read (a list of many ranges of 256 would take memory).
            if found.len() > 2 * group::MAX_MEMBERS {
                break;
            }
            let Some(text) = e.str(expected) else {
                ok = false;
                continue;
            };
            match group::parse_member(text, group::MAX_MEMBERS) {
                Ok((addrs, port)) => {
                    if let Some(v4) = addrs.iter().find_map(listener::v4_mapped) {
                        ok = false;
                        e.problem(v4_mapped_vip(SocketAddr::from((v4, port))));
                        continue;
                    }
                    for addr in addrs {
                        let key = ServiceKey::Inet {
                            protocol,
                            addr,
                            port,
                        };
                        found.push((key, e.span.clone(), e.key.clone()));
                    }
                }
                Err(too_many) => {
                    ok = false;
                    if too_many {
                        e.problem(format!(
                            "a range of more than {} addresses; a group holds at most {} virtual services",
                            group::MAX_MEMBERS,
                            group::MAX_MEMBERS
                        ));
                    } else {
                        e.wrong(expected);
                    }
                }
            }
        }
    }
    let families: HashSet<Family> = found.iter().map(|m| m.0.family()).collect();
    let ipv6 = t.get("ipv6");
    let family = match (families.len(), &ipv6) {
        (0, Some(item)) => match item.bool() {
            Some(true) => Family::Inet6,
            _ => Family::Inet,
        },
        (0, None) => Family::Inet,
        (1, ipv6) => {
            if let Some(item) = ipv6 {
                item.problem(
                    "ipv6 is for groups of fwmarks only (the addresses say the group's family)",
                );
            }
            found[0].0.family()
        }
        _ => {
            name.problem("a group's virtual addresses are of one family, as its real servers are");
            ok = false;
            Family::Inet
        }
    };
    for e in t.get("fwmark").map(entries).unwrap_or_default() {
        match e.integer(1..=i64::from(u32::MAX)) {
            Some(mark) => {
                let key = ServiceKey::Fwmark {
                    mark: mark as u32,
                    family,
                };
                found.push((key, e.span.clone(), e.key.clone()));
            }
            None => ok = false,
        }
    }
    // The file's order; a range's addresses stay in theirs (a stable sort).
    found.sort_by_key(|m| m.1.start);
    if let Some(over) = found.get(group::MAX_MEMBERS) {
        t.report().at(
            &over.1,
            &over.2,
            format!(
                "a group holds at most {} virtual services (a range counts each address); this one makes more",
                group::MAX_MEMBERS
            ),
        );
        return None;
    }
    if found.is_empty() && ok {
        name.problem("a group needs members: tcp, udp or sctp = [\"ADDR:PORT\", ...] or fwmark = [MARK, ...]");
    }
    let group_name = name.str("a group name")?;
    if group_name.is_empty() {
        name.wrong("a group name");
        return None;
    }
    (ok && !found.is_empty()).then(|| Members {
        name: group_name.to_string(),
        name_span: name.span.clone(),
        keys: found,
        written: Vec::new(),
    })
}

fn read_service(
    t: &Table<'_, '_>,
    span: &Range<usize>,
    notes: &Report<'_>,
) -> Option<(ServiceSpec, Vec<Range<usize>>, Option<Members>)> {
    let (mut members, key) = match t.get("group") {
        Some(name) => {
            let members = read_members(t, &name);
            let first = members.as_ref().map(|m| m.keys[0].0);
            (members, first)
        }
        None if listed_without_group(t) => (None, None),
        None => (None, read_key(t, span)),
    };
    let scheduler = t
        .get("scheduler")
        .and_then(|i| i.str("a scheduler name, as \"wlc\"").map(str::to_string))
        .unwrap_or_else(|| "wlc".to_string());
    let mut flags = t
        .get("flags")
        .map_or(0, |item| read_flags(&item, &scheduler));
    if let Some(item) = t.get("one_packet")
        && item.bool() == Some(true)
    {
        // In a group, every member has the group's flags.
        let tcp_member = members.as_ref().is_some_and(|m| {
            m.keys.iter().any(|k| {
                matches!(
                    k.0,
                    ServiceKey::Inet {
                        protocol: Protocol::Tcp,
                        ..
                    }
                )
            })
        });
        match key {
            Some(ServiceKey::Inet {
                protocol: Protocol::Tcp,
                ..
            }) => item.problem("One-Packet Scheduling is only for UDP virtual services"),
            _ if tcp_member => {
                item.problem("One-Packet Scheduling is only for UDP virtual services")
            }
            _ => flags |= ServiceFlags::ONE_PACKET,
        }
    }
    let mut timeout = 0;
    if let Some(item) = t.get("persistent") {
        match item.value {
            toml::de::DeValue::Boolean(true) => timeout = 300,
            toml::de::DeValue::Boolean(false) => {}
            _ => {
                if let Some(d) = item.duration(1..=MAX_PERSISTENCE) {
                    timeout = d.as_secs().max(1) as u32;
                }
            }
        }
    }
    if timeout > 0 {
        flags |= ServiceFlags::PERSISTENT;
    }
    let family = key.map_or(Family::Inet, |k| k.family());
    let netmask = t
        .get("netmask")
        .and_then(|item| read_netmask(&item, family))
        .unwrap_or(Netmask::full(family));
    let pe = t.get("pe").and_then(|i| {
        i.str("a persistence engine name, \"sip\"")
            .map(str::to_string)
    });
    let mut options = ServiceOptions::default();
    if let Some(item) = t.get("connect_timeout")
        && let Some(d) = item.duration(0..=3600)
    {
        match u32::try_from(d.as_millis()) {
            Ok(ms) if ms > 0 => options.connect_timeout_ms = ms,
            _ => item.wrong("a duration of at least 1ms and at most an hour"),
        }
    }
    if let Some(item) = t.get("proxy_protocol") {
        options.proxy_protocol = item.parsed("\"v1\" or \"v2\"", |s| match s {
            "v1" => Some(ProxyProtocol::V1),
            "v2" => Some(ProxyProtocol::V2),
            _ => None,
        });
    }
    if let Some(item) = t.get("freebind") {
        options.freebind = item.bool().unwrap_or(false);
    }
    if let Some(item) = t.get("drain_on_remove")
        && let Some(d) = item.duration(0..=MAX_DRAIN_SECS)
    {
        match drain_ms(d) {
            Some(ms) if ms > 0 => options.drain_on_remove_ms = ms,
            _ => item.wrong(DRAIN_DURATION),
        }
    }
    if let Some(item) = t.get("ejection") {
        options.ejection = read_ejection(&item);
    }
    if let Some(ms) = t.get("slow_start").and_then(|item| read_slow_start(&item)) {
        options.slow_start_ms = ms;
    }
    let queue_item = t.get("queue");
    options.queue = queue_item.as_ref().and_then(read_queue);
    super::admission::read_accept_proxy(t, &mut options);
    let udp = key
        .into_iter()
        .chain(members.iter().flat_map(|m| m.keys.iter().map(|k| k.0)))
        .any(|k| k.protocol() == Some(Protocol::Udp));
    super::admission::check_udp_proxy(t, &options, udp);
    options.admission = super::admission::read_admission(t);
    if let Some(said) = super::source::read_source(t) {
        let tcp_ports: Vec<u16> = key
            .into_iter()
            .chain(members.iter().flat_map(|m| m.keys.iter().map(|k| k.0)))
            .filter_map(|k| match k {
                ServiceKey::Inet { protocol, port, .. } if protocol != Protocol::Udp => Some(port),
                _ => None,
            })
            .collect();
        let ports = said.as_ref().and_then(|s| s.config().ports);
        super::source::note_ports(t, ports, &tcp_ports, notes);
        options.source = said;
    }
    let keys: Vec<ServiceKey> = key
        .into_iter()
        .chain(members.iter().flat_map(|m| m.keys.iter().map(|k| k.0)))
        .collect();
    if let Some(first) = keys.first() {
        let family = first.family();
        let carries = super::admission::Carries {
            tcp: keys.iter().any(|k| k.protocol() != Some(Protocol::Udp)),
            udp: keys.iter().any(|k| k.protocol() != Some(Protocol::Tcp)),
            family: keys
                .iter()
                .all(|k| match k {
                    ServiceKey::Inet { addr, .. } => {
                        Family::of(addr) == family && !(addr.is_ipv6() && addr.is_unspecified())
                    }
                    ServiceKey::Fwmark { .. } => false,
                })
                .then_some(family),
        };
        super::admission::note_admission(t, &options, &carries, notes);
        if !carries.tcp {
            super::source::note_udp(t, notes);
        }
    }
    // A group's listen rules are its one fwmark member's, or its one port-0 one's.
    let listen_key = match &members {
        None => key,
        Some(m) => {
            let marks: Vec<ServiceKey> = m
                .keys
                .iter()
                .map(|k| k.0)
                .filter(|k| matches!(k, ServiceKey::Fwmark { .. }))
                .collect();
            let portless: Vec<ServiceKey> = m
                .keys
                .iter()
                .map(|k| k.0)
                .filter(|k| matches!(k, ServiceKey::Inet { port: 0, .. }))
                .collect();
            match (marks.as_slice(), portless.as_slice()) {
                ([one], _) | ([], [one]) => Some(*one),
                _ => None,
            }
        }
    };
    let listen = match (t.get("listen"), &listen_key) {
        (Some(item), Some(key)) => read_listen(&item, key),
        (Some(item), None) if members.is_some() => {
            item.problem(
                "listen in a group is for its one fwmark member, or its one port-0 member",
            );
            Vec::new()
        }
        _ => Vec::new(),
    };
    let mut servers = Vec::new();
    let mut server_spans = Vec::new();
    let mut server_checks = std::collections::HashMap::new();
    let mut server_more_checks = std::collections::HashMap::new();
    // How many checks each server with its own has, and where they are.
    let mut own_checks = Vec::new();
    let mut server_health = std::collections::BTreeMap::new();
    if let Some(list) = t.get("server") {
        let mut seen = HashSet::new();
        for (server, server_span) in list.tables() {
            let check_item = server.get("check");
            let check = check_item.as_ref().and_then(read_checks);
            let own = read_server_health(&server);
            let drain = server.get("drain").and_then(|item| read_drain(&item));
            let Some(mut asked) = read_server(&server, &server_span, key.as_ref()) else {
                continue;
            };
            asked.options.drain = drain;
            let portless = server.get("address").is_some_and(
                |a| matches!(a.value, toml::de::DeValue::String(s) if s.parse::<IpAddr>().is_ok()),
            );
            let config = match (&key, &members) {
                // A group's servers are warned of for its first address member (a mark
                // keeps every port), and held as its first member holds them.
                (Some(k), Some(m)) => {
                    let warn = m
                        .keys
                        .iter()
                        .map(|x| x.0)
                        .find(|x| matches!(x, ServiceKey::Inet { .. }))
                        .unwrap_or(*k);
                    let _ = fitted(
                        asked.clone(),
                        &warn,
                        true,
                        &server_span,
                        server.path(),
                        notes,
                    );
                    asked.in_service(k)
                }
                (Some(k), None) => {
                    fitted(asked.clone(), k, false, &server_span, server.path(), notes)
                }
                (None, _) => asked.clone(),
            };
            if let Some((check, more)) = check {
                if let Some(item) = &check_item {
                    own_checks.push((1 + more.len(), item.span.clone(), item.key.clone()));
                }
                server_checks.insert(config.key(), check);
                if !more.is_empty() {
                    server_more_checks.insert(config.key(), more);
                }
            }
            if let Some(own) = own {
                server_health.insert(config.key(), own);
            }
            if !seen.insert(config.key()) {
                let message = if asked.port == config.port {
                    "this real server is already listed above".to_string()
                } else {
                    format!(
                        "this real server is already listed above: a gate or ipip real server takes the service's port, {}",
                        config.port
                    )
                };
                t.report().at(&server_span, server.path(), message);
                continue;
            }
            if let Some(m) = members.as_mut() {
                m.written.push(Written {
                    server: asked.clone(),
                    portless,
                });
            }
            servers.push(config);
            server_spans.push(server_span);
        }
    }
    if let Some(item) = &queue_item
        && options.queue.is_some()
        && !servers.is_empty()
        && servers.iter().all(|s| s.options.max_connections == 0)
    {
        notes.at(
            &item.span,
            &item.key,
            "no real server of this service has max_connections: the queue is never used",
        );
    }
    if let Some(item) = &queue_item
        && options.queue.is_some()
        && key.is_some_and(|k| k.protocol() == Some(Protocol::Udp))
    {
        notes.at(
            &item.span,
            &item.key,
            "datagrams have no queue: a new UDP flow that finds every real server at its max_connections is dropped",
        );
    }
    if let Some(item) = t.get("ejection")
        && let Some(e) = options.ejection
        && !servers.is_empty()
        && e.cap(servers.len()) == 0
    {
        notes.at(
            &item.span,
            &item.key,
            format!(
                "max_share {} of {} real {} rounds down to none: no server is ever ejected",
                f64::from(e.max_share_permille) / 1000.0,
                servers.len(),
                crate::words::plural(servers.len() as u64, "server", "servers")
            ),
        );
    }
    let text = |k: &str| t.get(k).and_then(|i| i.str("a text").map(str::to_string));
    let (name, comment) = (text("name"), text("comment"));
    let mut health = read_health(t, true, key.as_ref().map(|k| (k, notes)));
    health.servers = server_health;
    // check_data.c `validate_check_config` clears it for a group with a mark in it.
    if health.ha_suspend == Some(true)
        && let Some(m) = &members
        && m.keys
            .iter()
            .any(|k| matches!(k.0, ServiceKey::Fwmark { .. }))
        && let Some(item) = t.get("ha_suspend")
    {
        item.problem("ha_suspend looks for the group's addresses, and a fwmark member has none");
        health.ha_suspend = None;
    }
    // A server's own checks replace its service's several (`health::server_settings_all`):
    // one that lists fewer runs fewer, which `uvs check` says.
    let service_checks = 1 + health.more_checks.len();
    for (count, span, path) in own_checks {
        if count < service_checks {
            notes.at(
                &span,
                &path,
                format!(
                    "this server's own checks replace its service's {service_checks}: it runs {count}, each over the service's in its place"
                ),
            );
        }
    }
    let key = key?;
    Some((
        ServiceSpec {
            service: ServiceConfig {
                key,
                scheduler,
                flags: ServiceFlags(flags),
                timeout,
                netmask,
                pe,
                options,
            },
            servers,
            listen,
            name,
            comment,
            health,
            server_checks,
            server_more_checks,
            group: None,
        },
        server_spans,
        members,
    ))
}

/// The longest drain the file may ask for (a day; `u32` milliseconds hold 49 days).
const MAX_DRAIN_SECS: u64 = 86_400;
const DRAIN_DURATION: &str = "a duration of at least 1ms and at most a day";

/// A server's `drain`: true (until its last connection ends), or a deadline; false is
/// no drain.
fn read_drain(item: &Item<'_, '_>) -> Option<crate::table::pool::DrainSetting> {
    use crate::table::pool::DrainSetting;
    let expected = "true, false or a duration of at least 1ms and at most a day, as \"30s\"";
    // A number of seconds, written as a number or a string, as the other durations
    // take it (and `uvs drain --deadline`).
    let d = match item.value {
        toml::de::DeValue::Boolean(true) => return Some(DrainSetting::UntilEmpty),
        toml::de::DeValue::Boolean(false) => return None,
        toml::de::DeValue::Integer(i) => u64::from_str_radix(i.as_str(), i.radix())
            .ok()
            .map(std::time::Duration::from_secs),
        toml::de::DeValue::String(s) => match s.trim().parse::<u64>() {
            Ok(secs) => Some(std::time::Duration::from_secs(secs)),
            Err(_) => humantime::parse_duration(s).ok(),
        },
        _ => None,
    };
    match d.and_then(drain_ms) {
        Some(ms) if ms > 0 => Some(DrainSetting::Deadline { ms }),
        _ => {
            item.wrong(expected);
            None
        }
    }
}

/// A drain's duration in milliseconds, if at most a day (compared in milliseconds:
/// "1d 1ms" is over).
fn drain_ms(d: std::time::Duration) -> Option<u32> {
    u32::try_from(d.as_millis())
        .ok()
        .filter(|ms| u64::from(*ms) <= MAX_DRAIN_SECS * 1000)
}

/// A `[[service.server]]` (or `fallback`) table as written; without a port, the
/// address takes `service`'s port, as ipvsadm's `-r ADDRESS` does. The caller fits it
/// to its service (`ServerConfig::in_service`).
fn read_server(
    t: &Table<'_, '_>,
    span: &Range<usize>,
    service: Option<&ServiceKey>,
) -> Option<ServerConfig> {
    let service_port = match service {
        Some(ServiceKey::Inet { port, .. }) => *port,
        _ => 0,
    };
    let expected = "an address with or without a port, as \"10.0.0.2:80\", \"10.0.0.2\" or \"[2001:db8::2]:80\"";
    let address = match t.get("address") {
        Some(item) => item.parsed(expected, |s| {
            s.parse::<SocketAddr>()
                .map(|a| (a.ip(), a.port()))
                .or_else(|_| s.parse::<IpAddr>().map(|ip| (ip, service_port)))
                .ok()
        }),
        None => {
            t.report()
                .at(span, t.path(), "a real server needs an address");
            None
        }
    };
    let weight = t
        .get("weight")
        .map_or(Some(1), |item| item.integer(0..=i64::from(MAX_WEIGHT)))
        .map(|w| w as i32);
    let forward = match t.get("forward") {
        None => Some(Forward::Masq),
        Some(item) => item.parsed("\"masq\", \"gate\" or \"ipip\"", |s| match s {
            "masq" | "nat" => Some(Forward::Masq),
            "gate" | "dr" | "route" => Some(Forward::Route),
            "ipip" | "tun" | "tunnel" => Some(Forward::Tunnel),
            _ => None,
        }),
    };
    let threshold = |key: &str| {
        t.get(key)
            .map_or(Some(0), |item| item.integer(0..=i64::from(i32::MAX)))
            .map(|n| n as u32)
    };
    let (upper, lower) = (threshold("upper_threshold"), threshold("lower_threshold"));
    let tunnel = read_tunnel(t, forward);
    let slow_start = match t.get("slow_start") {
        None => Some(None),
        Some(item) => read_slow_start(&item).map(Some),
    };
    let max_connections = t
        .get("max_connections")
        .map_or(Some(0), |item| item.integer(0..=i64::from(MAX_CONNECTIONS)))
        .map(|n| n as u32);
    let (addr, port) = address?;
    Some(ServerConfig {
        addr,
        port,
        forward: forward?,
        weight: weight?,
        u_threshold: upper?,
        l_threshold: lower?,
        tunnel: tunnel?,
        // `drain` is read by the caller, which knows whether it may be set here.
        options: crate::table::ServerOptions {
            slow_start_ms: slow_start?,
            drain: None,
            max_connections: max_connections?,
        },
    })
}

/// A service's `queue = { length = N, timeout = "5s" }` (`table::queue`): both keys,
/// the length from 1 to [`MAX_QUEUE_LENGTH`], the timeout from 1ms to an hour.
fn read_queue(item: &Item<'_, '_>) -> Option<QueueOptions> {
    let table = item.table()?;
    let length = match table.get("length") {
        Some(l) => l
            .integer(1..=i64::from(MAX_QUEUE_LENGTH))
            .and_then(|n| std::num::NonZeroU32::new(n as u32)),
        None => {
            item.problem("a queue needs a length (the connections that may wait)");
            None
        }
    };
    let timeout = match table.get("timeout") {
        Some(d) => d
            .nonzero_duration(3600, "a duration of at least 1ms and at most an hour")
            .and_then(|d| u32::try_from(d.as_millis()).ok()),
        None => {
            item.problem("a queue needs a timeout (how long a connection may wait)");
            None
        }
    };
    Some(QueueOptions {
        length: length?,
        timeout_ms: timeout?,
    })
}

/// A `slow_start` window (a service's, or a server's own): a duration from 0 (off) to
/// a day, in milliseconds (`table::slow_start`).
fn read_slow_start(item: &Item<'_, '_>) -> Option<u32> {
    let d = item.duration(0..=u64::from(MAX_WINDOW_MS / 1000))?;
    match u32::try_from(d.as_millis()) {
        Ok(ms) if ms <= MAX_WINDOW_MS => Some(ms),
        _ => {
            item.wrong("a duration of at most a day (0s turns slow start off)");
            None
        }
    }
}

/// `asked` as `service`'s table will hold it (`ServerConfig::in_service`); a port the
/// table will not hold is noted for `uvs check`'s warnings, at `span` (`path`); in a
/// group (`grouped`, `service` its first member) each member's port is.
fn fitted(
    asked: ServerConfig,
    service: &ServiceKey,
    grouped: bool,
    span: &Range<usize>,
    path: &str,
    notes: &Report<'_>,
) -> ServerConfig {
    let config = asked.in_service(service);
    if asked.port != config.port {
        let kind = if config.forward == Forward::Route {
            "a gate"
        } else {
            "an ipip"
        };
        notes.at(
            span,
            path,
            if grouped {
                format!(
                    "{kind} real server takes each member's port, as ipvsadm gives it; port {} is not used",
                    asked.port
                )
            } else {
                format!(
                    "{kind} real server takes the service's port, {}, as ipvsadm gives it; port {} is not used",
                    config.port, asked.port
                )
            },
        );
    }
    config
}

/// `tunnel`, `tunnel_port` and `tunnel_checksum` of an ipip server (`--tun-type`,
/// `--tun-port`, `--tun-*csum`).
fn read_tunnel(t: &Table<'_, '_>, forward: Option<Forward>) -> Option<Tunnel> {
    let mut tunnel = Tunnel::default();
    let mut ok = true;
    let items = [
        t.get("tunnel"),
        t.get("tunnel_port"),
        t.get("tunnel_checksum"),
    ];
    if forward.is_some_and(|f| f != Forward::Tunnel) {
        for item in items.iter().flatten() {
            item.problem("tunnel settings are for forward = \"ipip\" servers");
        }
        return Some(tunnel);
    }
    let [kind, port, checksum] = items;
    if let Some(item) = kind {
        match item.parsed("\"ipip\", \"gue\" or \"gre\"", TunnelKind::from_name) {
            Some(kind) => tunnel.kind = kind,
            None => ok = false,
        }
    }
    if let Some(item) = port {
        match item.integer(1..=65535) {
            Some(p) => tunnel.port = p as u16,
            None => ok = false,
        }
    }
    if let Some(item) = checksum {
        let expected = "\"nocsum\", \"csum\" or \"remcsum\"";
        match item.parsed(expected, TunnelChecksum::from_name) {
            Some(checksum) => tunnel.checksum = checksum,
            None => ok = false,
        }
    }
    ok.then_some(tunnel)
}

/// The longest `base_time` and `max_time` of an ejection: a day.
const MAX_EJECTION_SECS: u64 = 86_400;

/// `ejection = { failures = N, base_time = "30s", max_share = 0.5, max_time = "300s" }`:
/// passive ejection (`table::ejection`); all but `max_time` required.
fn read_ejection(item: &Item<'_, '_>) -> Option<crate::table::ejection::EjectionConfig> {
    let t = item.table()?;
    let missing = |key: &str| item.problem(format!("an ejection table needs {key}"));
    let failures = match t.get("failures") {
        Some(i) => i.integer(1..=i64::from(u32::MAX)).map(|n| n as u32),
        None => {
            missing("failures");
            None
        }
    };
    let ms = |key: &str| -> Option<Option<u32>> {
        let Some(i) = t.get(key) else {
            return Some(None);
        };
        let expected = "a duration of at least 1ms and at most a day";
        let d = i.nonzero_duration(MAX_EJECTION_SECS, expected)?;
        match u32::try_from(d.as_millis()) {
            Ok(ms) if ms > 0 => Some(Some(ms)),
            _ => {
                i.wrong(expected);
                None
            }
        }
    };
    let base_time = ms("base_time");
    let max_time = ms("max_time");
    let max_share = match t.get("max_share") {
        Some(i) => read_share(&i),
        None => {
            missing("max_share");
            None
        }
    };
    if matches!(base_time, Some(None)) {
        missing("base_time");
    }
    Some(crate::table::ejection::EjectionConfig {
        failures: failures?,
        base_time_ms: base_time??,
        max_share_permille: max_share?,
        max_time_ms: max_time?.unwrap_or(0),
    })
}

/// A share above 0 and at most 1 (`0.5`, `1`), in permille (rounded to the nearest).
fn read_share(item: &Item<'_, '_>) -> Option<u16> {
    let expected = "a number above 0 and at most 1, as 0.5";
    let f = match item.value {
        toml::de::DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
        toml::de::DeValue::Integer(i) => i.as_str().parse::<f64>().ok(),
        _ => None,
    };
    let permille = f
        .filter(|f| *f > 0.0 && *f <= 1.0)
        .map(|f| (f * 1000.0).round() as u16)
        .filter(|p| *p > 0);
    if permille.is_none() {
        item.wrong(expected);
    }
    permille
}

/// The problems [`parse`] finds in `text`, one line of its report each (none: it
/// parsed): what the configuration's tests compare.
#[cfg(test)]
pub(crate) fn problems(text: &str) -> Vec<String> {
    match parse(text, Path::new("t.toml")) {
        Ok(_) => Vec::new(),
        Err(p) => p.to_string().lines().map(str::to_string).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_file_reads_into_commands_worth_of_config() {
        let text = r#"
[global]
autoreload = true
threads = 2

[timeouts]
tcp = "15m"
udp = 60

[[service]]
tcp = "127.0.0.1:80"
scheduler = "wrr"
persistent = "10m"
netmask = 24
connect_timeout = "1500ms"
proxy_protocol = "v2"

[[service.server]]
address = "127.0.0.1:8080"
weight = 3

[[service.server]]
address = "127.0.0.2"
forward = "gate"

[[service]]
fwmark = 7
scheduler = "sh"
flags = ["sh-port"]
listen = ["tcp 127.0.0.1:443", "udp 127.0.0.1:443"]
"#;
        let c = parse(text, Path::new("t.toml")).unwrap();
        assert!(c.global.autoreload);
        assert_eq!(c.global.threads, Some(2));
        assert_eq!(
            c.timeouts,
            Some(Timeouts {
                tcp: 900,
                tcp_fin: 0,
                udp: 60
            })
        );
        let web = &c.services[0];
        assert_eq!(web.service.timeout, 600);
        assert!(web.service.flags.persistent());
        assert_eq!(
            web.service.netmask,
            Netmask::V4("255.255.255.0".parse().unwrap())
        );
        assert_eq!(web.service.options.connect_timeout_ms, 1500);
        assert_eq!(web.servers[0].weight, 3);
        assert_eq!(
            (web.servers[1].port, web.servers[1].forward),
            (80, Forward::Route),
            "without a port, the service's port (ipvsadm's `-r ADDRESS`)"
        );
        let group = &c.services[1];
        assert_eq!(group.service.flags.0, ServiceFlags::SCHED2);
        assert_eq!(group.listen.len(), 2);
        assert!(group.listen.iter().all(|r| r.mark == Some(7)));
    }

    /// ipvsadm's `-r`: no port is the service's port; gate and ipip take the service's
    /// port in an address service, whatever they name; masq and fwmark keep theirs.
    #[test]
    fn real_server_ports_are_read_as_ipvsadm_gives_them() {
        let text = r#"
[[service]]
tcp = "192.0.2.50:80"
fallback = { address = "198.51.100.99:8080", forward = "gate" }
[[service.server]]
address = "198.51.100.51:8080"
forward = "gate"
[[service.server]]
address = "198.51.100.52:8080"
[[service.server]]
address = "198.51.100.53"
[[service.server]]
address = "198.51.100.54:0"
[[service.server]]
address = "[2001:db8::55]:9"
forward = "ipip"
[service.server.check]
port = 9

[[service]]
fwmark = 7
[[service.server]]
address = "198.51.100.51:8080"
forward = "gate"
[[service.server]]
address = "198.51.100.53"
"#;
        let c = parse(text, Path::new("t.toml")).unwrap();
        let ports =
            |i: usize| -> Vec<u16> { c.services[i].servers.iter().map(|s| s.port).collect() };
        assert_eq!(ports(0), [80, 8080, 80, 0, 80]);
        assert_eq!(ports(1), [8080, 0]);
        assert_eq!(
            c.services[0].health.fallback.as_ref().map(|f| f.port),
            Some(80)
        );
        let v6 = crate::table::ServerKey {
            addr: "2001:db8::55".parse().unwrap(),
            port: 80,
        };
        assert_eq!(
            c.services[0].server_checks.get(&v6).and_then(|c| c.port),
            Some(9),
            "a server's check is the table's server's"
        );
        assert_eq!(
            warnings(text, Path::new("t.toml")),
            [
                "t.toml:4:12: warning: service[0].fallback: a gate real server takes the service's port, 80, as ipvsadm gives it; port 8080 is not used",
                "t.toml:5:1: warning: service[0].server[0]: a gate real server takes the service's port, 80, as ipvsadm gives it; port 8080 is not used",
                "t.toml:14:1: warning: service[0].server[4]: an ipip real server takes the service's port, 80, as ipvsadm gives it; port 9 is not used",
            ],
            "the masq servers, port-less ones and the fwmark service's are as written"
        );
        let twice = r#"
[[service]]
tcp = "192.0.2.50:80"
[[service.server]]
address = "198.51.100.51:8080"
forward = "gate"
[[service.server]]
address = "198.51.100.51:8081"
forward = "gate"
"#;
        assert_eq!(
            problems(twice),
            [
                "t.toml:7:1: service[0].server[1]: this real server is already listed above: a gate or ipip real server takes the service's port, 80"
            ]
        );
    }

    #[test]
    fn an_ejection_is_read_in_milliseconds_and_permille() {
        let text = "[[service]]\ntcp = \"127.0.0.1:80\"\n\
                    ejection = { failures = 3, base_time = \"1s 500ms\", max_share = 0.5 }\n\
                    [[service]]\ntcp = \"127.0.0.1:81\"\n\
                    ejection = { failures = 1, base_time = \"30s\", max_share = 1, max_time = \"2m\" }\n";
        let config = parse(text, Path::new("t.toml")).unwrap();
        let e: Vec<_> = config
            .services
            .iter()
            .map(|s| s.service.options.ejection.unwrap())
            .collect();
        assert_eq!(
            (
                e[0].failures,
                e[0].base_time_ms,
                e[0].max_share_permille,
                e[0].max_time_ms
            ),
            (3, 1500, 500, 0)
        );
        assert_eq!(
            (
                e[1].failures,
                e[1].base_time_ms,
                e[1].max_share_permille,
                e[1].max_time_ms
            ),
            (1, 30_000, 1000, 120_000)
        );
    }

    #[test]
    fn bad_ejection_values_are_named_with_the_key() {
        let text = r#"[[service]]
tcp = "127.0.0.1:80"
ejection = { failures = 0, base_time = "0s", max_share = 1.5, max_time = "soon" }

[[service]]
tcp = "127.0.0.1:81"
ejection = { failures = 2, max_share = 0, colour = "red" }
"#;
        assert_eq!(
            problems(text),
            [
                "t.toml:3:25: service[0].ejection.failures: expected an integer from 1 to 4294967295, found the integer 0",
                "t.toml:3:40: service[0].ejection.base_time: expected a duration of at least 1ms and at most a day, found the string \"0s\"",
                "t.toml:3:58: service[0].ejection.max_share: expected a number above 0 and at most 1, as 0.5, found the number 1.5",
                "t.toml:3:74: service[0].ejection.max_time: expected a duration of at least 1ms and at most a day, found the string \"soon\"",
                "t.toml:7:12: service[1].ejection: an ejection table needs base_time",
                "t.toml:7:40: service[1].ejection.max_share: expected a number above 0 and at most 1, as 0.5, found the integer 0",
                "t.toml:7:43: service[1].ejection.colour: unknown key",
            ]
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_place() {
        let text = r#"[global]
threads = "many"
colour = "blue"

[[service]]
tcp = "127.0.0.1:80"
scheduler = "fastest"

[[service.server]]
address = "127.0.0.1:8080"
weight = -3

[[service]]
udp = "localhost:53"
persistent = "forever"
"#;
        assert_eq!(
            problems(text),
            [
                "t.toml:2:11: global.threads: expected an integer from 1 to 1024, found the string \"many\"",
                "t.toml:3:1: global.colour: unknown key",
                "t.toml:5:1: service[0]: Scheduler or persistence engine not found",
                "t.toml:11:10: service[0].server[0].weight: expected an integer from 0 to 65535, found the integer -3",
                "t.toml:14:7: service[1].udp: expected an address and port, as \"10.0.0.1:80\" or \"[2001:db8::1]:80\", found the string \"localhost:53\"",
                "t.toml:15:14: service[1].persistent: expected a duration from 1 to 2678400 seconds, as \"30s\", \"5m\" or a number of seconds, found the string \"forever\"",
            ]
        );
    }

    #[test]
    fn drain_keys_read_and_bad_values_are_named() {
        use crate::table::pool::DrainSetting;
        let good = r#"
[[service]]
tcp = "127.0.0.1:80"
drain_on_remove = "2m"
[[service.server]]
address = "127.0.0.1:8080"
drain = true
[[service.server]]
address = "127.0.0.1:8081"
drain = "30s"
[[service.server]]
address = "127.0.0.1:8082"
drain = false
"#;
        let config = parse(good, Path::new("t.toml")).unwrap();
        let svc = &config.services[0];
        assert_eq!(svc.service.options.drain_on_remove_ms, 120_000);
        let drains: Vec<_> = svc.servers.iter().map(|s| s.options.drain).collect();
        assert_eq!(
            drains,
            [
                Some(DrainSetting::UntilEmpty),
                Some(DrainSetting::Deadline { ms: 30_000 }),
                None
            ]
        );
        let bad = r#"
[[service]]
tcp = "127.0.0.1:80"
drain_on_remove = 0
[[service.server]]
address = "127.0.0.1:8080"
drain = "soon"
[[service.server]]
address = "127.0.0.1:8081"
drain = 0
"#;
        assert_eq!(
            problems(bad),
            [
                "t.toml:4:19: service[0].drain_on_remove: expected a duration of at least 1ms and at most a day, found the integer 0",
                "t.toml:7:9: service[0].server[0].drain: expected true, false or a duration of at least 1ms and at most a day, as \"30s\", found the string \"soon\"",
                "t.toml:10:9: service[0].server[1].drain: expected true, false or a duration of at least 1ms and at most a day, as \"30s\", found the integer 0",
            ]
        );
    }

    /// `drain` takes plain seconds as every other duration does; its cap of a day is
    /// kept to the millisecond, for `drain_on_remove` too.
    #[test]
    fn drain_takes_plain_seconds_and_caps_a_day_to_the_millisecond() {
        use crate::table::pool::DrainSetting;
        let text = |value: &str, on_remove: &str| {
            format!(
                "[[service]]\ntcp = \"127.0.0.1:80\"\ndrain_on_remove = {on_remove}\n\
                 [[service.server]]\naddress = \"127.0.0.1:8080\"\ndrain = {value}\n"
            )
        };
        for value in ["30", "\"30\"", "\"30s\""] {
            let config = parse(&text(value, "30"), Path::new("t.toml")).unwrap();
            let svc = &config.services[0];
            assert_eq!(
                svc.servers[0].options.drain,
                Some(DrainSetting::Deadline { ms: 30_000 }),
                "{value}"
            );
            assert_eq!(svc.service.options.drain_on_remove_ms, 30_000);
        }
        let day = parse(&text("\"1d\"", "86400"), Path::new("t.toml")).unwrap();
        assert_eq!(
            day.services[0].servers[0].options.drain,
            Some(DrainSetting::Deadline { ms: 86_400_000 })
        );
        assert_eq!(
            problems(&text("\"1d 1ms\"", "\"1d 1ms\"")),
            [
                "t.toml:3:19: service[0].drain_on_remove: expected a duration of at least 1ms and at most a day, found the string \"1d 1ms\"",
                "t.toml:6:9: service[0].server[0].drain: expected true, false or a duration of at least 1ms and at most a day, as \"30s\", found the string \"1d 1ms\"",
            ]
        );
    }

    #[test]
    fn what_the_table_refuses_is_reported_where_it_was_asked() {
        let text = r#"
[[service]]
tcp = "127.0.0.1:80"
scheduler = "fastest"

[[service]]
tcp = "127.0.0.1:81"

[[service.server]]
address = "127.0.0.1:8080"
upper_threshold = 5
lower_threshold = 9
"#;
        assert_eq!(
            problems(text),
            [
                "t.toml:2:1: service[0]: Scheduler or persistence engine not found",
                "t.toml:9:1: service[1].server[0]: Numerical result out of range",
            ]
        );
    }

    #[test]
    fn names_addresses_and_zero_durations_are_refused_with_what_was_expected() {
        let text = r#"[global]
mode = "fast"
connect_timeout = 0
udp_unreplied_timeout = "0s"
metrics = "anywhere"

[[service]]
fwmark = 1
netmask = "255.0.255.0"
proxy_protocol = "v3"
listen = ["sctp 127.0.0.1:80", 7]

[service.check]
type = "ping"
service = "gopher"
method = "POST"
status = "600-700"

[[service.server]]
address = "127.0.0.1:80"
forward = "carrier-pigeon"

[[service.server]]
address = "127.0.0.2:80"
forward = "ipip"
tunnel = "vxlan"
tunnel_checksum = true

[[service.server]]
address = "nowhere"
"#;
        assert_eq!(
            problems(text),
            [
                "t.toml:2:8: global.mode: expected \"auto\", \"userspace\" or \"kernel\", found the string \"fast\"",
                "t.toml:3:19: global.connect_timeout: expected a duration of at least 1ms and at most an hour, found the integer 0",
                "t.toml:4:25: global.udp_unreplied_timeout: expected a duration of at least 1s and at most a day, found the string \"0s\"",
                "t.toml:5:11: global.metrics: expected an address and port, as \"127.0.0.1:9280\", or \"off\", found the string \"anywhere\"",
                "t.toml:9:11: service[0].netmask: expected an IPv4 netmask, as \"255.255.255.0\", or a prefix length from 0 to 32, found the string \"255.0.255.0\"",
                "t.toml:10:18: service[0].proxy_protocol: expected \"v1\" or \"v2\", found the string \"v3\"",
                "t.toml:11:11: service[0].listen[0]: expected \"tcp ADDR:PORT\" or \"udp ADDR:PORT\", found the string \"sctp 127.0.0.1:80\"",
                "t.toml:11:32: service[0].listen[1]: expected \"tcp ADDR:PORT\" or \"udp ADDR:PORT\", found the integer 7",
                "t.toml:14:8: service[0].check.type: expected \"connect\", \"negotiate\", \"external\", \"on\", \"off\", \"file\", found the string \"ping\"",
                "t.toml:15:11: service[0].check.service: expected \"http\", \"https\", \"simpletcp\", \"smtp\", \"dns\", found the string \"gopher\"",
                "t.toml:16:10: service[0].check.method: expected \"GET\" or \"HEAD\", found the string \"POST\"",
                "t.toml:17:10: service[0].check.status: expected a status or a range of them, as 200 or \"200-399\", found the string \"600-700\"",
                "t.toml:21:11: service[0].server[0].forward: expected \"masq\", \"gate\" or \"ipip\", found the string \"carrier-pigeon\"",
                "t.toml:26:10: service[0].server[1].tunnel: expected \"ipip\", \"gue\" or \"gre\", found the string \"vxlan\"",
                "t.toml:27:19: service[0].server[1].tunnel_checksum: expected \"nocsum\", \"csum\" or \"remcsum\", found true",
                "t.toml:30:11: service[0].server[2].address: expected an address with or without a port, as \"10.0.0.2:80\", \"10.0.0.2\" or \"[2001:db8::2]:80\", found the string \"nowhere\"",
            ]
        );
    }

    #[test]
    fn syntax_errors_have_their_place_too() {
        let p = problems("[[service]]\ntcp = \"127.0.0.1:80\nscheduler = 3\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(
            p,
            ["t.toml:2:20: TOML syntax: invalid basic string, expected `\"`"]
        );
    }

    #[test]
    fn keepalived_states_are_read_and_bad_ones_refused_where_they_are() {
        let c = parse(
            r#"[global]
alpha = true
omega = true

[[service]]
tcp = "127.0.0.1:80"
quorum = 3
hysteresis = 2
quorum_up = "/bin/up 'a b'"
quorum_down = "/bin/down"
[service.check]
warmup = "5s"
retry_delay = "2s"
[[service.server]]
address = "127.0.0.2:80"
quiescent = false
notify_up = "/bin/x up"
notify_down = "/bin/x down"
"#,
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(
            (c.global.health.alpha, c.global.health.omega),
            (Some(true), Some(true))
        );
        let h = &c.services[0].health;
        assert_eq!((h.quorum, h.hysteresis), (Some(3), Some(2)));
        assert_eq!(h.quorum_up.as_deref(), Some("/bin/up 'a b'"));
        assert_eq!(
            h.check.warmup.zip(h.check.retry_delay),
            Some((
                std::time::Duration::from_secs(5),
                std::time::Duration::from_secs(2)
            ))
        );
        let own = &h.servers[&c.services[0].servers[0].key()];
        assert_eq!(own.quiescent, Some(false));
        assert_eq!(own.notify_down.as_deref(), Some("/bin/x down"));
        // What is written reads back the same.
        let again = parse(&crate::config::render::render(&c), Path::new("t.toml")).unwrap();
        assert_eq!(again, c);

        assert_eq!(
            problems(
                r#"[global]
quorum = 2
alpha = "yes"

[[service]]
tcp = "127.0.0.1:80"
quorum = 0
hysteresis = 1
quorum_up = ""
quorum_down = "/bin/down 'unclosed"
[service.check]
retry_delay = "-1s"
[[service.server]]
address = "127.0.0.2:80"
notify_up = "/bin/x\\"

[[service]]
tcp = "127.0.0.1:81"
quorum = 2
hysteresis = 2
"#
            ),
            [
                "t.toml:2:1: global.quorum: unknown key",
                "t.toml:3:9: global.alpha: expected true or false, found the string \"yes\"",
                "t.toml:7:10: service[0].quorum: expected an integer from 1 to 4294967295, found the integer 0",
                "t.toml:8:14: service[0].hysteresis: the hysteresis must be less than the quorum (1), or the quorum could never be regained or lost",
                "t.toml:9:13: service[0].quorum_up: not a command: an empty command",
                "t.toml:10:15: service[0].quorum_down: not a command: a ' quote that is not closed",
                "t.toml:12:15: service[0].check.retry_delay: expected a duration from 0 to 86400 seconds, as \"30s\", \"5m\" or a number of seconds, found the string \"-1s\"",
                "t.toml:15:13: service[0].server[0].notify_up: not a command: a backslash that escapes nothing at the end",
                "t.toml:20:14: service[1].hysteresis: the hysteresis must be less than the quorum (2), or the quorum could never be regained or lost",
            ]
        );
    }

    #[test]
    fn an_external_checks_user_and_group_must_be_known_to_the_system() {
        assert_eq!(
            problems(
                r#"[[service]]
tcp = "127.0.0.1:80"
[service.check]
user = "no-such-user-uvs"
[[service.server]]
address = "127.0.0.2:80"
[service.server.check]
user = "root"
group = "no-such-group-uvs"

[[service]]
tcp = "127.0.0.1:81"
[service.check]
group = "root"
"#
            ),
            [
                "t.toml:4:8: service[0].check.user: no user named no-such-user-uvs in the system's user database",
                "t.toml:9:9: service[0].server[0].check.group: no group named no-such-group-uvs in the system's group database",
                "t.toml:14:9: service[1].check.group: a group needs a user",
            ]
        );
    }

    #[test]
    fn keepalived_check_settings_are_read_and_rendered_back() {
        let text = r#"[[service]]
tcp = "127.0.0.1:80"

[service.check]
type = "negotiate"
service = "http"
status = [200, "301-302"]
digest = "9B3A0C85A887A256D6939DA88AABD8CD"
source = "127.0.0.5"
source_port = 4000
address = "127.0.0.9"

[[service.check.url]]
path = "/a"
status = "200-204"

[[service.check.url]]
path = "/b"
receive = "^ok"
digest = "3b1fb749c971d7a2c6a517b37f735df2"
virtualhost = "b.test"

[[service.server]]
address = "127.0.0.2:53"

[service.server.check]
type = "negotiate"
service = "dns"
query_type = "aaaa"
require_answer = false

[[service.server]]
address = "127.0.0.3:25"

[service.server.check]
type = "negotiate"
service = "smtp"
helo = "lb.test"
hosts = ["127.0.0.3:25", "127.0.0.4:2525"]

[[service.server]]
address = "127.0.0.4:80"

[service.server.check]
type = "file"
path = "/run/weight"
weight = -3
reverse = true
"#;
        let config = parse(text, Path::new("t.toml")).unwrap();
        let check = &config.services[0].health.check;
        assert_eq!(check.status, Some(vec![(200, 200), (301, 302)]));
        assert_eq!(
            check.digest.as_deref(),
            Some("9b3a0c85a887a256d6939da88aabd8cd"),
            "kept in lower case"
        );
        let urls = check.urls.as_ref().unwrap();
        assert_eq!(
            (urls[0].path.as_str(), &urls[0].status),
            ("/a", &Some(vec![(200, 204)]))
        );
        assert_eq!(urls[1].virtualhost.as_deref(), Some("b.test"));
        let rendered = crate::config::render::render(&config);
        for line in [
            "status = [200, \"301-302\"]",
            "digest = \"9b3a0c85a887a256d6939da88aabd8cd\"",
            "url = [{ path = \"/a\", status = \"200-204\" }, { path = \"/b\", receive = \"^ok\", digest = \"3b1fb749c971d7a2c6a517b37f735df2\", virtualhost = \"b.test\" }]",
            "source = \"127.0.0.5\"",
            "source_port = 4000",
            "address = \"127.0.0.9\"",
            "query_type = \"AAAA\"",
            "require_answer = false",
            "helo = \"lb.test\"",
            "hosts = [\"127.0.0.3:25\", \"127.0.0.4:2525\"]",
            "type = \"file\"",
            "path = \"/run/weight\"",
            "weight = -3",
            "reverse = true",
        ] {
            assert!(rendered.lines().any(|l| l == line), "{line} in\n{rendered}");
        }
        assert_eq!(
            parse(&rendered, Path::new("r.toml")).unwrap(),
            config,
            "what is rendered reads back the same"
        );
    }

    #[test]
    fn a_command_as_words_and_a_dns_transport_are_read_and_rendered_back() {
        let text = r#"[[service]]
tcp = "127.0.0.1:80"

[service.check]
type = "external"
command = ["/opt/my check", "a b"]
target_arguments = false

[[service.server]]
address = "127.0.0.2:80"

[service.server.check]
type = "negotiate"
service = "dns"
transport = "udp"
"#;
        let config = parse(text, Path::new("t.toml")).unwrap();
        let spec = &config.services[0];
        assert_eq!(
            spec.health.check.command,
            Some(CheckCommand::Words(vec![
                "/opt/my check".into(),
                "a b".into()
            ]))
        );
        assert_eq!(spec.health.check.target_arguments, Some(false));
        let server = spec.server_checks.values().next().unwrap();
        assert_eq!(server.transport, Some(Protocol::Udp));
        let rendered = super::super::render::render(&config);
        for line in [
            "command = [\"/opt/my check\", \"a b\"]",
            "target_arguments = false",
            "transport = \"udp\"",
        ] {
            assert!(rendered.lines().any(|l| l == line), "{line} in {rendered}");
        }
        assert_eq!(parse(&rendered, Path::new("t.toml")).unwrap(), config);
    }

    #[test]
    fn notify_commands_take_a_user_and_group_in_a_table() {
        let text = r#"[[service]]
tcp = "127.0.0.1:80"
quorum_up = { command = "/bin/up 'a b'", user = "nobody" }
quorum_down = { command = "/bin/down", user = "no-such-user-uvs" }

[[service.server]]
address = "127.0.0.2:80"
notify_up = { user = "nobody" }
notify_down = { command = "/bin/x", group = "root" }

[[service.server]]
address = "127.0.0.3:80"
notify_up = { command = "/bin/x", user = "root", group = "no-such-group-uvs" }
notify_down = { command = "/bin/x", user = "root", shell = true }
"#;
        assert_eq!(
            problems(text),
            [
                "t.toml:4:47: service[0].quorum_down.user: no user named no-such-user-uvs in the system's user database",
                "t.toml:8:13: service[0].server[0].notify_up: a notify table needs a command",
                "t.toml:9:45: service[0].server[0].notify_down.group: a group needs a user",
                "t.toml:13:58: service[0].server[1].notify_up.group: no group named no-such-group-uvs in the system's group database",
                "t.toml:14:52: service[0].server[1].notify_down.shell: unknown key",
            ]
        );
        let good = "[[service]]\ntcp = \"127.0.0.1:80\"\nquorum_up = { command = \"/bin/up 'a b'\", user = \"nobody\", group = \"root\" }\nquorum_down = \"/bin/down\"\n";
        let config = parse(good, Path::new("t.toml")).unwrap();
        let h = &config.services[0].health;
        assert_eq!(
            h.quorum_up,
            Some(NotifyCommand {
                line: "/bin/up 'a b'".into(),
                user: Some("nobody".into()),
                group: Some("root".into()),
            })
        );
        assert_eq!(h.quorum_down, Some(NotifyCommand::from("/bin/down")));
        let rendered = super::super::render::render(&config);
        assert!(
            rendered.contains("quorum_up = { command = \"/bin/up 'a b'\", user = \"nobody\", group = \"root\" }\nquorum_down = \"/bin/down\"\n"),
            "{rendered}"
        );
        assert_eq!(parse(&rendered, Path::new("t.toml")).unwrap(), config);
    }

    #[test]
    fn ha_suspend_is_read_for_an_address_and_refused_for_a_mark() {
        let text = r#"[[service]]
tcp = "127.0.0.1:80"
ha_suspend = true

[[service]]
fwmark = 3
ha_suspend = true

[[service]]
tcp = "127.0.0.1:81"
ha_suspend = "yes"

[[service]]
group = "g"
tcp = ["127.0.0.1:82"]
fwmark = [4]
ha_suspend = true
"#;
        assert_eq!(
            problems(text),
            [
                "t.toml:7:14: service[1].ha_suspend: ha_suspend looks for the service's address, and a fwmark service has none",
                "t.toml:11:14: service[2].ha_suspend: expected true or false, found the string \"yes\"",
                "t.toml:17:14: service[3].ha_suspend: ha_suspend looks for the group's addresses, and a fwmark member has none",
            ]
        );
        let config = parse(
            "[[service]]\ntcp = \"127.0.0.1:80\"\nha_suspend = true\n",
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(config.services[0].health.ha_suspend, Some(true));
        let rendered = super::super::render::render(&config);
        assert!(
            rendered.lines().any(|l| l == "ha_suspend = true"),
            "{rendered}"
        );
        assert_eq!(parse(&rendered, Path::new("t.toml")).unwrap(), config);
    }

    #[test]
    fn a_bad_command_and_a_transport_where_it_means_nothing_are_refused() {
        let text = r#"[[service]]
tcp = "127.0.0.1:80"

[service.check]
type = "connect"
transport = "udp"

[[service.server]]
address = "127.0.0.2:80"

[service.server.check]
type = "negotiate"
service = "http"
transport = "udp"

[[service.server]]
address = "127.0.0.3:80"

[service.server.check]
service = "dns"
transport = "sctp"
command = []
target_arguments = "no"

[[service.server]]
address = "127.0.0.4:80"

[service.server.check]
command = ["/bin/check", 7]
"#;
        assert_eq!(
            problems(text),
            [
                "t.toml:6:13: service[0].check.transport: transport is for dns checks only (keepalived's DNS_CHECK speaks UDP)",
                "t.toml:14:13: service[0].server[0].check.transport: transport is for dns checks only (keepalived's DNS_CHECK speaks UDP)",
                "t.toml:21:13: service[0].server[1].check.transport: expected \"tcp\" or \"udp\", found the string \"sctp\"",
                "t.toml:22:11: service[0].server[1].check.command: expected the program as the first word",
                "t.toml:23:20: service[0].server[1].check.target_arguments: expected true or false, found the string \"no\"",
                "t.toml:29:26: service[0].server[2].check.command[1]: expected a word, as \"/usr/local/bin/check\", found the integer 7",
            ]
        );
    }

    #[test]
    fn bad_keepalived_check_settings_are_refused_with_their_place() {
        let text = r#"[[service]]
tcp = "127.0.0.1:80"

[service.check]
status = [200, "600-700", true]
digest = "9b3a0c85"
query_type = "PTR"
source = "here"
source_port = 0
address = 7
helo = "two words"
hosts = ["127.0.0.3"]
path = "relative"
weight = 2147483648
reverse = "yes"
request = "/"

[[service.check.url]]
status = []

[[service.check.url]]
path = "/b"
digest = "zz3a0c85a887a256d6939da88aabd8cd"
"#;
        assert_eq!(
            problems(text),
            [
                "t.toml:5:16: service[0].check.status[1]: expected a status or a range of them, as 200 or \"200-399\", found the string \"600-700\"",
                "t.toml:5:27: service[0].check.status[2]: expected a status or a range of them, as 200 or \"200-399\", found true",
                "t.toml:6:10: service[0].check.digest: expected an MD5 digest, 32 hex digits, as \"9b3a0c85a887a256d6939da88aabd8cd\", found the string \"9b3a0c85\"",
                "t.toml:7:14: service[0].check.query_type: expected \"A\", \"NS\", \"CNAME\", \"SOA\", \"MX\", \"TXT\", \"AAAA\", \"RRSIG\", \"DNSKEY\", found the string \"PTR\"",
                "t.toml:8:10: service[0].check.source: expected an address, as \"10.0.0.5\", found the string \"here\"",
                "t.toml:9:15: service[0].check.source_port: expected an integer from 1 to 65535, found the integer 0",
                "t.toml:10:11: service[0].check.address: expected an address, as \"10.0.0.5\", found the integer 7",
                "t.toml:11:8: service[0].check.helo: expected a host name, as \"lb.example.com\", found the string \"two words\"",
                "t.toml:12:10: service[0].check.hosts[0]: expected an address with a port, as \"10.0.0.7:25\", found the string \"127.0.0.3\"",
                "t.toml:13:8: service[0].check.path: expected an absolute path, as \"/run/weight\", found the string \"relative\"",
                "t.toml:14:10: service[0].check.weight: expected an integer from -2147483647 to 2147483647, found the integer 2147483648",
                "t.toml:15:11: service[0].check.reverse: expected true or false, found the string \"yes\"",
                "t.toml:16:11: service[0].check.request: request and url tables: give each URL's path in its table",
                "t.toml:18:1: service[0].check.url[0]: a url needs a path",
                "t.toml:19:10: service[0].check.url[0].status: expected at least one status",
                "t.toml:23:10: service[0].check.url[1].digest: expected an MD5 digest, 32 hex digits, as \"9b3a0c85a887a256d6939da88aabd8cd\", found the string \"zz3a0c85a887a256d6939da88aabd8cd\"",
            ]
        );
    }
    #[test]
    fn several_checks_are_arrays_of_tables_and_render_back_as_arrays() {
        let text = r#"[[service]]
tcp = "127.0.0.1:80"

[[service.check]]
type = "connect"

[[service.check]]
type = "negotiate"
service = "http"

[[service.check.url]]
path = "/a"

[[service.server]]
address = "127.0.0.2:80"

[[service.server]]
address = "127.0.0.3:80"

[[service.server.check]]
type = "external"
command = "/bin/true"

[[service.server.check]]
type = "file"
path = "/run/w"

[[service.server]]
address = "127.0.0.4:80"

[service.server.check]
port = 81
"#;
        let config = parse(text, Path::new("t.toml")).unwrap();
        let spec = &config.services[0];
        assert_eq!(spec.health.check.kind, Some(CheckKind::Connect));
        assert_eq!(spec.health.more_checks.len(), 1);
        assert_eq!(
            spec.health.more_checks[0].urls.as_ref().map(Vec::len),
            Some(1),
            "a url table belongs to the check it follows"
        );
        let key = |last: u8| crate::table::ServerKey {
            addr: IpAddr::from([127, 0, 0, last]),
            port: 80,
        };
        assert_eq!(spec.server_checks[&key(3)].kind, Some(CheckKind::External));
        assert_eq!(
            spec.server_more_checks[&key(3)][0].kind,
            Some(CheckKind::File)
        );
        assert_eq!(spec.server_checks[&key(4)].port, Some(81));
        assert!(!spec.server_more_checks.contains_key(&key(4)));
        let rendered = crate::config::render::render(&config);
        assert_eq!(rendered.matches("\n[[service.check]]\n").count(), 2);
        assert_eq!(rendered.matches("\n[[service.server.check]]\n").count(), 2);
        assert_eq!(
            rendered.matches("\n[service.server.check]\n").count(),
            1,
            "one check: the table, as ever\n{rendered}"
        );
        assert_eq!(
            parse(&rendered, Path::new("r.toml")).unwrap(),
            config,
            "what is rendered reads back the same"
        );
    }

    #[test]
    fn a_server_with_fewer_own_checks_than_its_service_is_warned_of() {
        let text = r#"[[service]]
tcp = "127.0.0.1:80"

[[service.check]]
type = "connect"

[[service.check]]
type = "file"
path = "/run/w"

[[service.server]]
address = "127.0.0.2:80"

[service.server.check]
port = 81

[[service.server]]
address = "127.0.0.3:80"

[[service.server.check]]
port = 82

[[service.server.check]]
type = "on"
"#;
        assert_eq!(
            warnings(text, Path::new("t.toml")),
            [
                "t.toml:14:1: warning: service[0].server[0].check: this server's own checks replace its service's 2: it runs 1, each over the service's in its place"
            ]
        );
    }

    #[test]
    fn more_than_sixteen_checks_and_several_global_ones_are_refused_with_their_place() {
        let mut text = String::from("[[service]]\ntcp = \"127.0.0.1:80\"\n");
        for _ in 0..17 {
            text.push_str("[[service.check]]\ntype = \"on\"\n");
        }
        text.push_str("[[service.server]]\naddress = \"127.0.0.2:80\"\n");
        for _ in 0..17 {
            text.push_str("[[service.server.check]]\ntype = \"on\"\n");
        }
        text.push_str("[[global.check]]\ntype = \"on\"\n");
        assert_eq!(
            problems(&text),
            [
                "t.toml:35:1: service[0].check[16]: at most 16 checks for one real server",
                "t.toml:71:1: service[0].server[0].check[16]: at most 16 checks for one real server",
                "t.toml:73:1: global.check: expected a table (the defaults of every check), found an array",
            ]
        );
    }
}

#[cfg(test)]
mod group_tests {
    use super::*;

    fn listed(c: &Config) -> Vec<String> {
        c.services
            .iter()
            .map(|s| {
                let servers: Vec<String> = s
                    .servers
                    .iter()
                    .map(|r| format!("{}:{}", r.addr, r.port))
                    .collect();
                format!("{} -> {}", s.service.key, servers.join(" "))
            })
            .collect()
    }

    /// Each member is one virtual service with the group's settings and servers, in the
    /// file's order; a port-less server takes each member's port, a gate server too.
    #[test]
    fn a_group_is_one_virtual_service_per_member() {
        let text = r#"
[[service]]
group = "web"
tcp = ["192.0.2.1:80", "192.0.2.5-192.0.2.7:443"]
fwmark = [7]
scheduler = "rr"
persistent = 60
[service.check]
type = "connect"
[[service.server]]
address = "198.51.100.1"
[[service.server]]
address = "198.51.100.2:8080"
forward = "gate"
[[service.server]]
address = "198.51.100.3:8080"
[service.server.check]
port = 9
"#;
        let c = parse(text, Path::new("t.toml")).unwrap();
        assert_eq!(
            listed(&c),
            [
                "tcp 192.0.2.1:80 -> 198.51.100.1:80 198.51.100.2:80 198.51.100.3:8080",
                "tcp 192.0.2.5:443 -> 198.51.100.1:443 198.51.100.2:443 198.51.100.3:8080",
                "tcp 192.0.2.6:443 -> 198.51.100.1:443 198.51.100.2:443 198.51.100.3:8080",
                "tcp 192.0.2.7:443 -> 198.51.100.1:443 198.51.100.2:443 198.51.100.3:8080",
                "fwmark 7 -> 198.51.100.1:0 198.51.100.2:8080 198.51.100.3:8080",
            ]
        );
        let first = c.services[0].service.key;
        for s in &c.services {
            let g = s.group.as_ref().unwrap();
            assert_eq!((g.name.as_str(), g.checks), ("web", first));
            assert_eq!(
                (s.service.scheduler.as_str(), s.service.timeout),
                ("rr", 60)
            );
            let own = crate::table::ServerKey {
                addr: "198.51.100.3".parse().unwrap(),
                port: 8080,
            };
            assert_eq!(s.server_checks[&own].port, Some(9));
        }
        assert_eq!(
            c.services[4].service.key,
            ServiceKey::Fwmark {
                mark: 7,
                family: Family::Inet
            },
            "a mark takes the addresses' family"
        );
    }

    #[test]
    fn bad_members_overlaps_and_too_many_are_refused_where_written() {
        let text = r#"
[[service]]
tcp = "192.0.2.9:80"

[[service]]
group = "g"
tcp = ["192.0.2.1-192.0.2.3:80", "192.0.2.2:80", "192.0.2.9:80", "192.0.2.1-9:80"]
udp = "[2001:db8::1]:53"
fwmark = [0]

[[service]]
tcp = ["192.0.2.20:80", "192.0.2.21:80"]

[[service]]
group = "big"
udp = ["10.0.0.0-10.0.0.255:53", "10.0.1.0:53"]

[[service]]
group = "huge"
udp = "10.0.0.0-10.0.1.0:53"

[[service]]
group = "empty"

[[service]]
group = "big"
fwmark = 3
"#;
        assert_eq!(
            problems(text),
            [
                "t.toml:6:9: service[1].group: a group's virtual addresses are of one family, as its real servers are",
                "t.toml:7:66: service[1].tcp[3]: expected a virtual address and port or a range of addresses, as \"10.0.0.1:80\", \"10.0.0.1-10.0.0.9:80\" or \"[2001:db8::1-2001:db8::9]:80\", found the string \"192.0.2.1-9:80\"",
                "t.toml:9:11: service[1].fwmark[0]: expected an integer from 1 to 4294967295, found the integer 0",
                "t.toml:12:7: service[2].tcp: several virtual services sharing real servers are a group: name it with group = \"NAME\"",
                "t.toml:16:34: service[3].udp[1]: a group holds at most 256 virtual services (a range counts each address); this one makes more",
                "t.toml:20:7: service[4].udp: a range of more than 256 addresses; a group holds at most 256 virtual services",
                "t.toml:23:9: service[5].group: a group needs members: tcp, udp or sctp = [\"ADDR:PORT\", ...] or fwmark = [MARK, ...]",
            ]
        );
        let overlaps = r#"
[[service]]
tcp = "192.0.2.9:80"

[[service]]
group = "g"
tcp = ["192.0.2.1-192.0.2.3:80", "192.0.2.2:80", "192.0.2.9:80"]

[[service]]
group = "g"
fwmark = 3
"#;
        assert_eq!(
            problems(overlaps),
            [
                "t.toml:7:34: service[1].tcp[1]: tcp 192.0.2.2:80: this virtual service is already defined above",
                "t.toml:7:50: service[1].tcp[2]: tcp 192.0.2.9:80: this virtual service is already defined above",
                "t.toml:10:9: service[2].group: group \"g\" is already defined above",
            ]
        );
    }

    #[test]
    fn a_dns_name_that_cannot_be_asked_for_is_refused_where_it_is() {
        let text = "[[service]]\nudp = \"127.0.0.1:53\"\n[service.check]\ntype = \"negotiate\"\nservice = \"dns\"\nrequest = \"a..b\"\n[[service.server]]\naddress = \"127.0.0.2:53\"\n";
        assert_eq!(
            problems(text),
            ["t.toml:6:11: service[0].check.request: the name \"a..b\" has an empty label"]
        );
        // Another kind's request is a path, not a name.
        let http = text.replace("\"dns\"", "\"http\"");
        assert_eq!(problems(&http), Vec::<String>::new());
    }

    #[test]
    fn a_group_whose_members_do_not_read_still_reads_as_a_service() {
        // Two families: that is said, and nothing about keys a service may have.
        let text = "[[service]]\ngroup = \"g\"\ntcp = [\"127.0.1.1:20130\", \"[::1]:20131\"]\nquorum = 2\nha_suspend = true\n[[service.check]]\ntype = \"connect\"\n[[service.check]]\ntype = \"on\"\n[[service.server]]\naddress = \"127.0.0.2:80\"\n";
        assert_eq!(
            problems(text),
            [
                "t.toml:2:9: service[0].group: a group's virtual addresses are of one family, as its real servers are"
            ]
        );
    }

    #[test]
    fn ranges_of_any_size_are_refused_by_their_size_without_being_built() {
        // 2^32 and 2^128 addresses (the first took 73 GB before), and a list of many
        // ranges of 256 that is not read past what the group is refused for.
        let many: Vec<String> = (0..=255)
            .flat_map(|b| (0..=255).map(move |c| format!("\"10.{b}.{c}.0-10.{b}.{c}.255:80\"")))
            .collect();
        let text = format!(
            "[[service]]\ngroup = \"v4\"\ntcp = \"0.0.0.0-255.255.255.255:80\"\n\n\
             [[service]]\ngroup = \"v6\"\ntcp = \"[::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:80\"\n\n\
             [[service]]\ngroup = \"many\"\ntcp = [{}]\n",
            many.join(", ")
        );
        let problems = problems(&text);
        assert_eq!(
            problems[..2],
            [
                "t.toml:3:7: service[0].tcp: a range of more than 256 addresses; a group holds at most 256 virtual services",
                "t.toml:7:7: service[1].tcp: a range of more than 256 addresses; a group holds at most 256 virtual services",
            ]
        );
        assert!(
            problems[2].starts_with("t.toml:11:")
                && problems[2].ends_with("service[2].tcp[1]: a group holds at most 256 virtual services (a range counts each address); this one makes more"),
            "{problems:?}"
        );
        assert_eq!(problems.len(), 3);
    }

    /// A listen rule is checked against every service of the file, wherever it is,
    /// as the plan adds rules after all the services.
    #[test]
    fn a_listen_rule_cannot_take_the_vip_of_a_service_later_in_the_file() {
        let text = r#"
[[service]]
fwmark = 5
listen = ["tcp 127.0.0.1:80"]

[[service]]
tcp = "127.0.0.1:80"
"#;
        assert_eq!(
            problems(text),
            [
                "t.toml:2:1: service[0].listen: -t 127.0.0.1:80: -t 127.0.0.1:80 is served by virtual service tcp 127.0.0.1:80: the service keeps its address and a listener there would never be used (delete the service first, or listen elsewhere)"
            ]
        );
    }

    /// A file's listen rule names one address: 0.0.0.0 or :: is refused, and a rule
    /// under a service at 0.0.0.0 on its port is that service's address, in either
    /// order in the file (as `uvsadm --add-listener` refuses them).
    #[test]
    fn a_listen_rule_on_every_address_or_under_a_wildcard_service_is_refused() {
        let text = r#"
[[service]]
fwmark = 5
listen = ["tcp 0.0.0.0:9000", "udp 0.0.0.0:9001"]
"#;
        assert_eq!(
            problems(text),
            [
                "t.toml:2:1: service[0].listen: -t 0.0.0.0:9000: -t 0.0.0.0:9000: a listener needs one address, not every address of the host (it would hold port 9000 on the VIPs added later too): add a listener for each address",
                "t.toml:2:1: service[0].listen: -u 0.0.0.0:9001: -u 0.0.0.0:9001: a listener needs one address, not every address of the host (it would hold port 9001 on the VIPs added later too): add a listener for each address",
            ]
        );
        let rule = r#"
[[service]]
fwmark = 5
listen = ["tcp 127.0.0.71:9000"]
"#;
        let wildcard = r#"
[[service]]
tcp = "0.0.0.0:9000"
"#;
        let refused = "-t 127.0.0.71:9000: -t 127.0.0.71:9000 is served by virtual service tcp 0.0.0.0:9000: the service keeps its address and a listener there would never be used (delete the service first, or listen elsewhere)";
        for (text, at) in [
            (format!("{rule}{wildcard}"), "t.toml:2:1: service[0].listen"),
            (format!("{wildcard}{rule}"), "t.toml:5:1: service[1].listen"),
        ] {
            assert_eq!(problems(&text), [format!("{at}: {refused}")], "{text}");
        }
    }

    #[test]
    fn a_groups_listen_rules_go_to_its_one_fwmark_member_and_its_flags_to_all() {
        let text = r#"
[[service]]
group = "g"
tcp = "127.0.0.1:80"
fwmark = 5
listen = ["tcp 127.0.0.2:443"]
[[service.server]]
address = "127.0.0.3:8080"
"#;
        let c = parse(text, Path::new("t.toml")).unwrap();
        assert!(c.services[0].listen.is_empty());
        assert_eq!(c.services[1].listen.len(), 1);
        assert_eq!(c.services[1].listen[0].mark, Some(5));
        let tcp_too = "[[service]]\ngroup = \"g\"\nudp = \"127.0.0.1:53\"\ntcp = \"127.0.0.1:53\"\none_packet = true\n";
        assert_eq!(
            problems(tcp_too),
            [
                "t.toml:5:14: service[0].one_packet: One-Packet Scheduling is only for UDP virtual services"
            ],
            "a group's flags are every member's"
        );
        let two = text.replace("fwmark = 5", "fwmark = [5, 6]");
        assert_eq!(
            problems(&two),
            [
                "t.toml:6:10: service[0].listen: listen in a group is for its one fwmark member, or its one port-0 member"
            ]
        );
    }

    /// A gate server takes each member's port: `uvs check` says so, and two that meet
    /// in one member are refused there, with the member named.
    #[test]
    fn gate_servers_in_a_group_are_warned_of_and_refused_where_they_meet() {
        let warned = r#"
[[service]]
group = "g"
fwmark = 3
tcp = ["127.0.0.1:80", "127.0.0.1:443"]
[[service.server]]
address = "127.0.0.2:8080"
forward = "gate"
"#;
        assert_eq!(
            warnings(warned, Path::new("t.toml")),
            [
                "t.toml:6:1: warning: service[0].server[0]: a gate real server takes each member's port, as ipvsadm gives it; port 8080 is not used"
            ]
        );
        let meeting = r#"
[[service]]
group = "g"
fwmark = 3
tcp = "127.0.0.1:80"
[[service.server]]
address = "127.0.0.2:8080"
forward = "gate"
[[service.server]]
address = "127.0.0.2:8081"
forward = "gate"
"#;
        assert_eq!(
            problems(meeting),
            ["t.toml:9:1: service[0].server[1]: in tcp 127.0.0.1:80: Destination already exists"]
        );
    }

    #[test]
    fn slow_start_is_read_for_services_and_servers_and_bad_windows_are_refused() {
        let text = r#"
[[service]]
tcp = "127.0.0.1:80"
slow_start = "30s"

[[service.server]]
address = "127.0.0.1:8080"
slow_start = "10s"

[[service.server]]
address = "127.0.0.2:8080"
slow_start = "0s"

[[service.server]]
address = "127.0.0.3:8080"
"#;
        let c = parse(text, Path::new("t.toml")).unwrap();
        let web = &c.services[0];
        assert_eq!(web.service.options.slow_start_ms, 30_000);
        let own: Vec<Option<u32>> = web
            .servers
            .iter()
            .map(|s| s.options.slow_start_ms)
            .collect();
        assert_eq!(own, [Some(10_000), Some(0), None]);

        let bad = r#"
[[service]]
tcp = "127.0.0.1:80"
slow_start = "-5s"

[[service.server]]
address = "127.0.0.1:8080"
slow_start = "2d"

[[service]]
tcp = "127.0.0.1:81"
slow_start = "soon"
"#;
        let expected =
            "a duration from 0 to 86400 seconds, as \"30s\", \"5m\" or a number of seconds";
        assert_eq!(
            problems(bad),
            [
                format!(
                    "t.toml:4:14: service[0].slow_start: expected {expected}, found the string \"-5s\""
                ),
                format!(
                    "t.toml:8:14: service[0].server[0].slow_start: expected {expected}, found the string \"2d\""
                ),
                format!(
                    "t.toml:12:14: service[1].slow_start: expected {expected}, found the string \"soon\""
                ),
            ]
        );
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    fn service(queue: &str, max: &str) -> String {
        format!(
            "[[service]]\ntcp = \"127.0.0.1:80\"\n{queue}\n[[service.server]]\naddress = \"127.0.0.2:8080\"\n{max}\n"
        )
    }

    #[test]
    fn limits_and_queues_are_read() {
        let text = service(
            "queue = { length = 50, timeout = \"1500ms\" }",
            "max_connections = 3",
        );
        let c = parse(&text, Path::new("t.toml")).expect("a good file");
        let s = &c.services[0];
        assert_eq!(
            s.service.options.queue,
            Some(QueueOptions {
                length: std::num::NonZeroU32::new(50).unwrap(),
                timeout_ms: 1500
            })
        );
        assert_eq!(s.servers[0].options.max_connections, 3);
        assert!(warnings(&text, Path::new("t.toml")).is_empty());
    }

    #[test]
    fn bad_limits_and_queues_are_named_with_their_values() {
        let cases = [
            (
                service("", "max_connections = -1"),
                "t.toml:6:19: service[0].server[0].max_connections: expected an integer from 0 to 2147483647, found the integer -1",
            ),
            (
                service("", "max_connections = \"many\""),
                "t.toml:6:19: service[0].server[0].max_connections: expected an integer from 0 to 2147483647, found the string \"many\"",
            ),
            (
                service("queue = { length = 0, timeout = \"5s\" }", ""),
                "t.toml:3:20: service[0].queue.length: expected an integer from 1 to 1000000, found the integer 0",
            ),
            (
                service("queue = { length = 1000001, timeout = \"5s\" }", ""),
                "t.toml:3:20: service[0].queue.length: expected an integer from 1 to 1000000, found the integer 1000001",
            ),
            (
                service("queue = { length = 5, timeout = \"0s\" }", ""),
                "t.toml:3:33: service[0].queue.timeout: expected a duration of at least 1ms and at most an hour, found the string \"0s\"",
            ),
            (
                service("queue = { length = 5, timeout = \"soon\" }", ""),
                "t.toml:3:33: service[0].queue.timeout: expected a duration of at least 1ms and at most an hour, found the string \"soon\"",
            ),
            (
                service("queue = { length = 5 }", ""),
                "t.toml:3:9: service[0].queue: a queue needs a timeout (how long a connection may wait)",
            ),
            (
                service("queue = { length = 5, timeout = \"5s\", size = 2 }", ""),
                "t.toml:3:39: service[0].queue.size: unknown key",
            ),
        ];
        for (text, expected) in cases {
            let found = problems(&text);
            assert!(
                found.iter().any(|p| p == expected),
                "{text}\nwanted: {expected}\nfound: {found:#?}"
            );
        }
    }

    #[test]
    fn an_ejection_share_that_rounds_down_to_no_server_is_warned_of() {
        let text = "[[service]]\ntcp = \"127.0.0.1:80\"\n\
                    ejection = { failures = 2, base_time = \"30s\", max_share = 0.3 }\n\
                    [[service.server]]\naddress = \"127.0.0.2:80\"\n\
                    [[service.server]]\naddress = \"127.0.0.3:80\"\n";
        let warned = warnings(text, Path::new("t.toml"));
        assert_eq!(
            warned,
            [
                "t.toml:3:12: warning: service[0].ejection: max_share 0.3 of 2 real servers rounds down to none: no server is ever ejected"
            ]
        );
        let four = format!(
            "{text}[[service.server]]\naddress = \"127.0.0.4:80\"\n\
                            [[service.server]]\naddress = \"127.0.0.5:80\"\n"
        );
        assert!(
            warnings(&four, Path::new("t.toml")).is_empty(),
            "0.3 of 4 is 1"
        );
    }

    #[test]
    fn a_queue_no_server_can_fill_is_warned_of() {
        let text = service("queue = { length = 5, timeout = \"5s\" }", "");
        let warned = warnings(&text, Path::new("t.toml"));
        assert_eq!(
            warned,
            vec![
                "t.toml:3:9: warning: service[0].queue: no real server of this service has max_connections: the queue is never used"
            ]
        );
        let udp = text.replace("tcp =", "udp =") + "max_connections = 1\n";
        let warned = warnings(&udp, Path::new("t.toml"));
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(warned[0].contains("datagrams have no queue"), "{warned:?}");
    }
}
