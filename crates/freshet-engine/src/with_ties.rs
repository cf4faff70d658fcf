//! `FETCH FIRST n ROWS WITH TIES`: the first `n` rows in the query's order,
//! and every later row that ties with the last of them.
//!
//! DataFusion plans neither `WITH TIES` nor a limit that depends on the
//! rows. It is planned in two steps, with DataFusion's own operators:
//!
//! 1. `fetch_first`'s AST rewrite writes the clause as a `LIMIT` whose
//!    count is the marker call [`marked`]`(n)`, keeping the `OFFSET`,
//!    which DataFusion plans as a `Limit` over the query's
//!    `Sort` (through the projection that drops sort-only columns).
//! 2. [`PostgresWithTies`], an `AnalyzerRule`, replaces that `Sort` and the
//!    `Limit` over it: with `m` rows skipped, the rows kept are those whose
//!    `rank()` in the sort order is at most `m + n` (compared as
//!    `rank - m <= n`, which cannot overflow), which are exactly the
//!    first `m + n` rows and the rows tied with the last of them; the `m`
//!    skipped ones are then taken off by a `Limit` without a count.
//!
//! As in PostgreSQL: the clause needs an `ORDER BY` (42601), a count of 0
//! gives no rows, and a NULL or negative count fails (2201W), checked by the
//! marker function when the count is evaluated.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::functions_window::expr_fn::rank;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    cast, col, lit, ColumnarValue, Expr, ExprFunctionExt, Limit, LogicalPlan, LogicalPlanBuilder,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Sort, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, ObjectName,
};

use crate::EngineError;

/// The marker function's name.
const MARKER: &str = "freshet_fetch_with_ties";
/// The rank column the rule adds, and drops again.
const RANK_COLUMN: &str = "freshet_ties_rank";

/// Registers the marker function and the rule with a session.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(with_ties_udf().as_ref().clone());
    ctx.add_analyzer_rule(Arc::new(PostgresWithTies));
}

/// The marker call around a `FETCH … WITH TIES` count, which
/// `fetch_first` writes as the query's `LIMIT` (see the module docs).
pub(crate) fn marked(count: SqlExpr) -> SqlExpr {
    SqlExpr::Function(Function {
        name: ObjectName::from(vec![Ident::new(MARKER)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(count))],
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

/// The marker function: its argument, the row count, checked as
/// PostgreSQL checks it.
pub(crate) fn with_ties_udf() -> Arc<ScalarUDF> {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    UDF.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(WithTiesCount {
            signature: Signature::exact(vec![DataType::Int64], Volatility::Immutable),
        }))
    })
    .clone()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct WithTiesCount {
    signature: Signature,
}

impl ScalarUDFImpl for WithTiesCount {
    fn name(&self) -> &str {
        MARKER
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        crate::udf_args::evaluate(&args.args, |arrays| {
            let [count] = arrays else {
                return Err(DataFusionError::Internal(format!(
                    "{MARKER} takes one argument"
                )));
            };
            let counts = count
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| DataFusionError::Internal(format!("{MARKER} takes a bigint")))?;
            for i in 0..counts.len() {
                if counts.is_null(i) {
                    return Err(EngineError::new(
                        "2201W",
                        "row count cannot be null in FETCH FIRST ... WITH TIES clause",
                    )
                    .into());
                }
                if counts.value(i) < 0 {
                    return Err(EngineError::new("2201W", "LIMIT must not be negative").into());
                }
            }
            Ok(count.clone())
        })
    }
}

/// The analyzer rule described in the module docs.
#[derive(Debug, Default)]
pub(crate) struct PostgresWithTies;

impl AnalyzerRule for PostgresWithTies {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Limit(limit) => match marked_count(&limit) {
                Some(count) => with_ties(limit, count).map(Transformed::yes),
                None => Ok(Transformed::no(LogicalPlan::Limit(limit))),
            },
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "freshet_postgres_with_ties"
    }
}

/// The marker call that is `limit`'s count, if it is one.
fn marked_count(limit: &Limit) -> Option<Expr> {
    match limit.fetch.as_deref() {
        Some(call @ Expr::ScalarFunction(ScalarFunction { func, .. })) if func.name() == MARKER => {
            Some(call.clone())
        }
        _ => None,
    }
}

/// `limit`'s input, its `Sort` replaced by the rows kept, then the skipped
/// rows taken off.
fn with_ties(limit: Limit, count: Expr) -> DfResult<LogicalPlan> {
    let skip = limit.skip.as_deref().cloned();
    let kept = keep_ties(Arc::unwrap_or_clone(limit.input), &count, skip.clone())?;
    match skip {
        Some(skip) => LogicalPlanBuilder::from(kept)
            .limit_by_expr(Some(skip), None)?
            .build(),
        None => Ok(kept),
    }
}

/// `plan` (the `Sort`, or projections over it) with the `Sort` replaced by
/// the first `skip + count` rows and their ties, in the same order.
fn keep_ties(plan: LogicalPlan, count: &Expr, skip: Option<Expr>) -> DfResult<LogicalPlan> {
    match plan {
        LogicalPlan::Sort(sort) => ranked(sort, count, skip),
        LogicalPlan::Projection(projection) => {
            let input = keep_ties(Arc::unwrap_or_clone(projection.input), count, skip)?;
            LogicalPlanBuilder::from(input)
                .project(projection.expr)?
                .build()
        }
        _ => Err(EngineError::new(
            "42601",
            "WITH TIES cannot be specified without ORDER BY clause",
        )
        .into()),
    }
}

fn ranked(sort: Sort, count: &Expr, skip: Option<Expr>) -> DfResult<LogicalPlan> {
    let input = Arc::unwrap_or_clone(sort.input);
    let columns: Vec<Expr> = input
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let rank = rank()
        .order_by(sort.expr.clone())
        .build()?
        .alias(RANK_COLUMN);
    let skip = skip.unwrap_or_else(|| lit(ScalarValue::Int64(Some(0))));
    // rank - skip <= count: rank is at most the row count and DataFusion
    // refuses a negative OFFSET, so this cannot overflow where
    // `skip + count` would (and wrap: OFFSET 1 FETCH FIRST 2^63-1 ROWS).
    let skip = datafusion::functions::expr_fn::coalesce(vec![skip, lit(0i64)]);
    let kept = count
        .clone()
        .gt(lit(0i64))
        .and((cast(col(RANK_COLUMN), DataType::Int64) - skip).lt_eq(count.clone()));
    LogicalPlanBuilder::from(input)
        .window(vec![rank])?
        .filter(kept)?
        .sort(sort.expr)?
        .project(columns)?
        .build()
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewritten(sql: &str) -> String {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        crate::fetch_first::rewrite(&mut statements[0]);
        statements[0].to_string()
    }

    #[test]
    fn the_count_and_offset_become_a_marked_limit() {
        assert_eq!(
            rewritten("SELECT x FROM t ORDER BY x OFFSET 1 FETCH FIRST 2 ROWS WITH TIES"),
            "SELECT x FROM t ORDER BY x LIMIT freshet_fetch_with_ties(2) OFFSET 1"
        );
        assert_eq!(
            rewritten("SELECT x FROM t ORDER BY x FETCH NEXT ROW WITH TIES"),
            "SELECT x FROM t ORDER BY x LIMIT freshet_fetch_with_ties(1)"
        );
    }

    #[test]
    fn a_limit_beside_it_is_left_for_datafusion_to_refuse() {
        assert!(
            rewritten("SELECT x FROM t ORDER BY x LIMIT 3 FETCH FIRST 2 ROWS WITH TIES")
                .contains("FETCH")
        );
    }
}
