//! Prometheus metrics of the running daemon: node_exporter's `node_ipvs_*` series with
//! its exact names, HELP texts and labels (so dashboards built for kernel IPVS work
//! unchanged), and uvs's own `uvs_*` series. Values come from the table's monotonic
//! counters (never backwards, whatever `-Z` or reloads do); the series of a deleted
//! service or server are gone from the next scrape after the change.
//!
//! - `names` holds every metric family's name, once, with the recipe for adding one;
//! - `text` writes the exposition from one table snapshot into a chunked `body`;
//! - `scrape` renders it off the control thread (on `render_thread`) and shares one body
//!   between the scrapes of a short interval;
//! - `http` serves `/metrics`, `/healthz` and `/` with a cap on connections (`conns`),
//!   and counts the clients it resets (`drops`).
//!
//! The daemon starts `http::serve` on `--metrics`.

pub mod body;
mod conns;
pub mod drops;
pub mod http;
pub mod names;
mod render_thread;
pub mod scrape;
pub mod text;

use crate::director::Director;
use crate::table::Table;

pub use body::Body;
pub use http::Limits;

/// The whole exposition of `snapshot`, of the daemon's state now and of the endpoint's
/// `drops`. Takes as long as the table is big (seconds for 100 000 services): call it off
/// the control thread.
pub fn render(director: &Director, snapshot: &Table, drops: &drops::Drops) -> Body {
    let health = director.health.statuses();
    let config = director
        .config
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let sources = text::Sources {
        table: snapshot,
        health: &health,
        udp_flows: count(director.udp_flows.count()),
        udp_flows_max: count(director.udp_flows.max()),
        udp_flows_dropped: director.udp_flows.dropped(),
        persistence_templates: count(director.templates.len()),
        connections_open: count(director.conns.live_streams()),
        descriptors: director
            .options
            .userspace
            .then(|| director.descriptor_status()),
        udp: director.udp_admission(),
        templates_max: count(director.templates.max()),
        templates_evicted: director.templates.evicted(),
        templates_not_made: director.templates.not_made(),
        config: config.as_ref(),
        clients_dropped: drops.read(),
        version: env!("CARGO_PKG_VERSION"),
    };
    let mut out = body::BodyWriter::new();
    text::write(&sources, &mut out);
    out.finish()
}
