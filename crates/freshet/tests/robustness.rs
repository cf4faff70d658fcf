//! Statements a careless or hostile client can send that must neither crash
//! the server nor be silently mangled: expressions nested deeper than the
//! stack allows (answered, or refused with 54001, and the server lives on),
//! query text that is not UTF-8 (refused with 22021, nothing stored), and
//! statements that outgrow the query memory limit (53200, that statement only).

mod common;

use common::raw::Raw;
use common::{sqlstate, TestServer};
use tokio_postgres::{Client, SimpleQueryMessage};

/// The first value of the first row of a simple query, as text.
async fn first_value(client: &Client, sql: &str) -> Result<Option<String>, tokio_postgres::Error> {
    let messages = client.simple_query(sql).await?;
    Ok(messages
        .into_iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_string)),
            _ => None,
        })
        .flatten())
}

/// `n` copies of `term` joined by `op`.
fn chain(term: &str, op: &str, n: usize) -> String {
    vec![term; n].join(op)
}

/// The shapes machine-generated SQL takes, at `n` terms each, with the
/// answer each must give when it is not refused.
fn shapes(n: usize) -> Vec<(String, String)> {
    let ids: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    let ors: Vec<String> = (1..=n).map(|i| format!("x = {i}")).collect();
    vec![
        (format!("SELECT {}", chain("1", " + ", n)), n.to_string()),
        (
            format!("SELECT count(*) FROM t WHERE {}", ors.join(" OR ")),
            "3".into(),
        ),
        (
            format!(
                "SELECT count(*) FROM t WHERE {}",
                chain("x > 0", " AND ", n)
            ),
            "3".into(),
        ),
        (
            format!("SELECT length({})", chain("'a'", " || ", n)),
            n.to_string(),
        ),
        (
            format!("SELECT count(*) FROM t WHERE x IN ({})", ids.join(", ")),
            "3".into(),
        ),
        (
            format!(
                "SELECT count(*) FROM ({}) u",
                chain("SELECT 1", " UNION ALL ", n)
            ),
            n.to_string(),
        ),
        (format!("SELECT 1{}", "::bigint".repeat(n)), "1".into()),
    ]
}

/// Every shape at sizes from 1,000 to 50,000 terms, through both
/// protocols and EXPLAIN: each is answered correctly or refused with 54001
/// (statement_too_complex), and the server still answers afterwards. Up to
/// the documented limit each is answered.
#[tokio::test]
async fn deep_expressions_are_answered_or_refused() {
    let server = TestServer::start();
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE t (x bigint); INSERT INTO t VALUES (1), (2), (3)")
        .await
        .unwrap();
    // An OR chain of `x = n` counts two operators per term.
    let answered = freshet_engine::MAX_EXPRESSION_DEPTH / 2 - 10;
    for n in [1_000, answered, 50_000, 200_000] {
        for (sql, expected) in shapes(n) {
            let what = format!("{}… ({n} terms)", &sql[..40.min(sql.len())]);
            match first_value(&client, &sql).await {
                Ok(value) => assert_eq!(value.as_deref(), Some(expected.as_str()), "{what}"),
                Err(e) => {
                    assert_eq!(sqlstate(&e), "54001", "{what}: {e:?}");
                    assert!(n > answered, "{what} refused below the limit: {e:?}");
                }
            }
            // Parse/Describe and EXPLAIN plan the same tree again. At the
            // largest answered size planning takes seconds (it grows
            // quadratically with the chain, see the README's known limits),
            // so that size is planned once, above, not three times.
            if n != answered {
                if let Err(e) = client.prepare(&sql).await {
                    assert_eq!(sqlstate(&e), "54001", "prepare {what}: {e:?}");
                }
                if let Err(e) = client.simple_query(&format!("EXPLAIN {sql}")).await {
                    assert_eq!(sqlstate(&e), "54001", "EXPLAIN {what}: {e:?}");
                }
            }
            assert_eq!(
                first_value(&client, "SELECT 1").await.unwrap().as_deref(),
                Some("1"),
                "the server answers after {what}"
            );
        }
    }
    // A new connection is served too: the process is alive.
    let other = server.connect().await;
    assert_eq!(
        first_value(&other, "SELECT 2").await.unwrap().as_deref(),
        Some("2")
    );
}

/// Query text that is not UTF-8 is refused with 22021 in both protocols, in
/// the message's place, and nothing is stored; a replacement character the
/// client really sends is kept, and the connection goes on.
#[tokio::test]
async fn invalid_utf8_query_text_is_refused() {
    let server = TestServer::start();
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE notes (note text)")
        .await
        .unwrap();
    let mut raw = Raw::open(&server);

    // Simple protocol.
    raw.send(b'Q', b"INSERT INTO notes VALUES ('caf\xe9')\0");
    let (kinds, error) = raw.until_ready();
    assert_eq!(kinds, b"EZ");
    let (code, message) = error.unwrap();
    assert_eq!(code, "22021", "{message}");
    assert_eq!(
        message,
        "invalid byte sequence for encoding \"UTF8\": 0xe9 0x27 0x29"
    );

    // Extended protocol: Parse fails, the rest is skipped up to Sync.
    raw.send(b'P', b"\0INSERT INTO notes VALUES ('\xff')\0\0\0");
    raw.send(b'B', b"\0\0\0\0\0\0\0\0");
    raw.send(b'E', b"\0\0\0\0\0");
    raw.send(b'S', b"");
    let (kinds, error) = raw.until_ready();
    assert_eq!(kinds, b"EZ");
    assert_eq!(error.unwrap().0, "22021");

    // Inside a transaction block the error aborts the block, as any error.
    raw.send(b'Q', b"BEGIN\0");
    assert_eq!(raw.until_ready().0, b"CZ");
    raw.send(b'Q', b"INSERT INTO notes VALUES ('\xc3\x28')\0");
    assert_eq!(raw.until_ready().1.unwrap().0, "22021");
    raw.send(b'Q', b"INSERT INTO notes VALUES ('after')\0");
    assert_eq!(raw.until_ready().1.unwrap().0, "25P02");
    raw.send(b'Q', b"ROLLBACK\0");
    assert_eq!(raw.until_ready().0, b"CZ");

    // Valid text, including a real U+FFFD, still works on the same connection.
    raw.send(
        b'Q',
        "INSERT INTO notes VALUES ('ok \u{FFFD}')\0".as_bytes(),
    );
    let (kinds, error) = raw.until_ready();
    assert!(error.is_none(), "{error:?}");
    assert_eq!(kinds, b"CZ");

    let rows = client.query("SELECT note FROM notes", &[]).await.unwrap();
    let notes: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(notes, vec!["ok \u{FFFD}".to_string()]);
}

/// With `--query-memory-limit`, an aggregate that cannot spill and outgrows
/// the limit fails its statement with 53200 (out of memory), and only that
/// statement: the same connection, and a concurrent one, go on. A grouped
/// aggregate larger than the limit spills under the data directory and
/// answers.
/// The limit is shown by SHOW and cannot be changed by a session.
#[tokio::test]
async fn query_memory_limit_fails_the_statement_not_the_server() {
    let mut opts = common::ServerOptions::new();
    opts.extra_args = vec!["--query-memory-limit".into(), "32MB".into()];
    let server = TestServer::start_with(opts);
    let client = server.connect().await;
    let other = server.connect().await;

    assert_eq!(
        first_value(&client, "SHOW query_memory_limit")
            .await
            .unwrap(),
        Some("32MB".into())
    );
    let err = client
        .batch_execute("SET query_memory_limit = '1GB'")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "55P02", "{err:?}");

    // About 100 MB of aggregate state, which string_agg cannot spill.
    let err = first_value(
        &client,
        "SELECT length(string_agg(md5(x::text), ',')) FROM generate_series(1, 3000000) AS s(x)",
    )
    .await
    .unwrap_err();
    assert_eq!(sqlstate(&err), "53200", "{err:?}");
    assert_eq!(
        first_value(&client, "SELECT 1").await.unwrap(),
        Some("1".into())
    );
    assert_eq!(
        first_value(&other, "SELECT 2").await.unwrap(),
        Some("2".into())
    );

    // A grouped aggregate of 2M groups is larger than 32 MB: it spills
    // under the data directory (the operator's own spill counter, shown by
    // EXPLAIN ANALYZE, says so) and answers.
    let grouped = "SELECT count(*), sum(c) FROM (SELECT x % 2000000 AS g, count(*) AS c \
                   FROM generate_series(1, 4000000) AS s(x) GROUP BY 1) AS t";
    let rows = client.query(grouped, &[]).await.unwrap();
    assert_eq!(
        (rows[0].get::<_, i64>(0), rows[0].get::<_, i64>(1)),
        (2_000_000, 4_000_000)
    );
    let explained: Vec<String> = client
        .simple_query(&format!("EXPLAIN ANALYZE {grouped}"))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(1).map(str::to_string),
            _ => None,
        })
        .collect();
    let spills: u64 = explained
        .iter()
        .flat_map(|plan| plan.split([',', ' ', ']']))
        .filter_map(|part| part.strip_prefix("spill_count="))
        .filter_map(|n| n.parse::<u64>().ok())
        .sum();
    assert!(spills > 0, "no spill under 32MB:\n{}", explained.join("\n"));

    // The default, without the flag, is a quarter of the RAM: larger.
    let plain = TestServer::start();
    let plain_client = plain.connect().await;
    let shown = first_value(&plain_client, "SHOW query_memory_limit")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(shown, "32MB");
    assert!(
        ["kB", "MB", "GB", "TB"].iter().any(|u| shown.ends_with(u)),
        "{shown}"
    );
}
