//! Transactions: snapshot isolation, own writes, conflicts, DDL, metadata.

mod common;

use std::sync::Arc;

use arrow::array::{Array, Int64Array};
use arrow::datatypes::{DataType, Field};
use common::*;
use freshet_storage::{RowId, StorageError, ROW_ID_COLUMN};

#[test]
fn snapshot_isolation() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.latest_seq(), 0);
    let t = create(&store);
    insert(&store, t, &[1, 2, 3]);
    let old = store.snapshot();
    let reader_tx = store.begin();
    insert(&store, t, &[4]);
    delete(&store, t, &[1]);
    assert_eq!(ids(&old.scan(t, None, false).unwrap()), vec![1, 2, 3]);
    assert_eq!(ids(&reader_tx.scan(t, None, false).unwrap()), vec![1, 2, 3]);
    assert_eq!(scan_ids(&store, t), vec![2, 3, 4]);
    // Time travel to a retained seq.
    let at = store.snapshot_at(old.seq()).unwrap();
    assert_eq!(ids(&at.scan(t, None, false).unwrap()), vec![1, 2, 3]);
    assert!(matches!(
        store.snapshot_at(store.latest_seq() + 1),
        Err(StorageError::FutureSeq { .. })
    ));
    assert!(store.commit_timestamp(old.seq()).is_some());
    let info = reader_tx.commit_blocking().unwrap();
    assert_eq!(info.seq, old.seq(), "read-only commit is trivial");
}

#[test]
fn own_writes_visible() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create(&store);
    insert(&store, t, &[1, 2]);
    let mut tx = store.begin();
    assert!(tx.is_read_only());
    tx.insert(t, batch(&[10, 11])).unwrap();
    let rows = ids_with_row_ids(&tx.scan(t, None, true).unwrap());
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1, 2, 10, 11]
    );
    // Delete one committed row and one own row.
    let del: Vec<RowId> = rows
        .iter()
        .filter(|(v, _)| *v == 1 || *v == 11)
        .map(|(_, r)| RowId(*r))
        .collect();
    tx.delete(t, &del).unwrap();
    assert_eq!(ids(&tx.scan(t, None, false).unwrap()), vec![2, 10]);
    // Projection and row ids on own writes.
    let proj = tx.scan(t, Some(&[1]), true).unwrap();
    for b in &proj {
        assert_eq!(b.num_columns(), 2);
        assert_eq!(b.schema().field(0).name(), "name");
        assert_eq!(b.schema().field(1).name(), ROW_ID_COLUMN);
    }
    // Others don't see anything yet.
    assert_eq!(scan_ids(&store, t), vec![1, 2]);
    let own_row_10 = rows.iter().find(|r| r.0 == 10).unwrap().1;
    tx.commit_blocking().unwrap();
    let after = ids_with_row_ids(&store.snapshot().scan(t, None, true).unwrap());
    assert_eq!(after.iter().map(|r| r.0).collect::<Vec<_>>(), vec![2, 10]);
    assert_eq!(
        after.iter().find(|r| r.0 == 10).unwrap().1,
        own_row_10,
        "row ids assigned at insert time are final"
    );
}

#[test]
fn delete_conflict_is_40001() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create(&store);
    insert(&store, t, &[1, 2]);
    let r1 = row_ids_of(&store, t, &[1]);
    let mut a = store.begin();
    let mut b = store.begin();
    a.delete(t, &r1).unwrap();
    b.delete(t, &r1).unwrap();
    a.commit_blocking().unwrap();
    let err = b.commit_blocking().unwrap_err();
    assert!(matches!(err, StorageError::SerializationFailure(_)));
    assert_eq!(err.sqlstate(), "40001");
    assert_eq!(scan_ids(&store, t), vec![2]);
}

#[test]
fn concurrent_conflicts_in_one_group() {
    // Many transactions deleting the same row, committed concurrently: exactly
    // one wins even when they land in the same commit group.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create(&store);
    insert(&store, t, &[1]);
    let r1 = row_ids_of(&store, t, &[1]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let results: Vec<_> = rt.block_on(async {
        let mut txs = Vec::new();
        for _ in 0..8 {
            let mut tx = store.begin();
            tx.delete(t, &r1).unwrap();
            txs.push(tokio::spawn(tx.commit()));
        }
        let mut out = Vec::new();
        for h in txs {
            out.push(h.await.unwrap());
        }
        out
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| e.sqlstate() == "40001"));
}

#[test]
fn ddl_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create(&store);
    // Insert vs concurrent drop.
    let mut ins = store.begin();
    ins.insert(t, batch(&[1])).unwrap();
    let mut dropper = store.begin();
    dropper.drop_table(t).unwrap();
    dropper.commit_blocking().unwrap();
    assert_eq!(ins.commit_blocking().unwrap_err().sqlstate(), "40001");
    assert_eq!(
        store
            .snapshot()
            .scan(t, None, false)
            .unwrap_err()
            .sqlstate(),
        "42P01"
    );
    // Add column vs concurrent insert.
    let t2 = create(&store);
    let mut alter = store.begin();
    alter
        .add_column(
            t2,
            Field::new("x", DataType::Int64, true),
            Arc::new(Int64Array::from(vec![Some(7)])),
        )
        .unwrap();
    insert(&store, t2, &[5]);
    assert_eq!(alter.commit_blocking().unwrap_err().sqlstate(), "40001");
}

#[test]
fn meta_conflict_and_visibility() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut a = store.begin();
    let mut b = store.begin();
    a.put_meta("cat/t1", b"one".to_vec());
    a.put_meta("cat/t2", b"two".to_vec());
    a.put_meta("other", b"x".to_vec());
    assert_eq!(a.get_meta("cat/t1"), Some(b"one".to_vec()));
    assert_eq!(a.scan_meta("cat/").len(), 2);
    b.put_meta("cat/t1", b"uno".to_vec());
    a.commit_blocking().unwrap();
    assert_eq!(b.commit_blocking().unwrap_err().sqlstate(), "40001");
    let snap = store.snapshot();
    assert_eq!(
        snap.scan_meta("cat/"),
        vec![
            ("cat/t1".to_string(), b"one".to_vec()),
            ("cat/t2".to_string(), b"two".to_vec())
        ]
    );
    let mut c = store.begin();
    c.delete_meta("cat/t1");
    assert_eq!(c.scan_meta("cat/").len(), 1);
    c.commit_blocking().unwrap();
    assert_eq!(store.snapshot().get_meta("cat/t1"), None);
    assert_eq!(snap.get_meta("cat/t1"), Some(b"one".to_vec()));
}

#[test]
fn add_column_default_and_truncate() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create(&store);
    insert(&store, t, &[1, 2]);
    let mut tx = store.begin();
    tx.add_column(
        t,
        Field::new("score", DataType::Int64, true),
        Arc::new(Int64Array::from(vec![Some(42)])),
    )
    .unwrap();
    // Own view sees the new column on old rows.
    let b = tx.scan(t, Some(&[2]), false).unwrap();
    let vals: Vec<i64> = b
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
    assert_eq!(vals, vec![42, 42]);
    tx.commit_blocking().unwrap();
    assert_eq!(store.snapshot().table_schema(t).unwrap().fields().len(), 3);
    // Insert a three-column row, then read everything.
    let mut tx = store.begin();
    let three = arrow::array::RecordBatch::try_new(
        tx.table_schema(t).unwrap(),
        vec![
            batch(&[3]).column(0).clone(),
            batch(&[3]).column(1).clone(),
            Arc::new(Int64Array::from(vec![None::<i64>])),
        ],
    )
    .unwrap();
    tx.insert(t, three).unwrap();
    tx.commit_blocking().unwrap();
    let all = store.snapshot().scan(t, Some(&[0, 2]), false).unwrap();
    let mut pairs = Vec::new();
    for b in &all {
        let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let s = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        for i in 0..b.num_rows() {
            pairs.push((a.value(i), (!s.is_null(i)).then(|| s.value(i))));
        }
    }
    pairs.sort();
    assert_eq!(pairs, vec![(1, Some(42)), (2, Some(42)), (3, None)]);
    // Truncate sees own inserts too.
    let mut tx = store.begin();
    tx.insert(
        t,
        arrow::array::RecordBatch::try_new(
            tx.table_schema(t).unwrap(),
            vec![
                batch(&[9]).column(0).clone(),
                batch(&[9]).column(1).clone(),
                Arc::new(Int64Array::from(vec![Some(1)])),
            ],
        )
        .unwrap(),
    )
    .unwrap();
    tx.truncate(t).unwrap();
    assert!(tx.scan(t, None, false).unwrap().is_empty());
    tx.commit_blocking().unwrap();
    assert!(scan_ids(&store, t).is_empty());
    // Wrong schema is rejected.
    let mut tx = store.begin();
    assert_eq!(tx.insert(t, batch(&[1])).unwrap_err().sqlstate(), "42804");
}

#[test]
fn retention_hold_and_reclamation() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create(&store);
    let s1 = insert(&store, t, &[1]);
    store.set_retention_hold("dt", Some(s1));
    delete(&store, t, &[1]);
    insert(&store, t, &[2]);
    store.vacuum().unwrap();
    // History from s1 is still available.
    assert_eq!(
        ids(&store.snapshot_at(s1).unwrap().scan(t, None, false).unwrap()),
        vec![1]
    );
    let ch = store.changes(t, s1, store.latest_seq()).unwrap();
    assert_eq!(ids(&ch.deleted), vec![1]);
    store.set_retention_hold("dt", None);
    store.vacuum().unwrap();
    assert_eq!(store.retention_floor(), store.latest_seq());
    let err = store.snapshot_at(s1).unwrap_err();
    assert_eq!(err.sqlstate(), "72000");
    assert!(store.changes(t, s1, store.latest_seq()).is_err());
    assert_eq!(scan_ids(&store, t), vec![2]);
    let stats = store.table_stats(t, store.latest_seq()).unwrap();
    assert_eq!(stats.rows, 1);
}

#[test]
fn open_snapshot_blocks_reclamation() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create(&store);
    insert(&store, t, &[1, 2]);
    let snap = store.snapshot();
    delete(&store, t, &[1, 2]);
    store.vacuum().unwrap();
    assert_eq!(ids(&snap.scan(t, None, false).unwrap()), vec![1, 2]);
    assert!(store.retention_floor() <= snap.seq());
    drop(snap);
    store.vacuum().unwrap();
    assert_eq!(store.retention_floor(), store.latest_seq());
    assert_eq!(
        store.table_stats(t, store.latest_seq()).unwrap().segments,
        0
    );
}

#[test]
fn async_commit_and_locking() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert!(matches!(
        freshet_storage::Store::open(opts(dir.path())),
        Err(StorageError::Locked(_))
    ));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = create(&store);
    let seq = rt.block_on(async {
        let mut tx = store.begin();
        tx.insert(t, batch(&[1])).unwrap();
        tx.commit().await.unwrap().seq
    });
    assert_eq!(seq, store.latest_seq());
    store.close();
    let mut tx = store.begin();
    tx.insert(t, batch(&[2])).unwrap();
    assert!(matches!(tx.commit_blocking(), Err(StorageError::Closed)));
}
