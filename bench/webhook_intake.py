"""Requests/s of POST /webhooks/razorpay, with the baseline measured in the same run.

    .venv/bin/python bench/webhook_intake.py [--duration 5] [--connections 8] [--bills 1500]

Two paths, each against the LIS and against a bare Flask app that does only the same HMAC
check over the raw body and one INSERT … ON CONFLICT into a one-table database:

- duplicate: one event id delivered again and again (Razorpay's retries). The LIS checks the
  signature, counts the delivery (INSERT … ON CONFLICT DO UPDATE deliveries+1), commits, sees
  the event processed and answers 200.
- new: every request a new event (payment_link.paid for a bill of its own), so the LIS does
  the whole intake: store and commit, lock the event, find the lab and the bill, lock the
  gateway payment and the bill, apply the payment (audited, receipt message queued), commit.

Both apps run under gunicorn with the supervisor's settings (bench/servers.py); wrk sends
pre-signed requests read from a file by a small Lua script (each request of the "new" file is
used once; the run says if wrk went round the file). The ratio LIS / bare is what everything
around the HMAC and the INSERT costs; on the new path that is the payment itself.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(ROOT))

LUA = r"""
local lines = {}
local counter = 0
local made = 0
function setup(thread)
  thread:set("id", made)
  made = made + 1
end
function init(args)
  for line in io.lines(args[1]) do lines[#lines + 1] = line end
  step = tonumber(args[2])
  counter = id
end
function request()
  local line = lines[(counter % #lines) + 1]
  counter = counter + step
  local eid, sig, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
  return wrk.format("POST", "/webhooks/razorpay", {["Content-Type"] = "application/json",
    ["X-Razorpay-Signature"] = sig, ["X-Razorpay-Event-Id"] = eid}, body)
end
function done(summary, latency, requests)
  io.write(string.format('{"requests":%d,"duration_us":%d,"status_errors":%d,"connect_errors":%d,"timeouts":%d,"p50_ms":%.2f,"p99_ms":%.2f}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect, summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def create_bare_app():  # type: ignore[no-untyped-def]
    """The baseline (gunicorn "webhook_intake:create_bare_app()"): HMAC check + one INSERT."""
    from flask import Flask, request
    from sqlalchemy import create_engine, text

    url = "postgresql+psycopg://" + os.environ["DATABASE_URL"].split("://", 1)[1]
    pool = int(os.environ.get("LIS_DB_POOL_SIZE", "5"))
    engine = create_engine(url, pool_pre_ping=True, pool_size=pool, max_overflow=pool)
    secret = os.environ["RAZORPAY_WEBHOOK_SECRET"].encode()
    insert = text("INSERT INTO bench_bare_event (event_id, body) VALUES (:event_id, :body) "
                  "ON CONFLICT (event_id) DO UPDATE SET deliveries = bench_bare_event.deliveries + 1")
    app = Flask("bare_webhooks")

    @app.post("/webhooks/razorpay")
    def hook():  # type: ignore[no-untyped-def]
        body = request.get_data(as_text=True)
        expected = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Razorpay-Signature", "")):
            return {"error": "signature"}, 400
        with engine.begin() as conn:
            conn.execute(insert, {"event_id": request.headers.get("X-Razorpay-Event-Id", ""), "body": body})
        return {"outcome": "stored"}

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        return "ok"

    return app


def write_requests(path: Path, items: list[tuple[str, str]]) -> None:
    from tests import providers_razorpay as rp

    with open(path, "w") as out:
        for body, event_id in items:
            out.write(f"{event_id}\t{rp.sign(body)}\t{body}\n")


def run_wrk(url: str, requests_file: Path, lua: Path, *, duration: int, connections: int, threads: int) -> dict:
    from loadgen import wrk_path  # bench/loadgen.py

    argv = [wrk_path(), f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(lua),
            url + "/webhooks/razorpay", "--", str(requests_file), str(threads)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["rps"] = round(result["requests"] / (result["duration_us"] / 1e6), 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--bills", type=int, default=1500, help="bills for the new-event path (one event each)")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(BENCH_DIR))
    import psycopg

    from bench import database, servers, webhook_storm
    from tests import providers_razorpay as rp

    server_url, redis_url = database.server_urls()
    redis_url = redis_url.rsplit("/", 1)[0] + f"/{webhook_storm.REDIS_DB}" if redis_url.startswith("redis://") else redis_url
    with tempfile.TemporaryDirectory(prefix="webhook-intake-") as tmp_name, \
            database.fresh_database(server_url, keep=args.keep_db, name="lis_bench_intake") as database_url:
        tmp = Path(tmp_name)
        env = webhook_storm.lis_env(database_url, redis_url, tmp / "instance")
        print(f"migrating, seeding the demo lab, making {args.bills} bills", flush=True)
        database.migrate_and_seed(env, webhook_storm.PASSWORD)
        org_code, bills = webhook_storm.make_bills(env, args.bills)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE bench_bare_event (id bigserial PRIMARY KEY, event_id varchar(64) UNIQUE, "
                         "body text, deliveries int NOT NULL DEFAULT 1, received_at timestamptz DEFAULT now())")
        lua = tmp / "webhook.lua"
        lua.write_text(LUA)
        new_lis, new_bare = tmp / "new_lis.tsv", tmp / "new_bare.tsv"
        items = []
        for _, number, total in bills:
            notes = {"org": org_code, "bill": number}
            pid, link = rp.new_id("pay"), rp.new_id("plink")
            body = rp.event("payment_link.paid", payment_entity=rp.payment(pid, amount=total, notes=notes),
                            link=rp.link_entity(link, amount=total, reference_id=number, notes=notes))
            items.append((body, rp.new_id("evt")))
        write_requests(new_lis, items)
        sample = items[0][0]
        write_requests(new_bare, [(sample, rp.new_id("evt")) for _ in range(60000)])
        dup_lis, dup_bare = tmp / "dup_lis.tsv", tmp / "dup_bare.tsv"
        write_requests(dup_lis, [(items[-1][0], items[-1][1])])
        write_requests(dup_bare, [(sample, "evt_BareDuplicate01")])
        results: dict[str, dict] = {}
        run = dict(duration=args.duration, connections=args.connections, threads=args.threads)
        with servers.gunicorn("lis", "wsgi:app", env, tmp) as lis:
            results["lis_new"] = run_wrk(lis.url, new_lis, lua, **run)
            results["lis_duplicate"] = run_wrk(lis.url, dup_lis, lua, **run)
        with servers.gunicorn("bare", "webhook_intake:create_bare_app()", env, tmp, pythonpath=BENCH_DIR) as bare:
            results["bare_new"] = run_wrk(bare.url, new_bare, lua, **run)
            results["bare_duplicate"] = run_wrk(bare.url, dup_bare, lua, **run)
        with psycopg.connect(database_url) as conn:
            applied = conn.execute("SELECT count(*) FROM payment WHERE mode = 'razorpay'").fetchone()[0]
            twice = conn.execute("SELECT count(*) FROM (SELECT gateway_payment_id FROM payment WHERE mode = 'razorpay' "
                                 "GROUP BY 1 HAVING count(*) > 1) x").fetchone()[0]
    print(f"\nPOST /webhooks/razorpay, wrk -t{args.threads} -c{args.connections} -d{args.duration}s "
          f"(gunicorn {servers.WEB_WORKERS} workers, as the supervisor runs it)")
    print(f"{'path':<10} {'LIS req/s':>10} {'bare req/s':>11} {'ratio':>6} {'LIS p50/p99 ms':>16} {'bare p50/p99 ms':>16}")
    for path in ("duplicate", "new"):
        lis_r, bare_r = results[f"lis_{path}"], results[f"bare_{path}"]
        print(f"{path:<10} {lis_r['rps']:>10} {bare_r['rps']:>11} {lis_r['rps'] / bare_r['rps']:>6.2f} "
              f"{lis_r['p50_ms']:>7.1f}/{lis_r['p99_ms']:<8.1f} {bare_r['p50_ms']:>7.1f}/{bare_r['p99_ms']:<8.1f}")
    problems = [f"{name}: {r['status_errors']} non-2xx, {r['connect_errors']} connect errors, {r['timeouts']} timeouts"
                for name, r in results.items() if r["status_errors"] or r["connect_errors"] or r["timeouts"]]
    if results["lis_new"]["requests"] > len(items):
        problems.append(f"lis_new went round its {len(items)} events (use more --bills): later ones were duplicates")
    print(f"gateway payments applied on the new path: {applied} (applied twice: {twice})")
    for p in problems:
        print("WARNING:", p)
    return 1 if twice else 0


if __name__ == "__main__":
    sys.exit(main())
