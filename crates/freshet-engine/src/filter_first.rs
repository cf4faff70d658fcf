//! Rows a query's WHERE clause removes are never computed on.
//!
//! DataFusion's physical projection pushdown moves a narrowing projection
//! below the filter above it (`FilterExec::try_swapping_with_projection`),
//! so the projection's expressions run on rows the filter then drops. For
//! an expression that can fail, that turns an answer into an error:
//! `SELECT a / b FROM t WHERE id = 1` failed with "division by zero" when
//! another row had `b = 0`, where PostgreSQL answers. Casts, checked
//! integer arithmetic and model calls are in the same position (and a
//! model would score rows the query never asked for).
//!
//! [`FilterFirst`], a physical optimizer rule run after DataFusion's, puts
//! such a filter back under its projection whenever the projection computes
//! anything (is more than a choice of columns).

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::Result as DfResult;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::ExecutionPlan;

/// The physical optimizer rule described in the module docs.
#[derive(Debug, Default)]
pub(crate) struct FilterFirst;

impl PhysicalOptimizerRule for FilterFirst {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(filter_below_projection).data()
    }

    fn name(&self) -> &str {
        "freshet_filter_first"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

fn is_column(expr: &Arc<dyn PhysicalExpr>) -> bool {
    expr.is::<Column>()
}

fn filter_below_projection(
    plan: Arc<dyn ExecutionPlan>,
) -> DfResult<Transformed<Arc<dyn ExecutionPlan>>> {
    let Some(filter) = plan.downcast_ref::<FilterExec>() else {
        return Ok(Transformed::no(plan));
    };
    if filter.projection().is_some() {
        return Ok(Transformed::no(plan));
    }
    let Some(projection) = filter.input().downcast_ref::<ProjectionExec>() else {
        return Ok(Transformed::no(plan));
    };
    let computed = projection.expr().iter().any(|p| !is_column(&p.expr));
    if !computed {
        return Ok(Transformed::no(plan));
    }
    // The predicate reads the projection's outputs; read the input columns
    // they are instead.
    let exprs = projection.expr();
    let mut unmapped = false;
    let predicate = Arc::clone(filter.predicate())
        .transform(|e| {
            let Some(column) = e.downcast_ref::<Column>() else {
                return Ok(Transformed::no(e));
            };
            match exprs.get(column.index()) {
                Some(source) if is_column(&source.expr) => {
                    Ok(Transformed::yes(Arc::clone(&source.expr)))
                }
                // A filter on a computed value (a subquery's `a / b AS q`,
                // or a model's score) stays where it is: moving it would
                // compute the value twice.
                _ => {
                    unmapped = true;
                    Ok(Transformed::no(e))
                }
            }
        })
        .data()?;
    if unmapped {
        return Ok(Transformed::no(plan));
    }
    let filtered = FilterExec::try_new(predicate, Arc::clone(projection.input()))?;
    let projected = ProjectionExec::try_new(exprs.to_vec(), Arc::new(filtered))?;
    Ok(Transformed::yes(Arc::new(projected)))
}
