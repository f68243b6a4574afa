//! The userspace sync backup (ip_vs_sync.c `sync_thread_backup`, `ip_vs_process_message`,
//! `ip_vs_proc_conn`): reads the masters' datagrams into a buffer of the daemon's
//! maxlen (a longer datagram arrives cut and is dropped as the kernel drops it), and
//! applies what `wire::parse` takes: a template is installed in the persistence store
//! for its service and real server, so that a client that fails over to this director
//! goes where its template says; a connection is held for `-L -c` (`sync::synced`).
//! Nothing else of the table changes. Every datagram and entry not applied is counted
//! by reason. Run by `sync::follow` while the table has a backup.

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

use super::socket::{self, SocketError};
use crate::persist::Installed;
use crate::proxy::director::Director;
use crate::sync::wire::{self, Entry};
use std::sync::Arc;

use crate::table::{Family, Protocol, Service, ServiceKey, Table, Timeouts};

/// A template's lifetime when the master sent none (version 0): 3 minutes, as
/// `ip_vs_proc_conn` gives it.
const TEMPLATE_TIMEOUT_S: u32 = 180;

/// Runs the backup `daemon` (settings resolved) until the task is aborted.
///
/// # Errors
/// The socket could not be made (no such interface, the port taken without
/// SO_REUSEADDR, ...).
pub async fn run(daemon: crate::table::SyncDaemon, director: &Director) -> Result<(), SocketError> {
    let socket = socket::receiver(&daemon)?;
    let shared = &director.sync;
    shared.set_state(daemon.role, Some(crate::sync::counters::DaemonState::Up));
    let mut buffer = vec![0u8; usize::from(daemon.maxlen.max(wire::HEADER_LEN as u16))];
    // Datagrams the kernel dropped for a full receive buffer (a master faster than this
    // backup), looked at every second and counted as `receive_buffer_full`: the kernel's
    // backup loses them the same way, but says nothing.
    let mut drops_seen = 0u32;
    let mut look = tokio::time::interval(DROPS_INTERVAL);
    let mut addresses_looked_up = std::time::Instant::now();
    loop {
        let received = tokio::select! {
            got = socket.recv_from(&mut buffer) => got,
            _ = look.tick() => {
                count_socket_drops(&socket, &mut drops_seen, shared);
                continue;
            }
        };
        let (len, peer) = match received {
            Ok(got) => got,
            Err(e) => {
                tracing::debug!(error = %e, "sync backup: receive failed");
                continue;
            }
        };
        if shared.is_own(peer) {
            continue;
        }
        // From the port of this director's master, bound to no address, and an address
        // not known as the host's: one the host got since (a VLAN's link-local address
        // comes after the VLAN), looked up again at most once a second.
        if shared.own_unbound_port() == Some(peer.port())
            && addresses_looked_up.elapsed() >= std::time::Duration::from_secs(1)
        {
            addresses_looked_up = std::time::Instant::now();
            shared.set_own_addresses(socket::host_addresses());
            if shared.is_own(peer) {
                continue;
            }
        }
        shared.counters.received_messages.fetch_add(1, Relaxed);
        match wire::parse(&buffer[..len], daemon.syncid) {
            Err(why) => shared.counters.drop_one(why.reason()),
            Ok(message) => {
                shared.counters.heard(peer);
                for skipped in &message.skipped {
                    shared.counters.drop_one(skipped.reason());
                }
                for entry in &message.entries {
                    match apply(entry, director) {
                        Ok(()) => {
                            shared.counters.received_entries.fetch_add(1, Relaxed);
                        }
                        Err(reason) => shared.counters.drop_one(reason),
                    }
                }
            }
        }
    }
}

/// How often the backup reads its socket's drop count.
const DROPS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Adds to the `receive_buffer_full` drops what the kernel dropped at `socket` since
/// `seen`.
fn count_socket_drops(
    socket: &tokio::net::UdpSocket,
    seen: &mut u32,
    shared: &crate::sync::Shared,
) {
    use std::os::fd::AsFd;
    if let Ok(now) = crate::sys::socket_drops(socket.as_fd()) {
        shared
            .counters
            .drop_many("receive_buffer_full", u64::from(now.wrapping_sub(*seen)));
        *seen = now;
    }
}

/// The service an entry belongs to, found as the kernel's backup finds it
/// (ip_vs_ctl.c `ip_vs_service_find` through `ip_vs_find_dest`): by its mark when it
/// has one, else (or when no service has that mark) by protocol, address and port,
/// then a port-zero service of the address (persistence on every port).
fn service_of<'t>(entry: &Entry, table: &'t Table) -> Option<&'t Arc<Service>> {
    if entry.fwmark != 0 {
        let family = match entry.vip.ip() {
            IpAddr::V4(_) if entry.client.is_ipv4() => Family::Inet,
            _ => Family::Inet6,
        };
        let key = ServiceKey::Fwmark {
            mark: entry.fwmark,
            family,
        };
        if let Some(s) = table.service(&key) {
            return Some(s);
        }
    }
    let protocol = entry.protocol?;
    let key = |port| ServiceKey::Inet {
        protocol,
        addr: entry.vip.ip(),
        port,
    };
    table
        .service(&key(entry.vip.port()))
        .or_else(|| table.service(&key(0)))
}

/// Applies one entry; the reason it was not, as a metric label.
fn apply(entry: &Entry, director: &Director) -> Result<(), &'static str> {
    let table = director.table.snapshot();
    let service = service_of(entry, &table).ok_or("no_service")?;
    if entry.flags.is_template() {
        if !service.flags.persistent() {
            return Err("not_persistent");
        }
        // No longer than this director's own persistence: a master (or anyone on its
        // link) cannot pin clients for longer than the backup would itself.
        let timeout = match entry.timeout {
            0 => TEMPLATE_TIMEOUT_S,
            t => t,
        }
        .min(service.timeout.max(1));
        let installed = director.templates.install(
            service,
            entry.client.ip(),
            entry.vip.ip(),
            entry.real,
            timeout,
            entry.state == 1,
        );
        return match installed {
            Installed::New | Installed::Refreshed => Ok(()),
            Installed::Full => Err("full"),
            Installed::NoServer => Err("no_server"),
        };
    }
    let protocol = entry.protocol.ok_or("unsupported_protocol")?;
    let timeout = match entry.timeout {
        0 => state_timeout(protocol, entry.state_name(), &table.timeouts()),
        t => t,
    };
    let now = director.conns.clock.now_ms();
    if director.sync.synced.put(entry, protocol, timeout, now) {
        Ok(())
    } else {
        Err("full")
    }
}

/// A connection's lifetime when the master sent none (version 0): the table's timeout
/// for ESTABLISHED, FIN_WAIT and UDP (`--set tcp tcpfin udp`), else the kernel's
/// default for the state (ip_vs_proto_tcp.c `tcp_timeouts`).
fn state_timeout(protocol: Protocol, state: &str, t: &Timeouts) -> u32 {
    match (protocol, state) {
        (Protocol::Udp, _) => t.udp,
        (_, "ESTABLISHED") => t.tcp,
        (_, "FIN_WAIT") => t.tcp_fin,
        (_, "CLOSE") => 10,
        (_, "LAST_ACK") => 30,
        (_, "SYN_RECV" | "CLOSE_WAIT") => 60,
        _ => 120,
    }
}
