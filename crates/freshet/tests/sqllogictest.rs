//! Runs every `sql-tests/**/*.slt` file through the real wire protocol with the
//! `sqllogictest-engines` Postgres engines: once with the simple query protocol
//! and once with the extended protocol, each run on its own fresh server.
//!
//! All runs happen (a failing file does not stop the others, and a failing
//! record does not stop its file); the test then fails listing every failing
//! file and protocol with each failing record's SQL, location and diff.
//!
//! Records can be limited to Freshet with `onlyif freshet` (the runner adds
//! that label), e.g. for `SHOW TABLES` or cross-database names. The labels
//! `simple-protocol` and `extended-protocol` name the run, for the few records
//! whose outcome depends on the protocol (a missing parameter is caught by
//! the client under the extended protocol, by the server under the simple one).
//!
//! Environment:
//! * `SLT_FILTER=substr` — only files whose path contains `substr`;
//! * `SLT_JOBS=n` — files run in parallel (default 2);
//! * `SLT_DIR=dir` — run the files under `dir` instead of `sql-tests/`;
//! * `SLT_REFERENCE_URL='host=… port=… user=…'` — the second test,
//!   [`sqllogictest_files_match_postgresql`], runs the same files against that
//!   real PostgreSQL too (each in a new database, with the label
//!   `postgres-reference` instead of `freshet`), so that every expected result
//!   is what PostgreSQL itself answers, not our guess. `.ci/run` starts a
//!   PostgreSQL 15 and sets it; without it that test is skipped, unless
//!   `FRESHET_REQUIRE_CLIENTS` is set, when it fails.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{workspace_root, ServerOptions, TestServer};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, MakeConnection, Record, Runner};
use sqllogictest_engines::postgres::{PostgresConfig, PostgresExtended, PostgresSimple};

/// Bound on one file's run, so a hung statement fails the test instead of CI.
const FILE_DEADLINE: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Simple,
    Extended,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Simple => "simple",
            Protocol::Extended => "extended",
        }
    }
}

fn collect_slt(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_slt(&path, out);
        } else if path.extension().is_some_and(|e| e == "slt") {
            out.push(path);
        }
    }
}

fn slt_files() -> Vec<PathBuf> {
    let root = std::env::var_os("SLT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("sql-tests"));
    let mut files = Vec::new();
    collect_slt(&root, &mut files);
    files.sort();
    if let Ok(filter) = std::env::var("SLT_FILTER") {
        files.retain(|f| f.to_string_lossy().contains(&filter));
    }
    files
}

fn display_path(path: &Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// An engine error as text. tokio-postgres displays every server error as just
/// "db error", which would leave `statement error <regex>` nothing to match, so
/// this shows the server's severity, message and SQLSTATE. A panic of the
/// client engine (the extended engine panics on result types it cannot decode)
/// becomes an error too, so the runner reports the SQL and its location.
#[derive(Debug)]
enum PgError {
    Client(tokio_postgres::Error),
    Panic(String),
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let err = match self {
            PgError::Panic(msg) => {
                return write!(
                    f,
                    "the client engine panicked (result type it cannot decode?): {msg}"
                )
            }
            PgError::Client(err) => err,
        };
        match err.as_db_error() {
            Some(db) => {
                write!(
                    f,
                    "{}: {} (SQLSTATE {})",
                    db.severity(),
                    db.message(),
                    db.code().code()
                )?;
                if let Some(detail) = db.detail() {
                    write!(f, "; DETAIL: {detail}")?;
                }
                if let Some(hint) = db.hint() {
                    write!(f, "; HINT: {hint}")?;
                }
                Ok(())
            }
            None => {
                write!(f, "{err}")?;
                match std::error::Error::source(err) {
                    Some(source) => write!(f, ": {source}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PgError::Client(err) => Some(err),
            PgError::Panic(_) => None,
        }
    }
}

/// Wraps a `sqllogictest-engines` Postgres engine so that its errors show the
/// server's message (see [`PgError`]).
struct Engine<D>(D);

#[async_trait::async_trait]
impl<D> AsyncDB for Engine<D>
where
    D: AsyncDB<Error = tokio_postgres::Error, ColumnType = DefaultColumnType> + Send,
{
    type Error = PgError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, PgError> {
        use futures::FutureExt;
        match std::panic::AssertUnwindSafe(self.0.run(sql))
            .catch_unwind()
            .await
        {
            Ok(result) => result.map_err(PgError::Client),
            Err(payload) => Err(PgError::Panic(panic_message(payload))),
        }
    }

    async fn shutdown(&mut self) {
        self.0.shutdown().await
    }

    fn engine_name(&self) -> &str {
        self.0.engine_name()
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await
    }

    fn error_sql_state(err: &PgError) -> Option<String> {
        match err {
            PgError::Client(err) => err.code().map(|c| c.code().to_string()),
            PgError::Panic(_) => None,
        }
    }
}

/// Runs one file with one connection maker, bounded by [`FILE_DEADLINE`].
/// Reported failing records per file (the rest are counted).
const MAX_REPORTED_PER_FILE: usize = 25;

/// Runs every record of one file, continuing after failures so that one run
/// reports every failing record, bounded by [`FILE_DEADLINE`].
async fn run_file<D, M>(make: M, labels: &[&str], file: &Path) -> Result<(), String>
where
    D: AsyncDB<ColumnType = DefaultColumnType>,
    M: MakeConnection<Conn = D>,
{
    let records = sqllogictest::parse_file::<DefaultColumnType>(file)
        .map_err(|e| format!("cannot parse {}: {e}", file.display()))?;
    let mut runner = Runner::new(make);
    for label in labels {
        runner.add_label(label);
    }
    let mut failures: Vec<String> = Vec::new();
    let run_all = async {
        for record in records {
            if let Record::Halt { .. } = record {
                break;
            }
            if let Err(e) = runner.run_async(record).await {
                failures.push(e.display(false).to_string());
            }
        }
    };
    let timed_out = tokio::time::timeout(FILE_DEADLINE, run_all).await.is_err();
    // Closing connections may itself hang on a broken server; bound it too.
    let _ = tokio::time::timeout(Duration::from_secs(30), runner.shutdown_async()).await;
    if failures.is_empty() && !timed_out {
        return Ok(());
    }
    let mut report = format!("{} failing record(s)", failures.len());
    if timed_out {
        report.push_str(&format!(
            "; TIMED OUT after {FILE_DEADLINE:?} (a statement hung?)"
        ));
    }
    report.push('\n');
    for f in failures.iter().take(MAX_REPORTED_PER_FILE) {
        report.push('\n');
        report.push_str(f.trim_end());
        report.push('\n');
    }
    if failures.len() > MAX_REPORTED_PER_FILE {
        report.push_str(&format!(
            "\n... and {} more\n",
            failures.len() - MAX_REPORTED_PER_FILE
        ));
    }
    Err(report)
}

async fn run_protocol(
    config: PostgresConfig,
    protocol: Protocol,
    label: &str,
    file: &Path,
) -> Result<(), String> {
    match protocol {
        Protocol::Simple => {
            let make = move || {
                let config = config.clone();
                async move {
                    PostgresSimple::connect(config)
                        .await
                        .map(Engine)
                        .map_err(PgError::Client)
                }
            };
            run_file(make, &[label, "simple-protocol"], file).await
        }
        Protocol::Extended => {
            let make = move || {
                let config = config.clone();
                async move {
                    PostgresExtended::connect(config)
                        .await
                        .map(Engine)
                        .map_err(PgError::Client)
                }
            };
            run_file(make, &[label, "extended-protocol"], file).await
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `file` on a fresh Freshet server.
fn run_on_freshet(file: &Path, protocol: Protocol) -> Result<(), String> {
    let models = workspace_root().join("tests/fixtures/models");
    let mut opts = ServerOptions::new();
    if models.is_dir() {
        opts = opts.model_dir(&models);
    }
    let mut server = TestServer::start_with(opts);
    let result = runtime().block_on(run_protocol(server.config(), protocol, "freshet", file));
    if !server.is_running() {
        let log = server.log();
        return Err(format!(
            "{}\nTHE SERVER PROCESS DIED during this file. Server output:\n{log}",
            result.err().unwrap_or_default()
        ));
    }
    result
}

/// Runs `file` on a reference PostgreSQL, in a new database.
fn run_on_reference(url: &str, file: &Path, protocol: Protocol, n: usize) -> Result<(), String> {
    runtime().block_on(async {
        let admin_config: PostgresConfig = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let admin = common::connect_config(&admin_config)
            .await
            .map_err(|e| format!("connect to reference: {}", PgError::Client(e)))?;
        let db = format!("slt_reference_{}_{n}", std::process::id());
        for sql in [
            format!("DROP DATABASE IF EXISTS {db}"),
            format!("CREATE DATABASE {db}"),
        ] {
            admin
                .batch_execute(&sql)
                .await
                .map_err(|e| format!("{sql}: {}", PgError::Client(e)))?;
        }
        let mut config = admin_config.clone();
        config.dbname(&db);
        let result = run_protocol(config, protocol, "postgres-reference", file).await;
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await;
        result
    })
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

struct Outcome {
    file: String,
    protocol: Protocol,
    result: Result<(), String>,
}

/// Every file on Freshet, over both protocols.
#[test]
fn sqllogictest_files() {
    run_suite(None);
}

/// Every file on a real PostgreSQL (records marked `onlyif freshet` skipped),
/// so the expectations Freshet is held to are PostgreSQL's own answers.
#[test]
fn sqllogictest_files_match_postgresql() {
    match std::env::var("SLT_REFERENCE_URL") {
        Ok(url) if !url.is_empty() => run_suite(Some(url)),
        _ if common::clients_required() => panic!(
            "SLT_REFERENCE_URL is not set: the .slt expectations must be checked against \
             a real PostgreSQL (.ci/run starts one)"
        ),
        _ => eprintln!(
            "SLT_REFERENCE_URL is not set: not checking the .slt files against PostgreSQL"
        ),
    }
}

fn run_suite(reference: Option<String>) {
    let files = slt_files();
    assert!(
        !files.is_empty(),
        "no .slt files found under {} (SLT_FILTER={:?})",
        std::env::var("SLT_DIR")
            .unwrap_or_else(|_| format!("{}/sql-tests", workspace_root().display())),
        std::env::var("SLT_FILTER").ok()
    );
    let jobs: Vec<(usize, PathBuf, Protocol)> = files
        .iter()
        .flat_map(|f| [Protocol::Simple, Protocol::Extended].map(|p| (f.clone(), p)))
        .enumerate()
        .map(|(i, (f, p))| (i, f, p))
        .collect();
    let total = jobs.len();
    // PostgreSQL refuses concurrent CREATE DATABASE from the same template,
    // so reference runs go one at a time.
    let parallelism: usize = if reference.is_some() {
        1
    } else {
        std::env::var("SLT_JOBS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2)
            .max(1)
    };

    let queue = Arc::new(Mutex::new(jobs));
    let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let workers: Vec<_> = (0..parallelism)
        .map(|_| {
            let queue = queue.clone();
            let outcomes = outcomes.clone();
            let reference = reference.clone();
            std::thread::spawn(move || loop {
                let job = queue.lock().unwrap().pop();
                let Some((n, file, protocol)) = job else {
                    break;
                };
                let reference = reference.clone();
                let job_file = file.clone();
                // Each run gets its own thread so that a panic (e.g. a type the
                // extended engine cannot decode) is reported, not fatal.
                let handle = std::thread::Builder::new()
                    .name(format!("slt-{}", display_path(&file)))
                    .spawn(move || match &reference {
                        Some(url) => run_on_reference(url, &job_file, protocol, n),
                        None => run_on_freshet(&job_file, protocol),
                    })
                    .expect("spawn slt thread");
                let result = match handle.join() {
                    Ok(r) => r,
                    Err(payload) => Err(format!("PANIC: {}", panic_message(payload))),
                };
                let file = display_path(&file);
                match &result {
                    Ok(()) => eprintln!("slt {file} [{}] ... ok", protocol.name()),
                    Err(_) => eprintln!("slt {file} [{}] ... FAILED", protocol.name()),
                }
                outcomes.lock().unwrap().push(Outcome {
                    file,
                    protocol,
                    result,
                });
            })
        })
        .collect();
    for w in workers {
        w.join().expect("slt worker thread");
    }

    let mut outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    outcomes.sort_by(|a, b| (&a.file, a.protocol.name()).cmp(&(&b.file, b.protocol.name())));
    assert_eq!(outcomes.len(), total, "every file must have run");
    let failures: Vec<&Outcome> = outcomes.iter().filter(|o| o.result.is_err()).collect();
    let target = if reference.is_some() {
        "reference PostgreSQL"
    } else {
        "freshet"
    };
    eprintln!(
        "sqllogictest against {target}: {} passed, {} failed ({} files x 2 protocols)",
        total - failures.len(),
        failures.len(),
        files.len()
    );
    if !failures.is_empty() {
        let mut report = String::new();
        for f in &failures {
            report.push_str(&format!(
                "\n==== {} [{} protocol] ====\n{}\n",
                f.file,
                f.protocol.name(),
                f.result.as_ref().err().unwrap()
            ));
        }
        let summary: Vec<String> = failures
            .iter()
            .map(|f| format!("  {} [{}]", f.file, f.protocol.name()))
            .collect();
        panic!(
            "{} of {total} sqllogictest runs failed:\n{}\n{report}",
            failures.len(),
            summary.join("\n")
        );
    }
}
