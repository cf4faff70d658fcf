//! PostgreSQL 15 numeric templates: `to_char(numeric | int4 | int8 | float8
//! | float4, text)` and `to_number(text, text)`.
//!
//! Clients format money, report columns and fixed-width exports with these
//! templates and compare the result byte for byte, padding included. This
//! module reproduces what a PostgreSQL 15 server in the C locale prints (the
//! tests' expected values all come from one, and a randomised comparison of
//! over 300 000 template/value pairs agreed), odd corners included: the sign
//! glued to the first printed digit, `FM` trimming, the all-`#` overflow
//! form, `,` blanked after the decimal point, float digits capped at 15
//! (float8) or 6 (float4) significant places with a longer template ending
//! the text there, ties rounded half away from zero for numeric but to even
//! for floats (and for `int4` under `EEEE`, which goes through float8).
//!
//! Covered: `9 0 . , D G S MI PL SG PR FM L TH th V EEEE RN rn`, the inert
//! `B C SP`, literal characters and double-quoted text with backslash
//! escapes; `to_number`'s lenient reading (one input byte per digit
//! position, signs and `<…>` around the number, the scale being the number
//! of fraction digits read). `D`, `G` and `L` use the C locale: `.`, `,` and
//! a space (C has no currency symbol).
//!
//! Left out, refused with `Unsupported` (0A000): other locales, `int4` values
//! whose `V` scaling overflows (PostgreSQL prints wrapped garbage), and
//! `to_number` with `RN` or `EEEE` (PostgreSQL refuses those as well).
//! `to_number` results beyond 38 digits are `OutOfRange`. Numeric
//! `NaN`/`Infinity` cannot be passed in.

use std::cmp::Ordering;

/// Why a template or a value could not be handled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NumberFormatError {
    /// A template or value Freshet does not handle (yet).
    #[error("{0}")]
    Unsupported(String),
    /// PostgreSQL rejects the template itself.
    #[error("{0}")]
    Syntax(String),
    /// `to_number` found no number, or `TH` met a non-number.
    #[error("{0}")]
    InvalidText(String),
    /// The value does not fit the result type.
    #[error("{0}")]
    OutOfRange(String),
}

impl NumberFormatError {
    pub(crate) fn sqlstate(&self) -> &'static str {
        match self {
            Self::Unsupported(_) => "0A000",
            Self::Syntax(_) => "42601",
            Self::InvalidText(_) => "22P02",
            Self::OutOfRange(_) => "22003",
        }
    }
}

type Res<T> = Result<T, NumberFormatError>;

fn syntax(msg: &str) -> NumberFormatError {
    NumberFormatError::Syntax(msg.to_string())
}

/// One element of a parsed template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Nine,
    Zero,
    /// `.` or `D`.
    Point,
    /// `,` or `G`.
    Group,
    /// `B`: accepted, prints nothing, but clashes with `EEEE`.
    Blank,
    /// `C`, `SP`: accepted and ignored.
    Inert,
    Fill,
    /// `S`: the sign glued to the number.
    Sign,
    Minus,
    Plus,
    /// `SG`
    EitherSign,
    /// `PR`
    Angle,
    /// `L`
    Currency,
    Ordinal {
        upper: bool,
    },
    /// `V`
    Shift,
    Sci,
    Roman {
        upper: bool,
    },
    Literal(char),
}

/// Keywords, tried in this order at each template position (so `SG` and `SP`
/// win over `S`). Each also matches in all lower case (`rn` and `th` then
/// print lower case); mixed case is literal text.
const KEYWORDS: [(&str, Item); 20] = [
    (",", Item::Group),
    (".", Item::Point),
    ("0", Item::Zero),
    ("9", Item::Nine),
    ("B", Item::Blank),
    ("C", Item::Inert),
    ("D", Item::Point),
    ("EEEE", Item::Sci),
    ("FM", Item::Fill),
    ("G", Item::Group),
    ("L", Item::Currency),
    ("MI", Item::Minus),
    ("PL", Item::Plus),
    ("PR", Item::Angle),
    ("RN", Item::Roman { upper: true }),
    ("SG", Item::EitherSign),
    ("SP", Item::Inert),
    ("S", Item::Sign),
    ("TH", Item::Ordinal { upper: true }),
    ("V", Item::Shift),
];

/// The keyword at the start of `text`, with its length.
fn keyword(text: &str) -> Option<(usize, Item)> {
    KEYWORDS.iter().find_map(|&(word, item)| {
        if text.starts_with(word) {
            return Some((word.len(), item));
        }
        let head = text.get(..word.len())?;
        if !head.bytes().all(|b| b.is_ascii_lowercase()) || !head.eq_ignore_ascii_case(word) {
            return None;
        }
        Some(match item {
            Item::Roman { .. } => (word.len(), Item::Roman { upper: false }),
            Item::Ordinal { .. } => (word.len(), Item::Ordinal { upper: false }),
            _ => (word.len(), item),
        })
    })
}

/// Where an `S` sign goes: before the first digit or after the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SignSpot {
    Before,
    After,
}

/// A parsed numeric template (`to_char`'s second argument).
#[derive(Debug, Clone, Default)]
pub(crate) struct NumberFormat {
    items: Vec<Item>,
    /// The template was '' (`to_number` gives NULL; `to_char` '' anyway).
    empty: bool,
    /// Digit positions before the decimal point (plus `0`s after `V`).
    pre: usize,
    /// Digit positions after the decimal point.
    post: usize,
    /// `9`s after `V`: the power of ten to scale by.
    shift: usize,
    decimal: bool,
    /// Digit position of the first `0` before the decimal point.
    zero_start: Option<usize>,
    /// Digit positions up to and including the last `0`.
    zero_end: usize,
    sign_spot: Option<SignSpot>,
    /// Value of `pre` when `S` was seen.
    sign_pre: usize,
    fill: bool,
    minus: bool,
    plus: bool,
    bracket: bool,
    roman: bool,
    sci: bool,
    blank: bool,
    shifted: bool,
}

impl NumberFormat {
    pub(crate) fn parse(template: &str) -> Result<NumberFormat, NumberFormatError> {
        let mut f = NumberFormat {
            empty: template.is_empty(),
            ..NumberFormat::default()
        };
        let mut rest = template;
        while let Some(c) = rest.chars().next() {
            if let Some((len, item)) = keyword(rest) {
                f.note(item)?;
                f.items.push(item);
                rest = rest.get(len..).unwrap_or("");
            } else if c == '"' {
                rest = f.quoted(&rest[1..]);
            } else {
                rest = &rest[c.len_utf8()..];
                // Outside quotes a backslash only escapes a double quote.
                let c = match rest.strip_prefix('"') {
                    Some(after) if c == '\\' => {
                        rest = after;
                        '"'
                    }
                    _ => c,
                };
                f.items.push(Item::Literal(c));
            }
        }
        Ok(f)
    }

    /// Consumes a quoted literal up to its closing quote (or the end);
    /// returns what follows it.
    fn quoted<'a>(&mut self, text: &'a str) -> &'a str {
        let mut chars = text.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return &text[i + 1..],
                '\\' => {
                    let (_, escaped) = chars.next().unwrap_or((i, '\\'));
                    self.items.push(Item::Literal(escaped));
                }
                _ => self.items.push(Item::Literal(c)),
            }
        }
        ""
    }

    /// Records a keyword, rejecting the combinations PostgreSQL rejects.
    fn note(&mut self, item: Item) -> Res<()> {
        if self.sci && item != Item::Sci {
            return Err(syntax("\"EEEE\" must be the last pattern used"));
        }
        match item {
            Item::Nine | Item::Zero => {
                let name = if item == Item::Nine { "9" } else { "0" };
                if self.bracket {
                    return Err(syntax(&format!("\"{name}\" must be ahead of \"PR\"")));
                }
                if item == Item::Nine && self.shifted {
                    self.shift += 1;
                } else {
                    if item == Item::Zero && self.zero_start.is_none() && !self.decimal {
                        self.zero_start = Some(self.pre);
                    }
                    if self.decimal {
                        self.post += 1;
                    } else {
                        self.pre += 1;
                    }
                    if item == Item::Zero {
                        self.zero_end = self.pre + self.post;
                    }
                }
            }
            Item::Point => {
                if self.decimal {
                    return Err(syntax("multiple decimal points"));
                }
                if self.shifted {
                    return Err(syntax("cannot use \"V\" and decimal point together"));
                }
                self.decimal = true;
            }
            Item::Shift => {
                if self.decimal {
                    return Err(syntax("cannot use \"V\" and decimal point together"));
                }
                self.shifted = true;
            }
            // `B` only counts (against `EEEE`) ahead of any digit.
            Item::Blank => {
                self.blank |= self.pre == 0 && self.post == 0 && self.zero_start.is_none();
            }
            Item::Fill => self.fill = true,
            Item::Sign => {
                if self.sign_spot.is_some() {
                    return Err(syntax("cannot use \"S\" twice"));
                }
                if self.plus || self.minus || self.bracket {
                    return Err(syntax(
                        "cannot use \"S\" and \"PL\"/\"MI\"/\"SG\"/\"PR\" together",
                    ));
                }
                if self.decimal {
                    self.sign_spot = Some(SignSpot::After);
                } else {
                    self.sign_spot = Some(SignSpot::Before);
                    self.sign_pre = self.pre;
                }
            }
            Item::Minus | Item::Plus | Item::EitherSign => {
                if self.sign_spot.is_some() {
                    let name = match item {
                        Item::Minus => "MI",
                        Item::Plus => "PL",
                        _ => "SG",
                    };
                    return Err(syntax(&format!("cannot use \"S\" and \"{name}\" together")));
                }
                self.minus |= item != Item::Plus;
                self.plus |= item != Item::Minus;
            }
            Item::Angle => {
                if self.sign_spot.is_some() || self.plus || self.minus {
                    return Err(syntax(
                        "cannot use \"PR\" and \"S\"/\"PL\"/\"MI\"/\"SG\" together",
                    ));
                }
                self.bracket = true;
            }
            Item::Roman { .. } => self.roman = true,
            Item::Sci => {
                if self.sci {
                    return Err(syntax("cannot use \"EEEE\" twice"));
                }
                if self.blank
                    || self.fill
                    || self.sign_spot.is_some()
                    || self.bracket
                    || self.minus
                    || self.plus
                    || self.roman
                    || self.shifted
                {
                    return Err(syntax("\"EEEE\" is incompatible with other formats"));
                }
                self.sci = true;
            }
            Item::Group
            | Item::Inert
            | Item::Currency
            | Item::Ordinal { .. }
            | Item::Literal(_) => {}
        }
        Ok(())
    }

    /// Formats an exact decimal `unscaled × 10^-scale` (PostgreSQL `numeric`).
    pub(crate) fn format_decimal(
        &self,
        unscaled: i128,
        scale: i8,
    ) -> Result<String, NumberFormatError> {
        let digits = unscaled.unsigned_abs().to_string();
        let (negative, scale) = (unscaled < 0, i32::from(scale));
        let exact = Exact {
            negative,
            digits,
            scale,
        };
        if self.roman {
            let (negative, whole, _) = exact.rounded(0);
            let n = format!("{}{whole}", if negative { "-" } else { "" });
            return Ok(self.roman_output(n.parse::<i32>().map_err(|_| int_range())?));
        }
        if self.sci {
            return Ok(exact.scientific(self.post));
        }
        let shift = i32::try_from(self.shift).unwrap_or(i32::MAX);
        let shifted = Exact {
            scale: exact.scale.saturating_sub(shift),
            ..exact
        };
        let (negative, whole, frac) = shifted.rounded(self.post);
        let text = if self.post > 0 {
            format!("{whole}.{frac}")
        } else {
            whole
        };
        self.lay_out(negative, text, self.pre + self.shift, self.post)
    }

    /// Formats an `int4` (`smallint` arrives here too, as PostgreSQL casts it).
    pub(crate) fn format_i32(&self, value: i32) -> Result<String, NumberFormatError> {
        if self.roman {
            return Ok(self.roman_output(value));
        }
        if self.sci {
            // PostgreSQL goes through float8 here: ties round to even.
            return Ok(self.float_scientific(f64::from(value)));
        }
        let scaled = if value == 0 {
            Some(0)
        } else {
            u32::try_from(self.shift)
                .ok()
                .and_then(|s| 10i32.checked_pow(s))
                .and_then(|factor| value.checked_mul(factor))
        };
        let scaled = scaled.ok_or_else(|| {
            NumberFormatError::Unsupported(
                "to_char of an integer whose \"V\" scaling overflows is not supported".into(),
            )
        })?;
        self.integer_output(i128::from(scaled))
    }

    /// Formats an `int8`.
    pub(crate) fn format_i64(&self, value: i64) -> Result<String, NumberFormatError> {
        if self.roman {
            return Ok(self.roman_output(i32::try_from(value).map_err(|_| int_range())?));
        }
        if self.sci {
            return Ok(Exact {
                negative: value < 0,
                digits: value.unsigned_abs().to_string(),
                scale: 0,
            }
            .scientific(self.post));
        }
        let bigint_range = || out_of_range("bigint out of range");
        let factor = u32::try_from(self.shift)
            .ok()
            .and_then(|s| 10i64.checked_pow(s))
            .ok_or_else(bigint_range)?;
        let scaled = value.checked_mul(factor).ok_or_else(bigint_range)?;
        self.integer_output(i128::from(scaled))
    }

    fn integer_output(&self, value: i128) -> Res<String> {
        let mut text = value.unsigned_abs().to_string();
        if self.post > 0 {
            text.push('.');
            text.push_str(&"0".repeat(self.post));
        }
        self.lay_out(value < 0, text, self.pre + self.shift, self.post)
    }

    /// Formats a `float8`.
    pub(crate) fn format_f64(&self, value: f64) -> Result<String, NumberFormatError> {
        self.format_float(value, false)
    }

    /// Formats a `float4`: PostgreSQL keeps only 6 significant digits (15 for
    /// float8) and does the `V` multiplication in single precision.
    pub(crate) fn format_f32(&self, value: f32) -> Result<String, NumberFormatError> {
        self.format_float(f64::from(value), true)
    }

    fn format_float(&self, value: f64, single: bool) -> Res<String> {
        if self.roman {
            // rint(): ties to even; anything outside 1..=3999 (NaN too) is '#'.
            let r = value.round_ties_even();
            let n = if (1.0..=3999.0).contains(&r) {
                r as i32
            } else {
                0
            };
            return Ok(self.roman_output(n));
        }
        if self.sci {
            return Ok(self.float_scientific(value));
        }
        let value = if self.shift == 0 {
            value
        } else if single {
            let factor = 10f64.powf(self.shift as f64) as f32;
            f64::from(value as f32 * factor)
        } else {
            value * 10f64.powf(self.shift as f64)
        };
        let digits = if single { 6 } else { 15 };
        let whole_len = fixed(value.abs(), 0).len();
        let post = if whole_len >= digits {
            0
        } else {
            self.post.min(digits - whole_len)
        };
        let text = fixed(value, post);
        let (negative, text) = match text.strip_prefix('-') {
            Some(rest) => (true, rest.to_string()),
            None => (false, text),
        };
        self.lay_out(negative, text, self.pre + self.shift, post)
    }

    fn float_scientific(&self, value: f64) -> String {
        if !value.is_finite() {
            let mut text = " ".to_string();
            text.push_str(&"#".repeat(self.pre));
            text.push('.');
            text.push_str(&"#".repeat(self.post + 4));
            return text;
        }
        // PostgreSQL's printf stops at 350 digits and pads with zeros.
        let places = self.post.min(350);
        let text = format!("{:+.*e}", places, value);
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        let mut out = mantissa.replacen('+', " ", 1);
        out.push_str(&"0".repeat(self.post - places));
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        out.push_str(&format!("e{exp_sign}{:02}", exponent.unsigned_abs()));
        out
    }

    /// Output for `RN` templates: only the numeral, literals, `L` and
    /// placeholders for `,` `G` `MI` `PL` survive; digits print nothing.
    fn roman_output(&self, n: i32) -> String {
        let numeral = roman(n);
        let mut out = String::new();
        for item in &self.items {
            match *item {
                Item::Roman { upper } => {
                    let text = if upper {
                        numeral.clone()
                    } else {
                        numeral.to_ascii_lowercase()
                    };
                    if self.fill {
                        out.push_str(&text);
                    } else {
                        out.push_str(&format!("{text:>15}"));
                    }
                }
                Item::Group | Item::Minus | Item::Plus if !self.fill => out.push(' '),
                Item::Currency => out.push(' '),
                // PostgreSQL writes a NUL byte here, ending the text.
                Item::EitherSign => break,
                Item::Literal(c) => out.push(c),
                _ => {}
            }
        }
        out
    }

    /// The general `to_char` layout. `text` is the unsigned number with
    /// exactly `post` fraction digits (or "NaN"/"Infinity"); `pre` counts
    /// integer digit positions including `V`'s.
    fn lay_out(&self, negative: bool, text: String, pre: usize, post: usize) -> Res<String> {
        let whole_len = text.find('.').unwrap_or(text.len());
        let (text, lead) = match whole_len.cmp(&pre) {
            Ordering::Less => (text, pre - whole_len),
            Ordering::Equal => (text, 0),
            Ordering::Greater => (format!("{}.{}", "#".repeat(pre), "#".repeat(post)), 0),
        };
        let num = text.as_bytes();
        let sign = if negative { '-' } else { '+' };

        let mut bracket = self.bracket;
        let mut spot = self.sign_spot;
        let mut sign_done = self.minus;
        if !self.minus && !self.plus {
            if !negative && self.fill {
                bracket = false;
            }
            sign_done = !negative && self.fill && spot.is_none();
            if spot == Some(SignSpot::Before) && pre == self.sign_pre {
                spot = Some(SignSpot::After);
            }
        }

        // Under FM, fraction digits after this index are dropped (unless the
        // template has a `0` there).
        let mut last_kept = None;
        if self.fill && self.decimal {
            if let Some(point) = text.find('.') {
                let last_nonzero = num.iter().rposition(|&b| b != b'0').filter(|&i| i > point);
                let mut keep = last_nonzero.unwrap_or(point);
                if self.zero_end > lead {
                    keep = keep.max((num.len() - 1).min(self.zero_end - lead));
                }
                last_kept = Some(keep);
            }
        }
        let point_kept = last_kept.is_some_and(|i| num.get(i) == Some(&b'.'));

        let mut count = (pre + post) as isize - 1;
        if !sign_done && lead == 0 {
            count += 1;
        }
        let end_base = count + isize::from(lead > 0) + isize::from(self.decimal);

        let mut out = String::new();
        let (mut pos, mut slot, mut digits_started) = (0usize, 0usize, false);
        for item in &self.items {
            match *item {
                Item::Nine | Item::Zero | Item::Point => {
                    let zero_padded = self.zero_start.is_some_and(|z| z <= slot);
                    // A `,` prints only right after a digit: not after the
                    // point, a blank or a digit that FM dropped.
                    digits_started = false;
                    // "0.5" under "9.9" prints " .5": the lone leading zero is blank.
                    let blank_zero = self.zero_start.is_none()
                        && pos == 0
                        && num.first() == Some(&b'0')
                        && post != 0;
                    if !sign_done
                        && (slot >= lead || self.zero_start == Some(slot))
                        && (!blank_zero || point_kept)
                    {
                        match spot {
                            Some(SignSpot::Before) => {
                                out.push(sign);
                                sign_done = true;
                            }
                            Some(SignSpot::After) => {}
                            None => {
                                if bracket {
                                    out.push(if negative { '<' } else { ' ' });
                                } else if negative {
                                    out.push('-');
                                } else if !self.fill {
                                    out.push(' ');
                                }
                                sign_done = true;
                            }
                        }
                    }
                    if slot < lead && !zero_padded {
                        if !self.fill {
                            out.push(' ');
                        }
                    } else if slot < lead {
                        out.push('0');
                        digits_started = true;
                    } else {
                        let c = num.get(pos).copied();
                        if c == Some(b'.') {
                            out.push('.');
                        } else if last_kept.is_some_and(|k| pos > k) && *item != Item::Zero {
                        } else if blank_zero {
                            if !self.fill {
                                out.push(' ');
                            } else if point_kept {
                                out.push('0');
                            }
                        } else {
                            // Past the end (float digits ran out) PostgreSQL
                            // writes a NUL, which ends the text.
                            out.push(c.map_or('\0', char::from));
                            digits_started = true;
                        }
                        if pos < num.len() {
                            pos += 1;
                        }
                    }
                    let end = if last_kept == Some(pos) {
                        slot as isize
                    } else {
                        end_base
                    };
                    if slot as isize + 1 == end {
                        if sign_done && bracket {
                            out.push(if negative { '>' } else { ' ' });
                        } else if spot == Some(SignSpot::After) {
                            out.push(sign);
                        }
                    }
                    slot += 1;
                }
                Item::Group => {
                    if digits_started {
                        out.push(',');
                    } else if !self.fill {
                        out.push(' ');
                    }
                }
                Item::Currency => out.push(' '),
                Item::Ordinal { upper }
                    if !negative && !self.decimal && num.first() != Some(&b'#') =>
                {
                    out.push_str(&ordinal_suffix(&text, upper)?);
                }
                Item::Minus if negative => out.push('-'),
                Item::Plus if !negative => out.push('+'),
                Item::Minus | Item::Plus if !self.fill => out.push(' '),
                Item::EitherSign => out.push(sign),
                Item::Literal(c) => out.push(c),
                _ => {}
            }
        }
        if let Some(nul) = out.find('\0') {
            out.truncate(nul);
        }
        Ok(out)
    }

    /// The largest scale [`NumberFormat::parse_number`] returns for this
    /// template: its digit positions after the decimal point, and 16 more
    /// with `V`.
    pub(crate) fn max_scale(&self) -> usize {
        self.post + if self.shifted { 16 } else { 0 }
    }

    /// Reads `text` by this template, as `to_number` does. Returns the
    /// numeric's unscaled value and scale (both within 38 digits), or `None`
    /// for an empty template (PostgreSQL returns NULL).
    pub(crate) fn parse_number(&self, text: &str) -> Result<Option<(i128, i8)>, NumberFormatError> {
        if self.empty {
            return Ok(None);
        }
        let unsupported = |name: &str| {
            NumberFormatError::Unsupported(format!("\"{name}\" not supported for input"))
        };
        if self.sci {
            return Err(unsupported("EEEE"));
        }
        if self.roman {
            return Err(unsupported("RN"));
        }
        let mut r = Reader {
            input: text.as_bytes(),
            at: 0,
            sign: ' ',
            digits: String::new(),
            pre: 0,
            post: 0,
            seen_point: false,
        };
        for item in &self.items {
            if r.at >= r.input.len() {
                break;
            }
            match *item {
                Item::Nine | Item::Zero | Item::Point => {
                    self.read_digit(&mut r, *item);
                    r.at += 1;
                }
                // FM skips `,` unless a digit was written, and to_number
                // never marks one as written.
                Item::Group if !self.fill && r.peek() == Some(',') => r.at += 1,
                Item::Currency => r.skip_non_data(1),
                Item::Ordinal { .. } if !self.decimal => r.skip_non_data(2),
                Item::Minus | Item::Plus | Item::EitherSign => {
                    let wanted = match (r.peek(), *item) {
                        (Some('-'), Item::Minus | Item::EitherSign) => Some('-'),
                        (Some('+'), Item::Plus | Item::EitherSign) => Some('+'),
                        _ => None,
                    };
                    match wanted {
                        Some(sign) => {
                            r.sign = sign;
                            r.at += 1;
                        }
                        None => r.skip_non_data(1),
                    }
                }
                Item::Literal(_) => r.at += r.char_len(),
                _ => {}
            }
        }
        r.finish(self.pre + self.shift, self.shifted.then_some(self.shift))
    }

    /// One digit position of `to_number`: optional space, a sign before the
    /// first digit, the digit or decimal point, and a sign right after it.
    fn read_digit(&self, r: &mut Reader<'_>, item: Item) {
        if r.peek() == Some(' ') {
            r.at += 1;
        }
        let Some(c) = r.peek() else { return };
        if r.sign == ' ' && item != Item::Point && r.pre + r.post == 0 {
            let sign = match c {
                '-' => Some('-'),
                '<' if self.bracket => Some('-'),
                '+' => Some('+'),
                _ => None,
            };
            if let Some(sign) = sign {
                r.sign = sign;
                r.at += 1;
            }
        }
        let Some(c) = r.peek() else { return };
        let mut read = false;
        if c.is_ascii_digit() {
            if r.seen_point && r.post == self.post {
                return;
            }
            r.digits.push(c);
            if r.seen_point {
                r.post += 1;
            } else {
                r.pre += 1;
            }
            read = true;
        } else if self.decimal && !r.seen_point && c == '.' {
            r.digits.push('.');
            r.seen_point = true;
            read = true;
        }
        if r.sign != ' ' || r.pre + r.post == 0 {
            return;
        }
        let next = r.input.get(r.at + 1).map(|&b| char::from(b));
        if self.sign_spot.is_some() && read {
            if let Some(sign @ ('-' | '+')) = next {
                r.sign = sign;
                r.at += 1;
            }
        } else if !read && self.sign_spot.is_none() && (self.plus || self.minus) {
            if let sign @ ('-' | '+') = c {
                r.sign = sign;
            }
        }
    }
}

/// `to_number`'s progress through its input.
struct Reader<'a> {
    /// PostgreSQL steps through the input bytewise (a digit position
    /// consumes one byte even of a multibyte character); only literals and
    /// skipped non-data characters move by whole characters.
    input: &'a [u8],
    at: usize,
    sign: char,
    digits: String,
    pre: usize,
    post: usize,
    seen_point: bool,
}

impl Reader<'_> {
    fn peek(&self) -> Option<char> {
        self.input.get(self.at).map(|&b| char::from(b))
    }

    /// Length of the (UTF-8) character starting at the current byte; a
    /// stray continuation byte counts as one.
    fn char_len(&self) -> usize {
        match self.input.get(self.at) {
            Some(b) if b & 0xe0 == 0xc0 => 2,
            Some(b) if b & 0xf0 == 0xe0 => 3,
            Some(b) if b & 0xf8 == 0xf0 => 4,
            _ => 1,
        }
    }

    /// Skips up to `n` characters that cannot be part of a number.
    fn skip_non_data(&mut self, n: usize) {
        for _ in 0..n {
            match self.peek() {
                Some(c) if !c.is_ascii_digit() && !".,+-".contains(c) => self.at += self.char_len(),
                _ => break,
            }
        }
    }

    /// Converts what was read the way PostgreSQL's numeric input does, with
    /// precision `pre + post` and scale `post`, then applies `V`.
    fn finish(self, pre: usize, shift: Option<usize>) -> Res<Option<(i128, i8)>> {
        let digits = self.digits.strip_suffix('.').unwrap_or(&self.digits);
        if !digits.bytes().any(|b| b.is_ascii_digit()) {
            let shown = format!("{}{digits}", self.sign);
            return Err(NumberFormatError::InvalidText(format!(
                "invalid input syntax for type numeric: \"{shown}\""
            )));
        }
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let whole = whole.trim_start_matches('0');
        if whole.len() > pre {
            return Err(out_of_range("numeric field overflow"));
        }
        let mut all = format!("{whole}{frac}");
        let mut scale = frac.len();
        if let Some(shift) = shift {
            // With `V` PostgreSQL multiplies by power(10, -shift), computed
            // to 16 decimal places: exact up to 10^-16, zero beyond.
            scale += 16;
            match 16usize.checked_sub(shift) {
                Some(zeros) => all.push_str(&"0".repeat(zeros)),
                None => all.clear(),
            }
        }
        let all = all.trim_start_matches('0');
        let too_long = || out_of_range("to_number result exceeds 38 digits");
        if all.len() > 38 {
            return Err(too_long());
        }
        let magnitude = all.parse::<i128>().unwrap_or(0);
        let value = if self.sign == '-' {
            -magnitude
        } else {
            magnitude
        };
        let scale = i8::try_from(scale)
            .ok()
            .filter(|&s| s <= 38)
            .ok_or_else(too_long)?;
        Ok(Some((value, scale)))
    }
}

fn out_of_range(msg: &str) -> NumberFormatError {
    NumberFormatError::OutOfRange(msg.to_string())
}

fn int_range() -> NumberFormatError {
    out_of_range("integer out of range")
}

/// An exact decimal: `digits` (ASCII, unsigned) × 10^-scale.
#[derive(Debug, Clone)]
struct Exact {
    negative: bool,
    digits: String,
    scale: i32,
}

impl Exact {
    /// Rounds half away from zero to `places` fraction digits; returns the
    /// sign (false for zero), the integer part without leading zeros (at
    /// least "0") and exactly `places` fraction digits.
    fn rounded(&self, places: usize) -> (bool, String, String) {
        let mut digits = self.digits.clone().into_bytes();
        let mut scale = self.scale;
        if scale < 0 {
            digits.extend(std::iter::repeat_n(b'0', scale.unsigned_abs() as usize));
            scale = 0;
        }
        let scale = scale as usize;
        if digits.len() <= scale {
            let mut padded = vec![b'0'; scale + 1 - digits.len()];
            padded.extend_from_slice(&digits);
            digits = padded;
        }
        let int_len = digits.len() - scale;
        if scale > places {
            let round_up = digits.get(int_len + places).is_some_and(|&d| d >= b'5');
            digits.truncate(int_len + places);
            if round_up {
                increment(&mut digits);
            }
        } else {
            digits.extend(std::iter::repeat_n(b'0', places - scale));
        }
        let int_len = digits.len() - places;
        let frac = String::from_utf8_lossy(&digits[int_len..]).into_owned();
        let whole = String::from_utf8_lossy(&digits[..int_len]);
        let whole = match whole.trim_start_matches('0') {
            "" => "0".to_string(),
            w => w.to_string(),
        };
        let zero = whole == "0" && frac.bytes().all(|b| b == b'0');
        (self.negative && !zero, whole, frac)
    }

    /// PostgreSQL's numeric scientific form: `places` mantissa fraction
    /// digits (half away from zero), an exponent of at least two digits, and
    /// a space in place of a plus sign.
    fn scientific(&self, places: usize) -> String {
        let significant = self.digits.trim_start_matches('0');
        let exponent = match significant.len() {
            0 => 0,
            n => n as i64 - 1 - i64::from(self.scale),
        };
        let mut mantissa = significant.as_bytes().to_vec();
        let round_up = mantissa.get(places + 1).is_some_and(|&d| d >= b'5');
        mantissa.resize(places + 1, b'0');
        if round_up {
            // A carry is not renormalised: 9.99 prints as "10.0e+00".
            increment(&mut mantissa);
        }
        let negative = self.negative && !significant.is_empty();
        let mut out = String::from(if negative { "-" } else { " " });
        let (whole, frac) = mantissa.split_at(mantissa.len() - places);
        out.push_str(&String::from_utf8_lossy(whole));
        if places > 0 {
            out.push('.');
            out.push_str(&String::from_utf8_lossy(frac));
        }
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        out.push_str(&format!("e{exp_sign}{:02}", exponent.unsigned_abs()));
        out
    }
}

/// Adds one to an ASCII digit string, growing it on a carry out.
fn increment(digits: &mut Vec<u8>) {
    for d in digits.iter_mut().rev() {
        if *d == b'9' {
            *d = b'0';
        } else {
            *d += 1;
            return;
        }
    }
    digits.insert(0, b'1');
}

/// C's `%.*f` as PostgreSQL's printf renders it (NaN, Infinity spelled out).
fn fixed(value: f64, places: usize) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value.is_infinite() {
        if value < 0.0 { "-Infinity" } else { "Infinity" }.to_string()
    } else {
        format!("{value:.places$}")
    }
}

/// Upper-case roman numeral for 1..=3999; fifteen `#` otherwise.
fn roman(n: i32) -> String {
    if !(1..=3999).contains(&n) {
        return "#".repeat(15);
    }
    const VALUES: [i32; 13] = [1000, 900, 500, 400, 100, 90, 50, 40, 10, 9, 5, 4, 1];
    const LETTERS: [&str; 13] = [
        "M", "CM", "D", "CD", "C", "XC", "L", "XL", "X", "IX", "V", "IV", "I",
    ];
    let mut rest = n;
    let mut out = String::new();
    for (value, letters) in VALUES.into_iter().zip(LETTERS) {
        while rest >= value {
            out.push_str(letters);
            rest -= value;
        }
    }
    out
}

/// English ordinal suffix of the number text's last digit.
fn ordinal_suffix(text: &str, upper: bool) -> Res<String> {
    let bytes = text.as_bytes();
    let teen = bytes.len() > 1 && bytes.get(bytes.len() - 2) == Some(&b'1');
    let suffix = match bytes.last() {
        Some(b'1') if !teen => "st",
        Some(b'2') if !teen => "nd",
        Some(b'3') if !teen => "rd",
        Some(b) if b.is_ascii_digit() => "th",
        _ => {
            let msg = format!("\"{text}\" is not a number");
            return Err(NumberFormatError::InvalidText(msg));
        }
    };
    Ok(if upper {
        suffix.to_ascii_uppercase()
    } else {
        suffix.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every expected value below was produced by PostgreSQL 15 (C locale):
    // (value, template, to_char output).
    const NUMERIC: &[(&str, &str, &str)] = &[
        ("1234.5", "9,999.99", " 1,234.50"),
        ("-1234.5", "9,999.99", "-1,234.50"),
        ("1234.5", "FM9,999.99", "1,234.5"),
        ("1234.5", "L9G999D99", "  1,234.50"),
        ("0.5", "9.99", "  .50"),
        ("0.5", "0.99", " 0.50"),
        ("0.5", "FM9.99", ".5"),
        ("0", "9", " 0"),
        ("0", "9.99", "  .00"),
        ("0", "FM9.99", "0."),
        ("0", "FM0.99", "0."),
        ("2.5", "9", " 3"),
        ("-2.5", "9", "-3"),
        ("0.125", "9.99", "  .13"),
        ("999.995", "999.99", " ###.##"),
        ("123456", "9999", " ####"),
        ("-123456", "9999", "-####"),
        ("123.456", "99.9", " ##.#"),
        ("12", "0000", " 0012"),
        ("-12", "0000", "-0012"),
        ("12", "0099.90", " 0012.00"),
        ("-12.3", "S999.99", " -12.30"),
        ("12.3", "S999.99", " +12.30"),
        ("-12.3", "999.99S", " 12.30-"),
        ("12.3", "999.99S", " 12.30+"),
        ("-12.3", "999.99MI", " 12.30-"),
        ("12.3", "999.99MI", " 12.30 "),
        ("12.3", "FM999.99MI", "12.3"),
        ("12.3", "PL999.99", "+  12.30"),
        ("-12.3", "PL999.99", "  -12.30"),
        ("12.3", "SG999.99", "+ 12.30"),
        ("-12.3", "SG999.99", "- 12.30"),
        ("-12.3", "999.99PR", " <12.30>"),
        ("12.3", "999.99PR", "  12.30 "),
        ("-12.3", "FM999.99PR", "<12.3>"),
        ("12.3", "FM999.99PR", "12.3"),
        ("-0.5", "9.9", " -.5"),
        ("-0.5", "FM9.9", "-.5"),
        ("21", "99th", " 21st"),
        ("112", "999TH", " 112TH"),
        ("3", "FM9th", "3rd"),
        ("-3", "9th", "-3"),
        ("12.5", "99V9", " 125"),
        ("12.345", "99V99", " 1235"),
        ("1234.5", "9.99EEEE", " 1.23e+03"),
        ("-0.000125", "9.9EEEE", "-1.3e-04"),
        ("9.99", "9.9EEEE", " 10.0e+00"),
        ("0", "9.99EEEE", " 0.00e+00"),
        ("1994", "RN", "        MCMXCIV"),
        ("1994", "FMrn", "mcmxciv"),
        ("0", "RN", "###############"),
        ("4000", "FMRN", "###############"),
        ("2.5", "FMRN", "III"),
        ("12", "\"Total: \"999\" units\"", "Total:   12 units"),
        ("12", "99\\\"x", " 12\"x"),
        ("12", "99 abc", " 12 a"),
        ("5", "9.9,", " 5.0,"),
        ("5", "FM9.9,", "5."),
        ("5.5", "FM9.99,x", "5.5x"),
        ("1234567.891", "FM9,999,999.999", "1,234,567.891"),
        ("-1234567.891", "9G999G999D99", "-1,234,567.89"),
        ("0.01", "FM0.00", "0.01"),
        ("100", "FM999.00", "100.00"),
        ("12", "99thth", " 12thth"),
    ];
    const INT4: &[(&str, &str, &str)] = &[
        ("-485", "999", "-485"),
        ("-485", "FM999", "-485"),
        ("485", "999PR", " 485 "),
        ("-485", "999PR", "<485>"),
        ("485", "PL999", "+ 485"),
        ("485", "SG999", "+485"),
        ("-485", "999MI", "485-"),
        ("1", "FM9th", "1st"),
        ("2", "FM9th", "2nd"),
        ("13", "99TH", " 13TH"),
        ("125", "9.9EEEE", " 1.2e+02"),
        ("123", "9V99", " ###"),
        ("3999", "RN", "      MMMCMXCIX"),
        ("148", "FM0000", "0148"),
    ];
    const INT8: &[(&str, &str, &str)] = &[
        ("125", "9.9EEEE", " 1.3e+02"),
        (
            "9223372036854775807",
            "9999999999999999999",
            " 9223372036854775807",
        ),
        (
            "-9223372036854775808",
            "FM9999999999999999999",
            "-9223372036854775808",
        ),
        ("42", "99V999", " 42000"),
    ];
    const FLOAT8: &[(&str, &str, &str)] = &[
        ("2.5", "9", " 2"),
        ("3.5", "9", " 4"),
        ("0.125", "9.99", "  .12"),
        ("1e20", "9999", " ####"),
        ("1e20", "999999999999999999999", " 100000000000000000000"),
        ("1.5", "9.9999999999999999", " 1.50000000000000"),
        ("-1.5", "9.9999999999999999PR", "<1.50000000000000>"),
        ("-0.0", "9", "-0"),
        ("-0.001", "9.99", " -.00"),
        ("NaN", "999.99", " NaN"),
        ("NaN", "9", " #"),
        ("Infinity", "99999.99", " #####.##"),
        ("-Infinity", "9999PR", "<####>"),
        ("Infinity", "9.9EEEE", " #.#####"),
        ("1234.5678", "9.99EEEE", " 1.23e+03"),
        ("2.5", "RN", "             II"),
        (
            "123456789.123456789",
            "999999999.999999",
            " 123456789.123457",
        ),
        ("0.1", "9.99999999999999999999", "  .10000000000000"),
        ("12.345", "99V99", " 1234"),
        ("-12.5", "S99", "-12"),
    ];
    const FLOAT4: &[(&str, &str, &str)] = &[
        ("1.1", "9.9999999", " 1.10000"),
        ("123456.7", "999999.99", " 123457"),
        ("Infinity", "99999.99", " #####."),
        ("0.1", "9.9999999999", "  .10000"),
        ("12.5", "99V9", " 125"),
    ];

    // (text, template, to_number result as PostgreSQL prints it; NULL for NULL).
    const TO_NUMBER: &[(&str, &str, &str)] = &[
        ("1,234.5-", "9,999.9S", "-1234.5"),
        ("$1,234.56", "L9,999.99", "1234.56"),
        ("12.3456", "99.99", "12.34"),
        ("12.3", "99.99", "12.3"),
        ("<123>", "999PR", "-123"),
        ("123-", "999MI", "-123"),
        ("-123", "999", "-123"),
        ("+123", "999", "123"),
        (" 1 2 ", "9999", "12"),
        ("1a2", "999", "12"),
        ("123456", "999", "123"),
        ("12", "99V9", "1.2000000000000000"),
        ("1.5", "9V9", "0.1000000000000000"),
        ("1.", "9.9", "1"),
        ("1,234", "FM9,999", "123"),
        ("1,234", "9,999", "1234"),
        ("12.5-", "99.9S", "-12.5"),
        ("-12.5", "S99.9", "-12.5"),
        ("12th", "99th", "12"),
        ("x12", "\"x\"99", "12"),
        ("12", "", "NULL"),
        ("0012.50", "9999.99", "12.50"),
    ];

    // (kind, value, template, SQLSTATE, message).
    const ERRORS: &[(&str, &str, &str, &str, &str)] = &[
        (
            "numeric",
            "1234.5",
            "9.99.9x",
            "42601",
            "multiple decimal points",
        ),
        ("int8", "5000000000", "RN", "22003", "integer out of range"),
        (
            "numeric",
            "12",
            "99PR9",
            "42601",
            "\"9\" must be ahead of \"PR\"",
        ),
        ("numeric", "12", "S9S", "42601", "cannot use \"S\" twice"),
        ("numeric", "12", "9.9.9", "42601", "multiple decimal points"),
        (
            "numeric",
            "12",
            "9V9.9",
            "42601",
            "cannot use \"V\" and decimal point together",
        ),
        (
            "numeric",
            "12",
            "9.9EEEE9",
            "42601",
            "\"EEEE\" must be the last pattern used",
        ),
        (
            "numeric",
            "12",
            "FM9.9EEEE",
            "42601",
            "\"EEEE\" is incompatible with other formats",
        ),
        (
            "numeric",
            "12",
            "9.9EEEEEEEE",
            "42601",
            "cannot use \"EEEE\" twice",
        ),
        (
            "numeric",
            "12",
            "S9PL",
            "42601",
            "cannot use \"S\" and \"PL\" together",
        ),
        (
            "numeric",
            "12",
            "MI9S",
            "42601",
            "cannot use \"S\" and \"PL\"/\"MI\"/\"SG\"/\"PR\" together",
        ),
        (
            "numeric",
            "12",
            "S9PR",
            "42601",
            "cannot use \"PR\" and \"S\"/\"PL\"/\"MI\"/\"SG\" together",
        ),
        (
            "numeric",
            "10000000000",
            "RN",
            "22003",
            "integer out of range",
        ),
        ("float8", "NaN", "999th", "22P02", "\"NaN\" is not a number"),
        (
            "int8",
            "123456",
            "9V99999999999999999999",
            "22003",
            "bigint out of range",
        ),
        (
            "to_number",
            "123",
            "9.99",
            "22003",
            "numeric field overflow",
        ),
        (
            "to_number",
            "abc",
            "999",
            "22P02",
            "invalid input syntax for type numeric: \" \"",
        ),
        (
            "to_number",
            "",
            "999",
            "22P02",
            "invalid input syntax for type numeric: \" \"",
        ),
        (
            "to_number",
            "-",
            "9",
            "22P02",
            "invalid input syntax for type numeric: \"-\"",
        ),
        (
            "to_number",
            "12",
            "RN",
            "0A000",
            "\"RN\" not supported for input",
        ),
        (
            "to_number",
            "12",
            "9.9EEEE",
            "0A000",
            "\"EEEE\" not supported for input",
        ),
        (
            "to_number",
            "12",
            "9.9.9",
            "42601",
            "multiple decimal points",
        ),
        (
            "to_number",
            "5",
            "L",
            "22P02",
            "invalid input syntax for type numeric: \" \"",
        ),
    ];

    fn fmt(template: &str) -> NumberFormat {
        NumberFormat::parse(template).unwrap_or_else(|e| panic!("{template:?}: {e}"))
    }

    fn decimal(text: &str) -> (i128, i8) {
        let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
        (format!("{whole}{frac}").parse().unwrap(), frac.len() as i8)
    }

    fn float(text: &str) -> f64 {
        match text {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            _ => text.parse().unwrap(),
        }
    }

    /// Renders a to_number result the way PostgreSQL prints a numeric.
    fn shown(result: Option<(i128, i8)>) -> String {
        let Some((unscaled, scale)) = result else {
            return "NULL".into();
        };
        let mut digits = unscaled.unsigned_abs().to_string();
        let scale = scale as usize;
        if scale > 0 {
            if digits.len() <= scale {
                digits = format!("{}{digits}", "0".repeat(scale + 1 - digits.len()));
            }
            digits.insert(digits.len() - scale, '.');
        }
        format!("{}{digits}", if unscaled < 0 { "-" } else { "" })
    }

    fn run(kind: &str, value: &str, template: &str) -> Result<String, NumberFormatError> {
        let f = NumberFormat::parse(template)?;
        match kind {
            "numeric" => {
                let (unscaled, scale) = decimal(value);
                f.format_decimal(unscaled, scale)
            }
            "int4" => f.format_i32(value.parse().unwrap()),
            "int8" => f.format_i64(value.parse().unwrap()),
            "float8" => f.format_f64(float(value)),
            "float4" => f.format_f32(float(value) as f32),
            "to_number" => f.parse_number(value).map(shown),
            _ => unreachable!("{kind}"),
        }
    }

    fn check(kind: &str, cases: &[(&str, &str, &str)]) {
        for (value, template, expected) in cases {
            let got = run(kind, value, template);
            assert_eq!(
                got.as_deref(),
                Ok(*expected),
                "{kind} {value:?} {template:?}"
            );
        }
    }

    #[test]
    fn numeric_to_char() {
        check("numeric", NUMERIC);
    }

    #[test]
    fn integer_to_char() {
        check("int4", INT4);
        check("int8", INT8);
    }

    #[test]
    fn float_to_char() {
        check("float8", FLOAT8);
        check("float4", FLOAT4);
    }

    #[test]
    fn to_number() {
        check("to_number", TO_NUMBER);
    }

    #[test]
    fn errors() {
        for (kind, value, template, state, message) in ERRORS {
            let err =
                run(kind, value, template).expect_err(&format!("{kind} {value:?} {template:?}"));
            assert_eq!(
                (err.sqlstate(), err.to_string().as_str()),
                (*state, *message),
                "{template:?}"
            );
        }
    }

    #[test]
    fn scale_and_negative_scale() {
        // 12.340 with scale 3 and 1234 × 10^2 (scale -2) format like PostgreSQL's
        // to_char(12.340, '99.9') and to_char(123400, '999999').
        assert_eq!(fmt("99.9").format_decimal(12340, 3).as_deref(), Ok(" 12.3"));
        assert_eq!(
            fmt("999999").format_decimal(1234, -2).as_deref(),
            Ok(" 123400")
        );
    }

    #[test]
    fn empty_template() {
        // to_char(1, '') is '' and to_number('12', '') is NULL in PostgreSQL.
        assert_eq!(fmt("").format_decimal(1, 0).as_deref(), Ok(""));
        assert_eq!(fmt("").format_f64(1.0).as_deref(), Ok(""));
        assert_eq!(fmt("").parse_number("12"), Ok(None));
    }

    #[test]
    fn refusals() {
        // PostgreSQL prints "-######" here: 123456 * 100000 wraps around in int4.
        let err = fmt("9V99999").format_i32(123456).unwrap_err();
        assert_eq!(err.sqlstate(), "0A000");
        // to_number results beyond 38 digits do not fit the caller's decimals.
        let err = fmt(&"9".repeat(40))
            .parse_number(&"1".repeat(40))
            .unwrap_err();
        assert_eq!(err.sqlstate(), "22003");
    }
}
