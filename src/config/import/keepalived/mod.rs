//! keepalived.conf to a configuration: `uvs import keepalived FILE`. The grammar is
//! [`lexer`]'s; this maps the statements keepalived's checker reads
//! (keepalived/check/check_parser.c and the check_*.c files) to services, real servers
//! and checks, with keepalived's defaults written out (NAT, wlc, weight 1, a check every
//! 60 s with a 5 s timeout, down after `retry` + 1 failures in a row, the first check
//! spread over a delay loop (`warmup`), a retry 1 s after a failure (3 s for HTTP, a
//! delay loop for DNS: `retry_delay`), a failed server removed unless
//! `inhibit_on_failure`), so that the result behaves as keepalived's
//! IPVS table would. What uvs has no counterpart for yet is reported with its line and
//! makes the import fail; VRRP, `global_defs` and `static_*` are reported as
//! keepalived's own job and do not. `global_defs`'s `lvs_sync_daemon`, or the
//! deprecated `lvs_sync_daemon_interface` of a `vrrp_instance`, becomes the `[sync]`
//! section (`sync`).

mod group;
pub mod lexer;
pub(super) mod sync;

use std::collections::{HashMap, HashSet};

use crate::table::server_address::never_unicast;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

pub use lexer::GrammarError;
use lexer::{Item, Node, Pos};

use super::{Imported, Importing};
use crate::config::{
    Check, CheckCommand, CheckKind, DnsType, Health, MAX_CHECKS, NegotiateService, NotifyCommand,
    ServerHealth, ServiceSpec, Url,
};
use crate::table::{
    Family, Forward, Netmask, PersistenceEngine, Protocol, ServerConfig, ServiceConfig,
    ServiceFlags, ServiceKey, ServiceOptions,
};

/// The schedulers keepalived accepts (ipvswrapper.c's `lvs_schedulers`).
const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq", "twos",
];
/// keepalived's defaults: `delay_loop` (KEEPALIVED_DEFAULT_DELAY), `connect_timeout`,
/// `persistence_timeout` without a value (IPVS_SVC_PERSISTENT_TIMEOUT).
const DELAY_LOOP: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const PERSISTENCE: u32 = 360;
/// `delay_before_retry` without one: check_api.c `queue_checker`'s
/// default_delay_before_retry, and check_http.c `http_get_handler`'s for
/// HTTP_GET and SSL_GET (DNS_CHECK's is its delay loop).
const DELAY_BEFORE_RETRY: Duration = Duration::from_secs(1);
const HTTP_DELAY_BEFORE_RETRY: Duration = Duration::from_secs(3);
/// SMTP_CHECK's HELO name without `helo_name` (check_smtp.h's SMTP_DEFAULT_HELO).
const SMTP_DEFAULT_HELO: &str = "smtpchecker.keepalived.org";
/// The longest check interval and timeout uvs takes (the schema's).
const INTERVAL_MAX: Duration = Duration::from_secs(86_400);
const TIMEOUT_MAX: Duration = Duration::from_secs(3600);

/// Imports a keepalived.conf: `text`, read from `path` (None for standard input; an
/// `include`'s relative paths are then the working directory's).
///
/// # Errors
/// The grammar's ([`GrammarError`]): braces that do not balance, includes too deep,
/// too many or too large, an included file that cannot be read.
pub fn import(text: &str, path: Option<&Path>) -> Result<Imported, GrammarError> {
    let mut im = Importing::default();
    // The services' keys so far, so that a file of many takes steps in proportion to
    // them, not to their square.
    let mut keys = HashSet::new();
    // keepalived links groups to their virtual servers once the whole file is read:
    // those blocks wait, with where their services go, until then.
    let mut groups = group::Groups::default();
    let mut waiting = Vec::new();
    lexer::parse(text, path, &mut |item| match item {
        Item::Node(node) if node.keyword() == "virtual_server_group" => {
            group::read(&node, &mut groups, &mut im);
        }
        Item::Node(node) if node.keyword() == "virtual_server" && node.arg(1) == "group" => {
            waiting.push((im.config.services.len(), node));
        }
        Item::Node(node) => top(&node, &mut keys, &mut im),
        Item::Note(note) if note.failing => skip(&mut im, &note.pos, note.message),
        Item::Note(note) => others(&mut im, &note.pos, note.message),
    })?;
    sync::finish(&mut im);
    let mut moved = 0;
    for (at, node) in waiting {
        let specs = group_server(&node, &mut groups, &mut keys, &mut im);
        let n = specs.len();
        im.config.services.splice(at + moved..at + moved, specs);
        moved += n;
    }
    Ok(im.finish())
}

/// A `virtual_server group NAME` block: one service per member of the group, less
/// those another virtual server has already made.
fn group_server(
    n: &Node,
    groups: &mut group::Groups,
    keys: &mut HashSet<ServiceKey>,
    im: &mut Importing,
) -> Vec<ServiceSpec> {
    let name = n.arg(2);
    let Some(g) = groups.by_name.remove(name) else {
        // ipwrapper.c's link_vsg_to_vs: "specified but not configured - ignoring".
        others(
            im,
            &n.pos,
            format!(
                "virtual_server group {name}: no virtual_server_group {name}; keepalived ignores the virtual server, and so does uvs"
            ),
        );
        return Vec::new();
    };
    let made = virtual_server(n, im, Some(&g)).and_then(|template| {
        let (called, members) = group::members(n, &g, template.service.key, groups, im)?;
        Some((template, called, members))
    });
    groups.by_name.insert(name.to_string(), g);
    let Some((template, called, members)) = made else {
        return Vec::new();
    };
    let mut fresh = Vec::new();
    for key in members {
        if keys.insert(key) {
            fresh.push(key);
        } else {
            skip(
                im,
                &n.pos,
                format!(
                    "virtual_server group {name}: {key} is made twice (by this group or another virtual server); the second is not taken"
                ),
            );
        }
    }
    group::expand(n, &template, &called, &fresh, im)
}

/// Reports what was not taken and makes the import fail.
fn skip(im: &mut Importing, pos: &Pos, message: impl std::fmt::Display) {
    im.skip_with(pos.line, || format!("{}{message}", pos.prefix()));
}

/// Reports what is keepalived's own job, or left out by keepalived too.
fn others(im: &mut Importing, pos: &Pos, message: impl std::fmt::Display) {
    im.note(pos.line, format!("{}{message}", pos.prefix()));
}

fn not_yet(im: &mut Importing, n: &Node) {
    skip(
        im,
        &n.pos,
        format!("{}: not in uvs yet; not taken", n.keyword()),
    );
}

/// A top-level statement: a service made, or what it is reported as.
fn top(n: &Node, keys: &mut HashSet<ServiceKey>, im: &mut Importing) {
    let k = n.keyword();
    match k {
        "virtual_server" => {
            if let Some(spec) = virtual_server(n, im, None) {
                if !keys.insert(spec.service.key) {
                    skip(
                        im,
                        &n.pos,
                        format!(
                            "virtual_server {}: listed twice; the second is not taken",
                            n.words[1..].join(" ")
                        ),
                    );
                } else {
                    im.config.services.push(spec);
                }
            }
        }
        "track_file" => track_file(n, im),
        "global_defs" => {
            others(
                im,
                &n.pos,
                "global_defs: keepalived's own settings; not uvs's job, not taken",
            );
            sync::global_defs(n, im);
        }
        "lvs_sync_daemon" => others(
            im,
            &n.pos,
            "lvs_sync_daemon: keepalived reads it in global_defs only (here it is an unknown keyword, ignored), and so does uvs",
        ),
        "SSL" => skip(
            im,
            &n.pos,
            "SSL: uvs's https check presents no client certificate; not taken",
        ),
        _ if k.starts_with("vrrp_") => {
            others(
                im,
                &n.pos,
                format!(
                    "{}: VRRP is keepalived's own job (it moves the VIP); not uvs's, not taken",
                    n.words.join(" ")
                ),
            );
            if k == "vrrp_instance" {
                sync::vrrp_instance(n, im);
            }
        }
        "static_ipaddress"
        | "static_routes"
        | "static_rules"
        | "garp_group"
        | "bfd_instance"
        | "net_namespace"
        | "net_namespace_ipvs"
        | "instance"
        | "linkbeat_use_polling"
        | "linkbeat_interfaces"
        | "use_pid_dir" => others(
            im,
            &n.pos,
            format!("{k}: keepalived's own job; not uvs's, not taken"),
        ),
        _ => skip(
            im,
            &n.pos,
            format!("{k}: not a keepalived keyword uvs knows; not taken"),
        ),
    }
}

/// A top-level `track_file` (keepalived/trackers/track_file.c): its file, weight and
/// reverse, kept for the FILE_CHECKs that name it.
#[derive(Debug, Clone)]
pub(super) struct TrackFile {
    file: Option<std::path::PathBuf>,
    weight: i32,
    reverse: bool,
}

fn track_file(n: &Node, im: &mut Importing) {
    let name = n.arg(1).to_string();
    let mut tf = TrackFile {
        file: None,
        weight: 1,
        reverse: false,
    };
    for c in n.children() {
        let (k, v) = (c.keyword(), c.arg(1));
        match k {
            "file" if v.starts_with('/') => tf.file = Some(v.into()),
            "file" => skip(
                im,
                &c.pos,
                format!("file {v}: uvs reads files named by absolute paths; not taken"),
            ),
            // track_file_weight_handler: -254 to 254, then reverse.
            "weight" => match (v.parse::<i32>(), c.words.get(2).map(String::as_str)) {
                (Ok(w), None | Some("reverse")) if (-254..=254).contains(&w) => {
                    tf.weight = w;
                    tf.reverse = c.words.len() > 2;
                }
                _ => skip(
                    im,
                    &c.pos,
                    format!(
                        "weight {}: a weight from -254 to 254, then reverse or nothing; not taken",
                        c.words[1..].join(" ")
                    ),
                ),
            },
            // A missing file reads as 0, as init_file's default value.
            "init_file" if matches!(v, "" | "0" | "overwrite") && c.words.len() <= 3 => others(
                im,
                &c.pos,
                "init_file: uvs does not write the file; a missing file reads as 0, as keepalived's would",
            ),
            "init_file" => skip(
                im,
                &c.pos,
                "init_file with a value: uvs does not write the file; not taken",
            ),
            _ => skip(
                im,
                &c.pos,
                format!("{k}: not a track_file keyword uvs knows; not taken"),
            ),
        }
    }
    others(
        im,
        &n.pos,
        format!(
            "track_file {name}: read by the FILE_CHECKs that name it; tracking by VRRP is keepalived's own job"
        ),
    );
    im.track_files.insert(name, tf);
}

/// keepalived's seconds: a decimal, to the microsecond (`read_timer`).
fn seconds(v: &str) -> Option<Duration> {
    let s: f64 = v.parse().ok()?;
    (s.is_finite() && (0.0..=f64::from(u32::MAX)).contains(&s))
        .then(|| Duration::from_micros((s * 1e6).round() as u64))
}

/// `n`'s seconds, if uvs takes them: from 1 s to `max`.
fn within(n: &Node, max: Duration, im: &mut Importing) -> Option<Duration> {
    let v = n.arg(1);
    match seconds(v) {
        Some(d) if d >= Duration::from_secs(1) && d < max + Duration::from_secs(1) => Some(d),
        _ => {
            skip(
                im,
                &n.pos,
                format!(
                    "{} {v}: uvs takes 1 to {} seconds; not taken",
                    n.keyword(),
                    max.as_secs()
                ),
            );
            None
        }
    }
}

/// NAT, DR, TUN (keepalived's `svr_forwarding_handler`); tunnel options other than
/// the plain ipip are not taken.
fn method(n: &Node, im: &mut Importing) -> Option<Forward> {
    let f = match n.arg(1) {
        "NAT" => Forward::Masq,
        "DR" => Forward::Route,
        "TUN" => Forward::Tunnel,
        other => {
            skip(
                im,
                &n.pos,
                format!("{} {other}: NAT, DR or TUN; not taken", n.keyword()),
            );
            return None;
        }
    };
    if n.words.len() > 2 && n.words[2..] != ["type", "ipip"] {
        skip(
            im,
            &n.pos,
            format!(
                "{}: tunnel options ({}) are not taken; a plain ipip tunnel is used",
                n.keyword(),
                n.words[2..].join(" ")
            ),
        );
    }
    Some(f)
}

/// An address and an optional port (keepalived's `inet_stosockaddr`; port 0 or none:
/// the port the client reached).
fn address(ip: &str, port: &str) -> Option<(IpAddr, u16)> {
    let ip: IpAddr = ip.parse().ok()?;
    let port = if port.is_empty() {
        0
    } else {
        port.parse().ok()?
    };
    Some((ip, port))
}

/// The check timings a virtual server, a real server or a check sets; the nearest wins.
#[derive(Default, Clone)]
struct Timers {
    delay_loop: Option<Duration>,
    connect_timeout: Option<Duration>,
    retry: Option<u32>,
    virtualhost: Option<String>,
    /// `alpha`, with where it was said.
    alpha: Option<(bool, Pos)>,
    warmup: Option<Duration>,
    delay_before_retry: Option<Duration>,
}

impl Timers {
    /// Takes `n` if it is one of these (or one uvs has not yet, reported); false if it
    /// is none of them.
    fn take(&mut self, n: &Node, im: &mut Importing) -> bool {
        let v = n.arg(1);
        match n.keyword() {
            "delay_loop" => {
                if let Some(d) = within(n, INTERVAL_MAX, im) {
                    self.delay_loop = Some(d);
                }
            }
            "connect_timeout" => {
                if let Some(d) = within(n, TIMEOUT_MAX, im) {
                    self.connect_timeout = Some(d);
                }
            }
            "retry" | "nb_get_retry" => match v.parse::<u32>() {
                // uvs counts up to 1000 failures in a row (retry + 1).
                Ok(r) if r < 1000 => self.retry = Some(r),
                _ => skip(
                    im,
                    &n.pos,
                    format!("{} {v}: not a number; not taken", n.keyword()),
                ),
            },
            "virtualhost" if !v.is_empty() => self.virtualhost = Some(v.to_string()),
            // keepalived's read_timer from 0 (check_api.c `delay_before_retry_handler`,
            // `warmup_handler`); uvs takes up to a day.
            "delay_before_retry" | "warmup" => match seconds(v) {
                Some(d) if d <= INTERVAL_MAX => {
                    if n.keyword() == "warmup" {
                        self.warmup = Some(d);
                    } else {
                        self.delay_before_retry = Some(d);
                    }
                }
                _ => skip(
                    im,
                    &n.pos,
                    format!(
                        "{} {v}: uvs takes 0 to {} seconds; not taken",
                        n.keyword(),
                        INTERVAL_MAX.as_secs()
                    ),
                ),
            },
            "alpha" => self.alpha = Some((yes(n, im), n.pos.clone())),
            _ => return false,
        }
        true
    }

    /// `self`, with what it leaves unset from `base`.
    fn or(&self, base: &Timers) -> Timers {
        Timers {
            delay_loop: self.delay_loop.or(base.delay_loop),
            connect_timeout: self.connect_timeout.or(base.connect_timeout),
            retry: self.retry.or(base.retry),
            alpha: self.alpha.clone().or_else(|| base.alpha.clone()),
            warmup: self.warmup.or(base.warmup),
            delay_before_retry: self.delay_before_retry.or(base.delay_before_retry),
            virtualhost: self
                .virtualhost
                .clone()
                .or_else(|| base.virtualhost.clone()),
        }
    }
}

/// What a virtual server block says.
enum Target {
    Addr(IpAddr, u16),
    Mark(u32),
}

/// A `virtual_server` block; for `virtual_server group NAME`, `group` is the group,
/// and the service is made for its first member (`group_server` makes the others).
fn virtual_server(
    n: &Node,
    im: &mut Importing,
    group: Option<&group::VsGroup>,
) -> Option<ServiceSpec> {
    let what = n.words[1..].join(" ");
    // A group's first mark may name its family (`fwmark N inet6`).
    let mut mark_family = None;
    let target = match (n.arg(1), n.arg(2)) {
        ("group", _) => match group {
            Some(g) => match (g.addrs.first(), g.marks.first()) {
                (Some(&(addr, port)), _) => Target::Addr(addr, port),
                (None, Some(&(mark, family, _))) => {
                    mark_family = family;
                    Target::Mark(mark)
                }
                (None, None) => return None,
            },
            None => return None,
        },
        ("fwmark", mark) => match mark.parse::<u32>() {
            Ok(0) => {
                skip(
                    im,
                    &n.pos,
                    format!("virtual_server {what}: IPVS takes firewall marks from 1; not taken"),
                );
                return None;
            }
            Ok(m) => Target::Mark(m),
            Err(_) => {
                skip(
                    im,
                    &n.pos,
                    format!("virtual_server {what}: not a firewall mark; not taken"),
                );
                return None;
            }
        },
        (ip, port) => match address(ip, port) {
            Some((addr, port)) => Target::Addr(addr, port),
            None => {
                skip(
                    im,
                    &n.pos,
                    format!("virtual_server {what}: not a numeric address and port; not taken"),
                );
                return None;
            }
        },
    };
    let mut scheduler = "wlc".to_string();
    let mut flags = 0u32;
    let mut forward = None;
    let mut persistence: Option<u32> = None;
    let mut granularity: Option<&Node> = None;
    let mut pe = None;
    let mut protocol = None;
    let mut ops: Option<&Node> = None;
    let mut family: Option<Family> = None;
    let mut timers = Timers::default();
    let mut inhibit = false;
    let mut sorry: Option<&Node> = None;
    let mut sorry_method = None;
    let mut sorry_inhibit = false;
    let mut ha_suspend: Option<&Node> = None;
    let mut reals = Vec::new();
    let (mut omega, mut quorum, mut hysteresis) = (false, None, None);
    let (mut quorum_up, mut quorum_down) = (None, None);
    // The weight of its real servers that name none (check_parser.c
    // `vs_weight_handler`; check_data.c `validate_check_config` gives it them).
    let mut weight = 1;
    for c in n.children() {
        let (k, v) = (c.keyword(), c.arg(1));
        if timers.take(c, im) {
            continue;
        }
        match k {
            "lb_algo" | "lvs_sched" => {
                if SCHEDULERS.contains(&v) {
                    scheduler = v.to_string();
                } else {
                    skip(
                        im,
                        &c.pos,
                        format!("{k} {v}: not a scheduler keepalived knows; not taken"),
                    );
                }
            }
            "lb_kind" | "lvs_method" => forward = method(c, im).or(forward),
            "persistence_timeout" if v.is_empty() => persistence = Some(PERSISTENCE),
            "persistence_timeout" => match v.parse::<u32>() {
                Ok(t) if t > 0 => persistence = Some(t),
                _ => skip(
                    im,
                    &c.pos,
                    format!("persistence_timeout {v}: not a number of seconds; not taken"),
                ),
            },
            "persistence_granularity" => granularity = Some(c),
            "persistence_engine" => match PersistenceEngine::from_name(v) {
                Some(e) => pe = Some(e.name().to_string()),
                None => skip(
                    im,
                    &c.pos,
                    format!("persistence_engine {v}: uvs has sip only; not taken"),
                ),
            },
            "protocol" => match v.to_ascii_uppercase().as_str() {
                "TCP" => protocol = Some(Protocol::Tcp),
                "UDP" => protocol = Some(Protocol::Udp),
                "SCTP" => {
                    skip(
                        im,
                        &c.pos,
                        "protocol SCTP: uvs takes SCTP services into its table but does not serve them; the service is not taken",
                    );
                    return None;
                }
                _ => skip(
                    im,
                    &c.pos,
                    format!("protocol {v}: TCP, UDP or SCTP; not taken"),
                ),
            },
            "ops" => ops = Some(c),
            "hashed" => others(
                im,
                &c.pos,
                "hashed: keepalived sets nothing for it; nothing to take",
            ),
            "flag-1" | "flag-2" | "flag-3" | "sh-port" | "sh-fallback" | "mh-port"
            | "mh-fallback" => match ServiceFlags::scheduler_flag(k) {
                Some((bit, None)) => flags |= bit,
                Some((bit, Some(owner))) if owner == scheduler => flags |= bit,
                _ => skip(
                    im,
                    &c.pos,
                    format!(
                        "{k}: only for the {} scheduler, and it is {scheduler} here (keepalived ignores it too); not taken",
                        &k[..2]
                    ),
                ),
            },
            "ip_family" => match v {
                "inet" => family = Some(Family::Inet),
                "inet6" => family = Some(Family::Inet6),
                _ => skip(
                    im,
                    &c.pos,
                    format!("ip_family {v}: inet or inet6; not taken"),
                ),
            },
            "inhibit_on_failure" => inhibit = yes(c, im),
            "sorry_server" => sorry = Some(c),
            "sorry_server_lvs_method" => sorry_method = method(c, im),
            "real_server" => reals.push(c),
            "omega" => omega = true,
            // check_parser.c `quorum_handler`: from 1, else 1 with an error.
            "quorum" => match v.parse::<u32>() {
                Ok(q) if q >= 1 => quorum = Some(q),
                _ => {
                    skip(
                        im,
                        &c.pos,
                        format!(
                            "quorum {v}: keepalived takes 1 to 4294967295 and uses 1 instead; so does uvs"
                        ),
                    );
                    quorum = Some(1);
                }
            },
            "hysteresis" => match v.parse::<u32>() {
                Ok(h) => hysteresis = Some((h, c.pos.clone())),
                Err(_) => skip(
                    im,
                    &c.pos,
                    format!("hysteresis {v}: not a number; not taken"),
                ),
            },
            "quorum_up" => quorum_up = command(c, im),
            "quorum_down" => quorum_down = command(c, im),
            // keepalived takes 1 to IPVS_WEIGHT_LIMIT; uvs's weights end at 65535.
            "weight" => match v.parse::<i32>() {
                Ok(w) if (1..=65535).contains(&w) => weight = w,
                _ => skip(
                    im,
                    &c.pos,
                    format!("weight {v}: not a weight from 1 to 65535; not taken"),
                ),
            },
            // check_parser.c `ssvri_handler`: the sorry server's inhibit, so only after
            // a sorry_server.
            "sorry_server_inhibit" if sorry.is_some() => sorry_inhibit = true,
            "sorry_server_inhibit" => others(
                im,
                &c.pos,
                "sorry_server_inhibit: before or without a sorry_server; keepalived ignores it, and so does uvs",
            ),
            "ha_suspend" => ha_suspend = Some(c),
            "smtp_alert" => not_yet(im, c),
            "snmp_name" => skip(im, &c.pos, "snmp_name: uvs has no SNMP; not taken"),
            _ => skip(
                im,
                &c.pos,
                format!("{k}: not a virtual_server keyword uvs knows; not taken"),
            ),
        }
    }
    if reals.is_empty() {
        others(
            im,
            &n.pos,
            format!(
                "virtual_server {what}: no real servers; keepalived leaves it out, and so does uvs"
            ),
        );
        return None;
    }
    if let Target::Addr(addr, port) = target
        && let Some(why) = super::v4_mapped_vip(&addr, port)
    {
        skip(
            im,
            &n.pos,
            format!("virtual_server {what}: {why}; not taken"),
        );
        return None;
    }
    let key = match target {
        Target::Addr(addr, port) => {
            // check_data.c: "If the protocol is 0, the kernel defaults to UDP".
            let protocol = protocol.unwrap_or_else(|| {
                others(im, &n.pos, format!("virtual_server {what}: no protocol; keepalived makes it UDP, and so does uvs"));
                Protocol::Udp
            });
            if let Some(o) = ops {
                if protocol == Protocol::Udp {
                    flags |= ServiceFlags::ONE_PACKET;
                } else {
                    others(
                        im,
                        &o.pos,
                        "ops: one-packet scheduling needs UDP; keepalived resets it, and so does uvs",
                    );
                }
            }
            let own = if addr.is_ipv4() {
                Family::Inet
            } else {
                Family::Inet6
            };
            if family.is_some_and(|f| f != own) {
                skip(
                    im,
                    &n.pos,
                    "ip_family: not the family of the virtual server's address; not taken",
                );
            }
            ServiceKey::Inet {
                protocol,
                addr,
                port,
            }
        }
        Target::Mark(mark) => {
            if ops.is_some() {
                flags |= ServiceFlags::ONE_PACKET;
            }
            // keepalived takes a mark's family from ip_family, else from its servers.
            let first_real = reals
                .iter()
                .find_map(|r| r.arg(1).parse::<IpAddr>().ok())
                .map(|a| {
                    if a.is_ipv4() {
                        Family::Inet
                    } else {
                        Family::Inet6
                    }
                });
            ServiceKey::Fwmark {
                mark,
                family: mark_family
                    .or(family)
                    .or(first_real)
                    .unwrap_or(Family::Inet),
            }
        }
    };
    let family = key.family();
    // check_data.c `validate_check_config`: "cannot use ha_suspend with fwmarks".
    let marked =
        matches!(key, ServiceKey::Fwmark { .. }) || group.is_some_and(|g| !g.marks.is_empty());
    let ha_suspend = match ha_suspend {
        Some(_) if !marked => Some(true),
        Some(h) => {
            others(
                im,
                &h.pos,
                "ha_suspend: a fwmark virtual server (or a group with one) has no address to look for; keepalived clears it, and so does uvs",
            );
            None
        }
        None => None,
    };
    let netmask = match granularity {
        None => Netmask::full(family),
        Some(g) => {
            persistence.get_or_insert(PERSISTENCE);
            let v = g.arg(1);
            match family {
                // keepalived and the kernel take any mask; uvs only a contiguous one.
                Family::Inet => v
                    .parse::<Ipv4Addr>()
                    .ok()
                    .filter(|m| {
                        let m = u32::from(*m);
                        m.leading_ones() + m.trailing_zeros() >= 32
                    })
                    .map(Netmask::V4),
                Family::Inet6 => v.parse::<u32>().ok().filter(|p| (1..=128).contains(p)).map(Netmask::V6),
            }
            .unwrap_or_else(|| {
                skip(im, &g.pos, format!("persistence_granularity {v}: not a contiguous netmask of the service's family; not taken"));
                Netmask::full(family)
            })
        }
    };
    if persistence.is_some() {
        flags |= ServiceFlags::PERSISTENT;
    }
    let forward = forward.unwrap_or(Forward::Masq);
    let mut servers = Vec::new();
    let mut checks = Vec::new();
    let mut inhibits = Vec::new();
    let mut health = Health {
        alpha: timers.alpha.as_ref().map(|(a, _)| *a),
        omega: omega.then_some(true),
        quorum,
        quorum_up,
        quorum_down,
        ha_suspend,
        ..Health::default()
    };
    // check_data.c `validate_check_config`: a hysteresis not below the quorum is
    // lowered to one less.
    if let Some((h, pos)) = hysteresis {
        let q = quorum.unwrap_or(1);
        if h >= q {
            others(
                im,
                &pos,
                format!(
                    "hysteresis {h}: not below the quorum, {q}; keepalived lowers it to {}, and so does uvs",
                    q - 1
                ),
            );
        }
        health.hysteresis = Some(h.min(q - 1));
    }
    // The servers as the table holds them, with whether each was named at another port.
    let mut listed = HashMap::new();
    for r in reals {
        let Some((server, mut server_checks, inh, own)) =
            real_server(r, (forward, weight), &timers, key, im)
        else {
            continue;
        };
        if !family_fits(&server, family) {
            skip(
                im,
                &r.pos,
                format!(
                    "real_server {}: of another address family than the virtual server, which IPVS takes only with TUN; not taken",
                    server.key()
                ),
            );
            continue;
        }
        if never_unicast(server.addr) {
            skip(
                im,
                &r.pos,
                format!(
                    "real_server {}: not a unicast address, which IPVS refuses; not taken",
                    server.key()
                ),
            );
            continue;
        }
        // As the table holds it: uvs gives a DR or TUN real server the service's
        // port, as ipvsadm does (keepalived's libipvs calls keep the port named).
        let held = server.in_service(&key);
        let moved = held.port != server.port;
        if let Some(&earlier_moved) = listed.get(&held.key()) {
            let why = if moved || earlier_moved {
                " (a gate or ipip real server takes the service's port)"
            } else {
                ""
            };
            skip(
                im,
                &r.pos,
                format!("real_server {}: listed twice{why}; not taken", held.key()),
            );
            continue;
        }
        listed.insert(held.key(), moved);
        // Its check still goes where keepalived sends it: the port named, unless
        // connect_port says another.
        for c in &mut server_checks {
            if moved && server.port != 0 && c.port.is_none() && c.kind != Some(CheckKind::On) {
                c.port = Some(server.port);
            }
        }
        if own != ServerHealth::default() {
            health.servers.insert(server.key(), own);
        }
        servers.push(server);
        checks.push(server_checks);
        inhibits.push(inh);
    }
    let mut server_checks = HashMap::new();
    let mut server_more_checks = HashMap::new();
    if checks.iter().any(|c| !c.is_empty()) {
        let on = Check {
            kind: Some(CheckKind::On),
            ..Check::default()
        };
        // Each server's checks, first to last; `on` for one without any.
        let all: Vec<(Check, Vec<Check>)> = checks
            .into_iter()
            .map(|c| {
                let mut c = c.into_iter();
                (c.next().unwrap_or_else(|| on.clone()), c.collect())
            })
            .collect();
        if all.windows(2).all(|w| w[0] == w[1]) {
            (health.check, health.more_checks) = all[0].clone();
        } else {
            for (server, (check, more)) in servers.iter().zip(all) {
                server_checks.insert(server.key(), check);
                if !more.is_empty() {
                    server_more_checks.insert(server.key(), more);
                }
            }
        }
        let mut quiescent = inhibit;
        let set: Vec<&(bool, Pos)> = inhibits.iter().flatten().collect();
        if !set.is_empty() {
            if set.len() == inhibits.len() && set.windows(2).all(|w| w[0].0 == w[1].0) {
                quiescent = set[0].0;
            } else {
                // check_data.c: a real server's own inhibit_on_failure, else its
                // virtual server's.
                for (server, own) in servers.iter().zip(&inhibits) {
                    if let Some((q, _)) = own {
                        health.servers.entry(server.key()).or_default().quiescent = Some(*q);
                    }
                }
            }
        }
        health.quiescent = Some(quiescent);
    }
    if let Some(s) = sorry {
        match address(s.arg(1), s.arg(2)) {
            Some((addr, port)) => {
                let server = ServerConfig::new(addr, port, sorry_method.unwrap_or(forward));
                if never_unicast(server.addr) {
                    skip(
                        im,
                        &s.pos,
                        "sorry_server: not a unicast address, which IPVS refuses; not taken",
                    );
                } else if family_fits(&server, family) {
                    health.fallback = Some(server);
                    health.fallback_quiescent = sorry_inhibit.then_some(true);
                } else {
                    // As keepalived's vs_end_handler: the sorry server is skipped.
                    skip(
                        im,
                        &s.pos,
                        "sorry_server: of another address family than the virtual server, which IPVS takes only with TUN; not taken",
                    );
                }
            }
            None => skip(
                im,
                &s.pos,
                format!(
                    "sorry_server {}: not a numeric address and port; not taken",
                    s.words[1..].join(" ")
                ),
            ),
        }
    }
    // keepalived's quorum is 1 unless written (check_data.c `alloc_vs`): a sorry
    // server stands in, and the quorum commands run, when the live servers weigh 0,
    // weight 0 servers up included. uvs's rule without a quorum is "a server is up",
    // so the import writes keepalived's where it decides anything.
    if health.quorum.is_none()
        && (health.fallback.is_some() || health.quorum_up.is_some() || health.quorum_down.is_some())
    {
        health.quorum = Some(1);
    }
    Some(ServiceSpec {
        service: ServiceConfig {
            key,
            scheduler,
            flags: ServiceFlags(flags),
            timeout: persistence.unwrap_or(0),
            netmask,
            pe,
            options: ServiceOptions::default(),
        },
        servers,
        listen: Vec::new(),
        name: None,
        comment: None,
        health,
        server_checks,
        server_more_checks,
        group: None,
    })
}

/// Whether IPVS takes `server` into a service of `family`: the same family, or any
/// through a tunnel.
fn family_fits(server: &ServerConfig, family: Family) -> bool {
    Family::of(&server.addr) == family || server.forward == Forward::Tunnel
}

/// `inhibit_on_failure` with no value, or a true/false one.
fn yes(n: &Node, im: &mut Importing) -> bool {
    match n.arg(1).to_ascii_lowercase().as_str() {
        "" | "true" | "on" | "yes" => true,
        "false" | "off" | "no" => false,
        other => {
            skip(
                im,
                &n.pos,
                format!("{} {other}: true or false; taken as true", n.keyword()),
            );
            true
        }
    }
}

/// A real server, its checks (keepalived's several checkers, in order; none: keepalived
/// keeps it up), its own `inhibit_on_failure`, with where it is, and its `notify_up`
/// and `notify_down`.
type Real = (ServerConfig, Vec<Check>, Option<(bool, Pos)>, ServerHealth);

/// The real server of a `real_server` block, if uvs takes it: its virtual server's
/// forwarding method and weight unless it names its own.
fn real_server(
    n: &Node,
    (forward, weight): (Forward, i32),
    vs: &Timers,
    key: ServiceKey,
    im: &mut Importing,
) -> Option<Real> {
    let Some((addr, port)) = address(n.arg(1), n.arg(2)) else {
        skip(
            im,
            &n.pos,
            format!(
                "real_server {}: not a numeric address and port; not taken",
                n.words[1..].join(" ")
            ),
        );
        return None;
    };
    let mut server = ServerConfig::new(addr, port, forward);
    server.weight = weight;
    let mut timers = Timers::default();
    let mut inhibit = None;
    let mut notify = ServerHealth::default();
    let mut checkers = Vec::new();
    for c in n.children() {
        let (k, v) = (c.keyword(), c.arg(1));
        if timers.take(c, im) {
            continue;
        }
        match k {
            "weight" => match v.parse::<i32>() {
                Ok(w) if (0..=65535).contains(&w) => server.weight = w,
                _ => skip(
                    im,
                    &c.pos,
                    format!("weight {v}: not a weight from 0 to 65535; not taken"),
                ),
            },
            "lvs_method" => server.forward = method(c, im).unwrap_or(server.forward),
            "uthreshold" | "lthreshold" => match v.parse::<u32>() {
                Ok(t) if k == "uthreshold" => server.u_threshold = t,
                Ok(t) => server.l_threshold = t,
                Err(_) => skip(
                    im,
                    &c.pos,
                    format!("{k} {v}: not a number of connections; not taken"),
                ),
            },
            "inhibit_on_failure" => inhibit = Some((yes(c, im), c.pos.clone())),
            "notify_up" => notify.notify_up = command(c, im),
            "notify_down" => notify.notify_down = command(c, im),
            "smtp_alert" => not_yet(im, c),
            "snmp_name" => skip(im, &c.pos, "snmp_name: uvs has no SNMP; not taken"),
            "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "SMTP_CHECK" | "DNS_CHECK" | "MISC_CHECK"
            | "UDP_CHECK" | "FILE_CHECK" => checkers.push(c),
            "PING_CHECK" => skip(
                im,
                &c.pos,
                "PING_CHECK: uvs's checks speak TCP and UDP and send no ICMP echo; not taken",
            ),
            "BFD_CHECK" => skip(
                im,
                &c.pos,
                "BFD_CHECK: BFD sessions are keepalived's bfd process's; uvs has none; not taken",
            ),
            _ => skip(
                im,
                &c.pos,
                format!("{k}: not a real_server keyword uvs knows; not taken"),
            ),
        }
    }
    if server.l_threshold > server.u_threshold {
        skip(
            im,
            &n.pos,
            "lthreshold above uthreshold: IPVS refuses it; the thresholds are not taken",
        );
        (server.l_threshold, server.u_threshold) = (0, 0);
    }
    // keepalived runs every checker of a real server, and so does uvs (up to its
    // bound on checks of one server).
    for c in checkers.iter().skip(MAX_CHECKS) {
        skip(
            im,
            &c.pos,
            format!(
                "{}: a real server's check past the {MAX_CHECKS} uvs runs; not taken",
                c.keyword()
            ),
        );
    }
    one_alpha(&timers, vs, "real server", im);
    let timers = timers.or(vs);
    let checks = checkers
        .iter()
        .take(MAX_CHECKS)
        .filter_map(|c| checker(c, &server, &timers, key, im))
        .collect();
    Some((server, checks, inhibit, notify))
}

/// A real server's or a check's own `alpha` (`own`) other than its virtual server's
/// (in `outer`): uvs's `alpha` is a service's, so it is reported as not taken.
fn one_alpha(own: &Timers, outer: &Timers, what: &str, im: &mut Importing) {
    let outer = outer.alpha.as_ref().is_some_and(|(a, _)| *a);
    if let Some((a, pos)) = &own.alpha
        && *a != outer
    {
        skip(
            im,
            pos,
            format!("alpha of one {what}: uvs's alpha is its virtual server's; not taken"),
        );
    }
}

/// A `notify_up`, `notify_down`, `quorum_up` or `quorum_down` command: its first word
/// as keepalived's core/notify.c `notify_script_init` takes it (quoted, it holds the
/// arguments), then the user and group it runs as (`set_script_uid_gid`); keepalived
/// ignores a command whose user or group it cannot find, and so does uvs.
fn command(n: &Node, im: &mut Importing) -> Option<NotifyCommand> {
    let k = n.keyword();
    if let Err(e) = crate::config::words(n.arg(1)) {
        skip(im, &n.pos, format!("{k}: not a command: {e}; not taken"));
        return None;
    }
    let user = n.words.get(2).cloned();
    let group = n.words.get(3).cloned();
    if n.words.len() > 4 {
        skip(
            im,
            &n.pos,
            format!(
                "{k}: words after the user and group ({}): keepalived ignores them, and so does uvs",
                n.words[4..].join(" ")
            ),
        );
    }
    if let Some(u) = &user
        && let Err(e) = crate::config::words::run_as(u, group.as_deref())
    {
        skip(
            im,
            &n.pos,
            format!("{k}: {e}; keepalived ignores the command, and so does uvs; not taken"),
        );
        return None;
    }
    Some(NotifyCommand {
        line: n.arg(1).to_string(),
        user,
        group,
    })
}

/// One of keepalived's checkers as a uvs check, or None if uvs has no counterpart.
fn checker(
    n: &Node,
    server: &ServerConfig,
    rs: &Timers,
    key: ServiceKey,
    im: &mut Importing,
) -> Option<Check> {
    let mut check = Check::default();
    // keepalived's default retries: check_api.c's 1, check_dns.c's 3, check_misc.c's 0.
    let (kind, service, default_retry) = match n.keyword() {
        "TCP_CHECK" => (CheckKind::Connect, None, 1),
        "HTTP_GET" => (CheckKind::Negotiate, Some(NegotiateService::Http), 1),
        "SSL_GET" => (CheckKind::Negotiate, Some(NegotiateService::Https), 1),
        "SMTP_CHECK" => (CheckKind::Negotiate, Some(NegotiateService::Smtp), 1),
        "DNS_CHECK" => (CheckKind::Negotiate, Some(NegotiateService::Dns), 3),
        "MISC_CHECK" => (CheckKind::External, None, 0),
        // check_file.c: no retries, no alpha; the file's state is taken at once.
        "FILE_CHECK" => (CheckKind::File, None, 0),
        _ => {
            // UDP_CHECK
            if !matches!(
                key,
                ServiceKey::Inet {
                    protocol: Protocol::Udp,
                    ..
                }
            ) {
                skip(
                    im,
                    &n.pos,
                    "UDP_CHECK of a service that is not UDP: uvs's connect check speaks the service's protocol; not taken",
                );
                return None;
            }
            (CheckKind::Connect, None, 1)
        }
    };
    check.kind = Some(kind);
    check.service = service;
    let mut own = Timers::default();
    let mut misc_timeout = None;
    let mut urls: Vec<Url> = Vec::new();
    // Whether the check names where it connects, and SMTP_CHECK's host blocks.
    let mut connection = false;
    let mut hosts: Vec<std::net::SocketAddr> = Vec::new();
    let mut file: Option<(TrackFile, Pos)> = None;
    let mut file_weight: Option<(i32, bool)> = None;
    let mut require_reply = false;
    for c in n.children() {
        let (k, v) = (c.keyword(), c.arg(1));
        if own.take(c, im) {
            continue;
        }
        match (n.keyword(), k) {
            (_, "connect_port") => match v.parse::<u16>() {
                Ok(p) if p > 0 => {
                    connection = true;
                    check.port = Some(p);
                }
                _ => skip(
                    im,
                    &c.pos,
                    format!("connect_port {v}: not a port; not taken"),
                ),
            },
            (_, "connect_ip") => match v.parse::<IpAddr>() {
                Ok(ip) => {
                    connection = true;
                    check.address = (ip != server.addr).then_some(ip);
                }
                Err(_) => skip(
                    im,
                    &c.pos,
                    format!("connect_ip {v}: not an address; not taken"),
                ),
            },
            (_, "bindto") => match v.parse::<IpAddr>() {
                Ok(ip) => {
                    connection = true;
                    check.source = Some(ip);
                }
                Err(_) => skip(im, &c.pos, format!("bindto {v}: not an address; not taken")),
            },
            (_, "bind_port") => match v.parse::<u16>() {
                Ok(p) if p > 0 => {
                    connection = true;
                    check.source_port = Some(p);
                }
                _ => skip(im, &c.pos, format!("bind_port {v}: not a port; not taken")),
            },
            (_, "bind_if") => skip(
                im,
                &c.pos,
                "bind_if: uvs's checks do not choose their interface; not taken",
            ),
            (_, "fwmark") => skip(
                im,
                &c.pos,
                "fwmark: uvs's checks do not mark their packets; not taken",
            ),
            (_, "log_all_failures") => skip(
                im,
                &c.pos,
                "log_all_failures: uvs logs each change of a server's health; not taken",
            ),
            // Every url is checked, and all must pass (check_http.c's epilog).
            ("HTTP_GET" | "SSL_GET", "url") => urls.push(url(c, im)),
            ("HTTP_GET" | "SSL_GET", "http_protocol") if v == "1.0" => {}
            ("HTTP_GET" | "SSL_GET", "http_protocol" | "fast_recovery") => {
                skip(
                    im,
                    &c.pos,
                    format!("{k}: uvs's http check speaks HTTP/1.0 without it; not taken"),
                );
            }
            ("HTTP_GET" | "SSL_GET", "enable_sni" | "sni_name" | "tls_compliant") => skip(
                im,
                &c.pos,
                format!(
                    "{k}: uvs's https check names the virtualhost in SNI when it is a host name, and the server's address otherwise; not taken"
                ),
            ),
            ("SMTP_CHECK", "helo_name") if crate::config::helo_sendable(v) => {
                check.helo = Some(v.to_string())
            }
            ("SMTP_CHECK", "helo_name") if !v.is_empty() => skip(
                im,
                &c.pos,
                format!(
                    "helo_name {v:?}: a name with white space, which uvs does not send in HELO; not taken"
                ),
            ),
            ("SMTP_CHECK", "host") => {
                if let Some(host) = smtp_host(c, server, im) {
                    hosts.push(host);
                }
            }
            ("DNS_CHECK", "type") => match DnsType::from_name(v) {
                Some(DnsType::A) => {}
                Some(t) => check.query_type = Some(t),
                None => skip(
                    im,
                    &c.pos,
                    format!(
                        "type {v}: not a DNS type keepalived knows ({}); not taken",
                        DnsType::NAMES.join(", ")
                    ),
                ),
            },
            ("FILE_CHECK", "track_file") => match im.track_files.get(v) {
                Some(tf) => file = Some((tf.clone(), c.pos.clone())),
                None => skip(
                    im,
                    &c.pos,
                    format!("track_file {v}: no track_file of that name before it; not taken"),
                ),
            },
            // check_file.c's track_file_weight_handler.
            ("FILE_CHECK", "weight") => {
                match (v.parse::<i32>(), c.words.get(2).map(String::as_str)) {
                    (Ok(w), None | Some("reverse" | "noreverse")) if w != i32::MIN => {
                        file_weight = Some((w, c.words.get(2).is_some_and(|r| r == "reverse")));
                    }
                    _ => skip(
                        im,
                        &c.pos,
                        format!(
                            "weight {}: a weight from -2147483647 to 2147483647, then reverse, noreverse or nothing; not taken",
                            c.words[1..].join(" ")
                        ),
                    ),
                }
            }
            // check_dns.c `dns_name_handler` ignores a name with an empty label (the
            // check asks for "."); one uvs cannot write in a query is reported too.
            ("DNS_CHECK", "name") => match crate::config::dns_name_fault(v) {
                None => check.request = Some(v.to_string()),
                Some(fault) => skip(im, &c.pos, format!("name: {fault}; not taken")),
            },
            ("MISC_CHECK", "misc_path") => misc_path(c, &mut check, im),
            ("MISC_CHECK", "misc_timeout") => {
                misc_timeout = within(c, TIMEOUT_MAX, im).or(misc_timeout)
            }
            ("MISC_CHECK", "misc_dynamic") => check.dynamic_weight = Some(true),
            // check_misc.c `misc_user_handler`: a user, then maybe a group.
            // keepalived refuses names its system does not know; so does `uvs check`.
            ("MISC_CHECK", "user") if !v.is_empty() && c.words.len() <= 3 => {
                let group = c.words.get(2).cloned();
                match crate::config::words::run_as(v, group.as_deref()) {
                    Ok(_) => {
                        check.user = Some(v.to_string());
                        check.group = group;
                    }
                    Err(e) => skip(im, &c.pos, format!("user: {e}; not taken")),
                }
            }
            ("MISC_CHECK", "user") => skip(im, &c.pos, "user: a user and maybe a group; not taken"),
            ("UDP_CHECK", "payload") => {
                match hex(&c.words[1..]).and_then(|b| String::from_utf8(b).ok()) {
                    Some(p) => check.request = Some(p),
                    None => skip(
                        im,
                        &c.pos,
                        "payload: uvs sends a check's request as text, and this is not hex of UTF-8 text; not taken",
                    ),
                }
            }
            ("UDP_CHECK", "require_reply") => {
                require_reply = true;
                if c.words.len() > 1 {
                    // check_udp.c compares the reply with it, X digits matching any.
                    skip(
                        im,
                        &c.pos,
                        "require_reply with the reply's bytes: uvs's check wants an answer but does not compare it with them; an answer is required, the bytes are not taken",
                    );
                }
            }
            (_, _) => skip(
                im,
                &c.pos,
                format!("{k}: not a {} keyword uvs knows; not taken", n.keyword()),
            ),
        }
    }
    if matches!(n.keyword(), "HTTP_GET" | "SSL_GET") && urls.is_empty() {
        // check_http.c: "HTTP/SSL_GET checker has no urls specified - ignoring".
        others(
            im,
            &n.pos,
            format!(
                "{}: no url; keepalived ignores the check, and so does uvs",
                n.keyword()
            ),
        );
        return None;
    }
    if n.keyword() == "UDP_CHECK" && !require_reply {
        skip(
            im,
            &n.pos,
            "UDP_CHECK without require_reply: keepalived takes silence as up, uvs's check needs an answer; not taken as such",
        );
    }
    if n.keyword() == "FILE_CHECK" {
        return file_check(n, check, file, file_weight, im);
    }
    if n.keyword() == "SMTP_CHECK" {
        smtp_check(
            &mut check,
            server,
            hosts,
            connection || own.connect_timeout.is_some(),
        );
    }
    if n.keyword() == "DNS_CHECK" {
        // check_dns.c's dns_recv_thread: any NOERROR answer is up, records or not;
        // dns_connect_thread asks over UDP, whatever the service's protocol.
        check.require_answer = Some(false);
        check.transport = Some(Protocol::Udp);
    }
    match urls.len() {
        0 => {}
        // One URL is the check's own settings, as before several were taken.
        1 => {
            let u = urls.remove(0);
            check.request = (!u.path.is_empty()).then_some(u.path);
            check.status = u.status;
            check.receive = u.receive;
            check.digest = u.digest;
            check.virtualhost = u.virtualhost;
        }
        _ => {
            for u in &mut urls {
                if u.path.is_empty() {
                    u.path = "/".into();
                }
            }
            check.urls = Some(urls);
        }
    }
    let t = own.or(rs);
    check.interval = Some(t.delay_loop.unwrap_or(DELAY_LOOP));
    check.timeout = Some(misc_timeout.unwrap_or_else(|| {
        if kind == CheckKind::External {
            // keepalived's misc_timeout defaults to the delay loop.
            t.delay_loop.unwrap_or(DELAY_LOOP).min(TIMEOUT_MAX)
        } else {
            t.connect_timeout.unwrap_or(CONNECT_TIMEOUT)
        }
    }));
    check.failures = Some(t.retry.unwrap_or(default_retry) + 1);
    // "For non alpha mode, one failure is enough initially" (check_data.c
    // `validate_check_config`: retry_it = retry): until its first good check, a failure
    // takes the server down. With alpha it starts down: nothing to write.
    if check.failures > Some(1) && !t.alpha.as_ref().is_some_and(|(a, _)| *a) {
        check.failures_at_start = Some(1);
    }
    // Written out, as keepalived resolves them (check_data.c `validate_check_config`):
    // warmup defaults to the checker's delay loop, delay_before_retry to the kind's
    // default_delay_before_retry (check_api.c `queue_checker`'s 1 s, check_http.c's 3 s, check_dns.c's
    // 0, which means the delay loop).
    let interval = t.delay_loop.unwrap_or(DELAY_LOOP);
    check.warmup = Some(t.warmup.unwrap_or(interval));
    check.retry_delay = Some(t.delay_before_retry.unwrap_or(match n.keyword() {
        "HTTP_GET" | "SSL_GET" => HTTP_DELAY_BEFORE_RETRY,
        "DNS_CHECK" => interval,
        _ => DELAY_BEFORE_RETRY,
    }));
    one_alpha(&own, rs, "check", im);
    if matches!(
        service,
        Some(NegotiateService::Http | NegotiateService::Https)
    ) {
        check.virtualhost = check.virtualhost.take().or(t.virtualhost);
    }
    Some(check)
}

/// MISC_CHECK's `misc_path` (check_misc.c `misc_path_handler`, core/notify.c
/// `set_script_params_array`): its first word, split again with keepalived's quoting
/// ([`crate::config::words`]), is the program and its arguments, run with nothing after
/// them; the line's further words are not run. Written as the words themselves, with
/// `target_arguments = false`, so that uvs runs exactly those.
fn misc_path(n: &Node, check: &mut Check, im: &mut Importing) {
    if n.words.len() > 2 {
        others(
            im,
            &n.pos,
            format!(
                "misc_path: keepalived runs its first word only (a command with arguments is quoted whole); {} not run, by keepalived or uvs",
                n.words[2..].join(" ")
            ),
        );
    }
    match crate::config::words(n.arg(1)) {
        Ok(words) => {
            check.command = Some(CheckCommand::Words(words));
            check.target_arguments = Some(false);
        }
        Err(e) => skip(
            im,
            &n.pos,
            format!("misc_path: not a command: {e}; not taken"),
        ),
    }
}

/// SMTP_CHECK's HELO and hosts (check_smtp.c's `smtp_check_end_handler`): HELO with
/// keepalived's name without `helo_name`; each `host` is a checker of its own, all of
/// which must be up, and the check's own address is one of them when it names where
/// it connects (`connection`) or there are no hosts.
fn smtp_check(
    check: &mut Check,
    server: &ServerConfig,
    hosts: Vec<std::net::SocketAddr>,
    connection: bool,
) {
    check.helo = check
        .helo
        .take()
        .or_else(|| Some(SMTP_DEFAULT_HELO.to_string()));
    if hosts.is_empty() {
        return;
    }
    let mut all = Vec::new();
    if connection {
        let own = std::net::SocketAddr::new(
            check.address.unwrap_or(server.addr),
            check.port.unwrap_or(server.port),
        );
        all.push(own);
    }
    all.extend(hosts);
    check.hosts = Some(all);
}

/// An SMTP_CHECK `host` block: its `connect_ip` and `connect_port` (the real server's
/// without them); what else it says is not taken.
fn smtp_host(n: &Node, server: &ServerConfig, im: &mut Importing) -> Option<std::net::SocketAddr> {
    let mut addr = server.addr;
    let mut port = server.port;
    let mut ok = true;
    for c in n.children() {
        let (k, v) = (c.keyword(), c.arg(1));
        match (k, v.parse::<IpAddr>(), v.parse::<u16>()) {
            ("connect_ip", Ok(ip), _) => addr = ip,
            ("connect_port", _, Ok(p)) if p > 0 => port = p,
            _ => {
                ok = false;
                skip(
                    im,
                    &c.pos,
                    format!(
                        "host {k} {v}: uvs takes a host's connect_ip and connect_port; not taken"
                    ),
                );
            }
        }
    }
    (ok && port != 0).then(|| std::net::SocketAddr::new(addr, port))
}

/// A FILE_CHECK (check_file.c): the named track_file's file, with the FILE_CHECK's own
/// weight or else the track_file's (`file_end_handler`); read every second (keepalived
/// watches it with inotify) and taken at once, with no retries.
fn file_check(
    n: &Node,
    mut check: Check,
    file: Option<(TrackFile, Pos)>,
    weight: Option<(i32, bool)>,
    im: &mut Importing,
) -> Option<Check> {
    let Some((tf, pos)) = file else {
        others(
            im,
            &n.pos,
            "FILE_CHECK: no track_file; keepalived ignores the check, and so does uvs",
        );
        return None;
    };
    let Some(path) = tf.file else {
        skip(im, &pos, "track_file: it names no file; not taken");
        return None;
    };
    let (w, reverse) = weight.unwrap_or((tf.weight, tf.reverse));
    check.path = Some(path);
    check.file_weight = Some(w);
    check.reverse = reverse.then_some(true);
    check.interval = Some(Duration::from_secs(1));
    check.timeout = Some(Duration::from_secs(1));
    check.failures = Some(1);
    check.rise = Some(1);
    Some(check)
}

/// An HTTP_GET `url` block: `path`, `status_code`, `regex`, `virtualhost`, `digest`
/// (a path of "" when it has none).
fn url(n: &Node, im: &mut Importing) -> Url {
    let mut url = Url::default();
    let mut ranges: Vec<(u16, u16)> = Vec::new();
    for c in n.children() {
        let (k, v) = (c.keyword(), c.arg(1));
        match k {
            "path" => url.path = v.to_string(),
            "virtualhost" => url.virtualhost = Some(v.to_string()),
            "status_code" => {
                for w in &c.words[1..] {
                    let (low, high) = w.split_once('-').unwrap_or((w, w));
                    match (low.parse::<u16>(), high.parse::<u16>()) {
                        (Ok(l), Ok(h)) if (100..=599).contains(&l) && (l..=599).contains(&h) => {
                            ranges.push((l, h))
                        }
                        _ => skip(
                            im,
                            &c.pos,
                            format!(
                                "status_code {w}: not a status from 100 to 599, or a range of them; not taken"
                            ),
                        ),
                    }
                }
            }
            "regex" => match regex::Regex::new(v) {
                Ok(_) => url.receive = Some(v.to_string()),
                Err(e) => skip(
                    im,
                    &c.pos,
                    format!("regex: not a regular expression uvs reads: {e}"),
                ),
            },
            // check_http.c's digest_handler: 32 hex digits, either case.
            "digest" if v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
                url.digest = Some(v.to_ascii_lowercase())
            }
            "digest" => skip(
                im,
                &c.pos,
                format!("digest {v}: not an MD5 digest, 32 hex digits; not taken"),
            ),
            "regex_no_match" | "regex_options" | "regex_min_offset" | "regex_max_offset"
            | "regex_stack" => not_yet(im, c),
            _ => skip(
                im,
                &c.pos,
                format!("{k}: not a url keyword uvs knows; not taken"),
            ),
        }
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u16, u16)> = Vec::new();
    for (l, h) in ranges {
        match merged.last_mut() {
            Some(last) if l <= last.1.saturating_add(1) => last.1 = last.1.max(h),
            _ => merged.push((l, h)),
        }
    }
    if !merged.is_empty() {
        url.status = Some(merged);
    }
    url
}

/// keepalived's hex string (lib/parser.c `read_hex_str`), its words joined by spaces:
/// blanks skipped, then a byte of two hex digits, or of one where a blank or the end
/// follows it ("Ab12f 3" is AB 12 0F 03). None for anything else, or for no byte at all.
fn hex(words: &[String]) -> Option<Vec<u8>> {
    let text = words.join(" ");
    let mut digits = text.chars().peekable();
    let mut bytes = Vec::new();
    while let Some(c) = digits.next() {
        if c == ' ' || c == '\t' {
            continue;
        }
        let high = c.to_digit(16)?;
        let byte = match digits.peek() {
            Some(&next) if next != ' ' => {
                digits.next();
                high << 4 | next.to_digit(16)?
            }
            _ => high,
        };
        bytes.push(u8::try_from(byte).ok()?);
    }
    (!bytes.is_empty()).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::render::render;

    /// A keepalived.conf with most of what the checker reads, and what uvs makes of it.
    const ALL: &str = r#"global_defs {
   router_id LB_A
}
vrrp_script chk { script "/bin/true" }
virtual_server 10.0.0.1 443 {
    delay_loop 5
    lvs_sched sh
    sh-port
    sh-fallback
    lvs_method DR
    persistence_timeout
    persistence_granularity 255.255.255.0
    protocol TCP
    virtualhost www.example.com
    inhibit_on_failure
    sorry_server 10.0.0.9 8080
    sorry_server_lvs_method NAT
    alpha
    quorum 2
    real_server 10.0.0.2 443 {
        weight 3
        uthreshold 100
        lthreshold 10
        SSL_GET {
            url {
                path /health
                status_code 200-204 205
                regex "^ok"
            }
            connect_timeout 2
            retry 2
        }
    }
    real_server 10.0.0.3 443 {
        lvs_method NAT
        notify_up /bin/up
        HTTP_GET {
            url {
                path /
                digest 9b3a0c85a887a256d6939da88aabd8cd
            }
            url { path /2 }
        }
        TCP_CHECK { }
    }
}
virtual_server fwmark 7 {
    ip_family inet6
    lb_algo wrr
    ops
    persistence_engine sip
    real_server 2001:db8::2 80 {
        MISC_CHECK {
            misc_path "/usr/local/bin/check --fast"
            misc_timeout 4
            misc_dynamic
            user nobody
        }
    }
}
virtual_server 10.0.0.1 53 {
    protocol UDP
    lb_algo rr
    lb_kind TUN
    real_server 10.0.0.5 53 {
        DNS_CHECK { type A name example.org. }
    }
    real_server 10.0.0.6 53 {
        DNS_CHECK { type AAAA name example.org. }
        PING_CHECK
    }
}
virtual_server 10.0.0.1 25 {
    protocol TCP
    real_server 10.0.0.7 25 { SMTP_CHECK { helo_name lb } }
}
virtual_server_group G { 10.0.0.1 80 }
virtual_server group G { real_server 10.0.0.2 80 }
virtual_server 10.0.0.1 132 { protocol SCTP real_server 10.0.0.2 132 }
virtual_server 10.0.0.1 81 { }
"#;

    #[test]
    fn virtual_servers_real_servers_and_checks_map_with_keepalived_defaults() {
        let imported = import(ALL, None).unwrap();
        let lines = imported.skipped_lines();
        assert_eq!(
            lines,
            [
                (
                    1,
                    "global_defs: keepalived's own settings; not uvs's job, not taken"
                ),
                (
                    4,
                    "vrrp_script chk: VRRP is keepalived's own job (it moves the VIP); not uvs's, not taken"
                ),
                (
                    70,
                    "PING_CHECK: uvs's checks speak TCP and UDP and send no ICMP echo; not taken"
                ),
                (
                    78,
                    "virtual_server group G: no protocol; keepalived makes it UDP, and so does uvs"
                ),
                (
                    79,
                    "protocol SCTP: uvs takes SCTP services into its table but does not serve them; the service is not taken"
                ),
                (
                    80,
                    "virtual_server 10.0.0.1 81: no real servers; keepalived leaves it out, and so does uvs"
                )
            ]
        );
        // global_defs, vrrp_script, the group's protocol, the service without servers.
        assert_eq!(imported.others_job, 4);
        assert_eq!(imported.failing(), 2);
        let text = render(&imported.config);
        assert_eq!(
            text,
            r#"[[service]]
tcp = "10.0.0.1:443"
scheduler = "sh"
flags = ["sh-fallback", "sh-port"]
persistent = "6m"
netmask = "255.255.255.0"
quiescent = true
fallback = { address = "10.0.0.9:8080" }
alpha = true
quorum = 2

[[service.server]]
address = "10.0.0.2:443"
weight = 3
forward = "gate"
upper_threshold = 100
lower_threshold = 10

[service.server.check]
type = "negotiate"
service = "https"
interval = "5s"
timeout = "2s"
failures = 3
request = "/health"
receive = "^ok"
virtualhost = "www.example.com"
status = "200-205"
warmup = "5s"
retry_delay = "3s"

[[service.server]]
address = "10.0.0.3:443"
notify_up = "/bin/up"

[[service.server.check]]
type = "negotiate"
service = "http"
interval = "5s"
timeout = "5s"
failures = 2
virtualhost = "www.example.com"
warmup = "5s"
retry_delay = "3s"
url = [{ path = "/", digest = "9b3a0c85a887a256d6939da88aabd8cd" }, { path = "/2" }]

[[service.server.check]]
type = "connect"
interval = "5s"
timeout = "5s"
failures = 2
warmup = "5s"
retry_delay = "1s"

[[service]]
fwmark = 7
ipv6 = true
scheduler = "wrr"
one_packet = true
pe = "sip"
quiescent = false

[service.check]
type = "external"
interval = "1m"
timeout = "4s"
failures = 1
command = ["/usr/local/bin/check", "--fast"]
target_arguments = false
dynamic_weight = true
warmup = "1m"
retry_delay = "1s"
user = "nobody"

[[service.server]]
address = "[2001:db8::2]:80"

[[service]]
udp = "10.0.0.1:53"
scheduler = "rr"
quiescent = false

[[service.server]]
address = "10.0.0.5:53"
forward = "ipip"

[service.server.check]
type = "negotiate"
service = "dns"
interval = "1m"
timeout = "5s"
failures = 4
warmup = "1m"
retry_delay = "1m"
failures_at_start = 1
require_answer = false
transport = "udp"

[[service.server]]
address = "10.0.0.6:53"
forward = "ipip"

[service.server.check]
type = "negotiate"
service = "dns"
interval = "1m"
timeout = "5s"
failures = 4
warmup = "1m"
retry_delay = "1m"
failures_at_start = 1
query_type = "AAAA"
require_answer = false
transport = "udp"

[[service]]
tcp = "10.0.0.1:25"
scheduler = "wlc"
quiescent = false

[service.check]
type = "negotiate"
service = "smtp"
interval = "1m"
timeout = "5s"
failures = 2
warmup = "1m"
retry_delay = "1s"
failures_at_start = 1
helo = "lb"

[[service.server]]
address = "10.0.0.7:25"

[[service]]
group = "G"
udp = ["10.0.0.1:80"]
scheduler = "wlc"

[[service.server]]
address = "10.0.0.2"
"#
        );
        crate::config::schema::parse(&text, Path::new("all.toml")).expect("passes the schema");
    }

    /// keepalived's own quirks: UDP without `protocol`, `ops` reset on TCP, a scheduler
    /// flag read before the scheduler, servers and sorry servers of the other family,
    /// a server's own `inhibit_on_failure`, a service listed twice.
    #[test]
    fn keepalived_states_map_to_the_services_and_servers_own() {
        let imported = import(
            r#"virtual_server 10.0.0.1 80 {
    protocol TCP
    omega
    quorum 3
    hysteresis 5
    quorum_up "/bin/up 'a b'"
    quorum_down /bin/down root
    delay_before_retry 2
    real_server 10.0.0.2 80 {
        alpha
        notify_down "/bin/x"
        TCP_CHECK { warmup 0 }
    }
    real_server 10.0.0.3 80 {
        TCP_CHECK {
            alpha
        }
    }
    real_server 10.0.0.4 80 {
        MISC_CHECK {
            misc_path /bin/true
            user no-such-user-uvs
        }
    }
}
"#,
            None,
        )
        .unwrap();
        assert_eq!(
            imported.skipped_lines(),
            [
                (
                    5,
                    "hysteresis 5: not below the quorum, 3; keepalived lowers it to 2, and so does uvs"
                ),
                (
                    10,
                    "alpha of one real server: uvs's alpha is its virtual server's; not taken"
                ),
                (
                    16,
                    "alpha of one check: uvs's alpha is its virtual server's; not taken"
                ),
                (
                    22,
                    "user: no user named no-such-user-uvs in the system's user database; not taken"
                ),
            ]
        );
        let spec = &imported.config.services[0];
        let h = &spec.health;
        assert_eq!(
            (h.omega, h.quorum, h.hysteresis, h.alpha),
            (Some(true), Some(3), Some(2), None)
        );
        assert_eq!(h.quorum_up.as_deref(), Some("/bin/up 'a b'"));
        // Run as root, as keepalived runs it.
        assert_eq!(
            h.quorum_down,
            Some(NotifyCommand {
                line: "/bin/down".into(),
                user: Some("root".into()),
                group: None,
            })
        );
        let first = spec.servers[0].key();
        assert_eq!(h.servers[&first].notify_down.as_deref(), Some("/bin/x"));
        let check = &spec.server_checks[&first];
        assert_eq!(
            (check.warmup, check.retry_delay),
            (Some(Duration::ZERO), Some(Duration::from_secs(2)))
        );
        crate::config::schema::parse(&render(&imported.config), Path::new("t.toml"))
            .expect("passes the schema");
    }

    #[test]
    fn keepalived_quirks_are_kept_and_what_ipvs_refuses_is_reported() {
        let imported = import(
            r#"virtual_server 10.0.0.1 53 {
    ops
    sh-port
    lb_algo sh
    real_server 10.0.0.2 53 {
        inhibit_on_failure
        TCP_CHECK { connect_port 5353 bindto 10.0.0.1 }
    }
    real_server 2001:db8::2 53 { }
    real_server 2001:db8::3 53 { lvs_method TUN }
}
virtual_server 10.0.0.1 80 {
    protocol TCP
    ops
    persistence_granularity 64
    sorry_server 2001:db8::9 80
    real_server 10.0.0.2 80 { uthreshold 5 lthreshold 10 }
}
virtual_server 10.0.0.1 80 {
    protocol TCP
    real_server 10.0.0.3 80
}
"#,
            None,
        )
        .unwrap();
        let lines = imported.skipped_lines();
        assert_eq!(
            lines,
            [
                (
                    1,
                    "virtual_server 10.0.0.1 53: no protocol; keepalived makes it UDP, and so does uvs"
                ),
                (
                    3,
                    "sh-port: only for the sh scheduler, and it is wlc here (keepalived ignores it too); not taken"
                ),
                (
                    9,
                    "real_server [2001:db8::2]:53: of another address family than the virtual server, which IPVS takes only with TUN; not taken"
                ),
                (
                    14,
                    "ops: one-packet scheduling needs UDP; keepalived resets it, and so does uvs"
                ),
                (
                    15,
                    "persistence_granularity 64: not a contiguous netmask of the service's family; not taken"
                ),
                (
                    16,
                    "sorry_server: of another address family than the virtual server, which IPVS takes only with TUN; not taken"
                ),
                (
                    19,
                    "virtual_server 10.0.0.1 80: listed twice; the second is not taken"
                )
            ]
        );
        assert_eq!(imported.failing(), 5);
        let text = render(&imported.config);
        assert_eq!(
            text,
            r#"[[service]]
udp = "10.0.0.1:53"
scheduler = "sh"
one_packet = true
quiescent = false

[[service.server]]
address = "10.0.0.2:53"
quiescent = true

[service.server.check]
type = "connect"
port = 5353
interval = "1m"
timeout = "5s"
failures = 2
warmup = "1m"
retry_delay = "1s"
failures_at_start = 1

[[service.server]]
address = "[2001:db8::3]:53"
forward = "ipip"

[service.server.check]
type = "on"

[[service]]
tcp = "10.0.0.1:80"
scheduler = "wlc"
persistent = "6m"

[[service.server]]
address = "10.0.0.2:80"
upper_threshold = 5
"#
        );
        crate::config::schema::parse(&text, Path::new("edge.toml")).expect("passes the schema");
    }

    #[test]
    fn an_http_check_without_url_is_left_out_as_keepalived_leaves_it() {
        let text = "virtual_server 192.0.2.1 80 {\nprotocol TCP\nreal_server 198.51.100.1 80 {\nHTTP_GET {\nconnect_timeout 2\n}\n}\n}\n";
        let imported = import(text, None).unwrap();
        assert_eq!(imported.skipped.len(), 1);
        assert_eq!(
            (
                imported.skipped[0].line,
                imported.skipped[0].message.as_str()
            ),
            (
                4,
                "HTTP_GET: no url; keepalived ignores the check, and so does uvs"
            )
        );
        assert_eq!(imported.failing(), 0);
        assert_eq!(imported.config.services[0].health, Health::default());
    }

    /// keepalived takes a v4-mapped VIP as the IPv6 address it is; a uvs file cannot
    /// hold one (uvs cannot listen on it): reported, not taken (review 6).
    #[test]
    fn a_v4_mapped_virtual_server_is_reported_with_the_ipv4_address_to_write() {
        let text = "\
virtual_server ::ffff:192.0.2.1 80 {
    protocol TCP
    real_server 198.51.100.1 80 {
    }
}
";
        let imported = import(text, None).unwrap();
        assert_eq!(
            imported.skipped_lines(),
            [(
                1,
                "virtual_server ::ffff:192.0.2.1 80: an IPv4-mapped IPv6 address cannot be \
                 listened on (uvs's IPv6 sockets are IPv6-only): write the IPv4 address, \
                 192.0.2.1:80; not taken"
            )]
        );
        assert!(imported.config.services.is_empty());
        // A group's member too.
        let text = "\
virtual_server_group g {
    ::ffff:192.0.2.1 80
}
virtual_server group g {
    protocol TCP
    real_server 198.51.100.1 80 {
    }
}
";
        let imported = import(text, None).unwrap();
        let lines = imported.skipped_lines();
        assert!(
            lines.contains(&(
                2,
                "virtual_server_group g: ::ffff:192.0.2.1 80: an IPv4-mapped IPv6 address cannot \
                 be listened on (uvs's IPv6 sockets are IPv6-only): write the IPv4 address, \
                 192.0.2.1:80; not taken"
            )),
            "{lines:?}"
        );
        let toml = crate::config::render::render(&imported.config);
        assert!(!toml.contains("ffff"), "{toml}");
    }

    #[test]
    fn a_dr_server_named_at_another_port_takes_the_vips_and_is_checked_at_its_own() {
        // uvs's table (as ipvsadm) gives DR servers the service's port: the second
        // server is then the first again (line 8); the first one's check still goes to
        // the port it named, the masq one's to its own port.
        let text = "\
virtual_server 192.0.2.1 80 {
    protocol TCP
    lb_kind DR
    real_server 198.51.100.1 8080 {
        TCP_CHECK { connect_timeout 2 }
    }
    real_server 198.51.100.1 80 {
        TCP_CHECK { connect_timeout 2 }
    }
    real_server 198.51.100.2 8081 {
        lvs_method NAT
        TCP_CHECK { connect_timeout 2 }
    }
}
";
        let imported = import(text, None).unwrap();
        let lines = imported.skipped_lines();
        assert_eq!(
            lines,
            [(
                7,
                "real_server 198.51.100.1:80: listed twice (a gate or ipip real server takes the service's port); not taken"
            )]
        );
        let spec = &imported.config.services[0];
        assert_eq!(spec.servers.len(), 2);
        let port_checked: Vec<Option<u16>> = spec
            .servers
            .iter()
            .map(|s| spec.server_checks.get(&s.key()).and_then(|c| c.port))
            .collect();
        assert_eq!(port_checked, [Some(8080), None]);
        let text = crate::config::render::render(&imported.config);
        crate::config::schema::parse(&text, Path::new("dr.toml")).expect("passes the schema");
    }

    #[test]
    fn what_ipvs_refuses_to_hold_is_reported_not_written() {
        let text = "\
virtual_server fwmark 0 {
  real_server 127.0.0.2 80 {
  }
}
virtual_server 127.0.0.1 80 {
  protocol TCP
  sorry_server 255.255.255.255 80
  real_server 224.0.0.1 80 {
  }
  real_server 0.0.0.0 80 {
  }
  real_server 127.0.0.3 80 {
  }
}
";
        let imported = import(text, None).unwrap();
        let lines = imported.skipped_lines();
        assert_eq!(
            lines,
            [
                (
                    1,
                    "virtual_server fwmark 0: IPVS takes firewall marks from 1; not taken"
                ),
                (
                    7,
                    "sorry_server: not a unicast address, which IPVS refuses; not taken"
                ),
                (
                    8,
                    "real_server 224.0.0.1:80: not a unicast address, which IPVS refuses; not taken"
                ),
                (
                    10,
                    "real_server 0.0.0.0:80: not a unicast address, which IPVS refuses; not taken"
                ),
            ]
        );
        assert_eq!(imported.failing(), 4);
        let text = crate::config::render::render(&imported.config);
        crate::config::schema::parse(&text, Path::new("refused.toml")).expect("passes the schema");
    }

    /// keepalived's check kinds and settings uvs has (issue 15): every url with its
    /// digest, several status ranges, DNS types, SMTP's HELO and hosts, FILE_CHECK with
    /// its track_file, and where checks connect from and to.
    #[test]
    fn a_dns_name_with_an_empty_label_is_reported_as_keepalived_ignores_it() {
        let text = "virtual_server 192.0.2.1 53 {\nprotocol UDP\nreal_server 198.51.100.1 53 {\nDNS_CHECK {\nname a..b\n}\n}\n}\n";
        let imported = import(text, None).unwrap();
        assert_eq!(
            imported.skipped_lines(),
            [(5, "name: the name \"a..b\" has an empty label; not taken")]
        );
        assert!(!render(&imported.config).contains("request"));
    }

    #[test]
    fn keepalived_s_quorum_of_1_is_written_where_it_decides_anything() {
        // A weight-0 server that is up weighs 0: below keepalived's quorum of 1, the
        // sorry server stands in (quorum::Rule::judge: a live weight of 0 is out);
        // uvs's rule without a quorum ("a server is up") would not bring it.
        let text = "virtual_server 192.0.2.1 80 {\nprotocol TCP\nsorry_server 198.51.100.9 80\nreal_server 198.51.100.1 80 {\nweight 0\n}\n}\nvirtual_server 192.0.2.1 81 {\nprotocol TCP\nreal_server 198.51.100.1 81 {\n}\n}\n";
        let imported = import(text, None).unwrap();
        let quorums: Vec<Option<u32>> = imported
            .config
            .services
            .iter()
            .map(|s| s.health.quorum)
            .collect();
        assert_eq!(quorums, [Some(1), None], "none where nothing hangs on it");
    }

    #[test]
    fn a_helo_name_with_white_space_is_reported_not_written() {
        // The fuzzer found it with an unclosed quote; a quoted name does it as well.
        let text = "virtual_server 192.0.2.1 25 {\nprotocol TCP\nreal_server 198.51.100.1 25 {\nSMTP_CHECK {\nhelo_name \"lb one\"\n}\n}\n}\n";
        let imported = import(text, None).unwrap();
        assert_eq!(
            imported.skipped_lines(),
            [(
                5,
                "helo_name \"lb one\": a name with white space, which uvs does not send in HELO; not taken"
            )]
        );
        let toml = render(&imported.config);
        assert!(
            toml.contains("helo = \"smtpchecker.keepalived.org\"\n"),
            "{toml}"
        );
    }

    #[test]
    fn hex_strings_are_read_as_keepalived_reads_them_across_words() {
        let words = |t: &str| t.split(' ').map(str::to_string).collect::<Vec<_>>();
        // keepalived.conf(5)'s own example.
        assert_eq!(
            hex(&words("Ab12f 3 456 546443123")),
            Some(vec![
                0xab, 0x12, 0x0f, 0x03, 0x45, 0x06, 0x54, 0x64, 0x43, 0x12, 0x03
            ])
        );
        assert_eq!(hex(&words("4f 50 54")), Some(b"OPT".to_vec()));
        for bad in ["", "4g", "XX", "0x41"] {
            assert_eq!(hex(&words(bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn a_udp_payload_is_every_word_and_a_reply_to_compare_is_reported() {
        let text = "virtual_server 192.0.2.1 5060 {\nprotocol UDP\nreal_server 198.51.100.1 5060 {\nUDP_CHECK {\npayload 4f 50 54 49 4f 4e 53\nrequire_reply 53 49 50\n}\n}\n}\n";
        let imported = import(text, None).unwrap();
        assert_eq!(
            render(&imported.config)
                .lines()
                .find(|l| l.starts_with("request = ")),
            Some("request = \"OPTIONS\"")
        );
        assert_eq!(
            imported.skipped_lines(),
            [(
                6,
                "require_reply with the reply's bytes: uvs's check wants an answer but does not compare it with them; an answer is required, the bytes are not taken"
            )]
        );
    }

    #[test]
    fn check_kinds_and_settings_map_as_keepalived_runs_them() {
        let text = r#"track_file weights {
    file /run/uvs/weight
    weight -10 reverse
    init_file
}
virtual_server 10.0.0.1 80 {
    protocol TCP
    real_server 10.0.0.2 80 {
        HTTP_GET {
            url {
                path /a
                digest 9B3A0C85A887A256D6939DA88AABD8CD
                status_code 200 301-302
            }
            url {
                path /b
                regex "^ok"
            }
            bindto 10.0.0.100
            bind_port 4000
            connect_ip 10.0.0.20
        }
    }
    real_server 10.0.0.3 80 {
        FILE_CHECK {
            track_file weights
        }
    }
    real_server 10.0.0.4 80 {
        FILE_CHECK {
            weight 0
            track_file weights
        }
    }
    real_server 10.0.0.5 80 {
        FILE_CHECK {
            track_file nosuch
        }
    }
}
virtual_server 10.0.0.1 25 {
    protocol TCP
    real_server 10.0.0.7 25 {
        SMTP_CHECK {
            host {
                connect_ip 10.0.0.8
            }
            host {
                connect_ip 10.0.0.9
                connect_port 2525
            }
        }
    }
    real_server 10.0.0.8 25 {
        SMTP_CHECK {
            helo_name lb.example.com
            connect_port 587
            host {
                connect_ip 10.0.0.9
                bindto 10.0.0.100
            }
        }
    }
}
virtual_server 10.0.0.1 53 {
    protocol UDP
    real_server 10.0.0.5 53 {
        DNS_CHECK {
            type mx
            name example.org
        }
    }
    real_server 10.0.0.6 53 {
        DNS_CHECK {
            type PTR
        }
    }
}
"#;
        let imported = import(text, None).unwrap();
        assert_eq!(
            imported.skipped_lines(),
            [
                (
                    1,
                    "track_file weights: read by the FILE_CHECKs that name it; tracking by VRRP is keepalived's own job"
                ),
                (
                    4,
                    "init_file: uvs does not write the file; a missing file reads as 0, as keepalived's would"
                ),
                (
                    36,
                    "FILE_CHECK: no track_file; keepalived ignores the check, and so does uvs"
                ),
                (
                    37,
                    "track_file nosuch: no track_file of that name before it; not taken"
                ),
                (
                    60,
                    "host bindto 10.0.0.100: uvs takes a host's connect_ip and connect_port; not taken"
                ),
                (
                    75,
                    "type PTR: not a DNS type keepalived knows (A, NS, CNAME, SOA, MX, TXT, AAAA, RRSIG, DNSKEY); not taken"
                ),
            ]
        );
        assert_eq!(imported.failing(), 3);
        let text = render(&imported.config);
        assert_eq!(
            text,
            r#"[[service]]
tcp = "10.0.0.1:80"
scheduler = "wlc"
quiescent = false

[[service.server]]
address = "10.0.0.2:80"

[service.server.check]
type = "negotiate"
service = "http"
interval = "1m"
timeout = "5s"
failures = 2
warmup = "1m"
retry_delay = "3s"
failures_at_start = 1
url = [{ path = "/a", status = [200, "301-302"], digest = "9b3a0c85a887a256d6939da88aabd8cd" }, { path = "/b", receive = "^ok" }]
source = "10.0.0.100"
source_port = 4000
address = "10.0.0.20"

[[service.server]]
address = "10.0.0.3:80"

[service.server.check]
type = "file"
interval = "1s"
timeout = "1s"
failures = 1
rise = 1
path = "/run/uvs/weight"
weight = -10
reverse = true

[[service.server]]
address = "10.0.0.4:80"

[service.server.check]
type = "file"
interval = "1s"
timeout = "1s"
failures = 1
rise = 1
path = "/run/uvs/weight"
weight = 0

[[service.server]]
address = "10.0.0.5:80"

[service.server.check]
type = "on"

[[service]]
tcp = "10.0.0.1:25"
scheduler = "wlc"
quiescent = false

[[service.server]]
address = "10.0.0.7:25"

[service.server.check]
type = "negotiate"
service = "smtp"
interval = "1m"
timeout = "5s"
failures = 2
warmup = "1m"
retry_delay = "1s"
failures_at_start = 1
helo = "smtpchecker.keepalived.org"
hosts = ["10.0.0.8:25", "10.0.0.9:2525"]

[[service.server]]
address = "10.0.0.8:25"

[service.server.check]
type = "negotiate"
service = "smtp"
port = 587
interval = "1m"
timeout = "5s"
failures = 2
warmup = "1m"
retry_delay = "1s"
failures_at_start = 1
helo = "lb.example.com"

[[service]]
udp = "10.0.0.1:53"
scheduler = "wlc"
quiescent = false

[[service.server]]
address = "10.0.0.5:53"

[service.server.check]
type = "negotiate"
service = "dns"
interval = "1m"
timeout = "5s"
failures = 4
request = "example.org"
warmup = "1m"
retry_delay = "1m"
failures_at_start = 1
query_type = "MX"
require_answer = false
transport = "udp"

[[service.server]]
address = "10.0.0.6:53"

[service.server.check]
type = "negotiate"
service = "dns"
interval = "1m"
timeout = "5s"
failures = 4
warmup = "1m"
retry_delay = "1m"
failures_at_start = 1
require_answer = false
transport = "udp"
"#
        );
        crate::config::schema::parse(&text, Path::new("kinds.toml")).expect("passes the schema");
    }

    #[test]
    fn one_urls_digest_is_the_checks_and_a_bad_one_is_reported() {
        let text = "virtual_server 192.0.2.1 80 {\nprotocol TCP\nreal_server 198.51.100.1 80 {\nHTTP_GET {\nurl {\npath /\ndigest 9B3A0C85A887A256D6939DA88AABD8CD\nstatus_code 200\n}\nbindto here\n}\n}\nreal_server 198.51.100.2 80 {\nHTTP_GET {\nurl {\ndigest 9b3a\n}\n}\n}\n}\n";
        let imported = import(text, None).unwrap();
        assert_eq!(
            imported.skipped_lines(),
            [
                (10, "bindto here: not an address; not taken"),
                (
                    16,
                    "digest 9b3a: not an MD5 digest, 32 hex digits; not taken"
                ),
            ]
        );
        let servers: Vec<&Check> = imported.config.services[0].server_checks.values().collect();
        let digests: Vec<_> = servers.iter().map(|c| c.digest.as_deref()).collect();
        assert!(
            digests.contains(&Some("9b3a0c85a887a256d6939da88aabd8cd")),
            "{digests:?}"
        );
        assert!(
            servers
                .iter()
                .any(|c| c.status == Some(vec![(200, 200)]) && c.request.as_deref() == Some("/")),
            "{servers:?}"
        );
    }

    /// A quoted misc_path is split as keepalived splits it (a path with a space is one
    /// word), and written as exactly those words, with nothing after them.
    #[test]
    fn a_misc_path_is_written_as_the_words_keepalived_runs() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("my check.sh");
        let conf = format!(
            "virtual_server 127.0.0.1 80 {{\nprotocol TCP\nreal_server 127.0.0.2 80 {{\nMISC_CHECK {{\nmisc_path \"/bin/sh '{}' 'a b' c\" ignored\n}}\n}}\n}}\n",
            script.display()
        );
        let imported = import(&conf, None).unwrap();
        assert_eq!(
            imported.skipped_lines(),
            [(
                5,
                "misc_path: keepalived runs its first word only (a command with arguments is quoted whole); ignored not run, by keepalived or uvs"
            )]
        );
        assert_eq!(imported.failing(), 0);
        let check = &imported.config.services[0].health.check;
        let words = vec![
            "/bin/sh".to_string(),
            script.display().to_string(),
            "a b".into(),
            "c".into(),
        ];
        assert_eq!(check.command, Some(CheckCommand::Words(words)));
        let text = render(&imported.config);
        assert!(
            text.contains(&format!(
                "command = [\"/bin/sh\", \"{}\", \"a b\", \"c\"]\ntarget_arguments = false\n",
                script.display()
            )),
            "{text}"
        );
        // tests/import_keepalived.rs runs it.
    }

    /// DNS_CHECK speaks UDP (check_dns.c), also for a TCP service.
    #[test]
    fn a_dns_check_of_a_tcp_service_asks_over_udp() {
        let imported = import(
            "virtual_server 192.0.2.1 53 {\nprotocol TCP\nreal_server 198.51.100.1 53 {\nDNS_CHECK { name example.org }\n}\n}\n",
            None,
        )
        .unwrap();
        assert_eq!(imported.failing(), 0);
        let text = render(&imported.config);
        assert!(
            text.contains("\nrequire_answer = false\ntransport = \"udp\"\n"),
            "{text}"
        );
        crate::config::schema::parse(&text, Path::new("t.toml")).expect("passes the schema");
    }

    /// A virtual server's `weight` is its real servers' that name none; the sorry
    /// server keeps 1 (check_data.c `alloc_ssvr`).
    #[test]
    fn a_virtual_servers_weight_is_written_on_each_server_without_its_own() {
        let imported = import(
            "virtual_server 192.0.2.1 80 {\nprotocol TCP\nweight 7\nsorry_server 198.51.100.9 80\nreal_server 198.51.100.1 80 { }\nreal_server 198.51.100.2 80 { weight 0 }\n}\nvirtual_server 192.0.2.1 81 {\nprotocol TCP\nweight 0\nreal_server 198.51.100.1 81 { }\n}\n",
            None,
        )
        .unwrap();
        assert_eq!(
            imported.skipped_lines(),
            [(10, "weight 0: not a weight from 1 to 65535; not taken")]
        );
        let weights: Vec<Vec<i32>> = imported
            .config
            .services
            .iter()
            .map(|s| s.servers.iter().map(|r| r.weight).collect())
            .collect();
        assert_eq!(weights, [vec![7, 0], vec![1]]);
        let fallback = imported.config.services[0]
            .health
            .fallback
            .as_ref()
            .unwrap();
        assert_eq!(fallback.weight, 1);
    }

    /// `sorry_server_inhibit` after a sorry server makes it quiescent; before one,
    /// keepalived ignores it (check_parser.c `ssvri_handler`).
    #[test]
    fn sorry_server_inhibit_makes_the_fallback_quiescent_after_a_sorry_server() {
        let imported = import(
            "virtual_server 192.0.2.1 80 {\nprotocol TCP\nsorry_server 198.51.100.9 80\nsorry_server_inhibit\nreal_server 198.51.100.1 80 { TCP_CHECK { } }\n}\nvirtual_server 192.0.2.1 81 {\nprotocol TCP\nsorry_server_inhibit\nsorry_server 198.51.100.9 81\nreal_server 198.51.100.1 81 { TCP_CHECK { } }\n}\n",
            None,
        )
        .unwrap();
        assert_eq!(
            imported.skipped_lines(),
            [(
                9,
                "sorry_server_inhibit: before or without a sorry_server; keepalived ignores it, and so does uvs"
            )]
        );
        assert_eq!(imported.failing(), 0);
        let quiescent: Vec<Option<bool>> = imported
            .config
            .services
            .iter()
            .map(|s| s.health.fallback_quiescent)
            .collect();
        assert_eq!(quiescent, [Some(true), None]);
        let text = render(&imported.config);
        assert!(
            text.contains("fallback = { address = \"198.51.100.9:80\", quiescent = true }\n"),
            "{text}"
        );
    }

    /// `ha_suspend` of an address is taken; of a fwmark, keepalived clears it.
    #[test]
    fn ha_suspend_is_taken_for_an_address_and_cleared_for_a_mark() {
        let imported = import(
            "virtual_server 192.0.2.1 80 {\nprotocol TCP\nha_suspend\nreal_server 198.51.100.1 80 { TCP_CHECK { } }\n}\nvirtual_server fwmark 3 {\nha_suspend\nreal_server 198.51.100.1 80 { TCP_CHECK { } }\n}\nvirtual_server_group G { 192.0.2.2 80\nfwmark 4 }\nvirtual_server group G {\nprotocol TCP\nha_suspend\nreal_server 198.51.100.1 80 { TCP_CHECK { } }\n}\n",
            None,
        )
        .unwrap();
        assert_eq!(
            imported.skipped_lines(),
            [
                (
                    7,
                    "ha_suspend: a fwmark virtual server (or a group with one) has no address to look for; keepalived clears it, and so does uvs"
                ),
                (
                    14,
                    "ha_suspend: a fwmark virtual server (or a group with one) has no address to look for; keepalived clears it, and so does uvs"
                )
            ]
        );
        assert_eq!(imported.failing(), 0);
        let taken: Vec<Option<bool>> = imported
            .config
            .services
            .iter()
            .map(|s| s.health.ha_suspend)
            .collect();
        assert_eq!(taken, [Some(true), None, None, None]);
        let text = render(&imported.config);
        assert!(text.contains("\nha_suspend = true\n"), "{text}");
        crate::config::schema::parse(&text, Path::new("t.toml")).expect("passes the schema");
    }

    /// `notify_up CMD USER [GROUP]`: taken with its user and group, rendered as a
    /// table; one the system does not know drops the command, as keepalived drops it.
    #[test]
    fn a_notify_commands_user_and_group_are_taken_with_it() {
        let imported = import(
            "virtual_server 192.0.2.1 80 {\nprotocol TCP\nquorum_up \"/bin/up 'a b'\" root root\nquorum_down /bin/down no-such-user-uvs\nreal_server 198.51.100.1 80 {\nnotify_up /bin/x nobody\nnotify_down /bin/y root no-such-group-uvs\nTCP_CHECK { }\n}\n}\n",
            None,
        )
        .unwrap();
        assert_eq!(
            imported.skipped_lines(),
            [
                (
                    4,
                    "quorum_down: no user named no-such-user-uvs in the system's user database; keepalived ignores the command, and so does uvs; not taken"
                ),
                (
                    7,
                    "notify_down: no group named no-such-group-uvs in the system's group database; keepalived ignores the command, and so does uvs; not taken"
                ),
            ]
        );
        let spec = &imported.config.services[0];
        assert_eq!(spec.health.quorum_down, None);
        let own = &spec.health.servers[&spec.servers[0].key()];
        assert_eq!(own.notify_down, None);
        let text = render(&imported.config);
        for line in [
            "quorum_up = { command = \"/bin/up 'a b'\", user = \"root\", group = \"root\" }",
            "notify_up = { command = \"/bin/x\", user = \"nobody\" }",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        let config = crate::config::schema::parse(&text, Path::new("t.toml")).unwrap();
        assert_eq!(config.services[0].health.quorum_up, spec.health.quorum_up);
    }
}
