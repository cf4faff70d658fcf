//! "Each new row is scored once": the refresh history's `model_rows_scored`
//! is counted by the model call as it scores rows (not copied from the rows
//! inserted), so these tests check scoring itself. After inserts, deletes and
//! updates — of old rows and of rows that arrived since the last refresh —
//! an incremental refresh must score exactly the rows whose result is new:
//! no row twice, no deleted row, no row that was inserted and deleted again
//! in between. A FULL refresh scores every row.

mod common;

use common::{exec_ok as exec, text_rows as rows, workspace_root, ServerOptions, TestServer};
use tokio_postgres::Client;

async fn count(client: &Client, sql: &str) -> u64 {
    rows(client, sql).await[0][0].parse().expect("a count")
}

/// One successful refresh: (action, rows scored, rows inserted, rows deleted).
type Refresh = (String, u64, u64, u64);

async fn history(client: &Client, table: &str) -> Vec<Refresh> {
    rows(
        client,
        &format!(
            "SELECT refresh_action, model_rows_scored, inserted_rows, deleted_rows \
             FROM freshet_refresh_history('{table}') WHERE state = 'SUCCEEDED' \
             ORDER BY refresh_start_time"
        ),
    )
    .await
    .into_iter()
    .map(|r| {
        let n = |i: usize| r[i].parse::<u64>().expect("a count");
        (r[0].clone(), n(1), n(2), n(3))
    })
    .collect()
}

async fn last_refresh(client: &Client, table: &str) -> Refresh {
    history(client, table)
        .await
        .pop()
        .expect("a successful refresh")
}

fn refresh(action: &str, scored: u64, inserted: u64, deleted: u64) -> Refresh {
    (action.to_string(), scored, inserted, deleted)
}

const LOCATIONS: &[&str] = &["US", "CN", "DE", "BR", "FR", "IN"];

fn logins(ids: std::ops::Range<u64>) -> String {
    ids.map(|i| {
        format!(
            "({i}, {}, '{}')",
            i * 7 % 50,
            LOCATIONS[(i as usize) % LOCATIONS.len()]
        )
    })
    .collect::<Vec<_>>()
    .join(", ")
}

/// The dynamic tables must equal their queries (rows and multiplicity).
async fn assert_equal(client: &Client, table: &str, query: &str) {
    exec(client, "BEGIN").await;
    let stored = rows(client, &format!("SELECT * FROM {table} ORDER BY 1")).await;
    let computed = rows(client, &format!("{query} ORDER BY 1")).await;
    exec(client, "COMMIT").await;
    assert_eq!(stored, computed, "{table} differs from its query");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_changed_row_is_scored_once_and_deleted_rows_never() {
    let models = workspace_root().join("tests/fixtures/models");
    let server = TestServer::start_with(ServerOptions::new().model_dir(&models));
    let client = server.connect().await;
    exec(
        &client,
        "CREATE MODEL risk FROM 'login_risk.onnx';
         CREATE TABLE logins (id bigint, user_id bigint, location text)",
    )
    .await;
    exec(
        &client,
        &format!("INSERT INTO logins VALUES {}", logins(0..40)),
    )
    .await;

    // Every row's prediction.
    let scored_query = "WITH m AS MODEL risk \
        SELECT id, m!predict(user_id, location):label AS label FROM logins";
    // Only some rows survive the filter, so rows scored and rows inserted
    // differ: scoring cannot be read off the insert count.
    let flagged_query = "WITH m AS MODEL risk \
        SELECT id, location FROM logins WHERE m!predict(user_id, location):label = 1";
    let plain_flagged =
        "SELECT id, location FROM logins WHERE risk!predict(user_id, location):label = 1";
    for (name, mode, query) in [
        ("scored", "INCREMENTAL", scored_query),
        ("flagged", "INCREMENTAL", flagged_query),
        ("scored_full", "FULL", scored_query),
    ] {
        exec(
            &client,
            &format!(
                "CREATE DYNAMIC TABLE {name} TARGET_LAG = '1 day' REFRESH_MODE = {mode} \
                 INITIALIZE = ON_CREATE AS {query}"
            ),
        )
        .await;
    }
    let flagged = count(
        &client,
        &format!("SELECT count(*) FROM ({plain_flagged}) f"),
    )
    .await;
    assert!(
        flagged > 0 && flagged < 40,
        "the fixture model should flag some of the logins but not all: {flagged}"
    );
    assert_eq!(
        history(&client, "scored").await,
        vec![refresh("FULL", 40, 40, 0)]
    );
    assert_eq!(
        history(&client, "flagged").await,
        vec![refresh("FULL", 40, flagged, 0)]
    );
    assert_eq!(
        history(&client, "scored_full").await,
        vec![refresh("FULL", 40, 40, 0)]
    );

    // 15 new rows, of which 2 are deleted again and 3 updated before any
    // refresh; 5 old rows deleted and 7 old rows updated. The rows needing
    // a score: the 13 new rows that are left (once each, with their final
    // values) and the 7 updated old rows.
    exec(
        &client,
        &format!(
            "INSERT INTO logins VALUES {};
             DELETE FROM logins WHERE id < 5;
             UPDATE logins SET location = 'CN', user_id = user_id + 1 WHERE id >= 5 AND id < 12;
             DELETE FROM logins WHERE id IN (100, 101);
             UPDATE logins SET location = 'DE' WHERE id >= 102 AND id < 105;
             BEGIN; INSERT INTO logins VALUES (200, 1, 'US'); DELETE FROM logins WHERE id = 200; COMMIT",
            logins(100..115)
        ),
    )
    .await;
    for name in ["scored", "flagged", "scored_full"] {
        exec(&client, &format!("ALTER DYNAMIC TABLE {name} REFRESH")).await;
    }
    assert_eq!(
        last_refresh(&client, "scored").await,
        refresh("INCREMENTAL", 20, 20, 12)
    );
    let (action, scored, _, _) = last_refresh(&client, "flagged").await;
    assert_eq!((action.as_str(), scored), ("INCREMENTAL", 20));
    let now_rows = count(&client, "SELECT count(*) FROM logins").await;
    assert_eq!(now_rows, 48);
    let (action, scored, inserted, _) = last_refresh(&client, "scored_full").await;
    assert_eq!(
        (action.as_str(), scored, inserted),
        ("FULL", now_rows, now_rows),
        "a FULL refresh scores every row"
    );

    // Deletes only: nothing to score. Nothing changed: nothing scored.
    exec(&client, "DELETE FROM logins WHERE id >= 12 AND id < 15").await;
    exec(&client, "ALTER DYNAMIC TABLE scored REFRESH").await;
    exec(&client, "ALTER DYNAMIC TABLE scored REFRESH").await;
    let all = history(&client, "scored").await;
    assert_eq!(
        all[all.len() - 2..],
        [refresh("INCREMENTAL", 0, 0, 3), refresh("NO_DATA", 0, 0, 0)]
    );

    assert_equal(&client, "scored", scored_query).await;
    assert_equal(&client, "flagged", plain_flagged).await;
}

/// The Snowpark pipeline's shape: the logins joined back to their own
/// predictions (`df_raw.join(model.run(df_raw.select(…)), on=[…])`). New
/// logins share their (user, location) key with old ones, so recomputing
/// the changed keys would score the old rows again; the scored input is
/// kept arranged instead, and a refresh scores only the rows that are new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_with_its_own_predictions_scores_each_new_row_once() {
    let models = workspace_root().join("tests/fixtures/models");
    let mut server = TestServer::start_with(ServerOptions::new().model_dir(&models));
    let client = server.connect().await;
    exec(
        &client,
        &format!(
            "CREATE MODEL risk FROM 'login_risk.onnx';
             CREATE TABLE logins (id bigint, user_id bigint, location text);
             INSERT INTO logins VALUES {}",
            logins(0..40)
        ),
    )
    .await;
    let query = "WITH m AS MODEL risk \
        SELECT l.id, l.user_id, l.location, p.label \
        FROM logins l JOIN (SELECT user_id, location, m!predict(user_id, location):label AS label \
                            FROM logins) p \
          ON l.user_id = p.user_id AND l.location = p.location";
    exec(
        &client,
        &format!(
            "CREATE DYNAMIC TABLE joined TARGET_LAG = '1 day' REFRESH_MODE = INCREMENTAL \
             INITIALIZE = ON_CREATE AS {query}"
        ),
    )
    .await;
    assert_eq!(
        history(&client, "joined").await,
        vec![refresh("FULL", 40, 40, 0)]
    );
    // Two fields of one prediction (what `model.run` writes) are one model
    // call, not two: DataFusion's field push-down would copy the call.
    exec(
        &client,
        "CREATE DYNAMIC TABLE fields TARGET_LAG = '1 day' REFRESH_MODE = INCREMENTAL AS \
         SELECT id, p['label'] AS label, p['probabilities'] AS probabilities \
         FROM (SELECT id, risk!predict(user_id, location) AS p FROM logins) s",
    )
    .await;
    assert_eq!(
        history(&client, "fields").await,
        vec![refresh("FULL", 40, 40, 0)]
    );

    // 10 new logins repeating the keys of logins 0..10, 3 old ones deleted,
    // 2 old ones moved: 12 rows to score, however many rows share a key.
    let repeats: Vec<String> = (0..10u64)
        .map(|i| {
            format!(
                "({}, {}, '{}')",
                100 + i,
                i * 7 % 50,
                LOCATIONS[(i as usize) % LOCATIONS.len()]
            )
        })
        .collect();
    exec(
        &client,
        &format!(
            "INSERT INTO logins VALUES {};
             DELETE FROM logins WHERE id IN (20, 21, 22);
             UPDATE logins SET location = 'CN' WHERE id IN (30, 31)",
            repeats.join(", ")
        ),
    )
    .await;
    exec(&client, "ALTER DYNAMIC TABLE joined REFRESH").await;
    let (action, scored, _, _) = last_refresh(&client, "joined").await;
    assert_eq!((action.as_str(), scored), ("INCREMENTAL", 12));
    let state = count(
        &client,
        "SELECT state_rows_read FROM freshet_refresh_history('joined') \
         ORDER BY refresh_start_time DESC LIMIT 1",
    )
    .await;
    assert_eq!(state, 40, "the refresh reads the arranged input, as it was");
    assert_equal(&client, "joined", query).await;

    // The arrangement is durable with the contents: after kill -9, deletes
    // only score nothing and the contents still equal the query.
    server.kill9();
    server.restart();
    let client = server.connect().await;
    exec(
        &client,
        "DELETE FROM logins WHERE id IN (100, 1);
         ALTER DYNAMIC TABLE joined REFRESH",
    )
    .await;
    let (action, scored, _, _) = last_refresh(&client, "joined").await;
    assert_eq!((action.as_str(), scored), ("INCREMENTAL", 0));
    assert_equal(&client, "joined", query).await;
}
