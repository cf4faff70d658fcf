#!/usr/bin/env python3
"""Benchmarks the Python client against the same Freshet server:

* ``DataFrame.to_pandas()`` of the logins table against ``pandas.read_sql``
  through psycopg (rows/s, and peak Python memory of each, measured in a
  fresh process per run);
* ``Session.write_pandas`` of the same rows against ``psql \\copy`` of them
  as CSV (rows/s).

    python3 bench/python_client.py --bin /var/tmp/freshet-target/release/freshet --rows 1000000

Starts its own server on a free loopback port with a temporary data
directory (``--no-fsync`` off: COPY commits are fsynced as in production;
``--http-listen off``, so it runs beside another server on the default HTTP port),
and prints a Markdown section for docs/benchmarks.md (``--output`` appends it
to a file). Needs pandas, pyarrow and psycopg; psql for the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "clients", "python", "src")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, proc: subprocess.Popen, deadline: float = 120) -> None:
    end = time.time() + deadline
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


# Each measurement runs in a child process so its peak RSS is its own.
CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, os.environ["FRESHET_SRC"])
mode, port, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
import numpy as np, pandas as pd
cfg = {"host": "127.0.0.1", "port": port, "user": "freshet", "database": "freshet"}
def frame(n):
    ids = np.arange(n, dtype=np.int64)
    locs = np.array(["US", "DE", "FR", "BR", "IN", "CN", "GB", "JP", "Zürich"], dtype=object)
    return pd.DataFrame({"login_id": ids, "user_id": 1 + (ids * 7919) % 99991,
                         "location": locs[ids % 9],
                         "event_time": pd.Timestamp("2024-01-01") + pd.to_timedelta(ids, unit="ms")})
out = {}
if mode == "to_pandas":
    from freshet.snowpark import Session
    with Session.builder.configs(cfg).create() as s:
        t = time.perf_counter(); df = s.table("logins").to_pandas(); out["secs"] = time.perf_counter() - t
    out["rows"] = len(df)
elif mode == "read_sql":
    import psycopg
    with psycopg.connect(host="127.0.0.1", port=port, user="freshet", dbname="freshet") as c:
        t = time.perf_counter(); df = pd.read_sql("SELECT * FROM logins", c); out["secs"] = time.perf_counter() - t
    out["rows"] = len(df)
elif mode == "write_pandas":
    from freshet.snowpark import Session
    f = frame(rows)
    with Session.builder.configs(cfg).create() as s:
        s.sql("DROP TABLE IF EXISTS logins_wp").collect()
        s.sql("CREATE TABLE logins_wp (login_id bigint, user_id bigint, location text, event_time timestamp)").collect()
        t = time.perf_counter(); s.write_pandas(f, "logins_wp"); out["secs"] = time.perf_counter() - t
        out["rows"] = s.table("logins_wp").count()
elif mode == "csv":
    frame(rows).to_csv(sys.argv[4], index=False, header=False)
out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def child(mode: str, port: int, rows: int, *extra: str) -> dict:
    env = dict(os.environ, FRESHET_SRC=os.path.abspath(SRC))
    res = subprocess.run([sys.executable, "-c", CHILD, mode, str(port), str(rows), *extra],
                         capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def psql(port: int, command: str) -> float:
    t = time.perf_counter()
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(port),
                    "-U", "freshet", "freshet", "-c", command], check=True, env=dict(os.environ, PGPASSWORD=""))
    return time.perf_counter() - t


def median(xs: list) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "/var/tmp/freshet-target"),
                                                  "release", "freshet"))
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--output", help="append the Markdown section to this file")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="freshet-pybench-")
    port = free_port()
    log = open(os.path.join(work, "server.log"), "w")
    proc = subprocess.Popen([args.bin, "serve", "--data-dir", os.path.join(work, "data"),
                             "--listen", f"127.0.0.1:{port}", "--http-listen", "off"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(port, proc)
        csv = os.path.join(work, "logins.csv")
        child("csv", port, args.rows, csv)
        psql(port, "CREATE TABLE logins (login_id bigint, user_id bigint, location text, event_time timestamp)")
        psql(port, f"\\copy logins FROM '{csv}' WITH (FORMAT csv)")

        results: dict = {"to_pandas": [], "read_sql": [], "write_pandas": [], "copy": []}
        for _ in range(args.reps):
            for mode in ("read_sql", "to_pandas"):
                results[mode].append(child(mode, port, args.rows))
            results["write_pandas"].append(child("write_pandas", port, args.rows))
            psql(port, "DROP TABLE IF EXISTS logins_cp")
            psql(port, "CREATE TABLE logins_cp (login_id bigint, user_id bigint, location text, event_time timestamp)")
            secs = psql(port, f"\\copy logins_cp FROM '{csv}' WITH (FORMAT csv)")
            results["copy"].append({"secs": secs, "rows": args.rows, "peak_rss_mib": float("nan")})
        for mode, runs in results.items():
            assert all(r["rows"] == args.rows for r in runs), (mode, runs)

        def rate(mode: str) -> float:
            return args.rows / median([r["secs"] for r in results[mode]])

        def peak(mode: str) -> float:
            return max(r["peak_rss_mib"] for r in results[mode])

        commit = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        lines = [
            "",
            "## Python client",
            "",
            f"`bench/python_client.py --rows {args.rows}` at {commit}: one Freshet server, {args.reps} runs each "
            "(median), every run in a fresh Python process (peak memory is that process's maximum RSS, "
            "interpreter and pandas included).",
            "",
            "| Operation | Freshet client rows/s | Baseline | Baseline rows/s | Ratio | Peak Python memory, MiB (client / baseline) |",
            "|---|---:|---|---:|---:|---|",
            f"| read {args.rows:,} rows into pandas | {rate('to_pandas'):,.0f} (`to_pandas()`) | `pandas.read_sql` via psycopg | "
            f"{rate('read_sql'):,.0f} | {rate('to_pandas') / rate('read_sql'):.2f}x | {peak('to_pandas'):.0f} / {peak('read_sql'):.0f} |",
            f"| load {args.rows:,} rows | {rate('write_pandas'):,.0f} (`write_pandas`) | psql `\\copy` of the rows as CSV | "
            f"{rate('copy'):,.0f} | {rate('write_pandas') / rate('copy'):.2f}x | {peak('write_pandas'):.0f} / n/a |",
            "",
            "Targets (issue 11): `to_pandas` at least 1.0x `read_sql`; `write_pandas` at least 0.8x `\\copy`.",
            "",
        ]
        text = "\n".join(lines)
        print(text)
        if args.output:
            with open(args.output, "a") as f:
                f.write(text)
    finally:
        proc.kill()
        proc.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
