//! Weighted round robin (ip_vs_wrr.c): passes over the list with a current weight that
//! starts at the maximum and steps down by the weights' gcd; a server is picked when its
//! weight reaches the current weight. Weights 4, 3, 2 give A A B A B C A B C.

use std::sync::Mutex;

use super::{Algorithm, Cursor, ListChange, Packet, gcd_of};
use crate::lock::Locked;
use crate::table::{RealServer, ServiceFlags};

#[derive(Debug, Clone, Copy)]
struct Mark {
    /// Current position; None is the list head.
    cl: Option<Cursor>,
    /// Current weight.
    cw: i64,
    /// Maximum weight, less (di - 1).
    mw: i64,
    /// Step: the gcd of the positive weights (1 if none).
    di: i64,
}

#[derive(Debug)]
pub struct WeightedRoundRobin {
    mark: Mutex<Mark>,
}

fn weights(servers: &[RealServer]) -> (i64, i64) {
    let gcd = gcd_of(servers.iter().map(|s| s.weight));
    let di = if gcd == 0 { 1 } else { i64::from(gcd) };
    let max = servers
        .iter()
        .map(|s| i64::from(s.weight))
        .max()
        .unwrap_or(0);
    (di, max - (di - 1))
}

impl WeightedRoundRobin {
    pub fn new(servers: &[RealServer]) -> WeightedRoundRobin {
        let (di, mw) = weights(servers);
        WeightedRoundRobin {
            mark: Mutex::new(Mark {
                cl: None,
                cw: mw,
                mw,
                di,
            }),
        }
    }
}

impl Algorithm for WeightedRoundRobin {
    fn pick(&self, servers: &[RealServer], _: ServiceFlags, _: &Packet) -> Option<usize> {
        let mut m = self.mark.locked();
        let mut dest = m.cl.and_then(|c| c.find(servers));
        if m.mw == 0 {
            return None;
        }
        let last = dest;
        let mut stop: Option<usize> = None;
        let (mut last_pass, mut restarted) = (false, false);
        loop {
            for (i, s) in servers.iter().enumerate().skip(dest.map_or(0, |d| d + 1)) {
                if !s.state.is_held_out() && i64::from(s.weight) >= m.cw {
                    m.cl = Some(Cursor::at(servers, i));
                    return Some(i);
                }
                if stop == Some(i) {
                    m.cl = Some(Cursor::at(servers, i));
                    return None;
                }
            }
            dest = None;
            m.cw -= m.di;
            if m.cw <= 0 {
                m.cw = m.mw;
                // Every server was checked for weight >= 1: none is usable.
                if last_pass || last.is_none() {
                    m.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = m.cw <= m.di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
    }

    fn next(&self, servers: &[RealServer], _: &ListChange) -> Box<dyn Algorithm> {
        let old = *self.mark.locked();
        let (di, mw) = weights(servers);
        let cw = if old.cw > mw || old.cw == 0 {
            mw
        } else if di > 1 {
            (old.cw / di) * di + 1
        } else {
            old.cw
        };
        Box::new(WeightedRoundRobin {
            mark: Mutex::new(Mark {
                cl: None,
                cw,
                mw,
                di,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn ipvs_order() {
        let s = servers(&[4, 3, 2]);
        assert_eq!(
            sequence(&WeightedRoundRobin::new(&s), &s, 18),
            "AABABCABCAABABCABC"
        );
        let s = servers(&[3, 1]);
        assert_eq!(sequence(&WeightedRoundRobin::new(&s), &s, 8), "AAABAAAB");
        let s = servers(&[1, 3]);
        assert_eq!(sequence(&WeightedRoundRobin::new(&s), &s, 8), "BBABBBAB");
        let s = servers(&[4, 2]);
        assert_eq!(sequence(&WeightedRoundRobin::new(&s), &s, 6), "AABAAB");
    }

    #[test]
    fn zero_and_overloaded() {
        let s = servers(&[0, 0]);
        assert_eq!(sequence(&WeightedRoundRobin::new(&s), &s, 2), "--");
        let s = servers(&[2, 1]);
        overload(&s[0]);
        assert_eq!(sequence(&WeightedRoundRobin::new(&s), &s, 3), "BBB");
        overload(&s[1]);
        assert_eq!(sequence(&WeightedRoundRobin::new(&s), &s, 2), "--");
    }

    #[test]
    fn weight_change_recomputes_from_the_head() {
        let s = servers(&[4, 3, 2]);
        let w = WeightedRoundRobin::new(&s);
        assert_eq!(sequence(&w, &s, 3), "AAB");
        let t = servers(&[1, 1, 1]);
        let next = w.next(&t, &ListChange::Updated);
        assert_eq!(sequence(next.as_ref(), &t, 6), "ABCABC");
    }
}
