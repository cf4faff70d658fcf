//! The sessions connected now, as `pg_stat_activity` shows them, and the
//! signals `pg_cancel_backend` and `pg_terminate_backend` send them.
//!
//! The engine does not own client connections; the wire layer does. At start
//! it gives the engine a [`SessionDirectory`] ([`Engine::set_session_directory`]),
//! through which the catalog view reads the sessions and the two functions
//! signal them. Without one (an engine used in-process, by tests or the
//! refresh scheduler), the view is empty and the functions find no session.
//!
//! Visibility follows PostgreSQL: every user sees every session, but the
//! statement text, state and times of another user's session only if the
//! viewer is a superuser (`<insufficient privilege>` otherwise). A superuser
//! may signal any session; another user only sessions of its own user that
//! are not a superuser's (42501 otherwise).

use std::net::IpAddr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use crate::provider::SessionShared;
use crate::{Engine, EngineError};

/// What a session is doing, as `pg_stat_activity.state` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendState {
    /// Running a statement.
    Active,
    /// Waiting for the client, outside a transaction block.
    Idle,
    /// Waiting for the client, inside a transaction block.
    IdleInTransaction,
    /// Waiting for the client, in a transaction block that failed.
    IdleInTransactionAborted,
}

impl BackendState {
    /// PostgreSQL's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendState::Active => "active",
            BackendState::Idle => "idle",
            BackendState::IdleInTransaction => "idle in transaction",
            BackendState::IdleInTransactionAborted => "idle in transaction (aborted)",
        }
    }
}

/// One connected session. Times are microseconds since the Unix epoch.
#[derive(Debug, Clone)]
pub struct BackendActivity {
    /// The process id the client was given (its CancelRequest key).
    pub pid: i32,
    /// The session's user.
    pub user: String,
    /// The session's database.
    pub database: String,
    /// The client's `application_name` start-up parameter.
    pub application_name: String,
    /// The client's address and port.
    pub client: Option<(IpAddr, u16)>,
    /// When the session started.
    pub backend_start: i64,
    /// When the current transaction started, if one is open.
    pub xact_start: Option<i64>,
    /// When the current (or last) statement started.
    pub query_start: Option<i64>,
    /// When `state` last changed.
    pub state_change: i64,
    /// What the session is doing.
    pub state: BackendState,
    /// The current (or last) statement's text.
    pub query: String,
}

/// A signal for a session's backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendSignal {
    /// Cancel the running statement, as a CancelRequest does.
    Cancel,
    /// Cancel the running statement and end the connection (FATAL 57P01).
    Terminate,
}

/// The connected sessions, kept by whoever owns the connections.
///
/// Contract: [`SessionDirectory::sessions`] is a snapshot taken when called;
/// [`SessionDirectory::signal`] returns once the signal is delivered (the
/// statement notices it at its next poll, not necessarily before the call
/// returns) and says whether a session with that pid was connected.
pub trait SessionDirectory: Send + Sync + std::fmt::Debug {
    /// The sessions connected now.
    fn sessions(&self) -> Vec<BackendActivity>;
    /// Sends `signal` to session `pid`; false if no such session.
    fn signal(&self, pid: i32, signal: BackendSignal) -> bool;
}

impl Engine {
    /// Installs the directory of connected sessions (once; later calls are
    /// ignored).
    pub fn set_session_directory(&self, directory: Arc<dyn SessionDirectory>) {
        let _ = self.sessions.set(directory);
    }

    fn connected_sessions(&self) -> Vec<BackendActivity> {
        self.sessions
            .get()
            .map(|d| d.sessions())
            .unwrap_or_default()
    }
}

/// The session's backend pid, set by the wire once it has one (0 before,
/// and for sessions without a connection).
#[derive(Debug, Default)]
pub(crate) struct BackendPid(AtomicI32);

impl BackendPid {
    pub(crate) fn get(&self) -> i32 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, pid: i32) {
        self.0.store(pid, Ordering::Relaxed);
    }
}

/// `pg_catalog.pg_stat_activity` for the session `shared`, as of now.
pub(crate) fn pg_stat_activity(
    engine: &Engine,
    shared: &SessionShared,
) -> DfResult<Arc<dyn TableProvider>> {
    let viewer_is_superuser =
        crate::privileges::is_superuser(shared, &shared.user).map_err(DataFusionError::from)?;
    let sessions = engine.connected_sessions();
    let visible = |s: &BackendActivity| viewer_is_superuser || s.user == shared.user;
    let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("datname", DataType::Utf8, true),
        Field::new("pid", DataType::Int32, false),
        Field::new("usename", DataType::Utf8, true),
        Field::new("application_name", DataType::Utf8, true),
        Field::new("client_addr", DataType::Utf8, true),
        Field::new("client_port", DataType::Int32, true),
        Field::new("backend_start", ts(), true),
        Field::new("xact_start", ts(), true),
        Field::new("query_start", ts(), true),
        Field::new("state_change", ts(), true),
        Field::new("wait_event_type", DataType::Utf8, true),
        Field::new("wait_event", DataType::Utf8, true),
        Field::new("state", DataType::Utf8, true),
        Field::new("query", DataType::Utf8, true),
        Field::new("backend_type", DataType::Utf8, true),
    ]));
    let text = |f: &dyn Fn(&BackendActivity) -> Option<String>| -> ArrayRef {
        Arc::new(sessions.iter().map(f).collect::<StringArray>())
    };
    let time = |f: &dyn Fn(&BackendActivity) -> Option<i64>| -> ArrayRef {
        Arc::new(
            sessions
                .iter()
                .map(|s| if visible(s) { f(s) } else { None })
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        text(&|s| Some(s.database.clone())),
        Arc::new(sessions.iter().map(|s| s.pid).collect::<Int32Array>()),
        text(&|s| Some(s.user.clone())),
        text(&|s| Some(s.application_name.clone())),
        text(&|s| {
            s.client
                .filter(|_| visible(s))
                .map(|(ip, _)| ip.to_string())
        }),
        Arc::new(
            sessions
                .iter()
                .map(|s| s.client.filter(|_| visible(s)).map(|(_, p)| i32::from(p)))
                .collect::<Int32Array>(),
        ),
        time(&|s| Some(s.backend_start)),
        time(&|s| s.xact_start),
        time(&|s| s.query_start),
        time(&|s| Some(s.state_change)),
        text(&|_| None),
        text(&|_| None),
        text(&|s| visible(s).then(|| s.state.as_str().to_owned())),
        text(&|s| {
            Some(if visible(s) {
                s.query.clone()
            } else {
                "<insufficient privilege>".to_owned()
            })
        }),
        text(&|_| Some("client backend".to_owned())),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(Arc::new(datafusion::datasource::MemTable::try_new(
        schema,
        vec![vec![batch]],
    )?))
}

/// Registers `pg_backend_pid()`, `pg_cancel_backend(pid)` and
/// `pg_terminate_backend(pid)` for the session `shared`.
pub(crate) fn register(
    ctx: &datafusion::prelude::SessionContext,
    engine: &Arc<Engine>,
    shared: &Arc<SessionShared>,
) {
    ctx.register_udf(ScalarUDF::new_from_impl(BackendPidFunction {
        shared: shared.clone(),
        signature: Signature::exact(vec![], Volatility::Stable),
    }));
    for signal in [BackendSignal::Cancel, BackendSignal::Terminate] {
        ctx.register_udf(ScalarUDF::new_from_impl(SignalFunction {
            signal,
            engine: engine.clone(),
            shared: shared.clone(),
            // A pid of any integer type (a literal is a bigint here);
            // pg_terminate_backend(pid, timeout): the timeout (ms) is
            // accepted, and Freshet does not wait for the session to end.
            signature: Signature::one_of(
                vec![
                    TypeSignature::Uniform(1, vec![DataType::Int32, DataType::Int64]),
                    TypeSignature::Uniform(2, vec![DataType::Int32, DataType::Int64]),
                ],
                Volatility::Volatile,
            ),
        }));
    }
}

/// `pg_backend_pid()`: the session's pid (0 for a session without a client).
#[derive(Debug)]
struct BackendPidFunction {
    shared: Arc<SessionShared>,
    signature: Signature,
}

impl PartialEq for BackendPidFunction {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}
impl Eq for BackendPidFunction {}
impl std::hash::Hash for BackendPidFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "pg_backend_pid".hash(state);
    }
}

impl ScalarUDFImpl for BackendPidFunction {
    fn name(&self) -> &str {
        "pg_backend_pid"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(ColumnarValue::Scalar(
            datafusion::common::ScalarValue::Int32(Some(self.shared.backend_pid.get())),
        ))
    }
}

/// `pg_cancel_backend(pid)` / `pg_terminate_backend(pid)`.
#[derive(Debug)]
struct SignalFunction {
    signal: BackendSignal,
    engine: Arc<Engine>,
    shared: Arc<SessionShared>,
    signature: Signature,
}

impl PartialEq for SignalFunction {
    fn eq(&self, other: &Self) -> bool {
        self.signal == other.signal && Arc::ptr_eq(&self.shared, &other.shared)
    }
}
impl Eq for SignalFunction {}
impl std::hash::Hash for SignalFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl SignalFunction {
    /// Signals `pid` if the session's user may; whether a session got it.
    fn send(&self, pid: i32) -> Result<bool, EngineError> {
        let Some(target) = self
            .engine
            .connected_sessions()
            .into_iter()
            .find(|s| s.pid == pid)
        else {
            // PostgreSQL warns "PID … is not a PostgreSQL backend process"
            // and answers false.
            return Ok(false);
        };
        let user = &self.shared.user;
        if !crate::privileges::is_superuser(&self.shared, user)? {
            let (what, whose) = match self.signal {
                BackendSignal::Cancel => ("cancel query", "whose query is being canceled"),
                BackendSignal::Terminate => {
                    ("terminate process", "whose process is being terminated")
                }
            };
            if crate::privileges::is_superuser(&self.shared, &target.user)? {
                return Err(EngineError::new(
                    "42501",
                    format!("permission denied to {what}: only superusers may signal a superuser's session"),
                ));
            }
            if target.user != *user {
                return Err(EngineError::new(
                    "42501",
                    format!(
                        "permission denied to {what}: only the role {whose} or a superuser may"
                    ),
                ));
            }
        }
        let Some(directory) = self.engine.sessions.get() else {
            return Ok(false);
        };
        Ok(directory.signal(pid, self.signal))
    }
}

impl ScalarUDFImpl for SignalFunction {
    fn name(&self) -> &str {
        match self.signal {
            BackendSignal::Cancel => "pg_cancel_backend",
            BackendSignal::Terminate => "pg_terminate_backend",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        crate::udf_args::evaluate(&args.args, |arrays| {
            let pids = arrays
                .first()
                .ok_or_else(|| DataFusionError::Plan(format!("{} needs a pid", self.name())))?;
            let pids = datafusion::arrow::compute::cast(pids, &DataType::Int64)?;
            let pids = datafusion::arrow::array::AsArray::as_primitive::<
                datafusion::arrow::datatypes::Int64Type,
            >(&pids);
            let mut out = Vec::with_capacity(pids.len());
            for pid in pids.iter() {
                out.push(match pid {
                    // No session has a pid outside int4.
                    Some(pid) => Some(match i32::try_from(pid) {
                        Ok(pid) => self.send(pid).map_err(DataFusionError::from)?,
                        Err(_) => false,
                    }),
                    None => None,
                });
            }
            Ok(Arc::new(BooleanArray::from(out)) as ArrayRef)
        })
    }
}
