//! Differential test of dynamic-table refreshes: for a set of dynamic tables
//! covering every construct Freshet maintains incrementally (projections,
//! filters, expressions, CTEs, derived tables, UNION ALL, GROUP BY with
//! HAVING and DISTINCT aggregates, DISTINCT and UNION, inner joins (comma joins, and
//! keys of different types on the two sides among them), tables over
//! dynamic tables) and a few it recomputes in full (outer join, window
//! function, aggregate over a join), a seeded random workload of inserts,
//! updates and deletes — autocommit and in transactions, some rolled back —
//! runs against the sources, interleaved with `ALTER DYNAMIC TABLE …
//! REFRESH`. After every refresh the dynamic table must equal its defining
//! query run directly.
//!
//! # Why the comparison is exact
//!
//! A refresh makes the table equal its query at the refresh's snapshot. The
//! workload runs on one connection, one statement at a time, and every
//! dynamic table has `TARGET_LAG = '1 day'` so the scheduler never refreshes
//! on its own: between a refresh and its check nothing commits. The check
//! then reads the table and runs the query inside one transaction, so both
//! sides come from the same snapshot — the refresh's.
//!
//! The comparison is `EXCEPT` in both directions, which finds rows present on
//! one side only, plus `(row, count(*))` groups compared the same way, which
//! finds a row present a different number of times, and the row counts.
//!
//! The seed is printed and can be replayed with `FRESHET_DIFF_SEED=<seed>`;
//! `FRESHET_DIFF_STEPS` sets the number of workload steps (default 4000).

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::{Rng, ServerOptions, TestServer};
use tokio_postgres::{Client, SimpleQueryMessage};

/// One dynamic table under test.
struct Dt {
    name: &'static str,
    /// Its columns, for the grouped (multiplicity) comparison.
    columns: &'static str,
    /// The defining query.
    query: &'static str,
    /// Whether Freshet must maintain it incrementally.
    incremental: bool,
    /// Dynamic tables it reads (refreshed first when it is refreshed).
    upstream: &'static [&'static str],
}

const DTS: &[Dt] = &[
    Dt {
        name: "d_projection",
        columns: "id, v, s",
        query: "SELECT id, v, s FROM a",
        incremental: true,
        upstream: &[],
    },
    Dt {
        name: "d_filter",
        columns: "id, v",
        query: "SELECT id, v FROM a WHERE v % 3 <> 0 AND s IS NOT NULL",
        incremental: true,
        upstream: &[],
    },
    Dt {
        name: "d_expressions",
        columns: "id, x, us, f2, band, len",
        query: "SELECT id, v * 2 + k AS x, upper(s) AS us, coalesce(f, -1.0) * 2 AS f2, \
                CASE WHEN v > 50 THEN 'hi' WHEN v IS NULL THEN 'none' ELSE 'lo' END AS band, \
                length(s) AS len FROM a WHERE k IN (1, 2, 3)",
        incremental: true,
        upstream: &[],
    },
    Dt {
        name: "d_cte",
        columns: "id, d, k",
        query: "WITH p AS (SELECT id, k, v FROM a WHERE v > 10), \
                q AS (SELECT id, k, v - k AS d FROM p) \
                SELECT id, d, k FROM q WHERE d < 80",
        incremental: true,
        upstream: &[],
    },
    Dt {
        name: "d_derived",
        columns: "id, vv",
        query: "SELECT t.id, t.vv FROM (SELECT id, v * v AS vv FROM a WHERE v IS NOT NULL) t \
                WHERE t.vv % 2 = 0",
        incremental: true,
        upstream: &[],
    },
    Dt {
        name: "d_union_all",
        columns: "id, val, src",
        query: "SELECT id, v AS val, 'a' AS src FROM a WHERE v > 50 \
                UNION ALL SELECT id, w, 'b' FROM b \
                UNION ALL SELECT id, k, 'a2' FROM a WHERE s = 'x'",
        incremental: true,
        upstream: &[],
    },
    Dt {
        name: "d_duplicates",
        columns: "k, m",
        query: "SELECT k, v % 5 AS m FROM a",
        incremental: true,
        upstream: &[],
    },
    Dt {
        name: "d_chained",
        columns: "id, x1",
        query: "SELECT id, x + 1 AS x1 FROM d_expressions WHERE band = 'hi'",
        incremental: true,
        upstream: &["d_expressions"],
    },
    Dt {
        name: "d_aggregate",
        columns: "k, n, nv, sv, mn, mx, av",
        query: "SELECT k, count(*) AS n, count(v) AS nv, sum(v) AS sv, min(v) AS mn, \
                max(v) AS mx, avg(v) AS av FROM a GROUP BY k",
        incremental: true,
        upstream: &[],
    },
    // Counts, sums and averages: maintained from per-group state.
    Dt {
        name: "d_group_state",
        columns: "k3, n, nv, sv, sd, ad",
        query: "SELECT k % 3 AS k3, count(*) AS n, count(v) AS nv, sum(v) AS sv, \
                sum(CAST(v AS numeric(10,2)) / 4) AS sd, \
                avg(CAST(v AS numeric(10,2)) / 4) AS ad FROM a GROUP BY k % 3",
        incremental: true,
        upstream: &[],
    },
    // Minimums and maximums of text, from per-group state.
    Dt {
        name: "d_group_extremes",
        columns: "k3, ms, xs, mv, av",
        query: "SELECT k % 3 AS k3, min(s) AS ms, max(s) AS xs, min(v) AS mv, avg(v) AS av \
                FROM a GROUP BY k % 3",
        incremental: true,
        upstream: &[],
    },
    // Distinct counts of ints and text (NULL values and a NULL group key
    // included) beside a maximum, from per-group state and value counts.
    Dt {
        name: "d_group_distinct",
        columns: "s, n, dv, dk, mv",
        query: "SELECT s, count(*) AS n, count(DISTINCT v) AS dv, count(DISTINCT k % 4) AS dk, \
                max(v) AS mv FROM a GROUP BY s",
        incremental: true,
        upstream: &[],
    },
    Dt {
        name: "d_group_state_having",
        columns: "k, s, n, sv",
        query: "SELECT k, s, count(*) AS n, sum(v) AS sv FROM a WHERE id % 5 <> 0 \
                GROUP BY k, s HAVING count(v) > 1",
        incremental: true,
        upstream: &[],
    },
    Dt {
        name: "d_having",
        columns: "k3, n, sv, ds, af",
        query: "SELECT k % 3 AS k3, count(*) AS n, sum(v) AS sv, count(DISTINCT s) AS ds, \
                avg(f) AS af FROM a WHERE v IS NOT NULL GROUP BY k % 3 HAVING count(*) > 2",
        incremental: true,
        upstream: &[],
    },
    Dt {
        name: "d_global",
        columns: "n, sv, ms, mf",
        query: "SELECT count(*) AS n, sum(v) AS sv, min(s) AS ms, max(f) AS mf FROM a",
        incremental: true,
        upstream: &[],
    },
    Dt {
        name: "d_join",
        columns: "id, v, bid, w",
        query: "SELECT a.id, a.v, b.id AS bid, b.w FROM a JOIN b ON a.k = b.k WHERE b.w > 20",
        incremental: true,
        upstream: &[],
    },
    Dt {
        name: "d_join_residual",
        columns: "id, bid, total, us",
        query: "SELECT a.id, b.id AS bid, a.v + b.w AS total, upper(a.s) AS us \
                FROM a JOIN b ON a.k = b.k AND a.v > b.w",
        incremental: true,
        upstream: &[],
    },
    Dt {
        name: "d_comma_join",
        columns: "id, bid, w",
        query: "SELECT a.id, b.id AS bid, b.w FROM a, b WHERE a.k = b.k AND a.v > 30",
        incremental: true,
        upstream: &[],
    },
    Dt {
        name: "d_join_date_timestamp",
        columns: "id, bid, w",
        query: "SELECT x.id, y.bid, y.w FROM (SELECT id, make_date(2024, 1, k + 1) AS d FROM a) x \
                JOIN (SELECT id AS bid, w, CAST(make_date(2024, 1, k + 1) AS timestamp) AS t FROM b) y \
                ON x.d = y.t",
        incremental: true,
        upstream: &[],
    },
    Dt {
        name: "d_join_int_numeric",
        columns: "id, bid",
        query: "SELECT a.id, n.id AS bid FROM a JOIN (SELECT id, CAST(k AS numeric(6,1)) AS kn FROM b) n \
                ON a.k = n.kn",
        incremental: true,
        upstream: &[],
    },
    Dt {
        name: "d_distinct",
        columns: "k, s",
        query: "SELECT DISTINCT k, s FROM a",
        incremental: true,
        upstream: &[],
    },
    Dt {
        name: "d_distinct_expressions",
        columns: "m, nf",
        query: "SELECT DISTINCT v % 7 AS m, f IS NULL AS nf FROM a",
        incremental: true,
        upstream: &[],
    },
    Dt {
        name: "d_union_distinct",
        columns: "k, s",
        query: "SELECT k, s FROM a WHERE v > 20 UNION SELECT k, 'b' FROM b WHERE w > 30",
        incremental: true,
        upstream: &[],
    },
    Dt {
        name: "d_aggregate_of_dt",
        columns: "src, n, total",
        query: "SELECT src, count(*) AS n, sum(val) AS total FROM d_union_all GROUP BY src",
        incremental: true,
        upstream: &["d_union_all"],
    },
    Dt {
        name: "d_left_join",
        columns: "id, w",
        query: "SELECT a.id, b.w FROM a LEFT JOIN b ON a.k = b.k AND b.w > 50",
        incremental: false,
        upstream: &[],
    },
    Dt {
        name: "d_window",
        columns: "id, s",
        query: "SELECT id, sum(v) OVER (PARTITION BY k) AS s FROM a",
        incremental: false,
        upstream: &[],
    },
    Dt {
        name: "d_aggregate_of_join",
        columns: "k, n",
        query: "SELECT a.k, count(*) AS n FROM a JOIN b ON a.k = b.k GROUP BY a.k",
        incremental: false,
        upstream: &[],
    },
];

const SEED_VAR: &str = "FRESHET_DIFF_SEED";

fn steps() -> usize {
    std::env::var("FRESHET_DIFF_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000)
}

/// The rows of the last result of a simple query, as text.
async fn rows(
    client: &Client,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, tokio_postgres::Error> {
    let messages = client.simple_query(sql).await?;
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect())
}

/// Runs SQL the workload relies on; a failure is a test failure.
async fn exec(client: &Client, seed: u64, sql: &str) {
    if let Err(e) = client.batch_execute(sql).await {
        panic!(
            "seed {seed}: `{sql}` failed: {}",
            e.as_db_error()
                .map(|d| format!("{} ({})", d.message(), d.code().code()))
                .unwrap_or_else(|| e.to_string())
        );
    }
}

/// Compares the relation `left` (a table name or a parenthesized query) with
/// the query `right`, in the caller's transaction; returns one description
/// per kind of difference found.
async fn differences(
    client: &Client,
    left: &str,
    right: &str,
    columns: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let checks = [
        (
            "rows on the left but not the right",
            format!("SELECT * FROM {left} l EXCEPT ({right})"),
        ),
        (
            "rows on the right but not the left",
            format!("({right}) EXCEPT SELECT * FROM {left} l"),
        ),
        (
            "(row, multiplicity) on the left but not the right",
            format!(
                "SELECT {columns}, count(*) AS multiplicity__ FROM {left} l GROUP BY {columns} \
                 EXCEPT SELECT {columns}, count(*) AS multiplicity__ FROM ({right}) r GROUP BY {columns}"
            ),
        ),
        (
            "(row, multiplicity) on the right but not the left",
            format!(
                "SELECT {columns}, count(*) AS multiplicity__ FROM ({right}) r GROUP BY {columns} \
                 EXCEPT SELECT {columns}, count(*) AS multiplicity__ FROM {left} l GROUP BY {columns}"
            ),
        ),
        (
            "row counts (left, right)",
            format!(
                "SELECT x.n, y.n FROM (SELECT count(*) AS n FROM {left} l) x, \
                 (SELECT count(*) AS n FROM ({right}) r) y WHERE x.n <> y.n"
            ),
        ),
    ];
    let mut problems = Vec::new();
    for (what, sql) in &checks {
        let found = rows(client, sql).await?;
        if !found.is_empty() {
            problems.push(format!(
                "{what}: {} row(s), e.g. {:?}",
                found.len(),
                &found[..found.len().min(5)]
            ));
        }
    }
    Ok(problems)
}

/// Runs `f` inside one transaction (one snapshot), rolling back on error.
async fn in_snapshot<T>(
    client: &Client,
    f: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, tokio_postgres::Error> {
    client.batch_execute("BEGIN").await?;
    match f.await {
        Ok(v) => {
            client.batch_execute("COMMIT").await?;
            Ok(v)
        }
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// Compares a dynamic table with its query inside one transaction; returns a
/// description of the differences, or `None` when they are equal.
async fn difference(client: &Client, dt: &Dt) -> Result<Option<String>, tokio_postgres::Error> {
    let problems = in_snapshot(client, differences(client, dt.name, dt.query, dt.columns)).await?;
    Ok((!problems.is_empty()).then(|| problems.join("\n  ")))
}

/// Refreshes `dt` (after its upstream tables) and checks it.
async fn refresh_and_check(client: &Client, seed: u64, step: usize, dt: &Dt, checks: &mut usize) {
    for up in dt.upstream {
        exec(client, seed, &format!("ALTER DYNAMIC TABLE {up} REFRESH")).await;
    }
    exec(
        client,
        seed,
        &format!("ALTER DYNAMIC TABLE {} REFRESH", dt.name),
    )
    .await;
    *checks += 1;
    match difference(client, dt).await {
        Ok(None) => {}
        Ok(Some(diff)) => panic!(
            "seed {seed} (replay with {SEED_VAR}={seed}), step {step}: dynamic table {} \
             differs from its query after a refresh:\n  {diff}\nquery: {}",
            dt.name, dt.query
        ),
        Err(e) => panic!(
            "seed {seed}, step {step}: comparing {} failed: {}",
            dt.name,
            e.as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string())
        ),
    }
}

fn text_value(rng: &mut Rng) -> String {
    match rng.range(0, 6) {
        0 => "NULL".into(),
        1 => "'x'".into(),
        2 => "'y'".into(),
        3 => "'hello'".into(),
        4 => "''".into(),
        _ => format!("'w{}'", rng.range(0, 5)),
    }
}

fn int_value(rng: &mut Rng, lo: i64, hi: i64) -> String {
    if rng.range(0, 12) == 0 {
        "NULL".into()
    } else {
        (lo + rng.range(0, (hi - lo) as u64) as i64).to_string()
    }
}

fn a_row(rng: &mut Rng, id: i64) -> String {
    let f = if rng.range(0, 5) == 0 {
        "NULL".to_string()
    } else {
        format!("{}", rng.range(0, 400) as f64 / 4.0)
    };
    format!(
        "({id}, {}, {}, {}, {f})",
        rng.range(0, 6),
        int_value(rng, -20, 120),
        text_value(rng)
    )
}

fn b_row(rng: &mut Rng, id: i64) -> String {
    format!("({id}, {}, {})", rng.range(0, 6), int_value(rng, 0, 60))
}

/// One random write to the sources; returns a label for the statistics.
async fn random_write(
    client: &Client,
    seed: u64,
    rng: &mut Rng,
    next_id: &mut i64,
) -> &'static str {
    let mut new_id = || {
        *next_id += 1;
        *next_id
    };
    match rng.range(0, 100) {
        0..=39 => {
            let n = rng.range(1, 9);
            let values: Vec<String> = (0..n).map(|_| a_row(rng, new_id())).collect();
            exec(
                client,
                seed,
                &format!("INSERT INTO a VALUES {}", values.join(", ")),
            )
            .await;
            "insert a"
        }
        40..=49 => {
            let n = rng.range(1, 5);
            let values: Vec<String> = (0..n).map(|_| b_row(rng, new_id())).collect();
            exec(
                client,
                seed,
                &format!("INSERT INTO b VALUES {}", values.join(", ")),
            )
            .await;
            "insert b"
        }
        50..=61 => {
            let sql = match rng.range(0, 4) {
                0 => format!(
                    "UPDATE a SET v = v + {} WHERE id % {} = {}",
                    rng.range(1, 40) as i64 - 20,
                    rng.range(3, 12),
                    rng.range(0, 3)
                ),
                1 => format!(
                    "UPDATE a SET s = {} WHERE k = {}",
                    text_value(rng),
                    rng.range(0, 6)
                ),
                2 => format!(
                    "UPDATE a SET k = {}, f = NULL WHERE v > {}",
                    rng.range(0, 6),
                    rng.range(60, 130)
                ),
                _ => format!("UPDATE a SET v = NULL WHERE id % {} = 1", rng.range(10, 30)),
            };
            exec(client, seed, &sql).await;
            "update a"
        }
        62..=71 => {
            let sql = match rng.range(0, 3) {
                0 => format!(
                    "DELETE FROM a WHERE id % {} = {}",
                    rng.range(5, 20),
                    rng.range(0, 5)
                ),
                1 => format!(
                    "DELETE FROM a WHERE k = {} AND v > {}",
                    rng.range(0, 6),
                    rng.range(0, 120)
                ),
                _ => format!(
                    "DELETE FROM a WHERE id > {}",
                    (*next_id - rng.range(1, 6) as i64)
                ),
            };
            exec(client, seed, &sql).await;
            "delete a"
        }
        72..=77 => {
            let sql = if rng.range(0, 2) == 0 {
                format!(
                    "UPDATE b SET w = w + {} WHERE k = {}",
                    rng.range(1, 30),
                    rng.range(0, 6)
                )
            } else {
                format!("DELETE FROM b WHERE id % {} = 0", rng.range(3, 9))
            };
            exec(client, seed, &sql).await;
            "write b"
        }
        78..=85 => {
            // Several changes to one row inside one transaction: the refresh
            // sees only the net effect.
            let id = new_id();
            let sql = format!(
                "BEGIN; INSERT INTO a VALUES {}; UPDATE a SET v = v + 1 WHERE id = {id}; \
                 INSERT INTO b VALUES {}; DELETE FROM a WHERE id = {} ; COMMIT",
                a_row(rng, id),
                b_row(rng, new_id()),
                id - rng.range(1, 40) as i64
            );
            exec(client, seed, &sql).await;
            "transaction"
        }
        86..=88 => {
            let sql = format!(
                "BEGIN; INSERT INTO a VALUES {}; DELETE FROM a WHERE k = {}; ROLLBACK",
                a_row(rng, new_id()),
                rng.range(0, 6)
            );
            exec(client, seed, &sql).await;
            "rolled back"
        }
        _ => {
            // Insert a row and delete it again before any refresh sees it.
            let id = new_id();
            exec(
                client,
                seed,
                &format!("INSERT INTO a VALUES {}", a_row(rng, id)),
            )
            .await;
            exec(client, seed, &format!("DELETE FROM a WHERE id = {id}")).await;
            "insert+delete"
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_tables_equal_their_queries_after_every_refresh() {
    differential(ServerOptions::new(), steps(), None).await;
}

/// The same workload with no checkpointed table data kept in memory and a
/// checkpoint every 25 steps: sources, dynamic tables and their
/// maintenance state are read back from their Parquet files by scans,
/// change feeds, deletes and updates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_tables_equal_their_queries_with_table_data_on_disk() {
    let mut opts = ServerOptions::new();
    opts.extra_args = vec!["--resident-data-limit".into(), "0B".into()];
    differential(opts, steps() / 4, Some(25)).await;
}

/// Runs the seeded workload for `steps` steps against a server started with
/// `opts`, checking every refresh, with a `CHECKPOINT` every
/// `checkpoint_every` steps if set.
async fn differential(opts: ServerOptions, steps: usize, checkpoint_every: Option<usize>) {
    let seed = Rng::seed_from_env(SEED_VAR);
    eprintln!("dynamic-table differential test seed: {seed} (replay with {SEED_VAR}={seed})");
    let mut rng = Rng::new(seed);
    let started = Instant::now();

    let server = TestServer::start_with(opts);
    let client = server.connect().await;
    exec(
        &client,
        seed,
        "CREATE TABLE a (id bigint, k int, v int, s text, f double precision);
         CREATE TABLE b (id bigint, k int, w int)",
    )
    .await;
    let mut next_id = 0i64;
    for _ in 0..20 {
        random_write(&client, seed, &mut rng, &mut next_id).await;
    }
    for dt in DTS {
        let mode = if dt.incremental {
            "INCREMENTAL"
        } else {
            "AUTO"
        };
        exec(
            &client,
            seed,
            &format!(
                "CREATE DYNAMIC TABLE {} TARGET_LAG = '1 day' REFRESH_MODE = {mode} AS {}",
                dt.name, dt.query
            ),
        )
        .await;
    }
    // Each table's mode is what the test expects: the incremental ones really
    // are maintained incrementally, the others fall back with a reason.
    let modes = rows(
        &client,
        "SELECT name, refresh_mode, refresh_mode_reason FROM freshet_dynamic_tables()",
    )
    .await
    .expect("list dynamic tables");
    for dt in DTS {
        let row = modes
            .iter()
            .find(|r| r[0].as_deref() == Some(dt.name))
            .unwrap_or_else(|| panic!("{} is not listed: {modes:?}", dt.name));
        let expected = if dt.incremental {
            "INCREMENTAL"
        } else {
            "FULL"
        };
        assert_eq!(
            row[1].as_deref(),
            Some(expected),
            "{}: refresh_mode_reason {:?}",
            dt.name,
            row[2]
        );
        assert!(
            row[2].as_deref().is_some_and(|r| !r.is_empty()),
            "{} has no refresh_mode_reason",
            dt.name
        );
    }
    let mut checks = 0usize;
    for dt in DTS {
        refresh_and_check(&client, seed, 0, dt, &mut checks).await;
    }
    // The check itself can fail: it notices a missing row and a duplicated one.
    exec(
        &client,
        seed,
        "INSERT INTO a VALUES (-1, 1, 1, 'x', 1.0), (-2, 2, 2, 'y', 2.0)",
    )
    .await;
    exec(&client, seed, "ALTER DYNAMIC TABLE d_projection REFRESH").await;
    for wrong in [
        "SELECT id, v, s FROM a WHERE id <> -1",
        "SELECT id, v, s FROM a UNION ALL SELECT id, v, s FROM a WHERE id = -2",
    ] {
        let probe = Dt {
            query: wrong,
            ..DTS[0]
        };
        let found = difference(&client, &probe).await.expect("compare");
        assert!(
            found.is_some(),
            "the comparison did not notice that d_projection differs from `{wrong}`"
        );
    }

    let mut ops: BTreeMap<&'static str, usize> = BTreeMap::new();
    for step in 1..=steps {
        if rng.range(0, 100) < 22 {
            let dt = &DTS[rng.range(0, DTS.len() as u64) as usize];
            refresh_and_check(&client, seed, step, dt, &mut checks).await;
            *ops.entry("refresh+check").or_default() += 1;
        } else {
            let op = random_write(&client, seed, &mut rng, &mut next_id).await;
            *ops.entry(op).or_default() += 1;
        }
        if checkpoint_every.is_some_and(|n| step % n == 0) {
            exec(&client, seed, "CHECKPOINT").await;
        }
        // Keep the sources small enough for thousands of checks.
        if step % 200 == 0 {
            exec(
                &client,
                seed,
                "DELETE FROM a WHERE id % 4 = 0; DELETE FROM b WHERE id % 3 = 0",
            )
            .await;
        }
    }
    for dt in DTS {
        refresh_and_check(&client, seed, steps + 1, dt, &mut checks).await;
    }

    // The incremental tables never fell back to a full recompute after their
    // creation, and they did real incremental work.
    for dt in DTS.iter().filter(|d| d.incremental) {
        let actions = rows(
            &client,
            &format!(
                "SELECT refresh_action, count(*) FROM freshet_refresh_history('{}') \
                 WHERE refresh_trigger <> 'CREATION' GROUP BY refresh_action",
                dt.name
            ),
        )
        .await
        .expect("history");
        let count = |action: &str| {
            actions
                .iter()
                .find(|r| r[0].as_deref() == Some(action))
                .and_then(|r| r[1].as_deref()?.parse::<usize>().ok())
                .unwrap_or(0)
        };
        assert_eq!(
            count("FULL") + count("REINITIALIZE"),
            0,
            "seed {seed}: {} recomputed in full: {actions:?}",
            dt.name
        );
        assert!(
            count("INCREMENTAL") > 0,
            "seed {seed}: {} never refreshed incrementally: {actions:?}",
            dt.name
        );
    }
    let sizes = rows(
        &client,
        "SELECT (SELECT count(*) FROM a) AS a_rows, (SELECT count(*) FROM b) AS b_rows",
    )
    .await
    .expect("sizes");
    eprintln!(
        "seed {seed}: {steps} steps, {checks} refresh checks, operations {ops:?}, \
         final sizes a/b {:?}, in {:?}",
        sizes[0],
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// A chain of three dynamic tables: t → c1 → c2 → c3.
// ---------------------------------------------------------------------------

const C1: &str = "SELECT id, g, v * 2 AS v2 FROM t WHERE v % 4 <> 0";
const C2: &str =
    "WITH big AS (SELECT id, g, v2 FROM c1 WHERE v2 > 10) SELECT id, g, v2 + g AS w FROM big";
const C3: &str = "SELECT g, count(*) AS n, sum(w) AS total, max(id) AS max_id FROM c2 GROUP BY g";

/// The chain's queries composed down to `t`, reading only rows with
/// `id <= max_id` (all rows when `None`).
fn composed(max_id: Option<i64>) -> (String, String, String) {
    let bound = max_id.map_or(String::new(), |m| format!(" AND id <= {m}"));
    let q1 = format!("SELECT id, g, v * 2 AS v2 FROM t WHERE v % 4 <> 0{bound}");
    let q2 = format!(
        "WITH big AS (SELECT id, g, v2 FROM ({q1}) c1 WHERE v2 > 10) SELECT id, g, v2 + g AS w FROM big"
    );
    let q3 = format!(
        "SELECT g, count(*) AS n, sum(w) AS total, max(id) AS max_id FROM ({q2}) c2 GROUP BY g"
    );
    (q1, q2, q3)
}

fn single_i64(found: &[Vec<Option<String>>]) -> Option<i64> {
    found.first()?.first()?.as_deref()?.parse().ok()
}

/// Every level of the chain, read in one snapshot, equals its query composed
/// down to `t` over the prefix of `t` it has seen, and no level is ahead of
/// the one it reads. Returns the prefix bounds (c1, c2, c3).
async fn chain_prefix_consistent(
    client: &Client,
    seed: u64,
    context: &str,
) -> (Option<i64>, Option<i64>, Option<i64>) {
    let result = in_snapshot(client, async {
        let m1 = single_i64(&rows(client, "SELECT max(id) FROM c1").await?);
        let m2 = single_i64(&rows(client, "SELECT max(id) FROM c2").await?);
        let m3 = single_i64(&rows(client, "SELECT max(max_id) FROM c3").await?);
        let mut problems = Vec::new();
        for (level, bound, columns) in [
            ("c1", m1, "id, g, v2"),
            ("c2", m2, "id, g, w"),
            ("c3", m3, "g, n, total, max_id"),
        ] {
            let (q1, q2, q3) = composed(Some(bound.unwrap_or(-1)));
            let query = match level {
                "c1" => q1,
                "c2" => q2,
                _ => q3,
            };
            for p in differences(client, level, &query, columns).await? {
                problems.push(format!("{level} (prefix id <= {bound:?}): {p}"));
            }
        }
        Ok((m1, m2, m3, problems))
    })
    .await;
    let (m1, m2, m3, problems) =
        result.unwrap_or_else(|e| panic!("seed {seed}, {context}: chain check failed: {e:?}"));
    assert!(
        problems.is_empty(),
        "seed {seed}, {context}: the chain is not consistent:\n  {}",
        problems.join("\n  ")
    );
    assert!(
        m3 <= m2 && m2 <= m1,
        "seed {seed}, {context}: a downstream table is ahead of its upstream: \
         c1 {m1:?}, c2 {m2:?}, c3 {m3:?}"
    );
    (m1, m2, m3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_of_three_stays_consistent() {
    let seed = Rng::seed_from_env(SEED_VAR);
    eprintln!("dynamic-table chain test seed: {seed} (replay with {SEED_VAR}={seed})");
    let mut rng = Rng::new(seed);
    let server = TestServer::start();
    let client = server.connect().await;
    exec(&client, seed, "CREATE TABLE t (id bigint, g int, v int)").await;
    let mut next_id = 0i64;
    let mut t_row = |rng: &mut Rng| {
        next_id += 1;
        format!("({next_id}, {}, {})", rng.range(0, 5), rng.range(0, 40))
    };
    let initial: Vec<String> = (0..50).map(|_| t_row(&mut rng)).collect();
    exec(
        &client,
        seed,
        &format!("INSERT INTO t VALUES {}", initial.join(", ")),
    )
    .await;
    exec(
        &client,
        seed,
        &format!(
            "CREATE DYNAMIC TABLE c1 TARGET_LAG = DOWNSTREAM REFRESH_MODE = INCREMENTAL AS {C1};
             CREATE DYNAMIC TABLE c2 TARGET_LAG = DOWNSTREAM REFRESH_MODE = INCREMENTAL AS {C2};
             CREATE DYNAMIC TABLE c3 TARGET_LAG = '1 day' AS {C3}"
        ),
    )
    .await;

    // Part 1: random inserts, updates and deletes; refreshing the chain in
    // order after each burst. Each level equals its own query over the level
    // below and the composed query over t, all in one snapshot.
    for round in 0..60 {
        for _ in 0..rng.range(1, 6) {
            let sql = match rng.range(0, 4) {
                0 | 1 => {
                    let values: Vec<String> =
                        (0..rng.range(1, 6)).map(|_| t_row(&mut rng)).collect();
                    format!("INSERT INTO t VALUES {}", values.join(", "))
                }
                2 => format!(
                    "UPDATE t SET v = v + {} WHERE id % {} = {}",
                    rng.range(1, 9),
                    rng.range(2, 7),
                    rng.range(0, 2)
                ),
                _ => format!(
                    "DELETE FROM t WHERE id % {} = {}",
                    rng.range(4, 15),
                    rng.range(0, 4)
                ),
            };
            exec(&client, seed, &sql).await;
        }
        // Sometimes only the upstream part of the chain refreshes.
        let depth = if rng.range(0, 4) == 0 {
            rng.range(1, 3)
        } else {
            3
        };
        for table in ["c1", "c2", "c3"].iter().take(depth as usize) {
            exec(
                &client,
                seed,
                &format!("ALTER DYNAMIC TABLE {table} REFRESH"),
            )
            .await;
        }
        let problems = in_snapshot(&client, async {
            let (q1, q2, q3) = composed(None);
            let mut problems = Vec::new();
            let pairs = [
                ("c1", C1.to_string(), "id, g, v2", 1),
                ("c2", C2.to_string(), "id, g, w", 2),
                ("c3", C3.to_string(), "g, n, total, max_id", 3),
                ("c1", q1, "id, g, v2", 1),
                ("c2", q2, "id, g, w", 2),
                ("c3", q3, "g, n, total, max_id", 3),
            ];
            for (table, query, columns, level) in pairs {
                if level > depth {
                    continue;
                }
                for p in differences(&client, table, &query, columns).await? {
                    problems.push(format!("{table} vs `{query}`: {p}"));
                }
            }
            Ok(problems)
        })
        .await
        .unwrap_or_else(|e| panic!("seed {seed}, round {round}: chain check failed: {e:?}"));
        assert!(
            problems.is_empty(),
            "seed {seed} (replay with {SEED_VAR}={seed}), round {round} (refreshed {depth} level(s)): \
             the chain is inconsistent:\n  {}",
            problems.join("\n  ")
        );
    }
    let modes = rows(
        &client,
        "SELECT name, refresh_mode FROM freshet_dynamic_tables() WHERE name IN ('c1', 'c2') ORDER BY name",
    )
    .await
    .expect("modes");
    assert_eq!(
        modes,
        vec![
            vec![Some("c1".to_string()), Some("INCREMENTAL".to_string())],
            vec![Some("c2".to_string()), Some("INCREMENTAL".to_string())],
        ]
    );

    // Part 2: the scheduler keeps the chain fresh while one writer streams
    // inserts (ids increasing, so every snapshot of t is a prefix of the
    // stream). Whenever we look, each level equals the composed query over
    // some prefix, and no level is ahead of its upstream.
    //
    // That holds only once every level reflects part 1's updates and
    // deletes, which touched old ids: part 1's last round may have refreshed
    // only the upstream levels, so the whole chain is refreshed first.
    for table in ["c1", "c2", "c3"] {
        exec(
            &client,
            seed,
            &format!("ALTER DYNAMIC TABLE {table} REFRESH"),
        )
        .await;
    }
    exec(
        &client,
        seed,
        "ALTER DYNAMIC TABLE c3 SET TARGET_LAG = '1 second'",
    )
    .await;
    let writer_client = server.connect().await;
    let first_streamed = next_id + 1;
    let total: i64 = 1500;
    let writer = tokio::spawn(async move {
        let mut rng = Rng::new(seed ^ 0x5eed);
        for id in first_streamed..first_streamed + total {
            let sql = format!(
                "INSERT INTO t VALUES ({id}, {}, {})",
                rng.range(0, 5),
                rng.range(0, 40)
            );
            writer_client
                .batch_execute(&sql)
                .await
                .expect("streamed insert");
        }
    });
    let mut samples = 0usize;
    let mut distinct_c3_bounds = std::collections::BTreeSet::new();
    while !writer.is_finished() {
        let (_, _, m3) = chain_prefix_consistent(&client, seed, "while streaming").await;
        distinct_c3_bounds.insert(m3);
        samples += 1;
    }
    writer.await.expect("writer");
    // After the stream ends the scheduler catches up with all of it.
    let (_, _, full_q3) = composed(None);
    let expected_bound = single_i64(
        &rows(&client, &format!("SELECT max(max_id) FROM ({full_q3}) x"))
            .await
            .expect("bound"),
    );
    common::poll_until(
        std::time::Duration::from_secs(120),
        "the scheduler to refresh the chain up to the last streamed row",
        || async {
            let (_, _, m3) = chain_prefix_consistent(&client, seed, "catching up").await;
            (m3 == expected_bound).then_some(())
        },
    )
    .await;
    let scheduled = rows(
        &client,
        "SELECT count(*) FROM freshet_refresh_history('c3') \
         WHERE refresh_trigger = 'SCHEDULED' AND state = 'SUCCEEDED'",
    )
    .await
    .expect("history");
    let scheduled = single_i64(&scheduled).unwrap_or(0);
    assert!(
        scheduled > 0,
        "seed {seed}: the scheduler never refreshed c3"
    );
    eprintln!(
        "seed {seed}: chain consistent in {samples} samples while streaming \
         ({} distinct c3 states, {scheduled} scheduled refreshes of c3)",
        distinct_c3_bounds.len()
    );
}
