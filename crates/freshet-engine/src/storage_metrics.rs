//! `freshet_storage_metrics()`: the storage layer's counters since the
//! server started, one row each, so durability and the cost of reads can be
//! watched from SQL (how often the WAL is synced, how much data was evicted
//! and read back from segment files).
//!
//! Every figure is counted by the storage layer where the work happens
//! ([`freshet_storage::StoreMetrics`]).

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{plan_err, Result as DfResult};
use datafusion::datasource::MemTable;
use freshet_storage::StoreMetrics;

use crate::Engine;

/// The counters `freshet_storage_metrics()` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    Commits,
    WalSyncs,
    WalBytes,
    Checkpoints,
    Compactions,
    ChangeSegmentsRead,
    EvictedBytes,
    ResidentBytes,
    SegmentFileReads,
}

impl Metric {
    const ALL: [Metric; 9] = [
        Metric::Commits,
        Metric::WalSyncs,
        Metric::WalBytes,
        Metric::Checkpoints,
        Metric::Compactions,
        Metric::ChangeSegmentsRead,
        Metric::EvictedBytes,
        Metric::ResidentBytes,
        Metric::SegmentFileReads,
    ];

    fn name(self) -> &'static str {
        match self {
            Metric::Commits => "commits",
            Metric::WalSyncs => "wal_syncs",
            Metric::WalBytes => "wal_bytes",
            Metric::Checkpoints => "checkpoints",
            Metric::Compactions => "compactions",
            Metric::ChangeSegmentsRead => "change_segments_read",
            Metric::EvictedBytes => "evicted_bytes",
            Metric::ResidentBytes => "resident_bytes",
            Metric::SegmentFileReads => "segment_file_reads",
        }
    }

    fn value(self, m: &StoreMetrics) -> u64 {
        match self {
            Metric::Commits => m.commits,
            Metric::WalSyncs => m.wal_syncs,
            Metric::WalBytes => m.wal_bytes,
            Metric::Checkpoints => m.checkpoints,
            Metric::Compactions => m.compactions,
            Metric::ChangeSegmentsRead => m.change_segments_read,
            Metric::EvictedBytes => m.evicted_bytes,
            Metric::ResidentBytes => m.resident_bytes,
            Metric::SegmentFileReads => m.segment_file_reads,
        }
    }

    fn description(self) -> &'static str {
        match self {
            Metric::Commits => "write transactions committed",
            Metric::WalSyncs => "WAL flush and fsync rounds (one per group of commits)",
            Metric::WalBytes => "bytes written to the WAL",
            Metric::Checkpoints => "checkpoints completed",
            Metric::Compactions => "segments merged or removed by compaction",
            Metric::ChangeSegmentsRead => "segments read to compute change sets for refreshes",
            Metric::EvictedBytes => "bytes of checkpointed column data evicted from memory",
            Metric::ResidentBytes => {
                "bytes of checkpointed column data now in memory (a gauge, not a counter)"
            }
            Metric::SegmentFileReads => {
                "reads of evicted column data from segment files (one per segment and scan)"
            }
        }
    }
}

/// The table function; see the module documentation.
#[derive(Debug)]
pub(crate) struct StorageMetrics {
    pub(crate) engine: Arc<Engine>,
}

impl TableFunctionImpl for StorageMetrics {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        if !args.exprs().is_empty() {
            return plan_err!("freshet_storage_metrics() takes no arguments");
        }
        let metrics = self.engine.store.metrics();
        let schema = Arc::new(Schema::new(vec![
            Field::new("metric", DataType::Utf8, false),
            Field::new("value", DataType::Int64, false),
            Field::new("description", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    Metric::ALL.iter().map(|m| m.name()),
                )),
                Arc::new(Int64Array::from_iter_values(
                    Metric::ALL
                        .iter()
                        .map(|m| i64::try_from(m.value(&metrics)).unwrap_or(i64::MAX)),
                )),
                Arc::new(StringArray::from_iter_values(
                    Metric::ALL.iter().map(|m| m.description()),
                )),
            ],
        )?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}
