//! Row comparisons (`(a, b) = (1, NULL)`, `(a, b) < (x, y)`, `(a, b) [NOT]
//! IN ((…), (…))`) with SQL's NULL rules.
//!
//! DataFusion compares two row constructors as Arrow structs, whose
//! comparison counts a NULL field equal to another NULL and orders it
//! before every value: `(1, NULL) = (1, NULL)` was true and `(a, b) NOT
//! IN ((1, NULL), (2, 3))` kept `(1, 2)`, where PostgreSQL answers NULL and
//! keeps no row. Wrong rows, without an error. Ordering comparisons of rows
//! that are not plain columns and literals failed to plan.
//!
//! [`rewrite`] expands them before planning, as PostgreSQL defines them:
//! * `=` is the AND of the pairs' `=` (false if a pair differs, else NULL
//!   if a pair has a NULL), and `<>` the OR of the pairs' `<>`;
//! * `<`, `<=`, `>`, `>=` compare pairs left to right and stop at the first
//!   pair that differs or holds a NULL: `(a1 < b1) OR (a1 = b1 AND
//!   (rest))`, the last pair compared with the operator itself;
//! * `[NOT] IN` of a list of rows is `[NOT] (r = r1 OR r = r2 …)`.
//!
//! Rows of different lengths are left to DataFusion's error. `IS [NOT]
//! DISTINCT FROM` already treats NULLs as PostgreSQL does and is left as it
//! is.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    Statement, UnaryOperator,
};

/// Expands the row comparisons of `statement` (see the module docs).
pub(crate) fn rewrite(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        let expanded = match expr {
            Expr::BinaryOp { left, op, right } => match (fields(left), fields(right)) {
                (Some(left), Some(right)) if left.len() == right.len() => {
                    compare(&left, op, &right)
                }
                _ => None,
            },
            Expr::InList {
                expr: row,
                list,
                negated,
            } => in_list(row, list, *negated),
            _ => None,
        };
        if let Some(expanded) = expanded {
            *expr = expanded;
        }
        ControlFlow::<()>::Continue(())
    });
}

/// The fields of a row constructor: `(a, b)` or `ROW(a, b)`.
fn fields(expr: &Expr) -> Option<Vec<Expr>> {
    match expr {
        Expr::Tuple(items) if items.len() > 1 => Some(items.clone()),
        Expr::Nested(inner) => fields(inner),
        Expr::Function(function)
            if function.name.0.len() == 1
                && function.name.to_string().eq_ignore_ascii_case("row") =>
        {
            let FunctionArguments::List(list) = &function.args else {
                return None;
            };
            list.args
                .iter()
                .map(|arg| match arg {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                    _ => None,
                })
                .collect()
        }
        _ => None,
    }
}

fn binary(left: Expr, op: BinaryOperator, right: Expr) -> Expr {
    Expr::BinaryOp {
        left: Box::new(left),
        op,
        right: Box::new(right),
    }
}

fn nested(expr: Expr) -> Expr {
    Expr::Nested(Box::new(expr))
}

/// `left op right` of two rows of one length, or `None` for an operator
/// that is not a comparison.
fn compare(left: &[Expr], op: &BinaryOperator, right: &[Expr]) -> Option<Expr> {
    let pairs = left.iter().cloned().zip(right.iter().cloned());
    let joined = |op: BinaryOperator, join: BinaryOperator| {
        pairs
            .clone()
            .map(|(l, r)| nested(binary(l, op.clone(), r)))
            .reduce(|acc, next| binary(acc, join.clone(), next))
            .map(nested)
    };
    let strict = match op {
        BinaryOperator::Eq => return joined(BinaryOperator::Eq, BinaryOperator::And),
        BinaryOperator::NotEq => return joined(BinaryOperator::NotEq, BinaryOperator::Or),
        BinaryOperator::Lt | BinaryOperator::LtEq => BinaryOperator::Lt,
        BinaryOperator::Gt | BinaryOperator::GtEq => BinaryOperator::Gt,
        _ => return None,
    };
    // From the last pair back: (l < r) OR (l = r AND (rest)).
    let mut pairs: Vec<(Expr, Expr)> = pairs.collect();
    let (last_left, last_right) = pairs.pop()?;
    let mut expr = nested(binary(last_left, op.clone(), last_right));
    while let Some((l, r)) = pairs.pop() {
        let differs = nested(binary(l.clone(), strict.clone(), r.clone()));
        let equal = nested(binary(l, BinaryOperator::Eq, r));
        expr = nested(binary(
            differs,
            BinaryOperator::Or,
            nested(binary(equal, BinaryOperator::And, expr)),
        ));
    }
    Some(expr)
}

/// `row [NOT] IN (row1, row2, …)` as `[NOT] (row = row1 OR …)`.
fn in_list(row: &Expr, list: &[Expr], negated: bool) -> Option<Expr> {
    let row = fields(row)?;
    let mut alternatives = Vec::with_capacity(list.len());
    for item in list {
        let item = fields(item).filter(|item| item.len() == row.len())?;
        alternatives.push(compare(&row, &BinaryOperator::Eq, &item)?);
    }
    let any = nested(
        alternatives
            .into_iter()
            .reduce(|acc, next| binary(acc, BinaryOperator::Or, next))?,
    );
    Some(if negated {
        nested(Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr: Box::new(any),
        })
    } else {
        any
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
        use datafusion::sql::sqlparser::parser::Parser;
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .expect(sql)
            .remove(0);
        rewrite(&mut statement);
        statement.to_string()
    }

    #[test]
    fn rows_are_compared_pair_by_pair() {
        assert_eq!(
            rewritten("SELECT (a, b) = (1, NULL)"),
            "SELECT ((a = 1) AND (b = NULL))"
        );
        assert_eq!(
            rewritten("SELECT (a, b, c) < (1, 2, 3)"),
            "SELECT ((a < 1) OR ((a = 1) AND ((b < 2) OR ((b = 2) AND (c < 3)))))"
        );
        assert_eq!(
            rewritten("SELECT (a, b) NOT IN ((1, 2), ROW(3, 4))"),
            "SELECT (NOT (((a = 1) AND (b = 2)) OR ((a = 3) AND (b = 4))))"
        );
        assert_eq!(rewritten("SELECT a IN (1, 2)"), "SELECT a IN (1, 2)");
    }
}
