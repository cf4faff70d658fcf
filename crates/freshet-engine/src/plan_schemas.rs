//! Recomputing a logical plan's schemas after an analyzer rule replaced
//! expressions.
//!
//! `LogicalPlan::map_expressions` keeps each node's schema, which is right
//! while a rewrite keeps every field as it was. Freshet's rules replace an
//! expression with a function of the same type whose field can differ in its
//! metadata (a cast of a `numeric(10,2)` column to `double precision` kept
//! the column's type tag; the function that replaces it has none). The
//! physical plan is derived from the expressions, so the logical schemas
//! must be too, up to the root: a `UNION` above the change included.

use datafusion::common::tree_node::{Transformed, TransformedResult};
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{LogicalPlan, Union};

/// Every node's schema derived again from its expressions and inputs.
pub(crate) fn recompute_all(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        Ok(Transformed::yes(match node {
            LogicalPlan::Union(union) => {
                LogicalPlan::Union(Union::try_new_with_loose_types(union.inputs)?)
            }
            other => other.recompute_schema()?,
        }))
    })
    .data()
}
