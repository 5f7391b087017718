"""A day of Razorpay webhooks, delivered the way Razorpay delivers them on a bad day.

    .venv/bin/python bench/webhook_storm.py [--payments 1000] [--times 10] [--restarts 2] [--threads 8]

Issue 6's reliability check: "Deliver each webhook of a 1,000-payment day ten times, in
shuffled order, while the web process is restarted twice: every bill ends with exactly the
right paid amount and no payment is applied twice."

1. A fresh database (lis_bench_webhooks; dropped afterwards unless --keep-db), migrated and
   seeded with the demo lab, and one bill per payment scenario through the order service.
2. The events of the day, signed with a real HMAC: UPI payment links paid (payment_link.paid,
   with payment.captured and order.paid for the same payment), UPI QR codes credited, UPI
   retries (payment.failed, then payment.captured for the same payment), links paid in two
   parts (payment_link.partially_paid then payment_link.paid), failures that stay failed.
3. gunicorn with the supervisor's command line (bench/servers.py); every event delivered
   `--times` times in one shuffled order from `--threads` client threads. Like Razorpay, a
   client retries on a refused connection, a timeout, 429 or 5xx.
4. Midway the web process is SIGKILLed (a crash, not a graceful stop) and started again,
   `--restarts` times.
5. Then from the database: each bill's paid amount against what its scenario paid, Payment
   rows per gateway payment id (all must be 1), events stored but unprocessed, exceptions.

Prints the counts; exits 1 on any mismatch.
"""
from __future__ import annotations

import argparse
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import requests  # noqa: E402

from bench import database, servers  # noqa: E402
from tests import providers_razorpay as rp  # noqa: E402

DB_NAME = "lis_bench_webhooks"
REDIS_DB = 13  # the test suite has 15, bench/run.py 14
PASSWORD = "bench-password-1"
SCENARIOS = (("link", 40), ("qr", 20), ("retry", 15), ("partial", 15), ("failed_only", 5), ("failed_then_link", 5))


@dataclass
class Plan:
    bills: dict[int, int] = field(default_factory=dict)  # bill id -> expected paid_paise
    payments: set[str] = field(default_factory=set)  # gateway payment ids that must be applied once
    events: list[tuple[str, str]] = field(default_factory=list)  # (body, event id)


def lis_env(database_url: str, redis_url: str, instance: Path) -> dict[str, str]:
    return dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, SECRET_KEY=secrets.token_urlsafe(48),
                LIS_ENV="production", LIS_SECURE_COOKIES="0", LIS_PROXY_COUNT="0", LIS_PDF_WARMUP="0",
                LIS_INSTANCE_PATH=str(instance), PYTHONUNBUFFERED="1", LIS_LOG_LEVEL="WARNING",
                RAZORPAY_WEBHOOK_SECRET=rp.WEBHOOK_SECRET, LIS_WEBHOOK_RATE_LIMIT="1000000 per minute")


def make_bills(env: dict[str, str], count: int) -> tuple[str, list[tuple[int, str, int]]]:
    """`count` bills of the demo lab through the order service: [(id, number, total)]."""
    from sqlalchemy import select

    from app import audit, create_app, security
    from app.extensions import db
    from app.models import LabTest, Organization
    from app.services import catalogue, orders, patients
    from config import Config

    app = create_app(Config.from_env(dict(env, LIS_LOG_LEVEL="WARNING")))
    with app.app_context():
        org = db.session.execute(select(Organization).where(Organization.code == "demo")).scalar_one()
        security.use_tenant(db.session, org.id)
        codes = list(db.session.execute(select(LabTest.code).where(LabTest.gst_rate == 0, LabTest.price_paise > 0,
                                                                     LabTest.active.is_(True), LabTest.orderable.is_(True))
                                        .order_by(LabTest.code).limit(12)).scalars())
        made = []
        with audit.acting_as(audit.AuditContext(actor_label="bench:webhook-storm", org_id=org.id)):
            branch = catalogue.main_branch()
            patient = patients.register({"name": "Storm Patient", "sex": "female", "age_years": 40,
                                         "mobile": "9876500000"}, branch_id=None, created_by_id=None, confirm_new=True)
            for n in range(count):
                _, bills = orders.create_order(patient, branch, orders.OrderRequest(codes=[codes[n % len(codes)]]),
                                               created_by_id=None, discount_limit_percent=0)
                made += [(b.id, b.number, b.total_paise) for b in bills]
                if n % 100 == 99:
                    db.session.commit()
            db.session.commit()
        code = org.code
        db.session.remove()
        db.engine.dispose()
    return code, made[:count]


def plan_day(org_code: str, bills: list[tuple[int, str, int]], rng: random.Random) -> Plan:
    """Each bill gets a scenario; every event it would produce, with its own event id."""
    plan = Plan()
    names, weights = zip(*SCENARIOS)
    for bill_id, number, total in bills:
        notes = {"org": org_code, "bill": number}
        kind = rng.choices(names, weights)[0]
        expected = total
        out: list[str] = []
        if kind in ("link", "failed_then_link"):
            if kind == "failed_then_link":  # a failed attempt with one id, then a good one with another
                out.append(rp.event("payment.failed", payment_entity=rp.payment(
                    amount=total, status="failed", notes=notes)))
            pid, order_id, link_id = rp.new_id("pay"), rp.new_id("order"), rp.new_id("plink")
            pay = rp.payment(pid, amount=total, order_id=order_id, notes=notes)
            out += [rp.event("payment_link.paid", payment_entity=pay, order=rp.order_entity(order_id, amount=total, notes=notes),
                             link=rp.link_entity(link_id, amount=total, reference_id=number, notes=notes, order_id=order_id)),
                    rp.event("payment.captured", payment_entity=pay),
                    rp.event("order.paid", payment_entity=pay, order=rp.order_entity(order_id, amount=total, notes=notes))]
            plan.payments.add(pid)
        elif kind == "qr":
            pid, qr_id = rp.new_id("pay"), rp.new_id("qr")
            pay = rp.payment(pid, amount=total, notes=notes)
            out += [rp.event("qr_code.credited", payment_entity=pay, qr=rp.qr_entity(qr_id, amount=total, notes=notes)),
                    rp.event("payment.captured", payment_entity=pay)]
            plan.payments.add(pid)
        elif kind == "retry":  # UPI retry in the payer's app: failed, then captured, same payment id
            pid, order_id = rp.new_id("pay"), rp.new_id("order")
            out += [rp.event("payment.failed", payment_entity=rp.payment(pid, amount=total, status="failed",
                                                                          order_id=order_id, notes=notes)),
                    rp.event("payment.captured", payment_entity=rp.payment(pid, amount=total, order_id=order_id,
                                                                            notes=notes)),
                    rp.event("order.paid", payment_entity=rp.payment(pid, amount=total, order_id=order_id, notes=notes),
                             order=rp.order_entity(order_id, amount=total, notes=notes))]
            plan.payments.add(pid)
        elif kind == "partial":
            link_id = rp.new_id("plink")
            first = max(100, total // 3)
            for name, amount, paid_so_far in (("payment_link.partially_paid", first, first),
                                              ("payment_link.paid", total - first, total)):
                pid = rp.new_id("pay")
                pay = rp.payment(pid, amount=amount, notes=notes)
                out += [rp.event(name, payment_entity=pay, link=rp.link_entity(
                            link_id, amount=total, amount_paid=paid_so_far, reference_id=number, notes=notes,
                            status="paid" if paid_so_far == total else "partially_paid")),
                        rp.event("payment.captured", payment_entity=pay)]
                plan.payments.add(pid)
        else:  # failed_only: the patient gave up; nothing is paid
            out.append(rp.event("payment.failed", payment_entity=rp.payment(amount=total, status="failed", notes=notes)))
            expected = 0
        plan.bills[bill_id] = expected
        plan.events += [(body, rp.new_id("evt")) for body in out]
    return plan


class Web:
    """The LIS under gunicorn on a fixed port, which the storm kills and starts again."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env, self.log_dir = {**servers.PROCESS_ENV, **env}, log_dir
        self.port = servers.free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = servers.gunicorn_argv("wsgi:app", f"127.0.0.1:{self.port}")
        self.starts += 1
        log = open(self.log_dir / f"web-{self.starts}.log", "wb")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        servers.Server("lis", self.proc, self.port, self.log_dir / f"web-{self.starts}.log").wait_healthy(90)

    def kill(self) -> None:
        """SIGKILL the whole process group: requests in flight die mid-transaction."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=25)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Tally:
    sent: int = 0  # HTTP attempts
    delivered: int = 0  # deliveries answered 2xx
    retried: int = 0
    refused: int = 0  # 4xx other than 429: must stay 0
    answers: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def deliver_all(web: Web, deliveries: list[tuple[str, str]], threads: int, restarts: int, tally: Tally) -> None:
    position = iter(range(len(deliveries)))
    take = threading.Lock()
    kill_at = [len(deliveries) * (k + 1) // (restarts + 1) for k in range(restarts)]

    def client() -> None:
        session = requests.Session()
        while True:
            with take:
                index = next(position, None)
            if index is None:
                return
            body, event_id = deliveries[index]
            headers = rp.headers(body, event_id=event_id)
            for attempt in range(600):
                with tally.lock:
                    tally.sent += 1
                try:
                    answer = session.post(web.url + "/webhooks/razorpay", data=body.encode(), headers=headers,
                                          timeout=30)
                    status = answer.status_code
                except requests.RequestException:
                    status = 0
                    session = requests.Session()
                with tally.lock:
                    tally.answers[status] += 1
                if 200 <= status < 300:
                    with tally.lock:
                        tally.delivered += 1
                    break
                if status and status < 500 and status != 429:
                    with tally.lock:
                        tally.refused += 1
                    break
                with tally.lock:
                    tally.retried += 1
                time.sleep(min(1.0, 0.05 * (attempt + 1)))  # Razorpay backs off too

    workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    for mark in kill_at:
        while tally.delivered < mark and any(w.is_alive() for w in workers):
            time.sleep(0.02)
        web.kill()
        print(f"  killed the web process after {tally.delivered} deliveries; starting it again", flush=True)
        time.sleep(0.5)
        web.start()
    for w in workers:
        w.join()


def check(database_url: str, plan: Plan) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        paid = dict(conn.execute("SELECT id, paid_paise FROM bill WHERE id = ANY(%s)", (list(plan.bills),)).fetchall())
        per_payment = dict(conn.execute("SELECT gateway_payment_id, count(*) FROM payment WHERE mode = 'razorpay' "
                                        "GROUP BY gateway_payment_id").fetchall())
        unprocessed, events, deliveries = conn.execute(
            "SELECT count(*) FILTER (WHERE processed_at IS NULL), count(*), coalesce(sum(deliveries), 0) "
            "FROM gateway_event WHERE signature_valid").fetchone()
        exceptions = conn.execute("SELECT count(*) FROM billing_exception").fetchone()[0]
    wrong_bills = sum(1 for bill_id, expected in plan.bills.items() if paid.get(bill_id) != expected)
    return {
        "bills": len(plan.bills),
        "bills_with_wrong_paid_amount": wrong_bills,
        "payments_expected": len(plan.payments),
        "payment_rows_for_expected_ids": sum(1 for p in plan.payments if per_payment.get(p)),
        "gateway_ids_with_more_than_one_payment": sum(1 for n in per_payment.values() if n > 1),
        "payments_missing": sum(1 for p in plan.payments if not per_payment.get(p)),
        "payments_not_expected": sum(1 for p in per_payment if p not in plan.payments),
        "events_stored": events,
        "events_unprocessed": unprocessed,
        "deliveries_recorded": deliveries,
        "exceptions_opened": exceptions,
    }


def run(*, payments: int, times: int, restarts: int, threads: int, seed: int = 6, db_name: str = DB_NAME,
        keep_db: bool = False, quiet: bool = False) -> dict[str, int]:
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    rng = random.Random(seed)
    server_url, redis_url = database.server_urls()
    redis_url = redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}" if redis_url.startswith("redis://") else redis_url
    with tempfile.TemporaryDirectory(prefix="webhook-storm-") as tmp, \
            database.fresh_database(server_url, keep=keep_db, name=db_name) as database_url:
        env = lis_env(database_url, redis_url, Path(tmp) / "instance")
        say(f"database {db_name}: migrating, seeding the demo lab, making {payments} bills")
        database.migrate_and_seed(env, PASSWORD)
        org_code, bills = make_bills(env, payments)
        plan = plan_day(org_code, bills, rng)
        deliveries = [item for item in plan.events for _ in range(times)]
        rng.shuffle(deliveries)
        say(f"{len(plan.events)} events for {len(plan.payments)} payments on {len(bills)} bills; "
            f"{len(deliveries)} deliveries ({times}x, shuffled), {threads} client threads, {restarts} restarts")
        web = Web(env, Path(tmp))
        tally = Tally()
        web.start()
        started = time.monotonic()
        try:
            deliver_all(web, deliveries, threads, restarts, tally)
        finally:
            elapsed = time.monotonic() - started
            web.stop()
        result = check(database_url, plan)
        result.update(deliveries_planned=len(deliveries), deliveries_acknowledged=tally.delivered,
                      http_attempts=tally.sent, retries=tally.retried, refused_4xx=tally.refused,
                      web_starts=web.starts, seconds=round(elapsed, 1))
        say("answers by status (0 = connection refused/reset):", dict(sorted(tally.answers.items())))
    return result


def failures(result: dict[str, int]) -> list[str]:
    bad = []
    for key in ("bills_with_wrong_paid_amount", "gateway_ids_with_more_than_one_payment", "payments_missing",
                "payments_not_expected", "events_unprocessed", "refused_4xx", "exceptions_opened"):
        if result[key]:
            bad.append(f"{key} = {result[key]}")
    if result["deliveries_acknowledged"] != result["deliveries_planned"]:
        bad.append("not every delivery was acknowledged")
    if result["deliveries_recorded"] < result["deliveries_planned"]:
        bad.append("fewer deliveries recorded than acknowledged")
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=1000, help="bills, one payment scenario each")
    parser.add_argument("--times", type=int, default=10, help="deliveries of each event")
    parser.add_argument("--restarts", type=int, default=2, help="SIGKILL + start of the web process, midway")
    parser.add_argument("--threads", type=int, default=8, help="client threads delivering")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    result = run(payments=args.payments, times=args.times, restarts=args.restarts, threads=args.threads,
                 seed=args.seed, keep_db=args.keep_db)
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"  {key:<{width}}  {value}")
    bad = failures(result)
    print("FAIL: " + "; ".join(bad) if bad else "OK: every bill has exactly its paid amount; no payment applied twice")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
