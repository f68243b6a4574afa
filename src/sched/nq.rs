//! Never queue (ip_vs_nq.c): an idle server (no active connection) if there is one, the
//! first such; otherwise shortest expected delay.

use super::{Algorithm, ListChange, Packet};
use crate::table::{RealServer, ServiceFlags};

#[derive(Debug)]
pub struct NeverQueue;

impl Algorithm for NeverQueue {
    fn pick(&self, servers: &[RealServer], _: ServiceFlags, _: &Packet) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for (i, s) in servers.iter().enumerate() {
            if s.state.is_overloaded() || s.weight == 0 {
                continue;
            }
            let doh = u64::from(s.state.active()) + 1;
            if s.state.active() == 0 {
                return Some(i);
            }
            let better = least.is_none_or(|(l, loh)| {
                u128::from(loh) * u128::from(s.weight)
                    > u128::from(doh) * u128::from(servers[l].weight)
            });
            if better {
                least = Some((i, doh));
            }
        }
        least.map(|(i, _)| i)
    }

    fn next(&self, _: &[RealServer], _: &ListChange) -> Box<dyn Algorithm> {
        Box::new(NeverQueue)
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
