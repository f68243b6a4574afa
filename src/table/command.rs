//! The typed commands that change the table: ipvsadm's command set. uvsadm, the config
//! loader and the health checker all speak in these; `Table::apply` is their one consumer.
//! Fields carry what the writer asked for (a scheduler *name*, a signed weight) so the
//! table can refuse it with the kernel's error, in the kernel's order.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::key::{Family, ServerKey, ServiceKey};
use super::listener::{ListenAddr, ListenRule};
use super::real_server::{Forward, Tunnel, TunnelKind};
use super::service::{Netmask, ServiceFlags, ServiceOptions};
use super::sync::{SyncDaemon, SyncRole};
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
    /// uvs's own settings.
    #[serde(default)]
    pub options: ServiceOptions,
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
    /// uvs's own settings of the server (the configuration file's per-server pool
    /// keys); `-a` and `-e` from uvsadm set none of them.
    #[serde(default)]
    pub options: ServerOptions,
}

/// What uvs adds to a real server beyond IPVS: the pool controls' per-server settings
/// (`table::pool`). ipvsadm's listings and `-S` do not show them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerOptions {
    /// Its own slow-start window in milliseconds, over its service's
    /// (`ServiceOptions::slow_start_ms`); `Some(0)` turns slow start off for it
    /// (`table::slow_start`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_start_ms: Option<u32>,
    /// `drain`: the file keeps the server drained (`table::pool`).
    pub drain: Option<super::pool::DrainSetting>,
    /// HAProxy's `maxconn`: connections (TCP) and flows (UDP) open at once on the
    /// server, TIME_WAIT not counted (`table::limit`); 0: no limit.
    #[serde(skip_serializing_if = "is_zero")]
    pub max_connections: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ServiceConfig {
    /// A service as `-A KEY -s SCHEDULER` makes it: no persistence, no flags, none of
    /// uvs's own options.
    pub fn new(key: ServiceKey, scheduler: &str) -> ServiceConfig {
        ServiceConfig {
            key,
            scheduler: scheduler.to_string(),
            flags: ServiceFlags::default(),
            timeout: 0,
            netmask: Netmask::full(key.family()),
            pe: None,
            options: ServiceOptions::default(),
        }
    }
}

impl ServerConfig {
    /// A real server as `-a ... -r ADDR:PORT` with `forward`'s switch makes it: weight
    /// 1, no thresholds, a plain ipip tunnel.
    pub fn new(addr: IpAddr, port: u16, forward: Forward) -> ServerConfig {
        ServerConfig {
            addr,
            port,
            forward,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tunnel: Tunnel::default(),
            options: ServerOptions::default(),
        }
    }

    /// A real server as `-a ... -r ADDR:PORT -m -w WEIGHT` makes it (no thresholds).
    pub fn masq(addr: std::net::SocketAddr, weight: i32) -> ServerConfig {
        ServerConfig {
            weight,
            ..ServerConfig::new(addr.ip(), addr.port(), Forward::Masq)
        }
    }

    pub fn key(&self) -> ServerKey {
        ServerKey {
            addr: self.addr,
            port: self.port,
        }
    }

    /// This server as it enters `service`'s list: a direct-routing (`-g`) or tunnelling
    /// (`-i`, any `--tun-type`) real server of an address service takes the service's
    /// port, whatever port was asked for; a NAT server keeps its own (0 included: the
    /// port the client reached), and so does every server of an fwmark service (which
    /// has no port). This is ipvsadm 1.31's rule (`process_options`, for `-a` and `-e`
    /// alike, never `-d`): DR and TUN forward the packet unchanged, so the port a real
    /// server receives on is the VIP's. The kernel (`ip_vs_add_dest`, `ip_vs_edit_dest`)
    /// keeps the port it is sent, so uvs applies the rule where ipvsadm does, before
    /// the add or the edit looks for the server: in [`Table::apply`](super::Table::apply),
    /// the one way into the table, whoever wrote the command (uvsadm, `-R`, a
    /// configuration file, an import, the control socket). What predicts the table
    /// (the configuration's reader, planner and writer) asks the same question here.
    pub fn in_service(&self, service: &ServiceKey) -> ServerConfig {
        let mut server = self.clone();
        if let ServiceKey::Inet { port, .. } = service
            && matches!(server.forward, Forward::Route | Forward::Tunnel)
        {
            server.port = *port;
        }
        server
    }
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
    /// The access lists and per-client limits of every service (`[global]`'s
    /// `allow`, `deny`, `deny_action`, `limits`; `table::admission`). Not ipvsadm's.
    SetAdmission(super::admission::Admission),
    /// `--start-daemon`: run a connection-sync daemon (one per role).
    StartSyncDaemon(SyncDaemon),
    StopSyncDaemon {
        role: SyncRole,
    },
    /// Reach a service on one more address (see `table::listener`).
    AddListener(ListenRule),
    DeleteListener {
        listen: ListenAddr,
    },
    /// uvs's timed drain (`uvs drain`, a file's `drain`, `drain_on_remove`): the server
    /// takes no new connection (weight in force 0, held Draining), its connections go
    /// on, and the pool controller removes it when the last one ends or at the deadline
    /// (`table::pool`). Asked again, the drain keeps its start and takes the new
    /// deadline. Errors: ipvsadm's "Service not defined", "No such destination".
    Drain {
        service: ServiceKey,
        server: ServerKey,
        /// Milliseconds from now to the deadline; None: until the last connection ends.
        deadline_ms: Option<u64>,
        /// Persistence templates naming the server stay usable (`--keep-persistent`).
        #[serde(default)]
        keep_persistent: bool,
    },
    /// Undoes a drain: the asked weight is in force again. For a server a command-line
    /// drain already removed, clears its mark so that the configuration file may add it
    /// again; a server neither present nor so marked is "No such destination".
    Undrain {
        service: ServiceKey,
        server: ServerKey,
    },
}

/// `-t 1.2.3.4:80`, `-f 5 -6`: the service as ipvsadm options.
pub(crate) struct ServiceArgs<'a>(pub &'a ServiceKey);

impl fmt::Display for ServiceArgs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ServiceKey::Inet {
                protocol,
                addr,
                port,
            } => write!(
                f,
                "{} {}",
                protocol.switch(),
                ServerKey {
                    addr: *addr,
                    port: *port
                }
            ),
            ServiceKey::Fwmark { mark, family } => {
                write!(f, "-f {mark}")?;
                if *family == Family::Inet6 {
                    f.write_str(" -6")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for ServiceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -s {}", ServiceArgs(&self.key), self.scheduler)?;
        if self.flags.persistent() {
            write!(f, " -p {}", self.timeout)?;
            if !self.netmask.is_full() {
                write!(f, " -M {}", self.netmask)?;
            }
        }
        if let Some(pe) = &self.pe {
            write!(f, " --pe {pe}")?;
        }
        if self.flags.one_packet() {
            f.write_str(" -o")?;
        }
        let flags = self.flags.scheduler_flag_names(&self.scheduler);
        if !flags.is_empty() {
            write!(f, " -b {flags}")?;
        }
        f.write_str(&self.options.arguments())
    }
}

impl fmt::Display for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "-r {} {} -w {}",
            self.key(),
            self.forward.switch(),
            self.weight
        )?;
        if self.u_threshold != 0 || self.l_threshold != 0 {
            write!(f, " -x {} -y {}", self.u_threshold, self.l_threshold)?;
        }
        if self.forward == Forward::Tunnel {
            let t = &self.tunnel;
            write!(f, " --tun-type {}", t.kind.name())?;
            if t.kind == TunnelKind::Gue {
                write!(f, " --tun-port {}", t.port)?;
            }
            if t.kind != TunnelKind::Ipip {
                write!(f, " {}", t.checksum.option())?;
            }
        }
        Ok(())
    }
}

/// A command as an ipvsadm command line, numeric (for logs: the words operators know);
/// uvs's own drain and undrain as `uvs drain` / `uvs undrain` take them.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::AddService(c) => write!(f, "-A {c}"),
            Command::EditService(c) => write!(f, "-E {c}"),
            Command::DeleteService { service } => write!(f, "-D {}", ServiceArgs(service)),
            Command::Flush {} => f.write_str("-C"),
            Command::AddServer { service, server } => {
                write!(f, "-a {} {server}", ServiceArgs(service))
            }
            Command::EditServer { service, server } => {
                write!(f, "-e {} {server}", ServiceArgs(service))
            }
            Command::DeleteServer { service, server } => {
                write!(f, "-d {} -r {server}", ServiceArgs(service))
            }
            Command::Zero { service: None } => f.write_str("-Z"),
            Command::Zero {
                service: Some(service),
            } => write!(f, "-Z {}", ServiceArgs(service)),
            Command::SetTimeouts(t) => write!(f, "--set {} {} {}", t.tcp, t.tcp_fin, t.udp),
            Command::SetAdmission(a) => {
                let (allow, deny) = a
                    .access
                    .as_ref()
                    .map_or((0, 0), |l| (l.allow().len(), l.deny().len()));
                write!(
                    f,
                    "global admission: allow {allow}, deny {deny}, deny_action {}, limits {}",
                    a.deny_action.name(),
                    if a.limits.is_some() { "on" } else { "off" }
                )
            }
            Command::StartSyncDaemon(d) => write!(f, "--start-daemon {}", d.role.name()),
            Command::StopSyncDaemon { role } => write!(f, "--stop-daemon {}", role.name()),
            Command::AddListener(rule) => write!(f, "--add-listener {rule}"),
            Command::DeleteListener { listen } => write!(f, "--delete-listener {listen}"),
            Command::Drain {
                service,
                server,
                deadline_ms,
                keep_persistent,
            } => {
                write!(f, "drain {} -r {server}", ServiceArgs(service))?;
                if let Some(ms) = deadline_ms {
                    let d = std::time::Duration::from_millis(*ms);
                    write!(f, " --deadline {}", humantime::format_duration(d))?;
                }
                if *keep_persistent {
                    f.write_str(" --keep-persistent")?;
                }
                Ok(())
            }
            Command::Undrain { service, server } => {
                write!(f, "undrain {} -r {server}", ServiceArgs(service))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_read_as_ipvsadm_lines() {
        let key = ServiceKey::Fwmark {
            mark: 6,
            family: Family::Inet6,
        };
        let add = Command::AddService(ServiceConfig {
            key,
            scheduler: "sh".into(),
            flags: ServiceFlags(ServiceFlags::PERSISTENT | ServiceFlags::SCHED2),
            timeout: 120,
            netmask: Netmask::V6(64),
            pe: None,
            options: ServiceOptions::default(),
        });
        assert_eq!(add.to_string(), "-A -f 6 -6 -s sh -p 120 -M 64 -b sh-port");
        let server = ServerConfig {
            options: Default::default(),
            addr: "2001:db8::20".parse().unwrap(),
            port: 0,
            forward: Forward::Tunnel,
            weight: 3,
            u_threshold: 10,
            l_threshold: 5,
            tunnel: Tunnel {
                kind: TunnelKind::Gue,
                port: 6080,
                checksum: super::super::real_server::TunnelChecksum::Csum,
            },
        };
        assert_eq!(
            Command::AddServer {
                service: key,
                server
            }
            .to_string(),
            "-a -f 6 -6 -r [2001:db8::20]:0 -i -w 3 -x 10 -y 5 --tun-type gue --tun-port 6080 --tun-csum"
        );
        assert_eq!(Command::Flush {}.to_string(), "-C");
    }

    #[test]
    fn drain_and_undrain_read_as_uvs_words() {
        let service = ServiceKey::Inet {
            protocol: super::super::key::Protocol::Tcp,
            addr: "127.0.0.1".parse().unwrap(),
            port: 80,
        };
        let server = ServerKey {
            addr: "127.0.0.2".parse().unwrap(),
            port: 80,
        };
        let drain = Command::Drain {
            service,
            server,
            deadline_ms: Some(30_000),
            keep_persistent: false,
        };
        assert_eq!(
            drain.to_string(),
            "drain -t 127.0.0.1:80 -r 127.0.0.2:80 --deadline 30s"
        );
        let kept = Command::Drain {
            service,
            server,
            deadline_ms: None,
            keep_persistent: true,
        };
        assert_eq!(
            kept.to_string(),
            "drain -t 127.0.0.1:80 -r 127.0.0.2:80 --keep-persistent"
        );
        assert_eq!(
            Command::Undrain { service, server }.to_string(),
            "undrain -t 127.0.0.1:80 -r 127.0.0.2:80"
        );
    }
}
