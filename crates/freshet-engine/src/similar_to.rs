//! PostgreSQL 15 `SIMILAR TO` → Rust `regex` pattern conversion.
//!
//! Reproduces PostgreSQL 15.x (checked against 15.18) in two stages:
//!
//! 1. [`similar_escape_are`] builds what PostgreSQL's `similar_to_escape()`
//!    returns for the pattern (checked case by case against PostgreSQL 15): it turns the SQL
//!    pattern into the exact Advanced Regular Expression (ARE) string that
//!    PostgreSQL builds, e.g. `^(?:a.*)$` (what `similar_to_escape()` returns),
//!    including the bracket-expression tracking, `escape + "` separators and the
//!    "more than two separators" error.
//! 2. [`are_to_rust`] re-parses that ARE (only the subset stage 1 can produce,
//!    which is everything the user can smuggle through escapes and brackets) and
//!    emits an equivalent pattern for Rust's `regex` crate: literals are
//!    escaped for Rust's syntax, `(?s)` makes `.` match newlines (as `_`/`%` do
//!    in PG), ARE-only escapes (`\y`, `\m`, `\M`, `\e`, `\b`=backspace, ...) are
//!    mapped, and ARE compile errors PG would raise (unbalanced parens/brackets,
//!    quantifier without operand, bad repetition count > 255 or m > n,
//!    reversed ranges, unknown escapes/classes) are reported with PG's message.
//!
//! [`similar_to_regex`] chains both. The result always matches the WHOLE string.
//!
//! Left out / known gaps (return `Unsupported` or differ subtly):
//! * valid back-references (`\1` to an existing group; invalid ones give PG's
//!   error), octal `\0..` escapes,
//!   multi-character collating elements, and the ARE `***`/`(?flags)` directors.
//! * POSIX classes follow PG's C.UTF-8 behaviour approximately: alpha/alnum/
//!   upper/lower/space use Unicode properties, digit/xdigit/blank are ASCII, the
//!   rest (punct, cntrl, print, graph) use Rust's ASCII-only definitions.
//!   `[=x=]` equivalence classes match only `x` itself. `\w`/`\d`/`\s` use
//!   Rust's Unicode definitions.
//! * Only the escape string check (`parse_escape`) and regex-compilation errors
//!   listed above are detected; no limits on pattern size/complexity.

use std::fmt;

/// Error for SIMILAR TO conversion, with PostgreSQL's SQLSTATE and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimilarToError {
    /// 22025: ESCAPE string longer than one character.
    #[cfg_attr(not(test), allow(dead_code))]
    InvalidEscapeString,
    /// 2200C: more than two `escape + "` separators.
    TooManySeparators,
    /// 2201B: the resulting ARE does not compile in PostgreSQL.
    InvalidRegex(&'static str),
    /// 0A000: valid in PostgreSQL but not translatable to Rust `regex`.
    Unsupported(String),
}

impl SimilarToError {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Self::InvalidEscapeString => "22025",
            Self::TooManySeparators => "2200C",
            Self::InvalidRegex(_) => "2201B",
            Self::Unsupported(_) => "0A000",
        }
    }
}

impl fmt::Display for SimilarToError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidEscapeString => f.write_str("invalid escape string"),
            Self::TooManySeparators => f.write_str(
                "SQL regular expression may not contain more than two escape-double-quote separators",
            ),
            Self::InvalidRegex(m) => write!(f, "invalid regular expression: {m}"),
            Self::Unsupported(m) => write!(f, "unsupported regular expression feature: {m}"),
        }
    }
}

impl std::error::Error for SimilarToError {}

/// Interprets an `ESCAPE` clause string: `None` (no clause) → backslash,
/// `Some("")` → no escape, one char → that char, longer → 22025 error.
#[cfg(test)]
pub fn parse_escape(escape: Option<&str>) -> Result<Option<char>, SimilarToError> {
    match escape {
        None => Ok(Some('\\')),
        Some(s) => {
            let mut it = s.chars();
            match (it.next(), it.next()) {
                (None, _) => Ok(None),
                (Some(c), None) => Ok(Some(c)),
                _ => Err(SimilarToError::InvalidEscapeString),
            }
        }
    }
}

/// Converts a SIMILAR TO pattern to a Rust `regex` pattern matching the whole
/// input. `escape` is the escape character (`Some('\\')` is PG's default;
/// `None` means `ESCAPE ''`).
pub fn similar_to_regex(pattern: &str, escape: Option<char>) -> Result<String, SimilarToError> {
    are_to_rust(&similar_escape_are(pattern, escape)?)
}

/// The ARE string PostgreSQL 15 would compile for the pattern (same as `similar_to_escape(pattern, esc)`).
pub fn similar_escape_are(pattern: &str, escape: Option<char>) -> Result<String, SimilarToError> {
    let mut r = String::with_capacity(pattern.len() * 3 + 23);
    r.push_str("^(?:");
    let (mut afterescape, mut nquotes) = (false, 0u8);
    let (mut bracket_depth, mut charclass_pos) = (0i32, 0i32);
    for pchar in pattern.chars() {
        if afterescape {
            if pchar == '"' && bracket_depth < 1 {
                match nquotes {
                    0 => r.push_str("){1,1}?("),
                    1 => r.push_str("){1,1}(?:"),
                    _ => return Err(SimilarToError::TooManySeparators),
                }
                nquotes += 1;
            } else {
                r.push('\\');
                r.push(pchar);
                charclass_pos = 3;
            }
            afterescape = false;
        } else if Some(pchar) == escape {
            afterescape = true;
        } else if bracket_depth > 0 {
            if pchar == '\\' {
                r.push('\\');
            }
            r.push(pchar);
            if pchar == ']' && charclass_pos > 2 {
                bracket_depth -= 1;
            } else if pchar == '[' {
                bracket_depth += 1;
                charclass_pos = 3;
            } else if pchar == '^' {
                charclass_pos += 1;
            } else {
                charclass_pos = 3;
            }
        } else if pchar == '[' {
            r.push('[');
            bracket_depth = 1;
            charclass_pos = 1;
        } else {
            match pchar {
                '%' => r.push_str(".*"),
                '_' => r.push('.'),
                '(' => r.push_str("(?:"),
                '\\' | '.' | '^' | '$' => {
                    r.push('\\');
                    r.push(pchar);
                }
                c => r.push(c),
            }
        }
    }
    r.push_str(")$");
    Ok(r)
}

fn push_lit(out: &mut String, c: char) {
    if "\\.+*?()|[]{}^$#&-~".contains(c) {
        out.push('\\');
    }
    out.push(c);
}

fn push_class_lit(out: &mut String, c: char) {
    if "\\[]^-&~".contains(c) {
        out.push('\\');
    }
    out.push(c);
}

const BAD_ESCAPE: SimilarToError = SimilarToError::InvalidRegex("invalid escape \\ sequence");

/// Control-character escapes valid both inside and outside brackets.
fn ctrl_escape(c: char) -> Option<char> {
    Some(match c {
        'a' => '\u{7}',
        'b' => '\u{8}',
        'e' => '\u{1b}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\u{b}',
        _ => return None,
    })
}

/// `\cX`, `\xhhh`, `\uhhhh`, `\Uhhhhhhhh`; `i` points after the escape letter.
fn code_escape(s: &[char], i: &mut usize, e: char) -> Result<char, SimilarToError> {
    if e == 'c' {
        let c = *s.get(*i).ok_or(BAD_ESCAPE)?;
        *i += 1;
        return char::from_u32(c as u32 & 0x1F).ok_or(BAD_ESCAPE);
    }
    let max = match e {
        'x' => usize::MAX,
        'u' => 4,
        'U' => 8,
        _ => return Err(SimilarToError::Unsupported(format!("escape \\{e}"))),
    };
    let (mut v, mut n) = (0u32, 0usize);
    while n < max {
        let Some(d) = s.get(*i).and_then(|d| d.to_digit(16)) else {
            break;
        };
        v = v.saturating_mul(16).saturating_add(d);
        *i += 1;
        n += 1;
    }
    if n == 0 || (max != usize::MAX && n != max) {
        return Err(BAD_ESCAPE);
    }
    char::from_u32(v).ok_or(BAD_ESCAPE)
}

/// Translates the ARE subset produced by [`similar_escape_are`] into Rust
/// `regex` syntax, with `(?s)` so that `.` also matches newlines.
pub fn are_to_rust(are: &str) -> Result<String, SimilarToError> {
    let s: Vec<char> = are.chars().collect();
    let mut out = String::with_capacity(are.len() * 2 + 8);
    out.push_str("(?s)");
    let (mut i, mut depth, mut can_quantify, mut groups) = (0usize, 0i32, false, 0u32);
    const NO_OPERAND: SimilarToError = SimilarToError::InvalidRegex("quantifier operand invalid");
    const BAD_COUNT: SimilarToError = SimilarToError::InvalidRegex("invalid repetition count(s)");
    while i < s.len() {
        let c = s[i];
        i += 1;
        match c {
            '(' => {
                depth += 1;
                if s.get(i) == Some(&'?') && s.get(i + 1) == Some(&':') {
                    i += 2;
                    out.push_str("(?:");
                } else if s.get(i) == Some(&'?') {
                    return Err(SimilarToError::Unsupported("(? directors".into()));
                } else {
                    groups += 1;
                    out.push('(');
                }
                can_quantify = false;
            }
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(SimilarToError::InvalidRegex("parentheses () not balanced"));
                }
                out.push(')');
                can_quantify = true;
            }
            '|' | '^' | '$' => {
                out.push(c);
                can_quantify = false;
            }
            '.' => {
                out.push('.');
                can_quantify = true;
            }
            '*' | '+' | '?' => {
                if !can_quantify {
                    return Err(NO_OPERAND);
                }
                out.push(c);
                if s.get(i) == Some(&'?') {
                    out.push('?');
                    i += 1;
                }
                can_quantify = false;
            }
            '{' if s.get(i).is_some_and(|d| d.is_ascii_digit()) => {
                let read_num = |i: &mut usize| -> Result<u32, SimilarToError> {
                    let mut n = 0u32;
                    while let Some(d) = s.get(*i).and_then(|d| d.to_digit(10)) {
                        n = n.saturating_mul(10).saturating_add(d);
                        *i += 1;
                    }
                    if n > 255 {
                        Err(BAD_COUNT)
                    } else {
                        Ok(n)
                    }
                };
                let m = read_num(&mut i)?;
                let mut n = Some(m);
                if s.get(i) == Some(&',') {
                    i += 1;
                    n = if s.get(i).is_some_and(|d| d.is_ascii_digit()) {
                        Some(read_num(&mut i)?)
                    } else {
                        None
                    };
                }
                if s.get(i) != Some(&'}') || n.is_some_and(|n| n < m) {
                    return Err(BAD_COUNT);
                }
                i += 1;
                if !can_quantify {
                    return Err(NO_OPERAND);
                }
                match n {
                    Some(n) if n == m => out.push_str(&format!("{{{m}}}")),
                    Some(n) => out.push_str(&format!("{{{m},{n}}}")),
                    None => out.push_str(&format!("{{{m},}}")),
                }
                if s.get(i) == Some(&'?') {
                    out.push('?');
                    i += 1;
                }
                can_quantify = false;
            }
            '\\' => {
                let e = *s
                    .get(i)
                    .ok_or(SimilarToError::InvalidRegex("invalid escape \\ sequence"))?;
                i += 1;
                can_quantify = true;
                match e {
                    'd' | 'D' | 's' | 'S' | 'w' | 'W' => {
                        out.push('\\');
                        out.push(e);
                    }
                    'y' => {
                        out.push_str(r"\b");
                        can_quantify = false;
                    }
                    'Y' => {
                        out.push_str(r"\B");
                        can_quantify = false;
                    }
                    'm' => {
                        out.push_str(r"\b{start}");
                        can_quantify = false;
                    }
                    'M' => {
                        out.push_str(r"\b{end}");
                        can_quantify = false;
                    }
                    'A' => {
                        out.push_str(r"\A");
                        can_quantify = false;
                    }
                    'Z' => {
                        out.push_str(r"\z");
                        can_quantify = false;
                    }
                    '1'..='9' if e.to_digit(10).is_some_and(|n| n > groups) => {
                        return Err(SimilarToError::InvalidRegex("invalid backreference number"));
                    }
                    e if e.is_ascii_alphanumeric() => match ctrl_escape(e) {
                        Some(ch) => push_lit(&mut out, ch),
                        None if "xuUc0123456789".contains(e) => {
                            push_lit(&mut out, code_escape(&s, &mut i, e)?)
                        }
                        None => return Err(BAD_ESCAPE),
                    },
                    e => push_lit(&mut out, e),
                }
            }
            '[' => {
                i = bracket(&s, i, &mut out)?;
                can_quantify = true;
            }
            c => {
                push_lit(&mut out, c);
                can_quantify = true;
            }
        }
    }
    if depth != 0 {
        return Err(SimilarToError::InvalidRegex("parentheses () not balanced"));
    }
    Ok(out)
}

/// One bracket element: a single character or a (pre-rendered) class.
enum Elem {
    Char(char),
    Class(String),
}

/// Parses an ARE bracket expression starting just after `[`; appends the Rust
/// class to `out` and returns the index after the closing `]`.
fn bracket(s: &[char], mut i: usize, out: &mut String) -> Result<usize, SimilarToError> {
    const UNBALANCED: SimilarToError = SimilarToError::InvalidRegex("brackets [] not balanced");
    out.push('[');
    if s.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut first = true;
    loop {
        let c = *s.get(i).ok_or(UNBALANCED)?;
        if c == ']' && !first {
            out.push(']');
            return Ok(i + 1);
        }
        first = false;
        let (elem, next) = bracket_elem(s, i)?;
        i = next;
        match elem {
            Elem::Class(cls) => out.push_str(&cls),
            Elem::Char(lo) => {
                // range?
                if s.get(i) == Some(&'-') && s.get(i + 1).is_some_and(|&n| n != ']') {
                    let (hi, next) = bracket_elem(s, i + 1)?;
                    let Elem::Char(hi) = hi else {
                        return Err(SimilarToError::InvalidRegex("invalid character range"));
                    };
                    if hi < lo {
                        return Err(SimilarToError::InvalidRegex("invalid character range"));
                    }
                    i = next;
                    push_class_lit(out, lo);
                    out.push('-');
                    push_class_lit(out, hi);
                } else {
                    push_class_lit(out, lo);
                }
            }
        }
    }
}

fn bracket_elem(s: &[char], i: usize) -> Result<(Elem, usize), SimilarToError> {
    const UNBALANCED: SimilarToError = SimilarToError::InvalidRegex("brackets [] not balanced");
    let c = *s.get(i).ok_or(UNBALANCED)?;
    match c {
        '[' if matches!(s.get(i + 1), Some(':' | '.' | '=')) => {
            let kind = s[i + 1];
            let start = i + 2;
            let mut j = start;
            while !(s.get(j) == Some(&kind) && s.get(j + 1) == Some(&']')) {
                if j >= s.len() {
                    return Err(UNBALANCED);
                }
                j += 1;
            }
            let name: String = s[start..j].iter().collect();
            let next = j + 2;
            if kind == ':' {
                let cls = match name.as_str() {
                    "alpha" => r"\p{Alphabetic}",
                    "alnum" => r"\p{Alphabetic}0-9",
                    "upper" => r"\p{Uppercase}",
                    "lower" => r"\p{Lowercase}",
                    "space" => r"\s",
                    "digit" => "0-9",
                    "xdigit" => "0-9A-Fa-f",
                    "blank" => r" \t",
                    "punct" | "cntrl" | "print" | "graph" | "ascii" => {
                        return Ok((Elem::Class(format!("[:{name}:]")), next));
                    }
                    _ => return Err(SimilarToError::InvalidRegex("invalid character class")),
                };
                return Ok((Elem::Class(cls.to_string()), next));
            }
            let mut it = name.chars();
            match (it.next(), it.next()) {
                (Some(ch), None) => Ok((Elem::Char(ch), next)),
                _ => Err(SimilarToError::InvalidRegex("invalid collating element")),
            }
        }
        '\\' => {
            let e = *s.get(i + 1).ok_or(UNBALANCED)?;
            let next = i + 2;
            match e {
                'd' => Ok((Elem::Class(r"\d".into()), next)),
                's' => Ok((Elem::Class(r"\s".into()), next)),
                'w' => Ok((Elem::Class(r"\w".into()), next)),
                e if e.is_ascii_alphanumeric() => match ctrl_escape(e) {
                    Some(ch) => Ok((Elem::Char(ch), next)),
                    None if "xuUc0123456789".contains(e) => {
                        let mut next = next;
                        let ch = code_escape(s, &mut next, e)?;
                        Ok((Elem::Char(ch), next))
                    }
                    None => Err(BAD_ESCAPE),
                },
                e => Ok((Elem::Char(e), next)),
            }
        }
        c => Ok((Elem::Char(c), i + 1)),
    }
}

// ---------------------------------------------------------------- the rule

/// Replaces every `x [NOT] SIMILAR TO 'pattern' [ESCAPE 'c']` with a regular
/// expression match of the converted pattern. DataFusion's own SIMILAR TO
/// took the pattern as a regular expression, so `%` and `_` were no
/// wildcards and `'abc' SIMILAR TO 'a%'` was false. A pattern that is not a
/// constant is refused (0A000): it could not be converted before running.
#[derive(Debug, Default)]
pub(crate) struct PostgresSimilarTo;

impl datafusion::optimizer::AnalyzerRule for PostgresSimilarTo {
    fn analyze(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
        _config: &datafusion::common::config::ConfigOptions,
    ) -> datafusion::common::Result<datafusion::logical_expr::LogicalPlan> {
        crate::plan_rewrite::rewrite_plan(plan, |expr, _| rewrite_similar_to(expr))
    }

    fn name(&self) -> &str {
        "freshet_postgres_similar_to"
    }
}

fn rewrite_similar_to(
    expr: datafusion::logical_expr::Expr,
) -> datafusion::common::Result<
    datafusion::common::tree_node::Transformed<datafusion::logical_expr::Expr>,
> {
    use datafusion::common::tree_node::Transformed;
    use datafusion::common::{DataFusionError, ScalarValue};
    use datafusion::logical_expr::expr::ScalarFunction;
    use datafusion::logical_expr::Expr;
    let Expr::SimilarTo(like) = expr else {
        return Ok(Transformed::no(expr));
    };
    let refuse = |sqlstate: &'static str, message: String| {
        DataFusionError::External(Box::new(crate::EngineError::new(sqlstate, message)))
    };
    let mut pattern = like.pattern.as_ref();
    while let Expr::Cast(cast) = pattern {
        pattern = cast.expr.as_ref();
    }
    let text = match pattern {
        Expr::Literal(
            ScalarValue::Utf8(text) | ScalarValue::Utf8View(text) | ScalarValue::LargeUtf8(text),
            _,
        ) => text.clone(),
        Expr::Literal(ScalarValue::Null, _) => None,
        _ => {
            return Err(refuse(
                "0A000",
                "SIMILAR TO with a pattern that is not a constant is not supported".into(),
            ))
        }
    };
    let Some(text) = text else {
        // A NULL pattern matches nothing and answers NULL.
        return Ok(Transformed::yes(Expr::Literal(
            ScalarValue::Boolean(None),
            None,
        )));
    };
    let regex = similar_to_regex(&text, Some(like.escape_char.unwrap_or('\\')))
        .map_err(|e| refuse(e.sqlstate(), e.to_string()))?;
    let mut args = vec![
        *like.expr,
        Expr::Literal(ScalarValue::Utf8(Some(regex)), None),
    ];
    if like.case_insensitive {
        args.push(Expr::Literal(ScalarValue::Utf8(Some("i".into())), None));
    }
    let matched = Expr::ScalarFunction(ScalarFunction::new_udf(
        datafusion::functions::regex::regexp_like(),
        args,
    ));
    Ok(Transformed::yes(if like.negated {
        Expr::Not(Box::new(matched))
    } else {
        matched
    }))
}

#[cfg(test)]
#[path = "similar_to_cases.rs"]
mod cases;

#[cfg(test)]
mod tests {
    use super::*;

    type Case = (
        &'static str,
        Option<&'static str>,
        &'static str,
        Result<bool, &'static str>,
        Option<&'static str>,
    );

    #[test]
    fn pg_cases() {
        let all: &[Case] = cases::CASES;
        let mut failures = Vec::new();
        for &(pat, esc, input, expected, are) in all {
            let esc = match esc {
                None => Some('\\'),
                Some(e) => match parse_escape(Some(e)) {
                    Ok(e) => e,
                    Err(err) => {
                        if expected != Err(err.sqlstate()) {
                            failures.push(format!("{pat:?} esc {esc:?}: got {err}"));
                        }
                        continue;
                    }
                },
            };
            if let Some(are) = are {
                match similar_escape_are(pat, esc) {
                    Ok(got) if got == are => {}
                    got => failures.push(format!("{pat:?}: ARE {got:?} != {are:?}")),
                }
            }
            let got = similar_to_regex(pat, esc).and_then(|re| {
                regex::Regex::new(&re)
                    .map_err(|e| SimilarToError::Unsupported(format!("{re}: {e}")))
                    .map(|re| re.is_match(input))
            });
            let got = got.map_err(|e| e.sqlstate());
            if got != expected {
                failures.push(format!(
                    "{pat:?} esc {esc:?} on {input:?}: got {got:?}, want {expected:?}"
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn escape_string_rules() {
        assert_eq!(parse_escape(None), Ok(Some('\\')));
        assert_eq!(parse_escape(Some("")), Ok(None));
        assert_eq!(parse_escape(Some("é")), Ok(Some('é')));
        assert_eq!(
            parse_escape(Some("ab")),
            Err(SimilarToError::InvalidEscapeString)
        );
    }

    #[test]
    fn fuzz_never_panics_and_output_compiles() {
        let alphabet: Vec<char> = "ab%_|*+?{}()[]^$.\\\"-:=,0123456789é\n xdyM"
            .chars()
            .collect();
        let mut seed = 0x2545F4914F6CDD1Du64;
        for _ in 0..5000 {
            let mut p = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 12) as usize;
            for k in 0..len {
                let idx = ((seed >> (k * 5)) as usize) % alphabet.len();
                p.push(alphabet[idx]);
            }
            for esc in [Some('\\'), None, Some('"')] {
                if let Ok(re) = similar_to_regex(&p, esc) {
                    let compiled = regex::Regex::new(&re);
                    assert!(
                        compiled.is_ok(),
                        "pattern {p:?} -> {re:?} does not compile: {compiled:?}"
                    );
                }
            }
        }
    }
}
