//! Groups of virtual services (keepalived's `virtual_server_group`): several virtual
//! addresses, address ranges and firewall marks that share one set of real servers and
//! one set of checks. The table has no groups: as keepalived makes one IPVS service per
//! member (check/ipvswrapper.c, `ipvs_group_cmd`), a group is expanded here into one
//! [`ServiceSpec`] per member, each marked with its [`Group`], so the planner, the
//! table and `uvsadm -L -n` see plain virtual services, and the health checker checks
//! each real server once, for the group's first member, and applies what it finds to
//! every member (`health::effective`). The schema (native TOML), the keepalived
//! importer and the writer (`render`) use it.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ServiceSpec;
use crate::table::{ListenRule, ServerConfig, ServerKey, ServiceKey};

/// The most virtual services one group expands to (ranges counted address by
/// address), so a short file cannot make millions: as many as keepalived's IPv4 range
/// of one octet holds (check_data.c's `alloc_vsg_entry`), and as the ldirectord
/// importer takes from one range line (`MAX_RANGE`).
pub const MAX_MEMBERS: usize = 256;

/// What a member of a group carries: the group's name, and the member whose health
/// findings every member shares (the group's first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub checks: ServiceKey,
}

/// A group's real server as the file wrote it: the server, and whether its address
/// named no port (it then takes each member's port, as ipvsadm's `-r ADDRESS` does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub server: ServerConfig,
    pub portless: bool,
}

/// The port a port-less real server takes in `service`: its port, 0 in an fwmark one.
fn service_port(service: &ServiceKey) -> u16 {
    match service {
        ServiceKey::Inet { port, .. } => *port,
        ServiceKey::Fwmark { .. } => 0,
    }
}

/// The group's servers as `member`'s table holds them (`ServerConfig::in_service`).
pub fn servers_of(written: &[Written], member: &ServiceKey) -> Vec<ServerConfig> {
    written
        .iter()
        .map(|w| {
            let mut server = w.server.clone();
            if w.portless {
                server.port = service_port(member);
            }
            server.in_service(member)
        })
        .collect()
}

/// One [`ServiceSpec`] per member of `keys` (in order; the first is the one whose
/// checks are run), from `template`, whose servers are `written` in the same order.
/// Each member gets its own key, its servers fitted to it, the per-server checks moved
/// to its servers' keys, and the fallback fitted to it.
pub fn expand(
    template: &ServiceSpec,
    written: &[Written],
    name: &str,
    keys: &[ServiceKey],
) -> Vec<ServiceSpec> {
    let Some(first) = keys.first() else {
        return Vec::new();
    };
    let group = Group {
        name: name.to_string(),
        checks: *first,
    };
    keys.iter()
        .map(|key| {
            let servers = servers_of(written, key);
            let server_checks = template
                .servers
                .iter()
                .zip(&servers)
                .filter_map(|(was, now)| {
                    let check = template.server_checks.get(&was.key())?;
                    Some((now.key(), check.clone()))
                })
                .collect();
            let mut spec = template.clone();
            spec.service.key = *key;
            spec.servers = servers;
            spec.server_checks = server_checks;
            spec.health.fallback = spec.health.fallback.map(|f| f.in_service(key));
            spec.listen.retain(|rule| listens_for(rule, key));
            spec.group = Some(group.clone());
            spec
        })
        .collect()
}

/// Whether `rule` is `member`'s: an fwmark member's rules carry its mark, a port-0
/// member's are of its protocol and address (the schema's `read_listen`).
fn listens_for(rule: &ListenRule, member: &ServiceKey) -> bool {
    match *member {
        ServiceKey::Fwmark { mark, .. } => rule.mark == Some(mark),
        ServiceKey::Inet {
            protocol,
            addr,
            port: 0,
        } => rule.mark.is_none() && rule.listen.protocol == protocol && rule.listen.addr == addr,
        ServiceKey::Inet { .. } => false,
    }
}

/// The first server of `servers` whose key an earlier one already has (a gate or ipip
/// server takes the member's port, so two may meet in one member only).
pub fn repeated(servers: &[ServerConfig]) -> Option<usize> {
    let mut seen = HashSet::new();
    servers.iter().position(|s| !seen.insert(s.key()))
}

/// Where the checks of `spec`'s server `server` are kept: for a member of a group,
/// the same server (by position) of the group's first member, whose checks are the
/// ones run; otherwise the server of `spec` itself. `services` is the whole
/// configuration's list.
pub fn checked_as(
    services: &[ServiceSpec],
    spec: &ServiceSpec,
    server: &ServerKey,
) -> (ServiceKey, ServerKey) {
    let own = (spec.service.key, *server);
    let Some(group) = &spec.group else {
        return own;
    };
    if group.checks == spec.service.key {
        return own;
    }
    let Some(first) = services.iter().find(|s| s.service.key == group.checks) else {
        return own;
    };
    spec.servers
        .iter()
        .position(|s| s.key() == *server)
        .and_then(|i| first.servers.get(i))
        .map_or(own, |s| (group.checks, s.key()))
}

/// Whether `spec`'s checks are run: it is in no group, or it is its group's first.
pub fn runs_checks(spec: &ServiceSpec) -> bool {
    spec.group
        .as_ref()
        .is_none_or(|g| g.checks == spec.service.key)
}

/// An address range written `FIRST-LAST` (both whole addresses of one family, FIRST
/// not after LAST): its addresses in order, or None when it is not one or holds more
/// than `cap`.
pub fn range(first: IpAddr, last: IpAddr, cap: usize) -> Option<Vec<IpAddr>> {
    let (a, b) = ends(first, last)?;
    if b - a >= cap as u128 {
        return None;
    }
    Some(
        (a..=b)
            .map(|n| match first {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
            })
            .collect(),
    )
}

/// A range's ends as numbers, None when they are of two families or backwards.
fn ends(first: IpAddr, last: IpAddr) -> Option<(u128, u128)> {
    let (a, b) = match (first, last) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b))),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b)),
        _ => return None,
    };
    (a <= b).then_some((a, b))
}

/// A member written as the native TOML writes one: `"ADDR:PORT"`, `"[V6]:PORT"`, or a
/// range `"FIRST-LAST:PORT"` / `"[FIRST-LAST]:PORT"` with both ends whole addresses.
/// Returns the addresses (in order) and the port; Err(true) when it is a range of more
/// than `cap` addresses, Err(false) when it is not a member.
pub fn parse_member(s: &str, cap: usize) -> Result<(Vec<IpAddr>, u16), bool> {
    if let Ok(a) = s.parse::<std::net::SocketAddr>() {
        return Ok((vec![a.ip()], a.port()));
    }
    let (addrs, port) = match s.strip_prefix('[') {
        Some(rest) => rest.rsplit_once("]:").ok_or(false)?,
        None => s.rsplit_once(':').ok_or(false)?,
    };
    let port: u16 = port.parse().map_err(|_| false)?;
    let (first, last) = addrs.split_once('-').ok_or(false)?;
    let (first, last): (IpAddr, IpAddr) = (
        first.parse().map_err(|_| false)?,
        last.parse().map_err(|_| false)?,
    );
    if s.starts_with('[') != first.is_ipv6() || first.is_ipv6() != last.is_ipv6() {
        return Err(false);
    }
    // Counted before anything is built: 0.0.0.0-255.255.255.255 is 2^32 addresses.
    let (a, b) = ends(first, last).ok_or(false)?;
    if b - a >= cap as u128 {
        return Err(true);
    }
    Ok((range(first, last, cap).ok_or(false)?, port))
}

/// `addrs` (consecutive when they came from one range) written back as members: runs
/// of consecutive addresses as ranges, single ones alone.
pub fn write_members(addrs: &[IpAddr], port: u16) -> Vec<String> {
    let next = |a: &IpAddr, b: &IpAddr| match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => u32::from(*a).checked_add(1) == Some(u32::from(*b)),
        (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(*a).checked_add(1) == Some(u128::from(*b)),
        _ => false,
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < addrs.len() {
        let mut j = i;
        while j + 1 < addrs.len() && next(&addrs[j], &addrs[j + 1]) {
            j += 1;
        }
        let (a, b) = (addrs[i], addrs[j]);
        out.push(match (i == j, a) {
            (true, IpAddr::V4(_)) => format!("{a}:{port}"),
            (true, IpAddr::V6(_)) => format!("[{a}]:{port}"),
            (false, IpAddr::V4(_)) => format!("{a}-{b}:{port}"),
            (false, IpAddr::V6(_)) => format!("[{a}-{b}]:{port}"),
        });
        i = j + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_ranges_are_read_and_written_back_alike() {
        let v4 = |s: &str| -> IpAddr { s.parse().unwrap() };
        assert_eq!(
            parse_member("10.0.0.1:80", 256),
            Ok((vec![v4("10.0.0.1")], 80))
        );
        assert_eq!(
            parse_member("10.0.0.254-10.0.1.1:80", 256),
            Ok((
                vec![
                    v4("10.0.0.254"),
                    v4("10.0.0.255"),
                    v4("10.0.1.0"),
                    v4("10.0.1.1")
                ],
                80
            ))
        );
        assert_eq!(
            parse_member("[2001:db8::9-2001:db8::b]:53", 256),
            Ok((
                vec![v4("2001:db8::9"), v4("2001:db8::a"), v4("2001:db8::b")],
                53
            ))
        );
        assert_eq!(parse_member("10.0.0.0-10.0.1.0:80", 256), Err(true));
        // Refused by their size, before a byte is spent on them.
        assert_eq!(parse_member("0.0.0.0-255.255.255.255:80", 256), Err(true));
        assert_eq!(
            parse_member("[::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:80", 256),
            Err(true)
        );
        for bad in [
            "10.0.0.9-10.0.0.1:80",
            "10.0.0.1-9:80",
            "10.0.0.1-2001:db8::1:80",
            "2001:db8::1-2001:db8::2:80",
            "10.0.0.1-10.0.0.2",
            "[10.0.0.1-10.0.0.2]:80",
        ] {
            assert_eq!(parse_member(bad, 256), Err(false), "{bad}");
        }
        let addrs = parse_member("10.0.0.254-10.0.1.1:80", 256).unwrap().0;
        let mut with_gap = addrs.clone();
        with_gap.push(v4("10.0.2.7"));
        assert_eq!(
            write_members(&with_gap, 80),
            ["10.0.0.254-10.0.1.1:80", "10.0.2.7:80"]
        );
    }
}
