//! Weighted failover (ip_vs_fo.c): the usable server with the highest weight, the first
//! one on a tie.

use super::{NoDestHooks, Packet, heaviest};
use crate::table::RealServer;

#[derive(Debug, Clone, Copy)]
pub struct WeightedFailover;

impl NoDestHooks for WeightedFailover {
    fn choose(&self, servers: &[RealServer], _: &Packet) -> Option<usize> {
        heaviest(servers, |_| true)
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
