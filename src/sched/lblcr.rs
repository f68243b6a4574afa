//! Locality-based least connection with replication (ip_vs_lblcr.c): each destination
//! address has a set of servers; the least loaded member serves it, and when that one
//! is overloaded a new server (wlc over all) joins the set. A set that has not changed
//! for a day loses its most loaded member.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::lblc::{Cache, EXPIRATION, Used, is_overloaded};
use super::{NoDestHooks, Packet, position, weighted_least};
use crate::lock::Locked;
use crate::table::{RealServer, RealServerState, ServerKey};

#[derive(Debug, Clone)]
struct Member {
    key: ServerKey,
    /// Kept so a member that left the service is still judged by its last state.
    state: Arc<RealServerState>,
}

#[derive(Debug)]
struct Entry {
    /// Newest first, as the kernel's list.
    set: Vec<Member>,
    last_modified: Instant,
    last_use: Instant,
}

impl Used for Entry {
    fn last_use(&self) -> Instant {
        self.last_use
    }
}

/// A clone shares the cache (its next state, see `NoDestHooks`).
#[derive(Debug, Clone)]
pub struct LocalityReplicated {
    cache: Arc<Mutex<Cache<Entry>>>,
}

impl LocalityReplicated {
    pub fn new() -> LocalityReplicated {
        LocalityReplicated {
            cache: Arc::new(Mutex::new(Cache::new())),
        }
    }
}

/// A member's place in the current list, if it is still there and available.
fn member_index(m: &Member, servers: &[RealServer]) -> Option<usize> {
    position(servers, &m.key).filter(|_| m.state.is_available())
}

/// `ip_vs_dest_set_min`: the weighted least-loaded available member.
fn set_min(set: &[Member], servers: &[RealServer]) -> Option<usize> {
    let weight = |i: usize| u128::from(servers[i].weight);
    let mut iter = set.iter();
    let mut least = loop {
        let m = iter.next()?;
        if m.state.is_held_out() {
            continue;
        }
        if let Some(i) = member_index(m, servers).filter(|i| servers[*i].weight > 0) {
            break i;
        }
    };
    let mut loh = servers[least].state.overhead();
    for m in iter {
        if m.state.is_held_out() {
            continue;
        }
        let Some(i) = member_index(m, servers) else {
            continue;
        };
        let doh = servers[i].state.overhead();
        if u128::from(loh) * weight(i) > u128::from(doh) * weight(least) {
            least = i;
            loh = doh;
        }
    }
    Some(least)
}

/// `ip_vs_dest_set_max`: the weighted most-loaded member with a weight.
fn set_max(set: &[Member]) -> Option<ServerKey> {
    let mut iter = set.iter();
    let mut most = iter.find(|m| m.state.weight() > 0)?;
    let mut moh = most.state.overhead();
    for m in iter {
        let doh = m.state.overhead();
        let w = m.state.weight();
        if u128::from(moh) * u128::from(w) < u128::from(doh) * u128::from(most.state.weight())
            && w > 0
        {
            most = m;
            moh = doh;
        }
    }
    Some(most.key)
}

impl NoDestHooks for LocalityReplicated {
    fn choose(&self, servers: &[RealServer], packet: &Packet) -> Option<usize> {
        let now = Instant::now();
        let daddr = packet.local.ip();
        let mut cache = self.cache.locked();
        cache.collect(now);
        let member = |i: usize| Member {
            key: servers[i].key(),
            state: Arc::clone(&servers[i].state),
        };
        let Some(entry) = cache.entries.get_mut(&daddr) else {
            let chosen = weighted_least(servers, |s| s.state.overhead())?;
            cache.entries.insert(
                daddr,
                Entry {
                    set: vec![member(chosen)],
                    last_modified: now,
                    last_use: now,
                },
            );
            return Some(chosen);
        };
        entry.last_use = now;
        let min = set_min(&entry.set, servers);
        if entry.set.len() > 1
            && now.duration_since(entry.last_modified) > EXPIRATION
            && let Some(most) = set_max(&entry.set)
        {
            entry.set.retain(|m| m.key != most);
            entry.last_modified = now;
        }
        if let Some(i) = min.filter(|i| {
            !servers[*i].state.is_held_by_pool() && !is_overloaded(&servers[*i], servers)
        }) {
            return Some(i);
        }
        let chosen = weighted_least(servers, |s| s.state.overhead())?;
        if !entry.set.iter().any(|m| m.key == servers[chosen].key()) {
            entry.set.insert(0, member(chosen));
            entry.last_modified = now;
        }
        Some(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn the_set_grows_when_its_best_member_is_overloaded() {
        let s = servers(&[2, 2]);
        let l = LocalityReplicated::new();
        assert_eq!(sequence(&l, &s, 2), "AA");
        load(&s[0], 3, 0);
        assert_eq!(sequence(&l, &s, 1), "B", "A is overloaded: B joins the set");
        load(&s[0], 1, 0);
        load(&s[1], 2, 0);
        // Set {B, A}: A has the least weighted load (256 < 512).
        assert_eq!(sequence(&l, &s, 1), "A");
    }
}
