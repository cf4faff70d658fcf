//! The expression depth limit: statements too deeply nested to plan are
//! refused with 54001 (`statement_too_complex`) before they are parsed.
//!
//! sqlparser builds a chain of binary operators (`1+1+…`, `a OR b OR …`,
//! `x || y || …`), a chain of casts or of `IS NULL`s, and a chain of `UNION`s
//! in a loop, into a tree as deep as the chain is long. Everything after it
//! (Freshet's rewrites, DataFusion's planner and optimizer, cloning,
//! formatting, even dropping the tree) recurses over that depth, and the
//! thread's stack would run out: the process would abort. Nesting through
//! parentheses and prefix operators is bounded by sqlparser's own recursion
//! limit; this module bounds the chains.
//!
//! The check runs on the tokens of one statement, so it costs one pass over
//! them and no recursion, and it runs before the parser, so not even a
//! partly built tree (dropped when a later token is a syntax error) can be
//! deeper than the limit. It counts, at each parenthesis level, the operators
//! and operator keywords since the last comma or `CASE` branch keyword, plus
//! the set operators of that level, and adds the counts of the enclosing
//! levels. That sum is an upper bound on the depth of the tree the parser
//! builds at that token (comparisons in an `AND` chain count twice, so an
//! `AND`/`OR` chain of `x = n` terms can have half as many terms). Lists are
//! wide, not deep: `IN (1, 2, …)` with any number of values, a `VALUES` list
//! of any length, or a `CASE` with many `WHEN`s do not count against the
//! limit.

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::error::{SqlError, SqlErrorKind};
use crate::source::SourceMap;

/// The deepest chain of operators one statement may hold, counted as the
/// module docs describe: a sum of this many terms, or an `OR` chain of half
/// as many `x = n` comparisons.
///
/// Every thread that parses, plans or executes statements runs with a stack
/// of [`WORKER_STACK_SIZE`] bytes; the deepest expressions this limit allows
/// were measured to plan and run well within it (DataFusion grows its own
/// recursion onto the heap; what recursed on the thread's stack were
/// cloning, formatting and dropping expression trees). Raise the two
/// together.
pub const MAX_EXPRESSION_DEPTH: usize = 10_000;

/// The stack size of every thread that parses, plans or executes SQL (the
/// compute runtime, the connection I/O runtime, the refresh runtime).
/// Reserved as address space; only the pages a deep statement touches
/// become memory.
pub const WORKER_STACK_SIZE: usize = 64 * 1024 * 1024;

/// Per parenthesis level: operators since the last separator, and set
/// operators.
#[derive(Debug, Default, Clone, Copy)]
struct Level {
    operators: usize,
    set_operators: usize,
}

impl Level {
    fn depth(self) -> usize {
        self.operators + self.set_operators
    }
}

/// Refuses a statement whose operator chains are deeper than
/// [`MAX_EXPRESSION_DEPTH`] (see the module docs).
pub(crate) fn check_depth(tokens: &[TokenWithSpan], map: &SourceMap<'_>) -> Result<(), SqlError> {
    let mut levels = vec![Level::default()];
    // The summed depth of all levels but the innermost.
    let mut enclosing = 0usize;
    for token in tokens {
        let Some(current) = levels.last_mut() else {
            break;
        };
        match &token.token {
            Token::LParen | Token::LBracket => {
                enclosing += current.depth();
                levels.push(Level::default());
                continue;
            }
            Token::RParen | Token::RBracket => {
                if levels.len() > 1 {
                    levels.pop();
                    if let Some(outer) = levels.last() {
                        enclosing = enclosing.saturating_sub(outer.depth());
                    }
                }
                continue;
            }
            Token::Comma => current.operators = 0,
            Token::Word(word) => match word.keyword {
                Keyword::WHEN | Keyword::THEN | Keyword::ELSE => current.operators = 0,
                Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT => {
                    current.set_operators += 1;
                }
                Keyword::AND
                | Keyword::OR
                | Keyword::NOT
                | Keyword::XOR
                | Keyword::IS
                | Keyword::LIKE
                | Keyword::ILIKE
                | Keyword::SIMILAR
                | Keyword::BETWEEN
                | Keyword::IN
                | Keyword::COLLATE
                | Keyword::AT => current.operators += 1,
                _ => {}
            },
            Token::Whitespace(_)
            | Token::Number(_, _)
            | Token::Char(_)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::Placeholder(_)
            | Token::Period
            | Token::SemiColon
            | Token::EOF => {}
            _ => current.operators += 1,
        }
        if enclosing + current.depth() > MAX_EXPRESSION_DEPTH {
            return Err(SqlError::new(
                SqlErrorKind::TooComplex,
                format!(
                    "statement is too complex: an expression nests more than \
                     {MAX_EXPRESSION_DEPTH} operators deep"
                ),
                map.position(token.span.start),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str) -> Result<(), SqlError> {
        let map = SourceMap::new(sql);
        let tokens = crate::parser::tokenize(sql, &map).unwrap();
        check_depth(&tokens, &map)
    }

    fn chain(op: &str, terms: usize) -> String {
        vec!["1"; terms].join(op)
    }

    #[test]
    fn long_chains_are_refused_with_54001() {
        let sql = format!("SELECT {}", chain("+", MAX_EXPRESSION_DEPTH + 2));
        let e = check(&sql).unwrap_err();
        assert_eq!(e.sqlstate(), "54001");
        assert!(e.position.is_some());
        assert!(check(&format!("SELECT {}", chain("+", MAX_EXPRESSION_DEPTH))).is_ok());
        // Parentheses do not hide depth.
        let half = chain("+", MAX_EXPRESSION_DEPTH / 2 + 2);
        assert!(check(&format!("SELECT {half} + ({half})")).is_err());
    }

    #[test]
    fn wide_lists_are_not_deep() {
        let ids: Vec<String> = (0..50_000).map(|i| i.to_string()).collect();
        assert!(check(&format!("SELECT 1 WHERE 1 IN ({})", ids.join(", "))).is_ok());
        let rows: Vec<String> = (0..50_000).map(|i| format!("(-{i}, 'x')")).collect();
        assert!(check(&format!("INSERT INTO t VALUES {}", rows.join(", "))).is_ok());
        let whens: Vec<String> = (0..50_000)
            .map(|i| format!("WHEN x = {i} THEN -{i}"))
            .collect();
        assert!(check(&format!("SELECT CASE {} END FROM t", whens.join(" "))).is_ok());
        let columns: Vec<String> = (0..50_000).map(|i| format!("a + {i}")).collect();
        assert!(check(&format!("SELECT {} FROM t", columns.join(", "))).is_ok());
    }
}
