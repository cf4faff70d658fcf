//! Helpers shared by the hidden storage tables dynamic tables keep as
//! maintenance state: per-group aggregates (`delta_aggregate`) and join
//! arrangements (`join_arrangement`).
//!
//! Both store columns by position (plan column names need not be unique
//! without their qualifiers), are read whole by a refresh, and are turned
//! back into a plan with the node's own qualified names.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion::common::{Column, DFSchema, Result as DfResult};
use datafusion::datasource::{provider_as_source, MemTable};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};

use freshet_storage::TableId;

use crate::planning::map_df_error;
use crate::session::Session;
use crate::EngineError;

/// Whether the stored state `table` has the column types of `wanted`, in
/// order: state written under another shape of the query is rebuilt.
pub(crate) fn types_match(session: &Session, table: TableId, wanted: &Schema) -> bool {
    match session.shared.with_txn(|t| t.table_schema(table)) {
        Ok(Ok(stored)) => {
            stored.fields().len() == wanted.fields().len()
                && stored
                    .fields()
                    .iter()
                    .zip(wanted.fields())
                    .all(|(a, b)| a.data_type() == b.data_type())
        }
        _ => false,
    }
}

/// Every row of the state `table` in the session's snapshot, each batch with
/// the storage row id as an extra last column. Counted as state rows read.
pub(crate) fn read(session: &Session, table: TableId) -> Result<Vec<RecordBatch>, EngineError> {
    let stored = session
        .shared
        .with_txn(|t| t.scan(table, None, true))
        .map_err(map_df_error)?
        .map_err(EngineError::from)?;
    session
        .shared
        .work
        .add_state_rows(stored.iter().map(RecordBatch::num_rows).sum());
    Ok(stored)
}

/// A plan whose rows are `rows` (columns named `{prefix}0`, `{prefix}1`, …)
/// and whose schema is `shape`, qualified names included: state standing in
/// for the plan node it was computed from.
pub(crate) fn positional_plan(
    rows: Vec<RecordBatch>,
    row_schema: Arc<Schema>,
    prefix: &str,
    shape: &DFSchema,
) -> DfResult<LogicalPlan> {
    const SOURCE: &str = "__freshet_state";
    let table = MemTable::try_new(row_schema, vec![rows])?;
    let exprs: Vec<Expr> = shape
        .iter()
        .enumerate()
        .map(|(i, (qualifier, field))| {
            Expr::Column(Column::new(Some(SOURCE), format!("{prefix}{i}")))
                .alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    LogicalPlanBuilder::scan(SOURCE, provider_as_source(Arc::new(table)), None)?
        .project(exprs)?
        .build()
}
