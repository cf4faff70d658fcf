//! Unique indexes: the in-memory key → row maps that enforce PRIMARY KEY and
//! UNIQUE constraints.
//!
//! A table's unique indexes are declared in the transaction that creates the
//! table ([`crate::Transaction::add_unique_indexes`]), or added to a table
//! with rows later ([`crate::Transaction::create_unique_index`], built over
//! the rows when it commits), and stored as one
//! metadata entry under [`UNIQUE_META_PREFIX`], so they are as durable as the
//! table itself (WAL and checkpoints carry metadata). The maps are not
//! persisted: [`crate::Store::open`] rebuilds them from the recovered rows.
//!
//! A map holds the *latest committed* state: key → id of the live row that
//! has it. Keys are Arrow row-format encodings of the key columns, so two
//! keys are equal exactly when the values are equal as their declared types.
//! Rows with a NULL in any key column are not indexed (NULLs are distinct,
//! as in PostgreSQL).
//!
//! Enforcement happens twice:
//!
//! * when a transaction inserts rows, against the committed map (minus rows
//!   the transaction itself deleted) and against its own earlier inserts, so
//!   the failing statement is the one that reports the violation;
//! * at commit, in the serialized writer under the catalog's write lock,
//!   against the map as left by every commit before it. Two transactions
//!   inserting the same key concurrently therefore never both commit: the
//!   second to reach the writer fails with [`StorageError::UniqueViolation`].
//!
//! Checking costs one encoding and hash probe per written row; nothing is
//! proportional to the table size.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, UInt32Array};
use arrow::row::{RowConverter, SortField};
use serde::{Deserialize, Serialize};

use crate::catalog::TableEntry;
use crate::error::{Result, StorageError};
use crate::segment::{materialize, ColumnDef, Selection, LIVE};
use crate::TableId;

/// Prefix of the metadata keys holding each table's unique index
/// definitions (followed by the table id).
pub const UNIQUE_META_PREFIX: &str = "__storage/unique/";

/// The metadata key holding `table`'s unique index definitions.
pub(crate) fn meta_key(table: TableId) -> String {
    format!("{UNIQUE_META_PREFIX}{table}")
}

/// The table a unique-index metadata key belongs to.
pub(crate) fn table_of_key(key: &str) -> Option<TableId> {
    key.strip_prefix(UNIQUE_META_PREFIX)?.parse().ok()
}

/// A unique constraint over some of a table's columns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UniqueIndexDef {
    /// The constraint's name, reported in violations (e.g. `t_pkey`).
    pub name: String,
    /// Positions of the key columns in the table, in key order.
    pub columns: Vec<usize>,
}

pub(crate) fn decode_defs(bytes: &[u8]) -> Result<Vec<UniqueIndexDef>> {
    serde_json::from_slice(bytes)
        .map_err(|e| StorageError::Corrupt(format!("unique index definitions: {e}")))
}

pub(crate) fn encode_defs(defs: &[UniqueIndexDef]) -> Result<Vec<u8>> {
    serde_json::to_vec(defs).map_err(|e| StorageError::Internal(e.to_string()))
}

/// An encoded key. Keys of up to [`INLINE_KEY`] bytes (any single integer,
/// date or timestamp column, short text) are stored inline, saving an
/// allocation and about half the memory per indexed row.
#[derive(Clone)]
pub(crate) enum Key {
    Inline(u8, [u8; INLINE_KEY]),
    Heap(Box<[u8]>),
}

const INLINE_KEY: usize = 22;

impl Key {
    fn new(bytes: &[u8]) -> Key {
        if bytes.len() <= INLINE_KEY {
            let mut data = [0u8; INLINE_KEY];
            data[..bytes.len()].copy_from_slice(bytes);
            Key::Inline(bytes.len() as u8, data)
        } else {
            Key::Heap(Box::from(bytes))
        }
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Key::Inline(len, data) => &data[..*len as usize],
            Key::Heap(b) => b,
        }
    }
}

impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        **self == **other
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    // Must hash exactly like `[u8]` for `Borrow<[u8]>` lookups.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

/// Encodes key column values into comparable byte strings.
pub(crate) struct KeyEncoder {
    pub(crate) def: UniqueIndexDef,
    converter: RowConverter,
    /// Key column names, for messages.
    names: Vec<String>,
}

impl KeyEncoder {
    pub(crate) fn new(def: UniqueIndexDef, columns: &[ColumnDef]) -> Result<KeyEncoder> {
        let mut fields = Vec::with_capacity(def.columns.len());
        let mut names = Vec::with_capacity(def.columns.len());
        for &c in &def.columns {
            let col = columns.get(c).ok_or_else(|| {
                StorageError::InvalidArgument(format!(
                    "unique index {} names column #{c}, which does not exist",
                    def.name
                ))
            })?;
            fields.push(SortField::new(col.field.data_type().clone()));
            names.push(col.field.name().clone());
        }
        if fields.is_empty() {
            return Err(StorageError::InvalidArgument(format!(
                "unique index {} has no columns",
                def.name
            )));
        }
        Ok(KeyEncoder {
            def,
            converter: RowConverter::new(fields)?,
            names,
        })
    }

    /// The keys of a batch's rows, given all of the table's columns (or at
    /// least every key column) in table order; `None` for rows with a NULL
    /// in a key column.
    pub(crate) fn encode(&self, table_columns: &[ArrayRef]) -> Result<Vec<Option<Key>>> {
        let cols: Vec<ArrayRef> = self
            .def
            .columns
            .iter()
            .map(|&c| {
                table_columns.get(c).cloned().ok_or_else(|| {
                    StorageError::Internal(format!("key column #{c} missing from batch"))
                })
            })
            .collect::<Result<_>>()?;
        self.encode_key_columns(&cols)
    }

    /// Like [`KeyEncoder::encode`], given only the key columns.
    pub(crate) fn encode_key_columns(&self, cols: &[ArrayRef]) -> Result<Vec<Option<Key>>> {
        let rows = self.converter.convert_columns(cols)?;
        let n = rows.num_rows();
        let any_nulls = cols.iter().any(|c| c.null_count() > 0);
        Ok((0..n)
            .map(|i| {
                if any_nulls && cols.iter().any(|c| c.is_null(i)) {
                    None
                } else {
                    Some(Key::new(rows.row(i).as_ref()))
                }
            })
            .collect())
    }

    /// The violation error for `key` in an index of `table`, with
    /// PostgreSQL's detail text.
    pub(crate) fn violation(&self, table: TableId, key: &[u8]) -> StorageError {
        StorageError::UniqueViolation {
            table,
            constraint: self.def.name.clone(),
            detail: format!("Key {} already exists.", self.describe(key)),
        }
    }

    /// The error for a key two rows share when the index is created.
    pub(crate) fn duplicated(&self, key: &[u8]) -> StorageError {
        StorageError::UniqueIndexDuplicate {
            index: self.def.name.clone(),
            detail: format!("Key {} is duplicated.", self.describe(key)),
        }
    }

    /// `(a, b)=(1, x)`: the key columns and values, as PostgreSQL shows them.
    fn describe(&self, key: &[u8]) -> String {
        let parser = self.converter.parser();
        let values = self
            .converter
            .convert_rows(std::iter::once(parser.parse(key)))
            .map(|arrays| {
                arrays
                    .iter()
                    .map(|a| {
                        arrow::util::display::array_value_to_string(a, 0)
                            .unwrap_or_else(|_| "?".into())
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|_| "?".into());
        format!("({})=({values})", self.names.join(", "))
    }

    /// Keys of the given rows of a stored table (row ids sorted, all
    /// present), paired with their row ids.
    pub(crate) fn keys_of_rows(
        &self,
        table: &TableEntry,
        rows: &[u64],
    ) -> Result<Vec<(Option<Key>, u64)>> {
        let (hits, _) = crate::segment::locate(&table.segments, rows);
        let mut out = Vec::with_capacity(rows.len());
        let (proj, schema) =
            crate::catalog::output_schema(&table.columns, Some(&self.def.columns), false)?;
        for (si, positions) in hits {
            let seg = &table.segments[si];
            let ids: Vec<u64> = positions
                .iter()
                .map(|p| seg.row_ids.value(*p as usize))
                .collect();
            let idx = UInt32Array::from(positions);
            let Some(batch) = materialize(
                seg,
                &table.columns,
                &proj,
                false,
                &schema,
                Selection::Take(&idx),
            )?
            else {
                continue;
            };
            let keys = self.encode_key_columns(batch.columns())?;
            out.extend(keys.into_iter().zip(ids));
        }
        Ok(out)
    }
}

/// A committed unique index: the definition and the key → row map.
pub(crate) struct UniqueIndex {
    pub(crate) encoder: Arc<KeyEncoder>,
    pub(crate) map: HashMap<Key, u64>,
}

impl UniqueIndex {
    /// Builds the index from the table's live rows. A key two rows share is
    /// logged (it can only come from data stored before the constraint was
    /// enforced) and the later row wins.
    pub(crate) fn build(def: UniqueIndexDef, table: &TableEntry) -> Result<UniqueIndex> {
        Self::build_from(def, table, LIVE - 1, false)
    }

    /// Builds a new index over the rows of an existing table visible at
    /// `seq` (`LIVE - 1`: the live rows), failing with
    /// [`StorageError::UniqueIndexDuplicate`] if two of them share a key.
    pub(crate) fn build_new(
        def: UniqueIndexDef,
        table: &TableEntry,
        seq: crate::Seq,
    ) -> Result<UniqueIndex> {
        Self::build_from(def, table, seq, true)
    }

    fn build_from(
        def: UniqueIndexDef,
        table: &TableEntry,
        seq: crate::Seq,
        strict: bool,
    ) -> Result<UniqueIndex> {
        let encoder = Arc::new(KeyEncoder::new(def, &table.columns)?);
        let (proj, schema) =
            crate::catalog::output_schema(&table.columns, Some(&encoder.def.columns), true)?;
        let mut map = HashMap::new();
        for seg in &table.segments {
            let mask = seg.visibility(seq);
            let sel = match &mask {
                None => Selection::All,
                Some(m) => Selection::Mask(m),
            };
            let Some(batch) = materialize(seg, &table.columns, &proj, true, &schema, sel)? else {
                continue;
            };
            let n = batch.num_columns();
            let ids = batch
                .column(n - 1)
                .as_any()
                .downcast_ref::<arrow::array::UInt64Array>()
                .ok_or_else(|| StorageError::Internal("row id column has wrong type".into()))?
                .clone();
            let keys = encoder.encode_key_columns(&batch.columns()[..n - 1])?;
            for (key, id) in keys.into_iter().zip(ids.values().iter()) {
                let Some(key) = key else { continue };
                if strict {
                    match map.entry(key) {
                        std::collections::hash_map::Entry::Occupied(e) => {
                            return Err(encoder.duplicated(e.key()));
                        }
                        std::collections::hash_map::Entry::Vacant(e) => {
                            e.insert(*id);
                        }
                    }
                } else if map.insert(key, *id).is_some() {
                    tracing::error!(
                        "unique index {} holds a duplicate key (row {id}); it was stored before the constraint was enforced",
                        encoder.def.name
                    );
                }
            }
        }
        Ok(UniqueIndex { encoder, map })
    }
}

/// The keys a committing transaction adds to one unique index, computed and
/// checked by the transaction, re-checked by the writer.
pub(crate) struct CommitKeys {
    pub(crate) table: TableId,
    /// The index's definition as the transaction saw it: keys are checked
    /// only against an index with this very definition (an index dropped
    /// and recreated under the same name over other columns is another).
    pub(crate) def: UniqueIndexDef,
    pub(crate) keys: Vec<(Key, u64)>,
}
