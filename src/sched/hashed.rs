//! The pick the hashing schedulers share (ip_vs_sh.c's `ip_vs_sh_get_fallback` and
//! ip_vs_mh.c's `ip_vs_mh_get_fallback`, and their plain lookups): the client's slot in
//! the scheduler's table, and with `*-fallback` a walk around the table past unusable
//! servers. Called by `sh` and `mh`, which differ only in how they hash and fill it.
//! Also the kernel's `hash_32`, with which `sh` and `dh` pick their bucket.

use super::{Packet, usable};
use crate::table::key::addr_fold;
use crate::table::{RealServer, ServiceFlags};

/// The kernel's `hash_32(value, bits)` (include/linux/hash.h, the generic version every
/// architecture but a few small ones uses): the top `bits` bits of `value` times
/// GOLDEN_RATIO_32, so that every bit of the value moves the bucket.
pub(super) fn hash_32(value: u32, bits: u32) -> u32 {
    const GOLDEN_RATIO_32: u32 = 0x61c8_8647;
    value.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

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
