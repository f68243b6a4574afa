//! Bringing a balancer from LVS in one step: `uvs import ldirectord FILE` and `uvs
//! import ipvsadm FILE` read an ldirectord.cf or an `ipvsadm-save` dump and give the
//! same configuration as uvs TOML (`render`), with the lines they could not take
//! reported with their numbers: all counted, the first hundred listed (`capped`), so
//! that a file of junk costs no more than its size. `uvs import keepalived FILE` does
//! the same for keepalived.conf's LVS half. Called by `uvs import`.

pub mod ipvsadm;
pub mod keepalived;
pub mod ldirectord;

use std::fmt::Write as _;
use std::path::Path;

use super::Config;
use super::capped::Capped;
use crate::printable::Printable;

/// A line of the input that was not (wholly) taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub line: usize,
    pub message: String,
}

/// What an import made of a file.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    pub config: Config,
    /// The first lines not taken, at most [`super::capped::SHOWN`], in the order of the
    /// file.
    pub skipped: Vec<Skipped>,
    /// How many lines were not taken, listed or not (a line can be counted more than
    /// once, for each thing in it not taken).
    pub skipped_total: usize,
    /// How many of those are another program's job (keepalived's VRRP and globals):
    /// reported, but they do not make the import fail.
    pub others_job: usize,
}

impl Imported {
    /// The lines not taken, with why, as tests compare them.
    #[cfg(test)]
    pub fn skipped_lines(&self) -> Vec<(usize, &str)> {
        self.skipped
            .iter()
            .map(|s| (s.line, s.message.as_str()))
            .collect()
    }

    /// How many lines not taken make the import fail.
    pub fn failing(&self) -> usize {
        self.skipped_total.saturating_sub(self.others_job)
    }

    /// What `uvs import` says on stderr of the lines of `file` not taken: one line
    /// each, then how many more there are. The reports quote the input (a line as
    /// written, a name), so they are shown through [`Printable`]: a control or bidi
    /// character in the file is escaped, never sent to the terminal as itself.
    pub fn not_taken(&self, file: &Path) -> String {
        let file = file.display().to_string();
        let file = Printable(&file);
        let mut out = String::new();
        for s in &self.skipped {
            let _ = writeln!(out, "{file}:{}: {}", s.line, Printable(&s.message));
        }
        let more = self.skipped_total.saturating_sub(self.skipped.len());
        if more > 0 {
            let _ = writeln!(
                out,
                "{file}: {more} more line{} not taken, not shown",
                if more == 1 { "" } else { "s" }
            );
        }
        out
    }
}

/// Why a VIP at `addr`:`port` is not taken, when it is IPv4-mapped (`::ffff:10.0.0.1`):
/// ipvsadm, ldirectord and keepalived take it as the IPv6 address it is, but `uvs
/// check` refuses it in a file, since uvs cannot listen on it
/// (`table::listener::v4_mapped`). None for any other address.
fn v4_mapped_vip(addr: &std::net::IpAddr, port: u16) -> Option<String> {
    let v4 = crate::table::listener::v4_mapped(addr)?;
    Some(format!(
        "an IPv4-mapped IPv6 address cannot be listened on (uvs's IPv6 sockets are \
         IPv6-only): write the IPv4 address, {}",
        std::net::SocketAddr::from((v4, port))
    ))
}

/// An import under way: the configuration as far as it goes, and the lines not taken.
#[derive(Default)]
struct Importing {
    config: Config,
    skipped: Capped<usize, String>,
    others_job: usize,
    /// keepalived's top-level `track_file`s so far, by name, for the FILE_CHECKs after
    /// them.
    track_files: std::collections::HashMap<String, keepalived::TrackFile>,
    /// keepalived's `lvs_sync_daemon` and its VRRP instances' ids, until the file is
    /// read.
    keepalived_sync: keepalived::sync::State,
}

impl Importing {
    fn skip(&mut self, line: usize, message: impl Into<String>) {
        self.skipped.push_with(line, || message.into());
    }

    /// As `skip`, the message made only if it is kept.
    fn skip_with(&mut self, line: usize, message: impl FnOnce() -> String) {
        self.skipped.push_with(line, message);
    }

    /// As `skip`, for what is another program's job: reported, not failing.
    fn note(&mut self, line: usize, message: impl Into<String>) {
        self.others_job += 1;
        self.skip(line, message);
    }

    fn finish(self) -> Imported {
        let (kept, total) = self.skipped.into_sorted();
        Imported {
            config: self.config,
            skipped: kept
                .into_iter()
                .map(|(line, message)| Skipped { line, message })
                .collect(),
            skipped_total: total,
            others_job: self.others_job,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::capped::SHOWN;

    #[test]
    fn the_first_hundred_lines_not_taken_are_listed_in_order_and_all_counted() {
        let mut importing = Importing::default();
        // Out of order, as the ldirectord importer reports a service's lines once its
        // block is read.
        for line in (1..=250).rev() {
            importing.skip(line, format!("junk {line}"));
        }
        importing.skip_with(300, || panic!("past the first hundred: not made"));
        let imported = importing.finish();
        assert_eq!(imported.skipped.len(), SHOWN);
        assert_eq!(imported.skipped_total, 251);
        let said = imported.not_taken(Path::new("f.cf"));
        let lines: Vec<&str> = said.lines().collect();
        assert_eq!(lines.len(), SHOWN + 1);
        assert_eq!(lines[0], "f.cf:1: junk 1");
        assert_eq!(lines[SHOWN - 1], "f.cf:100: junk 100");
        assert_eq!(lines[SHOWN], "f.cf: 151 more lines not taken, not shown");
    }
}
