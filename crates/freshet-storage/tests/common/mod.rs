//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use freshet_storage::{RowId, Store, StoreOptions, TableId, UniqueIndexDef, ROW_ID_COLUMN};

pub fn opts(dir: &Path) -> StoreOptions {
    StoreOptions::new(dir)
}

pub fn open(dir: &Path) -> Arc<Store> {
    Store::open(opts(dir)).expect("open store")
}

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]))
}

pub fn batch(ids: &[i64]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(
                ids.iter().map(|i| format!("n{i}")).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

/// Creates the standard two-column table and commits.
pub fn create(store: &Store) -> TableId {
    let mut tx = store.begin();
    let t = tx.create_table(schema()).unwrap();
    tx.commit_blocking().unwrap();
    t
}

/// A table with `id` as its primary key.
pub fn create_keyed(store: &Store) -> TableId {
    let mut tx = store.begin();
    let t = tx.create_table(schema()).unwrap();
    tx.add_unique_indexes(
        t,
        vec![UniqueIndexDef {
            name: "t_pkey".into(),
            columns: vec![0],
        }],
    )
    .unwrap();
    tx.commit_blocking().unwrap();
    t
}

pub fn insert(store: &Store, t: TableId, ids: &[i64]) -> u64 {
    let mut tx = store.begin();
    tx.insert(t, batch(ids)).unwrap();
    tx.commit_blocking().unwrap().seq
}

/// The `id` column of all batches, sorted.
pub fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    let mut out: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect();
    out.sort_unstable();
    out
}

/// `(id, row id)` pairs of batches carrying the row id column, sorted by id.
pub fn ids_with_row_ids(batches: &[RecordBatch]) -> Vec<(i64, u64)> {
    let mut out = Vec::new();
    for b in batches {
        let schema = b.schema();
        let last = schema.fields().len() - 1;
        assert_eq!(schema.field(last).name(), ROW_ID_COLUMN);
        let v = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let r = b
            .column(last)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap();
        for i in 0..b.num_rows() {
            out.push((v.value(i), r.value(i)));
        }
    }
    out.sort_unstable();
    out
}

/// Row ids of the rows whose `id` is in `wanted`, at the latest snapshot.
pub fn row_ids_of(store: &Store, t: TableId, wanted: &[i64]) -> Vec<RowId> {
    let snap = store.snapshot();
    ids_with_row_ids(&snap.scan(t, None, true).unwrap())
        .into_iter()
        .filter(|(v, _)| wanted.contains(v))
        .map(|(_, r)| RowId(r))
        .collect()
}

pub fn scan_ids(store: &Store, t: TableId) -> Vec<i64> {
    ids(&store.snapshot().scan(t, None, false).unwrap())
}

/// Deletes rows by their `id` value and commits; returns the commit seq.
pub fn delete(store: &Store, t: TableId, wanted: &[i64]) -> u64 {
    let rows = row_ids_of(store, t, wanted);
    assert_eq!(rows.len(), wanted.len());
    let mut tx = store.begin();
    tx.delete(t, &rows).unwrap();
    tx.commit_blocking().unwrap().seq
}
