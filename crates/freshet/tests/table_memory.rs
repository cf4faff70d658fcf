//! Table data beyond `--resident-data-limit` is evicted to its Parquet
//! files and read back by scans: a server keeping none of it in memory
//! answers exactly as one keeping all of it, before and after `kill -9`,
//! and `freshet_memory_usage()` shows where the memory is. The size
//! functions report the bytes the tables take on disk.

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
    // Row ids and creation seqs are runs per commit; what remains is the
    // deletion stamps of the ~46k deleted or updated rows not yet
    // reclaimed (at most 24 bytes each), far below 16 bytes a stored row.
    let row_versions = memory(&cold_client, "row_versions").await;
    assert!(row_versions < 8 * 181_000, "{row_versions} bytes");
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

/// Sum of the sizes of the Parquet files under `dir`.
fn parquet_bytes(dir: &std::path::Path) -> i64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            total += parquet_bytes(&path);
        } else if path.extension().is_some_and(|e| e == "parquet") {
            total += std::fs::metadata(&path).unwrap().len() as i64;
        }
    }
    total
}

async fn number(client: &Client, sql: &str) -> i64 {
    let r = rows(client, sql).await;
    let text = r[0][0].as_deref().unwrap_or_else(|| panic!("{sql}: NULL"));
    text.parse()
        .unwrap_or_else(|e| panic!("{sql}: {text}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_functions_report_bytes_on_disk() {
    let mut server = TestServer::start();
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE sized (id bigint PRIMARY KEY, note text);
             INSERT INTO sized SELECT x, repeat('x', 50) FROM generate_series(1, 50000) AS s(x)",
        )
        .await
        .unwrap();
    // Before a checkpoint the rows are in the WAL, and count.
    let in_wal = number(&client, "SELECT pg_table_size('sized')").await;
    assert!(in_wal > 50_000 * 58, "{in_wal} bytes");

    // Background compaction may merge the insert's segments after a
    // checkpoint; the next checkpoint writes the merged file and removes
    // the old ones. Poll until the files on disk are the table's.
    let mut files = 0;
    for _ in 0..100 {
        client.batch_execute("CHECKPOINT").await.unwrap();
        files = parquet_bytes(server.data_dir());
        if number(&client, "SELECT pg_table_size('sized')").await == files {
            break;
        }
    }
    assert!(files > 0);
    assert_eq!(
        number(&client, "SELECT pg_table_size('sized')").await,
        files
    );
    assert_eq!(
        number(&client, "SELECT pg_total_relation_size('public.sized')").await,
        files
    );
    assert_eq!(
        number(&client, "SELECT pg_database_size(current_database())").await,
        files
    );
    // By OID, as psql's \dt+ asks; the primary key's index is in memory.
    assert_eq!(
        number(
            &client,
            "SELECT pg_table_size(c.oid) FROM pg_class c WHERE c.relname = 'sized'"
        )
        .await,
        files
    );
    assert_eq!(
        number(
            &client,
            "SELECT pg_relation_size(i.indexrelid) FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indrelid WHERE c.relname = 'sized'"
        )
        .await,
        0
    );
    assert_eq!(number(&client, "SELECT pg_indexes_size('sized')").await, 0);

    // The same after kill -9, from the manifest and the files.
    drop(client);
    server.kill9();
    server.restart();
    let client = server.connect().await;
    assert_eq!(
        number(&client, "SELECT pg_table_size('sized')").await,
        files
    );
}

/// `freshet_storage_metrics()`'s count of reads from segment files.
async fn file_reads(client: &Client) -> i64 {
    number(
        client,
        "SELECT value FROM freshet_storage_metrics() WHERE metric = 'segment_file_reads'",
    )
    .await
}

/// UPDATE and DELETE find their rows through the same scans as queries: a
/// change by primary key reads the one evicted segment holding the row (to
/// find the row, then at commit to take its key out of the index), not the
/// whole table, and the answers are those of a full scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_changes_read_only_their_rows() {
    let mut opts = ServerOptions::new();
    opts.extra_args = vec!["--resident-data-limit".into(), "0B".into()];
    let server = TestServer::start_with(opts);
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE accounts (id bigint PRIMARY KEY, note text, balance bigint)")
        .await
        .unwrap();
    // Four commits, four segments (fewer than compaction merges), all
    // evicted by the checkpoint.
    for part in 0..4 {
        client
            .batch_execute(&format!(
                "INSERT INTO accounts SELECT x, 'n' || x::text, 100 \
                 FROM generate_series({}, {}) AS s(x)",
                part * 1000 + 1,
                part * 1000 + 1000
            ))
            .await
            .unwrap();
    }
    client.batch_execute("CHECKPOINT").await.unwrap();

    let before = file_reads(&client).await;
    client
        .batch_execute("UPDATE accounts SET balance = balance + 1 WHERE id = 2500")
        .await
        .unwrap();
    let point = file_reads(&client).await - before;
    assert!(point <= 2, "a keyed UPDATE read {point} segment files");
    let before = file_reads(&client).await;
    client
        .batch_execute("DELETE FROM accounts WHERE id = 3999")
        .await
        .unwrap();
    let point = file_reads(&client).await - before;
    assert!(point <= 2, "a keyed DELETE read {point} segment files");

    // A change by another column scans every segment.
    let before = file_reads(&client).await;
    client
        .batch_execute("UPDATE accounts SET balance = 0 WHERE note = 'n17'")
        .await
        .unwrap();
    let scanned = file_reads(&client).await - before;
    assert!(
        scanned >= 4,
        "a non-key UPDATE read {scanned} segment files"
    );

    assert_eq!(
        rows(&client, "SELECT count(*), sum(balance) FROM accounts; ").await,
        vec![vec![
            Some("3999".to_owned()),
            Some((3997 * 100 + 101).to_string())
        ]]
    );
    assert_eq!(
        rows(
            &client,
            "SELECT id, balance FROM accounts WHERE id IN (17, 2500, 3999) ORDER BY id"
        )
        .await,
        vec![
            vec![Some("17".to_owned()), Some("0".to_owned())],
            vec![Some("2500".to_owned()), Some("101".to_owned())],
        ]
    );
}
