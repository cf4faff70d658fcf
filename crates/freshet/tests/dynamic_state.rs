//! A GROUP BY of counts and sums is maintained from per-group state: an
//! incremental refresh reads the changed rows and nothing else of the
//! source, whatever the source's size, and its state survives a crash.
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
    exec(client, "BEGIN").await;
    let stored = rows(client, "SELECT * FROM per_location ORDER BY 1").await;
    let computed = rows(client, &format!("{QUERY} ORDER BY 1")).await;
    exec(client, "COMMIT").await;
    assert_eq!(stored, computed, "per_location differs from its query");
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
