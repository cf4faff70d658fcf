//! `array_dims` as PostgreSQL answers it.
//!
//! PostgreSQL's `array_dims(anyarray)` is text naming each dimension's
//! bounds: `array_dims(ARRAY[1,2,3])` is `[1:3]`, of a 2×3 array
//! `[1:2][1:3]`, NULL for an empty or NULL array. DataFusion's function of
//! the same name returns the list of lengths, `{3}`: a wrong value without
//! an error. [`ArrayDims`] replaces it under the same name. Arrays here
//! always start at 1, so the lower bound is 1.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Registers [`ArrayDims`] in place of DataFusion's `array_dims`.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(ArrayDims {
        signature: Signature::any(1, Volatility::Immutable),
    }));
}

/// `array_dims(anyarray)`: `[1:n]` per dimension.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ArrayDims {
    signature: Signature,
}

/// Whether `data_type` is an array type.
fn is_list(data_type: &DataType) -> bool {
    matches!(data_type, DataType::List(_) | DataType::LargeList(_))
}

/// The lengths of `array`'s dimensions, read from its first element at each
/// level (PostgreSQL's arrays are rectangular).
fn dimensions(array: ArrayRef) -> DfResult<Vec<usize>> {
    let mut dims = vec![array.len()];
    let mut current = array;
    while is_list(current.data_type()) && !current.is_empty() && current.is_valid(0) {
        let inner = datafusion::arrow::compute::cast(
            &current,
            &DataType::new_list(list_item(current.data_type())?, true),
        )?;
        current = inner.as_list::<i32>().value(0);
        dims.push(current.len());
    }
    Ok(dims)
}

/// The element type of a list type.
fn list_item(data_type: &DataType) -> DfResult<DataType> {
    match data_type {
        DataType::List(item) | DataType::LargeList(item) => Ok(item.data_type().clone()),
        other => Err(DataFusionError::Plan(format!(
            "function array_dims(anyarray) does not take {other}"
        ))),
    }
}

impl ScalarUDFImpl for ArrayDims {
    fn name(&self) -> &str {
        "array_dims"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        match args {
            [DataType::Null] => Ok(DataType::Utf8),
            [list] => list_item(list).map(|_| DataType::Utf8),
            _ => Err(DataFusionError::Plan(
                "array_dims takes one argument".into(),
            )),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = crate::udf_args::arrays(&args)?;
        let [input] = arrays.as_slice() else {
            return Err(DataFusionError::Plan(
                "array_dims takes one argument".into(),
            ));
        };
        if *input.data_type() == DataType::Null {
            return Ok(ColumnarValue::Array(Arc::new(StringArray::new_null(
                input.len(),
            ))));
        }
        let lists = datafusion::arrow::compute::cast(
            input,
            &DataType::new_list(list_item(input.data_type())?, true),
        )?;
        let lists = lists.as_list::<i32>();
        let mut out = Vec::with_capacity(lists.len());
        for i in 0..lists.len() {
            if lists.is_null(i) {
                out.push(None);
                continue;
            }
            let dims = dimensions(lists.value(i))?;
            out.push(
                (dims.first() != Some(&0))
                    .then(|| dims.iter().map(|d| format!("[1:{d}]")).collect::<String>()),
            );
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}
