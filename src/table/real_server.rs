//! A real server (IPVS "destination") of a virtual service: address, weight, forwarding
//! method, thresholds, tunnel settings, and the live state shared with the data plane.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32};

use serde::{Deserialize, Serialize};

use super::effect::CarryingOut;
use super::key::ServerKey;
use crate::stats::Stats;

/// How IPVS forwards to a real server. The kernel backend honours it; the userspace proxy
/// always proxies and only records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forward {
    /// NAT (`-m`).
    Masq,
    /// The real server is this host (the kernel reports it; nothing sets it).
    Local,
    /// Tunnelling (`-i`).
    Tunnel,
    /// Direct routing, "gatewaying" (`-g`, the default).
    Route,
}

impl Forward {
    /// The Forward column of `ipvsadm -L`.
    pub fn label(self) -> &'static str {
        match self {
            Forward::Masq => "Masq",
            Forward::Local => "Local",
            Forward::Tunnel => "Tunnel",
            Forward::Route => "Route",
        }
    }

    /// The switch `ipvsadm -S` writes; Local is written as `-g`, as ipvsadm does.
    pub fn switch(self) -> &'static str {
        match self {
            Forward::Masq => "-m",
            Forward::Tunnel => "-i",
            Forward::Local | Forward::Route => "-g",
        }
    }
}

/// Encapsulation of a tunnelling real server (`--tun-type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelKind {
    #[default]
    Ipip,
    Gue,
    Gre,
}

impl TunnelKind {
    pub fn name(self) -> &'static str {
        match self {
            TunnelKind::Ipip => "ipip",
            TunnelKind::Gue => "gue",
            TunnelKind::Gre => "gre",
        }
    }

    /// The kind of a name as [`TunnelKind::name`] gives it (ipvsadm's `--tun-type`).
    pub fn from_name(name: &str) -> Option<TunnelKind> {
        [TunnelKind::Ipip, TunnelKind::Gue, TunnelKind::Gre]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

/// Checksum mode of a GUE or GRE tunnel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelChecksum {
    #[default]
    NoCsum,
    Csum,
    RemCsum,
}

impl TunnelChecksum {
    /// The configuration's name: "nocsum", "csum" or "remcsum".
    pub fn name(self) -> &'static str {
        match self {
            TunnelChecksum::NoCsum => "nocsum",
            TunnelChecksum::Csum => "csum",
            TunnelChecksum::RemCsum => "remcsum",
        }
    }

    /// The mode of a name as [`TunnelChecksum::name`] gives it.
    pub fn from_name(name: &str) -> Option<TunnelChecksum> {
        [
            TunnelChecksum::NoCsum,
            TunnelChecksum::Csum,
            TunnelChecksum::RemCsum,
        ]
        .into_iter()
        .find(|c| c.name() == name)
    }

    /// The short form of `--tun-info` ("-c", "+c", "r+c").
    pub fn short(self) -> &'static str {
        match self {
            TunnelChecksum::NoCsum => "-c",
            TunnelChecksum::Csum => "+c",
            TunnelChecksum::RemCsum => "r+c",
        }
    }

    /// The option `-S` writes.
    pub fn option(self) -> &'static str {
        match self {
            TunnelChecksum::NoCsum => "--tun-nocsum",
            TunnelChecksum::Csum => "--tun-csum",
            TunnelChecksum::RemCsum => "--tun-remcsum",
        }
    }
}

/// Tunnel settings; only meaningful with [`Forward::Tunnel`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tunnel {
    pub kind: TunnelKind,
    /// Destination UDP port of GUE encapsulation (0 = none).
    pub port: u16,
    pub checksum: TunnelChecksum,
}

/// A reason to take no new connection on a server, whatever its weight (see
/// [`RealServerState::is_held_out`]). Overloaded is IPVS's; the others are uvs's pool
/// controls (`table::pool`), each off unless configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// IP_VS_DEST_F_OVERLOAD: the upper threshold (`-x`) was reached, until the lower
    /// one (`-y`) clears it.
    Overloaded,
    /// Draining: no new connection, and persistence templates naming the server are
    /// void, unless the drain keeps persistent clients
    /// ([`RealServerState::keeps_persistent`]).
    Draining,
    /// Passive ejection: taken out after consecutive failures, until its time passes.
    Ejected,
    /// At its `max_connections`: no slot until a connection ends.
    Full,
}

impl Hold {
    pub(super) fn bit(self) -> u8 {
        match self {
            Hold::Overloaded => 1,
            Hold::Draining => 2,
            Hold::Ejected => 4,
            Hold::Full => 8,
        }
    }
}

/// Failed connects, by reason.
#[derive(Debug, Default)]
pub struct ConnectFailures {
    pub refused: std::sync::atomic::AtomicU64,
    pub timeout: std::sync::atomic::AtomicU64,
    pub other: std::sync::atomic::AtomicU64,
    /// Not tried: the server is one of the director's own listen addresses (see
    /// `table::loops`).
    pub looped: std::sync::atomic::AtomicU64,
    /// No source to connect from (`source`, `source_ports`; `proxy::source`): every
    /// one tried was busy, or not a local address.
    pub source: std::sync::atomic::AtomicU64,
    /// The same failures (but loops), for the log, by cause (refused, timed out, no
    /// route, other, no free source port, source address not local:
    /// `proxy::failure_log::Cause`): said at once the first time and summed up at most
    /// every ten seconds.
    pub logged: crate::rate_limit::Tally<6>,
}

/// Live state of a real server, shared by `Arc` between table snapshots and with the data
/// plane, so edits keep counters and connection counts. The settings the data plane needs
/// between snapshots (weight, thresholds, whether the server is still in the table) are
/// mirrored here when a change is published (`table::effect`), never while it is applied.
#[derive(Debug)]
pub struct RealServerState {
    pub stats: Stats,
    pub active_conns: AtomicU32,
    pub inactive_conns: AtomicU32,
    pub persistent_conns: AtomicU32,
    /// Failed connects to this server, by reason.
    pub connect_failures: ConnectFailures,
    /// How long successful connects took.
    pub connect_latency: crate::stats::Latency,
    /// The cursor over the service's sources (`table::source::Pool::at`), turned by
    /// each connect to this server of a service with `source` or `source_ports`: per
    /// server, so that each server's connects use every source.
    pub source_cursor: std::sync::atomic::AtomicUsize,
    /// Why the server takes no new connection now, whatever its weight: bits of
    /// [`Hold`] (IPVS's IP_VS_DEST_F_OVERLOAD is one of them). One atomic, so the
    /// schedulers' test costs one load however many pool controls exist.
    pub(super) hold: AtomicU8,
    /// Connections (TCP) and flows (UDP) open now: from the entry's opening to the end
    /// of its task, not counting entries kept for TIME_WAIT or CLOSE. What a drain
    /// waits for and what `max_connections` limits (`table::limit::Slot` keeps it: a
    /// slot is taken when the server is chosen and given back when the entry leaves).
    pub open_conns: AtomicU32,
    /// Passive ejection: failures in a row, ejections, when the one in force ends
    /// (`table::ejection`; untouched unless the service configures it).
    pub ejection: super::ejection::Ejection,
    /// The slow-start window and ramp (`table::slow_start`), read per pick.
    pub slow_start: super::slow_start::SlowStart,
    /// `max_connections` (0: no limit), mirrored at publish (`table::limit`).
    pub(super) max_conns: AtomicU32,
    /// The queue of the server's service, which a freed slot wakes (set at publish;
    /// a server's state belongs to one service for its whole life).
    pub(super) queue: std::sync::OnceLock<Arc<super::queue::Queue>>,
    /// IP_VS_DEST_F_AVAILABLE: false once the server is deleted from its service.
    available: AtomicBool,
    /// A drain that keeps persistent clients (`uvs drain --keep-persistent`): the
    /// templates naming the server stay usable while it is held Draining.
    keep_persistent: AtomicBool,
    weight: AtomicU32,
    u_threshold: AtomicU32,
    l_threshold: AtomicU32,
}

impl Default for RealServerState {
    fn default() -> RealServerState {
        RealServerState {
            stats: Stats::default(),
            active_conns: AtomicU32::new(0),
            inactive_conns: AtomicU32::new(0),
            persistent_conns: AtomicU32::new(0),
            connect_failures: ConnectFailures::default(),
            connect_latency: crate::stats::Latency::default(),
            source_cursor: std::sync::atomic::AtomicUsize::new(0),
            hold: AtomicU8::new(0),
            open_conns: AtomicU32::new(0),
            ejection: super::ejection::Ejection::default(),
            slow_start: super::slow_start::SlowStart::default(),
            max_conns: AtomicU32::new(0),
            queue: std::sync::OnceLock::new(),
            available: AtomicBool::new(true),
            keep_persistent: AtomicBool::new(false),
            weight: AtomicU32::new(0),
            u_threshold: AtomicU32::new(0),
            l_threshold: AtomicU32::new(0),
        }
    }
}

impl RealServerState {
    pub fn active(&self) -> u32 {
        self.active_conns.load(Relaxed)
    }

    pub fn inactive(&self) -> u32 {
        self.inactive_conns.load(Relaxed)
    }

    /// IPVS's connection overhead: `(active << 8) + inactive`, what lc and wlc compare.
    pub fn overhead(&self) -> u64 {
        (u64::from(self.active()) << 8) + u64::from(self.inactive())
    }

    /// IPVS's overload: the upper threshold (`-x`) was reached.
    pub fn is_overloaded(&self) -> bool {
        self.holds(Hold::Overloaded)
    }

    /// Whether `why` holds the server out of scheduling now.
    pub fn holds(&self, why: Hold) -> bool {
        self.hold.load(Relaxed) & why.bit() != 0
    }

    /// Whether anything holds the server out of scheduling now (overloaded, ejected,
    /// at its connection limit, draining): what every scheduler tests where IPVS tests
    /// IP_VS_DEST_F_OVERLOAD.
    pub fn is_held_out(&self) -> bool {
        self.hold.load(Relaxed) != 0
    }

    /// Whether a pool control (not IPVS's overload) holds the server out: for the
    /// tests where the kernel looks at the weight but not at IP_VS_DEST_F_OVERLOAD
    /// (lblc's and lblcr's remembered server).
    pub fn is_held_by_pool(&self) -> bool {
        self.hold.load(Relaxed) & !Hold::Overloaded.bit() != 0
    }

    /// Sets or clears one reason to hold the server out; true when this call changed it.
    pub fn set_hold(&self, why: Hold, on: bool) -> bool {
        let before = if on {
            self.hold.fetch_or(why.bit(), Relaxed)
        } else {
            self.hold.fetch_and(!why.bit(), Relaxed)
        };
        (before & why.bit() != 0) != on
    }

    /// Connections and flows open now (see `open_conns`).
    pub fn open(&self) -> u32 {
        self.open_conns.load(Relaxed)
    }

    /// Begins a slow start now if the server has a window (its own `slow_start`, else
    /// its service's); a ramp in force starts over. The passive ejection calls it when a
    /// server is readmitted; the table's publish calls it when a server is added to a
    /// running service or its weight goes from 0 to above 0.
    pub fn begin_slow_start(&self) {
        self.slow_start.begin();
    }

    /// The share of its picks the server takes now, in thousandths, while it ramps
    /// (None: all of them). See `table::slow_start`.
    pub fn slow_start_share(&self) -> Option<u32> {
        self.slow_start.share()
    }

    /// The connections a drain waits for: those open now through the data plane, or
    /// in kernel mode (where nothing opens through uvs) the kernel's active
    /// connections as mirrored here. Entries kept for TIME_WAIT or CLOSE count in
    /// neither.
    pub fn connections_left(&self) -> u32 {
        self.open().max(self.active())
    }

    pub fn is_available(&self) -> bool {
        self.available.load(Relaxed)
    }

    /// Whether the server drains keeping its persistent clients: templates naming it
    /// stay usable although it is held Draining (`persist`).
    pub fn keeps_persistent(&self) -> bool {
        self.keep_persistent.load(Relaxed)
    }

    /// Mirrors a published drain (`Some(keep_persistent)`) or undrain (None): the hold
    /// Draining, and whether templates naming the server stay usable.
    pub(crate) fn set_draining(&self, drain: Option<bool>, _: &CarryingOut) {
        self.keep_persistent.store(drain.unwrap_or(false), Relaxed);
        self.set_hold(Hold::Draining, drain.is_some());
    }

    /// The weight now (it may change after a connection picked the server).
    pub fn weight(&self) -> u32 {
        self.weight.load(Relaxed)
    }

    fn total(&self) -> u64 {
        u64::from(self.active()) + u64::from(self.inactive())
    }

    /// A connection is bound to this server (ip_vs_bind_dest): counted, and the upper
    /// threshold may mark the server overloaded.
    pub fn bind_connection(&self, active: bool) {
        if active {
            self.active_conns.fetch_add(1, Relaxed);
        } else {
            self.inactive_conns.fetch_add(1, Relaxed);
        }
        let upper = self.u_threshold.load(Relaxed);
        if upper != 0 && self.total() >= u64::from(upper) {
            self.set_hold(Hold::Overloaded, true);
        }
    }

    /// A connection leaves this server (ip_vs_unbind_dest): the lower threshold, or 3/4 of
    /// the upper one, or nothing at all, clears the overload.
    pub fn unbind_connection(&self, active: bool) {
        let counter = if active {
            &self.active_conns
        } else {
            &self.inactive_conns
        };
        let _ = counter.fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
        let (lower, upper) = (
            self.l_threshold.load(Relaxed),
            self.u_threshold.load(Relaxed),
        );
        let clear = if lower != 0 {
            self.total() < u64::from(lower)
        } else if upper != 0 {
            self.total() * 4 < u64::from(upper) * 3
        } else {
            true
        };
        if clear {
            self.set_hold(Hold::Overloaded, false);
        }
    }

    /// A bound connection moves between the active and inactive counts.
    pub fn set_connection_active(&self, active: bool) {
        let (from, to) = if active {
            (&self.inactive_conns, &self.active_conns)
        } else {
            (&self.active_conns, &self.inactive_conns)
        };
        let _ = from.fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
        to.fetch_add(1, Relaxed);
    }

    /// The state of a server just added (nothing shares it yet): these settings
    /// (`slow_start_ms`: its slow-start window, 0 for none), available, not overloaded,
    /// no connections, not ramping (the publish begins the ramp, `table::effect`).
    pub(crate) fn with_settings(
        weight: u32,
        u_threshold: u32,
        l_threshold: u32,
        slow_start_ms: u32,
    ) -> RealServerState {
        let state = RealServerState::default();
        state.slow_start.set_window(slow_start_ms);
        state.weight.store(weight, Relaxed);
        state.u_threshold.store(u_threshold, Relaxed);
        state.l_threshold.store(l_threshold, Relaxed);
        state
    }

    /// Mirrors an edited server's settings, once the edit is published. Raising the
    /// upper threshold, or removing it, clears the overload, as `__ip_vs_update_dest`
    /// does.
    pub(crate) fn configure(
        &self,
        weight: u32,
        u_threshold: u32,
        l_threshold: u32,
        _: &CarryingOut,
    ) {
        let old_upper = self.u_threshold.swap(u_threshold, Relaxed);
        if u_threshold == 0 || u_threshold > old_upper {
            self.set_hold(Hold::Overloaded, false);
        }
        self.weight.store(weight, Relaxed);
        self.l_threshold.store(l_threshold, Relaxed);
        self.available.store(true, Relaxed);
    }

    /// Mirrors the server's slow-start window once a change is published, and begins a
    /// ramp when the change brings the server in (`begin`; see `table::effect`).
    pub(crate) fn configure_slow_start(&self, window_ms: u32, begin: bool, _: &CarryingOut) {
        self.slow_start.set_window(window_ms);
        if begin {
            self.slow_start.begin();
        }
    }

    /// The server left its service, and that is published: persistence templates
    /// pointing at it are void.
    pub(crate) fn retire(&self, _: &CarryingOut) {
        self.available.store(false, Relaxed);
    }
}

/// One real server of a service.
#[derive(Debug, Clone)]
pub struct RealServer {
    pub addr: IpAddr,
    pub port: u16,
    /// The weight in force: what the schedulers, listings, `-S` and the kernel mirror
    /// use; 0 while the server drains.
    pub weight: u32,
    /// The weight the last add or edit asked for ([`RealServer::config`]): what the
    /// server has again when a drain is undone.
    pub asked_weight: u32,
    /// The server's timed drain, while it drains (`table::pool`).
    pub drain: Option<crate::table::pool::Drain>,
    /// The last weight that was not zero (the weight given when added): maglev keeps a
    /// quiesced server's slots with it.
    pub last_weight: u32,
    pub forward: Forward,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub tunnel: Tunnel,
    /// uvs's own settings (the pool controls' per-server keys).
    pub options: crate::table::ServerOptions,
    pub state: Arc<RealServerState>,
}

impl RealServer {
    /// What `-a` / `-e` would set to make this server as it is: the asked weight (a
    /// draining server's weight in force is 0, its asked weight comes back on undrain).
    pub fn config(&self) -> crate::table::ServerConfig {
        crate::table::ServerConfig {
            addr: self.addr,
            port: self.port,
            forward: self.forward,
            weight: i32::try_from(self.asked_weight).unwrap_or(i32::MAX),
            u_threshold: self.u_threshold,
            l_threshold: self.l_threshold,
            tunnel: self.tunnel,
            options: self.options,
        }
    }

    /// Whether the server takes new connections now: weight above zero and not held
    /// out (overloaded, or one of the pool controls' holds:
    /// [`RealServerState::is_held_out`]). What every scheduler asks of a server.
    pub fn is_usable(&self) -> bool {
        self.weight > 0 && !self.state.is_held_out()
    }

    /// The weight IPVS would show for the server now (listings, `-S`, metrics): its
    /// weight, or while it ramps (slow start) the weight times the share in force,
    /// rounded up (`slow_start::weight_at`). An ejection, like IPVS's overload, is a
    /// hold of the moment and leaves the weight as it is (`uvs status` says it).
    pub fn weight_in_force(&self) -> u32 {
        self.state.slow_start_share().map_or(self.weight, |share| {
            super::slow_start::weight_at(self.weight, share)
        })
    }

    /// What IPVS holds of this server (the kernel mirror's comparison and requests):
    /// its settings with the weight in force and none of uvs's own options.
    pub fn ipvs_config(&self) -> crate::table::ServerConfig {
        crate::table::ServerConfig {
            weight: i32::try_from(self.weight).unwrap_or(i32::MAX),
            options: crate::table::ServerOptions::default(),
            ..self.config()
        }
    }

    /// Where a connection or datagram for this server goes when the client reached
    /// `local_port`: a server without a port is reached on the port the client used.
    pub fn destination(&self, local_port: u16) -> std::net::SocketAddr {
        let port = if self.port == 0 {
            local_port
        } else {
            self.port
        };
        std::net::SocketAddr::new(self.addr, port)
    }

    pub fn key(&self) -> ServerKey {
        ServerKey {
            addr: self.addr,
            port: self.port,
        }
    }
}

/// The index of the server with this key in `servers`, trying `hint` first: a list
/// changes only with the table, so a remembered index is nearly always still right and
/// the per-connection path does not search the list.
pub fn locate(servers: &[RealServer], key: &ServerKey, hint: usize) -> Option<usize> {
    match servers.get(hint) {
        Some(s) if s.key() == *key => Some(hint),
        _ => servers.iter().position(|s| s.key() == *key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_names_read_back_and_are_serde_names() {
        for kind in [TunnelKind::Ipip, TunnelKind::Gue, TunnelKind::Gre] {
            assert_eq!(TunnelKind::from_name(kind.name()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
        }
        for checksum in [
            TunnelChecksum::NoCsum,
            TunnelChecksum::Csum,
            TunnelChecksum::RemCsum,
        ] {
            assert_eq!(TunnelChecksum::from_name(checksum.name()), Some(checksum));
            let json = serde_json::to_string(&checksum).unwrap();
            assert_eq!(json, format!("\"{}\"", checksum.name()));
        }
        assert_eq!(TunnelKind::from_name("vxlan"), None);
        assert_eq!(TunnelChecksum::from_name("+c"), None);
    }

    #[test]
    fn thresholds_set_and_clear_overload_as_ipvs_does() {
        let proof = CarryingOut::in_a_test();
        let s = RealServerState::default();
        s.configure(1, 4, 0, &proof);
        for _ in 0..3 {
            s.bind_connection(true);
        }
        assert!(!s.is_overloaded());
        s.bind_connection(false);
        assert!(s.is_overloaded(), "4 connections reach the upper threshold");
        s.unbind_connection(true);
        assert!(s.is_overloaded(), "3 * 4 is not below 4 * 3");
        s.unbind_connection(true);
        assert!(!s.is_overloaded(), "2 * 4 < 4 * 3 clears it");

        let l = RealServerState::default();
        l.configure(1, 4, 2, &proof);
        for _ in 0..4 {
            l.bind_connection(true);
        }
        assert!(l.is_overloaded());
        l.unbind_connection(true);
        l.unbind_connection(true);
        assert!(l.is_overloaded(), "2 is not below the lower threshold 2");
        l.unbind_connection(true);
        assert!(!l.is_overloaded());

        let raised = RealServerState::default();
        raised.configure(1, 1, 0, &proof);
        raised.bind_connection(true);
        assert!(raised.is_overloaded());
        raised.configure(1, 5, 0, &proof);
        assert!(
            !raised.is_overloaded(),
            "raising the upper threshold clears it"
        );
    }
}
