//! Reclamation of old versions and compaction of segments.
//!
//! Reclamation advances the retention floor (the minimum seq any snapshot,
//! transaction or retention hold still needs) and prunes catalog history
//! below it. Compaction then rewrites segments:
//!
//! * runs of at least `compaction_min_segments` consecutive segments of the
//!   same size tier (tier = ⌊log_F(rows)⌋) are merged into one, so a stream of
//!   single-row commits yields O(log n) segments and every row is rewritten
//!   only O(log n) times;
//! * rows deleted at or below the floor are dropped while rewriting, and a
//!   segment that is at least half dead is rewritten on its own.
//!
//! Merged segments keep every row's id, creation seq (per-row column when
//! they differ) and deletion stamp, and are sorted by row id; merging only
//! consecutive segments keeps a table's segment list ordered by creation seq,
//! which `changes()` relies on. The expensive copy happens without locks; the
//! swap re-reads deletion stamps set meanwhile under the catalog write lock.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array, UInt64Array};
use arrow::compute::{concat_batches, sort_to_indices, take, take_record_batch};

use crate::catalog::schema_of;
use crate::error::{Result, StorageError};
use crate::segment::{materialize, ColumnDef, Segment, Selection, U64Runs, LIVE};
use crate::store::Inner;
use crate::{Seq, TableId};

/// Segments with at least this many rows are never merged further.
const MAX_MERGE_ROWS: usize = 1 << 20;

/// One planned rewrite: replace `old` (consecutive in the table's list) with
/// the result of merging them.
struct Job {
    table: TableId,
    columns: Vec<ColumnDef>,
    old: Vec<Arc<Segment>>,
}

/// Reclaims history and compacts every table once.
pub(crate) fn run(inner: &Arc<Inner>) -> Result<()> {
    let _guard = inner.compaction_lock.lock();
    let floor = inner.advance_floor();
    {
        let needs_prune = inner.catalog.read().retained_floor < floor;
        if needs_prune {
            inner.catalog.write().prune(floor);
        }
    }
    for job in plan(inner, floor) {
        let merged = merge(inner, &job, floor)?;
        swap(inner, job, merged)?;
    }
    Ok(())
}

/// Evicts the column data of the oldest persisted segments while the
/// resident pool is over its limit (see [`crate::residency`]).
pub(crate) fn evict(inner: &Inner) {
    if !inner.pool.over_limit() {
        return;
    }
    let mut candidates: Vec<Arc<Segment>> = {
        let cat = inner.catalog.read();
        cat.tables
            .values()
            .flat_map(|t| t.segments.iter())
            .filter(|s| s.file_name().is_some())
            .cloned()
            .collect()
    };
    candidates.sort_by_key(|s| s.id);
    let mut freed = 0usize;
    for seg in candidates {
        if !inner.pool.over_limit() {
            break;
        }
        freed += seg.evict();
    }
    if freed > 0 {
        inner
            .metrics
            .evicted_bytes
            .fetch_add(freed as u64, Ordering::Relaxed);
    }
}

fn tier(rows: usize, fanout: usize) -> u32 {
    let mut t = 0;
    let mut r = rows;
    while r >= fanout {
        r /= fanout;
        t += 1;
    }
    t
}

fn plan(inner: &Inner, floor: Seq) -> Vec<Job> {
    let fanout = inner.opts.compaction_min_segments.max(2);
    let cat = inner.catalog.read();
    let mut jobs = Vec::new();
    for (id, t) in &cat.tables {
        if t.dropped_seq != crate::segment::LIVE {
            continue;
        }
        let segs = &t.segments;
        let mut i = 0;
        while i < segs.len() {
            let ti = tier(segs[i].num_rows(), fanout);
            let mut j = i + 1;
            if segs[i].num_rows() < MAX_MERGE_ROWS {
                while j < segs.len()
                    && segs[j].num_rows() < MAX_MERGE_ROWS
                    && tier(segs[j].num_rows(), fanout) == ti
                {
                    j += 1;
                }
            }
            let dead_heavy = |s: &Arc<Segment>| s.dead_count(floor) * 2 >= s.num_rows();
            // Merge runs of at least `fanout` segments, so each merge moves
            // its rows up at least one tier. A run takes as many segments as
            // fit in MAX_MERGE_ROWS: under a stream of single-row commits the
            // thousands of one-row segments a maintenance pass finds become
            // one segment in one merge, not hundreds of 16-row ones merged
            // again pass after pass. Leftovers (and dead-heavy segments in
            // them) are handled individually.
            let mut k = i;
            while j - k >= fanout {
                let mut end = k;
                let mut rows = 0;
                while end < j && (end - k < fanout || rows + segs[end].num_rows() <= MAX_MERGE_ROWS)
                {
                    rows += segs[end].num_rows();
                    end += 1;
                }
                jobs.push(Job {
                    table: *id,
                    columns: t.columns.clone(),
                    old: segs[k..end].to_vec(),
                });
                k = end;
            }
            for s in &segs[k..j] {
                if dead_heavy(s) {
                    jobs.push(Job {
                        table: *id,
                        columns: t.columns.clone(),
                        old: vec![s.clone()],
                    });
                }
            }
            i = j;
        }
    }
    jobs
}

/// A merged segment plus, per row, where it came from (old segment index,
/// row position) to re-read deletion stamps at swap time.
struct Merged {
    segment: Option<Segment>,
    origin: Vec<(u32, u32)>,
}

fn as_u64(a: ArrayRef) -> Result<UInt64Array> {
    a.as_any()
        .downcast_ref::<UInt64Array>()
        .cloned()
        .ok_or_else(|| StorageError::Internal("expected UInt64 array".into()))
}

fn merge(inner: &Inner, job: &Job, floor: Seq) -> Result<Merged> {
    let k = job.old.iter().map(|s| s.num_columns()).max().unwrap_or(0);
    let columns = &job.columns[..k.min(job.columns.len())];
    let schema = schema_of(columns);
    let proj: Vec<usize> = (0..columns.len()).collect();
    let mut batches = Vec::new();
    let mut ids = Vec::new();
    let mut created = Vec::new();
    let mut deleted = Vec::new();
    let mut origin = Vec::new();
    for (si, seg) in job.old.iter().enumerate() {
        let mut stamps = vec![LIVE; seg.num_rows()];
        for (p, d) in seg.deletions() {
            stamps[p as usize] = d;
        }
        let keep: Vec<u32> = (0..seg.num_rows() as u32)
            .filter(|i| stamps[*i as usize] > floor)
            .collect();
        let idx = UInt32Array::from(keep.clone());
        // Fully live segments are referenced, not copied, before the concat.
        let sel = if keep.len() == seg.num_rows() {
            Selection::All
        } else {
            Selection::Take(&idx)
        };
        if let Some(b) = materialize(seg, columns, &proj, false, &schema, sel)? {
            batches.push(b);
        }
        for i in keep {
            let i = i as usize;
            ids.push(seg.row_ids.value(i));
            created.push(seg.created_at(i));
            deleted.push(stamps[i]);
            origin.push((si as u32, i as u32));
        }
    }
    if ids.is_empty() {
        return Ok(Merged {
            segment: None,
            origin,
        });
    }
    let batch: RecordBatch = concat_batches(&schema, &batches)?;
    let ids = UInt64Array::from(ids);
    let sorted = ids.values().windows(2).all(|w| w[0] < w[1]);
    let (batch, ids, created, deleted, origin) = if sorted {
        (batch, ids, created, deleted, origin)
    } else {
        // Concurrent transactions can commit row id ranges out of order.
        let order = sort_to_indices(&ids, None, None)?;
        let perm =
            |v: &[u64]| -> Vec<u64> { order.values().iter().map(|p| v[*p as usize]).collect() };
        (
            take_record_batch(&batch, &order)?,
            as_u64(take(&ids, &order, None)?)?,
            perm(&created),
            perm(&deleted),
            order.values().iter().map(|p| origin[*p as usize]).collect(),
        )
    };
    let ids = U64Runs::encode(ids.values(), 1);
    let created = U64Runs::encode(&created, 0);
    let deleted = deleted
        .iter()
        .enumerate()
        .filter(|(_, d)| **d != LIVE)
        .map(|(p, d)| (p as u32, *d))
        .collect();
    let id = inner.next_segment_id.fetch_add(1, Ordering::Relaxed);
    Ok(Merged {
        segment: Some(Segment::new(id, batch, ids, created, deleted)),
        origin,
    })
}

fn swap(inner: &Inner, job: Job, merged: Merged) -> Result<()> {
    let mut cat = inner.catalog.write();
    let Some(t) = cat.tables.get_mut(&job.table) else {
        return Ok(());
    };
    let Some(pos) = t.segments.iter().position(|s| Arc::ptr_eq(s, &job.old[0])) else {
        return Ok(());
    };
    let still_there = job
        .old
        .iter()
        .enumerate()
        .all(|(i, s)| t.segments.get(pos + i).is_some_and(|c| Arc::ptr_eq(c, s)));
    if !still_there {
        return Ok(());
    }
    // Deletions committed (or queued) since the merge read the stamps.
    if let Some(seg) = &merged.segment {
        let now: HashMap<(u32, u32), Seq> = job
            .old
            .iter()
            .enumerate()
            .flat_map(|(si, old)| {
                old.deletions()
                    .into_iter()
                    .map(move |(i, d)| ((si as u32, i), d))
            })
            .collect();
        if !now.is_empty() {
            for (p, origin) in merged.origin.iter().enumerate() {
                if let Some(d) = now.get(origin) {
                    if *d != seg.deleted_at(p) {
                        seg.mark_deleted(p, *d);
                    }
                }
            }
        }
    }
    let replacement: Vec<Arc<Segment>> = merged.segment.into_iter().map(Arc::new).collect();
    inner
        .metrics
        .compactions
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    t.segments.splice(pos..pos + job.old.len(), replacement);
    Ok(())
}
