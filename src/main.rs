//! `uvs`: the daemon and its tools. `uvs run` holds the table, balances the traffic and
//! serves the control socket that `uvsadm` talks to; `uvs demo` runs the seed lab with
//! built-in backends; `uvs status` shows what a running daemon is doing. This file
//! parses the command line and dispatches, and owns what is the process's: logging,
//! the runtime, the signals (the daemon's shutdown and reload); the daemon itself is
//! `uvs::daemon::run`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::builder::{PossibleValue, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueHint};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;

use uvs::adm::backend::LocalBackend;
use uvs::adm::names::NoNames;
use uvs::adm::session::Session;
use uvs::config::{LoadError, Loaded, Mode};
use uvs::control::client::Client;
use uvs::control::protocol::{Request, Response};
use uvs::control::socket_path;
use uvs::daemon;
use uvs::daemon::settings::{Overrides, Settings};
use uvs::proxy::congestion::CongestionControl;
use uvs::proxy::forward::TransferMode;
use uvs::table::{HostInterfaces, TableHandle};

#[path = "main/drain.rs"]
mod drain;
#[path = "main/generate.rs"]
mod generate;

#[derive(Parser)]
#[command(
    name = "uvs",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("UVS_COMMIT"), ")"),
    about = "Userspace virtual server: IPVS, ipvsadm and ldirectord without the kernel module"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct DaemonArgs {
    /// Control socket path [default: $UVS_SOCKET, else /run/uvs/uvs.sock for root,
    /// $XDG_RUNTIME_DIR/uvs/uvs.sock or $TMPDIR/uvs-<uid>/uvs.sock for others]
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
    socket: Option<PathBuf>,
    /// How TCP bytes move: auto (copy small messages, splice bulk; Linux), splice or copy
    /// [default: auto]
    #[arg(long, value_name = "HOW", hide_possible_values = true,
          value_parser = Choices { names: &["auto", "splice", "copy"], parse: str::parse::<TransferMode> })]
    forwarding: Option<TransferMode>,
    /// On SIGTERM/SIGINT, how long open connections may take to finish, in seconds
    /// [default: 30]
    #[arg(long, value_name = "SECONDS", value_hint = ValueHint::Other)]
    drain_timeout: Option<u64>,
    /// Persistent clients of a weight-0 server are scheduled anew
    /// (IPVS's expire_quiescent_template)
    #[arg(long)]
    expire_quiescent_template: bool,
    /// Worker threads serving connections [default: the number of CPUs]
    #[arg(long, value_name = "N", value_hint = ValueHint::Other, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// Where /metrics (Prometheus), /healthz and / are served, or "off"
    /// [default: 127.0.0.1:9280]
    #[arg(long, value_name = "ADDR:PORT|off", value_hint = ValueHint::Other, value_parser = parse_metrics)]
    metrics: Option<MetricsAt>,
    /// The status page at / on the metrics address: on or off (/ then answers 404;
    /// /metrics and /healthz are served either way) [default: on]
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    status_page: Option<bool>,
    /// Kernel mode: leave uvs's services in the kernel when stopping (ldirectord's
    /// cleanstop = no)
    #[arg(long)]
    keep_kernel_services: bool,
    /// Where to balance: auto (the kernel's IPVS where it can be used, else
    /// userspace), userspace, or kernel [default: auto]
    #[arg(long, value_name = "MODE", hide_possible_values = true,
          value_parser = Choices { names: &["auto", "userspace", "kernel"], parse: parse_mode })]
    mode: Option<Mode>,
    /// How long a TCP connect to a real server may take, for services without their own
    /// (--connect-timeout on -A), as "5s" or "500ms" [default: 5s]
    #[arg(long, value_name = "DURATION", value_hint = ValueHint::Other, value_parser = humantime::parse_duration)]
    connect_timeout: Option<Duration>,
    /// Other real servers tried after a failed TCP connect [default: 1]
    #[arg(long, value_name = "N", value_hint = ValueHint::Other, value_parser = clap::value_parser!(u32).range(0..=100))]
    retries: Option<u32>,
    /// The most UDP flows open at once; new flows beyond it are dropped and counted
    /// [default: 65536, or half the open-files limit if that is less]
    #[arg(long, value_name = "N", value_hint = ValueHint::Other, value_parser = clap::value_parser!(u32).range(1..))]
    max_udp_flows: Option<u32>,
    /// The most TCP connections proxied at once; beyond it, clients wait in the listen
    /// backlog [default: what the open-files limit allows, two descriptors each]
    #[arg(long, value_name = "N", value_hint = ValueHint::Other, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: Option<u32>,
    /// Connections the metrics endpoint serves at once [default: 64]
    #[arg(long, value_name = "N", value_hint = ValueHint::Other, value_parser = clap::value_parser!(u32).range(1..=65536))]
    metrics_max_connections: Option<u32>,
    /// How long a UDP flow lives until its real server answers, as "5s"; unanswered
    /// flows are also the first to make room when the flow table is full [default: 5s]
    #[arg(long, value_name = "DURATION", value_hint = ValueHint::Other, value_parser = parse_positive_duration)]
    udp_unreplied_timeout: Option<Duration>,
    /// The most persistence templates held at once; at the cap, unused ones make room
    /// [default: 1048576]
    #[arg(long, value_name = "N", value_hint = ValueHint::Other, value_parser = clap::value_parser!(u32).range(1..))]
    max_templates: Option<u32>,
    /// The most UDP flows one client address may hold at once [default: no limit]
    #[arg(long, value_name = "N", value_hint = ValueHint::Other, value_parser = clap::value_parser!(u32).range(1..))]
    udp_flows_per_source: Option<u32>,
    /// TCP congestion control for connections accepted from clients, as "cubic", or
    /// "system" [default: the system's, net.ipv4.tcp_congestion_control]
    #[arg(long, value_name = "NAME", value_hint = ValueHint::Other, value_parser = parse_congestion)]
    client_congestion_control: Option<CongestionControl>,
    /// TCP congestion control for connections to real servers, as "cubic", or "system"
    /// [default: the system's, net.ipv4.tcp_congestion_control, but cubic where that is BBR]
    #[arg(long, value_name = "NAME", value_hint = ValueHint::Other, value_parser = parse_congestion)]
    server_congestion_control: Option<CongestionControl>,
}

/// `--metrics`: an address, or off (None).
type MetricsAt = Option<std::net::SocketAddr>;

fn parse_metrics(s: &str) -> Result<MetricsAt, String> {
    if s == "off" {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| format!("`{s}' is neither an address and port nor off"))
}

/// `--status-page`: on (true) or off (false).
fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("`{s}' is neither on nor off")),
    }
}

fn parse_congestion(s: &str) -> Result<CongestionControl, String> {
    s.parse()
        .map_err(|e: uvs::proxy::congestion::CongestionError| e.to_string())
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(86_400) => Ok(d),
        Ok(_) => Err("expected a duration from 1s to a day".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    Mode::from_name(s).ok_or_else(|| format!("unknown mode `{s}' (auto, userspace or kernel)"))
}

/// A value parser for an option that takes one of a few names: `parse` reads the value
/// (and words its errors), `names` are what completions and the man page offer.
#[derive(Clone)]
struct Choices<P> {
    names: &'static [&'static str],
    parse: P,
}

impl<P: TypedValueParser> TypedValueParser for Choices<P> {
    type Value = P::Value;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Self::Value, clap::Error> {
        self.parse.parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(self.names.iter().copied().map(PossibleValue::new)))
    }
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    daemon: DaemonArgs,
    /// Configuration file (TOML) to load, and to reload on SIGHUP; its [global] settings
    /// apply where the command line does not set them
    #[arg(short = 'c', long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct DemoArgs {
    #[command(flatten)]
    daemon: DaemonArgs,
    /// Where the demo's virtual service listens
    #[arg(long, value_name = "ADDR:PORT", value_hint = ValueHint::Other, default_value_t = uvs::demo::VIP)]
    vip: std::net::SocketAddr,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ImportFormat {
    /// ldirectord's configuration (ldirectord.cf)
    Ldirectord,
    /// ipvsadm-save (ipvsadm -S) output, or any ipvsadm -R input
    Ipvsadm,
    /// keepalived's configuration (keepalived.conf): its virtual servers
    Keepalived,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: hold the table, balance the traffic, serve the control socket.
    Run(RunArgs),
    /// Print an ldirectord.cf, an ipvsadm-save dump or a keepalived.conf as uvs TOML;
    /// what could not be taken goes to stderr with its line (exit 1 when anything was
    /// left out but keepalived's own VRRP and globals).
    Import {
        #[arg(value_enum)]
        format: ImportFormat,
        /// The file to read ("-" for standard input)
        #[arg(value_name = "FILE", value_hint = ValueHint::FilePath)]
        file: PathBuf,
    },
    /// Check a configuration file without starting anything: every problem, with its
    /// line and column; exit 0 when there is none, 1 otherwise.
    Check {
        /// The configuration file (TOML)
        #[arg(short = 'c', long, value_name = "FILE", value_hint = ValueHint::FilePath)]
        config: PathBuf,
    },
    /// Run a demonstration: a VIP on 127.0.0.1:8080 balancing two built-in backends, no
    /// setup.
    #[command(mut_arg("socket", |a| a.help(
        "Control socket path [default: $UVS_SOCKET, else a new uvs-demo-<pid>/uvs.sock in $TMPDIR]"
    )))]
    Demo(DemoArgs),
    /// Show what a running daemon is doing: services, listeners, real servers.
    Status {
        /// Control socket path [default: as for uvs run]
        #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
        socket: Option<PathBuf>,
    },
    /// Drain a real server: no new connections or UDP flows, its established ones go
    /// on; it is removed when the last one ends, or at the deadline with the rest
    /// closed. Exit 0 once the drain has started; ipvsadm's messages otherwise.
    Drain(drain::DrainArgs),
    /// Undo a drain: the real server takes new connections again at its weight.
    Undrain(drain::Target),
    /// Write the manual pages (uvs.8, uvsadm.8, uvs.toml.5) or the shell completions
    /// of uvs and uvsadm (bash/, zsh/, fish/) into DIR, which is made if missing.
    Generate {
        #[arg(value_enum)]
        what: generate::What,
        /// The directory to write into
        #[arg(value_name = "DIR", value_hint = ValueHint::DirPath)]
        dir: PathBuf,
    },
}

/// `default` is the filter when UVS_LOG is not set.
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("UVS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Completes on SIGTERM or SIGINT; a second one ends the drain that follows at once
/// (`daemon::cut_drain`). SIGHUP asks for a configuration reload (`reload`), and is
/// otherwise logged: it never kills the daemon.
async fn shutdown_signal(reload: Option<Arc<Notify>>) {
    // Counted before tokio's handlers exist, so that the count is raised before tokio's
    // driver hears of a delivery: tokio merges deliveries it has not yet reported, and
    // only the count tells two SIGINTs sent together from one.
    let counted = uvs::sys::signals::count_stop_signals()
        .inspect_err(|e| tracing::warn!("cannot count stop signals ({e}): a second signal sent with the first may not cut the drain"))
        .is_ok();
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the daemon with SIGKILL");
        return std::future::pending().await;
    };
    // The second stop signal is awaited by a task of its own: the drain runs after
    // this completes. One that came with the first is in the count already; a later one
    // is a new event for tokio.
    let second = move |mut term: tokio::signal::unix::Signal,
                       mut int: tokio::signal::unix::Signal| {
        tokio::spawn(async move {
            if !(counted && uvs::sys::signals::stop_signals() >= 2) {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            daemon::cut_drain();
        });
    };
    loop {
        tokio::select! {
            _ = term.recv() => return second(term, int),
            _ = int.recv() => return second(term, int),
            _ = hup.recv() => match &reload {
                Some(reload) => reload.notify_one(),
                None => tracing::info!("SIGHUP: no configuration file to reload (uvs run -c FILE)"),
            },
        }
    }
}

fn print_table(table: &Arc<TableHandle>) {
    let mut backend = LocalBackend {
        table: Arc::clone(table),
    };
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let mut stdin = std::io::empty();
    let mut session = Session {
        program: "uvsadm".into(),
        backend: &mut backend,
        names: &mut NoNames,
        stdout: &mut out,
        stderr: &mut err,
        stdin: &mut stdin,
        posix: false,
    };
    session.run(&["uvsadm".into(), "-L".into(), "-n".into()]);
}

impl DaemonArgs {
    /// The command line's layer of the settings: what was given, and only that.
    fn overrides(&self) -> Overrides {
        Overrides {
            mode: self.mode,
            socket: self.socket.clone(),
            cleanstop: self.keep_kernel_services.then_some(false),
            metrics: self.metrics,
            status_page: self.status_page,
            threads: self.threads,
            forwarding: self.forwarding,
            max_udp_flows: self.max_udp_flows,
            max_connections: self.max_connections,
            metrics_max_connections: self.metrics_max_connections,
            udp_unreplied_timeout: self.udp_unreplied_timeout,
            max_templates: self.max_templates,
            udp_flows_per_source: self.udp_flows_per_source,
            drain_timeout: self.drain_timeout.map(Duration::from_secs),
            expire_quiescent_template: self.expire_quiescent_template.then_some(true),
            connect_timeout: self.connect_timeout,
            retries: self.retries,
            client_congestion_control: self.client_congestion_control,
            server_congestion_control: self.server_congestion_control,
            ..Overrides::default()
        }
    }
}

/// Reads a configuration file, or says everything wrong with it.
fn read_config(path: &std::path::Path) -> anyhow::Result<Loaded> {
    match uvs::config::load(path) {
        Ok(loaded) => Ok(loaded),
        Err(LoadError::Invalid(problems)) => {
            // One line per problem, as a compiler would print them.
            eprintln!("{problems}");
            bail!("{}: {}", path.display(), problems.count())
        }
        // It names the file and what is wrong with it.
        Err(e) => bail!("{e}"),
    }
}

/// Standard input, for `uvs import -`: read as it comes, and at most as much as a file
/// may hold (`config::file::MAX_BYTES`), so that a stream without end (`yes | uvs
/// import ipvsadm -`) is refused rather than held in memory whole.
fn read_stdin() -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let limit = uvs::config::file::MAX_BYTES;
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .context("cannot read standard input")?;
    if bytes.len() as u64 > limit {
        bail!(
            "standard input is too large for a configuration file: over the limit of {limit} bytes ({} MiB)",
            limit >> 20
        );
    }
    Ok(bytes)
}

/// `uvs import FORMAT FILE`.
fn import(format: ImportFormat, file: &std::path::Path) -> anyhow::Result<()> {
    use uvs::config::import;
    let stdin = file == std::path::Path::new("-");
    let mut names = uvs::adm::names::SystemNames::new(uvs::adm::names::NameSources::from_env());
    let imported = match format {
        // ldirectord reads bytes: a comment in GBK or Latin-1 is still a comment.
        ImportFormat::Ldirectord => {
            let bytes = if stdin {
                read_stdin()?
            } else {
                uvs::config::file::read_bytes(file)?.0
            };
            import::ldirectord::import(&bytes, &mut names)
        }
        ImportFormat::Ipvsadm => {
            let text = if stdin {
                String::from_utf8(read_stdin()?)
                    .map_err(|_| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "stream did not contain valid UTF-8",
                        )
                    })
                    .context("cannot read standard input")?
            } else {
                uvs::config::file::read(file)?.text
            };
            import::ipvsadm::import(text.as_bytes(), &mut names)
        }
        // keepalived reads bytes too (fgets): what is not UTF-8 is in a comment or a value.
        ImportFormat::Keepalived => {
            let bytes = if stdin {
                read_stdin()?
            } else {
                uvs::config::file::read_bytes(file)?.0
            };
            import::keepalived::import(&String::from_utf8_lossy(&bytes), (!stdin).then_some(file))
                .map_err(|e| anyhow::anyhow!("{}:{e}", file.display()))?
        }
    };
    out(&uvs::config::render::render(&imported.config));
    eprint!("{}", imported.not_taken(file));
    let n = imported.failing();
    if n > 0 {
        bail!(
            "{}: {n} line{} not taken",
            file.display(),
            if n == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// `uvs check -c FILE`: problems are errors; real servers that would loop back into
/// the director, gate or ipip servers named at a port the table will not hold (the
/// table takes them, as ipvsadm does), and a `[sync]` interface this host does not
/// have, are warnings.
fn check(path: &std::path::Path) -> anyhow::Result<()> {
    let config = read_config(path)?.config;
    let table = uvs::config::plan::table_of(&config);
    let own = uvs::table::OwnAddresses::of(&table, HostInterfaces::addresses);
    for l in uvs::table::loops::loops(&table, &own) {
        eprintln!("{}: warning: {l}", path.display());
    }
    // A sync daemon's interface is the host's: one missing here makes `uvs run` wait
    // for it (`daemon::waiting_sync`), which is worth knowing before.
    for daemon in &config.sync {
        if let Err(e) = daemon::sync::resolve(daemon) {
            eprintln!(
                "{}: warning: sync.interface = \"{}\": {e} on this host: the {} sync daemon \
                 will not run until it is there (tried every {} s)",
                path.display(),
                daemon.interface,
                daemon.role.name(),
                uvs::sync::RETRY_INTERVAL.as_secs()
            );
        }
    }
    // Ports the table will not hold as written (gate and ipip servers, as ipvsadm).
    for w in uvs::config::schema::warnings(&uvs::config::file::read(path)?.text, path) {
        eprintln!("{w}");
    }
    let servers: usize = config.services.iter().map(|s| s.servers.len()).sum();
    out(&format!(
        "{}: OK, {} service{}, {} real server{}\n",
        path.display(),
        config.services.len(),
        if config.services.len() == 1 { "" } else { "s" },
        servers,
        if servers == 1 { "" } else { "s" }
    ));
    Ok(())
}

/// `uvs run`: with `-c`, the file's table is loaded before the socket opens, and
/// reloaded on SIGHUP (and on change with autoreload).
async fn run(args: RunArgs) -> anyhow::Result<()> {
    let overrides = args.daemon.overrides();
    let loaded = match &args.config {
        Some(path) => Some((path.clone(), read_config(path)?)),
        None => None,
    };
    let file = loaded.as_ref().map(|(_, l)| &l.config.global);
    let settings = Settings::resolve(file, &overrides);
    let (config, reload) = match loaded {
        Some((path, loaded)) => {
            let reload = Arc::new(Notify::new());
            let file = daemon::ConfigFile {
                path,
                loaded,
                overrides,
                reload: Arc::clone(&reload),
            };
            (Some(file), Some(reload))
        }
        None => (None, None),
    };
    daemon::run(settings, config, shutdown_signal(reload)).await?;
    Ok(())
}

/// `uvs status`. With no daemon there, one line: where it looked, by which rule, and
/// how to start one.
async fn status(socket: Option<PathBuf>) -> anyhow::Result<()> {
    let (socket, rule) = socket_path::chosen(socket);
    let mut client = Client::new(socket.clone());
    match client.call(&Request::Status {}) {
        Ok(Response::Status { status }) => {
            out(&uvs::status::render(&status));
            Ok(())
        }
        Ok(other) => bail!("unexpected answer from the daemon: {other:?}"),
        Err(uvs::adm::backend::BackendError::Unreachable { error, .. }) => {
            bail!(unreachable(&socket, &rule, &error))
        }
        Err(e) => Err(e.into()),
    }
}

/// What `uvs status` says when it cannot connect. Only a missing socket (no such file)
/// and one nobody listens on (refused: a daemon that died) mean "no daemon"; denied
/// means a socket is there (or a directory on the way is closed) that this user may not
/// use, so starting another daemon is the wrong advice.
fn unreachable(
    socket: &std::path::Path,
    rule: &socket_path::Rule,
    error: &std::io::Error,
) -> String {
    use std::io::ErrorKind;
    use std::os::unix::fs::MetadataExt;
    let s = socket.display();
    // Connecting to a directory or a plain file is refused too: say what is there.
    let not_a_socket = std::fs::metadata(socket).ok().and_then(|m| {
        use std::os::unix::fs::FileTypeExt;
        let t = m.file_type();
        (!t.is_socket()).then_some(if t.is_dir() {
            "a directory"
        } else {
            "not a socket"
        })
    });
    if let (ErrorKind::ConnectionRefused, Some(what)) = (error.kind(), not_a_socket) {
        return format!(
            "{s} ({rule}) is {what}, not a uvs control socket; give the daemon's socket (--socket PATH, or $UVS_SOCKET)"
        );
    }
    match error.kind() {
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => format!(
            "no uvs daemon at {s} ({rule}): {error}; start one with `uvs run -c FILE` (or `uvs demo`, which prints its own --socket)"
        ),
        ErrorKind::PermissionDenied => {
            // Who may: connecting needs write permission on the socket, so the group
            // only where the mode gives it; past a closed directory, whoever may enter.
            let (there, who) = match std::fs::metadata(socket) {
                Ok(m) => (
                    format!(
                        "the socket is there (owner uid {}, group gid {}, mode {:04o})",
                        m.uid(),
                        m.gid(),
                        m.mode() & 0o7777
                    ),
                    if m.mode() & 0o020 != 0 {
                        "as root, or as its owner or a member of its group"
                    } else {
                        "as root or as its owner"
                    },
                ),
                Err(_) => (
                    "a directory on the way to it is closed to this user".to_string(),
                    "as root, or as a user who may enter that directory",
                ),
            };
            format!(
                "access to the uvs control socket at {s} ({rule}) is denied: {error}; {there}: run `uvs status` {who}"
            )
        }
        _ => format!("cannot reach the uvs daemon at {s} ({rule}): {error}"),
    }
}

/// Writes `text` to standard output. A reader that went away (`uvs status | head -1`)
/// is no error: what it did not want is not written.
fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

// The control plane (socket, listeners, estimator, sweeper) runs on this thread; the
// connections run on the director's worker threads.
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // One request to the daemon each, with ipvsadm's exit statuses: no event loop.
    match &cli.command {
        Command::Drain(args) => return drain::drain(args),
        Command::Undrain(target) => return drain::undrain(target),
        _ => {}
    }
    // The demo's only listen address is its VIP, and a VIP it cannot serve ends the demo
    // with the cause (and the low-port hint) in one line: the listener manager's
    // "retrying" warnings would say otherwise.
    init_logging(match cli.command {
        Command::Demo(_) => "info,uvs::proxy::listeners=error",
        _ => "info",
    });
    // Built here rather than by #[tokio::main], which panics when it cannot be made
    // (under an open-files limit too small for its event loop).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("uvs: cannot start the event loop: {e} (is the open-files limit too small?)");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(dispatch(cli.command));
    // A blocking thread still in a read that hangs (a file check on a stale mount) is
    // not waited for: dropping the runtime would wait for it, and the stop with it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The chain of causes, without anyhow's debug form (and backtrace).
            eprintln!("uvs: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `uvs demo`: the banner only once the VIP listens over TCP and UDP; when it cannot,
/// the cause and exit 1, and no banner.
async fn demo(args: DaemonArgs, vip: std::net::SocketAddr) -> anyhow::Result<()> {
    let settings = Settings::resolve(None, &args.overrides());
    let director = daemon::director(&settings, true)?;
    let backends = uvs::demo::start(&director.table, vip).await?;
    let (rs1, rs2) = backends.tcp;
    // Its directory, when the demo made it, is removed as this goes out of scope:
    // after the daemon below has stopped and removed the socket.
    let demo_socket = uvs::demo::socket(args.socket.clone());
    let socket = demo_socket.path().to_path_buf();
    let settings = Settings {
        socket: socket.clone(),
        ..settings
    };
    let udp_note = if backends.udp == backends.tcp {
        String::new()
    } else {
        format!(
            " (over UDP: RS1 on {} and RS2 on {})",
            backends.udp.0, backends.udp.1
        )
    };
    // Why the VIP cannot be listened on, when it cannot: the daemon then stops at once.
    let failed = std::cell::Cell::new(None);
    let shutdown = async {
        // One set of signal handlers from the start: a Ctrl-C while waiting is not lost.
        let stop = shutdown_signal(None);
        tokio::pin!(stop);
        tokio::select! {
            ready = uvs::demo::ready::listening(&director, vip) => {
                if let Err(e) = ready {
                    failed.set(Some(e));
                    return;
                }
            }
            () = &mut stop => return,
        }
        println!(
            "uvs demo: a VIP on {vip}, TCP and UDP, balances round robin over two built-in\nbackends, RS1 on {rs1} and RS2 on {rs2}{udp_note}:\n"
        );
        print_table(&director.table);
        let programs = uvs::demo::hints::Programs::here();
        // The page's hint only where this daemon serves it: the metrics address may be
        // another program's (a `uvs run` on the same default port), or the page off.
        let (page, not_served) = demo_page(&socket).await;
        println!(
            "\n{}{}Stop with Ctrl-C.",
            uvs::demo::hints::hints(vip, &socket, &programs, page),
            not_served.map_or(String::new(), |why| format!("  (no status page: {why})\n"))
        );
        stop.await;
    };
    daemon::serve(Arc::clone(&director), &settings, None, shutdown).await?;
    if let Some(e) = failed.into_inner() {
        return Err(e.into());
    }
    Ok(())
}

/// Where the demo's daemon serves its status page, asked of the daemon itself (from a
/// blocking thread: the socket is served on this one): Some(address), or None and why
/// not (metrics off: None and None).
async fn demo_page(socket: &std::path::Path) -> (Option<std::net::SocketAddr>, Option<String>) {
    let socket = socket.to_path_buf();
    let asked =
        tokio::task::spawn_blocking(move || Client::new(socket).call(&Request::Status {})).await;
    let Ok(Ok(Response::Status { status })) = asked else {
        return (None, None);
    };
    match status.metrics {
        None => (None, None),
        Some(m) => match m
            .strip_prefix("at http://")
            .and_then(|url| url.strip_suffix("/metrics"))
            .and_then(|addr| addr.parse().ok())
        {
            Some(at) => (Some(at), None),
            None if m.ends_with("(status page off)") => (None, None),
            None => (None, Some(format!("metrics {m}"))),
        },
    }
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => run(args).await,
        Command::Check { config } => check(&config),
        Command::Import { format, file } => import(format, &file),
        Command::Demo(DemoArgs { daemon: args, vip }) => demo(args, vip).await,
        Command::Status { socket } => status(socket).await,
        Command::Drain(_) | Command::Undrain(_) => unreachable!("answered in main"),
        Command::Generate { what, dir } => {
            generate::generate(what, &dir, <Cli as clap::CommandFactory>::command())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{Args as _, Parser as _};
    use uvs::daemon::settings::SETTINGS;

    use super::{Cli, Command, DaemonArgs};

    /// Drift: a flag added to `DaemonArgs` and not to the list of settings (with its
    /// `[global]` key and when it applies) fails here, and so does a listed flag that
    /// is gone.
    #[test]
    fn every_daemon_flag_is_a_listed_setting_and_every_listed_flag_a_daemon_flag() {
        let args = DaemonArgs::augment_args(clap::Command::new("uvs"));
        let mut flags: Vec<&str> = args.get_arguments().filter_map(|a| a.get_long()).collect();
        flags.sort_unstable();
        let mut listed: Vec<&str> = SETTINGS.iter().filter_map(|s| s.flag).collect();
        listed.sort_unstable();
        assert_eq!(flags, listed);
    }

    fn overrides(args: &[&str]) -> uvs::daemon::settings::Overrides {
        let cli = Cli::try_parse_from(["uvs", "run"].iter().chain(args)).unwrap();
        let Command::Run(run) = cli.command else {
            unreachable!("parsed as run")
        };
        run.daemon.overrides()
    }

    /// Every flag, given, overrides its setting; none given, none does (a switch such
    /// as --expire-quiescent-template included).
    #[test]
    fn a_flag_overrides_its_setting_only_when_given() {
        let given = overrides(&[
            "--mode=userspace",
            "--socket=/x/uvs.sock",
            "--keep-kernel-services",
            "--metrics=off",
            "--status-page=off",
            "--threads=2",
            "--forwarding=copy",
            "--max-udp-flows=9",
            "--max-connections=9",
            "--metrics-max-connections=9",
            "--udp-unreplied-timeout=9s",
            "--max-templates=9",
            "--udp-flows-per-source=9",
            "--drain-timeout=9",
            "--expire-quiescent-template",
            "--connect-timeout=9s",
            "--retries=9",
            "--client-congestion-control=reno",
            "--server-congestion-control=reno",
        ]);
        let none = overrides(&[]);
        for s in SETTINGS {
            assert_eq!(given.sets(s.key), s.flag.is_some(), "{}", s.key);
            assert!(!none.sets(s.key), "{}", s.key);
        }
        assert_eq!(given.cleanstop, Some(false));
        assert_eq!(given.expire_quiescent_template, Some(true));
        assert_eq!(given.metrics, Some(None));
    }
}
