//! The Grafana dashboard `conf/grafana/uvs.json`, checked two ways: its shape (rows,
//! panels, targets, the datasource and template variables Grafana needs to import it),
//! and, against a real Prometheus (Debian's package `prometheus`, on loopback, in a
//! temporary data directory) scraping a `uvs run` under TCP and UDP traffic every
//! second, every panel target's query and every template variable's `label_values`:
//! each must parse and return series. A panel added later is covered without a word
//! here; a template variable added later needs a value in `live::values`.

mod common;

use std::collections::HashSet;

use serde_json::Value;

const DASHBOARD: &str = include_str!("../conf/grafana/uvs.json");

/// Grafana's own variables the panels may use, as Grafana defines them.
const GRAFANA_VARIABLES: [&str; 3] = ["__rate_interval", "__interval", "__range"];

/// One query of a panel: the panel's title (after its row's), the target's refId, its
/// PromQL with Grafana's variables still in it.
struct Target {
    panel: String,
    ref_id: String,
    expr: String,
    /// Its legendFormat ("" when it has none).
    legend: String,
}

fn dashboard() -> Value {
    serde_json::from_str(DASHBOARD).expect("conf/grafana/uvs.json is JSON")
}

/// The non-row panels, in order, each with the title of the row it sits under (rows'
/// own `panels` hold theirs when collapsed; otherwise they follow the row).
fn panels(dashboard: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    let mut row = String::from("(no row)");
    for p in dashboard["panels"].as_array().expect("a panels array") {
        if p["type"] == "row" {
            row = p["title"].as_str().unwrap_or_default().to_string();
            for inner in p["panels"].as_array().into_iter().flatten() {
                out.push((row.clone(), inner));
            }
        } else {
            out.push((row.clone(), p));
        }
    }
    out
}

fn targets(dashboard: &Value) -> Vec<Target> {
    let mut out = Vec::new();
    for (row, p) in panels(dashboard) {
        let title = p["title"].as_str().unwrap_or("(untitled)");
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(Target {
                panel: format!("{row} / {title}"),
                ref_id: t["refId"].as_str().unwrap_or("?").to_string(),
                expr: t["expr"].as_str().unwrap_or_default().to_string(),
                legend: t["legendFormat"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    out
}

/// The template variables' names.
fn variables(dashboard: &Value) -> Vec<&str> {
    dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect()
}

/// Whether `$name` is a capture group of a regex replacement (label_replace's `$1`),
/// which Grafana leaves as it is (it has no variable of that name) for Prometheus.
fn is_capture(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_digit())
}

/// The names of the variables `text` uses: `$name` and `${name}` (and `${name:format}`),
/// not capture groups (`$1`).
fn used_variables(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        let name: String = match rest.strip_prefix('{') {
            Some(braced) => braced
                .split(['}', ':'])
                .next()
                .unwrap_or_default()
                .to_string(),
            None => rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect(),
        };
        if !is_capture(&name) {
            out.push(name);
        }
    }
    out
}

/// The metric names in a PromQL expression: its words outside quotes that begin
/// `uvs_` or `node_ipvs_`.
fn metric_names(expr: &str) -> Vec<&str> {
    // Even pieces are outside quotes (the dashboard's strings hold no escaped quote).
    expr.split('"')
        .step_by(2)
        .flat_map(|outside| outside.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .filter(|w| w.starts_with("uvs_") || w.starts_with("node_ipvs_"))
        .collect()
}

/// Whether `name` is a family uvs exports (`src/exporter/names.rs`), or a histogram's
/// `_bucket`, `_sum` or `_count` series.
fn is_family(name: &str) -> bool {
    let all = uvs::exporter::names::ALL;
    all.contains(&name)
        || ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .any(|base| all.contains(&base))
}

/// `text` with each variable replaced by its value from `values` (`$name`, `${name}`);
/// an unknown variable is an error naming it.
fn substitute(text: &str, values: &[(&str, String)]) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        let (name, len) = match rest.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}').ok_or("an unclosed ${")?;
                (&braced[..end], end + 2)
            }
            None => {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                (&rest[..end], end)
            }
        };
        if is_capture(name) {
            out.push('$');
            continue;
        }
        let value = values
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| format!("no value for variable ${name}"))?;
        out.push_str(&value.1);
        rest = &rest[len..];
    }
    out.push_str(rest);
    Ok(out)
}

#[test]
fn the_dashboard_is_one_grafana_can_import() {
    let d = dashboard();
    let schema = d["schemaVersion"].as_u64().expect("schemaVersion");
    assert!(schema >= 36, "schemaVersion {schema}: Grafana 9 and later");
    assert!(d["uid"].is_string() && d["title"].is_string());
    // Imported, it takes the id of the instance it lands in.
    assert!(d["id"].is_null(), "id must be null: {}", d["id"]);
    let list = d["templating"]["list"].as_array().unwrap();
    let datasource = list
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a datasource template variable");
    assert_eq!(datasource["query"], "prometheus");
    let uid = format!("${{{}}}", datasource["name"].as_str().unwrap());

    let defined: HashSet<&str> = variables(&d).into_iter().chain(GRAFANA_VARIABLES).collect();
    let mut ids = HashSet::new();
    for row in d["panels"].as_array().unwrap() {
        if row["type"] == "row" {
            assert!(ids.insert(row["id"].as_u64().expect("a row id")), "{row}");
        }
    }
    let all = panels(&d);
    assert!(!all.is_empty());
    for (row, p) in &all {
        let title = p["title"].as_str().expect("a title");
        let what = format!("panel {row} / {title}");
        assert!(
            ids.insert(p["id"].as_u64().expect("a panel id")),
            "{what}: id"
        );
        for key in ["h", "w", "x", "y"] {
            assert!(p["gridPos"][key].is_u64(), "{what}: gridPos.{key}");
        }
        assert!(
            p["gridPos"]["x"].as_u64().unwrap() + p["gridPos"]["w"].as_u64().unwrap() <= 24,
            "{what}: wider than the grid"
        );
        let description = p["description"].as_str().unwrap_or_default();
        assert!(
            !description.is_empty(),
            "{what}: a description (the panel's ⓘ) says which series it shows"
        );
        for name in metric_names(description) {
            assert!(is_family(name), "{what}: its description names {name}");
        }
        assert_eq!(p["datasource"]["uid"], uid.as_str(), "{what}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{what}: no targets");
        let mut refs = HashSet::new();
        for t in targets {
            assert!(
                refs.insert(t["refId"].as_str().unwrap()),
                "{what}: refId twice"
            );
            assert_eq!(t["datasource"]["uid"], uid.as_str(), "{what}");
            let expr = t["expr"].as_str().unwrap_or_default();
            assert!(!expr.is_empty(), "{what}: an empty expr");
            for name in used_variables(expr) {
                assert!(
                    defined.contains(name.as_str()),
                    "{what}: ${name} is no template variable"
                );
            }
        }
    }
    // The query variables: what Grafana runs (query) is what it shows (definition), a
    // label_values the Prometheus test can run.
    for v in list.iter().filter(|v| v["type"] == "query") {
        let query = v["query"]
            .as_str()
            .expect("a query variable's query, as text");
        assert_eq!(v["definition"], query, "${}", v["name"]);
        assert!(
            query.starts_with("label_values("),
            "${}: {query}",
            v["name"]
        );
        for name in used_variables(query) {
            assert!(defined.contains(name.as_str()), "${}: ${name}", v["name"]);
        }
    }
    // Every series a query names is one uvs exports (node_exporter's names included).
    for t in targets(&d) {
        for name in metric_names(&t.expr) {
            assert!(
                is_family(name),
                "panel {} ({}): {name} is no series of uvs",
                t.panel,
                t.ref_id
            );
        }
    }
    // Legends name services and real servers by the labels the queries build
    // (`service`: "TCP 127.0.0.1:80", "FWM 0x1A"), not by node_exporter's raw ones,
    // which read "FWM :0 0000001A" for an fwmark service.
    for (row, p) in &all {
        for t in p["targets"].as_array().unwrap() {
            let legend = t["legendFormat"].as_str().unwrap_or_default();
            assert!(
                !legend.contains("{{local_mark}}") && !legend.contains("{{local_port}}"),
                "panel {row} / {}: legend {legend}",
                p["title"]
            );
        }
    }
    // What the Prometheus test walks: every target of every panel.
    let walked = targets(&d);
    assert!(walked.len() >= all.len());
    for t in walked {
        assert!(
            !t.expr.is_empty(),
            "panel {} ({}): no expr",
            t.panel,
            t.ref_id
        );
    }
}

#[test]
fn substitution_replaces_every_form_and_names_the_unknown() {
    let values = [("a", "1".to_string()), ("__rate_interval", "5s".into())];
    assert_eq!(
        substitute("x{i=~\"$a\"}[$__rate_interval] ${a}", &values).unwrap(),
        "x{i=~\"1\"}[5s] 1"
    );
    assert_eq!(
        substitute("y{$b}", &values).unwrap_err(),
        "no value for variable $b"
    );
    assert_eq!(used_variables("$a ${b} ${c:regex} $"), ["a", "b", "c", ""]);
    // label_replace's capture groups are Prometheus's, left as they are.
    assert_eq!(used_variables("\"$1 [$2]:${3}\" $a"), ["a"]);
    assert_eq!(
        substitute("\"$1 [$2]:${3}\" $a", &values).unwrap(),
        "\"$1 [$2]:${3}\" 1"
    );
    assert_eq!(
        metric_names("sum by (le) (rate(uvs_x_bucket{a=\"uvs_no\"}[1m])) / node_ipvs_y"),
        ["uvs_x_bucket", "node_ipvs_y"]
    );
}

#[test]
#[cfg_attr(
    not(uvs_has_prometheus),
    ignore = "prometheus not found when uvs was built: apt-get install prometheus, then touch build.rs"
)]
fn every_panel_query_returns_series_from_prometheus() {
    #[cfg(uvs_has_prometheus)]
    live::every_panel_query_returns_series();
}

#[cfg(uvs_has_prometheus)]
mod live {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, UdpSocket};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use serde_json::Value;

    use super::common::{self, Backend, Behaviour, Daemon, Reply, UdpBackend};
    use super::{dashboard, substitute, targets};

    const PROMETHEUS: &str = env!("UVS_PROMETHEUS_PATH");

    /// The rate window the test gives `$__rate_interval`: ten scrapes a second apart, so a
    /// scrape lost on a busy machine still leaves two samples in every window.
    const RATE_INTERVAL: &str = "10s";

    /// A Prometheus on 127.0.0.1 scraping one target every second, from a temporary
    /// directory (configuration, data, log); killed when dropped, its log shown if the
    /// test is failing.
    struct Prometheus {
        child: Child,
        dir: tempfile::TempDir,
        at: SocketAddr,
    }

    impl Prometheus {
        /// Scrapes `target`'s `/metrics` as job `uvs`. The configuration has nothing but
        /// that target: no alerting, no remote write, no discovery, so Prometheus talks
        /// to loopback only (it has no update check or telemetry of its own).
        fn start(target: SocketAddr) -> Prometheus {
            let dir = tempfile::tempdir().expect("temp dir");
            let config = dir.path().join("prometheus.yml");
            std::fs::write(
                &config,
                format!(
                    "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  \
                     evaluation_interval: 1s\n\
                     scrape_configs:\n  - job_name: uvs\n    metrics_path: /metrics\n    \
                     static_configs:\n      - targets: ['{target}']\n"
                ),
            )
            .expect("write prometheus.yml");
            let at = SocketAddr::from(([127, 0, 0, 1], common::free_port()));
            let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
            let child = Command::new(PROMETHEUS)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={at}"))
                .arg("--storage.tsdb.retention.time=1h")
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start prometheus");
            let mut p = Prometheus { child, dir, at };
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if get(p.at, "/-/ready").is_some_and(|(status, _)| status.contains(" 200 ")) {
                    return p;
                }
                if let Ok(Some(status)) = p.child.try_wait() {
                    panic!("prometheus ended ({status}):\n{}", p.log());
                }
                assert!(Instant::now() < deadline, "prometheus not ready in 60 s");
                std::thread::sleep(Duration::from_millis(100));
            }
        }

        fn log(&self) -> String {
            common::log_tail(&self.dir.path().join("prometheus.log"))
        }

        /// An instant query now: its result vector, or Prometheus's error (a query that
        /// does not parse, a wrong type).
        fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
            let path = format!("/api/v1/query?query={}", percent_encode(expr));
            let (status, body) =
                get(self.at, &path).ok_or_else(|| "no answer from prometheus".to_string())?;
            let json: Value = serde_json::from_str(&body)
                .map_err(|e| format!("{status}: not JSON ({e}): {body}"))?;
            if json["status"] != "success" {
                return Err(format!("{status}: {} {}", json["errorType"], json["error"]));
            }
            match &json["data"]["result"] {
                Value::Array(series) => Ok(series.clone()),
                // A scalar (time() alone, a number): one value.
                other => Ok(vec![other.clone()]),
            }
        }

        /// Waits (bounded) until `instance` has been scraped `samples` times in the last
        /// `window`.
        fn wait_for_samples(&self, instance: &str, samples: u32, window: &str) {
            let expr =
                format!("count_over_time(uvs_build_info{{instance=\"{instance}\"}}[{window}])");
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                let have = self
                    .query(&expr)
                    .ok()
                    .and_then(|r| r.first()?["value"][1].as_str()?.parse::<f64>().ok())
                    .unwrap_or(0.0);
                if have >= f64::from(samples) {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "{have} scrapes of {instance} in {window} after 90 s; targets: {}",
                    get(self.at, "/api/v1/targets")
                        .map(|r| r.1)
                        .unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }

    impl Drop for Prometheus {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            if std::thread::panicking() {
                eprintln!("--- prometheus log ---\n{}--- end ---", self.log());
            }
        }
    }

    /// A GET over HTTP/1.0 (so the answer is never chunked) to `at`: (status line,
    /// body); None if there is no connection or no answer.
    fn get(at: SocketAddr, path: &str) -> Option<(String, String)> {
        let mut s = common::connect(at, None).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: {at}\r\n\r\n").ok()?;
        let mut response = Vec::new();
        s.read_to_end(&mut response).ok()?;
        let response = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = response.split_once("\r\n\r\n")?;
        Some((head.lines().next()?.to_string(), body.to_string()))
    }

    fn percent_encode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    /// What the test gives each template variable: the raw values it stands for (which
    /// its `label_values` must find), and its text in a query as Grafana writes it (a
    /// multi-value variable: its values regex-escaped and joined as `(a|b)`).
    fn values(
        instance: &str,
        vip: SocketAddr,
        other: SocketAddr,
    ) -> Vec<(&'static str, Vec<String>)> {
        vec![
            ("instance", vec![instance.to_string()]),
            ("vip", vec![vip.ip().to_string()]),
            (
                "port",
                vec![vip.port().to_string(), other.port().to_string()],
            ),
        ]
    }

    fn as_written(values: &[String], multi: bool) -> String {
        if !multi {
            return values[0].clone();
        }
        // Grafana's prometheusSpecialRegexEscape, inside a PromQL string.
        let escaped: Vec<String> = values.iter().map(|v| v.replace('.', "\\\\.")).collect();
        format!("({})", escaped.join("|"))
    }

    /// The traffic: TCP round trips through both services, UDP datagrams through the UDP
    /// one (a new flow every 20), until `stop` or 20 000 rounds.
    fn traffic(
        stop: Arc<AtomicBool>,
        tcp: [SocketAddr; 2],
        udp: SocketAddr,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let mut socket = None;
            for round in 0..20_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                for vip in tcp {
                    // Errors are part of the traffic here (the refusing server).
                    if let Ok(mut s) = common::connect(vip, None) {
                        let _ = s.write_all(b"ping");
                        let mut back = [0u8; 4];
                        let _ = s.read_exact(&mut back);
                    }
                }
                if round % 20 == 0 {
                    socket = UdpSocket::bind("127.0.0.1:0").ok();
                    if let Some(s) = &socket {
                        let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
                    }
                }
                if let Some(s) = &socket {
                    let _ = s.send_to(b"ping", udp);
                    let _ = s.recv(&mut [0u8; 16]);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    }

    pub fn every_panel_query_returns_series() {
        // Real servers: two echo servers and a refusing one behind a file-owned TCP
        // service with connect checks and a quorum (the refusing one goes down), the same
        // behind a uvsadm service without checks (connects fail there, and are retried),
        // an echo and a silent server behind a UDP service.
        let (a, b) = Backend::pair(Behaviour::Echo);
        let (_refusing, refused) = common::refusing_port();
        let udp_echo = UdpBackend::start("U", Reply::Echo);
        let silent = UdpSocket::bind("127.0.0.1:0").expect("a silent UDP server");
        let vip = common::vip();
        let other = common::vip();
        let dir = tempfile::tempdir().expect("temp dir");
        let config: PathBuf = dir.path().join("uvs.toml");
        let contents = format!(
            "[timeouts]\nudp = \"5s\"\n\n\
             [[service]]\ntcp = \"{vip}\"\nscheduler = \"rr\"\nquorum = 1\n\n\
             [service.check]\ntype = \"connect\"\ninterval = \"1s\"\n\n\
             [[service.server]]\naddress = \"{a}\"\n\n\
             [[service.server]]\naddress = \"{b}\"\n\n\
             [[service.server]]\naddress = \"{refused}\"\n\n\
             [[service]]\nudp = \"{vip}\"\nscheduler = \"rr\"\n\n\
             [[service.server]]\naddress = \"{udp}\"\n\n\
             [[service.server]]\naddress = \"{silent}\"\n",
            a = a.addr,
            b = b.addr,
            udp = udp_echo.addr,
            silent = silent.local_addr().unwrap(),
        );
        // --max-connections: its gauge is written only with it.
        let d = Daemon::start_with_file(&config, &contents, &["--max-connections", "10000"]);
        d.wait_listening(vip);
        d.wait_listening_on("udp", vip);
        d.balance_on("-t", other, &["-s", "rr"], &[(a.addr, &[]), (refused, &[])]);
        // An fwmark service (mark 26), whose legends must read as uvsadm's do.
        d.ok(&["-A", "-f", "26", "-s", "rr"]);
        d.ok(&["-a", "-f", "26", "-r", &a.addr.to_string(), "-m"]);
        // A connection held open: ActiveConn is not 0.
        let mut held = common::connect(vip, None).expect("connect to the VIP");
        held.write_all(b"held").unwrap();

        let stop = Arc::new(AtomicBool::new(false));
        let load = traffic(Arc::clone(&stop), [vip, other], vip);
        let metrics = d.metrics_address();
        let prometheus = Prometheus::start(metrics);
        let instance = metrics.to_string();
        prometheus.wait_for_samples(&instance, 12, "15s");

        let dash = dashboard();
        let raw = values(&instance, vip, other);
        let mut written: Vec<(&str, String)> = vec![
            ("__rate_interval", RATE_INTERVAL.to_string()),
            ("__interval", "1s".to_string()),
            ("__range", "1m".to_string()),
        ];
        let list = dash["templating"]["list"].as_array().unwrap();
        for v in list.iter().filter(|v| v["type"] == "query") {
            let name = v["name"].as_str().unwrap();
            let (_, vals) = raw
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("template variable ${name} has no value in this test"));
            written.push((name, as_written(vals, v["multi"] == true)));
        }

        let mut failures = Vec::new();
        // Every query template variable's label_values(SELECTOR, LABEL) finds the values
        // the test gives it.
        for v in list.iter().filter(|v| v["type"] == "query") {
            let name = v["name"].as_str().unwrap();
            let definition = v["query"].as_str().unwrap_or_default();
            let inner = definition
                .strip_prefix("label_values(")
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or_else(|| panic!("${name}: not label_values(...): {definition}"));
            let (selector, label) = inner
                .rsplit_once(',')
                .expect("label_values(SELECTOR, LABEL)");
            let label = label.trim();
            let expr = format!(
                "count by ({label}) ({})",
                substitute(selector, &written).unwrap()
            );
            let found: Vec<String> = match prometheus.query(&expr) {
                Ok(r) => r
                    .iter()
                    .filter_map(|s| s["metric"][label].as_str().map(String::from))
                    .collect(),
                Err(e) => {
                    failures.push(format!("variable ${name}: {expr}: {e}"));
                    continue;
                }
            };
            let (_, wanted) = raw.iter().find(|(n, _)| *n == name).unwrap();
            for w in wanted {
                if !found.contains(w) {
                    failures.push(format!("variable ${name}: {expr} gives {found:?}, not {w}"));
                }
            }
        }

        // Every panel target parses and returns series. A query that parses but finds
        // nothing yet (a rate window not yet filled) is asked again, for up to 20 s.
        let all = targets(&dash);
        let mut pending: Vec<(usize, String)> = Vec::new();
        for (i, t) in all.iter().enumerate() {
            match substitute(&t.expr, &written) {
                Ok(expr) => pending.push((i, expr)),
                Err(e) => failures.push(format!("panel {} ({}): {e}", t.panel, t.ref_id)),
            }
        }
        let services = [
            format!("TCP {vip}"),
            format!("UDP {vip}"),
            format!("TCP {other}"),
            "FWM 0x1A".to_string(),
        ];
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut empty = Vec::new();
            for (i, expr) in pending {
                let t = &all[i];
                match prometheus.query(&expr) {
                    Ok(series) if !series.is_empty() => {
                        // The legends' labels read as uvsadm -L names services and
                        // real servers (not node_exporter's raw labels).
                        for s in &series {
                            if let Some(name) = s["metric"]["service"].as_str()
                                && !services.contains(&name.to_string())
                            {
                                failures.push(format!(
                                    "panel {} ({}): service {name:?}, not one of {services:?}",
                                    t.panel, t.ref_id
                                ));
                            }
                            if let Some(name) = s["metric"]["server"].as_str()
                                && !name.starts_with("127.0.0.1:")
                            {
                                failures.push(format!(
                                    "panel {} ({}): server {name:?}",
                                    t.panel, t.ref_id
                                ));
                            }
                        }
                    }
                    Ok(_) => empty.push((i, expr)),
                    Err(e) => failures.push(format!(
                        "panel {} ({}): Prometheus refused {expr}: {e}",
                        t.panel, t.ref_id
                    )),
                }
            }
            pending = empty;
            if pending.is_empty() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        for (i, expr) in &pending {
            let t = &all[*i];
            failures.push(format!(
                "panel {} ({}): no series from {expr}",
                t.panel, t.ref_id
            ));
        }
        // With All virtual addresses and ports (allValue ".*"), the fwmark service is
        // in the per-service and per-server legends too, named as uvsadm names it.
        let all_written: Vec<(&str, String)> = written
            .iter()
            .map(|(n, v)| match *n {
                "vip" | "port" => (*n, ".*".to_string()),
                _ => (*n, v.clone()),
            })
            .collect();
        for legend in ["{{service}}", "{{service}} → {{server}}"] {
            let t = all
                .iter()
                .find(|t| t.legend == legend)
                .unwrap_or_else(|| panic!("no panel's legend is {legend}"));
            let expr = substitute(&t.expr, &all_written).unwrap();
            let named: Vec<String> = prometheus
                .query(&expr)
                .unwrap_or_else(|e| panic!("{expr}: {e}"))
                .iter()
                .filter_map(|s| s["metric"]["service"].as_str().map(String::from))
                .collect();
            for service in &services {
                if !named.contains(service) {
                    failures.push(format!(
                        "panel {} ({}) with All: no {service} in {named:?}",
                        t.panel, t.ref_id
                    ));
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        load.join().expect("the traffic thread");
        drop(held);
        assert!(
            failures.is_empty(),
            "{} of {} queries failed:\n{}",
            failures.len(),
            all.len() + list.len(),
            failures.join("\n")
        );
    }
}
