//! `numeric` input text as PostgreSQL reads it.
//!
//! PostgreSQL's `numeric_in` takes scientific notation (`'1e2'::numeric` is
//! 100, `'1.5E-3'` is 0.0015), a leading `+`, and white space around the
//! number; Arrow's text-to-decimal cast refuses the exponent. [`plain`]
//! rewrites such text as the plain decimal PostgreSQL would print (the
//! scale it keeps: `1.00e1` is `10.0`), which Arrow's cast then reads. It
//! serves the `::numeric` cast (`freshet_numeric_text`), writes into
//! `numeric` columns (`dml::conform`) and JSON numbers in `jsonb`.
//!
//! `NaN` and the infinities, which Freshet's fixed-point `numeric` cannot
//! hold, are refused (0A000) rather than read as something else.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::DataFusionError;
use datafusion::logical_expr::ScalarUDF;

use crate::EngineError;

/// Largest exponent read: numbers are written out in full (`1e5` is
/// `100000`), so this bounds the text one number becomes. (A decimal holds
/// 38 digits; larger values then fail the cast with 22003.)
const MAX_EXPONENT: i64 = 16_383;

/// `text` as a plain decimal, or PostgreSQL's error for text that is not a
/// number (22P02).
pub(crate) fn plain(text: &str) -> Result<String, EngineError> {
    let trimmed = text.trim();
    let invalid = || {
        EngineError::new(
            "22P02",
            format!("invalid input syntax for type numeric: \"{text}\""),
        )
    };
    let lower = trimmed.to_ascii_lowercase();
    if matches!(
        lower.trim_start_matches(['+', '-']),
        "nan" | "inf" | "infinity"
    ) {
        return Err(EngineError::new(
            "0A000",
            format!("numeric cannot hold \"{trimmed}\": Freshet's numeric is fixed-point"),
        ));
    }
    let (negative, unsigned) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => {
            let digits = &unsigned[at + 1..];
            let unsigned_digits = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            if unsigned_digits.is_empty() || !unsigned_digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            // Too many digits to parse is far past the limit either way.
            let exponent = digits.parse::<i64>().unwrap_or(i64::MAX);
            (&unsigned[..at], exponent)
        }
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits_only(whole) || !digits_only(fraction) {
        return Err(invalid());
    }
    if exponent.abs() > MAX_EXPONENT {
        return Err(EngineError::new(
            "22003",
            format!("value overflows numeric format: \"{text}\""),
        ));
    }
    Ok(scaled(negative, whole, fraction, exponent))
}

/// `±whole.fraction × 10^exponent` written out, keeping the scale
/// `max(0, fraction digits − exponent)` as PostgreSQL's numeric does.
fn scaled(negative: bool, whole: &str, fraction: &str, exponent: i64) -> String {
    let mut digits = format!("{whole}{fraction}");
    // The value is `digits` × 10^shift.
    let shift = exponent - fraction.len() as i64;
    let mut number = if shift >= 0 {
        digits.extend(std::iter::repeat_n('0', shift as usize));
        digits
    } else {
        let decimals = shift.unsigned_abs() as usize;
        if digits.len() <= decimals {
            let pad = decimals + 1 - digits.len();
            digits.insert_str(0, &"0".repeat(pad));
        }
        digits.insert(digits.len() - decimals, '.');
        digits
    };
    let leading = number
        .bytes()
        .take_while(|&b| b == b'0')
        .count()
        .min(number.find('.').unwrap_or(number.len()).saturating_sub(1));
    number.drain(..leading);
    let zero = number.bytes().all(|b| b == b'0' || b == b'.');
    if negative && !zero {
        number.insert(0, '-');
    }
    number
}

/// Name of the function text-to-numeric casts read their text through.
pub(crate) const NUMERIC_TEXT: &str = "freshet_numeric_text";

/// `freshet_numeric_text(text)`: [`plain`] of each value (text out; the
/// cast to the decimal type follows it).
pub(crate) fn udf() -> Arc<ScalarUDF> {
    static UDF: std::sync::OnceLock<Arc<ScalarUDF>> = std::sync::OnceLock::new();
    crate::udf_args::row_function(&UDF, NUMERIC_TEXT, 1, DataType::Utf8, |arrays| {
        let [text] = arrays else {
            return Err(DataFusionError::Internal(format!(
                "{NUMERIC_TEXT} takes one argument"
            )));
        };
        plain_array(text).map_err(|e| DataFusionError::External(Box::new(e)))
    })
}

/// [`plain`] of every value of a text array.
pub(crate) fn plain_array(text: &ArrayRef) -> Result<ArrayRef, EngineError> {
    let text = datafusion::arrow::compute::cast(text, &DataType::Utf8)
        .map_err(|e| EngineError::new("22P02", e.to_string()))?;
    let strings = text.as_string::<i32>();
    // Plain decimals (the usual case, COPY's) go to Arrow's cast as they are.
    let simple = |s: &str| {
        let digits = s.strip_prefix('-').unwrap_or(s);
        !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && digits.bytes().filter(|&b| b == b'.').count() <= 1
            && digits != "."
    };
    if strings.iter().flatten().all(simple) {
        return Ok(text);
    }
    let text = strings;
    let mut out = Vec::with_capacity(text.len());
    for row in 0..text.len() {
        out.push(if text.is_null(row) {
            None
        } else {
            Some(plain(text.value(row))?)
        });
    }
    Ok(Arc::new(StringArray::from(out)))
}

#[cfg(test)]
mod tests {
    use super::plain;

    #[test]
    fn reads_what_numeric_in_reads() {
        // Each checked against PostgreSQL 15's `'…'::numeric`.
        for (input, expected) in [
            ("1e2", "100"),
            ("1.5E+1", "15"),
            ("-0", "0"),
            ("-0.0", "0.0"),
            ("1e-3", "0.001"),
            ("12.3e-1", "1.23"),
            ("1.00e1", "10.0"),
            ("0.000", "0.000"),
            ("123.456e2", "12345.6"),
            ("-1.5e-2", "-0.015"),
            ("0.5e1", "5"),
            ("  42 ", "42"),
            ("+3.5", "3.5"),
            (".5", "0.5"),
            ("5.", "5"),
            ("007", "7"),
        ] {
            assert_eq!(plain(input).unwrap(), expected, "{input}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_number() {
        for bad in ["abc", "", "1e", "e5", "1.2.3", "--1", "1e+", " . "] {
            assert_eq!(plain(bad).unwrap_err().sqlstate(), "22P02", "{bad}");
        }
        assert_eq!(plain("NaN").unwrap_err().sqlstate(), "0A000");
        assert_eq!(plain("1e99999").unwrap_err().sqlstate(), "22003");
    }
}
