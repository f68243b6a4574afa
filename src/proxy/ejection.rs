//! Passive ejection, the data plane's half: counts a real server's failed connects
//! (refused or timed out, never the director's own-address loop) and the ICMP errors
//! that end its UDP flows, sets the count back at a good connect or a reply, ejects the
//! server at the N-th failure in a row (`table::ejection::eject`: atomics only, at once)
//! and keeps one timer per server that takes it back when its time is up (one task
//! however often the server is ejected and readmitted early). Each ejection is
//! logged at WARN (rate-limited per server, as `failure_log` does). Called by `tcp`
//! (`reach_server`) and `udp::flow`; with no `ejection` configured on the service each
//! call is one test of the service's options and nothing else.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::monotonic_ms;
use crate::table::ejection::{self, Readmission};
use crate::table::{RealServer, RealServerState, Service, ServiceKey};
use crate::words::plural;

/// How many other servers a failed connect may be retried on: `configured`
/// (`connect_retries`), and with ejection every other server of the service, so that
/// no client is reset while one server is up, however many fail before they are out.
pub fn retries(service: &Service, configured: u32) -> u32 {
    match service.options.ejection {
        None => configured,
        Some(_) => {
            let others = u32::try_from(service.servers.len().saturating_sub(1)).unwrap_or(u32::MAX);
            configured.max(others)
        }
    }
}

/// A connect to `server` of `service` succeeded, or the server answered a flow: its run
/// of failures is over.
pub fn answered(service: &Service, server: &RealServerState) {
    if service.options.ejection.is_some() {
        server.ejection.succeeded();
    }
}

/// A failure of a real server that passive ejection counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A TCP connect refused or timed out.
    Connect,
    /// An ICMP error that ended a UDP flow.
    Icmp,
}

impl Failure {
    /// `n` of them, as the log says it: "3 failed connects", "1 ICMP error".
    fn words(self, n: u32) -> String {
        let n = u64::from(n);
        match self {
            Failure::Connect => format!(
                "{n} consecutive {}",
                plural(n, "failed connect", "failed connects")
            ),
            Failure::Icmp => format!("{n} consecutive {}", plural(n, "ICMP error", "ICMP errors")),
        }
    }
}

/// A connect to `server` (reached at `dest`) of `service` failed (refused, timed out),
/// or an ICMP error ended one of its flows (`what`): one more failure in a row, and at the
/// configured number the server is ejected (when the service's share allows it), with
/// a warning and a timer that readmits it. Must run inside a Tokio runtime (the data
/// plane's), where the timer is spawned.
pub fn failed(service: &Service, server: &RealServer, dest: &dyn std::fmt::Display, what: Failure) {
    let Some(config) = service.options.ejection else {
        return;
    };
    let now = monotonic_ms();
    let state = &server.state;
    if state.ejection.failed(now) < config.failures {
        return;
    }
    let Some(out) = ejection::eject(&config, &service.servers, state, now) else {
        return;
    };
    state.ejection.ejections_logged.warn(|held_back| {
        let more = if held_back > 0 {
            format!("; {held_back} more ejections since the last line")
        } else {
            String::new()
        };
        tracing::warn!(
            "real server {dest} of {}: ejected for {} after {} (ejection {} in a row){more}",
            service.key,
            seconds(out.duration_ms),
            what.words(out.failures),
            out.times,
        );
    });
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        // Not on a runtime (cannot happen in the data plane): the health check, if
        // any, readmits it; without one it would stay out, so it is not ejected.
        ejection::readmit(state, Readmission::GoodCheck, now);
        return;
    };
    if state.ejection.start_timer() {
        let timer = Timer {
            server: Arc::clone(state),
            service_key: service.key,
            dest: dest.to_string(),
            held: true,
        };
        runtime.spawn(timer.run());
    } else {
        // The running timer may sleep past this ejection's end: it reads it again.
        state.ejection.wake.notify_one();
    }
}

/// The server's one ejection timer (`Ejection::start_timer`): sleeps until the
/// ejection in force ends, reading its end again whenever it wakes (a later ejection
/// moves it), readmits the server when its time is up, and ends when the server is
/// no longer ejected (a good health check readmitted it) or left its service. Dropped
/// unfinished (the runtime shut down), it gives the server's timer back.
struct Timer {
    server: Arc<RealServerState>,
    service_key: ServiceKey,
    dest: String,
    /// Whether this task holds the server's timer (`Ejection::start_timer`).
    held: bool,
}

impl Drop for Timer {
    fn drop(&mut self) {
        if self.held {
            self.server.ejection.timer_ended();
        }
    }
}

impl Timer {
    async fn run(mut self) {
        loop {
            self.until_out().await;
            self.held = false;
            let e = &self.server.ejection;
            e.timer_ended();
            // An ejection between the last look and the end above saw a timer running
            // and started none: this one goes on if it can take the timer back.
            if !self.out() || !e.start_timer() {
                return;
            }
            self.held = true;
        }
    }

    /// Whether the server is ejected and still in its service.
    fn out(&self) -> bool {
        self.server.is_available() && self.server.ejection.until_ms().is_some()
    }

    /// Sleeps until the server is no longer out, readmitting it when its time is up.
    async fn until_out(&self) {
        let e = &self.server.ejection;
        while self.out() {
            let Some(until) = e.until_ms() else {
                return;
            };
            let now = monotonic_ms();
            if now < until {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(until - now)) => {}
                    () = e.wake.notified() => {}
                }
                continue;
            }
            let why = Readmission::TimeUp;
            if ejection::readmit(&self.server, why, now) {
                ejection::log_readmission(&self.service_key, &self.dest, &self.server, why);
            }
        }
    }
}

/// "30 s", "1500 ms": a length of time in ms as the log says it.
fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{} ms", ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::ejection::EjectionConfig;
    use crate::table::real_server::Hold;
    use crate::table::{Netmask, Protocol, ServiceFlags};

    /// A TCP service of three servers that ejects at the first failure, for
    /// `base_time_ms` times the ejections in a row, all but one at once.
    fn service(base_time_ms: u32) -> Service {
        let key = ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr: "127.0.0.1".parse().unwrap(),
            port: 80,
        };
        let addrs = ["127.0.0.2", "127.0.0.3", "127.0.0.4"].map(|a| a.parse().unwrap());
        let table = crate::sched::testing::table_of(
            key,
            "rr",
            ServiceFlags(0),
            Netmask::full(key.family()),
            &addrs,
        );
        let mut service = Service::clone(table.service(&key).unwrap());
        service.options.ejection = Some(EjectionConfig {
            failures: 1,
            base_time_ms,
            max_share_permille: 1000,
            max_time_ms: 0,
        });
        service
    }

    /// Lets the spawned timers run until `done` (bounded: a failure, not a wait, when
    /// it never comes).
    async fn until(done: impl Fn() -> bool) {
        for _ in 0..10_000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("never happened");
    }

    /// A server flapping against its health check (ejected, readmitted early by a good
    /// check, ejected again...) keeps one timer, not one per ejection, and the timer
    /// ends once the server is back.
    #[tokio::test]
    async fn ejections_and_early_readmissions_keep_one_timer() {
        let s = service(60_000);
        let server = &s.servers[0];
        let e = &server.state.ejection;
        for round in 0..50 {
            failed(&s, server, &"127.0.0.2:8080", Failure::Connect);
            assert!(server.state.holds(Hold::Ejected), "round {round}");
            tokio::task::yield_now().await;
            assert!(
                ejection::readmit(&server.state, Readmission::GoodCheck, monotonic_ms()),
                "round {round}"
            );
            tokio::task::yield_now().await;
            assert!(e.timers() <= 1, "round {round}: {} timers", e.timers());
        }
        assert_eq!(e.total(), 50);
        until(|| e.timers() == 0).await;
    }

    /// The one timer reads the ejection's end again when it wakes: an ejection that
    /// follows an early readmission ends at its own time, and the server is back.
    #[tokio::test]
    async fn the_one_timer_readmits_at_the_last_ejections_end() {
        let s = service(20);
        let server = &s.servers[0];
        let e = &server.state.ejection;
        failed(&s, server, &"127.0.0.2:8080", Failure::Connect);
        tokio::task::yield_now().await;
        assert!(ejection::readmit(
            &server.state,
            Readmission::GoodCheck,
            monotonic_ms()
        ));
        failed(&s, server, &"127.0.0.2:8080", Failure::Connect);
        assert!(server.state.holds(Hold::Ejected));
        assert!(e.timers() <= 1);
        until(|| !server.state.holds(Hold::Ejected)).await;
        until(|| e.timers() == 0).await;
        assert_eq!(e.total(), 2);
    }

    /// A server that leaves its service while ejected: its timer ends without
    /// bringing it back.
    #[tokio::test]
    async fn a_server_that_leaves_ends_its_timer_and_is_not_back() {
        let s = service(20);
        let server = &s.servers[0];
        failed(&s, server, &"127.0.0.2:8080", Failure::Connect);
        assert!(server.state.holds(Hold::Ejected));
        server
            .state
            .retire(&crate::table::effect::CarryingOut::in_a_test());
        until(|| server.state.ejection.timers() == 0).await;
        assert!(server.state.holds(Hold::Ejected), "not readmitted");
    }

    /// A timer dropped unfinished (its runtime shut down) gives the server's timer
    /// back: a later ejection gets one.
    #[test]
    fn a_timer_dropped_with_its_runtime_gives_its_place_back() {
        let s = service(60_000);
        let server = &s.servers[0];
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            failed(&s, server, &"127.0.0.2:8080", Failure::Connect);
            tokio::task::yield_now().await;
        });
        assert_eq!(server.state.ejection.timers(), 1);
        drop(runtime);
        assert_eq!(server.state.ejection.timers(), 0);
    }

    #[test]
    fn failures_are_named_for_what_they_are() {
        assert_eq!(Failure::Connect.words(1), "1 consecutive failed connect");
        assert_eq!(Failure::Connect.words(3), "3 consecutive failed connects");
        assert_eq!(Failure::Icmp.words(1), "1 consecutive ICMP error");
        assert_eq!(Failure::Icmp.words(2), "2 consecutive ICMP errors");
    }
}
