//! Simple and extended query handling.
//!
//! Both protocols end up in the engine [`Session`]; this module turns its
//! [`QueryOutput`]s into protocol messages. The default pgwire flows are
//! overridden (`on_query`, `on_execute`) for three reasons:
//!
//! * results must stream batch by batch — pgwire's portal fetch collects all
//!   rows of an unlimited Execute into memory first;
//! * a CancelRequest must stop a statement while its rows stream out, not only
//!   while it is being planned;
//! * the ReadyForQuery status must be the engine's transaction state, and COPY
//!   needs its exact row count and text/CSV rules.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::BytesMut;
use datafusion::common::ParamValues;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::scalar::ScalarValue;
use freshet_engine::{CommandTag, CopyOptions, PreparedStatement, QueryOutput, Session};
use futures::{FutureExt, Sink, SinkExt, StreamExt};
use pgwire::api::portal::{Format, Portal, PortalExecutionState};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    DescribePortalResponse, DescribeResponse, DescribeStatementResponse, FieldInfo, QueryResponse,
    Response, SendableRowStream,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireConnectionState, Type, DEFAULT_NAME};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyInResponse};
use pgwire::messages::data::{NoData, ParameterDescription, RowDescription};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Describe, Execute, Parse, ParseComplete, PortalSuspended,
    TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};
use pgwire::messages::response::{CommandComplete, EmptyQueryResponse, ReadyForQuery};
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::ParameterStatus;
use pgwire::messages::PgWireBackendMessage;

use crate::copy::{begin_copy_in, copy_in_response, CopyOutEncoder};
use crate::error::{WireError, WireResult};
use crate::session::{cancel_signal, pg_status, session_of, CancelSignal, SessionSlot};
use crate::slow_log::{Outcome, SlowStatementLog};
use crate::types::{arrow_type_for_pg, pg_type_for_param, WireSchema};

/// Handles Query, Parse/Bind/Describe/Execute for one server.
#[derive(Debug, Default)]
pub struct FreshetQueryHandler {
    parser: Arc<FreshetQueryParser>,
    slow_log: SlowStatementLog,
}

impl FreshetQueryHandler {
    /// A handler logging statements that take `slow_statements` or longer
    /// (none when `None`); see [`crate::slow_log`].
    pub fn new(slow_statements: Option<std::time::Duration>) -> Self {
        FreshetQueryHandler {
            parser: Arc::default(),
            slow_log: SlowStatementLog::new(slow_statements),
        }
    }
}

/// Parses (prepares) extended-protocol statements through the engine session.
#[derive(Debug, Default)]
pub struct FreshetQueryParser;

/// The CommandComplete message for an engine command tag (`INSERT 0 n` keeps
/// Postgres' legacy oid slot, which drivers parse positionally).
pub(crate) fn command_complete(tag: &CommandTag) -> CommandComplete {
    let text = match (tag.tag.as_str(), tag.rows) {
        ("INSERT", Some(rows)) => format!("INSERT 0 {rows}"),
        (command, Some(rows)) => format!("{command} {rows}"),
        (command, None) => command.to_owned(),
    };
    CommandComplete::new(text)
}

fn io<E>(err: E) -> WireError
where
    PgWireError: From<E>,
{
    WireError::PgWire(PgWireError::from(err))
}

/// A DataRow stream over the record batches of a result, encoded per `wire`.
fn row_stream(wire: WireSchema, batches: SendableRecordBatchStream) -> SendableRowStream {
    let rows = batches
        .map(move |batch| {
            let rows: Vec<PgWireResult<_>> = match batch {
                Ok(batch) => match wire.encode_batch(&batch) {
                    Ok(rows) => rows.into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e.into())],
                },
                Err(e) => vec![Err(WireError::from_datafusion(e).into())],
            };
            futures::stream::iter(rows)
        })
        .flatten();
    Box::pin(rows)
}

/// Sends up to `max_rows` rows (0 = all); returns the count and whether rows remain.
async fn send_rows<C>(
    client: &mut C,
    rows: &mut SendableRowStream,
    max_rows: usize,
    cancel: &mut CancelSignal,
) -> WireResult<(usize, bool)>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let mut sent = 0;
    loop {
        if max_rows > 0 && sent >= max_rows {
            return Ok((sent, true));
        }
        let next = tokio::select! {
            biased;
            why = &mut *cancel => return Err(why),
            next = rows.next() => next,
        };
        match next {
            None => return Ok((sent, false)),
            Some(Ok(row)) => {
                client
                    .feed(PgWireBackendMessage::DataRow(row))
                    .await
                    .map_err(io)?;
                sent += 1;
            }
            Some(Err(e)) => return Err(WireError::PgWire(e)),
        }
    }
}

/// Streams a `COPY … TO STDOUT`: CopyOutResponse, CopyData…, CopyDone. Returns
/// the number of data rows (the header is not counted).
async fn send_copy_out<C>(
    client: &mut C,
    schema: &datafusion::arrow::datatypes::SchemaRef,
    mut stream: SendableRecordBatchStream,
    options: CopyOptions,
    cancel: &mut CancelSignal,
) -> WireResult<usize>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let encoder = CopyOutEncoder::new(schema, options)?;
    client
        .send(PgWireBackendMessage::CopyOutResponse(encoder.response()?))
        .await
        .map_err(io)?;
    if let Some(header) = encoder.header() {
        client
            .feed(PgWireBackendMessage::CopyData(CopyData::new(header.into())))
            .await
            .map_err(io)?;
    }
    let mut scratch = BytesMut::new();
    let mut rows = 0;
    loop {
        let next = tokio::select! {
            biased;
            why = &mut *cancel => return Err(why),
            next = stream.next() => next,
        };
        let batch = match next {
            None => break,
            Some(Err(e)) => return Err(WireError::from_datafusion(e)),
            Some(Ok(batch)) => batch,
        };
        let mut prepared = encoder.prepare(&batch)?;
        for row in 0..batch.num_rows() {
            let line = encoder.encode_row(&mut prepared, row, &mut scratch)?;
            client
                .feed(PgWireBackendMessage::CopyData(CopyData::new(line.into())))
                .await
                .map_err(io)?;
        }
        rows += batch.num_rows();
    }
    if let Some(trailer) = encoder.trailer() {
        client
            .feed(PgWireBackendMessage::CopyData(CopyData::new(
                trailer.into(),
            )))
            .await
            .map_err(io)?;
    }
    client
        .feed(PgWireBackendMessage::CopyDone(CopyDone::new()))
        .await
        .map_err(io)?;
    Ok(rows)
}

async fn send_copy_in_response<C>(client: &mut C, response: CopyInResponse) -> WireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    client
        .send(PgWireBackendMessage::CopyInResponse(response))
        .await
        .map_err(io)
}

async fn send_parameter_status<C>(client: &mut C, session: &mut Session) -> WireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    for (name, value) in session.take_parameter_status_changes() {
        client
            .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                name, value,
            )))
            .await
            .map_err(io)?;
    }
    Ok(())
}

async fn send_error<C>(client: &mut C, err: WireError) -> WireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    if matches!(err, WireError::Io(_)) {
        return Err(err);
    }
    tracing::debug!(error = %err, "statement failed");
    client
        .feed(PgWireBackendMessage::ErrorResponse(
            err.into_error_info("ERROR").into(),
        ))
        .await
        .map_err(io)
}

fn is_empty_query(sql: &str) -> bool {
    sql.chars().all(|c| c == ';' || c.is_whitespace())
}

/// After a statement failed in the wire layer (a stream error, a cancel, a
/// failed Parse or Describe), puts an open transaction block into the aborted
/// state like Postgres does for every ERROR — or, in autocommit mode, rolls
/// back what a cancelled statement left open — and mirrors the engine's
/// state for the next ReadyForQuery.
async fn fail_statement<C: ClientInfo + ?Sized>(client: &mut C) {
    if let Ok(slot) = session_of(client) {
        let mut session = slot.lock().await;
        session.abandon_statement();
        client.set_transaction_status(pg_status(session.transaction_status()));
    }
}

impl FreshetQueryHandler {
    /// Runs a simple-protocol query string and writes all its responses
    /// (everything up to, not including, ReadyForQuery). Returns `true` when a
    /// COPY FROM STDIN was started and the connection now awaits CopyData,
    /// and how the statements ended (the first error's SQLSTATE, if any).
    async fn run_simple<C>(
        &self,
        client: &mut C,
        sql: &str,
        cancel: &mut CancelSignal,
    ) -> WireResult<(bool, Outcome)>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let slot = session_of(client)?;
        let sql = sql.to_owned();
        let execution =
            slot.run(move |session| Box::pin(async move { session.execute_simple(&sql).await }));
        let results: Vec<WireResult<QueryOutput>> = tokio::select! {
            biased;
            why = &mut *cancel => vec![Err(why)],
            results = execution => match results {
                Ok(results) => results.into_iter().map(|r| r.map_err(WireError::from)).collect(),
                Err(e) => vec![Err(e)],
            }
        };
        let mut session = slot.lock().await;
        let mut copy_started = false;
        let mut outcome_of_all = Outcome::Ok;
        for result in results {
            let outcome = match result {
                Ok(output) => {
                    self.send_output(client, &slot, &mut session, output, cancel)
                        .await
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(started) => {
                    if started {
                        copy_started = true;
                        break;
                    }
                }
                Err(e) => {
                    // The engine cleans up after errors it returns; a stream
                    // that fails midway or a cancelled execution is only seen
                    // here.
                    session.abandon_statement();
                    outcome_of_all = Outcome::Error(e.sqlstate().to_owned());
                    send_error(client, e).await?;
                    break;
                }
            }
        }
        send_parameter_status(client, &mut session).await?;
        client.set_transaction_status(pg_status(session.transaction_status()));
        Ok((copy_started, outcome_of_all))
    }

    /// Writes one simple-protocol statement result. Returns `true` for COPY FROM.
    async fn send_output<C>(
        &self,
        client: &mut C,
        slot: &SessionSlot,
        session: &mut Session,
        output: QueryOutput,
        cancel: &mut CancelSignal,
    ) -> WireResult<bool>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match output {
            QueryOutput::Rows {
                schema,
                stream,
                command,
            } => {
                let wire = WireSchema::new(&schema, &Format::UnifiedText)?;
                client
                    .feed(PgWireBackendMessage::RowDescription(wire.row_description()))
                    .await
                    .map_err(io)?;
                let mut rows = row_stream(wire, slot.on_compute(stream));
                let (count, _) = send_rows(client, &mut rows, 0, cancel).await?;
                client
                    .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                        format!("{} {count}", command.verb()),
                    )))
                    .await
                    .map_err(io)?;
            }
            QueryOutput::Command(tag) => {
                client
                    .feed(PgWireBackendMessage::CommandComplete(command_complete(
                        &tag,
                    )))
                    .await
                    .map_err(io)?;
            }
            QueryOutput::Empty => {
                client
                    .feed(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await
                    .map_err(io)?;
            }
            QueryOutput::CopyOut {
                schema,
                stream,
                options,
            } => {
                let stream = slot.on_compute(stream);
                let rows = send_copy_out(client, &schema, stream, options, cancel).await?;
                client
                    .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                        format!("COPY {rows}"),
                    )))
                    .await
                    .map_err(io)?;
            }
            QueryOutput::CopyIn(target) => {
                let format = target.options.format;
                match begin_copy_in(client, target)
                    .await
                    .and_then(|columns| copy_in_response(format, columns))
                {
                    Ok(response) => {
                        send_copy_in_response(client, response).await?;
                        return Ok(true);
                    }
                    Err(e) => {
                        session.copy_in_abort(&e.to_string());
                        return Err(e);
                    }
                }
            }
        }
        Ok(false)
    }

    /// Executes a bound portal for the first time and returns what to send.
    async fn execute_portal<C>(
        &self,
        client: &mut C,
        portal: &Portal<PreparedStatement>,
        cancel: &mut CancelSignal,
    ) -> WireResult<PortalOutput>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement = portal.statement.statement.clone();
        let params = decode_parameters(portal, &statement)?;
        let slot = session_of(client)?;
        // A point lookup through a unique index takes microseconds: it runs
        // here, and its rows are already in memory. Only if it must be
        // planned after all does it go to the compute runtime.
        let looked_up = if statement.is_point_lookup() {
            let (statement, params) = (statement.clone(), params.clone());
            slot.run_here(move |session| {
                Box::pin(async move { session.execute_point_lookup(&statement, &params).await })
            })
            .await?
        } else {
            None
        };
        let in_memory = looked_up.is_some();
        let result = match looked_up {
            Some(result) => result.map_err(WireError::from),
            None => {
                let execution = if statement.is_lightweight() {
                    slot.run_here(move |session| {
                        Box::pin(async move { session.execute_prepared(&statement, params).await })
                    })
                    .boxed()
                } else {
                    slot.run(move |session| {
                        Box::pin(async move { session.execute_prepared(&statement, params).await })
                    })
                    .boxed()
                };
                tokio::select! {
                    biased;
                    why = &mut *cancel => Err(why),
                    result = execution => result.and_then(|r| r.map_err(WireError::from)),
                }
            }
        };
        let mut session = slot.lock().await;
        send_parameter_status(client, &mut session).await?;
        client.set_transaction_status(pg_status(session.transaction_status()));
        Ok(match result? {
            QueryOutput::Rows {
                schema,
                stream,
                command,
            } => {
                let wire = WireSchema::new(&schema, &portal.result_column_format)?;
                let stream = if in_memory {
                    stream
                } else {
                    slot.on_compute(stream)
                };
                let mut response =
                    QueryResponse::new(wire.fields().clone(), row_stream(wire, stream));
                response.set_command_tag(command.verb());
                PortalOutput::Rows(response)
            }
            QueryOutput::Command(tag) => PortalOutput::Complete(command_complete(&tag)),
            QueryOutput::Empty => PortalOutput::Empty,
            QueryOutput::CopyOut {
                schema,
                stream,
                options,
            } => match send_copy_out(client, &schema, slot.on_compute(stream), options, cancel)
                .await
            {
                Ok(rows) => PortalOutput::Complete(CommandComplete::new(format!("COPY {rows}"))),
                Err(e) => {
                    session.abandon_statement();
                    client.set_transaction_status(pg_status(session.transaction_status()));
                    return Err(e);
                }
            },
            QueryOutput::CopyIn(target) => {
                let format = target.options.format;
                match begin_copy_in(client, target)
                    .await
                    .and_then(|columns| copy_in_response(format, columns))
                {
                    Ok(response) => PortalOutput::CopyIn(response),
                    Err(e) => {
                        session.copy_in_abort(&e.to_string());
                        client.set_transaction_status(pg_status(session.transaction_status()));
                        return Err(e);
                    }
                }
            }
        })
    }

    async fn execute<C>(&self, client: &mut C, message: Execute) -> WireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PreparedStatement>,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let portal_name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let max_rows = usize::try_from(message.max_rows.max(0)).unwrap_or(0);
        let portal = match client.portal_store().get_portal(portal_name) {
            Some(Entry::Value(portal)) => portal,
            Some(Entry::Empty) => {
                client
                    .feed(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await
                    .map_err(io)?;
                return Ok(());
            }
            None => return Err(PgWireError::PortalNotFound(portal_name.to_owned()).into()),
        };
        let mut cancel = cancel_signal(client).await;
        let state = portal.state();
        let mut state = state.lock().await;
        if matches!(*state, PortalExecutionState::Initial) {
            match self.execute_portal(client, &portal, &mut cancel).await {
                Ok(PortalOutput::Rows(response)) => {
                    *state = PortalExecutionState::Suspended(response);
                }
                Ok(PortalOutput::Complete(complete)) => {
                    *state = PortalExecutionState::Finished;
                    client
                        .feed(PgWireBackendMessage::CommandComplete(complete))
                        .await
                        .map_err(io)?;
                    return Ok(());
                }
                Ok(PortalOutput::Empty) => {
                    *state = PortalExecutionState::Finished;
                    client
                        .feed(PgWireBackendMessage::EmptyQueryResponse(
                            EmptyQueryResponse::new(),
                        ))
                        .await
                        .map_err(io)?;
                    return Ok(());
                }
                Ok(PortalOutput::CopyIn(response)) => {
                    *state = PortalExecutionState::Finished;
                    client.set_state(PgWireConnectionState::CopyInProgress(true));
                    send_copy_in_response(client, response).await?;
                    return Ok(());
                }
                Err(e) => {
                    *state = PortalExecutionState::Finished;
                    return Err(e);
                }
            }
        }
        match &mut *state {
            PortalExecutionState::Suspended(response) => {
                let result = send_rows(client, response.data_rows(), max_rows, &mut cancel).await;
                match result {
                    Ok((_, true)) => {
                        client
                            .feed(PgWireBackendMessage::PortalSuspended(PortalSuspended::new()))
                            .await
                            .map_err(io)?;
                    }
                    Ok((count, false)) => {
                        let verb = response.command_tag().to_owned();
                        *state = PortalExecutionState::Finished;
                        client
                            .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                                format!("{verb} {count}"),
                            )))
                            .await
                            .map_err(io)?;
                    }
                    Err(e) => {
                        *state = PortalExecutionState::Finished;
                        return Err(e);
                    }
                }
            }
            _ => {
                client
                    .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                        "SELECT 0".to_owned(),
                    )))
                    .await
                    .map_err(io)?;
            }
        }
        Ok(())
    }
}

/// What the first Execute of a portal produced.
enum PortalOutput {
    Rows(QueryResponse),
    Complete(CommandComplete),
    Empty,
    CopyIn(CopyInResponse),
}

/// Decodes the Bind parameters of `portal` into values of the statement's
/// parameter types.
fn decode_parameters(
    portal: &Portal<PreparedStatement>,
    statement: &PreparedStatement,
) -> WireResult<Vec<ScalarValue>> {
    let expected = statement.param_types.len();
    if portal.parameters.len() != expected {
        return Err(WireError::protocol(
            "08P01",
            format!(
                "bind message supplies {} parameters, but prepared statement requires {}",
                portal.parameters.len(),
                expected
            ),
        ));
    }
    if expected == 0 {
        return Ok(Vec::new());
    }
    if let Format::Individual(codes) = &portal.parameter_format {
        if codes.len() != expected {
            return Err(WireError::protocol(
                "08P01",
                format!(
                    "bind message has {} parameter formats but {} parameters",
                    codes.len(),
                    expected
                ),
            ));
        }
    }
    let inferred: Vec<_> = statement.param_types.iter().map(Some).collect();
    let server_types = described_parameter_types(statement);
    let server_refs: Vec<_> = server_types.iter().map(Some).collect();
    // arrow-pg cannot decode json/jsonb parameters (it asks for a String,
    // which postgres-types refuses for those types), and reads float text
    // otherwise than PostgreSQL ('1e400' as Infinity, ' 1.5' refused): those
    // are decoded here and hidden from it as NULL text.
    let decoded: Vec<Option<ScalarValue>> = (0..expected)
        .map(|idx| {
            let declared = portal.statement.parameter_types.get(idx).cloned().flatten();
            let ty = declared.unwrap_or_else(|| server_types[idx].clone());
            if ty == Type::JSON || ty == Type::JSONB {
                decode_json_parameter(portal, idx, &ty).map(Some)
            } else {
                match statement.param_types.get(idx) {
                    Some(target) => decode_float_parameter(portal, idx, target),
                    None => Ok(None),
                }
            }
        })
        .collect::<WireResult<_>>()?;
    let values = if decoded.iter().any(Option::is_some) {
        let mut types = portal.statement.parameter_types.clone();
        types.resize(expected, None);
        let mut parameters = portal.parameters.clone();
        for (idx, value) in decoded.iter().enumerate() {
            if value.is_some() {
                types[idx] = Some(Type::TEXT);
                parameters[idx] = None;
            }
        }
        let statement = Arc::new(StoredStatement::new(
            portal.statement.id.clone(),
            portal.statement.statement.clone(),
            types,
        ));
        let bind = Bind::new(
            None,
            None,
            format_codes(&portal.parameter_format),
            parameters,
            Vec::new(),
        );
        let stripped = Portal::try_new(&bind, statement)?;
        arrow_pg::datatypes::df::deserialize_parameters_with_server_types(
            &stripped,
            &inferred,
            &server_refs,
        )?
    } else {
        arrow_pg::datatypes::df::deserialize_parameters_with_server_types(
            portal,
            &inferred,
            &server_refs,
        )?
    };
    let ParamValues::List(values) = values else {
        return Err(WireError::protocol("08P01", "unexpected named parameters"));
    };
    if values.len() != expected {
        return Err(WireError::protocol(
            "08P01",
            "could not decode all bind parameters",
        ));
    }
    values
        .into_iter()
        .zip(decoded)
        .zip(&statement.param_types)
        .enumerate()
        .map(|(idx, ((value, decoded), target))| {
            let value = decoded.unwrap_or(value.value);
            if &value.data_type() == target {
                return Ok(value);
            }
            value.cast_to(target).map_err(|e| {
                WireError::protocol(
                    "22P02",
                    format!("invalid value for parameter ${}: {e}", idx + 1),
                )
            })
        })
        .collect()
}

/// A text-format parameter bound to a `real` or `double precision`, read as
/// PostgreSQL's `float4in`/`float8in` read it: arrow-pg's decoding would take
/// '1e400' for Infinity, where PostgreSQL raises 22003.
fn decode_float_parameter(
    portal: &Portal<PreparedStatement>,
    idx: usize,
    target: &datafusion::arrow::datatypes::DataType,
) -> WireResult<Option<ScalarValue>> {
    use datafusion::arrow::datatypes::DataType;
    if !matches!(target, DataType::Float32 | DataType::Float64)
        || portal.parameter_format.is_binary(idx)
    {
        return Ok(None);
    }
    let Some(Some(bytes)) = portal.parameters.get(idx) else {
        return Ok(None);
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(None);
    };
    Ok(Some(match target {
        DataType::Float32 => ScalarValue::Float32(Some(freshet_engine::parse_float4(text)?)),
        _ => ScalarValue::Float64(Some(freshet_engine::parse_float8(text)?)),
    }))
}

/// The format codes that produce `format` again (for rebuilding a Bind).
fn format_codes(format: &Format) -> Vec<i16> {
    match format {
        Format::UnifiedText => Vec::new(),
        Format::UnifiedBinary => vec![1],
        Format::Individual(codes) => codes.clone(),
    }
}

/// A json or jsonb parameter as text: the document itself in text format and
/// for binary json; binary jsonb carries a version byte (1) first.
fn decode_json_parameter(
    portal: &Portal<PreparedStatement>,
    idx: usize,
    ty: &Type,
) -> WireResult<ScalarValue> {
    let Some(Some(bytes)) = portal.parameters.get(idx) else {
        return Ok(ScalarValue::Utf8(None));
    };
    let mut document = &bytes[..];
    if portal.parameter_format.is_binary(idx) && *ty == Type::JSONB {
        match document.split_first() {
            Some((1, rest)) => document = rest,
            _ => {
                return Err(WireError::protocol(
                    "22P03",
                    format!("unsupported jsonb version number in parameter ${}", idx + 1),
                ))
            }
        }
    }
    let text = std::str::from_utf8(document).map_err(|_| {
        WireError::protocol(
            "22021",
            format!(
                "invalid byte sequence for encoding \"UTF8\" in parameter ${}",
                idx + 1
            ),
        )
    })?;
    Ok(ScalarValue::Utf8(Some(text.to_owned())))
}

#[async_trait]
impl SimpleQueryHandler for FreshetQueryHandler {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        if let Some(error) = crate::utf8::invalid_text_error(&query.query) {
            fail_statement(client).await;
            return Err(error.into());
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        let started = std::time::Instant::now();
        let copy_started = if is_empty_query(&query.query) {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
            false
        } else {
            if crate::slow_log::logs_start() {
                crate::slow_log::log_start(client, &query.query);
            }
            crate::activity::statement_started(client, &query.query);
            let mut cancel = cancel_signal(client).await;
            let result = self.run_simple(client, &query.query, &mut cancel).await;
            crate::activity::statement_finished(client);
            match result {
                Ok((copy_started, outcome)) => {
                    self.slow_log
                        .record(client, &query.query, started.elapsed(), &outcome);
                    copy_started
                }
                Err(e) => {
                    // Only connection-level failures get here; statement errors
                    // were already reported in order.
                    self.slow_log.record(
                        client,
                        &query.query,
                        started.elapsed(),
                        &Outcome::Error(e.sqlstate().to_owned()),
                    );
                    client.set_state(PgWireConnectionState::ReadyForQuery);
                    return Err(e.into());
                }
            }
        };
        if copy_started {
            client.set_state(PgWireConnectionState::CopyInProgress(false));
            client.flush().await?;
        } else {
            client.set_state(PgWireConnectionState::ReadyForQuery);
            let status = client.transaction_status();
            client
                .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                    status,
                )))
                .await?;
        }
        Ok(())
    }

    async fn do_query<C>(&self, _client: &mut C, _query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // `on_query` is overridden and never calls this.
        Err(WireError::protocol("XX000", "internal error: simple query path bypassed").into())
    }
}

#[async_trait]
impl QueryParser for FreshetQueryParser {
    type Statement = PreparedStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        if let Some(error) = crate::utf8::invalid_text_error(sql) {
            return Err(error.into());
        }
        let declared: Vec<_> = types
            .iter()
            .map(|t| t.as_ref().and_then(arrow_type_for_pg))
            .collect();
        let slot = session_of(client)?;
        let sql = sql.to_owned();
        slot.run(move |session| Box::pin(async move { session.prepare(&sql, &declared).await }))
            .await
            .and_then(|prepared| prepared.map_err(WireError::from))
            .map(Some)
            .map_err(Into::into)
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        Ok(described_parameter_types(stmt))
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match &stmt.result_schema {
            None => Ok(Vec::new()),
            Some(schema) => {
                let wire = WireSchema::new(schema, column_format.unwrap_or(&Format::UnifiedText))?;
                Ok(wire.fields().as_ref().clone())
            }
        }
    }
}

/// Creates the portal a Bind names from its prepared statement.
fn bind_portal<C>(client: &mut C, message: &Bind) -> PgWireResult<()>
where
    C: ClientPortalStore,
    C::PortalStore: PortalStore<Statement = PreparedStatement>,
{
    let statement = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
    let store = client.portal_store();
    match store.get_statement(statement) {
        Some(Entry::Value(prepared)) => {
            store.put_portal(Arc::new(Portal::try_new(message, prepared)?));
            Ok(())
        }
        Some(Entry::Empty) if message.parameters.is_empty() => {
            store.put_empty_portal(message.portal_name.as_deref().unwrap_or(DEFAULT_NAME));
            Ok(())
        }
        Some(Entry::Empty) => Err(WireError::protocol(
            "08P01",
            format!(
                "bind message supplies {} parameters, but prepared statement \"{statement}\" requires 0",
                message.parameters.len()
            ),
        )
        .into()),
        None => Err(PgWireError::StatementNotFound(statement.to_owned())),
    }
}

/// Queues the reply to a Describe: the parameter types (for a statement),
/// then the row description, or NoData for a statement that returns no
/// rows (an INSERT without RETURNING, even one with parameters: pgjdbc
/// counts a batch's rows wrongly after an empty RowDescription). Not
/// flushed; see `on_bind`.
async fn feed_describe_response<C, R>(
    client: &mut C,
    response: &R,
    returns_rows: bool,
) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    R: DescribeResponse,
{
    if let Some(types) = response.parameters() {
        let oids = types.iter().map(|t| t.oid()).collect();
        client
            .feed(PgWireBackendMessage::ParameterDescription(
                ParameterDescription::new(oids),
            ))
            .await?;
    }
    let reply = if !returns_rows {
        PgWireBackendMessage::NoData(NoData::new())
    } else {
        let fields = response.fields().iter().map(Into::into).collect();
        PgWireBackendMessage::RowDescription(RowDescription::new(fields))
    };
    client.feed(reply).await?;
    Ok(())
}

impl FreshetQueryHandler {
    /// Answers a Describe of a prepared statement or a portal.
    async fn describe<C>(&self, client: &mut C, message: &Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PreparedStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        match message.target_type {
            TARGET_TYPE_BYTE_STATEMENT => match client.portal_store().get_statement(name) {
                Some(Entry::Value(statement)) => {
                    let response = self.do_describe_statement(client, &statement).await?;
                    let returns_rows = statement.statement.result_schema.is_some();
                    feed_describe_response(client, &response, returns_rows).await
                }
                Some(Entry::Empty) => {
                    let response = DescribeStatementResponse::no_data();
                    feed_describe_response(client, &response, false).await
                }
                None => Err(PgWireError::StatementNotFound(name.to_owned())),
            },
            TARGET_TYPE_BYTE_PORTAL => match client.portal_store().get_portal(name) {
                Some(Entry::Value(portal)) => {
                    let response = self.do_describe_portal(client, &portal).await?;
                    let returns_rows = portal.statement.statement.result_schema.is_some();
                    feed_describe_response(client, &response, returns_rows).await
                }
                Some(Entry::Empty) => {
                    let response = DescribePortalResponse::no_data();
                    feed_describe_response(client, &response, false).await
                }
                None => Err(PgWireError::PortalNotFound(name.to_owned())),
            },
            other => Err(PgWireError::InvalidTargetType(other)),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for FreshetQueryHandler {
    type Statement = PreparedStatement;
    type QueryParser = FreshetQueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        let started = std::time::Instant::now();
        // The statement's text, for pg_stat_activity and the slow-statement log.
        let sql = match client
            .portal_store()
            .get_portal(message.name.as_deref().unwrap_or(DEFAULT_NAME))
        {
            Some(Entry::Value(portal)) => portal.statement.statement.sql.clone(),
            _ => String::new(),
        };
        if crate::slow_log::logs_start() {
            crate::slow_log::log_start(client, &sql);
        }
        crate::activity::statement_started(client, &sql);
        let result = self.execute(client, message).await;
        crate::activity::statement_finished(client);
        if !matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
            client.set_state(PgWireConnectionState::ReadyForQuery);
        }
        let elapsed = started.elapsed();
        if self.slow_log.is_slow(elapsed) {
            let outcome = match &result {
                Ok(()) => Outcome::Ok,
                Err(e) => Outcome::Error(e.sqlstate().to_owned()),
            };
            self.slow_log.record(client, &sql, elapsed, &outcome);
        }
        if result.is_err() {
            fail_statement(client).await;
        }
        result.map_err(Into::into)
    }

    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // pgwire's default, plus failing the transaction block on error.
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME).to_owned();
        let parsed = StoredStatement::parse(client, &message, self.query_parser()).await;
        match parsed {
            Ok(Some(statement)) => client.portal_store().put_statement(Arc::new(statement)),
            Ok(None) => client.portal_store().put_empty_statement(&name),
            Err(e) => {
                fail_statement(client).await;
                return Err(e);
            }
        }
        client
            .feed(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let result = bind_portal(client, &message);
        if result.is_err() {
            fail_statement(client).await;
        }
        result?;
        // Buffered like every reply before Sync or Flush (as PostgreSQL
        // does): a client pipelining Bind/Describe/Execute/Sync gets one
        // socket write, not one per message.
        client
            .feed(PgWireBackendMessage::BindComplete(BindComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let result = self.describe(client, &message).await;
        if result.is_err() {
            fail_statement(client).await;
        }
        result
    }

    async fn do_query<C>(
        &self,
        _client: &mut C,
        _portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // `on_execute` is overridden and never calls this.
        Err(WireError::protocol("XX000", "internal error: extended query path bypassed").into())
    }
}

/// The Postgres types of a prepared statement's parameters: json where the
/// engine says the parameter is json (its Arrow type is plain text).
fn described_parameter_types(statement: &PreparedStatement) -> Vec<Type> {
    statement
        .param_types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if statement.json_params.get(i).copied().unwrap_or(false) {
                Type::JSON
            } else {
                pg_type_for_param(t)
            }
        })
        .collect()
}
