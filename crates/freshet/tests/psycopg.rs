//! Python drivers against a real server:
//!
//! * psycopg 3 (`tests/clients/psycopg_client.py`): parameterized queries, a
//!   json column returned as a dict, COPY, type lookups, and transaction
//!   status as ReadyForQuery reports it;
//! * psycopg2, asyncpg, and SQLAlchemy with pandas over both psycopg drivers
//!   (`tests/clients/drivers_client.py`): each one's usual path (batched
//!   inserts, server-side cursors, `to_sql`/`read_sql`).
//!
//! Each script runs against Freshet and, where SLT_REFERENCE_URL names a
//! PostgreSQL, against a new database there too, so what it asserts is
//! PostgreSQL's behaviour.
//!
//! Skipped (with a message) only when python3 or a driver is missing;
//! `.ci/run` installs them and sets FRESHET_REQUIRE_CLIENTS=1, which turns a
//! missing client into a failure.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{clients_required, wait_bounded, TestServer};

fn python() -> String {
    std::env::var("FRESHET_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Whether python3 can import `modules`; a failure under
/// FRESHET_REQUIRE_CLIENTS.
fn python_has(modules: &str) -> bool {
    let ok = Command::new(python())
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if clients_required() {
            panic!("python3 with {modules} is not available but FRESHET_REQUIRE_CLIENTS is set");
        }
        eprintln!("SKIPPED: python3 with {modules} is not available (see .ci/run)");
    }
    ok
}

#[test]
fn psycopg_client() {
    if python_has("psycopg") {
        run_client("psycopg_client.py", "psycopg client: all checks passed");
    }
}

#[test]
fn psycopg2_asyncpg_and_sqlalchemy() {
    if python_has("psycopg, psycopg2, asyncpg, sqlalchemy, pandas") {
        run_client("drivers_client.py", "python drivers: all checks passed");
    }
}

/// Runs `tests/clients/<script>` against a new server, and against the
/// reference PostgreSQL if there is one; it must exit 0 and print `done`.
fn run_client(script: &str, done: &str) {
    let server = TestServer::start();
    run_client_at(script, done, &server.uri());
    let database = format!("freshet_{}", script.trim_end_matches(".py"));
    if let Some(uri) = common::reference_database(&database) {
        run_client_at(script, done, &uri);
    }
}

/// Runs `tests/clients/<script>` with `FRESHET_URI` set to `uri`.
fn run_client_at(script: &str, done: &str, uri: &str) {
    let script = common::manifest_dir().join("tests/clients").join(script);
    let mut child = Command::new(python())
        .arg(&script)
        .env("FRESHET_URI", uri)
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("PGPASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
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
    let status = wait_bounded(&mut child, Duration::from_secs(180));
    let stdout = out_thread.join().unwrap();
    let stderr = err_thread.join().unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "{} against {uri} failed ({status:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        script.display()
    );
    assert!(
        stdout.contains(done),
        "the client did not finish its checks:\n{stdout}\n{stderr}"
    );
}
