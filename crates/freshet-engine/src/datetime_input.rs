//! Postgres' reading of timestamp text where Arrow's differs.
//!
//! `'2024-12-25 10:30:00+02'::timestamp` is 10:30 in Postgres: a
//! `timestamp without time zone` ignores a zone in its input. Arrow converts
//! it to UTC (08:30). Arrow also refuses `'2024-12-25 10:30'` (no seconds),
//! which Postgres accepts. Text cast to `timestamp` or `timestamptz` goes
//! through [`TextToTimestamp`] (wired in by `pg_compat`'s cast rule), which
//! reads `YYYY-MM-DD[( |T)HH:MM[:SS[.frac]]][zone]` itself and hands any
//! other spelling to Arrow's parser as before.

use std::sync::Arc;

use chrono::{NaiveDate, NaiveTime};
use datafusion::arrow::array::{Array, AsArray, TimestampMicrosecondBuilder};
use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
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
        let text = text.as_string::<i32>();
        let mut out = TimestampMicrosecondBuilder::with_capacity(text.len());
        for value in text.iter() {
            match value {
                None => out.append_null(),
                Some(s) => match parse_timestamp(s, self.zoned) {
                    Some(micros) => out.append_value(micros),
                    None => out.append_value(arrow_timestamp(s, self.zoned)?),
                },
            }
        }
        let result: Arc<dyn Array> = Arc::new(out.finish());
        if scalar {
            Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&result, 0)?,
            ))
        } else {
            Ok(ColumnarValue::Array(result))
        }
    }
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
    let date_len = text
        .find(|c: char| c == ' ' || c == 'T' || c == 't')
        .unwrap_or(text.len());
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
    let wall = date.and_time(time).and_utc().timestamp_micros();
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
}
