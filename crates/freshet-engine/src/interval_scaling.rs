//! `interval * number`, `number * interval` and `interval / number`, as
//! PostgreSQL's `interval_mul` and `interval_div` compute them.
//!
//! DataFusion refuses all three ("Cannot coerce arithmetic expression
//! Interval(MonthDayNano) * Int64"), so `now() - interval '1 day' * n`, a
//! staple of reports, failed. [`IntervalScalingPlanner`], an `ExprPlanner`,
//! plans them as [`IntervalScale`] calls with the number as a `double
//! precision`, which is what PostgreSQL converts it to.
//!
//! PostgreSQL scales months, days and time separately, truncating months and
//! days to whole units and carrying each one's fraction down: a fraction of
//! a month as 30 days, a fraction of a day as 24 hours (`interval '1 mon' *
//! 1.5` is `1 mon 15 days`; `interval '1 day' / 3` is `08:00:00`). It never
//! carries up (`interval '12 hours' * 3` is `36:00:00`). Results outside
//! the interval's range are 22008, a zero divisor 22012.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{ArrayRef, AsArray, IntervalMonthDayNanoArray};
use datafusion::arrow::datatypes::{
    DataType, Float64Type, IntervalMonthDayNano, IntervalMonthDayNanoType, IntervalUnit,
};
use datafusion::common::{DFSchema, DataFusionError, Result as DfResult};
use datafusion::logical_expr::expr::{Cast, ScalarFunction};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::sql::sqlparser::ast::BinaryOperator;

use crate::EngineError;

/// Registers the planner with a session.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) -> DfResult<()> {
    use datafusion::execution::FunctionRegistry;
    // SessionContext shares its state between clones: this registers for `ctx`.
    let mut registry = ctx.clone();
    registry.register_expr_planner(Arc::new(IntervalScalingPlanner))
}

/// Whether an interval is scaled up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scaling {
    Multiply,
    Divide,
}

/// Plans the operators described in the module docs.
#[derive(Debug)]
struct IntervalScalingPlanner;

fn is_interval(t: &DataType) -> bool {
    matches!(t, DataType::Interval(IntervalUnit::MonthDayNano))
}

fn is_number(t: &DataType) -> bool {
    t.is_numeric() || t == &DataType::Null
}

impl ExprPlanner for IntervalScalingPlanner {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> DfResult<PlannerResult<RawBinaryExpr>> {
        let scaling = match expr.op {
            BinaryOperator::Multiply => Scaling::Multiply,
            BinaryOperator::Divide => Scaling::Divide,
            _ => return Ok(PlannerResult::Original(expr)),
        };
        let (Ok(left), Ok(right)) = (expr.left.get_type(schema), expr.right.get_type(schema))
        else {
            return Ok(PlannerResult::Original(expr));
        };
        let (interval, factor) = if is_interval(&left) && is_number(&right) {
            (expr.left, expr.right)
        } else if scaling == Scaling::Multiply && is_number(&left) && is_interval(&right) {
            (expr.right, expr.left)
        } else {
            return Ok(PlannerResult::Original(expr));
        };
        let factor = Expr::Cast(Cast::new(Box::new(factor), DataType::Float64));
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(scale_udf(scaling), vec![interval, factor]),
        )))
    }
}

fn scale_udf(scaling: Scaling) -> Arc<ScalarUDF> {
    static MULTIPLY: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    static DIVIDE: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    let cell = match scaling {
        Scaling::Multiply => &MULTIPLY,
        Scaling::Divide => &DIVIDE,
    };
    cell.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(IntervalScale {
            scaling,
            signature: Signature::exact(
                vec![
                    DataType::Interval(IntervalUnit::MonthDayNano),
                    DataType::Float64,
                ],
                Volatility::Immutable,
            ),
        }))
    })
    .clone()
}

/// `freshet_interval_mul(interval, factor)` / `freshet_interval_div`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IntervalScale {
    scaling: Scaling,
    signature: Signature,
}

impl ScalarUDFImpl for IntervalScale {
    fn name(&self) -> &str {
        match self.scaling {
            Scaling::Multiply => "freshet_interval_mul",
            Scaling::Divide => "freshet_interval_div",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Interval(IntervalUnit::MonthDayNano))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        crate::udf_args::evaluate(&args.args, |arrays| {
            let [intervals, factors] = arrays else {
                return Err(DataFusionError::Internal(format!(
                    "{} takes two arguments",
                    self.name()
                )));
            };
            let intervals = intervals.as_primitive::<IntervalMonthDayNanoType>();
            let factors = factors.as_primitive::<Float64Type>();
            let out = intervals
                .iter()
                .zip(factors.iter())
                .map(|pair| match pair {
                    (Some(interval), Some(factor)) => {
                        scale(interval, factor, self.scaling).map(Some)
                    }
                    _ => Ok(None),
                })
                .collect::<Result<IntervalMonthDayNanoArray, EngineError>>()?;
            Ok(Arc::new(out) as ArrayRef)
        })
    }
}

fn out_of_range() -> EngineError {
    EngineError::new("22008", "interval out of range")
}

/// `x` rounded to whole microseconds of a second, as PostgreSQL's
/// `TSROUND` rounds the fractions it carries down.
fn to_micros_precision(x: f64) -> f64 {
    (x * 1e6).round_ties_even() / 1e6
}

/// A whole number of `x`'s integer part, if it fits an `i32`.
fn whole_i32(x: f64) -> Result<i32, EngineError> {
    let whole = x.trunc();
    if whole.is_nan() || whole < f64::from(i32::MIN) || whole > f64::from(i32::MAX) {
        return Err(out_of_range());
    }
    // In range and integral: exact.
    #[allow(clippy::cast_possible_truncation)]
    Ok(whole as i32)
}

/// `interval * factor` or `interval / factor`, PostgreSQL's way (see the
/// module docs).
fn scale(
    interval: IntervalMonthDayNano,
    factor: f64,
    scaling: Scaling,
) -> Result<IntervalMonthDayNano, EngineError> {
    if scaling == Scaling::Divide && factor == 0.0 {
        return Err(EngineError::new("22012", "division by zero"));
    }
    let apply = |x: f64| match scaling {
        Scaling::Multiply => x * factor,
        Scaling::Divide => x / factor,
    };
    const DAYS_PER_MONTH: f64 = 30.0;
    const SECONDS_PER_DAY: f64 = 86_400.0;
    let months_exact = apply(f64::from(interval.months));
    let months = whole_i32(months_exact)?;
    let days_exact = apply(f64::from(interval.days));
    let mut days = whole_i32(days_exact)?;
    // The fractions, carried down: of a month to days, of a day to seconds.
    let month_fraction_days =
        to_micros_precision((months_exact - f64::from(months)) * DAYS_PER_MONTH);
    let mut seconds = to_micros_precision(
        (days_exact - f64::from(days) + month_fraction_days - month_fraction_days.trunc())
            * SECONDS_PER_DAY,
    );
    if seconds.abs() >= SECONDS_PER_DAY {
        let whole_days = whole_i32(seconds / SECONDS_PER_DAY)?;
        days = days.checked_add(whole_days).ok_or_else(out_of_range)?;
        seconds -= f64::from(whole_days) * SECONDS_PER_DAY;
    }
    days = days
        .checked_add(whole_i32(month_fraction_days)?)
        .ok_or_else(out_of_range)?;
    // Intervals hold whole microseconds, as PostgreSQL's do.
    #[allow(clippy::cast_precision_loss)]
    let micros = (apply(interval.nanoseconds as f64 / 1000.0) + seconds * 1e6).round_ties_even();
    if micros.is_nan() || micros.abs() >= (i64::MAX / 1000) as f64 {
        return Err(out_of_range());
    }
    // In range and integral: exact.
    #[allow(clippy::cast_possible_truncation)]
    let nanoseconds = micros as i64 * 1000;
    Ok(IntervalMonthDayNano::new(months, days, nanoseconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000_000;

    fn iv(months: i32, days: i32, nanoseconds: i64) -> IntervalMonthDayNano {
        IntervalMonthDayNano::new(months, days, nanoseconds)
    }

    #[test]
    fn carries_fractions_down_as_postgresql_does() {
        let mul = |i, f| scale(i, f, Scaling::Multiply).ok();
        let div = |i, f| scale(i, f, Scaling::Divide).ok();
        assert_eq!(mul(iv(1, 0, 0), 1.5), Some(iv(1, 15, 0)));
        assert_eq!(mul(iv(0, 1, 0), 1.5), Some(iv(0, 1, 12 * HOUR)));
        assert_eq!(mul(iv(0, 0, 12 * HOUR), 3.0), Some(iv(0, 0, 36 * HOUR)));
        assert_eq!(div(iv(1, 0, 0), 3.0), Some(iv(0, 10, 0)));
        assert_eq!(div(iv(0, 1, 0), 3.0), Some(iv(0, 0, 8 * HOUR)));
        assert_eq!(mul(iv(2, 3, HOUR), -1.0), Some(iv(-2, -3, -HOUR)));
        assert_eq!(mul(iv(1, 0, 0), f64::MAX), None);
        assert_eq!(
            scale(iv(1, 0, 0), 0.0, Scaling::Divide).map_err(|e| e.sqlstate()),
            Err("22012")
        );
    }
}
