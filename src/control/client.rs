//! The client side of the control socket, as uvsadm and `uvs status` use it:
//! synchronous, connecting on the first request, one request and one answer at a time.
//! It talks only to a daemon it can trust: the socket's directory must be one no other
//! user can replace it in, and the process answering must run as this user or root.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::protocol::{
    MAX_RESPONSE_BYTES, Request, Response, decode_response, encode_request, read_frame, write_frame,
};
use crate::adm::backend::{Backend, BackendError};
use crate::table::{
    Command, ConnEntry, Info, ListenRule, ServiceEntry, ServiceKey, SyncDaemon, Timeouts,
};

/// How long uvsadm waits for the daemon's answer before giving up.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// A connection unused for this long is replaced by a new one before the next request:
/// the daemon drops clients silent for longer than [`super::server::IDLE_TIMEOUT`]
/// (`uvsadm -R` reading a slow stdin pauses between requests).
const REUSE_WITHIN: Duration = Duration::from_secs(2);

pub struct Client {
    path: PathBuf,
    /// The connection and when it was last used.
    stream: Option<(UnixStream, Instant)>,
}

impl Client {
    pub fn new(path: PathBuf) -> Client {
        Client { path, stream: None }
    }

    fn untrusted(&self, reason: String) -> BackendError {
        BackendError::Untrusted {
            socket: self.path.clone(),
            reason,
        }
    }

    /// Connects, then makes sure of whom it reached before anything is sent: a daemon
    /// running as this user or root, in a directory no one else can write. Root also
    /// trusts a daemon run by another uid in a directory of that uid's own (systemd's
    /// `DynamicUser` daemon owns its runtime directory): nobody but that uid and root
    /// can have put the socket there. In a directory of root's (a shared /tmp), another
    /// uid's daemon is one that got to the name first, and is refused.
    fn connect(&self) -> Result<UnixStream, BackendError> {
        use std::os::unix::fs::MetadataExt;
        let stream = UnixStream::connect(&self.path).map_err(|e| self.unreachable(e))?;
        let own = crate::sys::effective_uid();
        let peer = crate::sys::peer_uid(stream.as_fd()).map_err(|e| self.unreachable(e))?;
        let dir = super::socket_path::directory(&self.path);
        let peers_own_directory =
            std::fs::metadata(&dir).is_ok_and(|m| m.uid() == peer && peer != 0);
        let also = (own == 0 && peers_own_directory).then_some(peer);
        super::socket_path::check_directory(&dir, also)
            .map_err(|e| self.untrusted(e.to_string()))?;
        if peer != own && peer != 0 && also != Some(peer) {
            let trusted = if own == 0 {
                "root, nor as the owner of its directory".to_string()
            } else {
                format!("uid {own} or root")
            };
            return Err(self.untrusted(format!(
                "the process answering on it runs as uid {peer}, not as {trusted}"
            )));
        }
        stream
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .map_err(|e| self.unreachable(e))?;
        Ok(stream)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn unreachable(&self, error: io::Error) -> BackendError {
        BackendError::Unreachable {
            socket: self.path.clone(),
            error,
        }
    }

    fn protocol(&self, detail: impl Into<String>) -> BackendError {
        BackendError::Protocol {
            socket: self.path.clone(),
            detail: detail.into(),
        }
    }

    /// Sends one request and reads its answer.
    pub fn call(&mut self, request: &Request) -> Result<Response, BackendError> {
        if self
            .stream
            .as_ref()
            .is_some_and(|(_, used)| used.elapsed() > REUSE_WITHIN)
        {
            self.stream = None;
        }
        if self.stream.is_none() {
            self.stream = Some((self.connect()?, Instant::now()));
        }
        let body = encode_request(request);
        let result = match self.stream.as_mut() {
            Some((stream, used)) => {
                let answer = write_frame(stream, &body)
                    .and_then(|()| read_frame(stream, MAX_RESPONSE_BYTES));
                *used = Instant::now();
                answer
            }
            None => Err(io::Error::from(io::ErrorKind::NotConnected)),
        };
        let answer = match result {
            Ok(answer) => answer,
            Err(e) => {
                self.stream = None;
                return Err(match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                        self.protocol(format!("no answer within {} s", ANSWER_TIMEOUT.as_secs()))
                    }
                    io::ErrorKind::InvalidData => self.protocol(e.to_string()),
                    _ => self.unreachable(e),
                });
            }
        };
        match decode_response(&answer).map_err(|e| self.protocol(e))? {
            Response::Refused { error } => Err(BackendError::Table(error)),
            Response::Error { error } => Err(self.protocol(error.to_string())),
            other => Ok(other),
        }
    }

    fn unexpected(&self, response: Response) -> BackendError {
        self.protocol(format!("unexpected response {response:?}"))
    }
}

impl Backend for Client {
    fn info(&mut self) -> Result<Info, BackendError> {
        match self.call(&Request::Info {})? {
            Response::Info { info } => Ok(info),
            other => Err(self.unexpected(other)),
        }
    }

    fn services(&mut self) -> Result<Vec<ServiceEntry>, BackendError> {
        match self.call(&Request::ListServices {})? {
            Response::Services { services } => Ok(services),
            other => Err(self.unexpected(other)),
        }
    }

    fn service(&mut self, key: &ServiceKey) -> Result<ServiceEntry, BackendError> {
        match self.call(&Request::GetService { service: *key })? {
            Response::Service { service } => Ok(*service),
            other => Err(self.unexpected(other)),
        }
    }

    fn timeouts(&mut self) -> Result<Timeouts, BackendError> {
        match self.call(&Request::GetTimeouts {})? {
            Response::Timeouts { timeouts } => Ok(timeouts),
            other => Err(self.unexpected(other)),
        }
    }

    fn connections(&mut self) -> Result<Vec<ConnEntry>, BackendError> {
        match self.call(&Request::ListConnections {})? {
            Response::Connections { connections } => Ok(connections),
            other => Err(self.unexpected(other)),
        }
    }

    fn listeners(&mut self) -> Result<Vec<ListenRule>, BackendError> {
        match self.call(&Request::ListListeners {})? {
            Response::Listeners { rules } => Ok(rules),
            other => Err(self.unexpected(other)),
        }
    }

    fn daemons(&mut self) -> Result<Vec<SyncDaemon>, BackendError> {
        match self.call(&Request::ListDaemons {})? {
            Response::Daemons { daemons } => Ok(daemons),
            other => Err(self.unexpected(other)),
        }
    }

    fn apply(&mut self, command: &Command) -> Result<(), BackendError> {
        match self.call(&Request::Apply {
            command: command.clone(),
        })? {
            Response::Applied => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }
}
