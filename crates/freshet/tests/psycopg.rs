//! Python's psycopg 3 against a real server: parameterized queries, a json
//! column returned as a dict, COPY, and transaction status as ReadyForQuery
//! reports it. The client code is `tests/clients/psycopg_client.py`.
//!
//! Skipped (with a message) only when python3 or psycopg is missing; `.ci/run`
//! installs psycopg and sets FRESHET_REQUIRE_CLIENTS=1, which turns a missing
//! client into a failure.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{clients_required, wait_bounded, TestServer};

fn python() -> String {
    std::env::var("FRESHET_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn psycopg_available() -> bool {
    let ok = Command::new(python())
        .args(["-c", "import psycopg"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if clients_required() {
            panic!("python3 with psycopg is not available but FRESHET_REQUIRE_CLIENTS is set");
        }
        eprintln!(
            "SKIPPED: python3 with psycopg is not available (python3 -m pip install 'psycopg[binary]')"
        );
    }
    ok
}

#[test]
fn psycopg_client() {
    if !psycopg_available() {
        return;
    }
    let server = TestServer::start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/psycopg_client.py");
    let mut child = Command::new(python())
        .arg(&script)
        .env("FRESHET_URI", server.uri())
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
        "psycopg client failed ({status:?})\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("all checks passed"),
        "the client did not finish its checks:\n{stdout}\n{stderr}"
    );
}
