//! The directives of an ldirectord.cf, each read with ldirectord 4.12's own pattern
//! and check (`read_config`): the `virtual=` line, the lines of a virtual block, and
//! the global section. What ldirectord refuses, and what uvs has no counterpart for,
//! is reported with its line. Called by the block reader in the parent module.

use super::values::*;
use super::{BLANK_LINE, FAILURECOUNT};
use crate::config::import::Importing;
use crate::config::{Check, CheckKind};
use crate::table::Family;

/// The services ldirectord's `service=` takes.
pub(super) const SERVICES: &[&str] = &[
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

/// The global settings as ldirectord holds them while it reads.
pub(super) struct Globals {
    pub(super) checktimeout: Option<u64>,
    pub(super) negotiatetimeout: Option<u64>,
    pub(super) checkinterval: u64,
    pub(super) failurecount: u32,
    pub(super) fork: bool,
}

/// A virtual service being read.
pub(super) struct Virtual {
    pub(super) line: usize,
    pub(super) family: Family,
    /// Host and port as written; None for a firewall mark.
    pub(super) host_port: Option<(Vec<u8>, Vec<u8>)>,
    pub(super) mark: u32,
    pub(super) protocol: &'static str,
    pub(super) scheduler: String,
    pub(super) persistent: Option<(usize, u64)>,
    pub(super) netmask: Option<(usize, Vec<u8>)>,
    pub(super) ops: bool,
    /// (line, value) of each real.
    pub(super) reals: Vec<(usize, Vec<u8>)>,
    pub(super) fallback: Option<(usize, Vec<u8>)>,
    pub(super) name: Option<String>,
    pub(super) comment: Option<String>,
    pub(super) check: Check,
    pub(super) quiescent: Option<bool>,
    pub(super) checktimeout: Option<u64>,
    pub(super) negotiatetimeout: Option<u64>,
    pub(super) checkinterval: Option<(usize, u64)>,
    pub(super) service: Option<(usize, String)>,
}

/// The `virtual=` line: what ldirectord reads of the address before the block.
pub(super) fn open_virtual(
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

/// One directive of a virtual block (comment cut, indentation taken off).
pub(super) fn virtual_directive(
    v: &mut Virtual,
    text: &[u8],
    line: usize,
    imported: &mut Importing,
) {
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
                // The nearest uvs has, said as what it is: the import fails either way.
                b"ping" => {
                    imported.skip(
                        line,
                        "checktype=ping: uvs sends no ICMP echo; a connect check is used instead",
                    );
                    v.check.kind = Some(CheckKind::Connect);
                }
                b"external-perl" => {
                    imported.skip(
                        line,
                        "checktype=external-perl: uvs runs no Perl inside itself; a connect check is used instead",
                    );
                    v.check.kind = Some(CheckKind::Connect);
                }
                _ => match CheckKind::from_name(&lossy(word)) {
                    // keepalived's file check is no ldirectord checktype.
                    Some(kind) if kind != CheckKind::File => v.check.kind = Some(kind),
                    _ => imported.skip(
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
                v.check.command = Some(crate::config::CheckCommand::Line(s));
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
pub(super) fn global_directive(
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
