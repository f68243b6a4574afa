//! The control channel: a Unix socket (mode 0600) on which the daemon takes typed
//! requests. `protocol` is the wire format, `server` the daemon's side, `client` the
//! side uvsadm uses, `socket_path` where the socket is.

pub mod client;
pub mod protocol;
pub mod server;
pub mod socket_path;
