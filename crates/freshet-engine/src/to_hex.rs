//! `to_hex` as PostgreSQL computes it.
//!
//! PostgreSQL has `to_hex(integer)` and `to_hex(bigint)`: a negative
//! `integer` (or `smallint`, which is widened to `integer`) prints its 32-bit
//! two's complement, `to_hex(-1)` is `ffffffff`. DataFusion's `to_hex`
//! widens every integer to 64 bits first and printed `ffffffffffffffff`, a
//! wrong value without an error. [`ToHex`] replaces it under the same name.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Int32Type, Int64Type};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

/// Registers [`ToHex`] in place of DataFusion's `to_hex`.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(ToHex {
        signature: Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Int32]),
                TypeSignature::Exact(vec![DataType::Int64]),
            ],
            Volatility::Immutable,
        ),
    }));
}

/// `to_hex(integer)` in 32 bits and `to_hex(bigint)` in 64, as PostgreSQL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToHex {
    signature: Signature,
}

impl ScalarUDFImpl for ToHex {
    fn name(&self) -> &str {
        "to_hex"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        crate::udf_args::evaluate(&args.args, |arrays| {
            let [value] = arrays else {
                return Err(DataFusionError::Plan(
                    "to_hex takes one argument".to_owned(),
                ));
            };
            let out: StringArray = match value.data_type() {
                DataType::Int32 => value
                    .as_primitive::<Int32Type>()
                    .iter()
                    .map(|v| v.map(|v| format!("{:x}", v as u32)))
                    .collect(),
                DataType::Int64 => value
                    .as_primitive::<Int64Type>()
                    .iter()
                    .map(|v| v.map(|v| format!("{:x}", v as u64)))
                    .collect(),
                other => {
                    return Err(DataFusionError::Plan(format!(
                        "function to_hex({other}) does not exist"
                    )))
                }
            };
            Ok(Arc::new(out) as ArrayRef)
        })
    }
}
