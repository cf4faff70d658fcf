//! What a statement produces, in protocol-neutral terms.
//!
//! The engine never writes protocol messages; it returns a [`QueryOutput`] and the
//! wire layer encodes it. Keeping this boundary narrow lets the same session code
//! serve the simple and extended protocols and the refresh scheduler.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;

/// The transaction state reported to the client in ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    /// Not inside an explicit transaction block (autocommit).
    Idle,
    /// Inside `BEGIN … COMMIT`.
    InBlock,
    /// Inside a block in which a statement failed; only ROLLBACK is accepted (25P02).
    Failed,
}

/// A command-completion tag such as `INSERT 0 3` or `CREATE TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTag {
    /// The command word(s), e.g. `INSERT`, `CREATE TABLE`.
    pub tag: String,
    /// The affected row count, for commands that report one.
    pub rows: Option<u64>,
}

/// The format of a COPY data stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    /// Postgres' text format: tab-delimited, `\N` for NULL, backslash escapes.
    Text,
    /// RFC-4180-style CSV with Postgres' options.
    Csv,
    /// Postgres' binary format (`PGCOPY\n\xff\r\n\0` signature, then tuples
    /// of length-prefixed values in each type's binary send format), which
    /// drivers such as asyncpg use for bulk loads. The delimiter, NULL,
    /// header, quote and escape options do not apply to it.
    Binary,
}

/// Options of a COPY statement, already validated by the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    /// Text, CSV or binary.
    pub format: CopyFormat,
    /// Field delimiter (default tab for text, comma for CSV; unused in binary).
    pub delimiter: char,
    /// The string that represents NULL (default `\N` for text, empty for CSV;
    /// unused in binary, where a NULL is a field of length -1).
    pub null: String,
    /// Whether the first line is a header (CSV only; skipped on input, written on output).
    pub header: bool,
    /// CSV quote character.
    pub quote: char,
    /// CSV escape character.
    pub escape: char,
}

/// The target of `COPY … FROM STDIN`: the wire layer decodes rows into batches of
/// this schema and passes them to [`crate::Session::copy_in_batch`].
#[derive(Debug, Clone)]
pub struct CopyInTarget {
    /// The columns being loaded, in input order.
    pub schema: SchemaRef,
    /// Parsed COPY options.
    pub options: CopyOptions,
}

/// The result of executing one statement.
pub enum QueryOutput {
    /// A row-returning statement. Rows stream batch by batch.
    Rows {
        /// The result schema (also what Describe reports).
        schema: SchemaRef,
        /// The batches, produced lazily.
        stream: SendableRecordBatchStream,
        /// The statement that returned them, for the command tag.
        command: RowsCommand,
    },
    /// A statement that completed without rows.
    Command(CommandTag),
    /// `COPY … FROM STDIN`: the client will now send data.
    CopyIn(CopyInTarget),
    /// `COPY … TO STDOUT`.
    CopyOut {
        /// The output schema.
        schema: SchemaRef,
        /// The batches to encode.
        stream: SendableRecordBatchStream,
        /// Output format options.
        options: CopyOptions,
    },
    /// An empty statement.
    Empty,
}

/// What returned rows: the verb of the command tag (`SELECT 3`, `FETCH 3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsCommand {
    /// A query (and SHOW, EXPLAIN).
    Select,
    /// `FETCH` from a cursor.
    Fetch,
    /// `INSERT … RETURNING`.
    Insert,
    /// `UPDATE … RETURNING`.
    Update,
    /// `DELETE … RETURNING`.
    Delete,
}

impl RowsCommand {
    /// The command tag before the row count: the statement's own, as
    /// PostgreSQL sends it also when it returns rows (`INSERT 0 2`, not
    /// `SELECT 2`, for `INSERT … RETURNING`).
    pub fn verb(self) -> &'static str {
        match self {
            RowsCommand::Select => "SELECT",
            RowsCommand::Fetch => "FETCH",
            RowsCommand::Insert => "INSERT 0",
            RowsCommand::Update => "UPDATE",
            RowsCommand::Delete => "DELETE",
        }
    }
}

impl std::fmt::Debug for QueryOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryOutput::Rows { schema, .. } => write!(f, "Rows({schema:?})"),
            QueryOutput::Command(tag) => write!(f, "Command({tag:?})"),
            QueryOutput::CopyIn(target) => write!(f, "CopyIn({target:?})"),
            QueryOutput::CopyOut { schema, .. } => write!(f, "CopyOut({schema:?})"),
            QueryOutput::Empty => write!(f, "Empty"),
        }
    }
}

/// Convenience for building a one-batch result.
pub fn batch_output(batch: RecordBatch) -> QueryOutput {
    let schema = batch.schema();
    let stream = datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
        schema.clone(),
        futures::stream::iter(vec![Ok(batch)]),
    );
    QueryOutput::Rows {
        schema,
        stream: Box::pin(stream),
        command: RowsCommand::Select,
    }
}
