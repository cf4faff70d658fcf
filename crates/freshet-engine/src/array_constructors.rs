//! `ARRAY[…]` whose elements name columns, planned in the query's scope.
//!
//! DataFusion plans the elements of an `ARRAY[…]` constructor without the
//! scope of the query around it, so in a subquery an element that names an
//! outer column (`(SELECT max(x) FROM unnest(ARRAY[t.a, t.b]) AS u(x))`,
//! or `FROM t, unnest(ARRAY[t.a, t.b])`) failed with "column does not
//! exist" where PostgreSQL answers. [`rewrite`] writes such a constructor
//! as the call DataFusion plans it into, `make_array(…)`, whose arguments
//! are planned in scope. It runs after every other rewrite, which may still
//! look for `ARRAY[…]`; constructors of constants are left as they are.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions, visit_expressions_mut, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentList, FunctionArguments, Ident, ObjectName, Statement,
};

/// Rewrites the constructors of `statement` (see the module docs).
pub(crate) fn rewrite(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Array(array) = expr {
            if !array.elem.is_empty() && names_columns(&array.elem) {
                let args = std::mem::take(&mut array.elem)
                    .into_iter()
                    .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                    .collect();
                *expr = Expr::Function(Function {
                    name: ObjectName::from(vec![Ident::new("make_array")]),
                    uses_odbc_syntax: false,
                    parameters: FunctionArguments::None,
                    args: FunctionArguments::List(FunctionArgumentList {
                        duplicate_treatment: None,
                        args,
                        clauses: Vec::new(),
                    }),
                    filter: None,
                    null_treatment: None,
                    over: None,
                    within_group: Vec::new(),
                });
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

fn names_columns(elements: &[Expr]) -> bool {
    let mut found = false;
    for element in elements {
        let _ = visit_expressions(element, |e| {
            found |= matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
            ControlFlow::<()>::Continue(())
        });
    }
    found
}
