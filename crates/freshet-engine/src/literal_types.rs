//! Integer literals typed as PostgreSQL types them.
//!
//! PostgreSQL gives a numeric literal without a fraction the type `integer`
//! when it fits in 32 bits, else `bigint`, else `numeric`. DataFusion's SQL
//! planner types every such literal `bigint`. Two things users see follow
//! from that: `SELECT 1` is announced as int8, so node-postgres hands
//! `SELECT $1::int + 1` back as the string `'42'`; and `int4_col + 1` is
//! computed in bigint, so `2147483647::int4 + 1` answers 2147483648 where
//! PostgreSQL raises 22003 — a wrong answer without an error.
//!
//! [`narrow_integer_literals`] retypes the literals of a freshly planned
//! user statement as `integer` where they fit, before the analyzer runs.
//! Type coercion then resolves each operator as PostgreSQL does: `int4 + 1`
//! stays int4 (and overflows as int4, through [`crate::overflow`]), while
//! `int8 + 1`, `numeric * 2` and `float8 / 3` widen the literal.
//!
//! Left as DataFusion types them, each for a reason:
//! * `LIMIT` and `OFFSET`: DataFusion reads them only from bigint literals.
//! * `VALUES` lists: their column types are settled across rows when the
//!   SQL is planned (a table's `INSERT … VALUES` casts to the column type
//!   anyway).
//! * arguments of aggregate and window functions: `count(*)` is recognised
//!   by its bigint literal, and `sum`'s result is bigint for both types.
//! * statements with a recursive CTE: the working table's types are fixed
//!   when the SQL is planned.
//! * a placeholder's type inferred from a literal (`$1 + 1`) stays bigint,
//!   as it is settled when the SQL is planned.

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Distinct, Expr, LogicalPlan};

/// Retypes the bigint literals of `plan` that fit in 32 bits as integer
/// (module docs). Output names are kept, so nothing above a rewritten
/// node loses the column it refers to.
pub(crate) fn narrow_integer_literals(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    if plan.exists(|node| Ok(matches!(node, LogicalPlan::RecursiveQuery(_))))? {
        return Ok(plan);
    }
    let rewritten = plan.transform_up_with_subqueries(|node| {
        let node = match node {
            LogicalPlan::Limit(_)
            | LogicalPlan::Values(_)
            | LogicalPlan::Extension(_)
            | LogicalPlan::TableScan(_)
            | LogicalPlan::Distinct(Distinct::On(_)) => node,
            other => {
                let names = NamePreserver::new(&other);
                other
                    .map_expressions(|expr| {
                        let saved = names.save(&expr);
                        let narrowed = narrow_expr(expr)?;
                        Ok(if narrowed.transformed {
                            Transformed::yes(saved.restore(narrowed.data))
                        } else {
                            narrowed
                        })
                    })?
                    .data
            }
        };
        // A child or subquery may have changed a column's type even when
        // this node's own expressions did not change.
        Ok(Transformed::yes(node.recompute_schema()?))
    })?;
    Ok(rewritten.data)
}

fn narrow_expr(expr: Expr) -> DfResult<Transformed<Expr>> {
    expr.transform_down(|e| match e {
        Expr::AggregateFunction(_) | Expr::WindowFunction(_) => {
            Ok(Transformed::new(e, false, TreeNodeRecursion::Jump))
        }
        Expr::Literal(ScalarValue::Int64(Some(v)), metadata) => match i32::try_from(v) {
            Ok(narrow) => Ok(Transformed::yes(Expr::Literal(
                ScalarValue::Int32(Some(narrow)),
                metadata,
            ))),
            Err(_) => Ok(Transformed::no(Expr::Literal(
                ScalarValue::Int64(Some(v)),
                metadata,
            ))),
        },
        other => Ok(Transformed::no(other)),
    })
}
