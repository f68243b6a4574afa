//! `close_denied`: when a published change gives a service (or, in `[global]`, every
//! service) a new access list and asks for `close_denied`, the established TCP
//! connections and UDP flows of clients the new list denies are ended here, as the
//! drain's deadline ends a server's (`Conn::end`: the task serving it is aborted and
//! its sockets close; a UDP flow ends, and the client's next datagram is refused as a
//! new flow), and counted as refused by the access list, on the rule that now denies
//! them. The client checked is the connection entry's (the PROXY header's, with
//! `accept_proxy`).
//!
//! The table says which lists changed (`Effect::CloseDenied`, collected by
//! `TableHandle::take_denied` once the change is published); this task, spawned by
//! `daemon::Daemon::run` beside the pool controller, sleeps until then, so neither the
//! data plane nor a table without such lists pays anything. Without `close_denied`, a
//! changed list refuses only new connections.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crate::proxy::director::Director;
use crate::table::admission::{AccessList, Admission, Verdict};
use crate::table::{RealServerState, Service, ServiceKey};

/// Ends what changed lists deny, each time a change asks, until the task is aborted.
pub async fn run(director: Arc<Director>) {
    loop {
        director.table.denials().notified().await;
        let changed = director.table.take_denied();
        if changed.is_empty() {
            continue;
        }
        let closed = close(&director, &changed);
        tracing::info!(
            closed,
            "access lists changed under close_denied: {closed} established connection{} or \
             flow{} of clients now denied closed",
            if closed == 1 { "" } else { "s" },
            if closed == 1 { "" } else { "s" },
        );
    }
}

/// Ends every live connection and flow whose client a list of `changed` (a service's,
/// None: the global one) now denies, as the running table has them; how many.
pub fn close(director: &Director, changed: &[Option<ServiceKey>]) -> usize {
    let table = director.table.snapshot();
    let global = changed.contains(&None);
    // A connection's service, by its real server's shared state.
    let mut of_server: HashMap<*const RealServerState, &Arc<Service>> = HashMap::new();
    for svc in table.each_service() {
        if global || changed.contains(&Some(svc.key)) {
            for s in &svc.servers {
                of_server.insert(Arc::as_ptr(&s.state), svc);
            }
        }
    }
    if of_server.is_empty() {
        return 0;
    }
    let mut closed = 0;
    for conn in director.conns.live_connections() {
        let Some(svc) = of_server.get(&Arc::as_ptr(&conn.server)) else {
            continue;
        };
        // IPv4-mapped as IPv4, as `proxy::admit` asks.
        let client = conn.client.ip().to_canonical();
        let by_global = global.then(|| denies(table.admission(), client)).flatten();
        let refused = match by_global {
            Some(d) => Some((d, true)),
            None => changed
                .contains(&Some(svc.key))
                .then(|| denies(&svc.options.admission, client))
                .flatten()
                .map(|d| (d, false)),
        };
        // Counted once, by whoever ends it (the sweeper may have a moment before).
        if let Some(((list, verdict), by_global)) = refused
            && conn.end()
        {
            list.count(verdict);
            svc.state.admission.refused_access.fetch_add(1, Relaxed);
            if by_global {
                (table.admission_state().counts.refused_access).fetch_add(1, Relaxed);
            }
            closed += 1;
        }
    }
    closed
}

/// The list of `admission` and its verdict on `client`, when it denies it.
fn denies(admission: &Admission, client: std::net::IpAddr) -> Option<(&AccessList, Verdict)> {
    let list = admission.access.as_deref()?;
    let verdict = list.check(client);
    (verdict != Verdict::Allowed).then_some((list, verdict))
}
