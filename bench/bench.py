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

The results are written as Markdown to docs/benchmarks.md (or --output), each
part between its own markers.
"""

import argparse
import datetime
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


def generate_data(path, rows, seed=20240101):
    """Deterministic logins-like CSV: id, user_id, location, event_time.

    Event times advance about 3 s per row from 2024-01-01; user ids are uniform
    in 1..1,000,000; locations uniform over LOCATIONS.
    """
    log(f"generating {rows:,} rows into {path}")
    rng = random.Random(seed)
    rand = rng.random
    base = datetime.date(2024, 1, 1)
    days = [(base + datetime.timedelta(days=d)).isoformat() for d in range(rows * 3 // 86400 + 2)]
    tod = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)]
    nloc = len(LOCATIONS)
    tmp = path + ".partial"
    batch = 200_000
    with open(tmp, "w") as f:
        for start in range(0, rows, batch):
            end = min(rows, start + batch)
            lines = []
            append = lines.append
            for i in range(start, end):
                sec = i * 3 + int(rand() * 3)
                append(
                    f"{i},{int(rand() * 1_000_000) + 1},{LOCATIONS[int(rand() * nloc)]},"
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

    # COPY
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

    # Concurrent single-row INSERTs
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


def bench_postgres(tools, args, data_file, workdir):
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
    run(as_postgres([os.path.join(bindir, "pg_ctl"), "-D", data, "-o", opts, "-l",
                     os.path.join(pgdir, "server.log"), "-w", "-t", "120", "start"]), 180)
    try:
        with open(os.path.join(data, "postmaster.pid")) as f:
            pid = int(f.readline())
        uri = f"postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=disable"
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
        results["settings"] = scalar(
            tools, uri,
            "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings "
            "WHERE name IN ('fsync','synchronous_commit','shared_buffers','wal_level','max_wal_size')",
        )
        return results
    finally:
        subprocess.run(as_postgres([os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "fast",
                                    "-w", "stop"]), capture_output=True, timeout=180)


def bench_freshet(tools, args, data_file, workdir):
    data = tempfile.mkdtemp(prefix="freshet-", dir=workdir)
    port = free_port()
    logf = open(os.path.join(workdir, "freshet.log"), "w")
    cmd = [args.freshet_bin, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, what="freshet")
        uri = f"postgresql://freshet@127.0.0.1:{port}/freshet?sslmode=disable"
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
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        logf.close()


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
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain"], capture_output=True,
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


def fmt_num(v, digits=0):
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def ratio(f, p):
    if not f or not p:
        return "n/a"
    return f"{f / p:.2f}×"


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
    lines.append("same clients: psql (`\\copy`, `\\timing`) and pgbench.")
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
    lines.append(f"- pgbench mode `-M {args.pgbench_mode}`, `-j {args.threads}`; script:")
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
    lines.append("### Machine")
    lines.append("")
    lines.append(f"- CPU: {machine['cpu']}, {machine['nproc']} cores (nproc)")
    lines.append(f"- Memory: {fmt_num(machine['mem_gib'], 1)} GiB")
    lines.append(f"- Kernel: {machine['kernel']}")
    lines.append(f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
    lines.append("")
    lines.append("### Command")
    lines.append("")
    lines.append("```")
    lines.append(command)
    lines.append("```")
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


def timed_psql(tools, uri, sql):
    """Server-side elapsed ms of one statement, from psql's \\timing."""
    out = psql(tools, uri, "-A", "-t", "-c", "\\timing on", "-c", sql).stdout
    m = re.search(r"Time: ([0-9.]+) ms", out)
    if not m:
        raise RuntimeError(f"no timing in psql output for {sql}:\n{out[-2000:]}")
    lines = [line for line in out.splitlines() if line and not line.startswith(("Timing", "Time:"))]
    return float(m.group(1)), lines


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

    data = tempfile.mkdtemp(prefix="freshet-models-", dir=workdir)
    port = free_port()
    logf = open(os.path.join(workdir, "freshet-models.log"), "w")
    cmd = [args.freshet_bin, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}",
           "--model-dir", FIXTURES_DIR, "--inference-batch-size", str(args.model_batch)]
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    results = []
    try:
        wait_for_port(port, proc, what="freshet")
        uri = f"postgresql://freshet@127.0.0.1:{port}/freshet?sslmode=disable"
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
            timed_psql(tools, uri, count_sql)  # warm-up: compiles and caches the model
            server_ms = []
            for _ in range(args.model_reps):
                ms, lines = timed_psql(tools, uri, count_sql)
                if lines != [str(args.model_rows)]:
                    raise RuntimeError(f"models: {name}: count(m!predict) returned {lines}")
                server_ms.append(ms)
            log(f"models: {name}: count(m!predict) {', '.join(f'{t:.0f}' for t in server_ms)} ms")
            scan_ms, _ = timed_psql(tools, uri, f"SELECT count(c0) FROM {table}")
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

            inproc = rows_per_s(run([args.throughput_bin, name, str(threads), str(args.model_batch),
                                     str(args.model_rows), str(args.model_reps)], 3600).stdout,
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
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        logf.close()
        shutil.rmtree(data, ignore_errors=True)


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
    lines.append("  (median of the runs; psql `\\timing`), i.e. scan + scoring, no result rows on the wire;")
    lines.append("- **SQL, to client**: `\\copy (SELECT m!predict(…) FROM t) TO file` from psql: every")
    lines.append("  result sent as JSON over the wire (wall clock of psql);")
    lines.append("- **in-process**: `CompiledModel::predict` on the whole column set "
                 "(`cargo run -p freshet-models --example throughput`);")
    lines.append("- **onnxruntime**: the same `.onnx` file in onnxruntime "
                 f"{res['ort_version'] or '(not available)'} (Python, `tools/fixtures/bench_ort.py`),")
    lines.append("  batches scored one after the other with `intra_op_num_threads` = threads.")
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
        lines.append(f"- `{r['fixture']}`: count(m!predict) runs {', '.join(f'{t:.0f}' for t in r['server_ms'])} ms; "
                     f"the same table's `count(c0)` (scan alone) {r['scan_ms']:.0f} ms")
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
    ap.add_argument("--sections", default="server,models",
                    help="comma separated: server (vs PostgreSQL), models (inference vs onnxruntime)")
    ap.add_argument("--model-rows", type=int, help="rows per model table (default 1,000,000; 50,000 with --quick)")
    ap.add_argument("--model-batch", type=int, default=8192, help="inference batch size everywhere")
    ap.add_argument("--model-reps", type=int, help="timed runs per measurement (default 3; 1 with --quick)")
    ap.add_argument("--model-fixtures", default=None, help="comma separated fixture names to run instead")
    ap.add_argument("--throughput-bin", default=None,
                    help="freshet-models' throughput example (default: beside --freshet-bin)")
    ap.add_argument("--ort-python", default=os.environ.get("BENCH_ORT_PYTHON"),
                    help="Python with onnxruntime (default: /var/tmp/fixtures-venv/bin/python if present)")
    args = ap.parse_args()
    if args.rows is None:
        args.rows = 200_000 if args.quick else 10_000_000
    if args.insert_seconds is None:
        args.insert_seconds = 5 if args.quick else 30
    if args.model_rows is None:
        args.model_rows = 50_000 if args.quick else 1_000_000
    if args.model_reps is None:
        args.model_reps = 1 if args.quick else 3
    if args.throughput_bin is None:
        args.throughput_bin = os.path.join(os.path.dirname(args.freshet_bin), "examples", "throughput")
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    unknown = sections - {"server", "models"}
    if unknown:
        sys.exit(f"unknown --sections {', '.join(sorted(unknown))}")

    tools = {}
    for tool in ("psql", "pgbench"):
        path = shutil.which(tool)
        if not path:
            sys.exit(f"{tool} not found (apt-get install postgresql-client postgresql-15)")
        tools[tool] = path

    os.makedirs(args.workdir, exist_ok=True)
    os.chmod(args.workdir, 0o755)
    command = args.command or shlex.join([sys.argv[0], *sys.argv[1:]])

    if "server" in sections:
        data_file = os.path.join(args.workdir, f"logins-{args.rows}.csv")
        if not os.path.exists(data_file):
            generate_data(data_file, args.rows)
        os.chmod(data_file, 0o644)

        run_dir = tempfile.mkdtemp(prefix="run-", dir=args.workdir)
        os.chmod(run_dir, 0o755)
        try:
            pg = bench_postgres(tools, args, data_file, run_dir)
            fr = bench_freshet(tools, args, data_file, run_dir)
        except Exception:
            log(f"benchmark failed; logs kept in {run_dir}")
            raise
        report = render(args, machine_info(), pg, fr, command)
        write_section(args.output, report)
        shutil.rmtree(run_dir, ignore_errors=True)
        log(f"wrote {args.output}")
        print(report)

    if "models" in sections:
        if not os.access(args.throughput_bin, os.X_OK):
            sys.exit(f"{args.throughput_bin} not found: cargo build --release -p freshet-models --example throughput")
        run_dir = tempfile.mkdtemp(prefix="models-", dir=args.workdir)
        os.chmod(run_dir, 0o755)
        try:
            res = bench_models(tools, args, run_dir)
        except Exception:
            log(f"model benchmark failed; logs kept in {run_dir}")
            raise
        report = render_models(args, machine_info(), res, command)
        write_section(args.output, report, MODELS_BEGIN_MARK, MODELS_END_MARK)
        shutil.rmtree(run_dir, ignore_errors=True)
        log(f"wrote {args.output}")
        print(report)


if __name__ == "__main__":
    main()
