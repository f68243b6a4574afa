//! `uvs`: the daemon and its tools. `uvs run` holds the table and serves the control
//! socket that `uvsadm` talks to; `uvs demo` does the same with a built-in table.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};

use uvs::adm::backend::LocalBackend;
use uvs::adm::names::NoNames;
use uvs::adm::session::Session;
use uvs::control::socket_path;
use uvs::daemon::Daemon;
use uvs::table::{HostInterfaces, TableHandle};

#[derive(Parser)]
#[command(
    name = "uvs",
    version,
    about = "Userspace virtual server: IPVS, ipvsadm and ldirectord without the kernel module"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: hold the virtual-server table and serve the control socket.
    Run {
        /// Control socket path [default: $UVS_SOCKET, else /run/uvs/uvs.sock for root,
        /// $XDG_RUNTIME_DIR/uvs/uvs.sock or $TMPDIR/uvs-<uid>/uvs.sock for others]
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// Run the daemon with a built-in demonstration table.
    Demo {
        /// Control socket path [default: a fresh directory under $TMPDIR]
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Print the demonstration table and exit instead of serving it.
        #[arg(long)]
        once: bool,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("UVS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Completes on SIGTERM or SIGINT. SIGHUP is caught so it does not kill the daemon.
async fn shutdown_signal() {
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the daemon with SIGKILL");
        return std::future::pending().await;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => tracing::info!("SIGHUP: no configuration file to reload"),
        }
    }
}

fn print_table(table: &Arc<TableHandle>) {
    let mut backend = LocalBackend {
        table: Arc::clone(table),
    };
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let mut stdin = std::io::empty();
    let mut session = Session {
        program: "uvsadm".into(),
        backend: &mut backend,
        names: &mut NoNames,
        stdout: &mut out,
        stderr: &mut err,
        stdin: &mut stdin,
        posix: false,
    };
    session.run(&["uvsadm".into(), "-L".into(), "-n".into()]);
}

async fn serve(socket: PathBuf, table: Arc<TableHandle>) -> anyhow::Result<()> {
    let daemon = Daemon::bind(&socket, table)
        .with_context(|| format!("uvs cannot start on {}", socket.display()))?;
    daemon.run(shutdown_signal()).await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Run { socket } => {
            let socket = socket.unwrap_or_else(socket_path::from_env);
            let table = Arc::new(TableHandle::new(Box::new(HostInterfaces)));
            serve(socket, table).await
        }
        Command::Demo { socket, once } => {
            let table = Arc::new(TableHandle::new(Box::new(HostInterfaces)));
            uvs::demo::load(&table);
            println!("uvs demo: the demonstration table, as `uvsadm -L -n` shows it:\n");
            print_table(&table);
            if once {
                return Ok(());
            }
            let (socket, _dir) = match socket {
                Some(path) => (path, None),
                None => {
                    let dir = std::env::temp_dir().join(format!("uvs-demo-{}", std::process::id()));
                    (dir.join("uvs.sock"), Some(dir))
                }
            };
            println!(
                "\nThe daemon serves it on {0}. Try, in another terminal:\n  uvsadm --socket {0} -L -n --stats\n  uvsadm --socket {0} -a -t 127.0.0.1:8080 -r 127.0.0.1:9003 -m -w 2\nStop with Ctrl-C.",
                socket.display()
            );
            serve(socket, table).await
        }
    }
}
