//! Rewrites for PostgreSQL syntax that sqlparser or DataFusion read
//! otherwise.
//!
//! Like [`crate::rewrite`], the token-level ones work on the token stream,
//! so string literals, quoted identifiers and comments are never touched.
//!
//! * [`rewrite_trim_from`]: `trim([BOTH | LEADING | TRAILING] FROM x)`,
//!   PostgreSQL's spelling of trimming spaces, where sqlparser reads `FROM`
//!   as a column name and then fails at `x` ("expected )"). Dropping that
//!   `FROM` leaves `trim(LEADING x)`, which sqlparser parses to the same
//!   trim of spaces.
//! * [`fill_omitted_arguments`], on the parsed statement: PostgreSQL's
//!   functions with parameter defaults may be called with named arguments
//!   for any of them (`make_interval(days => 3)`). DataFusion resolves
//!   named arguments but has no defaults, so it needs every parameter up to
//!   the last one named; this writes the call with positional arguments,
//!   each omitted one its default.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Value, VisitMut,
};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::rewrite::{is_word, next_sig};

/// Drops the `FROM` of `trim([BOTH | LEADING | TRAILING] FROM x)` (see the
/// module docs). A `FROM` after characters to trim (`trim('x' FROM y)`) is
/// sqlparser's own syntax and stays.
pub(crate) fn rewrite_trim_from(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut drop = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if !is_word(&token.token, "TRIM") {
            continue;
        }
        let Some(open) = next_sig(&tokens, i + 1) else {
            continue;
        };
        if tokens[open].token != Token::LParen {
            continue;
        }
        let Some(mut from) = next_sig(&tokens, open + 1) else {
            continue;
        };
        if ["BOTH", "LEADING", "TRAILING"]
            .iter()
            .any(|w| is_word(&tokens[from].token, w))
        {
            match next_sig(&tokens, from + 1) {
                Some(next) => from = next,
                None => continue,
            }
        }
        if is_word(&tokens[from].token, "FROM") {
            drop.push(from);
        }
    }
    if drop.is_empty() {
        return tokens;
    }
    tokens
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !drop.contains(i))
        .map(|(_, t)| t)
        .collect()
}

/// `make_interval`'s parameters, in order; each defaults to 0.
pub const MAKE_INTERVAL_PARAMETERS: [&str; 7] =
    ["years", "months", "weeks", "days", "hours", "mins", "secs"];

/// Rewrites calls with named arguments to functions whose parameters have
/// defaults (see the module docs). A call naming a parameter the function
/// does not have, or one twice, is left for DataFusion to refuse.
pub(crate) fn fill_omitted_arguments<V: VisitMut>(tree: &mut V) {
    let _ = visit_expressions_mut(tree, |expr: &mut Expr| {
        if let Expr::Function(function) = expr {
            let is_make_interval = function
                .name
                .0
                .last()
                .and_then(|part| part.as_ident())
                .is_some_and(|ident| ident.value.eq_ignore_ascii_case("make_interval"));
            if let (true, FunctionArguments::List(list)) = (is_make_interval, &mut function.args) {
                if let Some(args) = positional(&list.args, &MAKE_INTERVAL_PARAMETERS) {
                    list.args = args;
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// `args` in `parameters`' order, with `0` for each omitted one before the
/// last given; `None` when there is nothing to do or it cannot be done.
fn positional(args: &[FunctionArg], parameters: &[&str]) -> Option<Vec<FunctionArg>> {
    let named = |arg: &FunctionArg| -> Option<(String, FunctionArgExpr)> {
        match arg {
            FunctionArg::Named { name, arg, .. } => Some((name.value.clone(), arg.clone())),
            FunctionArg::ExprNamed {
                name: Expr::Identifier(name),
                arg,
                ..
            } => Some((name.value.clone(), arg.clone())),
            _ => None,
        }
    };
    if !args.iter().any(|a| named(a).is_some()) {
        return None;
    }
    let mut slots: Vec<Option<FunctionArgExpr>> = vec![None; parameters.len()];
    for (i, arg) in args.iter().enumerate() {
        match (named(arg), arg) {
            (Some((name, value)), _) => {
                let index = parameters
                    .iter()
                    .position(|p| p.eq_ignore_ascii_case(&name))?;
                if slots[index].is_some() {
                    return None;
                }
                slots[index] = Some(value);
            }
            (None, FunctionArg::Unnamed(value)) => {
                let slot = slots.get_mut(i)?;
                if slot.is_some() {
                    return None;
                }
                *slot = Some(value.clone());
            }
            (None, _) => return None,
        }
    }
    let last = slots.iter().rposition(Option::is_some)?;
    Some(
        slots
            .into_iter()
            .take(last + 1)
            .map(|slot| {
                FunctionArg::Unnamed(slot.unwrap_or_else(|| {
                    FunctionArgExpr::Expr(Expr::value(Value::Number("0".into(), false)))
                }))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use crate::{parse_sql, FreshetStatement};

    fn only(sql: &str) -> String {
        match parse_sql(sql).expect("parses").pop() {
            Some(FreshetStatement::Standard(statement)) => statement.to_string(),
            other => panic!("not a standard statement: {other:?}"),
        }
    }

    #[test]
    fn trim_from_without_characters_trims_spaces() {
        assert_eq!(
            only("SELECT trim(leading from '  x  ')"),
            "SELECT TRIM(LEADING '  x  ')"
        );
        assert_eq!(
            only("SELECT trim(BOTH FROM c) FROM t"),
            "SELECT TRIM(BOTH c) FROM t"
        );
        assert_eq!(only("SELECT trim(from c) FROM t"), "SELECT TRIM(c) FROM t");
    }

    #[test]
    fn other_trims_are_left_alone() {
        assert_eq!(
            only("SELECT trim(trailing 'x' from c) FROM t"),
            "SELECT TRIM(TRAILING 'x' FROM c) FROM t"
        );
        assert_eq!(
            only("SELECT trim('\"from\"' from \"from\") FROM t"),
            "SELECT TRIM('\"from\"' FROM \"from\") FROM t"
        );
    }
}
