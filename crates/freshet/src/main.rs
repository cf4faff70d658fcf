//! The Freshet server binary: a Postgres-wire SQL server with incrementally
//! maintained dynamic tables and in-SQL model inference.
//!
//! `freshet serve` opens the data directory, starts the wire listener and runs
//! until SIGTERM/SIGINT, then stops accepting connections and shuts the engine
//! down cleanly (flushing durable state) before exiting 0. Once it accepts
//! connections it prints a short banner (see [`banner`]): version and commit,
//! address, directories and the limits in effect. An HTTP endpoint
//! (`--http-listen`, [`freshet_http`]) serves health checks and Prometheus
//! metrics from before recovery until shutdown.

mod banner;
mod config;

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use freshet_engine::{Engine, EngineConfig};
use freshet_wire::{Server, ServerConfig, Stopped, TlsFiles};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use config::{HttpListen, LogFormat, SettingArgs, Settings, Source};

/// Freshet: a Postgres-compatible SQL server with incrementally maintained
/// dynamic tables and ML models callable from SQL.
#[derive(Debug, Parser)]
#[command(name = "freshet", version = banner::VERSION, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server. Every setting can also come from an environment
    /// variable FRESHET_<SETTING> or a key of the --config file; a flag wins
    /// over the environment, which wins over the file.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// A TOML file of settings, keyed by the flags' names without their
    /// dashes (`data-dir = "/var/lib/freshet"`).
    #[arg(long, value_name = "PATH", env = "FRESHET_CONFIG")]
    config: Option<std::path::PathBuf>,

    /// Print the effective settings, each with where it came from, and exit
    /// without starting the server.
    #[arg(long)]
    print_config: bool,

    #[command(flatten)]
    settings: SettingArgs,
}

/// Concurrent dynamic-table refreshes.
const REFRESH_WORKERS: usize = 2;

/// How long exiting waits for compute tasks still running after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Colours only for a terminal: not in files, journald or pipes.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Counts SIGTERMs and SIGINTs (Ctrl-C) in `count`. The first starts the
/// graceful shutdown (whoever watches `count` sees 1); the second exits the
/// process at once. That loses nothing acknowledged: a commit is
/// acknowledged only once its WAL record is synced, and recovery replays
/// the WAL, as after a crash.
fn count_signals(count: watch::Sender<u32>) {
    // A thread and runtime of their own: statements can keep every compute
    // worker busy for minutes without yielding, and a signal must be
    // handled regardless.
    let spawned = std::thread::Builder::new()
        .name("freshet-signals".to_owned())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM and SIGINT");
                    return;
                }
            };
            runtime.block_on(signal_loop(count));
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot listen for SIGTERM and SIGINT");
    }
}

/// Counts the signals; see [`count_signals`].
async fn signal_loop(count: watch::Sender<u32>) {
    let received = |name: &str| {
        let n = *count.borrow() + 1;
        count.send_replace(n);
        if n == 1 {
            tracing::info!("{name} received: shutting down (send another to exit at once)");
        } else {
            tracing::warn!("{name} received again: exiting at once");
            std::process::exit(0);
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (mut term, mut int) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => (term, int),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM and SIGINT");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = term.recv() => received("SIGTERM"),
                _ = int.recv() => received("SIGINT"),
            }
        }
    }
    #[cfg(not(unix))]
    while tokio::signal::ctrl_c().await.is_ok() {
        received("Ctrl-C");
    }
}

async fn serve(settings: Settings) -> Result<(), String> {
    tracing::info!("starting freshet {}", banner::VERSION);
    // Signals are counted from here on: one that arrives during recovery
    // shuts the server down as soon as it is open.
    let (signal_tx, signals) = watch::channel(0u32);
    count_signals(signal_tx);

    let data_dir = settings.data_dir.value.clone();
    let mut config = EngineConfig::new(data_dir.clone());
    config.model_dir = settings.model_dir.value.clone();
    config.superuser = settings.superuser.value.clone();
    config.superuser_password = settings.superuser_password.value.clone();
    config.inference_batch_size = usize::try_from(settings.inference_batch_size.value.get())
        .map_err(|_| "inference-batch-size is too large".to_owned())?;
    config.fsync = !settings.no_fsync.value;
    if let Some(limit) = settings.query_memory_limit.value {
        config.query_memory_limit = limit.0;
    }
    if let Some(limit) = settings.resident_data_limit.value {
        config.resident_data_limit = limit.0;
    }
    // How the banner explains the query memory limit.
    let memory_source = match &settings.query_memory_limit.source {
        Source::Default => match freshet_engine::query_memory::physical_memory() {
            Some(ram) => format!(
                "a quarter of {} RAM",
                freshet_engine::query_memory::display(ram / (1 << 20) * (1 << 20))
            ),
            None => "default".to_owned(),
        },
        Source::Flag(flag) => format!("--{flag}"),
        other => other.to_string(),
    };
    let tls = match (&settings.tls_cert.value, &settings.tls_key.value) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    // The HTTP endpoint starts first, so /healthz answers (and /readyz says
    // 503) while recovery runs. It shares the wire listener's certificate.
    let status = freshet_http::Status::new();
    let http = match &settings.http_listen.value {
        HttpListen::Off => None,
        HttpListen::Address(address) => {
            let http_tls = match &tls {
                Some(files) => {
                    Some(freshet_wire::tls_server_config(files).map_err(|e| format!("TLS: {e}"))?)
                }
                None => None,
            };
            let server = freshet_http::HttpServer::bind(address, status.clone(), http_tls)
                .map_err(|e| format!("--http-listen: {e}"))?;
            let addr = server.local_addr().map_err(|e| e.to_string())?;
            let scheme = if server.tls_enabled() {
                "https"
            } else {
                "http"
            };
            tracing::info!(
                "HTTP endpoint listening on {scheme}://{addr}/ (web console at /; /healthz, /readyz, /metrics)"
            );
            Some((server.spawn().map_err(|e| e.to_string())?, addr, scheme))
        }
    };
    let engine = Engine::open(config)
        .await
        .map_err(|e| format!("cannot open data directory {}: {e}", data_dir.display()))?;

    status.set_engine(engine.clone());

    // Dynamic-table refreshes run on their own threads; started before clients
    // can write so the retention holds of existing dynamic tables are in place.
    let scheduler = freshet_refresh::spawn_scheduler(engine.clone(), REFRESH_WORKERS);

    let listen = settings.listen.value.clone();
    let server = Server::bind(
        engine.clone(),
        &ServerConfig {
            listen: listen.clone(),
            tls,
            slow_statements: settings.log_slow_statements.value.0,
        },
    )
    .await
    .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    status.set_ready(true);
    let config = engine.config();
    let superuser = engine.superuser();
    let banner = banner::Banner {
        listen: addr,
        tls: server.tls_enabled(),
        http: http
            .as_ref()
            .map(|(_, addr, scheme)| format!("{scheme}://{addr}/")),
        superuser,
        superuser_has_password: engine.scram_secret(superuser).is_some(),
        data_dir: &config.data_dir,
        fsync: config.fsync,
        model_dir: config.model_dir.as_deref(),
        query_threads: config.threads,
        refresh_workers: REFRESH_WORKERS,
        inference_batch_size: config.inference_batch_size,
        refresh_history_limit: freshet_engine::HISTORY_LIMIT,
        query_memory_limit: config.query_memory_limit,
        query_memory_source: &memory_source,
        resident_data_limit: config.resident_data_limit,
    }
    .render();
    match settings.log_format.value {
        // Printed unconditionally (not through the log filter): people look for it.
        LogFormat::Text => eprint!("{banner}"),
        // Every line of a JSON log is one JSON object.
        LogFormat::Json => tracing::info!(target: "freshet::banner", "{}", banner.trim_end()),
    }

    // Shutdown: the first signal stops the listener and the scheduler; the
    // open connections finish their running statements and refreshes in
    // flight finish, both within the grace period (a second signal exits
    // at once, see `count_signals`).
    let grace = settings.shutdown_grace.value.0;
    let first_signal = {
        let mut signals = signals.clone();
        async move {
            let _ = signals.wait_for(|n| *n >= 1).await;
        }
    };
    let not_ready = status.clone();
    // Also ends the wait for a signal below if the listener fails.
    let wire_ended = std::sync::Arc::new(tokio::sync::Notify::new());
    let wire = {
        let wire_ended = wire_ended.clone();
        async move {
            let stopped = server
                .run_until(
                    async move {
                        first_signal.await;
                        not_ready.set_ready(false);
                    },
                    // Polled from the first signal on: the timer starts then.
                    async move { tokio::time::sleep(grace).await },
                )
                .await;
            wire_ended.notify_one();
            stopped
        }
    };
    let refreshes = {
        let mut signals = signals.clone();
        async move {
            tokio::select! {
                _ = signals.wait_for(|n| *n >= 1) => {}
                _ = wire_ended.notified() => {}
            }
            // Dropping the handle at the deadline stops the refresh threads;
            // an unfinished refresh commits nothing.
            tokio::time::timeout(grace, scheduler.shutdown())
                .await
                .is_ok()
        }
    };
    let (wire, refreshes_finished) = tokio::join!(wire, refreshes);
    let stopped = wire.map_err(|e| e.to_string())?;
    if stopped != Stopped::Drained || !refreshes_finished {
        // Every acknowledged commit is in the synced WAL already; the
        // checkpoint only shortens the next recovery.
        tracing::warn!(
            grace = %humantime::format_duration(grace),
            "shutdown grace period over: exiting without waiting for running statements \
             and refreshes (they commit nothing)"
        );
        std::process::exit(0);
    }
    engine.shutdown().await;
    if let Some((http, _, _)) = http {
        http.shutdown();
    }
    tracing::info!("freshet stopped");
    Ok(())
}

/// Reads the command line, the environment and the configuration file; on
/// an error, the message to print and the exit code.
fn settings_from_command_line() -> Result<(Settings, bool), (String, u8)> {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let command = Cli::command();
    let matches = match command.clone().try_get_matches_from(&argv) {
        Ok(matches) => matches,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            return Err((config::explain_env_error(e, &command, &argv), 2));
        }
    };
    let cli = Cli::from_arg_matches(&matches).map_err(|e| (e.render().to_string(), 2))?;
    let Command::Serve(args) = cli.command;
    let (Some(serve_command), Some(serve_matches)) = (
        command.find_subcommand("serve"),
        matches.subcommand_matches("serve"),
    ) else {
        return Err(("freshet: no subcommand".to_owned(), 2));
    };
    let settings = Settings::resolve(
        args.settings,
        args.config.as_deref(),
        serve_command,
        serve_matches,
    )
    .map_err(|e| (format!("freshet: {e}"), 1))?;
    Ok((settings, args.print_config))
}

fn main() -> ExitCode {
    let (settings, print_config) = match settings_from_command_line() {
        Ok(parsed) => parsed,
        Err((message, code)) => {
            eprintln!("{}", message.trim_end());
            return ExitCode::from(code);
        }
    };
    if print_config {
        print!("{}", settings.render());
        return ExitCode::SUCCESS;
    }
    let log_format = settings.log_format.value;
    init_tracing(log_format);
    // Make the TLS crypto provider unambiguous even if another one is linked in.
    // An error only means a provider is already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();

    // The compute runtime: SQL planning and execution run here. The wire
    // server keeps connections on an I/O runtime of its own, so saturated
    // compute workers cannot starve accepting or cancelling.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_name("freshet-compute")
        // Deep (but allowed) expressions recurse in planning; see
        // `freshet_engine::MAX_EXPRESSION_DEPTH`.
        .thread_stack_size(freshet_engine::WORKER_STACK_SIZE)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("freshet: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(serve(settings));
    // The engine is shut down by now. A query abandoned by a CancelRequest
    // can still occupy a worker inside one long, non-yielding poll; dropping
    // the runtime would wait for it, so the process would not exit.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            match log_format {
                LogFormat::Text => eprintln!("freshet: {message}"),
                LogFormat::Json => tracing::error!("freshet: {message}"),
            }
            ExitCode::FAILURE
        }
    }
}
