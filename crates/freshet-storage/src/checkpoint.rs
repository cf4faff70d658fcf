//! Checkpoint files: one Parquet file per segment plus a manifest.
//!
//! Segment data is immutable, so each segment is written to Parquet once
//! (with its row ids and creation seqs as two extra trailing columns) and
//! reused by every later checkpoint; a checkpoint only writes segments that
//! are new since the previous one. Everything mutable — deletion stamps,
//! table definitions, metadata versions, commit times — lives in the
//! manifest, a small CRC-protected binary file replaced atomically (write
//! temp, fsync, rename, fsync directory). Recovery loads the manifest, reads
//! the row ids and creation seqs of the listed segment files (their column
//! data stays on disk until a scan reads it), then replays WAL records newer
//! than the manifest's seq.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatchReader, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::bounds::FileBounds;
use crate::catalog::{schema_of, MetaVersion};
use crate::codec::{decode_column, encode_column, make_batch, ByteReader, ByteWriter};
use crate::error::{Result, StorageError};
use crate::residency::{ResidentPool, SegmentFile};
use crate::segment::{ColumnDef, Segment, U64Runs};
use crate::wal::fsync_dir;
use crate::{Seq, TableId};

const MANIFEST_MAGIC: &[u8; 8] = b"FRSHMF02";
/// Manifests written before segments' row ids and creation seqs were
/// recorded in them; still read (the stamps then come from the files).
const MANIFEST_MAGIC_V1: &[u8; 8] = b"FRSHMF01";
/// File name of the current manifest inside the data directory.
pub(crate) const MANIFEST_FILE: &str = "MANIFEST";
const CREATED_COLUMN: &str = "__freshet_created_seq";

/// A segment as recorded in a manifest.
pub(crate) struct ManifestSegment {
    pub(crate) id: u64,
    pub(crate) file: String,
    pub(crate) rows: u64,
    /// `(row position, deletion seq)` of rows deleted at or before the
    /// checkpoint seq.
    pub(crate) deletions: Vec<(u32, Seq)>,
    /// The row ids and creation seqs as runs, when they compress to runs;
    /// recovery then need not read them from the file.
    pub(crate) stamps: Option<(U64Runs, U64Runs)>,
}

/// A table as recorded in a manifest.
pub(crate) struct ManifestTable {
    pub(crate) id: TableId,
    pub(crate) created_seq: Seq,
    pub(crate) dropped_seq: Seq,
    pub(crate) last_write_seq: Seq,
    pub(crate) last_ddl_seq: Seq,
    pub(crate) columns: Vec<ColumnDef>,
    pub(crate) segments: Vec<ManifestSegment>,
}

/// Everything needed, together with the segment files, to rebuild the
/// catalog as of `seq`.
pub(crate) struct Manifest {
    pub(crate) seq: Seq,
    pub(crate) retained_floor: Seq,
    pub(crate) next_row_id: u64,
    pub(crate) next_table_id: u64,
    pub(crate) next_segment_id: u64,
    pub(crate) tables: Vec<ManifestTable>,
    pub(crate) meta: Vec<(String, Vec<MetaVersion>)>,
    pub(crate) commit_times: Vec<(Seq, i64)>,
}

impl Manifest {
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let mut w = ByteWriter::default();
        w.buf.extend_from_slice(MANIFEST_MAGIC);
        for v in [
            self.seq,
            self.retained_floor,
            self.next_row_id,
            self.next_table_id,
            self.next_segment_id,
        ] {
            w.u64(v);
        }
        w.u64(self.tables.len() as u64);
        for t in &self.tables {
            for v in [
                t.id,
                t.created_seq,
                t.dropped_seq,
                t.last_write_seq,
                t.last_ddl_seq,
            ] {
                w.u64(v);
            }
            w.u64(t.columns.len() as u64);
            for c in &t.columns {
                w.u64(c.added_seq);
                encode_column(&mut w, &c.field, &c.default)?;
            }
            w.u64(t.segments.len() as u64);
            for s in &t.segments {
                w.u64(s.id);
                w.str(&s.file);
                w.u64(s.rows);
                w.u64(s.deletions.len() as u64);
                for (p, seq) in &s.deletions {
                    w.u32(*p);
                    w.u64(*seq);
                }
                let runs = s
                    .stamps
                    .as_ref()
                    .and_then(|(ids, created)| Some([ids.as_runs()?, created.as_runs()?]));
                match runs {
                    None => w.u8(0),
                    Some(columns) => {
                        w.u8(1);
                        for (starts, firsts) in columns {
                            w.u64(starts.len() as u64);
                            starts.iter().for_each(|s| w.u32(*s));
                            firsts.iter().for_each(|f| w.u64(*f));
                        }
                    }
                }
            }
        }
        w.u64(self.meta.len() as u64);
        for (k, versions) in &self.meta {
            w.str(k);
            w.u64(versions.len() as u64);
            for v in versions {
                w.u64(v.seq);
                match &v.value {
                    Some(val) => {
                        w.u8(1);
                        w.bytes(val);
                    }
                    None => w.u8(0),
                }
            }
        }
        w.u64(self.commit_times.len() as u64);
        for (s, t) in &self.commit_times {
            w.u64(*s);
            w.i64(*t);
        }
        let crc = crc32fast::hash(&w.buf);
        w.u32(crc);
        Ok(w.buf)
    }

    pub(crate) fn decode(data: &[u8]) -> Result<Manifest> {
        let corrupt = |m: &str| StorageError::Corrupt(format!("manifest: {m}"));
        if data.len() < MANIFEST_MAGIC.len() + 4 {
            return Err(corrupt("bad magic"));
        }
        let with_stamps = match &data[..8] {
            m if m == MANIFEST_MAGIC => true,
            m if m == MANIFEST_MAGIC_V1 => false,
            _ => return Err(corrupt("bad magic")),
        };
        let (body, crc) = data.split_at(data.len() - 4);
        let mut c4 = [0u8; 4];
        c4.copy_from_slice(crc);
        if crc32fast::hash(body) != u32::from_le_bytes(c4) {
            return Err(corrupt("checksum mismatch"));
        }
        let mut r = ByteReader::new(&body[8..]);
        let seq = r.u64()?;
        let retained_floor = r.u64()?;
        let next_row_id = r.u64()?;
        let next_table_id = r.u64()?;
        let next_segment_id = r.u64()?;
        let ntables = r.len()?;
        let mut tables = Vec::new();
        for _ in 0..ntables {
            let id = r.u64()?;
            let created_seq = r.u64()?;
            let dropped_seq = r.u64()?;
            let last_write_seq = r.u64()?;
            let last_ddl_seq = r.u64()?;
            let ncols = r.len()?;
            let mut columns = Vec::new();
            for _ in 0..ncols {
                let added_seq = r.u64()?;
                let (field, default) = decode_column(&mut r)?;
                columns.push(ColumnDef {
                    field,
                    default,
                    added_seq,
                });
            }
            let nsegs = r.len()?;
            let mut segments = Vec::new();
            for _ in 0..nsegs {
                let id = r.u64()?;
                let file = r.string()?;
                let rows = r.u64()?;
                let ndel = r.len()?;
                let mut deletions = Vec::with_capacity(ndel.min(1 << 20));
                for _ in 0..ndel {
                    let p = r.u32()?;
                    deletions.push((p, r.u64()?));
                }
                let stamps = if with_stamps && r.u8()? == 1 {
                    let len = usize::try_from(rows).map_err(|_| corrupt("row count"))?;
                    let mut column = |step: u64| -> Result<U64Runs> {
                        let n = r.len()?;
                        let mut starts = Vec::with_capacity(n.min(1 << 20));
                        for _ in 0..n {
                            starts.push(r.u32()?);
                        }
                        let mut firsts = Vec::with_capacity(n.min(1 << 20));
                        for _ in 0..n {
                            firsts.push(r.u64()?);
                        }
                        U64Runs::from_runs(len, step, starts, firsts)
                            .ok_or_else(|| corrupt("invalid row stamps"))
                    };
                    Some((column(1)?, column(0)?))
                } else {
                    None
                };
                segments.push(ManifestSegment {
                    id,
                    file,
                    rows,
                    deletions,
                    stamps,
                });
            }
            tables.push(ManifestTable {
                id,
                created_seq,
                dropped_seq,
                last_write_seq,
                last_ddl_seq,
                columns,
                segments,
            });
        }
        let nmeta = r.len()?;
        let mut meta = Vec::new();
        for _ in 0..nmeta {
            let k = r.string()?;
            let nv = r.len()?;
            let mut versions = Vec::new();
            for _ in 0..nv {
                let seq = r.u64()?;
                let value = if r.u8()? == 1 {
                    Some(Arc::new(r.bytes()?.to_vec()))
                } else {
                    None
                };
                versions.push(MetaVersion { seq, value });
            }
            meta.push((k, versions));
        }
        let ntimes = r.len()?;
        let mut commit_times = Vec::new();
        for _ in 0..ntimes {
            let s = r.u64()?;
            commit_times.push((s, r.i64()?));
        }
        if !r.is_empty() {
            return Err(corrupt("trailing bytes"));
        }
        Ok(Manifest {
            seq,
            retained_floor,
            next_row_id,
            next_table_id,
            next_segment_id,
            tables,
            meta,
            commit_times,
        })
    }
}

/// Reads the manifest, if a checkpoint was ever completed.
pub(crate) fn read_manifest(data_dir: &Path) -> Result<Option<Manifest>> {
    let path = data_dir.join(MANIFEST_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(Manifest::decode(&bytes)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io("reading manifest", e)),
    }
}

/// Atomically replaces the manifest.
pub(crate) fn write_manifest(data_dir: &Path, bytes: &[u8], fsync: bool) -> Result<()> {
    let tmp = data_dir.join(format!("{MANIFEST_FILE}.tmp"));
    let io = |e| StorageError::io("writing manifest", e);
    {
        let mut f = File::create(&tmp).map_err(io)?;
        std::io::Write::write_all(&mut f, bytes).map_err(io)?;
        if fsync {
            f.sync_all().map_err(io)?;
        }
    }
    std::fs::rename(&tmp, data_dir.join(MANIFEST_FILE)).map_err(io)?;
    if fsync {
        fsync_dir(data_dir)?;
    }
    Ok(())
}

/// Writes `seg`'s immutable part to `dir/seg-<id>.parquet`; returns the
/// file's name, its size in bytes and its column statistics.
pub(crate) fn write_segment_file(
    dir: &Path,
    seg: &Segment,
    fsync: bool,
) -> Result<(String, u64, FileBounds)> {
    let name = format!("seg-{:016}.parquet", seg.id);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut fields: Vec<_> = seg.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(
        crate::ROW_ID_COLUMN,
        DataType::UInt64,
        false,
    )));
    fields.push(Arc::new(Field::new(
        CREATED_COLUMN,
        DataType::UInt64,
        false,
    )));
    let schema = Arc::new(Schema::new(fields));
    let all: Vec<usize> = (0..seg.num_columns()).collect();
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(all.len() + 2);
    for c in seg.columns(&all)? {
        cols.push(c.ok_or_else(|| {
            StorageError::Internal(format!("segment {} has a column missing", seg.id))
        })?);
    }
    cols.push(Arc::new(seg.row_ids.to_array()));
    cols.push(Arc::new(seg.created.to_array()));
    let batch = make_batch(schema.clone(), cols, seg.num_rows())?;
    let io = |e| StorageError::io(format!("writing segment file {name}"), e);
    let file = File::create(&tmp).map_err(io)?;
    // Scans of evicted segments read these files, one column at a time.
    // Dictionary encoding is skipped: it dominates write time. Statistics
    // are kept per column chunk (one min and max per column and row group,
    // not per page), which is what lets a scan skip the file
    // (`crate::bounds`).
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(1 << 20))
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .build();
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props))?;
    writer.write(&batch)?;
    writer.flush()?;
    let bounds =
        FileBounds::from_row_groups(writer.flushed_row_groups(), &schema, seg.num_columns());
    let file = writer.into_inner()?;
    if fsync {
        file.sync_all().map_err(io)?;
    }
    let bytes = file.metadata().map_err(io)?.len();
    drop(file);
    std::fs::rename(&tmp, dir.join(&name)).map_err(io)?;
    Ok((name, bytes, bounds))
}

/// Reads whole columns of a segment file, each as one array. `proj` holds
/// column positions in the file, ascending and without duplicates.
fn read_file_columns(
    path: &Path,
    name: &str,
    proj: &[usize],
    rows: usize,
) -> Result<Vec<ArrayRef>> {
    let file = File::open(path)
        .map_err(|e| StorageError::io(format!("opening segment file {}", path.display()), e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), proj.iter().copied());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(rows.max(1))
        .build()?;
    let schema = reader.schema();
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b?);
    }
    let batch = arrow::compute::concat_batches(&schema, &batches)?;
    if batch.num_columns() != proj.len() || batch.num_rows() != rows {
        return Err(StorageError::Corrupt(format!(
            "segment file {name} has unexpected shape"
        )));
    }
    Ok(batch.columns().to_vec())
}

/// Reads the data columns `proj` (ascending, unique) of an evicted segment.
pub(crate) fn read_segment_columns(
    file: &SegmentFile,
    proj: &[usize],
    rows: usize,
) -> Result<Vec<ArrayRef>> {
    read_file_columns(&file.path, &file.name, proj, rows)
}

/// Opens a segment written by [`write_segment_file`] for recovery. Only the
/// row ids and creation seqs are read: the column data stays in the file
/// until a scan asks for it. `columns` are the table's columns the segment
/// holds (a prefix of the table's columns).
pub(crate) fn read_segment_file(
    dir: &Path,
    ms: &ManifestSegment,
    columns: &[ColumnDef],
    pool: &Arc<ResidentPool>,
) -> Result<Segment> {
    let path = dir.join(&ms.file);
    let rows = usize::try_from(ms.rows)
        .map_err(|_| StorageError::Corrupt("segment row count overflow".into()))?;
    let (n, data_bytes, file_bytes, bounds) = {
        let io = |e| StorageError::io(format!("opening segment file {}", path.display()), e);
        let file = File::open(&path).map_err(io)?;
        let file_bytes = file.metadata().map_err(io)?.len();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
        let bytes: i64 = builder
            .metadata()
            .row_groups()
            .iter()
            .map(|rg| rg.total_byte_size())
            .sum();
        let n = builder.schema().fields().len();
        let bounds = FileBounds::from_row_groups(
            builder.metadata().row_groups(),
            builder.schema(),
            n.saturating_sub(2),
        );
        (n, usize::try_from(bytes).unwrap_or(0), file_bytes, bounds)
    };
    if n < 2 {
        return Err(StorageError::Corrupt(format!(
            "segment file {} has unexpected shape",
            ms.file
        )));
    }
    let k = n - 2;
    let cols = columns.get(..k).ok_or_else(|| {
        StorageError::Corrupt(format!("segment file {} has too many columns", ms.file))
    })?;
    if ms.deletions.iter().any(|(p, _)| *p as usize >= rows) {
        return Err(StorageError::Corrupt(format!(
            "deletion out of range in {}",
            ms.file
        )));
    }
    let (row_ids, created) = match &ms.stamps {
        Some(stamps) => stamps.clone(),
        None => read_stamps(&path, ms, k, rows)?,
    };
    Ok(Segment::on_disk(
        ms.id,
        schema_of(cols),
        rows,
        data_bytes,
        row_ids,
        created,
        ms.deletions.clone(),
        pool.open_file(ms.file.clone(), path, file_bytes, bounds),
    ))
}

/// Reads a segment file's row ids and creation seqs (columns `k` and
/// `k + 1`), for manifests that do not record them.
fn read_stamps(
    path: &Path,
    ms: &ManifestSegment,
    k: usize,
    rows: usize,
) -> Result<(U64Runs, U64Runs)> {
    let stamps = read_file_columns(path, &ms.file, &[k, k + 1], rows)?;
    let as_u64 = |a: &ArrayRef| {
        a.as_any()
            .downcast_ref::<UInt64Array>()
            .cloned()
            .ok_or_else(|| StorageError::Corrupt(format!("segment file {}", ms.file)))
    };
    let row_ids = as_u64(&stamps[0])?;
    let created = as_u64(&stamps[1])?;
    if row_ids.null_count() > 0
        || created.null_count() > 0
        || row_ids.len() != rows
        || created.len() != rows
        || row_ids.values().windows(2).any(|w| w[0] >= w[1])
    {
        return Err(StorageError::Corrupt(format!(
            "segment file {} does not match its manifest entry",
            ms.file
        )));
    }
    Ok((
        U64Runs::encode(row_ids.values(), 1),
        U64Runs::encode(created.values(), 0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(stamps: Option<(U64Runs, U64Runs)>) -> Manifest {
        Manifest {
            seq: 9,
            retained_floor: 3,
            next_row_id: 100,
            next_table_id: 2,
            next_segment_id: 5,
            tables: vec![ManifestTable {
                id: 1,
                created_seq: 1,
                dropped_seq: u64::MAX,
                last_write_seq: 4,
                last_ddl_seq: 1,
                columns: Vec::new(),
                segments: vec![ManifestSegment {
                    id: 4,
                    file: "seg-4.parquet".into(),
                    rows: 5,
                    deletions: vec![(2, 4)],
                    stamps,
                }],
            }],
            meta: Vec::new(),
            commit_times: vec![(9, 1234)],
        }
    }

    #[test]
    fn manifest_keeps_row_stamps_and_reads_the_old_format() {
        let ids = U64Runs::encode(&[10, 11, 12, 20, 21], 1);
        let created = U64Runs::uniform(4, 5);
        let bytes = manifest(Some((ids.clone(), created.clone())))
            .encode()
            .unwrap();
        let back = Manifest::decode(&bytes).unwrap();
        let seg = &back.tables[0].segments[0];
        let (i, c) = seg.stamps.as_ref().unwrap();
        assert_eq!(i.to_array(), ids.to_array());
        assert_eq!(c.to_array(), created.to_array());
        assert_eq!(seg.deletions, vec![(2, 4)]);

        // A version-1 manifest is the same without the stamps flag byte.
        let v2 = manifest(None).encode().unwrap();
        let body = &v2[..v2.len() - 4];
        let flag = body.len() - (8 + 8 + 16); // before meta count, one commit time
        assert_eq!(body[flag], 0);
        let mut v1 = MANIFEST_MAGIC_V1.to_vec();
        v1.extend_from_slice(&body[8..flag]);
        v1.extend_from_slice(&body[flag + 1..]);
        let crc = crc32fast::hash(&v1);
        v1.extend_from_slice(&crc.to_le_bytes());
        let old = Manifest::decode(&v1).unwrap();
        let seg = &old.tables[0].segments[0];
        assert!(seg.stamps.is_none());
        assert_eq!((seg.rows, seg.deletions.clone()), (5, vec![(2, 4)]));
        assert_eq!(old.commit_times, vec![(9, 1234)]);

        // Runs that do not describe the segment's rows are corruption.
        let six = U64Runs::encode(&[10, 11, 12, 20, 21, 30], 1);
        let bad = manifest(Some((six, created))).encode();
        assert!(Manifest::decode(&bad.unwrap()).is_err());
    }
}
