//! The check tasks: one per checked real server, each on its own schedule (the check's
//! interval, with a little random jitter so that the checks of many servers do not fire
//! together), each bounded by its timeout, so a hanging server delays nothing but its
//! own next check. A task counts failures and successes and flips the server down
//! after `failures` failed checks in a row and up again after `rise` good ones, logs
//! each transition once with its reason, and rings the reloader, which applies the
//! table that follows (`effective`). The reloader tells the checker which servers to
//! watch whenever it applies a configuration. At most a fixed number of checks are in
//! progress at once (each holds a socket or a child process: their part of the
//! descriptor reserve); a check waits for its turn before its clock starts.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};
use tokio::task::AbortHandle;

use super::check::{self, BuildError, Endpoint, Failure, HealthCheck, Unbuildable};
use super::{DEFAULT_INTERVAL, DEFAULT_TIMEOUT, Findings, Target, server_settings, watched};
use crate::config::{Check, CheckKind, Config};
use crate::lock::Locked;
use crate::table::{Protocol, ServiceKey};

/// What one server's check is built from: the server as probes see it, its check's
/// settings (its own, then its service's, then the global ones) and the maintenance
/// directory. A server whose `ServerCheck` a reload leaves equal keeps its task and
/// its built check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCheck {
    pub endpoint: Endpoint,
    pub check: Check,
    pub maintenance_dir: Option<PathBuf>,
}

impl ServerCheck {
    /// The check these settings ask for, behind the maintenance files.
    ///
    /// # Errors
    /// As [`check::build`].
    pub fn build(&self) -> Result<Box<dyn HealthCheck>, BuildError> {
        check::build(&self.check, self.maintenance_dir.as_deref())
    }
}

/// The checks of every server the configuration has checked.
pub fn server_checks(config: &Config) -> HashMap<Target, ServerCheck> {
    let mut checks = HashMap::new();
    for spec in &config.services {
        // A group's servers are checked once, for its first member (`config::group`).
        if !watched(&config.global, spec) || !crate::config::group::runs_checks(spec) {
            continue;
        }
        let (protocol, vip, vport) = match spec.service.key {
            ServiceKey::Inet {
                protocol,
                addr,
                port,
            } => (protocol, addr.to_string(), port),
            ServiceKey::Fwmark { mark, .. } => (Protocol::Tcp, mark.to_string(), 0),
        };
        for server in &spec.servers {
            let mut check = server_settings(&config.global, spec, &server.key());
            // Watched without a check (a maintenance directory): always up but for it.
            check.kind = check.kind.or(Some(CheckKind::On));
            let port = check
                .port
                .or((server.port != 0).then_some(server.port))
                .unwrap_or(vport);
            let target = Target {
                service: spec.service.key,
                server: server.key(),
            };
            checks.insert(
                target,
                ServerCheck {
                    endpoint: Endpoint {
                        target,
                        protocol,
                        vip: vip.clone(),
                        vport,
                        dest: SocketAddr::new(check.address.unwrap_or(server.addr), port),
                        weight: server.weight,
                    },
                    check,
                    maintenance_dir: config.global.maintenance_dir.clone(),
                },
            );
        }
    }
    checks
}

/// Runs the check tasks.
pub struct Checker {
    findings: Arc<Findings>,
    changed: Arc<Notify>,
    tasks: Mutex<HashMap<Target, (ServerCheck, AbortHandle)>>,
    /// Turns for checks in progress.
    turns: Arc<Semaphore>,
}

impl Checker {
    /// `changed` is notified whenever a server goes up or down (or its weight changes);
    /// at most `at_once` checks run at the same time.
    pub fn new(findings: Arc<Findings>, changed: Arc<Notify>, at_once: usize) -> Checker {
        Checker {
            findings,
            changed,
            tasks: Mutex::new(HashMap::new()),
            turns: Arc::new(Semaphore::new(at_once.max(1))),
        }
    }

    /// Checks exactly the servers `config` has checks for: new ones start, changed ones
    /// restart (keeping what is known of them), dropped ones stop and are forgotten.
    /// A check is built (its `receive` compiled) as its task starts. Settings that
    /// cannot be built (which the configuration's validation refuses, so only a
    /// configuration made without it has them) are logged and keep the server down
    /// with the reason. Must be called inside a Tokio runtime.
    pub fn follow(&self, config: &Config) {
        let wanted = server_checks(config);
        let mut tasks = self.tasks.locked();
        tasks.retain(|target, (running, task)| {
            let keep = wanted.get(target) == Some(running);
            if !keep {
                task.abort();
            }
            keep
        });
        for (target, server) in &wanted {
            if tasks.contains_key(target) {
                continue;
            }
            let check = server.build().unwrap_or_else(|e| {
                tracing::warn!(
                    service = %target.service,
                    server = %target.server,
                    "health check not built: {e}"
                );
                check::behind_maintenance(
                    Box::new(Unbuildable::from(e)),
                    server.maintenance_dir.as_deref(),
                )
            });
            let task = tokio::spawn(run(
                server.clone(),
                check,
                Arc::clone(&self.findings),
                Arc::clone(&self.changed),
                Arc::clone(&self.turns),
            ))
            .abort_handle();
            tasks.insert(*target, (server.clone(), task));
        }
        self.findings.retain(&wanted.keys().copied().collect());
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        let tasks = self.tasks.get_mut().unwrap_or_else(|e| e.into_inner());
        for (_, (_, task)) in tasks.drain() {
            task.abort();
        }
    }
}

/// A random fraction (0..1) that differs between servers and between rounds.
fn jitter_fraction(target: &Target, round: u64) -> f64 {
    let hash = std::collections::hash_map::RandomState::new().hash_one((target, round));
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// One server's checks, until the task is aborted.
async fn run(
    server: ServerCheck,
    check: Box<dyn HealthCheck>,
    findings: Arc<Findings>,
    changed: Arc<Notify>,
    turns: Arc<Semaphore>,
) {
    let interval = server.check.interval.unwrap_or(DEFAULT_INTERVAL);
    let timeout = server.check.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let failures_needed = server.check.failures.unwrap_or(1).max(1);
    let rise = server.check.rise.unwrap_or(1).max(1);
    let target = server.endpoint.target;
    // The first check soon, spread over up to a tenth of the interval; the next ones
    // an interval apart, give or take 5%.
    let mut wait = interval.mul_f64(jitter_fraction(&target, 0) / 10.0);
    for round in 1u64.. {
        tokio::time::sleep(wait).await;
        // The semaphore is never closed; without a turn, check anyway.
        let turn = turns.acquire().await.ok();
        let started = Instant::now();
        let result = check::probe(&*check, &server.endpoint, timeout).await;
        let took = started.elapsed();
        drop(turn);
        let now = crate::clock::unix_seconds();
        let transition = findings.update(target, |h| {
            h.last_check = Some(now);
            h.last_duration = took;
            match &result {
                Ok(weight) => {
                    h.successes = h.successes.saturating_add(1);
                    h.failures = 0;
                    h.last_error = None;
                    let weight_changed = h.weight != *weight;
                    h.weight = *weight;
                    if !h.up && h.successes >= rise {
                        h.up = true;
                        Some(format!("is up after {} good checks", h.successes))
                    } else if h.up && weight_changed {
                        Some(format!("has weight {} from its check", weight.unwrap_or(0)))
                    } else {
                        None
                    }
                }
                Err(failure) => {
                    h.failures = h.failures.saturating_add(1);
                    h.successes = 0;
                    h.last_error = Some(failure.to_string());
                    let now_down =
                        matches!(failure, Failure::Maintenance(_)) || h.failures >= failures_needed;
                    if h.up && now_down {
                        h.up = false;
                        Some(format!(
                            "is down: {failure} ({} failed check{})",
                            h.failures,
                            if h.failures == 1 { "" } else { "s" }
                        ))
                    } else {
                        None
                    }
                }
            }
        });
        if let Some(what) = transition {
            tracing::warn!(
                service = %target.service,
                server = %target.server,
                "real server {what}"
            );
            changed.notify_one();
        }
        let spread = 0.95 + jitter_fraction(&target, round) / 10.0;
        wait = interval
            .mul_f64(spread)
            .saturating_sub(took.min(interval / 2));
        if wait < Duration::from_millis(10) {
            wait = Duration::from_millis(10);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::schema::parse;

    #[test]
    fn a_server_check_overrides_its_services_and_the_global_one() {
        let config = parse(
            r#"
[global.check]
type = "connect"
interval = "3s"

[[service]]
tcp = "127.0.0.1:80"
[service.check]
port = 8080
[[service.server]]
address = "127.0.0.2:80"
[[service.server]]
address = "127.0.0.3:80"
[service.server.check]
type = "negotiate"
service = "http"
port = 9090

[[service]]
tcp = "127.0.0.1:81"
[[service.server]]
address = "127.0.0.4"
"#,
            Path::new("t.toml"),
        )
        .unwrap();
        let checks = server_checks(&config);
        let of = |server: &str| {
            checks
                .values()
                .find(|p| p.endpoint.target.server.addr.to_string() == server)
                .unwrap()
        };
        let (a, b, c) = (of("127.0.0.2"), of("127.0.0.3"), of("127.0.0.4"));
        assert_eq!(
            (a.check.kind, a.endpoint.dest.port()),
            (Some(CheckKind::Connect), 8080)
        );
        assert_eq!(
            (b.check.kind, b.endpoint.dest.port()),
            (Some(CheckKind::Negotiate), 9090)
        );
        assert_eq!(
            b.check.interval,
            Some(Duration::from_secs(3)),
            "from [global.check]"
        );
        // No port of its own: the port the service listens on.
        assert_eq!(
            (c.check.kind, c.endpoint.dest.port()),
            (Some(CheckKind::Connect), 81)
        );
    }

    #[test]
    fn a_checks_address_is_where_it_goes_instead_of_the_servers() {
        let config = parse(
            "[[service]]\ntcp = \"127.0.0.1:80\"\n[service.check]\ntype = \"connect\"\naddress = \"127.0.0.9\"\n[[service.server]]\naddress = \"127.0.0.2:80\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let checks = server_checks(&config);
        let check = checks.values().next().unwrap();
        assert_eq!(check.endpoint.dest.to_string(), "127.0.0.9:80");
        assert_eq!(check.endpoint.target.server.addr.to_string(), "127.0.0.2");
    }

    #[tokio::test]
    async fn a_check_that_cannot_be_built_keeps_its_server_down_with_the_reason() {
        let mut config = parse(
            r#"
[[service]]
tcp = "127.0.0.1:80"
[service.check]
type = "negotiate"
service = "http"
interval = "1s"
[[service.server]]
address = "127.0.0.2:80"
"#,
            Path::new("t.toml"),
        )
        .unwrap();
        // What validation would have refused: a configuration made by hand.
        config.services[0].health.check.receive = Some("(unclosed".into());
        let findings = Arc::new(Findings::default());
        let changed = Arc::new(Notify::new());
        let checker = Checker::new(Arc::clone(&findings), Arc::clone(&changed), 1);
        let notified = changed.notified();
        checker.follow(&config);
        // A bound for a broken test only; the first check comes within 0.1 s.
        tokio::time::timeout(Duration::from_secs(60), notified)
            .await
            .expect("the server went down");
        let target = *server_checks(&config).keys().next().unwrap();
        let health = findings.get(&target).unwrap();
        assert!(!health.up);
        assert!(
            health
                .last_error
                .as_deref()
                .is_some_and(|e| e.starts_with("not a regular expression: ")),
            "{health:?}"
        );
    }
}
