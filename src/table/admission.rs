//! Who may connect, and how much: a service's (or, in `[global]`, every service's)
//! access lists (`allow`, `deny`), what a refused TCP client gets (`deny_action`), and
//! its per-client limits (`limits`); and the counts kept of what they refused. The
//! configuration and uvsadm write an [`Admission`] into the table (per service in
//! `ServiceOptions::admission`, for all services with `Command::SetAdmission`); the data
//! plane asks it about each new connection or flow (`proxy::admit`), always on the real
//! client's address (after a PROXY header, `proxy::proxy_in`).
//!
//! IPVS itself has none of this (it is left to netfilter in front of it); the keys are
//! HAProxy's and nginx's ideas in the configuration's words.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use serde::{Deserialize, Serialize};

pub use super::access::{AccessList, Cidr, Verdict};

/// What a refused TCP client gets. A UDP datagram refused is always dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DenyAction {
    /// The connection is closed with a reset (RST), as a refused port looks.
    #[default]
    Reset,
    /// The connection is closed without a word to the client (HAProxy's
    /// `silent-drop`): the client learns nothing and times out.
    Drop,
}

impl DenyAction {
    pub fn name(self) -> &'static str {
        match self {
            DenyAction::Reset => "reset",
            DenyAction::Drop => "drop",
        }
    }
}

/// Limits per client source (an address, or the prefix `source_prefix_v4` /
/// `source_prefix_v6` it falls in). A zero limit is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientLimits {
    /// TCP connections open at once per source.
    pub connections_per_source: u32,
    /// New TCP connections per second per source.
    pub new_per_second_per_source: u32,
    /// UDP flows open at once per source.
    pub flows_per_source: u32,
    /// The prefix length that makes one IPv4 source (32: each address).
    pub source_prefix_v4: u8,
    /// The prefix length that makes one IPv6 source (64: each /64, one site's LAN).
    pub source_prefix_v6: u8,
    /// The most sources tracked at once; past it, the least recently seen is forgotten.
    pub max_sources: u32,
}

impl ClientLimits {
    pub const DEFAULT_PREFIX_V4: u8 = 32;
    pub const DEFAULT_PREFIX_V6: u8 = 64;
    pub const DEFAULT_MAX_SOURCES: u32 = 65_536;

    /// Whether no limit is set (only prefixes or the cap).
    pub fn is_empty(&self) -> bool {
        self.connections_per_source == 0
            && self.new_per_second_per_source == 0
            && self.flows_per_source == 0
    }

    /// The source `client` counts as: its address cut to the configured prefix.
    pub fn source_of(&self, client: IpAddr) -> IpAddr {
        let len = if client.is_ipv4() {
            self.source_prefix_v4
        } else {
            self.source_prefix_v6
        };
        super::access::masked(client, len)
    }
}

impl Default for ClientLimits {
    fn default() -> ClientLimits {
        ClientLimits {
            connections_per_source: 0,
            new_per_second_per_source: 0,
            flows_per_source: 0,
            source_prefix_v4: ClientLimits::DEFAULT_PREFIX_V4,
            source_prefix_v6: ClientLimits::DEFAULT_PREFIX_V6,
            max_sources: ClientLimits::DEFAULT_MAX_SOURCES,
        }
    }
}

/// A service's (or `[global]`'s) admission settings. The default admits everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Admission {
    /// `allow` and `deny`; None: no list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<Arc<AccessList>>,
    pub deny_action: DenyAction,
    /// Whether a reload that changes the lists closes the established connections
    /// (and flows) that they now deny; false: those go on, only new ones are refused.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub close_denied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<ClientLimits>,
}

impl Admission {
    /// Whether it admits everyone: nothing for the data plane to look at.
    pub fn is_open(&self) -> bool {
        self.access.is_none() && self.limits.is_none()
    }
}

/// Makes `next` (an edit's admission) keep the running list of `current` when its
/// lists are the same, so that the counts per rule go on across a reload that does not
/// change them (the counts live in the list: `AccessList::count`); a changed list
/// counts from zero. True when the list changed and `next` asks for `close_denied`:
/// the established connections it denies are to be closed.
pub fn keep_running_list(current: &Admission, next: &mut Admission) -> bool {
    match (&current.access, &mut next.access) {
        (Some(running), Some(new)) if **running == **new => {
            *new = Arc::clone(running);
            false
        }
        (None, None) => false,
        (_, new) => next.close_denied && new.is_some(),
    }
}

impl AdmissionCounts {
    /// The counts now, for listings.
    pub fn view(&self) -> super::entry::AdmissionCounts {
        use std::sync::atomic::Ordering::Relaxed;
        super::entry::AdmissionCounts {
            refused_access: self.refused_access.load(Relaxed),
            refused_limits: self.refused_limits.load(Relaxed),
            proxy_rejected: self.proxy_rejected.load(Relaxed),
            sources: 0,
        }
    }
}

/// What a service's (or the global) admission refused since start: kept in
/// `ServiceState` (and the table's, for the global lists' own sources), so edits and
/// reloads keep them.
#[derive(Debug, Default)]
pub struct AdmissionCounts {
    /// Connections and flows refused by an access list (the global one included).
    pub refused_access: AtomicU64,
    /// Connections and flows refused by a per-client limit (the global one included).
    pub refused_limits: AtomicU64,
    /// Connections closed (datagrams dropped) for a missing, malformed or late PROXY
    /// header (`accept_proxy`).
    pub proxy_rejected: AtomicU64,
}

/// The global admission's live state, held by the table across edits.
#[derive(Debug, Default)]
pub struct GlobalState {
    /// What the global lists and limits refused, over all services (each refusal is
    /// also counted on the service the client came to).
    pub counts: AdmissionCounts,
    /// The sources the global limits track, over all services (`table::sources`).
    pub sources: super::sources::Tables,
}

impl GlobalState {
    /// The global limits with what they track and refused, for `uvs status`; None
    /// without global limits.
    pub fn limits_view(&self, admission: &Admission) -> Option<GlobalLimitsView> {
        let limits = admission.limits?;
        Some(GlobalLimitsView {
            limits,
            deny_action: admission.deny_action,
            sources: self.sources.tracked(&limits),
            refused_limits: self
                .counts
                .refused_limits
                .load(std::sync::atomic::Ordering::Relaxed),
        })
    }
}

/// The global per-client limits (`[global] limits`) as `uvs status` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalLimitsView {
    pub limits: ClientLimits,
    pub deny_action: DenyAction,
    /// Sources tracked now, over all services.
    pub sources: u64,
    /// New connections and flows the global limits refused, over all services.
    pub refused_limits: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(deny: &[&str], close_denied: bool) -> Admission {
        let deny = deny.iter().map(|c| c.parse().unwrap()).collect();
        Admission {
            access: Some(Arc::new(AccessList::new(Vec::new(), deny))),
            close_denied,
            ..Default::default()
        }
    }

    #[test]
    fn an_unchanged_list_is_kept_with_its_counts_and_a_changed_one_closes_when_asked() {
        let running = with(&["10.0.0.0/8"], true);
        let list = running.access.as_ref().unwrap();
        list.count(list.check("10.1.1.1".parse().unwrap()));
        let mut next = with(&["10.0.0.0/8"], true);
        assert!(!keep_running_list(&running, &mut next), "nothing to close");
        assert!(Arc::ptr_eq(
            running.access.as_ref().unwrap(),
            next.access.as_ref().unwrap()
        ));
        assert_eq!(next.access.unwrap().refusals()[0].refused, 1);
        let mut changed = with(&["10.0.0.0/9"], true);
        assert!(keep_running_list(&running, &mut changed));
        let mut quiet = with(&["10.0.0.0/9"], false);
        assert!(!keep_running_list(&running, &mut quiet), "no close_denied");
        let mut gone = Admission {
            close_denied: true,
            ..Default::default()
        };
        assert!(
            !keep_running_list(&running, &mut gone),
            "no list denies no one"
        );
        let mut added = with(&["10.0.0.0/9"], true);
        assert!(keep_running_list(&Admission::default(), &mut added));
    }
}
