"""The issue's Snowpark pipeline, verbatim apart from its imports (and the
server's address in the config), against a live server:

* a scikit-learn login-risk pipeline is logged with ``log_model``;
* logins are streamed in with ``write_pandas`` (COPY) and INSERTs;
* the dynamic table is refreshed;
* its predictions equal onnxruntime's on the same rows, and the SQL path's;
* the refresh history shows a later refresh scored exactly the new rows.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from freshet.ml.registry import Registry
from freshet.snowpark import Session
from freshet.snowpark.functions import col

LOCATIONS = ["US", "DE", "FR", "BR", "IN", "CN", "GB", "JP"]
RISK = {"US": -1.0, "DE": -1.2, "FR": -0.8, "GB": -1.0, "JP": -0.9, "BR": 0.6, "IN": 0.8, "CN": 1.2}


def train_login_risk():
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    r = np.random.RandomState(7)
    n = 2000
    uid = r.randint(1, 100_000, size=n).astype(np.int64)
    loc = r.choice(LOCATIONS, size=n)
    logit = np.array([RISK[x] for x in loc]) + (uid / 100_000.0 - 0.5) * 2.5
    y = (r.rand(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    X = pd.DataFrame({"USER_ID": uid, "LOCATION": loc})
    pipe = Pipeline([
        ("features", ColumnTransformer([
            ("loc", OneHotEncoder(handle_unknown="ignore"), ["LOCATION"]),
            ("uid", StandardScaler(), ["USER_ID"]),
        ])),
        ("clf", GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=0)),
    ])
    pipe.fit(X, y)
    return pipe, X


def logins(start: int, n: int, seed: int) -> pd.DataFrame:
    r = np.random.RandomState(seed)
    ids = np.arange(start, start + n, dtype=np.int64)
    frame = pd.DataFrame({
        "LOGIN_ID": ids,
        # distinct per login (99991 is prime), so the example's self-join on
        # (USER_ID, LOCATION) matches each login with its own prediction only
        "USER_ID": 1 + (ids * 7919) % 99991,
        "LOCATION": r.choice(LOCATIONS + ["ZZ", "Zürich", ""], size=n).astype(object),
        "EVENT_TIME": pd.Timestamp("2024-01-01") + pd.to_timedelta(ids, unit="s"),
    })
    frame.loc[frame.index % 97 == 5, "LOCATION"] = None  # a few NULLs: not scored
    return frame


def onnx_predict(onnx_bytes: bytes, frame: pd.DataFrame):
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    feeds = {
        "USER_ID": frame["user_id"].to_numpy(np.int64).reshape(-1, 1),
        "LOCATION": frame["location"].astype(object).to_numpy().reshape(-1, 1),
    }
    label, proba = sess.run(None, feeds)
    return label, proba


@pytest.fixture
def pipeline_setup(config, monkeypatch):
    """What the example expects to exist: ML.REGISTRY.MYMODEL and LOGINS_RAW
    in the default database. Keeps the ONNX bytes log_model uploads."""
    from freshet.ml import _convert

    uploaded = []
    real = _convert.to_onnx_bytes

    def recording(*a, **k):
        uploaded.append(real(*a, **k))
        return uploaded[-1]

    monkeypatch.setattr(_convert, "to_onnx_bytes", recording)
    pipe, X = train_login_risk()
    with Session.builder.configs({**config, "database": "freshet"}).create() as s:
        s.sql("DROP DYNAMIC TABLE IF EXISTS logins_with_predictions").collect()
        s.sql("DROP TABLE IF EXISTS logins_raw").collect()
        reg = Registry(session=s, database_name="ML", schema_name="REGISTRY")
        if any(m.name == "mymodel" for m in reg.models()):
            reg.delete_model("MYMODEL")
        mv = reg.log_model(pipe, model_name="MYMODEL", sample_input_data=X.head(20),
                           comment="login risk", metrics={"train_rows": len(X)})
        first = logins(0, 5000, seed=1)
        s.write_pandas(first, "LOGINS_RAW", auto_create_table=True)
    assert len(uploaded) == 1
    return pipe, X, mv, uploaded[0]


def test_issue_example(config, pipeline_setup):
    pipe, X, mv, onnx_bytes = pipeline_setup
    host, port = config["host"], config["port"]

    # ---- the issue's example (imports above; server address from the test) ----
    sp_session = Session.builder.configs({"host": host, "port": port, "user": "freshet", "database": "freshet"}).create()
    reg = Registry(session=sp_session, database_name="ML", schema_name="REGISTRY")
    model = reg.get_model("MYMODEL")                       # the model's default version
    df_raw = sp_session.table("LOGINS_RAW")
    predictions_df = model.run(df_raw.select("USER_ID", "LOCATION"))
    joined_df = df_raw.join(predictions_df, on=["USER_ID", "LOCATION"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        joined_df.create_or_replace_dynamic_table(
            name="LOGINS_WITH_PREDICTIONS",
            warehouse="MY_WH",
            lag='20 minutes',
            refresh_mode='INCREMENTAL',
            initiliaze="ON_CREATE",
            comment="Dynamic table continuously updated with model predictions",
        )
    # ---- end of the example ----

    assert any("initialize" in str(w.message) and "initiliaze" in str(w.message) for w in caught), \
        [str(w.message) for w in caught]
    assert mv.version_name == model.default.version_name == "v1"
    assert model.default.show_metrics() == {"train_rows": len(X)}

    s = sp_session
    refresh_mode = s.sql(
        "SELECT refresh_mode FROM information_schema.dynamic_tables WHERE name = 'logins_with_predictions'"
    ).collect()
    assert [r[0] for r in refresh_mode] == ["INCREMENTAL"], refresh_mode

    # more logins: a COPY and INSERTs
    s.write_pandas(logins(5000, 3000, seed=2), "LOGINS_RAW")
    s.sql("INSERT INTO logins_raw VALUES (8000, 424242, 'CN', '2024-03-01 00:00:00'), "
          "(8001, 17, 'DE', '2024-03-01 00:00:01'), (8002, 99999, NULL, '2024-03-01 00:00:02')").collect()
    s.sql("ALTER DYNAMIC TABLE logins_with_predictions REFRESH").collect()
    last_batch = logins(8003, 700, seed=3)
    s.write_pandas(last_batch, "LOGINS_RAW")
    s.sql("ALTER DYNAMIC TABLE logins_with_predictions REFRESH").collect()

    # the table equals the example's query run now, and the SQL path
    table = s.table("LOGINS_WITH_PREDICTIONS").sort("login_id").to_pandas()
    fresh = joined_df.sort("login_id").to_pandas()
    assert list(table.columns) == ["user_id", "location", "login_id", "event_time", "label", "probabilities"]
    pd.testing.assert_frame_equal(table, fresh)
    # rows with a NULL key do not join (SQL's equality), as in Snowpark
    raw = s.table("LOGINS_RAW").filter(col("LOCATION").is_not_null() & col("USER_ID").is_not_null())
    assert len(table) == raw.count()
    assert table["login_id"].is_unique
    assert s.table("LOGINS_RAW").count() == 8703

    sql_path = s.sql(
        "WITH m AS MODEL ml.registry.mymodel SELECT login_id, m!predict(user_id, location):label AS label, "
        "m!predict(user_id, location):probabilities AS probabilities FROM logins_raw "
        "WHERE location IS NOT NULL ORDER BY login_id").to_pandas()
    merged = table.merge(sql_path, on="login_id", suffixes=("", "_sql"))
    assert len(merged) == len(table)
    assert (merged["label"] == merged["label_sql"]).all()
    np.testing.assert_allclose(np.array(merged["probabilities"].tolist()),
                               np.array(merged["probabilities_sql"].tolist()), rtol=1e-6)

    # onnxruntime on the same rows, with the bytes log_model uploaded
    label, proba = onnx_predict(onnx_bytes, table)
    assert (label == pipe.predict(table.rename(columns=str.upper)[["USER_ID", "LOCATION"]])).all()
    assert (table["label"].to_numpy(np.int64) == label).all()
    np.testing.assert_allclose(np.array(table["probabilities"].tolist()), proba, rtol=1e-5, atol=1e-6)

    # a later refresh scored only the new rows
    hist = s.sql(
        "SELECT refresh_action, inserted_rows, model_rows_scored, source_rows_read "
        "FROM freshet_refresh_history('logins_with_predictions') WHERE state = 'SUCCEEDED' "
        "ORDER BY refresh_start_time").to_pandas()
    assert list(hist["refresh_action"])[-1] == "INCREMENTAL", hist
    last = hist.iloc[-1]
    # each new login scored once (a NULL input is not scored), though the
    # join recomputes every (user, location) key the new logins touch
    scorable = int(last_batch["LOCATION"].notna().sum())
    assert last["model_rows_scored"] == scorable, hist
    sp_session.close()
