//! `x AT TIME ZONE zone` and `timezone(zone, x)` as PostgreSQL computes them.
//!
//! The two directions have different result types:
//! - a `timestamp with time zone` (an instant) gives the `timestamp` a wall
//!   clock in `zone` shows at that instant;
//! - a `timestamp` (a wall-clock time) gives the instant at which a clock in
//!   `zone` shows it, a `timestamp with time zone`.
//!
//! DataFusion plans `AT TIME ZONE` as a cast to a timestamp tagged with the
//! zone, so `timestamptz AT TIME ZONE 'UTC'` stayed a `timestamptz` (printed
//! with `+00`, compared as an instant), and a numeric zone was read with
//! ISO 8601's sign. PostgreSQL reads a zone written as an offset (`'+02'`,
//! `'UTC+2'`, `'-03:30'`) as POSIX does, hours *west* of Greenwich:
//! `timestamp '12:00' AT TIME ZONE '+02'` is 14:00 UTC. [`at_time_zone`]
//! follows PostgreSQL in all of this. Names are IANA zone names
//! (`'Europe/Paris'`), `UTC`, `GMT` and `Z`; abbreviations other than those
//! (`'PST'`) are not known and are refused (22023), as any unknown name.
//!
//! A wall-clock time a zone skips (the hour of a spring-forward change) is
//! read with the offset in effect before the change; one a zone shows twice
//! (the hour of a fall-back change) is the later instant, standard time, as
//! PostgreSQL reads both. `date` and text arguments are read as
//! `timestamp with time zone` first, as PostgreSQL resolves them.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDateTime, Offset, TimeZone};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, TimestampMicrosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::EngineError;

/// Name of the function `x AT TIME ZONE zone` is rewritten to (arguments in
/// that order).
pub(crate) const AT_TIME_ZONE: &str = "freshet_at_time_zone";

/// Registers `freshet_at_time_zone(x, zone)` and PostgreSQL's
/// `timezone(zone, x)`.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    for order in [ArgumentOrder::ValueFirst, ArgumentOrder::ZoneFirst] {
        ctx.register_udf(ScalarUDF::new_from_impl(AtTimeZone {
            order,
            signature: Signature::any(2, Volatility::Immutable),
        }));
    }
}

/// Where the zone comes among the function's two arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ArgumentOrder {
    /// `freshet_at_time_zone(x, zone)`.
    ValueFirst,
    /// `timezone(zone, x)`.
    ZoneFirst,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct AtTimeZone {
    order: ArgumentOrder,
    signature: Signature,
}

/// `timestamp`: a wall-clock time.
const WALL_CLOCK: DataType = DataType::Timestamp(TimeUnit::Microsecond, None);

/// `timestamp with time zone`: an instant.
fn instant() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
}

/// Whether a value of type `t` is a wall-clock time (`timestamp`), as
/// opposed to an instant (anything else is read as `timestamptz`).
fn is_wall_clock(t: &DataType) -> bool {
    matches!(t, DataType::Timestamp(_, None))
}

impl ScalarUDFImpl for AtTimeZone {
    fn name(&self) -> &str {
        match self.order {
            ArgumentOrder::ValueFirst => AT_TIME_ZONE,
            ArgumentOrder::ZoneFirst => "timezone",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        let value = match (self.order, args) {
            (ArgumentOrder::ValueFirst, [value, _]) | (ArgumentOrder::ZoneFirst, [_, value]) => {
                value
            }
            _ => {
                return Err(DataFusionError::External(Box::new(EngineError::new(
                    "42883",
                    format!("{} takes two arguments", self.name()),
                ))))
            }
        };
        Ok(if is_wall_clock(value) {
            instant()
        } else {
            WALL_CLOCK
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        crate::udf_args::evaluate(&args.args, |arrays| {
            let (value, zone) = match (self.order, arrays) {
                (ArgumentOrder::ValueFirst, [value, zone])
                | (ArgumentOrder::ZoneFirst, [zone, value]) => (value, zone),
                _ => {
                    return Err(DataFusionError::Internal(format!(
                        "{} takes two arguments",
                        self.name()
                    )))
                }
            };
            at_time_zone(value, zone).map_err(|e| DataFusionError::External(Box::new(e)))
        })
    }
}

/// `value AT TIME ZONE zone`, row by row (see the module docs).
fn at_time_zone(value: &ArrayRef, zone: &ArrayRef) -> Result<ArrayRef, EngineError> {
    let wall_clock = is_wall_clock(value.data_type());
    let source = if wall_clock { WALL_CLOCK } else { instant() };
    let micros = cast(value, &source).map_err(|e| EngineError::new("22007", e.to_string()))?;
    let micros = micros.as_primitive::<TimestampMicrosecondType>();
    let zone = cast(zone, &DataType::Utf8).map_err(|e| EngineError::new("22023", e.to_string()))?;
    let zone = zone.as_string::<i32>();
    let mut zones: HashMap<&str, Zone> = HashMap::new();
    let mut out = Vec::with_capacity(micros.len());
    for row in 0..micros.len() {
        if micros.is_null(row) || zone.is_null(row) {
            out.push(None);
            continue;
        }
        let name = zone.value(row);
        let parsed = match zones.get(name) {
            Some(parsed) => *parsed,
            None => {
                let parsed = Zone::parse(name)?;
                zones.insert(name, parsed);
                parsed
            }
        };
        let at = micros.value(row);
        out.push(Some(if wall_clock {
            parsed.instant_of(at)?
        } else {
            parsed.wall_clock_at(at)?
        }));
    }
    let out = TimestampMicrosecondArray::from(out);
    Ok(Arc::new(if wall_clock {
        out.with_timezone("+00:00")
    } else {
        out
    }))
}

/// A time zone as PostgreSQL reads its name.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Zone {
    /// A fixed offset (seconds east of UTC).
    Fixed(FixedOffset),
    /// A named zone with its rules.
    Named(Tz),
}

impl Zone {
    /// A zone by name, or written as a POSIX offset (hours west).
    pub(crate) fn parse(name: &str) -> Result<Zone, EngineError> {
        let trimmed = name.trim();
        if ["utc", "gmt", "z", "zulu", "etc/utc", "etc/gmt", "universal"]
            .iter()
            .any(|n| trimmed.eq_ignore_ascii_case(n))
        {
            return Ok(Zone::Fixed(chrono::Utc.fix()));
        }
        if let Some(west) = posix_offset_west(trimmed) {
            if let Some(offset) = FixedOffset::west_opt(west) {
                return Ok(Zone::Fixed(offset));
            }
        }
        // Offsets were handled above, so arrow's parser only sees names.
        if !trimmed.starts_with(['+', '-']) {
            if let Ok(tz) = Tz::from_str(trimmed) {
                return Ok(Zone::Named(tz));
            }
        }
        Err(EngineError::new(
            "22023",
            format!("time zone \"{name}\" not recognized"),
        ))
    }

    /// The wall-clock time (microseconds) the zone shows at instant `at`.
    fn wall_clock_at(self, at: i64) -> Result<i64, EngineError> {
        let instant = DateTime::from_timestamp_micros(at).ok_or_else(out_of_range)?;
        let offset = match self {
            Zone::Fixed(offset) => offset,
            Zone::Named(tz) => tz.offset_from_utc_datetime(&instant.naive_utc()).fix(),
        };
        at.checked_add(i64::from(offset.local_minus_utc()) * 1_000_000)
            .ok_or_else(out_of_range)
    }

    /// The instant (microseconds) at which the zone shows wall-clock time
    /// `wall`: for a skipped time, the offset before the change; for a time
    /// shown twice, the later instant.
    pub(crate) fn instant_of(self, wall: i64) -> Result<i64, EngineError> {
        let local: NaiveDateTime = DateTime::from_timestamp_micros(wall)
            .ok_or_else(out_of_range)?
            .naive_utc();
        let offset = match self {
            Zone::Fixed(offset) => offset,
            Zone::Named(tz) => match tz.offset_from_local_datetime(&local) {
                LocalResult::Single(offset) => offset.fix(),
                LocalResult::Ambiguous(first, second) => {
                    // The later instant has the smaller offset east.
                    let (a, b) = (first.fix(), second.fix());
                    if a.local_minus_utc() < b.local_minus_utc() {
                        a
                    } else {
                        b
                    }
                }
                LocalResult::None => {
                    let before = local - chrono::Duration::hours(12);
                    tz.offset_from_utc_datetime(&before).fix()
                }
            },
        };
        wall.checked_sub(i64::from(offset.local_minus_utc()) * 1_000_000)
            .ok_or_else(out_of_range)
    }
}

/// A zone written as an offset, `[UTC|GMT][+|-]H[H][[:]MM]`, as seconds
/// *west* of Greenwich: PostgreSQL reads it as a POSIX zone, where `+2` is
/// two hours west.
fn posix_offset_west(text: &str) -> Option<i32> {
    let lower = text.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("utc")
        .or_else(|| lower.strip_prefix("gmt"))
        .unwrap_or(&lower);
    let (sign, digits) = match rest.as_bytes().first()? {
        b'+' => (1, &rest[1..]),
        b'-' => (-1, &rest[1..]),
        b'0'..=b'9' => (1, rest),
        _ => return None,
    };
    let (hours, minutes) = match digits.split_once(':') {
        Some((h, m)) => (h, m),
        None if digits.len() > 2 => digits.split_at(digits.len() - 2),
        None => (digits, "0"),
    };
    if hours.is_empty()
        || hours.len() > 2
        || !hours.bytes().all(|b| b.is_ascii_digit())
        || !minutes.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let (hours, minutes): (i32, i32) = (hours.parse().ok()?, minutes.parse().ok()?);
    if hours > 15 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60))
}

fn out_of_range() -> EngineError {
    EngineError::new("22008", "timestamp out of range")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(s: &str) -> i64 {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
            .timestamp_micros()
    }

    #[test]
    fn offsets_are_read_as_postgresql_reads_them() {
        // Checked against PostgreSQL 15: timestamp '2024-06-01 12:00' AT TIME ZONE z.
        let noon = micros("2024-06-01 12:00:00");
        for (zone, utc) in [
            ("+02", "2024-06-01 14:00:00"),
            ("UTC+2", "2024-06-01 14:00:00"),
            ("+05:30", "2024-06-01 17:30:00"),
            ("-3", "2024-06-01 09:00:00"),
            ("utc", "2024-06-01 12:00:00"),
            ("Z", "2024-06-01 12:00:00"),
            ("America/New_York", "2024-06-01 16:00:00"),
        ] {
            let zone = Zone::parse(zone).unwrap();
            assert_eq!(zone.instant_of(noon).unwrap(), micros(utc), "{zone:?}");
        }
        assert_eq!(Zone::parse("nowhere").unwrap_err().sqlstate(), "22023");
        assert_eq!(Zone::parse("+99").unwrap_err().sqlstate(), "22023");
    }

    #[test]
    fn changes_of_offset_resolve_as_in_postgresql() {
        let new_york = Zone::parse("America/New_York").unwrap();
        // Skipped (spring forward): read with the offset before, EST.
        assert_eq!(
            new_york.instant_of(micros("2024-03-10 02:30:00")).unwrap(),
            micros("2024-03-10 07:30:00")
        );
        // Shown twice (fall back): the later instant, EST.
        assert_eq!(
            new_york.instant_of(micros("2024-11-03 01:30:00")).unwrap(),
            micros("2024-11-03 06:30:00")
        );
        assert_eq!(
            new_york
                .wall_clock_at(micros("2024-06-01 16:00:00"))
                .unwrap(),
            micros("2024-06-01 12:00:00")
        );
    }
}
