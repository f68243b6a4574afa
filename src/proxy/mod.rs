//! The data plane: listeners that follow the table (`listeners`), the TCP connection
//! path (`tcp`), the byte path (`forward`, with pooled `pipes` for splice).

pub mod forward;
pub mod listeners;
#[cfg(target_os = "linux")]
pub mod pipes;
pub mod tcp;
