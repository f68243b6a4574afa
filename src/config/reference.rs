//! The configuration reference: every table and key of the TOML file with its type,
//! default, meaning and, where the behaviour is copied, its ldirectord, keepalived or
//! IPVS source. `uvs generate man` (main.rs) renders it as uvs.toml(5). The tests below
//! hold it to the schema (`schema`): every key listed, with its example value, must
//! load, and every key the schema takes in a table must be listed for that table, so
//! the page cannot drift from what `uvs check` accepts.

/// One table of the file (or a family of tables read alike, such as the checks).
#[derive(Debug, Clone, Copy)]
pub struct Section {
    /// As written in the file: `[global]`, `[[service.server]]`.
    pub header: &'static str,
    /// What the table is, where else it may be written, how it is read.
    pub about: &'static str,
    pub keys: &'static [Key],
}

/// One key of a table.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    /// The TOML type, as the page says it: "string", "duration", "integer 0-65535".
    pub kind: &'static str,
    /// What an absent key means; "required" for a key the table cannot go without.
    pub default: &'static str,
    /// A value in TOML that the schema takes (the tests load it).
    pub example: &'static str,
    /// Other keys of the same table that the example needs, as TOML lines, in place
    /// of the table's usual companions (see the tests); None: the usual ones.
    pub with: Option<&'static str>,
    pub meaning: &'static str,
    /// Whose behaviour it copies: "ldirectord's checkinterval", "ipvsadm -s"; empty
    /// for uvs's own.
    pub source: &'static str,
}

const fn key(
    name: &'static str,
    kind: &'static str,
    default: &'static str,
    example: &'static str,
    meaning: &'static str,
    source: &'static str,
) -> Key {
    Key {
        name,
        kind,
        default,
        example,
        with: None,
        meaning,
        source,
    }
}

/// The admission keys (`table::admission`), alike in `[global]` (for every service,
/// checked before the service's own) and in a `[[service]]`.
const ALLOW: Key = key(
    "allow",
    "array of strings (CIDR prefixes or addresses)",
    "none (everyone not denied)",
    "[\"127.0.0.0/8\", \"::1\"]",
    "Client prefixes that may connect; with an allow list, any other client is refused. The most specific prefix of allow and deny that holds the client decides (deny on a tie). Checked on the real client's address (after a PROXY header). In [global] for every service, before the service's own list: a client must pass both.",
    "nginx's allow, HAProxy's acl src",
);
const DENY: Key = key(
    "deny",
    "array of strings (CIDR prefixes or addresses)",
    "none",
    "[\"127.0.0.66/32\"]",
    "Client prefixes refused (see allow for which prefix decides). UDP datagrams of a denied client are dropped; TCP connections get deny_action.",
    "nginx's deny, HAProxy's tcp-request connection reject",
);
const DENY_ACTION: Key = key(
    "deny_action",
    "string \"reset\" or \"drop\"",
    "\"reset\"",
    "\"drop\"",
    "What a TCP client refused by an access list or a limit gets: a reset, or nothing at all (the connection is dropped without a word, and the client times out: TCP repair mode, which needs CAP_NET_ADMIN; without it, a reset with a TTL of 1, which dies at the first router but reaches a client on the same host or link).",
    "HAProxy's tcp-request connection reject and silent-drop",
);
const CLOSE_DENIED: Key = key(
    "close_denied",
    "boolean",
    "false",
    "true",
    "When a reload changes the access lists, also close the established connections and flows of clients they now deny, counted as refused by the list (false: those go on; only new ones are refused).",
    "",
);
const LIMITS: Key = key(
    "limits",
    "table { connections_per_source, new_per_second_per_source, flows_per_source = integer 0-16777216, source_prefix_v4 = 0-32, source_prefix_v6 = 0-128, max_sources = integer 1-16777216 }",
    "none",
    "{ connections_per_source = 10, new_per_second_per_source = 20 }",
    "Limits per client source (an address, or the /source_prefix_v4 or /source_prefix_v6 it is in; default /32 and /64): TCP connections open at once, new TCP connections per second, UDP flows open at once (0: no limit). Over a limit a connection gets deny_action, a flow is dropped. At most max_sources (default 65536) sources are tracked; past it the least recently seen is forgotten. In [global], counted over all services together.",
    "HAProxy's stick-table conn_cur and conn_rate, nginx's limit_conn",
);

/// The source keys (`table::source`), alike in `[global]` (for every service that says
/// neither) and in a `[[service]]`.
const SOURCE: Key = key(
    "source",
    "array of strings (addresses, or inclusive ranges \"FIRST-LAST\" of one family)",
    "none (the kernel chooses the source address and port)",
    "[\"127.0.0.2\", \"127.0.0.10-127.0.0.19\", \"::1\"]",
    "The local addresses uvs connects to TCP real servers from, taken in turn (one cursor per real server, so each server's connects use every address; at most 65536 addresses in all; no duplicates, no unspecified, multicast, broadcast or IPv4-mapped IPv6 address). A real server of a family with no address here is connected as without the key. Without source_ports the kernel still picks the port at connect (IP_BIND_ADDRESS_NO_PORT), so each address adds the ports of net.ipv4.ip_local_port_range per 60 s of TIME_WAIT to each real server. The addresses must be local: a bind that finds one not on this host (EADDRNOTAVAIL, a floating address not up here) skips it for the connect and counts it (uvs_service_source_address_unavailable_total). In [global], for every service that has neither source nor source_ports; source = [] in a service says none.",
    "HAProxy's source, IPVS has no counterpart (it keeps the client's address)",
);
const SOURCE_PORTS: Key = key(
    "source_ports",
    "string \"LOW-HIGH\" (1-65535), or one port",
    "none (the kernel picks the port)",
    "\"20000-29999\"",
    "The ports uvs binds itself, in turn with the source addresses (SO_REUSEADDR, then bind, then connect): such a connect may take over a TIME_WAIT of its 4-tuple that has timestamps (tcp_twsk_unique), whatever net.ipv4.tcp_tw_reuse says, so there is no TIME_WAIT limit. Without source, the unspecified address of the real server's family with these ports. The real server's own port is never bound with its address or the unspecified one (a connect to itself). A busy port (held by another socket, or its 4-tuple in use) is skipped for the next, 32 at most; then the connect fails as no free source port (uvs_service_source_port_exhausted_total). Best outside net.ipv4.ip_local_port_range, which the kernel's own choices use, and the ports services listen on (uvs check warns of both).",
    "HAProxy's source ADDR:LOW-HIGH",
);

/// `alpha`, in [global] and in a service alike but for its `default`.
const fn alpha(default: &'static str) -> Key {
    key(
        "alpha",
        "boolean",
        default,
        "true",
        "A real server starts down until its first good check.",
        "keepalived's alpha",
    )
}

/// `omega`, in [global] and in a service alike but for its `default`.
const fn omega(default: &'static str) -> Key {
    key(
        "omega",
        "boolean",
        default,
        "true",
        "notify_down and quorum_down also run when the daemon stops.",
        "keepalived's omega",
    )
}

/// How durations are written, for the page.
pub const DURATIONS: &str = "Durations are strings such as \"30s\", \"500ms\", \"5m\" or \"1h 30m\", or integers (seconds).";

/// Every table, in the order of the page.
pub const SECTIONS: &[Section] = &[
    Section {
        header: "[global]",
        about: "Daemon settings and the defaults of every service's health. The command line of uvs run wins over the file, at start and on every reload. Settings that shape the running daemon take effect at the next start (a reload that changes them says so); autoreload and expire_quiescent_template apply on the reload that changes them, the health defaults with the services.",
        keys: &[
            key(
                "mode",
                "string: auto, userspace or kernel",
                "auto",
                "\"userspace\"",
                "Where to balance: the kernel's IPVS (through generic netlink) where it can be used, else userspace; or one of them only.",
                "",
            ),
            key(
                "socket",
                "string (path)",
                "$UVS_SOCKET, else /run/uvs/uvs.sock for root, $XDG_RUNTIME_DIR/uvs/uvs.sock or $TMPDIR/uvs-UID/uvs.sock for others",
                "\"/run/uvs/uvs.sock\"",
                "The control socket that uvsadm and uvs status talk to.",
                "",
            ),
            key(
                "cleanstop",
                "boolean",
                "true",
                "false",
                "Kernel mode: remove uvs's services from the kernel when the daemon stops (false: leave them balancing).",
                "ldirectord's cleanstop",
            ),
            key(
                "metrics",
                "string: ADDR:PORT or \"off\"",
                "127.0.0.1:9280",
                "\"127.0.0.1:9280\"",
                "Where /metrics (Prometheus), /healthz and the status page / are served, or off.",
                "",
            ),
            key(
                "status_page",
                "boolean",
                "true",
                "false",
                "Serve the status page at / on the metrics address (false: / answers 404; /metrics and /healthz are served either way). The page answers only requests whose Host is an IP address or localhost (a guard against DNS rebinding): open it by address.",
                "",
            ),
            key(
                "autoreload",
                "boolean",
                "false",
                "true",
                "Reload when the file changes (looked at every second), as well as on SIGHUP.",
                "ldirectord's autoreload",
            ),
            key(
                "threads",
                "integer 1-1024",
                "the number of CPUs",
                "4",
                "Worker threads serving connections.",
                "",
            ),
            key(
                "forwarding",
                "string: auto, splice or copy",
                "auto",
                "\"copy\"",
                "How TCP bytes move: copy small messages and splice bulk (auto, Linux), always splice, or always copy.",
                "",
            ),
            key(
                "max_udp_flows",
                "integer 1-4294967295",
                "65536, or half the open-files limit if that is less",
                "100000",
                "The most UDP flows open at once; new flows beyond it are dropped and counted.",
                "",
            ),
            key(
                "max_connections",
                "integer 1-4294967295",
                "what the open-files limit allows, two descriptors each",
                "10000",
                "The most TCP connections proxied at once; beyond it, clients wait in the listen backlog.",
                "",
            ),
            key(
                "metrics_max_connections",
                "integer 1-65536",
                "64",
                "16",
                "Connections the metrics endpoint serves at once.",
                "",
            ),
            key(
                "udp_unreplied_timeout",
                "duration 1s-1d",
                "5s",
                "\"5s\"",
                "How long a UDP flow lives until its real server answers; unanswered flows are the first to make room when the flow table is full.",
                "",
            ),
            key(
                "max_templates",
                "integer 1-4294967295",
                "1048576",
                "100000",
                "The most persistence templates held at once; at the cap, unused ones make room.",
                "",
            ),
            key(
                "udp_flows_per_source",
                "integer 1-4294967295",
                "no limit",
                "64",
                "The most UDP flows one client address may hold at once.",
                "",
            ),
            key(
                "drain_timeout",
                "duration 0-1d",
                "30s",
                "\"30s\"",
                "On SIGTERM or SIGINT, how long open connections may take to finish (a second SIGTERM or SIGINT ends the wait).",
                "",
            ),
            key(
                "expire_quiescent_template",
                "boolean",
                "false",
                "true",
                "Persistent clients of a weight-0 real server are scheduled anew.",
                "IPVS's net.ipv4.vs.expire_quiescent_template",
            ),
            key(
                "connect_timeout",
                "duration 1ms-1h",
                "5s",
                "\"2s\"",
                "How long a TCP connect to a real server may take, for services without their own.",
                "",
            ),
            key(
                "retries",
                "integer 0-100",
                "1",
                "2",
                "Other real servers tried after a failed TCP connect.",
                "",
            ),
            key(
                "client_congestion_control",
                "string",
                "the system's (net.ipv4.tcp_congestion_control)",
                "\"cubic\"",
                "TCP congestion control for connections accepted from clients.",
                "",
            ),
            key(
                "server_congestion_control",
                "string",
                "the system's (net.ipv4.tcp_congestion_control), but cubic where that is BBR",
                "\"cubic\"",
                "TCP congestion control for connections to real servers; \"system\" keeps the system's default even where it is BBR (BBR's pacing costs a third of a bulk transfer on the short path to real servers on the same host or LAN; where cubic needs CAP_NET_ADMIN, the system's default stays).",
                "",
            ),
            key(
                "maintenance_dir",
                "string (path)",
                "none",
                "\"/etc/uvs/maintenance\"",
                "A file named IP:PORT or IP in this directory holds that real server down.",
                "ldirectord's maintenancedir",
            ),
            ALLOW,
            DENY,
            DENY_ACTION,
            CLOSE_DENIED,
            LIMITS,
            SOURCE,
            SOURCE_PORTS,
            key(
                "check",
                "table",
                "none",
                "{ type = \"connect\", interval = \"5s\" }",
                "The defaults of every check ([global.check]; see the check tables below). One table, not an array.",
                "ldirectord's global check settings",
            ),
            key(
                "quiescent",
                "boolean",
                "true",
                "false",
                "Down means weight 0 (true: established and persistent clients finish) or removal from the service (false), for services that do not say.",
                "ldirectord's quiescent",
            ),
            key(
                "fallback",
                "table",
                "none",
                "{ address = \"127.0.0.1:8000\" }",
                "The default fallback server of every service (see the fallback table below).",
                "ldirectord's fallback",
            ),
            alpha("false"),
            omega("false"),
        ],
    },
    Section {
        header: "[timeouts]",
        about: "The connection timeouts, as ipvsadm --set tcp tcpfin udp sets them; unset ones stay as they are.",
        keys: &[
            key(
                "tcp",
                "duration 1s-1y",
                "15m",
                "\"15m\"",
                "Idle timeout of an established TCP connection.",
                "IPVS, ipvsadm --set",
            ),
            key(
                "tcpfin",
                "duration 1s-1y",
                "2m",
                "\"2m\"",
                "Timeout of a TCP connection after a FIN.",
                "IPVS, ipvsadm --set",
            ),
            key(
                "udp",
                "duration 1s-1y",
                "5m",
                "\"1m\"",
                "Idle timeout of a UDP flow.",
                "IPVS, ipvsadm --set",
            ),
        ],
    },
    Section {
        header: "[sync]",
        about: "The connection-sync daemons uvs runs, as ipvsadm --start-daemon starts them: a master sends its persistence templates and the state of its connections to a multicast group, and a backup takes what it hears, so that when a VIP moves to another director its clients keep their real servers. In kernel mode they are the kernel's daemons (IPVS_CMD_NEW_DAEMON), and the kernel's backup also carries on the connections it forwards; in userspace mode they are uvs's own, and a proxied connection cannot move between directors: it is reset, and its client reconnects to the same real server by the template (README, \"More than one director\"). uvs starts them at start and on every reload that changes the section (a changed section stops and starts its daemons again, an unchanged one touches nothing, a removed one stops what the file started); health changes never touch them. A daemon started with uvsadm for a role the file does not name is left alone, and one of the file's that uvsadm stopped is started again at the next reload. In kernel mode the section owns the roles it names: a kernel daemon of such a role that runs with other settings and that uvs did not start (left by an earlier uvs stopped with cleanstop = false, or started by hand) is stopped and the file's started in its place, said once in the log; daemons of the other roles are left alone; one the kernel refuses is shown down with the kernel's reason in uvs status and uvs_sync_daemon_up, and tried again every 2 s. A clean stop stops them, unless cleanstop = false. uvs check refuses a bad value with its key; that the interface exists is checked at start and on reload: a daemon whose interface is missing does not hold up the rest of the file, it is shown down in uvs status (\"No such device\", as the kernel answers) and tried again every 2 s.",
        keys: &[
            Key {
                with: Some("interface = \"lo\""),
                ..key(
                    "role",
                    "string \"master\", \"backup\" or \"both\"",
                    "required",
                    "\"both\"",
                    "Which daemon runs: the master (sends), the backup (receives), or both at once (each director sends what it balances and takes what the other sends; keepalived instead switches between them as its VRRP instance moves, which uvs import keepalived maps to both).",
                    "ipvsadm --start-daemon master|backup",
                )
            },
            Key {
                with: Some("role = \"master\""),
                ..key(
                    "interface",
                    "string, a network interface name (at most 15 bytes)",
                    "required",
                    "\"lo\"",
                    "The interface the master sends through and the backup listens on; its MTU sets a backup's largest message.",
                    "ipvsadm --mcast-interface, keepalived's lvs_sync_daemon INTERFACE",
                )
            },
            key(
                "syncid",
                "integer 0-255",
                "0",
                "7",
                "The sync id the master puts in its messages; a backup with a non-zero id takes only messages carrying it (several clusters on one link).",
                "ipvsadm --syncid, keepalived's lvs_sync_daemon id",
            ),
            key(
                "maxlen",
                "integer 1-65507",
                "the kernel's: 1472 for a master (a 1500-byte frame), the interface's MTU for a backup",
                "1400",
                "The largest sync message, in bytes of UDP payload (a backup takes at least 1024).",
                "ipvsadm --sync-maxlen, keepalived's lvs_sync_daemon maxlen",
            ),
            key(
                "group",
                "string, an IPv4 or IPv6 multicast address",
                "\"224.0.0.81\"",
                "\"239.1.2.3\"",
                "The multicast group the messages go to.",
                "ipvsadm --mcast-group, keepalived's lvs_sync_daemon group",
            ),
            key(
                "port",
                "integer 1-65535",
                "8848",
                "8848",
                "The UDP port of the group.",
                "ipvsadm --mcast-port, keepalived's lvs_sync_daemon port",
            ),
            key(
                "ttl",
                "integer 1-255",
                "1",
                "1",
                "The multicast TTL of the messages.",
                "ipvsadm --mcast-ttl, keepalived's lvs_sync_daemon ttl",
            ),
        ],
    },
    Section {
        header: "[[service]]",
        about: "A virtual service (ipvsadm -A): exactly one of tcp, udp, sctp or fwmark; or, with group, a group of virtual services sharing real servers and checks (keepalived's virtual_server_group), each member one virtual service of the table.",
        keys: &[
            Key {
                with: Some(""),
                ..key(
                    "tcp",
                    "string ADDR:PORT; in a group, an array of ADDR:PORT or ranges",
                    "none",
                    "\"127.0.0.1:80\"",
                    "A TCP virtual service. Port 0 with persistence reaches every port. In a group, members such as \"10.0.0.1-10.0.0.9:80\" or \"[2001:db8::1-2001:db8::9]:80\".",
                    "ipvsadm -t",
                )
            },
            Key {
                with: Some(""),
                ..key(
                    "udp",
                    "string ADDR:PORT; in a group, an array",
                    "none",
                    "\"127.0.0.1:53\"",
                    "A UDP virtual service.",
                    "ipvsadm -u",
                )
            },
            Key {
                with: Some(""),
                ..key(
                    "sctp",
                    "string ADDR:PORT; in a group, an array",
                    "none",
                    "\"127.0.0.1:3868\"",
                    "An SCTP virtual service (kernel mode).",
                    "ipvsadm --sctp-service",
                )
            },
            Key {
                with: Some(""),
                ..key(
                    "fwmark",
                    "integer 1-4294967295; in a group, an array",
                    "none",
                    "7",
                    "A virtual service by firewall mark; in userspace its addresses are given by listen.",
                    "ipvsadm -f",
                )
            },
            Key {
                with: Some("fwmark = 7"),
                ..key(
                    "ipv6",
                    "boolean",
                    "false",
                    "true",
                    "An fwmark service (or a group of marks alone) is IPv6; an address says its own family.",
                    "ipvsadm -6",
                )
            },
            Key {
                with: Some("tcp = [\"127.0.0.1:80\", \"127.0.0.2:80\"]"),
                ..key(
                    "group",
                    "string",
                    "none",
                    "\"web\"",
                    "Names a group: tcp, udp, sctp and fwmark then list members, at most 256 (a range counts each address), of one family.",
                    "keepalived's virtual_server_group",
                )
            },
            key(
                "scheduler",
                "string",
                "wlc",
                "\"wrr\"",
                "The scheduler: rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf or mh.",
                "ipvsadm -s",
            ),
            Key {
                with: Some("tcp = \"127.0.0.1:80\"\nscheduler = \"sh\""),
                ..key(
                    "flags",
                    "array of strings",
                    "none",
                    "[\"sh-port\"]",
                    "Scheduler flags: flag-1, flag-2, flag-3, sh-fallback, sh-port, mh-fallback, mh-port (the sh- and mh- ones for their scheduler).",
                    "ipvsadm -b",
                )
            },
            Key {
                with: Some("udp = \"127.0.0.1:53\""),
                ..key(
                    "one_packet",
                    "boolean",
                    "false",
                    "true",
                    "One-packet scheduling: each datagram scheduled on its own. UDP services only.",
                    "ipvsadm -o",
                )
            },
            key(
                "persistent",
                "duration 1s-31d, or boolean",
                "false",
                "\"10m\"",
                "Persistence: a client's connections go to the same real server this long after its last one; true is 300 s.",
                "ipvsadm -p",
            ),
            key(
                "netmask",
                "string IPv4 netmask, or integer prefix length",
                "255.255.255.255 (128 for IPv6)",
                "\"255.255.255.0\"",
                "The granularity of persistence.",
                "ipvsadm -M",
            ),
            key(
                "pe",
                "string",
                "none",
                "\"sip\"",
                "A persistence engine (kernel mode).",
                "ipvsadm --pe",
            ),
            key(
                "connect_timeout",
                "duration 1ms-1h",
                "[global] connect_timeout",
                "\"2s\"",
                "How long a TCP connect to a real server of this service may take.",
                "uvsadm --connect-timeout",
            ),
            key(
                "proxy_protocol",
                "string: v1 or v2 (UDP: v2 only)",
                "none",
                "\"v2\"",
                "Send HAProxy's PROXY protocol header to the real servers: on TCP before the client's first byte; on UDP (v2 only) in front of every datagram, command PROXY, transport DGRAM.",
                "uvsadm --proxy-protocol",
            ),
            key(
                "freebind",
                "boolean",
                "false",
                "true",
                "Listen even while the virtual address is not one of this host's (IP_FREEBIND).",
                "uvsadm --freebind",
            ),
            key(
                "drain_on_remove",
                "duration 1ms-1d",
                "none (a removed server leaves at once)",
                "\"30s\"",
                "A real server the file no longer names (or that its health checks take out) drains for at most this long instead of leaving at once: no new connections, its established ones go on until they end or the time is up.",
                "",
            ),
            key(
                "ejection",
                "table: failures (integer >= 1), base_time (duration 1ms-1d), max_share (number in (0, 1]), max_time (duration 1ms-1d, optional)",
                "none (no passive ejection)",
                "{ failures = 3, base_time = \"30s\", max_share = 0.5 }",
                "Passive ejection: after `failures` failed connects in a row (refused, timed out; ICMP errors on UDP flows) a real server takes no new connections for base_time times its ejections in a row (one less per quiet base_time), at most max_time (300s unless set); never more than max_share of the servers at once, never the last usable one; back sooner when its health check passes.",
                "Envoy's outlier_detection (consecutive_5xx, base_ejection_time, max_ejection_percent, max_ejection_time); HAProxy's observe layer4 + error-limit + on-error mark-down",
            ),
            key(
                "slow_start",
                "duration 0s-1d",
                "0s (none)",
                "\"30s\"",
                "After a real server is added to the running service or comes back (weight from 0, health check, ejection over), its share of the new connections it would get grows from 1/20 to all over this window (userspace mode).",
                "HAProxy slowstart",
            ),
            key(
                "queue",
                "table { length = integer 1-1000000, timeout = duration 1ms-1h }",
                "none (reset)",
                "{ length = 100, timeout = \"5s\" }",
                "Where new TCP connections wait, first come first served, when every usable real server is at its max_connections: at most length of them, each at most timeout, then reset. Without it they are reset at once. UDP flows are never queued (dropped instead).",
                "HAProxy's maxqueue and timeout queue",
            ),
            key(
                "accept_proxy",
                "string \"v1\", \"v2\" or \"any\"",
                "none (clients send no PROXY header)",
                "\"v2\"",
                "Clients (a load balancer or proxy in front) send a PROXY protocol header first; the address in it is the client for everything (scheduling, persistence, -L -c, access lists, limits, logs). A missing, malformed or late header closes the connection (UDP: every datagram carries a v2 header, which is cut off; one without a good one is dropped; \"v1\" is refused on UDP, \"any\" means v2 there). LOCAL headers (the balancer's own health checks) are served as from the balancer.",
                "HAProxy's accept-proxy, nginx's proxy_protocol on listen",
            ),
            key(
                "accept_proxy_timeout",
                "duration 1ms-1m",
                "\"3s\"",
                "\"5s\"",
                "How long a client has to send its whole PROXY header.",
                "nginx's proxy_protocol_timeout",
            ),
            Key {
                with: Some("tcp = \"127.0.0.1:80\"\naccept_proxy = \"v2\""),
                ..key(
                    "accept_proxy_from",
                    "array of CIDR prefixes (as allow)",
                    "none (any peer may send the header)",
                    "[\"10.0.0.0/24\", \"2001:db8::/64\"]",
                    "The peers (the socket's address, not the header's) that may send the PROXY header (needs accept_proxy). A connection from any other peer is reset before its header is read, a datagram dropped, each counted as a rejected PROXY header. Without it any peer that reaches the VIP can claim any client: firewall the VIP to the balancer in front, or set this.",
                    "HAProxy's tcp-request connection expect-proxy layer4 if { src -f trusted }, nginx's set_real_ip_from",
                )
            },
            Key {
                with: Some("tcp = \"127.0.0.1:80\"\nproxy_protocol = \"v2\""),
                ..key(
                    "proxy_protocol_tlvs",
                    "array of strings: \"unique_id\", \"service_name\"",
                    "none",
                    "[\"unique_id\", \"service_name\"]",
                    "uvs's own TLVs in the PROXY v2 header to the real servers (needs proxy_protocol = \"v2\"): unique_id is PP2_TYPE_UNIQUE_ID (0x05), 16 bytes no other connection gets; service_name is type 0xE5, the service as uvs names it (\"tcp 127.0.0.1:80\"). They replace received TLVs of the same type (accept_proxy); the other received TLVs go on unchanged.",
                    "HAProxy's send-proxy-v2 proxy-v2-options unique-id",
                )
            },
            ALLOW,
            DENY,
            DENY_ACTION,
            CLOSE_DENIED,
            LIMITS,
            SOURCE,
            SOURCE_PORTS,
            Key {
                with: Some("fwmark = 7"),
                ..key(
                    "listen",
                    "array of strings \"tcp ADDR:PORT\" or \"udp ADDR:PORT\"",
                    "none",
                    "[\"tcp 127.0.0.1:443\", \"udp 127.0.0.1:443\"]",
                    "Where an fwmark service (or a port-0 service, on other ports of its address) listens in userspace.",
                    "uvsadm --add-listener",
                )
            },
            key(
                "name",
                "string",
                "none",
                "\"web\"",
                "A name, shown by uvs status.",
                "",
            ),
            key(
                "comment",
                "string",
                "none",
                "\"the shop's front end\"",
                "A comment, shown by uvs status.",
                "",
            ),
            key(
                "check",
                "table, or array of up to 16 tables",
                "[global.check]",
                "{ type = \"connect\" }",
                "How the real servers are checked ([service.check]; several: [[service.check]], each run on its own, a server up only while none is down).",
                "ldirectord's checktype; keepalived's several checkers",
            ),
            key(
                "quiescent",
                "boolean",
                "[global] quiescent",
                "false",
                "Down means weight 0 (true) or removal (false).",
                "ldirectord's quiescent",
            ),
            key(
                "fallback",
                "table",
                "[global] fallback",
                "{ address = \"127.0.0.1:8000\" }",
                "The server in the service while no real server is up (see the fallback table below).",
                "ldirectord's fallback; keepalived's sorry_server",
            ),
            alpha("[global] alpha"),
            omega("[global] omega"),
            key(
                "quorum",
                "integer 1-4294967295",
                "in quorum while any server is up",
                "2",
                "The least sum of the weights of live servers that keeps the service in quorum; out of quorum the fallback stands in.",
                "keepalived's quorum",
            ),
            Key {
                with: Some("tcp = \"127.0.0.1:80\"\nquorum = 3"),
                ..key(
                    "hysteresis",
                    "integer, less than quorum",
                    "0",
                    "1",
                    "Quorum is lost below quorum - hysteresis and regained at quorum + hysteresis.",
                    "keepalived's hysteresis",
                )
            },
            key(
                "quorum_up",
                "string (command line), or table",
                "none",
                "\"/usr/local/bin/notify up\"",
                "Run once when the quorum is regained (see the command table below).",
                "keepalived's quorum_up",
            ),
            key(
                "quorum_down",
                "string (command line), or table",
                "none",
                "\"/usr/local/bin/notify down\"",
                "Run once when the quorum is lost.",
                "keepalived's quorum_down",
            ),
            key(
                "ha_suspend",
                "boolean",
                "false",
                "true",
                "Suspend the checks while the virtual address is not an address of this host. Not for fwmark services.",
                "keepalived's ha_suspend",
            ),
            key(
                "server",
                "array of tables",
                "none",
                "[{ address = \"127.0.0.1:9001\" }]",
                "The real servers ([[service.server]]).",
                "ipvsadm -a",
            ),
        ],
    },
    Section {
        header: "[[service.server]]",
        about: "A real server of the service above (ipvsadm -a). Its port is what ipvsadm 1.31 gives it: an address without a port takes the service's, and a gate or ipip server of an address service takes the service's port whatever it names (uvs check warns).",
        keys: &[
            Key {
                with: Some(""),
                ..key(
                    "address",
                    "string ADDR[:PORT]",
                    "required",
                    "\"127.0.0.1:9001\"",
                    "The real server; without a port, the service's (0 in an fwmark or port-0 service: the port the client reached).",
                    "ipvsadm -r",
                )
            },
            key(
                "weight",
                "integer 0-65535",
                "1",
                "3",
                "The weight; 0 quiesces it.",
                "ipvsadm -w",
            ),
            key(
                "drain",
                "boolean, or duration 1ms-1d",
                "false",
                "\"30s\"",
                "Drain the server: no new connections or UDP flows (persistent clients included), its established ones go on, and it is removed when the last one ends, or at this deadline with the rest closed (true: no deadline but the service's drain_on_remove). A server not in the table is not added. A changed deadline drains again with it, counted from the reload. Removing the key undoes the file's drain; a drain started by uvs drain is never undone by a reload.",
                "HAProxy's drain state",
            ),
            key(
                "forward",
                "string: masq (nat), gate (dr, route) or ipip (tun, tunnel)",
                "masq",
                "\"gate\"",
                "The forwarding method; userspace forwards by masquerading, kernel mode by any.",
                "ipvsadm -m, -g, -i",
            ),
            key(
                "upper_threshold",
                "integer 0-2147483647",
                "0 (none)",
                "100",
                "Past this many connections the server takes no new ones.",
                "ipvsadm -x",
            ),
            key(
                "max_connections",
                "integer 0-2147483647",
                "0 (none)",
                "100",
                "At most this many connections (TCP) or flows (UDP) open at once; TIME_WAIT does not count, and a slot frees the moment a connection ends. A server at its limit takes no new connection; see the service's queue.",
                "HAProxy's maxconn",
            ),
            Key {
                with: Some("address = \"127.0.0.1:9001\"\nupper_threshold = 100"),
                ..key(
                    "lower_threshold",
                    "integer 0-2147483647, below upper_threshold",
                    "0",
                    "50",
                    "Below this many a server over its upper threshold takes connections again.",
                    "ipvsadm -y",
                )
            },
            key(
                "slow_start",
                "duration 0s-1d",
                "the service's slow_start",
                "\"10s\"",
                "This server's own slow-start window; \"0s\" turns slow start off for it.",
                "HAProxy slowstart",
            ),
            Key {
                with: Some("address = \"127.0.0.1:9001\"\nforward = \"ipip\""),
                ..key(
                    "tunnel",
                    "string: ipip, gue or gre",
                    "ipip",
                    "\"gre\"",
                    "The tunnel of an ipip server (gue needs tunnel_port).",
                    "ipvsadm --tun-type",
                )
            },
            Key {
                with: Some("address = \"127.0.0.1:9001\"\nforward = \"ipip\"\ntunnel = \"gue\""),
                ..key(
                    "tunnel_port",
                    "integer 1-65535",
                    "none",
                    "6080",
                    "The destination port of a gue tunnel.",
                    "ipvsadm --tun-port",
                )
            },
            Key {
                with: Some("address = \"127.0.0.1:9001\"\nforward = \"ipip\""),
                ..key(
                    "tunnel_checksum",
                    "string: nocsum, csum or remcsum",
                    "nocsum",
                    "\"csum\"",
                    "The tunnel's checksum.",
                    "ipvsadm --tun-nocsum, --tun-csum, --tun-remcsum",
                )
            },
            key(
                "check",
                "table, or array of up to 16 tables",
                "the service's checks",
                "{ port = 8080 }",
                "This server's own checks ([service.server.check]); its n-th takes what it leaves unset from the service's n-th.",
                "",
            ),
            key(
                "quiescent",
                "boolean",
                "the service's quiescent",
                "false",
                "This server's own quiescent.",
                "keepalived's inhibit_on_failure",
            ),
            key(
                "notify_up",
                "string (command line), or table",
                "none",
                "\"/usr/local/bin/notify up\"",
                "Run once each time the server comes up.",
                "keepalived's notify_up",
            ),
            key(
                "notify_down",
                "string (command line), or table",
                "none",
                "\"/usr/local/bin/notify down\"",
                "Run once each time the server goes down.",
                "keepalived's notify_down",
            ),
        ],
    },
    Section {
        header: "[service.check]",
        about: "How each real server is checked. Written [service.check] (or [[service.check]], up to 16), [service.server.check] for one server, and [global.check] for the defaults: a check takes what it leaves unset from the server's service's, then from [global.check], then the built-in default.",
        keys: &[
            key(
                "type",
                "string: connect, negotiate, external, on, off or file",
                "on",
                "\"negotiate\"",
                "What the check does: a TCP connect (for UDP a datagram that must be answered), a protocol exchange (service), a command, always up, always down, or a number read from a file.",
                "ldirectord's checktype; keepalived's TCP_CHECK, HTTP_GET, MISC_CHECK, FILE_CHECK",
            ),
            key(
                "service",
                "string: http, https, simpletcp, smtp or dns",
                "simpletcp",
                "\"http\"",
                "What a negotiate check speaks.",
                "ldirectord's service",
            ),
            key(
                "port",
                "integer 1-65535",
                "the server's port",
                "8080",
                "The port checked.",
                "ldirectord's checkport; keepalived's connect_port",
            ),
            key(
                "interval",
                "duration 1s-1d",
                "10s",
                "\"5s\"",
                "Time between checks.",
                "ldirectord's checkinterval; keepalived's delay_loop",
            ),
            key(
                "timeout",
                "duration 1s-1h",
                "5s",
                "\"3s\"",
                "How long one check may take.",
                "ldirectord's checktimeout, negotiatetimeout; keepalived's connect_timeout",
            ),
            key(
                "failures",
                "integer 1-1000",
                "1",
                "3",
                "Failed checks in a row before the server goes down.",
                "ldirectord's failurecount; keepalived's retry",
            ),
            key(
                "rise",
                "integer 1-1000",
                "1",
                "2",
                "Good checks in a row before it comes back.",
                "",
            ),
            key(
                "request",
                "string",
                "none",
                "\"/health\"",
                "http/https: the path asked for; simpletcp: what is sent; dns: the name asked for; a UDP connect check: the datagram sent.",
                "ldirectord's request",
            ),
            key(
                "receive",
                "string (regular expression)",
                "none",
                "\"OK\"",
                "What the answer must match.",
                "ldirectord's receive",
            ),
            key(
                "virtualhost",
                "string",
                "the server's address",
                "\"www.example.com\"",
                "http/https: the Host header.",
                "ldirectord's virtualhost; keepalived's virtualhost",
            ),
            key(
                "method",
                "string: GET or HEAD",
                "GET",
                "\"HEAD\"",
                "http/https: the request method.",
                "ldirectord's httpmethod",
            ),
            key(
                "status",
                "integer, string range \"200-399\", or array of them",
                "200-299",
                "[200, \"301-302\"]",
                "http/https: the statuses taken as healthy.",
                "keepalived's status_code",
            ),
            key(
                "command",
                "string (command line), or array of words",
                "none",
                "\"/usr/local/bin/check\"",
                "external: the command run, with vip vport rip rport after it; exit 0 is up.",
                "ldirectord's checkcommand; keepalived's misc_path",
            ),
            key(
                "target_arguments",
                "boolean",
                "true",
                "false",
                "external: append vip vport rip rport to the command (false: run it as written).",
                "keepalived's MISC_CHECK passes none",
            ),
            key(
                "dynamic_weight",
                "boolean",
                "false",
                "true",
                "external: exit codes 2-255 are up with weight code - 2.",
                "keepalived's misc_dynamic",
            ),
            key(
                "verify_certificate",
                "boolean",
                "false",
                "true",
                "https: verify the server's certificate against the system's roots.",
                "",
            ),
            key(
                "warmup",
                "duration 0-1d",
                "within a tenth of the interval",
                "\"10s\"",
                "The first check comes after a random delay of up to this long.",
                "keepalived's warmup",
            ),
            key(
                "failures_at_start",
                "integer 1-1000",
                "failures",
                "1",
                "Failed checks in a row that take down a server that has not passed a check since the daemon started.",
                "keepalived's alpha rule",
            ),
            key(
                "retry_delay",
                "duration 0-1d",
                "the interval",
                "\"1s\"",
                "After a failed check of a server still up, the next check comes this soon, until failures take it down.",
                "keepalived's delay_before_retry",
            ),
            key(
                "user",
                "string (user name)",
                "the daemon's",
                "\"root\"",
                "external: the user the command runs as (the daemon must be root).",
                "keepalived's MISC_CHECK user",
            ),
            Key {
                with: Some("user = \"root\""),
                ..key(
                    "group",
                    "string (group name)",
                    "the user's",
                    "\"root\"",
                    "external: the group the command runs as; only with user.",
                    "keepalived's MISC_CHECK user USER GROUP",
                )
            },
            key(
                "digest",
                "string, 32 hex digits",
                "none",
                "\"9b3a0c85a887a256d6939da88aabd8cd\"",
                "http/https: the MD5 of the body, as genhash prints it.",
                "keepalived's digest",
            ),
            key(
                "url",
                "array of tables",
                "none",
                "[{ path = \"/a\" }, { path = \"/b\" }]",
                "http/https: several URLs, each of which must pass ([[service.check.url]]).",
                "keepalived's url blocks",
            ),
            key(
                "query_type",
                "string: A, NS, CNAME, SOA, MX, TXT, AAAA, RRSIG or DNSKEY",
                "A",
                "\"AAAA\"",
                "dns: the record type asked for.",
                "keepalived's DNS_CHECK type",
            ),
            key(
                "require_answer",
                "boolean",
                "true",
                "false",
                "dns: the answer must hold a record (false: any NOERROR answer will do).",
                "ldirectord's dns check; keepalived's DNS_CHECK",
            ),
            Key {
                with: Some("type = \"negotiate\"\nservice = \"dns\"\nrequest = \"example.com\""),
                ..key(
                    "transport",
                    "string: tcp or udp",
                    "the service's protocol",
                    "\"udp\"",
                    "dns: the transport the query goes over. dns checks only.",
                    "keepalived's DNS_CHECK speaks UDP",
                )
            },
            key(
                "path",
                "string (absolute path)",
                "none",
                "\"/run/uvs/weight\"",
                "file: the file whose number sets the server's health and weight.",
                "keepalived's track_file file",
            ),
            key(
                "weight",
                "integer -2147483647-2147483647",
                "1",
                "10",
                "file: what the file's number is multiplied by (0: any number but 0 is down).",
                "keepalived's track_file weight",
            ),
            key(
                "reverse",
                "boolean",
                "false",
                "true",
                "file: the product is negated.",
                "keepalived's weight W reverse",
            ),
            key(
                "helo",
                "string (host name)",
                "none",
                "\"lb.example.com\"",
                "smtp: send HELO with this name after the 220 and want 250.",
                "keepalived's helo_name",
            ),
            key(
                "source",
                "string (address)",
                "the system's choice",
                "\"127.0.0.1\"",
                "The address a check connects from.",
                "keepalived's bindto",
            ),
            key(
                "source_port",
                "integer 1-65535",
                "the system's choice",
                "40000",
                "The port a check connects from.",
                "keepalived's bind_port",
            ),
            key(
                "address",
                "string (address)",
                "the server's address",
                "\"127.0.0.9\"",
                "The address checked.",
                "keepalived's connect_ip",
            ),
            key(
                "hosts",
                "array of strings ADDR:PORT",
                "none",
                "[\"127.0.0.7:25\"]",
                "smtp: the addresses checked instead of the server's, each of which must pass.",
                "keepalived's SMTP_CHECK host blocks",
            ),
        ],
    },
    Section {
        header: "[[service.check.url]]",
        about: "One URL of an http or https check (keepalived's url block); what it leaves unset is the check's.",
        keys: &[
            Key {
                with: Some(""),
                ..key(
                    "path",
                    "string",
                    "required",
                    "\"/index.html\"",
                    "The path asked for.",
                    "keepalived's url path",
                )
            },
            key(
                "status",
                "integer, string range, or array of them",
                "the check's",
                "200",
                "The statuses taken as healthy.",
                "keepalived's status_code",
            ),
            key(
                "receive",
                "string (regular expression)",
                "the check's",
                "\"OK\"",
                "What the body must match.",
                "ldirectord's receive",
            ),
            key(
                "digest",
                "string, 32 hex digits",
                "the check's",
                "\"9b3a0c85a887a256d6939da88aabd8cd\"",
                "The MD5 of the body.",
                "keepalived's digest",
            ),
            key(
                "virtualhost",
                "string",
                "the check's",
                "\"www.example.com\"",
                "The Host header.",
                "keepalived's virtualhost",
            ),
        ],
    },
    Section {
        header: "fallback",
        about: "fallback = { ... } in [global] or a [[service]] (or [service.fallback]): the server that is in the service only while none of its real servers is up, read as a real server is.",
        keys: &[
            Key {
                with: Some(""),
                ..key(
                    "address",
                    "string ADDR[:PORT]",
                    "required",
                    "\"127.0.0.1:8000\"",
                    "The fallback server.",
                    "ldirectord's fallback",
                )
            },
            key("weight", "integer 0-65535", "1", "1", "Its weight.", ""),
            key(
                "forward",
                "string: masq, gate or ipip",
                "masq",
                "\"masq\"",
                "Its forwarding method.",
                "",
            ),
            key(
                "upper_threshold",
                "integer 0-2147483647",
                "0",
                "10",
                "Its upper threshold.",
                "",
            ),
            key(
                "max_connections",
                "integer 0-2147483647",
                "0",
                "10",
                "Its connection limit.",
                "",
            ),
            Key {
                with: Some("address = \"127.0.0.1:8000\"\nupper_threshold = 10"),
                ..key(
                    "lower_threshold",
                    "integer 0-2147483647, below upper_threshold",
                    "0",
                    "5",
                    "Its lower threshold.",
                    "",
                )
            },
            Key {
                with: Some("address = \"127.0.0.1:8000\"\nforward = \"ipip\""),
                ..key(
                    "tunnel",
                    "string: ipip, gue or gre",
                    "ipip",
                    "\"gre\"",
                    "Its tunnel, when ipip.",
                    "",
                )
            },
            Key {
                with: Some("address = \"127.0.0.1:8000\"\nforward = \"ipip\"\ntunnel = \"gue\""),
                ..key(
                    "tunnel_port",
                    "integer 1-65535",
                    "none",
                    "6080",
                    "Its gue port.",
                    "",
                )
            },
            Key {
                with: Some("address = \"127.0.0.1:8000\"\nforward = \"ipip\""),
                ..key(
                    "tunnel_checksum",
                    "string: nocsum, csum or remcsum",
                    "nocsum",
                    "\"remcsum\"",
                    "Its tunnel checksum.",
                    "",
                )
            },
            key(
                "slow_start",
                "duration 0s-1d",
                "the service's slow_start",
                "\"0s\"",
                "Its slow-start window, when it comes into a running service.",
                "",
            ),
            key(
                "quiescent",
                "boolean",
                "false",
                "true",
                "While it does not stand in, it stays in the service at weight 0 instead of leaving it.",
                "keepalived's sorry_server_inhibit",
            ),
        ],
    },
    Section {
        header: "command tables",
        about: "notify_up, notify_down, quorum_up and quorum_down are a command line, or a table to run it as another user. Commands run without a shell: the line is split into words as keepalived splits a notify script; each runs with no arguments, in its own process group, killed after 30 s.",
        keys: &[
            Key {
                with: Some(""),
                ..key(
                    "command",
                    "string (command line)",
                    "required",
                    "\"/usr/local/bin/notify\"",
                    "The command.",
                    "keepalived's notify_up CMD",
                )
            },
            key(
                "user",
                "string (user name)",
                "the daemon's",
                "\"root\"",
                "The user it runs as (the daemon must be root).",
                "keepalived's notify_up CMD USER",
            ),
            Key {
                with: Some("command = \"/usr/local/bin/notify\"\nuser = \"root\""),
                ..key(
                    "group",
                    "string (group name)",
                    "the user's",
                    "\"root\"",
                    "The group it runs as; only with user.",
                    "keepalived's notify_up CMD USER GROUP",
                )
            },
        ],
    },
];

/// The section written `header`.
pub fn section(header: &str) -> Option<&'static Section> {
    SECTIONS.iter().find(|s| s.header == header)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    /// Where a section's keys can be written: the document that comes before the
    /// table, the table's header, the table's usual companions, and the path the
    /// schema names its keys by. Every place the schema reads such a table is here.
    struct Place {
        section: &'static str,
        before: &'static str,
        header: &'static str,
        companions: &'static str,
        path: &'static str,
    }

    const SERVICE: &str = "[[service]]\ntcp = \"127.0.0.1:80\"\n";
    const SERVER: &str =
        "[[service]]\ntcp = \"127.0.0.1:80\"\n[[service.server]]\naddress = \"127.0.0.2\"\n";

    const PLACES: &[Place] = &[
        Place {
            section: "[global]",
            before: "",
            header: "[global]",
            companions: "",
            path: "global",
        },
        Place {
            section: "[timeouts]",
            before: "",
            header: "[timeouts]",
            companions: "",
            path: "timeouts",
        },
        Place {
            section: "[sync]",
            before: "",
            header: "[sync]",
            companions: "role = \"master\"\ninterface = \"lo\"",
            path: "sync",
        },
        Place {
            section: "[[service]]",
            before: "",
            header: "[[service]]",
            companions: "tcp = \"127.0.0.1:80\"",
            path: "service[0]",
        },
        Place {
            section: "[[service.server]]",
            before: SERVICE,
            header: "[[service.server]]",
            companions: "address = \"127.0.0.2\"",
            path: "service[0].server[0]",
        },
        Place {
            section: "[service.check]",
            before: "",
            header: "[global.check]",
            companions: "",
            path: "global.check",
        },
        Place {
            section: "[service.check]",
            before: SERVICE,
            header: "[service.check]",
            companions: "",
            path: "service[0].check",
        },
        Place {
            section: "[service.check]",
            before: SERVICE,
            header: "[[service.check]]",
            companions: "",
            path: "service[0].check[0]",
        },
        Place {
            section: "[service.check]",
            before: SERVER,
            header: "[service.server.check]",
            companions: "",
            path: "service[0].server[0].check",
        },
        Place {
            section: "[[service.check.url]]",
            before: "[[service]]\ntcp = \"127.0.0.1:80\"\n[service.check]\ntype = \"negotiate\"\nservice = \"http\"\n",
            header: "[[service.check.url]]",
            companions: "path = \"/\"",
            path: "service[0].check.url[0]",
        },
        Place {
            section: "fallback",
            before: "",
            header: "[global.fallback]",
            companions: "address = \"127.0.0.1:8000\"",
            path: "global.fallback",
        },
        Place {
            section: "fallback",
            before: SERVICE,
            header: "[service.fallback]",
            companions: "address = \"127.0.0.1:8000\"",
            path: "service[0].fallback",
        },
        Place {
            section: "command tables",
            before: SERVICE,
            header: "[service.quorum_up]",
            companions: "command = \"/bin/true\"",
            path: "service[0].quorum_up",
        },
        Place {
            section: "command tables",
            before: SERVICE,
            header: "[service.quorum_down]",
            companions: "command = \"/bin/true\"",
            path: "service[0].quorum_down",
        },
        Place {
            section: "command tables",
            before: SERVER,
            header: "[service.server.notify_up]",
            companions: "command = \"/bin/true\"",
            path: "service[0].server[0].notify_up",
        },
        Place {
            section: "command tables",
            before: SERVER,
            header: "[service.server.notify_down]",
            companions: "command = \"/bin/true\"",
            path: "service[0].server[0].notify_down",
        },
    ];

    fn problems(text: &str) -> Vec<crate::config::Problem> {
        match crate::config::schema::parse(text, Path::new("probe.toml")) {
            Ok(_) => Vec::new(),
            Err(p) => p.list,
        }
    }

    /// The keys of `companions` (`a = 1\nb = 2`).
    fn names(companions: &str) -> Vec<&str> {
        companions
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
            .collect()
    }

    /// Whether the schema takes `key` in the table at `place`: it reports no "unknown
    /// key" there (a wrong value is a problem of another kind).
    fn takes(place: &Place, key: &str) -> bool {
        let mut body = place.companions.to_string();
        if !names(place.companions).contains(&key) {
            body.push_str(&format!("\n{key} = true"));
        }
        let text = format!("{}{}\n{body}\n", place.before, place.header);
        let unknown = format!("{}.{key}", place.path);
        !problems(&text)
            .iter()
            .any(|p| p.key == unknown && p.message == "unknown key")
    }

    /// Every string literal of the schema's source that could be a key: the schema
    /// asks its tables for keys by such literals (`t.get("weight")`).
    fn candidates() -> BTreeSet<String> {
        let source = include_str!("schema.rs");
        let mut found = BTreeSet::new();
        for (i, part) in source.split('"').enumerate() {
            if i % 2 == 1
                && !part.is_empty()
                && part.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            {
                found.insert(part.to_string());
            }
        }
        found
    }

    #[test]
    fn every_place_of_every_section_is_probed() {
        for s in SECTIONS {
            assert!(
                PLACES.iter().any(|p| p.section == s.header),
                "{} is written nowhere the tests probe",
                s.header
            );
        }
        // And the probe finds unknown keys at all.
        for place in PLACES {
            assert!(!takes(place, "no_such_key"), "{}", place.path);
            assert!(
                problems(&format!(
                    "{}{}\n{}\n",
                    place.before, place.header, place.companions
                ))
                .is_empty(),
                "{}: the probe's own document has problems",
                place.path
            );
        }
    }

    /// The schema takes exactly the keys the reference lists, in every table.
    #[test]
    fn the_reference_lists_every_key_the_schema_takes_and_no_other() {
        let candidates = candidates();
        for place in PLACES {
            let section = section(place.section).expect("a section of the reference");
            let listed: BTreeSet<&str> = section.keys.iter().map(|k| k.name).collect();
            for key in &listed {
                assert!(
                    takes(place, key),
                    "the reference lists {}.{key}, which the schema refuses",
                    place.path
                );
            }
            for key in &candidates {
                if takes(place, key) {
                    assert!(
                        listed.contains(key.as_str()),
                        "the schema takes {}.{key}, which the reference ({}) lacks",
                        place.path,
                        section.header
                    );
                }
            }
        }
    }

    /// Each key's example loads, at every place its section is written.
    #[test]
    fn every_example_loads() {
        for place in PLACES {
            let section = section(place.section).expect("a section");
            for k in section.keys {
                let companions = k.with.unwrap_or(place.companions);
                let text = format!(
                    "{}{}\n{companions}\n{} = {}\n",
                    place.before, place.header, k.name, k.example
                );
                let found = problems(&text);
                assert!(
                    found.is_empty(),
                    "{}.{} = {}: {found:?}\n{text}",
                    place.path,
                    k.name,
                    k.example
                );
            }
        }
    }

    /// A key the reference calls required is: its table without it is refused.
    #[test]
    fn a_required_key_is_refused_when_absent() {
        let mut seen = 0;
        for place in PLACES {
            let section = section(place.section).expect("a section");
            for k in section.keys.iter().filter(|k| k.default == "required") {
                let companions: Vec<&str> = place
                    .companions
                    .lines()
                    .filter(|l| names(l) != [k.name])
                    .collect();
                let text = format!(
                    "{}{}\n{}\n",
                    place.before,
                    place.header,
                    companions.join("\n")
                );
                assert!(!problems(&text).is_empty(), "{}: {text}", k.name);
                seen += 1;
            }
        }
        assert!(seen >= 4);
    }

    #[test]
    fn every_key_says_what_it_is() {
        for s in SECTIONS {
            let mut seen = BTreeSet::new();
            for k in s.keys {
                assert!(seen.insert(k.name), "{} twice in {}", k.name, s.header);
                assert!(!k.kind.is_empty() && !k.default.is_empty() && !k.meaning.is_empty());
            }
        }
    }
}
