//! The file's keys of where uvs's connections to real servers come from
//! (`table::source`): `source` (addresses and inclusive ranges, IPv4 and IPv6) and
//! `source_ports` (a range of ports uvs picks itself), alike in `[global]` (the default
//! of every service that says neither) and in a `[[service]]`. Called by the schema
//! (`schema::parse`) for each of those tables and by the renderer; each bad value is
//! reported where it is, naming the key and what it should be.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use super::reader::{Item, Table};
use crate::table::source::{AddrRange, MAX_SOURCE_ADDRESSES, PortRange, Source, SourceConfig};

/// What a table says of its sources: None when it has neither key (a service then
/// takes `[global]`'s), Some(None) when it says there are none (`source = []`), else
/// the setting.
pub type Said = Option<Option<Arc<Source>>>;

/// `source` and `source_ports` of `t`.
pub fn read_source(t: &Table<'_, '_>) -> Said {
    let addresses = t.get("source").map(|item| read_addresses(&item));
    let ports = t.get("source_ports").and_then(|item| read_ports(&item));
    if addresses.is_none() && ports.is_none() {
        // A `source_ports` that was wrong is reported; it says nothing more.
        return None;
    }
    let config = SourceConfig {
        addresses: addresses.unwrap_or_default(),
        ports: ports.flatten(),
    };
    Some((!config.is_empty()).then(|| Arc::new(Source::new(config))))
}

/// `source = ["127.0.0.2", "127.0.0.10-127.0.0.19", "::1"]`.
fn read_addresses(item: &Item<'_, '_>) -> Vec<AddrRange> {
    let expected = "an array of addresses and ranges, as [\"10.0.0.2\", \
                    \"10.0.0.10-10.0.0.19\", \"2001:db8::2\"]";
    let mut total: u32 = 0;
    let mut out = Vec::new();
    let mut read = Vec::new();
    for a in item.array(expected) {
        let Some(s) = a.str(expected) else {
            continue;
        };
        match parse_range(s) {
            Ok(r) => {
                let n = r.count().unwrap_or(u32::MAX);
                total = total.saturating_add(n);
                out.push(r);
                read.push((r, s, a));
            }
            Err(why) => a.problem(format!("{s:?}: {why}")),
        }
    }
    if total > MAX_SOURCE_ADDRESSES {
        item.problem(format!(
            "{} source addresses, over the limit of {MAX_SOURCE_ADDRESSES}",
            if total == u32::MAX {
                "more than 4294967294".to_string()
            } else {
                total.to_string()
            }
        ));
        return Vec::new();
    }
    // An address twice would be taken twice as often, and a sign of a typing error:
    // each range against those before it in the file, in the order of their first
    // addresses (n log n, however long the list).
    let mut order: Vec<usize> = (0..read.len()).collect();
    order.sort_by_key(|&i| (read[i].0.first.is_ipv6(), bits(read[i].0.first), i));
    let mut reach: Option<usize> = None; // the range reaching farthest so far
    for &i in &order {
        let r = read[i].0;
        match reach {
            Some(j) if read[j].0.first.is_ipv6() == r.first.is_ipv6() => {
                if bits(r.first) <= bits(read[j].0.last) {
                    // Said at the one later in the file; `r.first` is in both.
                    let (later, earlier) = (i.max(j), i.min(j));
                    read[later].2.problem(format!(
                        "{:?}: {} is already in the list, in {:?}",
                        read[later].1, r.first, read[earlier].1
                    ));
                    return Vec::new();
                }
                if bits(r.last) > bits(read[j].0.last) {
                    reach = Some(i);
                }
            }
            _ => reach = Some(i),
        }
    }
    out
}

/// "ADDR" or "FIRST-LAST" of one family, FIRST ≤ LAST, each an address to connect
/// from: not the unspecified address, a multicast one, IPv4's broadcast, nor an
/// IPv4-mapped IPv6 one (the IPv4 address is to be written), and no such address in
/// between.
fn parse_range(s: &str) -> Result<AddrRange, String> {
    let addr = |a: &str| {
        a.trim()
            .parse::<IpAddr>()
            .map_err(|_| format!("{a:?} is not an IP address"))
    };
    let range = match s.split_once('-') {
        None => {
            let a = addr(s)?;
            AddrRange { first: a, last: a }
        }
        Some((a, b)) => AddrRange {
            first: addr(a)?,
            last: addr(b)?,
        },
    };
    if range.first.is_ipv4() != range.last.is_ipv4() {
        return Err("a range of two address families".into());
    }
    if range.count().is_none() {
        return Err("a reversed range (the first address is above the last)".into());
    }
    for a in [range.first, range.last] {
        if let IpAddr::V6(v6) = a
            && let Some(v4) = v6.to_ipv4_mapped()
        {
            return Err(format!(
                "{a} is an IPv4-mapped IPv6 address: write the IPv4 address, {v4}"
            ));
        }
        let what = match a {
            _ if a.is_unspecified() => "the unspecified address",
            _ if a.is_multicast() => "a multicast address",
            IpAddr::V4(v4) if v4.is_broadcast() => "the broadcast address",
            _ => continue,
        };
        return Err(format!("{a} is {what}: not an address to connect from"));
    }
    // Within: a block of such addresses that neither end is in.
    let (first, last) = (bits(range.first), bits(range.last));
    let blocks: &[(u128, u128, &str)] = if range.first.is_ipv4() {
        &[(0xe000_0000, 0xefff_ffff, "multicast addresses")]
    } else {
        &[
            (0xff00 << 112, u128::MAX, "multicast addresses"),
            (
                0xffff << 32,
                (0xffff << 32) | 0xffff_ffff,
                "IPv4-mapped IPv6 addresses",
            ),
        ]
    };
    for &(low, high, what) in blocks {
        if first <= high && last >= low {
            return Err(format!("holds {what}: not addresses to connect from"));
        }
    }
    Ok(range)
}

/// An address as a number, IPv4 in the low 32 bits.
fn bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// `source_ports = "20000-29999"` (or one port, as a string or an integer): Some(None)
/// when the value was wrong (reported).
fn read_ports(item: &Item<'_, '_>) -> Option<Option<PortRange>> {
    let expected = "a range of ports, as \"20000-29999\"";
    if let toml::de::DeValue::Integer(_) = item.value {
        let port = item.integer(1..=65535)? as u16;
        return Some(Some(PortRange {
            low: port,
            high: port,
        }));
    }
    let s = item.str(expected)?;
    let port = |p: &str| p.trim().parse::<u16>().ok().filter(|p| *p > 0);
    let (low, high) = match s.split_once('-') {
        None => (port(s), port(s)),
        Some((a, b)) => (port(a), port(b)),
    };
    match (low, high) {
        (Some(low), Some(high)) if low <= high => Some(Some(PortRange { low, high })),
        (Some(_), Some(_)) => {
            item.problem(format!(
                "{s:?}: a reversed range (the first port is above the last)"
            ));
            Some(None)
        }
        _ => {
            item.problem(format!("{s:?}: ports are 1 to 65535; {expected}"));
            Some(None)
        }
    }
}

/// A warning for `source` or `source_ports` in a service that carries no TCP: they
/// bind TCP connects to real servers only; UDP flows leave their source to the kernel.
pub fn note_udp(t: &Table<'_, '_>, notes: &super::reader::Report<'_>) {
    for key in ["source", "source_ports"] {
        if let Some(item) = t.get(key) {
            notes.at(
                &item.span,
                &item.key,
                "does nothing here: it binds TCP connects to real servers, and this \
                 service carries UDP only",
            );
        }
    }
}

/// Warnings for a `source_ports` of `t` (`ports`, as read) that other sockets may
/// well hold: every port; one the service listens on (`listen`: its TCP listen ports);
/// one in `net.ipv4.ip_local_port_range`, the kernel's picks for every other connect
/// (read now, from /proc). A port held is skipped at connect, a try lost; the README
/// advises a range of its own.
pub fn note_ports(
    t: &Table<'_, '_>,
    ports: Option<PortRange>,
    listen: &[u16],
    notes: &super::reader::Report<'_>,
) {
    let (Some(p), Some(item)) = (ports, t.get("source_ports")) else {
        return;
    };
    let say = |message: String| notes.at(&item.span, &item.key, message);
    if (p.low, p.high) == (1, 65535) {
        say(format!(
            "{p}: every port, those services listen on and the kernel's own among them; \
             best a range of their own, as \"20000-29999\""
        ));
        return;
    }
    let mut own: Vec<u16> = listen
        .iter()
        .copied()
        .filter(|l| (p.low..=p.high).contains(l))
        .collect();
    own.sort_unstable();
    own.dedup();
    if !own.is_empty() {
        let list: Vec<String> = own.iter().map(u16::to_string).collect();
        say(format!(
            "{p} holds {}, where this service listens: those ports are skipped at \
             connect; best outside them",
            list.join(", ")
        ));
    }
    if let Some((low, high)) = local_port_range()
        && p.low <= high
        && p.high >= low
    {
        say(format!(
            "{p} overlaps net.ipv4.ip_local_port_range ({low}-{high}), the kernel's own \
             ports for every other connect: a port it gave away is skipped at connect; \
             best outside it"
        ));
    }
}

/// `net.ipv4.ip_local_port_range` of this host (of the reader's network namespace);
/// None when it cannot be read.
pub fn local_port_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut numbers = text.split_whitespace().map(|n| n.parse::<u16>().ok());
    Some((numbers.next()??, numbers.next()??))
}

/// The lines of `source`, as `read_source` reads them back (nothing when None).
pub fn render_source(out: &mut String, source: Option<&Source>) {
    let Some(source) = source else {
        return;
    };
    let c = source.config();
    if !c.addresses.is_empty() {
        let list: Vec<String> = c.addresses.iter().map(|r| format!("\"{r}\"")).collect();
        let _ = writeln!(out, "source = [{}]", list.join(", "));
    }
    if let Some(p) = c.ports {
        let _ = writeln!(out, "source_ports = \"{p}\"");
    }
}

/// A service's lines when `[global]` has `global`: its own when they differ, and
/// `source = []` when it has none against a global one.
pub fn render_service_source(
    out: &mut String,
    own: Option<&Arc<Source>>,
    global: Option<&Arc<Source>>,
) {
    match (own, global) {
        (a, b) if a == b => {}
        (None, Some(_)) => out.push_str("source = []\n"),
        (own, _) => render_source(out, own.map(|s| &**s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::problems;
    use std::path::Path;

    #[test]
    fn global_sources_are_the_default_and_round_trip() {
        let text = r#"[global]
source = ["127.0.0.2", "127.0.0.10-127.0.0.19", "::1"]
source_ports = "20000-29999"

[[service]]
tcp = "127.0.0.1:80"

[[service]]
tcp = "127.0.0.1:81"
source = []

[[service]]
tcp = "127.0.0.1:82"
source = ["127.0.0.3"]

[[service]]
tcp = "127.0.0.1:83"
source_ports = 30000
"#;
        let config = super::super::schema::parse(text, Path::new("t.toml")).unwrap();
        let of = |i: usize| config.services[i].service.options.source.clone();
        assert_eq!(of(0), config.global.source);
        let global = of(0).unwrap();
        assert_eq!(global.config().addresses.len(), 3);
        assert_eq!(
            global.config().ports,
            Some(PortRange {
                low: 20000,
                high: 29999
            })
        );
        assert_eq!(of(1), None);
        let own = of(2).unwrap();
        assert_eq!(
            own.config().ports,
            None,
            "a service's own keys take nothing from [global]"
        );
        assert_eq!(own.config().addresses[0].to_string(), "127.0.0.3");
        let ports_only = of(3).unwrap();
        assert!(ports_only.config().addresses.is_empty());
        let rendered = super::super::render::render(&config);
        assert!(rendered.contains("source = []\n"), "{rendered}");
        assert_eq!(rendered.matches("source_ports").count(), 2, "{rendered}");
        let back = super::super::schema::parse(&rendered, Path::new("t.toml")).unwrap();
        assert_eq!(back, config);
        // uvsadm -E keeps it (a file setting).
        let o = &config.services[0].service.options;
        let kept = crate::table::ServiceOptions::default().from_command(o);
        assert_eq!(kept.source, o.source);
    }

    #[test]
    fn a_udp_service_is_warned_that_sources_do_nothing_there() {
        let text = r#"[[service]]
udp = "127.0.0.1:53"
source = ["127.0.0.2"]
"#;
        assert_eq!(
            super::super::schema::warnings(text, Path::new("t.toml")),
            [
                "t.toml:3:10: warning: service[0].source: does nothing here: it binds TCP connects to real servers, and this service carries UDP only"
            ]
        );
    }

    #[test]
    fn bad_sources_are_named_where_they_are() {
        let text = r#"[[service]]
tcp = "127.0.0.1:80"
source = ["127.0.0.19-127.0.0.10", "127.0.0.1-::1", "localhost", 7]
source_ports = "30000-20000"

[[service]]
tcp = "127.0.0.1:81"
source = ["10.0.0.0-10.1.0.0"]
source_ports = "0-70000"

[[service]]
tcp = "127.0.0.1:82"
source_ports = 65536
"#;
        assert_eq!(
            problems(text),
            [
                "t.toml:3:11: service[0].source[0]: \"127.0.0.19-127.0.0.10\": a reversed range (the first address is above the last)",
                "t.toml:3:36: service[0].source[1]: \"127.0.0.1-::1\": a range of two address families",
                "t.toml:3:53: service[0].source[2]: \"localhost\": \"localhost\" is not an IP address",
                "t.toml:3:66: service[0].source[3]: expected an array of addresses and ranges, as [\"10.0.0.2\", \"10.0.0.10-10.0.0.19\", \"2001:db8::2\"], found the integer 7",
                "t.toml:4:16: service[0].source_ports: \"30000-20000\": a reversed range (the first port is above the last)",
                "t.toml:8:10: service[1].source: 65537 source addresses, over the limit of 65536",
                "t.toml:9:16: service[1].source_ports: \"0-70000\": ports are 1 to 65535; a range of ports, as \"20000-29999\"",
                "t.toml:13:16: service[2].source_ports: expected an integer from 1 to 65535, found the integer 65536",
            ]
        );
    }

    #[test]
    fn addresses_not_to_connect_from_are_refused_at_either_end_and_within() {
        let text = r#"[[service]]
tcp = "127.0.0.1:80"
source = ["223.0.0.0-240.0.0.0", "223.255.255.250-224.0.0.1", "255.255.255.255", "::ffff:127.0.0.2", "::fffe:0:1-::1:0:0:1", "0.0.0.0-127.0.0.1"]

[[service]]
tcp = "127.0.0.1:81"
source = ["127.0.0.2-127.0.0.5", "127.0.0.9", "127.0.0.4"]
"#;
        assert_eq!(
            problems(text),
            [
                "t.toml:3:11: service[0].source[0]: \"223.0.0.0-240.0.0.0\": holds multicast addresses: not addresses to connect from",
                "t.toml:3:34: service[0].source[1]: \"223.255.255.250-224.0.0.1\": 224.0.0.1 is a multicast address: not an address to connect from",
                "t.toml:3:63: service[0].source[2]: \"255.255.255.255\": 255.255.255.255 is the broadcast address: not an address to connect from",
                "t.toml:3:82: service[0].source[3]: \"::ffff:127.0.0.2\": ::ffff:127.0.0.2 is an IPv4-mapped IPv6 address: write the IPv4 address, 127.0.0.2",
                "t.toml:3:102: service[0].source[4]: \"::fffe:0:1-::1:0:0:1\": holds IPv4-mapped IPv6 addresses: not addresses to connect from",
                "t.toml:3:126: service[0].source[5]: \"0.0.0.0-127.0.0.1\": 0.0.0.0 is the unspecified address: not an address to connect from",
                "t.toml:7:47: service[1].source[2]: \"127.0.0.4\": 127.0.0.4 is already in the list, in \"127.0.0.2-127.0.0.5\"",
            ]
        );
    }

    /// `source_ports` over every port, over the service's own listen port, or in the
    /// kernel's ip_local_port_range is warned of (not refused).
    #[test]
    fn source_ports_other_sockets_hold_are_warned_of() {
        let mut text = r#"[global]
source_ports = "1-65535"

[[service]]
tcp = "127.0.0.1:1000"
source_ports = "1000-1001"
"#
        .to_string();
        let mut expected = vec![
            "t.toml:2:16: warning: global.source_ports: 1-65535: every port, those services listen on and the kernel's own among them; best a range of their own, as \"20000-29999\"".to_string(),
            "t.toml:6:16: warning: service[0].source_ports: 1000-1001 holds 1000, where this service listens: those ports are skipped at connect; best outside them".to_string(),
        ];
        if let Some((low, high)) = local_port_range() {
            assert!(
                low > 1001,
                "this host's ip_local_port_range starts at {low}"
            );
            text.push_str(&format!(
                "\n[[service]]\ntcp = \"127.0.0.1:81\"\nsource_ports = \"{low}-{low}\"\n"
            ));
            expected.push(format!(
                "t.toml:10:16: warning: service[1].source_ports: {low}-{low} overlaps net.ipv4.ip_local_port_range ({low}-{high}), the kernel's own ports for every other connect: a port it gave away is skipped at connect; best outside it"
            ));
        }
        assert_eq!(
            super::super::schema::warnings(&text, Path::new("t.toml")),
            expected
        );
    }

    #[test]
    fn ranges_are_read_and_refused_as_the_file_says() {
        let r = parse_range("127.0.0.10-127.0.0.19").unwrap();
        assert_eq!(r.count(), Some(10));
        assert_eq!(r.to_string(), "127.0.0.10-127.0.0.19");
        assert_eq!(parse_range("::1").unwrap().to_string(), "::1");
        assert!(
            parse_range("127.0.0.19-127.0.0.10")
                .unwrap_err()
                .contains("reversed")
        );
        assert!(
            parse_range("127.0.0.1-::1")
                .unwrap_err()
                .contains("two address")
        );
        assert!(
            parse_range("127.0.0.300")
                .unwrap_err()
                .contains("not an IP")
        );
        assert!(parse_range("0.0.0.0").unwrap_err().contains("connect from"));
    }
}
