//! The shared, process-wide engine: storage, catalog, the model cache and users.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;

use freshet_catalog::{self as catalog, UserEntry};
use freshet_models::CompiledModel;
use freshet_storage::{Store, StoreOptions};

use crate::session::Session;
use crate::EngineError;

/// Start-up configuration of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where tables, the WAL and the catalog live.
    pub data_dir: PathBuf,
    /// The only directory `CREATE MODEL … FROM '<path>'` may read from; `None` disables paths.
    pub model_dir: Option<PathBuf>,
    /// Name of the bootstrap superuser.
    pub superuser: String,
    /// Password of the bootstrap superuser (enables SCRAM for it).
    pub superuser_password: Option<String>,
    /// Rows per inference call.
    pub inference_batch_size: usize,
    /// fsync the WAL on commit (disable only for throwaway test servers).
    pub fsync: bool,
    /// Parallelism for query execution (defaults to the number of cores).
    pub threads: usize,
    /// Bytes query execution may hold across all sessions and refreshes
    /// before spilling or failing with 53200 (see [`crate::query_memory`]).
    pub query_memory_limit: usize,
    /// Bytes of checkpointed table data kept in memory; beyond it the
    /// oldest segments are evicted and scans read them from their Parquet
    /// files (see `freshet_storage::StoreOptions::resident_data_bytes`).
    pub resident_data_limit: usize,
}

impl EngineConfig {
    /// A configuration with defaults for everything but the data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            data_dir: data_dir.into(),
            model_dir: None,
            superuser: "freshet".into(),
            superuser_password: None,
            inference_batch_size: 8192,
            fsync: true,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            query_memory_limit: crate::query_memory::default_limit(),
            resident_data_limit: crate::query_memory::default_limit(),
        }
    }
}

/// SCRAM-SHA-256 credentials of a user, as the wire layer's authenticator needs them.
#[derive(Debug, Clone)]
pub struct ScramSecret {
    /// The per-user salt.
    pub salt: Vec<u8>,
    /// `Hi(password, salt, iterations)`.
    pub salted_password: Vec<u8>,
    /// PBKDF2 iteration count.
    pub iterations: usize,
}

/// The engine shared by all sessions.
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) store: Arc<Store>,
    /// Compiled models by content hash: each version is loaded and optimized once.
    pub(crate) models: Mutex<HashMap<String, Arc<CompiledModel>>>,
    /// Woken after every write commit, so the refresh scheduler reacts in
    /// milliseconds instead of polling.
    pub(crate) commit_notify: Arc<tokio::sync::Notify>,
    /// The one DataFusion runtime (memory pool, spill files) of all sessions.
    pub(crate) runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
    /// Counters for monitoring (see [`crate::server_metrics`]).
    pub(crate) metrics: crate::server_metrics::ServerMetrics,
    /// The connected sessions, once the wire layer has installed its
    /// directory ([`crate::activity`]).
    pub(crate) sessions: std::sync::OnceLock<Arc<dyn crate::activity::SessionDirectory>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.config.data_dir)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens (or creates) the data directory and recovers durable state.
    pub async fn open(config: EngineConfig) -> Result<Arc<Engine>, EngineError> {
        let store = Store::open(StoreOptions {
            data_dir: config.data_dir.clone(),
            fsync: config.fsync,
            resident_data_bytes: config.resident_data_limit,
            ..StoreOptions::new(config.data_dir.clone())
        })
        .map_err(|e| EngineError::new(e.sqlstate(), format!("cannot open data directory: {e}")))?;
        let runtime = crate::query_memory::runtime(&config.data_dir, config.query_memory_limit)?;
        let engine = Arc::new(Engine {
            runtime,
            config,
            store,
            models: Mutex::new(HashMap::new()),
            commit_notify: Arc::new(tokio::sync::Notify::new()),
            metrics: crate::server_metrics::ServerMetrics::default(),
            sessions: std::sync::OnceLock::new(),
        });
        engine.bootstrap().await?;
        Ok(engine)
    }

    async fn bootstrap(&self) -> Result<(), EngineError> {
        let mut txn = self.store.begin();
        catalog::bootstrap(&mut txn, &self.config.superuser, crate::ddl::now_micros());
        if let Some(password) = &self.config.superuser_password {
            let (salt, salted) = crate::users::scram_credentials(password).map_err(|e| {
                EngineError::new(e.sqlstate(), format!("--superuser-password: {e}"))
            })?;
            let key = catalog::user_key(&self.config.superuser);
            let mut entry: UserEntry = catalog::get(&txn, &key)
                .map_err(|e| EngineError::new(e.sqlstate(), e.to_string()))?
                .unwrap_or(UserEntry::new(
                    &self.config.superuser,
                    true,
                    true,
                    Some(catalog::BOOTSTRAP_SUPERUSER_OID),
                ));
            entry.scram_salt_hex = Some(salt);
            entry.scram_salted_password_hex = Some(salted);
            entry.scram_iterations = crate::users::SCRAM_ITERATIONS;
            catalog::put(&mut txn, &key, &entry);
        }
        if !txn.is_read_only() {
            txn.commit()
                .await
                .map_err(|e| EngineError::new(e.sqlstate(), e.to_string()))?;
        }
        Ok(())
    }

    /// The storage layer (the refresh scheduler reads changes from it).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Counters of statements, connections, refreshes and model scoring
    /// for monitoring.
    pub fn metrics(&self) -> &crate::server_metrics::ServerMetrics {
        &self.metrics
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Notified after every write commit.
    pub fn commit_notify(&self) -> Arc<tokio::sync::Notify> {
        self.commit_notify.clone()
    }

    pub(crate) fn after_commit(&self) {
        self.commit_notify.notify_waiters();
        self.commit_notify.notify_one();
    }

    /// Starts a session for an authenticated user. `database` defaults to `freshet`.
    /// Unknown databases give 3D000 and unknown users 28000.
    /// The session starts with the role's defaults (`ALTER ROLE … SET`).
    pub fn new_session(
        self: &Arc<Self>,
        user: &str,
        database: Option<&str>,
    ) -> Result<Session, EngineError> {
        Session::new(
            self.clone(),
            user.to_string(),
            database.unwrap_or("freshet").to_string(),
            true,
        )
    }

    /// A session of `user` for the server's own work (a refresh), without
    /// the role's defaults, which are for the sessions users log in to.
    pub(crate) fn internal_session(
        self: &Arc<Self>,
        user: &str,
        database: &str,
    ) -> Result<Session, EngineError> {
        Session::new(self.clone(), user.to_string(), database.to_string(), false)
    }

    /// The SCRAM secret of `user`, or `None` when the user has no password.
    pub fn scram_secret(&self, user: &str) -> Option<ScramSecret> {
        let snapshot = self.store.snapshot();
        let entry: UserEntry = catalog::get(&snapshot, &catalog::user_key(user)).ok()??;
        Some(ScramSecret {
            salt: crate::users::from_hex(entry.scram_salt_hex.as_deref()?)?,
            salted_password: crate::users::from_hex(entry.scram_salted_password_hex.as_deref()?)?,
            iterations: entry.scram_iterations,
        })
    }

    /// Whether `user` exists.
    pub fn user_exists(&self, user: &str) -> bool {
        self.store
            .snapshot()
            .get_meta(&catalog::user_key(user))
            .is_some()
    }

    /// Whether `user` exists and is a superuser, as of the latest commit.
    pub fn is_superuser(&self, user: &str) -> bool {
        let snapshot = self.store.snapshot();
        catalog::get::<UserEntry>(&snapshot, &catalog::user_key(user))
            .ok()
            .flatten()
            .is_some_and(|u| u.superuser)
    }

    /// Whether any user can authenticate with a password (required for non-loopback listening).
    pub fn has_password_auth(&self) -> bool {
        let snapshot = self.store.snapshot();
        catalog::list::<UserEntry>(&snapshot, "user/")
            .map(|users| users.iter().any(|u| u.scram_salted_password_hex.is_some()))
            .unwrap_or(false)
    }

    /// The bootstrap superuser's name.
    pub fn superuser(&self) -> &str {
        &self.config.superuser
    }

    /// Flushes and stops background work. Called on SIGTERM/SIGINT.
    pub async fn shutdown(&self) {
        if let Err(e) = self.store.checkpoint() {
            tracing::warn!("checkpoint at shutdown failed: {e}");
        }
    }
}
