//! The directory of connected sessions behind `pg_stat_activity`,
//! `pg_cancel_backend` and `pg_terminate_backend`.
//!
//! Each authenticated connection registers an [`ActivityEntry`] (removed
//! when the connection ends, with its [`ActivityGuard`]); the query handlers
//! mark each statement's start and end ([`statement_started`],
//! [`statement_finished`]). [`Activities`] is the engine's
//! [`SessionDirectory`]: a cancel fires the connection's CancelRequest
//! handle, a terminate also tells the connection loop to end the connection
//! with FATAL 57P01 once the statement has stopped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};

use freshet_engine::activity::{BackendActivity, BackendSignal, BackendState, SessionDirectory};
use pgwire::api::{ClientInfo, ConnectionHandle};
use pgwire::messages::response::TransactionStatus;
use tokio::sync::watch;

/// Microseconds since the Unix epoch, now.
fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The connected sessions by pid.
#[derive(Debug, Default)]
pub(crate) struct Activities {
    entries: RwLock<HashMap<i32, Arc<ActivityEntry>>>,
}

/// What changes while a session runs.
#[derive(Debug)]
struct Live {
    state: BackendState,
    query: String,
    query_start: Option<i64>,
    xact_start: Option<i64>,
    state_change: i64,
}

/// One connected session.
#[derive(Debug)]
pub(crate) struct ActivityEntry {
    pid: i32,
    user: String,
    database: String,
    application_name: String,
    client: Option<(IpAddr, u16)>,
    backend_start: i64,
    cancel: Arc<ConnectionHandle>,
    terminate: Arc<TerminateSignal>,
    live: Mutex<Live>,
}

/// Set by `pg_terminate_backend`; the connection loop watches it.
#[derive(Debug)]
pub(crate) struct TerminateSignal(pub(crate) watch::Sender<bool>);

/// Unregisters its session when the connection ends.
#[derive(Debug)]
pub(crate) struct ActivityGuard {
    pid: i32,
    activities: Arc<Activities>,
}

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        if let Ok(mut entries) = self.activities.entries.write() {
            entries.remove(&self.pid);
        }
    }
}

/// A session to register: who it is and how to signal it.
pub(crate) struct NewSession {
    pub(crate) pid: i32,
    pub(crate) user: String,
    pub(crate) database: String,
    pub(crate) application_name: String,
    pub(crate) client: Option<(IpAddr, u16)>,
    pub(crate) cancel: Arc<ConnectionHandle>,
    pub(crate) terminate: Arc<TerminateSignal>,
}

impl Activities {
    /// Registers an authenticated session, idle; the guard unregisters it.
    pub(crate) fn register(
        self: &Arc<Self>,
        session: NewSession,
    ) -> (Arc<ActivityEntry>, ActivityGuard) {
        let now = now_micros();
        let entry = Arc::new(ActivityEntry {
            pid: session.pid,
            user: session.user,
            database: session.database,
            application_name: session.application_name,
            client: session.client,
            backend_start: now,
            cancel: session.cancel,
            terminate: session.terminate,
            live: Mutex::new(Live {
                state: BackendState::Idle,
                query: String::new(),
                query_start: None,
                xact_start: None,
                state_change: now,
            }),
        });
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(session.pid, entry.clone());
        }
        (
            entry,
            ActivityGuard {
                pid: session.pid,
                activities: self.clone(),
            },
        )
    }
}

impl SessionDirectory for Activities {
    fn sessions(&self) -> Vec<BackendActivity> {
        let Ok(entries) = self.entries.read() else {
            return Vec::new();
        };
        let mut out: Vec<BackendActivity> = entries
            .values()
            .map(|e| {
                let live = e.live.lock().unwrap_or_else(|p| p.into_inner());
                BackendActivity {
                    pid: e.pid,
                    user: e.user.clone(),
                    database: e.database.clone(),
                    application_name: e.application_name.clone(),
                    client: e.client,
                    backend_start: e.backend_start,
                    xact_start: live.xact_start,
                    query_start: live.query_start,
                    state_change: live.state_change,
                    state: live.state,
                    query: live.query.clone(),
                }
            })
            .collect();
        out.sort_by_key(|s| s.backend_start);
        out
    }

    fn signal(&self, pid: i32, signal: BackendSignal) -> bool {
        let entry = match self.entries.read() {
            Ok(entries) => entries.get(&pid).cloned(),
            Err(_) => None,
        };
        let Some(entry) = entry else {
            return false;
        };
        if signal == BackendSignal::Terminate {
            entry.terminate.0.send_replace(true);
        }
        // The handle's lock is held only to swap a oneshot sender, never
        // across an await of other work, so this does not block.
        futures::executor::block_on(entry.cancel.cancel());
        true
    }
}

fn entry_of<C: ClientInfo + ?Sized>(client: &C) -> Option<Arc<ActivityEntry>> {
    client
        .session_extensions()
        .get::<Arc<ActivityEntry>>()
        .map(|e| (*e).clone())
}

/// Marks the session active, running `sql`.
pub(crate) fn statement_started<C: ClientInfo + ?Sized>(client: &C, sql: &str) {
    let Some(entry) = entry_of(client) else {
        return;
    };
    let now = now_micros();
    let mut live = entry.live.lock().unwrap_or_else(|p| p.into_inner());
    if live.state == BackendState::Idle {
        live.xact_start = Some(now);
    }
    live.state = BackendState::Active;
    live.query.clear();
    live.query.push_str(sql);
    live.query_start = Some(now);
    live.state_change = now;
}

/// Marks the session idle (in or out of a transaction block, as the client
/// was told) after a statement.
pub(crate) fn statement_finished<C: ClientInfo + ?Sized>(client: &C) {
    let Some(entry) = entry_of(client) else {
        return;
    };
    let state = match client.transaction_status() {
        TransactionStatus::Idle => BackendState::Idle,
        TransactionStatus::Transaction => BackendState::IdleInTransaction,
        TransactionStatus::Error => BackendState::IdleInTransactionAborted,
    };
    let mut live = entry.live.lock().unwrap_or_else(|p| p.into_inner());
    live.state = state;
    live.state_change = now_micros();
    if state == BackendState::Idle {
        live.xact_start = None;
    }
}
