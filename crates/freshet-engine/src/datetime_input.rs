//! Postgres' reading of timestamp text where Arrow's differs.
//!
//! `'2024-12-25 10:30:00+02'::timestamp` is 10:30 in Postgres: a
//! `timestamp without time zone` ignores a zone in its input. Arrow converts
//! it to UTC (08:30). Arrow also refuses `'2024-12-25 10:30'` (no seconds),
//! which Postgres accepts. Text cast to `timestamp` or `timestamptz` goes
//! through [`TextToTimestamp`] (wired in by `pg_compat`'s cast rule), which
//! reads `YYYY-MM-DD[( |T)HH:MM[:SS[.frac]]][zone]` itself and hands any
//! other spelling to Arrow's parser as before.
//!
//! Dates are read as Postgres reads them too ([`parse_date_text`], and
//! [`TextToDate`] for casts): `YYYY-M-D`, padded or not, optionally followed
//! by a time of day, is read here and refused with Postgres' SQLSTATEs:
//! 22007 for text that is not a date (`'2024-02-3x'`, which Arrow's parser
//! accepts as the 3rd), 22008 for a well-formed date that does not exist
//! (`'2024-02-30'`). Other spellings go to Arrow's parser, as before.
//!
//! Postgres' other input spellings (DateStyle `ISO, MDY`) are rewritten to
//! that form first ([`other_spelling`]): `12/25/2024`, `Dec 25 2024`,
//! `December 25, 2024` and `25 Dec 2024`, each optionally followed by a time
//! of day, and the special values `epoch`, `now`, `today`, `tomorrow` and
//! `yesterday` (read in UTC, the server's only time zone, when the text is
//! read). `infinity` and `-infinity` have no Arrow representation and are
//! refused (0A000) rather than read as some finite value.
//!
//! `now`, `today`, `tomorrow` and `yesterday` are *relative*: their value
//! depends on when they are read. A dynamic table whose query reads one as a
//! literal is refreshed in full, as one calling `current_date` is
//! ([`relative_literal`] finds them), so its rows never keep the date of the
//! refresh that happened to add them.
//!
//! INSERT (`dml::conform`) and COPY read text for date and timestamp
//! columns through the same functions ([`parse_text_array`]), so a value
//! means the same whichever way it arrives.

use std::sync::Arc;

use chrono::{NaiveDate, NaiveTime};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Builder, StringArray, TimestampMicrosecondBuilder,
};
use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::common::ScalarValue;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::expr::{Cast, TryCast};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::EngineError;

/// `freshet_text_to_timestamp(text)` (wall-clock time, any zone in the text
/// ignored) or `freshet_text_to_timestamptz(text)` (the instant, in UTC).
/// Both return a microsecond timestamp without zone; the caller casts it to
/// the target type.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct TextToTimestamp {
    zoned: bool,
    signature: Signature,
}

/// The function for `timestamp` (`zoned = false`) or `timestamptz` targets.
pub(crate) fn text_to_timestamp_udf(zoned: bool) -> Arc<ScalarUDF> {
    static PLAIN: std::sync::OnceLock<Arc<ScalarUDF>> = std::sync::OnceLock::new();
    static ZONED: std::sync::OnceLock<Arc<ScalarUDF>> = std::sync::OnceLock::new();
    let cell = if zoned { &ZONED } else { &PLAIN };
    cell.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(TextToTimestamp {
            zoned,
            signature: Signature::any(1, Volatility::Immutable),
        }))
    })
    .clone()
}

impl ScalarUDFImpl for TextToTimestamp {
    fn name(&self) -> &str {
        if self.zoned {
            "freshet_text_to_timestamptz"
        } else {
            "freshet_text_to_timestamp"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Microsecond, None))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [value] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(format!(
                "{} takes one argument",
                self.name()
            )));
        };
        let scalar = matches!(value, ColumnarValue::Scalar(_));
        let array = value.to_array(args.number_rows)?;
        let text = datafusion::arrow::compute::cast(&array, &DataType::Utf8)?;
        let result = timestamps(text.as_string::<i32>(), self.zoned)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        if scalar {
            Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&result, 0)?,
            ))
        } else {
            Ok(ColumnarValue::Array(result))
        }
    }
}

/// `freshet_text_to_date(text)`: Postgres' reading of date text (see the
/// module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct TextToDate {
    signature: Signature,
}

/// The function for text cast to `date`.
pub(crate) fn text_to_date_udf() -> Arc<ScalarUDF> {
    static UDF: std::sync::OnceLock<Arc<ScalarUDF>> = std::sync::OnceLock::new();
    UDF.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(TextToDate {
            signature: Signature::any(1, Volatility::Immutable),
        }))
    })
    .clone()
}

impl ScalarUDFImpl for TextToDate {
    fn name(&self) -> &str {
        "freshet_text_to_date"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Date32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [value] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(
                "freshet_text_to_date takes one argument".into(),
            ));
        };
        let scalar = matches!(value, ColumnarValue::Scalar(_));
        let array = value.to_array(args.number_rows)?;
        let text = datafusion::arrow::compute::cast(&array, &DataType::Utf8)?;
        let result =
            dates(text.as_string::<i32>()).map_err(|e| DataFusionError::External(Box::new(e)))?;
        if scalar {
            Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&result, 0)?,
            ))
        } else {
            Ok(ColumnarValue::Array(result))
        }
    }
}

/// Reads a text column as dates (see the module docs).
fn dates(text: &StringArray) -> Result<ArrayRef, EngineError> {
    let mut out = Date32Builder::with_capacity(text.len());
    for value in text.iter() {
        match value {
            None => out.append_null(),
            Some(s) => out.append_value(parse_date_text(s)?),
        }
    }
    Ok(Arc::new(out.finish()))
}

/// Reads a text column as timestamps (see the module docs).
fn timestamps(text: &StringArray, zoned: bool) -> Result<ArrayRef, EngineError> {
    let mut out = TimestampMicrosecondBuilder::with_capacity(text.len());
    for value in text.iter() {
        match value {
            None => out.append_null(),
            Some(s) => {
                let type_name = if zoned {
                    "timestamp with time zone"
                } else {
                    "timestamp"
                };
                let iso = other_spelling(s.trim(), type_name)?;
                let text = iso.as_deref().unwrap_or(s);
                match parse_timestamp(text, zoned) {
                    Some(micros) => out.append_value(micros),
                    None => out.append_value(
                        arrow_timestamp(text, zoned).map_err(crate::planning::map_df_error)?,
                    ),
                }
            }
        }
    }
    Ok(Arc::new(out.finish()))
}

/// A text column read for a `date` or `timestamp[tz]` column the way a cast
/// reads it, or `None` when `target` is another type (or `array` is not
/// text).
pub(crate) fn parse_text_array(
    array: &ArrayRef,
    target: &DataType,
) -> Option<Result<ArrayRef, EngineError>> {
    let text = match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().clone(),
        DataType::Utf8View | DataType::LargeUtf8 => {
            let cast = datafusion::arrow::compute::cast(array, &DataType::Utf8).ok()?;
            cast.as_string::<i32>().clone()
        }
        _ => return None,
    };
    match target {
        DataType::Date32 => Some(dates(&text)),
        DataType::Timestamp(TimeUnit::Microsecond, zone) => {
            Some(timestamps(&text, zone.is_some()).and_then(|micros| {
                datafusion::arrow::compute::cast(&micros, target)
                    .map_err(|e| EngineError::new("22007", e.to_string()))
            }))
        }
        _ => None,
    }
}

/// Days since 1970-01-01 for date text, read as Postgres reads it: 22007
/// for text that is not a date, 22008 for a date that does not exist.
pub fn parse_date_text(text: &str) -> Result<i32, EngineError> {
    let invalid = || {
        EngineError::new(
            "22007",
            format!("invalid input syntax for type date: \"{text}\""),
        )
    };
    let trimmed = text.trim();
    if let Some(iso) = other_spelling(trimmed, "date")? {
        return parse_date_text(&iso).map_err(|e| match e.sqlstate() {
            "22008" => EngineError::new(
                "22008",
                format!("date/time field value out of range: \"{text}\""),
            ),
            _ => invalid(),
        });
    }
    let date_len = trimmed.find([' ', 'T', 't']).unwrap_or(trimmed.len());
    let (date, rest) = trimmed.split_at(date_len);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut fields = date.splitn(3, '-');
    let (Some(year), Some(month), Some(day)) = (fields.next(), fields.next(), fields.next()) else {
        return arrow_date(text).ok_or_else(invalid);
    };
    if !digits(year) || !digits(month) {
        return arrow_date(text).ok_or_else(invalid);
    }
    if !digits(day) || year.len() > 6 || month.len() > 2 || day.len() > 2 {
        return Err(invalid());
    }
    // A time of day may follow; it must be one.
    let rest = rest.trim_start_matches([' ', 'T', 't']);
    if !rest.is_empty() && parse_timestamp(&format!("2000-01-01 {rest}"), false).is_none() {
        return Err(invalid());
    }
    let (Ok(year), Ok(month), Ok(day)) = (year.parse(), month.parse(), day.parse()) else {
        return Err(invalid());
    };
    let date = NaiveDate::from_ymd_opt(year, month, day).ok_or_else(|| {
        EngineError::new(
            "22008",
            format!("date/time field value out of range: \"{text}\""),
        )
    })?;
    // NaiveDate's default is 1970-01-01.
    i32::try_from(date.signed_duration_since(NaiveDate::default()).num_days())
        .map_err(|_| invalid())
}

/// The input spellings whose value depends on when they are read.
const RELATIVE: [&str; 4] = ["now", "today", "tomorrow", "yesterday"];

/// The text of a relative date or time literal (`'today'`, `'now'`, …; see
/// the module docs) that `expr` reads: a cast of such a literal to a date or
/// timestamp, as planned or as rewritten into [`TextToDate`] and
/// [`TextToTimestamp`] by `pg_compat`'s cast rule. Implicit casts appear
/// only once a plan is analyzed.
pub(crate) fn relative_literal(expr: &Expr) -> Option<String> {
    let mut argument = match expr {
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field })
            if matches!(
                field.data_type(),
                DataType::Date32 | DataType::Timestamp(_, _)
            ) =>
        {
            expr.as_ref()
        }
        Expr::ScalarFunction(f)
            if f.func.inner().downcast_ref::<TextToDate>().is_some()
                || f.func.inner().downcast_ref::<TextToTimestamp>().is_some() =>
        {
            f.args.first()?
        }
        _ => return None,
    };
    while let Expr::Cast(Cast { expr, .. }) = argument {
        argument = expr.as_ref();
    }
    match argument {
        Expr::Literal(
            ScalarValue::Utf8(Some(text))
            | ScalarValue::Utf8View(Some(text))
            | ScalarValue::LargeUtf8(Some(text)),
            _,
        ) if RELATIVE.contains(&text.trim().to_ascii_lowercase().as_str()) => Some(text.clone()),
        _ => None,
    }
}

/// `text` (trimmed) in the `YYYY-MM-DD[ time]` form when it is one of
/// Postgres' other spellings of a date or timestamp (see the module docs),
/// `None` when it is not; an error for the infinities, which cannot be held.
fn other_spelling(text: &str, type_name: &str) -> Result<Option<String>, EngineError> {
    let lower = text.to_ascii_lowercase();
    let now = chrono::Utc::now().naive_utc();
    let day = |offset: i64| {
        (now.date() + chrono::Duration::days(offset))
            .format("%Y-%m-%d")
            .to_string()
    };
    match lower.as_str() {
        "epoch" => return Ok(Some("1970-01-01".to_string())),
        "now" => return Ok(Some(now.format("%Y-%m-%d %H:%M:%S%.6f").to_string())),
        "today" => return Ok(Some(day(0))),
        "tomorrow" => return Ok(Some(day(1))),
        "yesterday" => return Ok(Some(day(-1))),
        "infinity" | "+infinity" | "-infinity" => {
            return Err(EngineError::new(
                "0A000",
                format!("infinite values of type {type_name} are not supported: \"{text}\""),
            ))
        }
        _ => {}
    }
    let tokens: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .collect();
    let month = |t: &str| -> Option<u32> {
        const NAMES: [&str; 12] = [
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        let t = t.trim_end_matches('.').to_ascii_lowercase();
        const FULL: [&str; 12] = [
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ];
        let i = NAMES
            .iter()
            .position(|n| *n == t)
            .or_else(|| FULL.iter().position(|n| *n == t))
            .or_else(|| (t == "sept").then_some(8))?;
        Some(i as u32 + 1)
    };
    let number = |t: &str| -> Option<u32> {
        (!t.is_empty() && t.len() <= 4 && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let (year, month, day, used) = match tokens.as_slice() {
        // MM/DD/YYYY (DateStyle MDY)
        [first, ..] if first.matches('/').count() == 2 => {
            let mut parts = first.split('/');
            let (Some(m), Some(d), Some(y)) = (parts.next(), parts.next(), parts.next()) else {
                return Ok(None);
            };
            match (number(m), number(d), number(y)) {
                (Some(m), Some(d), Some(y)) if y.to_string().len() >= 3 || y > 99 => (y, m, d, 1),
                _ => return Ok(None),
            }
        }
        // Mon DD YYYY, Month DD, YYYY
        [m, d, y, ..] if month(m).is_some() && number(d).is_some() && number(y).is_some() => (
            number(y).unwrap_or(0),
            month(m).unwrap_or(0),
            number(d).unwrap_or(0),
            3,
        ),
        // DD Mon YYYY
        [d, m, y, ..] if month(m).is_some() && number(d).is_some() && number(y).is_some() => (
            number(y).unwrap_or(0),
            month(m).unwrap_or(0),
            number(d).unwrap_or(0),
            3,
        ),
        _ => return Ok(None),
    };
    if year < 100 {
        // Two-digit years are not read: Postgres' century guessing is not
        // worth a silently different date.
        return Ok(None);
    }
    let rest = tokens[used..].join(" ");
    Ok(Some(if rest.is_empty() {
        format!("{year:04}-{month:02}-{day:02}")
    } else {
        format!("{year:04}-{month:02}-{day:02} {rest}")
    }))
}

/// Arrow's reading of date text this module does not recognize.
fn arrow_date(text: &str) -> Option<i32> {
    use datafusion::arrow::datatypes::Date32Type;
    let array = StringArray::from(vec![text]);
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let parsed = cast_with_options(&array, &DataType::Date32, &options).ok()?;
    Some(parsed.as_primitive::<Date32Type>().value(0))
}

/// Arrow's reading of text this module does not recognize ('2024-12-25T10:30:00Z'
/// forms and the like), as before; its failure becomes Postgres' 22007.
fn arrow_timestamp(text: &str, zoned: bool) -> DfResult<i64> {
    let target = if zoned {
        DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
    } else {
        DataType::Timestamp(TimeUnit::Microsecond, None)
    };
    let array = datafusion::arrow::array::StringArray::from(vec![text]);
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let parsed = cast_with_options(&array, &target, &options).map_err(|_| {
        DataFusionError::External(Box::new(EngineError::new(
            "22007",
            format!(
                "invalid input syntax for type {}: \"{text}\"",
                if zoned {
                    "timestamp with time zone"
                } else {
                    "timestamp"
                }
            ),
        )))
    })?;
    Ok(parsed.as_primitive::<TimestampMicrosecondType>().value(0))
}

/// Reads `YYYY-MM-DD[( |T)HH:MM[:SS[.frac]]][ ][zone]`, zone being `Z`,
/// `UTC` or `±HH[[:]MM]`, into microseconds since the epoch: the wall-clock
/// time for a plain timestamp (zone ignored, as Postgres does), the UTC
/// instant for a zoned one. `None` for anything else.
pub(crate) fn parse_timestamp(text: &str, zoned: bool) -> Option<i64> {
    let text = text.trim();
    let date_len = text.find([' ', 'T', 't']).unwrap_or(text.len());
    let date = NaiveDate::parse_from_str(&text[..date_len], "%Y-%m-%d").ok()?;
    let rest = text[date_len..].trim_start_matches([' ', 'T', 't']);
    let time_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.'))
        .unwrap_or(rest.len());
    let (clock, zone) = rest.split_at(time_len);
    let time = if clock.is_empty() {
        NaiveTime::MIN
    } else {
        let colons = clock.matches(':').count();
        match colons {
            1 => NaiveTime::parse_from_str(clock, "%H:%M").ok()?,
            2 => NaiveTime::parse_from_str(clock, "%H:%M:%S%.f").ok()?,
            _ => return None,
        }
    };
    let offset_seconds = zone_offset_seconds(zone.trim())?;
    let wall = date.and_time(time).and_utc();
    // Digits past the microsecond round, as PostgreSQL rounds them
    // (`…00.9999996` is the next second), rather than being cut off.
    let round_up = i64::from(wall.timestamp_subsec_nanos() % 1_000 >= 500);
    let wall = wall.timestamp_micros().checked_add(round_up)?;
    if zoned {
        wall.checked_sub(offset_seconds.checked_mul(1_000_000)?)
    } else {
        Some(wall)
    }
}

/// `""`, `Z`, `UTC`, `±HH`, `±HHMM`, `±HH:MM` as seconds east of UTC.
fn zone_offset_seconds(zone: &str) -> Option<i64> {
    if zone.is_empty() || zone.eq_ignore_ascii_case("z") || zone.eq_ignore_ascii_case("utc") {
        return Some(0);
    }
    let (sign, digits) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    let digits: String = digits.chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (hours, minutes) = match digits.len() {
        1 | 2 => (digits.parse::<i64>().ok()?, 0),
        4 => (
            digits[..2].parse::<i64>().ok()?,
            digits[2..].parse::<i64>().ok()?,
        ),
        _ => return None,
    };
    if hours > 15 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(s: &str) -> i64 {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
            .timestamp_micros()
    }

    #[test]
    fn plain_timestamps_ignore_the_zone() {
        let at = micros("2024-12-25 10:30:00");
        assert_eq!(parse_timestamp("2024-12-25 10:30:00+02", false), Some(at));
        assert_eq!(
            parse_timestamp("2024-12-25 10:30:00-05:30", false),
            Some(at)
        );
        assert_eq!(parse_timestamp("2024-12-25 10:30", false), Some(at));
        assert_eq!(parse_timestamp("2024-12-25T10:30:00Z", false), Some(at));
        assert_eq!(
            parse_timestamp("2024-12-25 10:30:00.25", false),
            Some(at + 250_000)
        );
        assert_eq!(
            parse_timestamp("2024-12-25", false),
            Some(micros("2024-12-25 00:00:00"))
        );
        // Past the microsecond, PostgreSQL rounds.
        assert_eq!(
            parse_timestamp("2024-12-25 10:30:00.1234567", false),
            Some(at + 123_457)
        );
        assert_eq!(
            parse_timestamp("2024-12-25 10:29:59.9999996", false),
            Some(at)
        );
        assert_eq!(
            parse_timestamp("2024-12-25 10:30:00.1234564", false),
            Some(at + 123_456)
        );
    }

    #[test]
    fn zoned_timestamps_convert_to_utc() {
        assert_eq!(
            parse_timestamp("2024-12-25 10:30:00+02", true),
            Some(micros("2024-12-25 08:30:00"))
        );
        assert_eq!(
            parse_timestamp("2024-12-25 10:30-0130", true),
            Some(micros("2024-12-25 12:00:00"))
        );
        assert_eq!(
            parse_timestamp("2024-12-25 10:30", true),
            Some(micros("2024-12-25 10:30:00"))
        );
    }

    #[test]
    fn other_text_is_left_to_arrow() {
        assert_eq!(parse_timestamp("yesterday", false), None);
        assert_eq!(parse_timestamp("2024-12-25 10", false), None);
        assert_eq!(
            parse_timestamp("2024-12-25 10:30:00 Europe/Oslo", false),
            None
        );
        assert_eq!(parse_timestamp("2024-13-25 10:30", false), None);
    }

    #[test]
    fn other_spellings_of_dates_and_timestamps() {
        let days = |s: &str| parse_date_text(s).map_err(|e| e.sqlstate().to_string());
        let christmas = days("2024-12-25");
        for text in [
            "12/25/2024",
            "Dec 25 2024",
            "December 25, 2024",
            "25 Dec 2024",
            "dec 25 2024 10:30",
        ] {
            assert_eq!(days(text), christmas, "{text}");
        }
        assert_eq!(days("epoch"), Ok(0));
        assert_eq!(days("13/25/2024"), Err("22008".into()));
        assert_eq!(days("infinity"), Err("0A000".into()));
        assert_eq!(days("Dec 25"), Err("22007".into()));
        assert_eq!(
            other_spelling("12/25/2024 10:30:00", "timestamp")
                .ok()
                .flatten(),
            Some("2024-12-25 10:30:00".to_string())
        );
        assert_eq!(other_spelling("2024-12-25", "date").ok().flatten(), None);
    }

    #[test]
    fn dates_as_postgres_reads_them() {
        let days = |s: &str| parse_date_text(s).map_err(|e| e.sqlstate().to_string());
        assert_eq!(days("1970-01-02"), Ok(1));
        assert_eq!(days(" 1970-1-2 "), Ok(1));
        assert_eq!(days("1970-01-02 10:30:00"), Ok(1));
        assert_eq!(days("2024-02-3x"), Err("22007".into()));
        assert_eq!(days("2024-02-30"), Err("22008".into()));
        assert_eq!(days("2024-13-01"), Err("22008".into()));
        assert_eq!(days("2024-02-03 nonsense"), Err("22007".into()));
        assert_eq!(days("not a date"), Err("22007".into()));
    }
}
