//! The mission's statement, verbatim, through the wire: a dynamic table of
//! model predictions over a logins table. Logins are inserted, the table is
//! created (and filled), more logins arrive and a refresh picks them up.
//! Every prediction must match the onnxruntime oracle committed with the
//! fixtures, and the refresh history must show that each refresh scored
//! exactly the rows that were new, and that deletions scored nothing.

mod common;

use common::{workspace_root, ServerOptions, TestServer};
use tokio_postgres::{Client, SimpleQueryMessage};

/// The statement from the dynamic-tables issue, character for character.
const MISSION: &str = "CREATE OR REPLACE DYNAMIC TABLE logins_with_predictions
WAREHOUSE = my_wh
TARGET_LAG = '20 minutes'
REFRESH_MODE = INCREMENTAL
INITIALIZE = on_create
COMMENT = 'Dynamic table with continuously updated model predictions'
AS
WITH my_model AS MODEL ml.registry.mymodel
SELECT
l.login_id,
l.user_id,
l.location,
l.event_time,
my_model!predict(l.user_id, l.location) AS prediction_result
FROM logins_raw l;";

async fn rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let messages = client.simple_query(sql).await.unwrap_or_else(|e| {
        panic!(
            "`{sql}` failed: {}",
            e.as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string())
        )
    });
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

/// The oracle: the model's inputs and onnxruntime's outputs.
struct Oracle {
    user_ids: Vec<i64>,
    locations: Vec<String>,
    labels: Vec<i64>,
    probabilities: Vec<Vec<f64>>,
}

fn oracle() -> Oracle {
    let dir = workspace_root().join("tests/fixtures/models");
    let read = |name: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(dir.join(name)).expect("fixture file");
        serde_json::from_str(&text).expect("fixture json")
    };
    let inputs = read("login_risk.inputs.json");
    let expected = read("login_risk.expected.json");
    let column = |v: &serde_json::Value, name: &str, key: &str| -> Vec<serde_json::Value> {
        v[key]
            .as_array()
            .and_then(|list| list.iter().find(|x| x["name"] == name))
            .and_then(|x| {
                x.get("columns")
                    .and_then(|c| c[0].as_array())
                    .or_else(|| x["data"].as_array())
            })
            .cloned()
            .unwrap_or_else(|| panic!("fixture has no {name}"))
    };
    Oracle {
        user_ids: column(&inputs, "user_id", "inputs")
            .iter()
            .map(|v| v.as_i64().expect("user_id"))
            .collect(),
        locations: column(&inputs, "location", "inputs")
            .iter()
            .map(|v| v.as_str().expect("location").to_string())
            .collect(),
        labels: column(&expected, "label", "outputs")
            .iter()
            .map(|v| v.as_i64().expect("label"))
            .collect(),
        probabilities: column(&expected, "probabilities", "outputs")
            .iter()
            .map(|v| {
                v.as_array()
                    .expect("probability pair")
                    .iter()
                    .map(|p| p.as_f64().expect("probability"))
                    .collect()
            })
            .collect(),
    }
}

fn login_values(oracle: &Oracle, range: std::ops::Range<usize>) -> String {
    range
        .map(|i| {
            format!(
                "({i}, {}, '{}', TIMESTAMP '2024-05-01 10:00:00' + INTERVAL '{i} minutes')",
                oracle.user_ids[i],
                oracle.locations[i].replace('\'', "''")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// (action, trigger, rows scored, rows inserted, rows deleted) of each
/// successful refresh, oldest first, read through Snowflake's form.
async fn history(client: &Client) -> Vec<(String, String, i64, i64, i64)> {
    rows(
        client,
        "SELECT refresh_action, refresh_trigger, statistics:numModelRowsScored::bigint, \
         statistics:numInsertedRows::bigint, statistics:numDeletedRows::bigint \
         FROM TABLE(INFORMATION_SCHEMA.DYNAMIC_TABLE_REFRESH_HISTORY(NAME => 'logins_with_predictions')) \
         WHERE state = 'SUCCEEDED' ORDER BY refresh_start_time",
    )
    .await
    .into_iter()
    .map(|r| {
        let text = |i: usize| r[i].clone().unwrap_or_default();
        let int = |i: usize| text(i).parse::<i64>().expect("a count");
        (text(0), text(1), int(2), int(3), int(4))
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mission_statement_scores_each_new_login_once() {
    let oracle = oracle();
    let n = oracle.user_ids.len();
    assert!(n >= 200, "the fixture has {n} rows");
    let first = n * 2 / 3;
    let models = workspace_root().join("tests/fixtures/models");
    let server = TestServer::start_with(ServerOptions::new().model_dir(&models));
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE DATABASE ml; CREATE SCHEMA ml.registry;
             CREATE MODEL ml.registry.mymodel WITH VERSION v1 FROM 'login_risk.onnx';
             CREATE TABLE logins_raw (login_id bigint, user_id bigint, location text, event_time timestamp)",
        )
        .await
        .expect("setup");
    client
        .batch_execute(&format!(
            "INSERT INTO logins_raw VALUES {}",
            login_values(&oracle, 0..first)
        ))
        .await
        .expect("first logins");
    client
        .batch_execute(MISSION)
        .await
        .expect("the mission's statement");
    client
        .batch_execute(&format!(
            "INSERT INTO logins_raw VALUES {}",
            login_values(&oracle, first..n)
        ))
        .await
        .expect("more logins");
    client
        .batch_execute("ALTER DYNAMIC TABLE logins_with_predictions REFRESH")
        .await
        .expect("refresh");

    // Every prediction matches onnxruntime's.
    let predictions = rows(
        &client,
        "SELECT login_id, user_id, location, prediction_result FROM logins_with_predictions ORDER BY login_id",
    )
    .await;
    assert_eq!(predictions.len(), n, "one prediction per login");
    for (i, row) in predictions.iter().enumerate() {
        assert_eq!(row[0].as_deref(), Some(i.to_string().as_str()), "login ids");
        let result: serde_json::Value =
            serde_json::from_str(row[3].as_deref().expect("a prediction"))
                .unwrap_or_else(|e| panic!("prediction of login {i} is not json: {e}: {row:?}"));
        assert_eq!(
            result["label"].as_i64(),
            Some(oracle.labels[i]),
            "label of login {i} ({:?}, {:?}): {result}",
            oracle.user_ids[i],
            oracle.locations[i]
        );
        let probabilities: Vec<f64> = result["probabilities"]
            .as_array()
            .unwrap_or_else(|| panic!("no probabilities for login {i}: {result}"))
            .iter()
            .filter_map(|p| p.as_f64())
            .collect();
        assert_eq!(
            probabilities.len(),
            oracle.probabilities[i].len(),
            "login {i}"
        );
        for (got, want) in probabilities.iter().zip(&oracle.probabilities[i]) {
            assert!(
                (got - want).abs() <= 1e-5,
                "probability of login {i}: {got} vs onnxruntime's {want}"
            );
        }
    }

    // The creation scored the first logins, the refresh exactly the new ones.
    assert_eq!(
        history(&client).await,
        vec![
            (
                "FULL".into(),
                "CREATION".into(),
                first as i64,
                first as i64,
                0
            ),
            (
                "INCREMENTAL".into(),
                "MANUAL".into(),
                (n - first) as i64,
                (n - first) as i64,
                0
            ),
        ]
    );

    // Nothing new: nothing scored. Deletions: rows removed, nothing scored.
    client
        .batch_execute(
            "ALTER DYNAMIC TABLE logins_with_predictions REFRESH;
             DELETE FROM logins_raw WHERE login_id < 10;
             ALTER DYNAMIC TABLE logins_with_predictions REFRESH",
        )
        .await
        .expect("more refreshes");
    let last_two: Vec<_> = history(&client).await.into_iter().skip(2).collect();
    assert_eq!(
        last_two,
        vec![
            ("NO_DATA".into(), "MANUAL".into(), 0, 0, 0),
            ("INCREMENTAL".into(), "MANUAL".into(), 0, 0, 10),
        ]
    );
    let count = rows(&client, "SELECT count(*) FROM logins_with_predictions").await;
    assert_eq!(count[0][0].as_deref(), Some((n - 10).to_string().as_str()));

    // The clauses are stored and shown; the model version is pinned.
    let shown = rows(
        &client,
        "SELECT warehouse, comment, target_lag, refresh_mode FROM freshet_dynamic_tables() \
         WHERE name = 'logins_with_predictions'",
    )
    .await;
    assert_eq!(
        shown,
        vec![vec![
            Some("my_wh".to_string()),
            Some("Dynamic table with continuously updated model predictions".to_string()),
            Some("20 minutes".to_string()),
            Some("INCREMENTAL".to_string()),
        ]]
    );
    let described = rows(&client, "DESCRIBE DYNAMIC TABLE logins_with_predictions").await;
    assert!(
        described.iter().any(
            |r| r[0].as_deref() == Some("ml.registry.mymodel") && r[5].as_deref() == Some("v1")
        ),
        "{described:?}"
    );
}
