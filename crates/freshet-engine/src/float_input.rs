//! Text to `real` and `double precision` as PostgreSQL's `float4in` and
//! `float8in` read it.
//!
//! Arrow's cast (and Rust's `str::parse`) turn a number too large for the
//! type into `Infinity` and one too small into `0`, without an error:
//! `'1e400'::float8` was `Infinity` and `'1e-50'::real` was `0`. PostgreSQL
//! raises 22003 (`"1e400" is out of range for type double precision`) for
//! both, and 22P02 for text that is not a number. Every path by which text
//! becomes a float uses [`parse_float8`] or [`parse_float4`]: casts (through
//! [`text_to_float_udf`], which `float_ops`'s analyzer rule puts in place of
//! Arrow's cast), values written by INSERT ([`text_array_to_float`]), COPY
//! and bind parameters.
//!
//! What is accepted: surrounding whitespace, a sign, decimal digits with an
//! optional point and exponent, and `NaN`, `Infinity` and `inf` in any case.
//! Subnormal values are kept, as PostgreSQL keeps them. Hexadecimal input,
//! which PostgreSQL's `strtod` also reads, is refused with 22P02.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float32Array, Float64Array};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::EngineError;

/// The float type text is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FloatType {
    Real,
    Double,
}

impl FloatType {
    /// `Float32` or `Float64`; `None` for any other type.
    pub(crate) fn of(data_type: &DataType) -> Option<FloatType> {
        match data_type {
            DataType::Float32 => Some(FloatType::Real),
            DataType::Float64 => Some(FloatType::Double),
            _ => None,
        }
    }

    fn sql_name(self) -> &'static str {
        match self {
            FloatType::Real => "real",
            FloatType::Double => "double precision",
        }
    }
}

/// PostgreSQL's `isspace` set, which `float8in` skips around the number.
fn is_pg_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{0B}' | '\u{0C}')
}

/// The number in `text` without its surrounding whitespace, and whether it
/// is a special value (NaN or an infinity), which cannot be out of range.
fn number_text(text: &str, ty: FloatType) -> Result<(&str, bool), EngineError> {
    let number = text.trim_matches(is_pg_space);
    let unsigned = number.strip_prefix(['+', '-']).unwrap_or(number);
    let special = ["nan", "inf", "infinity"]
        .iter()
        .any(|word| unsigned.eq_ignore_ascii_case(word));
    if special {
        // `-nan` is NaN, as `strtod` reads it.
        return Ok((
            if unsigned.eq_ignore_ascii_case("nan") {
                "nan"
            } else {
                number
            },
            true,
        ));
    }
    // Digits, at most one point, at least one digit, then an optional
    // exponent with at least one digit: what `strtod` reads as decimal.
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let mantissa_ok = !mantissa.is_empty()
        && mantissa.bytes().filter(|b| *b == b'.').count() <= 1
        && mantissa.bytes().any(|b| b.is_ascii_digit())
        && mantissa.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let exponent_ok = exponent.is_none_or(|e| {
        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    });
    if mantissa_ok && exponent_ok {
        Ok((number, false))
    } else {
        Err(invalid(text, ty))
    }
}

fn invalid(text: &str, ty: FloatType) -> EngineError {
    EngineError::new(
        "22P02",
        format!(
            "invalid input syntax for type {}: \"{text}\"",
            ty.sql_name()
        ),
    )
}

fn out_of_range(number: &str, ty: FloatType) -> EngineError {
    EngineError::new(
        "22003",
        format!("\"{number}\" is out of range for type {}", ty.sql_name()),
    )
}

/// Whether a decimal number's digits (before any exponent) are not all zero.
fn has_nonzero_digit(number: &str) -> bool {
    number
        .split(['e', 'E'])
        .next()
        .is_some_and(|m| m.bytes().any(|b| (b'1'..=b'9').contains(&b)))
}

/// `text::double precision`, as PostgreSQL's `float8in` reads it.
pub fn parse_float8(text: &str) -> Result<f64, EngineError> {
    let (number, special) = number_text(text, FloatType::Double)?;
    let value: f64 = number
        .parse()
        .map_err(|_| invalid(text, FloatType::Double))?;
    if !special && (value.is_infinite() || (value == 0.0 && has_nonzero_digit(number))) {
        return Err(out_of_range(number, FloatType::Double));
    }
    Ok(value)
}

/// `text::real`, as PostgreSQL's `float4in` reads it: parsed directly to the
/// nearest `real`, not through a double, which could round twice.
pub fn parse_float4(text: &str) -> Result<f32, EngineError> {
    let (number, special) = number_text(text, FloatType::Real)?;
    let value: f32 = number.parse().map_err(|_| invalid(text, FloatType::Real))?;
    if !special && (value.is_infinite() || (value == 0.0 && has_nonzero_digit(number))) {
        return Err(out_of_range(number, FloatType::Real));
    }
    Ok(value)
}

/// `x::real` for a double, as PostgreSQL's `float84` computes it: 22003
/// where a finite value becomes infinite or a value that is not zero
/// becomes zero.
pub(crate) fn double_to_real(x: f64) -> Result<f32, EngineError> {
    // Rounding to the nearest real is what the cast is for.
    #[allow(clippy::cast_possible_truncation)]
    let r = x as f32;
    if r.is_infinite() && !x.is_infinite() {
        return Err(crate::float_domain::out_of_range("overflow"));
    }
    if r == 0.0 && x != 0.0 {
        return Err(crate::float_domain::out_of_range("underflow"));
    }
    Ok(r)
}

/// A double column as `real`, checked by [`double_to_real`].
pub(crate) fn doubles_to_reals(x: &ArrayRef) -> Result<ArrayRef, EngineError> {
    let x = x.as_primitive::<Float64Type>();
    let mut values = Vec::with_capacity(x.len());
    for (i, v) in x.values().iter().enumerate() {
        values.push(if x.is_valid(i) {
            double_to_real(*v)?
        } else {
            0.0
        });
    }
    Ok(Arc::new(Float32Array::new(
        values.into(),
        x.nulls().cloned(),
    )))
}

/// A text column read as `target` when that is `real` or `double precision`
/// (`None` for other columns or targets).
pub(crate) fn text_array_to_float(
    column: &ArrayRef,
    target: &DataType,
) -> Option<Result<ArrayRef, EngineError>> {
    let ty = FloatType::of(target)?;
    let strings: Box<dyn Iterator<Item = Option<&str>>> = match column.data_type() {
        DataType::Utf8 => Box::new(column.as_string::<i32>().iter()),
        DataType::LargeUtf8 => Box::new(column.as_string::<i64>().iter()),
        DataType::Utf8View => Box::new(column.as_string_view().iter()),
        _ => return None,
    };
    Some(match ty {
        FloatType::Double => strings
            .map(|v| v.map(parse_float8).transpose())
            .collect::<Result<Float64Array, _>>()
            .map(|a| Arc::new(a) as ArrayRef),
        FloatType::Real => strings
            .map(|v| v.map(parse_float4).transpose())
            .collect::<Result<Float32Array, _>>()
            .map(|a| Arc::new(a) as ArrayRef),
    })
}

/// The function that casts text to `real` or `double precision`.
pub(crate) fn text_to_float_udf(ty: FloatType) -> Arc<ScalarUDF> {
    static REAL: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    static DOUBLE: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    let cell = match ty {
        FloatType::Real => &REAL,
        FloatType::Double => &DOUBLE,
    };
    cell.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(TextToFloat {
            signature: Signature::any(1, Volatility::Immutable),
            ty,
        }))
    })
    .clone()
}

/// `freshet_text_to_float8(text)` / `freshet_text_to_float4(text)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TextToFloat {
    signature: Signature,
    ty: FloatType,
}

impl ScalarUDFImpl for TextToFloat {
    fn name(&self) -> &str {
        match self.ty {
            FloatType::Real => "freshet_text_to_float4",
            FloatType::Double => "freshet_text_to_float8",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(match self.ty {
            FloatType::Real => DataType::Float32,
            FloatType::Double => DataType::Float64,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let target = match self.ty {
            FloatType::Real => DataType::Float32,
            FloatType::Double => DataType::Float64,
        };
        crate::udf_args::evaluate(&args.args, |arrays| {
            let [text] = arrays else {
                return Err(DataFusionError::Internal(format!(
                    "{} takes one argument",
                    self.name()
                )));
            };
            match text_array_to_float(text, &target) {
                Some(result) => Ok(result?),
                None => Err(DataFusionError::Internal(format!(
                    "{} on {}",
                    self.name(),
                    text.data_type()
                ))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state<T: std::fmt::Debug>(r: Result<T, EngineError>) -> String {
        match r {
            Ok(v) => format!("{v:?}"),
            Err(e) => format!("{} {e}", e.sqlstate()),
        }
    }

    #[test]
    fn reads_what_float8in_reads() {
        assert_eq!(parse_float8(" 1.5 ").ok(), Some(1.5));
        assert_eq!(parse_float8("1.").ok(), Some(1.0));
        assert_eq!(parse_float8(".5e1").ok(), Some(5.0));
        assert_eq!(parse_float8("-0").ok(), Some(-0.0));
        assert_eq!(parse_float8("0e500").ok(), Some(0.0));
        assert!(parse_float8("NaN").is_ok_and(f64::is_nan));
        assert!(parse_float8("-nan").is_ok_and(f64::is_nan));
        assert_eq!(parse_float8("-Infinity").ok(), Some(f64::NEG_INFINITY));
        assert_eq!(parse_float8("+inf").ok(), Some(f64::INFINITY));
        // Subnormal: kept.
        assert!(parse_float8("4e-320").is_ok_and(|v| v > 0.0));
        assert!(parse_float4("1e-40").is_ok_and(|v| v > 0.0));
    }

    #[test]
    fn refuses_what_float8in_refuses() {
        assert_eq!(
            state(parse_float8("1e400")),
            "22003 \"1e400\" is out of range for type double precision"
        );
        assert_eq!(
            state(parse_float8(" -1e400")),
            "22003 \"-1e400\" is out of range for type double precision"
        );
        assert_eq!(
            state(parse_float8("1e-400")).split(' ').next(),
            Some("22003")
        );
        assert_eq!(
            state(parse_float4("3.4e39")),
            "22003 \"3.4e39\" is out of range for type real"
        );
        assert_eq!(
            state(parse_float4("1e-50")).split(' ').next(),
            Some("22003")
        );
        for bad in [
            "",
            " ",
            "abc",
            "1_000",
            "1e",
            "e5",
            ".",
            "1.2.3",
            "+-1",
            "infinityx",
            "1 2",
        ] {
            assert_eq!(
                state(parse_float8(bad)),
                format!("22P02 invalid input syntax for type double precision: \"{bad}\""),
            );
        }
    }

    #[test]
    fn narrowing_a_double_checks_the_range() {
        assert_eq!(double_to_real(1.5).ok(), Some(1.5));
        assert!(double_to_real(f64::INFINITY).is_ok());
        assert_eq!(
            state(double_to_real(1e39)),
            "22003 value out of range: overflow"
        );
        assert_eq!(
            state(double_to_real(1e-50)),
            "22003 value out of range: underflow"
        );
    }
}
