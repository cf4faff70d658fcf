//! Aggregates whose result PostgreSQL types differently from DataFusion,
//! replaced before type coercion while their arguments still have the
//! types the user gave them:
//!
//! * `sum` of `real` is a `real` ([`crate::real_sum`]);
//! * `avg` of `smallint`, `integer`, `bigint` and `numeric` is an exact
//!   `numeric` with at least 16 decimals ([`crate::exact_avg`]).
//!
//! Each replacement is an aggregate function of the same name, so the
//! column a client sees keeps its name; the plan's schemas are derived again
//! from the new types (see [`crate::plan_rewrite`]).

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::AnalyzerRule;

/// The analyzer rule described in the module docs.
#[derive(Debug, Default)]
pub(crate) struct PostgresAggregateResults;

impl AnalyzerRule for PostgresAggregateResults {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        crate::plan_rewrite::rewrite_plan(plan, |expr, schema| {
            Ok(
                match crate::real_sum::replace(&expr, schema)
                    .or_else(|| crate::exact_avg::replace(&expr, schema))
                {
                    Some(replaced) => Transformed::yes(replaced),
                    None => Transformed::no(expr),
                },
            )
        })
    }

    fn name(&self) -> &str {
        "freshet_postgres_aggregate_results"
    }
}
