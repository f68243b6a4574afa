//! Never queue (ip_vs_nq.c): an idle server (no active connection) if there is one, the
//! first such; otherwise shortest expected delay.

use super::{NoDestHooks, Packet, usable, weighted_least};
use crate::table::RealServer;

#[derive(Debug, Clone, Copy)]
pub struct NeverQueue;

impl NoDestHooks for NeverQueue {
    fn choose(&self, servers: &[RealServer], _: &Packet) -> Option<usize> {
        // The kernel returns the first idle server it meets; with none, its scan is
        // sed's.
        (servers.iter())
            .position(|s| usable(s) && s.state.active() == 0)
            .or_else(|| weighted_least(servers, |s| u64::from(s.state.active()) + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn idle_first_then_sed() {
        let s = servers(&[1, 5, 1]);
        load(&s[0], 1, 0);
        assert_eq!(sequence(&NeverQueue, &s, 1), "B", "the first idle one");
        load(&s[1], 4, 0);
        load(&s[2], 1, 0);
        assert_eq!(sequence(&NeverQueue, &s, 1), "B", "5/5 < 2/1");
    }
}
