//! Plain-value copies of the table for readers outside the process: what `ipvsadm` gets
//! from the kernel's dumps (ipvs_service_entry, ipvs_dest_entry, /proc/net/ip_vs_conn).
//! The daemon produces them from a snapshot, the kernel backend from netlink dumps, and
//! the listing formats consume them without knowing which.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::key::ServiceKey;
use super::real_server::{Forward, Tunnel};
use super::service::{Netmask, ServiceFlags, ServiceOptions};
use crate::stats::StatsView;

/// IPVS version 1.2.1, as the kernel reports it (and ipvsadm prints it).
pub const IPVS_VERSION: u32 = 0x0001_0201;
/// The size of the kernel's connection hash table by default (conn_tab_bits = 12).
pub const CONN_TAB_SIZE: u32 = 4096;

/// `ipvs_getinfo`: what the first line of a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    pub version: u32,
    pub conn_tab_size: u32,
}

impl Default for Info {
    fn default() -> Info {
        Info {
            version: IPVS_VERSION,
            conn_tab_size: CONN_TAB_SIZE,
        }
    }
}

/// One real server as a listing sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerEntry {
    pub addr: IpAddr,
    pub port: u16,
    pub forward: Forward,
    pub weight: u32,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persistent_conns: u32,
    pub tunnel: Tunnel,
    pub stats: StatsView,
    /// Connects to it that failed (uvs only; the kernel does not connect).
    #[serde(default)]
    pub connect_failures: FailureCounts,
    /// Its timed drain, while it drains (uvs only: `uvs status`, metrics).
    #[serde(default)]
    pub draining: Option<super::pool::DrainStatus>,
    /// Connections and flows open now, TIME_WAIT not counted (uvs only).
    #[serde(default)]
    pub open_conns: u32,
    /// Its `max_connections` (uvs only; 0: no limit).
    #[serde(default)]
    pub max_connections: u32,
    /// Its passive ejection (uvs only; zeros unless its service ejects).
    #[serde(default)]
    pub ejection: EjectionCounts,
    /// While the server ramps (slow start), the share of its picks it takes, in
    /// thousandths (`weight` is then the weight in force); None when not ramping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start: Option<u32>,
}

/// A real server's passive ejection (`table::ejection`), as listings see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EjectionCounts {
    /// Ejections so far.
    pub ejections: u64,
    /// Failed connects (or ICMP errors on flows) in a row now.
    pub consecutive_failures: u32,
    /// Milliseconds left of the ejection in force; None: not ejected.
    pub left_ms: Option<u64>,
}

/// A service's queue (`table::queue`): how many wait now, and what became of those
/// that came (uvs only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueCounts {
    /// Connections waiting now (or woken and trying a server).
    pub waiting: u32,
    pub queued: u64,
    pub served: u64,
    pub timed_out: u64,
    /// Reset (TCP) or dropped (UDP) at the connection limit with no room to wait.
    pub refused: u64,
    /// Milliseconds waited by the connections served, summed.
    pub wait_ms: u64,
    /// Connections whose client went away while they waited.
    #[serde(default)]
    pub left: u64,
}

/// What a service's admission refused (`table::admission`; uvs only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionCounts {
    /// Connections and flows refused by an access list, the global one included.
    pub refused_access: u64,
    /// Connections and flows refused by a per-client limit, the global one included.
    pub refused_limits: u64,
    /// Connections closed (datagrams dropped) for a missing, malformed or late PROXY
    /// header.
    pub proxy_rejected: u64,
    /// Sources its per-client limits track now (`table::sources`; 0 without limits).
    #[serde(default)]
    pub sources: u64,
}

/// Failed connects to a real server, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCounts {
    pub refused: u64,
    pub timed_out: u64,
    pub other: u64,
    /// Refused before trying: the server is the director's own listen address.
    #[serde(default)]
    pub looped: u64,
    /// No source to connect from (`source`, `source_ports`): every one busy or not
    /// local.
    #[serde(default)]
    pub source: u64,
}

/// One virtual service as a listing sees it, with its servers in list order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    pub key: ServiceKey,
    pub scheduler: String,
    pub flags: ServiceFlags,
    pub timeout: u32,
    pub netmask: Netmask,
    pub pe: Option<String>,
    /// uvs's own settings (not shown by ipvsadm's listings; written by `-S`).
    #[serde(default)]
    pub options: ServiceOptions,
    pub stats: StatsView,
    /// Connections retried on another real server after a failed connect (uvs only).
    #[serde(default)]
    pub retries: u64,
    /// Connections reset because no real server was available or reachable (uvs only).
    #[serde(default)]
    pub unavailable: u64,
    /// New UDP flows dropped because the flow table was full (uvs only).
    #[serde(default)]
    pub flows_dropped: u64,
    /// TCP connects that found no free source port (uvs only; `table::source`).
    #[serde(default)]
    pub source_port_exhausted: u64,
    /// Binds to a source address that is not on this host (EADDRNOTAVAIL), each
    /// skipped for another (uvs only; `proxy::source`).
    #[serde(default)]
    pub source_address_unavailable: u64,
    /// Its queue's counts (uvs only).
    #[serde(default)]
    pub queue: QueueCounts,
    /// What its access lists, limits and PROXY header checks refused (uvs only).
    #[serde(default)]
    pub admission: AdmissionCounts,
    /// What each rule of its own access list refused, for the rules that refused any
    /// (uvs only; `table::access`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_rules: Vec<super::access::RuleRefusals>,
    pub servers: Vec<ServerEntry>,
    /// Real servers a command-line drain took out, which the file still names and a
    /// reload does not add back until `uvs undrain` (uvs only; `table::pool`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drained_out: Vec<super::key::ServerKey>,
}

/// The global access list (`[global]`'s `allow`, `deny`; `table::admission`), for
/// `uvs status` (uvs only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalAccessEntry {
    /// How many prefixes each list has.
    pub allow: usize,
    pub deny: usize,
    /// "reset" or "drop".
    pub deny_action: String,
    pub close_denied: bool,
    /// New connections and flows it refused, over all services.
    pub refused: u64,
    /// What each of its rules refused, for the rules that refused any.
    pub rules: Vec<super::access::RuleRefusals>,
}

/// One entry of the connection table (`-L -c`), as /proc/net/ip_vs_conn describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnEntry {
    /// "TCP", "UDP", "SCTP", or "IP" for an fwmark persistence template.
    pub protocol: String,
    pub client_addr: IpAddr,
    pub client_port: u16,
    pub virtual_addr: IpAddr,
    pub virtual_port: u16,
    pub dest_addr: IpAddr,
    pub dest_port: u16,
    /// IPVS state name: ESTABLISHED, SYN_RECV, FIN_WAIT, TIME_WAIT, CLOSE, UDP, NONE, ...
    pub state: String,
    /// Seconds until the entry expires.
    pub expires: u32,
    pub pe_name: Option<String>,
    pub pe_data: Option<String>,
}
