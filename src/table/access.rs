//! Access lists: `allow` and `deny` CIDR prefixes, and the verdict on a client address.
//! Built by the configuration (`config::schema`), held in the table
//! (`table::admission::Admission`), asked by the data plane (`proxy::admit`) for each
//! new connection or flow.
//!
//! The verdict: the most specific prefix that contains the address decides (`allow
//! 10.0.0.0/8` with `deny 10.9.0.0/16` refuses 10.9.1.1 and admits 10.1.1.1, and the
//! other way round); a prefix in both lists denies; an address no prefix contains is
//! admitted when there is no `allow` list, else refused (an allow list names everyone
//! who may come).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An address prefix: `addr/len`, with the host bits of `addr` zero. A bare address is
/// its own /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

/// Why a text is not a prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("not an IPv4 or IPv6 address")]
    Address,
    #[error("the prefix length is not a number from 0 to {max}")]
    Length { max: u8 },
    #[error("host bits are set (the prefix is {0})")]
    HostBits(Cidr),
}

impl Cidr {
    /// `addr/len`; an error if `len` is too long for the family or `addr` has bits set
    /// past it.
    pub fn new(addr: IpAddr, len: u8) -> Result<Cidr, CidrError> {
        let max = max_len(addr);
        if len > max {
            return Err(CidrError::Length { max });
        }
        let masked = Cidr {
            addr: masked(addr, len),
            len,
        };
        if masked.addr != addr {
            return Err(CidrError::HostBits(masked));
        }
        Ok(masked)
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether `ip` is in the prefix (never across families: an IPv4-mapped IPv6
    /// address is an IPv6 address here, as it is to the socket that saw it).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && masked(ip, self.len) == self.addr
    }
}

fn max_len(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

/// `addr` with every bit past the first `len` cleared.
pub fn masked(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let keep = u32::from(len.min(32));
            let mask = u32::MAX.checked_shl(32 - keep).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let keep = u32::from(len.min(128));
            let mask = u128::MAX.checked_shl(128 - keep).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let (addr, len) = match s.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::Address)?;
        let max = max_len(addr);
        let len = match len {
            None => max,
            // Digits only: u8's parser would take "+8".
            Some(l) if !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()) => {
                l.parse::<u8>().map_err(|_| CidrError::Length { max })?
            }
            Some(_) => return Err(CidrError::Length { max }),
        };
        Cidr::new(addr, len)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The verdict on one client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Refused by `deny[rule]`, or, with None, by being in no prefix of the `allow` list.
    Denied {
        rule: Option<usize>,
    },
}

/// A service's (or the global) `allow` and `deny` lists, in the file's order. Equal
/// when the lists are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessList {
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
}

impl AccessList {
    pub fn new(allow: Vec<Cidr>, deny: Vec<Cidr>) -> AccessList {
        AccessList { allow, deny }
    }

    pub fn allow(&self) -> &[Cidr] {
        &self.allow
    }

    pub fn deny(&self) -> &[Cidr] {
        &self.deny
    }

    /// The verdict on `client` (see the module's header).
    pub fn check(&self, client: IpAddr) -> Verdict {
        let best = |list: &[Cidr]| {
            list.iter()
                .enumerate()
                .filter(|(_, c)| c.contains(client))
                .max_by_key(|(i, c)| (c.len, std::cmp::Reverse(*i)))
                .map(|(i, c)| (i, c.len))
        };
        match (best(&self.allow), best(&self.deny)) {
            (Some((_, a)), Some((rule, d))) if d >= a => Verdict::Denied { rule: Some(rule) },
            (Some(_), _) => Verdict::Allowed,
            (None, Some((rule, _))) => Verdict::Denied { rule: Some(rule) },
            (None, None) if self.allow.is_empty() => Verdict::Allowed,
            (None, None) => Verdict::Denied { rule: None },
        }
    }
}

impl PartialEq for AccessList {
    fn eq(&self, other: &AccessList) -> bool {
        self.allow == other.allow && self.deny == other.deny
    }
}

impl Eq for AccessList {}

impl Hash for AccessList {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.allow.hash(h);
        self.deny.hash(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(allow: &[&str], deny: &[&str]) -> AccessList {
        let parse = |v: &[&str]| v.iter().map(|s| s.parse().unwrap()).collect();
        AccessList::new(parse(allow), parse(deny))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_read_and_print() {
        assert_eq!(
            "10.0.0.0/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            "10.1.2.3".parse::<Cidr>().unwrap().to_string(),
            "10.1.2.3/32"
        );
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
        assert_eq!(
            "0.0.0.0/0".parse::<Cidr>().unwrap().to_string(),
            "0.0.0.0/0"
        );
        assert_eq!(
            "10.0.0.1/8".parse::<Cidr>(),
            Err(CidrError::HostBits("10.0.0.0/8".parse().unwrap()))
        );
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::Length { max: 32 })
        );
        assert_eq!(
            "10.0.0.0/+8".parse::<Cidr>(),
            Err(CidrError::Length { max: 32 })
        );
        assert_eq!(
            "::/129".parse::<Cidr>(),
            Err(CidrError::Length { max: 128 })
        );
        assert_eq!("example.com/8".parse::<Cidr>(), Err(CidrError::Address));
    }

    #[test]
    fn the_most_specific_prefix_decides() {
        let l = list(&["10.0.0.0/8"], &["10.9.0.0/16"]);
        assert_eq!(l.check(ip("10.1.1.1")), Verdict::Allowed);
        assert_eq!(l.check(ip("10.9.1.1")), Verdict::Denied { rule: Some(0) });
        assert_eq!(l.check(ip("11.0.0.1")), Verdict::Denied { rule: None });
        let l = list(&["10.9.1.0/24"], &["10.0.0.0/8"]);
        assert_eq!(l.check(ip("10.9.1.7")), Verdict::Allowed);
        assert_eq!(l.check(ip("10.9.2.7")), Verdict::Denied { rule: Some(0) });
        assert_eq!(l.check(ip("11.0.0.1")), Verdict::Denied { rule: None });
        // Deny only: everyone else comes in.
        let l = list(&[], &["127.0.0.3/32", "::1/128"]);
        assert_eq!(l.check(ip("127.0.0.2")), Verdict::Allowed);
        assert_eq!(l.check(ip("127.0.0.3")), Verdict::Denied { rule: Some(0) });
        assert_eq!(l.check(ip("::1")), Verdict::Denied { rule: Some(1) });
        // A prefix in both lists denies.
        let l = list(&["127.0.0.0/8"], &["127.0.0.0/8"]);
        assert_eq!(l.check(ip("127.0.0.1")), Verdict::Denied { rule: Some(0) });
        // Families never mix.
        let l = list(&["0.0.0.0/0"], &[]);
        assert_eq!(
            l.check(ip("::ffff:127.0.0.1")),
            Verdict::Denied { rule: None }
        );
    }
}
