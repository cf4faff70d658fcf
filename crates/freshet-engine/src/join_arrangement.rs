//! Join inputs kept as state, so a joined model input is scored once per row.
//!
//! An incremental dynamic table over an inner join is maintained by key
//! (see `dynamic::Strategy::Keyed`): a refresh finds the join keys whose
//! rows changed on either side and recomputes those keys. Recomputing means
//! evaluating both inputs for those keys again, and when an input calls a
//! model (`model.run(df)` joined back to `df`, as the Snowpark pipeline is
//! written), that re-scores every old row that shares a key with a new one.
//!
//! So an input that calls a model is *arranged*: its rows, model outputs
//! included, are kept in a hidden storage table beside the contents, each
//! with the row id of the source row it came from (its lineage). A refresh
//!
//! * deletes the arranged rows whose source rows were deleted,
//! * evaluates the input over the inserted source rows only (the only rows
//!   it scores) and adds them,
//! * takes the changed keys from those two sets of rows, and
//! * recomputes the changed keys with the arrangement standing in for the
//!   input, so nothing already scored is scored again.
//!
//! The arrangement is written in the refresh's transaction, with the
//! contents: both commit, are checkpointed and recover together. A FULL
//! refresh rebuilds it. Reading it is counted as state rows read in the
//! refresh history. Inputs without a model call are read from their sources
//! as before: keeping a copy would cost memory and save no scoring.
//!
//! Cost: the changed rows are scored once. The recompute still reads the
//! other input and the arrangement whole (there are no indexes to look keys
//! up in yet), which grows with the data but scores nothing.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt32Array, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{Expr, LogicalPlan};

use freshet_catalog::JoinSide;
use freshet_storage::{RowId, TableId};

use crate::planning::map_arrow_error;
use crate::session::Session;
use crate::EngineError;

/// Name of the arrangement's lineage column (the source row id), last.
const LINEAGE: &str = "source_row_id";

/// Whether `plan` calls a model anywhere.
fn calls_model(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarFunction(f) = e {
                    if f.func.name() == freshet_sql::MODEL_CALL_FUNCTION {
                        found = true;
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    found
}

/// The input of `join` on `side`.
pub(crate) fn side_input(
    join: &datafusion::logical_expr::Join,
    side: JoinSide,
) -> &Arc<LogicalPlan> {
    match side {
        JoinSide::Left => &join.left,
        JoinSide::Right => &join.right,
    }
}

/// The sides of the join `node` to arrange: those whose input calls a model.
/// Empty when `node` is not a join.
pub(crate) fn sides_to_arrange(node: &LogicalPlan) -> Vec<JoinSide> {
    let LogicalPlan::Join(join) = node else {
        return Vec::new();
    };
    [JoinSide::Left, JoinSide::Right]
        .into_iter()
        .filter(|side| calls_model(side_input(join, *side)))
        .collect()
}

/// The storage schema of an arrangement of `input`: its columns by position
/// (an input's column names need not be unique without their qualifiers),
/// then the lineage.
pub(crate) fn storage_schema(input: &LogicalPlan) -> SchemaRef {
    let mut fields: Vec<Field> = input
        .schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| Field::new(format!("c{i}"), f.data_type().clone(), true))
        .collect();
    fields.push(Field::new(LINEAGE, DataType::UInt64, false));
    Arc::new(Schema::new(fields))
}

/// Whether the stored arrangement `table` has the columns `input` yields now.
pub(crate) fn matches(session: &Session, input: &LogicalPlan, table: TableId) -> bool {
    crate::state_tables::types_match(session, table, &storage_schema(input))
}

/// Rows of `input` evaluated with their lineage last (from
/// `dynamic::evaluate_with_lineage`), in the arrangement's storage schema.
pub(crate) fn to_storage(
    input: &LogicalPlan,
    rows: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>, EngineError> {
    let schema = storage_schema(input);
    rows.into_iter()
        .filter(|b| b.num_rows() > 0)
        .map(|b| {
            if b.num_columns() != schema.fields().len() {
                return Err(EngineError::new(
                    "XX000",
                    format!(
                        "join arrangement expects {} columns, the input yields {}",
                        schema.fields().len(),
                        b.num_columns()
                    ),
                ));
            }
            RecordBatch::try_new(schema.clone(), b.columns().to_vec()).map_err(map_arrow_error)
        })
        .collect()
}

/// Writes `rows` (storage schema) into the arrangement `table`.
pub(crate) fn insert(
    session: &Session,
    table: TableId,
    rows: Vec<RecordBatch>,
) -> Result<(), EngineError> {
    crate::ddl::txn_mut(session, |t| {
        for batch in rows {
            t.insert(table, batch).map_err(EngineError::from)?;
        }
        Ok(())
    })
}

/// The arrangement's rows as split by a refresh.
pub(crate) struct Split {
    /// Rows whose source rows remain (storage schema).
    pub(crate) kept: Vec<RecordBatch>,
    /// Rows whose source rows were deleted (storage schema); already deleted
    /// from the arrangement.
    pub(crate) removed: Vec<RecordBatch>,
}

/// Reads the arrangement `table` (counted as state rows read), deletes the
/// rows whose lineage is in `deleted` and returns both parts.
pub(crate) fn read_and_remove(
    session: &Session,
    input: &LogicalPlan,
    table: TableId,
    deleted: &std::collections::HashSet<u64>,
) -> Result<Split, EngineError> {
    let schema = storage_schema(input);
    let width = schema.fields().len();
    let stored = crate::state_tables::read(session, table)?;
    let mut split = Split {
        kept: Vec::new(),
        removed: Vec::new(),
    };
    let mut doomed = Vec::new();
    for batch in stored.iter().filter(|b| b.num_rows() > 0) {
        let (Some(lineage), Some(row_ids)) = (
            u64_column(batch, width - 1),
            u64_column(batch, batch.num_columns() - 1),
        ) else {
            return Err(EngineError::new(
                "XX001",
                "join arrangement lineage column has the wrong type",
            ));
        };
        let (gone, stay): (Vec<u32>, Vec<u32>) = (0..batch.num_rows() as u32)
            .partition(|&r| deleted.contains(&lineage.value(r as usize)));
        doomed.extend(gone.iter().map(|&r| RowId(row_ids.value(r as usize))));
        for (rows, into) in [(gone, &mut split.removed), (stay, &mut split.kept)] {
            if rows.is_empty() {
                continue;
            }
            let indices = UInt32Array::from(rows);
            let columns = batch.columns()[..width]
                .iter()
                .map(|c| datafusion::arrow::compute::take(c, &indices, None))
                .collect::<Result<Vec<_>, _>>()
                .map_err(map_arrow_error)?;
            into.push(RecordBatch::try_new(schema.clone(), columns).map_err(map_arrow_error)?);
        }
    }
    if !doomed.is_empty() {
        crate::ddl::txn_mut(session, |t| {
            t.delete(table, &doomed).map_err(EngineError::from)
        })?;
    }
    Ok(split)
}

/// A plan with `input`'s schema (same qualified names) whose rows are
/// `rows` (storage schema): the input as the arrangement holds it.
pub(crate) fn input_from_rows(
    input: &LogicalPlan,
    rows: Vec<RecordBatch>,
) -> DfResult<LogicalPlan> {
    crate::state_tables::positional_plan(rows, storage_schema(input), "c", input.schema())
}

/// Creates an empty arrangement table for `input`.
pub(crate) fn create(session: &Session, input: &LogicalPlan) -> Result<TableId, EngineError> {
    let schema = storage_schema(input);
    crate::ddl::txn_mut(session, |t| {
        t.create_table(schema).map_err(EngineError::from)
    })
}

/// Drops the arrangement `table`.
pub(crate) fn drop(session: &Session, table: TableId) -> Result<(), EngineError> {
    crate::ddl::txn_mut(session, |t| t.drop_table(table).map_err(EngineError::from))
}

fn u64_column(batch: &RecordBatch, index: usize) -> Option<&UInt64Array> {
    batch
        .columns()
        .get(index)
        .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
}
