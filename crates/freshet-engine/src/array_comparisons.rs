//! `x op ANY(array)` and `x op ALL(array)` with SQL's NULL rules.
//!
//! PostgreSQL compares `x` with every element: ANY is true when one
//! comparison is true, false when all are false (or the array is empty), and
//! NULL otherwise, so `2 = ANY(ARRAY[1, NULL])` is NULL and
//! `NOT (2 = ANY(ARRAY[1, NULL]))` keeps no row. ALL is the mirror image.
//! DataFusion's plan for ANY (`array_has`, or a bound from `array_min` /
//! `array_max`) answers false where a NULL element should make it NULL, and
//! datafusion-pg-catalog's rewrite (`= ANY` and `<> ALL` into
//! `array_contains`) ignores NULL elements in both directions and splits a
//! text array (`= ANY('{"a,b",c}')`) on every comma: wrong rows, without an
//! error.
//!
//! [`rewrite`] replaces each such comparison in a user's statement:
//!
//! * over columns, constants and deterministic functions, with a `CASE`
//!   that decides it in SQL's order: a NULL array, an empty array, a NULL
//!   `x`, a comparison that decides (found through DataFusion's vectorized,
//!   NULL-ignoring `array_has` / `array_min` / `array_max`), then a NULL
//!   element. DataFusion evaluates the repeated operands once per row.
//! * otherwise (a parameter, which would lose the type its one use gives
//!   it; a subquery; a volatile function or a model call, which must run
//!   once; a text literal, whose element type is `x`'s) with a call of
//!   [`QuantifiedComparison`], which compares `x` with each element of the
//!   row's array and folds the answers with SQL's rules. A text array (a
//!   literal, or a parameter the client sent as text) is read as
//!   PostgreSQL's `array_in` reads it, with `x`'s element type.
//!
//! `ANY(subquery)` is a subquery comparison, not an array one: `= ANY` and
//! `<> ALL` become `IN` and `NOT IN`, the other operators are planned by
//! DataFusion (and [`crate::subplan`]).

use std::ops::ControlFlow;

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Datum, Scalar, StringArray,
};
use datafusion::arrow::compute::kernels::cmp;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{
    visit_expressions, visit_expressions_mut, BinaryOperator, Expr, Statement, Value,
};

use crate::EngineError;

/// Name of the function [`rewrite`] calls for comparisons it cannot write
/// as a `CASE`.
const QUANTIFIED_COMPARISON: &str = "freshet_quantified_comparison";

/// Registers [`QuantifiedComparison`].
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(QuantifiedComparison {
        signature: Signature::user_defined(Volatility::Immutable),
    }));
}

/// Replaces the ANY / ALL comparisons of `statement` as the module docs say.
pub(crate) fn rewrite(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        let replaced = match expr {
            Expr::AnyOp {
                left,
                compare_op,
                right,
                ..
            } if !is_subquery(right) => decide(left, compare_op, right, Quantifier::Any),
            Expr::AllOp {
                left,
                compare_op,
                right,
            } if !is_subquery(right) => decide(left, compare_op, right, Quantifier::All),
            _ => None,
        };
        // `x = ANY (subquery)` is `x IN (subquery)`, and `x <> ALL
        // (subquery)` is `x NOT IN (subquery)`, NULLs included (SQL defines
        // them so). datafusion-pg-catalog's rewrite would otherwise take
        // them for array comparisons, which fail to plan.
        let replaced = replaced.or_else(|| match expr {
            Expr::AnyOp {
                left,
                compare_op: BinaryOperator::Eq,
                right,
                ..
            } => in_subquery(left, right, false),
            Expr::AllOp {
                left,
                compare_op: BinaryOperator::NotEq,
                right,
            } => in_subquery(left, right, true),
            _ => None,
        });
        if let Some(replaced) = replaced {
            *expr = replaced;
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Whether the right side of ANY/ALL is a subquery, parentheses aside.
fn is_subquery(right: &Expr) -> bool {
    matches!(without_parentheses(right), Expr::Subquery(_))
}

fn without_parentheses(mut expr: &Expr) -> &Expr {
    while let Expr::Nested(inner) = expr {
        expr = inner;
    }
    expr
}

/// `x [NOT] IN (subquery)` for a `right` that is a subquery.
fn in_subquery(x: &Expr, right: &Expr, negated: bool) -> Option<Expr> {
    match without_parentheses(right) {
        Expr::Subquery(query) => Some(Expr::InSubquery {
            expr: Box::new(x.clone()),
            subquery: query.clone(),
            negated,
        }),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quantifier {
    Any,
    All,
}

impl Quantifier {
    fn name(self) -> &'static str {
        match self {
            Quantifier::Any => "any",
            Quantifier::All => "all",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "any" => Some(Quantifier::Any),
            "all" => Some(Quantifier::All),
            _ => None,
        }
    }
}

/// The comparison operators ANY and ALL take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl Comparison {
    fn from_operator(op: &BinaryOperator) -> Option<Self> {
        Some(match op {
            BinaryOperator::Eq => Comparison::Eq,
            BinaryOperator::NotEq => Comparison::NotEq,
            BinaryOperator::Lt => Comparison::Lt,
            BinaryOperator::LtEq => Comparison::LtEq,
            BinaryOperator::Gt => Comparison::Gt,
            BinaryOperator::GtEq => Comparison::GtEq,
            _ => return None,
        })
    }

    fn symbol(self) -> &'static str {
        match self {
            Comparison::Eq => "=",
            Comparison::NotEq => "<>",
            Comparison::Lt => "<",
            Comparison::LtEq => "<=",
            Comparison::Gt => ">",
            Comparison::GtEq => ">=",
        }
    }

    fn from_symbol(symbol: &str) -> Option<Self> {
        [
            Comparison::Eq,
            Comparison::NotEq,
            Comparison::Lt,
            Comparison::LtEq,
            Comparison::Gt,
            Comparison::GtEq,
        ]
        .into_iter()
        .find(|c| c.symbol() == symbol)
    }

    /// `x op element` for each element: NULL where either is NULL.
    fn apply(self, x: &dyn Datum, elements: &dyn Datum) -> DfResult<BooleanArray> {
        Ok(match self {
            Comparison::Eq => cmp::eq(x, elements),
            Comparison::NotEq => cmp::neq(x, elements),
            Comparison::Lt => cmp::lt(x, elements),
            Comparison::LtEq => cmp::lt_eq(x, elements),
            Comparison::Gt => cmp::gt(x, elements),
            Comparison::GtEq => cmp::gt_eq(x, elements),
        }?)
    }
}

/// The `CASE` for `x op ANY/ALL(array)`, a call of
/// [`QuantifiedComparison`] where the `CASE` cannot be used, or `None` for
/// an operator neither takes.
fn decide(x: &Expr, op: &BinaryOperator, array: &Expr, quantifier: Quantifier) -> Option<Expr> {
    let comparison = Comparison::from_operator(op)?;
    if !plain(x) || !plain(array) || matches!(array, Expr::Value(_)) {
        return crate::pg_compat::parse_expr(&format!(
            "{QUANTIFIED_COMPARISON}(({x}), ({array}), '{}', '{}')",
            comparison.symbol(),
            quantifier.name()
        ));
    }
    let min = format!("array_min({array})");
    let max = format!("array_max({array})");
    let has = format!("array_has({array}, {x})");
    let differs = format!("(({min}) <> ({x}) OR ({max}) <> ({x}))");
    // For ANY: some element makes the comparison true. For ALL: some
    // element makes it false. NULL elements are ignored by these functions;
    // the CASE accounts for them afterwards.
    let deciding = match (quantifier, op) {
        (Quantifier::Any, BinaryOperator::Eq) => has,
        (Quantifier::Any, BinaryOperator::NotEq) => differs,
        (Quantifier::Any, BinaryOperator::Lt) => format!("({x}) < ({max})"),
        (Quantifier::Any, BinaryOperator::LtEq) => format!("({x}) <= ({max})"),
        (Quantifier::Any, BinaryOperator::Gt) => format!("({x}) > ({min})"),
        (Quantifier::Any, BinaryOperator::GtEq) => format!("({x}) >= ({min})"),
        (Quantifier::All, BinaryOperator::Eq) => differs,
        (Quantifier::All, BinaryOperator::NotEq) => has,
        (Quantifier::All, BinaryOperator::Lt) => format!("({x}) >= ({min})"),
        (Quantifier::All, BinaryOperator::LtEq) => format!("({x}) > ({min})"),
        (Quantifier::All, BinaryOperator::Gt) => format!("({x}) <= ({max})"),
        (Quantifier::All, BinaryOperator::GtEq) => format!("({x}) < ({max})"),
        _ => return None,
    };
    let (empty, decided, otherwise) = match quantifier {
        Quantifier::Any => ("false", "true", "false"),
        Quantifier::All => ("true", "false", "true"),
    };
    crate::pg_compat::parse_expr(&format!(
        "CASE WHEN ({array}) IS NULL THEN NULL \
         WHEN cardinality({array}) = 0 THEN {empty} \
         WHEN ({x}) IS NULL THEN NULL \
         WHEN {deciding} THEN {decided} \
         WHEN array_position({array}, NULL) IS NOT NULL THEN NULL \
         ELSE {otherwise} END"
    ))
}

/// Functions that must run once per row: a second call may answer
/// differently (or, for a model, score the row again).
const RUN_ONCE_FUNCTIONS: &[&str] = &[
    "random",
    "setseed",
    "nextval",
    "setval",
    "clock_timestamp",
    "timeofday",
    "gen_random_uuid",
    "uuid",
    "freshet_model_call",
];

/// Whether `expr` may be named more than once in the `CASE` (see the module
/// docs): no parameter, subquery, volatile function or model call.
/// DataFusion evaluates a repeated deterministic call once per row (common
/// subexpression elimination), so the repetition costs nothing.
fn plain(expr: &Expr) -> bool {
    let found = visit_expressions(expr, |e| {
        let ok = match e {
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => false,
            Expr::Function(f) => {
                // The name's last part, unquoted (`"random"()`, `pg_catalog.random()`).
                let base = f.name.0.last().and_then(|part| part.as_ident());
                !base.is_some_and(|name| {
                    RUN_ONCE_FUNCTIONS
                        .iter()
                        .any(|once| name.value.eq_ignore_ascii_case(once))
                })
            }
            Expr::Value(v) => !matches!(v.value, Value::Placeholder(_)),
            _ => true,
        };
        if ok {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    });
    found.is_continue()
}

/// `freshet_quantified_comparison(x, array, op, quantifier)`: `x op
/// ANY(array)` or `x op ALL(array)` with SQL's NULL rules, `x` compared with
/// each element of the row's array. The array may be text, read as
/// PostgreSQL's `array_in` reads it with `x`'s type for its elements.
#[derive(Debug, PartialEq, Eq, Hash)]
struct QuantifiedComparison {
    signature: Signature,
}

impl ScalarUDFImpl for QuantifiedComparison {
    fn name(&self) -> &str {
        QUANTIFIED_COMPARISON
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> DfResult<Vec<DataType>> {
        let [x, array, op, quantifier] = args else {
            return Err(DataFusionError::Plan(format!(
                "{QUANTIFIED_COMPARISON} takes four arguments"
            )));
        };
        let (x, array) = match array {
            DataType::List(item)
            | DataType::LargeList(item)
            | DataType::FixedSizeList(item, _)
            | DataType::ListView(item)
            | DataType::LargeListView(item) => {
                let element = item.data_type();
                let common = datafusion::logical_expr::type_coercion::binary::comparison_coercion(
                    x, element,
                )
                .ok_or_else(|| {
                    DataFusionError::from(EngineError::new(
                        "42883",
                        format!("operator does not exist: {x} = {element}"),
                    ))
                })?;
                (common.clone(), DataType::new_list(common, true))
            }
            // A NULL, or a parameter whose type nothing gave: as text, so
            // that a parameter is read from the text the client sends.
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
                let x = if x == &DataType::Null {
                    DataType::Utf8
                } else {
                    x.clone()
                };
                (x, DataType::Utf8)
            }
            other => {
                return Err(DataFusionError::from(EngineError::new(
                    "42809",
                    format!("op ANY/ALL (array) requires array on right side, not {other}"),
                )))
            }
        };
        if matches!(x, DataType::Interval(_)) {
            // Arrow compares intervals field by field; PostgreSQL counts a
            // month as 30 days (`'1 month' = '30 days'`).
            return Err(DataFusionError::from(EngineError::new(
                "0A000",
                "ANY/ALL over an array of intervals is not supported",
            )));
        }
        Ok(vec![x, array, op.clone(), quantifier.clone()])
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [x, array, ColumnarValue::Scalar(op), ColumnarValue::Scalar(quantifier)] =
            args.args.as_slice()
        else {
            return Err(DataFusionError::Internal(format!(
                "{QUANTIFIED_COMPARISON} takes a value, an array and two constants"
            )));
        };
        let constant = |value: &ScalarValue| match value {
            ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
            _ => None,
        };
        let (Some(comparison), Some(quantifier)) = (
            constant(op).as_deref().and_then(Comparison::from_symbol),
            constant(quantifier)
                .as_deref()
                .and_then(Quantifier::from_name),
        ) else {
            return Err(DataFusionError::Internal(format!(
                "{QUANTIFIED_COMPARISON}: unknown operator {op} or quantifier {quantifier}"
            )));
        };
        crate::udf_args::evaluate(&[x.clone(), array.clone()], |arrays| {
            let [x, array] = arrays else {
                return Err(DataFusionError::Internal(format!(
                    "{QUANTIFIED_COMPARISON} takes two operands"
                )));
            };
            let mut out = Vec::with_capacity(x.len());
            for row in 0..x.len() {
                let Some(elements) = row_elements(array, row, x.data_type())? else {
                    out.push(None);
                    continue;
                };
                let answers = if x.data_type() == &DataType::Null {
                    // An untyped NULL compared with anything is NULL.
                    BooleanArray::new_null(elements.len())
                } else {
                    comparison.apply(&Scalar::new(x.slice(row, 1)), &elements)?
                };
                out.push(fold(&answers, quantifier));
            }
            Ok(Arc::new(BooleanArray::from(out)) as ArrayRef)
        })
    }
}

/// The elements of `array`'s `row`, of type `element_type`, or `None` for
/// a NULL array.
fn row_elements(
    array: &ArrayRef,
    row: usize,
    element_type: &DataType,
) -> DfResult<Option<ArrayRef>> {
    if array.is_null(row) {
        return Ok(None);
    }
    match array.data_type() {
        DataType::List(_) => Ok(Some(array.as_list::<i32>().value(row))),
        DataType::Utf8 => {
            let text = array.as_string::<i32>().value(row);
            let elements = crate::array_literals::elements(text).ok_or_else(|| {
                DataFusionError::from(EngineError::new(
                    "22P02",
                    format!("malformed array literal: \"{text}\""),
                ))
            })?;
            let strings: ArrayRef = Arc::new(StringArray::from(elements));
            if element_type == &DataType::Null {
                return Ok(Some(strings));
            }
            let invalid = |element: &str| {
                let name = match crate::planning::sql_type_name(element_type) {
                    "int" => "integer",
                    other => other,
                };
                DataFusionError::from(EngineError::new(
                    "22P02",
                    format!("invalid input syntax for type {name}: \"{element}\""),
                ))
            };
            // Dates, timestamps and numerics as their casts from text read
            // them (PostgreSQL's spellings); other types through Arrow's cast.
            let typed = match crate::datetime_input::parse_text_array(&strings, element_type) {
                Some(parsed) => parsed.map_err(DataFusionError::from)?,
                None => {
                    let strings = match element_type {
                        DataType::Decimal128(..) | DataType::Decimal256(..) => {
                            crate::numeric_text::plain_array(&strings)
                                .map_err(DataFusionError::from)?
                        }
                        _ => strings.clone(),
                    };
                    datafusion::arrow::compute::cast(&strings, element_type)
                        .map_err(|_| invalid(text))?
                }
            };
            // A cast that gave up on an element (a NULL that was not NULL
            // text) is an error, not a NULL element.
            if let Some(bad) = (0..typed.len()).find(|&i| typed.is_null(i) && strings.is_valid(i)) {
                return Err(invalid(strings.as_string::<i32>().value(bad)));
            }
            Ok(Some(typed))
        }
        other => Err(DataFusionError::Internal(format!(
            "{QUANTIFIED_COMPARISON}: unexpected array type {other}"
        ))),
    }
}

/// SQL's answer from the element comparisons: for ANY, true if one is true,
/// else NULL if one is NULL, else false (so false for no elements); ALL is
/// the mirror image.
fn fold(answers: &BooleanArray, quantifier: Quantifier) -> Option<bool> {
    let deciding = quantifier == Quantifier::Any;
    let mut unknown = false;
    for answer in answers.iter() {
        match answer {
            Some(a) if a == deciding => return Some(deciding),
            Some(_) => {}
            None => unknown = true,
        }
    }
    if unknown {
        None
    } else {
        Some(!deciding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_follows_sql_null_rules() {
        let answers = |v: &[Option<bool>]| BooleanArray::from(v.to_vec());
        let any = Quantifier::Any;
        let all = Quantifier::All;
        assert_eq!(fold(&answers(&[]), any), Some(false));
        assert_eq!(fold(&answers(&[]), all), Some(true));
        assert_eq!(fold(&answers(&[Some(false), None]), any), None);
        assert_eq!(fold(&answers(&[None, Some(true)]), any), Some(true));
        assert_eq!(fold(&answers(&[Some(true), None]), all), None);
        assert_eq!(fold(&answers(&[None, Some(false)]), all), Some(false));
        assert_eq!(fold(&answers(&[Some(true), Some(true)]), all), Some(true));
    }
}
