//! The settings of `freshet serve` and where each comes from.
//!
//! Every setting can be given as a flag (`--data-dir`), an environment
//! variable (`FRESHET_DATA_DIR`) or a key of the TOML file named by
//! `--config` (`data-dir`); the first of these that is present wins, and the
//! built-in default applies when none is. Flags and environment variables are
//! read by clap (each flag declares its variable), the file by `toml` and
//! serde; values given as text (sizes, durations, addresses) go through the
//! same parser whichever of the three they come from. An unknown key in the
//! file, or a value that does not parse, stops the start with a message
//! naming the key or variable.
//!
//! [`Settings`] holds the result, each value with its [`Source`];
//! `--print-config` shows it ([`Settings::render`]) without the superuser
//! password.

use std::ffi::OsString;
use std::fmt::{self, Write as _};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use serde::Deserialize;

/// The `serve` flags that are settings; each also reads `FRESHET_<NAME>`
/// and the file key `<name>` (the flag without its dashes).
#[derive(Debug, Args)]
pub struct SettingArgs {
    /// Directory holding tables, the WAL and the catalog (created if
    /// missing). [default: ./freshet-data]
    #[arg(long, value_name = "DIR", env = "FRESHET_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address to listen on. Non-loopback addresses require
    /// --superuser-password. [default: 127.0.0.1:5433]
    #[arg(long, value_name = "HOST:PORT", env = "FRESHET_LISTEN")]
    pub listen: Option<String>,

    /// Name of the bootstrap superuser. [default: freshet]
    #[arg(long, value_name = "NAME", env = "FRESHET_SUPERUSER")]
    pub superuser: Option<String>,

    /// Password of the bootstrap superuser; enables SCRAM-SHA-256 for it.
    /// Never printed.
    #[arg(
        long,
        value_name = "PW",
        env = "FRESHET_SUPERUSER_PASSWORD",
        hide_env_values = true
    )]
    pub superuser_password: Option<String>,

    /// The only directory `CREATE MODEL … FROM '<path>'` may read model
    /// files from. [default: none, model files are refused]
    #[arg(long, value_name = "DIR", env = "FRESHET_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,

    /// TLS certificate chain (PEM). Requires --tls-key.
    #[arg(long, value_name = "PEM", env = "FRESHET_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM). Requires --tls-cert.
    #[arg(long, value_name = "PEM", env = "FRESHET_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Rows per model inference call. [default: 8192]
    #[arg(long, value_name = "N", env = "FRESHET_INFERENCE_BATCH_SIZE")]
    pub inference_batch_size: Option<NonZeroU64>,

    /// Memory query execution may hold across all sessions and refreshes
    /// (sorts, aggregates and joins spill under DIR/spill beyond it; what
    /// cannot spill fails with 53200). Units B, kB, MB, GB, TB. [default: a
    /// quarter of the machine's RAM]
    #[arg(long, value_name = "SIZE", env = "FRESHET_QUERY_MEMORY_LIMIT")]
    pub query_memory_limit: Option<QueryMemoryLimit>,

    /// Checkpointed table data kept in memory. Beyond it the oldest
    /// checkpointed segments are evicted and scans read them from their
    /// Parquet files under the data directory. Rows not yet checkpointed,
    /// deletion stamps of deleted rows and primary-key indexes stay in
    /// memory regardless. Units B, kB, MB, GB, TB. [default: a quarter of the
    /// machine's RAM]
    #[arg(long, value_name = "SIZE", env = "FRESHET_RESIDENT_DATA_LIMIT")]
    pub resident_data_limit: Option<DataSize>,

    /// Address of the HTTP endpoint serving /healthz, /readyz and /metrics
    /// (Prometheus), plain HTTP; `off` disables it. Port 0 picks a free port
    /// (shown in the banner). [default: 127.0.0.1:5480]
    #[arg(long, value_name = "HOST:PORT", env = "FRESHET_HTTP_LISTEN")]
    pub http_listen: Option<HttpListen>,

    /// Log format on stderr: `text` (human-readable) or `json` (one JSON
    /// object per line). The level is set by RUST_LOG. [default: text]
    #[arg(long, value_name = "FORMAT", env = "FRESHET_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Log (WARN) every statement that takes at least this long, with its
    /// text, duration, user and outcome: `500ms`, `2s`, … or `off`.
    /// [default: off]
    #[arg(long, value_name = "DURATION", env = "FRESHET_LOG_SLOW_STATEMENTS")]
    pub log_slow_statements: Option<SlowStatements>,

    /// On SIGTERM or SIGINT, how long running statements and refreshes may
    /// take to finish before the server exits without waiting for them.
    /// [default: 10s]
    #[arg(long, value_name = "DURATION", env = "FRESHET_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<GraceDuration>,

    /// Do not fsync the WAL (throwaway test servers only).
    #[arg(
        long,
        hide = true,
        env = "FRESHET_NO_FSYNC",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub no_fsync: bool,
}

/// The settings as a `freshet.toml` file gives them: the same names as the
/// flags, without their leading dashes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileSettings {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    superuser: Option<String>,
    superuser_password: Option<String>,
    model_dir: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    inference_batch_size: Option<NonZeroU64>,
    query_memory_limit: Option<QueryMemoryLimit>,
    resident_data_limit: Option<DataSize>,
    http_listen: Option<HttpListen>,
    log_format: Option<LogFormat>,
    log_slow_statements: Option<SlowStatements>,
    shutdown_grace: Option<GraceDuration>,
    no_fsync: Option<bool>,
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag (`listen` for `--listen`).
    Flag(String),
    /// An environment variable (`FRESHET_LISTEN`).
    Env(String),
    /// The configuration file.
    File(PathBuf),
    /// The built-in default.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "flag --{flag}"),
            Source::Env(var) => write!(f, "env {var}"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

/// The log format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// The HTTP endpoint's address, or `off` (`--http-listen`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpListen {
    Off,
    Address(String),
}

impl FromStr for HttpListen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            Ok(HttpListen::Off)
        } else if text.is_empty() {
            Err("expected HOST:PORT or off".to_owned())
        } else {
            Ok(HttpListen::Address(text.to_owned()))
        }
    }
}

/// `--query-memory-limit`: a size of at least 1MB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryMemoryLimit(pub usize);

impl FromStr for QueryMemoryLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        freshet_engine::query_memory::parse_limit(text).map(QueryMemoryLimit)
    }
}

/// A size in bytes written with a unit (`512MB`, `4GB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSize(pub usize);

impl FromStr for DataSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        freshet_engine::query_memory::parse(text).map(DataSize)
    }
}

/// `--log-slow-statements`: a duration, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowStatements(pub Option<Duration>);

impl FromStr for SlowStatements {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(SlowStatements(None));
        }
        parse_duration(text).map(|d| SlowStatements(Some(d)))
    }
}

/// `--shutdown-grace`: a duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraceDuration(pub Duration);

impl FromStr for GraceDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        parse_duration(text.trim()).map(GraceDuration)
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("invalid duration \"{text}\": {e} (expected e.g. 500ms, 10s, 2min)"))
}

/// Reads the types above from TOML strings through their `FromStr`, so a
/// file value is parsed exactly as the flag's would be.
macro_rules! deserialize_from_str {
    ($($ty:ty),*) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

deserialize_from_str!(
    HttpListen,
    QueryMemoryLimit,
    DataSize,
    SlowStatements,
    GraceDuration
);

/// The effective settings of `freshet serve`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: Sourced<PathBuf>,
    pub listen: Sourced<String>,
    pub superuser: Sourced<String>,
    pub superuser_password: Sourced<Option<String>>,
    pub model_dir: Sourced<Option<PathBuf>>,
    pub tls_cert: Sourced<Option<PathBuf>>,
    pub tls_key: Sourced<Option<PathBuf>>,
    pub inference_batch_size: Sourced<NonZeroU64>,
    /// `None`: a quarter of the machine's RAM.
    pub query_memory_limit: Sourced<Option<QueryMemoryLimit>>,
    /// `None`: a quarter of the machine's RAM.
    pub resident_data_limit: Sourced<Option<DataSize>>,
    pub http_listen: Sourced<HttpListen>,
    pub log_format: Sourced<LogFormat>,
    pub log_slow_statements: Sourced<SlowStatements>,
    pub shutdown_grace: Sourced<GraceDuration>,
    pub no_fsync: Sourced<bool>,
}

/// Why the settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// The flag's long name and environment variable of the argument `id`.
fn arg_names(command: &clap::Command, id: &str) -> (String, String) {
    command
        .get_arguments()
        .find(|a| a.get_id() == id)
        .map(|a| {
            let long = a.get_long().unwrap_or("");
            let env = a.get_env().and_then(|e| e.to_str()).unwrap_or("");
            (long.to_owned(), env.to_owned())
        })
        .unwrap_or_default()
}

/// Chooses a setting's value: flag or environment (as clap read them), then
/// the file, then the default.
struct Layers<'a> {
    command: &'a clap::Command,
    matches: &'a ArgMatches,
    file_path: Option<&'a Path>,
}

impl Layers<'_> {
    fn pick<T>(&self, id: &str, cli: Option<T>, file: Option<T>, default: T) -> Sourced<T> {
        if let Some(value) = cli {
            let (long, env) = arg_names(self.command, id);
            let source = match self.matches.value_source(id) {
                Some(ValueSource::EnvVariable) => Source::Env(env),
                _ => Source::Flag(long),
            };
            return Sourced { value, source };
        }
        match (file, self.file_path) {
            (Some(value), Some(path)) => Sourced {
                value,
                source: Source::File(path.to_path_buf()),
            },
            _ => Sourced {
                value: default,
                source: Source::Default,
            },
        }
    }

    /// [`Layers::pick`] for an optional setting without a default.
    fn pick_optional<T>(&self, id: &str, cli: Option<T>, file: Option<T>) -> Sourced<Option<T>> {
        self.pick(id, cli.map(Some), file.map(Some), None)
    }
}

impl Settings {
    /// Layers the flags and environment variables clap read (`args`, from
    /// `matches` of `command`, the `serve` subcommand) over the file at
    /// `config` (if any) and the defaults.
    pub fn resolve(
        args: SettingArgs,
        config: Option<&Path>,
        command: &clap::Command,
        matches: &ArgMatches,
    ) -> Result<Settings, ConfigError> {
        let file = match config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let layers = Layers {
            command,
            matches,
            file_path: config,
        };
        let no_fsync_given = matches!(
            matches.value_source("no_fsync"),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        let settings = Settings {
            data_dir: layers.pick(
                "data_dir",
                args.data_dir,
                file.data_dir,
                PathBuf::from("./freshet-data"),
            ),
            listen: layers.pick(
                "listen",
                args.listen,
                file.listen,
                "127.0.0.1:5433".to_owned(),
            ),
            superuser: layers.pick(
                "superuser",
                args.superuser,
                file.superuser,
                "freshet".to_owned(),
            ),
            superuser_password: layers.pick_optional(
                "superuser_password",
                args.superuser_password,
                file.superuser_password,
            ),
            model_dir: layers.pick_optional("model_dir", args.model_dir, file.model_dir),
            tls_cert: layers.pick_optional("tls_cert", args.tls_cert, file.tls_cert),
            tls_key: layers.pick_optional("tls_key", args.tls_key, file.tls_key),
            inference_batch_size: layers.pick(
                "inference_batch_size",
                args.inference_batch_size,
                file.inference_batch_size,
                NonZeroU64::new(8192).unwrap_or(NonZeroU64::MIN),
            ),
            query_memory_limit: layers.pick_optional(
                "query_memory_limit",
                args.query_memory_limit,
                file.query_memory_limit,
            ),
            resident_data_limit: layers.pick_optional(
                "resident_data_limit",
                args.resident_data_limit,
                file.resident_data_limit,
            ),
            http_listen: layers.pick(
                "http_listen",
                args.http_listen,
                file.http_listen,
                HttpListen::Address("127.0.0.1:5480".to_owned()),
            ),
            log_format: layers.pick(
                "log_format",
                args.log_format,
                file.log_format,
                LogFormat::Text,
            ),
            log_slow_statements: layers.pick(
                "log_slow_statements",
                args.log_slow_statements,
                file.log_slow_statements,
                SlowStatements(None),
            ),
            shutdown_grace: layers.pick(
                "shutdown_grace",
                args.shutdown_grace,
                file.shutdown_grace,
                GraceDuration(Duration::from_secs(10)),
            ),
            no_fsync: layers.pick(
                "no_fsync",
                no_fsync_given.then_some(args.no_fsync),
                file.no_fsync,
                false,
            ),
        };
        settings.check()?;
        Ok(settings)
    }

    /// Rules between settings.
    fn check(&self) -> Result<(), ConfigError> {
        match (&self.tls_cert.value, &self.tls_key.value) {
            (Some(_), None) => Err(ConfigError::Invalid(format!(
                "tls-cert ({}) is set but tls-key is not: TLS needs both",
                self.tls_cert.source
            ))),
            (None, Some(_)) => Err(ConfigError::Invalid(format!(
                "tls-key ({}) is set but tls-cert is not: TLS needs both",
                self.tls_key.source
            ))),
            _ => Ok(()),
        }
    }

    /// The settings as `--print-config` shows them: one `key = value` line
    /// each, in TOML, with its source as a comment. A setting without a
    /// value, and the superuser password, are commented out.
    pub fn render(&self) -> String {
        fn text(s: &str) -> String {
            toml::Value::String(s.to_owned()).to_string()
        }
        fn path(p: &Path) -> String {
            text(&p.display().to_string())
        }
        let ram_quarter = || {
            format!(
                "(a quarter of RAM: {})",
                freshet_engine::query_memory::display(freshet_engine::query_memory::default_limit())
            )
        };
        let rows: [(&str, Option<String>, &Source); 15] = [
            (
                "data-dir",
                Some(path(&self.data_dir.value)),
                &self.data_dir.source,
            ),
            (
                "listen",
                Some(text(&self.listen.value)),
                &self.listen.source,
            ),
            (
                "superuser",
                Some(text(&self.superuser.value)),
                &self.superuser.source,
            ),
            (
                "superuser-password",
                self.superuser_password
                    .value
                    .as_ref()
                    .map(|_| "(set, not shown)".to_owned()),
                &self.superuser_password.source,
            ),
            (
                "model-dir",
                self.model_dir.value.as_deref().map(path),
                &self.model_dir.source,
            ),
            (
                "tls-cert",
                self.tls_cert.value.as_deref().map(path),
                &self.tls_cert.source,
            ),
            (
                "tls-key",
                self.tls_key.value.as_deref().map(path),
                &self.tls_key.source,
            ),
            (
                "inference-batch-size",
                Some(self.inference_batch_size.value.to_string()),
                &self.inference_batch_size.source,
            ),
            (
                "query-memory-limit",
                Some(match self.query_memory_limit.value {
                    Some(QueryMemoryLimit(bytes)) => {
                        text(&freshet_engine::query_memory::display(bytes))
                    }
                    None => ram_quarter(),
                }),
                &self.query_memory_limit.source,
            ),
            (
                "resident-data-limit",
                Some(match self.resident_data_limit.value {
                    Some(DataSize(bytes)) => text(&freshet_engine::query_memory::display(bytes)),
                    None => ram_quarter(),
                }),
                &self.resident_data_limit.source,
            ),
            (
                "http-listen",
                Some(match &self.http_listen.value {
                    HttpListen::Off => text("off"),
                    HttpListen::Address(addr) => text(addr),
                }),
                &self.http_listen.source,
            ),
            (
                "log-format",
                Some(text(self.log_format.value.as_str())),
                &self.log_format.source,
            ),
            (
                "log-slow-statements",
                Some(match self.log_slow_statements.value.0 {
                    Some(d) => text(&humantime::format_duration(d).to_string()),
                    None => text("off"),
                }),
                &self.log_slow_statements.source,
            ),
            (
                "shutdown-grace",
                Some(text(
                    &humantime::format_duration(self.shutdown_grace.value.0).to_string(),
                )),
                &self.shutdown_grace.source,
            ),
            (
                "no-fsync",
                Some(self.no_fsync.value.to_string()),
                &self.no_fsync.source,
            ),
        ];
        let mut out = String::from(
            "# Effective settings of freshet serve. Each comes from the first of: \
             flag, environment variable FRESHET_*, --config file, default.\n",
        );
        for (key, value, source) in rows {
            // Values that are not TOML (a hidden password, a computed
            // default, no value) are commented out, so the output can be
            // used as a configuration file.
            let line = match value {
                Some(v) if !v.starts_with('(') => format!("{key} = {v}"),
                Some(v) => format!("# {key} = {v}"),
                None => format!("# {key} (not set)"),
            };
            let _ = writeln!(out, "{line:<48} # {source}");
        }
        out
    }
}

/// Reads and checks the configuration file.
fn read_file(path: &Path) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let file_error = |message: String| ConfigError::File {
        path: path.to_path_buf(),
        message,
    };
    let table: toml::Table = toml::from_str(&text).map_err(|e| file_error(e.to_string()))?;
    match toml::Value::Table(table.clone()).try_into::<FileSettings>() {
        Ok(settings) => Ok(settings),
        Err(whole) => {
            // Name the key at fault: the first one that fails on its own.
            for (key, value) in table {
                let mut single = toml::Table::new();
                single.insert(key.clone(), value);
                if let Err(e) = toml::Value::Table(single).try_into::<FileSettings>() {
                    let message = e.to_string();
                    let message = message.trim();
                    return Err(file_error(if message.contains("unknown field") {
                        format!("unknown key `{key}`: {message}")
                    } else {
                        format!("key `{key}`: {message}")
                    }));
                }
            }
            Err(file_error(whole.to_string()))
        }
    }
}

/// Rewrites clap's error for a bad value that came from an environment
/// variable, which clap reports under the flag's name only, to name the
/// variable. `argv` is the command line, to tell a flag's value from an
/// environment variable's.
pub fn explain_env_error(error: clap::Error, command: &clap::Command, argv: &[OsString]) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let rendered = error.render().to_string();
    if !matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return rendered;
    }
    let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) else {
        return rendered;
    };
    let long = arg
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_start_matches('-');
    let serve = command.find_subcommand("serve");
    let Some(found) = serve.and_then(|s| s.get_arguments().find(|a| a.get_long() == Some(long)))
    else {
        return rendered;
    };
    let Some(var) = found.get_env().and_then(|e| e.to_str()) else {
        return rendered;
    };
    let flag = format!("--{long}");
    let on_command_line = argv.iter().any(|a| {
        a.to_str()
            .is_some_and(|a| a == flag || a.starts_with(&format!("{flag}=")))
    });
    if on_command_line {
        return rendered;
    }
    format!("error: environment variable {var} has an invalid value:\n{rendered}")
}
