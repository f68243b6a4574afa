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

pub mod check;
pub mod checker;
pub mod orphans;
mod status;
pub mod tls;

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use crate::config::{Check, Config, Global, ServiceSpec};
use crate::lock::Locked;
use crate::table::{ServerKey, ServiceKey};

pub use status::HealthStatus;

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

/// Whether the servers of `spec` are watched: they have a check, or a maintenance
/// directory can take them down.
pub fn watched(global: &Global, spec: &ServiceSpec) -> bool {
    merged_check(global, spec).kind.is_some()
        || spec.server_checks.values().any(|c| c.kind.is_some())
        || global.maintenance_dir.is_some()
}

/// The configuration as the table should be given the servers' health: down servers
/// at weight 0 (quiescent, ldirectord's default) or left out, and the fallback server
/// added while no real server of its service is up.
pub fn effective(config: &Config, findings: &Findings) -> Config {
    let mut out = config.clone();
    for spec in &mut out.services {
        if !watched(&config.global, spec) {
            continue;
        }
        let quiescent = spec
            .health
            .quiescent
            .or(config.global.health.quiescent)
            .unwrap_or(true);
        let key = spec.service.key;
        let mut any_up = false;
        // A member of a group has the findings of its group's first member's servers.
        let member = spec.group.is_some().then(|| spec.clone());
        spec.servers.retain_mut(|server| {
            let (service, server_key) = match &member {
                Some(m) => crate::config::group::checked_as(&config.services, m, &server.key()),
                None => (key, server.key()),
            };
            let health = findings
                .get(&Target {
                    service,
                    server: server_key,
                })
                .unwrap_or_default();
            if health.up {
                if let Some(w) = health.weight {
                    server.weight = i32::try_from(w).unwrap_or(i32::MAX);
                }
                any_up = true;
                return true;
            }
            server.weight = 0;
            quiescent
        });
        let fallback = spec
            .health
            .fallback
            .clone()
            .or_else(|| config.global.health.fallback.clone());
        if !any_up
            && let Some(fallback) = fallback
            && !spec.servers.iter().any(|s| s.key() == fallback.key())
        {
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
}
