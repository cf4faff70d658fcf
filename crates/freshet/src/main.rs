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

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use freshet_engine::{Engine, EngineConfig};
use freshet_wire::{Server, ServerConfig, TlsFiles};
use tracing_subscriber::EnvFilter;

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
    /// Run the server.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Directory holding tables, the WAL and the catalog (created if missing).
    #[arg(long, value_name = "DIR", default_value = "./freshet-data")]
    data_dir: PathBuf,

    /// Address to listen on. Non-loopback addresses require --superuser-password.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:5433")]
    listen: String,

    /// Name of the bootstrap superuser.
    #[arg(long, value_name = "NAME", default_value = "freshet")]
    superuser: String,

    /// Password of the bootstrap superuser; enables SCRAM-SHA-256 for it.
    #[arg(
        long,
        value_name = "PW",
        env = "FRESHET_SUPERUSER_PASSWORD",
        hide_env_values = true
    )]
    superuser_password: Option<String>,

    /// The only directory `CREATE MODEL … FROM '<path>'` may read model files from.
    #[arg(long, value_name = "DIR")]
    model_dir: Option<PathBuf>,

    /// TLS certificate chain (PEM). Requires --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// TLS private key (PEM). Requires --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Rows per model inference call.
    #[arg(long, value_name = "N", default_value_t = 8192, value_parser = clap::value_parser!(u64).range(1..))]
    inference_batch_size: u64,

    /// Memory query execution may hold across all sessions and refreshes
    /// (sorts, aggregates and joins spill under DIR/spill beyond it; what
    /// cannot spill fails with 53200). Units B, kB, MB, GB, TB. Default: a
    /// quarter of the machine's RAM.
    #[arg(long, value_name = "SIZE", value_parser = freshet_engine::query_memory::parse_limit)]
    query_memory_limit: Option<usize>,

    /// Checkpointed table data kept in memory. Beyond it the oldest
    /// checkpointed segments are evicted and scans read them from their
    /// Parquet files under the data directory. Rows not yet checkpointed,
    /// deletion stamps of deleted rows and primary-key indexes
    /// stay in memory regardless. Units B, kB, MB, GB, TB. Default: a
    /// quarter of the machine's RAM.
    #[arg(long, value_name = "SIZE", value_parser = freshet_engine::query_memory::parse)]
    resident_data_limit: Option<usize>,

    /// Address of the HTTP endpoint serving /healthz, /readyz and /metrics
    /// (Prometheus), plain HTTP; `off` disables it. Port 0 picks a free port
    /// (shown in the banner).
    #[arg(
        long,
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:5480",
        env = "FRESHET_HTTP_LISTEN"
    )]
    http_listen: String,

    /// Do not fsync the WAL (throwaway test servers only).
    #[arg(long, hide = true)]
    no_fsync: bool,
}

/// Concurrent dynamic-table refreshes.
const REFRESH_WORKERS: usize = 2;

/// How long exiting waits for compute tasks still running after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        _ = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    tracing::info!("starting freshet {}", banner::VERSION);
    let mut config = EngineConfig::new(args.data_dir.clone());
    config.model_dir = args.model_dir;
    config.superuser = args.superuser;
    config.superuser_password = args.superuser_password;
    config.inference_batch_size = usize::try_from(args.inference_batch_size)
        .map_err(|_| "--inference-batch-size is too large".to_owned())?;
    config.fsync = !args.no_fsync;
    if let Some(limit) = args.query_memory_limit {
        config.query_memory_limit = limit;
    }
    if let Some(limit) = args.resident_data_limit {
        config.resident_data_limit = limit;
    }
    // How the banner explains the query memory limit.
    let memory_source = if args.query_memory_limit.is_some() {
        "--query-memory-limit".to_owned()
    } else {
        match freshet_engine::query_memory::physical_memory() {
            Some(ram) => format!(
                "a quarter of {} RAM",
                freshet_engine::query_memory::display(ram / (1 << 20) * (1 << 20))
            ),
            None => "default".to_owned(),
        }
    };
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    // The HTTP endpoint starts first, so /healthz answers (and /readyz says
    // 503) while recovery runs. It shares the wire listener's certificate.
    let status = freshet_http::Status::new();
    let http = if args.http_listen.eq_ignore_ascii_case("off") {
        None
    } else {
        let http_tls = match &tls {
            Some(files) => {
                Some(freshet_wire::tls_server_config(files).map_err(|e| format!("TLS: {e}"))?)
            }
            None => None,
        };
        let server = freshet_http::HttpServer::bind(&args.http_listen, status.clone(), http_tls)
            .map_err(|e| format!("--http-listen: {e}"))?;
        let addr = server.local_addr().map_err(|e| e.to_string())?;
        let scheme = if server.tls_enabled() {
            "https"
        } else {
            "http"
        };
        tracing::info!(
            "HTTP endpoint listening on {scheme}://{addr}/ (/healthz, /readyz, /metrics)"
        );
        Some((server.spawn().map_err(|e| e.to_string())?, addr, scheme))
    };
    let engine = Engine::open(config).await.map_err(|e| {
        format!(
            "cannot open data directory {}: {e}",
            args.data_dir.display()
        )
    })?;

    status.set_engine(engine.clone());

    // Dynamic-table refreshes run on their own threads; started before clients
    // can write so the retention holds of existing dynamic tables are in place.
    let scheduler = freshet_refresh::spawn_scheduler(engine.clone(), REFRESH_WORKERS);

    let server = Server::bind(
        engine.clone(),
        &ServerConfig {
            listen: args.listen.clone(),
            tls,
        },
    )
    .await
    .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    status.set_ready(true);
    let config = engine.config();
    let superuser = engine.superuser();
    // Printed unconditionally (not through the log filter): people look for it.
    eprint!(
        "{}",
        banner::Banner {
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
        .render()
    );

    let not_ready = status.clone();
    let result = server
        .run_until(async move {
            shutdown_signal().await;
            not_ready.set_ready(false);
        })
        .await;
    scheduler.shutdown().await;
    engine.shutdown().await;
    if let Some((http, _, _)) = http {
        http.shutdown();
    }
    tracing::info!("freshet stopped");
    result.map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
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
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
    };
    // The engine is shut down by now. A query abandoned by a CancelRequest
    // can still occupy a worker inside one long, non-yielding poll; dropping
    // the runtime would wait for it, so the process would not exit.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("freshet: {message}");
            ExitCode::FAILURE
        }
    }
}
