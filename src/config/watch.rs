//! Autoreload's rule for when the configuration file may be read: its [`Stamp`] (size,
//! times, inode) is looked at every poll, and a file that changed is read only once two
//! polls in a row have seen it the same, so a file caught while an editor or a script
//! writes it in place is left alone until the writing stops. Used by the reloader
//! (`reload`), which owns one [`Watch`] per file.

use super::file::Stamp;

/// What autoreload knows of the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watch {
    /// The file as last read, whether it was applied or refused.
    read: Option<Stamp>,
    /// A change seen at the last poll, waiting to be seen again.
    seen: Option<Stamp>,
}

impl Watch {
    /// A watch of a file last read as `read`.
    pub fn new(read: Option<Stamp>) -> Watch {
        Watch { read, seen: None }
    }

    /// A poll found the file as `now` (None: it could not be looked at). True when it
    /// should be read now: it is not what was read last, and it is what the previous
    /// poll found.
    pub fn poll(&mut self, now: Option<Stamp>) -> bool {
        let Some(now) = now else {
            // Gone (perhaps mid-rename): nothing to read, and no change under way.
            self.seen = None;
            return false;
        };
        if Some(now) == self.read {
            self.seen = None;
            return false;
        }
        let steady = self.seen == Some(now);
        self.seen = Some(now);
        steady
    }

    /// The file was read as `stamp` (applied or refused): not read again until it
    /// changes.
    pub fn was_read(&mut self, stamp: Option<Stamp>) {
        self.read = stamp;
        self.seen = None;
    }

    /// The file was found changed again, as `now`, when it was read: the change is under
    /// way, and `now` must be seen steady at the next poll.
    pub fn moved_on(&mut self, now: Option<Stamp>) {
        self.seen = now;
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Distinct stamps: a file rewritten in place between looks.
    fn stamps(n: usize) -> (tempfile::TempDir, Vec<Stamp>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut out = Vec::new();
        for i in 0..n {
            std::fs::write(&path, "x".repeat(i + 1)).unwrap();
            out.push(Stamp::at(Path::new(&path)).unwrap());
        }
        (dir, out)
    }

    #[test]
    fn a_change_is_read_once_two_polls_saw_it_the_same() {
        let (_dir, s) = stamps(4);
        let mut w = Watch::new(Some(s[0]));
        assert!(!w.poll(Some(s[0])), "unchanged");
        assert!(!w.poll(Some(s[1])), "changed: wait for the next poll");
        assert!(!w.poll(Some(s[2])), "still being written");
        assert!(w.poll(Some(s[2])), "steady: read it");
        w.was_read(Some(s[2]));
        assert!(!w.poll(Some(s[2])), "read: not again");
        assert!(!w.poll(Some(s[2])));
    }

    #[test]
    fn a_refused_file_is_not_read_again_until_it_changes() {
        let (_dir, s) = stamps(3);
        let mut w = Watch::new(Some(s[0]));
        assert!(!w.poll(Some(s[1])));
        assert!(w.poll(Some(s[1])));
        w.was_read(Some(s[1]));
        for _ in 0..3 {
            assert!(!w.poll(Some(s[1])));
        }
        assert!(!w.poll(Some(s[2])));
        assert!(w.poll(Some(s[2])));
    }

    #[test]
    fn a_file_that_changed_while_read_waits_for_the_next_poll() {
        let (_dir, s) = stamps(3);
        let mut w = Watch::new(Some(s[0]));
        assert!(!w.poll(Some(s[1])));
        assert!(w.poll(Some(s[1])));
        // Read as s[2], not the s[1] the polls agreed on.
        w.moved_on(Some(s[2]));
        assert!(w.poll(Some(s[2])), "s[2] steady since the read");
    }

    #[test]
    fn a_missing_file_is_not_read_and_breaks_the_streak() {
        let (_dir, s) = stamps(2);
        let mut w = Watch::new(Some(s[0]));
        assert!(!w.poll(Some(s[1])));
        assert!(!w.poll(None));
        assert!(!w.poll(Some(s[1])), "seen once since it came back");
        assert!(w.poll(Some(s[1])));
    }
}
