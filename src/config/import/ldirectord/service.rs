//! The service a virtual block makes: its address and real servers resolved through
//! the importer's names, and ldirectord's implicit choices (the check's protocol from
//! the port, the timeouts that default to each other, the request as its checks send
//! it) made explicit. Called by the block reader in the parent module once a block is
//! read.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::directives::{Globals, Virtual};
use super::real;
use super::values::*;
use crate::adm::names::Names;
use crate::config::import::Importing;
use crate::config::{CheckKind, Health, NegotiateService, ServiceSpec};
use crate::table::{
    Family, Netmask, Protocol, ServerConfig, ServiceConfig, ServiceFlags, ServiceKey,
    ServiceOptions,
};

/// ldirectord's check timeouts when none is set (`set_defaults`).
const DEFAULT_CHECKTIMEOUT: u64 = 5;
const DEFAULT_NEGOTIATETIMEOUT: u64 = 30;

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

/// The service a virtual block makes, if it makes one: names resolved, ldirectord's
/// implicit choices made explicit.
pub(super) fn service(
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
            if let Some(why) = super::super::v4_mapped_vip(&addr, number) {
                imported.skip(v.line, format!("virtual service: {why}; not taken"));
                return None;
            }
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
    // (With whether it was listed at another port than the table holds.)
    let mut listed = std::collections::HashMap::new();
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
            // Listed twice as the table holds it: ipvsadm gives a gate or ipip real
            // server the service's port, and refuses the second as already there.
            let held = server.in_service(&key);
            let moved = held.port != server.port;
            if let Some(&earlier_moved) = listed.get(&held.key()) {
                let (_, why, n) = twice.get_or_insert((held.key(), false, 0));
                *n += 1;
                *why |= moved || earlier_moved;
            } else {
                listed.insert(held.key(), moved);
                let mut own = reals.check.clone().map(|mut c| {
                    c.request = c.request.map(|r| request_as_sent(check.service, r));
                    c
                });
                // ldirectord checks a real server at the port its line names (unless
                // checkport says another), whatever port ipvsadm gave it.
                if moved && server.port != 0 && check.port.is_none() {
                    own.get_or_insert_with(Default::default).port = Some(server.port);
                }
                if let Some(c) = own {
                    server_checks.insert(held.key(), c);
                }
                servers.push(server);
            }
        }
        if let Some((key, moved, n)) = twice {
            let more = if n > 1 {
                format!(" and {} more", n - 1)
            } else {
                String::new()
            };
            let why = if moved {
                " (a gate or ipip real server takes the service's port)"
            } else {
                ""
            };
            imported.skip(*line, format!("{key}{more}: listed twice{why}"));
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
            ..Health::default()
        },
        server_checks,
        server_more_checks: Default::default(),
        group: None,
    })
}
