//! `schedule`: the one way a new connection (TCP) or flow (UDP) gets its real server,
//! as IPVS's `ip_vs_schedule` (net/netfilter/ipvs/ip_vs_core.c) does, with
//! `ip_vs_sched_persist` for persistent services: the client's persistence template's
//! server when it has a usable one, else the service's scheduler (and a new template
//! for its pick when the service persists).
//!
//! What it returns is also the retry order, as pingora's selection iterator is
//! (pingora-load-balancing/src/selection): each further [`Schedule::next`] is where the
//! connection goes when the servers before could not be reached: the scheduler again,
//! and if it insists on one already tried (hashing schedulers do), the least loaded
//! usable server not yet tried. Retries have no template. A first choice the
//! scheduler cannot make because a pool control holds a server out goes to the least
//! loaded usable server ([`pool_fallback`]). A new pick of a server in slow start may
//! go elsewhere (`ramp`); templates and retries do not ramp. Called by the data plane
//! (`proxy::tcp`, `proxy::udp::flow`, through `proxy::scheduling`); `persist` is the
//! template store it reads and fills.

use crate::persist::{Control, Templates};
use crate::table::{RealServer, ServerKey, Service};

use super::{Packet, least_loaded_except, ramp};

/// The real server for a new connection, and its hold on the persistence template
/// when the service persists (given back when dropped, unless the connection's table
/// entry takes it).
#[derive(Debug)]
pub struct Choice<'a> {
    /// The server, as the service scheduled has it.
    pub server: &'a RealServer,
    pub template: Option<Control>,
}

/// The servers for a new connection, in the order to try them (see the module's
/// header). Ends (None) when no server is available, or none is left untried.
#[derive(Debug)]
pub struct Schedule<'a, 'p> {
    templates: &'a Templates,
    service: &'a Service,
    packet: &'p Packet,
    /// The server given last, while it is not known to have failed. Kept apart from
    /// `tried` so that a connection whose first choice serves it (nearly all) never
    /// allocates.
    given: Option<ServerKey>,
    /// Servers given before the last: the ones a retry leaves out, with `given`.
    tried: Vec<ServerKey>,
}

/// The servers for the connection `packet` opens to `service`, first choice first.
pub fn schedule<'a, 'p>(
    templates: &'a Templates,
    service: &'a Service,
    packet: &'p Packet,
) -> Schedule<'a, 'p> {
    Schedule {
        templates,
        service,
        packet,
        given: None,
        tried: Vec::new(),
    }
}

impl Schedule<'_, '_> {
    /// Whether the next server given is a retry (a server was given before).
    pub fn retrying(&self) -> bool {
        self.given.is_some() || !self.tried.is_empty()
    }
}

impl<'a> Iterator for Schedule<'a, '_> {
    type Item = Choice<'a>;

    fn next(&mut self) -> Option<Choice<'a>> {
        let choice = if self.retrying() {
            self.tried.extend(self.given.take());
            retry(self.service, self.packet, &self.tried)
        } else {
            first(self.templates, self.service, self.packet)
        }?;
        self.given = Some(choice.server.key());
        Some(choice)
    }
}

/// `ip_vs_schedule`: the template's server, or the scheduler's pick (with a new
/// template when the service persists).
fn first<'a>(templates: &Templates, service: &'a Service, packet: &Packet) -> Option<Choice<'a>> {
    if !service.flags.persistent() {
        let index = ramp::admit(&service.servers, pick_or_pool_fallback(service, packet)?);
        return Some(Choice {
            server: &service.servers[index],
            template: None,
        });
    }
    sched_persist(templates, service, packet)
}

/// `ip_vs_sched_persist`: the client's template if it has a usable one, else the
/// scheduler's pick and a template for it (none when the store is full of templates in
/// use). The client's slot stays locked from lookup to new template.
fn sched_persist<'a>(
    templates: &Templates,
    service: &'a Service,
    packet: &Packet,
) -> Option<Choice<'a>> {
    let mut slot = templates.slot(service, packet.client.ip(), packet.local.ip());
    if let Some((index, template)) = slot.find(&service.servers) {
        return Some(Choice {
            server: &service.servers[index],
            template: Some(template),
        });
    }
    let index = ramp::admit(&service.servers, pick_or_pool_fallback(service, packet)?);
    let server = &service.servers[index];
    let template = slot.make(server, index, service.timeout);
    Some(Choice { server, template })
}

/// The scheduler's pick (an index in `service.servers`), or [`pool_fallback`] when it
/// has none.
fn pick_or_pool_fallback(service: &Service, packet: &Packet) -> Option<usize> {
    service
        .pick_index(packet)
        .or_else(|| pool_fallback(&service.servers))
}

/// Where a connection goes when the scheduler picked no server while a pool control
/// holds one out (ejected, draining, full: `RealServerState::is_held_by_pool`): the
/// least loaded usable server. A hashing scheduler without its fallback flag (sh, mh,
/// dh) gives nothing when the client's server is held out, and the client would be
/// reset for a server the pool took out on purpose. With no server held by a pool
/// control, None: IPVS's "no server" stays (the list is read only when the
/// scheduler found nothing).
pub fn pool_fallback(servers: &[RealServer]) -> Option<usize> {
    if !servers.iter().any(|s| s.state.is_held_by_pool()) {
        return None;
    }
    least_loaded_except(servers, &[])
}

/// A retry after failed connects: the scheduler again, and if it insists on a server
/// already tried, the least loaded usable server not yet tried.
fn retry<'a>(service: &'a Service, packet: &Packet, tried: &[ServerKey]) -> Option<Choice<'a>> {
    let server = match service.pick(packet).filter(|s| !tried.contains(&s.key())) {
        Some(s) => s,
        None => &service.servers[least_loaded_except(&service.servers, tried)?],
    };
    Some(Choice {
        server,
        template: None,
    })
}

#[cfg(test)]
mod persistence;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::table::{Netmask, Protocol, ServiceFlags, ServiceKey, Table};

    const VIP: &str = "127.0.0.1";

    fn key() -> ServiceKey {
        ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr: VIP.parse().unwrap(),
            port: 80,
        }
    }

    /// A service on 127.0.0.1:80 with `scheduler`, persistent or not, and real servers
    /// 127.0.1.1, .2, ... of weight 1.
    fn table(scheduler: &str, persistent: bool, servers: usize) -> Table {
        let flags = if persistent {
            ServiceFlags(ServiceFlags::PERSISTENT)
        } else {
            ServiceFlags::default()
        };
        let addrs: Vec<std::net::IpAddr> = (1..=servers)
            .map(|i| format!("127.0.1.{i}").parse().unwrap())
            .collect();
        let broadcast = Netmask::V4(std::net::Ipv4Addr::BROADCAST);
        crate::sched::testing::table_of(key(), scheduler, flags, broadcast, &addrs)
    }

    fn packet(client: &str) -> Packet {
        Packet {
            client: client.parse().unwrap(),
            local: format!("{VIP}:80").parse().unwrap(),
        }
    }

    fn templates(max: usize) -> Templates {
        Templates::new(Clock::new(), max)
    }

    #[test]
    fn first_choices_are_the_schedulers_own_sequence() {
        let (ours, theirs) = (table("rr", false, 3), table("rr", false, 3));
        let (ours, theirs) = (
            ours.service(&key()).unwrap(),
            theirs.service(&key()).unwrap(),
        );
        let t = templates(16);
        for port in 1..10 {
            let p = packet(&format!("127.0.0.9:{port}"));
            let chosen = schedule(&t, ours, &p).next().map(|c| c.server.key());
            assert_eq!(chosen, theirs.pick(&p).map(RealServer::key));
        }
    }

    #[test]
    fn the_retry_order_tries_every_server_once() {
        // Source hashing insists on one server: the retries go to the others.
        let table = table("sh", false, 3);
        let svc = table.service(&key()).unwrap();
        let t = templates(16);
        let p = packet("127.0.0.9:4000");
        let mut servers = schedule(&t, svc, &p);
        assert!(!servers.retrying());
        let order: Vec<ServerKey> = servers.by_ref().map(|c| c.server.key()).collect();
        assert!(servers.retrying());
        assert_eq!(order.len(), 3, "{order:?}");
        assert_eq!(Some(order[0]), svc.pick(&p).map(RealServer::key));
        assert!(order[1] != order[0] && order[2] != order[0] && order[2] != order[1]);
    }

    #[test]
    fn a_persistent_first_choice_holds_a_template_and_retries_do_not() {
        let table = table("rr", true, 2);
        let svc = table.service(&key()).unwrap();
        let t = templates(16);
        let p = packet("127.0.0.9:4000");
        let mut servers = schedule(&t, svc, &p);
        let first = servers.next().expect("a server");
        assert!(first.template.is_some());
        let retry = servers.next().expect("the other server");
        assert!(retry.template.is_none());
        assert_ne!(retry.server.key(), first.server.key());
        assert!(servers.next().is_none(), "no server left untried");
        // The client's next connection goes where the template says.
        let again = schedule(&t, svc, &packet("127.0.0.9:4001")).next();
        assert_eq!(again.map(|c| c.server.key()), Some(first.server.key()));
        assert_eq!(t.len(), 1);
    }

    /// The first choice for a client of a hashing `scheduler` (3 servers, no fallback
    /// flag) whose own server is held out by `why`, and that server.
    fn first_with_home_held(
        scheduler: &str,
        why: crate::table::real_server::Hold,
    ) -> (Option<ServerKey>, ServerKey) {
        let table = table(scheduler, false, 3);
        let svc = table.service(&key()).unwrap();
        let p = packet("127.0.0.9:4000");
        let home = svc.pick(&p).expect("a server").clone();
        home.state.set_hold(why, true);
        let t = templates(16);
        let chosen = schedule(&t, svc, &p).next().map(|c| c.server.key());
        (chosen, home.key())
    }

    fn a_pool_hold_falls_back_and_an_overload_does_not(scheduler: &str) {
        use crate::table::real_server::Hold;
        for why in [Hold::Ejected, Hold::Draining, Hold::Full] {
            let (chosen, home) = first_with_home_held(scheduler, why);
            let chosen = chosen.unwrap_or_else(|| panic!("{scheduler}: a server for {why:?}"));
            assert_ne!(chosen, home, "{scheduler}: not the held-out one");
        }
        let (chosen, _) = first_with_home_held(scheduler, Hold::Overloaded);
        assert_eq!(
            chosen, None,
            "{scheduler}: IPVS's no server when overloaded"
        );
    }

    #[test]
    fn sh_falls_back_from_a_server_held_by_a_pool_control() {
        a_pool_hold_falls_back_and_an_overload_does_not("sh");
    }

    #[test]
    fn mh_falls_back_from_a_server_held_by_a_pool_control() {
        a_pool_hold_falls_back_and_an_overload_does_not("mh");
    }

    #[test]
    fn dh_falls_back_from_a_server_held_by_a_pool_control() {
        a_pool_hold_falls_back_and_an_overload_does_not("dh");
    }

    #[test]
    fn a_dropped_choice_lets_go_of_its_template() {
        let table = table("rr", true, 2);
        let svc = table.service(&key()).unwrap();
        // Room for one template: while a connection holds it, a new client gets none.
        let t = templates(1);
        let held = schedule(&t, svc, &packet("127.0.0.9:1")).next();
        assert!(held.as_ref().is_some_and(|c| c.template.is_some()));
        let without = schedule(&t, svc, &packet("127.0.0.10:1")).next();
        assert!(without.is_some_and(|c| c.template.is_none()));
        assert_eq!((t.evicted(), t.not_made()), (0, 1));
        // Scheduled but never opened: the hold goes with the choice, and the template
        // makes room for the next client's.
        drop(held);
        let next = schedule(&t, svc, &packet("127.0.0.11:1")).next();
        assert!(next.is_some_and(|c| c.template.is_some()));
        assert_eq!((t.evicted(), t.not_made()), (1, 1));
    }
}
