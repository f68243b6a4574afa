//! The page on small fixed tables: a hostile check error shown as text, a down server's
//! error beside it, the numbers of each row, a quiesced server's two weights, a refused
//! reload, and the bound on a big table.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;

use super::*;
use crate::exporter::{BackendHealth, ConfigReloads, State};
use crate::table::{
    Command, Protocol, ServerConfig, ServerKey, ServiceConfig, ServiceKey, UnicastOnly,
};

const TCP: ServiceKey = ServiceKey::Inet {
    protocol: Protocol::Tcp,
    addr: IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
    port: 80,
};

const HOSTILE: &str = "SMTP banner `554 <script>alert(1)</script><img src=x onerror=alert(2)>'";

fn key(text: &str) -> ServerKey {
    let a: SocketAddr = text.parse().unwrap();
    ServerKey {
        addr: a.ip(),
        port: a.port(),
    }
}

fn server(addr: &str, weight: i32) -> ServerConfig {
    ServerConfig::masq(addr.parse().unwrap(), weight)
}

fn apply(t: &mut Table, commands: &[Command]) {
    for c in commands {
        t.apply(c, &UnicastOnly).unwrap().carry_out();
    }
}

fn health(server: &str, up: bool, error: Option<&str>) -> BackendHealth {
    BackendHealth {
        service: TCP,
        server: key(server),
        up,
        failures: if up { 0 } else { 3 },
        last_duration_ms: 4,
        pending: false,
        suspended: false,
        last_check: Some(1_795_827_723),
        last_error: error.map(str::to_string),
    }
}

/// TCP 127.0.0.1:80 with A (up, traffic), B (down, a hostile error) and C (quiesced by
/// hand from weight 3); D checked, down and out of the table.
fn fixture() -> (Table, State) {
    let mut t = Table::new();
    apply(
        &mut t,
        &[
            Command::AddService(ServiceConfig::new(TCP, "wrr")),
            Command::AddServer {
                service: TCP,
                server: server("127.0.0.2:8080", 2),
            },
            Command::AddServer {
                service: TCP,
                server: server("127.0.0.3:8080", 1),
            },
            Command::AddServer {
                service: TCP,
                server: server("127.0.0.4:8080", 3),
            },
            Command::EditServer {
                service: TCP,
                server: server("127.0.0.4:8080", 0),
            },
        ],
    );
    let svc = t.service(&TCP).unwrap();
    let a = svc
        .servers
        .iter()
        .find(|r| r.key() == key("127.0.0.2:8080"))
        .unwrap();
    for _ in 0..7 {
        a.state.stats.add_conn();
        svc.state.stats.add_conn();
    }
    a.state.stats.add_in(10, 1500);
    a.state.stats.add_out(10, 250_000);
    a.state.active_conns.store(3, Relaxed);
    a.state.inactive_conns.store(2, Relaxed);
    a.state.connect_failures.refused.store(2, Relaxed);
    a.state.connect_failures.timeout.store(1, Relaxed);
    // Twice, so the estimator has a rate to show.
    a.state.stats.estimate();
    a.state.stats.add_conn();
    a.state.stats.estimate();
    let state = State {
        health: vec![
            health("127.0.0.2:8080", true, None),
            health("127.0.0.3:8080", false, Some(HOSTILE)),
            health("127.0.0.9:8080", false, Some("connection refused")),
        ],
        config: Some(ConfigReloads {
            applied_at: 1_795_827_000,
            reloads: 2,
            refused: 1,
            last_applied: false,
            path: "/etc/uvs/<b>uvs.toml".into(),
            last_error: Some("line 3: unknown key `<iframe>`".into()),
            groups: Vec::new(),
        }),
        ..State::default()
    };
    (t, state)
}

fn page(t: &Table, state: &State) -> String {
    let body = render_at(state, t, 1_795_827_000, 1_795_827_723);
    String::from_utf8(body.to_vec()).expect("UTF-8")
}

/// The row of the server at `addr` (its `<tr>` up to `</tr>`).
fn row<'p>(page: &'p str, addr: &str) -> &'p str {
    let at = page
        .find(&format!("data-server=\"{addr}\""))
        .unwrap_or_else(|| panic!("no row for {addr} in\n{page}"));
    let end = page[at..].find("</tr>").unwrap();
    &page[at..at + end]
}

/// The text of the cell of class `class` (the first whose class list starts with it).
fn cell<'p>(row: &'p str, class: &str) -> &'p str {
    let at = row
        .find(&format!("<td class=\"{class}"))
        .unwrap_or_else(|| panic!("no {class} cell in {row}"));
    let open = at + row[at..].find('>').unwrap() + 1;
    let close = open + row[open..].find("</td>").unwrap();
    &row[open..close]
}

#[test]
fn a_hostile_check_error_is_shown_as_text_under_its_down_server() {
    let (t, state) = fixture();
    let page = page(&t, &state);
    assert!(!page.contains("<script"), "{page}");
    assert!(!page.contains("<img"), "{page}");
    assert!(!page.contains("<iframe"), "{page}");
    assert!(!page.contains("<b>uvs.toml"), "{page}");
    let b = row(&page, "127.0.0.3:8080");
    assert_eq!(cell(b, "h down"), "DOWN");
    let after_b = &page[page.find("data-server=\"127.0.0.3:8080\"").unwrap()..];
    let why = &after_b[after_b.find("<tr class=\"why\">").unwrap()..];
    let why = &why[..why.find("</tr>").unwrap()];
    assert!(
        why.contains(
            "last check at 2026-11-28 01:02:03 UTC failed (3 in a row): <span class=\"err\">SMTP banner \
             `554 &lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;&#39;"
        ),
        "{why}"
    );
    // The server the checks took out of the table is still there, down, with its error.
    let d = row(&page, "127.0.0.9:8080");
    assert_eq!(cell(d, "fwd"), "out of table");
    assert_eq!(cell(d, "h down"), "DOWN");
    assert!(page.contains("failed (3 in a row): <span class=\"err\">connection refused</span>"));
}

#[test]
fn each_row_has_its_numbers() {
    let (t, state) = fixture();
    let page = page(&t, &state);
    let a = row(&page, "127.0.0.2:8080");
    assert_eq!(cell(a, "h up"), "UP");
    assert_eq!(cell(a, "wt"), "2");
    assert_eq!(cell(a, "act"), "3");
    assert_eq!(cell(a, "w inact"), "2");
    assert_eq!(cell(a, "w conns"), "8");
    assert_eq!(cell(a, "fail"), "3");
    assert!(a.contains("title=\"failed connects: refused 2, timed out 1, other 0, loop 0\""));
    assert_eq!(cell(a, "w outbytes"), "250 kB");
    assert_eq!(cell(a, "w inbytes"), "1.50 kB");
    // The rates are the estimator's, as uvsadm -L --rate shows them.
    let rates = t
        .service(&TCP)
        .unwrap()
        .servers
        .iter()
        .find(|r| r.key() == key("127.0.0.2:8080"))
        .unwrap()
        .state
        .stats
        .view()
        .rates;
    assert!(rates.cps > 0 && rates.outbps > 0, "{rates:?}");
    assert_eq!(cell(a, "cps"), rates.cps.to_string());
    assert_eq!(cell(a, "w outbps"), units::bytes(rates.outbps, "/s"));
    assert_eq!(cell(a, "w inbps"), units::bytes(rates.inbps, "/s"));
    // The service: its sums, and 1 of its 4 servers serving (C is quiesced, B and D down).
    let at = page.find("data-service=\"TCP 127.0.0.1:80\"").unwrap();
    let svc = &page[at..at + page[at..].find("</tr>").unwrap()];
    assert_eq!(cell(svc, "h partial"), "1/4 serving");
    assert_eq!(cell(svc, "act"), "3");
    assert_eq!(cell(svc, "w conns"), "7");
    assert_eq!(cell(svc, "fail"), "3");
    // The header counts every server.
    assert!(
        page.contains("<b>1</b> service</span><span><b>4</b> real servers:"),
        "{page}"
    );
    assert!(page.contains("<span class=\"pill up\">1 up</span>"));
    assert!(page.contains("<span class=\"pill down\">2 down</span>"));
    assert!(page.contains("<span class=\"pill quiescent\">1 quiescent</span>"));
    assert!(page.contains("up 12m 3s · 2026-11-28 01:02:03 UTC"));
}

#[test]
fn a_quiesced_server_shows_both_weights() {
    let (t, state) = fixture();
    let page = page(&t, &state);
    let c = row(&page, "127.0.0.4:8080");
    assert_eq!(cell(c, "h quiescent"), "quiescent");
    assert_eq!(cell(c, "wt"), "0 / 3");
}

#[test]
fn a_refused_reload_is_shown_with_its_error() {
    let (t, state) = fixture();
    let page = page(&t, &state);
    let at = page
        .find("<div class=\"cfg bad\">")
        .expect("the reload in red");
    let cfg = &page[at..at + page[at..].find("</div>").unwrap()];
    assert!(cfg.contains("/etc/uvs/&lt;b&gt;uvs.toml"), "{cfg}");
    assert!(cfg.contains("the last reload was refused"), "{cfg}");
    assert!(cfg.contains("unknown key `&lt;iframe&gt;`"), "{cfg}");
}

#[test]
fn the_page_is_one_self_contained_document_that_refreshes() {
    // Without the fixture's hostile texts, which hold `src=` (as text).
    let (t, _) = fixture();
    let page = page(&t, &State::default());
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(
        page.contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
    );
    assert!(page.contains(&format!(
        "<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">"
    )));
    assert!(page.contains("<a href=\"/metrics\">"));
    for outside in ["src=", "<link", "<script", "url(", "@import"] {
        assert!(!page.contains(outside), "{outside} in the page");
    }
    assert!(page.trim_end().ends_with("</html>"));
}

#[test]
fn ten_thousand_services_make_a_bounded_page_that_says_so() {
    let mut t = Table::new();
    let mut commands = Vec::new();
    for mark in 1..=10_000u32 {
        let key = ServiceKey::Fwmark {
            mark,
            family: crate::table::Family::Inet,
        };
        commands.push(Command::AddService(ServiceConfig::new(key, "rr")));
        for j in 0..4u32 {
            let n = 4 * mark + j;
            let addr = format!("10.{}.{}.{}:80", n >> 16 & 255, n >> 8 & 255, n & 255);
            commands.push(Command::AddServer {
                service: key,
                server: server(&addr, 1),
            });
        }
    }
    apply(&mut t, &commands);
    let page = page(&t, &State::default());
    assert!(page.len() < 2 << 20, "{} bytes", page.len());
    assert!(page.contains("<b>10000</b> services</span><span><b>40000</b> real servers:"));
    assert!(page.contains("<span class=\"pill unchecked\">40000 serving, no check</span>"));
    // Each service counts its unchecked servers as serving too.
    assert_eq!(page.matches(">4/4 serving</td>").count(), 400);
    assert_eq!(page.matches("<tr class=\"svc\"").count(), 400);
    assert_eq!(page.matches("<tr class=\"rs\"").count(), 1600);
    assert!(
        page.contains("Shown: the first 400 of 10000 services"),
        "{}",
        &page[page.len() - 2000..]
    );
    assert!(page.trim_end().ends_with("</html>"));
}

#[test]
fn a_service_bigger_than_the_page_is_cut_with_a_note() {
    let mut t = Table::new();
    let mut commands = vec![Command::AddService(ServiceConfig::new(TCP, "rr"))];
    for n in 0..(MAX_ROWS as u32 + 10) {
        let addr = format!("10.0.{}.{}:80", n >> 8 & 255, n & 255);
        commands.push(Command::AddServer {
            service: TCP,
            server: server(&addr, 1),
        });
    }
    apply(&mut t, &commands);
    let page = page(&t, &State::default());
    assert_eq!(page.matches("<tr class=\"rs\"").count(), MAX_ROWS - 1);
    assert!(
        page.contains("11 more real servers of TCP 127.0.0.1:80 not shown"),
        "{}",
        &page[page.len() - 2000..]
    );
    assert!(
        !page.contains("Shown: the first"),
        "the one service is shown"
    );
}

#[test]
fn a_group_members_servers_show_the_health_checked_for_its_first_member() {
    let member = ServiceKey::Inet {
        protocol: Protocol::Tcp,
        addr: IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 5)),
        port: 8443,
    };
    let (mut t, mut state) = fixture();
    apply(
        &mut t,
        &[
            Command::AddService(ServiceConfig::new(member, "wrr")),
            // A's and B's addresses at the member's own port.
            Command::AddServer {
                service: member,
                server: server("127.0.0.2:8443", 2),
            },
            Command::AddServer {
                service: member,
                server: server("127.0.0.3:8443", 1),
            },
        ],
    );
    if let Some(c) = &mut state.config {
        c.groups = vec![vec![TCP, member]];
    }
    let page = page(&t, &state);
    assert_eq!(cell(row(&page, "127.0.0.2:8443"), "h up"), "UP");
    assert_eq!(cell(row(&page, "127.0.0.3:8443"), "h down"), "DOWN");
    // D, out of the first member's table, is out of the member's too.
    assert_eq!(page.matches("data-server=\"127.0.0.9:8080\"").count(), 2);
    assert!(
        page.contains("<b>2</b> services</span><span><b>7</b> real servers:"),
        "{page}"
    );
}

#[test]
fn services_are_in_ipvsadm_listing_order() {
    let inet = |protocol, addr: &str| {
        let a: SocketAddr = addr.parse().unwrap();
        ServiceKey::Inet {
            protocol,
            addr: a.ip(),
            port: a.port(),
        }
    };
    let fwm = ServiceKey::Fwmark {
        mark: 5,
        family: crate::table::Family::Inet,
    };
    // Added in an order unlike the listing's, UDP first as the demo adds them.
    let keys = [
        fwm,
        inet(Protocol::Tcp, "[::1]:80"),
        inet(Protocol::Udp, "127.0.0.1:8080"),
        inet(Protocol::Tcp, "127.0.0.2:80"),
        inet(Protocol::Tcp, "127.0.0.1:8080"),
    ];
    let mut t = Table::new();
    let adds: Vec<Command> = keys
        .iter()
        .map(|k| Command::AddService(ServiceConfig::new(*k, "rr")))
        .collect();
    apply(&mut t, &adds);
    let page = page(&t, &State::default());
    let listed: Vec<&str> = page
        .split("data-service=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    // uvsadm -L -n: fwmark 0 (address services) first, then IPv4 before IPv6, TCP
    // before UDP, then address and port.
    assert_eq!(
        listed,
        [
            "TCP 127.0.0.1:8080",
            "TCP 127.0.0.2:80",
            "UDP 127.0.0.1:8080",
            "TCP [::1]:80",
            "FWM 5",
        ]
    );
}

/// Outside text sits in its own bidi context: what a right-to-left (or overriding)
/// error says cannot reorder the page's own text around it.
#[test]
fn outside_text_is_isolated_for_bidi() {
    let (t, state) = fixture();
    let page = page(&t, &state);
    assert!(
        page.contains(".err,.cfg b,.cfg pre,.sub{unicode-bidi:isolate}"),
        "{page}"
    );
    assert!(page.contains("<span class=\"err\">"), "{page}");
}

#[test]
fn a_draining_server_shows_its_asked_weight_and_the_drain_under_its_health() {
    let (mut t, state) = fixture();
    apply(
        &mut t,
        &[Command::Drain {
            service: TCP,
            server: key("127.0.0.2:8080"),
            deadline_ms: None,
            keep_persistent: false,
        }],
    );
    let page = page(&t, &state);
    let a = row(&page, "127.0.0.2:8080");
    assert_eq!(cell(a, "wt"), "0 / 2", "in force / asked");
    assert_eq!(
        cell(a, "h quiescent"),
        "quiescent<br><span class=\"pool\">draining (3 open)</span>"
    );
    // Nothing is said of a server no pool control touches.
    assert!(!row(&page, "127.0.0.4:8080").contains("class=\"pool\""));
}
