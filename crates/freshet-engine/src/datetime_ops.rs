//! Date and time operators as PostgreSQL computes them, where DataFusion's
//! answer differs without an error.
//!
//! [`PostgresDatetimeOps`], an `AnalyzerRule` that runs after type
//! coercion, replaces in every plan:
//!
//! * `timestamp - timestamp`, a nanosecond `duration` in DataFusion (shown
//!   as `1452:00:00`), with PostgreSQL's `interval` of whole days and a
//!   time (`60 days 12:00:00`), as its `timestamp_mi` gives.
//! * comparisons of two intervals, which Arrow makes field by field (months,
//!   then days, then nanoseconds), with comparisons of their lengths as
//!   PostgreSQL measures them: a month is 30 days and a day 24 hours, so
//!   `interval '1 day' = interval '24 hours'`.
//! * `date_part` / `EXTRACT` of seconds or milliseconds, which DataFusion
//!   truncates to whole units, with PostgreSQL's exact `numeric`
//!   (`12.500000`), and of the epoch of an interval, with PostgreSQL's
//!   365.25-day years (DataFusion counts 360).
//! * `date_trunc(unit, date)`, a `timestamp` in DataFusion, with the
//!   `timestamptz` PostgreSQL gives (a date converts to timestamptz, its
//!   preferred type), at UTC midnight.
//!
//! * ORDER BY an interval, which Arrow sorts field by field, with a sort by
//!   the interval's length as PostgreSQL measures it.
//!
//! Grouping, DISTINCT and `min`/`max` still take intervals field by field
//! (the README lists it).

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, IntervalMonthDayNanoArray,
};
use datafusion::arrow::datatypes::{
    DataType, IntervalMonthDayNano, IntervalMonthDayNanoType, IntervalUnit, TimeUnit,
};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr::{BinaryExpr, Cast, ScalarFunction};
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, Operator, ScalarUDF};
use datafusion::optimizer::AnalyzerRule;

/// Registers the rule with a session.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.add_analyzer_rule(Arc::new(PostgresDatetimeOps));
}

/// The analyzer rule described in the module docs.
#[derive(Debug, Default)]
pub(crate) struct PostgresDatetimeOps;

impl AnalyzerRule for PostgresDatetimeOps {
    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> DfResult<LogicalPlan> {
        // A `date_part` of seconds becomes a numeric where it was an
        // integer, so what uses it (`extract(second …) > 30`) is coerced
        // again, by DataFusion's own rule.
        let mut retyped = false;
        let plan = crate::plan_rewrite::rewrite_plan(plan, |expr, schema| {
            let was_date_part = matches!(&expr, Expr::ScalarFunction(f) if f.name() == "date_part");
            let rewritten = rewrite(expr, schema)?;
            retyped |= was_date_part && rewritten.transformed;
            Ok(rewritten)
        })?;
        let plan = sort_intervals_by_length(plan)?;
        if retyped {
            datafusion::optimizer::analyzer::type_coercion::TypeCoercion::new()
                .analyze(plan, config)
        } else {
            Ok(plan)
        }
    }

    fn name(&self) -> &str {
        "freshet_postgres_datetime_ops"
    }
}

/// ORDER BY an interval sorts by its length as PostgreSQL measures it
/// (30-day months, 24-hour days): `25 hours` after `1 day`, `29 days`
/// before `1 month`. Arrow sorts intervals field by field, which put
/// `25 hours` (0 days) before `1 day`. Only the sort key changes; the
/// values sorted are the same.
fn sort_intervals_by_length(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    use datafusion::common::tree_node::TransformedResult;
    plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::Sort(mut sort) = node else {
            return Ok(Transformed::no(node));
        };
        let schema = sort.input.schema().clone();
        let mut changed = false;
        for key in &mut sort.expr {
            if matches!(
                key.expr.get_type(&schema),
                Ok(DataType::Interval(IntervalUnit::MonthDayNano))
            ) {
                key.expr = call(length_udf(), vec![key.expr.clone()]);
                changed = true;
            }
        }
        let node = LogicalPlan::Sort(sort);
        Ok(if changed {
            Transformed::yes(node)
        } else {
            Transformed::no(node)
        })
    })
    .data()
}

fn call(udf: Arc<ScalarUDF>, args: Vec<Expr>) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(udf, args))
}

fn rewrite(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    match &expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (Ok(l), Ok(r)) = (left.get_type(schema), right.get_type(schema)) else {
                return Ok(Transformed::no(expr));
            };
            match (op, &l, &r) {
                (Operator::Minus, DataType::Timestamp(_, _), DataType::Timestamp(_, _)) => {
                    Ok(Transformed::yes(call(
                        difference_udf(),
                        vec![left.as_ref().clone(), right.as_ref().clone()],
                    )))
                }
                (
                    op,
                    DataType::Interval(IntervalUnit::MonthDayNano),
                    DataType::Interval(IntervalUnit::MonthDayNano),
                ) if crate::type_resolution::is_comparison(op) => {
                    Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                        Box::new(call(length_udf(), vec![left.as_ref().clone()])),
                        *op,
                        Box::new(call(length_udf(), vec![right.as_ref().clone()])),
                    ))))
                }
                _ => Ok(Transformed::no(expr)),
            }
        }
        Expr::ScalarFunction(f) if f.name() == "date_part" => date_part(f, schema),
        Expr::ScalarFunction(f) if f.name() == "date_trunc" => {
            let truncates_a_date = matches!(
                f.args.get(1),
                Some(Expr::Cast(Cast { expr: date, .. }))
                    if matches!(date.get_type(schema), Ok(DataType::Date32))
            );
            if !truncates_a_date {
                return Ok(Transformed::no(expr));
            }
            Ok(Transformed::yes(Expr::Cast(Cast::new(
                Box::new(expr),
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            ))))
        }
        _ => Ok(Transformed::no(expr)),
    }
}

/// `date_part` / `EXTRACT` of the fields DataFusion answers differently:
/// seconds and milliseconds of a time or timestamp keep their fraction (as
/// PostgreSQL's `numeric`, `12.500000` and `12500.500`; DataFusion gives the
/// whole seconds), and the epoch of an interval counts a year as 365.25 days
/// and a month as 30 (DataFusion makes a year 360 days).
fn date_part(f: &ScalarFunction, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    let keep = |f: &ScalarFunction| Ok(Transformed::no(Expr::ScalarFunction(f.clone())));
    let [Expr::Literal(ScalarValue::Utf8(Some(part)), _), value] = f.args.as_slice() else {
        return keep(f);
    };
    let Ok(value_type) = value.get_type(schema) else {
        return keep(f);
    };
    let part = part.to_ascii_lowercase();
    let with_fraction = match part.as_str() {
        "second" | "seconds" | "sec" | "secs" | "s" => Some(seconds_udf()),
        "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" => Some(milliseconds_udf()),
        _ => None,
    };
    match (with_fraction, &value_type) {
        (Some(udf), DataType::Timestamp(_, _) | DataType::Time32(_) | DataType::Time64(_)) => {
            let micros = Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::clone(&f.func),
                vec![
                    Expr::Literal(ScalarValue::Utf8(Some("microsecond".into())), None),
                    value.clone(),
                ],
            ));
            Ok(Transformed::yes(call(udf, vec![micros])))
        }
        (None, DataType::Interval(IntervalUnit::MonthDayNano)) if part == "epoch" => Ok(
            Transformed::yes(call(interval_epoch_udf(), vec![value.clone()])),
        ),
        _ => keep(f),
    }
}

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

fn unexpected(name: &str, t: &DataType) -> DataFusionError {
    DataFusionError::Internal(format!("{name} on {t}"))
}

/// `freshet_timestamp_difference(a, b) -> interval`: `a - b` as whole days
/// and the rest, both with the difference's sign (PostgreSQL's
/// `timestamp_mi`).
fn difference_udf() -> Arc<ScalarUDF> {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    crate::udf_args::row_function(
        &UDF,
        "freshet_timestamp_difference",
        2,
        DataType::Interval(IntervalUnit::MonthDayNano),
        |arrays| {
            use datafusion::arrow::datatypes::TimestampMicrosecondType;
            let [a, b] = arrays else {
                return Err(DataFusionError::Internal(
                    "freshet_timestamp_difference takes two arguments".into(),
                ));
            };
            // Both in microseconds, each keeping its zone: the raw values
            // are then instants (or both wall-clock times).
            let micros = |array: &ArrayRef| -> DfResult<ArrayRef> {
                let DataType::Timestamp(_, zone) = array.data_type() else {
                    return Err(unexpected(
                        "freshet_timestamp_difference",
                        array.data_type(),
                    ));
                };
                Ok(datafusion::arrow::compute::cast(
                    array,
                    &DataType::Timestamp(TimeUnit::Microsecond, zone.clone()),
                )?)
            };
            let (a, b) = (micros(a)?, micros(b)?);
            let (a, b) = (
                a.as_primitive::<TimestampMicrosecondType>(),
                b.as_primitive::<TimestampMicrosecondType>(),
            );
            let day = NANOS_PER_DAY / 1_000;
            let out: IntervalMonthDayNanoArray = a
                .iter()
                .zip(b.iter())
                .map(|(a, b)| {
                    let total = a?.checked_sub(b?)?;
                    // Truncated towards zero: days and time share a sign.
                    let days = total / day;
                    Some(IntervalMonthDayNano::new(
                        0,
                        i32::try_from(days).ok()?,
                        (total - days * day).checked_mul(1_000)?,
                    ))
                })
                .collect();
            Ok(Arc::new(out) as ArrayRef)
        },
    )
}

/// `freshet_interval_length(interval) -> numeric(38,0)`: nanoseconds, with
/// PostgreSQL's 30-day months and 24-hour days.
fn length_udf() -> Arc<ScalarUDF> {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    crate::udf_args::row_function(
        &UDF,
        "freshet_interval_length",
        1,
        DataType::Decimal128(38, 0),
        |arrays| {
            interval_to_decimal("freshet_interval_length", arrays, 0, |v| {
                (i128::from(v.months) * 30 + i128::from(v.days)) * i128::from(NANOS_PER_DAY)
                    + i128::from(v.nanoseconds)
            })
        },
    )
}

/// The one interval argument of `name`, each value mapped by `value` to a
/// decimal of `scale`.
fn interval_to_decimal(
    name: &str,
    arrays: &[ArrayRef],
    scale: i8,
    value: impl Fn(IntervalMonthDayNano) -> i128,
) -> DfResult<ArrayRef> {
    let [array] = arrays else {
        return Err(DataFusionError::Internal(format!(
            "{name} takes one argument"
        )));
    };
    if !matches!(
        array.data_type(),
        DataType::Interval(IntervalUnit::MonthDayNano)
    ) {
        return Err(unexpected(name, array.data_type()));
    }
    let out: Decimal128Array = array
        .as_primitive::<IntervalMonthDayNanoType>()
        .iter()
        .map(|v| v.map(&value))
        .collect();
    Ok(Arc::new(out.with_precision_and_scale(38, scale)?) as ArrayRef)
}

/// `freshet_micros_as_seconds(int) -> numeric(12,6)`: a count of
/// microseconds (what `date_part('microsecond', …)` gives: the seconds field
/// with its fraction) read as seconds, exactly.
fn seconds_udf() -> Arc<ScalarUDF> {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    crate::udf_args::row_function(
        &UDF,
        "freshet_micros_as_seconds",
        1,
        DataType::Decimal128(12, 6),
        |arrays| micros_with_scale(arrays, 6),
    )
}

/// `freshet_micros_as_milliseconds(int) -> numeric(12,3)`: as
/// [`seconds_udf`], read as milliseconds.
fn milliseconds_udf() -> Arc<ScalarUDF> {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    crate::udf_args::row_function(
        &UDF,
        "freshet_micros_as_milliseconds",
        1,
        DataType::Decimal128(12, 3),
        |arrays| micros_with_scale(arrays, 3),
    )
}

/// Microseconds as a decimal of `scale`: the same digits, so no rounding.
fn micros_with_scale(arrays: &[ArrayRef], scale: i8) -> DfResult<ArrayRef> {
    use datafusion::arrow::datatypes::Int64Type;
    let [array] = arrays else {
        return Err(DataFusionError::Internal(
            "freshet_micros_as_* takes one argument".into(),
        ));
    };
    let micros = datafusion::arrow::compute::cast(array, &DataType::Int64)?;
    let out: Decimal128Array = micros
        .as_primitive::<Int64Type>()
        .iter()
        .map(|v| v.map(i128::from))
        .collect();
    Ok(Arc::new(out.with_precision_and_scale(12, scale)?) as ArrayRef)
}

/// `freshet_interval_epoch(interval) -> numeric(38,6)`: the interval's
/// length in seconds as PostgreSQL's `extract(epoch …)` measures it, exactly:
/// whole years of 365.25 days, the remaining months of 30 days, days of 24
/// hours, and the time to the microsecond.
fn interval_epoch_udf() -> Arc<ScalarUDF> {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    crate::udf_args::row_function(
        &UDF,
        "freshet_interval_epoch",
        1,
        DataType::Decimal128(38, 6),
        |arrays| interval_to_decimal("freshet_interval_epoch", arrays, 6, interval_epoch_micros),
    )
}

/// PostgreSQL's epoch of an interval, in microseconds. No overflow: each
/// term is at most about 2^31 × 2^45 or 2^63, far inside an i128.
fn interval_epoch_micros(v: IntervalMonthDayNano) -> i128 {
    const MICROS_PER_DAY: i128 = 86_400_000_000;
    // Truncating division, as C's: -14 months are -1 year and -2 months.
    let years = i128::from(v.months / 12);
    let months = i128::from(v.months % 12);
    // 365.25 days a year: 1461 days every 4 years.
    years * 1461 * MICROS_PER_DAY / 4
        + months * 30 * MICROS_PER_DAY
        + i128::from(v.days) * MICROS_PER_DAY
        + i128::from(v.nanoseconds / 1_000)
}
