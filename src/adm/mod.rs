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
pub mod words;

use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use words::Words;

/// Takes uvsadm's own `--socket PATH` / `--socket=PATH` out of the arguments (ipvsadm
/// has no such option, so the word cannot mean anything else), before a `--`. The path
/// is the word's bytes.
pub fn take_socket_option(args: &mut Words) -> Option<PathBuf> {
    let mut found = None;
    let mut i = 1;
    while i < args.len() {
        let word = &args.text()[i];
        if word == "--" {
            break;
        }
        if word.starts_with("--socket=") {
            let bytes = args.os(i).map(OsStringExt::into_vec).unwrap_or_default();
            let path = bytes.get("--socket=".len()..).unwrap_or_default();
            found = Some(PathBuf::from(OsStr::from_bytes(path)));
            args.remove(i);
        } else if word == "--socket" && i + 1 < args.len() {
            found = args.os(i + 1).map(PathBuf::from);
            args.remove(i + 1);
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

    fn words(s: &[&str]) -> Words {
        Words::from(s.iter().map(|w| w.to_string()).collect::<Vec<_>>())
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
        let mut d = Words::from_bytes([b"uvsadm".to_vec(), b"--socket=/s\xff".to_vec()]);
        assert_eq!(
            take_socket_option(&mut d),
            Some(PathBuf::from(OsStr::from_bytes(b"/s\xff")))
        );
    }
}
