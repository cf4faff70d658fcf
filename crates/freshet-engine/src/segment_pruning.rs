//! Skips the evicted segments of a scan that its filters rule out, from the
//! min/max statistics of their Parquet files
//! ([`freshet_storage::ColdSegment::column_bounds`]), so that a query over
//! recent rows of a long history reads the files that can hold them, not
//! every file.
//!
//! A stored table accepts every filter as `Inexact`
//! ([`crate::provider::StoredTable`]): the plan still applies the filters
//! above the scan, and skipping is only ever a saving. A segment is skipped
//! only when DataFusion's [`PruningPredicate`] proves, for every row group
//! of its file, that no row can make the conjunction of the filters true.
//! What the statistics do not know (old files, float columns, columns added
//! later) is null, and a null keeps the segment.
//!
//! [`PruningPredicate`]: datafusion::physical_optimizer::pruning::PruningPredicate

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{new_null_array, Array, ArrayRef, BooleanArray};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::Session as DfSession;
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::Expr;
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use freshet_storage::{ColdSegment, ColumnBounds};

/// Whether a scan takes `filter` for pruning: one of columns, constants,
/// comparisons, casts and boolean logic, which a pruning predicate can use
/// and which is cheap to evaluate again. Function calls, model calls among
/// them, are not taken: a dynamic table's refresh applies the filters its
/// scans took once more over its input, and a model must score a row once.
pub(crate) fn offered(filter: &Expr) -> bool {
    let other = filter.exists(|e| {
        Ok(!matches!(
            e,
            Expr::Column(_)
                | Expr::Literal(..)
                | Expr::Placeholder(_)
                | Expr::BinaryExpr(_)
                | Expr::Not(_)
                | Expr::Negative(_)
                | Expr::IsNull(_)
                | Expr::IsNotNull(_)
                | Expr::IsTrue(_)
                | Expr::IsFalse(_)
                | Expr::IsNotTrue(_)
                | Expr::IsNotFalse(_)
                | Expr::Between(_)
                | Expr::InList(_)
                | Expr::Like(_)
                | Expr::Cast(_)
                | Expr::TryCast(_)
        ))
    });
    matches!(other, Ok(false))
}

/// Removes from `cold` the segments that `filters` rule out and returns how
/// many it removed. `schema` is the scan's table schema, which the filters
/// refer to, and `stored(i)` the storage position of its column `i` (`None`
/// for a column storage keeps no statistics of, such as the row id).
///
/// Never fails: a filter that cannot be turned into a pruning predicate
/// keeps every segment.
pub(crate) fn prune(
    state: &dyn DfSession,
    schema: &SchemaRef,
    stored: &dyn Fn(usize) -> Option<usize>,
    filters: &[Expr],
    cold: &mut Vec<ColdSegment>,
) -> usize {
    if cold.is_empty() || filters.is_empty() {
        return 0;
    }
    let Some(keep) = surviving(state, schema, stored, filters, cold) else {
        return 0;
    };
    let before = cold.len();
    let mut keep = keep.into_iter();
    cold.retain(|_| keep.next().unwrap_or(true));
    before - cold.len()
}

/// Per segment of `cold`, whether it may hold a matching row; `None` when
/// the filters give no pruning predicate.
fn surviving(
    state: &dyn DfSession,
    schema: &SchemaRef,
    stored: &dyn Fn(usize) -> Option<usize>,
    filters: &[Expr],
    cold: &[ColdSegment],
) -> Option<Vec<bool>> {
    // A scan's filters name their columns with the table's qualifier; the
    // statistics are looked up by column name alone.
    let predicate = conjunction(filters.iter().cloned())?
        .transform(|e| {
            Ok(match e {
                Expr::Column(c) => Transformed::yes(Expr::Column(Column::new_unqualified(c.name))),
                other => Transformed::no(other),
            })
        })
        .ok()?
        .data;
    let df_schema = DFSchema::try_from(schema.as_ref().clone()).ok()?;
    let physical = state.create_physical_expr(predicate, &df_schema).ok()?;
    let pruning = PruningPredicateBuilder::new()
        .with_file_schema(schema.clone())
        .build(physical)?;
    let stats = SegmentStatistics::new(schema, stored, cold);
    let per_group = pruning.prune(&stats).ok()?;
    if per_group.len() != stats.containers {
        return None;
    }
    let mut at = 0;
    Some(
        stats
            .groups
            .iter()
            .map(|n| {
                let keep = per_group[at..at + n].iter().any(|k| *k);
                at += n;
                keep
            })
            .collect(),
    )
}

/// The row groups of a scan's evicted segments as pruning containers, in
/// segment order.
struct SegmentStatistics<'a> {
    schema: &'a SchemaRef,
    stored: &'a dyn Fn(usize) -> Option<usize>,
    segments: &'a [ColdSegment],
    /// Containers per segment: its file's row groups, or one (unknown)
    /// when the file has no statistics.
    groups: Vec<usize>,
    containers: usize,
}

impl<'a> SegmentStatistics<'a> {
    fn new(
        schema: &'a SchemaRef,
        stored: &'a dyn Fn(usize) -> Option<usize>,
        segments: &'a [ColdSegment],
    ) -> Self {
        let groups: Vec<usize> = segments
            .iter()
            .map(|s| s.row_group_rows().map_or(1, |r| r.len().max(1)))
            .collect();
        let containers = groups.iter().sum();
        SegmentStatistics {
            schema,
            stored,
            segments,
            groups,
            containers,
        }
    }

    /// One array over all containers, from each segment's own (`pick`) or
    /// nulls where a segment's is unknown; `None` when none is known.
    fn concat(
        &self,
        data_type: &DataType,
        pick: impl Fn(&ColdSegment) -> Option<ArrayRef>,
    ) -> Option<ArrayRef> {
        let mut known = false;
        let parts: Vec<ArrayRef> = self
            .segments
            .iter()
            .zip(&self.groups)
            .map(|(segment, n)| match pick(segment) {
                Some(a) if a.len() == *n && a.data_type() == data_type => {
                    known = true;
                    a
                }
                _ => new_null_array(data_type, *n),
            })
            .collect();
        if !known {
            return None;
        }
        let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
        datafusion::arrow::compute::concat(&refs).ok()
    }

    /// One statistic of `column` over all containers; of the column's own
    /// type unless `stat_type` says otherwise.
    fn column(
        &self,
        column: &Column,
        stat_type: Option<&DataType>,
        pick: impl Fn(&ColumnBounds) -> ArrayRef,
    ) -> Option<ArrayRef> {
        let index = self.schema.index_of(&column.name).ok()?;
        let position = (self.stored)(index)?;
        let data_type = stat_type.unwrap_or(self.schema.field(index).data_type());
        self.concat(data_type, |segment| {
            segment.column_bounds(position).map(&pick)
        })
    }
}

impl PruningStatistics for SegmentStatistics<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.column(column, None, |b| b.mins.clone())
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.column(column, None, |b| b.maxes.clone())
    }

    fn num_containers(&self) -> usize {
        self.containers
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        self.column(column, Some(&DataType::UInt64), |b| {
            Arc::new(b.null_counts.clone())
        })
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        self.concat(&DataType::UInt64, |segment| {
            segment
                .row_group_rows()
                .map(|r| Arc::new(r.clone()) as ArrayRef)
        })
    }

    fn contained(&self, _column: &Column, _values: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}
