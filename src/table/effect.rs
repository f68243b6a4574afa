//! What a change to the table does to the live state it shares with the data plane, and
//! when that happens: only once the change is accepted whole and published.
//!
//! A table's services and real servers hold their live state (counters, connection
//! counts, the marks `available` and `overloaded`, the mirrored weight and thresholds)
//! behind `Arc`s that every snapshot of them shares, so that an edit keeps them. Writing
//! to that state while a batch is still being applied would change the running table
//! before the batch is known to be accepted: a refused batch would leave a server marked
//! removed, or counters zeroed. So [`Table::apply`](super::Table::apply) never writes to
//! it; it describes each such write as an [`Effect`] and returns them, and whoever
//! publishes the table carries them out after the whole batch is accepted:
//! [`TableHandle`](super::TableHandle) right after storing the new snapshot, the owner of
//! a table nobody else reads right away, and nobody for a table that is thrown away (a
//! trial). Dropping [`Effects`] undoes nothing because nothing was done. For the moment
//! between the store and the carrying out, a reader may see the new snapshot with the
//! marks as they were; never the marks of a batch that was refused.
//!
//! The writers of the shared marks (`RealServerState::configure`, `retire`) take a
//! [`CarryingOut`], which only [`Effects::carry_out`] can make: `Table::apply` cannot
//! call them, the compiler refuses. The counters' `-Z` (`Stats::zero`) lives in
//! `stats`, below the table, and takes no proof; in the table it is called here only.
//!
//! What a command did beyond what it names (a service added over a listen rule, rules
//! deleted with their service) is said in the log the same way, as a [`Note`]: once the
//! change is published, never for a refused batch or a trial (`uvs check`, a reload's
//! rehearsal).

use std::sync::Arc;

use super::key::ServiceKey;
use super::listener::ListenRule;
use super::real_server::{RealServer, RealServerState};
use super::service::Service;
use crate::stats::Stats;

/// One write to state shared with the running table, in IPVS's terms.
#[derive(Debug)]
pub(super) enum Effect {
    /// `-d`: the real server left its service; persistence templates and UDP flows to
    /// it are void (the kernel clears IP_VS_DEST_F_AVAILABLE in __ip_vs_unlink_dest).
    RetireServer {
        service: ServiceKey,
        server: RealServer,
        /// Whether a drain the server was under ends here unsaid: true unless the pool
        /// controller removed it (it says its own removals).
        drain_ended: bool,
    },
    /// `-D`, `-C`: every real server of the service left with it.
    RetireServers(Arc<Service>),
    /// `-e`: the settings the data plane reads between snapshots follow the edit
    /// (weight, thresholds; raising or removing the upper threshold clears the overload,
    /// as __ip_vs_update_dest does).
    Configure {
        state: Arc<RealServerState>,
        weight: u32,
        u_threshold: u32,
        l_threshold: u32,
    },
    /// A server's slow-start window follows its settings or its service's (`-a`, `-e`,
    /// a service's `slow_start`), and with `begin` a ramp starts: the server was added
    /// to a running service, or its weight went from 0 to above 0
    /// (`table::slow_start`).
    SlowStart {
        state: Arc<RealServerState>,
        window_ms: u32,
        begin: bool,
    },
    /// A drain (`Some(keep_persistent)`) or undrain (None) of a real server
    /// (`table::pool`): held Draining or not, templates usable or not.
    Drain {
        state: Arc<RealServerState>,
        keep_persistent: Option<bool>,
    },
    /// A server added or edited: its `max_connections` in force, and the queue of its
    /// service that its freed slots wake (`table::limit`).
    Limit {
        state: Arc<RealServerState>,
        max_connections: u32,
        queue: Arc<super::queue::Queue>,
    },
    /// `-Z SERVICE`, and each service under `-Z`: the service's counters and its real
    /// servers' restart from zero in listings.
    ZeroService(Arc<Service>),
    /// `-Z`: the counters over all services too.
    ZeroTotals(Arc<Stats>),
    /// A service's access list (None: the global one) changed under `close_denied`:
    /// the established connections and flows it now denies are to be closed
    /// (`pool::denied`, woken by `TableHandle`).
    CloseDenied(Option<ServiceKey>),
    /// Something the log must say about the change.
    Say(Note),
}

/// What a command did to listen rules without naming them (`listener`).
#[derive(Debug)]
pub(super) enum Note {
    /// `-A` of `service` at the address of `rules` (or at 0.0.0.0/:: on their port):
    /// the service wins the address, the rules are kept but not used.
    Shadowed {
        service: ServiceKey,
        rules: Vec<ListenRule>,
    },
    /// `-D` of `service` deleted the rules that led to it.
    RulesDeleted {
        service: ServiceKey,
        rules: Vec<ListenRule>,
    },
    /// `-D` of `service` gave the rules it shadowed their addresses back.
    Unshadowed {
        service: ServiceKey,
        rules: Vec<ListenRule>,
    },
}

impl Note {
    fn say(&self) {
        let list = |rules: &[ListenRule]| {
            rules
                .iter()
                .map(|r| format!("--add-listener {r}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Note::Shadowed { service, rules } => tracing::warn!(
                "virtual service {service} takes its address from the listen rule{} {}: the \
                 service gets the connections there, and the rule is kept unused until the \
                 service is deleted (uvs status shows it; uvsadm --delete-listener drops it)",
                plural(rules),
                list(rules)
            ),
            Note::RulesDeleted { service, rules } => tracing::info!(
                "virtual service {service} deleted with the listen rule{} that led to it: {}",
                plural(rules),
                list(rules)
            ),
            Note::Unshadowed { service, rules } => tracing::info!(
                "virtual service {service} deleted: the listen rule{} it shadowed listen{} again: {}",
                plural(rules),
                if rules.len() == 1 { "s" } else { "" },
                list(rules)
            ),
        }
    }
}

fn plural(rules: &[ListenRule]) -> &'static str {
    if rules.len() == 1 { "" } else { "s" }
}

/// The effects of one command or a batch, in the order the commands asked for them.
#[derive(Debug, Default)]
#[must_use = "a table's effects on shared state happen only when carried out, once the \
              table is the one readers see (TableHandle does it when it publishes)"]
pub struct Effects(Vec<Effect>);

/// A real server or a service that left the table (retired) while its log lines still
/// held counts back (`proxy::failure_log`: failed connects, resets), with the names
/// the log gives them; [`TableHandle`](super::TableHandle) keeps these until the
/// failure log's sweeper takes them ([`TableHandle::take_retired`](super::TableHandle::take_retired)),
/// so that the counts are said, not dropped with the server.
#[derive(Debug, Clone)]
pub enum Retired {
    /// `-d`: the server, of this service.
    Server {
        service: ServiceKey,
        server: RealServer,
    },
    /// `-D`, `-C`: the service and its servers.
    Service(Arc<Service>),
}

impl Retired {
    /// Whether its log holds anything back (only then is it kept).
    fn holds(&self) -> bool {
        let server_holds = |state: &RealServerState| state.connect_failures.logged.holds();
        match self {
            Retired::Server { server, .. } => server_holds(&server.state),
            Retired::Service(svc) => {
                svc.state.client_resets.holds()
                    || svc.state.server_resets.holds()
                    || svc.servers.iter().any(|s| server_holds(&s.state))
            }
        }
    }
}

/// Proof that effects are being carried out, which only [`Effects::carry_out`] makes;
/// the writers of shared marks ask for it.
#[derive(Debug)]
pub struct CarryingOut(());

impl CarryingOut {
    /// For tests that set up a server's marks by hand.
    #[cfg(test)]
    pub(crate) fn in_a_test() -> CarryingOut {
        CarryingOut(())
    }
}

impl Effects {
    pub(super) fn push(&mut self, effect: Effect) {
        self.0.push(effect);
    }

    /// The effects of `later`, after these.
    pub(super) fn append(&mut self, later: Effects) {
        self.0.extend(later.0);
    }

    /// No slow start begins when these are carried out (kernel mode): windows are
    /// still mirrored.
    pub(super) fn begin_no_slow_start(&mut self) {
        for effect in &mut self.0 {
            if let Effect::SlowStart { begin, .. } = effect {
                *begin = false;
            }
        }
    }

    /// The kinds of the notes these effects would say, in order, for tests.
    #[cfg(test)]
    pub(crate) fn notes(&self) -> Vec<&'static str> {
        self.0
            .iter()
            .filter_map(|e| match e {
                Effect::Say(Note::Shadowed { .. }) => Some("Shadowed"),
                Effect::Say(Note::RulesDeleted { .. }) => Some("RulesDeleted"),
                Effect::Say(Note::Unshadowed { .. }) => Some("Unshadowed"),
                _ => None,
            })
            .collect()
    }

    /// The drains these effects end unsaid (a delete not made by the pool controller:
    /// `-d`, `-D`, `-C`, a reload's delete): the service, the server, what was open.
    pub(crate) fn drains_ended(&self) -> Vec<(ServiceKey, &RealServer)> {
        let mut ended = Vec::new();
        for effect in &self.0 {
            match effect {
                Effect::RetireServer {
                    service,
                    server,
                    drain_ended: true,
                } if server.drain.is_some() => ended.push((*service, server)),
                Effect::RetireServers(svc) => ended.extend(
                    svc.servers
                        .iter()
                        .filter(|s| s.drain.is_some())
                        .map(|s| (svc.key, s)),
                ),
                _ => {}
            }
        }
        ended
    }

    /// Whether these effects start a drain (the pool controller is woken for it).
    pub(super) fn start_a_drain(&self) -> bool {
        self.0.iter().any(|e| {
            matches!(
                e,
                Effect::Drain {
                    keep_persistent: Some(_),
                    ..
                }
            )
        })
    }

    /// The access lists these effects changed under `close_denied` (a service's, None:
    /// the global one).
    pub(crate) fn close_denied(&self) -> Vec<Option<ServiceKey>> {
        self.0
            .iter()
            .filter_map(|e| match e {
                Effect::CloseDenied(service) => Some(*service),
                _ => None,
            })
            .collect()
    }

    /// Writes to the shared state, in order. Call once the table that made these
    /// effects is the one readers see (or when no one else reads it).
    pub fn carry_out(self) {
        self.carry_out_keeping(|_| {});
    }

    /// As [`Effects::carry_out`], and hands `keep` each server or service retired
    /// whose log still holds counts back.
    pub(super) fn carry_out_keeping(self, mut keep: impl FnMut(Retired)) {
        let proof = CarryingOut(());
        for (service, server) in self.drains_ended() {
            let open = server.state.connections_left();
            tracing::info!(
                %service, server = %server.key(), open,
                "drain of {} of {service} ended: deleted ({} open)",
                server.key(),
                super::pool::open_words(&service, u64::from(open))
            );
        }
        for effect in self.0 {
            match effect {
                Effect::RetireServer {
                    service, server, ..
                } => {
                    server.state.retire(&proof);
                    let retired = Retired::Server { service, server };
                    if retired.holds() {
                        keep(retired);
                    }
                }
                Effect::RetireServers(svc) => {
                    for server in &svc.servers {
                        server.state.retire(&proof);
                    }
                    let retired = Retired::Service(svc);
                    if retired.holds() {
                        keep(retired);
                    }
                }
                Effect::Configure {
                    state,
                    weight,
                    u_threshold,
                    l_threshold,
                } => state.configure(weight, u_threshold, l_threshold, &proof),
                Effect::SlowStart {
                    state,
                    window_ms,
                    begin,
                } => state.configure_slow_start(window_ms, begin, &proof),
                Effect::Drain {
                    state,
                    keep_persistent,
                } => state.set_draining(keep_persistent, &proof),
                Effect::Limit {
                    state,
                    max_connections,
                    queue,
                } => state.set_limit(max_connections, &queue, &proof),
                Effect::ZeroService(svc) => {
                    svc.state.stats.zero();
                    for server in &svc.servers {
                        server.state.stats.zero();
                    }
                }
                Effect::ZeroTotals(totals) => totals.zero(),
                // Carried out by `pool::denied`, which can see the connections.
                Effect::CloseDenied(_) => {}
                Effect::Say(note) => note.say(),
            }
        }
    }
}
