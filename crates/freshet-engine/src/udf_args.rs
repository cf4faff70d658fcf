//! Arguments of a scalar function call, as arrays.
//!
//! DataFusion hands a scalar function each argument either as an array or as
//! a scalar standing for every row of the batch. The functions Freshet adds
//! (catalog functions, JSON builders, key hashes, model calls) work row by
//! row over arrays; these helpers expand their arguments once, the same way
//! everywhere.

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs};

/// Every argument, from the first, as an array of the batch's rows.
pub(crate) fn arrays(args: &ScalarFunctionArgs) -> DfResult<Vec<ArrayRef>> {
    arrays_from(&args.args, args.number_rows)
}

/// Each of `values` as an array of `rows` rows.
pub(crate) fn arrays_from(values: &[ColumnarValue], rows: usize) -> DfResult<Vec<ArrayRef>> {
    values.iter().map(|value| value.to_array(rows)).collect()
}

/// An OID argument as one `Option<i32>` per row: NULL, and values no OID
/// can have (outside `i32`), are `None`, which the catalog functions answer
/// with NULL as PostgreSQL does for an OID that names nothing.
pub(crate) fn oids(array: &ArrayRef) -> DfResult<Vec<Option<i32>>> {
    use datafusion::arrow::array::AsArray;
    let wide = datafusion::arrow::compute::cast(array, &DataType::Int64)?;
    Ok(wide
        .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
        .iter()
        .map(|oid| oid.and_then(|o| i32::try_from(o).ok()))
        .collect())
}

/// The only argument of a one-argument function, cast to text, as an array
/// of the batch's rows; `wrong_count` is the error for any other number of
/// arguments.
pub(crate) fn only_argument_as_text(
    args: &ScalarFunctionArgs,
    wrong_count: impl FnOnce() -> DataFusionError,
) -> DfResult<ArrayRef> {
    let [value] = args.args.as_slice() else {
        return Err(wrong_count());
    };
    let array = value.to_array(args.number_rows)?;
    Ok(datafusion::arrow::compute::cast(&array, &DataType::Utf8)?)
}

/// Evaluates a row-by-row function over its arguments as arrays, and answers
/// a scalar when every argument was one (so constants fold to constants).
pub(crate) fn evaluate(
    args: &[ColumnarValue],
    f: impl FnOnce(&[ArrayRef]) -> DfResult<ArrayRef>,
) -> DfResult<ColumnarValue> {
    let scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let out = f(&arrays)?;
    if scalar {
        Ok(ColumnarValue::Scalar(
            datafusion::common::ScalarValue::try_from_array(&out, 0)?,
        ))
    } else {
        Ok(ColumnarValue::Array(out))
    }
}
