//! What the sync daemons did, for `uvs status` and /metrics: datagrams and entries sent
//! and received, what was dropped and why, and the last master heard from. Written by
//! `sync::master` and `sync::backup`, read by the daemon's report.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use serde::{Deserialize, Serialize};

use crate::lock::Locked;

#[derive(Debug, Default)]
pub struct SyncCounters {
    pub sent_messages: AtomicU64,
    pub sent_entries: AtomicU64,
    /// Datagrams the master could not send (the error is logged, rate-limited).
    pub send_errors: AtomicU64,
    pub received_messages: AtomicU64,
    /// Entries applied by the backup (templates installed or refreshed, connections
    /// listed).
    pub received_entries: AtomicU64,
    /// Datagrams and entries dropped, by reason (`wire::Malformed::reason`,
    /// `wire::Skipped::reason`, and the backup's own: "no_service", "no_server",
    /// "full", "queue_full", "receive_buffer_full"). The reasons are a fixed set of names, so the map stays small.
    dropped: Mutex<BTreeMap<&'static str, u64>>,
    last_peer: Mutex<Option<SocketAddr>>,
}

/// The counters at one moment, in `uvs status`'s wire form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    pub sent_messages: u64,
    pub sent_entries: u64,
    pub send_errors: u64,
    pub received_messages: u64,
    pub received_entries: u64,
    pub dropped: BTreeMap<String, u64>,
    /// The address the last accepted datagram came from.
    pub last_peer: Option<SocketAddr>,
    /// Entries held from masters (listed by `-L -c`).
    pub synced_connections: u64,
    /// Each daemon uvs runs ("master", "backup"): whether it runs, and if not why
    /// (it is tried again every few seconds).
    #[serde(default)]
    pub daemons: BTreeMap<String, DaemonState>,
}

/// Whether one of uvs's sync daemons runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DaemonState {
    Up,
    /// Its socket could not be made: the error, tried again every few seconds.
    Down {
        reason: String,
    },
}

impl SyncCounters {
    pub fn drop_one(&self, reason: &'static str) {
        self.drop_many(reason, 1);
    }

    pub fn drop_many(&self, reason: &'static str, n: u64) {
        if n > 0 {
            *self.dropped.locked().entry(reason).or_default() += n;
        }
    }

    pub fn heard(&self, peer: SocketAddr) {
        *self.last_peer.locked() = Some(peer);
    }

    pub fn status(
        &self,
        synced_connections: u64,
        queue_overflow: u64,
        daemons: BTreeMap<String, DaemonState>,
    ) -> SyncStatus {
        let mut dropped: BTreeMap<String, u64> = self
            .dropped
            .locked()
            .iter()
            .map(|(k, v)| ((*k).to_string(), *v))
            .collect();
        if queue_overflow > 0 {
            dropped.insert("queue_full".to_string(), queue_overflow);
        }
        SyncStatus {
            sent_messages: self.sent_messages.load(Relaxed),
            sent_entries: self.sent_entries.load(Relaxed),
            send_errors: self.send_errors.load(Relaxed),
            received_messages: self.received_messages.load(Relaxed),
            received_entries: self.received_entries.load(Relaxed),
            dropped,
            last_peer: *self.last_peer.locked(),
            synced_connections,
            daemons,
        }
    }
}
