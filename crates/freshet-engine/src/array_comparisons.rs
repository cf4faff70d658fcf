//! `x op ANY(array)` and `x op ALL(array)` with SQL's NULL rules.
//!
//! PostgreSQL compares `x` with every element: ANY is true when one
//! comparison is true, false when all are false (or the array is empty), and
//! NULL otherwise, so `2 = ANY(ARRAY[1, NULL])` is NULL and
//! `NOT (2 = ANY(ARRAY[1, NULL]))` keeps no row. ALL is the mirror image.
//! DataFusion's plan for ANY (`array_has`, or a bound from `array_min` /
//! `array_max`) answers false where a NULL element should make it NULL, and
//! datafusion-pg-catalog's rewrite (`= ANY` and `<> ALL` into
//! `array_contains`) ignores NULL elements in both directions: wrong rows,
//! without an error.
//!
//! [`rewrite`] replaces each such comparison in a user's statement with a
//! `CASE` that decides it in SQL's order: a NULL array, an empty array, a
//! NULL `x`, a comparison that decides (found through DataFusion's NULL-
//! ignoring `array_has` / `array_min` / `array_max`), then a NULL element.
//!
//! The `CASE` names `x` and the array more than once, so comparisons whose
//! operands hold a volatile function or a model call (which would run more
//! than once), a subquery, or a parameter (which would lose the type its one
//! use gives it) are left to DataFusion, whose answer ignores NULL elements
//! (README lists this). `ANY(subquery)` is planned by DataFusion as a
//! subquery, and a string literal array (`= ANY('{a,b}')`) is left to
//! datafusion-pg-catalog, which knows that form.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions, visit_expressions_mut, BinaryOperator, Expr, Statement, Value,
};

/// Replaces the ANY / ALL comparisons of `statement` as the module docs say.
pub(crate) fn rewrite(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        let replaced = match expr {
            Expr::AnyOp {
                left,
                compare_op,
                right,
                ..
            } => decide(left, compare_op, right, Quantifier::Any),
            Expr::AllOp {
                left,
                compare_op,
                right,
            } => decide(left, compare_op, right, Quantifier::All),
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

/// `x [NOT] IN (subquery)` for a `right` that is a subquery.
fn in_subquery(x: &Expr, right: &Expr, negated: bool) -> Option<Expr> {
    let mut right = right;
    while let Expr::Nested(inner) = right {
        right = inner;
    }
    match right {
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

/// The `CASE` for `x op ANY/ALL(array)`, or `None` to leave it as it is.
fn decide(x: &Expr, op: &BinaryOperator, array: &Expr, quantifier: Quantifier) -> Option<Expr> {
    if !plain(x) || !plain(array) || matches!(array, Expr::Value(_)) {
        return None;
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
