//! The status page's HTML, written from the rows of `page::rows` into a chunked body:
//! one self-contained response (inline style, no script, no external load), refreshed
//! by a `<meta http-equiv="refresh">`, laid out for a desktop and for a 360 px phone
//! (less important columns hidden, the table scrolling sideways under a fixed first
//! column). Every text from outside goes through [`Escaped`]; the rest is the daemon's
//! own (addresses, numbers, scheduler names).

use std::fmt::Write as _;

use super::escape::Escaped;
use super::rows::{Health, ServerRow, ServiceRow, Summary};
use super::units::{bytes, compact, uptime};
use crate::clock::utc;
use crate::exporter::body::BodyWriter;
use crate::exporter::source::{ConfigReloads, State};
use crate::table::{Family, ServiceKey};
use crate::words::plural;

/// The columns, in order: (header, its short form for a narrow screen, CSS class: `w`
/// is hidden on a narrow screen).
const COLUMNS: [(&str, &str, &str); 13] = [
    ("Service / real server", "Service / server", "name"),
    ("Sched / fwd", "", "fwd w"),
    ("Weight", "Wt", ""),
    ("Health", "Health", ""),
    ("Active", "Act", ""),
    ("Inactive", "", "w"),
    ("Conn/s", "Conn/s", ""),
    ("In/s", "", "w"),
    ("Out/s", "", "w"),
    ("Conns", "", "w"),
    ("Bytes in", "", "w"),
    ("Bytes out", "", "w"),
    ("Failed", "Fail", ""),
];

const STYLE: &str = include_str!("style.css");

/// What the page's head says of the daemon.
#[derive(Debug, Clone, Copy)]
pub struct Heading<'a> {
    /// Now and when the daemon started (seconds since the epoch).
    pub now: u64,
    pub started_at: u64,
    /// Seconds between refreshes.
    pub refresh: u32,
    pub state: &'a State,
    pub summary: &'a Summary,
}

/// The document up to the table's first row.
pub fn start(out: &mut BodyWriter, h: &Heading<'_>) {
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"refresh\" content=\"{refresh}\">\n\
         <title>uvs status</title>\n<style>\n{STYLE}</style></head><body>\n\
         <header><h1>uvs<small>{version} · commit {commit}</small></h1>\
         <p>up {up} · {now} · refreshes every {refresh} s</p></header>",
        refresh = h.refresh,
        version = env!("CARGO_PKG_VERSION"),
        commit = env!("UVS_COMMIT"),
        up = uptime(h.now.saturating_sub(h.started_at)),
        now = utc(h.now),
    );
    summary(out, h.summary);
    if let Some(c) = &h.state.config {
        config(out, c);
    }
    out.push(b"<div class=\"wrap\"><table>\n<thead><tr>");
    for (title, short, class) in COLUMNS {
        if short.is_empty() || short == title {
            let _ = write!(out, "<th class=\"{class}\">{title}</th>");
        } else {
            let _ = write!(
                out,
                "<th class=\"{class}\"><span class=\"l\">{title}</span><span class=\"s\">{short}</span></th>"
            );
        }
    }
    out.push(b"</tr></thead>\n");
}

fn summary(out: &mut BodyWriter, s: &Summary) {
    let _ = write!(
        out,
        "<div class=\"sum\"><span><b>{}</b> {}</span><span><b>{}</b> {}:",
        s.services,
        plural(s.services as u64, "service", "services"),
        s.servers,
        plural(s.servers as u64, "real server", "real servers")
    );
    for (n, health) in [
        (s.up, Health::Up),
        (s.down, Health::Down),
        (s.quiescent, Health::Quiescent),
    ] {
        // A zero greyed, whatever its colour would be.
        let class = if n == 0 { "none" } else { health.class() };
        let _ = write!(
            out,
            " <span class=\"pill {class}\">{n} {}</span>",
            health.label().to_lowercase()
        );
    }
    for (n, class, label) in [
        // Serving as "up" servers do, but nothing checks them: said so, as the
        // services' "2/2 serving" counts them.
        (s.unchecked, "unchecked", "serving, no check"),
        (s.pending, "pending", "pending or suspended"),
    ] {
        if n > 0 {
            let _ = write!(out, " <span class=\"pill {class}\">{n} {label}</span>");
        }
    }
    let _ = writeln!(
        out,
        "</span><span>active <b>{}</b></span><span><b>{}</b> conn/s</span>\
         <span>in <b>{}</b></span><span>out <b>{}</b></span>\
         <span>since start <b>{}</b> conns</span></div>",
        compact(s.active),
        compact(s.rates.cps),
        bytes(s.rates.inbps, "/s"),
        bytes(s.rates.outbps, "/s"),
        compact(s.totals.conns),
    );
}

fn config(out: &mut BodyWriter, c: &ConfigReloads) {
    let class = if c.last_applied { "ok" } else { "bad" };
    let _ = write!(
        out,
        "<div class=\"cfg {class}\">configuration <b>{}</b>: applied {}, reloads {}, refused {}",
        Escaped(&c.path),
        utc(c.applied_at),
        c.reloads,
        c.refused
    );
    match (&c.last_error, c.last_applied) {
        (Some(e), _) => {
            let _ = write!(
                out,
                "; <b>the last reload was refused</b> (the file applied before still runs):\
                 <pre>{}</pre>",
                Escaped(e)
            );
        }
        (None, false) => out.push(b"; <b>the last reload was refused</b>"),
        (None, true) => out.push(b"; the last reload was applied"),
    }
    out.push(b"</div>\n");
}

/// A service as the first cell names it: `TCP 10.0.0.1:80`, `FWM 7`.
fn service_name(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => format!(
            "{} {}",
            protocol.label(),
            crate::table::ServerKey {
                addr: *addr,
                port: *port
            }
        ),
        ServiceKey::Fwmark {
            mark,
            family: Family::Inet,
        } => format!("FWM {mark}"),
        ServiceKey::Fwmark {
            mark,
            family: Family::Inet6,
        } => format!("FWM {mark} IPv6"),
    }
}

/// Its scheduler's flags, persistence and uvs's own options, as ipvsadm and uvsadm
/// name them.
fn service_flags(row: &ServiceRow<'_>) -> String {
    let s = row.service;
    let mut parts: Vec<String> = Vec::new();
    if s.flags.persistent() {
        parts.push(format!("persistent {} s", s.timeout));
    }
    if s.flags.one_packet() {
        parts.push("ops".into());
    }
    let sched = s.flags.scheduler_flag_names(s.scheduler.name());
    if !sched.is_empty() {
        parts.push(sched);
    }
    if let Some(pe) = &s.pe {
        parts.push(format!("pe {}", pe.name()));
    }
    let options = s.options.arguments();
    if !options.is_empty() {
        parts.push(options.trim_start().to_string());
    }
    parts.join(" · ")
}

/// A number cell: compact, with the exact value as its title when that differs, and
/// greyed when 0.
fn number(out: &mut BodyWriter, n: u64, class: &str) {
    let shown = compact(n);
    let zero = if n == 0 { " zero" } else { "" };
    if shown.len() == n.to_string().len() && n < 100_000 {
        let _ = write!(out, "<td class=\"{class}{zero}\">{shown}</td>");
    } else {
        let _ = write!(
            out,
            "<td class=\"{class}{zero}\" title=\"{n}\">{shown}</td>"
        );
    }
}

/// A byte cell (`per` = "/s" for a rate) of class `class`.
fn byte_cell(out: &mut BodyWriter, n: u64, per: &str, class: &str) {
    let zero = if n == 0 { " zero" } else { "" };
    let _ = write!(
        out,
        "<td class=\"{class}{zero}\" title=\"{n}\">{}</td>",
        bytes(n, per)
    );
}

/// The figures' cells, from Active to Bytes out.
fn figure_cells(out: &mut BodyWriter, f: &super::rows::Figures) {
    number(out, f.active, "act");
    number(out, f.inactive, "w inact");
    number(out, f.rates.cps, "cps");
    byte_cell(out, f.rates.inbps, "/s", "w inbps");
    byte_cell(out, f.rates.outbps, "/s", "w outbps");
    number(out, f.totals.conns, "w conns");
    byte_cell(out, f.totals.inbytes, "", "w inbytes");
    byte_cell(out, f.totals.outbytes, "", "w outbytes");
}

/// A service's rows: its own, then at most `budget - 1` of its servers' (error lines
/// included), then a line for those left out. Returns the rows written.
pub fn service(out: &mut BodyWriter, row: &ServiceRow<'_>, budget: usize) -> usize {
    let name = service_name(&row.service.key);
    let (serving, all) = row.serving();
    let class = match (serving, all) {
        (0, _) => "down",
        (s, a) if s == a => "up",
        _ => "partial",
    };
    let weight: u64 = row.servers.iter().map(|s| u64::from(s.weight())).sum();
    let flags = service_flags(row);
    let _ = write!(
        out,
        "<tbody><tr class=\"svc\" data-service=\"{name}\"><td class=\"name\">{name}"
    );
    if !flags.is_empty() {
        let _ = write!(out, "<div class=\"sub\">{}</div>", Escaped(&flags));
    }
    let _ = write!(
        out,
        "</td><td class=\"fwd w\">{}</td><td>{weight}</td>\
         <td class=\"h {class}\">{serving}/{all} serving</td>",
        row.service.scheduler.name()
    );
    figure_cells(out, &row.figures);
    let (what, failed) = if row.udp() {
        (
            "datagrams dropped for want of a server",
            "flows ended by ICMP errors",
        )
    } else {
        ("connections reset for want of a server", "failed connects")
    };
    let zero = if row.figures.failures == 0 {
        " zero"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "<td class=\"fail{zero}\" title=\"{failed} {}; retried elsewhere {}; {what} {}\">{}</td></tr>",
        row.figures.failures,
        row.retries,
        row.unavailable,
        compact(row.figures.failures)
    );
    let mut rows = 1;
    for (i, s) in row.servers.iter().enumerate() {
        if rows >= budget {
            let _ = writeln!(
                out,
                "<tr class=\"more\"><td colspan=\"{}\">{} more real servers of {name} not shown \
                 (see <a href=\"/metrics\">/metrics</a> or <code>uvsadm -L -n</code>)</td></tr>",
                COLUMNS.len(),
                row.servers.len() - i
            );
            rows += 1;
            break;
        }
        rows += server(out, s, row.udp());
    }
    out.push(b"</tbody>\n");
    rows
}

/// A real server's row, and its last check's error beneath when it has one. Returns
/// the rows written.
fn server(out: &mut BodyWriter, s: &ServerRow<'_>, udp: bool) -> usize {
    let _ = write!(
        out,
        "<tr class=\"rs\" data-server=\"{key}\"><td class=\"name\">{key}</td>",
        key = s.key
    );
    match s.server {
        Some(r) => {
            let _ = write!(out, "<td class=\"fwd w\">{}</td>", r.forward.label());
        }
        None => out.push(b"<td class=\"fwd w\">out of table</td>"),
    }
    match s.configured_weight() {
        Some(c) if c != s.weight() => {
            let _ = write!(
                out,
                "<td class=\"wt\" title=\"in force {} / configured {c}\">{} / {c}</td>",
                s.weight(),
                s.weight()
            );
        }
        Some(c) => {
            let _ = write!(out, "<td class=\"wt\">{c}</td>");
        }
        None => out.push(b"<td class=\"wt zero\">-</td>"),
    }
    let health = s.health;
    // The pool controls' state goes under the health word (our own words and numbers).
    let pool = s
        .pool(crate::clock::monotonic_ms())
        .map(|p| format!("<br><span class=\"pool\">{p}</span>"))
        .unwrap_or_default();
    match s.checked {
        Some(h) => {
            let last = h.last_check.map_or("not checked yet".to_string(), |t| {
                format!("last check {} ({} ms)", utc(t), h.last_duration_ms)
            });
            let _ = write!(
                out,
                "<td class=\"h {}\" title=\"failed checks in a row {}; {last}\">{}{pool}</td>",
                health.class(),
                h.failures,
                health.label()
            );
        }
        None => {
            let _ = write!(
                out,
                "<td class=\"h {}\">{}{pool}</td>",
                health.class(),
                health.label()
            );
        }
    }
    figure_cells(out, &s.figures);
    let reasons = match s.server {
        Some(r) => {
            let f = &r.state.connect_failures;
            let load =
                |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
            if udp {
                format!(
                    "flows ended by ICMP errors: port unreachable {}, other {}",
                    load(&f.refused),
                    load(&f.other)
                )
            } else {
                // No source to connect from (`source`): said only when it happened.
                let source = match load(&f.source) {
                    0 => String::new(),
                    n => format!(", no source {n}"),
                };
                format!(
                    "failed connects: refused {}, timed out {}, other {}, loop {}{source}",
                    load(&f.refused),
                    load(&f.timeout),
                    load(&f.other),
                    load(&f.looped)
                )
            }
        }
        None => "out of the table while down".to_string(),
    };
    let zero = if s.figures.failures == 0 { " zero" } else { "" };
    let _ = writeln!(
        out,
        "<td class=\"fail{zero}\" title=\"{reasons}\">{}</td></tr>",
        compact(s.figures.failures)
    );
    let Some(error) = s.checked.and_then(|h| h.last_error.as_deref()) else {
        return 1;
    };
    let when = s
        .checked
        .and_then(|h| h.last_check)
        .map_or(String::new(), |t| format!(" at {}", utc(t)));
    let streak = match s.checked.map_or(0, |h| h.failures) {
        0 | 1 => String::new(),
        n => format!(" ({n} in a row)"),
    };
    let _ = writeln!(
        out,
        "<tr class=\"why\"><td colspan=\"{}\">last check{when} failed{streak}: <span class=\"err\">{}</span></td></tr>",
        COLUMNS.len(),
        Escaped(error)
    );
    2
}

/// The end of the table, a line for the services left out, and the footer.
pub fn finish(out: &mut BodyWriter, shown: usize, summary: &Summary, limit: usize) {
    out.push(b"</table></div>\n");
    if shown < summary.services {
        let _ = writeln!(
            out,
            "<p class=\"cfg\">Shown: the first {shown} of {} services in listing order (the \
             page stops at {limit} rows). Every one is in <a href=\"/metrics\">/metrics</a> \
             and in <code>uvsadm -L -n</code>.</p>",
            summary.services
        );
    }
    out.push(
        b"<footer>Rates are the IPVS estimator's (as <code>uvsadm -L --rate</code>), \
          totals count since start (as <a href=\"/metrics\">/metrics</a>); weight \
          \"in force / configured\" where they differ. \
          <a href=\"/metrics\">/metrics</a> \xc2\xb7 <a href=\"/healthz\">/healthz</a></footer>\n\
          </body></html>\n",
    );
}
