//! `upper`, `lower` and `initcap` map one character at a time, as
//! PostgreSQL does.
//!
//! PostgreSQL (with a libc locale, as Freshet presents itself) changes the
//! case of each character on its own, through `towupper` and `towlower`,
//! and a character without a one-character counterpart stays as it is.
//! DataFusion's functions use Rust's full Unicode case mapping, which
//! gave other text without an error: `upper('straße')` was `STRASSE`
//! where PostgreSQL answers `STRAßE`, `upper('ﬁ')` was `FI`, `lower('ΑΣ')`
//! was `ας` (a final sigma) where PostgreSQL answers `ασ`, and
//! `lower('İ')` added a combining dot.
//!
//! [`register`] replaces the three with functions that map each character
//! to its single-character upper or lower case, keeping it where Rust's
//! mapping has several characters (for lower case, the one character
//! with such a mapping, `İ`, becomes `i`, as `towlower` gives).

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::ScalarUDF;

/// Registers `upper`, `lower` and `initcap` in place of DataFusion's.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    static UPPER: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    static LOWER: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    static INITCAP: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    let functions = [
        crate::udf_args::row_function(&UPPER, "upper", 1, DataType::Utf8, |arrays| {
            map_text(arrays, "upper", upper)
        }),
        crate::udf_args::row_function(&LOWER, "lower", 1, DataType::Utf8, |arrays| {
            map_text(arrays, "lower", lower)
        }),
        crate::udf_args::row_function(&INITCAP, "initcap", 1, DataType::Utf8, |arrays| {
            map_text(arrays, "initcap", initcap)
        }),
    ];
    for function in functions {
        ctx.register_udf(function.as_ref().clone());
    }
}

fn map_text(arrays: &[ArrayRef], name: &str, f: fn(&str) -> String) -> DfResult<ArrayRef> {
    let [text] = arrays else {
        return Err(DataFusionError::Internal(format!(
            "{name} takes one argument"
        )));
    };
    let text = datafusion::arrow::compute::cast(text, &DataType::Utf8)?;
    let text = text.as_string::<i32>();
    let mut out = StringBuilder::with_capacity(text.len(), text.value_data().len());
    for value in text.iter() {
        match value {
            Some(value) => out.append_value(f(value)),
            None => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// `c` in upper case, when that is one character.
fn upper_char(c: char) -> char {
    let mut mapped = c.to_uppercase();
    match (mapped.next(), mapped.next()) {
        (Some(one), None) => one,
        _ => c,
    }
}

/// `c` in lower case: its first character (`İ` is the only character whose
/// lower case is longer).
fn lower_char(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

pub(crate) fn upper(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_uppercase();
    }
    text.chars().map(upper_char).collect()
}

pub(crate) fn lower(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    text.chars().map(lower_char).collect()
}

/// Each run of letters and digits with its first character in upper case
/// and the rest in lower case.
pub(crate) fn initcap(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_word = false;
    for c in text.chars() {
        out.push(if in_word {
            lower_char(c)
        } else {
            upper_char(c)
        });
        in_word = c.is_alphanumeric();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_map_one_to_one() {
        // PostgreSQL 15 (C.UTF-8): upper, lower and initcap of these.
        assert_eq!(upper("straße"), "STRAßE");
        assert_eq!(upper("ﬁ ŉ aé"), "ﬁ ŉ AÉ");
        assert_eq!(lower("ΑΣ İ"), "ασ i");
        assert_eq!(initcap("ßa bß ﬁx"), "ßa Bß ﬁx");
        assert_eq!(initcap("hello wORLD o'neil x2y"), "Hello World O'Neil X2y");
    }
}
