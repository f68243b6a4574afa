//! uvs: a userspace virtual server. An L4 (TCP and UDP) load balancer that behaves like
//! Linux IPVS driven by ipvsadm and ldirectord, without the kernel module or privileges.
//!
//! # Layout
//!
//! - [`table`]: the virtual-server table, its typed commands, and snapshots for readers.
//! - [`sched`]: IPVS's schedulers.
//! - [`stats`]: counters and the 2-second rate estimator.
//! - [`config`]: the TOML configuration file: schema, reload plan, reloader.
//! - [`clock`]: wall-clock seconds and the monotonic milliseconds of the connection table.
//! - [`conn`]: the connection table: IPVS states, timeouts, active/inactive counts.
//! - [`persist`]: persistence templates.
//! - [`adm`]: ipvsadm's command language, listings and save format (used by `uvsadm`).
//! - [`control`]: the control socket protocol, its server (daemon) and client (uvsadm).
//! - [`health`]: health checks (ldirectord's) and the table they call for.
//! - [`exporter`]: Prometheus metrics (node_exporter's ipvs series and uvs's own) over HTTP.
//! - [`kernel`]: the kernel's IPVS over generic netlink (the coming kernel backend).
//! - [`descriptors`]: the open-files limit split between the control and data planes.
//! - [`director`]: what the data plane shares: table, connections, templates, listeners.
//! - [`proxy`]: the data plane: listeners, TCP connections, the byte path.
//! - [`daemon`]: the `uvs run` daemon that holds the table, and its status report.
//! - [`rate_limit`]: warnings that can repeat, logged at most every ten seconds.
//! - [`demo`]: the built-in demonstration behind `uvs demo`.

pub mod adm;
pub mod clock;
pub mod config;
pub mod conn;
pub mod control;
pub mod daemon;
pub mod demo;
pub mod descriptors;
pub mod exporter;
pub mod health;
pub mod kernel;
pub mod lock;
pub mod persist;
pub mod proxy;
pub mod rate_limit;
pub mod sched;
pub mod stats;
pub mod status;
pub mod sys;
pub mod table;
pub mod workers;
