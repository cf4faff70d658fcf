//! Incremental GROUP BY with per-group state: a refresh costs what changed,
//! not what the source holds.
//!
//! A dynamic table whose query groups a map-only input (see
//! `dynamic::Strategy`) and aggregates it only with `count`, `sum` (of
//! integers or numerics), `avg` (of integers and numerics, an exact
//! numeric: see [`crate::exact_avg`]), and `min` and `max` (of
//! integers, numerics, text, dates and timestamps), and `count(DISTINCT x)`
//! (of the types in `value_counts::supported`), none with FILTER or ORDER
//! BY, keeps for every group the partial aggregates it needs in a hidden
//! storage table beside its contents (the *state*): the group's values, its
//! row count, and per aggregate `count(x)` or `count(DISTINCT x)`; `sum(x)`
//! with `count(x)` (for `sum` and `avg`); or the current `min(x)` or
//! `max(x)`. Each `count(DISTINCT x)` also keeps per-group value counts in a
//! table of its own ([`crate::value_counts`]), which alone change it.
//!
//! A refresh then maps the change set to the groups' new values:
//!
//! * `Δ⁺` and `Δ⁻` are the same partial aggregates over the inserted rows
//!   and over the old contents of the deleted rows (a change feed gives both);
//! * for every group they touch, counts and sums are `old + Δ⁺ − Δ⁻`, term by
//!   term, with checked arithmetic (overflow is 22003, as in the full
//!   computation); a minimum is the least of the old one and `Δ⁺`'s, and
//!   likewise for a maximum;
//! * a deletion can take away a group's minimum or maximum, and the state
//!   does not know the next one: when `Δ⁻`'s minimum is not above the
//!   group's (after `Δ⁺`), that group is *rescanned*, its state and rows
//!   recomputed from the source for that group alone (as pg_ivm does). The
//!   refresh history's `numSourceRowsRead` counts those reads;
//! * a group whose row count reaches 0 is gone; `sum(x)` and `avg(x)` are
//!   NULL when `count(x)` is 0, as SQL's are over no values;
//! * the touched groups' rows in the contents are replaced: the final values
//!   go through the query's own HAVING and select list, so the rows equal what
//!   the query computes for those groups.
//!
//! The state is written in the refresh's transaction, with the contents:
//! both commit, are checkpointed and recover together. A FULL refresh
//! (first one, REINITIALIZE, a replaced source) rebuilds the state from the
//! whole source. Groups are told apart by their values, not by hash.
//!
//! Cost: the change set, plus one read of the state table (one row per
//! group) to find the touched groups' old values, plus the rescanned groups.
//! Other aggregates (`sum(DISTINCT)`, `count(DISTINCT)` of floats, `avg` of
//! floats, `min` and `max` of floats) keep the recompute-the-touched-groups
//! strategy.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{Column, DataFusionError, Result as DfResult, ScalarValue};
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{Aggregate, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder};

use freshet_storage::{RowId, TableId};

use crate::planning::{map_arrow_error, map_df_error};
use crate::session::Session;
use crate::EngineError;

/// Name of the state column holding each group's row count.
const ROWS: &str = "rows";
/// Name of the state column holding each group's key hash (the contents'
/// lineage), last.
const HASH: &str = "hash";

/// What one aggregate of the query keeps in the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// `count(x)` (or `count(*)`): the count.
    Count,
    /// `sum(x)`: the sum and `count(x)`.
    Sum,
    /// `avg(x)` of integers: the sum and `count(x)`; a double, as
    /// DataFusion's `avg` of integers is.
    Avg,
    /// `min(x)`: the current minimum.
    Min,
    /// `max(x)`: the current maximum.
    Max,
    /// `count(DISTINCT x)`: the count, kept with per-group value counts
    /// (see [`crate::value_counts`]).
    CountDistinct,
}

/// How one state column combines with a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Merge {
    /// Added for inserted rows, subtracted for deleted ones.
    Add,
    /// The least value; a deleted value not above it needs a rescan.
    Least,
    /// The greatest value; a deleted value not below it needs a rescan.
    Greatest,
    /// A distinct count: changed only by the value counts' transitions,
    /// never by adding the change set's own distinct counts.
    Distinct,
}

impl Part {
    /// The part's state columns' merge rules, in column order.
    fn merges(self) -> &'static [Merge] {
        match self {
            Part::Count => &[Merge::Add],
            Part::Sum | Part::Avg => &[Merge::Add, Merge::Add],
            Part::Min => &[Merge::Least],
            Part::Max => &[Merge::Greatest],
            Part::CountDistinct => &[Merge::Distinct],
        }
    }
}

/// The changes `apply` made to a GROUP BY's state.
pub(crate) struct Applied {
    /// Key hashes of every group the change touched (their contents rows
    /// are replaced).
    pub(crate) touched: HashSet<u64>,
    /// The aggregate's output rows for the touched groups that remain and
    /// were not rescanned (in the aggregate node's schema, unnamed).
    pub(crate) output: Option<RecordBatch>,
    /// Key hashes of the groups whose minimum or maximum a deletion took
    /// away: their state and rows must be recomputed from the source.
    pub(crate) rescan: HashSet<u64>,
}

/// A GROUP BY maintained from per-group state (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct DeltaAggregate {
    aggregate: Aggregate,
    parts: Vec<Part>,
}

impl DeltaAggregate {
    /// The state-maintained form of `node` (the query's GROUP BY), or `None`
    /// when an aggregate is not one this module keeps state for.
    pub(crate) fn of(node: &LogicalPlan) -> Option<DeltaAggregate> {
        let LogicalPlan::Aggregate(aggregate) = node else {
            return None;
        };
        if aggregate.group_expr.is_empty() {
            // A global aggregate has a row even over no input.
            return None;
        }
        let input_schema = aggregate.input.schema();
        let mut parts = Vec::with_capacity(aggregate.aggr_expr.len());
        for expr in &aggregate.aggr_expr {
            let Expr::AggregateFunction(AggregateFunction { func, params }) = expr else {
                return None;
            };
            if params.filter.is_some() || !params.order_by.is_empty() || params.args.len() != 1 {
                return None;
            }
            let argument = params.args[0].get_type(input_schema).ok()?;
            if params.distinct {
                if func.name() != "count" || !crate::value_counts::supported(&argument) {
                    return None;
                }
                parts.push(Part::CountDistinct);
                continue;
            }
            let integer = matches!(
                argument,
                DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
            );
            let exact = integer || matches!(argument, DataType::Decimal128(_, _));
            // Orderable without NaN's question (floats are left out).
            let ordered = exact
                || matches!(
                    argument,
                    DataType::Utf8
                        | DataType::LargeUtf8
                        | DataType::Utf8View
                        | DataType::Date32
                        | DataType::Timestamp(_, _)
                );
            let output = expr.get_type(input_schema).ok()?;
            let part = match func.name() {
                "count" => Part::Count,
                "sum" if exact => Part::Sum,
                "avg"
                    if exact
                        && crate::exact_avg::result_type(&argument) == Some(output.clone()) =>
                {
                    Part::Avg
                }
                "min" if ordered && output == argument => Part::Min,
                "max" if ordered && output == argument => Part::Max,
                _ => return None,
            };
            parts.push(part);
        }
        Some(DeltaAggregate {
            aggregate: aggregate.clone(),
            parts,
        })
    }

    pub(crate) fn group_count(&self) -> usize {
        self.aggregate.group_expr.len()
    }

    /// The GROUP BY expressions, over the aggregate's input.
    pub(crate) fn group_exprs(&self) -> &[Expr] {
        &self.aggregate.group_expr
    }

    /// The value counts of each `count(DISTINCT x)`, in the aggregates'
    /// order: one value-count table each.
    pub(crate) fn value_counts(&self) -> Vec<crate::value_counts::ValueCounts> {
        self.aggregate
            .aggr_expr
            .iter()
            .zip(&self.parts)
            .filter(|(_, part)| **part == Part::CountDistinct)
            .filter_map(|(expr, _)| match expr {
                Expr::AggregateFunction(f) => Some(crate::value_counts::ValueCounts::new(
                    self.aggregate.group_expr.clone(),
                    f.params.args[0].clone(),
                )),
                _ => None,
            })
            .collect()
    }

    /// The merge rule of each state value column (after the group values,
    /// before the key hash): the row count first, then the parts'.
    fn merges(&self) -> Vec<Merge> {
        std::iter::once(Merge::Add)
            .chain(self.parts.iter().flat_map(|p| p.merges().iter().copied()))
            .collect()
    }

    /// The partial aggregates per group over `input` (the aggregate's input,
    /// its scans possibly replaced): group values `g0…`, `rows`, per
    /// aggregate `c{i}`, `s{i}, n{i}` or `m{i}`, and the key hash last.
    pub(crate) fn state_plan(&self, input: LogicalPlan) -> DfResult<LogicalPlan> {
        let one = Expr::Literal(ScalarValue::Int64(Some(1)), None);
        let mut aggregates = vec![count(one).alias(ROWS)];
        let mut names = vec![ROWS.to_string()];
        for (i, (expr, part)) in self.aggregate.aggr_expr.iter().zip(&self.parts).enumerate() {
            match part {
                Part::Count | Part::CountDistinct => {
                    aggregates.push(expr.clone().alias(format!("c{i}")));
                    names.push(format!("c{i}"));
                }
                Part::Sum | Part::Avg => {
                    let Expr::AggregateFunction(f) = expr else {
                        return Err(DataFusionError::Internal("not an aggregate".into()));
                    };
                    let argument = f.params.args[0].clone();
                    aggregates.push(sum(argument.clone()).alias(format!("s{i}")));
                    aggregates.push(count(argument).alias(format!("n{i}")));
                    names.push(format!("s{i}"));
                    names.push(format!("n{i}"));
                }
                Part::Min | Part::Max => {
                    aggregates.push(expr.clone().alias(format!("m{i}")));
                    names.push(format!("m{i}"));
                }
            }
        }
        let grouped = LogicalPlanBuilder::from(input)
            .aggregate(self.aggregate.group_expr.clone(), aggregates)?
            .build()?;
        let groups: Vec<Expr> = grouped
            .schema()
            .columns()
            .into_iter()
            .take(self.group_count())
            .map(Expr::Column)
            .collect();
        let mut exprs: Vec<Expr> = groups
            .iter()
            .enumerate()
            .map(|(j, g)| g.clone().alias(format!("g{j}")))
            .collect();
        exprs.extend(
            names
                .iter()
                .map(|n| Expr::Column(Column::new_unqualified(n.clone()))),
        );
        exprs.push(crate::dynamic::key_hash_expr(groups).alias(HASH));
        LogicalPlanBuilder::from(grouped).project(exprs)?.build()
    }

    /// The state table's schema for `state_plan`'s output: the schema of
    /// the plan as analyzed, since execution analyzes it, and Freshet's
    /// analyzer rules may change a type (`numeric / numeric` is a
    /// `numeric(38,20)`, where DataFusion's plan says `numeric(p,s+4)`).
    /// Falls back to the plan as built if analysis fails; execution then
    /// reports the error.
    pub(crate) fn state_schema(
        state: &datafusion::execution::SessionState,
        plan: &LogicalPlan,
    ) -> SchemaRef {
        let analyzed =
            state
                .analyzer()
                .execute_and_check(plan.clone(), state.config_options(), |_, _| {});
        let plan = analyzed.as_ref().unwrap_or(plan);
        Arc::new(Schema::new(
            plan.schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<Field>>(),
        ))
    }

    /// Applies `Δ⁺ = inserted` and `Δ⁻ = deleted` (partial-aggregate rows
    /// from [`state_plan`](Self::state_plan)) to the state in `state_table`.
    /// `distinct` holds, per `count(DISTINCT)` in order, how each group's
    /// distinct count changes (from [`crate::value_counts::ValueCounts::apply`]).
    /// Writes the new state of the touched groups that are not to be
    /// rescanned into the session's transaction (the rescanned groups' old
    /// state is deleted: the caller writes their recomputed state).
    pub(crate) fn apply(
        &self,
        session: &Session,
        state_table: TableId,
        state_schema: &SchemaRef,
        inserted: &[RecordBatch],
        deleted: &[RecordBatch],
        distinct: &[HashMap<Vec<ScalarValue>, i64>],
    ) -> Result<Applied, EngineError> {
        let groups = self.group_count();
        let width = state_schema.fields().len();
        let merges = self.merges();
        let values = merges.len();
        if width != groups + values + 1 {
            return Err(EngineError::new(
                "XX001",
                "aggregate state has the wrong shape",
            ));
        }
        let mut touched = HashSet::new();
        // Group values → its key hash, merged state values, and whether a
        // deletion took away its minimum or maximum.
        let mut merged: HashMap<Vec<ScalarValue>, (u64, Vec<ScalarValue>, bool)> = HashMap::new();
        // `from_state`: the batch is stored state, not a change set.
        let mut add =
            |batch: &RecordBatch, subtract: bool, from_state: bool| -> Result<(), EngineError> {
                let hashes = hash_column(batch, groups + values)?;
                for row in 0..batch.num_rows() {
                    let key = (0..groups)
                        .map(|c| ScalarValue::try_from_array(batch.column(c), row))
                        .collect::<DfResult<Vec<_>>>()
                        .map_err(map_df_error)?;
                    let entry = match merged.entry(key) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(e) => {
                            let empty = merges
                                .iter()
                                .enumerate()
                                .map(|(v, merge)| {
                                    let data_type = state_schema.field(groups + v).data_type();
                                    match merge {
                                        Merge::Add | Merge::Distinct => {
                                            ScalarValue::new_zero(data_type)
                                        }
                                        Merge::Least | Merge::Greatest => {
                                            ScalarValue::try_from(data_type)
                                        }
                                    }
                                })
                                .collect::<DfResult<Vec<_>>>()
                                .map_err(map_df_error)?;
                            e.insert((hashes.value(row), empty, false))
                        }
                    };
                    for (v, (total, merge)) in entry.1.iter_mut().zip(&merges).enumerate() {
                        let value = ScalarValue::try_from_array(batch.column(groups + v), row)
                            .map_err(map_df_error)?;
                        if value.is_null() {
                            continue;
                        }
                        let field_type = state_schema.field(groups + v).data_type();
                        match merge {
                            Merge::Distinct if !from_state => {}
                            Merge::Add | Merge::Distinct => {
                                *total = if subtract {
                                    total.sub_checked(&value)
                                } else {
                                    total.add_checked(&value)
                                }
                                .and_then(|sum| sum.cast_to(field_type))
                                .map_err(overflow)?;
                            }
                            Merge::Least | Merge::Greatest => {
                                // The order in which `value` beats `total`.
                                let beats = if *merge == Merge::Least {
                                    std::cmp::Ordering::Less
                                } else {
                                    std::cmp::Ordering::Greater
                                };
                                let order = value.partial_cmp(total);
                                if subtract {
                                    // A deleted value the extreme is not
                                    // strictly beyond may have been the extreme.
                                    let loses = order == Some(beats.reverse());
                                    if total.is_null() || !loses {
                                        entry.2 = true;
                                    }
                                } else if total.is_null() || order == Some(beats) {
                                    *total = value;
                                }
                            }
                        }
                    }
                }
                Ok(())
            };
        for batch in inserted.iter().chain(deleted) {
            touched.extend(
                hash_column(batch, groups + values)?
                    .values()
                    .iter()
                    .copied(),
            );
        }
        // The old state of the touched groups, and its rows to replace.
        let stored = crate::state_tables::read(session, state_table)?;
        let mut replaced = Vec::new();
        for batch in &stored {
            let hashes = hash_column(batch, width - 1)?;
            let row_ids = hash_column(batch, width)?;
            let keep: Vec<u32> = (0..batch.num_rows())
                .filter(|&r| touched.contains(&hashes.value(r)))
                .map(|r| r as u32)
                .collect();
            if keep.is_empty() {
                continue;
            }
            replaced.extend(keep.iter().map(|&r| RowId(row_ids.value(r as usize))));
            let indices = datafusion::arrow::array::UInt32Array::from(keep);
            let columns = batch.columns()[..width]
                .iter()
                .map(|c| datafusion::arrow::compute::take(c, &indices, None))
                .collect::<Result<Vec<_>, _>>()
                .map_err(map_arrow_error)?;
            let old =
                RecordBatch::try_new(state_schema.clone(), columns).map_err(map_arrow_error)?;
            add(&old, false, true)?;
        }
        for batch in inserted {
            add(batch, false, false)?;
        }
        for batch in deleted {
            add(batch, true, false)?;
        }
        // Distinct counts change by the value counts' transitions.
        let distinct_columns: Vec<usize> = merges
            .iter()
            .enumerate()
            .filter(|(_, m)| **m == Merge::Distinct)
            .map(|(v, _)| v)
            .collect();
        if distinct_columns.len() != distinct.len() {
            return Err(EngineError::new(
                "XX001",
                "aggregate state and its count(DISTINCT) value counts disagree",
            ));
        }
        for (&v, steps) in distinct_columns.iter().zip(distinct) {
            for (group, step) in steps {
                let Some(entry) = merged.get_mut(group) else {
                    return Err(EngineError::new(
                        "XX001",
                        "count(DISTINCT) value counts changed a group the change set does not touch",
                    ));
                };
                let data_type = state_schema.field(groups + v).data_type();
                entry.1[v] = entry.1[v]
                    .add_checked(ScalarValue::Int64(Some(*step)))
                    .and_then(|sum| sum.cast_to(data_type))
                    .map_err(overflow)?;
            }
        }

        // New state and output rows for the groups that remain.
        let mut rescan = HashSet::new();
        let mut state_rows: Vec<Vec<ScalarValue>> = vec![Vec::new(); width];
        // The output's types are the state's, which was planned as the
        // query runs (analyzed): the maintenance plan's own types are
        // DataFusion's before Freshet's rules settle them (a numeric
        // division's scale among them), and casting to those rounded
        // `sum(x / 3)` to 6 decimals.
        let mut out_types: Vec<DataType> = (0..groups)
            .map(|g| state_schema.field(g).data_type().clone())
            .collect();
        let mut at = 1;
        for part in &self.parts {
            let state_type = state_schema.field(groups + at).data_type();
            out_types.push(match part {
                Part::Avg => crate::exact_avg::result_type(state_type).ok_or_else(|| {
                    EngineError::new(
                        "XX001",
                        format!("aggregate state holds an average's sum of {state_type}"),
                    )
                })?,
                _ => state_type.clone(),
            });
            at += part.merges().len();
        }
        let mut output_rows: Vec<Vec<ScalarValue>> = vec![Vec::new(); out_types.len()];
        for (key, (hash, totals, lost_extreme)) in merged {
            let rows = match &totals[0] {
                ScalarValue::Int64(Some(n)) => *n,
                other => {
                    return Err(EngineError::new(
                        "XX001",
                        format!("aggregate state row count has the wrong type ({other:?})"),
                    ))
                }
            };
            if rows < 0 {
                return Err(EngineError::new(
                    "XX001",
                    "aggregate state lost track of a group (negative row count); REINITIALIZE the dynamic table",
                ));
            }
            if rows == 0 {
                continue;
            }
            if lost_extreme {
                rescan.insert(hash);
                continue;
            }
            for (g, value) in key.iter().enumerate() {
                state_rows[g].push(value.clone());
                output_rows[g].push(value.clone());
            }
            for (v, total) in totals.iter().enumerate() {
                state_rows[groups + v].push(total.clone());
            }
            state_rows[width - 1].push(ScalarValue::UInt64(Some(hash)));
            let mut at = 1;
            for (i, part) in self.parts.iter().enumerate() {
                let out_type = &out_types[groups + i];
                let value = match part {
                    Part::Count | Part::CountDistinct | Part::Min | Part::Max => totals[at].clone(),
                    Part::Sum | Part::Avg => {
                        let (total, counted) = (&totals[at], &totals[at + 1]);
                        if matches!(counted, ScalarValue::Int64(Some(0))) {
                            ScalarValue::try_from(out_type).map_err(map_df_error)?
                        } else if *part == Part::Avg {
                            crate::exact_avg::mean_of(total, counted).map_err(map_df_error)?
                        } else {
                            total.clone()
                        }
                    }
                };
                at += part.merges().len();
                output_rows[groups + i].push(value.cast_to(out_type).map_err(map_df_error)?);
            }
        }
        let new_state = scalar_batch(state_schema.clone(), state_rows)?;
        crate::ddl::txn_mut(session, |t| {
            t.delete(state_table, &replaced)
                .map_err(EngineError::from)?;
            if new_state.num_rows() > 0 {
                t.insert(state_table, new_state)
                    .map_err(EngineError::from)?;
            }
            Ok(())
        })?;
        let output_schema = Arc::new(Schema::new(
            out_types
                .iter()
                .enumerate()
                .map(|(i, t)| Field::new(format!("f{i}"), t.clone(), true))
                .collect::<Vec<_>>(),
        ));
        let output = scalar_batch(output_schema, output_rows)?;
        Ok(Applied {
            touched,
            output: (output.num_rows() > 0).then_some(output),
            rescan,
        })
    }

    /// A plan with the aggregate node's schema (same qualified names) whose
    /// rows are `output` (from [`apply`](Self::apply)): what the GROUP BY
    /// yields for the touched groups.
    pub(crate) fn groups_plan(&self, output: RecordBatch) -> DfResult<LogicalPlan> {
        let schema = output.schema();
        crate::state_tables::positional_plan(vec![output], schema, "f", &self.aggregate.schema)
    }

    /// The aggregate's input.
    pub(crate) fn input(&self) -> &LogicalPlan {
        &self.aggregate.input
    }
}

/// A batch of `schema` whose columns hold `columns`' values.
pub(crate) fn scalar_batch(
    schema: SchemaRef,
    columns: Vec<Vec<ScalarValue>>,
) -> Result<RecordBatch, EngineError> {
    let arrays = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(values, field)| {
            if values.is_empty() {
                Ok(datafusion::arrow::array::new_empty_array(field.data_type()))
            } else {
                ScalarValue::iter_to_array(values)
            }
        })
        .collect::<DfResult<Vec<ArrayRef>>>()
        .map_err(map_df_error)?;
    RecordBatch::try_new(schema, arrays).map_err(map_arrow_error)
}

/// Column `index` of `batch` as UInt64 (key hashes, row ids).
fn hash_column(batch: &RecordBatch, index: usize) -> Result<&UInt64Array, EngineError> {
    batch
        .columns()
        .get(index)
        .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
        .ok_or_else(|| EngineError::new("XX001", "aggregate state has the wrong shape"))
}

fn overflow(e: DataFusionError) -> EngineError {
    let mapped = map_df_error(e);
    if mapped.sqlstate() == "XX000" || mapped.sqlstate() == "42000" {
        EngineError::new("22003", format!("aggregate out of range: {mapped}"))
    } else {
        mapped
    }
}
