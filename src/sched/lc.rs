//! Least connection (ip_vs_lc.c): the usable server with the smallest overhead
//! (`active * 256 + inactive`); the first one on a tie.

use super::{Algorithm, ListChange, Packet};
use crate::table::{RealServer, ServiceFlags};

#[derive(Debug)]
pub struct LeastConnection;

impl Algorithm for LeastConnection {
    fn pick(&self, servers: &[RealServer], _: ServiceFlags, _: &Packet) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for (i, s) in servers.iter().enumerate() {
            if s.state.is_overloaded() || s.weight == 0 {
                continue;
            }
            let doh = s.state.overhead();
            if least.is_none_or(|(_, loh)| doh < loh) {
                least = Some((i, doh));
            }
        }
        least.map(|(i, _)| i)
    }

    fn next(&self, _: &[RealServer], _: &ListChange) -> Box<dyn Algorithm> {
        Box::new(LeastConnection)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn smallest_overhead_first_on_ties() {
        let s = servers(&[1, 5, 1]);
        assert_eq!(sequence(&LeastConnection, &s, 1), "A");
        load(&s[0], 1, 0);
        load(&s[1], 0, 255);
        load(&s[2], 0, 300);
        assert_eq!(
            sequence(&LeastConnection, &s, 1),
            "B",
            "one active weighs 256 inactive"
        );
        load(&s[1], 0, 256);
        assert_eq!(
            sequence(&LeastConnection, &s, 1),
            "A",
            "ties go to the first"
        );
        let q = servers(&[0, 1]);
        load(&q[1], 10, 0);
        assert_eq!(sequence(&LeastConnection, &q, 1), "B", "weight 0 never");
    }
}
