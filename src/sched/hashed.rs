//! The pick the hashing schedulers share (ip_vs_sh.c's `ip_vs_sh_get_fallback` and
//! ip_vs_mh.c's `ip_vs_mh_get_fallback`, and their plain lookups): the client's slot in
//! the scheduler's table, and with `*-fallback` a walk around the table past unusable
//! servers. Called by `sh` and `mh`, which differ only in how they hash and fill it.

use super::{Packet, usable};
use crate::table::key::addr_fold;
use crate::table::{RealServer, ServiceFlags};

/// The server in the client's slot of `table` (a server's index in the list it was
/// filled from), if it is usable. Otherwise, with SCHED1 (sh-fallback, mh-fallback),
/// the first usable server in the slots for offsets `ihash`, `ihash + 1`, ... (wrapping
/// at the table's size), `ihash` being the client's own slot; None at an empty slot, a
/// server no longer in the list, or after a whole turn. `slot(addr, port, offset)` is the
/// scheduler's hash: the client's folded address and, with SCHED2 (sh-port, mh-port),
/// its port (else 0).
pub(super) fn pick(
    table: &[Option<u32>],
    slot: impl Fn(u32, u16, u32) -> usize,
    servers: &[RealServer],
    flags: ServiceFlags,
    packet: &Packet,
) -> Option<usize> {
    let port = if flags.has(ServiceFlags::SCHED2) {
        packet.client.port()
    } else {
        0
    };
    let addr = addr_fold(&packet.client.ip());
    let at = |offset: u32| {
        table[slot(addr, port, offset)]
            .map(|i| i as usize)
            .filter(|i| *i < servers.len())
    };
    let first = at(0)?;
    if usable(&servers[first]) {
        return Some(first);
    }
    if !flags.has(ServiceFlags::SCHED1) {
        return None;
    }
    let ihash = slot(addr, port, 0);
    for offset in 0..table.len() {
        let i = at(((offset + ihash) % table.len()) as u32)?;
        if usable(&servers[i]) {
            return Some(i);
        }
    }
    None
}
