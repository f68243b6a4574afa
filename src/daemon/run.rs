//! The daemon's wiring, from its settings to a running balancer and back: where to
//! balance (the kernel's IPVS or here), the director and its worker threads, the kernel
//! mirror, the configuration file and its reloader, the control socket, the metrics
//! endpoint, and the reaper of what external checks leave behind; then, once `shutdown`
//! completes, the same in reverse. `uvs run` (main.rs) calls [`run`] with the signals
//! as its shutdown; `uvs demo` builds a [`director`] of its own and [`serve`]s it; tests
//! start [`run`] in-process.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::reload::{ReloadError, Reloader};
use super::report::{MetricsEndpoint, Reporter};
use super::settings::{Overrides, Running, Settings};
use super::{Daemon, DaemonError};
use crate::config::{Loaded, Mode};
use crate::health::orphans::Reaper;
use crate::kernel::mirror::{self, Mirror, Unusable};
use crate::lock::Locked;
use crate::proxy::congestion::{self, CongestionError};
use crate::proxy::director::{Director, PlaneOptions};
use crate::table::{HostInterfaces, TableHandle};
use crate::workers::Workers;

/// The log target of what is logged here: the binary's, where this wiring was first,
/// so the log reads as it did (`INFO uvs: configuration loaded ...`).
const LOG: &str = "uvs";

/// Why the daemon could not start. Each names what failed; its cause is its
/// `source`, so `uvs: {error:#}` prints the whole chain.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// `mode = "kernel"`, and the kernel's IPVS cannot be used.
    #[error("mode kernel: {0}")]
    KernelMode(Unusable),
    /// A congestion control this kernel does not have (or lets no one use).
    #[error("{leg}_congestion_control")]
    Congestion {
        /// "client" or "server".
        leg: &'static str,
        #[source]
        source: CongestionError,
    },
    #[error("cannot start the worker threads")]
    Workers(#[source] std::io::Error),
    /// The control socket could not be bound.
    #[error("cannot start the control socket {}", path.display())]
    ControlSocket {
        path: PathBuf,
        #[source]
        source: DaemonError,
    },
    /// The table refused the configuration file at start.
    #[error("cannot load {}", path.display())]
    Load {
        path: PathBuf,
        #[source]
        source: ReloadError,
    },
}

/// The configuration file a daemon runs with: loaded at start, reloaded on `reload`
/// (and on change with `autoreload`).
pub struct ConfigFile {
    pub path: PathBuf,
    /// The file as read at start (`config::load`).
    pub loaded: Loaded,
    /// The command line's settings, which win over the file's on every reload.
    pub overrides: Overrides,
    /// Notified to reload the file (SIGHUP).
    pub reload: Arc<Notify>,
}

/// Runs the daemon `settings` describe, with the table of `config` when there is one,
/// until `shutdown` completes; then drains (`settings.drain_timeout`), removes the
/// control socket and, in kernel mode with `cleanstop`, uvs's services and sync daemons
/// from the kernel.
/// Must be called inside a Tokio runtime, whose thread becomes the control thread
/// (socket, listeners, reloads); connections run on the director's worker threads.
///
/// The daemon is made a child subreaper for as long as this runs ([`Reaper`]): every
/// child of the calling process that the health checks did not spawn is killed.
///
/// # Errors
/// [`RunError`]: the kernel's IPVS asked for and unusable, a congestion control or the
/// worker threads unavailable, the control socket not bound, the file refused.
pub async fn run(
    settings: Settings,
    config: Option<ConfigFile>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let _reaper = match Reaper::start() {
        Ok(reaper) => Some(reaper),
        Err(e) => {
            tracing::warn!(target: LOG,error = %e, "processes that leave an external check's process group will outlive it");
            None
        }
    };
    let (mirror, why) = choose_mode(settings.mode)?;
    let director = director(&settings, mirror.is_none())?;
    let mirror = mirror.map(|mut m| {
        // `uvs status` and the metrics show whether the kernel runs the table's daemons.
        let shows = Arc::clone(&director);
        m.report_daemons(Box::new(move |role, state| {
            shows.sync.set_state(role, state)
        }));
        Arc::new(Mutex::new(m))
    });
    let kernel = mirror
        .as_ref()
        .map(|m| tokio::spawn(mirror::run(Arc::clone(&director.table), Arc::clone(m))));
    // In kernel mode the kernel's own sync threads serve the table's daemons.
    let sync = mirror
        .is_none()
        .then(|| AbortOnDrop(tokio::spawn(crate::syncd::follow(Arc::clone(&director)))));
    let reporter = Reporter::new(director, Some(why));
    if let Some(mirror) = &mirror {
        reporter.set_kernel(Arc::clone(mirror));
    }
    let result = serve_reported(reporter, &settings, config, shutdown).await;
    drop(sync);
    if let (Some(task), Some(mirror)) = (kernel, mirror) {
        task.abort();
        if settings.cleanstop {
            mirror.locked().clean();
        } else {
            tracing::info!(target: LOG,"kernel: services and sync daemons left in the kernel (cleanstop off)");
        }
    }
    result
}

/// A task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where the traffic is balanced: the kernel (its IPVS, opened and checked) or here,
/// and why, in words.
fn choose_mode(mode: Mode) -> Result<(Option<Mirror>, String), RunError> {
    let (mirror, why) = match mode {
        Mode::Kernel => match mirror::open() {
            Ok(ipvs) => (
                Some(Mirror::new(ipvs)),
                "kernel: the table is programmed into the kernel's IPVS".to_string(),
            ),
            Err(e) => return Err(RunError::KernelMode(e)),
        },
        Mode::Auto => match mirror::open() {
            Ok(ipvs) => (
                Some(Mirror::new(ipvs)),
                "auto: kernel (the kernel has IPVS and uvs may change it)".to_string(),
            ),
            Err(e) => (None, format!("auto: userspace ({e})")),
        },
        Mode::Userspace => (None, "userspace: as asked".to_string()),
    };
    tracing::info!(target: LOG,"mode {why}");
    Ok((mirror, why))
}

/// The open-files limit, raised as far as allowed: every proxied connection holds two
/// sockets, every UDP flow one.
fn open_files_limit() -> Option<u64> {
    match crate::sys::raise_nofile_limit() {
        Ok(n) => {
            tracing::debug!(target: LOG,limit = n, "open files");
            Some(n)
        }
        Err(e) => {
            tracing::warn!(target: LOG,error = %e, "cannot raise the open-files limit");
            None
        }
    }
}

/// A director over an empty table, as `settings` ask, its data plane in userspace
/// (`userspace`) or not (the kernel moves the traffic). Raises the open-files limit.
///
/// # Errors
/// [`RunError::Congestion`], [`RunError::Workers`].
pub fn director(settings: &Settings, userspace: bool) -> Result<Arc<Director>, RunError> {
    // Refused here rather than on every connection.
    let legs = [
        ("client", settings.client_congestion_control),
        ("server", settings.server_congestion_control),
    ];
    for (leg, cc) in legs {
        if let Some(cc) = cc.filter(|cc| !cc.is_system()) {
            cc.check_usable()
                .map_err(|source| RunError::Congestion { leg, source })?;
        }
    }
    let open_files = open_files_limit();
    // Kernel mode does not ramp: the kernel schedules (`table::slow_start`).
    let table = Arc::new(TableHandle::new(Box::new(HostInterfaces)).with_slow_starts(userspace));
    let director = Director::new(
        table,
        PlaneOptions {
            forwarding: settings.forwarding,
            threads: settings
                .threads
                .map_or_else(Workers::default_count, usize::from),
            max_udp_flows: crate::proxy::udp::admission::max_flows(
                settings.max_udp_flows,
                open_files,
            ),
            connect_timeout: settings.connect_timeout,
            connect_retries: settings.retries,
            userspace,
            client_congestion: congestion::resolve_here(settings.client_congestion_control, false),
            server_congestion: congestion::resolve_here(settings.server_congestion_control, true),
            open_files,
            max_connections: settings.max_connections,
            metrics_connections: settings.metrics_max_connections,
            udp_unreplied_timeout: settings.udp_unreplied_timeout,
            udp_flows_per_source: settings.udp_flows_per_source,
            max_templates: settings.max_templates,
        },
    )
    .map_err(RunError::Workers)?;
    super::settings::apply_live(settings, &director);
    let budget = &director.descriptors;
    if userspace && budget.limit() < crate::descriptors::SMALL_SHARE {
        tracing::warn!(target: LOG,
            open_files = budget.open_files(),
            reserved = budget.reserve().total(),
            data_plane = budget.limit(),
            "the open-files limit leaves the data plane few descriptors: it will serve \
             few listen addresses and connections, if any; raise the limit (ulimit -n, \
             LimitNOFILE)"
        );
    }
    Ok(director)
}

/// Serves `director`, balancing in userspace, until `shutdown` completes: loads
/// `config` (and follows it) when there is one, binds the control socket and the
/// metrics endpoint, runs the [`Daemon`], then stops following the file.
///
/// # Errors
/// [`RunError::Load`], [`RunError::ControlSocket`].
pub async fn serve(
    director: Arc<Director>,
    settings: &Settings,
    config: Option<ConfigFile>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let reporter = Reporter::new(director, None);
    serve_reported(reporter, settings, config, shutdown).await
}

/// [`serve`], with the status report's `reporter` (which holds the director).
async fn serve_reported(
    reporter: Arc<Reporter>,
    settings: &Settings,
    config: Option<ConfigFile>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let Some(file) = config else {
        return serve_socket(reporter, settings, shutdown).await;
    };
    let director = Arc::clone(reporter.director());
    let ConfigFile {
        path,
        loaded,
        overrides,
        reload,
    } = file;
    let reloader = Arc::new(Reloader::new(
        &path,
        &loaded,
        Arc::clone(reporter.health()),
        director.descriptors.reserve().health_probes,
        Box::new(Running::new(
            settings.clone(),
            loaded.config.global.clone(),
            overrides,
        )),
    ));
    reporter.set_reloader(Arc::clone(&reloader));
    let config = loaded.config;
    let applied = match reloader.apply(&director, &config) {
        Ok(applied) => applied,
        Err(source) => return Err(RunError::Load { path, source }),
    };
    tracing::info!(target: LOG,file = %path.display(), changes = applied.commands, autoreload = config.global.autoreload, "configuration loaded");
    let watcher = tokio::spawn(Arc::clone(&reloader).run(Arc::clone(&director), reload));
    let result = serve_socket(reporter, settings, shutdown).await;
    watcher.abort();
    reloader.stop().await;
    result
}

async fn serve_socket(
    reporter: Arc<Reporter>,
    settings: &Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let daemon = Daemon::bind(&settings.socket, Arc::clone(&reporter)).map_err(|source| {
        RunError::ControlSocket {
            path: settings.socket.clone(),
            source,
        }
    })?;
    serve_metrics(&reporter, settings.metrics, settings.status_page).await;
    daemon.run(shutdown, settings.drain_timeout).await;
    Ok(())
}

/// Starts the metrics endpoint; a failed bind is logged and shown by `uvs status`, and
/// the daemon runs on without it.
async fn serve_metrics(
    reporter: &Arc<Reporter>,
    at: Option<std::net::SocketAddr>,
    status_page: bool,
) {
    let Some(addr) = at else {
        return;
    };
    let state = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => {
            let shown = listener.local_addr().unwrap_or(addr);
            if status_page {
                tracing::info!(target: LOG, address = %shown, "metrics at http://{shown}/metrics, status page at http://{shown}/");
            } else {
                tracing::info!(target: LOG, address = %shown, "metrics at http://{shown}/metrics (status page off)");
            }
            // The connections the descriptor budget keeps for it (--metrics-max-connections,
            // fewer under a small open-files limit).
            let limits = crate::exporter::http::Limits {
                max_connections: reporter
                    .director()
                    .descriptors
                    .reserve()
                    .metrics_connections,
                ..crate::exporter::http::Limits::default()
            };
            tokio::spawn(crate::exporter::http::serve(
                listener,
                Arc::clone(reporter) as _,
                limits,
                status_page,
            ));
            MetricsEndpoint::Serving {
                at: shown,
                page: status_page,
            }
        }
        Err(e) => {
            tracing::warn!(target: LOG,address = %addr, error = %e, "cannot serve metrics");
            MetricsEndpoint::NotServed {
                addr,
                error: e.to_string(),
            }
        }
    };
    reporter.set_metrics(state);
}
