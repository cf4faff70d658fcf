//! Restart recovery: WAL replay, torn tails, checkpoints, compaction.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::Int64Array;
use arrow::datatypes::{DataType, Field};
use common::*;
use freshet_storage::{Store, TableId};

/// The newest non-empty WAL file.
fn last_wal(dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::metadata(p).unwrap().len() > 0)
        .collect();
    files.sort();
    files.pop().expect("a WAL file")
}

fn state(store: &Store, t: TableId) -> Vec<(i64, u64)> {
    ids_with_row_ids(&store.snapshot().scan(t, None, true).unwrap())
}

#[test]
fn reopen_restores_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (t, gone, rows, seq, schema) = {
        let store = open(dir.path());
        let t = create(&store);
        let gone = create(&store);
        // Keep history: without a hold, background maintenance may reclaim it.
        store.set_retention_hold("test", Some(0));
        insert(&store, t, &[1, 2, 3]);
        insert(&store, gone, &[7]);
        delete(&store, t, &[2]);
        let mut tx = store.begin();
        tx.add_column(
            t,
            Field::new("x", DataType::Int64, true),
            Arc::new(Int64Array::from(vec![Some(5)])),
        )
        .unwrap();
        tx.drop_table(gone).unwrap();
        tx.put_meta("k", b"v".to_vec());
        tx.commit_blocking().unwrap();
        (
            t,
            gone,
            state(&store, t),
            store.latest_seq(),
            store.snapshot().table_schema(t).unwrap(),
        )
    };
    let store = open(dir.path());
    assert_eq!(store.latest_seq(), seq);
    assert_eq!(state(&store, t), rows);
    assert_eq!(store.snapshot().table_schema(t).unwrap(), schema);
    assert_eq!(store.snapshot().get_meta("k"), Some(b"v".to_vec()));
    assert_eq!(store.snapshot().tables(), vec![t]);
    assert!(store.snapshot().scan(gone, None, false).is_err());
    // History survives restart too (no reclamation during open).
    let ch = store.changes(t, 0, seq).unwrap();
    assert_eq!(ids(&ch.inserted), vec![1, 3]);
    // New row ids do not collide with recovered ones.
    let t3 = create(&store);
    assert!(t3 > gone, "table ids are not reused");
    insert(&store, t3, &[4]);
    let new_id = state(&store, t3)[0].1;
    assert!(rows.iter().all(|r| r.1 < new_id), "row ids are not reused");
}

fn torn_tail(damage: impl Fn(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let (t, seq2) = {
        let store = open(dir.path());
        let t = create(&store);
        insert(&store, t, &[1]);
        let seq2 = insert(&store, t, &[2]);
        insert(&store, t, &(100..200).collect::<Vec<_>>());
        (t, seq2)
    };
    damage(&last_wal(dir.path()));
    {
        let store = open(dir.path());
        assert_eq!(store.latest_seq(), seq2, "torn last record dropped");
        assert_eq!(scan_ids(&store, t), vec![1, 2]);
        insert(&store, t, &[3]);
    }
    // The repair is durable and later commits survive another restart.
    let store = open(dir.path());
    assert_eq!(scan_ids(&store, t), vec![1, 2, 3]);
}

/// Where the records of a WAL file end: the current file is zero-filled
/// beyond them (preallocation), so damage is placed relative to this.
fn records_end(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

#[test]
fn torn_tail_truncated_mid_record() {
    // the crash came before the preallocated zeros were durable
    torn_tail(|p| {
        let end = records_end(&std::fs::read(p).unwrap());
        let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        f.set_len(end as u64 - 37).unwrap();
    });
}

#[test]
fn torn_tail_unwritten_pages() {
    // the last record's final bytes never reached the disk: zeros, as in
    // the preallocated space around them
    torn_tail(|p| {
        let mut bytes = std::fs::read(p).unwrap();
        let end = records_end(&bytes);
        bytes[end - 37..end].fill(0);
        std::fs::write(p, bytes).unwrap();
    });
}

#[test]
fn torn_tail_flipped_bytes() {
    torn_tail(|p| {
        let mut bytes = std::fs::read(p).unwrap();
        let n = records_end(&bytes);
        for b in &mut bytes[n - 20..n - 10] {
            *b ^= 0x5a;
        }
        std::fs::write(p, bytes).unwrap();
    });
}

#[test]
fn torn_tail_garbage_length() {
    torn_tail(|p| {
        // A frame header claiming a huge record over the last real record's
        // final byte.
        let mut bytes = std::fs::read(p).unwrap();
        let n = records_end(&bytes) - 1;
        bytes.truncate(n);
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        std::fs::write(p, bytes).unwrap();
    });
}

#[test]
fn checkpoint_then_wal_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (t, rows, before_ckpt, seq) = {
        let store = open(dir.path());
        let t = create(&store);
        store.set_retention_hold("test", Some(0));
        insert(&store, t, &[1, 2, 3]);
        let before_ckpt = insert(&store, t, &[4, 5]);
        let mut tx = store.begin();
        tx.put_meta("m", b"1".to_vec());
        tx.commit_blocking().unwrap();
        store.checkpoint().unwrap();
        assert_eq!(store.metrics().checkpoints, 1);
        // WAL files covered by the checkpoint are gone.
        let wal_bytes: u64 = std::fs::read_dir(dir.path().join("wal"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert_eq!(wal_bytes, 0);
        // After the checkpoint: deletes of checkpointed rows, more inserts.
        delete(&store, t, &[1, 4]);
        insert(&store, t, &[6]);
        (t, state(&store, t), before_ckpt, store.latest_seq())
    };
    let store = open(dir.path());
    assert_eq!(store.latest_seq(), seq);
    assert_eq!(state(&store, t), rows);
    assert_eq!(store.snapshot().get_meta("m"), Some(b"1".to_vec()));
    let ch = store.changes(t, before_ckpt, seq).unwrap();
    assert_eq!(ids(&ch.inserted), vec![6]);
    assert_eq!(ids(&ch.deleted), vec![1, 4]);
    // Second checkpoint reuses segment files, includes deletions.
    store.checkpoint().unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(state(&store, t), rows);
    let ch = store.changes(t, before_ckpt, seq).unwrap();
    assert_eq!(ids(&ch.deleted), vec![1, 4]);
}

#[test]
fn compaction_checkpoint_restart_keeps_row_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.compaction_min_segments = 4;
    let (t, rows, mid, seq, mid_changes) = {
        let store = Store::open(o.clone()).unwrap();
        let t = create(&store);
        store.set_retention_hold("dt", Some(0));
        for i in 0..40 {
            insert(&store, t, &[i]);
        }
        let mid = store.latest_seq();
        delete(&store, t, &[5, 35]);
        for i in 40..45 {
            insert(&store, t, &[i]);
        }
        store.vacuum().unwrap();
        store.vacuum().unwrap();
        assert!(store.table_stats(t, store.latest_seq()).unwrap().segments < 20);
        store.checkpoint().unwrap();
        delete(&store, t, &[6]);
        let seq = store.latest_seq();
        let mc = store.changes(t, mid, seq).unwrap();
        (
            t,
            state(&store, t),
            mid,
            seq,
            (
                ids_with_row_ids(&mc.inserted),
                ids_with_row_ids(&mc.deleted),
            ),
        )
    };
    let store = Store::open(o).unwrap();
    assert_eq!(state(&store, t), rows);
    let mc = store.changes(t, mid, seq).unwrap();
    assert_eq!(
        (
            ids_with_row_ids(&mc.inserted),
            ids_with_row_ids(&mc.deleted)
        ),
        mid_changes
    );
    assert_eq!(ids(&mc.deleted), vec![5, 6, 35]);
}

#[test]
fn automatic_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.checkpoint_wal_bytes = 16 << 10;
    let store = Store::open(o.clone()).unwrap();
    let t = create(&store);
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.metrics().checkpoints == 0 {
        assert!(
            Instant::now() < deadline,
            "no automatic checkpoint happened"
        );
        insert(&store, t, &(n..n + 100).collect::<Vec<_>>());
        n += 100;
    }
    let rows = state(&store, t);
    drop(store);
    let store = Store::open(o).unwrap();
    assert_eq!(state(&store, t), rows);
    assert!(
        std::fs::read_dir(dir.path().join("segments"))
            .unwrap()
            .count()
            > 0
    );
}
