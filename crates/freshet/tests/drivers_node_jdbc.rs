//! node-postgres and pgjdbc against a real server, each doing its users'
//! first hour:
//!
//! * node-postgres (`tests/clients/node_client.js`, with `pg-cursor` and
//!   `pg-copy-streams`; the packages pinned in `tests/clients/node/`, which
//!   `.ci/run` installs with `npm ci`): the types it infers for parameters
//!   and results, json/jsonb, dates, numeric, bytea, arrays, prepared and
//!   multi-row inserts, a cursor, COPY in and out, transactions and
//!   savepoints, errors with their SQLSTATEs, catalog queries, a pool;
//! * pgjdbc (`tests/clients/JdbcClient.java`, run as a single-file source
//!   against Debian's `/usr/share/java/postgresql.jar`): `executeBatch` row
//!   counts, server-side prepared statements past the prepareThreshold,
//!   `setFetchSize` streaming, savepoints, `DatabaseMetaData`, `CopyManager`,
//!   SQLSTATEs.
//!
//! Each runs against Freshet and, where SLT_REFERENCE_URL names a
//! PostgreSQL, against a new database there too, so what it asserts is
//! PostgreSQL's behaviour. Where Freshet is known to answer differently,
//! the script lists the test (KNOWN_FRESHET_DIFFERENCES): against Freshet
//! its failure is reported and tolerated, and its passing fails the run so
//! the list is kept current; against PostgreSQL every test must pass.
//!
//! Skipped (with a message) when node, the npm packages, java or the jar is
//! missing; `.ci/run` installs them and sets FRESHET_REQUIRE_CLIENTS=1, which
//! turns a missing client into a failure.

mod common;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{clients_required, wait_bounded, TestServer};

/// Whether `program --version` runs; a failure under FRESHET_REQUIRE_CLIENTS.
fn runs(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Skips (or, under FRESHET_REQUIRE_CLIENTS, fails) when `ok` is false.
fn available(ok: bool, what: &str) -> bool {
    if !ok {
        if clients_required() {
            panic!("{what} is not available but FRESHET_REQUIRE_CLIENTS is set (see .ci/run)");
        }
        eprintln!("SKIPPED: {what} is not available (see .ci/run)");
    }
    ok
}

fn clients_dir() -> PathBuf {
    common::manifest_dir().join("tests/clients")
}

fn pgjdbc_jar() -> PathBuf {
    std::env::var_os("FRESHET_PGJDBC_JAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/java/postgresql.jar"))
}

#[test]
fn node_postgres() {
    let modules = clients_dir().join("node/node_modules");
    let ok = runs("node", "--version")
        && ["pg", "pg-cursor", "pg-copy-streams"]
            .iter()
            .all(|m| modules.join(m).join("package.json").is_file());
    if !available(
        ok,
        "node with pg, pg-cursor and pg-copy-streams in tests/clients/node/node_modules (npm ci)",
    ) {
        return;
    }
    let script = clients_dir().join("node_client.js");
    let script = script.to_string_lossy().into_owned();
    run_everywhere(
        "node",
        &[script.as_str()],
        "freshet_node_client",
        "node-postgres: all checks passed",
    );
}

#[test]
fn pgjdbc() {
    let jar = pgjdbc_jar();
    let ok = runs("java", "-version") && jar.is_file();
    if !available(
        ok,
        &format!(
            "java with pgjdbc at {} (libpostgresql-jdbc-java)",
            jar.display()
        ),
    ) {
        return;
    }
    let jar = jar.to_string_lossy().into_owned();
    let program = clients_dir().join("JdbcClient.java");
    let program = program.to_string_lossy().into_owned();
    run_everywhere(
        "java",
        &["-cp", jar.as_str(), program.as_str()],
        "freshet_jdbc_client",
        "pgjdbc: all checks passed",
    );
}

/// Runs `program args` against a new Freshet server, then against a new
/// database `database` on the reference PostgreSQL if there is one.
fn run_everywhere(program: &str, args: &[&str], database: &str, done: &str) {
    let server = TestServer::start();
    run_client_at(program, args, &server.uri(), "freshet", done);
    if let Some(uri) = common::reference_database(database) {
        run_client_at(program, args, &uri, "postgres", done);
    }
}

/// Runs the client with FRESHET_URI and FRESHET_TARGET set; it must exit 0
/// and print `done`.
fn run_client_at(program: &str, args: &[&str], uri: &str, target: &str, done: &str) {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(clients_dir())
        .env("FRESHET_URI", uri)
        .env("FRESHET_TARGET", target)
        .env_remove("PGPASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let mut out_pipe = child.stdout.take().expect("stdout pipe");
    let mut err_pipe = child.stderr.take().expect("stderr pipe");
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
    let status = wait_bounded(&mut child, Duration::from_secs(300));
    let stdout = out_thread.join().expect("stdout reader");
    let stderr = err_thread.join().expect("stderr reader");
    // The known differences tolerated against Freshet, shown in the test log.
    for line in stdout
        .lines()
        .filter(|l| l.contains("KNOWN FRESHET DIFFERENCE"))
    {
        eprintln!("{line}");
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "{program} {args:?} against {target} ({uri}) failed ({status:?})\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains(done),
        "the client did not finish its checks against {target}:\n{stdout}\n{stderr}"
    );
}
