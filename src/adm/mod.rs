//! ipvsadm's language: everything `uvsadm` does between its command line and the
//! control socket. Parsing (`popt`, `cmdline`, `inet`), the restore stream (`restore`),
//! output formats (`listing`, `sort`), name lookups (`names`, `dns`), and ipvsadm's main
//! program (`session`) over a [`backend::Backend`].

pub mod backend;
pub mod cmdline;
pub mod dns;
pub mod inet;
pub mod listing;
pub mod names;
pub mod popt;
pub mod restore;
pub mod session;
pub mod sort;

use std::io::{self, BufWriter};
use std::path::PathBuf;

use crate::control::{client::Client, socket_path};

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

/// The `uvsadm` program: ipvsadm's command line against the uvs daemon. Called as
/// `*-save` (e.g. a symlink `ipvsadm-save`), it is the save script instead.
pub fn uvsadm_main(mut args: Vec<String>) -> i32 {
    if args.is_empty() {
        args.push("uvsadm".into());
    }
    let socket = take_socket_option(&mut args).unwrap_or_else(socket_path::from_env);
    let mut backend = Client::new(socket);
    let mut names = names::SystemNames::new(names::NameSources::from_env());
    let stdout = io::stdout();
    let mut stdout = BufWriter::new(stdout.lock());
    let mut stderr = io::stderr();
    let stdin = io::stdin();
    let mut stdin = stdin.lock();
    let posix = std::env::var_os("POSIXLY_CORRECT").is_some()
        || std::env::var_os("POSIX_ME_HARDER").is_some();
    let program = args[0].clone();
    let save_script = std::path::Path::new(&program)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with("-save"));
    let mut session = session::Session {
        program,
        backend: &mut backend,
        names: &mut names,
        stdout: &mut stdout,
        stderr: &mut stderr,
        stdin: &mut stdin,
        posix,
    };
    if save_script {
        session.run_save_script(&args)
    } else {
        session.run(&args)
    }
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
