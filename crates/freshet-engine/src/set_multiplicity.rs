//! `INTERSECT ALL` and `EXCEPT ALL`, counting duplicates as PostgreSQL does.
//!
//! DataFusion plans `L INTERSECT ALL R` as a semi join and `L EXCEPT ALL R`
//! as an anti join of `L` with `R` on every column, NULLs equal. That keeps
//! every copy of a left row that has a match (or has none), whatever the
//! number of copies: `VALUES (1), (1), (2) EXCEPT ALL SELECT 1` gave `2`.
//! SQL keeps `min(m, n)` copies of a row found `m` times on the left and `n`
//! times on the right for `INTERSECT ALL`, and `max(m - n, 0)` for
//! `EXCEPT ALL`.
//!
//! [`CountedSetOperations`], an `AnalyzerRule`, numbers the copies of each
//! distinct row on both sides (`row_number() OVER (PARTITION BY` every
//! column`)`) and adds that number to the join keys. Copy `k` of a row on
//! the left then matches copy `k` on the right only, so the semi join keeps
//! copies `1..=min(m, n)` and the anti join copies `n+1..=m`. The number is
//! projected away above the join, which leaves the plan's schema as it was.
//!
//! The rule finds these joins by their shape when the analyzer runs, before
//! any optimizer rule has turned a subquery into a semi or anti join: a
//! `LeftSemi` or `LeftAnti` join on as many NULL-equal keys as the left side
//! has columns, with no filter, is what DataFusion's `intersect_or_except`
//! builds (SQL's `LEFT SEMI JOIN … ON` compares NULLs as unequal). The
//! distinct forms put a `Distinct` under the join, whose left rows are then
//! all single copies, and are left alone.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult};
use datafusion::common::{Column, NullEquality, Result as DfResult};
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, Join, JoinType, LogicalPlan, Projection, Window,
};
use datafusion::optimizer::AnalyzerRule;

/// The name of the copy number each side is given.
const COPY: &str = "__freshet_copy";

/// Registers the rule with a session.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.add_analyzer_rule(Arc::new(CountedSetOperations));
}

/// The analyzer rule described in the module docs.
#[derive(Debug, Default)]
pub(crate) struct CountedSetOperations;

impl AnalyzerRule for CountedSetOperations {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(counted).data()
    }

    fn name(&self) -> &str {
        "freshet_counted_set_operations"
    }
}

/// Whether `join` is the join DataFusion makes of `INTERSECT ALL` or
/// `EXCEPT ALL` (see the module docs).
fn is_set_operation_all(join: &Join) -> bool {
    matches!(join.join_type, JoinType::LeftSemi | JoinType::LeftAnti)
        && join.null_equality == NullEquality::NullEqualsNull
        && join.filter.is_none()
        && !join.null_aware
        && join.on.len() == join.left.schema().fields().len()
        && !matches!(join.left.as_ref(), LogicalPlan::Distinct(_))
}

fn counted(node: LogicalPlan) -> DfResult<Transformed<LogicalPlan>> {
    let join = match node {
        LogicalPlan::Join(join) if is_set_operation_all(&join) => join,
        other => return Ok(Transformed::no(other)),
    };
    let output: Vec<Expr> = join
        .left
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let (left, left_copy) = numbered(join.left)?;
    let (right, right_copy) = numbered(join.right)?;
    let mut on = join.on;
    on.push((left_copy, right_copy));
    let counted = Join::try_new(
        left,
        right,
        on,
        None,
        join.join_type,
        join.join_constraint,
        NullEquality::NullEqualsNull,
        false,
    )?;
    let projection = Projection::try_new(output, Arc::new(LogicalPlan::Join(counted)))?;
    Ok(Transformed::yes(LogicalPlan::Projection(projection)))
}

/// `plan` with one more column, [`COPY`]: the number of each row among the
/// rows equal to it (1, 2, …), and that column as an expression.
fn numbered(plan: Arc<LogicalPlan>) -> DfResult<(Arc<LogicalPlan>, Expr)> {
    let columns: Vec<Expr> = plan
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let width = columns.len();
    let number = row_number().partition_by(columns.clone()).build()?;
    let window = Window::try_new(vec![number], plan)?;
    let (qualifier, field) = window.schema.qualified_field(width);
    let number_column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
    let mut exprs = columns;
    exprs.push(number_column.alias(COPY));
    let projection = Projection::try_new(exprs, Arc::new(LogicalPlan::Window(window)))?;
    Ok((
        Arc::new(LogicalPlan::Projection(projection)),
        Expr::Column(Column::from_name(COPY)),
    ))
}
