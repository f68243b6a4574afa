//! keepalived's `virtual_server_group NAME { ... }` and the `virtual_server group NAME`
//! blocks that use it, to a uvs group (`config::group`). The members are read as
//! check_data.c's `alloc_vsg_entry` reads them: `IP [PORT]` (no port or 0: port 0),
//! `IP-N PORT` (N the last octet, in decimal, or the last hextet of an IPv6 address, in
//! hex), `IP-IP PORT`, `IP/MASK PORT`, `fwmark N [inet|inet6]`; an entry keepalived
//! skips is reported and left out, as keepalived leaves it. As ipvswrapper.c's
//! `ipvs_group_cmd` makes IPVS services, the address members come first, each range
//! address by address, then the marks; every address member takes the virtual
//! server's `protocol`, every mark its own family, else the group's. keepalived reads
//! the whole file before it links groups to virtual servers (ipwrapper.c's
//! `link_vsg_to_vs`), so a group may come before or after the blocks that use it.
//! The importer (`super`) calls it.

use std::collections::HashMap;
use std::net::IpAddr;

use super::lexer::{Node, Pos};
use super::{Importing, others, skip};
use crate::config::ServiceSpec;
use crate::config::group::{self, MAX_MEMBERS, Written};
use crate::table::{Family, ServiceKey};

/// A `virtual_server_group` as keepalived keeps it: its address members expanded, in
/// the file's order, then its marks with the family each names.
#[derive(Debug, Default)]
pub struct VsGroup {
    pub addrs: Vec<(IpAddr, u16)>,
    pub marks: Vec<(u32, Option<Family>, Pos)>,
}

impl VsGroup {
    fn len(&self) -> usize {
        self.addrs.len() + self.marks.len()
    }
}

/// The groups by name (the first of a name: keepalived finds the first) and how many
/// virtual servers have used each so far.
#[derive(Default)]
pub struct Groups {
    pub by_name: HashMap<String, VsGroup>,
    uses: HashMap<String, usize>,
}

/// Reads a `virtual_server_group` block into `groups`.
pub fn read(n: &Node, groups: &mut Groups, im: &mut Importing) {
    let name = n.arg(1).to_string();
    if name.is_empty() {
        skip(im, &n.pos, "virtual_server_group without a name; not taken");
        return;
    }
    if groups.by_name.contains_key(&name) {
        others(
            im,
            &n.pos,
            format!(
                "virtual_server_group {name}: defined twice; keepalived uses the first, and so does uvs"
            ),
        );
        return;
    }
    let mut g = VsGroup::default();
    for e in n.children() {
        entry(e, &name, &mut g, im);
    }
    if g.len() == 0 {
        // check_parser.c's vsg_handler: "has no entries - removing".
        others(
            im,
            &n.pos,
            format!(
                "virtual_server_group {name}: no entries; keepalived removes it, and so does uvs"
            ),
        );
        return;
    }
    groups.by_name.insert(name, g);
}

/// The last octet (IPv4) or hextet (IPv6) of `ip`, and `ip` with it set to `last`.
fn last_part(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(a) => u32::from(a.octets()[3]),
        IpAddr::V6(a) => u32::from(a.segments()[7]),
    }
}

fn with_last(ip: IpAddr, last: u32) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let mut o = a.octets();
            o[3] = last as u8;
            IpAddr::from(o)
        }
        IpAddr::V6(a) => {
            let mut s = a.segments();
            s[7] = last as u16;
            IpAddr::from(s)
        }
    }
}

/// Whether `a` and `b` differ at most in their last octet or hextet: the part
/// keepalived steps through (ipvswrapper.c's `ipvs_group_range_cmd`).
fn same_but_last(a: IpAddr, b: IpAddr) -> bool {
    with_last(a, 0) == with_last(b, 0)
}

/// One line of a `virtual_server_group`.
fn entry(e: &Node, name: &str, g: &mut VsGroup, im: &mut Importing) {
    let line = e.words.join(" ");
    let what = format!("virtual_server_group {name}: {line}");
    let left_out = |im: &mut Importing, why: &str| {
        others(
            im,
            &e.pos,
            format!("{what}: {why}; keepalived skips the entry, and so does uvs"),
        );
    };
    let room = MAX_MEMBERS.saturating_sub(g.len());
    if e.keyword() == "fwmark" {
        let family = match e.arg(2) {
            "" => None,
            "inet" => Some(Family::Inet),
            "inet6" => Some(Family::Inet6),
            _ => return left_out(im, "not a family (inet or inet6)"),
        };
        match e.arg(1).parse::<u32>() {
            Ok(0) => skip(
                im,
                &e.pos,
                format!("{what}: IPVS takes firewall marks from 1; not taken"),
            ),
            Ok(_) if room == 0 => too_many(e, &what, im),
            Ok(mark) => g.marks.push((mark, family, e.pos.clone())),
            Err(_) => left_out(im, "not a firewall mark"),
        }
        return;
    }
    let port = match e.arg(1) {
        p if p.bytes().all(|b| b == b'0') => 0,
        p => match p.parse::<u16>() {
            Ok(port) => port,
            Err(_) => return left_out(im, "not a port"),
        },
    };
    let word = e.keyword();
    let addrs: Vec<IpAddr> = if let Some((ip, mask)) = word.split_once('/') {
        let Ok(ip) = ip.parse::<IpAddr>() else {
            return left_out(im, "not a numeric address");
        };
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        let Some(mask) = mask.parse::<u32>().ok().filter(|m| (1..=bits).contains(m)) else {
            return left_out(im, "not a netmask");
        };
        let host = bits - mask;
        if host > 8 {
            return skip(
                im,
                &e.pos,
                format!("{what}: a range of more than {MAX_MEMBERS} addresses; not taken"),
            );
        }
        let first = last_part(ip);
        if first & ((1 << host) - 1) != 0 {
            return left_out(im, "address bits under the mask are set");
        }
        (first..=first + ((1 << host) - 1))
            .map(|l| with_last(ip, l))
            .collect()
    } else if let Some((ip, end)) = word.split_once('-') {
        let Ok(ip) = ip.parse::<IpAddr>() else {
            return left_out(im, "not a numeric address");
        };
        let whole_end = if ip.is_ipv4() {
            end.contains('.')
        } else {
            end.contains(':')
        };
        let last = if whole_end {
            let Ok(end) = end.parse::<IpAddr>() else {
                return left_out(im, "not a range end");
            };
            if end.is_ipv4() != ip.is_ipv4() {
                return left_out(im, "the range's ends are of two families");
            }
            let order = match (ip, end) {
                (IpAddr::V4(a), IpAddr::V4(b)) => a.cmp(&b),
                (IpAddr::V6(a), IpAddr::V6(b)) => a.cmp(&b),
                _ => std::cmp::Ordering::Equal,
            };
            if order == std::cmp::Ordering::Greater {
                return left_out(im, "the range ends before it starts");
            }
            if !same_but_last(ip, end) {
                return skip(
                    im,
                    &e.pos,
                    format!(
                        "{what}: keepalived steps through the last {} only, and this range goes beyond it; not taken",
                        if ip.is_ipv4() { "octet" } else { "hextet" }
                    ),
                );
            }
            last_part(end)
        } else {
            let (radix, max) = if ip.is_ipv4() {
                (10, 255)
            } else {
                (16, 0xffff)
            };
            let Some(n) = u32::from_str_radix(end, radix).ok().filter(|n| *n <= max) else {
                return left_out(im, "not a range end (too large, or not a number)");
            };
            if last_part(ip) >= n {
                return left_out(im, "the range's end is not after its start");
            }
            n
        };
        let first = last_part(ip);
        if last - first >= MAX_MEMBERS as u32 {
            return skip(
                im,
                &e.pos,
                format!("{what}: a range of more than {MAX_MEMBERS} addresses; not taken"),
            );
        }
        (first..=last).map(|l| with_last(ip, l)).collect()
    } else {
        match word.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => return left_out(im, "not a numeric address"),
        }
    };
    if let Some(why) = addrs
        .iter()
        .find_map(|a| super::super::v4_mapped_vip(a, port))
    {
        return skip(im, &e.pos, format!("{what}: {why}; not taken"));
    }
    if addrs.len() > room {
        return too_many(e, &what, im);
    }
    g.addrs.extend(addrs.into_iter().map(|a| (a, port)));
}

fn too_many(e: &Node, what: &str, im: &mut Importing) {
    skip(
        im,
        &e.pos,
        format!("{what}: a group makes at most {MAX_MEMBERS} virtual services in uvs; not taken"),
    );
}

/// The members a `virtual_server group NAME` block makes, in keepalived's order, with
/// `first` (the lead's key, made by the importer from the group's first member), and
/// the name the uvs group takes: NAME, or `NAME (2)` and on for its second and later
/// users. None (reported) when the group's addresses are of two families.
pub fn members(
    n: &Node,
    g: &VsGroup,
    first: ServiceKey,
    groups: &mut Groups,
    im: &mut Importing,
) -> Option<(String, Vec<ServiceKey>)> {
    let name = n.arg(2);
    let families: Vec<Family> =
        g.addrs
            .iter()
            .map(|(a, _)| Family::of(a))
            .fold(Vec::new(), |mut f, x| {
                if !f.contains(&x) {
                    f.push(x);
                }
                f
            });
    if families.len() > 1 {
        skip(
            im,
            &n.pos,
            format!(
                "virtual_server group {name}: IPv4 and IPv6 members; a uvs group is of one family, as its real servers are; not taken"
            ),
        );
        return None;
    }
    let family = first.family();
    let mut keys = Vec::new();
    for (addr, port) in &g.addrs {
        if let ServiceKey::Inet { protocol, .. } = first {
            keys.push(ServiceKey::Inet {
                protocol,
                addr: *addr,
                port: *port,
            });
        }
    }
    for (mark, own, pos) in &g.marks {
        if own.is_some_and(|f| f != family) {
            skip(
                im,
                pos,
                format!(
                    "virtual_server_group {name}: fwmark {mark}: of another family than the group's other members; a uvs group is of one family; not taken"
                ),
            );
            continue;
        }
        keys.push(ServiceKey::Fwmark {
            mark: *mark,
            family,
        });
    }
    let used = groups.uses.entry(name.to_string()).or_insert(0);
    *used += 1;
    let called = match *used {
        1 => name.to_string(),
        n => format!("{name} ({n})"),
    };
    Some((called, keys))
}

/// `template` (made for the group's first member) as one service per member of
/// `keys`; a member whose real servers meet at one port (a DR or TUN server takes the
/// member's port) is reported at `n` and left out.
pub fn expand(
    n: &Node,
    template: &ServiceSpec,
    name: &str,
    keys: &[ServiceKey],
    im: &mut Importing,
) -> Vec<ServiceSpec> {
    let written: Vec<Written> = template
        .servers
        .iter()
        .map(|s| Written {
            server: s.clone(),
            portless: false,
        })
        .collect();
    let mut kept = Vec::new();
    for key in keys {
        let servers = group::servers_of(&written, key);
        match group::repeated(&servers) {
            None => kept.push(*key),
            Some(i) => skip(
                im,
                &n.pos,
                format!(
                    "virtual_server group {}: {key}: real server {} is listed twice there (a DR or TUN real server takes the member's port); the member is not taken",
                    n.arg(2),
                    servers[i].key()
                ),
            ),
        }
    }
    group::expand(template, &written, name, &kept)
}

#[cfg(test)]
mod tests {
    use super::super::import;

    /// The ranges' edges as keepalived reads them, and uvs's cap.
    #[test]
    fn range_edges_are_read_as_keepalived_reads_them() {
        let text = r#"virtual_server_group g {
  10.0.0.5-5 80
  10.0.0.250-10.0.1.2 80
  10.0.0.8/29 80
  10.0.0.9/29 80
  10.0.0.0/23 80
  2001:db8::1-1ff 80
  10.0.0.1 00
  10.0.0.7-10.0.0.6 80
  10.0.0.1 0
  fwmark x
  fwmark 3 inet7
  fwmark 0
}
virtual_server group g {
  protocol TCP
  real_server 10.0.1.1 8080
}
"#;
        let imported = import(text, None).unwrap();
        assert_eq!(
            imported.skipped_lines(),
            [
                (
                    2,
                    "virtual_server_group g: 10.0.0.5-5 80: the range's end is not after its start; keepalived skips the entry, and so does uvs"
                ),
                (
                    3,
                    "virtual_server_group g: 10.0.0.250-10.0.1.2 80: keepalived steps through the last octet only, and this range goes beyond it; not taken"
                ),
                (
                    5,
                    "virtual_server_group g: 10.0.0.9/29 80: address bits under the mask are set; keepalived skips the entry, and so does uvs"
                ),
                (
                    6,
                    "virtual_server_group g: 10.0.0.0/23 80: a range of more than 256 addresses; not taken"
                ),
                (
                    7,
                    "virtual_server_group g: 2001:db8::1-1ff 80: a range of more than 256 addresses; not taken"
                ),
                (
                    9,
                    "virtual_server_group g: 10.0.0.7-10.0.0.6 80: the range ends before it starts; keepalived skips the entry, and so does uvs"
                ),
                (
                    11,
                    "virtual_server_group g: fwmark x: not a firewall mark; keepalived skips the entry, and so does uvs"
                ),
                (
                    12,
                    "virtual_server_group g: fwmark 3 inet7: not a family (inet or inet6); keepalived skips the entry, and so does uvs"
                ),
                (
                    13,
                    "virtual_server_group g: fwmark 0: IPVS takes firewall marks from 1; not taken"
                ),
                (
                    15,
                    "virtual_server group g: tcp 10.0.0.1:0 is made twice (by this group or another virtual server); the second is not taken"
                ),
            ]
        );
        let members: Vec<String> = imported
            .config
            .services
            .iter()
            .map(|s| s.service.key.to_string())
            .collect();
        let mut wanted: Vec<String> = (8..=15).map(|l| format!("tcp 10.0.0.{l}:80")).collect();
        wanted.push("tcp 10.0.0.1:0".to_string());
        assert_eq!(
            members, wanted,
            "the /29, then port 0 (\"00\"; again without a port)"
        );
        let full = "virtual_server_group g {\n".to_string()
            + &(0..=255)
                .map(|i| format!("  10.0.{i}.1 80\n"))
                .collect::<String>()
            + "  10.1.0.1 80\n}\nvirtual_server group g {\n  protocol TCP\n  real_server 10.2.0.1 80\n}\n";
        let imported = import(&full, None).unwrap();
        assert_eq!(imported.config.services.len(), 256);
        assert_eq!(
            imported.skipped_lines(),
            [(
                258,
                "virtual_server_group g: 10.1.0.1 80: a group makes at most 256 virtual services in uvs; not taken"
            )]
        );
    }
}
