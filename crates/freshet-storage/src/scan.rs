//! Scans that read evicted segments only when the consumer asks.
//!
//! A plain [`crate::Snapshot::scan`] returns every batch at once, which is
//! right for data already in memory (the batches share its buffers) and
//! wrong for segments evicted to their files: reading them all up front
//! would bring a whole cold table into memory for one query. A
//! [`ScanParts`] returns the resident part as batches and the evicted part
//! as [`ColdSegment`]s, each read when its consumer gets to it, so a scan
//! holds at most one cold segment per reader at a time.

use std::sync::Arc;

use arrow::array::{RecordBatch, UInt64Array};
use arrow::datatypes::SchemaRef;

use crate::bounds::ColumnBounds;
use crate::catalog::{output_schema, TableView};
use crate::error::Result;
use crate::segment::{materialize, ColumnDef, Segment, Selection};
use crate::store::Snapshot;

/// A table scan at one snapshot, split into resident batches and evicted
/// segments still to read.
#[derive(Debug)]
pub struct ScanParts {
    /// Schema of every batch (the projection, then the row id column when
    /// asked for).
    pub schema: SchemaRef,
    /// Rows of segments whose columns are in memory.
    pub resident: Vec<RecordBatch>,
    /// Evicted segments; each yields its visible rows when read.
    pub cold: Vec<ColdSegment>,
}

/// One evicted segment of a scan. It keeps the scan's snapshot pinned and
/// its segment (hence its file) alive until dropped, so reading it later
/// gives exactly the rows the snapshot saw when the scan began.
pub struct ColdSegment {
    snap: Snapshot,
    segment: Arc<Segment>,
    columns: Arc<Vec<ColumnDef>>,
    proj: Arc<Vec<usize>>,
    schema: SchemaRef,
    with_row_ids: bool,
}

impl std::fmt::Debug for ColdSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdSegment")
            .field("segment", &self.segment.id)
            .field("rows", &self.segment.num_rows())
            .finish()
    }
}

impl ColdSegment {
    /// Rows stored in the segment (an upper bound of what `read` returns).
    pub fn stored_rows(&self) -> usize {
        self.segment.num_rows()
    }

    /// Row counts of the segment file's row groups: the units that
    /// [`ColdSegment::column_bounds`] describe. `None` when unknown.
    pub fn row_group_rows(&self) -> Option<&UInt64Array> {
        self.segment.file_bounds()?.row_counts.as_ref()
    }

    /// Min/max statistics, per row group, of the table's column at storage
    /// position `column` (as passed to `scan_parts`), from the segment
    /// file's footer. They cover every row the file stores, deleted ones
    /// included, so a row group they rule out holds no row the scan could
    /// return. `None` when unknown (see `crate::bounds`).
    pub fn column_bounds(&self, column: usize) -> Option<&ColumnBounds> {
        let bounds = self.segment.file_bounds()?;
        if column >= self.segment.num_columns() {
            // Added after the segment was written: read as the default.
            return None;
        }
        bounds.columns.get(column)?.as_ref()
    }

    /// Reads the segment's rows visible at the scan's snapshot, or `None`
    /// when none are.
    pub fn read(&self) -> Result<Option<RecordBatch>> {
        let seq = self.snap.seq();
        let mask = self.segment.visibility(seq);
        let sel = match &mask {
            None => Selection::All,
            Some(m) => Selection::Mask(m),
        };
        materialize(
            &self.segment,
            &self.columns,
            &self.proj,
            self.with_row_ids,
            &self.schema,
            sel,
        )
    }
}

/// Splits a scan of `view` at `snap` into resident batches and cold
/// segments.
pub(crate) fn scan_parts(
    snap: &Snapshot,
    view: TableView,
    projection: Option<&[usize]>,
    with_row_ids: bool,
) -> Result<ScanParts> {
    let seq = snap.seq();
    let (proj, schema) = output_schema(&view.columns, projection, with_row_ids)?;
    let columns = Arc::new(view.columns);
    let proj = Arc::new(proj);
    let mut resident = Vec::new();
    let mut cold = Vec::new();
    for seg in view.segments {
        if seg.min_created > seq {
            continue;
        }
        if !seg.is_resident(&proj) {
            cold.push(ColdSegment {
                snap: snap.clone(),
                segment: seg,
                columns: columns.clone(),
                proj: proj.clone(),
                schema: schema.clone(),
                with_row_ids,
            });
            continue;
        }
        let mask = seg.visibility(seq);
        let sel = match &mask {
            None => Selection::All,
            Some(m) => Selection::Mask(m),
        };
        if let Some(b) = materialize(&seg, &columns, &proj, with_row_ids, &schema, sel)? {
            resident.push(b);
        }
    }
    Ok(ScanParts {
        schema,
        resident,
        cold,
    })
}
