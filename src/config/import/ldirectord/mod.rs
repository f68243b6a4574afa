//! ldirectord.cf to a configuration, read as ldirectord 4.12's `read_config` reads it:
//! bytes, not text (a comment in GBK or Latin-1 is a comment); a `virtual=` line at
//! the start of a line opens a virtual service, and the lines after it indented by at
//! least four columns (a tab counts four) belong to it, up to the first line that is
//! not (a blank line ends the block too); `#` lines are comments, and inside a block
//! everything from a `#` on is dropped, even inside quotes. Each directive's value is
//! taken with ldirectord's own loose, unanchored pattern (`checkinterval=5 ## x` is 5,
//! `scheduler=wlc # x` is wlc, `gate -w 5` is weight 5), and a line ldirectord would
//! refuse is reported with its number and not taken (ldirectord refuses the whole
//! file). Host and service names are resolved through the importer's [`Names`].
//!
//! ldirectord's implicit choices are written out: TCP, or UDP for port 53 (`domain`);
//! wrr; the negotiate check speaking the service the port names; the check interval
//! (10 s), failure count (1), quiescent (no) and timeouts (checktimeout 5 s,
//! negotiatetimeout 30 s, each the other's default) as its code sets them. Directives
//! uvs has no counterpart for are reported with their line. Values holding bytes that
//! are not UTF-8 are reported and not taken: uvs's configuration is UTF-8 text, and
//! rewriting the bytes would change what a check sends or expects.
//!
//! Called by `uvs import ldirectord`.

mod real;
#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;
use std::sync::LazyLock;
use std::time::Duration;

use regex::bytes::Regex;

use super::{Imported, Importing};
use crate::adm::names::Names;
use crate::config::{Check, CheckKind, Health, NegotiateService, ServiceSpec};
use crate::table::{
    Family, Netmask, Protocol, ServerConfig, ServiceConfig, ServiceFlags, ServiceKey,
    ServiceOptions,
};

/// ldirectord's defaults (`set_defaults`; the code, where its man page differs).
const CHECKINTERVAL: u64 = 10;
const FAILURECOUNT: u32 = 1;
const DEFAULT_CHECKTIMEOUT: u64 = 5;
const DEFAULT_NEGOTIATETIMEOUT: u64 = 30;

/// uvs's bounds (the schema's), past which a value ldirectord takes is reported.
const MAX_INTERVAL: u64 = 86_400;
const MAX_TIMEOUT: u64 = 3600;
const MAX_FAILURES: u32 = 1000;
const MAX_PERSISTENT: u64 = 2_678_400;

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid pattern")
}

static VIRTUAL: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)^virtual(6)?\s*=\s*(.*)"));
static VIRTUAL_V4: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?-u)^(\d+\.\d+\.\d+\.\d+):([0-9A-Za-z_-]+)"));
static VIRTUAL_NAME: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?-u)^([0-9A-Za-z._+-]+):([0-9A-Za-z_-]+)"));
static VIRTUAL_MARK: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)^(\d+)"));
static VIRTUAL_V6: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?-u)^\[([0-9A-Fa-f:]+)\]:([0-9A-Za-z_-]+)"));
static COMMENT_LINE: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)^\s*#"));
static BLANK_LINE: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)^\s*$"));
static INDENTED: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)^ {4,}(.+)"));
/// `KEY = VALUE` as each of ldirectord's directive patterns has it: the key at the
/// start, blanks around `=`, the rest of the line the value.
static DIRECTIVE: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)^([A-Za-z0-9_]+)\s*=\s*(.*)"));
static QUOTED: LazyLock<Regex> = LazyLock::new(|| re(r#"(?-u)^"(.*)""#));
static DIGITS: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)(\d+)"));
static WORD: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)(\w+)"));
static WORD_DASH: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)([\w-]+)"));
static LOWERCASE: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)([a-z]+)"));
static NETMASK_V4: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)^\d+\.\d+\.\d+\.\d+$"));
static NETMASK_V6: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)^\d+$"));
static VIRTUALHOST: LazyLock<Regex> = LazyLock::new(|| re(r#"(?-u)"?([^"]*)"?"#));

/// The services ldirectord's `service=` takes.
const SERVICES: &[&str] = &[
    "dns",
    "ftp",
    "http",
    "https",
    "http_proxy",
    "imap",
    "imaps",
    "ldap",
    "ldaps",
    "nntp",
    "mysql",
    "none",
    "oracle",
    "pop",
    "pops",
    "radius",
    "pgsql",
    "sip",
    "smtp",
    "submission",
    "simpletcp",
];

/// `ld_port_to_service`: the service ldirectord checks a port with by default.
fn service_for_port(port: u16) -> &'static str {
    match port {
        21 => "ftp",
        25 => "smtp",
        53 => "dns",
        80 => "http",
        110 => "pop",
        119 => "nntp",
        143 => "imap",
        389 => "ldap",
        443 => "https",
        587 => "submission",
        636 => "ldaps",
        995 => "pops",
        993 => "imaps",
        1521 => "oracle",
        1812 => "radius",
        3128 => "http_proxy",
        3306 => "mysql",
        5060 => "sip",
        5432 => "pgsql",
        _ => "none",
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The first capture of `pattern` in `value`, as ldirectord's `$1 =~ /(...)/`.
fn first<'a>(pattern: &Regex, value: &'a [u8]) -> Option<&'a [u8]> {
    pattern
        .captures(value)
        .and_then(|c| c.get(1))
        .map(|m| m.as_bytes())
}

/// The first run of digits, as a number, if ldirectord would take it (`$1 && ...`:
/// not zero).
fn positive(value: &[u8]) -> Option<Result<u64, ()>> {
    let digits = first(&DIGITS, value)?;
    match std::str::from_utf8(digits).ok()?.parse::<u64>() {
        Ok(0) => None,
        Ok(n) => Some(Ok(n)),
        // More digits than fit: ldirectord takes it; uvs cannot.
        Err(_) => Some(Err(())),
    }
}

/// The setting a number of seconds ldirectord took, within uvs's bound.
fn bounded_seconds(
    key: &str,
    value: &[u8],
    max: u64,
    line: usize,
    imported: &mut Importing,
    refusal: &str,
) -> Option<u64> {
    match positive(value) {
        None => {
            imported.skip(line, refusal.to_string());
            None
        }
        Some(Ok(n)) if n <= max => Some(n),
        Some(_) => {
            imported.skip_with(line, || {
                format!(
                    "{key}={}: past uvs's limit of {max}; not taken",
                    lossy(first(&DIGITS, value).unwrap_or_default())
                )
            });
            None
        }
    }
}

/// A value ldirectord takes as it is, as text for the TOML.
fn utf8(key: &str, value: &[u8], line: usize, imported: &mut Importing) -> Option<String> {
    match String::from_utf8(value.to_vec()) {
        Ok(s) => Some(s),
        Err(_) => {
            imported.skip(
                line,
                format!("{key}: the value holds bytes that are not UTF-8 (uvs's configuration is UTF-8 text); not taken"),
            );
            None
        }
    }
}

fn yes_no(value: &[u8]) -> Option<bool> {
    match value {
        b"yes" => Some(true),
        b"no" => Some(false),
        _ => None,
    }
}

/// The global settings as ldirectord holds them while it reads.
struct Globals {
    checktimeout: Option<u64>,
    negotiatetimeout: Option<u64>,
    checkinterval: u64,
    failurecount: u32,
    fork: bool,
}

/// A virtual service being read.
struct Virtual {
    line: usize,
    family: Family,
    /// Host and port as written; None for a firewall mark.
    host_port: Option<(Vec<u8>, Vec<u8>)>,
    mark: u32,
    protocol: &'static str,
    scheduler: String,
    persistent: Option<(usize, u64)>,
    netmask: Option<(usize, Vec<u8>)>,
    ops: bool,
    /// (line, value) of each real.
    reals: Vec<(usize, Vec<u8>)>,
    fallback: Option<(usize, Vec<u8>)>,
    name: Option<String>,
    comment: Option<String>,
    check: Check,
    quiescent: Option<bool>,
    checktimeout: Option<u64>,
    negotiatetimeout: Option<u64>,
    checkinterval: Option<(usize, u64)>,
    service: Option<(usize, String)>,
}

/// Imports an ldirectord.cf; `names` resolves host and service names (as ldirectord's
/// getaddrinfo and getservbyname would).
pub fn import(input: &[u8], names: &mut dyn Names) -> Imported {
    let mut imported = Importing::default();
    let mut globals = Globals {
        checktimeout: None,
        negotiatetimeout: None,
        checkinterval: CHECKINTERVAL,
        failurecount: FAILURECOUNT,
        fork: false,
    };
    let mut quiescent = false;
    let mut fallback: Option<(usize, Vec<u8>, Family)> = None;
    // Per-virtual intervals, taken only if `fork=yes` (read anywhere in the file).
    let mut intervals: Vec<(usize, usize, u64)> = Vec::new();
    let mut lines = input.split(|b| *b == b'\n').enumerate();
    // A line that ended a block, read next at the top level (ldirectord's `goto`).
    let mut pending: Option<(usize, &[u8])> = None;
    // The virtual services read so far, by what makes them the same in IPVS.
    let mut seen = std::collections::HashSet::new();
    loop {
        let (line, raw) = match pending.take() {
            Some(next) => next,
            None => match lines.next() {
                Some((i, raw)) => (i + 1, raw),
                None => break,
            },
        };
        if let Some(c) = VIRTUAL.captures(raw) {
            let family = if c.get(1).is_some() {
                Family::Inet6
            } else {
                Family::Inet
            };
            let target = c.get(2).map_or(&[][..], |m| m.as_bytes());
            let mut v = open_virtual(line, family, target, &mut imported);
            for (i, raw) in lines.by_ref() {
                let line = i + 1;
                if COMMENT_LINE.is_match(raw) {
                    continue;
                }
                let cut = raw.iter().position(|b| *b == b'#').unwrap_or(raw.len());
                let mut body = Vec::with_capacity(cut);
                for b in &raw[..cut] {
                    if *b == b'\t' {
                        body.extend_from_slice(b"    ");
                    } else {
                        body.push(*b);
                    }
                }
                let Some(directive) = INDENTED.captures(&body).and_then(|c| c.get(1)) else {
                    pending = Some((line, raw));
                    break;
                };
                if let Some(v) = v.as_mut() {
                    virtual_directive(v, directive.as_bytes(), line, &mut imported);
                }
            }
            if let Some(v) = v {
                let (line, interval) = (v.line, v.checkinterval);
                if let Some(spec) = service(v, &globals, names, &mut imported) {
                    if seen.insert(spec.service.key) {
                        if let Some((at, n)) = interval {
                            intervals.push((imported.config.services.len(), at, n));
                        }
                        imported.config.services.push(spec);
                    } else {
                        imported.skip(line, "duplicate virtual server; not taken");
                    }
                }
            }
            continue;
        }
        if BLANK_LINE.is_match(raw) || COMMENT_LINE.is_match(raw) {
            continue;
        }
        global_directive(
            raw,
            line,
            &mut globals,
            &mut quiescent,
            &mut fallback,
            &mut imported,
        );
    }
    let g = &mut imported.config.global;
    g.health.quiescent = Some(quiescent);
    // ldirectord removes its services on stop unless told `cleanstop=no`.
    g.cleanstop = g.cleanstop.or(Some(true));
    g.health.check.interval = Some(Duration::from_secs(globals.checkinterval));
    g.health.check.failures = Some(globals.failurecount);
    if let Some((line, value, family)) = fallback {
        match real::fallback(&value, None, "tcp", family, names) {
            Ok(server) => imported.config.global.health.fallback = Some(server),
            Err(e) => imported.skip(line, e),
        }
    }
    for (index, line, seconds) in intervals {
        if globals.fork {
            imported.config.services[index].health.check.interval =
                Some(Duration::from_secs(seconds));
        } else {
            imported.skip(
                line,
                "checkinterval in a virtual service: ldirectord ignores it when fork=no (its default); the global checkinterval applies",
            );
        }
    }
    imported.finish()
}

/// The `virtual=` line: what ldirectord reads of the address before the block.
fn open_virtual(
    line: usize,
    family: Family,
    target: &[u8],
    imported: &mut Importing,
) -> Option<Virtual> {
    let pair = |c: regex::bytes::Captures<'_>| {
        let get = |i| c.get(i).map_or(Vec::new(), |m| m.as_bytes().to_vec());
        (get(1), get(2))
    };
    let mut mark = 0;
    let host_port = if family == Family::Inet
        && let Some(c) = VIRTUAL_V4.captures(target)
    {
        Some(pair(c))
    } else if let Some(c) = VIRTUAL_NAME.captures(target) {
        Some(pair(c))
    } else if let Some(digits) = first(&VIRTUAL_MARK, target) {
        match std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
        {
            // ipvsadm, which ldirectord hands the mark to, takes 1 to 2^32-1.
            Some(m) if m > 0 => mark = m,
            _ => {
                imported.skip_with(line, || {
                    format!(
                        "firewall mark {}: ipvsadm takes 1 to 4294967295; not taken",
                        lossy(digits)
                    )
                });
                return None;
            }
        }
        None
    } else if let Some(c) = VIRTUAL_V6.captures(target) {
        if family == Family::Inet {
            imported.skip(
                line,
                "cannot specify an IPv6 address here. please use \"virtual6\" instead.",
            );
            return None;
        }
        let (addr, port) = pair(c);
        if lossy(&addr).parse::<std::net::Ipv6Addr>().is_err() {
            imported.skip(line, "invalid ipv6 address for virtual server");
            return None;
        }
        Some((addr, port))
    } else {
        imported.skip_with(line, || {
            format!(
                "virtual={}: invalid address for virtual server",
                lossy(target).trim_end()
            )
        });
        return None;
    };
    // ldirectord's rule: UDP when the port is written 53 or domain.
    let protocol = match &host_port {
        None => "fwm",
        Some((_, port)) if port == b"53" || port == b"domain" => "udp",
        Some(_) => "tcp",
    };
    Some(Virtual {
        line,
        family,
        host_port,
        mark,
        protocol,
        scheduler: "wrr".to_string(),
        persistent: None,
        netmask: None,
        ops: false,
        reals: Vec::new(),
        fallback: None,
        name: None,
        comment: None,
        check: Check {
            kind: Some(CheckKind::Negotiate),
            ..Check::default()
        },
        quiescent: None,
        checktimeout: None,
        negotiatetimeout: None,
        checkinterval: None,
        service: None,
    })
}

/// The regex crate's message in one line: its last (the first lines draw the pattern).
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text.lines().last().unwrap_or_default();
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}

/// A request string as ldirectord's check of `service` sends it: it puts a `/` before
/// every request that has none, and its DNS and simpletcp checks take the first
/// character off again (the name asked for; the bytes sent, where simpletcp also turns
/// each `\n` written into a newline). HTTP's path keeps it, as uvs's check does.
fn request_as_sent(service: Option<NegotiateService>, request: String) -> String {
    match service {
        Some(NegotiateService::Dns) => request
            .strip_prefix('/')
            .map_or(request.clone(), str::to_string),
        Some(NegotiateService::SimpleTcp) => request
            .strip_prefix('/')
            .unwrap_or(&request)
            .replace("\\n", "\n"),
        _ => request,
    }
}

/// A line no directive pattern of ldirectord's matches.
fn not_a_directive(text: &[u8], line: usize, imported: &mut Importing) {
    imported.skip_with(line, || {
        format!("`{}': not a key=value directive", lossy(text).trim())
    });
}

/// What no uvs setting holds.
fn no_counterpart(key: &str, line: usize, imported: &mut Importing) {
    imported.skip(line, format!("{key}: no uvs counterpart; not taken"));
}

/// One directive of a virtual block (comment cut, indentation taken off).
fn virtual_directive(v: &mut Virtual, text: &[u8], line: usize, imported: &mut Importing) {
    let unknown = |imported: &mut Importing| {
        imported.skip_with(line, || {
            format!("Unknown command \"{}\"", lossy(text).trim_end())
        })
    };
    let Some(c) = DIRECTIVE.captures(text) else {
        not_a_directive(text, line, imported);
        return;
    };
    let key = lossy(c.get(1).map_or(&[][..], |m| m.as_bytes()));
    let value = c.get(2).map_or(&[][..], |m| m.as_bytes());
    // The directives ldirectord reads only in double quotes.
    let quoted = || first(&QUOTED, value);
    match key.as_str() {
        "real" | "real6" => {
            if (key == "real6") != (v.family == Family::Inet6) {
                let want = if v.family == Family::Inet { "real" } else { "real6" };
                imported.skip(
                    line,
                    format!("cannot specify \"{key}\" here.  please use \"{want}\" instead"),
                );
            } else {
                v.reals.push((line, value.to_vec()));
            }
        }
        "request" | "receive" => match quoted() {
            None => unknown(imported),
            Some([]) => imported.skip(line, format!("{key}: an empty string; not taken")),
            Some(s) => {
                let Some(s) = utf8(&key, s, line, imported) else {
                    return;
                };
                if key == "request" {
                    v.check.request = Some(s);
                } else if let Err(e) = regex::Regex::new(&s) {
                    imported.skip(
                        line,
                        format!(
                            "receive: not a regular expression uvs reads ({})",
                            regex_error(&e)
                        ),
                    );
                } else {
                    v.check.receive = Some(s);
                }
            }
        },
        "checktype" => {
            if first(&DIGITS, value).is_some() {
                imported.skip(
                    line,
                    "checktype=N (connect checks with a negotiate every N) has no uvs counterpart; negotiate is used",
                );
                v.check.kind = Some(CheckKind::Negotiate);
                return;
            }
            let word = first(&WORD_DASH, value).unwrap_or_default();
            match word {
                b"ping" | b"external-perl" => imported.skip(
                    line,
                    format!(
                        "checktype={}: no uvs counterpart; negotiate is used",
                        lossy(word)
                    ),
                ),
                _ => match CheckKind::from_name(&lossy(word)) {
                    Some(kind) => v.check.kind = Some(kind),
                    None => imported.skip(
                        line,
                        "checktype must be \"connect\", \"negotiate\", \"on\", \"off\", \"ping\", \"external\", \"external-perl\" or a positive number",
                    ),
                },
            }
        }
        "checkcommand" => {
            let command = quoted().unwrap_or(value);
            if command.is_empty() {
                imported.skip(line, "invalid check command");
            } else if let Some(s) = utf8(&key, command, line, imported) {
                v.check.command = Some(s);
            }
        }
        "connecttimeout" => imported.skip(
            line,
            "connecttimeout directive deprecated in favour of negotiatetimeout: ldirectord refuses it; not taken",
        ),
        "checktimeout" => {
            v.checktimeout = bounded_seconds(
                &key,
                value,
                MAX_TIMEOUT,
                line,
                imported,
                "invalid check timeout",
            )
            .or(v.checktimeout)
        }
        "negotiatetimeout" => {
            v.negotiatetimeout = bounded_seconds(
                &key,
                value,
                MAX_TIMEOUT,
                line,
                imported,
                "invalid negotiate timeout",
            )
            .or(v.negotiatetimeout)
        }
        "failurecount" => {
            if let Some(n) = bounded_seconds(
                &key,
                value,
                u64::from(MAX_FAILURES),
                line,
                imported,
                "invalid failure count",
            ) {
                v.check.failures = u32::try_from(n).ok();
            }
        }
        "checkinterval" => {
            if let Some(n) = bounded_seconds(
                &key,
                value,
                MAX_INTERVAL,
                line,
                imported,
                "invalid checkinterval",
            ) {
                v.checkinterval = Some((line, n));
            }
        }
        "checkport" => match positive(value) {
            Some(Ok(p)) if p < 65536 => v.check.port = u16::try_from(p).ok(),
            _ => imported.skip(line, "checkport must be in range 1..65535"),
        },
        "scheduler" => match first(&LOWERCASE, value) {
            Some(s) => {
                let s = lossy(s);
                if s.parse::<crate::sched::Scheduler>().is_ok() {
                    v.scheduler = s;
                } else {
                    imported.skip(
                        line,
                        format!("scheduler={s}: not a scheduler IPVS has; wrr is used"),
                    );
                }
            }
            None => imported.skip(
                line,
                "invalid scheduler, should be only lowercase letters (a-z)",
            ),
        },
        "persistent" => match first(&DIGITS, value) {
            None => imported.skip(line, "invalid persistent timeout"),
            Some(d) => match lossy(d).parse::<u64>() {
                Ok(n) if (1..=MAX_PERSISTENT).contains(&n) => v.persistent = Some((line, n)),
                _ => imported.skip_with(line, || {
                    format!(
                        "persistent={}: ipvsadm takes 1 to {MAX_PERSISTENT} seconds; not persistent",
                        lossy(d)
                    )
                }),
            },
        },
        "netmask" => {
            let good = match v.family {
                Family::Inet => NETMASK_V4.is_match(value),
                Family::Inet6 => NETMASK_V6.is_match(value),
            };
            if good {
                v.netmask = Some((line, value.to_vec()));
            } else if v.family == Family::Inet {
                imported.skip(line, "invalid netmask: dotted quad notation is required");
            } else {
                imported.skip(
                    line,
                    "invalid netmask: a prefix length between 1 and 128 is required",
                );
            }
        }
        "protocol" => match first(&WORD, value) {
            None => imported.skip(line, "invalid protocol"),
            Some(p) if v.protocol == "fwm" => {
                if p != b"fwm" {
                    imported.skip(
                        line,
                        "protocol must be fwm if the virtual service is a fwmark (a number)",
                    );
                }
            }
            Some(b"tcp") => v.protocol = "tcp",
            Some(b"udp") => v.protocol = "udp",
            Some(_) => imported.skip(
                line,
                "protocol must be tcp or udp if the virtual service is an address and port",
            ),
        },
        "ops" => match yes_no(value) {
            Some(on) => v.ops = on,
            None => imported.skip(line, "ops must be 'yes' or 'no'"),
        },
        "service" => match first(&WORD, value).map(lossy) {
            Some(s) if SERVICES.contains(&s.as_str()) => v.service = Some((line, s)),
            _ => imported.skip(
                line,
                format!("service must be {}", SERVICES.join(", ")),
            ),
        },
        "httpmethod" => match first(&WORD, value).map(|m| lossy(m).to_ascii_uppercase()) {
            Some(m) if m == "GET" || m == "HEAD" => v.check.method = Some(m),
            _ => imported.skip(line, "httpmethod must be GET or HEAD"),
        },
        "virtualhost" => {
            let host = first(&VIRTUALHOST, value).unwrap_or_default();
            if let Some(s) = utf8(&key, host, line, imported) {
                v.check.virtualhost = Some(s);
            }
        }
        "fallback" | "fallback6" => {
            if (key == "fallback6") != (v.family == Family::Inet6) {
                let want = if v.family == Family::Inet {
                    "fallback"
                } else {
                    "fallback6"
                };
                imported.skip(
                    line,
                    format!("cannot specify \"{key}\" here.  please use \"{want}\" instead"),
                );
            } else {
                v.fallback = Some((line, value.to_vec()));
            }
        }
        "quiescent" => match yes_no(value) {
            Some(q) => v.quiescent = Some(q),
            None => imported.skip(line, "quiescent must be 'yes' or 'no'"),
        },
        "servicename" => v.name = utf8(&key, value, line, imported),
        "comment" => v.comment = utf8(&key, value, line, imported),
        "login" | "passwd" | "database" | "secret" | "load" if quoted().is_none() => {
            unknown(imported)
        }
        "login" | "passwd" | "database" | "secret" | "load" | "checkcount" | "schedflags"
        | "fallbackcommand" | "emailalert" | "emailalertfreq" | "emailalertstatus"
        | "monitorfile" | "cleanstop" | "smtp" => no_counterpart(&key, line, imported),
        _ => unknown(imported),
    }
}

/// One line of the global section (not cut at `#`: ldirectord does not cut there).
fn global_directive(
    raw: &[u8],
    line: usize,
    g: &mut Globals,
    quiescent: &mut bool,
    fallback: &mut Option<(usize, Vec<u8>, Family)>,
    imported: &mut Importing,
) {
    let unknown = |imported: &mut Importing| {
        imported.skip_with(line, || {
            format!("Unknown command {}", lossy(raw).trim_end())
        })
    };
    if raw.first().is_some_and(u8::is_ascii_whitespace) {
        imported.skip_with(line, || {
            format!(
                "`{}': indented, but in no virtual block (a blank line ends one)",
                lossy(raw).trim()
            )
        });
        return;
    }
    // ldirectord takes a bare `supervised` (with a warning) as `supervised=yes`.
    if raw.starts_with(b"supervised") && BLANK_LINE.is_match(&raw[b"supervised".len()..]) {
        no_counterpart("supervised", line, imported);
        return;
    }
    let Some(c) = DIRECTIVE.captures(raw) else {
        not_a_directive(raw, line, imported);
        return;
    };
    let key = lossy(c.get(1).map_or(&[][..], |m| m.as_bytes()));
    let value = c.get(2).map_or(&[][..], |m| m.as_bytes());
    let yes_no_setting = |imported: &mut Importing| {
        let v = yes_no(value);
        if v.is_none() {
            imported.skip(line, format!("{key} must be 'yes' or 'no'"));
        }
        v
    };
    match key.as_str() {
        "checktimeout" => {
            g.checktimeout = bounded_seconds(
                &key,
                value,
                MAX_TIMEOUT,
                line,
                imported,
                "invalid check timeout value",
            )
            .or(g.checktimeout)
        }
        "negotiatetimeout" => {
            g.negotiatetimeout = bounded_seconds(
                &key,
                value,
                MAX_TIMEOUT,
                line,
                imported,
                "invalid negotiate timeout value",
            )
            .or(g.negotiatetimeout)
        }
        "connecttimeout" => imported.skip(
            line,
            "connecttimeout directive deprecated in favour of negotiatetimeout: ldirectord refuses it; not taken",
        ),
        "checkinterval" => {
            if let Some(n) = bounded_seconds(
                &key,
                value,
                MAX_INTERVAL,
                line,
                imported,
                "invalid check interval value",
            ) {
                g.checkinterval = n;
            }
        }
        "failurecount" => {
            if let Some(n) = bounded_seconds(
                &key,
                value,
                u64::from(MAX_FAILURES),
                line,
                imported,
                "invalid failure count value",
            ) {
                g.failurecount = u32::try_from(n).unwrap_or(FAILURECOUNT);
            }
        }
        "fallback" | "fallback6" => {
            let family = if key == "fallback6" {
                Family::Inet6
            } else {
                Family::Inet
            };
            match fallback {
                Some((_, _, Family::Inet)) if family == Family::Inet6 => imported.skip(
                    line,
                    "fallback6: uvs has one global fallback, taken from fallback; not taken",
                ),
                _ => *fallback = Some((line, value.to_vec(), family)),
            }
        }
        "autoreload" => {
            if let Some(on) = yes_no_setting(imported) {
                imported.config.global.autoreload = on;
            }
        }
        "fork" => {
            if let Some(on) = yes_no_setting(imported) {
                g.fork = on;
            }
        }
        "quiescent" => {
            if let Some(on) = yes_no_setting(imported) {
                *quiescent = on;
            }
        }
        "cleanstop" => {
            if let Some(on) = yes_no_setting(imported) {
                imported.config.global.cleanstop = Some(on);
            }
        }
        "maintenancedir" => {
            if value.is_empty() {
                imported.skip(line, "maintenance directory not specified");
            } else if let Some(dir) = utf8(&key, value, line, imported) {
                imported.config.global.maintenance_dir = Some(dir.into());
            }
        }
        "timeout" => imported.skip(
            line,
            "timeout directive deprecated in favour of checktimeout and negotiatetimeout: ldirectord refuses it; not taken",
        ),
        "callback" | "logfile" | "execute" | "supervised" | "readdquiescent" | "emailalert"
        | "emailalertfreq" | "emailalertstatus" | "emailalertfrom" | "smtp"
        | "fallbackcommand" | "checkcount" => no_counterpart(&key, line, imported),
        _ => unknown(imported),
    }
}

/// The service a virtual block makes, if it makes one: names resolved, ldirectord's
/// implicit choices made explicit.
fn service(
    v: Virtual,
    g: &Globals,
    names: &mut dyn Names,
    imported: &mut Importing,
) -> Option<ServiceSpec> {
    let (key, port_written) = match &v.host_port {
        None => (
            ServiceKey::Fwmark {
                mark: v.mark,
                family: v.family,
            },
            None,
        ),
        Some((host, port)) => {
            let addr = match real::host(host, v.family, names) {
                Ok(a) => a,
                Err(e) => {
                    imported.skip(v.line, format!("invalid address for virtual service: {e}"));
                    return None;
                }
            };
            let Some(number) = real::port(port, v.protocol, names) else {
                imported.skip_with(v.line, || {
                    format!(
                        "invalid address for virtual service: port {} not known for {}",
                        lossy(port),
                        v.protocol
                    )
                });
                return None;
            };
            let protocol = if v.protocol == "udp" {
                Protocol::Udp
            } else {
                Protocol::Tcp
            };
            (
                ServiceKey::Inet {
                    protocol,
                    addr,
                    port: number,
                },
                Some(port.as_slice()),
            )
        }
    };
    let family = key.family();
    let mut flags = 0;
    let mut netmask = Netmask::full(family);
    if v.persistent.is_some() {
        flags |= ServiceFlags::PERSISTENT;
        // ldirectord passes the netmask only with persistence.
        if let Some((line, m)) = &v.netmask {
            match family {
                Family::Inet => match lossy(m).parse::<Ipv4Addr>() {
                    // The kernel takes any mask; uvs's table only a run of ones.
                    Ok(m) if u32::from(m).leading_ones() + u32::from(m).trailing_zeros() == 32 => {
                        netmask = Netmask::V4(m)
                    }
                    _ => imported.skip_with(*line, || {
                        format!(
                            "netmask={}: uvs takes a netmask of leading ones (as 255.255.255.0); not taken",
                            lossy(m)
                        )
                    }),
                },
                Family::Inet6 => match lossy(m).parse::<u32>() {
                    Ok(p) if (1..=128).contains(&p) => netmask = Netmask::V6(p),
                    _ => imported.skip(
                        *line,
                        "invalid netmask: a prefix length between 1 and 128 is required",
                    ),
                },
            }
        }
    }
    // ldirectord asks ipvsadm for -o only on UDP services: on others `ops=yes` is
    // taken and does nothing, as here.
    if v.ops && v.protocol == "udp" {
        flags |= ServiceFlags::ONE_PACKET;
    }
    let mut check = v.check;
    let port = match key {
        ServiceKey::Inet { port, .. } => port,
        ServiceKey::Fwmark { .. } => 0,
    };
    // The service the negotiate check speaks: `service=`, else the one the port names
    // (none for firewall marks).
    let (service_line, service) = match v.service {
        Some(s) => s,
        None if v.protocol == "fwm" => (v.line, "none".to_string()),
        None => (v.line, service_for_port(port).to_string()),
    };
    // The check ldirectord runs, before any stand-in for a protocol uvs does not speak:
    // its timeout is the one that applies.
    let negotiating = check.kind == Some(CheckKind::Negotiate);
    if negotiating {
        match NegotiateService::from_name(&service) {
            Some(s) => check.service = Some(s),
            None if service == "none" => {
                // ldirectord's negotiate without a protocol only connects.
                check.kind = Some(CheckKind::Connect);
            }
            None => {
                imported.skip(
                    service_line,
                    format!("service={service}: uvs negotiates http, https, simpletcp, smtp and dns only; a connect check is used instead"),
                );
                check.kind = Some(CheckKind::Connect);
            }
        }
    }
    // checktimeout and negotiatetimeout are each other's default (ld_setup); the one
    // that bounds the check is negotiatetimeout for negotiate (also where uvs stands a
    // connect check in for it), checktimeout otherwise.
    let checktimeout = v
        .checktimeout
        .or(v.negotiatetimeout)
        .or(g.checktimeout)
        .or(g.negotiatetimeout)
        .unwrap_or(DEFAULT_CHECKTIMEOUT);
    let negotiatetimeout = v
        .negotiatetimeout
        .or(v.checktimeout)
        .or(g.negotiatetimeout)
        .or(g.checktimeout)
        .unwrap_or(DEFAULT_NEGOTIATETIMEOUT);
    check.request = check.request.map(|r| request_as_sent(check.service, r));
    let timeout = if negotiating {
        negotiatetimeout
    } else {
        checktimeout
    };
    check.timeout = Some(Duration::from_secs(timeout));
    let protocol = match v.protocol {
        "fwm" => "tcp",
        p => p,
    };
    let fallback = v.fallback.and_then(|(line, text)| {
        match real::fallback(&text, port_written, protocol, v.family, names) {
            Ok(server) => Some(server),
            Err(e) => {
                imported.skip(line, e);
                None
            }
        }
    });
    let mut servers: Vec<ServerConfig> = Vec::new();
    let mut server_checks = std::collections::HashMap::new();
    // The keys already listed, so that a service of many reals takes steps in
    // proportion to them, not to their square.
    let mut listed = std::collections::HashSet::new();
    for (line, text) in &v.reals {
        let reals = match real::reals(text, v.family, names) {
            Ok(r) => r,
            Err(e) => {
                imported.skip(*line, e);
                continue;
            }
        };
        let mut twice = None;
        for server in reals.servers {
            let key = server.key();
            if listed.insert(key) {
                if let Some(c) = &reals.check {
                    let mut c = c.clone();
                    c.request = c.request.map(|r| request_as_sent(check.service, r));
                    server_checks.insert(key, c);
                }
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
            timeout: v.persistent.map_or(0, |(_, p)| p as u32),
            netmask,
            pe: None,
            options: ServiceOptions::default(),
        },
        servers,
        listen: Vec::new(),
        name: v.name,
        comment: v.comment,
        health: Health {
            check,
            quiescent: v.quiescent,
            fallback,
        },
        server_checks,
    })
}
