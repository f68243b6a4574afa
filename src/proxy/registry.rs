//! The listener registry: what serves each listen address (TCP accept loops, UDP socket
//! groups), the UDP groups still draining after their address left the table, and
//! what each wanted address is doing (listening, or why not). The listener manager
//! (`listeners::manage`) writes it; the reloader asks whether an address is served
//! (to count descriptors), the daemon closes everything at shutdown, and the status
//! report reads [`Listeners::report`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::task::AbortHandle;

use super::udp::SocketGroup;
use crate::descriptors::Held;
use crate::lock::Locked;
use crate::table::{ListenAddr, ServiceKey};

/// What a listen address is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerState {
    /// The service it leads to.
    pub service: ServiceKey,
    /// None when listening, else why the last bind failed (it is retried).
    pub error: Option<String>,
    /// For a low port this process may not bind, what to do (`low_port::hint`).
    pub hint: Option<String>,
}

/// One listen address of the status report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerReport {
    pub listen: ListenAddr,
    pub state: ListenerState,
}

/// What serves a listen address.
#[derive(Debug)]
pub enum Serving {
    /// TCP: an accept loop per worker, each on its own copy of the listening socket,
    /// whose descriptors are held from the budget.
    Tcp(Vec<AbortHandle>, Held),
    /// UDP: a socket and receive loop per worker, with their flows.
    Udp(Arc<SocketGroup>),
}

/// The data plane's listeners. Locks are held for a map operation only.
#[derive(Debug, Default)]
pub struct Listeners {
    /// What each address the table wants is doing, in address order.
    states: Mutex<BTreeMap<ListenAddr, ListenerState>>,
    /// What serves each address being listened on.
    serving: Mutex<HashMap<ListenAddr, Serving>>,
    /// UDP addresses the table dropped whose flows are still running.
    draining: Mutex<HashMap<ListenAddr, Arc<SocketGroup>>>,
}

impl Listeners {
    /// Records what a listen address is doing; None forgets it (it left the table).
    pub fn set_state(&self, listen: ListenAddr, state: Option<ListenerState>) {
        let mut states = self.states.locked();
        match state {
            Some(s) => {
                states.insert(listen, s);
            }
            None => {
                states.remove(&listen);
            }
        }
    }

    /// Every wanted address and what it is doing, in address order.
    pub fn report(&self) -> Vec<ListenerReport> {
        self.states
            .locked()
            .iter()
            .map(|(listen, state)| ListenerReport {
                listen: *listen,
                state: state.clone(),
            })
            .collect()
    }

    /// The addresses being listened on.
    pub fn accepting(&self) -> Vec<ListenAddr> {
        self.serving.locked().keys().copied().collect()
    }

    pub fn is_accepting(&self, listen: &ListenAddr) -> bool {
        self.serving.locked().contains_key(listen)
    }

    pub fn start_accepting(&self, listen: ListenAddr, service: ServiceKey, serving: Serving) {
        self.serving.locked().insert(listen, serving);
        self.set_state(
            listen,
            Some(ListenerState {
                service,
                error: None,
                hint: None,
            }),
        );
    }

    /// Whether UDP `listen`'s service takes PROXY v2 headers (`accept_proxy`), as the
    /// table now says (nothing for an address not served, or TCP).
    pub fn set_accept_proxy(&self, listen: &ListenAddr, mode: super::udp::ProxyHeaders) {
        if let Some(Serving::Udp(group)) = self.serving.locked().get(listen) {
            group.set_accepts_proxy(mode);
        }
    }

    /// A UDP address dropped by the table and wanted again while its flows still run:
    /// the same sockets take new flows again.
    pub fn take_back_draining(&self, listen: &ListenAddr) -> Option<Arc<SocketGroup>> {
        let group = self.draining.locked().remove(listen)?;
        group.revive().then_some(group)
    }

    /// Whether a UDP group still draining holds a socket in the way of binding
    /// `listen`: the same port and family, at the same address or where one of the two
    /// is 0.0.0.0/:: (a wildcard socket takes the port from every address).
    pub fn draining_over(&self, listen: &ListenAddr) -> bool {
        self.draining.locked().values().any(|g| {
            let held = &g.listen;
            !g.is_closed()
                && held.protocol == listen.protocol
                && held.port == listen.port
                && held.addr.is_ipv4() == listen.addr.is_ipv4()
                && (held.addr == listen.addr
                    || held.addr.is_unspecified()
                    || listen.addr.is_unspecified())
        })
    }

    /// Stops listening on one address. TCP: the listener closes, established
    /// connections go on. UDP: no new flows; the sockets stay for the open ones.
    pub fn stop_accepting(&self, listen: &ListenAddr) {
        let serving = self.serving.locked().remove(listen);
        match serving {
            Some(Serving::Tcp(tasks, _held)) => tasks.iter().for_each(AbortHandle::abort),
            Some(Serving::Udp(group)) => {
                group.drain();
                let mut draining = self.draining.locked();
                draining.retain(|_, g| !g.is_closed());
                draining.insert(*listen, group);
            }
            None => {}
        }
        self.set_state(*listen, None);
    }

    /// Closes every listener (shutdown: no new connections, the open ones drain; UDP
    /// flows end now, having nothing to finish).
    pub fn stop_all(&self) {
        for listen in self.accepting() {
            self.stop_accepting(&listen);
        }
        let draining: Vec<_> = self.draining.locked().drain().collect();
        for (_, group) in draining {
            group.close();
        }
    }
}
