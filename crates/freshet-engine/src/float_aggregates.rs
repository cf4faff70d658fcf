//! `sum`, `avg`, `stddev` and `variance` of `double precision` that raise
//! PostgreSQL's overflow error instead of answering `Infinity` or `NaN`.
//!
//! IEEE 754 addition past the largest double gives `Infinity` without an
//! error, so DataFusion's `sum` of `1.5e308` and `1.5e308` is `Infinity`
//! (and `avg` too), and the variance of `1e200` and `-1e200` is `Infinity`.
//! PostgreSQL's `float8pl` and `float8_accum` raise 22003 ("value out of
//! range: overflow") when a sum of finite values is infinite. An infinite or
//! NaN input still gives `Infinity` or `NaN`, as in PostgreSQL.
//!
//! [`checked`] replaces a plain (not DISTINCT) one of these aggregates of a
//! double with [`CheckedFloatAggregate`], which wraps DataFusion's own function:
//! its accumulators are DataFusion's, and beside them it counts each
//! group's inputs that are not finite (one more state column, so partial
//! aggregates merge). A result that is not finite from a group whose inputs
//! all were is the overflow. Window functions are
//! [`crate::float_frames`]'s.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, UInt64Type};
use datafusion::common::{DFSchema, DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, Expr, ExprSchemable, GroupsAccumulator,
    ReversedUDAF, Signature, Volatility,
};

/// The aggregates checked here: each one's result is not finite from finite
/// inputs only where a sum in it overflowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum FloatAggregate {
    Sum,
    Avg,
    StddevSamp,
    StddevPop,
    VarSamp,
    VarPop,
}

impl FloatAggregate {
    /// By DataFusion's name for the function (`stddev_samp` is `stddev`,
    /// `variance` and `var_samp` are `var`).
    fn of(name: &str) -> Option<FloatAggregate> {
        Some(match name {
            "sum" => FloatAggregate::Sum,
            "avg" => FloatAggregate::Avg,
            "stddev" => FloatAggregate::StddevSamp,
            "stddev_pop" => FloatAggregate::StddevPop,
            "var" => FloatAggregate::VarSamp,
            "var_pop" => FloatAggregate::VarPop,
            _ => return None,
        })
    }

    fn udf_name(self) -> &'static str {
        match self {
            FloatAggregate::Sum => "freshet_checked_sum",
            FloatAggregate::Avg => "freshet_checked_avg",
            FloatAggregate::StddevSamp => "freshet_checked_stddev_samp",
            FloatAggregate::StddevPop => "freshet_checked_stddev_pop",
            FloatAggregate::VarSamp => "freshet_checked_var_samp",
            FloatAggregate::VarPop => "freshet_checked_var_pop",
        }
    }
}

/// `expr` with a checked aggregate in place of one of [`FloatAggregate`]'s
/// of a double; `None` for anything else.
pub(crate) fn checked(expr: &Expr, schema: &DFSchema) -> Option<Expr> {
    let Expr::AggregateFunction(call) = expr else {
        return None;
    };
    let kind = FloatAggregate::of(call.func.name())?;
    if call.params.distinct || call.params.args.len() != 1 {
        return None;
    }
    if call.params.args[0].get_type(schema).ok()? != DataType::Float64 {
        return None;
    }
    let udaf = AggregateUDF::new_from_impl(CheckedFloatAggregate {
        kind,
        inner: call.func.clone(),
        signature: Signature::exact(vec![DataType::Float64], Volatility::Immutable),
    });
    Some(Expr::AggregateFunction(AggregateFunction {
        func: Arc::new(udaf),
        params: call.params.clone(),
    }))
}

/// DataFusion's aggregate of a double, checked for overflow.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedFloatAggregate {
    kind: FloatAggregate,
    inner: Arc<AggregateUDF>,
    signature: Signature,
}

impl AggregateUDFImpl for CheckedFloatAggregate {
    fn name(&self) -> &str {
        self.kind.udf_name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(CheckedAccumulator {
            inner: self.inner.inner().accumulator(args)?,
            non_finite: 0,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        let name = args.name;
        let mut fields = self.inner.inner().state_fields(StateFieldsArgs {
            name,
            input_fields: args.input_fields,
            return_field: args.return_field,
            ordering_fields: args.ordering_fields,
            is_distinct: args.is_distinct,
        })?;
        fields.push(Arc::new(Field::new(
            format!("{name}[non_finite]"),
            DataType::UInt64,
            true,
        )));
        Ok(fields)
    }

    // Order-insensitive and reversible as DataFusion's own functions are.
    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.inner().order_sensitivity()
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        match self.inner.inner().reverse_expr() {
            ReversedUDAF::Identical => ReversedUDAF::Identical,
            _ => ReversedUDAF::NotSupported,
        }
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.inner().groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> DfResult<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(CheckedGroups {
            inner: self.inner.inner().create_groups_accumulator(args)?,
            non_finite: Vec::new(),
        }))
    }
}

/// How many of `values`' rows (those `filter` keeps) are set and not finite.
fn non_finite_rows<'a>(
    values: &'a ArrayRef,
    filter: Option<&'a BooleanArray>,
) -> impl Iterator<Item = bool> + 'a {
    let values = values.as_primitive::<Float64Type>();
    (0..values.len()).map(move |i| {
        values.is_valid(i)
            && !values.value(i).is_finite()
            && filter.is_none_or(|f| f.is_valid(i) && f.value(i))
    })
}

fn split_state(states: &[ArrayRef]) -> DfResult<(&ArrayRef, &[ArrayRef])> {
    states
        .split_last()
        .ok_or_else(|| DataFusionError::Internal("a checked float aggregate has no state".into()))
}

/// One group's accumulator.
#[derive(Debug)]
struct CheckedAccumulator {
    inner: Box<dyn Accumulator>,
    non_finite: u64,
}

impl Accumulator for CheckedAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.inner.update_batch(values)?;
        if let Some(values) = values.first() {
            self.non_finite += non_finite_rows(values, None).filter(|b| *b).count() as u64;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let value = self.inner.evaluate()?;
        match value {
            ScalarValue::Float64(Some(x)) if !x.is_finite() && self.non_finite == 0 => {
                Err(crate::float_domain::overflow())
            }
            value => Ok(value),
        }
    }

    fn size(&self) -> usize {
        self.inner.size() + std::mem::size_of::<u64>()
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let mut state = self.inner.state()?;
        state.push(ScalarValue::UInt64(Some(self.non_finite)));
        Ok(state)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let (counts, inner) = split_state(states)?;
        self.inner.merge_batch(inner)?;
        self.non_finite += counts
            .as_primitive::<UInt64Type>()
            .iter()
            .flatten()
            .sum::<u64>();
        Ok(())
    }
}

/// Many groups' accumulators.
struct CheckedGroups {
    inner: Box<dyn GroupsAccumulator>,
    /// Each group's count of inputs that are not finite.
    non_finite: Vec<u64>,
}

impl GroupsAccumulator for CheckedGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.inner
            .update_batch(values, group_indices, opt_filter, total_num_groups)?;
        self.non_finite.resize(total_num_groups, 0);
        if let Some(values) = values.first() {
            for (group, bad) in group_indices
                .iter()
                .zip(non_finite_rows(values, opt_filter))
            {
                if bad {
                    self.non_finite[*group] += 1;
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        let result = self.inner.evaluate(emit_to)?;
        let counts = emit_to.take_needed(&mut self.non_finite);
        let values = result.as_primitive::<Float64Type>();
        for (i, count) in counts.iter().enumerate().take(values.len()) {
            if values.is_valid(i) && !values.value(i).is_finite() && *count == 0 {
                return Err(crate::float_domain::overflow());
            }
        }
        Ok(result)
    }

    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        let mut state = self.inner.state(emit_to)?;
        let counts = emit_to.take_needed(&mut self.non_finite);
        state.push(Arc::new(UInt64Array::from(counts)));
        Ok(state)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DfResult<()> {
        let (counts, inner) = split_state(values)?;
        self.inner
            .merge_batch(inner, group_indices, total_num_groups)?;
        self.non_finite.resize(total_num_groups, 0);
        let counts = counts.as_primitive::<UInt64Type>();
        for (i, group) in group_indices.iter().enumerate() {
            if counts.is_valid(i) {
                self.non_finite[*group] += counts.value(i);
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DfResult<Vec<ArrayRef>> {
        let mut state = self.inner.convert_to_state(values, opt_filter)?;
        let counts: UInt64Array = match values.first() {
            Some(values) => non_finite_rows(values, opt_filter)
                .map(|bad| Some(u64::from(bad)))
                .collect(),
            None => UInt64Array::from(Vec::<u64>::new()),
        };
        state.push(Arc::new(counts));
        Ok(state)
    }

    fn size(&self) -> usize {
        self.inner.size() + self.non_finite.capacity() * std::mem::size_of::<u64>()
    }
}
