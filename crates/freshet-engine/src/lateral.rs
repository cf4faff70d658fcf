//! `LATERAL` subqueries that DataFusion cannot turn into a join, run once
//! per row of the tables before them, as PostgreSQL runs them.
//!
//! DataFusion decorrelates a `LATERAL` subquery when it reads the tables
//! before it through equalities in its `WHERE`, with or without an
//! aggregate. PostgreSQL runs any of them, and the common ones are not of
//! that kind: the latest rows per key (`… WHERE o.user_id = u.id ORDER BY
//! o.ts DESC LIMIT 3`), a computation on the row (`LATERAL (SELECT a.x * 2
//! AS y)`), a range (`WHERE b.t <= a.t`). They were refused.
//!
//! [`RunLateralPerRow`] (an `AnalyzerRule`, run just before the per-row
//! subqueries of [`crate::subplan`]) finds an inner or left join whose right
//! side is a `LATERAL` subquery that DataFusion's own rule
//! (`DecorrelateLateralJoin`) leaves correlated, tried on that join alone.
//! It replaces the join by a [`LateralNode`] over the left side. The join's
//! condition moves into the subquery, as a filter over its rows, with the
//! left side's columns in it read as outer references: a left row then
//! keeps the subquery rows that meet the condition, which is what both
//! join types keep, and a `LEFT JOIN` adds the row with NULLs when none do.
//!
//! [`LateralExec`] runs the subquery for each row of its input, its outer
//! references replaced by that row's values (as [`crate::subplan`] does for
//! a scalar subquery, in the statement's session, so in its transaction
//! and snapshot), and emits the row joined with each row it returns. The
//! cost is one query per left row: fine for the lookups `LATERAL` is written
//! for, and correct where the alternative was a refusal. Results are not
//! kept between rows, so a volatile function is called again for each row,
//! as in PostgreSQL.
//!
//! Left to DataFusion (and refused there with 0A000): a subquery that reads
//! columns of a query further out than its own join's left side, and
//! `LATERAL` table functions (`LATERAL unnest(a.arr)`).

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{new_null_array, ArrayRef, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, concat_batches, take};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, DFSchemaRef, DataFusionError, Result as DfResult};
use datafusion::common::{ExprSchema, ScalarValue};
use datafusion::execution::context::SessionState;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{
    Expr, Extension, Filter, Join, JoinType, LogicalPlan, Projection, Subquery, SubqueryAlias,
    UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::optimizer::decorrelate_lateral_join::DecorrelateLateralJoin;
use datafusion::optimizer::{AnalyzerRule, OptimizerContext, OptimizerRule};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use futures::TryStreamExt;

use crate::EngineError;

/// Registers the rule. Call it just before [`crate::subplan::register`].
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.add_analyzer_rule(Arc::new(RunLateralPerRow));
}

/// Which rows a [`LateralNode`] keeps for a left row whose subquery returns
/// none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
enum LateralJoin {
    /// `[CROSS | INNER] JOIN LATERAL` and `, LATERAL`: none.
    Inner,
    /// `LEFT JOIN LATERAL`: the left row, with NULLs for the subquery's
    /// columns.
    Left,
}

/// Replaces the `LATERAL` joins DataFusion leaves correlated by
/// [`LateralNode`]s (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct RunLateralPerRow;

impl AnalyzerRule for RunLateralPerRow {
    fn name(&self) -> &str {
        "freshet_run_lateral_per_row"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(per_row).data()
    }
}

fn per_row(node: LogicalPlan) -> DfResult<Transformed<LogicalPlan>> {
    let join = match node {
        LogicalPlan::Join(join) if lateral_subquery(&join.right).is_some() => join,
        other => return Ok(Transformed::no(other)),
    };
    let kind = match join.join_type {
        JoinType::Inner => LateralJoin::Inner,
        JoinType::Left => LateralJoin::Left,
        _ => return Ok(Transformed::no(LogicalPlan::Join(join))),
    };
    if datafusion_decorrelates(&join) {
        return Ok(Transformed::no(LogicalPlan::Join(join)));
    }
    match LateralNode::try_new(&join, kind)? {
        Some(node) => Ok(Transformed::yes(LogicalPlan::Extension(Extension {
            node: Arc::new(node),
        }))),
        None => Ok(Transformed::no(LogicalPlan::Join(join))),
    }
}

/// The subquery (and its alias) of a join's right side that is a `LATERAL`
/// subquery reading the tables before it.
fn lateral_subquery(right: &LogicalPlan) -> Option<(&Subquery, Option<&SubqueryAlias>)> {
    let (plan, alias) = match right {
        LogicalPlan::SubqueryAlias(alias) => (alias.input.as_ref(), Some(alias)),
        other => (other, None),
    };
    match plan {
        LogicalPlan::Subquery(subquery) if has_outer_reference(&subquery.subquery) => {
            Some((subquery, alias))
        }
        _ => None,
    }
}

/// Whether `plan`, or a subquery in it, reads a column of a query outside.
fn has_outer_reference(plan: &LogicalPlan) -> bool {
    plan.apply_with_subqueries(|node| {
        Ok(if node.contains_outer_reference() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })
    .map(|r| r == TreeNodeRecursion::Stop)
    .unwrap_or(true)
}

/// Whether DataFusion's optimizer rule turns `join` into a join without
/// outer references, tried on that join alone.
fn datafusion_decorrelates(join: &Join) -> bool {
    let rule = DecorrelateLateralJoin::new();
    match rule.rewrite(LogicalPlan::Join(join.clone()), &OptimizerContext::new()) {
        Ok(rewritten) if rewritten.transformed => !has_outer_reference(&rewritten.data),
        _ => false,
    }
}

/// A `LATERAL` join run per left row: its input's columns, then the
/// subquery's, for each row the subquery returns for the input row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct LateralNode {
    input: LogicalPlan,
    /// The subquery under its alias, the join's condition applied to its
    /// rows, reading the input's columns as outer references.
    subquery: LogicalPlan,
    /// The input's columns the subquery reads and their positions.
    outer: Vec<(Column, usize)>,
    kind: LateralJoin,
    schema: DFSchemaRef,
}

impl LateralNode {
    /// The node that runs `join` per row; None when its subquery reads a
    /// column of a query further out.
    fn try_new(join: &Join, kind: LateralJoin) -> DfResult<Option<Self>> {
        let Some((subquery, alias)) = lateral_subquery(&join.right) else {
            return Ok(None);
        };
        let mut right = subquery.subquery.as_ref().clone();
        if let Some(alias) = alias {
            right = LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(
                Arc::new(right),
                alias.alias.clone(),
            )?);
        }
        let left = join.left.schema();
        let mut conditions: Vec<Expr> = join
            .on
            .iter()
            .map(|(l, r)| l.clone().eq(r.clone()))
            .collect();
        conditions.extend(join.filter.clone());
        if let Some(condition) = conditions.into_iter().reduce(Expr::and) {
            let condition = as_outer_references(condition, left, right.schema())?;
            right = LogicalPlan::Filter(Filter::try_new(condition, Arc::new(right))?);
        }
        let correlated = Subquery {
            outer_ref_columns: right.all_out_ref_exprs(),
            subquery: Arc::new(right),
            spans: subquery.spans.clone(),
        };
        let Some(outer) = crate::subplan::outer_columns(&correlated, left) else {
            return Ok(None);
        };
        Ok(Some(LateralNode {
            input: join.left.as_ref().clone(),
            subquery: correlated.subquery.as_ref().clone(),
            outer,
            kind,
            schema: join.schema.clone(),
        }))
    }
}

/// `condition`, a join condition over `left` and `right`, with `left`'s
/// columns as outer references, to be evaluated inside the subquery.
fn as_outer_references(condition: Expr, left: &DFSchema, right: &DFSchema) -> DfResult<Expr> {
    condition
        .transform_up(|e| match e {
            Expr::Column(column) if !right.has_column(&column) => {
                let field = left.field_from_column(&column)?.clone();
                Ok(Transformed::yes(Expr::OuterReferenceColumn(field, column)))
            }
            Expr::Column(column) if left.has_column(&column) && column.relation.is_none() => {
                Err(EngineError::new(
                    "42702",
                    format!("column reference \"{}\" is ambiguous", column.name),
                )
                .into())
            }
            other => Ok(Transformed::no(other)),
        })
        .data()
}

impl PartialOrd for LateralNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.kind.partial_cmp(&other.kind) {
            Some(Ordering::Equal) => self.input.partial_cmp(&other.input),
            ordering => ordering,
        }
    }
}

impl UserDefinedLogicalNodeCore for LateralNode {
    fn name(&self) -> &str {
        "Lateral"
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
            "Lateral: {:?} join, subquery per row of ({})",
            self.kind,
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
            .ok_or_else(|| DataFusionError::Internal("Lateral takes one input".into()))?;
        // An optimizer rule can hand the input back with more columns
        // (DataFusion's decorrelation of a LATERAL join before this one
        // adds its own): the node reads the columns it was planned with,
        // by name, at their positions.
        let planned = self.input.schema();
        let input = if input.schema().columns() == planned.columns() {
            input
        } else {
            let columns = planned.columns().into_iter().map(Expr::Column).collect();
            LogicalPlan::Projection(Projection::try_new(columns, Arc::new(input))?)
        };
        let outer = self
            .outer
            .iter()
            .map(|(column, _)| Ok((column.clone(), input.schema().index_of_column(column)?)))
            .collect::<DfResult<Vec<_>>>()?;
        Ok(LateralNode {
            input,
            subquery: self.subquery.clone(),
            outer,
            kind: self.kind,
            schema: self.schema.clone(),
        })
    }

    /// Every input column: the subquery may read any of them, and the
    /// node's output holds them all.
    fn necessary_children_exprs(&self, _output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        None
    }
}

/// Plans a [`LateralNode`] as a [`LateralExec`].
pub(crate) struct LateralPlanner;

#[async_trait]
impl ExtensionPlanner for LateralPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn datafusion::catalog::Session,
        _planning_ctx: &datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<LateralNode>() else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return Err(DataFusionError::Internal("Lateral takes one input".into()));
        };
        let Some(state) = session.as_any().downcast_ref::<SessionState>() else {
            return Err(DataFusionError::Internal(
                "a Lateral is planned in a SessionState".into(),
            ));
        };
        let schema: SchemaRef = Arc::new(node.schema.as_arrow().clone());
        let left_width = input.schema().fields().len();
        let right_fields = schema.fields().iter().skip(left_width).cloned();
        let right_schema = Arc::new(Schema::new(right_fields.collect::<Vec<_>>()));
        let properties = crate::subplan::plan_properties(input, &schema);
        Ok(Some(Arc::new(LateralExec {
            input: input.clone(),
            lateral: Arc::new(Lateral {
                subquery: node.subquery.clone(),
                outer: node.outer.clone(),
                kind: node.kind,
                state: Arc::new(state.clone()),
                schema: schema.clone(),
                right_schema,
            }),
            schema,
            properties,
        })))
    }
}

/// Runs the subquery of a [`LateralNode`] for the rows of its input.
pub(crate) struct LateralExec {
    input: Arc<dyn ExecutionPlan>,
    lateral: Arc<Lateral>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

/// What running the subquery for a row needs.
struct Lateral {
    subquery: LogicalPlan,
    outer: Vec<(Column, usize)>,
    kind: LateralJoin,
    state: Arc<SessionState>,
    /// The node's output: the input's columns, then the subquery's.
    schema: SchemaRef,
    /// The subquery's columns, as the output has them.
    right_schema: SchemaRef,
}

impl fmt::Debug for LateralExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LateralExec")
            .field("kind", &self.lateral.kind)
            .finish()
    }
}

impl DisplayAs for LateralExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let outer: Vec<String> = self
            .lateral
            .outer
            .iter()
            .map(|(c, _)| c.flat_name())
            .collect();
        write!(
            f,
            "LateralExec: {:?} join, subquery per row of ({})",
            self.lateral.kind,
            outer.join(", ")
        )
    }
}

impl ExecutionPlan for LateralExec {
    fn name(&self) -> &str {
        "LateralExec"
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
                let properties = crate::subplan::plan_properties(&input, &self.schema);
                Ok(Arc::new(LateralExec {
                    input,
                    lateral: self.lateral.clone(),
                    schema: self.schema.clone(),
                    properties,
                }))
            }
            _ => Err(DataFusionError::Internal(
                "LateralExec takes one input".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context.clone())?;
        let lateral = self.lateral.clone();
        let batches = input.and_then(move |batch| {
            let lateral = lateral.clone();
            let context = context.clone();
            async move { lateral.join(&batch, &context).await }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            batches,
        )))
    }
}

impl Lateral {
    /// Each row of `batch` joined with the rows its subquery returns.
    async fn join(&self, batch: &RecordBatch, context: &Arc<TaskContext>) -> DfResult<RecordBatch> {
        let right_schema = &self.right_schema;
        let mut left_rows: Vec<u32> = Vec::new();
        let mut right_batches: Vec<RecordBatch> = Vec::new();
        for row in 0..batch.num_rows() {
            let key = self
                .outer
                .iter()
                .map(|(_, at)| ScalarValue::try_from_array(batch.column(*at), row))
                .collect::<DfResult<Vec<_>>>()?;
            let plan = crate::subplan::with_outer_values(self.subquery.clone(), &self.outer, &key)?;
            let mut rows = crate::subplan::run_plan(plan, &self.state, context).await?;
            let mut matched = 0usize;
            while let Some(found) = rows.try_next().await? {
                if found.num_rows() == 0 {
                    continue;
                }
                matched += found.num_rows();
                right_batches.push(conform(&found, right_schema)?);
            }
            if matched == 0 && self.kind == LateralJoin::Left {
                let nulls = right_schema
                    .fields()
                    .iter()
                    .map(|f| new_null_array(f.data_type(), 1))
                    .collect();
                right_batches.push(RecordBatch::try_new(right_schema.clone(), nulls)?);
                matched = 1;
            }
            let row = u32::try_from(row)
                .map_err(|_| DataFusionError::Execution("a batch beyond u32 rows".into()))?;
            left_rows.extend(std::iter::repeat_n(row, matched));
        }
        let indices = UInt32Array::from(left_rows);
        let mut columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &indices, None))
            .collect::<Result<_, _>>()?;
        let right = concat_batches(right_schema, &right_batches)?;
        columns.extend(right.columns().iter().cloned());
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// `batch`, a batch of the subquery's rows, with the columns the node's
/// schema gives them (the plan was optimized again with values in place of
/// outer references, which can change a column's nullability or metadata).
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> DfResult<RecordBatch> {
    if batch.num_columns() != schema.fields().len() {
        return Err(DataFusionError::Internal(format!(
            "a LATERAL subquery returned {} columns where {} were planned",
            batch.num_columns(),
            schema.fields().len()
        )));
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(column.clone())
            } else {
                cast(column, field.data_type())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
