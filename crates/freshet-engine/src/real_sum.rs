//! `sum` of `real` values, as PostgreSQL computes it: a `real`.
//!
//! DataFusion's `sum` takes a `real` (Float32) argument as a `double
//! precision` one and answers a double, so `sum` of the reals 0.1 and 0.2
//! was 0.30000000447034836 (the exact sum of the two single-precision
//! values) where PostgreSQL answers 0.3, and clients were told the column
//! is `float8`. PostgreSQL's `sum(real)` returns `real`: its transition
//! function `float4pl` adds in single precision, and raises 22003 where two
//! finite values add up to infinity. So does [`RealSum`], in a query's
//! `GROUP BY` and as a window function (where a moving frame's rows are
//! added again from its first row for each result, as in PostgreSQL, which
//! has no inverse for it).
//!
//! [`replace`], for `aggregate_results`' analyzer rule, which runs before
//! type coercion (while a `real` argument is still one), puts it in place of
//! a plain `sum` whose argument is a `real`. `sum(DISTINCT x)` of reals is
//! still DataFusion's, a double: a known difference (docs/sql.md).

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float32Type};
use datafusion::common::{DFSchema, DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Expr, ExprSchemable, ReversedUDAF, Signature,
    Volatility,
};

/// `expr` with [`RealSum`] in place of a `sum` of a `real` argument (see
/// the module docs), for an analyzer rule that runs before type coercion;
/// `None` for any other expression.
pub(crate) fn replace(expr: &Expr, schema: &DFSchema) -> Option<Expr> {
    let is_real = |args: &[Expr]| matches!(args, [arg] if arg.get_type(schema).is_ok_and(|t| t == DataType::Float32));
    crate::aggregate_results::replace_aggregate(expr, "sum", is_real, real_sum_udaf())
}

/// The one [`RealSum`] function.
fn real_sum_udaf() -> Arc<AggregateUDF> {
    static UDAF: OnceLock<Arc<AggregateUDF>> = OnceLock::new();
    UDAF.get_or_init(|| {
        Arc::new(AggregateUDF::new_from_impl(RealSum {
            signature: Signature::exact(vec![DataType::Float32], Volatility::Immutable),
        }))
    })
    .clone()
}

/// `sum(real)`: PostgreSQL's `float4pl` over the values, a `real`. Named
/// `sum`, so the column a client sees is named as PostgreSQL names it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RealSum {
    signature: Signature,
}

impl AggregateUDFImpl for RealSum {
    fn name(&self) -> &str {
        "sum"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float32)
    }

    /// For a `GROUP BY` and a window frame that only grows: the running sum.
    fn accumulator(&self, _args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(RunningSum { sum: None }))
    }

    /// For a moving window frame: its values, added again per result.
    fn create_sliding_accumulator(&self, _args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(FrameSum {
            frame: VecDeque::new(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[sum]", args.name),
            DataType::Float32,
            true,
        ))])
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }

    // Rows are added in the frame's order, as in PostgreSQL: a reversed
    // evaluation would round differently.
    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::NotSupported
    }
}

/// `float4pl`: a single-precision sum, with PostgreSQL's overflow error for
/// finite operands.
fn float4pl(a: f32, b: f32) -> DfResult<f32> {
    let sum = a + b;
    if sum.is_infinite() && a.is_finite() && b.is_finite() {
        return Err(crate::float_domain::overflow());
    }
    Ok(sum)
}

/// Adds `value` to a sum that is NULL until its first value.
fn add(sum: Option<f32>, value: f32) -> DfResult<Option<f32>> {
    Ok(Some(match sum {
        None => value,
        Some(sum) => float4pl(sum, value)?,
    }))
}

fn reals(values: &ArrayRef) -> DfResult<impl Iterator<Item = f32> + '_> {
    let values = values.as_primitive_opt::<Float32Type>().ok_or_else(|| {
        DataFusionError::Internal("sum(real) was given a value that is not a real".into())
    })?;
    Ok(values.iter().flatten())
}

#[derive(Debug)]
struct RunningSum {
    sum: Option<f32>,
}

impl Accumulator for RunningSum {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        for value in reals(&values[0])? {
            self.sum = add(self.sum, value)?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(ScalarValue::Float32(self.sum))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Float32(self.sum)])
    }

    /// Partial sums add up with `float4pl`, PostgreSQL's combine function.
    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        self.update_batch(states)
    }
}

/// A moving frame's values that count (not NULL), in order.
#[derive(Debug)]
struct FrameSum {
    frame: VecDeque<f32>,
}

impl Accumulator for FrameSum {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.frame.extend(reals(&values[0])?);
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let leaving = reals(&values[0])?.count();
        if leaving > self.frame.len() {
            return Err(DataFusionError::Internal(
                "more rows left a window frame than it held".into(),
            ));
        }
        self.frame.drain(..leaving);
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let mut sum = None;
        for value in &self.frame {
            sum = add(sum, *value)?;
        }
        Ok(ScalarValue::Float32(sum))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.frame.capacity() * std::mem::size_of::<f32>()
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Err(DataFusionError::Internal(
            "a window frame's sum has no partial state".into(),
        ))
    }

    fn merge_batch(&mut self, _states: &[ArrayRef]) -> DfResult<()> {
        Err(DataFusionError::Internal(
            "a window frame's sum has no partial state".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Float32Array;

    fn sum(values: &[Option<f32>]) -> DfResult<Option<f32>> {
        let mut running = RunningSum { sum: None };
        running.update_batch(&[Arc::new(Float32Array::from(values.to_vec())) as ArrayRef])?;
        match running.evaluate()? {
            ScalarValue::Float32(sum) => Ok(sum),
            other => panic!("not a real: {other:?}"),
        }
    }

    #[test]
    fn adds_in_single_precision() {
        assert_eq!(sum(&[Some(0.1), Some(0.2)]).unwrap(), Some(0.1f32 + 0.2f32));
        assert_eq!(
            sum(&[Some(16_777_216.0), Some(1.0), Some(1.0)]).unwrap(),
            Some(16_777_216.0)
        );
        assert_eq!(sum(&[None, None]).unwrap(), None);
        assert_eq!(sum(&[]).unwrap(), None);
    }

    #[test]
    fn finite_values_that_overflow_fail_and_infinities_do_not() {
        assert!(sum(&[Some(f32::MAX), Some(f32::MAX)]).is_err());
        assert_eq!(
            sum(&[Some(f32::INFINITY), Some(1.0)]).unwrap(),
            Some(f32::INFINITY)
        );
        assert!(sum(&[Some(f32::NAN), Some(1.0)]).unwrap().unwrap().is_nan());
    }

    #[test]
    fn a_moving_frame_adds_its_rows_again() {
        let column = |v: &[f32]| [Arc::new(Float32Array::from(v.to_vec())) as ArrayRef];
        let mut frame = FrameSum {
            frame: VecDeque::new(),
        };
        frame.update_batch(&column(&[1e20, 1.0, 1.0])).unwrap();
        frame.retract_batch(&column(&[1e20])).unwrap();
        assert_eq!(frame.evaluate().unwrap(), ScalarValue::Float32(Some(2.0)));
    }
}
