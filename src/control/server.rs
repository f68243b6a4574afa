//! The daemon's side of the control socket: binds the socket (mode 0600, in a directory
//! no other user can replace it in, refusing to take over a live one), accepts clients,
//! and answers each request from the table and the daemon's report, both read through
//! the [`Daemon`] handle the daemon passes in. Garbage, oversized or unknown requests get
//! an error answer and never reach the table. Clients hold one of a fixed number of
//! slots (their part of the descriptor reserve, [`crate::descriptors::CONTROL_CLIENTS`]
//! unless the open-files limit is small); a client silent for [`IDLE_TIMEOUT`] is
//! dropped, and when every slot is taken the longest idle client makes room for a new
//! one (else the one slowest to send its request or take its answer), so neither idle
//! nor stalled clients can lock `uvsadm` out.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::AbortHandle;

use super::protocol::{
    MAX_REQUEST_BYTES, ProtocolError, Request, Response, decode_request, encode_response,
};
use crate::lock::Locked;
use crate::sys;
use crate::table::{Command, ConnEntry, Info, ServiceEntry, ServiceKey, TableError, TableHandle};

/// What the control server reads and changes of the running daemon: the daemon passes
/// one in, so that this module knows nothing of the daemon's parts.
pub trait Daemon: Send + Sync + 'static {
    /// The table requests read and change.
    fn table(&self) -> &TableHandle;
    /// `-L -c`: connections and persistence templates (in kernel mode, the kernel's).
    fn connections(&self) -> Vec<ConnEntry>;
    /// `-L`, `-S`: every service (in kernel mode, the kernel's whole table).
    fn services(&self) -> Vec<ServiceEntry> {
        self.table().snapshot().entries()
    }
    /// `-L -t VIP`: one service (in kernel mode, the kernel's too). Errors: "No such
    /// service".
    fn service(&self, key: &ServiceKey) -> Result<ServiceEntry, TableError> {
        self.table().snapshot().entry(key)
    }
    /// `-L --daemon`: the sync daemons that run, defaults filled in (in kernel mode,
    /// the kernel's). Errors: the table's words for why they cannot be read.
    fn sync_daemons(&self) -> Result<Vec<crate::table::SyncDaemon>, TableError> {
        let table = self.table().snapshot();
        Ok(table.sync_daemons().iter().cloned().collect())
    }
    /// `uvs status`, in its wire form.
    fn status(&self) -> super::protocol::Status;
    /// Clients served at once (their part of the descriptor reserve; at least 1).
    fn max_clients(&self) -> usize;
    /// Applies `command` to the table; `applied` runs once it is, before anything
    /// else can change the table. A daemon with a configuration file applies it and
    /// records what it changes of the file's as one step with respect to reloads (so a
    /// reload cannot put the file back between the two, leaving a change recorded
    /// that no longer is), and may say so in its log, after `applied`'s line.
    /// Errors: the table's refusal.
    fn apply(&self, command: &Command, applied: &dyn Fn()) -> Result<(), TableError> {
        self.table().apply(command)?;
        applied();
        Ok(())
    }
}

/// A client that sends nothing for this long, first or between requests, is
/// disconnected. uvsadm reconnects by itself after a pause.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// A request body must arrive within this time once its length has.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// An answer must be taken within this time.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "another uvs daemon is already listening on {}{}; stop it, or give this one \
         another socket (--socket PATH, or $UVS_SOCKET)",
        path.display(),
        owner.map_or(String::new(), |uid| format!(" (a process of uid {uid})"))
    )]
    InUse {
        path: PathBuf,
        /// Whose it is, when that is another user.
        owner: Option<u32>,
    },
    #[error("refusing to replace {}: it exists and is not a socket", .0.display())]
    NotASocket(PathBuf),
    // The cause is in the message, not a `source`: printed as a chain it would repeat.
    #[error("cannot create the socket directory {}: {error}", path.display())]
    Directory { path: PathBuf, error: io::Error },
    #[error("refusing to put the control socket in {}: {reason}", path.display())]
    Untrusted {
        path: PathBuf,
        reason: super::socket_path::Untrusted,
    },
    #[error("cannot listen on {}: {error}", path.display())]
    Listen { path: PathBuf, error: io::Error },
}

/// Creates the control socket at `path`, readable and writable by its owner only. A
/// stale socket left by a daemon that died is replaced; a live one is not.
pub fn bind(path: &Path) -> Result<UnixListener, BindError> {
    let dir = super::socket_path::directory(path);
    if std::fs::symlink_metadata(&dir).is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|error| BindError::Directory {
                path: dir.clone(),
                error,
            })?;
    }
    // Made by another user (or left open to others): whoever can write there can swap
    // the socket for their own and receive the owner's commands.
    super::socket_path::check_directory(&dir, None)
        .map_err(|reason| BindError::Untrusted { path: dir, reason })?;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(BindError::NotASocket(path.to_path_buf()));
        }
        if let Ok(live) = std::os::unix::net::UnixStream::connect(path) {
            use std::os::fd::AsFd;
            let owner = sys::peer_uid(live.as_fd())
                .ok()
                .filter(|uid| *uid != sys::effective_uid());
            return Err(BindError::InUse {
                path: path.to_path_buf(),
                owner,
            });
        }
        let _ = std::fs::remove_file(path);
    }
    let listener = sys::with_umask(0o177, || std::os::unix::net::UnixListener::bind(path))
        .and_then(|l| {
            l.set_nonblocking(true)?;
            UnixListener::from_std(l)
        })
        .map_err(|error| BindError::Listen {
            path: path.to_path_buf(),
            error,
        })?;
    Ok(listener)
}

/// Answers one request. Changes go through `TableHandle::apply`.
pub fn answer(request: Request, daemon: &dyn Daemon) -> Response {
    let table = daemon.table();
    match request {
        Request::Info {} => Response::Info {
            info: Info::default(),
        },
        Request::ListServices {} => Response::Services {
            services: daemon.services(),
        },
        Request::GetService { service } => match daemon.service(&service) {
            Ok(service) => Response::Service {
                service: Box::new(service),
            },
            Err(error) => Response::Refused { error },
        },
        Request::GetTimeouts {} => Response::Timeouts {
            timeouts: table.snapshot().timeouts(),
        },
        Request::ListConnections {} => Response::Connections {
            connections: daemon.connections(),
        },
        Request::ListListeners {} => Response::Listeners {
            rules: table.snapshot().listen_rules(),
        },
        Request::ListDaemons {} => match daemon.sync_daemons() {
            Ok(daemons) => Response::Daemons { daemons },
            Err(error) => Response::Refused { error },
        },
        Request::Status {} => Response::Status {
            status: Box::new(daemon.status()),
        },
        Request::Apply { command } => match daemon.apply(&command, &|| {
            tracing::info!("table changed: {command}");
        }) {
            Ok(()) => Response::Applied,
            Err(error) => {
                tracing::debug!("command refused: {command}: {error}");
                Response::Refused { error }
            }
        },
    }
}

/// The clients being served, so that one can make room for a new one.
struct Slots {
    /// The most clients served at once.
    max: usize,
    clients: Mutex<HashMap<u64, Slot>>,
}

struct Slot {
    /// Waiting for a request (true), or reading one or sending its answer.
    idle: bool,
    /// Since when it has been doing that.
    since: Instant,
    task: AbortHandle,
}

impl Slots {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Slot>> {
        self.clients.locked()
    }

    /// Makes room for one more client when every slot is taken: the client idle the
    /// longest goes, else the one that has spent longest on one request (sending its
    /// body, or not reading its answer: the daemon answers at once, so a client busy
    /// for long is a slow or stalled one). A request is never cut while it is being
    /// carried out: that happens between two awaits, when nothing else runs here.
    fn room(&self) {
        let mut clients = self.map();
        if clients.len() < self.max {
            return;
        }
        let victim = clients
            .iter()
            .map(|(id, slot)| (!slot.idle, slot.since, *id))
            .min()
            .map(|(_, _, id)| id);
        if let Some(slot) = victim.and_then(|id| clients.remove(&id)) {
            slot.task.abort();
            tracing::debug!(
                idle = slot.idle,
                "control socket: every slot taken; the longest idle or slowest client was dropped"
            );
        }
    }

    fn set_idle(&self, id: u64, idle: bool) {
        if let Some(slot) = self.map().get_mut(&id) {
            slot.idle = idle;
            slot.since = Instant::now();
        }
    }
}

/// Gives the slot back however the client's task ends (left, dropped, evicted).
struct Leave {
    slots: Arc<Slots>,
    id: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        self.slots.map().remove(&self.id);
    }
}

static ACCEPT_WARNED: crate::rate_limit::RateLimit = crate::rate_limit::RateLimit::new();

/// Accepts clients until the future is dropped.
pub async fn serve(listener: UnixListener, daemon: Arc<dyn Daemon>) {
    let slots = Arc::new(Slots {
        max: daemon.max_clients().max(1),
        clients: Mutex::new(HashMap::new()),
    });
    let own_uid = sys::effective_uid();
    let mut next_id: u64 = 0;
    loop {
        let mut stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                ACCEPT_WARNED.warn(|suppressed| {
                    tracing::warn!(error = %e, suppressed, "control socket: accept failed; backing off");
                });
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Ok(cred) = stream.peer_cred()
            && cred.uid() != own_uid
            && cred.uid() != 0
        {
            // The socket's mode keeps other users out; this is the second lock.
            let denied = Response::Error {
                error: ProtocolError::PermissionDenied { uid: cred.uid() },
            };
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), send(&mut stream, &denied)).await;
            });
            continue;
        }
        slots.room();
        next_id += 1;
        let id = next_id;
        let leave = Leave {
            slots: Arc::clone(&slots),
            id,
        };
        let daemon = Arc::clone(&daemon);
        // Registered under the lock before the task can run and mark itself busy.
        let mut clients = slots.map();
        let task = tokio::spawn(async move {
            let leave = leave;
            client(stream, &*daemon, &leave).await;
        });
        clients.insert(
            id,
            Slot {
                idle: true,
                since: Instant::now(),
                task: task.abort_handle(),
            },
        );
    }
}

async fn send(stream: &mut UnixStream, response: &Response) -> io::Result<()> {
    let body = encode_response(response);
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    stream.write_all(&frame).await
}

/// Serves one client until it leaves, stalls, or breaks the framing.
async fn client(mut stream: UnixStream, daemon: &dyn Daemon, slot: &Leave) {
    loop {
        slot.slots.set_idle(slot.id, true);
        let len = match tokio::time::timeout(IDLE_TIMEOUT, stream.read_u32()).await {
            Ok(Ok(len)) => len,
            _ => return,
        };
        slot.slots.set_idle(slot.id, false);
        if len > MAX_REQUEST_BYTES {
            let too_large = Response::Error {
                error: ProtocolError::TooLarge {
                    size: u64::from(len),
                    limit: MAX_REQUEST_BYTES,
                },
            };
            let _ = tokio::time::timeout(SEND_TIMEOUT, send(&mut stream, &too_large)).await;
            return;
        }
        let mut body = vec![0u8; len as usize];
        match tokio::time::timeout(BODY_TIMEOUT, stream.read_exact(&mut body)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let response = match decode_request(&body) {
            Ok(request) => answer(request, daemon),
            Err(error) => Response::Error { error },
        };
        if !matches!(
            tokio::time::timeout(SEND_TIMEOUT, send(&mut stream, &response)).await,
            Ok(Ok(()))
        ) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::table::{Protocol, ServiceConfig, ServiceKey, UnicastOnly};

    /// A daemon whose `apply` is the only way to the table, and says what it saw.
    struct Hooked {
        table: TableHandle,
        seen: Mutex<Vec<String>>,
    }

    impl Daemon for Hooked {
        fn table(&self) -> &TableHandle {
            &self.table
        }
        fn connections(&self) -> Vec<ConnEntry> {
            Vec::new()
        }
        fn status(&self) -> super::super::protocol::Status {
            unreachable!("not asked")
        }
        fn max_clients(&self) -> usize {
            1
        }
        fn apply(&self, command: &Command, applied: &dyn Fn()) -> Result<(), TableError> {
            // As the reloader does: the lock is taken before the table changes and let
            // go after the change is recorded.
            let mut seen = self.seen.locked();
            seen.push("locked".into());
            self.table.apply(command)?;
            applied();
            seen.push(format!("recorded {command}"));
            Ok(())
        }
    }

    /// The control server changes the table only through the daemon's `apply`, so a
    /// daemon can make the change and its record one step (a reload cannot come
    /// between them, review of issue 16, point 8).
    #[test]
    fn a_command_is_applied_and_recorded_in_one_step_of_the_daemon() {
        let daemon = Hooked {
            table: TableHandle::new(Box::new(UnicastOnly)),
            seen: Mutex::new(Vec::new()),
        };
        let key = ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr: "172.20.0.24".parse().unwrap(),
            port: 80,
        };
        let command = Command::AddService(ServiceConfig::new(key, "rr"));
        let answer = answer(
            Request::Apply {
                command: command.clone(),
            },
            &daemon,
        );
        assert!(matches!(answer, Response::Applied), "{answer:?}");
        assert_eq!(
            *daemon.seen.locked(),
            ["locked".to_string(), format!("recorded {command}")]
        );
        assert!(daemon.table.snapshot().service(&key).is_some());
        // Refused by the table: nothing is recorded.
        let again = answer_again(&daemon, command);
        assert!(matches!(again, Response::Refused { .. }), "{again:?}");
        assert_eq!(
            daemon.seen.locked().len(),
            3,
            "locked once more, not recorded"
        );
    }

    fn answer_again(daemon: &Hooked, command: Command) -> Response {
        answer(Request::Apply { command }, daemon)
    }
}
