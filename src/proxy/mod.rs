//! The data plane: listeners that follow the table (`listeners`), the TCP connection
//! path (`tcp`), the byte path (`forward`, with per-thread `pools` of buffers and pipes)
//! and the counting of what moves (`accounting`).

pub mod accounting;
pub mod forward;
pub mod listeners;
pub mod pools;
pub mod tcp;
