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
//! - `page` writes the status page at `/` from the same snapshot and state;
//! - `http` serves `/metrics`, `/healthz` and `/` with a cap on connections (`conns`),
//!   and counts the clients it resets (`drops`); `host` says which `Host` the page
//!   answers (a guard against DNS rebinding).
//!
//! The daemon starts `http::serve` on `--metrics`, with a [`Source`] to read its state
//! from.

pub mod body;
mod conns;
pub mod drops;
mod host;
pub mod http;
pub mod names;
pub mod page;
mod render_thread;
pub mod scrape;
mod source;
pub mod text;

use crate::table::Table;

pub use body::Body;
pub use http::Limits;
pub use source::{BackendHealth, ConfigReloads, ServiceQuorum, Source, State};

/// The whole exposition of `snapshot`, of the daemon's state now (read from `source`)
/// and of the endpoint's `drops`. Takes as long as the table is big (seconds for 100 000
/// services): call it off the control thread.
pub fn render(source: &dyn Source, snapshot: &Table, drops: &drops::Drops) -> Body {
    let sources = text::Sources {
        table: snapshot,
        daemon: &source.state(),
        clients_dropped: drops.read(),
        version: env!("CARGO_PKG_VERSION"),
        commit: env!("UVS_COMMIT"),
    };
    let mut out = body::BodyWriter::new();
    text::write(&sources, &mut out);
    out.finish()
}
