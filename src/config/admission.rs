//! The file's keys of who may connect (`table::admission`): `allow`, `deny`,
//! `deny_action`, `close_denied` and `limits`, alike in `[global]` (every service) and
//! in a `[[service]]`, and a service's `accept_proxy`, `accept_proxy_timeout`,
//! `accept_proxy_from` and `proxy_protocol_tlvs`. Called by the schema (`schema::parse`) for each of those
//! tables; each bad value is reported where it is, naming the key and what it should
//! be.

use std::sync::Arc;

use super::reader::{Item, Table};
use crate::table::admission::{AccessList, Admission, Cidr, ClientLimits, DenyAction};
use crate::table::{AcceptProxy, ProxyProtocol, ProxyTlvs, ServiceOptions};

/// The most prefixes one `allow` or `deny` list may hold: a list is compiled for the
/// data plane at each reload, and a file is 16 MiB at most anyway.
pub const MAX_PREFIXES: usize = 1_000_000;

/// The highest per-client limit (`connections_per_source`, `new_per_second_per_source`,
/// `flows_per_source`): 2^24, as `max_sources`; more is no limit at all.
pub const MAX_LIMIT: u32 = 16_777_216;

/// The longest `accept_proxy_timeout`, in seconds.
pub const MAX_ACCEPT_PROXY_SECS: u64 = 60;

/// `allow`, `deny`, `deny_action`, `close_denied` and `limits` of `t`.
pub fn read_admission(t: &Table<'_, '_>) -> Admission {
    let allow = t.get("allow").map(|item| {
        // `allow = []` would read as no list: everyone admitted, the opposite of what
        // it looks like.
        if matches!(item.value, toml::de::DeValue::Array(a) if a.is_empty()) {
            item.problem(
                "an empty allow list would admit everyone (no list); to refuse everyone \
                 write deny = [\"0.0.0.0/0\", \"::/0\"], or remove the key",
            );
        }
        read_prefixes(&item)
    });
    let deny = t.get("deny").map(|item| read_prefixes(&item));
    let access = match (allow, deny) {
        (None, None) => None,
        (allow, deny) => Some(Arc::new(AccessList::new(
            allow.unwrap_or_default(),
            deny.unwrap_or_default(),
        ))),
    };
    let deny_action = t
        .get("deny_action")
        .and_then(|item| {
            item.parsed("\"reset\" or \"drop\"", |s| match s {
                "reset" => Some(DenyAction::Reset),
                "drop" => Some(DenyAction::Drop),
                _ => None,
            })
        })
        .unwrap_or_default();
    let close_denied = t
        .get("close_denied")
        .and_then(|item| item.bool())
        .unwrap_or(false);
    let limits = t.get("limits").and_then(|item| read_limits(&item));
    Admission {
        access,
        deny_action,
        close_denied,
        limits,
    }
}

/// An array of CIDR prefixes ("10.0.0.0/8", "2001:db8::/32", or a bare address).
fn read_prefixes(item: &Item<'_, '_>) -> Vec<Cidr> {
    let expected = "an array of CIDR prefixes, as [\"10.0.0.0/8\", \"2001:db8::/32\"]";
    let items = item.array(expected);
    if items.len() > MAX_PREFIXES {
        item.problem(format!(
            "{} prefixes, over the limit of {MAX_PREFIXES}",
            items.len()
        ));
        return Vec::new();
    }
    items
        .iter()
        .filter_map(|p| {
            let s = p.str("a CIDR prefix, as \"10.0.0.0/8\"")?;
            match s.parse::<Cidr>() {
                Ok(c) => Some(c),
                Err(e) => {
                    p.problem(format!("{s:?} is not a CIDR prefix: {e}"));
                    None
                }
            }
        })
        .collect()
}

/// `limits = { ... }`: see `ClientLimits`.
fn read_limits(item: &Item<'_, '_>) -> Option<ClientLimits> {
    let t = item.table()?;
    let mut limits = ClientLimits::default();
    // Whether a limit was wrong (reported on its own, not again as no limit).
    let mut wrong = false;
    let mut count = |key: &str, into: &mut u32| {
        if let Some(item) = t.get(key) {
            match item.integer(0..=i64::from(MAX_LIMIT)) {
                Some(n) => *into = n as u32,
                None => wrong = true,
            }
        }
    };
    count("connections_per_source", &mut limits.connections_per_source);
    count(
        "new_per_second_per_source",
        &mut limits.new_per_second_per_source,
    );
    count("flows_per_source", &mut limits.flows_per_source);
    if let Some(n) = t.get("source_prefix_v4").and_then(|i| i.integer(0..=32)) {
        limits.source_prefix_v4 = n as u8;
    }
    if let Some(n) = t.get("source_prefix_v6").and_then(|i| i.integer(0..=128)) {
        limits.source_prefix_v6 = n as u8;
    }
    if let Some(n) = t.get("max_sources").and_then(|i| i.integer(1..=16_777_216)) {
        limits.max_sources = n as u32;
    }
    if limits.is_empty() {
        if !wrong {
            item.problem(
                "sets no limit: give connections_per_source, new_per_second_per_source or \
                 flows_per_source above 0",
            );
        }
        return None;
    }
    Some(limits)
}

/// What a service's admission keys say about its traffic, for [`note_admission`].
pub struct Carries {
    /// Whether it may take TCP connections (a TCP key, a fwmark, a group member).
    pub tcp: bool,
    /// Whether it may take UDP datagrams.
    pub udp: bool,
    /// Its address family when every key of it has an address of one family that
    /// takes clients of that family only (an IPv4 address, an IPv6 one that is not
    /// `::`, which may take IPv4 clients too); None else.
    pub family: Option<crate::table::Family>,
}

/// Warnings (`uvs check`) for a service's keys of who may connect that do nothing:
/// limits that count nothing of its protocol, a `deny_action` on datagrams (always
/// dropped), a header deadline without a header, an allow list with no prefix of the
/// service's family (every client refused), a prefix both allowed and denied.
pub fn note_admission(
    t: &Table<'_, '_>,
    options: &ServiceOptions,
    carries: &Carries,
    notes: &super::reader::Report<'_>,
) {
    let note = |key: &str, message: &str| {
        if let Some(item) = t.get(key) {
            notes.at(&item.span, &item.key, message);
        }
    };
    let admission = &options.admission;
    if let Some(limits) = &admission.limits {
        if !carries.tcp && limits.flows_per_source == 0 {
            note(
                "limits",
                "only flows_per_source applies to UDP: these limits count nothing here",
            );
        }
        if !carries.udp && limits.flows_per_source > 0 {
            note(
                "limits",
                "flows_per_source counts UDP flows: it does nothing on a TCP service",
            );
        }
    }
    if !carries.tcp && options.proxy_protocol_tlvs != ProxyTlvs::default() {
        note(
            "proxy_protocol_tlvs",
            "the header in front of a datagram carries no TLVs: they do nothing on a UDP \
             service",
        );
    }
    if !carries.tcp {
        note(
            "deny_action",
            "a refused datagram is always dropped: deny_action does nothing on a UDP service",
        );
    }
    if options.accept_proxy.is_none() {
        note(
            "accept_proxy_timeout",
            "without accept_proxy no header is awaited: the timeout does nothing",
        );
    } else if !carries.tcp {
        note(
            "accept_proxy_timeout",
            "a UDP service takes a header in every datagram, with no deadline: the timeout \
             does nothing",
        );
    }
    let Some(list) = &admission.access else {
        return;
    };
    if let Some(family) = carries.family
        && options.accept_proxy.is_none()
        && !list.allow().is_empty()
        && !list
            .allow()
            .iter()
            .any(|c| crate::table::Family::of(&c.addr()) == family)
    {
        note(
            "allow",
            &format!(
                "no prefix of the service's family ({}): every client is refused",
                match family {
                    crate::table::Family::Inet => "IPv4",
                    crate::table::Family::Inet6 => "IPv6",
                }
            ),
        );
    }
    let both: Vec<String> = list
        .allow()
        .iter()
        .filter(|c| list.deny().contains(c))
        .map(|c| c.to_string())
        .collect();
    if !both.is_empty() {
        note(
            "deny",
            &format!(
                "{} in allow too: deny wins a tie, the allow entry does nothing",
                both.join(", ")
            ),
        );
    }
}

/// A service's `accept_proxy`, `accept_proxy_timeout`, `accept_proxy_from` (prefixes as
/// `allow`'s, an allow-only list; an error without `accept_proxy`) and
/// `proxy_protocol_tlvs`, into `options` (whose `proxy_protocol` is read already).
pub fn read_accept_proxy(t: &Table<'_, '_>, options: &mut ServiceOptions) {
    if let Some(item) = t.get("accept_proxy") {
        options.accept_proxy = item.parsed("\"v1\", \"v2\" or \"any\"", |s| match s {
            "v1" => Some(AcceptProxy::V1),
            "v2" => Some(AcceptProxy::V2),
            "any" => Some(AcceptProxy::Any),
            _ => None,
        });
    }
    read_proxy_tlvs(t, options);
    if let Some(item) = t.get("accept_proxy_timeout")
        && let Some(d) = item.nonzero_duration(
            MAX_ACCEPT_PROXY_SECS,
            "a duration of at least 1ms and at most a minute",
        )
    {
        options.accept_proxy_timeout_ms = u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
    }
    if let Some(item) = t.get("accept_proxy_from") {
        let from = read_prefixes(&item);
        if options.accept_proxy.is_none() {
            item.problem(
                "needs accept_proxy: it says which peers may send the PROXY header the \
                 service takes",
            );
        } else if matches!(item.value, toml::de::DeValue::Array(a) if a.is_empty()) {
            item.problem(
                "is empty: no peer could send the header; leave the key out to take it from \
                 any peer",
            );
        } else if !from.is_empty() {
            options.accept_proxy_from = Some(Arc::new(AccessList::new(from, Vec::new())));
        }
    }
}

/// PROXY protocol v1 is text in a TCP stream: a UDP service (or a group with UDP
/// members, `udp`) sends and takes only v2, one header per datagram. "any" takes v2
/// there.
pub fn check_udp_proxy(t: &Table<'_, '_>, options: &ServiceOptions, udp: bool) {
    use crate::table::ProxyProtocol;
    if !udp {
        return;
    }
    if options.proxy_protocol == Some(ProxyProtocol::V1)
        && let Some(item) = t.get("proxy_protocol")
    {
        item.problem(
            "PROXY protocol v1 cannot be sent over UDP: only \"v2\" works over UDP (a \
             header in front of each datagram)",
        );
    }
    if options.accept_proxy == Some(AcceptProxy::V1)
        && let Some(item) = t.get("accept_proxy")
    {
        item.problem(
            "PROXY protocol v1 cannot be taken over UDP: only \"v2\" works over UDP (a \
             header at the front of each datagram; \"any\" means v2 there)",
        );
    }
}

/// A service's `proxy_protocol_tlvs` (uvs's own TLVs in the v2 header to its real
/// servers), into `options`; `proxy_protocol` must be read before: the key needs it to
/// be "v2".
fn read_proxy_tlvs(t: &Table<'_, '_>, options: &mut ServiceOptions) {
    let Some(item) = t.get("proxy_protocol_tlvs") else {
        return;
    };
    let mut tlvs = ProxyTlvs::default();
    let array = "an array of TLV names, as [\"unique_id\", \"service_name\"]";
    for entry in item.array(array) {
        if let Some(tlv) = entry.parsed("\"unique_id\" or \"service_name\"", |s| {
            ProxyTlvs::ALL
                .iter()
                .find(|(_, name)| *name == s)
                .map(|(tlv, _)| *tlv)
        }) {
            tlvs = tlvs.with(tlv);
        }
    }
    if options.proxy_protocol != Some(ProxyProtocol::V2) {
        item.problem("needs proxy_protocol = \"v2\": only a v2 header carries TLVs");
        return;
    }
    options.proxy_protocol_tlvs = tlvs;
}

/// The lines of `admission`'s keys, as `read_admission` reads them (nothing when it is
/// open); for the file writer (`render`).
pub fn render_admission(out: &mut String, admission: &Admission) {
    use std::fmt::Write as _;
    let prefixes = |list: &[Cidr]| {
        let items: Vec<String> = list.iter().map(|c| format!("\"{c}\"")).collect();
        format!("[{}]", items.join(", "))
    };
    if let Some(list) = &admission.access {
        if !list.allow().is_empty() {
            let _ = writeln!(out, "allow = {}", prefixes(list.allow()));
        }
        if !list.deny().is_empty() {
            let _ = writeln!(out, "deny = {}", prefixes(list.deny()));
        }
    }
    if admission.deny_action != DenyAction::default() {
        let _ = writeln!(out, "deny_action = \"{}\"", admission.deny_action.name());
    }
    if admission.close_denied {
        out.push_str("close_denied = true\n");
    }
    if let Some(l) = &admission.limits {
        let d = ClientLimits::default();
        let mut keys = Vec::new();
        for (name, n, default) in [
            ("connections_per_source", l.connections_per_source, 0),
            ("new_per_second_per_source", l.new_per_second_per_source, 0),
            ("flows_per_source", l.flows_per_source, 0),
            (
                "source_prefix_v4",
                u32::from(l.source_prefix_v4),
                u32::from(d.source_prefix_v4),
            ),
            (
                "source_prefix_v6",
                u32::from(l.source_prefix_v6),
                u32::from(d.source_prefix_v6),
            ),
            ("max_sources", l.max_sources, d.max_sources),
        ] {
            if n != default {
                keys.push(format!("{name} = {n}"));
            }
        }
        let _ = writeln!(out, "limits = {{ {} }}", keys.join(", "));
    }
}

/// The lines of a service's `accept_proxy`, `proxy_protocol_tlvs`,
/// `accept_proxy_timeout` and `accept_proxy_from`.
pub fn render_accept_proxy(out: &mut String, options: &ServiceOptions) {
    use std::fmt::Write as _;
    if let Some(version) = options.accept_proxy {
        let _ = writeln!(out, "accept_proxy = \"{}\"", version.name());
    }
    if !options.proxy_protocol_tlvs.is_empty() {
        let names: Vec<String> = options
            .proxy_protocol_tlvs
            .names()
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect();
        let _ = writeln!(out, "proxy_protocol_tlvs = [{}]", names.join(", "));
    }
    if options.accept_proxy_timeout_ms != 0 {
        let d = std::time::Duration::from_millis(u64::from(options.accept_proxy_timeout_ms));
        let _ = writeln!(
            out,
            "accept_proxy_timeout = \"{}\"",
            humantime::format_duration(d)
        );
    }
    if let Some(list) = &options.accept_proxy_from {
        let items: Vec<String> = list.allow().iter().map(|c| format!("\"{c}\"")).collect();
        let _ = writeln!(out, "accept_proxy_from = [{}]", items.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::schema::problems;
    use crate::table::{AcceptProxy, ProxyTlvs};

    #[test]
    fn settings_that_do_nothing_are_warned_of() {
        let text = r#"
[[service]]
udp = "127.0.0.1:53"
limits = { connections_per_source = 5 }
deny_action = "drop"
accept_proxy_timeout = "1s"

[[service]]
tcp = "127.0.0.1:80"
limits = { flows_per_source = 5 }
accept_proxy_timeout = "1s"
allow = ["2001:db8::/32"]
deny = ["2001:db8::/32", "10.0.0.0/8"]

[[service]]
udp = "127.0.0.1:54"
accept_proxy = "v2"
accept_proxy_timeout = "1s"
limits = { flows_per_source = 5, connections_per_source = 5 }
proxy_protocol = "v2"
proxy_protocol_tlvs = ["unique_id"]

[[service]]
tcp = "[::]:80"
allow = ["10.0.0.0/8"]
deny_action = "drop"
limits = { connections_per_source = 5 }
"#;
        assert_eq!(
            super::super::schema::warnings(text, Path::new("t.toml")),
            [
                "t.toml:4:10: warning: service[0].limits: only flows_per_source applies to UDP: these limits count nothing here",
                "t.toml:5:15: warning: service[0].deny_action: a refused datagram is always dropped: deny_action does nothing on a UDP service",
                "t.toml:6:24: warning: service[0].accept_proxy_timeout: without accept_proxy no header is awaited: the timeout does nothing",
                "t.toml:10:10: warning: service[1].limits: flows_per_source counts UDP flows: it does nothing on a TCP service",
                "t.toml:11:24: warning: service[1].accept_proxy_timeout: without accept_proxy no header is awaited: the timeout does nothing",
                "t.toml:12:9: warning: service[1].allow: no prefix of the service's family (IPv4): every client is refused",
                "t.toml:13:8: warning: service[1].deny: 2001:db8::/32 in allow too: deny wins a tie, the allow entry does nothing",
                "t.toml:18:24: warning: service[2].accept_proxy_timeout: a UDP service takes a header in every datagram, with no deadline: the timeout does nothing",
                "t.toml:21:23: warning: service[2].proxy_protocol_tlvs: the header in front of a datagram carries no TLVs: they do nothing on a UDP service",
            ]
        );
    }

    #[test]
    fn an_empty_allow_list_is_an_error() {
        let text = "[global]\nallow = []\n[[service]]\ntcp = \"127.0.0.1:80\"\nallow = []\n";
        assert_eq!(
            problems(text),
            [
                "t.toml:2:9: global.allow: an empty allow list would admit everyone (no list); to refuse everyone write deny = [\"0.0.0.0/0\", \"::/0\"], or remove the key",
                "t.toml:5:9: service[0].allow: an empty allow list would admit everyone (no list); to refuse everyone write deny = [\"0.0.0.0/0\", \"::/0\"], or remove the key",
            ]
        );
    }

    #[test]
    fn bad_accept_proxy_values_are_named_where_they_are() {
        let text = r#"
[[service]]
tcp = "127.0.0.1:80"
accept_proxy = "v3"
accept_proxy_timeout = 0
proxy_protocol_tlvs = ["unique_id"]

[[service]]
tcp = "127.0.0.1:81"
accept_proxy = 2
accept_proxy_timeout = "2m"
proxy_protocol = "v2"
proxy_protocol_tlvs = ["unique_id", "client_cert"]

[[service]]
tcp = "127.0.0.1:82"
proxy_protocol = "v1"
proxy_protocol_tlvs = "service_name"
"#;
        assert_eq!(
            problems(text),
            [
                "t.toml:4:16: service[0].accept_proxy: expected \"v1\", \"v2\" or \"any\", found the string \"v3\"",
                "t.toml:5:24: service[0].accept_proxy_timeout: expected a duration of at least 1ms and at most a minute, found the integer 0",
                "t.toml:6:23: service[0].proxy_protocol_tlvs: needs proxy_protocol = \"v2\": only a v2 header carries TLVs",
                "t.toml:10:16: service[1].accept_proxy: expected \"v1\", \"v2\" or \"any\", found the integer 2",
                "t.toml:11:24: service[1].accept_proxy_timeout: expected a duration of at least 1ms and at most a minute, found the string \"2m\"",
                "t.toml:13:37: service[1].proxy_protocol_tlvs[1]: expected \"unique_id\" or \"service_name\", found the string \"client_cert\"",
                "t.toml:18:23: service[2].proxy_protocol_tlvs: expected an array of TLV names, as [\"unique_id\", \"service_name\"], found the string \"service_name\"",
                "t.toml:18:23: service[2].proxy_protocol_tlvs: needs proxy_protocol = \"v2\": only a v2 header carries TLVs",
            ]
        );
    }

    #[test]
    fn accept_proxy_from_needs_accept_proxy_and_reads_and_renders_back() {
        let text = r#"
[[service]]
tcp = "127.0.0.1:80"
accept_proxy_from = ["10.0.0.0/8"]

[[service]]
tcp = "127.0.0.1:81"
accept_proxy = "v2"
accept_proxy_from = []

[[service]]
tcp = "127.0.0.1:82"
accept_proxy = "v2"
accept_proxy_from = ["10.0.0.300/8"]
"#;
        assert_eq!(
            problems(text),
            [
                "t.toml:4:21: service[0].accept_proxy_from: needs accept_proxy: it says which peers may send the PROXY header the service takes",
                "t.toml:9:21: service[1].accept_proxy_from: is empty: no peer could send the header; leave the key out to take it from any peer",
                "t.toml:14:22: service[2].accept_proxy_from[0]: \"10.0.0.300/8\" is not a CIDR prefix: not an IPv4 or IPv6 address",
            ]
        );
        let text = r#"[[service]]
tcp = "127.0.0.1:80"
accept_proxy = "v2"
accept_proxy_from = ["10.0.0.0/24", "2001:db8::/64"]
"#;
        let config = super::super::schema::parse(text, Path::new("t.toml")).unwrap();
        let o = &config.services[0].service.options;
        assert!(o.trusts_proxy_from("10.0.0.7".parse().unwrap()));
        assert!(o.trusts_proxy_from("::ffff:10.0.0.7".parse().unwrap()));
        assert!(o.trusts_proxy_from("2001:db8::1".parse().unwrap()));
        assert!(!o.trusts_proxy_from("10.0.1.7".parse().unwrap()));
        let mut out = String::new();
        super::render_accept_proxy(&mut out, o);
        assert_eq!(
            out,
            "accept_proxy = \"v2\"\naccept_proxy_from = [\"10.0.0.0/24\", \"2001:db8::/64\"]\n"
        );
        let again = super::super::render::render(&config);
        let back = super::super::schema::parse(&again, Path::new("t.toml")).unwrap();
        assert_eq!(back.services[0].service.options, *o);
        // uvsadm -E keeps it (a file setting).
        let kept = crate::table::ServiceOptions::default().from_command(o);
        assert_eq!(kept.accept_proxy_from, o.accept_proxy_from);
    }

    #[test]
    fn accept_proxy_and_the_tlvs_read_and_render_back() {
        let text = r#"[[service]]
tcp = "127.0.0.1:80"
proxy_protocol = "v2"
accept_proxy = "any"
proxy_protocol_tlvs = ["service_name", "unique_id"]
accept_proxy_timeout = "1s 500ms"
"#;
        let config = super::super::schema::parse(text, Path::new("t.toml")).unwrap();
        let o = &config.services[0].service.options;
        assert_eq!(o.accept_proxy, Some(AcceptProxy::Any));
        assert_eq!(o.accept_proxy_timeout_ms, 1500);
        assert_eq!(
            o.proxy_protocol_tlvs,
            ProxyTlvs::default()
                .with(ProxyTlvs::UNIQUE_ID)
                .with(ProxyTlvs::SERVICE_NAME)
        );
        let mut out = String::new();
        super::render_accept_proxy(&mut out, o);
        assert_eq!(
            out,
            "accept_proxy = \"any\"\nproxy_protocol_tlvs = [\"unique_id\", \"service_name\"]\naccept_proxy_timeout = \"1s 500ms\"\n"
        );
        let again = super::super::render::render(&config);
        let back = super::super::schema::parse(&again, Path::new("t.toml")).unwrap();
        assert_eq!(back.services[0].service.options, *o);
    }
}
