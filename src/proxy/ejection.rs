//! Passive ejection, the data plane's half: counts a real server's failed connects
//! (refused or timed out, never the director's own-address loop) and the ICMP errors
//! that end its UDP flows, sets the count back at a good connect or a reply, ejects the
//! server at the N-th failure in a row (`table::ejection::eject`: atomics only, at once)
//! and starts the timer that takes it back when its time is up. Each ejection is
//! logged at WARN (rate-limited per server, as `failure_log` does). Called by `tcp`
//! (`reach_server`) and `udp::flow`; with no `ejection` configured on the service each
//! call is one test of the service's options and nothing else.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::monotonic_ms;
use crate::table::ejection::{self, Readmission};
use crate::table::{RealServer, RealServerState, Service, ServiceKey, ServiceState};
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

/// A connect to `server` (reached at `dest`) of `service` failed (refused, timed out),
/// or an ICMP error ended one of its flows: one more failure in a row, and at the
/// configured number the server is ejected (when the service's share allows it), with
/// a warning and a timer that readmits it. Must run inside a Tokio runtime (the data
/// plane's), where the timer is spawned.
pub fn failed(service: &Service, server: &RealServer, dest: &dyn std::fmt::Display) {
    let Some(config) = service.options.ejection else {
        return;
    };
    let now = monotonic_ms();
    let state = &server.state;
    if state.ejection.failed(now) < config.failures {
        return;
    }
    let Some(out) = ejection::eject(&config, &service.servers, &service.state, state, now) else {
        return;
    };
    state.ejection.ejections_logged.warn(|held_back| {
        let more = if held_back > 0 {
            format!("; {held_back} more ejections since the last line")
        } else {
            String::new()
        };
        tracing::warn!(
            "real server {dest} of {}: ejected for {} after {} consecutive failed {} \
             (ejection {} in a row){more}",
            service.key,
            seconds(out.duration_ms),
            out.failures,
            plural(u64::from(out.failures), "connect", "connects"),
            out.times,
        );
    });
    let readmit = Timer {
        service: Arc::clone(&service.state),
        server: Arc::clone(state),
        service_key: service.key,
        dest: dest.to_string(),
        until_ms: out.until_ms,
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(readmit.run());
        }
        // Not on a runtime (cannot happen in the data plane): the health check, if
        // any, readmits it; without one it would stay out, so it is not ejected.
        Err(_) => {
            ejection::readmit(&readmit.service, state, Readmission::GoodCheck, now);
        }
    }
}

/// An ejection's end: sleeps until its time and readmits the server, unless a good
/// health check did already (then it does nothing).
struct Timer {
    service: Arc<ServiceState>,
    server: Arc<RealServerState>,
    service_key: ServiceKey,
    dest: String,
    until_ms: u64,
}

impl Timer {
    async fn run(self) {
        loop {
            let now = monotonic_ms();
            if now >= self.until_ms {
                break;
            }
            tokio::time::sleep(Duration::from_millis(self.until_ms - now)).await;
        }
        let why = Readmission::TimeUp;
        if ejection::readmit(&self.service, &self.server, why, monotonic_ms()) {
            ejection::log_readmission(&self.service_key, &self.dest, &self.server, why);
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
