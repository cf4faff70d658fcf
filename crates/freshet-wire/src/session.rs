//! Per-connection state kept in pgwire's session extensions, and the split
//! between the connection runtime and the compute runtime.
//!
//! pgwire owns the connection object, so everything Freshet needs per
//! connection — the engine [`Session`], the cancel handle — hangs off
//! [`ClientInfo::session_extensions`] and is dropped with the connection.
//!
//! Connections (sockets, protocol state, row encoding) run on the server's
//! own I/O runtime; everything that plans or executes SQL runs on the compute
//! runtime [`Server::run_until`](crate::Server::run_until) was called on.
//! DataFusion operators can compute for a long time without yielding; kept on
//! separate threads, they cannot delay a CancelRequest, a handshake or
//! another client's protocol traffic.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use freshet_engine::{Session, TransactionStatus};
use futures::future::BoxFuture;
use futures::StreamExt;
use pgwire::api::{ClientInfo, ConnectionHandle};
use pgwire::messages::response::TransactionStatus as PgTransactionStatus;
use tokio::runtime::Handle;
use tokio::sync::{Mutex, MutexGuard};
use tokio::task::JoinHandle;

use crate::error::{WireError, WireResult};

/// Result batches buffered between the compute task producing them and the
/// connection sending them; small, so a slow client slows the query down
/// instead of letting results pile up in memory.
const STREAM_BUFFER: usize = 2;

/// The engine session of a connection and the runtime its work runs on.
#[derive(Clone)]
pub(crate) struct SessionSlot {
    /// A tokio mutex because statements hold it across awaits (execution,
    /// COPY batches); there is never contention within one connection.
    session: Arc<Mutex<Session>>,
    compute: Handle,
}

impl SessionSlot {
    /// Wraps a freshly created session whose statements run on `compute`.
    pub(crate) fn new(session: Session, compute: Handle) -> Self {
        SessionSlot {
            session: Arc::new(Mutex::new(session)),
            compute,
        }
    }

    /// Locks the session for quick bookkeeping on the connection's own thread
    /// (transaction status, ParameterStatus changes).
    pub(crate) async fn lock(&self) -> MutexGuard<'_, Session> {
        self.session.lock().await
    }

    /// Runs `work` with the session locked, on the compute runtime. Dropping
    /// the returned future (a CancelRequest) aborts the work at its next
    /// await point.
    pub(crate) async fn run<T, F>(&self, work: F) -> WireResult<T>
    where
        T: Send + 'static,
        F: for<'s> FnOnce(&'s mut Session) -> BoxFuture<'s, T> + Send + 'static,
    {
        let session = self.session.clone();
        let task = AbortOnDrop(self.compute.spawn(async move {
            let mut session = session.lock_owned().await;
            work(&mut session).await
        }));
        task.join().await
    }

    /// Runs `work` with the session locked on the calling (connection) thread:
    /// only for statements the engine calls lightweight, where the hand-off
    /// to the compute runtime would cost more than the work.
    pub(crate) async fn run_here<T, F>(&self, work: F) -> WireResult<T>
    where
        F: for<'s> FnOnce(&'s mut Session) -> BoxFuture<'s, T>,
    {
        let mut session = self.session.lock().await;
        Ok(work(&mut session).await)
    }

    /// Moves the polling of `stream` — and so the execution of its plan — to
    /// the compute runtime; the returned stream only receives the batches.
    /// Dropping it aborts the producer.
    pub(crate) fn on_compute(
        &self,
        mut stream: SendableRecordBatchStream,
    ) -> SendableRecordBatchStream {
        let schema = stream.schema();
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_BUFFER);
        let producer = AbortOnDrop(self.compute.spawn(async move {
            while let Some(item) = stream.next().await {
                if tx.send(item).await.is_err() {
                    break;
                }
            }
        }));
        let batches = futures::stream::unfold((rx, producer), |(mut rx, producer)| async move {
            let item = rx.recv().await?;
            Some((item, (rx, producer)))
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, batches))
    }
}

/// A compute task that is aborted when its handle is dropped, so abandoning a
/// statement on the connection side also stops its work.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> WireResult<T> {
        match (&mut self.0).await {
            Ok(value) => Ok(value),
            Err(e) if e.is_cancelled() => Err(WireError::Cancelled),
            Err(e) => Err(WireError::Execution {
                sqlstate: "XX000",
                message: format!("internal error: statement execution failed: {e}"),
            }),
        }
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The engine session of an authenticated connection.
pub(crate) fn session_of<C: ClientInfo + ?Sized>(client: &C) -> WireResult<SessionSlot> {
    client
        .session_extensions()
        .get::<SessionSlot>()
        .map(|slot| (*slot).clone())
        .ok_or_else(|| {
            WireError::protocol("08P01", "connection has no session (not authenticated)")
        })
}

/// Resolves when a CancelRequest for this connection arrives.
pub(crate) type CancelSignal = Pin<Box<dyn Future<Output = WireError> + Send>>;

/// Arms the connection's cancel handle for a new statement; the returned
/// future resolves with the error that ends the statement: a CancelRequest
/// ([`WireError::Cancelled`]) or the session's `statement_timeout` passing
/// ([`WireError::StatementTimeout`]). The timeout counts from here, so it
/// covers a whole simple-protocol Query message (all its statements, as
/// PostgreSQL before 13 did) or one Execute.
///
/// pgwire's own `_on_query` only watches for cancellation while the handler
/// computes its response, not while rows stream out; Freshet's handlers hold the
/// returned future for the whole statement, including streaming and COPY.
pub(crate) async fn cancel_signal<C: ClientInfo + ?Sized>(client: &C) -> CancelSignal {
    let timeout = match session_of(client) {
        Ok(slot) => slot.lock().await.statement_timeout(),
        Err(_) => None,
    };
    let request: Pin<Box<dyn Future<Output = ()> + Send>> =
        match client.session_extensions().get::<Arc<ConnectionHandle>>() {
            Some(handle) => {
                let rx = handle.start_query().await;
                Box::pin(async move {
                    // Err means the sender was replaced by a later statement: never fire.
                    if rx.await.is_err() {
                        futures::future::pending::<()>().await;
                    }
                })
            }
            None => Box::pin(futures::future::pending()),
        };
    Box::pin(async move {
        match timeout {
            Some(limit) => tokio::select! {
                _ = request => WireError::Cancelled,
                _ = tokio::time::sleep(limit) => WireError::StatementTimeout,
            },
            None => {
                request.await;
                WireError::Cancelled
            }
        }
    })
}

/// The ReadyForQuery status for an engine transaction state.
pub(crate) fn pg_status(status: TransactionStatus) -> PgTransactionStatus {
    match status {
        TransactionStatus::Idle => PgTransactionStatus::Idle,
        TransactionStatus::InBlock => PgTransactionStatus::Transaction,
        TransactionStatus::Failed => PgTransactionStatus::Error,
    }
}
