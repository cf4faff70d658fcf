//! The versioned in-memory state of the store: tables, segments, deletion
//! logs, key/value metadata and commit timestamps.
//!
//! There is exactly one current [`Catalog`], guarded by a read/write lock.
//! Instead of copying state per commit, every item carries the seq that
//! created (and, where relevant, removed) it, and readers filter by their
//! snapshot seq. A reader only ever needs the lock long enough to copy a few
//! `Arc`s. History below the retention floor is pruned by reclamation; the
//! floor never passes a registered reader, so filtering stays correct.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::{new_null_array, RecordBatch, UInt32Array, UInt64Array};
use arrow::datatypes::{Schema, SchemaRef};

use crate::codec::{Op, RowIds};
use crate::error::{Result, StorageError};
use crate::segment::{
    locate, materialize, row_id_field, ColumnDef, Segment, Selection, U64Runs, LIVE,
};
use crate::unique::{decode_defs, table_of_key, CommitKeys, UniqueIndex, UniqueIndexDef};
use crate::{Seq, TableId};

/// One version of a metadata key; `None` is a deletion (tombstone).
#[derive(Clone, Debug)]
pub(crate) struct MetaVersion {
    pub(crate) seq: Seq,
    pub(crate) value: Option<Arc<Vec<u8>>>,
}

/// A table and all of its retained history.
pub(crate) struct TableEntry {
    pub(crate) created_seq: Seq,
    /// `LIVE` while the table exists.
    pub(crate) dropped_seq: Seq,
    /// Last commit that inserted or deleted rows (for DDL conflict checks).
    pub(crate) last_write_seq: Seq,
    /// Last commit that created, altered or dropped the table.
    pub(crate) last_ddl_seq: Seq,
    /// All columns ever added, in order; the schema at seq `s` is the prefix
    /// with `added_seq <= s`.
    pub(crate) columns: Vec<ColumnDef>,
    /// Ordered by creation seq (ranges of `min_created..=max_created` do not
    /// overlap), which lets `changes()` binary-search the relevant segments.
    pub(crate) segments: Vec<Arc<Segment>>,
    /// Row ids deleted by each retained commit, in seq order: the index that
    /// makes `changes()` proportional to the number of deletions.
    pub(crate) delete_log: VecDeque<(Seq, Arc<Vec<u64>>)>,
    /// Unique indexes over the latest committed rows (empty until the
    /// catalog is live; see [`Catalog::unique_live`]).
    pub(crate) unique: Vec<UniqueIndex>,
}

impl TableEntry {
    pub(crate) fn visible_at(&self, seq: Seq) -> bool {
        self.created_seq <= seq && self.dropped_seq > seq
    }

    pub(crate) fn columns_at(&self, seq: Seq) -> Vec<ColumnDef> {
        self.columns
            .iter()
            .filter(|c| c.added_seq <= seq)
            .cloned()
            .collect()
    }
}

/// The columns and segments of a table as seen at one seq; produced under
/// the catalog lock, used without it.
pub(crate) struct TableView {
    pub(crate) columns: Vec<ColumnDef>,
    pub(crate) segments: Vec<Arc<Segment>>,
}

/// Builds the schema of a list of columns.
pub(crate) fn schema_of(columns: &[ColumnDef]) -> SchemaRef {
    Arc::new(Schema::new(
        columns.iter().map(|c| c.field.clone()).collect::<Vec<_>>(),
    ))
}

/// Validates a projection and builds the output schema.
pub(crate) fn output_schema(
    columns: &[ColumnDef],
    projection: Option<&[usize]>,
    with_row_ids: bool,
) -> Result<(Vec<usize>, SchemaRef)> {
    let proj: Vec<usize> = match projection {
        Some(p) => p.to_vec(),
        None => (0..columns.len()).collect(),
    };
    let mut fields = Vec::with_capacity(proj.len() + 1);
    for &j in &proj {
        let c = columns
            .get(j)
            .ok_or_else(|| StorageError::UnknownColumn(format!("#{j}")))?;
        fields.push(c.field.clone());
    }
    if with_row_ids {
        fields.push(row_id_field());
    }
    Ok((proj, Arc::new(Schema::new(fields))))
}

/// Scans a table view at `seq`.
pub(crate) fn scan_view(
    view: &TableView,
    seq: Seq,
    projection: Option<&[usize]>,
    with_row_ids: bool,
) -> Result<Vec<RecordBatch>> {
    let (proj, schema) = output_schema(&view.columns, projection, with_row_ids)?;
    let mut out = Vec::with_capacity(view.segments.len());
    for seg in &view.segments {
        if seg.min_created > seq {
            continue;
        }
        let mask = seg.visibility(seq);
        let sel = match &mask {
            None => Selection::All,
            Some(m) => Selection::Mask(m),
        };
        if let Some(b) = materialize(seg, &view.columns, &proj, with_row_ids, &schema, sel)? {
            out.push(b);
        }
    }
    Ok(out)
}

/// The mutable, versioned state. See the module documentation.
pub(crate) struct Catalog {
    pub(crate) tables: BTreeMap<TableId, TableEntry>,
    pub(crate) meta: BTreeMap<String, Vec<MetaVersion>>,
    /// `(seq, commit time in µs since the epoch)` of retained commits.
    pub(crate) commit_times: VecDeque<(Seq, i64)>,
    /// Oldest seq whose history is complete (snapshots/changes from here on).
    pub(crate) retained_floor: Seq,
    /// Whether unique indexes are maintained by `apply`. Off while recovery
    /// replays the WAL (the indexes are built once at its end), on after.
    pub(crate) unique_live: bool,
}

impl Catalog {
    pub(crate) fn new() -> Catalog {
        Catalog {
            tables: BTreeMap::new(),
            meta: BTreeMap::new(),
            commit_times: VecDeque::new(),
            retained_floor: 0,
            unique_live: false,
        }
    }

    /// The table as visible at `seq`.
    pub(crate) fn table_at(&self, table: TableId, seq: Seq) -> Result<&TableEntry> {
        self.tables
            .get(&table)
            .filter(|t| t.visible_at(seq))
            .ok_or(StorageError::UnknownTable(table))
    }

    /// Copies what a reader at `seq` needs to scan `table`.
    pub(crate) fn view(&self, table: TableId, seq: Seq) -> Result<TableView> {
        let t = self.table_at(table, seq)?;
        Ok(TableView {
            columns: t.columns_at(seq),
            segments: t.segments.clone(),
        })
    }

    pub(crate) fn get_meta(&self, key: &str, seq: Seq) -> Option<Arc<Vec<u8>>> {
        meta_at(self.meta.get(key)?, seq)
    }

    pub(crate) fn scan_meta(&self, prefix: &str, seq: Seq) -> Vec<(String, Arc<Vec<u8>>)> {
        self.meta
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(k, v)| meta_at(v, seq).map(|val| (k.clone(), val)))
            .collect()
    }

    pub(crate) fn commit_time(&self, seq: Seq) -> Option<i64> {
        let i = self.commit_times.partition_point(|(s, _)| *s < seq);
        match self.commit_times.get(i) {
            Some((s, t)) if *s == seq => Some(*t),
            _ => None,
        }
    }

    /// Checks a transaction read at `snap` against everything committed (or
    /// queued for commit) since, before any of it is applied.
    pub(crate) fn validate(&self, snap: Seq, ops: &[Op], unique_keys: &[CommitKeys]) -> Result<()> {
        let created: HashSet<TableId> = ops
            .iter()
            .filter_map(|op| match op {
                Op::CreateTable { table, .. } => Some(*table),
                _ => None,
            })
            .collect();
        let mut checked: BTreeMap<TableId, bool> = BTreeMap::new();
        for op in ops {
            let ddl = matches!(op, Op::DropTable { .. } | Op::AddColumn { .. });
            if let Op::CreateTable { table, .. } = op {
                if self.tables.contains_key(table) {
                    return Err(StorageError::Internal(format!(
                        "table id {table} allocated twice"
                    )));
                }
            }
            if let Op::PutMeta { key, .. } | Op::DeleteMeta { key } = op {
                let last = self.meta.get(key).and_then(|v| v.last());
                if last.is_some_and(|l| l.seq > snap) {
                    return Err(StorageError::SerializationFailure(format!(
                        "metadata key {key:?} was changed by a concurrent transaction"
                    )));
                }
            }
            let Some(table) = op.table() else { continue };
            if created.contains(&table) || matches!(op, Op::CreateTable { .. }) {
                continue;
            }
            if checked.get(&table).is_none_or(|was_ddl| ddl && !was_ddl) {
                self.check_table(snap, table, ddl)?;
                checked.insert(table, ddl);
            }
            if let Op::Delete { table, rows } = op {
                let t = self.table_at(*table, snap)?;
                let (hits, found) = locate(&t.segments, rows);
                if found != rows.len() {
                    return Err(StorageError::InvalidArgument(format!(
                        "delete of {} row id(s) that do not exist in table {table}",
                        rows.len() - found
                    )));
                }
                for (si, positions) in hits {
                    let seg = &t.segments[si];
                    for p in positions {
                        let p = p as usize;
                        if seg.deleted_at(p) != LIVE {
                            return Err(StorageError::SerializationFailure(format!(
                                "row {} of table {table} was deleted or updated by a concurrent transaction",
                                seg.row_ids.value(p)
                            )));
                        }
                        if seg.created_at(p) > snap {
                            return Err(StorageError::InvalidArgument(format!(
                                "row {} of table {table} is not visible to the deleting transaction",
                                seg.row_ids.value(p)
                            )));
                        }
                    }
                }
            }
        }
        let new_indexes = self.build_new_unique_indexes(ops)?;
        self.check_unique(ops, unique_keys, &new_indexes)
    }

    /// Builds the unique indexes a commit adds to existing tables (CREATE
    /// UNIQUE INDEX) over their latest committed rows, failing if two live
    /// rows share a key. Keyed by table and index name.
    fn build_new_unique_indexes(
        &self,
        ops: &[Op],
    ) -> Result<HashMap<(TableId, String), UniqueIndex>> {
        let mut built = HashMap::new();
        if !self.unique_live {
            return Ok(built);
        }
        for op in ops {
            let Op::PutMeta { key, value } = op else {
                continue;
            };
            let Some(table) = table_of_key(key) else {
                continue;
            };
            let Some(t) = self.tables.get(&table).filter(|t| t.dropped_seq == LIVE) else {
                // created by this very commit: its inserts were checked
                continue;
            };
            for def in decode_defs(value)? {
                if t.unique.iter().any(|ix| ix.encoder.def == def) {
                    continue;
                }
                let name = def.name.clone();
                built.insert((table, name), UniqueIndex::build_new(def, t, LIVE - 1)?);
            }
        }
        Ok(built)
    }

    /// Checks that no key a commit adds is held by a committed live row that
    /// the same commit does not delete (in the committed unique indexes and
    /// in those the commit creates, `new_indexes`), and that every insert
    /// into a table with unique indexes comes with its keys.
    fn check_unique(
        &self,
        ops: &[Op],
        unique_keys: &[CommitKeys],
        new_indexes: &HashMap<(TableId, String), UniqueIndex>,
    ) -> Result<()> {
        if !self.unique_live {
            return Ok(());
        }
        // The unique index definitions each table will have after this
        // commit, where the commit changes them.
        let mut redefined: HashMap<TableId, Vec<UniqueIndexDef>> = HashMap::new();
        for op in ops {
            if let Op::PutMeta { key, value } = op {
                if let Some(table) = table_of_key(key) {
                    redefined.insert(table, decode_defs(value)?);
                }
            }
        }
        for op in ops {
            if let Op::Insert { table, batch, .. } = op {
                let Some(t) = self.tables.get(table) else {
                    continue;
                };
                if batch.num_rows() == 0 {
                    continue;
                }
                for ix in &t.unique {
                    let dropped_here = redefined
                        .get(table)
                        .is_some_and(|defs| !defs.contains(&ix.encoder.def));
                    if dropped_here {
                        continue;
                    }
                    if !unique_keys
                        .iter()
                        .any(|k| k.table == *table && k.def == ix.encoder.def)
                    {
                        return Err(StorageError::SerializationFailure(format!(
                            "unique index {} of table {table} was created by a concurrent transaction",
                            ix.encoder.def.name
                        )));
                    }
                }
            }
        }
        for ck in unique_keys {
            let Some(t) = self.tables.get(&ck.table) else {
                // created by this very commit: its own inserts were checked
                continue;
            };
            let committed = t.unique.iter().find(|ix| ix.encoder.def == ck.def);
            let created = new_indexes
                .get(&(ck.table, ck.def.name.clone()))
                .filter(|ix| ix.encoder.def == ck.def);
            let Some(ix) = committed.or(created) else {
                return Err(StorageError::SerializationFailure(format!(
                    "unique index {} of table {} was dropped by a concurrent transaction",
                    ck.def.name, ck.table
                )));
            };
            let mut deleted: Option<HashSet<u64>> = None;
            for (key, _) in &ck.keys {
                let Some(existing) = ix.map.get(key) else {
                    continue;
                };
                let deleted = deleted.get_or_insert_with(|| {
                    ops.iter()
                        .filter_map(|op| match op {
                            Op::Delete { table, rows } if *table == ck.table => Some(rows),
                            _ => None,
                        })
                        .flat_map(|rows| rows.iter().copied())
                        .collect()
                });
                if !deleted.contains(existing) {
                    return Err(ix.encoder.violation(ck.table, key));
                }
            }
        }
        Ok(())
    }

    /// Builds every table's unique indexes from its live rows (at the end of
    /// recovery) and turns on their maintenance.
    pub(crate) fn build_unique_indexes(&mut self) -> Result<()> {
        let entries: Vec<(String, Arc<Vec<u8>>)> =
            self.scan_meta(crate::unique::UNIQUE_META_PREFIX, Seq::MAX);
        for (key, value) in entries {
            let Some(table) = table_of_key(&key) else {
                continue;
            };
            self.set_unique(table, &value)?;
        }
        self.unique_live = true;
        Ok(())
    }

    /// (Re)builds `table`'s unique indexes from stored definitions.
    fn set_unique(&mut self, table: TableId, defs: &[u8]) -> Result<()> {
        let defs = decode_defs(defs)?;
        let Some(t) = self
            .tables
            .get_mut(&table)
            .filter(|t| t.dropped_seq == LIVE)
        else {
            return Ok(());
        };
        let mut built = Vec::with_capacity(defs.len());
        for def in defs {
            built.push(UniqueIndex::build(def, t)?);
        }
        t.unique = built;
        Ok(())
    }

    fn check_table(&self, snap: Seq, table: TableId, ddl: bool) -> Result<()> {
        let t = self
            .tables
            .get(&table)
            .filter(|t| t.created_seq <= snap)
            .ok_or(StorageError::UnknownTable(table))?;
        if t.dropped_seq != LIVE {
            return if t.dropped_seq > snap {
                Err(StorageError::SerializationFailure(format!(
                    "table {table} was dropped by a concurrent transaction"
                )))
            } else {
                Err(StorageError::UnknownTable(table))
            };
        }
        if t.last_ddl_seq > snap {
            return Err(StorageError::SerializationFailure(format!(
                "table {table} was altered by a concurrent transaction"
            )));
        }
        if ddl && t.last_write_seq > snap {
            return Err(StorageError::SerializationFailure(format!(
                "table {table} was modified by a concurrent transaction"
            )));
        }
        Ok(())
    }

    /// Applies a validated (or replayed) transaction as commit `seq`. The
    /// effects are invisible to readers until `seq` is published.
    pub(crate) fn apply(
        &mut self,
        seq: Seq,
        time_micros: i64,
        ops: &[Op],
        prebuilt: Vec<Segment>,
        next_segment_id: &AtomicU64,
        unique_keys: Vec<CommitKeys>,
    ) -> Result<()> {
        let mut prebuilt = prebuilt.into_iter();
        for op in ops {
            match op {
                Op::CreateTable { table, schema } => {
                    let columns = schema
                        .fields()
                        .iter()
                        .map(|f| ColumnDef {
                            field: f.clone(),
                            default: new_null_array(f.data_type(), 1),
                            added_seq: seq,
                        })
                        .collect();
                    self.tables.insert(
                        *table,
                        TableEntry {
                            created_seq: seq,
                            dropped_seq: LIVE,
                            last_write_seq: seq,
                            last_ddl_seq: seq,
                            columns,
                            segments: Vec::new(),
                            delete_log: VecDeque::new(),
                            unique: Vec::new(),
                        },
                    );
                }
                Op::DropTable { table } => {
                    let t = self.live_mut(*table)?;
                    t.dropped_seq = seq;
                    t.last_ddl_seq = seq;
                    t.unique = Vec::new();
                }
                Op::AddColumn {
                    table,
                    field,
                    default,
                } => {
                    let t = self.live_mut(*table)?;
                    t.columns.push(ColumnDef {
                        field: field.clone(),
                        default: default.clone(),
                        added_seq: seq,
                    });
                    t.last_ddl_seq = seq;
                }
                Op::Insert {
                    table,
                    row_ids,
                    batch,
                } => {
                    let t = self.live_mut(*table)?;
                    t.last_write_seq = seq;
                    if batch.num_rows() == 0 {
                        continue;
                    }
                    let seg = match prebuilt.next() {
                        Some(seg) => seg,
                        None => segment_for_insert(row_ids, batch)?,
                    };
                    let id = next_segment_id.fetch_add(1, Ordering::Relaxed);
                    t.segments.push(Arc::new(seg.stamp(id, seq)));
                }
                Op::Delete { table, rows } => {
                    let live = self.unique_live;
                    let t = self.live_mut(*table)?;
                    t.last_write_seq = seq;
                    if live && !t.unique.is_empty() {
                        let mut removals = Vec::new();
                        for (i, ix) in t.unique.iter().enumerate() {
                            for (key, id) in ix.encoder.keys_of_rows(t, rows)? {
                                if let Some(key) = key {
                                    removals.push((i, key, id));
                                }
                            }
                        }
                        for (i, key, id) in removals {
                            let map = &mut t.unique[i].map;
                            if map.get(&key) == Some(&id) {
                                map.remove(&key);
                            }
                        }
                    }
                    let (hits, found) = locate(&t.segments, rows);
                    if found != rows.len() {
                        return Err(StorageError::Corrupt(format!(
                            "commit {seq} deletes {} unknown row(s) of table {table}",
                            rows.len() - found
                        )));
                    }
                    for (si, positions) in hits {
                        for p in positions {
                            t.segments[si].mark_deleted(p as usize, seq);
                        }
                    }
                    t.delete_log.push_back((seq, rows.clone()));
                }
                Op::PutMeta { key, value } => {
                    self.meta.entry(key.clone()).or_default().push(MetaVersion {
                        seq,
                        value: Some(value.clone()),
                    });
                    if self.unique_live {
                        if let Some(table) = table_of_key(key) {
                            self.set_unique(table, value)?;
                        }
                    }
                }
                Op::DeleteMeta { key } => {
                    if let Some(t) = table_of_key(key).and_then(|t| self.tables.get_mut(&t)) {
                        t.unique = Vec::new();
                    }
                    self.meta
                        .entry(key.clone())
                        .or_default()
                        .push(MetaVersion { seq, value: None });
                }
            }
        }
        if self.unique_live {
            for ck in unique_keys {
                if let Some(ix) = self
                    .tables
                    .get_mut(&ck.table)
                    .filter(|t| t.dropped_seq == LIVE)
                    .and_then(|t| t.unique.iter_mut().find(|ix| ix.encoder.def == ck.def))
                {
                    ix.map.reserve(ck.keys.len());
                    ix.map.extend(ck.keys);
                }
            }
        }
        self.commit_times.push_back((seq, time_micros));
        Ok(())
    }

    fn live_mut(&mut self, table: TableId) -> Result<&mut TableEntry> {
        self.tables
            .get_mut(&table)
            .filter(|t| t.dropped_seq == LIVE)
            .ok_or(StorageError::UnknownTable(table))
    }

    /// Drops history no reader at or above `floor` can observe: delete-log
    /// entries, commit times, superseded metadata versions and dropped
    /// tables. Row data is reclaimed separately by compaction.
    pub(crate) fn prune(&mut self, floor: Seq) {
        self.retained_floor = self.retained_floor.max(floor);
        self.tables.retain(|_, t| t.dropped_seq > floor);
        for t in self.tables.values_mut() {
            while t.delete_log.front().is_some_and(|(s, _)| *s <= floor) {
                t.delete_log.pop_front();
            }
        }
        while self.commit_times.front().is_some_and(|(s, _)| *s < floor) {
            self.commit_times.pop_front();
        }
        self.meta.retain(|_, versions| {
            // Keep the newest version <= floor and everything after it.
            let keep_from = versions
                .partition_point(|v| v.seq <= floor)
                .saturating_sub(1);
            versions.drain(..keep_from);
            !(versions.len() == 1 && versions[0].value.is_none() && versions[0].seq <= floor)
        });
    }

    /// The largest table id and row id present, for restoring id counters.
    pub(crate) fn max_ids(&self) -> (u64, u64) {
        let max_table = self.tables.keys().copied().max().unwrap_or(0);
        let max_row = self
            .tables
            .values()
            .flat_map(|t| t.segments.iter())
            .filter_map(|s| s.row_ids.last())
            .max()
            .unwrap_or(0);
        (max_table, max_row)
    }
}

fn meta_at(versions: &[MetaVersion], seq: Seq) -> Option<Arc<Vec<u8>>> {
    let i = versions.partition_point(|v| v.seq <= seq);
    versions.get(i.checked_sub(1)?)?.value.clone()
}

/// Builds the (not yet stamped) segment for a non-empty insert op. Called by
/// committers ahead of commit, or during replay.
pub(crate) fn segment_for_insert(row_ids: &RowIds, batch: &RecordBatch) -> Result<Segment> {
    let n = batch.num_rows();
    let (batch, ids) = match row_ids {
        RowIds::Range { first, len } => (batch.clone(), U64Runs::range(*first, *len as usize)),
        RowIds::List(v) => {
            let (batch, ids) =
                sort_by_row_id(batch.clone(), UInt64Array::from(v.as_ref().clone()))?;
            (batch, U64Runs::encode(ids.values(), 1))
        }
    };
    Ok(Segment::new(
        0,
        batch,
        ids,
        U64Runs::uniform(0, n),
        Vec::new(),
    ))
}

/// Ensures row ids are ascending (they always are for ids allocated by one
/// insert; this is a cheap check plus a fallback for hand-built lists).
fn sort_by_row_id(batch: RecordBatch, ids: UInt64Array) -> Result<(RecordBatch, UInt64Array)> {
    if ids.values().windows(2).all(|w| w[0] < w[1]) {
        return Ok((batch, ids));
    }
    let order = arrow::compute::sort_to_indices(&ids, None, None)?;
    let batch = arrow::compute::take_record_batch(&batch, &order)?;
    let ids = arrow::compute::take(&ids, &order, None)?;
    let ids = ids
        .as_any()
        .downcast_ref::<UInt64Array>()
        .cloned()
        .ok_or_else(|| StorageError::Internal("row id sort produced wrong type".into()))?;
    Ok((batch, ids))
}

/// Computes the change set of a table view between two seqs, counting the
/// segments it had to read in `touched`.
pub(crate) fn changes_of(
    view: &TableView,
    delete_log: &[(Seq, Arc<Vec<u64>>)],
    from: Seq,
    to: Seq,
    touched: &AtomicU64,
) -> Result<(SchemaRef, Vec<RecordBatch>, Vec<RecordBatch>)> {
    let (proj, schema) = output_schema(&view.columns, None, true)?;
    let mut inserted = Vec::new();
    // Segments are ordered by creation seq with non-overlapping ranges, so
    // only a contiguous run of them can hold rows created in (from, to].
    let start = view.segments.partition_point(|s| s.max_created <= from);
    for seg in &view.segments[start..] {
        if seg.min_created > to {
            break;
        }
        touched.fetch_add(1, Ordering::Relaxed);
        let mask = seg.inserted_between(from, to);
        if let Some(b) = materialize(
            seg,
            &view.columns,
            &proj,
            true,
            &schema,
            Selection::Mask(&mask),
        )? {
            inserted.push(b);
        }
    }
    let mut ids = BTreeSet::new();
    for (_, rows) in delete_log {
        ids.extend(rows.iter().copied());
    }
    let ids: Vec<u64> = ids.into_iter().collect();
    let mut deleted = Vec::new();
    let (hits, _) = locate(&view.segments, &ids);
    for (si, positions) in hits {
        let seg = &view.segments[si];
        touched.fetch_add(1, Ordering::Relaxed);
        let keep: Vec<u32> = positions
            .into_iter()
            .filter(|p| {
                let d = seg.deleted_at(*p as usize);
                seg.created_at(*p as usize) <= from && d > from && d <= to
            })
            .collect();
        let idx = UInt32Array::from(keep);
        if let Some(b) = materialize(
            seg,
            &view.columns,
            &proj,
            true,
            &schema,
            Selection::Take(&idx),
        )? {
            deleted.push(b);
        }
    }
    Ok((schema, inserted, deleted))
}
