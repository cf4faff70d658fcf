//! `generate_series` in a select list returns rows, as in PostgreSQL.
//!
//! PostgreSQL's `generate_series` is a set-returning function: `SELECT
//! generate_series(1, 3), 'x'` is three rows. DataFusion has it as a table
//! function, and as a scalar function that returns the whole series as one
//! list: the same query gave one row, `{1,2,3} | x`, without an error.
//!
//! [`expand_in_select_lists`] wraps each `generate_series(…)` call of a
//! select list in `unnest(…)`, which DataFusion expands into rows (several
//! in one list are zipped, as PostgreSQL 10 and later do), keeping the
//! column name `generate_series`. Only calls at the top of a select item,
//! or under operators, casts and parentheses there, are wrapped; subqueries
//! are select lists of their own, reached by the visitor. `generate_series`
//! in FROM is DataFusion's table function and is left alone.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, Ident, Query, SelectItem, SetExpr, Statement, VisitMut, VisitorMut,
};

/// Rewrites every select list of `statement` as the module docs say.
pub(crate) fn expand_in_select_lists(statement: &mut Statement) {
    let _ = statement.visit(&mut SelectLists);
}

struct SelectLists;

impl VisitorMut for SelectLists {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        expand_set(query.body.as_mut());
        ControlFlow::Continue(())
    }
}

fn expand_set(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            for item in &mut select.projection {
                match item {
                    SelectItem::UnnamedExpr(expr) if is_series(expr) => {
                        let call = std::mem::replace(
                            expr,
                            Expr::value(datafusion::sql::sqlparser::ast::Value::Null),
                        );
                        *item = SelectItem::ExprWithAlias {
                            expr: unnest(call),
                            alias: Ident::new("generate_series"),
                        };
                    }
                    SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => {
                        wrap(expr)
                    }
                    _ => {}
                }
            }
        }
        SetExpr::SetOperation { left, right, .. } => {
            expand_set(left);
            expand_set(right);
        }
        // A parenthesized query is a `Query`, which the visitor reaches.
        _ => {}
    }
}

fn is_series(expr: &Expr) -> bool {
    matches!(expr, Expr::Function(f)
        if f.name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| i.value.eq_ignore_ascii_case("generate_series")))
}

fn unnest(call: Expr) -> Expr {
    let text = format!("unnest({call})");
    crate::pg_compat::parse_expr(&text).unwrap_or(call)
}

/// Wraps the `generate_series` calls in `expr`, looking through operators,
/// casts and parentheses only.
fn wrap(expr: &mut Expr) {
    if is_series(expr) {
        let call = std::mem::replace(
            expr,
            Expr::value(datafusion::sql::sqlparser::ast::Value::Null),
        );
        *expr = unnest(call);
        return;
    }
    match expr {
        Expr::BinaryOp { left, right, .. } => {
            wrap(left);
            wrap(right);
        }
        Expr::UnaryOp { expr, .. } | Expr::Nested(expr) | Expr::Cast { expr, .. } => wrap(expr),
        _ => {}
    }
}
