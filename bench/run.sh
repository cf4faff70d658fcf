#!/usr/bin/env bash
# Benchmarks Freshet against PostgreSQL 15 and its model inference against
# onnxruntime on this machine, and regenerates docs/benchmarks.md.
#
#   bench/run.sh            # full run: 10M-row COPY, 16 clients x 30 s INSERTs, GROUP BY;
#                           # then m!predict over 1M-row tables for each model family;
#                           # then dynamic tables: 20,000 logins/s for 5 min into the
#                           # model pipeline, refreshes over 1M- and 10M-row sources,
#                           # an aggregate vs a PostgreSQL materialized view and pg_ivm;
#                           # then prepared point lookups by primary key at 1M and 10M rows
#                           # then the test build and lints from an empty target directory
#                           # (about an hour on 2 cores) and the binary's size
#   bench/run.sh --quick    # small sizes, to try it out (a few minutes)
#   bench/run.sh --sections dynamic   # one section only (server, models, dynamic, lookup, build)
#
# Other options are passed to bench/bench.py (see `python3 bench/bench.py --help`):
#   --rows N --clients N --insert-seconds S --agg-reps N --pgbench-mode simple|extended|prepared
#   --sections server,models,dynamic --model-rows N --model-batch N --model-reps N --ort-python PY
#   --fresh-seconds S (300; 20 with --quick) --fresh-rate ROWS_PER_S (20000)
#   --fresh-writers N (4) --fresh-interval-ms MS (25, per writer) --poll-ms MS (25)
#   --scale-rows SMALL,LARGE (1000000,10000000; 100000,1000000 with --quick)
#   --refresh-rows N (1000) --refresh-reps N (10; 5 with --quick)
#   --lookup-rows SIZE,SIZE (1000000,10000000) --lookup-reps N (5000; 1000 with --quick)
#   --pg-ivm-src DIR|none --pg-ivm-git GITDIR
#   --output FILE --workdir DIR
# The dynamic and lookup sections need psycopg (pip install 'psycopg[binary]').
# onnxruntime is taken from /var/tmp/fixtures-venv (see tools/fixtures/README.md) or
# BENCH_ORT_PYTHON; without it the onnxruntime column reads n/a.
# The dynamic section also measures pg_ivm (PostgreSQL's incremental view maintenance
# extension): bench.py builds it with PGXS and installs it into PostgreSQL 15 unless that
# version is installed already, from BENCH_PG_IVM_SRC (a source tree) or else HEAD of the
# git clone BENCH_PG_IVM_GIT (default /work/.mirror/sraoss+pg_ivm/repo), extracted into the
# work directory; it needs postgresql-server-dev-15, which this script installs when run
# as root. Without pg_ivm the report's pg_ivm figures read n/a and say why.
# Environment: CARGO_TARGET_DIR (default /var/tmp/freshet-target), PG_BINDIR,
# BENCH_SKIP_BUILD=1 to use an existing release binary, BENCH_PG_IVM_SRC, BENCH_PG_IVM_GIT.
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

# PGXS, to build pg_ivm for the dynamic section (not fatal: without it the
# report says pg_ivm could not be built).
want_ivm=1
case " $* " in
    *" --sections "*|*" --sections="*) case " $* " in *dynamic*) ;; *) want_ivm=0 ;; esac ;;
esac
case " $* " in *" --pg-ivm-src none "*|*" --pg-ivm-src=none "*) want_ivm=0 ;; esac
pg_config="${PG_BINDIR:-/usr/lib/postgresql/15/bin}/pg_config"
if [ "$want_ivm" = 1 ] && [ "${BENCH_PG_IVM_SRC:-}" != none ] && [ "$(id -u)" -eq 0 ] \
    && { [ ! -x "$pg_config" ] || [ ! -f "$("$pg_config" --pgxs 2>/dev/null)" ]; }; then
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-server-dev-15; then
        apt-get update -q || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-server-dev-15 \
            || echo "warning: postgresql-server-dev-15 not installed; pg_ivm will not be built" >&2
    fi
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
