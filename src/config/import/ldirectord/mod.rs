//! ldirectord.cf to a configuration, read as ldirectord 4.12's `read_config` reads it:
//! bytes, not text (a comment in GBK or Latin-1 is a comment); a `virtual=` line at
//! the start of a line opens a virtual service, and the lines after it indented by at
//! least four columns (a tab counts four) belong to it, up to the first line that is
//! not (a blank line ends the block too); `#` lines are comments, and inside a block
//! everything from a `#` on is dropped, even inside quotes. Each directive's value is
//! taken with ldirectord's own loose, unanchored pattern (`checkinterval=5 ## x` is 5,
//! `scheduler=wlc # x` is wlc, `gate -w 5` is weight 5), and a line ldirectord would
//! refuse is reported with its number and not taken (ldirectord refuses the whole
//! file). Host and service names are resolved through the importer's [`Names`].
//!
//! ldirectord's implicit choices are written out: TCP, or UDP for port 53 (`domain`);
//! wrr; the negotiate check speaking the service the port names; the check interval
//! (10 s), failure count (1), quiescent (no) and timeouts (checktimeout 5 s,
//! negotiatetimeout 30 s, each the other's default) as its code sets them. Directives
//! uvs has no counterpart for are reported with their line. Values holding bytes that
//! are not UTF-8 are reported and not taken: uvs's configuration is UTF-8 text, and
//! rewriting the bytes would change what a check sends or expects.
//!
//! Called by `uvs import ldirectord`.

mod directives;
mod real;
mod service;
#[cfg(test)]
mod tests;
mod values;

use std::sync::LazyLock;
use std::time::Duration;

use regex::bytes::Regex;

use super::{Imported, Importing};
use crate::adm::names::Names;
use crate::table::Family;
use directives::{Globals, global_directive, open_virtual, virtual_directive};
use values::re;

/// ldirectord's defaults (`set_defaults`; the code, where its man page differs).
pub(super) const CHECKINTERVAL: u64 = 10;
pub(super) const FAILURECOUNT: u32 = 1;

static VIRTUAL: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)^virtual(6)?\s*=\s*(.*)"));
static COMMENT_LINE: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)^\s*#"));
pub(super) static BLANK_LINE: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)^\s*$"));
static INDENTED: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)^ {4,}(.+)"));

/// Imports an ldirectord.cf; `names` resolves host and service names (as ldirectord's
/// getaddrinfo and getservbyname would).
pub fn import(input: &[u8], names: &mut dyn Names) -> Imported {
    let mut imported = Importing::default();
    let mut globals = Globals {
        checktimeout: None,
        negotiatetimeout: None,
        checkinterval: CHECKINTERVAL,
        failurecount: FAILURECOUNT,
        fork: false,
    };
    let mut quiescent = false;
    let mut fallback: Option<(usize, Vec<u8>, Family)> = None;
    // Per-virtual intervals, taken only if `fork=yes` (read anywhere in the file).
    let mut intervals: Vec<(usize, usize, u64)> = Vec::new();
    let mut lines = input.split(|b| *b == b'\n').enumerate();
    // A line that ended a block, read next at the top level (ldirectord's `goto`).
    let mut pending: Option<(usize, &[u8])> = None;
    // The virtual services read so far, by what makes them the same in IPVS.
    let mut seen = std::collections::HashSet::new();
    loop {
        let (line, raw) = match pending.take() {
            Some(next) => next,
            None => match lines.next() {
                Some((i, raw)) => (i + 1, raw),
                None => break,
            },
        };
        if let Some(c) = VIRTUAL.captures(raw) {
            let family = if c.get(1).is_some() {
                Family::Inet6
            } else {
                Family::Inet
            };
            let target = c.get(2).map_or(&[][..], |m| m.as_bytes());
            let mut v = open_virtual(line, family, target, &mut imported);
            for (i, raw) in lines.by_ref() {
                let line = i + 1;
                if COMMENT_LINE.is_match(raw) {
                    continue;
                }
                let cut = raw.iter().position(|b| *b == b'#').unwrap_or(raw.len());
                let mut body = Vec::with_capacity(cut);
                for b in &raw[..cut] {
                    if *b == b'\t' {
                        body.extend_from_slice(b"    ");
                    } else {
                        body.push(*b);
                    }
                }
                let Some(directive) = INDENTED.captures(&body).and_then(|c| c.get(1)) else {
                    pending = Some((line, raw));
                    break;
                };
                if let Some(v) = v.as_mut() {
                    virtual_directive(v, directive.as_bytes(), line, &mut imported);
                }
            }
            if let Some(v) = v {
                let (line, interval) = (v.line, v.checkinterval);
                if let Some(spec) = service::service(v, &globals, names, &mut imported) {
                    if seen.insert(spec.service.key) {
                        if let Some((at, n)) = interval {
                            intervals.push((imported.config.services.len(), at, n));
                        }
                        imported.config.services.push(spec);
                    } else {
                        imported.skip(line, "duplicate virtual server; not taken");
                    }
                }
            }
            continue;
        }
        if BLANK_LINE.is_match(raw) || COMMENT_LINE.is_match(raw) {
            continue;
        }
        global_directive(
            raw,
            line,
            &mut globals,
            &mut quiescent,
            &mut fallback,
            &mut imported,
        );
    }
    let g = &mut imported.config.global;
    g.health.quiescent = Some(quiescent);
    // ldirectord removes its services on stop unless told `cleanstop=no`.
    g.cleanstop = g.cleanstop.or(Some(true));
    g.health.check.interval = Some(Duration::from_secs(globals.checkinterval));
    g.health.check.failures = Some(globals.failurecount);
    if let Some((line, value, family)) = fallback {
        match real::fallback(&value, None, "tcp", family, names) {
            Ok(server) => imported.config.global.health.fallback = Some(server),
            Err(e) => imported.skip(line, e),
        }
    }
    for (index, line, seconds) in intervals {
        if globals.fork {
            imported.config.services[index].health.check.interval =
                Some(Duration::from_secs(seconds));
        } else {
            imported.skip(
                line,
                "checkinterval in a virtual service: ldirectord ignores it when fork=no (its default); the global checkinterval applies",
            );
        }
    }
    imported.finish()
}
