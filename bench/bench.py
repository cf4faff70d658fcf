#!/usr/bin/env python3
"""Freshet vs PostgreSQL 15 on the same machine, with the same clients.

Started by bench/run.sh (which builds Freshet and installs PostgreSQL if
needed). Both servers run on loopback with durable commits (fsync on), one
after the other, and are driven by the same client programs:

* COPY: psql's \\copy of a generated CSV file of logins-like rows
  (id bigint, user_id bigint, location text, event_time timestamp);
* single-row INSERTs: pgbench with a custom script, N clients for S seconds;
* a GROUP BY aggregate over the copied rows, timed by psql's \\timing.

Memory: the peak resident set (VmHWM from /proc/PID/status) of the server
process(es), plus the peak of the proportional set size (PSS) summed over the
server's whole process tree, sampled every 0.2 s (PostgreSQL runs one process
per connection, so a single VmHWM would understate it).

Models (`--sections models`): for each fixture family (linear, random forest,
gradient boosting, the login-risk pipeline, the MLP) a table of --model-rows
rows replicating the fixture's inputs is loaded into Freshet and scored with
`m!predict(...)`: once aggregated on the server (`count(m!predict(...))`, the
scoring alone) and once streamed to the client (`\copy (SELECT ...) TO`, JSON
encoding and the wire included). In the same run the same model is scored
in-process by freshet-models (the `throughput` example) and by onnxruntime
(tools/fixtures/bench_ort.py), with the same batch size and thread count.

Dynamic tables (`--sections dynamic`, needs psycopg), three parts:

* Freshness: the mission's pipeline (`logins_raw` and the dynamic table
  `logins_with_predictions`, TARGET_LAG = '1 second', INCREMENTAL, scoring
  the login-risk fixture) fed --fresh-rate logins/s for --fresh-seconds by
  --fresh-writers connections, each sending a COPY batch every
  --fresh-interval-ms; a poller connection looks every --poll-ms for the
  batches that became visible. Reported: the delay from each batch's
  acknowledgement to the first poll that sees it (p50, p99, max), the rate
  achieved, the server's CPU (/proc/PID/stat) and peak memory, and whether
  the dynamic table ends up with the source's row count.
* Incremental scaling: the same query as an INCREMENTAL and a FULL dynamic
  table (TARGET_LAG = DOWNSTREAM, so only manual refreshes run) over a source
  of the two --scale-rows sizes; --refresh-reps times: COPY --refresh-rows
  new logins, then `ALTER DYNAMIC TABLE … REFRESH`, timed by the client and
  by the refresh history.
* Full-recompute peer: a GROUP BY aggregate as INCREMENTAL and FULL dynamic
  tables, and in PostgreSQL as a materialized view (`REFRESH MATERIALIZED
  VIEW`), over the larger source, refreshed after the same kind of inserts.
* Incremental peer: the aggregate as a pg_ivm IMMV (`create_immv`) in a
  PostgreSQL 15 instance of its own, over the same two source sizes (without
  `count(DISTINCT user_id)` if pg_ivm refuses it, as 1.15 does; Freshet is
  then compared with it on a twin INCREMENTAL dynamic table over that same
  query, logins_agg_ivm_inc, measured like the others); pg_ivm
  maintains it inside each inserting transaction, so each timed batch is the
  COPY of the new logins, maintenance included, and the IMMV must equal its
  query afterwards or the benchmark stops. pg_ivm is built from source
  with PGXS (--pg-ivm-src, or HEAD of the git clone --pg-ivm-git) and
  installed unless its version is there already; if it cannot be, the report
  says so and its figures read n/a.

Point lookups (`--sections lookup`, needs psycopg): a table with a bigint
primary key grown to each --lookup-rows size in PostgreSQL, then in
Freshet; --lookup-reps prepared `WHERE id = $1` lookups of random keys from
one connection, p50 and p99 by the client's clock, and in Freshet a few
lookups the index cannot serve (`abs(id) = $1`).

The results are written as Markdown to docs/benchmarks.md (or --output), each
part between its own markers.
"""

import argparse
import contextlib
import datetime
import hashlib
import os
import random
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

LOCATIONS = [
    "Oslo", "Bergen", "Lima", "Cusco", "Pune", "Mumbai", "Lagos", "Accra", "Quito", "Hanoi",
    "Kyiv", "Lviv", "Porto", "Lisbon", "Austin", "Denver", "Perth", "Hobart", "Cairo", "Giza",
    "Seoul", "Busan", "Osaka", "Kyoto", "Dakar", "Tunis", "Riga", "Vilnius", "Tallinn", "Turku",
    "Bogota", "Cali", "Santiago", "Valparaiso", "Nairobi", "Mombasa", "Dhaka", "Sylhet", "Doha",
    "Muscat", "Reno", "Boise", "Leeds", "York", "Cork", "Galway", "Bern", "Basel", "Graz", "Linz",
]

AGGREGATE_SQL = (
    "SELECT location, count(*) AS logins, count(DISTINCT user_id) AS users, "
    "min(event_time) AS first_seen, max(event_time) AS last_seen "
    "FROM logins GROUP BY location ORDER BY location"
)

CREATE_SQL = (
    "CREATE TABLE logins (id bigint NOT NULL, user_id bigint, location text, event_time timestamp)"
)
CREATE_INSERT_SQL = (
    "CREATE TABLE logins_ins (id bigint NOT NULL, user_id bigint, location text, event_time timestamp)"
)

# Timed passes over the table in tools/fixtures/bench_ort.py (after a warm-up);
# the in-process measurement makes the same number.
ORT_REPS = 5

PGBENCH_SCRIPT = """\\set id random(1, 9000000000000000)
\\set uid random(1, 1000000)
INSERT INTO logins_ins (id, user_id, location, event_time) VALUES (:id, :uid, 'Oslo', '2024-01-01 12:00:00');
"""


def log(msg):
    print(f"[bench {datetime.datetime.now():%H:%M:%S}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc=None, timeout=180.0, what="server"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} during start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s")


# ---------------------------------------------------------------- memory


def children_of(pid):
    """All descendants of pid (by scanning /proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in parents.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class MemorySampler(threading.Thread):
    """Samples the server's process tree: peak summed PSS and peak VmHWM."""

    def __init__(self, root_pid, interval=0.2):
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.interval = interval
        self.stop_event = threading.Event()
        self.peak_pss_kib = 0
        self.peak_hwm_kib = 0
        self.peak_processes = 0

    def sample(self):
        pids = [self.root_pid] + children_of(self.root_pid)
        total = 0
        for pid in pids:
            total += pss_kib(pid)
            hwm = status_kib(pid, "VmHWM")
            if hwm:
                self.peak_hwm_kib = max(self.peak_hwm_kib, hwm)
        self.peak_pss_kib = max(self.peak_pss_kib, total)
        self.peak_processes = max(self.peak_processes, len(pids))

    def run(self):
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(self.interval)

    def stop(self):
        self.sample()
        self.stop_event.set()
        self.join(timeout=10)


# ---------------------------------------------------------------- clients


def run(cmd, timeout, env=None, stdin_data=None):
    res = subprocess.run(
        cmd,
        input=stdin_data,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if res.returncode != 0:
        raise RuntimeError(
            f"command failed ({res.returncode}): {shlex.join(cmd)}\nstdout:\n{res.stdout[-4000:]}\n"
            f"stderr:\n{res.stderr[-4000:]}"
        )
    return res


def client_env():
    env = dict(os.environ)
    for var in ("PGPASSWORD", "PGSERVICE", "PGOPTIONS", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE"):
        env.pop(var, None)
    env["PGCONNECT_TIMEOUT"] = "30"
    return env


def psql(tools, uri, *args, timeout=3600, stdin_data=None):
    cmd = [tools["psql"], "-X", "-v", "ON_ERROR_STOP=1", "-d", uri, *args]
    return run(cmd, timeout, env=client_env(), stdin_data=stdin_data)


def scalar(tools, uri, sql):
    return psql(tools, uri, "-A", "-t", "-c", sql, timeout=600).stdout.strip()


def generate_data(path, rows, seed=20240101, start=0, locations=LOCATIONS, users=1_000_000):
    """Deterministic logins-like CSV: id, user_id, location, event_time, for
    ids start .. start + rows - 1.

    Event times advance about 3 s per id from 2024-01-01; user ids are uniform
    in 1..users; locations uniform over `locations`.
    """
    log(f"generating {rows:,} rows into {path}")
    rng = random.Random(seed)
    rand = rng.random
    base = datetime.date(2024, 1, 1)
    days = [(base + datetime.timedelta(days=d)).isoformat() for d in range((start + rows) * 3 // 86400 + 2)]
    tod = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)]
    nloc = len(locations)
    tmp = path + ".partial"
    batch = 200_000
    with open(tmp, "w") as f:
        for first in range(start, start + rows, batch):
            end = min(start + rows, first + batch)
            lines = []
            append = lines.append
            for i in range(first, end):
                sec = i * 3 + int(rand() * 3)
                append(
                    f"{i},{int(rand() * users) + 1},{locations[int(rand() * nloc)]},"
                    f"{days[sec // 86400]} {tod[sec % 86400]}\n"
                )
            f.write("".join(lines))
    os.replace(tmp, path)


def parse_pgbench(output):
    def grab(pattern, cast=float):
        m = re.search(pattern, output)
        return cast(m.group(1)) if m else None

    return {
        "tps": grab(r"tps = ([0-9.]+) \(without initial connection time\)"),
        "latency_ms": grab(r"latency average = ([0-9.]+) ms"),
        "transactions": grab(r"number of transactions actually processed: (\d+)", int),
        "failed": grab(r"number of failed transactions: (\d+)", int) or 0,
    }


def workloads(name, tools, uri, args, data_file, sampler):
    results = {}
    psql(tools, uri, "-q", "-c", CREATE_SQL)

    # COPY. Write back what the previous server left dirty in the page
    # cache first: its writeback would otherwise compete with this server's
    # fsyncs, a handicap for whichever runs second.
    os.sync()
    log(f"{name}: COPY {args.rows:,} rows")
    t0 = time.monotonic()
    out = psql(tools, uri, "-c", f"\\copy logins FROM '{data_file}' WITH (FORMAT csv)").stdout
    elapsed = time.monotonic() - t0
    copied = scalar(tools, uri, "SELECT count(*) FROM logins")
    if int(copied) != args.rows:
        raise RuntimeError(f"{name}: COPY loaded {copied} rows, expected {args.rows} ({out})")
    results["copy_s"] = elapsed
    results["copy_rows_per_s"] = args.rows / elapsed
    log(f"{name}: COPY took {elapsed:.2f} s")

    # GROUP BY aggregate
    times = []
    for rep in range(args.agg_reps):
        out = psql(tools, uri, "-A", "-t", "-c", "\\timing on", "-c", AGGREGATE_SQL).stdout
        m = re.search(r"Time: ([0-9.]+) ms", out)
        if not m:
            raise RuntimeError(f"{name}: no timing in psql output:\n{out}")
        times.append(float(m.group(1)))
        groups = [line for line in out.splitlines() if "|" in line]
        if len(groups) != len(LOCATIONS):
            raise RuntimeError(f"{name}: aggregate returned {len(groups)} groups:\n{out[:2000]}")
    results["agg_ms"] = times
    results["agg_median_ms"] = statistics.median(times)
    log(f"{name}: aggregate {', '.join(f'{t:.0f}' for t in times)} ms")

    # Concurrent single-row INSERTs. Both servers still owe a checkpoint for
    # the COPY's rows; CHECKPOINT takes it now, so that neither server spends
    # the timed inserts writing it (both bench users are superusers).
    psql(tools, uri, "-q", "-c", "CHECKPOINT")
    psql(tools, uri, "-q", "-c", CREATE_INSERT_SQL)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(PGBENCH_SCRIPT)
        script = f.name
    try:
        log(f"{name}: pgbench {args.clients} clients x {args.insert_seconds} s ({args.pgbench_mode})")
        res = run(
            [
                tools["pgbench"], "-n", "-M", args.pgbench_mode, "-c", str(args.clients),
                "-j", str(args.threads), "-T", str(args.insert_seconds), "-f", script, uri,
            ],
            timeout=args.insert_seconds + 600,
            env=client_env(),
        )
    finally:
        os.unlink(script)
    pgb = parse_pgbench(res.stdout)
    if pgb["tps"] is None:
        raise RuntimeError(f"{name}: could not parse pgbench output:\n{res.stdout}\n{res.stderr}")
    inserted = int(scalar(tools, uri, "SELECT count(*) FROM logins_ins"))
    if pgb["transactions"] is not None and inserted < pgb["transactions"]:
        raise RuntimeError(
            f"{name}: pgbench reported {pgb['transactions']} inserts but the table has {inserted}"
        )
    results["insert"] = pgb
    results["inserted_rows"] = inserted
    log(f"{name}: {pgb['tps']:.0f} inserts/s, mean latency {pgb['latency_ms']} ms")
    sampler.sample()
    return results


# ---------------------------------------------------------------- servers


def find_postgres_bindir():
    candidates = [os.environ.get("PG_BINDIR"), "/usr/lib/postgresql/15/bin"]
    which = shutil.which("postgres")
    if which:
        candidates.append(os.path.dirname(os.path.realpath(which)))
    for c in candidates:
        if c and os.path.exists(os.path.join(c, "postgres")) and os.path.exists(os.path.join(c, "initdb")):
            return c
    raise RuntimeError("PostgreSQL 15 server binaries not found (apt-get install postgresql-15)")


def as_postgres(cmd):
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@contextlib.contextmanager
def postgres_instance(workdir, settings=()):
    """A throwaway PostgreSQL cluster (initdb defaults, fsync and synchronous
    commit on, loopback only, plus `settings`, NAME=VALUE strings) in a new
    directory under workdir; yields (uri, postmaster pid, version) and stops
    the server on exit."""
    bindir = find_postgres_bindir()
    version = run([os.path.join(bindir, "postgres"), "--version"], 60).stdout.strip()
    pgdir = tempfile.mkdtemp(prefix="pg-", dir=workdir)
    if os.geteuid() == 0:
        shutil.chown(pgdir, "postgres", "postgres")
        os.chmod(pgdir, 0o700)
    data = os.path.join(pgdir, "data")
    run(as_postgres([os.path.join(bindir, "initdb"), "-D", data, "-A", "trust", "-U", "postgres",
                     "-E", "UTF8", "--locale=C"]), 300)
    port = free_port()
    opts = f"-p {port} -k {pgdir} -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on"
    opts += "".join(f" -c {shlex.quote(setting)}" for setting in settings)
    run(as_postgres([os.path.join(bindir, "pg_ctl"), "-D", data, "-o", opts, "-l",
                     os.path.join(pgdir, "server.log"), "-w", "-t", "120", "start"]), 180)
    try:
        with open(os.path.join(data, "postmaster.pid")) as f:
            pid = int(f.readline())
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=disable", pid, version
    finally:
        subprocess.run(as_postgres([os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "fast",
                                    "-w", "stop"]), capture_output=True, timeout=180)


def postgres_settings(tools, uri):
    return scalar(
        tools, uri,
        "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings "
        "WHERE name IN ('fsync','synchronous_commit','shared_buffers','wal_level','max_wal_size','work_mem')",
    )


def bench_postgres(tools, args, data_file, workdir):
    with postgres_instance(workdir) as (uri, pid, version):
        sampler = MemorySampler(pid)
        sampler.start()
        try:
            results = workloads("postgres", tools, uri, args, data_file, sampler)
        finally:
            sampler.stop()
        results["version"] = version
        results["peak_hwm_kib"] = sampler.peak_hwm_kib
        results["peak_pss_kib"] = sampler.peak_pss_kib
        results["processes"] = sampler.peak_processes
        results["settings"] = postgres_settings(tools, uri)
        return results


@contextlib.contextmanager
def freshet_instance(args, workdir, extra=(), log_name="freshet.log"):
    """`freshet serve` on a new data directory under workdir, with the extra
    options `extra`; yields (uri, process) and stops the server on exit."""
    data = tempfile.mkdtemp(prefix="freshet-", dir=workdir)
    port = free_port()
    logf = open(os.path.join(workdir, log_name), "w")
    cmd = [args.freshet_bin, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}", *extra]
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, what="freshet")
        yield f"postgresql://freshet@127.0.0.1:{port}/freshet?sslmode=disable", proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        logf.close()


def bench_freshet(tools, args, data_file, workdir):
    with freshet_instance(args, workdir) as (uri, proc):
        sampler = MemorySampler(proc.pid)
        sampler.start()
        try:
            results = workloads("freshet", tools, uri, args, data_file, sampler)
        finally:
            sampler.stop()
        results["peak_hwm_kib"] = status_kib(proc.pid, "VmHWM") or sampler.peak_hwm_kib
        results["peak_pss_kib"] = sampler.peak_pss_kib
        results["processes"] = sampler.peak_processes
        results["version"] = freshet_version(args.freshet_bin)
        return results


def freshet_version(binary):
    try:
        res = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
        if res.returncode == 0 and res.stdout.strip():
            return res.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "freshet"


# ---------------------------------------------------------------- report


def machine_info():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kib = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kib = int(line.split()[1])
    except OSError:
        pass
    commit = "unknown"
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or "uncommitted"
        # the report itself, rewritten section by section, does not count
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", ".",
                                ":(exclude)docs/benchmarks.md"], capture_output=True,
                               text=True, timeout=30).stdout.strip()
        if dirty:
            commit += " (with uncommitted changes)"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": mem_kib / 1024 / 1024 if mem_kib else None,
        "kernel": " ".join(os.uname()[2:3]),
        "commit": commit,
    }


def machine_and_command(machine, command):
    """The report lines every section ends with: the machine and the command."""
    return [
        "### Machine",
        "",
        f"- CPU: {machine['cpu']}, {machine['nproc']} cores (nproc)",
        f"- Memory: {fmt_num(machine['mem_gib'], 1)} GiB",
        f"- Kernel: {machine['kernel']}",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        "",
        "### Command",
        "",
        "```",
        command,
        "```",
    ]


def fmt_num(v, digits=0):
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def ratio(f, p):
    if not f or not p:
        return "n/a"
    r = f / p
    # Two decimals, or two significant digits below 0.01 (0.0027×, not 0.00×).
    return f"{r:.2f}×" if r >= 0.01 or r == 0 else f"{r:.2g}×"


def render(args, machine, pg, fr, command):
    mib = lambda kib: kib / 1024 if kib else None  # noqa: E731
    rows = [
        (f"COPY {args.rows:,} rows, rows/s (higher is better)",
         pg["copy_rows_per_s"], fr["copy_rows_per_s"], 0),
        ("COPY elapsed, s (lower is better)", pg["copy_s"], fr["copy_s"], 2),
        (f"Single-row INSERTs, {args.clients} clients for {args.insert_seconds} s, inserts/s (higher is better)",
         pg["insert"]["tps"], fr["insert"]["tps"], 0),
        ("INSERT mean latency, ms (lower is better)", pg["insert"]["latency_ms"], fr["insert"]["latency_ms"], 3),
        (f"GROUP BY aggregate over {args.rows:,} rows, median of {args.agg_reps}, ms (lower is better)",
         pg["agg_median_ms"], fr["agg_median_ms"], 1),
        ("Peak RSS of a server process (max VmHWM), MiB", mib(pg["peak_hwm_kib"]), mib(fr["peak_hwm_kib"]), 1),
        ("Peak PSS of all server processes (sampled every 0.2 s), MiB",
         mib(pg["peak_pss_kib"]), mib(fr["peak_pss_kib"]), 1),
    ]
    lines = []
    lines.append("## Freshet vs PostgreSQL 15: COPY, concurrent INSERTs, GROUP BY")
    lines.append("")
    lines.append("Generated by `bench/run.sh`; do not edit by hand. Both servers ran on this machine, on")
    lines.append("loopback, one after the other, with durable commits (fsync on), and were driven by the")
    lines.append("same clients: psql (`\\copy`, `\\timing`) and pgbench. Dirty pages are written back")
    lines.append("(`sync`) before each server's COPY, so neither inherits the other's writeback.")
    lines.append("")
    if args.quick:
        lines.append("**Quick run (`--quick`): reduced sizes, for trying the harness out; not representative.**")
        lines.append("")
    lines.append("| Workload | PostgreSQL | Freshet | Freshet / PostgreSQL |")
    lines.append("| --- | ---: | ---: | ---: |")
    for label, p, f, digits in rows:
        lines.append(f"| {label} | {fmt_num(p, digits)} | {fmt_num(f, digits)} | {ratio(f, p)} |")
    lines.append("")
    lines.append("Ratios are Freshet's figure divided by PostgreSQL's: above 1 is better for throughput,")
    lines.append("worse for time, latency and memory.")
    lines.append("")
    lines.append("### Details")
    lines.append("")
    lines.append(f"- Aggregate runs (ms): PostgreSQL {', '.join(f'{t:.1f}' for t in pg['agg_ms'])}; "
                 f"Freshet {', '.join(f'{t:.1f}' for t in fr['agg_ms'])}")
    lines.append(f"- INSERTs acknowledged (pgbench transactions / rows in table): PostgreSQL "
                 f"{fmt_num(pg['insert']['transactions'])} / {fmt_num(pg['inserted_rows'])}, failed "
                 f"{pg['insert']['failed']}; Freshet {fmt_num(fr['insert']['transactions'])} / "
                 f"{fmt_num(fr['inserted_rows'])}, failed {fr['insert']['failed']}")
    lines.append(f"- Server processes seen at peak: PostgreSQL {pg['processes']}, Freshet {fr['processes']}")
    lines.append(f"- PostgreSQL: {pg['version']}; settings: {pg.get('settings', 'n/a')}; otherwise initdb defaults")
    lines.append(f"- Freshet: {fr['version']}, commit {machine['commit']}, release build, "
                 "`freshet serve` defaults (fsync on)")
    lines.append(f"- pgbench mode `-M {args.pgbench_mode}`, `-j {args.threads}`, after a `CHECKPOINT` on "
                 "each server (the COPY's rows are written out before the timed inserts); script:")
    lines.append("")
    lines.append("```")
    lines.append(PGBENCH_SCRIPT.rstrip())
    lines.append("```")
    lines.append("")
    lines.append("- Aggregate query:")
    lines.append("")
    lines.append("```sql")
    lines.append(AGGREGATE_SQL)
    lines.append("```")
    lines.append("")
    lines.append("- Table: `" + CREATE_SQL + "`; the CSV is generated deterministically "
                 f"({len(LOCATIONS)} locations, user ids 1..1,000,000).")
    lines.append("")
    lines.extend(machine_and_command(machine, command))
    lines.append("")
    return "\n".join(lines)


BEGIN_MARK = "<!-- BEGIN bench/run.sh: generated, do not edit -->"
END_MARK = "<!-- END bench/run.sh -->"
MODELS_BEGIN_MARK = "<!-- BEGIN bench/run.sh models: generated, do not edit -->"
MODELS_END_MARK = "<!-- END bench/run.sh models -->"


def write_section(path, report, begin=BEGIN_MARK, end=END_MARK):
    """Writes the report between the markers `begin` and `end`, keeping the
    rest of the file (other benchmark sections) as it is."""
    section = f"{begin}\n{report.rstrip()}\n{end}\n"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        with open(path) as f:
            existing = f.read()
    except FileNotFoundError:
        existing = ""
    if begin in existing and end in existing:
        before = existing[: existing.index(begin)]
        after = existing[existing.index(end) + len(end):].lstrip("\n")
        content = before + section + ("\n" + after if after else "")
    elif existing.strip():
        content = existing.rstrip() + "\n\n" + section
    else:
        content = "# Benchmarks\n\n" + section
    with open(path, "w") as f:
        f.write(content)


# ---------------------------------------------------------------- models

# (family, fixture): the fixture families the model benchmark covers.
MODEL_FAMILIES = [
    ("linear", "logreg"),
    ("random forest", "random_forest_clf"),
    ("gradient boosting", "gradient_boosting_clf"),
    ("login-risk pipeline", "login_risk"),
    ("MLP", "torch_mlp"),
]

FIXTURES_DIR = os.path.join(ROOT, "tests", "fixtures", "models")

SQL_TYPES = {"float32": "real", "float64": "double precision", "int64": "bigint",
             "int32": "integer", "string": "text", "bool": "boolean"}


def fixture_columns(name):
    """The fixture's SQL argument columns: [(elem, values)], in call order."""
    import json

    with open(os.path.join(FIXTURES_DIR, name + ".inputs.json")) as f:
        inputs = json.load(f)["inputs"]
    return [(inp["elem"], col) for inp in inputs for col in inp["columns"]]


def csv_field(elem, v):
    if v is None:
        return ""
    if elem == "string":
        return '"' + str(v).replace('"', '""') + '"'
    if v == "NaN":
        return "NaN"
    if v == "inf":
        return "Infinity"
    if v == "-inf":
        return "-Infinity"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def model_table_csv(path, name, rows):
    """id plus the fixture's argument columns, rows replicating the fixture's
    inputs in order (the same replication the in-process and onnxruntime
    measurements use)."""
    cols = fixture_columns(name)
    n = len(cols[0][1])
    encoded = [[csv_field(elem, v) for v in values] for elem, values in cols]
    tails = ["," + ",".join(c[r] for c in encoded) + "\n" for r in range(n)]
    tmp = path + ".partial"
    with open(tmp, "w") as f:
        for start in range(0, rows, n):
            count = min(n, rows - start)
            f.write("".join(f"{start + i}{tails[i]}" for i in range(count)))
    os.replace(tmp, path)
    return cols


def rows_per_s(output, what):
    m = re.search(r": ([0-9.]+) rows/s", output)
    if not m:
        raise RuntimeError(f"{what}: no rows/s in output:\n{output[-2000:]}")
    return float(m.group(1))


def ort_python(args):
    """A Python interpreter with onnxruntime and numpy, or None."""
    for candidate in (args.ort_python, "/var/tmp/fixtures-venv/bin/python", sys.executable, "python3"):
        if not candidate or not shutil.which(candidate):
            continue
        ok = subprocess.run([candidate, "-c", "import onnxruntime, numpy"], capture_output=True,
                            timeout=120)
        if ok.returncode == 0:
            return shutil.which(candidate)
    return None


def timed_psql(tools, uri, sql, reps):
    """Elapsed ms of `reps` runs of one statement on one psql connection
    (psql's \\timing), and the result lines of the last run."""
    out = psql(tools, uri, "-A", "-t", "-c", "\\timing on", *(["-c", sql] * reps)).stdout
    times = [float(t) for t in re.findall(r"Time: ([0-9.]+) ms", out)]
    if len(times) != reps:
        raise RuntimeError(f"expected {reps} timings in psql output for {sql}:\n{out[-2000:]}")
    results = [line for line in out.splitlines() if line and not line.startswith(("Timing", "Time:"))]
    return times, results[len(results) // reps * (reps - 1):]


def bench_models(tools, args, workdir):
    threads = os.cpu_count() or 1
    load_before = os.getloadavg()
    families = MODEL_FAMILIES
    if args.model_fixtures:
        wanted = args.model_fixtures.split(",")
        families = [(f, n) for f, n in MODEL_FAMILIES if n in wanted] + [
            (n, n) for n in wanted if n not in {x for _, x in MODEL_FAMILIES}]
    python = ort_python(args)
    if python is None:
        log("models: no Python with onnxruntime found (set --ort-python); onnxruntime column will be n/a")

    extra = ["--model-dir", FIXTURES_DIR, "--inference-batch-size", str(args.model_batch)]
    results = []
    with freshet_instance(args, workdir, extra, "freshet-models.log") as (uri, _proc):
        for family, name in families:
            csv_path = os.path.join(workdir, f"model-{name}-{args.model_rows}.csv")
            cols = model_table_csv(csv_path, name, args.model_rows)
            os.chmod(csv_path, 0o644)
            table, model = f"bench_{name}", f"m_{name}"
            coldefs = ", ".join(f"c{i} {SQL_TYPES[elem]}" for i, (elem, _) in enumerate(cols))
            arglist = ", ".join(f"c{i}" for i in range(len(cols)))
            psql(tools, uri, "-q", "-c", f"CREATE TABLE {table} (id bigint NOT NULL, {coldefs})")
            psql(tools, uri, "-q", "-c", f"\\copy {table} FROM '{csv_path}' WITH (FORMAT csv)")
            psql(tools, uri, "-q", "-c", f"CREATE MODEL {model} FROM '{name}.onnx'")
            loaded = int(scalar(tools, uri, f"SELECT count(*) FROM {table}"))
            if loaded != args.model_rows:
                raise RuntimeError(f"models: {table} has {loaded} rows, expected {args.model_rows}")
            count_sql = f"WITH m AS MODEL {model} SELECT count(m!predict({arglist})) FROM {table}"
            # on one connection, as an application would run them: a warm-up
            # (compiles and caches the model), then the timed runs
            times, lines = timed_psql(tools, uri, count_sql, args.model_reps + 1)
            if lines != [str(args.model_rows)]:
                raise RuntimeError(f"models: {name}: count(m!predict) returned {lines}")
            server_ms = times[1:]
            log(f"models: {name}: count(m!predict) {', '.join(f'{t:.0f}' for t in server_ms)} ms")
            scan_ms = statistics.median(timed_psql(tools, uri, f"SELECT count(c0) FROM {table}", 4)[0][1:])
            out_path = os.path.join(workdir, f"model-{name}.out")
            t0 = time.monotonic()
            psql(tools, uri, "-q", "-c",
                 f"\\copy (SELECT {model}!predict({arglist}) FROM {table}) TO '{out_path}'")
            client_s = time.monotonic() - t0
            with open(out_path) as f:
                streamed = sum(1 for _ in f)
            os.unlink(out_path)
            if streamed != args.model_rows:
                raise RuntimeError(f"models: {name}: streamed {streamed} rows, expected {args.model_rows}")
            log(f"models: {name}: streamed to the client in {client_s:.2f} s")

            # as many passes over the table as tools/fixtures/bench_ort.py makes
            inproc = rows_per_s(run([args.throughput_bin, name, str(threads), str(args.model_batch),
                                     str(args.model_rows), str(ORT_REPS)], 3600).stdout,
                                f"in-process {name}")
            log(f"models: {name}: in-process {inproc:,.0f} rows/s")
            ort = None
            if python:
                env = dict(os.environ, OMP_NUM_THREADS=str(threads))
                ort = rows_per_s(run([python, os.path.join(ROOT, "tools", "fixtures", "bench_ort.py"),
                                      name, str(threads), str(args.model_batch), str(args.model_rows)],
                                     3600, env=env).stdout, f"onnxruntime {name}")
                log(f"models: {name}: onnxruntime {ort:,.0f} rows/s")
            results.append({
                "family": family,
                "fixture": name,
                "server_ms": server_ms,
                "server_rows_per_s": args.model_rows / (statistics.median(server_ms) / 1000),
                "scan_ms": scan_ms,
                "client_rows_per_s": args.model_rows / client_s,
                "inproc_rows_per_s": inproc,
                "ort_rows_per_s": ort,
            })
            psql(tools, uri, "-q", "-c", f"DROP TABLE {table}")
            os.unlink(csv_path)
        version = freshet_version(args.freshet_bin)
        ort_version = None
        if python:
            ort_version = subprocess.run([python, "-c", "import onnxruntime; print(onnxruntime.__version__)"],
                                         capture_output=True, text=True, timeout=120).stdout.strip()
        return {"families": results, "threads": threads, "version": version, "ort_version": ort_version,
                "load": (load_before, os.getloadavg())}


def render_models(args, machine, res, command):
    lines = []
    lines.append("## Model inference: Freshet (SQL and in-process) vs onnxruntime")
    lines.append("")
    lines.append("Generated by `bench/run.sh`; do not edit by hand. Each fixture model scores a table of "
                 f"{args.model_rows:,} rows")
    lines.append("replicating the fixture's committed inputs, with batches of "
                 f"{args.model_batch:,} rows and {res['threads']} threads everywhere:")
    lines.append("")
    lines.append("- **SQL, scored**: `WITH m AS MODEL … SELECT count(m!predict(…)) FROM t` through the server")
    lines.append(f"  (median of {args.model_reps} runs on one psql connection, after a warm-up run on it;")
    lines.append("  psql `\\timing`), i.e. scan + scoring, no result rows on the wire;")
    lines.append("- **SQL, to client**: `\\copy (SELECT m!predict(…) FROM t) TO file` from psql: every")
    lines.append("  result sent as JSON over the wire (wall clock of psql);")
    lines.append("- **in-process**: `CompiledModel::predict` on the whole column set "
                 f"(`cargo run -p freshet-models --example throughput`), {ORT_REPS} timed passes after a warm-up;")
    lines.append("- **onnxruntime**: the same `.onnx` file in onnxruntime "
                 f"{res['ort_version'] or '(not available)'} (Python, `tools/fixtures/bench_ort.py`),")
    lines.append(f"  batches scored one after the other with `intra_op_num_threads` = threads, {ORT_REPS} timed")
    lines.append("  passes after a warm-up.")
    lines.append("")
    if args.quick:
        lines.append("**Quick run (`--quick`): reduced sizes, for trying the harness out; not representative.**")
        lines.append("")
    lines.append("| Family (fixture) | SQL, scored rows/s | SQL, to client rows/s | in-process rows/s "
                 "| onnxruntime rows/s | SQL scored / onnxruntime | in-process / onnxruntime |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in res["families"]:
        lines.append(
            f"| {r['family']} (`{r['fixture']}`) | {fmt_num(r['server_rows_per_s'])} | "
            f"{fmt_num(r['client_rows_per_s'])} | {fmt_num(r['inproc_rows_per_s'])} | "
            f"{fmt_num(r['ort_rows_per_s'])} | {ratio(r['server_rows_per_s'], r['ort_rows_per_s'])} | "
            f"{ratio(r['inproc_rows_per_s'], r['ort_rows_per_s'])} |")
    lines.append("")
    lines.append("Ratios above 1 mean Freshet scored more rows per second than onnxruntime.")
    lines.append("")
    lines.append("### Details")
    lines.append("")
    for r in res["families"]:
        lines.append(f"- `{r['fixture']}`: count(m!predict) runs {', '.join(f'{t:.1f}' for t in r['server_ms'])} ms; "
                     f"the same table's `count(c0)` (scan alone, median of 3) {r['scan_ms']:.1f} ms")
    lines.append(f"- Freshet: {res['version']}, commit {machine['commit']}, release build, "
                 f"`freshet serve --inference-batch-size {args.model_batch}`")
    lines.append(f"- Machine: {machine['cpu']}, {machine['nproc']} cores; "
                 f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
    before, after = res["load"]
    lines.append(f"- 1-minute load average before/after the model runs: {before[0]:.2f} / {after[0]:.2f} "
                 "(anything else running on the machine shows here; all columns share it)")
    lines.append("")
    lines.append("### Command")
    lines.append("")
    lines.append("```")
    lines.append(command)
    lines.append("```")
    lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- dynamic tables

# The locations and user ids the login-risk fixture was trained on
# (tools/fixtures/generate.py), so the streamed logins look like its inputs.
RISK_LOCATIONS = ["US", "DE", "FR", "BR", "IN", "CN", "GB", "JP"]
RISK_USERS = 100_000

LOGINS_RAW_SQL = "CREATE TABLE logins_raw (login_id bigint, user_id bigint, location text, event_time timestamp)"
MODEL_SETUP_SQL = [
    "CREATE DATABASE ml",
    "CREATE SCHEMA ml.registry",
    "CREATE MODEL ml.registry.mymodel FROM 'login_risk.onnx'",
]
PREDICTIONS_QUERY = (
    "WITH my_model AS MODEL ml.registry.mymodel SELECT l.login_id, l.user_id, l.location, l.event_time, "
    "my_model!predict(l.user_id, l.location) AS prediction_result FROM logins_raw l"
)
LOGINS_AGG_QUERY = (
    "SELECT location, count(*) AS logins, count(DISTINCT user_id) AS users, "
    "min(event_time) AS first_seen, max(event_time) AS last_seen FROM logins_raw GROUP BY location"
)
COPY_LOGINS_SQL = "COPY logins_raw (login_id, user_id, location, event_time) FROM STDIN"
# pg_ivm maintains count, sum, avg, min and max, but not an aggregate over
# DISTINCT arguments; when it refuses LOGINS_AGG_QUERY, its view is the same
# query without that column (dynamic_pg_ivm), and Freshet is compared with
# it on a twin dynamic table over exactly this query (logins_agg_ivm_inc).
PG_IVM_AGG_QUERY = LOGINS_AGG_QUERY.replace("count(DISTINCT user_id) AS users, ", "")
assert PG_IVM_AGG_QUERY != LOGINS_AGG_QUERY

# (name, REFRESH_MODE, query) of the dynamic tables of the scaling and
# aggregate measurements; TARGET_LAG = DOWNSTREAM and nothing reads them, so
# the scheduler never refreshes them: only the timed ALTER … REFRESH does.
# logins_agg_ivm_inc is the aggregate over pg_ivm's query (no DISTINCT
# aggregate, so Freshet keeps count, min and max in per-group state): the
# Freshet side of the comparison with pg_ivm, the same work as its IMMV.
SCALING_TABLES = [
    ("predictions_inc", "INCREMENTAL", PREDICTIONS_QUERY),
    ("predictions_full", "FULL", PREDICTIONS_QUERY),
    ("logins_agg_inc", "INCREMENTAL", LOGINS_AGG_QUERY),
    ("logins_agg_full", "FULL", LOGINS_AGG_QUERY),
    ("logins_agg_ivm_inc", "INCREMENTAL", PG_IVM_AGG_QUERY),
]
# The aggregate tables with a series of batches whose new rows all fall in
# one location (one group), after the all-location series: each INCREMENTAL
# aggregate table, so that pg_ivm's one-location series has its twin too.
AGG_ONE_GROUP_TABLES = [name for name, mode, query in SCALING_TABLES
                        if mode == "INCREMENTAL" and query in (LOGINS_AGG_QUERY, PG_IVM_AGG_QUERY)]

# Login ids of the rows inserted before each timed refresh (far above the
# generated sources' ids).
NEW_ROWS_FIRST_ID = 1_000_000_000_000

# The issue's targets.
FRESHNESS_P99_TARGET_S = 1.0
SCALING_TARGET = 1.20
INCREMENTAL_FULL_TARGET = 0.01

# How long to wait, after the stream ends, for the last batches to become
# visible before giving up on them.
DRAIN_TIMEOUT_S = 120.0

DYNAMIC_BEGIN_MARK = "<!-- BEGIN bench/run.sh dynamic: generated, do not edit -->"
DYNAMIC_END_MARK = "<!-- END bench/run.sh dynamic -->"


def dynamic_table_sql(name, lag, mode, query):
    """CREATE OR REPLACE DYNAMIC TABLE with the given TARGET_LAG and REFRESH_MODE."""
    return (f"CREATE OR REPLACE DYNAMIC TABLE {name} TARGET_LAG = {lag} REFRESH_MODE = {mode} "
            f"INITIALIZE = on_create AS {query}")


MISSION_SQL = dynamic_table_sql("logins_with_predictions", "'1 second'", "INCREMENTAL", PREDICTIONS_QUERY)


def db_connect(uri):
    """An autocommit psycopg connection (only the dynamic section needs psycopg)."""
    import psycopg

    return psycopg.connect(uri, autocommit=True)


def login_rows(first, count, rng, locations, event_time):
    """COPY text rows for login ids first .. first + count - 1: user ids uniform
    in 1..RISK_USERS, locations uniform over `locations`, one event time."""
    rand = rng.random
    nloc = len(locations)
    return "".join(
        f"{i}\t{int(rand() * RISK_USERS) + 1}\t{locations[int(rand() * nloc)]}\t{event_time}\n"
        for i in range(first, first + count)
    )


def copy_logins(conn, data):
    """One COPY … FROM STDIN of `data` into logins_raw (one transaction)."""
    with conn.cursor() as cur:
        with cur.copy(COPY_LOGINS_SQL) as copy:
            copy.write(data)


def utc_now_text():
    """The current UTC time as timestamp text (the streamed logins' event_time)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def cpu_seconds(pid):
    """User plus system CPU time of a process so far, in seconds (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of stat(5)): utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def setup_model_pipeline(conn):
    """The mission's registry, model (the login-risk fixture) and source table."""
    for sql in MODEL_SETUP_SQL + [LOGINS_RAW_SQL]:
        conn.execute(sql)


def count_rows(conn, table):
    """SELECT count(*) of a table."""
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def refresh_history(conn, name):
    """The recorded refreshes of one dynamic table (succeeded, failed, skipped),
    oldest first, as dicts."""
    rows = conn.execute(
        "SELECT state, refresh_action, refresh_trigger, refresh_start_time, refresh_end_time, statistics "
        f"FROM information_schema.dynamic_table_refresh_history WHERE name = '{name}' ORDER BY refresh_start_time"
    ).fetchall()
    keys = ("state", "action", "trigger", "start", "end", "statistics")
    return [dict(zip(keys, r)) for r in rows if r[0] not in ("SCHEDULED", "EXECUTING")]


class Feed:
    """The paced stream of the freshness measurement: `batches` batches of
    `batch_rows` logins; batch k holds login ids k*batch_rows .. and is due
    at t0 + k*period. sent[k] and acked[k] are monotonic times."""

    def __init__(self, batches, batch_rows, writers, period):
        self.batches = batches
        self.batch_rows = batch_rows
        self.writers = writers
        self.period = period
        self.t0 = None
        self.sent = [None] * batches
        self.acked = [None] * batches


class FeedWriter(threading.Thread):
    """One writer connection of the feed: sends the batches k = index (mod
    writers) with COPY, each when it is due (at once when behind schedule),
    and records when it was sent and when the server acknowledged it."""

    def __init__(self, uri, index, feed):
        super().__init__(daemon=True)
        self.conn = db_connect(uri)
        self.index = index
        self.feed = feed
        self.error = None

    def run(self):
        feed = self.feed
        rng = random.Random(1000 + self.index)
        try:
            for k in range(self.index, feed.batches, feed.writers):
                wait = feed.t0 + k * feed.period - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # the pacing of the feed
                data = login_rows(k * feed.batch_rows, feed.batch_rows, rng, RISK_LOCATIONS, utc_now_text())
                feed.sent[k] = time.monotonic()
                copy_logins(self.conn, data)
                feed.acked[k] = time.monotonic()
        except Exception as e:  # reported by the main thread
            self.error = e
        finally:
            self.conn.close()


def visibility_sql(batch_rows, low_id):
    """The poller's query: the feed's batches (login_id / batch_rows) that the
    dynamic table holds from login id low_id on, with their row counts."""
    return (f"SELECT login_id / {batch_rows} AS batch, count(*) FROM logins_with_predictions "
            f"WHERE login_id >= {low_id} GROUP BY 1")


def poll_cpu_seconds(conn, pid, sql, polls=40):
    """Server CPU seconds one poll costs, measured over `polls` polls in a row."""
    before = cpu_seconds(pid)
    for _ in range(polls):
        conn.execute(sql).fetchall()
    return (cpu_seconds(pid) - before) / polls


class VisibilityPoller(threading.Thread):
    """Asks the dynamic table every `interval` s which batches it holds, and
    records when each batch was first seen complete (the monotonic time the
    answer arrived). Only batches not yet seen are counted, so the answer
    stays small; a batch seen with some but not all of its rows would be a
    torn refresh and is counted in `partial`."""

    def __init__(self, uri, feed, interval):
        super().__init__(daemon=True)
        self.conn = db_connect(uri)
        self.feed = feed
        self.interval = interval
        self.visible = [None] * feed.batches
        self.partial = 0
        self.poll_s = []
        self.stop_event = threading.Event()
        self.error = None

    def run(self):
        feed = self.feed
        b = feed.batch_rows
        low = 0  # every batch below `low` has been seen
        try:
            while low < feed.batches and not self.stop_event.is_set():
                started = time.monotonic()
                rows = self.conn.execute(visibility_sql(b, low * b)).fetchall()
                seen = time.monotonic()
                self.poll_s.append(seen - started)
                for batch, n in rows:
                    if n == b:
                        if self.visible[batch] is None:
                            self.visible[batch] = seen
                    else:
                        self.partial += 1
                while low < feed.batches and self.visible[low] is not None:
                    low += 1
                self.stop_event.wait(max(0.0, started + self.interval - time.monotonic()))  # the poll interval
        except Exception as e:  # reported by the main thread
            self.error = e
        finally:
            self.conn.close()


def dynamic_freshness(args, workdir):
    """Part 1: the mission's pipeline fed at --fresh-rate rows/s for
    --fresh-seconds; the delay from each batch's acknowledgement to the first
    poll that sees its predictions, the server's CPU and memory."""
    batch_rows = max(1, round(args.fresh_rate * args.fresh_interval_ms / 1000 / args.fresh_writers))
    period = batch_rows / args.fresh_rate
    batches = max(1, round(args.fresh_seconds / period))
    feed = Feed(batches, batch_rows, args.fresh_writers, period)
    with freshet_instance(args, workdir, ["--model-dir", FIXTURES_DIR], "freshet-freshness.log") as (uri, proc):
        conn = db_connect(uri)
        setup_model_pipeline(conn)
        conn.execute(MISSION_SQL)
        writers = [FeedWriter(uri, i, feed) for i in range(args.fresh_writers)]
        poller = VisibilityPoller(uri, feed, args.poll_ms / 1000)
        sampler = MemorySampler(proc.pid)
        sampler.start()
        log(f"dynamic: streaming {batches * batch_rows:,} logins: {args.fresh_writers} writers, "
            f"{batch_rows} rows per COPY, one batch every {period * 1000:.2f} ms, for {args.fresh_seconds} s")
        load_before = os.getloadavg()
        wall_start = datetime.datetime.now(datetime.timezone.utc)
        start = time.monotonic()
        cpu_start, client_start = cpu_seconds(proc.pid), time.process_time()
        feed.t0 = start
        poller.start()
        for w in writers:
            w.start()
        for w in writers:
            w.join()
        feed_end = time.monotonic()
        cpu_end, client_end = cpu_seconds(proc.pid), time.process_time()
        load_after = os.getloadavg()
        failed = [t for t in writers if t.error is not None]
        if not failed:
            log("dynamic: stream finished; waiting for the last batches to become visible")
            poller.join(timeout=DRAIN_TIMEOUT_S)
        poller.stop_event.set()
        poller.join()
        poll_end = time.monotonic()
        sampler.stop()
        for thread in failed + [poller]:
            if thread.error is not None:
                raise RuntimeError(f"dynamic: {type(thread).__name__} failed: {thread.error}") from thread.error

        # The dynamic table ends up holding exactly the source's rows.
        sent_rows = sum(batch_rows for a in feed.acked if a is not None)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while True:
            source, derived = count_rows(conn, "logins_raw"), count_rows(conn, "logins_with_predictions")
            if source == derived or time.monotonic() > deadline:
                break
            time.sleep(args.poll_ms / 1000)  # the poll interval
        history = [h for h in refresh_history(conn, "logins_with_predictions")
                   if h["start"] is not None and h["start"] >= wall_start]
        # What answering the poller cost the server: one poll at the final
        # size, measured with the scheduler quiet.
        conn.execute("ALTER DYNAMIC TABLE logins_with_predictions SUSPEND")
        poll_cpu = poll_cpu_seconds(conn, proc.pid, visibility_sql(batch_rows, max(0, batches - 100) * batch_rows))
        hwm = status_kib(proc.pid, "VmHWM")
        conn.close()

    delays = [max(0.0, v - a) for a, v in zip(feed.acked, poller.visible) if a is not None and v is not None]
    if not delays:
        raise RuntimeError("dynamic: no batch became visible")
    acked = [a for a in feed.acked if a is not None]
    lateness = [s - (feed.t0 + k * period) for k, s in enumerate(feed.sent) if s is not None]
    done = [h for h in history if h["state"] == "SUCCEEDED" and h["end"] is not None]
    durations = [(h["end"] - h["start"]).total_seconds() for h in done]
    actions = {}
    for h in history:
        key = h["action"] or h["state"]
        actions[key] = actions.get(key, 0) + 1
    elapsed = feed_end - start
    result = {
        "batch_rows": batch_rows,
        "batches": batches,
        "period_ms": period * 1000,
        "sent_rows": sent_rows,
        "rows_per_s": sent_rows / (max(acked) - feed.t0),
        "elapsed_s": elapsed,
        "delays_s": delays,
        "p50_s": percentile(delays, 50),
        "p99_s": percentile(delays, 99),
        "max_s": max(delays),
        "mean_s": statistics.mean(delays),
        "unseen": sum(1 for a, v in zip(feed.acked, poller.visible) if a is not None and v is None),
        "partial": poller.partial,
        "ack_ms": statistics.median(a - s for a, s in zip(feed.acked, feed.sent) if a is not None) * 1000,
        "late_p99_ms": percentile(lateness, 99) * 1000,
        "late_max_ms": max(lateness) * 1000,
        "polls": len(poller.poll_s),
        "poll_p50_ms": statistics.median(poller.poll_s) * 1000,
        "poll_max_ms": max(poller.poll_s) * 1000,
        "poll_busy_pct": sum(poller.poll_s) / (poll_end - start) * 100,
        "poll_cpu_ms": poll_cpu * 1000,
        # the table grew linearly from empty, and a poll's cost with it
        "poller_core_pct": poll_cpu * len(poller.poll_s) / 2 / (poll_end - start) * 100,
        "cpu_core_pct": (cpu_end - cpu_start) / elapsed * 100,
        "client_core_pct": (client_end - client_start) / elapsed * 100,
        "peak_hwm_kib": hwm or sampler.peak_hwm_kib,
        "peak_pss_kib": sampler.peak_pss_kib,
        "source_rows": source,
        "derived_rows": derived,
        "refreshes": len(done),
        "actions": actions,
        "refresh_mean_ms": statistics.mean(durations) * 1000 if durations else None,
        "refresh_p99_ms": percentile(durations, 99) * 1000 if durations else None,
        "refresh_max_ms": max(durations) * 1000 if durations else None,
        "rows_per_refresh": (statistics.mean(h["statistics"]["numModelRowsScored"] for h in done
                                             if h["action"] == "INCREMENTAL")
                             if any(h["action"] == "INCREMENTAL" for h in done) else None),
        "load": (load_before, load_after),
    }
    log(f"dynamic: {result['rows_per_s']:,.0f} rows/s; delay p50 {result['p50_s'] * 1000:.0f} ms, "
        f"p99 {result['p99_s'] * 1000:.0f} ms, max {result['max_s'] * 1000:.0f} ms; "
        f"server CPU {result['cpu_core_pct']:.0f}% of a core; rows {derived:,} / {source:,}")
    return result


def timed_refresh(conn, name, expect_action):
    """ALTER DYNAMIC TABLE name REFRESH (synchronous): its wall clock as the
    client saw it, and the refresh's own record in the history."""
    started = time.monotonic()
    conn.execute(f"ALTER DYNAMIC TABLE {name} REFRESH")
    wall = time.monotonic() - started
    last = [h for h in refresh_history(conn, name) if h["state"] == "SUCCEEDED" and h["trigger"] == "MANUAL"][-1]
    if expect_action and last["action"] != expect_action:
        raise RuntimeError(f"dynamic: refreshing {name} was {last['action']}, expected {expect_action}")
    return {
        "wall_ms": wall * 1000,
        "history_ms": (last["end"] - last["start"]).total_seconds() * 1000,
        "action": last["action"],
        "stats": last["statistics"],
    }


def summarize_refreshes(runs):
    """Medians of timed_refresh results, and the most rows one scored and read."""
    return {
        "wall_ms": statistics.median(r["wall_ms"] for r in runs),
        "history_ms": statistics.median(r["history_ms"] for r in runs),
        "all_wall_ms": [r["wall_ms"] for r in runs],
        "scored": max(r["stats"].get("numModelRowsScored", 0) for r in runs),
        "read": max(r["stats"].get("numSourceRowsRead", 0) for r in runs),
    }


def load_csv(tools, uri, path):
    """psql \\copy of a generated CSV into logins_raw; returns the seconds it took."""
    started = time.monotonic()
    psql(tools, uri, "-q", "-c", f"\\copy logins_raw FROM '{path}' WITH (FORMAT csv)")
    return time.monotonic() - started


def dynamic_data(args):
    """The scaling sources as two cached CSV files: ids below --scale-rows'
    smaller size, then the ids up to the larger one."""
    small, large = args.scale_rows
    paths = []
    for first, count in ((0, small), (small, large - small)):
        path = os.path.join(args.workdir, f"logins-risk-{first}-{first + count}.csv")
        if not os.path.exists(path):
            generate_data(path, count, seed=20240202 + first, start=first, locations=RISK_LOCATIONS,
                          users=RISK_USERS)
        os.chmod(path, 0o644)
        paths.append(path)
    return paths


def dynamic_scaling(args, tools, workdir, csvs):
    """Parts 2 and 3 in Freshet: the model pipeline and the aggregate as
    INCREMENTAL and FULL dynamic tables, and pg_ivm's query as an INCREMENTAL
    one (SCALING_TABLES), over a source of the smaller, then the larger
    --scale-rows size; at each size, table after table, --refresh-reps times:
    insert --refresh-rows new logins, then refresh the table, timed; then the
    same for the INCREMENTAL aggregates with new rows in one location."""
    rng = random.Random(7)
    next_id = NEW_ROWS_FIRST_ID
    result = {"sizes": [], "created_s": {}, "loads": []}
    with freshet_instance(args, workdir, ["--model-dir", FIXTURES_DIR], "freshet-scaling.log") as (uri, proc):
        sampler = MemorySampler(proc.pid)
        sampler.start()
        conn = db_connect(uri)
        setup_model_pipeline(conn)
        for index, path in enumerate(csvs):
            seconds = load_csv(tools, uri, path)
            source = count_rows(conn, "logins_raw")
            result["loads"].append((source, seconds))
            log(f"dynamic: source now {source:,} rows (COPY {seconds:.1f} s)")
            if index == 0:
                for name, mode, query in SCALING_TABLES:
                    started = time.monotonic()
                    conn.execute(dynamic_table_sql(name, "DOWNSTREAM", mode, query))
                    result["created_s"][name] = time.monotonic() - started
                modes = dict(conn.execute("SELECT name, refresh_mode FROM freshet_dynamic_tables()").fetchall())
                for name, mode, _ in SCALING_TABLES:
                    if modes.get(name) != mode:
                        raise RuntimeError(f"dynamic: {name} has REFRESH_MODE {modes.get(name)}, expected {mode}")
                result["reasons"] = dict(conn.execute(
                    "SELECT name, refresh_mode_reason FROM freshet_dynamic_tables()").fetchall())
            else:
                # catch up with the bulk load (the incremental one scores every new row)
                result["catch_up"] = {name: timed_refresh(conn, name, None) for name, _, _ in SCALING_TABLES}
            # One table at a time, so that no timed refresh shares the two
            # cores with another table's work: a FULL refresh of 10M rows
            # leaves seconds of background checkpointing behind it. Before
            # each table's runs, CHECKPOINT finishes that work, and an
            # untimed refresh takes in the rows the previous table's runs added.
            runs = {name: [] for name, _, _ in SCALING_TABLES}
            for name, mode, _ in SCALING_TABLES:
                conn.execute("CHECKPOINT")
                timed_refresh(conn, name, None)
                for _ in range(args.refresh_reps):
                    copy_logins(conn, login_rows(next_id, args.refresh_rows, rng, RISK_LOCATIONS, utc_now_text()))
                    next_id += args.refresh_rows
                    runs[name].append(timed_refresh(conn, name, mode))
            size = {"source_rows": count_rows(conn, "logins_raw"),
                    "tables": {name: summarize_refreshes(r) for name, r in runs.items()}}
            inc = size["tables"]["predictions_inc"]
            if inc["scored"] != args.refresh_rows:
                raise RuntimeError(f"dynamic: an incremental refresh scored {inc['scored']} rows, "
                                   f"expected {args.refresh_rows}")
            result["sizes"].append(size)
            log("dynamic: source ~{:,} rows: ".format(size["source_rows"]) + ", ".join(
                f"{name} {t['wall_ms']:.0f} ms" for name, t in size["tables"].items()))

        # the aggregates when the new rows touch one group only: each
        # INCREMENTAL aggregate table in turn, like the series above (a
        # CHECKPOINT, then an untimed refresh takes in the rows added since
        # the table's last refresh)
        one_group = {}
        for name in AGG_ONE_GROUP_TABLES:
            conn.execute("CHECKPOINT")
            timed_refresh(conn, name, None)
            one = []
            for _ in range(args.refresh_reps):
                copy_logins(conn, login_rows(next_id, args.refresh_rows, rng, RISK_LOCATIONS[:1], utc_now_text()))
                next_id += args.refresh_rows
                one.append(timed_refresh(conn, name, "INCREMENTAL"))
            one_group[name] = summarize_refreshes(one)
        result["one_group"] = one_group
        result["agg_one_group"] = one_group["logins_agg_inc"]
        log("dynamic: new rows in one location: " + ", ".join(
            f"{name} {t['wall_ms']:.0f} ms" for name, t in one_group.items()))

        # both modes agree with each other and with the source
        for name, _, _ in SCALING_TABLES:
            timed_refresh(conn, name, None)
        source = count_rows(conn, "logins_raw")
        result["final_rows"] = {name: count_rows(conn, name) for name in ("predictions_inc", "predictions_full")}
        result["final_source_rows"] = source
        agg = [sorted(conn.execute(f"SELECT * FROM {name}").fetchall())
               for name in ("logins_agg_inc", "logins_agg_full")]
        result["agg_agree"] = agg[0] == agg[1] and sum(r[1] for r in agg[0]) == source
        # the twin of pg_ivm's view equals its query run directly, and the
        # same columns of logins_agg_inc
        cur = conn.execute(PG_IVM_AGG_QUERY)
        plain = sorted(cur.fetchall())
        columns = ", ".join(d.name for d in cur.description)
        twin = sorted(conn.execute(f"SELECT {columns} FROM logins_agg_ivm_inc").fetchall())
        inc = sorted(conn.execute(f"SELECT {columns} FROM logins_agg_inc").fetchall())
        result["agg_ivm_agree"] = twin == plain == inc and sum(r[1] for r in twin) == source
        log(f"dynamic: aggregates agree: INCREMENTAL = FULL = source count {result['agg_agree']}; "
            f"logins_agg_ivm_inc = its query = logins_agg_inc's columns {result['agg_ivm_agree']}")
        conn.close()
        sampler.stop()
        result["peak_hwm_kib"] = status_kib(proc.pid, "VmHWM") or sampler.peak_hwm_kib
    return result


def dynamic_postgres_peer(args, tools, workdir, csvs):
    """Part 3 in PostgreSQL: the aggregate as a materialized view over the
    same larger source; --refresh-reps times: insert --refresh-rows new
    logins, then REFRESH MATERIALIZED VIEW, timed."""
    rng = random.Random(7)
    next_id = NEW_ROWS_FIRST_ID
    with postgres_instance(workdir) as (uri, _pid, version):
        psql(tools, uri, "-q", "-c", LOGINS_RAW_SQL)
        for path in csvs:
            load_csv(tools, uri, path)
        psql(tools, uri, "-q", "-c", "VACUUM ANALYZE logins_raw")
        conn = db_connect(uri)
        started = time.monotonic()
        conn.execute(f"CREATE MATERIALIZED VIEW logins_agg AS {LOGINS_AGG_QUERY}")
        created = time.monotonic() - started
        runs = []
        copies = []
        for _ in range(args.refresh_reps):
            data = login_rows(next_id, args.refresh_rows, rng, RISK_LOCATIONS, utc_now_text())
            next_id += args.refresh_rows
            # the COPY alone, no view to maintain: what a pg_ivm batch costs
            # without its maintenance, for the report
            started = time.monotonic()
            copy_logins(conn, data)
            copies.append((time.monotonic() - started) * 1000)
            started = time.monotonic()
            conn.execute("REFRESH MATERIALIZED VIEW logins_agg")
            runs.append((time.monotonic() - started) * 1000)
        source = count_rows(conn, "logins_raw")
        conn.close()
        log(f"dynamic: PostgreSQL REFRESH MATERIALIZED VIEW {', '.join(f'{t:.0f}' for t in runs)} ms")
        return {"version": version, "settings": postgres_settings(tools, uri), "created_s": created,
                "refresh_ms": statistics.median(runs), "all_ms": runs, "source_rows": source,
                "copy_ms": statistics.median(copies), "all_copy_ms": copies}


# pg_ivm (github.com/sraoss/pg_ivm), PostgreSQL's incremental view maintenance
# extension, as the third peer of the aggregate: built from source with PGXS
# and installed into the PostgreSQL 15 the benchmark runs (prepare_pg_ivm).
PG_IVM_GIT_DEFAULT = "/work/.mirror/sraoss+pg_ivm/repo"
# Its README asks for the library to be preloaded for correct maintenance.
PG_IVM_SETTINGS = ["shared_preload_libraries=pg_ivm"]


class PgIvmMismatch(RuntimeError):
    """pg_ivm's view disagrees with its query: the benchmark stops."""


def control_version(path):
    """default_version of an extension control file, or None."""
    try:
        with open(path) as f:
            m = re.search(r"^\s*default_version\s*=\s*'([^']*)'", f.read(), re.M)
    except OSError:
        return None
    return m.group(1) if m else None


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def pg_ivm_source(args):
    """(source directory, description, problem): --pg-ivm-src as given, or
    HEAD of the bare clone --pg-ivm-git extracted into the work directory
    (once per commit)."""
    if args.pg_ivm_src:
        src = os.path.abspath(args.pg_ivm_src)
        if not os.path.exists(os.path.join(src, "pg_ivm.control")):
            return None, None, f"--pg-ivm-src {src} holds no pg_ivm.control"
        res = subprocess.run(["git", "-c", "safe.directory=*", "-C", src, "describe", "--tags", "--always",
                              "--dirty"], capture_output=True, text=True, timeout=60)
        desc = res.stdout.strip() if res.returncode == 0 and res.stdout.strip() else "no git metadata"
        return src, f"the source tree {src} ({desc})", None
    gitdir = args.pg_ivm_git
    if not os.path.isdir(gitdir):
        return None, None, (f"no pg_ivm source: no --pg-ivm-src (BENCH_PG_IVM_SRC) and no git clone at "
                            f"{gitdir} (--pg-ivm-git, BENCH_PG_IVM_GIT)")
    git = ["git", "-c", "safe.directory=*", "--git-dir", gitdir]
    commit = run(git + ["rev-parse", "HEAD"], 60).stdout.strip()
    describe = subprocess.run(git + ["describe", "--tags", "--always", "HEAD"], capture_output=True,
                              text=True, timeout=60).stdout.strip() or commit[:12]
    date = run(git + ["log", "-1", "--format=%cs", "HEAD"], 60).stdout.strip()
    src = os.path.join(args.workdir, f"pg_ivm-{commit[:12]}")
    if not os.path.exists(os.path.join(src, "pg_ivm.control")):
        log(f"pg_ivm: extracting {describe} from {gitdir} into {src}")
        tmp = tempfile.mkdtemp(prefix="pg_ivm-src-", dir=args.workdir)
        tar = subprocess.run(git + ["archive", "--format=tar", "HEAD"], capture_output=True, timeout=300,
                             check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=tar, capture_output=True, timeout=300, check=True)
        shutil.rmtree(src, ignore_errors=True)
        os.rename(tmp, src)
        os.chmod(src, 0o755)
    return src, f"{describe} (commit {commit}, {date})", None


def prepare_pg_ivm(args):
    """Makes pg_ivm available to the PostgreSQL 15 of the benchmark: unless
    pg_ivm of the source's version is installed there already, builds the
    source (pg_ivm_source) with PGXS and installs it. Returns {"ok": True,
    "built": bool, "source": description} or {"ok": False, "reason": ...};
    never raises, so that a pg_ivm that cannot be built leaves a note in the
    report rather than stopping the benchmark."""
    try:
        return _prepare_pg_ivm(args)
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        first_line = (str(e).splitlines() or [""])[0]
        log(f"pg_ivm: preparing it failed: {e}")
        return {"ok": False, "reason": f"{type(e).__name__}: {first_line}"}


def _prepare_pg_ivm(args):
    if args.pg_ivm_src == "none":
        return {"ok": False, "reason": "skipped (--pg-ivm-src none)"}
    pg_config = os.path.join(find_postgres_bindir(), "pg_config")
    if not os.access(pg_config, os.X_OK):
        return {"ok": False, "reason": f"{pg_config} not found (apt-get install postgresql-server-dev-15)"}

    def conf(option):
        return run([pg_config, option], 60).stdout.strip()

    so = os.path.join(conf("--pkglibdir"), "pg_ivm.so")
    installed = control_version(os.path.join(conf("--sharedir"), "extension", "pg_ivm.control"))
    if not os.path.exists(so):
        installed = None
    record = os.path.join(args.workdir, "pg_ivm-installed.txt")
    src, source, problem = pg_ivm_source(args)
    if args.pg_ivm_src and src is None:
        return {"ok": False, "reason": problem}
    # What the bench recorded when it last installed pg_ivm, if that is the
    # library installed now.
    recorded = None
    if installed:
        try:
            with open(record) as f:
                digest, recorded = f.read().rstrip("\n").split("\t", 1)
            if digest != sha256_file(so):
                recorded = None
        except (OSError, ValueError):
            recorded = None
    if installed and recorded and (src is None or recorded == source):
        log(f"pg_ivm: {installed} is installed ({so}), built from {recorded}; not building")
        return {"ok": True, "built": False, "source": f"installed by an earlier run, built from {recorded}"}
    if installed and src is None:
        log(f"pg_ivm: no source ({problem}); using the installed {installed} ({so})")
        return {"ok": True, "built": False,
                "source": f"pg_ivm {installed} installed before the run (its source not recorded)"}
    if src is None:
        return {"ok": False, "reason": problem}
    if not os.path.exists(conf("--pgxs")):
        return {"ok": False, "reason": "PGXS not found: apt-get install postgresql-server-dev-15"}
    build_log = os.path.join(args.workdir, "pg_ivm-build.log")
    make = ["make", "-C", src, "USE_PGXS=1", f"PG_CONFIG={pg_config}"]
    log(f"pg_ivm: building {source} (log: {build_log})")
    with open(build_log, "w") as logf:
        for step, cmd in (("make", make + [f"-j{os.cpu_count() or 1}"]), ("make install", make + ["install"])):
            logf.write(f"$ {shlex.join(cmd)}\n")
            logf.flush()
            res = subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 timeout=1800)
            if res.returncode != 0:
                return {"ok": False, "reason": f"`{step}` (PGXS) failed with exit status {res.returncode}; "
                                               f"see {build_log}"}
    if not os.path.exists(so):
        return {"ok": False, "reason": f"make install left no {so}; see {build_log}"}
    with open(record, "w") as f:
        f.write(f"{sha256_file(so)}\t{source}\n")
    return {"ok": True, "built": True, "source": source}


def check_immv(conn, query, when):
    """Raises PgIvmMismatch unless the IMMV logins_agg holds what its query
    returns now (the query's columns; pg_ivm's own __ivm_ columns aside)."""
    cur = conn.execute(query)
    plain = sorted(cur.fetchall())
    columns = ", ".join(d.name for d in cur.description)
    immv = sorted(conn.execute(f"SELECT {columns} FROM logins_agg").fetchall())
    if plain != immv:
        only_plain = [r for r in plain if r not in immv][:3]
        only_immv = [r for r in immv if r not in plain][:3]
        raise PgIvmMismatch(f"dynamic: pg_ivm's IMMV logins_agg differs from its query {when}: "
                            f"{len(immv)} rows vs {len(plain)}; only in the query: {only_plain}; "
                            f"only in the IMMV: {only_immv}")


def dynamic_pg_ivm(args, tools, workdir, csvs, build):
    """Part 3 with pg_ivm, in a PostgreSQL instance of its own (the same
    binaries and settings, plus PG_IVM_SETTINGS): the aggregate as an IMMV,
    which pg_ivm maintains inside each transaction that writes the source.
    Over a source of the smaller, then the larger --scale-rows size (the same
    CSV files as Freshet's runs): a CHECKPOINT, one untimed batch, then
    --refresh-reps times a COPY of --refresh-rows new logins, timed (the
    insert and the maintenance); then the same with new rows in one location.
    The IMMV is checked against its query after each series."""
    import psycopg

    rng = random.Random(7)
    next_id = NEW_ROWS_FIRST_ID
    result = {"available": True, "source": build["source"], "built": build["built"], "sizes": [], "loads": []}
    with postgres_instance(workdir, PG_IVM_SETTINGS) as (uri, _pid, version):
        psql(tools, uri, "-q", "-c", LOGINS_RAW_SQL)
        conn = db_connect(uri)
        conn.execute("CREATE EXTENSION pg_ivm")
        result["extversion"] = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_ivm'").fetchone()[0]
        # pg_ivm 1.10 and later keep their functions in the schema pgivm
        schema = "pgivm." if conn.execute("SELECT to_regnamespace('pgivm')").fetchone()[0] else ""
        result["create_fn"] = f"{schema}create_immv"

        def batch(locations):
            nonlocal next_id
            data = login_rows(next_id, args.refresh_rows, rng, locations, utc_now_text())
            next_id += args.refresh_rows
            started = time.monotonic()
            copy_logins(conn, data)
            return (time.monotonic() - started) * 1000

        for index, path in enumerate(csvs):
            seconds = load_csv(tools, uri, path)
            psql(tools, uri, "-q", "-c", "VACUUM ANALYZE logins_raw")
            source = count_rows(conn, "logins_raw")
            result["loads"].append((source, seconds, index > 0))
            log(f"dynamic: pg_ivm source now {source:,} rows (COPY {seconds:.1f} s"
                f"{', IMMV maintained' if index else ''})")
            if index == 0:
                # the section's query if pg_ivm takes it, else the nearest it does
                started = time.monotonic()
                try:
                    conn.execute(f"SELECT {result['create_fn']}('logins_agg', %s)", (LOGINS_AGG_QUERY,))
                    result["query"], result["refused"], result["refused_message"] = LOGINS_AGG_QUERY, None, None
                except psycopg.errors.FeatureNotSupported as e:
                    log(f"dynamic: pg_ivm refuses the section's query ({e.diag.message_primary}); "
                        f"its view is {PG_IVM_AGG_QUERY}")
                    result["refused"] = e.sqlstate
                    result["refused_message"] = e.diag.message_primary
                    started = time.monotonic()
                    conn.execute(f"SELECT {result['create_fn']}('logins_agg', %s)", (PG_IVM_AGG_QUERY,))
                    result["query"] = PG_IVM_AGG_QUERY
                result["created_s"] = time.monotonic() - started
                result["indexes"] = [r[0] for r in conn.execute(
                    "SELECT indexdef FROM pg_indexes WHERE tablename = 'logins_agg' ORDER BY indexname")]
            psql(tools, uri, "-q", "-c", "VACUUM ANALYZE logins_agg")
            check_immv(conn, result["query"], f"after loading {source:,} rows")
            conn.execute("CHECKPOINT")
            batch(RISK_LOCATIONS)
            runs = [batch(RISK_LOCATIONS) for _ in range(args.refresh_reps)]
            check_immv(conn, result["query"], f"after the batches at {source:,} rows")
            result["sizes"].append({"source_rows": count_rows(conn, "logins_raw"),
                                    "ms": statistics.median(runs), "all_ms": runs})
            log(f"dynamic: pg_ivm COPY of {args.refresh_rows:,} rows with maintenance at {source:,} rows: "
                f"{', '.join(f'{t:.0f}' for t in runs)} ms")

        one = [batch(RISK_LOCATIONS[:1]) for _ in range(args.refresh_reps)]
        check_immv(conn, result["query"], "after the one-location batches")
        result["one_group"] = {"ms": statistics.median(one), "all_ms": one}
        result["final_source_rows"] = count_rows(conn, "logins_raw")
        result["version"] = version
        result["settings"] = postgres_settings(tools, uri)
        conn.close()
    log(f"dynamic: pg_ivm one location: {', '.join(f'{t:.0f}' for t in one)} ms; IMMV = query: yes")
    return result


def pg_ivm_peer(args, tools, workdir, csvs, build):
    """dynamic_pg_ivm, or {"available": False, "reason": ...} when pg_ivm
    could not be built or its runs failed; a wrong IMMV (PgIvmMismatch)
    stops the benchmark."""
    if not build["ok"]:
        log(f"dynamic: pg_ivm not measured: {build['reason']}")
        return {"available": False, "reason": build["reason"]}
    try:
        return dynamic_pg_ivm(args, tools, workdir, csvs, build)
    except PgIvmMismatch:
        raise
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        import traceback

        traceback.print_exc()
        reason = f"its runs failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        log(f"dynamic: pg_ivm not measured: {reason}")
        return {"available": False, "reason": reason}


def met(value, limit):
    """Whether a figure meets an upper-bound target, for the report."""
    if value is None:
        return "n/a"
    return "yes" if value <= limit else "**no**"


def render_dynamic(args, machine, fresh, scaling, peer, ivm, command):
    """The dynamic section's Markdown."""
    mib = lambda kib: kib / 1024 if kib else None  # noqa: E731
    ms = lambda s: s * 1000  # noqa: E731
    small, large = scaling["sizes"]
    inc_small = small["tables"]["predictions_inc"]
    inc_large = large["tables"]["predictions_inc"]
    full_large = large["tables"]["predictions_full"]
    agg_inc = large["tables"]["logins_agg_inc"]
    agg_full = large["tables"]["logins_agg_full"]
    scale_ratio = inc_large["wall_ms"] / inc_small["wall_ms"]
    inc_full = inc_large["wall_ms"] / full_large["wall_ms"]
    scale_ratio_h = inc_large["history_ms"] / inc_small["history_ms"]
    inc_full_h = inc_large["history_ms"] / full_large["history_ms"]
    reps = args.refresh_reps
    n = args.refresh_rows
    # pg_ivm: the COPY of a batch, its view maintained in the COPY's transaction
    ivm_ok = ivm.get("available", False)
    ivm_small = ivm["sizes"][0]["ms"] if ivm_ok else None
    ivm_large = ivm["sizes"][-1]["ms"] if ivm_ok else None
    ivm_one = ivm["one_group"]["ms"] if ivm_ok else None
    # Freshet's side of the comparison with pg_ivm: the INCREMENTAL aggregate
    # over the very query of pg_ivm's IMMV (the twin logins_agg_ivm_inc when
    # pg_ivm refuses count(DISTINCT)); none when no Freshet table has that
    # query, and then the pg_ivm figures are not divided by Freshet's.
    queries = {name: query for name, mode, query in SCALING_TABLES
               if mode == "INCREMENTAL" and name in scaling["one_group"]}
    twin_name = next(name for name, query in queries.items() if query == PG_IVM_AGG_QUERY)
    ivm_query = ivm["query"] if ivm_ok else PG_IVM_AGG_QUERY
    pair = next((name for name, query in queries.items() if query == ivm_query), None)
    same_work = ivm_ok and pair is not None
    shown = pair or twin_name
    tw_small = small["tables"][shown]
    tw_large = large["tables"][shown]
    tw_one = scaling["one_group"][shown]
    # pg_ivm's figures to divide Freshet's by: only over the same query
    cmp_small, cmp_large, cmp_one = (ivm_small, ivm_large, ivm_one) if same_work else (None, None, None)
    lines = []
    lines.append("## Dynamic tables: freshness of model predictions, incremental refresh, vs PostgreSQL")
    lines.append("")
    lines.append("Generated by `bench/run.sh`; do not edit by hand. The mission's pipeline: logins stream")
    lines.append("into `logins_raw` over the wire and the dynamic table `logins_with_predictions` scores each")
    lines.append("new login with the login-risk model (`tests/fixtures/models/login_risk.onnx`,")
    lines.append("`my_model!predict(l.user_id, l.location)`), with `TARGET_LAG = '1 second'`,")
    lines.append("`REFRESH_MODE = INCREMENTAL`. Then refresh times of the same query, and of a GROUP BY")
    lines.append("aggregate, against the size of the source, and the aggregate against a PostgreSQL")
    lines.append("materialized view and against pg_ivm, PostgreSQL's incremental view maintenance extension.")
    lines.append("")
    if args.quick:
        lines.append("**Quick run (`--quick`): reduced sizes and duration, for trying the harness out; "
                     "not representative.**")
        lines.append("")
    lines.append("| Measure | Result | Target | Met |")
    lines.append("| --- | ---: | ---: | :---: |")
    lines.append(f"| Insert-to-visible-prediction delay, p50, ms | {fmt_num(ms(fresh['p50_s']))} | | |")
    lines.append(f"| Insert-to-visible-prediction delay, p99, ms | {fmt_num(ms(fresh['p99_s']))} | "
                 f"≤ {fmt_num(ms(FRESHNESS_P99_TARGET_S))} | {met(fresh['p99_s'], FRESHNESS_P99_TARGET_S)} |")
    lines.append(f"| Insert-to-visible-prediction delay, max, ms | {fmt_num(ms(fresh['max_s']))} | | |")
    rate_met = "yes" if fresh["rows_per_s"] >= 0.99 * args.fresh_rate else "**no**"
    lines.append(f"| Logins streamed for {fresh['elapsed_s']:.0f} s, rows/s acknowledged | "
                 f"{fmt_num(fresh['rows_per_s'])} | {fmt_num(args.fresh_rate)} | {rate_met} |")
    lines.append(f"| Server CPU while streaming, % of one core (% of the {machine['nproc']}-core machine) | "
                 f"{fresh['cpu_core_pct']:.0f}% ({fresh['cpu_core_pct'] / machine['nproc']:.0f}%) | | |")
    lines.append(f"| Server peak memory while streaming (VmHWM), MiB | {fmt_num(mib(fresh['peak_hwm_kib']), 1)} | | |")
    equal = fresh["derived_rows"] == fresh["source_rows"] == fresh["sent_rows"]
    lines.append(f"| Rows in the dynamic table / in the source after the stream | "
                 f"{fmt_num(fresh['derived_rows'])} / {fmt_num(fresh['source_rows'])} | equal | "
                 f"{'yes' if equal else '**no**'} |")
    lines.append(f"| INCREMENTAL refresh after {n:,} new rows, source {small['source_rows']:,} rows, ms | "
                 f"{fmt_num(inc_small['wall_ms'], 1)} | | |")
    lines.append(f"| INCREMENTAL refresh after {n:,} new rows, source {large['source_rows']:,} rows, ms | "
                 f"{fmt_num(inc_large['wall_ms'], 1)} | | |")
    lines.append(f"| INCREMENTAL refresh, larger source / smaller source (history: {scale_ratio_h:.2f}×) | "
                 f"{scale_ratio:.2f}× | "
                 f"≤ {SCALING_TARGET:.2f}× | {met(scale_ratio, SCALING_TARGET)} |")
    lines.append(f"| FULL refresh of the same query, source {large['source_rows']:,} rows, ms | "
                 f"{fmt_num(full_large['wall_ms'], 1)} | | |")
    lines.append(f"| INCREMENTAL / FULL refresh, larger source (history: {inc_full_h * 100:.2f}%) | "
                 f"{inc_full * 100:.2f}% | "
                 f"≤ {INCREMENTAL_FULL_TARGET * 100:.0f}% | {met(inc_full, INCREMENTAL_FULL_TARGET)} |")
    lines.append(f"| Aggregate, Freshet INCREMENTAL refresh / PostgreSQL `REFRESH MATERIALIZED VIEW` | "
                 f"{ratio(agg_inc['wall_ms'], peer['refresh_ms'])} | | |")
    lines.append(f"| Aggregate, Freshet FULL refresh / PostgreSQL `REFRESH MATERIALIZED VIEW` | "
                 f"{ratio(agg_full['wall_ms'], peer['refresh_ms'])} | | |")
    lines.append(f"| Aggregate over pg_ivm's query (`{shown}`), Freshet INCREMENTAL refresh / pg_ivm COPY with "
                 f"maintenance, per batch, larger source | {ratio(tw_large['wall_ms'], cmp_large)} | | |")
    lines.append("")
    lines.append(f"Refresh times are medians of {reps} runs of `ALTER DYNAMIC TABLE … REFRESH` (synchronous),")
    lines.append(f"each after a COPY of {n:,} new logins, timed by the client (wall clock); \"history\" is the")
    lines.append("median of `refresh_end_time - refresh_start_time` in `dynamic_table_refresh_history`.")
    lines.append("The tables are measured one after another, each after a `CHECKPOINT`, so that a timed")
    lines.append("refresh does not share the two cores with the background checkpoint a FULL refresh of")
    lines.append("the larger source leaves behind.")
    lines.append("")
    lines.append("### Model pipeline: refresh time against source size")
    lines.append("")
    lines.append("| Source rows | Mode | Refresh, ms (client) | Refresh, ms (history: end − start) "
                 "| Rows scored | Source rows read |")
    lines.append("| ---: | --- | ---: | ---: | ---: | ---: |")
    for size in (small, large):
        for name, mode in (("predictions_inc", "INCREMENTAL"), ("predictions_full", "FULL")):
            t = size["tables"][name]
            lines.append(f"| {size['source_rows']:,} | {mode} | {fmt_num(t['wall_ms'], 1)} | "
                         f"{fmt_num(t['history_ms'], 1)} | {fmt_num(t['scored'])} | {fmt_num(t['read'])} |")
    lines.append("")
    lines.append("### Aggregate: Freshet dynamic table vs PostgreSQL materialized view and pg_ivm")
    lines.append("")
    lines.append(f"Against the materialized view, over the same query (`count(DISTINCT user_id)` included): source "
                 f"of {large['source_rows']:,} rows in Freshet and {peer['source_rows']:,} in PostgreSQL; each "
                 f"refresh after a COPY of {n:,} new logins.")
    lines.append("")
    lines.append("| Refresh | ms (client, median) | runs, ms | Source rows read | / PostgreSQL |")
    lines.append("| --- | ---: | --- | ---: | ---: |")
    lines.append(f"| PostgreSQL `REFRESH MATERIALIZED VIEW` | {fmt_num(peer['refresh_ms'], 1)} | "
                 f"{', '.join(f'{t:.0f}' for t in peer['all_ms'])} | {fmt_num(peer['source_rows'])} (all) | 1.00× |")
    one = scaling["agg_one_group"]
    for label, t in (("Freshet, INCREMENTAL (new rows in all locations)", agg_inc),
                     ("Freshet, INCREMENTAL (new rows in one location)", one),
                     ("Freshet, FULL", agg_full)):
        lines.append(f"| {label} | {fmt_num(t['wall_ms'], 1)} | {', '.join(f'{x:.0f}' for x in t['all_wall_ms'])} | "
                     f"{fmt_num(t['read'])} | {ratio(t['wall_ms'], peer['refresh_ms'])} |")
    lines.append("")
    lines.append(f"Against pg_ivm, over pg_ivm's query, `{ivm_query}`:")
    lines.append("")
    if ivm_ok and ivm["refused"]:
        message = ivm.get("refused_message") or "no message recorded"
        lines.append(f"pg_ivm refuses the section's query (the materialized view's, above): \"{message}\" "
                     f"(SQLSTATE {ivm['refused']}); its IMMV is over the query just given instead"
                     + (", without `count(DISTINCT user_id) AS users`. " if ivm_query == PG_IVM_AGG_QUERY else ". "))
    elif ivm_ok:
        lines.append("pg_ivm takes the section's query as it is, `count(DISTINCT user_id)` included. ")
    else:
        lines.append(f"pg_ivm was not measured: {ivm['reason'].replace('|', '/')}; its figures read n/a. ")
    if same_work:
        lines[-1] += (f"Freshet is compared with it on `{pair}`, an INCREMENTAL dynamic table over exactly that "
                      "query, created, loaded and refreshed like the others, with the same batches and the same "
                      "one-location series: the same work on both sides.")
        if pair != "logins_agg_inc":
            lines[-1] += (" `logins_agg_inc`, with `count(DISTINCT user_id)`, is compared with the materialized "
                          "view only, above.")
    elif ivm_ok:
        lines[-1] += (f"**Not the same work:** no Freshet table of this run has pg_ivm's query; `{shown}` "
                      f"(`{queries[shown]}`) is shown beside it, but not divided by it.")
    else:
        lines[-1] += (f"Freshet's figures are those of `{shown}`, an INCREMENTAL dynamic table over that query "
                      "(the one the benchmark gives pg_ivm when pg_ivm refuses `count(DISTINCT …)`).")
    ivm_rows = f"{ivm['sizes'][-1]['source_rows']:,}" if ivm_ok else "n/a"
    lines.append(f"Source of {large['source_rows']:,} rows in Freshet and {ivm_rows} with pg_ivm. pg_ivm has no "
                 "refresh: it maintains its view (an IMMV, `create_immv`) inside the transaction that writes "
                 f"the source, so its figure is the wall time of the COPY of the {n:,} new logins, the insert "
                 "itself and the view's maintenance together (the same COPY with no view to maintain took "
                 f"{fmt_num(peer['copy_ms'], 1)} ms, median, in the materialized view's run).")
    lines.append("")
    lines.append(f"| Per batch of {n:,} new logins, pg_ivm's query | ms (median) | runs, ms | Source rows read | "
                 "/ pg_ivm (same batches) |")
    lines.append("| --- | ---: | --- | ---: | ---: |")
    for label, key, t_ivm, t_fr, against in (("all locations", "all", ivm["sizes"][-1] if ivm_ok else None,
                                               tw_large, cmp_large),
                                              ("one location", "one", ivm["one_group"] if ivm_ok else None,
                                               tw_one, cmp_one)):
        lines.append(f"| pg_ivm, COPY with the IMMV maintained in it (new rows in {label}) | "
                     f"{fmt_num(t_ivm['ms'] if t_ivm else None, 1)} | "
                     f"{', '.join(f'{x:.0f}' for x in t_ivm['all_ms']) if t_ivm else 'n/a'} | n/a | "
                     f"{'1.00×' if t_ivm else 'n/a'} |")
        lines.append(f"| Freshet, `{shown}`, INCREMENTAL refresh (new rows in {label}) | "
                     f"{fmt_num(t_fr['wall_ms'], 1)} | {', '.join(f'{x:.0f}' for x in t_fr['all_wall_ms'])} | "
                     f"{fmt_num(t_fr['read'])} | {ratio(t_fr['wall_ms'], against)} |")
    lines.append("")
    lines.append(f"Per batch of {n:,} new logins (all locations) against the size of the source, pg_ivm's query, "
                 f"ms, medians of {reps} runs:")
    lines.append("")
    lines.append(f"| Per batch | source ~{args.scale_rows[0]:,} rows | source ~{args.scale_rows[1]:,} rows | "
                 "larger / smaller |")
    lines.append("| --- | ---: | ---: | ---: |")
    lines.append(f"| Freshet, `{shown}`, INCREMENTAL refresh (client; the COPY before it not included) | "
                 f"{fmt_num(tw_small['wall_ms'], 1)} | {fmt_num(tw_large['wall_ms'], 1)} | "
                 f"{ratio(tw_large['wall_ms'], tw_small['wall_ms'])} |")
    lines.append(f"| pg_ivm, COPY with the IMMV maintained in it (the insert included) | "
                 f"{fmt_num(ivm_small, 1)} | {fmt_num(ivm_large, 1)} | {ratio(ivm_large, ivm_small)} |")
    lines.append(f"| Freshet / pg_ivm | {ratio(tw_small['wall_ms'], cmp_small)} | "
                 f"{ratio(tw_large['wall_ms'], cmp_large)} | |")
    lines.append("")
    lines.append("What the figures do not show: pg_ivm maintains its view synchronously, in triggers inside "
                 "the transaction that writes the source, so its cost lands on the writers (each COPY is "
                 "acknowledged only after the maintenance, and with a GROUP BY aggregate it holds an exclusive "
                 "lock on the view until it commits, so concurrent writers of the source wait for one another; "
                 "these runs have one writer), and the view is current the moment the writer commits; "
                 "Freshet's cost lands on the refresh, apart from the writers, whose COPYs are not timed here, "
                 "and its view is as fresh as its last refresh. So a pg_ivm figure includes an insert that "
                 "the Freshet figures leave out. Only inserts: no deletes or updates, "
                 "which cost pg_ivm more for `min` and `max` (a group whose extreme row goes is recomputed "
                 "from the source).")
    lines.append("")
    lines.append("### Details")
    lines.append("")
    lines.append(f"- Stream: {args.fresh_writers} writer connections (psycopg), each sending a COPY of "
                 f"{fresh['batch_rows']} logins every {args.fresh_interval_ms} ms, staggered (one batch every "
                 f"{fresh['period_ms']:.2f} ms), {fresh['batches']:,} batches, {fresh['sent_rows']:,} rows; "
                 f"median COPY round trip {fresh['ack_ms']:.1f} ms; sends behind schedule by p99 "
                 f"{fresh['late_p99_ms']:.1f} ms, max {fresh['late_max_ms']:.1f} ms")
    lines.append(f"- Delay: from the writer's receipt of a batch's acknowledgement to the arrival of the first "
                 f"poll answer that holds all of the batch's rows; one poller connection asks every "
                 f"{args.poll_ms} ms (the resolution) `SELECT login_id / {fresh['batch_rows']}, count(*) FROM "
                 f"logins_with_predictions WHERE login_id >= <oldest batch not yet seen> GROUP BY 1` "
                 f"({fresh['polls']:,} polls, round trip median {fresh['poll_p50_ms']:.1f} ms, max "
                 f"{fresh['poll_max_ms']:.1f} ms; a poll was in flight {fresh['poll_busy_pct']:.0f}% of the "
                 f"time); mean delay {ms(fresh['mean_s']):.0f} ms; batches never "
                 f"seen: {fresh['unseen']}; batches seen partly: {fresh['partial']}")
    actions = ", ".join(f"{k} {v}" for k, v in sorted(fresh["actions"].items()))
    lines.append(f"- Refreshes while streaming (refresh history): {actions}; duration (end − start) mean "
                 f"{fmt_num(fresh['refresh_mean_ms'], 1)} ms, p99 {fmt_num(fresh['refresh_p99_ms'], 1)} ms, "
                 f"max {fmt_num(fresh['refresh_max_ms'], 1)} ms; mean rows scored per incremental refresh "
                 f"{fmt_num(fresh['rows_per_refresh'])}")
    lines.append(f"- CPU: server utime + stime from `/proc/PID/stat` over the stream "
                 f"({fresh['elapsed_s']:.1f} s), the poller's queries included: one poll cost the server "
                 f"{fresh['poll_cpu_ms']:.1f} ms of CPU at the final size (measured afterwards over 40 polls), "
                 f"so answering the poller took roughly {fresh['poller_core_pct']:.0f}% of a core (the table "
                 f"grew from empty, and a poll's cost with it); the benchmark client "
                 f"(writers and poller, one Python process) used {fresh['client_core_pct']:.0f}% of a core "
                 f"on the same machine. Peak PSS sampled every 0.2 s: "
                 f"{fmt_num(mib(fresh['peak_pss_kib']), 1)} MiB. 1-minute load average before/after: "
                 f"{fresh['load'][0][0]:.2f} / {fresh['load'][1][0]:.2f}")
    lines.append(f"- Scaling and aggregate tables: `TARGET_LAG = DOWNSTREAM` (never scheduled), refreshed only "
                 f"by the timed `ALTER DYNAMIC TABLE … REFRESH`; sources loaded with psql `\\copy` "
                 + "; ".join(f"to {rows:,} rows in {s:.1f} s" for rows, s in scaling["loads"])
                 + "; creation (initial FULL refresh) at the smaller size: "
                 + ", ".join(f"`{k}` {v * 1000:.0f} ms" for k, v in scaling["created_s"].items()))
    cu = scaling["catch_up"]["predictions_inc"]
    lines.append(f"- Catch-up of the INCREMENTAL pipeline after the bulk load to the larger size: "
                 f"{fmt_num(cu['wall_ms'])} ms, {fmt_num(cu['stats'].get('numModelRowsScored'))} rows scored")
    lines.append("- Why the INCREMENTAL tables are incremental (`refresh_mode_reason`): " + "; ".join(
        f"`{k}`: {v.split('; not scheduled')[0]}" for k, v in sorted(scaling["reasons"].items())
        if k.endswith("_inc")))
    fr = scaling["final_rows"]
    lines.append(f"- Checks after the last refresh: pipeline rows INCREMENTAL {fr['predictions_inc']:,}, FULL "
                 f"{fr['predictions_full']:,}, source {scaling['final_source_rows']:,}; aggregate INCREMENTAL = "
                 f"FULL = source count: {'yes' if scaling['agg_agree'] else '**no**'}; `{twin_name}` = its query "
                 f"run directly = those columns of `logins_agg_inc`, source count: "
                 f"{'yes' if scaling['agg_ivm_agree'] else '**no**'}")
    lines.append(f"- Peak memory of the Freshet server of the scaling and aggregate runs (VmHWM): "
                 f"{fmt_num(mib(scaling['peak_hwm_kib']), 1)} MiB")
    lines.append(f"- PostgreSQL: {peer['version']}; settings: {peer['settings']}; otherwise initdb defaults; "
                 f"`VACUUM ANALYZE` after loading; creating the materialized view took {peer['created_s']:.1f} s")
    if ivm_ok:
        loads = "; ".join(f"to {rows:,} rows in {sec:.1f} s{' (the IMMV maintained in the load)' if kept else ''}"
                          for rows, sec, kept in ivm["loads"])
        lines.append(f"- pg_ivm: extension version {ivm['extversion']}, "
                     f"{'built with PGXS from ' if ivm['built'] else ''}{ivm['source']}; in a PostgreSQL instance of its own ({ivm['version']}; settings: "
                     f"{ivm['settings']}; plus `shared_preload_libraries = 'pg_ivm'`, as pg_ivm asks); "
                     f"sources loaded with psql `\\copy` {loads}, `VACUUM ANALYZE` after each load; the IMMV "
                     f"created after the first load in {ivm['created_s'] * 1000:.0f} ms, with "
                     + ("; ".join(f"`{d}`" for d in ivm["indexes"]) or "no index")
                     + " (made by `create_immv`); before each size's runs a `CHECKPOINT` and one untimed batch; "
                     f"IMMV = its query after each series (checked, the benchmark stops otherwise): yes; final "
                     f"source {ivm['final_source_rows']:,} rows")
    else:
        lines.append(f"- pg_ivm: not measured: {ivm['reason']}")
    lines.append(f"- Freshet: {freshet_version(args.freshet_bin)}, commit {machine['commit']}, release build, "
                 "`freshet serve --model-dir tests/fixtures/models` (fsync on)")
    lines.append(f"- Sources: logins with user ids uniform in 1..{RISK_USERS:,} and locations uniform over "
                 f"{', '.join(RISK_LOCATIONS)} (the fixture's training data)")
    lines.append("")
    lines.append("Statements:")
    lines.append("")
    lines.append("```sql")
    for sql in MODEL_SETUP_SQL + [LOGINS_RAW_SQL, MISSION_SQL]:
        lines.append(sql + ";")
    lines.append("-- scaling and aggregate (FULL twins: REFRESH_MODE = FULL)")
    lines.append(dynamic_table_sql("predictions_inc", "DOWNSTREAM", "INCREMENTAL", "<the same query>") + ";")
    lines.append(dynamic_table_sql("logins_agg_inc", "DOWNSTREAM", "INCREMENTAL", LOGINS_AGG_QUERY) + ";")
    lines.append("-- the aggregate over pg_ivm's query (no count(DISTINCT)), for the comparison with pg_ivm")
    lines.append(dynamic_table_sql(twin_name, "DOWNSTREAM", "INCREMENTAL", queries[twin_name]) + ";")
    lines.append("-- PostgreSQL")
    lines.append(f"CREATE MATERIALIZED VIEW logins_agg AS {LOGINS_AGG_QUERY};")
    lines.append("-- pg_ivm (shared_preload_libraries = 'pg_ivm')")
    lines.append("CREATE EXTENSION pg_ivm;")
    create_fn = ivm["create_fn"] if ivm_ok else "pgivm.create_immv"
    lines.append(f"SELECT {create_fn}('logins_agg', '{ivm_query}');")
    lines.append("```")
    lines.append("")
    lines.extend(machine_and_command(machine, command))
    lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- point lookups

LOOKUP_BEGIN_MARK = "<!-- BEGIN bench/run.sh lookup: generated, do not edit -->"
LOOKUP_END_MARK = "<!-- END bench/run.sh lookup -->"

LOOKUP_CREATE_SQL = "CREATE TABLE accounts (id bigint PRIMARY KEY, email text, balance int)"
LOOKUP_SQL = "SELECT id, email, balance FROM accounts WHERE id = %s"
# The same lookup with the key hidden from the index (`abs(id)`, keys are
# positive): what a
# Freshet lookup cost before unique indexes served reads.
LOOKUP_SCAN_SQL = "SELECT id, email, balance FROM accounts WHERE abs(id) = %s"
LOOKUP_SCAN_REPS = 20
LOOKUP_CHUNK = 1_000_000


def lookup_series(conn, sizes, reps, postgres):
    """Grows `accounts` to each of `sizes` rows and times `reps` prepared
    point lookups of random existing keys at each size (after a warm-up);
    also a few lookups that cannot use the index, in Freshet."""
    rng = random.Random(11)
    conn.execute(LOOKUP_CREATE_SQL)
    loaded, out = 0, []
    for size in sizes:
        started = time.monotonic()
        for first in range(loaded + 1, size + 1, LOOKUP_CHUNK):
            last = min(first + LOOKUP_CHUNK - 1, size)
            conn.execute(
                "INSERT INTO accounts SELECT n, 'user' || n || '@example.com', n % 1000 "
                f"FROM generate_series({first}, {last}) AS g(n)")
        loaded = size
        load_s = time.monotonic() - started
        if postgres:
            conn.execute("VACUUM ANALYZE accounts")
        else:
            conn.execute("CHECKPOINT")
        cur = conn.cursor()

        def timed(sql, keys):
            times = []
            for key in keys:
                t0 = time.perf_counter()
                rows = cur.execute(sql, (key,), prepare=True).fetchall()
                times.append(time.perf_counter() - t0)
                if len(rows) != 1 or rows[0][0] != key:
                    raise RuntimeError(f"lookup of {key} returned {rows!r}")
            return times

        timed(LOOKUP_SQL, [rng.randint(1, size) for _ in range(200)])
        times = timed(LOOKUP_SQL, [rng.randint(1, size) for _ in range(reps)])
        row = {"size": size, "load_s": load_s, "reps": reps,
               "p50_us": percentile(times, 50) * 1e6, "p99_us": percentile(times, 99) * 1e6}
        if not postgres:
            scans = timed(LOOKUP_SCAN_SQL, [rng.randint(1, size) for _ in range(LOOKUP_SCAN_REPS)])
            row["scan_p50_us"] = percentile(scans, 50) * 1e6
        out.append(row)
        log(f"lookup: {'postgres' if postgres else 'freshet'} {size:,} rows: p50 {row['p50_us']:.0f} us")
    return out


def bench_lookup(args, tools, workdir):
    """The lookup series in PostgreSQL, then in Freshet, each with its peak memory."""
    result = {}
    with postgres_instance(workdir) as (uri, pid, version):
        sampler = MemorySampler(pid)
        sampler.start()
        try:
            conn = db_connect(uri)
            result["postgres"] = lookup_series(conn, args.lookup_rows, args.lookup_reps, True)
            conn.close()
        finally:
            sampler.stop()
        result["pg_version"] = version
        result["pg_settings"] = postgres_settings(tools, uri)
        result["pg_peak_pss_kib"] = sampler.peak_pss_kib
    with freshet_instance(args, workdir, (), "freshet-lookup.log") as (uri, proc):
        sampler = MemorySampler(proc.pid)
        sampler.start()
        try:
            conn = db_connect(uri)
            result["freshet"] = lookup_series(conn, args.lookup_rows, args.lookup_reps, False)
            conn.close()
        finally:
            sampler.stop()
        result["fr_peak_hwm_kib"] = status_kib(proc.pid, "VmHWM") or sampler.peak_hwm_kib
    result["fr_version"] = freshet_version(args.freshet_bin)
    return result


def render_lookup(args, machine, res, command):
    pg, fr = res["postgres"], res["freshet"]
    lines = ["## Point lookups by primary key: Freshet vs PostgreSQL", ""]
    lines.append(
        "Generated by `bench/run.sh`; do not edit by hand. One connection runs the prepared "
        f"statement `{LOOKUP_SQL.replace('%s', '$1')}` (psycopg 3, server-side prepared) for random "
        f"existing keys, {args.lookup_reps:,} times per size after 200 warm-up lookups, against "
        f"`{LOOKUP_CREATE_SQL}` grown to each size; client wall clock per lookup, loopback.")
    lines.append("")
    lines.append("| Rows | PostgreSQL p50, µs | PostgreSQL p99, µs | Freshet p50, µs | Freshet p99, µs "
                 "| Freshet / PostgreSQL, p50 | Freshet without the index (`abs(id) = $1`), p50, µs |")
    lines.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for p, f in zip(pg, fr):
        lines.append(
            f"| {p['size']:,} | {fmt_num(p['p50_us'])} | {fmt_num(p['p99_us'])} | {fmt_num(f['p50_us'])} "
            f"| {fmt_num(f['p99_us'])} | {ratio(f['p50_us'], p['p50_us'])} | {fmt_num(f['scan_p50_us'])} |")
    if len(pg) >= 2:
        lines.append(
            f"| growth, {pg[-1]['size']:,} / {pg[0]['size']:,} | {pg[-1]['p50_us'] / pg[0]['p50_us']:.2f}× | "
            f"| {fr[-1]['p50_us'] / fr[0]['p50_us']:.2f}× | | | "
            f"{fr[-1]['scan_p50_us'] / fr[0]['scan_p50_us']:.2f}× |")
    lines.append(
        f"| peak memory of the run, MiB | {fmt_num(res['pg_peak_pss_kib'] / 1024, 1)} (PSS, all processes) | "
        f"| {fmt_num(res['fr_peak_hwm_kib'] / 1024, 1)} (VmHWM) | | | |")
    lines.append("")
    lines.append("The last column is what every Freshet lookup cost before unique indexes served "
                 "reads: a scan, growing with the table. The prepared lookup is recognized when it is "
                 "prepared and each Execute skips planning (`prepared_lookup.rs`); the column without "
                 "the index is planned at each Execute, so it also carries the planning cost.")
    lines.append("")
    lines.append("What the figures do not show: one connection and no concurrent writes (a Freshet "
                 "lookup falls back to a scan in a transaction that wrote to the table, or when the "
                 "table was written after the statement's snapshot in a way the index cannot see "
                 "through); equality and `IN` only (PostgreSQL's B-tree also serves ranges and "
                 "ordering); a prepared query of any other shape (an extra condition, a join, ORDER BY) "
                 "is still planned at every Execute, which costs about a millisecond; the memory rows "
                 "include loading the tables, which dominates them.")
    lines.append("")
    lines.append("### Details")
    lines.append("")
    loads = ", ".join(f"{p['size']:,} rows {p['load_s']:.1f} s / {f['load_s']:.1f} s" for p, f in zip(pg, fr))
    lines.append(f"- Loading (`INSERT … SELECT generate_series` in chunks of {LOOKUP_CHUNK:,} rows, "
                 f"PostgreSQL / Freshet): {loads}; then `VACUUM ANALYZE` in PostgreSQL and `CHECKPOINT` "
                 "in Freshet")
    lines.append(f"- PostgreSQL: {res['pg_version']}; settings: {res['pg_settings']}; the primary key's "
                 "B-tree index, otherwise initdb defaults")
    lines.append(f"- Freshet: {res['fr_version']}, commit {machine['commit']}, release build; the primary "
                 "key's unique index (an in-memory hash map)")
    lines.append(f"- Without the index: {LOOKUP_SCAN_REPS} lookups of `{LOOKUP_SCAN_SQL.replace('%s', '$1')}`, "
                 "which scans the table")
    lines.append("")
    lines.extend(machine_and_command(machine, command))
    lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- build

BUILD_BEGIN_MARK = "<!-- BEGIN bench/run.sh build: generated, do not edit -->"
BUILD_END_MARK = "<!-- END bench/run.sh build -->"

# Issue 17's targets on a 2-core machine.
BUILD_TARGET_MINUTES = 25
STRIPPED_TARGET_MB = 120


def timed_build(cmd, target_dir, log_path):
    """Runs a cargo command with CARGO_TARGET_DIR=target_dir; returns wall
    seconds and the peak PSS (KiB) summed over its process tree."""
    env = dict(os.environ, CARGO_TARGET_DIR=target_dir, CARGO_TERM_COLOR="never")
    started = time.monotonic()
    with open(log_path, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        sampler = MemorySampler(proc.pid, interval=0.5)
        sampler.start()
        rc = proc.wait()
        sampler.stop()
    if rc != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({rc}); see {log_path}")
    return time.monotonic() - started, sampler.peak_pss_kib


def bench_build(args, workdir):
    """.ci/run's build from nothing, in an empty target directory: the
    release test build (which builds the server binary too), then the lints
    in the same target directory, then the binary's size and its stripped
    size."""
    target = os.path.join(workdir, "target")
    log("build: cargo test --release --workspace --no-run, from an empty target directory")
    test_s, test_kib = timed_build(["cargo", "test", "--release", "--workspace", "--no-run"], target,
                                   os.path.join(workdir, "test-build.log"))
    log("build: cargo clippy --release --workspace --all-targets, same target directory")
    lint_s, lint_kib = timed_build(["cargo", "clippy", "--release", "--workspace", "--all-targets", "--",
                                    "-D", "warnings"], target, os.path.join(workdir, "clippy.log"))
    binary = os.path.join(target, "release", "freshet")
    stripped = os.path.join(workdir, "freshet-stripped")
    run(["strip", "-o", stripped, binary], timeout=600)
    text_bytes = None
    try:
        out = run(["size", "-A", binary], timeout=120).stdout
        text_bytes = sum(int(line.split()[1]) for line in out.splitlines()
                         if line.startswith((".text", ".rodata")))
    except (RuntimeError, ValueError, IndexError, OSError):
        pass
    return {
        "test_s": test_s,
        "test_kib": test_kib,
        "lint_s": lint_s,
        "lint_kib": lint_kib,
        "binary_bytes": os.path.getsize(binary),
        "stripped_bytes": os.path.getsize(stripped),
        "code_bytes": text_bytes,
        "rustc": run(["rustc", "--version"], timeout=60).stdout.strip(),
    }


def render_build(args, machine, res, command):
    mib = 1024 * 1024
    minutes = res["test_s"] / 60
    stripped_mb = res["stripped_bytes"] / 1e6
    lines = [
        "## Build time and binary size",
        "",
        f"Measured at commit {machine['commit']} with {res['rustc']}, from an empty "
        "`CARGO_TARGET_DIR` (crates already downloaded), as `.ci/run` builds on a new machine.",
        "",
        "| | wall time | peak memory (PSS, whole process tree) | target |",
        "|---|---:|---:|---|",
        f"| `cargo test --release --workspace --no-run` (every test binary and the server) | "
        f"{minutes:.1f} min | {res['test_kib'] / 1024 / 1024:.1f} GiB | "
        f"under {BUILD_TARGET_MINUTES} min: "
        f"{'met' if minutes < BUILD_TARGET_MINUTES else f'missed by {minutes - BUILD_TARGET_MINUTES:.0f} min'} |",
        f"| then `cargo clippy --release --workspace --all-targets` (same target directory) | "
        f"{res['lint_s'] / 60:.1f} min | {res['lint_kib'] / 1024 / 1024:.1f} GiB | |",
        "",
        "| binary | size | target |",
        "|---|---:|---|",
        f"| `target/release/freshet` | {res['binary_bytes'] / mib:.0f} MiB | |",
        f"| stripped (`strip`) | {stripped_mb:.0f} MB | under {STRIPPED_TARGET_MB} MB: "
        f"{'met' if stripped_mb < STRIPPED_TARGET_MB else f'missed by {stripped_mb - STRIPPED_TARGET_MB:.0f} MB'} |",
    ]
    if res["code_bytes"]:
        lines.append(f"| of which machine code and read-only data (`.text`, `.rodata`) | "
                     f"{res['code_bytes'] / mib:.0f} MiB | |")
    lines += [
        "",
        "What these figures do not show: the README's first command builds only the server "
        "binary, which is part of the test build above and takes less; a rebuild after a change "
        "to one crate takes minutes, not this; download time is left out.",
        "",
    ]
    lines += machine_and_command(machine, command)
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--freshet-bin", required=True)
    ap.add_argument("--quick", action="store_true", help="small sizes, to try the harness out")
    ap.add_argument("--rows", type=int, help="rows to COPY (default 10,000,000; 200,000 with --quick)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2, help="pgbench -j")
    ap.add_argument("--insert-seconds", type=int, help="default 30; 5 with --quick")
    ap.add_argument("--agg-reps", type=int, default=3)
    ap.add_argument("--pgbench-mode", default="prepared", choices=["simple", "extended", "prepared"])
    ap.add_argument("--workdir", default=os.environ.get("BENCH_WORKDIR", "/var/tmp/freshet-bench"))
    ap.add_argument("--output", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    ap.add_argument("--command", default=None, help="the command line to record in the report")
    ap.add_argument("--sections", default="server,models,dynamic,lookup,build",
                    help="comma separated: server (vs PostgreSQL), models (inference vs onnxruntime), "
                         "dynamic (dynamic tables: freshness, incremental refresh, vs a materialized view and pg_ivm), "
                         "lookup (prepared point lookups by primary key), "
                         "build (the test build and lints from an empty target directory, binary size)")
    ap.add_argument("--model-rows", type=int, help="rows per model table (default 1,000,000; 50,000 with --quick)")
    ap.add_argument("--model-batch", type=int, default=8192, help="inference batch size everywhere")
    ap.add_argument("--model-reps", type=int, help="timed runs per measurement (default 7; 1 with --quick)")
    ap.add_argument("--model-fixtures", default=None, help="comma separated fixture names to run instead")
    ap.add_argument("--throughput-bin", default=None,
                    help="freshet-models' throughput example (default: beside --freshet-bin)")
    ap.add_argument("--ort-python", default=os.environ.get("BENCH_ORT_PYTHON"),
                    help="Python with onnxruntime (default: /var/tmp/fixtures-venv/bin/python if present)")
    ap.add_argument("--fresh-seconds", type=int,
                    help="dynamic: seconds of streaming (default 300; 20 with --quick)")
    ap.add_argument("--fresh-rate", type=int, default=20_000,
                    help="dynamic: logins per second streamed (default 20,000)")
    ap.add_argument("--fresh-writers", type=int, default=4, help="dynamic: writer connections (default 4)")
    ap.add_argument("--fresh-interval-ms", type=int, default=25,
                    help="dynamic: each writer sends one COPY batch this often (default 25)")
    ap.add_argument("--poll-ms", type=int, default=25,
                    help="dynamic: how often the poller looks for new predictions (default 25)")
    ap.add_argument("--scale-rows", default=None,
                    help="dynamic: SMALL,LARGE source sizes (default 1000000,10000000; 100000,1000000 with --quick)")
    ap.add_argument("--lookup-rows", default=None,
                    help="lookup: table sizes (default 1000000,10000000; 100000,1000000 with --quick)")
    ap.add_argument("--lookup-reps", type=int, default=None,
                    help="lookup: timed lookups per size (default 5000; 1000 with --quick)")
    ap.add_argument("--refresh-rows", type=int, default=1000,
                    help="dynamic: new rows before each timed refresh (default 1,000)")
    ap.add_argument("--refresh-reps", type=int,
                    help="dynamic: timed refreshes per table and size (default 10; 5 with --quick)")
    ap.add_argument("--pg-ivm-src", default=os.environ.get("BENCH_PG_IVM_SRC"),
                    help="dynamic: a pg_ivm source tree to build with PGXS and install into PostgreSQL 15 "
                         "(unless its version is installed); 'none' leaves pg_ivm out (default: HEAD of "
                         "--pg-ivm-git, extracted into --workdir)")
    ap.add_argument("--pg-ivm-git", default=os.environ.get("BENCH_PG_IVM_GIT", PG_IVM_GIT_DEFAULT),
                    help=f"dynamic: a (bare) git clone of pg_ivm (default {PG_IVM_GIT_DEFAULT})")
    args = ap.parse_args()
    if args.rows is None:
        args.rows = 200_000 if args.quick else 10_000_000
    if args.insert_seconds is None:
        args.insert_seconds = 5 if args.quick else 30
    if args.model_rows is None:
        args.model_rows = 50_000 if args.quick else 1_000_000
    if args.model_reps is None:
        args.model_reps = 1 if args.quick else 7
    if args.fresh_seconds is None:
        args.fresh_seconds = 20 if args.quick else 300
    if args.scale_rows is None:
        args.scale_rows = "100000,1000000" if args.quick else "1000000,10000000"
    try:
        args.scale_rows = [int(x) for x in args.scale_rows.split(",")]
    except ValueError:
        sys.exit("--scale-rows takes SMALL,LARGE")
    if len(args.scale_rows) != 2 or not 0 < args.scale_rows[0] < args.scale_rows[1]:
        sys.exit("--scale-rows takes SMALL,LARGE with 0 < SMALL < LARGE")
    if args.lookup_rows is None:
        args.lookup_rows = "100000,1000000" if args.quick else "1000000,10000000"
    try:
        args.lookup_rows = [int(x) for x in args.lookup_rows.split(",")]
    except ValueError:
        sys.exit("--lookup-rows takes sizes separated by commas")
    if args.lookup_reps is None:
        args.lookup_reps = 1000 if args.quick else 5000
    if args.refresh_reps is None:
        args.refresh_reps = 5 if args.quick else 10
    if args.throughput_bin is None:
        args.throughput_bin = os.path.join(os.path.dirname(args.freshet_bin), "examples", "throughput")
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    unknown = sections - {"server", "models", "dynamic", "lookup", "build"}
    if unknown:
        sys.exit(f"unknown --sections {', '.join(sorted(unknown))}")

    if sections & {"dynamic", "lookup"}:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            sys.exit("the dynamic and lookup sections need psycopg: pip install 'psycopg[binary]'")

    tools = {}
    for tool in ("psql", "pgbench"):
        path = shutil.which(tool)
        if not path:
            sys.exit(f"{tool} not found (apt-get install postgresql-client postgresql-15)")
        tools[tool] = path

    os.makedirs(args.workdir, exist_ok=True)
    os.chmod(args.workdir, 0o755)
    command = args.command or shlex.join([sys.argv[0], *sys.argv[1:]])

    def run_section(what, prefix, measure, render_report, marks):
        """Measures into a fresh run directory (kept on failure), then
        rewrites the section between `marks` in the report."""
        run_dir = tempfile.mkdtemp(prefix=prefix, dir=args.workdir)
        os.chmod(run_dir, 0o755)
        try:
            res = measure(run_dir)
        except Exception:
            log(f"{what} failed; logs kept in {run_dir}")
            raise
        report = render_report(res)
        write_section(args.output, report, *marks)
        shutil.rmtree(run_dir, ignore_errors=True)
        log(f"wrote {args.output}")
        print(report)

    if "server" in sections:
        data_file = os.path.join(args.workdir, f"logins-{args.rows}.csv")
        if not os.path.exists(data_file):
            generate_data(data_file, args.rows)
        os.chmod(data_file, 0o644)
        run_section(
            "benchmark", "run-",
            lambda d: (bench_postgres(tools, args, data_file, d), bench_freshet(tools, args, data_file, d)),
            lambda res: render(args, machine_info(), res[0], res[1], command),
            (BEGIN_MARK, END_MARK))

    if "models" in sections:
        if not os.access(args.throughput_bin, os.X_OK):
            sys.exit(f"{args.throughput_bin} not found: cargo build --release -p freshet-models --example throughput")
        run_section("model benchmark", "models-", lambda d: bench_models(tools, args, d),
                    lambda res: render_models(args, machine_info(), res, command),
                    (MODELS_BEGIN_MARK, MODELS_END_MARK))

    if "dynamic" in sections:
        csvs = dynamic_data(args)
        ivm_build = prepare_pg_ivm(args)
        if not ivm_build["ok"]:
            log(f"pg_ivm unavailable, its column will read n/a: {ivm_build['reason']}")
        run_section(
            "dynamic-table benchmark", "dynamic-",
            lambda d: (dynamic_freshness(args, d), dynamic_scaling(args, tools, d, csvs),
                       dynamic_postgres_peer(args, tools, d, csvs), pg_ivm_peer(args, tools, d, csvs, ivm_build)),
            lambda res: render_dynamic(args, machine_info(), *res, command),
            (DYNAMIC_BEGIN_MARK, DYNAMIC_END_MARK))

    if "lookup" in sections:
        run_section("lookup benchmark", "lookup-", lambda d: bench_lookup(args, tools, d),
                    lambda res: render_lookup(args, machine_info(), res, command),
                    (LOOKUP_BEGIN_MARK, LOOKUP_END_MARK))

    if "build" in sections:
        run_section("build benchmark", "build-", lambda d: bench_build(args, d),
                    lambda res: render_build(args, machine_info(), res, command),
                    (BUILD_BEGIN_MARK, BUILD_END_MARK))

if __name__ == "__main__":
    main()
