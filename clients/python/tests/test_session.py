"""Session: the ways to connect, sql() parameters, identifiers, write_pandas'
types and failures, and what close() does."""

from __future__ import annotations

import datetime
import decimal
import uuid

import pandas as pd
import pytest

from freshet.exceptions import FreshetClientError, FreshetSQLException
from freshet.snowpark import Session
from freshet.snowpark.functions import col


def sql_rows(raw, sql, params=None):
    return [tuple(r) for r in raw.execute(sql, params).fetchall()]


def test_connect_config_dsn_url_and_pg_env(config, session, monkeypatch):
    db = session.get_current_database()
    host, port, user = config["host"], config["port"], config["user"]
    # .config(key, value), one option at a time; "database" is folded like a name
    s = (Session.builder.config("host", host).config("port", port).config("user", user)
         .config("database", db.upper()).create())
    with s:
        assert s.get_current_database() == db
    assert s._conn.closed
    # a libpq connection string, and a URL, with schema= applied after connecting
    session.sql("CREATE SCHEMA IF NOT EXISTS side").collect()
    for dsn in (f"host={host} port={port} user={user} dbname={db}",
                f"postgresql://{user}@{host}:{port}/{db}"):
        with Session.builder.configs({"connection_string": dsn, "schema": "SIDE"}).create() as s:
            assert (s.get_current_database(), s.get_current_schema()) == (db, "side")
    # nothing but the PG* environment variables
    for k, v in {"PGHOST": host, "PGPORT": str(port), "PGUSER": user, "PGDATABASE": db}.items():
        monkeypatch.setenv(k, v)
    with Session.builder.create() as s:
        assert s.get_current_database() == db
        assert s.sql("SELECT 1 AS one").collect()[0].one == 1


def test_closed_session(config):
    s = Session.builder.configs({**config, "database": "freshet"}).create()
    df = s.sql("SELECT 1 AS one")
    s.close()
    s.close()  # twice is fine
    with pytest.raises(FreshetClientError, match="closed"):
        df.collect()
    with pytest.raises(FreshetClientError, match="closed"):
        s.table("anything").count()


def test_sql_params(session, raw):
    raw.execute("CREATE TABLE p (id int, name text)")
    raw.execute("INSERT INTO p VALUES (1, 'a%b'), (2, 'Zoë ''q'''), (3, NULL), (4, '?')")
    want = sql_rows(raw, "SELECT id FROM p WHERE id >= 2 AND name <> 'Zoë' ORDER BY id")
    # $n (may repeat), Snowpark's ?, psycopg's %s (%% is a %)
    assert [tuple(r) for r in session.sql("SELECT id FROM p WHERE id >= $1 AND name <> $2 AND $1 = $1 ORDER BY id",
                                          params=[2, "Zoë"]).collect()] == want
    assert [tuple(r) for r in session.sql("SELECT id FROM p WHERE id >= ? AND name <> ? ORDER BY id",
                                          params=[2, "Zoë"]).collect()] == want
    assert [r.id for r in session.sql("SELECT id FROM p WHERE name LIKE 'a%%' AND id = %s", [1]).collect()] == [1]
    # a value with quotes and a placeholder-looking string literal stay what they are
    got = session.sql("SELECT id, '?' AS q, '$1' AS d FROM p WHERE name = ?", ["Zoë 'q'"]).collect()
    assert [tuple(r) for r in got] == [(2, "?", "$1")]
    assert [r.id for r in session.sql("SELECT id FROM p WHERE name = ?", ["?"]).collect()] == [4]
    # a NULL parameter is SQL's NULL
    assert session.sql("SELECT count(*) AS n FROM p WHERE name IS NOT DISTINCT FROM $1", [None]).collect()[0].n == 1
    # params that do not fit the placeholders fail before anything is sent
    with pytest.raises(FreshetClientError, match="2 \\? placeholders but 1 params"):
        session.sql("SELECT id FROM p WHERE id = ? OR id = ?", [1])
    with pytest.raises(FreshetClientError, match="\\$3 has no value"):
        session.sql("SELECT id FROM p WHERE id = $3", [1])
    with pytest.raises(FreshetClientError, match="no placeholder"):
        session.sql("SELECT id FROM p", [1])
    # a statement that is not a query runs on collect()
    assert session.sql("INSERT INTO p VALUES ($1, $2)", [5, "Ωmega"]).collect()[0].status.startswith("INSERT")
    assert sql_rows(raw, "SELECT name FROM p WHERE id = 5") == [("Ωmega",)]


def test_identifiers(session, raw):
    """Unquoted names fold ASCII letters only (PostgreSQL's rule); a name that
    is not a plain identifier is quoted as written."""
    raw.execute('CREATE TABLE Städte (Größe int, "Mixed Case" text, "UP" int, naïve text)')
    raw.execute("INSERT INTO städte VALUES (1, 'x', 10, 'é'), (NULL, NULL, NULL, NULL)")
    t = session.table("STÄDTE".replace("Ä", "ä"))  # STäDTE: ASCII letters fold, ä stays
    assert t.columns == ["größe", "Mixed Case", "UP", "naïve"]
    got = t.select("GRößE", "Mixed Case", '"UP"', "NAÏVE".replace("Ï", "ï")).sort("größe").collect()
    assert [tuple(r) for r in got] == sql_rows(raw, 'SELECT Größe, "Mixed Case", "UP", naïve FROM städte ORDER BY 1')
    with pytest.raises(FreshetClientError, match="did you mean 'UP'"):
        t.select("UP")  # folds to up, which is not a column
    with pytest.raises(FreshetClientError, match="'größe'"):
        t.select("GRÖSSE")
    # names that need quotes, written through the API, come back exactly
    session.create_dataframe([(1, "ü")], schema=["Order ID", "Straße"]).write.save_as_table("Kunden Liste")
    assert sql_rows(raw, 'SELECT "Order ID", straße FROM "Kunden Liste"') == [(1, "ü")]
    assert session.table('"Kunden Liste"').columns == ["Order ID", "straße"]


def test_write_pandas_types_and_order(session, raw):
    pdf = pd.DataFrame({
        "K": [1, 2, 3],
        "B": pd.Series([True, None, False], dtype=object),
        "D": [datetime.date(2024, 2, 29), None, datetime.date(1999, 12, 31)],
        "N": [decimal.Decimal("1.25"), None, decimal.Decimal("-3")],
        "TZ": pd.to_datetime(["2024-01-01 10:00:00+02:00", None, "1970-01-01 00:00:00+00:00"], utc=True),
        "S": ["Ünïcødé 東京", None, ""],
    })
    session.write_pandas(pdf, "typed", auto_create_table=True)
    types = [(d.name, d.type_code) for d in raw.execute("SELECT * FROM typed LIMIT 0").description]
    assert types == [("k", 20), ("b", 16), ("d", 1082), ("n", 1700), ("tz", 1184), ("s", 25)]
    rows = sql_rows(raw, "SELECT k, b, d, n, tz, s FROM typed ORDER BY k")
    utc = datetime.timezone.utc
    assert rows[0][:4] == (1, True, datetime.date(2024, 2, 29), decimal.Decimal("1.25"))
    assert rows[0][4] == datetime.datetime(2024, 1, 1, 8, 0, tzinfo=utc) and rows[0][5] == "Ünïcødé 東京"
    assert rows[1] == (2, None, None, None, None, None)
    assert rows[2][1:] == (False, datetime.date(1999, 12, 31), decimal.Decimal("-3"),
                           datetime.datetime(1970, 1, 1, tzinfo=utc), "")
    # columns are matched by name, not position; small chunks give the same rows
    shuffled = pdf[["S", "K", "TZ", "N", "D", "B"]].assign(K=[4, 5, 6])
    session.write_pandas(shuffled, "TYPED", chunk_size=1)
    assert sql_rows(raw, "SELECT k, s FROM typed WHERE k > 3 ORDER BY k") == [(4, "Ünïcødé 東京"), (5, None), (6, "")]
    # overwrite with auto_create_table re-creates the table from the frame
    session.write_pandas(pd.DataFrame({"only": ["x"]}), "typed", auto_create_table=True, overwrite=True)
    assert sql_rows(raw, "SELECT * FROM typed") == [("x",)]
    with pytest.raises(FreshetClientError, match="schema= together with database="):
        session.write_pandas(pdf, "typed", database="freshet")


def test_write_pandas_server_error_loads_nothing(session, raw):
    raw.execute("CREATE TABLE nums (k bigint, v text)")
    raw.execute("INSERT INTO nums VALUES (1, 'kept')")
    bad = pd.DataFrame({"k": ["2", "not a number"], "v": ["a", "b"]})
    with pytest.raises(FreshetSQLException) as e:
        session.write_pandas(bad, "nums", overwrite=True)
    assert e.value.sqlstate == "22P02", e.value
    assert "COPY" in e.value.query
    # the whole load, TRUNCATE included, was rolled back; the session goes on
    assert sql_rows(raw, "SELECT * FROM nums") == [(1, "kept")]
    assert session.table("nums").filter(col("k") == 1).count() == 1


def test_create_dataframe_from_pandas_is_dropped_on_close(config, session):
    db = session.get_current_database()
    s = Session.builder.configs({**config, "database": db}).create()
    df = s.create_dataframe(pd.DataFrame({"a": [2, 1, None], "b": ["é", None, "東"]}))
    assert [tuple(r) for r in df.sort("b").collect()] == [(2.0, "é"), (None, "東"), (1.0, None)]
    scratch = [r[1] for r in session.sql("SHOW TABLES").collect() if r[1].startswith("__freshet_df_")]
    assert len(scratch) == 1
    s.close()
    assert not [r[1] for r in session.sql("SHOW TABLES").collect() if r[1].startswith("__freshet_df_")]


def test_fresh_database_name(config):
    """use_database switches databases; a database name that needs quotes works."""
    name = "Db " + uuid.uuid4().hex[:6]
    with Session.builder.configs({**config, "database": "freshet"}).create() as s:
        s.sql(f'CREATE DATABASE "{name}"').collect()
        s.use_database(name)
        assert s.get_current_database() == name
