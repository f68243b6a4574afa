//! Why a listen address below the unprivileged port limit is refused, and what to do
//! about it: Linux lets only a process with `CAP_NET_BIND_SERVICE` bind a port below
//! `net.ipv4.ip_unprivileged_port_start` (1024 unless changed), and a bare "Permission
//! denied" says neither. The listener manager logs [`hint`] once per listen address
//! that fails so.

use std::io;

use crate::table::ListenAddr;

/// Where Linux keeps the limit (it applies to IPv6 too).
const SYSCTL: &str = "/proc/sys/net/ipv4/ip_unprivileged_port_start";

/// The lowest port any process may bind, as the kernel says now; None when it cannot
/// be read (not Linux, or /proc not mounted).
pub fn unprivileged_port_start() -> Option<u16> {
    std::fs::read_to_string(SYSCTL).ok()?.trim().parse().ok()
}

/// What to do when binding `listen` failed with `error`: Some when the error is a
/// refused permission and the port is below `start` (the sysctl's value), else None.
/// `program` is the binary to give the capability to.
pub fn hint(listen: &ListenAddr, error: &io::Error, start: u16, program: &str) -> Option<String> {
    if error.kind() != io::ErrorKind::PermissionDenied || listen.port == 0 || listen.port >= start {
        return None;
    }
    Some(format!(
        "port {port} is below net.ipv4.ip_unprivileged_port_start ({start}): only root or a \
         process with CAP_NET_BIND_SERVICE may listen on it. Run uvs as root, give it the \
         capability (setcap cap_net_bind_service=+ep {program}, or \
         AmbientCapabilities=CAP_NET_BIND_SERVICE in its systemd unit), lower the limit \
         (sysctl net.ipv4.ip_unprivileged_port_start={port}), or use a port from {start} up",
        port = listen.port,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Protocol;

    fn listen(port: u16) -> ListenAddr {
        ListenAddr {
            protocol: Protocol::Tcp,
            addr: std::net::Ipv4Addr::LOCALHOST.into(),
            port,
        }
    }

    #[test]
    fn only_a_refused_permission_below_the_limit_gets_the_hint() {
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        let in_use = io::Error::from(io::ErrorKind::AddrInUse);
        let said = hint(&listen(80), &denied, 1024, "/usr/sbin/uvs").unwrap();
        assert!(said.starts_with("port 80 is below net.ipv4.ip_unprivileged_port_start (1024)"));
        assert!(said.contains("setcap cap_net_bind_service=+ep /usr/sbin/uvs"));
        assert!(said.contains("AmbientCapabilities=CAP_NET_BIND_SERVICE"));
        assert_eq!(hint(&listen(80), &in_use, 1024, "uvs"), None);
        assert_eq!(hint(&listen(1024), &denied, 1024, "uvs"), None);
        assert_eq!(hint(&listen(80), &denied, 80, "uvs"), None);
        assert!(hint(&listen(79), &denied, 80, "uvs").is_some());
    }
}
