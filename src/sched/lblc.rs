//! Locality-based least connection (ip_vs_lblc.c): each destination address (the VIP
//! the client reached) is served by one server, chosen by wlc and remembered; the
//! remembered server is kept until it is unavailable, quiesced, or overloaded (more
//! active connections than its weight while another server is below half of its own).
//! Entries unused for a day are forgotten; above 16384 entries, those unused for six
//! minutes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{NoDestHooks, Packet, position, weighted_least};
use crate::lock::Locked;
use crate::table::{RealServer, ServerKey};

/// sysctl lblc_expiration default.
pub(super) const EXPIRATION: Duration = Duration::from_secs(24 * 60 * 60);
/// Entries above this count are collected when unused for [`ENTRY_TIMEOUT`].
const MAX_ENTRIES: usize = 1024 * 16;
const ENTRY_TIMEOUT: Duration = Duration::from_secs(6 * 60);
/// How often stale entries are looked for.
const CHECK_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Entry {
    server: ServerKey,
    last_use: Instant,
}

/// What a locality scheduler remembers per destination address, with the kernel's
/// collection of entries left unused (shared by lblc and lblcr).
#[derive(Debug)]
pub(super) struct Cache<E> {
    pub(super) entries: HashMap<IpAddr, E>,
    last_check: Instant,
}

/// An entry that knows when it was last used.
pub(super) trait Used {
    fn last_use(&self) -> Instant;
}

impl<E: Used> Cache<E> {
    pub(super) fn new() -> Cache<E> {
        Cache {
            entries: HashMap::new(),
            last_check: Instant::now(),
        }
    }

    /// Once a minute: forgets entries unused for a day, or for six minutes when there
    /// are more than [`MAX_ENTRIES`].
    pub(super) fn collect(&mut self, now: Instant) {
        if now.duration_since(self.last_check) < CHECK_INTERVAL {
            return;
        }
        self.last_check = now;
        let limit = if self.entries.len() > MAX_ENTRIES {
            ENTRY_TIMEOUT
        } else {
            EXPIRATION
        };
        self.entries
            .retain(|_, e| now.duration_since(e.last_use()) < limit);
    }
}

impl Used for Entry {
    fn last_use(&self) -> Instant {
        self.last_use
    }
}

/// A clone shares the cache (its next state, see `NoDestHooks`).
#[derive(Debug, Clone)]
pub struct LocalityLeastConnection {
    cache: Arc<Mutex<Cache<Entry>>>,
}

/// The lblc/lblcr overload test: more active connections than weight while some server
/// has fewer than half of its weight.
pub(super) fn is_overloaded(server: &RealServer, servers: &[RealServer]) -> bool {
    u64::from(server.state.active()) > u64::from(server.weight)
        && servers
            .iter()
            .any(|d| u64::from(d.state.active()) * 2 < u64::from(d.weight))
}

impl LocalityLeastConnection {
    pub fn new() -> LocalityLeastConnection {
        LocalityLeastConnection {
            cache: Arc::new(Mutex::new(Cache::new())),
        }
    }
}

impl NoDestHooks for LocalityLeastConnection {
    fn choose(&self, servers: &[RealServer], packet: &Packet) -> Option<usize> {
        let now = Instant::now();
        let daddr = packet.local.ip();
        let mut cache = self.cache.locked();
        cache.collect(now);
        if let Some(entry) = cache.entries.get_mut(&daddr) {
            entry.last_use = now;
            if let Some(i) = position(servers, &entry.server) {
                let s = &servers[i];
                if s.state.is_available()
                    && s.weight > 0
                    && !s.state.is_held_by_pool()
                    && !is_overloaded(s, servers)
                {
                    return Some(i);
                }
            }
        }
        let chosen = weighted_least(servers, |s| s.state.overhead())?;
        let key = servers[chosen].key();
        let same = cache.entries.get(&daddr).is_some_and(|e| e.server == key);
        if !same {
            cache.entries.insert(
                daddr,
                Entry {
                    server: key,
                    last_use: now,
                },
            );
        }
        Some(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn a_destination_sticks_until_its_server_is_overloaded() {
        let s = servers(&[2, 2]);
        let l = LocalityLeastConnection::new();
        assert_eq!(sequence(&l, &s, 3), "AAA", "one VIP, one server");
        load(&s[0], 3, 0);
        load(&s[1], 0, 0);
        assert_eq!(sequence(&l, &s, 1), "B", "3 > 2 while B is below half");
        load(&s[0], 0, 0);
        assert_eq!(sequence(&l, &s, 1), "B", "the new server is remembered");
    }
}
