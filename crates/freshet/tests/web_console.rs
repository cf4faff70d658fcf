//! The web console (`/` on the `--http-listen` address) and its JSON API.
//!
//! Real servers run the mission's pipeline (`logins_raw` → the dynamic table
//! `logins_with_predictions`, which scores the model `ml.registry.mymodel`),
//! plus tables whose names need quoting, a suspended dynamic table and one
//! whose last refresh failed. The JSON API is checked over plain HTTP here;
//! `console_in_a_browser` drives Debian's `chromium` through Playwright for
//! Python (`tests/clients/console_browser.py`) over the same kind of server,
//! and keeps screenshots under `$CARGO_TARGET_DIR/console-screenshots/`.
//!
//! The browser test is skipped (with a message) when chromium or Playwright
//! is missing; `.ci/run` installs both and sets FRESHET_REQUIRE_CLIENTS=1,
//! which turns a missing one into a failure.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{clients_required, wait_bounded, workspace_root, ServerOptions, TestServer};
use serde_json::Value;

/// The HTTP port the banner reports (`  http       http://127.0.0.1:PORT/ …`).
fn http_port(server: &TestServer) -> u16 {
    let log = server.log();
    log.lines()
        .find_map(|l| l.trim_start().strip_prefix("http "))
        .and_then(|rest| rest.trim().strip_prefix("http://127.0.0.1:"))
        .and_then(|rest| rest.split('/').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP address in the banner:\n{log}"))
}

/// A response: status, head (status line and headers) and body.
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.head, self.body))
    }
}

/// One GET with an optional `Authorization` header.
fn get(port: u16, path: &str, authorization: Option<&str>) -> Reply {
    request(port, "GET", path, authorization, "")
}

/// One request; `headers` are extra header lines, each ending in CRLF.
fn request(
    port: u16,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    headers: &str,
) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the HTTP port");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("set timeout");
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
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
    Reply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// `Basic base64(user:password)`.
fn basic(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

/// Percent-encodes a query parameter value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The weird names the pipeline adds: a base table and a suspended dynamic
/// table whose names need quoting and hold HTML and non-ASCII characters.
const ODD_TABLE: &str = "we\"ird <b>.x";
const ODD_DYNAMIC: &str = "dt \"q\" <i>é";

/// Builds the mission pipeline and the odd tables on `server`.
async fn mission_pipeline(server: &TestServer) {
    let client = server.connect().await;
    let odd_table = format!("\"{}\"", ODD_TABLE.replace('"', "\"\""));
    let odd_dynamic = format!("\"{}\"", ODD_DYNAMIC.replace('"', "\"\""));
    for sql in [
        "CREATE DATABASE ml".to_string(),
        "CREATE SCHEMA ml.registry".to_string(),
        "CREATE MODEL ml.registry.mymodel WITH VERSION v1 FROM 'login_risk.onnx'".to_string(),
        "CREATE TABLE logins_raw (login_id bigint, user_id bigint, location text)".to_string(),
        "INSERT INTO logins_raw VALUES (1, 5, 'US'), (2, 6, 'DE')".to_string(),
        "CREATE DYNAMIC TABLE logins_with_predictions TARGET_LAG = '20 minutes' \
         REFRESH_MODE = INCREMENTAL INITIALIZE = on_create AS \
         WITH my_model AS MODEL ml.registry.mymodel \
         SELECT l.login_id, my_model!predict(l.user_id, l.location) AS prediction_result \
         FROM logins_raw l"
            .to_string(),
        "INSERT INTO logins_raw VALUES (3, 7, 'FR')".to_string(),
        "ALTER DYNAMIC TABLE logins_with_predictions REFRESH".to_string(),
        format!("CREATE TABLE {odd_table} (a int)"),
        format!("INSERT INTO {odd_table} VALUES (1)"),
        format!(
            "CREATE DYNAMIC TABLE {odd_dynamic} TARGET_LAG = '1 hour' AS SELECT a FROM {odd_table}"
        ),
        format!("ALTER DYNAMIC TABLE {odd_dynamic} SUSPEND"),
        "CREATE TABLE nums (a int)".to_string(),
        "INSERT INTO nums VALUES (1)".to_string(),
        "CREATE DYNAMIC TABLE inverses TARGET_LAG = '1 hour' AS SELECT 10 / a AS q FROM nums"
            .to_string(),
        "INSERT INTO nums VALUES (0)".to_string(),
    ] {
        client
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    // A refresh that fails (division by zero) is recorded as FAILED.
    client
        .batch_execute("ALTER DYNAMIC TABLE inverses REFRESH")
        .await
        .expect_err("the refresh divides by zero");
}

fn mission_server(extra: ServerOptions) -> TestServer {
    let models = workspace_root().join("tests/fixtures/models");
    TestServer::start_with(extra.model_dir(&models))
}

fn node<'a>(graph: &'a Value, id: &str) -> &'a Value {
    graph["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["id"] == id))
        .unwrap_or_else(|| panic!("no node {id} in {graph:#}"))
}

fn has_edge(graph: &Value, from: &str, to: &str) -> bool {
    graph["edges"]
        .as_array()
        .is_some_and(|edges| edges.iter().any(|e| e["from"] == from && e["to"] == to))
}

fn dynamic_table_path(database: &str, schema: &str, name: &str) -> String {
    format!(
        "/api/dynamic-table?database={}&schema={}&name={}",
        encode(database),
        encode(schema),
        encode(name)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_shows_the_mission_pipeline() {
    let server = mission_server(ServerOptions::new());
    let port = http_port(&server);

    // An empty server: no nodes, no models, and the page itself loads.
    let empty = get(port, "/api/graph", None);
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert_eq!(empty.json()["nodes"], serde_json::json!([]));
    assert_eq!(empty.json()["edges"], serde_json::json!([]));
    assert_eq!(
        get(port, "/api/models", None).json()["models"],
        serde_json::json!([])
    );
    let page = get(port, "/", None);
    assert_eq!(page.status, 200);
    assert!(
        page.head.contains("Content-Type: text/html"),
        "{}",
        page.head
    );
    assert!(page.body.contains("/console.js"), "{}", page.body);
    let script = get(port, "/console.js", None);
    assert_eq!(script.status, 200);
    assert!(script.head.contains("text/javascript"), "{}", script.head);
    assert_eq!(get(port, "/console.css", None).status, 200);

    mission_pipeline(&server).await;

    let reply = get(port, "/api/graph", None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let graph = reply.json();
    let raw = "freshet.public.logins_raw";
    let predictions = "freshet.public.logins_with_predictions";
    let model = "model:ml.registry.mymodel";
    assert_eq!(node(&graph, raw)["kind"], "table");
    let dt = node(&graph, predictions);
    assert_eq!(dt["kind"], "dynamic_table");
    assert_eq!(dt["scheduling_state"], "RUNNING");
    assert_eq!(dt["effective_target_lag_seconds"], 1200.0);
    let lag = dt["lag_seconds"]
        .as_f64()
        .expect("a lag after two refreshes");
    assert!(lag >= 0.0, "{dt}");
    // Refreshed a moment ago against a 20-minute target.
    assert_eq!(dt["lag_status"], "ok", "{dt}");
    assert_eq!(node(&graph, model)["kind"], "model");
    assert_eq!(node(&graph, model)["default_version"], "v1");
    assert!(has_edge(&graph, raw, predictions), "{graph:#}");
    assert!(has_edge(&graph, model, predictions), "{graph:#}");
    assert!(!has_edge(&graph, predictions, raw), "{graph:#}");
    // The dynamic table is not listed a second time as a base table.
    let count = |id: &str| {
        graph["nodes"]
            .as_array()
            .map_or(0, |n| n.iter().filter(|n| n["id"] == id).count())
    };
    assert_eq!(count(predictions), 1);
    // Names needing quotes come through as written; the suspended table is
    // grey whatever its lag.
    let odd_table = format!("freshet.public.{ODD_TABLE}");
    let odd_dynamic = format!("freshet.public.{ODD_DYNAMIC}");
    assert_eq!(node(&graph, &odd_table)["name"], ODD_TABLE);
    assert_eq!(node(&graph, &odd_dynamic)["lag_status"], "suspended");
    assert_eq!(node(&graph, &odd_dynamic)["scheduling_state"], "SUSPENDED");
    assert!(has_edge(&graph, &odd_table, &odd_dynamic), "{graph:#}");

    // One dynamic table: its SHOW row, history and lag points.
    let reply = get(
        port,
        &dynamic_table_path("freshet", "public", "logins_with_predictions"),
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let detail = reply.json();
    assert_eq!(detail["table"]["name"], "logins_with_predictions");
    assert_eq!(detail["table"]["target_lag"], "20 minutes");
    let history = detail["history"].as_array().expect("history");
    let succeeded: Vec<&Value> = history
        .iter()
        .filter(|r| r["state"] == "SUCCEEDED")
        .collect();
    assert_eq!(
        succeeded.len(),
        2,
        "creation and manual refresh: {detail:#}"
    );
    // Newest first: the manual refresh scored the one new row.
    assert_eq!(succeeded[0]["refresh_trigger"], "MANUAL");
    assert_eq!(succeeded[0]["inserted_rows"], 1);
    assert_eq!(succeeded[0]["model_rows_scored"], 1);
    assert_eq!(succeeded[0]["statistics"]["numModelRowsScored"], 1);
    assert_eq!(succeeded[1]["refresh_trigger"], "CREATION");
    assert_eq!(succeeded[1]["inserted_rows"], 2);
    let points = detail["lag_points"].as_array().expect("lag points");
    // After the first refresh, before and after the second, and now.
    assert_eq!(points.len(), 4, "{detail:#}");
    assert!(
        points
            .iter()
            .all(|p| p["lag_seconds"].as_f64().is_some_and(|l| l >= 0.0) && p["time"].is_string()),
        "{detail:#}"
    );
    assert_eq!(points[3]["current"], true);

    // A failed refresh shows up with its message; the table stays RUNNING.
    let detail = get(
        port,
        &dynamic_table_path("freshet", "public", "inverses"),
        None,
    )
    .json();
    let failed = detail["history"]
        .as_array()
        .and_then(|h| h.iter().find(|r| r["state"] == "FAILED"))
        .unwrap_or_else(|| panic!("no FAILED refresh in {detail:#}"));
    assert!(
        failed["state_message"]
            .as_str()
            .is_some_and(|m| m.contains("division by zero")),
        "{failed}"
    );

    // The odd name, percent-encoded.
    let reply = get(
        port,
        &dynamic_table_path("freshet", "public", ODD_DYNAMIC),
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["table"]["name"], ODD_DYNAMIC);
    assert_eq!(reply.json()["lag_status"], "suspended");
    // Unknown tables, missing parameters and malformed encodings.
    assert_eq!(
        get(port, &dynamic_table_path("freshet", "public", "nope"), None).status,
        404
    );
    assert_eq!(
        get(port, "/api/dynamic-table?database=freshet", None).status,
        400
    );
    assert_eq!(
        get(
            port,
            "/api/dynamic-table?database=%zz&schema=a&name=b",
            None
        )
        .status,
        400
    );
    assert_eq!(get(port, "/api/nope", None).status, 404);

    // Models and their versions.
    let models = get(port, "/api/models", None).json();
    let models = models["models"].as_array().expect("models");
    assert_eq!(models.len(), 1, "{models:#?}");
    assert_eq!(models[0]["name"], "mymodel");
    assert_eq!(models[0]["database_name"], "ml");
    assert_eq!(models[0]["default_version_name"], "v1");
    let versions = models[0]["version_details"].as_array().expect("versions");
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0]["name"], "v1");
    assert_eq!(versions[0]["is_default_version"], true);
    assert_eq!(
        versions[0]["functions"],
        serde_json::json!(["predict", "predict_proba"])
    );

    // Sessions: a connected client is listed, and only a POST carrying the
    // console's header may cancel its statement.
    let client = server.connect().await;
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    let sessions = get(port, "/api/sessions", None).json();
    assert_eq!(sessions["superuser"], true);
    let listed = sessions["sessions"].as_array().expect("sessions");
    let row = listed
        .iter()
        .find(|s| s["pid"] == pid)
        .unwrap_or_else(|| panic!("pid {pid} not in {listed:#?}"));
    assert_eq!(row["state"], "idle");
    assert_eq!(row["query"], "SELECT pg_backend_pid()");
    let cancel = format!("/api/cancel?pid={pid}");
    assert_eq!(get(port, &cancel, None).status, 405);
    assert_eq!(request(port, "POST", &cancel, None, "").status, 403);
    let sent = request(port, "POST", &cancel, None, "X-Freshet-Console: 1\r\n");
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(sent.json()["cancelled"], true);
    let bad = request(
        port,
        "POST",
        "/api/cancel?pid=x",
        None,
        "X-Freshet-Console: 1\r\n",
    );
    assert_eq!(bad.status, 400);
}

#[test]
fn with_a_superuser_password_the_console_asks_for_it() {
    let server = TestServer::start_with(ServerOptions::new().password("s3cret pw:1"));
    let port = http_port(&server);
    for path in ["/", "/console.js", "/api/graph", "/api/models"] {
        let reply = get(port, path, None);
        assert_eq!(
            reply.status, 401,
            "{path} without credentials: {}",
            reply.head
        );
        assert!(
            reply
                .head
                .contains("\r\nWWW-Authenticate: Basic realm=\"freshet\""),
            "{}",
            reply.head
        );
    }
    let wrong = get(port, "/api/graph", Some(&basic("freshet", "wrong")));
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let unknown = get(port, "/api/graph", Some(&basic("nobody", "s3cret pw:1")));
    assert_eq!(unknown.status, 401, "{}", unknown.body);
    let garbage = get(port, "/api/graph", Some("Basic !!!"));
    assert_eq!(garbage.status, 401, "{}", garbage.body);
    let right = get(port, "/api/graph", Some(&basic("freshet", "s3cret pw:1")));
    assert_eq!(right.status, 200, "{}", right.body);
    assert!(right.json()["nodes"].is_array(), "{}", right.body);
    let me = get(port, "/api/whoami", Some(&basic("freshet", "s3cret pw:1")));
    assert_eq!(me.json()["user"], "freshet");
    assert_eq!(
        get(port, "/", Some(&basic("freshet", "s3cret pw:1"))).status,
        200
    );
    // Health and metrics stay open.
    assert_eq!(get(port, "/healthz", None).status, 200);
    assert_eq!(get(port, "/readyz", None).status, 200);
    assert_eq!(get(port, "/metrics", None).status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_user_signs_in_with_their_own_password() {
    let server = TestServer::start_with(ServerOptions::new().password("admin-pw"));
    let port = http_port(&server);
    let client = server.connect().await;
    client
        .batch_execute("CREATE USER analyst PASSWORD 'an@lyst'")
        .await
        .expect("create user");
    let me = get(port, "/api/whoami", Some(&basic("analyst", "an@lyst")));
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["user"], "analyst");
    assert_eq!(
        get(port, "/api/whoami", Some(&basic("analyst", "admin-pw"))).status,
        401
    );
}

fn python() -> String {
    std::env::var("FRESHET_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn chromium() -> String {
    std::env::var("FRESHET_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string())
}

/// Whether chromium and Playwright for Python are installed; a failure
/// under FRESHET_REQUIRE_CLIENTS.
fn browser_available() -> bool {
    let playwright = Command::new(python())
        .args(["-c", "import playwright.sync_api"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let chromium = std::path::Path::new(&chromium()).exists();
    if !(playwright && chromium) {
        let missing = if playwright {
            "chromium"
        } else {
            "python3 with playwright"
        };
        if clients_required() {
            panic!("{missing} is not available but FRESHET_REQUIRE_CLIENTS is set");
        }
        eprintln!("SKIPPED: {missing} is not available (see .ci/run)");
    }
    playwright && chromium
}

/// Where the browser test leaves its screenshots.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("console-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_browser() {
    if !browser_available() {
        return;
    }
    let server = mission_server(ServerOptions::new().password("br0wser"));
    let port = http_port(&server);
    mission_pipeline(&server).await;
    let screenshots = screenshot_dir();
    std::fs::create_dir_all(&screenshots).expect("create the screenshot directory");
    let script = common::manifest_dir().join("tests/clients/console_browser.py");
    let mut child = Command::new(python())
        .arg(&script)
        .env("CONSOLE_URL", format!("http://127.0.0.1:{port}/"))
        .env("CONSOLE_USER", "freshet")
        .env("CONSOLE_PASSWORD", "br0wser")
        .env(
            "CONSOLE_PG_DSN",
            format!(
                "host=127.0.0.1 port={} user=freshet password=br0wser dbname=freshet",
                server.port()
            ),
        )
        .env("CONSOLE_SCREENSHOTS", &screenshots)
        .env("CHROMIUM", chromium())
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let status = wait_bounded(&mut child, Duration::from_secs(240));
    let stdout = out_thread.join().expect("stdout thread");
    let stderr = err_thread.join().expect("stderr thread");
    eprintln!("screenshots in {}", screenshots.display());
    assert!(
        status.is_some_and(|s| s.success()),
        "console_browser.py failed ({status:?})\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("console: all checks passed"),
        "the browser script did not finish its checks:\n{stdout}\n{stderr}"
    );
    for name in [
        "graph.png",
        "table.png",
        "odd-table.png",
        "models.png",
        "sessions.png",
    ] {
        let path = screenshots.join(name);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(
            size > 1000,
            "no screenshot {} ({size} bytes)",
            path.display()
        );
    }
}
