"""Patient search with a million patients: the LIS against a bare Flask app running the same
SQL, in one run, plus the SQL's own time per query shape.

    .venv/bin/python bench/search.py --reuse            # reuse lis_bench_search if it is there
    .venv/bin/python bench/search.py --reuse --duration 10 --shape-seconds 3   # a quicker look
    .venv/bin/python bench/search.py --reuse --sql-only     # only the SQL times (steps 1-4)

Target: "Patient search with 1,000,000 patients loaded: p95 ≤ 30 ms server time, throughput
≥ 0.6× a bare Flask app running the same SQL in the same run."

1. Database `lis_bench_search`: migrated and seeded through the app, then 1,000,000
   patients COPYed into the demo lab (bench/patients_1m.py; ~2–4 minutes, kept with --reuse).
2. Queries drawn from the loaded patients, by kind: MRN, mobile typed in various formats,
   full names, given-name beginnings, surnames alone, 2-letter beginnings, misspelt names
   (Laxmi for Lakshmi, typing slips).
3. Starts the LIS under `flask lis up`'s gunicorn command line (bench/servers.py), logs
   demo.reception in, and records, in-process with the same cookie and `HX-Request: true`,
   the SQL each query's request sends (bench/sqlcapture.py's approach).
4. SQL time per query shape (≥ --per-kind queries of each kind): each statement's time in
   the app's driver while recording, and EXPLAIN (ANALYZE) of the same statement run once
   more on one connection; the slowest statement of each shape is kept with its plan.
5. Starts bench/search_bare_app.py (bench/bare_app.py replaying the recording, keyed by q)
   under the same gunicorn command line.
6. Throughput: wrk -c8 with bench/search_wrk.lua, a random query of the mix per request,
   `HX-Request: true` (the fragment the desk's search box gets), LIS and bare in alternating
   rounds, CPU per request sampled. Any answer but 200 voids the run.
7. Request time: wrk -c1 per query kind and for the mix, LIS and bare (server time plus
   loopback), and the LIS's own duration_ms from its access log.

Writes bench/results/search.json; method and figures in docs/PERFORMANCE.md.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR.parent) not in sys.path:
    sys.path.insert(1, str(BENCH_DIR.parent))  # the project, after bench/ (both have a run.py)

import psycopg  # noqa: E402

import database  # noqa: E402
import indian_names  # noqa: E402
import loadgen  # noqa: E402
import patients_1m  # noqa: E402
import run as bench_run  # noqa: E402  (bench/run.py: lis_env, PASSWORD, machine, source_version)
import servers  # noqa: E402
import sessions  # noqa: E402
import sqlcapture  # noqa: E402

RESULTS = BENCH_DIR / "results" / "search.json"
WRK_SCRIPT = BENCH_DIR / "search_wrk.lua"
SEARCH_PATH = "/reception/patients"
USER = "demo.reception"
TARGET_P95_MS = 30.0
TARGET_RATIO = 0.6
WARMUP_SECONDS = 3

# Share of each kind in the mixed load: a desk mostly types a mobile number or a name.
MIX = {"mrn": 0.20, "mobile": 0.30, "name_full": 0.15, "name_first": 0.10, "name_surname": 0.08,
       "name_prefix2": 0.05, "name_misspelt": 0.12}
KINDS = list(MIX)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true",
                        help="reuse lis_bench_search when it already holds this dataset (else build it)")
    parser.add_argument("--drop", action="store_true", help="drop lis_bench_search at the end")
    parser.add_argument("--per-kind", type=int, default=300, help="queries of each kind (≥ 300 for the SQL p95)")
    parser.add_argument("--duration", type=int, default=20, help="seconds of mixed load per app (-c CONNECTIONS)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating LIS/bare rounds the duration is split in")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shape-seconds", type=int, default=8, help="seconds of -c1 load per kind and app")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sql-only", action="store_true",
                        help="record and time the SQL only (no wrk phases): a re-run when the machine is quieter")
    return parser.parse_args()


# --- the queries ------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    kind: str
    q: str

    @property
    def path(self) -> str:
        return f"{SEARCH_PATH}?q={quote(self.q, safe='')}"


def _national(mobile: str) -> str:
    return mobile.removeprefix("+91")


MOBILE_FORMATS = (
    lambda d: d, lambda d: f"{d[:5]} {d[5:]}", lambda d: f"+91 {d[:5]} {d[5:]}", lambda d: f"+91-{d[:5]}-{d[5:]}",
    lambda d: f"0{d}", lambda d: f"+91{d}", lambda d: f"(+91) {d[:5]}-{d[5:]}", lambda d: f"91 {d[:5]} {d[5:]}",
    lambda d: f"0{d[:5]} {d[5:]}", lambda d: f"{d[:3]} {d[3:6]} {d[6:]}",
)


def _typo(rng: random.Random, word: str) -> str:
    """A typing slip: a letter dropped, two swapped or one doubled (not the first letter)."""
    i = rng.randrange(1, len(word) - 1)
    slip = rng.choice(("drop", "swap", "double"))
    if slip == "drop":
        return word[:i] + word[i + 1:]
    if slip == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word[:i] + word[i] + word[i:]


def _case(rng: random.Random, text: str) -> str:
    return rng.choice((text, text, text.lower(), text.upper() if len(text) <= 3 else text.lower()))


def sample_patients(url: str, count: int, rng: random.Random) -> list[tuple[str, str, str]]:
    """(full_name, mrn, mobile) of `count` patients picked at random from the loaded ones."""
    with psycopg.connect(url) as conn:
        low, high = conn.execute("SELECT min(id), max(id) FROM patient").fetchone()
        ids = rng.sample(range(low, high + 1), min(count, high - low + 1))
        rows = conn.execute("SELECT full_name, mrn, mobile FROM patient WHERE id = ANY(%s) ORDER BY id",
                            (ids,)).fetchall()
    return rows


def make_queries(url: str, per_kind: int, seed: int) -> dict[str, list[Query]]:
    """per_kind queries of every kind, drawn from the patients in the database."""
    from app.services.identifiers import normalize_mobile

    rng = random.Random(seed)
    people = sample_patients(url, per_kind * 12, rng)
    rng.shuffle(people)
    out: dict[str, list[Query]] = {kind: [] for kind in KINDS}

    def add(kind: str, q: str) -> None:
        if len(out[kind]) < per_kind and len(q.strip()) >= 2:
            out[kind].append(Query(kind, q))

    for full_name, mrn, mobile in people:
        words = [w for w in full_name.split() if not w.endswith(".")]  # no initials
        given, surname = words[0], words[-1]
        add("mrn", mrn)
        q = rng.choice(MOBILE_FORMATS)(_national(mobile))
        if normalize_mobile(q) != mobile:
            raise RuntimeError(f"{q!r} does not normalize to {mobile}")
        add("mobile", q)
        add("name_full", rng.choice((full_name, full_name.lower(), f"{given} {surname}")))
        add("name_first", _case(rng, given[:rng.randint(3, max(3, min(6, len(given))))]))
        add("name_surname", _case(rng, surname))
        add("name_prefix2", _case(rng, rng.choice((given, surname))[:2]))
        variant_given, variant_surname = indian_names.VARIANTS.get(given), indian_names.VARIANTS.get(surname)
        if variant_given or variant_surname:
            misspelt = (f"{rng.choice(variant_given) if variant_given else given} "
                        f"{rng.choice(variant_surname) if variant_surname else surname}")
            add("name_misspelt", misspelt)
        elif len(given) >= 5 and rng.random() < 0.5:
            add("name_misspelt", f"{_typo(rng, given)} {surname}")
        if all(len(v) >= per_kind for v in out.values()):
            break
    short = {kind: len(v) for kind, v in out.items() if len(v) < per_kind}
    if short:
        raise RuntimeError(f"not enough queries of some kinds: {short}")
    return out


def mixed(queries: dict[str, list[Query]], size: int, rng: random.Random) -> list[Query]:
    """A list of `size` queries with the kinds in MIX proportions."""
    kinds = rng.choices(KINDS, [MIX[k] for k in KINDS], k=size)
    return [rng.choice(queries[kind]) for kind in kinds]


# --- recording the SQL each search sends ---------------------------------------------------


def statement_shape(sql: str) -> str:
    """Which query a statement is: the user lookup (Flask-Login), or one of search's (the
    name search by word, migration 0007; name_knn is the nearest-neighbour scan before it)."""
    if "FROM app_user" in sql:
        return "user"
    if "FROM name_word" in sql:
        if "<<->" in sql:
            return "name_words"  # the dictionary words nearest to each typed word (KNN)
        return "name_slips" if "ANY" in sql.upper() else "name_short"  # one slip away; 1–2 letter words
    if "FROM patient_word" in sql:
        return "name_newest" if "LATERAL" in sql.upper() else "name_every_word"  # one typed word; several
    if "<<->" in sql:
        return "name_knn"
    if re.search(r"patient\.id IN", sql):
        return "name_rows"  # the patients found, by id
    if re.search(r"patient\.name_search\s*>=", sql):
        return "name_prefix"  # under 3 letters: names beginning with them
    if re.search(r"patient\.mrn\s*=", sql):
        return "mrn"
    if re.search(r"patient\.mobile\s*=", sql):
        return "mobile"
    if " LIKE " in sql.upper():
        return "name_like"
    return "other"


def record_searches(env: dict[str, str], cookie: str, paths: list[str]) -> dict[str, dict]:
    """{path: {"statements": [(sql, params)…], "statement_ms": […], "size": bytes, "results": rows
    shown}} for one GET of each path, as the desk's search box sends it (HX-Request: true).
    statement_ms is each statement's time in the driver (cursor.execute, which receives the
    whole result), on the app's own pooled connection."""
    from sqlalchemy import event

    from app import create_app
    from app.extensions import db
    from config import Config

    app = create_app(Config.from_env(dict(env, LIS_LOG_LEVEL="WARNING")))
    recorded: list[tuple[str, object]] = []
    timings: list[float] = []
    started = [0.0]  # one request at a time, in this thread

    def before(_conn, _cursor, statement, parameters, _context, _executemany):  # type: ignore[no-untyped-def]
        recorded.append((statement, parameters))
        started[0] = time.perf_counter()

    def after(*_args):  # type: ignore[no-untyped-def]
        timings.append((time.perf_counter() - started[0]) * 1000)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    pages = {}
    try:
        client = app.test_client()
        client.set_cookie(sessions.COOKIE_NAME, cookie)
        for n, path in enumerate(paths, start=1):
            recorded.clear()
            timings.clear()
            response = client.get(path, headers={"User-Agent": sessions.USER_AGENT, "HX-Request": "true"})
            text = response.get_data(as_text=True)
            if response.status_code != 200 or "<html" in text[:200].lower():
                raise RuntimeError(f"recording {path}: {response.status_code}, not the results fragment: {text[:200]}")
            writes = [sql for sql, _ in recorded if not sql.lstrip().upper().startswith(("SELECT", "WITH"))]
            if writes:
                raise RuntimeError(f"{path} writes on GET: {writes[0][:80]}")
            match = re.search(r"<caption>(\d+) match", text)
            pages[path] = {"statements": list(recorded), "statement_ms": list(timings), "size": len(response.data),
                           "results": int(match.group(1)) if match else 0}
            if n % 250 == 0:
                print(f"  {n}/{len(paths)}", flush=True)
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
        engine.dispose()
    return pages


# --- SQL time per shape -------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(p: float) -> float:  # nearest rank
        return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]

    return {"n": len(ordered), "p50": round(at(50), 3), "p95": round(at(95), 3), "p99": round(at(99), 3),
            "max": round(ordered[-1], 3), "mean": round(statistics.fmean(ordered), 3)}


def time_sql(url: str, pages: dict[str, dict], queries: dict[str, list[Query]]) -> dict:
    """Each search's statements (not the user lookup): "server" = EXPLAIN (ANALYZE, TIMING
    OFF)'s planning + execution time, run once more on one connection after the recording
    warmed the cache; "driver" = the statement's time in the app's driver while recording
    (loopback and result transfer included). Per query kind (a search's statements added
    up) and per statement shape; the slowest statement of each shape is kept with its plan."""
    by_kind = {k: {"server": [], "driver": []} for k in queries}
    by_shape: dict[str, dict[str, list[float]]] = {}
    slowest: dict[str, tuple[float, str, object, str]] = {}
    shapes_per_kind: dict[str, dict[str, int]] = {k: {} for k in queries}
    with psycopg.connect(url, autocommit=True) as conn:
        for kind, kind_queries in queries.items():
            for q in kind_queries:
                page = pages[q.path]
                server_total = driver_total = 0.0
                shape_key = []
                for (sql, params), driver in zip(page["statements"], page["statement_ms"]):
                    shape = statement_shape(sql)
                    if shape == "user":
                        continue
                    shape_key.append(shape)
                    plan = conn.execute("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + sql, params,
                                        prepare=False).fetchone()[0][0]
                    server = plan["Planning Time"] + plan["Execution Time"]
                    server_total += server
                    driver_total += driver
                    times = by_shape.setdefault(shape, {"server": [], "driver": []})
                    times["server"].append(server)
                    times["driver"].append(driver)
                    if server > slowest.get(shape, (-1.0,))[0]:
                        slowest[shape] = (server, sql, params, q.q)
                key = "+".join(shape_key) or "none"
                shapes_per_kind[kind][key] = shapes_per_kind[kind].get(key, 0) + 1
                by_kind[kind]["server"].append(server_total)
                by_kind[kind]["driver"].append(driver_total)
        plans = {}
        for shape, (server, sql, params, typed) in slowest.items():
            text = "\n".join(r[0] for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params, prepare=False))
            plans[shape] = {"typed": typed, "ms": round(server, 2), "sql": sql, "plan": text}
    return {
        "by_kind": {k: {"server_ms": percentiles(v["server"]), "driver_ms": percentiles(v["driver"]),
                        "statement_shapes": shapes_per_kind[k]} for k, v in by_kind.items()},
        "by_shape": {s: {"server_ms": percentiles(v["server"]), "driver_ms": percentiles(v["driver"])}
                     for s, v in by_shape.items()},
        "slowest": plans,
    }


# --- load ---------------------------------------------------------------------------------


def write_paths(path: Path, queries: list[Query]) -> Path:
    path.write_text("\n".join(q.path for q in queries) + "\n")
    return path


def run_wrk(server: servers.Server, paths_file: Path, *, connections: int, threads: int, seconds: int,
            cookie: str | None) -> dict:
    argv = [loadgen.wrk_path(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
            "-s", str(WRK_SCRIPT), "-H", f"User-Agent: {sessions.USER_AGENT}", "-H", "HX-Request: true"]
    if cookie:
        argv += ["-H", f"Cookie: {sessions.COOKIE_NAME}={cookie}"]
    argv += [server.url, "--", str(paths_file)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no report:\n{out}")
    result = json.loads(line[len("BENCH_JSON "):])
    result["rps"] = round(result["requests"] / result["duration_s"], 1)
    trouble = loadgen.problems(result)
    if trouble:
        raise RuntimeError(f"{server.name}: " + "; ".join(trouble))
    return result


class AccessLog:
    """The LIS's JSON access log (in gunicorn's output file): duration_ms of the search
    requests written since the last read, as the app itself measured them."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = path.stat().st_size

    def search_durations(self) -> list[float]:
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            data = log.read()
        self.offset += len(data)
        found = []
        for line in data.decode("utf-8", "replace").splitlines():
            if '"reception.patient_search"' not in line:
                continue
            try:
                record = json.loads(line[line.index("{"):])
            except ValueError:
                continue
            if record.get("endpoint") == "reception.patient_search" and "duration_ms" in record:
                found.append(float(record["duration_ms"]))
        return found


@dataclass
class Apps:
    lis: servers.Server
    bare: servers.Server
    cookie: str
    database_url: str
    log: AccessLog

    def each(self) -> list[tuple[str, servers.Server, str | None]]:
        return [("lis", self.lis, self.cookie), ("bare", self.bare, None)]


def throughput(apps: Apps, paths_file: Path, args: argparse.Namespace) -> dict:
    """The mixed load at -c CONNECTIONS, LIS and bare alternating; CPU per request."""
    seconds = max(1, round(args.duration / args.rounds))
    for _, server, cookie in apps.each():
        run_wrk(server, paths_file, connections=args.connections, threads=args.threads, seconds=WARMUP_SECONDS,
                cookie=cookie)
    rounds: dict[str, list[dict]] = {"lis": [], "bare": []}
    peaks = {"lis": servers.RssPeak(), "bare": servers.RssPeak()}
    for _ in range(args.rounds):
        for name, server, cookie in apps.each():
            backends = database.backend_pids(apps.database_url)
            with servers.ProcessSampler(server.proc.pid, peaks[name], backends) as sampler:
                result = run_wrk(server, paths_file, connections=args.connections, threads=args.threads,
                                 seconds=seconds, cookie=cookie)
            result["cpu_s"] = {"app": round(sampler.app_cpu.seconds, 3), "postgres": round(sampler.db_cpu.seconds, 3)}
            result["load_average"] = round(os.getloadavg()[0], 2)
            rounds[name].append(result)
    apps.log.search_durations()  # skip these in the access log
    combined = {name: _combine(rounds[name]) for name in rounds}
    for name in combined:
        combined[name]["rss"] = peaks[name].as_dict()
    combined["ratio"] = round(combined["lis"]["rps"] / combined["bare"]["rps"], 3)
    cpu = {name: sum(combined[name]["cpu_ms_per_request"].values()) for name in ("lis", "bare")}
    combined["cpu_ratio"] = round(cpu["bare"] / cpu["lis"], 3) if cpu["lis"] else None
    return combined


def _combine(rounds: list[dict]) -> dict:
    requests = sum(r["requests"] for r in rounds)
    seconds = sum(r["duration_s"] for r in rounds)
    latency = {key: round(sum(r["latency_ms"][key] for r in rounds) / len(rounds), 2)
               for key in ("mean", "p50", "p95", "p99")}
    latency["max"] = max(r["latency_ms"]["max"] for r in rounds)
    cpu = {key: round(1000 * sum(r["cpu_s"][key] for r in rounds) / requests, 3) for key in ("app", "postgres")}
    return {"rps": round(requests / seconds, 1), "requests": requests, "duration_s": round(seconds, 2),
            "latency_ms": latency, "cpu_ms_per_request": cpu, "rounds": rounds}


def request_times(apps: Apps, files: dict[str, Path], seconds: int) -> dict:
    """wrk -c1 for each kind and for the mix: the request time with nothing queued, for
    both apps, and the LIS's own measure of it (access log duration_ms)."""
    out = {}
    for kind, paths_file in files.items():
        row = {}
        for name, server, cookie in apps.each():
            apps.log.search_durations()
            result = run_wrk(server, paths_file, connections=1, threads=1, seconds=seconds, cookie=cookie)
            row[name] = {"rps": result["rps"], "requests": result["requests"], "latency_ms": result["latency_ms"]}
            if name == "lis":
                row["lis_in_app_ms"] = percentiles(apps.log.search_durations())
        out[kind] = row
        lis, bare, app = row["lis"]["latency_ms"], row["bare"]["latency_ms"], row["lis_in_app_ms"]
        print(f"{kind:<15} {lis['p50']:>8.1f} {lis['p95']:>8.1f} {lis['p99']:>8.1f} {app.get('p95', 0):>10.1f} "
              f"{bare['p50']:>8.1f} {bare['p95']:>8.1f} {bare['p99']:>8.1f}", flush=True)
    return out


# --- report -------------------------------------------------------------------------------


def print_sql(sql: dict) -> None:
    print(f"{'kind':<15} {'n':>4} {'SQL p50':>8} {'SQL p95':>8} {'SQL p99':>8} {'max':>8}   "
          f"{'drv p50':>8} {'drv p95':>8}   statements (shape: count)")
    for kind, row in sql["by_kind"].items():
        s, w = row["server_ms"], row["driver_ms"]
        shapes = ", ".join(f"{k}: {v}" for k, v in row["statement_shapes"].items())
        print(f"{kind:<15} {s['n']:>4} {s['p50']:>8.2f} {s['p95']:>8.2f} {s['p99']:>8.2f} {s['max']:>8.2f}   "
              f"{w['p50']:>8.2f} {w['p95']:>8.2f}   {shapes}")
    print("per statement shape:")
    for shape, row in sql["by_shape"].items():
        s, w = row["server_ms"], row["driver_ms"]
        print(f"  {shape:<13} {s['n']:>4} {s['p50']:>8.2f} {s['p95']:>8.2f} {s['p99']:>8.2f} {s['max']:>8.2f}   "
              f"{w['p50']:>8.2f} {w['p95']:>8.2f}")


def verdict(sql: dict, times: dict, load: dict) -> dict:
    worst_kind = max(times, key=lambda k: times[k]["lis"]["latency_ms"]["p95"])
    worst_shape = max(sql["by_shape"], key=lambda s: sql["by_shape"][s]["server_ms"]["p95"])
    return {
        "p95_request_mix_ms": times["mix"]["lis"]["latency_ms"]["p95"],
        "p95_in_app_mix_ms": times["mix"]["lis_in_app_ms"].get("p95"),
        "p95_ok": times["mix"]["lis"]["latency_ms"]["p95"] <= TARGET_P95_MS,
        "worst_kind": worst_kind, "worst_kind_p95_ms": times[worst_kind]["lis"]["latency_ms"]["p95"],
        "kinds_over_target": [k for k in times if times[k]["lis"]["latency_ms"]["p95"] > TARGET_P95_MS],
        "worst_sql_shape": worst_shape, "worst_sql_shape_p95_ms": sql["by_shape"][worst_shape]["server_ms"]["p95"],
        "sql_shapes_over_target": [s for s in sql["by_shape"] if sql["by_shape"][s]["server_ms"]["p95"] > TARGET_P95_MS],
        "ratio": load["ratio"], "ratio_ok": load["ratio"] >= TARGET_RATIO,
    }


def print_verdict(judged: dict) -> None:
    ok = {True: "met", False: "NOT met"}
    print(f"p95 ≤ {TARGET_P95_MS:.0f} ms (LIS, -c1, query mix): {ok[judged['p95_ok']]} "
          f"({judged['p95_request_mix_ms']:.1f} ms request, {judged['p95_in_app_mix_ms']} ms in the app); "
          f"kinds over: {', '.join(judged['kinds_over_target']) or 'none'}; "
          f"SQL shapes over: {', '.join(judged['sql_shapes_over_target']) or 'none'}")
    print(f"Throughput ≥ {TARGET_RATIO}× bare: {ok[judged['ratio_ok']]} ({judged['ratio']:.2f})")


def main() -> None:
    args = parse_args()
    loadgen.wrk_path()
    started, info = time.strftime("%Y-%m-%dT%H:%M:%S%z"), bench_run.machine()
    server_url, redis_url = database.server_urls()
    with tempfile.TemporaryDirectory(prefix="lis-search-bench-") as tmp_name:
        tmp = Path(tmp_name)

        def env_for(url: str) -> dict[str, str]:
            return bench_run.lis_env(url, redis_url, tmp / "instance")

        url = patients_1m.ensure_dataset(server_url, env_for, patients=args.patients, reuse=args.reuse,
                                         password=bench_run.PASSWORD)
        try:
            report = measure(args, url, env_for(url), tmp)
        finally:
            if args.drop:
                patients_1m.drop(server_url)
    report.update(started=started, machine=info, source=bench_run.source_version(),
                  load_average_at_end=[round(x, 2) for x in os.getloadavg()])
    results = RESULTS.with_name("search-sql.json") if args.sql_only else RESULTS
    results.parent.mkdir(exist_ok=True)
    results.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nWritten to {results.relative_to(BENCH_DIR.parent)}")


def measure(args: argparse.Namespace, url: str, env: dict[str, str], tmp: Path) -> dict:
    rng = random.Random(args.seed)
    queries = make_queries(url, args.per_kind, args.seed)
    mix = mixed(queries, 3000, rng)
    files = {kind: write_paths(tmp / f"{kind}.txt", qs) for kind, qs in queries.items()}
    files["mix"] = write_paths(tmp / "mix.txt", mix)
    examples = {kind: [q.q for q in qs[:6]] for kind, qs in queries.items()}
    for kind, shown in examples.items():
        print(f"  {kind:<14} e.g. " + " | ".join(shown))
    metrics = {name: tmp / f"{name}-prometheus" for name in ("lis", "bare")}
    for path in metrics.values():
        path.mkdir()
    with servers.gunicorn("lis", "wsgi:app", dict(env, PROMETHEUS_MULTIPROC_DIR=str(metrics["lis"])), tmp) as lis:
        cookie = sessions.login(lis.url, USER, bench_run.PASSWORD, "/reception/")
        all_paths = sorted({q.path for qs in queries.values() for q in qs})
        print(f"Recording the SQL of {len(all_paths)} searches (in-process, HX-Request: true)…", flush=True)
        pages = record_searches(env, cookie, all_paths)
        recording = tmp / "search.pickle"
        sqlcapture.save(recording, pages)
        print(f"\nSQL time per query kind, ms (SQL = EXPLAIN ANALYZE planning + execution, one connection; "
              f"drv = in the app's driver while recording); load average {os.getloadavg()[0]:.2f}", flush=True)
        sql = time_sql(url, pages, queries)
        print_sql(sql)
        results_shown = {kind: percentiles([pages[q.path]["results"] for q in qs]) for kind, qs in queries.items()}
        if args.sql_only:
            return {"patients": args.patients, "database": patients_1m.SEARCH_DB, "per_kind": args.per_kind,
                    "examples": examples, "results_shown": results_shown, "sql": sql, "sql_only": True}
        bare_env = dict(env, PROMETHEUS_MULTIPROC_DIR=str(metrics["bare"]), BENCH_PAGES=str(recording))
        with servers.gunicorn("bare", "search_bare_app:app", bare_env, tmp, pythonpath=BENCH_DIR) as bare:
            apps = Apps(lis, bare, cookie, url, AccessLog(lis.log_path))
            print(f"\nRequest time, wrk -t1 -c1, {args.shape_seconds} s per kind and app, ms "
                  f"(load average {os.getloadavg()[0]:.2f})")
            print(f"{'kind':<15} {'LIS p50':>8} {'LIS p95':>8} {'LIS p99':>8} {'in-app p95':>10} "
                  f"{'bare p50':>8} {'bare p95':>8} {'bare p99':>8}")
            # Warm both up (the first requests of a worker import and compile).
            for _, server, c in apps.each():
                run_wrk(server, files["mix"], connections=2, threads=1, seconds=WARMUP_SECONDS, cookie=c)
            times = request_times(apps, files, args.shape_seconds)
            print(f"\nThroughput, query mix, wrk -t{args.threads} -c{args.connections}, {args.duration} s per app "
                  f"in {args.rounds} alternating rounds (load average {os.getloadavg()[0]:.2f})", flush=True)
            load = throughput(apps, files["mix"], args)
    for name in ("lis", "bare"):
        r = load[name]
        print(f"  {name:<5} {r['rps']:>7.1f} req/s   p50 {r['latency_ms']['p50']:.1f}  p95 {r['latency_ms']['p95']:.1f}  "
              f"p99 {r['latency_ms']['p99']:.1f} ms   CPU/request app {r['cpu_ms_per_request']['app']:.2f} ms, "
              f"PostgreSQL {r['cpu_ms_per_request']['postgres']:.2f} ms")
    print(f"  ratio {load['ratio']:.2f} (CPU ratio {load['cpu_ratio']})\n")
    judged = verdict(sql, times, load)
    print_verdict(judged)
    for shape, slow in sql["slowest"].items():
        print(f"\nSlowest {shape} statement ({slow['ms']} ms, typed {slow['typed']!r}):\n{slow['plan']}")
    return {
        "patients": args.patients, "database": patients_1m.SEARCH_DB, "mix": MIX, "per_kind": args.per_kind,
        "examples": examples, "results_shown": results_shown,
        "load": {"tool": "wrk", "threads": args.threads, "connections": args.connections, "duration_s": args.duration,
                 "rounds": args.rounds, "shape_seconds": args.shape_seconds},
        "gunicorn": servers.gunicorn_argv("wsgi:app", "127.0.0.1:PORT")[1:],
        "sql": sql, "request_times": times, "throughput": load, "verdict": judged,
    }


if __name__ == "__main__":
    main()
