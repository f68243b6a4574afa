//! Who gets in: a new TCP connection or UDP flow of a client address, before it is
//! scheduled, against the global access list and the service's (`table::access`),
//! then the global per-client limits and the service's (`table::admission`). Each
//! refusal is counted on the service (and the global ones on the table too) and logged
//! (a debug line each, a warning at most once per 10 s naming the service, the client
//! and the rule or limit). Called by
//! the TCP path (`tcp::connection`) and the UDP flows (`udp::flow::open`), on the real
//! client's address (after a PROXY header); with nothing configured it costs two
//! branches.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crate::table::admission::{Admission, Cidr, ClientLimits, DenyAction, Verdict};
use crate::table::sources::{Kind, Over, Source, Tables};
use crate::table::{Service, Table};

/// What the connection or flow is, for the limits that count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum New {
    /// A TCP connection: `connections_per_source`, `new_per_second_per_source`.
    Connection,
    /// A UDP flow: `flows_per_source`.
    Flow,
}

/// Why a client was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    AccessList,
    Limits,
}

/// A refused client: why, and what a TCP client gets (the `deny_action` of the
/// admission, global or the service's, that refused it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub why: Refusal,
    pub action: DenyAction,
}

impl New {
    fn kind(self) -> Kind {
        match self {
            New::Connection => Kind::Connection,
            New::Flow => Kind::Flow,
        }
    }
}

/// An admitted connection or flow: what it holds against the per-client limits while
/// it is open (its source's entry in the global table and in the service's, each
/// counted one up), given back when it is dropped. Hold it as long as the connection
/// (the TCP task, from before it waits in the queue to its close) or the flow lives.
/// Three words; empty (nothing to give back) without limits.
#[derive(Debug)]
#[must_use = "the connection's place under the per-client limits ends when this is dropped"]
pub struct Admitted {
    global: Option<Arc<Source>>,
    own: Option<Arc<Source>>,
    kind: Kind,
}

impl Default for Admitted {
    fn default() -> Admitted {
        Admitted {
            global: None,
            own: None,
            kind: Kind::Connection,
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        for source in [&self.global, &self.own].into_iter().flatten() {
            source.release(self.kind);
        }
    }
}

/// Whether `client` may open a new connection or flow (`new`) to `service`, the global
/// admission of `table` first. A refusal is counted (`AdmissionCounts`, and on the
/// list's rule that decided it).
pub fn admit(
    table: &Table,
    service: &Service,
    client: IpAddr,
    new: New,
) -> Result<Admitted, Refused> {
    let global = table.admission();
    let own = &service.options.admission;
    if global.is_open() && own.is_open() {
        return Ok(Admitted::default());
    }
    // A client named by a PROXY header of a dual-stack balancer may be IPv4-mapped
    // (`::ffff:10.1.2.3`): the IPv4 prefixes and limits are the ones that concern it,
    // as nginx's access module decides (ngx_stream_access_handler).
    let client = client.to_canonical();
    access(table, service, client)?;
    let counts = &service.state.admission;
    let mut admitted = Admitted {
        global: None,
        own: None,
        kind: new.kind(),
    };
    if let Some(limits) = &global.limits {
        let state = table.admission_state();
        admitted.global = held(&state.sources, limits, client, new, |over| {
            counts.refused_limits.fetch_add(1, Relaxed);
            state.counts.refused_limits.fetch_add(1, Relaxed);
            log_refusal(service, client, Reason::limit(true, limits, over));
            Refused {
                why: Refusal::Limits,
                action: global.deny_action,
            }
        })?;
    }
    if let Some(limits) = &own.limits {
        admitted.own = held(&service.state.sources, limits, client, new, |over| {
            counts.refused_limits.fetch_add(1, Relaxed);
            // The global limits let it in: their token goes back, as a refused
            // connection takes nothing (its count goes back with `admitted`).
            if let (Some(global_limits), Some(_), New::Connection) =
                (&global.limits, &admitted.global, new)
            {
                let state = table.admission_state();
                state
                    .sources
                    .get(global_limits)
                    .refund_token(global_limits, client);
            }
            log_refusal(service, client, Reason::limit(false, limits, over));
            Refused {
                why: Refusal::Limits,
                action: own.deny_action,
            }
        })?;
    }
    Ok(admitted)
}

/// Why a client was refused, in words for the log: the rule, or the limit.
#[derive(Debug, Clone, Copy)]
enum Reason {
    /// By `deny` rule `rule`, or (None) by being in no `allow` prefix; of the global
    /// list or the service's.
    Access { global: bool, rule: Option<Cidr> },
    /// Over a per-client limit (its key and value), global or the service's.
    Limit {
        global: bool,
        key: &'static str,
        most: u32,
    },
}

impl Reason {
    fn limit(global: bool, limits: &ClientLimits, over: Over) -> Reason {
        let (key, most) = match over {
            Over::Connections => ("connections_per_source", limits.connections_per_source),
            Over::Rate => (
                "new_per_second_per_source",
                limits.new_per_second_per_source,
            ),
            Over::Flows => ("flows_per_source", limits.flows_per_source),
        };
        Reason::Limit { global, key, most }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let whose = |global: bool| {
            if global {
                "the global"
            } else {
                "the service's"
            }
        };
        match *self {
            Reason::Access {
                global,
                rule: Some(rule),
            } => write!(f, "denied by {} deny rule {rule}", whose(global)),
            Reason::Access { global, rule: None } => {
                write!(f, "in no prefix of {} allow list", whose(global))
            }
            Reason::Limit { global, key, most } => {
                write!(f, "over {} limits: {key} = {most}", whose(global))
            }
        }
    }
}

/// Logs a refusal: a debug line each, and a warning at most once per
/// `rate_limit::INTERVAL_SECONDS` with the count held back. Only refusals pay for it.
#[cold]
fn log_refusal(service: &Service, client: IpAddr, reason: Reason) {
    tracing::debug!(service = %service.key, %client, %reason, "client refused");
    REFUSED_WARNED.warn(|suppressed| {
        tracing::warn!(
            service = %service.key,
            %client,
            %reason,
            suppressed,
            "client refused (at most one warning per 10 s; each refusal at debug level)"
        );
    });
}

static REFUSED_WARNED: crate::rate_limit::RateLimit = crate::rate_limit::RateLimit::new();

/// The place of `client`'s source under `limits` (kept in `tables`), when they limit
/// what `new` is (None: nothing to count, e.g. a flow under connection limits only);
/// `refused` counts and says a refusal, given which limit it is over.
fn held(
    tables: &Tables,
    limits: &ClientLimits,
    client: IpAddr,
    new: New,
    refused: impl FnOnce(Over) -> Refused,
) -> Result<Option<Arc<Source>>, Refused> {
    let counts = match new {
        New::Connection => {
            limits.connections_per_source > 0 || limits.new_per_second_per_source > 0
        }
        New::Flow => limits.flows_per_source > 0,
    };
    if !counts {
        return Ok(None);
    }
    let now = crate::clock::monotonic_ms();
    match tables.get(limits).admit(limits, client, new.kind(), now) {
        Ok(source) => Ok(Some(source)),
        Err(over) => Err(refused(over)),
    }
}

/// Whether the access list of `admission` refuses `client`, and by which `deny` rule
/// (`Some(None)`: by being in no `allow` prefix); a refusal is counted on the rule that
/// decided it (`AccessList::count`).
fn denied(admission: &Admission, client: IpAddr) -> Option<Option<Cidr>> {
    let list = admission.access.as_ref()?;
    let verdict = list.check(client);
    list.count(verdict);
    match verdict {
        Verdict::Allowed => None,
        Verdict::Denied { rule } => Some(rule.and_then(|i| list.deny().get(i).copied())),
    }
}

/// The global access list, then the service's, on `client` (canonical already): a
/// refusal counted on the service (and the table, for the global list) and logged.
fn access(table: &Table, service: &Service, client: IpAddr) -> Result<(), Refused> {
    let (global, own) = (table.admission(), &service.options.admission);
    let counts = &service.state.admission;
    if let Some(rule) = denied(global, client) {
        counts.refused_access.fetch_add(1, Relaxed);
        table
            .admission_state()
            .counts
            .refused_access
            .fetch_add(1, Relaxed);
        log_refusal(service, client, Reason::Access { global: true, rule });
        return Err(Refused {
            why: Refusal::AccessList,
            action: global.deny_action,
        });
    }
    if let Some(rule) = denied(own, client) {
        counts.refused_access.fetch_add(1, Relaxed);
        log_refusal(
            service,
            client,
            Reason::Access {
                global: false,
                rule,
            },
        );
        return Err(Refused {
            why: Refusal::AccessList,
            action: own.deny_action,
        });
    }
    Ok(())
}

/// Whether `client`'s datagram may still go on a flow it opened, now that the lists
/// may have changed: the access lists again (not the limits, which counted the flow
/// when it opened), a refusal counted as `admit`'s. For one-packet scheduling (`-o`),
/// whose flows have no connection entry for `close_denied` (`pool::denied`) to end:
/// asked per datagram, only when a list is set.
pub fn still_allowed(table: &Table, service: &Service, client: IpAddr) -> bool {
    let global = table.admission();
    let own = &service.options.admission;
    if global.access.is_none() && own.access.is_none() {
        return true;
    }
    access(table, service, client.to_canonical()).is_ok()
}

/// Closes a refused TCP client as `action` says, once the caller drops it: a reset,
/// or a silent drop.
///
/// The silent drop is HAProxy's `silent-drop` (src/tcp_act.c,
/// `tcp_exec_action_silent_drop`): what the client sent is acknowledged at once
/// (TCP_QUICKACK, so that it does not retransmit into a socket that answers with a
/// reset), then the socket is put in repair mode (TCP_REPAIR, needs CAP_NET_ADMIN),
/// whose close sends nothing at all: the client learns nothing and times out. Without
/// the privilege, the reset is sent with a TTL (IPv6: hop limit) of 1, so that it dies
/// at the first router and never reaches a client beyond it; a client on the same host
/// or link still gets it.
pub fn refuse(client: &tokio::net::TcpStream, action: DenyAction) {
    if action == DenyAction::Drop {
        silent_drop(client);
    }
    super::tcp::reset(client);
}

/// Readies `client` so that its close says nothing, or as little as can be (see
/// [`refuse`]); whether it is in repair mode.
fn silent_drop(client: &tokio::net::TcpStream) -> bool {
    use std::os::fd::AsFd;
    let sock = socket2::SockRef::from(client);
    let _ = sock.set_tcp_quickack(true);
    if crate::sys::set_tcp_repair(client.as_fd()).is_ok() {
        return true;
    }
    // An IPv6 socket may carry IPv4 (mapped addresses): both limits are set on it.
    if client.local_addr().is_ok_and(|a| a.is_ipv6()) {
        let _ = sock.set_unicast_hops_v6(1);
    }
    let _ = sock.set_ttl_v4(1);
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// A drop leaves the socket silent when it may (repair mode, root), else with a
    /// TTL of 1 on its reset; either way the client's socket was touched.
    #[tokio::test]
    async fn a_drop_repairs_the_socket_or_lowers_its_ttl() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let ttl_before = socket2::SockRef::from(&accepted).ttl_v4().unwrap();
        assert!(ttl_before > 1);
        let repaired = silent_drop(&accepted);
        let ttl = socket2::SockRef::from(&accepted).ttl_v4().unwrap();
        assert_eq!(
            crate::sys::tcp_repair(accepted.as_fd()).unwrap(),
            repaired,
            "repair mode as said"
        );
        if repaired {
            assert_eq!(
                ttl, ttl_before,
                "in repair mode nothing is sent: no TTL to lower"
            );
        } else {
            assert_eq!(
                ttl, 1,
                "without repair mode the reset dies at the first router"
            );
        }
        // As root (CI), repair mode is what is taken.
        if crate::sys::effective_uid() == 0 {
            assert!(repaired, "root may put a socket in repair mode");
        }
    }

    /// A refusal is logged with the rule or the limit that made it.
    #[test]
    fn a_refusal_is_said_with_its_rule_or_limit() {
        use crate::table::admission::AccessList;
        let list = AccessList::new(
            vec!["10.0.0.0/8".parse().unwrap()],
            vec!["10.1.0.0/16".parse().unwrap()],
        );
        let admission = Admission {
            access: Some(Arc::new(list)),
            ..Admission::default()
        };
        let rule = denied(&admission, "10.1.2.3".parse().unwrap()).unwrap();
        assert_eq!(
            Reason::Access {
                global: false,
                rule
            }
            .to_string(),
            "denied by the service's deny rule 10.1.0.0/16"
        );
        let rule = denied(&admission, "192.0.2.1".parse().unwrap()).unwrap();
        assert_eq!(
            Reason::Access { global: true, rule }.to_string(),
            "in no prefix of the global allow list"
        );
        assert_eq!(denied(&admission, "10.2.0.1".parse().unwrap()), None);
        let limits = ClientLimits {
            connections_per_source: 3,
            new_per_second_per_source: 7,
            ..ClientLimits::default()
        };
        assert_eq!(
            Reason::limit(true, &limits, Over::Connections).to_string(),
            "over the global limits: connections_per_source = 3"
        );
        assert_eq!(
            Reason::limit(false, &limits, Over::Rate).to_string(),
            "over the service's limits: new_per_second_per_source = 7"
        );
    }

    /// A client a PROXY header names IPv4-mapped is the IPv4 client it maps: the IPv4
    /// prefixes and limits concern it.
    #[test]
    fn an_ipv4_mapped_client_is_judged_as_ipv4() {
        use crate::table::{Command, ServiceConfig, ServiceKey};
        let key = ServiceKey::Inet {
            protocol: crate::table::Protocol::Tcp,
            addr: "::1".parse().unwrap(),
            port: 80,
        };
        let mut config = ServiceConfig::new(key, "rr");
        config.options.admission.access = Some(Arc::new(crate::table::admission::AccessList::new(
            vec![],
            vec!["127.0.0.0/8".parse().unwrap()],
        )));
        config.options.admission.limits = Some(ClientLimits {
            connections_per_source: 1,
            ..ClientLimits::default()
        });
        let mut table = Table::new();
        let _ = table
            .apply(&Command::AddService(config), &crate::table::UnicastOnly)
            .unwrap();
        let service = Arc::clone(table.service(&key).unwrap());
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        let refused = admit(&table, &service, mapped, New::Connection).unwrap_err();
        assert_eq!(refused.why, Refusal::AccessList);
        // Out of the denied prefix, the mapped and plain forms are one source.
        let mapped: IpAddr = "::ffff:10.1.1.1".parse().unwrap();
        let plain: IpAddr = "10.1.1.1".parse().unwrap();
        let held = admit(&table, &service, mapped, New::Connection).unwrap();
        let refused = admit(&table, &service, plain, New::Connection).unwrap_err();
        assert_eq!(refused.why, Refusal::Limits);
        drop(held);
        assert!(admit(&table, &service, plain, New::Connection).is_ok());
    }

    fn tcp(port: u16) -> crate::table::ServiceKey {
        crate::table::ServiceKey::Inet {
            protocol: crate::table::Protocol::Tcp,
            addr: "127.0.0.1".parse().unwrap(),
            port,
        }
    }

    /// A connection the service's limit refuses gives back the global token it took:
    /// a client held at one service's limit keeps its rate for the others.
    #[test]
    fn a_connection_refused_by_the_service_takes_no_global_token() {
        use crate::table::{Command, ServiceConfig};
        let mut limited = ServiceConfig::new(tcp(80), "rr");
        limited.options.admission.limits = Some(ClientLimits {
            connections_per_source: 1,
            ..ClientLimits::default()
        });
        let mut table = Table::new();
        let global = crate::table::Admission {
            limits: Some(ClientLimits {
                new_per_second_per_source: 2,
                ..ClientLimits::default()
            }),
            ..crate::table::Admission::default()
        };
        for command in [
            Command::AddService(limited),
            Command::AddService(ServiceConfig::new(tcp(81), "rr")),
            Command::SetAdmission(global),
        ] {
            let _ = table.apply(&command, &crate::table::UnicastOnly).unwrap();
        }
        let (a, b) = (
            Arc::clone(table.service(&tcp(80)).unwrap()),
            Arc::clone(table.service(&tcp(81)).unwrap()),
        );
        let client: IpAddr = "127.0.0.2".parse().unwrap();
        let held = admit(&table, &a, client, New::Connection).unwrap();
        for _ in 0..3 {
            let refused = admit(&table, &a, client, New::Connection).unwrap_err();
            assert_eq!(refused.why, Refusal::Limits);
        }
        // The second token of the bucket is still there for the other service.
        let other = admit(&table, &b, client, New::Connection);
        assert!(other.is_ok(), "{other:?}");
        drop((held, other));
    }

    /// A one-packet flow's datagrams are asked about the lists of now, and a refusal
    /// is counted as a new connection's.
    #[test]
    fn still_allowed_asks_the_lists_of_now_and_counts() {
        use crate::table::{Command, ServiceConfig};
        let mut config = ServiceConfig::new(tcp(80), "rr");
        let mut table = Table::new();
        let _ = table
            .apply(
                &Command::AddService(config.clone()),
                &crate::table::UnicastOnly,
            )
            .unwrap();
        let client: IpAddr = "127.0.0.2".parse().unwrap();
        let service = Arc::clone(table.service(&tcp(80)).unwrap());
        assert!(still_allowed(&table, &service, client));
        config.options.admission.access = Some(Arc::new(crate::table::admission::AccessList::new(
            vec![],
            vec!["127.0.0.2".parse().unwrap()],
        )));
        // A reload's edit: uvsadm's keeps the lists as they were.
        let _ = table
            .apply_from(
                &Command::EditService(config),
                &crate::table::UnicastOnly,
                crate::table::Source::File,
            )
            .unwrap();
        let service = Arc::clone(table.service(&tcp(80)).unwrap());
        assert!(!still_allowed(&table, &service, client));
        assert!(still_allowed(
            &table,
            &service,
            "127.0.0.3".parse().unwrap()
        ));
        assert_eq!(service.state.admission.refused_access.load(Relaxed), 1);
    }
}
