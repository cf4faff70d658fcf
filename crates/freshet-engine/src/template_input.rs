//! `to_date(text, template)` and `to_timestamp(text, template)` with
//! PostgreSQL's templates (`'DD Mon YYYY'`, `'YYYY-MM-DD HH24:MI'`).
//!
//! DataFusion's functions of these names read chrono patterns (`%Y-%m-%d`)
//! and refused every PostgreSQL template ("input contains invalid
//! characters"). [`TemplateInput`] takes the two-argument text form and
//! reads it with [`crate::pg_from_char`]; every other form (`to_timestamp`
//! of epoch seconds, one argument, several chrono patterns) stays
//! DataFusion's function, to which it hands the call.
//!
//! `to_date` gives a `date`; `to_timestamp` a `timestamptz` (microseconds,
//! UTC, Freshet's only zone): the text's time in UTC, or at the offset its
//! `TZH`/`TZM` fields read. Dates before 1 AD, which PostgreSQL prints with
//! `BC` and Freshet cannot print yet, are refused (0A000) rather than shown
//! as another date.

use std::sync::Arc;

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Date32Array, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, FieldRef, TimeUnit};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};

use crate::pg_from_char::{parse_with_template, FromCharError, ParsedDateTime};
use crate::EngineError;

/// The zone of the `timestamptz` that `to_timestamp` returns.
const UTC: &str = "+00:00";

/// Registers `to_date` and `to_timestamp` over DataFusion's.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    // DataFusion's own functions, as the session configured them.
    let state = ctx.state();
    for (result, name) in [
        (Output::Date, "to_date"),
        (Output::Timestamp, "to_timestamp"),
    ] {
        let Some(inner) = state.scalar_functions().get(name).cloned() else {
            continue;
        };
        let volatility = inner.signature().volatility;
        ctx.register_udf(ScalarUDF::new_from_impl(TemplateInput {
            result,
            inner,
            signature: Signature::variadic_any(volatility),
        }));
    }
}

/// What the function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Output {
    Date,
    Timestamp,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TemplateInput {
    result: Output,
    /// DataFusion's function of the same name, for every other form.
    inner: Arc<ScalarUDF>,
    signature: Signature,
}

/// Text, or an untyped NULL (`to_date(NULL, 'YYYY')` is NULL).
fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    )
}

/// Whether a call with arguments of these types is the template form.
fn template_form(types: &[&DataType]) -> bool {
    matches!(types, [text, template] if is_text(text) && is_text(template))
}

impl TemplateInput {
    fn output(&self) -> DataType {
        match self.result {
            Output::Date => DataType::Date32,
            Output::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
        }
    }
}

impl ScalarUDFImpl for TemplateInput {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        let types: Vec<&DataType> = args.iter().collect();
        if template_form(&types) {
            Ok(self.output())
        } else {
            self.inner.inner().return_type(args)
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let types: Vec<&DataType> = args.arg_fields.iter().map(|f| f.data_type()).collect();
        if template_form(&types) {
            let nullable = args.arg_fields.iter().any(|f| f.is_nullable());
            Ok(Arc::new(datafusion::arrow::datatypes::Field::new(
                self.name(),
                self.output(),
                nullable,
            )))
        } else {
            self.inner.return_field_from_args(args)
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let types: Vec<&DataType> = args.arg_fields.iter().map(|f| f.data_type()).collect();
        if !template_form(&types) {
            return self.inner.invoke_with_args(args);
        }
        let result = self.result;
        crate::udf_args::evaluate(&args.args, |arrays| {
            let [text, template] = arrays else {
                return Err(DataFusionError::Internal(
                    "the template form takes two arguments".into(),
                ));
            };
            let text = datafusion::arrow::compute::cast(text, &DataType::Utf8)?;
            let template = datafusion::arrow::compute::cast(template, &DataType::Utf8)?;
            let (text, template) = (text.as_string::<i32>(), template.as_string::<i32>());
            let values = (0..text.len()).map(|row| {
                if text.is_null(row) || template.is_null(row) {
                    return Ok(None);
                }
                read(text.value(row), template.value(row)).map(Some)
            });
            Ok(match result {
                Output::Date => Arc::new(
                    values
                        .map(|r| r.and_then(|p| p.map(date_value).transpose()))
                        .collect::<Result<Date32Array, EngineError>>()?,
                ) as ArrayRef,
                Output::Timestamp => Arc::new(
                    values
                        .map(|r| r.and_then(|p| p.map(timestamp_value).transpose()))
                        .collect::<Result<TimestampMicrosecondArray, EngineError>>()?
                        .with_timezone(UTC),
                ),
            })
        })
    }
}

/// `text` read by `template`, dates before 1 AD refused.
fn read(text: &str, template: &str) -> Result<ParsedDateTime, EngineError> {
    let parsed = parse_with_template(text, template)
        .map_err(|e: FromCharError| EngineError::new(e.sqlstate(), e.to_string()))?;
    if parsed.datetime.year() < 1 {
        return Err(EngineError::new(
            "0A000",
            format!("dates before 1 AD are not supported: \"{text}\" is in year 1 BC or earlier"),
        ));
    }
    Ok(parsed)
}

fn date_value(parsed: ParsedDateTime) -> Result<i32, EngineError> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    i32::try_from((parsed.datetime.date() - epoch).num_days())
        .map_err(|_| EngineError::new("22008", "date out of range"))
}

fn timestamp_value(parsed: ParsedDateTime) -> Result<i64, EngineError> {
    let out_of_range = || EngineError::new("22008", "timestamp out of range");
    let offset = chrono::Duration::seconds(i64::from(parsed.utc_offset_seconds.unwrap_or(0)));
    let utc: NaiveDateTime = parsed
        .datetime
        .checked_sub_signed(offset)
        .ok_or_else(out_of_range)?;
    Ok(utc.and_utc().timestamp_micros())
}
