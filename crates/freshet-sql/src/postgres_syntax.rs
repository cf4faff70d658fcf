//! Token-level rewrites for PostgreSQL syntax that sqlparser misreads.
//!
//! Like [`crate::rewrite`], these work on the token stream, so string
//! literals, quoted identifiers and comments are never touched.
//!
//! * [`rewrite_trim_from`]: `trim([BOTH | LEADING | TRAILING] FROM x)`,
//!   PostgreSQL's spelling of trimming spaces, where sqlparser reads `FROM`
//!   as a column name and then fails at `x` ("expected )"). Dropping that
//!   `FROM` leaves `trim(LEADING x)`, which sqlparser parses to the same
//!   trim of spaces.

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
