//! Durable, versioned, change-tracked columnar storage: WAL, MVCC snapshots,
//! change feeds, Parquet checkpoints.
//!
//! Freshet keeps "dynamic tables" incrementally up to date, so besides
//! ordinary snapshot-isolated reads and writes the storage layer must answer
//! "which rows changed between commit A and commit B?" in time proportional
//! to the change rather than to the table. This crate provides exactly that:
//!
//! * [`Store`] — the shared handle (`Arc<Store>`, `Send + Sync`). Opening it
//!   recovers from the last checkpoint plus the write-ahead log.
//! * [`Snapshot`] — a consistent read-only view at one commit sequence number
//!   ([`Seq`]); scans return Arrow [`RecordBatch`]es sharing buffers with the
//!   store.
//! * [`Transaction`] — a snapshot-isolated read-write transaction with
//!   read-your-own-writes; [`Transaction::commit`] returns once the commit is
//!   durable (fsynced, group-committed with concurrent transactions) and
//!   visible.
//! * [`Store::changes`] — rows inserted and deleted between two seqs, each
//!   carrying its stable [`RowId`].
//!
//! Rows live in immutable Arrow "segments" stamped with creation and
//! deletion seqs; see `docs/architecture.md` (storage section) and the
//! module docs of `store`, `catalog`, `segment`, `wal` and `checkpoint` for
//! the design.

#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod bounds;
mod catalog;
mod checkpoint;
mod codec;
mod error;
pub mod histogram;
mod maintenance;
mod residency;
mod runs;
mod scan;
mod segment;
mod store;
mod txn;
mod unique;
mod wal;

use std::path::PathBuf;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

pub use bounds::ColumnBounds;
pub use error::StorageError;
pub use scan::{ColdSegment, ScanParts};
pub use store::{Snapshot, Store, StoreMemory, StoreMetrics};
pub use txn::{Savepoint, Transaction};
pub use unique::{UniqueIndexDef, UNIQUE_META_PREFIX};

/// Commit sequence number. `0` is the empty initial state; every committed
/// write transaction gets the next number, so seqs order all commits.
pub type Seq = u64;

/// Identifier of a table, allocated by [`Transaction::create_table`] and
/// never reused.
pub type TableId = u64;

/// Stable identity of a row: assigned when the row is inserted, kept through
/// compaction, checkpoints and restarts, and never reused. Change feeds and
/// deletes refer to rows by this id (an update is a delete plus an insert of
/// a new row id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowId(pub u64);

/// Name of the `UInt64` column appended (last) to scans and change sets when
/// row ids are requested.
pub const ROW_ID_COLUMN: &str = "__freshet_row_id";

/// Configuration for [`Store::open`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Directory holding the WAL, checkpoints and the lock file; created if
    /// missing.
    pub data_dir: PathBuf,
    /// Whether commits fsync the WAL before being acknowledged. Only turn
    /// this off for tests or throwaway data: a crash can then lose
    /// acknowledged commits (never corrupt older ones).
    pub fsync: bool,
    /// Start a background checkpoint once this many WAL bytes were written
    /// since the last one, or this many bytes of segment data (new commits
    /// and compaction output) wait for one; bounds recovery time, WAL disk
    /// usage and the table data held in memory only.
    pub checkpoint_wal_bytes: u64,
    /// Background compaction merges a run of this many similarly sized
    /// consecutive segments into one, keeping the segment count of a table
    /// logarithmic in its size even under a stream of single-row inserts.
    pub compaction_min_segments: usize,
    /// Bytes of checkpointed column data kept in memory. Beyond it the
    /// oldest checkpointed segments are evicted and scans read them from
    /// their Parquet files. Data not yet checkpointed always stays in
    /// memory (`checkpoint_wal_bytes` bounds it), and so do row ids and
    /// version stamps (runs per commit, plus a stamp per deleted row not
    /// yet reclaimed) and unique-index keys.
    pub resident_data_bytes: usize,
}

impl StoreOptions {
    /// Production defaults: fsync on, checkpoint every 256 MiB of WAL,
    /// merge runs of 16 segments, no limit on resident data.
    pub fn new(data_dir: impl Into<PathBuf>) -> StoreOptions {
        StoreOptions {
            data_dir: data_dir.into(),
            fsync: true,
            checkpoint_wal_bytes: 256 << 20,
            compaction_min_segments: 16,
            resident_data_bytes: usize::MAX,
        }
    }
}

/// What a successful commit reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitInfo {
    /// The commit's seq (for a read-only transaction: its snapshot seq).
    pub seq: Seq,
    /// Commit time, microseconds since the Unix epoch; non-decreasing in seq.
    pub commit_time_micros: i64,
}

/// Rows of one table inserted and deleted in a seq window `(from, to]`.
///
/// Both lists carry the table's columns as of `to` followed by
/// [`ROW_ID_COLUMN`]. A row inserted and deleted inside the window appears in
/// neither; an update appears as a deletion of the old row id and an
/// insertion of a new one. Deleted rows carry their full old content.
#[derive(Clone, Debug)]
pub struct ChangeSet {
    /// Schema of every batch in both lists (kept so empty lists still describe
    /// their shape).
    pub schema: SchemaRef,
    /// Rows created in the window and still live at `to`.
    pub inserted: Vec<RecordBatch>,
    /// Rows live at `from` and deleted in the window.
    pub deleted: Vec<RecordBatch>,
}

/// Cheap size statistics of a table at one seq, for planning and monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Rows visible at the seq.
    pub rows: u64,
    /// Approximate in-memory bytes of the table's segments (including
    /// versions retained for older readers).
    pub bytes: u64,
    /// Bytes on disk: the Parquet files of checkpointed segments, plus the
    /// approximate size of data not yet checkpointed (which the WAL holds).
    /// Includes versions retained for older readers, like `bytes`.
    pub disk_bytes: u64,
    /// Number of segments (shows how well compaction keeps up).
    pub segments: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_thread_safe() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Store>();
        send_sync::<Snapshot>();
        send_sync::<std::sync::Arc<Store>>();
        send::<Transaction>();
    }

    #[test]
    fn sqlstates() {
        assert_eq!(
            StorageError::SerializationFailure("x".into()).sqlstate(),
            "40001"
        );
        assert_eq!(StorageError::UnknownTable(1).sqlstate(), "42P01");
        assert_eq!(
            StorageError::io("x", std::io::Error::other("boom")).sqlstate(),
            "58030"
        );
        assert_eq!(StorageError::Internal("x".into()).sqlstate(), "XX000");
    }
}
