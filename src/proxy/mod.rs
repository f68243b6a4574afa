//! The data plane: its shared state (`director`: the table handle, connections,
//! templates, workers, descriptor budget), listeners that follow the table
//! (`listeners`, recorded in `registry`; `low_port` says why a port below the
//! unprivileged limit is refused), the TCP connection path (`tcp`, with the
//! `congestion` control of its two legs), the byte path (`forward`, with per-thread
//! `pools` of buffers and pipes), the UDP flows (`udp`), what both do alike to reach a
//! real server (`scheduling`), the counting of what moves (`accounting`) and the log of
//! what fails (`failure_log`: failed connects and resets, rate-limited, with counts)
//! and the passive ejection of servers that keep failing (`ejection`).
//!
//! Words: a connection's bytes move in a `forward::Transfer`, by copy or splice (its
//! `TransferMode`, the `--forwarding` setting); IPVS's forwarding method (masquerading,
//! gatewaying, tunnelling) is the table's `Forward`, which the data plane does not look
//! at (it always proxies).
//! A `udp::flow::Flow` is a UDP client's flow (an IPVS UDP connection).

pub mod accounting;
pub mod admit;
pub mod congestion;
pub mod director;
pub mod ejection;
pub mod failure_log;
pub mod forward;
pub mod listeners;
pub mod low_port;
pub mod pools;
pub mod proxy_in;
pub mod proxy_out;
pub mod queue;
pub mod registry;
pub mod scheduling;
pub mod source;
pub mod tcp;
pub mod udp;
