//! The aggregate behind `ARRAY(SELECT …)`.
//!
//! `pg_compat` plans `ARRAY(SELECT x FROM … ORDER BY k)` as the scalar
//! subquery `(SELECT freshet_array_of_rows(x ORDER BY k) FROM …)`, which
//! DataFusion can plan and decorrelate. `array_agg` would do, except that
//! it answers NULL for no rows, where `ARRAY(SELECT …)` of no rows is the
//! empty array `{}`: psql's `\du` printed nothing in "Member of" for a
//! role without memberships, and `ARRAY(SELECT …) IS NULL` was true.
//! [`ArrayOfRows`] is `array_agg` with the empty array as its value for no
//! rows, both when it runs over an empty input and when a decorrelated
//! subquery finds no match (DataFusion asks the aggregate's
//! `default_value`).

use std::sync::Arc;

use datafusion::arrow::array::{new_empty_array, Array, ArrayRef, ListArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Signature};

/// The aggregate's name, as the rewrite of `ARRAY(SELECT …)` calls it.
pub(crate) const ARRAY_OF_ROWS: &str = "freshet_array_of_rows";

/// Registers [`ArrayOfRows`].
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udaf(AggregateUDF::new_from_impl(ArrayOfRows::default()));
}

/// `array_agg`, but `{}` rather than NULL for no rows.
#[derive(Debug, Default, PartialEq, Eq, Hash)]
struct ArrayOfRows {
    inner: datafusion::functions_aggregate::array_agg::ArrayAgg,
}

/// The empty list of type `data_type`, or `value` unchanged if it is not a
/// NULL list.
fn empty_if_null(value: ScalarValue, data_type: &DataType) -> DfResult<ScalarValue> {
    match (&value, data_type) {
        (ScalarValue::List(list), DataType::List(item)) if list.is_null(0) => {
            Ok(ScalarValue::List(Arc::new(ListArray::try_new(
                item.clone(),
                OffsetBuffer::from_lengths([0]),
                new_empty_array(item.data_type()),
                None,
            )?)))
        }
        _ => Ok(value),
    }
}

impl AggregateUDFImpl for ArrayOfRows {
    fn name(&self) -> &str {
        ARRAY_OF_ROWS
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn accumulator(&self, acc_args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        let data_type = acc_args.return_field.data_type().clone();
        Ok(Box::new(EmptyForNoRows {
            inner: self.inner.accumulator(acc_args)?,
            data_type,
        }))
    }

    fn supports_null_handling_clause(&self) -> bool {
        self.inner.supports_null_handling_clause()
    }

    fn default_value(&self, data_type: &DataType) -> DfResult<ScalarValue> {
        empty_if_null(ScalarValue::try_from(data_type)?, data_type)
    }
}

/// An `array_agg` accumulator whose NULL answer (no rows) becomes `{}`.
#[derive(Debug)]
struct EmptyForNoRows {
    inner: Box<dyn Accumulator>,
    data_type: DataType,
}

impl Accumulator for EmptyForNoRows {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.inner.update_batch(values)
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        empty_if_null(self.inner.evaluate()?, &self.data_type)
    }

    fn size(&self) -> usize {
        self.inner.size()
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        self.inner.state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        self.inner.merge_batch(states)
    }
}
