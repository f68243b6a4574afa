//! Overflow (ip_vs_ovf.c): the highest-weight server whose active connections do not
//! exceed its weight; when it is full, the next one in weight order.

use super::{NoDestHooks, Packet, heaviest};
use crate::table::RealServer;

#[derive(Debug, Clone, Copy)]
pub struct Overflow;

impl NoDestHooks for Overflow {
    fn choose(&self, servers: &[RealServer], _: &Packet) -> Option<usize> {
        heaviest(servers, |s| s.state.active() <= s.weight)
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
