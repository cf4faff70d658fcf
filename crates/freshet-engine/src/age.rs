//! `age(timestamp, timestamp)` and `age(timestamp)`, as PostgreSQL computes
//! them.
//!
//! DataFusion has no `age`, and `a - b` is not the same answer: PostgreSQL's
//! `age` subtracts field by field (years, months, days, then the time of
//! day) and borrows from the next larger field, a month lending the number
//! of days of the month it borrows from, so the result is "symbolic":
//! `age('2024-03-01', '2024-01-31')` is `1 mon 1 day`, where the
//! subtraction gives `30 days`. `age(x)` is `age(current_date, x)`, with
//! `current_date` taken when the statement starts (UTC, Freshet's only zone).

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, IntervalMonthDayNanoBuilder};
use datafusion::arrow::datatypes::{
    DataType, IntervalMonthDayNano, IntervalUnit, TimeUnit, TimestampMicrosecondType,
};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

/// Registers `age`.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(Age::new()));
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Age {
    signature: Signature,
}

impl Age {
    fn new() -> Self {
        let timestamp = DataType::Timestamp(TimeUnit::Microsecond, None);
        let zoned = DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()));
        Age {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![timestamp.clone(), timestamp.clone()]),
                    TypeSignature::Exact(vec![zoned.clone(), zoned.clone()]),
                    TypeSignature::Exact(vec![DataType::Date32, DataType::Date32]),
                    TypeSignature::Exact(vec![timestamp]),
                    TypeSignature::Exact(vec![zoned]),
                    TypeSignature::Exact(vec![DataType::Date32]),
                ],
                Volatility::Stable,
            ),
        }
    }
}

impl ScalarUDFImpl for Age {
    fn name(&self) -> &str {
        "age"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Interval(IntervalUnit::MonthDayNano))
    }

    /// `age(x)` is `age(current_date, x)`: the date is fixed here, when the
    /// statement's plan is simplified, as `current_date` is.
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        let [x] = args.as_slice() else {
            return Ok(ExprSimplifyResult::Original(args));
        };
        let Some(start) = info.query_execution_start_time() else {
            return Ok(ExprSimplifyResult::Original(args));
        };
        let midnight = start.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default();
        let micros = midnight.and_utc().timestamp_micros();
        let today = match info.get_data_type(x) {
            Ok(DataType::Timestamp(_, Some(zone))) => {
                ScalarValue::TimestampMicrosecond(Some(micros), Some(zone))
            }
            Ok(DataType::Date32) => {
                ScalarValue::Date32(i32::try_from(micros / 86_400_000_000).ok())
            }
            _ => ScalarValue::TimestampMicrosecond(Some(micros), None),
        };
        Ok(ExprSimplifyResult::Simplified(Expr::ScalarFunction(
            datafusion::logical_expr::expr::ScalarFunction::new_udf(
                Arc::new(ScalarUDF::new_from_impl(Age::new())),
                vec![Expr::Literal(today, None), x.clone()],
            ),
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        crate::udf_args::evaluate(&args.args, |arrays| {
            let [a, b] = arrays else {
                return Err(DataFusionError::Plan(
                    "age(x) with one argument is planned as age(current_date, x)".into(),
                ));
            };
            let (a, b) = (as_micros(a)?, as_micros(b)?);
            let (a, b) = (
                a.as_primitive::<TimestampMicrosecondType>(),
                b.as_primitive::<TimestampMicrosecondType>(),
            );
            let mut out = IntervalMonthDayNanoBuilder::with_capacity(a.len());
            for i in 0..a.len() {
                if a.is_null(i) || b.is_null(i) {
                    out.append_null();
                    continue;
                }
                out.append_value(
                    age(a.value(i), b.value(i)).ok_or_else(|| {
                        DataFusionError::Execution("timestamp out of range".into())
                    })?,
                );
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        })
    }
}

/// A date or timestamp array as microseconds since the epoch.
fn as_micros(array: &ArrayRef) -> DfResult<ArrayRef> {
    Ok(datafusion::arrow::compute::cast(
        array,
        &DataType::Timestamp(TimeUnit::Microsecond, None),
    )?)
}

fn days_in_month(year: i32, month: u32) -> i64 {
    let first = NaiveDate::from_ymd_opt(year, month, 1);
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    match (first, next) {
        (Some(first), Some(next)) => (next - first).num_days(),
        _ => 30,
    }
}

/// `a - b` field by field, as PostgreSQL's `timestamp_age` (see the module
/// docs); None for a value chrono cannot represent.
fn age(a: i64, b: i64) -> Option<IntervalMonthDayNano> {
    let a: NaiveDateTime = DateTime::from_timestamp_micros(a)?.naive_utc();
    let b: NaiveDateTime = DateTime::from_timestamp_micros(b)?.naive_utc();
    let micros = |t: &NaiveDateTime| i64::from(t.nanosecond() / 1_000);
    let mut usec = micros(&a) - micros(&b);
    let mut sec = i64::from(a.second()) - i64::from(b.second());
    let mut min = i64::from(a.minute()) - i64::from(b.minute());
    let mut hour = i64::from(a.hour()) - i64::from(b.hour());
    let mut day = i64::from(a.day()) - i64::from(b.day());
    let mut mon = i64::from(a.month()) - i64::from(b.month());
    let mut year = i64::from(a.year()) - i64::from(b.year());
    // Borrow with the result's sign made positive, then give it back.
    let flip = a < b;
    let sign = if flip { -1 } else { 1 };
    for field in [
        &mut usec, &mut sec, &mut min, &mut hour, &mut day, &mut mon, &mut year,
    ] {
        *field *= sign;
    }
    while usec < 0 {
        usec += 1_000_000;
        sec -= 1;
    }
    while sec < 0 {
        sec += 60;
        min -= 1;
    }
    while min < 0 {
        min += 60;
        hour -= 1;
    }
    while hour < 0 {
        hour += 24;
        day -= 1;
    }
    // A month lends the days of the earlier timestamp's month.
    let lender = if flip { &a } else { &b };
    while day < 0 {
        day += days_in_month(lender.year(), lender.month());
        mon -= 1;
    }
    while mon < 0 {
        mon += 12;
        year -= 1;
    }
    let months = sign * (year * 12 + mon);
    let days = sign * day;
    let nanos = sign * ((((hour * 60 + min) * 60 + sec) * 1_000_000 + usec) * 1_000);
    Some(IntervalMonthDayNano::new(
        i32::try_from(months).ok()?,
        i32::try_from(days).ok()?,
        nanos,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(text: &str) -> i64 {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
            .timestamp_micros()
    }

    #[test]
    fn borrows_field_by_field() {
        // PostgreSQL 15: 1 mon 1 day, -1 mons -1 days, 1 year, 10 mons 30 days 23:00:00.
        let cases = [
            ("2024-03-01 00:00:00", "2024-01-31 00:00:00", (1, 1, 0)),
            ("2024-01-31 00:00:00", "2024-03-01 00:00:00", (-1, -1, 0)),
            ("2024-01-01 00:00:00", "2023-01-01 00:00:00", (12, 0, 0)),
            (
                "2024-12-31 00:00:00",
                "2024-01-31 01:00:00",
                (10, 30, 23 * 3_600_000_000_000),
            ),
        ];
        for (a, b, (months, days, nanos)) in cases {
            assert_eq!(
                age(micros(a), micros(b)),
                Some(IntervalMonthDayNano::new(months, days, nanos)),
                "age({a}, {b})"
            );
        }
    }
}
