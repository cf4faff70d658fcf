//! `jsonb` containment and existence, and the JSON type and length
//! functions, as PostgreSQL has them.
//!
//! DataFusion parses `@>`, `<@`, `?`, `?|` and `?&` but plans them for
//! arrays only, so on `jsonb` they failed. [`JsonbOperators`] plans them,
//! when the left operand (the right one for `<@`) is `jsonb`, into
//! PostgreSQL's own functions, registered here under its names:
//!
//! * `a @> b` is `jsonb_contains(a, b)` and `a <@ b` is
//!   `jsonb_contains(b, a)`. An object contains an object whose every key
//!   it has, with a value that contains that key's value; an array
//!   contains an array whose every element it contains (a scalar element
//!   must equal one of its scalars, a nested array or object must be
//!   contained by one of its elements of the same kind); scalars contain
//!   equal scalars (numbers by value, `1.0` and `1`). At the top level
//!   only, an array also contains a scalar it holds (`'["a"]' @> '"a"'`).
//! * `a ? key` is `jsonb_exists`: `key` is a key of the object, a string
//!   element of the array, or the string itself. `?|` (`jsonb_exists_any`)
//!   and `?&` (`jsonb_exists_all`) take a `text[]` of keys, whose NULL
//!   elements are skipped.
//!
//! On `json` these operators do not exist in PostgreSQL, and are 42883 here
//! too. `jsonb_typeof`/`json_typeof` name a value's kind and
//! `jsonb_array_length`/`json_array_length` count an array's elements
//! (22023 for anything else).

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, ListArray, StringArray,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DFSchema, DataFusionError, Result as DfResult};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{Expr, ScalarUDF};
use datafusion::sql::sqlparser::ast::BinaryOperator;
use serde_json::value::RawValue;

use crate::json_operands::{operand, Operand};
use crate::json_text::syntax_error;
use crate::EngineError;

/// Registers the functions and the operators' planner.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    for function in functions() {
        ctx.register_udf(function.as_ref().clone());
    }
    // SessionContext shares its state between clones.
    let mut registry = ctx.clone();
    if let Err(e) = registry.register_expr_planner(Arc::new(JsonbOperators)) {
        tracing::warn!(error = %e, "cannot register the jsonb containment operators");
    }
}

fn functions() -> [Arc<ScalarUDF>; 8] {
    static CONTAINS: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    static EXISTS: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    static EXISTS_ANY: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    static EXISTS_ALL: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    static JSONB_TYPEOF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    static JSON_TYPEOF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    static JSONB_LENGTH: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    static JSON_LENGTH: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    use crate::udf_args::row_function;
    [
        row_function(&CONTAINS, "jsonb_contains", 2, DataType::Boolean, |a| {
            pairs(a, contains_text)
        }),
        row_function(&EXISTS, "jsonb_exists", 2, DataType::Boolean, |a| {
            pairs(a, |doc, key| Ok(exists(doc, key)))
        }),
        row_function(&EXISTS_ANY, "jsonb_exists_any", 2, DataType::Boolean, |a| {
            key_lists(a, |doc, keys| keys.iter().any(|key| exists(doc, key)))
        }),
        row_function(&EXISTS_ALL, "jsonb_exists_all", 2, DataType::Boolean, |a| {
            key_lists(a, |doc, keys| keys.iter().all(|key| exists(doc, key)))
        }),
        row_function(&JSONB_TYPEOF, "jsonb_typeof", 1, DataType::Utf8, type_names),
        row_function(&JSON_TYPEOF, "json_typeof", 1, DataType::Utf8, type_names),
        row_function(
            &JSONB_LENGTH,
            "jsonb_array_length",
            1,
            DataType::Int32,
            |a| array_lengths(a, true),
        ),
        row_function(&JSON_LENGTH, "json_array_length", 1, DataType::Int32, |a| {
            array_lengths(a, false)
        }),
    ]
}

/// What a JSON value is, by its first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Object,
    Array,
    String,
    Number,
    Boolean,
    Null,
}

fn kind(raw: &RawValue) -> Kind {
    match raw.get().trim_start().as_bytes().first() {
        Some(b'{') => Kind::Object,
        Some(b'[') => Kind::Array,
        Some(b'"') => Kind::String,
        Some(b't' | b'f') => Kind::Boolean,
        Some(b'n') => Kind::Null,
        _ => Kind::Number,
    }
}

fn parse(text: &str) -> Result<&RawValue, EngineError> {
    serde_json::from_str(text).map_err(syntax_error)
}

fn items(raw: &RawValue) -> Result<Vec<&RawValue>, EngineError> {
    serde_json::from_str(raw.get()).map_err(syntax_error)
}

/// Whether two scalars are equal as `jsonb` compares them.
fn scalars_equal(a: &RawValue, b: &RawValue) -> Result<bool, EngineError> {
    if kind(a) != kind(b) {
        return Ok(false);
    }
    let (mut x, mut y) = (Vec::new(), Vec::new());
    crate::jsonb_order::sort_key(a.get(), &mut x)?;
    crate::jsonb_order::sort_key(b.get(), &mut y)?;
    Ok(x == y)
}

/// Whether `doc` contains `other` (see the module docs); `top` for the
/// operands themselves, where an array also contains a scalar it holds.
fn contains(doc: &RawValue, other: &RawValue, top: bool) -> Result<bool, EngineError> {
    match (kind(doc), kind(other)) {
        (Kind::Object, Kind::Object) => {
            let members = crate::json_text::jsonb_members(doc.get())?;
            for (key, wanted) in crate::json_text::jsonb_members(other.get())? {
                let Some((_, value)) = members.iter().find(|(k, _)| *k == key) else {
                    return Ok(false);
                };
                if !contains(value, wanted, false)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        (Kind::Array, Kind::Array) => {
            let elements = items(doc)?;
            'wanted: for wanted in items(other)? {
                for element in &elements {
                    let found = match (kind(element), kind(wanted)) {
                        (Kind::Object, Kind::Object) | (Kind::Array, Kind::Array) => {
                            contains(element, wanted, false)?
                        }
                        (Kind::Object | Kind::Array, _) | (_, Kind::Object | Kind::Array) => false,
                        _ => scalars_equal(element, wanted)?,
                    };
                    if found {
                        continue 'wanted;
                    }
                }
                return Ok(false);
            }
            Ok(true)
        }
        (Kind::Array, Kind::Object) | (Kind::Object, _) | (_, Kind::Object | Kind::Array) => {
            Ok(false)
        }
        (Kind::Array, _) if top => {
            for element in items(doc)? {
                if !matches!(kind(element), Kind::Object | Kind::Array)
                    && scalars_equal(element, other)?
                {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        (Kind::Array, _) => Ok(false),
        _ => scalars_equal(doc, other),
    }
}

/// Whether `key` is a key of the object `doc`, a string element of the
/// array `doc`, or the string `doc` itself.
fn exists(doc: &RawValue, key: &str) -> bool {
    let is_key = |raw: &RawValue| {
        kind(raw) == Kind::String
            && serde_json::from_str::<String>(raw.get()).is_ok_and(|s| s == key)
    };
    match kind(doc) {
        Kind::Object => crate::json_text::member(doc.get(), key).is_some(),
        Kind::Array => items(doc).is_ok_and(|elements| elements.into_iter().any(is_key)),
        _ => is_key(doc),
    }
}

fn text(array: &ArrayRef) -> DfResult<ArrayRef> {
    Ok(datafusion::arrow::compute::cast(array, &DataType::Utf8)?)
}

/// A boolean per row of `f(document, second)`, NULL where either is.
fn pairs(
    arrays: &[ArrayRef],
    f: impl Fn(&RawValue, &str) -> Result<bool, EngineError>,
) -> DfResult<ArrayRef> {
    let [docs, seconds] = arrays else {
        return Err(DataFusionError::Internal("takes two arguments".into()));
    };
    let (docs, seconds) = (text(docs)?, text(seconds)?);
    let out = docs
        .as_string::<i32>()
        .iter()
        .zip(seconds.as_string::<i32>().iter())
        .map(|pair| match pair {
            (Some(doc), Some(second)) => Ok(Some(f(parse(doc)?, second)?)),
            _ => Ok(None),
        })
        .collect::<Result<BooleanArray, EngineError>>()?;
    Ok(Arc::new(out))
}

/// `jsonb_contains`'s second argument is a document too.
fn contains_text(doc: &RawValue, other: &str) -> Result<bool, EngineError> {
    contains(doc, parse(other)?, true)
}

/// A boolean per row of `f(document, keys)`, for a `text[]` of keys (its
/// NULL elements skipped); NULL where the document or the array is.
fn key_lists(arrays: &[ArrayRef], f: impl Fn(&RawValue, &[&str]) -> bool) -> DfResult<ArrayRef> {
    let [docs, lists] = arrays else {
        return Err(DataFusionError::Internal("takes two arguments".into()));
    };
    let docs = text(docs)?;
    // A `text[]`, or text PostgreSQL reads as one (`'{a,b}'`): arrow's
    // cast would make the whole text one key.
    let texts = match lists.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(text(lists)?),
        _ => None,
    };
    let lists = match &texts {
        Some(_) => None,
        None => Some(datafusion::arrow::compute::cast(
            lists,
            &DataType::List(Arc::new(
                datafusion::arrow::datatypes::Field::new_list_field(DataType::Utf8, true),
            )),
        )?),
    };
    let mut out = Vec::with_capacity(docs.len());
    for (row, doc) in docs.as_string::<i32>().iter().enumerate() {
        let keys: Option<Vec<Option<String>>> = match (&texts, &lists) {
            (Some(texts), _) => {
                let texts = texts.as_string::<i32>();
                if texts.is_null(row) {
                    None
                } else {
                    let text = texts.value(row);
                    Some(crate::array_literals::elements(text).ok_or_else(|| {
                        EngineError::new("22P02", format!("malformed array literal: \"{text}\""))
                    })?)
                }
            }
            (None, Some(lists)) => {
                let lists: &ListArray = lists.as_list::<i32>();
                (!lists.is_null(row)).then(|| {
                    let keys = lists.value(row);
                    let keys = keys.as_string::<i32>();
                    keys.iter().map(|k| k.map(str::to_string)).collect()
                })
            }
            (None, None) => None,
        };
        let (Some(doc), Some(keys)) = (doc, keys) else {
            out.push(None);
            continue;
        };
        let keys: Vec<&str> = keys.iter().flatten().map(String::as_str).collect();
        out.push(Some(f(parse(doc)?, &keys)));
    }
    Ok(Arc::new(BooleanArray::from(out)))
}

fn type_names(arrays: &[ArrayRef]) -> DfResult<ArrayRef> {
    let [docs] = arrays else {
        return Err(DataFusionError::Internal("takes one argument".into()));
    };
    let docs = text(docs)?;
    let out = docs
        .as_string::<i32>()
        .iter()
        .map(|doc| {
            let Some(doc) = doc else { return Ok(None) };
            Ok(Some(match kind(parse(doc)?) {
                Kind::Object => "object",
                Kind::Array => "array",
                Kind::String => "string",
                Kind::Number => "number",
                Kind::Boolean => "boolean",
                Kind::Null => "null",
            }))
        })
        .collect::<Result<StringArray, EngineError>>()?;
    Ok(Arc::new(out))
}

/// The number of elements of each array; 22023 for anything else, worded
/// as PostgreSQL words it for `jsonb` (`json` says "non-array" of both).
fn array_lengths(arrays: &[ArrayRef], jsonb: bool) -> DfResult<ArrayRef> {
    let [docs] = arrays else {
        return Err(DataFusionError::Internal("takes one argument".into()));
    };
    let docs = text(docs)?;
    let out = docs
        .as_string::<i32>()
        .iter()
        .map(|doc| {
            let Some(doc) = doc else { return Ok(None) };
            let raw = parse(doc)?;
            match kind(raw) {
                Kind::Array => Ok(Some(i32::try_from(items(raw)?.len()).unwrap_or(i32::MAX))),
                Kind::Object => Err(not_an_array("a non-array")),
                _ if jsonb => Err(not_an_array("a scalar")),
                _ => Err(not_an_array("a non-array")),
            }
        })
        .collect::<Result<Int32Array, EngineError>>()?;
    Ok(Arc::new(out))
}

fn not_an_array(what: &str) -> EngineError {
    EngineError::new("22023", format!("cannot get array length of {what}"))
}

/// Plans `@>`, `<@`, `?`, `?|` and `?&` on `jsonb` (see the module docs).
#[derive(Debug)]
struct JsonbOperators;

impl ExprPlanner for JsonbOperators {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> DfResult<PlannerResult<RawBinaryExpr>> {
        // Indexes into `functions()`.
        let (function, document, argument) = match expr.op {
            BinaryOperator::AtArrow => (0, &expr.left, &expr.right),
            BinaryOperator::ArrowAt => (0, &expr.right, &expr.left),
            BinaryOperator::Question => (1, &expr.left, &expr.right),
            BinaryOperator::QuestionPipe => (2, &expr.left, &expr.right),
            BinaryOperator::QuestionAnd => (3, &expr.left, &expr.right),
            _ => return Ok(PlannerResult::Original(expr)),
        };
        let containment = matches!(expr.op, BinaryOperator::AtArrow | BinaryOperator::ArrowAt);
        let (doc_kind, arg_kind) = (operand(document, schema), operand(argument, schema));
        let plan = if containment {
            matches!(
                (doc_kind, arg_kind),
                (Operand::Jsonb, Operand::Jsonb | Operand::Unknown)
                    | (Operand::Unknown, Operand::Jsonb)
            )
        } else {
            doc_kind == Operand::Jsonb
        };
        let json_involved = [doc_kind, arg_kind]
            .iter()
            .any(|kind| matches!(kind, Operand::Jsonb | Operand::Json));
        if !plan && json_involved {
            let name = |kind: Operand| match kind {
                Operand::Jsonb => "jsonb",
                Operand::Json => "json",
                Operand::Unknown => "unknown",
                Operand::Other => "text",
            };
            let (left, right) = if matches!(expr.op, BinaryOperator::ArrowAt) {
                (arg_kind, doc_kind)
            } else {
                (doc_kind, arg_kind)
            };
            return Err(EngineError::new(
                "42883",
                format!(
                    "operator does not exist: {} {} {}",
                    name(left),
                    expr.op,
                    name(right)
                ),
            )
            .into());
        }
        if !plan {
            return Ok(PlannerResult::Original(expr));
        }
        let function = functions()[function].clone();
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(function, vec![document.clone(), argument.clone()]),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains_str(a: &str, b: &str) -> bool {
        contains_text(parse(a).unwrap(), b).unwrap()
    }

    #[test]
    fn containment_follows_postgresql() {
        // Each answer is PostgreSQL 15's.
        for (a, b, expected) in [
            ("[1, 2, [1, 3]]", "[1, 3]", false),
            ("[1, 2, [1, 3]]", "[[1, 3]]", true),
            (r#"["foo", "bar"]"#, r#""foo""#, true),
            (r#"{"a": [1, 2]}"#, r#"{"a": 1}"#, false),
            (r#"{"a": [1, 2]}"#, r#"{"a": [1]}"#, true),
            (r#"{"a": 1.0}"#, r#"{"a": 1}"#, true),
            ("1", "[1]", false),
            ("[1]", "1", true),
            ("{}", "{}", true),
            ("[]", "[]", true),
            ("[1]", "[]", true),
            (r#"{"a": {"b": 1, "c": 2}}"#, r#"{"a": {"b": 1}}"#, true),
            ("[[1, 2]]", "[[1]]", true),
            (r#"{"a": 1}"#, "[]", false),
            (r#""a""#, r#""a""#, true),
            ("1", "1.00", true),
            ("true", "1", false),
        ] {
            assert_eq!(contains_str(a, b), expected, "{a} @> {b}");
        }
    }

    #[test]
    fn existence_follows_postgresql() {
        for (doc, key, expected) in [
            (r#""foo""#, "foo", true),
            (r#"["a", 1]"#, "a", true),
            (r#"["a", 1]"#, "1", false),
            (r#"{"a": null}"#, "a", true),
            (r#"{"a": {"b": 1}}"#, "b", false),
        ] {
            assert_eq!(exists(parse(doc).unwrap(), key), expected, "{doc} ? {key}");
        }
    }
}
