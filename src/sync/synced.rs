//! The connections a backup holds from its master (the kernel's connections with
//! IP_VS_CONN_F_SYNC): listed by `uvsadm -L -c` with the state and timeout the master
//! sent, counting down, and forgotten when they expire or the master sends them
//! again in a new state. A proxied TCP connection cannot move to another director, so
//! they are a view of the master's traffic, not connections this director serves
//! (the README says what carries over: the templates). Bounded by [`SYNCED_MAX`];
//! expired by the director's sweeper, looking only at the entries due.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Mutex;

use super::wire::Entry;
use crate::lock::Locked;
use crate::table::{ConnEntry, Protocol};

/// Synced connections held at once, at most (about 420 bytes of RSS each, measured:
/// 110 MB for a full store).
pub const SYNCED_MAX: usize = 1 << 18;
/// Entries a sweep removes per hold of the lock.
const CHUNK: usize = 1024;

/// What the kernel finds a connection by: protocol, client, virtual address.
type Key = (Protocol, SocketAddr, SocketAddr);

#[derive(Debug)]
struct Synced {
    real: SocketAddr,
    state: &'static str,
    expires_ms: u64,
    /// Filed under this second in `due`.
    filed: u64,
}

#[derive(Debug, Default)]
struct Held {
    map: HashMap<Key, Synced>,
    due: BTreeSet<(u64, Key)>,
}

#[derive(Debug)]
pub struct SyncedConns {
    held: Mutex<Held>,
    max: usize,
}

impl Default for SyncedConns {
    fn default() -> SyncedConns {
        SyncedConns::with_max(SYNCED_MAX)
    }
}

impl SyncedConns {
    /// A store that holds at most `max` connections.
    pub fn with_max(max: usize) -> SyncedConns {
        SyncedConns {
            held: Mutex::new(Held::default()),
            max,
        }
    }

    /// Holds `entry` (a connection, not a template) until `timeout_s` seconds after
    /// `now_ms`. False when the most it may hold are held and it is new.
    pub fn put(&self, entry: &Entry, protocol: Protocol, timeout_s: u32, now_ms: u64) -> bool {
        let key = (protocol, entry.client, entry.vip);
        let expires_ms = now_ms + u64::from(timeout_s) * 1000;
        let filed = expires_ms.div_ceil(1000);
        let mut held = self.held.locked();
        let held = &mut *held;
        if let Some(old) = held.map.get_mut(&key) {
            held.due.remove(&(old.filed, key));
            old.state = entry.state_name();
            old.expires_ms = expires_ms;
            old.filed = filed;
            old.real = entry.real;
            held.due.insert((filed, key));
            return true;
        }
        if held.map.len() >= self.max {
            return false;
        }
        held.map.insert(
            key,
            Synced {
                real: entry.real,
                state: entry.state_name(),
                expires_ms,
                filed,
            },
        );
        held.due.insert((filed, key));
        true
    }

    /// Forgets the entries expired at `now_ms`; how many.
    pub fn sweep(&self, now_ms: u64) -> usize {
        let due = now_ms / 1000;
        let mut gone = 0;
        loop {
            let mut held = self.held.locked();
            let mut taken = 0;
            while taken < CHUNK {
                let Some(&(second, key)) = held.due.first() else {
                    return gone;
                };
                if second > due {
                    return gone;
                }
                held.due.pop_first();
                held.map.remove(&key);
                taken += 1;
                gone += 1;
            }
        }
    }

    /// Every entry as `-L -c` lists it.
    pub fn entries(&self, now_ms: u64) -> Vec<ConnEntry> {
        let held = self.held.locked();
        held.map
            .iter()
            .map(|(&(protocol, client, vip), s)| ConnEntry {
                protocol: protocol.label().to_string(),
                client_addr: client.ip(),
                client_port: client.port(),
                virtual_addr: vip.ip(),
                virtual_port: vip.port(),
                dest_addr: s.real.ip(),
                dest_port: s.real.port(),
                state: s.state.to_string(),
                expires: (s.expires_ms.saturating_sub(now_ms) / 1000) as u32,
                pe_name: None,
                pe_data: None,
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.held.locked().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::wire::Flags;

    fn conn(client: &str, state: u16) -> Entry {
        Entry {
            protocol: Some(Protocol::Tcp),
            client: client.parse().unwrap(),
            vip: "127.0.0.1:80".parse().unwrap(),
            real: "127.0.0.2:8080".parse().unwrap(),
            fwmark: 0,
            flags: Flags(0),
            state,
            timeout: 0,
            seq: None,
            pe: None,
        }
    }

    #[test]
    fn entries_are_listed_updated_in_place_expired_when_due_and_bounded() {
        let s = SyncedConns::with_max(2);
        assert!(s.put(&conn("127.0.0.9:1000", 1), Protocol::Tcp, 900, 0));
        // The same connection in a new state: one entry, its new state and timer.
        assert!(s.put(&conn("127.0.0.9:1000", 5), Protocol::Tcp, 120, 1_000));
        assert!(s.put(&conn("127.0.0.9:1001", 1), Protocol::Tcp, 900, 1_000));
        // Full: a third connection is refused, the two stay.
        assert!(!s.put(&conn("127.0.0.9:1002", 1), Protocol::Tcp, 900, 1_000));
        let mut listed = s.entries(1_000);
        listed.sort_by_key(|e| e.client_port);
        let got: Vec<(u16, &str, u32)> = listed
            .iter()
            .map(|e| (e.client_port, e.state.as_str(), e.expires))
            .collect();
        assert_eq!(got, [(1000, "TIME_WAIT", 120), (1001, "ESTABLISHED", 900)]);
        // The TIME_WAIT is due at 121 s; the other not before 901 s.
        assert_eq!(s.sweep(120_000), 0);
        assert_eq!(s.sweep(121_000), 1);
        assert_eq!(s.len(), 1);
        assert_eq!(s.sweep(901_000), 1);
        assert!(s.is_empty());
    }
}
