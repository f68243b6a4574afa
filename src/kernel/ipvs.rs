//! The kernel's IPVS generic netlink interface (linux/ip_vs.h): the "IPVS" family's
//! commands, built from the table's own types with the attributes and the order
//! ipvsadm 1.31 (libipvs) sends, and its answers read back into them. The unit tests
//! compare against messages captured from real ipvsadm on a real IPVS kernel
//! (tests/fixtures/netlink, made with shared/ipvs-vm).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::netlink::{
    NLM_F_ACK, NLM_F_DUMP, Request, Socket, as_be16, as_string, as_u16, as_u32, as_u64, attributes,
    find,
};
use crate::stats::{Counters, Rates};
use crate::table::{
    Family, Forward, Netmask, Protocol, ServerConfig, ServerKey, ServiceConfig, ServiceFlags,
    ServiceKey, Timeouts, Tunnel, TunnelChecksum, TunnelKind,
};

pub const FAMILY_NAME: &str = "IPVS";
pub const VERSION: u8 = 1;

/// Commands (enum IPVS_CMD_*).
pub const CMD_NEW_SERVICE: u8 = 1;
pub const CMD_SET_SERVICE: u8 = 2;
pub const CMD_DEL_SERVICE: u8 = 3;
pub const CMD_GET_SERVICE: u8 = 4;
pub const CMD_NEW_DEST: u8 = 5;
pub const CMD_SET_DEST: u8 = 6;
pub const CMD_DEL_DEST: u8 = 7;
pub const CMD_GET_DEST: u8 = 8;
pub const CMD_SET_CONFIG: u8 = 12;
pub const CMD_GET_INFO: u8 = 15;
pub const CMD_ZERO: u8 = 16;
pub const CMD_FLUSH: u8 = 17;

/// Command attributes (IPVS_CMD_ATTR_*).
const ATTR_SERVICE: u16 = 1;
const ATTR_DEST: u16 = 2;
const ATTR_TIMEOUT_TCP: u16 = 4;
const ATTR_TIMEOUT_TCP_FIN: u16 = 5;
const ATTR_TIMEOUT_UDP: u16 = 6;

/// Service attributes (IPVS_SVC_ATTR_*).
const SVC_AF: u16 = 1;
const SVC_PROTOCOL: u16 = 2;
const SVC_ADDR: u16 = 3;
const SVC_PORT: u16 = 4;
const SVC_FWMARK: u16 = 5;
const SVC_SCHED_NAME: u16 = 6;
const SVC_FLAGS: u16 = 7;
const SVC_TIMEOUT: u16 = 8;
const SVC_NETMASK: u16 = 9;
const SVC_PE_NAME: u16 = 11;
const SVC_STATS64: u16 = 12;

/// Destination attributes (IPVS_DEST_ATTR_*).
const DEST_ADDR: u16 = 1;
const DEST_PORT: u16 = 2;
const DEST_FWD_METHOD: u16 = 3;
const DEST_WEIGHT: u16 = 4;
const DEST_U_THRESH: u16 = 5;
const DEST_L_THRESH: u16 = 6;
const DEST_ACTIVE_CONNS: u16 = 7;
const DEST_INACT_CONNS: u16 = 8;
const DEST_PERSIST_CONNS: u16 = 9;
const DEST_ADDR_FAMILY: u16 = 11;
const DEST_STATS64: u16 = 12;
const DEST_TUN_TYPE: u16 = 13;
const DEST_TUN_PORT: u16 = 14;
const DEST_TUN_FLAGS: u16 = 15;

/// Info attributes (IPVS_INFO_ATTR_*).
const INFO_VERSION: u16 = 1;
const INFO_CONN_TAB_SIZE: u16 = 2;

/// Stats attributes (IPVS_STATS_ATTR_*), the first five.
const STATS_CONNS: u16 = 1;
const STATS_INPKTS: u16 = 2;
const STATS_OUTPKTS: u16 = 3;
const STATS_INBYTES: u16 = 4;
const STATS_OUTBYTES: u16 = 5;
const STATS_CPS: u16 = 6;
const STATS_INPPS: u16 = 7;
const STATS_OUTPPS: u16 = 8;
const STATS_INBPS: u16 = 9;
const STATS_OUTBPS: u16 = 10;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

fn af(family: Family) -> u16 {
    match family {
        Family::Inet => AF_INET,
        Family::Inet6 => AF_INET6,
    }
}

/// An address as the kernel's 16-byte `union nf_inet_addr`.
fn addr_bytes(addr: &IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match addr {
        IpAddr::V4(a) => out[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => out.copy_from_slice(&a.octets()),
    }
    out
}

fn addr_from(bytes: &[u8], family: u16) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::new(
            *bytes.first()?,
            *bytes.get(1)?,
            *bytes.get(2)?,
            *bytes.get(3)?,
        ))),
        AF_INET6 => {
            let octets: [u8; 16] = bytes.get(..16)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => None,
    }
}

fn protocol_number(p: Protocol) -> u16 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    }
}

fn netmask_value(netmask: Netmask) -> [u8; 4] {
    match netmask {
        // A big-endian mask for IPv4, as the kernel keeps it.
        Netmask::V4(m) => m.octets(),
        Netmask::V6(prefix) => prefix.to_ne_bytes(),
    }
}

/// The service attributes: its identity, then scheduler, flags (all bits meant),
/// persistence timeout, netmask and persistence engine. Commands about a service's
/// servers send the identity with an empty scheduler and no flags, as ipvsadm does.
fn service_attrs(r: &mut Request, config: &ServiceConfig) {
    let key = config.key;
    r.nest(ATTR_SERVICE);
    r.u16(SVC_AF, af(key.family()));
    match key {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => {
            r.u16(SVC_PROTOCOL, protocol_number(protocol));
            r.attr(SVC_ADDR, &addr_bytes(&addr));
            r.be16(SVC_PORT, port);
        }
        ServiceKey::Fwmark { mark, .. } => {
            r.u32(SVC_FWMARK, mark);
        }
    }
    r.string(SVC_SCHED_NAME, &config.scheduler);
    let mut flags = [0u8; 8];
    flags[..4].copy_from_slice(&config.flags.0.to_ne_bytes());
    flags[4..].copy_from_slice(&u32::MAX.to_ne_bytes());
    r.attr(SVC_FLAGS, &flags);
    r.u32(SVC_TIMEOUT, config.timeout);
    r.attr(SVC_NETMASK, &netmask_value(config.netmask));
    if let Some(pe) = &config.pe {
        r.string(SVC_PE_NAME, pe);
    }
    r.end_nest();
}

/// A service's identity, as ipvsadm sends it with server commands.
fn identity(key: ServiceKey) -> ServiceConfig {
    ServiceConfig {
        key,
        scheduler: String::new(),
        flags: ServiceFlags::default(),
        timeout: 0,
        netmask: Netmask::full(key.family()),
        pe: None,
        options: Default::default(),
    }
}

fn forward_method(f: Forward) -> u32 {
    match f {
        Forward::Masq => 0,
        Forward::Local => 1,
        Forward::Tunnel => 2,
        Forward::Route => 3,
    }
}

fn dest_attrs(r: &mut Request, server: &ServerConfig) {
    r.nest(ATTR_DEST);
    r.u16(DEST_ADDR_FAMILY, af(Family::of(&server.addr)));
    r.attr(DEST_ADDR, &addr_bytes(&server.addr));
    r.be16(DEST_PORT, server.port);
    r.u32(DEST_FWD_METHOD, forward_method(server.forward));
    r.u32(DEST_WEIGHT, server.weight.max(0) as u32);
    let t = server.tunnel;
    let tunnel = t.kind != TunnelKind::Ipip || t.port != 0 || t.checksum != TunnelChecksum::NoCsum;
    let (kind, flags) = if server.forward == Forward::Tunnel || tunnel {
        (
            match t.kind {
                TunnelKind::Ipip => 0,
                TunnelKind::Gue => 1,
                TunnelKind::Gre => 2,
            },
            match t.checksum {
                TunnelChecksum::NoCsum => 0,
                TunnelChecksum::Csum => 1,
                TunnelChecksum::RemCsum => 2,
            },
        )
    } else {
        (0, 0)
    };
    r.u8(DEST_TUN_TYPE, kind);
    r.be16(DEST_TUN_PORT, t.port);
    r.u16(DEST_TUN_FLAGS, flags);
    r.u32(DEST_U_THRESH, server.u_threshold);
    r.u32(DEST_L_THRESH, server.l_threshold);
    r.end_nest();
}

/// `-A` (`edit`: `-E`).
pub fn service_request(family: u16, config: &ServiceConfig, edit: bool) -> Request {
    let cmd = if edit {
        CMD_SET_SERVICE
    } else {
        CMD_NEW_SERVICE
    };
    let mut r = Request::new(family, NLM_F_ACK, cmd, VERSION);
    service_attrs(&mut r, config);
    r
}

/// `-D`.
pub fn delete_service_request(family: u16, key: ServiceKey) -> Request {
    let mut r = Request::new(family, NLM_F_ACK, CMD_DEL_SERVICE, VERSION);
    service_attrs(&mut r, &identity(key));
    r
}

/// `-a` (`edit`: `-e`).
pub fn server_request(
    family: u16,
    service: ServiceKey,
    server: &ServerConfig,
    edit: bool,
) -> Request {
    let cmd = if edit { CMD_SET_DEST } else { CMD_NEW_DEST };
    let mut r = Request::new(family, NLM_F_ACK, cmd, VERSION);
    service_attrs(&mut r, &identity(service));
    dest_attrs(&mut r, server);
    r
}

/// `-d`: the server named by its address and port (the rest as ipvsadm's defaults).
pub fn delete_server_request(family: u16, service: ServiceKey, server: ServerKey) -> Request {
    let mut r = Request::new(family, NLM_F_ACK, CMD_DEL_DEST, VERSION);
    service_attrs(&mut r, &identity(service));
    dest_attrs(
        &mut r,
        &ServerConfig::new(server.addr, server.port, Forward::Route),
    );
    r
}

/// `--set tcp tcpfin udp`.
pub fn timeouts_request(family: u16, t: Timeouts) -> Request {
    let mut r = Request::new(family, NLM_F_ACK, CMD_SET_CONFIG, VERSION);
    r.u32(ATTR_TIMEOUT_TCP, t.tcp)
        .u32(ATTR_TIMEOUT_TCP_FIN, t.tcp_fin)
        .u32(ATTR_TIMEOUT_UDP, t.udp);
    r
}

/// `-Z` of everything, or of one service.
pub fn zero_request(family: u16, service: Option<ServiceKey>) -> Request {
    let mut r = Request::new(family, NLM_F_ACK, CMD_ZERO, VERSION);
    if let Some(key) = service {
        service_attrs(&mut r, &identity(key));
    }
    r
}

/// The dump of every service.
pub fn services_dump(family: u16) -> Request {
    Request::new(family, NLM_F_DUMP | NLM_F_ACK, CMD_GET_SERVICE, VERSION)
}

/// The dump of one service's servers.
pub fn servers_dump(family: u16, service: ServiceKey) -> Request {
    let mut r = Request::new(family, NLM_F_DUMP | NLM_F_ACK, CMD_GET_DEST, VERSION);
    service_attrs(&mut r, &identity(service));
    r
}

/// What GET_INFO says: IPVS's version (as 0x010201 for 1.2.1) and connection table size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    pub version: u32,
    pub conn_tab_size: u32,
}

/// Reads a GET_INFO answer's payload (genl header and attributes).
pub fn read_info(payload: &[u8]) -> Option<Info> {
    let attrs = attributes(payload.get(4..)?);
    Some(Info {
        version: as_u32(&find(&attrs, INFO_VERSION)?)?,
        conn_tab_size: as_u32(&find(&attrs, INFO_CONN_TAB_SIZE)?)?,
    })
}

fn read_stats(data: &[u8]) -> (Counters, Rates) {
    let attrs = attributes(data);
    let get = |k| find(&attrs, k).and_then(|v| as_u64(&v)).unwrap_or(0);
    (
        Counters {
            conns: get(STATS_CONNS),
            inpkts: get(STATS_INPKTS),
            outpkts: get(STATS_OUTPKTS),
            inbytes: get(STATS_INBYTES),
            outbytes: get(STATS_OUTBYTES),
        },
        Rates {
            cps: get(STATS_CPS),
            inpps: get(STATS_INPPS),
            outpps: get(STATS_OUTPPS),
            inbps: get(STATS_INBPS),
            outbps: get(STATS_OUTBPS),
        },
    )
}

/// A service as a dump gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelService {
    pub config: ServiceConfig,
    pub stats: Counters,
    pub rates: Rates,
}

/// Reads one service of a GET_SERVICE dump.
pub fn read_service(payload: &[u8]) -> Option<KernelService> {
    let outer = attributes(payload.get(4..)?);
    let nested = find(&outer, ATTR_SERVICE)?;
    let attrs = attributes(&nested);
    let family = as_u16(&find(&attrs, SVC_AF)?)?;
    let key = match find(&attrs, SVC_FWMARK).and_then(|v| as_u32(&v)) {
        Some(mark) if mark != 0 => ServiceKey::Fwmark {
            mark,
            family: if family == AF_INET6 {
                Family::Inet6
            } else {
                Family::Inet
            },
        },
        _ => ServiceKey::Inet {
            protocol: match as_u16(&find(&attrs, SVC_PROTOCOL)?)? {
                6 => Protocol::Tcp,
                17 => Protocol::Udp,
                132 => Protocol::Sctp,
                _ => return None,
            },
            addr: addr_from(&find(&attrs, SVC_ADDR)?, family)?,
            port: as_be16(&find(&attrs, SVC_PORT)?)?,
        },
    };
    let flags = as_u32(&find(&attrs, SVC_FLAGS)?)?;
    let netmask_raw = find(&attrs, SVC_NETMASK)?;
    let netmask = match key.family() {
        Family::Inet => Netmask::V4(Ipv4Addr::new(
            netmask_raw[0],
            netmask_raw[1],
            netmask_raw[2],
            netmask_raw[3],
        )),
        Family::Inet6 => Netmask::V6(as_u32(&netmask_raw)?),
    };
    let pe = find(&attrs, SVC_PE_NAME)
        .map(|v| as_string(&v))
        .filter(|s| !s.is_empty());
    let stats = find(&attrs, SVC_STATS64)
        .map(|s| read_stats(&s))
        .unwrap_or_default();
    Some(KernelService {
        config: ServiceConfig {
            key,
            scheduler: as_string(&find(&attrs, SVC_SCHED_NAME)?),
            // The kernel reports IP_VS_SVC_F_HASHED too; it is not the user's.
            flags: ServiceFlags(flags & ServiceFlags::KNOWN),
            timeout: as_u32(&find(&attrs, SVC_TIMEOUT)?)?,
            netmask,
            pe,
            options: Default::default(),
        },
        stats: stats.0,
        rates: stats.1,
    })
}

/// A server as a dump gives it, with its connection counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelServer {
    pub config: ServerConfig,
    pub active: u32,
    pub inactive: u32,
    pub persistent: u32,
    pub stats: Counters,
    pub rates: Rates,
}

/// Reads one server of a GET_DEST dump.
pub fn read_server(payload: &[u8], service_family: Family) -> Option<KernelServer> {
    let outer = attributes(payload.get(4..)?);
    let nested = find(&outer, ATTR_DEST)?;
    let attrs = attributes(&nested);
    let family = find(&attrs, DEST_ADDR_FAMILY)
        .and_then(|v| as_u16(&v))
        .unwrap_or(af(service_family));
    let get32 = |k| find(&attrs, k).and_then(|v| as_u32(&v)).unwrap_or(0);
    let forward = match get32(DEST_FWD_METHOD) & 0x7 {
        0 => Forward::Masq,
        1 => Forward::Local,
        2 => Forward::Tunnel,
        _ => Forward::Route,
    };
    let stats = find(&attrs, DEST_STATS64)
        .map(|s| read_stats(&s))
        .unwrap_or_default();
    let tunnel = Tunnel {
        kind: match find(&attrs, DEST_TUN_TYPE).and_then(|v| v.first().copied()) {
            Some(1) => TunnelKind::Gue,
            Some(2) => TunnelKind::Gre,
            _ => TunnelKind::Ipip,
        },
        port: find(&attrs, DEST_TUN_PORT)
            .and_then(|v| as_be16(&v))
            .unwrap_or(0),
        checksum: match find(&attrs, DEST_TUN_FLAGS).and_then(|v| as_u16(&v)) {
            Some(1) => TunnelChecksum::Csum,
            Some(2) => TunnelChecksum::RemCsum,
            _ => TunnelChecksum::NoCsum,
        },
    };
    Some(KernelServer {
        config: ServerConfig {
            addr: addr_from(&find(&attrs, DEST_ADDR)?, family)?,
            port: as_be16(&find(&attrs, DEST_PORT)?)?,
            forward,
            weight: i32::try_from(get32(DEST_WEIGHT)).unwrap_or(i32::MAX),
            u_threshold: get32(DEST_U_THRESH),
            l_threshold: get32(DEST_L_THRESH),
            tunnel,
            // The kernel keeps none of uvs's own settings.
            options: crate::table::ServerOptions::default(),
        },
        active: get32(DEST_ACTIVE_CONNS),
        inactive: get32(DEST_INACT_CONNS),
        persistent: get32(DEST_PERSIST_CONNS),
        stats: stats.0,
        rates: stats.1,
    })
}

/// A connection to the kernel's IPVS: the family resolved once.
pub struct Ipvs {
    socket: Socket,
    family: u16,
}

impl Ipvs {
    /// Resolves the "IPVS" family; NotFound where the kernel has no IPVS.
    pub fn open() -> io::Result<Ipvs> {
        let mut socket = Socket::open()?;
        let family = socket.family(FAMILY_NAME)?;
        Ok(Ipvs { socket, family })
    }

    pub fn family(&self) -> u16 {
        self.family
    }

    /// Sends a request made by one of this module's functions; returns its answers.
    pub fn ask(&mut self, request: &Request) -> io::Result<Vec<super::netlink::Message>> {
        self.socket.ask(request)
    }

    pub fn info(&mut self) -> io::Result<Info> {
        let request = Request::new(self.family, NLM_F_ACK, CMD_GET_INFO, VERSION);
        self.ask(&request)?
            .iter()
            .find_map(|m| read_info(&m.payload))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no IPVS info"))
    }

    pub fn services(&mut self) -> io::Result<Vec<KernelService>> {
        let request = services_dump(self.family);
        Ok(self
            .ask(&request)?
            .iter()
            .filter_map(|m| read_service(&m.payload))
            .collect())
    }

    pub fn servers(&mut self, service: ServiceKey) -> io::Result<Vec<KernelServer>> {
        let request = servers_dump(self.family, service);
        Ok(self
            .ask(&request)?
            .iter()
            .filter_map(|m| read_server(&m.payload, service.family()))
            .collect())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The quoted payloads (after the netlink header, in strace's \x notation) of the
    /// `call` lines ("sendmsg", "recvmsg") to or from the IPVS family (type 0x20 on the
    /// capturing kernel) in one section of tests/fixtures/netlink/capture.out: what
    /// ipvsadm 1.31 and Linux 6.1 exchanged.
    pub(in crate::kernel) fn payloads(section: &str, call: &str) -> Vec<Vec<u8>> {
        let text = include_str!("../../tests/fixtures/netlink/capture.out");
        let mut in_section = false;
        let mut out: Vec<Vec<u8>> = Vec::new();
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("== ") {
                in_section = name == section;
                continue;
            }
            if !in_section || !line.starts_with(call) || !line.contains("nlmsg_type=0x20") {
                continue;
            }
            for quoted in line.split('"').skip(1).step_by(2) {
                let bytes: Vec<u8> = quoted
                    .split("\\x")
                    .filter(|h| !h.is_empty())
                    .filter_map(|h| u8::from_str_radix(h, 16).ok())
                    .collect();
                // libnl peeks before it reads: the same answer may show twice.
                if !out.contains(&bytes) {
                    out.push(bytes);
                }
            }
        }
        out
    }

    /// What ipvsadm sent for IPVS command `cmd` in `section`.
    pub(in crate::kernel) fn captured(section: &str, cmd: u8) -> Vec<u8> {
        payloads(section, "sendmsg")
            .into_iter()
            .find(|p| p.first() == Some(&cmd))
            .unwrap_or_else(|| panic!("no command {cmd} in section {section}"))
    }

    const FAMILY: u16 = 0x20;

    fn tcp() -> ServiceKey {
        ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr: "10.1.2.3".parse().unwrap(),
            port: 80,
        }
    }

    fn config(
        key: ServiceKey,
        sched: &str,
        flags: u32,
        timeout: u32,
        netmask: Netmask,
    ) -> ServiceConfig {
        ServiceConfig {
            key,
            scheduler: sched.into(),
            flags: ServiceFlags(flags),
            timeout,
            netmask,
            pe: None,
            options: Default::default(),
        }
    }

    /// `-f 7 -6 -s sh -b sh-port -p 600 -M 64`.
    fn fwmark_group() -> ServiceConfig {
        config(
            ServiceKey::Fwmark {
                mark: 7,
                family: Family::Inet6,
            },
            "sh",
            ServiceFlags::PERSISTENT | ServiceFlags::SCHED2,
            600,
            Netmask::V6(64),
        )
    }

    #[test]
    fn services_are_sent_as_ipvsadm_sends_them() {
        // ipvsadm -A -t 10.1.2.3:80 -s rr
        let add = config(tcp(), "rr", 0, 0, Netmask::full(Family::Inet));
        assert_eq!(
            service_request(FAMILY, &add, false).payload(),
            captured("add tcp", CMD_NEW_SERVICE)
        );
        // ipvsadm -A -f 7 -6 -s sh -b sh-port -p 600 -M 64
        let fwm = fwmark_group();
        assert_eq!(
            service_request(FAMILY, &fwm, false).payload(),
            captured("add fwmark v6 persist", CMD_NEW_SERVICE)
        );
        // ipvsadm -A -u [2001:db8::1]:53 -s wlc -o
        let udp = config(
            ServiceKey::Inet {
                protocol: Protocol::Udp,
                addr: "2001:db8::1".parse().unwrap(),
                port: 53,
            },
            "wlc",
            ServiceFlags::ONE_PACKET,
            0,
            Netmask::full(Family::Inet6),
        );
        assert_eq!(
            service_request(FAMILY, &udp, false).payload(),
            captured("add udp ops", CMD_NEW_SERVICE)
        );
        // ipvsadm -D -t 10.1.2.3:80
        assert_eq!(
            delete_service_request(FAMILY, tcp()).payload(),
            captured("del svc", CMD_DEL_SERVICE)
        );
    }

    #[test]
    fn servers_are_sent_as_ipvsadm_sends_them() {
        let masq = ServerConfig {
            options: Default::default(),
            addr: "10.9.8.7".parse().unwrap(),
            port: 8080,
            forward: Forward::Masq,
            weight: 3,
            u_threshold: 100,
            l_threshold: 50,
            tunnel: Tunnel::default(),
        };
        // ipvsadm -a -t 10.1.2.3:80 -r 10.9.8.7:8080 -m -w 3 -x 100 -y 50
        assert_eq!(
            server_request(FAMILY, tcp(), &masq, false).payload(),
            captured("add dest", CMD_NEW_DEST)
        );
        // ipvsadm -a -t 10.1.2.3:80 -r 10.9.8.6 -i -w 2 --tun-type gue --tun-port 6080 --tun-csum
        let gue = ServerConfig {
            options: Default::default(),
            addr: "10.9.8.6".parse().unwrap(),
            port: 80,
            forward: Forward::Tunnel,
            weight: 2,
            u_threshold: 0,
            l_threshold: 0,
            tunnel: Tunnel {
                kind: TunnelKind::Gue,
                port: 6080,
                checksum: TunnelChecksum::Csum,
            },
        };
        assert_eq!(
            server_request(FAMILY, tcp(), &gue, false).payload(),
            captured("add dest tun", CMD_NEW_DEST)
        );
        // ipvsadm -e -t 10.1.2.3:80 -r 10.9.8.7:8080 -m -w 0
        let edit = ServerConfig {
            weight: 0,
            u_threshold: 0,
            l_threshold: 0,
            ..masq
        };
        assert_eq!(
            server_request(FAMILY, tcp(), &edit, true).payload(),
            captured("edit dest", CMD_SET_DEST)
        );
        // ipvsadm -d -t 10.1.2.3:80 -r 10.9.8.6
        assert_eq!(
            delete_server_request(FAMILY, tcp(), gue.key()).payload(),
            captured("del dest", CMD_DEL_DEST)
        );
    }

    #[test]
    fn timeouts_zero_and_dumps_are_sent_as_ipvsadm_sends_them() {
        assert_eq!(
            timeouts_request(
                FAMILY,
                Timeouts {
                    tcp: 900,
                    tcp_fin: 120,
                    udp: 300
                }
            )
            .payload(),
            captured("timeouts", CMD_SET_CONFIG)
        );
        assert_eq!(
            zero_request(FAMILY, None).payload(),
            captured("zero", CMD_ZERO)
        );
        assert_eq!(
            services_dump(FAMILY).payload(),
            captured("dump", CMD_GET_SERVICE)
        );
    }

    #[test]
    fn a_captured_service_dump_is_read() {
        // `ipvsadm -L -n --stats` on the kernel after the three `-A` of the capture.
        let services: Vec<KernelService> = payloads("dump", "recvmsg")
            .iter()
            .filter(|p| p.first() == Some(&CMD_NEW_SERVICE))
            .filter_map(|p| read_service(p))
            .collect();
        let configs: Vec<String> = services.iter().map(|s| s.config.to_string()).collect();
        assert_eq!(
            configs,
            [
                "-t 10.1.2.3:80 -s rr",
                "-u [2001:db8::1]:53 -s wlc -o",
                "-f 7 -6 -s sh -p 600 -M 64 -b sh-port",
            ]
        );
        assert!(services.iter().all(|s| s.stats == Counters::default()));
    }

    #[test]
    fn replies_are_read_back() {
        // The GET_INFO answer captured from the kernel: IPVS 1.2.1, 4096 entries.
        let info = [
            0x0e, 0x01, 0x00, 0x00, 0x08, 0x00, 0x01, 0x00, 0x01, 0x02, 0x01, 0x00, 0x08, 0x00,
            0x02, 0x00, 0x00, 0x10, 0x00, 0x00,
        ];
        assert_eq!(
            read_info(&info),
            Some(Info {
                version: 0x010201,
                conn_tab_size: 4096
            })
        );
        // What this module sends reads back as what it was made of.
        let fwm = fwmark_group();
        let read = read_service(service_request(FAMILY, &fwm, false).payload()).unwrap();
        assert_eq!(read.config, fwm);
        let gue = ServerConfig {
            options: Default::default(),
            addr: "2001:db8::6".parse().unwrap(),
            port: 443,
            forward: Forward::Tunnel,
            weight: 2,
            u_threshold: 9,
            l_threshold: 3,
            tunnel: Tunnel {
                kind: TunnelKind::Gre,
                port: 0,
                checksum: TunnelChecksum::RemCsum,
            },
        };
        let payload = server_request(FAMILY, tcp(), &gue, false);
        let read = read_server(payload.payload(), Family::Inet).unwrap();
        assert_eq!(read.config, gue);
    }
}
