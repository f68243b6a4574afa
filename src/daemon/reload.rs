//! Keeping the table in line with the configuration file: the first load at start, and
//! reloads on SIGHUP and, with `autoreload = true`, whenever the file changes (its
//! stamp is looked at every second, as ldirectord's autoreload polls, and a change is
//! read once two polls in a row saw it the same, `watch`; an editor's atomic rename is
//! seen too). Reading and parsing happen on a thread of their own (`slot`), with a
//! deadline on the read (a hung mount) and a longer one on the parse, so a reload
//! never holds up the control thread, which serves uvsadm,
//! /metrics and the signals; only the apply runs on it. A reload applies only the
//! difference (`plan`), all of it or none: a file that does not read, an invalid one,
//! or a change the table refuses, is reported and the running table stays exactly as
//! it was. The health checks the file asks for run from here too, and a server going
//! up or down is applied the same way (`health::effective`). The file's `[global]`
//! settings go to the daemon, which knows the command line ([`GlobalSettings`]). Run
//! by `uvs run -c FILE`.
//!
//! What the file owns is the file's: a uvsadm command that changes it (`-e` on one of
//! its services, say) lasts until the next reload, or health change, re-applies the
//! file. Both are said at WARN: the change, when it is made
//! ([`Reloader::apply_from_control`], at most a line per thing touched per ten
//! seconds), and the reload that undoes it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::waiting_sync::{WaitingDaemons, resolve_or_wait};
use crate::config::file::{self, Stamp};
use crate::config::plan::{Owned, Touched, plan};
use crate::config::slot::{Lift, Outcome, Slot};
use crate::config::status::ConfigStatus;
use crate::config::watch::Watch;
use crate::config::{Config, Global, LoadError, Loaded, schema};
use crate::health::{self, Findings, checker::Checker};
use crate::lock::Locked;
use crate::proxy::director::Director;
use crate::rate_limit::RateLimit;
use crate::table::loops::loops;
use crate::table::{
    Command, HostInterfaces, ListenAddr, OwnAddresses, Protocol, Source, SyncDaemon, Table,
    TableError,
};

/// For the log line of an edit from the file that changes who may connect to a
/// service (its access list, limits, `accept_proxy`: no ipvsadm words say it, so the
/// command's text alone reads as if nothing changed), what it now is, as
/// `; allow 3, deny 1, deny_action drop, limits connections_per_source 10`; "" for any
/// other command.
fn admission_words(command: &Command, before: &Table) -> String {
    let Command::EditService(c) = command else {
        return String::new();
    };
    let Some(old) = before.service(&c.key) else {
        return String::new();
    };
    let (was, now) = (&old.options, &c.options);
    if was.admission == now.admission
        && was.accept_proxy == now.accept_proxy
        && was.accept_proxy_timeout_ms == now.accept_proxy_timeout_ms
    {
        return String::new();
    }
    let a = &now.admission;
    let mut words = Vec::new();
    match &a.access {
        Some(list) => words.push(format!(
            "allow {}, deny {}",
            list.allow().len(),
            list.deny().len()
        )),
        None => words.push("no access list".to_string()),
    }
    if a.access.is_some() || a.limits.is_some() {
        words.push(format!("deny_action {}", a.deny_action.name()));
    }
    if a.close_denied {
        words.push("close_denied".to_string());
    }
    match &a.limits {
        Some(l) => {
            let set: Vec<String> = [
                ("connections_per_source", l.connections_per_source),
                ("new_per_second_per_source", l.new_per_second_per_source),
                ("flows_per_source", l.flows_per_source),
            ]
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
            words.push(format!("limits {}", set.join(", ")));
        }
        None => words.push("no limits".to_string()),
    }
    match now.accept_proxy {
        Some(v) => words.push(format!("accept_proxy {}", v.name())),
        None if was.accept_proxy.is_some() => words.push("no accept_proxy".to_string()),
        None => {}
    }
    format!("; {}", words.join(", "))
}

/// For the log line of an edit from the file that changes a service's sources
/// (`source`, `source_ports`: no ipvsadm words say them either), what they now are,
/// as `; source 127.0.0.2-127.0.0.3, source ports 20000-29999` or `; source none`; ""
/// for any other command.
fn source_words(command: &Command, before: &Table) -> String {
    let Command::EditService(c) = command else {
        return String::new();
    };
    let Some(old) = before.service(&c.key) else {
        return String::new();
    };
    if old.options.source == c.options.source {
        return String::new();
    }
    let Some(source) = &c.options.source else {
        return "; source none".to_string();
    };
    let config = source.config();
    let mut words = Vec::new();
    if !config.addresses.is_empty() {
        let list: Vec<String> = config.addresses.iter().map(|r| r.to_string()).collect();
        words.push(format!("source {}", list.join(" ")));
    }
    if let Some(p) = config.ports {
        words.push(format!("source ports {p}"));
    }
    format!("; {}", words.join(", "))
}

/// The log target of what is logged here: the module's before it moved from config/,
/// so the log reads as it did (`INFO uvs::config::reload: table changed: ...`).
const LOG: &str = "uvs::config::reload";

/// Refuses a table that would listen on more new addresses than the data plane has
/// descriptors for (each takes one per worker), counting those it stops listening on
/// as freed (a UDP address keeps its sockets while its flows drain, so only TCP's).
fn room_for_listeners(director: &Director, now: &Table, next: &Table) -> Result<(), ReloadError> {
    let listening = |t: &Table| -> std::collections::HashSet<ListenAddr> {
        t.listen_addresses().into_iter().map(|(l, _)| l).collect()
    };
    let (before, after) = (listening(now), listening(next));
    let per_address = director.workers.len();
    let added = after
        .difference(&before)
        .filter(|l| !director.listeners.is_accepting(l))
        .count();
    let freed = before
        .difference(&after)
        .filter(|l| l.protocol == Protocol::Tcp && director.listeners.is_accepting(l))
        .count();
    let budget = &director.descriptors;
    let needed = added * per_address;
    let free = budget.free() + freed * per_address;
    if needed > free {
        return Err(ReloadError::Descriptors {
            addresses: added,
            needed,
            free,
            open_files: budget.open_files(),
            reserved: budget.reserve().total(),
        });
    }
    Ok(())
}

/// Commands that changed one thing the file owns, through the control socket, since
/// the file was last applied (what the next apply undoes), or that put it back: the
/// first [`COMMANDS_KEPT`], as ipvsadm lines, and how many more.
#[derive(Debug, Default)]
struct Commands {
    kept: Vec<String>,
    more: usize,
}

const COMMANDS_KEPT: usize = 4;

/// At most this many changes undone are named one by one in a reload's log.
const UNDONE_NAMED: usize = 8;

impl Commands {
    fn add(&mut self, command: &Command) {
        if self.kept.len() < COMMANDS_KEPT {
            self.kept.push(command.to_string());
        } else {
            self.more += 1;
        }
    }
}

/// The first [`UNDONE_NAMED`] of `touched`, then how many more: "tcp V, tcp W, 3 more".
fn named(touched: &[&Touched]) -> String {
    let mut what: Vec<String> = touched
        .iter()
        .take(UNDONE_NAMED)
        .map(ToString::to_string)
        .collect();
    if touched.len() > UNDONE_NAMED {
        what.push(format!("{} more", touched.len() - UNDONE_NAMED));
    }
    what.join(", ")
}

/// What the control socket changed of one thing the file owns since the file was last
/// applied, and the rate limit of the warnings that say so.
#[derive(Debug, Default)]
struct Change {
    commands: Commands,
    said: RateLimit,
}

/// "-e ...; -e ... and 2 more"
impl std::fmt::Display for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.kept.join("; "))?;
        if self.more > 0 {
            write!(f, " and {} more", self.more)?;
        }
        Ok(())
    }
}

/// How often `autoreload` looks at the file.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How long reading the file for a reload may take before the reload is abandoned (and
/// reported as refused). A real configuration takes milliseconds; a file on a mount
/// that stopped answering would take forever. Parsing what was read is not counted:
/// it is bounded by the file's size limit (`file::MAX_BYTES`), and a file of 100 000
/// services, 10 MB, takes seconds (README, "Large tables").
pub const READ_DEADLINE: Duration = Duration::from_secs(10);

/// How long reading and parsing the file may take in all, once it is read: parsing a
/// file at the size limit takes seconds (26 s for `uvs check` of one with four busy
/// loops on two cores), so this only ends a parse that would never end.
pub const PARSE_DEADLINE: Duration = Duration::from_secs(300);

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("the table refused `{command}': {error}")]
    Refused { command: String, error: TableError },
    /// The table would listen on more addresses than the data plane has descriptors
    /// for; the running table stays, and a reload once descriptors are free works.
    #[error(
        "the configuration adds {addresses} listen address{}, which take {needed} \
         descriptors, and the data plane has {free} free (open-files limit {open_files}, \
         {reserved} kept for the control plane): raise the open-files limit (LimitNOFILE) \
         or listen on fewer addresses",
        if *addresses == 1 { "" } else { "es" }
    )]
    Descriptors {
        addresses: usize,
        needed: usize,
        free: usize,
        open_files: usize,
        reserved: usize,
    },
    /// The file is empty (or blank): taken as it is, it would remove every service it
    /// made, which a file caught between a truncation and the next write looks like.
    #[error(
        "{} is empty: a reload would remove every service it made; refused (to mean it, \
         leave a comment in the file)",
        path.display()
    )]
    Empty { path: PathBuf },
    /// Reading the file took longer than `after` ([`READ_DEADLINE`]), or, once read,
    /// reading and parsing it did (`parsing`, [`PARSE_DEADLINE`]).
    #[error(
        "{} {} took longer than {} s: the reload was abandoned",
        if *parsing { "reading and parsing" } else { "reading" },
        path.display(),
        after.as_secs()
    )]
    Abandoned {
        path: PathBuf,
        after: Duration,
        parsing: bool,
    },
    /// No thread could be started to read the file, or it died without an answer.
    #[error("cannot read {}: {why}", path.display())]
    Reader { path: PathBuf, why: String },
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub commands: usize,
}

/// What becomes of the `[global]` settings of every file the reloader applies, at
/// start and on each reload. The daemon decides (`daemon::settings::Running`): it knows
/// the command line, which wins over the file, and which settings apply live and which
/// at the next start; the reloader itself plans only the table (and `autoreload`).
pub trait GlobalSettings: Send + Sync {
    /// `file`'s `[global]`, `global`, was applied to `director`'s table.
    fn applied(&self, file: &Path, global: &Global, director: &Director);
}

/// The configuration file behind a running daemon, and the health checks it asks for.
pub struct Reloader {
    path: PathBuf,
    /// What the last applied file named, and that file; one lock for both, held while a
    /// change is planned and applied.
    applied: Mutex<(Owned, Option<Arc<Config>>)>,
    checker: Checker,
    /// Rung by the checks when a server goes up or down.
    health_changed: Arc<Notify>,
    /// What becomes of the file's `[global]` settings.
    settings: Box<dyn GlobalSettings>,
    autoreload: AtomicBool,
    /// The file as read at start, and a hash of its contents.
    read_at_start: (Stamp, u64),
    /// Lines that a storm of SIGHUPs would repeat.
    quiet: RateLimit,
    refused_again: RateLimit,
    waiting: RateLimit,
    /// What the health checks know (the checker writes it; the table follows it).
    health: Arc<Findings>,
    /// Changes by the control socket to what the file owns, which the next apply
    /// undoes (locked after `applied`, never before).
    /// One entry per thing touched: at most what the file owns.
    changed_by_control: Mutex<HashMap<Touched, Change>>,
    /// The file's fate, for the status report (None until a first apply or refusal).
    status: Mutex<Option<ConfigStatus>>,
    /// The file's `[sync]` daemons whose interface is missing (locked after `applied`,
    /// never before).
    waiting_sync: Mutex<WaitingDaemons>,
}

/// Why a reload reads the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Hangup,
    /// Autoreload: two polls saw the file changed, and the same, as this.
    Changed(Stamp),
}

impl Why {
    fn words(self) -> &'static str {
        match self {
            Why::Hangup => "SIGHUP",
            Why::Changed(_) => "file changed",
        }
    }
}

/// A job of the reloader's reading thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    /// Autoreload's poll: the file's stamp.
    Look,
    Read(Why),
}

/// What the reading thread found.
enum Found {
    Stamp(Option<Stamp>),
    File(Box<Read>),
}

/// The file as a reload read it.
struct Read {
    /// As it stood once read (or, when it could not be read, as a stat found it).
    stamp: Option<Stamp>,
    /// A hash of the contents, when they were read.
    digest: Option<u64>,
    /// The configuration; None when the contents hash to `unless` (unchanged).
    config: Result<Option<Config>, ReloadError>,
}

/// Reads and parses `path`, on the reading thread (its deadline lifted once the file is
/// read); parsing is skipped when the contents hash to `unless`.
fn read(path: &Path, unless: Option<u64>, lift: &Lift) -> Read {
    match file::read(path) {
        Ok(text) => {
            // Read: the parse is bounded by the size limit, not by the deadline.
            lift.lift();
            let digest = text.digest();
            let config = if Some(digest) == unless {
                Ok(None)
            } else if text.text.trim().is_empty() {
                // Most likely caught between a truncation and the write that follows.
                Err(ReloadError::Empty {
                    path: path.to_path_buf(),
                })
            } else {
                schema::parse(&text.text, path)
                    .map(Some)
                    .map_err(|p| ReloadError::Load(LoadError::Invalid(p)))
            };
            Read {
                stamp: Some(text.stamp),
                digest: Some(digest),
                config,
            }
        }
        Err(e) => Read {
            stamp: Stamp::at(path).ok(),
            digest: None,
            config: Err(ReloadError::Load(e)),
        },
    }
}

/// The reloader task's own state: the reading thread's slot, the job in it, and what
/// autoreload knows of the file.
struct Reading {
    slot: Slot<Found>,
    job: Option<Job>,
    /// A SIGHUP that came while the slot was busy: one more reload once it is free,
    /// however many came.
    again: bool,
    watch: Watch,
    /// A hash of the contents last read, applied or refused: a file rewritten with the
    /// same contents (a `touch`) is not reloaded.
    digest: Option<u64>,
    /// When autoreload looks next: POLL_INTERVAL after the last look ended, so two
    /// looks that agree mean the file held still for at least that long.
    next_poll: tokio::time::Instant,
}

impl Reloader {
    /// A reloader for `path`, whose contents `loaded` were read at start (nothing applied
    /// yet); its health checks write to `health`, at most `probes` at once (their share
    /// of the descriptor reserve); each file's `[global]` goes to `settings`.
    pub fn new(
        path: &Path,
        loaded: &Loaded,
        health: Arc<Findings>,
        probes: usize,
        settings: Box<dyn GlobalSettings>,
    ) -> Reloader {
        let health_changed = Arc::new(Notify::new());
        let findings = Arc::clone(&health);
        Reloader {
            path: path.to_path_buf(),
            applied: Mutex::new((Owned::default(), None)),
            checker: Checker::new(health, Arc::clone(&health_changed), probes),
            health_changed,
            settings,
            autoreload: AtomicBool::new(loaded.config.global.autoreload),
            read_at_start: (loaded.stamp, loaded.digest),
            quiet: RateLimit::new(),
            refused_again: RateLimit::new(),
            waiting: RateLimit::new(),
            health: findings,
            changed_by_control: Mutex::new(HashMap::new()),
            status: Mutex::new(None),
            waiting_sync: Mutex::new(WaitingDaemons::default()),
        }
    }

    /// The daemon stops: the health checks end, and `omega` services run their
    /// `notify_down` and `quorum_down` commands (`Checker::stop`).
    pub async fn stop(&self) {
        self.checker.stop().await;
    }

    /// The reloader's piece of the status report: the file's fate, None before the
    /// first apply.
    pub fn status(&self) -> Option<ConfigStatus> {
        self.status.locked().clone()
    }

    /// Makes the table say what `config` says, given the servers' health, and checks
    /// the servers it asks to be checked. Must be called inside a Tokio runtime.
    pub fn apply(&self, director: &Director, config: &Config) -> Result<Applied, ReloadError> {
        self.apply_owned(director, config.clone())
    }

    /// [`Reloader::apply`] of a configuration read for it: kept as it is, and shared
    /// with the health checks, never copied.
    fn apply_owned(&self, director: &Director, config: Config) -> Result<Applied, ReloadError> {
        let config = Arc::new(config);
        let mut applied = self.applied.locked();
        let commands = self.make_table(director, &config, &applied.0, "file")?;
        applied.0 = Owned::of(&config);
        applied.1 = Some(Arc::clone(&config));
        drop(applied);
        self.checker.readmit_in(&director.table);
        self.checker.follow_shared(Arc::clone(&config));
        let config = &*config;
        self.record(|c| {
            c.applied_at = crate::clock::unix_seconds();
            c.last_error = None;
            c.groups = crate::config::status::GroupStatus::of(config);
        });
        self.settings.applied(&self.path, &config.global, director);
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
        // Only a file with health checks has servers whose health changes the table: for
        // any other the file is the table, taken as it is (not copied).
        let checked = config
            .services
            .iter()
            .any(|s| health::watched(&config.global, s));
        let wanted = if checked {
            std::borrow::Cow::Owned(health::effective(config, &self.health))
        } else {
            std::borrow::Cow::Borrowed(config)
        };
        let mut commands = plan(&wanted, &snapshot, owned);
        let waiting = if why == "file" {
            // A sync daemon's interface is the host's: looked up, and the daemon resolved
            // for it, before anything is applied (`super::sync`); one whose interface is
            // missing waits, and the rest of the file is applied (`waiting_sync`).
            resolve_or_wait(&mut commands)
        } else {
            // A health change moves servers, never the sync daemons: re-planning them
            // here would restart one uvsadm stopped, or fail on an interface that went.
            commands.retain(|c| {
                !matches!(
                    c,
                    Command::StartSyncDaemon(_) | Command::StopSyncDaemon { .. }
                )
            });
            Vec::new()
        };
        let refused = |i: usize, error: TableError| ReloadError::Refused {
            command: commands[i].to_string(),
            error,
        };
        // The checks see the very table that is published, and a refusal (by the table
        // or by them) leaves the running one as it was (`table::effect`).
        let check = |now: &Table, next: &Table| {
            if director.options.userspace {
                room_for_listeners(director, now, next)?;
            }
            if why == "file" {
                // Every load and reload names the real servers that are the director itself.
                let own = OwnAddresses::of(next, HostInterfaces::addresses);
                for l in loops(next, &own) {
                    tracing::warn!(target: LOG, file = %self.path.display(), "{l}");
                }
            }
            Ok(())
        };
        director
            .table
            .apply_all_from(&commands, Source::File, refused, check)?;
        for command in &commands {
            let admission = admission_words(command, &snapshot);
            let source = source_words(command, &snapshot);
            tracing::info!(target: LOG, file = %self.path.display(), by = why, "table changed: {command}{admission}{source}");
        }
        self.say_undone(&commands, why);
        if why == "file" {
            // Said once: a reload that leaves a daemon waiting as it was says nothing.
            let news = self.waiting_sync.locked().replace(waiting, &director.sync);
            for w in &news {
                tracing::error!(target: LOG, file = %self.path.display(),
                    "the {} sync daemon cannot start: {}; the rest of the file is applied, and \
                     the daemon is tried again every {} s",
                    w.daemon.role.name(), w.reason(), crate::sync::RETRY_INTERVAL.as_secs()
                );
            }
        }
        Ok(commands.len())
    }

    /// The file's `[sync]` daemons that wait for their interface, tried again: those
    /// whose interface is there now are started (as the file's), under the lock a
    /// reload holds. Called every [`RETRY_INTERVAL`](crate::sync::RETRY_INTERVAL) by
    /// [`Reloader::run`] while any waits.
    fn retry_sync(&self, director: &Director) {
        let _applied = self.applied.locked();
        let table = &director.table;
        let running = |role| table.snapshot().sync_daemons().get(role).is_some();
        let retried = self.waiting_sync.locked().retry(&director.sync, running);
        let path = self.path.display();
        for w in &retried.changed {
            tracing::error!(target: LOG, file = %path,
                "the {} sync daemon still cannot start: {}", w.daemon.role.name(), w.reason());
        }
        for daemon in retried.ready {
            let command = Command::StartSyncDaemon(daemon);
            let result = table.apply_all_from(
                std::slice::from_ref(&command),
                Source::File,
                |_, e| e,
                |_, _| Ok(()),
            );
            match result {
                Ok(()) => tracing::info!(target: LOG, file = %path,
                    "sync.interface is there now: table changed: {command}"),
                Err(e) => tracing::error!(target: LOG, file = %path,
                    "the file's `{command}' was refused: {e}"),
            }
        }
    }

    /// Applies `command`, from the control socket, to `table` (`applied` runs once it
    /// is: the control server's line), and if it changed something the file owns,
    /// remembers it, so that the reload that undoes it can say so, and says at WARN
    /// that the next reload will. All under the lock a reload holds, so no reload
    /// comes between the change and its record. The warning is limited per thing
    /// touched: the first change at once, then at most one line per
    /// [`INTERVAL_SECONDS`](crate::rate_limit::INTERVAL_SECONDS) with the count held
    /// back (500 commands of a `-R` make one line), afresh after each reload; the
    /// count held back is said by the next line, or once the interval is over by
    /// [`Reloader::say_held`]. A deletion (`-d`, `-D`, `-C`, `--delete-listener`) is
    /// always said at once. uvsadm's own output is not touched. Errors: the table's
    /// refusal.
    pub fn apply_from_control(
        &self,
        director: &Director,
        command: &Command,
        applied: &dyn Fn(),
    ) -> Result<(), TableError> {
        let table = &director.table;
        let file = self.applied.locked();
        let drained_out = matches!(command, Command::Undrain { service, server }
            if table.snapshot().service(service).is_some_and(|s| s.drained_out.contains(server)));
        if drained_out
            && let Command::Undrain { service, .. } = command
            && (file.1.is_none() || !file.0.services.contains(service))
        {
            // No file names it: nothing would bring it back (`uvsadm -a` does).
            return super::handles::gone_for_good(table, command);
        }
        table.apply(command)?;
        applied();
        if let Command::StartSyncDaemon(SyncDaemon { role, .. }) = command {
            // uvsadm decides this role now, until the next reload: the file's daemon
            // stops waiting for its interface.
            self.waiting_sync.locked().forget(*role, &director.sync);
        }
        if file.1.is_none() {
            return Ok(()); // not applied yet: nothing is the file's
        }
        if drained_out {
            // `uvs undrain` of a server a command-line drain removed: the file may
            // have it again, now rather than at the next reload (`table::pool`).
            self.health_changed.notify_one();
        }
        let touched = file.0.touched_by(command);
        if touched.is_empty() {
            return Ok(());
        }
        // A deletion (-d, -D, -C, --delete-listener, --stop-daemon) is rare and the most
        // consequential: always said at once, with what was held back of the thing it
        // deletes.
        let deletion = matches!(
            command,
            Command::DeleteServer { .. }
                | Command::DeleteService { .. }
                | Command::Flush {}
                | Command::DeleteListener { .. }
                | Command::StopSyncDaemon { .. }
        );
        let mut changes = self.changed_by_control.locked();
        let (mut said, mut held) = (Vec::new(), 0);
        for t in &touched {
            let change = changes.entry(*t).or_default();
            change.commands.add(command);
            if deletion {
                said.push(t);
                held += change.said.flush_now().unwrap_or(0);
            } else {
                change.said.warn(|h| {
                    said.push(t);
                    held += h;
                });
            }
        }
        drop(changes);
        if said.is_empty() {
            return Ok(());
        }
        let more = if held > 0 {
            format!(
                " ({held} more {} to it not logged since the last such line)",
                crate::words::plural(held, "change", "changes")
            )
        } else {
            String::new()
        };
        let path = self.path.display();
        // Said under the lock too, so it comes before the reload that undoes it.
        tracing::warn!(target: LOG,
            "uvsadm changed {}, which {path} owns ({command}): the next reload of {path} will undo it{more}",
            named(&said)
        );
        drop(file);
        Ok(())
    }

    /// The counts of the warnings of `apply_from_control` held back, once their
    /// interval is over, in one line: without it a change held back would be said only
    /// if another came after it (or by the reload that undoes it). Called every
    /// [`POLL_INTERVAL`] by [`Reloader::run`].
    fn say_held(&self) {
        let changes = self.changed_by_control.locked();
        let mut held: Vec<(&Touched, u64)> = changes
            .iter()
            .filter_map(|(t, change)| Some((t, change.said.flush()?)))
            .filter(|(_, n)| *n > 0)
            .collect();
        if held.is_empty() {
            return;
        }
        held.sort_by_cached_key(|(t, _)| t.to_string());
        let n: u64 = held.iter().map(|(_, n)| n).sum();
        let touched: Vec<&Touched> = held.iter().map(|(t, _)| *t).collect();
        let path = self.path.display();
        tracing::warn!(target: LOG,
            "uvsadm made {n} more {} to {}, which {path} owns, not logged since the last such \
             line: the next reload of {path} will undo {}",
            crate::words::plural(n, "change", "changes"),
            named(&touched),
            if n == 1 { "it" } else { "them" }
        );
    }

    /// After `commands` made the table say what the file says again: names the
    /// control socket's changes they undid (`why`: "file" for a load or reload, or a
    /// health check), and forgets them all.
    fn say_undone(&self, commands: &[Command], why: &str) {
        let changes = std::mem::take(&mut *self.changed_by_control.locked());
        if changes.is_empty() {
            return;
        }
        // What put each change back, in one pass over the commands.
        let mut back: HashMap<Touched, Commands> = HashMap::new();
        for command in commands {
            for t in Touched::put_back_by(command) {
                if changes.contains_key(&t) {
                    back.entry(t).or_default().add(command);
                }
            }
        }
        let mut undone: Vec<(String, &Commands, Commands)> = back
            .into_iter()
            .filter_map(|(t, back)| Some((t.to_string(), &changes.get(&t)?.commands, back)))
            .collect();
        undone.sort_by(|a, b| a.0.cmp(&b.0));
        let file = self.path.display();
        let by = if why == "file" {
            format!("reload of {file}")
        } else {
            format!("{why}: re-applying {file}")
        };
        for (touched, changed, back) in undone.iter().take(UNDONE_NAMED) {
            tracing::warn!(target: LOG,
                "{by} undoes the control socket's change to {touched} ({changed}): {back}"
            );
        }
        if undone.len() > UNDONE_NAMED {
            tracing::warn!(target: LOG,
                "{by} undoes the control socket's changes to {} more services or listeners",
                undone.len() - UNDONE_NAMED
            );
        }
    }

    /// A server went up or down: the table follows the configuration as it now stands.
    fn follow_health(&self, director: &Director) {
        let applied = self.applied.locked();
        let (owned, Some(config)) = (&applied.0, &applied.1) else {
            return;
        };
        if let Err(e) = self.make_table(director, config, owned, "health check") {
            tracing::error!(target: LOG, file = %self.path.display(), "a health change could not be applied: {e}");
        }
    }

    /// Updates what `uvs status` says of the file.
    fn record(&self, change: impl FnOnce(&mut ConfigStatus)) {
        let mut status = self.status.locked();
        let status = status.get_or_insert_with(|| ConfigStatus {
            path: self.path.display().to_string(),
            ..ConfigStatus::default()
        });
        change(status);
    }

    /// Logs a reload's result and records it for `uvs status`.
    ///
    /// A storm of SIGHUPs must not become a storm of log lines: a reload that changed
    /// nothing, and a refusal for the same reasons as the last one (whose whole list
    /// was logged), are said at most every ten seconds.
    fn report(&self, why: Why, result: Result<Applied, ReloadError>) {
        let mut again = false;
        self.record(|c| match &result {
            Ok(_) => c.reloads += 1,
            Err(e) => {
                c.refused += 1;
                let text = e.to_string();
                again = c.last_error.as_deref() == Some(text.as_str());
                c.last_error = Some(text);
            }
        });
        match result {
            Ok(a) if a.commands == 0 => {
                self.quiet.warn(|suppressed| {
                    tracing::info!(target: LOG,
                        file = %self.path.display(),
                        changes = 0,
                        suppressed,
                        "{}: configuration reloaded",
                        why.words()
                    );
                });
            }
            Ok(a) => tracing::info!(target: LOG,
                file = %self.path.display(),
                changes = a.commands,
                "{}: configuration reloaded",
                why.words()
            ),
            Err(_) if again => {
                self.refused_again.warn(|suppressed| {
                    tracing::error!(target: LOG,
                        file = %self.path.display(),
                        suppressed,
                        "{}: reload refused again, for the same reasons as before (uvs status \
                         lists them); the running table is unchanged",
                        why.words()
                    );
                });
            }
            Err(e) => tracing::error!(target: LOG,
                file = %self.path.display(),
                "{}: reload refused, the running table is unchanged:\n{e}",
                why.words()
            ),
        }
    }

    /// Puts `job` on the reading thread; the slot must be free.
    fn start(&self, reading: &mut Reading, job: Job) {
        let path = self.path.clone();
        let started = match job {
            Job::Look => {
                reading
                    .slot
                    .start("uvs-autoreload", READ_DEADLINE, READ_DEADLINE, move |_| {
                        Found::Stamp(Stamp::at(&path).ok())
                    })
            }
            Job::Read(why) => {
                // SIGHUP reloads whatever the contents; autoreload only a change.
                let unless = match why {
                    Why::Hangup => None,
                    Why::Changed(_) => reading.digest,
                };
                reading
                    .slot
                    .start("uvs-reload", READ_DEADLINE, PARSE_DEADLINE, move |lift| {
                        Found::File(Box::new(read(&path, unless, lift)))
                    })
            }
        };
        match started {
            Ok(()) => reading.job = Some(job),
            Err(e) => match job {
                Job::Look => {
                    // Every second while it lasts: said at most every ten.
                    static LOOK_FAILED: crate::rate_limit::RateLimit =
                        crate::rate_limit::RateLimit::new();
                    LOOK_FAILED.warn(|suppressed| {
                        tracing::warn!(target: LOG, file = %self.path.display(), error = %e, suppressed, "autoreload: cannot look at the file");
                    });
                }
                Job::Read(why) => {
                    let why_not = ReloadError::Reader {
                        path: self.path.clone(),
                        why: format!("cannot start a thread to read it: {e}"),
                    };
                    self.report(why, Err(why_not));
                }
            },
        }
    }

    /// The job on the reading thread ended (or was abandoned) with `outcome`.
    fn finished(&self, director: &Director, reading: &mut Reading, outcome: Outcome<Found>) {
        let job = reading.job;
        if !reading.slot.busy() {
            reading.job = None;
        }
        match (job, outcome) {
            (Some(Job::Look), Outcome::Finished(Found::Stamp(stamp))) => {
                reading.next_poll = tokio::time::Instant::now() + POLL_INTERVAL;
                if reading.watch.poll(stamp)
                    && let Some(stamp) = stamp
                {
                    self.start(reading, Job::Read(Why::Changed(stamp)));
                }
            }
            (Some(Job::Read(why)), Outcome::Finished(Found::File(found))) => {
                self.read_done(director, reading, why, *found);
                // The file, its parse and the plan are freed by now; most of it in
                // the reading thread's arena, which glibc keeps unless asked.
                crate::sys::release_free_memory();
            }
            (Some(Job::Read(why)), outcome @ (Outcome::Overdue { .. } | Outcome::Lost)) => {
                if let Why::Changed(stamp) = why {
                    // Remembered as read, so autoreload does not retry it every second.
                    reading.watch.was_read(Some(stamp));
                    reading.digest = None;
                }
                let error = if let Outcome::Overdue { lifted } = outcome {
                    ReloadError::Abandoned {
                        path: self.path.clone(),
                        after: if lifted {
                            PARSE_DEADLINE
                        } else {
                            READ_DEADLINE
                        },
                        parsing: lifted,
                    }
                } else {
                    ReloadError::Reader {
                        path: self.path.clone(),
                        why: "the reading thread failed".into(),
                    }
                };
                self.report(why, Err(error));
            }
            (Some(Job::Look), Outcome::Overdue { .. }) => {
                tracing::warn!(target: LOG,
                    file = %self.path.display(),
                    "autoreload: looking at the file took longer than {} s; no reload until it answers",
                    READ_DEADLINE.as_secs()
                );
            }
            (_, Outcome::Ended) => {
                tracing::info!(target: LOG, file = %self.path.display(), "an abandoned read of the file ended");
            }
            // A look that failed is a look that found nothing; a job and an answer that
            // do not match cannot happen.
            _ => {}
        }
    }

    /// A reload's read came back: apply it, or say why not.
    fn read_done(&self, director: &Director, reading: &mut Reading, why: Why, found: Read) {
        if let Why::Changed(polled) = why
            && found.stamp != Some(polled)
        {
            // Written again since the polls agreed: maybe caught half-way. Read once
            // this new state has held for a poll.
            reading.watch.moved_on(found.stamp);
            return;
        }
        reading.watch.was_read(found.stamp);
        reading.digest = found.digest;
        let result = match found.config {
            // The same contents as last read: nothing to do.
            Ok(None) => return,
            Ok(Some(config)) => self.apply_owned(director, config),
            Err(e) => Err(e),
        };
        self.report(why, result);
    }

    /// Reloads on every `hangup` notification, and when the file changes if
    /// `autoreload` is on; until the task is aborted. Must run on the control thread's
    /// runtime: the table is changed from here.
    pub async fn run(self: Arc<Self>, director: Arc<Director>, hangup: Arc<Notify>) {
        let (stamp, digest) = self.read_at_start;
        let mut reading = Reading {
            slot: Slot::default(),
            job: None,
            again: false,
            watch: Watch::new(Some(stamp)),
            digest: Some(digest),
            next_poll: tokio::time::Instant::now() + POLL_INTERVAL,
        };
        let mut retry = tokio::time::interval(crate::sync::RETRY_INTERVAL);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = hangup.notified() => {
                    if reading.slot.busy() {
                        if reading.slot.stuck() {
                            self.waiting.warn(|suppressed| {
                                tracing::warn!(target: LOG,
                                    file = %self.path.display(),
                                    suppressed,
                                    "SIGHUP: an abandoned read of the file has not ended; the reload waits for it"
                                );
                            });
                        }
                        reading.again = true;
                    } else {
                        self.start(&mut reading, Job::Read(Why::Hangup));
                    }
                }
                () = self.health_changed.notified() => self.follow_health(&director),
                _ = retry.tick() => {
                    if self.waiting_sync.locked().any() {
                        self.retry_sync(&director);
                    }
                }
                () = tokio::time::sleep_until(reading.next_poll) => {
                    reading.next_poll = tokio::time::Instant::now() + POLL_INTERVAL;
                    self.say_held();
                    // A poll that finds the slot busy is skipped: one read at a time.
                    if self.autoreload.load(Relaxed) && !reading.slot.busy() {
                        self.start(&mut reading, Job::Look);
                    }
                }
                outcome = reading.slot.done() => {
                    self.finished(&director, &mut reading, outcome);
                    if reading.again && !reading.slot.busy() {
                        reading.again = false;
                        self.start(&mut reading, Job::Read(Why::Hangup));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::admission::{AccessList, ClientLimits, DenyAction};
    use crate::table::{ServiceConfig, ServiceKey, UnicastOnly};

    fn table_with(config: &ServiceConfig) -> Table {
        let mut table = Table::new();
        let _ = table
            .apply(&Command::AddService(config.clone()), &UnicastOnly)
            .unwrap();
        table
    }

    /// An edit of who may connect says what it makes of it; other edits say nothing.
    #[test]
    fn an_edit_of_who_may_connect_is_said_in_the_log_line() {
        let key = ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr: "127.0.0.1".parse().unwrap(),
            port: 80,
        };
        let plain = ServiceConfig::new(key, "rr");
        let mut guarded = plain.clone();
        let prefix = |s: &str| s.parse().unwrap();
        guarded.options.admission.access = Some(Arc::new(AccessList::new(
            vec![prefix("10.0.0.0/8"), prefix("10.1.0.0/16"), prefix("::1")],
            vec![prefix("10.2.0.0/16")],
        )));
        guarded.options.admission.deny_action = DenyAction::Drop;
        guarded.options.admission.limits = Some(ClientLimits {
            connections_per_source: 10,
            ..ClientLimits::default()
        });
        let before = table_with(&plain);
        assert_eq!(
            admission_words(&Command::EditService(plain.clone()), &before),
            ""
        );
        assert_eq!(
            admission_words(&Command::EditService(guarded.clone()), &before),
            "; allow 3, deny 1, deny_action drop, limits connections_per_source 10"
        );
        let before = table_with(&guarded);
        assert_eq!(
            admission_words(&Command::EditService(plain), &before),
            "; no access list, no limits"
        );
    }

    /// An edit of the sources says what they now are; other edits say nothing.
    #[test]
    fn an_edit_of_the_sources_is_said_in_the_log_line() {
        use crate::table::source::{AddrRange, PortRange, Source, SourceConfig};
        let key = ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr: "127.0.0.1".parse().unwrap(),
            port: 80,
        };
        let plain = ServiceConfig::new(key, "rr");
        let mut sourced = plain.clone();
        sourced.options.source = Some(Arc::new(Source::new(SourceConfig {
            addresses: vec![
                AddrRange {
                    first: "127.0.0.2".parse().unwrap(),
                    last: "127.0.0.3".parse().unwrap(),
                },
                AddrRange {
                    first: "::1".parse().unwrap(),
                    last: "::1".parse().unwrap(),
                },
            ],
            ports: Some(PortRange {
                low: 20000,
                high: 29999,
            }),
        })));
        let before = table_with(&plain);
        assert_eq!(
            source_words(&Command::EditService(plain.clone()), &before),
            ""
        );
        assert_eq!(
            source_words(&Command::EditService(sourced.clone()), &before),
            "; source 127.0.0.2-127.0.0.3 ::1, source ports 20000-29999"
        );
        let before = table_with(&sourced);
        assert_eq!(source_words(&Command::EditService(sourced), &before), "");
        assert_eq!(
            source_words(&Command::EditService(plain), &before),
            "; source none"
        );
    }
}
