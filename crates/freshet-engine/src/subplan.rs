//! Correlated subqueries that DataFusion cannot turn into a join, run once
//! per distinct outer value, as PostgreSQL's SubPlan runs them.
//!
//! DataFusion decorrelates a correlated subquery only when its references to
//! the outer query are equalities (`inner.k = outer.k`), and only in a
//! projection, a filter or an aggregate. PostgreSQL runs any of them:
//! `(SELECT count(*) FROM t AS x WHERE x.a < t.a)` is evaluated again for
//! each outer row. Refusing those queries shut out ordinary SQL (running
//! totals, "the previous event", ranks by subquery, `ORDER BY (SELECT …)`).
//!
//! * [`RunUndecorrelatedSubqueries`] (an `AnalyzerRule`, Freshet's last)
//!   finds, in a projection, a filter or a sort, each subquery expression
//!   that DataFusion's optimizer would leave in place (tried on its own, as
//!   [`crate::subquery::decorrelates`] does; in a sort, every one), and
//!   turns it into a scalar subquery ([`run_per_row_as`]): a scalar
//!   subquery as it is; `x op ANY/ALL (S)` and `x [NOT] IN (S)` as one that
//!   gives SQL's three-valued answer from aggregates over `S`; `[NOT]
//!   EXISTS (S)` as a count. It replaces the expression by a column that a
//!   [`SubPlanNode`] under the node computes. A filter or sort gets a
//!   projection above it that drops the column again, so the node's output
//!   is what it was.
//! * [`SubPlanExec`] evaluates the subquery for each input row: the outer
//!   columns it reads (also those read by subqueries nested in it) are
//!   replaced by that row's values as literals, the rule runs again on the
//!   result (for a nested subquery that reads this one), and the plan is
//!   optimized and run in the same session, so in the statement's
//!   transaction and snapshot. Its one value becomes the row's: no row gives
//!   NULL, more than one is PostgreSQL's 21000 (reading stops at the
//!   second). Values are kept per distinct outer value for the statement,
//!   unless the subquery calls a volatile function, which PostgreSQL would
//!   call again for each row.
//!
//! Left to DataFusion (and refused there with 0A000): a subquery inside
//! which a relation has the qualifier of an outer column it reads (a nested
//! reference could not be told apart), comparisons of intervals, arrays or
//! structs in ANY/ALL/IN, and compared expressions holding a subquery or a
//! volatile call.
//!
//! The cost is one small query per distinct outer value: fine for the
//! reports and lookups such subqueries are written for, and correct where
//! the alternative was a refusal. Equality-correlated subqueries still
//! become joins. Queries that only read the system catalogs keep
//! [`crate::subquery::NullCatalogSubqueries`], which answers scalar ones
//! first.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{new_empty_array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{
    Column, DFSchema, DFSchemaRef, DataFusionError, Result as DfResult, ScalarValue,
};
use datafusion::execution::context::{QueryPlanner, SessionState};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::expr::{Exists, InSubquery, SetComparison, SetQuantifier};
use datafusion::logical_expr::{
    Expr, Extension, Filter, LogicalPlan, LogicalPlanBuilder, Operator, Projection, Sort, Subquery,
    UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use futures::TryStreamExt;

use crate::EngineError;

/// Registers the rule. Call it after every other analyzer rule: the
/// subquery it moves into a [`SubPlanNode`] is out of reach of the rules
/// that come after it.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.add_analyzer_rule(Arc::new(RunUndecorrelatedSubqueries));
}

/// The session's query planner: DataFusion's, able to plan a [`SubPlanNode`].
#[derive(Debug, Default)]
pub(crate) struct FreshetQueryPlanner;

#[async_trait]
impl QueryPlanner for FreshetQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn datafusion::catalog::Session,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![
            Arc::new(SubPlanPlanner),
            Arc::new(crate::lateral::LateralPlanner),
        ])
        .create_physical_plan(logical_plan, session)
        .await
    }
}

/// Moves the correlated scalar subqueries DataFusion cannot decorrelate
/// into [`SubPlanNode`]s (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct RunUndecorrelatedSubqueries;

impl AnalyzerRule for RunUndecorrelatedSubqueries {
    fn name(&self) -> &str {
        "freshet_run_undecorrelated_subqueries"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        let plan = uncorrelated_exists_as_scalar(plan)?;
        if !has_correlated_scalar_subquery(&plan) {
            return Ok(plan);
        }
        plan.transform_up_with_subqueries(run_per_row).data()
    }
}

/// `[NOT] EXISTS (S)` that reads nothing of the outer query, anywhere but in
/// a filter (where DataFusion's optimizer makes it a semi join), as the
/// uncorrelated scalar subquery `(SELECT count(*) > 0 FROM (S LIMIT 1))`,
/// which DataFusion runs once. DataFusion leaves such an EXISTS unplanned in
/// a select list, a CASE or an aggregate's FILTER, so `SELECT EXISTS (SELECT
/// 1 FROM t WHERE …)`, the existence check ORMs send, was refused.
fn uncorrelated_exists_as_scalar(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    let uncorrelated = |e: &Expr| matches!(e, Expr::Exists(Exists { subquery, .. }) if subquery.outer_ref_columns.is_empty());
    if !crate::subquery::any_expression(&plan, uncorrelated) {
        return Ok(plan);
    }
    let rewritten = plan.transform_up_with_subqueries(|node| {
        if matches!(node, LogicalPlan::Filter(_)) {
            return Ok(Transformed::no(node));
        }
        crate::plan_rewrite::rewrite_node(node, |e, _| match &e {
            Expr::Exists(Exists { subquery, negated }) if uncorrelated(&e) => {
                let first_row = Subquery {
                    subquery: Arc::new(
                        LogicalPlanBuilder::from(subquery.subquery.as_ref().clone())
                            .limit(0, Some(1))?
                            .build()?,
                    ),
                    outer_ref_columns: Vec::new(),
                    spans: subquery.spans.clone(),
                };
                Ok(Transformed::yes(Expr::ScalarSubquery(exists_as_scalar(
                    &first_row, *negated,
                )?)))
            }
            _ => Ok(Transformed::no(e)),
        })
    })?;
    if rewritten.transformed {
        crate::plan_rewrite::recompute_all(rewritten.data)
    } else {
        Ok(rewritten.data)
    }
}

/// Whether the plan has a subquery expression this rule may move.
fn has_correlated_scalar_subquery(plan: &LogicalPlan) -> bool {
    crate::subquery::any_expression(plan, |e| match e {
        Expr::ScalarSubquery(s) | Expr::Exists(Exists { subquery: s, .. }) => {
            !s.outer_ref_columns.is_empty()
        }
        Expr::SetComparison(_) | Expr::InSubquery(_) => true,
        _ => false,
    })
}

/// Names of the columns [`SubPlanNode`]s add, unique in a plan.
static NEXT_COLUMN: AtomicU64 = AtomicU64::new(0);

fn run_per_row(node: LogicalPlan) -> DfResult<Transformed<LogicalPlan>> {
    let in_sort = matches!(node, LogicalPlan::Sort(_));
    let in_filter = matches!(node, LogicalPlan::Filter(_));
    if !matches!(
        node,
        LogicalPlan::Projection(_) | LogicalPlan::Filter(_) | LogicalPlan::Sort(_)
    ) {
        return Ok(Transformed::no(node));
    }
    let input = match node.inputs().as_slice() {
        [input] => Arc::new((*input).clone()),
        _ => return Ok(Transformed::no(node)),
    };
    // `ORDER BY (SELECT … t.b …)` with `b` not selected: DataFusion sorts
    // the projection, so the subquery runs under it, where `b` still is.
    let (input, under_projection) = match input.as_ref() {
        LogicalPlan::Projection(p) if in_sort => (p.input.clone(), Some(p.clone())),
        _ => (input, None),
    };
    let mut moved: Vec<(Subquery, String)> = Vec::new();
    let mut replace = |e: Expr| -> DfResult<Transformed<Expr>> {
        let Some(subquery) = run_per_row_as(&e, &input, in_filter, in_sort)? else {
            return Ok(Transformed::no(e));
        };
        let name = format!(
            "__freshet_subplan_{}",
            NEXT_COLUMN.fetch_add(1, AtomicOrdering::Relaxed)
        );
        moved.push((subquery, name.clone()));
        Ok(Transformed::yes(Expr::Column(Column::new_unqualified(
            name,
        ))))
    };
    let rewritten = match node {
        LogicalPlan::Projection(_) => {
            crate::plan_rewrite::rewrite_node(node, |e, _| replace(e))?.data
        }
        other => {
            other
                .map_expressions(|e| e.transform_up(&mut replace))?
                .data
        }
    };
    if moved.is_empty() {
        return Ok(Transformed::no(rewritten));
    }
    let mut below = input.as_ref().clone();
    let mut added = Vec::new();
    for (subquery, name) in moved {
        added.push(Expr::Column(Column::new_unqualified(name.clone())));
        below = LogicalPlan::Extension(Extension {
            node: Arc::new(SubPlanNode::try_new(below, subquery, name)?),
        });
    }
    let (below, keep_schema) = match under_projection {
        Some(projection) => {
            let keep_schema = projection.schema.clone();
            let mut exprs = projection.expr.clone();
            exprs.extend(added);
            let projected = Projection::try_new(exprs, Arc::new(below))?;
            (Arc::new(LogicalPlan::Projection(projected)), keep_schema)
        }
        None => (Arc::new(below), input.schema().clone()),
    };
    let keep: Vec<Expr> = keep_schema
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let plan = match rewritten {
        LogicalPlan::Projection(p) => LogicalPlan::Projection(Projection::try_new(p.expr, below)?),
        LogicalPlan::Filter(f) => {
            LogicalPlanBuilder::from(LogicalPlan::Filter(Filter::try_new(f.predicate, below)?))
                .project(keep)?
                .build()?
        }
        LogicalPlan::Sort(s) => LogicalPlanBuilder::from(LogicalPlan::Sort(Sort {
            expr: s.expr,
            input: below,
            fetch: s.fetch,
        }))
        .project(keep)?
        .build()?,
        other => other,
    };
    Ok(Transformed::yes(plan))
}

/// The scalar subquery a [`SubPlanNode`] should run per row for `expr`, a
/// subquery expression of a node over `input` that DataFusion would leave
/// in place; None to leave `expr` to DataFusion.
///
/// * A correlated scalar subquery, as it is.
/// * `x op ANY/ALL (S)`, `x [NOT] IN (S)` (which is `= ANY` / `<> ALL`) as
///   one that gives the three-valued answer ([`quantified_as_scalar`]).
/// * `[NOT] EXISTS (S)` as `(SELECT count(*) > 0 FROM S)` (or `= 0`).
///
/// In a sort DataFusion runs none of them, elsewhere only those its
/// optimizer turns into joins (tried on their own).
fn run_per_row_as(
    expr: &Expr,
    input: &Arc<LogicalPlan>,
    in_filter: bool,
    in_sort: bool,
) -> DfResult<Option<Subquery>> {
    let correlated = match expr {
        Expr::ScalarSubquery(s) => {
            outer_columns(s, input.schema()).is_some_and(|columns| !columns.is_empty())
        }
        // The compared expression reads the outer query even when the
        // subquery does not.
        Expr::SetComparison(_) | Expr::InSubquery(_) => true,
        Expr::Exists(e) => !e.subquery.outer_ref_columns.is_empty(),
        _ => return Ok(None),
    };
    if !correlated {
        return Ok(None);
    }
    if !in_sort {
        let decorrelates = match expr {
            Expr::ScalarSubquery(s) => crate::subquery::decorrelates(s, input),
            other => crate::subquery::expression_decorrelates(other.clone(), input, in_filter),
        };
        if decorrelates {
            return Ok(None);
        }
    }
    let subquery = match expr {
        Expr::ScalarSubquery(s) => Some(s.clone()),
        Expr::SetComparison(c) => quantified_as_scalar(c, input.schema())?,
        Expr::InSubquery(InSubquery {
            expr,
            subquery,
            negated,
        }) => {
            let (op, quantifier) = if *negated {
                (Operator::NotEq, SetQuantifier::All)
            } else {
                (Operator::Eq, SetQuantifier::Any)
            };
            let comparison = SetComparison::new(expr.clone(), subquery.clone(), op, quantifier);
            quantified_as_scalar(&comparison, input.schema())?
        }
        Expr::Exists(Exists { subquery, negated }) => Some(exists_as_scalar(subquery, *negated)?),
        _ => None,
    };
    Ok(subquery.filter(|s| {
        outer_columns(s, input.schema()).is_some() && !shadows_outer_columns(s, input.schema())
    }))
}

/// `(SELECT count(*) > 0 FROM S)`, or `= 0` for NOT EXISTS.
fn exists_as_scalar(subquery: &Subquery, negated: bool) -> DfResult<Subquery> {
    use datafusion::logical_expr::lit;
    let rows = datafusion::functions_aggregate::count::count_all().alias("rows");
    let count = Expr::Column(Column::new_unqualified("rows"));
    let answer = if negated {
        count.eq(lit(0i64))
    } else {
        count.gt(lit(0i64))
    };
    let scalar = LogicalPlanBuilder::from(subquery.subquery.as_ref().clone())
        .aggregate(Vec::<Expr>::new(), vec![rows])?
        .project(vec![answer.alias("exists")])?
        .build()?;
    Ok(Subquery {
        outer_ref_columns: scalar.all_out_ref_exprs(),
        subquery: Arc::new(scalar),
        spans: subquery.spans.clone(),
    })
}

/// Whether a subquery nested in `subquery` sits where a column of the same
/// name as an outer column `subquery` reads is in scope (`… FROM t1 …
/// (SELECT … FROM t1 … (SELECT … t1.a …))`): its reference could then not be
/// told from one to the outer query, so such subqueries are left to
/// DataFusion. Without nested subqueries, every outer reference is to the
/// outer query.
fn shadows_outer_columns(subquery: &Subquery, outer: &DFSchema) -> bool {
    let Some(columns) = outer_columns(subquery, outer) else {
        return true;
    };
    let mut shadowed = false;
    let _ = subquery.subquery.apply_with_subqueries(|node| {
        let mut nests = false;
        let _ = node.apply_expressions(|e| {
            nests |= e
                .exists(|e| {
                    Ok(matches!(
                        e,
                        Expr::ScalarSubquery(_)
                            | Expr::Exists(_)
                            | Expr::InSubquery(_)
                            | Expr::SetComparison(_)
                    ))
                })
                .unwrap_or(true);
            Ok(TreeNodeRecursion::Continue)
        });
        if nests {
            let scope = crate::pg_compat::expression_schema(node);
            shadowed |= columns.iter().any(|(c, _)| scope.has_column(c));
        }
        Ok(if shadowed {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    shadowed
}

/// `x op ANY (S)` or `x op ALL (S)` as one scalar subquery over `S` that
/// gives SQL's three-valued answer: for ANY, true if a comparison is true,
/// else false for no rows, else NULL if a comparison is NULL, else false;
/// ALL is the same with false and true swapped. `x` reads the outer query's
/// columns. None for what this does not cover: a compared expression that
/// holds a subquery or a volatile call, or types whose comparison Freshet's
/// earlier rules change (intervals, arrays, structs).
fn quantified_as_scalar(
    comparison: &SetComparison,
    outer: &DFSchema,
) -> DfResult<Option<Subquery>> {
    use datafusion::common::ExprSchema;
    use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
    use datafusion::logical_expr::{binary_expr, lit, when, ExprSchemable};
    let plan = comparison.subquery.subquery.as_ref();
    if plan.schema().fields().len() != 1 || comparison.expr.is_volatile() {
        return Ok(None);
    }
    let mut covered = true;
    let left = comparison
        .expr
        .as_ref()
        .clone()
        .transform_up(|e| match e {
            Expr::Column(column) => match outer.field_from_column(&column) {
                Ok(field) => Ok(Transformed::yes(Expr::OuterReferenceColumn(
                    field.clone(),
                    column,
                ))),
                Err(_) => {
                    covered = false;
                    Ok(Transformed::no(Expr::Column(column)))
                }
            },
            e @ (Expr::ScalarSubquery(_)
            | Expr::Exists(_)
            | Expr::InSubquery(_)
            | Expr::SetComparison(_)) => {
                covered = false;
                Ok(Transformed::no(e))
            }
            other => Ok(Transformed::no(other)),
        })?
        .data;
    let (qualifier, field) = plan.schema().qualified_field(0);
    let right = Expr::Column(Column::new(qualifier.cloned(), field.name()));
    let left_type = left.get_type(plan.schema())?;
    let right_type = field.data_type().clone();
    let comparable = |t: &DataType| {
        !matches!(
            t,
            DataType::Interval(_)
                | DataType::List(_)
                | DataType::LargeList(_)
                | DataType::FixedSizeList(_, _)
                | DataType::Struct(_)
                | DataType::Map(_, _)
        )
    };
    if !covered || !comparable(&left_type) || !comparable(&right_type) {
        return Ok(None);
    }
    let (left_common, right_common) =
        BinaryTypeCoercer::new(&left_type, &comparison.op, &right_type).get_input_types()?;
    let compared = binary_expr(
        left.cast_to(&left_common, plan.schema())?,
        comparison.op,
        right.cast_to(&right_common, plan.schema())?,
    );
    let bool_or = datafusion::functions_aggregate::bool_and_or::bool_or_udaf();
    let (decisive, answer_if_decided) = match comparison.quantifier {
        SetQuantifier::Any => (compared.clone(), true),
        SetQuantifier::All => (Expr::Not(Box::new(compared.clone())), false),
    };
    let aggregates = vec![
        bool_or.call(vec![decisive]).alias("decided"),
        bool_or.call(vec![compared.is_null()]).alias("unknown"),
        datafusion::functions_aggregate::count::count_all().alias("rows"),
    ];
    let column = |name: &str| Expr::Column(Column::new_unqualified(name));
    let answer = when(column("decided"), lit(answer_if_decided))
        .when(column("rows").eq(lit(0i64)), lit(!answer_if_decided))
        .when(column("unknown"), lit(ScalarValue::Boolean(None)))
        .otherwise(lit(!answer_if_decided))?;
    let scalar = LogicalPlanBuilder::from(plan.clone())
        .aggregate(Vec::<Expr>::new(), aggregates)?
        .project(vec![answer.alias("answer")])?
        .build()?;
    Ok(Some(Subquery {
        outer_ref_columns: scalar.all_out_ref_exprs(),
        subquery: Arc::new(scalar),
        spans: comparison.subquery.spans.clone(),
    }))
}

/// The outer columns `subquery` reads, each with its position in `outer`;
/// None if one is not a column of `outer` (a reference to a query further
/// out, left to DataFusion).
///
/// A subquery nested in this one may read the outer query too (two levels
/// up); those of its outer columns that are in `outer` count, the others
/// are this subquery's own.
pub(crate) fn outer_columns(subquery: &Subquery, outer: &DFSchema) -> Option<Vec<(Column, usize)>> {
    let mut columns: Vec<(Column, usize)> = Vec::new();
    for expr in &subquery.outer_ref_columns {
        let Expr::OuterReferenceColumn(_, column) = expr else {
            return None;
        };
        let at = outer.index_of_column(column).ok()?;
        if !columns.iter().any(|(c, _)| c == column) {
            columns.push((column.clone(), at));
        }
    }
    let _ = subquery.subquery.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::OuterReferenceColumn(_, column) = e {
                    if let Ok(at) = outer.index_of_column(column) {
                        if !columns.iter().any(|(c, _)| c == column) {
                            columns.push((column.clone(), at));
                        }
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    Some(columns)
}

/// Its input's columns and one more: the value of `subquery` for each row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SubPlanNode {
    input: LogicalPlan,
    subquery: Subquery,
    /// The outer columns the subquery reads and their positions in `input`.
    outer: Vec<(Column, usize)>,
    name: String,
    schema: DFSchemaRef,
}

impl SubPlanNode {
    fn try_new(input: LogicalPlan, subquery: Subquery, name: String) -> DfResult<Self> {
        let outer = outer_columns(&subquery, input.schema()).ok_or_else(|| {
            DataFusionError::Internal("a subquery's outer column is not in its input".into())
        })?;
        let value = subquery.subquery.schema().field(0);
        let field = Field::new(&name, value.data_type().clone(), true)
            .with_metadata(value.metadata().clone());
        let added = DFSchema::from_unqualified_fields(vec![field].into(), HashMap::new())?;
        let schema = Arc::new(input.schema().join(&added)?);
        Ok(SubPlanNode {
            input,
            subquery,
            outer,
            name,
            schema,
        })
    }
}

impl PartialOrd for SubPlanNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.name.partial_cmp(&other.name) {
            Some(Ordering::Equal) => self.input.partial_cmp(&other.input),
            ordering => ordering,
        }
    }
}

impl UserDefinedLogicalNodeCore for SubPlanNode {
    fn name(&self) -> &str {
        "SubPlan"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let outer: Vec<String> = self.outer.iter().map(|(c, _)| c.flat_name()).collect();
        write!(
            f,
            "SubPlan: {} = scalar subquery per row of ({})",
            self.name,
            outer.join(", ")
        )
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> DfResult<Self> {
        let input = inputs
            .pop()
            .ok_or_else(|| DataFusionError::Internal("SubPlan takes one input".into()))?;
        SubPlanNode::try_new(input, self.subquery.clone(), self.name.clone())
    }
}

/// `subquery` with its outer references listed again from its plan, after
/// some were replaced by values.
fn recorrelate(subquery: Subquery) -> Subquery {
    Subquery {
        outer_ref_columns: subquery.subquery.all_out_ref_exprs(),
        ..subquery
    }
}

/// Plans a [`SubPlanNode`] as a [`SubPlanExec`].
struct SubPlanPlanner;

#[async_trait]
impl ExtensionPlanner for SubPlanPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn datafusion::catalog::Session,
        _planning_ctx: &datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<SubPlanNode>() else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return Err(DataFusionError::Internal("SubPlan takes one input".into()));
        };
        let Some(state) = session.as_any().downcast_ref::<SessionState>() else {
            return Err(DataFusionError::Internal(
                "a SubPlan is planned in a SessionState".into(),
            ));
        };
        Ok(Some(Arc::new(SubPlanExec::new(
            node,
            input.clone(),
            Arc::new(state.clone()),
        ))))
    }
}

/// Runs the subquery of a [`SubPlanNode`] for the rows of its input.
pub(crate) struct SubPlanExec {
    input: Arc<dyn ExecutionPlan>,
    subplan: Arc<SubPlan>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

/// What evaluating the subquery for a row needs.
struct SubPlan {
    subquery: LogicalPlan,
    outer: Vec<(Column, usize)>,
    field: FieldRef,
    state: Arc<SessionState>,
    /// Cached values by outer values, when the subquery is not volatile.
    cache: Option<Mutex<HashMap<Vec<ScalarValue>, ScalarValue>>>,
}

impl SubPlanExec {
    fn new(node: &SubPlanNode, input: Arc<dyn ExecutionPlan>, state: Arc<SessionState>) -> Self {
        let field = Arc::new(
            node.schema
                .field(node.schema.fields().len() - 1)
                .as_ref()
                .clone(),
        );
        let mut fields: Vec<FieldRef> = input.schema().fields().iter().cloned().collect();
        fields.push(field.clone());
        let schema = Arc::new(Schema::new_with_metadata(
            fields,
            input.schema().metadata().clone(),
        ));
        let properties = plan_properties(&input, &schema);
        let mut volatile = false;
        let _ = node.subquery.subquery.apply_with_subqueries(|p| {
            p.apply_expressions(|e| {
                volatile |= e.is_volatile();
                Ok(TreeNodeRecursion::Continue)
            })
        });
        SubPlanExec {
            input,
            subplan: Arc::new(SubPlan {
                subquery: node.subquery.subquery.as_ref().clone(),
                outer: node.outer.clone(),
                field,
                state,
                cache: (!volatile).then(Default::default),
            }),
            schema,
            properties,
        }
    }
}

/// The input's partitioning and order: the node adds a last column and
/// keeps the rows where and as they were.
pub(crate) fn plan_properties(
    input: &Arc<dyn ExecutionPlan>,
    schema: &SchemaRef,
) -> Arc<PlanProperties> {
    let mut equivalences = EquivalenceProperties::new(schema.clone());
    if let Some(ordering) = input.properties().output_ordering() {
        equivalences.add_ordering(ordering.iter().cloned());
    }
    Arc::new(PlanProperties::new(
        equivalences,
        input.properties().output_partitioning().clone(),
        EmissionType::Incremental,
        Boundedness::Bounded,
    ))
}

impl fmt::Debug for SubPlanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubPlanExec")
            .field("column", self.subplan.field.name())
            .finish()
    }
}

impl DisplayAs for SubPlanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let outer: Vec<String> = self
            .subplan
            .outer
            .iter()
            .map(|(c, _)| c.flat_name())
            .collect();
        write!(
            f,
            "SubPlanExec: {} = scalar subquery per row of ({})",
            self.subplan.field.name(),
            outer.join(", ")
        )
    }
}

impl ExecutionPlan for SubPlanExec {
    fn name(&self) -> &str {
        "SubPlanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match children.pop() {
            Some(input) if children.is_empty() => {
                let properties = plan_properties(&input, &self.schema);
                Ok(Arc::new(SubPlanExec {
                    input,
                    subplan: self.subplan.clone(),
                    schema: self.schema.clone(),
                    properties,
                }))
            }
            _ => Err(DataFusionError::Internal(
                "SubPlanExec takes one input".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context.clone())?;
        let subplan = self.subplan.clone();
        let schema = self.schema.clone();
        let batches = input.and_then(move |batch| {
            let subplan = subplan.clone();
            let schema = schema.clone();
            let context = context.clone();
            async move {
                let column = subplan.column_for(&batch, &context).await?;
                let mut columns = batch.columns().to_vec();
                columns.push(column);
                Ok(RecordBatch::try_new(schema, columns)?)
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            batches,
        )))
    }
}

impl SubPlan {
    /// The subquery's value for each row of `batch`.
    async fn column_for(
        &self,
        batch: &RecordBatch,
        context: &Arc<TaskContext>,
    ) -> DfResult<datafusion::arrow::array::ArrayRef> {
        if batch.num_rows() == 0 {
            return Ok(new_empty_array(self.field.data_type()));
        }
        let mut values = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let key = self
                .outer
                .iter()
                .map(|(_, at)| ScalarValue::try_from_array(batch.column(*at), row))
                .collect::<DfResult<Vec<_>>>()?;
            let cached = self
                .cache
                .as_ref()
                .and_then(|c| c.lock().ok().and_then(|c| c.get(&key).cloned()));
            let value = match cached {
                Some(value) => value,
                None => {
                    let value = self.evaluate(&key, context).await?;
                    if let Some(cache) = &self.cache {
                        if let Ok(mut cache) = cache.lock() {
                            cache.insert(key, value.clone());
                        }
                    }
                    value
                }
            };
            values.push(value);
        }
        ScalarValue::iter_to_array(values)
    }

    /// The subquery run with `key` for its outer columns: its one value,
    /// NULL for no row, 21000 for more than one.
    async fn evaluate(
        &self,
        key: &[ScalarValue],
        context: &Arc<TaskContext>,
    ) -> DfResult<ScalarValue> {
        let plan = with_outer_values(self.subquery.clone(), &self.outer, key)?;
        let mut batches = run_plan(plan, &self.state, context).await?;
        // Read no further than a second row, which is an error anyway.
        let mut found = None;
        while let Some(batch) = batches.try_next().await? {
            if batch.num_rows() == 0 {
                continue;
            }
            if found.is_some() || batch.num_rows() > 1 {
                return Err(DataFusionError::External(Box::new(EngineError::new(
                    "21000",
                    crate::subquery::MORE_THAN_ONE_ROW,
                ))));
            }
            found = Some(ScalarValue::try_from_array(batch.column(0), 0)?);
        }
        match found {
            Some(value) => Ok(value),
            None => ScalarValue::try_from(self.field.data_type()),
        }
    }
}

/// `plan` with every reference to one of the `outer` columns replaced by
/// that column's value in `key` (`key[i]` for `outer[i]`), and the
/// subqueries nested in it told which outer columns they still read.
pub(crate) fn with_outer_values(
    plan: LogicalPlan,
    outer: &[(Column, usize)],
    key: &[ScalarValue],
) -> DfResult<LogicalPlan> {
    crate::plan_rewrite::rewrite_plan(plan, |e, _| match e {
        Expr::OuterReferenceColumn(field, column) => {
            match outer.iter().position(|(c, _)| *c == column) {
                Some(i) => {
                    let value = key
                        .get(i)
                        .ok_or_else(|| {
                            DataFusionError::Internal("an outer column has no value".into())
                        })?
                        .cast_to(field.data_type())?;
                    Ok(Transformed::yes(Expr::Literal(value, None)))
                }
                None => Ok(Transformed::no(Expr::OuterReferenceColumn(field, column))),
            }
        }
        // A subquery inside this one that read only our outer columns
        // is no longer correlated.
        Expr::ScalarSubquery(s) => Ok(Transformed::yes(Expr::ScalarSubquery(recorrelate(s)))),
        Expr::Exists(Exists { subquery, negated }) => Ok(Transformed::yes(Expr::Exists(Exists {
            subquery: recorrelate(subquery),
            negated,
        }))),
        Expr::InSubquery(InSubquery {
            expr,
            subquery,
            negated,
        }) => Ok(Transformed::yes(Expr::InSubquery(InSubquery {
            expr,
            subquery: recorrelate(subquery),
            negated,
        }))),
        Expr::SetComparison(mut c) => {
            c.subquery = recorrelate(c.subquery);
            Ok(Transformed::yes(Expr::SetComparison(c)))
        }
        other => Ok(Transformed::no(other)),
    })
}

/// Runs `plan`, a subquery whose outer references were replaced by values,
/// in the statement's session (so in its transaction and snapshot).
pub(crate) async fn run_plan(
    plan: LogicalPlan,
    state: &SessionState,
    context: &Arc<TaskContext>,
) -> DfResult<SendableRecordBatchStream> {
    // A subquery or LATERAL join inside this one that reads this one's
    // rows by more than equality runs per row in turn.
    let plan = crate::lateral::RunLateralPerRow.analyze(plan, state.config_options())?;
    let plan = RunUndecorrelatedSubqueries.analyze(plan, state.config_options())?;
    let optimized = state.optimizer().optimize(plan, state, |_, _| {})?;
    let physical = state
        .query_planner()
        .create_physical_plan(&optimized, state)
        .await?;
    datafusion::physical_plan::execute_stream(physical, context.clone())
}
