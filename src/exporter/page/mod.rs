//! The live status page at `/` of the metrics endpoint, in the spirit of HAProxy's stats
//! page: every virtual service and real server with its weight, health (and the last
//! check's error), connections, rates, connect failures and totals, in one HTML
//! response that refreshes itself. `http` serves it through `scrape` as it serves
//! `/metrics` (rendered on the render thread, one body shared between the requests of a
//! second, slow readers reset), and [`render`] reads what `/metrics` reads: one table
//! snapshot and the daemon's [`Source`], never a lock on the table.
//!
//! - `rows` gathers the rows and the header's counts, `html` writes them, `escape`
//!   makes outside text (check errors, the configuration's path and error) inert, `units`
//!   formats numbers and times.
//!
//! Bounded: the page stops after [`MAX_ROWS`] rows (a few hundred bytes each, so about
//! a megabyte) and says how many services it left out; the header's counts are of the
//! whole table. At 10 000 services of 4 servers it shows the first 400 services.

mod escape;
mod html;
mod rows;
mod units;

use super::Source;
use super::body::{Body, BodyWriter};
use crate::adm::sort::{compare_service_keys, merge_sort};
use crate::table::Table;

/// Table rows (services, servers, error lines) the page shows at most.
pub const MAX_ROWS: usize = 2000;

/// Seconds between the page's refreshes.
pub const REFRESH_SECONDS: u32 = 5;

/// The page of `snapshot` and of the daemon's state now, for a daemon that started at
/// `started_at` (seconds since the epoch). As long to make as the page is big (bounded by
/// [`MAX_ROWS`]), plus one pass over the table for the header's counts.
pub fn render(source: &dyn Source, snapshot: &Table, started_at: u64) -> Body {
    let state = source.state();
    render_at(&state, snapshot, started_at, crate::clock::unix_seconds())
}

/// [`render`] of `state` at `now`.
fn render_at(state: &super::State, snapshot: &Table, started_at: u64, now: u64) -> Body {
    let checks = rows::Checks::of(state);
    // In ipvsadm -L's order (TCP before UDP, then by address), as uvsadm lists them.
    let mut services = snapshot.services();
    merge_sort(&mut services, &|a, b| compare_service_keys(&a.key, &b.key));
    let summary = rows::summary(snapshot, &services, &checks);
    let mut out = BodyWriter::new();
    html::start(
        &mut out,
        &html::Heading {
            now,
            started_at,
            refresh: REFRESH_SECONDS,
            state,
            summary: &summary,
        },
    );
    let (mut written, mut shown) = (0, 0);
    for service in &services {
        if written >= MAX_ROWS {
            break;
        }
        let row = rows::service_row(service, &checks);
        written += html::service(&mut out, &row, MAX_ROWS - written);
        shown += 1;
    }
    html::finish(&mut out, shown, &summary, MAX_ROWS);
    out.finish()
}

#[cfg(test)]
mod tests;
