//! What uvsadm talks to: the operations ipvsadm asks of the kernel, behind one trait.
//! The control-socket client implements it for the daemon; [`LocalBackend`] holds a table
//! in process (tests, property checks).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::table::{
    AddressClassifier, Command, ConnEntry, Info, ListenRule, ServiceEntry, ServiceKey, SyncDaemon,
    TableError, TableHandle, Timeouts,
};

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The table refused the command; the message is ipvsadm's.
    #[error("{0}")]
    Table(#[from] TableError),
    /// No daemon answered at the control socket.
    // The cause is in the message, not a `source`: printed as a chain it would repeat.
    #[error("cannot reach the uvs daemon at {}: {error}", socket.display())]
    Unreachable { socket: PathBuf, error: io::Error },
    /// The socket is not one this user may trust: its directory could be replaced by
    /// another user, or another user's process answers on it.
    #[error("refusing to use the uvs control socket {}: {reason}", socket.display())]
    Untrusted { socket: PathBuf, reason: String },
    /// The daemon answered something this uvsadm does not understand.
    #[error("unexpected answer from the uvs daemon at {}: {detail}", socket.display())]
    Protocol { socket: PathBuf, detail: String },
}

/// The table operations of ipvsadm (libipvs).
pub trait Backend {
    fn info(&mut self) -> Result<Info, BackendError>;
    /// All services, in the order the table hands them out.
    fn services(&mut self) -> Result<Vec<ServiceEntry>, BackendError>;
    fn service(&mut self, key: &ServiceKey) -> Result<ServiceEntry, BackendError>;
    fn timeouts(&mut self) -> Result<Timeouts, BackendError>;
    fn connections(&mut self) -> Result<Vec<ConnEntry>, BackendError>;
    /// uvs's listen rules.
    fn listeners(&mut self) -> Result<Vec<ListenRule>, BackendError>;
    /// `-L --daemon`: the connection-sync daemons that run.
    fn daemons(&mut self) -> Result<Vec<SyncDaemon>, BackendError>;
    fn apply(&mut self, command: &Command) -> Result<(), BackendError>;
}

/// A table held in this process (the demo, tests): the same [`TableHandle`] the daemon
/// holds, without a socket in between.
pub struct LocalBackend {
    pub table: Arc<TableHandle>,
}

impl LocalBackend {
    pub fn new(addresses: Box<dyn AddressClassifier>) -> LocalBackend {
        LocalBackend {
            table: Arc::new(TableHandle::new(addresses)),
        }
    }
}

impl Backend for LocalBackend {
    fn info(&mut self) -> Result<Info, BackendError> {
        Ok(Info::default())
    }

    fn services(&mut self) -> Result<Vec<ServiceEntry>, BackendError> {
        Ok(self.table.snapshot().entries())
    }

    fn service(&mut self, key: &ServiceKey) -> Result<ServiceEntry, BackendError> {
        Ok(self.table.snapshot().entry(key)?)
    }

    fn timeouts(&mut self) -> Result<Timeouts, BackendError> {
        Ok(self.table.snapshot().timeouts())
    }

    fn connections(&mut self) -> Result<Vec<ConnEntry>, BackendError> {
        Ok(Vec::new())
    }

    fn listeners(&mut self) -> Result<Vec<ListenRule>, BackendError> {
        Ok(self.table.snapshot().listen_rules())
    }

    fn daemons(&mut self) -> Result<Vec<SyncDaemon>, BackendError> {
        Ok(self
            .table
            .snapshot()
            .sync_daemons()
            .iter()
            .cloned()
            .collect())
    }

    fn apply(&mut self, command: &Command) -> Result<(), BackendError> {
        Ok(self.table.apply(command)?)
    }
}
