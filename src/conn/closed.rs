//! Closed connection entries: what stays of a connection in the table once its task has
//! ended, for IPVS's TIME_WAIT (120 s) or CLOSE (10 s), still counted in its real
//! server's InActConn, still holding its persistence template, listed by `-L -c`.
//!
//! A closed entry is a compact record (addresses packed, expiry relative to its second),
//! not the live connection's `Conn`: the `Conn` (and with it the task's `AbortHandle`,
//! which keeps the whole task cell, sized to the connection's future, allocated) is
//! freed when the task ends. Records wait in buckets by the second they expire, so a
//! sweep takes only the due buckets and a listing copies a bounded chunk at a time:
//! the lock `ConnTable::close` takes on the data plane is never held for work
//! proportional to the number of closed entries. Used by `conn::ConnTable` only.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use super::State;
use crate::lock::Locked;
use crate::persist::Control;
use crate::table::{ConnEntry, Protocol, RealServerState};

/// Records copied per lock hold by a listing.
pub(super) const LIST_CHUNK: usize = 1024;
/// Records per part of a bucket: a bucket grows by parts, so that filing an entry never
/// copies more than one part (22 KB) under the lock, however many connections close in
/// one second.
const PART: usize = 256;

/// The plain part of a closed entry (what `-L -c` shows): 64 bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Record {
    /// Client, virtual address, real server: IPv6, or IPv4 as mapped (`v4` says which).
    addrs: [[u8; 16]; 3],
    ports: [u16; 3],
    /// Milliseconds before the bucket's second that the entry expires (0..=999).
    early_ms: u16,
    /// Bit i: address i is IPv4.
    v4: u8,
    protocol: Protocol,
    state: State,
}

impl Record {
    fn new(protocol: Protocol, addrs: [SocketAddr; 3], state: State, early_ms: u16) -> Record {
        let mut packed = Record {
            addrs: [[0; 16]; 3],
            ports: [0; 3],
            early_ms,
            v4: 0,
            protocol,
            state,
        };
        for (i, a) in addrs.iter().enumerate() {
            packed.ports[i] = a.port();
            packed.addrs[i] = match a.ip() {
                IpAddr::V4(v4) => {
                    packed.v4 |= 1 << i;
                    v4.to_ipv6_mapped().octets()
                }
                IpAddr::V6(v6) => v6.octets(),
            };
        }
        packed
    }

    fn ip(&self, i: usize) -> IpAddr {
        let v6 = Ipv6Addr::from(self.addrs[i]);
        match v6.to_ipv4_mapped() {
            Some(v4) if self.v4 & (1 << i) != 0 => IpAddr::V4(v4),
            _ => IpAddr::V6(v6),
        }
    }

    /// The entry as `-L -c` lists it at `now_ms`, filed under `second`.
    pub(super) fn entry(&self, second: u64, now_ms: u64) -> ConnEntry {
        let expires_ms = (second * 1000).saturating_sub(u64::from(self.early_ms));
        ConnEntry {
            protocol: self.protocol.label().to_string(),
            client_addr: self.ip(0),
            client_port: self.ports[0],
            virtual_addr: self.ip(1),
            virtual_port: self.ports[1],
            dest_addr: self.ip(2),
            dest_port: self.ports[2],
            state: self.state.name().to_string(),
            expires: (expires_ms.saturating_sub(now_ms) / 1000) as u32,
            pe_name: None,
            pe_data: None,
        }
    }
}

/// A closed entry: its record, the server whose InActConn it counts in, and its hold on
/// its persistence template (88 bytes).
#[derive(Debug)]
pub(super) struct Closed {
    record: Record,
    server: Arc<RealServerState>,
    template: Option<Control>,
}

impl Closed {
    /// The entry leaves the table: out of its server's counts and its template.
    fn unbind(self) {
        self.server.unbind_connection(self.record.state.is_active());
        if let Some(t) = &self.template {
            t.release();
        }
    }
}

/// What a closed entry is made of (the live connection's parts).
pub(super) struct Closing<'a> {
    pub protocol: Protocol,
    /// Client, virtual address, real server.
    pub addrs: [SocketAddr; 3],
    pub state: State,
    pub expires_ms: u64,
    pub server: &'a Arc<RealServerState>,
    pub template: Option<Control>,
}

/// The closed entries of one second, in the order they were filed, in parts of at most
/// [`PART`].
#[derive(Debug, Default)]
struct Bucket {
    parts: Vec<Vec<Closed>>,
    len: usize,
}

impl Bucket {
    fn push(&mut self, c: Closed) {
        self.len += 1;
        match self.parts.last_mut() {
            Some(last) if last.len() < PART => last.push(c),
            _ => self.parts.push(vec![c]),
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    /// The entries from the `skip`th on.
    fn from(&self, skip: usize) -> impl Iterator<Item = &Closed> {
        let within = skip % PART;
        let parts = self.parts.get(skip / PART..).unwrap_or_default();
        parts.iter().enumerate().flat_map(move |(i, p)| {
            let start = if i == 0 { within } else { 0 };
            p.get(start..).unwrap_or_default()
        })
    }
}

/// Closed entries by the second they expire (the first second at or after their
/// expiry, so a bucket is due as a whole).
#[derive(Debug, Default)]
pub(super) struct ClosedEntries {
    buckets: Mutex<BTreeMap<u64, Bucket>>,
}

/// Where a listing stopped: the bucket's second and the records of it already copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Cursor {
    second: u64,
    copied: usize,
}

impl ClosedEntries {
    /// Files a closed entry: O(log buckets) under the lock (one bucket a second).
    pub(super) fn add(&self, c: Closing<'_>) {
        let second = c.expires_ms.div_ceil(1000);
        // In 0..=999 by the ceiling above.
        let early_ms = (second * 1000 - c.expires_ms) as u16;
        let closed = Closed {
            record: Record::new(c.protocol, c.addrs, c.state, early_ms),
            server: Arc::clone(c.server),
            template: c.template,
        };
        self.buckets
            .locked()
            .entry(second)
            .or_default()
            .push(closed);
    }

    /// Unbinds every entry due at `now_ms`: returns how many, and how many buckets were
    /// taken. Each bucket is taken out under the lock (O(log buckets)) and its entries
    /// unbound and freed after it is released; buckets not due are not looked at.
    pub(super) fn sweep(&self, now_ms: u64) -> (usize, usize) {
        let due = now_ms / 1000;
        let (mut expired, mut buckets) = (0, 0);
        loop {
            let bucket = {
                let mut all = self.buckets.locked();
                match all.first_entry() {
                    Some(first) if *first.key() <= due => first.remove(),
                    _ => break,
                }
            };
            buckets += 1;
            expired += bucket.len();
            for c in bucket.parts.into_iter().flatten() {
                c.unbind();
            }
        }
        (expired, buckets)
    }

    /// Where the entries held now end: a listing that stops there lists no more than
    /// the table held when it began, however fast connections close meanwhile.
    pub(super) fn end(&self) -> Cursor {
        let all = self.buckets.locked();
        all.last_key_value()
            .map_or(Cursor::default(), |(&second, b)| Cursor {
                second,
                copied: b.len(),
            })
    }

    /// Copies up to [`LIST_CHUNK`] records from `from` on, up to `until`, into `out`,
    /// with their seconds, under one lock hold; the cursor to go on from, None when
    /// done. Entries swept between two chunks are not listed, as for a table read while
    /// it changes; none is listed twice (a bucket only grows at its end, and only goes
    /// as a whole).
    pub(super) fn chunk(
        &self,
        from: Cursor,
        until: Cursor,
        out: &mut Vec<(u64, Record)>,
    ) -> Option<Cursor> {
        if from.second > until.second {
            return None;
        }
        let all = self.buckets.locked();
        for (&second, bucket) in all.range(from.second..=until.second) {
            let skip = if second == from.second {
                from.copied
            } else {
                0
            };
            let limit = if second == until.second {
                until.copied
            } else {
                usize::MAX
            };
            let room = LIST_CHUNK.saturating_sub(out.len());
            let want = limit.saturating_sub(skip).min(room);
            let before = out.len();
            out.extend(bucket.from(skip).take(want).map(|c| (second, c.record)));
            let copied = out.len() - before;
            if copied == room {
                return Some(Cursor {
                    second,
                    copied: skip + copied,
                });
            }
        }
        None
    }

    /// Every record, a chunk at a time, as `-L -c` lists them at `now_ms`.
    pub(super) fn entries(&self, now_ms: u64, out: &mut Vec<ConnEntry>) {
        let until = self.end();
        let mut cursor = Some(Cursor::default());
        let mut chunk = Vec::with_capacity(LIST_CHUNK);
        while let Some(from) = cursor {
            chunk.clear();
            cursor = self.chunk(from, until, &mut chunk);
            out.extend(chunk.iter().map(|(s, r)| r.entry(*s, now_ms)));
        }
    }

    /// The seconds of the buckets held (tests).
    #[cfg(test)]
    pub(super) fn seconds(&self) -> Vec<u64> {
        self.buckets.locked().keys().copied().collect()
    }

    /// Moves every entry into the bucket of `second` (tests: time passes).
    #[cfg(test)]
    pub(super) fn refile_all(&self, second: u64) {
        let mut all = self.buckets.locked();
        let mut every = Bucket::default();
        let closed = std::mem::take(&mut *all)
            .into_values()
            .flat_map(|b| b.parts);
        for c in closed.flatten() {
            every.push(c);
        }
        all.insert(second, every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_entry_is_small() {
        assert!(std::mem::size_of::<Record>() <= 64);
        assert!(std::mem::size_of::<Closed>() <= 88);
    }

    #[test]
    fn addresses_come_back_as_they_went_in_v4_v6_and_v4_mapped() {
        let addrs: [SocketAddr; 3] = [
            "10.0.0.9:40000".parse().unwrap(),
            "[::ffff:10.0.0.1]:80".parse().unwrap(),
            "[2001:db8::2]:8080".parse().unwrap(),
        ];
        let r = Record::new(Protocol::Tcp, addrs, State::TimeWait, 250);
        let e = r.entry(121, 1_000);
        let listed = [
            SocketAddr::new(e.client_addr, e.client_port),
            SocketAddr::new(e.virtual_addr, e.virtual_port),
            SocketAddr::new(e.dest_addr, e.dest_port),
        ];
        assert_eq!(listed, addrs);
        assert_eq!(e.state, "TIME_WAIT");
        // Expires at 120.750 s: 119 whole seconds left at 1 s.
        assert_eq!(e.expires, 119);
    }

    #[test]
    fn a_bucket_grows_by_parts_and_is_read_from_any_entry() {
        let server = Arc::new(RealServerState::default());
        let mut bucket = Bucket::default();
        let n = PART * 2 + 88;
        for port in 0..n {
            let addrs = [SocketAddr::from(([10, 0, 0, 9], port as u16)); 3];
            bucket.push(Closed {
                record: Record::new(Protocol::Tcp, addrs, State::TimeWait, 0),
                server: Arc::clone(&server),
                template: None,
            });
        }
        assert_eq!(bucket.len(), n);
        assert_eq!(bucket.parts.len(), 3);
        assert!(bucket.parts.iter().all(|p| p.capacity() <= PART));
        for skip in [0, 1, PART - 1, PART, PART + 7, n - 1, n, n + 5] {
            let ports: Vec<u16> = bucket.from(skip).map(|c| c.record.ports[0]).collect();
            let expected: Vec<u16> = (skip.min(n)..n).map(|p| p as u16).collect();
            assert_eq!(ports, expected, "from {skip}");
        }
    }
}
