//! Arguments of a scalar function call, as arrays.
//!
//! DataFusion hands a scalar function each argument either as an array or as
//! a scalar standing for every row of the batch. The functions Freshet adds
//! (catalog functions, JSON builders, key hashes, model calls) work row by
//! row over arrays; these helpers expand their arguments once, the same way
//! everywhere.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

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

/// A row-by-row function of `arity` arguments over arrays.
#[derive(Debug)]
pub(crate) struct RowFunction {
    name: &'static str,
    arity: usize,
    signature: Signature,
    output: DataType,
    apply: fn(&[ArrayRef]) -> DfResult<ArrayRef>,
}

impl PartialEq for RowFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for RowFunction {}

impl std::hash::Hash for RowFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for RowFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(self.output.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        crate::udf_args::evaluate(&args.args, |arrays| {
            if arrays.len() != self.arity {
                return Err(DataFusionError::Internal(format!(
                    "{} takes {} arguments",
                    self.name, self.arity
                )));
            }
            (self.apply)(arrays)
        })
    }
}

/// The row-by-row function `name` (cached in `cell`): `arity` arguments of
/// any type, an `output` of one type, immutable, `apply` over the arguments
/// as arrays.
pub(crate) fn row_function(
    cell: &'static OnceLock<Arc<ScalarUDF>>,
    name: &'static str,
    arity: usize,
    output: DataType,
    apply: fn(&[ArrayRef]) -> DfResult<ArrayRef>,
) -> Arc<ScalarUDF> {
    cell.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(RowFunction {
            name,
            arity,
            signature: Signature::any(arity, Volatility::Immutable),
            output,
            apply,
        }))
    })
    .clone()
}
