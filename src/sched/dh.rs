//! Destination hashing (ip_vs_dh.c): 256 buckets, one server per bucket in list order,
//! chosen by the address the client reached.

use super::{Algorithm, ListChange, Packet, usable};
use crate::table::key::addr_fold;
use crate::table::{RealServer, ServiceFlags};

const TAB_SIZE: usize = 256;

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
        let h =
            (u64::from(addr_fold(&packet.local.ip())).wrapping_mul(2_654_435_761) & 255) as usize;
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
        // Every client of one VIP goes to the same server.
        let h = ((0xc000_0201u64 * 2_654_435_761) & 255) as usize;
        assert_eq!(sequence(&dh, &s, 3), format!("{0}{0}{0}", name(h % 3)));
    }
}
