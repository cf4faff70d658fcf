"""Bad input: unknown keywords, a model type that cannot be converted, a
server error. Each raises the documented exception and the session is still
usable afterwards."""

from __future__ import annotations

import warnings

import pytest

from freshet.exceptions import FreshetClientError, FreshetSQLException
from freshet.ml.registry import Model, ModelVersion, Registry
from freshet.snowpark import Session, SnowparkSQLException
from freshet.snowpark.functions import col


@pytest.fixture
def t(session):
    session.sql("CREATE TABLE t (id bigint, name text)").collect()
    session.sql("INSERT INTO t VALUES (1, 'a'), (2, NULL)").collect()
    return session.table("t")


def still_usable(session):
    assert session.table("t").count() == 2


def test_unknown_kwargs(session, t):
    with pytest.raises(TypeError, match="'warehose'.*did you mean 'warehouse'"):
        t.create_or_replace_dynamic_table("d", warehose="wh", lag="1 minute")
    with pytest.raises(TypeError, match="'refresh_mod'.*'refresh_mode'"):
        t.create_or_replace_dynamic_table("d", warehouse="wh", lag="1 minute", refresh_mod="FULL")
    with pytest.raises(TypeError, match="'initialise'.*'initialize'"):
        t.create_or_replace_dynamic_table("d", warehouse="wh", lag="1 minute", initialise="ON_CREATE")
    with pytest.raises(TypeError, match="missing required keyword argument: 'lag'"):
        t.create_or_replace_dynamic_table("d", warehouse="wh")
    with pytest.raises(TypeError, match="'auto_create'.*'auto_create_table'"):
        session.write_pandas(__import__("pandas").DataFrame({"x": [1]}), "x", auto_create=True)
    with pytest.raises(TypeError, match="'model_nam'.*'model_name'"):
        Registry(session, schema_name="r").log_model(b"", model_nam="m")
    with pytest.raises(TypeError, match="'hots'.*'host'"):
        Session.builder.configs({"hots": "127.0.0.1"}).create()
    # methods with explicit keywords name the closest one too
    with pytest.raises(TypeError, match="Registry\\(\\) got .*'databse_name'.*did you mean 'database_name'"):
        Registry(session, databse_name="r")
    with pytest.raises(TypeError, match="'ascendng'.*did you mean 'ascending'"):
        t.sort("id", ascendng=False)
    with pytest.raises(TypeError, match="'parms'.*did you mean 'params'"):
        session.sql("SELECT 1", parms=[])
    with pytest.raises(TypeError, match="'schem'.*did you mean 'schema'"):
        session.create_dataframe([(1,)], schem=["a"])
    with pytest.raises(TypeError, match="'max_widht'.*did you mean 'max_width'"):
        t.show(max_widht=3)
    reg = Registry(session, schema_name="r")
    with pytest.raises(TypeError, match="'function'.*did you mean 'function_name'"):
        ModelVersion(Model(reg, "m"), "v").run(t, function="predict")
    # the example's misspelling: accepted, with a warning naming the right one
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t.create_or_replace_dynamic_table("d", warehouse="wh", lag="1 minute", initiliaze="ON_CREATE")
    assert [str(w.message) for w in caught if "initiliaze" in str(w.message) and "'initialize'" in str(w.message)]
    assert session.table("d").count() == 2
    still_usable(session)


def test_client_side_errors_send_nothing(session, t):
    with pytest.raises(FreshetClientError, match="'nme'.*did you mean 'name'"):
        t.select("nme")
    with pytest.raises(FreshetClientError, match="'idd'"):
        t.filter(col("idd") > 1)
    with pytest.raises(FreshetClientError, match="target lag"):
        t.create_or_replace_dynamic_table("d", warehouse="wh", lag="20 minuts")
    with pytest.raises(FreshetClientError, match="refresh_mode"):
        t.create_or_replace_dynamic_table("d", warehouse="wh", lag="20 minutes", refresh_mode="SOMETIMES")
    with pytest.raises(FreshetClientError, match="overwrite"):
        t.create_or_replace_dynamic_table("d", warehouse="wh", lag="20 minutes", mode="overwrit")
    with pytest.raises(TypeError):
        bool(col("id") > 1)
    with pytest.raises(FreshetSQLException) as e:  # nothing was created
        session.table("d").count()
    assert e.value.sqlstate == "42P01"
    still_usable(session)


def test_unconvertible_model(session, t):
    reg = Registry(session, schema_name="r")

    class NotAModel:
        pass

    with pytest.raises(FreshetClientError, match="cannot convert .*NotAModel.*scikit-learn"):
        reg.log_model(NotAModel(), model_name="m")
    with pytest.raises(FreshetSQLException) as e:
        reg.log_model(b"not onnx at all", model_name="m")
    assert e.value.sqlstate == "22023"
    assert "CREATE MODEL" in e.value.query
    assert reg.models() == []
    still_usable(session)


def test_server_error(session, t):
    with pytest.raises(SnowparkSQLException) as e:
        session.sql("SELECT * FROM no_such_table").collect()
    err = e.value
    assert err.sqlstate == "42P01"
    assert "no_such_table" in err.message
    assert "no_such_table" in err.query
    assert "42P01" in str(err) and "no_such_table" in str(err)
    with pytest.raises(FreshetSQLException) as e:
        session.table("t").select((col("id") / 0).alias("boom")).collect()
    assert e.value.sqlstate == "22012"
    with pytest.raises(FreshetSQLException) as e:
        session.table("nope").columns
    assert e.value.sqlstate == "42P01"
    still_usable(session)


class Sent:
    """Counts the statements a session sends (every one goes through
    Session._execute)."""

    def __init__(self, session, monkeypatch):
        self.statements = []
        real = session._execute

        def spy(query, *a, **k):
            self.statements.append(query)
            return real(query, *a, **k)

        monkeypatch.setattr(session, "_execute", spy)


def test_argument_errors_send_no_statement(session, t, monkeypatch):
    """Once a DataFrame knows its columns (one zero-row query, made when
    first needed), a wrong argument fails without sending anything."""
    reg = Registry(session, schema_name="r")
    assert t.columns == ["id", "name"]
    sent = Sent(session, monkeypatch)
    checks = [
        (FreshetClientError, "did you mean 'name'", lambda: t.select("nme")),
        (FreshetClientError, "'idd'", lambda: t.filter(col("idd") > 1)),
        (FreshetClientError, "target lag", lambda: t.create_or_replace_dynamic_table(
            "d", warehouse="wh", lag="20 minuts")),
        (FreshetClientError, "ON_CREATE", lambda: t.create_or_replace_dynamic_table(
            "d", warehouse="wh", lag="1 hour", initialize="NOW")),
        (TypeError, "did you mean 'lag'", lambda: t.create_or_replace_dynamic_table("d", warehouse="wh", lagg="1 h")),
        (TypeError, "'initialize' twice", lambda: t.create_or_replace_dynamic_table(
            "d", warehouse="wh", lag="1 hour", initialize="ON_CREATE", initiliaze="ON_CREATE")),
        (NotImplementedError, "clustering_keys", lambda: t.create_or_replace_dynamic_table(
            "d", warehouse="wh", lag="1 hour", clustering_keys=["id"])),
        (FreshetClientError, "did you mean 'left'", lambda: t.join(t, on="id", how="lefft")),
        (FreshetClientError, "cannot convert", lambda: reg.log_model(object(), model_name="m")),
        (TypeError, "did you mean 'version_name'", lambda: reg.log_model(b"x", model_name="m", versoin_name="v")),
        (FreshetClientError, "placeholders", lambda: session.sql("SELECT ?", [1, 2])),
        (TypeError, "no truth value", lambda: bool(col("id") == 1)),
    ]
    with warnings.catch_warnings(record=True):  # the initiliaze alias warns before the TypeError
        warnings.simplefilter("always")
        for exc, pattern, call in checks:
            with pytest.raises(exc, match=pattern):
                call()
    assert sent.statements == []
    still_usable(session)
