//! A service's quorum, as keepalived keeps it (check/ipwrapper.c): the sum of the
//! weights of its live real servers (`weigh_live_realservers`) against `quorum`, with
//! `hysteresis` (`update_quorum_state`). A service starts out of quorum
//! (check_data.c `set_quorum_states`, before any server is alive) and is judged at
//! once: in quorum, it runs `quorum_up`; out of it (its servers start down with
//! `alpha`, say), `quorum_down` where a sorry server is to stand in. In
//! quorum, it is lost when the sum is 0 or below `quorum - hysteresis`; out of it, it
//! is regained when the sum reaches `quorum + hysteresis`. A quorum above the servers'
//! total weight is lowered to it, and a hysteresis not below the quorum to one less,
//! as check_data.c `validate_check_config` does. Without a `quorum`, a service is in
//! quorum while any of its servers is up: the rule uvs's fallback has always followed
//! (ldirectord's), which the commands then follow too.
//!
//! `effective` reads the state to decide whether the fallback (keepalived's sorry
//! server) stands in; the checker moves it ([`settle`]) whenever a server goes up or
//! down or a configuration is followed, and runs `quorum_up`/`quorum_down` once for each
//! change it returns.

use super::{Findings, ServerHealth, Target, watched};
use crate::config::{Config, Global, ServiceSpec};
use crate::lock::Locked;
use crate::table::{ServerKey, ServiceKey};

/// What a service's quorum is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// None: any server up.
    pub quorum: Option<u32>,
    pub hysteresis: u32,
}

impl Rule {
    /// `spec`'s rule, with keepalived's corrections.
    pub fn of(spec: &ServiceSpec) -> Rule {
        let total: u64 = spec.servers.iter().map(|s| s.weight.max(0) as u64).sum();
        let quorum = spec
            .health
            .quorum
            .map(|q| u64::from(q).min(total).max(1) as u32);
        let hysteresis = match quorum {
            Some(q) => spec.health.hysteresis.unwrap_or(0).min(q - 1),
            None => 0,
        };
        Rule { quorum, hysteresis }
    }

    /// Whether the service is in quorum now, given whether it `was`, the sum of its
    /// live servers' weights and whether any of them is up.
    pub fn judge(&self, was: bool, live: u64, any_up: bool) -> bool {
        let Some(quorum) = self.quorum else {
            return any_up;
        };
        let (q, h) = (u64::from(quorum), u64::from(self.hysteresis));
        if was {
            live != 0 && live >= q - h
        } else {
            live >= q + h
        }
    }
}

/// The health of `spec`'s server `target` as the checks left it, or as it starts
/// (`alpha`: down until its first good check).
pub fn health_of(findings: &Findings, target: &Target, alpha: bool) -> ServerHealth {
    findings
        .get(target)
        .unwrap_or_else(|| ServerHealth::starting(alpha))
}

/// Where the findings of `spec`'s server `server` are kept: a member of a group has its
/// group's first member's (`config::group::checked_as`).
pub fn target_of(config: &Config, spec: &ServiceSpec, server: &ServerKey) -> Target {
    let (service, server) = crate::config::group::checked_as(&config.services, spec, server);
    Target { service, server }
}

/// Where `spec`'s quorum is kept: a group has one, as keepalived's one virtual server
/// of a `virtual_server group`, kept for its first member.
fn quorum_key(spec: &ServiceSpec) -> ServiceKey {
    spec.group.as_ref().map_or(spec.service.key, |g| g.checks)
}

/// Whether `spec`'s servers start down (`alpha`, or the global one).
pub fn alpha(global: &Global, spec: &ServiceSpec) -> bool {
    spec.health.alpha.or(global.health.alpha).unwrap_or(false)
}

/// The sum of the weights of `spec`'s live servers (their checks' weights where they
/// gave one), and whether any is up.
pub fn live(config: &Config, spec: &ServiceSpec, findings: &Findings) -> (u64, bool) {
    let alpha = alpha(&config.global, spec);
    let mut sum = 0u64;
    let mut any = false;
    for server in &spec.servers {
        let target = target_of(config, spec, &server.key());
        let h = health_of(findings, &target, alpha);
        if h.up {
            any = true;
            sum += h.weight.map_or(server.weight.max(0) as u64, u64::from);
        }
    }
    (sum, any)
}

/// A service's quorum as last judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub up: bool,
    pub live: u64,
    pub rule: Rule,
    /// The service has a `quorum` or a quorum command: `uvs status` shows it.
    pub shown: bool,
}

/// Whether `spec` is in quorum: as last judged, or, before any judgement, as it would
/// be judged now.
pub fn in_quorum(config: &Config, spec: &ServiceSpec, findings: &Findings) -> bool {
    let rule = Rule::of(spec);
    let (live, any_up) = live(config, spec, findings);
    match (rule.quorum, findings.quorum(&quorum_key(spec))) {
        // Stateless: the fallback's old rule, exactly.
        (None, _) => any_up,
        (Some(_), Some(state)) => state.up,
        (Some(_), None) => rule.judge(true, live, any_up),
    }
}

/// A service whose quorum changed: the command to run, if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub service: ServiceKey,
    pub up: bool,
    pub live: u64,
    pub rule: Rule,
    pub command: Option<crate::config::NotifyCommand>,
    /// The service's first judgement (the daemon starts, or a reload adds it).
    pub starting: bool,
}

/// Judges every watched service of `config` again, keeps what it found, and returns
/// the changes, and the services no longer watched with whether they were in quorum.
pub fn settle(config: &Config, findings: &Findings) -> (Vec<Change>, Vec<(ServiceKey, bool)>) {
    let _one_at_a_time = findings.settling.locked();
    let mut changes = Vec::new();
    let mut keys = std::collections::HashSet::new();
    for spec in &config.services {
        // A group is judged once, for its first member.
        if !watched(&config.global, spec) || !crate::config::group::runs_checks(spec) {
            continue;
        }
        let key = spec.service.key;
        keys.insert(key);
        let rule = Rule::of(spec);
        let (live, any_up) = live(config, spec, findings);
        let h = &spec.health;
        let shown = h.quorum.is_some() || h.quorum_up.is_some() || h.quorum_down.is_some();
        let (up, changed, starting) = match findings.quorum(&key) {
            Some(state) => {
                let up = rule.judge(state.up, live, any_up);
                (up, up != state.up, false)
            }
            // Starting (also a service a reload adds): judged from out of quorum, as
            // check_data.c `set_quorum_states` leaves it before ipwrapper.c
            // `update_quorum_state(vs, init)`, which runs quorum_up when the service
            // starts in quorum, and quorum_down when it starts without it only where a
            // sorry server is to stand in.
            None => {
                let up = rule.judge(false, live, any_up);
                let fallback = h.fallback.is_some() || config.global.health.fallback.is_some();
                (up, shown && (up || fallback), true)
            }
        };
        findings.set_quorum(
            key,
            State {
                up,
                live,
                rule,
                shown,
            },
        );
        if changed {
            let command = if up {
                &spec.health.quorum_up
            } else {
                &spec.health.quorum_down
            };
            changes.push(Change {
                service: key,
                up,
                live,
                rule,
                command: command.clone(),
                starting,
            });
        }
    }
    let gone = findings.retain_quorums(&keys);
    (changes, gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_is_lost_below_quorum_minus_hysteresis_and_regained_at_quorum_plus() {
        let rule = Rule {
            quorum: Some(4),
            hysteresis: 1,
        };
        // In quorum: kept down to 3, lost at 2.
        assert!(rule.judge(true, 3, true));
        assert!(!rule.judge(true, 2, true));
        // Out of it: not regained at 4, regained at 5.
        assert!(!rule.judge(false, 4, true));
        assert!(rule.judge(false, 5, true));
        // Without a quorum: any server up.
        let any = Rule {
            quorum: None,
            hysteresis: 0,
        };
        assert!(any.judge(false, 0, true));
        assert!(!any.judge(true, 7, false));
    }
}
