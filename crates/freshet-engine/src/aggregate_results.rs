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

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::expr::{AggregateFunction, WindowFunction};
use datafusion::logical_expr::{AggregateUDF, Expr, LogicalPlan, WindowFunctionDefinition};
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

/// `expr` with `func` in place of the aggregate function named `name`, as
/// an aggregate or a window function, when the call is not DISTINCT and
/// `takes` its arguments; `None` for any other expression (and for a call
/// of `func` itself, so the rule can run again over its own output).
pub(crate) fn replace_aggregate(
    expr: &Expr,
    name: &str,
    takes: impl Fn(&[Expr]) -> bool,
    func: Arc<AggregateUDF>,
) -> Option<Expr> {
    let replaces = |f: &AggregateUDF, distinct: bool, args: &[Expr]| {
        f.name() == name && !distinct && *f != *func && takes(args)
    };
    match expr {
        Expr::AggregateFunction(call)
            if replaces(&call.func, call.params.distinct, &call.params.args) =>
        {
            Some(Expr::AggregateFunction(AggregateFunction {
                func,
                params: call.params.clone(),
            }))
        }
        Expr::WindowFunction(window) => match &window.fun {
            WindowFunctionDefinition::AggregateUDF(f)
                if replaces(f, window.params.distinct, &window.params.args) =>
            {
                Some(Expr::WindowFunction(Box::new(WindowFunction {
                    fun: WindowFunctionDefinition::AggregateUDF(func),
                    params: window.params.clone(),
                })))
            }
            _ => None,
        },
        _ => None,
    }
}
