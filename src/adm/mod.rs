//! ipvsadm's language: everything `uvsadm` does between its command line and the
//! control socket. Parsing (`popt`, `cmdline`, `inet`), the restore stream (`restore`),
//! output formats (`listing`, `sort`), name lookups (`names`, `dns`), and ipvsadm's main
//! program (`session`) over a [`backend::Backend`]; `bin/uvsadm.rs` runs it against the
//! daemon's control socket. `manual` describes the command line for uvsadm(8) and the
//! shell completions.

pub mod backend;
pub mod cmdline;
pub mod dns;
pub mod inet;
pub mod listing;
pub mod manual;
pub mod names;
pub mod popt;
pub mod restore;
pub mod session;
pub mod sort;

use std::path::PathBuf;

/// Takes uvsadm's own `--socket PATH` / `--socket=PATH` out of the arguments (ipvsadm
/// has no such option, so the word cannot mean anything else), before a `--`.
pub fn take_socket_option(args: &mut Vec<String>) -> Option<PathBuf> {
    let mut found = None;
    let mut i = 1;
    while i < args.len() {
        if args[i] == "--" {
            break;
        }
        if let Some(path) = args[i].strip_prefix("--socket=") {
            found = Some(PathBuf::from(path));
            args.remove(i);
        } else if args[i] == "--socket" && i + 1 < args.len() {
            found = Some(PathBuf::from(args.remove(i + 1)));
            args.remove(i);
        } else {
            i += 1;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn socket_option_is_taken_out() {
        let mut a = words(&["uvsadm", "--socket", "/s", "-L", "-n"]);
        assert_eq!(take_socket_option(&mut a), Some(PathBuf::from("/s")));
        assert_eq!(a, words(&["uvsadm", "-L", "-n"]));
        let mut b = words(&["uvsadm", "-L", "--socket=/t"]);
        assert_eq!(take_socket_option(&mut b), Some(PathBuf::from("/t")));
        assert_eq!(b, words(&["uvsadm", "-L"]));
        let mut c = words(&["uvsadm", "--set", "--", "--socket", "x"]);
        assert_eq!(take_socket_option(&mut c), None);
        assert_eq!(c.len(), 5);
    }
}
