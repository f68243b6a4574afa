//! The pool controller: carries out the timed drains the table holds (`table::pool`).
//! A draining real server takes no new connection already (its weight in force is 0,
//! it is held Draining: `Table::apply` and its effects see to that); what is left to do
//! happens over time, and is done here:
//!
//! - once its last connection or UDP flow has ended (entries kept for TIME_WAIT or
//!   CLOSE do not hold it; in kernel mode, the kernel's active connections), the
//!   server is removed from its service, within a tick of [`TICK`];
//! - at its deadline, its remaining connections are ended (`Conn::end`: the TCP task
//!   is aborted and both sockets close; a UDP flow ends) and the server removed. In
//!   kernel mode there is nothing of ours to end: the server is deleted, and IPVS keeps
//!   the established connections to a deleted destination until they end.
//!
//! The removal is `Command::DeleteServer` applied straight to the table (not through
//! the control socket: it is not uvsadm's change of what the file owns), and only
//! while the drain is the one seen. Each drain is logged once when it is seen to start
//! and once when it ends. Spawned by `daemon::Daemon::run` beside the sweeper; while
//! nothing drains it sleeps until a published drain wakes it
//! (`TableHandle::drain_started`), so a table without drains costs nothing.

pub mod denied;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::proxy::director::Director;
use crate::table::pool::{Drain, open_words};
use crate::table::{Command, RealServerState, ServerKey, ServiceKey, Source, Table, TableError};

/// How often draining servers are looked at: a drained server is gone at most this
/// long (and a scheduling moment) after its last connection ended.
pub const TICK: Duration = Duration::from_millis(100);

/// One drain, as the log has said it started: a drain asked again keeps its start.
type Seen = (ServiceKey, ServerKey, u64);

/// Why a drain ended with the server's removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Its last connection ended.
    Empty,
    /// The deadline passed; this many connections were closed.
    Deadline { closed: usize },
}

/// Runs the drains until the task is aborted. A started drain (the table pokes
/// `drain_started`, whose permit waits if the controller is busy) makes the next look
/// a walk over the whole table; between, only the drains already known are looked at,
/// so a large table costs nothing per tick.
pub async fn run(director: Arc<Director>) {
    let mut seen = HashSet::new();
    let mut everything = true;
    loop {
        let left = tick(&director, &mut seen, everything);
        let started = director.table.drain_started().notified();
        everything = if left == 0 {
            started.await;
            true
        } else {
            tokio::select! {
                () = started => true,
                () = tokio::time::sleep(TICK) => false,
            }
        };
    }
}

/// One look at the draining servers (every server of the table with `everything`,
/// else those in `seen`): removes those done, logs those new; returns how many still
/// drain.
pub fn tick(director: &Director, seen: &mut HashSet<Seen>, everything: bool) -> usize {
    let now = crate::clock::monotonic_ms();
    let snapshot = director.table.snapshot();
    let mut still = HashSet::new();
    if everything {
        for svc in snapshot.each_service() {
            for s in svc.servers.iter().filter(|s| s.drain.is_some()) {
                look(director, &svc.key, s, seen, &mut still, now);
            }
        }
    } else {
        for (service, server, _) in seen.iter() {
            let found = snapshot
                .service(service)
                .and_then(|svc| svc.servers.iter().find(|s| s.key() == *server));
            if let Some(s) = found.filter(|s| s.drain.is_some()) {
                look(director, service, s, seen, &mut still, now);
            }
        }
    }
    *seen = still;
    seen.len()
}

/// One draining server `s` of `service`: its start logged once (`seen`: the drains
/// logged), and its removal when its last connection ended or its deadline passed;
/// else it goes into `still`.
fn look(
    director: &Director,
    service: &ServiceKey,
    s: &crate::table::RealServer,
    seen: &HashSet<Seen>,
    still: &mut HashSet<Seen>,
    now: u64,
) {
    let Some(drain) = s.drain else { return };
    let id = (*service, s.key(), drain.started_ms);
    let open = s.state.connections_left();
    if !seen.contains(&id) {
        started(&id, &drain, open, now);
    }
    let ended = if open == 0 {
        Ended::Empty
    } else if drain.is_due(now) {
        Ended::Deadline {
            closed: close(director, &s.state),
        }
    } else {
        still.insert(id);
        return;
    };
    match remove(director, &id, now) {
        Ok(()) => say_ended(&id, ended),
        // Undrained or removed meanwhile: the next tick sees what is.
        Err(e) => tracing::debug!("drain of {service} {}: not removed: {e}", s.key()),
    }
}

fn started(id: &Seen, drain: &Drain, open: u32, now: u64) {
    let (service, server, _) = id;
    let deadline = match drain.left_ms(now) {
        Some(ms) => format!(
            "closing what is left in {}",
            humantime::format_duration(whole_seconds(ms))
        ),
        None => "no deadline".to_string(),
    };
    tracing::info!(
        %service, %server, open,
        "draining real server {server} of {service}: {} open, {deadline}{}",
        open_words(service, u64::from(open)),
        if drain.keep_persistent { ", persistent clients kept" } else { "" }
    );
}

/// `ms` rounded up to whole seconds, for the log; saturating (a deadline read from
/// the control socket may be anything).
fn whole_seconds(ms: u64) -> Duration {
    Duration::from_secs(ms.div_ceil(1000))
}

fn say_ended(id: &Seen, ended: Ended) {
    let (service, server, _) = id;
    match ended {
        Ended::Empty => tracing::info!(
            %service, %server,
            "drained real server {server} of {service}: its last {} ended; removed",
            if matches!(service, ServiceKey::Inet { protocol: crate::table::Protocol::Udp, .. }) {
                "flow"
            } else {
                "connection"
            }
        ),
        Ended::Deadline { closed } => tracing::info!(
            %service, %server, closed,
            "drained real server {server} of {service}: deadline reached, {} closed; removed",
            open_words(service, closed as u64)
        ),
    }
}

/// Ends every live connection and flow of `server`; how many were ended.
fn close(director: &Director, server: &Arc<RealServerState>) -> usize {
    director
        .conns
        .live_connections()
        .iter()
        .filter(|c| Arc::ptr_eq(&c.server, server))
        .filter(|c| c.end())
        .count()
}

/// Removes the drained server, if it still drains the drain `id` names and is still
/// done with at `now_ms` (the table and the data plane may have changed since the
/// snapshot: checked under the table's writer lock).
fn remove(director: &Director, id: &Seen, now_ms: u64) -> Result<(), TableError> {
    let (service, server, _) = *id;
    director.table.apply_all_from(
        &[Command::DeleteServer { service, server }],
        Source::Pool,
        |_, e| e,
        |now, _| {
            if still_done(now, id, now_ms) {
                Ok(())
            } else {
                Err(TableError::NoSuchServer)
            }
        },
    )
}

/// Whether `table` still holds the drain `id` names, and it is done at `now_ms`: no
/// connection or flow left (one a kept persistent client opened since the snapshot
/// holds it), or its deadline passed.
fn still_done(table: &Table, id: &Seen, now_ms: u64) -> bool {
    let (service, server, started) = *id;
    table
        .service(&service)
        .and_then(|svc| svc.servers.iter().find(|s| s.key() == server))
        .and_then(|s| s.drain.map(|d| (d, s.state.connections_left())))
        .is_some_and(|(d, open)| d.started_ms == started && (open == 0 || d.is_due(now_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{ServerConfig, ServiceConfig, UnicastOnly};
    use std::sync::atomic::Ordering::Relaxed;

    #[test]
    fn the_log_rounds_any_deadline_up_to_seconds_without_overflow() {
        assert_eq!(whole_seconds(24_100), Duration::from_secs(25));
        assert_eq!(
            whole_seconds(u64::MAX),
            Duration::from_secs(u64::MAX.div_ceil(1000))
        );
    }

    /// A connection opened after the snapshot (a kept persistent client) keeps the
    /// server: the removal's check under the writer lock sees it.
    #[test]
    fn a_connection_opened_since_the_snapshot_keeps_the_server() {
        let mut t = Table::new();
        let service = ServiceKey::Inet {
            protocol: crate::table::Protocol::Tcp,
            addr: "127.0.0.1".parse().unwrap(),
            port: 80,
        };
        let config = ServerConfig::masq("127.0.0.2:80".parse().unwrap(), 1);
        let server = config.key();
        for c in [
            Command::AddService(ServiceConfig::new(service, "rr")),
            Command::AddServer {
                service,
                server: config,
            },
            Command::Drain {
                service,
                server,
                deadline_ms: Some(30_000),
                keep_persistent: true,
            },
        ] {
            t.apply(&c, &UnicastOnly).unwrap().carry_out();
        }
        let s = t.service(&service).unwrap().servers[0].clone();
        let d = s.drain.unwrap();
        let id = (service, server, d.started_ms);
        assert!(still_done(&t, &id, d.started_ms), "nothing open");
        s.state.open_conns.store(1, Relaxed);
        assert!(!still_done(&t, &id, d.started_ms), "one opened since");
        assert!(
            still_done(&t, &id, d.deadline_ms.unwrap()),
            "the deadline passed: closed and removed"
        );
        assert!(!still_done(
            &t,
            &(service, server, d.started_ms + 1),
            u64::MAX
        ));
    }
}
