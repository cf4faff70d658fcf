//! `freshet_memory_usage()`: what the server holds in memory, by component,
//! next to the limit that bounds each (if any), so memory can be watched
//! from SQL.
//!
//! Each figure is read from where the memory is held: the storage layer's
//! own accounting of its segments ([`freshet_storage::StoreMemory`]) and
//! DataFusion's memory pool for query execution. Sizes are Arrow buffer
//! sizes, not allocator overhead, so they are less than the process RSS.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{plan_err, Result as DfResult};
use datafusion::datasource::MemTable;

use crate::Engine;

/// The memory components `freshet_memory_usage()` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Component {
    CheckpointedTableData,
    RecentTableData,
    RowVersions,
    FileStatistics,
    QueryExecution,
}

impl Component {
    const ALL: [Component; 5] = [
        Component::CheckpointedTableData,
        Component::RecentTableData,
        Component::RowVersions,
        Component::FileStatistics,
        Component::QueryExecution,
    ];

    fn name(self) -> &'static str {
        match self {
            Component::CheckpointedTableData => "checkpointed_table_data",
            Component::RecentTableData => "recent_table_data",
            Component::RowVersions => "row_versions",
            Component::FileStatistics => "file_statistics",
            Component::QueryExecution => "query_execution",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Component::CheckpointedTableData => {
                "checkpointed column data kept in memory; beyond the limit (--resident-data-limit) \
                 the oldest segments are read from their Parquet files"
            }
            Component::RecentTableData => {
                "column data written since the last checkpoint, always in memory until the next \
                 one (every 256 MiB of WAL, or CHECKPOINT)"
            }
            Component::RowVersions => {
                "row ids and creation seqs (runs, a few bytes per commit) and deletion stamps \
                 (up to 24 bytes per deleted row until compaction reclaims it); \
                 not bounded"
            }
            Component::FileStatistics => {
                "min/max statistics of each segment file's columns, which let scans skip evicted \
                 segments (a few hundred bytes per column and segment); not bounded"
            }
            Component::QueryExecution => {
                "memory reserved by running sorts, aggregates and joins (--query-memory-limit); \
                 beyond the limit they spill or fail with 53200"
            }
        }
    }
}

/// One row of `freshet_memory_usage()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryComponent {
    /// The component's name (`checkpointed_table_data`, …).
    pub component: &'static str,
    /// Bytes it holds now.
    pub bytes: u64,
    /// The limit that bounds it, if any.
    pub limit_bytes: Option<u64>,
    /// What it is.
    pub description: &'static str,
}

/// What `freshet_memory_usage()` reports, for other monitoring (the HTTP
/// `/metrics` endpoint) to show the same figures.
pub fn memory_usage(engine: &Engine) -> Vec<MemoryComponent> {
    let store = engine.store.memory();
    let config = &engine.config;
    Component::ALL
        .iter()
        .map(|&c| {
            let (bytes, limit_bytes) = match c {
                Component::CheckpointedTableData => {
                    (store.checkpointed_data, Some(store.checkpointed_data_limit))
                }
                Component::RecentTableData => (store.recent_data, None),
                Component::RowVersions => (store.row_versions, None),
                Component::FileStatistics => (store.file_statistics, None),
                Component::QueryExecution => (
                    engine.runtime.memory_pool.reserved() as u64,
                    Some(config.query_memory_limit as u64),
                ),
            };
            MemoryComponent {
                component: c.name(),
                bytes,
                limit_bytes,
                description: c.description(),
            }
        })
        .collect()
}

/// The table function; see the module documentation.
#[derive(Debug)]
pub(crate) struct MemoryUsage {
    pub(crate) engine: Arc<Engine>,
}

impl TableFunctionImpl for MemoryUsage {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        if !args.exprs().is_empty() {
            return plan_err!("freshet_memory_usage() takes no arguments");
        }
        let rows = memory_usage(&self.engine);
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let bytes: Vec<i64> = rows.iter().map(|r| as_i64(r.bytes)).collect();
        let limits: Vec<Option<i64>> = rows.iter().map(|r| r.limit_bytes.map(as_i64)).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("component", DataType::Utf8, false),
            Field::new("bytes", DataType::Int64, false),
            Field::new("limit_bytes", DataType::Int64, true),
            Field::new("description", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.component),
                )),
                Arc::new(Int64Array::from(bytes)),
                Arc::new(Int64Array::from(limits)),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.description),
                )),
            ],
        )?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}
