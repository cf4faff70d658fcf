//! PRIMARY KEY enforcement under concurrency, through a crash, and on COPY.
//!
//! Eight connections insert overlapping keys at the same time (autocommit
//! INSERTs over the extended protocol, simple-protocol INSERTs and two-row
//! explicit transactions). Every failure must be a unique violation (23505);
//! afterwards the table holds exactly the acknowledged rows, one per key.
//! After `kill -9` and a restart it still does, and the rebuilt index still
//! refuses duplicates.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use common::{copy_in, sqlstate, Rng, ServerOptions, TestServer};
use tokio_postgres::Client;

const CLIENTS: i32 = 8;
const KEYS: i32 = 150;

/// Asserts a unique violation of `t_pkey`-style constraint `constraint` of
/// table `t` in `public`, naming both in the error's fields as PostgreSQL
/// does.
fn assert_unique_violation(err: &tokio_postgres::Error, constraint: &str) {
    assert_eq!(sqlstate(err), "23505", "{err:?}");
    let db = err.as_db_error().expect("a server error");
    assert_eq!(
        db.message(),
        format!("duplicate key value violates unique constraint \"{constraint}\"")
    );
    let table = constraint.split('_').next();
    assert_eq!(
        (db.schema(), db.table(), db.constraint()),
        (Some("public"), table, Some(constraint)),
        "schema, table and constraint fields of {err:?}"
    );
}

/// Inserts every key once, in a client-specific order. Returns the keys
/// whose insert this client got acknowledged.
async fn inserter(client: Client, client_no: i32, seed: u64) -> Vec<i32> {
    let insert = client
        .prepare("INSERT INTO k (id, client) VALUES ($1, $2)")
        .await
        .expect("prepare");
    let mut rng = Rng::new(seed);
    let mut keys: Vec<i32> = (0..KEYS).collect();
    for i in (1..keys.len()).rev() {
        let j = rng.range(0, i as u64 + 1) as usize;
        keys.swap(i, j);
    }
    let mut won = Vec::new();
    let mut i = 0;
    while i < keys.len() {
        match rng.range(0, 3) {
            0 => {
                let id = keys[i];
                i += 1;
                match client.execute(&insert, &[&id, &client_no]).await {
                    Ok(1) => won.push(id),
                    Ok(n) => panic!("one-row INSERT reported {n} rows"),
                    Err(e) => assert_unique_violation(&e, "k_pkey"),
                }
            }
            1 => {
                let id = keys[i];
                i += 1;
                let sql = format!("INSERT INTO k (id, client) VALUES ({id}, {client_no})");
                match client.simple_query(&sql).await {
                    Ok(_) => won.push(id),
                    Err(e) => assert_unique_violation(&e, "k_pkey"),
                }
            }
            _ => {
                let pair: Vec<i32> = keys[i..(i + 2).min(keys.len())].to_vec();
                i += pair.len();
                client.batch_execute("BEGIN").await.expect("BEGIN");
                let mut failed = false;
                for id in &pair {
                    if let Err(e) = client.execute(&insert, &[id, &client_no]).await {
                        assert_unique_violation(&e, "k_pkey");
                        failed = true;
                        break;
                    }
                }
                if failed {
                    client.batch_execute("ROLLBACK").await.expect("ROLLBACK");
                    continue;
                }
                // The check at COMMIT decides races with other sessions.
                match client.batch_execute("COMMIT").await {
                    Ok(()) => won.extend(pair),
                    Err(e) => assert_unique_violation(&e, "k_pkey"),
                }
            }
        }
    }
    won
}

async fn rows(client: &Client) -> Vec<(i32, i32)> {
    client
        .query("SELECT id, client FROM k ORDER BY id, client", &[])
        .await
        .expect("select")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_keep_one_row_per_key_through_a_crash() {
    let mut server = TestServer::start_with(ServerOptions::new().with_fsync());
    let admin = server.connect().await;
    admin
        .batch_execute("CREATE TABLE k (id int PRIMARY KEY, client int)")
        .await
        .expect("create");

    let seed = Rng::seed_from_env("FRESHET_CONSTRAINTS_SEED");
    let won: Arc<Mutex<BTreeMap<i32, Vec<i32>>>> = Arc::default();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = server.connect().await;
        let won = won.clone();
        tasks.push(tokio::spawn(async move {
            let keys = inserter(client, c, seed.wrapping_add(c as u64)).await;
            let mut w = won.lock().unwrap();
            for key in keys {
                w.entry(key).or_default().push(c);
            }
        }));
    }
    for t in tasks {
        t.await.expect("inserter task");
    }
    let won = won.lock().unwrap().clone();
    for (key, clients) in &won {
        assert_eq!(
            clients.len(),
            1,
            "key {key} acknowledged to several clients: {clients:?} (seed {seed})"
        );
    }
    let expected: Vec<(i32, i32)> = won.iter().map(|(k, c)| (*k, c[0])).collect();
    // Every key was tried by eight clients; nearly all must have a winner
    // (a key is lost only if each attempt shared a transaction with a
    // conflicting key).
    assert!(
        expected.len() as i32 > KEYS * 9 / 10,
        "only {} of {KEYS} keys were inserted (seed {seed})",
        expected.len()
    );
    assert_eq!(rows(&admin).await, expected, "seed {seed}");

    drop(admin);
    server.kill9();
    server.restart();
    let client = server.connect().await;
    assert_eq!(rows(&client).await, expected, "after restart (seed {seed})");

    // The rebuilt index still refuses duplicates, with PostgreSQL's detail.
    let (key, _) = expected[0];
    let err = client
        .execute("INSERT INTO k VALUES ($1, 99)", &[&key])
        .await
        .expect_err("duplicate after restart");
    assert_unique_violation(&err, "k_pkey");
    assert_eq!(
        err.as_db_error().and_then(|d| d.detail()),
        Some(format!("Key (id)=({key}) already exists.").as_str())
    );
    let err = client
        .batch_execute(&format!(
            "UPDATE k SET id = {key} WHERE id = {}",
            expected[1].0
        ))
        .await
        .expect_err("UPDATE onto an existing key after restart");
    assert_unique_violation(&err, "k_pkey");
    // Deleting a key frees it, also after restart.
    client
        .batch_execute(&format!(
            "DELETE FROM k WHERE id = {key}; INSERT INTO k VALUES ({key}, 99)"
        ))
        .await
        .expect("re-insert a deleted key");
    client
        .execute("INSERT INTO k VALUES ($1, 99)", &[&(KEYS + 1)])
        .await
        .expect("a new key");
    let count: i64 = client
        .query_one("SELECT count(*) FROM k", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, expected.len() as i64 + 1);
}

#[tokio::test]
async fn copy_refuses_duplicate_keys() {
    let server = TestServer::start();
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE c (id bigint PRIMARY KEY, name text UNIQUE); INSERT INTO c VALUES (1, 'one')",
        )
        .await
        .expect("setup");

    // A duplicate inside the COPY data, far apart (several 8192-row batches).
    let mut data = String::new();
    for id in 10..30_000 {
        data.push_str(&format!("{id}\tn{id}\n"));
    }
    let clean = data.clone();
    data.push_str("10\tagain\n");
    let err = copy_in(
        &client,
        "COPY c FROM STDIN",
        &data.as_bytes().chunks(64 * 1024).collect::<Vec<_>>(),
    )
    .await
    .expect_err("COPY with a duplicate key");
    assert_unique_violation(&err, "c_pkey");
    assert_eq!(
        err.as_db_error().and_then(|d| d.detail()),
        Some("Key (id)=(10) already exists.")
    );

    // A row duplicating a stored key, and one duplicating a UNIQUE column.
    let err = copy_in(&client, "COPY c FROM STDIN", &[b"2\ttwo\n1\tuno\n"])
        .await
        .expect_err("COPY duplicating a stored key");
    assert_unique_violation(&err, "c_pkey");
    let err = copy_in(&client, "COPY c (id, name) FROM STDIN", &[b"3\tone\n"])
        .await
        .expect_err("COPY duplicating a UNIQUE value");
    assert_unique_violation(&err, "c_name_key");
    assert_eq!(
        err.as_db_error().and_then(|d| d.detail()),
        Some("Key (name)=(one) already exists.")
    );

    // None of the failed COPYs left rows behind; a clean one goes through.
    let ids: Vec<i64> = client
        .query("SELECT id FROM c ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![1]);
    let n = copy_in(
        &client,
        "COPY c FROM STDIN",
        &clean.as_bytes().chunks(64 * 1024).collect::<Vec<_>>(),
    )
    .await
    .expect("COPY without duplicates");
    assert_eq!(n, 29_990);
    let distinct: BTreeSet<i64> = client
        .query("SELECT id FROM c", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(distinct.len(), 29_991);
}
