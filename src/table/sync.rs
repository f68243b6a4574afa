//! The connection-sync daemons' settings (`ipvsadm --start-daemon`, the file's `[sync]`):
//! which role, interface, sync id, message size, multicast group, port and TTL. The
//! table keeps at most one daemon per role, as the kernel does; the daemon's runner
//! (kernel mode: the kernel's own threads; userspace mode: `crate::sync`) starts and
//! stops what the table says. `uvsadm -L --daemon` prints them as ipvsadm does.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

/// Role of an IPVS connection-sync daemon (IP_VS_STATE_MASTER / IP_VS_STATE_BACKUP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncRole {
    Master,
    Backup,
}

impl SyncRole {
    pub fn name(self) -> &'static str {
        match self {
            SyncRole::Master => "master",
            SyncRole::Backup => "backup",
        }
    }

    /// The kernel's IPVS_DAEMON_ATTR_STATE value (IP_VS_STATE_MASTER = 1, BACKUP = 2).
    pub fn state(self) -> u32 {
        match self {
            SyncRole::Master => 1,
            SyncRole::Backup => 2,
        }
    }
}

/// ipvsadm's interface when `--mcast-interface` is not given (ipvsadm.c DEF_MCAST_IFN).
pub const DEFAULT_INTERFACE: &str = "eth0";
/// The longest interface name the kernel keeps (IP_VS_IFNAME_MAXLEN less its NUL);
/// ipvsadm cuts `--mcast-interface` to it (strncpy).
pub const INTERFACE_MAX: usize = 15;
/// The kernel's multicast group for IPv4 (IP_VS_SYNC_GROUP, 224.0.0.81).
pub const DEFAULT_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// The kernel's sync port (IP_VS_SYNC_PORT).
pub const DEFAULT_PORT: u16 = 8848;
/// The kernel's multicast TTL for sync messages.
pub const DEFAULT_TTL: u8 = 1;

/// One sync daemon's settings, as `ipvsadm --start-daemon` sends them (struct
/// ipvs_daemon_user; IPVS_DAEMON_ATTR_* in linux/ip_vs.h). Zero / `None` fields mean
/// "the default" and are filled in by [`SyncDaemon::resolved`] as the kernel fills them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncDaemon {
    pub role: SyncRole,
    /// `--mcast-interface`: the interface the master sends through, or the backup
    /// listens on (at most [`INTERFACE_MAX`] bytes).
    pub interface: String,
    /// `--syncid`: 0-255. A backup with a non-zero id takes only messages carrying it.
    pub syncid: u8,
    /// `--sync-maxlen`: the largest sync message, bytes of UDP payload; 0 = default.
    #[serde(default)]
    pub maxlen: u16,
    /// `--mcast-group`; `None` = the default group of the family.
    #[serde(default)]
    pub group: Option<IpAddr>,
    /// `--mcast-port`; 0 = [`DEFAULT_PORT`].
    #[serde(default)]
    pub port: u16,
    /// `--mcast-ttl`; 0 = [`DEFAULT_TTL`].
    #[serde(default)]
    pub ttl: u8,
}

impl SyncDaemon {
    /// A daemon of `role` on `interface` with every other setting left to its default
    /// (sync id 0, the kernel's maxlen, group, port and TTL).
    pub fn new(role: SyncRole, interface: &str) -> SyncDaemon {
        SyncDaemon {
            role,
            interface: interface.to_string(),
            syncid: 0,
            maxlen: 0,
            group: None,
            port: 0,
            ttl: 0,
        }
    }

    /// The settings with defaults filled in as the kernel fills them when the daemon
    /// starts (ip_vs_sync.c `start_sync_thread`), given the interface's MTU: without a
    /// group the IPv4 group 224.0.0.81, port 8848, TTL 1; a given maxlen is clamped to
    /// 1-65535 less the IP and UDP headers (1024 at least for a backup, which must take
    /// what any master sends); without one a master sends messages for a 1500-byte
    /// frame and a backup takes what its interface's MTU allows (1500-65535).
    pub fn resolved(&self, mtu: u32) -> SyncDaemon {
        let group = self.group.unwrap_or(IpAddr::V4(DEFAULT_GROUP_V4));
        let headers = headers(group);
        let (frame, least) = match self.role {
            SyncRole::Master => (1500, 1),
            SyncRole::Backup => (mtu.clamp(1500, 65535), 1024),
        };
        let maxlen = match u32::from(self.maxlen) {
            0 => frame - headers,
            n => n.clamp(least, 65535 - headers),
        };
        SyncDaemon {
            role: self.role,
            interface: self.interface.clone(),
            syncid: self.syncid,
            maxlen: u16::try_from(maxlen).unwrap_or(u16::MAX),
            group: Some(group),
            port: if self.port == 0 {
                DEFAULT_PORT
            } else {
                self.port
            },
            ttl: if self.ttl == 0 { DEFAULT_TTL } else { self.ttl },
        }
    }
}

/// The IP and UDP headers in front of a sync message sent to `group` (ip_vs_sync.c
/// `start_sync_thread`'s `hlen`).
fn headers(group: IpAddr) -> u32 {
    if group.is_ipv6() { 40 + 8 } else { 20 + 8 }
}

impl SyncDaemon {
    /// Whether this daemon, as it runs (resolved by uvs, or as the kernel reports it:
    /// an older kernel leaves out maxlen, group, port and TTL, which then count as
    /// matching), is what `asked` asks for: the same role, interface and sync id, and
    /// every other setting what `asked` resolves to. A backup asked without a maxlen
    /// takes its interface's MTU, which is not known here: any maxlen that some MTU
    /// gives matches. The file's `[sync]` is compared so at every reload, so that an
    /// unchanged section restarts nothing.
    pub fn runs_as(&self, asked: &SyncDaemon) -> bool {
        if self.role != asked.role
            || self.interface != asked.interface
            || self.syncid != asked.syncid
        {
            return false;
        }
        let group = asked.group.unwrap_or(IpAddr::V4(DEFAULT_GROUP_V4));
        let want = asked.resolved(u32::from(self.maxlen) + headers(group));
        (self.maxlen == 0 || self.maxlen == want.maxlen)
            && (self.group.is_none() || self.group == want.group)
            && (self.port == 0 || self.port == want.port)
            && (self.ttl == 0 || self.ttl == want.ttl)
    }
}

/// `-L --daemon`'s line for one daemon (ipvsadm.c `list_daemon`): each optional part is
/// printed only when the daemon has it (a kernel without the newer attributes leaves
/// them out), so print a [`SyncDaemon::resolved`] daemon to get ipvsadm 1.31's line on
/// a current kernel.
impl fmt::Display for SyncDaemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sync daemon (mcast={}, syncid={}",
            self.role.name(),
            self.interface,
            self.syncid
        )?;
        if self.maxlen != 0 {
            write!(f, ", maxlen={}", self.maxlen)?;
        }
        if let Some(group) = self.group {
            write!(f, ", group={group}")?;
        }
        if self.port != 0 {
            write!(f, ", port={}", self.port)?;
        }
        if self.ttl != 0 {
            write!(f, ", ttl={}", self.ttl)?;
        }
        f.write_str(")")
    }
}

/// The running daemons: at most a master and a backup (the kernel allows both at once).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncDaemons {
    pub master: Option<SyncDaemon>,
    pub backup: Option<SyncDaemon>,
}

impl SyncDaemons {
    pub fn get(&self, role: SyncRole) -> Option<&SyncDaemon> {
        match role {
            SyncRole::Master => self.master.as_ref(),
            SyncRole::Backup => self.backup.as_ref(),
        }
    }

    pub fn slot(&mut self, role: SyncRole) -> &mut Option<SyncDaemon> {
        match role {
            SyncRole::Master => &mut self.master,
            SyncRole::Backup => &mut self.backup,
        }
    }

    /// The daemons in the order `-L --daemon` lists them: master first (ipvsadm.c
    /// `list_daemon` walks the kernel's answer, which puts the master first).
    pub fn iter(&self) -> impl Iterator<Item = &SyncDaemon> {
        self.master.iter().chain(self.backup.iter())
    }
}

/// Which of the table's sync daemons a configuration file started, by role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncFromFile {
    pub master: bool,
    pub backup: bool,
}

impl SyncFromFile {
    pub fn get(&self, role: SyncRole) -> bool {
        match role {
            SyncRole::Master => self.master,
            SyncRole::Backup => self.backup,
        }
    }

    pub(super) fn set(&mut self, role: SyncRole, from_file: bool) {
        match role {
            SyncRole::Master => self.master = from_file,
            SyncRole::Backup => self.backup = from_file,
        }
    }
}

/// What the kernel refuses at `--start-daemon` with EINVAL before it looks at the
/// interface (ip_vs_ctl.c `ip_vs_genl_new_daemon`): an empty interface name and a group
/// that is not multicast. That the interface exists is the runner's to check (ENODEV).
pub fn check(daemon: &SyncDaemon) -> Result<(), super::TableError> {
    let bad_group = daemon.group.is_some_and(|g| !g.is_multicast());
    if daemon.interface.is_empty() || daemon.interface.len() > INTERFACE_MAX || bad_group {
        return Err(super::TableError::SyncDaemonInvalid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolved_daemon_prints_as_ipvsadm_1_31_does() {
        let d = SyncDaemon {
            syncid: 7,
            ..SyncDaemon::new(SyncRole::Master, "lo")
        };
        // shared/golden/daemon_L_n_daemon.out
        assert_eq!(
            d.resolved(65536).to_string(),
            "master sync daemon (mcast=lo, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)"
        );
        let backup = SyncDaemon {
            role: SyncRole::Backup,
            ..d.clone()
        };
        assert_eq!(backup.resolved(65536).maxlen, 65507);
        assert_eq!(backup.resolved(1500).maxlen, 1472);
        let small = SyncDaemon {
            maxlen: 100,
            ..backup
        };
        assert_eq!(small.resolved(1500).maxlen, 1024);
        let v6 = SyncDaemon {
            group: Some("ff02::1:81".parse().unwrap()),
            ..d.clone()
        };
        assert_eq!(v6.resolved(1500).maxlen, 1452);
        // start_sync_thread's clamps: a backup takes its MTU (1500-65535), a given
        // maxlen stays within 1 (master) or 1024 (backup) and 65535 less the headers.
        let with = |role, maxlen, group: Option<IpAddr>, mtu| {
            SyncDaemon {
                role,
                maxlen,
                group,
                ..d.clone()
            }
            .resolved(mtu)
            .maxlen
        };
        let v6g = Some("ff02::1:81".parse().unwrap());
        assert_eq!(with(SyncRole::Backup, 0, None, 1280), 1472);
        assert_eq!(with(SyncRole::Backup, 0, None, 9000), 8972);
        assert_eq!(with(SyncRole::Master, 0, None, 9000), 1472);
        assert_eq!(with(SyncRole::Master, 100, None, 1500), 100);
        assert_eq!(with(SyncRole::Master, 65535, None, 1500), 65507);
        assert_eq!(with(SyncRole::Master, 65535, v6g, 1500), 65487);
        assert_eq!(d.to_string(), "master sync daemon (mcast=lo, syncid=7)");
    }

    #[test]
    fn a_running_daemon_is_compared_with_what_was_asked_as_resolved() {
        let asked = SyncDaemon {
            syncid: 7,
            ..SyncDaemon::new(SyncRole::Backup, "lo")
        };
        // Whatever MTU the interface had: the defaults, and the maxlen it gave.
        for mtu in [1500, 9000, 65536] {
            assert!(asked.resolved(mtu).runs_as(&asked), "{mtu}");
        }
        // An older kernel reports no maxlen, group, port or TTL.
        assert!(asked.runs_as(&asked));
        let ran = asked.resolved(65536);
        assert!(ran.runs_as(&ran), "a resolved daemon asks for itself");
        for other in [
            SyncDaemon {
                syncid: 8,
                ..asked.clone()
            },
            SyncDaemon {
                interface: "eth0".into(),
                ..asked.clone()
            },
            SyncDaemon {
                role: SyncRole::Master,
                ..asked.clone()
            },
            SyncDaemon {
                maxlen: 1400,
                ..asked.clone()
            },
            SyncDaemon {
                port: 9000,
                ..asked.clone()
            },
            SyncDaemon {
                ttl: 2,
                ..asked.clone()
            },
            SyncDaemon {
                group: Some("239.1.2.3".parse().unwrap()),
                ..asked.clone()
            },
        ] {
            assert!(!ran.runs_as(&other), "{other:?}");
        }
        // A backup's maxlen below 1024 is raised to it: asking for 100 is what runs.
        let small = SyncDaemon {
            maxlen: 100,
            ..asked.clone()
        };
        assert!(small.resolved(1500).runs_as(&small));
        assert!(!small.resolved(1500).runs_as(&asked));
    }
}
