//! `avg` of integers and numerics, as PostgreSQL computes it: an exact
//! `numeric`.
//!
//! DataFusion's `avg` of an integer column is a `double precision`, so
//! `avg` of 1, 2 and 4 was 2.3333333333333335 (the double nearest 7/3,
//! printed in full) where PostgreSQL answers 2.3333333333333333, and an
//! average of bigints past 2^53 lost its last digits: the mean of two
//! 9007199254740993s was 9007199254740992. Its `avg` of a `numeric(p,s)`
//! kept `s + 4` decimals, truncated: of 1.00, 1.00 and 2.00 it was 1.333333.
//! PostgreSQL adds the values exactly and divides the sum by the count as
//! `numeric`, rounding half away from zero.
//!
//! [`ExactAvg`] does the same: it keeps each group's sum in 128 bits and its
//! count, and its result is the quotient rounded half away from zero to
//! [`MIN_SCALE`] decimals, or the input's own scale if larger: a
//! `numeric(38,16)` for integers. PostgreSQL picks a display scale for
//! each value (16 decimals for a mean between 1 and 10000, more below,
//! fewer above); a column has one type, so Freshet always gives the scale
//! of the common case, as it does for `numeric / numeric` (see
//! `float_ops::numeric_division_scale`). Every digit shown is right; a mean
//! below 1 shows 4 fewer than PostgreSQL, and one of 10000 or more shows
//! some more.
//!
//! [`replace`] puts it in place of a plain (not DISTINCT) `avg` of a
//! `smallint`, `integer`, `bigint` or `numeric`, for `aggregate_results`'
//! analyzer rule (before type coercion), in queries and window functions
//! alike; `avg(DISTINCT …)` keeps DataFusion's. An incremental dynamic table
//! keeps each group's sum and count and takes the same [`mean_of`] them.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef, Int64Type};
use datafusion::common::{DFSchema, DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, Expr, ExprSchemable, GroupsAccumulator,
    ReversedUDAF, Signature, Volatility,
};

/// Decimals of the result, at least.
const MIN_SCALE: i8 = 16;

/// The scale of the mean of values of scale `input`.
fn result_scale(input: i8) -> i8 {
    input.max(MIN_SCALE)
}

/// The result's type for an argument of `input`'s type, if it is one
/// [`ExactAvg`] takes.
pub(crate) fn result_type(input: &DataType) -> Option<DataType> {
    input_scale(input).map(|s| DataType::Decimal128(38, result_scale(s)))
}

/// The scale of an argument of type `input`: 0 for integers.
fn input_scale(input: &DataType) -> Option<i8> {
    match input {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => Some(0),
        DataType::Decimal128(_, s) if (0..=38).contains(s) => Some(*s),
        _ => None,
    }
}

/// `expr` with [`ExactAvg`] in place of a plain `avg` of an integer or
/// numeric argument, for an analyzer rule that runs before type coercion;
/// `None` for any other expression.
pub(crate) fn replace(expr: &Expr, schema: &DFSchema) -> Option<Expr> {
    let takes = |args: &[Expr]| matches!(args, [arg] if arg.get_type(schema).is_ok_and(|t| input_scale(&t).is_some()));
    crate::aggregate_results::replace_aggregate(expr, "avg", takes, exact_avg_udaf())
}

fn exact_avg_udaf() -> Arc<AggregateUDF> {
    static UDAF: OnceLock<Arc<AggregateUDF>> = OnceLock::new();
    UDAF.get_or_init(|| {
        Arc::new(AggregateUDF::new_from_impl(ExactAvg {
            signature: Signature::user_defined(Volatility::Immutable),
        }))
    })
    .clone()
}

/// The scale of the values an accumulator is given.
fn scale_of(args: &AccumulatorArgs) -> DfResult<i8> {
    args.expr_fields
        .first()
        .and_then(|f| input_scale(f.data_type()))
        .ok_or_else(|| DataFusionError::Internal("avg of an unexpected type".into()))
}

/// The mean of values of scale `scale` whose unscaled sum is `sum`, rounded
/// half away from zero to [`result_scale`] decimals, as that numeric's
/// unscaled value; `None` for no values. 22003 when it does not fit in 38
/// digits (a mean of bigints always does).
fn mean(sum: i128, count: u64, scale: i8) -> DfResult<Option<i128>> {
    if count == 0 {
        return Ok(None);
    }
    let shift = u32::try_from(result_scale(scale) - scale).map_err(|_| out_of_range())?;
    let unit = 10u128.pow(shift);
    let count = u128::from(count);
    let (whole, rest) = (sum.unsigned_abs() / count, sum.unsigned_abs() % count);
    // rest < count <= 2^64 and unit <= 10^16 < 2^54: no overflow.
    let scaled = rest * unit;
    let mut fraction = scaled / count;
    if (scaled % count) * 2 >= count {
        fraction += 1;
    }
    let magnitude = whole
        .checked_mul(unit)
        .and_then(|w| w.checked_add(fraction))
        .filter(|m| *m < 10u128.pow(38))
        .ok_or_else(out_of_range)?;
    let magnitude = i128::try_from(magnitude).map_err(|_| out_of_range())?;
    Ok(Some(if sum < 0 { -magnitude } else { magnitude }))
}

/// The mean from an incremental state's sum (a bigint or a numeric) and
/// count, of the type [`result_type`] gives for the sum's type.
pub(crate) fn mean_of(sum: &ScalarValue, count: &ScalarValue) -> DfResult<ScalarValue> {
    let (sum, scale) = match sum {
        ScalarValue::Int64(Some(v)) => (i128::from(*v), 0),
        ScalarValue::Decimal128(Some(v), _, s) => (*v, *s),
        other => {
            return Err(DataFusionError::Internal(format!(
                "an average's state holds a sum of {other:?}"
            )))
        }
    };
    let count = match count {
        ScalarValue::Int64(Some(n)) => u64::try_from(*n).unwrap_or(0),
        other => {
            return Err(DataFusionError::Internal(format!(
                "an average's state holds a count of {other:?}"
            )))
        }
    };
    Ok(ScalarValue::Decimal128(
        mean(sum, count, scale)?,
        38,
        result_scale(scale),
    ))
}

fn out_of_range() -> DataFusionError {
    crate::EngineError::new("22003", "numeric field overflow").into()
}

/// `avg` of bigints (smaller integers are cast to bigint) or numerics, an
/// exact numeric. Named `avg`, as the column a client sees is. Its result's
/// scale follows the argument's type as it is when the plan runs (a
/// numeric division's is only settled after type coercion).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ExactAvg {
    signature: Signature,
}

impl AggregateUDFImpl for ExactAvg {
    fn name(&self) -> &str {
        "avg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> DfResult<Vec<DataType>> {
        match args {
            [t] if t.is_integer() && input_scale(t).is_some() => Ok(vec![DataType::Int64]),
            [t @ DataType::Decimal128(..)] if input_scale(t).is_some() => Ok(vec![t.clone()]),
            _ => Err(DataFusionError::Plan(format!(
                "avg of integers or numerics was given {args:?}"
            ))),
        }
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        args.first()
            .and_then(result_type)
            .ok_or_else(|| DataFusionError::Plan(format!("avg was given {args:?}")))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(AvgAccumulator {
            scale: scale_of(&args)?,
            sum: 0,
            count: 0,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[sum]", args.name),
                DataType::Decimal128(38, 0),
                true,
            )),
            Arc::new(Field::new(
                format!("{}[count]", args.name),
                DataType::UInt64,
                true,
            )),
        ])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> DfResult<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(AvgGroups {
            scale: scale_of(&args)?,
            sums: Vec::new(),
            counts: Vec::new(),
        }))
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }

    // Integer sums are exact in any order.
    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }
}

/// The argument's values, unscaled: bigints or numerics.
fn unscaled(values: &ArrayRef) -> DfResult<Box<dyn Iterator<Item = Option<i128>> + '_>> {
    if let Some(bigints) = values.as_primitive_opt::<Int64Type>() {
        return Ok(Box::new(bigints.iter().map(|v| v.map(i128::from))));
    }
    if let Some(numerics) = values.as_primitive_opt::<Decimal128Type>() {
        return Ok(Box::new(numerics.iter()));
    }
    Err(DataFusionError::Internal(format!(
        "avg was given values of {}",
        values.data_type()
    )))
}

fn add(total: i128, value: i128) -> DfResult<i128> {
    total.checked_add(value).ok_or_else(out_of_range)
}

fn result(sum: i128, count: u64, scale: i8) -> DfResult<ScalarValue> {
    Ok(ScalarValue::Decimal128(
        mean(sum, count, scale)?,
        38,
        result_scale(scale),
    ))
}

/// The state columns: sums as `numeric(38,0)` and counts.
fn state_arrays(sums: Vec<i128>, counts: Vec<u64>) -> DfResult<Vec<ArrayRef>> {
    let sums = Decimal128Array::from(sums).with_precision_and_scale(38, 0)?;
    Ok(vec![Arc::new(sums), Arc::new(UInt64Array::from(counts))])
}

fn state_columns(states: &[ArrayRef]) -> DfResult<(&Decimal128Array, &UInt64Array)> {
    match states {
        [sums, counts] => Ok((
            sums.as_primitive_opt::<Decimal128Type>()
                .ok_or_else(|| DataFusionError::Internal("avg state: sums".into()))?,
            counts
                .as_primitive_opt::<datafusion::arrow::datatypes::UInt64Type>()
                .ok_or_else(|| DataFusionError::Internal("avg state: counts".into()))?,
        )),
        _ => Err(DataFusionError::Internal(
            "avg of integers has a state of two columns".into(),
        )),
    }
}

/// One group's (or window frame's) sum and count.
#[derive(Debug)]
struct AvgAccumulator {
    scale: i8,
    sum: i128,
    count: u64,
}

impl Accumulator for AvgAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        for value in unscaled(&values[0])?.flatten() {
            self.sum = add(self.sum, value)?;
            self.count += 1;
        }
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        for value in unscaled(&values[0])?.flatten() {
            self.sum = add(self.sum, -value)?;
            self.count = self.count.saturating_sub(1);
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        result(self.sum, self.count, self.scale)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Decimal128(Some(self.sum), 38, 0),
            ScalarValue::UInt64(Some(self.count)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let (sums, counts) = state_columns(states)?;
        for i in 0..sums.len() {
            if sums.is_valid(i) && counts.is_valid(i) {
                self.sum = add(self.sum, sums.value(i))?;
                self.count += counts.value(i);
            }
        }
        Ok(())
    }
}

/// Many groups' sums and counts.
struct AvgGroups {
    scale: i8,
    sums: Vec<i128>,
    counts: Vec<u64>,
}

impl AvgGroups {
    fn resize(&mut self, groups: usize) {
        self.sums.resize(groups, 0);
        self.counts.resize(groups, 0);
    }
}

impl GroupsAccumulator for AvgGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.resize(total_num_groups);
        for (i, (group, value)) in group_indices.iter().zip(unscaled(&values[0])?).enumerate() {
            let kept = opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i));
            if let (true, Some(value)) = (kept, value) {
                self.sums[*group] = add(self.sums[*group], value)?;
                self.counts[*group] += 1;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        let sums = emit_to.take_needed(&mut self.sums);
        let counts = emit_to.take_needed(&mut self.counts);
        let means = sums
            .into_iter()
            .zip(counts)
            .map(|(sum, count)| mean(sum, count, self.scale))
            .collect::<DfResult<Decimal128Array>>()?
            .with_precision_and_scale(38, result_scale(self.scale))?;
        Ok(Arc::new(means))
    }

    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        let sums = emit_to.take_needed(&mut self.sums);
        let counts = emit_to.take_needed(&mut self.counts);
        state_arrays(sums, counts)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.resize(total_num_groups);
        let (sums, counts) = state_columns(values)?;
        for (i, group) in group_indices.iter().enumerate() {
            if sums.is_valid(i) && counts.is_valid(i) {
                self.sums[*group] = add(self.sums[*group], sums.value(i))?;
                self.counts[*group] += counts.value(i);
            }
        }
        Ok(())
    }

    /// Each row as a group of its own (when DataFusion skips partial
    /// aggregation).
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DfResult<Vec<ArrayRef>> {
        let (sums, counts): (Vec<i128>, Vec<u64>) = unscaled(&values[0])?
            .enumerate()
            .map(|(i, value)| {
                let kept = opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i));
                match (kept, value) {
                    (true, Some(value)) => (value, 1),
                    _ => (0, 0),
                }
            })
            .unzip();
        state_arrays(sums, counts)
    }

    fn size(&self) -> usize {
        self.sums.capacity() * std::mem::size_of::<i128>()
            + self.counts.capacity() * std::mem::size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;

    fn shown(sum: i128, count: u64, scale: i8) -> String {
        result(sum, count, scale).unwrap().to_string()
    }

    #[test]
    fn rounds_half_away_from_zero_at_sixteen_decimals() {
        assert_eq!(shown(7, 3, 0), "2.3333333333333333");
        assert_eq!(shown(3, 2, 0), "1.5000000000000000");
        assert_eq!(shown(2, 3, 0), "0.6666666666666667");
        assert_eq!(shown(-2, 3, 0), "-0.6666666666666667");
        assert_eq!(shown(-7, 2, 0), "-3.5000000000000000");
        assert_eq!(
            shown(2 * 9_007_199_254_740_993, 2, 0),
            "9007199254740993.0000000000000000"
        );
        assert_eq!(
            shown(i128::from(i64::MAX) * 3, 3, 0),
            "9223372036854775807.0000000000000000"
        );
        assert_eq!(mean(0, 0, 0).unwrap(), None);
    }

    #[test]
    fn numerics_keep_their_own_scale_past_sixteen() {
        // 1.00, 1.00 and 2.00: an unscaled sum of 400 at scale 2.
        assert_eq!(shown(400, 3, 2), "1.3333333333333333");
        assert_eq!(shown(2, 3, 20), "0.00000000000000000001");
        assert!(mean(10i128.pow(37), 1, 0).is_err());
    }

    #[test]
    fn groups_and_partial_states_agree() {
        let values: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(2), Some(4)]));
        let mut groups = AvgGroups {
            scale: 0,
            sums: Vec::new(),
            counts: Vec::new(),
        };
        groups
            .update_batch(std::slice::from_ref(&values), &[0, 0, 1, 0], None, 2)
            .unwrap();
        let state = groups.state(EmitTo::All).unwrap();
        let mut merged = AvgAccumulator {
            scale: 0,
            sum: 0,
            count: 0,
        };
        merged.merge_batch(&state).unwrap();
        assert_eq!(merged.evaluate().unwrap(), result(7, 3, 0).unwrap());
    }
}
