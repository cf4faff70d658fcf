"""psycopg 3 against a running Freshet server.

Run by crates/freshet/tests/psycopg.rs with FRESHET_URI set to a libpq URI.
Exits non-zero (with an AssertionError traceback) on the first failed check.
"""

import datetime
import decimal
import os
import sys

import psycopg
from psycopg import errors, pq
from psycopg.types.json import Json

uri = os.environ["FRESHET_URI"]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


with psycopg.connect(uri, autocommit=True, connect_timeout=30) as conn:
    check(conn.info.transaction_status == pq.TransactionStatus.IDLE, "idle after connect")
    check(conn.info.server_version >= 100000, f"server_version {conn.info.server_version}")

    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE events (id bigint NOT NULL, name text, amount numeric(10,2),"
            " at timestamp, ok boolean, payload json)"
        )
        # Parameterized insert (psycopg 3 uses server-side binding: extended protocol).
        rows = [
            (1, "first", decimal.Decimal("12.50"), datetime.datetime(2024, 1, 2, 3, 4, 5), True,
             Json({"k": "v", "n": [1, 2, 3], "nested": {"x": None}})),
            (2, "sec'ond", decimal.Decimal("-0.01"), datetime.datetime(1999, 12, 31, 23, 59, 59), False,
             Json([1, "two", 3.5])),
            (3, None, None, None, None, None),
        ]
        cur.executemany("INSERT INTO events VALUES (%s, %s, %s, %s, %s, %s)", rows)

        cur.execute("SELECT id, name, amount, at, ok FROM events WHERE id = %s", (1,))
        check(cur.fetchone() == (1, "first", decimal.Decimal("12.50"),
                                 datetime.datetime(2024, 1, 2, 3, 4, 5), True),
              "row 1 round-trips")
        cur.execute("SELECT name FROM events WHERE name = %s", ("sec'ond",))
        check(cur.fetchall() == [("sec'ond",)], "quote in parameter")
        cur.execute("SELECT count(*) FROM events WHERE name IS NULL")
        check(cur.fetchone()[0] == 1, "NULL inserted from None")

        # A json column comes back as a Python dict / list.
        cur.execute("SELECT payload FROM events WHERE id = %s", (1,))
        payload = cur.fetchone()[0]
        check(isinstance(payload, dict), f"json column decoded as {type(payload)}")
        check(payload == {"k": "v", "n": [1, 2, 3], "nested": {"x": None}}, f"payload {payload!r}")
        cur.execute("SELECT payload FROM events WHERE id = 2")
        check(cur.fetchone()[0] == [1, "two", 3.5], "json array decoded as list")

        # Binary results too.
        with conn.cursor(binary=True) as bcur:
            bcur.execute("SELECT id, amount, at, payload FROM events WHERE id = %s", (1,))
            bid, bamount, bat, bpayload = bcur.fetchone()
            check((bid, bamount, bat) == (1, decimal.Decimal("12.50"),
                                          datetime.datetime(2024, 1, 2, 3, 4, 5)),
                  "binary results")
            check(bpayload["n"] == [1, 2, 3], "binary json")

        # Column descriptions.
        cur.execute("SELECT id, name, payload FROM events LIMIT 1")
        check([d.name for d in cur.description] == ["id", "name", "payload"], "description names")

        # Errors map to psycopg's SQLSTATE classes.
        try:
            cur.execute("SELECT * FROM no_such_table")
            raise AssertionError("expected UndefinedTable")
        except errors.UndefinedTable as e:
            check(e.sqlstate == "42P01", e.sqlstate)

        # COPY through psycopg.
        with cur.copy("COPY events (id, name) FROM STDIN") as copy:
            copy.write_row((10, "copied"))
            copy.write_row((11, None))
        cur.execute("SELECT count(*) FROM events WHERE id IN (10, 11)")
        check(cur.fetchone()[0] == 2, "COPY rows")

# Transactions: ReadyForQuery's status is visible as conn.info.transaction_status.
with psycopg.connect(uri, connect_timeout=30) as conn:  # autocommit off
    TS = pq.TransactionStatus
    with conn.cursor() as cur:
        cur.execute("INSERT INTO events (id, name) VALUES (%s, %s)", (20, "in tx"))
        check(conn.info.transaction_status == TS.INTRANS, "INTRANS after a write")
        conn.rollback()
        check(conn.info.transaction_status == TS.IDLE, "IDLE after rollback")
        cur.execute("SELECT count(*) FROM events WHERE id = 20")
        check(cur.fetchone()[0] == 0, "rollback discarded the insert")
        conn.rollback()

        try:
            cur.execute("SELECT nope FROM events")
            raise AssertionError("expected UndefinedColumn")
        except errors.UndefinedColumn:
            pass
        check(conn.info.transaction_status == TS.INERROR, "INERROR after a failed statement")
        try:
            cur.execute("SELECT 1")
            raise AssertionError("expected InFailedSqlTransaction")
        except errors.InFailedSqlTransaction as e:
            check(e.sqlstate == "25P02", e.sqlstate)
        conn.rollback()
        check(conn.info.transaction_status == TS.IDLE, "IDLE after rolling back the failure")

        cur.execute("INSERT INTO events (id, name) VALUES (%s, %s)", (21, "committed"))
        conn.commit()
    with conn.cursor() as cur:
        cur.execute("SELECT name FROM events WHERE id = 21")
        check(cur.fetchone() == ("committed",), "commit persisted the insert")
        conn.commit()

    with conn.transaction():
        conn.execute("INSERT INTO events (id) VALUES (30)")
    try:
        with conn.transaction():
            conn.execute("INSERT INTO events (id) VALUES (31)")
            raise RuntimeError("abort the block")
    except RuntimeError:
        pass
    got = conn.execute("SELECT id FROM events WHERE id IN (30, 31) ORDER BY id").fetchall()
    check(got == [(30,)], f"context-manager transactions: {got}")

print("psycopg client: all checks passed")
sys.exit(0)
