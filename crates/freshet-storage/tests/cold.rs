//! Segments evicted to their Parquet files: scans, change feeds, deletes,
//! compaction, added columns, unique keys and recovery give the same answers
//! as with everything in memory, and a scan keeps reading its segments'
//! files after compaction replaced them.

mod common;

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array};
use arrow::datatypes::{DataType, Field};
use common::*;
use freshet_storage::{Store, StoreOptions};

/// A store that keeps no checkpointed column data in memory.
fn open_cold(dir: &std::path::Path) -> Arc<Store> {
    Store::open(StoreOptions {
        resident_data_bytes: 0,
        ..opts(dir)
    })
    .unwrap()
}

/// Ids read through `scan_parts`, resident and cold parts together.
fn parts_ids(store: &Store, t: u64) -> (Vec<i64>, usize) {
    let parts = store.snapshot().scan_parts(t, None, false).unwrap();
    let mut batches = parts.resident.clone();
    for c in &parts.cold {
        batches.extend(c.read().unwrap());
    }
    (ids(&batches), parts.cold.len())
}

#[test]
fn evicted_segments_read_back_from_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_cold(dir.path());
    let t = create(&store);
    store.set_retention_hold("test", Some(0));
    let s1 = insert(&store, t, &[1, 2, 3]);
    let s2 = insert(&store, t, &[4, 5]);
    store.checkpoint().unwrap();
    let m = store.metrics();
    assert_eq!(m.resident_bytes, 0, "a zero budget keeps nothing");
    assert!(m.evicted_bytes > 0);

    assert_eq!(scan_ids(&store, t), vec![1, 2, 3, 4, 5]);
    let (got, cold) = parts_ids(&store, t);
    assert_eq!(got, vec![1, 2, 3, 4, 5]);
    assert_eq!(cold, 2, "both segments are read lazily");
    assert!(store.metrics().segment_file_reads > 0);
    assert_eq!(store.metrics().resident_bytes, 0, "reads are not cached");

    // Deleting evicted rows, and the change feed over evicted segments
    // (deleted rows carry their old contents).
    let s3 = delete(&store, t, &[2, 4]);
    let ch = store.changes(t, s2, s3).unwrap();
    assert_eq!(ids(&ch.deleted), vec![2, 4]);
    let ch = store.changes(t, s1, s2).unwrap();
    assert_eq!(ids(&ch.inserted), vec![4, 5]);
    assert_eq!(scan_ids(&store, t), vec![1, 3, 5]);
    assert_eq!(parts_ids(&store, t).0, vec![1, 3, 5]);

    // An added column reads as its default in segments written before it.
    let mut tx = store.begin();
    let default: ArrayRef = Arc::new(Int64Array::from(vec![7]));
    tx.add_column(t, Field::new("extra", DataType::Int64, true), default)
        .unwrap();
    tx.commit_blocking().unwrap();
    let batches = store.snapshot().scan(t, Some(&[2]), false).unwrap();
    assert_eq!(ids(&batches), vec![7, 7, 7], "the added column's default");
    drop(store);

    // Recovery reads no column data; the answers stay the same.
    let store = open_cold(dir.path());
    let reads = store.metrics().segment_file_reads;
    assert_eq!(reads, 0, "recovery leaves column data on disk");
    assert_eq!(scan_ids(&store, t), vec![1, 3, 5]);
    assert!(store.metrics().segment_file_reads > reads);
}

/// Each evicted segment knows its file's min/max statistics per column,
/// taken from the footer when the file is written and again at recovery;
/// deleted rows stay within them, and a column added later has none.
#[test]
fn evicted_segments_carry_their_files_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_cold(dir.path());
    let t = create(&store);
    insert(&store, t, &[5, 3, 9]);
    insert(&store, t, &[20, 11]);
    store.checkpoint().unwrap();
    delete(&store, t, &[9]);
    let check = |store: &Store| {
        let parts = store.snapshot().scan_parts(t, None, false).unwrap();
        let mut bounds: Vec<(i64, i64, String, String, u64, u64)> = parts
            .cold
            .iter()
            .map(|c| {
                let id = c.column_bounds(0).expect("id statistics");
                let name = c.column_bounds(1).expect("name statistics");
                let int = |a: &ArrayRef| a.as_any().downcast_ref::<Int64Array>().unwrap().value(0);
                let text = |a: &ArrayRef| {
                    a.as_any()
                        .downcast_ref::<arrow::array::StringArray>()
                        .unwrap()
                        .value(0)
                        .to_owned()
                };
                (
                    int(&id.mins),
                    int(&id.maxes),
                    text(&name.mins),
                    text(&name.maxes),
                    id.null_counts.value(0),
                    c.row_group_rows().unwrap().value(0),
                )
            })
            .collect();
        bounds.sort();
        assert_eq!(
            bounds,
            vec![
                (3, 9, "n3".into(), "n9".into(), 0, 3),
                (11, 20, "n11".into(), "n20".into(), 0, 2),
            ]
        );
        assert!(parts.cold.iter().all(|c| c.column_bounds(2).is_none()));
    };
    let mut tx = store.begin();
    tx.add_column(
        t,
        Field::new("extra", DataType::Int64, true),
        Arc::new(Int64Array::from(vec![Some(7)])) as ArrayRef,
    )
    .unwrap();
    tx.commit_blocking().unwrap();
    check(&store);
    store.close();
    drop(store);
    let store = open_cold(dir.path());
    check(&store);
}

#[test]
fn compaction_merges_evicted_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions {
        resident_data_bytes: 0,
        compaction_min_segments: 2,
        ..opts(dir.path())
    })
    .unwrap();
    let t = create(&store);
    insert(&store, t, &[1, 2]);
    insert(&store, t, &[3, 4]);
    store.checkpoint().unwrap();
    // A scan that starts now holds the evicted segments it will read.
    let parts = store.snapshot().scan_parts(t, None, false).unwrap();
    assert_eq!(parts.cold.len(), 2);
    delete(&store, t, &[3]);
    store.vacuum().unwrap();
    assert!(store.metrics().compactions > 0);
    // The next checkpoint drops the replaced segments from the manifest,
    // but not their files while the scan above still needs them.
    store.checkpoint().unwrap();
    let mut batches = Vec::new();
    for c in &parts.cold {
        batches.extend(c.read().unwrap());
    }
    assert_eq!(ids(&batches), vec![1, 2, 3, 4], "the scan's snapshot");
    drop(parts);
    assert_eq!(scan_ids(&store, t), vec![1, 2, 4]);
    drop(store);
    let store = open_cold(dir.path());
    assert_eq!(scan_ids(&store, t), vec![1, 2, 4]);
}

#[test]
fn unique_keys_are_rebuilt_from_evicted_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_cold(dir.path());
    let t = create_keyed(&store);
    insert(&store, t, &[1, 2, 3]);
    store.checkpoint().unwrap();
    drop(store);
    let store = open_cold(dir.path());
    let mut tx = store.begin();
    assert!(tx.insert(t, batch(&[2])).is_err(), "key 2 exists on disk");
    tx.insert(t, batch(&[4])).unwrap();
    tx.commit_blocking().unwrap();
    assert_eq!(scan_ids(&store, t), vec![1, 2, 3, 4]);
}

#[test]
fn a_budget_keeps_the_newest_segments_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = create(&store);
    for i in 0..4 {
        insert(&store, t, &[i]);
    }
    store.checkpoint().unwrap();
    let m = store.metrics();
    assert!(m.resident_bytes > 0, "no budget: everything stays");
    assert_eq!(m.evicted_bytes, 0);
    let (got, cold) = parts_ids(&store, t);
    assert_eq!((got, cold), (vec![0, 1, 2, 3], 0));
}

#[test]
fn row_bookkeeping_grows_with_commits_not_rows() {
    // Row ids and creation seqs are kept as runs and deletion stamps only
    // for deleted rows, so 200k rows in a few commits cost a few hundred
    // bytes of bookkeeping (16 bytes a row would be 3.2 MB), in memory and
    // after recovery, and the answers are those of the plain layout.
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.compaction_min_segments = 4;
    o.resident_data_bytes = 0;
    let store = Store::open(o.clone()).unwrap();
    let t = create(&store);
    let big: Vec<i64> = (0..200_000).collect();
    insert(&store, t, &big);
    let start = store.latest_seq();
    store.set_retention_hold("dt", Some(start));
    for i in 0..20 {
        insert(&store, t, &[200_000 + i]);
    }
    store.vacuum().unwrap();
    store.vacuum().unwrap();
    let s_del = delete(&store, t, &[5, 150_000, 200_007]);
    store.checkpoint().unwrap();
    let small = |store: &Store| {
        let bytes = store.memory().row_versions;
        assert!(bytes < 4096, "row bookkeeping is {bytes} bytes");
    };
    small(&store);
    let expect: Vec<i64> = (0..200_020)
        .filter(|i| ![5, 150_000, 200_007].contains(i))
        .collect();
    assert_eq!(scan_ids(&store, t), expect);
    let ch = store.changes(t, start, s_del).unwrap();
    assert_eq!(
        ids(&ch.inserted),
        (200_000..200_020)
            .filter(|i| *i != 200_007)
            .collect::<Vec<_>>()
    );
    assert_eq!(ids(&ch.deleted), vec![5, 150_000]);
    drop(store);

    let store = Store::open(o).unwrap();
    store.set_retention_hold("dt", Some(start));
    small(&store);
    assert_eq!(scan_ids(&store, t), expect);
    let ch = store.changes(t, start, s_del).unwrap();
    assert_eq!(ids(&ch.deleted), vec![5, 150_000]);
    // Deleting half of a segment's rows switches its stamps to one per
    // row; the answers stay the same.
    let half = |i: i64| i % 2 == 0 && i < 200_000 && i != 150_000;
    let rows: Vec<freshet_storage::RowId> =
        ids_with_row_ids(&store.snapshot().scan(t, None, true).unwrap())
            .into_iter()
            .filter(|(v, _)| half(*v))
            .map(|(_, r)| freshet_storage::RowId(r))
            .collect();
    let mut tx = store.begin();
    tx.delete(t, &rows).unwrap();
    tx.commit_blocking().unwrap();
    let left: Vec<i64> = expect.iter().copied().filter(|i| !half(*i)).collect();
    assert_eq!(scan_ids(&store, t), left);
    assert!(store.memory().row_versions > 200_000 * 4);
}

#[test]
fn table_disk_bytes_are_its_segment_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_cold(dir.path());
    let t = create(&store);
    let ids: Vec<i64> = (0..50_000).collect();
    insert(&store, t, &ids);
    let before = store.snapshot().table_stats(t).unwrap();
    assert!(before.disk_bytes > 0, "data in the WAL is on disk too");
    store.checkpoint().unwrap();
    let parquet: u64 = walk(dir.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(parquet > 0);
    assert_eq!(store.snapshot().table_stats(t).unwrap().disk_bytes, parquet);
    drop(store);
    let store = open_cold(dir.path());
    assert_eq!(store.snapshot().table_stats(t).unwrap().disk_bytes, parquet);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
