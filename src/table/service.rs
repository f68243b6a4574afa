//! A virtual service as the table stores it: key, scheduler, flags, persistence, and its
//! real servers in IPVS's list order. Built and changed only by `table::Table::apply`.

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::key::{Family, ServiceKey};
use super::real_server::RealServer;
use crate::sched::{Algorithm, Scheduler};
use crate::stats::Stats;

/// IPVS's service flags (IP_VS_SVC_F_*), kept as the kernel's bit values so they pass to
/// the kernel backend and back unchanged. The scheduler bits are named by the scheduler
/// that reads them: bit 1 is `sh-fallback` for sh, `mh-fallback` for mh, `flag-1` else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServiceFlags(pub u32);

impl ServiceFlags {
    pub const PERSISTENT: u32 = 0x0001;
    pub const ONE_PACKET: u32 = 0x0004;
    pub const SCHED1: u32 = 0x0008;
    pub const SCHED2: u32 = 0x0010;
    pub const SCHED3: u32 = 0x0020;
    pub const SCHED_MASK: u32 = Self::SCHED1 | Self::SCHED2 | Self::SCHED3;
    /// The bits a service may carry; anything else from a client is refused.
    pub const KNOWN: u32 = Self::PERSISTENT | Self::ONE_PACKET | Self::SCHED_MASK;

    pub fn persistent(self) -> bool {
        self.0 & Self::PERSISTENT != 0
    }

    pub fn one_packet(self) -> bool {
        self.0 & Self::ONE_PACKET != 0
    }

    pub fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }

    /// The bit of a scheduler flag named as `-b` takes it, and the scheduler the name
    /// belongs to (`sh-port` is sh's); None for an unknown name.
    pub fn scheduler_flag(name: &str) -> Option<(u32, Option<&'static str>)> {
        Some(match name {
            "flag-1" => (Self::SCHED1, None),
            "flag-2" => (Self::SCHED2, None),
            "flag-3" => (Self::SCHED3, None),
            "sh-fallback" => (Self::SCHED1, Some("sh")),
            "sh-port" => (Self::SCHED2, Some("sh")),
            "mh-fallback" => (Self::SCHED1, Some("mh")),
            "mh-port" => (Self::SCHED2, Some("mh")),
            _ => return None,
        })
    }

    /// The scheduler flags, named as ipvsadm names them for `sched`, comma-separated.
    /// A bit without a name for this scheduler (flag-3 on sh) is shown as `flag-N`, where
    /// ipvsadm would print nothing and write a `-b` that it cannot read back.
    pub fn scheduler_flag_names(self, sched: &str) -> String {
        let mut names = Vec::new();
        for (bit, generic) in [
            (Self::SCHED1, "flag-1"),
            (Self::SCHED2, "flag-2"),
            (Self::SCHED3, "flag-3"),
        ] {
            if self.0 & bit == 0 {
                continue;
            }
            let named = match (sched, bit) {
                ("sh", Self::SCHED1) => "sh-fallback",
                ("sh", Self::SCHED2) => "sh-port",
                ("mh", Self::SCHED1) => "mh-fallback",
                ("mh", Self::SCHED2) => "mh-port",
                _ => generic,
            };
            names.push(named);
        }
        names.join(",")
    }
}

/// Persistence granularity (`-M`): an IPv4 mask, or an IPv6 prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Netmask {
    V4(Ipv4Addr),
    V6(u32),
}

impl Netmask {
    /// /32 or /128: every client address is its own persistence group.
    pub fn full(family: Family) -> Netmask {
        match family {
            Family::Inet => Netmask::V4(Ipv4Addr::BROADCAST),
            Family::Inet6 => Netmask::V6(128),
        }
    }

    pub fn is_full(self) -> bool {
        matches!(self, Netmask::V4(Ipv4Addr::BROADCAST) | Netmask::V6(128))
    }
}

impl fmt::Display for Netmask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Netmask::V4(mask) => write!(f, "{mask}"),
            Netmask::V6(prefix) => write!(f, "{prefix}"),
        }
    }
}

/// An alternative persistence engine (`--pe`). IPVS has one: SIP Call-ID persistence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PersistenceEngine {
    Sip,
}

impl PersistenceEngine {
    pub fn name(self) -> &'static str {
        match self {
            PersistenceEngine::Sip => "sip",
        }
    }

    pub fn from_name(name: &str) -> Option<PersistenceEngine> {
        match name {
            "sip" => Some(PersistenceEngine::Sip),
            _ => None,
        }
    }
}

/// PROXY protocol header sent to real servers before the client's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    V1,
    V2,
}

impl ProxyProtocol {
    pub fn name(self) -> &'static str {
        match self {
            ProxyProtocol::V1 => "v1",
            ProxyProtocol::V2 => "v2",
        }
    }
}

/// uvs's own TLVs in the PROXY v2 header sent to real servers (`proxy_protocol_tlvs`,
/// `proxy::proxy_out`): a set of [`ProxyTlvs::UNIQUE_ID`] and
/// [`ProxyTlvs::SERVICE_NAME`], as bits of one byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProxyTlvs(u8);

impl ProxyTlvs {
    /// PP2_TYPE_UNIQUE_ID (0x05): an id of the connection, never the same twice.
    pub const UNIQUE_ID: ProxyTlvs = ProxyTlvs(1);
    /// The service's name, in uvs's own TLV type (`proxy_out::SERVICE_NAME_TYPE`).
    pub const SERVICE_NAME: ProxyTlvs = ProxyTlvs(2);
    /// Every TLV with its name in the file, in the order they are written.
    pub const ALL: [(ProxyTlvs, &'static str); 2] = [
        (ProxyTlvs::UNIQUE_ID, "unique_id"),
        (ProxyTlvs::SERVICE_NAME, "service_name"),
    ];

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, tlv: ProxyTlvs) -> bool {
        self.0 & tlv.0 == tlv.0
    }

    pub fn with(self, tlv: ProxyTlvs) -> ProxyTlvs {
        ProxyTlvs(self.0 | tlv.0)
    }

    /// The file's names of the TLVs in the set, in [`ProxyTlvs::ALL`]'s order.
    pub fn names(self) -> Vec<&'static str> {
        ProxyTlvs::ALL
            .iter()
            .filter(|(tlv, _)| self.contains(*tlv))
            .map(|(_, name)| *name)
            .collect()
    }
}

/// PROXY protocol headers a service takes from its clients (`accept_proxy`): the
/// address in the header is the client for everything uvs does (`proxy::proxy_in`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AcceptProxy {
    V1,
    V2,
    /// Either version, told apart by the first bytes.
    Any,
}

impl AcceptProxy {
    pub fn name(self) -> &'static str {
        match self {
            AcceptProxy::V1 => "v1",
            AcceptProxy::V2 => "v2",
            AcceptProxy::Any => "any",
        }
    }
}

/// What uvs adds to a service beyond IPVS (set with uvsadm's extra options or the
/// configuration file; ipvsadm's listings do not show them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceOptions {
    // Settings at their defaults are left out of what is sent (every service of a
    // listing carries its options; `default` above fills them back in).
    /// How long to wait for a real server to accept, in milliseconds (0: the default).
    #[serde(skip_serializing_if = "is_zero")]
    pub connect_timeout_ms: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Listen even where the VIP is not (yet) a local address (IP_FREEBIND).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub freebind: bool,
    /// `drain_on_remove`: a real server the configuration file no longer names drains
    /// for at most this many milliseconds instead of leaving at once (0: it leaves at
    /// once, as ipvsadm's `-d`). A file setting: uvsadm has no option for it.
    #[serde(skip_serializing_if = "is_zero")]
    pub drain_on_remove_ms: u32,
    /// Passive ejection of real servers that fail (`table::ejection`); None: off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ejection: Option<super::ejection::EjectionConfig>,
    /// The slow-start window of its real servers in milliseconds (0: none), HAProxy's
    /// `slowstart`; a server's own `ServerOptions::slow_start_ms` wins
    /// (`table::slow_start`).
    #[serde(skip_serializing_if = "is_zero")]
    pub slow_start_ms: u32,
    /// Where new TCP connections wait when every usable real server is at its
    /// `max_connections` (`table::queue`); None: they are reset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueOptions>,
    /// The PROXY protocol header its clients send first (`accept_proxy`); None: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_proxy: Option<AcceptProxy>,
    /// How long a client has to send its whole PROXY header, in milliseconds (0: the
    /// default, `proxy::proxy_in::DEFAULT_TIMEOUT`).
    #[serde(skip_serializing_if = "is_zero")]
    pub accept_proxy_timeout_ms: u32,
    /// The peers that may send the PROXY header (`accept_proxy_from`, an allow-only
    /// list: HAProxy's `expect-proxy ... if { src -f trusted }`, nginx's
    /// `set_real_ip_from`); any other peer is refused as one with a bad header. None:
    /// any peer may. A file setting: uvsadm has no option for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_proxy_from: Option<Arc<super::access::AccessList>>,
    /// uvs's own TLVs in the PROXY v2 header to real servers (`proxy_protocol_tlvs`).
    #[serde(skip_serializing_if = "ProxyTlvs::is_empty")]
    pub proxy_protocol_tlvs: ProxyTlvs,
    /// Its access lists and per-client limits (`table::admission`), over the global
    /// ones.
    #[serde(skip_serializing_if = "super::admission::Admission::is_open")]
    pub admission: super::admission::Admission,
    /// The source addresses and ports of its connections to real servers (`source`,
    /// `source_ports`; `table::source`); None: the kernel chooses both. A file
    /// setting: uvsadm has no option for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Arc<super::source::Source>>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A service's queue (HAProxy's `maxqueue` and `timeout queue`): at most `length`
/// connections wait, each at most `timeout_ms` milliseconds. Both above zero (the
/// length's zero is the niche of `Option<QueueOptions>`, which keeps commands small).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueOptions {
    pub length: std::num::NonZeroU32,
    pub timeout_ms: u32,
}

impl ServiceOptions {
    /// The daemon's connect timeout when it is not configured.
    pub const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

    /// The service's own connect timeout, else `default` (the daemon's).
    pub fn connect_timeout_or(&self, default: std::time::Duration) -> std::time::Duration {
        if self.connect_timeout_ms == 0 {
            default
        } else {
            std::time::Duration::from_millis(u64::from(self.connect_timeout_ms))
        }
    }

    /// The slow-start window of `server` in this service, in milliseconds (0: none):
    /// its own, else the service's.
    pub fn slow_start_of(&self, server: &crate::table::ServerOptions) -> u32 {
        server.slow_start_ms.unwrap_or(self.slow_start_ms)
    }

    /// These options as `-E` from uvsadm gives them, over `current` (the service's):
    /// uvsadm has options only for some (connect timeout, PROXY header to servers,
    /// freebind); the file's own settings are kept, as `-e` keeps a server's.
    pub fn from_command(self, current: &ServiceOptions) -> ServiceOptions {
        let mut options = ServiceOptions {
            connect_timeout_ms: self.connect_timeout_ms,
            proxy_protocol: self.proxy_protocol,
            freebind: self.freebind,
            ..current.clone()
        };
        // uvs's own TLVs ride only in a v2 header: without one there are none.
        if options.proxy_protocol != Some(ProxyProtocol::V2) {
            options.proxy_protocol_tlvs = ProxyTlvs::default();
        }
        options
    }

    /// Whether `peer` (the socket's address, not a header's) may send this service a
    /// PROXY header: it is in `accept_proxy_from`, or that is not set. An IPv4-mapped
    /// peer is judged as its IPv4 address.
    pub fn trusts_proxy_from(&self, peer: std::net::IpAddr) -> bool {
        match &self.accept_proxy_from {
            None => true,
            Some(list) => list.check(peer.to_canonical()) == super::access::Verdict::Allowed,
        }
    }

    /// The uvsadm options that set these (empty when all are defaults).
    pub fn arguments(&self) -> String {
        let mut s = String::new();
        if self.connect_timeout_ms != 0 {
            if self.connect_timeout_ms.is_multiple_of(1000) {
                s.push_str(&format!(
                    " --connect-timeout {}",
                    self.connect_timeout_ms / 1000
                ));
            } else {
                s.push_str(&format!(" --connect-timeout {}ms", self.connect_timeout_ms));
            }
        }
        if let Some(p) = self.proxy_protocol {
            s.push_str(&format!(" --proxy-protocol {}", p.name()));
        }
        if self.freebind {
            s.push_str(" --freebind");
        }
        s
    }
}

/// Per-service state that outlives edits: counters (and, with the data plane, the
/// scheduler's position).
#[derive(Debug, Default)]
pub struct ServiceState {
    pub stats: Stats,
    /// Connections retried on another real server after a failed connect.
    pub retries: std::sync::atomic::AtomicU64,
    /// Connections refused (TCP) or datagrams dropped (UDP) because no real server was
    /// available.
    pub unavailable: std::sync::atomic::AtomicU64,
    /// New UDP flows dropped because the flow table was full.
    pub flows_dropped: std::sync::atomic::AtomicU64,
    /// TCP connects that found no free source address and port (`source`,
    /// `source_ports`; `proxy::source`) and so failed.
    pub source_port_exhausted: std::sync::atomic::AtomicU64,
    /// Binds to a source address not on this host (EADDRNOTAVAIL: a floating address
    /// not up here), each skipped for another address of the list.
    pub source_address_unavailable: std::sync::atomic::AtomicU64,
    /// Connections reset mid-stream by a client, and by a real server, for the log
    /// (`proxy::failure_log`).
    pub client_resets: crate::rate_limit::Tally<1>,
    pub server_resets: crate::rate_limit::Tally<1>,
    /// The queue of connections waiting for a slot (`max_connections`), and its
    /// counts; its real servers hold it to wake it.
    pub queue: Arc<super::queue::Queue>,
    /// What its access lists, per-client limits and PROXY header checks refused.
    pub admission: super::admission::AdmissionCounts,
    /// The sources its per-client limits track (`table::sources`), made on first use.
    pub sources: super::sources::Tables,
}

/// One virtual service.
#[derive(Debug, Clone)]
pub struct Service {
    pub key: ServiceKey,
    pub scheduler: Scheduler,
    pub flags: ServiceFlags,
    /// Persistence timeout in seconds (meaningful with [`ServiceFlags::PERSISTENT`]).
    pub timeout: u32,
    pub netmask: Netmask,
    pub pe: Option<PersistenceEngine>,
    pub options: ServiceOptions,
    /// Real servers, newest first: IPVS adds each destination at the head of its list,
    /// and that order decides scheduling ties and `--nosort` listings.
    pub servers: Vec<RealServer>,
    /// Creation sequence number; orders services within a hash bucket (see `order`).
    pub created: u64,
    pub state: Arc<ServiceState>,
    /// The scheduler's state for exactly this list of servers.
    pub algorithm: Arc<dyn Algorithm>,
    /// Real servers a command-line drain removed (`table::pool`): a reload does not add
    /// them back until `uvs undrain` or `-a` clears the mark. Empty (no allocation)
    /// unless such a drain ended.
    pub drained_out: std::collections::BTreeSet<super::key::ServerKey>,
    /// Real servers deleted while connections were open on them, by key, as IPVS's
    /// trash of destinations (ip_vs_ctl.c `ip_vs_trash_get_dest`): one added again
    /// while they are still open takes its old live state back, so its open count
    /// (and `max_connections`) counts them. Only weak references: the connections hold
    /// the state; an entry whose state is gone is dropped at the next delete.
    pub trash:
        std::collections::BTreeMap<super::key::ServerKey, std::sync::Weak<super::RealServerState>>,
}

impl Service {
    /// What `-A` / `-E` would set to make this service as it is.
    pub fn config(&self) -> crate::table::ServiceConfig {
        crate::table::ServiceConfig {
            key: self.key,
            scheduler: self.scheduler.name().to_string(),
            flags: self.flags,
            timeout: self.timeout,
            netmask: self.netmask,
            pe: self.pe.map(|pe| pe.name().to_string()),
            options: self.options.clone(),
        }
    }

    /// Whether `-A` / `-E` with `config` would leave this service as it is: what
    /// `self.config() == *config` says, without building the copy (a reload asks it of
    /// every service of the file). Every field is named, so a setting added to
    /// `ServiceConfig` does not compile until it is compared here too.
    pub fn is_configured_as(&self, config: &crate::table::ServiceConfig) -> bool {
        let crate::table::ServiceConfig {
            key,
            scheduler,
            flags,
            timeout,
            netmask,
            pe,
            options,
        } = config;
        self.key == *key
            && self.scheduler.name() == scheduler
            && self.flags == *flags
            && self.timeout == *timeout
            && self.netmask == *netmask
            && self.pe.map(PersistenceEngine::name) == pe.as_deref()
            && self.options == *options
    }

    /// The server IPVS's scheduler picks for a new connection from `packet`.
    pub fn pick(&self, packet: &crate::sched::Packet) -> Option<&RealServer> {
        self.servers.get(self.pick_index(packet)?)
    }

    /// As [`Service::pick`], the server's index in `servers`.
    pub fn pick_index(&self, packet: &crate::sched::Packet) -> Option<usize> {
        let i = self.algorithm.pick(&self.servers, self.flags, packet)?;
        (i < self.servers.len()).then_some(i)
    }
}
