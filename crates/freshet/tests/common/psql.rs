//! Running the real `psql` against a test server.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{clients_required, wait_bounded, TestServer};

/// How long one psql run may take before it is killed.
pub const PSQL_DEADLINE: Duration = Duration::from_secs(180);

/// Whether `program --version` runs. Panics when it does not and
/// `FRESHET_REQUIRE_CLIENTS` is set; otherwise prints why the test skips
/// (`hint` says how to install it).
pub fn client_available(program: &str, hint: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if clients_required() {
            panic!("{program} is not installed but FRESHET_REQUIRE_CLIENTS is set");
        }
        eprintln!("SKIPPED: {program} is not installed{hint}");
    }
    found
}

/// Whether psql is installed (see [`client_available`]).
pub fn psql_available() -> bool {
    client_available("psql", " (apt-get install postgresql-client)")
}

/// `psql -X -v ON_ERROR_STOP=1 -d <server>` run in `cwd`, with the
/// environment cleared of anything that would change what it does, and
/// stdout/stderr piped.
pub fn psql_command(server: &TestServer, cwd: &Path) -> Command {
    let mut cmd = Command::new("psql");
    cmd.arg("-X")
        .args(["-v", "ON_ERROR_STOP=1"])
        .args(["-d", &server.uri()])
        .current_dir(cwd)
        .env("PGCONNECT_TIMEOUT", "30")
        .env("PAGER", "cat")
        .env("PSQL_PAGER", "cat")
        .env("COLUMNS", "200")
        .env_remove("PGPASSWORD")
        .env_remove("PGSERVICE")
        .env_remove("PGOPTIONS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// What a finished psql printed.
#[derive(Debug)]
pub struct PsqlOutput {
    /// The exit code (`None` if killed).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl PsqlOutput {
    /// Panics, showing everything psql printed, unless it exited 0 without
    /// printing an error.
    #[track_caller]
    pub fn assert_success(&self, what: &str) {
        assert!(
            self.code == Some(0) && !self.stderr.contains("ERROR"),
            "{what}: psql exited with {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
    }
}

/// Runs `cmd` (from [`psql_command`]) to completion, feeding it `stdin`.
/// Bounded by [`PSQL_DEADLINE`].
pub fn run_psql(mut cmd: Command, stdin: &str) -> PsqlOutput {
    let mut child = cmd.stdin(Stdio::piped()).spawn().expect("spawn psql");
    let input = stdin.to_owned();
    let mut pipe = child.stdin.take().expect("psql stdin");
    // On a thread: psql may fill its output pipes before reading all input.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(input.as_bytes());
    });
    let (out, err) = drain(&mut child);
    let status = wait_bounded(&mut child, PSQL_DEADLINE);
    let _ = writer.join();
    PsqlOutput {
        code: status.and_then(|s| s.code()),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Reads a child's stdout and stderr to their ends on threads of their own.
pub fn drain(child: &mut Child) -> (JoinHandle<String>, JoinHandle<String>) {
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    (
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        }),
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        }),
    )
}
