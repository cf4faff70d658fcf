//! Wire-protocol tests with tokio-postgres: binary parameters and results of
//! every supported type, Describe, COPY in and out, cancellation, transactions,
//! SQLSTATEs, SCRAM authentication, TLS, and the non-loopback start-up check.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use common::raw::Raw;
use common::{assert_sqlstate, copy_in, simple_rows, sqlstate, ServerOptions, TestServer};
use futures::{pin_mut, StreamExt, TryStreamExt};
use pg_interval::Interval;
use rust_decimal::Decimal;
use tokio_postgres::config::SslMode;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, GenericClient, NoTls, SimpleQueryMessage};

// ---------------------------------------------------------------- helpers

async fn count<C: GenericClient>(client: &C, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("`{sql}` failed: {e:?}"))
        .get::<_, i64>(0)
}

async fn exec(client: &Client, sql: &str) {
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("`{sql}` failed: {e:?}"));
}

fn ts(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap()
}

// ---------------------------------------------------------------- types

const ALL_TYPES_DDL: &str = "CREATE TABLE all_types (
    id bigint NOT NULL,
    b boolean, i2 smallint, i4 int, i8 bigint, f4 real, f8 double precision,
    n numeric(12,2), t text, v varchar(20), by bytea, d date, tm time,
    ts timestamp, tz timestamptz, iv interval, j json)";

#[derive(Debug, Clone, PartialEq)]
struct AllTypes {
    id: i64,
    b: Option<bool>,
    i2: Option<i16>,
    i4: Option<i32>,
    i8: Option<i64>,
    f4: Option<f32>,
    f8: Option<f64>,
    n: Option<Decimal>,
    t: Option<String>,
    v: Option<String>,
    by: Option<Vec<u8>>,
    d: Option<NaiveDate>,
    tm: Option<NaiveTime>,
    ts: Option<NaiveDateTime>,
    tz: Option<DateTime<Utc>>,
    iv: Option<Interval>,
    j: Option<serde_json::Value>,
}

fn sample_rows() -> Vec<AllTypes> {
    vec![
        AllTypes {
            id: 1,
            b: Some(true),
            i2: Some(i16::MIN),
            i4: Some(i32::MAX),
            i8: Some(i64::MIN),
            f4: Some(1.5),
            f8: Some(-2.0e-300),
            n: Some("1234567890.12".parse().unwrap()),
            t: Some("héllo wörld ☃ \t tab and \"quotes\" and 'apostrophes'".into()),
            v: Some("short".into()),
            by: Some(vec![0, 1, 2, 0xfe, 0xff, 0, b'\\']),
            d: Some(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
            tm: Some(NaiveTime::from_hms_micro_opt(23, 59, 58, 123_456).unwrap()),
            ts: Some(ts("2024-01-02 03:04:05.654321")),
            tz: Some(ts("2024-06-30 22:15:00.000001").and_utc()),
            iv: Some(Interval::new(14, -3, 3_723_000_456)),
            j: Some(serde_json::json!({"a": [1, 2.5, "x"], "b": null, "c": {"d": true}})),
        },
        AllTypes {
            id: 2,
            b: Some(false),
            i2: Some(i16::MAX),
            i4: Some(i32::MIN),
            i8: Some(i64::MAX),
            f4: Some(-0.0),
            f8: Some(f64::MAX),
            n: Some("-0.01".parse().unwrap()),
            t: Some(String::new()),
            v: Some(String::new()),
            by: Some(vec![]),
            d: Some(NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()),
            tm: Some(NaiveTime::from_hms_opt(0, 0, 0).unwrap()),
            ts: Some(ts("1999-12-31 23:59:59")),
            tz: Some(ts("1969-07-20 20:17:40").and_utc()),
            iv: Some(Interval::new(0, 0, 0)),
            j: Some(serde_json::json!([])),
        },
        AllTypes {
            id: 3,
            b: None,
            i2: None,
            i4: None,
            i8: None,
            f4: None,
            f8: None,
            n: None,
            t: None,
            v: None,
            by: None,
            d: None,
            tm: None,
            ts: None,
            tz: None,
            iv: None,
            j: None,
        },
    ]
}

fn params(r: &AllTypes) -> Vec<&(dyn ToSql + Sync)> {
    vec![
        &r.id as &(dyn ToSql + Sync),
        &r.b,
        &r.i2,
        &r.i4,
        &r.i8,
        &r.f4,
        &r.f8,
        &r.n,
        &r.t,
        &r.v,
        &r.by,
        &r.d,
        &r.tm,
        &r.ts,
        &r.tz,
        &r.iv,
        &r.j,
    ]
}

fn from_row(row: &tokio_postgres::Row) -> AllTypes {
    AllTypes {
        id: row.get("id"),
        b: row.get("b"),
        i2: row.get("i2"),
        i4: row.get("i4"),
        i8: row.get("i8"),
        f4: row.get("f4"),
        f8: row.get("f8"),
        n: row.get("n"),
        t: row.get("t"),
        v: row.get("v"),
        by: row.get("by"),
        d: row.get("d"),
        tm: row.get("tm"),
        ts: row.get("ts"),
        tz: row.get("tz"),
        iv: row.get("iv"),
        j: row.get("j"),
    }
}

/// Every supported type goes in as a binary parameter (tokio-postgres always
/// binds binary) and comes back in binary results, unchanged.
#[tokio::test]
async fn binary_parameters_round_trip_through_a_table() {
    let server = TestServer::start();
    let client = server.connect().await;
    exec(&client, ALL_TYPES_DDL).await;

    let insert = client
        .prepare(
            "INSERT INTO all_types VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .await
        .expect("prepare INSERT with 17 parameters");
    let expected_param_types = [
        Type::INT8,
        Type::BOOL,
        Type::INT2,
        Type::INT4,
        Type::INT8,
        Type::FLOAT4,
        Type::FLOAT8,
        Type::NUMERIC,
        Type::TEXT,
        Type::VARCHAR,
        Type::BYTEA,
        Type::DATE,
        Type::TIME,
        Type::TIMESTAMP,
        Type::TIMESTAMPTZ,
        Type::INTERVAL,
        Type::JSON,
    ];
    for (i, (got, want)) in insert
        .params()
        .iter()
        .zip(&expected_param_types)
        .enumerate()
    {
        // varchar parameters may be described as text; every other type exactly.
        let ok = got == want || (*want == Type::VARCHAR && *got == Type::TEXT);
        assert!(
            ok,
            "parameter ${} inferred as {got}, expected {want}",
            i + 1
        );
    }
    assert_eq!(insert.params().len(), 17);

    let rows = sample_rows();
    for r in &rows {
        let n = client
            .execute(&insert, &params(r))
            .await
            .unwrap_or_else(|e| panic!("insert row {}: {e:?}", r.id));
        assert_eq!(n, 1);
    }

    let got: Vec<AllTypes> = client
        .query("SELECT * FROM all_types ORDER BY id", &[])
        .await
        .expect("select all_types")
        .iter()
        .map(from_row)
        .collect();
    assert_eq!(got.len(), rows.len());
    for (g, w) in got.iter().zip(&rows) {
        assert_eq!(g, w, "row {} did not round-trip", w.id);
        // Decimal equality ignores scale; the column's scale is 2.
        if let Some(n) = &g.n {
            assert_eq!(n.scale(), 2, "numeric(12,2) value {n} has the wrong scale");
        }
    }

    // Parameters in WHERE clauses, compared against stored values.
    for r in &rows[..2] {
        let found = client
            .query(
                "SELECT id FROM all_types WHERE b = $1 AND i2 = $2 AND i8 = $3 AND t = $4 \
                 AND by = $5 AND d = $6 AND ts = $7 AND tz = $8",
                &[&r.b, &r.i2, &r.i8, &r.t, &r.by, &r.d, &r.ts, &r.tz],
            )
            .await
            .unwrap_or_else(|e| panic!("parameterized WHERE for row {}: {e:?}", r.id));
        assert_eq!(found.len(), 1, "row {} not found by its own values", r.id);
        assert_eq!(found[0].get::<_, i64>(0), r.id);
    }
}

/// `SELECT $1::type` echoes each value: parameter types are inferred from casts.
#[tokio::test]
async fn binary_parameters_round_trip_through_casts() {
    let server = TestServer::start();
    let client = server.connect().await;

    macro_rules! echo {
        ($ty:literal, $rust:ty, $value:expr) => {{
            let value: $rust = $value;
            let sql = concat!("SELECT $1::", $ty);
            let row = client
                .query_one(sql, &[&value])
                .await
                .unwrap_or_else(|e| panic!("`{sql}` with {value:?}: {e:?}"));
            let back: $rust = row.get(0);
            assert_eq!(back, value, "`{sql}` did not echo its parameter");
        }};
    }
    echo!("boolean", bool, true);
    echo!("smallint", i16, -12345);
    echo!("int", i32, 123_456_789);
    echo!("bigint", i64, -9_000_000_000_000);
    echo!("real", f32, 3.25);
    echo!("double precision", f64, 1.0e100);
    echo!("numeric", Decimal, "-98765.4321".parse().unwrap());
    echo!("text", String, "ünïcödé 🎉".to_string());
    echo!("varchar", String, "v".to_string());
    echo!("bytea", Vec<u8>, vec![0, 255, 10, 13]);
    echo!(
        "date",
        NaiveDate,
        NaiveDate::from_ymd_opt(2000, 2, 29).unwrap()
    );
    echo!(
        "time",
        NaiveTime,
        NaiveTime::from_hms_micro_opt(1, 2, 3, 4).unwrap()
    );
    echo!("timestamp", NaiveDateTime, ts("2038-01-19 03:14:08.5"));
    echo!(
        "timestamptz",
        DateTime<Utc>,
        ts("2001-09-09 01:46:40").and_utc()
    );
    echo!("interval", Interval, Interval::new(1, 2, 3_000_000));
    echo!(
        "json",
        serde_json::Value,
        serde_json::json!({"k": [1, "two"]})
    );
    echo!("int", Option<i32>, None);
    echo!("text", Option<String>, None);
}

/// Describe reports parameter and result column types.
#[tokio::test]
async fn describe_reports_parameter_and_column_types() {
    let server = TestServer::start();
    let client = server.connect().await;
    exec(&client, ALL_TYPES_DDL).await;

    let stmt = client
        .prepare("SELECT id, b, i2, i4, i8, f4, f8, n, t, by, d, tm, ts, tz, iv, j FROM all_types WHERE id = $1 AND t = $2")
        .await
        .expect("prepare");
    assert_eq!(stmt.params(), &[Type::INT8, Type::TEXT]);
    let columns: Vec<(&str, Type)> = stmt
        .columns()
        .iter()
        .map(|c| (c.name(), c.type_().clone()))
        .collect();
    assert_eq!(
        columns,
        vec![
            ("id", Type::INT8),
            ("b", Type::BOOL),
            ("i2", Type::INT2),
            ("i4", Type::INT4),
            ("i8", Type::INT8),
            ("f4", Type::FLOAT4),
            ("f8", Type::FLOAT8),
            ("n", Type::NUMERIC),
            ("t", Type::TEXT),
            ("by", Type::BYTEA),
            ("d", Type::DATE),
            ("tm", Type::TIME),
            ("ts", Type::TIMESTAMP),
            ("tz", Type::TIMESTAMPTZ),
            ("iv", Type::INTERVAL),
            ("j", Type::JSON),
        ]
    );

    // Expressions and aliases.
    let stmt = client
        .prepare(
            "SELECT count(*) AS n, max(ts) AS latest, i4 + 1 AS next FROM all_types GROUP BY i4",
        )
        .await
        .expect("prepare aggregate");
    let columns: Vec<(&str, Type)> = stmt
        .columns()
        .iter()
        .map(|c| (c.name(), c.type_().clone()))
        .collect();
    assert_eq!(columns[0], ("n", Type::INT8));
    assert_eq!(columns[1], ("latest", Type::TIMESTAMP));
    assert_eq!(columns[2].0, "next");

    // Parameters of DML are inferred from the target columns.
    let stmt = client
        .prepare("UPDATE all_types SET f8 = $1 WHERE d = $2")
        .await
        .expect("prepare UPDATE");
    assert_eq!(stmt.params(), &[Type::FLOAT8, Type::DATE]);
    assert!(stmt.columns().is_empty(), "UPDATE returns no rows");

    // Types declared by the client in Parse are honoured.
    let stmt = client
        .prepare_typed("SELECT $1 AS x", &[Type::INT4])
        .await
        .expect("prepare_typed");
    assert_eq!(stmt.params(), &[Type::INT4]);
    let row = client.query_one(&stmt, &[&41i32]).await.expect("execute");
    assert_eq!(stmt.columns()[0].type_(), &Type::INT4);
    assert_eq!(row.get::<_, i32>(0), 41);

    // DDL statements can be prepared too, and describe no rows.
    let stmt = client
        .prepare("CREATE TABLE described (x int)")
        .await
        .expect("prepare DDL");
    assert!(stmt.columns().is_empty());
    client.execute(&stmt, &[]).await.expect("execute DDL");
    assert_eq!(count(&client, "SELECT count(*) FROM described").await, 0);
}

/// Many statements in flight on one connection (tokio-postgres pipelines
/// them) come back in order with the right results.
#[tokio::test]
async fn pipelined_queries_return_in_order() {
    let server = TestServer::start();
    let client = server.connect().await;
    let stmt = client
        .prepare("SELECT $1::bigint * 2")
        .await
        .expect("prepare");
    let futures = (0..200i64).map(|i| {
        let client = &client;
        let stmt = &stmt;
        async move { (i, client.query_one(stmt, &[&i]).await) }
    });
    for (i, result) in futures::future::join_all(futures).await {
        let row = result.unwrap_or_else(|e| panic!("query {i}: {e:?}"));
        assert_eq!(row.get::<_, i64>(0), i * 2);
    }
}

/// A raw protocol connection, for what drivers do not let a test control:
/// which messages go out together, and how the replies arrive.
struct RawConnection {
    stream: std::net::TcpStream,
}

impl RawConnection {
    /// Connects as the bootstrap superuser (trust) and waits for the first
    /// ReadyForQuery.
    fn open(server: &TestServer) -> RawConnection {
        let stream = std::net::TcpStream::connect((server.host(), server.port())).expect("connect");
        // a bound on a test that would otherwise hang, not a timing assertion
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .expect("read timeout");
        let mut conn = RawConnection { stream };
        let mut body = 196_608i32.to_be_bytes().to_vec(); // protocol 3.0
        for field in [
            "user",
            server.options().superuser_name(),
            "database",
            "freshet",
        ] {
            body.extend_from_slice(field.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut startup = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        startup.extend_from_slice(&body);
        conn.write(&startup);
        while conn.next_message().0 != b'Z' {}
        conn
    }

    fn write(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.stream.write_all(bytes).expect("write");
    }

    /// One frontend message: type byte, length, body.
    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    /// What one read of the socket returns (blocking until something
    /// arrives).
    fn read_once(&mut self) -> Vec<u8> {
        use std::io::Read;
        let mut buf = vec![0u8; 1 << 16];
        let n = self.stream.read(&mut buf).expect("read");
        buf.truncate(n);
        buf
    }

    /// The next backend message: its type byte and body.
    fn next_message(&mut self) -> (u8, Vec<u8>) {
        use std::io::Read;
        let mut header = [0u8; 5];
        self.stream.read_exact(&mut header).expect("message header");
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let mut body = vec![0u8; (len - 4) as usize];
        self.stream.read_exact(&mut body).expect("message body");
        (header[0], body)
    }
}

/// The extended protocol's replies are sent when the client asks for them
/// (Sync or Flush), the way PostgreSQL does: a Flush delivers what is
/// pending without ending the pipeline, and Bind/Describe/Execute/Sync sent
/// together are answered with one write (one wake-up of the client rather
/// than one per message).
#[test]
fn extended_replies_go_out_at_flush_and_sync() {
    let server = TestServer::start();
    let mut conn = RawConnection::open(&server);

    // Parse + Describe statement + Flush: answered without a Sync
    let mut parse = b"s1\0SELECT $1::bigint + 1\0".to_vec();
    parse.extend_from_slice(&0i16.to_be_bytes());
    let mut batch = RawConnection::message(b'P', &parse);
    batch.extend(RawConnection::message(b'D', b"Ss1\0"));
    batch.extend(RawConnection::message(b'H', b""));
    conn.write(&batch);
    let kinds: Vec<u8> = (0..3).map(|_| conn.next_message().0).collect();
    assert_eq!(
        kinds, b"1tT",
        "ParseComplete, ParameterDescription, RowDescription"
    );

    // Bind (one text parameter) + Describe portal + Execute + Sync at once
    let mut bind = b"\0s1\0".to_vec();
    bind.extend_from_slice(&0i16.to_be_bytes()); // parameter formats: all text
    bind.extend_from_slice(&1i16.to_be_bytes());
    bind.extend_from_slice(&2i32.to_be_bytes());
    bind.extend_from_slice(b"41");
    bind.extend_from_slice(&0i16.to_be_bytes()); // result formats: all text
    let mut execute = b"\0".to_vec();
    execute.extend_from_slice(&0i32.to_be_bytes());
    let mut batch = RawConnection::message(b'B', &bind);
    batch.extend(RawConnection::message(b'D', b"P\0"));
    batch.extend(RawConnection::message(b'E', &execute));
    batch.extend(RawConnection::message(b'S', b""));
    conn.write(&batch);
    // everything up to ReadyForQuery is in the first read
    let replies = split_messages(&conn.read_once());
    let kinds: Vec<u8> = replies.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, b"2TDCZ");
    let row = &replies[2].1;
    assert_eq!(&row[row.len() - 2..], b"42", "the DataRow holds 41 + 1");
}

/// Backend messages laid end to end in `bytes`: type byte and body each.
fn split_messages(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut messages = Vec::new();
    while bytes.len() >= 5 {
        let len = i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        let end = (1 + len).min(bytes.len());
        messages.push((bytes[0], bytes[5..end].to_vec()));
        bytes = &bytes[end..];
    }
    messages
}

/// Large results stream through portals and arrive complete.
#[tokio::test]
async fn large_results_stream_completely() {
    let server = TestServer::start();
    let client = server.connect().await;
    exec(&client, "CREATE TABLE nums (x bigint)").await;
    let values: Vec<String> = (1..=1000).map(|i| format!("({i})")).collect();
    exec(
        &client,
        &format!("INSERT INTO nums VALUES {}", values.join(",")),
    )
    .await;

    let sql = "SELECT a.x * 1000 + b.x FROM nums a CROSS JOIN nums b WHERE b.x <= 300";
    let stream = client
        .query_raw(sql, std::iter::empty::<&(dyn ToSql + Sync)>())
        .await
        .expect("query_raw");
    pin_mut!(stream);
    let (mut n, mut sum) = (0u64, 0i128);
    while let Some(row) = stream.try_next().await.expect("row") {
        n += 1;
        sum += row.get::<_, i64>(0) as i128;
    }
    assert_eq!(n, 300_000);
    // sum over a in 1..=1000, b in 1..=300 of (1000a + b)
    let expected: i128 = 1000 * (1000 * 1001 / 2) * 300 + 1000 * (300 * 301 / 2);
    assert_eq!(sum, expected);

    // The same through the simple protocol.
    let rows = simple_rows(&client, "SELECT x FROM nums ORDER BY x DESC LIMIT 3").await;
    assert_eq!(
        rows,
        vec![
            vec![Some("1000".to_string())],
            vec![Some("999".to_string())],
            vec![Some("998".to_string())]
        ]
    );
}

#[tokio::test]
async fn explain_mentions_the_scanned_table() {
    let server = TestServer::start();
    let client = server.connect().await;
    exec(&client, "CREATE TABLE logins (id bigint, location text)").await;
    let text = explain(
        &client,
        "SELECT location, count(*) FROM logins GROUP BY location",
    )
    .await;
    assert!(!text.is_empty(), "EXPLAIN returned no rows");
    assert!(
        text.contains("logins"),
        "plan does not mention the table:\n{text}"
    );
    assert!(
        text.to_ascii_lowercase().contains("aggregate"),
        "plan does not mention the aggregation:\n{text}"
    );
}

async fn explain(client: &Client, sql: &str) -> String {
    simple_rows(client, &format!("EXPLAIN {sql}"))
        .await
        .iter()
        .flatten()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join("\n")
}

/// `key = constant` and `key IN (…)` on a PRIMARY KEY or UNIQUE column read
/// through the index (EXPLAIN shows it), prepared statements too; other
/// predicates scan. sql-tests/indexes.slt checks the answers against
/// PostgreSQL.
#[tokio::test]
async fn point_lookups_read_through_unique_indexes() {
    let server = TestServer::start();
    let client = server.connect().await;
    exec(
        &client,
        "CREATE TABLE accounts (id bigint PRIMARY KEY, email text UNIQUE, balance int);
         INSERT INTO accounts SELECT n, 'a' || n, n % 100 FROM generate_series(1, 10000) AS g(n)",
    )
    .await;
    for (sql, index, keys) in [
        ("SELECT * FROM accounts WHERE id = 5", "accounts_pkey", 1),
        (
            "SELECT balance FROM accounts WHERE id IN (1, 2, 3) AND balance > 1",
            "accounts_pkey",
            3,
        ),
        (
            "SELECT id FROM accounts WHERE email = 'a7'",
            "accounts_email_key",
            1,
        ),
    ] {
        let plan = explain(&client, sql).await;
        assert!(
            plan.contains(&format!("IndexLookupExec: index={index}, keys={keys}")),
            "{sql}:\n{plan}"
        );
    }
    for sql in [
        "SELECT * FROM accounts WHERE balance = 5",
        "SELECT * FROM accounts WHERE id > 5",
        "SELECT * FROM accounts WHERE id = balance",
    ] {
        let plan = explain(&client, sql).await;
        assert!(!plan.contains("IndexLookupExec"), "{sql}:\n{plan}");
    }
    // A prepared statement's parameter is a constant by execution time.
    let lookup = client
        .prepare("SELECT email, balance FROM accounts WHERE id = $1")
        .await
        .unwrap();
    for id in [1i64, 777, 10000, 10001] {
        let rows = client.query(&lookup, &[&id]).await.unwrap();
        let found: Vec<(String, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let expected = if id <= 10000 {
            vec![(format!("a{id}"), (id % 100) as i32)]
        } else {
            Vec::new()
        };
        assert_eq!(found, expected, "id {id}");
    }
}

/// A connection to the reference PostgreSQL, when SLT_REFERENCE_URL is set.
async fn reference_client() -> Option<Client> {
    let url = std::env::var("SLT_REFERENCE_URL").ok()?;
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .expect("connect to the reference PostgreSQL");
    tokio::spawn(connection);
    Some(client)
}

/// A connection to `server`, and one to the reference PostgreSQL when
/// SLT_REFERENCE_URL is set.
async fn clients_with_reference(server: &TestServer) -> Vec<(&'static str, Client)> {
    let mut clients = vec![("freshet", server.connect().await)];
    clients.extend(
        reference_client()
            .await
            .map(|client| ("postgresql", client)),
    );
    clients
}

/// Two connections to `server`, and two to the reference PostgreSQL when
/// SLT_REFERENCE_URL is set.
async fn client_pairs(server: &TestServer) -> Vec<(&'static str, Client, Client)> {
    let mut pairs = vec![("freshet", server.connect().await, server.connect().await)];
    if let (Some(first), Some(second)) = (reference_client().await, reference_client().await) {
        pairs.push(("postgresql", first, second));
    }
    pairs
}

/// The first column of the rows `statement` returns for `params`.
async fn first_column<T>(
    client: &Client,
    statement: &tokio_postgres::Statement,
    params: &[&(dyn ToSql + Sync)],
) -> Vec<T>
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    client
        .query(statement, params)
        .await
        .unwrap_or_else(|e| panic!("{params:?}: {e:?}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// A prepared point lookup through a unique index (which Freshet executes
/// without planning) answers what the statement means at each execution:
/// after other sessions' writes, its own transaction's writes and rollback,
/// a NULL or a narrower parameter, the table dropped and created again, a
/// column added, and `search_path` naming another table. Checked against
/// PostgreSQL too when SLT_REFERENCE_URL is set.
#[tokio::test]
async fn prepared_point_lookups_follow_the_table() {
    let server = TestServer::start();
    for (name, client, other) in client_pairs(&server).await {
        exec(
            &client,
            "DROP TABLE IF EXISTS pl_accounts; DROP TABLE IF EXISTS pl_pairs;
             DROP SCHEMA IF EXISTS pl_other CASCADE;
             CREATE TABLE pl_accounts (id bigint PRIMARY KEY, email text UNIQUE, n int);
             INSERT INTO pl_accounts SELECT g, 'a' || g, g % 7 FROM generate_series(1, 1000) AS t(g);
             CREATE TABLE pl_pairs (a int, b text, v int, PRIMARY KEY (a, b));
             INSERT INTO pl_pairs VALUES (1, 'x', 10), (1, 'y', 11), (2, 'x', 20)",
        )
        .await;
        let by_id = client
            .prepare("SELECT email, n FROM pl_accounts WHERE id = $1")
            .await
            .unwrap();
        let lookup = |id: Option<i64>| {
            let (client, by_id) = (&client, &by_id);
            async move {
                client
                    .query(by_id, &[&id])
                    .await
                    .unwrap_or_else(|e| panic!("{name}: lookup {id:?}: {e:?}"))
                    .iter()
                    .map(|r| (r.get::<_, String>(0), r.get::<_, i32>(1)))
                    .collect::<Vec<_>>()
            }
        };
        let row = |email: &str, n: i32| vec![(email.to_string(), n)];
        assert_eq!(lookup(Some(5)).await, row("a5", 5), "{name}");
        assert_eq!(lookup(Some(5000)).await, vec![], "{name}");
        assert_eq!(lookup(None).await, vec![], "{name}");

        // Other sessions' committed writes.
        exec(&other, "DELETE FROM pl_accounts WHERE id = 6").await;
        assert_eq!(lookup(Some(6)).await, vec![], "{name}");
        exec(&other, "INSERT INTO pl_accounts VALUES (6, 'new6', 60)").await;
        assert_eq!(lookup(Some(6)).await, row("new6", 60), "{name}");
        exec(&other, "UPDATE pl_accounts SET n = 70 WHERE id = 7").await;
        assert_eq!(lookup(Some(7)).await, row("a7", 70), "{name}");

        // The transaction's own writes, then its rollback.
        exec(&client, "BEGIN").await;
        exec(&client, "UPDATE pl_accounts SET n = -1 WHERE id = 5").await;
        exec(&client, "INSERT INTO pl_accounts VALUES (5001, 'a5001', 1)").await;
        assert_eq!(lookup(Some(5)).await, row("a5", -1), "{name}");
        assert_eq!(lookup(Some(5001)).await, row("a5001", 1), "{name}");
        exec(&client, "ROLLBACK").await;
        assert_eq!(lookup(Some(5)).await, row("a5", 5), "{name}");
        assert_eq!(lookup(Some(5001)).await, vec![], "{name}");

        // A unique text key, a composite key written in another order, and
        // a parameter narrower than the key.
        let by_email = client
            .prepare("SELECT id FROM pl_accounts WHERE email = $1")
            .await
            .unwrap();
        for (email, expected) in [("a9", vec![9i64]), ("A9", vec![]), ("a9 ", vec![])] {
            let found: Vec<i64> = first_column(&client, &by_email, &[&email]).await;
            assert_eq!(found, expected, "{name}: email {email:?}");
        }
        let by_pair = client
            .prepare("SELECT v FROM pl_pairs WHERE b = $2 AND a = $1")
            .await
            .unwrap();
        for (a, b, expected) in [
            (1i32, "y", vec![11i32]),
            (2, "y", vec![]),
            (2, "x", vec![20]),
        ] {
            let found: Vec<i32> = first_column(&client, &by_pair, &[&a, &b]).await;
            assert_eq!(found, expected, "{name}: pair ({a}, {b})");
        }
        let narrow = client
            .prepare_typed("SELECT email FROM pl_accounts WHERE id = $1", &[Type::INT4])
            .await
            .unwrap();
        let found: Vec<String> = first_column(&client, &narrow, &[&8i32]).await;
        assert_eq!(found, vec!["a8".to_string()], "{name}");

        // A column added, then the table dropped and created again.
        exec(&other, "ALTER TABLE pl_accounts ADD COLUMN extra int").await;
        assert_eq!(lookup(Some(5)).await, row("a5", 5), "{name}");
        exec(
            &other,
            "DROP TABLE pl_accounts;
             CREATE TABLE pl_accounts (id bigint PRIMARY KEY, email text UNIQUE, n int);
             INSERT INTO pl_accounts VALUES (5, 'again5', 55)",
        )
        .await;
        assert_eq!(lookup(Some(5)).await, row("again5", 55), "{name}");
        assert_eq!(lookup(Some(6)).await, vec![], "{name}");

        // Another schema's table of the same name, first on search_path.
        exec(
            &client,
            "CREATE SCHEMA pl_other;
             CREATE TABLE pl_other.pl_accounts (id bigint PRIMARY KEY, email text, n int);
             INSERT INTO pl_other.pl_accounts VALUES (5, 'other5', 500);
             SET search_path = pl_other, public",
        )
        .await;
        assert_eq!(lookup(Some(5)).await, row("other5", 500), "{name}");
        exec(&client, "SET search_path = public").await;
        assert_eq!(lookup(Some(5)).await, row("again5", 55), "{name}");
        exec(
            &client,
            "DROP SCHEMA pl_other CASCADE; DROP TABLE pl_accounts; DROP TABLE pl_pairs",
        )
        .await;
    }
}

/// Describe of a prepared statement that returns no rows answers
/// ParameterDescription then NoData, with parameters or without (pgjdbc's
/// batches miscount rows after an empty RowDescription); statements that
/// return rows answer RowDescription. Checked against PostgreSQL too when
/// SLT_REFERENCE_URL is set.
#[tokio::test]
async fn describe_of_a_write_without_returning_is_no_data() {
    let server = TestServer::start();
    let mut servers = vec![("freshet", Raw::open(&server))];
    servers.extend(Raw::reference().map(|raw| ("postgresql", raw)));
    for (name, mut raw) in servers {
        raw.send(
            b'Q',
            b"DROP TABLE IF EXISTS describe_nodata; CREATE TABLE describe_nodata (id int, v text)\0",
        );
        let (_, error) = raw.until_ready();
        assert!(error.is_none(), "{name}: {error:?}");
        let cases: [(&str, &[u8]); 5] = [
            ("INSERT INTO describe_nodata VALUES ($1, $2)", b"1tnZ"),
            ("UPDATE describe_nodata SET v = $1 WHERE id = $2", b"1tnZ"),
            ("DELETE FROM describe_nodata", b"1tnZ"),
            (
                "INSERT INTO describe_nodata VALUES ($1, 'x') RETURNING id",
                b"1tTZ",
            ),
            ("SELECT v FROM describe_nodata WHERE id = $1", b"1tTZ"),
        ];
        for (sql, expected) in cases {
            let mut parse = b"\0".to_vec();
            parse.extend_from_slice(sql.as_bytes());
            parse.extend_from_slice(b"\0\0\0");
            raw.send(b'P', &parse);
            raw.send(b'D', b"S\0");
            raw.send(b'S', b"");
            let (kinds, error) = raw.until_ready();
            assert!(error.is_none(), "{name}: {sql}: {error:?}");
            assert_eq!(
                String::from_utf8_lossy(&kinds),
                String::from_utf8_lossy(expected),
                "{name}: {sql}"
            );
        }
        raw.send(b'Q', b"DROP TABLE describe_nodata\0");
        assert!(raw.until_ready().1.is_none(), "{name}: drop");
    }
}

// ---------------------------------------------------------------- COPY

/// Runs COPY ... TO STDOUT and returns its data, checking the framing too:
/// PostgreSQL sends exactly one CopyData message per row, and clients rely on
/// it (psycopg's `Copy.rows()` parses one row per message).
async fn copy_out(client: &Client, sql: &str) -> String {
    let stream = client
        .copy_out(sql)
        .await
        .unwrap_or_else(|e| panic!("`{sql}`: {e:?}"));
    pin_mut!(stream);
    let mut out = Vec::new();
    let mut messages = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap_or_else(|e| panic!("`{sql}` data: {e:?}"));
        messages.push(String::from_utf8_lossy(&chunk).into_owned());
        out.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(out).expect("COPY output is UTF-8");
    // Count records, not lines: a CSV field may contain a quoted newline.
    let is_csv = sql.to_ascii_lowercase().contains("csv");
    if !is_csv {
        assert_eq!(
            messages.len(),
            text.lines().count(),
            "`{sql}`: expected one CopyData message per row, got {messages:?}"
        );
    }
    for m in &messages {
        assert!(
            m.ends_with('\n'),
            "`{sql}`: CopyData message {m:?} is not a whole row"
        );
    }
    text
}

#[tokio::test]
async fn copy_from_stdin_text_format() {
    let server = TestServer::start();
    let client = server.connect().await;
    exec(
        &client,
        "CREATE TABLE t (id bigint NOT NULL, name text, at timestamp, ok boolean, amount numeric(8,2))",
    )
    .await;
    // Rows split across chunks at awkward places, escapes, NULLs and an empty string.
    let n = copy_in(
        &client,
        "COPY t FROM STDIN",
        &[
            b"1\tone\t2024-01-01 10:00:00\tt\t1.50\n2\ttab\\there",
            b"\t2024-01-02 11:00:00\tf\t-2.00\n3\t\\N\t\\N\t\\N\t\\N\n",
            b"4\t\t2024-01-04 00:00:00\ttrue\t0\n5\tback\\\\slash\\nnewline\t2024-01-05 00:00:00\tfalse\t9.99\n",
        ],
    )
    .await
    .expect("COPY FROM STDIN");
    assert_eq!(n, 5);
    let rows = simple_rows(
        &client,
        "SELECT id, name, at, ok, amount FROM t ORDER BY id",
    )
    .await;
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        rows,
        vec![
            vec![
                s("1"),
                s("one"),
                s("2024-01-01 10:00:00"),
                s("t"),
                s("1.50")
            ],
            vec![
                s("2"),
                s("tab\there"),
                s("2024-01-02 11:00:00"),
                s("f"),
                s("-2.00")
            ],
            vec![s("3"), None, None, None, None],
            vec![s("4"), s(""), s("2024-01-04 00:00:00"), s("t"), s("0.00")],
            vec![
                s("5"),
                s("back\\slash\nnewline"),
                s("2024-01-05 00:00:00"),
                s("f"),
                s("9.99")
            ],
        ]
    );

    // A column list; the others get their defaults / NULL.
    let n = copy_in(&client, "COPY t (name, id) FROM STDIN", &[b"six\t6\n"])
        .await
        .expect("COPY with a column list");
    assert_eq!(n, 1);
    assert_eq!(
        simple_rows(&client, "SELECT name, at FROM t WHERE id = 6").await,
        vec![vec![s("six"), None]]
    );

    // Bad data fails the whole COPY with 22P02 and inserts nothing.
    let err = copy_in(
        &client,
        "COPY t FROM STDIN",
        &[b"7\tok\t\\N\t\\N\t\\N\nnot-a-number\tx\t\\N\t\\N\t\\N\n"],
    )
    .await
    .expect_err("bad bigint must fail the COPY");
    assert_eq!(sqlstate(&err), "22P02", "{err:?}");
    // Too few columns: 22P04 (bad copy file format).
    let err = copy_in(&client, "COPY t FROM STDIN", &[b"8\tonly two\n"])
        .await
        .expect_err("short row must fail the COPY");
    assert_eq!(sqlstate(&err), "22P04", "{err:?}");
    // NOT NULL is enforced.
    let err = copy_in(
        &client,
        "COPY t FROM STDIN",
        &[b"\\N\tnull id\t\\N\t\\N\t\\N\n"],
    )
    .await
    .expect_err("NULL into NOT NULL must fail the COPY");
    assert_eq!(sqlstate(&err), "23502", "{err:?}");
    assert_eq!(count(&client, "SELECT count(*) FROM t").await, 6);

    // Unknown table. (On its own connection: tokio-postgres loses track of the
    // protocol after a COPY that fails at Parse, against PostgreSQL too.)
    let other = server.connect().await;
    let err = copy_in(&other, "COPY nope FROM STDIN", &[])
        .await
        .expect_err("unknown table");
    assert_eq!(sqlstate(&err), "42P01", "{err:?}");

    // The connection is healthy after the failures.
    assert_eq!(
        count(&client, "SELECT count(*) FROM t WHERE id <= 6").await,
        6
    );
}

/// COPY reads dates as a cast does (PostgreSQL 15 answers the same, checked
/// by hand): text after the day is 22007, not the 3rd; a day that does not
/// exist is 22008; unpadded fields and a time of day are accepted.
#[tokio::test]
async fn copy_refuses_dates_with_trailing_garbage() {
    let server = TestServer::start();
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE d (id int, day date)")
        .await
        .expect("create");
    let err = copy_in(
        &client,
        "COPY d FROM STDIN",
        &[b"1\t2024-02-01\n2\t2024-02-3x\n"],
    )
    .await
    .expect_err("trailing garbage must fail the COPY");
    assert_eq!(sqlstate(&err), "22007", "{err:?}");
    let err = copy_in(&client, "COPY d FROM STDIN", &[b"3\t2024-02-30\n"])
        .await
        .expect_err("February 30th must fail the COPY");
    assert_eq!(sqlstate(&err), "22008", "{err:?}");
    let n = copy_in(
        &client,
        "COPY d FROM STDIN",
        &[b"4\t2024-2-3\n5\t2024-02-04 10:30:00\n"],
    )
    .await
    .expect("valid dates");
    assert_eq!(n, 2);
    let rows = client
        .query("SELECT id, day::text FROM d ORDER BY id", &[])
        .await
        .expect("select");
    let got: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        vec![(4, "2024-02-03".to_string()), (5, "2024-02-04".to_string())]
    );
}

#[tokio::test]
async fn copy_from_stdin_csv_with_options() {
    let server = TestServer::start();
    let client = server.connect().await;
    exec(&client, "CREATE TABLE c (id int, name text, note text)").await;

    let n = copy_in(
        &client,
        "COPY c FROM STDIN WITH (FORMAT csv, HEADER true)",
        &[b"id,name,note\n1,plain,x\n2,\"with, comma\",\"multi\nline\"\n3,,\"\"\n4,\"say \"\"hi\"\"\",z\n"],
    )
    .await
    .expect("CSV COPY with HEADER");
    assert_eq!(n, 4);
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        simple_rows(&client, "SELECT id, name, note FROM c ORDER BY id").await,
        vec![
            vec![s("1"), s("plain"), s("x")],
            vec![s("2"), s("with, comma"), s("multi\nline")],
            // Unquoted empty = NULL in CSV; quoted empty = empty string.
            vec![s("3"), None, s("")],
            vec![s("4"), s("say \"hi\""), s("z")],
        ]
    );

    exec(&client, "TRUNCATE c").await;
    let n = copy_in(
        &client,
        "COPY c (id, name, note) FROM STDIN WITH (FORMAT csv, DELIMITER ';', NULL 'NA')",
        &[b"10;ten;NA\n11;NA;\"NA\"\n", b"12;twelve;\n"],
    )
    .await
    .expect("CSV COPY with DELIMITER and NULL");
    assert_eq!(n, 3);
    assert_eq!(
        simple_rows(&client, "SELECT id, name, note FROM c ORDER BY id").await,
        vec![
            vec![s("10"), s("ten"), None],
            // A quoted NULL marker is a string.
            vec![s("11"), None, s("NA")],
            // With NULL 'NA', an unquoted empty field is an empty string.
            vec![s("12"), s("twelve"), s("")],
        ]
    );

    // Legacy option syntax.
    exec(&client, "TRUNCATE c").await;
    let n = copy_in(
        &client,
        "COPY c FROM STDIN WITH CSV HEADER DELIMITER '|'",
        &[b"id|name|note\n20|a|b\n"],
    )
    .await
    .expect("CSV COPY with legacy options");
    assert_eq!(n, 1);
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM c WHERE id = 20 AND name = 'a'"
        )
        .await,
        1
    );

    // Text format with its own delimiter and NULL marker.
    exec(&client, "TRUNCATE c").await;
    let n = copy_in(
        &client,
        "COPY c FROM STDIN WITH (DELIMITER ',', NULL '')",
        &[b"30,x,\n31,,y\n"],
    )
    .await
    .expect("text COPY with DELIMITER and NULL");
    assert_eq!(n, 2);
    assert_eq!(
        simple_rows(&client, "SELECT id, name, note FROM c ORDER BY id").await,
        vec![vec![s("30"), s("x"), None], vec![s("31"), None, s("y")]]
    );
}

#[tokio::test]
async fn copy_to_stdout() {
    let server = TestServer::start();
    let client = server.connect().await;
    exec(
        &client,
        "CREATE TABLE o (id int, name text, at date);
         INSERT INTO o VALUES (1, 'one', '2024-01-01'), (2, NULL, NULL), (3, 'a,b \"q\"', '2024-03-03'), (4, 'tab\there', NULL)",
    )
    .await;

    let text = copy_out(&client, "COPY (SELECT * FROM o ORDER BY id) TO STDOUT").await;
    assert_eq!(
        text,
        "1\tone\t2024-01-01\n2\t\\N\t\\N\n3\ta,b \"q\"\t2024-03-03\n4\ttab\\there\t\\N\n"
    );

    let csv = copy_out(
        &client,
        "COPY (SELECT id, name FROM o ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER true)",
    )
    .await;
    assert_eq!(
        csv,
        "id,name\n1,one\n2,\n3,\"a,b \"\"q\"\"\"\n4,tab\there\n"
    );

    let csv = copy_out(
        &client,
        "COPY (SELECT id, name FROM o WHERE id <= 2 ORDER BY id) TO STDOUT WITH (FORMAT csv, DELIMITER ';', NULL 'NULL')",
    )
    .await;
    assert_eq!(csv, "1;one\n2;NULL\n");

    // A whole table (row order unspecified).
    let table = copy_out(&client, "COPY o TO STDOUT").await;
    let mut lines: Vec<&str> = table.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0], "1\tone\t2024-01-01");

    // Round trip: COPY out, COPY back in, same rows.
    exec(&client, "CREATE TABLE o2 (id int, name text, at date)").await;
    let n = copy_in(&client, "COPY o2 FROM STDIN", &[table.as_bytes()])
        .await
        .expect("COPY the output back in");
    assert_eq!(n, 4);
    let a = simple_rows(&client, "SELECT * FROM o ORDER BY id").await;
    let b = simple_rows(&client, "SELECT * FROM o2 ORDER BY id").await;
    assert_eq!(a, b);
}

// ---------------------------------------------------------------- cancellation

#[tokio::test]
async fn cancel_request_stops_a_long_query() {
    const ROWS: i64 = 5000;
    let server = TestServer::start();
    let client = server.connect().await;
    exec(&client, "CREATE TABLE c (x int)").await;
    let values: Vec<String> = (0..ROWS).map(|i| format!("({i})")).collect();
    exec(
        &client,
        &format!("INSERT INTO c VALUES {}", values.join(",")),
    )
    .await;

    // 1.25e11 combinations: minutes of work even for a vectorized nested-loop
    // join (2.7e10 took DataFusion about 20 s on 2 cores).
    let long = "SELECT count(*) FROM c a, c b, c d WHERE a.x + b.x + d.x = -1";
    let token = client.cancel_token();
    let query = client.query_one(long, &[]);
    pin_mut!(query);

    // Keep sending CancelRequests until the query ends: a request that arrives
    // before the query started executing is allowed to have no effect.
    let deadline = Instant::now() + Duration::from_secs(120);
    let result = loop {
        tokio::select! {
            r = &mut query => break r,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                token.cancel_query(NoTls).await.unwrap_or_else(|e| panic!(
                    "could not deliver a CancelRequest (the server accepted no new \
                     connection while the query ran?): {e:?}"
                ));
                assert!(Instant::now() < deadline, "query was not cancelled within 120 s");
            }
        }
    };
    match result {
        Ok(row) => panic!("the query finished instead of being cancelled: {row:?}"),
        Err(e) => assert_eq!(sqlstate(&e), "57014", "{e:?}"),
    }

    // The connection stays usable.
    assert_eq!(count(&client, "SELECT count(*) FROM c").await, ROWS);

    // The simple protocol can be cancelled too.
    let query = client.simple_query(long);
    pin_mut!(query);
    let deadline = Instant::now() + Duration::from_secs(120);
    let result = loop {
        tokio::select! {
            r = &mut query => break r,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                token.cancel_query(NoTls).await.unwrap_or_else(|e| panic!(
                    "could not deliver a CancelRequest (the server accepted no new \
                     connection while the query ran?): {e:?}"
                ));
                assert!(Instant::now() < deadline, "simple query was not cancelled within 120 s");
            }
        }
    };
    let err = result.expect_err("the simple query finished instead of being cancelled");
    assert_eq!(sqlstate(&err), "57014", "{err:?}");
    assert_eq!(count(&client, "SELECT count(*) FROM c").await, ROWS);
}

async fn show_timeout(client: &Client) -> Option<String> {
    simple_rows(client, "SHOW statement_timeout").await[0][0].clone()
}

/// `SET statement_timeout` cancels a statement that runs longer, with
/// PostgreSQL's 57014 and message, in both protocols; values are read and
/// shown as PostgreSQL reads and shows them. Checked against PostgreSQL too
/// when SLT_REFERENCE_URL is set.
#[tokio::test]
async fn statement_timeout_cancels_long_statements() {
    let server = TestServer::start();
    let clients = clients_with_reference(&server).await;
    // 10^10 pairs: far longer than the timeout in either server.
    let long = "SELECT count(*) FROM generate_series(1, 100000) AS a(x), \
                generate_series(1, 100000) AS b(y) WHERE a.x + b.y = -1";
    for (name, client) in &clients {
        assert_eq!(show_timeout(client).await.as_deref(), Some("0"), "{name}");
        for (value, shown) in [
            ("1500", "1500ms"),
            ("'1.5s'", "1500ms"),
            ("'120s'", "2min"),
            ("'1h'", "1h"),
            ("0", "0"),
        ] {
            exec(client, &format!("SET statement_timeout = {value}")).await;
            assert_eq!(
                show_timeout(client).await.as_deref(),
                Some(shown),
                "{name}: {value}"
            );
        }
        for bad in ["'abc'", "'5 fortnights'", "-1"] {
            let err = client
                .batch_execute(&format!("SET statement_timeout = {bad}"))
                .await
                .expect_err("an invalid value is refused");
            assert_eq!(sqlstate(&err), "22023", "{name}: {bad}: {err:?}");
        }

        exec(client, "SET statement_timeout = '200ms'").await;
        let err = client
            .query_one(long, &[])
            .await
            .expect_err("the statement runs past its timeout");
        assert_eq!(sqlstate(&err), "57014", "{name}: {err:?}");
        let message = err.as_db_error().map(|e| e.message().to_string());
        assert_eq!(
            message.as_deref(),
            Some("canceling statement due to statement timeout"),
            "{name}"
        );
        let err = client
            .simple_query(long)
            .await
            .expect_err("the simple-protocol statement runs past its timeout");
        assert_eq!(sqlstate(&err), "57014", "{name}: {err:?}");
        // Short statements run, and the session stays usable.
        assert_eq!(
            count(client, "SELECT count(*) FROM generate_series(1, 10)").await,
            10
        );
        exec(client, "SET statement_timeout = 0").await;
        assert_eq!(show_timeout(client).await.as_deref(), Some("0"), "{name}");
    }
}

/// `ALTER ROLE name SET parameter = value` gives the role's new sessions
/// that setting (before their own SETs), `pg_roles.rolconfig` lists the
/// defaults in the order they were set, and `RESET` takes them away. A role
/// may change its own defaults, not another's (42501); a bad value is
/// refused when given (22023). Checked against PostgreSQL too when
/// SLT_REFERENCE_URL is set.
#[tokio::test]
async fn role_defaults_apply_to_new_sessions() {
    let server = TestServer::start();
    let mut targets = vec![("freshet", server.connect().await, server.config())];
    if let Ok(url) = std::env::var("SLT_REFERENCE_URL") {
        let mut config: tokio_postgres::Config = url.parse().expect("SLT_REFERENCE_URL");
        // Other roles log in to the administrator's database.
        let database = config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or("postgres")
            .to_owned();
        config.dbname(&database);
        let client = common::connect_config(&config)
            .await
            .expect("connect to the reference PostgreSQL");
        targets.push(("postgresql", client, config));
    }
    for (name, admin, config) in targets {
        exec(
            &admin,
            "DROP USER IF EXISTS rd_alice; DROP USER IF EXISTS rd_bob; \
             CREATE USER rd_alice PASSWORD 'pw'; CREATE USER rd_bob PASSWORD 'pw'",
        )
        .await;
        let login = |user: &str| {
            let mut config = config.clone();
            config.user(user).password("pw");
            config
        };
        exec(&admin, "ALTER ROLE rd_alice SET statement_timeout = '5s'").await;
        exec(&admin, "ALTER USER rd_alice SET search_path TO app, public").await;
        exec(&admin, "ALTER ROLE rd_alice SET statement_timeout TO '7s'").await;
        assert_eq!(
            config_of(&admin).await,
            Some(vec![
                "statement_timeout=7s".to_owned(),
                "search_path=app, public".to_owned()
            ]),
            "{name}"
        );
        let alice = common::connect_config(&login("rd_alice"))
            .await
            .expect("alice connects");
        assert_eq!(show_timeout(&alice).await.as_deref(), Some("7s"), "{name}");
        assert_eq!(
            simple_rows(&alice, "SHOW search_path").await[0][0].as_deref(),
            Some("app, public"),
            "{name}"
        );
        // Her own SET still wins for the session.
        exec(&alice, "SET statement_timeout = '1s'").await;
        assert_eq!(show_timeout(&alice).await.as_deref(), Some("1s"), "{name}");
        // Her own defaults she may change; bob may not change hers.
        exec(&alice, "ALTER ROLE rd_alice RESET search_path").await;
        let bob = common::connect_config(&login("rd_bob"))
            .await
            .expect("bob connects");
        let err = bob
            .batch_execute("ALTER ROLE rd_alice SET statement_timeout = '1h'")
            .await
            .expect_err("bob may not change alice's defaults");
        assert_eq!(sqlstate(&err), "42501", "{name}: {err:?}");
        let err = admin
            .batch_execute("ALTER ROLE rd_alice SET statement_timeout = 'soon'")
            .await
            .expect_err("a bad value is refused when given");
        assert_eq!(sqlstate(&err), "22023", "{name}: {err:?}");
        assert_eq!(
            config_of(&admin).await,
            Some(vec!["statement_timeout=7s".to_owned()]),
            "{name}"
        );
        exec(&admin, "ALTER ROLE rd_alice RESET ALL").await;
        assert_eq!(config_of(&admin).await, None, "{name}");
        let again = common::connect_config(&login("rd_alice"))
            .await
            .expect("alice connects again");
        assert_eq!(show_timeout(&again).await.as_deref(), Some("0"), "{name}");
        drop((alice, bob, again));
        exec(&admin, "DROP USER rd_alice; DROP USER rd_bob").await;
    }
}

/// `rd_alice`'s defaults, as `pg_roles.rolconfig` lists them.
async fn config_of(client: &Client) -> Option<Vec<String>> {
    client
        .query_one(
            "SELECT rolconfig FROM pg_roles WHERE rolname = 'rd_alice'",
            &[],
        )
        .await
        .expect("pg_roles")
        .get(0)
}

/// The state and statement of session `pid` in pg_stat_activity, if listed.
async fn activity_of(client: &Client, pid: i32) -> Option<(Option<String>, Option<String>)> {
    client
        .query_opt(
            "SELECT state, query FROM pg_stat_activity WHERE pid = $1",
            &[&pid],
        )
        .await
        .expect("pg_stat_activity")
        .map(|row| (row.get(0), row.get(1)))
}

/// Polls pg_stat_activity (as `watcher`) until `check` holds for session
/// `pid`'s row, or fails after 30 s.
async fn wait_for_activity(
    watcher: &Client,
    pid: i32,
    what: &str,
    check: impl Fn(&Option<(Option<String>, Option<String>)>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = activity_of(watcher, pid).await;
        if check(&row) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: last row {row:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// pg_stat_activity lists the sessions with their state and statement,
/// pg_backend_pid() is the session's own pid, pg_cancel_backend stops
/// another session's running statement (57014) and pg_terminate_backend
/// ends its connection, as in PostgreSQL (checked against it too when
/// SLT_REFERENCE_URL is set).
#[tokio::test]
async fn pg_stat_activity_lists_sessions_and_signals_them() {
    let server = TestServer::start();
    let long = "SELECT count(*) FROM generate_series(1, 100000) AS a(x), \
                generate_series(1, 100000) AS b(y) WHERE a.x + b.y = -1";
    for (name, watcher, worker) in client_pairs(&server).await {
        let pid: i32 = worker
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .expect("pg_backend_pid")
            .get(0);
        let own: i32 = watcher
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .expect("pg_backend_pid")
            .get(0);
        assert_ne!(pid, own, "{name}: two sessions, two pids");
        // The worker waits, its last statement shown; the watcher's own row
        // is the statement it is running.
        assert_eq!(
            activity_of(&watcher, pid).await,
            Some((
                Some("idle".to_owned()),
                Some("SELECT pg_backend_pid()".to_owned())
            )),
            "{name}"
        );
        let row = watcher
            .query_one(
                "SELECT state, query, usename = current_user, backend_start <= now() \
                 FROM pg_stat_activity WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .expect("own row");
        assert_eq!(
            row.get::<_, Option<String>>(0).as_deref(),
            Some("active"),
            "{name}"
        );
        assert!(
            row.get::<_, Option<String>>(1)
                .is_some_and(|q| q.contains("FROM pg_stat_activity WHERE pid = pg_backend_pid()")),
            "{name}"
        );
        assert_eq!(row.get::<_, Option<bool>>(2), Some(true), "{name}");
        assert_eq!(row.get::<_, Option<bool>>(3), Some(true), "{name}");

        // Cancel a running statement from the other session.
        let worker = Arc::new(worker);
        let running = {
            let worker = worker.clone();
            tokio::spawn(async move { worker.simple_query(long).await.map(|_| ()) })
        };
        wait_for_activity(&watcher, pid, "the long statement shows as active", |row| {
            matches!(row, Some((Some(state), Some(query))) if state == "active" && query == long)
        })
        .await;
        let cancelled: bool = watcher
            .query_one("SELECT pg_cancel_backend($1::int)", &[&pid])
            .await
            .expect("pg_cancel_backend")
            .get(0);
        assert!(cancelled, "{name}");
        let err = running
            .await
            .expect("join")
            .expect_err("the statement was cancelled");
        assert_eq!(sqlstate(&err), "57014", "{name}: {err:?}");
        wait_for_activity(
            &watcher,
            pid,
            "idle after the cancel",
            |row| matches!(row, Some((Some(state), _)) if state == "idle"),
        )
        .await;
        // No such session: false.
        let found: bool = watcher
            .query_one("SELECT pg_cancel_backend(2147483647)", &[])
            .await
            .expect("pg_cancel_backend of no session")
            .get(0);
        assert!(!found, "{name}");

        // Terminate the worker: its connection ends and leaves the list.
        let terminated: bool = watcher
            .query_one("SELECT pg_terminate_backend($1::int)", &[&pid])
            .await
            .expect("pg_terminate_backend")
            .get(0);
        assert!(terminated, "{name}");
        wait_for_activity(&watcher, pid, "the terminated session is gone", |row| {
            row.is_none()
        })
        .await;
        assert!(
            worker.simple_query("SELECT 1").await.is_err(),
            "{name}: the terminated connection still answers"
        );
    }
}

/// Another user's sessions are listed without their statements, and only a
/// superuser (or the session's own user) may signal a session.
#[tokio::test]
async fn pg_stat_activity_hides_and_protects_other_users_sessions() {
    let server = TestServer::start();
    let admin = server.connect().await;
    exec(&admin, "CREATE USER psa_alice PASSWORD 'pw'").await;
    let mut alice = server.config();
    alice.user("psa_alice").password("pw");
    let alice = server.try_connect(&alice).await.expect("alice connects");
    let admin_pid: i32 = admin
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    let alice_pid: i32 = alice
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    assert_eq!(
        activity_of(&alice, admin_pid).await,
        Some((None, Some("<insufficient privilege>".to_owned())))
    );
    // The superuser sees alice's last statement (her look at the list).
    assert_eq!(
        activity_of(&admin, alice_pid).await,
        Some((
            Some("idle".to_owned()),
            Some("SELECT state, query FROM pg_stat_activity WHERE pid = $1".to_owned())
        ))
    );
    for function in ["pg_cancel_backend", "pg_terminate_backend"] {
        let err = alice
            .query_one(&format!("SELECT {function}($1::int)"), &[&admin_pid])
            .await
            .expect_err("alice may not signal the superuser's session");
        assert_eq!(sqlstate(&err), "42501", "{function}: {err:?}");
    }
    // A session of her own she may signal.
    let mut second = server.config();
    second.user("psa_alice").password("pw");
    let second = server.try_connect(&second).await.expect("alice again");
    let second_pid: i32 = second
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    let terminated: bool = alice
        .query_one("SELECT pg_terminate_backend($1::int)", &[&second_pid])
        .await
        .expect("alice terminates her own session")
        .get(0);
    assert!(terminated);
    wait_for_activity(
        &admin,
        second_pid,
        "alice's second session is gone",
        |row| row.is_none(),
    )
    .await;
}

// ---------------------------------------------------------------- transactions

#[tokio::test]
async fn transactions_commit_and_rollback() {
    let server = TestServer::start();
    let mut client = server.connect().await;
    let other = server.connect().await;
    exec(
        &client,
        "CREATE TABLE acct (id int NOT NULL, balance bigint)",
    )
    .await;
    exec(&client, "INSERT INTO acct VALUES (1, 100), (2, 0)").await;

    // Committed transfer.
    let tx = client.transaction().await.expect("BEGIN");
    tx.execute(
        "UPDATE acct SET balance = balance - $1 WHERE id = 1",
        &[&40i64],
    )
    .await
    .unwrap();
    tx.execute(
        "UPDATE acct SET balance = balance + $1 WHERE id = 2",
        &[&40i64],
    )
    .await
    .unwrap();
    assert_eq!(
        count(&other, "SELECT balance FROM acct WHERE id = 2").await,
        0
    );
    tx.commit().await.expect("COMMIT");
    assert_eq!(
        count(&other, "SELECT balance FROM acct WHERE id = 2").await,
        40
    );

    // Explicit rollback discards every write.
    let tx = client.transaction().await.expect("BEGIN");
    tx.execute("INSERT INTO acct VALUES (3, 3)", &[])
        .await
        .unwrap();
    tx.execute("DELETE FROM acct WHERE id = 1", &[])
        .await
        .unwrap();
    tx.execute("UPDATE acct SET balance = -1", &[])
        .await
        .unwrap();
    assert_eq!(count(&tx, "SELECT count(*) FROM acct").await, 2);
    tx.rollback().await.expect("ROLLBACK");
    assert_eq!(
        simple_rows(&client, "SELECT id, balance FROM acct ORDER BY id").await,
        vec![
            vec![Some("1".into()), Some("60".into())],
            vec![Some("2".into()), Some("40".into())]
        ]
    );

    // Dropping a Transaction rolls it back.
    {
        let tx = client.transaction().await.expect("BEGIN");
        tx.execute("INSERT INTO acct VALUES (4, 4)", &[])
            .await
            .unwrap();
    }
    assert_eq!(count(&client, "SELECT count(*) FROM acct").await, 2);

    // A failed statement aborts the block: 25P02 until ROLLBACK, and COMMIT
    // then rolls back (ReadyForQuery status 'E' → 'I').
    exec(&client, "BEGIN").await;
    exec(&client, "INSERT INTO acct VALUES (5, 5)").await;
    assert_sqlstate(
        client.query("SELECT * FROM missing", &[]).await,
        "42P01",
        "SELECT * FROM missing",
    );
    assert_sqlstate(
        client.query("SELECT 1", &[]).await,
        "25P02",
        "SELECT 1 (extended, aborted)",
    );
    assert_sqlstate(
        client.simple_query("SELECT 1").await,
        "25P02",
        "SELECT 1 (simple, aborted)",
    );
    exec(&client, "COMMIT").await;
    assert_eq!(
        count(&client, "SELECT count(*) FROM acct WHERE id = 5").await,
        0
    );
    assert_eq!(count(&client, "SELECT count(*) FROM acct").await, 2);

    // The same with ROLLBACK, and via the extended protocol.
    client
        .execute("BEGIN", &[])
        .await
        .expect("BEGIN (extended)");
    assert_sqlstate(
        client
            .execute("INSERT INTO acct VALUES (NULL, 1)", &[])
            .await,
        "23502",
        "INSERT NULL id",
    );
    assert_sqlstate(
        client.execute("INSERT INTO acct VALUES (6, 6)", &[]).await,
        "25P02",
        "INSERT after error",
    );
    client
        .execute("ROLLBACK", &[])
        .await
        .expect("ROLLBACK (extended)");
    assert_eq!(count(&client, "SELECT count(*) FROM acct").await, 2);

    // Read-your-writes inside a transaction, invisible to others until commit.
    let tx = client.transaction().await.expect("BEGIN");
    tx.execute("INSERT INTO acct VALUES (7, 7)", &[])
        .await
        .unwrap();
    assert_eq!(count(&tx, "SELECT count(*) FROM acct").await, 3);
    assert_eq!(count(&other, "SELECT count(*) FROM acct").await, 2);
    tx.commit().await.expect("COMMIT");
    assert_eq!(count(&other, "SELECT count(*) FROM acct").await, 3);
}

// ---------------------------------------------------------------- SQLSTATEs

#[tokio::test]
async fn errors_carry_their_sqlstate() {
    let server = TestServer::start();
    let client = server.connect().await;
    exec(&client, "CREATE TABLE t (id int NOT NULL, name text)").await;

    let cases: &[(&str, &str)] = &[
        ("SELEC 1", "42601"),
        ("SELECT * FROM t WHERE", "42601"),
        ("SELECT * FROM missing", "42P01"),
        ("INSERT INTO missing VALUES (1)", "42P01"),
        ("SELECT nope FROM t", "42703"),
        ("UPDATE t SET nope = 1", "42703"),
        ("CREATE TABLE t (x int)", "42P07"),
        ("INSERT INTO t VALUES (NULL, 'x')", "23502"),
        ("INSERT INTO t (name) VALUES ('x')", "23502"),
        ("SELECT 'abc'::int", "22P02"),
        ("INSERT INTO t VALUES ('abc', 'x')", "22P02"),
        ("CREATE TABLE u (x int REFERENCES t (id))", "0A000"),
        ("CREATE TABLE u (x int CHECK (x > 0))", "0A000"),
    ];
    // Check every case on both protocols, then report all mismatches at once.
    let mut mismatches = Vec::new();
    for (sql, code) in cases {
        let simple = client.simple_query(sql).await.map(|_| ());
        // Extended protocol (the error may come from Parse or from Execute).
        let extended = client.query(*sql, &[]).await.map(|_| ());
        for (protocol, result) in [("simple", simple), ("extended", extended)] {
            let got = match &result {
                Ok(()) => "success".to_string(),
                Err(e) => sqlstate(e),
            };
            if got != *code {
                let message = match &result {
                    Err(e) => e
                        .as_db_error()
                        .map(|d| d.message().to_string())
                        .unwrap_or_else(|| e.to_string()),
                    Ok(()) => String::new(),
                };
                mismatches.push(format!(
                    "{protocol}: `{sql}`: expected {code}, got {got} {message}"
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "wrong SQLSTATEs:\n{}",
        mismatches.join("\n")
    );

    // Errors carry a message and severity ERROR; syntax errors a position.
    let err = client
        .simple_query("SELECT * FROM missing")
        .await
        .unwrap_err();
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.severity(), "ERROR");
    assert!(db.message().contains("missing"), "{}", db.message());
    let err = client
        .simple_query("SELECT 1 FROM t WHERE )")
        .await
        .unwrap_err();
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "42601");
    assert!(
        db.position().is_some(),
        "syntax errors report a position: {db:?}"
    );

    // 25P02 after a failure inside a transaction block.
    exec(&client, "BEGIN").await;
    assert_sqlstate(
        client.simple_query("SELECT nope FROM t").await,
        "42703",
        "SELECT nope",
    );
    assert_sqlstate(
        client.simple_query("SELECT 1").await,
        "25P02",
        "SELECT 1 in failed block",
    );
    assert_sqlstate(
        client.query("SELECT 1", &[]).await,
        "25P02",
        "SELECT 1 in failed block (ext)",
    );
    exec(&client, "ROLLBACK").await;

    // The session works afterwards and nothing was written.
    assert_eq!(count(&client, "SELECT count(*) FROM t").await, 0);

    // Unknown database at connect time: 3D000.
    let mut config = server.config();
    config.dbname("no_such_db");
    let err = server
        .try_connect(&config)
        .await
        .expect_err("unknown database");
    assert_eq!(sqlstate(&err), "3D000", "{err:?}");
}

// ---------------------------------------------------------------- authentication

#[tokio::test]
async fn scram_authentication() {
    let server = TestServer::start_with(ServerOptions::new().password("s3cret pw"));

    // Right password.
    let client = server.connect().await;
    assert_eq!(count(&client, "SELECT count(*) FROM (SELECT 1) t").await, 1);

    // Wrong password: 28P01.
    let mut wrong = server.config();
    wrong.password("wrong");
    let err = server
        .try_connect(&wrong)
        .await
        .expect_err("wrong password must fail");
    assert_eq!(sqlstate(&err), "28P01", "{err:?}");

    // No password at all, even from loopback, for a user that has one.
    let mut none = tokio_postgres::Config::new();
    none.host("127.0.0.1")
        .port(server.port())
        .user("freshet")
        .dbname("freshet");
    let err = server
        .try_connect(&none)
        .await
        .expect_err("missing password must fail");
    // tokio-postgres itself gives up when asked for a password it lacks.
    assert!(
        err.code().is_some() || format!("{err:?}").contains("password"),
        "unexpected error: {err:?}"
    );

    // A new user with a password.
    exec(&client, "CREATE USER alice PASSWORD 'x'").await;
    let mut alice = server.config();
    alice.user("alice").password("x");
    let alice_client = server
        .try_connect(&alice)
        .await
        .unwrap_or_else(|e| panic!("alice with the right password: {e:?}"));
    let rows = simple_rows(&alice_client, "SELECT current_user").await;
    assert_eq!(rows, vec![vec![Some("alice".to_string())]]);

    alice.password("y");
    let err = server
        .try_connect(&alice)
        .await
        .expect_err("alice, wrong password");
    assert_eq!(sqlstate(&err), "28P01", "{err:?}");

    // Unknown users are refused.
    let mut bob = server.config();
    bob.user("bob").password("x");
    let err = server.try_connect(&bob).await.expect_err("unknown user");
    assert!(
        matches!(sqlstate(&err).as_str(), "28P01" | "28000"),
        "unknown user: {err:?}"
    );

    // A password change takes effect for new connections.
    exec(&client, "ALTER USER alice PASSWORD 'z'").await;
    alice.password("z");
    server
        .try_connect(&alice)
        .await
        .unwrap_or_else(|e| panic!("alice with the changed password: {e:?}"));
    alice.password("x");
    let err = server.try_connect(&alice).await.expect_err("old password");
    assert_eq!(sqlstate(&err), "28P01", "{err:?}");
}

/// Users created on a trust server also get SCRAM when they have a password.
#[tokio::test]
async fn users_with_passwords_on_a_trust_server() {
    let server = TestServer::start();
    let client = server.connect().await;
    exec(&client, "CREATE USER carol PASSWORD 'pw'").await;
    let mut carol = server.config();
    carol.user("carol").password("pw");
    let c = server
        .try_connect(&carol)
        .await
        .unwrap_or_else(|e| panic!("carol: {e:?}"));
    assert_eq!(
        simple_rows(&c, "SELECT current_user").await,
        vec![vec![Some("carol".to_string())]]
    );
    let err = c
        .simple_query("CHECKPOINT")
        .await
        .expect_err("CHECKPOINT is for superusers");
    assert_eq!(sqlstate(&err), "42501", "{err:?}");
    carol.password("nope");
    let err = server
        .try_connect(&carol)
        .await
        .expect_err("wrong password");
    assert_eq!(sqlstate(&err), "28P01", "{err:?}");
}

// ---------------------------------------------------------------- TLS

fn rustls_connector(trusted: &rcgen::Certificate) -> tokio_postgres_rustls::MakeRustlsConnect {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.der().clone()).expect("add root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

#[tokio::test]
async fn tls_with_sslmode_require() {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("generate certificate");
    let dir = tempfile::tempdir().expect("temp dir");
    let cert_path = dir.path().join("server.crt");
    let key_path = dir.path().join("server.key");
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();

    let server = TestServer::start_with(
        ServerOptions::new()
            .tls(&cert_path, &key_path)
            .password("tls-pw"),
    );

    let mut config = server.config();
    config.ssl_mode(SslMode::Require);
    let (client, connection) = config
        .connect(rustls_connector(&certified.cert))
        .await
        .unwrap_or_else(|e| panic!("TLS connect: {e:?}\n{}", server.log()));
    tokio::spawn(connection);
    exec(&client, "CREATE TABLE secure (x text)").await;
    client
        .execute("INSERT INTO secure VALUES ($1)", &[&"over tls"])
        .await
        .expect("insert over TLS");
    let row = client.query_one("SELECT x FROM secure", &[]).await.unwrap();
    assert_eq!(row.get::<_, &str>(0), "over tls");

    // A client that trusts a different certificate must fail the handshake:
    // the session above really was TLS, with this server's certificate.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let err = config
        .connect(rustls_connector(&other.cert))
        .await
        .err()
        .expect("handshake with an untrusted certificate must fail");
    assert!(err.code().is_none(), "expected a TLS failure, got {err:?}");

    // Wrong password over TLS is still refused.
    config.password("wrong");
    let err = config
        .connect(rustls_connector(&certified.cert))
        .await
        .err()
        .expect("wrong password over TLS");
    assert_eq!(sqlstate(&err), "28P01", "{err:?}");
}

// ---------------------------------------------------------------- start-up policy

#[test]
fn non_loopback_listen_without_password_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = common::free_port();
    let output = std::process::Command::new(common::FRESHET_BIN)
        .args(["serve", "--no-fsync", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", &format!("0.0.0.0:{port}")])
        .args(["--http-listen", "off"])
        .env_remove("FRESHET_SUPERUSER_PASSWORD")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn freshet");
    let mut child = output;
    let status =
        common::wait_bounded(&mut child, Duration::from_secs(60)).expect("freshet exit status");
    let mut text = String::new();
    use std::io::Read;
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut text);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut text);
    }
    assert!(
        !status.success(),
        "freshet must refuse 0.0.0.0 without a password, but exited with {status}: {text}"
    );
    assert!(
        text.contains("non-loopback") && text.contains("password"),
        "the refusal must explain itself; output was:\n{text}"
    );
}

/// An empty superuser password is refused at start: it would let a
/// non-loopback listener start with a password anyone can guess.
#[test]
fn empty_superuser_password_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = common::free_port();
    let mut child = std::process::Command::new(common::FRESHET_BIN)
        .args(["serve", "--no-fsync", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", &format!("0.0.0.0:{port}")])
        .args(["--http-listen", "off"])
        .args(["--superuser-password", ""])
        .env_remove("FRESHET_SUPERUSER_PASSWORD")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn freshet");
    let status =
        common::wait_bounded(&mut child, Duration::from_secs(60)).expect("freshet exit status");
    let mut text = String::new();
    use std::io::Read;
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut text);
    }
    assert!(
        !status.success(),
        "freshet must refuse an empty password, but exited with {status}: {text}"
    );
    assert!(
        text.contains("empty string is not a valid password"),
        "the refusal must explain itself; output was:\n{text}"
    );
}

/// A user may change their own password, but not make themselves a
/// superuser; empty passwords are refused in SQL too.
#[tokio::test]
async fn users_cannot_grant_themselves_superuser() {
    let server = TestServer::start();
    let admin = server.connect().await;
    exec(&admin, "CREATE USER mallory PASSWORD 'm1'").await;
    let mut cfg = server.config();
    cfg.user("mallory").password("m1");
    let mallory = server
        .try_connect(&cfg)
        .await
        .unwrap_or_else(|e| panic!("mallory: {e:?}"));
    for sql in [
        "ALTER USER mallory SUPERUSER",
        "ALTER USER mallory WITH PASSWORD 'm2' SUPERUSER",
        "ALTER USER mallory NOSUPERUSER",
        "ALTER USER freshet PASSWORD 'taken'",
    ] {
        let err = mallory.batch_execute(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err:?}");
    }
    // Still not a superuser: superuser-only statements stay refused.
    let err = mallory
        .batch_execute("CREATE USER eve")
        .await
        .expect_err("mallory must not manage users");
    assert_eq!(sqlstate(&err), "42501", "{err:?}");
    // Changing one's own password is allowed and takes effect.
    exec(&mallory, "ALTER USER mallory PASSWORD 'm2'").await;
    cfg.password("m2");
    server
        .try_connect(&cfg)
        .await
        .unwrap_or_else(|e| panic!("mallory with her new password: {e:?}"));
    // Empty passwords are refused, for new and existing users.
    for sql in [
        "CREATE USER eve PASSWORD ''",
        "ALTER USER mallory PASSWORD ''",
    ] {
        let err = admin.batch_execute(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&err), "22023", "{sql}: {err:?}");
    }
}

/// With a password the same listen address is accepted (checked over loopback).
#[tokio::test]
async fn non_loopback_listen_with_password_is_accepted() {
    let mut opts = ServerOptions::new().password("pw");
    opts.listen_host = "0.0.0.0".into();
    let server = TestServer::start_with(opts);
    let client = server.connect().await;
    assert_eq!(count(&client, "SELECT count(*) FROM (SELECT 1) t").await, 1);
}

/// Column names of the simple protocol's RowDescription.
async fn simple_column_names(client: &Client, sql: &str) -> Vec<String> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("`{sql}` failed: {e:?}"))
        .into_iter()
        .find_map(|m| match m {
            SimpleQueryMessage::RowDescription(columns) => {
                Some(columns.iter().map(|c| c.name().to_string()).collect())
            }
            _ => None,
        })
        .expect("a row description")
}

/// A select list may repeat a name, as in PostgreSQL, and both protocols
/// announce it as written.
#[tokio::test]
async fn repeated_output_names_are_kept() {
    let server = TestServer::start();
    let client = server.connect().await;
    exec(&client, "CREATE TABLE rep (id int, v text)").await;
    exec(&client, "INSERT INTO rep VALUES (1, 'a')").await;
    for (sql, names) in [
        ("SELECT id, id FROM rep", vec!["id", "id"]),
        ("SELECT *, id FROM rep", vec!["id", "v", "id"]),
        ("SELECT 1 AS x, 2 AS x", vec!["x", "x"]),
        (
            "SELECT (SELECT max(v) AS m FROM rep r WHERE r.id = rep.id), (SELECT min(v) AS m FROM rep r WHERE r.v = rep.v) FROM rep",
            vec!["m", "m"],
        ),
    ] {
        assert_eq!(simple_column_names(&client, sql).await, names, "{sql}");
        let statement = client.prepare(sql).await.expect(sql);
        let described: Vec<&str> = statement.columns().iter().map(|c| c.name()).collect();
        assert_eq!(described, names, "{sql} (described)");
        let rows = client.query(&statement, &[]).await.expect(sql);
        assert_eq!(rows.len(), 1, "{sql}");
    }
}

/// CASE and UNION ALL branches of different types give PostgreSQL's result
/// type, and what Describe and RowDescription announce is what is sent.
#[tokio::test]
async fn mixed_branch_types_resolve_like_postgres() {
    let server = TestServer::start();
    let client = server.connect().await;
    exec(
        &client,
        "CREATE TABLE amounts (id int, amount numeric(10,2), price double precision, d date, ts timestamp)",
    )
    .await;
    exec(
        &client,
        "INSERT INTO amounts VALUES (1, 2.50, 13, '2024-01-01', '2024-01-02 03:04:05')",
    )
    .await;

    let sql = "SELECT CASE WHEN id = 1 THEN price / 3 ELSE amount END AS v FROM amounts";
    let statement = client.prepare(sql).await.expect(sql);
    assert_eq!(statement.columns()[0].type_(), &Type::FLOAT8);
    let v: f64 = client.query_one(&statement, &[]).await.expect(sql).get(0);
    assert_eq!(v, 13.0 / 3.0);
    let sql = "SELECT CASE WHEN id = 1 THEN amount ELSE price / 3 END AS v FROM amounts";
    let statement = client.prepare(sql).await.expect(sql);
    assert_eq!(statement.columns()[0].type_(), &Type::FLOAT8);
    let v: f64 = client.query_one(&statement, &[]).await.expect(sql).get(0);
    assert_eq!(v, 2.5);

    let sql = "SELECT d AS v FROM amounts UNION ALL SELECT ts FROM amounts ORDER BY 1";
    let statement = client.prepare(sql).await.expect(sql);
    assert_eq!(statement.columns()[0].type_(), &Type::TIMESTAMP);
    let values: Vec<NaiveDateTime> = client
        .query(&statement, &[])
        .await
        .expect(sql)
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        values,
        vec![ts("2024-01-01 00:00:00"), ts("2024-01-02 03:04:05")]
    );
    // The simple protocol's text is a timestamp too.
    assert_eq!(
        simple_rows(&client, sql).await,
        vec![
            vec![Some("2024-01-01 00:00:00".to_string())],
            vec![Some("2024-01-02 03:04:05".to_string())],
        ]
    );
}

/// Output columns without a name are named as PostgreSQL names them
/// (`abs`, `?column?`, `text`, `case`, a subquery's column), which pandas,
/// ORMs and psql show. Checked against PostgreSQL too when
/// SLT_REFERENCE_URL is set.
#[tokio::test]
async fn unnamed_columns_are_named_as_postgresql_names_them() {
    let server = TestServer::start();
    let clients = clients_with_reference(&server).await;
    let cases: [(&str, &[&str]); 7] = [
        (
            "SELECT abs(a), a + 1, 1, 'x'::text, a::text, CASE WHEN a > 0 THEN 1 END, \
             coalesce(b, 'z'), (SELECT max(a) FROM names_t), b IS NULL, \
             upper(b), names_t.b FROM names_t",
            &[
                "abs", "?column?", "?column?", "text", "a", "case", "coalesce", "max", "?column?",
                "upper", "b",
            ],
        ),
        ("SELECT a, a FROM names_t", &["a", "a"]),
        ("SELECT 1 UNION ALL SELECT 2", &["?column?"]),
        (
            "SELECT sum(a), count(*) FROM names_t GROUP BY b ORDER BY sum(a)",
            &["sum", "count"],
        ),
        (
            "SELECT 1::int, 2::bigint, 3::double precision, DATE '2024-01-01', 'x'::varchar",
            &["int4", "int8", "float8", "date", "varchar"],
        ),
        ("SELECT a AS x, b FROM names_t", &["x", "b"]),
        ("SELECT * FROM names_t", &["a", "b"]),
    ];
    for (name, client) in &clients {
        client
            .batch_execute(
                "DROP TABLE IF EXISTS names_t; CREATE TABLE names_t (a int, b text);
                 INSERT INTO names_t VALUES (1, 'x'), (2, NULL)",
            )
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for (sql, expected) in cases {
            let statement = client
                .prepare(sql)
                .await
                .unwrap_or_else(|e| panic!("{name}: {sql}: {e}"));
            let names: Vec<&str> = statement.columns().iter().map(|c| c.name()).collect();
            assert_eq!(names, expected, "{name}: {sql}");
            // The simple protocol names them the same.
            let simple = client
                .simple_query(sql)
                .await
                .unwrap_or_else(|e| panic!("{name}: {sql}: {e}"));
            let columns = simple.iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::RowDescription(columns) => Some(
                    columns
                        .iter()
                        .map(|c| c.name().to_string())
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            });
            assert_eq!(
                columns.as_deref(),
                Some(&expected.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..]),
                "{name}: {sql} (simple)"
            );
        }
        client
            .batch_execute("DROP TABLE names_t")
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// The types a client is told for integer literals: `integer` where the
/// value fits in 32 bits, as PostgreSQL types them (node-postgres and other
/// drivers decode by the announced type), also through parameters and
/// arithmetic. Checked against PostgreSQL too when SLT_REFERENCE_URL is set.
#[tokio::test]
async fn integer_literals_are_announced_as_postgresql_types_them() {
    let server = TestServer::start();
    let clients = clients_with_reference(&server).await;
    for (name, client) in &clients {
        let statement = client
            .prepare("SELECT 1, $1::int + 1, 2147483648, 2 * 3, 1 + 2.5")
            .await
            .unwrap();
        let types: Vec<Type> = statement
            .columns()
            .iter()
            .map(|c| c.type_().clone())
            .collect();
        assert_eq!(
            types,
            vec![
                Type::INT4,
                Type::INT4,
                Type::INT8,
                Type::INT4,
                Type::NUMERIC
            ],
            "{name}"
        );
        let row = client.query_one(&statement, &[&41i32]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 1, "{name}");
        assert_eq!(row.get::<_, i32>(1), 42, "{name}");
        assert_eq!(row.get::<_, i64>(2), 2_147_483_648, "{name}");
        let err = client
            .query_one(&statement, &[&i32::MAX])
            .await
            .expect_err("int4 overflow");
        assert_eq!(sqlstate(&err), "22003", "{name}: {err:?}");
    }
}

/// `pg_index`'s key columns are PostgreSQL's vector types (text `3 2`,
/// binary arrays of int2 and oid), unqualified `pg_indexes` resolves, and
/// `pg_get_indexdef`/`pg_get_constraintdef` answer with the definition
/// that stands when they run: NULL once the object is dropped, even when
/// the OID is written as a literal rather than read in the same statement.
/// Checked against PostgreSQL too when SLT_REFERENCE_URL is set.
#[tokio::test]
async fn key_catalog_follows_postgresql_types_and_the_catalog() {
    let server = TestServer::start();
    for (name, client) in clients_with_reference(&server).await {
        exec(
            &client,
            "DROP TABLE IF EXISTS kc_keys;
             CREATE TABLE kc_keys (id int PRIMARY KEY, a int, b text);
             CREATE UNIQUE INDEX kc_keys_ba ON kc_keys (b, a)",
        )
        .await;
        let vectors = "SELECT indkey, indoption, indclass FROM pg_index \
                       WHERE indexrelid = 'kc_keys_ba'::regclass";
        let text = simple_rows(&client, vectors).await;
        let expected = vec![vec![
            Some("3 2".to_string()),
            Some("0 0".to_string()),
            Some("3126 1978".to_string()),
        ]];
        assert_eq!(text, expected, "{name}");
        let statement = client.prepare(vectors).await.unwrap();
        let types: Vec<Type> = statement
            .columns()
            .iter()
            .map(|c| c.type_().clone())
            .collect();
        assert_eq!(
            types,
            vec![Type::INT2_VECTOR, Type::INT2_VECTOR, Type::OID_VECTOR],
            "{name}"
        );
        let row = client.query_one(&statement, &[]).await.unwrap();
        assert_eq!(row.get::<_, Vec<i16>>(0), vec![3, 2], "{name}");
        assert_eq!(row.get::<_, Vec<i16>>(1), vec![0, 0], "{name}");
        assert_eq!(row.get::<_, Vec<u32>>(2), vec![3126, 1978], "{name}");

        let indexes = simple_rows(
            &client,
            "SELECT indexname FROM pg_indexes WHERE tablename = 'kc_keys' ORDER BY 1",
        )
        .await;
        assert_eq!(
            indexes,
            vec![
                vec![Some("kc_keys_ba".to_string())],
                vec![Some("kc_keys_pkey".to_string())]
            ],
            "{name}"
        );

        let index_oid = count(
            &client,
            "SELECT oid::bigint FROM pg_class WHERE relname = 'kc_keys_ba'",
        )
        .await;
        let constraint_oid = count(
            &client,
            "SELECT oid::bigint FROM pg_constraint WHERE conname = 'kc_keys_pkey'",
        )
        .await;
        let index_def = format!("SELECT pg_get_indexdef({index_oid})");
        let constraint_def = format!("SELECT pg_get_constraintdef({constraint_oid})");
        assert_eq!(
            simple_rows(&client, &index_def).await,
            vec![vec![Some(
                "CREATE UNIQUE INDEX kc_keys_ba ON public.kc_keys USING btree (b, a)".to_string()
            )]],
            "{name}"
        );
        exec(&client, "DROP INDEX kc_keys_ba").await;
        assert_eq!(
            simple_rows(&client, &index_def).await,
            vec![vec![None]],
            "{name}: a dropped index"
        );
        // PostgreSQL gives the new index a new OID; Freshet's OIDs name an
        // index by its schema and name, so the old OID shows the new
        // definition. Neither shows the dropped one.
        exec(&client, "CREATE UNIQUE INDEX kc_keys_ba ON kc_keys (a)").await;
        let recreated = match name {
            "freshet" => {
                Some("CREATE UNIQUE INDEX kc_keys_ba ON public.kc_keys USING btree (a)".to_string())
            }
            _ => None,
        };
        assert_eq!(
            simple_rows(&client, &index_def).await,
            vec![vec![recreated]],
            "{name}: an index created again under the name"
        );
        assert_eq!(
            simple_rows(&client, &constraint_def).await,
            vec![vec![Some("PRIMARY KEY (id)".to_string())]],
            "{name}"
        );
        exec(&client, "DROP TABLE kc_keys").await;
        assert_eq!(
            simple_rows(&client, &constraint_def).await,
            vec![vec![None]],
            "{name}: a dropped table's constraint"
        );
    }
}

// ---------------------------------------------------------------- privileges

/// A connection as `user` (password `pw`) to Freshet, or to the reference
/// PostgreSQL (trust authentication there).
async fn connect_as(server: &TestServer, system: &str, user: &str) -> Client {
    try_connect_as(server, system, user)
        .await
        .unwrap_or_else(|e| panic!("{user} on {system}: {e:?}"))
}

/// A connection as `user` (password `pw`) to `server` or to the reference
/// PostgreSQL, or why it was refused.
async fn try_connect_as(
    server: &TestServer,
    system: &str,
    user: &str,
) -> Result<Client, tokio_postgres::Error> {
    if system == "freshet" {
        let mut config = server.config();
        config.user(user).password("pw");
        return server.try_connect(&config).await;
    }
    let url = std::env::var("SLT_REFERENCE_URL").expect("reference URL");
    // The database the reference connection uses (named after its user
    // unless the URL names one).
    let admin = reference_client().await.expect("reference PostgreSQL");
    let database: String = admin
        .query_one("SELECT current_database()::text", &[])
        .await
        .expect("current_database")
        .get(0);
    let url = format!("{url} user={user} dbname={database}");
    let (client, connection) = tokio_postgres::connect(&url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The SQLSTATE `sql` fails with, or "ok".
async fn outcome(client: &Client, sql: &str) -> String {
    match client.batch_execute(sql).await {
        Ok(()) => "ok".to_string(),
        Err(e) => sqlstate(&e),
    }
}

/// Owners, GRANT and REVOKE on tables, as PostgreSQL has them: a user reads,
/// writes, alters or drops another's table only as far as the owner granted,
/// a REVOKE takes effect at once (a prepared point lookup included), and a
/// role that owns or holds privileges cannot be dropped. Checked against
/// PostgreSQL 15 when SLT_REFERENCE_URL is set.
#[tokio::test]
async fn privileges_follow_postgresql() {
    let server = TestServer::start();
    for (system, admin) in clients_with_reference(&server).await {
        if system == "postgresql" {
            // Left by an earlier run that failed; the roles may not exist.
            let _ = admin
                .batch_execute("REVOKE CREATE ON SCHEMA public FROM pv_alice, pv_bob")
                .await;
        }
        exec(
            &admin,
            "DROP TABLE IF EXISTS pv_t; DROP USER IF EXISTS pv_alice; DROP USER IF EXISTS pv_bob;
             CREATE USER pv_alice PASSWORD 'pw'; CREATE USER pv_bob PASSWORD 'pw'",
        )
        .await;
        if system == "postgresql" {
            // PostgreSQL 15 lets only the database owner create in public
            // unless granted; Freshet has no schema privileges yet and lets
            // every user create relations (PostgreSQL 14's default).
            exec(&admin, "GRANT CREATE ON SCHEMA public TO pv_alice, pv_bob").await;
        }
        let alice = connect_as(&server, system, "pv_alice").await;
        let bob = connect_as(&server, system, "pv_bob").await;
        exec(
            &alice,
            "CREATE TABLE pv_t (id int PRIMARY KEY, v text); INSERT INTO pv_t VALUES (1, 'a')",
        )
        .await;
        let lookup = bob
            .prepare("SELECT v FROM pv_t WHERE id = $1")
            .await
            .unwrap_or_else(|e| panic!("{system}: prepare: {e:?}"));
        let mut expected: Vec<(&str, &str)> = vec![
            ("SELECT * FROM pv_t", "42501"),
            ("SELECT count(*) FROM (SELECT id FROM pv_t) s", "42501"),
            ("INSERT INTO pv_t VALUES (2, 'b')", "42501"),
            ("UPDATE pv_t SET v = 'x'", "42501"),
            ("DELETE FROM pv_t WHERE id = 1", "42501"),
            ("TRUNCATE pv_t", "42501"),
            ("ALTER TABLE pv_t ADD COLUMN w int", "42501"),
            ("CREATE UNIQUE INDEX pv_t_v ON pv_t (v)", "42501"),
            ("DROP TABLE pv_t", "42501"),
            ("GRANT SELECT ON pv_t TO pv_bob", "42501"),
            ("CREATE DATABASE pv_db", "42501"),
            ("CREATE SCHEMA pv_s", "42501"),
        ];
        for (sql, state) in &expected {
            assert_eq!(&outcome(&bob, sql).await, state, "{system}: bob: {sql}");
        }
        let err = bob.query(&lookup, &[&1i32]).await.expect_err("no SELECT");
        assert_eq!(sqlstate(&err), "42501", "{system}: {err:?}");
        let acl = "SELECT array_to_string(relacl, ',') FROM pg_class WHERE relname = 'pv_t'";
        assert_eq!(simple_rows(&admin, acl).await, vec![vec![None]], "{system}");

        exec(&alice, "GRANT SELECT ON pv_t TO pv_bob").await;
        let rows = bob.query(&lookup, &[&1i32]).await.unwrap();
        assert_eq!(rows.len(), 1, "{system}");
        assert_eq!(rows[0].get::<_, String>(0), "a", "{system}");
        assert_eq!(
            count(&bob, "SELECT count(*) FROM pv_t").await,
            1,
            "{system}"
        );
        assert_eq!(
            outcome(&bob, "INSERT INTO pv_t VALUES (2, 'b')").await,
            "42501",
            "{system}"
        );

        exec(&alice, "GRANT INSERT, UPDATE ON TABLE pv_t TO pv_bob").await;
        expected = vec![
            ("INSERT INTO pv_t VALUES (2, 'b')", "ok"),
            ("UPDATE pv_t SET v = 'c' WHERE id = 2", "ok"),
            ("DELETE FROM pv_t WHERE id = 2", "42501"),
            ("GRANT nonsense_privilege ON pv_t TO pv_bob", "42601"),
        ];
        for (sql, state) in &expected {
            assert_eq!(&outcome(&bob, sql).await, state, "{system}: bob: {sql}");
        }

        // A REVOKE reaches statements prepared before it.
        exec(&alice, "REVOKE SELECT ON pv_t FROM pv_bob").await;
        let err = bob.query(&lookup, &[&1i32]).await.expect_err("revoked");
        assert_eq!(sqlstate(&err), "42501", "{system}: {err:?}");
        expected = vec![
            ("SELECT * FROM pv_t", "42501"),
            ("UPDATE pv_t SET v = 'd' WHERE id = 2", "42501"),
            // RETURNING reads what was written.
            ("INSERT INTO pv_t VALUES (4, 'e') RETURNING v", "42501"),
            ("UPDATE pv_t SET v = 'z' RETURNING id", "42501"),
            ("UPDATE pv_t SET v = v || 'z'", "42501"),
            // Changing rows without reading them needs no SELECT.
            ("UPDATE pv_t SET v = 'q'", "ok"),
            ("INSERT INTO pv_t VALUES (3, 'c')", "ok"),
        ];
        for (sql, state) in &expected {
            assert_eq!(&outcome(&bob, sql).await, state, "{system}: bob: {sql}");
        }

        // PUBLIC, and the errors of a bad grant.
        assert_eq!(
            outcome(&alice, "GRANT SELECT ON pv_t TO pv_nobody").await,
            "42704",
            "{system}"
        );
        assert_eq!(
            outcome(&alice, "GRANT SELECT ON pv_missing TO pv_bob").await,
            "42P01",
            "{system}"
        );
        exec(&alice, "GRANT ALL PRIVILEGES ON pv_t TO PUBLIC").await;
        // What psql's \dp shows.
        assert_eq!(
            simple_rows(&admin, acl).await,
            vec![vec![Some(
                "pv_alice=arwdDxt/pv_alice,pv_bob=aw/pv_alice,=arwdDxt/pv_alice".to_string()
            )]],
            "{system}"
        );
        assert_eq!(
            count(&bob, "SELECT count(*) FROM pv_t").await,
            3,
            "{system}"
        );
        assert_eq!(
            outcome(&bob, "DELETE FROM pv_t WHERE id = 3").await,
            "ok",
            "{system}"
        );
        // information_schema.table_privileges, as a superuser sees it (all
        // of it) and as bob does (what is granted to him or to PUBLIC).
        let privileges = "SELECT grantor, grantee, privilege_type, is_grantable, with_hierarchy \
                          FROM information_schema.table_privileges WHERE table_name = 'pv_t' \
                          ORDER BY grantee, privilege_type";
        let row = |grantor: &str, grantee: &str, privilege: &str, grantable: &str| {
            let hierarchy = if privilege == "SELECT" { "YES" } else { "NO" };
            [grantor, grantee, privilege, grantable, hierarchy]
                .iter()
                .map(|v| Some(v.to_string()))
                .collect::<Vec<_>>()
        };
        let all = [
            "DELETE",
            "INSERT",
            "REFERENCES",
            "SELECT",
            "TRIGGER",
            "TRUNCATE",
            "UPDATE",
        ];
        let public: Vec<_> = all
            .iter()
            .map(|p| row("pv_alice", "PUBLIC", p, "NO"))
            .collect();
        let mut expected_rows = public.clone();
        expected_rows.extend(all.iter().map(|p| row("pv_alice", "pv_alice", p, "YES")));
        expected_rows.push(row("pv_alice", "pv_bob", "INSERT", "NO"));
        expected_rows.push(row("pv_alice", "pv_bob", "UPDATE", "NO"));
        assert_eq!(
            simple_rows(&admin, privileges).await,
            expected_rows,
            "{system}"
        );
        let mut bobs = public;
        bobs.push(row("pv_alice", "pv_bob", "INSERT", "NO"));
        bobs.push(row("pv_alice", "pv_bob", "UPDATE", "NO"));
        assert_eq!(simple_rows(&bob, privileges).await, bobs, "{system}");
        // Privileges are not ownership.
        assert_eq!(outcome(&bob, "DROP TABLE pv_t").await, "42501", "{system}");

        // Superusers may do anything; owners and grantees cannot be dropped.
        assert_eq!(
            count(&admin, "SELECT count(*) FROM pv_t").await,
            2,
            "{system}"
        );
        assert_eq!(
            outcome(&admin, "DROP USER pv_alice").await,
            "2BP01",
            "{system}"
        );
        assert_eq!(
            outcome(&admin, "DROP USER pv_bob").await,
            "2BP01",
            "{system}"
        );
        exec(&alice, "DROP TABLE pv_t").await;
        drop(alice);
        drop(bob);
        if system == "postgresql" {
            exec(
                &admin,
                "REVOKE CREATE ON SCHEMA public FROM pv_alice, pv_bob",
            )
            .await;
        }
        exec(&admin, "DROP USER pv_alice; DROP USER pv_bob").await;
    }
}

/// `ALTER … OWNER TO` gives a table or a view to another role as PostgreSQL
/// 15 does: only the owner or a superuser may, naming the current owner
/// changes nothing, a user may give only to a role they may become, and
/// what the old owner held and granted passes to the new one. `pg_tables`
/// and `pg_views` name the owners. Checked against PostgreSQL 15 when
/// SLT_REFERENCE_URL is set.
#[tokio::test]
async fn alter_owner_to_follows_postgresql() {
    let server = TestServer::start();
    for (system, admin) in clients_with_reference(&server).await {
        let users = ["ow_alice", "ow_bob", "ow_carol"];
        exec(
            &admin,
            "DROP VIEW IF EXISTS ow_v; DROP TABLE IF EXISTS ow_t",
        )
        .await;
        if system == "postgresql" {
            // Left by an earlier run that failed; the roles may not exist.
            let _ = admin
                .batch_execute("REVOKE CREATE ON SCHEMA public FROM ow_alice, ow_bob, ow_carol")
                .await;
        }
        for user in users {
            exec(
                &admin,
                &format!("DROP USER IF EXISTS {user}; CREATE USER {user} PASSWORD 'pw'"),
            )
            .await;
        }
        if system == "postgresql" {
            exec(
                &admin,
                "GRANT CREATE ON SCHEMA public TO ow_alice, ow_bob, ow_carol",
            )
            .await;
        }
        let alice = connect_as(&server, system, "ow_alice").await;
        let bob = connect_as(&server, system, "ow_bob").await;
        exec(
            &alice,
            "CREATE TABLE ow_t (id int); INSERT INTO ow_t VALUES (1);
             CREATE VIEW ow_v AS SELECT id FROM ow_t;
             GRANT SELECT ON ow_t TO ow_carol; GRANT SELECT, INSERT ON ow_t TO ow_bob",
        )
        .await;
        for (client, sql, state) in [
            // Not the owner, even naming the owner.
            (&bob, "ALTER TABLE ow_t OWNER TO ow_bob", "42501"),
            (&bob, "ALTER TABLE ow_t OWNER TO ow_alice", "42501"),
            // The owner, giving to a role she cannot become.
            (&alice, "ALTER TABLE ow_t OWNER TO ow_bob", "42501"),
            (&alice, "ALTER TABLE ow_t OWNER TO ow_nobody", "42704"),
            (&alice, "ALTER VIEW ow_t OWNER TO ow_alice", "42809"),
            (&alice, "ALTER TABLE ow_t OWNER TO ow_alice", "ok"),
            (&alice, "ALTER TABLE ow_t OWNER TO CURRENT_USER", "ok"),
            (
                &alice,
                "ALTER TABLE IF EXISTS ow_missing OWNER TO ow_bob",
                "ok",
            ),
            (&alice, "ALTER TABLE ow_missing OWNER TO ow_bob", "42P01"),
        ] {
            assert_eq!(outcome(client, sql).await, state, "{system}: {sql}");
        }
        let owner = "SELECT tableowner FROM pg_tables WHERE tablename = 'ow_t'";
        let acl = "SELECT array_to_string(relacl, ',') FROM pg_class WHERE relname = 'ow_t'";
        assert_eq!(
            simple_rows(&admin, owner).await,
            vec![vec![Some("ow_alice".to_string())]],
            "{system}"
        );

        // A superuser gives the table to bob: alice's grants are now his,
        // his own grant merges into his ownership, and alice keeps nothing.
        exec(&admin, "ALTER TABLE ow_t OWNER TO ow_bob").await;
        assert_eq!(
            simple_rows(&admin, owner).await,
            vec![vec![Some("ow_bob".to_string())]],
            "{system}"
        );
        assert_eq!(
            simple_rows(&admin, acl).await,
            vec![vec![Some(
                "ow_bob=arwdDxt/ow_bob,ow_carol=r/ow_bob".to_string()
            )]],
            "{system}"
        );
        assert_eq!(
            outcome(&alice, "SELECT * FROM ow_t").await,
            "42501",
            "{system}"
        );
        assert_eq!(
            outcome(&alice, "DROP TABLE ow_t").await,
            "42501",
            "{system}"
        );
        for sql in [
            "INSERT INTO ow_t VALUES (2)",
            "DELETE FROM ow_t WHERE id = 2",
        ] {
            assert_eq!(outcome(&bob, sql).await, "ok", "{system}: {sql}");
        }

        exec(&admin, "ALTER VIEW ow_v OWNER TO ow_carol").await;
        assert_eq!(
            simple_rows(
                &admin,
                "SELECT viewowner FROM pg_views WHERE viewname = 'ow_v'"
            )
            .await,
            vec![vec![Some("ow_carol".to_string())]],
            "{system}"
        );
        assert_eq!(
            outcome(&admin, "DROP USER ow_bob").await,
            "2BP01",
            "{system}"
        );
        drop(alice);
        drop(bob);
        exec(&admin, "DROP VIEW ow_v; DROP TABLE ow_t").await;
        if system == "postgresql" {
            exec(
                &admin,
                "REVOKE CREATE ON SCHEMA public FROM ow_alice, ow_bob, ow_carol",
            )
            .await;
        }
        for user in users {
            exec(&admin, &format!("DROP USER {user}")).await;
        }
    }
}

/// Role membership as PostgreSQL 15 has it: `GRANT group TO member` gives
/// the member the group's privileges and ownership, only a superuser or a
/// holder of ADMIN OPTION grants or revokes it, no role becomes a member
/// of itself, a group cannot log in, and `pg_auth_members` lists the
/// memberships. Checked against PostgreSQL 15 when SLT_REFERENCE_URL is
/// set.
#[tokio::test]
async fn role_membership_follows_postgresql() {
    let server = TestServer::start();
    for (system, admin) in clients_with_reference(&server).await {
        if system == "postgresql" {
            // Left by an earlier run that failed; the roles may not exist.
            let _ = admin
                .batch_execute("REVOKE CREATE ON SCHEMA public FROM rm_alice")
                .await;
        }
        exec(
            &admin,
            "DROP TABLE IF EXISTS rm_t; DROP ROLE IF EXISTS rm_alice;
             DROP ROLE IF EXISTS rm_bob; DROP ROLE IF EXISTS rm_grp;
             CREATE ROLE rm_grp; CREATE USER rm_alice PASSWORD 'pw';
             CREATE ROLE rm_bob LOGIN PASSWORD 'pw';
             CREATE TABLE rm_t (id int); INSERT INTO rm_t VALUES (1);
             GRANT SELECT ON rm_t TO rm_grp",
        )
        .await;
        if system == "postgresql" {
            // Freshet has no schema privileges yet (docs/security.md).
            exec(&admin, "GRANT CREATE ON SCHEMA public TO rm_alice").await;
        }
        let group_login = match try_connect_as(&server, system, "rm_grp").await {
            Ok(_) => "ok".to_string(),
            Err(e) => sqlstate(&e),
        };
        assert_eq!(group_login, "28000", "{system}: a group logs in");
        let alice = connect_as(&server, system, "rm_alice").await;
        let bob = connect_as(&server, system, "rm_bob").await;
        let read = "SELECT * FROM rm_t";
        assert_eq!(outcome(&alice, read).await, "42501", "{system}");
        for (client, sql, state) in [
            (&admin, "GRANT rm_grp TO rm_alice", "ok"),
            (&alice, read, "ok"),
            (&bob, read, "42501"),
            // Granting again changes nothing.
            (&admin, "GRANT rm_grp TO rm_alice", "ok"),
            // No role becomes a member of itself, directly or not.
            (&admin, "GRANT rm_grp TO rm_grp", "0LP01"),
            (&admin, "GRANT rm_alice TO rm_grp", "0LP01"),
            (&admin, "GRANT rm_nobody TO rm_alice", "42704"),
            (&admin, "GRANT rm_grp TO rm_nobody", "42704"),
            // Only a superuser or a holder of ADMIN OPTION grants it.
            (&alice, "GRANT rm_grp TO rm_bob", "42501"),
            (&bob, "REVOKE rm_grp FROM rm_alice", "42501"),
            (&admin, "GRANT rm_grp TO rm_alice WITH ADMIN OPTION", "ok"),
            (&alice, "GRANT rm_grp TO rm_bob", "ok"),
            (&bob, read, "ok"),
            (&alice, "REVOKE rm_grp FROM rm_bob", "ok"),
            (&bob, read, "42501"),
            // Revoking what is not there changes nothing.
            (&alice, "REVOKE rm_grp FROM rm_bob", "ok"),
            (&admin, "REVOKE ADMIN OPTION FOR rm_grp FROM rm_alice", "ok"),
            (&alice, "GRANT rm_grp TO rm_bob", "42501"),
            (&alice, read, "ok"),
            // A member has the group's ownership, and may give what it
            // owns to itself.
            (&admin, "ALTER TABLE rm_t OWNER TO rm_grp", "ok"),
            (&alice, "INSERT INTO rm_t VALUES (2)", "ok"),
            (&bob, "INSERT INTO rm_t VALUES (3)", "42501"),
            (&alice, "ALTER TABLE rm_t OWNER TO rm_alice", "ok"),
            (&bob, "ALTER TABLE rm_t OWNER TO rm_bob", "42501"),
        ] {
            assert_eq!(outcome(client, sql).await, state, "{system}: {sql}");
        }
        // has_table_privilege answers from the same rules.
        exec(&admin, "GRANT INSERT ON rm_t TO rm_grp").await;
        exec(&admin, "GRANT rm_grp TO rm_bob").await;
        let privilege = "SELECT has_table_privilege('rm_bob', 'rm_t', 'INSERT')::text,
             has_table_privilege('rm_bob', 'public.rm_t', 'select, update')::text,
             has_table_privilege('rm_alice', 'rm_t', 'UPDATE WITH GRANT OPTION')::text,
             has_table_privilege('rm_t', 'DELETE')::text";
        assert_eq!(
            simple_rows(&bob, privilege).await,
            vec![["true", "false", "true", "false"]
                .map(|v| Some(v.to_string()))
                .to_vec()],
            "{system}"
        );
        for (sql, state) in [
            (
                "SELECT has_table_privilege('rm_nobody', 'rm_t', 'SELECT')",
                "42704",
            ),
            (
                "SELECT has_table_privilege('rm_missing', 'SELECT')",
                "42P01",
            ),
            ("SELECT has_table_privilege('rm_t', 'FLY')", "22023"),
        ] {
            assert_eq!(outcome(&bob, sql).await, state, "{system}: {sql}");
        }
        exec(&admin, "REVOKE rm_grp FROM rm_bob").await;
        let members = "SELECT r.rolname::text, m.rolname::text, a.admin_option::text
             FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid
             JOIN pg_roles m ON m.oid = a.member
             WHERE r.rolname LIKE 'rm\\_%' ORDER BY 1, 2";
        assert_eq!(
            simple_rows(&admin, members).await,
            vec![vec![
                Some("rm_grp".to_string()),
                Some("rm_alice".to_string()),
                Some("false".to_string())
            ]],
            "{system}"
        );
        let login = "SELECT rolname::text, rolcanlogin::text FROM pg_roles
             WHERE rolname LIKE 'rm\\_%' ORDER BY 1";
        assert_eq!(
            simple_rows(&admin, login).await,
            [
                ("rm_alice", "true"),
                ("rm_bob", "true"),
                ("rm_grp", "false")
            ]
            .map(|(name, login)| vec![Some(name.to_string()), Some(login.to_string())])
            .to_vec(),
            "{system}"
        );
        drop(alice);
        drop(bob);
        // The group holds a privilege on rm_t (2BP01); once rm_t is gone,
        // dropping the group takes its memberships with it.
        assert_eq!(
            outcome(&admin, "DROP ROLE rm_grp").await,
            "2BP01",
            "{system}"
        );
        exec(&admin, "DROP TABLE rm_t; DROP ROLE rm_grp").await;
        assert_eq!(
            simple_rows(&admin, members).await,
            Vec::<Vec<Option<String>>>::new(),
            "{system}"
        );
        if system == "postgresql" {
            exec(&admin, "REVOKE CREATE ON SCHEMA public FROM rm_alice").await;
        }
        exec(&admin, "DROP ROLE rm_alice; DROP ROLE rm_bob").await;
    }
}

/// A dynamic table refreshes with its owner's privileges: once SELECT on a
/// source is revoked, its refresh fails with 42501 instead of reading on.
#[tokio::test]
async fn a_dynamic_table_refreshes_with_its_owners_privileges() {
    let server = TestServer::start();
    let admin = server.connect().await;
    exec(
        &admin,
        "CREATE USER dt_alice PASSWORD 'pw'; CREATE USER dt_bob PASSWORD 'pw'",
    )
    .await;
    let alice = connect_as(&server, "freshet", "dt_alice").await;
    let bob = connect_as(&server, "freshet", "dt_bob").await;
    exec(
        &alice,
        "CREATE TABLE dt_src (id int, v int); INSERT INTO dt_src VALUES (1, 10);
         GRANT SELECT ON dt_src TO dt_bob",
    )
    .await;
    exec(
        &bob,
        "CREATE DYNAMIC TABLE dt_sum TARGET_LAG = '1 hour' REFRESH_MODE = INCREMENTAL \
         AS SELECT id, v FROM dt_src",
    )
    .await;
    assert_eq!(count(&bob, "SELECT count(*) FROM dt_sum").await, 1);
    // Alice does not own bob's dynamic table.
    assert_eq!(outcome(&alice, "DROP DYNAMIC TABLE dt_sum").await, "42501");
    assert_eq!(outcome(&alice, "SELECT * FROM dt_sum").await, "42501");
    exec(&alice, "INSERT INTO dt_src VALUES (2, 20)").await;
    exec(&bob, "ALTER DYNAMIC TABLE dt_sum REFRESH").await;
    assert_eq!(count(&bob, "SELECT count(*) FROM dt_sum").await, 2);

    exec(
        &alice,
        "REVOKE SELECT ON dt_src FROM dt_bob; INSERT INTO dt_src VALUES (3, 30)",
    )
    .await;
    assert_eq!(
        outcome(&bob, "ALTER DYNAMIC TABLE dt_sum REFRESH").await,
        "42501"
    );
    // Not even a superuser's request refreshes it past its owner's rights.
    assert_eq!(
        outcome(&admin, "ALTER DYNAMIC TABLE dt_sum REFRESH").await,
        "42501"
    );
    assert_eq!(count(&bob, "SELECT count(*) FROM dt_sum").await, 2);
    // The failure is in the refresh history, with its reason.
    common::assert_last_refresh_failed(&bob, "permission denied for table dt_src").await;

    // Given to alice, who owns the source, it refreshes with her rights;
    // bob, no longer its owner, may not give it back or read it.
    assert_eq!(
        outcome(&bob, "ALTER DYNAMIC TABLE dt_sum OWNER TO dt_alice").await,
        "42501"
    );
    assert_eq!(
        outcome(&admin, "ALTER DYNAMIC TABLE dt_src OWNER TO dt_alice").await,
        "42809"
    );
    exec(&admin, "ALTER DYNAMIC TABLE dt_sum OWNER TO dt_alice").await;
    exec(&admin, "ALTER DYNAMIC TABLE dt_sum REFRESH").await;
    assert_eq!(count(&alice, "SELECT count(*) FROM dt_sum").await, 3);
    assert_eq!(outcome(&bob, "SELECT * FROM dt_sum").await, "42501");
    assert_eq!(
        outcome(&bob, "ALTER TABLE dt_sum OWNER TO dt_bob").await,
        "42501"
    );
}

/// RowDescription names the table and column each result column comes from
/// (a column passed through projections, aliases, filters, sorts, joins and
/// GROUP BY keys), with its declared type modifier; a computed column has
/// neither, as in PostgreSQL (checked against it too when SLT_REFERENCE_URL
/// is set).
#[tokio::test]
async fn row_description_names_source_columns() {
    let server = TestServer::start();
    for (name, client) in clients_with_reference(&server).await {
        client
            .batch_execute(
                "DROP TABLE IF EXISTS rd_source; \
                 CREATE TABLE rd_source (id bigint, name varchar(40), amount numeric(10,2))",
            )
            .await
            .expect(name);
        let oid: i64 = client
            .query_one(
                "SELECT oid::int8 FROM pg_catalog.pg_class WHERE relname = 'rd_source'",
                &[],
            )
            .await
            .expect(name)
            .get(0);
        let table = Some(u32::try_from(oid).expect("an OID"));
        let describe = |sql: &'static str| {
            let client = &client;
            async move {
                let statement = client.prepare(sql).await.expect(sql);
                statement
                    .columns()
                    .iter()
                    .map(|c| (c.table_oid(), c.column_id(), c.type_modifier()))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            describe(
                "SELECT name, id AS ident, amount, id + 1, s.amount FROM rd_source s \
                 WHERE id > 0 ORDER BY name LIMIT 5"
            )
            .await,
            vec![
                (table, Some(2), 44),
                (table, Some(1), -1),
                (table, Some(3), (10 << 16 | 2) + 4),
                (None, None, -1),
                (table, Some(3), (10 << 16 | 2) + 4),
            ],
            "{name}: projections, aliases and expressions"
        );
        assert_eq!(
            describe("SELECT a.name, b.id FROM rd_source a JOIN rd_source b ON a.id = b.id").await,
            vec![(table, Some(2), 44), (table, Some(1), -1)],
            "{name}: a join"
        );
        assert_eq!(
            describe("SELECT name, count(*) FROM rd_source GROUP BY name").await,
            vec![(table, Some(2), 44), (None, None, -1)],
            "{name}: GROUP BY"
        );
        client
            .batch_execute("DROP TABLE rd_source")
            .await
            .expect(name);
    }
}
