//! `jsonb` compares and sorts in PostgreSQL's `jsonb` order; `json` does not
//! compare at all, as in PostgreSQL.
//!
//! Freshet keeps `jsonb` as its canonical text ([`crate::json_text`]), so
//! DataFusion compared two `jsonb` values as text. That is wrong without an
//! error wherever the two orders differ: `'2'::jsonb < '10'::jsonb` was
//! false, `'{"a":1.0}'::jsonb = '{"a":1}'` was false, and `ORDER BY` of a
//! `jsonb` column put `null` after `true` and `"a"` after `10`. PostgreSQL
//! orders `jsonb` values by kind first (an empty top-level array, then
//! null, strings, numbers, booleans, arrays, objects), arrays by their
//! length and then element by element, objects by their number of members
//! and then member by member in the order `jsonb` stores keys, numbers as
//! numbers and strings as text.
//!
//! [`sort_key`] encodes a `jsonb` text as bytes whose bytewise order is that
//! order, and which are equal exactly when PostgreSQL calls the values
//! equal. [`JsonbOrdering`], an `AnalyzerRule` run after type coercion,
//! puts `freshet_jsonb_key(…)` around both sides of a comparison (`=`,
//! `<>`, `<`, `<=`, `>`, `>=`, `IS [NOT] DISTINCT FROM`, `BETWEEN`, `IN`)
//! whose operands PostgreSQL resolves to its `jsonb` operators, and around
//! each `jsonb` key of an `ORDER BY` (of a query, a window or an aggregate).
//!
//! Where PostgreSQL has no operator, the rule refuses as it does, with
//! 42883: a comparison with a `json` operand, ordering by `json`, and `min`
//! or `max` of either type. (They answered as text comparisons.)
//! [`JsonbComparisonOperands`], run before type coercion, refuses a
//! comparison of `jsonb` with a number or another type that is not text.
//! (DataFusion cast the `jsonb` side to it.)
//!
//! Not covered: `GROUP BY`, `DISTINCT` and joins' equality keys still
//! compare the canonical text, which differs from PostgreSQL's equality
//! only for numbers of equal value and different scale (`1.0` and `1`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr::{
    AggregateFunction, Between, InList, ScalarFunction, WindowFunction,
};
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, SortExpr, Volatility, WindowFunctionDefinition,
};
use datafusion::optimizer::AnalyzerRule;
use serde_json::value::RawValue;

use crate::json_operands::{operand, Operand};
use crate::json_text::syntax_error;
use crate::type_resolution::is_comparison;
use crate::EngineError;

/// Name of the function a `jsonb` comparison operand is wrapped in.
const JSONB_KEY: &str = "freshet_jsonb_key";

/// Registers the rule and its function with a session.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(udf().as_ref().clone());
    ctx.add_analyzer_rule(Arc::new(JsonbOrdering));
}

fn udf() -> Arc<ScalarUDF> {
    static UDF: std::sync::OnceLock<Arc<ScalarUDF>> = std::sync::OnceLock::new();
    UDF.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(JsonbKey {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        }))
    })
    .clone()
}

/// The analyzer rule described in the module docs.
#[derive(Debug, Default)]
pub(crate) struct JsonbOrdering;

impl AnalyzerRule for JsonbOrdering {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        let rewritten = plan.transform_up_with_subqueries(|node| {
            let node = crate::plan_rewrite::rewrite_node(node, rewrite)?;
            node.transform_data(|node| match node {
                LogicalPlan::Sort(mut sort) => {
                    let schema = sort.input.schema().clone();
                    let mut changed = false;
                    for key in &mut sort.expr {
                        changed |= order_key(key, &schema)?;
                    }
                    Ok(if changed {
                        Transformed::yes(LogicalPlan::Sort(sort))
                    } else {
                        Transformed::no(LogicalPlan::Sort(sort))
                    })
                }
                other => Ok(Transformed::no(other)),
            })
        })?;
        if rewritten.transformed {
            crate::plan_rewrite::recompute_all(rewritten.data)
        } else {
            Ok(rewritten.data)
        }
    }

    fn name(&self) -> &str {
        "freshet_jsonb_ordering"
    }
}

fn refuse(message: String) -> DataFusionError {
    DataFusionError::External(Box::new(EngineError::new("42883", message)))
}

/// `freshet_jsonb_key(expr)`, its argument as text (a NULL literal has
/// no type of its own).
fn key(expr: Expr, schema: &DFSchema) -> DfResult<Expr> {
    let expr = expr.cast_to(&DataType::Utf8, schema)?;
    Ok(Expr::ScalarFunction(ScalarFunction::new_udf(
        udf(),
        vec![expr],
    )))
}

/// Whether `expr` is already a sort key (the rule may run again over its
/// own output).
fn is_key(expr: &Expr) -> bool {
    matches!(expr, Expr::ScalarFunction(call) if call.name() == JSONB_KEY)
}

/// Makes one `ORDER BY` key sort in `jsonb` order; returns whether it
/// changed it.
fn order_key(sort: &mut SortExpr, schema: &DFSchema) -> DfResult<bool> {
    if is_key(&sort.expr) {
        return Ok(false);
    }
    match operand(&sort.expr, schema) {
        Operand::Jsonb => {
            let expr = std::mem::replace(&mut sort.expr, Expr::Literal(ScalarValue::Null, None));
            sort.expr = key(expr, schema)?;
            Ok(true)
        }
        Operand::Json => Err(refuse(
            "could not identify an ordering operator for type json".into(),
        )),
        _ => Ok(false),
    }
}

/// The type PostgreSQL compares operands of these kinds as: `Some(true)` for
/// `jsonb`, `Some(false)` for none (the other types' own operators), and
/// an error for `json`, which has no comparison operators.
fn comparison(kinds: &[Operand], op: &str) -> DfResult<bool> {
    let has = |kind| kinds.contains(&kind);
    if has(Operand::Json) {
        let name = |kind: &Operand| match kind {
            Operand::Json => "json",
            Operand::Jsonb => "jsonb",
            _ => "unknown",
        };
        return Err(refuse(format!(
            "operator does not exist: {} {op} {}",
            name(&kinds[0]),
            name(&kinds[kinds.len().min(2) - 1]),
        )));
    }
    Ok(has(Operand::Jsonb)
        && kinds
            .iter()
            .all(|kind| matches!(kind, Operand::Jsonb | Operand::Unknown)))
}

fn rewrite(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if is_comparison(&op) && !is_key(&left) && !is_key(&right) =>
        {
            let kinds = [operand(&left, schema), operand(&right, schema)];
            let shown = match op {
                Operator::IsDistinctFrom | Operator::IsNotDistinctFrom => "=".to_string(),
                other => other.to_string(),
            };
            if comparison(&kinds, &shown)? {
                Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr {
                    left: Box::new(key(*left, schema)?),
                    op,
                    right: Box::new(key(*right, schema)?),
                })))
            } else {
                Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                    left,
                    op,
                    right,
                })))
            }
        }
        Expr::Between(between) if !is_key(&between.expr) => {
            let kinds = [
                operand(&between.expr, schema),
                operand(&between.low, schema),
                operand(&between.high, schema),
            ];
            if comparison(&kinds, ">=")? {
                let Between {
                    expr,
                    negated,
                    low,
                    high,
                } = between;
                Ok(Transformed::yes(Expr::Between(Between {
                    expr: Box::new(key(*expr, schema)?),
                    negated,
                    low: Box::new(key(*low, schema)?),
                    high: Box::new(key(*high, schema)?),
                })))
            } else {
                Ok(Transformed::no(Expr::Between(between)))
            }
        }
        Expr::InList(list) if !is_key(&list.expr) => {
            let kinds: Vec<Operand> = std::iter::once(&*list.expr)
                .chain(&list.list)
                .map(|e| operand(e, schema))
                .collect();
            if comparison(&kinds, "=")? {
                let InList {
                    expr,
                    list,
                    negated,
                } = list;
                Ok(Transformed::yes(Expr::InList(InList {
                    expr: Box::new(key(*expr, schema)?),
                    list: list
                        .into_iter()
                        .map(|item| key(item, schema))
                        .collect::<DfResult<_>>()?,
                    negated,
                })))
            } else {
                Ok(Transformed::no(Expr::InList(list)))
            }
        }
        Expr::AggregateFunction(mut call) => {
            refuse_min_max(call.func.name(), &call.params.args, schema)?;
            let mut changed = false;
            for sort in &mut call.params.order_by {
                changed |= order_key(sort, schema)?;
            }
            let expr = Expr::AggregateFunction(AggregateFunction {
                func: call.func,
                params: call.params,
            });
            Ok(if changed {
                Transformed::yes(expr)
            } else {
                Transformed::no(expr)
            })
        }
        Expr::WindowFunction(mut window) => {
            if let WindowFunctionDefinition::AggregateUDF(f) = &window.fun {
                refuse_min_max(f.name(), &window.params.args, schema)?;
            }
            let mut changed = false;
            for sort in &mut window.params.order_by {
                changed |= order_key(sort, schema)?;
            }
            let WindowFunction { fun, params } = *window;
            let expr = Expr::WindowFunction(Box::new(WindowFunction { fun, params }));
            Ok(if changed {
                Transformed::yes(expr)
            } else {
                Transformed::no(expr)
            })
        }
        other => Ok(Transformed::no(other)),
    }
}

/// Refuses a comparison of `jsonb` with a number, a date or any other type
/// that is not text, as PostgreSQL does (42883: it has no such operator).
/// DataFusion cast the `jsonb` side to the other's type, so `jsonb_col = 1`
/// compared numbers or failed on the first row that was not one. Run before
/// type coercion, which puts that cast in, so a cast the user wrote
/// (`j::int = 1`) is told apart and kept. (A `text` operand keeps comparing
/// as text.)
#[derive(Debug, Default)]
pub(crate) struct JsonbComparisonOperands;

impl AnalyzerRule for JsonbComparisonOperands {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.apply_with_subqueries(|node| {
            let schema = crate::pg_compat::expression_schema(node);
            node.apply_expressions(|expr| {
                expr.apply(|e| {
                    if let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e {
                        if is_comparison(op) {
                            let kinds = [operand(left, &schema), operand(right, &schema)];
                            refuse_jsonb_with_non_text(&kinds, [left, right], op, &schema)?;
                        }
                    }
                    Ok(TreeNodeRecursion::Continue)
                })
            })
        })?;
        Ok(plan)
    }

    fn name(&self) -> &str {
        "freshet_jsonb_comparison_operands"
    }
}

fn refuse_jsonb_with_non_text(
    kinds: &[Operand; 2],
    operands: [&Expr; 2],
    op: &Operator,
    schema: &DFSchema,
) -> DfResult<()> {
    let other = match kinds {
        [Operand::Jsonb, Operand::Other] => operands[1],
        [Operand::Other, Operand::Jsonb] => operands[0],
        _ => return Ok(()),
    };
    // An operand whose type cannot be told here is left to the planner.
    let Ok(data_type) = other.get_type(schema) else {
        return Ok(());
    };
    if data_type.is_null()
        || matches!(
            data_type,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        )
    {
        return Ok(());
    }
    let other = crate::planning::sql_type_name(&data_type);
    let (left, right) = if matches!(kinds[0], Operand::Jsonb) {
        ("jsonb", other)
    } else {
        (other, "jsonb")
    };
    let op = match op {
        Operator::IsDistinctFrom | Operator::IsNotDistinctFrom => "=".to_string(),
        other => other.to_string(),
    };
    Err(refuse(format!(
        "operator does not exist: {left} {op} {right}"
    )))
}

/// PostgreSQL has no `min` or `max` of `json` or `jsonb`.
fn refuse_min_max(name: &str, args: &[Expr], schema: &DFSchema) -> DfResult<()> {
    if !matches!(name, "min" | "max") {
        return Ok(());
    }
    let type_name = match args.first().map(|arg| operand(arg, schema)) {
        Some(Operand::Jsonb) => "jsonb",
        Some(Operand::Json) => "json",
        _ => return Ok(()),
    };
    Err(refuse(format!(
        "function {name}({type_name}) does not exist"
    )))
}

/// `freshet_jsonb_key(jsonb)`: the value's [`sort_key`].
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonbKey {
    signature: Signature,
}

impl ScalarUDFImpl for JsonbKey {
    fn name(&self) -> &str {
        JSONB_KEY
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Binary)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        crate::udf_args::evaluate(&args.args, |arrays| {
            let [values] = arrays else {
                return Err(DataFusionError::Internal(format!(
                    "{JSONB_KEY} takes one argument"
                )));
            };
            let values = values.as_string::<i32>();
            let mut out = BinaryBuilder::with_capacity(values.len(), values.value_data().len());
            let mut buffer = Vec::new();
            for row in 0..values.len() {
                if values.is_null(row) {
                    out.append_null();
                    continue;
                }
                buffer.clear();
                sort_key(values.value(row), &mut buffer)
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                out.append_value(&buffer);
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        })
    }
}

// Tags of the kinds of value, in PostgreSQL's order of kinds.
const NULL: u8 = 0x01;
const STRING: u8 = 0x02;
const NUMBER: u8 = 0x03;
const BOOL: u8 = 0x04;
const ARRAY: u8 = 0x10;
const OBJECT: u8 = 0x11;

// Signs of a number, inside its tag.
const NEGATIVE: u8 = 0x01;
const ZERO: u8 = 0x02;
const POSITIVE: u8 = 0x03;

/// Appends to `out` bytes whose bytewise order is PostgreSQL's `jsonb`
/// order of the JSON `text`, equal exactly when PostgreSQL calls the two
/// values equal (22P02 when `text` is not JSON).
///
/// A top-level scalar is, in `jsonb`, an array of one element marked as a
/// scalar: it sorts among arrays by length first (so after `[]` and before
/// `[1, 2]`), and before a true array of one element. Inside a container
/// every value starts with its kind's tag, and each encoding ends in a way
/// that no longer one starts with, so concatenated encodings compare value
/// by value.
pub(crate) fn sort_key(text: &str, out: &mut Vec<u8>) -> Result<(), EngineError> {
    let raw: &RawValue = serde_json::from_str(text).map_err(syntax_error)?;
    match first_byte(raw) {
        Some(b'[' | b'{') => encode(raw, out),
        _ => {
            out.push(ARRAY);
            out.extend_from_slice(&1u32.to_be_bytes());
            out.push(0); // a scalar: before a true array of one element
            encode(raw, out)
        }
    }
}

fn first_byte(raw: &RawValue) -> Option<u8> {
    raw.get().trim_start().as_bytes().first().copied()
}

fn length(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes()
}

fn encode(raw: &RawValue, out: &mut Vec<u8>) -> Result<(), EngineError> {
    let text = raw.get().trim();
    match text.as_bytes().first() {
        Some(b'{') => {
            let members = crate::json_text::jsonb_members(text)?;
            out.push(OBJECT);
            out.extend_from_slice(&length(members.len()));
            for (key, value) in members {
                encode_string(&key, out);
                encode(value, out)?;
            }
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text).map_err(syntax_error)?;
            out.push(ARRAY);
            out.extend_from_slice(&length(items.len()));
            out.push(1); // a true array
            for item in items {
                encode(item, out)?;
            }
        }
        Some(b'"') => {
            let value: String = serde_json::from_str(text).map_err(syntax_error)?;
            encode_string(&value, out);
        }
        Some(b'n') => out.push(NULL),
        Some(b't') => out.extend_from_slice(&[BOOL, 1]),
        Some(b'f') => out.extend_from_slice(&[BOOL, 0]),
        _ => encode_number(text, out)?,
    }
    Ok(())
}

/// A string sorts bytewise, as text does in Freshet. A zero byte is
/// escaped (as 0x00 0xFF) so that the terminator (0x00 0x00) sorts before
/// any continuation.
fn encode_string(value: &str, out: &mut Vec<u8>) {
    out.push(STRING);
    for &byte in value.as_bytes() {
        out.push(byte);
        if byte == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// A JSON number as its sign, its decimal exponent and its significant
/// digits: the value is `0.d1d2…dn × 10^exponent` with `d1` not zero and
/// `dn` not zero, so equal values have equal encodings whatever their
/// scale. Positive numbers sort by exponent and then digits (a digit
/// string that is a prefix of another is smaller, which the terminator
/// below every digit gives); negative numbers sort by the complement.
fn encode_number(text: &str, out: &mut Vec<u8>) -> Result<(), EngineError> {
    let invalid = || EngineError::new("22P02", format!("invalid JSON number: {text}"));
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => {
            let exponent: i64 = unsigned[at + 1..]
                .trim_start_matches('+')
                .parse()
                .unwrap_or_else(|_| {
                    // Beyond i64: a huge or tiny magnitude either way.
                    if unsigned[at + 1..].starts_with('-') {
                        i64::MIN / 2
                    } else {
                        i64::MAX / 2
                    }
                });
            (&unsigned[..at], exponent)
        }
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(invalid());
    }
    let digits: Vec<u8> = whole.bytes().chain(fraction.bytes()).collect();
    let leading = digits.iter().take_while(|&&d| d == b'0').count();
    let significant = &digits[leading..];
    let trailing = significant.iter().rev().take_while(|&&d| d == b'0').count();
    let significant = &significant[..significant.len() - trailing];
    if significant.is_empty() {
        out.extend_from_slice(&[NUMBER, ZERO]);
        return Ok(());
    }
    let point = (whole.len() as i64 - leading as i64).saturating_add(exponent);
    // The exponent in an order-preserving unsigned form.
    let exponent_bytes = ((point as u64) ^ (1 << 63)).to_be_bytes();
    if negative {
        out.extend_from_slice(&[NUMBER, NEGATIVE]);
        out.extend(exponent_bytes.iter().map(|b| !b));
        out.extend(significant.iter().map(|d| !d));
        out.push(0xFF);
    } else {
        out.extend_from_slice(&[NUMBER, POSITIVE]);
        out.extend_from_slice(&exponent_bytes);
        out.extend_from_slice(significant);
        out.push(0x00);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    /// PostgreSQL's comparison of two `jsonb` texts.
    fn compare(a: &str, b: &str) -> Ordering {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        sort_key(a, &mut x).unwrap();
        sort_key(b, &mut y).unwrap();
        x.cmp(&y)
    }

    #[test]
    fn kinds_sort_in_postgres_order() {
        // PostgreSQL 15: SELECT v FROM (VALUES …) t(v) ORDER BY v::jsonb.
        let sorted = [
            "[]",
            "null",
            "\"\"",
            "\"a\"",
            "\"b\"",
            "-10",
            "-2",
            "-1.5",
            "0",
            "0.001",
            "1",
            "2",
            "10",
            "1e20",
            "false",
            "true",
            "[null]",
            "[1]",
            "[\"a\", 1]",
            "[1, 2]",
            "{}",
            "{\"b\": 1}",
            "{\"a\": 1, \"b\": 1}",
            "{\"b\": 1, \"aa\": 1}",
        ];
        for pair in sorted.windows(2) {
            assert_eq!(compare(pair[0], pair[1]), Ordering::Less, "{pair:?}");
        }
    }

    #[test]
    fn a_scalar_sorts_before_an_array_of_one_element() {
        assert_eq!(compare("1", "[1]"), Ordering::Less);
        assert_eq!(compare("true", "[0]"), Ordering::Less);
        assert_eq!(compare("\"z\"", "[]"), Ordering::Greater);
    }

    #[test]
    fn numbers_compare_as_numbers() {
        assert_eq!(compare("1.0", "1"), Ordering::Equal);
        assert_eq!(compare("100", "1e2"), Ordering::Equal);
        assert_eq!(compare("-0", "0"), Ordering::Equal);
        assert_eq!(compare("0.12", "0.123"), Ordering::Less);
        assert_eq!(compare("-0.12", "-0.123"), Ordering::Greater);
        assert_eq!(compare("-1e-30", "1e-30"), Ordering::Less);
        assert_eq!(compare("99999999999999999999", "1e20"), Ordering::Less);
        assert_eq!(compare("{\"a\": 1.50}", "{\"a\": 1.5}"), Ordering::Equal);
    }

    #[test]
    fn objects_compare_member_by_member_in_key_order() {
        // Keys in storage order: `b` before `aa`.
        assert_eq!(
            compare("{\"aa\": 1, \"b\": 2}", "{\"aa\": 2, \"b\": 1}"),
            Ordering::Greater
        );
        assert_eq!(
            compare("{\"a\": 1, \"a\": 2}", "{\"a\": 2}"),
            Ordering::Equal
        );
        assert_eq!(compare("{\"a\": [1]}", "{\"a\": 1}"), Ordering::Greater);
    }

    #[test]
    fn strings_with_zero_bytes_keep_prefix_order() {
        assert_eq!(compare("\"a\"", "\"a\\u0000\""), Ordering::Less);
        assert_eq!(compare("\"a\\u0000\"", "\"a\\u0001\""), Ordering::Less);
    }

    #[test]
    fn text_that_is_not_json_is_refused() {
        let mut out = Vec::new();
        assert_eq!(sort_key("{x", &mut out).unwrap_err().sqlstate(), "22P02");
    }
}
