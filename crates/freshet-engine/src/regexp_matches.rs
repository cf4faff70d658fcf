//! `regexp_matches(text, pattern [, flags])`, PostgreSQL's set-returning
//! regular expression match.
//!
//! It returns one row per match (only the first unless `flags` has `g`),
//! each a `text[]`: the captured groups, or the whole match when the
//! pattern has none; a group that took part in no match is NULL. No match,
//! or a NULL argument, is no row. [`crate::set_returning`] runs it as
//! `unnest` of the list [`RegexpMatches`] gives for a row.
//!
//! Patterns are Rust's regular expressions, as in Freshet's other regular
//! expression functions, with PostgreSQL's default that `.` matches a
//! newline. Flags: `g` (every match), `i` and `c` (case-insensitive or
//! -sensitive), `n` (newline-sensitive: `.` stops at a newline and `^`
//! and `$` match at lines), `s` (the default), `x` (expanded syntax);
//! any other is 22023, as PostgreSQL answers an option it does not know.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListBuilder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::EngineError;

/// Name of [`RegexpMatches`].
pub(crate) const REGEXP_MATCHES: &str = "freshet_regexp_matches";

/// Registers [`RegexpMatches`].
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(RegexpMatches {
        signature: Signature::variadic_any(Volatility::Immutable),
    }));
}

/// The list of a row's matches, each a list of texts.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RegexpMatches {
    signature: Signature,
}

fn text_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
}

impl ScalarUDFImpl for RegexpMatches {
    fn name(&self) -> &str {
        REGEXP_MATCHES
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            text_list(),
            true,
        ))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        crate::udf_args::evaluate(&args.args, |arrays| {
            if !(2..=3).contains(&arrays.len()) {
                return Err(EngineError::new(
                    "42883",
                    "function regexp_matches takes a text, a pattern and optional flags",
                )
                .into());
            }
            let texts: Vec<ArrayRef> = arrays
                .iter()
                .map(|a| datafusion::arrow::compute::cast(a, &DataType::Utf8))
                .collect::<Result<_, _>>()?;
            let column = |i: usize| texts.get(i).map(|a| a.as_string::<i32>());
            let (subjects, patterns, flags) = (column(0), column(1), column(2));
            let (Some(subjects), Some(patterns)) = (subjects, patterns) else {
                return Err(DataFusionError::Internal("regexp_matches arguments".into()));
            };
            let mut out = ListBuilder::new(ListBuilder::new(StringBuilder::new()));
            // The last pattern compiled, kept while rows repeat it.
            let mut compiled: Option<((String, String), (regex::Regex, bool))> = None;
            for row in 0..subjects.len() {
                let flag_text = match flags {
                    Some(flags) if flags.is_null(row) => None,
                    Some(flags) => Some(flags.value(row)),
                    None => Some(""),
                };
                let (Some(flag_text), false, false) =
                    (flag_text, subjects.is_null(row), patterns.is_null(row))
                else {
                    out.append(true);
                    continue;
                };
                let key = (patterns.value(row).to_string(), flag_text.to_string());
                if compiled.as_ref().map(|(k, _)| k) != Some(&key) {
                    compiled = Some((key.clone(), compile(&key.0, &key.1)?));
                }
                let Some((_, (regex, global))) = &compiled else {
                    return Err(DataFusionError::Internal("no pattern".into()));
                };
                for captures in matches(regex, subjects.value(row), *global) {
                    let groups = out.values();
                    if captures.len() == 1 {
                        groups
                            .values()
                            .append_option(captures.get(0).map(|m| m.as_str()));
                    } else {
                        for group in captures.iter().skip(1) {
                            groups.values().append_option(group.map(|m| m.as_str()));
                        }
                    }
                    groups.append(true);
                }
                out.append(true);
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        })
    }
}

/// The matches of `regex` in `text` as PostgreSQL finds them: the first
/// only unless `global`; the next search starts where a match ended, one
/// character on after an empty match, and an empty match right after
/// another match counts (`regexp_matches('aaa', 'a*', 'g')` is `{aaa}` and
/// `{""}`; Rust's iterator skips that one).
fn matches<'t>(regex: &regex::Regex, text: &'t str, global: bool) -> Vec<regex::Captures<'t>> {
    let mut found = Vec::new();
    let mut start = 0;
    while start <= text.len() {
        let Some(captures) = regex.captures_at(text, start) else {
            break;
        };
        let Some(whole) = captures.get(0) else {
            break;
        };
        start = if whole.is_empty() {
            whole.end() + text[whole.end()..].chars().next().map_or(1, char::len_utf8)
        } else {
            whole.end()
        };
        found.push(captures);
        if !global {
            break;
        }
    }
    found
}

/// The pattern with PostgreSQL's flags, and whether `g` was given.
fn compile(pattern: &str, flags: &str) -> Result<(regex::Regex, bool), EngineError> {
    let mut builder = regex::RegexBuilder::new(pattern);
    builder.dot_matches_new_line(true);
    let mut global = false;
    for flag in flags.chars() {
        match flag {
            'g' => global = true,
            'i' => {
                builder.case_insensitive(true);
            }
            'c' => {
                builder.case_insensitive(false);
            }
            'n' | 'm' => {
                builder.dot_matches_new_line(false).multi_line(true);
            }
            's' => {
                builder.dot_matches_new_line(true).multi_line(false);
            }
            'x' => {
                builder.ignore_whitespace(true);
            }
            other => {
                return Err(EngineError::new(
                    "22023",
                    format!("invalid regular expression option: \"{other}\""),
                ))
            }
        }
    }
    let regex = builder
        .build()
        .map_err(|e| EngineError::new("2201B", format!("invalid regular expression: {e}")))?;
    Ok((regex, global))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(text: &str, pattern: &str, flags: &str) -> Vec<Vec<Option<String>>> {
        let (regex, global) = compile(pattern, flags).unwrap();
        let mut rows = Vec::new();
        for captures in super::matches(&regex, text, global) {
            let groups: Vec<Option<String>> = if captures.len() == 1 {
                vec![captures.get(0).map(|m| m.as_str().to_string())]
            } else {
                captures
                    .iter()
                    .skip(1)
                    .map(|g| g.map(|m| m.as_str().to_string()))
                    .collect()
            };
            rows.push(groups);
        }
        rows
    }

    #[test]
    fn flags_follow_postgresql() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            matches("foobarbequebaz", "(bar)(beque)", ""),
            vec![vec![s("bar"), s("beque")]]
        );
        assert_eq!(
            matches("foobarbequebazilbarfbonk", "(b[^b]+)(b[^b]+)", "g"),
            vec![vec![s("bar"), s("beque")], vec![s("bazil"), s("barf")]]
        );
        assert_eq!(matches("ABC", "b", "i"), vec![vec![s("B")]]);
        assert_eq!(matches("a\nb", "a.b", ""), vec![vec![s("a\nb")]]);
        assert!(matches("a\nb", "a.b", "n").is_empty());
        assert_eq!(matches("ab", "(x)?b", ""), vec![vec![None]]);
        // Empty matches count, as in PostgreSQL.
        assert_eq!(matches("aaa", "a*", "g"), vec![vec![s("aaa")], vec![s("")]]);
        assert_eq!(
            matches("xaxx", "x*", "g"),
            vec![vec![s("x")], vec![s("")], vec![s("xx")], vec![s("")]]
        );
        assert_eq!(compile("a", "z").unwrap_err().sqlstate(), "22023");
    }
}
