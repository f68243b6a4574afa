//! The configuration file: uvs's native TOML. `schema` reads a file into a [`Config`]
//! (every problem at once, with its line and column, via `reader`; the first hundred
//! kept and shown and the rest counted, by `capped`, which the importers use too);
//! `plan` turns a config and the running table into the typed commands that make the
//! table match, touching only what changed (the daemon's reloader, `daemon::reload`,
//! applies files at start, on SIGHUP and, with `autoreload`, when the file changes);
//! `file` reads them, regular files only and bounded in size; `status` is what the
//! reloader says of the file in `uvs status`; `group` makes one service of each member
//! of a group of virtual services (keepalived's `virtual_server_group`); `reference`
//! describes every key for uvs.toml(5). `uvs check`, `uvs run -c`, `uvs import`
//! and the daemon use it.

pub mod admission;
pub mod capped;
pub mod file;
pub mod group;
pub mod import;
pub mod plan;
pub mod reader;
pub mod reference;
pub mod render;
pub mod schema;
pub mod slot;
pub mod source;
pub mod status;
pub mod sync;
pub mod watch;
pub mod words;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::proxy::congestion::CongestionControl;
use crate::proxy::forward::TransferMode;
use crate::table::{ListenRule, ServerConfig, ServiceConfig, Timeouts};

pub use reader::{Problem, Problems};
pub use words::words;

/// How a real server's health is checked (`[service.check]`, defaults in
/// `[global.check]`): ldirectord's checks, named as ldirectord names them. The health
/// checker reads these; unset fields take the global default, then the built-in one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Check {
    pub kind: Option<CheckKind>,
    /// What `negotiate` speaks: http, https, simpletcp, smtp, dns.
    pub service: Option<NegotiateService>,
    /// The port checked, when not the server's own (ldirectord's checkport).
    pub port: Option<u16>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    /// Failed checks in a row before the server is taken down (failurecount).
    pub failures: Option<u32>,
    /// Good checks in a row before it is brought back.
    pub rise: Option<u32>,
    pub request: Option<String>,
    /// A regular expression the answer must match.
    pub receive: Option<String>,
    pub virtualhost: Option<String>,
    /// GET or HEAD.
    pub method: Option<String>,
    /// The HTTP statuses taken as healthy: inclusive ranges, any of which will do
    /// (keepalived's `status_code 200 301-302`).
    pub status: Option<Vec<(u16, u16)>>,
    /// `external`: the command run, with vip vport rip rport after it unless
    /// `target_arguments` is false.
    pub command: Option<CheckCommand>,
    /// `external`: whether vip vport rip rport are appended to the command's words
    /// (ldirectord's checkcommand; unset: true) or the words run as written (false:
    /// keepalived's MISC_CHECK, check_misc.c `misc_check_thread`, passes none).
    pub target_arguments: Option<bool>,
    /// `dns`: the transport the query goes over, whatever the service's protocol
    /// (keepalived's DNS_CHECK always speaks UDP, check_dns.c `dns_connect_thread`);
    /// unset: the service's (ldirectord's). TCP or UDP only.
    pub transport: Option<crate::table::Protocol>,
    /// `external`: the exit code sets the weight (keepalived's misc_dynamic).
    pub dynamic_weight: Option<bool>,
    /// `https`: verify the server's certificate.
    pub verify_certificate: Option<bool>,
    /// The first check comes after a random delay of up to this long (keepalived's
    /// `warmup`, check_api.c `register_checkers_thread`); unset: within a tenth of the
    /// interval.
    pub warmup: Option<Duration>,
    /// After a failed check of a server that is still up, the next check comes this
    /// long after instead of the interval, until `failures` take it down (keepalived's
    /// `delay_before_retry`, check_tcp.c `tcp_epilog`).
    pub retry_delay: Option<Duration>,
    /// Failed checks in a row that take down a server that has not passed a check
    /// since the daemon started (unset: `failures`). keepalived's is 1: without
    /// `alpha`, "one failure is enough initially" (check_data.c
    /// `validate_check_config` counts the retries as spent).
    pub failures_at_start: Option<u32>,
    /// `external`: the user the command runs as, and the group instead of the user's
    /// own (keepalived's MISC_CHECK `user USER [GROUP]`); the daemon must be root.
    pub user: Option<String>,
    pub group: Option<String>,
    /// `http`/`https`: the MD5 of the answer's body, 32 lower-case hex digits
    /// (keepalived's url `digest`, as its genhash prints it).
    pub digest: Option<String>,
    /// `http`/`https`: several URLs, each of which must pass (keepalived's `url`
    /// blocks); without them, the one URL of `request`, `status`, `receive`, `digest`.
    pub urls: Option<Vec<Url>>,
    /// `dns`: the type of record asked for (A without one).
    pub query_type: Option<DnsType>,
    /// `dns`: whether the answer must hold a record (ldirectord's, the default) or
    /// any NOERROR answer will do (keepalived's DNS_CHECK).
    pub require_answer: Option<bool>,
    /// `file`: the file whose number sets the server's health and weight (keepalived's
    /// track_file `file`).
    pub path: Option<PathBuf>,
    /// `file`: what the file's number is multiplied by (keepalived's track_file
    /// `weight`, -(2^31 - 1) to 2^31 - 1; 0: any number but 0 is down).
    pub file_weight: Option<i32>,
    /// `file`: the product is negated (keepalived's `weight W reverse`).
    pub reverse: Option<bool>,
    /// `smtp`: the name sent in HELO, after which a 250 is wanted (keepalived's
    /// `helo_name`).
    pub helo: Option<String>,
    /// TCP-based checks: the address the check connects from (keepalived's `bindto`).
    pub source: Option<std::net::IpAddr>,
    /// TCP-based checks: the port it connects from (keepalived's `bind_port`).
    pub source_port: Option<u16>,
    /// The address checked, when not the server's own (keepalived's `connect_ip`).
    pub address: Option<std::net::IpAddr>,
    /// `smtp`: the addresses checked instead of the server's, every one of which must
    /// pass (keepalived's `host` blocks).
    pub hosts: Option<Vec<std::net::SocketAddr>>,
}

/// An external check's `command`: a line split at white space (`command =
/// "/bin/check -v"`, ldirectord's checkcommand), or its words as written (`command =
/// ["/opt/my check", "-v"]`: no quoting rules to learn, so `uvs import keepalived`
/// writes a `misc_path` so, split as keepalived splits it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckCommand {
    Line(String),
    Words(Vec<String>),
}

impl From<&str> for CheckCommand {
    /// A line, split at white space.
    fn from(line: &str) -> CheckCommand {
        CheckCommand::Line(line.to_string())
    }
}

impl CheckCommand {
    /// The program, then its own arguments.
    pub fn words(&self) -> Vec<String> {
        match self {
            CheckCommand::Line(line) => line.split_whitespace().map(str::to_string).collect(),
            CheckCommand::Words(words) => words.clone(),
        }
    }
}

/// One URL of an HTTP check (`[[service.check.url]]`, keepalived's `url` block): what
/// it leaves unset is the check's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Url {
    pub path: String,
    pub status: Option<Vec<(u16, u16)>>,
    pub receive: Option<String>,
    pub digest: Option<String>,
    pub virtualhost: Option<String>,
}

/// Whether an smtp check can send `name` in its HELO line: some text, no white space
/// (the schema's rule, which the keepalived import keeps to).
pub fn helo_sendable(name: &str) -> bool {
    !name.is_empty() && !name.contains(char::is_whitespace)
}

/// Why `name` cannot be asked for: keepalived's check_dns.c `dns_name_handler` refuses
/// an empty label ("a..b", ".a"), and a label past 63 bytes or a name past 255 cannot
/// be written in a query (RFC 1035 2.3.4). None: it can.
pub fn dns_name_fault(name: &str) -> Option<String> {
    if name == "." {
        return None;
    }
    let labels: Vec<&str> = name.strip_suffix('.').unwrap_or(name).split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return Some(format!("the name {name:?} has an empty label"));
    }
    if let Some(long) = labels.iter().find(|l| l.len() > 63) {
        return Some(format!(
            "the name {name:?} has a label of {} bytes, past DNS's 63",
            long.len()
        ));
    }
    if name.len() > 253 {
        return Some(format!("the name {name:?} is past DNS's 253 bytes"));
    }
    simple_dns::Name::new(name.trim_end_matches('.'))
        .err()
        .map(|e| format!("the name {name:?} cannot be asked for: {e}"))
}

/// The DNS record types a `dns` check asks for: keepalived's (check_dns.c's
/// `DNS_TYPE`), with their numbers (RFC 1035, 3596, 4034).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsType {
    A,
    Ns,
    Cname,
    Soa,
    Mx,
    Txt,
    Aaaa,
    Rrsig,
    Dnskey,
}

impl DnsType {
    pub const NAMES: &'static [&'static str] = &[
        "A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA", "RRSIG", "DNSKEY",
    ];
    const ALL: [DnsType; 9] = [
        DnsType::A,
        DnsType::Ns,
        DnsType::Cname,
        DnsType::Soa,
        DnsType::Mx,
        DnsType::Txt,
        DnsType::Aaaa,
        DnsType::Rrsig,
        DnsType::Dnskey,
    ];

    /// The type named `name`, in any case (keepalived's `strcasecmp`).
    pub fn from_name(name: &str) -> Option<DnsType> {
        DnsType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    pub fn name(self) -> &'static str {
        DnsType::NAMES[self as usize]
    }

    /// The type's number on the wire.
    pub fn code(self) -> u16 {
        [1, 2, 5, 6, 15, 16, 28, 46, 48][self as usize]
    }
}

impl Check {
    /// This check, with what it leaves unset taken from `base`.
    pub fn or(&self, base: &Check) -> Check {
        Check {
            kind: self.kind.or(base.kind),
            service: self.service.or(base.service),
            port: self.port.or(base.port),
            interval: self.interval.or(base.interval),
            timeout: self.timeout.or(base.timeout),
            failures: self.failures.or(base.failures),
            rise: self.rise.or(base.rise),
            request: self.request.clone().or_else(|| base.request.clone()),
            receive: self.receive.clone().or_else(|| base.receive.clone()),
            virtualhost: self
                .virtualhost
                .clone()
                .or_else(|| base.virtualhost.clone()),
            method: self.method.clone().or_else(|| base.method.clone()),
            status: self.status.clone().or_else(|| base.status.clone()),
            command: self.command.clone().or_else(|| base.command.clone()),
            target_arguments: self.target_arguments.or(base.target_arguments),
            transport: self.transport.or(base.transport),
            dynamic_weight: self.dynamic_weight.or(base.dynamic_weight),
            verify_certificate: self.verify_certificate.or(base.verify_certificate),
            warmup: self.warmup.or(base.warmup),
            retry_delay: self.retry_delay.or(base.retry_delay),
            failures_at_start: self.failures_at_start.or(base.failures_at_start),
            user: self.user.clone().or_else(|| base.user.clone()),
            group: self.group.clone().or_else(|| base.group.clone()),
            digest: self.digest.clone().or_else(|| base.digest.clone()),
            urls: self.urls.clone().or_else(|| base.urls.clone()),
            query_type: self.query_type.or(base.query_type),
            require_answer: self.require_answer.or(base.require_answer),
            path: self.path.clone().or_else(|| base.path.clone()),
            file_weight: self.file_weight.or(base.file_weight),
            reverse: self.reverse.or(base.reverse),
            helo: self.helo.clone().or_else(|| base.helo.clone()),
            source: self.source.or(base.source),
            source_port: self.source_port.or(base.source_port),
            address: self.address.or(base.address),
            hosts: self.hosts.clone().or_else(|| base.hosts.clone()),
        }
    }
}

/// ldirectord's checktype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    Connect,
    Negotiate,
    External,
    /// Always up.
    On,
    /// Always down.
    Off,
    /// A number in a file sets health and weight (keepalived's FILE_CHECK).
    File,
}

impl CheckKind {
    pub const NAMES: &'static [&'static str] =
        &["connect", "negotiate", "external", "on", "off", "file"];

    pub fn from_name(name: &str) -> Option<CheckKind> {
        Some(match name {
            "connect" => CheckKind::Connect,
            "negotiate" => CheckKind::Negotiate,
            "external" => CheckKind::External,
            "on" => CheckKind::On,
            "off" => CheckKind::Off,
            "file" => CheckKind::File,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            CheckKind::Connect => "connect",
            CheckKind::Negotiate => "negotiate",
            CheckKind::External => "external",
            CheckKind::On => "on",
            CheckKind::Off => "off",
            CheckKind::File => "file",
        }
    }
}

/// The protocols `negotiate` checks speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NegotiateService {
    Http,
    Https,
    SimpleTcp,
    Smtp,
    Dns,
}

impl NegotiateService {
    pub const NAMES: &'static [&'static str] = &["http", "https", "simpletcp", "smtp", "dns"];

    pub fn from_name(name: &str) -> Option<NegotiateService> {
        Some(match name {
            "http" => NegotiateService::Http,
            "https" => NegotiateService::Https,
            "simpletcp" => NegotiateService::SimpleTcp,
            "smtp" => NegotiateService::Smtp,
            "dns" => NegotiateService::Dns,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            NegotiateService::Http => "http",
            NegotiateService::Https => "https",
            NegotiateService::SimpleTcp => "simpletcp",
            NegotiateService::Smtp => "smtp",
            NegotiateService::Dns => "dns",
        }
    }
}

/// The most checks one real server may have (keepalived sets no bound; each is a task
/// and, while it runs, a socket or a process).
pub const MAX_CHECKS: usize = 16;

/// What the health checker does with a service: its check, what "down" means, and the
/// server that stands in while none is up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// The check (the first, when there are several).
    pub check: Check,
    /// The checks after the first (`[[service.check]]` with several tables, keepalived's
    /// several checkers of a real server): each runs on its own and the server is up
    /// only while none of them finds it down. Services only; at most
    /// [`MAX_CHECKS`] - 1.
    pub more_checks: Vec<Check>,
    /// Down means weight 0 (true) or removal (false); unset: the global setting.
    pub quiescent: Option<bool>,
    /// ldirectord's fallback (keepalived's sorry server).
    pub fallback: Option<ServerConfig>,
    /// The fallback's own `quiescent` (`fallback = { ..., quiescent = true }`): while it
    /// does not stand in it stays in the service at weight 0 instead of leaving it, as
    /// keepalived's `sorry_server_inhibit` (check/ipwrapper.c `init_service_vs` adds the
    /// sorry server at weight 0; `update_quorum_state` then sets it to 0 rather than
    /// removing it, the inhibit of a real server's `inhibit_on_failure`). Unset: false.
    pub fallback_quiescent: Option<bool>,
    /// A server starts down until its first good check (keepalived's `alpha`); unset:
    /// the global setting, then false (a server starts up).
    pub alpha: Option<bool>,
    /// `notify_down` and `quorum_down` also run when the daemon stops (keepalived's
    /// `omega`); unset: the global setting, then false.
    pub omega: Option<bool>,
    /// The least sum of the weights of live servers that keeps the service in quorum
    /// (keepalived's `quorum`, from 1); unset: the service is in quorum while any of
    /// its servers is up. Services only.
    pub quorum: Option<u32>,
    /// Quorum is lost below `quorum - hysteresis` and regained at `quorum +
    /// hysteresis` (keepalived's `hysteresis`, less than the quorum). Services only.
    pub hysteresis: Option<u32>,
    /// Commands run once when the quorum is regained or lost (keepalived's `quorum_up`,
    /// `quorum_down`), split into words as [`words`] does. Services only.
    pub quorum_up: Option<NotifyCommand>,
    pub quorum_down: Option<NotifyCommand>,
    /// The service's checks are suspended while its virtual address is not an address
    /// of this host (keepalived's `ha_suspend`; `health::suspend`). Services with an
    /// address only.
    pub ha_suspend: Option<bool>,
    /// What single real servers say of their own health (`[[service.server]]`'s
    /// `quiescent`, `notify_up`, `notify_down`). Services only.
    pub servers: std::collections::BTreeMap<crate::table::ServerKey, ServerHealth>,
}

/// What one real server says of its own health: keepalived's `inhibit_on_failure`,
/// `notify_up` and `notify_down` of a `real_server`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerHealth {
    /// Down means weight 0 (true) or removal (false), over the service's setting.
    pub quiescent: Option<bool>,
    /// Commands run once each time the server goes up or down, split into words as
    /// [`words`] does.
    pub notify_up: Option<NotifyCommand>,
    pub notify_down: Option<NotifyCommand>,
}

/// A command keepalived runs on a change of state (`notify_up`, `notify_down`,
/// `quorum_up`, `quorum_down`): its line, split into words as [`words`] does, and the
/// user and group it runs as (keepalived's `notify_up CMD [USER [GROUP]]`, core/notify.c
/// `notify_script_init` with `set_script_uid_gid`; unset: the daemon's own). Written
/// `notify_up = "CMD"`, or `notify_up = { command = "CMD", user = "U", group = "G" }`
/// to keep each user with its command, as keepalived does. Reads as its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyCommand {
    pub line: String,
    pub user: Option<String>,
    /// Instead of the user's own group; only with a user.
    pub group: Option<String>,
}

impl std::ops::Deref for NotifyCommand {
    type Target = str;
    fn deref(&self) -> &str {
        &self.line
    }
}

impl std::fmt::Display for NotifyCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line)?;
        if let Some(user) = &self.user {
            write!(f, " (as {user}")?;
            if let Some(group) = &self.group {
                write!(f, ":{group}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl From<String> for NotifyCommand {
    fn from(line: String) -> NotifyCommand {
        NotifyCommand {
            line,
            user: None,
            group: None,
        }
    }
}

impl From<&str> for NotifyCommand {
    fn from(line: &str) -> NotifyCommand {
        NotifyCommand::from(line.to_string())
    }
}

/// Where balancing happens (`mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The kernel's IPVS when it can be used, else userspace.
    Auto,
    Userspace,
    Kernel,
}

impl Mode {
    pub fn from_name(name: &str) -> Option<Mode> {
        Some(match name {
            "auto" => Mode::Auto,
            "userspace" => Mode::Userspace,
            "kernel" => Mode::Kernel,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Userspace => "userspace",
            Mode::Kernel => "kernel",
        }
    }
}

/// Daemon settings from `[global]`, as the file gives them (None: unset). The daemon
/// puts them over its defaults and the command line over them (`daemon::settings`,
/// which also lists them, with when each applies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Global {
    pub mode: Option<Mode>,
    /// Kernel mode: remove uvs's services from the kernel when stopping (ldirectord's
    /// cleanstop; default true).
    pub cleanstop: Option<bool>,
    /// Where `/metrics` is served: Some(None) is off.
    pub metrics: Option<Option<std::net::SocketAddr>>,
    /// Whether `/` on the metrics address is the status page (default true).
    pub status_page: Option<bool>,
    pub socket: Option<PathBuf>,
    pub autoreload: bool,
    pub threads: Option<u16>,
    pub forwarding: Option<TransferMode>,
    pub max_udp_flows: Option<u32>,
    /// The most TCP connections proxied at once.
    pub max_connections: Option<u32>,
    /// Connections the metrics endpoint serves at once.
    pub metrics_max_connections: Option<u32>,
    /// How long a UDP flow lives before its real server has answered.
    pub udp_unreplied_timeout: Option<Duration>,
    /// The most UDP flows one client address may hold.
    pub udp_flows_per_source: Option<u32>,
    /// The most persistence templates held at once.
    pub max_templates: Option<u32>,
    pub drain_timeout: Option<Duration>,
    pub expire_quiescent_template: Option<bool>,
    /// TCP connect timeout for services without their own.
    pub connect_timeout: Option<Duration>,
    /// Other real servers tried after a failed TCP connect.
    pub retries: Option<u32>,
    /// TCP congestion control of connections accepted from clients.
    pub client_congestion_control: Option<CongestionControl>,
    /// TCP congestion control of connections to real servers.
    pub server_congestion_control: Option<CongestionControl>,
    /// Defaults for every service's health (`[global.check]`, `quiescent`, `fallback`).
    pub health: Health,
    /// A file named `ip:port` or `ip` here forces that server down (ldirectord's
    /// maintenancedir).
    pub maintenance_dir: Option<PathBuf>,
    /// The sources of services that say nothing of theirs (`source`, `source_ports`;
    /// `config::source`): copied into those services' options when the file is read.
    pub source: Option<std::sync::Arc<crate::table::source::Source>>,
}

impl Global {
    /// Whether this layer (the file's `[global]`, or the command line's overrides in
    /// the same shape) gives the daemon setting whose `[global]` key is `key`. What
    /// only the file can say (`autoreload`, the health-check defaults,
    /// `maintenance_dir`) is not asked about: no command line sets it.
    pub fn sets(&self, key: &str) -> bool {
        match key {
            "mode" => self.mode.is_some(),
            "socket" => self.socket.is_some(),
            "cleanstop" => self.cleanstop.is_some(),
            "metrics" => self.metrics.is_some(),
            "status_page" => self.status_page.is_some(),
            "threads" => self.threads.is_some(),
            "forwarding" => self.forwarding.is_some(),
            "max_udp_flows" => self.max_udp_flows.is_some(),
            "max_connections" => self.max_connections.is_some(),
            "metrics_max_connections" => self.metrics_max_connections.is_some(),
            "udp_unreplied_timeout" => self.udp_unreplied_timeout.is_some(),
            "max_templates" => self.max_templates.is_some(),
            "udp_flows_per_source" => self.udp_flows_per_source.is_some(),
            "drain_timeout" => self.drain_timeout.is_some(),
            "expire_quiescent_template" => self.expire_quiescent_template.is_some(),
            "connect_timeout" => self.connect_timeout.is_some(),
            "retries" => self.retries.is_some(),
            "client_congestion_control" => self.client_congestion_control.is_some(),
            "server_congestion_control" => self.server_congestion_control.is_some(),
            _ => false,
        }
    }
}

/// One virtual service with its real servers and listen addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub service: ServiceConfig,
    /// In the order the file lists them.
    pub servers: Vec<ServerConfig>,
    pub listen: Vec<ListenRule>,
    /// ldirectord's servicename and comment.
    pub name: Option<String>,
    pub comment: Option<String>,
    pub health: Health,
    /// Checks of single servers (`[service.server.check]`, the first of
    /// `[[service.server.check]]`), over the service's.
    pub server_checks: std::collections::HashMap<crate::table::ServerKey, Check>,
    /// The checks after the first of single servers that have several
    /// (`[[service.server.check]]`); see `health::server_settings_all` for how a
    /// server's checks replace its service's.
    pub server_more_checks: std::collections::HashMap<crate::table::ServerKey, Vec<Check>>,
    /// The group this service is a member of (`group = "NAME"`, keepalived's
    /// `virtual_server_group`), if any: see [`group`].
    pub group: Option<group::Group>,
}

/// A whole, valid configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub global: Global,
    pub timeouts: Option<Timeouts>,
    /// `[global]`'s access lists and per-client limits, for every service.
    pub admission: crate::table::Admission,
    pub services: Vec<ServiceSpec>,
    /// `[sync]`'s connection-sync daemons, as written (the kernel's defaults
    /// unfilled): none, one, or a master and a backup alike (`role = "both"`).
    pub sync: Vec<crate::table::SyncDaemon>,
}

/// Why a file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// It could not be opened or read: missing, not permitted, an I/O error.
    // The cause is in the message, not a `source`: printed as a chain it would repeat.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The path names a FIFO, directory, device or socket: reading a FIFO would wait for
    /// a writer, a device could give bytes forever.
    #[error("{} is {kind}, not a regular file", path.display())]
    NotRegular { path: PathBuf, kind: file::FileKind },
    /// The file is over `limit` bytes ([`file::MAX_BYTES`]); `size` is its size in
    /// bytes, or, when it `grew` while read, what was read by the time it passed the
    /// limit.
    #[error(
        "{} is too large for a configuration file: {size} bytes{}, over the limit of {limit} bytes ({} MiB)",
        path.display(),
        if *grew { " or more (it grew while read)" } else { "" },
        limit >> 20
    )]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
        grew: bool,
    },
    /// The bytes are not UTF-8 text; `offset` is where the first bad byte is.
    #[error("{} is not UTF-8 text: the byte at offset {offset} does not begin a UTF-8 character", path.display())]
    NotText { path: PathBuf, offset: usize },
    #[error("{0}")]
    Invalid(Problems),
}

/// A configuration file as it was read, and what identifies what was read, so a reload
/// can tell whether the file changed since.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// A hash of the contents ([`file::Text::digest`]).
    pub digest: u64,
    /// The file as it stood once read.
    pub stamp: file::Stamp,
}

/// Reads and checks the file at `path` (see [`file::read`] for which files are read).
///
/// # Errors
/// Why it could not be read ([`file::read`]), or every problem of its contents
/// ([`LoadError::Invalid`]).
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let text = file::read(path)?;
    let config = schema::parse(&text.text, path).map_err(LoadError::Invalid)?;
    Ok(Loaded {
        config,
        digest: text.digest(),
        stamp: text.stamp,
    })
}
