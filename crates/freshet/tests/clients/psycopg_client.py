"""psycopg 3 against a running Freshet server.

Run by crates/freshet/tests/psycopg.rs with FRESHET_URI set to a libpq URI.
Each check runs on its own connection and tables, so one failure does not hide
the others; the script prints every failure and exits non-zero if any.
"""

import datetime
import decimal
import os
import sys

import psycopg
from psycopg import errors, pq
from psycopg.types.json import Json

from checks import check, run

URI = os.environ["FRESHET_URI"]
TS = pq.TransactionStatus



def connect(autocommit=True):
    return psycopg.connect(URI, autocommit=autocommit, connect_timeout=30)


def test_connect():
    with connect() as conn:
        check(conn.info.transaction_status == TS.IDLE, "IDLE after connect")
        check(conn.info.server_version >= 100000, f"server_version {conn.info.server_version}")
        check(conn.execute("SELECT 1 + 1").fetchone() == (2,), "SELECT 1 + 1")


def test_parameterized_insert_and_select():
    with connect() as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE basic (id bigint NOT NULL, name text, amount numeric(10,2),"
            " at timestamp, ok boolean)"
        )
        rows = [
            (1, "first", decimal.Decimal("12.50"), datetime.datetime(2024, 1, 2, 3, 4, 5), True),
            (2, "sec'ond", decimal.Decimal("-0.01"), datetime.datetime(1999, 12, 31, 23, 59, 59), False),
            (3, None, None, None, None),
        ]
        # Server-side binding: the extended protocol, pipelined by executemany.
        cur.executemany("INSERT INTO basic VALUES (%s, %s, %s, %s, %s)", rows)
        cur.execute("SELECT id, name, amount, at, ok FROM basic WHERE id = %s", (1,))
        got = cur.fetchone()
        check(got == rows[0], f"row 1 round-trips: {got!r}")
        cur.execute("SELECT name FROM basic WHERE name = %s", ("sec'ond",))
        check(cur.fetchall() == [("sec'ond",)], "quote in a parameter")
        cur.execute("SELECT count(*) FROM basic WHERE name IS NULL")
        check(cur.fetchone()[0] == 1, "NULL inserted from None")
        cur.execute("SELECT id FROM basic WHERE at > %s ORDER BY id", (datetime.datetime(2000, 1, 1),))
        check(cur.fetchall() == [(1,)], "timestamp parameter in WHERE")
        cur.execute("SELECT id, name FROM basic LIMIT 1")
        check([d.name for d in cur.description] == ["id", "name"], "description names")


def test_json_column_returned_as_dict():
    with connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE docs (id int, payload json)")
        cur.execute(
            """INSERT INTO docs VALUES (1, '{"k": "v", "n": [1, 2, 3], "nested": {"x": null}}'),"""
            """ (2, '[1, "two", 3.5]')"""
        )
        cur.execute("SELECT payload FROM docs WHERE id = %s", (1,))
        payload = cur.fetchone()[0]
        check(isinstance(payload, dict), f"json column decoded as {type(payload)}: {payload!r}")
        check(payload == {"k": "v", "n": [1, 2, 3], "nested": {"x": None}}, f"payload {payload!r}")
        cur.execute("SELECT payload FROM docs WHERE id = 2")
        check(cur.fetchone()[0] == [1, "two", 3.5], "json array decoded as a list")
        with conn.cursor(binary=True) as bcur:
            bcur.execute("SELECT payload FROM docs WHERE id = %s", (1,))
            check(bcur.fetchone()[0]["n"] == [1, 2, 3], "json in binary results")


def test_json_parameter():
    with connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE jparams (id int, payload json)")
        cur.execute("INSERT INTO jparams VALUES (%s, %s)", (1, Json({"a": [1, {"b": None}]})))
        cur.execute("SELECT payload FROM jparams WHERE id = 1")
        check(cur.fetchone()[0] == {"a": [1, {"b": None}]}, "json parameter round-trips")


def test_binary_results():
    with connect() as conn, conn.cursor(binary=True) as cur:
        cur.execute("CREATE TABLE bin (id bigint, amount numeric(10,2), at timestamp, d date, f double precision)")
        cur.execute(
            "INSERT INTO bin VALUES (7, 3.25, '2024-01-02 03:04:05', '2024-02-29', 0.5)"
        )
        cur.execute("SELECT id, amount, at, d, f FROM bin WHERE id = %s", (7,))
        got = cur.fetchone()
        want = (7, decimal.Decimal("3.25"), datetime.datetime(2024, 1, 2, 3, 4, 5),
                datetime.date(2024, 2, 29), 0.5)
        check(got == want, f"binary results {got!r}")


def test_errors_have_sqlstate_classes():
    with connect() as conn, conn.cursor() as cur:
        try:
            cur.execute("SELECT * FROM no_such_table")
            raise AssertionError("expected UndefinedTable")
        except errors.UndefinedTable as e:
            check(e.sqlstate == "42P01", e.sqlstate)
        try:
            cur.execute("SELEC 1")
            raise AssertionError("expected SyntaxError")
        except errors.SyntaxError as e:
            check(e.sqlstate == "42601", e.sqlstate)


def test_copy():
    with connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE copied (id int, name text)")
        with cur.copy("COPY copied (id, name) FROM STDIN") as copy:
            copy.write_row((10, "ten"))
            copy.write_row((11, None))
        cur.execute("SELECT id, name FROM copied ORDER BY id")
        check(cur.fetchall() == [(10, "ten"), (11, None)], "COPY FROM rows")
        out = []
        with cur.copy("COPY (SELECT id, name FROM copied ORDER BY id) TO STDOUT") as copy:
            for row in copy.rows():
                out.append(row)
        check(out == [("10", "ten"), ("11", None)], f"COPY TO rows {out!r}")


def test_floats_read_as_float8in_reads_them():
    """Text becomes a float as PostgreSQL's float4in/float8in read it, in a
    bound parameter and in COPY: out of range is 22003, never Infinity or 0."""
    with connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE measured (id int, d double precision, r real)")
        for sql, value in [
            ("SELECT %s::float8", "1e400"),
            ("SELECT %s::float8", "-1e-400"),
            ("SELECT %s::real", "3.4e39"),
            ("INSERT INTO measured (r) VALUES (%s::real)", "1e-50"),
        ]:
            try:
                cur.execute(sql, (value,))
                raise AssertionError(f"{sql} with {value} must fail")
            except errors.NumericValueOutOfRange as e:
                check(e.sqlstate == "22003", f"{sql} {value}: {e.sqlstate}")
        try:
            cur.execute("SELECT %s::float8", ("1_000",))
            raise AssertionError("1_000 must fail")
        except errors.InvalidTextRepresentation as e:
            check(e.sqlstate == "22P02", e.sqlstate)
        for row in ["1\t1e400\t1\n", "2\t1\t1e-50\n"]:
            try:
                with cur.copy("COPY measured FROM STDIN") as copy:
                    copy.write(row)
                raise AssertionError(f"COPY of {row!r} must fail")
            except errors.NumericValueOutOfRange as e:
                check(e.sqlstate == "22003", f"COPY {row!r}: {e.sqlstate}")
        with cur.copy("COPY measured FROM STDIN") as copy:
            copy.write("3\t 1.5e300 \t-Infinity\n4\tNaN\t4e-40\n")
        cur.execute(
            "SELECT id, d::text, r::text FROM measured ORDER BY id",
        )
        got = cur.fetchall()
        check(got == [(3, "1.5e+300", "-Infinity"), (4, "NaN", "4e-40")], f"COPY floats {got!r}")
        got = cur.execute("SELECT %s::float8 * 2, %s::real", (" 2.5e-3 ", "1e-40")).fetchone()
        # 1e-40 is a subnormal real: kept, not 0.
        check(got[0] == 0.005 and 0 < got[1] < 2e-40, f"float parameters {got!r}")


def test_transaction_status():
    """ReadyForQuery's status byte, as libpq reports it."""
    with connect() as setup:
        setup.execute("CREATE TABLE tx (id int, name text)")
    with connect(autocommit=False) as conn:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO tx VALUES (%s, %s)", (20, "in tx"))
            check(conn.info.transaction_status == TS.INTRANS, "INTRANS after a write")
            conn.rollback()
            check(conn.info.transaction_status == TS.IDLE, "IDLE after rollback")
            cur.execute("SELECT count(*) FROM tx WHERE id = 20")
            check(cur.fetchone()[0] == 0, "rollback discarded the insert")
            conn.rollback()

            try:
                cur.execute("SELECT nope FROM tx")
                raise AssertionError("expected UndefinedColumn")
            except errors.UndefinedColumn:
                pass
            check(conn.info.transaction_status == TS.INERROR,
                  f"INERROR after a failed statement, got {conn.info.transaction_status!r}")
            try:
                cur.execute("SELECT 1")
                raise AssertionError("expected InFailedSqlTransaction")
            except errors.InFailedSqlTransaction as e:
                check(e.sqlstate == "25P02", e.sqlstate)
            conn.rollback()
            check(conn.info.transaction_status == TS.IDLE, "IDLE after rolling back the failure")

            cur.execute("INSERT INTO tx VALUES (%s, %s)", (21, "committed"))
            conn.commit()
        with conn.cursor() as cur:
            cur.execute("SELECT name FROM tx WHERE id = 21")
            check(cur.fetchone() == ("committed",), "commit persisted the insert")
            conn.commit()


def test_transaction_blocks():
    with connect() as setup:
        setup.execute("CREATE TABLE txb (id int)")
    with connect(autocommit=False) as conn:
        with conn.transaction():
            conn.execute("INSERT INTO txb VALUES (30)")
        try:
            with conn.transaction():
                conn.execute("INSERT INTO txb VALUES (31)")
                raise RuntimeError("abort the block")
        except RuntimeError:
            pass
        got = conn.execute("SELECT id FROM txb ORDER BY id").fetchall()
        check(got == [(30,)], f"context-manager transactions: {got}")


def test_correlated_subquery_with_parameter():
    # A subquery correlated by an inequality runs per outer row; the
    # parameter inside it is bound anew at each execution of the prepared
    # statement.
    with connect() as conn:
        conn.execute("CREATE TABLE sub_outer (a int)")
        conn.execute("CREATE TABLE sub_inner (id int)")
        conn.execute("INSERT INTO sub_outer VALUES (1), (2), (3)")
        conn.execute("INSERT INTO sub_inner VALUES (1), (2), (3), (4)")
        query = (
            "SELECT a, (SELECT count(*) FROM sub_inner WHERE sub_inner.id > sub_outer.a + %s)"
            " FROM sub_outer ORDER BY a"
        )
        for shift, expected in ((0, [3, 2, 1]), (1, [2, 1, 0]), (0, [3, 2, 1])):
            got = [n for _, n in conn.execute(query, (shift,), prepare=True).fetchall()]
            check(got == expected, f"shift {shift}: {got}")


def test_any_all_with_array_parameters():
    # An array bound as a parameter follows SQL's NULL rules: a NULL element
    # makes an undecided ANY or ALL NULL, so NOT (... ) keeps no row.
    with connect() as conn:
        conn.execute("CREATE TABLE any_param (id int)")
        conn.execute("INSERT INTO any_param VALUES (1), (2), (3)")
        for prepare in (False, True):
            row = conn.execute(
                "SELECT 2 = ANY(%s), 2 <> ALL(%s), 1 = ANY(%s), 3 > ALL(%s)",
                ([1, None], [1, None], [1, None], [1, 2]),
                prepare=prepare,
            ).fetchone()
            check(row == (None, None, True, True), f"prepare={prepare}: {row}")
            ids = conn.execute(
                "SELECT id FROM any_param WHERE id <> ALL(%s) ORDER BY id",
                ([1, None],),
                prepare=prepare,
            ).fetchall()
            check(ids == [], f"<> ALL with a NULL element keeps no row: {ids}")
            ids = conn.execute(
                "SELECT id FROM any_param WHERE id = ANY(%s) ORDER BY id",
                ([3, 1],),
                prepare=prepare,
            ).fetchall()
            check(ids == [(1,), (3,)], f"= ANY: {ids}")
            # Text the server reads as an array of the column's type.
            ids = conn.execute(
                "SELECT id FROM any_param WHERE id = ANY(%s) ORDER BY id",
                ("{2,NULL}",),
                prepare=prepare,
            ).fetchall()
            check(ids == [(2,)], f"= ANY of array text: {ids}")


def test_type_info_lookup():
    # psycopg's TypeInfo.fetch runs to_regtype(name); SQLAlchemy's psycopg
    # dialect does this for hstore on every new connection.
    from psycopg.types import TypeInfo

    with connect() as conn:
        info = TypeInfo.fetch(conn, "int4")
        check(info is not None and info.oid == 23, f"TypeInfo int4: {info}")
        check(info.array_oid == 1007, f"int4 array oid: {info.array_oid}")
        check(info.regtype == "integer", f"int4 regtype: {info.regtype}")
        check(TypeInfo.fetch(conn, "hstore") is None, "no hstore type")


if __name__ == "__main__":
    sys.exit(run("psycopg client", globals()))
