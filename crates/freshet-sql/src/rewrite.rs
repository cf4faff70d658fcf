//! Token-level rewrites that turn Snowflake-only syntax into plain SQL.
//!
//! sqlparser's Postgres dialect cannot parse `WITH m AS MODEL x`, `m!predict(..)`
//! or `col:field`. Rather than forking the dialect, Freshet rewrites the
//! *token stream* before sqlparser sees it. Working on tokens (never on raw
//! text) guarantees that string literals, quoted identifiers and comments are
//! untouched: each is a single token whose contents are never inspected.
//!
//! Three passes run per statement, in this order:
//!
//! 1. [`strip_model_bindings`] removes `alias AS MODEL name [VERSION v]`
//!    entries from every `WITH` list (dropping the `WITH` when nothing is
//!    left) and records them.
//! 2. [`rewrite_model_calls`] turns `alias!method(args)`,
//!    `db.schema.model!method(args)` and `MODEL(name [, v])!method(args)` into
//!    `freshet_model_call('<model>', '<version>', '<method>', args)`.
//! 3. [`rewrite_paths`] turns `expr:field.sub` into marker subscripts
//!    `expr[__freshet_path('field')][__freshet_path('sub')]`; after parsing,
//!    [`resolve_path_markers`] folds them into nested
//!    `freshet_get_field(expr, 'field')` calls. Going through a subscript lets
//!    sqlparser decide how far the left operand extends (`t.c:a`, `f(x):a`,
//!    `(a):b`), with the same tight binding Snowflake gives `:` (so
//!    `x:a::int` casts the extracted value).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions, visit_expressions_mut, AccessExpr, Expr, Function, FunctionArg,
    FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident, ObjectName, ObjectNamePart,
    Subscript, Value, Visit, VisitMut,
};
use datafusion::sql::sqlparser::tokenizer::{Span, Token, TokenWithSpan, Word};

use crate::ast::{ModelBinding, ModelCall, ModelVersionRef};
use crate::error::{SqlError, SqlErrorKind};
use crate::source::SourceMap;
use crate::{GET_FIELD_FUNCTION, MODEL_CALL_FUNCTION};

/// Function name used inside marker subscripts produced by [`rewrite_paths`].
/// Never survives parsing; the leading underscores keep it out of any
/// plausible user namespace.
const PATH_MARKER: &str = "__freshet_path";

/// Normalizes an identifier the way DataFusion does: unquoted identifiers are
/// folded to ASCII lowercase, quoted ones are kept verbatim.
///
/// Used for every name Freshet turns into a string literal (model names,
/// versions, methods), so the catalog can compare them with plain string
/// equality after normalizing its own inputs with this same function.
pub fn normalize_ident(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    }
}

/// Renders a model name as the string literal passed to
/// [`MODEL_CALL_FUNCTION`]: normalized parts joined by `.`, with any part that
/// would not survive re-parsing (upper case, spaces, dots, quotes...)
/// double-quoted. `ml.Registry."My Model"` becomes `ml.registry."My Model"`.
///
/// The result round-trips through [`split_model_name`].
pub fn model_name_literal(name: &ObjectName) -> String {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => quote_if_needed(&normalize_ident(ident)),
            other => other.to_string(),
        })
        .collect();
    parts.join(".")
}

fn quote_if_needed(part: &str) -> String {
    let mut chars = part.chars();
    let plain = match chars.next() {
        Some(c) if c == '_' || c.is_ascii_lowercase() => {
            chars.all(|c| c == '_' || c == '$' || c.is_ascii_lowercase() || c.is_ascii_digit())
        }
        _ => false,
    };
    if plain {
        part.to_string()
    } else {
        format!("\"{}\"", part.replace('"', "\"\""))
    }
}

/// Splits a model name literal (as produced by [`model_name_literal`], or as
/// typed by a user) into normalized parts, so the engine can resolve 1-3 part
/// names against the session's current database and schema.
pub fn split_model_name(literal: &str) -> Result<Vec<String>, SqlError> {
    use datafusion::sql::sqlparser::parser::Parser;
    let dialect = crate::parser::DIALECT;
    let mut parser = Parser::new(&dialect)
        .try_with_sql(literal)
        .map_err(|e| SqlError::syntax(format!("invalid model name '{literal}': {e}"), None))?;
    let name = parser
        .parse_object_name(false)
        .map_err(|e| SqlError::syntax(format!("invalid model name '{literal}': {e}"), None))?;
    if parser.peek_token_ref().token != Token::EOF || name.0.len() > 3 {
        return Err(SqlError::syntax(
            format!("invalid model name '{literal}'"),
            None,
        ));
    }
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => Ok(normalize_ident(ident)),
            _ => Err(SqlError::syntax(
                format!("invalid model name '{literal}'"),
                None,
            )),
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Token helpers
// ---------------------------------------------------------------------------

fn is_trivia(token: &Token) -> bool {
    matches!(token, Token::Whitespace(_))
}

/// An unquoted word equal to `keyword`, case-insensitively.
pub(crate) fn is_word(token: &Token, keyword: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(keyword))
}

fn word(token: &Token) -> Option<&Word> {
    match token {
        Token::Word(w) => Some(w),
        _ => None,
    }
}

fn ident_of(w: &Word, span: Span) -> Ident {
    Ident {
        value: w.value.clone(),
        quote_style: w.quote_style,
        span,
    }
}

/// Index of the first non-trivia token at or after `from`.
pub(crate) fn next_sig(tokens: &[TokenWithSpan], from: usize) -> Option<usize> {
    (from..tokens.len()).find(|&i| tokens.get(i).is_some_and(|t| !is_trivia(&t.token)))
}

/// Index of the last non-trivia token strictly before `before`.
fn prev_sig(tokens: &[TokenWithSpan], before: usize) -> Option<usize> {
    (0..before.min(tokens.len()))
        .rev()
        .find(|&i| tokens.get(i).is_some_and(|t| !is_trivia(&t.token)))
}

fn synth(token: Token, span: Span) -> TokenWithSpan {
    TokenWithSpan::new(token, span)
}

fn locate(map: &SourceMap<'_>, span: Span) -> Option<usize> {
    map.position(span.start)
}

// ---------------------------------------------------------------------------
// Pass 1: WITH ... AS MODEL
// ---------------------------------------------------------------------------

/// One entry of a `WITH` list, as positions in the significant-token index.
struct CteEntry {
    start: usize,
    end: usize,
    binding: Option<ModelBinding>,
}

/// Removes model bindings from every `WITH` list of one statement.
///
/// A `WITH` whose following tokens do not look like a CTE list (e.g.
/// `WITH TIME ZONE`, `WITH (FORMAT csv)`, `CREATE USER u WITH PASSWORD`) is
/// left alone. Bindings are returned in source order; binding the same alias
/// twice is a `42712` error.
pub(crate) fn strip_model_bindings(
    tokens: Vec<TokenWithSpan>,
    map: &SourceMap<'_>,
) -> Result<(Vec<TokenWithSpan>, Vec<ModelBinding>), SqlError> {
    let sig: Vec<usize> = (0..tokens.len())
        .filter(|&i| !is_trivia(&tokens[i].token))
        .collect();
    let mut remove = vec![false; tokens.len()];
    let mut bindings: Vec<ModelBinding> = Vec::new();

    for p in 0..sig.len() {
        if !is_word(&tokens[sig[p]].token, "WITH") {
            continue;
        }
        let mut q = p + 1;
        let recursive = sig
            .get(q)
            .is_some_and(|&i| is_word(&tokens[i].token, "RECURSIVE"));
        if recursive {
            q += 1;
        }
        let Some(entries) = scan_cte_list(&tokens, &sig, q, map)? else {
            continue;
        };
        if entries.iter().all(|e| e.binding.is_none()) {
            continue;
        }
        // Separators: the comma right after each entry except the last.
        let kept: Vec<&CteEntry> = entries.iter().filter(|e| e.binding.is_none()).collect();
        for (n, entry) in entries.iter().enumerate() {
            if n + 1 < entries.len() {
                if let Some(&comma) = sig.get(entry.end) {
                    remove[comma] = true;
                }
            }
            if entry.binding.is_some() {
                for &i in &sig[entry.start..entry.end] {
                    remove[i] = true;
                }
            }
        }
        for entry in kept.iter().skip(1) {
            if let Some(&comma) = entry.start.checked_sub(1).and_then(|c| sig.get(c)) {
                remove[comma] = false;
            }
        }
        if kept.is_empty() {
            remove[sig[p]] = true;
            if recursive {
                remove[sig[p + 1]] = true;
            }
        }
        for entry in entries {
            if let Some(binding) = entry.binding {
                let alias = normalize_ident(&binding.alias);
                if bindings.iter().any(|b| normalize_ident(&b.alias) == alias) {
                    return Err(SqlError::new(
                        SqlErrorKind::DuplicateAlias,
                        format!("WITH query name \"{alias}\" specified more than once"),
                        locate(map, binding.alias.span),
                    ));
                }
                bindings.push(binding);
            }
        }
    }

    let kept = tokens
        .into_iter()
        .zip(remove)
        .filter_map(|(t, r)| (!r).then_some(t))
        .collect();
    Ok((kept, bindings))
}

/// Skips a balanced parenthesised group starting at significant position `q`
/// (which must be `(`); returns the position after its `)`.
fn skip_parens(tokens: &[TokenWithSpan], sig: &[usize], q: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (offset, &i) in sig.get(q..)?.iter().enumerate() {
        match tokens[i].token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(q + offset + 1);
                }
            }
            _ => {}
        }
        if depth == 0 {
            return None;
        }
    }
    None
}

/// Parses a CTE list starting at significant position `q`. Returns `None` when
/// the tokens are not a CTE list, and an error only for malformed model
/// bindings (after `AS MODEL` the intent is unambiguous).
fn scan_cte_list(
    tokens: &[TokenWithSpan],
    sig: &[usize],
    mut q: usize,
    map: &SourceMap<'_>,
) -> Result<Option<Vec<CteEntry>>, SqlError> {
    let tok = |pos: usize| sig.get(pos).map(|&i| &tokens[i]);
    let mut entries = Vec::new();
    loop {
        let start = q;
        let Some(name_tok) = tok(q) else {
            return Ok(None);
        };
        let Some(name_word) = word(&name_tok.token) else {
            return Ok(None);
        };
        q += 1;
        if tok(q).is_some_and(|t| t.token == Token::LParen) {
            let Some(after) = skip_parens(tokens, sig, q) else {
                return Ok(None);
            };
            q = after;
        }
        if !tok(q).is_some_and(|t| is_word(&t.token, "AS")) {
            return Ok(None);
        }
        q += 1;
        let binding = if tok(q).is_some_and(|t| is_word(&t.token, "MODEL")) {
            let model_kw = tok(q).map(|t| t.span).unwrap_or(Span::empty());
            q += 1;
            let mut parts = Vec::new();
            loop {
                match tok(q) {
                    Some(t) if matches!(t.token, Token::Word(_)) => {
                        if let Some(w) = word(&t.token) {
                            parts.push(ident_of(w, t.span));
                        }
                        q += 1;
                    }
                    other => {
                        let position = match other {
                            Some(t) => locate(map, t.span),
                            None => map.position(model_kw.end),
                        };
                        return Err(SqlError::syntax(
                            "expected a model name after AS MODEL",
                            position,
                        ));
                    }
                }
                if tok(q).is_some_and(|t| t.token == Token::Period) {
                    q += 1;
                } else {
                    break;
                }
            }
            if parts.len() > 3 {
                return Err(SqlError::syntax(
                    "model name has too many parts (at most database.schema.model)",
                    locate(map, parts[0].span),
                ));
            }
            let mut version = None;
            if tok(q).is_some_and(|t| is_word(&t.token, "VERSION")) {
                let version_kw = tok(q).map(|t| t.span).unwrap_or(model_kw);
                q += 1;
                match tok(q) {
                    Some(t) if matches!(t.token, Token::Word(_)) => {
                        if let Some(w) = word(&t.token) {
                            version = Some(ModelVersionRef {
                                name: ident_of(w, t.span),
                            });
                        }
                        q += 1;
                    }
                    other => {
                        let position = match other {
                            Some(t) => locate(map, t.span),
                            None => map.position(version_kw.end),
                        };
                        return Err(SqlError::syntax(
                            "expected a version name or alias after VERSION",
                            position,
                        ));
                    }
                }
            }
            Some(ModelBinding {
                alias: ident_of(name_word, name_tok.span),
                model: ObjectName::from(parts),
                version,
            })
        } else {
            if tok(q).is_some_and(|t| is_word(&t.token, "NOT")) {
                q += 1;
            }
            if tok(q).is_some_and(|t| is_word(&t.token, "MATERIALIZED")) {
                q += 1;
            }
            if tok(q).is_none_or(|t| t.token != Token::LParen) {
                return Ok(None);
            }
            let Some(after) = skip_parens(tokens, sig, q) else {
                return Ok(None);
            };
            q = after;
            None
        };
        entries.push(CteEntry {
            start,
            end: q,
            binding,
        });
        if tok(q).is_some_and(|t| t.token == Token::Comma) {
            q += 1;
        } else {
            return Ok(Some(entries));
        }
    }
}

// ---------------------------------------------------------------------------
// Pass 2: model calls
// ---------------------------------------------------------------------------

/// The model a `!` call refers to, and where its tokens start in the output.
struct ModelRef {
    cut: usize,
    model: String,
    version: String,
}

/// Rewrites `ref!method(args)` into `freshet_model_call('<model>',
/// '<version>', '<method>', args)`. `ref` is a binding alias, a 1-3 part model
/// name, or `MODEL(name [, version])`. Arguments are processed by the same
/// left-to-right scan, so nested calls work.
pub(crate) fn rewrite_model_calls(
    tokens: Vec<TokenWithSpan>,
    bindings: &[ModelBinding],
    map: &SourceMap<'_>,
) -> Result<Vec<TokenWithSpan>, SqlError> {
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let current = &tokens[i];
        if current.token == Token::ExclamationMark {
            let method = next_sig(&tokens, i + 1).and_then(|j| {
                let w = word(&tokens[j].token)?;
                let k = next_sig(&tokens, j + 1)?;
                (tokens[k].token == Token::LParen).then(|| (ident_of(w, tokens[j].span), k))
            });
            if let Some((method, lparen)) = method {
                if let Some(reference) = model_ref_before(&out, bindings, map)? {
                    let span = out.get(reference.cut).map_or(current.span, |t| t.span);
                    out.truncate(reference.cut);
                    out.push(synth(Token::make_word(MODEL_CALL_FUNCTION, None), span));
                    out.push(tokens[lparen].clone());
                    out.push(synth(Token::SingleQuotedString(reference.model), span));
                    out.push(synth(Token::Comma, span));
                    out.push(synth(Token::SingleQuotedString(reference.version), span));
                    out.push(synth(Token::Comma, span));
                    out.push(synth(
                        Token::SingleQuotedString(normalize_ident(&method)),
                        method.span,
                    ));
                    let has_args = next_sig(&tokens, lparen + 1)
                        .is_some_and(|n| tokens[n].token != Token::RParen);
                    if has_args {
                        out.push(synth(Token::Comma, tokens[lparen].span));
                    }
                    i = lparen + 1;
                    continue;
                }
            }
        }
        out.push(current.clone());
        i += 1;
    }
    Ok(out)
}

/// Reads the model reference that ends the already-emitted tokens, if any.
fn model_ref_before(
    out: &[TokenWithSpan],
    bindings: &[ModelBinding],
    map: &SourceMap<'_>,
) -> Result<Option<ModelRef>, SqlError> {
    let Some(last) = prev_sig(out, out.len()) else {
        return Ok(None);
    };
    match &out[last].token {
        Token::Word(_) => {
            let (first, parts) = read_name_backwards(out, last);
            if parts.len() > 3 {
                return Err(SqlError::syntax(
                    "model name has too many parts (at most database.schema.model)",
                    locate(map, out[first].span),
                ));
            }
            if let [single] = parts.as_slice() {
                let alias = normalize_ident(single);
                if let Some(b) = bindings.iter().find(|b| normalize_ident(&b.alias) == alias) {
                    return Ok(Some(ModelRef {
                        cut: first,
                        model: model_name_literal(&b.model),
                        version: b
                            .version
                            .as_ref()
                            .map(|v| normalize_ident(&v.name))
                            .unwrap_or_default(),
                    }));
                }
            }
            Ok(Some(ModelRef {
                cut: first,
                model: model_name_literal(&ObjectName::from(parts)),
                version: String::new(),
            }))
        }
        Token::RParen => Ok(model_function_before(out, last)),
        _ => Ok(None),
    }
}

/// Walks back over `a.b.c` ending at `last`; returns the index of the first
/// token and the parts in source order. Stops (without consuming) at anything
/// that is not `. word`, so `SELECT m` yields just `m`.
fn read_name_backwards(out: &[TokenWithSpan], last: usize) -> (usize, Vec<Ident>) {
    let mut first = last;
    let mut parts = Vec::new();
    if let Some(w) = word(&out[last].token) {
        parts.push(ident_of(w, out[last].span));
    }
    while let Some(dot) = prev_sig(out, first) {
        if out[dot].token != Token::Period {
            break;
        }
        let Some(prev) = prev_sig(out, dot) else {
            break;
        };
        let Some(w) = word(&out[prev].token) else {
            break;
        };
        parts.push(ident_of(w, out[prev].span));
        first = prev;
    }
    parts.reverse();
    (first, parts)
}

/// Recognises `MODEL ( name [, version] )` ending at the `)` at `rparen`.
fn model_function_before(out: &[TokenWithSpan], rparen: usize) -> Option<ModelRef> {
    let mut depth = 0usize;
    let mut lparen = None;
    for i in (0..=rparen).rev() {
        match out[i].token {
            Token::RParen => depth += 1,
            Token::LParen => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    lparen = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let lparen = lparen?;
    let kw = prev_sig(out, lparen)?;
    if !is_word(&out[kw].token, "MODEL") {
        return None;
    }
    let inner: Vec<&TokenWithSpan> = out[lparen + 1..rparen]
        .iter()
        .filter(|t| !is_trivia(&t.token))
        .collect();
    let mut parts = Vec::new();
    let mut pos = 0;
    loop {
        let t = inner.get(pos)?;
        parts.push(ident_of(word(&t.token)?, t.span));
        pos += 1;
        match inner.get(pos).map(|t| &t.token) {
            Some(Token::Period) => pos += 1,
            _ => break,
        }
    }
    if parts.len() > 3 {
        return None;
    }
    let version = match inner.get(pos).map(|t| &t.token) {
        None => String::new(),
        Some(Token::Comma) => {
            let t = inner.get(pos + 1)?;
            let v = match &t.token {
                Token::Word(w) => normalize_ident(&ident_of(w, t.span)),
                Token::SingleQuotedString(s) => s.clone(),
                _ => return None,
            };
            if inner.len() != pos + 2 {
                return None;
            }
            v
        }
        Some(_) => return None,
    };
    Some(ModelRef {
        cut: kw,
        model: model_name_literal(&ObjectName::from(parts)),
        version,
    })
}

// ---------------------------------------------------------------------------
// Pass 3: `expr:field` paths
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Paren,
    /// A user-written `[`; `chained` when it directly follows a path segment,
    /// so that `x:a[0].b` continues the path after `]`.
    Bracket {
        chained: bool,
    },
}

fn push_marker(out: &mut Vec<TokenWithSpan>, field: &Word, colon: Span, field_span: Span) {
    out.push(synth(Token::LBracket, colon));
    out.push(synth(Token::make_word(PATH_MARKER, None), field_span));
    out.push(synth(Token::LParen, field_span));
    out.push(synth(
        Token::SingleQuotedString(field.value.clone()),
        field_span,
    ));
    out.push(synth(Token::RParen, field_span));
    out.push(synth(Token::RBracket, field_span));
}

/// Reserved words that can never end an expression, so a `:` after them is
/// not a path (e.g. psql-style `LIMIT :n` stays a syntax error about `:`
/// instead of turning into a confusing subscript).
fn ends_no_expression(w: &Word) -> bool {
    const RESERVED: &[&str] = &[
        "ALL",
        "AND",
        "ANY",
        "AS",
        "BETWEEN",
        "BY",
        "CASE",
        "DISTINCT",
        "ELSE",
        "FROM",
        "HAVING",
        "ILIKE",
        "IN",
        "INTO",
        "IS",
        "JOIN",
        "LIKE",
        "LIMIT",
        "NOT",
        "OFFSET",
        "ON",
        "OR",
        "RETURNING",
        "SELECT",
        "SET",
        "SOME",
        "THEN",
        "USING",
        "VALUES",
        "WHEN",
        "WHERE",
        "WITH",
    ];
    w.quote_style.is_none() && RESERVED.iter().any(|k| w.value.eq_ignore_ascii_case(k))
}

/// Rewrites `<word | ) | ]> : <word>` (and `.word` continuations of such a
/// path) into marker subscripts. Colons directly inside `[...]` are array
/// slices and are left alone, as are `::` casts and `:=` (separate tokens).
/// Field names keep their case: Snowflake path elements are case-sensitive.
pub(crate) fn rewrite_paths(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut groups: Vec<Group> = Vec::new();
    let mut chain = false;
    let mut i = 0;
    while i < tokens.len() {
        let current = &tokens[i];
        match &current.token {
            Token::Whitespace(_) => {
                out.push(current.clone());
                i += 1;
                continue;
            }
            Token::Colon | Token::Period => {
                let is_colon = current.token == Token::Colon;
                let in_brackets = matches!(groups.last(), Some(Group::Bracket { .. }));
                let left_ok = prev_sig(&out, out.len()).is_some_and(|p| match &out[p].token {
                    Token::Word(w) => !ends_no_expression(w),
                    Token::RParen | Token::RBracket => true,
                    _ => false,
                });
                let applies = if is_colon {
                    !in_brackets && left_ok
                } else {
                    chain && left_ok
                };
                if applies {
                    if let Some(j) = next_sig(&tokens, i + 1) {
                        if let Token::Word(field) = &tokens[j].token {
                            push_marker(&mut out, field, current.span, tokens[j].span);
                            chain = true;
                            i = j + 1;
                            continue;
                        }
                    }
                }
                chain = false;
            }
            Token::LBracket => {
                groups.push(Group::Bracket { chained: chain });
                chain = false;
            }
            Token::RBracket => {
                chain = matches!(groups.pop(), Some(Group::Bracket { chained: true }));
                out.push(current.clone());
                i += 1;
                continue;
            }
            Token::LParen => {
                groups.push(Group::Paren);
                chain = false;
            }
            Token::RParen => {
                groups.pop();
                chain = false;
            }
            _ => chain = false,
        }
        out.push(current.clone());
        i += 1;
    }
    out
}

/// Extracts the field name from a marker subscript produced by
/// [`rewrite_paths`].
fn marker_field(access: &AccessExpr) -> Option<String> {
    let AccessExpr::Subscript(Subscript::Index {
        index: Expr::Function(f),
    }) = access
    else {
        return None;
    };
    let [ObjectNamePart::Identifier(name)] = f.name.0.as_slice() else {
        return None;
    };
    if name.quote_style.is_some() || name.value != PATH_MARKER {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))] => match &v.value {
            Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Builds `name(args...)` with no modifiers.
pub fn function_call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// Re-attaches ordinary accesses to `base`, producing the same shape
/// sqlparser would have produced without the markers (a plain
/// `CompoundIdentifier` for `t.col`).
fn attach(base: Expr, pending: Vec<AccessExpr>) -> Expr {
    if pending.is_empty() {
        return base;
    }
    let all_dots: Option<Vec<Ident>> = pending
        .iter()
        .map(|a| match a {
            AccessExpr::Dot(Expr::Identifier(id)) => Some(id.clone()),
            _ => None,
        })
        .collect();
    match (base, all_dots) {
        (Expr::Identifier(root), Some(rest)) => {
            Expr::CompoundIdentifier(std::iter::once(root).chain(rest).collect())
        }
        (Expr::CompoundIdentifier(mut parts), Some(rest)) => {
            parts.extend(rest);
            Expr::CompoundIdentifier(parts)
        }
        (base, _) => Expr::CompoundFieldAccess {
            root: Box::new(base),
            access_chain: pending,
        },
    }
}

/// Replaces every marker subscript in `tree` with
/// [`GET_FIELD_FUNCTION`] calls: `x[m('a')][m('b')]` becomes
/// `freshet_get_field(freshet_get_field(x, 'a'), 'b')`.
pub(crate) fn resolve_path_markers<V: VisitMut>(tree: &mut V) {
    let _ = visit_expressions_mut(tree, |expr: &mut Expr| {
        let has_marker = matches!(
            expr,
            Expr::CompoundFieldAccess { access_chain, .. }
                if access_chain.iter().any(|a| marker_field(a).is_some())
        );
        if has_marker {
            let taken = std::mem::replace(expr, Expr::Value(Value::Null.into()));
            if let Expr::CompoundFieldAccess { root, access_chain } = taken {
                let mut current = *root;
                let mut pending = Vec::new();
                for access in access_chain {
                    match marker_field(&access) {
                        Some(field) => {
                            let base = attach(current, std::mem::take(&mut pending));
                            current = function_call(
                                GET_FIELD_FUNCTION,
                                vec![base, Expr::value(Value::SingleQuotedString(field))],
                            );
                        }
                        None => pending.push(access),
                    }
                }
                *expr = attach(current, pending);
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Lists the model calls in a parsed tree (a statement, query or
/// expression), for dependency tracking. Only calls whose first three
/// arguments are string literals (as produced by the rewrite) are reported.
pub fn collect_model_calls<V: Visit>(tree: &V) -> Vec<ModelCall> {
    let mut calls = Vec::new();
    let _ = visit_expressions(tree, |expr: &Expr| {
        if let Expr::Function(f) = expr {
            let is_call = matches!(
                f.name.0.as_slice(),
                [ObjectNamePart::Identifier(n)] if n.value.eq_ignore_ascii_case(MODEL_CALL_FUNCTION)
            );
            if let (true, FunctionArguments::List(list)) = (is_call, &f.args) {
                let literal = |n: usize| match list.args.get(n) {
                    Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))) => {
                        match &v.value {
                            Value::SingleQuotedString(s) => Some(s.clone()),
                            _ => None,
                        }
                    }
                    _ => None,
                };
                if let (Some(model), Some(version), Some(method)) =
                    (literal(0), literal(1), literal(2))
                {
                    let call = ModelCall {
                        model,
                        version: (!version.is_empty()).then_some(version),
                        method,
                    };
                    if !calls.contains(&call) {
                        calls.push(call);
                    }
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
    calls
}
