//! The order in which IPVS hands out its services, reproduced.
//!
//! `ipvsadm -L` gets services from a kernel dump and sorts them with a comparator that
//! subtracts unsigned numbers into an `int` (libipvs `ipvs_cmp_services`), which is not a
//! total order once addresses or marks differ by 2^31 or more: then the sorted listing
//! depends on the order the kernel dumped. `--nosort` shows that order directly. To list
//! byte for byte as ipvsadm on a kernel does, uvs hands out services in the same order.
//!
//! The kernel walks two 256-bucket hash tables, address services then fwmark services,
//! bucket by bucket, newest first within a bucket (hlist_add_head). The bucket hashes mix
//! in bits of the per-namespace `netns_ipvs` pointer; [`NETNS_SALT`] is that byte as it
//! was on the machine the reference listings in `tests/golden` were captured on (found by
//! matching its `--nosort` listings), so uvs reproduces that machine exactly.

use super::key::{ServiceKey, addr_fold};

/// `(netns_ipvs >> 8) & 0xff` of the reference machine.
pub const NETNS_SALT: u32 = 240;

const TAB_BITS: u32 = 8;
const TAB_MASK: u32 = (1 << TAB_BITS) - 1;

/// Where a service sits in the kernel's dump: (table, bucket). Address services come
/// first (table 0), fwmark services after (table 1).
pub fn dump_position(key: &ServiceKey) -> (u8, u32) {
    match key {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => {
            // ip_vs_svc_hashkey
            let folded = addr_fold(addr);
            let porth = u32::from(*port);
            let hash =
                u32::from(protocol.number()) ^ (folded ^ NETNS_SALT) ^ (porth >> TAB_BITS) ^ porth;
            (0, hash & TAB_MASK)
        }
        ServiceKey::Fwmark { mark, .. } => (1, (NETNS_SALT ^ mark) & TAB_MASK),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::key::{Family, Protocol};

    fn tcp(a: &str, port: u16) -> ServiceKey {
        ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr: a.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn fwmark_services_come_after_address_services() {
        let f = ServiceKey::Fwmark {
            mark: 0,
            family: Family::Inet,
        };
        assert!(dump_position(&f) > dump_position(&tcp("255.255.255.255", 65535)));
    }

    #[test]
    fn buckets_match_the_reference_kernel() {
        // From the reference --nosort listing: TCP [2001:db8::1]:80 is dumped before
        // TCP 10.0.0.1:443, which is dumped before TCP 255.255.255.254:80.
        let a = dump_position(&tcp("2001:db8::1", 80));
        let b = dump_position(&tcp("10.0.0.1", 443));
        let c = dump_position(&tcp("255.255.255.254", 80));
        assert!(a < b && b < c, "{a:?} {b:?} {c:?}");
    }
}
