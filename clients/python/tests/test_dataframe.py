"""Every DataFrame method against the same query written in SQL (run with
psycopg on the same connection), on data with NULLs and unicode."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest

from freshet.exceptions import FreshetClientError
from freshet.snowpark import Row
from freshet.snowpark import functions as F
from freshet.snowpark.functions import col, lit, when

ROWS = [
    (1, "Zürich", "ann", 10, 1.5, True),
    (2, "東京", "bob", None, 2.25, False),
    (3, None, "cé", 30, None, None),
    (4, "Zürich", None, 40, -1.0, True),
    (5, "Lima", "dee", 10, 0.0, False),
    (6, "", "Émile", None, 3.75, True),
]


@pytest.fixture
def t(session, raw):
    raw.execute("CREATE TABLE people (id bigint, city text, name text, score int, w double precision, ok boolean)")
    with raw.cursor() as cur:
        cur.executemany("INSERT INTO people VALUES (%s, %s, %s, %s, %s, %s)", ROWS)
    raw.execute("CREATE TABLE cities (city text, country text)")
    raw.execute("INSERT INTO cities VALUES ('Zürich', 'CH'), ('東京', 'JP'), ('Paris', 'FR'), (NULL, 'XX')")
    return session.table("PEOPLE")


def sql_rows(raw, sql):
    return [tuple(r) for r in raw.execute(sql).fetchall()]


def key(row):
    return tuple((v is None, "" if v is None else str(v)) for v in row)


def same(df, raw, sql, ordered=False):
    got = [tuple(r) for r in df.collect()]
    want = sql_rows(raw, sql)
    if not ordered:
        got, want = sorted(got, key=key), sorted(want, key=key)
    assert got == want, f"\nDataFrame SQL: {df.queries['queries'][0]}\nexpected SQL:  {sql}"
    return got


def test_table_and_names(t, raw, session):
    same(t, raw, "SELECT * FROM people")
    same(session.table(["PEOPLE"]), raw, "SELECT * FROM people")
    db = session.get_current_database()
    same(session.table(f"{db}.public.people"), raw, "SELECT * FROM people")
    assert t.columns == ["id", "city", "name", "score", "w", "ok"]


def test_select_filter(t, raw):
    same(t.select("ID", "city"), raw, "SELECT id, city FROM people")
    same(t.select(col("id"), (col("score") * 2 + 1).alias("s2")), raw, "SELECT id, score * 2 + 1 AS s2 FROM people")
    same(t.filter(col("score") > 10), raw, "SELECT * FROM people WHERE score > 10")
    same(t.where((col("city") == "Zürich") | col("name").is_null()), raw,
         "SELECT * FROM people WHERE city = 'Zürich' OR name IS NULL")
    same(t.filter(~col("ok")), raw, "SELECT * FROM people WHERE NOT ok")
    same(t.filter("score IS NULL"), raw, "SELECT * FROM people WHERE score IS NULL")
    same(t.filter(col("city").isin("東京", "Lima")), raw, "SELECT * FROM people WHERE city IN ('東京', 'Lima')")
    same(t.filter(col("score").between(10, 30)), raw, "SELECT * FROM people WHERE score BETWEEN 10 AND 30")
    same(t.filter(col("name").like("%é%")), raw, "SELECT * FROM people WHERE name LIKE '%é%'")
    same(t.filter(col("w").is_not_null() & (col("w") != 0)), raw,
         "SELECT * FROM people WHERE w IS NOT NULL AND w <> 0")
    # filter after select refers to the selected names
    same(t.select("id", (col("score") + 1).alias("s")).filter(col("s") > 20), raw,
         "SELECT * FROM (SELECT id, score + 1 AS s FROM people) q WHERE s > 20")
    # a df["col"] reference works after further transformations
    same(t.filter(t["score"] >= 10).filter(t["id"] < 5), raw, "SELECT * FROM people WHERE score >= 10 AND id < 5")


def test_columns(t, raw):
    same(t.with_column("double", col("score") * 2), raw,
         "SELECT id, city, name, score, w, ok, score * 2 AS double FROM people")
    same(t.with_column("score", F.coalesce(col("score"), lit(0))), raw,
         "SELECT id, city, name, w, ok, coalesce(score, 0) AS score FROM people")
    same(t.with_column_renamed("CITY", "town").select("town"), raw, "SELECT city AS town FROM people")
    same(t.drop("w", "ok"), raw, "SELECT id, city, name, score FROM people")
    same(t.select(col("id").cast("text").alias("s")), raw, "SELECT CAST(id AS text) AS s FROM people")
    same(t.select("id", when(col("score") > 20, "high").when(col("score") > 5, "mid").otherwise("none").alias("b")),
         raw, "SELECT id, CASE WHEN score > 20 THEN 'high' WHEN score > 5 THEN 'mid' ELSE 'none' END AS b FROM people")
    same(t.select(F.call_function("upper", col("name")).alias("u")), raw, "SELECT upper(name) AS u FROM people")
    same(t.select((col("w") / 2).alias("h"), (-col("score")).alias("n"), (col("score") % 3).alias("m")), raw,
         "SELECT w / 2 AS h, - score AS n, score % 3 AS m FROM people")
    with_ts = t.select("id", F.current_timestamp().alias("now")).collect()
    assert all(isinstance(r["NOW"], datetime.datetime) for r in with_ts)


def test_join(t, raw, session):
    c = session.table("cities")
    same(t.join(c, on="city"), raw,
         "SELECT p.city, p.id, p.name, p.score, p.w, p.ok, c.country FROM people p JOIN cities c ON p.city = c.city")
    same(t.join(c, on=["CITY"], how="left"), raw,
         "SELECT p.city, p.id, p.name, p.score, p.w, p.ok, c.country FROM people p LEFT JOIN cities c ON p.city = c.city")
    same(t.join(c, on="city", how="right"), raw,
         "SELECT c.city, p.id, p.name, p.score, p.w, p.ok, c.country FROM people p RIGHT JOIN cities c ON p.city = c.city")
    same(t.join(c, on="city", how="full"), raw,
         "SELECT coalesce(p.city, c.city), p.id, p.name, p.score, p.w, p.ok, c.country "
         "FROM people p FULL JOIN cities c ON p.city = c.city")
    same(t.join(c, on="city", how="semi"), raw,
         "SELECT * FROM people p WHERE EXISTS (SELECT 1 FROM cities c WHERE p.city = c.city)")
    same(t.join(c, on="city", how="anti"), raw,
         "SELECT * FROM people p WHERE NOT EXISTS (SELECT 1 FROM cities c WHERE p.city = c.city)")
    same(t.join(c, t["city"] == c["city"], rsuffix="_c").select("id", "city_c", "country"), raw,
         "SELECT p.id, c.city, c.country FROM people p JOIN cities c ON p.city = c.city")
    with pytest.raises(FreshetClientError, match="rsuffix"):
        t.join(c, t["city"] == c["city"])
    with pytest.raises(FreshetClientError, match="semi"):
        t.join(c, on="city", how="semmi")


def test_set_ops(t, raw):
    a = t.filter(col("score") == 10).select("city")
    b = t.filter(col("ok")).select("city")
    same(a.union_all(b), raw,
         "SELECT city FROM people WHERE score = 10 UNION ALL SELECT city FROM people WHERE ok")
    same(a.union(b), raw, "SELECT city FROM people WHERE score = 10 UNION SELECT city FROM people WHERE ok")


def test_aggregates_and_order(t, raw):
    same(t.group_by("city").agg(F.sum("score").alias("s"), F.count("*").alias("n"),
                                F.count_distinct(col("name")).alias("d"), F.avg("w").alias("a"),
                                F.min("id").alias("lo"), F.max("name").alias("hi")), raw,
         "SELECT city, sum(score) AS s, count(*) AS n, count(DISTINCT name) AS d, avg(w) AS a, min(id) AS lo, "
         "max(name) AS hi FROM people GROUP BY city")
    same(t.group_by(col("ok")).agg(("score", "sum")), raw, "SELECT ok, sum(score) FROM people GROUP BY ok")
    same(t.group_by("ok").count(), raw, "SELECT ok, count(*) FROM people GROUP BY ok")
    same(t.agg(F.max("score").alias("m")), raw, "SELECT max(score) AS m FROM people")
    same(t.select("city").distinct(), raw, "SELECT DISTINCT city FROM people")
    same(t.sort("id"), raw, "SELECT * FROM people ORDER BY id", ordered=True)
    same(t.sort(col("score").desc_nulls_last(), "id"), raw,
         "SELECT * FROM people ORDER BY score DESC NULLS LAST, id", ordered=True)
    same(t.sort(["score", "id"], ascending=[False, True]), raw,
         "SELECT * FROM people ORDER BY score DESC, id ASC", ordered=True)
    same(t.sort("id").limit(2), raw, "SELECT * FROM people ORDER BY id LIMIT 2", ordered=True)
    same(t.sort("id").limit(2, offset=3), raw, "SELECT * FROM people ORDER BY id LIMIT 2 OFFSET 3", ordered=True)
    same(t.select("id", "name").sort(col("name").asc_nulls_first(), "id"), raw,
         "SELECT id, name FROM people ORDER BY name ASC NULLS FIRST, id", ordered=True)


def test_results(t, raw, capsys):
    assert t.count() == len(ROWS)
    assert t.filter(col("score").is_null()).count() == 2
    first = t.sort("id").first()
    assert isinstance(first, Row) and first.ID == 1 and first["city"] == "Zürich" and first.as_dict()["name"] == "ann"
    assert [r.id for r in t.sort("id").first(2)] == [1, 2]
    assert t.filter(col("id") > 100).first() is None
    pdf = t.sort("id").to_pandas()
    expected = pd.DataFrame.from_records(sql_rows(raw, "SELECT * FROM people ORDER BY id"),
                                         columns=["id", "city", "name", "score", "w", "ok"])
    expected["score"] = expected["score"].astype("Int32")  # an int column with NULLs stays exact
    pd.testing.assert_frame_equal(pdf, expected)
    table = t.sort("id").to_arrow()
    assert table.column_names == ["id", "city", "name", "score", "w", "ok"]
    assert table.column("city").to_pylist() == [r[1] for r in ROWS]
    assert [tuple(r.values()) for r in table.to_pylist()] == sql_rows(raw, "SELECT * FROM people ORDER BY id")
    json_arrow = t.select("id", F.sql_expr("CAST('{\"k\": \"é\"}' AS json)").as_("j")).sort(col("id").asc()).to_arrow()
    assert json_arrow.column("id").to_pylist() == [r[0] for r in ROWS]
    t.sort("id").show(2)
    out = capsys.readouterr().out
    assert "Zürich" in out and "東京" in out and "cé" not in out
    t.explain()
    assert "Query:" in capsys.readouterr().out
    q = t.filter(col("id") == 1).queries
    assert q["queries"][0].startswith("SELECT") and "WHERE" in q["queries"][0]


def test_create_dataframe_and_write_pandas(session, raw):
    df = session.create_dataframe([(1, "ä", None), (2, None, 2.5)], schema=["a", "B", "c"])
    assert [tuple(r) for r in df.sort("a").collect()] == [(1, "ä", None), (2, None, 2.5)]
    assert df.columns == ["a", "b", "c"]
    pdf = pd.DataFrame({"K": [1, 2, 3], "TXT": ["x", None, ""], "F": [0.5, None, 1e300],
                        "T": pd.to_datetime(["2024-01-01 00:00:01.123456", None, "1999-12-31 23:59:59"], format="ISO8601"),
                        "B": [True, False, None]})
    pdf["B"] = pdf["B"].astype(object)
    out = session.write_pandas(pdf.drop(columns=["B"]), "loaded", auto_create_table=True)
    rows = sql_rows(raw, "SELECT k, txt, f, t FROM loaded ORDER BY k")
    assert rows[0] == (1, "x", 0.5, datetime.datetime(2024, 1, 1, 0, 0, 1, 123456))
    assert rows[1] == (2, None, None, None)  # NULL stays NULL
    assert rows[2][1] == "" and rows[2][2] == 1e300  # the empty string stays one
    assert out.count() == 3
    session.write_pandas(pdf.drop(columns=["B"]), "loaded")
    assert out.count() == 6
    session.write_pandas(pdf.drop(columns=["B"]).head(1), "loaded", overwrite=True)
    assert out.count() == 1
    from_pandas = session.create_dataframe(pd.DataFrame({"x": [3, 1, 2]}))
    assert sorted(r.x for r in from_pandas.collect()) == [1, 2, 3]


def test_save_and_views(t, raw, session):
    t.filter(col("ok")).select("id", "name").write.mode("overwrite").save_as_table("ok_people")
    same(session.table("ok_people"), raw, "SELECT id, name FROM people WHERE ok")
    t.filter(col("id") == 1).select("id", "name").write.save_as_table("ok_people", mode="append")
    assert session.table("ok_people").count() == 4
    t.select("id").create_or_replace_view("ids")
    same(session.table("ids"), raw, "SELECT id FROM people")
    t.filter(col("score") > 10).create_or_replace_dynamic_table(
        "big_scores", warehouse="wh", lag="1 minute", refresh_mode="incremental", initialize="on_create")
    same(session.table("big_scores"), raw, "SELECT * FROM people WHERE score > 10")
    raw.execute("INSERT INTO people VALUES (7, 'Ōsaka', 'fay', 99, 1.0, true)")
    session.sql("ALTER DYNAMIC TABLE big_scores REFRESH").collect()
    same(session.table("big_scores"), raw, "SELECT * FROM people WHERE score > 10")
    # mode="ignore" leaves the existing table; "errorifexists" fails on it
    t.create_or_replace_dynamic_table("big_scores", warehouse="wh", lag="1 minute", mode="ignore")
    same(session.table("big_scores"), raw, "SELECT * FROM people WHERE score > 10")
    from freshet.exceptions import FreshetSQLException

    with pytest.raises(FreshetSQLException) as e:
        t.create_or_replace_dynamic_table("big_scores", warehouse="wh", lag="1 minute", mode="errorifexists")
    assert e.value.sqlstate == "42P07"


def test_namespaces(session, raw):
    db = session.get_current_database()
    assert session.get_current_schema() == "public"
    session.sql("CREATE SCHEMA other").collect()
    session.use_schema("OTHER")
    assert session.get_current_schema() == "other"
    session.create_dataframe([(1,)], schema=["x"]).write.save_as_table("in_other")
    assert session.table(f"{db}.other.in_other").count() == 1
    session.use_database(db)
    assert session.get_current_database() == db


def test_sql(session, raw):
    raw.execute("CREATE TABLE nums (n int)")
    raw.execute("INSERT INTO nums VALUES (1), (2), (3)")
    df = session.sql("SELECT n FROM nums WHERE n > %s", params=[1])
    assert sorted(r.n for r in df.collect()) == [2, 3]
    assert df.filter(col("n") == 3).count() == 1
    assert session.sql("INSERT INTO nums VALUES (4)").collect()[0].status.startswith("INSERT")
    assert session.table("nums").count() == 4


def test_to_pandas_exact(session, raw):
    """The COPY path of to_pandas returns what psycopg returns, value for value:
    floats round-trip, NULL and '' stay apart, timestamps and dates keep
    their microseconds; a json result (a type the CSV path does not read)
    goes through psycopg."""
    raw.execute("CREATE TABLE v (i int, b bigint, f real, d double precision, s text, ts timestamp, dt date, ok boolean)")
    raw.execute(
        "INSERT INTO v VALUES (1, 9007199254740993, 0.1, 0.30000000000000004, 'a,\"b\"\nc', "
        "'2024-02-29 23:59:59.999999', '2024-02-29', true), "
        "(2, -1, -3.4e38, 1e-300, '', '1970-01-01 00:00:00', '1970-01-01', false), "
        "(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)")
    got = session.table("v").sort("i").to_pandas()
    want = sql_rows(raw, "SELECT * FROM v ORDER BY i")
    assert got["b"].tolist()[:2] == [9007199254740993, -1] and pd.isna(got["b"].tolist()[2])  # not rounded
    assert got["d"].tolist()[:2] == [0.30000000000000004, 1e-300]
    # NULL is missing (None before pandas 3, NaN in pandas 3's str dtype), '' is a string
    assert got["s"].tolist()[:2] == ['a,"b"\nc', ""] and pd.isna(got["s"][2])
    assert [x.to_pydatetime() for x in got["ts"][:2]] == [w[5] for w in want[:2]] and pd.isna(got["ts"][2])
    assert got["dt"].tolist() == [w[6] for w in want]
    assert got["ok"].tolist() == [True, False, None]
    assert str(got["f"].dtype) == "float32"
    assert got["f"].tolist()[:2] == [float(np.float32(w[2])) for w in want[:2]]
    j = session.sql("SELECT 1 AS k, CAST('{\"a\": [1, 2]}' AS json) AS j").to_pandas()
    assert j["j"].tolist() == [{"a": [1, 2]}]


def test_join_on_column_list(t, raw, session):
    c = session.table("cities")
    cond = [t["city"] == c["city"], c["country"] != "JP"]
    same(t.join(c, on=cond, how="left", rsuffix="_r").select("id", "city", "city_r", "country"), raw,
         "SELECT p.id, p.city, c.city, c.country FROM people p LEFT JOIN cities c "
         "ON p.city = c.city AND c.country <> 'JP'")
    with pytest.raises(TypeError, match="list of Column conditions"):
        t.join(c, on=["city", c["city"] == t["city"]])


def test_case_sensitive_names_everywhere(session, raw):
    """A column whose stored name needs quotes ("UP", "Mixed Case") is found
    by every method that takes names, not folded to lower case."""
    raw.execute('CREATE TABLE q ("UP" int, "Mixed Case" text, low int)')
    raw.execute("INSERT INTO q VALUES (2, 'b', 20), (1, NULL, 10), (NULL, 'ä', 30), (1, 'c', 40)")
    t = session.table("q")
    same(t.select('"UP"', '"Mixed Case"'), raw, 'SELECT "UP", "Mixed Case" FROM q')
    same(t.select(t['"UP"'] + 1), raw, 'SELECT "UP" + 1 FROM q')
    same(t.select(t[0], t[1]), raw, 'SELECT "UP", "Mixed Case" FROM q')
    same(t.sort('"UP"', "low"), raw, 'SELECT * FROM q ORDER BY "UP", low', ordered=True)
    same(t.group_by('"UP"').agg(("low", "sum")), raw, 'SELECT "UP", sum(low) FROM q GROUP BY "UP"')
    same(t.group_by('"UP"').max("low"), raw, 'SELECT "UP", max(low) FROM q GROUP BY "UP"')
    same(t.with_column_renamed(t['"UP"'], "up2"), raw, 'SELECT "UP" AS up2, "Mixed Case", low FROM q')
    same(t.drop(t['"Mixed Case"']), raw, 'SELECT "UP", low FROM q')
    same(t.union_all_by_name(t.select("low", '"Mixed Case"', '"UP"')), raw,
         'SELECT * FROM q UNION ALL SELECT * FROM q')
    with pytest.raises(FreshetClientError, match="not expressions"):
        t.drop(col("low") + 1)


def test_save_as_table_modes(t, raw, session):
    src = t.select("id", "name").filter(col("id") <= 2)
    # append creates a missing table, then inserts by position
    src.write.save_as_table("saved", mode="append")
    src.write.save_as_table("saved", mode="append")
    same(session.table("saved"), raw, "SELECT id, name FROM people WHERE id <= 2 UNION ALL "
                                      "SELECT id, name FROM people WHERE id <= 2")
    # column_order="name" inserts by name, whatever the DataFrame's order
    t.select("name", "id").filter(col("id") == 3).write.save_as_table("saved", mode="append", column_order="name")
    assert sql_rows(raw, "SELECT id, name FROM saved WHERE id = 3") == [(3, "cé")]
    # truncate keeps the table (and its column types) and replaces its rows
    raw.execute("CREATE TABLE typed_target (id numeric(10, 2), name text)")
    t.select("id", "name").write.save_as_table("typed_target", mode="truncate")
    t.select("id", "name").filter(col("id") > 4).write.save_as_table("typed_target", mode="truncate")
    same(session.table("typed_target"), raw, "SELECT CAST(id AS numeric(10, 2)), name FROM people WHERE id > 4")
    assert [d.type_code for d in raw.execute("SELECT id FROM typed_target LIMIT 0").description] == [1700]
    # ignore leaves an existing table; errorifexists refuses it (the server's 42P07)
    t.select("id").write.save_as_table("typed_target", mode="ignore")
    assert session.table("typed_target").count() == 2
    from freshet.exceptions import FreshetSQLException

    with pytest.raises(FreshetSQLException) as e:
        t.select("id").write.save_as_table("typed_target")
    assert e.value.sqlstate == "42P07"
    with pytest.raises(FreshetClientError, match="did you mean 'truncate'"):
        t.write.save_as_table("x", mode="truncat")
    with pytest.raises(FreshetClientError, match="column_order"):
        t.write.save_as_table("x", mode="append", column_order="position")
    with pytest.raises(NotImplementedError, match="permanent"):
        t.write.save_as_table("x", table_type="temporary")


def test_cast_to_snowpark_types(t, raw):
    from freshet.snowpark import types as T

    same(t.select(col("id").cast(T.StringType()).as_("s"), col("score").cast(T.DoubleType()).alias("d"),
                  col("w").cast(T.DecimalType(10, 2)).alias("n"), col("id").cast(T.LongType()).alias("l"),
                  col("score").cast(T.IntegerType()).alias("i"), col("ok").cast(T.BooleanType()).alias("b"),
                  col("city").cast(T.StringType(3)).alias("c3")),
         raw, "SELECT CAST(id AS text), CAST(score AS double precision), CAST(w AS numeric(10, 2)), "
              "CAST(id AS bigint), CAST(score AS integer), CAST(ok AS boolean), CAST(city AS varchar(3)) FROM people")
    same(t.select(F.lit("2024-02-29 10:00:00").cast(T.TimestampType()).alias("ts"),
                  F.lit("2024-02-29").cast(T.DateType()).alias("d")).limit(1), raw,
         "SELECT CAST('2024-02-29 10:00:00' AS timestamp), CAST('2024-02-29' AS date)")
    got = t.select(F.lit("2024-02-29 10:00:00+02").cast(T.TimestampType(T.TimestampTimeZone.TZ)).alias("tz")).first()
    assert got.tz == datetime.datetime(2024, 2, 29, 8, tzinfo=datetime.timezone.utc)
    with pytest.raises(ValueError, match="LongType"):
        col("id").cast(42)
