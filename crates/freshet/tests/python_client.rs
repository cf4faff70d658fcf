//! The Python client (`clients/python`, the `freshet` package) against a real
//! server: starts one and runs its pytest suite (`clients/python/tests`) with
//! the server's address in FRESHET_HOST / FRESHET_PORT. The suite runs the
//! issue's Snowpark example, compares every DataFrame method with the same
//! SQL, round-trips scikit-learn models through the registry and checks the
//! client's errors.
//!
//! Skipped (with a message) only when Python or one of the test's packages is
//! missing; `.ci/run` installs them (clients/python/requirements-test.txt) and
//! sets FRESHET_REQUIRE_CLIENTS=1, which turns a missing package into a
//! failure.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{clients_required, wait_bounded, workspace_root, TestServer};

fn python() -> String {
    std::env::var("FRESHET_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// The packages the suite imports (see clients/python/requirements-test.txt).
const MODULES: &str =
    "psycopg, pytest, pandas, pyarrow, numpy, sklearn, skl2onnx, onnx, onnxruntime, xgboost, lightgbm, onnxmltools";

fn packages_available() -> bool {
    let output = Command::new(python())
        .args(["-c", &format!("import {MODULES}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    let ok = output.as_ref().is_ok_and(|o| o.status.success());
    if !ok {
        let why = output
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .unwrap_or_else(|e| e.to_string());
        if clients_required() {
            panic!(
                "the Python client's test packages are missing but FRESHET_REQUIRE_CLIENTS is set: {why}"
            );
        }
        eprintln!(
            "SKIPPED: python3 lacks the client's test packages \
             (python3 -m pip install -r clients/python/requirements-test.txt): {why}"
        );
    }
    ok
}

#[test]
fn python_client_suite() {
    if !packages_available() {
        return;
    }
    let server = TestServer::start();
    let root = workspace_root();
    let mut child = Command::new(python())
        .args([
            "-m",
            "pytest",
            "clients/python/tests",
            "-q",
            "-p",
            "no:cacheprovider",
        ])
        .current_dir(&root)
        .env("FRESHET_HOST", server.host())
        .env("FRESHET_PORT", server.port().to_string())
        .env("FRESHET_USER", server.options().superuser_name())
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PGPASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3 -m pytest");
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
    let status = wait_bounded(&mut child, Duration::from_secs(900));
    let stdout = out_thread.join().expect("stdout thread");
    let stderr = err_thread.join().expect("stderr thread");
    assert!(
        status.is_some_and(|s| s.success()),
        "the Python client's tests failed ({status:?})\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains(" passed") && !stdout.contains(" skipped"),
        "pytest ran nothing, or skipped tests:\n{stdout}\n{stderr}"
    );
}
