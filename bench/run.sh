#!/usr/bin/env bash
# Benchmarks Freshet against PostgreSQL 15 and its model inference against
# onnxruntime on this machine, and regenerates docs/benchmarks.md.
#
#   bench/run.sh            # full run: 10M-row COPY, 16 clients x 30 s INSERTs, GROUP BY;
#                           # then m!predict over 1M-row tables for each model family;
#                           # then dynamic tables: 20,000 logins/s for 5 min into the
#                           # model pipeline, refreshes over 1M- and 10M-row sources,
#                           # an aggregate vs a PostgreSQL materialized view;
#                           # then prepared point lookups by primary key at 1M and 10M rows
#   bench/run.sh --quick    # small sizes, to try it out (a few minutes)
#   bench/run.sh --sections dynamic   # one section only (server, models, dynamic, lookup)
#
# Other options are passed to bench/bench.py (see `python3 bench/bench.py --help`):
#   --rows N --clients N --insert-seconds S --agg-reps N --pgbench-mode simple|extended|prepared
#   --sections server,models,dynamic --model-rows N --model-batch N --model-reps N --ort-python PY
#   --fresh-seconds S (300; 20 with --quick) --fresh-rate ROWS_PER_S (20000)
#   --fresh-writers N (4) --fresh-interval-ms MS (25, per writer) --poll-ms MS (25)
#   --scale-rows SMALL,LARGE (1000000,10000000; 100000,1000000 with --quick)
#   --refresh-rows N (1000) --refresh-reps N (10; 5 with --quick)
#   --lookup-rows SIZE,SIZE (1000000,10000000) --lookup-reps N (5000; 1000 with --quick)
#   --output FILE --workdir DIR
# The dynamic and lookup sections need psycopg (pip install 'psycopg[binary]').
# onnxruntime is taken from /var/tmp/fixtures-venv (see tools/fixtures/README.md) or
# BENCH_ORT_PYTHON; without it the onnxruntime column reads n/a.
# Environment: CARGO_TARGET_DIR (default /var/tmp/freshet-target), PG_BINDIR,
# BENCH_SKIP_BUILD=1 to use an existing release binary.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/freshet-target}"

need_pg=0
command -v psql >/dev/null 2>&1 || need_pg=1
command -v pgbench >/dev/null 2>&1 || need_pg=1
if [ -z "${PG_BINDIR:-}" ] && [ ! -x /usr/lib/postgresql/15/bin/postgres ]; then
    need_pg=1
fi
if [ "$need_pg" = 1 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "PostgreSQL 15 (server, psql, pgbench) is required: apt-get install postgresql-15 postgresql-client-15" >&2
        exit 1
    fi
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15 postgresql-client-15
    # The Debian package may start a default cluster; the benchmark uses its own.
fi

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release -p freshet
    # the in-process inference measurement (selecting freshet too keeps the
    # dependency features, and so the build cache, the same as the server's)
    cargo build --release -p freshet -p freshet-models --example throughput
fi
bin="$CARGO_TARGET_DIR/release/freshet"
if [ ! -x "$bin" ]; then
    echo "freshet binary not found at $bin" >&2
    exit 1
fi

exec python3 bench/bench.py --freshet-bin "$bin" --command "bench/run.sh${*:+ $*}" "$@"
