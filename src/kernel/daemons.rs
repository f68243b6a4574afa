//! The kernel's connection-sync daemons over the IPVS generic netlink family:
//! `--start-daemon` (IPVS_CMD_NEW_DAEMON), `--stop-daemon` (IPVS_CMD_DEL_DAEMON) and
//! `-L --daemon` (the IPVS_CMD_GET_DAEMON dump), each sent with the attributes and in
//! the order ipvsadm 1.31 sends them (libipvs/libipvs.c `ipvs_start_daemon`,
//! `ipvs_stop_daemon`, `ipvs_get_daemon`), the answers read as libipvs reads them
//! (`ipvs_daemon_parse_cb`), and the kernel's errno put in libipvs's words
//! (`ipvs_strerror`). The kernel's side is net/netfilter/ipvs/ip_vs_ctl.c
//! (`ip_vs_genl_new_daemon`, `ip_vs_genl_del_daemon`, `ip_vs_genl_dump_daemons`,
//! `ip_vs_genl_fill_daemon`).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ipvs::{Ipvs, VERSION};
use super::netlink::{NLM_F_ACK, NLM_F_DUMP, Request, as_string, as_u16, as_u32, attributes, find};
use crate::table::{SyncDaemon, SyncRole, TableError};

/// Commands (enum IPVS_CMD_*).
pub const CMD_NEW_DAEMON: u8 = 9;
pub const CMD_DEL_DAEMON: u8 = 10;
pub const CMD_GET_DAEMON: u8 = 11;

/// The command attribute that nests a daemon's (IPVS_CMD_ATTR_DAEMON).
const ATTR_DAEMON: u16 = 3;

/// Daemon attributes (IPVS_DAEMON_ATTR_*).
const DAEMON_STATE: u16 = 1;
const DAEMON_MCAST_IFN: u16 = 2;
const DAEMON_SYNC_ID: u16 = 3;
const DAEMON_SYNC_MAXLEN: u16 = 4;
const DAEMON_MCAST_GROUP: u16 = 5;
const DAEMON_MCAST_GROUP6: u16 = 6;
const DAEMON_MCAST_PORT: u16 = 7;
const DAEMON_MCAST_TTL: u16 = 8;

/// `--start-daemon`: state, interface and sync id always; maxlen, port, TTL and the
/// group only when given (libipvs `ipvs_start_daemon`). Zero fields are "the kernel's
/// default", as in [`SyncDaemon`]; a resolved daemon sends every one.
pub fn start_request(family: u16, daemon: &SyncDaemon) -> Request {
    let mut r = Request::new(family, NLM_F_ACK, CMD_NEW_DAEMON, VERSION);
    r.nest(ATTR_DAEMON);
    r.u32(DAEMON_STATE, daemon.role.state())
        .string(DAEMON_MCAST_IFN, &daemon.interface)
        .u32(DAEMON_SYNC_ID, u32::from(daemon.syncid));
    if daemon.maxlen != 0 {
        r.u16(DAEMON_SYNC_MAXLEN, daemon.maxlen);
    }
    // The port in host order: the kernel turns it around (ip_vs_sync.c).
    if daemon.port != 0 {
        r.u16(DAEMON_MCAST_PORT, daemon.port);
    }
    if daemon.ttl != 0 {
        r.u8(DAEMON_MCAST_TTL, daemon.ttl);
    }
    match daemon.group {
        Some(IpAddr::V6(g)) => {
            r.attr(DAEMON_MCAST_GROUP6, &g.octets());
        }
        Some(IpAddr::V4(g)) => {
            r.attr(DAEMON_MCAST_GROUP, &g.octets());
        }
        None => {}
    }
    r.end_nest();
    r
}

/// `--stop-daemon ROLE`: the role, an empty interface and sync id 0, as ipvsadm sends
/// them without `--mcast-interface` or `--syncid` (ipvsadm.c fills in its default
/// interface for a start only); the kernel reads only the role.
pub fn stop_request(family: u16, role: SyncRole) -> Request {
    let mut r = Request::new(family, NLM_F_ACK, CMD_DEL_DAEMON, VERSION);
    r.nest(ATTR_DAEMON);
    r.u32(DAEMON_STATE, role.state())
        .string(DAEMON_MCAST_IFN, "")
        .u32(DAEMON_SYNC_ID, 0);
    r.end_nest();
    r
}

/// The dump of the running daemons (`ipvs_get_daemon`).
pub fn daemons_dump(family: u16) -> Request {
    Request::new(family, NLM_F_DUMP | NLM_F_ACK, CMD_GET_DAEMON, VERSION)
}

/// Reads one daemon of a GET_DAEMON dump (its payload: genl header and attributes),
/// as `ipvs_daemon_parse_cb` does: state, interface and sync id are needed; maxlen,
/// port, TTL and group are taken when the kernel sends them (before Linux 4.3 it
/// does not), else left 0 or None, so that the line lists only what the kernel said.
/// A state that is neither master nor backup gives None, as `list_daemon` skips it.
pub fn read_daemon(payload: &[u8]) -> Option<SyncDaemon> {
    let outer = attributes(payload.get(4..)?);
    let nested = find(&outer, ATTR_DAEMON)?;
    let attrs = attributes(&nested);
    let state = as_u32(&find(&attrs, DAEMON_STATE)?)?;
    // list_daemon tests the master bit first.
    let role = if state & SyncRole::Master.state() != 0 {
        SyncRole::Master
    } else if state & SyncRole::Backup.state() != 0 {
        SyncRole::Backup
    } else {
        return None;
    };
    let interface = as_string(&find(&attrs, DAEMON_MCAST_IFN)?);
    // libipvs keeps IP_VS_IFNAME_MAXLEN - 1 bytes of it.
    let interface = cut(&interface, crate::table::sync::INTERFACE_MAX);
    let syncid = as_u32(&find(&attrs, DAEMON_SYNC_ID)?)?;
    let group = find(&attrs, DAEMON_MCAST_GROUP)
        .and_then(|v| {
            Some(IpAddr::V4(Ipv4Addr::from(
                <[u8; 4]>::try_from(v.get(..4)?).ok()?,
            )))
        })
        .or_else(|| {
            let v = find(&attrs, DAEMON_MCAST_GROUP6)?;
            let octets: [u8; 16] = v.get(..16)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        });
    Some(SyncDaemon {
        role,
        interface,
        // ipvsadm prints it with %d; the kernel keeps 0-255.
        syncid: u8::try_from(syncid).unwrap_or(u8::MAX),
        maxlen: find(&attrs, DAEMON_SYNC_MAXLEN)
            .and_then(|v| as_u16(&v))
            .unwrap_or(0),
        group,
        port: find(&attrs, DAEMON_MCAST_PORT)
            .and_then(|v| as_u16(&v))
            .unwrap_or(0),
        ttl: find(&attrs, DAEMON_MCAST_TTL)
            .and_then(|v| v.first().copied())
            .unwrap_or(0),
    })
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// What ipvsadm prints for the kernel's refusal `error` of a start (`stop`: false)
/// or a stop (libipvs `ipvs_strerror`, whose table has EEXIST for a start and ESRCH
/// for a stop, then the errors of any call; strerror for the rest, ENODEV among them).
pub fn refusal(error: &io::Error, stop: bool) -> TableError {
    let Some(errno) = error.raw_os_error() else {
        return TableError::Kernel {
            message: error.to_string(),
        };
    };
    match errno {
        libc::EEXIST if !stop => TableError::SyncDaemonRunning,
        libc::ESRCH if stop => TableError::NoSyncDaemon,
        libc::EINVAL => TableError::SyncDaemonInvalid,
        libc::ENODEV => TableError::NoSuchDevice,
        _ => TableError::Kernel {
            message: strerror_words(errno),
        },
    }
}

/// `ipvs_strerror`'s entries for any call, else the C library's text (without Rust's
/// " (os error N)").
fn strerror_words(errno: i32) -> String {
    let words = match errno {
        libc::EPERM => "Permission denied (you must be root)",
        libc::ENOPROTOOPT => "Protocol not available",
        libc::ENOMEM => "Memory allocation problem",
        libc::EOPNOTSUPP => "Operation not supported with IPv6",
        libc::EAFNOSUPPORT => "Operation not supported with specified address family",
        libc::EMSGSIZE => "Module is wrong version",
        _ => {
            let text = io::Error::from_raw_os_error(errno).to_string();
            return match text.rfind(" (os error ") {
                Some(at) => text[..at].to_string(),
                None => text,
            };
        }
    };
    words.to_string()
}

impl Ipvs {
    /// Starts a sync daemon in the kernel. Errors: the kernel's errno.
    pub fn start_daemon(&mut self, daemon: &SyncDaemon) -> io::Result<()> {
        self.ask(&start_request(self.family(), daemon)).map(drop)
    }

    /// Stops the kernel's sync daemon of `role`. Errors: the kernel's errno (ESRCH:
    /// none runs).
    pub fn stop_daemon(&mut self, role: SyncRole) -> io::Result<()> {
        self.ask(&stop_request(self.family(), role)).map(drop)
    }

    /// The kernel's running sync daemons, master first (`ip_vs_genl_dump_daemons`).
    pub fn daemons(&mut self) -> io::Result<Vec<SyncDaemon>> {
        let request = daemons_dump(self.family());
        Ok(self
            .ask(&request)?
            .iter()
            .filter_map(|m| read_daemon(&m.payload))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAMILY: u16 = 0x20;

    /// One attribute as bytes: length, type, value, padding to four bytes.
    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(4 + value.len() as u16).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(value);
        out.resize(out.len().div_ceil(4) * 4, 0);
        out
    }

    /// A message's payload: the genl header (`cmd`, version 1) and the daemon nest
    /// (with `flag` on its type: NLA_F_NESTED as libnl 3.7 sets it, none as the kernel
    /// sends it, `nla_nest_start_noflag`).
    fn message(cmd: u8, flag: u16, inner: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = inner.concat();
        let mut out = vec![cmd, 1, 0, 0];
        out.extend(attr(ATTR_DAEMON | flag, &body));
        out
    }

    fn master_lo_7() -> SyncDaemon {
        SyncDaemon {
            syncid: 7,
            ..SyncDaemon::new(SyncRole::Master, "lo")
        }
    }

    #[test]
    fn a_start_is_sent_as_ipvsadm_sends_it() {
        // ipvsadm --start-daemon master --mcast-interface lo --syncid 7: the nest
        // (0x8003), STATE u32 1, MCAST_IFN "lo\0", SYNC_ID u32 7, nothing else.
        let expected = message(
            CMD_NEW_DAEMON,
            0x8000,
            &[
                attr(DAEMON_STATE, &1u32.to_ne_bytes()),
                attr(DAEMON_MCAST_IFN, b"lo\0"),
                attr(DAEMON_SYNC_ID, &7u32.to_ne_bytes()),
            ],
        );
        assert_eq!(
            start_request(FAMILY, &master_lo_7()).payload(),
            expected.as_slice()
        );
        // Every option: maxlen, port, TTL, then the group (libipvs's order).
        let all = SyncDaemon {
            syncid: 200,
            maxlen: 1400,
            group: Some("239.1.2.3".parse().unwrap()),
            port: 9000,
            ttl: 3,
            ..SyncDaemon::new(SyncRole::Backup, "eth1")
        };
        let expected = message(
            CMD_NEW_DAEMON,
            0x8000,
            &[
                attr(DAEMON_STATE, &2u32.to_ne_bytes()),
                attr(DAEMON_MCAST_IFN, b"eth1\0"),
                attr(DAEMON_SYNC_ID, &200u32.to_ne_bytes()),
                attr(DAEMON_SYNC_MAXLEN, &1400u16.to_ne_bytes()),
                attr(DAEMON_MCAST_PORT, &9000u16.to_ne_bytes()),
                attr(DAEMON_MCAST_TTL, &[3]),
                attr(DAEMON_MCAST_GROUP, &[239, 1, 2, 3]),
            ],
        );
        assert_eq!(start_request(FAMILY, &all).payload(), expected.as_slice());
        let v6 = SyncDaemon {
            group: Some("ff02::1:81".parse().unwrap()),
            ..all
        };
        let sent = start_request(FAMILY, &v6);
        let group6 = attr(
            DAEMON_MCAST_GROUP6,
            &"ff02::1:81".parse::<Ipv6Addr>().unwrap().octets(),
        );
        assert!(sent.payload().ends_with(&group6));
    }

    #[test]
    fn a_stop_is_sent_as_ipvsadm_sends_it() {
        // ipvsadm --stop-daemon backup: STATE u32 2, an empty MCAST_IFN, SYNC_ID 0.
        let expected = message(
            CMD_DEL_DAEMON,
            0x8000,
            &[
                attr(DAEMON_STATE, &2u32.to_ne_bytes()),
                attr(DAEMON_MCAST_IFN, b"\0"),
                attr(DAEMON_SYNC_ID, &0u32.to_ne_bytes()),
            ],
        );
        assert_eq!(
            stop_request(FAMILY, SyncRole::Backup).payload(),
            expected.as_slice()
        );
        assert_eq!(daemons_dump(FAMILY).payload(), &[CMD_GET_DAEMON, 1, 0, 0]);
    }

    #[test]
    fn the_kernels_answer_is_read_as_libipvs_reads_it() {
        // What Linux 6.1 sends after the start above (ip_vs_genl_fill_daemon): state,
        // interface, sync id, maxlen 1472, port 8848, TTL 1, then the IPv4 group, in a
        // nest without NLA_F_NESTED; the answer's command is NEW_DAEMON.
        let answer = message(
            CMD_NEW_DAEMON,
            0,
            &[
                attr(DAEMON_STATE, &1u32.to_ne_bytes()),
                attr(DAEMON_MCAST_IFN, b"lo\0"),
                attr(DAEMON_SYNC_ID, &7u32.to_ne_bytes()),
                attr(DAEMON_SYNC_MAXLEN, &1472u16.to_ne_bytes()),
                attr(DAEMON_MCAST_PORT, &8848u16.to_ne_bytes()),
                attr(DAEMON_MCAST_TTL, &[1]),
                attr(DAEMON_MCAST_GROUP, &[224, 0, 0, 81]),
            ],
        );
        let read = read_daemon(&answer).unwrap();
        // shared/golden/daemon_L_n_daemon.out
        assert_eq!(
            read.to_string(),
            "master sync daemon (mcast=lo, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)"
        );
        assert_eq!(read, master_lo_7().resolved(65536));
        // An older kernel: the three attributes only, and a shorter line.
        let old = message(
            CMD_NEW_DAEMON,
            0,
            &[
                attr(DAEMON_STATE, &2u32.to_ne_bytes()),
                attr(DAEMON_MCAST_IFN, b"eth0\0"),
                attr(DAEMON_SYNC_ID, &0u32.to_ne_bytes()),
            ],
        );
        assert_eq!(
            read_daemon(&old).unwrap().to_string(),
            "backup sync daemon (mcast=eth0, syncid=0)"
        );
        // An IPv6 group.
        let v6 = message(
            CMD_NEW_DAEMON,
            0,
            &[
                attr(DAEMON_STATE, &2u32.to_ne_bytes()),
                attr(DAEMON_MCAST_IFN, b"lo\0"),
                attr(DAEMON_SYNC_ID, &1u32.to_ne_bytes()),
                attr(
                    DAEMON_MCAST_GROUP6,
                    &"ff02::1:81".parse::<Ipv6Addr>().unwrap().octets(),
                ),
            ],
        );
        assert_eq!(
            read_daemon(&v6).unwrap().group,
            Some("ff02::1:81".parse().unwrap())
        );
        // What is not a daemon, or lacks what libipvs needs, is not read.
        let no_id = message(
            CMD_NEW_DAEMON,
            0,
            &[
                attr(DAEMON_STATE, &1u32.to_ne_bytes()),
                attr(DAEMON_MCAST_IFN, b"lo\0"),
            ],
        );
        assert_eq!(read_daemon(&no_id), None);
        let no_state = message(
            CMD_NEW_DAEMON,
            0,
            &[
                attr(DAEMON_STATE, &0u32.to_ne_bytes()),
                attr(DAEMON_MCAST_IFN, b"lo\0"),
                attr(DAEMON_SYNC_ID, &1u32.to_ne_bytes()),
            ],
        );
        assert_eq!(read_daemon(&no_state), None);
        assert_eq!(read_daemon(&[CMD_NEW_DAEMON, 1]), None);
    }

    /// tests/fixtures/netlink/capture.out: what ipvsadm 1.31 sent to Linux 6.1, and
    /// what the kernel answered to `-L -n --daemon`.
    #[test]
    fn requests_and_answers_are_those_captured_on_a_real_kernel() {
        use crate::kernel::ipvs::tests::{captured, payloads};
        assert_eq!(
            start_request(FAMILY, &master_lo_7()).payload(),
            captured("start daemon", CMD_NEW_DAEMON)
        );
        let all = SyncDaemon {
            syncid: 200,
            maxlen: 1400,
            group: Some("239.1.2.3".parse().unwrap()),
            port: 9000,
            ttl: 3,
            ..SyncDaemon::new(SyncRole::Backup, "lo")
        };
        assert_eq!(
            start_request(FAMILY, &all).payload(),
            captured("start daemon every option", CMD_NEW_DAEMON)
        );
        assert_eq!(
            stop_request(FAMILY, SyncRole::Backup).payload(),
            captured("stop daemon", CMD_DEL_DAEMON)
        );
        assert_eq!(
            daemons_dump(FAMILY).payload(),
            captured("daemons dump", CMD_GET_DAEMON)
        );
        let v6 = SyncDaemon {
            group: Some("ff02::1:81".parse().unwrap()),
            ..SyncDaemon::new(SyncRole::Backup, "lo")
        };
        assert_eq!(
            start_request(FAMILY, &v6).payload(),
            captured("start daemon v6", CMD_NEW_DAEMON)
        );
        let listed = |section: &str| -> Vec<SyncDaemon> {
            payloads(section, "recvmsg")
                .iter()
                .filter(|p| p.first() == Some(&CMD_NEW_DAEMON))
                .filter_map(|p| read_daemon(p))
                .collect()
        };
        // lo's MTU is 65536: the backup takes the largest datagram.
        let both = listed("daemons dump");
        let lines: Vec<String> = both.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "master sync daemon (mcast=lo, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)",
                "backup sync daemon (mcast=lo, syncid=200, maxlen=1400, group=239.1.2.3, port=9000, ttl=3)",
            ]
        );
        // And uvs resolves as the kernel did.
        assert_eq!(both, [master_lo_7().resolved(65536), all.resolved(65536)]);
        assert_eq!(listed("daemons dump v6"), [v6.resolved(65536)]);
        assert_eq!(listed("daemons dump v6")[0].maxlen, 65535 - 48);
    }

    #[test]
    fn the_kernels_refusals_are_in_libipvs_words() {
        let said = |errno, stop| refusal(&io::Error::from_raw_os_error(errno), stop).to_string();
        assert_eq!(said(libc::EEXIST, false), "Daemon has already run");
        assert_eq!(said(libc::ESRCH, true), "No daemon is running");
        assert_eq!(said(libc::ENODEV, false), "No such device");
        assert_eq!(
            said(libc::EINVAL, false),
            "Invalid operation.  Possibly wrong module version, address not unicast, ..."
        );
        assert_eq!(
            said(libc::EPERM, true),
            "Permission denied (you must be root)"
        );
        // EEXIST of a stop is not in libipvs's table: strerror's words.
        assert_eq!(said(libc::EEXIST, true), "File exists");
        assert_eq!(said(libc::EBUSY, false), "Device or resource busy");
    }
}
