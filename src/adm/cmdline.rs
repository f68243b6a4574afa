//! ipvsadm 1.31's command language: the option table, the parsing of every value, the
//! legality table of commands against options, and the checks made before anything is
//! sent, each with ipvsadm's message and in ipvsadm's order. The result is an
//! [`Invocation`] (a typed table command or a listing) or the way ipvsadm would stop.
//!
//! Called by `adm::session` for the command line and for every line of `-R`.

// How parsing ends (`Parsed`) is carried once per invocation, by value, through the
// option parser's early returns; a command with its service's options is larger
// than clippy's limit for an error type, and boxing it would cost more than it saves.
#![allow(clippy::result_large_err)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::inet::{atoi, inet_aton, string_to_number, strtol};
use super::listing::Format;
use super::names::Names;
use super::popt::{ArgMode, OptionDef, Popt};
use super::words::Words;
use crate::table::{
    Command, Family, Forward, ListenAddr, ListenRule, Netmask, Protocol, ProxyProtocol,
    ServerConfig, ServerKey, ServiceConfig, ServiceFlags, ServiceKey, ServiceOptions, SyncDaemon,
    SyncRole, Timeouts, Tunnel, TunnelChecksum, TunnelKind,
};

/// `MAX_TIMEOUT`: 31 days.
const MAX_TIMEOUT: i64 = 86400 * 31;
/// `IPVS_SVC_PERSISTENT_TIMEOUT`: what `-p` without a value means.
pub const DEFAULT_PERSISTENT_TIMEOUT: u32 = 360;
const INT_MAX: i64 = i32::MAX as i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    AddService,
    EditService,
    DeleteService,
    Clear,
    List,
    ListLower,
    Zero,
    AddServer,
    EditServer,
    DeleteServer,
    Set,
    Help,
    Version,
    Restore,
    Save,
    StartDaemon,
    StopDaemon,
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masquerading,
    Ipip,
    Gatewaying,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastInterface,
    SyncId,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNoCsum,
    TunCsum,
    TunRemCsum,
    AddListener,
    DeleteListener,
    Mark,
    Listeners,
    ConnectTimeout,
    ProxyProtocol,
    Freebind,
}

const fn opt(long: &'static str, short: Option<char>, arg: ArgMode, tag: Tag) -> OptionDef<Tag> {
    OptionDef {
        long,
        short,
        arg,
        tag,
    }
}

use ArgMode::{None as NoArg, Optional, Required};

/// ipvsadm's popt table, in its order (the first match wins: `--list` is `-L`).
const OPTIONS: &[OptionDef<Tag>] = &[
    opt("add-service", Some('A'), NoArg, Tag::AddService),
    opt("edit-service", Some('E'), NoArg, Tag::EditService),
    opt("delete-service", Some('D'), NoArg, Tag::DeleteService),
    opt("clear", Some('C'), NoArg, Tag::Clear),
    opt("list", Some('L'), NoArg, Tag::List),
    opt("list", Some('l'), NoArg, Tag::ListLower),
    opt("zero", Some('Z'), NoArg, Tag::Zero),
    opt("add-server", Some('a'), NoArg, Tag::AddServer),
    opt("edit-server", Some('e'), NoArg, Tag::EditServer),
    opt("delete-server", Some('d'), NoArg, Tag::DeleteServer),
    opt("set", None, NoArg, Tag::Set),
    opt("help", Some('h'), NoArg, Tag::Help),
    opt("version", Some('v'), NoArg, Tag::Version),
    opt("restore", Some('R'), NoArg, Tag::Restore),
    opt("save", Some('S'), NoArg, Tag::Save),
    opt("start-daemon", None, Required, Tag::StartDaemon),
    opt("stop-daemon", None, Required, Tag::StopDaemon),
    opt("tcp-service", Some('t'), Required, Tag::Tcp),
    opt("udp-service", Some('u'), Required, Tag::Udp),
    opt("sctp-service", None, Required, Tag::Sctp),
    opt("fwmark-service", Some('f'), Required, Tag::Fwmark),
    opt("scheduler", Some('s'), Required, Tag::Scheduler),
    opt("persistent", Some('p'), Optional, Tag::Persistent),
    opt("netmask", Some('M'), Required, Tag::Netmask),
    opt("real-server", Some('r'), Required, Tag::RealServer),
    opt("masquerading", Some('m'), NoArg, Tag::Masquerading),
    opt("ipip", Some('i'), NoArg, Tag::Ipip),
    opt("gatewaying", Some('g'), NoArg, Tag::Gatewaying),
    opt("weight", Some('w'), Required, Tag::Weight),
    opt("u-threshold", Some('x'), Required, Tag::UThreshold),
    opt("l-threshold", Some('y'), Required, Tag::LThreshold),
    opt("numeric", Some('n'), NoArg, Tag::Numeric),
    opt("connection", Some('c'), NoArg, Tag::Connection),
    opt("mcast-interface", None, Required, Tag::McastInterface),
    opt("syncid", None, Required, Tag::SyncId),
    opt("timeout", None, NoArg, Tag::Timeout),
    opt("daemon", None, NoArg, Tag::Daemon),
    opt("stats", None, NoArg, Tag::Stats),
    opt("rate", None, NoArg, Tag::Rate),
    opt("thresholds", None, NoArg, Tag::Thresholds),
    opt("persistent-conn", None, NoArg, Tag::PersistentConn),
    opt("nosort", None, NoArg, Tag::NoSort),
    opt("sort", None, NoArg, Tag::Sort),
    opt("exact", Some('X'), NoArg, Tag::Exact),
    opt("ipv6", Some('6'), NoArg, Tag::Ipv6),
    opt("ops", Some('o'), NoArg, Tag::Ops),
    opt("pe", None, Required, Tag::Pe),
    opt("sched-flags", Some('b'), Required, Tag::SchedFlags),
    opt("mcast-group", None, Required, Tag::McastGroup),
    opt("mcast-port", None, Required, Tag::McastPort),
    opt("mcast-ttl", None, Required, Tag::McastTtl),
    opt("sync-maxlen", None, Required, Tag::SyncMaxlen),
    opt("tun-info", None, NoArg, Tag::TunInfo),
    opt("tun-type", None, Required, Tag::TunType),
    opt("tun-port", None, Required, Tag::TunPort),
    opt("tun-nocsum", None, NoArg, Tag::TunNoCsum),
    opt("tun-csum", None, NoArg, Tag::TunCsum),
    opt("tun-remcsum", None, NoArg, Tag::TunRemCsum),
    // uvs's own commands and options.
    opt("add-listener", None, NoArg, Tag::AddListener),
    opt("delete-listener", None, NoArg, Tag::DeleteListener),
    opt("mark", None, Required, Tag::Mark),
    opt("listeners", None, NoArg, Tag::Listeners),
    opt("connect-timeout", None, Required, Tag::ConnectTimeout),
    opt("proxy-protocol", None, Required, Tag::ProxyProtocol),
    opt("freebind", None, NoArg, Tag::Freebind),
];

/// Every option the parser takes, in its table's order, without what it does: the
/// words `adm::manual` describes for uvsadm(8) and the shell completions, read from
/// the very table [`parse`] reads so that the two cannot drift. `--list` comes twice
/// (`-L` and `-l`), as in ipvsadm's table; uvsadm's `--socket` is taken out before
/// parsing (`adm::take_socket_option`) and is not here.
pub fn options() -> impl Iterator<Item = OptionDef<()>> {
    OPTIONS.iter().map(|d| OptionDef {
        long: d.long,
        short: d.short,
        arg: d.arg,
        tag: (),
    })
}

/// The commands, in the order of ipvsadm's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
    AddListener,
    DeleteListener,
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Del => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddDest => "add-server",
            Cmd::DelDest => "delete-server",
            Cmd::EditDest => "edit-server",
            Cmd::Timeout => "set",
            Cmd::StartDaemon => "start-daemon",
            Cmd::StopDaemon => "stop-daemon",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
            Cmd::AddListener => "add-listener",
            Cmd::DeleteListener => "delete-listener",
        }
    }

    /// The row of the legality table: one character per option (see [`Opt`]):
    /// '+' required, 'x' illegal, '1' at most one of the '1's, '.' optional. The first
    /// 34 columns are ipvsadm's; the last 5 are uvs's own options.
    fn legality(self) -> &'static [u8; Opt::COUNT] {
        //                      n c s s p M r f w x y m t d s r t p s s e o p b g p t s t t t n c r m l c p f
        //                          v       w d         c o m t t h c r i x p e   r o t i i y p o s e a i t p b
        match self {
            Cmd::Add | Cmd::Edit => b"xx+...xxxxxxxxxxxxxxx...xxxxxxxxxxxx...",
            Cmd::Del => b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::List => b".11xxxxxxxxx11.......xxxxxxx.xxxxxx1xxx",
            Cmd::AddDest | Cmd::EditDest => b"xx+xxx+....xxxxxxxxxxxxxxxxxx.....xxxxx",
            Cmd::DelDest => b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::StartDaemon => b"xxxxxxxxxxx.xxxxxxx.xxxx....xxxxxxxxxxx",
            Cmd::StopDaemon => b"xxxxxxxxxxxxxxxxxxx.xxxxxxxxxxxxxxxxxxx",
            Cmd::Save => b".xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::Zero => b"xx.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::AddListener => b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.xxxx",
            Cmd::DeleteListener => b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::Flush | Cmd::Timeout | Cmd::Restore => b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        }
    }
}

/// The options ipvsadm tracks for legality, by index (OPTC_*), with their names.
struct Opt;

impl Opt {
    const COUNT: usize = 39;
    const NUMERIC: usize = 0;
    const CONNECTION: usize = 1;
    const SERVICE: usize = 2;
    const SCHEDULER: usize = 3;
    const PERSISTENT: usize = 4;
    const NETMASK: usize = 5;
    const SERVER: usize = 6;
    const FORWARD: usize = 7;
    const WEIGHT: usize = 8;
    const UTHRESHOLD: usize = 9;
    const LTHRESHOLD: usize = 10;
    const MCAST: usize = 11;
    const TIMEOUT: usize = 12;
    const DAEMON: usize = 13;
    const STATS: usize = 14;
    const RATE: usize = 15;
    const THRESHOLDS: usize = 16;
    const PERSISTENTCONN: usize = 17;
    const NOSORT: usize = 18;
    const SYNCID: usize = 19;
    const EXACT: usize = 20;
    const ONEPACKET: usize = 21;
    const PERSISTENCE_ENGINE: usize = 22;
    const SCHED_FLAGS: usize = 23;
    const MCAST_GROUP: usize = 24;
    const MCAST_PORT: usize = 25;
    const MCAST_TTL: usize = 26;
    const SYNC_MAXLEN: usize = 27;
    const TUN_INFO: usize = 28;
    const TUN_TYPE: usize = 29;
    const TUN_PORT: usize = 30;
    const TUN_NOCSUM: usize = 31;
    const TUN_CSUM: usize = 32;
    const TUN_REMCSUM: usize = 33;
    const MARK: usize = 34;
    const LISTENERS: usize = 35;
    const CONNECT_TIMEOUT: usize = 36;
    const PROXY_PROTOCOL: usize = 37;
    const FREEBIND: usize = 38;

    const NAMES: [&'static str; Opt::COUNT] = [
        "numeric",
        "connection",
        "service-address",
        "scheduler",
        "persistent",
        "netmask",
        "real-server",
        "forwarding-method",
        "weight",
        "u-threshold",
        "l-threshold",
        "mcast-interface",
        "timeout",
        "daemon",
        "stats",
        "rate",
        "thresholds",
        "persistent-conn",
        "nosort",
        "syncid",
        "exact",
        "ops",
        "pe",
        "sched-flags",
        "mcast-group",
        "mcast-port",
        "mcast-ttl",
        "sync-maxlen",
        "tun-info",
        "tun-type",
        "tun-port",
        "tun-nocsum",
        "tun-csum",
        "tun-remcsum",
        "mark",
        "listeners",
        "connect-timeout",
        "proxy-protocol",
        "freebind",
    ];
}

/// What a listing command shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListTarget {
    All,
    Service(ServiceKey),
    Connections,
    Timeouts,
    Daemons,
    /// uvs's listen rules (`--listeners`).
    Listeners,
}

/// A command line that parsed and passed ipvsadm's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    List { target: ListTarget, format: Format },
    Save { format: Format },
    Restore,
    Apply(Command),
}

/// How parsing ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Run(Invocation),
    /// `-h`: usage on stdout, exit 0.
    Help,
    /// `-v`: version on stdout, exit 0.
    Version,
    /// ipvsadm's `fail(2, ...)`: the message on stderr, exit 2.
    Fail(String),
    /// ipvsadm's `tryhelp_exit(-1)`: the "Try ..." line, exit 255.
    TryHelp,
    /// A popt error after the command: "word: message" on stderr, result -1.
    BadArgument {
        word: String,
        message: &'static str,
    },
}

/// Address, port and the rest of ipvsadm's `ipvs_service_t` while parsing.
#[derive(Debug, Clone)]
struct ServiceArgs {
    /// 0 (unset), 2 or 10.
    af: u16,
    protocol: Option<Protocol>,
    addr: IpAddr,
    port: u16,
    fwmark: u32,
    sched_name: String,
    flags: u32,
    timeout: u32,
    /// An IPv4 mask (host order) or, for IPv6, a prefix length, as ipvsadm keeps it.
    netmask: u32,
    pe_name: String,
    options: ServiceOptions,
}

#[derive(Debug, Clone)]
struct ServerArgs {
    af: u16,
    addr: IpAddr,
    port: u16,
    forward: Forward,
    weight: i64,
    u_threshold: i64,
    l_threshold: i64,
    tunnel: Tunnel,
}

const SERVICE_ADDR: u8 = 1;
const SERVICE_PORT: u8 = 2;

/// Whether parsing a `-R` line (negative fwmarks, as `-S` writes marks above 2^31-1,
/// are read back there) or the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    CommandLine,
    Restore,
}

struct Parser<'n> {
    names: &'n mut dyn Names,
    context: Context,
    cmd: Option<Cmd>,
    options: u64,
    format: Format,
    svc: ServiceArgs,
    dest: ServerArgs,
    daemon: SyncDaemon,
    sched_flags_arg: String,
    mark: Option<u32>,
}

/// `--connect-timeout`: whole seconds, or milliseconds with an `ms` suffix; 1 ms to 1 h.
fn parse_connect_timeout(v: &str) -> Option<u32> {
    let ms = match v.strip_suffix("ms") {
        Some(ms) => string_to_number(ms, 1, 3_600_000)?,
        None => string_to_number(v.strip_suffix('s').unwrap_or(v), 1, 3600)? * 1000,
    };
    Some(ms as u32)
}

/// `--mcast-interface`'s value as ipvsadm 1.31 keeps it: `strncpy(mcast_ifn, optarg,
/// IP_VS_IFNAME_MAXLEN - 1)` into a zeroed field, so its bytes up to a NUL (which a
/// line of `-R` input can hold), at most the first 15, cut wherever the 15th falls.
/// What is longer is cut, silently, as ipvsadm does; cut bytes that are not UTF-8 are
/// refused with an error naming the option, as uvs keeps interface names as text (the
/// `[sync]` section of uvs.toml, which cannot hold other bytes, says how to run a sync
/// daemon the table has).
fn mcast_interface(bytes: &[u8]) -> Result<String, Parsed> {
    let given = bytes.split(|&b| b == 0).next().unwrap_or_default();
    let kept = &given[..given.len().min(crate::table::sync::INTERFACE_MAX)];
    match std::str::from_utf8(kept) {
        Ok(name) => Ok(name.to_string()),
        Err(_) => Err(Parsed::Fail(format!(
            "illegal mcast-interface `{}' specified: the name's first {} bytes (what ipvsadm keeps of it) are not UTF-8, and uvs keeps interface names as text",
            kept.escape_ascii(),
            crate::table::sync::INTERFACE_MAX,
        ))),
    }
}

fn c_truncate(s: &str, max: usize) -> String {
    let mut cut = s.len().min(max);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s[..cut].to_string()
}

impl<'n> Parser<'n> {
    fn new(names: &'n mut dyn Names, context: Context) -> Parser<'n> {
        Parser {
            names,
            context,
            cmd: None,
            options: 0,
            format: Format::default(),
            svc: ServiceArgs {
                af: 0,
                protocol: None,
                addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port: 0,
                fwmark: 0,
                sched_name: String::new(),
                flags: 0,
                timeout: 0,
                netmask: 0xffff_ffff,
                pe_name: String::new(),
                options: ServiceOptions::default(),
            },
            dest: ServerArgs {
                af: 0,
                addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port: 0,
                forward: Forward::Route,
                weight: 1,
                u_threshold: 0,
                l_threshold: 0,
                tunnel: Tunnel::default(),
            },
            daemon: SyncDaemon::new(SyncRole::Master, ""),
            sched_flags_arg: String::new(),
            mark: None,
        }
    }

    fn set_option(&mut self, index: usize) -> Result<(), Parsed> {
        let bit = 1u64 << index;
        if self.options & bit != 0 {
            return Err(Parsed::Fail(format!(
                "multiple '{}' options specified",
                Opt::NAMES[index]
            )));
        }
        self.options |= bit;
        Ok(())
    }

    fn has(&self, index: usize) -> bool {
        self.options & (1u64 << index) != 0
    }

    /// ipvsadm's `parse_service` into `target`: SERVICE_ADDR | SERVICE_PORT, or 0.
    fn parse_service(&mut self, buf: &str, target: &mut ServiceArgs) -> u8 {
        if buf.bytes().all(|b| b.is_ascii_digit()) {
            return 0;
        }
        let mut host = buf;
        let mut port: Option<&str> = None;
        if let Some(inner) = buf.strip_prefix('[') {
            let Some(close) = inner.find(']') else {
                return 0;
            };
            let Some(after) = inner[close + 1..].strip_prefix(':') else {
                return 0;
            };
            host = &inner[..close];
            port = Some(after);
        }
        if let Ok(v6) = host.parse::<Ipv6Addr>() {
            target.addr = IpAddr::V6(v6);
            target.af = 10;
            target.netmask = 128;
        } else {
            // The port is looked for again in what is left (so "[1.2.3.4]:80" loses it).
            port = None;
            if let Some((h, p)) = host.rsplit_once(':') {
                host = h;
                port = Some(p);
            }
            let v4 = inet_aton(host).or_else(|| self.names.host_addr(host));
            match v4 {
                Some(a) => {
                    target.addr = IpAddr::V4(a);
                    target.af = 2;
                }
                None => return 0,
            }
        }
        let mut result = SERVICE_ADDR;
        if let Some(p) = port {
            result |= SERVICE_PORT;
            let number = string_to_number(p, 0, 65535).map(|n| n as u16).or_else(|| {
                let proto = target.protocol?;
                self.names.service_port(p, proto.services_name())
            });
            match number {
                Some(n) => target.port = n,
                None => return 0,
            }
        }
        result
    }

    fn parse_timeout(&self, value: Option<&str>, min: i64) -> Result<u32, Parsed> {
        let Some(value) = value else {
            return Ok(DEFAULT_PERSISTENT_TIMEOUT);
        };
        string_to_number(value, min, MAX_TIMEOUT)
            .map(|n| n as u32)
            .ok_or_else(|| Parsed::Fail(format!("invalid timeout value `{value}' specified")))
    }

    fn parse_fwmark(&self, value: &str) -> Result<u32, Parsed> {
        let r = strtol(value);
        let whole = r.end == value.len() && r.end != 0 && !r.overflow;
        if whole && (1..=u32::MAX as i64).contains(&r.value) {
            return Ok(r.value as u32);
        }
        // `-S` writes marks above 2^31-1 as negative numbers (ipvsadm 1.31 prints them
        // with %d); reading them back makes save and restore round-trip.
        if whole && self.context == Context::Restore && (i32::MIN as i64..0).contains(&r.value) {
            return Ok(r.value as i32 as u32);
        }
        Err(Parsed::Fail(format!(
            "invalid fwmark value `{value}' specified"
        )))
    }

    fn number(value: &str, min: i64, max: i64, what: &str) -> Result<i64, Parsed> {
        string_to_number(value, min, max)
            .ok_or_else(|| Parsed::Fail(format!("illegal {what} specified")))
    }

    /// One option and its value (`bytes`: the value as given, which differs from
    /// `value` only for a word that is not UTF-8).
    fn handle(
        &mut self,
        tag: Tag,
        value: Option<String>,
        bytes: &[u8],
        bad_word: &str,
    ) -> Result<(), Parsed> {
        let v = value.as_deref().unwrap_or("");
        match tag {
            Tag::Tcp | Tag::Udp | Tag::Sctp => {
                self.set_option(Opt::SERVICE)?;
                self.svc.protocol = Some(match tag {
                    Tag::Tcp => Protocol::Tcp,
                    Tag::Udp => Protocol::Udp,
                    _ => Protocol::Sctp,
                });
                let mut svc = self.svc.clone();
                let parsed = self.parse_service(v, &mut svc);
                self.svc = svc;
                if parsed & SERVICE_ADDR == 0 {
                    return Err(Parsed::Fail(
                        "illegal virtual server address[:port] specified".into(),
                    ));
                }
            }
            Tag::Fwmark => {
                self.set_option(Opt::SERVICE)?;
                self.svc.af = 2;
                self.svc.protocol = Some(Protocol::Tcp);
                self.svc.fwmark = self.parse_fwmark(v)?;
            }
            Tag::Scheduler => {
                self.set_option(Opt::SCHEDULER)?;
                self.svc.sched_name = c_truncate(v, 15);
            }
            Tag::Persistent => {
                self.set_option(Opt::PERSISTENT)?;
                self.svc.flags |= ServiceFlags::PERSISTENT;
                self.svc.timeout = self.parse_timeout(value.as_deref(), 1)?;
            }
            Tag::Netmask => {
                self.set_option(Opt::NETMASK)?;
                if self.svc.af != 10 {
                    let mask = inet_aton(v).or_else(|| self.names.host_addr(v));
                    match mask {
                        Some(m) => self.svc.netmask = u32::from(m),
                        None => {
                            return Err(Parsed::Fail(
                                "illegal virtual server persistent mask specified".into(),
                            ));
                        }
                    }
                } else {
                    let prefix = atoi(v);
                    if !(1..=128).contains(&prefix) {
                        return Err(Parsed::Fail("illegal ipv6 netmask specified".into()));
                    }
                    self.svc.netmask = prefix as u32;
                }
            }
            Tag::RealServer => {
                self.set_option(Opt::SERVER)?;
                let mut target = self.svc.clone();
                let parsed = self.parse_service(v, &mut target);
                self.dest.af = target.af;
                self.dest.addr = target.addr;
                self.dest.port = target.port;
                if parsed & SERVICE_ADDR == 0 {
                    return Err(Parsed::Fail(
                        "illegal real server address[:port] specified".into(),
                    ));
                }
                if parsed == SERVICE_ADDR {
                    self.dest.port = self.svc.port;
                }
            }
            Tag::Ipip | Tag::Gatewaying | Tag::Masquerading => {
                self.set_option(Opt::FORWARD)?;
                self.dest.forward = match tag {
                    Tag::Ipip => Forward::Tunnel,
                    Tag::Gatewaying => Forward::Route,
                    _ => Forward::Masq,
                };
            }
            Tag::Weight => {
                self.set_option(Opt::WEIGHT)?;
                self.dest.weight = Self::number(v, 0, INT_MAX, "weight")?;
            }
            Tag::UThreshold => {
                self.set_option(Opt::UTHRESHOLD)?;
                self.dest.u_threshold = Self::number(v, 0, INT_MAX, "u_threshold")?;
            }
            Tag::LThreshold => {
                self.set_option(Opt::LTHRESHOLD)?;
                self.dest.l_threshold = Self::number(v, 0, INT_MAX, "l_threshold")?;
            }
            Tag::Connection => self.set_option(Opt::CONNECTION)?,
            Tag::Numeric => {
                self.set_option(Opt::NUMERIC)?;
                self.format = self.format.with(Format::NUMERIC);
            }
            Tag::McastInterface => {
                self.set_option(Opt::MCAST)?;
                self.daemon.interface = mcast_interface(bytes)?;
            }
            Tag::SyncId => {
                self.set_option(Opt::SYNCID)?;
                self.daemon.syncid = Self::number(v, 0, 255, "syncid")? as u8;
            }
            Tag::Timeout => self.set_option(Opt::TIMEOUT)?,
            Tag::Daemon => self.set_option(Opt::DAEMON)?,
            Tag::Stats => self.flag(Opt::STATS, Format::STATS)?,
            Tag::Rate => self.flag(Opt::RATE, Format::RATE)?,
            Tag::Thresholds => self.flag(Opt::THRESHOLDS, Format::THRESHOLDS)?,
            Tag::PersistentConn => self.flag(Opt::PERSISTENTCONN, Format::PERSISTENT_CONN)?,
            Tag::NoSort => self.flag(Opt::NOSORT, Format::NOSORT)?,
            Tag::Sort => {}
            Tag::Exact => self.flag(Opt::EXACT, Format::EXACT)?,
            Tag::Ipv6 => {
                if self.svc.fwmark != 0 {
                    self.svc.af = 10;
                    self.svc.netmask = 128;
                } else {
                    return Err(Parsed::Fail("-6 used before -f\n".into()));
                }
            }
            Tag::Ops => {
                self.set_option(Opt::ONEPACKET)?;
                self.svc.flags |= ServiceFlags::ONE_PACKET;
            }
            Tag::Pe => {
                self.set_option(Opt::PERSISTENCE_ENGINE)?;
                self.svc.pe_name = c_truncate(v, 16);
            }
            Tag::SchedFlags => {
                self.set_option(Opt::SCHED_FLAGS)?;
                self.sched_flags_arg = c_truncate(v, 127);
            }
            Tag::McastGroup => {
                self.set_option(Opt::MCAST_GROUP)?;
                let group = if v.contains(':') {
                    match v.parse::<Ipv6Addr>() {
                        Ok(a) if a.is_multicast() => IpAddr::V6(a),
                        _ => return Err(Parsed::Fail(format!("invalid IPv6 mcast-group `{v}'"))),
                    }
                } else {
                    match v.parse::<Ipv4Addr>() {
                        Ok(a) if a.is_multicast() => IpAddr::V4(a),
                        _ => return Err(Parsed::Fail(format!("invalid IPv4 mcast-group `{v}'"))),
                    }
                };
                self.daemon.group = Some(group);
            }
            Tag::McastPort => {
                self.set_option(Opt::MCAST_PORT)?;
                self.daemon.port = Self::number(v, 1, 65535, "mcast-port")? as u16;
            }
            Tag::McastTtl => {
                self.set_option(Opt::MCAST_TTL)?;
                self.daemon.ttl = Self::number(v, 1, 255, "mcast-ttl")? as u8;
            }
            Tag::SyncMaxlen => {
                self.set_option(Opt::SYNC_MAXLEN)?;
                self.daemon.maxlen = Self::number(v, 1, 65535 - 20 - 8, "sync-maxlen")? as u16;
            }
            Tag::TunInfo => self.flag(Opt::TUN_INFO, Format::TUN_INFO)?,
            Tag::TunType => {
                self.set_option(Opt::TUN_TYPE)?;
                self.dest.tunnel.kind = TunnelKind::from_name(v)
                    .ok_or_else(|| Parsed::Fail("illegal tunnel type specified".into()))?;
            }
            Tag::TunPort => {
                self.set_option(Opt::TUN_PORT)?;
                self.dest.tunnel.port = Self::number(v, 1, 65535, "tunnel port")? as u16;
            }
            Tag::TunNoCsum => {
                self.set_option(Opt::TUN_NOCSUM)?;
                self.dest.tunnel.checksum = TunnelChecksum::NoCsum;
            }
            Tag::TunCsum => {
                self.set_option(Opt::TUN_CSUM)?;
                self.dest.tunnel.checksum = TunnelChecksum::Csum;
            }
            Tag::TunRemCsum => {
                self.set_option(Opt::TUN_REMCSUM)?;
                self.dest.tunnel.checksum = TunnelChecksum::RemCsum;
            }
            Tag::Mark => {
                self.set_option(Opt::MARK)?;
                self.mark =
                    Some(string_to_number(v, 1, i64::from(u32::MAX)).ok_or_else(|| {
                        Parsed::Fail(format!("invalid mark value `{v}' specified"))
                    })? as u32);
            }
            Tag::Listeners => self.set_option(Opt::LISTENERS)?,
            Tag::ConnectTimeout => {
                self.set_option(Opt::CONNECT_TIMEOUT)?;
                self.svc.options.connect_timeout_ms = parse_connect_timeout(v).ok_or_else(|| {
                    Parsed::Fail(format!(
                        "invalid connect timeout `{v}' specified (seconds, or milliseconds with ms, up to 3600 s)"
                    ))
                })?;
            }
            Tag::ProxyProtocol => {
                self.set_option(Opt::PROXY_PROTOCOL)?;
                self.svc.options.proxy_protocol = Some(match v {
                    "v1" | "1" => ProxyProtocol::V1,
                    "v2" | "2" => ProxyProtocol::V2,
                    _ => {
                        return Err(Parsed::Fail(format!(
                            "invalid PROXY protocol version `{v}' (v1 or v2)"
                        )));
                    }
                });
            }
            Tag::Freebind => {
                self.set_option(Opt::FREEBIND)?;
                self.svc.options.freebind = true;
            }
            // A command (or -h, -v) after the command.
            _ => return Err(Parsed::Fail(format!("invalid option `{bad_word}'"))),
        }
        Ok(())
    }

    fn flag(&mut self, index: usize, format: u32) -> Result<(), Parsed> {
        self.set_option(index)?;
        self.format = self.format.with(format);
        Ok(())
    }

    fn parse_sched_flags(&self) -> Result<u32, Parsed> {
        let sched = if self.svc.sched_name.is_empty() {
            "wlc"
        } else {
            self.svc.sched_name.as_str()
        };
        let arg = &self.sched_flags_arg;
        let mut flags = 0;
        let mut any = false;
        for flag in arg.split(',').filter(|f| !f.is_empty()) {
            any = true;
            let Some((bit, needs)) = ServiceFlags::scheduler_flag(flag) else {
                return Err(Parsed::Fail(format!("invalid scheduler flag `{flag}'")));
            };
            flags |= bit;
            if needs.is_some_and(|s| s != sched) {
                return Err(Parsed::Fail(format!(
                    "incompatible scheduler flag `{flag}'"
                )));
            }
        }
        if !any {
            // ipvsadm dereferences a null token here; refuse the empty list instead.
            return Err(Parsed::Fail(format!("invalid scheduler flag `{arg}'")));
        }
        Ok(flags)
    }

    /// `generic_opt_check` and `tunnel_opt_check`: each option of `options` against its
    /// rule, '+' required, 'x' illegal, '1' at most one of the '1's, '.' optional.
    /// `subject` completes the messages: "the 'list' command", "the 'gue' tunnel type".
    fn check_rules(&self, rules: &[u8], options: &[usize], subject: &str) -> Result<(), Parsed> {
        let mut first_exclusive: Option<usize> = None;
        for (rule, &j) in rules.iter().zip(options) {
            let name = Opt::NAMES[j];
            if !self.has(j) {
                if *rule == b'+' {
                    return Err(Parsed::Fail(format!(
                        "You need to supply the '{name}' option for {subject}"
                    )));
                }
                continue;
            }
            match rule {
                b'x' => {
                    return Err(Parsed::Fail(format!(
                        "Illegal '{name}' option with {subject}"
                    )));
                }
                b'1' => match first_exclusive {
                    None => first_exclusive = Some(j),
                    Some(last) => {
                        return Err(Parsed::Fail(format!(
                            "The option '{name}' conflicts with the '{}' option in {subject}",
                            Opt::NAMES[last]
                        )));
                    }
                },
                _ => {}
            }
        }
        Ok(())
    }

    fn check_legality(&self, cmd: Cmd) -> Result<(), Parsed> {
        let all: Vec<usize> = (0..Opt::COUNT).collect();
        self.check_rules(
            cmd.legality(),
            &all,
            &format!("the '{}' command", cmd.name()),
        )
    }

    fn check_tunnel(&self) -> Result<(), Parsed> {
        let kind = self.dest.tunnel.kind;
        //                           tun-port nocsum csum remcsum
        let rules: &[u8; 4] = match kind {
            TunnelKind::Ipip => b"xxxx",
            TunnelKind::Gue => b"+111",
            TunnelKind::Gre => b"x11x",
        };
        let options = [
            Opt::TUN_PORT,
            Opt::TUN_NOCSUM,
            Opt::TUN_CSUM,
            Opt::TUN_REMCSUM,
        ];
        self.check_rules(
            rules,
            &options,
            &format!("the '{}' tunnel type", kind.name()),
        )
    }

    fn service_key(&self) -> ServiceKey {
        if self.svc.fwmark != 0 {
            ServiceKey::Fwmark {
                mark: self.svc.fwmark,
                family: if self.svc.af == 10 {
                    Family::Inet6
                } else {
                    Family::Inet
                },
            }
        } else {
            ServiceKey::Inet {
                protocol: self.svc.protocol.unwrap_or(Protocol::Tcp),
                addr: self.svc.addr,
                port: self.svc.port,
            }
        }
    }

    fn service_config(&self) -> ServiceConfig {
        let key = self.service_key();
        ServiceConfig {
            key,
            scheduler: self.svc.sched_name.clone(),
            flags: ServiceFlags(self.svc.flags),
            timeout: self.svc.timeout,
            netmask: match key.family() {
                Family::Inet6 => Netmask::V6(self.svc.netmask),
                Family::Inet => Netmask::V4(Ipv4Addr::from(self.svc.netmask)),
            },
            pe: (!self.svc.pe_name.is_empty()).then(|| self.svc.pe_name.clone()),
            options: self.svc.options.clone(),
        }
    }

    fn server_config(&self) -> ServerConfig {
        ServerConfig {
            addr: self.dest.addr,
            port: self.dest.port,
            forward: self.dest.forward,
            weight: self.dest.weight as i32,
            u_threshold: self.dest.u_threshold as u32,
            l_threshold: self.dest.l_threshold as u32,
            tunnel: self.dest.tunnel,
            options: crate::table::ServerOptions::default(),
        }
    }
}

/// Parses one ipvsadm invocation (`args[0]` is the program name).
pub fn parse(args: &[String], names: &mut dyn Names, context: Context, posix: bool) -> Parsed {
    parse_words(&Words::from(args), names, context, posix)
}

/// [`parse`] of words given as bytes: an option ipvsadm copies as bytes
/// (`--mcast-interface`) sees the bytes of a word that is not UTF-8.
pub fn parse_words(words: &Words, names: &mut dyn Names, context: Context, posix: bool) -> Parsed {
    let args = words.text();
    let mut p = Parser::new(names, context);
    let mut popt = Popt::new(OPTIONS, args, posix);

    let cmd = match popt.next_option() {
        Some(Ok(found)) => match found.tag {
            Tag::AddService => Cmd::Add,
            Tag::EditService => Cmd::Edit,
            Tag::DeleteService => Cmd::Del,
            Tag::AddServer => Cmd::AddDest,
            Tag::EditServer => Cmd::EditDest,
            Tag::DeleteServer => Cmd::DelDest,
            Tag::Clear => Cmd::Flush,
            Tag::List | Tag::ListLower => Cmd::List,
            Tag::Zero => Cmd::Zero,
            Tag::Set => Cmd::Timeout,
            Tag::Restore => Cmd::Restore,
            Tag::Save => Cmd::Save,
            Tag::StartDaemon | Tag::StopDaemon => {
                let role = match found.value.as_deref() {
                    Some("master") => SyncRole::Master,
                    Some("backup") => SyncRole::Backup,
                    _ if found.tag == Tag::StartDaemon => {
                        return Parsed::Fail("illegal start-daemon parameter specified".into());
                    }
                    _ => return Parsed::Fail("illegal start_daemon specified".into()),
                };
                p.daemon.role = role;
                if found.tag == Tag::StartDaemon {
                    Cmd::StartDaemon
                } else {
                    Cmd::StopDaemon
                }
            }
            Tag::AddListener => Cmd::AddListener,
            Tag::DeleteListener => Cmd::DeleteListener,
            Tag::Help => return Parsed::Help,
            Tag::Version => return Parsed::Version,
            _ => return Parsed::TryHelp,
        },
        _ => return Parsed::TryHelp,
    };
    p.cmd = Some(cmd);

    while let Some(next) = popt.next_option() {
        match next {
            Ok(found) => {
                let bytes = found
                    .value
                    .as_deref()
                    .map(|v| words.bytes_of(found.word, v))
                    .unwrap_or_default();
                if let Err(stop) =
                    p.handle(found.tag, found.value.clone(), bytes, popt.bad_option())
                {
                    return stop;
                }
            }
            Err(e) => {
                return Parsed::BadArgument {
                    word: popt.bad_option().to_string(),
                    message: e.message(),
                };
            }
        }
    }

    let mut timeouts = Timeouts {
        tcp: 0,
        tcp_fin: 0,
        udp: 0,
    };
    if cmd == Cmd::Timeout {
        let values: Vec<String> = (0..3).map_while(|_| popt.next_leftover()).collect();
        if values.len() < 3 {
            return Parsed::Fail("--set option requires 3 timeout values".into());
        }
        let mut parsed = [0u32; 3];
        for (slot, v) in parsed.iter_mut().zip(&values) {
            match string_to_number(v, 0, MAX_TIMEOUT) {
                Some(n) => *slot = n as u32,
                None => return Parsed::Fail(format!("invalid timeout value `{v}' specified")),
            }
        }
        timeouts = Timeouts {
            tcp: parsed[0],
            tcp_fin: parsed[1],
            udp: parsed[2],
        };
    }
    if let Some(extra) = popt.next_leftover() {
        return Parsed::Fail(format!("unexpected argument {extra}"));
    }
    if p.has(Opt::SCHED_FLAGS) && !p.sched_flags_arg.is_empty() {
        match p.parse_sched_flags() {
            Ok(bits) => p.svc.flags = (p.svc.flags & !ServiceFlags::SCHED_MASK) | bits,
            Err(stop) => return stop,
        }
    }

    match finish(&mut p, cmd, timeouts) {
        Ok(invocation) => Parsed::Run(invocation),
        Err(stop) => stop,
    }
}

/// The checks after parsing, then the invocation.
fn finish(p: &mut Parser<'_>, cmd: Cmd, timeouts: Timeouts) -> Result<Invocation, Parsed> {
    p.check_legality(cmd)?;

    if matches!(cmd, Cmd::Add | Cmd::Edit) {
        if p.svc.fwmark == 0 && p.svc.port == 0 && p.svc.flags & ServiceFlags::PERSISTENT == 0 {
            return Err(Parsed::Fail(
                "Zero port specified for non-persistent service".into(),
            ));
        }
        if p.svc.flags & ServiceFlags::ONE_PACKET != 0
            && p.svc.fwmark == 0
            && p.svc.protocol != Some(Protocol::Udp)
        {
            return Err(Parsed::Fail(
                "One-Packet Scheduling is only for UDP virtual services".into(),
            ));
        }
        // v1 is text in a TCP stream; over UDP a header rides in each datagram, and
        // only v2 can (an fwmark service may carry v1 for its TCP listeners).
        if p.svc.options.proxy_protocol == Some(ProxyProtocol::V1)
            && p.svc.fwmark == 0
            && p.svc.protocol == Some(Protocol::Udp)
        {
            return Err(Parsed::Fail(
                "PROXY protocol v1 is for TCP virtual services: a UDP virtual service \
                 sends only v2 (--proxy-protocol v2)"
                    .into(),
            ));
        }
        if p.svc.sched_name.is_empty() {
            p.svc.sched_name = "wlc".into();
        }
    }

    if matches!(cmd, Cmd::AddDest | Cmd::EditDest) {
        // ipvsadm gives a DR or tunnel server the service's port here; the table does
        // (`ServerConfig::in_service`), for every writer, so the command carries the
        // port as written.
        let forward = p.dest.forward;
        if p.dest.af != p.svc.af && forward != Forward::Tunnel {
            return Err(Parsed::Fail(
                "Different address family is allowed only for tunneling servers".into(),
            ));
        }
        let tunnel_options = [
            Opt::TUN_TYPE,
            Opt::TUN_PORT,
            Opt::TUN_NOCSUM,
            Opt::TUN_CSUM,
            Opt::TUN_REMCSUM,
        ];
        if tunnel_options.iter().any(|o| p.has(*o)) && forward != Forward::Tunnel {
            return Err(Parsed::Fail(
                "Tunnel options conflict with forward method".into(),
            ));
        }
        p.check_tunnel()?;
    }

    let key = p.service_key();
    Ok(match cmd {
        Cmd::List => {
            let stats_like = p.has(Opt::STATS) || p.has(Opt::RATE) || p.has(Opt::THRESHOLDS);
            let timeout_or_daemon = p.has(Opt::TIMEOUT) || p.has(Opt::DAEMON);
            if ((p.has(Opt::CONNECTION) || timeout_or_daemon) && stats_like)
                || (timeout_or_daemon && p.has(Opt::PERSISTENTCONN))
                || (p.has(Opt::LISTENERS) && (stats_like || p.has(Opt::PERSISTENTCONN)))
            {
                return Err(Parsed::Fail("options conflicts in the list command".into()));
            }
            let target = if p.has(Opt::CONNECTION) {
                ListTarget::Connections
            } else if p.has(Opt::SERVICE) {
                ListTarget::Service(key)
            } else if p.has(Opt::TIMEOUT) {
                ListTarget::Timeouts
            } else if p.has(Opt::DAEMON) {
                ListTarget::Daemons
            } else if p.has(Opt::LISTENERS) {
                ListTarget::Listeners
            } else {
                ListTarget::All
            };
            Invocation::List {
                target,
                format: p.format,
            }
        }
        Cmd::Restore => Invocation::Restore,
        Cmd::Save => Invocation::Save {
            format: p.format.with(Format::RULE),
        },
        Cmd::Flush => Invocation::Apply(Command::Flush {}),
        Cmd::Add => Invocation::Apply(Command::AddService(p.service_config())),
        Cmd::Edit => Invocation::Apply(Command::EditService(p.service_config())),
        Cmd::Del => Invocation::Apply(Command::DeleteService { service: key }),
        Cmd::Zero => {
            // libipvs zeroes everything when no service, or the all-zero one, is given.
            let everything = p.svc.fwmark == 0 && p.svc.addr.is_unspecified() && p.svc.port == 0;
            Invocation::Apply(Command::Zero {
                service: (!everything).then_some(key),
            })
        }
        Cmd::AddDest => Invocation::Apply(Command::AddServer {
            service: key,
            server: p.server_config(),
        }),
        Cmd::EditDest => Invocation::Apply(Command::EditServer {
            service: key,
            server: p.server_config(),
        }),
        Cmd::DelDest => Invocation::Apply(Command::DeleteServer {
            service: key,
            server: ServerKey {
                addr: p.dest.addr,
                port: p.dest.port,
            },
        }),
        Cmd::Timeout => Invocation::Apply(Command::SetTimeouts(timeouts)),
        Cmd::StartDaemon => {
            let mut daemon = p.daemon.clone();
            if daemon.interface.is_empty() {
                daemon.interface = crate::table::sync::DEFAULT_INTERFACE.to_string();
            }
            Invocation::Apply(Command::StartSyncDaemon(daemon))
        }
        Cmd::StopDaemon => Invocation::Apply(Command::StopSyncDaemon {
            role: p.daemon.role,
        }),
        Cmd::AddListener | Cmd::DeleteListener => {
            let listen = match key {
                ServiceKey::Inet {
                    protocol: protocol @ (Protocol::Tcp | Protocol::Udp),
                    addr,
                    port,
                } => ListenAddr {
                    protocol,
                    addr,
                    port,
                },
                _ => {
                    return Err(Parsed::Fail(
                        "a listener is a TCP or UDP address: give it with -t or -u".into(),
                    ));
                }
            };
            if listen.port == 0 {
                return Err(Parsed::Fail("Zero port specified for listener".into()));
            }
            if cmd == Cmd::AddListener {
                Invocation::Apply(Command::AddListener(ListenRule {
                    listen,
                    mark: p.mark,
                }))
            } else {
                Invocation::Apply(Command::DeleteListener { listen })
            }
        }
    })
}

#[cfg(test)]
mod tests;
