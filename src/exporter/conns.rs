//! The metrics endpoint's open connections, one [`Slot`] each, so that its accept loop
//! (`http::serve`) can keep their number under the cap: when a new connection comes and
//! the cap is reached, [`Registry::evict_one`] asks the connection that matters least to
//! close (the oldest that has not sent a whole request head, else the one whose response
//! has been in progress longest: a reader too slow to take it), and
//! [`Registry::wait_below`] waits until it has. Idle and slow clients can thus never lock
//! a new scraper out.

use crate::lock::Locked;
use std::collections::BTreeMap;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::Notify;

#[derive(Debug)]
struct Entry {
    /// Told when this connection must go.
    evict: Arc<Notify>,
    /// When the request head was complete; None while it is being read.
    responding_since: Option<Instant>,
    /// Already told to go (it leaves at its task's next turn).
    evicted: bool,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    /// By id, which is the order of acceptance.
    open: BTreeMap<u64, Entry>,
}

/// The open connections of one endpoint.
#[derive(Debug, Default)]
pub(super) struct Registry {
    inner: Mutex<Inner>,
    /// Notified whenever a slot is released.
    freed: Notify,
}

impl Registry {
    pub(super) fn new() -> Arc<Registry> {
        Arc::default()
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Every change below leaves the map consistent, panic or not.
        self.inner.locked()
    }

    /// Connections open (their tasks not yet ended).
    pub(super) fn len(&self) -> usize {
        self.inner().open.len()
    }

    /// A slot for a connection just accepted; released when dropped.
    pub(super) fn open(self: &Arc<Self>) -> Slot {
        let evict = Arc::new(Notify::new());
        let mut inner = self.inner();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.open.insert(
            id,
            Entry {
                evict: Arc::clone(&evict),
                responding_since: None,
                evicted: false,
            },
        );
        Slot {
            registry: Arc::clone(self),
            id,
            evict,
        }
    }

    /// Tells one connection to close: the oldest still sending its request head, else
    /// the one responding longest. False when every open connection was told already.
    pub(super) fn evict_one(&self) -> bool {
        let mut inner = self.inner();
        let candidates = || inner.open.iter().filter(|(_, e)| !e.evicted);
        let idle = candidates()
            .find(|(_, e)| e.responding_since.is_none())
            .map(|(id, _)| *id);
        let victim = idle.or_else(|| {
            candidates()
                .min_by_key(|(_, e)| e.responding_since)
                .map(|(id, _)| *id)
        });
        let Some(entry) = victim.and_then(|id| inner.open.get_mut(&id)) else {
            return false;
        };
        entry.evicted = true;
        // A stored permit if the task is not waiting yet: it cannot be missed.
        entry.evict.notify_one();
        true
    }

    /// Returns once fewer than `cap` connections are open.
    pub(super) async fn wait_below(&self, cap: usize) {
        loop {
            let mut freed = pin!(self.freed.notified());
            // Registered before looking, so a release in between is not missed.
            freed.as_mut().enable();
            if self.len() < cap {
                return;
            }
            freed.await;
        }
    }
}

/// One open connection's place in the [`Registry`].
#[derive(Debug)]
pub(super) struct Slot {
    registry: Arc<Registry>,
    id: u64,
    evict: Arc<Notify>,
}

impl Slot {
    /// The request head is complete: from now on this is a response in progress.
    pub(super) fn responding(&self) {
        if let Some(e) = self.registry.inner().open.get_mut(&self.id) {
            e.responding_since = Some(Instant::now());
        }
    }

    /// Completes when the accept loop wants this connection gone.
    pub(super) async fn evicted(&self) {
        self.evict.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.inner().open.remove(&self.id);
        self.registry.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_connections_go_first_then_the_longest_response() {
        let registry = Registry::new();
        let a = registry.open();
        let b = registry.open();
        let c = registry.open();
        let d = registry.open();
        a.responding();
        c.responding();
        d.responding();
        // b is the only one without a whole request: it goes first.
        assert!(registry.evict_one());
        assert!(registry.inner().open[&1].evicted);
        // Then a, whose response started before c's and d's.
        assert!(registry.evict_one());
        assert!(registry.inner().open[&0].evicted);
        drop(b);
        drop(a);
        assert_eq!(registry.len(), 2);
        assert!(registry.evict_one());
        assert!(registry.evict_one());
        assert!(!registry.evict_one(), "every connection was told");
        drop((c, d));
        assert_eq!(registry.len(), 0);
    }

    #[tokio::test]
    async fn an_evicted_slot_hears_it_and_frees_room() {
        let registry = Registry::new();
        let slot = registry.open();
        assert!(registry.evict_one());
        // The permit was stored before anyone waited.
        slot.evicted().await;
        let waiting = {
            let registry = Arc::clone(&registry);
            tokio::spawn(async move { registry.wait_below(1).await })
        };
        drop(slot);
        waiting.await.expect("wait_below returns");
        assert_eq!(registry.len(), 0);
    }
}
