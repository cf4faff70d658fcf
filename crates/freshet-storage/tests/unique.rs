//! Unique indexes: checks at insert time and at commit, MVCC races, deletes
//! and truncation freeing keys, NULL keys, checkpoint and WAL recovery.

mod common;

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use common::*;
use freshet_storage::{RowId, StorageError, Store, TableId, UniqueIndexDef};

/// A table with `id` as its primary key.
fn create_keyed(store: &Store) -> TableId {
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

fn assert_violation<T: std::fmt::Debug>(r: Result<T, StorageError>, key: i64) {
    match r {
        Err(StorageError::UniqueViolation { constraint, detail }) => {
            assert_eq!(constraint, "t_pkey");
            assert_eq!(detail, format!("Key (id)=({key}) already exists."));
        }
        other => panic!("expected a unique violation of key {key}, got {other:?}"),
    }
}

#[test]
fn duplicates_are_refused_at_insert() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create_keyed(&store);
    insert(&store, t, &[1, 2, 3]);

    let mut tx = store.begin();
    assert_violation(tx.insert(t, batch(&[4, 2])), 2);
    // Within one batch, and against the transaction's own rows.
    assert_violation(tx.insert(t, batch(&[5, 6, 5])), 5);
    tx.insert(t, batch(&[7])).unwrap();
    assert_violation(tx.insert(t, batch(&[7])), 7);
    // Failed batches wrote nothing and reserved no key.
    tx.insert(t, batch(&[4, 5, 6])).unwrap();
    tx.commit_blocking().unwrap();
    assert_eq!(scan_ids(&store, t), vec![1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn deleted_and_truncated_keys_are_free() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create_keyed(&store);
    insert(&store, t, &[1, 2, 3]);

    // Delete + re-insert (an UPDATE of the key's row) in one transaction.
    let mut tx = store.begin();
    tx.delete(t, &row_ids_of(&store, t, &[2])).unwrap();
    tx.insert(t, batch(&[2])).unwrap();
    assert_violation(tx.insert(t, batch(&[2])), 2);
    tx.commit_blocking().unwrap();
    assert_eq!(scan_ids(&store, t), vec![1, 2, 3]);

    // An own row deleted again frees its key.
    let mut tx = store.begin();
    tx.insert(t, batch(&[9])).unwrap();
    let own: Vec<RowId> = ids_with_row_ids(&tx.scan(t, None, true).unwrap())
        .into_iter()
        .filter(|(v, _)| *v == 9)
        .map(|(_, r)| RowId(r))
        .collect();
    tx.delete(t, &own).unwrap();
    tx.insert(t, batch(&[9])).unwrap();
    tx.commit_blocking().unwrap();

    // Committed deletes free keys for later transactions.
    delete(&store, t, &[1]);
    insert(&store, t, &[1]);

    let mut tx = store.begin();
    tx.truncate(t).unwrap();
    tx.insert(t, batch(&[1, 2, 3])).unwrap();
    tx.commit_blocking().unwrap();
    assert_eq!(scan_ids(&store, t), vec![1, 2, 3]);
}

#[test]
fn concurrent_inserts_of_one_key_commit_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create_keyed(&store);
    let mut a = store.begin();
    let mut b = store.begin();
    // Neither sees the other's uncommitted row.
    a.insert(t, batch(&[1, 2])).unwrap();
    b.insert(t, batch(&[3, 2])).unwrap();
    a.commit_blocking().unwrap();
    assert_violation(b.commit_blocking(), 2);
    assert_eq!(scan_ids(&store, t), vec![1, 2]);

    // A key committed after a transaction's snapshot is seen at insert.
    let mut c = store.begin();
    insert(&store, t, &[5]);
    assert_violation(c.insert(t, batch(&[5])), 5);

    // A concurrent delete of the conflicting row frees the key.
    let mut d = store.begin();
    delete(&store, t, &[1]);
    d.insert(t, batch(&[1])).unwrap();
    d.commit_blocking().unwrap();
    assert_eq!(scan_ids(&store, t), vec![1, 2, 5]);

    // Both delete the same row and re-insert its key: the first wins, the
    // second is a serialization failure (not a duplicate).
    let mut e = store.begin();
    let mut f = store.begin();
    for tx in [&mut e, &mut f] {
        tx.delete(t, &row_ids_of(&store, t, &[5])).unwrap();
        tx.insert(t, batch(&[5])).unwrap();
    }
    e.commit_blocking().unwrap();
    assert!(matches!(
        f.commit_blocking(),
        Err(StorageError::SerializationFailure(_))
    ));
    assert_eq!(scan_ids(&store, t), vec![1, 2, 5]);
}

#[test]
fn concurrent_threads_leave_one_row_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create_keyed(&store);
    let threads: Vec<_> = (0..8)
        .map(|n| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut won = Vec::new();
                for k in 0..200i64 {
                    let key = (k * 7 + n * 13) % 200;
                    let mut tx = store.begin();
                    if tx.insert(t, batch(&[key])).is_err() {
                        continue;
                    }
                    match tx.commit_blocking() {
                        Ok(_) => won.push(key),
                        Err(StorageError::UniqueViolation { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                won
            })
        })
        .collect();
    let mut won: Vec<i64> = threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    won.sort_unstable();
    assert_eq!(won, (0..200).collect::<Vec<_>>());
    assert_eq!(scan_ids(&store, t), won);
}

#[test]
fn null_keys_are_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut tx = store.begin();
    let t = tx.create_table(schema()).unwrap();
    tx.add_unique_indexes(
        t,
        vec![UniqueIndexDef {
            name: "t_name_key".into(),
            columns: vec![1],
        }],
    )
    .unwrap();
    tx.commit_blocking().unwrap();
    let rows = |ids: &[i64], names: Vec<Option<&str>>| {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    };
    let mut tx = store.begin();
    tx.insert(t, rows(&[1, 2, 3], vec![None, None, Some("a")]))
        .unwrap();
    tx.commit_blocking().unwrap();
    let mut tx = store.begin();
    tx.insert(t, rows(&[4], vec![None])).unwrap();
    assert!(matches!(
        tx.insert(t, rows(&[5], vec![Some("a")])),
        Err(StorageError::UniqueViolation { .. })
    ));
    tx.commit_blocking().unwrap();
    assert_eq!(scan_ids(&store, t), vec![1, 2, 3, 4]);
}

#[test]
fn indexes_are_rebuilt_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let t = {
        let store = open(dir.path());
        let t = create_keyed(&store);
        insert(&store, t, &[1, 2, 3]);
        store.checkpoint().unwrap();
        insert(&store, t, &[4]);
        delete(&store, t, &[2]);
        t
    };
    let store = open(dir.path());
    let mut tx = store.begin();
    // From the checkpoint, from the WAL, and a deleted key that is free.
    assert_violation(tx.insert(t, batch(&[1])), 1);
    assert_violation(tx.insert(t, batch(&[4])), 4);
    tx.insert(t, batch(&[2])).unwrap();
    tx.commit_blocking().unwrap();
    assert_eq!(scan_ids(&store, t), vec![1, 2, 3, 4]);

    // Dropping the table drops its index definitions too.
    let mut tx = store.begin();
    tx.drop_table(t).unwrap();
    tx.commit_blocking().unwrap();
    assert!(store
        .snapshot()
        .scan_meta(freshet_storage::UNIQUE_META_PREFIX)
        .is_empty());
}

#[test]
fn insert_skipping_conflicts_keeps_free_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create_keyed(&store);
    insert(&store, t, &[1, 2]);
    let mut tx = store.begin();
    let kept = tx
        .insert_skipping_conflicts(t, batch(&[1, 3, 3, 4, 2]), None)
        .unwrap();
    assert_eq!(ids(&[kept]), vec![3, 4]);
    tx.commit_blocking().unwrap();
    assert_eq!(scan_ids(&store, t), vec![1, 2, 3, 4]);
}
