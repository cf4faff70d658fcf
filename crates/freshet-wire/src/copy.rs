//! The COPY sub-protocol: `COPY … FROM STDIN` decoding and `COPY … TO STDOUT`
//! encoding in Postgres' text and CSV formats.
//!
//! Input arrives as arbitrary CopyData chunks that need not align with rows. The
//! decoder keeps only the unfinished tail of the input plus the rows of the
//! batch being built, and hands a batch to the engine every
//! [`BATCH_ROWS`] rows (or [`BATCH_BYTES`] bytes), so memory stays bounded no
//! matter how large the COPY is. Fields are collected as text and converted to
//! the target column types with Arrow's cast kernels; a value that does not
//! parse is reported as 22P02 with the line it came from.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::BytesMut;
use datafusion::arrow::array::{
    Array, ArrayRef, BinaryBuilder, Date32Builder, RecordBatch, StringArray, StringBuilder,
};
use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::util::display::FormatOptions as ArrowFormatOptions;
use freshet_engine::{CopyFormat, CopyInTarget, CopyOptions, EngineError};
use futures::{Sink, SinkExt};
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::Format;
use pgwire::api::ClientInfo;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
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

/// Incremental decoder for one `COPY … FROM STDIN`.
pub(crate) struct CopyInDecoder {
    schema: SchemaRef,
    options: CopyOptions,
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

impl CopyInDecoder {
    /// Validates the target and prepares an empty decoder.
    pub(crate) fn new(target: CopyInTarget) -> WireResult<Self> {
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
        Ok(CopyInDecoder {
            header_pending: target.options.header,
            schema: target.schema,
            options: target.options,
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

    /// Number of columns being loaded.
    pub(crate) fn columns(&self) -> usize {
        self.schema.fields().len()
    }

    /// Consumes a chunk of input; returns the batches that became full.
    pub(crate) fn push(&mut self, data: &[u8]) -> WireResult<Vec<RecordBatch>> {
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
    pub(crate) fn finish(&mut self) -> WireResult<Option<RecordBatch>> {
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
        if self.options.format != CopyFormat::Csv {
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
        match self.options.format {
            CopyFormat::Text => {
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
            CopyFormat::Csv => {
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
        let parsed = match self.options.format {
            CopyFormat::Text => self.parse_text(record, &mut bytes, &mut spans),
            CopyFormat::Csv => self.parse_csv(record, &mut bytes, &mut spans),
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
    matches!(dt, DataType::Binary | DataType::LargeBinary)
        || datafusion::arrow::compute::can_cast_types(&DataType::Utf8, dt)
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
            let mut builder = Date32Builder::with_capacity(text.len());
            for (row, value) in text.iter().enumerate() {
                match value {
                    None => builder.append_null(),
                    Some(v) => {
                        builder.append_value(freshet_engine::parse_date_text(v).map_err(|e| {
                            WireError::copy_data(
                                e.sqlstate(),
                                e.to_string(),
                                first_line + row as u64,
                            )
                        })?)
                    }
                }
            }
            return Ok(Arc::new(builder.finish()));
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

/// Encoder for `COPY … TO STDOUT` in text or CSV format.
pub(crate) struct CopyOutEncoder {
    wire: WireSchema,
    options: CopyOptions,
    punct: Punctuation,
    names: Vec<String>,
}

impl CopyOutEncoder {
    pub(crate) fn new(schema: &SchemaRef, options: CopyOptions) -> WireResult<Self> {
        Ok(CopyOutEncoder {
            wire: WireSchema::new(schema, &Format::UnifiedText)?,
            punct: Punctuation::new(&options)?,
            options,
            names: schema.fields().iter().map(|f| f.name().clone()).collect(),
        })
    }

    pub(crate) fn columns(&self) -> usize {
        self.names.len()
    }

    /// The header line, or `None` when HEADER is off.
    pub(crate) fn header(&self) -> Option<Vec<u8>> {
        if !self.options.header {
            return None;
        }
        let mut out = Vec::new();
        for (i, name) in self.names.iter().enumerate() {
            if i > 0 {
                out.push(self.punct.delimiter);
            }
            self.write_value(&mut out, Some(name.as_bytes()));
        }
        out.push(b'\n');
        Some(out)
    }

    /// Readies a result batch for [`CopyOutEncoder::encode_row`].
    pub(crate) fn prepare<'a>(&'a self, batch: &RecordBatch) -> WireResult<PreparedBatch<'a>> {
        self.wire.prepare(batch)
    }

    /// One row of `batch` as a COPY line (with its newline). Postgres sends
    /// each row in its own CopyData message and clients rely on it.
    pub(crate) fn encode_row(
        &self,
        batch: &mut PreparedBatch<'_>,
        row: usize,
        scratch: &mut BytesMut,
    ) -> WireResult<Vec<u8>> {
        let mut line = Vec::new();
        for col in 0..self.names.len() {
            if col > 0 {
                line.push(self.punct.delimiter);
            }
            let value = batch.field_text(col, row, scratch)?;
            self.write_value(&mut line, value.as_deref());
        }
        line.push(b'\n');
        Ok(line)
    }

    fn write_value(&self, out: &mut Vec<u8>, value: Option<&[u8]>) {
        let Some(value) = value else {
            out.extend_from_slice(self.options.null.as_bytes());
            return;
        };
        let Punctuation {
            delimiter,
            quote,
            escape,
        } = self.punct;
        match self.options.format {
            CopyFormat::Text => {
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
            CopyFormat::Csv => {
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
            CopyFormat::Text => ('\t', "\\N".to_owned()),
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
