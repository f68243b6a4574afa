//! `uvs drain` and `uvs undrain`: the command line of the timed drain (`table::pool`).
//! The service and the real server are written as uvsadm takes them (`-t|-u|-f
//! SERVICE -r SERVER`, read by uvsadm's own parser), the command goes to the daemon over
//! the control socket, and a refusal is said in ipvsadm's words with ipvsadm's exit
//! status: 2 for what the command line cannot mean or a daemon that cannot be asked,
//! 255 for what the table refuses ("Service not defined", "No such destination").

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueHint};
use uvs::adm::backend::{Backend, BackendError};
use uvs::adm::cmdline::{Context, Invocation, Parsed, parse};
use uvs::adm::names::{NameSources, SystemNames};
use uvs::control::client::Client;
use uvs::control::socket_path;
use uvs::table::pool::open_words;
use uvs::table::{Command, Protocol, ServerKey, ServiceKey};

/// The service and real server, as uvsadm writes them.
#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("service").required(true).args(["tcp", "udp", "fwmark"])))]
pub struct Target {
    /// Control socket path [default: as for uvs run]
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
    socket: Option<PathBuf>,
    /// A TCP virtual service, as uvsadm -t takes it
    #[arg(short = 't', long = "tcp-service", value_name = "SERVICE-ADDRESS")]
    tcp: Option<String>,
    /// A UDP virtual service, as uvsadm -u takes it
    #[arg(short = 'u', long = "udp-service", value_name = "SERVICE-ADDRESS")]
    udp: Option<String>,
    /// An fwmark virtual service, as uvsadm -f takes it
    #[arg(short = 'f', long = "fwmark-service", value_name = "FWMARK")]
    fwmark: Option<String>,
    /// The fwmark service is IPv6's (uvsadm -6)
    #[arg(short = '6', long = "ipv6", requires = "fwmark")]
    ipv6: bool,
    /// The real server, as uvsadm -r takes it
    #[arg(short = 'r', long = "real-server", value_name = "SERVER-ADDRESS")]
    server: String,
}

/// `uvs drain`'s arguments.
#[derive(Args, Debug, Clone)]
pub struct DrainArgs {
    #[command(flatten)]
    target: Target,
    /// Close what is still open after this long and remove the server ("30s", "2m", or
    /// seconds) [default: only when its last connection ends]
    // A negative deadline reaches the parser, which says why it is refused, rather
    // than reading as an unknown option.
    #[arg(long, value_name = "DURATION", value_parser = duration, allow_hyphen_values = true)]
    deadline: Option<Duration>,
    /// Persistent clients (templates) keep reaching the server while it drains
    #[arg(long)]
    keep_persistent: bool,
}

/// The longest deadline, as the configuration file's `drain` caps it: a day.
const MAX_DEADLINE: Duration = Duration::from_secs(86_400);

/// A duration as the configuration file writes them: "30s", "2m", "1h 30m", or a
/// number of seconds; at least a millisecond and at most a day, as the file's `drain`
/// (clap refuses anything else with exit 2, as uvsadm does a bad argument).
fn duration(text: &str) -> Result<Duration, String> {
    let d = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(text)
            .map_err(|e| format!("{e}; write it as \"30s\", \"2m\" or seconds"))?,
    };
    if d.as_millis() == 0 {
        return Err("a deadline of at least 1ms".into());
    }
    if d > MAX_DEADLINE {
        return Err(format!(
            "a deadline of at most a day (1d, 86400 seconds), as the configuration's drain; {} is longer",
            humantime::format_duration(d)
        ));
    }
    Ok(d)
}

/// What went wrong, with ipvsadm's exit status.
struct Failed(u8, String);

impl Target {
    /// The service and server keys, read by uvsadm's parser as `-d` reads them.
    fn keys(&self) -> Result<(ServiceKey, ServerKey), Failed> {
        let mut args = vec!["uvsadm".to_string(), "-d".to_string()];
        let (switch, value) = match (&self.tcp, &self.udp, &self.fwmark) {
            (Some(t), _, _) => ("-t", t),
            (_, Some(u), _) => ("-u", u),
            (_, _, Some(f)) => ("-f", f),
            _ => return Err(Failed(2, "a service is needed: -t, -u or -f".into())),
        };
        args.extend([switch.to_string(), value.clone()]);
        if self.ipv6 {
            args.push("-6".to_string());
        }
        args.extend(["-r".to_string(), self.server.clone()]);
        let mut names = SystemNames::new(NameSources::from_env());
        match parse(&args, &mut names, Context::CommandLine, false) {
            Parsed::Run(Invocation::Apply(Command::DeleteServer { service, server })) => {
                Ok((service, server))
            }
            Parsed::Fail(message) => Err(Failed(2, message)),
            Parsed::BadArgument { word, message } => Err(Failed(2, format!("{word}: {message}"))),
            other => Err(Failed(
                2,
                format!("cannot read the service and server: {other:?}"),
            )),
        }
    }

    fn client(&self) -> Client {
        Client::new(socket_path::chosen(self.socket.clone()).0)
    }
}

/// A refusal as uvsadm says it: the table's in ipvsadm's words (255), an unreachable
/// daemon as uvsadm says it (2).
fn refused(e: BackendError) -> Failed {
    match e {
        BackendError::Table(e) => Failed(255, e.to_string()),
        BackendError::Unreachable { .. } => Failed(
            2,
            format!(
                "{e}\nIs the uvs daemon running (uvs run)? Its control socket is chosen with --socket PATH or UVS_SOCKET."
            ),
        ),
        other => Failed(2, other.to_string()),
    }
}

fn finish(result: Result<String, Failed>) -> ExitCode {
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(Failed(code, message)) => {
            eprintln!("{message}");
            ExitCode::from(code)
        }
    }
}

/// `uvs drain`: exit 0 once the drain has started, with a line saying what happens.
pub fn drain(args: &DrainArgs) -> ExitCode {
    finish(start(args))
}

fn start(args: &DrainArgs) -> Result<String, Failed> {
    let (service, server) = args.target.keys()?;
    let deadline_ms = args
        .deadline
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut client = args.target.client();
    client
        .apply(&Command::Drain {
            service,
            server,
            deadline_ms,
            keep_persistent: args.keep_persistent,
        })
        .map_err(refused)?;
    // What is left, read back; a server with nothing open may be gone already.
    let open = client
        .service(&service)
        .ok()
        .and_then(|e| {
            e.servers
                .into_iter()
                .find(|s| s.addr == server.addr && s.port == server.port)
        })
        .and_then(|s| s.draining)
        .map_or(0, |d| d.open);
    let connections = open_words(&service, u64::from(open));
    let when = match args.deadline {
        Some(d) => format!(
            "removed when they end, or in {} with what is left closed",
            humantime::format_duration(d)
        ),
        None => "removed when they end".to_string(),
    };
    let persistent = if args.keep_persistent {
        "; persistent clients kept"
    } else {
        ""
    };
    Ok(if open == 0 {
        let none = match service {
            ServiceKey::Inet {
                protocol: Protocol::Udp,
                ..
            } => "no flow",
            ServiceKey::Inet { .. } => "no connection",
            ServiceKey::Fwmark { .. } => "no connection or flow",
        };
        format!("draining {server} of {service}: {none} open, removed now{persistent}")
    } else {
        format!("draining {server} of {service}: {connections} open, {when}{persistent}")
    })
}

/// `uvs undrain`: the server takes new connections again at its weight (or, drained
/// out by `uvs drain`, the configuration file may add it again). A server that was not
/// draining is left as it is and said so, with exit 0: undrain is idempotent, as
/// ipvsadm's `-e` with the server's own settings is.
pub fn undrain(target: &Target) -> ExitCode {
    finish(stop(target))
}

fn stop(target: &Target) -> Result<String, Failed> {
    let (service, server) = target.keys()?;
    let mut client = target.client();
    let find = |client: &mut Client| {
        client.service(&service).ok().and_then(|e| {
            e.servers
                .into_iter()
                .find(|s| s.addr == server.addr && s.port == server.port)
        })
    };
    // Absent before: drained out (the file may add it again, even at once).
    let before = find(&mut client);
    client
        .apply(&Command::Undrain { service, server })
        .map_err(refused)?;
    let after = find(&mut client);
    Ok(undrained(
        &service,
        &server,
        before.map(|s| s.draining.is_some()),
        after.map(|s| s.weight),
    ))
}

/// What `uvs undrain` says: `was_draining` None when the server was not in the table
/// (drained out), `weight` the weight it has now (None: not in the table).
fn undrained(
    service: &ServiceKey,
    server: &ServerKey,
    was_draining: Option<bool>,
    weight: Option<u32>,
) -> String {
    match (was_draining, weight) {
        (Some(false), Some(w)) => format!(
            "{server} of {service} was not draining: nothing to undo, weight {w}{}",
            if w == 0 {
                " (it takes no new connection)"
            } else {
                ""
            }
        ),
        (Some(true), Some(w)) => format!("{server} of {service} takes new connections, weight {w}"),
        _ => format!(
            "{server} of {service} is no longer drained out: a configuration file that names it adds it again"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::{duration, undrained};

    #[test]
    fn a_deadline_over_a_day_is_refused_as_the_file_refuses_it() {
        assert_eq!(duration("1d"), Ok(std::time::Duration::from_secs(86_400)));
        assert_eq!(
            duration("86400"),
            Ok(std::time::Duration::from_secs(86_400))
        );
        for long in ["18446744073709551615", "86401", "1d 1ms", "2years"] {
            let e = duration(long).unwrap_err();
            assert!(e.contains("at most a day"), "{long}: {e}");
        }
    }

    #[test]
    fn undrain_of_a_server_not_draining_says_so() {
        let service: uvs::table::ServiceKey = uvs::table::ServiceKey::Inet {
            protocol: uvs::table::Protocol::Tcp,
            addr: "127.0.0.1".parse().unwrap(),
            port: 80,
        };
        let server = uvs::table::ServerKey {
            addr: "127.0.0.2".parse().unwrap(),
            port: 80,
        };
        assert_eq!(
            undrained(&service, &server, Some(false), Some(0)),
            "127.0.0.2:80 of tcp 127.0.0.1:80 was not draining: nothing to undo, weight 0 (it takes no new connection)"
        );
        assert_eq!(
            undrained(&service, &server, Some(false), Some(3)),
            "127.0.0.2:80 of tcp 127.0.0.1:80 was not draining: nothing to undo, weight 3"
        );
        assert_eq!(
            undrained(&service, &server, Some(true), Some(3)),
            "127.0.0.2:80 of tcp 127.0.0.1:80 takes new connections, weight 3"
        );
    }

    #[test]
    fn deadlines_read_as_the_configuration_writes_them() {
        assert_eq!(duration("30s"), Ok(std::time::Duration::from_secs(30)));
        assert_eq!(duration("2m"), Ok(std::time::Duration::from_secs(120)));
        assert_eq!(duration("45"), Ok(std::time::Duration::from_secs(45)));
        assert!(duration("0").is_err());
        assert!(duration("soon").is_err());
    }
}
