//! Postgres text output for Arrow values.
//!
//! The text format is what psql shows, what COPY writes and what drivers parse
//! in the simple protocol, so it has to be byte-for-byte what PostgreSQL 15
//! prints (with its defaults: `DateStyle = ISO`, `IntervalStyle = postgres`,
//! `bytea_output = hex`, `extra_float_digits = 1`, `TimeZone = UTC` — the only
//! zone Freshet sessions accept). pgwire/arrow-pg's text encoders differ in
//! many small ways (`10:00:00.000000` instead of `10:00:00`, `1e100` instead of
//! `1e+100`, NULL intervals as `00:00:00`, …), so the scalar types are formatted
//! here, following the corresponding `*_out` functions of PostgreSQL.
//!
//! Values are written without a NULL check: callers test nullness first (with
//! the array's logical nulls) because NULL is not a text value at all.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike};
use datafusion::arrow::array::{
    Array, AsArray, FixedSizeListArray, GenericListArray, OffsetSizeTrait,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Decimal256Type, Decimal32Type, Decimal64Type,
    DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType, DurationSecondType,
    Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    IntervalDayTimeType, IntervalMonthDayNanoType, IntervalUnit, IntervalYearMonthType,
    Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};

use freshet_engine::types::pg_text::{write_float4, write_float8};

use crate::error::{WireError, WireResult};

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;
const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

/// Whether [`write_value`] can format values of `dt`. Other types (nested
/// values are turned into JSON text before they get here) fall back to
/// arrow-pg's text encoder.
pub(crate) fn supports(dt: &DataType) -> bool {
    match dt {
        DataType::Null
        | DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..)
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_)
        | DataType::Date32
        | DataType::Date64
        | DataType::Time32(TimeUnit::Second | TimeUnit::Millisecond)
        | DataType::Time64(TimeUnit::Microsecond | TimeUnit::Nanosecond)
        | DataType::Timestamp(..)
        | DataType::Interval(_)
        | DataType::Duration(_) => true,
        // One-dimensional arrays of the above: `{1,2,NULL}`.
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            !matches!(
                f.data_type(),
                DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
            ) && supports(f.data_type())
        }
        _ => false,
    }
}

fn out_of_range(what: &str) -> WireError {
    WireError::Execution {
        sqlstate: "22008",
        message: format!("{what} out of range"),
    }
}

/// Appends the Postgres text of the (non-NULL) value at `row` of `array`.
pub(crate) fn write_value(array: &dyn Array, row: usize, out: &mut Vec<u8>) -> WireResult<()> {
    macro_rules! display {
        ($t:ty) => {{
            let v = array.as_primitive::<$t>().value(row);
            push_fmt(out, format_args!("{v}"));
        }};
    }
    match array.data_type() {
        // Only reached for a non-NULL slot of a Null array, which has none.
        DataType::Null => {}
        DataType::Boolean => out.push(if array.as_boolean().value(row) {
            b't'
        } else {
            b'f'
        }),
        DataType::Int8 => display!(Int8Type),
        DataType::Int16 => display!(Int16Type),
        DataType::Int32 => display!(Int32Type),
        DataType::Int64 => display!(Int64Type),
        DataType::UInt8 => display!(UInt8Type),
        DataType::UInt16 => display!(UInt16Type),
        DataType::UInt32 => display!(UInt32Type),
        DataType::UInt64 => display!(UInt64Type),
        DataType::Float16 => {
            let v = array.as_primitive::<Float16Type>().value(row).to_f32();
            write_float4(v, out);
        }
        DataType::Float32 => write_float4(array.as_primitive::<Float32Type>().value(row), out),
        DataType::Float64 => write_float8(array.as_primitive::<Float64Type>().value(row), out),
        DataType::Decimal32(_, scale) => {
            let v = array.as_primitive::<Decimal32Type>().value(row);
            write_numeric(&v.to_string(), *scale, out);
        }
        DataType::Decimal64(_, scale) => {
            let v = array.as_primitive::<Decimal64Type>().value(row);
            write_numeric(&v.to_string(), *scale, out);
        }
        DataType::Decimal128(_, scale) => {
            let v = array.as_primitive::<Decimal128Type>().value(row);
            write_numeric(&v.to_string(), *scale, out);
        }
        DataType::Decimal256(_, scale) => {
            let v = array.as_primitive::<Decimal256Type>().value(row);
            write_numeric(&v.to_string(), *scale, out);
        }
        DataType::Utf8 => out.extend_from_slice(array.as_string::<i32>().value(row).as_bytes()),
        DataType::LargeUtf8 => {
            out.extend_from_slice(array.as_string::<i64>().value(row).as_bytes())
        }
        DataType::Utf8View => out.extend_from_slice(array.as_string_view().value(row).as_bytes()),
        DataType::Binary => write_bytea(array.as_binary::<i32>().value(row), out),
        DataType::LargeBinary => write_bytea(array.as_binary::<i64>().value(row), out),
        DataType::BinaryView => write_bytea(array.as_binary_view().value(row), out),
        DataType::FixedSizeBinary(_) => write_bytea(array.as_fixed_size_binary().value(row), out),
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            write_date(i64::from(days), out)?;
        }
        DataType::Date64 => {
            let millis = array.as_primitive::<Date64Type>().value(row);
            write_date(millis.div_euclid(MICROS_PER_DAY / 1000), out)?;
        }
        DataType::Time32(TimeUnit::Second) => {
            let v = array.as_primitive::<Time32SecondType>().value(row);
            write_time(i64::from(v) * MICROS_PER_SECOND, out);
        }
        DataType::Time32(TimeUnit::Millisecond) => {
            let v = array.as_primitive::<Time32MillisecondType>().value(row);
            write_time(i64::from(v) * 1000, out);
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            write_time(
                array.as_primitive::<Time64MicrosecondType>().value(row),
                out,
            );
        }
        DataType::Time64(TimeUnit::Nanosecond) => {
            let v = array.as_primitive::<Time64NanosecondType>().value(row);
            write_time(v / 1000, out);
        }
        DataType::Timestamp(unit, tz) => {
            let micros = match unit {
                TimeUnit::Second => array
                    .as_primitive::<TimestampSecondType>()
                    .value(row)
                    .checked_mul(MICROS_PER_SECOND)
                    .ok_or_else(|| out_of_range("timestamp"))?,
                TimeUnit::Millisecond => array
                    .as_primitive::<TimestampMillisecondType>()
                    .value(row)
                    .checked_mul(1000)
                    .ok_or_else(|| out_of_range("timestamp"))?,
                TimeUnit::Microsecond => {
                    array.as_primitive::<TimestampMicrosecondType>().value(row)
                }
                TimeUnit::Nanosecond => array
                    .as_primitive::<TimestampNanosecondType>()
                    .value(row)
                    .div_euclid(1000),
            };
            write_timestamp(micros, tz.is_some(), out)?;
        }
        DataType::Interval(IntervalUnit::YearMonth) => {
            let months = array.as_primitive::<IntervalYearMonthType>().value(row);
            freshet_engine::types::pg_text::write_interval(i64::from(months), 0, 0, out);
        }
        DataType::Interval(IntervalUnit::DayTime) => {
            let v = array.as_primitive::<IntervalDayTimeType>().value(row);
            freshet_engine::types::pg_text::write_interval(
                0,
                i64::from(v.days),
                i64::from(v.milliseconds) * 1000,
                out,
            );
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let v = array.as_primitive::<IntervalMonthDayNanoType>().value(row);
            freshet_engine::types::pg_text::write_interval(
                i64::from(v.months),
                i64::from(v.days),
                v.nanoseconds / 1000,
                out,
            );
        }
        DataType::Duration(unit) => {
            let micros = match unit {
                TimeUnit::Second => array
                    .as_primitive::<DurationSecondType>()
                    .value(row)
                    .saturating_mul(MICROS_PER_SECOND),
                TimeUnit::Millisecond => array
                    .as_primitive::<DurationMillisecondType>()
                    .value(row)
                    .saturating_mul(1000),
                TimeUnit::Microsecond => array.as_primitive::<DurationMicrosecondType>().value(row),
                TimeUnit::Nanosecond => {
                    array.as_primitive::<DurationNanosecondType>().value(row) / 1000
                }
            };
            freshet_engine::types::pg_text::write_interval(0, 0, micros, out);
        }
        DataType::List(_) => write_list(array.as_list::<i32>(), row, out)?,
        DataType::LargeList(_) => write_list(array.as_list::<i64>(), row, out)?,
        DataType::FixedSizeList(..) => {
            let list: &FixedSizeListArray = array.as_fixed_size_list();
            write_array(list.value(row).as_ref(), out)?;
        }
        other => {
            return Err(WireError::Execution {
                sqlstate: "0A000",
                message: format!("cannot send values of type {other} as text"),
            })
        }
    }
    Ok(())
}

fn push_fmt(out: &mut Vec<u8>, args: std::fmt::Arguments<'_>) {
    let mut s = String::new();
    // Writing into a String cannot fail.
    let _ = s.write_fmt(args);
    out.extend_from_slice(s.as_bytes());
}

fn write_list<O: OffsetSizeTrait>(
    list: &GenericListArray<O>,
    row: usize,
    out: &mut Vec<u8>,
) -> WireResult<()> {
    write_array(list.value(row).as_ref(), out)
}

/// `array_out`: `{a,b,NULL}`, quoting elements that are empty, `NULL`, or
/// contain a delimiter, brace, quote, backslash or white space.
fn write_array(values: &dyn Array, out: &mut Vec<u8>) -> WireResult<()> {
    let nulls = values.logical_nulls();
    let mut element = Vec::new();
    out.push(b'{');
    for idx in 0..values.len() {
        if idx > 0 {
            out.push(b',');
        }
        if nulls.as_ref().is_some_and(|n| n.is_null(idx)) {
            out.extend_from_slice(b"NULL");
            continue;
        }
        element.clear();
        write_value(values, idx, &mut element)?;
        let needs_quotes = element.is_empty()
            || element.eq_ignore_ascii_case(b"null")
            || element.iter().any(|&b| {
                matches!(
                    b,
                    b'"' | b'\\' | b'{' | b'}' | b',' | b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c
                )
            });
        if needs_quotes {
            out.push(b'"');
            for &b in &element {
                if b == b'"' || b == b'\\' {
                    out.push(b'\\');
                }
                out.push(b);
            }
            out.push(b'"');
        } else {
            out.extend_from_slice(&element);
        }
    }
    out.push(b'}');
    Ok(())
}

/// `numeric_out`: the unscaled integer `digits` shown with exactly `scale`
/// fractional digits, as a `numeric(p, s)` column prints (`-0.01`, `0.00`).
fn write_numeric(digits: &str, scale: i8, out: &mut Vec<u8>) {
    let (negative, digits) = match digits.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, digits),
    };
    if negative {
        out.push(b'-');
    }
    if scale <= 0 {
        out.extend_from_slice(digits.as_bytes());
        if digits != "0" {
            out.extend(std::iter::repeat_n(b'0', usize::from(scale.unsigned_abs())));
        }
        return;
    }
    let scale = usize::from(scale.unsigned_abs());
    if digits.len() <= scale {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', scale - digits.len()));
        out.extend_from_slice(digits.as_bytes());
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(int.as_bytes());
        out.push(b'.');
        out.extend_from_slice(frac.as_bytes());
    }
}

/// `byteaout` with `bytea_output = hex`.
fn write_bytea(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(2 + bytes.len() * 2);
    out.extend_from_slice(b"\\x");
    for &b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
}

/// Years as Postgres prints them: no year zero, `BC` after the value.
fn split_era(year: i32) -> (i32, bool) {
    if year <= 0 {
        (1 - year, true)
    } else {
        (year, false)
    }
}

/// `date_out` (ISO): `2024-02-29`, `0044-03-15 BC`.
fn write_date(days_since_epoch: i64, out: &mut Vec<u8>) -> WireResult<()> {
    let date = i32::try_from(days_since_epoch)
        .ok()
        .and_then(|d| NaiveDate::from_num_days_from_ce_opt(d.checked_add(719_163)?))
        .ok_or_else(|| out_of_range("date"))?;
    let (year, bc) = split_era(date.year());
    push_fmt(
        out,
        format_args!("{year:04}-{:02}-{:02}", date.month(), date.day()),
    );
    if bc {
        out.extend_from_slice(b" BC");
    }
    Ok(())
}

/// `time_out`: `23:59:58.123456`, `00:00:00`.
fn write_time(micros_since_midnight: i64, out: &mut Vec<u8>) {
    let secs = micros_since_midnight.div_euclid(MICROS_PER_SECOND);
    let frac = micros_since_midnight.rem_euclid(MICROS_PER_SECOND);
    push_fmt(
        out,
        format_args!(
            "{:02}:{:02}:{:02}",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        ),
    );
    write_fraction(frac, out);
}

/// `timestamp_out` / `timestamptz_out` (ISO, TimeZone UTC):
/// `2024-01-02 03:04:05.654321`, `2024-06-30 22:15:00+00`.
fn write_timestamp(micros: i64, with_zone: bool, out: &mut Vec<u8>) -> WireResult<()> {
    let secs = micros.div_euclid(MICROS_PER_SECOND);
    let frac = micros.rem_euclid(MICROS_PER_SECOND);
    let dt: NaiveDateTime = DateTime::from_timestamp(secs, 0)
        .ok_or_else(|| out_of_range("timestamp"))?
        .naive_utc();
    let (year, bc) = split_era(dt.year());
    push_fmt(
        out,
        format_args!(
            "{year:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        ),
    );
    write_fraction(frac, out);
    if with_zone {
        out.extend_from_slice(b"+00");
    }
    if bc {
        out.extend_from_slice(b" BC");
    }
    Ok(())
}

/// `AppendSeconds`' fraction: up to six digits, trailing zeros dropped, none
/// at all for whole seconds.
fn write_fraction(micros: i64, out: &mut Vec<u8>) {
    if micros == 0 {
        return;
    }
    let digits = format!("{:06}", micros.unsigned_abs());
    out.push(b'.');
    out.extend_from_slice(digits.trim_end_matches('0').as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use datafusion::arrow::array::{
        ArrayRef, BinaryArray, Float32Array, Float64Array, IntervalMonthDayNanoArray, ListArray,
        StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
    };
    use datafusion::arrow::datatypes::IntervalMonthDayNano;

    fn text(array: &dyn Array, row: usize) -> String {
        let mut out = Vec::new();
        write_value(array, row, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn f8(v: f64) -> String {
        let mut out = Vec::new();
        write_float8(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn f4(v: f32) -> String {
        let mut out = Vec::new();
        write_float4(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn floats_match_postgres() {
        assert_eq!(f8(1.0), "1");
        assert_eq!(f8(1.5), "1.5");
        assert_eq!(f8(-2.0e-300), "-2e-300");
        assert_eq!(f8(1.0e100), "1e+100");
        assert_eq!(f8(f64::MAX), "1.7976931348623157e+308");
        assert_eq!(f8(0.1), "0.1");
        assert_eq!(f8(0.0001), "0.0001");
        assert_eq!(f8(0.00001), "1e-05");
        assert_eq!(f8(123456789012345.0), "123456789012345");
        assert_eq!(f8(1234567890123456.0), "1.234567890123456e+15");
        assert_eq!(f8(-0.0), "-0");
        assert_eq!(f8(f64::NAN), "NaN");
        assert_eq!(f8(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(f4(3.25), "3.25");
        assert_eq!(f4(123456.0), "123456");
        assert_eq!(f4(1234567.0), "1.234567e+06");
        assert_eq!(f4(0.1), "0.1");
        let arr = Float64Array::from(vec![100.0]);
        assert_eq!(text(&arr, 0), "100");
        let arr = Float32Array::from(vec![1.0e6]);
        assert_eq!(text(&arr, 0), "1e+06");
    }

    #[test]
    fn timestamps_match_postgres() {
        let us = |s: &str| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
                .unwrap()
                .and_utc()
                .timestamp_micros()
        };
        let arr = TimestampMicrosecondArray::from(vec![
            us("2024-01-01 10:00:00"),
            us("2024-01-01 10:00:00.5"),
            us("2024-01-02 03:04:05.654321"),
            us("1969-07-20 20:17:40.000001"),
        ]);
        assert_eq!(text(&arr, 0), "2024-01-01 10:00:00");
        assert_eq!(text(&arr, 1), "2024-01-01 10:00:00.5");
        assert_eq!(text(&arr, 2), "2024-01-02 03:04:05.654321");
        assert_eq!(text(&arr, 3), "1969-07-20 20:17:40.000001");
        let tz = arr.clone().with_timezone("UTC");
        assert_eq!(text(&tz, 0), "2024-01-01 10:00:00+00");
        assert_eq!(text(&tz, 3), "1969-07-20 20:17:40.000001+00");
        let bc_micros = NaiveDate::from_ymd_opt(-43, 3, 15)
            .and_then(|d| d.and_hms_opt(12, 0, 0))
            .unwrap()
            .and_utc()
            .timestamp_micros();
        let bc = TimestampMicrosecondArray::from(vec![bc_micros]);
        assert_eq!(text(&bc, 0), "0044-03-15 12:00:00 BC");
    }

    #[test]
    fn times_and_dates_match_postgres() {
        let arr = Time64MicrosecondArray::from(vec![0, 86_398_123_456, 3_600_500_000]);
        assert_eq!(text(&arr, 0), "00:00:00");
        assert_eq!(text(&arr, 1), "23:59:58.123456");
        assert_eq!(text(&arr, 2), "01:00:00.5");
        let dates = datafusion::arrow::array::Date32Array::from(vec![0, 19782, -719_528]);
        assert_eq!(text(&dates, 0), "1970-01-01");
        assert_eq!(text(&dates, 1), "2024-02-29");
        assert_eq!(text(&dates, 2), "0001-01-01 BC");
    }

    #[test]
    fn intervals_match_postgres() {
        let iv = |m, d, ns| IntervalMonthDayNano::new(m, d, ns);
        let arr = IntervalMonthDayNanoArray::from(vec![
            iv(14, -3, 3_723_000_456_000),
            iv(0, 0, 0),
            iv(1, 2, 3_000_000_000),
            iv(0, 1, 7_384_000_000_000),
            iv(0, 0, -1_500_000_000),
            iv(-1, 0, 0),
            iv(0, -1, 3_600_000_000_000),
            iv(0, 0, 90_000_000_000_000),
        ]);
        assert_eq!(text(&arr, 0), "1 year 2 mons -3 days +01:02:03.000456");
        assert_eq!(text(&arr, 1), "00:00:00");
        assert_eq!(text(&arr, 2), "1 mon 2 days 00:00:03");
        assert_eq!(text(&arr, 3), "1 day 02:03:04");
        assert_eq!(text(&arr, 4), "-00:00:01.5");
        assert_eq!(text(&arr, 5), "-1 mons");
        assert_eq!(text(&arr, 6), "-1 days +01:00:00");
        assert_eq!(text(&arr, 7), "25:00:00");
    }

    #[test]
    fn numerics_keep_their_scale() {
        let arr =
            datafusion::arrow::array::Decimal128Array::from(vec![123_456_789_012, -1, 0, 150])
                .with_precision_and_scale(12, 2)
                .unwrap();
        assert_eq!(text(&arr, 0), "1234567890.12");
        assert_eq!(text(&arr, 1), "-0.01");
        assert_eq!(text(&arr, 2), "0.00");
        assert_eq!(text(&arr, 3), "1.50");
        let arr = datafusion::arrow::array::Decimal128Array::from(vec![12, 0])
            .with_precision_and_scale(5, -2)
            .unwrap();
        assert_eq!(text(&arr, 0), "1200");
        assert_eq!(text(&arr, 1), "0");
    }

    #[test]
    fn bytea_and_arrays_match_postgres() {
        let arr = BinaryArray::from(vec![&[0u8, 1, 0xfe, 0xff, b'\\'][..], &[][..]]);
        assert_eq!(text(&arr, 0), "\\x0001feff5c");
        assert_eq!(text(&arr, 1), "\\x");
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![
            Some(1),
            None,
            Some(3),
        ])]);
        assert_eq!(text(&list, 0), "{1,NULL,3}");
        let strings: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a b"),
            Some(""),
            Some("null"),
            Some("x\"y"),
            Some("plain"),
        ]));
        let field = Arc::new(datafusion::arrow::datatypes::Field::new(
            "item",
            DataType::Utf8,
            true,
        ));
        let list = ListArray::new(
            field,
            datafusion::arrow::buffer::OffsetBuffer::from_lengths([5]),
            strings,
            None,
        );
        assert_eq!(text(&list, 0), r#"{"a b","","null","x\"y",plain}"#);
    }
}
