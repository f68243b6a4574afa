//! `max_connections` (HAProxy's `maxconn`): a per-server limit on the connections (TCP)
//! and flows (UDP) open now, alongside IPVS's thresholds (`-x`/`-y`, which count
//! TIME_WAIT entries too and keep their meaning).
//!
//! A new connection takes a [`Slot`] on its server when the server is chosen
//! (`proxy::scheduling`), hands it to its entry in the connection table
//! (`conn::ConnTable::open`), and the entry gives it back the moment it leaves the live
//! connections (TCP into TIME_WAIT or CLOSE, a UDP flow removed); a slot never handed
//! over (the connection could not be opened) is given back when dropped. Under a limit
//! the slot is taken with a compare-and-swap, so the limit holds exactly however many
//! connections race for it; the server is held out ([`Hold::Full`]) while it is at its
//! limit, so every scheduler skips it as it skips an overloaded one, and a slot given
//! back clears the hold and wakes the head of its service's queue (`table::queue`).
//! Without a limit, a slot is the one increment the count of open connections always
//! cost, and giving it back one relaxed load more.

use std::sync::Arc;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use super::effect::CarryingOut;
use super::queue::Queue;
use super::real_server::{Hold, RealServerState};

/// One connection's place on its real server, counted in `RealServerState::open`.
/// Given back when dropped, unless handed to a table entry ([`Slot::into_entry`]).
#[derive(Debug)]
pub struct Slot {
    server: Option<Arc<RealServerState>>,
}

impl Slot {
    /// A slot on `server`; None when it is at its `max_connections` (the server is then
    /// held [`Hold::Full`]). Always Some for a server without a limit.
    pub fn take(server: &Arc<RealServerState>) -> Option<Slot> {
        server.take_slot().then(|| Slot {
            server: Some(Arc::clone(server)),
        })
    }

    /// Hands the slot to a table entry, which gives it back
    /// ([`RealServerState::give_back_slot`]) when it leaves the live connections: the
    /// server, for the entry to keep.
    pub fn into_entry(mut self) -> Arc<RealServerState> {
        // Only Drop and this, which consumes the slot, empty it.
        self.server.take().expect("a slot is handed over once")
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.give_back_slot();
        }
    }
}

impl RealServerState {
    /// The server's `max_connections` in force (0: no limit).
    pub fn max_connections(&self) -> u32 {
        self.max_conns.load(Relaxed)
    }

    /// Whether the server is at its connection limit and held out for nothing else:
    /// waiting for a slot would get the connection in.
    pub fn is_only_full(&self) -> bool {
        self.hold.load(Relaxed) == Hold::Full.bit()
    }

    fn take_slot(&self) -> bool {
        let max = self.max_conns.load(Relaxed);
        if max == 0 {
            self.open_conns.fetch_add(1, Relaxed);
            return true;
        }
        let taken = self
            .open_conns
            .fetch_update(SeqCst, SeqCst, |n| (n < max).then_some(n + 1));
        match taken {
            Ok(n) if n + 1 < max => true,
            Ok(_) => {
                self.hold_if_full(max);
                true
            }
            Err(_) => {
                self.hold_if_full(max);
                false
            }
        }
    }

    /// Holds the server out while it is at `max`. Set, then checked again: a slot
    /// given back between the count and the hold must not leave the hold on.
    fn hold_if_full(&self, max: u32) {
        self.set_hold(Hold::Full, true);
        if self.open_conns.load(SeqCst) < max {
            self.set_hold(Hold::Full, false);
        }
    }

    /// A connection's slot comes back (its entry left the live connections, or it was
    /// never opened). Under a limit, the server takes connections again and the head
    /// of its service's queue is woken.
    pub(crate) fn give_back_slot(&self) {
        let _ = self
            .open_conns
            .fetch_update(SeqCst, Relaxed, |n| n.checked_sub(1));
        let max = self.max_conns.load(Relaxed);
        if max == 0 {
            return;
        }
        if self.open_conns.load(SeqCst) < max {
            self.set_hold(Hold::Full, false);
        }
        if let Some(queue) = self.queue.get() {
            queue.slot_freed();
        }
    }

    /// Mirrors `max_connections` (0: none) and links the server to its service's
    /// `queue`, when a change is published (`table::effect`). A server no longer at its
    /// limit is let go and the queue's head woken (the limit was raised or removed, or
    /// the server is new to a service whose clients wait).
    pub fn set_limit(&self, max: u32, queue: &Arc<Queue>, _: &CarryingOut) {
        let _ = self.queue.set(Arc::clone(queue));
        self.max_conns.store(max, SeqCst);
        let full = max != 0 && self.open_conns.load(SeqCst) >= max;
        self.set_hold(Hold::Full, full);
        if !full {
            queue.slot_freed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(max: u32) -> (Arc<RealServerState>, Arc<Queue>) {
        let server = Arc::new(RealServerState::default());
        let queue = Arc::new(Queue::default());
        server.set_limit(max, &queue, &CarryingOut::in_a_test());
        (server, queue)
    }

    #[test]
    fn without_a_limit_every_slot_is_taken_and_counted() {
        let server = Arc::new(RealServerState::default());
        let slots: Vec<Slot> = (0..5).map(|_| Slot::take(&server).unwrap()).collect();
        assert_eq!(server.open(), 5);
        assert!(!server.is_held_out());
        drop(slots);
        assert_eq!(server.open(), 0);
    }

    #[test]
    fn the_limit_holds_the_server_out_until_a_slot_comes_back() {
        let (server, _queue) = limited(2);
        let a = Slot::take(&server).expect("first slot");
        assert!(!server.holds(Hold::Full));
        let b = Slot::take(&server).expect("second slot");
        assert!(server.holds(Hold::Full) && server.is_only_full());
        assert!(Slot::take(&server).is_none(), "a third is refused");
        assert_eq!(server.open(), 2);
        // Handed to an entry: the entry gives it back, not the slot.
        let entry = b.into_entry();
        assert_eq!(server.open(), 2);
        entry.give_back_slot();
        assert_eq!(server.open(), 1);
        assert!(!server.holds(Hold::Full));
        drop(a);
        assert_eq!(server.open(), 0);
    }

    #[test]
    fn lowering_the_limit_below_the_open_count_holds_and_raising_it_lets_go() {
        let (server, queue) = limited(0);
        let slots: Vec<Slot> = (0..3).map(|_| Slot::take(&server).unwrap()).collect();
        server.set_limit(2, &queue, &CarryingOut::in_a_test());
        assert!(server.holds(Hold::Full));
        assert!(Slot::take(&server).is_none());
        server.set_limit(4, &queue, &CarryingOut::in_a_test());
        assert!(!server.holds(Hold::Full));
        drop(slots);
        assert_eq!(server.open(), 0);
    }

    #[test]
    fn racing_threads_never_exceed_the_limit() {
        const MAX: u32 = 3;
        let (server, _queue) = limited(MAX);
        let most = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (server, most) = (Arc::clone(&server), Arc::clone(&most));
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        if let Some(slot) = Slot::take(&server) {
                            most.fetch_max(server.open(), SeqCst);
                            drop(slot);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(most.load(SeqCst) <= MAX, "{} open", most.load(SeqCst));
        assert!(most.load(SeqCst) >= 1);
        assert_eq!(server.open(), 0);
        assert!(
            !server.holds(Hold::Full),
            "the hold is let go with the last slot"
        );
    }
}
