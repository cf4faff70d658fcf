//! The change feed: inserts, deletes, updates, cancellation inside a window,
//! cost independent of table size, and behaviour across compaction.

mod common;

use common::*;
use freshet_storage::{RowId, ROW_ID_COLUMN};

#[test]
fn inserts_deletes_updates() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create(&store);
    // The change feed only guarantees history a hold protects: without one,
    // background maintenance may advance the floor between two steps.
    store.set_retention_hold("test", Some(0));
    let s0 = insert(&store, t, &[1, 2, 3]);
    let s1 = insert(&store, t, &[4]);
    let ch = store.changes(t, s0, s1).unwrap();
    assert_eq!(ids(&ch.inserted), vec![4]);
    assert!(ch.deleted.is_empty());
    let last = ch.schema.fields().len() - 1;
    assert_eq!(ch.schema.field(last).name(), ROW_ID_COLUMN);

    // Update row 2: delete + insert of a new row id, in one transaction.
    let old = row_ids_of(&store, t, &[2]);
    let mut tx = store.begin();
    tx.delete(t, &old).unwrap();
    tx.insert(t, batch(&[20])).unwrap();
    let s2 = tx.commit_blocking().unwrap().seq;
    let ch = store.changes(t, s1, s2).unwrap();
    assert_eq!(ids(&ch.inserted), vec![20]);
    let del = ids_with_row_ids(&ch.deleted);
    assert_eq!(
        del,
        vec![(2, old[0].0)],
        "deleted rows carry old content and id"
    );
    // Deleted rows carry all columns.
    assert_eq!(ch.deleted[0].num_columns(), 3);

    // Whole history.
    let ch = store.changes(t, 0, s2).unwrap();
    assert_eq!(ids(&ch.inserted), vec![1, 3, 4, 20]);
    assert!(
        ch.deleted.is_empty(),
        "row 2 was inserted and deleted inside the window"
    );
}

#[test]
fn insert_then_delete_in_window_cancels() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create(&store);
    store.set_retention_hold("test", Some(0));
    let s0 = insert(&store, t, &[1]);
    insert(&store, t, &[2]);
    let s2 = delete(&store, t, &[2]);
    let s3 = delete(&store, t, &[1]);
    let ch = store.changes(t, s0, s3).unwrap();
    assert!(ch.inserted.is_empty());
    assert_eq!(ids(&ch.deleted), vec![1]);
    // Narrower windows see each step.
    let ch = store.changes(t, s2, s3).unwrap();
    assert_eq!(ids(&ch.deleted), vec![1]);
    let ch = store.changes(t, s0, s2).unwrap();
    assert!(ids(&ch.inserted).is_empty() && ids(&ch.deleted).is_empty());
    // Empty window.
    let ch = store.changes(t, s3, s3).unwrap();
    assert!(ch.inserted.is_empty() && ch.deleted.is_empty());
}

#[test]
fn cost_independent_of_table_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.compaction_min_segments = 1_000_000; // keep many segments
    let store = freshet_storage::Store::open(o).unwrap();
    let t = create(&store);
    store.set_retention_hold("test", Some(0));
    for chunk in 0..200 {
        let ids: Vec<i64> = (chunk * 100..chunk * 100 + 100).collect();
        insert(&store, t, &ids);
    }
    let before = store.latest_seq();
    insert(&store, t, &[1_000_000]);
    delete(&store, t, &[5_050]);
    let m0 = store.metrics().change_segments_read;
    let ch = store.changes(t, before, store.latest_seq()).unwrap();
    let touched = store.metrics().change_segments_read - m0;
    assert_eq!(ids(&ch.inserted), vec![1_000_000]);
    assert_eq!(ids(&ch.deleted), vec![5_050]);
    assert_eq!(touched, 2, "one segment for the insert, one for the delete");
    assert_eq!(
        store.table_stats(t, store.latest_seq()).unwrap().segments,
        201
    );
}

#[test]
fn compaction_keeps_row_ids_and_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.compaction_min_segments = 4;
    let store = freshet_storage::Store::open(o).unwrap();
    let t = create(&store);
    let start = store.latest_seq();
    store.set_retention_hold("dt", Some(start));
    for i in 0..64 {
        insert(&store, t, &[i]);
    }
    let mid = store.latest_seq();
    delete(&store, t, &[3, 40]);
    let before_rows = ids_with_row_ids(&store.snapshot().scan(t, None, true).unwrap());
    let before_changes = store.changes(t, start, store.latest_seq()).unwrap();
    let before_mid = store.changes(t, mid, store.latest_seq()).unwrap();
    assert_eq!(
        store.table_stats(t, store.latest_seq()).unwrap().segments,
        64
    );
    store.vacuum().unwrap();
    store.vacuum().unwrap();
    let segs = store.table_stats(t, store.latest_seq()).unwrap().segments;
    assert!(segs < 8, "compaction merged segments, got {segs}");
    assert!(store.metrics().compactions > 0);
    let after_rows = ids_with_row_ids(&store.snapshot().scan(t, None, true).unwrap());
    assert_eq!(before_rows, after_rows, "row ids survive compaction");
    let after_changes = store.changes(t, start, store.latest_seq()).unwrap();
    assert_eq!(
        ids_with_row_ids(&before_changes.inserted),
        ids_with_row_ids(&after_changes.inserted)
    );
    let after_mid = store.changes(t, mid, store.latest_seq()).unwrap();
    assert_eq!(
        ids_with_row_ids(&before_mid.deleted),
        ids_with_row_ids(&after_mid.deleted)
    );
    assert_eq!(ids(&after_mid.deleted), vec![3, 40]);
    // Windows in the middle of merged segments.
    let ch = store.changes(t, start + 10, start + 12).unwrap();
    assert_eq!(ids(&ch.inserted), vec![10, 11]);
    // Deleting after compaction finds rows in merged segments.
    let r = row_ids_of(&store, t, &[50]);
    let mut tx = store.begin();
    tx.delete(t, &r).unwrap();
    tx.commit_blocking().unwrap();
    let ch = store
        .changes(t, store.latest_seq() - 1, store.latest_seq())
        .unwrap();
    assert_eq!(ids_with_row_ids(&ch.deleted), vec![(50, r[0].0)]);
    // Release the hold: dead rows are reclaimed, live data unchanged.
    store.set_retention_hold("dt", None);
    store.vacuum().unwrap();
    let live: Vec<i64> = (0..64).filter(|i| ![3, 40, 50].contains(i)).collect();
    assert_eq!(scan_ids(&store, t), live);
    let _ = RowId(0);
}

#[test]
fn concurrent_compaction_and_deletes() {
    // Deletes committed while the background compaction runs must not be lost.
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.compaction_min_segments = 2;
    o.fsync = false;
    let store = freshet_storage::Store::open(o).unwrap();
    let t = create(&store);
    for i in 0..300 {
        insert(&store, t, &[i]);
    }
    let s = store.clone();
    let vac = std::thread::spawn(move || {
        for _ in 0..20 {
            s.vacuum().unwrap();
        }
    });
    for i in (0..300).step_by(3) {
        delete(&store, t, &[i]);
    }
    vac.join().unwrap();
    store.vacuum().unwrap();
    let expected: Vec<i64> = (0..300).filter(|i| i % 3 != 0).collect();
    assert_eq!(scan_ids(&store, t), expected);
}
