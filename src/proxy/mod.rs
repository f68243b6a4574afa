//! The data plane: listeners that follow the table (`listeners`), the TCP connection
//! path (`tcp`, with the `congestion` control of its two legs), the byte path
//! (`forward`, with per-thread `pools` of buffers and pipes), the UDP flows (`udp`), what
//! both do alike to reach a real server (`scheduling`) and the counting of what moves
//! (`accounting`).

pub mod accounting;
pub mod congestion;
pub mod forward;
pub mod listeners;
pub mod pools;
pub mod scheduling;
pub mod tcp;
pub mod udp;
