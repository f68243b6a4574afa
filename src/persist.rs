//! Persistence (`-p timeout`, `-M netmask`): the store of IPVS's connection templates,
//! which `sched::schedule` reads and fills as ip_vs_core.c `ip_vs_sched_persist` does
//! (through a locked [`Slot`] per client), and whose holds ([`Control`]) the connection
//! table gives back. A template ties a client network to a real server for a service,
//! so that client's next connections skip the scheduler:
//!
//! - normal service: `<proto, client_net, VIP, port>` (port 21 uses port 0, as for FTP);
//! - port-0 service (PCC): `<proto, client_net, VIP, 0>`, every port of the VIP;
//! - fwmark service (PFWMC): `<IP, client_net, mark>`, every port and protocol of the
//!   group.
//!
//! Each new connection restarts the template's timer (the service's timeout); a template
//! that expires while it still has connections waits another 60 s. A template whose
//! server left the service is not used (and, with `expire_quiescent_template`, neither is
//! one whose server has weight 0). Templates count in the server's PersistConn and are
//! listed by `-L -c`.
//!
//! Their number is bounded (`--max-templates`): clients are trivially many (a flood of
//! spoofed sources against a persistent UDP service made a template each, 1.6 million
//! of them, 434 MB, kept for the service's timeout). At the cap, a new client's template
//! takes the place of the oldest one that controls no connection (it is only memory
//! then; its client is scheduled afresh next time); when every template is in use, the
//! new client is scheduled without one. Both are counted.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::lock::Locked;
use crate::table::real_server::locate;
use crate::table::{
    ConnEntry, Family, Netmask, Protocol, RealServer, RealServerState, ServerKey, Service,
    ServiceKey,
};

/// How long an expired template that still controls connections waits again.
const REARM_MS: u64 = 60_000;
/// The most templates held at once, unless configured (about 270 bytes each).
pub const DEFAULT_MAX_TEMPLATES: usize = 1 << 20;
/// Templates looked at for one that controls no connection before giving up.
const EVICTION_TRIES: usize = 64;
const FTP_PORT: u16 = 21;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scope {
    Protocol(Protocol),
    Fwmark(u32),
}

/// What a template is found by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TemplateKey {
    scope: Scope,
    client_net: IpAddr,
    vaddr: IpAddr,
    vport: u16,
}

/// One persistence template.
#[derive(Debug)]
pub struct Template {
    key: TemplateKey,
    server_key: ServerKey,
    /// Where the server was in the service's list when last used (a search hint).
    server_index: AtomicUsize,
    /// The real server as listed (its own port, 0 for most fwmark servers).
    dest: SocketAddr,
    pub server: Arc<RealServerState>,
    timeout_ms: u64,
    expires_ms: AtomicU64,
    children: AtomicU32,
    /// A connection through it was established (IPVS lists such templates ASSURED).
    assured: AtomicBool,
}

impl Template {
    /// A connection it controls has ended (through [`Control`] only).
    fn release_child(&self) {
        let _ = self
            .children
            .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
    }

    /// A connection it controls was established.
    pub fn assure(&self) {
        self.assured.store(true, Relaxed);
    }

    fn entry(&self, now_ms: u64) -> ConnEntry {
        let k = &self.key;
        ConnEntry {
            protocol: match k.scope {
                Scope::Protocol(p) => p.label().to_string(),
                Scope::Fwmark(_) => "IP".to_string(),
            },
            client_addr: k.client_net,
            client_port: 0,
            virtual_addr: k.vaddr,
            virtual_port: k.vport,
            dest_addr: self.dest.ip(),
            dest_port: self.dest.port(),
            state: if self.assured.load(Relaxed) {
                "ASSURED"
            } else {
                "NONE"
            }
            .to_string(),
            expires: (self.expires_ms.load(Relaxed).saturating_sub(now_ms) / 1000) as u32,
            pe_name: None,
            pe_data: None,
        }
    }
}

/// A template leaves the tables: it no longer counts in its server's PersistConn.
fn forget(t: &Template) {
    let _ = t
        .server
        .persistent_conns
        .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
}

/// The client's network: its address under the service's persistence netmask.
pub fn client_net(addr: IpAddr, netmask: Netmask) -> IpAddr {
    match (addr, netmask) {
        (IpAddr::V4(a), Netmask::V4(m)) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & u32::from(m))),
        (IpAddr::V6(a), Netmask::V6(prefix)) => {
            let bits = prefix.min(128);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
        (other, _) => other,
    }
}

/// The virtual address of an fwmark template: the mark in the address's first word.
fn fwmark_vaddr(mark: u32, family: Family) -> IpAddr {
    match family {
        Family::Inet => IpAddr::V4(Ipv4Addr::from(mark)),
        Family::Inet6 => IpAddr::V6(Ipv6Addr::from(u128::from(mark) << 96)),
    }
}

/// A connection's hold on its template (IPVS: the template controls the connection,
/// `ip_vs_control_add` / `ip_vs_control_del`): while it lasts the template counts one
/// more connection, which keeps it from expiring (it is re-armed instead) or from
/// making room for another client's. Given back once: by [`Control::release`] (the
/// connection table, when the entry leaves it) or when dropped, so a connection
/// scheduled but never opened (its socket failed, one-packet scheduling) cannot keep
/// it.
#[derive(Debug)]
pub struct Control {
    template: Arc<Template>,
    released: AtomicBool,
}

impl Control {
    fn new(template: Arc<Template>) -> Control {
        template.children.fetch_add(1, Relaxed);
        Control {
            template,
            released: AtomicBool::new(false),
        }
    }

    /// The hold, moved into a new `Control` (the closed entry that outlives the
    /// connection's `Conn`, `conn::closed`); this one then holds nothing. None when it
    /// was released before.
    pub fn hand_over(&self) -> Option<Control> {
        (!self.released.swap(true, Relaxed)).then(|| Control {
            template: Arc::clone(&self.template),
            released: AtomicBool::new(false),
        })
    }

    /// The connection no longer counts in its template; only the first call does
    /// anything.
    pub fn release(&self) {
        if !self.released.swap(true, Relaxed) {
            self.template.release_child();
        }
    }
}

impl std::ops::Deref for Control {
    type Target = Template;

    fn deref(&self) -> &Template {
        &self.template
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.release();
    }
}

/// The templates found by key, and in the order they were made (entries of templates
/// gone since are skipped and pruned).
#[derive(Debug, Default)]
struct Held {
    map: HashMap<TemplateKey, Arc<Template>>,
    order: VecDeque<Weak<Template>>,
}

/// One client's place in the template store, locked while its connection is scheduled
/// ([`Templates::slot`]).
pub struct Slot<'a> {
    templates: &'a Templates,
    held: MutexGuard<'a, Held>,
    key: TemplateKey,
    now: u64,
}

impl Slot<'_> {
    /// The client's template, when its server is still in `servers` and usable (in
    /// the service, and not quiescent under `expire_quiescent_template`): the server's
    /// index in `servers` and a hold on the template for the new connection, whose
    /// timer restarts (the service's timeout). A template whose server is not usable
    /// is no longer found, and waits among the orphans until it expires.
    pub fn find(&mut self, servers: &[RealServer]) -> Option<(usize, Control)> {
        let t = self.held.map.get(&self.key).cloned()?;
        let hint = t.server_index.load(Relaxed);
        match locate(servers, &t.server_key, hint) {
            Some(i) if self.templates.usable(&t) => {
                t.server_index.store(i, Relaxed);
                t.expires_ms.store(self.now + t.timeout_ms, Relaxed);
                Some((i, Control::new(t)))
            }
            _ => {
                self.held.map.remove(&self.key);
                self.templates.orphans.locked().push(t);
                None
            }
        }
    }

    /// A new template tying the client to `server` (at `index` in the service's list)
    /// for `timeout_s` seconds, held for the new connection. None when the store is
    /// full and every template is in use: the client is scheduled without one
    /// (counted, and warned of).
    pub fn make(mut self, server: &RealServer, index: usize, timeout_s: u32) -> Option<Control> {
        let templates = self.templates;
        if !templates.make_room(&mut self.held) {
            let n = templates.not_made.fetch_add(1, Relaxed) + 1;
            templates.warned.warn(|suppressed| {
                tracing::warn!(
                    max = templates.max,
                    without = n,
                    suppressed,
                    "every persistence template is in use: new clients are scheduled \
                     without one (see --max-templates)"
                );
            });
            return None;
        }
        let timeout_ms = u64::from(timeout_s) * 1000;
        server.state.persistent_conns.fetch_add(1, Relaxed);
        let template = Arc::new(Template {
            key: self.key,
            server_key: server.key(),
            server_index: AtomicUsize::new(index),
            dest: SocketAddr::new(server.addr, server.port),
            server: Arc::clone(&server.state),
            timeout_ms,
            expires_ms: AtomicU64::new(self.now + timeout_ms),
            children: AtomicU32::new(0),
            assured: AtomicBool::new(false),
        });
        self.held.order.push_back(Arc::downgrade(&template));
        self.held.map.insert(self.key, Arc::clone(&template));
        Some(Control::new(template))
    }
}

/// Persistence templates held, their cap, and what the cap did (`uvs status`'s wire form
/// and the /metrics series read it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateStatus {
    pub count: u64,
    pub max: u64,
    /// Ended to make room for a new client's.
    pub evicted: u64,
    /// Clients scheduled without one, every template being in use.
    pub not_made: u64,
}

/// All templates.
#[derive(Debug)]
pub struct Templates {
    clock: Clock,
    held: Mutex<Held>,
    /// Templates no longer found (their server left), kept until they expire.
    orphans: Mutex<Vec<Arc<Template>>>,
    /// IPVS's expire_quiescent_template: weight-0 servers lose their persistent clients.
    expire_quiescent: AtomicBool,
    /// The most templates held at once (found and orphaned).
    max: usize,
    /// Templates ended to make room for a new client's, and clients scheduled without
    /// one because every template was in use.
    evicted: AtomicU64,
    not_made: AtomicU64,
    warned: crate::rate_limit::RateLimit,
}

impl Templates {
    /// No more than `max` templates will be held at once.
    pub fn new(clock: Clock, max: usize) -> Templates {
        Templates {
            clock,
            held: Mutex::new(Held::default()),
            orphans: Mutex::new(Vec::new()),
            expire_quiescent: AtomicBool::new(false),
            max: max.max(1),
            evicted: AtomicU64::new(0),
            not_made: AtomicU64::new(0),
            warned: crate::rate_limit::RateLimit::new(),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// How many templates are held, the cap, and what the cap did, for `uvs status` and
    /// /metrics.
    pub fn status(&self) -> TemplateStatus {
        TemplateStatus {
            count: self.len() as u64,
            max: self.max as u64,
            evicted: self.evicted(),
            not_made: self.not_made(),
        }
    }

    /// Templates ended to make room for a new one, since start.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Relaxed)
    }

    /// Clients scheduled without a template because every one was in use, since start.
    pub fn not_made(&self) -> u64 {
        self.not_made.load(Relaxed)
    }

    /// Makes room for one more template: an orphan that controls no connection goes
    /// first, else the oldest found one that controls none. False when none could go.
    fn make_room(&self, held: &mut Held) -> bool {
        let mut orphans = self.orphans.locked();
        if held.map.len() + orphans.len() < self.max {
            return true;
        }
        if let Some(i) = orphans.iter().position(|t| t.children.load(Relaxed) == 0) {
            forget(&orphans.swap_remove(i));
            self.evicted.fetch_add(1, Relaxed);
            return true;
        }
        drop(orphans);
        for _ in 0..EVICTION_TRIES {
            let Some(weak) = held.order.pop_front() else {
                break;
            };
            let Some(t) = weak.upgrade() else { continue };
            if !held.map.get(&t.key).is_some_and(|m| Arc::ptr_eq(m, &t)) {
                continue; // replaced or orphaned since
            }
            if t.children.load(Relaxed) > 0 {
                // In use: it stays, and is looked at again after the others.
                held.order.push_back(weak);
                continue;
            }
            held.map.remove(&t.key);
            forget(&t);
            self.evicted.fetch_add(1, Relaxed);
            return true;
        }
        false
    }

    pub fn set_expire_quiescent(&self, on: bool) {
        self.expire_quiescent.store(on, Relaxed);
    }

    fn key(service: &Service, client: IpAddr, local: IpAddr) -> TemplateKey {
        let client_net = client_net(client, service.netmask);
        match service.key {
            ServiceKey::Fwmark { mark, family } => TemplateKey {
                scope: Scope::Fwmark(mark),
                client_net,
                vaddr: fwmark_vaddr(mark, family),
                vport: 0,
            },
            ServiceKey::Inet { protocol, port, .. } => TemplateKey {
                scope: Scope::Protocol(protocol),
                client_net,
                vaddr: local,
                vport: if port == FTP_PORT { 0 } else { port },
            },
        }
    }

    /// A template leads to its server while the server is in its service, is not
    /// quiesced under expire_quiescent_template, and is neither draining (unless the
    /// drain keeps persistent clients) nor ejected (`table::pool`): its client is then
    /// scheduled afresh.
    fn usable(&self, t: &Template) -> bool {
        use crate::table::real_server::Hold;
        let quiesced_out = self.expire_quiescent.load(Relaxed) && t.server.weight() == 0;
        let drained = t.server.holds(Hold::Draining) && !t.server.keeps_persistent();
        let taken_out = drained || t.server.holds(Hold::Ejected);
        t.server.is_available() && !quiesced_out && !taken_out
    }

    /// The place of `client`'s template for `service` (the client reached `local`),
    /// locked until the slot is dropped: a scheduler's pick and the template made for
    /// it happen as one, so two first connections of one client make one template.
    /// Used by `sched::schedule` (ip_vs_sched_persist).
    pub fn slot(&self, service: &Service, client: IpAddr, local: IpAddr) -> Slot<'_> {
        let key = Templates::key(service, client, local);
        let now = self.clock.now_ms();
        Slot {
            templates: self,
            held: self.held.locked(),
            key,
            now,
        }
    }

    /// Expires templates: gone when due and unused, re-armed for 60 s when still used.
    pub fn sweep(&self) -> usize {
        let now = self.clock.now_ms();
        let due = |t: &Arc<Template>| now >= t.expires_ms.load(Relaxed);
        let keep = |t: &Arc<Template>| {
            if !due(t) {
                return true;
            }
            if t.children.load(Relaxed) > 0 {
                t.expires_ms.store(now + REARM_MS, Relaxed);
                return true;
            }
            forget(t);
            false
        };
        let mut expired = 0;
        let mut held = self.held.locked();
        held.map.retain(|_, t| {
            let k = keep(t);
            expired += usize::from(!k);
            k
        });
        held.order.retain(|w| w.strong_count() > 0);
        drop(held);
        let mut orphans = self.orphans.locked();
        orphans.retain(|t| {
            let k = keep(t);
            expired += usize::from(!k);
            k
        });
        expired
    }

    /// Every template, as `-L -c` lists it.
    pub fn entries(&self) -> Vec<ConnEntry> {
        let now = self.clock.now_ms();
        let held = self.held.locked();
        let orphans = self.orphans.locked();
        held.map
            .values()
            .chain(orphans.iter())
            .map(|t| t.entry(now))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.held.locked().map.len() + self.orphans.locked().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
