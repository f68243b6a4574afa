//! ldirectord's `checktype = off`: the server is always down. Also what stands in for a
//! check whose settings could not be built ([`Unbuildable`]), so that the server is
//! down with the reason rather than up unchecked.

use super::{BuildError, Endpoint, Failure, HealthCheck, Probing};

/// Always down; no settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Off;

impl HealthCheck for Off {
    fn probe<'a>(&'a self, _at: &'a Endpoint) -> Probing<'a> {
        Box::pin(async { Err(Failure::Off) })
    }
}

/// Always down, saying why its check could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unbuildable {
    why: String,
}

impl From<BuildError> for Unbuildable {
    fn from(e: BuildError) -> Unbuildable {
        Unbuildable { why: e.to_string() }
    }
}

impl HealthCheck for Unbuildable {
    fn probe<'a>(&'a self, _at: &'a Endpoint) -> Probing<'a> {
        Box::pin(async { Err(Failure::Garbled(self.why.clone())) })
    }
}
