//! Bringing a balancer from LVS in one step: `uvs import ldirectord FILE` and `uvs
//! import ipvsadm FILE` read an ldirectord.cf or an `ipvsadm-save` dump and give the
//! same configuration as uvs TOML (`render`), with every line they could not take
//! reported with its number. Called by `uvs import`.

pub mod ipvsadm;
pub mod ldirectord;

use super::Config;

/// A line of the input that was not (wholly) taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub line: usize,
    pub message: String,
}

/// What an import made of a file.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    pub config: Config,
    pub skipped: Vec<Skipped>,
}

impl Imported {
    fn skip(&mut self, line: usize, message: impl Into<String>) {
        self.skipped.push(Skipped {
            line,
            message: message.into(),
        });
    }
}
