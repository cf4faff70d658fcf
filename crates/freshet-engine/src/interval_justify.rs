//! `justify_days`, `justify_hours` and `justify_interval`, as PostgreSQL
//! computes them.
//!
//! An interval keeps months, days and time apart (`35 days` is not `1 mon 5
//! days`, since months differ in length). These functions move whole
//! 30-day periods into months and whole 24-hour periods into days, and then
//! make the fields agree in sign, as PostgreSQL does: `justify_interval('1
//! mon -1 hour')` is `29 days 23:00:00`. A result a field cannot hold is
//! 22008 (`interval out of range`).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, IntervalMonthDayNanoArray};
use datafusion::arrow::datatypes::IntervalUnit;
use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNano, IntervalMonthDayNanoType};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::EngineError;

const DAYS_PER_MONTH: i64 = 30;
const NANOS_PER_DAY: i64 = 86_400_000_000_000;

/// Registers the three functions.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    for justify in [Justify::Days, Justify::Hours, Justify::Interval] {
        ctx.register_udf(ScalarUDF::new_from_impl(JustifyFunction {
            justify,
            signature: Signature::exact(
                vec![DataType::Interval(IntervalUnit::MonthDayNano)],
                Volatility::Immutable,
            ),
        }));
    }
}

/// Which of the three functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Justify {
    Days,
    Hours,
    Interval,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JustifyFunction {
    justify: Justify,
    signature: Signature,
}

impl ScalarUDFImpl for JustifyFunction {
    fn name(&self) -> &str {
        match self.justify {
            Justify::Days => "justify_days",
            Justify::Hours => "justify_hours",
            Justify::Interval => "justify_interval",
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
            let [input] = arrays else {
                return Err(DataFusionError::Plan(format!(
                    "{} takes one argument",
                    self.name()
                )));
            };
            let input = input.as_primitive::<IntervalMonthDayNanoType>();
            let out: IntervalMonthDayNanoArray = input
                .iter()
                .map(|value| value.map(|v| justified(self.justify, v)).transpose())
                .collect::<Result<_, EngineError>>()?;
            Ok(Arc::new(out) as ArrayRef)
        })
    }
}

fn out_of_range() -> EngineError {
    EngineError::new("22008", "interval out of range")
}

/// Gives `smaller` (a count of units, `unit` of which make one `larger`)
/// the sign of `larger` when they differ, by moving one `larger` across.
fn same_sign(larger: &mut i64, smaller: &mut i64, unit: i64) {
    if *larger > 0 && *smaller < 0 {
        *smaller += unit;
        *larger -= 1;
    } else if *larger < 0 && *smaller > 0 {
        *smaller -= unit;
        *larger += 1;
    }
}

/// `value` justified as `justify` says (see the module docs).
fn justified(
    justify: Justify,
    value: IntervalMonthDayNano,
) -> Result<IntervalMonthDayNano, EngineError> {
    let mut months = i64::from(value.months);
    let mut days = i64::from(value.days);
    let mut nanos = value.nanoseconds;
    let whole_days = |days: &mut i64, nanos: &mut i64| {
        *days += *nanos / NANOS_PER_DAY;
        *nanos %= NANOS_PER_DAY;
    };
    let whole_months = |months: &mut i64, days: &mut i64| {
        *months += *days / DAYS_PER_MONTH;
        *days %= DAYS_PER_MONTH;
    };
    match justify {
        Justify::Days => {
            whole_months(&mut months, &mut days);
            same_sign(&mut months, &mut days, DAYS_PER_MONTH);
        }
        Justify::Hours => {
            whole_days(&mut days, &mut nanos);
            same_sign(&mut days, &mut nanos, NANOS_PER_DAY);
        }
        Justify::Interval => {
            // Days of the same sign as the time move to months first, so
            // that adding the time's days cannot overflow the day field.
            if (days > 0 && nanos > 0) || (days < 0 && nanos < 0) {
                whole_months(&mut months, &mut days);
            }
            whole_days(&mut days, &mut nanos);
            whole_months(&mut months, &mut days);
            if months > 0 && (days < 0 || (days == 0 && nanos < 0)) {
                days += DAYS_PER_MONTH;
                months -= 1;
            } else if months < 0 && (days > 0 || (days == 0 && nanos > 0)) {
                days -= DAYS_PER_MONTH;
                months += 1;
            }
            same_sign(&mut days, &mut nanos, NANOS_PER_DAY);
        }
    }
    Ok(IntervalMonthDayNano::new(
        i32::try_from(months).map_err(|_| out_of_range())?,
        i32::try_from(days).map_err(|_| out_of_range())?,
        nanos,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000_000;

    fn interval(months: i32, days: i32, hours: i64) -> IntervalMonthDayNano {
        IntervalMonthDayNano::new(months, days, hours * HOUR)
    }

    #[test]
    fn justifies_as_postgresql_does() {
        // Each expected value is PostgreSQL 15's answer.
        let cases = [
            // justify_hours('27 hours') = 1 day 03:00:00
            (Justify::Hours, interval(0, 0, 27), interval(0, 1, 3)),
            // justify_hours('1 day -1 hour') = 23:00:00
            (Justify::Hours, interval(0, 1, -1), interval(0, 0, 23)),
            // justify_hours('-1 day 1 hour') = -23:00:00
            (Justify::Hours, interval(0, -1, 1), interval(0, 0, -23)),
            // justify_days('35 days') = 1 mon 5 days
            (Justify::Days, interval(0, 35, 0), interval(1, 5, 0)),
            // justify_days('1 mon -1 day') = 29 days
            (Justify::Days, interval(1, -1, 0), interval(0, 29, 0)),
            // justify_days('-65 days') = -2 mons -5 days
            (Justify::Days, interval(0, -65, 0), interval(-2, -5, 0)),
            // justify_interval('1 mon -1 hour') = 29 days 23:00:00
            (Justify::Interval, interval(1, 0, -1), interval(0, 29, 23)),
            // justify_interval('-1 mon 50 hours') = -27 days -22:00:00
            (
                Justify::Interval,
                interval(-1, 0, 50),
                interval(0, -27, -22),
            ),
            // justify_interval('29 days 25 hours') = 1 mon 01:00:00
            (Justify::Interval, interval(0, 29, 25), interval(1, 0, 1)),
        ];
        for (justify, input, expected) in cases {
            assert_eq!(
                justified(justify, input).expect("in range"),
                expected,
                "{justify:?} {input:?}"
            );
        }
    }

    #[test]
    fn a_month_count_beyond_the_field_is_out_of_range() {
        let err = justified(
            Justify::Hours,
            IntervalMonthDayNano::new(0, i32::MAX, 48 * HOUR),
        )
        .expect_err("overflows the day field");
        assert_eq!(err.sqlstate(), "22008");
    }
}
