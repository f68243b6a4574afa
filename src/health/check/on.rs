//! ldirectord's `checktype = on`: the server is always up (but for maintenance files).
//! Also what a server watched only for its maintenance files runs.

use super::{Endpoint, HealthCheck, Probing};

/// Always up; no settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct On;

impl HealthCheck for On {
    fn probe<'a>(&'a self, _at: &'a Endpoint) -> Probing<'a> {
        Box::pin(async { Ok(None) })
    }
}
