//! `div(numeric, numeric)` and `width_bucket(operand, low, high, count)`,
//! PostgreSQL's numeric functions that DataFusion lacks.
//!
//! * `div(y, x)` is the integer quotient of `y / x`, truncated toward zero,
//!   as a `numeric` of scale 0: `div(-7.5, 2.1)` is `-3`. Integers and
//!   numerics only (PostgreSQL has no `div(double precision, …)`); a zero
//!   divisor is 22012.
//! * `width_bucket(operand, low, high, count)` is the bucket, from 1 to
//!   `count`, of `count` equal-width buckets between `low` and `high` (or
//!   from `high` down to `low` when `low > high`) that holds `operand`; 0
//!   below the range and `count + 1` above it. With integers and numerics
//!   it is computed exactly, as PostgreSQL computes its numeric form; with a
//!   float argument in `double precision`, in the order of PostgreSQL's
//!   float8 form, so the answers at bucket edges are PostgreSQL's too.
//!   Equal bounds, a count below 1, NaN or infinite bounds are 2201G, a
//!   `count + 1` beyond `integer` 22003. The array form
//!   (`width_bucket(operand, thresholds[])`) is not provided.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, Int32Array};
use datafusion::arrow::datatypes::{
    i256, DataType, Decimal128Type, Float64Type, Int32Type, DECIMAL128_MAX_PRECISION,
};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::EngineError;

/// Registers `div` and `width_bucket`.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    for function in [NumericFunction::Div, NumericFunction::WidthBucket] {
        ctx.register_udf(ScalarUDF::new_from_impl(NumericUdf {
            function,
            signature: Signature::user_defined(Volatility::Immutable),
        }));
    }
}

/// Which function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum NumericFunction {
    Div,
    WidthBucket,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct NumericUdf {
    function: NumericFunction,
    signature: Signature,
}

fn no_such_function(name: &str, args: &[DataType]) -> DataFusionError {
    let types: Vec<String> = args
        .iter()
        .map(|t| crate::planning::sql_type_name(t).to_string())
        .collect();
    EngineError::new(
        "42883",
        format!("function {name}({}) does not exist", types.join(", ")),
    )
    .into()
}

/// The scale an exact argument type is read at, or None for a type that is
/// not an integer or a numeric.
fn exact_scale(data_type: &DataType) -> Option<i8> {
    match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::Null => Some(0),
        DataType::Decimal128(_, scale) => Some(*scale),
        _ => None,
    }
}

/// Every exact type in `args`, as one `numeric` type of the largest scale.
fn common_numeric(args: &[DataType]) -> Option<DataType> {
    let scales: Option<Vec<i8>> = args.iter().map(exact_scale).collect();
    let scale = scales?.into_iter().max().unwrap_or(0);
    Some(DataType::Decimal128(DECIMAL128_MAX_PRECISION, scale))
}

impl ScalarUDFImpl for NumericUdf {
    fn name(&self) -> &str {
        match self.function {
            NumericFunction::Div => "div",
            NumericFunction::WidthBucket => "width_bucket",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> DfResult<Vec<DataType>> {
        let refuse = || no_such_function(self.name(), args);
        match (self.function, args) {
            (NumericFunction::Div, [_, _]) => {
                let numeric = common_numeric(args).ok_or_else(refuse)?;
                Ok(vec![numeric.clone(), numeric])
            }
            (NumericFunction::WidthBucket, [operand, low, high, count]) => {
                if exact_scale(count).is_none() {
                    return Err(refuse());
                }
                let bounds = [operand.clone(), low.clone(), high.clone()];
                let common = match common_numeric(&bounds) {
                    Some(numeric) => numeric,
                    None if bounds
                        .iter()
                        .all(|t| exact_scale(t).is_some() || t.is_floating()) =>
                    {
                        DataType::Float64
                    }
                    None => return Err(refuse()),
                };
                Ok(vec![
                    common.clone(),
                    common.clone(),
                    common,
                    DataType::Int32,
                ])
            }
            _ => Err(refuse()),
        }
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(match self.function {
            NumericFunction::Div => DataType::Decimal128(DECIMAL128_MAX_PRECISION, 0),
            NumericFunction::WidthBucket => DataType::Int32,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        crate::udf_args::evaluate(&args.args, |arrays| match (self.function, arrays) {
            (NumericFunction::Div, [y, x]) => div(y, x),
            (NumericFunction::WidthBucket, [operand, low, high, count]) => {
                width_bucket(operand, low, high, count)
            }
            _ => Err(DataFusionError::Plan(format!(
                "{} called with {} arguments",
                self.name(),
                arrays.len()
            ))),
        })
    }
}

fn out_of_range(what: &str) -> EngineError {
    EngineError::new("22003", format!("{what} out of range"))
}

fn division_by_zero() -> EngineError {
    EngineError::new("22012", "division by zero")
}

fn div(y: &ArrayRef, x: &ArrayRef) -> DfResult<ArrayRef> {
    let (y, x) = (
        y.as_primitive::<Decimal128Type>(),
        x.as_primitive::<Decimal128Type>(),
    );
    let quotients: Decimal128Array = y
        .iter()
        .zip(x.iter())
        .map(|pair| match pair {
            (Some(_), Some(0)) => Err(division_by_zero()),
            // Both are read at the same scale (coerce_types), so the
            // quotient of the raw values is the quotient of the numbers.
            (Some(y), Some(x)) => y
                .checked_div(x)
                .map(Some)
                .ok_or_else(|| out_of_range("numeric")),
            _ => Ok(None),
        })
        .collect::<Result<_, EngineError>>()?;
    let numeric = quotients.with_precision_and_scale(DECIMAL128_MAX_PRECISION, 0)?;
    Ok(Arc::new(numeric))
}

/// The bucket above the range, `count + 1`; a count below 1 is refused.
fn above_range(count: i32) -> Result<i32, EngineError> {
    if count <= 0 {
        return Err(EngineError::new("2201G", "count must be greater than zero"));
    }
    count.checked_add(1).ok_or_else(|| out_of_range("integer"))
}

fn width_bucket(
    operand: &ArrayRef,
    low: &ArrayRef,
    high: &ArrayRef,
    count: &ArrayRef,
) -> DfResult<ArrayRef> {
    let count = count.as_primitive::<Int32Type>();
    let rows = count.len();
    let mut out = Vec::with_capacity(rows);
    if operand.data_type() == &DataType::Float64 {
        let (o, l, h) = (
            operand.as_primitive::<Float64Type>(),
            low.as_primitive::<Float64Type>(),
            high.as_primitive::<Float64Type>(),
        );
        for row in 0..rows {
            if o.is_null(row) || l.is_null(row) || h.is_null(row) || count.is_null(row) {
                out.push(None);
                continue;
            }
            let bucket = float_bucket(o.value(row), l.value(row), h.value(row), count.value(row))?;
            out.push(Some(bucket));
        }
    } else {
        let (o, l, h) = (
            operand.as_primitive::<Decimal128Type>(),
            low.as_primitive::<Decimal128Type>(),
            high.as_primitive::<Decimal128Type>(),
        );
        for row in 0..rows {
            if o.is_null(row) || l.is_null(row) || h.is_null(row) || count.is_null(row) {
                out.push(None);
                continue;
            }
            let bucket = exact_bucket(o.value(row), l.value(row), h.value(row), count.value(row))?;
            out.push(Some(bucket));
        }
    }
    Ok(Arc::new(Int32Array::from(out)))
}

/// `width_bucket` of three numbers at one scale, exactly.
fn exact_bucket(operand: i128, low: i128, high: i128, count: i32) -> Result<i32, EngineError> {
    if count <= 0 {
        return above_range(count);
    }
    if low == high {
        return Err(EngineError::new(
            "2201G",
            "lower bound cannot equal upper bound",
        ));
    }
    // Differences of 38-digit numbers, and their products with the count,
    // fit in 256 bits.
    let (operand, low, high) = (
        i256::from_i128(operand),
        i256::from_i128(low),
        i256::from_i128(high),
    );
    let (offset, width) = if low < high {
        if operand < low {
            return Ok(0);
        }
        if operand >= high {
            return above_range(count);
        }
        (operand.wrapping_sub(low), high.wrapping_sub(low))
    } else {
        if operand > low {
            return Ok(0);
        }
        if operand <= high {
            return above_range(count);
        }
        (low.wrapping_sub(operand), low.wrapping_sub(high))
    };
    // offset < width, so the quotient is below count and fits.
    let quotient = offset.wrapping_mul(i256::from(count)).wrapping_div(width);
    quotient
        .to_i128()
        .and_then(|q| i32::try_from(q + 1).ok())
        .ok_or_else(|| out_of_range("integer"))
}

/// `width_bucket` in `double precision`, as PostgreSQL's float8 form.
fn float_bucket(operand: f64, low: f64, high: f64, count: i32) -> Result<i32, EngineError> {
    if count <= 0 {
        return above_range(count);
    }
    if operand.is_nan() || low.is_nan() || high.is_nan() {
        return Err(EngineError::new(
            "2201G",
            "operand, lower bound, and upper bound cannot be NaN",
        ));
    }
    if low.is_infinite() || high.is_infinite() {
        return Err(EngineError::new(
            "2201G",
            "lower and upper bounds must be finite",
        ));
    }
    if low == high {
        return Err(EngineError::new(
            "2201G",
            "lower bound cannot equal upper bound",
        ));
    }
    let (offset, width) = if low < high {
        if operand < low {
            return Ok(0);
        }
        if operand >= high {
            return above_range(count);
        }
        (operand - low, high - low)
    } else {
        if operand > low {
            return Ok(0);
        }
        if operand <= high {
            return above_range(count);
        }
        (low - operand, low - high)
    };
    // PostgreSQL 15's order of operations, truncated as C truncates.
    let bucket = f64::from(count) * offset / width + 1.0;
    // Bounds far apart overflow the arithmetic, where PostgreSQL 15
    // returns whatever the conversion of Infinity or NaN gives.
    if !bucket.is_finite() {
        return Err(out_of_range("integer"));
    }
    Ok(bucket as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_buckets_are_postgresqls() {
        // (operand, low, high, count) at scale 1, and PostgreSQL 15's answer.
        for (operand, low, high, count, expected) in [
            (50, 0, 100, 4, 3),
            (3, 1, 4, 3, 3),
            (100, 0, 100, 4, 5),
            (-10, 0, 100, 4, 0),
            (50, 100, 0, 4, 3),
            (100, 100, 0, 4, 1),
            (0, 100, 0, 4, 5),
            (50, 0, 100, i32::MAX, 1_073_741_824),
            (110, 0, 100, i32::MAX - 1, i32::MAX),
        ] {
            assert_eq!(
                exact_bucket(operand, low, high, count).expect("answers"),
                expected,
                "{operand} {low} {high} {count}"
            );
        }
        assert_eq!(
            exact_bucket(110, 0, 100, i32::MAX)
                .expect_err("count + 1")
                .sqlstate(),
            "22003"
        );
        assert_eq!(
            exact_bucket(1, 1, 1, 1).expect_err("equal").sqlstate(),
            "2201G"
        );
        assert_eq!(
            exact_bucket(1, 0, 2, 0).expect_err("count").sqlstate(),
            "2201G"
        );
    }

    #[test]
    fn float_buckets_are_postgresqls() {
        for (operand, low, high, count, expected) in [
            (0.3, 0.1, 0.4, 3, 2),
            (0.7, 0.1, 1.0, 3, 3),
            (5.0, 0.0, 10.0, 3, 2),
            (5.0, 10.0, 0.0, 4, 3),
            (0.999_999_999_999_999_9, 0.0, 1.0, 10, 10),
            (f64::MAX, -f64::MAX, f64::MAX, 10, 11),
        ] {
            assert_eq!(
                float_bucket(operand, low, high, count).expect("answers"),
                expected,
                "{operand} {low} {high} {count}"
            );
        }
        // PostgreSQL 15 answers -2147483648 for the last one.
        assert_eq!(
            float_bucket(0.0, -f64::MAX, f64::MAX, 10)
                .expect_err("overflows")
                .sqlstate(),
            "22003"
        );
        for (operand, low, high) in [(f64::NAN, 0.0, 1.0), (1.0, 0.0, f64::INFINITY)] {
            assert_eq!(
                float_bucket(operand, low, high, 2)
                    .expect_err("refused")
                    .sqlstate(),
                "2201G"
            );
        }
    }
}
