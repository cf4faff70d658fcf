"""psycopg2, asyncpg and SQLAlchemy (+ pandas) against a running Freshet server.

Run by crates/freshet/tests/psycopg.rs with FRESHET_URI set to a libpq URI.
Each check runs on its own tables, so one failure does not hide the others;
the script prints every failure and exits non-zero if any.
"""

import asyncio
import datetime
import decimal
import os
import sys
from urllib.parse import urlparse

from checks import check, run

URI = os.environ["FRESHET_URI"]
PARTS = urlparse(URI)



def test_psycopg2():
    import psycopg2
    import psycopg2.extras

    conn = psycopg2.connect(URI)
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE p2 (id int PRIMARY KEY, name text, amount numeric(10,2), ts timestamp)")
        psycopg2.extras.execute_values(
            cur,
            "INSERT INTO p2 VALUES %s",
            [(i, f"n{i}", decimal.Decimal(i) / 2, datetime.datetime(2024, 1, 1, 10, 0)) for i in range(100)],
        )
        conn.commit()
        cur.execute("SELECT id, name, amount, ts FROM p2 WHERE id = %s", (5,))
        got = cur.fetchall()
        check(got == [(5, "n5", decimal.Decimal("2.50"), datetime.datetime(2024, 1, 1, 10, 0))], f"select: {got}")
        # A named (server-side) cursor: DECLARE and FETCH in batches.
        named = conn.cursor(name="big")
        named.itersize = 30
        named.execute("SELECT id FROM p2 ORDER BY id")
        ids = [row[0] for row in named]
        check(ids == list(range(100)), f"named cursor returned {len(ids)} rows")
        conn.commit()
        cur.execute("INSERT INTO p2 (id) VALUES (1)")
    except psycopg2.errors.UniqueViolation:
        conn.rollback()
    else:
        raise AssertionError("a duplicate key was accepted")
    finally:
        conn.close()


def test_asyncpg():
    import asyncpg

    async def session():
        conn = await asyncpg.connect(
            host=PARTS.hostname, port=PARTS.port, user=PARTS.username, database=PARTS.path.lstrip("/")
        )
        try:
            await conn.execute("CREATE TABLE ap (id int, name text, amount numeric(10,2))")
            await conn.executemany(
                "INSERT INTO ap VALUES ($1, $2, $3)", [(i, f"n{i}", decimal.Decimal(i)) for i in range(20)]
            )
            rows = await conn.fetch("SELECT id, name, amount FROM ap WHERE id = $1", 7)
            check([tuple(r) for r in rows] == [(7, "n7", decimal.Decimal("7.00"))], f"fetch: {rows}")
            check(await conn.fetchval("SELECT count(*) FROM ap") == 20, "count")
            async with conn.transaction():
                seen = [r["id"] async for r in conn.cursor("SELECT id FROM ap ORDER BY id", prefetch=7)]
            check(seen == list(range(20)), f"cursor: {seen}")
        finally:
            await conn.close()

    asyncio.run(session())


def test_sqlalchemy_pandas():
    import pandas as pd
    import sqlalchemy as sa

    for driver in ("postgresql+psycopg", "postgresql+psycopg2"):
        engine = sa.create_engine(URI.replace("postgresql", driver, 1))
        table = "sa_" + driver.split("+")[1]
        frame = pd.DataFrame({"id": [1, 2, 3], "name": ["a", "b", None], "score": [0.5, 1.5, 2.5]})
        frame.to_sql(table, engine, index=False)
        frame.to_sql(table, engine, index=False, if_exists="append")
        back = pd.read_sql(f"SELECT id, name, score FROM {table} ORDER BY id, score", engine)
        check(len(back) == 6 and list(back["id"]) == [1, 1, 2, 2, 3, 3], f"{driver} read_sql: {back}")
        check(sa.inspect(engine).has_table(table), f"{driver} has_table")
        with engine.begin() as conn:
            n = conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE id = :id"), {"id": 2}).scalar()
        check(n == 2, f"{driver} bound parameter: {n}")
        engine.dispose()


if __name__ == "__main__":
    sys.exit(run("python drivers", globals()))
