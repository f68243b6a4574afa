//! Keeping the table in line with the configuration file: the first load at start, and
//! reloads on SIGHUP and, with `autoreload = true`, whenever the file's contents change
//! (checked every second, as ldirectord's autoreload polls; an editor's atomic rename
//! is seen too). A reload applies only the difference (`plan`), all of it or none: an
//! invalid file, or a change the table refuses, is reported and the running table stays
//! exactly as it was. The health checks the file asks for run from here too, and a
//! server going up or down is applied the same way (`health::effective`). Run by
//! `uvs run -c FILE`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::plan::{Owned, plan, rehearse};
use super::{Config, Global, LoadError, Loaded, load};
use crate::control::protocol::ConfigStatus;
use crate::director::Director;
use crate::health::{self, Book, checker::Checker};
use crate::table::{HostInterfaces, TableError};

/// How often `autoreload` looks at the file.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("the table refused `{command}': {error}")]
    Refused { command: String, error: TableError },
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub commands: usize,
}

/// The configuration file behind a running daemon, and the health checks it asks for.
pub struct Reloader {
    path: PathBuf,
    /// What the last applied file named, and that file; one lock for both, held while a
    /// change is planned and applied.
    applied: Mutex<(Owned, Option<Config>)>,
    checker: Checker,
    /// Rung by the checks when a server goes up or down.
    health_changed: Arc<Notify>,
    /// The settings read at start: changes to them wait for a restart.
    started_with: Global,
    autoreload: AtomicBool,
    /// The contents last loaded (a hash), so an unchanged file is not reloaded.
    loaded: Mutex<Option<u64>>,
}

fn fingerprint(path: &Path) -> Option<u64> {
    super::file::read(path).ok().map(|text| text.digest())
}

impl Reloader {
    /// A reloader for `path`, whose contents `loaded` were read at start (nothing applied
    /// yet).
    pub fn new(path: &Path, loaded: &Loaded, health: Arc<Book>) -> Reloader {
        let config = &loaded.config;
        let health_changed = Arc::new(Notify::new());
        Reloader {
            path: path.to_path_buf(),
            applied: Mutex::new((Owned::default(), None)),
            checker: Checker::new(health, Arc::clone(&health_changed)),
            health_changed,
            started_with: config.global.clone(),
            autoreload: AtomicBool::new(config.global.autoreload),
            loaded: Mutex::new(Some(loaded.digest)),
        }
    }

    /// Makes the table say what `config` says, given the servers' health, and checks
    /// the servers it asks to be checked. Must be called inside a Tokio runtime.
    pub fn apply(&self, director: &Director, config: &Config) -> Result<Applied, ReloadError> {
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        let commands = self.make_table(director, config, &applied.0, "file")?;
        applied.0 = Owned::of(config);
        applied.1 = Some(config.clone());
        drop(applied);
        self.checker.follow(config);
        self.record(director, |c| {
            c.applied_at = crate::conn::unix_seconds();
            c.last_error = None;
        });
        if let Some(on) = config.global.expire_quiescent_template {
            director.templates.set_expire_quiescent(on);
        }
        self.autoreload.store(config.global.autoreload, Relaxed);
        Ok(Applied { commands })
    }

    /// Plans and applies, all or nothing, the table `config` asks for given the
    /// servers' health; returns how many commands it took.
    fn make_table(
        &self,
        director: &Director,
        config: &Config,
        owned: &Owned,
        why: &str,
    ) -> Result<usize, ReloadError> {
        let snapshot = director.table.snapshot();
        let wanted = health::effective(config, &director.health);
        let commands = plan(&wanted, &snapshot, owned);
        let refused = |(i, error): (usize, TableError)| ReloadError::Refused {
            command: commands[i].to_string(),
            error,
        };
        rehearse(&snapshot, &commands, &HostInterfaces).map_err(refused)?;
        director.table.apply_all(&commands).map_err(refused)?;
        for command in &commands {
            tracing::info!(file = %self.path.display(), by = why, "table changed: {command}");
        }
        Ok(commands.len())
    }

    /// A server went up or down: the table follows the configuration as it now stands.
    fn follow_health(&self, director: &Director) {
        let applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        let (owned, Some(config)) = (&applied.0, &applied.1) else {
            return;
        };
        if let Err(e) = self.make_table(director, config, owned, "health check") {
            tracing::error!(file = %self.path.display(), "a health change could not be applied: {e}");
        }
    }

    /// Reads the file again and applies it.
    pub fn reload(&self, director: &Director) -> Result<Applied, ReloadError> {
        let seen = fingerprint(&self.path);
        let config = load(&self.path)?.config;
        self.warn_about_restart_settings(&config.global);
        let applied = self.apply(director, &config)?;
        *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = seen;
        Ok(applied)
    }

    fn warn_about_restart_settings(&self, new: &Global) {
        let old = &self.started_with;
        let waits = [
            ("socket", old.socket != new.socket),
            ("threads", old.threads != new.threads),
            ("forwarding", old.forwarding != new.forwarding),
            ("max_udp_flows", old.max_udp_flows != new.max_udp_flows),
            ("drain_timeout", old.drain_timeout != new.drain_timeout),
            ("mode", old.mode != new.mode),
            ("metrics", old.metrics != new.metrics),
            (
                "connect_timeout",
                old.connect_timeout != new.connect_timeout,
            ),
            ("retries", old.retries != new.retries),
            (
                "client_congestion_control",
                old.client_congestion_control != new.client_congestion_control,
            ),
            (
                "server_congestion_control",
                old.server_congestion_control != new.server_congestion_control,
            ),
        ];
        for (key, changed) in waits {
            if changed {
                tracing::warn!(file = %self.path.display(), key = %format!("global.{key}"), "changed; it takes effect at the next start");
            }
        }
    }

    /// Updates what `uvs status` says of the file.
    fn record(&self, director: &Director, change: impl FnOnce(&mut ConfigStatus)) {
        let mut status = director.config.lock().unwrap_or_else(|e| e.into_inner());
        let status = status.get_or_insert_with(|| ConfigStatus {
            path: self.path.display().to_string(),
            ..ConfigStatus::default()
        });
        change(status);
    }

    fn reload_and_log(&self, director: &Director, why: &str) {
        let result = self.reload(director);
        self.record(director, |c| match &result {
            Ok(_) => c.reloads += 1,
            Err(e) => {
                c.refused += 1;
                c.last_error = Some(e.to_string());
            }
        });
        match result {
            Ok(a) => tracing::info!(
                file = %self.path.display(),
                changes = a.commands,
                "{why}: configuration reloaded"
            ),
            Err(e) => {
                // The file is remembered as seen, so autoreload does not retry it every
                // second; the next change to it is tried.
                *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = fingerprint(&self.path);
                tracing::error!(
                    file = %self.path.display(),
                    "{why}: reload refused, the running table is unchanged:\n{e}"
                );
            }
        }
    }

    /// Reloads on every `hangup` notification, and when the file changes if
    /// `autoreload` is on; until the task is aborted.
    pub async fn run(self: Arc<Self>, director: Arc<Director>, hangup: Arc<Notify>) {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = hangup.notified() => self.reload_and_log(&director, "SIGHUP"),
                () = self.health_changed.notified() => self.follow_health(&director),
                _ = tick.tick() => {
                    if !self.autoreload.load(Relaxed) {
                        continue;
                    }
                    let now = fingerprint(&self.path);
                    let before = *self.loaded.lock().unwrap_or_else(|e| e.into_inner());
                    if now.is_some() && now != before {
                        self.reload_and_log(&director, "file changed");
                    }
                }
            }
        }
    }
}
