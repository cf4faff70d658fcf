//! A GROUP BY of counts, sums, averages, minimums and maximums is maintained
//! from per-group state: an incremental refresh reads the changed rows and
//! nothing else of the source, whatever the source's size (unless a deletion
//! takes away a group's minimum or maximum, when that group is read again),
//! and its state survives a crash.
//! `source_rows_read` in the refresh history is counted where rows are read
//! (change feeds and scans), so these assertions check the work itself.

mod common;

use common::{exec_ok as exec, text_rows as rows, TestServer};
use tokio_postgres::Client;

/// (action, source rows read) of the table's last successful refresh.
async fn last_refresh(client: &Client, table: &str) -> (String, u64) {
    let history = rows(
        client,
        &format!(
            "SELECT refresh_action, source_rows_read FROM freshet_refresh_history('{table}') \
             WHERE state = 'SUCCEEDED' ORDER BY refresh_start_time DESC LIMIT 1"
        ),
    )
    .await;
    let last = history.first().expect("a successful refresh");
    (last[0].clone(), last[1].parse().expect("a count"))
}

const QUERY: &str = "SELECT location, count(*) AS n, count(amount) AS priced, \
    sum(amount) AS total FROM logins GROUP BY location";

async fn assert_equal(client: &Client) {
    assert_table_equal(client, "per_location", QUERY).await;
}

/// Asserts that `table` holds what `query` computes, read in one snapshot.
async fn assert_table_equal(client: &Client, table: &str, query: &str) {
    exec(client, "BEGIN").await;
    let mut stored = rows(client, &format!("SELECT * FROM {table}")).await;
    let mut computed = rows(client, query).await;
    exec(client, "COMMIT").await;
    // Whole rows in one order (ORDER BY 1 would leave ties unordered).
    stored.sort();
    computed.sort();
    assert_eq!(stored, computed, "{table} differs from its query");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregate_refresh_reads_only_the_change() {
    let mut server = TestServer::start();
    let client = server.connect().await;
    exec(
        &client,
        "CREATE TABLE logins (id bigint, location text, amount numeric(10,2));
         INSERT INTO logins SELECT n, 'loc' || (n % 50), CAST(n % 97 AS numeric(10,2)) / 4
           FROM generate_series(1, 20000) AS g(n)",
    )
    .await;
    exec(
        &client,
        &format!(
            "CREATE DYNAMIC TABLE per_location TARGET_LAG = '1 day' \
             REFRESH_MODE = INCREMENTAL AS {QUERY}"
        ),
    )
    .await;
    assert_equal(&client).await;

    // 100 new rows, one of them unpriced and one in a new group.
    exec(
        &client,
        "INSERT INTO logins SELECT n, 'loc' || (n % 50), CAST(n AS numeric(10,2)) / 8
           FROM generate_series(20001, 20098) AS g(n);
         INSERT INTO logins VALUES (20099, 'loc1', NULL), (20100, 'new', 2.50);
         ALTER DYNAMIC TABLE per_location REFRESH",
    )
    .await;
    assert_eq!(
        last_refresh(&client, "per_location").await,
        ("INCREMENTAL".to_string(), 100),
        "the refresh reads the 100 new rows, not the 20,100 of the table"
    );
    assert_equal(&client).await;

    // Deletes, an update, and a group emptied entirely.
    exec(
        &client,
        "DELETE FROM logins WHERE id <= 10;
         UPDATE logins SET amount = amount + 1 WHERE id = 500;
         DELETE FROM logins WHERE location = 'new';
         ALTER DYNAMIC TABLE per_location REFRESH",
    )
    .await;
    // 10 deleted, the updated row's old and new versions, the 'new' row.
    assert_eq!(
        last_refresh(&client, "per_location").await,
        ("INCREMENTAL".to_string(), 13)
    );
    assert_equal(&client).await;
    assert!(
        rows(&client, "SELECT 1 FROM per_location WHERE location = 'new'")
            .await
            .is_empty(),
        "an emptied group leaves the table"
    );

    // The state is durable: after kill -9 the next refresh is still
    // incremental and still right.
    server.kill9();
    server.restart();
    let client = server.connect().await;
    exec(
        &client,
        "INSERT INTO logins VALUES (30000, 'loc7', 1.25), (30001, 'loc8', NULL);
         ALTER DYNAMIC TABLE per_location REFRESH",
    )
    .await;
    assert_eq!(
        last_refresh(&client, "per_location").await,
        ("INCREMENTAL".to_string(), 2)
    );
    assert_equal(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_and_union_read_only_the_change() {
    let server = TestServer::start();
    let client = server.connect().await;
    exec(
        &client,
        "CREATE TABLE visits (id bigint, location text, device text);
         CREATE TABLE archived (id bigint, location text);
         INSERT INTO visits SELECT n, 'loc' || (n % 50), 'dev' || (n % 3)
           FROM generate_series(1, 20000) AS g(n);
         INSERT INTO archived SELECT n, 'old' || (n % 7) FROM generate_series(1, 5000) AS g(n)",
    )
    .await;
    let distinct = "SELECT DISTINCT location, device FROM visits";
    let union = "SELECT location FROM visits UNION SELECT location FROM archived";
    exec(
        &client,
        &format!(
            "CREATE DYNAMIC TABLE places TARGET_LAG = '1 day' REFRESH_MODE = INCREMENTAL AS {distinct};
             CREATE DYNAMIC TABLE all_places TARGET_LAG = '1 day' REFRESH_MODE = INCREMENTAL AS {union}"
        ),
    )
    .await;
    let reasons = rows(
        &client,
        "SELECT refresh_mode_reason FROM freshet_dynamic_tables() \
         WHERE name IN ('places', 'all_places') ORDER BY name",
    )
    .await;
    for reason in &reasons {
        assert!(
            reason[0].starts_with("DISTINCT: maintained from per-row counts"),
            "{reasons:?}"
        );
    }
    assert_table_equal(&client, "places", distinct).await;
    assert_table_equal(&client, "all_places", union).await;

    // New rows, some repeating existing rows and some new ones; then every
    // row of a combination deleted, and one of two copies of another.
    exec(
        &client,
        "INSERT INTO visits VALUES (20001, 'loc1', 'dev1'), (20002, 'new', 'dev9'), (20003, 'new', 'dev9');
         ALTER DYNAMIC TABLE places REFRESH;
         ALTER DYNAMIC TABLE all_places REFRESH",
    )
    .await;
    assert_eq!(
        last_refresh(&client, "places").await,
        ("INCREMENTAL".to_string(), 3),
        "the refresh reads the 3 new rows, not the 20,003 of the table"
    );
    assert_eq!(
        last_refresh(&client, "all_places").await,
        ("INCREMENTAL".to_string(), 3)
    );
    assert_table_equal(&client, "places", distinct).await;
    assert_table_equal(&client, "all_places", union).await;

    exec(
        &client,
        "DELETE FROM visits WHERE id = 20002;
         DELETE FROM visits WHERE location = 'loc1' AND device = 'dev1';
         DELETE FROM archived WHERE location = 'old3';
         ALTER DYNAMIC TABLE places REFRESH;
         ALTER DYNAMIC TABLE all_places REFRESH",
    )
    .await;
    assert_table_equal(&client, "places", distinct).await;
    assert_table_equal(&client, "all_places", union).await;
    assert_eq!(
        rows(
            &client,
            "SELECT count(*) FROM places WHERE location = 'new'"
        )
        .await,
        vec![vec!["1".to_string()]],
        "a row with one copy left stays"
    );
    assert!(
        rows(&client, "SELECT 1 FROM all_places WHERE location = 'old3'")
            .await
            .is_empty(),
        "a row whose every copy is gone leaves the table"
    );
}

const EXTREMES: &str = "SELECT location, min(amount) AS low, max(amount) AS high, \
    min(user_name) AS first_user, max(seen) AS last_seen, avg(id) AS mean_id, \
    count(*) AS n FROM visits GROUP BY location";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimums_maximums_and_averages_read_only_the_change() {
    let mut server = TestServer::start();
    let client = server.connect().await;
    exec(
        &client,
        "CREATE TABLE visits (id bigint, location text, amount numeric(10,2), \
           user_name text, seen timestamp);
         INSERT INTO visits SELECT n, 'loc' || (n % 50), CAST(n % 97 AS numeric(10,2)) / 4,
           'u' || (n % 1000), CAST(to_timestamp(1704067200 + n * 60) AS timestamp)
           FROM generate_series(1, 20000) AS g(n)",
    )
    .await;
    exec(
        &client,
        &format!(
            "CREATE DYNAMIC TABLE extremes TARGET_LAG = '1 day' \
             REFRESH_MODE = INCREMENTAL AS {EXTREMES}"
        ),
    )
    .await;
    assert_table_equal(&client, "extremes", EXTREMES).await;

    // New rows: new extremes in some groups, a NULL, and a new group.
    exec(
        &client,
        "INSERT INTO visits SELECT n, 'loc' || (n % 50), CAST(n % 131 AS numeric(10,2)) - 5,
           'a' || n, CAST(to_timestamp(1709251200 + n) AS timestamp)
           FROM generate_series(20001, 20098) AS g(n);
         INSERT INTO visits VALUES (20099, 'loc1', NULL, NULL, NULL),
           (20100, 'new', 2.50, 'zed', TIMESTAMP '2020-01-01 00:00:00');
         ALTER DYNAMIC TABLE extremes REFRESH",
    )
    .await;
    assert_eq!(
        last_refresh(&client, "extremes").await,
        ("INCREMENTAL".to_string(), 100),
        "the refresh reads the 100 new rows, not the 20,100 of the table"
    );
    assert_table_equal(&client, "extremes", EXTREMES).await;

    // Deleting a row that holds none of its group's extremes reads that
    // row only: id 500 (loc0, amount 3.75, u500, an old visit).
    exec(
        &client,
        "DELETE FROM visits WHERE id = 500; ALTER DYNAMIC TABLE extremes REFRESH",
    )
    .await;
    assert_eq!(
        last_refresh(&client, "extremes").await,
        ("INCREMENTAL".to_string(), 1)
    );
    assert_table_equal(&client, "extremes", EXTREMES).await;

    // Deleting loc7's latest visit (id 20057) takes away its maximum: the
    // group is read again from the source, and the result is still right.
    exec(
        &client,
        "DELETE FROM visits WHERE id = 20057; ALTER DYNAMIC TABLE extremes REFRESH",
    )
    .await;
    let (action, read) = last_refresh(&client, "extremes").await;
    assert_eq!(action, "INCREMENTAL");
    assert!(
        read > 1,
        "loc7 is rescanned, so more than the change is read"
    );
    assert_table_equal(&client, "extremes", EXTREMES).await;

    // An update that lowers a minimum, and a group emptied entirely.
    exec(
        &client,
        "UPDATE visits SET amount = -100, user_name = 'a' WHERE id = 1234;
         DELETE FROM visits WHERE location = 'new';
         ALTER DYNAMIC TABLE extremes REFRESH",
    )
    .await;
    assert_table_equal(&client, "extremes", EXTREMES).await;
    assert!(
        rows(&client, "SELECT 1 FROM extremes WHERE location = 'new'")
            .await
            .is_empty(),
        "an emptied group leaves the table"
    );

    // The state is durable.
    server.kill9();
    server.restart();
    let client = server.connect().await;
    exec(
        &client,
        "INSERT INTO visits VALUES (30000, 'loc7', 99.75, 'zz', TIMESTAMP '2030-01-01 00:00:00'),
           (30001, 'loc8', NULL, NULL, NULL);
         ALTER DYNAMIC TABLE extremes REFRESH",
    )
    .await;
    assert_eq!(
        last_refresh(&client, "extremes").await,
        ("INCREMENTAL".to_string(), 2)
    );
    assert_table_equal(&client, "extremes", EXTREMES).await;
}

const DISTINCT: &str = "SELECT location, count(*) AS n, count(DISTINCT user_id) AS users, \
    count(DISTINCT day) AS days, max(day) AS last_day FROM sessions GROUP BY location";

/// (state rows read) of the table's last successful refresh.
async fn last_state_rows_read(client: &Client, table: &str) -> u64 {
    let history = rows(
        client,
        &format!(
            "SELECT state_rows_read FROM freshet_refresh_history('{table}') \
             WHERE state = 'SUCCEEDED' ORDER BY refresh_start_time DESC LIMIT 1"
        ),
    )
    .await;
    history[0][0].parse().expect("a count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_counts_read_only_the_change() {
    let mut server = TestServer::start();
    let client = server.connect().await;
    // 20,000 sessions of 1,000 users over 30 days in 20 locations and a
    // NULL location; some sessions have no user.
    exec(
        &client,
        "CREATE TABLE sessions (id bigint, location text, user_id int, day date);
         INSERT INTO sessions SELECT n,
             CASE WHEN n % 21 = 0 THEN NULL ELSE 'loc' || (n % 21) END,
             CASE WHEN n % 97 = 0 THEN NULL ELSE CAST(n % 1000 AS int) END,
             DATE '2024-01-01' + CAST(n % 30 AS int)
           FROM generate_series(1, 20000) AS g(n)",
    )
    .await;
    exec(
        &client,
        &format!(
            "CREATE DYNAMIC TABLE distinct_users TARGET_LAG = '1 day' \
             REFRESH_MODE = INCREMENTAL AS {DISTINCT}"
        ),
    )
    .await;
    assert_table_equal(&client, "distinct_users", DISTINCT).await;

    // New users and days in some groups, known ones in others, a NULL
    // user, the NULL group, and a new group.
    exec(
        &client,
        "INSERT INTO sessions SELECT n, 'loc' || (n % 21), CAST(n % 1500 AS int),
             DATE '2024-02-01' + CAST(n % 3 AS int)
           FROM generate_series(20001, 20097) AS g(n);
         INSERT INTO sessions VALUES (20098, 'loc1', NULL, DATE '2024-01-02'),
           (20099, NULL, 5000, DATE '2024-01-03'), (20100, 'new', 7, DATE '2024-01-04');
         ALTER DYNAMIC TABLE distinct_users REFRESH",
    )
    .await;
    assert_eq!(
        last_refresh(&client, "distinct_users").await,
        ("INCREMENTAL".to_string(), 100),
        "the refresh reads the 100 new rows, not the 20,100 of the table"
    );
    // The per-group state (22 groups) and at most one value count per
    // changed (group, value) pair of each count(DISTINCT): 2 × 100.
    let state_read = last_state_rows_read(&client, "distinct_users").await;
    assert!(
        state_read <= 22 + 200,
        "the value counts are looked up, not read whole ({state_read} rows)"
    );
    assert_table_equal(&client, "distinct_users", DISTINCT).await;

    // Deleting every session of one user in one group takes that user out
    // of the group's distinct count; deleting one of several keeps it.
    // user 40's sessions: ids 40, 1040, …, 19040 (loc19, loc11, … mixed).
    exec(
        &client,
        "DELETE FROM sessions WHERE user_id = 40 AND location = 'loc19';
         DELETE FROM sessions WHERE id = 41;
         UPDATE sessions SET user_id = 999999, day = DATE '2025-01-01' WHERE id = 42;
         DELETE FROM sessions WHERE location = 'new';
         ALTER DYNAMIC TABLE distinct_users REFRESH",
    )
    .await;
    let (action, read) = last_refresh(&client, "distinct_users").await;
    assert_eq!(action, "INCREMENTAL");
    assert!(read < 100, "only the changed rows are read ({read})");
    assert_table_equal(&client, "distinct_users", DISTINCT).await;
    assert!(
        rows(
            &client,
            "SELECT 1 FROM distinct_users WHERE location = 'new'"
        )
        .await
        .is_empty(),
        "an emptied group leaves the table"
    );

    // The value counts are durable: after kill -9 the next refresh is
    // incremental and right.
    server.kill9();
    server.restart();
    let client = server.connect().await;
    exec(
        &client,
        "INSERT INTO sessions VALUES (30000, 'loc7', 123456, DATE '2030-01-01'),
           (30001, NULL, NULL, NULL);
         DELETE FROM sessions WHERE id = 43;
         ALTER DYNAMIC TABLE distinct_users REFRESH",
    )
    .await;
    assert_eq!(
        last_refresh(&client, "distinct_users").await,
        ("INCREMENTAL".to_string(), 3)
    );
    assert_table_equal(&client, "distinct_users", DISTINCT).await;
}

/// A refresh commits the dynamic table's progress to the same catalog entry
/// an ALTER … SET changes, and two sessions may ALTER the same table at
/// once. An ALTER outside a transaction block must not fail with 40001
/// because another commit touched the entry at that moment (PostgreSQL
/// would make it wait, not fail): it runs on its own and is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_succeeds_while_refreshes_and_alters_commit() {
    let server = TestServer::start();
    let client = server.connect().await;
    let writer = server.connect().await;
    exec(
        &client,
        "CREATE TABLE events (id bigint, kind text);
         INSERT INTO events VALUES (0, 'a');
         CREATE DYNAMIC TABLE per_kind TARGET_LAG = '1 second' REFRESH_MODE = INCREMENTAL \
           AS SELECT kind, count(*) AS n FROM events GROUP BY kind",
    )
    .await;
    let refreshes = "SELECT count(*) FROM freshet_refresh_history('per_kind') \
        WHERE state = 'SUCCEEDED' AND refresh_action = 'INCREMENTAL'";
    // Two sessions ALTER continuously until the scheduler has committed 5
    // incremental refreshes (each after new rows).
    let alterers = [server.connect().await, server.connect().await];
    let mut id = 1;
    let mut rounds = 0u64;
    loop {
        exec(
            &writer,
            &format!("INSERT INTO events VALUES ({id}, 'k{}')", id % 5),
        )
        .await;
        id += 1;
        for _ in 0..10 {
            let statements = alterers.iter().enumerate().map(|(session, c)| {
                let sql = format!(
                    "ALTER DYNAMIC TABLE per_kind SET COMMENT = 'session {session} round {rounds}'"
                );
                async move { c.simple_query(&sql).await }
            });
            for result in futures::future::join_all(statements).await {
                if let Err(e) = result {
                    panic!(
                        "ALTER failed while others commit: {:?}",
                        e.as_db_error()
                            .map(|d| (d.code().code().to_string(), d.message().to_string()))
                    );
                }
            }
            rounds += 1;
        }
        let done: u64 = rows(&client, refreshes).await[0][0]
            .parse()
            .expect("a count");
        if done >= 5 {
            break;
        }
    }
    // One of the last round's comments is the one kept, and the table is
    // right.
    let comment = rows(
        &client,
        "SELECT comment FROM freshet_dynamic_tables() WHERE name = 'per_kind'",
    )
    .await;
    let last = rounds - 1;
    assert!(
        [0, 1]
            .iter()
            .any(|s| comment == vec![vec![format!("session {s} round {last}")]]),
        "{comment:?}"
    );
    exec(&client, "ALTER DYNAMIC TABLE per_kind REFRESH").await;
    assert_table_equal(
        &client,
        "per_kind",
        "SELECT kind, count(*) AS n FROM events GROUP BY kind",
    )
    .await;
}
