//! Overflow (ip_vs_ovf.c): the highest-weight server whose active connections do not
//! exceed its weight; when it is full, the next one in weight order.

use super::{Algorithm, ListChange, Packet};
use crate::table::{RealServer, ServiceFlags};

#[derive(Debug)]
pub struct Overflow;

impl Algorithm for Overflow {
    fn pick(&self, servers: &[RealServer], _: ServiceFlags, _: &Packet) -> Option<usize> {
        let mut best: Option<(usize, u32)> = None;
        for (i, s) in servers.iter().enumerate() {
            let w = s.weight;
            if s.state.is_overloaded() || s.state.active() > w || w == 0 {
                continue;
            }
            if best.is_none_or(|(_, hw)| w > hw) {
                best = Some((i, w));
            }
        }
        best.map(|(i, _)| i)
    }

    fn next(&self, _: &[RealServer], _: &ListChange) -> Box<dyn Algorithm> {
        Box::new(Overflow)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn overflows_past_the_weight() {
        let s = servers(&[2, 3]);
        load(&s[1], 3, 0);
        assert_eq!(
            sequence(&Overflow, &s, 1),
            "B",
            "3 active is not above weight 3"
        );
        load(&s[1], 4, 0);
        assert_eq!(sequence(&Overflow, &s, 1), "A");
        load(&s[0], 3, 0);
        assert_eq!(sequence(&Overflow, &s, 1), "-");
    }
}
