//! Binary encoding shared by the WAL and the checkpoint manifest.
//!
//! Everything is little-endian and length-prefixed so that a decoder can
//! reject a truncated or garbled payload without panicking. Arrow data
//! (insert batches, schemas, default values) is embedded as Arrow IPC streams:
//! IPC copies whole column buffers at memory speed, so WAL encoding does no
//! per-row work, and it round-trips every Arrow type the engine may use.

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;

use crate::error::{Result, StorageError};
use crate::{RowId, TableId};

/// Appends primitive values to a growable byte buffer.
#[derive(Default)]
pub(crate) struct ByteWriter {
    pub(crate) buf: Vec<u8>,
}

impl ByteWriter {
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.buf.extend_from_slice(v);
    }
    pub(crate) fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    pub(crate) fn u64_slice(&mut self, v: &[u64]) {
        self.u64(v.len() as u64);
        self.buf.reserve(v.len() * 8);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
}

/// Reads primitive values back, failing with [`StorageError::Corrupt`] on
/// truncated input instead of panicking.
pub(crate) struct ByteReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        ByteReader { data, pos: 0 }
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.data.len())
            .ok_or_else(|| StorageError::Corrupt("truncated encoded value".into()))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub(crate) fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    pub(crate) fn len(&mut self) -> Result<usize> {
        usize::try_from(self.u64()?).map_err(|_| StorageError::Corrupt("length overflow".into()))
    }
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }
    pub(crate) fn string(&mut self) -> Result<String> {
        String::from_utf8(self.bytes()?.to_vec())
            .map_err(|_| StorageError::Corrupt("invalid utf-8 string".into()))
    }
    pub(crate) fn u64_vec(&mut self) -> Result<Vec<u64>> {
        let n = self.len()?;
        let raw = self.take(
            n.checked_mul(8)
                .ok_or_else(|| StorageError::Corrupt("length overflow".into()))?,
        )?;
        Ok(raw
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                u64::from_le_bytes(a)
            })
            .collect())
    }
}

/// Encodes a batch (including its schema) as an Arrow IPC stream.
pub(crate) fn encode_batch(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut w = StreamWriter::try_new(Vec::new(), batch.schema_ref())?;
    w.write(batch)?;
    w.finish()?;
    Ok(w.into_inner()?)
}

/// Appends a length-prefixed IPC stream of `batch` directly to `w`, avoiding
/// an intermediate buffer (this is the bulk-insert hot path).
pub(crate) fn encode_batch_into(w: &mut ByteWriter, batch: &RecordBatch) -> Result<()> {
    let at = w.buf.len();
    w.u64(0);
    let mut sw = StreamWriter::try_new(&mut w.buf, batch.schema_ref())?;
    sw.write(batch)?;
    sw.finish()?;
    drop(sw);
    let len = (w.buf.len() - at - 8) as u64;
    w.buf[at..at + 8].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Decodes a single-batch IPC stream written by [`encode_batch`]. A stream
/// without batches yields an empty batch of the stream's schema.
pub(crate) fn decode_batch(data: &[u8]) -> Result<RecordBatch> {
    let reader = StreamReader::try_new(Cursor::new(data), None)?;
    let schema = reader.schema();
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b?);
    }
    match batches.len() {
        0 => Ok(RecordBatch::new_empty(schema)),
        1 => Ok(batches.remove(0)),
        _ => Ok(arrow::compute::concat_batches(&schema, &batches)?),
    }
}

/// Encodes a schema (with metadata) as a batch-less IPC stream.
pub(crate) fn encode_schema(schema: &Schema) -> Result<Vec<u8>> {
    let mut w = StreamWriter::try_new(Vec::new(), schema)?;
    w.finish()?;
    Ok(w.into_inner()?)
}

/// Decodes a schema written by [`encode_schema`].
pub(crate) fn decode_schema(data: &[u8]) -> Result<SchemaRef> {
    let reader = StreamReader::try_new(Cursor::new(data), None)?;
    Ok(reader.schema())
}

/// Encodes a column definition (field plus its one-element default value).
///
/// The default is stored under a nullable copy of the field because a NOT
/// NULL column may legitimately have a NULL default when the table is empty;
/// the real nullability is stored separately.
pub(crate) fn encode_column(w: &mut ByteWriter, field: &Field, default: &ArrayRef) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![field.clone().with_nullable(true)]));
    let batch = RecordBatch::try_new(schema, vec![default.clone()])?;
    w.u8(u8::from(field.is_nullable()));
    w.bytes(&encode_batch(&batch)?);
    Ok(())
}

/// Decodes a column written by [`encode_column`].
pub(crate) fn decode_column(r: &mut ByteReader<'_>) -> Result<(FieldRef, ArrayRef)> {
    let nullable = r.u8()? != 0;
    let batch = decode_batch(r.bytes()?)?;
    if batch.num_columns() != 1 || batch.num_rows() != 1 {
        return Err(StorageError::Corrupt("malformed column default".into()));
    }
    let field = batch.schema().field(0).clone().with_nullable(nullable);
    Ok((Arc::new(field), batch.column(0).clone()))
}

/// Builds a batch from columns without re-checking anything but lengths,
/// which also works for zero-column schemas.
pub(crate) fn make_batch(
    schema: SchemaRef,
    columns: Vec<ArrayRef>,
    rows: usize,
) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new_with_options(
        schema,
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

/// Row ids of an insert: a contiguous range in the common case (8 bytes in
/// the WAL regardless of batch size), or an explicit list when the
/// transaction deleted some of its own inserted rows.
#[derive(Clone, Debug)]
pub(crate) enum RowIds {
    Range { first: u64, len: u64 },
    List(Arc<Vec<u64>>),
}

impl RowIds {
    pub(crate) fn len(&self) -> usize {
        match self {
            RowIds::Range { len, .. } => *len as usize,
            RowIds::List(v) => v.len(),
        }
    }
    pub(crate) fn max(&self) -> Option<u64> {
        match self {
            RowIds::Range { first, len } if *len > 0 => Some(first + len - 1),
            RowIds::Range { .. } => None,
            RowIds::List(v) => v.iter().copied().max(),
        }
    }
}

/// One logical operation of a committed transaction, in the order the
/// transaction performed it. This is what the WAL stores and what recovery
/// replays.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    CreateTable {
        table: TableId,
        schema: SchemaRef,
    },
    DropTable {
        table: TableId,
    },
    AddColumn {
        table: TableId,
        field: FieldRef,
        default: ArrayRef,
    },
    Insert {
        table: TableId,
        row_ids: RowIds,
        batch: RecordBatch,
    },
    Delete {
        table: TableId,
        /// Sorted, deduplicated.
        rows: Arc<Vec<u64>>,
    },
    PutMeta {
        key: String,
        value: Arc<Vec<u8>>,
    },
    DeleteMeta {
        key: String,
    },
}

impl Op {
    /// The table an op touches, if any.
    pub(crate) fn table(&self) -> Option<TableId> {
        match self {
            Op::CreateTable { table, .. }
            | Op::DropTable { table }
            | Op::AddColumn { table, .. }
            | Op::Insert { table, .. }
            | Op::Delete { table, .. } => Some(*table),
            Op::PutMeta { .. } | Op::DeleteMeta { .. } => None,
        }
    }
}

const OP_CREATE: u8 = 1;
const OP_DROP: u8 = 2;
const OP_ADD_COLUMN: u8 = 3;
const OP_INSERT_RANGE: u8 = 4;
const OP_INSERT_LIST: u8 = 5;
const OP_DELETE: u8 = 6;
const OP_PUT_META: u8 = 7;
const OP_DELETE_META: u8 = 8;

/// The bytes a batch's rows occupy, counting only the part of each buffer
/// its slice covers. `RecordBatch::get_array_memory_size` counts whole
/// buffers, so N slices of one large result would count it N times.
pub(crate) fn sliced_size(batch: &RecordBatch) -> usize {
    batch.columns().iter().map(array_size).sum()
}

/// Bytes of one array's (sliced) data.
pub(crate) fn array_size(column: &ArrayRef) -> usize {
    column
        .to_data()
        .get_slice_memory_size()
        .unwrap_or_else(|_| column.get_array_memory_size())
}

/// Upper bound of the buffer reserved up front for a WAL record body; larger
/// records grow as they are written.
const MAX_RESERVED_RECORD_BYTES: usize = 64 << 20;

/// Encodes the ops of one transaction (the WAL record body).
pub(crate) fn encode_ops(ops: &[Op]) -> Result<Vec<u8>> {
    let estimate: usize = ops
        .iter()
        .map(|op| match op {
            Op::Insert { batch, .. } => sliced_size(batch) + 1024,
            Op::Delete { rows, .. } => rows.len() * 8 + 64,
            _ => 256,
        })
        .sum();
    let mut w = ByteWriter {
        buf: Vec::with_capacity(estimate.min(MAX_RESERVED_RECORD_BYTES) + 16),
    };
    w.u32(ops.len() as u32);
    for op in ops {
        match op {
            Op::CreateTable { table, schema } => {
                w.u8(OP_CREATE);
                w.u64(*table);
                w.bytes(&encode_schema(schema)?);
            }
            Op::DropTable { table } => {
                w.u8(OP_DROP);
                w.u64(*table);
            }
            Op::AddColumn {
                table,
                field,
                default,
            } => {
                w.u8(OP_ADD_COLUMN);
                w.u64(*table);
                encode_column(&mut w, field, default)?;
            }
            Op::Insert {
                table,
                row_ids,
                batch,
            } => {
                match row_ids {
                    RowIds::Range { first, len } => {
                        w.u8(OP_INSERT_RANGE);
                        w.u64(*table);
                        w.u64(*first);
                        w.u64(*len);
                    }
                    RowIds::List(ids) => {
                        w.u8(OP_INSERT_LIST);
                        w.u64(*table);
                        w.u64_slice(ids);
                    }
                }
                encode_batch_into(&mut w, batch)?;
            }
            Op::Delete { table, rows } => {
                w.u8(OP_DELETE);
                w.u64(*table);
                w.u64_slice(rows);
            }
            Op::PutMeta { key, value } => {
                w.u8(OP_PUT_META);
                w.str(key);
                w.bytes(value);
            }
            Op::DeleteMeta { key } => {
                w.u8(OP_DELETE_META);
                w.str(key);
            }
        }
    }
    Ok(w.buf)
}

/// Decodes a WAL record body written by [`encode_ops`].
pub(crate) fn decode_ops(data: &[u8]) -> Result<Vec<Op>> {
    let mut r = ByteReader::new(data);
    let n = r.u32()? as usize;
    let mut ops = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let tag = r.u8()?;
        let op = match tag {
            OP_CREATE => Op::CreateTable {
                table: r.u64()?,
                schema: decode_schema(r.bytes()?)?,
            },
            OP_DROP => Op::DropTable { table: r.u64()? },
            OP_ADD_COLUMN => {
                let table = r.u64()?;
                let (field, default) = decode_column(&mut r)?;
                Op::AddColumn {
                    table,
                    field,
                    default,
                }
            }
            OP_INSERT_RANGE | OP_INSERT_LIST => {
                let table = r.u64()?;
                let row_ids = if tag == OP_INSERT_RANGE {
                    RowIds::Range {
                        first: r.u64()?,
                        len: r.u64()?,
                    }
                } else {
                    RowIds::List(Arc::new(r.u64_vec()?))
                };
                let batch = decode_batch(r.bytes()?)?;
                if batch.num_rows() != row_ids.len() {
                    return Err(StorageError::Corrupt(
                        "insert row id count does not match batch".into(),
                    ));
                }
                Op::Insert {
                    table,
                    row_ids,
                    batch,
                }
            }
            OP_DELETE => Op::Delete {
                table: r.u64()?,
                rows: Arc::new(r.u64_vec()?),
            },
            OP_PUT_META => Op::PutMeta {
                key: r.string()?,
                value: Arc::new(r.bytes()?.to_vec()),
            },
            OP_DELETE_META => Op::DeleteMeta { key: r.string()? },
            other => return Err(StorageError::Corrupt(format!("unknown WAL op tag {other}"))),
        };
        ops.push(op);
    }
    if !r.is_empty() {
        return Err(StorageError::Corrupt("trailing bytes in WAL record".into()));
    }
    Ok(ops)
}

/// Convenience conversion used by tests and callers that hold `RowId`s.
pub(crate) fn raw_ids(rows: &[RowId]) -> Vec<u64> {
    rows.iter().map(|r| r.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::DataType;

    /// A refresh writes its result as many slices of one large batch; the
    /// record's size estimate must count each slice, not the shared buffer
    /// once per slice (which asked for 65 GB on a 10M-row refresh).
    #[test]
    fn slices_count_only_their_rows() {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let big = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from_iter_values(0..1_000_000)) as ArrayRef],
        )
        .unwrap();
        let slices: Vec<RecordBatch> = (0..100).map(|i| big.slice(i * 10_000, 10_000)).collect();
        let whole = sliced_size(&big);
        let sum: usize = slices.iter().map(sliced_size).sum();
        assert!(
            whole >= 8_000_000,
            "a million int64s take 8 MB, got {whole}"
        );
        assert!(
            sum <= whole + 1024,
            "100 slices covering the batch once count {sum} bytes, the batch {whole}"
        );
    }

    #[test]
    fn ops_roundtrip() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("x"), None])),
            ],
        )
        .unwrap();
        let ops = vec![
            Op::CreateTable {
                table: 7,
                schema: schema.clone(),
            },
            Op::Insert {
                table: 7,
                row_ids: RowIds::Range { first: 10, len: 2 },
                batch: batch.clone(),
            },
            Op::AddColumn {
                table: 7,
                field: Arc::new(Field::new("c", DataType::Int64, false)),
                default: Arc::new(Int64Array::from(vec![None::<i64>])),
            },
            Op::Delete {
                table: 7,
                rows: Arc::new(vec![10]),
            },
            Op::PutMeta {
                key: "k".into(),
                value: Arc::new(vec![1, 2, 3]),
            },
            Op::DeleteMeta { key: "k".into() },
            Op::DropTable { table: 7 },
        ];
        let bytes = encode_ops(&ops).unwrap();
        let back = decode_ops(&bytes).unwrap();
        assert_eq!(back.len(), ops.len());
        match &back[1] {
            Op::Insert { batch: b, .. } => assert_eq!(b, &batch),
            other => panic!("unexpected {other:?}"),
        }
        match &back[2] {
            Op::AddColumn { field, default, .. } => {
                assert!(!field.is_nullable());
                assert!(default.is_null(0));
            }
            other => panic!("unexpected {other:?}"),
        }
        // Any truncation must be detected, never panic.
        for cut in 0..bytes.len() {
            assert!(decode_ops(&bytes[..cut]).is_err());
        }
    }
}
