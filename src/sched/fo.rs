//! Weighted failover (ip_vs_fo.c): the usable server with the highest weight, the first
//! one on a tie.

use super::{Algorithm, ListChange, Packet};
use crate::table::{RealServer, ServiceFlags};

#[derive(Debug)]
pub struct WeightedFailover;

impl Algorithm for WeightedFailover {
    fn pick(&self, servers: &[RealServer], _: ServiceFlags, _: &Packet) -> Option<usize> {
        let mut best: Option<(usize, u32)> = None;
        for (i, s) in servers.iter().enumerate() {
            if !s.state.is_overloaded() && s.weight > best.map_or(0, |(_, w)| w) {
                best = Some((i, s.weight));
            }
        }
        best.map(|(i, _)| i)
    }

    fn next(&self, _: &[RealServer], _: &ListChange) -> Box<dyn Algorithm> {
        Box::new(WeightedFailover)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn highest_weight_wins() {
        let s = servers(&[2, 5, 5]);
        assert_eq!(sequence(&WeightedFailover, &s, 3), "BBB");
        overload(&s[1]);
        assert_eq!(sequence(&WeightedFailover, &s, 1), "C");
    }
}
