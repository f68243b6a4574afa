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
    for a in item.array(expected) {
        let Some(s) = a.str(expected) else {
            continue;
        };
        match parse_range(s) {
            Ok(r) => {
                let n = r.count().unwrap_or(u32::MAX);
                total = total.saturating_add(n);
                out.push(r);
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
    out
}

/// "ADDR" or "FIRST-LAST" of one family, FIRST ≤ LAST.
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
    if range.first.is_unspecified() || range.first.is_multicast() {
        return Err("not an address to connect from".into());
    }
    Ok(range)
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
    use std::path::Path;

    fn problems(text: &str) -> Vec<String> {
        match super::super::schema::parse(text, Path::new("t.toml")) {
            Ok(_) => Vec::new(),
            Err(p) => p.to_string().lines().map(str::to_string).collect(),
        }
    }

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
