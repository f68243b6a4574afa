//! The check tasks: one per checked real server, each on its own schedule (the check's
//! interval, with a little random jitter so that the checks of many servers do not fire
//! together), each bounded by its timeout, so a hanging server delays nothing but its
//! own next check. A task counts failures and successes and flips the server down
//! after `failures` failed checks in a row and up again after `rise` good ones, logs
//! each transition once with its reason, and rings the reloader, which applies the
//! table that follows (`effective`). The reloader tells the checker which servers to
//! watch whenever it applies a configuration. At most a fixed number of checks are in
//! progress at once (each holds a socket or a child process: their part of the
//! descriptor reserve); a check waits for its turn before its clock starts. A `warmup`
//! spreads the first check over that long, a `retry_delay` brings the next check of a
//! failing server that is still up sooner. On each change of a server the task runs
//! its `notify_up`/`notify_down` and judges its service's quorum again
//! (`quorum::settle`), running `quorum_up`/`quorum_down`; `Checker::stop` runs what
//! `omega` asks for when the daemon stops.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};
use tokio::task::AbortHandle;

use super::check::{self, BuildError, Endpoint, Failure, HealthCheck, Unbuildable};
use super::command::{self, NOTIFY_BOUND, STOP_BOUND};
use super::{
    DEFAULT_INTERVAL, DEFAULT_TIMEOUT, Findings, Target, quorum, server_settings, watched,
};
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
    /// It starts down until its first good check (`alpha`).
    pub alpha: bool,
    /// Its own `quiescent`, if it has one (for `uvs status`).
    pub quiescent: Option<bool>,
    /// Run once when it goes up, and when it goes down.
    pub notify_up: Option<crate::config::NotifyCommand>,
    pub notify_down: Option<crate::config::NotifyCommand>,
    /// With `ha_suspend`: the addresses whose absence suspends its checks.
    pub ha_suspend: Vec<std::net::IpAddr>,
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
            let own = spec.health.servers.get(&server.key());
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
                    alpha: quorum::alpha(&config.global, spec),
                    quiescent: own.and_then(|o| o.quiescent),
                    notify_up: own.and_then(|o| o.notify_up.clone()),
                    notify_down: own.and_then(|o| o.notify_down.clone()),
                    ha_suspend: super::suspend::vips_of(config, spec),
                },
            );
        }
    }
    checks
}

/// Runs the check tasks.
pub struct Checker {
    shared: Arc<Shared>,
    tasks: Mutex<HashMap<Target, (ServerCheck, AbortHandle)>>,
}

/// What the checker and its tasks share.
struct Shared {
    findings: Arc<Findings>,
    changed: Arc<Notify>,
    /// Turns for checks in progress.
    turns: Arc<Semaphore>,
    /// The configuration last followed: the services whose quorum a change moves.
    config: Mutex<Arc<Config>>,
}

impl Shared {
    /// Judges the quorums again and runs the commands of those that changed
    /// (`quorum_up`, `quorum_down`).
    fn settle(&self) {
        let config = Arc::clone(&self.config.locked());
        let (changes, _) = quorum::settle(&config, &self.findings);
        for c in &changes {
            quorum_changed(c);
        }
    }
}

/// Logs a quorum's change and runs its command.
fn quorum_changed(c: &quorum::Change) {
    let what = match (c.starting, c.up) {
        (false, true) => "regained",
        (false, false) => "lost",
        (true, true) => "held at start",
        (true, false) => "not held at start",
    };
    match c.rule.quorum {
        Some(q) => tracing::warn!(
            service = %c.service,
            "quorum {what}: live weight {} (quorum {q}, hysteresis {})",
            c.live,
            c.rule.hysteresis
        ),
        None => {
            tracing::warn!(service = %c.service, "quorum {what}: {}", if c.up { "a real server is up" } else { "no real server is up" })
        }
    }
    if let Some(line) = &c.command {
        let why = format!(
            "quorum_{} of {}",
            if c.up { "up" } else { "down" },
            c.service
        );
        tokio::spawn(command::notify(why, line.clone(), NOTIFY_BOUND));
    }
}

/// Runs `server`'s notify command for going `up` or down, if it has one.
fn notify_server(
    server: &ServerCheck,
    up: bool,
    bound: Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    let line = if up {
        &server.notify_up
    } else {
        &server.notify_down
    }
    .clone()?;
    let target = server.endpoint.target;
    let why = format!(
        "notify_{} of {} in {}",
        if up { "up" } else { "down" },
        target.server,
        target.service
    );
    Some(tokio::spawn(async move {
        let _ = command::notify(why, line, bound).await;
    }))
}

impl Checker {
    /// `changed` is notified whenever a server goes up or down (or its weight changes);
    /// at most `at_once` checks run at the same time.
    pub fn new(findings: Arc<Findings>, changed: Arc<Notify>, at_once: usize) -> Checker {
        Checker {
            shared: Arc::new(Shared {
                findings,
                changed,
                turns: Arc::new(Semaphore::new(at_once.max(1))),
                config: Mutex::new(Arc::new(Config::default())),
            }),
            tasks: Mutex::new(HashMap::new()),
        }
    }

    /// Checks exactly the servers `config` has checks for: new ones start (down until
    /// a good check with `alpha`), changed ones restart (keeping what is known of them),
    /// dropped ones stop and are forgotten. As keepalived's check/ipwrapper.c
    /// `clear_diff_services` on a reload: a dropped server that was up runs its
    /// `notify_down`, a dropped service that was in quorum its `quorum_down`, and the
    /// quorums are judged again (`quorum::settle`), their commands run. A check is built
    /// (its `receive` compiled) as its task starts. Settings that cannot be built
    /// (which the configuration's validation refuses, so only a configuration made
    /// without it has them) are logged and keep the server down with the reason. Must
    /// be called inside a Tokio runtime.
    pub fn follow(&self, config: &Config) {
        let wanted = server_checks(config);
        let findings = &self.shared.findings;
        let old = std::mem::replace(&mut *self.shared.config.locked(), Arc::new(config.clone()));
        let mut tasks = self.tasks.locked();
        tasks.retain(|target, (running, task)| {
            let keep = wanted.get(target) == Some(running);
            if !keep {
                task.abort();
                if !wanted.contains_key(target) && findings.get(target).is_some_and(|h| h.up) {
                    notify_server(running, false, NOTIFY_BOUND);
                }
            }
            keep
        });
        for (target, server) in &wanted {
            findings.start(*target, server.alpha, server.quiescent);
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
            let task =
                tokio::spawn(run(server.clone(), check, Arc::clone(&self.shared))).abort_handle();
            tasks.insert(*target, (server.clone(), task));
        }
        drop(tasks);
        findings.retain(&wanted.keys().copied().collect());
        let (changes, gone) = quorum::settle(config, findings);
        for (service, _) in gone.into_iter().filter(|(_, was_up)| *was_up) {
            let command = old
                .services
                .iter()
                .find(|s| s.service.key == service)
                .and_then(|s| s.health.quorum_down.clone());
            if let Some(line) = command {
                let why = format!("quorum_down of {service} (no longer checked)");
                tokio::spawn(command::notify(why, line, NOTIFY_BOUND));
            }
        }
        for c in &changes {
            quorum_changed(c);
        }
        if !changes.is_empty() {
            self.shared.changed.notify_one();
        }
    }

    /// The daemon stops: every check ends, and in the services with `omega` each server
    /// still up runs its `notify_down` and the service its `quorum_down`, as keepalived's
    /// check/ipwrapper.c `clear_service_rs` and `update_vs_notifies` do when stopping;
    /// these commands get [`STOP_BOUND`] between them.
    pub async fn stop(&self) {
        let running: Vec<ServerCheck> = {
            let mut tasks = self.tasks.locked();
            tasks
                .drain()
                .map(|(_, (server, task))| {
                    task.abort();
                    server
                })
                .collect()
        };
        let config = Arc::clone(&self.shared.config.locked());
        let omega = |key: &ServiceKey| {
            config
                .services
                .iter()
                .find(|s| s.service.key == *key)
                .is_some_and(|s| {
                    s.health
                        .omega
                        .or(config.global.health.omega)
                        .unwrap_or(false)
                })
        };
        let mut commands = Vec::new();
        for server in &running {
            let target = server.endpoint.target;
            if omega(&target.service)
                && self.shared.findings.get(&target).is_some_and(|h| h.up)
                && let Some(task) = notify_server(server, false, STOP_BOUND)
            {
                commands.push(task);
            }
        }
        // A group has one quorum, kept for its first member.
        for spec in config
            .services
            .iter()
            .filter(|s| crate::config::group::runs_checks(s))
        {
            if omega(&spec.service.key)
                && let Some(line) = spec.health.quorum_down.clone()
            {
                let why = format!("quorum_down of {} (stopping)", spec.service.key);
                commands.push(tokio::spawn(async move {
                    let _ = command::notify(why, line, STOP_BOUND).await;
                }));
            }
        }
        for c in commands {
            let _ = c.await;
        }
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
async fn run(server: ServerCheck, check: Box<dyn HealthCheck>, shared: Arc<Shared>) {
    let (findings, changed, turns) = (&shared.findings, &shared.changed, &shared.turns);
    let interval = server.check.interval.unwrap_or(DEFAULT_INTERVAL);
    let timeout = server.check.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let failures_needed = server.check.failures.unwrap_or(1).max(1);
    let rise = server.check.rise.unwrap_or(1).max(1);
    let target = server.endpoint.target;
    // The first check soon, spread over up to a tenth of the interval, or with a
    // `warmup` over up to that long (keepalived's check_api.c
    // `register_checkers_thread`: warmup * random() / RAND_MAX); the next ones an
    // interval apart, give or take 5%.
    let mut wait = match server.check.warmup {
        Some(warmup) => warmup.mul_f64(jitter_fraction(&target, 0)),
        None => interval.mul_f64(jitter_fraction(&target, 0) / 10.0),
    };
    for round in 1u64.. {
        tokio::time::sleep(wait).await;
        if super::suspend::holds(target, &server.ha_suspend, findings) {
            wait = interval;
            continue;
        }
        // The semaphore is never closed; without a turn, check anyway.
        let turn = turns.acquire().await.ok();
        let started = Instant::now();
        let result = check::probe(&*check, &server.endpoint, timeout).await;
        let took = started.elapsed();
        drop(turn);
        let now = crate::clock::unix_seconds();
        // (what changed, whether it is up now, whether this was its first check under
        // alpha and it failed).
        let (transition, up, flipped, alpha_down) = findings.update(target, |h| {
            let was_up = h.up;
            let alpha_down = h.pending && result.is_err();
            h.pending = false;
            h.last_check = Some(now);
            h.last_duration = took;
            match &result {
                Ok(weight) => {
                    h.successes = h.successes.saturating_add(1);
                    h.failures = 0;
                    h.last_error = None;
                    let weight_changed = h.weight != *weight;
                    h.weight = *weight;
                    let what = if !h.up && h.successes >= rise {
                        h.up = true;
                        Some(format!("is up after {} good checks", h.successes))
                    } else if h.up && weight_changed {
                        Some(format!("has weight {} from its check", weight.unwrap_or(0)))
                    } else {
                        None
                    };
                    (what, h.up, h.up != was_up, false)
                }
                Err(failure) => {
                    h.failures = h.failures.saturating_add(1);
                    h.successes = 0;
                    h.last_error = Some(failure.to_string());
                    let now_down =
                        matches!(failure, Failure::Maintenance(_)) || h.failures >= failures_needed;
                    let what = if h.up && now_down {
                        h.up = false;
                        Some(format!(
                            "is down: {failure} ({} failed check{})",
                            h.failures,
                            if h.failures == 1 { "" } else { "s" }
                        ))
                    } else {
                        None
                    };
                    (what, h.up, h.up != was_up, alpha_down)
                }
            }
        });
        if let Some(what) = &transition {
            tracing::warn!(
                service = %target.service,
                server = %target.server,
                "real server {what}"
            );
        }
        // notify_up/notify_down once per change of state (a weight change is none);
        // with alpha a first check that fails confirms the server down and runs
        // notify_down too (keepalived's check/ipwrapper.c `update_svr_checker_state`).
        if flipped || alpha_down {
            notify_server(&server, up, NOTIFY_BOUND);
        }
        if transition.is_some() {
            shared.settle();
            changed.notify_one();
        }
        let spread = 0.95 + jitter_fraction(&target, round) / 10.0;
        wait = match server.check.retry_delay {
            // Failed but not yet down: keepalived's `delay_before_retry`
            // (check_tcp.c `tcp_epilog`: only while the checker is up).
            Some(retry) if result.is_err() && up => retry,
            _ => interval
                .mul_f64(spread)
                .saturating_sub(took.min(interval / 2)),
        };
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

    /// Waits, bounded for a broken test only, until `done` holds.
    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..3000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never: {what}");
    }

    fn lines(path: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[tokio::test]
    async fn alpha_servers_wait_for_a_good_check_and_notify_once_per_change() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("notify");
        let listener = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let append = |word: &str| format!("/bin/sh -c 'echo {word} >> {}'", log.display());
        let config = parse(
            &format!(
                r#"
[[service]]
tcp = "127.0.0.1:80"
alpha = true
quorum_down = "{qd}"
quorum_up = "{qu}"
[service.check]
type = "connect"
interval = "1s"
[[service.server]]
address = "{addr}"
notify_up = "{up}"
notify_down = "{down}"
"#,
                qd = append("quorum-down"),
                qu = append("quorum-up"),
                up = append("up"),
                down = append("down"),
            ),
            Path::new("t.toml"),
        )
        .unwrap();
        let findings = Arc::new(Findings::default());
        let checker = Checker::new(Arc::clone(&findings), Arc::new(Notify::new()), 1);
        checker.follow(&config);
        let target = *server_checks(&config).keys().next().unwrap();
        // Before its first check: down, waiting; the service starts out of quorum, and
        // without a sorry server to bring in, runs nothing for it (keepalived's
        // update_quorum_state(vs, init)).
        let first = findings.get(&target).unwrap();
        assert!(!first.up && first.pending);
        until("up after its first good check", || {
            findings.get(&target).is_some_and(|h| h.up)
        })
        .await;
        until("notified", || lines(&log).len() == 2).await;
        let mut seen = lines(&log);
        seen.sort();
        assert_eq!(seen, ["quorum-up", "up"]);
        drop(listener);
        until("down", || findings.get(&target).is_some_and(|h| !h.up)).await;
        until("notified again", || lines(&log).len() == 4).await;
        let mut seen = lines(&log)[2..].to_vec();
        seen.sort();
        assert_eq!(seen, ["down", "quorum-down"]);
        // Dropped by a reload while down: nothing more runs.
        checker.follow(&Config::default());
        assert!(findings.get(&target).is_none());
    }

    #[tokio::test]
    async fn warmup_and_retry_delay_bring_the_checks_of_a_long_interval_sooner() {
        // Nothing listens there; an hour between checks, three failures to go down.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.3:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let config = parse(
            &format!(
                r#"
[[service]]
tcp = "127.0.0.1:80"
[service.check]
type = "connect"
interval = "1h"
timeout = "1s"
failures = 3
warmup = "1s"
retry_delay = "100ms"
[[service.server]]
address = "127.0.0.3:{port}"
"#
            ),
            Path::new("t.toml"),
        )
        .unwrap();
        let findings = Arc::new(Findings::default());
        let checker = Checker::new(Arc::clone(&findings), Arc::new(Notify::new()), 1);
        checker.follow(&config);
        let target = *server_checks(&config).keys().next().unwrap();
        // Without warmup the first check could come six minutes in; without the retry
        // delay the second an hour after it.
        until("down after three checks", || {
            findings.get(&target).is_some_and(|h| !h.up)
        })
        .await;
        assert_eq!(findings.get(&target).unwrap().failures, 3);
    }

    fn up_server(log: &std::path::Path, omega: bool) -> Config {
        let append = |word: &str| format!("/bin/sh -c 'echo {word} >> {}'", log.display());
        parse(
            &format!(
                r#"
[[service]]
tcp = "127.0.0.1:80"
omega = {omega}
quorum_down = "{qd}"
[service.check]
type = "on"
[[service.server]]
address = "127.0.0.2:80"
notify_down = "{down}"
"#,
                qd = append("quorum-down"),
                down = append("down"),
            ),
            Path::new("t.toml"),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_reload_that_drops_a_live_server_and_its_service_runs_their_down_commands() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("notify");
        let findings = Arc::new(Findings::default());
        let checker = Checker::new(Arc::clone(&findings), Arc::new(Notify::new()), 1);
        checker.follow(&up_server(&log, false));
        // keepalived's clear_diff_services: omega or not.
        checker.follow(&Config::default());
        until("both ran", || lines(&log).len() == 2).await;
        let mut seen = lines(&log);
        seen.sort();
        assert_eq!(seen, ["down", "quorum-down"]);
    }

    #[tokio::test]
    async fn a_stop_runs_the_down_commands_with_omega_only() {
        for omega in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let log = dir.path().join("notify");
            let findings = Arc::new(Findings::default());
            let checker = Checker::new(Arc::clone(&findings), Arc::new(Notify::new()), 1);
            checker.follow(&up_server(&log, omega));
            checker.stop().await;
            let mut seen = lines(&log);
            seen.sort();
            if omega {
                assert_eq!(seen, ["down", "quorum-down"]);
            } else {
                assert!(seen.is_empty(), "{seen:?}");
            }
        }
    }
}
