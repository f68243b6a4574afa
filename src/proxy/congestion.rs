//! TCP congestion control for the two legs of a proxied connection: the one accepted
//! from the client (set on the listening socket, which accepted sockets inherit) and the
//! one uvs opens to the real server (set on each connecting socket). Unset, both use
//! the system's default (net.ipv4.tcp_congestion_control). Chosen by `uvs run`
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
