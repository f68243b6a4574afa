//! `uvsadm`: ipvsadm's command line, answered by the uvs daemon.

fn main() {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(uvs::adm::uvsadm_main(args));
}
