//! PROXY protocol headers uvs takes from clients (`accept_proxy`): the balancer or proxy
//! in front says who the client is, and that address is the client for everything uvs
//! does (scheduling, persistence, `-L -c`, access lists, limits, logs). Called by the
//! TCP path (`tcp::connection`) before the service's admission, and by the UDP flows.

use std::time::Duration;

/// How long a client has to send its whole header when the service does not say
/// (`accept_proxy_timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
