//! Table data beyond `--resident-data-limit` is evicted to its Parquet
//! files and read back by scans: a server keeping none of it in memory
//! answers exactly as one keeping all of it, before and after `kill -9`,
//! and `freshet_memory_usage()` shows where the memory is.

mod common;

use common::{sqlstate, ServerOptions, TestServer};
use tokio_postgres::{Client, SimpleQueryMessage};

/// Every row of a simple query, as text.
async fn rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

const SETUP: &str = "
    CREATE TABLE logins (id bigint PRIMARY KEY, user_id bigint, location text,
                         amount double precision);
    INSERT INTO logins
      SELECT x, x % 1000, CASE x % 3 WHEN 0 THEN 'DE' WHEN 1 THEN 'FR' ELSE 'US' END, x * 0.5
      FROM generate_series(1, 200000) AS s(x);
    CREATE TABLE users (user_id bigint, name text);
    INSERT INTO users SELECT x, 'u' || x::text FROM generate_series(0, 999) AS s(x);
    CREATE DYNAMIC TABLE per_location TARGET_LAG = '1 day' REFRESH_MODE = INCREMENTAL AS
      SELECT location, count(*) AS n, sum(amount) AS total FROM logins GROUP BY location;
    CHECKPOINT;
    DELETE FROM logins WHERE id % 10 = 0;
    UPDATE logins SET amount = amount + 1 WHERE id % 7 = 0;
    INSERT INTO logins SELECT x, x % 1000, 'CN', 1.0 FROM generate_series(200001, 201000) AS s(x);
    CHECKPOINT;
    ALTER DYNAMIC TABLE per_location REFRESH";

const QUERIES: &[&str] = &[
    "SELECT count(*), sum(amount), min(id), max(id) FROM logins",
    "SELECT location, count(*), sum(amount) FROM logins GROUP BY location ORDER BY location",
    "SELECT u.name, count(*) AS n FROM logins l JOIN users u ON l.user_id = u.user_id \
     GROUP BY u.name ORDER BY n DESC, u.name LIMIT 5",
    "SELECT id, amount FROM logins ORDER BY amount DESC, id LIMIT 5",
    "SELECT * FROM logins WHERE id IN (7, 10, 77, 200500) ORDER BY id",
    "SELECT location, n, total FROM per_location ORDER BY location",
];

async fn answers(client: &Client) -> Vec<Vec<Vec<Option<String>>>> {
    let mut out = Vec::new();
    for q in QUERIES {
        out.push(rows(client, q).await);
    }
    out
}

/// Bytes of one `freshet_memory_usage()` component.
async fn memory(client: &Client, component: &str) -> i64 {
    let r = rows(
        client,
        &format!("SELECT bytes FROM freshet_memory_usage() WHERE component = '{component}'"),
    )
    .await;
    r[0][0].as_deref().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicted_table_data_gives_the_same_answers() {
    let mut opts = ServerOptions::new();
    opts.extra_args = vec!["--resident-data-limit".into(), "0B".into()];
    let mut cold = TestServer::start_with(opts);
    let warm = TestServer::start();
    let cold_client = cold.connect().await;
    let warm_client = warm.connect().await;
    assert_eq!(
        rows(&cold_client, "SHOW resident_data_limit").await,
        vec![vec![Some("0B".to_owned())]]
    );
    cold_client.batch_execute(SETUP).await.unwrap();
    warm_client.batch_execute(SETUP).await.unwrap();

    let expected = answers(&warm_client).await;
    assert_eq!(
        expected[0][0][0].as_deref(),
        Some("181000"),
        "the workload ran"
    );
    assert_eq!(answers(&cold_client).await, expected);

    // Where the memory is: the cold server holds no checkpointed column
    // data, the warm one does; both hold per-row bookkeeping.
    assert_eq!(memory(&cold_client, "checkpointed_table_data").await, 0);
    // (Compaction's merged segments count as recent until the next
    // checkpoint writes them.)
    let warm_data = memory(&warm_client, "checkpointed_table_data").await
        + memory(&warm_client, "recent_table_data").await;
    assert!(
        warm_data > 1_000_000,
        "{warm_data} bytes: {:?}",
        rows(&warm_client, "SELECT * FROM freshet_memory_usage()").await
    );
    assert!(memory(&cold_client, "row_versions").await >= 16 * 181_000);
    let limits = rows(
        &cold_client,
        "SELECT component, limit_bytes FROM freshet_memory_usage() ORDER BY component",
    )
    .await;
    assert!(
        limits.contains(&vec![
            Some("checkpointed_table_data".to_owned()),
            Some("0".to_owned())
        ]),
        "{limits:?}"
    );

    // Recovery reads no table data; queries read it from the files.
    drop(cold_client);
    cold.kill9();
    cold.restart();
    let cold_client = cold.connect().await;
    assert_eq!(answers(&cold_client).await, expected);
    // The primary key is rebuilt from the evicted segments.
    let err = cold_client
        .batch_execute("INSERT INTO logins VALUES (77, 1, 'DE', 1.0)")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23505", "{err:?}");
    cold_client
        .batch_execute("INSERT INTO logins VALUES (10, 1, 'DE', 1.0)")
        .await
        .unwrap();
}
