//! Why a listen address below the unprivileged port limit is refused, and what to do
//! about it: Linux lets only a process with `CAP_NET_BIND_SERVICE` bind a port below
//! `net.ipv4.ip_unprivileged_port_start` (1024 unless changed), and a bare "Permission
//! denied" says neither. The listener manager logs [`hint`] once per listen address
//! that fails so. What to do depends on who uvs is ([`Privilege`]): "run as root" is
//! the wrong advice to a root that lacks the capability (a container started with
//! `--cap-drop`, a unit with a `CapabilityBoundingSet` without it).

use std::io;

use crate::table::ListenAddr;

/// Where Linux keeps the limit (it applies to IPv6 too).
const SYSCTL: &str = "/proc/sys/net/ipv4/ip_unprivileged_port_start";

/// The lowest port any process may bind, as the kernel says now; None when it cannot
/// be read (not Linux, or /proc not mounted).
pub fn unprivileged_port_start() -> Option<u16> {
    std::fs::read_to_string(SYSCTL).ok()?.trim().parse().ok()
}

/// Who this process is, as far as binding a low port goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// Not root, without CAP_NET_BIND_SERVICE (the usual user).
    User,
    /// Root (uid 0) whose effective capabilities lack CAP_NET_BIND_SERVICE.
    RootWithoutCapability,
    /// CAP_NET_BIND_SERVICE is effective: the refusal comes from elsewhere (a security
    /// module, a seccomp or cgroup BPF filter).
    Capable,
}

/// CAP_NET_BIND_SERVICE's bit in the capability sets (linux/capability.h).
const CAP_NET_BIND_SERVICE: u32 = 10;

impl Privilege {
    /// This process's, from its effective uid and the `CapEff` line of
    /// `/proc/self/status`; without that line (not Linux), root counts as capable and
    /// anyone else as a user.
    pub fn of_this_process() -> Privilege {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        Privilege::from(crate::sys::effective_uid(), effective_capabilities(&status))
    }

    /// From an effective `uid` and effective capability set `cap_eff` (None: unknown).
    pub fn from(uid: u32, cap_eff: Option<u64>) -> Privilege {
        match cap_eff.map(|caps| caps >> CAP_NET_BIND_SERVICE & 1 == 1) {
            Some(true) => Privilege::Capable,
            None if uid == 0 => Privilege::Capable,
            Some(false) if uid == 0 => Privilege::RootWithoutCapability,
            _ => Privilege::User,
        }
    }
}

/// The `CapEff:` mask of a `/proc/PID/status` text (hexadecimal), None without one.
fn effective_capabilities(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

/// What to do when binding `listen` failed with `error`: Some when the error is a
/// refused permission and the port is below `start` (the sysctl's value), else None.
/// `program` is the binary to give the capability to. Said for this process's
/// [`Privilege`]; [`hint_for`] for a given one.
pub fn hint(listen: &ListenAddr, error: &io::Error, start: u16, program: &str) -> Option<String> {
    hint_for(listen, error, start, program, Privilege::of_this_process())
}

/// [`hint`], for a process of privilege `who`.
pub fn hint_for(
    listen: &ListenAddr,
    error: &io::Error,
    start: u16,
    program: &str,
    who: Privilege,
) -> Option<String> {
    if error.kind() != io::ErrorKind::PermissionDenied || listen.port == 0 || listen.port >= start {
        return None;
    }
    let port = listen.port;
    let limit = format!(
        "lower the limit (sysctl net.ipv4.ip_unprivileged_port_start={port}), or use a port \
         from {start} up"
    );
    Some(match who {
        Privilege::User => format!(
            "port {port} is below net.ipv4.ip_unprivileged_port_start ({start}): only root or a \
             process with CAP_NET_BIND_SERVICE may listen on it. Run uvs as root, give it the \
             capability (setcap cap_net_bind_service=+ep {program}, or \
             AmbientCapabilities=CAP_NET_BIND_SERVICE in its systemd unit), {limit}"
        ),
        Privilege::RootWithoutCapability => format!(
            "port {port} is below net.ipv4.ip_unprivileged_port_start ({start}): uvs runs as \
             root but without CAP_NET_BIND_SERVICE among its effective capabilities (dropped \
             by its container or its service manager). Give it back (docker run --cap-add \
             NET_BIND_SERVICE; CAP_NET_BIND_SERVICE in the unit's CapabilityBoundingSet), {limit}"
        ),
        Privilege::Capable => format!(
            "port {port} is below net.ipv4.ip_unprivileged_port_start ({start}), and uvs has \
             CAP_NET_BIND_SERVICE: something else refuses the bind (a security module such as \
             SELinux or AppArmor, a seccomp or cgroup BPF filter); see its log, or {limit}"
        ),
    })
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

    /// As a plain user: what `hint` said before it asked who the process is.
    fn hint(listen: &ListenAddr, error: &io::Error, start: u16, program: &str) -> Option<String> {
        hint_for(listen, error, start, program, Privilege::User)
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

    #[test]
    fn a_root_without_the_capability_is_not_told_to_run_as_root() {
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        let said = hint_for(
            &listen(80),
            &denied,
            1024,
            "uvs",
            Privilege::RootWithoutCapability,
        )
        .unwrap();
        assert_eq!(
            said,
            "port 80 is below net.ipv4.ip_unprivileged_port_start (1024): uvs runs as root but \
             without CAP_NET_BIND_SERVICE among its effective capabilities (dropped by its \
             container or its service manager). Give it back (docker run --cap-add \
             NET_BIND_SERVICE; CAP_NET_BIND_SERVICE in the unit's CapabilityBoundingSet), lower \
             the limit (sysctl net.ipv4.ip_unprivileged_port_start=80), or use a port from 1024 up"
        );
        assert!(!said.contains("Run uvs as root"));
        let capable = hint_for(&listen(80), &denied, 1024, "uvs", Privilege::Capable).unwrap();
        assert!(
            capable.contains("and uvs has CAP_NET_BIND_SERVICE"),
            "{capable}"
        );
        assert!(!capable.contains("Run uvs as root"));
    }

    #[test]
    fn who_the_process_is_comes_from_its_uid_and_effective_capabilities() {
        let status = "Name:\tuvs\nCapInh:\t0000000000000000\nCapEff:\t000001fffffffbff\n";
        assert_eq!(effective_capabilities(status), Some(0x1ff_ffff_fbff));
        assert_eq!(effective_capabilities("Name:\tuvs\n"), None);
        let all = Some(0x1ff_ffff_ffff);
        let without = Some(0x1ff_ffff_fbff);
        assert_eq!(
            Privilege::from(0, without),
            Privilege::RootWithoutCapability
        );
        assert_eq!(Privilege::from(0, all), Privilege::Capable);
        assert_eq!(Privilege::from(0, None), Privilege::Capable);
        assert_eq!(Privilege::from(1000, Some(0)), Privilege::User);
        assert_eq!(Privilege::from(1000, None), Privilege::User);
        assert_eq!(Privilege::from(1000, Some(1 << 10)), Privilege::Capable);
    }
}
