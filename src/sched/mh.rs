//! Maglev hashing (ip_vs_mh.c): a lookup table of 4093 slots (a prime), filled by
//! letting every server claim slots along its own permutation (offset and skip from
//! SipHash-1-3 of its address and port), `turns` slots per round in proportion to its
//! last non-zero weight. The client address (and port, with mh-port) picks the slot. A
//! quiesced server keeps its slots (its last weight counts) but is not picked; with
//! mh-fallback its clients are re-hashed.

use super::siphash::hsiphash_u32;
use super::{Algorithm, ListChange, Packet, gcd_of, hashed};
use crate::table::key::addr_fold;
use crate::table::{RealServer, ServiceFlags};

/// primes[CONFIG_IP_VS_MH_TAB_INDEX - 8] with the default index 12.
const TAB_SIZE: u32 = 4093;
/// CONFIG_IP_VS_MH_TAB_INDEX / 2.
const TAB_BITS: i32 = 6;
const KEY1: [u64; 2] = [2_654_435_761, 2_654_435_761];
const KEY2: [u64; 2] = [2_654_446_892, 2_654_446_892];

#[derive(Debug)]
pub struct Maglev {
    lookup: Vec<Option<u32>>,
}

fn hashkey(addr: u32, port: u16, key: [u64; 2], offset: u32) -> u32 {
    let v = offset.wrapping_add(u32::from(port)).wrapping_add(addr);
    hsiphash_u32(v, key)
}

/// Index of the highest set bit, counting from 1 (`fls`); 0 for 0.
fn fls(x: u32) -> i32 {
    (32 - x.leading_zeros()) as i32
}

/// `ip_vs_mh_permutate` and `ip_vs_mh_populate`.
fn populate(servers: &[RealServer]) -> Vec<Option<u32>> {
    let mut lookup = vec![None; TAB_SIZE as usize];
    let gcd = gcd_of(servers.iter().map(|s| s.last_weight));
    if gcd < 1 {
        return lookup;
    }
    let max = servers.iter().map(|s| s.last_weight).max().unwrap_or(0) / gcd;
    let rshift = (fls(max) - TAB_BITS).max(0);

    struct Setup {
        skip: u32,
        perm: u32,
        turns: u32,
    }
    let mut setup: Vec<Setup> = servers
        .iter()
        .map(|s| {
            let addr = addr_fold(&s.addr);
            let offset = hashkey(addr, s.port, KEY1, 0) % TAB_SIZE;
            let skip = hashkey(addr, s.port, KEY2, 0) % (TAB_SIZE - 1) + 1;
            let lw = s.last_weight;
            let scaled = (lw / gcd) >> rshift;
            let turns = if scaled != 0 {
                scaled
            } else {
                u32::from(lw != 0)
            };
            Setup {
                skip,
                perm: offset,
                turns,
            }
        })
        .collect();

    let mut taken = vec![false; TAB_SIZE as usize];
    let mut filled = 0u32;
    let mut turn = 0u32;
    loop {
        let mut p = 0;
        while p < servers.len() {
            let ds = &mut setup[p];
            if ds.turns < 1 {
                p += 1;
                continue;
            }
            let mut c = ds.perm;
            while taken[c as usize] {
                ds.perm += ds.skip;
                if ds.perm >= TAB_SIZE {
                    ds.perm -= TAB_SIZE;
                }
                c = ds.perm;
            }
            taken[c as usize] = true;
            lookup[c as usize] = Some(p as u32);
            filled += 1;
            if filled == TAB_SIZE {
                return lookup;
            }
            turn += 1;
            if turn >= ds.turns {
                turn = 0;
                p += 1;
            }
        }
    }
}

impl Maglev {
    pub fn new(servers: &[RealServer]) -> Maglev {
        Maglev {
            lookup: populate(servers),
        }
    }
}

impl Algorithm for Maglev {
    fn pick(&self, servers: &[RealServer], flags: ServiceFlags, packet: &Packet) -> Option<usize> {
        let slot = |addr, port, offset| (hashkey(addr, port, KEY1, offset) % TAB_SIZE) as usize;
        hashed::pick(&self.lookup, slot, servers, flags, packet)
    }

    fn next(&self, servers: &[RealServer], _: &ListChange) -> Box<dyn Algorithm> {
        Box::new(Maglev::new(servers))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    fn shares(lookup: &[Option<u32>], n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for i in lookup.iter().flatten() {
            c[*i as usize] += 1;
        }
        c
    }

    #[test]
    fn slots_follow_weights_and_survive_quiescing() {
        let s = servers(&[1, 1, 2]);
        let m = Maglev::new(&s);
        let c = shares(&m.lookup, 3);
        assert_eq!(
            c.iter().sum::<usize>(),
            TAB_SIZE as usize,
            "every slot is filled"
        );
        // Turns 1, 1, 2 per round of 4 slots: 1023 rounds fill 4092, A takes the last.
        assert_eq!(c, vec![1024, 1023, 2046]);
        // Quiesce C (weight 0, last weight 2): the table does not move.
        let mut q = s.clone();
        q[2].weight = 0;
        let m2 = Maglev::new(&q);
        assert_eq!(m.lookup, m2.lookup);
    }

    #[test]
    fn removing_a_server_moves_only_its_clients() {
        let s = servers(&[1, 1, 1, 1]);
        let before = Maglev::new(&s);
        let fewer: Vec<RealServer> = s.iter().take(3).cloned().collect();
        let after = Maglev::new(&fewer);
        let kept = (0..TAB_SIZE as usize)
            .filter(|i| before.lookup[*i] != Some(3))
            .filter(|i| before.lookup[*i] == after.lookup[*i])
            .count();
        let owned = (0..TAB_SIZE as usize)
            .filter(|i| before.lookup[*i] != Some(3))
            .count();
        // Maglev is near-consistent: almost every slot not owned by D stays put.
        assert!(kept * 100 / owned >= 95, "{kept}/{owned}");
    }

    #[test]
    fn fallback() {
        let s = servers(&[1, 1]);
        let m = Maglev::new(&s);
        let p = packet("10.9.8.7:1234");
        let home = m.pick(&s, ServiceFlags(0), &p).unwrap();
        overload(&s[home]);
        assert_eq!(m.pick(&s, ServiceFlags(0), &p), None);
        assert_eq!(
            m.pick(&s, ServiceFlags(ServiceFlags::SCHED1), &p),
            Some(1 - home)
        );
    }
}
