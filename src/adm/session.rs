//! ipvsadm's main program, over a [`Backend`]: runs one command line (or, for `-R`, every
//! line of its input), writes what ipvsadm writes, and yields ipvsadm's exit status.
//! `uvsadm` is this plus a control-socket backend; tests use it with a local table.

use std::io::{BufRead, Write};

use super::backend::{Backend, BackendError};
use super::cmdline::{self, Context, Invocation, ListTarget, Parsed};
use super::listing::{self, Format};
use super::names::Names;
use super::restore::RestoreReader;
use super::words::Words;

/// The version line of `-v` and `-h`.
pub fn version_line() -> String {
    format!(
        "uvsadm {} (uvs userspace virtual server; ipvsadm v1.31 compatible, IPVS v1.2.1)\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// ipvsadm's usage text, with the program name it was called by.
pub fn usage(program: &str) -> String {
    let p = program;
    let mut s = version_line();
    s.push_str("Usage:\n");
    for form in [
        "-A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]",
        "-D virtual-service",
        "-C",
        "-R",
        "-S [-n]",
        "-a|e virtual-service -r server-address [options]",
        "-d virtual-service -r server-address",
        "-L|l [virtual-service] [options]",
        "-Z [virtual-service]",
        "--set tcp tcpfin udp",
        "--start-daemon {master|backup} [daemon-options]",
        "--stop-daemon {master|backup}",
        "-h",
    ] {
        s.push_str(&format!("  {p} {form}\n"));
    }
    s.push_str(USAGE_BODY);
    s
}

const USAGE_BODY: &str = "
Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --set tcp tcpfin udp        set connection timeout values
  --start-daemon              start connection sync daemon
  --stop-daemon               stop connection sync daemon
  --help            -h        display this help message

virtual-service:
  --tcp-service|-t  service-address   service-address is host[:port]
  --udp-service|-u  service-address   service-address is host[:port]
  --sctp-service    service-address   service-address is host[:port]
  --fwmark-service|-f fwmark          fwmark is an integer greater than zero

Options:
  --ipv6         -6                   fwmark entry uses IPv6
  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh,
                                      the default scheduler is wlc.
  --pe            engine              alternate persistence engine may be sip,
                                      not set by default.
  --persistent   -p [timeout]         persistent service
  --netmask      -M netmask           persistent granularity mask
  --real-server  -r server-address    server-address is host (and port)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --tun-type      type                one of ipip|gue|gre,
                                      the default tunnel type is ipip.
  --tun-port      port                tunnel destination port
  --tun-nocsum                        tunnel encapsulation without checksum
  --tun-csum                          tunnel encapsulation with checksum
  --tun-remcsum                       tunnel encapsulation with remote checksum
  --weight       -w weight            capacity of real server
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --connection   -c                   output of current IPVS connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --daemon                            output of daemon information
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --tun-info                          output of tunnel information
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --ops          -o                   one-packet scheduling
  --numeric      -n                   numeric output of addresses and ports
  --sched-flags  -b flags             scheduler flags (comma-separated)
Daemon Options:
  --syncid sid                        syncid for connection sync (default=255)
  --sync-maxlen length                Max sync message length (default=1472)
  --mcast-interface interface         multicast interface for connection sync
  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)
  --mcast-port port                   UDP port (default=8848)
  --mcast-ttl ttl                     Multicast TTL (default=1)
uvsadm options (uvs only):
  --socket PATH                       control socket of the uvs daemon
                                      (default: $UVS_SOCKET, else the runtime directory)
  --add-listener -t|-u address:port [--mark N]
                                      reach fwmark group N (or the address's port-0
                                      service) on this address too
  --delete-listener -t|-u address:port
  --listeners                         with -L: list the listen rules
  --connect-timeout seconds|Nms       with -A|-E: how long to wait for a real server
  --proxy-protocol v1|v2              with -A|-E: send a PROXY header to real servers
  --freebind                          with -A|-E: listen even if the VIP is not local yet
";

/// Ends the program with this status (ipvsadm's `exit()` from deep inside).
struct Exit(i32);

/// One run of the ipvsadm program.
pub struct Session<'a> {
    pub program: String,
    pub backend: &'a mut dyn Backend,
    pub names: &'a mut dyn Names,
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
    pub stdin: &'a mut dyn BufRead,
    /// POSIXLY_CORRECT is set: options end at the first non-option word.
    pub posix: bool,
}

impl Session<'_> {
    /// Runs `args` (args[0] is the program name) and returns the exit status.
    pub fn run(&mut self, args: &[String]) -> i32 {
        self.run_words(&Words::from(args))
    }

    /// [`Session::run`] of words given as bytes (the program's own argv).
    pub fn run_words(&mut self, args: &Words) -> i32 {
        let flow = if args.len() <= 1 {
            self.list(&ListTarget::All, Format::default()).map(|()| 0)
        } else {
            self.process(args, Context::CommandLine)
        };
        let code = match flow {
            Ok(result) | Err(Exit(result)) => result,
        };
        let _ = self.stdout.flush();
        let _ = self.stderr.flush();
        code & 0xff
    }

    /// `ipvsadm-save [-n]`: the save script's behaviour.
    pub fn run_save_script(&mut self, args: &[String]) -> i32 {
        let mut format = Format(Format::RULE);
        for arg in args.iter().skip(1) {
            if arg == "-n" {
                format = format.with(Format::NUMERIC);
            } else if arg.starts_with('-') {
                let name = std::path::Path::new(&self.program)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                self.err(&format!(
                    "{name}: Script to save the IPVS table to stdout.\n   With the -n option, prints out the table in numeric format.\n"
                ));
                return 1;
            }
        }
        let code = match self.list(&ListTarget::All, format) {
            Ok(()) => 0,
            Err(Exit(code)) => code,
        };
        let _ = self.stdout.flush();
        code & 0xff
    }

    fn out(&mut self, text: &str) {
        let _ = self.stdout.write_all(text.as_bytes());
    }

    fn err(&mut self, text: &str) {
        // stderr is unbuffered in C; keep stdout ahead of it so interleaving is ipvsadm's.
        let _ = self.stdout.flush();
        let _ = self.stderr.write_all(text.as_bytes());
    }

    fn try_help(&mut self) -> Exit {
        let p = self.program.clone();
        self.err(&format!(
            "Try `{p} -h' or '{p} --help' for more information.\n"
        ));
        Exit(255)
    }

    fn process(&mut self, args: &Words, context: Context) -> Result<i32, Exit> {
        match cmdline::parse_words(args, self.names, context, self.posix) {
            Parsed::Help => {
                let text = usage(&self.program);
                self.out(&text);
                Err(Exit(0))
            }
            Parsed::Version => {
                self.out(&version_line());
                Err(Exit(0))
            }
            Parsed::Fail(message) => {
                self.err(&format!("{message}\n"));
                Err(Exit(2))
            }
            Parsed::TryHelp => Err(self.try_help()),
            Parsed::BadArgument { word, message } => {
                self.err(&format!("{word}: {message}\n"));
                Ok(-1)
            }
            Parsed::Run(invocation) => self.execute(invocation, context),
        }
    }

    fn execute(&mut self, invocation: Invocation, context: Context) -> Result<i32, Exit> {
        match invocation {
            Invocation::List { target, format } => self.list(&target, format).map(|()| 0),
            Invocation::Save { format } => self.list(&ListTarget::All, format).map(|()| 0),
            Invocation::Restore if context == Context::Restore => Err(self.try_help()),
            Invocation::Restore => self.restore(),
            Invocation::Apply(command) => match self.backend.apply(&command) {
                Ok(()) => Ok(0),
                Err(BackendError::Table(e)) => {
                    self.err(&format!("{e}\n"));
                    Ok(-1)
                }
                Err(other) => Err(self.fatal(other)),
            },
        }
    }

    /// `restore_table`: each line of stdin as a command line; the status is the last
    /// line's, and a line that makes ipvsadm exit ends the restore.
    fn restore(&mut self) -> Result<i32, Exit> {
        let mut result = 0;
        // Lines are read one at a time and run before the next is read, as ipvsadm does.
        loop {
            let line = RestoreReader::new(&mut *self.stdin, &["ipvsadm", "uvsadm"]).next_line();
            let Some(words) = line else { break };
            if words.is_empty() {
                continue;
            }
            let args =
                Words::from_bytes(std::iter::once(self.program.clone().into_bytes()).chain(words));
            result = self.process(&args, Context::Restore)?;
        }
        Ok(result)
    }

    /// The daemon could not be asked: say so, exit 2 (as ipvsadm without IPVS).
    fn fatal(&mut self, e: BackendError) -> Exit {
        let text = match &e {
            BackendError::Unreachable { .. } => format!(
                "Can't initialize ipvs: {e}\nIs the uvs daemon running (uvs run)? Its control socket is chosen with --socket PATH or UVS_SOCKET.\n"
            ),
            BackendError::Untrusted { .. } => format!("Can't initialize ipvs: {e}\n"),
            _ => format!("{e}\n"),
        };
        self.err(&text);
        Exit(2)
    }

    /// A listing call: a table error ends the program with status 1, as ipvsadm's
    /// listing functions do.
    fn ask<T>(
        &mut self,
        call: impl FnOnce(&mut dyn Backend) -> Result<T, BackendError>,
    ) -> Result<T, Exit> {
        match call(&mut *self.backend) {
            Ok(v) => Ok(v),
            Err(BackendError::Table(e)) => {
                self.err(&format!("{e}\n"));
                Err(Exit(1))
            }
            Err(other) => Err(self.fatal(other)),
        }
    }

    fn list(&mut self, target: &ListTarget, format: Format) -> Result<(), Exit> {
        let mut text = String::new();
        match target {
            ListTarget::All => {
                if !format.has(Format::RULE) {
                    let info = self.ask(|b| b.info())?;
                    listing::version_line(&mut text, &info);
                    self.out(&text);
                    text.clear();
                }
                let entries = self.ask(|b| b.services())?;
                if format.has(Format::RULE) {
                    // uvs's listen rules follow the services they lead to, so -R
                    // restores them too; a service that holds a rule's address as its
                    // own (shadows it) follows the rules, as --add-listener refuses a
                    // rule at a service's address but -A of a service over a rule is
                    // accepted, so -R gives the table back in any order it was made.
                    let rules = self.ask(|b| b.listeners())?;
                    let owners: std::collections::HashSet<_> = rules
                        .iter()
                        .flat_map(|r| crate::table::listener::owners(&r.listen))
                        .collect();
                    let (shadowing, first): (Vec<_>, Vec<_>) =
                        entries.into_iter().partition(|e| owners.contains(&e.key));
                    listing::services(&mut text, self.names, &first, format);
                    listing::listen_rules(&mut text, self.names, &rules, format);
                    listing::more_services(&mut text, self.names, &shadowing, format);
                } else {
                    listing::services(&mut text, self.names, &entries, format);
                }
            }
            ListTarget::Service(key) => {
                let entry = self.ask(|b| b.service(key))?;
                listing::single_service(&mut text, self.names, &entry, format);
            }
            ListTarget::Connections => {
                let conns = self.ask(|b| b.connections())?;
                listing::connections(&mut text, self.names, &conns, format);
            }
            ListTarget::Timeouts => {
                let t = self.ask(|b| b.timeouts())?;
                listing::timeouts(&mut text, &t);
            }
            ListTarget::Listeners => {
                let rules = self.ask(|b| b.listeners())?;
                listing::listen_rules(&mut text, self.names, &rules, format);
            }
            ListTarget::Daemons => {
                let daemons = self.ask(|b| b.daemons())?;
                listing::daemons(&mut text, &daemons);
            }
        }
        self.out(&text);
        Ok(())
    }
}
