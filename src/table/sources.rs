//! The table of client sources of one set of per-client limits (`ClientLimits`): a
//! service's (kept in `ServiceState::sources`) or the global one (kept in
//! `admission::GlobalState::sources`, counted over all services together). Asked by
//! the data plane (`proxy::admit`) for each new connection or flow whose limits count
//! it; read by listings for the number of sources tracked.
//!
//! Per source (the client address cut to `source_prefix_v4` / `source_prefix_v6` by
//! `ClientLimits::source_of`) it counts the TCP connections open now, the UDP flows
//! open now, and a token bucket of new TCP connections:
//!
//! - **New connections per second**: a token bucket of capacity N (the limit) refilled
//!   at N tokens per second, in thousandths of a token per millisecond of the monotonic
//!   clock (`clock::monotonic_ms`, one vDSO read per check). A new source starts with a
//!   full bucket; each admitted connection takes one token; one that finds less than a
//!   whole token is refused and takes nothing. So over any span of t seconds a source
//!   gets at most N + N·t new connections, and a source that keeps to N per second is
//!   never refused. HAProxy's `conn_rate` counts over a sliding 1 s window instead; a
//!   bucket was chosen because it needs two words per source and no history, allows a
//!   burst of N after a quiet second exactly as the window does, and gives a bound
//!   that tests can compute from the time they measured.
//! - **Open connections and flows**: counted up when admitted, down when the
//!   connection or flow ends (`Hold`'s owner, `proxy::admit::Admitted`, gives them back
//!   on Drop). A refused one is not counted.
//!
//! **Bounded**: at most `max_sources` entries. The table is split in shards (up to 64,
//! by a seeded hash of the source), each a mutex around an LRU map (the `lru` crate: a
//! hash map into a linked list, moved to the front on each use, with no allocation for
//! a source already there), so that two workers rarely wait for each other; each shard
//! holds its share of the cap. A new source in a full shard forgets the least recently
//! used entry of it, preferring among the 8 least recently used one with nothing open;
//! only if all 8 hold something is the least recently used forgotten anyway. Its
//! holders keep their entry (each holds it by `Arc`) and give back to it, never to a
//! newer entry of the same source; so past the cap a source's counts can restart from
//! zero (its open connections are no longer seen by the newer entry, and its bucket is
//! full again). That is the price of bounded memory under a flood of sources; the cap
//! (65 536 by default) is meant to be above the number of clients a service has at
//! once.
//!
//! **Memory**: about 140 bytes per tracked source on glibc (measured by
//! `benches/sources.rs`: the allocator's bytes requested, 122 per source: the LRU entry
//! 48, the shared counts 40, the map's bucket and control byte at its load factor,
//! plus glibc's 8-byte chunk header rounded to 16); 65 536 sources, the default cap,
//! take about 9 MiB.
//!
//! A change of the limits' numbers keeps the table (`fits`); a change of a prefix or of
//! the cap makes a new one (the old one is dropped when its last holder ends), made
//! by the first connection that sees the new limits (`Tables::get`).

use std::fmt;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use lru::LruCache;

use super::admission::ClientLimits;

/// Thousandths of a token: a bucket refills N tokens per second, N thousandths per ms.
const MILLI: u64 = 1000;

/// The most shards of one table.
const MAX_SHARDS: usize = 64;

/// How many of a shard's least recently used entries a new source looks through for
/// one with nothing open, before it forgets the least recently used anyway.
const EVICTION_SCAN: usize = 8;

/// What is opened: a TCP connection or a UDP flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Connection,
    Flow,
}

/// Why a source was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// `connections_per_source` connections are open.
    Connections,
    /// The `new_per_second_per_source` bucket is empty.
    Rate,
    /// `flows_per_source` flows are open.
    Flows,
}

/// One tracked source's counts, shared by the table's entry and every connection or
/// flow it admitted (so that one evicted entry is still given back to).
#[derive(Debug, Default)]
pub struct Source {
    connections: AtomicU32,
    flows: AtomicU32,
    /// Thousandths of a token in the bucket (written under the shard's lock).
    tokens: AtomicU64,
    /// When the bucket was last refilled, `clock::monotonic_ms`.
    refilled_ms: AtomicU64,
}

impl Source {
    /// TCP connections open now.
    pub fn connections(&self) -> u32 {
        self.connections.load(Relaxed)
    }

    /// UDP flows open now.
    pub fn flows(&self) -> u32 {
        self.flows.load(Relaxed)
    }

    /// Gives back one connection or flow admitted by `SourceTable::admit`.
    pub fn release(&self, kind: Kind) {
        let count = match kind {
            Kind::Connection => &self.connections,
            Kind::Flow => &self.flows,
        };
        count.fetch_sub(1, Relaxed);
    }

    fn idle(&self) -> bool {
        self.connections() == 0 && self.flows() == 0
    }
}

/// The part of `ClientLimits` that shapes a table: a change of these needs a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    prefix_v4: u8,
    prefix_v6: u8,
    max_sources: u32,
}

impl Shape {
    fn of(limits: &ClientLimits) -> Shape {
        Shape {
            prefix_v4: limits.source_prefix_v4,
            prefix_v6: limits.source_prefix_v6,
            max_sources: limits.max_sources.max(1),
        }
    }
}

struct Shard {
    map: LruCache<IpAddr, Arc<Source>>,
    cap: usize,
}

/// The sources of one `ClientLimits`, at most `max_sources` of them.
pub struct SourceTable {
    shape: Shape,
    hasher: lru::DefaultHasher,
    shards: Box<[Mutex<Shard>]>,
}

impl fmt::Debug for SourceTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceTable")
            .field("shape", &self.shape)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl SourceTable {
    /// An empty table for `limits`' prefixes and cap: one shard per 1 024 sources of
    /// the cap (at least one, at most 64), the cap shared out exactly between them.
    pub fn new(limits: &ClientLimits) -> SourceTable {
        let shape = Shape::of(limits);
        let cap = shape.max_sources as usize;
        let count = (cap / 1024).clamp(1, MAX_SHARDS);
        let shards = (0..count)
            .map(|i| {
                Mutex::new(Shard {
                    map: LruCache::unbounded(),
                    cap: cap / count + usize::from(i < cap % count),
                })
            })
            .collect();
        SourceTable {
            shape,
            hasher: lru::DefaultHasher::default(),
            shards,
        }
    }

    /// Whether the table serves `limits`: the same prefixes and cap (the numbers of
    /// the limits may differ, they are read at each check).
    pub fn fits(&self, limits: &ClientLimits) -> bool {
        self.shape == Shape::of(limits)
    }

    /// The most sources tracked at once.
    pub fn cap(&self) -> usize {
        self.shape.max_sources as usize
    }

    /// The sources tracked now (each shard locked in turn: for listings, not the data
    /// plane).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Admits a new connection or flow (`kind`) of `client` under `limits` at
    /// `now_ms` (`clock::monotonic_ms`), counting it on its source, whose entry is
    /// returned for the caller to `Source::release` when it ends. A refusal counts
    /// nothing and takes no token; a connection a later check refuses (the service's
    /// limits after the global ones) gets its token back (`refund_token`).
    pub fn admit(
        &self,
        limits: &ClientLimits,
        client: IpAddr,
        kind: Kind,
        now_ms: u64,
    ) -> Result<Arc<Source>, Over> {
        let source = limits.source_of(client);
        let hash = self.hasher.hash_one(source);
        // The high bits: the map hashes the same key with its own seed.
        let shard = &self.shards[(hash >> 32) as usize % self.shards.len()];
        let mut shard = lock(shard);
        let entry = match shard.map.get(&source) {
            Some(entry) => Arc::clone(entry),
            None => {
                let fresh = Arc::new(Source {
                    refilled_ms: AtomicU64::new(now_ms),
                    tokens: AtomicU64::new(u64::from(limits.new_per_second_per_source) * MILLI),
                    ..Source::default()
                });
                shard.make_room();
                shard.map.push(source, Arc::clone(&fresh));
                fresh
            }
        };
        match kind {
            Kind::Connection => {
                let most = limits.connections_per_source;
                if most > 0 && entry.connections() >= most {
                    return Err(Over::Connections);
                }
                let rate = u64::from(limits.new_per_second_per_source);
                if rate > 0 {
                    let full = rate * MILLI;
                    let last = entry.refilled_ms.load(Relaxed);
                    let elapsed = now_ms.saturating_sub(last);
                    let tokens = entry
                        .tokens
                        .load(Relaxed)
                        .saturating_add(elapsed.saturating_mul(rate))
                        .min(full);
                    entry.refilled_ms.store(now_ms.max(last), Relaxed);
                    if tokens < MILLI {
                        entry.tokens.store(tokens, Relaxed);
                        return Err(Over::Rate);
                    }
                    entry.tokens.store(tokens - MILLI, Relaxed);
                }
                entry.connections.fetch_add(1, Relaxed);
            }
            Kind::Flow => {
                let most = limits.flows_per_source;
                if most > 0 && entry.flows() >= most {
                    return Err(Over::Flows);
                }
                entry.flows.fetch_add(1, Relaxed);
            }
        }
        Ok(entry)
    }
}

impl SourceTable {
    /// Gives back the new-connection token `admit` took for `client` under `limits`
    /// (a later check refused the connection: a refused connection takes nothing), if
    /// its source is still tracked.
    pub fn refund_token(&self, limits: &ClientLimits, client: IpAddr) {
        let rate = u64::from(limits.new_per_second_per_source);
        if rate == 0 {
            return;
        }
        let source = limits.source_of(client);
        let hash = self.hasher.hash_one(source);
        let shard = &self.shards[(hash >> 32) as usize % self.shards.len()];
        let shard = lock(shard);
        if let Some(entry) = shard.map.peek(&source) {
            let tokens = entry.tokens.load(Relaxed).saturating_add(MILLI);
            entry.tokens.store(tokens.min(rate * MILLI), Relaxed);
        }
    }
}

impl Shard {
    /// Forgets one entry if the shard is full: the least recently used of the last
    /// few with nothing open, else the least recently used.
    fn make_room(&mut self) {
        if self.map.len() < self.cap {
            return;
        }
        let idle = self
            .map
            .iter()
            .rev()
            .take(EVICTION_SCAN)
            .find(|(_, s)| s.idle())
            .map(|(k, _)| *k);
        match idle {
            Some(key) => {
                self.map.pop(&key);
            }
            None => {
                self.map.pop_lru();
            }
        }
    }
}

/// A shard's lock; a holder that panicked left the counts whole (each write is one
/// store), so a poisoned lock is taken as it is.
fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where a `ClientLimits`' table is kept (a service's state, the global state): made
/// by the first connection or flow that needs it, and made anew by the first one
/// that sees limits of another shape (prefix, cap) after a reload.
#[derive(Debug, Default)]
pub struct Tables {
    current: ArcSwapOption<SourceTable>,
}

impl Tables {
    /// The table for `limits`: the one kept if it fits them, else a new one, kept.
    /// While a reload is under way, a connection that still sees the old limits and
    /// races one that sees the new ones may get a table of its own, unkept.
    pub fn get(&self, limits: &ClientLimits) -> Arc<SourceTable> {
        for _ in 0..2 {
            let seen = self.current.load();
            if let Some(table) = seen.as_ref().filter(|t| t.fits(limits)) {
                return Arc::clone(table);
            }
            // Two workers may both make one: the first stored wins, the other is
            // dropped unused and its caller takes the stored one.
            let made = Arc::new(SourceTable::new(limits));
            let before = self
                .current
                .compare_and_swap(&*seen, Some(Arc::clone(&made)));
            let stored = match (&*before, &*seen) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if stored {
                return made;
            }
        }
        Arc::new(SourceTable::new(limits))
    }

    /// The table kept now, if any (for listings).
    pub fn current(&self) -> Option<Arc<SourceTable>> {
        self.current.load_full()
    }

    /// The sources tracked now under `limits` (0 when no table fits them yet: a
    /// leftover of older limits of another shape is not theirs).
    pub fn tracked(&self, limits: &ClientLimits) -> u64 {
        self.current
            .load()
            .as_ref()
            .filter(|t| t.fits(limits))
            .map_or(0, |t| t.len() as u64)
    }
}

#[cfg(test)]
mod tests;
