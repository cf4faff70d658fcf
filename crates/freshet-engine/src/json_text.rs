//! JSON documents as PostgreSQL keeps them: `json` as the text it was given,
//! once that text is known to be JSON; `jsonb` in one canonical form.
//!
//! Freshet stores both as text (Arrow `Utf8` tagged with the `arrow.json`
//! extension). Equality, `DISTINCT`, `GROUP BY` and joins of `jsonb` values
//! compare that text, so a `jsonb` value must be stored in the one form
//! PostgreSQL prints it in, or `'{"a":1, "b":2}'::jsonb = '{"b":2,"a":1}'`
//! would be false where PostgreSQL says true. [`jsonb_text`] gives that form:
//! - an object keeps the last of duplicate keys, and orders its keys shorter
//!   first, then bytewise (as `jsonb` stores them);
//! - `", "` and `": "` separate members and elements, and there is no other
//!   white space;
//! - numbers print as PostgreSQL's `numeric` prints them (`1e2` is `100`,
//!   `1.50` keeps its scale, `-0` is `0`);
//! - strings are re-escaped as `jsonb`'s output escapes them, and `\u0000`
//!   is refused (22P05), as PostgreSQL refuses it.
//!
//! Two `jsonb` values PostgreSQL calls equal then have the same text, except
//! numbers of the same value and different scale (`1.0` and `1`), which
//! PostgreSQL compares as numbers. Ordering compares text, not PostgreSQL's
//! `jsonb` ordering (README lists both).
//!
//! [`member`] and [`element`] read one step of a path (`->`, `->>`) from
//! either kind without rebuilding it: the step's own text, as PostgreSQL's
//! `json` operators return the slice of the original document.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use crate::EngineError;

/// `text` validated as JSON, for a `json` value (22P02 when it is not).
pub(crate) fn validate_json(text: &str) -> Result<(), EngineError> {
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(syntax_error)
}

/// `text` in `jsonb`'s canonical form (see the module docs).
pub(crate) fn jsonb_text(text: &str) -> Result<String, EngineError> {
    let raw: &RawValue = serde_json::from_str(text).map_err(syntax_error)?;
    let mut out = String::with_capacity(text.len());
    write_canonical(raw, &mut out)?;
    Ok(out)
}

/// `a || b` of two `jsonb` values, as PostgreSQL concatenates them: two
/// objects merge (a key of `b` replaces the same key of `a`); otherwise
/// the two become one array, a value that is not an array counting as an
/// array of that one value. The result is in canonical form.
pub(crate) fn jsonb_concat(a: &str, b: &str) -> Result<String, EngineError> {
    let mut out = String::with_capacity(a.len() + b.len() + 2);
    if starts_with(a, b'{') && starts_with(b, b'{') {
        let mut members: BTreeMap<String, &RawValue> =
            serde_json::from_str(a).map_err(syntax_error)?;
        let right: BTreeMap<String, &RawValue> = serde_json::from_str(b).map_err(syntax_error)?;
        members.extend(right);
        out.push('{');
        for (i, (key, value)) in members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::to_string(key).map_err(syntax_error)?);
            out.push(':');
            out.push_str(value.get());
        }
        out.push('}');
    } else {
        let items = |doc: &'_ str| -> Result<Vec<String>, EngineError> {
            if starts_with(doc, b'[') {
                let items: Vec<&RawValue> = serde_json::from_str(doc).map_err(syntax_error)?;
                Ok(items.iter().map(|item| item.get().to_string()).collect())
            } else {
                validate_json(doc)?;
                Ok(vec![doc.to_string()])
            }
        };
        out.push('[');
        out.push_str(&[items(a)?, items(b)?].concat().join(","));
        out.push(']');
    }
    jsonb_text(&out)
}

/// The member `name` of a JSON object's text (the last one of that name),
/// or `None` when `doc` is not an object or has no such member.
pub(crate) fn member<'a>(doc: &'a str, name: &str) -> Option<&'a RawValue> {
    if !starts_with(doc, b'{') {
        return None;
    }
    let members: BTreeMap<String, &RawValue> = serde_json::from_str(doc).ok()?;
    members.get(name).copied()
}

/// Element `index` of a JSON array's text (negative: from the end).
pub(crate) fn element(doc: &str, index: i64) -> Option<&RawValue> {
    if !starts_with(doc, b'[') {
        return None;
    }
    let items: Vec<&RawValue> = serde_json::from_str(doc).ok()?;
    let at = if index < 0 {
        items.len() as i64 + index
    } else {
        index
    };
    items.get(usize::try_from(at).ok()?).copied()
}

/// A step's value as `->>` gives it: strings unquoted and unescaped, JSON
/// `null` as SQL NULL, anything else as its JSON text.
pub(crate) fn as_text(value: &RawValue) -> Option<String> {
    let text = value.get().trim_start();
    match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(text).ok(),
        Some(b'n') => None,
        _ => Some(text.to_string()),
    }
}

fn starts_with(doc: &str, byte: u8) -> bool {
    doc.trim_start().as_bytes().first() == Some(&byte)
}

/// The members of a JSON object's text as `jsonb` keeps them: the last of
/// repeated keys, in `jsonb`'s key order (shorter first, then bytewise).
pub(crate) fn jsonb_members(text: &str) -> Result<Vec<(String, &RawValue)>, EngineError> {
    // A map keeps the last value of a repeated key; its bytewise key order,
    // stably re-sorted by length, is jsonb's key order.
    let members: BTreeMap<String, &RawValue> = serde_json::from_str(text).map_err(syntax_error)?;
    let mut members: Vec<(String, &RawValue)> = members.into_iter().collect();
    members.sort_by_key(|(key, _)| key.len());
    Ok(members)
}

/// 22P02 for text that is not JSON.
pub(crate) fn syntax_error(e: serde_json::Error) -> EngineError {
    EngineError::new("22P02", format!("invalid input syntax for type json: {e}"))
}

fn write_canonical(raw: &RawValue, out: &mut String) -> Result<(), EngineError> {
    let text = raw.get().trim_start();
    match text.as_bytes().first() {
        Some(b'{') => {
            let members = jsonb_members(text)?;
            out.push('{');
            for (i, (key, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(key, out)?;
                out.push_str(": ");
                write_canonical(value, out)?;
            }
            out.push('}');
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text).map_err(syntax_error)?;
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_canonical(item, out)?;
            }
            out.push(']');
        }
        Some(b'"') => {
            let value: String = serde_json::from_str(text).map_err(syntax_error)?;
            write_string(&value, out)?;
        }
        Some(b't' | b'f' | b'n') => out.push_str(text.trim_end()),
        // A JSON number (already validated) as PostgreSQL's numeric prints it.
        _ => out.push_str(&crate::numeric_text::plain(text.trim_end())?),
    }
    Ok(())
}

fn write_string(value: &str, out: &mut String) -> Result<(), EngineError> {
    if value.contains('\0') {
        return Err(EngineError::new(
            "22P05",
            "unsupported Unicode escape sequence: \\u0000 cannot be converted to text",
        ));
    }
    // serde_json escapes as jsonb's output does: `"` and `\`, the short
    // forms of \b \f \n \r \t, other control characters as \u00XX, and
    // nothing else.
    out.push_str(
        &serde_json::to_string(value).map_err(|e| EngineError::new("XX000", e.to_string()))?,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(text: &str) -> String {
        jsonb_text(text).unwrap()
    }

    #[test]
    fn concatenation_is_jsonb_concatenation() {
        // Checked against PostgreSQL 15's `jsonb || jsonb`.
        let concat = |a: &str, b: &str| jsonb_concat(a, b).unwrap();
        assert_eq!(
            concat(r#"{"a":1,"b":2}"#, r#"{"a":3}"#),
            r#"{"a": 3, "b": 2}"#
        );
        assert_eq!(concat("[1,2]", "[3]"), "[1, 2, 3]");
        assert_eq!(concat("[1]", r#"{"a":1}"#), r#"[1, {"a": 1}]"#);
        assert_eq!(concat(r#"{"a":1}"#, "[]"), r#"[{"a": 1}]"#);
        assert_eq!(concat("1", "2"), "[1, 2]");
        assert_eq!(concat(r#""x""#, "null"), r#"["x", null]"#);
        assert_eq!(jsonb_concat("{}", "{").unwrap_err().sqlstate(), "22P02");
    }

    #[test]
    fn numbers_print_as_numeric_does() {
        // Numbers go through `numeric_text` (whose tests cover its forms);
        // checked against PostgreSQL 15's `'…'::jsonb`.
        assert_eq!(canon("[1e2, 1.50, -0, 1.00e1]"), "[100, 1.50, 0, 10.0]");
        assert_eq!(jsonb_text("1e99999").unwrap_err().sqlstate(), "22003");
    }

    #[test]
    fn objects_keep_the_last_key_in_jsonb_order() {
        assert_eq!(canon(r#"{"a":1,"a":2}"#), r#"{"a": 2}"#);
        assert_eq!(
            canon(r#"{"aa":1,"b":2,"a":3,"ab":0, "é":1, "z":1}"#),
            r#"{"a": 3, "b": 2, "z": 1, "aa": 1, "ab": 0, "é": 1}"#
        );
        assert_eq!(
            canon(r#" {"a": [1,2,{"c":null, "b" : true}], "x":{"x":1,"x":[1,2]}} "#),
            r#"{"a": [1, 2, {"b": true, "c": null}], "x": {"x": [1, 2]}}"#
        );
        assert_eq!(canon("  [ ]  "), "[]");
        assert_eq!(canon(" { } "), "{}");
        assert_eq!(canon("[[],{}]"), "[[], {}]");
    }

    #[test]
    fn strings_are_escaped_as_jsonb_prints_them() {
        assert_eq!(canon(r#""a\u00e9\n\/""#), "\"aé\\n/\"");
        assert_eq!(canon(r#""\u0001""#), r#""\u0001""#);
        assert_eq!(jsonb_text(r#""\u0000""#).unwrap_err().sqlstate(), "22P05");
    }

    #[test]
    fn invalid_json_is_refused() {
        for bad in ["not json", "{", "[1,]", "01", "{\"a\":1}x", "NaN", ""] {
            assert_eq!(jsonb_text(bad).unwrap_err().sqlstate(), "22P02", "{bad}");
            assert_eq!(validate_json(bad).unwrap_err().sqlstate(), "22P02", "{bad}");
        }
        assert!(validate_json(r#"{"a":1,"a":2}"#).is_ok());
    }

    #[test]
    fn steps_read_the_documents_own_text() {
        let doc = r#"{"a":1,"a":2, "b": [1,  2], "c": "x\ty", "d": null}"#;
        assert_eq!(member(doc, "a").unwrap().get(), "2");
        assert_eq!(member(doc, "b").unwrap().get(), "[1,  2]");
        assert_eq!(as_text(member(doc, "c").unwrap()).as_deref(), Some("x\ty"));
        assert_eq!(member(doc, "c").unwrap().get(), r#""x\ty""#);
        assert_eq!(as_text(member(doc, "d").unwrap()), None);
        assert!(member(doc, "zz").is_none());
        assert!(member("[1]", "a").is_none());
        assert_eq!(element("[1, 2, 3]", 1).unwrap().get(), "2");
        assert_eq!(element("[1, 2, 3]", -1).unwrap().get(), "3");
        assert!(element("[1, 2, 3]", 3).is_none());
        assert!(element(r#"{"a":1}"#, 0).is_none());
    }
}
