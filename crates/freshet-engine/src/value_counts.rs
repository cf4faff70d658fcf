//! Per-group value counts: the state that maintains `count(DISTINCT x)`
//! incrementally.
//!
//! For one `count(DISTINCT x)` of a GROUP BY maintained from per-group state
//! (see [`crate::delta_aggregate`]), a hidden storage table holds, for every
//! group and every non-NULL value `x` takes in it, how many source rows have
//! that value: `(g0…, v, hash, n)`, where `hash` is the group's key hash (the
//! contents' lineage, never NULL) and a unique index over `(hash, v)` finds
//! a row in time independent of the table's size.
//!
//! A refresh maps the change set to the distinct counts' changes:
//!
//! * `Δ⁺(g, v)` and `Δ⁻(g, v)` are the row counts of the inserted and the
//!   deleted rows per group and value (NULL values left out, as
//!   `count(DISTINCT)` leaves them out);
//! * for every `(g, v)` they name, the stored count is read through the index
//!   and becomes `n' = n + Δ⁺ − Δ⁻`;
//! * `count(DISTINCT x)` of `g` changes by +1 for every value whose count goes
//!   from 0 to positive, and by −1 for every value whose count goes to 0
//!   (the row is then deleted). Nothing else changes it: a value that stays
//!   present, or stays absent, leaves the distinct count alone.
//!
//! So a refresh reads one state row per changed `(g, v)`, never a group's
//! other values. The counts are written in the refresh's transaction, with
//! the contents and the per-group state. A FULL refresh rebuilds them.
//!
//! Groups are identified by their values; the key hash only addresses the
//! index. Two groups whose hashes collide (a 64-bit hash, so in practice
//! never) are detected, when one's row is found under the other's key or
//! when the index rejects the second's row, and the refresh fails with an
//! error naming REFRESH_MODE = FULL; a collision is never merged silently.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{Column, Result as DfResult, ScalarValue};
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};

use freshet_storage::{RowId, TableId, UniqueIndexDef};

use crate::planning::{map_arrow_error, map_df_error};
use crate::session::Session;
use crate::EngineError;

/// Name of the value-count table's value column.
const VALUE: &str = "v";
/// Name of its group key hash column.
const HASH: &str = "hash";
/// Name of its row count column.
const COUNT: &str = "n";

/// Whether `count(DISTINCT x)` of values of this type can be kept as value
/// counts: types whose equality is their encoding's (floats, with NaN and
/// −0, are left to the recompute strategy).
pub(crate) fn supported(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Decimal128(_, _)
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Date32
            | DataType::Timestamp(_, _)
    )
}

/// The value counts of one `count(DISTINCT argument)` over `groups`.
#[derive(Debug, Clone)]
pub(crate) struct ValueCounts {
    groups: Vec<Expr>,
    argument: Expr,
}

impl ValueCounts {
    pub(crate) fn new(groups: Vec<Expr>, argument: Expr) -> ValueCounts {
        ValueCounts { groups, argument }
    }

    /// Rows per group and value over `input`: `g0…, v, hash, n`, the
    /// value-count table's columns.
    pub(crate) fn plan(&self, input: LogicalPlan) -> DfResult<LogicalPlan> {
        let one = Expr::Literal(ScalarValue::Int64(Some(1)), None);
        let mut keys = self.groups.clone();
        keys.push(self.argument.clone().alias(VALUE));
        let grouped = LogicalPlanBuilder::from(input)
            .filter(self.argument.clone().is_not_null())?
            .aggregate(keys, vec![count(one).alias(COUNT)])?
            .build()?;
        let columns = grouped.schema().columns();
        let group_columns: Vec<Expr> = columns
            .iter()
            .take(self.groups.len())
            .cloned()
            .map(Expr::Column)
            .collect();
        let mut exprs: Vec<Expr> = group_columns
            .iter()
            .enumerate()
            .map(|(j, g)| g.clone().alias(format!("g{j}")))
            .collect();
        exprs.push(Expr::Column(columns[self.groups.len()].clone()).alias(VALUE));
        exprs.push(crate::dynamic::key_hash_expr(group_columns).alias(HASH));
        exprs.push(Expr::Column(Column::new_unqualified(COUNT)));
        LogicalPlanBuilder::from(grouped).project(exprs)?.build()
    }

    /// The value-count table's schema for [`plan`](Self::plan)'s output.
    pub(crate) fn schema(
        state: &datafusion::execution::SessionState,
        plan: &LogicalPlan,
    ) -> SchemaRef {
        crate::delta_aggregate::DeltaAggregate::state_schema(state, plan)
    }

    /// The unique index over `(hash, v)` a value-count table is created with.
    pub(crate) fn index(&self) -> UniqueIndexDef {
        let g = self.groups.len();
        UniqueIndexDef {
            name: "value_counts_key".into(),
            columns: vec![g + 1, g],
        }
    }

    /// Applies `Δ⁺ = inserted` and `Δ⁻ = deleted` (rows of
    /// [`plan`](Self::plan) over the change set) to the counts in `table`
    /// (schema `schema`), writing the changed counts into the session's
    /// transaction. Returns, per group (by its values), how the distinct
    /// count changes.
    pub(crate) fn apply(
        &self,
        session: &Session,
        table: TableId,
        schema: &SchemaRef,
        inserted: &[RecordBatch],
        deleted: &[RecordBatch],
    ) -> Result<HashMap<Vec<ScalarValue>, i64>, EngineError> {
        let g = self.groups.len();
        if schema.fields().len() != g + 3 {
            return Err(shape());
        }
        // (hash, value) → (group values, Δ⁺ − Δ⁻).
        let mut changes: HashMap<(u64, ScalarValue), (Vec<ScalarValue>, i64)> = HashMap::new();
        for (batches, sign) in [(inserted, 1i64), (deleted, -1i64)] {
            for batch in batches {
                let hashes = u64_column(batch, g + 1)?;
                let counts = i64_column(batch, g + 2)?;
                for row in 0..batch.num_rows() {
                    let group = row_values(batch, 0..g, row)?;
                    let value =
                        ScalarValue::try_from_array(batch.column(g), row).map_err(map_df_error)?;
                    let entry = changes
                        .entry((hashes.value(row), value))
                        .or_insert_with(|| (group.clone(), 0));
                    if entry.0 != group {
                        return Err(collision());
                    }
                    entry.1 += sign * counts.value(row);
                }
            }
        }
        if changes.is_empty() {
            return Ok(HashMap::new());
        }

        // The stored counts of those (hash, value) pairs, with their row ids.
        let keys: Vec<&(u64, ScalarValue)> = changes.keys().collect();
        let hash_keys: ArrayRef = Arc::new(UInt64Array::from(
            keys.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
        ));
        let value_keys = ScalarValue::iter_to_array(keys.iter().map(|(_, v)| v.clone()))
            .and_then(|a| {
                Ok(datafusion::arrow::compute::cast(
                    &a,
                    schema.field(g).data_type(),
                )?)
            })
            .map_err(map_df_error)?;
        let index = self.index();
        let found = session
            .shared
            .with_txn(|t| {
                t.lookup_unique_with_row_ids(table, &index.columns, &[hash_keys, value_keys], None)
            })
            .map_err(map_df_error)?
            .map_err(EngineError::from)?;
        let stored = match found {
            Some(batches) => {
                session
                    .shared
                    .work
                    .add_state_rows(batches.iter().map(RecordBatch::num_rows).sum());
                batches
            }
            // The index cannot answer in this snapshot: read the table.
            None => crate::state_tables::read(session, table)?,
        };
        let mut old: HashMap<(u64, ScalarValue), (i64, RowId)> = HashMap::new();
        for batch in &stored {
            let hashes = u64_column(batch, g + 1)?;
            let counts = i64_column(batch, g + 2)?;
            let row_ids = u64_column(batch, g + 3)?;
            for row in 0..batch.num_rows() {
                let value =
                    ScalarValue::try_from_array(batch.column(g), row).map_err(map_df_error)?;
                let key = (hashes.value(row), value);
                let Some((group, _)) = changes.get(&key) else {
                    continue;
                };
                if *group != row_values(batch, 0..g, row)? {
                    return Err(collision());
                }
                old.insert(key, (counts.value(row), RowId(row_ids.value(row))));
            }
        }

        let mut transitions: HashMap<Vec<ScalarValue>, i64> = HashMap::new();
        let mut replaced = Vec::new();
        let mut new_rows: Vec<Vec<ScalarValue>> = vec![Vec::new(); g + 3];
        for ((hash, value), (group, change)) in changes {
            let (before, row_id) = match old.get(&(hash, value.clone())) {
                Some(&(n, id)) => (n, Some(id)),
                None => (0, None),
            };
            let after = before + change;
            if after < 0 {
                return Err(EngineError::new(
                    "XX001",
                    "count(DISTINCT) state lost track of a value (negative count); REINITIALIZE the dynamic table",
                ));
            }
            if change == 0 {
                continue;
            }
            replaced.extend(row_id);
            let step = i64::from(after > 0) - i64::from(before > 0);
            if step != 0 {
                *transitions.entry(group.clone()).or_insert(0) += step;
            }
            if after > 0 {
                for (j, v) in group.into_iter().enumerate() {
                    new_rows[j].push(v);
                }
                new_rows[g].push(value);
                new_rows[g + 1].push(ScalarValue::UInt64(Some(hash)));
                new_rows[g + 2].push(ScalarValue::Int64(Some(after)));
            }
        }
        let batch = crate::delta_aggregate::scalar_batch(schema.clone(), new_rows)?;
        crate::ddl::txn_mut(session, |t| {
            t.delete(table, &replaced).map_err(EngineError::from)?;
            if batch.num_rows() > 0 {
                t.insert(table, batch).map_err(|e| match e {
                    freshet_storage::StorageError::UniqueViolation { .. } => collision(),
                    other => EngineError::from(other),
                })?;
            }
            Ok(())
        })?;
        Ok(transitions)
    }

    /// Creates a value-count table (with its index) in the session's
    /// transaction and fills it with `rows` ([`plan`](Self::plan) over the
    /// whole input); returns its id.
    pub(crate) fn create(
        &self,
        session: &Session,
        schema: &SchemaRef,
        rows: Vec<RecordBatch>,
    ) -> Result<TableId, EngineError> {
        crate::ddl::txn_mut(session, |t| {
            let table = t.create_table(schema.clone()).map_err(EngineError::from)?;
            t.add_unique_indexes(table, vec![self.index()])
                .map_err(EngineError::from)?;
            for batch in rows.into_iter().filter(|b| b.num_rows() > 0) {
                let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                    .map_err(map_arrow_error)?;
                t.insert(table, batch).map_err(|e| match e {
                    freshet_storage::StorageError::UniqueViolation { .. } => collision(),
                    other => EngineError::from(other),
                })?;
            }
            Ok(table)
        })
    }
}

/// The values of `columns` in `row` of `batch`.
fn row_values(
    batch: &RecordBatch,
    columns: std::ops::Range<usize>,
    row: usize,
) -> Result<Vec<ScalarValue>, EngineError> {
    columns
        .map(|c| ScalarValue::try_from_array(batch.column(c), row))
        .collect::<DfResult<Vec<_>>>()
        .map_err(map_df_error)
}

fn u64_column(batch: &RecordBatch, index: usize) -> Result<&UInt64Array, EngineError> {
    batch
        .columns()
        .get(index)
        .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
        .filter(|c| c.null_count() == 0)
        .ok_or_else(shape)
}

fn i64_column(batch: &RecordBatch, index: usize) -> Result<&Int64Array, EngineError> {
    batch
        .columns()
        .get(index)
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .filter(|c| c.null_count() == 0)
        .ok_or_else(shape)
}

fn shape() -> EngineError {
    EngineError::new("XX001", "count(DISTINCT) state has the wrong shape")
}

fn collision() -> EngineError {
    EngineError::new(
        "XX000",
        "two groups of a count(DISTINCT) share a key hash, so its state cannot tell them apart; \
         use REFRESH_MODE = FULL for this dynamic table",
    )
}
