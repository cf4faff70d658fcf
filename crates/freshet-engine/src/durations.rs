//! PostgreSQL's time-valued settings (`statement_timeout`): how a value is
//! read from `SET` and how `SHOW` prints it.
//!
//! A value is a number, optionally followed by a unit (`us`, `ms`, `s`,
//! `min`, `h`, `d`); without one it is in the setting's base unit,
//! milliseconds. Fractions are rounded to whole milliseconds, as PostgreSQL
//! does. It is shown in the largest unit that divides it exactly (`1s`,
//! `1500ms`, `2min`), `0` for zero, which means no limit.

use std::time::Duration;

use crate::EngineError;

/// The largest value PostgreSQL accepts for a millisecond setting.
const MAX_MILLIS: f64 = i32::MAX as f64;

/// Units, with their length in milliseconds, largest first (the order
/// [`display_millis`] tries them in).
const UNITS: [(&str, f64); 6] = [
    ("d", 86_400_000.0),
    ("h", 3_600_000.0),
    ("min", 60_000.0),
    ("s", 1_000.0),
    ("ms", 1.0),
    ("us", 0.001),
];

/// Reads `value` given for the millisecond setting `name`: 22023 when it is
/// not a number with a known unit or is outside `0 .. 2147483647`.
pub(crate) fn parse_millis(name: &str, value: &str) -> Result<u64, EngineError> {
    let text = value.trim();
    if text.is_empty() {
        return Ok(0);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = unit.trim();
    let invalid = || {
        EngineError::new(
            "22023",
            format!("invalid value for parameter \"{name}\": \"{value}\""),
        )
    };
    let number: f64 = number.parse().map_err(|_| invalid())?;
    let scale = if unit.is_empty() {
        1.0
    } else {
        UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(invalid)?
    };
    let millis = (number * scale).round();
    if !(0.0..=MAX_MILLIS).contains(&millis) {
        return Err(EngineError::new(
            "22023",
            format!(
                "{} ms is outside the valid range for parameter \"{name}\" (0 .. {})",
                millis, MAX_MILLIS
            ),
        ));
    }
    Ok(millis as u64)
}

/// `millis` as `SHOW` prints it.
pub(crate) fn display_millis(millis: u64) -> String {
    if millis == 0 {
        return "0".to_string();
    }
    for (unit, scale) in UNITS {
        let scale = scale as u64;
        if scale >= 1 && millis.is_multiple_of(scale) {
            return format!("{}{unit}", millis / scale);
        }
    }
    format!("{millis}ms")
}

/// The limit a millisecond setting's shown value sets: `None` for `0` (no
/// limit).
pub(crate) fn limit(shown: &str) -> Option<Duration> {
    match parse_millis("", shown) {
        Ok(0) | Err(_) => None,
        Ok(millis) => Some(Duration::from_millis(millis)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_in_their_units_and_shown_in_the_largest_exact_one() {
        let shown = |v: &str| display_millis(parse_millis("statement_timeout", v).unwrap());
        assert_eq!(shown("0"), "0");
        assert_eq!(shown("200"), "200ms");
        assert_eq!(shown("1500"), "1500ms");
        assert_eq!(shown("1000"), "1s");
        assert_eq!(shown("1s"), "1s");
        assert_eq!(shown("1.5s"), "1500ms");
        assert_eq!(shown("90 s"), "90s");
        assert_eq!(shown("120s"), "2min");
        assert_eq!(shown("2h"), "2h");
        assert_eq!(shown("1d"), "1d");
        assert_eq!(shown("1500us"), "2ms");
        assert_eq!(shown(""), "0");
        assert_eq!(limit("2min"), Some(Duration::from_secs(120)));
        assert_eq!(limit("0"), None);
    }

    #[test]
    fn bad_values_are_22023() {
        for bad in ["abc", "1 fortnight", "-1", "1e12", "5 5"] {
            let err = parse_millis("statement_timeout", bad).unwrap_err();
            assert_eq!(err.sqlstate(), "22023", "{bad}");
        }
    }
}
