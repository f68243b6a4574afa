//! uvsadm's command line described as a [`clap::Command`], for its manual page
//! (uvsadm(8)) and its shell completions only: uvsadm itself parses with ipvsadm's popt
//! table (`popt`, `cmdline`), byte for byte. [`command`] walks that very table
//! ([`cmdline::options`]) and gives each option the words of [`DOCS`], ipvsadm(8)'s
//! meanings and uvs's own, so an option the parser takes cannot be missing from the
//! page or the completions; the tests below fail on an option without words, on words
//! for an option the parser does not take, and on any short or long option the parser
//! accepts that the description lacks. Called by `uvs generate` (main.rs).

use clap::{Arg, ArgAction, Command, ValueHint};

use super::cmdline;
use super::popt::ArgMode;

/// The part of the page an option is listed in, as ipvsadm -h groups them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heading {
    Commands,
    VirtualService,
    Options,
    DaemonOptions,
    Uvs,
}

impl Heading {
    pub fn title(self) -> &'static str {
        match self {
            Heading::Commands => "Commands",
            Heading::VirtualService => "Virtual service",
            Heading::Options => "Options",
            Heading::DaemonOptions => "Daemon options",
            Heading::Uvs => "uvs options",
        }
    }
}

/// What one option of the parser's table means.
#[derive(Debug, Clone, Copy)]
pub struct Doc {
    pub long: &'static str,
    pub short: Option<char>,
    pub heading: Heading,
    /// The names of its values: one for an option that takes one, and for `--set` the
    /// three words that follow it.
    pub values: &'static [&'static str],
    /// The values it takes, when they are a fixed set (offered by the completions).
    pub choices: &'static [&'static str],
    pub help: &'static str,
}

const fn doc(
    long: &'static str,
    short: Option<char>,
    heading: Heading,
    values: &'static [&'static str],
    help: &'static str,
) -> Doc {
    Doc {
        long,
        short,
        heading,
        values,
        choices: &[],
        help,
    }
}

use Heading::{Commands, DaemonOptions, Options, Uvs, VirtualService};

/// The schedulers the table knows, as ipvsadm -h lists them.
const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
];

/// The words for every option of ipvsadm's table (and uvs's), from ipvsadm(8).
pub const DOCS: &[Doc] = &[
    doc(
        "add-service",
        Some('A'),
        Commands,
        &[],
        "Add a virtual service: a TCP, UDP or SCTP address and port, or a firewall mark, with its scheduler and persistence.",
    ),
    doc(
        "edit-service",
        Some('E'),
        Commands,
        &[],
        "Edit a virtual service: change its scheduler, persistence, netmask and flags.",
    ),
    doc(
        "delete-service",
        Some('D'),
        Commands,
        &[],
        "Delete a virtual service, with its real servers; their connections finish.",
    ),
    doc(
        "clear",
        Some('C'),
        Commands,
        &[],
        "Clear the virtual server table: every service and real server.",
    ),
    doc(
        "list",
        Some('L'),
        Commands,
        &[],
        "List the virtual server table, or the one service given; -l is the same. With -c the connections, with --timeout the timeouts, with --daemon the sync daemon.",
    ),
    doc("list", Some('l'), Commands, &[], "The same as -L."),
    doc(
        "zero",
        Some('Z'),
        Commands,
        &[],
        "Zero the packet, byte and rate counters of one service and its real servers, or of all.",
    ),
    doc(
        "add-server",
        Some('a'),
        Commands,
        &[],
        "Add a real server to a virtual service, with its forwarding method, weight and thresholds.",
    ),
    doc(
        "edit-server",
        Some('e'),
        Commands,
        &[],
        "Edit a real server of a virtual service.",
    ),
    doc(
        "delete-server",
        Some('d'),
        Commands,
        &[],
        "Delete a real server from a virtual service; its connections finish.",
    ),
    doc(
        "set",
        None,
        Commands,
        &["tcp", "tcpfin", "udp"],
        "Set the connection timeouts, in seconds, of TCP sessions, of TCP sessions after a FIN, and of UDP flows; 0 leaves one unchanged.",
    ),
    doc(
        "help",
        Some('h'),
        Commands,
        &[],
        "Print the usage and exit 0.",
    ),
    doc(
        "version",
        Some('v'),
        Commands,
        &[],
        "Print the version and exit 0.",
    ),
    doc(
        "restore",
        Some('R'),
        Commands,
        &[],
        "Restore the table from standard input: one command line (as -S writes them) per line, each run as if given to uvsadm.",
    ),
    doc(
        "save",
        Some('S'),
        Commands,
        &[],
        "Save the table to standard output in the form -R reads; with -n, numeric.",
    ),
    Doc {
        choices: &["master", "backup"],
        ..doc(
            "start-daemon",
            None,
            Commands,
            &["state"],
            "Start a connection synchronisation daemon, master or backup, with the --mcast-interface (default eth0), --syncid, --sync-maxlen, --mcast-group, --mcast-port and --mcast-ttl options: the kernel's in kernel mode, uvs's own (the same protocol over UDP multicast) in userspace mode. One per role.",
        )
    },
    Doc {
        choices: &["master", "backup"],
        ..doc(
            "stop-daemon",
            None,
            Commands,
            &["state"],
            "Stop the connection synchronisation daemon of that role (\"No daemon is running\" when there is none).",
        )
    },
    doc(
        "tcp-service",
        Some('t'),
        VirtualService,
        &["service-address"],
        "A TCP virtual service, host[:port]: an IPv4 address, or an IPv6 one in brackets ([::1]:80), or a name; port 0 (or none, with -p) reaches every port.",
    ),
    doc(
        "udp-service",
        Some('u'),
        VirtualService,
        &["service-address"],
        "A UDP virtual service, host[:port].",
    ),
    doc(
        "sctp-service",
        None,
        VirtualService,
        &["service-address"],
        "An SCTP virtual service, host[:port].",
    ),
    doc(
        "fwmark-service",
        Some('f'),
        VirtualService,
        &["integer"],
        "A virtual service by firewall mark, an integer greater than zero: packets marked so (iptables or nftables) are balanced together; IPv4 unless -6.",
    ),
    Doc {
        choices: SCHEDULERS,
        ..doc(
            "scheduler",
            Some('s'),
            Options,
            &["scheduling-method"],
            "The scheduler: rr, wrr, lc, wlc (the default), lblc, lblcr, dh, sh, sed, nq, fo, ovf or mh, as IPVS's.",
        )
    },
    doc(
        "persistent",
        Some('p'),
        Options,
        &["timeout"],
        "Persistent service: a client's connections go to the same real server for this many seconds after its last one (360 without a value).",
    ),
    doc(
        "netmask",
        Some('M'),
        Options,
        &["netmask"],
        "The granularity of persistence: clients within this netmask (IPv4) or prefix length (IPv6) share their real server.",
    ),
    doc(
        "real-server",
        Some('r'),
        Options,
        &["server-address"],
        "The real server, host[:port]; without a port, the service's.",
    ),
    doc(
        "masquerading",
        Some('m'),
        Options,
        &[],
        "Forward by masquerading (NAT). In userspace every method is kept, listed and saved, and real servers see the director's address; the method takes effect in kernel mode.",
    ),
    doc(
        "ipip",
        Some('i'),
        Options,
        &[],
        "Forward by IP-in-IP tunnelling (in kernel mode).",
    ),
    doc(
        "gatewaying",
        Some('g'),
        Options,
        &[],
        "Forward by direct routing (gatewaying), ipvsadm's default (in kernel mode); the real server takes the service's port.",
    ),
    doc(
        "weight",
        Some('w'),
        Options,
        &["weight"],
        "The real server's weight, 0 to 65535 (1 by default); 0 quiesces it: no new connections.",
    ),
    doc(
        "u-threshold",
        Some('x'),
        Options,
        &["uthreshold"],
        "Upper connection threshold: past it the server takes no new connections (0: none).",
    ),
    doc(
        "l-threshold",
        Some('y'),
        Options,
        &["lthreshold"],
        "Lower connection threshold: below it a server over its upper threshold takes connections again.",
    ),
    doc(
        "numeric",
        Some('n'),
        Options,
        &[],
        "Numeric output: addresses and ports, not host and service names.",
    ),
    doc(
        "connection",
        Some('c'),
        Options,
        &[],
        "With -L: list the connections.",
    ),
    doc(
        "mcast-interface",
        None,
        DaemonOptions,
        &["interface"],
        "The multicast interface of the sync daemon.",
    ),
    doc(
        "syncid",
        None,
        DaemonOptions,
        &["syncid"],
        "The sync daemon's id (255 by default).",
    ),
    doc(
        "timeout",
        None,
        Options,
        &[],
        "With -L: list the timeouts (tcp tcpfin udp).",
    ),
    doc(
        "daemon",
        None,
        Options,
        &[],
        "With -L: list the sync daemons (uvs has none: nothing).",
    ),
    doc(
        "stats",
        None,
        Options,
        &[],
        "With -L: list the counters: connections, packets and bytes in and out.",
    ),
    doc(
        "rate",
        None,
        Options,
        &[],
        "With -L: list the rates: connections, packets and bytes per second.",
    ),
    doc(
        "thresholds",
        None,
        Options,
        &[],
        "With -L: list the upper and lower connection thresholds of each real server.",
    ),
    doc(
        "persistent-conn",
        None,
        Options,
        &[],
        "With -L: list the persistent connections of each real server.",
    ),
    doc(
        "nosort",
        None,
        Options,
        &[],
        "With -L: do not sort services and servers.",
    ),
    doc(
        "sort",
        None,
        Options,
        &[],
        "Does nothing, for backwards compatibility (the listing is sorted).",
    ),
    doc(
        "exact",
        Some('X'),
        Options,
        &[],
        "With --stats or --rate: exact numbers, not K, M and G.",
    ),
    doc(
        "ipv6",
        Some('6'),
        Options,
        &[],
        "The fwmark service (-f) is IPv6.",
    ),
    doc(
        "ops",
        Some('o'),
        Options,
        &[],
        "One-packet scheduling: each UDP datagram is scheduled on its own.",
    ),
    Doc {
        choices: &["sip"],
        ..doc(
            "pe",
            None,
            Options,
            &["persistence-engine"],
            "An alternate persistence engine: sip.",
        )
    },
    doc(
        "sched-flags",
        Some('b'),
        Options,
        &["sched-flags"],
        "Scheduler flags, comma-separated: flag-1, flag-2, flag-3, sh-fallback, sh-port, mh-fallback, mh-port.",
    ),
    doc(
        "mcast-group",
        None,
        DaemonOptions,
        &["address"],
        "The sync daemon's multicast group, IPv4 or IPv6 (224.0.0.81 by default).",
    ),
    doc(
        "mcast-port",
        None,
        DaemonOptions,
        &["port"],
        "The sync daemon's UDP port (8848 by default).",
    ),
    doc(
        "mcast-ttl",
        None,
        DaemonOptions,
        &["ttl"],
        "The sync daemon's multicast TTL (1 by default).",
    ),
    doc(
        "sync-maxlen",
        None,
        DaemonOptions,
        &["length"],
        "The sync daemon's largest message (1472 by default).",
    ),
    doc(
        "tun-info",
        None,
        Options,
        &[],
        "With -L: list the tunnel settings of each real server.",
    ),
    Doc {
        choices: &["ipip", "gue", "gre"],
        ..doc(
            "tun-type",
            None,
            Options,
            &["type"],
            "The tunnel of an -i real server: ipip (the default), gue or gre.",
        )
    },
    doc(
        "tun-port",
        None,
        Options,
        &["port"],
        "The destination port of a gue tunnel.",
    ),
    doc(
        "tun-nocsum",
        None,
        Options,
        &[],
        "Tunnel encapsulation without checksum.",
    ),
    doc(
        "tun-csum",
        None,
        Options,
        &[],
        "Tunnel encapsulation with checksum.",
    ),
    doc(
        "tun-remcsum",
        None,
        Options,
        &[],
        "Tunnel encapsulation with remote checksum.",
    ),
    doc(
        "add-listener",
        None,
        Uvs,
        &[],
        "uvs: with -t or -u address:port, listen there too for a fwmark service (--mark N) or for the port-0 service of that address; the userspace counterpart of an iptables mark rule. The service must exist first; the address must be one address (not 0.0.0.0 or ::); another service's address is refused, and a service added there later wins it (the rule is kept, unused). Deleting the service deletes its rules.",
    ),
    doc(
        "delete-listener",
        None,
        Uvs,
        &[],
        "uvs: with -t or -u address:port, stop listening there.",
    ),
    doc(
        "mark",
        None,
        Uvs,
        &["N"],
        "uvs: with --add-listener, the fwmark service the address reaches.",
    ),
    doc(
        "listeners",
        None,
        Uvs,
        &[],
        "uvs: with -L, list the listen rules.",
    ),
    doc(
        "connect-timeout",
        None,
        Uvs,
        &["seconds|Nms"],
        "uvs: with -A or -E, how long a connect to a real server may take.",
    ),
    Doc {
        choices: &["v1", "v2"],
        ..doc(
            "proxy-protocol",
            None,
            Uvs,
            &["version"],
            "uvs: with -A or -E, send HAProxy's PROXY header, v1 or v2, to the real servers.",
        )
    },
    doc(
        "freebind",
        None,
        Uvs,
        &[],
        "uvs: with -A or -E, listen even while the virtual address is not one of this host's (IP_FREEBIND).",
    ),
];

/// uvsadm's own `--socket`, which is not in ipvsadm's table (`adm::take_socket_option`).
pub const SOCKET_HELP: &str = "The control socket of the uvs daemon [default: $UVS_SOCKET, else /run/uvs/uvs.sock for root, $XDG_RUNTIME_DIR/uvs/uvs.sock or $TMPDIR/uvs-<uid>/uvs.sock for others].";

/// The words for the option of the table written `long` (`-short`), if any.
pub fn doc_of(long: &str, short: Option<char>) -> Option<&'static Doc> {
    DOCS.iter().find(|d| d.long == long && d.short == short)
}

/// uvsadm's command line as a clap command: every option of the parser's table, with
/// its words (an option without them is listed bare; a test keeps that from
/// happening), and `--socket`. For the manual and completions only: never parse with it.
pub fn command() -> Command {
    let mut cmd = Command::new("uvsadm")
        .about("ipvsadm's command line for uvs, the userspace virtual server")
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_flag(true)
        .disable_version_flag(true)
        .dont_collapse_args_in_usage(true);
    for (order, def) in cmdline::options().enumerate() {
        let doc = doc_of(def.long, def.short);
        // `--list` is in the table twice, `-L` and `-l`: one argument, `-l` an alias.
        if cmd.get_arguments().any(|a| a.get_long() == Some(def.long)) {
            if let Some(short) = def.short {
                cmd = cmd.mut_arg(def.long, |a| a.visible_short_alias(short));
            }
            continue;
        }
        let mut arg = Arg::new(def.long).long(def.long).display_order(order);
        if let Some(short) = def.short {
            arg = arg.short(short);
        }
        let values = doc.map_or(&[][..], |d| d.values);
        arg = match def.arg {
            ArgMode::None if values.is_empty() => arg.action(ArgAction::SetTrue),
            // `--set tcp tcpfin udp`: the words after it.
            ArgMode::None => arg
                .action(ArgAction::Set)
                .num_args(values.len())
                .value_names(values),
            ArgMode::Required => arg.action(ArgAction::Set).num_args(1),
            ArgMode::Optional => arg.action(ArgAction::Set).num_args(0..=1),
        };
        if def.arg != ArgMode::None {
            arg = arg.value_name(values.first().copied().unwrap_or("value"));
        }
        if let Some(doc) = doc {
            arg = arg.help(doc.help).help_heading(doc.heading.title());
            if !doc.choices.is_empty() {
                arg = arg.value_parser(doc.choices.to_vec());
            }
        }
        cmd = cmd.arg(arg);
    }
    cmd.arg(
        Arg::new("socket")
            .long("socket")
            .value_name("PATH")
            .action(ArgAction::Set)
            .value_hint(ValueHint::FilePath)
            .help(SOCKET_HELP)
            .help_heading(Heading::Uvs.title())
            .display_order(usize::MAX),
    )
}

#[cfg(test)]
mod tests {
    use super::super::cmdline::{Context, Parsed, parse};
    use super::super::names::NoNames;
    use super::super::session::usage;
    use super::*;

    /// Whether the parser takes `word` as an option after `-L` (an unknown one is the
    /// only thing it reports as "unknown option").
    fn accepted(word: &str) -> bool {
        let args: Vec<String> = ["ipvsadm", "-L", word].map(String::from).to_vec();
        !matches!(
            parse(&args, &mut NoNames, Context::CommandLine, false),
            Parsed::BadArgument { message, .. } if message == "unknown option"
        )
    }

    fn described_shorts(cmd: &Command) -> Vec<char> {
        cmd.get_arguments()
            .flat_map(|a| {
                a.get_short()
                    .into_iter()
                    .chain(a.get_visible_short_aliases().unwrap_or_default())
            })
            .collect()
    }

    #[test]
    fn every_option_of_the_parsers_table_has_words_and_all_words_an_option() {
        let table: Vec<_> = cmdline::options().collect();
        for def in &table {
            assert!(
                doc_of(def.long, def.short).is_some(),
                "--{} (-{:?}) has no words in adm::manual::DOCS",
                def.long,
                def.short
            );
        }
        for d in DOCS {
            assert!(
                table.iter().any(|t| t.long == d.long && t.short == d.short),
                "DOCS describes --{}, which the parser does not take",
                d.long
            );
        }
    }

    #[test]
    fn every_short_option_the_parser_accepts_is_described_and_no_other() {
        let cmd = command();
        let shorts = described_shorts(&cmd);
        for c in (b'!'..=b'~').map(char::from).filter(|&c| c != '-') {
            let word = format!("-{c}");
            assert_eq!(
                accepted(&word),
                shorts.contains(&c),
                "{word}: the parser and the description disagree"
            );
        }
    }

    #[test]
    fn every_long_option_the_parser_accepts_is_described() {
        let cmd = command();
        let longs: Vec<&str> = cmd.get_arguments().filter_map(|a| a.get_long()).collect();
        // Every word of the usage text and of the description that looks like a long
        // option, and a few that ipvsadm does not have.
        let usage = usage("uvsadm");
        let mut candidates: Vec<String> = usage
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter_map(|w| w.strip_prefix("--"))
            .map(String::from)
            .collect();
        candidates.extend(longs.iter().map(|l| l.to_string()));
        candidates.extend(["lis", "bogus", "list-all"].map(String::from));
        for name in candidates {
            if name == "socket" {
                // uvsadm's own, taken out before the parser sees the line.
                assert!(longs.contains(&"socket"));
                continue;
            }
            let word = format!("--{name}");
            assert_eq!(
                accepted(&word),
                longs.contains(&name.as_str()),
                "{word}: the parser and the description disagree"
            );
        }
    }

    #[test]
    fn the_command_is_a_valid_clap_command_with_its_values() {
        let cmd = command();
        cmd.clone().debug_assert();
        let set = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some("set"))
            .expect("--set");
        assert_eq!(set.get_value_names().map(|v| v.len()), Some(3));
        let list = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some("list"))
            .expect("--list");
        assert_eq!(list.get_short(), Some('L'));
        assert_eq!(list.get_visible_short_aliases(), Some(vec!['l']));
    }
}
