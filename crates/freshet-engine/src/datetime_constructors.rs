//! `make_date`, `make_time`, `make_timestamp`, `make_timestamptz` and
//! `make_interval`, as PostgreSQL computes them.
//!
//! Why this exists: DataFusion's `make_date` reads a negative year as an
//! astronomical one, so `make_date(-44, 3, 15)` was 15 March 45 BC (in
//! PostgreSQL, 44 BC), and year 0 was 1 BC where PostgreSQL has no year 0
//! (22008): wrong dates without an error. Its `make_time` took whole seconds
//! only, and the other three did not exist.
//!
//! PostgreSQL's rules, kept here:
//! - a negative year is that year BC; year 0, a month outside 1–12 or a day
//!   the month does not have is 22008 `date field value out of range:
//!   y-mm-dd`; a date before 24 November 4714 BC is 22008 `date out of
//!   range`;
//! - hours 0–24, minutes 0–59, seconds 0–60 rounded to the microsecond
//!   (halves to even), and at most `24:00:00` in all, else 22008 `time
//!   field value out of range`;
//! - `make_timestamptz` reads its wall-clock time in the session's time
//!   zone (always UTC in Freshet) or in the zone given, where an offset
//!   written with a sign is ISO 8601's (`'+02'` is two hours *east*, unlike
//!   `AT TIME ZONE`'s POSIX reading) and a name is a zone name;
//! - `make_interval(years, months, weeks, days, hours, mins, secs)`, each
//!   0 when left out (named arguments, `make_interval(days => 3)`, are
//!   filled in by `freshet-sql`). Where PostgreSQL 15 wraps a field that
//!   overflows, Freshet raises 22008 `interval out of range`.
//!
//! Freshet's own limits: dates and timestamps after year 262142 (chrono's
//! range) are 22008 `date out of range` or `timestamp out of range`, and
//! an interval's time part holds about 292 years (nanoseconds in 64 bits).

use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, IntervalMonthDayNanoArray, Time64MicrosecondArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{
    DataType, Float64Type, Int64Type, IntervalMonthDayNano, IntervalUnit, TimeUnit,
};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::at_time_zone::Zone;
use crate::EngineError;

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// Registers the five functions (in place of DataFusion's `make_date` and
/// `make_time`).
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) -> DfResult<()> {
    for kind in [
        Kind::Date,
        Kind::Time,
        Kind::Timestamp,
        Kind::TimestampTz,
        Kind::Interval,
    ] {
        let signature = Signature::user_defined(Volatility::Immutable);
        let signature = if kind == Kind::Interval {
            signature.with_parameter_names(freshet_sql::MAKE_INTERVAL_PARAMETERS.to_vec())?
        } else {
            signature
        };
        ctx.register_udf(ScalarUDF::new_from_impl(Constructor { kind, signature }));
    }
    Ok(())
}

/// Which function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Interval,
}

/// What a parameter takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parameter {
    /// An integer (read as `bigint`, checked to fit `integer`).
    Int,
    /// Seconds, as `double precision`.
    Seconds,
    /// A time zone name or offset.
    Zone,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Date => "make_date",
            Kind::Time => "make_time",
            Kind::Timestamp => "make_timestamp",
            Kind::TimestampTz => "make_timestamptz",
            Kind::Interval => "make_interval",
        }
    }

    /// The parameters it takes, and how many of them may be left out.
    fn parameters(self) -> (&'static [Parameter], usize) {
        use Parameter::*;
        match self {
            Kind::Date => (&[Int, Int, Int], 0),
            Kind::Time => (&[Int, Int, Seconds], 0),
            Kind::Timestamp => (&[Int, Int, Int, Int, Int, Seconds], 0),
            Kind::TimestampTz => (&[Int, Int, Int, Int, Int, Seconds, Zone], 1),
            Kind::Interval => (&[Int, Int, Int, Int, Int, Int, Seconds], 7),
        }
    }

    fn output(self) -> DataType {
        match self {
            Kind::Date => DataType::Date32,
            Kind::Time => DataType::Time64(TimeUnit::Microsecond),
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            Kind::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Constructor {
    kind: Kind,
    signature: Signature,
}

fn wrong_arguments(kind: Kind, types: &[DataType]) -> DataFusionError {
    let types: Vec<String> = types
        .iter()
        .map(|t| {
            crate::types::display_type(&datafusion::arrow::datatypes::Field::new(
                "",
                t.clone(),
                true,
            ))
        })
        .collect();
    EngineError::new(
        "42883",
        format!(
            "function {}({}) does not exist",
            kind.name(),
            types.join(", ")
        ),
    )
    .into()
}

impl ScalarUDFImpl for Constructor {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let (parameters, optional) = self.kind.parameters();
        if arg_types.len() > parameters.len() || arg_types.len() + optional < parameters.len() {
            return Err(wrong_arguments(self.kind, arg_types));
        }
        parameters
            .iter()
            .zip(arg_types)
            .map(|(parameter, given)| {
                // Text is read as the number it spells, as PostgreSQL reads
                // an untyped literal (`make_interval(secs => '1.5')`).
                let text = matches!(
                    given,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
                );
                let fits = match parameter {
                    Parameter::Int => given.is_integer() || text,
                    Parameter::Seconds => given.is_numeric() || text,
                    Parameter::Zone => text,
                };
                match (fits, parameter) {
                    (false, _) => Err(wrong_arguments(self.kind, arg_types)),
                    (true, Parameter::Int) => Ok(DataType::Int64),
                    (true, Parameter::Seconds) => Ok(DataType::Float64),
                    (true, Parameter::Zone) => Ok(DataType::Utf8),
                }
            })
            .collect()
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(self.kind.output())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let kind = self.kind;
        crate::udf_args::evaluate(&args.args, |arrays| {
            construct(kind, arrays).map_err(DataFusionError::from)
        })
    }
}

/// One row's arguments: integers, seconds and a zone, NULL if any is.
struct Row<'a> {
    ints: Vec<i64>,
    seconds: f64,
    zone: Option<&'a str>,
}

fn construct(kind: Kind, arrays: &[ArrayRef]) -> Result<ArrayRef, EngineError> {
    let (parameters, _) = kind.parameters();
    let rows = arrays.first().map_or(1, |a| a.len());
    let mut values: Vec<Option<i64>> = Vec::with_capacity(rows);
    let mut intervals: Vec<Option<IntervalMonthDayNano>> = Vec::new();
    for row in 0..rows {
        let mut args = Row {
            ints: Vec::with_capacity(6),
            seconds: 0.0,
            zone: None,
        };
        let mut null = false;
        for (parameter, array) in parameters.iter().zip(arrays) {
            if array.is_null(row) {
                null = true;
                break;
            }
            match parameter {
                Parameter::Int => {
                    let value = array
                        .as_primitive_opt::<Int64Type>()
                        .ok_or_else(internal)?
                        .value(row);
                    if i32::try_from(value).is_err() {
                        return Err(EngineError::new("22003", "integer out of range"));
                    }
                    args.ints.push(value)
                }
                Parameter::Seconds => {
                    args.seconds = array
                        .as_primitive_opt::<Float64Type>()
                        .ok_or_else(internal)?
                        .value(row)
                }
                Parameter::Zone => {
                    args.zone = Some(
                        array
                            .as_string_opt::<i32>()
                            .ok_or_else(internal)?
                            .value(row),
                    )
                }
            }
        }
        if kind == Kind::Interval {
            // Parameters left out are 0.
            args.ints.resize(6, 0);
            intervals.push(if null { None } else { Some(interval(&args)?) });
            continue;
        }
        values.push(if null {
            None
        } else {
            Some(match kind {
                Kind::Date => i64::from(date(args.ints[0], args.ints[1], args.ints[2])?),
                Kind::Time => time(args.ints[0], args.ints[1], args.seconds)?,
                Kind::Timestamp | Kind::TimestampTz => {
                    let wall = timestamp(&args)?;
                    match args.zone {
                        Some(zone) if kind == Kind::TimestampTz => {
                            read_zone(zone)?.instant_of(wall)?
                        }
                        _ => wall,
                    }
                }
                Kind::Interval => 0,
            })
        });
    }
    Ok(match kind {
        Kind::Date => Arc::new(
            values
                .into_iter()
                .map(|v| v.and_then(|d| i32::try_from(d).ok()))
                .collect::<Date32Array>(),
        ),
        Kind::Time => Arc::new(Time64MicrosecondArray::from(values)),
        Kind::Timestamp => Arc::new(TimestampMicrosecondArray::from(values)),
        Kind::TimestampTz => {
            Arc::new(TimestampMicrosecondArray::from(values).with_timezone("+00:00"))
        }
        Kind::Interval => Arc::new(IntervalMonthDayNanoArray::from(intervals)),
    })
}

fn internal() -> EngineError {
    EngineError::new(
        "XX000",
        "a date/time constructor got an argument of the wrong type",
    )
}

/// A date's days since 1970-01-01 from PostgreSQL's year (negative for BC),
/// month and day.
fn date(year: i64, month: i64, day: i64) -> Result<i32, EngineError> {
    // There is no year 0: -1 is 1 BC, astronomical year 0.
    let year = match year {
        0 => return Err(field_out_of_range(year, month, day)),
        y if y < 0 => y + 1,
        y => y,
    };
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(field_out_of_range(year, month, day));
    }
    let out_of_range = || {
        EngineError::new(
            "22008",
            format!("date out of range: {year}-{month:02}-{day:02}"),
        )
    };
    // 24 November 4714 BC (Julian day 0) is the first date PostgreSQL has.
    if (year, month, day) < (-4713, 11, 24) {
        return Err(out_of_range());
    }
    let date = i32::try_from(year)
        .ok()
        .and_then(|y| NaiveDate::from_ymd_opt(y, month as u32, day as u32))
        .ok_or_else(out_of_range)?;
    Ok(date.num_days_from_ce() - EPOCH_DAYS_FROM_CE)
}

/// How many days `month` (1–12) has in the (astronomical, proleptic
/// Gregorian) `year`.
fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// 1970-01-01's day number counted from 1 January 1 AD (day 1).
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

fn field_out_of_range(year: i64, month: i64, day: i64) -> EngineError {
    EngineError::new(
        "22008",
        format!("date field value out of range: {year}-{month:02}-{day:02}"),
    )
}

/// Microseconds since midnight, PostgreSQL's `float_time_overflows` rules.
fn time(hour: i64, minute: i64, seconds: f64) -> Result<i64, EngineError> {
    let overflow = || {
        EngineError::new(
            "22008",
            format!(
                "time field value out of range: {hour}:{minute:02}:{}",
                seconds_text(seconds)
            ),
        )
    };
    if !(0..=24).contains(&hour) || !(0..60).contains(&minute) || seconds.is_nan() {
        return Err(overflow());
    }
    let micros = (seconds * MICROS_PER_SECOND as f64).round_ties_even();
    if !(0.0..=60.0 * MICROS_PER_SECOND as f64).contains(&micros) {
        return Err(overflow());
    }
    let total = (hour * 60 + minute) * 60 * MICROS_PER_SECOND + micros as i64;
    if total > MICROS_PER_DAY {
        return Err(overflow());
    }
    Ok(total)
}

/// Seconds as C's `%02g` prints them (six significant digits), as
/// PostgreSQL's messages show them.
fn seconds_text(seconds: f64) -> String {
    if seconds.is_nan() {
        return "NaN".into();
    }
    if seconds.is_infinite() {
        return if seconds > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        }
        .into();
    }
    let exponent = if seconds == 0.0 {
        0
    } else {
        seconds.abs().log10().floor() as i32
    };
    let text = if !(-4..6).contains(&exponent) {
        let mantissa = format!("{:.5e}", seconds);
        // 1.50000e7 → 1.5e+07
        match mantissa.split_once('e') {
            Some((digits, exp)) => {
                let digits = digits.trim_end_matches('0').trim_end_matches('.');
                let exp: i32 = exp.parse().unwrap_or(0);
                format!(
                    "{digits}e{}{:02}",
                    if exp < 0 { '-' } else { '+' },
                    exp.abs()
                )
            }
            None => mantissa,
        }
    } else {
        let decimals = (5 - exponent).max(0) as usize;
        let fixed = format!("{seconds:.decimals$}");
        if fixed.contains('.') {
            fixed
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string()
        } else {
            fixed
        }
    };
    if text.len() < 2 {
        format!("0{text}")
    } else {
        text
    }
}

/// A wall-clock timestamp (microseconds since 1970) from `make_timestamp`'s
/// arguments.
fn timestamp(args: &Row<'_>) -> Result<i64, EngineError> {
    let [year, month, day, hour, minute] = args.ints[..] else {
        return Err(internal());
    };
    let days = date(year, month, day)?;
    let time = time(hour, minute, args.seconds)?;
    i64::from(days)
        .checked_mul(MICROS_PER_DAY)
        .and_then(|d| d.checked_add(time))
        .filter(|micros| chrono::DateTime::from_timestamp_micros(*micros).is_some())
        .ok_or_else(|| {
            EngineError::new(
                "22008",
                format!(
                    "timestamp out of range: {year}-{month:02}-{day:02} {hour}:{minute:02}:{}",
                    seconds_text(args.seconds)
                ),
            )
        })
}

/// `make_timestamptz`'s zone: a signed offset as ISO 8601 writes it (hours
/// east), or a zone name.
fn read_zone(text: &str) -> Result<Zone, EngineError> {
    if text.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(EngineError::new(
            "22023",
            format!("invalid input syntax for type numeric time zone: \"{text}\""),
        ));
    }
    match iso_offset_east(text) {
        Offset::East(east) => chrono::FixedOffset::east_opt(east)
            .map(Zone::Fixed)
            .ok_or_else(|| {
                EngineError::new(
                    "22023",
                    format!("numeric time zone \"{text}\" out of range"),
                )
            }),
        Offset::OutOfRange => Err(EngineError::new(
            "22023",
            format!("numeric time zone \"{text}\" out of range"),
        )),
        Offset::Unsigned => Zone::parse(text),
    }
}

/// What a zone's text says as a signed offset.
#[derive(Debug, PartialEq, Eq)]
enum Offset {
    /// Seconds east of Greenwich.
    East(i32),
    /// An offset past 15 hours, or minutes or seconds past 59.
    OutOfRange,
    /// Not written as a signed offset.
    Unsigned,
}

/// `±H[H][:MM[:SS]]`, or `±HHMM` run together, as PostgreSQL reads a
/// numeric zone.
fn iso_offset_east(text: &str) -> Offset {
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => return Offset::Unsigned,
    };
    let number = |field: &str| -> Option<i64> {
        if field.is_empty() || field.len() > 9 || !field.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        field.parse().ok()
    };
    let fields: Vec<&str> = rest.split(':').collect();
    let parsed: Option<Vec<i64>> = fields.iter().map(|f| number(f)).collect();
    let (hours, minutes, seconds) = match parsed.as_deref() {
        Some([run]) if rest.len() > 2 => (run / 100, run % 100, 0),
        Some([hours]) => (*hours, 0, 0),
        Some([hours, minutes]) => (*hours, *minutes, 0),
        Some([hours, minutes, seconds]) => (*hours, *minutes, *seconds),
        _ => return Offset::Unsigned,
    };
    if hours > 15 || minutes > 59 || seconds > 59 {
        return Offset::OutOfRange;
    }
    Offset::East(sign * (hours * 3600 + minutes * 60 + seconds) as i32)
}

/// `make_interval(years, months, weeks, days, hours, mins, secs)`.
fn interval(args: &Row<'_>) -> Result<IntervalMonthDayNano, EngineError> {
    let out_of_range = || EngineError::new("22008", "interval out of range");
    let [years, months, weeks, days, hours, minutes] = args.ints[..] else {
        return Err(internal());
    };
    if !args.seconds.is_finite() {
        return Err(out_of_range());
    }
    let months = years
        .checked_mul(12)
        .and_then(|m| m.checked_add(months))
        .and_then(|m| i32::try_from(m).ok())
        .ok_or_else(out_of_range)?;
    let days = weeks
        .checked_mul(7)
        .and_then(|d| d.checked_add(days))
        .and_then(|d| i32::try_from(d).ok())
        .ok_or_else(out_of_range)?;
    let seconds = (args.seconds * MICROS_PER_SECOND as f64).round_ties_even();
    if !(i64::MIN as f64..i64::MAX as f64).contains(&seconds) {
        return Err(out_of_range());
    }
    let micros = hours
        .checked_mul(3600 * MICROS_PER_SECOND)
        .and_then(|h| h.checked_add(minutes.checked_mul(60 * MICROS_PER_SECOND)?))
        .and_then(|t| t.checked_add(seconds as i64))
        .and_then(|t| t.checked_mul(1000))
        .ok_or_else(out_of_range)?;
    Ok(IntervalMonthDayNano::new(months, days, micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years_before_christ_and_year_zero() {
        let days = |y, m, d| date(y, m, d).map_err(|e| e.to_string());
        // 1970-01-01 is day 0; 44 BC is astronomical year -43.
        assert_eq!(days(1970, 1, 1), Ok(0));
        let ides = NaiveDate::from_ymd_opt(-43, 3, 15).map(|d| d.num_days_from_ce());
        assert_eq!(days(-44, 3, 15).ok().map(|d| d + EPOCH_DAYS_FROM_CE), ides);
        assert!(days(0, 3, 15).unwrap_err().contains("0-03-15"));
        assert!(days(2023, 2, 29).unwrap_err().contains("2023-02-29"));
        assert!(days(2024, 13, 1).is_err());
        assert!(days(-4714, 11, 24).is_ok());
        assert!(days(-4714, 11, 23)
            .unwrap_err()
            .contains("date out of range"));
    }

    #[test]
    fn times_up_to_midnight() {
        assert_eq!(time(24, 0, 0.0).ok(), Some(MICROS_PER_DAY));
        assert_eq!(time(23, 59, 60.0).ok(), Some(MICROS_PER_DAY));
        assert_eq!(time(23, 59, 59.9999999).ok(), Some(MICROS_PER_DAY));
        assert_eq!(time(1, 2, 3.0000005).ok(), Some(3_723_000_000));
        assert_eq!(time(1, 2, 3.0000015).ok(), Some(3_723_000_002));
        let message = |h, m, s| time(h, m, s).unwrap_err().to_string();
        assert_eq!(
            message(24, 0, 0.5),
            "time field value out of range: 24:00:0.5"
        );
        assert_eq!(
            message(1, 60, 0.0),
            "time field value out of range: 1:60:00"
        );
        assert_eq!(
            message(1, 0, -1.0),
            "time field value out of range: 1:00:-1"
        );
        assert_eq!(
            message(1, 0, f64::NAN),
            "time field value out of range: 1:00:NaN"
        );
    }

    #[test]
    fn offsets_are_iso_8601() {
        assert_eq!(iso_offset_east("+02"), Offset::East(7200));
        assert_eq!(iso_offset_east("-03:30"), Offset::East(-12600));
        assert_eq!(iso_offset_east("+0530"), Offset::East(19800));
        assert_eq!(iso_offset_east("+5"), Offset::East(18000));
        assert_eq!(iso_offset_east("+16"), Offset::OutOfRange);
        assert_eq!(iso_offset_east("+ab"), Offset::Unsigned);
        assert_eq!(iso_offset_east("Europe/Oslo"), Offset::Unsigned);
    }

    #[test]
    fn intervals_check_their_fields() {
        let row = |ints: Vec<i64>, seconds| Row {
            ints,
            seconds,
            zone: None,
        };
        let i = interval(&row(vec![1, 2, 3, 4, 5, 6], 7.5)).unwrap();
        assert_eq!((i.months, i.days), (14, 25));
        assert_eq!(
            i.nanoseconds,
            (5 * 3600 + 6 * 60) * 1_000_000_000 + 7_500_000_000
        );
        assert!(interval(&row(vec![178_956_971, 0, 0, 0, 0, 0], 0.0)).is_err());
        assert!(interval(&row(vec![0; 6], f64::INFINITY)).is_err());
    }
}
