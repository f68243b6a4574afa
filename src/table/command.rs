//! The typed commands that change the table: ipvsadm's command set. uvsadm, the config
//! loader and the health checker all speak in these; `Table::apply` is their one consumer.
//! Fields carry what the writer asked for (a scheduler *name*, a signed weight) so the
//! table can refuse it with the kernel's error, in the kernel's order.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::key::{ServerKey, ServiceKey};
use super::real_server::{Forward, Tunnel};
use super::service::{Netmask, ServiceFlags};
use super::timeouts::Timeouts;

/// Everything `-A` / `-E` set on a service. `-E` replaces all of it, as IPVS does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub key: ServiceKey,
    pub scheduler: String,
    pub flags: ServiceFlags,
    /// Persistence timeout in seconds.
    pub timeout: u32,
    pub netmask: Netmask,
    /// Persistence engine name (`--pe`), if any.
    pub pe: Option<String>,
}

/// Everything `-a` / `-e` set on a real server. `-e` replaces all of it, as IPVS does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub addr: IpAddr,
    pub port: u16,
    pub forward: Forward,
    pub weight: i32,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub tunnel: Tunnel,
}

impl ServerConfig {
    pub fn key(&self) -> ServerKey {
        ServerKey {
            addr: self.addr,
            port: self.port,
        }
    }
}

/// Role of an IPVS connection-sync daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncRole {
    Master,
    Backup,
}

/// One change to the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    AddService(ServiceConfig),
    EditService(ServiceConfig),
    DeleteService {
        service: ServiceKey,
    },
    /// Remove every service (`-C`). A struct variant, so stray fields are refused.
    Flush {},
    AddServer {
        service: ServiceKey,
        server: ServerConfig,
    },
    EditServer {
        service: ServiceKey,
        server: ServerConfig,
    },
    DeleteServer {
        service: ServiceKey,
        server: ServerKey,
    },
    /// Zero the counters of one service and its servers, or of everything (`-Z`).
    Zero {
        service: Option<ServiceKey>,
    },
    /// `--set tcp tcpfin udp`; a zero keeps the current value.
    SetTimeouts(Timeouts),
    StartSyncDaemon {
        role: SyncRole,
    },
    StopSyncDaemon {
        role: SyncRole,
    },
}
