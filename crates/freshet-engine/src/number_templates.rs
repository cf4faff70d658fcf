//! `to_char` of numbers and `to_number(text, template)`, the SQL functions
//! over [`crate::pg_number_format`]'s PostgreSQL numeric templates.
//!
//! `to_char(value, template)` is one function for dates and numbers
//! ([`crate::pg_to_char::ToChar`]); it hands integers, numerics and floats
//! here ([`to_char_numbers`]). `to_number` ([`ToNumber`]) returns a
//! `numeric` whose scale is the most fraction digits its template can read
//! (`'99.99'` gives scale 2), so the template must be a constant, as it is
//! in practice; PostgreSQL gives each value the scale of the digits it read.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, FieldRef, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Int8Type, DECIMAL128_MAX_PRECISION,
};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::pg_number_format::{NumberFormat, NumberFormatError};
use crate::EngineError;

/// Registers `to_number`.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(ToNumber {
        signature: Signature::any(2, Volatility::Immutable),
    }));
}

fn engine_error(e: NumberFormatError) -> DataFusionError {
    EngineError::new(e.sqlstate(), e.to_string()).into()
}

/// `template` parsed, reusing the last template parsed when it is the same
/// text (templates are almost always one constant).
fn parsed_once<'a>(
    last: &'a mut Option<(String, NumberFormat)>,
    template: &str,
) -> DfResult<&'a NumberFormat> {
    if last.as_ref().is_none_or(|(text, _)| text != template) {
        let format = NumberFormat::parse(template).map_err(engine_error)?;
        *last = Some((template.to_owned(), format));
    }
    last.as_ref()
        .map(|(_, format)| format)
        .ok_or_else(|| DataFusionError::Internal("no template parsed".into()))
}

/// Whether `to_char` of this type formats a number.
pub(crate) fn is_number(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Decimal128(..)
            | DataType::Float32
            | DataType::Float64
    )
}

/// `to_char(values, formats)` for numbers, row by row; a NULL value or
/// template gives NULL.
pub(crate) fn to_char_numbers(values: &ArrayRef, formats: &StringArray) -> DfResult<ArrayRef> {
    let mut out = StringBuilder::with_capacity(values.len(), values.len() * 16);
    let mut parsed: Option<(String, NumberFormat)> = None;
    for row in 0..values.len() {
        if values.is_null(row) || formats.is_null(row) {
            out.append_null();
            continue;
        }
        let format = parsed_once(&mut parsed, formats.value(row))?;
        let text = match values.data_type() {
            DataType::Int8 => {
                format.format_i32(i32::from(values.as_primitive::<Int8Type>().value(row)))
            }
            DataType::Int16 => {
                format.format_i32(i32::from(values.as_primitive::<Int16Type>().value(row)))
            }
            DataType::Int32 => format.format_i32(values.as_primitive::<Int32Type>().value(row)),
            DataType::Int64 => format.format_i64(values.as_primitive::<Int64Type>().value(row)),
            DataType::Decimal128(_, scale) => {
                format.format_decimal(values.as_primitive::<Decimal128Type>().value(row), *scale)
            }
            DataType::Float32 => format.format_f32(values.as_primitive::<Float32Type>().value(row)),
            DataType::Float64 => format.format_f64(values.as_primitive::<Float64Type>().value(row)),
            // The caller hands over only the types of `is_number`, whose
            // other types `pg_to_char` refuses with 42883.
            other => {
                return Err(DataFusionError::Internal(format!(
                    "to_char_numbers called for {other}"
                )))
            }
        };
        out.append_value(text.map_err(engine_error)?);
    }
    Ok(Arc::new(out.finish()))
}

/// `to_number(text, template)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToNumber {
    signature: Signature,
}

/// The constant template of a call's arguments, parsed.
fn constant_template(args: &ReturnFieldArgs) -> DfResult<NumberFormat> {
    let template = match args.scalar_arguments.get(1) {
        Some(Some(
            ScalarValue::Utf8(template)
            | ScalarValue::LargeUtf8(template)
            | ScalarValue::Utf8View(template),
        )) => template.clone().unwrap_or_default(),
        _ => {
            return Err(EngineError::new("0A000", "to_number's template must be a constant").into())
        }
    };
    NumberFormat::parse(&template).map_err(engine_error)
}

impl ScalarUDFImpl for ToNumber {
    fn name(&self) -> &str {
        "to_number"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Err(DataFusionError::Internal(
            "to_number's type depends on its template".into(),
        ))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let scale = constant_template(&args)?.max_scale();
        let scale = i8::try_from(scale)
            .ok()
            .filter(|s| *s <= DECIMAL128_MAX_PRECISION as i8)
            .ok_or_else(|| {
                DataFusionError::from(EngineError::new(
                    "22003",
                    "to_number's template reads more than 38 fraction digits",
                ))
            })?;
        Ok(Arc::new(Field::new(
            self.name(),
            DataType::Decimal128(DECIMAL128_MAX_PRECISION, scale),
            true,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let DataType::Decimal128(_, scale) = args.return_field.data_type().clone() else {
            return Err(DataFusionError::Internal(
                "to_number returns numeric".into(),
            ));
        };
        crate::udf_args::evaluate(&args.args, |arrays| {
            let [texts, templates] = arrays else {
                return Err(DataFusionError::Internal(
                    "to_number takes two arguments".into(),
                ));
            };
            let texts = datafusion::arrow::compute::cast(texts, &DataType::Utf8)?;
            let templates = datafusion::arrow::compute::cast(templates, &DataType::Utf8)?;
            let (texts, templates) = (texts.as_string::<i32>(), templates.as_string::<i32>());
            let mut parsed: Option<(String, NumberFormat)> = None;
            let mut values = Vec::with_capacity(texts.len());
            for row in 0..texts.len() {
                if texts.is_null(row) || templates.is_null(row) {
                    values.push(None);
                    continue;
                }
                let format = parsed_once(&mut parsed, templates.value(row))?;
                let value = format
                    .parse_number(texts.value(row))
                    .map_err(engine_error)?;
                values.push(match value {
                    None => None,
                    Some((unscaled, read_scale)) => Some(rescale(unscaled, read_scale, scale)?),
                });
            }
            let numbers = Decimal128Array::from(values)
                .with_precision_and_scale(DECIMAL128_MAX_PRECISION, scale)?;
            Ok(Arc::new(numbers) as ArrayRef)
        })
    }
}

/// `unscaled` at `from` decimal places, written at `to` (never fewer).
fn rescale(unscaled: i128, from: i8, to: i8) -> DfResult<i128> {
    let overflow = || DataFusionError::from(EngineError::new("22003", "numeric field overflow"));
    let up = u32::try_from(i32::from(to) - i32::from(from)).map_err(|_| overflow())?;
    10i128
        .checked_pow(up)
        .and_then(|factor| unscaled.checked_mul(factor))
        .ok_or_else(overflow)
}
