//! IPVS connection synchronisation between directors: a master multicasts its
//! connections and persistence templates, backups hold copies so that a takeover keeps
//! them. [`wire`] is the datagram format, shared by the sync daemon's master and backup
//! sides (the daemon itself is still to be written).

pub mod wire;
