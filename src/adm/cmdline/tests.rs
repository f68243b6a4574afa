//! The ipvsadm grammar: legality, value parsing, order-dependent quirks, messages.

use std::net::Ipv4Addr;

use super::*;

/// Names for tests: localhost and the http/www service only.
struct TestNames;

impl Names for TestNames {
    fn host_name(&mut self, _: IpAddr) -> Option<String> {
        None
    }
    fn service_name(&mut self, _: u16, _: &str) -> Option<String> {
        None
    }
    fn host_addr(&mut self, name: &str) -> Option<Ipv4Addr> {
        (name == "localhost").then_some(Ipv4Addr::LOCALHOST)
    }
    fn service_port(&mut self, name: &str, protocol: &str) -> Option<u16> {
        (matches!(name, "http" | "www") && protocol == "tcp").then_some(80)
    }
}

fn run_in(context: Context, line: &str) -> Parsed {
    let args: Vec<String> = std::iter::once("ipvsadm")
        .chain(line.split_whitespace())
        .map(String::from)
        .collect();
    parse(&args, &mut TestNames, context, false)
}

fn run(line: &str) -> Parsed {
    run_in(Context::CommandLine, line)
}

fn fail(line: &str) -> String {
    match run(line) {
        Parsed::Fail(m) => m,
        other => panic!("{line}: expected a failure, got {other:?}"),
    }
}

fn command(line: &str) -> Command {
    match run(line) {
        Parsed::Run(Invocation::Apply(c)) => c,
        other => panic!("{line}: expected a command, got {other:?}"),
    }
}

fn tcp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Inet {
        protocol: Protocol::Tcp,
        addr: addr.parse().unwrap(),
        port,
    }
}

#[test]
fn legality_table() {
    assert_eq!(
        fail("-A -t 1.2.3.4:80 -n"),
        "Illegal 'numeric' option with the 'add-service' command"
    );
    assert_eq!(
        fail("-D -t 1.2.3.4:80 -s rr"),
        "Illegal 'scheduler' option with the 'delete-service' command"
    );
    assert_eq!(
        fail("-d -t 1.2.3.4:80"),
        "You need to supply the 'real-server' option for the 'delete-server' command"
    );
    assert_eq!(
        fail("-C -n"),
        "Illegal 'numeric' option with the 'flush' command"
    );
    assert_eq!(
        fail("-Z -n"),
        "Illegal 'numeric' option with the 'zero' command"
    );
    assert_eq!(
        fail("-L --timeout --daemon"),
        "The option 'daemon' conflicts with the 'timeout' option in the 'list' command"
    );
    assert_eq!(
        fail("-L -c --timeout"),
        "The option 'timeout' conflicts with the 'connection' option in the 'list' command"
    );
    assert_eq!(
        fail("-L --timeout --persistent-conn"),
        "options conflicts in the list command"
    );
    assert_eq!(
        fail("--set 1 2 3 -n"),
        "Illegal 'numeric' option with the 'set' command"
    );
    assert_eq!(
        fail("-S --nosort"),
        "Illegal 'nosort' option with the 'save' command"
    );
    assert_eq!(
        fail("--start-daemon master -n"),
        "Illegal 'numeric' option with the 'start-daemon' command"
    );
    assert_eq!(
        fail("-A -t 1.2.3.4:80 -t 1.2.3.5:80"),
        "multiple 'service-address' options specified"
    );
    assert_eq!(
        fail("-a -t 1.2.3.4:80 -r 5.6.7.8 -m -g"),
        "multiple 'forwarding-method' options specified"
    );
}

#[test]
fn the_command_must_come_first() {
    assert_eq!(run("-t 1.2.3.4:80 -A"), Parsed::TryHelp);
    assert_eq!(run("foo"), Parsed::TryHelp);
    assert_eq!(run("--bogus"), Parsed::TryHelp);
    assert_eq!(fail("-A -D -t 1.2.3.4:80"), "invalid option `-D'");
    assert_eq!(fail("-LD"), "invalid option `-LD'");
    assert_eq!(fail("-L -h"), "invalid option `-h'");
    assert_eq!(run("-h --bogus"), Parsed::Help);
    assert_eq!(run("-v"), Parsed::Version);
}

#[test]
fn popt_errors_after_the_command_name_the_word() {
    assert_eq!(
        run("-L --bogus"),
        Parsed::BadArgument {
            word: "--bogus".into(),
            message: "unknown option"
        }
    );
    assert_eq!(
        run("-a -t 1.2.3.4:80 -r 5.6.7.8 -w"),
        Parsed::BadArgument {
            word: "-w".into(),
            message: "missing argument"
        }
    );
    assert_eq!(
        run("-L --numeric=yes"),
        Parsed::BadArgument {
            word: "--numeric=yes".into(),
            message: "option does not take an argument"
        }
    );
    assert_eq!(fail("-L -n extra"), "unexpected argument extra");
    assert_eq!(fail("--set 1 2 3 4"), "unexpected argument 4");
}

#[test]
fn defaults_of_add_and_edit() {
    let Command::AddService(c) = command("-A -t 1.2.3.4:80") else {
        panic!()
    };
    assert_eq!(c.scheduler, "wlc");
    assert_eq!(c.flags, ServiceFlags(0));
    assert_eq!(c.netmask, Netmask::V4(Ipv4Addr::BROADCAST));
    let Command::AddService(c) = command("-A -t 1.2.3.4:80 -p") else {
        panic!()
    };
    assert!(c.flags.persistent());
    assert_eq!(c.timeout, 360, "-p without a value is 360 s");
    let Command::AddServer { service, server } = command("-a -t 1.2.3.4:80 -r 5.6.7.8:8080") else {
        panic!()
    };
    assert_eq!(service, tcp("1.2.3.4", 80));
    assert_eq!(server.forward, Forward::Route);
    assert_eq!(server.weight, 1);
    assert_eq!(
        server.in_service(&service).port,
        80,
        "direct routing forces the service port (in the table, for every writer)"
    );
    let Command::EditServer { server, .. } = command("-e -t 1.2.3.4:80 -r 5.6.7.8:8080 -m") else {
        panic!()
    };
    assert_eq!(server.port, 8080, "NAT keeps the given port");
    assert_eq!((server.u_threshold, server.l_threshold), (0, 0));
}

#[test]
fn service_addresses() {
    assert_eq!(
        fail("-A -t 300.1.1.1:80"),
        "illegal virtual server address[:port] specified"
    );
    assert_eq!(
        fail("-A -t 80"),
        "illegal virtual server address[:port] specified",
        "digits only is not an address"
    );
    assert_eq!(
        fail("-A -t 2001:db8::5:80"),
        "Zero port specified for non-persistent service",
        "an IPv6 address without brackets has no port"
    );
    assert_eq!(
        fail("-A -t [1.2.3.4]:80"),
        "Zero port specified for non-persistent service",
        "brackets around IPv4 lose the port, as in ipvsadm"
    );
    let Command::AddService(c) = command("-A -t localhost:http") else {
        panic!()
    };
    assert_eq!(c.key, tcp("127.0.0.1", 80));
    assert_eq!(
        fail("-A -u localhost:http"),
        "illegal virtual server address[:port] specified",
        "http is a tcp name only here"
    );
    let Command::AddService(c) = command("-A -t 10.1:80") else {
        panic!()
    };
    assert_eq!(c.key, tcp("10.0.0.1", 80), "inet_aton's short form");
    assert_eq!(
        fail("-A -t 10.0.0.1:0x50"),
        "illegal virtual server address[:port] specified",
        "ports are decimal or names"
    );
}

#[test]
fn order_dependent_quirks_are_ipvsadms() {
    // -M before the service is read as IPv4; the IPv6 service then resets it to /128.
    let Command::AddService(c) = command("-A -M 64 -t [2001:db8::1]:80 -p") else {
        panic!()
    };
    assert_eq!(c.netmask, Netmask::V6(128));
    let Command::AddService(c) = command("-A -t [2001:db8::1]:80 -p -M 64") else {
        panic!()
    };
    assert_eq!(c.netmask, Netmask::V6(64));
    assert_eq!(
        fail("-A -t [2001:db8::1]:80 -p -M 255.255.255.0"),
        "illegal ipv6 netmask specified"
    );
    // -r before -t: the real server's port falls back to the (still unset) service port.
    let Command::AddServer { server, .. } = command("-a -r 5.6.7.8 -t 1.2.3.4:80 -m") else {
        panic!()
    };
    assert_eq!(server.port, 0);
    assert_eq!(fail("-A -6 -f 5"), "-6 used before -f\n");
    let Command::AddService(c) = command("-A -f 5 -6") else {
        panic!()
    };
    assert_eq!(
        c.key,
        ServiceKey::Fwmark {
            mark: 5,
            family: Family::Inet6
        }
    );
}

#[test]
fn scheduler_flags() {
    assert_eq!(
        fail("-A -t 1.2.3.4:80 -s sh -b mh-port"),
        "incompatible scheduler flag `mh-port'"
    );
    assert_eq!(
        fail("-A -t 1.2.3.4:80 -b sh-port"),
        "incompatible scheduler flag `sh-port'",
        "the default scheduler is wlc"
    );
    assert_eq!(
        fail("-A -t 1.2.3.4:80 -b flag-1,bogus"),
        "invalid scheduler flag `bogus'"
    );
    let Command::AddService(c) = command("-A -t 1.2.3.4:80 -b sh-port,sh-fallback -s sh") else {
        panic!()
    };
    assert_eq!(c.flags.0, ServiceFlags::SCHED1 | ServiceFlags::SCHED2);
}

#[test]
fn numbers() {
    assert_eq!(
        fail("-a -t 1.2.3.4:80 -r 5.6.7.8 -w 2147483648"),
        "illegal weight specified"
    );
    assert!(matches!(
        command("-a -t 1.2.3.4:80 -r 5.6.7.8 -w 2147483647"),
        Command::AddServer { .. }
    ));
    assert_eq!(
        fail("-a -t 1.2.3.4:80 -r 5.6.7.8 -y x"),
        "illegal l_threshold specified"
    );
    assert_eq!(
        fail("-A -t 1.2.3.4:80 -p 2678401"),
        "invalid timeout value `2678401' specified"
    );
    assert_eq!(
        fail("-A -f 4294967296"),
        "invalid fwmark value `4294967296' specified"
    );
    assert!(matches!(
        command("-A -f 4294967295"),
        Command::AddService(_)
    ));
    assert_eq!(fail("-A -f -1"), "invalid fwmark value `-1' specified");
    match run_in(Context::Restore, "-A -f -1294967296 -s rr") {
        Parsed::Run(Invocation::Apply(Command::AddService(c))) => assert_eq!(
            c.key,
            ServiceKey::Fwmark {
                mark: 3_000_000_000,
                family: Family::Inet
            },
            "-S writes big marks as negative numbers; -R reads them back"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        command("--set 0 60 0"),
        Command::SetTimeouts(Timeouts {
            tcp: 0,
            tcp_fin: 60,
            udp: 0
        })
    );
}

#[test]
fn tunnels() {
    assert_eq!(
        fail("-a -t 1.2.3.4:80 -r 5.6.7.8 -m --tun-type gre"),
        "Tunnel options conflict with forward method"
    );
    assert_eq!(
        fail("-a -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-type gue --tun-port 1 --tun-csum --tun-remcsum"),
        "The option 'tun-remcsum' conflicts with the 'tun-csum' option in the 'gue' tunnel type"
    );
    assert_eq!(
        fail("-a -t 1.2.3.4:80 -r 5.6.7.8 -i --tun-type gre --tun-port 9"),
        "Illegal 'tun-port' option with the 'gre' tunnel type"
    );
    assert_eq!(
        fail("-a -t 1.2.3.4:80 -r 2001:db8::1 -m"),
        "Different address family is allowed only for tunneling servers"
    );
    let Command::AddServer { server, .. } =
        command("-a -t 1.2.3.4:80 -r 2001:db8::1 -i --tun-type gue --tun-port 6080 --tun-csum")
    else {
        panic!()
    };
    assert_eq!(
        server.tunnel,
        Tunnel {
            kind: TunnelKind::Gue,
            port: 6080,
            checksum: TunnelChecksum::Csum
        }
    );
}

#[test]
fn zero_and_lists() {
    assert_eq!(command("-Z"), Command::Zero { service: None });
    assert_eq!(command("-Z -t 0.0.0.0:0"), Command::Zero { service: None });
    assert_eq!(
        command("-Z -t 1.2.3.4:80"),
        Command::Zero {
            service: Some(tcp("1.2.3.4", 80))
        }
    );
    assert_eq!(
        run("-Ln --exact --stats"),
        Parsed::Run(Invocation::List {
            target: ListTarget::All,
            format: Format(Format::NUMERIC | Format::EXACT | Format::STATS)
        })
    );
    assert_eq!(
        run("--list --numeric --sort --sort -t 1.2.3.4:80"),
        Parsed::Run(Invocation::List {
            target: ListTarget::Service(tcp("1.2.3.4", 80)),
            format: Format(Format::NUMERIC)
        })
    );
    assert_eq!(
        run("-S"),
        Parsed::Run(Invocation::Save {
            format: Format(Format::RULE)
        })
    );
}

#[test]
fn sync_daemon_commands_parse_and_then_reach_the_table() {
    assert_eq!(
        command("--start-daemon backup --mcast-interface lo --syncid 7"),
        Command::StartSyncDaemon(SyncDaemon {
            syncid: 7,
            ..SyncDaemon::new(SyncRole::Backup, "lo")
        })
    );
    // ipvsadm's DEF_MCAST_IFN when no interface is given; every setting is kept.
    assert_eq!(
        command(
            "--start-daemon master --syncid 200 --sync-maxlen 1400 --mcast-group 239.1.2.3 \
             --mcast-port 9000 --mcast-ttl 3"
        ),
        Command::StartSyncDaemon(SyncDaemon {
            syncid: 200,
            maxlen: 1400,
            group: Some("239.1.2.3".parse().unwrap()),
            port: 9000,
            ttl: 3,
            ..SyncDaemon::new(SyncRole::Master, "eth0")
        })
    );
    assert_eq!(
        command("--stop-daemon backup"),
        Command::StopSyncDaemon {
            role: SyncRole::Backup
        }
    );
    assert_eq!(
        fail("--start-daemon primary"),
        "illegal start-daemon parameter specified"
    );
    assert_eq!(
        fail("--start-daemon master --syncid 256"),
        "illegal syncid specified"
    );
    assert_eq!(
        fail("--start-daemon master --mcast-group 10.0.0.1"),
        "invalid IPv4 mcast-group `10.0.0.1'"
    );
}

#[test]
fn proxy_protocol_v1_is_refused_on_a_udp_service() {
    let said = "PROXY protocol v1 is for TCP virtual services: a UDP virtual service sends \
                only v2 (--proxy-protocol v2)";
    assert_eq!(fail("-A -u 1.2.3.4:53 --proxy-protocol v1"), said);
    assert_eq!(fail("-E -u 1.2.3.4:53 -s rr --proxy-protocol 1"), said);
    // v2 on UDP, v1 on TCP and on an fwmark service (its TCP listeners) are taken.
    for line in [
        "-A -u 1.2.3.4:53 --proxy-protocol v2",
        "-A -t 1.2.3.4:80 --proxy-protocol v1",
        "-A -f 7 --proxy-protocol v1",
    ] {
        command(line);
    }
}

/// The interface a `--start-daemon master` with these words names, or the failure.
fn daemon_interface(words: &[&[u8]]) -> Result<String, String> {
    let args = crate::adm::words::Words::from_bytes(
        [&b"ipvsadm"[..], b"--start-daemon", b"master"]
            .iter()
            .chain(words)
            .map(|w| w.to_vec()),
    );
    match super::parse_words(&args, &mut TestNames, Context::CommandLine, false) {
        Parsed::Run(Invocation::Apply(Command::StartSyncDaemon(d))) => Ok(d.interface),
        Parsed::Fail(message) => Err(message),
        other => panic!("{other:?}"),
    }
}

#[test]
fn mcast_interface_keeps_the_first_15_bytes_as_ipvsadm() {
    // ipvsadm 1.31: strncpy(ce->daemon.mcast_ifn, optarg, IP_VS_IFNAME_MAXLEN - 1).
    let i = |w: &[u8]| daemon_interface(&[b"--mcast-interface", w]);
    assert_eq!(i(b"abcdefghijklmno"), Ok("abcdefghijklmno".into()));
    assert_eq!(i(b"abcdefghijklmnop"), Ok("abcdefghijklmno".into()));
    assert_eq!(
        daemon_interface(&[b"--mcast-interface=abcdefghijklmnopq"]),
        Ok("abcdefghijklmno".into())
    );
    // Bytes past the 15th are not kept, whatever they are.
    assert_eq!(i(b"abcdefghijklmno\xff"), Ok("abcdefghijklmno".into()));
    // Seven two-byte characters and one byte: 15 bytes, kept whole.
    assert_eq!(
        i("\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}a".as_bytes()),
        Ok("\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}a".into())
    );
    // A NUL (only a line of -R input can hold one) ends the C string.
    assert_eq!(i(b"lo\0ignored"), Ok("lo".into()));
    // Nothing before it: ipvsadm's DEF_MCAST_IFN.
    assert_eq!(i(b"\0x"), Ok("eth0".into()));
}

#[test]
fn mcast_interface_bytes_uvs_cannot_keep_are_refused_naming_the_option() {
    let said = |kept: &str| {
        format!(
            "illegal mcast-interface `{kept}' specified: the name's first 15 bytes (what \
             ipvsadm keeps of it) are not UTF-8, and uvs keeps interface names as text"
        )
    };
    let i = |w: &[u8]| daemon_interface(&[b"--mcast-interface", w]);
    assert_eq!(i(b"e\xfft"), Err(said("e\\xfft")));
    assert_eq!(
        daemon_interface(&[b"--mcast-interface=e\xfft"]),
        Err(said("e\\xfft"))
    );
    // The 15th byte is the first of a two-byte character: ipvsadm keeps half of it.
    assert_eq!(
        i("abcdefghijklmn\u{e9}".as_bytes()),
        Err(said("abcdefghijklmn\\xc3"))
    );
    // U+FFFD given as such is a character like any other.
    assert_eq!(i("e\u{fffd}t".as_bytes()), Ok("e\u{fffd}t".into()));
}
