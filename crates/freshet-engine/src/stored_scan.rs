//! The execution plan of a stored-table scan.
//!
//! Storage splits a scan into batches already in memory and segments
//! evicted to their Parquet files ([`freshet_storage::ScanParts`]). This
//! module deals both out over the plan's partitions and reads each evicted
//! segment only when its partition's consumer asks for the next batch, so a
//! scan of a table larger than memory holds one segment per partition at a
//! time. Rows are counted as scanned when a partition produces them, where
//! the work happens (refresh statistics read these counts).

use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result as DfResult, Statistics};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::common::compute_record_batch_statistics;
use datafusion::physical_plan::memory::{LazyBatchGenerator, LazyMemoryExec};
use datafusion::physical_plan::statistics::StatisticsArgs;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use freshet_storage::{ColdSegment, ScanParts};
use parking_lot::RwLock;

use crate::provider::{split_partitions, SessionShared};

/// What one partition of a scan produces.
#[derive(Debug, Default)]
struct Share {
    resident: Vec<RecordBatch>,
    cold: Vec<ColdSegment>,
}

/// Produces one partition's batches, reading evicted segments on demand.
struct PartitionScan {
    table: String,
    share: Arc<Share>,
    shared: Arc<SessionShared>,
    next: usize,
}

impl std::fmt::Debug for PartitionScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionScan")
            .field("table", &self.table)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for PartitionScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: batches={}, evicted_segments={}",
            self.table,
            self.share.resident.len(),
            self.share.cold.len()
        )
    }
}

impl LazyBatchGenerator for PartitionScan {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn generate_next_batch(&mut self) -> DfResult<Option<RecordBatch>> {
        loop {
            let i = self.next;
            self.next += 1;
            let batch = if let Some(b) = self.share.resident.get(i) {
                b.clone()
            } else if let Some(seg) = self.share.cold.get(i - self.share.resident.len()) {
                match seg
                    .read()
                    .map_err(|e| DataFusionError::External(Box::new(e)))?
                {
                    Some(b) => b,
                    None => continue,
                }
            } else {
                return Ok(None);
            };
            self.shared.work.add_scanned_rows(batch.num_rows());
            return Ok(Some(batch));
        }
    }

    fn reset_state(&self) -> Arc<RwLock<dyn LazyBatchGenerator>> {
        Arc::new(RwLock::new(PartitionScan {
            table: self.table.clone(),
            share: self.share.clone(),
            shared: self.shared.clone(),
            next: 0,
        }))
    }
}

/// Deals a scan's parts over `partitions` partitions: resident rows evenly
/// (batches are cut where a share ends), evicted segments each to the
/// partition with the fewest rows so far.
fn deal(parts: ScanParts, partitions: usize) -> Vec<Share> {
    let partitions = partitions.max(1);
    let mut shares: Vec<Share> = split_partitions(parts.resident, partitions)
        .into_iter()
        .map(|resident| Share {
            resident,
            cold: Vec::new(),
        })
        .collect();
    let mut rows: Vec<usize> = shares
        .iter()
        .map(|s| s.resident.iter().map(RecordBatch::num_rows).sum())
        .collect();
    let mut cold: VecDeque<ColdSegment> = parts.cold.into();
    while let Some(seg) = cold.pop_front() {
        let (least, _) = rows
            .iter()
            .enumerate()
            .min_by_key(|(_, r)| **r)
            .unwrap_or((0, &0));
        rows[least] += seg.stored_rows();
        shares[least].cold.push(seg);
    }
    shares
}

/// The plan reading `parts` over `partitions` partitions.
pub(crate) fn scan_exec(
    table: &str,
    schema: SchemaRef,
    parts: ScanParts,
    pruned_segments: usize,
    partitions: usize,
    shared: &Arc<SessionShared>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    let shares: Vec<Arc<Share>> = deal(parts, partitions).into_iter().map(Arc::new).collect();
    let generators = shares
        .iter()
        .map(|share| {
            Arc::new(RwLock::new(PartitionScan {
                table: table.to_owned(),
                share: share.clone(),
                shared: shared.clone(),
                next: 0,
            })) as Arc<RwLock<dyn LazyBatchGenerator>>
        })
        .collect();
    Ok(Arc::new(StoredScanExec {
        schema: schema.clone(),
        shares,
        pruned_segments,
        input: Arc::new(LazyMemoryExec::try_new(schema, generators)?),
    }))
}

/// A [`LazyMemoryExec`] that also states the scan's statistics, as a plan
/// over in-memory batches would: row counts and sizes (exact when nothing
/// is evicted, an upper bound otherwise) guide join ordering.
#[derive(Debug)]
struct StoredScanExec {
    schema: SchemaRef,
    shares: Vec<Arc<Share>>,
    /// Evicted segments the scan's filters ruled out (not read).
    pruned_segments: usize,
    input: Arc<dyn ExecutionPlan>,
}

impl StoredScanExec {
    fn statistics(&self, partition: Option<usize>) -> Statistics {
        let shares: Vec<&Arc<Share>> = match partition {
            Some(p) => self.shares.get(p).into_iter().collect(),
            None => self.shares.iter().collect(),
        };
        let resident: Vec<Vec<RecordBatch>> = shares.iter().map(|s| s.resident.clone()).collect();
        let stats = compute_record_batch_statistics(&resident, &self.schema, None);
        let cold_rows: usize = shares
            .iter()
            .flat_map(|s| s.cold.iter())
            .map(ColdSegment::stored_rows)
            .sum();
        if cold_rows == 0 {
            return stats;
        }
        // Evicted segments' rows are counted as stored, deleted ones
        // included, and their size is unknown.
        let rows = stats.num_rows.get_value().copied().unwrap_or(0) + cold_rows;
        Statistics::new_unknown(&self.schema).with_num_rows(Precision::Inexact(rows))
    }
}

impl DisplayAs for StoredScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let resident: usize = self.shares.iter().map(|s| s.resident.len()).sum();
        let cold: usize = self.shares.iter().map(|s| s.cold.len()).sum();
        write!(
            f,
            "StoredScanExec: partitions={}, batches={resident}, evicted_segments={cold}, \
             pruned_segments={}",
            self.shares.len(),
            self.pruned_segments
        )
    }
}

impl ExecutionPlan for StoredScanExec {
    fn name(&self) -> &str {
        "StoredScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "StoredScanExec has no inputs".into(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }

    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> DfResult<Arc<Statistics>> {
        Ok(Arc::new(self.statistics(args.partition())))
    }
}
