//! Immutable column data plus per-row version stamps.
//!
//! A segment is the unit of storage: an Arrow [`RecordBatch`] holding some
//! rows of one table, the stable row id of every row, the seq that created
//! each row, and a per-row deletion stamp. Column data never changes after a
//! segment is built, so scans hand out `Arc` clones of the column buffers and
//! never copy rows that are fully visible.
//!
//! The deletion stamp is an atomic per row (`u64::MAX` = live). It is the one
//! mutable part, and it is safe to mutate in place because a stamp written by
//! commit `c` can only be observed as "deleted" by readers at seq `>= c`, and
//! such readers cannot exist until `c` has been made durable and published.
//! Readers at older seqs keep seeing the row.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arrow::array::{
    new_null_array, Array, ArrayRef, BooleanArray, BooleanBufferBuilder, RecordBatch, UInt32Array,
    UInt64Array,
};
use arrow::compute::{take, FilterBuilder};
use arrow::datatypes::{DataType, Field, FieldRef, SchemaRef};
use parking_lot::RwLock;

use crate::codec::{array_size, make_batch};
use crate::error::Result;
use crate::residency::SegmentFile;
use crate::{Seq, ROW_ID_COLUMN};

/// Seq stamp meaning "not deleted".
pub(crate) const LIVE: Seq = u64::MAX;

/// Creation stamps of a segment's rows.
pub(crate) enum Created {
    /// All rows were inserted by the same commit (every segment built by a
    /// commit; no per-row storage needed).
    Uniform(Seq),
    /// Rows come from several commits (segments produced by compaction).
    PerRow(UInt64Array),
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
    /// Stable row ids, sorted ascending so rows can be found by binary search.
    pub(crate) row_ids: UInt64Array,
    pub(crate) created: Created,
    pub(crate) min_created: Seq,
    pub(crate) max_created: Seq,
    deleted: Box<[AtomicU64]>,
    /// Smallest deletion stamp, so fully visible segments are detected in O(1).
    min_deleted: AtomicU64,
    /// The Parquet file holding this segment once a checkpoint wrote it.
    file: OnceLock<SegmentFile>,
}

impl Segment {
    /// Builds a segment. `row_ids` must be sorted ascending and `deleted`
    /// (if given) must have one stamp per row.
    pub(crate) fn new(
        id: u64,
        data: RecordBatch,
        row_ids: UInt64Array,
        created: Created,
        deleted: Option<Vec<Seq>>,
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
        row_ids: UInt64Array,
        created: Created,
        deleted: Option<Vec<Seq>>,
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
        row_ids: UInt64Array,
        created: Created,
        deleted: Option<Vec<Seq>>,
    ) -> Segment {
        let (min_created, max_created) = match &created {
            Created::Uniform(s) => (*s, *s),
            Created::PerRow(a) => a
                .values()
                .iter()
                .fold((LIVE, 0), |(lo, hi), v| (lo.min(*v), hi.max(*v))),
        };
        let (deleted, min_deleted): (Box<[AtomicU64]>, Seq) = match deleted {
            Some(stamps) => {
                let min = stamps.iter().copied().min().unwrap_or(LIVE);
                (stamps.into_iter().map(AtomicU64::new).collect(), min)
            }
            None => ((0..n).map(|_| AtomicU64::new(LIVE)).collect(), LIVE),
        };
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
            deleted,
            min_deleted: AtomicU64::new(min_deleted),
            file: OnceLock::new(),
        }
    }

    /// Gives a segment built ahead of commit (by the committing thread, to
    /// keep the writer's critical section short) its id and commit seq.
    pub(crate) fn stamp(mut self, id: u64, seq: Seq) -> Segment {
        self.id = id;
        self.created = Created::Uniform(seq);
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

    /// Records that the segment's data is now in `file`. From here on its
    /// resident columns count against the file's pool and may be evicted.
    pub(crate) fn persist(&self, file: SegmentFile) {
        let pool = file.pool.clone();
        if self.file.set(file).is_ok() {
            pool.add(self.resident_bytes());
        }
    }

    /// Bytes of per-row bookkeeping (row ids, creation and deletion
    /// stamps), which stays in memory even when the data is evicted.
    pub(crate) fn bookkeeping_bytes(&self) -> usize {
        let created = match &self.created {
            Created::Uniform(_) => 0,
            Created::PerRow(a) => a.len() * 8,
        };
        self.rows * 16 + created
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
        match &self.created {
            Created::Uniform(s) => *s,
            Created::PerRow(a) => a.value(i),
        }
    }

    pub(crate) fn deleted_at(&self, i: usize) -> Seq {
        self.deleted[i].load(Ordering::Acquire)
    }

    /// Current deletion stamps of all rows (including stamps newer than any
    /// reader's seq; callers mask as needed).
    pub(crate) fn deleted_stamps(&self) -> Vec<Seq> {
        self.deleted
            .iter()
            .map(|d| d.load(Ordering::Acquire))
            .collect()
    }

    /// Stamps row `i` as deleted by commit `seq`. Only the commit writer calls
    /// this, under the catalog write lock.
    pub(crate) fn mark_deleted(&self, i: usize, seq: Seq) {
        self.deleted[i].store(seq, Ordering::Release);
        self.min_deleted.fetch_min(seq, Ordering::AcqRel);
    }

    /// Number of rows whose deletion is at or below `floor`, i.e. physically
    /// reclaimable.
    pub(crate) fn dead_count(&self, floor: Seq) -> usize {
        if self.min_deleted.load(Ordering::Acquire) > floor {
            return 0;
        }
        self.deleted
            .iter()
            .filter(|d| d.load(Ordering::Acquire) <= floor)
            .count()
    }

    /// Approximate size of the data plus per-row bookkeeping, resident or
    /// not, for statistics.
    pub(crate) fn bytes(&self) -> usize {
        self.data_bytes + self.num_rows() * 16
    }

    /// Rows visible at `seq`: `created <= seq && deleted > seq`. `None` means
    /// every row is visible (the zero-copy fast path).
    pub(crate) fn visibility(&self, seq: Seq) -> Option<BooleanArray> {
        if self.max_created <= seq && self.min_deleted.load(Ordering::Acquire) > seq {
            return None;
        }
        Some(self.mask(|i| self.created_at(i) <= seq && self.deleted_at(i) > seq))
    }

    /// Rows inserted in `(from, to]` and still live at `to`.
    pub(crate) fn inserted_between(&self, from: Seq, to: Seq) -> BooleanArray {
        self.mask(|i| {
            let c = self.created_at(i);
            c > from && c <= to && self.deleted_at(i) > to
        })
    }

    fn mask(&self, f: impl Fn(usize) -> bool) -> BooleanArray {
        let n = self.num_rows();
        let mut b = BooleanBufferBuilder::new(n);
        for i in 0..n {
            b.append(f(i));
        }
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
        let ids: ArrayRef = Arc::new(seg.row_ids.clone());
        out.push(pick(&ids)?);
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
        let seg_ids = seg.row_ids.values();
        let (Some(lo), Some(hi)) = (seg_ids.first(), seg_ids.last()) else {
            continue;
        };
        let a = ids.partition_point(|x| x < lo);
        let b = ids.partition_point(|x| x <= hi);
        if a >= b {
            continue;
        }
        let want = &ids[a..b];
        let mut hits = Vec::new();
        if want.len() * 8 > seg_ids.len() {
            // Dense request: merge-walk both sorted lists.
            let (mut i, mut j) = (0, 0);
            while i < want.len() && j < seg_ids.len() {
                match want[i].cmp(&seg_ids[j]) {
                    std::cmp::Ordering::Less => i += 1,
                    std::cmp::Ordering::Greater => j += 1,
                    std::cmp::Ordering::Equal => {
                        hits.push(j as u32);
                        i += 1;
                        j += 1;
                    }
                }
            }
        } else {
            for id in want {
                if let Ok(p) = seg_ids.binary_search(id) {
                    hits.push(p as u32);
                }
            }
        }
        if !hits.is_empty() {
            found += hits.len();
            out.push((si, hits));
        }
    }
    (out, found)
}
