//! Per-connection state kept in pgwire's session extensions.
//!
//! pgwire owns the connection object, so everything Freshet needs per
//! connection — the engine [`Session`], the cancel handle — hangs off
//! [`ClientInfo::session_extensions`] and is dropped with the connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use freshet_engine::{Session, TransactionStatus};
use pgwire::api::{ClientInfo, ConnectionHandle};
use pgwire::messages::response::TransactionStatus as PgTransactionStatus;
use tokio::sync::Mutex;

use crate::error::{WireError, WireResult};

/// The engine session of a connection. A tokio mutex because statements hold it
/// across awaits (execution, streaming, COPY batches); there is never contention
/// within one connection, the lock only satisfies the borrow rules.
pub(crate) struct SessionSlot(pub(crate) Arc<Mutex<Session>>);

/// The engine session of an authenticated connection.
pub(crate) fn session_of<C: ClientInfo + ?Sized>(client: &C) -> WireResult<Arc<Mutex<Session>>> {
    client
        .session_extensions()
        .get::<SessionSlot>()
        .map(|slot| slot.0.clone())
        .ok_or_else(|| {
            WireError::protocol("08P01", "connection has no session (not authenticated)")
        })
}

/// Resolves when a CancelRequest for this connection arrives.
pub(crate) type CancelSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Arms the connection's cancel handle for a new statement.
///
/// pgwire's own `_on_query` only watches for cancellation while the handler
/// computes its response, not while rows stream out; Freshet's handlers hold the
/// returned future for the whole statement, including streaming and COPY.
pub(crate) async fn cancel_signal<C: ClientInfo + ?Sized>(client: &C) -> CancelSignal {
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
    }
}

/// The ReadyForQuery status for an engine transaction state.
pub(crate) fn pg_status(status: TransactionStatus) -> PgTransactionStatus {
    match status {
        TransactionStatus::Idle => PgTransactionStatus::Idle,
        TransactionStatus::InBlock => PgTransactionStatus::Transaction,
        TransactionStatus::Failed => PgTransactionStatus::Error,
    }
}
