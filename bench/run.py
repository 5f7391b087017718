"""Page throughput of the LIS against a bare Flask app doing the same queries, in one run.

    .venv/bin/python bench/run.py [--duration 10] [--connections 8] [--threads 1]
                                  [--rounds 5] [--audit-rows 0] [--keep-db]

Creates a fresh `lis_bench` database, migrates and seeds it, starts the LIS and the bare
baseline (bench/bare_app.py) under the same gunicorn command line, logs the demo users in,
then for each page warms both apps up and loads them with wrk in alternating rounds. Prints
req/s, the LIS/bare ratio, p95 latency, CPU time per request and the LIS's memory under
load; writes everything to bench/results/latest.json. Method and figures:
docs/PERFORMANCE.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))  # the project: config, app

import database  # noqa: E402
import loadgen  # noqa: E402
import servers  # noqa: E402
import sessions  # noqa: E402
import sqlcapture  # noqa: E402

RESULTS = BENCH_DIR / "results" / "latest.json"
PASSWORD = "bench-Password-2024"
WARMUP_SECONDS = 2
# The done-when: dashboards at ≥ 0.6× the bare baseline, web RSS ≤ 150 MB.
MIN_DASHBOARD_RATIO = 0.6
MAX_WORKER_RSS_MB = 150


@dataclass(frozen=True)
class Target:
    page: str
    path: str
    username: str | None  # None: anonymous
    marker: str  # text the page must contain, checked before measuring


TARGETS = [
    Target("login", "/login", None, 'name="csrf_token"'),
    Target("admin dashboard", "/admin/", "demo.admin", "Administration"),
    Target("reception desk", "/reception/", "demo.reception", "Reception desk"),
    Target("technician dashboard", "/technician/", "demo.technician", "Laboratory floor"),
    Target("pathologist dashboard", "/pathologist/", "demo.pathologist", "Verification"),
    Target("billing dashboard", "/billing/", "demo.billing", "Billing"),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per page and app")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (the machine has 2 cores)")
    # Short rounds, alternated: a machine whose speed drifts (other tenants of the host)
    # then slows both apps alike instead of whichever happened to run in the slow spell.
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternate LIS and bare this many times per page (duration is split)")
    parser.add_argument("--audit-rows", type=int, default=0,
                        help="pad the audit trail with this many rows first (a lab some months in)")
    parser.add_argument("--keep-db", action="store_true", help="do not drop lis_bench afterwards")
    parser.add_argument("--only", nargs="+", metavar="PATH",
                        help="measure only these pages (e.g. /reception/); for a closer look at one")
    return parser.parse_args()


def lis_env(database_url: str, redis_url: str, instance: Path) -> dict[str, str]:
    """Production settings, except plain-http cookies and no proxy in front (wrk talks to
    gunicorn directly), and a login limit that the setup's logins cannot reach."""
    return dict(
        os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, SECRET_KEY=secrets.token_urlsafe(48),
        LIS_ENV="production", LIS_SECURE_COOKIES="0", LIS_PROXY_COUNT="0",
        LIS_LOGIN_RATE_LIMIT="100000 per minute", LIS_INSTANCE_PATH=str(instance), PYTHONUNBUFFERED="1",
    )


def log_in_everyone(lis: servers.Server) -> dict[str, str]:
    """username → session cookie value, for every target that needs a user."""
    return {t.username: sessions.login(lis.url, t.username, PASSWORD, t.path) for t in TARGETS if t.username}


def cookie_for(target: Target, cookies: dict[str, str]) -> str | None:
    return cookies[target.username] if target.username else None


@dataclass
class Contest:
    """The two servers under test and how to load them."""

    lis: servers.Server
    bare: servers.Server
    database_url: str
    load: loadgen.Load
    rounds: int
    statements: dict[str, int]  # per request, for each page path (the same on both apps)
    peaks: dict[str, servers.RssPeak] = field(
        default_factory=lambda: {"lis": servers.RssPeak(), "bare": servers.RssPeak()})

    def contenders(self, cookie: str | None) -> list[tuple[str, servers.Server, str | None]]:
        """(name, server, cookie): the bare app has no login, so no cookie."""
        return [("lis", self.lis, cookie), ("bare", self.bare, None)]


def marker(name: str, target: Target) -> str:
    """What proves the page is the right one: the LIS's own text, the bare app's page tag."""
    return target.marker if name == "lis" else f'data-page="{target.path}"'


def prepare(name: str, server: servers.Server, target: Target, cookie: str | None, load: loadgen.Load) -> int:
    """Check the page answers as expected, then warm it up. Returns its body size."""
    size = sessions.expect_page(server.url, target.path, cookie, marker(name, target))
    loadgen.run_wrk(server.url + target.path, load, cookie, duration=WARMUP_SECONDS)
    return size


def load_once(contest: Contest, name: str, server: servers.Server, target: Target, cookie: str | None) -> dict:
    """One wrk run while sampling the server's memory and CPU; figures that include failed
    requests are refused, not reported."""
    seconds = max(1, round(contest.load.duration / contest.rounds))
    backends = database.backend_pids(contest.database_url)
    with servers.ProcessSampler(server.proc.pid, contest.peaks[name], backends) as sampler:
        result = loadgen.run_wrk(server.url + target.path, contest.load, cookie, duration=seconds)
    trouble = loadgen.problems(result)
    if trouble:
        raise RuntimeError(f"{server.name} {target.path}: " + "; ".join(trouble))
    result["cpu_s"] = {"app": round(sampler.app_cpu.seconds, 3), "postgres": round(sampler.db_cpu.seconds, 3)}
    return result


def combine(rounds: list[dict], body_bytes: int) -> dict:
    """Rounds of one app on one page as one figure: req/s over the whole measured time,
    CPU milliseconds per request; latency percentiles as the mean of the rounds' (wrk
    cannot merge histograms)."""
    requests = sum(r["requests"] for r in rounds)
    seconds = sum(r["duration_s"] for r in rounds)
    latency = {key: round(sum(r["latency_ms"][key] for r in rounds) / len(rounds), 2)
               for key in ("mean", "p50", "p95", "p99")}
    latency["max"] = max(r["latency_ms"]["max"] for r in rounds)
    cpu_ms = {key: round(1000 * sum(r["cpu_s"][key] for r in rounds) / requests, 3) for key in ("app", "postgres")}
    return {"rps": round(requests / seconds, 1), "requests": requests, "duration_s": round(seconds, 2),
            "latency_ms": latency, "cpu_ms_per_request": cpu_ms, "body_bytes": body_bytes, "rounds": rounds}


def run_page(contest: Contest, target: Target, cookie: str | None) -> dict:
    """One page on the LIS and on the bare app in alternating rounds (LIS, bare, LIS, …),
    so a change in background load hits both figures alike rather than one of them."""
    sizes = {name: prepare(name, server, target, c, contest.load) for name, server, c in contest.contenders(cookie)}
    results: dict[str, list[dict]] = {"lis": [], "bare": []}
    for _ in range(contest.rounds):
        for name, server, server_cookie in contest.contenders(cookie):
            results[name].append(load_once(contest, name, server, target, server_cookie))
    lis, bare = (combine(results[name], sizes[name]) for name in ("lis", "bare"))
    cpu = {name: fig["cpu_ms_per_request"]["app"] + fig["cpu_ms_per_request"]["postgres"]
           for name, fig in (("lis", lis), ("bare", bare))}
    return {"page": target.page, "path": target.path, "statements": contest.statements[target.path],
            "lis": lis, "bare": bare,
            "ratio": round(lis["rps"] / bare["rps"], 3),
            # What the ratio would be if the server were CPU-bound and alone on the machine.
            "cpu_ratio": round(cpu["bare"] / cpu["lis"], 3) if cpu["lis"] else None}


def run_pages(contest: Contest, cookies: dict[str, str], only: list[str] | None = None) -> list[dict]:
    rows = []
    for target in TARGETS:
        if only and target.path not in only:
            continue
        row = run_page(contest, target, cookie_for(target, cookies))
        rows.append(row)
        print_row(row)
    return rows


TABLE_HEAD = f"{'page':<22} {'LIS req/s':>10} {'bare req/s':>11} {'ratio':>6} {'LIS p95 ms':>11} {'bare p95 ms':>12}"
CPU_HEAD = (f"{'CPU ms per request':<22} {'LIS app':>8} {'LIS pg':>7} {'bare app':>9} {'bare pg':>8} "
            f"{'CPU ratio':>10}")


def print_row(row: dict) -> None:
    print(f"{row['page']:<22} {row['lis']['rps']:>10.1f} {row['bare']['rps']:>11.1f} {row['ratio']:>6.2f} "
          f"{row['lis']['latency_ms']['p95']:>11.1f} {row['bare']['latency_ms']['p95']:>12.1f}", flush=True)


def print_cpu(rows: list[dict]) -> None:
    """Where the time goes: CPU per request in the app's processes and in PostgreSQL."""
    print(CPU_HEAD)
    for row in rows:
        lis, bare = row["lis"]["cpu_ms_per_request"], row["bare"]["cpu_ms_per_request"]
        print(f"{row['page']:<22} {lis['app']:>8.2f} {lis['postgres']:>7.2f} {bare['app']:>9.2f} "
              f"{bare['postgres']:>8.2f} {row['cpu_ratio'] or 0:>10.2f}")


def verdict(rows: list[dict], lis_rss: servers.RssPeak) -> dict:
    """The issue's two thresholds, judged on this run's figures."""
    dashboards = [r for r in rows if r["path"] != "/login"] or rows
    worst = min(dashboards, key=lambda r: r["ratio"])
    rss = lis_rss.as_dict()
    return {
        "dashboards_ratio_min": worst["ratio"], "dashboards_ratio_worst_page": worst["page"],
        "dashboards_cpu_ratio_min": min(r["cpu_ratio"] or 0 for r in dashboards),
        "dashboards_ratio_ok": worst["ratio"] >= MIN_DASHBOARD_RATIO,
        "max_worker_rss_mb": rss["max_worker_mb"], "rss_ok": rss["max_worker_mb"] <= MAX_WORKER_RSS_MB,
    }


def print_summary(peaks: dict[str, servers.RssPeak], judged: dict) -> None:
    for name, peak in peaks.items():
        rss = peak.as_dict()
        print(f"RSS under load, {name}: largest worker {rss['max_worker_mb']} MB, master {rss['master_mb']} MB, "
              f"master+workers {rss['max_total_mb']} MB ({rss['worker_processes_seen']} worker processes seen)")
    ok = {True: "met", False: "NOT met"}
    print(f"Dashboards ≥ {MIN_DASHBOARD_RATIO}× bare: {ok[judged['dashboards_ratio_ok']]} "
          f"(lowest {judged['dashboards_ratio_min']:.2f}, {judged['dashboards_ratio_worst_page']})")
    print(f"Worker RSS ≤ {MAX_WORKER_RSS_MB} MB: {ok[judged['rss_ok']]} ({judged['max_worker_rss_mb']} MB)")


def machine() -> dict:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def source_version() -> dict:
    """Which code was measured: the commit, and whether the app's files had local changes."""
    def git(*args: str) -> str | None:
        done = subprocess.run(["git", "-C", str(BENCH_DIR.parent), *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    changes = git("status", "--porcelain", "--", "app", "templates", "migrations", "config.py", "wsgi.py")
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "app_files_changed": bool(changes) if changes is not None else None}


def record_sql(env: dict[str, str], cookies: dict[str, str], tmp: Path) -> tuple[Path, dict[str, int]]:
    """Record each LIS page's SQL for the bare app to replay. Returns the recording's path
    and the number of statements per request of each page."""
    pages = sqlcapture.record_pages(env, [(t.path, cookie_for(t, cookies), t.marker) for t in TARGETS])
    path = tmp / "pages.pickle"
    sqlcapture.save(path, pages)
    counts = {page: len(recorded["statements"]) for page, recorded in pages.items()}
    print("SQL statements per request: " + ", ".join(f"{page} {n}" for page, n in counts.items()))
    return path, counts


def measure_all(args: argparse.Namespace, load: loadgen.Load, tmp: Path) -> tuple[list[dict], Contest]:
    """Prepare the database, start the LIS, log in, record its SQL, start the bare app with
    that recording, then load every page on both."""
    server_url, redis_url = database.server_urls()
    with database.fresh_database(server_url, keep=args.keep_db) as database_url:
        env = lis_env(database_url, redis_url, tmp / "instance")
        padding = f", {args.audit_rows} audit rows" if args.audit_rows else ""
        print(f"Preparing {database.BENCH_DB} (migrate, seed{padding})…", flush=True)
        database.migrate_and_seed(env, PASSWORD, args.audit_rows)
        metrics = {name: tmp / f"{name}-prometheus" for name in ("lis", "bare")}
        for path in metrics.values():
            path.mkdir()
        with servers.gunicorn("lis", "wsgi:app", dict(env, PROMETHEUS_MULTIPROC_DIR=str(metrics["lis"])),
                              tmp) as lis:
            cookies = log_in_everyone(lis)
            recording, statements = record_sql(env, cookies, tmp)
            bare_env = dict(env, PROMETHEUS_MULTIPROC_DIR=str(metrics["bare"]), BENCH_PAGES=str(recording))
            with servers.gunicorn("bare", "bare_app:app", bare_env, tmp, pythonpath=BENCH_DIR) as bare:
                contest = Contest(lis, bare, database_url, load, args.rounds, statements)
                print(f"wrk -t{load.threads} -c{load.connections}; per page and app {WARMUP_SECONDS} s warm-up, "
                      f"then {load.duration} s in {args.rounds} alternating rounds; {os.cpu_count()} CPUs, "
                      f"load average {[round(x, 2) for x in os.getloadavg()]}\n")
                print(TABLE_HEAD, flush=True)
                return run_pages(contest, cookies, args.only), contest


def write_results(report: dict) -> None:
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(f"\nWritten to {RESULTS.relative_to(BENCH_DIR.parent)}")


def main() -> None:
    args = parse_args()
    load = loadgen.Load(args.duration, args.connections, args.threads)
    loadgen.wrk_path()
    started, info = time.strftime("%Y-%m-%dT%H:%M:%S%z"), machine()
    with tempfile.TemporaryDirectory(prefix="lis-bench-") as tmp:
        rows, contest = measure_all(args, load, Path(tmp))
    judged = verdict(rows, contest.peaks["lis"])
    print()
    print_cpu(rows)
    print()
    print_summary(contest.peaks, judged)
    write_results({
        "started": started, "machine": info, "source": source_version(), "audit_rows": args.audit_rows,
        "load": {"tool": "wrk", "threads": load.threads, "connections": load.connections,
                 "duration_s": load.duration, "rounds": args.rounds, "warmup_s": WARMUP_SECONDS},
        "gunicorn": servers.gunicorn_argv("wsgi:app", "127.0.0.1:PORT")[1:],
        "pages": rows, "rss": {name: peak.as_dict() for name, peak in contest.peaks.items()}, "verdict": judged,
    })


if __name__ == "__main__":
    main()
