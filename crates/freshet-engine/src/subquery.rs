//! Correlated subqueries: what DataFusion can run, Postgres' answers for
//! them, and a clear refusal for the rest.
//!
//! DataFusion runs a correlated subquery only after turning it into a join,
//! and it insists that a correlated scalar subquery be an aggregate (so it
//! yields at most one row per outer row). Postgres instead runs any scalar
//! subquery and fails with 21000 if it yields more than one row. Two rules
//! bridge that:
//!
//! * [`ScalarSubqueryAtMostOneRow`] (an `AnalyzerRule`) wraps a correlated
//!   scalar subquery that is not an aggregate in `freshet_single_value(x)`,
//!   an aggregate that returns the one value, NULL for no rows, and the
//!   Postgres error for more than one. Conditions in the subquery's WHERE that
//!   only mention the outer query (`… AND outer.flag`) are moved out into
//!   `CASE WHEN outer.flag THEN (subquery) END`, because DataFusion cannot
//!   move such a condition over an aggregate.
//!   The same rule marks an uncorrelated scalar subquery that may return no
//!   row as nullable (`freshet_nullable(x)`): DataFusion 55 takes its
//!   nullability from the subquery's column, so `(SELECT a FROM t WHERE
//!   false)` over a NOT NULL column failed at execution and `… IS NULL` was
//!   simplified to false (apache/datafusion#24513).
//! * [`NullCatalogSubqueries`] (an `AnalyzerRule`, after the first) answers
//!   NULL for a correlated subquery DataFusion cannot turn into a join
//!   (tried one by one), but only in a query that reads nothing but
//!   `pg_catalog` and `information_schema`: psql and drivers ask such
//!   questions about objects Freshet never has (collations, policies).
//!   Uncorrelated subqueries are left to run (`'t'::regclass` reads pg_class
//!   through one). In a user's query the subquery stays, and execution
//!   refuses it with 0A000 (see `planning::map_df_error`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, UInt64Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr_rewriter::strip_outer_reference;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{
    when, Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Expr, Filter, LogicalPlan,
    LogicalPlanBuilder, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Subquery, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use crate::EngineError;

/// Name of the aggregate a non-aggregate correlated scalar subquery is wrapped in.
const SINGLE_VALUE: &str = "freshet_single_value";

/// Postgres' message for a scalar subquery with more than one row.
pub(crate) const MORE_THAN_ONE_ROW: &str =
    "more than one row returned by a subquery used as an expression";

/// Registers the rules and the aggregate they use.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udaf(single_value_udaf().as_ref().clone());
    ctx.register_udf(nullable_udf().as_ref().clone());
    ctx.add_analyzer_rule(Arc::new(ScalarSubqueryAtMostOneRow));
    ctx.add_analyzer_rule(Arc::new(NullCatalogSubqueries));
}

fn single_value_udaf() -> Arc<AggregateUDF> {
    static UDAF: std::sync::OnceLock<Arc<AggregateUDF>> = std::sync::OnceLock::new();
    UDAF.get_or_init(|| Arc::new(AggregateUDF::new_from_impl(SingleValue::new())))
        .clone()
}

fn nullable_udf() -> Arc<ScalarUDF> {
    static UDF: std::sync::OnceLock<Arc<ScalarUDF>> = std::sync::OnceLock::new();
    UDF.get_or_init(|| Arc::new(ScalarUDF::new_from_impl(Nullable::new())))
        .clone()
}

/// Wraps correlated, non-aggregate scalar subqueries so DataFusion can
/// decorrelate them with Postgres' semantics (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct ScalarSubqueryAtMostOneRow;

impl AnalyzerRule for ScalarSubqueryAtMostOneRow {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        refuse_outer_level_aggregates(&plan)?;
        plan.transform_up_with_subqueries(|plan| {
            if !matches!(plan, LogicalPlan::Projection(_) | LogicalPlan::Filter(_)) {
                return Ok(Transformed::no(plan));
            }
            crate::plan_rewrite::rewrite_node(plan, rewrite_scalar_subquery)
        })
        .data()
    }

    fn name(&self) -> &str {
        "freshet_scalar_subquery_at_most_one_row"
    }
}

/// Refuses an aggregate inside a subquery whose arguments read columns of an
/// outer query and none of the subquery's own, as `(SELECT sum(t1.b) FROM
/// t2 WHERE …) FROM t1`.
///
/// SQL computes such an aggregate at the outer query's level: PostgreSQL
/// sums `t1.b` over the outer rows (and then usually reports a GROUP BY
/// error, or an aggregate in WHERE). DataFusion would sum it inside the
/// subquery, once per subquery row, which is a different answer given
/// without an error. Until the aggregate can be moved to its level, 0A000.
fn refuse_outer_level_aggregates(plan: &LogicalPlan) -> DfResult<()> {
    plan.apply_with_subqueries(|node| {
        let LogicalPlan::Aggregate(aggregate) = node else {
            return Ok(TreeNodeRecursion::Continue);
        };
        for expr in &aggregate.aggr_expr {
            expr.apply(|e| {
                if let Expr::AggregateFunction(function) = e {
                    if reads_only_outer_columns(function) {
                        return Err(DataFusionError::External(Box::new(EngineError::new(
                            "0A000",
                            format!(
                                "aggregate {}() over columns of an outer query only is not \
                                 supported inside a subquery: SQL computes it at the outer \
                                 query's level; aggregate in the outer query instead",
                                function.func.name()
                            ),
                        ))));
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map(|_| ())
}

/// Whether an aggregate's arguments (and FILTER) read an outer query's
/// columns and none of their own query's: SQL's rule for the level an
/// aggregate belongs to.
fn reads_only_outer_columns(function: &datafusion::logical_expr::expr::AggregateFunction) -> bool {
    let (mut outer, mut own) = (false, false);
    let params = &function.params;
    for expr in params.args.iter().chain(params.filter.as_deref()) {
        // A walk that cannot fail: the closure only records what it sees.
        let _ = expr.apply(|e| {
            match e {
                Expr::OuterReferenceColumn(..) => outer = true,
                Expr::Column(_) => own = true,
                _ => {}
            }
            Ok(TreeNodeRecursion::Continue)
        });
    }
    outer && !own
}

fn rewrite_scalar_subquery(expr: Expr, outer: &DFSchema) -> DfResult<Transformed<Expr>> {
    let Expr::ScalarSubquery(subquery) = expr else {
        return Ok(Transformed::no(expr));
    };
    if subquery.outer_ref_columns.is_empty() {
        return mark_nullable(subquery);
    }
    if is_aggregate(&subquery.subquery)
        || subquery.subquery.max_rows().is_some_and(|n| n <= 1)
        || subquery.subquery.schema().fields().len() != 1
    {
        return Ok(Transformed::no(Expr::ScalarSubquery(subquery)));
    }
    let (inner, hoisted) = hoist_outer_conditions(subquery.subquery.as_ref().clone(), outer)?;
    // Left uncorrelated by hoisting, DataFusion runs it once and checks its
    // row count itself.
    let inner = if inner.all_out_ref_exprs().is_empty() {
        inner
    } else {
        wrap_in_single_value(inner)?
    };
    let new_subquery = Expr::ScalarSubquery(Subquery {
        outer_ref_columns: inner.all_out_ref_exprs(),
        subquery: Arc::new(inner),
        spans: subquery.spans.clone(),
    });
    let result = match hoisted {
        Some(condition) => when(condition, new_subquery).end()?,
        None => new_subquery,
    };
    Ok(Transformed::yes(result))
}

/// An uncorrelated scalar subquery is NULL when it yields no row, whatever
/// its column's nullability: `SELECT freshet_nullable(x) AS x FROM (plan)`
/// says so, for a plan that may yield none.
fn mark_nullable(subquery: Subquery) -> DfResult<Transformed<Expr>> {
    let plan = subquery.subquery.as_ref();
    let (qualifier, field) = plan.schema().qualified_field(0);
    if field.is_nullable() || plan.schema().fields().len() != 1 || always_one_row(plan) {
        return Ok(Transformed::no(Expr::ScalarSubquery(subquery)));
    }
    let name = field.name().clone();
    let column = Expr::Column(Column::new(qualifier.cloned(), name.clone()));
    let nullable = LogicalPlanBuilder::from(plan.clone())
        .project(vec![nullable_udf().call(vec![column]).alias(name)])?
        .build()?;
    Ok(Transformed::yes(Expr::ScalarSubquery(Subquery {
        subquery: Arc::new(nullable),
        outer_ref_columns: subquery.outer_ref_columns,
        spans: subquery.spans,
    })))
}

/// An aggregate without GROUP BY or HAVING, or a FROM-less SELECT: exactly
/// one row.
fn always_one_row(plan: &LogicalPlan) -> bool {
    match strip_projections(plan) {
        LogicalPlan::Aggregate(agg) => agg.group_expr.is_empty(),
        LogicalPlan::EmptyRelation(empty) => empty.produce_one_row,
        _ => false,
    }
}

/// Whether DataFusion considers the subquery aggregated (its own check).
fn is_aggregate(plan: &LogicalPlan) -> bool {
    match strip_projections(plan) {
        LogicalPlan::Aggregate(agg) => !agg.aggr_expr.is_empty(),
        LogicalPlan::Filter(Filter { input, .. }) => {
            matches!(input.as_ref(), LogicalPlan::Aggregate(agg) if !agg.aggr_expr.is_empty())
        }
        _ => false,
    }
}

fn strip_projections(plan: &LogicalPlan) -> &LogicalPlan {
    match plan {
        LogicalPlan::Projection(p) => strip_projections(&p.input),
        LogicalPlan::SubqueryAlias(a) => strip_projections(&a.input),
        other => other,
    }
}

/// Moves the conjuncts of the subquery's top WHERE that mention only columns
/// of the immediately enclosing query out of the subquery. Only for the
/// `Projection → Filter` shape a plain `SELECT x FROM … WHERE …` plans to.
fn hoist_outer_conditions(
    plan: LogicalPlan,
    outer: &DFSchema,
) -> DfResult<(LogicalPlan, Option<Expr>)> {
    let LogicalPlan::Projection(projection) = &plan else {
        return Ok((plan, None));
    };
    let LogicalPlan::Filter(filter) = projection.input.as_ref() else {
        return Ok((plan, None));
    };
    let (hoist, keep): (Vec<&Expr>, Vec<&Expr>) = split_conjunction(&filter.predicate)
        .into_iter()
        .partition(|e| only_outer_columns(e, outer));
    if hoist.is_empty() {
        return Ok((plan, None));
    }
    let condition = conjunction(hoist.into_iter().map(|e| strip_outer_reference(e.clone())));
    let input = match conjunction(keep.into_iter().cloned()) {
        Some(predicate) => LogicalPlan::Filter(Filter::try_new(predicate, filter.input.clone())?),
        None => filter.input.as_ref().clone(),
    };
    let new_plan = LogicalPlanBuilder::from(input)
        .project(projection.expr.clone())?
        .build()?;
    Ok((new_plan, condition))
}

/// True when `expr` refers to outer columns, all of them in `outer`, and to
/// no column of the subquery itself.
fn only_outer_columns(expr: &Expr, outer: &DFSchema) -> bool {
    let mut outer_refs = 0;
    let mut ok = true;
    let _ = expr.apply(|e| {
        match e {
            Expr::Column(_)
            | Expr::ScalarSubquery(_)
            | Expr::Exists(_)
            | Expr::InSubquery(_)
            | Expr::SetComparison(_) => ok = false,
            Expr::OuterReferenceColumn(_, column) => {
                outer_refs += 1;
                ok &= outer.has_column(column);
            }
            _ => {}
        }
        Ok(if ok {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    ok && outer_refs > 0 && !expr.is_volatile()
}

/// `SELECT freshet_single_value(x) AS x FROM (plan)`.
fn wrap_in_single_value(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    let (qualifier, field) = plan.schema().qualified_field(0);
    let name = field.name().clone();
    let column = Expr::Column(Column::new(qualifier.cloned(), name.clone()));
    let aggregate = single_value_udaf().call(vec![column]);
    let aggregate_name = aggregate.schema_name().to_string();
    LogicalPlanBuilder::from(plan)
        .aggregate(Vec::<Expr>::new(), vec![aggregate])?
        .project(vec![
            Expr::Column(Column::new_unqualified(aggregate_name)).alias(name)
        ])?
        .build()
}

/// Answers NULL for the correlated scalar subqueries DataFusion cannot
/// decorrelate, in queries that read only the system catalogs (see the
/// module docs). Each one is tried on its own: the subquery over its node's
/// input goes through DataFusion's optimizer, and only if that fails, or
/// leaves the subquery in place, is it replaced. The others keep their
/// answers (psql's `\d` reads column defaults through one).
#[derive(Debug, Default)]
pub(crate) struct NullCatalogSubqueries;

impl AnalyzerRule for NullCatalogSubqueries {
    fn name(&self) -> &str {
        "freshet_null_catalog_subqueries"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        if !has_correlated_scalar_subquery(&plan) || !reads_only_system_catalogs(&plan) {
            return Ok(plan);
        }
        plan.transform_up_with_subqueries(|node| {
            let input = match node.inputs().as_slice() {
                [input] => Arc::new((*input).clone()),
                _ => return Ok(Transformed::no(node)),
            };
            crate::plan_rewrite::rewrite_node(node, |e, _| match e {
                Expr::ScalarSubquery(subquery)
                    if !subquery.outer_ref_columns.is_empty()
                        && !decorrelates(&subquery, &input) =>
                {
                    let data_type = subquery.subquery.schema().field(0).data_type().clone();
                    let null = ScalarValue::try_from(&data_type)?;
                    Ok(Transformed::yes(Expr::Literal(null, None)))
                }
                other => Ok(Transformed::no(other)),
            })
        })
        .data()
    }
}

/// Whether DataFusion's optimizer turns every subquery of `expr`, over
/// `input`, into a join: `expr` as the predicate of a filter if
/// `in_filter`, else as the one column of a projection.
pub(crate) fn expression_decorrelates(
    expr: Expr,
    input: &Arc<LogicalPlan>,
    in_filter: bool,
) -> bool {
    use datafusion::optimizer::{Optimizer, OptimizerContext};
    let probe = if in_filter {
        Filter::try_new(expr, input.clone()).map(LogicalPlan::Filter)
    } else {
        datafusion::logical_expr::Projection::try_new(
            vec![expr.alias("freshet_probe")],
            input.clone(),
        )
        .map(LogicalPlan::Projection)
    };
    let Ok(probe) = probe else {
        return false;
    };
    let context = OptimizerContext::new().with_skip_failing_rules(false);
    // Whatever subquery is left, correlated or not, DataFusion's physical
    // planner refuses (`1 IN (SELECT 1)` in a select list is left as it is).
    match Optimizer::new().optimize(probe, &context, |_, _| {}) {
        Ok(optimized) => !has_subquery(&optimized),
        Err(_) => false,
    }
}

/// Whether DataFusion's optimizer turns `subquery`, evaluated over `input`,
/// into a join.
pub(crate) fn decorrelates(subquery: &Subquery, input: &Arc<LogicalPlan>) -> bool {
    use datafusion::optimizer::{Optimizer, OptimizerContext};
    let Ok(projection) = datafusion::logical_expr::Projection::try_new(
        vec![Expr::ScalarSubquery(subquery.clone()).alias("freshet_probe")],
        input.clone(),
    ) else {
        return false;
    };
    let context = OptimizerContext::new().with_skip_failing_rules(false);
    match Optimizer::new().optimize(LogicalPlan::Projection(projection), &context, |_, _| {}) {
        Ok(optimized) => !any_expression(
            &optimized,
            |e| matches!(e, Expr::ScalarSubquery(s) if !s.outer_ref_columns.is_empty()),
        ),
        Err(_) => false,
    }
}

/// Whether any expression of the plan (or of its subqueries) is a subquery.
pub(crate) fn has_subquery(plan: &LogicalPlan) -> bool {
    any_expression(plan, |e| {
        matches!(
            e,
            Expr::ScalarSubquery(_)
                | Expr::Exists(_)
                | Expr::InSubquery(_)
                | Expr::SetComparison(_)
        )
    })
}

/// Whether an expression of the plan (or of its subqueries) is a correlated
/// scalar subquery.
fn has_correlated_scalar_subquery(plan: &LogicalPlan) -> bool {
    any_expression(
        plan,
        |e| matches!(e, Expr::ScalarSubquery(s) if !s.outer_ref_columns.is_empty()),
    )
}

/// Whether `found` holds for an expression anywhere in the plan, its
/// subqueries included.
pub(crate) fn any_expression(plan: &LogicalPlan, found: impl Fn(&Expr) -> bool) -> bool {
    let mut any = false;
    let _ = plan.apply_with_subqueries(|node| {
        let _ = node.apply_expressions(|e| {
            any |= e.exists(|e| Ok(found(e)))?;
            Ok(TreeNodeRecursion::Continue)
        });
        Ok(if any {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    any
}

/// Every table the plan scans (subqueries included) is in `pg_catalog` or
/// `information_schema`, and there is at least one.
fn reads_only_system_catalogs(plan: &LogicalPlan) -> bool {
    let mut scans = 0;
    let mut only_catalog = true;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            scans += 1;
            only_catalog &= matches!(
                scan.table_name.schema(),
                Some("pg_catalog") | Some("information_schema")
            );
        }
        Ok(TreeNodeRecursion::Continue)
    });
    scans > 0 && only_catalog
}

/// `freshet_single_value(x)`: the only value of its group, NULL for none, and
/// Postgres' 21000 error for more than one.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SingleValue {
    signature: Signature,
}

impl SingleValue {
    fn new() -> Self {
        SingleValue {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for SingleValue {
    fn name(&self) -> &str {
        SINGLE_VALUE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        arg_types
            .first()
            .cloned()
            .ok_or_else(|| DataFusionError::Plan(format!("{SINGLE_VALUE} takes one argument")))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(SingleValueAccumulator {
            value: ScalarValue::try_from(args.return_field.data_type())?,
            rows: 0,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[value]", args.name),
                args.return_field.data_type().clone(),
                true,
            )),
            Arc::new(Field::new(
                format!("{}[rows]", args.name),
                DataType::UInt64,
                false,
            )),
        ])
    }
}

#[derive(Debug)]
struct SingleValueAccumulator {
    value: ScalarValue,
    rows: u64,
}

impl SingleValueAccumulator {
    fn add(&mut self, rows: u64, array: &ArrayRef, index: usize) -> DfResult<()> {
        if rows == 0 {
            return Ok(());
        }
        self.rows += rows;
        if self.rows > 1 {
            return Err(DataFusionError::External(Box::new(EngineError::new(
                "21000",
                MORE_THAN_ONE_ROW,
            ))));
        }
        self.value = ScalarValue::try_from_array(array, index)?;
        Ok(())
    }
}

impl Accumulator for SingleValueAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let [array] = values else {
            return Err(DataFusionError::Internal(format!(
                "{SINGLE_VALUE} takes one argument"
            )));
        };
        for i in 0..array.len() {
            self.add(1, array, i)?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(self.value.clone())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.value.size() - std::mem::size_of_val(&self.value)
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![
            self.value.clone(),
            ScalarValue::UInt64(Some(self.rows)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let [values, rows] = states else {
            return Err(DataFusionError::Internal(format!(
                "{SINGLE_VALUE} has two state columns"
            )));
        };
        let rows = rows.as_primitive::<UInt64Type>();
        for i in 0..values.len() {
            self.add(rows.value(i), values, i)?;
        }
        Ok(())
    }
}

/// `freshet_nullable(x)`: `x`, typed as nullable (see [`mark_nullable`]).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Nullable {
    signature: Signature,
}

impl Nullable {
    fn new() -> Self {
        Nullable {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Nullable {
    fn name(&self) -> &str {
        "freshet_nullable"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        arg_types
            .first()
            .cloned()
            .ok_or_else(|| DataFusionError::Plan("freshet_nullable takes one argument".into()))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let field = args
            .arg_fields
            .first()
            .ok_or_else(|| DataFusionError::Plan("freshet_nullable takes one argument".into()))?;
        Ok(Arc::new(field.as_ref().clone().with_nullable(true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        args.args
            .into_iter()
            .next()
            .ok_or_else(|| DataFusionError::Internal("freshet_nullable takes one argument".into()))
    }
}
