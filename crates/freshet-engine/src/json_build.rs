//! `json_build_object(key, value, ...)`, as PostgreSQL writes it.
//!
//! DataFusion has no JSON constructors. SQLAlchemy's column reflection
//! (`inspect().get_columns()`, `Table(..., autoload_with=...)`, and so
//! pandas' `read_sql_table`) builds identity and collation details with
//! `json_build_object`, so without it reflecting a table fails outright.
//! The result is `json` text laid out as PostgreSQL lays it out
//! (`{"a" : 1, "b" : "x"}`). `jsonb_build_object` builds the same object as
//! `jsonb` (`{"a": 1, "b": "x"}`, keys in jsonb's order).
//!
//! Values are written as PostgreSQL's `to_json` writes them: numbers and
//! booleans bare, arrays as JSON arrays, timestamps in ISO 8601
//! (`"2024-01-01T10:00:00+00:00"`), dates, times, intervals and bytea as
//! their PostgreSQL text, anything else as a JSON string of its text.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};

use crate::types::{is_json, json_field, JsonKind};
use crate::EngineError;

/// Registers `json_build_object`.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    for kind in [JsonKind::Json, JsonKind::Jsonb] {
        ctx.register_udf(ScalarUDF::new_from_impl(JsonBuildObject {
            kind,
            // `json_build_object()` is `{}`.
            signature: Signature::one_of(
                vec![TypeSignature::Nullary, TypeSignature::VariadicAny],
                Volatility::Stable,
            ),
        }));
    }
}

/// `json_build_object`, or `jsonb_build_object`: the same object in
/// `jsonb`'s form (keys in jsonb's order, the last of equal keys kept,
/// `{"a": 1}` spacing).
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObject {
    kind: JsonKind,
    signature: Signature,
}

fn engine_error(sqlstate: &'static str, message: &str) -> DataFusionError {
    DataFusionError::External(Box::new(EngineError::new(sqlstate, message.to_string())))
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        match self.kind {
            JsonKind::Json => "json_build_object",
            JsonKind::Jsonb => "jsonb_build_object",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        if !args.arg_fields.len().is_multiple_of(2) {
            return Err(engine_error(
                "22023",
                "argument list must have even number of elements",
            ));
        }
        Ok(Arc::new(json_field(self.name(), self.kind, false)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = crate::udf_args::arrays(&args)?;
        let raw_json: Vec<bool> = args.arg_fields.iter().map(|f| is_json(f)).collect();
        let mut out = StringBuilder::new();
        let mut object = String::new();
        for row in 0..rows {
            object.clear();
            object.push('{');
            for (pair, chunk) in arrays.chunks(2).enumerate() {
                let [key, value] = chunk else {
                    return Err(engine_error(
                        "22023",
                        "argument list must have even number of elements",
                    ));
                };
                if is_null(key, row) {
                    return Err(engine_error(
                        "22023",
                        &format!("argument {} cannot be null", pair * 2 + 1),
                    ));
                }
                if pair > 0 {
                    object.push_str(", ");
                }
                let key = ScalarValue::try_from_array(key, row)?.to_string();
                object.push_str(&serde_json::Value::String(key).to_string());
                object.push_str(" : ");
                push_value(&mut object, value, row, raw_json[pair * 2 + 1])?;
            }
            object.push('}');
            match self.kind {
                JsonKind::Json => out.append_value(&object),
                JsonKind::Jsonb => out.append_value(crate::json_text::jsonb_text(&object)?),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// Appends the JSON for the value at `row`: numbers and booleans bare,
/// `json` arguments as they are, anything else as a JSON string of its
/// text.
fn push_value(out: &mut String, array: &ArrayRef, row: usize, raw: bool) -> DfResult<()> {
    if is_null(array, row) {
        out.push_str("null");
        return Ok(());
    }
    match array.data_type() {
        DataType::Boolean => {
            out.push_str(if array.as_boolean().value(row) {
                "true"
            } else {
                "false"
            });
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => {
            out.push_str(&ScalarValue::try_from_array(array, row)?.to_string());
        }
        DataType::Float32 | DataType::Float64 => {
            let value = ScalarValue::try_from_array(array, row)?;
            let text = value.to_string();
            // NaN and infinities are not JSON numbers: PostgreSQL quotes them.
            if text.parse::<f64>().is_ok_and(f64::is_finite) {
                out.push_str(&text);
            } else {
                out.push_str(&serde_json::Value::String(text).to_string());
            }
        }
        DataType::List(_) | DataType::LargeList(_) => {
            let elements = match array.data_type() {
                DataType::List(_) => array.as_list::<i32>().value(row),
                _ => array.as_list::<i64>().value(row),
            };
            out.push('[');
            for element in 0..elements.len() {
                if element > 0 {
                    out.push(',');
                }
                push_value(out, &elements, element, false)?;
            }
            out.push(']');
        }
        DataType::Timestamp(_, zone) => {
            // PostgreSQL's JSON form: ISO 8601, `T` between date and time,
            // the offset with its minutes.
            let text = postgres_text(array, row)?.replacen(' ', "T", 1);
            let text = match (zone, text.strip_suffix("+00")) {
                (Some(_), Some(local)) => format!("{local}+00:00"),
                _ => text,
            };
            out.push_str(&serde_json::Value::String(text).to_string());
        }
        DataType::Date32 | DataType::Time64(_) | DataType::Interval(_) | DataType::Binary => {
            let text = postgres_text(array, row)?;
            out.push_str(&serde_json::Value::String(text).to_string());
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if raw => {
            out.push_str(&ScalarValue::try_from_array(array, row)?.to_string());
        }
        _ => {
            let text = ScalarValue::try_from_array(array, row)?.to_string();
            out.push_str(&serde_json::Value::String(text).to_string());
        }
    }
    Ok(())
}

/// The value at `row` as PostgreSQL prints it (`1 day 02:00:00`, `\\x6162`).
fn postgres_text(array: &ArrayRef, row: usize) -> DfResult<String> {
    let text = crate::pg_compat::postgres_text(&array.slice(row, 1))?;
    let text = text.as_string::<i32>();
    Ok(if text.is_null(0) {
        String::new()
    } else {
        text.value(0).to_string()
    })
}

/// Whether the value at `row` is NULL, counting an untyped NULL literal's
/// array (which has no null buffer) as NULL.
fn is_null(array: &ArrayRef, row: usize) -> bool {
    array
        .logical_nulls()
        .is_some_and(|nulls| nulls.is_null(row))
}
