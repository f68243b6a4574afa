//! uvs: a userspace virtual server. An L4 (TCP and UDP) load balancer that behaves like
//! Linux IPVS driven by ipvsadm and ldirectord, without the kernel module or privileges.
//!
//! # Layers
//!
//! Each layer uses only the layers below it (`tests/layers.rs` checks it); the README's
//! "Layout" gives the picture file by file, and "Life of a connection" a tour.
//!
//! - entry: `main.rs` (`uvs`), `bin/uvsadm.rs`: parse the command line, call the library.
//! - [`daemon`]: `daemon::run` wires everything, its reloader, settings and status
//!   report; [`demo`]: the built-in demonstration behind `uvs demo`.
//! - writers: [`config`] (the TOML file, its plan against the running table, the
//!   importers), [`control`] (the control socket: protocol, server, client), [`health`]
//!   (checks that turn into commands), [`status`] (`uvs status`'s text), [`pool`] (the
//!   pool controller: timed drains carried out over time).
//! - readers: [`proxy`] (the data plane: its shared state `proxy::director`,
//!   listeners, TCP, UDP, the byte path), [`kernel`] (IPVS over generic netlink),
//!   [`exporter`] (/metrics), [`adm`] (ipvsadm's language and listings).
//! - core: [`table`] (the single source of truth, its typed commands), [`sched`]
//!   (IPVS's schedulers and `schedule`), [`persist`] (templates), [`conn`] (the
//!   connection table), [`stats`] (counters, the rate estimator), [`sync`] (IPVS
//!   connection sync's wire format), and small leaves:
//!   [`clock`], [`lock`], [`rate_limit`], [`descriptors`], [`workers`], [`printable`].
//! - [`sys`]: the few libc calls; all `unsafe` lives there.

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
pub mod pool;
pub mod printable;
pub mod proxy;
pub mod rate_limit;
pub mod sched;
pub mod stats;
pub mod status;
pub mod sync;
pub mod syncd;
pub mod sys;
pub mod table;
pub mod words;
pub mod workers;
