"""log_model round trips: the server's prediction equals the library's own
predict / predict_proba within 1e-5; and the registry's model/version API."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from freshet.exceptions import FreshetClientError
from freshet.ml.registry import Model, ModelVersion, Registry


def data(n=300, f=4, seed=0):
    r = np.random.RandomState(seed)
    X = r.normal(size=(n, f)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] - X[:, 2] > 0).astype(np.int64) + (X[:, 3] > 1).astype(np.int64)
    return X, y


@pytest.fixture
def reg(session):
    # the test's own database (the session's), so tests do not see each other's models
    return Registry(session, schema_name="REG")


def features_df(session, X):
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame.insert(0, "id", np.arange(len(frame)))
    session.write_pandas(frame, "features", auto_create_table=True, overwrite=True)
    return session.table("features")


@pytest.mark.parametrize("kind", ["logreg", "forest", "tree_reg", "linear_reg"])
def test_sklearn_round_trip(session, reg, kind):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.tree import DecisionTreeRegressor

    X, y = data()
    model = {
        "logreg": lambda: LogisticRegression(max_iter=500),
        "forest": lambda: RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0),
        "tree_reg": lambda: DecisionTreeRegressor(max_depth=6, random_state=0),
        "linear_reg": lambda: LinearRegression(),
    }[kind]()
    target = y if kind in ("logreg", "forest") else X[:, 0] * 3.0 - X[:, 1]
    model.fit(X, target)
    mv = reg.log_model(model, model_name=f"m_{kind}", sample_input_data=X[:5])
    assert isinstance(mv, ModelVersion) and mv.version_name == "v1"
    df = features_df(session, X)
    scored = mv.run(df.select("f0", "f1", "f2", "f3"))
    # lazy: one statement built on MODEL(...)!predict
    assert "!predict(" in scored.queries["queries"][0]
    rows = scored.sort("f0").to_pandas()
    assert len(rows) == len(X)
    order = np.argsort(X[:, 0], kind="stable")
    X = X[order]
    np.testing.assert_array_equal(rows[["f0", "f1", "f2", "f3"]].to_numpy(np.float32), X)
    if kind in ("logreg", "forest"):
        assert (rows["label"].to_numpy() == model.predict(X)).all()
        np.testing.assert_allclose(np.array(rows["probabilities"].tolist()), model.predict_proba(X),
                                   rtol=1e-5, atol=1e-5)
    else:
        got_v = np.array(rows["variable"].tolist()).reshape(-1)
        np.testing.assert_allclose(got_v, model.predict(X), rtol=1e-5, atol=1e-5)


def test_pandas_run_and_sources(session, reg, tmp_path):
    from sklearn.linear_model import LogisticRegression
    from skl2onnx import to_onnx

    X, y = data(seed=3)
    clf = LogisticRegression(max_iter=500).fit(X, y)
    onx = to_onnx(clf, X[:1], options={id(clf): {"zipmap": False}})
    path = tmp_path / "clf.onnx"
    path.write_bytes(onx.SerializeToString())
    v1 = reg.log_model(onx, model_name="Src")                              # ModelProto
    v2 = reg.log_model(onx.SerializeToString(), model_name="src")          # bytes
    v3 = reg.log_model(str(path), model_name="SRC", version_name="from_path")  # path
    assert [v.version_name for v in reg.get_model("src").versions()] == ["v1", "v2", "from_path"]
    assert (v1.version_name, v2.version_name, v3.version_name) == ("v1", "v2", "from_path")
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"], index=np.arange(len(X)) * 10)
    out = v3.run(frame)
    assert list(out.index) == list(frame.index)
    assert list(out.columns) == ["a", "b", "c", "d", "label", "probabilities"]
    assert (out["label"].to_numpy() == clf.predict(X)).all()
    np.testing.assert_allclose(np.array(out["probabilities"].tolist()), clf.predict_proba(X), rtol=1e-5, atol=1e-5)
    proba = v1.run(frame, function_name="predict_proba")
    np.testing.assert_allclose(np.array(proba["probabilities"].tolist()), clf.predict_proba(X), rtol=1e-5, atol=1e-5)
    # no scratch table is left behind
    assert not [r for r in session.sql("SHOW TABLES").collect() if r[1].startswith("__freshet")]


def test_models_versions_default_metrics(session, reg):
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    X, y = data(seed=5)
    lr = LogisticRegression(max_iter=500).fit(X, y)
    svc = LinearSVC().fit(X, y)
    reg.log_model(lr, model_name="clf", version_name="lr", comment="churn", metrics={"acc": 0.9})
    mv = reg.log_model(svc, model_name="clf", version_name="svc")
    m = reg.get_model("CLF")
    assert isinstance(m, Model)
    assert [x.name for x in reg.models()] == ["clf"]
    shown = reg.show_models()
    assert list(shown["name"]) == ["clf"] and shown.loc[0, "comment"] == "churn"
    assert shown.loc[0, "owner"] == session.sql("SELECT current_user").collect()[0][0]
    assert m.default.version_name == "lr"
    assert m.version("LR").show_metrics() == {"acc": 0.9}
    assert m.version("lr").get_metric("acc") == 0.9
    mv.set_metric("confusion", [[1, 2], [3, 4]])
    assert mv.show_metrics() == {"confusion": [[1, 2], [3, 4]]}
    with pytest.raises(KeyError):
        mv.get_metric("acc")
    versions = m.show_versions()
    assert list(versions["name"]) == ["lr", "svc"]
    df = features_df(session, X).select("f0", "f1", "f2", "f3")
    first = m.run(df).sort("f0").to_pandas()
    m.default = "svc"
    assert m.default.version_name == "svc"
    second = m.run(df).sort("f0").to_pandas()
    order = np.argsort(X[:, 0], kind="stable")
    assert (first["label"].to_numpy() == lr.predict(X)[order]).all()
    assert (second["label"].to_numpy() == svc.predict(X)[order]).all()
    m.comment = "changed"
    assert m.comment == "changed"
    m.delete_version("lr")
    assert [v.version_name for v in m.versions()] == ["svc"]
    reg.delete_model("clf")
    assert reg.models() == []
    with pytest.raises(ValueError, match="Unable to find model .clf.* \\(models there: none\\); register it with log_model"):
        reg.get_model("clf")


def test_pipeline_needs_sample_input(session, reg):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame({"city": ["a", "b", "c", "a"] * 10, "n": np.arange(40)})
    pipe = Pipeline([("f", ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), ["city"])],
                                             remainder="passthrough")),
                     ("m", LogisticRegression())]).fit(frame, np.arange(40) % 2)
    with pytest.raises(FreshetClientError, match="sample_input_data"):
        reg.log_model(pipe, model_name="pipe")
    assert reg.models() == []  # nothing was registered
    mv = reg.log_model(pipe, model_name="pipe", sample_input_data=frame.head())
    out = mv.run(frame)
    assert (out["label"].to_numpy() == pipe.predict(frame)).all()


@pytest.mark.parametrize("lib", ["xgboost", "lightgbm"])
@pytest.mark.parametrize("task", ["clf", "reg"])
def test_boosting_round_trip(session, reg, lib, task):
    X, y = data(n=400, seed=11)
    if task == "reg":
        y = X[:, 0] * 2.0 - X[:, 2]
    if lib == "xgboost":
        import xgboost as xgb

        model = (xgb.XGBClassifier if task == "clf" else xgb.XGBRegressor)(n_estimators=15, max_depth=4)
    else:
        import lightgbm as lgb

        model = (lgb.LGBMClassifier if task == "clf" else lgb.LGBMRegressor)(n_estimators=15, max_depth=4,
                                                                              verbose=-1)
    model.fit(X, y)
    mv = reg.log_model(model, model_name=f"{lib}_{task}", sample_input_data=X[:5])
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    out = mv.run(frame)
    outputs = [o["name"] for o in mv.outputs]
    assert list(out.columns) == ["a", "b", "c", "d"] + outputs
    if task == "clf":
        assert (out[outputs[0]].to_numpy() == model.predict(X)).all()
        np.testing.assert_allclose(np.array(out[outputs[1]].tolist()), model.predict_proba(X), rtol=1e-5, atol=1e-5)
    else:
        got = np.array(out[outputs[0]].tolist(), dtype=np.float64).reshape(-1)
        np.testing.assert_allclose(got, model.predict(X), rtol=1e-5, atol=1e-5)


def test_registry_location_and_snowflake_arguments(session, config):
    """database_name without schema_name means that database's PUBLIC schema
    (snowflake-ml-python's rule); snowflake-ml-python's packaging options
    are accepted and change nothing; a Freshet DataFrame types the inputs."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    db = session.get_current_database()
    session.sql("CREATE SCHEMA IF NOT EXISTS elsewhere").collect()
    session.use_schema("elsewhere")
    assert Registry(session, database_name=db.upper()).location == f"{db}.public"
    assert Registry(session).location == f"{db}.elsewhere"
    reg = Registry(session, database_name=db, schema_name="Models")
    assert reg.location == f"{db}.models"

    frame = pd.DataFrame({"city": ["Zürich", "東京", "Lima", "Zürich"] * 10, "n": np.arange(40, dtype=np.int64)})
    y = (np.arange(40) % 3 == 0).astype(np.int64)
    pipe = Pipeline([("f", ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), ["city"])],
                                             remainder="passthrough")),
                     ("m", LogisticRegression(max_iter=500))]).fit(frame, y)
    train = session.write_pandas(frame, "train", auto_create_table=True)
    mv = reg.log_model(pipe, model_name="cities", sample_input_data=train, conda_dependencies=["scikit-learn"],
                       options={"relax_version": True, "method_options": {}}, target_platforms=["WAREHOUSE"])
    assert [i["name"] for i in mv.inputs] == ["city", "n"]
    out = reg.get_model("cities").run(train, strict_input_validation=True).sort("n").to_pandas()
    assert (out["label"].to_numpy() == pipe.predict(frame)).all()
    np.testing.assert_allclose(np.array(out["probabilities"].tolist()), pipe.predict_proba(frame),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(NotImplementedError, match="partition_column"):
        mv.run(train, partition_column="city")
