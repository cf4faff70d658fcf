//! Durability under `kill -9`: what the server acknowledged is there after a
//! restart, exactly once; what it never acknowledged is either absent or (for
//! statements in flight at the crash) present exactly once; transactions are
//! all-or-nothing; a large COPY that finished survives, and one cut off by the
//! crash leaves nothing behind.
//!
//! The crash moment is random (seeded; the seed is printed and can be replayed
//! with `FRESHET_CRASH_SEED=<seed>`): the server is killed once a randomly
//! chosen number of inserts has been acknowledged in that round.
//! `FRESHET_CRASH_ROUNDS` overrides the number of rounds (default 10).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{poll_until, Rng, ServerOptions, TestServer};
use futures::SinkExt;
use tokio_postgres::Client;

const CLIENTS: i64 = 4;
/// Upper bound on inserts per client per round (a safety net; the kill comes first).
const MAX_PER_CLIENT: i64 = 100_000;

/// What the clients of one round did.
#[derive(Default)]
struct Ledger {
    /// Every id a client sent, acknowledged or not.
    attempted: BTreeSet<i64>,
    /// Ids whose statement (or transaction) was acknowledged.
    acknowledged: BTreeSet<i64>,
    /// Ids inserted together in one explicit transaction.
    groups: Vec<Vec<i64>>,
}

async fn try_connect(server_config: &tokio_postgres::Config) -> Option<Client> {
    common::connect_config(server_config).await.ok()
}

/// One client: inserts distinct ids until the connection breaks or `stop`.
/// Each step is, at random, an autocommit INSERT (extended protocol), an
/// autocommit INSERT (simple protocol), or an explicit transaction of 3 rows.
async fn writer(
    config: tokio_postgres::Config,
    round: i64,
    client_no: i64,
    seed: u64,
    ledger: Arc<Mutex<Ledger>>,
    acks: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let Some(client) = try_connect(&config).await else {
        return;
    };
    let Ok(insert) = client
        .prepare("INSERT INTO ids (id, client) VALUES ($1, $2)")
        .await
    else {
        return;
    };
    let mut rng = Rng::new(seed);
    let base = round * 1_000_000_000 + client_no * 10_000_000;
    let mut seq = 0i64;
    while !stop.load(Ordering::SeqCst) && seq < MAX_PER_CLIENT {
        match rng.range(0, 3) {
            0 => {
                let id = base + seq;
                seq += 1;
                ledger.lock().unwrap().attempted.insert(id);
                match client.execute(&insert, &[&id, &(client_no as i32)]).await {
                    Ok(1) => {
                        ledger.lock().unwrap().acknowledged.insert(id);
                        acks.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(n) => panic!("INSERT of one row reported {n} rows"),
                    Err(_) => return,
                }
            }
            1 => {
                let id = base + seq;
                seq += 1;
                ledger.lock().unwrap().attempted.insert(id);
                let sql = format!("INSERT INTO ids (id, client) VALUES ({id}, {client_no})");
                match client.simple_query(&sql).await {
                    Ok(_) => {
                        ledger.lock().unwrap().acknowledged.insert(id);
                        acks.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => return,
                }
            }
            _ => {
                let ids: Vec<i64> = (0..3).map(|k| base + seq + k).collect();
                seq += 3;
                {
                    let mut l = ledger.lock().unwrap();
                    l.attempted.extend(ids.iter().copied());
                    l.groups.push(ids.clone());
                }
                let values: Vec<String> = ids
                    .iter()
                    .map(|id| format!("({id}, {client_no})"))
                    .collect();
                let sql = format!(
                    "BEGIN; INSERT INTO ids (id, client) VALUES {}; INSERT INTO ids (id, client) VALUES {}; COMMIT",
                    values[..2].join(", "),
                    values[2]
                );
                match client.batch_execute(&sql).await {
                    Ok(()) => {
                        ledger
                            .lock()
                            .unwrap()
                            .acknowledged
                            .extend(ids.iter().copied());
                        acks.fetch_add(3, Ordering::SeqCst);
                    }
                    Err(_) => return,
                }
            }
        }
    }
}

async fn all_ids(server: &TestServer) -> Vec<i64> {
    let client = server.connect().await;
    client
        .query("SELECT id FROM ids", &[])
        .await
        .unwrap_or_else(|e| panic!("read ids after restart: {e:?}\n{}", server.log()))
        .iter()
        .map(|r| r.get::<_, i64>(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let seed = Rng::seed_from_env("FRESHET_CRASH_SEED");
    eprintln!("crash test seed: {seed} (replay with FRESHET_CRASH_SEED={seed})");
    let rounds: i64 = std::env::var("FRESHET_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut rng = Rng::new(seed);

    let mut server = TestServer::start_with(ServerOptions::new().with_fsync());
    server
        .connect()
        .await
        .batch_execute("CREATE TABLE ids (id bigint NOT NULL, client int NOT NULL)")
        .await
        .expect("create table");

    let mut total = Ledger::default();
    for round in 0..rounds {
        let kill_after = rng.range(1, 400);
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let acks = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|c| {
                tokio::spawn(writer(
                    server.config(),
                    round,
                    c,
                    rng.next_u64(),
                    ledger.clone(),
                    acks.clone(),
                    stop.clone(),
                ))
            })
            .collect();

        {
            let acks = acks.clone();
            let tasks_ref = &tasks;
            poll_until(
                Duration::from_secs(180),
                &format!("{kill_after} acknowledged inserts in round {round}"),
                move || {
                    let acks = acks.clone();
                    async move {
                        if acks.load(Ordering::SeqCst) >= kill_after {
                            Some(())
                        } else if tasks_ref.iter().all(|t| t.is_finished()) {
                            panic!(
                                "all writers stopped before the crash in round {round} \
                                 (after {} acks)",
                                acks.load(Ordering::SeqCst)
                            )
                        } else {
                            None
                        }
                    }
                },
            )
            .await;
        }
        server.kill9();
        stop.store(true, Ordering::SeqCst);
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .expect("writers end once the server is gone")
                .expect("writer task panicked");
        }

        server.restart();
        let ledger = std::mem::take(&mut *ledger.lock().unwrap());
        total.attempted.extend(ledger.attempted.iter().copied());
        total
            .acknowledged
            .extend(ledger.acknowledged.iter().copied());
        total.groups.extend(ledger.groups.iter().cloned());

        let present = all_ids(&server).await;
        let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
        for id in &present {
            *seen.entry(*id).or_default() += 1;
        }
        let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            duplicates.is_empty(),
            "seed {seed}, round {round}: ids present more than once: {:?}",
            &duplicates[..duplicates.len().min(20)]
        );
        let lost: Vec<_> = total
            .acknowledged
            .iter()
            .filter(|id| !seen.contains_key(id))
            .collect();
        assert!(
            lost.is_empty(),
            "seed {seed}, round {round}: {} acknowledged ids lost after kill -9, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(20)]
        );
        let invented: Vec<_> = seen
            .keys()
            .filter(|id| !total.attempted.contains(id))
            .collect();
        assert!(
            invented.is_empty(),
            "seed {seed}, round {round}: ids that no client sent: {:?}",
            &invented[..invented.len().min(20)]
        );
        for group in &total.groups {
            let n = group.iter().filter(|id| seen.contains_key(id)).count();
            assert!(
                n == 0 || n == group.len(),
                "seed {seed}, round {round}: transaction {group:?} is partially present ({n} of {})",
                group.len()
            );
        }
        eprintln!(
            "round {round}: killed after {} acks (target {kill_after}); {} rows present, {} acknowledged in total",
            ledger.acknowledged.len(),
            present.len(),
            total.acknowledged.len()
        );
    }

    // The recovered server still takes writes.
    let client = server.connect().await;
    client
        .execute("INSERT INTO ids VALUES (-1, -1)", &[])
        .await
        .expect("write after the last recovery");
    let n: i64 = client
        .query_one("SELECT count(*) FROM ids WHERE id = -1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

fn copy_rows(from: i64, to: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(((to - from) * 48) as usize);
    for id in from..to {
        let line = format!(
            "{id}\t{}\tloc-{}\t2024-01-{:02} {:02}:{:02}:00\n",
            id % 1000,
            id % 37,
            1 + id % 28,
            id % 24,
            id % 60
        );
        out.extend_from_slice(line.as_bytes());
    }
    out
}

async fn send_copy(client: &Client, data: &[u8], finish: bool) -> Option<u64> {
    let mut sink = Box::pin(
        client
            .copy_in::<_, Bytes>("COPY logins FROM STDIN")
            .await
            .expect("start COPY"),
    );
    for chunk in data.chunks(64 * 1024) {
        sink.send(Bytes::copy_from_slice(chunk))
            .await
            .expect("send COPY data");
    }
    if finish {
        Some(sink.as_mut().finish().await.expect("finish COPY"))
    } else {
        // Flush what was sent so the server is really mid-COPY, then leave
        // the COPY open (dropping the sink would send CopyFail): the crash
        // will cut it off.
        sink.flush().await.expect("flush COPY data");
        std::mem::forget(sink);
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_copy_then_kill_9() {
    const ROWS: i64 = 300_000;
    let mut server = TestServer::start_with(ServerOptions::new().with_fsync());
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE logins (id bigint NOT NULL, user_id bigint, location text, event_time timestamp);
             CREATE TABLE marker (x int); INSERT INTO marker VALUES (42)",
        )
        .await
        .expect("setup");

    let n = send_copy(&client, &copy_rows(0, ROWS), true).await;
    assert_eq!(n, Some(ROWS as u64), "COPY reported the wrong row count");

    // A second COPY is in progress (half its data sent) when the server dies.
    let other = server.connect().await;
    send_copy(&other, &copy_rows(ROWS, ROWS + 100_000), false).await;

    server.kill9();
    drop(client);
    drop(other);
    server.restart();

    let client = server.connect().await;
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT id), sum(id), min(id), max(id) FROM logins",
            &[],
        )
        .await
        .expect("count after restart");
    let (count, distinct, sum, min, max): (i64, i64, rust_decimal::Decimal, i64, i64) = (
        row.get(0),
        row.get(1),
        sum_as_decimal(&row),
        row.get(3),
        row.get(4),
    );
    assert_eq!(
        count, ROWS,
        "the finished COPY must survive and the cut-off one leave nothing"
    );
    assert_eq!(distinct, ROWS);
    assert_eq!(sum, rust_decimal::Decimal::from(ROWS * (ROWS - 1) / 2));
    assert_eq!((min, max), (0, ROWS - 1));
    let sample = client
        .query_one(
            "SELECT user_id, location, event_time FROM logins WHERE id = 12345",
            &[],
        )
        .await
        .expect("sample row");
    assert_eq!(sample.get::<_, i64>(0), 345);
    assert_eq!(sample.get::<_, &str>(1), format!("loc-{}", 12345 % 37));
    assert_eq!(
        sample.get::<_, chrono::NaiveDateTime>(2),
        chrono::NaiveDate::from_ymd_opt(2024, 1, 26)
            .unwrap()
            .and_hms_opt(9, 45, 0)
            .unwrap()
    );
    let marker: i32 = client
        .query_one("SELECT x FROM marker", &[])
        .await
        .expect("marker")
        .get(0);
    assert_eq!(marker, 42);
}

/// `sum(bigint)` is numeric in PostgreSQL and may be bigint elsewhere; read either.
fn sum_as_decimal(row: &tokio_postgres::Row) -> rust_decimal::Decimal {
    match row.try_get::<_, rust_decimal::Decimal>(2) {
        Ok(d) => d,
        Err(_) => rust_decimal::Decimal::from(row.get::<_, i64>(2)),
    }
}
