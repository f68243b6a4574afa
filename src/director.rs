//! The director (LVS's name for the balancing host) as the daemon runs it: the table,
//! and what the data plane keeps about live traffic (connections, persistence
//! templates, listeners). The control server, the data plane and the sweepers share one.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::AbortHandle;

use crate::conn::ConnTable;
use crate::control::protocol::{ListenerStatus, Status};
use crate::persist::Templates;
use crate::proxy::forward::Forwarding;
use crate::table::{ConnEntry, ListenAddr, ServiceKey, TableHandle};
use crate::workers::Workers;

/// How often connections and templates are expired.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// What a listen address is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerState {
    pub service: ServiceKey,
    /// None when listening, else why not.
    pub error: Option<String>,
}

/// Settings of the data plane that are not part of the table.
#[derive(Debug, Clone, Copy)]
pub struct PlaneOptions {
    pub forwarding: Forwarding,
    /// Worker threads serving connections.
    pub threads: usize,
}

impl Default for PlaneOptions {
    fn default() -> PlaneOptions {
        PlaneOptions {
            forwarding: Forwarding::best(),
            threads: Workers::default_count(),
        }
    }
}

#[derive(Debug)]
pub struct Director {
    pub table: Arc<TableHandle>,
    pub conns: ConnTable,
    pub templates: Templates,
    pub options: PlaneOptions,
    pub workers: Workers,
    listeners: Mutex<BTreeMap<ListenAddr, ListenerState>>,
    /// The accept loops (one per worker) of each address being listened on.
    accept_tasks: Mutex<HashMap<ListenAddr, Vec<AbortHandle>>>,
}

impl Director {
    /// A director with its worker threads started.
    pub fn new(table: Arc<TableHandle>, options: PlaneOptions) -> std::io::Result<Arc<Director>> {
        let conns = ConnTable::new();
        let templates = Templates::new(conns.clock);
        Ok(Arc::new(Director {
            table,
            conns,
            templates,
            options,
            workers: Workers::start(options.threads)?,
            listeners: Mutex::new(BTreeMap::new()),
            accept_tasks: Mutex::new(HashMap::new()),
        }))
    }

    /// `-L -c`: connections and persistence templates.
    pub fn connections(&self) -> Vec<ConnEntry> {
        let timeouts = self.table.snapshot().timeouts();
        let mut all = self.templates.entries();
        all.extend(self.conns.entries(&timeouts));
        all
    }

    /// Records what a listen address is doing (the listener manager calls this).
    pub fn set_listener(&self, listen: ListenAddr, state: Option<ListenerState>) {
        let mut board = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        match state {
            Some(s) => {
                board.insert(listen, s);
            }
            None => {
                board.remove(&listen);
            }
        }
    }

    pub fn listener_states(&self) -> Vec<(ListenAddr, ListenerState)> {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    fn accepting_map(&self) -> std::sync::MutexGuard<'_, HashMap<ListenAddr, Vec<AbortHandle>>> {
        self.accept_tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The addresses being listened on.
    pub fn accepting(&self) -> Vec<ListenAddr> {
        self.accepting_map().keys().copied().collect()
    }

    pub fn is_accepting(&self, listen: &ListenAddr) -> bool {
        self.accepting_map().contains_key(listen)
    }

    pub fn start_accepting(
        &self,
        listen: ListenAddr,
        service: ServiceKey,
        tasks: Vec<AbortHandle>,
    ) {
        self.accepting_map().insert(listen, tasks);
        self.set_listener(
            listen,
            Some(ListenerState {
                service,
                error: None,
            }),
        );
    }

    /// Closes one listener; its established connections go on.
    pub fn stop_accepting(&self, listen: &ListenAddr) {
        for task in self.accepting_map().remove(listen).unwrap_or_default() {
            task.abort();
        }
        self.set_listener(*listen, None);
    }

    /// Closes every listener (shutdown: no new connections, the open ones drain).
    pub fn stop_listening(&self) {
        for listen in self.accepting() {
            self.stop_accepting(&listen);
        }
    }

    /// `uvs status`.
    pub fn status(&self) -> Status {
        let snapshot = self.table.snapshot();
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            mode: "userspace".to_string(),
            forwarding: self.options.forwarding.to_string(),
            services: snapshot.entries(),
            listeners: self
                .listener_states()
                .into_iter()
                .map(|(listen, s)| ListenerStatus {
                    listen,
                    service: s.service,
                    state: s.error.unwrap_or_else(|| "listening".to_string()),
                })
                .collect(),
            live_connections: self.conns.live(),
        }
    }

    /// Expires connections and templates, forever.
    pub async fn sweep(self: Arc<Director>) {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let timeouts = self.table.snapshot().timeouts();
            self.conns.sweep(&timeouts);
            self.templates.sweep();
        }
    }
}
