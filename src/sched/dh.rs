//! Destination hashing (ip_vs_dh.c): 256 buckets, one server per bucket in list order,
//! chosen by the address the client reached.

use super::{Algorithm, ListChange, Packet, hashed, usable};
use crate::table::key::addr_fold;
use crate::table::{RealServer, ServiceFlags};

const TAB_BITS: u32 = 8;
const TAB_SIZE: usize = 1 << TAB_BITS;

#[derive(Debug)]
pub struct DestinationHashing {
    buckets: Vec<Option<u32>>,
}

impl DestinationHashing {
    pub fn new(servers: &[RealServer]) -> DestinationHashing {
        let buckets = (0..TAB_SIZE)
            .map(|i| (!servers.is_empty()).then(|| (i % servers.len()) as u32))
            .collect();
        DestinationHashing { buckets }
    }
}

impl Algorithm for DestinationHashing {
    fn pick(&self, servers: &[RealServer], _: ServiceFlags, packet: &Packet) -> Option<usize> {
        // ip_vs_dh_hashkey: hash_32 of the address, 8 bits.
        let h = hashed::hash_32(addr_fold(&packet.local.ip()), TAB_BITS) as usize;
        let i = self.buckets[h]? as usize;
        let s = servers.get(i)?;
        usable(s).then_some(i)
    }

    fn next(&self, servers: &[RealServer], _: &ListChange) -> Box<dyn Algorithm> {
        Box::new(DestinationHashing::new(servers))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn the_destination_address_decides() {
        let s = servers(&[1, 1, 1]);
        let dh = DestinationHashing::new(&s);
        // Every client of one VIP goes to the same server: 192.0.2.1's bucket is
        // hash_32(0xc0000201, 8) = 50, which holds the third server (50 % 3 = 2). (The
        // low bits of 0xc0000201 * 2654435761, which older kernels took, say 177: A.)
        assert_eq!(sequence(&dh, &s, 3), "CCC");
    }
}
