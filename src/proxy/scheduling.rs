//! What the TCP path and the UDP flows do alike between a new connection (or flow) and
//! its real server: the servers in retry order (`sched::schedule`), the check that a
//! server is not one of the director's own listen addresses (connecting there would
//! loop back into the director), and the bookkeeping of a server chosen: the
//! connection counted (IPVS's Conns, through `accounting`) and its entry in the
//! connection table. Called by `tcp::reach_server` and `udp::flow`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::accounting::Accounting;
use crate::conn::{Conn, NewConn, State};
use crate::persist::Control;
use crate::proxy::director::Director;
use crate::sched::{Choice, Packet, Schedule, schedule};
use crate::stats::Stats;
use crate::table::limit::Slot;
use crate::table::{Protocol, RealServer, Service};

/// One new connection (or UDP flow) of `service`, opened by `packet`, being scheduled.
pub struct Scheduling<'a> {
    director: &'a Director,
    service: &'a Service,
    /// The table's totals, counted with the service and the server.
    totals: &'a Arc<Stats>,
    packet: &'a Packet,
    protocol: Protocol,
}

/// A connection opened to a real server: its entry in the connection table (in the
/// state it was opened in) and where its counts go.
pub struct Opened {
    pub conn: Arc<Conn>,
    pub accounting: Accounting,
}

impl<'a> Scheduling<'a> {
    pub fn new(
        director: &'a Director,
        service: &'a Service,
        totals: &'a Arc<Stats>,
        packet: &'a Packet,
        protocol: Protocol,
    ) -> Scheduling<'a> {
        Scheduling {
            director,
            service,
            totals,
            packet,
            protocol,
        }
    }

    /// The real servers to try, first choice first (see `sched::schedule`).
    pub fn servers(&self) -> Schedule<'a, 'a> {
        schedule(&self.director.templates, self.service, self.packet)
    }

    /// The next server of `servers` with a slot taken on it (`table::limit`): a server
    /// that a racing connection filled since the scheduler looked is now held full,
    /// and the schedule goes on to the next. None: the schedule has no server left.
    pub fn next(&self, servers: &mut Schedule<'a, '_>) -> Option<(Choice<'a>, Slot)> {
        loop {
            let choice = servers.next()?;
            if let Some(slot) = Slot::take(&choice.server.state) {
                return Some((choice, slot));
            }
        }
    }

    /// Whether the schedule found no server because of `max_connections`: at least one
    /// server of weight above zero is held out by its limit and by nothing else, so
    /// the connection may wait for a slot (`proxy::queue`).
    pub fn at_limit(&self) -> bool {
        self.service
            .servers
            .iter()
            .any(|s| s.weight > 0 && s.state.is_only_full())
    }

    /// No real server could be had for the connection: counted against the service.
    pub fn unavailable(&self) {
        self.service.state.unavailable.fetch_add(1, Relaxed);
    }

    /// Where the connection goes on `server`: its port, or the one the client reached
    /// when the server has none (port 0).
    pub fn destination(&self, server: &RealServer) -> SocketAddr {
        server.destination(self.packet.local.port())
    }

    /// Whether `dest` is one of the director's own listen addresses for this protocol
    /// (what is sent there would come back as a new connection, without end); counted
    /// against `server` when it is. It was named in the log once, when the table made
    /// it so (`proxy::listeners`).
    pub fn loops_back(&self, server: &RealServer, dest: SocketAddr) -> bool {
        let own = self.director.own_addresses().contains(self.protocol, dest);
        if own {
            server.state.connect_failures.looped.fetch_add(1, Relaxed);
        }
        own
    }

    /// Counts one connection scheduled to `server` at `now_ms` (the connection table's
    /// clock), and returns where the rest of its counts go.
    pub fn count(&self, server: &RealServer, now_ms: u64) -> Accounting {
        let accounting = Accounting::new(
            Arc::clone(&self.service.state),
            Arc::clone(&server.state),
            Arc::clone(self.totals),
            now_ms,
        );
        accounting.connection();
        accounting
    }

    /// Counts the connection to `server` (at `dest`) and opens its entry in the
    /// connection table in `state`, where its hold on the template (if any) and its
    /// `slot` on the server stay until the entry leaves.
    pub fn open(
        &self,
        server: &RealServer,
        slot: Slot,
        template: Option<Control>,
        dest: SocketAddr,
        state: State,
        now_ms: u64,
    ) -> Opened {
        let accounting = self.count(server, now_ms);
        let conn = self.director.conns.open(NewConn {
            protocol: self.protocol,
            client: self.packet.client,
            local: self.packet.local,
            dest,
            fwmark: self.service.key.fwmark(),
            slot,
            template,
            state,
        });
        self.director.sync_conn(&conn, state);
        Opened { conn, accounting }
    }
}
