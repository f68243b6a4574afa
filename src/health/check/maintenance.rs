//! ldirectord's maintenance files: while `DIR/ip:port` or `DIR/ip` exists, the server
//! is down whatever its check says, and its check is not run. Stands in front of the
//! check of every server when the global `maintenance_dir` is set (`build`).

use std::path::{Path, PathBuf};

use super::{Endpoint, Failure, HealthCheck, Outcome, Probe};
use crate::table::ServerKey;

/// ldirectord's maintenance files for a server: `ip:port`, then `ip`.
pub fn files(dir: &Path, server: &ServerKey) -> [PathBuf; 2] {
    [
        dir.join(server.to_string()),
        dir.join(server.addr.to_string()),
    ]
}

/// A check behind the maintenance files of `dir`.
#[derive(Debug)]
pub struct Maintenance {
    dir: PathBuf,
    then: Box<dyn HealthCheck>,
}

impl Maintenance {
    pub fn new(dir: &Path, then: Box<dyn HealthCheck>) -> Maintenance {
        Maintenance {
            dir: dir.to_path_buf(),
            then,
        }
    }
}

impl Probe for Maintenance {
    async fn run(&self, at: &Endpoint) -> Outcome {
        for file in files(&self.dir, &at.target.server) {
            if file.exists() {
                return Err(Failure::Maintenance(file));
            }
        }
        self.then.probe(at).await
    }

    fn connections(&self) -> u32 {
        self.then.connections()
    }
}
