//! Snowflake's `INFORMATION_SCHEMA` monitoring relations for dynamic tables,
//! rewritten into Freshet's table functions at the token level.
//!
//! DataFusion owns the `information_schema` schema (its planner answers every
//! `information_schema.x` reference from a fixed provider before any catalog
//! is consulted), so Freshet cannot add relations to it. Instead, this pass
//! turns
//!
//! * `TABLE([db.]INFORMATION_SCHEMA.DYNAMIC_TABLE_REFRESH_HISTORY(NAME => 'x', …))`
//!   into `freshet_dynamic_table_refresh_history('name', 'x', …)`: every named
//!   argument `key => value` becomes the two arguments `'key', value` (key
//!   lower-cased), since DataFusion's table functions take positional
//!   arguments only; and
//! * a relation `[db.]information_schema.dynamic_table_refresh_history` (no
//!   argument list) into `freshet_dynamic_table_refresh_history()`,
//!
//! and the same for `DYNAMIC_TABLE_GRAPH_HISTORY` and `DYNAMIC_TABLES`. A
//! database prefix becomes the arguments `'database', '<db>'`. The engine
//! registers the functions under the names in [`INFORMATION_SCHEMA_FUNCTIONS`].
//!
//! Like the other rewrites, this works on tokens, so string literals, quoted
//! identifiers and comments are never looked into. Only the exact shapes above
//! are rewritten; anything else (other `information_schema` relations, a
//! column qualified with one of these names) is left for DataFusion.

use datafusion::sql::sqlparser::tokenizer::{Span, Token, TokenWithSpan};

use crate::rewrite::is_word;

/// The Snowflake `INFORMATION_SCHEMA` relation names Freshet answers, and the
/// table function each is rewritten into.
pub const INFORMATION_SCHEMA_FUNCTIONS: &[(&str, &str)] = &[
    (
        "dynamic_table_refresh_history",
        "freshet_dynamic_table_refresh_history",
    ),
    (
        "dynamic_table_graph_history",
        "freshet_dynamic_table_graph_history",
    ),
    ("dynamic_tables", "freshet_dynamic_tables"),
];

fn is_trivia(token: &Token) -> bool {
    matches!(token, Token::Whitespace(_))
}

/// The normalized text of a word token: unquoted words fold to lower case,
/// quoted ones keep their spelling (as DataFusion resolves names).
fn word_text(token: &Token) -> Option<String> {
    match token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_lowercase()),
        Token::Word(w) => Some(w.value.clone()),
        _ => None,
    }
}

fn function_for(name: &str) -> Option<&'static str> {
    INFORMATION_SCHEMA_FUNCTIONS
        .iter()
        .find(|(relation, _)| *relation == name)
        .map(|(_, function)| *function)
}

/// A matched `[db.]information_schema.<relation>` name over significant
/// positions `start..end`.
struct NameMatch {
    end: usize,
    database: Option<String>,
    function: &'static str,
}

/// Matches `[db .] information_schema . relation` at significant position `p`.
fn match_name(tokens: &[TokenWithSpan], sig: &[usize], p: usize) -> Option<NameMatch> {
    let text = |q: usize| sig.get(q).and_then(|&i| word_text(&tokens[i].token));
    let is_dot = |q: usize| {
        sig.get(q)
            .is_some_and(|&i| tokens[i].token == Token::Period)
    };
    let (database, schema_pos) =
        if is_dot(p + 1) && text(p + 2).as_deref() == Some("information_schema") {
            (Some(text(p)?), p + 2)
        } else {
            (None, p)
        };
    if text(schema_pos).as_deref() != Some("information_schema") || !is_dot(schema_pos + 1) {
        return None;
    }
    let function = function_for(&text(schema_pos + 2)?)?;
    Some(NameMatch {
        end: schema_pos + 3,
        database,
        function,
    })
}

/// The significant position of the `)` closing the `(` at position `open`.
fn closing_paren(tokens: &[TokenWithSpan], sig: &[usize], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (q, &i) in sig.iter().enumerate().skip(open) {
        match tokens[i].token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(q);
                }
            }
            _ => {}
        }
    }
    None
}

fn synth(token: Token, span: Span) -> TokenWithSpan {
    TokenWithSpan::new(token, span)
}

/// Emits `function(` plus the database arguments.
fn emit_call_start(out: &mut Vec<TokenWithSpan>, m: &NameMatch, span: Span) -> bool {
    out.push(synth(Token::make_word(m.function, None), span));
    out.push(synth(Token::LParen, span));
    if let Some(db) = &m.database {
        out.push(synth(Token::SingleQuotedString("database".into()), span));
        out.push(synth(Token::Comma, span));
        out.push(synth(Token::SingleQuotedString(db.clone()), span));
        return true;
    }
    false
}

/// Rewrites the `INFORMATION_SCHEMA` dynamic-table relations of one
/// statement's tokens (see the module docs).
pub(crate) fn rewrite_information_schema(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mentions = tokens
        .iter()
        .any(|t| word_text(&t.token).as_deref() == Some("information_schema"));
    if !mentions {
        return tokens;
    }
    let sig: Vec<usize> = (0..tokens.len())
        .filter(|&i| !is_trivia(&tokens[i].token))
        .collect();
    // Output is built by copying tokens and splicing replacements; `next` is
    // the first token index not yet copied.
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut next = 0usize;
    let mut p = 0usize;
    while p < sig.len() {
        let at = |q: usize| sig.get(q).map(|&i| &tokens[i].token);
        // TABLE( name( args ) )
        if at(p).is_some_and(|t| is_word(t, "TABLE")) && at(p + 1) == Some(&Token::LParen) {
            if let Some(m) = match_name(&tokens, &sig, p + 2) {
                if at(m.end) == Some(&Token::LParen) {
                    if let Some(close) = closing_paren(&tokens, &sig, m.end) {
                        if at(close + 1) == Some(&Token::RParen) {
                            out.extend(tokens[next..sig[p]].iter().cloned());
                            let span = tokens[sig[p]].span;
                            let need_comma = emit_call_start(&mut out, &m, span);
                            emit_arguments(&tokens, &sig, m.end, close, need_comma, &mut out);
                            out.push(tokens[sig[close]].clone());
                            next = sig[close + 1] + 1;
                            p = close + 2;
                            continue;
                        }
                    }
                }
            }
        }
        // A bare relation name, as the start of a FROM / JOIN item.
        let starts_item = p
            .checked_sub(1)
            .and_then(&at)
            .is_some_and(|t| is_word(t, "FROM") || is_word(t, "JOIN") || *t == Token::Comma);
        if starts_item {
            if let Some(m) = match_name(&tokens, &sig, p) {
                let continues = matches!(at(m.end), Some(Token::LParen) | Some(Token::Period));
                if !continues {
                    out.extend(tokens[next..sig[p]].iter().cloned());
                    let span = tokens[sig[p]].span;
                    emit_call_start(&mut out, &m, span);
                    out.push(synth(Token::RParen, span));
                    next = sig[m.end - 1] + 1;
                    p = m.end;
                    continue;
                }
            }
        }
        p += 1;
    }
    out.extend(tokens[next..].iter().cloned());
    out
}

/// Copies the arguments between the parentheses at significant positions
/// `open` and `close`, turning each top-level `key => value` into
/// `'key', value`.
fn emit_arguments(
    tokens: &[TokenWithSpan],
    sig: &[usize],
    open: usize,
    close: usize,
    mut need_comma: bool,
    out: &mut Vec<TokenWithSpan>,
) {
    let mut depth = 0usize;
    let mut q = open + 1;
    let mut at_argument_start = true;
    while q < close {
        let token = &tokens[sig[q]];
        if depth == 0 && at_argument_start {
            if need_comma {
                out.push(synth(Token::Comma, token.span));
                need_comma = false;
            }
            let named = sig
                .get(q + 1)
                .is_some_and(|&i| tokens[i].token == Token::RArrow);
            if let (true, Some(key)) = (named, word_text(&token.token)) {
                out.push(synth(
                    Token::SingleQuotedString(key.to_ascii_lowercase()),
                    token.span,
                ));
                out.push(synth(Token::Comma, token.span));
                q += 2;
                at_argument_start = false;
                continue;
            }
        }
        at_argument_start = false;
        match token.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Comma if depth == 0 => at_argument_start = true,
            _ => {}
        }
        out.push(token.clone());
        q += 1;
    }
}
