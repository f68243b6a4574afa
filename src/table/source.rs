//! The source addresses and ports of a service's connections to its real servers
//! (`source`, `source_ports`; HAProxy's `source addr[:low-high]`): the setting as the
//! file writes it ([`SourceConfig`], kept in `ServiceOptions::source`), and the pools
//! the data plane takes the sources from ([`Source::pool_for`], `Pool::at`), without
//! a lock: the cursor that turns over them is the real server's
//! (`RealServerState::source_cursor`), so each server's connects go through every
//! (address, port) whatever order the scheduler takes the servers in, and services
//! sharing `[global]`'s setting share no cursor. Read by `proxy::source`, which binds
//! and connects; written by `config::source`.
//!
//! Why: the leg to a real server ends in TIME_WAIT on uvs's side whenever uvs closes it
//! first, and a TIME_WAIT holds its 4-tuple for 60 s. With the kernel choosing the port
//! (`net.ipv4.tcp_tw_reuse` off), one source address reaches one real server on at most
//! the ports of `ip_local_port_range` per 60 s. N addresses give N times that; ports
//! uvs chooses itself (bound before connect) may take over a TIME_WAIT with timestamps
//! (tcp_ipv4.c `tcp_twsk_unique` with `twp == NULL`), so they have no such limit.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};

/// The most addresses one `source` list may expand to, both families together.
pub const MAX_SOURCE_ADDRESSES: u32 = 65_536;

/// An inclusive range of addresses of one family ("127.0.0.10-127.0.0.19"); one address
/// is a range of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AddrRange {
    pub first: IpAddr,
    pub last: IpAddr,
}

impl AddrRange {
    /// How many addresses it holds (at least 1), None when `first` and `last` are of two
    /// families or reversed; saturated at `u32::MAX`.
    pub fn count(&self) -> Option<u32> {
        let (a, b) = (bits(self.first), bits(self.last));
        if self.first.is_ipv4() != self.last.is_ipv4() || b < a {
            return None;
        }
        Some(u32::try_from(b - a).map_or(u32::MAX, |n| n.saturating_add(1)))
    }
}

impl std::fmt::Display for AddrRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// An inclusive range of ports, 1 ≤ `low` ≤ `high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl PortRange {
    pub fn count(&self) -> u32 {
        u32::from(self.high) - u32::from(self.low) + 1
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.low, self.high)
    }
}

/// `source` and `source_ports` as written: the addresses in the file's order, and the
/// ports uvs picks itself (None: the kernel picks, at connect, with
/// IP_BIND_ADDRESS_NO_PORT). Ports without addresses: the unspecified address of the
/// real server's family, with an explicit port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<AddrRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<PortRange>,
}

impl SourceConfig {
    /// Neither addresses nor ports: connects as without the setting.
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty() && self.ports.is_none()
    }
}

/// A service's sources as the data plane takes them: equal, hashed and written as its
/// [`SourceConfig`] alone.
#[derive(Debug)]
pub struct Source {
    config: SourceConfig,
    v4: Option<Pool>,
    v6: Option<Pool>,
}

impl Source {
    /// The pools of `config`. Ranges of two families or reversed are left out (the file
    /// reader refuses them before).
    pub fn new(config: SourceConfig) -> Source {
        let pool = |v6: bool| {
            let ranges: Vec<(u128, u32)> = config
                .addresses
                .iter()
                .filter(|r| r.first.is_ipv6() == v6)
                .filter_map(|r| Some((bits(r.first), r.count()?)))
                .collect();
            let ranges = match (ranges.is_empty(), config.ports) {
                (false, _) => ranges,
                // Ports alone: the unspecified address, bound with a port.
                (true, Some(_)) if config.addresses.is_empty() => vec![(0, 1)],
                (true, _) => return None,
            };
            let addresses = ranges
                .iter()
                .fold(0u32, |n, (_, len)| n.saturating_add(*len));
            Some(Pool {
                v6,
                ranges,
                addresses,
                ports: config.ports,
            })
        };
        Source {
            v4: pool(false),
            v6: pool(true),
            config,
        }
    }

    pub fn config(&self) -> &SourceConfig {
        &self.config
    }

    /// The pool for a connect to `dest`, None when the setting has no address of its
    /// family (then the connect is as without: the kernel chooses).
    pub fn pool_for(&self, dest: &SocketAddr) -> Option<&Pool> {
        if dest.is_ipv6() {
            self.v6.as_ref()
        } else {
            self.v4.as_ref()
        }
    }
}

impl PartialEq for Source {
    fn eq(&self, other: &Source) -> bool {
        self.config == other.config
    }
}

impl Eq for Source {}

impl std::hash::Hash for Source {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.config.hash(state);
    }
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.config.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Source, D::Error> {
        SourceConfig::deserialize(d).map(Source::new)
    }
}

/// The source addresses of one family, with the ports uvs picks or none.
#[derive(Debug)]
pub struct Pool {
    v6: bool,
    /// (first address as a number, how many), in the file's order.
    ranges: Vec<(u128, u32)>,
    /// Their sum, at least 1.
    addresses: u32,
    pub ports: Option<PortRange>,
}

impl Pool {
    /// The `k`th source to bind (a cursor's value, any `usize`): an address, with port
    /// 0 when the kernel picks the port (`ports` is None), else with a port. With
    /// ports, `k` turns over address × port, addresses fastest, so that successive
    /// values use every address before a port comes back; every pair comes once in
    /// [`slots`](Pool::slots) successive values.
    pub fn at(&self, k: usize) -> SocketAddr {
        let n = self.addresses.max(1) as usize;
        let port = match self.ports {
            None => 0,
            Some(p) => {
                let i = (k / n) % p.count() as usize;
                p.low + i as u16
            }
        };
        SocketAddr::new(self.address(k % n), port)
    }

    /// How many (address, port) pairs there are: `at` gives each once in that many
    /// successive values.
    pub fn slots(&self) -> u64 {
        u64::from(self.addresses) * u64::from(self.ports.map_or(1, |p| p.count()))
    }

    /// The `i`th address (i < `addresses`).
    fn address(&self, mut i: usize) -> IpAddr {
        for &(first, len) in &self.ranges {
            if i < len as usize {
                let n = first + i as u128;
                return if self.v6 {
                    IpAddr::V6(Ipv6Addr::from(n))
                } else {
                    IpAddr::V4(Ipv4Addr::from(n as u32))
                };
            }
            i -= len as usize;
        }
        // Not reached: `i` < the sum of the lengths.
        if self.v6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        }
    }
}

/// An address as a number, IPv4 in the low 32 bits.
fn bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(a: &str, b: &str) -> AddrRange {
        AddrRange {
            first: a.parse().unwrap(),
            last: b.parse().unwrap(),
        }
    }

    #[test]
    fn addresses_turn_in_the_files_order_and_ports_after_every_address() {
        let s = Source::new(SourceConfig {
            addresses: vec![
                range("127.0.0.2", "127.0.0.2"),
                range("127.0.0.10", "127.0.0.11"),
                range("::1", "::1"),
            ],
            ports: Some(PortRange {
                low: 20000,
                high: 20001,
            }),
        });
        let v4 = s.pool_for(&"127.0.0.1:80".parse().unwrap()).unwrap();
        let got: Vec<String> = (0..7).map(|k| v4.at(k).to_string()).collect();
        assert_eq!(
            got,
            [
                "127.0.0.2:20000",
                "127.0.0.10:20000",
                "127.0.0.11:20000",
                "127.0.0.2:20001",
                "127.0.0.10:20001",
                "127.0.0.11:20001",
                "127.0.0.2:20000",
            ]
        );
        assert_eq!(v4.slots(), 6);
        let v6 = s.pool_for(&"[::1]:80".parse().unwrap()).unwrap();
        assert_eq!(v6.at(0).to_string(), "[::1]:20000");
    }

    #[test]
    fn without_ports_the_kernel_picks_and_a_family_without_addresses_has_no_pool() {
        let s = Source::new(SourceConfig {
            addresses: vec![range("127.0.0.2", "127.0.0.3")],
            ports: None,
        });
        let v4 = s.pool_for(&"127.0.0.1:80".parse().unwrap()).unwrap();
        assert_eq!(v4.at(0).to_string(), "127.0.0.2:0");
        assert_eq!(v4.at(1).to_string(), "127.0.0.3:0");
        assert!(s.pool_for(&"[::1]:80".parse().unwrap()).is_none());
    }

    #[test]
    fn ports_alone_bind_the_unspecified_address_of_either_family() {
        let s = Source::new(SourceConfig {
            addresses: vec![],
            ports: Some(PortRange {
                low: 30000,
                high: 30000,
            }),
        });
        let v4 = s.pool_for(&"127.0.0.1:80".parse().unwrap()).unwrap();
        assert_eq!(v4.at(0).to_string(), "0.0.0.0:30000");
        let v6 = s.pool_for(&"[::1]:80".parse().unwrap()).unwrap();
        assert_eq!(v6.at(0).to_string(), "[::]:30000");
    }

    #[test]
    fn equal_by_setting() {
        let config = SourceConfig {
            addresses: vec![range("127.0.0.2", "127.0.0.9")],
            ports: None,
        };
        let (a, b) = (Source::new(config.clone()), Source::new(config));
        assert_eq!(a, b);
        assert_eq!(range("127.0.0.9", "127.0.0.2").count(), None);
        assert_eq!(range("127.0.0.2", "::1").count(), None);
        assert_eq!(range("::", "ffff::").count(), Some(u32::MAX));
    }
}
