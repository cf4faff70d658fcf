//! The single error type of the dialect layer.
//!
//! The server reports parse failures to Postgres clients as `ErrorResponse`
//! messages, which carry a SQLSTATE code and an optional 1-based *character*
//! position into the query string (the `P` field, which `psql` uses to draw the
//! caret under the offending token). [`SqlError`] therefore carries exactly
//! those two pieces of information alongside a human-readable message, so the
//! wire layer can forward it without re-interpreting anything.

use std::fmt;

/// The class of a [`SqlError`]; each maps to one SQLSTATE code.
///
/// Kept separate from the message so callers can branch on the failure class
/// (for example, to decide whether retrying with a different dialect makes
/// sense) without string matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlErrorKind {
    /// The statement is not valid SQL for Freshet's dialect (`42601`).
    Syntax,
    /// The statement is recognised but uses a feature Freshet does not
    /// implement (`0A000`, `feature_not_supported`).
    Unsupported,
    /// A literal option value is well-formed SQL but out of range or
    /// meaningless, such as `TARGET_LAG = '0 seconds'` (`22023`,
    /// `invalid_parameter_value`).
    InvalidParameterValue,
    /// A literal could not be decoded, such as a malformed `'\x..'::bytea`
    /// model payload (`22P02`, `invalid_text_representation`).
    InvalidTextRepresentation,
    /// The same alias was bound twice in one `WITH` clause (`42712`,
    /// `duplicate_alias`), mirroring Postgres' error for duplicate CTE names.
    DuplicateAlias,
    /// The statement nests too deeply for the parser's recursion limit
    /// (`54001`, `statement_too_complex`).
    TooComplex,
}

impl SqlErrorKind {
    /// The Postgres SQLSTATE code for this kind of error.
    pub fn sqlstate(self) -> &'static str {
        match self {
            SqlErrorKind::Syntax => "42601",
            SqlErrorKind::Unsupported => "0A000",
            SqlErrorKind::InvalidParameterValue => "22023",
            SqlErrorKind::InvalidTextRepresentation => "22P02",
            SqlErrorKind::DuplicateAlias => "42712",
            SqlErrorKind::TooComplex => "54001",
        }
    }
}

impl fmt::Display for SqlErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            SqlErrorKind::Syntax => "syntax error",
            SqlErrorKind::Unsupported => "feature not supported",
            SqlErrorKind::InvalidParameterValue => "invalid parameter value",
            SqlErrorKind::InvalidTextRepresentation => "invalid text representation",
            SqlErrorKind::DuplicateAlias => "duplicate alias",
            SqlErrorKind::TooComplex => "statement too complex",
        };
        f.write_str(text)
    }
}

/// An error produced while splitting, rewriting or parsing SQL text.
///
/// `position` is a 1-based character (not byte) offset into the *original*
/// string passed to [`crate::parse_sql`], matching the semantics of the
/// Postgres `ErrorResponse` position field. It is `None` only when no
/// location is known; errors at the end of a statement point one past its
/// last character, as Postgres does for "at end of input".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    /// What class of failure this is (determines the SQLSTATE).
    pub kind: SqlErrorKind,
    /// Human-readable description, without location suffix.
    pub message: String,
    /// 1-based character offset into the original SQL text, if known.
    pub position: Option<usize>,
}

impl SqlError {
    /// Builds an error of an arbitrary kind.
    pub fn new(kind: SqlErrorKind, message: impl Into<String>, position: Option<usize>) -> Self {
        SqlError {
            kind,
            message: message.into(),
            position,
        }
    }

    /// A `42601` syntax error. Messages of the form "expected X, found Y" are
    /// phrased the way Postgres phrases them (`syntax error at or near "Y"`),
    /// because tools and people search for that wording; the parser's
    /// expectation is kept as a hint after it.
    pub fn syntax(message: impl Into<String>, position: Option<usize>) -> Self {
        Self::new(
            SqlErrorKind::Syntax,
            postgres_syntax_message(message.into()),
            position,
        )
    }

    /// A `0A000` feature-not-supported error.
    pub fn unsupported(message: impl Into<String>, position: Option<usize>) -> Self {
        Self::new(SqlErrorKind::Unsupported, message, position)
    }

    /// A `22023` invalid-parameter-value error.
    pub fn invalid_parameter(message: impl Into<String>, position: Option<usize>) -> Self {
        Self::new(SqlErrorKind::InvalidParameterValue, message, position)
    }

    /// The Postgres SQLSTATE code to send to the client.
    pub fn sqlstate(&self) -> &'static str {
        self.kind.sqlstate()
    }

    /// Returns the same error with `position` replaced, used when a helper
    /// that does not know where its input came from (such as
    /// [`crate::TargetLag::parse`]) is called on a located literal.
    pub fn at(mut self, position: Option<usize>) -> Self {
        self.position = position;
        self
    }
}

/// Rewrites sqlparser's and Freshet's "expected X, found Y" into Postgres'
/// "syntax error at or near \"Y\"" wording, keeping X as a hint.
fn postgres_syntax_message(message: String) -> String {
    if message.starts_with("syntax error") {
        return message;
    }
    let lower = message.to_ascii_lowercase();
    let split = lower
        .find(", found: ")
        .map(|i| (i, i + ", found: ".len()))
        .or_else(|| lower.find(", found ").map(|i| (i, i + ", found ".len())));
    let Some((comma, found_at)) = split.filter(|_| lower.starts_with("expected")) else {
        return format!("syntax error: {message}");
    };
    let expected = message["expected".len()..comma]
        .trim_start_matches(':')
        .trim();
    let found = message[found_at..].trim();
    if found.eq_ignore_ascii_case("EOF") || found == "end of statement" {
        format!("syntax error at end of input (expected {expected})")
    } else {
        format!("syntax error at or near \"{found}\" (expected {expected})")
    }
}
