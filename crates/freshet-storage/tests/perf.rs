//! Quick local measurements (not assertions on timing). Run with
//! `cargo test -p freshet-storage --release --test perf -- --ignored --nocapture`.

mod common;

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use freshet_storage::{Store, StoreOptions};

#[test]
#[ignore]
fn concurrent_single_row_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions::new(dir.path())).unwrap();
    let t = common::create(&store);
    // Baseline: one committer (one fsync per commit).
    let n1 = 300;
    let t0 = Instant::now();
    for i in 0..n1 {
        common::insert(&store, t, &[i]);
    }
    let serial = n1 as f64 / t0.elapsed().as_secs_f64();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let per_task = 500i64;
    let m0 = store.metrics();
    let t0 = Instant::now();
    rt.block_on(async {
        let mut hs = Vec::new();
        for k in 0..16i64 {
            let store = store.clone();
            hs.push(tokio::spawn(async move {
                for i in 0..per_task {
                    let mut tx = store.begin();
                    tx.insert(t, common::batch(&[1_000_000 + k * per_task + i]))
                        .unwrap();
                    tx.commit().await.unwrap();
                }
            }));
        }
        for h in hs {
            h.await.unwrap();
        }
    });
    let el = t0.elapsed().as_secs_f64();
    let m1 = store.metrics();
    let commits = m1.commits - m0.commits;
    eprintln!(
        "single committer: {serial:.0} commits/s; 16 concurrent: {:.0} commits/s, {:.1} commits per fsync",
        commits as f64 / el,
        commits as f64 / (m1.wal_syncs - m0.wal_syncs) as f64
    );
}

#[test]
#[ignore]
fn bulk_insert_and_scan_10m() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions::new(dir.path())).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("x", DataType::Float64, true),
        Field::new("s", DataType::Utf8, true),
    ]));
    let mut tx = store.begin();
    let t = tx.create_table(schema.clone()).unwrap();
    tx.commit_blocking().unwrap();
    let rows = 10_000_000i64;
    let chunk = 8192i64;
    let batches: Vec<RecordBatch> = (0..rows)
        .step_by(chunk as usize)
        .map(|start| {
            let end = (start + chunk).min(rows);
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from_iter_values(start..end)),
                    Arc::new(Float64Array::from_iter_values(
                        (start..end).map(|v| v as f64 * 0.5),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        (start..end).map(|v| format!("name-{v}")),
                    )),
                ],
            )
            .unwrap()
        })
        .collect();
    let bytes: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
    let t0 = Instant::now();
    let mut tx = store.begin();
    for b in batches {
        tx.insert(t, b).unwrap();
    }
    tx.commit_blocking().unwrap();
    let el = t0.elapsed().as_secs_f64();
    eprintln!(
        "bulk insert: {rows} rows, {:.0} MB in {el:.2}s = {:.0} MB/s, {:.1} M rows/s (WAL {} MB)",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / el,
        rows as f64 / 1e6 / el,
        store.metrics().wal_bytes / 1_000_000
    );
    let t0 = Instant::now();
    let snap = store.snapshot();
    let out = snap.scan(t, None, false).unwrap();
    let n: usize = out.iter().map(|b| b.num_rows()).sum();
    eprintln!(
        "full scan: {n} rows in {:.1} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(n as i64, rows);
    let t0 = Instant::now();
    store.vacuum().unwrap();
    eprintln!(
        "compaction: {:.2}s, segments now {}",
        t0.elapsed().as_secs_f64(),
        store.table_stats(t, store.latest_seq()).unwrap().segments
    );
    let t0 = Instant::now();
    store.checkpoint().unwrap();
    eprintln!("checkpoint: {:.2}s", t0.elapsed().as_secs_f64());
    drop(out);
    drop(snap);
    store.close();
    drop(store);
    let t0 = Instant::now();
    let store = Store::open(StoreOptions::new(dir.path())).unwrap();
    eprintln!("reopen from checkpoint: {:.2}s", t0.elapsed().as_secs_f64());
    assert_eq!(
        store.table_stats(t, store.latest_seq()).unwrap().rows,
        rows as u64
    );
}
