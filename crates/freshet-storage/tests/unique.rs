//! Unique indexes: checks at insert time and at commit, MVCC races, deletes
//! and truncation freeing keys, NULL keys, checkpoint and WAL recovery.

mod common;

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use common::*;
use freshet_storage::{RowId, StorageError, Store, TableId, UniqueIndexDef};

fn assert_violation<T: std::fmt::Debug>(r: Result<T, StorageError>, key: i64) {
    match r {
        Err(StorageError::UniqueViolation {
            constraint, detail, ..
        }) => {
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

/// The `id`s of `batches` whose key is in `keys`, as a filtered scan
/// finds them.
fn scanned(tx: &freshet_storage::Transaction, t: TableId, keys: &[i64]) -> Vec<i64> {
    let mut found: Vec<i64> = ids(&tx.scan(t, None, false).unwrap())
        .into_iter()
        .filter(|id| keys.contains(id))
        .collect();
    found.sort_unstable();
    found
}

fn looked_up(tx: &freshet_storage::Transaction, t: TableId, keys: &[i64]) -> Option<Vec<i64>> {
    let keys: arrow::array::ArrayRef = Arc::new(Int64Array::from(keys.to_vec()));
    tx.lookup_unique(t, &[0], &[keys], None)
        .unwrap()
        .map(|batches| ids(&batches))
}

#[test]
fn lookups_answer_what_a_scan_answers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create_keyed(&store);
    insert(&store, t, &(0..1000).collect::<Vec<_>>());

    // Nothing written since the snapshot: the index answers, hits and
    // misses alike, and a NULL key matches nothing.
    let tx = store.begin();
    assert_eq!(looked_up(&tx, t, &[5, 999, 1000, -1]), Some(vec![5, 999]));
    let with_null: arrow::array::ArrayRef = Arc::new(Int64Array::from(vec![Some(7), None]));
    let rows = tx
        .lookup_unique(t, &[0], &[with_null], Some(&[1]))
        .unwrap()
        .unwrap();
    assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    assert_eq!(rows[0].num_columns(), 1, "the projection is applied");
    // Not an index over these columns, or keys of another type: no answer.
    let text: arrow::array::ArrayRef = Arc::new(StringArray::from(vec!["5"]));
    assert!(tx
        .lookup_unique(t, &[1], std::slice::from_ref(&text), None)
        .unwrap()
        .is_none());
    assert!(tx.lookup_unique(t, &[0], &[text], None).unwrap().is_none());
    drop(tx);

    // Random writes, with old snapshots kept open across them: whenever the
    // index answers, it answers what the snapshot's scan does.
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut old: Vec<freshet_storage::Transaction> = Vec::new();
    let mut answered = 0;
    for _ in 0..300 {
        match next() % 4 {
            0 => {
                // Delete a few keys (and maybe put some back).
                let mut tx = store.begin();
                let keys: Vec<i64> = (0..3).map(|_| (next() % 1200) as i64).collect();
                let rows: Vec<RowId> = ids_with_row_ids(&tx.scan(t, None, true).unwrap())
                    .into_iter()
                    .filter(|(id, _)| keys.contains(id))
                    .map(|(_, row)| RowId(row))
                    .collect();
                tx.delete(t, &rows).unwrap();
                if next() % 2 == 0 {
                    let mut again = keys.clone();
                    again.sort_unstable();
                    again.dedup();
                    tx.insert(t, batch(&again)).unwrap();
                }
                tx.commit_blocking().unwrap();
            }
            1 => {
                let mut tx = store.begin();
                let key = (next() % 1200) as i64;
                if tx.insert(t, batch(&[key])).is_ok() {
                    let _ = tx.commit_blocking();
                }
            }
            2 => old.push(store.begin()),
            _ => {
                if !old.is_empty() {
                    let i = (next() as usize) % old.len();
                    old.swap_remove(i);
                }
            }
        }
        let keys: Vec<i64> = (0..4).map(|_| (next() % 1200) as i64).collect();
        let current = store.begin();
        for tx in old.iter().chain(std::iter::once(&current)) {
            if let Some(found) = looked_up(tx, t, &keys) {
                answered += 1;
                let mut unique_keys = keys.clone();
                unique_keys.sort_unstable();
                unique_keys.dedup();
                assert_eq!(found, scanned(tx, t, &unique_keys), "keys {keys:?}");
            }
        }
        // A fresh snapshot is never refused.
        assert!(looked_up(&current, t, &keys).is_some());
    }
    assert!(answered > 300);

    // A transaction that wrote to the table scans instead.
    let mut tx = store.begin();
    tx.insert(t, batch(&[5000])).unwrap();
    assert!(looked_up(&tx, t, &[5000]).is_none());
}

/// Deletes every row whose id is `key`.
fn delete_all(store: &Store, t: TableId, key: i64) {
    let mut tx = store.begin();
    tx.delete(t, &row_ids_of(store, t, &[key])).unwrap();
    tx.commit_blocking().unwrap();
}

fn pkey() -> UniqueIndexDef {
    UniqueIndexDef {
        name: "t_pkey".into(),
        columns: vec![0],
    }
}

/// CREATE UNIQUE INDEX on a table with rows: built at commit over the
/// latest committed rows, refused when two share a key (also one committed
/// concurrently), enforced from then on, kept by recovery, and dropped.
#[test]
fn unique_indexes_are_created_and_dropped_on_existing_tables() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create(&store);
    insert(&store, t, &[1, 2, 2]);

    // Two live rows share key 2: refused at once, nothing changes.
    let mut tx = store.begin();
    match tx.create_unique_index(t, pkey()) {
        Err(e @ StorageError::UniqueIndexDuplicate { .. }) => {
            assert_eq!(e.to_string(), "could not create unique index \"t_pkey\"");
            assert_eq!(e.detail(), Some("Key (id)=(2) is duplicated."));
            assert_eq!(e.sqlstate(), "23505");
        }
        other => panic!("expected a duplicate key, got {other:?}"),
    }
    tx.commit_blocking().unwrap();
    assert!(store.begin().unique_indexes(t).unwrap().is_empty());

    delete_all(&store, t, 2);
    insert(&store, t, &[2]);
    // A key committed by a concurrent transaction after this one began
    // still counts.
    let mut creating = store.begin();
    creating.create_unique_index(t, pkey()).unwrap();
    insert(&store, t, &[3, 3]);
    assert!(matches!(
        creating.commit_blocking(),
        Err(StorageError::UniqueIndexDuplicate { .. })
    ));
    delete_all(&store, t, 3);

    // A writer that began before the index committed fails with 40001.
    let mut writer = store.begin();
    writer.insert(t, batch(&[10])).unwrap();
    let mut tx = store.begin();
    tx.create_unique_index(t, pkey()).unwrap();
    // A row this transaction inserts after creating the index is checked
    // against the snapshot's rows at once, and against rows committed
    // since at commit.
    assert_violation(tx.insert(t, batch(&[1])), 1);
    insert(&store, t, &[7]);
    tx.insert(t, batch(&[7])).unwrap();
    assert_violation(tx.commit_blocking(), 7);
    delete(&store, t, &[7]);
    let mut tx = store.begin();
    tx.create_unique_index(t, pkey()).unwrap();
    tx.insert(t, batch(&[5])).unwrap();
    tx.commit_blocking().unwrap();
    match writer.commit_blocking() {
        Err(e) => assert_eq!(e.sqlstate(), "40001", "{e}"),
        Ok(_) => panic!("a writer that did not see the new index committed"),
    }
    assert_eq!(scan_ids(&store, t), vec![1, 2, 5]);

    // Enforced from now on, on a table that had no index before.
    let mut tx = store.begin();
    assert_violation(tx.insert(t, batch(&[5])), 5);
    tx.rollback();
    let mut tx = store.begin();
    assert!(
        tx.create_unique_index(t, pkey()).is_err(),
        "a second t_pkey"
    );
    tx.insert(t, batch(&[6])).unwrap();
    assert!(
        tx.create_unique_index(
            t,
            UniqueIndexDef {
                name: "other".into(),
                columns: vec![0],
            }
        )
        .is_err(),
        "after writing to the table"
    );
    tx.commit_blocking().unwrap();
    drop(store);

    // Recovery rebuilds it; DROP INDEX lifts it.
    let store = open(dir.path());
    let mut tx = store.begin();
    assert_violation(tx.insert(t, batch(&[6])), 6);
    tx.rollback();
    let mut tx = store.begin();
    tx.drop_unique_index(t, "t_pkey").unwrap();
    assert!(tx.drop_unique_index(t, "t_pkey").is_err());
    tx.commit_blocking().unwrap();
    insert(&store, t, &[6]);
    assert_eq!(scan_ids(&store, t), vec![1, 2, 5, 6, 6]);
}

/// A writer that saw an index that was dropped and recreated under the same
/// name over other columns does not have its keys checked against the new
/// one: its commit fails with 40001 instead of storing a row the new index
/// was never asked about.
#[test]
fn an_index_recreated_under_its_name_is_another_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create_keyed(&store);
    insert(&store, t, &[1, 2]);

    let mut writer = store.begin();
    writer.insert(t, batch(&[3])).unwrap();

    let mut tx = store.begin();
    tx.drop_unique_index(t, "t_pkey").unwrap();
    tx.create_unique_index(
        t,
        UniqueIndexDef {
            name: "t_pkey".into(),
            columns: vec![1],
        },
    )
    .unwrap();
    tx.commit_blocking().unwrap();

    match writer.commit_blocking() {
        Err(e) => assert_eq!(e.sqlstate(), "40001", "{e}"),
        Ok(_) => panic!("keys encoded for the old index were taken for the new one"),
    }
    assert_eq!(scan_ids(&store, t), vec![1, 2]);
}
