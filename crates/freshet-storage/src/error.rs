//! The single error type of the storage layer.
//!
//! Every fallible storage call returns [`StorageError`]. The wire layer needs a
//! PostgreSQL SQLSTATE for each failure so that clients (and retry loops in
//! drivers) can react correctly — most importantly `40001`, which tells a
//! client that retrying the whole transaction is safe and expected.

use crate::{Seq, TableId};

/// Any failure reported by the storage layer.
///
/// Variants are coarse on purpose: callers mostly need the SQLSTATE (see
/// [`StorageError::sqlstate`]) and a human-readable message.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A write-write conflict with a transaction that committed after our
    /// snapshot was taken. Retrying the transaction from scratch is safe.
    #[error("could not serialize access due to concurrent update: {0}")]
    SerializationFailure(String),
    /// A write would give two live rows the same key in a unique index
    /// (PRIMARY KEY or UNIQUE constraint).
    #[error("duplicate key value violates unique constraint \"{constraint}\"")]
    UniqueViolation {
        /// The table whose index the write violates.
        table: TableId,
        /// The constraint's name.
        constraint: String,
        /// PostgreSQL's detail line, `Key (id)=(1) already exists.`
        detail: String,
    },
    /// A unique index cannot be created: two live rows share a key.
    #[error("could not create unique index \"{index}\"")]
    UniqueIndexDuplicate {
        /// The index's name.
        index: String,
        /// PostgreSQL's detail line, `Key (id)=(1) is duplicated.`
        detail: String,
    },
    /// The table id does not name a table visible at the requested snapshot.
    #[error("table with id {0} does not exist")]
    UnknownTable(TableId),
    /// A projection or column reference is out of range for the table.
    #[error("column {0} does not exist")]
    UnknownColumn(String),
    /// A batch or default value does not match the table's column types.
    #[error("schema mismatch: {0}")]
    SchemaMismatch(String),
    /// The requested version was already reclaimed (below the retention floor).
    #[error("snapshot too old: seq {requested} is older than the oldest retained seq {floor}")]
    SnapshotTooOld {
        /// The seq that was asked for.
        requested: Seq,
        /// The oldest seq whose history is still retained.
        floor: Seq,
    },
    /// The requested version does not exist yet.
    #[error("seq {requested} is newer than the latest committed seq {latest}")]
    FutureSeq {
        /// The seq that was asked for.
        requested: Seq,
        /// The newest committed seq.
        latest: Seq,
    },
    /// A caller passed an argument that can never be valid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The operating system reported an I/O failure.
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What the storage layer was doing.
        context: String,
        /// The underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// On-disk data failed validation somewhere other than the WAL tail
    /// (a torn WAL tail is expected after a crash and is silently repaired).
    #[error("data corrupted: {0}")]
    Corrupt(String),
    /// The store was closed; no further commits are accepted.
    #[error("the store is closed")]
    Closed,
    /// Another process has the data directory open.
    #[error("data directory {0} is in use by another process")]
    Locked(String),
    /// An Arrow kernel or IPC codec failed.
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The Parquet reader or writer failed.
    #[error("parquet error: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A broken internal invariant; indicates a bug.
    #[error("internal storage error: {0}")]
    Internal(String),
}

impl StorageError {
    /// The PostgreSQL SQLSTATE code that best describes this error, so the
    /// wire layer can report it verbatim.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            StorageError::SerializationFailure(_) => "40001",
            StorageError::UniqueViolation { .. } | StorageError::UniqueIndexDuplicate { .. } => {
                "23505"
            }
            StorageError::UnknownTable(_) => "42P01",
            StorageError::UnknownColumn(_) => "42703",
            StorageError::SchemaMismatch(_) => "42804",
            StorageError::SnapshotTooOld { .. } => "72000",
            StorageError::FutureSeq { .. } | StorageError::InvalidArgument(_) => "22023",
            StorageError::Io { .. } => "58030",
            StorageError::Corrupt(_) => "XX001",
            StorageError::Closed => "57P01",
            StorageError::Locked(_) => "55006",
            StorageError::Arrow(_) | StorageError::Parquet(_) | StorageError::Internal(_) => {
                "XX000"
            }
        }
    }

    /// The DETAIL line PostgreSQL sends with this error, if any.
    pub fn detail(&self) -> Option<&str> {
        match self {
            StorageError::UniqueViolation { detail, .. }
            | StorageError::UniqueIndexDuplicate { detail, .. } => Some(detail),
            _ => None,
        }
    }

    /// The table and constraint a unique violation is about, which
    /// PostgreSQL names in the error's table and constraint fields.
    pub fn violated_constraint(&self) -> Option<(TableId, &str)> {
        match self {
            StorageError::UniqueViolation {
                table, constraint, ..
            } => Some((*table, constraint)),
            _ => None,
        }
    }

    /// Wraps an I/O error with a description of what was being attempted.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StorageError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
