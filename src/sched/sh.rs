//! Source hashing (ip_vs_sh.c): 256 buckets filled by walking the server list, each
//! server taking `weight` consecutive buckets (at least one); the client address (and
//! port, with sh-port) picks the bucket. With sh-fallback an unavailable server's
//! clients are re-hashed around the table; without it they get nothing.

use super::{Algorithm, ListChange, Packet, hashed};
use crate::table::{RealServer, ServiceFlags};

const TAB_BITS: u32 = 8;
const TAB_SIZE: usize = 1 << TAB_BITS;
const TAB_MASK: u32 = TAB_SIZE as u32 - 1;

#[derive(Debug)]
pub struct SourceHashing {
    buckets: Vec<Option<u32>>,
}

/// `ip_vs_sh_reassign`: bucket i holds the server at the current list position, which
/// advances once the server has filled `weight` buckets.
pub(super) fn weighted_buckets(servers: &[RealServer]) -> Vec<Option<u32>> {
    if servers.is_empty() {
        return vec![None; TAB_SIZE];
    }
    let (mut p, mut count) = (0usize, 0u32);
    (0..TAB_SIZE)
        .map(|_| {
            let here = p as u32;
            count += 1;
            if count >= servers[p].weight {
                p = (p + 1) % servers.len();
                count = 0;
            }
            Some(here)
        })
        .collect()
}

/// `ip_vs_sh_hashkey`: the bucket of a client address and port, at `offset`: the top
/// bits of `hash_32` of their sum (not the low bits of a multiplication by 2654435761,
/// as kernels before `hash_32` did: Linux 6.1 picks by `hash_32`).
fn hash(addr: u32, port: u16, offset: u32) -> usize {
    let mixed = u32::from(port).wrapping_add(addr);
    (offset.wrapping_add(hashed::hash_32(mixed, TAB_BITS)) & TAB_MASK) as usize
}

impl SourceHashing {
    pub fn new(servers: &[RealServer]) -> SourceHashing {
        SourceHashing {
            buckets: weighted_buckets(servers),
        }
    }
}

impl Algorithm for SourceHashing {
    fn pick(&self, servers: &[RealServer], flags: ServiceFlags, packet: &Packet) -> Option<usize> {
        hashed::pick(&self.buckets, hash, servers, flags, packet)
    }

    fn next(&self, servers: &[RealServer], _: &ListChange) -> Box<dyn Algorithm> {
        Box::new(SourceHashing::new(servers))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn pick(sh: &SourceHashing, s: &[RealServer], flags: u32, client: &str) -> char {
        sh.pick(s, ServiceFlags(flags), &packet(client))
            .map_or('-', name)
    }

    #[test]
    fn buckets_follow_the_weights() {
        let s = servers(&[2, 0, 1]);
        let b = weighted_buckets(&s);
        let names: String = b[..8].iter().map(|i| name(i.unwrap() as usize)).collect();
        assert_eq!(names, "AABCAABC", "weight 0 still takes one bucket");
    }

    #[test]
    fn a_client_sticks_and_the_port_matters_only_with_sh_port() {
        let s = servers(&[1, 1, 1, 1]);
        let sh = SourceHashing::new(&s);
        // hash_32(10.1.2.3, 8) = (0x0a010203 * 0x61c88647 mod 2^32) >> 24 = 2: bucket 2,
        // which the list's four servers of weight 1 fill A B C D A B ...: C. (The low
        // bits of 0x0a010203 * 2654435761, which older kernels took, say 19: D.)
        let expected = 'C';
        for port in [1000, 2000, 3000] {
            assert_eq!(pick(&sh, &s, 0, &format!("10.1.2.3:{port}")), expected);
        }
        let with_port: std::collections::HashSet<char> = (1000..1016)
            .map(|p| pick(&sh, &s, ServiceFlags::SCHED2, &format!("10.1.2.3:{p}")))
            .collect();
        assert!(with_port.len() > 1, "sh-port spreads one address's ports");
    }

    #[test]
    fn fallback_rehashes_around_an_unavailable_server() {
        let s = servers(&[1, 1]);
        let sh = SourceHashing::new(&s);
        let client = "10.1.2.3:1000";
        let home = sh.pick(&s, ServiceFlags(0), &packet(client)).unwrap();
        overload(&s[home]);
        assert_eq!(pick(&sh, &s, 0, client), '-', "no fallback: nothing");
        assert_eq!(
            pick(&sh, &s, ServiceFlags::SCHED1, client),
            name(1 - home),
            "sh-fallback finds the other server"
        );
    }
}
