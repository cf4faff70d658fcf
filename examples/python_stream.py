#!/usr/bin/env python3
"""Streams synthetic logins into Freshet's continuous-inference pipeline
from Python, printing the rows scored and the lag while it runs.

    pip install './clients/python[ml]'
    freshet serve                                   # 127.0.0.1:5433
    python examples/python_stream.py --seconds 30

It trains a small scikit-learn login-risk pipeline, logs it in the registry
(uploading its ONNX bytes), builds the issue's dynamic table with the
Snowpark-style API, then appends a batch of logins every second with
``write_pandas`` (one COPY per batch) and refreshes. Each line shows how many
rows the refresh scored (only the new ones) and the table's lag behind the
newest login.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from freshet.ml.registry import Registry
from freshet.snowpark import Session
from freshet.snowpark.functions import col

LOCATIONS = ["US", "DE", "FR", "BR", "IN", "CN", "GB", "JP"]
RISK = {"US": -1.0, "DE": -1.2, "FR": -0.8, "GB": -1.0, "JP": -0.9, "BR": 0.6, "IN": 0.8, "CN": 1.2}


def train():
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    r = np.random.RandomState(0)
    uid = r.randint(1, 100_000, size=3000)
    loc = r.choice(LOCATIONS, size=3000)
    logit = np.array([RISK[x] for x in loc]) + (uid / 100_000 - 0.5) * 2.5
    X = pd.DataFrame({"USER_ID": uid.astype(np.int64), "LOCATION": loc})
    y = (r.rand(3000) < 1 / (1 + np.exp(-logit))).astype(int)
    pipe = Pipeline([
        ("features", ColumnTransformer([("loc", OneHotEncoder(handle_unknown="ignore"), ["LOCATION"]),
                                        ("uid", StandardScaler(), ["USER_ID"])])),
        ("clf", GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0)),
    ]).fit(X, y)
    return pipe, X


def batch(start: int, n: int, rng: np.random.RandomState) -> pd.DataFrame:
    ids = np.arange(start, start + n, dtype=np.int64)
    return pd.DataFrame({
        "LOGIN_ID": ids,
        "USER_ID": 1 + (ids * 7919) % 99991,
        "LOCATION": rng.choice(LOCATIONS, size=n),
        "EVENT_TIME": pd.Timestamp.now(tz="UTC").tz_localize(None).floor("us"),
    })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5433)
    ap.add_argument("--user", default="freshet")
    ap.add_argument("--seconds", type=int, default=20, help="how long to stream")
    ap.add_argument("--rows-per-second", type=int, default=2000)
    args = ap.parse_args()

    session = Session.builder.configs(
        {"host": args.host, "port": args.port, "user": args.user, "database": "freshet"}).create()
    session.sql("DROP DYNAMIC TABLE IF EXISTS logins_with_predictions").collect()
    session.sql("DROP TABLE IF EXISTS logins_raw").collect()
    rng = np.random.RandomState(1)
    session.write_pandas(batch(0, 1000, rng), "LOGINS_RAW", auto_create_table=True)

    pipe, X = train()
    reg = Registry(session=session, database_name="ML", schema_name="REGISTRY")
    if any(m.name == "mymodel" for m in reg.models()):
        reg.delete_model("MYMODEL")
    mv = reg.log_model(pipe, model_name="MYMODEL", sample_input_data=X.head(), comment="login risk")
    print(f"logged {mv!r}")

    # the Snowpark pipeline
    model = reg.get_model("MYMODEL")
    df_raw = session.table("LOGINS_RAW")
    predictions_df = model.run(df_raw.select("USER_ID", "LOCATION"))
    joined_df = df_raw.join(predictions_df, on=["USER_ID", "LOCATION"])
    joined_df.create_or_replace_dynamic_table(
        name="LOGINS_WITH_PREDICTIONS", warehouse="MY_WH", lag="1 minute",
        refresh_mode="INCREMENTAL", initialize="ON_CREATE",
        comment="Dynamic table continuously updated with model predictions")
    print(joined_df.queries["queries"][0])

    next_id = 1000
    end = time.time() + args.seconds
    print(f"{'sent':>8} {'rows':>9} {'scored':>7} {'refresh ms':>10} {'lag s':>6} {'risky':>6}")
    while time.time() < end:
        tick = time.time()
        session.write_pandas(batch(next_id, args.rows_per_second, rng), "LOGINS_RAW")
        next_id += args.rows_per_second
        session.sql("ALTER DYNAMIC TABLE logins_with_predictions REFRESH").collect()
        last = session.sql(
            "SELECT model_rows_scored, refresh_end_time - refresh_start_time AS took "
            "FROM freshet_refresh_history('logins_with_predictions') WHERE state = 'SUCCEEDED' "
            "ORDER BY refresh_start_time DESC LIMIT 1").first()
        table = session.table("LOGINS_WITH_PREDICTIONS")
        total = table.count()
        risky = table.filter(col("label") == 1).count()
        lag = session.sql(
            "SELECT extract(epoch FROM (now() - max(event_time))) FROM logins_with_predictions").first()[0]
        took_ms = last[1].total_seconds() * 1000 if hasattr(last[1], "total_seconds") else float("nan")
        print(f"{next_id:>8} {total:>9} {last[0]:>7} {took_ms:>10.1f} {float(lag or 0):>6.2f} {risky:>6}")
        time.sleep(max(0.0, 1.0 - (time.time() - tick)))
    session.close()


if __name__ == "__main__":
    main()
