//! The file's keys of who may connect (`table::admission`): `allow`, `deny`,
//! `deny_action`, `close_denied` and `limits`, alike in `[global]` (every service) and
//! in a `[[service]]`, and a service's `accept_proxy` and `accept_proxy_timeout`. Called
//! by the schema (`schema::parse`) for each of those tables; each bad value is reported
//! where it is, naming the key and what it should be.

use std::sync::Arc;

use super::reader::{Item, Table};
use crate::table::admission::{AccessList, Admission, Cidr, ClientLimits, DenyAction};
use crate::table::{AcceptProxy, ServiceOptions};

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
    let allow = t.get("allow").map(|item| read_prefixes(&item));
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

/// A service's `accept_proxy` and `accept_proxy_timeout`, into `options`.
pub fn read_accept_proxy(t: &Table<'_, '_>, options: &mut ServiceOptions) {
    if let Some(item) = t.get("accept_proxy") {
        options.accept_proxy = item.parsed("\"v1\", \"v2\" or \"any\"", |s| match s {
            "v1" => Some(AcceptProxy::V1),
            "v2" => Some(AcceptProxy::V2),
            "any" => Some(AcceptProxy::Any),
            _ => None,
        });
    }
    if let Some(item) = t.get("accept_proxy_timeout")
        && let Some(d) = item.nonzero_duration(
            MAX_ACCEPT_PROXY_SECS,
            "a duration of at least 1ms and at most a minute",
        )
    {
        options.accept_proxy_timeout_ms = u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
    }
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

/// The lines of a service's `accept_proxy` and `accept_proxy_timeout`.
pub fn render_accept_proxy(out: &mut String, options: &ServiceOptions) {
    use std::fmt::Write as _;
    if let Some(version) = options.accept_proxy {
        let _ = writeln!(out, "accept_proxy = \"{}\"", version.name());
    }
    if options.accept_proxy_timeout_ms != 0 {
        let d = std::time::Duration::from_millis(u64::from(options.accept_proxy_timeout_ms));
        let _ = writeln!(
            out,
            "accept_proxy_timeout = \"{}\"",
            humantime::format_duration(d)
        );
    }
}
