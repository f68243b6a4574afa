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
//!
//! At a million templates nothing that takes the store's lock (which scheduling takes
//! for every new connection of a persistent service) walks them all: a sweep takes only
//! the templates filed under a due second, a listing copies a bounded chunk at a time,
//! and eviction looks at a bounded number.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard};

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
/// The most templates held at once, unless configured (about 310 bytes each: README,
/// "Memory per entry").
pub const DEFAULT_MAX_TEMPLATES: usize = 1 << 20;
/// Templates looked at for one that controls no connection before giving up (orphans,
/// then found ones).
const EVICTION_TRIES: usize = 64;
/// Templates a sweep looks at, or a listing copies, per hold of the store's lock.
const CHUNK: usize = 1024;
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
    /// Its place in line (`Held::found`/`Held::orphans`), and the second it is filed
    /// under for the sweep (`Held::due`): written under the store's lock only.
    seq: AtomicU64,
    filed: AtomicU64,
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

    /// What a sync master sends of it (ip_vs_sync.c `ip_vs_sync_conn` on a template):
    /// IPPROTO_IP (0) and the mark for an fwmark service's template, as
    /// `ip_vs_sched_persist` makes them, else the service's protocol; the client's
    /// network with port 0; the virtual address and port it is found by; the real
    /// server; its timeout in seconds.
    pub fn synced(&self) -> SyncedTemplate {
        let k = &self.key;
        let (protocol, fwmark) = match k.scope {
            Scope::Protocol(p) => (p.number() as u8, 0),
            Scope::Fwmark(mark) => (0, mark),
        };
        SyncedTemplate {
            protocol,
            fwmark,
            client: k.client_net,
            vaddr: SocketAddr::new(k.vaddr, k.vport),
            dest: self.dest,
            timeout_s: (self.timeout_ms / 1000) as u32,
            assured: self.assured.load(Relaxed),
        }
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

/// A template as the sync daemon sends it ([`Template::synced`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncedTemplate {
    /// IPPROTO_* of the service, 0 (IPPROTO_IP) for an fwmark service's.
    pub protocol: u8,
    /// The service's mark, 0 for an address service's.
    pub fwmark: u32,
    /// The client's network (its address under the persistence netmask).
    pub client: IpAddr,
    /// The address and port the template is found by (for an fwmark service, the mark
    /// as an address and port 0).
    pub vaddr: SocketAddr,
    pub dest: SocketAddr,
    pub timeout_s: u32,
    /// A connection through it was established (state ASSURED, 1).
    pub assured: bool,
}

/// What [`Templates::install`] did with a template a sync master sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// A new template now leads the client to the server.
    New,
    /// The client had a template: its timer restarted and its server was kept, as the
    /// kernel keeps an existing template's (ip_vs_sync.c `ip_vs_proc_conn`).
    Refreshed,
    /// The store is full of templates in use: none was made.
    Full,
    /// The service has no real server at that index: none was made.
    NoServer,
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

/// The templates: found ones by key and in line, orphans in line, and all of them by
/// the second the sweep next looks at them.
#[derive(Debug, Default)]
struct Held {
    map: HashMap<TemplateKey, Arc<Template>>,
    /// The found templates by place in line: the order they were made in, one in use
    /// moved to the end when eviction passes it over.
    found: BTreeMap<u64, Arc<Template>>,
    /// Templates no longer found (their server left), kept until they expire.
    orphans: BTreeMap<u64, Arc<Template>>,
    /// (second, place in line) of every template: the second is its expiry rounded up
    /// when filed; a template used since is filed again when that second comes.
    due: BTreeSet<(u64, u64)>,
    next_seq: u64,
}

impl Held {
    fn len(&self) -> usize {
        self.map.len() + self.orphans.len()
    }

    fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn file(&mut self, t: &Template, second: u64) {
        t.filed.store(second, Relaxed);
        self.due.insert((second, t.seq.load(Relaxed)));
    }

    fn line(&mut self, orphans: bool) -> &mut BTreeMap<u64, Arc<Template>> {
        if orphans {
            &mut self.orphans
        } else {
            &mut self.found
        }
    }

    /// Moves `t` to the end of its line (found or orphans), keeping its second.
    fn requeue(&mut self, t: &Arc<Template>, orphans: bool) {
        let (old, second) = (t.seq.load(Relaxed), t.filed.load(Relaxed));
        self.due.remove(&(second, old));
        let seq = self.next_seq();
        t.seq.store(seq, Relaxed);
        let line = self.line(orphans);
        line.remove(&old);
        line.insert(seq, Arc::clone(t));
        self.due.insert((second, seq));
    }

    /// A found template is no longer found: it waits among the orphans.
    fn orphan(&mut self, t: Arc<Template>) {
        self.map.remove(&t.key);
        let seq = t.seq.load(Relaxed);
        self.found.remove(&seq);
        self.orphans.insert(seq, t);
    }

    /// `t` leaves the store (its entry in `due` already taken when `filed` is false).
    fn remove(&mut self, t: &Template, filed: bool) {
        let seq = t.seq.load(Relaxed);
        if filed {
            self.due.remove(&(t.filed.load(Relaxed), seq));
        }
        if self.found.remove(&seq).is_some() {
            self.map.remove(&t.key);
        } else {
            self.orphans.remove(&seq);
        }
    }

    fn get(&self, seq: u64) -> Option<&Arc<Template>> {
        self.found.get(&seq).or_else(|| self.orphans.get(&seq))
    }
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
                self.held.orphan(t);
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
        let seq = self.held.next_seq();
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
            seq: AtomicU64::new(seq),
            filed: AtomicU64::new(0),
        });
        let held = &mut *self.held;
        held.file(&template, (self.now + timeout_ms).div_ceil(1000));
        held.found.insert(seq, Arc::clone(&template));
        // `find` came first: the client's key has no template in the map now.
        if let Some(old) = held.map.insert(self.key, Arc::clone(&template)) {
            let old_seq = old.seq.load(Relaxed);
            if let Some(old) = held.found.remove(&old_seq) {
                held.orphans.insert(old_seq, old);
            }
        }
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

/// What one sweep of the templates did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TemplateSweep {
    pub expired: usize,
    /// Templates looked at: those filed under a due second only.
    pub looked_at: usize,
}

/// All templates.
#[derive(Debug)]
pub struct Templates {
    clock: Clock,
    held: Mutex<Held>,
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
    /// first, else the oldest found one that controls none; templates in use passed
    /// over go to the end of their line. At most [`EVICTION_TRIES`] of each are looked
    /// at. False when none could go.
    fn make_room(&self, held: &mut Held) -> bool {
        if held.len() < self.max {
            return true;
        }
        for orphans in [true, false] {
            for _ in 0..EVICTION_TRIES {
                let Some((_, t)) = held.line(orphans).first_key_value() else {
                    break;
                };
                let t = Arc::clone(t);
                if t.children.load(Relaxed) > 0 {
                    // In use: it stays, and is looked at again after the others.
                    held.requeue(&t, orphans);
                    continue;
                }
                held.remove(&t, true);
                forget(&t);
                self.evicted.fetch_add(1, Relaxed);
                return true;
            }
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

    /// A template a sync master sent (ip_vs_sync.c `ip_vs_proc_conn` with
    /// IP_VS_CONN_F_TEMPLATE): `client` reached `vaddr` of `service` and was sent to
    /// the real server at `index` in the service's list; the template lives `timeout_s`
    /// seconds unless a connection uses it, as one made here does; `assured` when the
    /// master's had an established connection (state ASSURED). An existing template
    /// for the client keeps its server and its timer is set to `timeout_s` from now,
    /// as the kernel sets it. A synced template never makes room by ending another
    /// (a master, or anyone on its link, could otherwise push out the clients'
    /// own): with the store full it is not made ([`Installed::Full`]).
    pub fn install(
        &self,
        service: &Service,
        client: IpAddr,
        vaddr: IpAddr,
        index: usize,
        timeout_s: u32,
        assured: bool,
    ) -> Installed {
        let Some(server) = service.servers.get(index) else {
            return Installed::NoServer;
        };
        let slot = self.slot(service, client, vaddr);
        if let Some(t) = slot.held.map.get(&slot.key) {
            let until = slot.now + u64::from(timeout_s) * 1000;
            t.expires_ms.store(until, Relaxed);
            if assured {
                t.assure();
            }
            return Installed::Refreshed;
        }
        if slot.held.len() >= self.max {
            return Installed::Full;
        }
        match slot.make(server, index, timeout_s) {
            // The hold a connection would take is not wanted: nothing uses it yet.
            Some(control) => {
                if assured {
                    control.assure();
                }
                control.release();
                Installed::New
            }
            None => Installed::Full,
        }
    }

    /// Expires templates: gone when due and unused, re-armed for 60 s when still used.
    pub fn sweep(&self) -> usize {
        self.sweep_at(self.clock.now_ms()).expired
    }

    /// [`Templates::sweep`], telling `rearmed` (after the store's lock is released) of
    /// each template re-armed because connections still use it: the sync master sends
    /// it again, as the kernel's re-sends a template with its connections' packets, so
    /// that a backup's copy outlives a long connection too.
    pub fn sweep_telling(&self, rearmed: &mut dyn FnMut(&Template)) -> usize {
        let mut told = Vec::new();
        let expired = self
            .sweep_collecting(self.clock.now_ms(), Some(&mut told))
            .expired;
        for t in &told {
            rearmed(t);
        }
        expired
    }

    /// [`Templates::sweep`] as of `now` (milliseconds on the store's clock). Only the
    /// templates filed under a second that has come are looked at, [`CHUNK`] per hold
    /// of the lock; one used since it was filed is filed again under its new expiry.
    pub fn sweep_at(&self, now: u64) -> TemplateSweep {
        self.sweep_collecting(now, None)
    }

    fn sweep_collecting(
        &self,
        now: u64,
        mut rearmed: Option<&mut Vec<Arc<Template>>>,
    ) -> TemplateSweep {
        let due = now / 1000;
        let mut result = TemplateSweep::default();
        loop {
            let mut gone = Vec::new();
            let mut looked = 0;
            {
                let mut held = self.held.locked();
                while looked < CHUNK {
                    let Some(&(second, seq)) = held.due.first() else {
                        break;
                    };
                    if second > due {
                        break;
                    }
                    held.due.pop_first();
                    looked += 1;
                    let Some(t) = held.get(seq).cloned() else {
                        continue;
                    };
                    let expires = t.expires_ms.load(Relaxed);
                    if now < expires {
                        held.file(&t, expires.div_ceil(1000));
                    } else if t.children.load(Relaxed) > 0 {
                        t.expires_ms.store(now + REARM_MS, Relaxed);
                        held.file(&t, (now + REARM_MS).div_ceil(1000));
                        if let Some(told) = rearmed.as_deref_mut() {
                            told.push(Arc::clone(&t));
                        }
                    } else {
                        held.remove(&t, false);
                        forget(&t);
                        gone.push(t);
                    }
                }
            }
            result.looked_at += looked;
            result.expired += gone.len();
            // Freed with the lock released.
            drop(gone);
            if looked < CHUNK {
                return result;
            }
        }
    }

    /// Every template, as `-L -c` lists it: found ones, then orphans, each in line,
    /// copied [`CHUNK`] at a time with the lock released in between; those made (or
    /// moved in line by eviction) since the listing began are not waited for.
    pub fn entries(&self) -> Vec<ConnEntry> {
        let now = self.clock.now_ms();
        let end = self.held.locked().next_seq;
        let mut out = Vec::new();
        for orphans in [false, true] {
            let mut from = 0;
            loop {
                let chunk: Vec<(u64, Arc<Template>)> = {
                    let mut held = self.held.locked();
                    held.line(orphans)
                        .range(from..=end)
                        .take(CHUNK)
                        .map(|(&seq, t)| (seq, Arc::clone(t)))
                        .collect()
                };
                out.extend(chunk.iter().map(|(_, t)| t.entry(now)));
                match chunk.last() {
                    Some(&(seq, _)) if chunk.len() == CHUNK && seq < end => from = seq + 1,
                    _ => break,
                }
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.held.locked().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
