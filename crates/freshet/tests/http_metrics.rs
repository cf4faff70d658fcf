//! The HTTP endpoint (`--http-listen`): `/healthz`, `/readyz`, `/metrics`.
//!
//! A real server on a free HTTP port (found in its start-up banner) runs the
//! mission's pipeline — a table, a dynamic table scoring a model, inserts,
//! a refresh — and `/metrics` is scraped before and after. The page is parsed
//! by Python's `prometheus_client` (the OpenMetrics parser, which is strict
//! about the format, and the classic Prometheus text parser, which must read
//! it too), so the test checks the format as a scraper reads it, not as this
//! crate writes it.
//!
//! Skipped (with a message) only when python3 with `prometheus_client` is
//! missing; `.ci/run` installs it and sets FRESHET_REQUIRE_CLIENTS=1, which
//! turns a missing client into a failure.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{clients_required, workspace_root, ServerOptions, TestServer};

fn python() -> String {
    std::env::var("FRESHET_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Whether python3 can import `prometheus_client`; a failure under
/// FRESHET_REQUIRE_CLIENTS.
fn python_has_prometheus_client() -> bool {
    let ok = Command::new(python())
        .args(["-c", "import prometheus_client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if clients_required() {
            panic!("python3 with prometheus_client is not available but FRESHET_REQUIRE_CLIENTS is set");
        }
        eprintln!("SKIPPED: python3 with prometheus_client is not available (see .ci/run)");
    }
    ok
}

/// The HTTP port the banner reports (`  http       http://127.0.0.1:PORT/ …`).
fn http_port(server: &TestServer) -> u16 {
    banner_port(server, "http")
}

/// The port of the banner's `http` line, whose URL has `scheme`.
fn banner_port(server: &TestServer, scheme: &str) -> u16 {
    let log = server.log();
    let prefix = format!("{scheme}://127.0.0.1:");
    log.lines()
        .find_map(|l| l.trim_start().strip_prefix("http "))
        .and_then(|rest| rest.trim().strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split('/').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP address in the banner:\n{log}"))
}

/// One HTTP/1.1 request; the status code and the body.
fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the HTTP port");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("set timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {response:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, body.to_string())
}

/// A sample: its name and labels (sorted), as the parser read them.
type Samples = BTreeMap<(String, Vec<(String, String)>), f64>;

/// One sample as the Python script prints it: name, labels, value.
type ParsedSample = (String, Vec<(String, String)>, f64);

const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as classic
text = sys.stdin.read()
# The classic Prometheus text parser must read the page as well.
classic_count = sum(len(f.samples) for f in classic(text))
samples = []
for family in openmetrics(text):
    for s in family.samples:
        samples.append([s.name, sorted(s.labels.items()), s.value])
assert classic_count == len(samples), (classic_count, len(samples))
print(json.dumps(samples))
"#;

/// Scrapes `/metrics` and parses it with Python's prometheus_client.
fn scrape(port: u16) -> Samples {
    let (status, text) = http(port, "GET", "/metrics");
    assert_eq!(status, 200, "/metrics answered {status}: {text}");
    let mut child = Command::new(python())
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write the page to python");
    let output = child.wait_with_output().expect("python3 output");
    assert!(
        output.status.success(),
        "prometheus_client could not parse /metrics: {}\npage:\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: Vec<ParsedSample> =
        serde_json::from_slice(&output.stdout).expect("the parser's json");
    parsed
        .into_iter()
        .map(|(name, labels, value)| ((name, labels), value))
        .collect()
}

/// The value of the sample `name` with exactly `labels`, if present.
fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    samples.get(&(name.to_string(), labels)).copied()
}

fn must(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(samples, name, labels)
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in /metrics; samples: {samples:#?}"))
}

/// Sum of the samples `name` whose labels include `having`.
fn sum_where(samples: &Samples, name: &str, having: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|((n, labels), _)| {
            n == name
                && having
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, v)| *v)
        .sum()
}

/// (user_id, location) of the first `n` rows of the model's fixture inputs.
fn logins(n: usize) -> Vec<(i64, String)> {
    let path = workspace_root().join("tests/fixtures/models/login_risk.inputs.json");
    let inputs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    let column = |name: &str| -> Vec<serde_json::Value> {
        inputs["inputs"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["name"] == name))
            .and_then(|x| x["columns"][0].as_array())
            .cloned()
            .unwrap_or_else(|| panic!("fixture has no {name}"))
    };
    let (users, locations) = (column("user_id"), column("location"));
    (0..n)
        .map(|i| {
            (
                users[i].as_i64().expect("user_id"),
                locations[i].as_str().expect("location").to_string(),
            )
        })
        .collect()
}

fn insert(rows: &[(i64, String)], from: usize) -> String {
    let values: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, (user, location))| {
            format!("({}, {user}, '{}')", from + i, location.replace('\'', "''"))
        })
        .collect();
    format!("INSERT INTO logins_raw VALUES {}", values.join(", "))
}

#[test]
fn health_and_readiness_answer_and_unknown_paths_are_404() {
    let server =
        TestServer::start_with(ServerOptions::new().with_extra(&["--http-listen", "127.0.0.1:0"]));
    let port = http_port(&server);
    assert_eq!(http(port, "GET", "/healthz"), (200, "ok\n".to_string()));
    // The wire listener accepted the harness's connection: ready.
    assert_eq!(http(port, "GET", "/readyz"), (200, "ready\n".to_string()));
    assert_eq!(http(port, "HEAD", "/readyz").0, 200);
    assert_eq!(http(port, "GET", "/nope").0, 404);
    assert_eq!(http(port, "GET", "/healthz/x").0, 404);
    assert_eq!(http(port, "POST", "/metrics").0, 405);
}

/// One HTTPS GET trusting only `trusted`; the status code and the body.
fn https_get(port: u16, path: &str, trusted: &rcgen::Certificate) -> (u16, String) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.der().clone()).expect("add root");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("server name");
    let mut connection =
        rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("TLS client");
    let mut socket = TcpStream::connect(("127.0.0.1", port)).expect("connect to the HTTPS port");
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("set timeout");
    let mut stream = rustls::Stream::new(&mut connection, &mut socket);
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send request over TLS");
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            // A peer that closes without close_notify: the response is complete.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("read over TLS: {e}"),
        }
    }
    let response = String::from_utf8(response).expect("utf-8 response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {response:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, body.to_string())
}

#[test]
fn with_a_certificate_the_endpoint_speaks_https() {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("generate certificate");
    let dir = tempfile::tempdir().expect("temp dir");
    let cert_path = dir.path().join("server.crt");
    let key_path = dir.path().join("server.key");
    std::fs::write(&cert_path, certified.cert.pem()).expect("write certificate");
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).expect("write key");
    let server = TestServer::start_with(
        ServerOptions::new()
            .tls(&cert_path, &key_path)
            .with_extra(&["--http-listen", "127.0.0.1:0"]),
    );
    let port = banner_port(&server, "https");
    assert_eq!(
        https_get(port, "/readyz", &certified.cert),
        (200, "ready\n".to_string())
    );
    let (status, page) = https_get(port, "/metrics", &certified.cert);
    assert_eq!(status, 200);
    assert!(page.contains("freshet_commits_total"), "{page}");
}

#[test]
fn http_listen_off_disables_the_endpoint() {
    let server = TestServer::start_with(ServerOptions::new().with_extra(&["--http-listen", "off"]));
    let log = server.log();
    assert!(
        log.contains("\n  http       off"),
        "the banner says the endpoint is off:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_mission_pipeline() {
    if !python_has_prometheus_client() {
        return;
    }
    let models = workspace_root().join("tests/fixtures/models");
    let server = TestServer::start_with(
        ServerOptions::new()
            .model_dir(&models)
            .with_extra(&["--http-listen", "127.0.0.1:0"]),
    );
    let port = http_port(&server);
    let client = server.connect().await;
    client
        .batch_execute("CREATE DATABASE ml")
        .await
        .expect("create database");
    client
        .batch_execute("CREATE SCHEMA ml.registry")
        .await
        .expect("create schema");
    client
        .batch_execute("CREATE MODEL ml.registry.mymodel WITH VERSION v1 FROM 'login_risk.onnx'")
        .await
        .expect("create model");
    client
        .batch_execute("CREATE TABLE logins_raw (login_id bigint, user_id bigint, location text)")
        .await
        .expect("create table");

    let rows = logins(40);
    let before = scrape(port);
    assert!(must(&before, "freshet_connections", &[]) >= 1.0);
    // Two INSERTs, one SELECT, one failing SELECT: counted by kind and outcome.
    client
        .batch_execute(&insert(&rows[..20], 0))
        .await
        .expect("first logins");
    let after_insert = scrape(port);
    assert!(
        must(&after_insert, "freshet_commits_total", &[])
            > must(&before, "freshet_commits_total", &[]),
        "an INSERT commits"
    );
    client
        .batch_execute(&insert(&rows[20..30], 20))
        .await
        .expect("more logins");
    client
        .query("SELECT count(*) FROM logins_raw", &[])
        .await
        .expect("count");
    client
        .batch_execute("SELECT * FROM no_such_table")
        .await
        .expect_err("no such table");
    let after = scrape(port);
    let delta = |kind: &str, outcome: &str| {
        let labels = [("kind", kind), ("outcome", outcome)];
        value(&after, "freshet_statements_total", &labels).unwrap_or(0.0)
            - value(&before, "freshet_statements_total", &labels).unwrap_or(0.0)
    };
    assert_eq!(delta("insert", "ok"), 2.0, "two INSERTs");
    assert_eq!(delta("select", "ok"), 1.0, "one SELECT");
    assert_eq!(delta("select", "error"), 1.0, "one failed SELECT");
    assert_eq!(delta("insert", "error"), 0.0);
    assert_eq!(
        must(
            &after,
            "freshet_statement_duration_seconds_count",
            &[("kind", "insert"), ("outcome", "ok")]
        ),
        must(
            &after,
            "freshet_statements_total",
            &[("kind", "insert"), ("outcome", "ok")]
        ),
        "the latency histogram counts every statement"
    );
    assert_eq!(
        must(
            &after,
            "freshet_statement_duration_seconds_bucket",
            &[("kind", "insert"), ("outcome", "ok"), ("le", "+Inf")]
        ),
        must(
            &after,
            "freshet_statements_total",
            &[("kind", "insert"), ("outcome", "ok")]
        )
    );

    // The dynamic table: created (and filled) scoring 30 rows, then 10 more
    // rows arrive and a manual refresh scores them.
    client
        .batch_execute(
            "CREATE DYNAMIC TABLE logins_with_predictions TARGET_LAG = '20 minutes' \
             REFRESH_MODE = INCREMENTAL INITIALIZE = on_create AS \
             WITH my_model AS MODEL ml.registry.mymodel \
             SELECT l.login_id, my_model!predict(l.user_id, l.location) AS prediction_result \
             FROM logins_raw l",
        )
        .await
        .expect("create dynamic table");
    // A name that needs escaping in a label value.
    client
        .batch_execute(
            r#"CREATE DYNAMIC TABLE "we""ird\dt" TARGET_LAG = '1 hour' AS SELECT login_id FROM logins_raw"#,
        )
        .await
        .expect("create the oddly named dynamic table");
    client
        .batch_execute(&insert(&rows[30..], 30))
        .await
        .expect("last logins");
    client
        .batch_execute("ALTER DYNAMIC TABLE logins_with_predictions REFRESH")
        .await
        .expect("refresh");

    let m = scrape(port);
    let table = "freshet.public.logins_with_predictions";
    let lag = must(&m, "freshet_dynamic_table_lag_seconds", &[("table", table)]);
    assert!(lag >= 0.0, "lag {lag}");
    assert_eq!(
        must(
            &m,
            "freshet_dynamic_table_target_lag_seconds",
            &[("table", table)]
        ),
        1200.0
    );
    assert_eq!(
        must(&m, "freshet_dynamic_table_suspended", &[("table", table)]),
        0.0
    );
    let succeeded = sum_where(
        &m,
        "freshet_dynamic_table_refreshes_total",
        &[("table", table), ("state", "SUCCEEDED")],
    );
    assert!(
        succeeded >= 2.0,
        "the creation's and the manual refresh: {succeeded}"
    );
    assert!(
        must(
            &m,
            "freshet_dynamic_table_refresh_duration_seconds_count",
            &[("table", table)]
        ) >= 2.0
    );
    assert!(
        value(
            &m,
            "freshet_dynamic_table_target_lag_seconds",
            &[("table", r#"freshet.public.we"ird\dt"#)]
        ) == Some(3600.0),
        "the label value round-trips through escaping: {m:#?}"
    );
    let scored = must(
        &m,
        "freshet_model_rows_scored_total",
        &[("model", "ml.registry.mymodel"), ("version", "v1")],
    );
    assert_eq!(scored, 40.0, "each login scored once");
    assert!(
        must(
            &m,
            "freshet_model_calls_total",
            &[("model", "ml.registry.mymodel"), ("version", "v1")]
        ) >= 2.0
    );

    // The same components as freshet_memory_usage().
    let components = client
        .query("SELECT component FROM freshet_memory_usage()", &[])
        .await
        .expect("memory usage");
    assert!(!components.is_empty());
    for row in components {
        let component: String = row.get(0);
        must(&m, "freshet_memory_bytes", &[("component", &component)]);
    }
    assert!(
        must(
            &m,
            "freshet_memory_limit_bytes",
            &[("component", "query_execution")]
        ) > 0.0
    );
    assert_eq!(
        must(&m, "freshet_wal_sync_duration_seconds_count", &[]),
        must(&m, "freshet_wal_syncs_total", &[])
    );
    must(&m, "freshet_checkpoints_total", &[]);
    must(&m, "freshet_compaction_segments_total", &[]);
}
