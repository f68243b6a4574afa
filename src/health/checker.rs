//! The check tasks: one per check of each checked real server (most have one; a server
//! with several, keepalived's several checkers, is up only while none of its checks is
//! down: `record_one_of`), each on its own schedule (the check's
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
    CheckHealth, DEFAULT_INTERVAL, DEFAULT_TIMEOUT, Findings, ServerHealth, Target, quorum,
    server_settings_all, watched,
};
use crate::config::{Check, CheckKind, Config};
use crate::lock::Locked;
use crate::table::{Protocol, ServerKey, ServiceKey};

/// What one server's checks are built from: the server as probes see it, its check's
/// settings (its own, then its service's, then the global ones) and the maintenance
/// directory. A server whose `ServerCheck` a reload leaves equal keeps its tasks and
/// its built checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCheck {
    /// Where its (first) check goes, and its settings.
    pub endpoint: Endpoint,
    pub check: Check,
    /// Its other checks, when it has several (keepalived's several checkers of one
    /// real server, `health::server_settings_all`): each runs on its own schedule with
    /// its own settings and state, and the server is up only while none is down.
    pub more: Vec<OneCheck>,
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

/// One of several checks of a server: where it goes and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneCheck {
    pub endpoint: Endpoint,
    pub check: Check,
}

impl ServerCheck {
    /// Its `n`th check (from 0) as its settings ask for it, behind the maintenance
    /// files.
    ///
    /// # Errors
    /// As [`check::build`].
    pub fn build(&self, n: usize) -> Result<Box<dyn HealthCheck>, BuildError> {
        check::build(self.nth(n).1, self.maintenance_dir.as_deref())
    }

    /// How many checks it has (1 to `config::MAX_CHECKS`).
    pub fn count(&self) -> usize {
        1 + self.more.len()
    }

    /// Its `n`th check (from 0; the first past the last is the last).
    pub fn nth(&self, n: usize) -> (&Endpoint, &Check) {
        match n
            .checked_sub(1)
            .and_then(|m| self.more.get(m).or(self.more.last()))
        {
            Some(one) => (&one.endpoint, &one.check),
            None => (&self.endpoint, &self.check),
        }
    }

    /// What each of its checks checks, for `uvs status`: its type, or a `negotiate`
    /// check's service.
    pub fn kinds(&self) -> Vec<String> {
        (0..self.count())
            .map(|n| {
                let check = self.nth(n).1;
                match (check.kind, check.service) {
                    (Some(CheckKind::Negotiate), Some(service)) => service.name().to_string(),
                    (kind, _) => kind.unwrap_or(CheckKind::On).name().to_string(),
                }
            })
            .collect()
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
            let target = Target {
                service: spec.service.key,
                server: server.key(),
            };
            let mut all = server_settings_all(&config.global, spec, &server.key())
                .into_iter()
                .map(|mut check| {
                    // Watched without a check (a maintenance directory): always up but
                    // for it.
                    check.kind = check.kind.or(Some(CheckKind::On));
                    let port = check
                        .port
                        .or((server.port != 0).then_some(server.port))
                        .unwrap_or(vport);
                    let endpoint = Endpoint {
                        target,
                        protocol,
                        vip: vip.clone(),
                        vport,
                        dest: SocketAddr::new(check.address.unwrap_or(server.addr), port),
                        weight: server.weight,
                    };
                    OneCheck { endpoint, check }
                });
            // server_settings_all gives at least one.
            let Some(first) = all.next() else {
                continue;
            };
            let own = spec.health.servers.get(&server.key());
            checks.insert(
                target,
                ServerCheck {
                    endpoint: first.endpoint,
                    check: first.check,
                    more: all.collect(),
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
    /// Each checked server's settings and its checks' tasks, one per check.
    tasks: Mutex<HashMap<Target, (ServerCheck, Vec<AbortHandle>)>>,
}

/// What the checker and its tasks share.
struct Shared {
    findings: Arc<Findings>,
    changed: Arc<Notify>,
    /// Turns for checks in progress.
    turns: Arc<Semaphore>,
    /// The configuration last followed: the services whose quorum a change moves.
    config: Mutex<Arc<Config>>,
    /// The table whose passively ejected servers a good check readmits (set once by
    /// `Checker::readmit_in`; none in the checker's own tests).
    table: std::sync::OnceLock<Arc<crate::table::TableHandle>>,
}

impl Shared {
    /// A good check of `target`, which is up: if passive ejection holds it out, it
    /// comes back now rather than when its time is up (`table::ejection::readmit`), in
    /// its service and, for a group's checks, in every member (where a server written
    /// without a port sits at each member's port).
    fn readmit(&self, target: &Target) {
        use crate::table::ejection::{Readmission, log_readmission, readmit};
        let Some(table) = self.table.get() else {
            return;
        };
        let config = Arc::clone(&self.config.locked());
        let members = config
            .services
            .iter()
            .filter(|s| s.group.as_ref().is_some_and(|g| g.checks == target.service))
            .map(|s| s.service.key)
            .filter(|k| *k != target.service);
        let snapshot = table.snapshot();
        let now = crate::clock::monotonic_ms();
        for key in std::iter::once(target.service).chain(members) {
            let Some(service) = snapshot.service(&key) else {
                continue;
            };
            let same = |s: &&crate::table::RealServer| {
                s.addr == target.server.addr
                    && (s.port == target.server.port || key != target.service)
            };
            for server in service.servers.iter().filter(same) {
                let why = Readmission::GoodCheck;
                if readmit(&server.state, why, now) {
                    log_readmission(&key, &server.key(), &server.state, why);
                }
            }
        }
    }

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

/// A group's checks moving from one member to another, with each server's key there
/// and here.
struct GroupMove {
    from: ServiceKey,
    to: ServiceKey,
    servers: Vec<(ServerKey, ServerKey)>,
}

/// The groups whose checks move to another member between `old` and `new` (their first
/// member was removed, or the members reordered): (from, to, each server's key then and
/// now, paired by place where the address is the same). keepalived keeps one virtual
/// server per group whatever its members (check/ipwrapper.c `clear_diff_vsg` touches
/// no server's state and runs nothing), so what is known of the servers and of the
/// quorum moves with them instead of being dropped and started again.
fn group_moves(old: &Config, new: &Config) -> Vec<GroupMove> {
    let checking = |name: &str| {
        old.services.iter().find(|spec| {
            spec.group.as_ref().is_some_and(|g| g.name == name)
                && crate::config::group::runs_checks(spec)
        })
    };
    let mut moves = Vec::new();
    for spec in &new.services {
        let Some(group) = &spec.group else {
            continue;
        };
        if !crate::config::group::runs_checks(spec) {
            continue;
        }
        let Some(was) = checking(&group.name) else {
            continue;
        };
        if was.service.key == spec.service.key {
            continue;
        }
        let servers = was
            .servers
            .iter()
            .zip(&spec.servers)
            .filter(|(a, b)| a.addr == b.addr)
            .map(|(a, b)| (a.key(), b.key()))
            .collect();
        moves.push(GroupMove {
            from: was.service.key,
            to: spec.service.key,
            servers,
        });
    }
    moves
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
                table: std::sync::OnceLock::new(),
            }),
            tasks: Mutex::new(HashMap::new()),
        }
    }

    /// From now on a good check readmits a passively ejected server of `table` at once.
    pub fn readmit_in(&self, table: &Arc<crate::table::TableHandle>) {
        let _ = self.shared.table.set(Arc::clone(table));
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
        self.follow_shared(Arc::new(config.clone()));
    }

    /// [`Checker::follow`] of a configuration the caller keeps too (the reloader's
    /// last applied file): shared rather than copied, which at 100 000 services is a
    /// copy of some hundred megabytes less per reload.
    pub fn follow_shared(&self, config: Arc<Config>) {
        let wanted = server_checks(&config);
        let findings = &self.shared.findings;
        let old = std::mem::replace(&mut *self.shared.config.locked(), Arc::clone(&config));
        let config = &*config;
        let mut tasks = self.tasks.locked();
        for GroupMove { from, to, servers } in group_moves(&old, config) {
            findings.moved(from, to, &servers);
            for (was, is) in &servers {
                let old = Target {
                    service: from,
                    server: *was,
                };
                if let Some(task) = tasks.remove(&old) {
                    let new = Target {
                        service: to,
                        server: *is,
                    };
                    // Its endpoint changed: it restarts below, knowing what it knew.
                    tasks.insert(new, task);
                }
            }
        }
        tasks.retain(|target, (running, handles)| {
            let keep = wanted.get(target) == Some(running);
            if !keep {
                handles.iter().for_each(AbortHandle::abort);
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
            if findings.start_checks(*target, &server.kinds()) {
                tracing::warn!(
                    service = %target.service,
                    server = %target.server,
                    "real server is up: the check that was down is gone"
                );
                notify_server(server, true, NOTIFY_BOUND);
                self.shared.changed.notify_one();
            }
            let handles = (0..server.count())
                .map(|n| {
                    let check = server.build(n).unwrap_or_else(|e| {
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
                    tokio::spawn(run(server.clone(), n, check, Arc::clone(&self.shared)))
                        .abort_handle()
                })
                .collect();
            tasks.insert(*target, (server.clone(), handles));
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
                .map(|(_, (server, handles))| {
                    handles.iter().for_each(AbortHandle::abort);
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
        for (_, (_, handles)) in tasks.drain() {
            handles.iter().for_each(AbortHandle::abort);
        }
    }
}

/// A random fraction (0..1) that differs between servers and between rounds.
fn jitter_fraction(target: &Target, round: u64) -> f64 {
    let hash = std::collections::hash_map::RandomState::new().hash_one((target, round));
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// What one check's result did to its server.
struct Recorded {
    /// The server's change, for the log: it went up or down, or its weight changed.
    transition: Option<String>,
    /// The server is up now.
    up: bool,
    /// It went up or down.
    flipped: bool,
    /// With alpha, this first check failed and confirms the server down.
    alpha_down: bool,
    /// The check itself is up now (its retry delay applies only then).
    check_up: bool,
}

/// One check's result, for a server with one check: the server's state is the check's.
fn record_only(
    h: &mut ServerHealth,
    result: &check::Outcome,
    (now, took): (u64, Duration),
    (rise, failures_needed): (u32, u32),
) -> Recorded {
    let was_up = h.up;
    let alpha_down = h.pending && result.is_err();
    h.pending = false;
    h.last_check = Some(now);
    h.last_duration = took;
    let (transition, alpha_down) = match result {
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
            (what, false)
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
            (what, alpha_down)
        }
    };
    Recorded {
        transition,
        up: h.up,
        flipped: h.up != was_up,
        alpha_down,
        check_up: h.up,
    }
}

/// The `n`th check's result, for a server with several, as keepalived's
/// check/ipwrapper.c `update_svr_checker_state` and `set_checker_state` keep them: the
/// check goes down after its own `failures` and up after its own `rise`, and the server
/// is up only while none of its checks is down (`num_failed_checkers == 0`): it goes
/// down with the first of them that does, and up with the last that comes back. Its
/// weight is keepalived's effective weight ([`combined_weight`]). The server's own
/// fields sum its checks up: the most failures in a row of any, the first failing
/// one's error, the last check's time.
fn record_one_of(
    h: &mut ServerHealth,
    n: usize,
    (result, cur_weight): (&check::Outcome, Option<i64>),
    (now, took): (u64, Duration),
    (rise, failures_needed): (u32, u32),
    configured: i32,
) -> Recorded {
    let (was_up, was_weight) = (h.up, h.weight);
    // No check has yet found the server down: with alpha, the first that does
    // confirms it down, once for the server.
    let none_down_yet = h.checks.iter().all(|c| c.pending || c.up);
    let Some(c) = h.checks.get_mut(n) else {
        // Not started with this many checks: nothing to record (cannot happen).
        return Recorded {
            transition: None,
            up: h.up,
            flipped: false,
            alpha_down: false,
            check_up: h.up,
        };
    };
    let first_run = c.pending;
    c.pending = false;
    c.last_check = Some(now);
    c.last_duration = took;
    let mut went_down = None;
    match result {
        Ok(weight) => {
            c.successes = c.successes.saturating_add(1);
            c.failures = 0;
            c.last_error = None;
            c.weight = *weight;
            c.cur_weight = cur_weight;
            if !c.up && c.successes >= rise {
                c.up = true;
            }
        }
        Err(failure) => {
            c.failures = c.failures.saturating_add(1);
            c.successes = 0;
            c.last_error = Some(failure.to_string());
            let now_down =
                matches!(failure, Failure::Maintenance(_)) || c.failures >= failures_needed;
            if c.up && now_down {
                c.up = false;
                went_down = Some(format!(
                    "is down: its check {} ({}): {failure} ({} failed check{})",
                    n + 1,
                    c.kind,
                    c.failures,
                    if c.failures == 1 { "" } else { "s" }
                ));
            }
        }
    }
    let check_up = c.up;
    h.up = h.checks.iter().all(|c| c.up);
    h.pending = h.checks.iter().any(|c| c.pending);
    h.failures = h.checks.iter().map(|c| c.failures).max().unwrap_or(0);
    h.successes = h.checks.iter().map(|c| c.successes).min().unwrap_or(0);
    h.last_check = Some(now);
    h.last_duration = took;
    h.last_error = h.checks.iter().enumerate().find_map(|(i, c)| {
        let e = c.last_error.as_ref()?;
        Some(format!("check {} ({}): {e}", i + 1, c.kind))
    });
    h.weight = combined_weight(&h.checks, configured);
    let transition = if h.up && !was_up {
        Some(format!("is up: all its {} checks pass", h.checks.len()))
    } else if !h.up && was_up {
        went_down
    } else if h.up && h.weight != was_weight {
        Some(format!(
            "has weight {} from its checks",
            h.weight.unwrap_or(0)
        ))
    } else {
        None
    };
    Recorded {
        transition,
        up: h.up,
        flipped: h.up != was_up,
        alpha_down: first_run && result.is_err() && none_down_yet && !h.up,
        check_up,
    }
}

/// The weight several checks give their server, as keepalived makes its effective
/// weight (check_daemon.c `set_effective_weights`, check_misc.c, check_file.c): the
/// configured weight plus each check's `cur_weight` (`weighed`), held within 0 to
/// 2^31 - 1 (`real_weight`). So two dynamic checks that each ask for the configured
/// weight plus 3 give it plus 6. None while none asks for a weight.
pub fn combined_weight(checks: &[CheckHealth], configured: i32) -> Option<u32> {
    let mut added = checks.iter().filter_map(|c| c.cur_weight).peekable();
    added.peek()?;
    let sum = i64::from(configured).saturating_add(added.sum::<i64>());
    Some(sum.clamp(0, i64::from(i32::MAX)) as u32)
}

/// The weight a file check of a server with several checks is probed as if its server
/// had: its number times its weight comes back whole (within 2^30 either way), not
/// held at 0 as the weight it would give alone is, so that a negative one takes from
/// what the other checks add as keepalived's `cur_weight` does.
const FILE_PROBED_AT: i32 = 1 << 30;

/// A good check's weight as the weight it gives its server alone and what it adds to
/// the configured weight (keepalived's `cur_weight`): a `dynamic_weight` external
/// check's exit code less 2 less the configured weight (check_misc.c), a file check's
/// number times its weight (check_file.c), read off a probe made as if the server
/// weighed `probed_at`.
fn weighed(
    result: check::Outcome,
    probed_at: i32,
    configured: i32,
) -> (check::Outcome, Option<i64>) {
    match result {
        Ok(Some(weight)) => {
            let added = i64::from(weight) - i64::from(probed_at);
            let alone = (i64::from(configured) + added).clamp(0, i64::from(i32::MAX));
            (Ok(Some(alone as u32)), Some(added))
        }
        other => (other, None),
    }
}

/// One of a server's checks (the `n`th, from 0), until the task is aborted.
async fn run(server: ServerCheck, n: usize, check: Box<dyn HealthCheck>, shared: Arc<Shared>) {
    let (findings, changed, turns) = (&shared.findings, &shared.changed, &shared.turns);
    let several = server.count() > 1;
    let (endpoint, settings) = server.nth(n);
    let interval = settings.interval.unwrap_or(DEFAULT_INTERVAL);
    let timeout = settings.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let failures_needed = settings.failures.unwrap_or(1).max(1);
    let at_start = settings
        .failures_at_start
        .map_or(failures_needed, |n| n.max(1));
    let rise = settings.rise.unwrap_or(1).max(1);
    let target = server.endpoint.target;
    // Whether the server has passed a check since the daemon started (a check restarted
    // by a reload finds it up and checked); until then `failures_at_start` applies.
    let mut passed = findings
        .get(&target)
        .is_some_and(|h| h.up && h.last_check.is_some());
    let configured = server.endpoint.weight;
    let probed_at = if several && settings.kind == Some(CheckKind::File) {
        FILE_PROBED_AT
    } else {
        configured
    };
    let at = Endpoint {
        weight: probed_at,
        ..endpoint.clone()
    };
    // The first check soon, spread over up to a tenth of the interval, or with a
    // `warmup` over up to that long (keepalived's check_api.c
    // `register_checkers_thread`: warmup * random() / RAND_MAX); the next ones an
    // interval apart, give or take 5%.
    let mut wait = match settings.warmup {
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
        let probed = check::probe(&*check, &at, timeout).await;
        // One check: its weight is the server's, as ever.
        let (result, added) = if several {
            weighed(probed, probed_at, configured)
        } else {
            (probed, None)
        };
        let took = started.elapsed();
        drop(turn);
        let now = crate::clock::unix_seconds();
        passed |= result.is_ok();
        let failures_needed = if passed { failures_needed } else { at_start };
        let recorded = findings.update(target, |h| {
            if several {
                let (result, times) = ((&result, added), (now, took));
                record_one_of(h, n, result, times, (rise, failures_needed), configured)
            } else {
                record_only(h, &result, (now, took), (rise, failures_needed))
            }
        });
        if let Some(what) = &recorded.transition {
            tracing::warn!(
                service = %target.service,
                server = %target.server,
                "real server {what}"
            );
        }
        // notify_up/notify_down once per change of the server's state (a weight change
        // is none, nor is a change of one of several checks that leaves the server as
        // it was); with alpha a first check that fails confirms the server down and
        // runs notify_down too (keepalived's check/ipwrapper.c
        // `update_svr_checker_state`), once for the server.
        if recorded.flipped || recorded.alpha_down {
            notify_server(&server, recorded.up, NOTIFY_BOUND);
        }
        if result.is_ok() && recorded.up {
            shared.readmit(&target);
        }
        if recorded.transition.is_some() {
            shared.settle();
            changed.notify_one();
        }
        let spread = 0.95 + jitter_fraction(&target, round) / 10.0;
        wait = match settings.retry_delay {
            // Failed but not yet down: keepalived's `delay_before_retry`
            // (check_tcp.c `tcp_epilog`: only while the checker is up).
            Some(retry) if result.is_err() && recorded.check_up => retry,
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
    use crate::health::CheckHealth;

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

    /// Checks a server on 127.0.0.3 where nothing listens, with a connect check of an
    /// hour's interval and `settings` (TOML lines of its `[service.check]`), until it is
    /// down; how many failed checks took it down.
    async fn failures_to_go_down(settings: &str) -> u32 {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.3:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let config = parse(
            &format!(
                "[[service]]\ntcp = \"127.0.0.1:80\"\n[service.check]\ntype = \"connect\"\ninterval = \"1h\"\ntimeout = \"1s\"\n{settings}\n[[service.server]]\naddress = \"127.0.0.3:{port}\"\n"
            ),
            Path::new("t.toml"),
        )
        .unwrap();
        let findings = Arc::new(Findings::default());
        let checker = Checker::new(Arc::clone(&findings), Arc::new(Notify::new()), 1);
        checker.follow(&config);
        let target = *server_checks(&config).keys().next().unwrap();
        until("down", || findings.get(&target).is_some_and(|h| !h.up)).await;
        findings.get(&target).unwrap().failures
    }

    #[tokio::test]
    async fn warmup_and_retry_delay_bring_the_checks_of_a_long_interval_sooner() {
        // Three failures to go down. Without warmup the first check could come six
        // minutes in; without the retry delay the second an hour after it.
        let settings = "failures = 3\nwarmup = \"1s\"\nretry_delay = \"100ms\"";
        assert_eq!(failures_to_go_down(settings).await, 3);
    }

    #[tokio::test]
    async fn until_its_first_good_check_a_server_goes_down_at_failures_at_start() {
        // keepalived's "one failure is enough initially": three failures to go down
        // once it has passed a check, one before.
        let settings = "failures = 3\nfailures_at_start = 1\nwarmup = \"0s\"\nretry_delay = \"1h\"";
        assert_eq!(failures_to_go_down(settings).await, 1);
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
    async fn a_groups_members_reordered_or_its_first_removed_keep_its_servers_and_quorum() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("notify");
        let listener = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let append = |word: &str| format!("/bin/sh -c 'echo {word} >> {}'", log.display());
        let group = |members: &str| {
            parse(
                &format!(
                    r#"
[[service]]
group = "web"
tcp = [{members}]
alpha = true
quorum = 1
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
            .unwrap()
        };
        let findings = Arc::new(Findings::default());
        let checker = Checker::new(Arc::clone(&findings), Arc::new(Notify::new()), 1);
        checker.follow(&group("\"127.0.0.51:8080\", \"127.0.0.52:8080\""));
        until("up, in quorum", || lines(&log).len() == 2).await;
        // keepalived keeps one virtual server per group (ipwrapper.c clear_diff_vsg):
        // neither edit changes a server's state or runs a command.
        for members in [
            "\"127.0.0.52:8080\", \"127.0.0.51:8080\"",
            "\"127.0.0.51:8080\"",
        ] {
            let config = group(members);
            checker.follow(&config);
            let target = *server_checks(&config).keys().next().unwrap();
            let health = findings.get(&target).unwrap();
            assert!(health.up && !health.pending, "{members}: {health:?}");
            assert!(in_quorum(&config, &findings), "{members}");
            // Two checks' time for a command that should not run.
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let mut seen = lines(&log);
            seen.sort();
            assert_eq!(seen, ["quorum-up", "up"], "{members}");
        }
    }

    /// Whether the first service of `config` is in quorum.
    fn in_quorum(config: &Config, findings: &Findings) -> bool {
        super::quorum::in_quorum(config, &config.services[0], findings)
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

    /// A server with a connect check on 127.0.0.2 and a file check (weight 0: a number
    /// other than 0 is down) of `file`, each checked every second; its notify and its
    /// service's quorum commands append to `log`.
    fn two_checks(addr: SocketAddr, file: &Path, log: &Path, alpha: bool) -> Config {
        let append = |word: &str| format!("/bin/sh -c 'echo {word} >> {}'", log.display());
        parse(
            &format!(
                r#"
[[service]]
tcp = "127.0.0.1:80"
alpha = {alpha}
quorum_down = "{qd}"
quorum_up = "{qu}"
[[service.check]]
type = "connect"
interval = "1s"
[[service.check]]
type = "file"
path = "{file}"
weight = 0
interval = "1s"
[[service.server]]
address = "{addr}"
notify_up = "{up}"
notify_down = "{down}"
"#,
                file = file.display(),
                qd = append("quorum-down"),
                qu = append("quorum-up"),
                up = append("up"),
                down = append("down"),
            ),
            Path::new("t.toml"),
        )
        .unwrap()
    }

    fn sorted(mut lines: Vec<String>) -> Vec<String> {
        lines.sort();
        lines
    }

    #[tokio::test]
    async fn a_server_with_two_checks_is_down_while_either_is_and_notifies_once_per_change() {
        let dir = tempfile::tempdir().unwrap();
        let (file, log) = (dir.path().join("state"), dir.path().join("notify"));
        std::fs::write(&file, "0\n").unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = two_checks(addr, &file, &log, false);
        let checks = server_checks(&config);
        let server = checks.values().next().unwrap();
        assert_eq!(server.kinds(), ["connect", "file"]);
        let target = server.endpoint.target;
        let findings = Arc::new(Findings::default());
        let checker = Checker::new(Arc::clone(&findings), Arc::new(Notify::new()), 2);
        checker.follow(&config);
        let state = |f: &Findings| {
            let h = f.get(&target).unwrap();
            (h.up, h.checks.iter().map(|c| c.up).collect::<Vec<_>>())
        };
        until("both checks ran", || {
            findings
                .get(&target)
                .is_some_and(|h| h.checks.iter().all(|c| c.last_check.is_some()))
        })
        .await;
        assert_eq!(state(&findings), (true, vec![true, true]));
        // In quorum at start (keepalived's update_quorum_state(vs, init)).
        until("quorum held at start", || lines(&log).len() == 1).await;
        assert_eq!(lines(&log), ["quorum-up"]);
        // The file check fails: the server goes down with it.
        std::fs::write(&file, "1\n").unwrap();
        until("down", || state(&findings) == (false, vec![true, false])).await;
        until("notified", || lines(&log).len() == 3).await;
        assert_eq!(sorted(lines(&log)[1..].to_vec()), ["down", "quorum-down"]);
        // The connect check fails too: the server was down already.
        drop(listener);
        until("both down", || {
            state(&findings) == (false, vec![false, false])
        })
        .await;
        // The file check passes again: still down, the connect check is.
        std::fs::write(&file, "0\n").unwrap();
        until("file up", || state(&findings) == (false, vec![false, true])).await;
        assert_eq!(lines(&log).len(), 3, "no change of the server, no command");
        // Both pass: up, once.
        let listener = std::net::TcpListener::bind(addr).unwrap();
        until("up", || state(&findings) == (true, vec![true, true])).await;
        until("notified again", || lines(&log).len() == 5).await;
        assert_eq!(sorted(lines(&log)[3..].to_vec()), ["quorum-up", "up"]);
        drop(listener);
        checker.follow(&Config::default());
    }

    #[tokio::test]
    async fn with_alpha_a_server_with_two_checks_is_up_only_when_both_passed_and_down_once() {
        let dir = tempfile::tempdir().unwrap();
        let (file, log) = (dir.path().join("state"), dir.path().join("notify"));
        std::fs::write(&file, "1\n").unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = two_checks(addr, &file, &log, true);
        let target = *server_checks(&config).keys().next().unwrap();
        let findings = Arc::new(Findings::default());
        let checker = Checker::new(Arc::clone(&findings), Arc::new(Notify::new()), 2);
        checker.follow(&config);
        let first = findings.get(&target).unwrap();
        assert!(!first.up && first.pending && first.checks.iter().all(|c| c.pending));
        // The connect check passes, the file check fails: confirmed down, once.
        until("both ran", || {
            findings
                .get(&target)
                .is_some_and(|h| h.checks.iter().all(|c| !c.pending))
        })
        .await;
        let h = findings.get(&target).unwrap();
        assert_eq!((h.up, h.checks[0].up, h.checks[1].up), (false, true, false));
        // Out of quorum from the start, with no sorry server to bring in: no quorum
        // command; down from the failing first check, once.
        until("notified", || !lines(&log).is_empty()).await;
        assert_eq!(lines(&log), ["down"]);
        std::fs::write(&file, "0\n").unwrap();
        until("up", || findings.get(&target).is_some_and(|h| h.up)).await;
        until("notified again", || lines(&log).len() == 3).await;
        assert_eq!(sorted(lines(&log)[1..].to_vec()), ["quorum-up", "up"]);
        drop(listener);
        checker.follow(&Config::default());
    }

    #[tokio::test]
    async fn the_dynamic_weights_of_two_checks_add_up_as_keepalived_adds_them() {
        let dir = tempfile::tempdir().unwrap();
        let (file, script) = (dir.path().join("weight"), dir.path().join("check"));
        std::fs::write(&file, "3\n").unwrap();
        std::fs::write(&script, "exit 12\n").unwrap();
        // Weight 2; the external check exits 12 (weight 10 alone, keepalived's
        // cur_weight 12 - 2 - 2 = 8), the file says 3 (weight 5 alone, cur_weight 3):
        // 2 + 8 + 3.
        let config = parse(
            &format!(
                r#"
[[service]]
tcp = "127.0.0.1:80"
[[service.check]]
type = "external"
command = "/bin/sh {}"
dynamic_weight = true
interval = "1s"
[[service.check]]
type = "file"
path = "{}"
interval = "1s"
[[service.server]]
address = "127.0.0.2:80"
weight = 2
"#,
                script.display(),
                file.display()
            ),
            Path::new("t.toml"),
        )
        .unwrap();
        let target = *server_checks(&config).keys().next().unwrap();
        let findings = Arc::new(Findings::default());
        let checker = Checker::new(Arc::clone(&findings), Arc::new(Notify::new()), 2);
        checker.follow(&config);
        until("both weighed", || {
            findings.get(&target).is_some_and(|h| {
                h.checks.iter().map(|c| c.weight).collect::<Vec<_>>() == [Some(10), Some(5)]
            })
        })
        .await;
        let h = findings.get(&target).unwrap();
        assert_eq!((h.up, h.weight), (true, Some(13)), "{h:?}");
        let table = super::super::effective(&config, &findings);
        assert_eq!(table.services[0].servers[0].weight, 13);
        // The file's number falls below 0: alone it would hold the server at 0, but
        // keepalived adds its cur_weight whole: 2 + 8 - 5.
        std::fs::write(&file, "-5\n").unwrap();
        until("weighed again", || {
            findings.get(&target).is_some_and(|h| h.weight == Some(5))
        })
        .await;
        let h = findings.get(&target).unwrap();
        assert_eq!(h.checks[1].weight, Some(0), "alone: 2 - 5, held at 0");
        checker.follow(&Config::default());
    }

    #[test]
    fn combined_weights_are_the_configured_one_plus_each_checks_difference_held_in_range() {
        // Each check's weight alone, for a server of weight 5.
        let asking = |weights: &[Option<u32>]| -> Vec<CheckHealth> {
            weights
                .iter()
                .map(|&weight| {
                    let (_, cur_weight) = weighed(Ok(weight), 5, 5);
                    CheckHealth {
                        cur_weight,
                        ..CheckHealth::default()
                    }
                })
                .collect()
        };
        assert_eq!(combined_weight(&asking(&[None, None]), 5), None);
        assert_eq!(combined_weight(&asking(&[Some(8), None]), 5), Some(8));
        assert_eq!(combined_weight(&asking(&[Some(8), Some(9)]), 5), Some(12));
        // Two that each ask for 0 of 5: 5 - 5 - 5 is held at 0.
        assert_eq!(combined_weight(&asking(&[Some(0), Some(0)]), 5), Some(0));
        let most = i32::MAX as u32;
        assert_eq!(
            combined_weight(&asking(&[Some(most), Some(most)]), 5),
            Some(most)
        );
        // A file check probed at FILE_PROBED_AT whose number times weight is -10: alone
        // it gives 0, and it takes 10 from what the others add (keepalived's
        // cur_weight), here an external check's 22 - 2 - 5 = 15: 5 - 10 + 15.
        let (alone, file) = weighed(Ok(Some((FILE_PROBED_AT - 10) as u32)), FILE_PROBED_AT, 5);
        assert_eq!((alone, file), (Ok(Some(0)), Some(-10)));
        let (_, external) = weighed(Ok(Some(20)), 5, 5);
        let checks = [file, external].map(|cur_weight| CheckHealth {
            cur_weight,
            ..CheckHealth::default()
        });
        assert_eq!(combined_weight(&checks, 5), Some(10));
    }

    #[test]
    fn a_servers_own_checks_replace_its_services_each_over_the_one_in_its_place() {
        let config = parse(
            r#"
[global.check]
interval = "3s"

[[service]]
tcp = "127.0.0.1:80"
[[service.check]]
type = "connect"
port = 8080
[[service.check]]
type = "file"
path = "/run/w"
[[service.server]]
address = "127.0.0.2:80"
[[service.server]]
address = "127.0.0.3:80"
[service.server.check]
port = 9090
[[service.server]]
address = "127.0.0.4:80"
[[service.server.check]]
timeout = "2s"
[[service.server.check]]
type = "external"
command = "/bin/true"
[[service.server.check]]
type = "connect"
"#,
            Path::new("t.toml"),
        )
        .unwrap();
        let checks = server_checks(&config);
        let of = |server: &str| {
            let c = checks
                .values()
                .find(|p| p.endpoint.target.server.addr.to_string() == server)
                .unwrap();
            (0..c.count())
                .map(|n| {
                    let (at, check) = c.nth(n);
                    format!(
                        "{} {} {:?} {:?}",
                        check.kind.unwrap().name(),
                        at.dest.port(),
                        check.interval,
                        check.timeout
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            of("127.0.0.2"),
            ["connect 8080 Some(3s) None", "file 80 Some(3s) None"]
        );
        // One table of its own: one check, over the service's first, as with one.
        assert_eq!(of("127.0.0.3"), ["connect 9090 Some(3s) None"]);
        assert_eq!(
            of("127.0.0.4"),
            [
                "connect 8080 Some(3s) Some(2s)",
                "external 80 Some(3s) None",
                "connect 80 Some(3s) None"
            ]
        );
    }
}
