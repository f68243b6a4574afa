//! Least connection (ip_vs_lc.c): the usable server with the smallest overhead
//! (`active * 256 + inactive`); the first one on a tie.

use super::{NoDestHooks, Packet, least_by};
use crate::table::RealServer;

#[derive(Debug, Clone, Copy)]
pub struct LeastConnection;

impl NoDestHooks for LeastConnection {
    fn choose(&self, servers: &[RealServer], _: &Packet) -> Option<usize> {
        least_by(servers, |_| true, |s| s.state.overhead())
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
