//! Shared harness for the integration tests: spawns real `freshet serve`
//! processes on free loopback ports with temporary data directories, waits until
//! they accept connections, and kills them when dropped.
//!
//! Every test talks to the server through the real wire protocol with a real
//! client (tokio-postgres, psql, psycopg, sqllogictest).

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod psql;
pub mod raw;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The server binary cargo built for this test run.
pub const FRESHET_BIN: &str = env!("CARGO_BIN_EXE_freshet");

/// The server binary the tests start: `FRESHET_TEST_BIN` if set (a packaged
/// binary, or this checkout's own `target/…/deps/freshet-<hash>` when
/// several checkouts share a target directory and so `FRESHET_BIN`), else
/// [`FRESHET_BIN`].
pub fn freshet_bin() -> String {
    std::env::var("FRESHET_TEST_BIN")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| FRESHET_BIN.to_owned())
}

/// How long a server may take to start accepting connections. Generous: CI
/// machines have 2 cores and may be running other test servers meanwhile.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(120);

/// Bound on how long a killed server may take to be reaped.
pub const EXIT_DEADLINE: Duration = Duration::from_secs(30);

/// Host, port and user of the PostgreSQL named by `SLT_REFERENCE_URL`
/// (`host=… port=… user=…`, trust authentication), if it is set.
pub fn reference_address() -> Option<(String, u16, String)> {
    let url = std::env::var("SLT_REFERENCE_URL").ok()?;
    let field = |name: &str| {
        url.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    };
    let host = field("host").unwrap_or_else(|| "127.0.0.1".into());
    let port = field("port").and_then(|p| p.parse().ok()).unwrap_or(5432);
    let user = field("user").unwrap_or_else(|| "postgres".into());
    Some((host, port, user))
}

/// A libpq URI for a new, empty database `name` on the reference
/// PostgreSQL (dropped first if an earlier run left it), if
/// `SLT_REFERENCE_URL` names one; for client scripts whose assertions must
/// hold on PostgreSQL as on Freshet.
pub fn reference_database(name: &str) -> Option<String> {
    let (host, port, user) = reference_address()?;
    let mut raw = raw::Raw::reference()?;
    raw.execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    raw.execute(&format!("CREATE DATABASE {name}"));
    Some(format!("postgresql://{user}@{host}:{port}/{name}"))
}

/// This crate's directory: cargo's `CARGO_MANIFEST_DIR` when it runs the
/// test, so a test binary reused from a build in another checkout (a shared
/// `CARGO_TARGET_DIR`) still finds this checkout's files.
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The workspace root (for `sql-tests/`, `tests/fixtures/`).
pub fn workspace_root() -> PathBuf {
    manifest_dir()
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// A port that was free a moment ago on 127.0.0.1. Another process may take it
/// before the server binds it; [`TestServer::start`] retries on a new port when
/// the bind fails.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot find a free port")
}

/// Whether missing external clients (psql, psycopg) must fail tests instead of
/// skipping them. `.ci/run` sets this, since it installs those clients.
pub fn clients_required() -> bool {
    std::env::var("FRESHET_REQUIRE_CLIENTS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Options for starting a server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Pass `--no-fsync` (default). Turn off where durability is under test.
    pub no_fsync: bool,
    /// `--superuser NAME`; the server's default (`freshet`) when `None`.
    pub superuser: Option<String>,
    /// `--superuser-password PW`.
    pub superuser_password: Option<String>,
    /// `--tls-cert` / `--tls-key`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `--model-dir DIR`.
    pub model_dir: Option<PathBuf>,
    /// Host part of `--listen` (the port is chosen by the harness).
    pub listen_host: String,
    /// Additional arguments appended after the others.
    pub extra_args: Vec<String>,
    /// The server's working directory (relative paths in its arguments
    /// resolve against it); the test's own when `None`.
    pub current_dir: Option<PathBuf>,
    /// Environment variables set for the server (after every `FRESHET_*`
    /// variable of the test's own environment was removed).
    pub env: Vec<(String, String)>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            no_fsync: true,
            superuser: None,
            superuser_password: None,
            tls: None,
            model_dir: None,
            listen_host: "127.0.0.1".into(),
            extra_args: Vec::new(),
            current_dir: None,
            env: Vec::new(),
        }
    }
}

impl ServerOptions {
    /// Default options (trust auth on loopback, `--no-fsync`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps fsync on (for durability tests).
    pub fn with_fsync(mut self) -> Self {
        self.no_fsync = false;
        self
    }

    /// Sets the bootstrap superuser's password.
    pub fn password(mut self, pw: &str) -> Self {
        self.superuser_password = Some(pw.into());
        self
    }

    /// Enables TLS with the given PEM files.
    pub fn tls(mut self, cert: &Path, key: &Path) -> Self {
        self.tls = Some((cert.to_path_buf(), key.to_path_buf()));
        self
    }

    /// Sets `--model-dir`.
    pub fn model_dir(mut self, dir: &Path) -> Self {
        self.model_dir = Some(dir.to_path_buf());
        self
    }

    /// Appends `args` to the `serve` arguments.
    pub fn with_extra(mut self, args: &[&str]) -> Self {
        self.extra_args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Sets the environment variable `name` for the server.
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The superuser name the server will have.
    pub fn superuser_name(&self) -> &str {
        self.superuser.as_deref().unwrap_or("freshet")
    }

    /// The `serve` arguments for `data_dir` and `port`.
    pub fn args(&self, data_dir: &Path, port: u16) -> Vec<String> {
        let mut args = vec![
            "serve".to_string(),
            "--data-dir".to_string(),
            data_dir.display().to_string(),
            "--listen".to_string(),
            format!("{}:{}", self.listen_host, port),
        ];
        if self.no_fsync {
            args.push("--no-fsync".into());
        }
        if let Some(user) = &self.superuser {
            args.push("--superuser".into());
            args.push(user.clone());
        }
        if let Some(pw) = &self.superuser_password {
            args.push("--superuser-password".into());
            args.push(pw.clone());
        }
        if let Some((cert, key)) = &self.tls {
            args.push("--tls-cert".into());
            args.push(cert.display().to_string());
            args.push("--tls-key".into());
            args.push(key.display().to_string());
        }
        if let Some(dir) = &self.model_dir {
            args.push("--model-dir".into());
            args.push(dir.display().to_string());
        }
        // The HTTP endpoint's default port would be shared by every test
        // server; a free one is picked unless the test chooses.
        if !self.extra_args.iter().any(|a| a == "--http-listen") {
            args.push("--http-listen".into());
            args.push("127.0.0.1:0".into());
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// A running `freshet serve` process on a loopback port. Killed (SIGKILL) and
/// reaped when dropped. When the test is failing, the tail of the server log
/// is printed; the temporary directory is removed unless
/// `FRESHET_KEEP_TEST_DIRS` is set.
pub struct TestServer {
    child: Option<Child>,
    port: u16,
    opts: ServerOptions,
    root: Option<TempDir>,
    data_dir: PathBuf,
    log_path: PathBuf,
    /// How many times a process was started on this data directory.
    starts: usize,
}

impl TestServer {
    /// Starts a server with default options (trust, `--no-fsync`).
    pub fn start() -> TestServer {
        Self::start_with(ServerOptions::default())
    }

    /// Starts a server with `opts` on a fresh temporary data directory.
    pub fn start_with(opts: ServerOptions) -> TestServer {
        let root = tempfile::Builder::new()
            .prefix("freshet-test-")
            .tempdir()
            .expect("create temp dir");
        let data_dir = root.path().join("data");
        let mut server = TestServer {
            child: None,
            port: 0,
            opts,
            log_path: root.path().join("server.log"),
            root: Some(root),
            data_dir,
            starts: 0,
        };
        server.spawn_and_wait();
        server
    }

    /// Starts (or restarts) the process on this server's data directory,
    /// retrying on a new port if the chosen one was taken meanwhile.
    fn spawn_and_wait(&mut self) {
        const ATTEMPTS: usize = 5;
        let mut last_error = String::new();
        for _ in 0..ATTEMPTS {
            let port = free_port();
            match self.try_spawn(port) {
                Ok(()) => return,
                Err(SpawnError::PortTaken(msg)) => {
                    last_error = msg;
                    continue;
                }
                Err(SpawnError::Failed(msg)) => panic!("{msg}"),
            }
        }
        panic!("could not start freshet after {ATTEMPTS} attempts: {last_error}");
    }

    fn try_spawn(&mut self, port: u16) -> Result<(), SpawnError> {
        self.starts += 1;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open server log");
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let args = self.opts.args(&self.data_dir, port);
        let bin = freshet_bin();
        let mut command = Command::new(&bin);
        command.args(&args);
        if let Some(dir) = &self.opts.current_dir {
            command.current_dir(dir);
        }
        // Only the options decide the settings, never the test's environment.
        remove_freshet_env(&mut command);
        command.envs(self.opts.env.iter().map(|(k, v)| (k, v)));
        // FRESHET_TEST_LOG=debug (say) turns up the servers' logging.
        if let Ok(filter) = std::env::var("FRESHET_TEST_LOG") {
            command.env("RUST_LOG", filter);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {bin}: {e}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                let output = read_from(&self.log_path, log_start);
                let msg = format!(
                    "freshet {} exited during start-up with {status}; output:\n{output}",
                    args.join(" ")
                );
                let lower = output.to_ascii_lowercase();
                return Err(
                    if lower.contains("address already in use") || lower.contains("addrinuse") {
                        SpawnError::PortTaken(msg)
                    } else {
                        SpawnError::Failed(msg)
                    },
                );
            }
            if startup_answered(&addr, self.opts.superuser_name()) {
                self.child = Some(child);
                self.port = port;
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SpawnError::Failed(format!(
                    "freshet did not accept connections on {addr} within {STARTUP_DEADLINE:?}; output:\n{}",
                    read_from(&self.log_path, log_start)
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A scratch directory beside the data directory, removed with the server.
    pub fn scratch_dir(&self) -> PathBuf {
        let dir = self.root.as_ref().expect("root").path().join("scratch");
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        dir
    }

    /// The options the server was started with.
    pub fn options(&self) -> &ServerOptions {
        &self.opts
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is not running").id()
    }

    /// Everything the server processes printed so far.
    pub fn log(&self) -> String {
        read_from(&self.log_path, 0)
    }

    /// A tokio-postgres config for the superuser and the default database.
    pub fn config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(self.host())
            .port(self.port)
            .user(self.opts.superuser_name())
            .dbname("freshet")
            .application_name("freshet-tests")
            .connect_timeout(Duration::from_secs(30));
        if let Some(pw) = &self.opts.superuser_password {
            config.password(pw.as_str());
        }
        config
    }

    /// A libpq connection URI for the superuser (for psql and psycopg).
    pub fn uri(&self) -> String {
        let user = self.opts.superuser_name();
        match &self.opts.superuser_password {
            Some(pw) => format!(
                "postgresql://{user}:{pw}@{}:{}/freshet?sslmode=disable",
                self.host(),
                self.port
            ),
            None => format!(
                "postgresql://{user}@{}:{}/freshet?sslmode=disable",
                self.host(),
                self.port
            ),
        }
    }

    /// Connects as the superuser to the default database.
    pub async fn connect(&self) -> tokio_postgres::Client {
        let config = self.config();
        connect_config(&config).await.unwrap_or_else(|e| {
            panic!(
                "connect to {}: {e:?}\nserver log:\n{}",
                self.port,
                self.log()
            )
        })
    }

    /// Connects with a custom config, returning the error instead of panicking.
    pub async fn try_connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        connect_config(config).await
    }

    /// Sends SIGKILL to the server process and reaps it: a crash, with no chance
    /// to flush or checkpoint anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            wait_bounded(&mut child, EXIT_DEADLINE);
        }
    }

    /// Starts a new process on the same data directory (after [`Self::kill9`]
    /// or [`Self::stop`]), waiting until it accepts connections.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn_and_wait();
    }

    /// Sends `signal` (`TERM`, `INT`, …) to the server process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {signal} failed: {status}");
    }

    /// Waits (at most `deadline`) for the process to exit by itself and
    /// returns its status; kills it and panics if it did not.
    pub fn wait_for_exit(&mut self, deadline: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("server is not running");
        let end = Instant::now() + deadline;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server did not exit within {deadline:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (at most `deadline`) until the server's output contains
    /// `needle`; panics with the output if it does not.
    pub async fn wait_for_log(&self, needle: &str, deadline: Duration) -> String {
        poll_until(
            deadline,
            &format!("{needle:?} in the server log"),
            || async {
                let log = self.log();
                log.contains(needle).then_some(log)
            },
        )
        .await
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().map(|s| s.is_none()).unwrap_or(false),
            None => false,
        }
    }

    /// Peak resident memory of the server process in KiB (`VmHWM`), if known.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
        let keep = std::env::var_os("FRESHET_KEEP_TEST_DIRS").is_some();
        if std::thread::panicking() {
            let log = self.log();
            let tail: String = {
                let lines: Vec<&str> = log.lines().collect();
                let start = lines.len().saturating_sub(60);
                lines[start..].join("\n")
            };
            eprintln!(
                "---- freshet server log (port {}, last 60 lines) ----\n{tail}\n---- end of server log \
                 (FRESHET_KEEP_TEST_DIRS=1 keeps the data directory) ----",
                self.port
            );
        }
        if keep {
            if let Some(root) = self.root.take() {
                let path = root.keep();
                eprintln!("kept test directory {}", path.display());
            }
        }
    }
}

/// Whether the server at `addr` answers a StartupMessage with anything but
/// "starting up" (57P03): an authentication request, AuthenticationOk, or an
/// error about the request itself all mean it is serving connections.
fn startup_answered(addr: &SocketAddr, user: &str) -> bool {
    use std::io::Write;
    let Ok(mut stream) = TcpStream::connect_timeout(addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let mut body = Vec::new();
    body.extend_from_slice(&196_608i32.to_be_bytes()); // protocol 3.0
    for (k, v) in [("user", user), ("database", "freshet")] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    if stream.write_all(&msg).is_err() {
        return false;
    }
    let mut header = [0u8; 5];
    if stream.read_exact(&mut header).is_err() {
        return false;
    }
    if header[0] != b'E' {
        return true;
    }
    let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    let mut fields = vec![0u8; (len.max(4) - 4) as usize];
    if stream.read_exact(&mut fields).is_err() {
        return false;
    }
    // Fields are (type byte, NUL-terminated string)*; 'C' is the SQLSTATE.
    !fields
        .split(|b| *b == 0)
        .any(|f| f.first() == Some(&b'C') && &f[1..] == b"57P03")
}

enum SpawnError {
    PortTaken(String),
    Failed(String),
}

/// Removes every `FRESHET_*` variable from `command`'s environment: each
/// may set a server setting.
pub fn remove_freshet_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FRESHET_") {
            command.env_remove(name);
        }
    }
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut out = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.seek(SeekFrom::Start(offset));
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        out = String::from_utf8_lossy(&bytes).into_owned();
    }
    out
}

/// Waits for `child` to exit, killing it if it has not within `deadline`.
pub fn wait_bounded(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + deadline;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                return child.wait().ok();
            }
        }
    }
}

/// Connects without TLS and drives the connection on a background task.
pub async fn connect_config(
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        // The error (if any) surfaces on the client's next request.
        let _ = connection.await;
    });
    Ok(client)
}

/// Polls `check` until it returns `Some` or `deadline` passes.
pub async fn poll_until<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > end {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The SQLSTATE of a tokio-postgres error, or a description of why it has none.
pub fn sqlstate(err: &tokio_postgres::Error) -> String {
    match err.code() {
        Some(code) => code.code().to_string(),
        None => format!("<no SQLSTATE: {err:?}>"),
    }
}

/// Asserts that `result` failed with SQLSTATE `code`, showing the SQL on failure.
#[track_caller]
pub fn assert_sqlstate<T: std::fmt::Debug>(
    result: Result<T, tokio_postgres::Error>,
    code: &str,
    sql: &str,
) {
    match result {
        Ok(v) => panic!("expected SQLSTATE {code} from `{sql}`, but it succeeded: {v:?}"),
        Err(e) => assert_eq!(
            sqlstate(&e),
            code,
            "wrong SQLSTATE for `{sql}`: {}",
            e.as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string())
        ),
    }
}

/// A small deterministic PRNG (xorshift64*), so randomized tests can print and
/// replay their seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (0 is remapped).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// A seed from `var` if set, else from the clock.
    pub fn seed_from_env(var: &str) -> u64 {
        std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(42)
            })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(hi > lo);
        lo + self.next_u64() % (hi - lo)
    }
}

/// Sends `chunks` as COPY … FROM STDIN data (each chunk one CopyData
/// message) and returns the row count the server reports.
pub async fn copy_in(
    client: &tokio_postgres::Client,
    sql: &str,
    chunks: &[&[u8]],
) -> Result<u64, tokio_postgres::Error> {
    use futures::SinkExt;
    let mut sink = Box::pin(client.copy_in::<_, bytes::Bytes>(sql).await?);
    for chunk in chunks {
        sink.send(bytes::Bytes::copy_from_slice(chunk)).await?;
    }
    sink.as_mut().finish().await
}

/// The rows `sql` returns over the simple protocol, as text (`NULL` for
/// NULL); panics with the server's message if it fails.
pub async fn text_rows(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<String>> {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("`{sql}` failed: {}", server_message(&e)));
    messages
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The rows `sql` returns over the simple protocol, as text (`None` for
/// NULL); panics with the server's message and SQLSTATE if it fails.
pub async fn simple_rows(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("`{sql}` failed: {} [{}]", server_message(&e), sqlstate(&e)))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

/// Asserts that the last finished refresh `client` can see in the refresh
/// history failed, with `reason` in its message.
pub async fn assert_last_refresh_failed(client: &tokio_postgres::Client, reason: &str) {
    let last = simple_rows(
        client,
        "SELECT state, state_message FROM information_schema.dynamic_table_refresh_history \
         WHERE state <> 'SCHEDULED' ORDER BY refresh_start_time DESC LIMIT 1",
    )
    .await;
    assert_eq!(
        last.first().and_then(|row| row[0].as_deref()),
        Some("FAILED"),
        "{last:?}"
    );
    assert!(
        last[0][1].as_deref().is_some_and(|m| m.contains(reason)),
        "expected {reason:?} in {last:?}"
    );
}

/// Runs `sql` (one or more statements); panics with the server's message if
/// it fails.
pub async fn exec_ok(client: &tokio_postgres::Client, sql: &str) {
    if let Err(e) = client.batch_execute(sql).await {
        panic!("`{sql}` failed: {}", server_message(&e));
    }
}

fn server_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}
