//! SQL cursors: `DECLARE name CURSOR [WITH HOLD] FOR query`, `FETCH` and
//! `CLOSE`.
//!
//! Drivers stream big results through cursors (psycopg's server-side
//! cursors, psycopg2's named cursors). A cursor keeps its query's DataFusion
//! stream: each FETCH pulls the rows it asks for and keeps the rest of the
//! last batch, so a result is never held whole.
//!
//! Cursors are forward-only, PostgreSQL's NO SCROLL: `SCROLL` and backward
//! or absolute fetches are refused (0A000, 55000). `FETCH 0` (`FORWARD 0`,
//! `RELATIVE 0`) answers the current row again, as PostgreSQL does: the
//! cursor keeps the last row it returned until it moves past the end. A cursor without HOLD
//! may only be declared in a transaction block and closes when the block
//! ends; one WITH HOLD stays open across commits until CLOSE or the end of
//! the session, reading the snapshot it was declared in (stored batches are
//! immutable, so nothing is copied).

use std::collections::HashMap;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::sql::sqlparser::ast::{CloseCursor, Declare, FetchDirection, Ident, Statement};
use futures::StreamExt;

use crate::commands::command;
use crate::planning::map_df_error;
use crate::session::Session;
use crate::{EngineError, QueryOutput, RowsCommand, TransactionStatus};

/// An open cursor.
pub(crate) struct Cursor {
    schema: SchemaRef,
    /// The query's stream. A session is shared between threads, and a
    /// stream is not `Sync`; the mutex makes it so. It is never locked:
    /// FETCH reaches the stream through `get_mut`, holding the cursor
    /// exclusively.
    stream: std::sync::Mutex<SendableRecordBatchStream>,
    /// Rows of the last batch pulled that no FETCH has returned yet.
    leftover: Option<RecordBatch>,
    /// The row the cursor is on (the last one returned), for `FETCH 0`;
    /// `None` before the first row and after the last.
    current: Option<RecordBatch>,
    /// Declared WITH HOLD: survives the end of its transaction.
    hold: bool,
}

/// The session's open cursors, by (folded) name.
#[derive(Default)]
pub(crate) struct Cursors {
    open: HashMap<String, Cursor>,
}

impl Cursors {
    /// The row description of `FETCH … FROM name`, if the cursor is open.
    pub(crate) fn schema(&self, name: &Ident) -> Option<SchemaRef> {
        self.open
            .get(&crate::names::ident(name))
            .map(|c| c.schema.clone())
    }

    /// Closes the cursors that end with their transaction.
    pub(crate) fn end_transaction(&mut self) {
        self.open.retain(|_, cursor| cursor.hold);
    }

    /// Closes every cursor (`DISCARD ALL`).
    pub(crate) fn close_all(&mut self) {
        self.open.clear();
    }
}

/// `DECLARE name CURSOR … FOR query`.
pub(crate) async fn declare(
    session: &mut Session,
    declares: &[Declare],
    params: Option<ParamValues>,
) -> Result<QueryOutput, EngineError> {
    let [declare] = declares else {
        return Err(EngineError::new("42601", "DECLARE takes one cursor"));
    };
    let (Some(query), [name]) = (&declare.for_query, declare.names.as_slice()) else {
        return Err(EngineError::new(
            "0A000",
            "only DECLARE name CURSOR FOR query is supported",
        ));
    };
    if declare.scroll == Some(true) {
        return Err(EngineError::new(
            "0A000",
            "SCROLL cursors are not supported; cursors are forward-only",
        ));
    }
    let hold = declare.hold == Some(true);
    if !hold && session.transaction_status() != TransactionStatus::InBlock {
        return Err(EngineError::new(
            "25P01",
            "DECLARE CURSOR can only be used in transaction blocks",
        ));
    }
    let key = crate::names::ident(name);
    if session.cursors.open.contains_key(&key) {
        return Err(EngineError::new(
            "42P03",
            format!("cursor \"{key}\" already exists"),
        ));
    }
    let output =
        crate::commands::run_query(session, Statement::Query(query.clone()), params).await?;
    let QueryOutput::Rows { schema, stream, .. } = output else {
        return Err(EngineError::new(
            "XX000",
            "a cursor's query returned no rows",
        ));
    };
    session.cursors.open.insert(
        key,
        Cursor {
            schema,
            stream: std::sync::Mutex::new(stream),
            leftover: None,
            current: None,
            hold,
        },
    );
    Ok(command("DECLARE CURSOR", None))
}

/// Where a FETCH moves the cursor.
#[derive(Debug, PartialEq)]
enum Step {
    /// `FETCH 0`, `FORWARD 0`, `RELATIVE 0`: stay, and answer the current row.
    Stay,
    /// Forward by this many rows (`None`: all that are left).
    Forward(Option<usize>),
}

/// The step a FETCH asks for; backward and absolute moves are refused.
fn step(direction: &FetchDirection) -> Result<Step, EngineError> {
    let count = |value: &dyn std::fmt::Display| {
        value
            .to_string()
            .parse::<i64>()
            .map_err(|_| EngineError::new("42601", format!("invalid FETCH count: {value}")))
    };
    let n = match direction {
        FetchDirection::Next | FetchDirection::Forward { limit: None } => 1,
        FetchDirection::All | FetchDirection::ForwardAll => return Ok(Step::Forward(None)),
        FetchDirection::Count { limit } => count(limit)?,
        FetchDirection::Forward { limit: Some(limit) } => count(limit)?,
        FetchDirection::Relative { limit } if count(limit)? == 0 => 0,
        _ => -1,
    };
    match usize::try_from(n) {
        Ok(0) => Ok(Step::Stay),
        Ok(n) => Ok(Step::Forward(Some(n))),
        Err(_) => Err(EngineError::new(
            "55000",
            "cursor can only scan forward (Freshet's cursors are NO SCROLL)",
        )),
    }
}

/// `FETCH [direction] FROM name`: the next rows of the cursor.
pub(crate) async fn fetch(
    session: &mut Session,
    name: &Ident,
    direction: &FetchDirection,
) -> Result<QueryOutput, EngineError> {
    let step = step(direction)?;
    let key = crate::names::ident(name);
    let cursor = session
        .cursors
        .open
        .get_mut(&key)
        .ok_or_else(|| EngineError::new("34000", format!("cursor \"{key}\" does not exist")))?;
    let mut rows = Vec::new();
    match step {
        Step::Stay => rows.extend(cursor.current.clone()),
        Step::Forward(wanted) => {
            let stream = cursor
                .stream
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut have = 0usize;
            while wanted.is_none_or(|w| have < w) {
                let batch = match cursor.leftover.take() {
                    Some(batch) => batch,
                    None => match stream.next().await {
                        Some(batch) => batch.map_err(map_df_error)?,
                        None => {
                            // Moved past the last row: no current row.
                            cursor.current = None;
                            break;
                        }
                    },
                };
                let take = wanted.map_or(batch.num_rows(), |w| (w - have).min(batch.num_rows()));
                if take < batch.num_rows() {
                    cursor.leftover = Some(batch.slice(take, batch.num_rows() - take));
                }
                if take > 0 {
                    cursor.current = Some(batch.slice(take - 1, 1));
                }
                have += take;
                rows.push(batch.slice(0, take));
            }
        }
    }
    let schema = cursor.schema.clone();
    let stream = datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
        schema.clone(),
        futures::stream::iter(rows.into_iter().map(Ok)),
    );
    Ok(QueryOutput::Rows {
        schema,
        stream: Box::pin(stream),
        command: RowsCommand::Fetch,
    })
}

/// `CLOSE name` or `CLOSE ALL`.
pub(crate) fn close(
    session: &mut Session,
    which: &CloseCursor,
) -> Result<QueryOutput, EngineError> {
    match which {
        CloseCursor::All => session.cursors.close_all(),
        CloseCursor::Specific { name } => {
            let key = crate::names::ident(name);
            if session.cursors.open.remove(&key).is_none() {
                return Err(EngineError::new(
                    "34000",
                    format!("cursor \"{key}\" does not exist"),
                ));
            }
        }
    }
    Ok(command("CLOSE CURSOR", None))
}
