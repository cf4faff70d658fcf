//! Dynamic tables survive `kill -9` during refreshes under ingest: after each
//! restart every dynamic table equals its query over the source as it was at
//! the table's snapshot, with no duplicate rows and no duplicate predictions,
//! refreshes that were visible before the crash are still there, and
//! refreshing resumes (incrementally) from the recovered progress marker.
//!
//! # How "its query at its snapshot" is known without time travel
//!
//! One writer changes the source in transactions numbered 1, 2, 3, …; the
//! n-th inserts login `n` and, when `n % 3 == 0`, deletes login `n - 5`. Each
//! waits for the previous one's acknowledgement, so every snapshot of the
//! source is the state after some transaction `k`, `S(k)`, a function of `k`
//! alone, and `k` is the largest login id present. The pipeline's tables all
//! keep `login_id`, so each one's `k` is the largest id it holds. The test
//! rebuilds `S(k)` in a scratch table (row values are a function of the id)
//! and runs the table's query over it: the table must equal that exactly.
//!
//! The crash moment is random (seeded; replay with `FRESHET_DT_CRASH_SEED`),
//! `FRESHET_DT_CRASH_ROUNDS` sets the number of crashes (default 6).

mod common;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{poll_until, workspace_root, Rng, ServerOptions, TestServer};
use tokio_postgres::{Client, SimpleQueryMessage};

const LOCATIONS: [&str; 5] = ["US", "CN", "DE", "IN", "BR"];

fn user_id(n: i64) -> i64 {
    (n * 7919) % 100_000
}

fn location(n: i64) -> &'static str {
    LOCATIONS[(n % LOCATIONS.len() as i64) as usize]
}

/// Whether transaction `n` deletes a login, and which.
fn deleted_by(n: i64) -> Option<i64> {
    (n % 3 == 0 && n > 5).then_some(n - 5)
}

/// Login ids present after transaction `k`.
fn state_after(k: i64) -> Vec<i64> {
    let deleted: std::collections::HashSet<i64> = (1..=k).filter_map(deleted_by).collect();
    (1..=k).filter(|n| !deleted.contains(n)).collect()
}

/// The pipeline: its tables, with each one's query over a source relation
/// `{src}` (the real upstream, or a rebuilt state for the check).
struct Level {
    name: &'static str,
    columns: &'static str,
    create: &'static str,
    /// Its query composed down to the logins table, over `{logins}`.
    composed: &'static str,
    /// The SQL giving the largest login id it reflects.
    max_id: &'static str,
    /// Column that must be unique (no duplicate predictions / rows).
    key: Option<&'static str>,
}

const LEVELS: &[Level] = &[
    Level {
        name: "scored",
        columns: "login_id, user_id, location, label",
        create: "CREATE DYNAMIC TABLE scored TARGET_LAG = '1 second' REFRESH_MODE = INCREMENTAL AS \
                 WITH m AS MODEL login_risk \
                 SELECT login_id, user_id, location, m!predict(user_id, location):label AS label FROM logins",
        composed: "WITH m AS MODEL login_risk \
                   SELECT login_id, user_id, location, m!predict(user_id, location):label AS label FROM {logins}",
        max_id: "SELECT max(login_id) FROM scored",
        key: Some("login_id"),
    },
    Level {
        name: "flagged",
        columns: "login_id, label, loc",
        create: "CREATE DYNAMIC TABLE flagged TARGET_LAG = DOWNSTREAM REFRESH_MODE = INCREMENTAL AS \
                 SELECT login_id, label, lower(location) AS loc FROM scored",
        composed: "WITH m AS MODEL login_risk \
                   SELECT login_id, m!predict(user_id, location):label AS label, lower(location) AS loc FROM {logins}",
        max_id: "SELECT max(login_id) FROM flagged",
        key: Some("login_id"),
    },
    Level {
        name: "per_location",
        columns: "loc, n, risky, max_id",
        create: "CREATE DYNAMIC TABLE per_location TARGET_LAG = '1 second' AS \
                 SELECT loc, count(*) AS n, sum(label) AS risky, max(login_id) AS max_id FROM flagged GROUP BY loc",
        composed: "WITH m AS MODEL login_risk \
                   SELECT lower(location) AS loc, count(*) AS n, sum(m!predict(user_id, location):label) AS risky, \
                   max(login_id) AS max_id FROM {logins} GROUP BY lower(location)",
        max_id: "SELECT max(max_id) FROM per_location",
        key: Some("loc"),
    },
];

async fn rows(
    client: &Client,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, tokio_postgres::Error> {
    Ok(client
        .simple_query(sql)
        .await?
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect())
}

fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| format!("{} ({})", d.message(), d.code().code()))
        .unwrap_or_else(|| e.to_string())
}

async fn exec(client: &Client, sql: &str) {
    if let Err(e) = client.batch_execute(sql).await {
        panic!("`{sql}` failed: {}", message(&e));
    }
}

fn first_i64(found: &[Vec<Option<String>>]) -> Option<i64> {
    found.first()?.first()?.as_deref()?.parse().ok()
}

/// The writer: transaction n inserts login n (and may delete n - 5), waiting
/// for each acknowledgement. Stops at the first error (the crash).
async fn writer(
    config: tokio_postgres::Config,
    first: i64,
    acked: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
) {
    let Ok(client) = common::connect_config(&config).await else {
        return;
    };
    let mut n = first;
    while !stop.load(Ordering::SeqCst) {
        let mut sql = format!(
            "BEGIN; INSERT INTO logins VALUES ({n}, {}, '{}');",
            user_id(n),
            location(n)
        );
        if let Some(d) = deleted_by(n) {
            sql.push_str(&format!(" DELETE FROM logins WHERE login_id = {d};"));
        }
        sql.push_str(" COMMIT");
        if client.batch_execute(&sql).await.is_err() {
            return;
        }
        acked.store(n, Ordering::SeqCst);
        n += 1;
    }
}

/// Keeps manual refreshes of the pipeline running, so the crash often cuts
/// one off (the scheduler's own refreshes run too).
async fn refresher(config: tokio_postgres::Config, stop: Arc<AtomicBool>) {
    let Ok(client) = common::connect_config(&config).await else {
        return;
    };
    while !stop.load(Ordering::SeqCst) {
        for level in LEVELS {
            if client
                .batch_execute(&format!("ALTER DYNAMIC TABLE {} REFRESH", level.name))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// Checks every level against the source state its largest id says it
/// reflects; returns each level's `k`.
async fn check_levels(client: &Client, seed: u64, round: usize, source_k: i64) -> Vec<i64> {
    let mut ks = Vec::new();
    for level in LEVELS {
        // One transaction per level: the scheduler keeps refreshing, and the
        // table, its `k` and the rebuilt state must all be read together.
        exec(client, "BEGIN").await;
        let k = first_i64(&rows(client, level.max_id).await.expect("max id")).unwrap_or(0);
        assert!(
            k <= source_k,
            "seed {seed}, round {round}: {} reflects transaction {k}, beyond the source's {source_k}",
            level.name
        );
        // Rebuild S(k) and run the level's query over it.
        exec(client, "DELETE FROM replay").await;
        let ids = state_after(k);
        for chunk in ids.chunks(1000) {
            let values: Vec<String> = chunk
                .iter()
                .map(|n| format!("({n}, {}, '{}')", user_id(*n), location(*n)))
                .collect();
            exec(
                client,
                &format!("INSERT INTO replay VALUES {}", values.join(", ")),
            )
            .await;
        }
        let expected = level.composed.replace("{logins}", "replay");
        let name = level.name;
        let columns = level.columns;
        let checks = [
            format!("SELECT * FROM {name} EXCEPT ({expected})"),
            format!("({expected}) EXCEPT SELECT * FROM {name}"),
            format!(
                "SELECT {columns}, count(*) FROM {name} GROUP BY {columns} \
                 EXCEPT SELECT {columns}, count(*) FROM ({expected}) e GROUP BY {columns}"
            ),
            format!(
                "SELECT {columns}, count(*) FROM ({expected}) e GROUP BY {columns} \
                 EXCEPT SELECT {columns}, count(*) FROM {name} GROUP BY {columns}"
            ),
        ];
        for sql in &checks {
            let found = rows(client, sql)
                .await
                .unwrap_or_else(|e| panic!("seed {seed}, round {round}: `{sql}`: {}", message(&e)));
            assert!(
                found.is_empty(),
                "seed {seed} (replay with FRESHET_DT_CRASH_SEED={seed}), round {round}: {name} does not \
                 equal its query over the source after transaction {k}: `{sql}` returned {:?}",
                &found[..found.len().min(5)]
            );
        }
        if let Some(key) = level.key {
            let dups = rows(
                client,
                &format!("SELECT {key}, count(*) FROM {name} GROUP BY {key} HAVING count(*) > 1"),
            )
            .await
            .expect("duplicates");
            assert!(
                dups.is_empty(),
                "seed {seed}, round {round}: duplicate rows in {name}: {:?}",
                &dups[..dups.len().min(5)]
            );
        }
        // Nothing of the rebuilt state is kept.
        exec(client, "ROLLBACK").await;
        ks.push(k);
    }
    ks
}

/// The transaction each level reflects, all read in one snapshot: the
/// scheduler keeps refreshing, so levels read one after another (as
/// [`check_levels`] reads them) may see a downstream table refreshed after
/// its upstream was read.
async fn levels_in_one_snapshot(client: &Client) -> Vec<i64> {
    exec(client, "BEGIN").await;
    let mut ks = Vec::new();
    for level in LEVELS {
        ks.push(first_i64(&rows(client, level.max_id).await.expect("max id")).unwrap_or(0));
    }
    exec(client, "COMMIT").await;
    ks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_tables_survive_kill_9_during_refreshes() {
    let seed = Rng::seed_from_env("FRESHET_DT_CRASH_SEED");
    eprintln!("dynamic-table crash test seed: {seed} (replay with FRESHET_DT_CRASH_SEED={seed})");
    let rounds: usize = std::env::var("FRESHET_DT_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let mut rng = Rng::new(seed);
    let models = workspace_root().join("tests/fixtures/models");
    let mut server = TestServer::start_with(ServerOptions::new().with_fsync().model_dir(&models));
    {
        let client = server.connect().await;
        exec(
            &client,
            "CREATE MODEL login_risk FROM 'login_risk.onnx';
             CREATE TABLE logins (login_id bigint, user_id bigint, location text);
             CREATE TABLE replay (login_id bigint, user_id bigint, location text)",
        )
        .await;
        for level in LEVELS {
            exec(&client, level.create).await;
        }
    }

    let mut next = 1i64;
    let mut before_crash = vec![0i64; LEVELS.len()];
    for round in 0..rounds {
        let kill_after = next + rng.range(30, 400) as i64;
        let acked = Arc::new(AtomicI64::new(next - 1));
        let stop = Arc::new(AtomicBool::new(false));
        let writer_task = tokio::spawn(writer(server.config(), next, acked.clone(), stop.clone()));
        let refresher_task = tokio::spawn(refresher(server.config(), stop.clone()));
        {
            let acked = acked.clone();
            poll_until(
                Duration::from_secs(180),
                &format!("transaction {kill_after} in round {round}"),
                move || {
                    let acked = acked.clone();
                    async move { (acked.load(Ordering::SeqCst) >= kill_after).then_some(()) }
                },
            )
            .await;
        }
        // What a reader could see right before the crash must survive it.
        let observer = server.connect().await;
        for (i, level) in LEVELS.iter().enumerate() {
            before_crash[i] =
                first_i64(&rows(&observer, level.max_id).await.expect("max id")).unwrap_or(0);
        }
        server.kill9();
        stop.store(true, Ordering::SeqCst);
        for task in [writer_task, refresher_task] {
            tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("clients end once the server is gone")
                .expect("client task panicked");
        }
        server.restart();
        let client = server.connect().await;

        // The source is S(k) for the last committed transaction k.
        let source_k = first_i64(
            &rows(&client, "SELECT max(login_id) FROM logins")
                .await
                .expect("max"),
        )
        .unwrap_or(0);
        let last_acked = acked.load(Ordering::SeqCst);
        assert!(
            source_k == last_acked || source_k == last_acked + 1,
            "seed {seed}, round {round}: source at transaction {source_k}, last acknowledged {last_acked}"
        );
        let present: Vec<i64> = rows(&client, "SELECT login_id FROM logins ORDER BY login_id")
            .await
            .expect("logins")
            .iter()
            .filter_map(|r| r[0].as_deref()?.parse().ok())
            .collect();
        assert_eq!(
            present,
            state_after(source_k),
            "seed {seed}, round {round}: source state"
        );

        // Every dynamic table equals its query at its own snapshot.
        let ks = check_levels(&client, seed, round, source_k).await;
        for (i, level) in LEVELS.iter().enumerate() {
            assert!(
                ks[i] >= before_crash[i],
                "seed {seed}, round {round}: {} went back from transaction {} to {} across the crash",
                level.name,
                before_crash[i],
                ks[i]
            );
        }
        let together = levels_in_one_snapshot(&client).await;
        assert!(
            together.windows(2).all(|w| w[1] <= w[0]),
            "seed {seed}, round {round}: a downstream table is ahead of its upstream: {together:?}"
        );

        // Refreshing resumes from the recovered marker: incrementally, and
        // the tables then equal their queries over the current source.
        for level in LEVELS {
            exec(
                &client,
                &format!("ALTER DYNAMIC TABLE {} REFRESH", level.name),
            )
            .await;
        }
        let ks = check_levels(&client, seed, round, source_k).await;
        let reachable: Vec<i64> = LEVELS.iter().map(|_| source_k).collect();
        assert_eq!(
            ks, reachable,
            "seed {seed}, round {round}: refreshed tables are not current"
        );
        let actions = rows(
            &client,
            "SELECT refresh_action FROM freshet_refresh_history('scored') \
             WHERE refresh_trigger = 'MANUAL' AND state = 'SUCCEEDED' \
             ORDER BY refresh_start_time DESC LIMIT 1",
        )
        .await
        .expect("history");
        assert!(
            matches!(
                actions.first().and_then(|r| r[0].as_deref()),
                Some("INCREMENTAL" | "NO_DATA")
            ),
            "seed {seed}, round {round}: the first refresh after recovery was {actions:?}"
        );
        eprintln!(
            "round {round}: killed after transaction {last_acked}; tables were at {:?} before, \
             source at {source_k} after recovery",
            before_crash
        );
        next = source_k + 1;
    }
}
