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

    // A change by a condition no file statistics can rule out (a function
    // call) scans every segment.
    let before = file_reads(&client).await;
    client
        .batch_execute("UPDATE accounts SET balance = 0 WHERE lower(note) = 'n17'")
        .await
        .unwrap();
    let scanned = file_reads(&client).await - before;
    assert!(
        scanned >= 4,
        "an UPDATE by a function of a column read {scanned} segment files"
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

/// One evicted table of four segments (ids 1-1000, ..., 3001-4000, one
/// minute apart), for pruning.
const EVENTS: &str = "CREATE TABLE events (id bigint, at timestamp, kind text, \
                      score double precision, note text)";

fn events_insert(part: i64) -> String {
    format!(
        "INSERT INTO events SELECT x, TIMESTAMP '2024-01-01 00:00:00' + (x::text || ' minutes')::interval, \
         'k' || (x % 5)::text, CASE WHEN x = 10 THEN 'NaN'::float8 ELSE x * 0.5 END, \
         CASE WHEN x % 2 = 0 THEN 'even' END \
         FROM generate_series({}, {}) AS s(x)",
        part * 1000 + 1,
        part * 1000 + 1000
    )
}

/// A filter's rows of `events`, as the test computes them, with the most
/// segment files a scan for it may read.
struct PruneCase {
    filter: &'static str,
    matches: fn(i64) -> bool,
    max_reads: i64,
}

const PRUNE_CASES: &[PruneCase] = &[
    PruneCase {
        filter: "id > 3500",
        matches: |id| id > 3500,
        max_reads: 1,
    },
    PruneCase {
        filter: "at >= TIMESTAMP '2024-01-03 12:00:00'",
        matches: |id| id >= 3600,
        max_reads: 1,
    },
    PruneCase {
        filter: "id BETWEEN 1500 AND 2500",
        matches: |id| (1500..=2500).contains(&id),
        max_reads: 2,
    },
    PruneCase {
        filter: "id IN (5, 3995)",
        matches: |id| id == 5 || id == 3995,
        max_reads: 2,
    },
    PruneCase {
        filter: "id = 1 OR id = 4000",
        matches: |id| id == 1 || id == 4000,
        max_reads: 2,
    },
    PruneCase {
        filter: "kind = 'k1' AND id < 900",
        matches: |id| id % 5 == 1 && id < 900,
        max_reads: 1,
    },
    PruneCase {
        filter: "note IS NOT NULL AND id <= 1000",
        matches: |id| id % 2 == 0 && id <= 1000,
        max_reads: 1,
    },
    PruneCase {
        filter: "id > 5000",
        matches: |_| false,
        max_reads: 0,
    },
    // Float statistics leave NaN out, and NaN is above every number: a
    // float filter never skips a segment (row 10's score is NaN).
    PruneCase {
        filter: "score > 1999.0",
        matches: |id| id > 3998 || id == 10,
        max_reads: 4,
    },
    // A function of a column cannot be checked against statistics.
    PruneCase {
        filter: "lower(kind) = 'k1'",
        matches: |id| id % 5 == 1,
        max_reads: 4,
    },
];

/// `count(*)` and `sum(id)` of the case's rows, as the server answers them
/// and the file reads the query made.
async fn prune_case(client: &Client, case: &PruneCase) -> (Vec<Vec<Option<String>>>, i64) {
    let before = file_reads(client).await;
    let got = rows(
        client,
        &format!("SELECT count(*), sum(id) FROM events WHERE {}", case.filter),
    )
    .await;
    (got, file_reads(client).await - before)
}

fn prune_expected(case: &PruneCase) -> Vec<Vec<Option<String>>> {
    let ids: Vec<i64> = (1..=4000).filter(|id| (case.matches)(*id)).collect();
    let sum = (!ids.is_empty()).then(|| ids.iter().sum::<i64>().to_string());
    vec![vec![Some(ids.len().to_string()), sum]]
}

/// A filter that the statistics of evicted segments' files rule out for a
/// segment skips that segment's file: a query for the newest rows of an
/// append-only table reads the newest file, not the history. EXPLAIN says
/// how many segments were skipped. Answers are those the test computes
/// from the data, before and after `kill -9` (statistics come back from
/// the files' footers), and filters statistics cannot decide (floats,
/// function calls) read every file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_skip_evicted_segments_they_rule_out() {
    let mut opts = ServerOptions::new();
    opts.extra_args = vec!["--resident-data-limit".into(), "0B".into()];
    let mut server = TestServer::start_with(opts);
    let client = server.connect().await;
    client.batch_execute(EVENTS).await.unwrap();
    for part in 0..4 {
        client.batch_execute(&events_insert(part)).await.unwrap();
    }
    client.batch_execute("CHECKPOINT").await.unwrap();
    // Kept per segment and column, not per row.
    let statistics = memory(&client, "file_statistics").await;
    assert!(
        statistics > 0 && statistics < 64 * 1024,
        "{statistics} bytes of file statistics"
    );

    for case in PRUNE_CASES {
        let (got, reads) = prune_case(&client, case).await;
        assert_eq!(got, prune_expected(case), "WHERE {}", case.filter);
        assert!(
            reads <= case.max_reads,
            "WHERE {} read {reads} segment files, at most {} expected",
            case.filter,
            case.max_reads
        );
    }
    let (_, reads) = prune_case(&client, &PRUNE_CASES[8]).await;
    assert_eq!(reads, 4, "a float filter skipped a segment");

    let plan = rows(
        &client,
        "EXPLAIN SELECT count(*) FROM events WHERE id > 3500",
    )
    .await;
    let text: String = plan
        .iter()
        .flatten()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("evicted_segments=1, pruned_segments=3"),
        "EXPLAIN does not show the skipped segments:\n{text}"
    );

    // Rows deleted and added after the checkpoint are seen as before.
    client
        .batch_execute(
            "DELETE FROM events WHERE id = 3999; \
             INSERT INTO events VALUES (4001, TIMESTAMP '2024-01-01 00:00:00', 'k1', 1, NULL)",
        )
        .await
        .unwrap();
    assert_eq!(
        rows(
            &client,
            "SELECT count(*), sum(id) FROM events WHERE id > 3500"
        )
        .await,
        vec![vec![
            Some("500".to_owned()),
            Some(((3501..=4001).sum::<i64>() - 3999).to_string())
        ]]
    );
    client
        .batch_execute("DELETE FROM events WHERE id > 4000")
        .await
        .unwrap();

    server.kill9();
    server.restart();
    let client = server.connect().await;
    for case in PRUNE_CASES {
        let (got, reads) = prune_case(&client, case).await;
        let mut expected = prune_expected(case);
        if (case.matches)(3999) {
            // Deleted above.
            let n: i64 = expected[0][0].as_deref().unwrap().parse().unwrap();
            let sum: i64 = expected[0][1].as_deref().unwrap().parse().unwrap();
            expected = vec![vec![
                Some((n - 1).to_string()),
                (n > 1).then(|| (sum - 3999).to_string()),
            ]];
        }
        assert_eq!(got, expected, "after restart, WHERE {}", case.filter);
        // The segments written since the checkpoint are in memory again
        // (replayed from the WAL), so reads stay within the same bound.
        assert!(
            reads <= case.max_reads,
            "after restart, WHERE {} read {reads} segment files",
            case.filter
        );
    }
}
