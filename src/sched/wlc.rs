//! Weighted least connection, IPVS's default (ip_vs_wlc.c): the smallest
//! overhead / weight, compared as `loh * w_d > doh * w_least`.

use super::{NoDestHooks, Packet, weighted_least};
use crate::table::RealServer;

#[derive(Debug, Clone, Copy)]
pub struct WeightedLeastConnection;

impl NoDestHooks for WeightedLeastConnection {
    fn choose(&self, servers: &[RealServer], _: &Packet) -> Option<usize> {
        weighted_least(servers, |s| s.state.overhead())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn overhead_per_weight() {
        let s = servers(&[1, 3]);
        assert_eq!(
            sequence(&WeightedLeastConnection, &s, 1),
            "A",
            "all idle: the first"
        );
        load(&s[0], 1, 0);
        load(&s[1], 2, 0);
        assert_eq!(sequence(&WeightedLeastConnection, &s, 1), "B", "2/3 < 1/1");
        load(&s[1], 3, 0);
        assert_eq!(
            sequence(&WeightedLeastConnection, &s, 1),
            "A",
            "3/3 is not below 1/1"
        );
        let q = servers(&[0, 1]);
        load(&q[1], 100, 0);
        assert_eq!(sequence(&WeightedLeastConnection, &q, 1), "B");
        overload(&q[1]);
        assert_eq!(sequence(&WeightedLeastConnection, &q, 1), "-");
    }
}
