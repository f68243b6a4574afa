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

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

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
    /// address is an IPv6 address here; the data plane asks about one as the IPv4
    /// address it maps, `proxy::admit`).
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

/// A service's (or the global) `allow` and `deny` lists, in the file's order, compiled
/// for the data plane, with what each rule refused. Equal (and hashed) by the lists
/// alone: the counts are the running list's, and a reload that keeps the lists keeps
/// the running list (`Table::apply_from`), so its counts go on.
///
/// The lists are compiled once, at construction, into per-family sorted disjoint
/// address ranges, each with its verdict (the deciding rule): [`AccessList::check`] is
/// a binary search, O(log n) in the prefixes, with no allocation (about 25 ns with
/// 1 000 prefixes; README, "Access lists"). Memory: one address and one verdict per
/// range, at most 2 n + 1 ranges per family.
#[derive(Debug)]
pub struct AccessList {
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
    v4: Ranges<u32>,
    v6: Ranges<u128>,
    /// Refusals by `deny[i]`, then (last) those for being in no `allow` prefix.
    refused: Box<[AtomicU64]>,
}

/// The verdicts of one family: `verdicts[i]` for the addresses from `starts[i]` up to
/// the next start. `starts[0]` is 0, so every address has one.
#[derive(Debug)]
struct Ranges<T> {
    starts: Box<[T]>,
    verdicts: Box<[Verdict]>,
}

/// An address family's addresses as unsigned numbers.
trait Bits: Copy + Ord + std::fmt::Debug {
    const ZERO: Self;
    /// The last address of the prefix that starts at `self` and is `len` bits long.
    fn last(self, len: u8) -> Self;
    fn next(self) -> Option<Self>;
}

impl Bits for u32 {
    const ZERO: u32 = 0;
    fn last(self, len: u8) -> u32 {
        self | u32::MAX.checked_shr(u32::from(len)).unwrap_or(0)
    }
    fn next(self) -> Option<u32> {
        self.checked_add(1)
    }
}

impl Bits for u128 {
    const ZERO: u128 = 0;
    fn last(self, len: u8) -> u128 {
        self | u128::MAX.checked_shr(u32::from(len)).unwrap_or(0)
    }
    fn next(self) -> Option<u128> {
        self.checked_add(1)
    }
}

impl<T: Bits> Ranges<T> {
    /// The ranges of `prefixes` (first address and length, each distinct, with its
    /// verdict), sorted by first address and then length (each prefix before those
    /// inside it), with `outside` where no prefix is.
    ///
    /// Prefixes nest or are apart, never overlap otherwise: one walk with a stack of the
    /// prefixes the walk is inside makes the ranges; neighbours with one verdict merge.
    fn new(prefixes: impl Iterator<Item = ((T, u8), Verdict)>, outside: Verdict) -> Ranges<T> {
        let mut out: Vec<(T, Verdict)> = vec![(T::ZERO, outside)];
        let mut inside: Vec<(T, Verdict)> = Vec::new();
        fn emit<T: Bits>(out: &mut Vec<(T, Verdict)>, at: T, v: Verdict) {
            let n = out.len();
            if out[n - 1].0 == at {
                out[n - 1].1 = v;
                if n >= 2 && out[n - 2].1 == v {
                    out.pop();
                }
            } else if out[n - 1].1 != v {
                out.push((at, v));
            }
        }
        let leave = |out: &mut Vec<(T, Verdict)>, inside: &mut Vec<(T, Verdict)>| {
            if let Some((last, _)) = inside.pop()
                && let Some(after) = last.next()
            {
                let under = inside.last().map_or(outside, |&(_, v)| v);
                emit(out, after, under);
            }
        };
        for ((first, len), verdict) in prefixes {
            while inside.last().is_some_and(|&(last, _)| last < first) {
                leave(&mut out, &mut inside);
            }
            emit(&mut out, first, verdict);
            inside.push((first.last(len), verdict));
        }
        while !inside.is_empty() {
            leave(&mut out, &mut inside);
        }
        let (starts, verdicts): (Vec<T>, Vec<Verdict>) = out.into_iter().unzip();
        Ranges {
            starts: starts.into_boxed_slice(),
            verdicts: verdicts.into_boxed_slice(),
        }
    }

    fn find(&self, addr: T) -> Verdict {
        // starts[0] is 0 <= addr: the point is at least 1.
        let i = self.starts.partition_point(|&s| s <= addr);
        self.verdicts[i.saturating_sub(1)]
    }
}

impl AccessList {
    /// The lists, compiled (see the type's header): O(n log n) in the prefixes.
    pub fn new(allow: Vec<Cidr>, deny: Vec<Cidr>) -> AccessList {
        // Each distinct prefix's verdict: a prefix in both lists denies, by its first
        // place in `deny`.
        let mut verdicts: BTreeMap<Cidr, Verdict> = BTreeMap::new();
        for c in &allow {
            verdicts.insert(*c, Verdict::Allowed);
        }
        for (i, c) in deny.iter().enumerate() {
            let v = verdicts
                .entry(*c)
                .or_insert(Verdict::Denied { rule: Some(i) });
            if *v == Verdict::Allowed {
                *v = Verdict::Denied { rule: Some(i) };
            }
        }
        let outside = if allow.is_empty() {
            Verdict::Allowed
        } else {
            Verdict::Denied { rule: None }
        };
        // Cidr's order: IPv4 before IPv6, then by address, then by length.
        let v4 = Ranges::new(
            verdicts.iter().filter_map(|(c, v)| match c.addr {
                IpAddr::V4(a) => Some(((u32::from(a), c.len), *v)),
                IpAddr::V6(_) => None,
            }),
            outside,
        );
        let v6 = Ranges::new(
            verdicts.iter().filter_map(|(c, v)| match c.addr {
                IpAddr::V6(a) => Some(((u128::from(a), c.len), *v)),
                IpAddr::V4(_) => None,
            }),
            outside,
        );
        let refused = (0..=deny.len()).map(|_| AtomicU64::new(0)).collect();
        AccessList {
            allow,
            deny,
            v4,
            v6,
            refused,
        }
    }

    pub fn allow(&self) -> &[Cidr] {
        &self.allow
    }

    pub fn deny(&self) -> &[Cidr] {
        &self.deny
    }

    /// The verdict on `client` (see the module's header). A binary search; no
    /// allocation, no lock.
    pub fn check(&self, client: IpAddr) -> Verdict {
        match client {
            IpAddr::V4(a) => self.v4.find(u32::from(a)),
            IpAddr::V6(a) => self.v6.find(u128::from(a)),
        }
    }

    /// Counts a refusal `verdict` on its rule (nothing for `Allowed`).
    pub fn count(&self, verdict: Verdict) {
        let i = match verdict {
            Verdict::Allowed => return,
            Verdict::Denied { rule: Some(i) } => i,
            Verdict::Denied { rule: None } => self.deny.len(),
        };
        if let Some(n) = self.refused.get(i) {
            n.fetch_add(1, Relaxed);
        }
    }

    /// What each rule refused since this list was made, for the rules that refused
    /// any: each `deny` rule in the file's order (`rule` Some), then being in no `allow`
    /// prefix (`rule` None).
    pub fn refusals(&self) -> Vec<RuleRefusals> {
        let rules = self.deny.iter().map(|c| Some(*c)).chain([None]);
        rules
            .zip(self.refused.iter())
            .map(|(rule, n)| RuleRefusals {
                rule,
                refused: n.load(Relaxed),
            })
            .filter(|r| r.refused > 0)
            .collect()
    }
}

/// What one rule of an access list refused (`uvs status`, metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRefusals {
    /// The `deny` prefix; None: clients in no `allow` prefix.
    pub rule: Option<Cidr>,
    pub refused: u64,
}

impl RuleRefusals {
    /// Which list: "deny", or "allow" for clients it does not name.
    pub fn list(&self) -> &'static str {
        if self.rule.is_some() { "deny" } else { "allow" }
    }
}

impl fmt::Display for RuleRefusals {
    /// `deny 10.0.0.0/8: 12`, `not in allow: 3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rule {
            Some(c) => write!(f, "deny {c}: {}", self.refused),
            None => write!(f, "not in allow: {}", self.refused),
        }
    }
}

impl Default for AccessList {
    fn default() -> AccessList {
        AccessList::new(Vec::new(), Vec::new())
    }
}

/// A copy of the lists, its counts from zero.
impl Clone for AccessList {
    fn clone(&self) -> AccessList {
        AccessList::new(self.allow.clone(), self.deny.clone())
    }
}

/// The lists as the file and the control protocol say them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rules {
    #[serde(default)]
    allow: Vec<Cidr>,
    #[serde(default)]
    deny: Vec<Cidr>,
}

impl Serialize for AccessList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("AccessList", 2)?;
        st.serialize_field("allow", &self.allow)?;
        st.serialize_field("deny", &self.deny)?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for AccessList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AccessList, D::Error> {
        let r = Rules::deserialize(d)?;
        Ok(AccessList::new(r.allow, r.deny))
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
    use proptest::prelude::*;

    /// The verdict by its definition, one prefix after the other: the oracle of the
    /// compiled check.
    fn naive(l: &AccessList, client: IpAddr) -> Verdict {
        let best = |list: &[Cidr]| {
            list.iter()
                .enumerate()
                .filter(|(_, c)| c.contains(client))
                .max_by_key(|(i, c)| (c.len, std::cmp::Reverse(*i)))
                .map(|(i, c)| (i, c.len))
        };
        match (best(l.allow()), best(l.deny())) {
            (Some((_, a)), Some((rule, d))) if d >= a => Verdict::Denied { rule: Some(rule) },
            (Some(_), _) => Verdict::Allowed,
            (None, Some((rule, _))) => Verdict::Denied { rule: Some(rule) },
            (None, None) if l.allow().is_empty() => Verdict::Allowed,
            (None, None) => Verdict::Denied { rule: None },
        }
    }

    /// Addresses from a few small pools (so that prefixes overlap, repeat and hold the
    /// addresses asked), and the edges of each family.
    fn address() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            (0u32..16).prop_map(|n| IpAddr::V4((0x0a00_0000 | (n << 20) | n).into())),
            any::<u32>().prop_map(|n| IpAddr::V4((0x0a00_0000 | (n & 0x00f0_00ff)).into())),
            Just(IpAddr::V4(0u32.into())),
            Just(IpAddr::V4(u32::MAX.into())),
            any::<u32>().prop_map(|n| IpAddr::V4(n.into())),
            any::<u16>().prop_map(|n| IpAddr::V6(
                (0x2001_0db8u128 << 96 | u128::from(n) << 64 | u128::from(n & 7)).into()
            )),
            Just(IpAddr::V6(0u128.into())),
            Just(IpAddr::V6(u128::MAX.into())),
            any::<u128>().prop_map(|n| IpAddr::V6(n.into())),
        ]
    }

    /// A prefix around an address of the pools: any length, /0 and /32 or /128 among
    /// them.
    fn prefix() -> impl Strategy<Value = Cidr> {
        (address(), any::<u8>()).prop_map(|(a, len)| {
            let len = len % (max_len(a) + 1);
            Cidr::new(masked(a, len), len).unwrap()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn the_compiled_check_is_the_definition(
            allow in prop::collection::vec(prefix(), 0..12),
            deny in prop::collection::vec(prefix(), 0..12),
            clients in prop::collection::vec(address(), 1..24),
        ) {
            // Duplicates, and prefixes in both lists, on purpose.
            let mut deny = deny;
            if let (Some(a), true) = (allow.first(), deny.len() > 2) {
                deny[1] = *a;
                deny[2] = deny[0];
            }
            let l = AccessList::new(allow, deny);
            for c in clients {
                prop_assert_eq!(l.check(c), naive(&l, c), "client {}", c);
            }
            // And at each prefix's edges.
            for p in l.allow().iter().chain(l.deny()) {
                let last = match p.addr {
                    IpAddr::V4(a) => IpAddr::V4(u32::from(a).last(p.len).into()),
                    IpAddr::V6(a) => IpAddr::V6(u128::from(a).last(p.len).into()),
                };
                let after = match last {
                    IpAddr::V4(a) => IpAddr::V4(u32::from(a).wrapping_add(1).into()),
                    IpAddr::V6(a) => IpAddr::V6(u128::from(a).wrapping_add(1).into()),
                };
                for c in [p.addr, last, after] {
                    prop_assert_eq!(l.check(c), naive(&l, c), "client {}", c);
                }
            }
        }
    }

    #[test]
    fn each_rule_counts_its_refusals() {
        let l = list(&["10.0.0.0/8"], &["10.9.0.0/16", "10.8.0.0/16"]);
        for c in ["10.9.1.1", "10.9.1.2", "11.0.0.1", "10.1.1.1"] {
            l.count(l.check(ip(c)));
        }
        let said: Vec<String> = l.refusals().iter().map(ToString::to_string).collect();
        assert_eq!(said, ["deny 10.9.0.0/16: 2", "not in allow: 1"]);
        assert_eq!(l, list(&["10.0.0.0/8"], &["10.9.0.0/16", "10.8.0.0/16"]));
        assert!(l.clone().refusals().is_empty(), "a copy counts from zero");
    }

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
