//! The COPY sub-protocol: `COPY … FROM STDIN` decoding and `COPY … TO STDOUT`
//! encoding in Postgres' text, CSV and binary formats.
//!
//! Input arrives as arbitrary CopyData chunks that need not align with rows. The
//! decoder keeps only the unfinished tail of the input plus the rows of the
//! batch being built, and hands a batch to the engine every
//! [`BATCH_ROWS`] rows (or [`BATCH_BYTES`] bytes), so memory stays bounded no
//! matter how large the COPY is.
//!
//! Text and CSV fields are collected as text and converted to the target
//! column types with Arrow's cast kernels; a value that does not parse is
//! reported as 22P02 with the line it came from. Binary COPY (what asyncpg's
//! `copy_records_to_table` sends) carries each value in its type's binary send
//! format; [`BinaryDecoder`] decodes those straight into Arrow builders of the
//! same column types, except for text-like and numeric values, which take the
//! text path's conversion so that both formats load a value identically.
//! Binary output reuses the extended protocol's binary encoder
//! ([`crate::types`]).

use std::fmt::Debug;
use std::sync::Arc;

use std::ops::Range;

use async_trait::async_trait;
use bytes::{Buf, BufMut, BytesMut};
use datafusion::arrow::array::{
    Array, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder,
    Int16Builder, Int32Builder, Int64Builder, IntervalMonthDayNanoBuilder, PrimitiveArray,
    RecordBatch, StringArray, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::compute::{can_cast_types, cast_with_options, CastOptions};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Field, FieldRef, Float32Type, Float64Type,
    IntervalMonthDayNano, IntervalUnit, SchemaRef, TimeUnit,
};
use datafusion::arrow::util::display::FormatOptions as ArrowFormatOptions;
use freshet_engine::{CopyFormat, CopyInTarget, CopyOptions, EngineError};
use futures::{Sink, SinkExt};
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::Format;
use pgwire::api::{ClientInfo, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail, CopyInResponse, CopyOutResponse};
use pgwire::messages::response::CommandComplete;
use pgwire::messages::PgWireBackendMessage;
use tokio::sync::Mutex;

use crate::error::{WireError, WireResult};
use crate::session::{pg_status, session_of};
use crate::types::{pg_type_for_field, PreparedBatch, WireSchema};

/// Rows per batch handed to `Session::copy_in_batch`.
pub const BATCH_ROWS: usize = 8192;
/// Field bytes per batch, so very wide rows also flush early.
pub const BATCH_BYTES: usize = 32 * 1024 * 1024;

/// Single-byte delimiter, quote and escape characters (Postgres requires them).
#[derive(Debug, Clone, Copy)]
struct Punctuation {
    delimiter: u8,
    quote: u8,
    escape: u8,
}

impl Punctuation {
    fn new(options: &CopyOptions) -> WireResult<Self> {
        let byte = |c: char, what: &str| {
            u8::try_from(c).ok().filter(u8::is_ascii).ok_or_else(|| {
                WireError::protocol(
                    "0A000",
                    format!("COPY {what} must be a single one-byte character"),
                )
            })
        };
        Ok(Punctuation {
            delimiter: byte(options.delimiter, "delimiter")?,
            quote: byte(options.quote, "quote")?,
            escape: byte(options.escape, "escape")?,
        })
    }
}

/// The two line-oriented COPY formats, which share the delimited decoder and
/// encoder; binary COPY has its own ([`BinaryDecoder`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// Postgres' text format.
    Text,
    /// CSV.
    Csv,
}

impl Dialect {
    /// The dialect of `format`, or `None` for binary.
    fn of(format: CopyFormat) -> Option<Dialect> {
        match format {
            CopyFormat::Text => Some(Dialect::Text),
            CopyFormat::Csv => Some(Dialect::Csv),
            CopyFormat::Binary => None,
        }
    }
}

/// The format code CopyInResponse and CopyOutResponse announce, overall and
/// for every column: clients such as psql decide from it whether to send and
/// expect lines or raw binary.
fn format_code(format: CopyFormat) -> i16 {
    match format {
        CopyFormat::Text | CopyFormat::Csv => 0,
        CopyFormat::Binary => 1,
    }
}

/// The CopyInResponse that starts a `COPY … FROM STDIN` of `columns` columns
/// in `format`.
pub(crate) fn copy_in_response(format: CopyFormat, columns: usize) -> WireResult<CopyInResponse> {
    let code = format_code(format);
    Ok(CopyInResponse::new(
        code as i8,
        column_count(columns)?,
        vec![code; columns],
    ))
}

/// A column count as the protocol's int16 (COPY responses and binary tuples
/// cannot describe more columns).
fn column_count(columns: usize) -> WireResult<i16> {
    i16::try_from(columns).map_err(|_| {
        WireError::protocol(
            "54011",
            format!("COPY of {columns} columns exceeds the protocol's limit of 32767"),
        )
    })
}

/// Incremental decoder for one `COPY … FROM STDIN`.
pub(crate) enum CopyInDecoder {
    /// Text or CSV.
    Delimited(TextDecoder),
    /// Binary.
    Binary(BinaryDecoder),
}

impl CopyInDecoder {
    /// Validates the target and prepares an empty decoder for its format.
    pub(crate) fn new(target: CopyInTarget) -> WireResult<Self> {
        Ok(match Dialect::of(target.options.format) {
            Some(dialect) => CopyInDecoder::Delimited(TextDecoder::new(target, dialect)?),
            None => CopyInDecoder::Binary(BinaryDecoder::new(target)?),
        })
    }

    /// Number of columns being loaded.
    pub(crate) fn columns(&self) -> usize {
        match self {
            CopyInDecoder::Delimited(d) => d.columns(),
            CopyInDecoder::Binary(d) => d.columns(),
        }
    }

    /// Consumes a chunk of input; returns the batches that became full.
    pub(crate) fn push(&mut self, data: &[u8]) -> WireResult<Vec<RecordBatch>> {
        match self {
            CopyInDecoder::Delimited(d) => d.push(data),
            CopyInDecoder::Binary(d) => d.push(data),
        }
    }

    /// End of input: checks that it ended cleanly and returns the last batch.
    pub(crate) fn finish(&mut self) -> WireResult<Option<RecordBatch>> {
        match self {
            CopyInDecoder::Delimited(d) => d.finish(),
            CopyInDecoder::Binary(d) => d.finish(),
        }
    }
}

/// Incremental decoder for a text or CSV `COPY … FROM STDIN`.
pub(crate) struct TextDecoder {
    schema: SchemaRef,
    options: CopyOptions,
    dialect: Dialect,
    punct: Punctuation,
    /// Input not yet consumed (at most one incomplete record).
    buf: BytesMut,
    /// How far into `buf` the record-end scan has progressed.
    scan_pos: usize,
    /// CSV scanner state at `scan_pos`.
    in_quotes: bool,
    /// Records consumed so far, including the header; the current line number.
    line: u64,
    header_pending: bool,
    /// An end-of-data marker (`\.`) was seen; the rest of the input is ignored.
    finished: bool,
    builders: Vec<StringBuilder>,
    /// The current record's field values, unescaped and laid end to end;
    /// kept between records so that parsing a row allocates nothing.
    field_bytes: Vec<u8>,
    /// Where each field of the current record lies in `field_bytes` (None
    /// for NULL).
    field_spans: Vec<Option<(usize, usize)>>,
    rows: usize,
    bytes: usize,
    batch_first_line: u64,
}

impl TextDecoder {
    /// Validates the target and prepares an empty decoder.
    fn new(target: CopyInTarget, dialect: Dialect) -> WireResult<Self> {
        let punct = Punctuation::new(&target.options)?;
        for field in target.schema.fields() {
            if !is_decodable(field.data_type()) {
                return Err(WireError::protocol(
                    "0A000",
                    format!(
                        "COPY FROM does not support column \"{}\" of type {}",
                        field.name(),
                        field.data_type()
                    ),
                ));
            }
        }
        let builders = target
            .schema
            .fields()
            .iter()
            .map(|_| StringBuilder::new())
            .collect();
        Ok(TextDecoder {
            header_pending: target.options.header,
            schema: target.schema,
            options: target.options,
            dialect,
            punct,
            buf: BytesMut::new(),
            scan_pos: 0,
            in_quotes: false,
            line: 0,
            finished: false,
            builders,
            field_bytes: Vec::new(),
            field_spans: Vec::new(),
            rows: 0,
            bytes: 0,
            batch_first_line: 1,
        })
    }

    fn columns(&self) -> usize {
        self.schema.fields().len()
    }

    fn push(&mut self, data: &[u8]) -> WireResult<Vec<RecordBatch>> {
        let mut out = Vec::new();
        if self.finished {
            return Ok(out);
        }
        self.buf.extend_from_slice(data);
        while let Some(end) = self.find_record_end() {
            let record = self.buf.split_to(end + 1);
            self.scan_pos = 0;
            self.in_quotes = false;
            self.handle_record(&record[..end])?;
            if self.rows >= BATCH_ROWS || self.bytes >= BATCH_BYTES {
                out.push(self.flush()?);
            }
            if self.finished {
                self.buf.clear();
                break;
            }
        }
        Ok(out)
    }

    /// End of input: decodes a final unterminated line and returns the last batch.
    fn finish(&mut self) -> WireResult<Option<RecordBatch>> {
        if !self.finished && !self.buf.is_empty() {
            if self.in_quotes || self.csv_has_open_quote() {
                return Err(WireError::copy_data(
                    "22P04",
                    "unterminated CSV quoted field",
                    self.line + 1,
                ));
            }
            let record = std::mem::take(&mut self.buf);
            self.handle_record(&record)?;
        }
        if self.rows > 0 {
            Ok(Some(self.flush()?))
        } else {
            Ok(None)
        }
    }

    fn csv_has_open_quote(&mut self) -> bool {
        if self.dialect != Dialect::Csv {
            return false;
        }
        // Scan whatever is left to know the quote state at the end.
        let _ = self.find_record_end();
        self.in_quotes
    }

    /// Index of the `\n` ending the next complete record, if the buffer holds one.
    fn find_record_end(&mut self) -> Option<usize> {
        let buf = &self.buf[..];
        let mut i = self.scan_pos;
        let p = self.punct;
        match self.dialect {
            Dialect::Text => {
                while i < buf.len() {
                    match buf[i] {
                        // A backslash quotes the next byte, even a newline.
                        b'\\' => {
                            if i + 1 >= buf.len() {
                                break;
                            }
                            i += 2;
                            continue;
                        }
                        b'\n' => return Some(i),
                        _ => i += 1,
                    }
                }
            }
            Dialect::Csv => {
                while i < buf.len() {
                    let b = buf[i];
                    if self.in_quotes {
                        if p.escape != p.quote && b == p.escape {
                            if i + 1 >= buf.len() {
                                break;
                            }
                            if buf[i + 1] == p.quote || buf[i + 1] == p.escape {
                                i += 2;
                                continue;
                            }
                        }
                        if b == p.quote {
                            self.in_quotes = false;
                        }
                    } else if b == p.quote {
                        self.in_quotes = true;
                    } else if b == b'\n' {
                        return Some(i);
                    }
                    i += 1;
                }
            }
        }
        self.scan_pos = i;
        None
    }

    fn handle_record(&mut self, record: &[u8]) -> WireResult<()> {
        self.line += 1;
        let record = record.strip_suffix(b"\r").unwrap_or(record);
        if self.header_pending {
            self.header_pending = false;
            return Ok(());
        }
        if record == b"\\." {
            self.finished = true;
            return Ok(());
        }
        let mut bytes = std::mem::take(&mut self.field_bytes);
        let mut spans = std::mem::take(&mut self.field_spans);
        bytes.clear();
        spans.clear();
        let parsed = match self.dialect {
            Dialect::Text => self.parse_text(record, &mut bytes, &mut spans),
            Dialect::Csv => self.parse_csv(record, &mut bytes, &mut spans),
        };
        let appended = parsed.and_then(|()| self.append_fields(&bytes, &spans));
        self.field_bytes = bytes;
        self.field_spans = spans;
        appended
    }

    /// Appends one parsed record to the column builders.
    fn append_fields(&mut self, bytes: &[u8], spans: &[Option<(usize, usize)>]) -> WireResult<()> {
        let expected = self.builders.len();
        if spans.len() < expected {
            let missing = self.schema.field(spans.len()).name().clone();
            return Err(WireError::copy_data(
                "22P04",
                format!("missing data for column \"{missing}\""),
                self.line,
            ));
        }
        if spans.len() > expected {
            return Err(WireError::copy_data(
                "22P04",
                "extra data after last expected column",
                self.line,
            ));
        }
        // validate every field before appending any, so that a bad row
        // leaves the builders as they were
        let values = spans
            .iter()
            .map(|span| {
                span.map(|(start, end)| self.utf8(&bytes[start..end]))
                    .transpose()
            })
            .collect::<WireResult<Vec<Option<&str>>>>()?;
        if self.rows == 0 {
            self.batch_first_line = self.line;
        }
        for (builder, value) in self.builders.iter_mut().zip(values) {
            match value {
                Some(value) => {
                    self.bytes += value.len();
                    builder.append_value(value);
                }
                None => builder.append_null(),
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn utf8<'a>(&self, bytes: &'a [u8]) -> WireResult<&'a str> {
        std::str::from_utf8(bytes).map_err(|_| {
            WireError::copy_data(
                "22021",
                "invalid byte sequence for encoding \"UTF8\"",
                self.line,
            )
        })
    }

    /// Splits a text-format line into fields, undoing backslash escapes. The NULL
    /// marker is matched against the raw (still escaped) field, as Postgres does.
    fn parse_text(
        &self,
        record: &[u8],
        value: &mut Vec<u8>,
        fields: &mut Vec<Option<(usize, usize)>>,
    ) -> WireResult<()> {
        let delim = self.punct.delimiter;
        let null = self.options.null.as_bytes();
        let mut start = value.len();
        let mut raw_start = 0;
        let mut i = 0;
        loop {
            if i >= record.len() || record[i] == delim {
                let raw = &record[raw_start..i];
                if raw == null {
                    fields.push(None);
                    value.truncate(start);
                } else {
                    fields.push(Some((start, value.len())));
                }
                start = value.len();
                if i >= record.len() {
                    break;
                }
                i += 1;
                raw_start = i;
                continue;
            }
            let b = record[i];
            if b != b'\\' || i + 1 >= record.len() {
                value.push(b);
                i += 1;
                continue;
            }
            let c = record[i + 1];
            i += 2;
            match c {
                b'b' => value.push(0x08),
                b'f' => value.push(0x0c),
                b'n' => value.push(b'\n'),
                b'r' => value.push(b'\r'),
                b't' => value.push(b'\t'),
                b'v' => value.push(0x0b),
                b'0'..=b'7' => {
                    let mut v: u32 = u32::from(c - b'0');
                    let mut digits = 1;
                    while digits < 3 && i < record.len() && (b'0'..=b'7').contains(&record[i]) {
                        v = v * 8 + u32::from(record[i] - b'0');
                        i += 1;
                        digits += 1;
                    }
                    value.push((v & 0xff) as u8);
                }
                b'x' if i < record.len() && record[i].is_ascii_hexdigit() => {
                    let mut v: u32 = 0;
                    let mut digits = 0;
                    while digits < 2 && i < record.len() && record[i].is_ascii_hexdigit() {
                        v = v * 16 + hex_value(record[i]);
                        i += 1;
                        digits += 1;
                    }
                    value.push(v as u8);
                }
                other => value.push(other),
            }
        }
        Ok(())
    }

    /// Splits a CSV record into fields. Quoted fields are never NULL; an unquoted
    /// field equal to the NULL string is.
    fn parse_csv(
        &self,
        record: &[u8],
        value: &mut Vec<u8>,
        fields: &mut Vec<Option<(usize, usize)>>,
    ) -> WireResult<()> {
        let Punctuation {
            delimiter,
            quote,
            escape,
        } = self.punct;
        let null = self.options.null.as_bytes();
        let mut i = 0;
        loop {
            let start = value.len();
            let mut quoted = false;
            let mut in_quotes = false;
            let mut ended_by_delimiter = false;
            while i < record.len() {
                let b = record[i];
                if in_quotes {
                    let next = record.get(i + 1).copied();
                    if b == escape
                        && (next == Some(quote) || (escape != quote && next == Some(escape)))
                    {
                        value.push(next.unwrap_or(b));
                        i += 2;
                        continue;
                    }
                    if b == quote {
                        in_quotes = false;
                    } else {
                        value.push(b);
                    }
                } else if b == quote {
                    in_quotes = true;
                    quoted = true;
                } else if b == delimiter {
                    ended_by_delimiter = true;
                    i += 1;
                    break;
                } else {
                    value.push(b);
                }
                i += 1;
            }
            if in_quotes {
                return Err(WireError::copy_data(
                    "22P04",
                    "unterminated CSV quoted field",
                    self.line,
                ));
            }
            if !quoted && value[start..] == *null {
                fields.push(None);
                value.truncate(start);
            } else {
                fields.push(Some((start, value.len())));
            }
            if !ended_by_delimiter {
                break;
            }
        }
        Ok(())
    }

    /// Converts the buffered text columns to the target types.
    fn flush(&mut self) -> WireResult<RecordBatch> {
        let first_line = self.batch_first_line;
        let schema = self.schema.clone();
        let mut columns = Vec::with_capacity(self.builders.len());
        for (builder, field) in self.builders.iter_mut().zip(schema.fields()) {
            let text = builder.finish();
            columns.push(convert_column(&text, field, first_line)?);
        }
        self.rows = 0;
        self.bytes = 0;
        assemble_batch(schema, columns, first_line)
    }
}

/// The batch of decoded `columns`; a NULL in a column the input schema
/// declares non-nullable is reported as 23502.
fn assemble_batch(
    schema: SchemaRef,
    columns: Vec<ArrayRef>,
    first_line: u64,
) -> WireResult<RecordBatch> {
    RecordBatch::try_new(schema, columns).map_err(|e| {
        let msg = e.to_string();
        if msg.contains("non-nullable") {
            WireError::copy_data(
                "23502",
                format!("null value violates not-null constraint: {msg}"),
                first_line,
            )
        } else {
            WireError::copy_data("XX000", msg, first_line)
        }
    })
}

fn hex_value(b: u8) -> u32 {
    match b {
        b'0'..=b'9' => u32::from(b - b'0'),
        b'a'..=b'f' => u32::from(b - b'a' + 10),
        b'A'..=b'F' => u32::from(b - b'A' + 10),
        _ => 0,
    }
}

fn is_decodable(dt: &DataType) -> bool {
    matches!(dt, DataType::Binary | DataType::LargeBinary) || can_cast_types(&DataType::Utf8, dt)
}

/// Casts a text column to `field`'s type; on failure, finds the offending row so
/// the error can name the value and its line.
fn convert_column(
    text: &StringArray,
    field: &datafusion::arrow::datatypes::Field,
    first_line: u64,
) -> WireResult<ArrayRef> {
    let target = field.data_type();
    match target {
        DataType::Utf8 => return Ok(Arc::new(text.clone())),
        DataType::Binary | DataType::LargeBinary => {
            let mut builder = BinaryBuilder::with_capacity(text.len(), 0);
            for (row, value) in text.iter().enumerate() {
                match value {
                    None => builder.append_null(),
                    Some(v) => match decode_bytea(v) {
                        Some(bytes) => builder.append_value(bytes),
                        None => {
                            return Err(WireError::copy_data(
                                "22P02",
                                format!("invalid input syntax for type bytea: \"{v}\""),
                                first_line + row as u64,
                            ))
                        }
                    },
                }
            }
            let array: ArrayRef = Arc::new(builder.finish());
            return cast_with_options(&array, target, &CastOptions::default())
                .map_err(|e| WireError::copy_data("22P02", e.to_string(), first_line));
        }
        // Dates as a cast reads them: Arrow alone would take '2024-02-3x'
        // for the 3rd.
        DataType::Date32 => {
            return parse_values::<Date32Type>(text, first_line, freshet_engine::parse_date_text)
        }
        // Floats as float4in/float8in read them: Arrow would take '1e400'
        // for Infinity.
        DataType::Float64 => {
            return parse_values::<Float64Type>(text, first_line, freshet_engine::parse_float8)
        }
        DataType::Float32 => {
            return parse_values::<Float32Type>(text, first_line, freshet_engine::parse_float4)
        }
        _ => {}
    }
    // Postgres prints zone offsets as `+00`; Arrow wants `+00:00`.
    let normalized;
    let text = if matches!(target, DataType::Timestamp(_, Some(_))) {
        normalized = text
            .iter()
            .map(|v| v.map(normalize_utc_offset))
            .collect::<StringArray>();
        &normalized
    } else {
        text
    };
    let strict = CastOptions {
        safe: false,
        format_options: ArrowFormatOptions::default(),
    };
    match cast_with_options(text, target, &strict) {
        Ok(array) => Ok(array),
        Err(err) => {
            let lenient = cast_with_options(text, target, &CastOptions::default()).ok();
            let bad_row = (0..text.len())
                .find(|&row| text.is_valid(row) && lenient.as_ref().is_none_or(|a| a.is_null(row)));
            let type_name = pg_type_for_field(&Arc::new(field.clone()))
                .0
                .name()
                .to_owned();
            Err(match bad_row {
                Some(row) => WireError::copy_data(
                    "22P02",
                    format!(
                        "invalid input syntax for type {type_name}: \"{}\"",
                        text.value(row)
                    ),
                    first_line + row as u64,
                ),
                None => WireError::copy_data("22P02", err.to_string(), first_line),
            })
        }
    }
}

/// A text column read value by value with the engine's `parse`; a value it
/// refuses fails the COPY with the engine's SQLSTATE, on the value's line.
fn parse_values<T: ArrowPrimitiveType>(
    text: &StringArray,
    first_line: u64,
    parse: fn(&str) -> Result<T::Native, EngineError>,
) -> WireResult<ArrayRef> {
    let values = text
        .iter()
        .enumerate()
        .map(|(row, value)| {
            value.map(parse).transpose().map_err(|e| {
                WireError::copy_data(e.sqlstate(), e.to_string(), first_line + row as u64)
            })
        })
        .collect::<WireResult<PrimitiveArray<T>>>()?;
    Ok(Arc::new(values))
}

/// `\x0102…` hex form (what Postgres emits) or the raw bytes.
fn decode_bytea(v: &str) -> Option<Vec<u8>> {
    let Some(hex) = v.strip_prefix("\\x") else {
        return Some(v.as_bytes().to_vec());
    };
    let bytes = hex.as_bytes();
    if bytes.len() % 2 != 0 {
        return None;
    }
    bytes
        .chunks(2)
        .map(|pair| {
            if pair.iter().all(u8::is_ascii_hexdigit) {
                Some((hex_value(pair[0]) * 16 + hex_value(pair[1])) as u8)
            } else {
                None
            }
        })
        .collect()
}

fn normalize_utc_offset(v: &str) -> String {
    let b = v.as_bytes();
    let n = b.len();
    let Some(last_colon) = v.rfind(':') else {
        return v.to_owned();
    };
    if n >= 3
        && (b[n - 3] == b'+' || b[n - 3] == b'-')
        && n - 3 > last_colon
        && b[n - 2].is_ascii_digit()
        && b[n - 1].is_ascii_digit()
    {
        format!("{v}:00")
    } else {
        v.to_owned()
    }
}

/// Flags bit 16 of the binary header: every tuple starts with an OID (`WITH
/// OIDS`, gone since PostgreSQL 12), which no Freshet table has.
const BINARY_FLAG_OIDS: u32 = 1 << 16;

/// The binary header's length: signature, flags, header-extension length.
const BINARY_HEADER_LEN: usize = BINARY_SIGNATURE.len() + 8;

/// The largest field PostgreSQL accepts (1 GB - 1). Refusing a larger length
/// prefix up front keeps a bad one from making the decoder buffer gigabytes
/// before it can tell anything is wrong.
const MAX_BINARY_FIELD: usize = 0x3fff_ffff;

/// Days and microseconds from Arrow's epoch (1970-01-01) to Postgres'
/// (2000-01-01), which binary dates and timestamps count from.
const PG_EPOCH_DAYS: i32 = 10_957;
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Microseconds in a day: the largest binary `time` (24:00:00).
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Where a binary COPY stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinaryStage {
    /// The 19-byte header has not all arrived yet.
    Header,
    /// Skipping this many more bytes of header extension, which PostgreSQL
    /// reserves for future use and tells readers to ignore.
    Extension(usize),
    /// Reading tuples.
    Tuples,
    /// The trailer has been read; no data may follow it.
    Ended,
    /// An error was reported. The builders may hold part of a row, so the
    /// decoder refuses further use rather than produce a ragged batch.
    Failed,
}

/// What [`BinaryDecoder::read_tuple`] found at the front of the buffer.
enum TupleRead {
    /// A row, now in the builders.
    Row,
    /// The trailer.
    Trailer,
    /// Not all of the next tuple has arrived.
    Incomplete,
}

/// Incremental decoder for a binary `COPY … FROM STDIN`.
///
/// A tuple is decoded only once all of its bytes have arrived; meanwhile the
/// lengths of its complete fields are remembered, so that a large value
/// arriving in many small chunks is not rescanned from the start each time.
/// Errors follow PostgreSQL's: 22P04 (bad_copy_file_format) for framing,
/// 22P03 (invalid_binary_representation) or the type's own SQLSTATE for a
/// bad value, with the tuple number as the line.
pub(crate) struct BinaryDecoder {
    schema: SchemaRef,
    columns: Vec<BinaryColumn>,
    /// Input not yet consumed (at most the header or one incomplete tuple).
    buf: BytesMut,
    stage: BinaryStage,
    /// Tuples read so far, the trailer included (PostgreSQL counts it too).
    line: u64,
    /// Where each complete field of the tuple at the front of `buf` lies
    /// (`None` for NULL).
    spans: Vec<Option<Range<usize>>>,
    /// Offset in `buf` just past the fields in `spans`; 0 until the tuple's
    /// field count has been read.
    scan_pos: usize,
    rows: usize,
    bytes: usize,
    batch_first_line: u64,
}

impl BinaryDecoder {
    /// Checks that every column's binary format is understood and prepares
    /// an empty decoder.
    fn new(target: CopyInTarget) -> WireResult<Self> {
        let columns = target
            .schema
            .fields()
            .iter()
            .map(|field| {
                BinaryColumn::new(field).ok_or_else(|| {
                    WireError::protocol(
                        "0A000",
                        format!(
                            "COPY FROM in binary format does not support column \"{}\" of type {}",
                            field.name(),
                            freshet_engine::types::display_type(field)
                        ),
                    )
                })
            })
            .collect::<WireResult<Vec<_>>>()?;
        Ok(BinaryDecoder {
            schema: target.schema,
            columns,
            buf: BytesMut::new(),
            stage: BinaryStage::Header,
            line: 0,
            spans: Vec::new(),
            scan_pos: 0,
            rows: 0,
            bytes: 0,
            batch_first_line: 1,
        })
    }

    fn columns(&self) -> usize {
        self.columns.len()
    }

    fn push(&mut self, data: &[u8]) -> WireResult<Vec<RecordBatch>> {
        let result = self.consume(data);
        if result.is_err() {
            self.stage = BinaryStage::Failed;
        }
        result
    }

    fn finish(&mut self) -> WireResult<Option<RecordBatch>> {
        let result = self.end();
        if result.is_err() {
            self.stage = BinaryStage::Failed;
        }
        result
    }

    fn consume(&mut self, data: &[u8]) -> WireResult<Vec<RecordBatch>> {
        let mut out = Vec::new();
        match self.stage {
            BinaryStage::Failed => return Err(rejected_before()),
            BinaryStage::Ended if !data.is_empty() => return Err(data_after_trailer(self.line)),
            _ => {}
        }
        self.buf.extend_from_slice(data);
        loop {
            match self.stage {
                BinaryStage::Header => match parse_binary_header(&self.buf, false)? {
                    Some(extension) => {
                        self.buf.advance(BINARY_HEADER_LEN);
                        self.stage = BinaryStage::Extension(extension);
                    }
                    None => break,
                },
                BinaryStage::Extension(left) => {
                    let skip = left.min(self.buf.len());
                    self.buf.advance(skip);
                    if skip < left {
                        self.stage = BinaryStage::Extension(left - skip);
                        break;
                    }
                    self.stage = BinaryStage::Tuples;
                }
                BinaryStage::Tuples => match self.read_tuple()? {
                    TupleRead::Row => {
                        if self.rows >= BATCH_ROWS || self.bytes >= BATCH_BYTES {
                            out.push(self.flush()?);
                        }
                    }
                    TupleRead::Trailer => {
                        self.stage = BinaryStage::Ended;
                        if !self.buf.is_empty() {
                            return Err(data_after_trailer(self.line));
                        }
                    }
                    TupleRead::Incomplete => break,
                },
                BinaryStage::Ended | BinaryStage::Failed => break,
            }
        }
        Ok(out)
    }

    /// End of input. Like PostgreSQL, a stream may end without its trailer,
    /// but not inside the header or a tuple.
    fn end(&mut self) -> WireResult<Option<RecordBatch>> {
        match self.stage {
            BinaryStage::Failed => return Err(rejected_before()),
            // Reports what is missing; a complete header was consumed by `push`.
            BinaryStage::Header => {
                parse_binary_header(&self.buf, true)?;
            }
            BinaryStage::Extension(_) => {
                return Err(header_error("invalid COPY file header (wrong length)"))
            }
            BinaryStage::Tuples if !self.buf.is_empty() => {
                return Err(WireError::copy_data(
                    "22P04",
                    "unexpected EOF in COPY data",
                    self.line + 1,
                ))
            }
            BinaryStage::Tuples | BinaryStage::Ended => {}
        }
        if self.rows > 0 {
            Ok(Some(self.flush()?))
        } else {
            Ok(None)
        }
    }

    /// Decodes the tuple at the front of `buf` into the builders once all of
    /// it has arrived.
    fn read_tuple(&mut self) -> WireResult<TupleRead> {
        let line = self.line + 1;
        let expected = self.columns.len();
        if self.scan_pos == 0 {
            let Some(count) = be_i16_at(&self.buf, 0) else {
                return Ok(TupleRead::Incomplete);
            };
            if count == BINARY_TRAILER {
                self.line = line;
                self.buf.advance(2);
                return Ok(TupleRead::Trailer);
            }
            if usize::try_from(count).ok() != Some(expected) {
                return Err(WireError::copy_data(
                    "22P04",
                    format!("row field count is {count}, expected {expected}"),
                    line,
                ));
            }
            self.spans.clear();
            self.scan_pos = 2;
        }
        while self.spans.len() < expected {
            let Some(len) = be_i32_at(&self.buf, self.scan_pos) else {
                return Ok(TupleRead::Incomplete);
            };
            let start = self.scan_pos + 4;
            if len == -1 {
                self.spans.push(None);
                self.scan_pos = start;
                continue;
            }
            let len = usize::try_from(len)
                .map_err(|_| WireError::copy_data("22P04", "invalid field size", line))?;
            if len > MAX_BINARY_FIELD {
                return Err(WireError::copy_data(
                    "54000",
                    format!("COPY field of {len} bytes exceeds the limit of {MAX_BINARY_FIELD}"),
                    line,
                ));
            }
            let end = start + len;
            if self.buf.len() < end {
                return Ok(TupleRead::Incomplete);
            }
            self.spans.push(Some(start..end));
            self.scan_pos = end;
        }
        if self.rows == 0 {
            self.batch_first_line = line;
        }
        for (column, span) in self.columns.iter_mut().zip(&self.spans) {
            match span.as_ref().and_then(|range| self.buf.get(range.clone())) {
                None => column.append_null(),
                Some(value) => {
                    column.append(value).map_err(|e| e.at(line))?;
                    self.bytes += value.len();
                }
            }
        }
        self.buf.advance(self.scan_pos);
        self.scan_pos = 0;
        self.line = line;
        self.rows += 1;
        Ok(TupleRead::Row)
    }

    fn flush(&mut self) -> WireResult<RecordBatch> {
        let first_line = self.batch_first_line;
        let schema = self.schema.clone();
        let columns = self
            .columns
            .iter_mut()
            .zip(schema.fields())
            .map(|(column, field)| column.finish(field, first_line))
            .collect::<WireResult<Vec<_>>>()?;
        self.rows = 0;
        self.bytes = 0;
        assemble_batch(schema, columns, first_line)
    }
}

/// Checks the binary header at the front of `buf` and returns the length of
/// the header extension that follows it, or `None` until all of it has
/// arrived. A wrong signature is reported as soon as it shows; at the end of
/// input (`at_end`) a short header is reported with PostgreSQL's message for
/// the part that is missing.
fn parse_binary_header(buf: &[u8], at_end: bool) -> WireResult<Option<usize>> {
    let signature_ok = match buf.get(..BINARY_SIGNATURE.len()) {
        Some(signature) => signature == BINARY_SIGNATURE,
        None => !at_end && BINARY_SIGNATURE.starts_with(buf),
    };
    if !signature_ok {
        return Err(header_error("COPY file signature not recognized"));
    }
    let Some(flags) = be_i32_at(buf, BINARY_SIGNATURE.len()) else {
        return missing(at_end, "invalid COPY file header (missing flags)");
    };
    // The bits are unsigned in PostgreSQL's description of the format.
    let flags = flags as u32;
    if flags & BINARY_FLAG_OIDS != 0 {
        return Err(header_error("invalid COPY file header (WITH OIDS)"));
    }
    // The high 16 bits are "critical": a reader that does not know one must
    // refuse the stream. The low 16 bits may be ignored.
    if flags >> 16 != 0 {
        return Err(header_error(
            "unrecognized critical flags in COPY file header",
        ));
    }
    let Some(extension) = be_i32_at(buf, BINARY_SIGNATURE.len() + 4) else {
        return missing(at_end, "invalid COPY file header (missing length)");
    };
    match usize::try_from(extension) {
        Ok(extension) => Ok(Some(extension)),
        Err(_) => Err(header_error("invalid COPY file header (missing length)")),
    }
}

/// `None` (wait for more input) unless the input has ended, then `message`.
fn missing<T>(at_end: bool, message: &str) -> WireResult<Option<T>> {
    if at_end {
        Err(header_error(message))
    } else {
        Ok(None)
    }
}

/// A problem with the binary header, which belongs to no line.
fn header_error(message: &str) -> WireError {
    WireError::CopyData {
        sqlstate: "22P04",
        message: message.to_owned(),
        line: None,
    }
}

fn data_after_trailer(line: u64) -> WireError {
    WireError::copy_data("22P04", "received copy data after EOF marker", line)
}

fn rejected_before() -> WireError {
    WireError::protocol("08P01", "COPY data was already rejected")
}

/// The big-endian int16 at `at`, if `buf` holds it.
fn be_i16_at(buf: &[u8], at: usize) -> Option<i16> {
    let bytes = buf.get(at..)?.first_chunk::<2>()?;
    Some(i16::from_be_bytes(*bytes))
}

/// The big-endian int32 at `at`, if `buf` holds it.
fn be_i32_at(buf: &[u8], at: usize) -> Option<i32> {
    let bytes = buf.get(at..)?.first_chunk::<4>()?;
    Some(i32::from_be_bytes(*bytes))
}

/// A value that cannot be decoded, before the line it is on is known.
#[derive(Debug)]
struct ValueError {
    sqlstate: &'static str,
    message: String,
}

impl ValueError {
    fn new(sqlstate: &'static str, message: impl Into<String>) -> Self {
        ValueError {
            sqlstate,
            message: message.into(),
        }
    }

    /// A value shorter than its type's format: PostgreSQL's receive
    /// functions run out of message and call that a protocol violation.
    fn insufficient() -> Self {
        ValueError::new("08P01", "insufficient data left in message")
    }

    /// A value with bytes left over after its type's format.
    fn incorrect_format() -> Self {
        ValueError::new("22P03", "incorrect binary data format")
    }

    fn at(self, line: u64) -> WireError {
        WireError::copy_data(self.sqlstate, self.message, line)
    }
}

/// Reads a binary value front to back, as PostgreSQL's receive functions do.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], ValueError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or_else(ValueError::insufficient)?;
        self.0 = rest;
        Ok(*head)
    }

    /// Every byte must have been used.
    fn finish(self) -> Result<(), ValueError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ValueError::incorrect_format())
        }
    }
}

/// A value of exactly `N` bytes.
fn fixed<const N: usize>(value: &[u8]) -> Result<[u8; N], ValueError> {
    let mut reader = Reader(value);
    let bytes = reader.take::<N>()?;
    reader.finish()?;
    Ok(bytes)
}

/// One column of a binary COPY: the binary format its values come in and the
/// Arrow builder they are decoded into.
///
/// The format is that of the Postgres type Freshet announces for the column
/// (what a client such as asyncpg learns from a `SELECT … LIMIT 1` and
/// encodes with), so it follows the column's Arrow type.
enum BinaryColumn {
    Bool(BooleanBuilder),
    Int2(Int16Builder),
    Int4(Int32Builder),
    Int8(Int64Builder),
    Float4(Float32Builder),
    Float8(Float64Builder),
    /// text, varchar, bpchar, name, json: the UTF-8 text itself. Converted at
    /// flush like a text COPY field, so a non-string column announced as
    /// text loads exactly as it would from text.
    Text(StringBuilder),
    /// jsonb: a format version byte (1), then the JSON text.
    Jsonb(StringBuilder),
    /// numeric, kept as its decimal text so that rounding to the column's
    /// scale and overflow errors are those of text COPY.
    Numeric(StringBuilder),
    Bytea(BinaryBuilder),
    /// Days since 2000-01-01.
    Date(Date32Builder),
    /// Microseconds since midnight.
    Time(Time64MicrosecondBuilder),
    /// Microseconds since 2000-01-01 00:00 (UTC for timestamptz).
    Timestamp(TimestampMicrosecondBuilder),
    /// Microseconds, days, months.
    Interval(IntervalMonthDayNanoBuilder),
}

impl BinaryColumn {
    /// The decoder for `field`, or `None` when its Postgres type's binary
    /// format is not supported or cannot become the column's Arrow type.
    fn new(field: &FieldRef) -> Option<Self> {
        use BinaryColumn as C;
        let target = field.data_type();
        let (pg_type, _) = pg_type_for_field(field);
        // The Arrow type each builder produces; `None` for the text-like
        // ones, which `convert_column` turns into the column's type.
        let (column, built) = match pg_type {
            Type::BOOL => (C::Bool(BooleanBuilder::new()), Some(DataType::Boolean)),
            Type::INT2 => (C::Int2(Int16Builder::new()), Some(DataType::Int16)),
            Type::INT4 => (C::Int4(Int32Builder::new()), Some(DataType::Int32)),
            Type::INT8 => (C::Int8(Int64Builder::new()), Some(DataType::Int64)),
            Type::FLOAT4 => (C::Float4(Float32Builder::new()), Some(DataType::Float32)),
            Type::FLOAT8 => (C::Float8(Float64Builder::new()), Some(DataType::Float64)),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::UNKNOWN => {
                (C::Text(StringBuilder::new()), None)
            }
            Type::JSONB => (C::Jsonb(StringBuilder::new()), None),
            Type::NUMERIC => (C::Numeric(StringBuilder::new()), None),
            Type::BYTEA => (C::Bytea(BinaryBuilder::new()), Some(DataType::Binary)),
            Type::DATE => (C::Date(Date32Builder::new()), Some(DataType::Date32)),
            Type::TIME => (
                C::Time(Time64MicrosecondBuilder::new()),
                Some(DataType::Time64(TimeUnit::Microsecond)),
            ),
            Type::TIMESTAMP | Type::TIMESTAMPTZ => {
                // Built in the column's zone so that no cast reinterprets it.
                let tz = match target {
                    DataType::Timestamp(_, tz) => tz.clone(),
                    _ => None,
                };
                (
                    C::Timestamp(TimestampMicrosecondBuilder::new().with_timezone_opt(tz.clone())),
                    Some(DataType::Timestamp(TimeUnit::Microsecond, tz)),
                )
            }
            Type::INTERVAL => (
                C::Interval(IntervalMonthDayNanoBuilder::new()),
                Some(DataType::Interval(IntervalUnit::MonthDayNano)),
            ),
            _ => return None,
        };
        let convertible = match built {
            None => is_decodable(target),
            Some(built) => built == *target || can_cast_types(&built, target),
        };
        convertible.then_some(column)
    }

    fn append_null(&mut self) {
        match self {
            BinaryColumn::Bool(b) => b.append_null(),
            BinaryColumn::Int2(b) => b.append_null(),
            BinaryColumn::Int4(b) => b.append_null(),
            BinaryColumn::Int8(b) => b.append_null(),
            BinaryColumn::Float4(b) => b.append_null(),
            BinaryColumn::Float8(b) => b.append_null(),
            BinaryColumn::Text(b) | BinaryColumn::Jsonb(b) | BinaryColumn::Numeric(b) => {
                b.append_null()
            }
            BinaryColumn::Bytea(b) => b.append_null(),
            BinaryColumn::Date(b) => b.append_null(),
            BinaryColumn::Time(b) => b.append_null(),
            BinaryColumn::Timestamp(b) => b.append_null(),
            BinaryColumn::Interval(b) => b.append_null(),
        }
    }

    /// Decodes one non-NULL value and appends it; nothing is appended when
    /// the value is refused.
    fn append(&mut self, value: &[u8]) -> Result<(), ValueError> {
        match self {
            // Any non-zero byte is true, as in PostgreSQL's boolrecv.
            BinaryColumn::Bool(b) => {
                let [byte] = fixed(value)?;
                b.append_value(byte != 0);
            }
            BinaryColumn::Int2(b) => b.append_value(i16::from_be_bytes(fixed(value)?)),
            BinaryColumn::Int4(b) => b.append_value(i32::from_be_bytes(fixed(value)?)),
            BinaryColumn::Int8(b) => b.append_value(i64::from_be_bytes(fixed(value)?)),
            BinaryColumn::Float4(b) => b.append_value(f32::from_be_bytes(fixed(value)?)),
            BinaryColumn::Float8(b) => b.append_value(f64::from_be_bytes(fixed(value)?)),
            BinaryColumn::Text(b) => b.append_value(pg_text(value)?),
            BinaryColumn::Jsonb(b) => {
                let (&version, json) = value.split_first().ok_or_else(ValueError::insufficient)?;
                if version != 1 {
                    return Err(ValueError::new(
                        "22P03",
                        format!("unsupported jsonb version number {version}"),
                    ));
                }
                b.append_value(pg_text(json)?);
            }
            BinaryColumn::Numeric(b) => b.append_value(numeric_text(value)?),
            BinaryColumn::Bytea(b) => b.append_value(value),
            BinaryColumn::Date(b) => {
                let days = i32::from_be_bytes(fixed(value)?);
                // i32::MIN and i32::MAX are -infinity and infinity.
                if days == i32::MIN || days == i32::MAX {
                    return Err(ValueError::new("22008", "infinite dates are not supported"));
                }
                let days = days
                    .checked_add(PG_EPOCH_DAYS)
                    .ok_or_else(|| ValueError::new("22008", "date out of range"))?;
                b.append_value(days);
            }
            BinaryColumn::Time(b) => {
                let micros = i64::from_be_bytes(fixed(value)?);
                if !(0..=MICROS_PER_DAY).contains(&micros) {
                    return Err(ValueError::new("22008", "time out of range"));
                }
                b.append_value(micros);
            }
            BinaryColumn::Timestamp(b) => {
                let micros = i64::from_be_bytes(fixed(value)?);
                // i64::MIN and i64::MAX are -infinity and infinity.
                if micros == i64::MIN || micros == i64::MAX {
                    return Err(ValueError::new(
                        "22008",
                        "infinite timestamps are not supported",
                    ));
                }
                let micros = micros
                    .checked_add(PG_EPOCH_MICROS)
                    .ok_or_else(|| ValueError::new("22008", "timestamp out of range"))?;
                b.append_value(micros);
            }
            BinaryColumn::Interval(b) => {
                let mut reader = Reader(value);
                let micros = i64::from_be_bytes(reader.take()?);
                let days = i32::from_be_bytes(reader.take()?);
                let months = i32::from_be_bytes(reader.take()?);
                reader.finish()?;
                let nanos = micros
                    .checked_mul(1000)
                    .ok_or_else(|| ValueError::new("22008", "interval out of range"))?;
                b.append_value(IntervalMonthDayNano::new(months, days, nanos));
            }
        }
        Ok(())
    }

    /// The column built so far, in `field`'s type; the builder is left empty.
    fn finish(&mut self, field: &Field, first_line: u64) -> WireResult<ArrayRef> {
        let built: ArrayRef = match self {
            BinaryColumn::Bool(b) => Arc::new(b.finish()),
            BinaryColumn::Int2(b) => Arc::new(b.finish()),
            BinaryColumn::Int4(b) => Arc::new(b.finish()),
            BinaryColumn::Int8(b) => Arc::new(b.finish()),
            BinaryColumn::Float4(b) => Arc::new(b.finish()),
            BinaryColumn::Float8(b) => Arc::new(b.finish()),
            BinaryColumn::Text(b) | BinaryColumn::Jsonb(b) | BinaryColumn::Numeric(b) => {
                return convert_column(&b.finish(), field, first_line)
            }
            BinaryColumn::Bytea(b) => Arc::new(b.finish()),
            BinaryColumn::Date(b) => Arc::new(b.finish()),
            BinaryColumn::Time(b) => Arc::new(b.finish()),
            BinaryColumn::Timestamp(b) => Arc::new(b.finish()),
            BinaryColumn::Interval(b) => Arc::new(b.finish()),
        };
        if built.data_type() == field.data_type() {
            return Ok(built);
        }
        let strict = CastOptions {
            safe: false,
            format_options: ArrowFormatOptions::default(),
        };
        cast_with_options(&built, field.data_type(), &strict)
            .map_err(|e| WireError::copy_data("22003", e.to_string(), first_line))
    }
}

/// A text value as PostgreSQL's `textrecv` takes it: UTF-8 without NUL bytes
/// (which Postgres text cannot hold).
fn pg_text(value: &[u8]) -> Result<&str, ValueError> {
    let nul = value.iter().position(|&b| b == 0);
    match (std::str::from_utf8(value), nul) {
        (Ok(text), None) => Ok(text),
        (Ok(_), Some(at)) => Err(invalid_utf8(value, at)),
        (Err(e), nul) => Err(invalid_utf8(
            value,
            nul.map_or(e.valid_up_to(), |nul| nul.min(e.valid_up_to())),
        )),
    }
}

/// PostgreSQL's invalid-encoding error, which names the bytes of the bad
/// character starting at `at` (as many as its first byte announces).
fn invalid_utf8(value: &[u8], at: usize) -> ValueError {
    let rest = value.get(at..).unwrap_or_default();
    let announced = match rest.first() {
        Some(b) if b & 0xe0 == 0xc0 => 2,
        Some(b) if b & 0xf0 == 0xe0 => 3,
        Some(b) if b & 0xf8 == 0xf0 => 4,
        _ => 1,
    };
    let bytes = rest
        .iter()
        .take(announced)
        .map(|b| format!("0x{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    ValueError::new(
        "22021",
        format!("invalid byte sequence for encoding \"UTF8\": {bytes}"),
    )
}

/// The sign word of a binary numeric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumericSign {
    Positive,
    Negative,
    NaN,
    Infinity,
    NegativeInfinity,
}

impl NumericSign {
    fn from_wire(word: u16) -> Option<Self> {
        Some(match word {
            0x0000 => NumericSign::Positive,
            0x4000 => NumericSign::Negative,
            0xc000 => NumericSign::NaN,
            0xd000 => NumericSign::Infinity,
            0xf000 => NumericSign::NegativeInfinity,
            _ => return None,
        })
    }
}

/// The display scale's bits in a binary numeric; the others must be clear.
const NUMERIC_DSCALE_MASK: u16 = 0x3fff;

/// A binary numeric as decimal text, checked as PostgreSQL's `numeric_recv`
/// checks it.
///
/// The format is base-10000 digits: digit count, weight (the power of 10000
/// of the first digit), sign, display scale (decimal digits after the
/// point), then the digits. Digits beyond the display scale are dropped, as
/// `numeric_recv` does; NaN and the infinities become their text spellings,
/// which a decimal column refuses exactly as it does in text COPY.
fn numeric_text(value: &[u8]) -> Result<String, ValueError> {
    let mut reader = Reader(value);
    let ndigits = u16::from_be_bytes(reader.take()?);
    let weight = i32::from(i16::from_be_bytes(reader.take()?));
    let sign = NumericSign::from_wire(u16::from_be_bytes(reader.take()?))
        .ok_or_else(|| ValueError::new("22P03", "invalid sign in external \"numeric\" value"))?;
    let dscale = u16::from_be_bytes(reader.take()?);
    if dscale & !NUMERIC_DSCALE_MASK != 0 {
        return Err(ValueError::new(
            "22P03",
            "invalid scale in external \"numeric\" value",
        ));
    }
    let mut digits = Vec::with_capacity(usize::from(ndigits).min(value.len() / 2));
    for _ in 0..ndigits {
        let digit = i16::from_be_bytes(reader.take()?);
        let digit = u16::try_from(digit)
            .ok()
            .filter(|d| *d < 10_000)
            .ok_or_else(|| {
                ValueError::new("22P03", "invalid digit in external \"numeric\" value")
            })?;
        digits.push(digit);
    }
    reader.finish()?;
    let negative = match sign {
        NumericSign::Positive => false,
        NumericSign::Negative => true,
        NumericSign::NaN => return Ok("NaN".to_owned()),
        NumericSign::Infinity => return Ok("Infinity".to_owned()),
        NumericSign::NegativeInfinity => return Ok("-Infinity".to_owned()),
    };
    // The base-10000 digit of weight `weight - index`; zero outside the
    // digits sent.
    let digit_at = |index: i32| -> u16 {
        usize::try_from(index)
            .ok()
            .and_then(|i| digits.get(i))
            .copied()
            .unwrap_or(0)
    };
    let mut text = String::new();
    if negative {
        text.push('-');
    }
    let integer_start = text.len();
    for index in 0..=weight {
        let digit = digit_at(index);
        if text.len() == integer_start {
            // No leading zeros.
            if digit != 0 {
                text.push_str(&digit.to_string());
            }
        } else {
            text.push_str(&format!("{digit:04}"));
        }
    }
    if text.len() == integer_start {
        text.push('0');
    }
    if dscale > 0 {
        text.push('.');
        for place in 0..i32::from(dscale) {
            let digit = digit_at(weight + 1 + place / 4);
            let decimal = digit / 10u16.pow(3 - (place % 4) as u32) % 10;
            text.push(char::from(b'0' + decimal as u8));
        }
    }
    Ok(text)
}

/// The 11 bytes that open every binary COPY stream: `PGCOPY`, then newline,
/// 0xff, carriage return and NUL, so that a stream mangled by newline
/// translation, 7-bit channels or C-string handling is recognised as such.
const BINARY_SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// The tuple "field count" that ends a binary COPY stream.
const BINARY_TRAILER: i16 = -1;

/// Encoder for `COPY … TO STDOUT` in text, CSV or binary format.
pub(crate) struct CopyOutEncoder {
    wire: WireSchema,
    options: CopyOptions,
    /// Text or CSV; `None` in binary mode.
    dialect: Option<Dialect>,
    punct: Punctuation,
    names: Vec<String>,
}

impl CopyOutEncoder {
    pub(crate) fn new(schema: &SchemaRef, options: CopyOptions) -> WireResult<Self> {
        let dialect = Dialect::of(options.format);
        // Binary COPY values are exactly binary DataRow fields (length prefix
        // included), so the extended protocol's encoder serves both.
        let format = match dialect {
            Some(_) => Format::UnifiedText,
            None => Format::UnifiedBinary,
        };
        Ok(CopyOutEncoder {
            wire: WireSchema::new(schema, &format)?,
            punct: Punctuation::new(&options)?,
            options,
            dialect,
            names: schema.fields().iter().map(|f| f.name().clone()).collect(),
        })
    }

    pub(crate) fn columns(&self) -> usize {
        self.names.len()
    }

    /// The CopyOutResponse that starts this COPY.
    pub(crate) fn response(&self) -> WireResult<CopyOutResponse> {
        let code = format_code(self.options.format);
        Ok(CopyOutResponse::new(
            code as i8,
            column_count(self.columns())?,
            vec![code; self.columns()],
        ))
    }

    /// What precedes the rows: the header line (`None` when HEADER is off),
    /// or in binary mode the file header (signature, no flags, no extension).
    pub(crate) fn header(&self) -> Option<Vec<u8>> {
        let Some(dialect) = self.dialect else {
            let mut out = BINARY_SIGNATURE.to_vec();
            out.extend_from_slice(&0i32.to_be_bytes());
            out.extend_from_slice(&0i32.to_be_bytes());
            return Some(out);
        };
        if !self.options.header {
            return None;
        }
        let mut out = Vec::new();
        for (i, name) in self.names.iter().enumerate() {
            if i > 0 {
                out.push(self.punct.delimiter);
            }
            self.write_value(dialect, &mut out, Some(name.as_bytes()));
        }
        out.push(b'\n');
        Some(out)
    }

    /// What follows the rows, in its own CopyData message before CopyDone:
    /// the binary trailer, which tells a reader the stream was not cut short
    /// (text and CSV have none).
    pub(crate) fn trailer(&self) -> Option<Vec<u8>> {
        match self.dialect {
            Some(_) => None,
            None => Some(BINARY_TRAILER.to_be_bytes().to_vec()),
        }
    }

    /// Readies a result batch for [`CopyOutEncoder::encode_row`].
    pub(crate) fn prepare<'a>(&'a self, batch: &RecordBatch) -> WireResult<PreparedBatch<'a>> {
        self.wire.prepare(batch)
    }

    /// One row of `batch` as a COPY line (with its newline), or in binary
    /// mode as a tuple (field count, then each field's length and bytes).
    /// Postgres sends each row in its own CopyData message and clients rely
    /// on it.
    pub(crate) fn encode_row(
        &self,
        batch: &mut PreparedBatch<'_>,
        row: usize,
        scratch: &mut BytesMut,
    ) -> WireResult<Vec<u8>> {
        let Some(dialect) = self.dialect else {
            let mut tuple = BytesMut::new();
            tuple.put_i16(column_count(self.names.len())?);
            for col in 0..self.names.len() {
                batch.encode_field(col, row, &mut tuple)?;
            }
            return Ok(tuple.to_vec());
        };
        let mut line = Vec::new();
        for col in 0..self.names.len() {
            if col > 0 {
                line.push(self.punct.delimiter);
            }
            let value = batch.field_text(col, row, scratch)?;
            self.write_value(dialect, &mut line, value.as_deref());
        }
        line.push(b'\n');
        Ok(line)
    }

    fn write_value(&self, dialect: Dialect, out: &mut Vec<u8>, value: Option<&[u8]>) {
        let Some(value) = value else {
            out.extend_from_slice(self.options.null.as_bytes());
            return;
        };
        let Punctuation {
            delimiter,
            quote,
            escape,
        } = self.punct;
        match dialect {
            Dialect::Text => {
                for &b in value {
                    match b {
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        b'\t' => out.extend_from_slice(b"\\t"),
                        0x08 => out.extend_from_slice(b"\\b"),
                        0x0c => out.extend_from_slice(b"\\f"),
                        0x0b => out.extend_from_slice(b"\\v"),
                        d if d == delimiter => {
                            out.push(b'\\');
                            out.push(d);
                        }
                        other => out.push(other),
                    }
                }
            }
            Dialect::Csv => {
                let needs_quotes = value == self.options.null.as_bytes()
                    || value == b"\\."
                    || value
                        .iter()
                        .any(|&b| b == delimiter || b == quote || b == b'\n' || b == b'\r');
                if !needs_quotes {
                    out.extend_from_slice(value);
                    return;
                }
                out.push(quote);
                for &b in value {
                    if b == quote || b == escape {
                        out.push(escape);
                    }
                    out.push(b);
                }
                out.push(quote);
            }
        }
    }
}

/// The decoder of the COPY in progress on a connection.
#[derive(Default)]
pub(crate) struct CopyInSlot(pub(crate) Mutex<Option<CopyInDecoder>>);

/// Installs a decoder for `target` on the connection; returns the column count
/// to announce in CopyInResponse.
pub(crate) async fn begin_copy_in<C: ClientInfo + ?Sized>(
    client: &C,
    target: CopyInTarget,
) -> WireResult<usize> {
    let decoder = CopyInDecoder::new(target)?;
    let columns = decoder.columns();
    let slot = client
        .session_extensions()
        .get_or_insert_with(CopyInSlot::default);
    *slot.0.lock().await = Some(decoder);
    Ok(columns)
}

/// Receives CopyData/CopyDone/CopyFail for `COPY … FROM STDIN`.
#[derive(Debug, Default)]
pub struct FreshetCopyHandler;

impl FreshetCopyHandler {
    async fn take_decoder<C: ClientInfo + ?Sized>(client: &C) -> WireResult<CopyInDecoder> {
        let slot = client
            .session_extensions()
            .get_or_insert_with(CopyInSlot::default);
        let decoder = slot.0.lock().await.take();
        decoder.ok_or_else(|| WireError::protocol("08P01", "no COPY FROM STDIN in progress"))
    }

    async fn put_decoder<C: ClientInfo + ?Sized>(client: &C, decoder: CopyInDecoder) {
        let slot = client
            .session_extensions()
            .get_or_insert_with(CopyInSlot::default);
        *slot.0.lock().await = Some(decoder);
    }

    /// Abandons the COPY in the engine and syncs the transaction status.
    async fn abort<C: ClientInfo + ?Sized>(client: &mut C, reason: &str) {
        if let Ok(slot) = session_of(client) {
            let mut session = slot.lock().await;
            session.copy_in_abort(reason);
            client.set_transaction_status(pg_status(session.transaction_status()));
        }
    }

    async fn data<C: ClientInfo + ?Sized>(client: &mut C, data: &[u8]) -> WireResult<()> {
        let mut decoder = Self::take_decoder(client).await?;
        let batches = decoder.push(data)?;
        if !batches.is_empty() {
            session_of(client)?
                .run(move |session| {
                    Box::pin(async move {
                        for batch in batches {
                            session.copy_in_batch(batch).await?;
                        }
                        Ok::<_, EngineError>(())
                    })
                })
                .await??;
        }
        Self::put_decoder(client, decoder).await;
        Ok(())
    }

    async fn done<C: ClientInfo + ?Sized>(client: &mut C) -> WireResult<CommandComplete> {
        let mut decoder = Self::take_decoder(client).await?;
        let last = decoder.finish()?;
        let slot = session_of(client)?;
        let (tag, status) = slot
            .run(move |session| {
                Box::pin(async move {
                    if let Some(batch) = last {
                        session.copy_in_batch(batch).await?;
                    }
                    let tag = session.copy_in_finish().await?;
                    Ok::<_, EngineError>((tag, session.transaction_status()))
                })
            })
            .await??;
        client.set_transaction_status(pg_status(status));
        Ok(crate::query::command_complete(&tag))
    }
}

#[async_trait]
impl CopyHandler for FreshetCopyHandler {
    async fn on_copy_data<C>(&self, client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Err(err) = Self::data(client, &copy_data.data).await {
            Self::abort(client, &err.to_string()).await;
            return Err(err.into());
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match Self::done(client).await {
            Ok(complete) => {
                client
                    .send(PgWireBackendMessage::CommandComplete(complete))
                    .await?;
                Ok(())
            }
            Err(err) => {
                Self::abort(client, &err.to_string()).await;
                Err(err.into())
            }
        }
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // Drop the decoder (ignore "no COPY in progress").
        let _ = Self::take_decoder(client).await;
        let message = format!("COPY from stdin failed: {}", fail.message);
        Self::abort(client, &message).await;
        WireError::protocol("57014", message).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray as SA};
    use datafusion::arrow::datatypes::{Field, Schema};

    fn target(format: CopyFormat, header: bool) -> CopyInTarget {
        let (delimiter, null) = match format {
            CopyFormat::Text | CopyFormat::Binary => ('\t', "\\N".to_owned()),
            CopyFormat::Csv => (',', String::new()),
        };
        CopyInTarget {
            schema: Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, true),
                Field::new("name", DataType::Utf8, true),
            ])),
            options: CopyOptions {
                format,
                delimiter,
                null,
                header,
                quote: '"',
                escape: '"',
            },
        }
    }

    fn binary_options() -> CopyOptions {
        CopyOptions {
            format: CopyFormat::Binary,
            delimiter: '\t',
            null: "\\N".to_owned(),
            header: false,
            quote: '"',
            escape: '"',
        }
    }

    fn binary_target(schema: SchemaRef) -> CopyInTarget {
        CopyInTarget {
            schema,
            options: binary_options(),
        }
    }

    /// The two-column (`id` bigint, `name` text) target of the text tests.
    fn id_name() -> CopyInTarget {
        binary_target(target(CopyFormat::Binary, false).schema)
    }

    fn binary_header() -> Vec<u8> {
        let mut out = BINARY_SIGNATURE.to_vec();
        out.extend_from_slice(&[0; 8]);
        out
    }

    fn tuple(fields: &[Option<&[u8]>]) -> Vec<u8> {
        let mut out = (fields.len() as i16).to_be_bytes().to_vec();
        for field in fields {
            match field {
                None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(bytes) => {
                    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                    out.extend_from_slice(bytes);
                }
            }
        }
        out
    }

    const TRAILER: [u8; 2] = [0xff, 0xff];

    /// The SQLSTATE, message and line of a COPY data error.
    fn failure<T: Debug>(result: WireResult<T>) -> (&'static str, String, Option<u64>) {
        match result {
            Err(WireError::CopyData {
                sqlstate,
                message,
                line,
            }) => (sqlstate, message, line),
            other => panic!("expected a COPY data error, got {other:?}"),
        }
    }

    /// Feeds `stream` in the given chunks and returns the decoded rows as one
    /// batch.
    fn decode_binary(target: CopyInTarget, chunks: &[&[u8]]) -> WireResult<Option<RecordBatch>> {
        let mut d = CopyInDecoder::new(target)?;
        let mut batches = Vec::new();
        for chunk in chunks {
            batches.extend(d.push(chunk)?);
        }
        batches.extend(d.finish()?);
        if batches.is_empty() {
            return Ok(None);
        }
        let schema = batches[0].schema();
        Ok(Some(
            datafusion::arrow::compute::concat_batches(&schema, &batches).unwrap(),
        ))
    }

    /// A batch of most of the types binary COPY carries, NULLs included.
    fn many_types() -> RecordBatch {
        use datafusion::arrow::array::{
            BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array,
            IntervalMonthDayNanoArray, Time64MicrosecondArray, TimestampMicrosecondArray,
        };
        let json = Field::new("doc", DataType::Utf8, true).with_metadata(
            [(
                freshet_engine::types::EXTENSION_NAME.to_owned(),
                freshet_engine::types::JSON_EXTENSION.to_owned(),
            )]
            .into(),
        );
        let schema = Arc::new(Schema::new(vec![
            Field::new("i4", DataType::Int32, true),
            Field::new("i8", DataType::Int64, false),
            Field::new("f8", DataType::Float64, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("t", DataType::Utf8, true),
            Field::new("n", DataType::Decimal128(10, 2), true),
            Field::new("d", DataType::Date32, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new(
                "tz",
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                true,
            ),
            Field::new("by", DataType::Binary, true),
            Field::new("tm", DataType::Time64(TimeUnit::Microsecond), true),
            Field::new("iv", DataType::Interval(IntervalUnit::MonthDayNano), true),
            json,
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(vec![Some(i32::MIN), None, Some(7)])),
            Arc::new(Int64Array::from(vec![i64::MAX, 0, -1])),
            Arc::new(Float64Array::from(vec![Some(0.1), Some(-1e300), None])),
            Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
            Arc::new(SA::from(vec![Some("héllo ☃ \t\n"), None, Some("")])),
            Arc::new(
                Decimal128Array::from(vec![Some(12345), Some(-5), None])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
            Arc::new(Date32Array::from(vec![Some(19_723), Some(-719_162), None])),
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(1_704_103_200_123_456),
                Some(-1),
                None,
            ])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(1_704_103_200_000_001), None, Some(0)])
                    .with_timezone("+00:00"),
            ),
            Arc::new(BinaryArray::from(vec![
                Some(&b"\x00\xff\\x"[..]),
                Some(&b""[..]),
                None,
            ])),
            Arc::new(Time64MicrosecondArray::from(vec![
                Some(0),
                Some(86_399_999_999),
                None,
            ])),
            Arc::new(IntervalMonthDayNanoArray::from(vec![
                Some(IntervalMonthDayNano::new(14, -3, 4_000_005_000)),
                None,
                Some(IntervalMonthDayNano::new(0, 0, -1000)),
            ])),
            Arc::new(SA::from(vec![Some(r#"{"a": [1, null]}"#), None, Some("3")])),
        ];
        RecordBatch::try_new(schema, columns).unwrap()
    }

    /// `batch` as a complete binary COPY stream, written by the COPY TO encoder.
    fn binary_stream(batch: &RecordBatch) -> Vec<u8> {
        let enc = CopyOutEncoder::new(&batch.schema(), binary_options()).unwrap();
        let mut stream = enc.header().unwrap();
        let mut prepared = enc.prepare(batch).unwrap();
        let mut scratch = BytesMut::new();
        for row in 0..batch.num_rows() {
            stream.extend(enc.encode_row(&mut prepared, row, &mut scratch).unwrap());
        }
        stream.extend(enc.trailer().unwrap());
        stream
    }

    #[test]
    fn binary_output_layout() {
        let t = id_name();
        let batch = RecordBatch::try_new(
            t.schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(SA::from(vec![Some("é"), Some("")])),
            ],
        )
        .unwrap();
        let mut expected = binary_header();
        expected.extend(tuple(&[Some(&1i64.to_be_bytes()), Some("é".as_bytes())]));
        expected.extend(tuple(&[None, Some(b"")]));
        expected.extend(TRAILER);
        assert_eq!(binary_stream(&batch), expected);
        let enc = CopyOutEncoder::new(&t.schema, binary_options()).unwrap();
        assert_eq!(
            enc.response().unwrap(),
            CopyOutResponse::new(1, 2, vec![1, 1])
        );
        let text = target(CopyFormat::Text, false);
        let text = CopyOutEncoder::new(&text.schema, text.options).unwrap();
        assert!(text.trailer().is_none());
        assert_eq!(
            text.response().unwrap(),
            CopyOutResponse::new(0, 2, vec![0, 0])
        );
        assert_eq!(
            copy_in_response(CopyFormat::Csv, 3).unwrap(),
            CopyInResponse::new(0, 3, vec![0; 3])
        );
    }

    /// Whatever COPY TO writes in binary, COPY FROM reads back unchanged.
    #[test]
    fn binary_round_trip_of_many_types() {
        let batch = many_types();
        let stream = binary_stream(&batch);
        let back = decode_binary(binary_target(batch.schema()), &[&stream])
            .unwrap()
            .unwrap();
        assert_eq!(back, batch);
    }

    /// A stream written by PostgreSQL 15's `COPY (SELECT …) TO STDOUT (FORMAT
    /// binary)`, so the decoder is checked against the real thing and not
    /// only against Freshet's own encoder.
    #[test]
    fn binary_input_written_by_postgres() {
        use datafusion::arrow::array::{
            BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array,
            IntervalMonthDayNanoArray, Time64MicrosecondArray, TimestampMicrosecondArray,
        };
        // SELECT 42::int4, 'ünï'::text, 1234567.891::numeric(12,3),
        //   -0.5::numeric(12,3), '1999-12-31'::date,
        //   '2024-01-01 10:00:00.123456'::timestamp,
        //   '2024-01-01 10:00:00.5+02'::timestamptz, '\x00ff'::bytea,
        //   '23:59:59.999999'::time, '1 year 2 mons -3 days 04:05:06.7'::interval,
        //   true, 2.5::float8, NULL::int8
        const HEX: &str = "5047434f50590aff0d0a000000000000000000000d000000040000002a00000005c3bc\
            6ec3af0000000e0003000100000003007b11d722ce0000000a0001ffff4000000313880000\
            0004ffffffff000000080002b0de36af8a40000000080002b0dc898e01200000000200ff00\
            000008000000141dd75fff00000010000000036c966ee0fffffffd0000000e000000010100\
            0000084004000000000000ffffffffffff";
        let stream = (0..HEX.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&HEX[i..i + 2], 16).unwrap())
            .collect::<Vec<_>>();
        let utc = Some("+00:00".into());
        let schema = Arc::new(Schema::new(vec![
            Field::new("i4", DataType::Int32, true),
            Field::new("t", DataType::Utf8, true),
            Field::new("n", DataType::Decimal128(12, 3), true),
            Field::new("neg", DataType::Decimal128(12, 3), true),
            Field::new("d", DataType::Date32, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new("tz", DataType::Timestamp(TimeUnit::Microsecond, utc), true),
            Field::new("by", DataType::Binary, true),
            Field::new("tm", DataType::Time64(TimeUnit::Microsecond), true),
            Field::new("iv", DataType::Interval(IntervalUnit::MonthDayNano), true),
            Field::new("b", DataType::Boolean, true),
            Field::new("f", DataType::Float64, true),
            Field::new("i8", DataType::Int64, true),
        ]));
        let expected = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int32Array::from(vec![42])),
                Arc::new(SA::from(vec!["ünï"])),
                Arc::new(
                    Decimal128Array::from(vec![1_234_567_891])
                        .with_precision_and_scale(12, 3)
                        .unwrap(),
                ),
                Arc::new(
                    Decimal128Array::from(vec![-500])
                        .with_precision_and_scale(12, 3)
                        .unwrap(),
                ),
                Arc::new(Date32Array::from(vec![10_956])),
                Arc::new(TimestampMicrosecondArray::from(vec![1_704_103_200_123_456])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![1_704_096_000_500_000])
                        .with_timezone("+00:00"),
                ),
                Arc::new(BinaryArray::from(vec![&b"\x00\xff"[..]])),
                Arc::new(Time64MicrosecondArray::from(vec![86_399_999_999])),
                Arc::new(IntervalMonthDayNanoArray::from(vec![
                    IntervalMonthDayNano::new(14, -3, 14_706_700_000_000),
                ])),
                Arc::new(BooleanArray::from(vec![true])),
                Arc::new(Float64Array::from(vec![2.5])),
                Arc::new(Int64Array::from(vec![None])),
            ],
        )
        .unwrap();
        let back = decode_binary(binary_target(schema), &[&stream])
            .unwrap()
            .unwrap();
        assert_eq!(back, expected);
        // and Freshet writes the same bytes back
        assert_eq!(binary_stream(&expected), stream);
    }

    /// CopyData messages may split the stream anywhere, even inside the
    /// signature or a length prefix.
    #[test]
    fn binary_split_at_every_byte_boundary() {
        let batch = many_types();
        let stream = binary_stream(&batch);
        for at in 0..=stream.len() {
            let (a, b) = stream.split_at(at);
            let back = decode_binary(binary_target(batch.schema()), &[a, b])
                .unwrap()
                .unwrap();
            assert_eq!(back, batch, "split at {at}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        let back = decode_binary(binary_target(batch.schema()), &bytes)
            .unwrap()
            .unwrap();
        assert_eq!(back, batch, "one byte at a time");
    }

    #[test]
    fn binary_bad_signature() {
        let mut stream = binary_header();
        stream[5] = b'X';
        stream.extend(TRAILER);
        let (sqlstate, message, line) = failure(decode_binary(id_name(), &[&stream]));
        assert_eq!(
            (sqlstate, message.as_str(), line),
            ("22P04", "COPY file signature not recognized", None)
        );
        // seen before the whole signature arrives, and a short stream is one too
        let mut d = CopyInDecoder::new(id_name()).unwrap();
        assert_eq!(failure(d.push(b"PGCOPY\r")).0, "22P04");
        assert!(d.push(b"").is_err(), "a failed decoder stays failed");
        for short in [&b""[..], b"PGCO"] {
            let (_, message, _) = failure(decode_binary(id_name(), &[short]));
            assert_eq!(message, "COPY file signature not recognized");
        }
    }

    #[test]
    fn binary_header_flags_and_extension() {
        let with_flags = |flags: u32| {
            let mut stream = BINARY_SIGNATURE.to_vec();
            stream.extend(flags.to_be_bytes());
            stream.extend(0i32.to_be_bytes());
            stream
        };
        let (_, message, _) = failure(decode_binary(id_name(), &[&with_flags(1 << 16)]));
        assert_eq!(message, "invalid COPY file header (WITH OIDS)");
        let (_, message, _) = failure(decode_binary(id_name(), &[&with_flags(1 << 17)]));
        assert_eq!(message, "unrecognized critical flags in COPY file header");
        // non-critical flags are ignored
        assert!(decode_binary(id_name(), &[&with_flags(1)])
            .unwrap()
            .is_none());
        let (_, message, _) = failure(decode_binary(id_name(), &[&with_flags(0)[..13]]));
        assert_eq!(message, "invalid COPY file header (missing flags)");
        let (_, message, _) = failure(decode_binary(id_name(), &[&with_flags(0)[..17]]));
        assert_eq!(message, "invalid COPY file header (missing length)");

        // a header extension is skipped, even split across chunks
        let mut stream = BINARY_SIGNATURE.to_vec();
        stream.extend(0i32.to_be_bytes());
        stream.extend(3i32.to_be_bytes());
        stream.extend(b"ext");
        stream.extend(tuple(&[Some(&5i64.to_be_bytes()), Some(b"x")]));
        stream.extend(TRAILER);
        let (a, b) = stream.split_at(BINARY_HEADER_LEN + 1);
        let batch = decode_binary(id_name(), &[a, b]).unwrap().unwrap();
        assert_eq!(batch.num_rows(), 1);
        let (_, message, _) = failure(decode_binary(
            id_name(),
            &[&stream[..BINARY_HEADER_LEN + 2]],
        ));
        assert_eq!(message, "invalid COPY file header (wrong length)");
    }

    #[test]
    fn binary_truncated_tuple() {
        let mut stream = binary_header();
        stream.extend(tuple(&[Some(&1i64.to_be_bytes()), Some(b"a")]));
        let second = tuple(&[Some(&2i64.to_be_bytes()), Some(b"bc")]);
        // cut inside the field count, a length and a value
        for cut in [1, 4, 12, second.len() - 1] {
            let mut truncated = stream.clone();
            truncated.extend(&second[..cut]);
            let (sqlstate, message, line) = failure(decode_binary(id_name(), &[&truncated]));
            assert_eq!(
                (sqlstate, message.as_str(), line),
                ("22P04", "unexpected EOF in COPY data", Some(2)),
                "cut at {cut}"
            );
        }
        // a negative length other than -1
        let mut bad = binary_header();
        bad.extend(2i16.to_be_bytes());
        bad.extend((-2i32).to_be_bytes());
        let (_, message, line) = failure(decode_binary(id_name(), &[&bad]));
        assert_eq!((message.as_str(), line), ("invalid field size", Some(1)));
    }

    #[test]
    fn binary_wrong_field_count() {
        for fields in [
            &[Some(&b"\0\0\0\0\0\0\0\x01"[..])][..],
            &[None, None, None],
            &[],
        ] {
            let mut stream = binary_header();
            stream.extend(tuple(fields));
            let (sqlstate, message, line) = failure(decode_binary(id_name(), &[&stream]));
            assert_eq!(sqlstate, "22P04");
            assert_eq!(
                message,
                format!("row field count is {}, expected 2", fields.len())
            );
            assert_eq!(line, Some(1));
        }
    }

    #[test]
    fn binary_trailer() {
        let mut stream = binary_header();
        stream.extend(tuple(&[Some(&1i64.to_be_bytes()), None]));
        // the trailer may come alone; nothing may follow it
        let batch = decode_binary(id_name(), &[&stream, &TRAILER, b""])
            .unwrap()
            .unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert!(batch.column(1).is_null(0));
        let (sqlstate, message, line) =
            failure(decode_binary(id_name(), &[&stream, &TRAILER, b"x"]));
        assert_eq!(
            (sqlstate, message.as_str(), line),
            ("22P04", "received copy data after EOF marker", Some(2))
        );
        let mut after = stream.clone();
        after.extend(TRAILER);
        after.extend(tuple(&[None, None]));
        assert_eq!(failure(decode_binary(id_name(), &[&after])).0, "22P04");
        // like PostgreSQL, a stream may end without its trailer
        let batch = decode_binary(id_name(), &[&stream]).unwrap().unwrap();
        assert_eq!(batch.num_rows(), 1);
        // an empty COPY is the header and the trailer
        let mut empty = binary_header();
        empty.extend(TRAILER);
        assert!(decode_binary(id_name(), &[&empty]).unwrap().is_none());
    }

    /// Values are checked as PostgreSQL's receive functions check them.
    #[test]
    fn binary_bad_values() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int32, true),
            Field::new("t", DataType::Utf8, true),
            Field::new("n", DataType::Decimal128(10, 2), true),
            Field::new("d", DataType::Date32, true),
            Field::new("tm", DataType::Time64(TimeUnit::Microsecond), true),
        ]));
        let row = |column: usize, value: &[u8]| {
            let mut fields = [None; 5];
            fields[column] = Some(value);
            let mut stream = binary_header();
            stream.extend(tuple(&[None; 5]));
            stream.extend(tuple(&fields));
            failure(decode_binary(binary_target(schema.clone()), &[&stream]))
        };
        let numeric = |words: &[u16]| {
            words
                .iter()
                .flat_map(|w| w.to_be_bytes())
                .collect::<Vec<_>>()
        };
        let cases: Vec<(usize, Vec<u8>, &str, &str)> = vec![
            (0, vec![0; 2], "08P01", "insufficient data left in message"),
            (0, vec![0; 5], "22P03", "incorrect binary data format"),
            (
                1,
                b"a\xffb".to_vec(),
                "22021",
                "invalid byte sequence for encoding \"UTF8\": 0xff",
            ),
            (
                1,
                b"a\0b".to_vec(),
                "22021",
                "invalid byte sequence for encoding \"UTF8\": 0x00",
            ),
            (
                1,
                b"\xe2\x28\xa1".to_vec(),
                "22021",
                "invalid byte sequence for encoding \"UTF8\": 0xe2 0x28 0xa1",
            ),
            (
                2,
                numeric(&[1, 0, 0x1234, 0, 5]),
                "22P03",
                "invalid sign in external \"numeric\" value",
            ),
            (
                2,
                numeric(&[1, 0, 0, 0x4000, 5]),
                "22P03",
                "invalid scale in external \"numeric\" value",
            ),
            (
                2,
                numeric(&[1, 0, 0, 0, 10_000]),
                "22P03",
                "invalid digit in external \"numeric\" value",
            ),
            (
                2,
                numeric(&[2, 0, 0, 0, 5]),
                "08P01",
                "insufficient data left in message",
            ),
            (
                2,
                numeric(&[0, 0, 0xc000, 0]),
                "22P02",
                "invalid input syntax for type numeric: \"NaN\"",
            ),
            (
                3,
                i32::MAX.to_be_bytes().to_vec(),
                "22008",
                "infinite dates are not supported",
            ),
            (
                4,
                86_400_000_001i64.to_be_bytes().to_vec(),
                "22008",
                "time out of range",
            ),
        ];
        for (column, value, sqlstate, message) in cases {
            let got = row(column, &value);
            assert_eq!(got, (sqlstate, message.to_owned(), Some(2)), "{value:?}");
        }
    }

    #[test]
    fn binary_not_null_and_unsupported_columns() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let mut stream = binary_header();
        stream.extend(tuple(&[None]));
        let (sqlstate, _, _) = failure(decode_binary(binary_target(schema), &[&stream]));
        assert_eq!(sqlstate, "23502");

        let schema = Arc::new(Schema::new(vec![Field::new(
            "l",
            DataType::new_list(DataType::Int32, true),
            true,
        )]));
        match CopyInDecoder::new(binary_target(schema)) {
            Err(WireError::Protocol { sqlstate, .. }) => assert_eq!(sqlstate, "0A000"),
            Err(other) => panic!("unexpected {other:?}"),
            Ok(_) => panic!("an int[] column was accepted"),
        }
    }

    #[test]
    fn numeric_rendering() {
        let numeric = |ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]| {
            let mut v = Vec::new();
            for word in [ndigits, weight as u16, sign, dscale].iter().chain(digits) {
                v.extend(word.to_be_bytes());
            }
            numeric_text(&v).unwrap()
        };
        assert_eq!(numeric(2, 0, 0, 3, &[12, 3450]), "12.345");
        assert_eq!(
            numeric(2, 0, 0, 2, &[1, 2345]),
            "1.23",
            "digits beyond dscale"
        );
        assert_eq!(numeric(1, -1, 0, 4, &[5]), "0.0005");
        assert_eq!(numeric(1, -2, 0x4000, 8, &[5]), "-0.00000005");
        assert_eq!(numeric(1, 2, 0, 0, &[1]), "100000000");
        assert_eq!(numeric(3, 1, 0x4000, 1, &[0, 7, 5000]), "-7.5");
        assert_eq!(numeric(0, 0, 0, 2, &[]), "0.00");
        assert_eq!(numeric(0, 0, 0xd000, 0, &[]), "Infinity");
    }

    #[test]
    fn text_rows_split_across_chunks() {
        let mut d = CopyInDecoder::new(target(CopyFormat::Text, false)).unwrap();
        assert!(d.push(b"1\ta\\tb\n2\t\\N\n3\t").unwrap().is_empty());
        assert!(d.push(b"x\\\\y").unwrap().is_empty());
        let batch = d.finish().unwrap().unwrap();
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let names = batch.column(1).as_any().downcast_ref::<SA>().unwrap();
        assert_eq!(ids.values(), &[1, 2, 3]);
        assert_eq!(names.value(0), "a\tb");
        assert!(names.is_null(1));
        assert_eq!(names.value(2), "x\\y");
    }

    #[test]
    fn csv_quoted_newlines_and_header() {
        let mut d = CopyInDecoder::new(target(CopyFormat::Csv, true)).unwrap();
        d.push(b"id,name\n1,\"multi\nline, \"\"quoted\"\"\"\n2,\n3,\"\"\n")
            .unwrap();
        let batch = d.finish().unwrap().unwrap();
        let names = batch.column(1).as_any().downcast_ref::<SA>().unwrap();
        assert_eq!(names.value(0), "multi\nline, \"quoted\"");
        assert!(names.is_null(1));
        assert_eq!(names.value(2), "");
    }

    #[test]
    fn bad_integer_reports_line() {
        let mut d = CopyInDecoder::new(target(CopyFormat::Csv, true)).unwrap();
        d.push(b"id,name\n1,a\nabc,b\n").unwrap();
        match d.finish() {
            Err(WireError::CopyData { sqlstate, line, .. }) => {
                assert_eq!(sqlstate, "22P02");
                assert_eq!(line, Some(3));
            }
            other => panic!(
                "unexpected {other:?}",
                other = other.map(|b| b.map(|b| b.num_rows()))
            ),
        }
    }

    /// Fields share one reused buffer: NULLs, empty quoted strings and
    /// escapes stay apart from their neighbours, and a row with invalid
    /// UTF-8 is refused whole (22021) with its line.
    #[test]
    fn fields_of_consecutive_rows_stay_apart() {
        let mut d = CopyInDecoder::new(target(CopyFormat::Csv, false)).unwrap();
        d.push(b"1,\n2,\"\"\n3,\"a,\"\"b\"\"\"\n").unwrap();
        let batch = d.finish().unwrap().unwrap();
        let names = batch.column(1).as_any().downcast_ref::<SA>().unwrap();
        assert!(names.is_null(0), "an unquoted empty field is NULL");
        assert_eq!(names.value(1), "", "a quoted empty field is not");
        assert_eq!(names.value(2), "a,\"b\"");

        let mut d = CopyInDecoder::new(target(CopyFormat::Text, false)).unwrap();
        match d.push(b"1\tok\n2\t\xff\n") {
            Err(WireError::CopyData { sqlstate, line, .. }) => {
                assert_eq!(sqlstate, "22021");
                assert_eq!(line, Some(2));
            }
            other => panic!("unexpected {other:?}", other = other.map(|b| b.len())),
        }
    }

    #[test]
    fn column_count_mismatch() {
        let mut d = CopyInDecoder::new(target(CopyFormat::Text, false)).unwrap();
        assert!(d.push(b"1\n").is_err());
    }

    #[test]
    fn csv_output_quotes_when_needed() {
        let t = target(CopyFormat::Csv, true);
        let enc = CopyOutEncoder::new(&t.schema, t.options.clone()).unwrap();
        let batch = RecordBatch::try_new(
            t.schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(SA::from(vec![Some("a,\"b\""), Some("")])),
            ],
        )
        .unwrap();
        let mut prepared = enc.prepare(&batch).unwrap();
        let mut scratch = BytesMut::new();
        let lines: Vec<Vec<u8>> = (0..2)
            .map(|row| enc.encode_row(&mut prepared, row, &mut scratch).unwrap())
            .collect();
        assert_eq!(
            lines,
            vec![b"1,\"a,\"\"b\"\"\"\n".to_vec(), b",\"\"\n".to_vec()]
        );
        assert_eq!(enc.header().unwrap(), b"id,name\n");
    }

    #[test]
    fn utc_offsets_are_normalized() {
        assert_eq!(
            normalize_utc_offset("2024-01-01 10:00:00+00"),
            "2024-01-01 10:00:00+00:00"
        );
        assert_eq!(normalize_utc_offset("2024-01-01"), "2024-01-01");
        assert_eq!(
            normalize_utc_offset("2024-01-01 10:00:00+05:30"),
            "2024-01-01 10:00:00+05:30"
        );
    }
}
