//! A virtual service's queue (HAProxy's backend queue, `maxqueue` and `timeout
//! queue`): new TCP connections that found every usable real server at its
//! `max_connections` wait here, first come first served, for a slot (`table::limit`)
//! instead of being reset. The queue is the order and the counts; the waiting itself
//! (the timeout, the attempts) is the data plane's (`proxy::queue`). It lives in the
//! service's state ([`ServiceState`](super::service::ServiceState)), so it outlives
//! edits, and each real server of the service holds it to wake its head when a slot
//! comes back.
//!
//! No wake-up is lost: a slot given back counts a free (`frees`) before it looks for a
//! waiter, and a connection that joins or rejoins the queue compares the frees with
//! those it saw before its last attempt; if a slot came back meanwhile, it wakes the
//! head at once rather than wait for the next one.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Instant;

use tokio::sync::oneshot;

use crate::lock::Locked;

/// One service's queue: its waiters in order, and its counts.
#[derive(Debug, Default)]
pub struct Queue {
    waiters: Mutex<Waiters>,
    /// Connections in the queue's care now: waiting, or woken and trying a server.
    waiting: AtomicU32,
    /// Slots given back on the service's servers, ever (see the module's header).
    frees: AtomicU64,
    /// Connections that joined the queue.
    pub queued: AtomicU64,
    /// Of those, connections that got a server.
    pub served: AtomicU64,
    /// Of those, connections reset when their wait ran out.
    pub timed_out: AtomicU64,
    /// New connections reset (TCP) or flows dropped (UDP) because every usable server
    /// was at its limit and the queue had no room (full, or no queue configured).
    pub refused: AtomicU64,
    /// Milliseconds waited by the connections served from the queue, summed.
    pub wait_ms: AtomicU64,
    /// Of those that joined, connections whose client went away while they waited.
    pub left: AtomicU64,
}

#[derive(Debug, Default)]
struct Waiters {
    order: VecDeque<(u64, oneshot::Sender<()>)>,
    next_id: u64,
}

impl Waiters {
    /// Wakes the first waiter still listening.
    fn wake_head(&mut self) {
        while let Some((_, waiter)) = self.order.pop_front() {
            if waiter.send(()).is_ok() {
                return;
            }
        }
    }
}

impl Queue {
    /// Connections in the queue's care now (waiting, or woken and trying a server):
    /// while there are any, a new connection joins the queue rather than overtake them.
    pub fn waiting(&self) -> u32 {
        self.waiting.load(SeqCst)
    }

    /// Slots given back so far: read before an attempt, handed to [`Queue::enter`] or
    /// [`Place::rejoin`].
    pub fn frees(&self) -> u64 {
        self.frees.load(SeqCst)
    }

    /// The counts, for listings and metrics.
    pub fn counts(&self) -> super::entry::QueueCounts {
        super::entry::QueueCounts {
            waiting: self.waiting(),
            queued: self.queued.load(Relaxed),
            served: self.served.load(Relaxed),
            timed_out: self.timed_out.load(Relaxed),
            refused: self.refused.load(Relaxed),
            wait_ms: self.wait_ms.load(Relaxed),
            left: self.left.load(Relaxed),
        }
    }

    /// A slot came back on one of the service's servers (or room appeared otherwise):
    /// the head of the queue is woken to try again. Costs one load when no one waits.
    pub fn slot_freed(&self) {
        self.frees.fetch_add(1, SeqCst);
        if self.waiting.load(SeqCst) == 0 {
            return;
        }
        self.waiters.locked().wake_head();
    }

    /// Joins the back of the queue, unless `length` connections are in its care
    /// already (None: the caller resets the connection and counts it refused).
    /// `frees_seen`: [`Queue::frees`] before the attempt that found no slot.
    pub fn enter(&self, length: u32, frees_seen: u64) -> Option<Place<'_>> {
        let mut waiters = self.waiters.locked();
        if self.waiting.load(SeqCst) >= length {
            return None;
        }
        self.waiting.fetch_add(1, SeqCst);
        self.queued.fetch_add(1, Relaxed);
        let id = waiters.next_id;
        waiters.next_id += 1;
        let (tx, rx) = oneshot::channel();
        waiters.order.push_back((id, tx));
        if self.frees() != frees_seen {
            waiters.wake_head();
        }
        Some(Place {
            queue: self,
            id,
            turn: Some(rx),
            since: Instant::now(),
            done: false,
        })
    }
}

/// A connection's place in its service's queue, from [`Queue::enter`] until it is
/// served ([`Place::served`]) or dropped (reset: timed out, or no server at all); a
/// place dropped after its turn came and unused passes the turn on.
#[derive(Debug)]
pub struct Place<'q> {
    queue: &'q Queue,
    id: u64,
    /// Fires when it is this connection's turn to try.
    turn: Option<oneshot::Receiver<()>>,
    since: Instant,
    done: bool,
}

impl Place<'_> {
    /// Waits for the connection's turn (a slot came back and it is the head).
    pub async fn turn(&mut self) {
        if let Some(rx) = self.turn.as_mut() {
            // A sender dropped without a turn cannot happen while the place is in the
            // queue; either way, it is time to try.
            let _ = rx.await;
            self.turn = None;
        }
    }

    /// Leaves the queue if its turn has not come (true: the wait ran out and the
    /// connection is reset, counted); false when the turn came meanwhile.
    pub fn time_out(&mut self) -> bool {
        let mut waiters = self.queue.waiters.locked();
        let Some(at) = waiters.order.iter().position(|(id, _)| *id == self.id) else {
            return false;
        };
        waiters.order.remove(at);
        self.turn = None;
        self.done = true;
        self.queue.timed_out.fetch_add(1, Relaxed);
        true
    }

    /// Its turn came but another connection had the slot: back at the head of the
    /// queue, woken at once if a slot came back since `frees_seen`.
    pub fn rejoin(&mut self, frees_seen: u64) {
        let mut waiters = self.queue.waiters.locked();
        let (tx, rx) = oneshot::channel();
        waiters.order.push_front((self.id, tx));
        self.turn = Some(rx);
        if self.queue.frees() != frees_seen {
            waiters.wake_head();
        }
    }

    /// The client went away while the connection waited: counted, and the place goes
    /// (a turn that came meanwhile passes to the next).
    pub fn left(self) {
        self.queue.left.fetch_add(1, Relaxed);
    }

    /// The wait ran out after a turn that found no slot: counted, and the place goes.
    pub fn timed_out_after_turn(mut self) {
        self.done = true;
        self.queue.timed_out.fetch_add(1, Relaxed);
    }

    /// The connection got a server: its wait is counted, and if others wait and a
    /// slot is still free (several came back at once), the next is woken.
    pub fn served(mut self, room_left: bool) {
        self.done = true;
        let waited = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.queue.served.fetch_add(1, Relaxed);
        self.queue.wait_ms.fetch_add(waited, Relaxed);
        if room_left && self.queue.waiting() > 1 {
            self.queue.waiters.locked().wake_head();
        }
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut waiters = self.queue.waiters.locked();
        let was_waiting = match waiters.order.iter().position(|(id, _)| *id == self.id) {
            Some(at) => waiters.order.remove(at).is_some(),
            None => false,
        };
        // A turn taken and not used (the connection went away while trying, or found no
        // server at all) is the next one's.
        if !was_waiting && !self.done {
            waiters.wake_head();
        }
        self.queue.waiting.fetch_sub(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fired(place: &mut Place<'_>) -> bool {
        place.turn.as_mut().is_some_and(|rx| rx.try_recv().is_ok())
    }

    #[test]
    fn turns_come_in_the_order_of_arrival() {
        let q = Queue::default();
        let seen = q.frees();
        let mut places: Vec<Place<'_>> = (0..3).map(|_| q.enter(5, seen).unwrap()).collect();
        assert_eq!(q.waiting(), 3);
        for i in 0..3 {
            q.slot_freed();
            for (j, place) in places.iter_mut().enumerate() {
                assert_eq!(fired(place), i == j, "free {i}, place {j}");
            }
        }
        assert_eq!(q.queued.load(Relaxed), 3);
    }

    #[test]
    fn a_full_queue_refuses_and_a_rejoining_place_keeps_the_head() {
        let q = Queue::default();
        let seen = q.frees();
        let mut first = q.enter(2, seen).unwrap();
        let mut second = q.enter(2, seen).unwrap();
        assert!(q.enter(2, seen).is_none(), "length 2 reached");
        q.slot_freed();
        assert!(fired(&mut first));
        // The slot went to someone else: back in front, before the second.
        let seen = q.frees();
        first.rejoin(seen);
        q.slot_freed();
        assert!(fired(&mut first) && !fired(&mut second));
        first.served(false);
        assert_eq!(q.waiting(), 1);
        assert_eq!(q.served.load(Relaxed), 1);
        assert!(second.time_out());
        drop(second);
        assert_eq!((q.waiting(), q.timed_out.load(Relaxed)), (0, 1));
    }

    #[test]
    fn a_slot_freed_before_joining_wakes_the_joiner() {
        let q = Queue::default();
        let seen = q.frees();
        // Freed after the attempt that found none, before the connection joined.
        q.slot_freed();
        let mut late = q.enter(4, seen).unwrap();
        assert!(
            fired(&mut late),
            "not left waiting for a free that already happened"
        );
    }

    #[test]
    fn a_turn_dropped_unused_passes_to_the_next() {
        let q = Queue::default();
        let seen = q.frees();
        let mut first = q.enter(4, seen).unwrap();
        let mut second = q.enter(4, seen).unwrap();
        q.slot_freed();
        assert!(fired(&mut first));
        drop(first);
        assert!(fired(&mut second));
        // A waiter that leaves before its turn passes nothing on.
        let mut third = q.enter(4, q.frees()).unwrap();
        let fourth = q.enter(4, q.frees()).unwrap();
        drop(fourth);
        assert!(!fired(&mut third));
    }
}
