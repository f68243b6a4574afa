//! Waiting for a slot (HAProxy's `maxqueue` and `timeout queue`): a new TCP connection
//! that finds every usable real server at its `max_connections` waits in its service's
//! queue (`table::queue`), holding no slot, until a slot comes back and it is the head;
//! it is reset only when the queue is full or its wait runs out. While connections
//! wait, a new one joins behind them rather than overtake. Without a queue configured,
//! such a connection is reset, as IPVS resets one when every server is overloaded.
//! Called by `proxy::tcp` around each connection's `reach_server` (and, for the
//! counts of the flows refused, by `proxy::udp::flow`).
//!
//! The client's socket and the server's to be are counted by the descriptor budget from
//! accept on (two per connection), so the connections waiting are bounded by the
//! queues' lengths and by the budget, whichever is less.

use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::scheduling::Scheduling;
use crate::table::queue::Place;
use crate::table::{QueueOptions, Service};

/// Why a connection got no real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreached {
    /// None available or none reachable: the client is reset (counted unavailable).
    NoServer,
    /// Every usable server is at its connection limit: the connection may wait.
    Full,
}

/// What a schedule that gave no server means for the connection: `Full` when a slot
/// would let it in (not counted unavailable: the queue counts what becomes of it),
/// else `NoServer`, counted against the service.
pub fn no_server(scheduling: &Scheduling<'_>) -> Unreached {
    if scheduling.at_limit() {
        Unreached::Full
    } else {
        scheduling.unavailable();
        Unreached::NoServer
    }
}

/// A UDP flow found every usable server at its limit: dropped (datagrams have no
/// queue) and counted.
pub fn flow_refused(service: &Service) {
    service.state.queue.refused.fetch_add(1, Relaxed);
}

/// How often a waiting connection looks at the running table: a change that made room
/// without freeing a slot (a server added, a weight from 0, an undrain, a limit
/// raised) wakes the head of the queue within this.
const LOOK_AGAIN: Duration = Duration::from_millis(200);

/// Runs `attempt` (the scheduling and connect of one connection to its service, as the
/// running table has it at each attempt) and, when every server is at its limit, waits
/// in the queue of `service` (the service when the connection came) and tries again at
/// each turn. `current` gives the service as the running table has it now (None: it was
/// deleted, and the waiting connection is reset); `gone()` resolves when the client goes
/// away, which ends the wait (counted as left). None: the client is to be reset.
///
/// The wait's state is on the heap, only while a connection waits: every connection's
/// task is sized to its largest state, and most connections never wait (`tcp`, memory
/// per connection).
pub async fn reach<R, F, Fut, C, G>(
    service: &Service,
    current: C,
    gone: impl FnOnce() -> G,
    mut attempt: F,
) -> Option<R>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<R, Unreached>>,
    C: Fn() -> Option<std::sync::Arc<Service>>,
    G: Future<Output = ()>,
{
    let queue = &service.state.queue;
    let options = service.options.queue;
    // Read only with a queue: slots given back anywhere write this count.
    let frees_seen = if options.is_some() { queue.frees() } else { 0 };
    if options.is_none() || queue.waiting() == 0 {
        match attempt().await {
            Ok(reached) => return Some(reached),
            Err(Unreached::NoServer) => return None,
            Err(Unreached::Full) => {}
        }
    }
    // No queue, or a full one: refused (counted), before anything is allocated.
    let Some((options, place)) =
        options.and_then(|o| Some((o, queue.enter(o.length.get(), frees_seen)?)))
    else {
        queue.refused.fetch_add(1, Relaxed);
        return None;
    };
    Box::pin(wait(service, options, place, current, gone(), attempt)).await
}

/// [`reach`] once the connection has its `place` in the queue: waits for its turn and
/// tries again, until the queue's timeout.
async fn wait<R, F, Fut, C, G>(
    service: &Service,
    options: QueueOptions,
    mut place: Place<'_>,
    current: C,
    gone: G,
    mut attempt: F,
) -> Option<R>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<R, Unreached>>,
    C: Fn() -> Option<std::sync::Arc<Service>>,
    G: Future<Output = ()>,
{
    let queue = &service.state.queue;
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(u64::from(options.timeout_ms));
    let mut gone = std::pin::pin!(gone);
    loop {
        // Waits for its turn, until the deadline, looking at the running table now and
        // then (room may appear without a slot freed), and at its client.
        let turned = loop {
            let look = (tokio::time::Instant::now() + LOOK_AGAIN).min(deadline);
            tokio::select! {
                () = place.turn() => break true,
                () = &mut gone => {
                    place.left();
                    return None;
                }
                () = tokio::time::sleep_until(look) => {
                    if tokio::time::Instant::now() >= deadline {
                        break false;
                    }
                    match current() {
                        None => return None, // the service was deleted
                        Some(now) if has_room(&now) => queue.slot_freed(),
                        Some(_) => {}
                    }
                }
            }
        };
        if !turned && place.time_out() {
            return None;
        }
        let frees_seen = queue.frees();
        match attempt().await {
            Ok(reached) => {
                place.served(has_room(service));
                return Some(reached);
            }
            // The place goes, and its turn to the next.
            Err(Unreached::NoServer) => return None,
            Err(Unreached::Full) if tokio::time::Instant::now() >= deadline => {
                place.timed_out_after_turn();
                return None;
            }
            Err(Unreached::Full) => place.rejoin(frees_seen),
        }
    }
}

/// Whether some server of weight above zero takes new connections now.
fn has_room(service: &Service) -> bool {
    service
        .servers
        .iter()
        .any(crate::table::RealServer::is_usable)
}
