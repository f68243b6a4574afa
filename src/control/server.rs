//! The daemon's side of the control socket: binds the socket (mode 0600, refusing to
//! take over a live one), accepts clients, and answers each request from the table.
//! Garbage, oversized or unknown requests get an error answer and never reach the
//! table; a client that stalls is dropped after a while.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use super::protocol::{
    MAX_REQUEST_BYTES, ProtocolError, Request, Response, decode_request, encode_response,
};
use crate::director::Director;
use crate::sys;
use crate::table::Info;

/// Most clients served at once; more wait until one leaves.
pub const MAX_CLIENTS: usize = 64;
/// A client that sends nothing for this long is disconnected.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A request body must arrive within this time once its length has.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("another uvs daemon is already listening on {}", .0.display())]
    InUse(PathBuf),
    #[error("refusing to replace {}: it exists and is not a socket", .0.display())]
    NotASocket(PathBuf),
    #[error("cannot create the socket directory {}: {source}", path.display())]
    Directory { path: PathBuf, source: io::Error },
    #[error("cannot listen on {}: {source}", path.display())]
    Listen { path: PathBuf, source: io::Error },
}

/// Creates the control socket at `path`, readable and writable by its owner only. A
/// stale socket left by a daemon that died is replaced; a live one is not.
pub fn bind(path: &Path) -> Result<UnixListener, BindError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| BindError::Directory {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(BindError::NotASocket(path.to_path_buf()));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(BindError::InUse(path.to_path_buf()));
        }
        let _ = std::fs::remove_file(path);
    }
    let listener = sys::with_umask(0o177, || std::os::unix::net::UnixListener::bind(path))
        .and_then(|l| {
            l.set_nonblocking(true)?;
            UnixListener::from_std(l)
        })
        .map_err(|source| BindError::Listen {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(listener)
}

/// Answers one request. Changes go through `TableHandle::apply`.
pub fn answer(request: Request, director: &Director) -> Response {
    let table = &director.table;
    match request {
        Request::Info {} => Response::Info {
            info: Info::default(),
        },
        Request::ListServices {} => Response::Services {
            services: table.snapshot().entries(),
        },
        Request::GetService { service } => match table.snapshot().entry(&service) {
            Ok(service) => Response::Service { service },
            Err(error) => Response::Refused { error },
        },
        Request::GetTimeouts {} => Response::Timeouts {
            timeouts: table.snapshot().timeouts(),
        },
        Request::ListConnections {} => Response::Connections {
            connections: director.connections(),
        },
        Request::ListListeners {} => Response::Listeners {
            rules: table.snapshot().listen_rules(),
        },
        Request::Status {} => Response::Status {
            status: Box::new(director.status()),
        },
        Request::Apply { command } => match table.apply(&command) {
            Ok(()) => {
                tracing::info!("table changed: {command}");
                Response::Applied
            }
            Err(error) => {
                tracing::debug!("command refused: {command}: {error}");
                Response::Refused { error }
            }
        },
    }
}

/// Accepts clients until the future is dropped. At most [`MAX_CLIENTS`] are served at
/// once; further clients wait in the listen backlog until one leaves.
pub async fn serve(listener: UnixListener, director: Arc<Director>) {
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    let own_uid = sys::effective_uid();
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let director = Arc::clone(&director);
        tokio::spawn(async move {
            let _slot = slot;
            let mut stream = stream;
            if let Ok(cred) = stream.peer_cred()
                && cred.uid() != own_uid
                && cred.uid() != 0
            {
                let denied = Response::Error {
                    error: ProtocolError::PermissionDenied { uid: cred.uid() },
                };
                let _ = send(&mut stream, &denied).await;
                return;
            }
            client(stream, &director).await;
        });
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
async fn client(mut stream: UnixStream, director: &Director) {
    loop {
        let len = match tokio::time::timeout(IDLE_TIMEOUT, stream.read_u32()).await {
            Ok(Ok(len)) => len,
            _ => return,
        };
        if len > MAX_REQUEST_BYTES {
            let too_large = Response::Error {
                error: ProtocolError::TooLarge {
                    size: u64::from(len),
                    limit: MAX_REQUEST_BYTES,
                },
            };
            let _ = send(&mut stream, &too_large).await;
            return;
        }
        let mut body = vec![0u8; len as usize];
        match tokio::time::timeout(BODY_TIMEOUT, stream.read_exact(&mut body)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let response = match decode_request(&body) {
            Ok(request) => answer(request, director),
            Err(error) => Response::Error { error },
        };
        if send(&mut stream, &response).await.is_err() {
            return;
        }
    }
}
