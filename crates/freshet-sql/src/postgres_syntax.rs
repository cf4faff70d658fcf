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
//! * [`rewrite_between_symmetric`]: `x [NOT] BETWEEN SYMMETRIC a AND b`,
//!   which sqlparser does not read. The lower bound is wrapped in a marker
//!   call, and [`finish_parsed`] turns the parsed `BETWEEN` into what
//!   PostgreSQL's parser makes of it: `x BETWEEN a AND b OR x BETWEEN b AND
//!   a` (each operand written, and evaluated, twice, as there), negated for
//!   `NOT`. `BETWEEN ASYMMETRIC`, the default, loses its keyword.
//! * [`fill_omitted_arguments`], on the parsed statement: PostgreSQL's
//!   functions with parameter defaults may be called with named arguments
//!   for any of them (`make_interval(days => 3)`). DataFusion resolves
//!   named arguments but has no defaults, so it needs every parameter up to
//!   the last one named; this writes the call with positional arguments,
//!   each omitted one its default.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    ObjectNamePart, Value, VisitMut,
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

/// The marker call around a `BETWEEN SYMMETRIC`'s lower bound, between
/// [`rewrite_between_symmetric`] and [`finish_parsed`]. No user can write
/// it: an unquoted identifier holds no space, and a quoted one is told apart
/// by its quote style.
const SYMMETRIC_MARKER: &str = "between symmetric";

/// Marks the lower bound of each `BETWEEN SYMMETRIC` and drops each
/// `ASYMMETRIC` (see the module docs). The lower bound ends at the first
/// `AND` outside parentheses, brackets and `CASE … END`, as in PostgreSQL's
/// grammar, whose bounds cannot hold a bare `AND`. A `BETWEEN` whose bound
/// does not end so is left for the parser to report.
pub(crate) fn rewrite_between_symmetric(mut tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut i = 0;
    while i < tokens.len() {
        if !is_word(&tokens[i].token, "BETWEEN") {
            i += 1;
            continue;
        }
        let Some(keyword) = next_sig(&tokens, i + 1) else {
            break;
        };
        if is_word(&tokens[keyword].token, "ASYMMETRIC") {
            tokens.remove(keyword);
            i = keyword;
            continue;
        }
        if !is_word(&tokens[keyword].token, "SYMMETRIC") {
            i = keyword;
            continue;
        }
        let Some(low) = next_sig(&tokens, keyword + 1) else {
            break;
        };
        let Some(and) = bound_end(&tokens, low) else {
            i = keyword + 1;
            continue;
        };
        if and == low {
            // `BETWEEN symmetric AND …`: a column of that name.
            i = and;
            continue;
        }
        let span = tokens[keyword].span;
        tokens.insert(and, TokenWithSpan::new(Token::RParen, span));
        tokens[keyword] = TokenWithSpan::new(Token::make_word(SYMMETRIC_MARKER, None), span);
        tokens.insert(keyword + 1, TokenWithSpan::new(Token::LParen, span));
        // On from the lower bound, which may hold a BETWEEN of its own.
        i = keyword + 2;
    }
    tokens
}

/// The index of the `AND` that ends a `BETWEEN` bound starting at `from`.
fn bound_end(tokens: &[TokenWithSpan], from: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate().skip(from) {
        match &token.token {
            Token::LParen | Token::LBracket => depth += 1,
            Token::RParen | Token::RBracket => depth = depth.checked_sub(1)?,
            t if is_word(t, "CASE") => depth += 1,
            t if is_word(t, "END") => depth = depth.checked_sub(1)?,
            t if depth == 0 && is_word(t, "AND") => return Some(i),
            _ => {}
        }
    }
    None
}

/// The rewrites of a parsed statement or query: [`fill_omitted_arguments`]
/// and the `BETWEEN SYMMETRIC` marked by [`rewrite_between_symmetric`].
pub(crate) fn finish_parsed<V: VisitMut>(tree: &mut V) {
    fill_omitted_arguments(tree);
    let _ = visit_expressions_mut(tree, |expr: &mut Expr| {
        if let Expr::Between {
            expr: operand,
            negated,
            low,
            high,
        } = expr
        {
            if let Some(low) = symmetric_bound(low) {
                let between = |low: &Expr, high: &Expr| Expr::Between {
                    expr: operand.clone(),
                    negated: false,
                    low: Box::new(low.clone()),
                    high: Box::new(high.clone()),
                };
                let either = Expr::Nested(Box::new(Expr::BinaryOp {
                    left: Box::new(between(&low, high)),
                    op: BinaryOperator::Or,
                    right: Box::new(between(high, &low)),
                }));
                *expr = if *negated {
                    Expr::Nested(Box::new(Expr::UnaryOp {
                        op: datafusion::sql::sqlparser::ast::UnaryOperator::Not,
                        expr: Box::new(either),
                    }))
                } else {
                    either
                };
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// The bound inside a [`SYMMETRIC_MARKER`] call.
fn symmetric_bound(expr: &Expr) -> Option<Expr> {
    let Expr::Function(function) = expr else {
        return None;
    };
    let [ObjectNamePart::Identifier(name)] = function.name.0.as_slice() else {
        return None;
    };
    if name.quote_style.is_some() || name.value != SYMMETRIC_MARKER {
        return None;
    }
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(bound))] => Some(bound.clone()),
        _ => None,
    }
}

/// `make_interval`'s parameters, in order; each defaults to 0.
pub const MAKE_INTERVAL_PARAMETERS: [&str; 7] =
    ["years", "months", "weeks", "days", "hours", "mins", "secs"];

/// Rewrites calls with named arguments to functions whose parameters have
/// defaults (see the module docs). A call naming a parameter the function
/// does not have, or one twice, is left for DataFusion to refuse.
fn fill_omitted_arguments<V: VisitMut>(tree: &mut V) {
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

    #[test]
    fn between_symmetric_is_either_order() {
        assert_eq!(
            only("SELECT x BETWEEN SYMMETRIC 10 AND 1 FROM t"),
            "SELECT (x BETWEEN 10 AND 1 OR x BETWEEN 1 AND 10) FROM t"
        );
        assert_eq!(
            only("SELECT * FROM t WHERE x NOT BETWEEN SYMMETRIC a + 1 AND b AND y"),
            "SELECT * FROM t WHERE (NOT (x BETWEEN a + 1 AND b OR x BETWEEN b AND a + 1)) AND y"
        );
        // A bound holding AND inside parentheses or CASE … END.
        assert_eq!(
            only("SELECT x BETWEEN SYMMETRIC CASE WHEN p AND q THEN 1 END AND (2) FROM t"),
            "SELECT (x BETWEEN CASE WHEN p AND q THEN 1 END AND (2) \
             OR x BETWEEN (2) AND CASE WHEN p AND q THEN 1 END) FROM t"
        );
        // A BETWEEN SYMMETRIC in the lower bound of another.
        assert_eq!(
            only("SELECT 2 BETWEEN SYMMETRIC (1 BETWEEN SYMMETRIC 2 AND 0)::INT AND 3"),
            "SELECT (2 BETWEEN ((1 BETWEEN 2 AND 0 OR 1 BETWEEN 0 AND 2))::INT AND 3 \
             OR 2 BETWEEN 3 AND ((1 BETWEEN 2 AND 0 OR 1 BETWEEN 0 AND 2))::INT)"
        );
        assert_eq!(
            only("SELECT x BETWEEN ASYMMETRIC 1 AND 2 FROM t"),
            "SELECT x BETWEEN 1 AND 2 FROM t"
        );
    }

    #[test]
    fn a_column_named_symmetric_is_a_column() {
        assert_eq!(
            only("SELECT x BETWEEN symmetric AND 2 FROM t"),
            "SELECT x BETWEEN symmetric AND 2 FROM t"
        );
    }
}
