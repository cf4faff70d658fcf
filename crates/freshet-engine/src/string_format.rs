//! `format(formatstr, args...)`, PostgreSQL's string formatting function,
//! as a DataFusion scalar function, and `quote_literal(value)` and
//! `quote_nullable(value)`, which quote one value as `%L` does (a NULL is
//! NULL for `quote_literal` and the text `NULL` for `quote_nullable`).
//!
//! [`crate::pg_format`] does the formatting; this module turns each argument
//! into the text PostgreSQL's output function would print for it (as the
//! `VARIADIC "any"` call does), through [`crate::pg_compat::postgres_text`],
//! with booleans as `t` and `f`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::EngineError;

/// Registers `format`, `quote_literal` and `quote_nullable`.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(Format {
        signature: Signature::variadic_any(Volatility::Immutable),
    }));
    for nullable in [false, true] {
        ctx.register_udf(ScalarUDF::new_from_impl(QuoteLiteral {
            nullable,
            signature: Signature::any(1, Volatility::Immutable),
        }));
    }
}

/// `quote_literal(value)`, or `quote_nullable(value)` when `nullable`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct QuoteLiteral {
    nullable: bool,
    signature: Signature,
}

impl ScalarUDFImpl for QuoteLiteral {
    fn name(&self) -> &str {
        if self.nullable {
            "quote_nullable"
        } else {
            "quote_literal"
        }
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
                return Err(DataFusionError::Internal(format!(
                    "{} takes one argument",
                    self.name()
                )));
            };
            let text = as_text(value)?;
            let text = text.as_string::<i32>();
            let mut out = StringBuilder::with_capacity(text.len(), text.value_data().len() + 8);
            for value in text.iter() {
                match value {
                    Some(value) => out.append_value(crate::pg_format::quote_literal(value)?),
                    None if self.nullable => out.append_value("NULL"),
                    None => out.append_null(),
                }
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        })
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Format {
    signature: Signature,
}

impl ScalarUDFImpl for Format {
    fn name(&self) -> &str {
        "format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        crate::udf_args::evaluate(&args.args, |arrays| {
            let Some((template, values)) = arrays.split_first() else {
                return Err(EngineError::new(
                    "42883",
                    "function format() does not exist; it takes a format string",
                )
                .into());
            };
            let template = datafusion::arrow::compute::cast(template, &DataType::Utf8)?;
            let template = template.as_string::<i32>();
            let texts = values.iter().map(as_text).collect::<DfResult<Vec<_>>>()?;
            let texts: Vec<_> = texts.iter().map(|t| t.as_string::<i32>()).collect();
            let mut out = StringBuilder::with_capacity(template.len(), template.len() * 16);
            let mut row_args: Vec<Option<&str>> = Vec::with_capacity(texts.len());
            for row in 0..template.len() {
                if template.is_null(row) {
                    out.append_null();
                    continue;
                }
                row_args.clear();
                row_args.extend(
                    texts
                        .iter()
                        .map(|t| (!t.is_null(row)).then(|| t.value(row))),
                );
                let formatted = crate::pg_format::pg_format(template.value(row), &row_args)?;
                out.append_value(formatted);
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        })
    }
}

/// An argument as PostgreSQL's output function prints it.
fn as_text(array: &ArrayRef) -> DfResult<ArrayRef> {
    match array.data_type() {
        DataType::Boolean => Ok(Arc::new(
            array
                .as_boolean()
                .iter()
                .map(|b| b.map(|b| if b { "t" } else { "f" }))
                .collect::<datafusion::arrow::array::StringArray>(),
        )),
        DataType::Null => Ok(Arc::new(datafusion::arrow::array::StringArray::new_null(
            array.len(),
        ))),
        _ => Ok(datafusion::arrow::compute::cast(
            &crate::pg_compat::postgres_text(array)?,
            &DataType::Utf8,
        )?),
    }
}
