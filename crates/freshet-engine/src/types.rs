//! SQL type names ⇄ Arrow types.
//!
//! Freshet stores Arrow; clients speak Postgres types. The declared SQL type is
//! kept in the field's metadata so `\d` can show `varchar(20)` rather than the
//! Arrow type, and `json` columns carry Arrow's canonical `arrow.json` extension
//! name so the wire layer sends them as Postgres `json`.

use std::collections::HashMap;

use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use datafusion::sql::sqlparser::ast::{DataType as SqlType, ExactNumberInfo};

use crate::EngineError;

/// Field metadata key holding the declared SQL type.
pub const SQL_TYPE_METADATA: &str = "freshet.sql_type";
/// Arrow's extension-name metadata key.
pub const EXTENSION_NAME: &str = "ARROW:extension:name";
/// Arrow's canonical JSON extension type name.
pub const JSON_EXTENSION: &str = "arrow.json";

/// Converts a declared SQL column type into an Arrow field.
pub fn sql_type_to_field(
    name: &str,
    sql_type: &SqlType,
    nullable: bool,
) -> Result<Field, EngineError> {
    let mut metadata = HashMap::new();
    let arrow = match sql_type {
        SqlType::Boolean | SqlType::Bool => DataType::Boolean,
        SqlType::SmallInt(_) | SqlType::Int2(_) => DataType::Int16,
        SqlType::Int(_) | SqlType::Integer(_) | SqlType::Int4(_) => DataType::Int32,
        SqlType::BigInt(_) | SqlType::Int8(_) => DataType::Int64,
        SqlType::Real | SqlType::Float4 => DataType::Float32,
        SqlType::Double(_) | SqlType::DoublePrecision | SqlType::Float8 => DataType::Float64,
        SqlType::Float(info) => match info {
            ExactNumberInfo::Precision(p) if *p <= 24 => DataType::Float32,
            _ => DataType::Float64,
        },
        SqlType::Numeric(info) | SqlType::Decimal(info) | SqlType::Dec(info) => match info {
            ExactNumberInfo::None => DataType::Decimal128(38, 10),
            ExactNumberInfo::Precision(p) => DataType::Decimal128(check_precision(*p)?, 0),
            ExactNumberInfo::PrecisionAndScale(p, s) => {
                let p = check_precision(*p)?;
                let s = i8::try_from(*s).map_err(|_| {
                    EngineError::new("22023", format!("NUMERIC scale {s} is out of range"))
                })?;
                if s as i64 > p as i64 || s < 0 {
                    return Err(EngineError::new(
                        "22023",
                        format!("NUMERIC scale {s} must be between 0 and precision {p}"),
                    ));
                }
                DataType::Decimal128(p, s)
            }
        },
        SqlType::Text
        | SqlType::String(_)
        | SqlType::Varchar(_)
        | SqlType::CharacterVarying(_)
        | SqlType::Char(_)
        | SqlType::Character(_) => DataType::Utf8,
        SqlType::Custom(name, _)
            if name.to_string().eq_ignore_ascii_case("name")
                || name.to_string().eq_ignore_ascii_case("citext") =>
        {
            DataType::Utf8
        }
        SqlType::Bytea | SqlType::Blob(_) | SqlType::Binary(_) | SqlType::Varbinary(_) => {
            DataType::Binary
        }
        SqlType::Date => DataType::Date32,
        SqlType::Time(_, tz) => {
            use datafusion::sql::sqlparser::ast::TimezoneInfo;
            if matches!(tz, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) {
                return Err(EngineError::new(
                    "0A000",
                    "time with time zone is not supported; use time or timestamptz",
                ));
            }
            DataType::Time64(TimeUnit::Microsecond)
        }
        SqlType::Timestamp(_, tz) => {
            use datafusion::sql::sqlparser::ast::TimezoneInfo;
            match tz {
                TimezoneInfo::WithTimeZone | TimezoneInfo::Tz => {
                    DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
                }
                _ => DataType::Timestamp(TimeUnit::Microsecond, None),
            }
        }
        SqlType::TimestampNtz(_) => DataType::Timestamp(TimeUnit::Microsecond, None),
        SqlType::Interval { .. } => DataType::Interval(IntervalUnit::MonthDayNano),
        SqlType::JSON | SqlType::JSONB => {
            metadata.insert(EXTENSION_NAME.to_string(), JSON_EXTENSION.to_string());
            DataType::Utf8
        }
        SqlType::Custom(name, _) if name.to_string().eq_ignore_ascii_case("timestamptz") => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
        }
        other => {
            return Err(EngineError::new(
                "0A000",
                format!("type {other} is not supported"),
            ))
        }
    };
    metadata.insert(
        SQL_TYPE_METADATA.to_string(),
        sql_type.to_string().to_ascii_lowercase(),
    );
    Ok(Field::new(name, arrow, nullable).with_metadata(metadata))
}

fn check_precision(p: u64) -> Result<u8, EngineError> {
    match u8::try_from(p) {
        Ok(p) if (1..=38).contains(&p) => Ok(p),
        _ => Err(EngineError::new(
            "22023",
            format!("NUMERIC precision {p} must be between 1 and 38"),
        )),
    }
}

/// PostgreSQL's vector types (`int2vector`, `oidvector`): zero-based
/// one-dimensional arrays whose text is the elements separated by spaces
/// (`pg_index.indkey` reads `1 2`). Freshet holds them as Arrow lists tagged
/// with [`SQL_TYPE_METADATA`]; the wire layer sends them as the vector type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgVector {
    /// `int2vector`, of `smallint`.
    Int2,
    /// `oidvector`, of `oid`.
    Oid,
}

impl PgVector {
    /// The type's SQL name.
    pub fn sql_name(self) -> &'static str {
        match self {
            PgVector::Int2 => "int2vector",
            PgVector::Oid => "oidvector",
        }
    }

    /// The Arrow type of the elements.
    pub fn element_type(self) -> DataType {
        match self {
            PgVector::Int2 => DataType::Int16,
            PgVector::Oid => DataType::Int32,
        }
    }

    /// A non-null column `name` of this type.
    pub fn field(self, name: &str) -> Field {
        Field::new(name, DataType::new_list(self.element_type(), true), false).with_metadata(
            HashMap::from([(SQL_TYPE_METADATA.to_string(), self.sql_name().to_string())]),
        )
    }

    /// The vector type `field` holds, if it is one (tagged, and still a
    /// list of the element type).
    pub fn of(field: &Field) -> Option<PgVector> {
        let vector = match field.metadata().get(SQL_TYPE_METADATA)?.as_str() {
            "int2vector" => PgVector::Int2,
            "oidvector" => PgVector::Oid,
            _ => return None,
        };
        match field.data_type() {
            DataType::List(item) if *item.data_type() == vector.element_type() => Some(vector),
            _ => None,
        }
    }
}

/// Whether a column holds Postgres `json` (text tagged with Arrow's
/// canonical json extension).
pub fn is_json(field: &Field) -> bool {
    field.metadata().get(EXTENSION_NAME).map(String::as_str) == Some(JSON_EXTENSION)
}

/// The two JSON types, which Freshet stores alike as text tagged with
/// Arrow's json extension; `jsonb` also carries its SQL type name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonKind {
    /// `json`: the text as given, once validated.
    Json,
    /// `jsonb`: the canonical text of `json_text::jsonb_text`.
    Jsonb,
}

/// The JSON type a field holds, if it holds one.
pub fn json_kind(field: &Field) -> Option<JsonKind> {
    if !is_json(field) {
        return None;
    }
    Some(
        if field.metadata().get(SQL_TYPE_METADATA).map(String::as_str) == Some("jsonb") {
            JsonKind::Jsonb
        } else {
            JsonKind::Json
        },
    )
}

/// A text field tagged as holding `kind`: what every function returning
/// `json` or `jsonb` announces, so that the wire and `||` can tell.
pub fn json_field(name: &str, kind: JsonKind, nullable: bool) -> Field {
    let mut metadata = HashMap::from([(EXTENSION_NAME.to_string(), JSON_EXTENSION.to_string())]);
    if kind == JsonKind::Jsonb {
        metadata.insert(SQL_TYPE_METADATA.to_string(), "jsonb".to_string());
    }
    Field::new(name, DataType::Utf8, nullable).with_metadata(metadata)
}

/// The Postgres-style type name shown for a column.
pub fn display_type(field: &Field) -> String {
    if let Some(t) = field.metadata().get(SQL_TYPE_METADATA) {
        return t.clone();
    }
    if is_json(field) {
        return "json".into();
    }
    match field.data_type() {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::Int16 => "smallint".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint".into(),
        DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal128(p, s) => format!("numeric({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "bytea".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Time64(_) | DataType::Time32(_) => "time".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
        DataType::Interval(_) => "interval".into(),
        DataType::Struct(_) | DataType::Map(_, _) | DataType::List(_) => "json".into(),
        other => other.to_string(),
    }
}

/// Strips Freshet's declared-type metadata so a column built from a query result
/// gets a fresh declared type, while keeping the JSON extension marker.
pub fn normalize_result_field(field: &Field) -> Field {
    let mut metadata = HashMap::new();
    if let Some(ext) = field.metadata().get(EXTENSION_NAME) {
        metadata.insert(EXTENSION_NAME.to_string(), ext.clone());
    }
    let data_type = match field.data_type() {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        other => other.clone(),
    };
    Field::new(field.name(), data_type, true).with_metadata(metadata)
}

/// Postgres' text output for date/time values (DateStyle ISO, IntervalStyle
/// postgres, TimeZone UTC), for casts to text.
pub mod pg_text {
    use datafusion::arrow::datatypes::IntervalMonthDayNano;

    const MICROS_PER_SECOND: i64 = 1_000_000;
    const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

    /// `.25` for 250000 µs; empty for whole seconds (Postgres trims zeros).
    fn fraction(micros: i64) -> String {
        if micros == 0 {
            return String::new();
        }
        let digits = format!(".{micros:06}");
        digits.trim_end_matches('0').to_string()
    }

    /// `2024-01-02 03:04:05.25`, with `+00` when `with_zone`, and ` BC`
    /// last for a year before 1 AD, as PostgreSQL writes them.
    pub fn timestamp_micros(micros: i64, with_zone: bool) -> Option<String> {
        let days = micros.div_euclid(MICROS_PER_DAY);
        let in_day = micros.rem_euclid(MICROS_PER_DAY);
        let (date, bc) = year_month_day(i32::try_from(days).ok()?)?;
        let time = time_micros(in_day)?;
        Some(format!(
            "{date} {time}{}{}",
            if with_zone { "+00" } else { "" },
            if bc { " BC" } else { "" }
        ))
    }

    /// `2024-02-29` for days since 1970-01-01; `0044-03-15 BC` for a date
    /// before 1 AD (chrono's year -43: there is no year 0).
    pub fn date_days(days: i32) -> Option<String> {
        let (date, bc) = year_month_day(days)?;
        Some(if bc { format!("{date} BC") } else { date })
    }

    /// `YYYY-MM-DD` with the year counted in eras, and whether it is BC.
    fn year_month_day(days: i32) -> Option<(String, bool)> {
        use chrono::Datelike;
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
        let date = epoch.checked_add_signed(chrono::Duration::days(days.into()))?;
        let (year, bc) = match date.year() {
            y if y <= 0 => (1 - y, true),
            y => (y, false),
        };
        Some((
            format!("{year:04}-{:02}-{:02}", date.month(), date.day()),
            bc,
        ))
    }

    /// `12:34:56.5` for microseconds since midnight.
    pub fn time_micros(micros: i64) -> Option<String> {
        if !(0..=MICROS_PER_DAY).contains(&micros) {
            return None;
        }
        let seconds = micros / MICROS_PER_SECOND;
        Some(format!(
            "{:02}:{:02}:{:02}{}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60,
            fraction(micros % MICROS_PER_SECOND)
        ))
    }

    /// `1 year 2 mons -3 days 04:05:06.5`, Postgres' default interval style.
    pub fn interval(value: IntervalMonthDayNano) -> String {
        let mut out = Vec::with_capacity(32);
        write_interval(
            i64::from(value.months),
            i64::from(value.days),
            value.nanoseconds / 1_000,
            &mut out,
        );
        String::from_utf8(out).unwrap_or_default()
    }

    /// `interval_out` with `IntervalStyle = postgres`:
    /// `1 year 2 mons -3 days +01:02:03.000456`, `00:00:00`. A field after a
    /// negative one carries an explicit `+`. The wire writes intervals with
    /// this too, so a cast to text and a sent value cannot differ.
    pub fn write_interval(months: i64, days: i64, micros: i64, out: &mut Vec<u8>) {
        use std::io::Write;
        let mut is_zero = true;
        let mut after_negative = false;
        let mut part = |value: i64, unit: &str, out: &mut Vec<u8>| {
            if value == 0 {
                return;
            }
            let _ = write!(
                out,
                "{}{}{value} {unit}{}",
                if is_zero { "" } else { " " },
                if after_negative && value > 0 { "+" } else { "" },
                if value != 1 { "s" } else { "" }
            );
            // Each nonzero field decides the sign display of the next one only.
            after_negative = value < 0;
            is_zero = false;
        };
        part(months / 12, "year", out);
        part(months % 12, "mon", out);
        part(days, "day", out);
        if is_zero || micros != 0 {
            let sign = if micros < 0 {
                "-"
            } else if after_negative {
                "+"
            } else {
                ""
            };
            let abs = micros.unsigned_abs();
            let seconds = abs / MICROS_PER_SECOND as u64;
            let _ = write!(
                out,
                "{}{sign}{:02}:{:02}:{:02}{}",
                if is_zero { "" } else { " " },
                seconds / 3600,
                seconds / 60 % 60,
                seconds % 60,
                fraction((abs % MICROS_PER_SECOND as u64) as i64)
            );
        }
    }

    /// `float8out`'s text (see [`write_float8`]) as a string.
    pub fn float8(v: f64) -> String {
        let mut out = Vec::with_capacity(24);
        write_float8(v, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// `float4out`'s text (see [`write_float4`]) as a string.
    pub fn float4(v: f32) -> String {
        let mut out = Vec::with_capacity(16);
        write_float4(v, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// `float4out` with `extra_float_digits > 0`: the shortest text that reads
    /// back as the same value, fixed-point for decimal exponents in [-4, 6).
    pub fn write_float4(v: f32, out: &mut Vec<u8>) {
        if let Some(special) =
            float_special(v.is_nan(), v.is_infinite(), v.is_sign_negative(), v == 0.0)
        {
            out.extend_from_slice(special.as_bytes());
            return;
        }
        write_shortest(&format!("{v:e}"), 6, out);
    }

    /// `float8out` with `extra_float_digits > 0`: the shortest text that reads
    /// back as the same value, fixed-point for decimal exponents in [-4, 15).
    pub fn write_float8(v: f64, out: &mut Vec<u8>) {
        if let Some(special) =
            float_special(v.is_nan(), v.is_infinite(), v.is_sign_negative(), v == 0.0)
        {
            out.extend_from_slice(special.as_bytes());
            return;
        }
        write_shortest(&format!("{v:e}"), 15, out);
    }

    fn float_special(
        nan: bool,
        infinite: bool,
        negative: bool,
        zero: bool,
    ) -> Option<&'static str> {
        match (nan, infinite, negative, zero) {
            (true, ..) => Some("NaN"),
            (_, true, false, _) => Some("Infinity"),
            (_, true, true, _) => Some("-Infinity"),
            (_, _, true, true) => Some("-0"),
            (_, _, false, true) => Some("0"),
            _ => None,
        }
    }

    /// Re-lays out Rust's shortest round-trip scientific notation (`-1.5e-7`) the
    /// way PostgreSQL's Ryu-based output does (`-1.5e-07`, `0.00015`, `1e+100`).
    fn write_shortest(sci: &str, fixed_below: i32, out: &mut Vec<u8>) {
        let (negative, sci) = match sci.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, sci),
        };
        let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
        if negative {
            out.push(b'-');
        }
        if (-4..fixed_below).contains(&exp) {
            if exp < 0 {
                out.extend_from_slice(b"0.");
                out.extend(std::iter::repeat_n(b'0', (-exp - 1) as usize));
                out.extend_from_slice(&digits);
            } else {
                let int_len = exp as usize + 1;
                if digits.len() <= int_len {
                    out.extend_from_slice(&digits);
                    out.extend(std::iter::repeat_n(b'0', int_len - digits.len()));
                } else {
                    out.extend_from_slice(&digits[..int_len]);
                    out.push(b'.');
                    out.extend_from_slice(&digits[int_len..]);
                }
            }
            return;
        }
        let (first, rest) = digits
            .split_first()
            .map_or((b'0', &[][..]), |(f, r)| (*f, r));
        out.push(first);
        if !rest.is_empty() {
            out.push(b'.');
            out.extend_from_slice(rest);
        }
        let sign = if exp < 0 { '-' } else { '+' };
        out.extend_from_slice(format!("e{sign}{:02}", exp.unsigned_abs()).as_bytes());
    }
}

/// Postgres' type OID and type modifier (`atttypmod`) for a declared
/// column type; `None` for types whose OID follows from the Arrow type and
/// that take no modifier.
pub fn declared_pg_type(field: &Field) -> Option<(i32, i32)> {
    let declared = field.metadata().get(SQL_TYPE_METADATA)?;
    let (base, args) = match declared.split_once('(') {
        Some((base, rest)) => (base.trim(), rest.trim_end_matches(')')),
        None => (declared.trim(), ""),
    };
    let numbers: Vec<i32> = args
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    match (base, numbers.as_slice()) {
        ("varchar" | "character varying", [n]) => Some((1043, n + 4)),
        ("varchar" | "character varying", []) => Some((1043, -1)),
        ("char" | "character", [n]) => Some((1042, n + 4)),
        ("numeric" | "decimal" | "dec", [p, s]) => Some((1700, ((p << 16) | s) + 4)),
        ("numeric" | "decimal" | "dec", [p]) => Some((1700, (p << 16) + 4)),
        ("json", []) => Some((114, -1)),
        ("jsonb", []) => Some((3802, -1)),
        _ => None,
    }
}

/// The `n` of a column declared `varchar(n)` / `char(n)`, which inserts must
/// not exceed (`char` alone is `char(1)`).
pub fn declared_char_length(field: &Field) -> Option<usize> {
    let declared = field.metadata().get(SQL_TYPE_METADATA)?;
    let is_char_type = ["varchar", "character varying", "char", "character"]
        .iter()
        .any(|prefix| declared.starts_with(prefix));
    if !is_char_type {
        return None;
    }
    if declared == "char" || declared == "character" {
        return Some(1);
    }
    let inside = declared.split_once('(')?.1.split_once(')')?.0;
    inside.trim().parse().ok()
}

/// Whether a column is declared `char(n)` (`character(n)`): PostgreSQL's
/// blank-padded type, whose trailing spaces are not significant.
pub fn is_blank_padded(field: &Field) -> bool {
    field
        .metadata()
        .get(SQL_TYPE_METADATA)
        .is_some_and(|declared| {
            (declared.starts_with("char") || declared.starts_with("character"))
                && !declared.starts_with("character varying")
                && !declared.starts_with("char varying")
        })
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::IntervalMonthDayNano;

    #[test]
    fn interval_text_marks_a_positive_field_after_a_negative_one() {
        // PostgreSQL 15's interval_out.
        let text = |m, d, ns| super::pg_text::interval(IntervalMonthDayNano::new(m, d, ns));
        assert_eq!(text(-10, 0, 0), "-10 mons");
        assert_eq!(text(-1, 2, 0), "-1 mons +2 days");
        assert_eq!(text(0, 1, -7_200_000_000_000), "1 day -02:00:00");
        assert_eq!(text(0, -1, -7_200_000_000_000), "-1 days -02:00:00");
        assert_eq!(text(0, -1, 7_200_000_000_000), "-1 days +02:00:00");
        assert_eq!(text(-1, -1, 3_600_000_000_000), "-1 mons -1 days +01:00:00");
        assert_eq!(text(12, -1, 0), "1 year -1 days");
        assert_eq!(text(0, 0, 0), "00:00:00");
    }
}
