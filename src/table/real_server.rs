//! A real server (IPVS "destination") of a virtual service: address, weight, forwarding
//! method, thresholds, tunnel settings, and the live state shared with the data plane.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use serde::{Deserialize, Serialize};

use super::key::ServerKey;
use crate::stats::Stats;

/// How IPVS forwards to a real server. The kernel backend honours it; the userspace proxy
/// always proxies and only records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forward {
    /// NAT (`-m`).
    Masq,
    /// The real server is this host (the kernel reports it; nothing sets it).
    Local,
    /// Tunnelling (`-i`).
    Tunnel,
    /// Direct routing, "gatewaying" (`-g`, the default).
    Route,
}

impl Forward {
    /// The Forward column of `ipvsadm -L`.
    pub fn label(self) -> &'static str {
        match self {
            Forward::Masq => "Masq",
            Forward::Local => "Local",
            Forward::Tunnel => "Tunnel",
            Forward::Route => "Route",
        }
    }

    /// The switch `ipvsadm -S` writes; Local is written as `-g`, as ipvsadm does.
    pub fn switch(self) -> &'static str {
        match self {
            Forward::Masq => "-m",
            Forward::Tunnel => "-i",
            Forward::Local | Forward::Route => "-g",
        }
    }
}

/// Encapsulation of a tunnelling real server (`--tun-type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelKind {
    #[default]
    Ipip,
    Gue,
    Gre,
}

impl TunnelKind {
    pub fn name(self) -> &'static str {
        match self {
            TunnelKind::Ipip => "ipip",
            TunnelKind::Gue => "gue",
            TunnelKind::Gre => "gre",
        }
    }
}

/// Checksum mode of a GUE or GRE tunnel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelChecksum {
    #[default]
    NoCsum,
    Csum,
    RemCsum,
}

impl TunnelChecksum {
    /// The short form of `--tun-info` ("-c", "+c", "r+c").
    pub fn short(self) -> &'static str {
        match self {
            TunnelChecksum::NoCsum => "-c",
            TunnelChecksum::Csum => "+c",
            TunnelChecksum::RemCsum => "r+c",
        }
    }

    /// The option `-S` writes.
    pub fn option(self) -> &'static str {
        match self {
            TunnelChecksum::NoCsum => "--tun-nocsum",
            TunnelChecksum::Csum => "--tun-csum",
            TunnelChecksum::RemCsum => "--tun-remcsum",
        }
    }
}

/// Tunnel settings; only meaningful with [`Forward::Tunnel`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tunnel {
    pub kind: TunnelKind,
    /// Destination UDP port of GUE encapsulation (0 = none).
    pub port: u16,
    pub checksum: TunnelChecksum,
}

/// Live state of a real server, shared by `Arc` between table snapshots and with the data
/// plane, so edits keep counters and connection counts.
#[derive(Debug, Default)]
pub struct RealServerState {
    pub stats: Stats,
    pub active_conns: AtomicU32,
    pub inactive_conns: AtomicU32,
    pub persistent_conns: AtomicU32,
}

/// One real server of a service.
#[derive(Debug, Clone)]
pub struct RealServer {
    pub addr: IpAddr,
    pub port: u16,
    pub weight: u32,
    pub forward: Forward,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub tunnel: Tunnel,
    pub state: Arc<RealServerState>,
}

impl RealServer {
    pub fn key(&self) -> ServerKey {
        ServerKey {
            addr: self.addr,
            port: self.port,
        }
    }
}
