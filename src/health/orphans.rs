//! What external health checks leave behind. A check's command runs in a process group
//! of its own, killed whole when the check ends ([`CheckCommand`]), but a process can
//! leave the group: shell job control (`set -m`), setpgid, setsid, a daemon's double
//! fork. So `uvs run` makes the daemon a child subreaper ([`Reaper::start`]): every
//! process whose parent dies is re-parented to the daemon instead of init, wherever it
//! went. A pass then kills (SIGKILL) and reaps every child of the daemon that is not a
//! check command tokio owns, and reaps every zombie such an orphan became by exiting on
//! its own. A process still in the group of a check that runs is spared: the check's end
//! takes it. Passes run when an external check ends (the command's drop wakes the
//! reaper, which looks at once and again a moment later, when what the killed command
//! left has been re-parented), every few seconds, and at shutdown (the [`Reaper`]'s
//! drop, until no child is left running). What is killed is logged at most every ten
//! seconds, with a count.
//!
//! Called by `health::command`, which spawns every command the checker runs (external
//! checks, notify commands) through [`spawn`], and
//! by `main`, which starts the [`Reaper`] for `uvs run` only. The daemon starts no other
//! child process. Any future child process must be spawned through [`spawn`] (or
//! registered as it does), or the reaper kills it as a leftover; a child the daemon was
//! given across exec, by a wrapper that forked before exec'ing `uvs run`, is killed too.
//!
//! Tokio reaps its own children (their exit status is the check's verdict): a pass never
//! waits on a registered command, even after the check dropped it (tokio's orphan queue
//! reaps it then), and forgets it only once it is gone from /proc (or its pid names a
//! process started at another time).

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::lock::Locked;
use crate::rate_limit::RateLimit;

/// How often the daemon looks for leftovers when no check has ended meanwhile.
pub const PERIOD: Duration = Duration::from_secs(2);

/// After a pass, the next look: a killed command's children are re-parented once it
/// has died, and killed leftovers become zombies to reap.
const SETTLE: Duration = Duration::from_millis(100);

/// How long the shutdown waits for its children to die.
const SHUTDOWN: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum OrphanError {
    #[error("cannot become a child subreaper: {0}")]
    Subreaper(io::Error),
    #[error("cannot list this process's children in {}: {source}", path.display())]
    Children { path: PathBuf, source: io::Error },
}

/// A check command tokio owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Registered {
    pid: u32,
    /// When it started (/proc/PID/stat starttime), to tell it from a later process with
    /// the same pid; None if that could not be read.
    start: Option<u64>,
    /// Its check still runs: the processes of its group are its own.
    running: bool,
}

/// Killed since the last log line.
#[derive(Debug, Default)]
struct Tally {
    killed: u64,
    programs: BTreeMap<String, u64>,
}

/// The most program names one log line gives.
const NAMES: usize = 8;

impl Tally {
    fn add(&mut self, program: &str) {
        self.killed += 1;
        if self.programs.len() < NAMES || self.programs.contains_key(program) {
            *self.programs.entry(program.to_string()).or_default() += 1;
        }
    }

    /// One line: how many were killed since the last, and which programs they ran.
    fn log(&mut self) {
        if self.killed == 0 {
            return;
        }
        let programs = self
            .programs
            .iter()
            .map(|(name, n)| format!("{n} {name}"))
            .collect::<Vec<_>>()
            .join(", ");
        tracing::warn!(
            killed = self.killed,
            programs = ?programs,
            "killed processes that external checks left behind"
        );
        *self = Tally::default();
    }
}

/// What the passes know of the daemon's children.
#[derive(Debug)]
struct State {
    /// The check commands tokio owns.
    commands: Vec<Registered>,
    /// Leftovers killed and not yet dead, as (pid, starttime): counted once.
    killed: Vec<(u32, u64)>,
    tally: Tally,
}

/// The passes' side of the process. Process-wide, as the subreaper attribute is.
struct Registry {
    /// This process is a subreaper and a reaper runs: check commands are registered.
    enabled: AtomicBool,
    /// A check command was spawned: the periodic passes have something to look after.
    spawned: AtomicBool,
    /// Held across a spawn, so that a pass never sees a check command before it is
    /// registered, and across a pass.
    state: Mutex<State>,
    wake: Notify,
    log_limit: RateLimit,
    scan_failed: RateLimit,
}

static REGISTRY: Registry = Registry {
    enabled: AtomicBool::new(false),
    spawned: AtomicBool::new(false),
    state: Mutex::new(State {
        commands: Vec::new(),
        killed: Vec::new(),
        tally: Tally {
            killed: 0,
            programs: BTreeMap::new(),
        },
    }),
    wake: Notify::const_new(),
    log_limit: RateLimit::new(),
    scan_failed: RateLimit::new(),
};

impl Registry {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.locked()
    }
}

/// Spawns an external check's command in a process group of its own (its pid is the
/// group's number), registered as tokio's while it has not been reaped.
pub fn spawn(command: &mut tokio::process::Command) -> io::Result<CheckCommand> {
    command.process_group(0).kill_on_drop(true);
    let mut state = REGISTRY.state();
    let child = command.spawn()?;
    let pid = child.id();
    if let Some(pid) = pid
        && REGISTRY.enabled.load(Ordering::Relaxed)
    {
        state.commands.push(Registered {
            pid,
            start: stat(pid).map(|s| s.start),
            running: true,
        });
        REGISTRY.spawned.store(true, Ordering::Relaxed);
    }
    Ok(CheckCommand { child, pid })
}

/// An external check's command. Dropped, as the check ends by exit, timeout or abort
/// (the probe's timeout drops the future), it kills its process group, so whatever the
/// command started and left in the group goes with it, and wakes the reaper for what
/// left the group.
pub struct CheckCommand {
    child: tokio::process::Child,
    /// The command's pid and group; None if it was reaped before we could ask.
    pid: Option<u32>,
}

impl CheckCommand {
    /// Waits for the command to exit.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await
    }
}

impl Drop for CheckCommand {
    fn drop(&mut self) {
        let Some(pid) = self.pid else {
            return;
        };
        // After the command exited and was reaped the group number stays reserved while
        // members remain; once it is empty, ESRCH is the expected answer.
        static FAILED: RateLimit = RateLimit::new();
        if let Err(e) = crate::sys::kill_process_group(pid) {
            FAILED.warn(|suppressed| {
                tracing::warn!(pgid = pid, error = %e, suppressed, "cannot kill an external check's processes");
            });
        }
        // Reaped by tokio (here, or by wait): forgotten. Otherwise tokio's orphan queue
        // reaps it once it has died (the Child's drop hands it over), and a pass forgets
        // it once it is gone.
        let reaped = matches!(self.child.try_wait(), Ok(Some(_)));
        if REGISTRY.enabled.load(Ordering::Relaxed) {
            let mut state = REGISTRY.state();
            if reaped {
                state.commands.retain(|c| c.pid != pid);
            } else if let Some(c) = state.commands.iter_mut().find(|c| c.pid == pid) {
                c.running = false;
            }
            drop(state);
            REGISTRY.wake.notify_one();
        }
    }
}

/// The daemon's side: this process is a child subreaper, and passes run (on the runtime
/// it was started in) until it is dropped, which kills and reaps every child left.
pub struct Reaper {
    task: tokio::task::AbortHandle,
}

impl Reaper {
    /// Makes this process a child subreaper and starts the passes. For `uvs run` only,
    /// once, inside a Tokio runtime, before any check starts.
    pub fn start() -> Result<Reaper, OrphanError> {
        crate::sys::become_child_subreaper().map_err(OrphanError::Subreaper)?;
        REGISTRY.enabled.store(true, Ordering::Relaxed);
        let task = tokio::spawn(passes()).abort_handle();
        Ok(Reaper { task })
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.task.abort();
        // The check tasks may not have been dropped yet: their commands and groups are
        // killed here, and what they leave is re-parented here, until none runs.
        let deadline = Instant::now() + SHUTDOWN;
        loop {
            let running = pass(Scope::Everything);
            if running == 0 || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // What the rate limit held back, and what the shutdown killed.
        REGISTRY.state().tally.log();
        REGISTRY.enabled.store(false, Ordering::Relaxed);
    }
}

/// The periodic passes, and those a check's end asks for.
async fn passes() {
    loop {
        if REGISTRY.spawned.load(Ordering::Relaxed) {
            tokio::select! {
                _ = REGISTRY.wake.notified() => {}
                _ = tokio::time::sleep(PERIOD) => {}
            }
        } else {
            // No check command yet, so no leftovers: wait for one to end.
            REGISTRY.wake.notified().await;
        }
        pass(Scope::Leftovers);
        tokio::time::sleep(SETTLE).await;
        pass(Scope::Leftovers);
        let mut state = REGISTRY.state();
        if state.tally.killed > 0 {
            REGISTRY.log_limit.warn(|_| state.tally.log());
        }
    }
}

/// What a pass kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Children that are not registered check commands, nor in the group of a check
    /// that runs.
    Leftovers,
    /// Every child, check commands (and their groups) included: at shutdown.
    Everything,
}

/// One look at this process's children: kills what `scope` says and reaps every zombie
/// but tokio's. Returns how many children were still running (killed ones included,
/// until they die).
fn pass(scope: Scope) -> usize {
    let me = std::process::id();
    let mut state = REGISTRY.state();
    let State {
        commands,
        killed,
        tally,
    } = &mut *state;
    // Forget the commands tokio has reaped.
    commands.retain(|c| {
        stat(c.pid).is_some_and(|s| s.ppid == me && c.start.is_none_or(|start| start == s.start))
    });
    let children = match children() {
        Ok(children) => children,
        Err(e) => {
            REGISTRY.scan_failed.warn(|suppressed| {
                tracing::warn!(error = %e, suppressed, "cannot look for what external checks left behind");
            });
            return 0;
        }
    };
    let mut running = 0;
    let mut still_dying = Vec::new();
    for pid in children {
        // Checked again: the list may be stale, and only an unreaped child of ours is
        // sure to be the process its pid names.
        let Some(s) = stat(pid).filter(|s| s.ppid == me) else {
            continue;
        };
        let command = commands.iter().find(|c| c.pid == pid);
        if s.state == 'Z' {
            // Tokio reaps its own.
            if command.is_none() {
                let _ = crate::sys::reap_child(pid);
            }
            continue;
        }
        running += 1;
        let spare = match scope {
            Scope::Leftovers => {
                command.is_some() || commands.iter().any(|c| c.running && c.pid == s.pgrp)
            }
            Scope::Everything => false,
        };
        if spare {
            continue;
        }
        if command.is_some() {
            // Its group too, at once: the rest would only come here one by one.
            let _ = crate::sys::kill_process_group(pid);
        }
        if crate::sys::kill_process(pid).is_ok() && command.is_none() {
            if !killed.contains(&(pid, s.start)) {
                tally.add(&s.name);
            }
            still_dying.push((pid, s.start));
            // Dead already, or at the next pass.
            let _ = crate::sys::reap_child(pid);
        }
    }
    *killed = still_dying;
    running
}

/// What a pass needs of /proc/PID/stat.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stat {
    name: String,
    state: char,
    ppid: u32,
    pgrp: u32,
    /// starttime, in clock ticks since boot.
    start: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses; the fields
/// follow the last ')'. starttime is field 22.
fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let mut state = fields.first()?.chars();
    let (Some(state), None) = (state.next(), state.next()) else {
        return None;
    };
    Some(Stat {
        name,
        state,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// This process's children: each thread's /proc/self/task/TID/children (a child belongs
/// to the thread that forked it, or that it was re-parented to), or, on a kernel without
/// those files (CONFIG_PROC_CHILDREN), every process whose parent this is. Either may
/// miss a child being created or ending meanwhile: the next pass finds it.
fn children() -> Result<Vec<u32>, OrphanError> {
    let listing = read_proc_dir("/proc/self/task")?;
    let mut pids = Vec::new();
    for task in listing.flatten() {
        match std::fs::read_to_string(task.path().join("children")) {
            Ok(list) => pids.extend(parse_pids(&list)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && task.path().exists() => {
                return children_by_scan();
            }
            // A thread that ended meanwhile.
            Err(_) => {}
        }
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

/// Every process whose parent is this one, from /proc/PID/stat.
fn children_by_scan() -> Result<Vec<u32>, OrphanError> {
    let listing = read_proc_dir("/proc")?;
    let me = std::process::id();
    Ok(listing
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat(pid).is_some_and(|s| s.ppid == me))
        .collect())
}

/// The entries of a /proc directory that children are looked for in. Errors:
/// [`OrphanError::Children`], with the directory.
fn read_proc_dir(dir: &str) -> Result<std::fs::ReadDir, OrphanError> {
    std::fs::read_dir(dir).map_err(|source| OrphanError::Children {
        path: dir.into(),
        source,
    })
}

/// "12 34 56 ": the pids of a children file.
fn parse_pids(list: &str) -> impl Iterator<Item = u32> + '_ {
    list.split_whitespace().filter_map(|p| p.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_is_read_past_a_name_with_spaces_and_parentheses() {
        let line = "4242 (evil) Z (x) S 17 4240 4240 0 -1 4194304 95 0 0 0 0 0 0 0 20 0 1 0 \
                    123456 2441216 153 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                name: "evil) Z (x".into(),
                state: 'S',
                ppid: 17,
                pgrp: 4240,
                start: 123456,
            })
        );
        assert_eq!(parse_stat("4242 (sleep) S 17"), None, "cut short");
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn a_child_is_found_by_either_way_of_looking() {
        let me = std::process::id();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep");
        let pid = child.id();
        let listed = children().expect("children");
        let scanned = children_by_scan().expect("scan");
        let seen = stat(pid);
        let _ = child.kill();
        let _ = child.wait();
        assert!(listed.contains(&pid), "{listed:?} lacks {pid}");
        assert!(scanned.contains(&pid), "{scanned:?} lacks {pid}");
        let seen = seen.expect("the child's stat");
        assert_eq!((seen.name.as_str(), seen.ppid), ("sleep", me));
        assert_ne!(seen.state, 'Z');
    }

    #[test]
    fn pids_are_read_from_a_children_file() {
        assert_eq!(parse_pids("12 34 56 ").collect::<Vec<_>>(), [12, 34, 56]);
        assert_eq!(parse_pids("").count(), 0);
    }

    #[test]
    fn the_tally_names_a_few_programs_and_counts_all() {
        let mut tally = Tally::default();
        for i in 0..20 {
            tally.add(&format!("p{}", i % 10));
        }
        tally.add("p0");
        assert_eq!(tally.killed, 21);
        assert_eq!(tally.programs.len(), NAMES);
        assert_eq!(tally.programs.get("p0"), Some(&3));
    }
}
