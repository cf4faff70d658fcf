//! Running Freshet: settings from flags, `FRESHET_*` variables and a
//! `freshet.toml` file (`--print-config`, refused keys and values), the logs
//! (JSON lines, the slow-statement log, one line per refresh) and shutdown on
//! SIGTERM (running statements finish, idle sessions get 57P01, commits
//! survive, a second signal or the end of the grace period exits at once).
//! Everything through real `freshet serve` processes.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{
    exec_ok, freshet_bin, remove_freshet_env, text_rows, wait_bounded, ServerOptions, TestServer,
    EXIT_DEADLINE,
};

/// Bound on waits for the server to log, connect or exit.
const WAIT: Duration = Duration::from_secs(120);

/// Runs `freshet serve ARGS` with the environment variables `env` (and no
/// other `FRESHET_*` one), waiting at most [`EXIT_DEADLINE`] for it to exit.
fn run_serve(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(freshet_bin());
    command.arg("serve").args(args);
    remove_freshet_env(&mut command);
    command.envs(env.iter().copied());
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn freshet");
    // Its output is small: it fits the pipes while we wait.
    let status = wait_bounded(&mut child, EXIT_DEADLINE).expect("freshet exit status");
    let mut output = child.wait_with_output().expect("read freshet output");
    output.status = status;
    output
}

/// The value and source `--print-config` shows for `key`: `("(not set)",
/// "default")`, `("\"x\"", "flag --listen")`, ….
fn shown_setting(printed: &str, key: &str) -> (String, String) {
    let line = printed
        .lines()
        .find(|l| {
            let l = l.trim_start_matches("# ");
            l.starts_with(&format!("{key} =")) || l.starts_with(&format!("{key} ("))
        })
        .unwrap_or_else(|| panic!("no line for {key} in --print-config output:\n{printed}"));
    let (setting, source) = line
        .rsplit_once(" # ")
        .unwrap_or_else(|| panic!("no source on the line {line:?}"));
    let setting = setting.trim().trim_start_matches("# ");
    let value = setting
        .strip_prefix(&format!("{key} = "))
        .or_else(|| setting.strip_prefix(&format!("{key} ")))
        .unwrap_or(setting);
    (value.trim().to_owned(), source.trim().to_owned())
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write config file");
}

#[test]
fn print_config_shows_each_setting_with_its_source() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let config = dir.path().join("freshet.toml");
    write(
        &config,
        r#"
listen = "127.0.0.1:7001"
superuser = "from_file"
inference-batch-size = 100
log-format = "json"
superuser-password = "file-secret-pw"
query-memory-limit = "64MB"
"#,
    );
    let config_arg = config.display().to_string();
    let data_arg = data_dir.display().to_string();
    let out = run_serve(
        &[
            "--config",
            &config_arg,
            "--data-dir",
            &data_arg,
            "--listen",
            "127.0.0.1:7003",
            "--print-config",
        ],
        &[
            ("FRESHET_LISTEN", "127.0.0.1:7002"),
            ("FRESHET_SUPERUSER", "from_env"),
            ("FRESHET_SUPERUSER_PASSWORD", "env-secret-pw"),
            ("FRESHET_SHUTDOWN_GRACE", "45s"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "--print-config failed: {}\n{stderr}",
        out.status
    );
    let file_source = format!("file {}", config.display());
    let expect = |key: &str, value: &str, source: &str| {
        assert_eq!(
            shown_setting(&stdout, key),
            (value.to_owned(), source.to_owned()),
            "{key} in:\n{stdout}"
        );
    };
    // A flag beats the environment, which beats the file.
    expect("listen", "\"127.0.0.1:7003\"", "flag --listen");
    // The environment beats the file.
    expect("superuser", "\"from_env\"", "env FRESHET_SUPERUSER");
    // The file beats the default.
    expect("inference-batch-size", "100", &file_source);
    expect("log-format", "\"json\"", &file_source);
    expect("query-memory-limit", "\"64MB\"", &file_source);
    // Environment only.
    expect("shutdown-grace", "\"45s\"", "env FRESHET_SHUTDOWN_GRACE");
    // Defaults.
    expect("http-listen", "\"127.0.0.1:5480\"", "default");
    expect("log-slow-statements", "\"off\"", "default");
    expect("model-dir", "(not set)", "default");
    expect(
        "data-dir",
        &toml_string(&data_dir.display().to_string()),
        "flag --data-dir",
    );
    // The password is set (from the environment) but never shown.
    let (password, source) = shown_setting(&stdout, "superuser-password");
    assert_eq!(source, "env FRESHET_SUPERUSER_PASSWORD");
    assert!(!password.contains("secret"), "password shown: {password:?}");
    for secret in ["env-secret-pw", "file-secret-pw"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} printed:\n{stdout}\n{stderr}"
        );
    }
    // Printing the settings does not open (or create) the data directory.
    assert!(!data_dir.exists(), "--print-config created {data_dir:?}");
}

/// `s` as a TOML basic string (the paths in these tests need no escapes).
fn toml_string(s: &str) -> String {
    format!("\"{s}\"")
}

#[test]
fn print_config_defaults_without_file_or_environment() {
    let out = run_serve(&["--print-config"], &[]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for (key, value) in [
        ("data-dir", "\"./freshet-data\""),
        ("listen", "\"127.0.0.1:5433\""),
        ("superuser", "\"freshet\""),
        ("superuser-password", "(not set)"),
        ("inference-batch-size", "8192"),
        ("log-format", "\"text\""),
        ("shutdown-grace", "\"10s\""),
        ("no-fsync", "false"),
    ] {
        assert_eq!(
            shown_setting(&stdout, key),
            (value.to_owned(), "default".to_owned()),
            "{key} in:\n{stdout}"
        );
    }
}

#[test]
fn bad_settings_stop_the_start_naming_the_key_or_variable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let data_arg = data_dir.display().to_string();
    let config = dir.path().join("freshet.toml");
    let config_arg = config.display().to_string();

    let refused = |file: Option<&str>, env: &[(&str, &str)], expected: &[&str]| {
        if let Some(text) = file {
            write(&config, text);
        }
        let mut args = vec!["--data-dir", data_arg.as_str(), "--listen", "127.0.0.1:0"];
        if file.is_some() {
            args.extend(["--config", config_arg.as_str()]);
        }
        let out = run_serve(&args, env);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "freshet started despite {file:?} {env:?}: {}\n{stderr}",
            out.status
        );
        for needle in expected {
            assert!(
                stderr.contains(needle),
                "expected {needle:?} in the error for {file:?} {env:?}:\n{stderr}"
            );
        }
        assert!(!data_dir.exists(), "the data directory was created");
    };

    refused(
        Some("data-dir = \"/tmp/x\"\ndata_dri = \"oops\"\n"),
        &[],
        &["unknown key `data_dri`", &config_arg],
    );
    refused(
        Some("shutdown-grace = \"soon\"\n"),
        &[],
        &["`shutdown-grace`", "invalid duration"],
    );
    refused(
        Some("inference-batch-size = 0\n"),
        &[],
        &["`inference-batch-size`"],
    );
    refused(
        Some("log-format = \"xml\"\n"),
        &[],
        &["`log-format`", "xml"],
    );
    refused(Some("listen = [\n"), &[], &[&config_arg]);
    refused(
        None,
        &[("FRESHET_INFERENCE_BATCH_SIZE", "many")],
        &["FRESHET_INFERENCE_BATCH_SIZE", "many"],
    );
    refused(
        None,
        &[("FRESHET_LOG_SLOW_STATEMENTS", "sometimes")],
        &["FRESHET_LOG_SLOW_STATEMENTS", "sometimes"],
    );
    refused(
        None,
        &[("FRESHET_QUERY_MEMORY_LIMIT", "12 parsecs")],
        &["FRESHET_QUERY_MEMORY_LIMIT"],
    );
    refused(
        None,
        &[("FRESHET_CONFIG", "/nonexistent/freshet.toml")],
        &["/nonexistent/freshet.toml"],
    );
    // One of the TLS pair alone.
    refused(
        Some("tls-cert = \"/tmp/cert.pem\"\n"),
        &[],
        &["tls-key", "tls-cert"],
    );
}

/// Every stderr line of the server, parsed as JSON.
fn json_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l:?}\nlog:\n{log}"))
        })
        .collect()
}

fn field<'a>(line: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    &line[name]
}

#[tokio::test]
async fn json_logs_carry_slow_statements_and_refreshes() {
    // Every statement takes at least 0s: all are logged, whatever the speed
    // of the machine.
    let server = TestServer::start_with(
        ServerOptions::new()
            .with_extra(&["--log-format", "json"])
            .with_env("FRESHET_LOG_SLOW_STATEMENTS", "0s"),
    );
    let client = server.connect().await;
    let slow = "SELECT count(*) FROM generate_series(1, 100000) AS g(n)";
    assert_eq!(
        text_rows(&client, slow).await,
        vec![vec!["100000".to_owned()]]
    );
    let failing = "SELECT * FROM no_such_table";
    let err = client
        .simple_query(failing)
        .await
        .expect_err("the table does not exist");
    assert_eq!(common::sqlstate(&err), "42P01");
    // The extended protocol too.
    let rows = client
        .query("SELECT $1::int + 1 AS answer", &[&41i32])
        .await
        .expect("extended query");
    assert_eq!(rows[0].get::<_, i32>(0), 42);

    exec_ok(
        &client,
        "CREATE TABLE readings (id bigint, v bigint);
         INSERT INTO readings SELECT n, n % 7 FROM generate_series(1, 50) AS g(n)",
    )
    .await;
    exec_ok(
        &client,
        "CREATE DYNAMIC TABLE readings_by_v TARGET_LAG = '1 day' \
         AS SELECT v, count(*) AS n FROM readings GROUP BY v",
    )
    .await;
    exec_ok(&client, "INSERT INTO readings VALUES (51, 100), (52, 101)").await;
    exec_ok(&client, "ALTER DYNAMIC TABLE readings_by_v REFRESH").await;

    // The history the refresh lines must agree with.
    let history = text_rows(
        &client,
        "SELECT refresh_action, state, statistics FROM freshet_refresh_history('readings_by_v') \
         ORDER BY refresh_start_time",
    )
    .await;
    assert_eq!(history.len(), 2, "history: {history:?}");

    let log = server
        .wait_for_log("ALTER DYNAMIC TABLE readings_by_v REFRESH", WAIT)
        .await;
    let lines = json_lines(&log);
    let slow_lines: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| field(l, "target") == "freshet::slow_statement")
        .collect();
    let line_for = |sql: &str| {
        slow_lines
            .iter()
            .find(|l| field(l, "statement") == sql)
            .unwrap_or_else(|| panic!("no slow-statement line for {sql:?} in:\n{log}"))
    };
    let ok = line_for(slow);
    assert_eq!(field(ok, "level"), "WARN");
    assert_eq!(field(ok, "user"), "freshet");
    assert_eq!(field(ok, "outcome"), "ok");
    assert!(field(ok, "duration_ms").is_number(), "{ok}");
    let failed = line_for(failing);
    assert_eq!(field(failed, "outcome"), "error");
    assert_eq!(field(failed, "sqlstate"), "42P01");
    let extended = line_for("SELECT $1::int + 1 AS answer");
    assert_eq!(field(extended, "outcome"), "ok");

    // One line per refresh, from the history's own figures.
    let refreshes: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| field(l, "target") == "freshet::refresh")
        .filter(|l| field(l, "table") == "freshet.public.readings_by_v")
        .collect();
    assert_eq!(refreshes.len(), 2, "refresh lines in:\n{log}");
    for (line, row) in refreshes.iter().zip(&history) {
        assert_eq!(field(line, "level"), "INFO");
        assert_eq!(field(line, "action"), row[0].as_str(), "{line}");
        assert_eq!(field(line, "state"), row[1].as_str(), "{line}");
        let stats: serde_json::Value = serde_json::from_str(&row[2]).expect("statistics are JSON");
        assert_eq!(
            field(line, "inserted_rows"),
            &stats["numInsertedRows"],
            "{line} vs {stats}"
        );
        assert_eq!(
            field(line, "deleted_rows"),
            &stats["numDeletedRows"],
            "{line} vs {stats}"
        );
        assert_eq!(
            field(line, "source_rows_read"),
            &stats["numSourceRowsRead"],
            "{line} vs {stats}"
        );
    }
    assert_eq!(field(refreshes[0], "trigger"), "CREATION");
    assert_eq!(field(refreshes[1], "trigger"), "MANUAL");
    // The two new rows form two new groups.
    assert_eq!(field(refreshes[1], "inserted_rows"), 2);

    // The banner is a JSON line too.
    assert!(
        lines.iter().any(|l| field(l, "target") == "freshet::banner"
            && field(l, "message")
                .as_str()
                .is_some_and(|m| m.contains("ready"))),
        "no banner line in:\n{log}"
    );
}

#[tokio::test]
async fn text_logs_name_slow_statements() {
    let server =
        TestServer::start_with(ServerOptions::new().with_extra(&["--log-slow-statements", "1ms"]));
    let client = server.connect().await;
    // Tens of milliseconds at least, however fast the machine.
    let slow = "SELECT count(*) FROM generate_series(1, 3000000) AS g(n) WHERE n % 3 = 0";
    assert_eq!(
        text_rows(&client, slow).await,
        vec![vec!["1000000".to_owned()]]
    );
    let log = server.wait_for_log("slow statement", WAIT).await;
    let line = log
        .lines()
        .find(|l| l.contains("slow statement") && l.contains("generate_series(1, 3000000)"))
        .unwrap_or_else(|| panic!("no slow-statement line in:\n{log}"));
    for needle in ["WARN", "user=\"freshet\"", "outcome=\"ok\"", "duration_ms="] {
        assert!(line.contains(needle), "{needle:?} missing from {line:?}");
    }
    // Not a JSON log.
    assert!(serde_json::from_str::<serde_json::Value>(line).is_err());
}

/// A statement that keeps 2 cores busy for seconds but finishes (on a table
/// `c` of 2000 rows: 8e9 combinations) or minutes (5000 rows).
const FINITE_QUERY: &str = "SELECT count(*) FROM c a, c b, c d WHERE a.x + b.x + d.x = -1";

/// Fills table `c` with `rows` rows and commits row 1 of table `kept`.
async fn prepare(server: &TestServer, rows: i64) -> tokio_postgres::Client {
    let client = server.connect().await;
    exec_ok(
        &client,
        &format!(
            "CREATE TABLE c (x int); \
             INSERT INTO c SELECT n FROM generate_series(1, {rows}) AS g(n); \
             CREATE TABLE kept (id int, note text); \
             INSERT INTO kept VALUES (1, 'acknowledged before SIGTERM')"
        ),
    )
    .await;
    client
}

/// Options for the shutdown tests: WAL fsync on, statements logged as they
/// start (so a test knows its statement is running), `grace`.
fn shutdown_options(grace: &str) -> ServerOptions {
    ServerOptions::new()
        .with_fsync()
        .with_extra(&["--shutdown-grace", grace])
        .with_env("RUST_LOG", "info,freshet::statement=debug")
}

/// Connects and keeps the connection's own result, where an error the
/// server sends outside any request (FATAL 57P01) ends up.
async fn connect_watched(
    server: &TestServer,
) -> (
    tokio_postgres::Client,
    tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
) {
    let (client, connection) = server
        .config()
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect");
    (client, tokio::spawn(connection))
}

/// Restarts `server` on its data directory and checks the committed row.
async fn assert_kept_after_restart(server: &mut TestServer) {
    server.restart();
    let client = server.connect().await;
    assert_eq!(
        text_rows(&client, "SELECT id, note FROM kept").await,
        vec![vec![
            "1".to_owned(),
            "acknowledged before SIGTERM".to_owned()
        ]]
    );
}

#[tokio::test]
async fn sigterm_lets_running_statements_finish_and_ends_idle_sessions() {
    let mut server = TestServer::start_with(shutdown_options("10min"));
    let setup = prepare(&server, 2000).await;
    drop(setup);
    let (idle, idle_connection) = connect_watched(&server).await;
    exec_ok(&idle, "SELECT 1").await;

    let busy = server.connect().await;
    let running = tokio::spawn(async move { busy.query_one(FINITE_QUERY, &[]).await });
    server
        .wait_for_log(&format!("statement=\"{FINITE_QUERY}\""), WAIT)
        .await;
    server.signal("TERM");

    let log = server
        .wait_for_log("no longer accepting connections", WAIT)
        .await;
    let line = log
        .lines()
        .find(|l| l.contains("no longer accepting connections"))
        .unwrap_or_default();
    assert!(
        line.contains("running=1"),
        "the statement should still run when shutdown starts: {line}"
    );

    // The idle session is ended with 57P01.
    let ended = tokio::time::timeout(WAIT, idle_connection)
        .await
        .expect("the idle session was not ended")
        .expect("connection task");
    let err = ended.expect_err("the idle session ends with an error");
    assert_eq!(common::sqlstate(&err), "57P01", "{err:?}");
    assert_eq!(
        err.as_db_error().map(|e| e.message()),
        Some("terminating connection due to administrator command")
    );

    // The running statement completes and its client gets the result.
    let row = tokio::time::timeout(WAIT, running)
        .await
        .expect("the running statement did not finish")
        .expect("query task")
        .expect("the running statement's result");
    assert_eq!(row.get::<_, i64>(0), 0);

    let status = server.wait_for_exit(WAIT);
    assert_eq!(status.code(), Some(0), "exit status");
    assert!(server.log().contains("freshet stopped"));
    assert!(!server.log().contains("grace period over"));
    assert_kept_after_restart(&mut server).await;
}

#[tokio::test]
async fn end_of_grace_period_closes_running_statements() {
    let mut server = TestServer::start_with(shutdown_options("1s"));
    // 5000³ combinations: minutes of work, far past the grace period.
    let setup = prepare(&server, 5000).await;
    drop(setup);
    let busy = server.connect().await;
    let running = tokio::spawn(async move { busy.query_one(FINITE_QUERY, &[]).await });
    server
        .wait_for_log(&format!("statement=\"{FINITE_QUERY}\""), WAIT)
        .await;
    server.signal("TERM");
    let status = server.wait_for_exit(WAIT);
    assert_eq!(status.code(), Some(0), "exit status");
    let result = tokio::time::timeout(WAIT, running)
        .await
        .expect("the client did not see its connection close")
        .expect("query task");
    assert!(result.is_err(), "the statement finished: {result:?}");
    let log = server.log();
    assert!(log.contains("grace period over"), "log:\n{log}");
    assert!(!log.contains("freshet stopped"), "log:\n{log}");
    assert_kept_after_restart(&mut server).await;
}

#[tokio::test]
async fn second_sigterm_exits_at_once() {
    let mut server = TestServer::start_with(shutdown_options("10min"));
    let setup = prepare(&server, 5000).await;
    drop(setup);
    let busy = server.connect().await;
    let running = tokio::spawn(async move { busy.query_one(FINITE_QUERY, &[]).await });
    server
        .wait_for_log(&format!("statement=\"{FINITE_QUERY}\""), WAIT)
        .await;
    server.signal("TERM");
    server
        .wait_for_log("no longer accepting connections", WAIT)
        .await;
    server.signal("TERM");
    // Well within the 10-minute grace period and the minutes the
    // statement would take.
    let status = server.wait_for_exit(WAIT);
    assert_eq!(status.code(), Some(0), "exit status");
    let result = tokio::time::timeout(WAIT, running)
        .await
        .expect("the client did not see its connection close")
        .expect("query task");
    assert!(result.is_err(), "the statement finished: {result:?}");
    let log = server.log();
    assert!(log.contains("SIGTERM received again"), "log:\n{log}");
    assert_kept_after_restart(&mut server).await;
}
