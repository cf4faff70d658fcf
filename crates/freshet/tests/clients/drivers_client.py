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


BINARY_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def parse_binary_copy(data):
    """Splits a binary COPY stream into tuples of raw field bytes (None for NULL),
    checking its header and that it ends with the trailer."""
    import struct

    check(data[:11] == BINARY_COPY_SIGNATURE, f"binary COPY signature: {data[:11]!r}")
    flags, ext = struct.unpack_from("!ii", data, 11)
    check(flags == 0, f"binary COPY flags: {flags}")
    pos = 19 + ext
    rows = []
    while True:
        (count,) = struct.unpack_from("!h", data, pos)
        pos += 2
        if count == -1:
            check(pos == len(data), f"{len(data) - pos} bytes after the binary COPY trailer")
            return rows
        row = []
        for _ in range(count):
            (size,) = struct.unpack_from("!i", data, pos)
            pos += 4
            if size == -1:
                row.append(None)
            else:
                row.append(data[pos : pos + size])
                pos += size
        rows.append(tuple(row))


def test_asyncpg_binary_copy():
    import io
    import struct

    import asyncpg

    columns = "id int NOT NULL, big bigint, f float8, ok bool, name text, amount numeric(12,3), day date, at timestamp, blob bytea"
    records = [
        (
            1,
            2**63 - 1,
            0.1,
            True,
            "héllo ☃ 𝄞 \t\n\\N ,\"'",
            decimal.Decimal("123456789.125"),
            datetime.date(2024, 2, 29),
            datetime.datetime(2024, 1, 1, 10, 0, 0, 123456),
            b"\x00\xff\\x",
        ),
        (2, None, -1e300, False, "", decimal.Decimal("-0.001"), datetime.date(1999, 12, 31), datetime.datetime(1970, 1, 1), b""),
        (-(2**31), -1, None, None, None, None, None, None, None),
    ]

    async def session():
        conn = await asyncpg.connect(
            host=PARTS.hostname, port=PARTS.port, user=PARTS.username, database=PARTS.path.lstrip("/")
        )
        try:
            await conn.execute(f"CREATE TABLE apbin ({columns})")
            await conn.execute(f"CREATE TABLE apbin2 ({columns})")
            status = await conn.copy_records_to_table("apbin", records=records)
            check(status == "COPY 3", f"copy_records_to_table: {status}")
            back = [tuple(r) for r in await conn.fetch("SELECT * FROM apbin ORDER BY id DESC")]
            check(back == sorted(records, key=lambda r: -r[0]), f"rows after binary COPY FROM: {back}")

            # COPY TO in binary: a well-formed stream whose values are the ones loaded
            out = io.BytesIO()
            status = await conn.copy_from_table("apbin", output=out, format="binary")
            check(status == "COPY 3", f"copy_from_table: {status}")
            stream = out.getvalue()
            rows = parse_binary_copy(stream)
            check(sorted(len(r) for r in rows) == [9, 9, 9], f"binary COPY TO tuples: {rows}")
            out = io.BytesIO()
            await conn.copy_from_query(
                "SELECT id, name, blob FROM apbin WHERE id > 0 ORDER BY id", output=out, format="binary"
            )
            got = [
                (struct.unpack("!i", i)[0], n if n is None else n.decode(), b)
                for i, n, b in parse_binary_copy(out.getvalue())
            ]
            check(got == [(r[0], r[4], r[8]) for r in records[:2]], f"copy_from_query: {got}")
            # ... and one that binary COPY FROM reads back unchanged
            status = await conn.copy_to_table("apbin2", source=io.BytesIO(stream), format="binary")
            check(status == "COPY 3", f"copy_to_table: {status}")
            again = [tuple(r) for r in await conn.fetch("SELECT * FROM apbin2 ORDER BY id DESC")]
            check(again == back, f"rows after a binary round trip: {again}")

            # malformed streams fail cleanly and leave the connection usable
            header = BINARY_COPY_SIGNATURE + struct.pack("!ii", 0, 0)
            bad = {
                "signature": b"PGCOPY\n\xff\r\n\x01" + struct.pack("!iih", 0, 0, -1),
                "field count": header + struct.pack("!hi", 1, -1) + struct.pack("!h", -1),
                "truncated": header + struct.pack("!hi", 9, 4) + b"\x00\x00",
            }
            for what, data in bad.items():
                try:
                    await conn.copy_to_table("apbin", source=io.BytesIO(data), format="binary")
                except asyncpg.PostgresError as e:
                    check(e.sqlstate == "22P04", f"malformed binary COPY ({what}): {e.sqlstate} {e}")
                else:
                    raise AssertionError(f"a malformed binary COPY ({what}) was accepted")
            try:
                await conn.copy_records_to_table("apbin", records=[(None,) + records[2][1:]])
            except asyncpg.PostgresError as e:
                check(e.sqlstate == "23502", f"NULL into NOT NULL by binary COPY: {e.sqlstate} {e}")
            else:
                raise AssertionError("binary COPY put a NULL into a NOT NULL column")
            try:
                await conn.copy_to_table("apbin", source=io.BytesIO(b""), format="binary", delimiter=",")
            except asyncpg.PostgresError as e:
                check(
                    (e.sqlstate, str(e)) == ("42601", "cannot specify DELIMITER in BINARY mode"),
                    f"DELIMITER in binary mode: {e.sqlstate} {e}",
                )
            else:
                raise AssertionError("DELIMITER was accepted in binary mode")
            check(await conn.fetchval("SELECT count(*) FROM apbin") == 3, "rows after the failed COPYs")
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


def test_sqlalchemy_reflects_keys_and_indexes():
    import sqlalchemy as sa

    engine = sa.create_engine(URI.replace("postgresql", "postgresql+psycopg", 1))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE sa_keys (id int PRIMARY KEY, email text UNIQUE, a int, b int)"))
        conn.execute(sa.text("CREATE UNIQUE INDEX sa_keys_ba ON sa_keys (b, a)"))
    inspector = sa.inspect(engine)
    pk = inspector.get_pk_constraint("sa_keys")
    check(pk["name"] == "sa_keys_pkey" and pk["constrained_columns"] == ["id"], f"get_pk_constraint: {pk}")
    unique = inspector.get_unique_constraints("sa_keys")
    check(
        [(u["name"], u["column_names"]) for u in unique] == [("sa_keys_email_key", ["email"])],
        f"get_unique_constraints: {unique}",
    )
    indexes = sorted(
        (i["name"], i["unique"], i["column_names"], i.get("duplicates_constraint"))
        for i in inspector.get_indexes("sa_keys")
    )
    check(
        indexes
        == [
            ("sa_keys_ba", True, ["b", "a"], None),
            ("sa_keys_email_key", True, ["email"], "sa_keys_email_key"),
        ],
        f"get_indexes: {indexes}",
    )
    # a table reflected whole carries its key and indexes
    table = sa.Table("sa_keys", sa.MetaData(), autoload_with=engine)
    check([c.name for c in table.primary_key.columns] == ["id"], f"reflected primary key: {table.primary_key}")
    check([i.name for i in table.indexes] == ["sa_keys_ba"], f"reflected indexes: {table.indexes}")
    check(
        sorted(c.name for c in table.constraints if isinstance(c, sa.UniqueConstraint)) == ["sa_keys_email_key"],
        f"reflected unique constraints: {table.constraints}",
    )
    engine.dispose()


def test_sqlalchemy_reflects_columns():
    import sqlalchemy as sa

    engine = sa.create_engine(URI.replace("postgresql", "postgresql+psycopg", 1))
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE sa_cols (id int PRIMARY KEY, name varchar(20) NOT NULL DEFAULT 'x',"
                " score numeric(10,2), created timestamp, flag boolean DEFAULT true)"
            )
        )
    columns = [
        (c["name"], str(c["type"]), c["nullable"], c["default"])
        for c in sa.inspect(engine).get_columns("sa_cols")
    ]
    check(
        columns
        == [
            ("id", "INTEGER", False, None),
            ("name", "VARCHAR(20)", False, "'x'::character varying"),
            ("score", "NUMERIC(10, 2)", True, None),
            ("created", "TIMESTAMP", True, None),
            ("flag", "BOOLEAN", True, "true"),
        ],
        f"get_columns: {columns}",
    )
    # pandas.read_sql_table reflects the table the same way
    table = sa.Table("sa_cols", sa.MetaData(), autoload_with=engine)
    check([c.name for c in table.columns] == ["id", "name", "score", "created", "flag"], f"reflected: {table.columns}")
    engine.dispose()


if __name__ == "__main__":
    sys.exit(run("python drivers", globals()))
