//! Health checks, as ldirectord runs them: every real server of a service that has a
//! check is probed (`check`: one type per kind of check, behind one trait; how to add a
//! kind is in its header) on its own schedule by its own task (`checker`); what the
//! probes learn is kept in the [`Findings`], and the table the configuration asks for is
//! adjusted by it ([`effective`]): a server that is down gets weight 0 (quiescent) or
//! leaves the service, and the fallback server stands in while none is up. The
//! reloader applies that table through the same plan as a file change, so health and
//! configuration never fight over a server, and `uvsadm -L -n` shows what ldirectord
//! would have made ipvsadm show. What external checks leave behind, even outside their
//! process group, is adopted, killed and reaped by the daemon (`orphans`).
//!
//! keepalived's states are kept here too: a server with `alpha` starts down until its
//! first good check; a service's quorum (`quorum`: the live servers' weights, with
//! hysteresis) decides when the fallback stands in; the checker runs `notify_up`,
//! `notify_down`, `quorum_up` and `quorum_down` once per change, and with `omega` at
//! the daemon's stop, through the one command runner (`command`). A server may have
//! several checks (keepalived's several checkers of a real server,
//! [`server_settings_all`]): each runs and keeps its state on its own ([`CheckHealth`]),
//! and the server is up only while none of them is down. Commands run as their user if
//! they name one; with `ha_suspend` a service's checks wait while its address is not
//! this host's (`suspend`); a quiescent fallback stays at weight 0 while it does not
//! stand in (`sorry_server_inhibit`).

pub mod check;
pub mod checker;
pub mod command;
pub mod orphans;
pub mod quorum;
mod status;
pub mod suspend;
pub mod tls;

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use crate::config::{Check, Config, Global, ServiceSpec};
use crate::lock::Locked;
use crate::table::{ServerKey, ServiceKey};

pub use status::{CheckStatus, HealthStatus, QuorumStatus};

/// ldirectord's defaults: checkinterval 10 s, checktimeout 5 s, failurecount 1.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// One checked real server of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub service: ServiceKey,
    pub server: ServerKey,
}

/// What the checks know of one server.
#[derive(Debug, Clone)]
pub struct ServerHealth {
    pub up: bool,
    pub failures: u32,
    pub successes: u32,
    /// When the last check ended (seconds since the epoch), and how long it took.
    pub last_check: Option<u64>,
    pub last_duration: Duration,
    pub last_error: Option<String>,
    /// The weight an external check with `dynamic_weight` asked for.
    pub weight: Option<u32>,
    /// `alpha`: no check has ended yet, so the server is down until a good one.
    pub pending: bool,
    /// The server's own `quiescent`, when it has one (for `uvs status`).
    pub quiescent: Option<bool>,
    /// Why its checks are suspended (`ha_suspend`, [`suspend`]), while they are.
    pub suspended: Option<String>,
    /// With several checks (keepalived's several checkers of a real server): each
    /// one's own state, first to last; the server is up only while every one is
    /// (keepalived's `num_failed_checkers == 0`), and the fields above sum them up
    /// (`checker`). Empty for a server with one check, whose state is the fields above.
    pub checks: Vec<CheckHealth>,
}

/// What one of several checks of a server knows (keepalived's `checker_t` `is_up`,
/// `has_run`, `retry_it` and `cur_weight`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckHealth {
    /// What it checks: its type, or a `negotiate` check's service (for `uvs status`).
    pub kind: String,
    pub up: bool,
    pub failures: u32,
    pub successes: u32,
    pub last_check: Option<u64>,
    pub last_duration: Duration,
    pub last_error: Option<String>,
    /// The weight its last good check asked for (an external check's
    /// `dynamic_weight`, a file check's number): the server's weight, as if it were
    /// the only check.
    pub weight: Option<u32>,
    /// What that adds to the server's configured weight (keepalived's `cur_weight`,
    /// which may be below 0); None: it asks for no weight.
    pub cur_weight: Option<i64>,
    /// `alpha`: it has not run yet.
    pub pending: bool,
}

impl ServerHealth {
    /// How a server starts: up, or with `alpha` down until its first good check
    /// (keepalived's check/ipwrapper.c `init_service_rs`: "In alpha mode, be
    /// pessimistic").
    pub fn starting(alpha: bool) -> ServerHealth {
        ServerHealth {
            up: !alpha,
            pending: alpha,
            ..ServerHealth::default()
        }
    }
}

impl Default for ServerHealth {
    /// A server starts up, as keepalived's do: a check has to fail before it goes.
    fn default() -> ServerHealth {
        ServerHealth {
            up: true,
            failures: 0,
            successes: 0,
            last_check: None,
            last_duration: Duration::ZERO,
            last_error: None,
            weight: None,
            pending: false,
            quiescent: None,
            checks: Vec::new(),
            suspended: None,
        }
    }
}

/// What the health checks found of every checked server (its health), shared by the
/// checker that writes it, the reloader that adjusts the table by it and the status
/// report.
#[derive(Debug, Default)]
pub struct Findings {
    /// By service then server: the order statuses are listed in.
    map: Mutex<BTreeMap<Target, ServerHealth>>,
    /// Each watched service's quorum as last judged (`quorum::settle`).
    quorums: Mutex<BTreeMap<ServiceKey, quorum::State>>,
    /// Held across a whole `quorum::settle`, so that two (a check's and a reload's)
    /// never both see the same change and run its command twice.
    settling: Mutex<()>,
}

impl Findings {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<Target, ServerHealth>> {
        self.map.locked()
    }

    pub fn get(&self, target: &Target) -> Option<ServerHealth> {
        self.map().get(target).cloned()
    }

    /// Changes one server's record; returns what `change` returns.
    pub fn update<T>(&self, target: Target, change: impl FnOnce(&mut ServerHealth) -> T) -> T {
        change(self.map().entry(target).or_default())
    }

    /// Forgets servers no longer checked.
    pub fn retain(&self, targets: &HashSet<Target>) {
        self.map().retain(|t, _| targets.contains(t));
    }

    /// Records a server now checked: as it starts (`alpha`) if it is new, with its own
    /// `quiescent` either way.
    pub fn start(&self, target: Target, alpha: bool, quiescent: Option<bool>) {
        let mut map = self.map();
        let h = map
            .entry(target)
            .or_insert_with(|| ServerHealth::starting(alpha));
        h.quiescent = quiescent;
    }

    /// Records that a server now checked has the checks `kinds` (several: each keeps
    /// its own state, see [`CheckHealth`]; one: none kept apart). As keepalived's
    /// check/ipwrapper.c `migrate_checkers`: a check of a kind the server had (the
    /// first of that kind not yet taken) keeps what it knew, its dynamic weight too; a
    /// new one starts as the server stands (with `alpha`, down and not yet run); the one
    /// check left of several gives the server its state. Returns whether the server
    /// came up by it (a check that was down is gone), as keepalived's
    /// `perform_svr_state(true)` brings it up at the reload.
    pub fn start_checks(&self, target: Target, kinds: &[String]) -> bool {
        let mut map = self.map();
        let Some(h) = map.get_mut(&target) else {
            return false;
        };
        let same =
            h.checks.len() == kinds.len() && h.checks.iter().zip(kinds).all(|(c, k)| c.kind == *k);
        if same || (kinds.len() < 2 && h.checks.is_empty()) {
            return false;
        }
        if kinds.is_empty() {
            h.checks.clear();
            return false;
        }
        let was_up = h.up;
        let mut known = std::mem::take(&mut h.checks);
        if let [kind] = kinds {
            if let Some(c) = known.iter().find(|c| c.kind == *kind) {
                h.up = c.up;
                h.pending = c.pending;
                h.failures = c.failures;
                h.successes = c.successes;
                h.weight = c.weight;
                h.last_error.clone_from(&c.last_error);
            }
            return h.up && !was_up;
        }
        h.checks = kinds
            .iter()
            .map(|kind| match known.iter().position(|c| c.kind == *kind) {
                Some(i) => known.remove(i),
                None => CheckHealth {
                    kind: kind.clone(),
                    up: h.up,
                    pending: h.pending,
                    weight: h.weight,
                    ..CheckHealth::default()
                },
            })
            .collect();
        h.up = h.checks.iter().all(|c| c.up);
        h.up && !was_up
    }

    /// A group's checks moved from member `from` to member `to` (see
    /// `checker::group_moves`): what is known of each server (`servers`: where it was,
    /// where it is) and of the quorum moves with them.
    pub fn moved(&self, from: ServiceKey, to: ServiceKey, servers: &[(ServerKey, ServerKey)]) {
        let mut map = self.map();
        for (was, is) in servers {
            let old = Target {
                service: from,
                server: *was,
            };
            if let Some(h) = map.remove(&old) {
                map.insert(
                    Target {
                        service: to,
                        server: *is,
                    },
                    h,
                );
            }
        }
        drop(map);
        let mut quorums = self.quorums.locked();
        if let Some(state) = quorums.remove(&from) {
            quorums.insert(to, state);
        }
    }

    /// A service's quorum as last judged.
    pub fn quorum(&self, service: &ServiceKey) -> Option<quorum::State> {
        self.quorums.locked().get(service).copied()
    }

    fn set_quorum(&self, service: ServiceKey, state: quorum::State) {
        self.quorums.locked().insert(service, state);
    }

    /// Forgets the quorums of services not in `keep`; returns them, with whether each
    /// was in quorum.
    fn retain_quorums(&self, keep: &HashSet<ServiceKey>) -> Vec<(ServiceKey, bool)> {
        let mut quorums = self.quorums.locked();
        let gone: Vec<(ServiceKey, bool)> = quorums
            .iter()
            .filter(|(k, _)| !keep.contains(k))
            .map(|(k, s)| (*k, s.up))
            .collect();
        for (k, _) in &gone {
            quorums.remove(k);
        }
        gone
    }

    /// The quorum of every service that has a `quorum` or a quorum command, for `uvs
    /// status`, by service.
    pub fn quorum_statuses(&self) -> Vec<QuorumStatus> {
        self.quorums
            .locked()
            .iter()
            .filter(|(_, s)| s.shown)
            .map(|(k, s)| QuorumStatus {
                service: *k,
                up: s.up,
                live: s.live,
                quorum: s.rule.quorum,
                hysteresis: s.rule.hysteresis,
            })
            .collect()
    }

    /// Every checked server's health, by service then server, so that `uvs status`
    /// and /metrics list them in the same order every time.
    pub fn statuses(&self) -> Vec<HealthStatus> {
        self.map()
            .iter()
            .map(|(t, h)| HealthStatus {
                service: t.service,
                server: t.server,
                up: h.up,
                failures: h.failures,
                last_check: h.last_check,
                last_duration_ms: h.last_duration.as_millis() as u64,
                last_error: h.last_error.clone(),
                pending: h.pending,
                quiescent: h.quiescent,
                checks: h
                    .checks
                    .iter()
                    .map(|c| CheckStatus {
                        kind: c.kind.clone(),
                        up: c.up,
                        failures: c.failures,
                        last_check: c.last_check,
                        last_duration_ms: c.last_duration.as_millis() as u64,
                        last_error: c.last_error.clone(),
                        pending: c.pending,
                    })
                    .collect(),
                suspended: h.suspended.clone(),
            })
            .collect()
    }
}

/// A service's check with the global defaults filled in.
pub fn merged_check(global: &Global, spec: &ServiceSpec) -> Check {
    spec.health.check.or(&global.health.check)
}

/// The check of one server: its own settings, then its service's, then the global ones.
pub fn server_settings(global: &Global, spec: &ServiceSpec, server: &ServerKey) -> Check {
    let service = merged_check(global, spec);
    match spec.server_checks.get(server) {
        Some(own) => own.or(&service),
        None => service,
    }
}

/// Every check of one server, first to last (keepalived's several checkers of one
/// real server; one for most): its own checks if it has any, else its service's. A
/// server's own checks replace its service's: its n-th check takes what it leaves
/// unset from its service's n-th (when there is one), then from `[global.check]`. So
/// one `[service.server.check]` under several `[[service.check]]` leaves its server one
/// check, the first over the service's first, exactly as it did under one service
/// check; the first is always [`server_settings`].
pub fn server_settings_all(global: &Global, spec: &ServiceSpec, server: &ServerKey) -> Vec<Check> {
    let service: Vec<Check> = std::iter::once(merged_check(global, spec))
        .chain(
            spec.health
                .more_checks
                .iter()
                .map(|c| c.or(&global.health.check)),
        )
        .collect();
    let Some(own) = spec.server_checks.get(server) else {
        return service;
    };
    std::iter::once(own)
        .chain(spec.server_more_checks.get(server).into_iter().flatten())
        .enumerate()
        .map(|(n, c)| c.or(service.get(n).unwrap_or(&global.health.check)))
        .collect()
}

/// Whether the servers of `spec` are watched: they have a check, or a maintenance
/// directory can take them down.
pub fn watched(global: &Global, spec: &ServiceSpec) -> bool {
    merged_check(global, spec).kind.is_some()
        || spec.server_checks.values().any(|c| c.kind.is_some())
        || !spec.health.more_checks.is_empty()
        || !spec.server_more_checks.is_empty()
        || global.maintenance_dir.is_some()
}

/// The configuration as the table should be given the servers' health: down servers
/// at weight 0 (quiescent, ldirectord's default; a server's own `quiescent` over its
/// service's, as keepalived's per-server `inhibit_on_failure`) or left out; a server
/// with `alpha` down until its first good check; and, while the service is out of
/// quorum (`quorum`: no server up, or too little live weight), the fallback server
/// (keepalived's sorry server) added and every real server taken out as if down, as
/// keepalived's check/ipwrapper.c `update_quorum_state` does with
/// `perform_quorum_state` (a service without a fallback keeps its live servers).
pub fn effective(config: &Config, findings: &Findings) -> Config {
    let mut out = config.clone();
    for (spec, asked) in out.services.iter_mut().zip(&config.services) {
        if !watched(&config.global, spec) {
            continue;
        }
        let quiescent = spec
            .health
            .quiescent
            .or(config.global.health.quiescent)
            .unwrap_or(true);
        let alpha = quorum::alpha(&config.global, spec);
        let (fallback, fallback_quiescent) = match &spec.health.fallback {
            Some(f) => (Some(f.clone()), spec.health.fallback_quiescent),
            None => (
                config.global.health.fallback.clone(),
                config.global.health.fallback_quiescent,
            ),
        };
        let sorry = fallback.is_some() && !quorum::in_quorum(config, asked, findings);
        let own = spec.health.servers.clone();
        let standing_in = fallback.as_ref().filter(|_| sorry).map(|f| f.key());
        spec.servers.retain_mut(|server| {
            // A fallback that is also a real server stands in as the fallback
            // (keepalived's `s_svr_duplicates_rs`).
            if standing_in == Some(server.key())
                && let Some(f) = &fallback
            {
                *server = f.clone();
                return true;
            }
            // A member of a group has the findings of its group's first member's
            // servers (`config::group::checked_as`).
            let target = quorum::target_of(config, asked, &server.key());
            let health = quorum::health_of(findings, &target, alpha);
            if health.up && !sorry {
                if let Some(w) = health.weight {
                    server.weight = i32::try_from(w).unwrap_or(i32::MAX);
                }
                return true;
            }
            server.weight = 0;
            own.get(&server.key())
                .and_then(|s| s.quiescent)
                .unwrap_or(quiescent)
        });
        // Out of quorum the fallback stands in; in quorum a quiescent one stays at
        // weight 0 (keepalived's `sorry_server_inhibit`). One that is also a real
        // server is that server (`s_svr_duplicates_rs`).
        if let Some(mut fallback) = fallback
            && (sorry || fallback_quiescent == Some(true))
            && !spec.servers.iter().any(|s| s.key() == fallback.key())
        {
            if !sorry {
                fallback.weight = 0;
            }
            spec.servers.push(fallback);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::schema::parse;
    use crate::table::Protocol;

    #[test]
    fn a_reload_that_changes_checks_keeps_what_each_knew_and_brings_the_server_up() {
        let findings = Findings::default();
        let target = Target {
            service: ServiceKey::Inet {
                protocol: Protocol::Tcp,
                addr: "127.0.0.1".parse().unwrap(),
                port: 80,
            },
            server: ServerKey {
                addr: "127.0.0.2".parse().unwrap(),
                port: 80,
            },
        };
        let kinds = |k: &[&str]| k.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        findings.start(target, false, None);
        findings.start_checks(target, &kinds(&["external", "connect"]));
        findings.update(target, |h| {
            h.checks[0].cur_weight = Some(8);
            h.checks[0].weight = Some(10);
            h.checks[1].failures = 1;
        });
        findings.start_checks(target, &kinds(&["connect", "external", "file"]));
        let h = findings.get(&target).unwrap();
        let got: Vec<(&str, Option<i64>, u32)> = h
            .checks
            .iter()
            .map(|c| (c.kind.as_str(), c.cur_weight, c.failures))
            .collect();
        assert_eq!(
            got,
            [
                ("connect", None, 1),
                ("external", Some(8), 0),
                ("file", None, 0)
            ],
            "each kept, the new one as the server stands"
        );
        // The file check goes down, and so does the server; a reload that drops it
        // brings the server up at once, with the others' states.
        findings.update(target, |h| {
            h.checks[2].up = false;
            h.up = false;
        });
        assert!(findings.start_checks(target, &kinds(&["external", "connect"])));
        assert!(findings.get(&target).unwrap().up);
        findings.update(target, |h| {
            h.checks[1].up = false;
            h.up = false;
        });
        assert!(
            findings.start_checks(target, &kinds(&["external"])),
            "one left, which passes"
        );
        let h = findings.get(&target).unwrap();
        assert!(h.up && h.checks.is_empty(), "{h:?}");
        assert_eq!(h.weight, Some(10), "the one check's own weight");
        assert!(
            !findings.start_checks(target, &kinds(&["external"])),
            "no change"
        );
    }

    #[test]
    fn statuses_come_by_service_then_server_whatever_the_map_holds() {
        let findings = Findings::default();
        let service = |port| ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr: "127.0.0.1".parse().unwrap(),
            port,
        };
        let server = |last: u8| ServerKey {
            addr: std::net::IpAddr::from([127, 0, 0, last]),
            port: 80,
        };
        // Inserted out of order, many enough that a hash map's order would show.
        for port in (1..=8).rev() {
            for last in (2..=9).rev() {
                let target = Target {
                    service: service(port),
                    server: server(last),
                };
                findings.update(target, |h| h.failures = 1);
            }
        }
        let listed: Vec<(ServiceKey, ServerKey)> = findings
            .statuses()
            .iter()
            .map(|h| (h.service, h.server))
            .collect();
        let mut wanted = Vec::new();
        for port in 1..=8 {
            for last in 2..=9 {
                wanted.push((service(port), server(last)));
            }
        }
        assert_eq!(listed, wanted);
    }

    fn config(quiescent: bool) -> Config {
        parse(
            &format!(
                r#"
[[service]]
tcp = "127.0.0.1:80"
quiescent = {quiescent}
fallback = {{ address = "127.0.0.9:80" }}
[service.check]
type = "connect"
[[service.server]]
address = "127.0.0.2:80"
weight = 3
[[service.server]]
address = "127.0.0.3:80"
"#
            ),
            Path::new("t.toml"),
        )
        .unwrap()
    }

    fn down(findings: &Findings, config: &Config, server: &str, up: bool, weight: Option<u32>) {
        let target = Target {
            service: config.services[0].service.key,
            server: ServerKey {
                addr: server.parse().unwrap(),
                port: 80,
            },
        };
        findings.update(target, |h| {
            h.up = up;
            h.weight = weight;
        });
    }

    fn servers(c: &Config) -> Vec<(String, i32)> {
        c.services[0]
            .servers
            .iter()
            .map(|s| (s.addr.to_string(), s.weight))
            .collect()
    }

    #[test]
    fn down_servers_are_quiesced_or_left_out_and_the_fallback_stands_in() {
        for quiescent in [true, false] {
            let c = config(quiescent);
            let findings = Findings::default();
            assert_eq!(
                servers(&effective(&c, &findings)),
                [("127.0.0.2".into(), 3), ("127.0.0.3".into(), 1)],
                "every server starts up"
            );
            down(&findings, &c, "127.0.0.2", false, None);
            let one_down = servers(&effective(&c, &findings));
            if quiescent {
                assert_eq!(one_down, [("127.0.0.2".into(), 0), ("127.0.0.3".into(), 1)]);
            } else {
                assert_eq!(one_down, [("127.0.0.3".into(), 1)]);
            }
            down(&findings, &c, "127.0.0.3", false, None);
            let all_down = servers(&effective(&c, &findings));
            assert_eq!(
                all_down.last(),
                Some(&("127.0.0.9".into(), 1)),
                "the fallback"
            );
            down(&findings, &c, "127.0.0.3", true, Some(7));
            assert_eq!(
                servers(&effective(&c, &findings)).last(),
                Some(&("127.0.0.3".into(), 7)),
                "back with the weight its check gave, and no fallback"
            );
        }
    }

    fn target(c: &Config, server: &str) -> Target {
        Target {
            service: c.services[0].service.key,
            server: ServerKey {
                addr: server.parse().unwrap(),
                port: 80,
            },
        }
    }

    #[test]
    fn with_alpha_servers_start_down_and_a_servers_own_quiescent_wins() {
        let c = parse(
            r#"
[global]
alpha = true
[[service]]
tcp = "127.0.0.1:80"
quiescent = false
fallback = { address = "127.0.0.9:80" }
[service.check]
type = "connect"
[[service.server]]
address = "127.0.0.2:80"
[[service.server]]
address = "127.0.0.3:80"
quiescent = true
"#,
            Path::new("t.toml"),
        )
        .unwrap();
        let findings = Findings::default();
        assert_eq!(
            servers(&effective(&c, &findings)),
            [("127.0.0.3".into(), 0), ("127.0.0.9".into(), 1)],
            "no check yet: both down, the fallback in"
        );
        findings.start(target(&c, "127.0.0.2"), true, None);
        assert!(findings.get(&target(&c, "127.0.0.2")).unwrap().pending);
        down(&findings, &c, "127.0.0.2", true, None);
        assert_eq!(
            servers(&effective(&c, &findings)),
            [("127.0.0.2".into(), 1), ("127.0.0.3".into(), 0)]
        );
    }

    /// keepalived's `sorry_server_inhibit`: the sorry server is in the service from the
    /// start at weight 0, takes its weight while it stands in, and goes back to 0.
    #[test]
    fn a_quiescent_fallback_stays_at_weight_0_while_it_does_not_stand_in() {
        let text = |quiescent: bool| {
            format!(
                r#"
[[service]]
tcp = "127.0.0.1:80"
fallback = {{ address = "127.0.0.9:80", weight = 5, quiescent = {quiescent} }}
[service.check]
type = "connect"
[[service.server]]
address = "127.0.0.2:80"
"#
            )
        };
        let c = parse(&text(true), Path::new("t.toml")).unwrap();
        assert_eq!(c.services[0].health.fallback_quiescent, Some(true));
        let findings = Findings::default();
        assert_eq!(
            servers(&effective(&c, &findings)),
            [("127.0.0.2".into(), 1), ("127.0.0.9".into(), 0)]
        );
        down(&findings, &c, "127.0.0.2", false, None);
        assert_eq!(
            servers(&effective(&c, &findings)),
            [("127.0.0.2".into(), 0), ("127.0.0.9".into(), 5)]
        );
        down(&findings, &c, "127.0.0.2", true, None);
        assert_eq!(
            servers(&effective(&c, &findings)),
            [("127.0.0.2".into(), 1), ("127.0.0.9".into(), 0)]
        );
        let plain = parse(&text(false), Path::new("t.toml")).unwrap();
        assert_eq!(
            servers(&effective(&plain, &findings)),
            [("127.0.0.2".into(), 1)],
            "not quiescent: left out"
        );
        let rendered = crate::config::render::render(&c);
        assert!(
            rendered.contains(
                "fallback = { address = \"127.0.0.9:80\", weight = 5, quiescent = true }\n"
            ),
            "{rendered}"
        );
        assert_eq!(parse(&rendered, Path::new("t.toml")).unwrap(), c);
    }

    #[test]
    fn below_quorum_the_fallback_takes_over_from_the_live_servers_with_hysteresis() {
        let c = parse(
            r#"
[[service]]
tcp = "127.0.0.1:80"
quorum = 3
hysteresis = 1
quorum_down = "/bin/down"
quorum_up = "/bin/up"
fallback = { address = "127.0.0.9:80" }
[service.check]
type = "connect"
[[service.server]]
address = "127.0.0.2:80"
weight = 2
[[service.server]]
address = "127.0.0.3:80"
weight = 2
[[service.server]]
address = "127.0.0.4:80"
"#,
            Path::new("t.toml"),
        )
        .unwrap();
        let findings = Findings::default();
        let settle = || {
            quorum::settle(&c, &findings)
                .0
                .into_iter()
                .map(|ch| (ch.up, ch.live, ch.command))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            settle(),
            [(true, 5, Some("/bin/up".into()))],
            "starts in quorum: quorum_up (keepalived's \"Starting with quorum up\")"
        );
        assert_eq!(settle(), [], "and keeps it");
        down(&findings, &c, "127.0.0.2", false, None);
        assert_eq!(settle(), [], "live 3: not below 3 - 1");
        assert_eq!(
            servers(&effective(&c, &findings)),
            [
                ("127.0.0.2".into(), 0),
                ("127.0.0.3".into(), 2),
                ("127.0.0.4".into(), 1)
            ]
        );
        down(&findings, &c, "127.0.0.3", false, None);
        assert_eq!(settle(), [(false, 1, Some("/bin/down".into()))]);
        assert_eq!(settle(), [], "once");
        assert_eq!(
            servers(&effective(&c, &findings)),
            [
                ("127.0.0.2".into(), 0),
                ("127.0.0.3".into(), 0),
                ("127.0.0.4".into(), 0),
                ("127.0.0.9".into(), 1)
            ],
            "the live server is taken out while the fallback stands in"
        );
        down(&findings, &c, "127.0.0.3", true, None);
        assert_eq!(settle(), [], "live 3: not yet 3 + 1");
        assert_eq!(servers(&effective(&c, &findings)).len(), 4);
        down(&findings, &c, "127.0.0.2", true, None);
        assert_eq!(settle(), [(true, 5, Some("/bin/up".into()))]);
        assert_eq!(
            servers(&effective(&c, &findings)),
            [
                ("127.0.0.2".into(), 2),
                ("127.0.0.3".into(), 2),
                ("127.0.0.4".into(), 1)
            ]
        );
        let status = findings.quorum_statuses();
        assert_eq!(
            (status[0].up, status[0].live, status[0].quorum),
            (true, 5, Some(3))
        );
    }

    #[test]
    fn a_quorum_above_the_total_weight_is_lowered_to_it_as_keepalived_does() {
        let mut c = config(true);
        c.services[0].health.quorum = Some(10);
        c.services[0].health.hysteresis = Some(9);
        // Weights 3 and 1.
        assert_eq!(
            quorum::Rule::of(&c.services[0]),
            quorum::Rule {
                quorum: Some(4),
                hysteresis: 3
            }
        );
    }

    #[test]
    fn a_fallback_that_is_also_a_real_server_stands_in_as_the_fallback() {
        let c = parse(
            r#"
[[service]]
tcp = "127.0.0.1:80"
quorum = 4
fallback = { address = "127.0.0.3:80" }
[service.check]
type = "connect"
[[service.server]]
address = "127.0.0.2:80"
weight = 3
[[service.server]]
address = "127.0.0.3:80"
weight = 2
"#,
            Path::new("t.toml"),
        )
        .unwrap();
        let findings = Findings::default();
        down(&findings, &c, "127.0.0.2", false, None);
        let _ = quorum::settle(&c, &findings);
        assert_eq!(
            servers(&effective(&c, &findings)),
            [("127.0.0.2".into(), 0), ("127.0.0.3".into(), 1)],
            "live 2 of 4: the fallback's weight, not the real server's, and not 0"
        );
    }

    /// A group's servers are checked once, for its first member, and what is found
    /// applies to every member: a gate server held at each member's port included.
    #[test]
    fn a_groups_servers_are_checked_once_and_found_down_in_every_member() {
        let c = parse(
            r#"
[[service]]
group = "g"
tcp = ["127.0.0.1:80", "127.0.0.1-127.0.0.2:443"]
fwmark = 4
[service.check]
type = "connect"
[[service.server]]
address = "127.0.0.2:8080"
[[service.server]]
address = "127.0.0.3"
forward = "gate"
"#,
            Path::new("t.toml"),
        )
        .unwrap();
        let first = c.services[0].service.key;
        let checks = checker::server_checks(&c);
        let mut targets: Vec<String> = checks
            .keys()
            .map(|t| format!("{} {}", t.service, t.server))
            .collect();
        targets.sort();
        assert_eq!(
            targets,
            [
                "tcp 127.0.0.1:80 127.0.0.2:8080",
                "tcp 127.0.0.1:80 127.0.0.3:80"
            ]
        );
        let findings = Findings::default();
        findings.update(
            Target {
                service: first,
                server: ServerKey {
                    addr: "127.0.0.3".parse().unwrap(),
                    port: 80,
                },
            },
            |h| h.up = false,
        );
        let weights: Vec<Vec<(String, i32)>> = effective(&c, &findings)
            .services
            .iter()
            .map(|s| {
                s.servers
                    .iter()
                    .map(|r| (format!("{}:{}", r.addr, r.port), r.weight))
                    .collect()
            })
            .collect();
        let at = |port: u16| {
            vec![
                ("127.0.0.2:8080".to_string(), 1),
                (format!("127.0.0.3:{port}"), 0),
            ]
        };
        assert_eq!(weights, [at(80), at(443), at(443), at(0)]);
    }

    /// keepalived's virtual_server group is one virtual server: one quorum, one
    /// quorum_down, and the sorry server in every member.
    #[test]
    fn a_group_has_one_quorum_for_all_its_members() {
        let c = parse(
            r#"
[[service]]
group = "g"
tcp = ["127.0.0.1:80", "127.0.0.2:80"]
quorum = 2
quorum_down = "/bin/down"
fallback = { address = "127.0.0.9:80" }
[service.check]
type = "connect"
[[service.server]]
address = "127.0.0.3:80"
[[service.server]]
address = "127.0.0.4:80"
"#,
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(c.services.len(), 2);
        let findings = Findings::default();
        // The checks are the first member's.
        let first = c.services[0].service.key;
        findings.update(
            Target {
                service: first,
                server: ServerKey {
                    addr: "127.0.0.3".parse().unwrap(),
                    port: 80,
                },
            },
            |h| h.up = false,
        );
        let (changes, _) = quorum::settle(&c, &findings);
        assert_eq!(
            changes
                .iter()
                .map(|ch| (ch.service, ch.up, ch.command.as_deref().map(str::to_string)))
                .collect::<Vec<_>>(),
            [(first, false, Some("/bin/down".to_string()))],
            "once, for the group"
        );
        let table = effective(&c, &findings);
        for member in &table.services {
            let servers: Vec<(String, i32)> = member
                .servers
                .iter()
                .map(|s| (s.addr.to_string(), s.weight))
                .collect();
            assert_eq!(
                servers,
                [
                    ("127.0.0.3".into(), 0),
                    ("127.0.0.4".into(), 0),
                    ("127.0.0.9".into(), 1)
                ],
                "{}",
                member.service.key
            );
        }
    }
}
