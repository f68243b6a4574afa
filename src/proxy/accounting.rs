//! Where one proxied connection's counts go: its service, its real server and the
//! totals, as IPVS counts them (Conns, InPkts/OutPkts, InBytes/OutBytes). Bytes are
//! added as they move; packets come from the kernel's per-socket segment counters
//! (TCP_INFO), read every two seconds of activity and when the connection ends.
//! Made when a connection or flow is scheduled (`scheduling`, for `tcp` and `udp`), fed
//! by the byte path (`forward`); UDP flows (`udp`) count each datagram as a packet.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU32, AtomicU64};

use tokio::net::TcpStream;

use crate::stats::Stats;
use crate::sys;
use crate::table::{RealServerState, ServiceState};

/// How often a busy connection's packet counts are brought up to date.
const PACKET_INTERVAL_MS: u64 = 2000;

#[derive(Debug)]
pub struct Accounting {
    pub service: Arc<ServiceState>,
    pub server: Arc<RealServerState>,
    pub totals: Arc<Stats>,
    client_segments: AtomicU32,
    server_segments: AtomicU32,
    packets_read_at: AtomicU64,
}

impl Accounting {
    /// Counts for a connection made at `now_ms` (the connection table's clock).
    pub fn new(
        service: Arc<ServiceState>,
        server: Arc<RealServerState>,
        totals: Arc<Stats>,
        now_ms: u64,
    ) -> Accounting {
        Accounting {
            service,
            server,
            totals,
            client_segments: AtomicU32::new(0),
            server_segments: AtomicU32::new(0),
            packets_read_at: AtomicU64::new(now_ms),
        }
    }

    fn each(&self, f: impl Fn(&Stats)) {
        f(&self.service.stats);
        f(&self.server.stats);
        f(&self.totals);
    }

    /// One connection scheduled to this server.
    pub fn connection(&self) {
        self.each(Stats::add_conn);
    }

    /// Payload bytes from the client to the real server.
    pub fn bytes_in(&self, n: usize) {
        self.each(|s| s.add_in(0, n as u64));
    }

    /// Payload bytes from the real server to the client.
    pub fn bytes_out(&self, n: usize) {
        self.each(|s| s.add_out(0, n as u64));
    }

    /// Datagrams from the client to the real server (UDP): IPVS's InPkts and InBytes.
    pub fn datagrams_in(&self, count: usize, bytes: usize) {
        self.each(|s| s.add_in(count as u64, bytes as u64));
    }

    /// Datagrams from the real server to the client (UDP): OutPkts and OutBytes.
    pub fn datagrams_out(&self, count: usize, bytes: usize) {
        self.each(|s| s.add_out(count as u64, bytes as u64));
    }

    /// Adds the segments both sockets received since the last call: the client's are
    /// IPVS's InPkts, the real server's its OutPkts.
    pub fn packets(&self, client: &TcpStream, server: &TcpStream, now_ms: u64) {
        use std::os::fd::AsFd;
        self.packets_read_at.store(now_ms, Relaxed);
        let delta = |socket: &TcpStream, seen: &AtomicU32| {
            sys::tcp_segments(socket.as_fd())
                .map(|(segs_in, _)| u64::from(segs_in.wrapping_sub(seen.swap(segs_in, Relaxed))))
                .unwrap_or(0)
        };
        let (inward, outward) = (
            delta(client, &self.client_segments),
            delta(server, &self.server_segments),
        );
        self.each(|s| {
            s.add_in(inward, 0);
            s.add_out(outward, 0);
        });
    }

    /// Whether the packet counts are two seconds old.
    pub fn packets_due(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.packets_read_at.load(Relaxed)) >= PACKET_INTERVAL_MS
    }
}
