//! Round robin (ip_vs_rr.c): the next server after the last one picked, wrapping, that
//! has a weight and is not overloaded.

use std::sync::{Arc, Mutex};

use super::{Algorithm, Cursor, ListChange, Packet, usable};
use crate::lock::Locked;
use crate::table::{RealServer, ServiceFlags};

#[derive(Debug)]
pub struct RoundRobin {
    /// The server picked last; None is the list head (nothing picked yet).
    last: Arc<Mutex<Option<Cursor>>>,
}

impl RoundRobin {
    pub fn new() -> RoundRobin {
        RoundRobin {
            last: Arc::new(Mutex::new(None)),
        }
    }
}

impl Algorithm for RoundRobin {
    fn pick(&self, servers: &[RealServer], _: ServiceFlags, _: &Packet) -> Option<usize> {
        let mut last = self.last.locked();
        let start = last.and_then(|c| c.find(servers));
        let after = start.map_or(0, |i| i + 1);
        // From the server after the last one to the end; then, unless we began at the
        // head, from the head up to and including the last one.
        let second_pass = start.map_or(0..0, |s| 0..s + 1);
        let hit = (after..servers.len())
            .chain(second_pass)
            .find(|i| usable(&servers[*i]))?;
        *last = Some(Cursor::at(servers, hit));
        Some(hit)
    }

    fn next(&self, _: &[RealServer], change: &ListChange) -> Box<dyn Algorithm> {
        let current = *self.last.locked();
        let last = match change {
            // The kernel steps back to the entry before the removed one.
            ListChange::Removed { removed, previous }
                if current.is_some_and(|c| c.key == *removed) =>
            {
                previous.map(Cursor::of)
            }
            _ => current,
        };
        Box::new(RoundRobin {
            last: Arc::new(Mutex::new(last)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn alternates_and_skips_quiesced_and_overloaded_servers() {
        let s = servers(&[1, 1, 1]);
        let rr = RoundRobin::new();
        assert_eq!(sequence(&rr, &s, 7), "ABCABCA");
        let q = servers(&[1, 0, 1]);
        assert_eq!(sequence(&RoundRobin::new(), &q, 4), "ACAC");
        overload(&q[2]);
        assert_eq!(sequence(&RoundRobin::new(), &q, 3), "AAA");
        assert_eq!(sequence(&RoundRobin::new(), &servers(&[0, 0]), 2), "--");
        assert_eq!(sequence(&RoundRobin::new(), &servers(&[]), 1), "-");
    }

    #[test]
    fn removing_the_last_pick_steps_back() {
        let s = servers(&[1, 1, 1]);
        let rr = RoundRobin::new();
        assert_eq!(sequence(&rr, &s, 2), "AB");
        // B (index 1) is removed; the next pick continues after A, as in the kernel.
        let removed = s[1].key();
        let rest = vec![s[0].clone(), s[2].clone()];
        let next = rr.next(
            &rest,
            &ListChange::Removed {
                removed,
                previous: Some(s[0].key()),
            },
        );
        let seq: String = (0..3)
            .map(|_| {
                let i = next
                    .pick(&rest, ServiceFlags::default(), &packet("1.2.3.4:5"))
                    .unwrap();
                if i == 0 { 'A' } else { 'C' }
            })
            .collect();
        assert_eq!(seq, "CAC");
    }
}
