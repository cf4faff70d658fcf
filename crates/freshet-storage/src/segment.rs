//! Immutable column data plus per-row version stamps.
//!
//! A segment is the unit of storage: an Arrow [`RecordBatch`] holding some
//! rows of one table, the stable row id of every row, the seq that created
//! each row, and the deletion stamps of its deleted rows. Column data never
//! changes after a segment is built, so scans hand out `Arc` clones of the
//! column buffers and never copy rows that are fully visible.
//!
//! Row ids and creation seqs are run-length encoded ([`U64Runs`]) and
//! deletion stamps are kept only for deleted rows ([`Deletions`]), so the
//! bookkeeping that stays in memory after the data is evicted costs bytes
//! per commit and per deleted row, not per row.
//!
//! The deletion stamps are the one mutable part, and mutating them in place
//! is safe because a stamp written by commit `c` can only be observed as
//! "deleted" by readers at seq `>= c`, and such readers cannot exist until
//! `c` has been made durable and published. Readers at older seqs keep
//! seeing the row.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arrow::array::{
    new_null_array, Array, ArrayRef, BooleanArray, BooleanBufferBuilder, RecordBatch, UInt32Array,
};
use arrow::compute::{take, FilterBuilder};
use arrow::datatypes::{DataType, Field, FieldRef, SchemaRef};
use parking_lot::RwLock;

use crate::bounds::FileBounds;
use crate::codec::{array_size, make_batch};
use crate::error::Result;
use crate::residency::SegmentFile;
pub(crate) use crate::runs::U64Runs;
use crate::{Seq, ROW_ID_COLUMN};

/// Seq stamp meaning "not deleted".
pub(crate) const LIVE: Seq = u64::MAX;

/// Deletion stamps of a segment's deleted rows. Sparse while few rows are
/// deleted; one stamp per row once that is smaller.
enum Deletions {
    Sparse(BTreeMap<u32, Seq>),
    Dense(Vec<Seq>),
}

/// Bytes a sparse entry costs, counting the map's node overhead.
const SPARSE_ENTRY_BYTES: usize = 24;

impl Deletions {
    fn get(&self, i: usize) -> Seq {
        match self {
            Deletions::Sparse(m) => m.get(&(i as u32)).copied().unwrap_or(LIVE),
            Deletions::Dense(v) => v[i],
        }
    }

    fn set(&mut self, i: usize, seq: Seq, rows: usize) {
        match self {
            Deletions::Dense(v) => v[i] = seq,
            Deletions::Sparse(m) => {
                if seq == LIVE {
                    m.remove(&(i as u32));
                } else {
                    m.insert(i as u32, seq);
                }
                if m.len() * SPARSE_ENTRY_BYTES > rows * 8 {
                    let mut dense = vec![LIVE; rows];
                    for (p, d) in m.iter() {
                        dense[*p as usize] = *d;
                    }
                    *self = Deletions::Dense(dense);
                }
            }
        }
    }

    /// Calls `f(row, stamp)` for every deleted row, in row order.
    fn for_each(&self, mut f: impl FnMut(usize, Seq)) {
        match self {
            Deletions::Sparse(m) => m.iter().for_each(|(p, d)| f(*p as usize, *d)),
            Deletions::Dense(v) => v
                .iter()
                .enumerate()
                .filter(|(_, d)| **d != LIVE)
                .for_each(|(p, d)| f(p, *d)),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Deletions::Sparse(m) => m.len() * SPARSE_ENTRY_BYTES,
            Deletions::Dense(v) => v.len() * 8,
        }
    }
}

/// A column of a table as of some seq, with the value older rows read back.
#[derive(Clone, Debug)]
pub(crate) struct ColumnDef {
    /// Name, type and nullability.
    pub(crate) field: FieldRef,
    /// One-element array holding the default (possibly null). Rows stored
    /// before the column was added read back with this value.
    pub(crate) default: ArrayRef,
    /// Commit that added the column (the table's creation for initial ones).
    pub(crate) added_seq: Seq,
}

/// See the module documentation.
pub(crate) struct Segment {
    /// Unique per store; names the segment's Parquet file.
    pub(crate) id: u64,
    /// The segment's columns; may be fewer than the table's if columns were
    /// added after the segment was written (missing ones read as the
    /// default).
    schema: SchemaRef,
    rows: usize,
    /// Approximate in-memory size of the column data.
    data_bytes: usize,
    /// The column data, one slot per column of `schema`. A slot is `None`
    /// only once the segment is persisted: the data was evicted and is read
    /// from `file` on demand (see [`crate::residency`]).
    columns: RwLock<Vec<Option<ArrayRef>>>,
    /// Stable row ids, strictly ascending so rows can be found by search.
    pub(crate) row_ids: U64Runs,
    /// The seq of the commit that inserted each row.
    pub(crate) created: U64Runs,
    pub(crate) min_created: Seq,
    pub(crate) max_created: Seq,
    deleted: RwLock<Deletions>,
    /// Smallest deletion stamp, so fully visible segments are detected in O(1).
    min_deleted: AtomicU64,
    /// The Parquet file holding this segment once a checkpoint wrote it.
    file: OnceLock<SegmentFile>,
}

impl Segment {
    /// Builds a segment. `row_ids` must be strictly ascending, and
    /// `deleted` lists `(row, stamp)` for rows already deleted.
    pub(crate) fn new(
        id: u64,
        data: RecordBatch,
        row_ids: U64Runs,
        created: U64Runs,
        deleted: Vec<(u32, Seq)>,
    ) -> Segment {
        let n = data.num_rows();
        let columns = data.columns().iter().cloned().map(Some).collect();
        Segment::build(
            id,
            data.schema(),
            n,
            crate::codec::sliced_size(&data),
            columns,
            row_ids,
            created,
            deleted,
        )
    }

    /// A segment whose column data is only in its (already written) file.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_disk(
        id: u64,
        schema: SchemaRef,
        rows: usize,
        data_bytes: usize,
        row_ids: U64Runs,
        created: U64Runs,
        deleted: Vec<(u32, Seq)>,
        file: SegmentFile,
    ) -> Segment {
        let columns = vec![None; schema.fields().len()];
        let seg = Segment::build(
            id, schema, rows, data_bytes, columns, row_ids, created, deleted,
        );
        let _ = seg.file.set(file);
        seg
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        id: u64,
        schema: SchemaRef,
        n: usize,
        data_bytes: usize,
        columns: Vec<Option<ArrayRef>>,
        row_ids: U64Runs,
        created: U64Runs,
        deleted: Vec<(u32, Seq)>,
    ) -> Segment {
        let (min_created, max_created) = created.min_max().unwrap_or((LIVE, 0));
        let min_deleted = deleted.iter().map(|(_, d)| *d).min().unwrap_or(LIVE);
        let mut deletions = Deletions::Sparse(BTreeMap::new());
        for (p, d) in deleted {
            deletions.set(p as usize, d, n);
        }
        Segment {
            id,
            schema,
            rows: n,
            data_bytes,
            columns: RwLock::new(columns),
            row_ids,
            created,
            min_created,
            max_created,
            deleted: RwLock::new(deletions),
            min_deleted: AtomicU64::new(min_deleted),
            file: OnceLock::new(),
        }
    }

    /// Gives a segment built ahead of commit (by the committing thread, to
    /// keep the writer's critical section short) its id and commit seq.
    pub(crate) fn stamp(mut self, id: u64, seq: Seq) -> Segment {
        self.id = id;
        self.created = U64Runs::uniform(seq, self.rows);
        self.min_created = seq;
        self.max_created = seq;
        self
    }

    pub(crate) fn num_rows(&self) -> usize {
        self.rows
    }

    /// Number of columns the segment holds (a prefix of the table's).
    pub(crate) fn num_columns(&self) -> usize {
        self.schema.fields().len()
    }

    /// The segment's columns' fields.
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Name of the segment's Parquet file, once a checkpoint wrote it.
    pub(crate) fn file_name(&self) -> Option<&str> {
        self.file.get().map(|f| f.name.as_str())
    }

    /// The column statistics of the segment's file, once it has one.
    pub(crate) fn file_bounds(&self) -> Option<&FileBounds> {
        self.file.get().map(|f| &f.bounds)
    }

    /// Records that the segment's data is now in `file`. From here on its
    /// resident columns count against the file's pool and may be evicted.
    pub(crate) fn persist(&self, file: SegmentFile) {
        let pool = file.pool.clone();
        if self.file.set(file).is_ok() {
            pool.add(self.resident_bytes());
        }
    }

    /// Bytes of row bookkeeping (row ids, creation and deletion stamps),
    /// which stays in memory even when the data is evicted.
    pub(crate) fn bookkeeping_bytes(&self) -> usize {
        self.row_ids.bytes() + self.created.bytes() + self.deleted.read().bytes()
    }

    /// Bytes of the file's column statistics kept for pruning.
    pub(crate) fn statistics_bytes(&self) -> usize {
        self.file_bounds().map_or(0, FileBounds::bytes)
    }

    /// Bytes the segment takes on disk: its Parquet file's size once a
    /// checkpoint wrote it, before that the size of its data, which the WAL
    /// holds (approximated by the data's size in memory).
    pub(crate) fn disk_bytes(&self) -> u64 {
        match self.file.get() {
            Some(f) => f.bytes,
            None => self.data_bytes as u64,
        }
    }

    /// Approximate size of the column data, in memory or not.
    pub(crate) fn data_bytes(&self) -> usize {
        self.data_bytes
    }

    /// Bytes of column data now in memory.
    pub(crate) fn resident_bytes(&self) -> usize {
        self.columns.read().iter().flatten().map(array_size).sum()
    }

    /// Whether the columns `proj` (table column indices; those past the
    /// segment's own read as defaults) are all in memory.
    pub(crate) fn is_resident(&self, proj: &[usize]) -> bool {
        let columns = self.columns.read();
        proj.iter()
            .all(|j| *j >= columns.len() || columns[*j].is_some())
    }

    /// Drops the column data from memory if the segment is persisted;
    /// returns the bytes freed.
    pub(crate) fn evict(&self) -> usize {
        let Some(file) = self.file.get() else {
            return 0;
        };
        let mut columns = self.columns.write();
        let freed: usize = columns
            .iter_mut()
            .filter_map(Option::take)
            .map(|a| array_size(&a))
            .sum();
        file.pool.release(freed);
        freed
    }

    /// The segment's columns `proj` (indices below [`Self::num_columns`]),
    /// from memory or, for evicted ones, from the segment file. A column
    /// read from the file stays in memory only if it fits the pool.
    pub(crate) fn columns(&self, proj: &[usize]) -> Result<Vec<Option<ArrayRef>>> {
        let mut out: Vec<Option<ArrayRef>> = {
            let columns = self.columns.read();
            proj.iter()
                .map(|j| columns.get(*j).cloned().flatten())
                .collect()
        };
        let mut missing: Vec<usize> = proj
            .iter()
            .zip(&out)
            .filter(|(j, a)| a.is_none() && **j < self.num_columns())
            .map(|(j, _)| *j)
            .collect();
        if missing.is_empty() {
            return Ok(out);
        }
        missing.sort_unstable();
        missing.dedup();
        let Some(file) = self.file.get() else {
            return Err(crate::error::StorageError::Internal(format!(
                "segment {} has no data and no file",
                self.id
            )));
        };
        let read = crate::checkpoint::read_segment_columns(file, &missing, self.rows)?;
        file.pool.count_file_read();
        let mut columns = self.columns.write();
        for (j, array) in missing.iter().zip(read) {
            if columns[*j].is_none() && file.pool.try_add(array_size(&array)) {
                columns[*j] = Some(array.clone());
            }
            for (p, slot) in proj.iter().zip(out.iter_mut()) {
                if p == j {
                    *slot = Some(array.clone());
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn created_at(&self, i: usize) -> Seq {
        self.created.value(i)
    }

    pub(crate) fn deleted_at(&self, i: usize) -> Seq {
        self.deleted.read().get(i)
    }

    /// `(row, stamp)` of every deleted row in row order, including stamps
    /// newer than any reader's seq (callers mask as needed).
    pub(crate) fn deletions(&self) -> Vec<(u32, Seq)> {
        let mut out = Vec::new();
        self.deleted.read().for_each(|p, d| out.push((p as u32, d)));
        out
    }

    /// Stamps row `i` as deleted by commit `seq`. Only the commit writer calls
    /// this, under the catalog write lock.
    pub(crate) fn mark_deleted(&self, i: usize, seq: Seq) {
        self.deleted.write().set(i, seq, self.rows);
        self.min_deleted.fetch_min(seq, Ordering::AcqRel);
    }

    /// Number of rows whose deletion is at or below `floor`, i.e. physically
    /// reclaimable.
    pub(crate) fn dead_count(&self, floor: Seq) -> usize {
        if self.min_deleted.load(Ordering::Acquire) > floor {
            return 0;
        }
        let mut n = 0;
        self.deleted
            .read()
            .for_each(|_, d| n += usize::from(d <= floor));
        n
    }

    /// Approximate size of the data plus row bookkeeping, resident or not,
    /// for statistics.
    pub(crate) fn bytes(&self) -> usize {
        self.data_bytes + self.bookkeeping_bytes() + self.statistics_bytes()
    }

    /// Rows visible at `seq`: `created <= seq && deleted > seq`. `None` means
    /// every row is visible (the zero-copy fast path).
    pub(crate) fn visibility(&self, seq: Seq) -> Option<BooleanArray> {
        if self.max_created <= seq && self.min_deleted.load(Ordering::Acquire) > seq {
            return None;
        }
        Some(self.mask(|c| c <= seq, |d| d <= seq))
    }

    /// Rows inserted in `(from, to]` and still live at `to`.
    pub(crate) fn inserted_between(&self, from: Seq, to: Seq) -> BooleanArray {
        self.mask(|c| c > from && c <= to, |d| d <= to)
    }

    /// Rows whose creation seq passes `created` and whose deletion stamp (if
    /// deleted) does not pass `gone`.
    fn mask(&self, created: impl Fn(Seq) -> bool, gone: impl Fn(Seq) -> bool) -> BooleanArray {
        let mut b = BooleanBufferBuilder::new(self.rows);
        self.created
            .for_each_run(|rows, seq| b.append_n(rows.len(), created(seq)));
        self.deleted.read().for_each(|p, d| {
            if gone(d) {
                b.set_bit(p, false);
            }
        });
        BooleanArray::new(b.finish(), None)
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if let Some(file) = self.file.get() {
            file.pool.release(self.resident_bytes());
        }
    }
}

/// Which rows of a segment to materialize.
pub(crate) enum Selection<'a> {
    All,
    Mask(&'a BooleanArray),
    Take(&'a UInt32Array),
}

/// The field of the row id column appended to scans and change sets.
pub(crate) fn row_id_field() -> FieldRef {
    Arc::new(Field::new(ROW_ID_COLUMN, DataType::UInt64, false))
}

/// An array of `n` copies of a column's default value.
pub(crate) fn repeat_default(default: &ArrayRef, n: usize) -> Result<ArrayRef> {
    if default.is_null(0) {
        return Ok(new_null_array(default.data_type(), n));
    }
    let idx = UInt32Array::from(vec![0u32; n]);
    Ok(take(default.as_ref(), &idx, None)?)
}

/// Produces the selected rows of `seg` with the projected columns of the
/// table (as described by `columns`) and optionally the row id column.
/// Returns `None` if no row is selected.
pub(crate) fn materialize(
    seg: &Segment,
    columns: &[ColumnDef],
    proj: &[usize],
    with_row_ids: bool,
    schema: &SchemaRef,
    sel: Selection<'_>,
) -> Result<Option<RecordBatch>> {
    let seg_cols = seg.num_columns();
    let (rows, filter) = match sel {
        Selection::All => (seg.num_rows(), None),
        Selection::Mask(m) => {
            let count = m.true_count();
            if count == seg.num_rows() {
                (count, None)
            } else {
                (count, Some(FilterBuilder::new(m).optimize().build()))
            }
        }
        Selection::Take(idx) => (idx.len(), None),
    };
    if rows == 0 {
        return Ok(None);
    }
    let pick = |a: &ArrayRef| -> Result<ArrayRef> {
        match (&sel, &filter) {
            (_, Some(p)) => Ok(p.filter(a.as_ref())?),
            (Selection::Take(idx), None) => Ok(take(a.as_ref(), *idx, None)?),
            _ => Ok(a.clone()),
        }
    };
    let stored: Vec<usize> = proj.iter().copied().filter(|j| *j < seg_cols).collect();
    let mut data = seg.columns(&stored)?.into_iter();
    let mut out = Vec::with_capacity(proj.len() + 1);
    for &j in proj {
        if j < seg_cols {
            let Some(Some(array)) = data.next() else {
                return Err(crate::error::StorageError::Internal(format!(
                    "segment {} lost column {j}",
                    seg.id
                )));
            };
            out.push(pick(&array)?);
        } else {
            out.push(repeat_default(&columns[j].default, rows)?);
        }
    }
    if with_row_ids {
        let ids: ArrayRef = match &sel {
            Selection::Take(idx) => Arc::new(seg.row_ids.take(idx.values())),
            _ => pick(&(Arc::new(seg.row_ids.to_array()) as ArrayRef))?,
        };
        out.push(ids);
    }
    Ok(Some(make_batch(schema.clone(), out, rows)?))
}

/// Finds the given row ids (sorted, unique) among `segments`. Returns, per
/// segment index that holds at least one of them, the sorted row positions,
/// plus the number of ids found in total.
pub(crate) fn locate(segments: &[Arc<Segment>], ids: &[u64]) -> (Vec<(usize, Vec<u32>)>, usize) {
    let mut out = Vec::new();
    let mut found = 0;
    if ids.is_empty() {
        return (out, 0);
    }
    for (si, seg) in segments.iter().enumerate() {
        let (Some(lo), Some(hi)) = (seg.row_ids.first(), seg.row_ids.last()) else {
            continue;
        };
        let a = ids.partition_point(|x| *x < lo);
        let b = ids.partition_point(|x| *x <= hi);
        if a >= b {
            continue;
        }
        let hits = seg.row_ids.positions(&ids[a..b]);
        if !hits.is_empty() {
            found += hits.len();
            out.push((si, hits));
        }
    }
    (out, found)
}
