//! Read-write transactions.
//!
//! A transaction reads at the snapshot taken by [`crate::Store::begin`] and
//! buffers its writes privately: inserted batches (with row ids allocated
//! immediately, so the caller sees final ids), deleted row ids, DDL and
//! metadata changes. Its own reads merge the buffer over the snapshot.
//! Nothing is checked against concurrent transactions until commit, where the
//! writer validates first-committer-wins rules (see
//! [`Transaction::commit`]); this keeps every write call cheap and lock-free.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt32Array, UInt64Array};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Field, SchemaRef};

use crate::catalog::{output_schema, scan_view, schema_of, segment_for_insert, TableView};
use crate::codec::{encode_ops, make_batch, raw_ids, Op, RowIds};
use crate::error::{Result, StorageError};
use crate::segment::{repeat_default, ColumnDef};
use crate::store::{CommitRequest, Inner, Reply, Snapshot};
use crate::unique::{
    encode_defs, meta_key, CommitKeys, Key, KeyEncoder, UniqueIndex, UniqueIndexDef,
};
use crate::{CommitInfo, RowId, Seq, TableId};

/// This transaction's private view of one table it touched.
#[derive(Clone)]
struct TxnTable {
    /// Columns as this transaction sees them (snapshot + own ADD COLUMNs).
    columns: Vec<ColumnDef>,
    created_here: bool,
    dropped: bool,
    /// All rows visible in the snapshot were deleted (TRUNCATE).
    truncated: bool,
    /// Own inserted batches (with the column count at insert time) and the
    /// first of their consecutive row ids.
    inserts: Vec<(RecordBatch, u64)>,
    /// Row ids deleted by this transaction (snapshot rows or own inserts).
    deleted: HashSet<u64>,
    /// The table's unique indexes with this transaction's own keys.
    unique: Vec<TxnIndex>,
}

/// One unique index as a transaction sees it: the committed index's encoder
/// and the keys of the transaction's own inserted rows (key → row id; an
/// entry whose row the transaction deleted again is stale and ignored).
#[derive(Clone)]
struct TxnIndex {
    encoder: Arc<KeyEncoder>,
    own: HashMap<Key, u64>,
    /// For an index this transaction created on an existing table: its
    /// keys among the rows of the snapshot, which stand in for the
    /// committed index (there is none yet) when own inserts are checked.
    snapshot: Option<Arc<UniqueIndex>>,
}

impl TxnTable {
    fn own_row(&self, id: u64) -> bool {
        self.inserts
            .iter()
            .any(|(b, first)| id >= *first && id < first + b.num_rows() as u64)
    }
}

/// Operations in call order (data changes are carried in `TxnTable`).
#[derive(Clone)]
enum Step {
    Create(TableId, SchemaRef),
    Drop(TableId),
    AddColumn(TableId, ColumnDef),
    Insert(TableId, usize),
}

/// A snapshot-isolated read-write transaction; see the module documentation.
///
/// Dropping it without committing rolls it back.
pub struct Transaction {
    snap: Snapshot,
    steps: Vec<Step>,
    tables: HashMap<TableId, TxnTable>,
    meta: BTreeMap<String, Option<Vec<u8>>>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("snapshot_seq", &self.snap.seq())
            .field("read_only", &self.is_read_only())
            .finish()
    }
}

/// A transaction's writes up to a point, to return to: SQL's SAVEPOINT.
///
/// Taking one copies the bookkeeping of the write buffer (row-id sets, the
/// own keys of unique indexes, metadata changes); inserted batches are
/// shared, not copied.
pub struct Savepoint {
    steps: Vec<Step>,
    tables: HashMap<TableId, TxnTable>,
    meta: BTreeMap<String, Option<Vec<u8>>>,
}

impl std::fmt::Debug for Savepoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Savepoint")
            .field("steps", &self.steps.len())
            .finish()
    }
}

/// What a prepared transaction sends to the writer.
struct Prepared {
    ops: Vec<Op>,
    segments: Vec<crate::segment::Segment>,
    body: Vec<u8>,
    crc: crc32fast::Hasher,
    unique_keys: Vec<CommitKeys>,
}

impl Transaction {
    pub(crate) fn new(snap: Snapshot) -> Transaction {
        Transaction {
            snap,
            steps: Vec::new(),
            tables: HashMap::new(),
            meta: BTreeMap::new(),
        }
    }

    /// Remembers this transaction's writes so far (see [`Savepoint`]).
    pub fn savepoint(&self) -> Savepoint {
        Savepoint {
            steps: self.steps.clone(),
            tables: self.tables.clone(),
            meta: self.meta.clone(),
        }
    }

    /// Forgets every write made since `savepoint` was taken from this
    /// transaction: reads see, and a commit makes durable, exactly what the
    /// transaction had written then. Row ids handed out since are not
    /// reused.
    pub fn rollback_to(&mut self, savepoint: &Savepoint) {
        self.steps = savepoint.steps.clone();
        self.tables = savepoint.tables.clone();
        self.meta = savepoint.meta.clone();
    }

    /// Row count and size of `table` at the transaction's snapshot (its own
    /// uncommitted writes are not counted); see [`crate::TableStats`].
    pub fn table_stats(&self, table: TableId) -> Result<crate::TableStats> {
        self.snap.table_stats(table)
    }

    /// The seq this transaction reads at.
    pub fn snapshot_seq(&self) -> Seq {
        self.snap.seq()
    }

    /// Whether the transaction has written nothing (its commit is free).
    pub fn is_read_only(&self) -> bool {
        self.steps.is_empty()
            && self.meta.is_empty()
            && self
                .tables
                .values()
                .all(|t| t.deleted.is_empty() && !t.truncated)
    }

    /// This transaction's view of `table`, loading it from the snapshot on
    /// first use.
    fn table_mut(&mut self, table: TableId) -> Result<&mut TxnTable> {
        if !self.tables.contains_key(&table) {
            let (columns, unique) = {
                let cat = self.snap.inner().catalog.read();
                let entry = cat.table_at(table, self.snap.seq())?;
                let unique = entry
                    .unique
                    .iter()
                    .map(|ix| TxnIndex {
                        encoder: ix.encoder.clone(),
                        own: HashMap::new(),
                        snapshot: None,
                    })
                    .collect();
                (entry.columns_at(self.snap.seq()), unique)
            };
            self.tables.insert(
                table,
                TxnTable {
                    columns,
                    created_here: false,
                    dropped: false,
                    truncated: false,
                    inserts: Vec::new(),
                    deleted: HashSet::new(),
                    unique,
                },
            );
        }
        match self.tables.get_mut(&table) {
            Some(t) if !t.dropped => Ok(t),
            _ => Err(StorageError::UnknownTable(table)),
        }
    }

    /// Creates a table; its id is final immediately.
    pub fn create_table(&mut self, schema: SchemaRef) -> Result<TableId> {
        let id = self
            .snap
            .inner()
            .next_table_id
            .fetch_add(1, Ordering::SeqCst);
        let columns = schema
            .fields()
            .iter()
            .map(|f| ColumnDef {
                field: f.clone(),
                default: arrow::array::new_null_array(f.data_type(), 1),
                added_seq: 0,
            })
            .collect();
        self.tables.insert(
            id,
            TxnTable {
                columns,
                created_here: true,
                dropped: false,
                truncated: false,
                inserts: Vec::new(),
                deleted: HashSet::new(),
                unique: Vec::new(),
            },
        );
        self.steps.push(Step::Create(id, schema));
        Ok(id)
    }

    /// Drops a table. Conflicts at commit with any concurrent change to it.
    pub fn drop_table(&mut self, table: TableId) -> Result<()> {
        let t = self.table_mut(table)?;
        t.dropped = true;
        let (created_here, had_unique) = (t.created_here, !t.unique.is_empty());
        t.unique.clear();
        if created_here {
            self.meta.remove(&meta_key(table));
        } else if had_unique {
            self.meta.insert(meta_key(table), None);
        }
        self.steps.push(Step::Drop(table));
        Ok(())
    }

    /// Declares unique indexes on a table created by this transaction,
    /// before any row is written to it. From then on every insert into the
    /// table is checked (see the `unique` module): a row whose key (all key
    /// columns non-NULL) equals the key of a live row fails with
    /// [`StorageError::UniqueViolation`] (SQLSTATE 23505).
    pub fn add_unique_indexes(&mut self, table: TableId, defs: Vec<UniqueIndexDef>) -> Result<()> {
        let t = self.table_mut(table)?;
        if !t.created_here || !t.unique.is_empty() || !t.inserts.is_empty() {
            return Err(StorageError::InvalidArgument(
                "unique indexes can only be declared on a new table, before rows are written to it"
                    .into(),
            ));
        }
        if defs.is_empty() {
            return Ok(());
        }
        let mut built = Vec::with_capacity(defs.len());
        for def in &defs {
            built.push(TxnIndex {
                encoder: Arc::new(KeyEncoder::new(def.clone(), &t.columns)?),
                own: HashMap::new(),
                snapshot: None,
            });
        }
        t.unique = built;
        self.meta.insert(meta_key(table), Some(encode_defs(&defs)?));
        Ok(())
    }

    /// Adds a unique index to a table (CREATE UNIQUE INDEX), before this
    /// transaction writes rows to it. On a table this transaction created,
    /// it is [`Transaction::add_unique_indexes`] for one more index. On an
    /// existing table, the index is built over the table's latest committed
    /// rows when the transaction commits: the commit fails with
    /// [`StorageError::UniqueIndexDuplicate`] if two of them share a key,
    /// and with [`StorageError::UniqueViolation`] if a row this transaction
    /// inserted afterwards takes a committed row's key. Once it is
    /// committed, a concurrent transaction that writes rows to the table
    /// without having seen the index fails its commit with
    /// [`StorageError::SerializationFailure`].
    pub fn create_unique_index(&mut self, table: TableId, def: UniqueIndexDef) -> Result<()> {
        let seq = self.snap.seq();
        let inner = self.snap.inner().clone();
        let t = self.table_mut(table)?;
        if !t.inserts.is_empty() || !t.deleted.is_empty() || t.truncated {
            return Err(StorageError::InvalidArgument(
                "a unique index cannot be created on a table this transaction has already written to"
                    .into(),
            ));
        }
        if t.unique.iter().any(|ix| ix.encoder.def.name == def.name) {
            return Err(StorageError::InvalidArgument(format!(
                "table {table} already has a unique index {}",
                def.name
            )));
        }
        // On an existing table, the snapshot's rows must already have
        // distinct keys (checked again over the latest rows at commit).
        let snapshot = if t.created_here {
            None
        } else {
            let cat = inner.catalog.read();
            let entry = cat.table_at(table, seq)?;
            Some(Arc::new(UniqueIndex::build_new(def.clone(), entry, seq)?))
        };
        let encoder = Arc::new(KeyEncoder::new(def, &t.columns)?);
        t.unique.push(TxnIndex {
            encoder,
            own: HashMap::new(),
            snapshot,
        });
        let defs: Vec<UniqueIndexDef> = t.unique.iter().map(|ix| ix.encoder.def.clone()).collect();
        self.meta.insert(meta_key(table), Some(encode_defs(&defs)?));
        Ok(())
    }

    /// Drops the unique index `name` of a table (DROP INDEX): from the
    /// commit on, its key is no longer enforced. Conflicts at commit with a
    /// concurrent change to the table's unique indexes.
    pub fn drop_unique_index(&mut self, table: TableId, name: &str) -> Result<()> {
        let t = self.table_mut(table)?;
        let Some(position) = t.unique.iter().position(|ix| ix.encoder.def.name == name) else {
            return Err(StorageError::InvalidArgument(format!(
                "table {table} has no unique index {name}"
            )));
        };
        t.unique.remove(position);
        let defs: Vec<UniqueIndexDef> = t.unique.iter().map(|ix| ix.encoder.def.clone()).collect();
        self.meta.insert(meta_key(table), Some(encode_defs(&defs)?));
        Ok(())
    }

    /// The unique indexes of `table` as this transaction sees them.
    pub fn unique_indexes(&self, table: TableId) -> Result<Vec<UniqueIndexDef>> {
        if let Some(t) = self.tables.get(&table) {
            if t.dropped {
                return Err(StorageError::UnknownTable(table));
            }
            return Ok(t.unique.iter().map(|ix| ix.encoder.def.clone()).collect());
        }
        let cat = self.snap.inner().catalog.read();
        Ok(cat
            .table_at(table, self.snap.seq())?
            .unique
            .iter()
            .map(|ix| ix.encoder.def.clone())
            .collect())
    }

    /// Adds a column at the end of the table. `default` is a one-element
    /// array of the field's type (possibly null); existing rows read back
    /// with it without being rewritten.
    pub fn add_column(&mut self, table: TableId, field: Field, default: ArrayRef) -> Result<()> {
        if default.len() != 1 {
            return Err(StorageError::InvalidArgument(
                "a column default must be a one-element array".into(),
            ));
        }
        if default.data_type() != field.data_type() {
            return Err(StorageError::SchemaMismatch(format!(
                "default of type {} for column {} of type {}",
                default.data_type(),
                field.name(),
                field.data_type()
            )));
        }
        let t = self.table_mut(table)?;
        let col = ColumnDef {
            field: Arc::new(field),
            default,
            added_seq: 0,
        };
        t.columns.push(col.clone());
        self.steps.push(Step::AddColumn(table, col));
        Ok(())
    }

    /// Inserts rows. The batch must have exactly the table's columns with the
    /// same types (names and nullability are taken from the table). Row ids
    /// are assigned now and are final.
    pub fn insert(&mut self, table: TableId, batch: RecordBatch) -> Result<()> {
        let inner = self.snap.inner().clone();
        let snap = self.snap.seq();
        let t = self.table_mut(table)?;
        if batch.num_columns() != t.columns.len() {
            return Err(StorageError::SchemaMismatch(format!(
                "table {table} has {} columns, batch has {}",
                t.columns.len(),
                batch.num_columns()
            )));
        }
        for (c, a) in t.columns.iter().zip(batch.columns()) {
            if c.field.data_type() != a.data_type() {
                return Err(StorageError::SchemaMismatch(format!(
                    "column {} has type {}, batch has {}",
                    c.field.name(),
                    c.field.data_type(),
                    a.data_type()
                )));
            }
        }
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let batch = make_batch(schema_of(&t.columns), batch.columns().to_vec(), rows)
            .map_err(|e| StorageError::SchemaMismatch(e.to_string()))?;
        let first = inner.next_row_id.fetch_add(rows as u64, Ordering::SeqCst);
        if !t.unique.is_empty() {
            check_unique_insert(&inner, table, snap, t, &batch, first)?;
        }
        t.inserts.push((batch, first));
        let idx = t.inserts.len() - 1;
        self.steps.push(Step::Insert(table, idx));
        Ok(())
    }

    /// Inserts the rows of `batch` whose key in unique index `target` (in
    /// every unique index if `None`) is free — held neither by a live row,
    /// nor by this transaction's rows, nor by an earlier row of the batch —
    /// and returns the rows inserted: `INSERT … ON CONFLICT DO NOTHING`. A
    /// duplicate in another index is still a violation. A key that a
    /// concurrent transaction commits after this check still fails this
    /// transaction's commit with [`StorageError::UniqueViolation`].
    pub fn insert_skipping_conflicts(
        &mut self,
        table: TableId,
        batch: RecordBatch,
        target: Option<usize>,
    ) -> Result<RecordBatch> {
        let snap = self.snap.seq();
        let inner = self.snap.inner().clone();
        let t = self.table_mut(table)?;
        if batch.num_columns() != t.columns.len() {
            return Err(StorageError::SchemaMismatch(format!(
                "table {table} has {} columns, batch has {}",
                t.columns.len(),
                batch.num_columns()
            )));
        }
        let considered: Vec<usize> = match target {
            Some(i) if i < t.unique.len() => vec![i],
            Some(i) => {
                return Err(StorageError::InvalidArgument(format!(
                    "table {table} has no unique index #{i}"
                )))
            }
            None => (0..t.unique.len()).collect(),
        };
        let mut keys = Vec::with_capacity(considered.len());
        for &i in &considered {
            keys.push(t.unique[i].encoder.encode(batch.columns())?);
        }
        let n = batch.num_rows();
        let mut keep = vec![true; n];
        {
            let cat = inner.catalog.read();
            let committed = if t.created_here {
                None
            } else {
                cat.tables.get(&table)
            };
            let mut seen: Vec<HashSet<&[u8]>> = vec![HashSet::new(); considered.len()];
            for (j, keep_row) in keep.iter_mut().enumerate() {
                let taken = considered.iter().enumerate().any(|(ci, &i)| {
                    let Some(key) = &keys[ci][j] else {
                        return false;
                    };
                    let ix = &t.unique[i];
                    let cindex = committed
                        .and_then(|c| c.unique.iter().find(|c| c.encoder.def == ix.encoder.def))
                        .or(ix.snapshot.as_deref());
                    seen[ci].contains(&**key)
                        || committed_key_taken(cindex, committed, t, snap, key)
                        || ix.own.get(&**key).is_some_and(|r| !t.deleted.contains(r))
                });
                if taken {
                    *keep_row = false;
                } else {
                    for (ci, row_keys) in keys.iter().enumerate() {
                        if let Some(key) = &row_keys[j] {
                            seen[ci].insert(&**key);
                        }
                    }
                }
            }
        }
        let kept = filter_record_batch(&batch, &BooleanArray::from(keep))?;
        self.insert(table, kept.clone())?;
        Ok(kept)
    }

    /// Deletes rows by id (ids as returned by a scan with row ids, or by
    /// this transaction's inserts). Conflicts at commit if a concurrent
    /// transaction deleted one of them after our snapshot.
    pub fn delete(&mut self, table: TableId, rows: &[RowId]) -> Result<()> {
        let t = self.table_mut(table)?;
        let truncated = t.truncated;
        for id in raw_ids(rows) {
            if truncated && !t.own_row(id) {
                continue;
            }
            t.deleted.insert(id);
        }
        Ok(())
    }

    /// Deletes every row visible to this transaction.
    pub fn truncate(&mut self, table: TableId) -> Result<()> {
        let t = self.table_mut(table)?;
        t.truncated = !t.created_here;
        let own: Vec<u64> = t
            .inserts
            .iter()
            .flat_map(|(b, first)| *first..first + b.num_rows() as u64)
            .collect();
        t.deleted.clear();
        t.deleted.extend(own);
        Ok(())
    }

    /// The table's schema as this transaction sees it.
    pub fn table_schema(&self, table: TableId) -> Result<SchemaRef> {
        match self.tables.get(&table) {
            Some(t) if t.dropped => Err(StorageError::UnknownTable(table)),
            Some(t) => Ok(schema_of(&t.columns)),
            None => self.snap.table_schema(table),
        }
    }

    /// [`Transaction::scan`] as [`crate::ScanParts`]: evicted segments are
    /// read by the consumer, unless this transaction wrote to the table (its
    /// own writes are merged in memory, so everything is read now).
    pub fn scan_parts(
        &self,
        table: TableId,
        projection: Option<&[usize]>,
        with_row_ids: bool,
    ) -> Result<crate::ScanParts> {
        if !self.tables.contains_key(&table) {
            return self.snap.scan_parts(table, projection, with_row_ids);
        }
        let t = &self.tables[&table];
        if t.dropped {
            return Err(StorageError::UnknownTable(table));
        }
        let (_, schema) = output_schema(&t.columns, projection, with_row_ids)?;
        Ok(crate::ScanParts {
            schema,
            resident: self.scan(table, projection, with_row_ids)?,
            cold: Vec::new(),
        })
    }

    /// Scans `table` as of the snapshot plus this transaction's own writes.
    pub fn scan(
        &self,
        table: TableId,
        projection: Option<&[usize]>,
        with_row_ids: bool,
    ) -> Result<Vec<RecordBatch>> {
        let Some(t) = self.tables.get(&table) else {
            return self.snap.scan(table, projection, with_row_ids);
        };
        if t.dropped {
            return Err(StorageError::UnknownTable(table));
        }
        let (proj, schema) = output_schema(&t.columns, projection, with_row_ids)?;
        let filter_deleted = !t.deleted.is_empty();
        let mut out = Vec::new();
        if !t.created_here && !t.truncated {
            let view = TableView {
                columns: t.columns.clone(),
                segments: self.snap.view(table)?.segments,
            };
            let base = scan_view(
                &view,
                self.snap.seq(),
                Some(&proj),
                with_row_ids || filter_deleted,
            )?;
            for b in base {
                let b = if filter_deleted {
                    drop_deleted(&b, &t.deleted, with_row_ids)?
                } else {
                    b
                };
                if b.num_rows() > 0 {
                    out.push(b);
                }
            }
        }
        for (batch, first) in &t.inserts {
            let n = batch.num_rows();
            let mut cols = Vec::with_capacity(proj.len() + 1);
            for &j in &proj {
                if j < batch.num_columns() {
                    cols.push(batch.column(j).clone());
                } else {
                    cols.push(repeat_default(&t.columns[j].default, n)?);
                }
            }
            let ids: ArrayRef = Arc::new(UInt64Array::from_iter_values(*first..*first + n as u64));
            cols.push(ids);
            let full = make_batch(
                Arc::new(arrow::datatypes::Schema::new(
                    schema
                        .fields()
                        .iter()
                        .take(proj.len())
                        .cloned()
                        .chain(std::iter::once(crate::segment::row_id_field()))
                        .collect::<Vec<_>>(),
                )),
                cols,
                n,
            )?;
            let b = if filter_deleted {
                drop_deleted(&full, &t.deleted, with_row_ids)?
            } else if with_row_ids {
                full
            } else {
                full.project(&(0..proj.len()).collect::<Vec<_>>())?
            };
            if b.num_rows() > 0 {
                out.push(make_batch(
                    schema.clone(),
                    b.columns().to_vec(),
                    b.num_rows(),
                )?);
            }
        }
        Ok(out)
    }

    /// The rows of `table` (projected as [`Transaction::scan`] projects)
    /// whose key in the unique index over `columns` (table positions, in key
    /// order) equals one of `keys` (one array per key column, of the
    /// columns' types; a key with a NULL matches nothing), as this
    /// transaction sees them: exactly what a scan filtered on those keys
    /// returns, read in time proportional to the keys rather than the table.
    ///
    /// `Ok(None)` when the index cannot answer and the caller must scan:
    /// there is no unique index over exactly `columns`, the key types differ
    /// from the columns', this transaction has written to the table (rows
    /// or columns), or the
    /// table was written after this snapshot in a way the index (which holds
    /// the latest commit's keys) cannot see through (a key that is absent
    /// now, or now belongs to a row this snapshot does not see).
    pub fn lookup_unique(
        &self,
        table: TableId,
        columns: &[usize],
        keys: &[ArrayRef],
        projection: Option<&[usize]>,
    ) -> Result<Option<Vec<RecordBatch>>> {
        self.lookup(table, columns, keys, projection, false)
    }

    /// [`Transaction::lookup_unique`], each batch with the storage row id as
    /// an extra last column (as [`Transaction::scan`] gives it), for callers
    /// that go on to delete or replace the rows they found.
    pub fn lookup_unique_with_row_ids(
        &self,
        table: TableId,
        columns: &[usize],
        keys: &[ArrayRef],
        projection: Option<&[usize]>,
    ) -> Result<Option<Vec<RecordBatch>>> {
        self.lookup(table, columns, keys, projection, true)
    }

    fn lookup(
        &self,
        table: TableId,
        columns: &[usize],
        keys: &[ArrayRef],
        projection: Option<&[usize]>,
        with_row_ids: bool,
    ) -> Result<Option<Vec<RecordBatch>>> {
        if let Some(t) = self.tables.get(&table) {
            if t.dropped {
                return Err(StorageError::UnknownTable(table));
            }
            // Written to (rows, a new column, created or truncated here).
            return Ok(None);
        }
        let seq = self.snap.seq();
        let cat = self.snap.inner().catalog.read();
        let entry = cat.table_at(table, seq)?;
        let Some(index) = entry
            .unique
            .iter()
            .find(|ix| ix.encoder.def.columns == columns)
        else {
            return Ok(None);
        };
        let table_columns = entry.columns_at(seq);
        let types_match = keys.len() == columns.len()
            && keys.iter().zip(columns).all(|(key, &c)| {
                table_columns
                    .get(c)
                    .is_some_and(|col| col.field.data_type() == key.data_type())
            });
        if !types_match {
            return Ok(None);
        }
        // The index holds the latest commit's keys; with no write to the
        // table since this snapshot, they are this snapshot's keys.
        let unchanged = entry.last_write_seq <= seq;
        let mut ids = Vec::new();
        for key in index
            .encoder
            .encode_key_columns(keys)?
            .into_iter()
            .flatten()
        {
            match index.map.get(&*key) {
                Some(&id) => ids.push(id),
                None if unchanged => {}
                None => return Ok(None),
            }
        }
        ids.sort_unstable();
        ids.dedup();
        let (hits, found) = crate::segment::locate(&entry.segments, &ids);
        if found != ids.len() {
            return Ok(None);
        }
        let (proj, schema) = output_schema(&table_columns, projection, with_row_ids)?;
        let mut out = Vec::with_capacity(hits.len());
        for (si, positions) in hits {
            let segment = &entry.segments[si];
            // A live key's row that this snapshot sees is the only row with
            // that key it sees (keys are unique among live rows at every
            // commit); one it does not see leaves the answer unknown.
            let visible = positions.iter().all(|&p| {
                let p = p as usize;
                segment.created_at(p) <= seq && segment.deleted_at(p) > seq
            });
            if !visible {
                return Ok(None);
            }
            let positions = UInt32Array::from(positions);
            if let Some(batch) = crate::segment::materialize(
                segment,
                &table_columns,
                &proj,
                with_row_ids,
                &schema,
                crate::segment::Selection::Take(&positions),
            )? {
                out.push(batch);
            }
        }
        Ok(Some(out))
    }

    /// Sets a metadata entry (visible to this transaction immediately, to
    /// others after commit). Concurrent writers of the same key conflict.
    pub fn put_meta(&mut self, key: &str, value: Vec<u8>) {
        self.meta.insert(key.to_string(), Some(value));
    }

    /// Deletes a metadata entry.
    pub fn delete_meta(&mut self, key: &str) {
        self.meta.insert(key.to_string(), None);
    }

    /// Reads a metadata entry, seeing this transaction's own changes.
    pub fn get_meta(&self, key: &str) -> Option<Vec<u8>> {
        match self.meta.get(key) {
            Some(v) => v.clone(),
            None => self.snap.get_meta(key),
        }
    }

    /// Metadata entries with keys starting with `prefix`, sorted by key,
    /// seeing this transaction's own changes.
    pub fn scan_meta(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let mut merged: BTreeMap<String, Vec<u8>> =
            self.snap.scan_meta(prefix).into_iter().collect();
        for (k, v) in self
            .meta
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
        {
            match v {
                Some(v) => {
                    merged.insert(k.clone(), v.clone());
                }
                None => {
                    merged.remove(k);
                }
            }
        }
        merged.into_iter().collect()
    }

    /// Turns the buffered writes into WAL ops (in order: deletions of
    /// snapshot rows, then DDL and inserts in call order, then metadata) and
    /// encodes them. `None` if there is nothing to write.
    fn prepare(&mut self) -> Result<Option<Prepared>> {
        let mut ops = Vec::new();
        let mut ids: Vec<TableId> = self.tables.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(t) = self.tables.get(&id) else {
                continue;
            };
            if t.created_here || t.dropped {
                continue;
            }
            let mut rows: Vec<u64> = if t.truncated {
                let base = self.snap.scan(id, Some(&[]), true)?;
                let mut v = Vec::new();
                for b in base {
                    if let Some(a) = b.column(0).as_any().downcast_ref::<UInt64Array>() {
                        v.extend_from_slice(a.values());
                    }
                }
                v
            } else {
                t.deleted
                    .iter()
                    .copied()
                    .filter(|r| !t.own_row(*r))
                    .collect()
            };
            if !rows.is_empty() {
                rows.sort_unstable();
                rows.dedup();
                ops.push(Op::Delete {
                    table: id,
                    rows: Arc::new(rows),
                });
            }
        }
        for step in std::mem::take(&mut self.steps) {
            match step {
                Step::Create(table, schema) => {
                    if self.tables.get(&table).is_some_and(|t| !t.dropped) {
                        ops.push(Op::CreateTable { table, schema });
                    }
                }
                Step::Drop(table) => {
                    if self.tables.get(&table).is_some_and(|t| !t.created_here) {
                        ops.push(Op::DropTable { table });
                    }
                }
                Step::AddColumn(table, col) => {
                    if self.tables.get(&table).is_some_and(|t| !t.dropped) {
                        ops.push(Op::AddColumn {
                            table,
                            field: col.field,
                            default: col.default,
                        });
                    }
                }
                Step::Insert(table, idx) => {
                    let Some(t) = self.tables.get(&table).filter(|t| !t.dropped) else {
                        continue;
                    };
                    let Some((batch, first)) = t.inserts.get(idx) else {
                        continue;
                    };
                    let n = batch.num_rows() as u64;
                    if t.deleted.is_empty() {
                        ops.push(Op::Insert {
                            table,
                            row_ids: RowIds::Range {
                                first: *first,
                                len: n,
                            },
                            batch: batch.clone(),
                        });
                        continue;
                    }
                    let keep: Vec<bool> = (*first..first + n)
                        .map(|r| !t.deleted.contains(&r))
                        .collect();
                    let kept_ids: Vec<u64> = (*first..first + n)
                        .filter(|r| !t.deleted.contains(r))
                        .collect();
                    if kept_ids.is_empty() {
                        continue;
                    }
                    let batch = filter_record_batch(batch, &BooleanArray::from(keep))?;
                    ops.push(Op::Insert {
                        table,
                        row_ids: RowIds::List(Arc::new(kept_ids)),
                        batch,
                    });
                }
            }
        }
        for (key, v) in std::mem::take(&mut self.meta) {
            ops.push(match v {
                Some(value) => Op::PutMeta {
                    key,
                    value: Arc::new(value),
                },
                None => Op::DeleteMeta { key },
            });
        }
        if ops.is_empty() {
            return Ok(None);
        }
        let mut unique_keys = Vec::new();
        for (id, t) in self.tables.iter_mut() {
            if t.dropped || t.inserts.is_empty() {
                continue;
            }
            let TxnTable {
                unique, deleted, ..
            } = t;
            for ix in unique.iter_mut() {
                let keys: Vec<(Key, u64)> = ix
                    .own
                    .drain()
                    .filter(|(_, r)| !deleted.contains(r))
                    .collect();
                unique_keys.push(CommitKeys {
                    table: *id,
                    def: ix.encoder.def.clone(),
                    keys,
                });
            }
        }
        let body = encode_ops(&ops)?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&body);
        let mut segments = Vec::new();
        for op in &ops {
            if let Op::Insert { row_ids, batch, .. } = op {
                if batch.num_rows() > 0 {
                    segments.push(segment_for_insert(row_ids, batch)?);
                }
            }
        }
        Ok(Some(Prepared {
            ops,
            segments,
            body,
            crc,
            unique_keys,
        }))
    }

    fn read_only_info(&self) -> CommitInfo {
        let seq = self.snap.seq();
        let time = self.snap.inner().catalog.read().commit_time(seq);
        CommitInfo {
            seq,
            commit_time_micros: time.unwrap_or(0),
        }
    }

    fn request(&self, p: Prepared, reply: Reply) -> CommitRequest {
        CommitRequest {
            snap: self.snap.seq(),
            ops: p.ops,
            body: p.body,
            body_crc: p.crc,
            segments: p.segments,
            unique_keys: p.unique_keys,
            reply,
        }
    }

    /// Commits. Returns once the commit is durable (its WAL record fsynced,
    /// usually together with concurrent commits) and visible to new
    /// snapshots. A read-only transaction commits trivially.
    ///
    /// Fails with [`StorageError::SerializationFailure`] (SQLSTATE 40001) if,
    /// after this transaction's snapshot, another transaction committed a
    /// deletion of a row this one deletes, changed a metadata key this one
    /// writes, or changed a table this one drops/alters (or dropped/altered
    /// a table this one writes to).
    pub async fn commit(mut self) -> Result<CommitInfo> {
        let Some(p) = self.prepare()? else {
            return Ok(self.read_only_info());
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.snap
            .inner()
            .submit(self.request(p, Reply::Async(tx)))?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    /// [`Transaction::commit`] for synchronous callers; blocks the calling
    /// thread until the commit is durable.
    pub fn commit_blocking(mut self) -> Result<CommitInfo> {
        let Some(p) = self.prepare()? else {
            return Ok(self.read_only_info());
        };
        let (tx, rx) = mpsc::sync_channel(1);
        self.snap
            .inner()
            .submit(self.request(p, Reply::Blocking(tx)))?;
        rx.recv().map_err(|_| StorageError::Closed)?
    }

    /// Discards all buffered writes (same as dropping the transaction).
    pub fn rollback(self) {}
}

/// Checks the keys of a batch about to be inserted as rows `first..` against
/// the committed unique indexes (minus rows this transaction deleted) and
/// this transaction's own rows, and records them. On a violation nothing is
/// recorded.
fn check_unique_insert(
    inner: &Inner,
    table: TableId,
    snap: Seq,
    t: &mut TxnTable,
    batch: &RecordBatch,
    first: u64,
) -> Result<()> {
    let mut all_keys = Vec::with_capacity(t.unique.len());
    for ix in &t.unique {
        all_keys.push(ix.encoder.encode(batch.columns())?);
    }
    let outcome = {
        let cat = inner.catalog.read();
        let committed = if t.created_here {
            None
        } else {
            cat.tables.get(&table)
        };
        let TxnTable {
            unique,
            deleted,
            truncated,
            ..
        } = &mut *t;
        let mut outcome = Ok(());
        'indexes: for (ix, keys) in unique.iter_mut().zip(all_keys) {
            let cindex = committed
                .and_then(|c| c.unique.iter().find(|c| c.encoder.def == ix.encoder.def))
                .or(ix.snapshot.as_deref());
            for (j, key) in keys.into_iter().enumerate() {
                let Some(key) = key else { continue };
                if let Some(&r) = cindex.and_then(|c| c.map.get(&key)) {
                    if !deleted_by_txn(deleted, *truncated, committed, r, snap) {
                        outcome = Err(ix.encoder.violation(table, &key));
                        break 'indexes;
                    }
                }
                let id = first + j as u64;
                match ix.own.entry(key) {
                    std::collections::hash_map::Entry::Occupied(mut e) => {
                        let prev = *e.get();
                        if prev >= first || !deleted.contains(&prev) {
                            outcome = Err(ix.encoder.violation(table, e.key()));
                            break 'indexes;
                        }
                        e.insert(id);
                    }
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(id);
                    }
                }
            }
        }
        outcome
    };
    if outcome.is_err() {
        for ix in &mut t.unique {
            ix.own.retain(|_, r| *r < first);
        }
    }
    outcome
}

/// Whether a committed live row `r` is deleted by the transaction (which
/// deleted `deleted` and, if `truncated`, every row of its snapshot).
fn deleted_by_txn(
    deleted: &HashSet<u64>,
    truncated: bool,
    committed: Option<&crate::catalog::TableEntry>,
    r: u64,
    snap: Seq,
) -> bool {
    deleted.contains(&r) || (truncated && committed.is_some_and(|c| visible_row(c, r, snap)))
}

/// Whether `key` is held by a committed live row the transaction did not
/// delete.
fn committed_key_taken(
    cindex: Option<&crate::unique::UniqueIndex>,
    committed: Option<&crate::catalog::TableEntry>,
    t: &TxnTable,
    snap: Seq,
    key: &[u8],
) -> bool {
    cindex
        .and_then(|c| c.map.get(key))
        .is_some_and(|&r| !deleted_by_txn(&t.deleted, t.truncated, committed, r, snap))
}

/// Whether row `r` of a stored table was visible at `snap`.
fn visible_row(table: &crate::catalog::TableEntry, r: u64, snap: Seq) -> bool {
    let (hits, _) = crate::segment::locate(&table.segments, &[r]);
    hits.first().is_some_and(|(si, ps)| {
        ps.first()
            .is_some_and(|p| table.segments[*si].created_at(*p as usize) <= snap)
    })
}

/// Removes rows whose id (the last column) is in `deleted`; drops the id
/// column unless `keep_ids`.
fn drop_deleted(
    batch: &RecordBatch,
    deleted: &HashSet<u64>,
    keep_ids: bool,
) -> Result<RecordBatch> {
    let last = batch.num_columns() - 1;
    let ids = batch
        .column(last)
        .as_any()
        .downcast_ref::<UInt64Array>()
        .ok_or_else(|| StorageError::Internal("row id column has wrong type".into()))?;
    let keep: BooleanArray = ids
        .values()
        .iter()
        .map(|r| Some(!deleted.contains(r)))
        .collect();
    let filtered = filter_record_batch(batch, &keep)?;
    if keep_ids {
        Ok(filtered)
    } else {
        Ok(filtered.project(&(0..last).collect::<Vec<_>>())?)
    }
}
