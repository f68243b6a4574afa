//! `uvsadm`: ipvsadm's command line, answered by the uvs daemon over its control socket.

use std::io::{self, BufWriter};

use uvs::adm;
use uvs::control::{client::Client, socket_path};

fn main() {
    // As bytes: an option ipvsadm copies as bytes (--mcast-interface) must see them.
    let args = adm::words::Words::from_os(std::env::args_os());
    std::process::exit(uvsadm_main(args));
}

/// The `uvsadm` program: ipvsadm's command line against the uvs daemon. Called as
/// `*-save` (e.g. a symlink `ipvsadm-save`), it is the save script instead.
fn uvsadm_main(mut args: adm::words::Words) -> i32 {
    if args.is_empty() {
        args.push_bytes(b"uvsadm".to_vec());
    }
    let socket = adm::take_socket_option(&mut args).unwrap_or_else(socket_path::from_env);
    let mut backend = Client::new(socket);
    let mut names = adm::names::SystemNames::new(adm::names::NameSources::from_env());
    let stdout = io::stdout();
    let mut stdout = BufWriter::new(stdout.lock());
    let mut stderr = io::stderr();
    let stdin = io::stdin();
    let mut stdin = stdin.lock();
    let posix = std::env::var_os("POSIXLY_CORRECT").is_some()
        || std::env::var_os("POSIX_ME_HARDER").is_some();
    let program = args.text()[0].clone();
    let save_script = std::path::Path::new(&program)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with("-save"));
    let mut session = adm::session::Session {
        program,
        backend: &mut backend,
        names: &mut names,
        stdout: &mut stdout,
        stderr: &mut stderr,
        stdin: &mut stdin,
        posix,
    };
    if save_script {
        session.run_save_script(args.text())
    } else {
        session.run_words(&args)
    }
}
