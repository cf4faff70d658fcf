//! PostgreSQL 15 `to_char(timestamp | timestamptz | date, text)` formatting.
//! (`to_char` of a number is handed to [`crate::number_templates`].)
//!
//! Reproduces PostgreSQL's output (checked case by case against PostgreSQL
//! 15) for the template patterns of Table 9.26 (case-sensitive
//! keyword table, longest match first), the `FM`/`TM` prefix and `TH`/`th`/`SP`
//! postfix modifiers (lowercase `sp` is not one) of Table 9.27, `FX` (outputs nothing), double-quoted
//! literals with backslash escapes, `\"` outside quotes, and every other
//! character copied verbatim. Quirks reproduced on purpose: only ONE prefix is
//! recognised per keyword (`FMTMMonth` prints `T01onth`), a prefix without a
//! following keyword is silently dropped (`FMx` → `x`), `TH` on non-numeric
//! fields is ignored, `MS`/`US`/`FFn`/`Y,YYY`/`Y`/`TZH`/`TZM` ignore `FM`,
//! Month/Day names are blank-padded to 9 and `RM` to 4 unless `FM` or `TM`.
//!
//! The caller supplies the local wall-clock time plus the UTC offset and zone
//! abbreviation. For `timestamp` pass `0` and `""` (PG prints nothing for `TZ`
//! and `+00` for `OF`/`TZH`). PG has no `to_char(date)`: a date is implicitly
//! cast to `timestamptz`, so pass midnight plus the session zone's offset/abbrev. An empty format yields
//! [`ToCharError::EmptyFormat`]; PG returns SQL NULL in that case.
//!
//! Left out: `TM` localisation (always English, as in the C locale), `SP`
//! spell mode (ignored, as PG does), interval formatting, and years ≤ 0: BC
//! dates follow PG's formulas (BC/AD markers, `ADJUST_YEAR`) but are untested;
//! ISO fields for BC years may differ. Fractional seconds are truncated to
//! microseconds; a chrono leap second is treated as second 59.

use chrono::{Datelike, NaiveDateTime, Timelike};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToCharError {
    /// Format string is empty: PostgreSQL's `to_char` returns NULL.
    EmptyFormat,
}

impl fmt::Display for ToCharError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyFormat => f.write_str("empty to_char format (result is NULL)"),
        }
    }
}

impl std::error::Error for ToCharError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Case {
    Upper,
    Cap,
    Lower,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kw {
    AmPm { dots: bool, upper: bool },
    AdBc { dots: bool, upper: bool },
    Month(Case),
    Mon(Case),
    Day(Case),
    Dy(Case),
    Rm(bool),
    Tz(bool),
    Hh12,
    Hh24,
    Mi,
    Ss,
    Ms,
    Us,
    Ff(u8),
    Ssss,
    Ddd,
    Iddd,
    Dd,
    D,
    Id,
    Ww,
    Iw,
    Q,
    Cc,
    YComma,
    Yyyy,
    Yyy,
    Yy,
    Y,
    Iyyy,
    Iyy,
    Iy,
    I,
    Mm,
    W,
    J,
    Tzh,
    Tzm,
    Of,
    Fx,
}

/// PG 15 `DCH_keywords` (case-sensitive); matched longest-first.
pub(crate) const KEYWORDS: &[(&str, Kw)] = {
    use Case::*;
    use Kw::*;
    &[
        (
            "A.D.",
            AdBc {
                dots: true,
                upper: true,
            },
        ),
        (
            "A.M.",
            AmPm {
                dots: true,
                upper: true,
            },
        ),
        (
            "AD",
            AdBc {
                dots: false,
                upper: true,
            },
        ),
        (
            "AM",
            AmPm {
                dots: false,
                upper: true,
            },
        ),
        (
            "B.C.",
            AdBc {
                dots: true,
                upper: true,
            },
        ),
        (
            "BC",
            AdBc {
                dots: false,
                upper: true,
            },
        ),
        ("CC", Cc),
        ("DAY", Day(Upper)),
        ("DDD", Ddd),
        ("DD", Dd),
        ("DY", Dy(Upper)),
        ("Day", Day(Cap)),
        ("Dy", Dy(Cap)),
        ("D", D),
        ("FF1", Ff(1)),
        ("FF2", Ff(2)),
        ("FF3", Ff(3)),
        ("FF4", Ff(4)),
        ("FF5", Ff(5)),
        ("FF6", Ff(6)),
        ("FX", Fx),
        ("HH24", Hh24),
        ("HH12", Hh12),
        ("HH", Hh12),
        ("IDDD", Iddd),
        ("ID", Id),
        ("IW", Iw),
        ("IYYY", Iyyy),
        ("IYY", Iyy),
        ("IY", Iy),
        ("I", I),
        ("J", J),
        ("MI", Mi),
        ("MM", Mm),
        ("MONTH", Month(Upper)),
        ("MON", Mon(Upper)),
        ("MS", Ms),
        ("Month", Month(Cap)),
        ("Mon", Mon(Cap)),
        ("OF", Of),
        (
            "P.M.",
            AmPm {
                dots: true,
                upper: true,
            },
        ),
        (
            "PM",
            AmPm {
                dots: false,
                upper: true,
            },
        ),
        ("Q", Q),
        ("RM", Rm(true)),
        ("SSSSS", Ssss),
        ("SSSS", Ssss),
        ("SS", Ss),
        ("TZH", Tzh),
        ("TZM", Tzm),
        ("TZ", Tz(true)),
        ("US", Us),
        ("WW", Ww),
        ("W", W),
        ("Y,YYY", YComma),
        ("YYYY", Yyyy),
        ("YYY", Yyy),
        ("YY", Yy),
        ("Y", Y),
        (
            "a.d.",
            AdBc {
                dots: true,
                upper: false,
            },
        ),
        (
            "a.m.",
            AmPm {
                dots: true,
                upper: false,
            },
        ),
        (
            "ad",
            AdBc {
                dots: false,
                upper: false,
            },
        ),
        (
            "am",
            AmPm {
                dots: false,
                upper: false,
            },
        ),
        (
            "b.c.",
            AdBc {
                dots: true,
                upper: false,
            },
        ),
        (
            "bc",
            AdBc {
                dots: false,
                upper: false,
            },
        ),
        ("cc", Cc),
        ("day", Day(Lower)),
        ("ddd", Ddd),
        ("dd", Dd),
        ("dy", Dy(Lower)),
        ("d", D),
        ("ff1", Ff(1)),
        ("ff2", Ff(2)),
        ("ff3", Ff(3)),
        ("ff4", Ff(4)),
        ("ff5", Ff(5)),
        ("ff6", Ff(6)),
        ("fx", Fx),
        ("hh24", Hh24),
        ("hh12", Hh12),
        ("hh", Hh12),
        ("iddd", Iddd),
        ("id", Id),
        ("iw", Iw),
        ("iyyy", Iyyy),
        ("iyy", Iyy),
        ("iy", Iy),
        ("i", I),
        ("j", J),
        ("mi", Mi),
        ("mm", Mm),
        ("month", Month(Lower)),
        ("mon", Mon(Lower)),
        ("ms", Ms),
        ("of", Of),
        (
            "p.m.",
            AmPm {
                dots: true,
                upper: false,
            },
        ),
        (
            "pm",
            AmPm {
                dots: false,
                upper: false,
            },
        ),
        ("q", Q),
        ("rm", Rm(false)),
        ("sssss", Ssss),
        ("ssss", Ssss),
        ("ss", Ss),
        ("tzh", Tzh),
        ("tzm", Tzm),
        ("tz", Tz(false)),
        ("us", Us),
        ("ww", Ww),
        ("w", W),
        ("y,yyy", YComma),
        ("yyyy", Yyyy),
        ("yyy", Yyy),
        ("yy", Yy),
        ("y", Y),
    ]
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    Lit(String),
    Kw {
        kw: Kw,
        fm: bool,
        tm: bool,
        th: Option<bool>,
    },
}

/// A parsed `to_char` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgDateFormat {
    pub(crate) toks: Vec<Tok>,
}

pub(crate) const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
pub(crate) const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const RM: [&str; 12] = [
    "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII",
];

fn push_lit(toks: &mut Vec<Tok>, c: char) {
    if let Some(Tok::Lit(s)) = toks.last_mut() {
        s.push(c);
    } else {
        toks.push(Tok::Lit(c.to_string()));
    }
}

impl PgDateFormat {
    /// Parses a template as PostgreSQL reads it (never fails except
    /// for the empty template, for which PG returns NULL).
    pub fn parse(format: &str) -> Result<Self, ToCharError> {
        if format.is_empty() {
            return Err(ToCharError::EmptyFormat);
        }
        let mut toks = Vec::new();
        let mut rest = format;
        while !rest.is_empty() {
            let (mut fm, mut tm) = (false, false);
            if let Some(r) = rest.strip_prefix("FM").or_else(|| rest.strip_prefix("fm")) {
                fm = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("TM").or_else(|| rest.strip_prefix("tm")) {
                tm = true;
                rest = r;
            }
            let best = KEYWORDS
                .iter()
                .filter(|(name, _)| rest.starts_with(name))
                .max_by_key(|(name, _)| name.len());
            if let Some(&(name, kw)) = best {
                rest = &rest[name.len()..];
                let mut th = None;
                for (sfx, val) in [("TH", Some(true)), ("th", Some(false)), ("SP", None)] {
                    if let Some(r) = rest.strip_prefix(sfx) {
                        rest = r;
                        th = val;
                        break;
                    }
                }
                toks.push(Tok::Kw { kw, fm, tm, th });
                continue;
            }
            let mut chars = rest.chars();
            let Some(c) = chars.next() else { break };
            if c == '"' {
                // quoted literal; backslash quotes the next character
                loop {
                    match chars.next() {
                        None | Some('"') => break,
                        Some('\\') => {
                            let save = chars.clone();
                            match chars.next() {
                                Some(n) => push_lit(&mut toks, n),
                                None => {
                                    chars = save;
                                    push_lit(&mut toks, '\\');
                                }
                            }
                        }
                        Some(n) => push_lit(&mut toks, n),
                    }
                }
            } else if c == '\\' && chars.as_str().starts_with('"') {
                chars.next();
                push_lit(&mut toks, '"');
            } else {
                push_lit(&mut toks, c);
            }
            rest = chars.as_str();
        }
        Ok(Self { toks })
    }

    /// Formats `ts` (local wall-clock time). `utc_offset_seconds` is east of
    /// UTC; `zone_abbrev` is printed by `TZ` (empty for `timestamp`/`date`).
    pub fn format(&self, ts: NaiveDateTime, utc_offset_seconds: i32, zone_abbrev: &str) -> String {
        let mut out = String::new();
        for tok in &self.toks {
            match tok {
                Tok::Lit(s) => out.push_str(s),
                Tok::Kw { kw, fm, tm, th } => format_kw(
                    &mut out,
                    *kw,
                    *fm,
                    *tm,
                    *th,
                    &ts,
                    utc_offset_seconds,
                    zone_abbrev,
                ),
            }
        }
        out
    }
}

fn cased(s: &str, case: Case) -> String {
    match case {
        Case::Upper => s.to_uppercase(),
        Case::Lower => s.to_lowercase(),
        Case::Cap => s.to_string(),
    }
}

/// PG `get_th()`: ordinal suffix of the number's decimal text.
fn ordinal(num: &str, upper: bool) -> &'static str {
    let b = num.as_bytes();
    let mut last = b.last().copied().unwrap_or(b'0');
    if b.len() > 1 && b[b.len() - 2] == b'1' {
        last = b'0';
    }
    match (last, upper) {
        (b'1', true) => "ST",
        (b'1', false) => "st",
        (b'2', true) => "ND",
        (b'2', false) => "nd",
        (b'3', true) => "RD",
        (b'3', false) => "rd",
        (_, true) => "TH",
        (_, false) => "th",
    }
}

/// `sprintf("%0*d", width, v)` as PG uses it (width 0 in FM mode).
fn pad(v: i64, width: usize) -> String {
    if v < 0 {
        format!("-{:0w$}", v.unsigned_abs(), w = width.saturating_sub(1))
    } else {
        format!("{v:0width$}")
    }
}

#[allow(clippy::too_many_arguments)]
fn format_kw(
    out: &mut String,
    kw: Kw,
    fm: bool,
    tm: bool,
    th: Option<bool>,
    ts: &NaiveDateTime,
    off: i32,
    zone: &str,
) {
    let (hour, min) = (ts.hour() as i64, ts.minute() as i64);
    let sec = ts.second() as i64;
    let usec = (ts.nanosecond() % 1_000_000_000) as i64 / 1000;
    let date = ts.date();
    let year = date.year() as i64;
    let adj_year = if year <= 0 { 1 - year } else { year }; // PG ADJUST_YEAR
    let iso = date.iso_week();
    let iso_year = iso.year() as i64;
    let adj_iso = if iso_year <= 0 {
        1 - iso_year
    } else {
        iso_year
    };
    let wday = date.weekday().num_days_from_sunday() as usize; // 0 = Sunday
    let yday = date.ordinal() as i64;
    let month = date.month0() as usize;
    let w = |n: usize| if fm { 0 } else { n };
    let text = |out: &mut String, s: String, padto: usize| {
        if fm || tm {
            out.push_str(&s);
        } else {
            out.push_str(&format!("{s:<padto$}"));
        }
    };
    let num: String = match kw {
        Kw::AmPm { dots, upper } => {
            let s = match (hour >= 12, dots) {
                (false, true) => "A.M.",
                (true, true) => "P.M.",
                (false, false) => "AM",
                (true, false) => "PM",
            };
            out.push_str(&if upper {
                s.to_string()
            } else {
                s.to_lowercase()
            });
            return;
        }
        Kw::AdBc { dots, upper } => {
            let s = match (year <= 0, dots) {
                (false, true) => "A.D.",
                (true, true) => "B.C.",
                (false, false) => "AD",
                (true, false) => "BC",
            };
            out.push_str(&if upper {
                s.to_string()
            } else {
                s.to_lowercase()
            });
            return;
        }
        Kw::Month(c) => return text(out, cased(MONTHS[month], c), 9),
        Kw::Day(c) => return text(out, cased(DAYS[wday], c), 9),
        Kw::Mon(c) => return out.push_str(&cased(&MONTHS[month][..3], c)),
        Kw::Dy(c) => return out.push_str(&cased(&DAYS[wday][..3], c)),
        Kw::Rm(upper) => {
            let s = if upper {
                RM[month].to_string()
            } else {
                RM[month].to_lowercase()
            };
            return text(out, s, 4);
        }
        Kw::Tz(upper) => {
            return out.push_str(&if upper {
                zone.to_string()
            } else {
                zone.to_lowercase()
            });
        }
        Kw::Tzh => {
            let sign = if off >= 0 { '+' } else { '-' };
            return out.push_str(&format!("{sign}{:02}", off.unsigned_abs() / 3600));
        }
        Kw::Tzm => return out.push_str(&format!("{:02}", off.unsigned_abs() % 3600 / 60)),
        Kw::Of => {
            let sign = if off >= 0 { '+' } else { '-' };
            let a = off.unsigned_abs();
            out.push_str(&format!("{sign}{:0w$}", a / 3600, w = w(2)));
            let rem = a % 3600;
            if rem != 0 {
                out.push_str(&format!(":{:02}", rem / 60));
            }
            return;
        }
        Kw::Fx => return,
        Kw::Hh12 => pad(
            match hour % 12 {
                0 => 12,
                h => h,
            },
            w(2),
        ),
        Kw::Hh24 => pad(hour, w(2)),
        Kw::Mi => pad(min, w(2)),
        Kw::Ss => pad(sec, w(2)),
        Kw::Ms => format!("{:03}", usec / 1000),
        Kw::Us => format!("{usec:06}"),
        Kw::Ff(n) => {
            let n = n.clamp(1, 6) as u32;
            format!("{:0w$}", usec / 10i64.pow(6 - n), w = n as usize)
        }
        Kw::Ssss => (hour * 3600 + min * 60 + sec).to_string(),
        Kw::Ddd => pad(yday, w(3)),
        Kw::Iddd => pad(
            (iso.week() as i64 - 1) * 7 + date.weekday().number_from_monday() as i64,
            w(3),
        ),
        Kw::Dd => pad(date.day() as i64, w(2)),
        Kw::D => (wday + 1).to_string(),
        Kw::Id => (if wday == 0 { 7 } else { wday }).to_string(),
        Kw::Ww => pad((yday - 1) / 7 + 1, w(2)),
        Kw::Iw => pad(iso.week() as i64, w(2)),
        Kw::Q => (month / 3 + 1).to_string(),
        Kw::Cc => {
            let c = if year > 0 {
                (year - 1) / 100 + 1
            } else {
                year / 100 - 1
            };
            if (-99..=99).contains(&c) {
                pad(c, w(if c >= 0 { 2 } else { 3 }))
            } else {
                c.to_string()
            }
        }
        Kw::YComma => format!("{},{:03}", adj_year / 1000, adj_year % 1000),
        Kw::Yyyy => pad(adj_year, w(4)),
        Kw::Yyy => pad(adj_year % 1000, w(3)),
        Kw::Yy => pad(adj_year % 100, w(2)),
        Kw::Y => (adj_year % 10).to_string(),
        Kw::Iyyy => pad(adj_iso, w(4)),
        Kw::Iyy => pad(adj_iso % 1000, w(3)),
        Kw::Iy => pad(adj_iso % 100, w(2)),
        Kw::I => (adj_iso % 10).to_string(),
        Kw::Mm => pad(month as i64 + 1, w(2)),
        Kw::W => ((date.day() as i64 - 1) / 7 + 1).to_string(),
        Kw::J => (date.num_days_from_ce() as i64 + 1_721_425).to_string(),
    };
    out.push_str(&num);
    if let Some(upper) = th {
        out.push_str(ordinal(&num, upper));
    }
}

// ---------------------------------------------------------------- the function

/// `to_char(timestamp | timestamptz | date, text)` with PostgreSQL's
/// template patterns, registered over DataFusion's `to_char`, which took
/// strftime patterns (`to_char(d, 'YYYY-MM-DD')` printed `YYYY-MM-DD`).
/// Freshet's session time zone is UTC, so a timestamptz and a date (which
/// PostgreSQL casts to timestamptz) print in UTC with `TZ` as `UTC`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ToChar {
    signature: datafusion::logical_expr::Signature,
}

impl ToChar {
    pub(crate) fn new() -> Self {
        Self {
            signature: datafusion::logical_expr::Signature::any(
                2,
                datafusion::logical_expr::Volatility::Stable,
            ),
        }
    }
}

/// How a value of the first argument's type is printed.
fn local_time(
    array: &dyn datafusion::arrow::array::Array,
    row: usize,
) -> datafusion::common::Result<Option<(NaiveDateTime, i32, &'static str)>> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{
        DataType, Date32Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
        TimestampNanosecondType, TimestampSecondType,
    };
    if array.is_null(row) {
        return Ok(None);
    }
    let out_of_range = || {
        datafusion::common::DataFusionError::External(Box::new(crate::EngineError::new(
            "22008",
            "timestamp out of range",
        )))
    };
    let (naive, zone) = match array.data_type() {
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            let date = chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163)
                .ok_or_else(out_of_range)?;
            (date.and_time(chrono::NaiveTime::MIN), Some("UTC"))
        }
        DataType::Timestamp(unit, tz) => {
            let zone = match tz.as_deref() {
                None => None,
                Some("+00:00" | "UTC" | "Z" | "+00") => Some("UTC"),
                Some(other) => {
                    return Err(datafusion::common::DataFusionError::External(Box::new(
                        crate::EngineError::new(
                            "0A000",
                            format!("to_char of a timestamp in time zone {other} is not supported"),
                        ),
                    )))
                }
            };
            let utc = match unit {
                TimeUnit::Second => chrono::DateTime::from_timestamp(
                    array.as_primitive::<TimestampSecondType>().value(row),
                    0,
                ),
                TimeUnit::Millisecond => chrono::DateTime::from_timestamp_millis(
                    array.as_primitive::<TimestampMillisecondType>().value(row),
                ),
                TimeUnit::Microsecond => chrono::DateTime::from_timestamp_micros(
                    array.as_primitive::<TimestampMicrosecondType>().value(row),
                ),
                TimeUnit::Nanosecond => Some(chrono::DateTime::from_timestamp_nanos(
                    array.as_primitive::<TimestampNanosecondType>().value(row),
                )),
            };
            (utc.ok_or_else(out_of_range)?.naive_utc(), zone)
        }
        other => {
            return Err(datafusion::common::DataFusionError::External(Box::new(
                crate::EngineError::new(
                    "42883",
                    format!(
                        "function to_char({}, text) does not exist",
                        crate::planning::sql_type_name(other)
                    ),
                ),
            )))
        }
    };
    Ok(Some((naive, 0, zone.unwrap_or(""))))
}

impl datafusion::logical_expr::ScalarUDFImpl for ToChar {
    fn name(&self) -> &str {
        "to_char"
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn return_type(
        &self,
        _args: &[datafusion::arrow::datatypes::DataType],
    ) -> datafusion::common::Result<datafusion::arrow::datatypes::DataType> {
        Ok(datafusion::arrow::datatypes::DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> datafusion::common::Result<datafusion::logical_expr::ColumnarValue> {
        use datafusion::arrow::array::{Array, StringBuilder};
        use datafusion::arrow::compute::cast;
        use datafusion::arrow::datatypes::DataType;
        crate::udf_args::evaluate(&args.args, |arrays| {
            let [values, formats] = arrays else {
                return Err(datafusion::common::DataFusionError::Internal(
                    "to_char takes two arguments".into(),
                ));
            };
            let formats = cast(formats, &DataType::Utf8)?;
            let formats = formats
                .as_any()
                .downcast_ref::<datafusion::arrow::array::StringArray>();
            let Some(formats) = formats else {
                return Err(datafusion::common::DataFusionError::Internal(
                    "to_char: format is not text".into(),
                ));
            };
            if crate::number_templates::is_number(values.data_type()) {
                return crate::number_templates::to_char_numbers(values, formats);
            }
            let mut out = StringBuilder::with_capacity(values.len(), values.len() * 16);
            // Formats are almost always one constant: parse each distinct text once.
            let mut parsed: Option<(String, Option<PgDateFormat>)> = None;
            for row in 0..values.len() {
                let Some((time, offset, zone)) = local_time(values.as_ref(), row)? else {
                    out.append_null();
                    continue;
                };
                if formats.is_null(row) {
                    out.append_null();
                    continue;
                }
                let text = formats.value(row);
                if parsed.as_ref().is_none_or(|(t, _)| t != text) {
                    parsed = Some((text.to_owned(), PgDateFormat::parse(text).ok()));
                }
                match parsed.as_ref().and_then(|(_, f)| f.as_ref()) {
                    Some(format) => out.append_value(format.format(time, offset, zone)),
                    // An empty template gives NULL.
                    None => out.append_null(),
                }
            }
            Ok(std::sync::Arc::new(out.finish()) as datafusion::arrow::array::ArrayRef)
        })
    }
}

#[cfg(test)]
#[path = "pg_to_char_cases.rs"]
mod cases;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_cases() {
        let mut failures = Vec::new();
        for &(fmt, local, off, abbrev, expected) in cases::CASES {
            let ts = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S%.f")
                .expect("test timestamp");
            let got = PgDateFormat::parse(fmt)
                .map(|f| f.format(ts, off, abbrev))
                .ok();
            if got.as_deref() != expected {
                failures.push(format!(
                    "{fmt:?} @ {local} {off} {abbrev}: got {got:?}, want {expected:?}"
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
    fn fuzz_never_panics() {
        let alphabet: Vec<char> = "YMDHISUFXTHJQWCRAPBO.,:-\"\\ymdhisftjqwcrapbo19 é日\u{1F600}"
            .chars()
            .collect();
        let ts =
            NaiveDateTime::parse_from_str("2024-02-29 23:59:59.999999", "%Y-%m-%d %H:%M:%S%.f")
                .expect("ts");
        let mut seed = 0x9E3779B97F4A7C15u64;
        for _ in 0..5000 {
            let mut f = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            for k in 0..(seed % 13) as usize {
                f.push(alphabet[((seed >> (k * 4)) as usize) % alphabet.len()]);
            }
            if let Ok(p) = PgDateFormat::parse(&f) {
                let _ = p.format(ts, -(5 * 3600 + 1800), "EST");
            }
        }
    }
}
