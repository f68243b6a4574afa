//! The userspace sync master (ip_vs_sync.c `sync_thread_master`): takes what the data
//! plane queued (`sync::queue`), packs it into version 1 datagrams of at most the
//! daemon's maxlen (`wire::Builder`), and multicasts each as it fills; a datagram not
//! yet full goes out [`FLUSH_AFTER`] after its first entry, as the kernel's
//! `get_curr_sync_buff` hands it over. Run by `sync::follow` while the table has a
//! master.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::socket::{self, SocketError};
use crate::sync::Shared;
use crate::sync::wire::{Builder, FLUSH_AFTER, HEADER_LEN};
use crate::table::SyncDaemon;

/// Runs the master `daemon` (settings resolved) until the task is aborted.
///
/// # Errors
/// The socket could not be made (no such interface, no address on it, ...).
pub async fn run(daemon: SyncDaemon, shared: &Shared) -> Result<(), SocketError> {
    let (socket, local) = socket::sender(&daemon)?;
    shared.set_own(Some(crate::sync::Own {
        at: local,
        // Only a master bound to no address sends from one the route picks.
        addresses: if local.ip().is_unspecified() {
            socket::host_addresses()
        } else {
            Vec::new()
        },
    }));
    shared.set_state(daemon.role, Some(crate::sync::counters::DaemonState::Up));
    let to = socket::destination(&daemon);
    let mut builder = Builder::new(daemon.syncid, usize::from(daemon.maxlen));
    let mut batch = Vec::new();
    // When the datagram being filled got its first entry.
    let mut since: Option<Instant> = None;
    shared.queue.set_on(true);
    loop {
        match since {
            Some(t) => {
                tokio::select! {
                    () = shared.queue.ready() => {}
                    () = tokio::time::sleep_until(t + FLUSH_AFTER) => {}
                }
            }
            None => shared.queue.ready().await,
        }
        // Entries gather for a moment: one wake-up takes many (`queue::SEND_DELAY`).
        shared.queue.gathered().await;
        shared.queue.take(&mut batch);
        for entry in batch.drain(..) {
            match builder.push(&entry) {
                Ok(Some(full)) => {
                    send(&socket, to, &full, shared).await;
                    since = Some(Instant::now());
                }
                Ok(None) if since.is_none() => since = Some(Instant::now()),
                Ok(None) => {}
                Err(_) => shared.counters.drop_one("unencodable"),
            }
        }
        if since.is_some_and(|t| t.elapsed() >= FLUSH_AFTER) {
            if let Some(datagram) = builder.finish() {
                send(&socket, to, &datagram, shared).await;
            }
            since = None;
        }
    }
}

async fn send(socket: &UdpSocket, to: SocketAddr, datagram: &[u8], shared: &Shared) {
    let c = &shared.counters;
    match socket.send_to(datagram, to).await {
        Ok(_) => {
            c.sent_messages.fetch_add(1, Relaxed);
            // nr_conns, byte 4 of a version 1 header.
            let entries = if datagram.len() >= HEADER_LEN {
                datagram[4]
            } else {
                0
            };
            c.sent_entries.fetch_add(u64::from(entries), Relaxed);
        }
        Err(e) => {
            let n = c.send_errors.fetch_add(1, Relaxed) + 1;
            shared.warned.warn(|suppressed| {
                tracing::warn!(to = %to, error = %e, failed = n, suppressed, "sync master: a datagram was not sent");
            });
        }
    }
}
