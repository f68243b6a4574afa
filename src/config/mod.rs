//! The configuration file: uvs's native TOML. `schema` reads a file into a [`Config`]
//! (every problem at once, with its line and column, via `reader`); `plan` turns a
//! config and the running table into the typed commands that make the table match,
//! touching only what changed; `reload` applies files at start, on SIGHUP and, with
//! `autoreload`, when the file changes. `uvs check`, `uvs run -c` and the daemon use it.

pub mod plan;
pub mod reader;
pub mod reload;
pub mod schema;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::proxy::forward::Forwarding;
use crate::table::{ListenRule, ServerConfig, ServiceConfig, Timeouts};

pub use reader::{Problem, Problems};

/// Daemon settings from `[global]`. Unset ones fall back to the command line's or the
/// built-in defaults; the command line wins over the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Global {
    pub socket: Option<PathBuf>,
    pub autoreload: bool,
    pub threads: Option<u16>,
    pub forwarding: Option<Forwarding>,
    pub max_udp_flows: Option<u32>,
    pub drain_timeout: Option<Duration>,
    pub expire_quiescent_template: Option<bool>,
}

/// One virtual service with its real servers and listen addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub service: ServiceConfig,
    /// In the order the file lists them.
    pub servers: Vec<ServerConfig>,
    pub listen: Vec<ListenRule>,
}

/// A whole, valid configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub global: Global,
    pub timeouts: Option<Timeouts>,
    pub services: Vec<ServiceSpec>,
}

/// Why a file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Problems),
}

/// Reads and checks the file at `path`.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    schema::parse(&text, path).map_err(LoadError::Invalid)
}
