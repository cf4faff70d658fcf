// node-postgres (`pg`, with `pg-cursor` and `pg-copy-streams`) against a
// running server: a node user's first hour.
//
// Run by crates/freshet/tests/drivers_node_jdbc.rs with FRESHET_URI set to a
// libpq URI (postgresql://user@host:port/db) and FRESHET_TARGET set to
// `freshet` or `postgres`. Every expectation is PostgreSQL 15's answer; each
// test runs on its own tables, so one failure does not hide the others.
// Prints every failure and exits non-zero if any; the last line on success
// is `node-postgres: all checks passed`.
//
// KNOWN_FRESHET_DIFFERENCES names the tests where Freshet is known to answer
// differently from PostgreSQL (each reported on issue 12). Against Freshet
// such a test still runs: its failure is printed as a known difference and
// does not fail the run, but its passing does, so the list is kept current.
"use strict";

process.env.TZ = "UTC";

const path = require("path");
const { pipeline } = require("stream/promises");
const { Readable } = require("stream");

const modules = path.join(__dirname, "node", "node_modules");
const pg = require(path.join(modules, "pg"));
const Cursor = require(path.join(modules, "pg-cursor"));
const copyStreams = require(path.join(modules, "pg-copy-streams"));

const URI = process.env.FRESHET_URI;
if (!URI) {
  console.error("FRESHET_URI is not set");
  process.exit(2);
}
const TARGET = process.env.FRESHET_TARGET || "freshet";

const KNOWN_FRESHET_DIFFERENCES = {};

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

function eq(got, want, what) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) throw new Error(`check failed: ${what}: got ${g}, want ${w}`);
}

async function expectError(promise, sqlstate, what) {
  try {
    await promise;
  } catch (err) {
    if (err.code !== sqlstate) {
      throw new Error(`${what}: SQLSTATE ${err.code} (${err.message}), want ${sqlstate}`);
    }
    return err;
  }
  throw new Error(`${what}: no error, want SQLSTATE ${sqlstate}`);
}

async function connect() {
  const client = new pg.Client({ connectionString: URI });
  await client.connect();
  return client;
}

async function withClient(fn) {
  const client = await connect();
  try {
    await fn(client);
  } finally {
    await client.end();
  }
}

const UNICODE = "héllo wörld — 日本語 🎉 \u00e9\u0301";

// ---------------------------------------------------------------- tests

async function test_version() {
  await withClient(async (c) => {
    const v = (await c.query("SELECT version() AS v")).rows[0].v;
    check(v.startsWith("PostgreSQL 15."), `version(): ${v}`);
    const sv = (await c.query("SHOW server_version")).rows[0].server_version;
    check(/^15\.\d+/.test(sv), `server_version: ${sv}`);
  });
}

async function test_connect_and_settings() {
  await withClient(async (c) => {
    const r = await c.query("SELECT current_database() AS db, current_user AS u");
    const url = new URL(URI);
    eq(r.rows[0], { db: url.pathname.slice(1), u: url.username }, "current_database, current_user");
    // Parameters the server reports at startup, which pg reads.
    const enc = (await c.query("SHOW client_encoding")).rows[0].client_encoding;
    eq(enc, "UTF8", "client_encoding");
    const ds = await c.query("SHOW DateStyle");
    eq(Object.values(ds.rows[0]), ["ISO, MDY"], "DateStyle");
    const simple = await c.query("SELECT 1 AS one; SELECT 'two' AS two");
    check(Array.isArray(simple) && simple.length === 2, "multi-statement simple query gives two results");
    eq(simple[0].rows, [{ one: 1 }], "first result");
    eq(simple[1].rows, [{ two: "two" }], "second result");
  });
}

async function test_inferred_parameter_types() {
  await withClient(async (c) => {
    // int4 arrives as a number, int8 (and count(*)) as a string.
    let r = await c.query("SELECT $1::int + 1 AS n", [41]);
    eq(r.rows[0].n, 42, "$1::int + 1");
    eq(r.fields[0].dataTypeID, 23, "$1::int + 1 is int4");
    r = await c.query("SELECT 1 AS one, 2147483647 AS maxint, 2147483648 AS big");
    eq(r.rows[0], { one: 1, maxint: 2147483647, big: "2147483648" }, "literals");
    eq(r.fields.map((f) => f.dataTypeID), [23, 23, 20], "literal types");
    r = await c.query("SELECT $1::bigint AS b", ["9007199254740993"]);
    eq(r.rows[0].b, "9007199254740993", "int8 past 2^53 exact as a string");
    r = await c.query("SELECT count(*) AS n FROM (SELECT 1 UNION ALL SELECT 2) s");
    eq(r.rows[0].n, "2", "count(*) is bigint, a string");
    r = await c.query("SELECT $1::text AS t, $2::text IS NULL AS isnull", [UNICODE, null]);
    eq(r.rows[0], { t: UNICODE, isnull: true }, "text and NULL parameters");
    r = await c.query("SELECT $1::numeric(20,5) * 2 AS n", ["12345.678"]);
    eq(r.rows[0].n, "24691.35600", "numeric arrives as an exact string");
    r = await c.query("SELECT $1::float8 / 4 AS f, $2::boolean AS b", [1.5, true]);
    eq(r.rows[0], { f: 0.375, b: true }, "float8 and boolean");
    // A parameter whose type comes from its use, not a cast.
    await c.query("CREATE TABLE np_infer (id int, label text)");
    await c.query("INSERT INTO np_infer VALUES ($1, $2), ($3, $4)", [1, "a", 2, "b"]);
    r = await c.query("SELECT label FROM np_infer WHERE id = $1", [2]);
    eq(r.rows, [{ label: "b" }], "WHERE id = $1");
    r = await c.query("SELECT id + $1 AS s FROM np_infer WHERE id = 1", [10]);
    eq(r.rows, [{ s: 11 }], "int column + $1 stays int4");
    eq(r.fields[0].dataTypeID, 23, "int column + $1 is int4");
  });
}

async function test_round_trip_types() {
  await withClient(async (c) => {
    await c.query(`CREATE TABLE np_types (
      id int PRIMARY KEY, i8 bigint, i2 smallint, t text, v varchar(20), n numeric(12,3),
      f float8, r real, b boolean, d date, ts timestamp, tstz timestamptz,
      j json, jb jsonb, by bytea)`);
    const ts = new Date(Date.UTC(2024, 11, 25, 10, 30, 15, 123));
    const row = [
      1, "-9223372036854775808", -32768, UNICODE, "naïve", "-123456789.125",
      -0.1, 0.5, false, "2024-02-29", ts, new Date(Date.UTC(2024, 0, 1, 23, 59, 59)),
      { a: [1, 2.5, "x"], "ü": null }, { nested: { k: "v", n: 1 } }, Buffer.from([0, 1, 2, 0xfe, 0xff, 0x5c]),
    ];
    const ins = await c.query(
      "INSERT INTO np_types VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)",
      row,
    );
    eq(ins.rowCount, 1, "insert rowCount");
    eq(ins.command, "INSERT", "insert command");
    await c.query("INSERT INTO np_types (id) VALUES (2)");
    const r = await c.query("SELECT * FROM np_types ORDER BY id");
    const got = r.rows[0];
    eq(got.id, 1, "int4");
    eq(got.i8, "-9223372036854775808", "int8 min");
    eq(got.i2, -32768, "int2");
    eq(got.t, UNICODE, "unicode text");
    eq(got.v, "naïve", "varchar");
    eq(got.n, "-123456789.125", "numeric(12,3)");
    eq(got.f, -0.1, "float8");
    eq(got.r, 0.5, "real");
    eq(got.b, false, "boolean");
    // pg parses a date as local midnight (TZ=UTC here).
    eq(got.d.toISOString(), "2024-02-29T00:00:00.000Z", "date");
    eq(got.ts.toISOString(), "2024-12-25T10:30:15.123Z", "timestamp");
    eq(got.tstz.toISOString(), "2024-01-01T23:59:59.000Z", "timestamptz");
    eq(got.j, { a: [1, 2.5, "x"], "ü": null }, "json parsed");
    eq(got.jb, { nested: { k: "v", n: 1 } }, "jsonb parsed");
    check(Buffer.isBuffer(got.by) && got.by.equals(Buffer.from([0, 1, 2, 0xfe, 0xff, 0x5c])), `bytea: ${got.by}`);
    const nulls = r.rows[1];
    for (const [k, v] of Object.entries(nulls)) {
      if (k !== "id") eq(v, null, `NULL ${k}`);
    }
    eq(
      r.fields.map((f) => [f.name, f.dataTypeID]).filter(([n]) => n !== "v" && n !== "jb"),
      [["id", 23], ["i8", 20], ["i2", 21], ["t", 25], ["n", 1700], ["f", 701], ["r", 700],
        ["b", 16], ["d", 1082], ["ts", 1114], ["tstz", 1184], ["j", 114], ["by", 17]],
      "RowDescription types (varchar and jsonb: test_rowdescription_varchar_jsonb)",
    );
    // The text the server sends, as PostgreSQL formats it.
    const text = await c.query(
      "SELECT d::text AS d, ts::text AS ts, n::text AS n, by::text AS by, b::text AS b FROM np_types WHERE id = 1",
    );
    eq(text.rows[0], {
      d: "2024-02-29", ts: "2024-12-25 10:30:15.123", n: "-123456789.125", by: "\\x000102feff5c", b: "false",
    }, "text forms");
    // jsonb operators on the stored value.
    const jr = await c.query("SELECT jb->'nested'->>'k' AS k, jb->'nested' AS o FROM np_types WHERE id = 1");
    eq(jr.rows[0], { k: "v", o: { k: "v", n: 1 } }, "jsonb -> and ->>");
  });
}

async function test_show_column_name() {
  await withClient(async (c) => {
    const r = await c.query("SHOW DateStyle");
    eq(r.fields.map((f) => f.name), ["DateStyle"], "SHOW DateStyle column name");
  });
}

async function test_rowdescription_varchar_jsonb() {
  await withClient(async (c) => {
    await c.query("CREATE TABLE np_rd (v varchar(20), jb jsonb)");
    const r = await c.query("SELECT v, jb FROM np_rd");
    eq(r.fields.map((f) => [f.name, f.dataTypeID]), [["v", 1043], ["jb", 3802]], "varchar and jsonb column types");
  });
}

async function test_arrays() {
  await withClient(async (c) => {
    const r = await c.query("SELECT $1::int[] AS a, ARRAY['x y', 'z'] AS t, ARRAY[1.5, NULL]::float8[] AS f", [
      [1, 2, null],
    ]);
    eq(r.rows[0], { a: [1, 2, null], t: ["x y", "z"], f: [1.5, null] }, "arrays");
    eq(r.fields.map((f) => f.dataTypeID), [1007, 1009, 1022], "array types");
    const u = await c.query("SELECT unnest($1::text[]) AS x", [["a", UNICODE, null]]);
    eq(u.rows.map((x) => x.x), ["a", UNICODE, null], "unnest of a text[] parameter");
  });
}

async function test_batch_and_prepared() {
  await withClient(async (c) => {
    await c.query("CREATE TABLE np_batch (id int PRIMARY KEY, name text, score numeric(6,2))");
    // A named prepared statement, parsed once and executed many times.
    for (let i = 0; i < 50; i++) {
      const r = await c.query({
        name: "np_batch_ins",
        text: "INSERT INTO np_batch VALUES ($1, $2, $3)",
        values: [i, `name ${i} ✓`, (i / 4).toFixed(2)],
      });
      eq(r.rowCount, 1, `prepared insert ${i}`);
    }
    // A multi-row insert in one statement.
    const values = [];
    const params = [];
    for (let i = 50; i < 100; i++) {
      params.push(`($${values.length + 1}, $${values.length + 2}, $${values.length + 3})`);
      values.push(i, i % 2 ? null : `name ${i}`, i);
    }
    const multi = await c.query(`INSERT INTO np_batch VALUES ${params.join(", ")}`, values);
    eq(multi.rowCount, 50, "multi-row insert rowCount");
    const sel = { name: "np_batch_sel", text: "SELECT name, score FROM np_batch WHERE id = $1" };
    for (const id of [0, 7, 51, 52, 99]) {
      const r = await c.query({ ...sel, values: [id] });
      const want = id < 50
        ? { name: `name ${id} ✓`, score: (id / 4).toFixed(2) }
        : { name: id % 2 ? null : `name ${id}`, score: `${id}.00` };
      eq(r.rows, [want], `prepared select ${id}`);
    }
    const upd = await c.query("UPDATE np_batch SET score = score + 1 WHERE id >= $1", [90]);
    eq([upd.command, upd.rowCount], ["UPDATE", 10], "update rowCount");
    const del = await c.query("DELETE FROM np_batch WHERE name IS NULL");
    eq([del.command, del.rowCount], ["DELETE", 25], "delete rowCount");
    const ret = await c.query("INSERT INTO np_batch VALUES (1000, 'r', 1.5) RETURNING id, score");
    eq(ret.rows, [{ id: 1000, score: "1.50" }], "INSERT RETURNING");
    // 0..49 score i/4 (306.25), even 50..98 (1850), +1 for the five left of 90..99, and 1.5.
    const agg = await c.query("SELECT count(*) AS n, sum(score) AS s FROM np_batch");
    eq(agg.rows[0], { n: "76", s: "2162.75" }, "count and sum");
    const arr = await c.query({ text: "SELECT id, name FROM np_batch WHERE id < 2 ORDER BY id", rowMode: "array" });
    eq(arr.rows, [[0, "name 0 ✓"], [1, "name 1 ✓"]], "rowMode array");
  });
}

async function test_cursor() {
  await withClient(async (c) => {
    await c.query("CREATE TABLE np_cur (id int, payload text)");
    await c.query("INSERT INTO np_cur SELECT i, 'row ' || i FROM generate_series(1, 1000) AS g(i)");
    const cursor = c.query(new Cursor("SELECT id, payload FROM np_cur WHERE id > $1 ORDER BY id", [0]));
    const sizes = [];
    const ids = [];
    for (;;) {
      const rows = await cursor.read(300);
      if (rows.length === 0) break;
      sizes.push(rows.length);
      for (const r of rows) {
        check(r.payload === `row ${r.id}`, `payload of ${r.id}`);
        ids.push(r.id);
      }
    }
    await cursor.close();
    eq(sizes, [300, 300, 300, 100], "batch sizes");
    eq(ids.length, 1000, "rows read");
    check(ids.every((id, i) => id === i + 1), "rows in order");
    // The connection is usable after the cursor is closed early.
    const early = c.query(new Cursor("SELECT id FROM np_cur ORDER BY id"));
    eq((await early.read(2)).map((r) => r.id), [1, 2], "first rows of a cursor closed early");
    await early.close();
    eq((await c.query("SELECT count(*) AS n FROM np_cur")).rows[0].n, "1000", "query after cursor");
    // A cursor inside a transaction.
    await c.query("BEGIN");
    const tx = c.query(new Cursor("SELECT id FROM np_cur WHERE id <= 10 ORDER BY id DESC"));
    eq((await tx.read(100)).map((r) => r.id), [10, 9, 8, 7, 6, 5, 4, 3, 2, 1], "cursor in a transaction");
    await tx.close();
    await c.query("COMMIT");
  });
}

async function test_generate_series_alias() {
  await withClient(async (c) => {
    // A function in FROM with only a table alias names its column after it.
    const r = await c.query("SELECT sum(g) AS s FROM generate_series(1, 3) AS g");
    eq(r.rows, [{ s: "6" }], "generate_series AS g");
  });
}

async function test_copy() {
  await withClient(async (c) => {
    await c.query("CREATE TABLE np_copy (id int, name text, amount numeric(10,2), d date)");
    const lines = [];
    for (let i = 0; i < 500; i++) {
      lines.push(`${i}\t${i % 10 === 0 ? "\\N" : `név ${i}\\ttab`}\t${i}.5\t2024-01-${String((i % 28) + 1).padStart(2, "0")}\n`);
    }
    const stream = c.query(copyStreams.from("COPY np_copy (id, name, amount, d) FROM STDIN"));
    await pipeline(Readable.from(lines), stream);
    eq(stream.rowCount, 500, "COPY FROM rowCount");
    let r = await c.query("SELECT count(*) AS n, count(name) AS named, sum(amount) AS total FROM np_copy");
    eq(r.rows[0], { n: "500", named: "450", total: "125000.00" }, "copied rows");
    r = await c.query("SELECT name, d::text AS d FROM np_copy WHERE id = 3");
    eq(r.rows[0], { name: "név 3\ttab", d: "2024-01-04" }, "COPY escapes and unicode");
    // CSV with a header and quoted fields.
    const csv = c.query(copyStreams.from("COPY np_copy (id, name) FROM STDIN WITH (FORMAT csv, HEADER true)"));
    await pipeline(Readable.from(['id,name\n', '1000,"a, ""quoted"" name"\n', '1001,\n']), csv);
    eq(csv.rowCount, 2, "CSV COPY rowCount");
    r = await c.query("SELECT id, name FROM np_copy WHERE id >= 1000 ORDER BY id");
    eq(r.rows, [{ id: 1000, name: 'a, "quoted" name' }, { id: 1001, name: null }], "CSV values");
    // COPY TO STDOUT gives the same text back.
    const out = c.query(copyStreams.to("COPY (SELECT id, name FROM np_copy WHERE id IN (0, 3, 1000) ORDER BY id) TO STDOUT"));
    const chunks = [];
    for await (const chunk of out) chunks.push(chunk);
    eq(Buffer.concat(chunks).toString("utf8"), '0\t\\N\n3\tnév 3\\ttab\n1000\ta, "quoted" name\n', "COPY TO");
    // A bad row fails the whole COPY with 22P02 and loads nothing.
    await c.query("CREATE TABLE np_copy_bad (id int)");
    const bad = c.query(copyStreams.from("COPY np_copy_bad FROM STDIN"));
    await expectError(pipeline(Readable.from(["1\n", "two\n", "3\n"]), bad), "22P02", "COPY of a bad integer");
    eq((await c.query("SELECT count(*) AS n FROM np_copy_bad")).rows[0].n, "0", "failed COPY loads nothing");
  });
}

async function test_transactions_and_savepoints() {
  await withClient(async (c) => {
    await c.query("CREATE TABLE np_tx (id int PRIMARY KEY, v text)");
    await c.query("BEGIN");
    await c.query("INSERT INTO np_tx VALUES (1, 'rolled back')");
    await c.query("ROLLBACK");
    await c.query("BEGIN");
    await c.query("INSERT INTO np_tx VALUES (1, 'kept')");
    await c.query("SAVEPOINT s1");
    await c.query("INSERT INTO np_tx VALUES (2, 'undone')");
    await c.query("ROLLBACK TO SAVEPOINT s1");
    await c.query("SAVEPOINT s2");
    await c.query("INSERT INTO np_tx VALUES (3, 'released')");
    await c.query("RELEASE SAVEPOINT s2");
    // An error inside a savepoint, rolled back to it, keeps the transaction.
    await c.query("SAVEPOINT s3");
    await expectError(c.query("INSERT INTO np_tx VALUES (1, 'dup')"), "23505", "duplicate in a savepoint");
    await expectError(c.query("SELECT 1"), "25P02", "statement in a failed transaction");
    await c.query("ROLLBACK TO SAVEPOINT s3");
    await c.query("INSERT INTO np_tx VALUES (4, 'after recovery')");
    await c.query("COMMIT");
    const r = await c.query("SELECT id, v FROM np_tx ORDER BY id");
    eq(r.rows, [{ id: 1, v: "kept" }, { id: 3, v: "released" }, { id: 4, v: "after recovery" }], "committed rows");
    // Another connection sees committed rows only.
    await c.query("BEGIN");
    await c.query("INSERT INTO np_tx VALUES (5, 'uncommitted')");
    await withClient(async (other) => {
      eq((await other.query("SELECT count(*) AS n FROM np_tx")).rows[0].n, "3", "uncommitted row invisible");
    });
    await c.query("COMMIT");
    // A failed transaction's COMMIT rolls back.
    await c.query("BEGIN");
    await c.query("INSERT INTO np_tx VALUES (6, 'lost')");
    await expectError(c.query("SELECT 1/0"), "22012", "division by zero");
    const commit = await c.query("COMMIT");
    eq(commit.command, "ROLLBACK", "COMMIT of a failed transaction reports ROLLBACK");
    eq((await c.query("SELECT count(*) AS n FROM np_tx")).rows[0].n, "4", "rows after a failed transaction");
  });
}

async function test_errors() {
  await withClient(async (c) => {
    await c.query("CREATE TABLE np_err (id int PRIMARY KEY, name text NOT NULL)");
    await c.query("INSERT INTO np_err VALUES (1, 'a')");
    let e = await expectError(c.query("INSERT INTO np_err VALUES ($1, $2)", [1, "b"]), "23505", "unique violation");
    eq(e.severity, "ERROR", "severity");
    eq(e.message, 'duplicate key value violates unique constraint "np_err_pkey"', "unique violation message");
    eq(e.detail, "Key (id)=(1) already exists.", "unique violation detail");
    e = await expectError(c.query("SELEC 1"), "42601", "syntax error");
    // PostgreSQL's message is exactly this; Freshet adds "(expected an SQL statement)".
    check(e.message.startsWith('syntax error at or near "SELEC"'), `syntax error message: ${e.message}`);
    eq(e.position, "1", "syntax error position");
    e = await expectError(c.query("SELECT * FROM np_missing"), "42P01", "undefined table");
    eq(e.message, 'relation "np_missing" does not exist', "undefined table message");
    await expectError(c.query("SELECT nope FROM np_err"), "42703", "undefined column");
    await expectError(c.query("INSERT INTO np_err VALUES (2, NULL)"), "23502", "not-null violation");
    await expectError(c.query("SELECT $1::int", ["abc"]), "22P02", "invalid integer parameter");
    await expectError(c.query("SELECT 2147483647::int + 1"), "22003", "integer overflow");
    await expectError(c.query("SELECT 1/0"), "22012", "division by zero");
    await expectError(c.query("CREATE TABLE np_err (x int)"), "42P07", "duplicate table");
    // The connection is still usable, with nothing half-done.
    eq((await c.query("SELECT count(*) AS n FROM np_err")).rows[0].n, "1", "rows after errors");
  });
}

async function test_error_fields() {
  await withClient(async (c) => {
    await c.query("CREATE TABLE np_errf (id int PRIMARY KEY)");
    await c.query("INSERT INTO np_errf VALUES (1)");
    const e = await expectError(c.query("INSERT INTO np_errf VALUES (1)"), "23505", "unique violation");
    eq([e.schema, e.table, e.constraint], ["public", "np_errf", "np_errf_pkey"], "schema, table and constraint fields");
  });
}

async function test_metadata() {
  await withClient(async (c) => {
    await c.query("CREATE TABLE np_meta (id bigint PRIMARY KEY, name varchar(40) NOT NULL, price numeric(10,2), at timestamptz)");
    let r = await c.query(
      `SELECT column_name, data_type, is_nullable
         FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`,
      ["np_meta"],
    );
    eq(r.rows, [
      { column_name: "id", data_type: "bigint", is_nullable: "NO" },
      { column_name: "name", data_type: "character varying", is_nullable: "NO" },
      { column_name: "price", data_type: "numeric", is_nullable: "YES" },
      { column_name: "at", data_type: "timestamp with time zone", is_nullable: "YES" },
    ], "information_schema.columns");
    r = await c.query(
      "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'public' AND table_name LIKE 'np_meta%'",
    );
    eq(r.rows, [{ table_name: "np_meta", table_type: "BASE TABLE" }], "information_schema.tables");
    r = await c.query(
      `SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull
         FROM pg_attribute a WHERE a.attrelid = 'np_meta'::regclass AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum`,
    );
    eq(r.rows, [
      { attname: "id", type: "bigint", attnotnull: true },
      { attname: "name", type: "character varying(40)", attnotnull: true },
      { attname: "price", type: "numeric(10,2)", attnotnull: false },
      { attname: "at", type: "timestamp with time zone", attnotnull: false },
    ], "pg_attribute with format_type");
    r = await c.query("SELECT typname FROM pg_type WHERE oid = $1", [3802]);
    eq(r.rows, [{ typname: "jsonb" }], "pg_type lookup");
  });
}

async function test_rowdescription_table_ids() {
  await withClient(async (c) => {
    await c.query("CREATE TABLE np_rdt (id bigint, name text)");
    // Field metadata on a result: table oid and column numbers.
    const r = await c.query("SELECT name, id FROM np_rdt");
    const oid = (await c.query("SELECT 'np_rdt'::regclass::oid AS o")).rows[0].o;
    eq(r.fields.map((f) => [f.name, f.tableID, f.columnID]), [["name", oid, 2], ["id", oid, 1]],
      "RowDescription table and column ids");
  });
}

async function test_information_schema_constraints() {
  await withClient(async (c) => {
    await c.query("CREATE TABLE np_tc (id bigint PRIMARY KEY, name text)");
    const r = await c.query(
      `SELECT kcu.column_name, tc.constraint_name, tc.constraint_type FROM information_schema.table_constraints tc
         JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name
        WHERE tc.table_name = 'np_tc'`,
    );
    eq(r.rows, [{ column_name: "id", constraint_name: "np_tc_pkey", constraint_type: "PRIMARY KEY" }],
      "primary key in information_schema");
  });
}

async function test_information_schema_sizes() {
  await withClient(async (c) => {
    await c.query("CREATE TABLE np_sizes (id bigint, name varchar(40), price numeric(10,2), i int)");
    // cardinal_number is a domain over integer: node-postgres reads numbers.
    const r = await c.query(
      `SELECT column_name AS c, character_maximum_length AS len, numeric_precision AS p, numeric_scale AS s
         FROM information_schema.columns WHERE table_name = 'np_sizes' ORDER BY ordinal_position`,
    );
    eq(r.rows, [
      { c: "id", len: null, p: 64, s: 0 },
      { c: "name", len: 40, p: null, s: null },
      { c: "price", len: null, p: 10, s: 2 },
      { c: "i", len: null, p: 32, s: 0 },
    ], "sizes in information_schema.columns");
  });
}

async function test_returning_command_tags() {
  await withClient(async (c) => {
    await c.query("CREATE TABLE np_ret (id int, v text)");
    // Simple protocol (no parameters) and extended (with one): the command
    // is the statement's, not SELECT, and the count is the rows returned.
    let r = await c.query("INSERT INTO np_ret VALUES (1, 'a'), (2, 'b') RETURNING id");
    eq([r.command, r.rowCount, r.rows.length], ["INSERT", 2, 2], "INSERT RETURNING, simple");
    r = await c.query("UPDATE np_ret SET v = $1 RETURNING id", ["x"]);
    eq([r.command, r.rowCount, r.rows.length], ["UPDATE", 2, 2], "UPDATE RETURNING, extended");
    r = await c.query("DELETE FROM np_ret WHERE id = $1 RETURNING v", [1]);
    eq([r.command, r.rowCount, r.rows], ["DELETE", 1, [{ v: "x" }]], "DELETE RETURNING, extended");
    r = await c.query("INSERT INTO np_ret VALUES ($1, $2) RETURNING id", [3, "c"]);
    eq([r.command, r.rowCount, r.oid], ["INSERT", 1, 0], "INSERT RETURNING, extended");
  });
}

async function test_pool() {
  const pool = new pg.Pool({ connectionString: URI, max: 4 });
  try {
    await pool.query("CREATE TABLE np_pool (id int PRIMARY KEY, w int)");
    await Promise.all(
      Array.from({ length: 40 }, (_, i) => pool.query("INSERT INTO np_pool VALUES ($1, $2)", [i, i % 4])),
    );
    const r = await pool.query("SELECT w, count(*)::int AS n FROM np_pool GROUP BY w ORDER BY w");
    eq(r.rows, [{ w: 0, n: 10 }, { w: 1, n: 10 }, { w: 2, n: 10 }, { w: 3, n: 10 }], "pooled inserts");
  } finally {
    await pool.end();
  }
}

// ---------------------------------------------------------------- runner

async function main() {
  const tests = [
    test_version, test_connect_and_settings, test_show_column_name, test_inferred_parameter_types, test_round_trip_types,
    test_rowdescription_varchar_jsonb, test_arrays, test_batch_and_prepared, test_cursor, test_generate_series_alias,
    test_copy, test_transactions_and_savepoints, test_errors, test_error_fields, test_metadata,
    test_rowdescription_table_ids, test_information_schema_constraints, test_information_schema_sizes,
    test_returning_command_tags, test_pool,
  ];
  const only = process.env.NODE_CLIENT_ONLY;
  const failures = [];
  const unexpectedPasses = [];
  let known = 0;
  for (const t of tests) {
    if (only && !only.split(",").includes(t.name)) continue;
    const knownWhy = TARGET === "freshet" ? KNOWN_FRESHET_DIFFERENCES[t.name] : undefined;
    try {
      await t();
      if (knownWhy) {
        console.log(`node-postgres ${t.name} ... PASSED but listed as a known Freshet difference (${knownWhy})`);
        unexpectedPasses.push(t.name);
      } else {
        console.log(`node-postgres ${t.name} ... ok`);
      }
    } catch (err) {
      if (knownWhy) {
        known += 1;
        console.log(`node-postgres ${t.name} ... KNOWN FRESHET DIFFERENCE (${knownWhy}): ${err.message}`);
      } else {
        console.log(`node-postgres ${t.name} ... FAILED`);
        failures.push([t.name, err]);
      }
    }
  }
  for (const [name, err] of failures) {
    console.log(`\n==== ${name} ====\n${err.stack || err}`);
  }
  for (const name of unexpectedPasses) {
    console.log(`\n==== ${name} ====\nnow passes against Freshet: remove it from KNOWN_FRESHET_DIFFERENCES`);
  }
  console.log(`node-postgres: ${failures.length} failed, ${known} known Freshet differences (target ${TARGET})`);
  if (failures.length || unexpectedPasses.length) process.exit(1);
  console.log("node-postgres: all checks passed");
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
