//! Shortest expected delay (ip_vs_sed.c): the smallest (active + 1) / weight; inactive
//! connections do not count.

use super::{NoDestHooks, Packet, weighted_least};
use crate::table::RealServer;

#[derive(Debug, Clone, Copy)]
pub struct ShortestExpectedDelay;

impl NoDestHooks for ShortestExpectedDelay {
    fn choose(&self, servers: &[RealServer], _: &Packet) -> Option<usize> {
        weighted_least(servers, |s| u64::from(s.state.active()) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn expected_delay() {
        let s = servers(&[1, 2]);
        assert_eq!(sequence(&ShortestExpectedDelay, &s, 1), "B", "1/1 > 1/2");
        load(&s[1], 1, 0);
        assert_eq!(
            sequence(&ShortestExpectedDelay, &s, 1),
            "A",
            "2/2 is not below 1/1"
        );
        load(&s[0], 0, 1000);
        assert_eq!(
            sequence(&ShortestExpectedDelay, &s, 1),
            "A",
            "inactive is ignored"
        );
    }
}
