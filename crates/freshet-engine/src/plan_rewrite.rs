//! Replacing expressions in a logical plan, the way Freshet's analyzer rules
//! do it: every node's expressions rewritten bottom-up, the names of output
//! columns kept, and the schemas derived again afterwards.
//!
//! Why the names: a rule that replaces `round(x)` by a function of its own
//! must not rename the column a client sees (`round`), nor break a parent
//! node that refers to the child's output by name. `NamePreserver` aliases a
//! replaced expression back to the name it had.
//!
//! Why the schemas: `LogicalPlan::map_expressions` keeps each node's schema,
//! which is right while a rewrite keeps every field as it was. Freshet's
//! rules replace an expression with a function of the same type whose field
//! can differ in its metadata (a cast of a `numeric(10,2)` column to `double
//! precision` kept the column's type tag; the function that replaces it has
//! none). The physical plan is derived from the expressions, so the logical
//! schemas must be too, up to the root: a `UNION` above the change included.

use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Expr, LogicalPlan, Union};

/// Rewrites one node's expressions bottom-up with `rewrite`, which is given
/// each sub-expression and the schema the node's expressions are evaluated
/// against ([`crate::pg_compat::expression_schema`]). A top-level expression
/// that changed keeps its output name. The node's own schema is left as it
/// was: see [`rewrite_plan`] for the whole-plan form that derives it again.
pub(crate) fn rewrite_node<F>(
    node: LogicalPlan,
    mut rewrite: F,
) -> DfResult<Transformed<LogicalPlan>>
where
    F: FnMut(Expr, &DFSchema) -> DfResult<Transformed<Expr>>,
{
    let schema = crate::pg_compat::expression_schema(&node);
    let names = NamePreserver::new(&node);
    node.map_expressions(|expr| {
        let saved = names.save(&expr);
        let rewritten = expr.transform_up(|e| rewrite(e, &schema))?;
        Ok(if rewritten.transformed {
            Transformed::yes(saved.restore(rewritten.data))
        } else {
            rewritten
        })
    })
}

/// [`rewrite_node`] applied to every node of `plan`, subqueries' plans
/// included, bottom-up. When anything changed, every schema is derived again
/// ([`recompute_all`]), so the plan's fields describe the new expressions.
pub(crate) fn rewrite_plan<F>(plan: LogicalPlan, mut rewrite: F) -> DfResult<LogicalPlan>
where
    F: FnMut(Expr, &DFSchema) -> DfResult<Transformed<Expr>>,
{
    let rewritten = plan.transform_up_with_subqueries(|node| rewrite_node(node, &mut rewrite))?;
    if rewritten.transformed {
        recompute_all(rewritten.data)
    } else {
        Ok(rewritten.data)
    }
}

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
