//! The daemon's settings, read in one place: the built-in defaults, over them the
//! configuration file's `[global]` ([`Global`]), over that the command line
//! ([`Overrides`]); the command line wins, at start and on every reload. Each setting
//! says when a change to it applies ([`Applies`]), and [`SETTINGS`] lists them all with
//! their `[global]` key and `uvs run` flag: a reload's log lines name them from there.
//!
//! `uvs run` and `uvs demo` (main.rs) resolve the settings at start
//! ([`Settings::resolve`]); the reloader (`daemon::reload`) hands every file it applies
//! to [`Running`], which applies the live settings it changed and names the next-start
//! ones in a warning.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use super::reload::GlobalSettings;
use crate::config::{Global, Mode};
use crate::control::socket_path;
use crate::lock::Locked;
use crate::proxy::congestion::CongestionControl;
use crate::proxy::director::Director;
use crate::proxy::forward::TransferMode;

/// When a change to a setting takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// On the reload that changes it (unless the command line sets it).
    Live,
    /// At the next start: it shapes what the daemon built when it started (threads,
    /// sockets, caps). A reload that changes it says so in a warning.
    NextStart,
    /// With the services, on the reload that changes it: the health-check defaults and
    /// the services' source addresses and ports, which the reload plans into the table
    /// with everything else.
    WithTheServices,
}

/// One setting: its `[global]` key, its `uvs run` flag, and when it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The key in `[global]` (`check` is the table `[global.check]`); log lines say
    /// `global.KEY`.
    pub key: &'static str,
    /// The field of [`Global`] that holds it.
    pub field: &'static str,
    /// The `uvs run` / `uvs demo` flag, without its dashes; None: the file only.
    pub flag: Option<&'static str>,
    pub applies: Applies,
    /// A value of it in TOML, not the default one (the tests read it).
    pub example: &'static str,
}

const fn setting(
    key: &'static str,
    flag: Option<&'static str>,
    applies: Applies,
    example: &'static str,
) -> Setting {
    Setting {
        key,
        field: key,
        flag,
        applies,
        example,
    }
}

/// Every `[global]` setting, in the order `[global]` is rendered. When adding one: a
/// field in [`Global`] (read in `config::schema`, written in `config::render`), a line
/// here, a field in [`Settings`] (with [`Settings::resolve`], [`Settings::value`],
/// and [`Global::sets`]) and, for a flag, one in main.rs's
/// `DaemonArgs`; the tests below and in main.rs fail until all agree.
pub const SETTINGS: &[Setting] = &[
    setting("mode", Some("mode"), Applies::NextStart, "\"userspace\""),
    setting(
        "socket",
        Some("socket"),
        Applies::NextStart,
        "\"/x/uvs.sock\"",
    ),
    setting(
        "cleanstop",
        Some("keep-kernel-services"),
        Applies::NextStart,
        "false",
    ),
    setting("metrics", Some("metrics"), Applies::NextStart, "\"off\""),
    setting(
        "status_page",
        Some("status-page"),
        Applies::NextStart,
        "false",
    ),
    setting("autoreload", None, Applies::Live, "true"),
    setting("threads", Some("threads"), Applies::NextStart, "3"),
    setting(
        "forwarding",
        Some("forwarding"),
        Applies::NextStart,
        "\"copy\"",
    ),
    setting(
        "max_udp_flows",
        Some("max-udp-flows"),
        Applies::NextStart,
        "1000",
    ),
    setting(
        "max_connections",
        Some("max-connections"),
        Applies::NextStart,
        "1000",
    ),
    setting(
        "metrics_max_connections",
        Some("metrics-max-connections"),
        Applies::NextStart,
        "7",
    ),
    setting(
        "udp_unreplied_timeout",
        Some("udp-unreplied-timeout"),
        Applies::NextStart,
        "\"7s\"",
    ),
    setting(
        "max_templates",
        Some("max-templates"),
        Applies::NextStart,
        "1000",
    ),
    setting(
        "udp_flows_per_source",
        Some("udp-flows-per-source"),
        Applies::NextStart,
        "7",
    ),
    setting(
        "drain_timeout",
        Some("drain-timeout"),
        Applies::NextStart,
        "\"7s\"",
    ),
    setting(
        "expire_quiescent_template",
        Some("expire-quiescent-template"),
        Applies::Live,
        "true",
    ),
    setting(
        "connect_timeout",
        Some("connect-timeout"),
        Applies::NextStart,
        "\"7s\"",
    ),
    setting("retries", Some("retries"), Applies::NextStart, "3"),
    setting(
        "client_congestion_control",
        Some("client-congestion-control"),
        Applies::NextStart,
        "\"reno\"",
    ),
    setting(
        "server_congestion_control",
        Some("server-congestion-control"),
        Applies::NextStart,
        "\"reno\"",
    ),
    setting(
        "maintenance_dir",
        None,
        Applies::WithTheServices,
        "\"/x/maintenance\"",
    ),
    setting("source", None, Applies::WithTheServices, "[\"127.0.0.2\"]"),
    Setting {
        field: "source",
        ..setting(
            "source_ports",
            None,
            Applies::WithTheServices,
            "\"20000-20009\"",
        )
    },
    Setting {
        field: "health",
        ..setting("quiescent", None, Applies::WithTheServices, "false")
    },
    Setting {
        field: "health",
        ..setting(
            "fallback",
            None,
            Applies::WithTheServices,
            "{ address = \"127.0.0.1:9\" }",
        )
    },
    Setting {
        field: "health",
        ..setting(
            "check",
            None,
            Applies::WithTheServices,
            "{ type = \"connect\" }",
        )
    },
];

/// The command line's settings, in the shape of the file's `[global]` (one field list
/// for both layers): each is Some only when its flag was given (a switch such as
/// `--expire-quiescent-template` too), and then wins over the file. What only the file
/// can say (`autoreload`, the health-check defaults, `maintenance_dir`) stays unset.
pub type Overrides = Global;

/// The daemon's settings as they apply: the command line's, else the file's, else the
/// defaults. The health-check defaults (`[global.check]`, `quiescent`, `fallback`,
/// `maintenance_dir`) are not here: they are the services', read from the file by the
/// reloader and the health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where to balance [default: auto].
    pub mode: Mode,
    /// The control socket [default: `control::socket_path::from_env`].
    pub socket: PathBuf,
    /// Kernel mode: remove uvs's services from the kernel when stopping
    /// (ldirectord's cleanstop) [default: true].
    pub cleanstop: bool,
    /// Where `/metrics` is served; None: not at all [default: 127.0.0.1:9280].
    pub metrics: Option<SocketAddr>,
    /// Whether `/` on the metrics address is the status page [default: true].
    pub status_page: bool,
    /// Reload when the file changes (ldirectord's autoreload) [default: false].
    pub autoreload: bool,
    /// Worker threads; None: one per CPU.
    pub threads: Option<u16>,
    /// How TCP bytes move [default: `TransferMode::best`].
    pub forwarding: TransferMode,
    /// The most UDP flows open at once; None: from the open-files limit.
    pub max_udp_flows: Option<u32>,
    /// The most TCP connections proxied at once; None: from the open-files limit.
    pub max_connections: Option<u32>,
    /// Connections the metrics endpoint serves at once [default: 64].
    pub metrics_max_connections: usize,
    /// How long a UDP flow lives until its real server answers [default: 5 s].
    pub udp_unreplied_timeout: Duration,
    /// The most persistence templates held at once [default: 1048576].
    pub max_templates: usize,
    /// The most UDP flows one client address may hold; None: no limit.
    pub udp_flows_per_source: Option<u32>,
    /// How long a stopping daemon waits for open connections [default: 30 s].
    pub drain_timeout: Duration,
    /// IPVS's expire_quiescent_template: persistent clients of a weight-0 server are
    /// scheduled anew [default: false].
    pub expire_quiescent_template: bool,
    /// TCP connect timeout of services without their own [default: 5 s].
    pub connect_timeout: Duration,
    /// Other real servers tried after a failed TCP connect [default: 1].
    pub retries: u32,
    /// TCP congestion control towards clients; None: the system's.
    pub client_congestion_control: Option<CongestionControl>,
    /// TCP congestion control towards real servers; None: the system's.
    pub server_congestion_control: Option<CongestionControl>,
}

impl Settings {
    /// The defaults, under `file`'s `[global]` (when there is a file), under the
    /// command line's `cli`.
    pub fn resolve(file: Option<&Global>, cli: &Overrides) -> Settings {
        let none = Global::default();
        let file = file.unwrap_or(&none);
        Settings {
            mode: cli.mode.or(file.mode).unwrap_or(Mode::Auto),
            socket: cli
                .socket
                .clone()
                .or_else(|| file.socket.clone())
                .unwrap_or_else(socket_path::from_env),
            cleanstop: cli.cleanstop.or(file.cleanstop).unwrap_or(true),
            metrics: cli
                .metrics
                .or(file.metrics)
                .unwrap_or_else(|| crate::exporter::http::DEFAULT_ADDRESS.parse().ok()),
            status_page: cli.status_page.or(file.status_page).unwrap_or(true),
            autoreload: file.autoreload,
            threads: cli.threads.or(file.threads),
            forwarding: cli
                .forwarding
                .or(file.forwarding)
                .unwrap_or_else(TransferMode::best),
            max_udp_flows: cli.max_udp_flows.or(file.max_udp_flows),
            max_connections: cli.max_connections.or(file.max_connections),
            metrics_max_connections: cli
                .metrics_max_connections
                .or(file.metrics_max_connections)
                .map_or(crate::descriptors::METRICS_CONNECTIONS, |n| n as usize),
            udp_unreplied_timeout: cli
                .udp_unreplied_timeout
                .or(file.udp_unreplied_timeout)
                .unwrap_or(crate::proxy::udp::admission::DEFAULT_UNREPLIED_TIMEOUT),
            max_templates: cli
                .max_templates
                .or(file.max_templates)
                .map_or(crate::persist::DEFAULT_MAX_TEMPLATES, |n| n as usize),
            udp_flows_per_source: cli.udp_flows_per_source.or(file.udp_flows_per_source),
            drain_timeout: cli
                .drain_timeout
                .or(file.drain_timeout)
                .unwrap_or(super::DEFAULT_DRAIN_TIMEOUT),
            expire_quiescent_template: cli
                .expire_quiescent_template
                .or(file.expire_quiescent_template)
                .unwrap_or(false),
            connect_timeout: cli
                .connect_timeout
                .or(file.connect_timeout)
                .unwrap_or(crate::table::ServiceOptions::DEFAULT_CONNECT_TIMEOUT),
            retries: cli.retries.or(file.retries).unwrap_or(1),
            client_congestion_control: cli
                .client_congestion_control
                .or(file.client_congestion_control),
            server_congestion_control: cli
                .server_congestion_control
                .or(file.server_congestion_control),
        }
    }

    /// The value of the setting whose `[global]` key is `key`, for log lines and
    /// comparisons; None for keys that are not held here (the services' defaults).
    pub fn value(&self, key: &str) -> Option<String> {
        fn show(v: impl std::fmt::Debug) -> Option<String> {
            Some(format!("{v:?}"))
        }
        match key {
            "mode" => show(self.mode),
            "socket" => show(&self.socket),
            "cleanstop" => show(self.cleanstop),
            "metrics" => show(self.metrics),
            "status_page" => show(self.status_page),
            "autoreload" => show(self.autoreload),
            "threads" => show(self.threads),
            "forwarding" => show(self.forwarding),
            "max_udp_flows" => show(self.max_udp_flows),
            "max_connections" => show(self.max_connections),
            "metrics_max_connections" => show(self.metrics_max_connections),
            "udp_unreplied_timeout" => show(self.udp_unreplied_timeout),
            "max_templates" => show(self.max_templates),
            "udp_flows_per_source" => show(self.udp_flows_per_source),
            "drain_timeout" => show(self.drain_timeout),
            "expire_quiescent_template" => show(self.expire_quiescent_template),
            "connect_timeout" => show(self.connect_timeout),
            "retries" => show(self.retries),
            "client_congestion_control" => show(self.client_congestion_control),
            "server_congestion_control" => show(self.server_congestion_control),
            _ => None,
        }
    }
}

/// What a reloaded file does to one setting it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A live setting: it applies now.
    Applied,
    /// A next-start setting: it waits for a restart.
    AtNextStart,
    /// The command line sets it, and still wins over the file.
    CommandLineWins,
}

/// The settings a reloaded file changed, and what becomes of each. `started` are the
/// settings the daemon started with, `last_file` the `[global]` of the file applied
/// before, `file` the new one's. The services' defaults are left out: the reload plans
/// them with the table.
pub fn changes(
    started: &Settings,
    last_file: &Global,
    file: &Global,
    cli: &Overrides,
) -> Vec<(&'static Setting, Change)> {
    let (last, next) = (
        Settings::resolve(Some(last_file), cli),
        Settings::resolve(Some(file), cli),
    );
    // The files' own say, without the command line's.
    let none = Overrides::default();
    let (file_before, file_now) = (
        Settings::resolve(Some(last_file), &none),
        Settings::resolve(Some(file), &none),
    );
    let mut out = Vec::new();
    for s in SETTINGS {
        let key = s.key;
        let change = match s.applies {
            Applies::WithTheServices => continue,
            _ if cli.sets(key) => {
                // The file's value changed, and the command line's stays.
                (file_before.value(key) != file_now.value(key)).then_some(Change::CommandLineWins)
            }
            Applies::Live => (last.value(key) != next.value(key)).then_some(Change::Applied),
            // Against the start: the running daemon still has what it started with.
            Applies::NextStart => {
                (started.value(key) != next.value(key)).then_some(Change::AtNextStart)
            }
        };
        if let Some(change) = change {
            out.push((s, change));
        }
    }
    out
}

/// The settings of a running daemon as reloads change them; the reloader hands it every
/// file it applies ([`GlobalSettings`]).
pub struct Running {
    cli: Overrides,
    started: Settings,
    /// The `[global]` of the last file applied (its next-start settings are not in
    /// force: `started` has those).
    last_file: Mutex<Global>,
}

impl Running {
    /// The daemon started with `started`, resolved from `file` (the file's `[global]`
    /// as read at start) and `cli`.
    pub fn new(started: Settings, file: Global, cli: Overrides) -> Running {
        Running {
            cli,
            started,
            last_file: Mutex::new(file),
        }
    }
}

/// Makes the live settings of `settings` so in `director`.
pub fn apply_live(settings: &Settings, director: &Director) {
    director
        .templates
        .set_expire_quiescent(settings.expire_quiescent_template);
}

/// The log target of a reload's lines about settings: the reloader's, where they were
/// first, so a filter on `uvs::config::reload` still sees them.
const RELOAD_LOG: &str = "uvs::config::reload";

impl GlobalSettings for Running {
    fn applied(&self, file: &Path, global: &Global, director: &Director) {
        let mut last_file = self.last_file.locked();
        let found = changes(&self.started, &last_file, global, &self.cli);
        let last = Settings::resolve(Some(&last_file), &self.cli);
        let next = Settings::resolve(Some(global), &self.cli);
        for (s, change) in found {
            let key = format!("global.{}", s.key);
            match change {
                Change::AtNextStart => tracing::warn!(
                    target: RELOAD_LOG,
                    file = %file.display(),
                    key = %key,
                    "changed; it takes effect at the next start"
                ),
                Change::Applied => tracing::info!(
                    target: RELOAD_LOG,
                    file = %file.display(),
                    key = %key,
                    from = last.value(s.key).unwrap_or_default(),
                    to = next.value(s.key).unwrap_or_default(),
                    "changed; applied"
                ),
                Change::CommandLineWins => tracing::info!(
                    target: RELOAD_LOG,
                    file = %file.display(),
                    key = %key,
                    flag = %format!("--{}", s.flag.unwrap_or(s.key)),
                    "changed; the command line sets it, and wins"
                ),
            }
        }
        apply_live(&next, director);
        *last_file = global.clone();
    }
}

#[cfg(test)]
mod tests;
