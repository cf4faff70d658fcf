//! `a && b` of arrays as PostgreSQL answers it: whether the two arrays
//! share an element.
//!
//! NULL elements never match (PostgreSQL compares elements with `=`), so
//! `ARRAY[1, NULL] && ARRAY[NULL]` is false, where DataFusion's
//! `array_has_any` finds the two NULLs equal. A NULL array gives NULL.
//! `pg_compat` rewrites `&&` (which DataFusion cannot plan) into
//! `freshet_array_overlap(a, b)`.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Name of the function `a && b` is rewritten to.
pub(crate) const ARRAY_OVERLAP: &str = "freshet_array_overlap";

/// Registers [`ArrayOverlap`].
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(ArrayOverlap {
        signature: Signature::any(2, Volatility::Immutable),
    }));
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ArrayOverlap {
    signature: Signature,
}

impl ScalarUDFImpl for ArrayOverlap {
    fn name(&self) -> &str {
        ARRAY_OVERLAP
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> DfResult<Vec<DataType>> {
        // Both sides as lists of one element type, as `=` would compare them.
        let item = |t: &DataType| match t {
            DataType::List(item) | DataType::LargeList(item) => Some(item.data_type().clone()),
            DataType::Null => Some(DataType::Null),
            _ => None,
        };
        let (Some(left), Some(right)) = (args.first().and_then(item), args.get(1).and_then(item))
        else {
            return Err(DataFusionError::Plan(
                "operator does not exist: && takes two arrays".into(),
            ));
        };
        let common =
            datafusion::logical_expr::type_coercion::binary::comparison_coercion(&left, &right)
                .ok_or_else(|| {
                    DataFusionError::Plan(format!("operator does not exist: {left}[] && {right}[]"))
                })?;
        Ok(vec![
            DataType::new_list(common.clone(), true),
            DataType::new_list(common, true),
        ])
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        crate::udf_args::evaluate(&args.args, |arrays| {
            let [left, right] = arrays else {
                return Err(DataFusionError::Internal(format!(
                    "{ARRAY_OVERLAP} takes two arguments"
                )));
            };
            let (left, right) = (left.as_list::<i32>(), right.as_list::<i32>());
            let mut out = Vec::with_capacity(left.len());
            for row in 0..left.len() {
                if left.is_null(row) || right.is_null(row) {
                    out.push(None);
                    continue;
                }
                let elements = |values: ArrayRef| -> DfResult<Vec<ScalarValue>> {
                    (0..values.len())
                        .filter(|&i| values.is_valid(i))
                        .map(|i| ScalarValue::try_from_array(&values, i))
                        .collect()
                };
                let seen: HashSet<ScalarValue> = elements(left.value(row))?.into_iter().collect();
                let shared = elements(right.value(row))?.iter().any(|v| seen.contains(v));
                out.push(Some(shared));
            }
            Ok(Arc::new(BooleanArray::from(out)) as ArrayRef)
        })
    }
}
