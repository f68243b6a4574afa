//! The sync daemons' multicast sockets, made as the kernel's (ip_vs_sync.c
//! `make_send_sock`, `make_receive_sock`) but without privileges: the master's is bound
//! to the interface's address and sends to the group through that interface with the
//! daemon's TTL; the backup's is bound to the group's port, with SO_REUSEADDR as the
//! kernel's, tied to the interface, and joins the group on it. Multicast loopback stays on (the
//! kernel turns it off) so that directors on one host, or in one test, hear each
//! other; a backup ignores its own master's datagrams by their source
//! (`sync::backup`). Called by `sync::master` and `sync::backup`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};

use crate::table::SyncDaemon;

/// Why a sync daemon's socket could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// No interface of that name (the kernel: ENODEV).
    #[error("no interface {0}")]
    NoInterface(String),
    /// An IPv4 group on an interface without an IPv4 address to send from.
    #[error("interface {0} has no IPv4 address to send from")]
    NoAddress(String),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

fn io(what: &'static str) -> impl FnOnce(io::Error) -> SocketError {
    move |source| SocketError::Io { what, source }
}

/// The interface's index (if_nametoindex).
pub fn interface_index(name: &str) -> Result<u32, SocketError> {
    let missing = || SocketError::NoInterface(name.to_string());
    let c = std::ffi::CString::new(name).map_err(|_| missing())?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        Err(missing())
    } else {
        Ok(index)
    }
}

/// The interface's first IPv4 address (the kernel's `inet_select_addr`, which the
/// master binds to).
fn interface_v4(name: &str) -> Option<Ipv4Addr> {
    if_addrs::get_if_addrs()
        .ok()?
        .into_iter()
        .find_map(|i| match i.addr {
            if_addrs::IfAddr::V4(v4) if i.name == name => Some(v4.ip),
            _ => None,
        })
}

/// Every address of this host (a master bound to none may send from any: the route
/// picks the source).
pub fn host_addresses() -> Vec<IpAddr> {
    if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .collect()
}

fn group(daemon: &SyncDaemon) -> IpAddr {
    daemon
        .group
        .unwrap_or(IpAddr::V4(crate::table::sync::DEFAULT_GROUP_V4))
}

/// Where the master sends: the group and port.
pub fn destination(daemon: &SyncDaemon) -> SocketAddr {
    let port = if daemon.port == 0 {
        crate::table::sync::DEFAULT_PORT
    } else {
        daemon.port
    };
    SocketAddr::new(group(daemon), port)
}

fn udp(ipv6: bool) -> Result<Socket, SocketError> {
    let domain = if ipv6 { Domain::IPV6 } else { Domain::IPV4 };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(io("socket"))?;
    socket.set_nonblocking(true).map_err(io("O_NONBLOCK"))?;
    Ok(socket)
}

/// The master's socket: bound to the interface's address (IPv4), multicasting through
/// the interface with the daemon's TTL. Returns it with the address it sends from.
pub fn sender(daemon: &SyncDaemon) -> Result<(tokio::net::UdpSocket, SocketAddr), SocketError> {
    let (socket, local) = sender_socket(daemon)?;
    let socket = tokio::net::UdpSocket::from_std(socket.into()).map_err(io("register"))?;
    Ok((socket, local))
}

/// The backup's socket: bound to the group's port, member of the group on the
/// interface.
pub fn receiver(daemon: &SyncDaemon) -> Result<tokio::net::UdpSocket, SocketError> {
    let socket = receiver_socket(daemon)?;
    tokio::net::UdpSocket::from_std(socket.into()).map_err(io("register"))
}

/// Makes and drops the socket `daemon` would run with, so that `--start-daemon`
/// refuses at once what could not run (a port another user holds without
/// SO_REUSEADDR, an interface without an IPv4 address for an IPv4 group).
///
/// # Errors
/// Why the socket cannot be made.
pub fn probe(daemon: &SyncDaemon) -> Result<(), SocketError> {
    match daemon.role {
        crate::table::SyncRole::Master => sender_socket(daemon).map(drop),
        crate::table::SyncRole::Backup => receiver_socket(daemon).map(drop),
    }
}

fn sender_socket(daemon: &SyncDaemon) -> Result<(Socket, SocketAddr), SocketError> {
    let index = interface_index(&daemon.interface)?;
    let ttl = u32::from(daemon.ttl.max(1));
    let socket = match group(daemon) {
        IpAddr::V4(_) => {
            let addr = interface_v4(&daemon.interface)
                .ok_or_else(|| SocketError::NoAddress(daemon.interface.clone()))?;
            let s = udp(false)?;
            s.set_multicast_if_v4(&addr)
                .map_err(io("IP_MULTICAST_IF"))?;
            s.set_multicast_ttl_v4(ttl)
                .map_err(io("IP_MULTICAST_TTL"))?;
            s.set_multicast_loop_v4(true)
                .map_err(io("IP_MULTICAST_LOOP"))?;
            s.bind(&SocketAddr::new(IpAddr::V4(addr), 0).into())
                .map_err(io("bind"))?;
            s
        }
        IpAddr::V6(_) => {
            let s = udp(true)?;
            s.set_multicast_if_v6(index)
                .map_err(io("IPV6_MULTICAST_IF"))?;
            s.set_multicast_hops_v6(ttl)
                .map_err(io("IPV6_MULTICAST_HOPS"))?;
            s.set_multicast_loop_v6(true)
                .map_err(io("IPV6_MULTICAST_LOOP"))?;
            s.bind(&SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).into())
                .map_err(io("bind"))?;
            s
        }
    };
    let local = socket
        .local_addr()
        .map_err(io("getsockname"))?
        .as_socket()
        .ok_or_else(|| io("getsockname")(io::Error::other("not an IP socket")))?;
    Ok((socket, local))
}

/// Ties `s` to the daemon's interface, as the kernel ties its backup's socket
/// (`sk_bound_dev_if`), so that the group's datagrams arriving on another interface are
/// not taken. Linux lets an unprivileged process do it since 5.7; where it may not
/// (EPERM), the socket stays untied, as uvs's backup was before, and only its group
/// membership is the interface's.
fn tie_to_interface(s: &Socket, daemon: &SyncDaemon) -> Result<(), SocketError> {
    match s.bind_device(Some(daemon.interface.as_bytes())) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(()),
        other => other.map_err(io("SO_BINDTODEVICE")),
    }
}

fn receiver_socket(daemon: &SyncDaemon) -> Result<Socket, SocketError> {
    let index = interface_index(&daemon.interface)?;
    let at = destination(daemon);
    let socket = match at.ip() {
        IpAddr::V4(g) => {
            let s = udp(false)?;
            s.set_reuse_address(true).map_err(io("SO_REUSEADDR"))?;
            tie_to_interface(&s, daemon)?;
            s.bind(&at.into()).map_err(io("bind"))?;
            s.join_multicast_v4_n(&g, &InterfaceIndexOrAddress::Index(index))
                .map_err(io("IP_ADD_MEMBERSHIP"))?;
            s
        }
        IpAddr::V6(g) => {
            let s = udp(true)?;
            s.set_reuse_address(true).map_err(io("SO_REUSEADDR"))?;
            s.set_only_v6(true).map_err(io("IPV6_V6ONLY"))?;
            tie_to_interface(&s, daemon)?;
            // A link-local group is bound with the interface as its scope.
            let scope = if g.segments()[0] & 0xff0f == 0xff02 {
                index
            } else {
                0
            };
            let at = std::net::SocketAddrV6::new(g, at.port(), 0, scope);
            s.bind(&at.into()).map_err(io("bind"))?;
            s.join_multicast_v6(&g, index)
                .map_err(io("IPV6_JOIN_GROUP"))?;
            s
        }
    };
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::SyncRole;

    /// A UDP port free on [::1] at this moment.
    fn free_port() -> u16 {
        let s = std::net::UdpSocket::bind("[::1]:0").expect("bind [::1]:0");
        s.local_addr().expect("its address").port()
    }

    // A backup on a link-local IPv6 group (ff02::81 on a Linux kernel's veth, checked
    // against the kernel's sync master by tests/kernel/sync-in-vm.sh) did not start:
    // "bind: Invalid argument", the group bound without the interface as its scope.
    #[tokio::test]
    async fn a_backup_joins_a_link_local_ipv6_group_on_its_interface() {
        let daemon = SyncDaemon {
            syncid: 5,
            group: Some("ff02::81".parse().expect("a group")),
            port: free_port(),
            ..SyncDaemon::new(SyncRole::Backup, "lo")
        };
        let lo = interface_index("lo").expect("lo");
        let socket = receiver(&daemon).expect("a backup's socket on ff02::81 on lo");
        let SocketAddr::V6(at) = socket.local_addr().expect("its address") else {
            panic!("an IPv6 socket");
        };
        assert_eq!(
            (*at.ip(), at.port(), at.scope_id()),
            ("ff02::81".parse::<Ipv6Addr>().unwrap(), daemon.port, lo)
        );
    }

    /// The kernel's backup takes the group's datagrams from its interface only
    /// (`make_receive_sock` sets `sk_bound_dev_if`); uvs's socket was bound to the
    /// group and port alone, so the same group on another link reached it too.
    #[test]
    fn a_backups_socket_is_tied_to_its_interface() {
        for group in ["224.0.0.81", "ff02::81"] {
            let daemon = SyncDaemon {
                group: Some(group.parse().expect("a group")),
                port: free_port(),
                ..SyncDaemon::new(SyncRole::Backup, "lo")
            };
            let socket = receiver_socket(&daemon).expect("a backup's socket");
            assert_eq!(
                socket.device().expect("SO_BINDTODEVICE").as_deref(),
                Some(&b"lo"[..]),
                "{group}"
            );
        }
    }
}
