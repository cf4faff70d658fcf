//! Crash test: a child process commits from several tasks and prints every
//! acknowledged commit; the parent SIGKILLs it at random points, reopens the
//! store and checks that every acknowledged transaction is present exactly
//! once and that no partial transaction ever appears.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use freshet_storage::{Store, StoreOptions};

const CHILD_ENV: &str = "FRESHET_STORAGE_CRASH_CHILD_DIR";
const GEN_ENV: &str = "FRESHET_STORAGE_CRASH_GEN";

fn options(dir: &str) -> StoreOptions {
    let mut o = StoreOptions::new(dir);
    // Checkpoint and compact often so kills also land inside them.
    o.checkpoint_wal_bytes = 256 << 10;
    o.compaction_min_segments = 4;
    o
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("v", DataType::Int64, false),
        Field::new("check", DataType::Int64, false),
        Field::new("txn", DataType::Int64, false),
        Field::new("n", DataType::Int64, false),
    ]))
}

/// The child side; a no-op unless started by `crash_recovery_under_sigkill`.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let generation: i64 = std::env::var(GEN_ENV).unwrap().parse().unwrap();
    let store = Store::open(options(&dir)).unwrap();
    let table = match store.snapshot().get_meta("crash/table") {
        Some(v) => u64::from_le_bytes(v.try_into().unwrap()),
        None => {
            let mut tx = store.begin();
            let t = tx.create_table(schema()).unwrap();
            tx.put_meta("crash/table", t.to_le_bytes().to_vec());
            tx.commit_blocking().unwrap();
            t
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for k in 0..4i64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..100_000i64 {
                    let txn = generation * 1_000_000_000 + k * 10_000_000 + i;
                    let n = if i % 5 == 0 { 500 } else { 1 };
                    let v: Vec<i64> = (0..n).map(|j| txn * 1000 + j).collect();
                    let batch = RecordBatch::try_new(
                        schema(),
                        vec![
                            Arc::new(Int64Array::from(v.clone())),
                            Arc::new(Int64Array::from(
                                v.iter().map(|x| x * 7 + 3).collect::<Vec<_>>(),
                            )),
                            Arc::new(Int64Array::from(vec![txn; n as usize])),
                            Arc::new(Int64Array::from(vec![n; n as usize])),
                        ],
                    )
                    .unwrap();
                    let mut tx = store.begin();
                    tx.insert(table, batch).unwrap();
                    tx.commit().await.unwrap();
                    let mut out = std::io::stdout().lock();
                    if writeln!(out, "ACK {txn} {n}")
                        .and_then(|_| out.flush())
                        .is_err()
                    {
                        return; // parent went away
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

/// Opens the store and checks acknowledged and atomic commits.
fn verify(dir: &str, acked: &HashMap<i64, i64>) -> usize {
    let store = Store::open(options(dir)).unwrap();
    let Some(t) = store.snapshot().get_meta("crash/table") else {
        assert!(acked.is_empty());
        return 0;
    };
    let t = u64::from_le_bytes(t.try_into().unwrap());
    let batches = store.snapshot().scan(t, None, true).unwrap();
    let mut per_txn: HashMap<i64, (i64, Vec<i64>)> = HashMap::new();
    let mut seen_row_ids = std::collections::HashSet::new();
    let col = |b: &RecordBatch, i: usize| {
        b.column(i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .clone()
    };
    for b in &batches {
        let (v, check, txn, n) = (col(b, 0), col(b, 1), col(b, 2), col(b, 3));
        let rid = b
            .column(4)
            .as_any()
            .downcast_ref::<arrow::array::UInt64Array>()
            .unwrap();
        for i in 0..b.num_rows() {
            assert_eq!(check.value(i), v.value(i) * 7 + 3, "torn row content");
            assert!(seen_row_ids.insert(rid.value(i)), "duplicate row id");
            let e = per_txn
                .entry(txn.value(i))
                .or_insert((n.value(i), Vec::new()));
            e.1.push(v.value(i));
        }
    }
    for (txn, (n, vs)) in &per_txn {
        let mut vs = vs.clone();
        vs.sort_unstable();
        let expect: Vec<i64> = (0..*n).map(|j| txn * 1000 + j).collect();
        assert_eq!(vs, expect, "transaction {txn} is partial or duplicated");
    }
    for (txn, n) in acked {
        let got = per_txn.get(txn).map(|e| e.0);
        assert_eq!(got, Some(*n), "acknowledged transaction {txn} lost");
    }
    per_txn.len()
}

#[test]
fn crash_recovery_under_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let dir_s = dir.path().to_str().unwrap().to_string();
    let exe = std::env::current_exe().unwrap();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut acked: HashMap<i64, i64> = HashMap::new();
    let mut total_present = 0;
    for generation in 1..=8 {
        let stderr_path = dir.path().join(format!("child-{generation}.stderr"));
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir_s)
            .env(GEN_ENV, generation.to_string())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let target = 10 + (rand() % 400) as usize;
        let mut count = 0;
        let record = |line: &str, acked: &mut HashMap<i64, i64>| -> bool {
            let Some(rest) = line.strip_prefix("ACK ") else {
                return false;
            };
            let mut it = rest.split(' ');
            let txn: i64 = it.next().unwrap().parse().unwrap();
            let n: i64 = it.next().unwrap().parse().unwrap();
            assert!(acked.insert(txn, n).is_none());
            true
        };
        while count < target {
            match lines.next() {
                Some(Ok(l)) => {
                    if record(&l, &mut acked) {
                        count += 1;
                    }
                }
                _ => {
                    let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                    panic!("child exited early after {count} acks: {err}");
                }
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Acks printed before the kill are still in the pipe.
        for l in lines.map_while(Result::ok) {
            record(&l, &mut acked);
        }
        total_present = verify(&dir_s, &acked);
    }
    assert!(total_present >= acked.len());
    eprintln!(
        "crash test: {} acknowledged transactions, {} present after 8 SIGKILLs",
        acked.len(),
        total_present
    );
}
