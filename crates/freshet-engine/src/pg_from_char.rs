//! PostgreSQL 15 `to_date(text, text)` / `to_timestamp(text, text)` input
//! parsing: reading a date and time out of text by a `to_char`-style template.
//!
//! Why: DataFusion's `to_date`/`to_timestamp` take chrono patterns, so
//! `to_date('05 Mar 2024', 'DD Mon YYYY')` needs its own reader. Behaviour was
//! worked out by probing PostgreSQL 15: the tests hold its answers, and a
//! differential fuzz against it (about 200k random inputs and templates) found
//! no difference outside what is refused below. The template is tokenized by
//! [`crate::pg_to_char::PgDateFormat`] (same keyword table, longest match, one
//! `FM`/`TM` prefix, `TH`/`th`/`SP` suffix); quoted text is split off first,
//! because a quoted character always consumes one input character while an
//! unquoted space or punctuation mark matches an input separator or nothing.
//!
//! Covered: `YYYY YYY YY Y Y,YYY` (short years adjusted toward 2020), `MM`,
//! `Mon`/`Month` and `Dy`/`Day` names in any case (day names are checked for
//! conflicts and otherwise ignored, as is `D`; `TM` reads the English names), `DD`, `DDD`, `HH HH12 HH24 MI
//! SS SSSS SSSSS MS US FF1..FF6`, `AM PM A.M. P.M.` (any case), `TZH`, `TZM`,
//! `FM`, `FX`, `TH`, quoted literals and separators, with PostgreSQL's quirks:
//! zero means "unset" (`MM` = `00` gives January), day overflow rolls into the
//! next month unless year, month and day were all given, `DDD` fills only a
//! month/day left at 1, trailing input is ignored, fields past the end of the
//! input keep their defaults (year 0 = 1 BC, January 1st, midnight), and in
//! FX mode a fixed-width number after blanks that holds no digits reads as 0.
//!
//! Left out (refused with SQLSTATE 0A000 before reading): `J`, ISO week
//! fields (`IYYY IYY IY I IW ID IDDD`), `WW`, `W`, `Q`, `CC`, `RM`, `AD`/`BC`
//! markers, and `TZ`/`OF`, which PostgreSQL 15 itself refuses in input.
//!
//! Results: `datetime` is the wall-clock value in chrono's proleptic calendar
//! (year 0 is 1 BC, as PostgreSQL counts internally). Dates before
//! 4714-11-24 BC, or past chrono's 262142-12-31, are `OutOfRange` worded as
//! `to_date` words it (`date out of range: "<input>"`); the caller still
//! applies `to_timestamp`'s own limits and wording (`timestamp out of range`,
//! also for the UTC instant after a `TZH` offset). With `FFn`, fractional
//! seconds are rounded to n digits as `to_timestamp` does (ties toward
//! 2000-01-01 UTC; without an offset the session is assumed to be UTC); a
//! rounding that would carry into the next day is refused, because `to_date`
//! (which does not round) and `to_timestamp` would then disagree on the date.
//! Otherwise `to_date` is `datetime.date()`: PostgreSQL's `to_date` also
//! validates the time fields and the offset. An empty template is not an
//! error: PostgreSQL returns 0001-01-01 BC, and so does this.

use crate::pg_to_char::{Kw, PgDateFormat, Tok, DAYS, KEYWORDS, MONTHS};
use chrono::{Days, Duration, NaiveDate, NaiveDateTime, NaiveTime};

/// A date and time read from text by a template, as PostgreSQL's to_timestamp reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ParsedDateTime {
    /// The wall-clock date and time the text names.
    pub(crate) datetime: NaiveDateTime,
    /// The offset east of UTC in seconds, when the template read one (TZH/TZM); None otherwise.
    pub(crate) utc_offset_seconds: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FromCharError {
    /// A template pattern Freshet does not read (SQLSTATE 0A000).
    #[error("{0}")]
    Unsupported(String),
    /// Text that does not match the template (22007, invalid_datetime_format).
    #[error("{0}")]
    InvalidFormat(String),
    /// A field value out of range (22008, datetime_field_overflow).
    #[error("{0}")]
    OutOfRange(String),
    /// A `TZH`/`TZM` offset beyond ±15:59 (22009, invalid_time_zone_displacement_value).
    #[error("{0}")]
    InvalidTimeZoneDisplacement(String),
}

impl FromCharError {
    pub(crate) fn sqlstate(&self) -> &'static str {
        match self {
            Self::Unsupported(_) => "0A000",
            Self::InvalidFormat(_) => "22007",
            Self::OutOfRange(_) => "22008",
            Self::InvalidTimeZoneDisplacement(_) => "22009",
        }
    }
}

use FromCharError::{InvalidFormat, OutOfRange, Unsupported};

/// One template field with the keyword spelled as the template spells it
/// (PostgreSQL's messages quote that spelling, and `HH` vs `HH12` matters).
#[derive(Debug, Clone, Copy)]
struct Field {
    kw: Kw,
    name: &'static str,
    fm: bool,
    th: bool,
}

#[derive(Debug, Clone, Copy)]
enum Node {
    /// Unquoted blank or ASCII punctuation: matches one input separator, or nothing.
    Sep,
    /// Any other literal character (and every quoted one): skips one input character.
    Char(char),
    Field(Field),
}

/// C `isspace` in the C locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// ASCII printable, not a letter or digit (PostgreSQL's separator characters).
fn is_separator(b: u8) -> bool {
    (0x21..0x7f).contains(&b) && !b.is_ascii_alphanumeric()
}

fn misread() -> FromCharError {
    Unsupported("to_date/to_timestamp could not read this template".into())
}

/// Splits quoted literals off, tokenizes the rest with `PgDateFormat`, and
/// refuses patterns this module does not read.
fn compile(template: &str) -> Result<Vec<Node>, FromCharError> {
    let mut nodes = Vec::new();
    let bytes = template.as_bytes();
    let (mut i, mut plain_start) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            // outside quotes a backslash escapes only a double quote
            b'\\' if bytes.get(i + 1) == Some(&b'"') => i += 2,
            b'"' => {
                plain(
                    template.get(plain_start..i).ok_or_else(misread)?,
                    &mut nodes,
                )?;
                let rest = template.get(i + 1..).ok_or_else(misread)?;
                let mut chars = rest.chars();
                loop {
                    match chars.next() {
                        None | Some('"') => break,
                        Some('\\') => {
                            let before = chars.clone();
                            match chars.next() {
                                Some(c) => nodes.push(Node::Char(c)),
                                None => {
                                    chars = before;
                                    nodes.push(Node::Char('\\'));
                                }
                            }
                        }
                        Some(c) => nodes.push(Node::Char(c)),
                    }
                }
                i = template.len() - chars.as_str().len();
                plain_start = i;
            }
            _ => i += 1,
        }
    }
    plain(template.get(plain_start..).ok_or_else(misread)?, &mut nodes)?;
    // PostgreSQL's own refusal (TZ, OF) takes precedence over Freshet's.
    for pass in [true, false] {
        for node in &nodes {
            match node {
                Node::Field(f) if matches!(f.kw, Kw::Tz(_) | Kw::Of) == pass => check_supported(f)?,
                _ => {}
            }
        }
    }
    Ok(nodes)
}

/// Tokenizes unquoted template text and walks it alongside the tokens to
/// recover each keyword's spelling (a prefix with no keyword after it is
/// dropped by the tokenizer, so one may precede any token).
fn plain(seg: &str, nodes: &mut Vec<Node>) -> Result<(), FromCharError> {
    let Ok(format) = PgDateFormat::parse(seg) else {
        return Ok(()); // only the empty segment fails
    };
    let skip_prefix = |pos: usize| -> usize {
        let rest = seg.get(pos..).unwrap_or("");
        if ["FM", "fm", "TM", "tm"].iter().any(|p| rest.starts_with(p)) {
            pos + 2
        } else {
            pos
        }
    };
    let mut pos = 0;
    for tok in &format.toks {
        match tok {
            Tok::Lit(text) => {
                for c in text.chars() {
                    pos = skip_prefix(pos);
                    let mut buf = [0u8; 4];
                    let raw: &str = if c == '"' {
                        "\\\""
                    } else {
                        c.encode_utf8(&mut buf)
                    };
                    if !seg.get(pos..).is_some_and(|r| r.starts_with(raw)) {
                        return Err(misread());
                    }
                    pos += raw.len();
                    let b = if c.is_ascii() { c as u8 } else { 0x80 };
                    nodes.push(if is_space(b) || is_separator(b) {
                        Node::Sep
                    } else {
                        Node::Char(c)
                    });
                }
            }
            Tok::Kw { kw, fm, tm, th } => {
                if *fm || *tm {
                    pos = skip_prefix(pos);
                }
                let rest = seg.get(pos..).ok_or_else(misread)?;
                let name = KEYWORDS
                    .iter()
                    .filter(|(name, k)| k == kw && rest.starts_with(name))
                    .map(|(name, _)| *name)
                    .max_by_key(|name| name.len())
                    .ok_or_else(misread)?;
                pos += name.len();
                let rest = seg.get(pos..).ok_or_else(misread)?;
                if ["TH", "th", "SP"].iter().any(|s| rest.starts_with(s)) {
                    pos += 2;
                }
                nodes.push(Node::Field(Field {
                    kw: *kw,
                    name,
                    fm: *fm,
                    th: th.is_some(),
                }));
            }
        }
    }
    Ok(())
}

fn check_supported(f: &Field) -> Result<(), FromCharError> {
    match f.kw {
        Kw::Tz(_) | Kw::Of => Err(Unsupported(format!(
            "formatting field \"{}\" is only supported in to_char",
            f.name
        ))),
        kw if is_digit_field(kw)
            || matches!(
                kw,
                Kw::AmPm { .. }
                    | Kw::Month(_)
                    | Kw::Mon(_)
                    | Kw::Day(_)
                    | Kw::Dy(_)
                    | Kw::Tzh
                    | Kw::Fx
            ) =>
        {
            Ok(())
        }
        _ => Err(Unsupported(format!(
            "template pattern \"{}\" is not supported by to_date and to_timestamp yet",
            f.name
        ))),
    }
}

/// Whether a field reads digits (a number field right before it then reads
/// exactly its width).
fn is_digit_field(kw: Kw) -> bool {
    use Kw::*;
    matches!(
        kw,
        Yyyy | Yyy | Yy | Y | YComma | Mm | Dd | Ddd | D | Hh12 | Hh24 | Mi | Ss | Ssss | Ms | Us
    ) || matches!(kw, Ff(_) | Tzm)
}

/// Values read so far; as in PostgreSQL, 0 means "not given".
#[derive(Debug, Default)]
struct Slots {
    year: i32,
    mm: i32,
    dd: i32,
    ddd: i32,
    d: i32,
    hh: i32,
    mi: i32,
    ss: i32,
    ssss: i32,
    ms: i32,
    us: i32,
    ff: u32,
    pm: i32,
    clock12: bool,
    tzsign: i32,
    tzh: i32,
    tzm: i32,
}

fn set(slot: &mut i32, value: i32, f: &Field) -> Result<(), FromCharError> {
    if *slot != 0 && *slot != value {
        return Err(InvalidFormat(format!(
            "conflicting values for \"{}\" field in formatting string",
            f.name
        )));
    }
    *slot = value;
    Ok(())
}

struct Reader<'a> {
    s: &'a str,
    pos: usize,
    /// Blanks skipped beyond what the template asked for (PostgreSQL's
    /// bookkeeping; a later literal character may "use them up").
    extra: i32,
}

impl Reader<'_> {
    fn rest(&self) -> &str {
        self.s.get(self.pos..).unwrap_or("")
    }
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }
    fn skip_char(&mut self) {
        self.pos += self.rest().chars().next().map_or(0, char::len_utf8);
    }
    fn skip_blanks(&mut self, count: bool) {
        while self.peek().is_some_and(is_space) {
            self.pos += 1;
            if count {
                self.extra += 1;
            }
        }
    }

    /// Reads an integer of `width` bytes, or every digit available when
    /// `slurp`; returns the value and the bytes consumed (leading blanks and
    /// sign included). As in PostgreSQL, a fixed-width field after blanks
    /// (FX mode only) that holds no digits reads as 0 instead of failing.
    fn int(&mut self, f: &Field, width: usize, slurp: bool) -> Result<(i32, usize), FromCharError> {
        let init = self.pos;
        self.skip_blanks(false);
        let blanks = self.pos - init;
        let rest = self.rest();
        let mut cut = width.min(rest.len());
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let shown = &rest[..cut];
        let invalid = || InvalidFormat(format!("invalid value \"{shown}\" for \"{}\"", f.name));
        let bytes = rest.as_bytes();
        let (value, used) = if slurp {
            strtol(bytes)
        } else {
            if rest.len() < width {
                return Err(InvalidFormat(format!(
                    "source string too short for \"{}\" formatting field",
                    f.name
                )));
            }
            let (value, used) = strtol(&bytes[..width]);
            if used > 0 && used < width || used == 0 && blanks == 0 {
                return Err(invalid());
            }
            (value, used)
        };
        if used == 0 && slurp {
            return Err(invalid());
        }
        let value = value.and_then(|v| i32::try_from(v).ok()).ok_or_else(|| {
            OutOfRange(format!(
                "value for \"{}\" in source string is out of range",
                f.name
            ))
        })?;
        self.pos += used;
        Ok((value, blanks + used))
    }

    /// Matches the start of the input against `words`, ASCII case-insensitively.
    fn word<'w>(
        &mut self,
        f: &Field,
        words: impl IntoIterator<Item = &'w str>,
    ) -> Result<i32, FromCharError> {
        let rest = self.rest().as_bytes();
        for (i, w) in (0i32..).zip(words) {
            if rest.len() >= w.len() && rest[..w.len()].eq_ignore_ascii_case(w.as_bytes()) {
                self.pos += w.len();
                return Ok(i);
            }
        }
        let shown: String = self
            .rest()
            .chars()
            .take_while(|c| !matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c'))
            .collect();
        Err(InvalidFormat(format!(
            "invalid value \"{shown}\" for \"{}\"",
            f.name
        )))
    }
}

/// C `strtol` over bytes already stripped of leading blanks: the value (None on
/// overflow) and the bytes consumed (0 when there are no digits).
fn strtol(b: &[u8]) -> (Option<i64>, usize) {
    let neg = b.first() == Some(&b'-');
    let start = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return (Some(0), 0);
    }
    let mut v: Option<i64> = Some(0);
    for &c in &b[start..start + digits] {
        let d = i64::from(c - b'0');
        v = v.and_then(|v| v.checked_mul(10)).and_then(|v| {
            if neg {
                v.checked_sub(d)
            } else {
                v.checked_add(d)
            }
        });
    }
    (v, start + digits)
}

/// Two- and three-digit years: 00-69 → 20xx, 70-99 → 19xx, 100-519 → 2xxx,
/// 520-999 → 1xxx.
fn adjust_year(y: i32) -> i32 {
    match y {
        ..=69 => y + 2000,
        70..=99 => y + 1900,
        100..=519 => y + 2000,
        520..=999 => y + 1000,
        _ => y,
    }
}

/// `Y,YYY`: `[blanks][sign]digits,[blanks]` then up to three characters of
/// `[sign]digits` (C `sscanf("%d,%03d")`), truncating and wrapping on
/// overflow as PostgreSQL's C does.
fn y_comma(rest: &[u8]) -> Result<(i32, usize), FromCharError> {
    let invalid = || InvalidFormat("invalid input string for \"Y,YYY\"".into());
    let blanks = |p: usize| p + rest[p..].iter().take_while(|b| is_space(**b)).count();
    let p = blanks(0);
    let (thousands, used) = strtol(&rest[p..]);
    if used == 0 {
        return Err(invalid());
    }
    let neg = rest.get(p) == Some(&b'-');
    // strtol saturates, then the value is truncated to a C int
    let thousands = thousands.unwrap_or(if neg { i64::MIN } else { i64::MAX }) as i32;
    let p = p + used;
    if rest.get(p) != Some(&b',') {
        return Err(invalid());
    }
    let p = blanks(p + 1);
    let end = (p + 3).min(rest.len());
    let (years, used) = strtol(&rest[p..end]);
    let years = i32::try_from(years.unwrap_or(0)).map_err(|_| invalid())?;
    if used == 0 {
        return Err(invalid());
    }
    Ok((years.wrapping_add(thousands.wrapping_mul(1000)), p + used))
}

fn read_fields(input: &str, nodes: &[Node]) -> Result<Slots, FromCharError> {
    let mut r = Reader {
        s: input,
        pos: 0,
        extra: 0,
    };
    let mut t = Slots::default();
    let mut fx = false;
    for (i, node) in nodes.iter().enumerate() {
        if r.pos >= r.s.len() {
            break;
        }
        let is_fx = matches!(node, Node::Field(f) if f.kw == Kw::Fx);
        if !fx && !is_fx && (i == 0 || matches!(node, Node::Field(_))) {
            r.skip_blanks(true);
        }
        match node {
            Node::Sep if fx => r.skip_char(),
            Node::Sep => {
                r.extra -= 1;
                if r.peek().is_some_and(|b| is_space(b) || is_separator(b)) {
                    r.pos += 1;
                    r.extra += 1;
                }
            }
            Node::Char(_) if !fx && r.extra > 0 => r.extra -= 1,
            Node::Char(_) => r.skip_char(),
            Node::Field(f) => {
                if f.kw == Kw::Fx {
                    fx = true;
                } else {
                    // Fixed width only when a digit field or digit literal follows.
                    let slurp = f.fm
                        || f.th
                        || match nodes.get(i + 1) {
                            None | Some(Node::Sep) => true,
                            Some(Node::Field(next)) => !is_digit_field(next.kw),
                            Some(Node::Char(c)) => !c.is_ascii_digit(),
                        };
                    read_field(&mut r, &mut t, f, slurp)?;
                }
                if !fx {
                    r.extra = 0;
                    r.skip_blanks(true);
                }
            }
        }
    }
    Ok(t)
}

fn read_field(r: &mut Reader, t: &mut Slots, f: &Field, slurp: bool) -> Result<(), FromCharError> {
    let mut skip_th = true;
    match f.kw {
        Kw::Yyyy => {
            let (v, _) = r.int(f, 4, slurp)?;
            set(&mut t.year, v, f)?;
        }
        Kw::Yyy | Kw::Yy | Kw::Y => {
            let width = f.name.len();
            let (v, used) = r.int(f, width, slurp)?;
            set(&mut t.year, v, f)?;
            if used < 4 {
                t.year = adjust_year(t.year);
            }
        }
        Kw::YComma => {
            let (v, used) = y_comma(r.rest().as_bytes())?;
            set(&mut t.year, v, f)?;
            r.pos += used;
        }
        Kw::Mm => set(&mut t.mm, r.int(f, 2, slurp)?.0, f)?,
        Kw::Dd => set(&mut t.dd, r.int(f, 2, slurp)?.0, f)?,
        Kw::Ddd => set(&mut t.ddd, r.int(f, 3, slurp)?.0, f)?,
        Kw::D => set(&mut t.d, r.int(f, 1, slurp)?.0, f)?,
        Kw::Hh12 => {
            set(&mut t.hh, r.int(f, 2, slurp)?.0, f)?;
            t.clock12 = true;
        }
        Kw::Hh24 => set(&mut t.hh, r.int(f, 2, slurp)?.0, f)?,
        Kw::Mi => set(&mut t.mi, r.int(f, 2, slurp)?.0, f)?,
        Kw::Ss => set(&mut t.ss, r.int(f, 2, slurp)?.0, f)?,
        Kw::Ssss => set(&mut t.ssss, r.int(f, f.name.len(), slurp)?.0, f)?,
        Kw::Ms => {
            let (v, used) = r.int(f, 3, slurp)?;
            set(&mut t.ms, v, f)?;
            t.ms = t.ms.wrapping_mul(match used {
                1 => 100,
                2 => 10,
                _ => 1,
            });
        }
        Kw::Us | Kw::Ff(_) => {
            let width = match f.kw {
                Kw::Ff(n) => {
                    t.ff = u32::from(n.clamp(1, 6));
                    t.ff as usize
                }
                _ => 6,
            };
            let (v, used) = r.int(f, width, slurp)?;
            set(&mut t.us, v, f)?;
            t.us = t.us.wrapping_mul(match used {
                1..=5 => 10i32.pow(6 - used as u32),
                _ => 1,
            });
        }
        Kw::AmPm { dots, .. } => {
            let words = if dots {
                ["a.m.", "p.m.", "A.M.", "P.M."]
            } else {
                ["am", "pm", "AM", "PM"]
            };
            let v = r.word(f, words)?;
            set(&mut t.pm, v % 2, f)?;
            t.clock12 = true;
            skip_th = false;
        }
        Kw::Month(_) => set(&mut t.mm, r.word(f, MONTHS)? + 1, f)?,
        Kw::Mon(_) => set(&mut t.mm, r.word(f, MONTHS.iter().map(|m| &m[..3]))? + 1, f)?,
        Kw::Day(_) | Kw::Dy(_) => {
            let v = if matches!(f.kw, Kw::Day(_)) {
                r.word(f, DAYS)?
            } else {
                r.word(f, DAYS.iter().map(|d| &d[..3]))?
            };
            set(&mut t.d, v, f)?;
            t.d += 1;
        }
        Kw::Tzh => {
            // A sign, a blank, or a '-' just skipped as a separator gives the sign.
            match r.peek() {
                Some(b @ (b'+' | b'-' | b' ')) => {
                    t.tzsign = if b == b'-' { -1 } else { 1 };
                    r.pos += 1;
                }
                _ => {
                    let before = r.pos.checked_sub(1).and_then(|p| r.s.as_bytes().get(p));
                    t.tzsign = if r.extra > 0 && before == Some(&b'-') {
                        -1
                    } else {
                        1
                    };
                }
            }
            set(&mut t.tzh, r.int(f, 2, slurp)?.0, f)?;
            skip_th = false;
        }
        Kw::Tzm => {
            if t.tzsign == 0 {
                t.tzsign = 1;
            }
            set(&mut t.tzm, r.int(f, 2, slurp)?.0, f)?;
            skip_th = false;
        }
        _ => return check_supported(f).and(Err(misread())),
    }
    if f.th && skip_th && is_digit_field(f.kw) {
        r.skip_char();
        r.skip_char();
    }
    Ok(())
}

fn is_leap(y: i32) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Cumulative days before each month, normal and leap years.
const YEAR_SUM: [[i32; 13]; 2] = [
    [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365],
    [0, 31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335, 366],
];

fn assemble(input: &str, t: &Slots) -> Result<ParsedDateTime, FromCharError> {
    let field_overflow = || OutOfRange(format!("date/time field value out of range: \"{input}\""));
    let date_range = || OutOfRange(format!("date out of range: \"{input}\""));

    let (mut hour, mut min, mut sec) = (0i32, 0i32, 0i32);
    if t.ssss != 0 {
        (hour, min, sec) = (t.ssss / 3600, t.ssss % 3600 / 60, t.ssss % 60);
    }
    if t.ss != 0 {
        sec = t.ss;
    }
    if t.mi != 0 {
        min = t.mi;
    }
    if t.hh != 0 {
        hour = t.hh;
    }
    if t.clock12 {
        if !(1..=12).contains(&hour) {
            return Err(InvalidFormat(format!(
                "hour \"{hour}\" is invalid for the 12-hour clock"
            )));
        }
        if t.pm != 0 && hour < 12 {
            hour += 12;
        } else if t.pm == 0 && hour == 12 {
            hour = 0;
        }
    }

    // year 0 (astronomical) is 1 BC; a negative year -n read as n BC
    let year = if t.year < 0 { t.year + 1 } else { t.year };
    let (mut month, mut day) = (1i32, 1i32);
    let (mut month_set, mut day_set) = (false, false);
    if t.dd != 0 {
        (day, day_set) = (t.dd, true);
    }
    if t.mm != 0 {
        (month, month_set) = (t.mm, true);
    }
    if t.ddd != 0 && (month <= 1 || day <= 1) {
        if year == 0 {
            return Err(InvalidFormat(
                "cannot calculate day of year without year information".into(),
            ));
        }
        let sums = &YEAR_SUM[usize::from(is_leap(year))];
        let m = (1..=12).find(|&m| t.ddd <= sums[m]).unwrap_or(13);
        if month <= 1 {
            month = m as i32;
        }
        if day <= 1 {
            day = t.ddd - sums[m - 1];
        }
        (month_set, day_set) = (true, true);
    }
    let fsec = t.ms.wrapping_mul(1000).wrapping_add(t.us);

    if month_set && !(1..=12).contains(&month) || day_set && !(1..=31).contains(&day) {
        return Err(field_overflow());
    }
    if t.year != 0 && month_set && day_set {
        let sums = &YEAR_SUM[usize::from(is_leap(year))];
        let m = month as usize; // 1..=12, checked above
        if day > sums[m] - sums[m - 1] {
            return Err(field_overflow());
        }
    }
    if !(0..24).contains(&hour)
        || !(0..60).contains(&min)
        || !(0..60).contains(&sec)
        || !(0..1_000_000).contains(&fsec)
    {
        return Err(field_overflow());
    }
    let offset = if t.tzsign != 0 {
        if !(0..=15).contains(&t.tzh) || !(0..60).contains(&t.tzm) {
            return Err(FromCharError::InvalidTimeZoneDisplacement(format!(
                "time zone displacement out of range: \"{input}\""
            )));
        }
        Some(t.tzsign * (t.tzh * 3600 + t.tzm * 60))
    } else {
        None
    };

    let date = NaiveDate::from_ymd_opt(year, month as u32, 1)
        .and_then(|d| d.checked_add_days(Days::new((day - 1) as u64)))
        .ok_or_else(date_range)?;
    if NaiveDate::from_ymd_opt(-4713, 11, 24).is_some_and(|min| date < min) {
        return Err(date_range());
    }
    let time = NaiveTime::from_hms_micro_opt(hour as u32, min as u32, sec as u32, fsec as u32)
        .ok_or_else(field_overflow)?;
    let mut datetime = date.and_time(time);

    // FFn rounds the result to n fractional digits, ties away from 2000-01-01 UTC.
    if (1..6).contains(&t.ff) && fsec != 0 {
        let scale = 10i32.pow(6 - t.ff);
        let half = scale / 2;
        let utc = datetime.checked_sub_signed(Duration::seconds(i64::from(offset.unwrap_or(0))));
        let before_2000 = match (utc, NaiveDate::from_ymd_opt(2000, 1, 1)) {
            (Some(utc), Some(y2k)) => utc.date() < y2k,
            _ => year < 2000,
        };
        let rounded = if before_2000 {
            (fsec + half - 1) / scale * scale
        } else {
            (fsec + half) / scale * scale
        };
        let whole = hour as u32 * 3600 + min as u32 * 60 + sec as u32;
        let time = if rounded < 1_000_000 {
            NaiveTime::from_num_seconds_from_midnight_opt(whole, rounded as u32 * 1000)
        } else if whole + 1 < 86_400 {
            NaiveTime::from_num_seconds_from_midnight_opt(whole + 1, 0)
        } else {
            return Err(Unsupported(format!(
                "rounding \"{input}\" to the template's fractional digits carries into the \
                 next day, which to_date and to_timestamp treat differently; not supported yet"
            )));
        };
        datetime = date.and_time(time.ok_or_else(field_overflow)?);
    }
    Ok(ParsedDateTime {
        datetime,
        utc_offset_seconds: offset,
    })
}

/// Reads `input` by `template` (non-FX mode unless the template has FX).
pub(crate) fn parse_with_template(
    input: &str,
    template: &str,
) -> Result<ParsedDateTime, FromCharError> {
    // PostgreSQL text cannot hold NUL; read as C strings would.
    let input = input.split('\0').next().unwrap_or_default();
    let template = template.split('\0').next().unwrap_or_default();
    let nodes = compile(template)?;
    let slots = read_fields(input, &nodes)?;
    assemble(input, &slots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Timelike};

    /// What PostgreSQL 15 answered (`to_timestamp(i, t)::text` in a UTC
    /// session, `to_date(i, t)::text`), or that Freshet refuses the case.
    enum Want {
        Reads(&'static str, &'static str),
        Fails(&'static str, &'static str),
        Refused,
    }
    use Want::*;

    fn pg_date(d: NaiveDate) -> (String, &'static str) {
        let y = d.year();
        let (y, era) = if y <= 0 { (1 - y, " BC") } else { (y, "") };
        (format!("{y:04}-{:02}-{:02}", d.month(), d.day()), era)
    }

    /// PostgreSQL's output for the timestamptz (UTC session) and the date.
    fn pg_text(p: &ParsedDateTime) -> (String, String) {
        let offset = Duration::seconds(i64::from(p.utc_offset_seconds.unwrap_or(0)));
        let utc = p.datetime.checked_sub_signed(offset).unwrap_or(p.datetime);
        let (day, era) = pg_date(utc.date());
        let mut ts = format!(
            "{day} {:02}:{:02}:{:02}",
            utc.hour(),
            utc.minute(),
            utc.second()
        );
        let micros = utc.nanosecond() / 1000;
        if micros != 0 {
            ts.push_str(format!(".{micros:06}").trim_end_matches('0'));
        }
        ts.push_str("+00");
        ts.push_str(era);
        let (date, era) = pg_date(p.datetime.date());
        (ts, format!("{date}{era}"))
    }

    // Every answer below is PostgreSQL 15.18's, pasted from psql.
    const CASES: &[(&str, &str, Want)] = &[
        (
            "2024-03-05",
            "YYYY-MM-DD",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        ("", "", Reads("0001-01-01 00:00:00+00 BC", "0001-01-01 BC")),
        (
            "12",
            "MM",
            Reads("0001-12-01 00:00:00+00 BC", "0001-12-01 BC"),
        ),
        (
            "1230",
            "HH24MI",
            Reads("0001-01-01 12:30:00+00 BC", "0001-01-01 BC"),
        ),
        (
            "1230",
            "HH12MI",
            Reads("0001-01-01 00:30:00+00 BC", "0001-01-01 BC"),
        ),
        (
            "12.123456",
            "SS.FF1",
            Reads("0001-01-01 00:00:12.1+00 BC", "0001-01-01 BC"),
        ),
        (
            "2024 12+05",
            "YYYY HH24TZH",
            Reads("2024-01-01 07:00:00+00", "2024-01-01"),
        ),
        (
            "2024 12 -05 30",
            "YYYY HH24 TZH TZM",
            Reads("2024-01-01 17:30:00+00", "2024-01-01"),
        ),
        (
            "2024 -5",
            "YYYY TZH",
            Reads("2024-01-01 05:00:00+00", "2024-01-01"),
        ),
        (
            "2024 - 05",
            "YYYY TZH",
            Reads("2023-12-31 19:00:00+00", "2024-01-01"),
        ),
        (
            "2024 -30",
            "YYYY TZM",
            Reads("2023-12-31 23:30:00+00", "2024-01-01"),
        ),
        (
            "2024 +0530",
            "YYYY TZHTZM",
            Reads("2023-12-31 18:30:00+00", "2024-01-01"),
        ),
        (
            "2024-05",
            "YYYYTZH",
            Reads("2024-01-01 05:00:00+00", "2024-01-01"),
        ),
        (
            "2024 15:59",
            "YYYY TZH:TZM",
            Reads("2023-12-31 08:01:00+00", "2024-01-01"),
        ),
        (
            "2024x01",
            "YYYYxMM",
            Reads("2024-01-01 00:00:00+00", "2024-01-01"),
        ),
        (
            "02-30",
            "MM-DD",
            Reads("0001-03-01 00:00:00+00 BC", "0001-03-01 BC"),
        ),
        (
            "2024-02-00",
            "YYYY-MM-DD",
            Reads("2024-02-01 00:00:00+00", "2024-02-01"),
        ),
        (
            "2024-00-05",
            "YYYY-MM-DD",
            Reads("2024-01-05 00:00:00+00", "2024-01-05"),
        ),
        (
            "-44-03-15",
            "YYYY-MM-DD",
            Reads("0044-03-15 00:00:00+00 BC", "0044-03-15 BC"),
        ),
        (
            "2024 100",
            "YYYY DDD",
            Reads("2024-04-09 00:00:00+00", "2024-04-09"),
        ),
        (
            "2024-03 100",
            "YYYY-MM DDD",
            Reads("2024-03-09 00:00:00+00", "2024-03-09"),
        ),
        (
            "2023 365",
            "YYYY DDD",
            Reads("2023-12-31 00:00:00+00", "2023-12-31"),
        ),
        (
            "2024 366",
            "YYYY DDD",
            Reads("2024-12-31 00:00:00+00", "2024-12-31"),
        ),
        (
            "11 pm",
            "HH am",
            Reads("0001-01-01 23:00:00+00 BC", "0001-01-01 BC"),
        ),
        (
            "11 p.m.",
            "HH a.m.",
            Reads("0001-01-01 23:00:00+00 BC", "0001-01-01 BC"),
        ),
        (
            "11 PM",
            "HH24 AM",
            Reads("0001-01-01 23:00:00+00 BC", "0001-01-01 BC"),
        ),
        (
            "12 AM",
            "HH AM",
            Reads("0001-01-01 00:00:00+00 BC", "0001-01-01 BC"),
        ),
        (
            "12 PM",
            "HH AM",
            Reads("0001-01-01 12:00:00+00 BC", "0001-01-01 BC"),
        ),
        (
            "11 AM PM",
            "HH AM AM",
            Reads("0001-01-01 23:00:00+00 BC", "0001-01-01 BC"),
        ),
        (
            "3:07 P.M.",
            "HH12:MI P.M.",
            Reads("0001-01-01 15:07:00+00 BC", "0001-01-01 BC"),
        ),
        (
            "1 05 5",
            "SS MS US",
            Reads("0001-01-01 00:00:01.55+00 BC", "0001-01-01 BC"),
        ),
        (
            "12345",
            "SSMS",
            Reads("0001-01-01 00:00:12.345+00 BC", "0001-01-01 BC"),
        ),
        (
            "1234",
            "FF2SS",
            Reads("0001-01-01 00:00:34.12+00 BC", "0001-01-01 BC"),
        ),
        (
            "1999-12-31 23:59:59.55",
            "YYYY-MM-DD HH24:MI:SS.FF1",
            Reads("1999-12-31 23:59:59.5+00", "1999-12-31"),
        ),
        (
            "2001-12-31 23:59:59.55",
            "YYYY-MM-DD HH24:MI:SS.FF1",
            Reads("2001-12-31 23:59:59.6+00", "2001-12-31"),
        ),
        (
            "2024-06-30 10:00:59.96",
            "YYYY-MM-DD HH24:MI:SS.FF1",
            Reads("2024-06-30 10:01:00+00", "2024-06-30"),
        ),
        (
            "2024-03-05 14:30:15.123456",
            "YYYY-MM-DD HH24:MI:SS.US",
            Reads("2024-03-05 14:30:15.123456+00", "2024-03-05"),
        ),
        (
            "14:30:15.5",
            "HH24:MI:SS.FF3",
            Reads("0001-01-01 14:30:15.5+00 BC", "0001-01-01 BC"),
        ),
        (
            "05 mArCh 2024",
            "DD Month YYYY",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            "05 march2024",
            "DD MonthYYYY",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            "Tuesday 05 Mar 2024",
            "Day DD Mon YYYY",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            "Tue 05 Mar 2024",
            "Dy DD Mon YYYY",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            "05 MAR 2024",
            "DD mon YYYY",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            "Sunday Monday 2024",
            "Day Day YYYY",
            Reads("2024-01-01 00:00:00+00", "2024-01-01"),
        ),
        (
            "Monday 2 2024",
            "Day D YYYY",
            Reads("2024-01-01 00:00:00+00", "2024-01-01"),
        ),
        (
            "March 5, 2024 2:30 PM",
            "Month DD, YYYY HH:MI AM",
            Reads("2024-03-05 14:30:00+00", "2024-03-05"),
        ),
        (
            "september 2024",
            "TMMonth YYYY",
            Reads("2024-09-01 00:00:00+00", "2024-09-01"),
        ),
        (
            "20240305",
            "YYYYMMDD",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            "2024035",
            "YYYYMMDD",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            "2024-03-05",
            "YYYYMMDD",
            Reads("2024-01-03 00:00:00+00", "2024-01-03"),
        ),
        (
            "12024-03-05",
            "YYYY-MM-DD",
            Reads("12024-03-05 00:00:00+00", "12024-03-05"),
        ),
        (
            "24-03-05",
            "YY-MM-DD",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            "70-03-05",
            "YY-MM-DD",
            Reads("1970-03-05 00:00:00+00", "1970-03-05"),
        ),
        (
            "69-03-05",
            "YY-MM-DD",
            Reads("2069-03-05 00:00:00+00", "2069-03-05"),
        ),
        (
            "024-03-05",
            "YY-MM-DD",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            "519-03-05",
            "YYY-MM-DD",
            Reads("2519-03-05 00:00:00+00", "2519-03-05"),
        ),
        (
            "520-03-05",
            "YYY-MM-DD",
            Reads("1520-03-05 00:00:00+00", "1520-03-05"),
        ),
        (
            "4-03-05",
            "Y-MM-DD",
            Reads("2004-03-05 00:00:00+00", "2004-03-05"),
        ),
        (
            "1999-03-05",
            "YY-MM-DD",
            Reads("1999-03-05 00:00:00+00", "1999-03-05"),
        ),
        (
            "240305",
            "YYMMDD",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            "20240305T143015",
            "YYYYMMDD\"T\"HH24MISS",
            Reads("2024-03-05 14:30:15+00", "2024-03-05"),
        ),
        (
            "2,024-03-05",
            "Y,YYY-MM-DD",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            "12,5678-03-05",
            "Y,YYY-MM-DD",
            Reads("12567-08-03 00:00:00+00", "12567-08-03"),
        ),
        (
            "-2,024-03-05",
            "Y,YYY-MM-DD",
            Reads("1976-03-05 00:00:00+00 BC", "1976-03-05 BC"),
        ),
        (
            "2147483647,000",
            "Y,YYY",
            Reads("1000-01-01 00:00:00+00 BC", "1000-01-01 BC"),
        ),
        (
            "   2024   03   05  ",
            "YYYY MM DD",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            "2024-03-05 garbage",
            "YYYY-MM-DD",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            "2024-03",
            "YYYY-MM-DD",
            Reads("2024-03-01 00:00:00+00", "2024-03-01"),
        ),
        (
            "2024/03.05",
            "YYYY-MM-DD",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            "2024 - 03 - 05",
            "YYYY-MM-DD",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            "2024-03-05",
            "YYYY--MM--DD",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            "2024x03-05",
            "FXYYYY-MM-DD",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            "2024-3-5",
            "FXYYYY-MM-DD",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            " 2024-03-05",
            "FXYYYY-MM-DD",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            "  99",
            "FXYY",
            Reads("0099-01-01 00:00:00+00", "0099-01-01"),
        ),
        (
            "1  5",
            "FXSS MS",
            Reads("0001-01-01 00:00:01.05+00 BC", "0001-01-01 BC"),
        ),
        (
            "  ,4",
            "FX,MI9",
            Reads("0001-01-01 00:00:00+00 BC", "0001-01-01 BC"),
        ),
        (
            "2024-3-05",
            "FMYYYY-FMMM-DD",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            "5th March 2024",
            "DDth Month YYYY",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            "05st03 2024",
            "DDthMM YYYY",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            "March 2024",
            "MonthTH YYYY",
            Reads("2024-03-01 00:00:00+00", "2024-03-01"),
        ),
        (
            "2024x03",
            "YYYY\"-\"MM",
            Reads("2024-03-01 00:00:00+00", "2024-03-01"),
        ),
        (
            "2024  03",
            "YYYY\" \"MM",
            Reads("2024-03-01 00:00:00+00", "2024-03-01"),
        ),
        (
            "2024x03",
            "YYYY\"ab",
            Reads("2024-01-01 00:00:00+00", "2024-01-01"),
        ),
        (
            "3661",
            "SSSS",
            Reads("0001-01-01 01:01:01+00 BC", "0001-01-01 BC"),
        ),
        (
            "36610",
            "SSSSS",
            Reads("0001-01-01 10:10:10+00 BC", "0001-01-01 BC"),
        ),
        (
            "3661 30",
            "SSSS MI",
            Reads("0001-01-01 01:30:01+00 BC", "0001-01-01 BC"),
        ),
        (
            "x  2024",
            "xYYYY",
            Reads("2024-01-01 00:00:00+00", "2024-01-01"),
        ),
        (
            "2024   03",
            "YYYY  xMM",
            Reads("2024-03-01 00:00:00+00", "2024-03-01"),
        ),
        (
            "-4714-11-24",
            "YYYY-MM-DD",
            Reads("4714-11-24 00:00:00+00 BC", "4714-11-24 BC"),
        ),
        (
            "2024-03-05 日",
            "YYYY-MM-DD 日",
            Reads("2024-03-05 00:00:00+00", "2024-03-05"),
        ),
        (
            "2024 +05",
            "YYYY OF",
            Fails(
                "0A000",
                "formatting field \"OF\" is only supported in to_char",
            ),
        ),
        (
            "2024 EST",
            "YYYY TZ",
            Fails(
                "0A000",
                "formatting field \"TZ\" is only supported in to_char",
            ),
        ),
        ("2024 1", "YYYY J", Refused), // PG: 4714-11-25 00:00:00+00 BC / to_date 4714-11-25 BC
        ("2024 10", "YYYY IW", Refused), // PG: 22007 invalid combination of date conventions
        ("2024 AD", "YYYY AD", Refused), // PG: 2024-01-01 00:00:00+00 / to_date 2024-01-01
        (
            "2024-12-31 23:59:59.96",
            "YYYY-MM-DD HH24:MI:SS.FF1",
            Refused,
        ), // PG: 2025-01-01 00:00:00+00 / to_date 2024-12-31
        (
            "25",
            "HH24",
            Fails("22008", "date/time field value out of range: \"25\""),
        ),
        (
            "2024 12 16",
            "YYYY HH24 TZH",
            Fails(
                "22009",
                "time zone displacement out of range: \"2024 12 16\"",
            ),
        ),
        (
            "2024 12 60",
            "YYYY HH24 TZM",
            Fails(
                "22009",
                "time zone displacement out of range: \"2024 12 60\"",
            ),
        ),
        (
            "2024 1205",
            "YYYY HH24TZH",
            Fails("22008", "date/time field value out of range: \"2024 1205\""),
        ),
        (
            "2024 x01",
            "YYYYxMM",
            Fails("22007", "invalid value \"x0\" for \"MM\""),
        ),
        (
            "2024--01",
            "YYYY-MM",
            Fails("22008", "date/time field value out of range: \"2024--01\""),
        ),
        (
            "2024-02-30",
            "YYYY-MM-DD",
            Fails(
                "22008",
                "date/time field value out of range: \"2024-02-30\"",
            ),
        ),
        (
            "2023-02-29",
            "YYYY-MM-DD",
            Fails(
                "22008",
                "date/time field value out of range: \"2023-02-29\"",
            ),
        ),
        (
            "2024-13-01",
            "YYYY-MM-DD",
            Fails(
                "22008",
                "date/time field value out of range: \"2024-13-01\"",
            ),
        ),
        (
            "2024-04-31",
            "YYYY-MM-DD",
            Fails(
                "22008",
                "date/time field value out of range: \"2024-04-31\"",
            ),
        ),
        (
            "100",
            "DDD",
            Fails(
                "22007",
                "cannot calculate day of year without year information",
            ),
        ),
        (
            "2024 400",
            "YYYY DDD",
            Fails("22008", "date/time field value out of range: \"2024 400\""),
        ),
        (
            "AM",
            "AM",
            Fails("22007", "hour \"0\" is invalid for the 12-hour clock"),
        ),
        (
            "13 PM",
            "HH AM",
            Fails("22007", "hour \"13\" is invalid for the 12-hour clock"),
        ),
        (
            "0 PM",
            "HH AM",
            Fails("22007", "hour \"0\" is invalid for the 12-hour clock"),
        ),
        (
            "11 PM AM",
            "HH AM AM",
            Fails(
                "22007",
                "conflicting values for \"AM\" field in formatting string",
            ),
        ),
        (
            "11 xm",
            "HH AM",
            Fails("22007", "invalid value \"xm\" for \"AM\""),
        ),
        (
            "11 P.M.",
            "HH AM",
            Fails("22007", "invalid value \"P.M.\" for \"AM\""),
        ),
        (
            "10:60",
            "HH24:MI",
            Fails("22008", "date/time field value out of range: \"10:60\""),
        ),
        (
            "10:59:60",
            "HH24:MI:SS",
            Fails("22008", "date/time field value out of range: \"10:59:60\""),
        ),
        (
            "1 5 5",
            "SS MS US",
            Fails("22008", "date/time field value out of range: \"1 5 5\""),
        ),
        (
            "12.1234567",
            "SS.US",
            Fails(
                "22008",
                "date/time field value out of range: \"12.1234567\"",
            ),
        ),
        (
            "05 Mar 2024",
            "DD Month YYYY",
            Fails("22007", "invalid value \"Mar\" for \"Month\""),
        ),
        (
            "05 Marc 2024",
            "DD Mon YYYY",
            Fails("22007", "invalid value \"c 20\" for \"YYYY\""),
        ),
        (
            "Monday Monday 2024",
            "Day Day YYYY",
            Fails(
                "22007",
                "conflicting values for \"Day\" field in formatting string",
            ),
        ),
        (
            "2 Monday 2024",
            "D Day YYYY",
            Fails(
                "22007",
                "conflicting values for \"Day\" field in formatting string",
            ),
        ),
        (
            "Tuesdayy 05",
            "Day DD",
            Fails("22007", "invalid value \"y \" for \"DD\""),
        ),
        (
            "4305",
            "YMMDD",
            Fails("22008", "date/time field value out of range: \"4305\""),
        ),
        (
            "2024-03-05",
            "Y,YYY-MM-DD",
            Fails("22007", "invalid input string for \"Y,YYY\""),
        ),
        (
            "abcd",
            "yyyy",
            Fails("22007", "invalid value \"abcd\" for \"yyyy\""),
        ),
        (
            "20x",
            "yyyymmdd",
            Fails(
                "22007",
                "source string too short for \"yyyy\" formatting field",
            ),
        ),
        (
            "2024 99999999999",
            "YYYY DD",
            Fails("22008", "value for \"DD\" in source string is out of range"),
        ),
        (
            "12345",
            "USSS",
            Fails(
                "22007",
                "source string too short for \"US\" formatting field",
            ),
        ),
        (
            "   ",
            "Month",
            Fails("22007", "invalid value \"\" for \"Month\""),
        ),
        (
            " ",
            "YYYY",
            Fails("22007", "invalid value \"\" for \"YYYY\""),
        ),
        (
            "  x2024",
            "xYYYY",
            Fails("22007", "invalid value \"x202\" for \"YYYY\""),
        ),
        (
            "  ,41",
            "FX,MIMM",
            Fails("22007", "invalid value \",4\" for \"MM\""),
        ),
        (
            "-4715-11-24",
            "YYYY-MM-DD",
            Fails("22008", "date out of range: \"-4715-11-24\""),
        ),
        (
            "2147483647",
            "YYYY",
            Fails("22008", "date out of range: \"2147483647\""),
        ),
    ];

    #[test]
    fn matches_postgres() {
        let mut failures = Vec::new();
        for (input, template, want) in CASES {
            let got = parse_with_template(input, template);
            let ok = match (want, &got) {
                (Reads(ts, date), Ok(p)) => pg_text(p) == (ts.to_string(), date.to_string()),
                (Fails(state, msg), Err(e)) => e.sqlstate() == *state && e.to_string() == *msg,
                (Refused, Err(e)) => e.sqlstate() == "0A000",
                _ => false,
            };
            if !ok {
                let got = got
                    .map(|p| pg_text(&p))
                    .map_err(|e| (e.sqlstate(), e.to_string()));
                failures.push(format!("{input:?} / {template:?}: got {got:?}"));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} cases differ:\n{}",
            failures.len(),
            CASES.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn offset_is_reported_east_of_utc() {
        let p = parse_with_template("2024-03-05 10:00 -05:30", "YYYY-MM-DD HH24:MI TZH:TZM");
        assert_eq!(
            p.map(|p| p.utc_offset_seconds),
            Ok(Some(-(5 * 3600 + 1800)))
        );
        let p = parse_with_template("2024-03-05", "YYYY-MM-DD");
        assert_eq!(p.map(|p| p.utc_offset_seconds), Ok(None));
    }

    #[test]
    fn fuzz_never_panics() {
        let template: Vec<char> = "YMDHISUFXTHAPhmdyisf124 -:.,\"\\é日".chars().collect();
        let input: Vec<char> = "0123456789 -+:.,\"xAaPpMmJjé日\t".chars().collect();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let t: String = (0..next() % 14)
                .map(|_| template[next() as usize % template.len()])
                .collect();
            let i: String = (0..next() % 20)
                .map(|_| input[next() as usize % input.len()])
                .collect();
            let _ = parse_with_template(&i, &t);
        }
    }
}
