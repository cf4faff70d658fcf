//! PostgreSQL's `format(formatstr text, VARIADIC args)` string function.
//!
//! DataFusion has no `format()` with PostgreSQL's semantics, so Freshet
//! implements it here as pure string logic. Callers convert every argument
//! to its PostgreSQL text form first (exactly what `VARIADIC text[]` does on
//! a real server) and pass SQL NULL as `None`.
//!
//! The behaviour follows PostgreSQL 15 as documented in "String Functions →
//! format" and as observed on a reference server, including SQLSTATEs and
//! message texts of every error:
//!
//! * specifiers `%s`, `%I` (quote_ident), `%L` (quote_literal) and `%%`;
//! * an optional argument position `n$`, the `-` flag, and a width given as
//!   digits, `*` (next argument) or `*n$` (argument `n`);
//! * a width taken from an argument is read like PostgreSQL's `int4` input;
//!   NULL means zero and a negative width means left-justify;
//! * widths count characters, not bytes;
//! * the implicit argument counter continues after the last argument used,
//!   whether that argument was named by position or taken implicitly, and a
//!   `*n$` width also moves it to `n + 1`;
//! * PostgreSQL's 1 GB limits on the output buffer, on the quoting helpers and
//!   on the final `text` value are reproduced with the same errors, checked
//!   before appending, so a huge width never allocates past that limit.
//!
//! Processing is strictly left to right: text produced before a failing
//! specifier is discarded, and later specifiers are never looked at.

use std::borrow::Cow;
use std::fmt;

/// PostgreSQL's `MaxAllocSize`: the largest single allocation it allows.
const MAX_ALLOC_SIZE: usize = 0x3fff_ffff;

/// Size of the length header PostgreSQL puts in front of a `text` value.
const VARHDRSZ: usize = 4;

/// SQLSTATE 22023, `invalid_parameter_value`.
const INVALID_PARAMETER_VALUE: &str = "22023";
/// SQLSTATE 22003, `numeric_value_out_of_range`.
const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
/// SQLSTATE 22004, `null_value_not_allowed`.
const NULL_VALUE_NOT_ALLOWED: &str = "22004";
/// SQLSTATE 22P02, `invalid_text_representation`.
const INVALID_TEXT_REPRESENTATION: &str = "22P02";
/// SQLSTATE 54000, `program_limit_exceeded`.
const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
/// SQLSTATE XX000, `internal_error`.
const INTERNAL_ERROR: &str = "XX000";

/// An error raised by [`pg_format`], carrying the SQLSTATE and the primary
/// message text PostgreSQL 15 reports for the same input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FormatError {
    /// Five-character SQLSTATE code, e.g. `"22023"`.
    pub(crate) sqlstate: &'static str,
    /// Primary error message, without DETAIL or HINT.
    pub(crate) message: String,
}

impl FormatError {
    fn new(sqlstate: &'static str, message: impl Into<String>) -> Self {
        Self {
            sqlstate,
            message: message.into(),
        }
    }

    fn unterminated() -> Self {
        Self::new(
            INVALID_PARAMETER_VALUE,
            "unterminated format() type specifier",
        )
    }

    fn out_of_range() -> Self {
        Self::new(NUMERIC_VALUE_OUT_OF_RANGE, "number is out of range")
    }

    fn too_few_arguments() -> Self {
        Self::new(INVALID_PARAMETER_VALUE, "too few arguments for format()")
    }

    fn argument_zero() -> Self {
        Self::new(
            INVALID_PARAMETER_VALUE,
            "format specifies argument 0, but arguments are numbered from 1",
        )
    }

    fn out_of_memory() -> Self {
        Self::new(PROGRAM_LIMIT_EXCEEDED, "out of memory")
    }

    fn alloc_request(size: usize) -> Self {
        Self::new(
            INTERNAL_ERROR,
            format!("invalid memory alloc request size {size}"),
        )
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.message, self.sqlstate)
    }
}

impl std::error::Error for FormatError {}

impl From<FormatError> for datafusion::common::DataFusionError {
    fn from(e: FormatError) -> Self {
        crate::EngineError::new(e.sqlstate, e.message).into()
    }
}

/// Evaluates PostgreSQL's `format(fmt, VARIADIC args)`.
///
/// `args` holds one entry per argument, each already converted to
/// PostgreSQL's text form; `None` is SQL NULL. Returns the formatted string,
/// or the error (SQLSTATE and message) PostgreSQL 15 raises for the same
/// call.
pub(crate) fn pg_format(fmt: &str, args: &[Option<&str>]) -> Result<String, FormatError> {
    let mut out = Output::default();
    let mut cursor = Cursor { s: fmt, pos: 0 };
    // Zero-based index of the argument an implicit reference takes next.
    let mut next_arg: usize = 0;

    loop {
        let rest = cursor.rest();
        let Some(percent) = rest.find('%') else {
            out.push(rest)?;
            break;
        };
        out.push(&rest[..percent])?;
        cursor.pos += percent + 1;

        match cursor.peek() {
            None => return Err(FormatError::unterminated()),
            Some(b'%') => {
                cursor.pos += 1;
                out.push("%")?;
                continue;
            }
            Some(_) => {}
        }

        let spec = parse_spec(&mut cursor)?;

        // The width argument (if any) is fetched and converted before the
        // value argument is even looked up.
        let mut width = match spec.width {
            Width::Fixed(n) => n,
            Width::NextArg => {
                let value = fetch(args, next_arg)?;
                next_arg += 1;
                parse_width(value)?
            }
            Width::Arg(position) => {
                let value = fetch(args, position - 1)?;
                next_arg = position;
                parse_width(value)?
            }
        };

        let index = spec.position.map_or(next_arg, |position| position - 1);
        let value = fetch(args, index)?;
        next_arg = index + 1;

        let text: Cow<'_, str> = match (spec.conversion, value) {
            (Conversion::String, None) => Cow::Borrowed(""),
            (Conversion::String, Some(v)) => Cow::Borrowed(v),
            (Conversion::Literal, None) => Cow::Borrowed("NULL"),
            (Conversion::Literal, Some(v)) => Cow::Owned(quote_literal(v)?),
            (Conversion::Identifier, None) => {
                return Err(FormatError::new(
                    NULL_VALUE_NOT_ALLOWED,
                    "null values cannot be formatted as an SQL identifier",
                ))
            }
            (Conversion::Identifier, Some(v)) => quote_ident(v)?,
        };

        let mut left = spec.left;
        if width < 0 {
            left = true;
            width = width.checked_neg().ok_or_else(FormatError::out_of_range)?;
        }
        out.push_padded(&text, left, usize::try_from(width).unwrap_or(0))?;
    }

    out.finish()
}

/// What a specifier converts its argument with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conversion {
    /// `%s`: the text as is; NULL is the empty string.
    String,
    /// `%I`: quoted as an SQL identifier; NULL is an error.
    Identifier,
    /// `%L`: quoted as an SQL literal; NULL is the bare word `NULL`.
    Literal,
}

/// Where a specifier's width comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    /// Written in the format string (zero when absent).
    Fixed(i32),
    /// `*`: the next argument in sequence.
    NextArg,
    /// `*n$`: the one-based argument `n`.
    Arg(usize),
}

/// One parsed `%...` specifier, other than `%%`.
#[derive(Debug, Clone, Copy)]
struct Spec {
    /// One-based argument position from `n$`, if given.
    position: Option<usize>,
    /// The `-` flag was given.
    left: bool,
    width: Width,
    conversion: Conversion,
}

/// A position in the format string. Every syntax character is ASCII, so
/// `pos` only ever stops on character boundaries.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    /// The next byte; running out inside a specifier is an error.
    fn peek_in_spec(&self) -> Result<u8, FormatError> {
        self.peek().ok_or_else(FormatError::unterminated)
    }

    /// Reads a run of decimal digits (at least one is present) as a
    /// non-negative `i32`.
    fn number(&mut self) -> Result<i32, FormatError> {
        let mut value: i32 = 0;
        while let Some(b) = self.peek().filter(u8::is_ascii_digit) {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i32::from(b - b'0')))
                .ok_or_else(FormatError::out_of_range)?;
            self.pos += 1;
        }
        Ok(value)
    }
}

/// Turns a number read before `$` into a one-based argument position.
fn argument_position(n: i32) -> Result<usize, FormatError> {
    match usize::try_from(n) {
        Ok(0) | Err(_) => Err(FormatError::argument_zero()),
        Ok(position) => Ok(position),
    }
}

/// Parses one specifier; the cursor is just past the `%` and on a byte
/// other than `%`.
///
/// Grammar: `[n$] [-...] [width | * | *n$] type`, except that digits
/// straight after `%` that are not followed by `$` are the width, and then
/// neither flags nor `*` may follow.
fn parse_spec(cursor: &mut Cursor<'_>) -> Result<Spec, FormatError> {
    let mut spec = Spec {
        position: None,
        left: false,
        width: Width::Fixed(0),
        conversion: Conversion::String,
    };

    let mut b = cursor.peek_in_spec()?;
    if b.is_ascii_digit() {
        let n = cursor.number()?;
        if cursor.peek_in_spec()? == b'$' {
            cursor.pos += 1;
            spec.position = Some(argument_position(n)?);
            b = cursor.peek_in_spec()?;
        } else {
            spec.width = Width::Fixed(n);
            spec.conversion = conversion(cursor)?;
            return Ok(spec);
        }
    }

    while b == b'-' {
        spec.left = true;
        cursor.pos += 1;
        b = cursor.peek_in_spec()?;
    }

    if b == b'*' {
        cursor.pos += 1;
        if cursor.peek_in_spec()?.is_ascii_digit() {
            let n = cursor.number()?;
            if cursor.peek_in_spec()? != b'$' {
                return Err(FormatError::new(
                    INVALID_PARAMETER_VALUE,
                    "width argument position must be ended by \"$\"",
                ));
            }
            cursor.pos += 1;
            spec.width = Width::Arg(argument_position(n)?);
        } else {
            spec.width = Width::NextArg;
        }
    } else if b.is_ascii_digit() {
        spec.width = Width::Fixed(cursor.number()?);
    }

    spec.conversion = conversion(cursor)?;
    Ok(spec)
}

/// Reads the conversion character that ends a specifier.
fn conversion(cursor: &mut Cursor<'_>) -> Result<Conversion, FormatError> {
    let conversion = match cursor.peek_in_spec()? {
        b's' => Conversion::String,
        b'I' => Conversion::Identifier,
        b'L' => Conversion::Literal,
        _ => {
            let c = cursor.rest().chars().next().unwrap_or('%');
            return Err(FormatError::new(
                INVALID_PARAMETER_VALUE,
                format!("unrecognized format() type specifier \"{c}\""),
            ));
        }
    };
    cursor.pos += 1;
    Ok(conversion)
}

/// Looks up a zero-based argument index.
fn fetch<'a>(args: &[Option<&'a str>], index: usize) -> Result<Option<&'a str>, FormatError> {
    args.get(index)
        .copied()
        .ok_or_else(FormatError::too_few_arguments)
}

/// Converts a width argument the way PostgreSQL's `int4` input function
/// reads text: surrounding ASCII whitespace, an optional sign and at least
/// one decimal digit. NULL is a width of zero.
fn parse_width(value: Option<&str>) -> Result<i32, FormatError> {
    let Some(s) = value else {
        return Ok(0);
    };
    let invalid = || {
        FormatError::new(
            INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type integer: \"{s}\""),
        )
    };
    let out_of_range = || {
        FormatError::new(
            NUMERIC_VALUE_OUT_OF_RANGE,
            format!("value \"{s}\" is out of range for type integer"),
        )
    };
    // C's isspace() in the server's locale, for single bytes.
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');

    let bytes = s.as_bytes();
    let mut i = bytes.iter().take_while(|b| is_space(b)).count();
    let negative = match bytes.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    if !bytes.get(i).is_some_and(u8::is_ascii_digit) {
        return Err(invalid());
    }
    // Accumulate negatively so that i32::MIN is representable; overflow is
    // reported even if garbage follows the digits.
    let mut acc: i32 = 0;
    while let Some(b) = bytes.get(i).filter(|b| b.is_ascii_digit()) {
        acc = acc
            .checked_mul(10)
            .and_then(|v| v.checked_sub(i32::from(b - b'0')))
            .ok_or_else(out_of_range)?;
        i += 1;
    }
    i += bytes
        .get(i..)
        .unwrap_or(&[])
        .iter()
        .take_while(|b| is_space(b))
        .count();
    if i != bytes.len() {
        return Err(invalid());
    }
    if negative {
        Ok(acc)
    } else {
        acc.checked_neg().ok_or_else(out_of_range)
    }
}

/// PostgreSQL's `quote_literal`: single quotes around the value, embedded
/// quotes and backslashes doubled, and an `E` prefix when the value holds a
/// backslash.
pub(crate) fn quote_literal(value: &str) -> Result<String, FormatError> {
    // PostgreSQL sizes its work buffer for the worst case up front.
    let request = value.len().saturating_mul(2).saturating_add(4);
    if request > MAX_ALLOC_SIZE {
        return Err(FormatError::alloc_request(request));
    }
    let extra = value.bytes().filter(|b| matches!(b, b'\'' | b'\\')).count();
    let mut quoted = String::with_capacity(value.len() + extra + 3);
    if value.contains('\\') {
        quoted.push('E');
    }
    quoted.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            quoted.push(c);
        }
        quoted.push(c);
    }
    quoted.push('\'');
    Ok(quoted)
}

/// PostgreSQL's `quote_ident` ([`crate::pg_ident::quote_ident`]) with the
/// 1 GB limit its string buffer has.
fn quote_ident(value: &str) -> Result<Cow<'_, str>, FormatError> {
    let quotes = value.bytes().filter(|b| *b == b'"').count();
    let request = value.len().saturating_add(quotes).saturating_add(3);
    if request > MAX_ALLOC_SIZE {
        return Err(FormatError::alloc_request(request));
    }
    Ok(crate::pg_ident::quote_ident(value))
}

/// The result being built, with PostgreSQL's string-buffer size limit.
#[derive(Default)]
struct Output {
    buf: String,
}

impl Output {
    /// Fails the way PostgreSQL's string buffer does when growing it by
    /// `extra` bytes would reach `MaxAllocSize` (room is kept for a NUL).
    fn reserve(&self, extra: usize) -> Result<(), FormatError> {
        match self.buf.len().checked_add(extra) {
            Some(total) if total < MAX_ALLOC_SIZE => Ok(()),
            _ => Err(FormatError::out_of_memory()),
        }
    }

    fn push(&mut self, s: &str) -> Result<(), FormatError> {
        self.reserve(s.len())?;
        self.buf.push_str(s);
        Ok(())
    }

    /// Appends `s` padded with spaces to `width` characters, on the right
    /// when `left` is set and on the left otherwise.
    fn push_padded(&mut self, s: &str, left: bool, width: usize) -> Result<(), FormatError> {
        let padding = width.saturating_sub(s.chars().count());
        self.reserve(s.len().saturating_add(padding))?;
        self.buf.reserve(s.len() + padding);
        if !left {
            self.push_spaces(padding);
        }
        self.buf.push_str(s);
        if left {
            self.push_spaces(padding);
        }
        Ok(())
    }

    fn push_spaces(&mut self, mut n: usize) {
        const SPACES: &str = "                                                                ";
        while n > 0 {
            let chunk = n.min(SPACES.len());
            self.buf.push_str(&SPACES[..chunk]);
            n -= chunk;
        }
    }

    /// Hands back the result, which must also fit in a `text` value.
    fn finish(self) -> Result<String, FormatError> {
        let request = self.buf.len().saturating_add(VARHDRSZ);
        if request > MAX_ALLOC_SIZE {
            return Err(FormatError::alloc_request(request));
        }
        Ok(self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(fmt: &str, args: &[Option<&str>]) -> String {
        match pg_format(fmt, args) {
            Ok(s) => s,
            Err(e) => panic!("format({fmt:?}, {args:?}) failed: {e}"),
        }
    }

    fn err(fmt: &str, args: &[Option<&str>]) -> (&'static str, String) {
        match pg_format(fmt, args) {
            Ok(s) => panic!("format({fmt:?}, {args:?}) returned {s:?}"),
            Err(e) => (e.sqlstate, e.message),
        }
    }

    fn e(sqlstate: &'static str, message: &str) -> (&'static str, String) {
        (sqlstate, message.to_string())
    }

    #[test]
    fn documented_examples() {
        assert_eq!(ok("Hello %s", &[Some("World")]), "Hello World");
        assert_eq!(
            ok(
                "Testing %s, %s, %s, %%",
                &[Some("one"), Some("two"), Some("three")]
            ),
            "Testing one, two, three, %"
        );
        assert_eq!(
            ok(
                "INSERT INTO %I VALUES(%L)",
                &[Some("Foo bar"), Some("O'Reilly")]
            ),
            "INSERT INTO \"Foo bar\" VALUES('O''Reilly')"
        );
        assert_eq!(
            ok(
                "INSERT INTO %I VALUES(%L)",
                &[Some("locations"), Some("C:\\Program Files")]
            ),
            "INSERT INTO locations VALUES(E'C:\\\\Program Files')"
        );
        assert_eq!(ok("|%10s|", &[Some("foo")]), "|       foo|");
        assert_eq!(ok("|%-10s|", &[Some("foo")]), "|foo       |");
        assert_eq!(ok("|%*s|", &[Some("10"), Some("foo")]), "|       foo|");
        assert_eq!(ok("|%*s|", &[Some("-10"), Some("foo")]), "|foo       |");
        assert_eq!(ok("|%-*s|", &[Some("10"), Some("foo")]), "|foo       |");
        assert_eq!(ok("|%-*s|", &[Some("-10"), Some("foo")]), "|foo       |");
        assert_eq!(
            ok(
                "Testing %3$s, %2$s, %1$s",
                &[Some("one"), Some("two"), Some("three")]
            ),
            "Testing three, two, one"
        );
        assert_eq!(
            ok("|%*2$s|", &[Some("foo"), Some("10"), Some("bar")]),
            "|       bar|"
        );
        assert_eq!(
            ok("|%1$*2$s|", &[Some("foo"), Some("10"), Some("bar")]),
            "|       foo|"
        );
        assert_eq!(
            ok(
                "Testing %3$s, %2$s, %s",
                &[Some("one"), Some("two"), Some("three")]
            ),
            "Testing three, two, three"
        );
    }

    #[test]
    fn nulls() {
        assert_eq!(ok("[%s]", &[None]), "[]");
        assert_eq!(ok("|%5s|", &[None]), "|     |");
        assert_eq!(ok("|%5L|", &[None]), "| NULL|");
        assert_eq!(ok("|%*s|", &[None, Some("a")]), "|a|");
        assert_eq!(
            err("%I", &[None]),
            e(
                "22004",
                "null values cannot be formatted as an SQL identifier"
            )
        );
    }

    #[test]
    fn quote_ident_rules() {
        assert_eq!(ok("%I", &[Some("abc_1")]), "abc_1");
        assert_eq!(ok("%I", &[Some("_x")]), "_x");
        assert_eq!(ok("%I", &[Some("Abc")]), "\"Abc\"");
        assert_eq!(ok("%I", &[Some("a b")]), "\"a b\"");
        assert_eq!(ok("%I", &[Some("1abc")]), "\"1abc\"");
        assert_eq!(ok("%I", &[Some("")]), "\"\"");
        assert_eq!(ok("%I", &[Some("é")]), "\"é\"");
        assert_eq!(ok("%I", &[Some("a\"b")]), "\"a\"\"b\"");
        assert_eq!(ok("%I", &[Some("select")]), "\"select\"");
        assert_eq!(ok("%I", &[Some("user")]), "\"user\"");
        assert_eq!(ok("%I", &[Some("between")]), "\"between\"");
        // Unreserved keywords stay bare.
        assert_eq!(ok("%I", &[Some("abort")]), "abort");
        assert_eq!(ok("%I", &[Some("name")]), "name");
    }

    #[test]
    fn quote_literal_rules() {
        assert_eq!(ok("%L", &[Some("")]), "''");
        assert_eq!(ok("%L", &[Some("it's")]), "'it''s'");
        assert_eq!(ok("%L", &[Some("a\\b'c")]), "E'a\\\\b''c'");
    }

    #[test]
    fn widths_count_characters() {
        assert_eq!(ok("|%4s|", &[Some("éé")]), "|  éé|");
        assert_eq!(ok("|%-4I|", &[Some("é")]), "|\"é\" |");
        assert_eq!(ok("|%0s|", &[Some("a")]), "|a|");
        assert_eq!(ok("|%--3s|", &[Some("a")]), "|a  |");
        assert_eq!(ok("|%00001$s|", &[Some("a")]), "|a|");
    }

    #[test]
    fn argument_counter() {
        let args = [Some("3"), Some("5"), Some("c")];
        assert_eq!(ok("%2$*s %s", &args), "  5 c");
        assert_eq!(ok("%*s %s", &args), "  5 c");
        assert_eq!(ok("%2$*1$s %s", &args), "  5 c");
        assert_eq!(
            err("%*2$s %s", &args),
            e("22023", "too few arguments for format()")
        );
        assert_eq!(ok("%s%s%1$s%s", &[Some("a"), Some("b")]), "abab");
    }

    #[test]
    fn width_from_argument() {
        assert_eq!(ok("|%*s|", &[Some(" +3 "), Some("a")]), "|  a|");
        assert_eq!(ok("|%*s|", &[Some("\x0b3\x0c"), Some("a")]), "|  a|");
        assert_eq!(ok("|%*s|", &[Some("-0"), Some("a")]), "|a|");
        assert_eq!(ok("|%*s|", &[Some("-3"), Some("a")]), "|a  |");
        for bad in [
            "", " ", "+", "-", "3 4", "0x10", "1_0", "3.0", "x9", "3\u{a0}",
        ] {
            assert_eq!(
                err("%*s", &[Some(bad), Some("a")]),
                (
                    "22P02",
                    format!("invalid input syntax for type integer: \"{bad}\"")
                )
            );
        }
        for big in ["2147483648", " -2147483649 ", "99999999999x"] {
            assert_eq!(
                err("%*s", &[Some(big), Some("a")]),
                (
                    "22003",
                    format!("value \"{big}\" is out of range for type integer")
                )
            );
        }
        assert_eq!(
            err("%*s", &[Some("-2147483648"), Some("a")]),
            e("22003", "number is out of range")
        );
        // The width is converted before the value argument is looked up,
        // but its sign is only dealt with after the value is quoted.
        assert_eq!(
            err("%3$*1$s", &[Some("abc")]),
            e("22P02", "invalid input syntax for type integer: \"abc\"")
        );
        assert_eq!(
            err("%*s", &[Some("-2147483648")]),
            e("22023", "too few arguments for format()")
        );
        assert_eq!(
            err("%*I", &[Some("-2147483648"), None]),
            e(
                "22004",
                "null values cannot be formatted as an SQL identifier"
            )
        );
    }

    #[test]
    fn syntax_errors() {
        let unterminated = e("22023", "unterminated format() type specifier");
        for f in [
            "%", "abc%", "%5", "%5$", "%-", "%*", "%*1", "%*1$", "%1$*", "%0",
        ] {
            assert_eq!(err(f, &[Some("1")]), unterminated, "{f}");
        }
        let unrecognized = |c: &str| {
            (
                "22023",
                format!("unrecognized format() type specifier \"{c}\""),
            )
        };
        assert_eq!(err("%x", &[]), unrecognized("x"));
        assert_eq!(err("%é", &[]), unrecognized("é"));
        assert_eq!(err("%1$%", &[Some("a")]), unrecognized("%"));
        assert_eq!(err("%5-s", &[Some("a")]), unrecognized("-"));
        assert_eq!(err("%-1$s", &[Some("a")]), unrecognized("$"));
        assert_eq!(err("%5*s", &[Some("a")]), unrecognized("*"));
        assert_eq!(err("%*1$5s", &[Some("a")]), unrecognized("5"));
        assert_eq!(err("% s", &[Some("a")]), unrecognized(" "));
        // The type is checked before any argument is fetched.
        assert_eq!(err("%*x", &[]), unrecognized("x"));
        // Left to right: an earlier missing argument wins.
        assert_eq!(
            err("%s %x", &[]),
            e("22023", "too few arguments for format()")
        );
        let zero = e(
            "22023",
            "format specifies argument 0, but arguments are numbered from 1",
        );
        for f in ["%0$s", "%0$", "%*0$", "%*00$s", "%1$*0$s"] {
            assert_eq!(err(f, &[Some("a")]), zero, "{f}");
        }
        assert_eq!(
            err("%*0s", &[Some("a")]),
            e("22023", "width argument position must be ended by \"$\"")
        );
        let range = e("22003", "number is out of range");
        for f in [
            "%2147483648$s",
            "%2147483648s",
            "%-2147483648s",
            "%2147483648",
        ] {
            assert_eq!(err(f, &[Some("a")]), range, "{f}");
        }
        assert_eq!(
            err("%2147483647$s", &[Some("a")]),
            e("22023", "too few arguments for format()")
        );
    }

    #[test]
    fn size_limits() {
        let oom = e("54000", "out of memory");
        assert_eq!(err("%1073741823s", &[Some("x")]), oom);
        assert_eq!(err("%2147483647s", &[Some("x")]), oom);
        assert_eq!(err("%-*s", &[Some("-2147483647"), Some("x")]), oom);
    }

    #[test]
    fn random_inputs_never_panic() {
        // splitmix64; formats stay short so that any width written in them
        // is small, and width arguments are either small or beyond the limit.
        let mut state: u64 = 0x5eed;
        let mut next = move |n: usize| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            usize::try_from((z ^ (z >> 31)) % n as u64).unwrap_or(0)
        };
        let alphabet = [
            '%', 's', 'I', 'L', '0', '1', '2', '$', '*', '-', 'é', '\0', '"', '\'',
        ];
        let values = [
            "",
            "1",
            "-2",
            "a b",
            "select",
            "\\'",
            "é",
            "2147483647",
            "-2147483648",
            "9e9",
        ];
        for _ in 0..50_000 {
            let fmt: String = (0..next(9))
                .map(|_| alphabet[next(alphabet.len())])
                .collect();
            let args: Vec<Option<&str>> = (0..next(4))
                .map(|_| Some(values[next(values.len())]).filter(|_| next(5) != 0))
                .collect();
            let _ = pg_format(&fmt, &args);
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        let fmts = [
            "%",
            "%%%",
            "%$",
            "%*$",
            "%-*-",
            "%9999999999",
            "%*9$é",
            "é%",
        ];
        for f in fmts {
            for args in [&[][..], &[None][..], &[Some("é"), Some("-1")][..]] {
                let _ = pg_format(f, args);
            }
        }
    }
}
