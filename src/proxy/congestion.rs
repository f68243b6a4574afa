//! TCP congestion control for the two legs of a proxied connection: the one accepted
//! from the client (set on the listening socket, which accepted sockets inherit) and the
//! one uvs opens to the real server (set on each connecting socket). Unset, the client
//! leg uses the system's default (net.ipv4.tcp_congestion_control), and so does the
//! real-server leg except where that default is BBR: there it uses cubic
//! ([`server_default`]). `system` asks for the system's default. Chosen by `uvs run`
//! (`--client-congestion-control`, `--server-congestion-control`, or `[global]`),
//! applied by the listener manager and the TCP path.
//!
//! Why it is a setting: a proxy sends every byte a second time, on a leg of its own,
//! and the sender's congestion control paces it. BBR, a common default, paces to its
//! estimate of the path; to real servers on the same host or LAN that pacing costs a
//! third of a bulk transfer's throughput (README, Performance), while cubic does not.

use std::fmt;
use std::str::FromStr;

use socket2::SockRef;

/// The kernel's limit on a name, with its terminating NUL (TCP_CA_NAME_MAX).
const NAME_MAX: usize = 16;

/// The setting's word for the system's default (no kernel module has that name).
pub const SYSTEM: &str = "system";

/// A congestion control algorithm's name, as `sysctl net.ipv4.tcp_congestion_control`
/// would take it. Copy, so the data plane's options stay plain values.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CongestionControl {
    name: [u8; NAME_MAX - 1],
    len: u8,
}

/// Why a congestion control cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CongestionError {
    #[error("congestion control `{0}' is not a name (1 to 15 letters, digits, `_' or `-')")]
    NotAName(String),
    #[error("congestion control `{name}' is not available in this kernel (available: {available})")]
    NotAvailable { name: String, available: String },
    #[error(
        "congestion control `{name}' needs CAP_NET_ADMIN (allowed without it: {allowed}; see net.ipv4.tcp_allowed_congestion_control)"
    )]
    NotAllowed { name: String, allowed: String },
    #[error("congestion control `{name}' cannot be set: {error}")]
    Other { name: String, error: String },
}

impl CongestionControl {
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (see from_str).
        std::str::from_utf8(&self.name[..usize::from(self.len)]).unwrap_or_default()
    }

    /// Whether it is the word `system`: the leg keeps the system's default.
    pub fn is_system(&self) -> bool {
        self.as_str() == SYSTEM
    }

    /// Sets it on `socket` (before connect or listen).
    pub fn apply<'s>(&self, socket: impl Into<SockRef<'s>>) -> std::io::Result<()> {
        socket.into().set_tcp_congestion(self.as_str().as_bytes())
    }

    /// Whether this process may use it: tried on a socket of its own, so `uvs run`
    /// refuses at start what every connection would otherwise fail on.
    pub fn check_usable(&self) -> Result<(), CongestionError> {
        let probe = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        );
        let result = probe.and_then(|s| self.apply(&s));
        let name = self.as_str().to_string();
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                Err(CongestionError::NotAvailable {
                    name,
                    available: sysctl_list("tcp_available_congestion_control"),
                })
            }
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Err(CongestionError::NotAllowed {
                name,
                allowed: sysctl_list("tcp_allowed_congestion_control"),
            }),
            Err(e) => Err(CongestionError::Other {
                name,
                error: e.to_string(),
            }),
        }
    }
}

/// What a leg uses once the settings are read: None is the system's default.
/// `configured` is the setting (None when unset); `system` the kernel's default name
/// (net.ipv4.tcp_congestion_control, None when unreadable).
///
/// The real-server leg, unset, takes cubic where the system's default is BBR (bbr,
/// bbr2, ...) and cubic may be set by this process (`usable`): BBR paces each
/// connection to its estimate of the path, which on the short, fast path from a director
/// to its real servers (same host or LAN, where IPVS's real servers live) costs a third
/// of a bulk transfer's throughput and buys nothing (README, How bytes move). The client
/// leg keeps the system's: a BBR default there is usually chosen for clients across the
/// internet. Where cubic is not allowed without CAP_NET_ADMIN
/// (net.ipv4.tcp_allowed_congestion_control), the system's default stays.
pub fn resolve(
    configured: Option<CongestionControl>,
    server_leg: bool,
    system: Option<&str>,
    usable: impl FnOnce(&CongestionControl) -> bool,
) -> Option<CongestionControl> {
    match configured {
        Some(cc) if cc.is_system() => None,
        Some(cc) => Some(cc),
        None if server_leg && system.is_some_and(|s| s.trim().starts_with("bbr")) => {
            let cubic: CongestionControl = "cubic".parse().ok()?;
            usable(&cubic).then_some(cubic)
        }
        None => None,
    }
}

/// [`resolve`] on this host: the system's default read from /proc, cubic tried on a
/// socket of its own.
pub fn resolve_here(
    configured: Option<CongestionControl>,
    server_leg: bool,
) -> Option<CongestionControl> {
    let system = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").ok();
    resolve(configured, server_leg, system.as_deref(), |cc| {
        cc.check_usable().is_ok()
    })
}

/// A list the kernel publishes under /proc/sys/net/ipv4, for error messages.
fn sysctl_list(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

impl FromStr for CongestionControl {
    type Err = CongestionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fits = !s.is_empty()
            && s.len() < NAME_MAX
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !fits {
            return Err(CongestionError::NotAName(s.to_string()));
        }
        let mut name = [0; NAME_MAX - 1];
        name[..s.len()].copy_from_slice(s.as_bytes());
        Ok(CongestionControl {
            name,
            len: s.len() as u8,
        })
    }
}

impl fmt::Display for CongestionControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CongestionControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CongestionControl({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let cc: CongestionControl = "cubic".parse().unwrap();
        assert_eq!(cc.to_string(), "cubic");
        assert_eq!(
            "".parse::<CongestionControl>(),
            Err(CongestionError::NotAName(String::new()))
        );
        assert!("a_name_of_16_ch".parse::<CongestionControl>().is_ok());
        assert!("a_name_of_16_chr".parse::<CongestionControl>().is_err());
        assert!("cu bic".parse::<CongestionControl>().is_err());
        assert!("cubic\0".parse::<CongestionControl>().is_err());
    }

    #[test]
    fn the_real_server_leg_takes_cubic_in_place_of_bbr_unless_told() {
        let cc = |s: &str| s.parse::<CongestionControl>().unwrap();
        let yes = |_: &CongestionControl| true;
        let no = |_: &CongestionControl| false;
        let server = |configured, system, usable: &dyn Fn(&CongestionControl) -> bool| {
            resolve(configured, true, system, usable)
        };
        assert_eq!(server(None, Some("bbr\n"), &yes), Some(cc("cubic")));
        assert_eq!(server(None, Some("bbr2"), &yes), Some(cc("cubic")));
        assert_eq!(server(None, Some("bbr\n"), &no), None, "cubic not allowed");
        assert_eq!(server(None, Some("cubic"), &yes), None);
        assert_eq!(
            server(None, Some("dctcp"), &yes),
            None,
            "a chosen default stays"
        );
        assert_eq!(server(None, None, &yes), None);
        assert_eq!(server(Some(cc("system")), Some("bbr"), &yes), None);
        assert_eq!(
            server(Some(cc("reno")), Some("bbr"), &yes),
            Some(cc("reno"))
        );
        // The client leg keeps the system's.
        assert_eq!(resolve(None, false, Some("bbr"), yes), None);
        assert_eq!(resolve(Some(cc("system")), false, Some("bbr"), yes), None);
    }

    #[test]
    fn reno_is_always_there_and_unknown_names_are_refused() {
        // reno is built into every Linux kernel and always allowed.
        let reno: CongestionControl = "reno".parse().unwrap();
        assert_eq!(reno.check_usable(), Ok(()));
        let none: CongestionControl = "nonesuch".parse().unwrap();
        match none.check_usable() {
            Err(CongestionError::NotAvailable { name, available }) => {
                assert_eq!(name, "nonesuch");
                assert!(available.split(' ').any(|n| n == "reno"), "{available}");
            }
            other => panic!("{other:?}"),
        }
    }
}
