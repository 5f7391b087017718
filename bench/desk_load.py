"""Reception desks under load: 16 clients registering patients and ordering tests at once.

    .venv/bin/python bench/desk_load.py                 # 16 clients, 60 s
    .venv/bin/python bench/desk_load.py --seconds 20    # a quick look

Target: "16 concurrent clients registering patients and orders for 60 s: no duplicate
numbers, throughput and p95 reported."

Creates a fresh `lis_bench_desk` database (migrated and seeded through the app, like
bench/run.py's), adds one reception user per client (bench.desk01…, half at the main lab,
half at the collection centre, so two bill series are written at once), starts the LIS
under `flask lis up`'s gunicorn command line (bench/servers.py) and logs every user in
through the real form. Each client is a thread with its own keep-alive connection and
cookie, doing what the desk's browser does (htmx POSTs, which answer with the next page):

  1. GET  /reception/patients/new                 the registration form (CSRF token)
  2. POST /reception/patients/new                 a new patient, confirm_new=1
  3. GET  /reception/patients/<mrn>/orders/new    the order form (its idempotency key)
  4. POST /reception/patients/<mrn>/orders        2–4 tests (sometimes a panel + tests)
  5. POST /reception/bills/<number>/payments      8 orders in 10: cash, UPI or card

until --seconds have passed. Then it checks the database: no duplicate MRN, accession,
sample barcode or bill number; every bill series (branch × type × financial year)
numbered 1…n with no gap and its counter at n; every number's check digit valid; and
what the clients were told matches what was stored. Writes bench/results/desk_load.json.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR.parent) not in sys.path:
    sys.path.insert(1, str(BENCH_DIR.parent))  # the project, after bench/ (both have a run.py)

import psycopg  # noqa: E402

import database  # noqa: E402
import indian_names  # noqa: E402
import run as bench_run  # noqa: E402  (bench/run.py: lis_env, PASSWORD, machine, source_version)
import servers  # noqa: E402
import sessions  # noqa: E402

DESK_DB = "lis_bench_desk"
RESULTS = BENCH_DIR / "results" / "desk_load.json"
TARGET_CLIENTS, TARGET_SECONDS = 16, 60
STEPS = ("register_form", "register", "order_form", "order", "payment")
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
IDEMPOTENCY = re.compile(r'name="idempotency_key"[^>]*value="([^"]+)"')
PAY_FORM = re.compile(r'<form method="post" action="(/reception/bills/[^"]+/payments)".*?</form>', re.S)
CLIENT_CPU = [0.0, 0.0]  # this process's CPU seconds at the start and end of the load
AMOUNT = re.compile(r'name="amount"[^>]*value="([^"]+)"')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=TARGET_CLIENTS)
    parser.add_argument("--seconds", type=int, default=TARGET_SECONDS)
    parser.add_argument("--pay-share", type=float, default=0.8, help="share of orders paid at the desk")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep-db", action="store_true", help=f"do not drop {DESK_DB} afterwards")
    return parser.parse_args()


# --- setup --------------------------------------------------------------------------------


@dataclass
class Setup:
    users: list[str]
    tests: list[str]  # orderable test codes
    panels: dict[str, set[str]]  # panel code → its test codes


def fresh_database(server_url: str) -> str:
    admin = database._libpq_url(database.with_database(server_url, "postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DESK_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DESK_DB}")
    return database._libpq_url(database.with_database(server_url, DESK_DB))


def drop_database(server_url: str) -> None:
    admin = database._libpq_url(database.with_database(server_url, "postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DESK_DB} WITH (FORCE)")


def create_desk_users(env: dict[str, str], count: int) -> Setup:
    """`count` reception users through app.services.users.create_user, alternately at the
    collection centre (demo.reception's branch) and the main lab; and the catalogue codes
    the clients will order."""
    from sqlalchemy import select

    from app import audit, create_app, security
    from app.extensions import db
    from app.models import Branch, LabTest, Organization, Panel
    from app.services import users
    from config import Config

    app = create_app(Config.from_env(dict(env, LIS_LOG_LEVEL="WARNING")))
    with app.app_context():
        org = db.session.execute(select(Organization).where(Organization.code == "demo")).scalar_one()
        security.use_tenant(db.session, org.id)
        branches = {b.code: b.id for b in db.session.execute(select(Branch)).scalars()}
        names = []
        with audit.acting_as(audit.AuditContext(actor_label="system:bench", org_id=org.id)):
            for i in range(1, count + 1):
                username = f"bench.desk{i:02d}"
                users.create_user(org.id, {"username": username, "full_name": f"Desk Clerk {i:02d}",
                                           "role": "reception",
                                           "branch_id": branches["JNR" if i % 2 else "MAIN"]},
                                  password=bench_run.PASSWORD)
                names.append(username)
        db.session.commit()
        tests = sorted(t.code for t in db.session.execute(
            select(LabTest).where(LabTest.active.is_(True), LabTest.orderable.is_(True))).scalars())
        panels = {p.code: {i.test.code for i in p.items} for p in db.session.execute(
            select(Panel).where(Panel.active.is_(True))).scalars() if all(i.test.active for i in p.items)}
        db.session.remove()
        db.engine.dispose()
    return Setup(names, tests, panels)


# --- one desk -----------------------------------------------------------------------------


class Browser:
    """A keep-alive connection with a cookie jar and htmx's request headers."""

    def __init__(self, base_url: str, cookie: str):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.cookie = cookie
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        self.reconnects = 0

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                htmx: bool = False) -> tuple[int, dict[str, str], str]:
        headers = {"User-Agent": sessions.USER_AGENT, "Cookie": f"{sessions.COOKIE_NAME}={self.cookie}"}
        if htmx:
            headers.update({"HX-Request": "true", "HX-Current-URL": f"http://{self.host}:{self.port}{path}"})
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                text = response.read().decode("utf-8", "replace")
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection before reading this
                # request: nothing was done, so sending it again is safe.
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                self.reconnects += 1
                if attempt == 2:
                    raise
        for header in response.headers.get_all("Set-Cookie") or []:
            jar = SimpleCookie(header)
            if sessions.COOKIE_NAME in jar:
                self.cookie = jar[sessions.COOKIE_NAME].value
        return response.status, {k.lower(): v for k, v in response.headers.items()}, text


@dataclass
class Tally:
    """What one client did: per step, durations of the successful requests and failures."""

    times: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})
    errors: list[dict] = field(default_factory=list)
    mrns: list[str] = field(default_factory=list)
    accessions: list[str] = field(default_factory=list)
    bills: list[str] = field(default_factory=list)
    payments: int = 0
    reconnects: int = 0


class StepFailed(Exception):
    pass


def new_patient(rng: random.Random, serial: str) -> dict[str, str]:
    region = rng.choices(indian_names.REGIONS, [r.weight for r in indian_names.REGIONS])[0]
    female = rng.random() < 0.5
    name = f"{rng.choice(region.female if female else region.male)} {rng.choice(region.surnames)}"
    national = f"9{rng.randrange(10**9):09d}"
    mobile = rng.choice((national, f"{national[:5]} {national[5:]}", f"+91 {national}", f"0{national}"))
    form = {"name": name, "sex": "female" if female else "male", "mobile": mobile, "email": "", "address": "",
            "city": rng.choice(("Bengaluru", "Mysuru", "")), "pin_code": "", "state_code": "", "aadhaar": "",
            "abha_number": "", "abha_address": "", "confirm_new": "1", "dob": "", "age_years": "",
            "age_months": "", "age_days": ""}
    if rng.random() < 0.7:
        form["dob"] = (date.today() - timedelta(days=rng.randrange(365, 90 * 365))).isoformat()
    else:
        form["age_years"] = str(rng.randrange(1, 90))
    form["address"] = f"bench {serial}"  # traceable, and no two registrations alike
    return form


def order_codes(rng: random.Random, setup: Setup) -> list[str]:
    """2–4 codes: tests, or a panel plus tests that are not in it."""
    count = rng.randint(2, 4)
    if setup.panels and rng.random() < 0.25:
        panel = rng.choice(sorted(setup.panels))
        others = [t for t in setup.tests if t not in setup.panels[panel]]
        return [panel] + rng.sample(others, count - 1)
    return rng.sample(setup.tests, count)


def desk(index: int, base_url: str, cookie: str, setup: Setup, deadline: float, pay_share: float,
         seed: int, tally: Tally) -> None:
    rng = random.Random(seed * 1000 + index)
    browser = Browser(base_url, cookie)
    serial = 0

    def step(name: str, method: str, path: str, form: dict[str, str] | None = None,
             expect: int = 200, htmx: bool = False) -> tuple[dict[str, str], str]:
        started = time.perf_counter()
        try:
            status, headers, text = browser.request(method, path, form, htmx)
        except (OSError, http.client.HTTPException) as err:
            tally.errors.append({"step": name, "status": None, "error": repr(err)})
            raise StepFailed from err
        elapsed = (time.perf_counter() - started) * 1000
        if status != expect:
            tally.errors.append({"step": name, "status": status, "body": re.sub(r"\s+", " ", text)[:300]})
            raise StepFailed
        tally.times[name].append(elapsed)
        return headers, text

    def grab(pattern: re.Pattern, text: str, what: str) -> str:
        match = pattern.search(text)
        if not match:
            tally.errors.append({"step": what, "status": "parse", "body": text[:300]})
            raise StepFailed
        return match.group(1)

    while time.monotonic() < deadline:
        serial += 1
        try:
            _, page = step("register_form", "GET", "/reception/patients/new")
            form = new_patient(rng, f"{index:02d}-{serial}") | {"csrf_token": grab(CSRF, page, "register_form")}
            if time.monotonic() >= deadline:
                break
            headers, _ = step("register", "POST", "/reception/patients/new", form, htmx=True)
            mrn = headers.get("hx-push-url", "").rsplit("/", 1)[-1]
            if not mrn.isdigit():
                tally.errors.append({"step": "register", "status": "no HX-Push-Url", "body": str(headers)[:300]})
                continue
            tally.mrns.append(mrn)
            if time.monotonic() >= deadline:
                break
            _, page = step("order_form", "GET", f"/reception/patients/{mrn}/orders/new")
            order = {"csrf_token": grab(CSRF, page, "order_form"),
                     "idempotency_key": grab(IDEMPOTENCY, page, "order_form"),
                     "tests": " ".join(order_codes(rng, setup)), "priority": rng.choice(("routine",) * 8 + ("urgent", "stat")),
                     "referrer_id": "", "clinical_notes": "", "discount": "", "discount_reason": ""}
            if time.monotonic() >= deadline:
                break
            headers, page = step("order", "POST", f"/reception/patients/{mrn}/orders", order, htmx=True)
            accession = headers.get("hx-push-url", "").rsplit("/", 1)[-1]
            if not accession.isdigit():
                tally.errors.append({"step": "order", "status": "no HX-Push-Url", "body": str(headers)[:300]})
                continue
            tally.accessions.append(accession)
            forms = list(PAY_FORM.finditer(page))
            tally.bills += [m.group(1).removeprefix("/reception/bills/").removesuffix("/payments") for m in forms]
            if not forms or rng.random() >= pay_share or time.monotonic() >= deadline:
                continue
            pay = forms[0]
            mode = rng.choices(("cash", "upi", "card"), (6, 3, 1))[0]
            reference = {"cash": "", "upi": f"{rng.randrange(10**11, 10**12)}", "card": f"A{rng.randrange(10**5):05d}"}
            payment = {"csrf_token": grab(CSRF, pay.group(0), "payment"),
                       "idempotency_key": grab(IDEMPOTENCY, pay.group(0), "payment"),
                       "mode": mode, "amount": grab(AMOUNT, pay.group(0), "payment"), "reference": reference[mode]}
            step("payment", "POST", pay.group(1), payment, htmx=True)
            tally.payments += 1
        except StepFailed:
            continue
    tally.reconnects = browser.reconnects
    browser.conn.close()


# --- checks ---------------------------------------------------------------------------------


def check_database(url: str, tallies: list[Tally], desk_users: list[str]) -> dict:
    """Duplicates, gaps, check digits, and the database against what the clients saw."""
    from stdnum import verhoeff

    out: dict = {}
    with psycopg.connect(url) as conn:
        def one(sql: str, *params: object) -> object:
            return conn.execute(sql, params).fetchone()[0]

        out["duplicates"] = {
            "mrn": one("SELECT count(*) FROM (SELECT mrn FROM patient GROUP BY mrn HAVING count(*) > 1) d"),
            "accession": one("SELECT count(*) FROM (SELECT accession FROM lab_order GROUP BY accession "
                             "HAVING count(*) > 1) d"),
            "sample_barcode": one("SELECT count(*) FROM (SELECT barcode FROM sample GROUP BY barcode "
                                  "HAVING count(*) > 1) d"),
            "bill_number": one("SELECT count(*) FROM (SELECT number FROM bill GROUP BY number HAVING count(*) > 1) d"),
            "order_idempotency_key": one("SELECT count(*) FROM (SELECT idempotency_key FROM lab_order "
                                         "WHERE idempotency_key IS NOT NULL GROUP BY idempotency_key "
                                         "HAVING count(*) > 1) d"),
        }
        series = conn.execute("""
            SELECT br.code, b.doc_type, b.fy, count(*), count(DISTINCT b.number),
                   min(split_part(b.number, '/', 3)::int), max(split_part(b.number, '/', 3)::int),
                   (SELECT last_number FROM document_counter c WHERE c.branch_id = b.branch_id
                      AND c.doc_type = b.doc_type AND c.fy = b.fy),
                   bool_and(b.number LIKE br.code || '/' || CASE b.doc_type WHEN 'bill_of_supply' THEN 'B' ELSE 'T' END
                            || substr(b.fy, 3, 2) || '/%')
            FROM bill b JOIN branch br ON br.id = b.branch_id
            GROUP BY br.code, b.doc_type, b.fy, b.branch_id ORDER BY 1, 2, 3""").fetchall()
        out["bill_series"] = [
            {"branch": code, "doc_type": doc_type, "fy": fy, "bills": n, "distinct": distinct, "first": low,
             "last": high, "counter": counter, "prefix_ok": prefix_ok,
             "gap_free": low == 1 and high == n == distinct and counter == high}
            for code, doc_type, fy, n, distinct, low, high, counter, prefix_ok in series]
        bad_digits = {}
        for name, sql in (("mrn", "SELECT mrn FROM patient"), ("accession", "SELECT accession FROM lab_order"),
                          ("sample_barcode", "SELECT barcode FROM sample")):
            bad_digits[name] = sum(1 for (v,) in conn.execute(sql) if not verhoeff.is_valid(v))
        out["invalid_check_digits"] = bad_digits
        created = conn.execute("""
            SELECT (SELECT count(*) FROM patient p JOIN app_user u ON u.id = p.created_by_id WHERE u.username = ANY(%(u)s)),
                   (SELECT count(*) FROM lab_order o JOIN app_user u ON u.id = o.created_by_id WHERE u.username = ANY(%(u)s)),
                   (SELECT count(*) FROM sample),
                   (SELECT count(*) FROM bill),
                   (SELECT count(*) FROM payment),
                   (SELECT count(*) FROM lab_order o WHERE NOT EXISTS (SELECT 1 FROM bill b WHERE b.order_id = o.id)),
                   (SELECT count(*) FROM lab_order o WHERE NOT EXISTS (SELECT 1 FROM sample s WHERE s.order_id = o.id)),
                   (SELECT count(*) FROM bill WHERE paid_paise > total_paise)""", {"u": desk_users}).fetchone()
        stored = dict(zip(("patients", "orders", "samples", "bills", "payments", "orders_without_bill",
                           "orders_without_sample", "overpaid_bills"), created))
        stored_mrns = {m for (m,) in conn.execute(
            "SELECT p.mrn FROM patient p JOIN app_user u ON u.id = p.created_by_id WHERE u.username = ANY(%s)",
            (desk_users,))}
        stored_accessions = {a for (a,) in conn.execute("SELECT accession FROM lab_order")}
    told_mrns = [m for t in tallies for m in t.mrns]
    told_accessions = [a for t in tallies for a in t.accessions]
    out["stored"] = stored
    out["clients_vs_database"] = {
        "mrns_told": len(told_mrns), "mrns_told_twice": len(told_mrns) - len(set(told_mrns)),
        "mrns_told_not_stored": len(set(told_mrns) - stored_mrns),
        "patients_stored_not_told": len(stored_mrns - set(told_mrns)),
        "accessions_told": len(told_accessions), "accessions_told_twice": len(told_accessions) - len(set(told_accessions)),
        "accessions_told_not_stored": len(set(told_accessions) - stored_accessions),
        "payments_told": sum(t.payments for t in tallies),
    }
    cvd = out["clients_vs_database"]
    out["ok"] = (not any(out["duplicates"].values()) and all(s["gap_free"] and s["prefix_ok"] for s in out["bill_series"])
                 and not any(bad_digits.values()) and not cvd["mrns_told_twice"] and not cvd["mrns_told_not_stored"]
                 and not cvd["accessions_told_twice"] and not cvd["accessions_told_not_stored"]
                 and not stored["orders_without_bill"] and not stored["orders_without_sample"]
                 and not stored["overpaid_bills"] and stored["payments"] == cvd["payments_told"]
                 and bool(out["bill_series"]))
    return out


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def at(p: float) -> float:
        return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]

    return {"n": len(ordered), "p50": round(at(50), 1), "p95": round(at(95), 1), "p99": round(at(99), 1),
            "max": round(ordered[-1], 1)}


def server_side(log_path: Path) -> dict:
    """From the LIS's JSON access log (in gunicorn's output): answers by status, and the
    app's own duration_ms per endpoint and method (the server time, without the client)."""
    statuses: Counter = Counter()
    durations: dict[str, list[float]] = {}
    for line in log_path.read_text("utf-8", "replace").splitlines():
        if '"duration_ms"' not in line or "{" not in line:
            continue
        try:
            record = json.loads(line[line.index("{"):])
        except ValueError:
            continue
        statuses[str(record.get("status"))] += 1
        durations.setdefault(f"{record.get('method')} {record.get('endpoint')}", []).append(float(record["duration_ms"]))
    return {"statuses": dict(statuses), "in_app_ms": {k: percentiles(v) for k, v in sorted(durations.items())}}


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    started, info = time.strftime("%Y-%m-%dT%H:%M:%S%z"), bench_run.machine()
    server_url, redis_url = database.server_urls()
    url = fresh_database(server_url)
    try:
        with tempfile.TemporaryDirectory(prefix="lis-desk-bench-") as tmp_name:
            tmp = Path(tmp_name)
            env = bench_run.lis_env(url, redis_url, tmp / "instance")
            print(f"Preparing {DESK_DB} (migrate, seed, {args.clients} reception users)…", flush=True)
            database.migrate_and_seed(env, bench_run.PASSWORD)
            setup = create_desk_users(env, args.clients)
            (tmp / "prometheus").mkdir()
            with servers.gunicorn("lis", "wsgi:app", dict(env, PROMETHEUS_MULTIPROC_DIR=str(tmp / "prometheus")),
                                  tmp) as lis:
                cookies = [sessions.login(lis.url, user, bench_run.PASSWORD, "/reception/") for user in setup.users]
                load_start = [round(x, 2) for x in os.getloadavg()]
                print(f"{args.clients} clients for {args.seconds} s against {lis.url} "
                      f"({len(setup.tests)} tests, {len(setup.panels)} panels to order from); "
                      f"load average {load_start}", flush=True)
                tallies = [Tally() for _ in setup.users]
                t0 = time.monotonic()
                CLIENT_CPU[0] = time.process_time()
                deadline = t0 + args.seconds
                threads = [threading.Thread(target=desk, args=(i, lis.url, cookie, setup, deadline, args.pay_share,
                                                               args.seed, tally), daemon=True)
                           for i, (cookie, tally) in enumerate(zip(cookies, tallies), start=1)]
                for thread in threads:
                    thread.start()
                load_mid = None
                while any(t.is_alive() for t in threads):
                    time.sleep(0.5)
                    if load_mid is None and time.monotonic() > t0 + args.seconds / 2:
                        load_mid = [round(x, 2) for x in os.getloadavg()]
                elapsed = time.monotonic() - t0
                CLIENT_CPU[1] = time.process_time()
                load_end = [round(x, 2) for x in os.getloadavg()]
                server = server_side(lis.log_path)
            checks = check_database(url, tallies, setup.users)
    finally:
        if not args.keep_db:
            drop_database(server_url)
    report = summarize(args, tallies, elapsed, checks, server)
    report.update(started=started, machine=info, source=bench_run.source_version(),
                  load_average={"start": load_start, "middle": load_mid, "end": load_end},
                  gunicorn=servers.gunicorn_argv("wsgi:app", "127.0.0.1:PORT")[1:])
    print_report(report)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nWritten to {RESULTS.relative_to(BENCH_DIR.parent)}")


def summarize(args: argparse.Namespace, tallies: list[Tally], elapsed: float, checks: dict,
              server: dict) -> dict:
    steps = {s: percentiles([v for t in tallies for v in t.times[s]]) for s in STEPS}
    errors = [e for t in tallies for e in t.errors]
    client_cpu = round(CLIENT_CPU[1] - CLIENT_CPU[0], 2)
    return {
        "clients": args.clients, "seconds": args.seconds, "elapsed_s": round(elapsed, 2),
        "registrations": len([m for t in tallies for m in t.mrns]),
        "orders": len([a for t in tallies for a in t.accessions]),
        "payments": sum(t.payments for t in tallies),
        "per_second": {"registrations": round(sum(len(t.mrns) for t in tallies) / elapsed, 2),
                       "orders": round(sum(len(t.accessions) for t in tallies) / elapsed, 2),
                       "payments": round(sum(t.payments for t in tallies) / elapsed, 2),
                       "requests": round(sum(s.get("n", 0) for s in steps.values()) / elapsed, 2)},
        "latency_ms": steps, "errors": len(errors), "error_samples": errors[:10],
        "errors_by_step": dict(Counter(f"{e['step']} {e['status']}" for e in errors)),
        "reconnects": sum(t.reconnects for t in tallies), "server_statuses": server["statuses"],
        "server_in_app_ms": server["in_app_ms"], "client_cpu_s": client_cpu, "checks": checks,
        "ok": checks["ok"] and not errors,
    }


def print_report(r: dict) -> None:
    print(f"\n{r['clients']} clients, {r['elapsed_s']} s: {r['registrations']} registrations "
          f"({r['per_second']['registrations']}/s), {r['orders']} orders ({r['per_second']['orders']}/s), "
          f"{r['payments']} payments ({r['per_second']['payments']}/s), {r['per_second']['requests']} requests/s")
    print(f"{'step':<15} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for step, p in r["latency_ms"].items():
        if p["n"]:
            print(f"{step:<15} {p['n']:>6} {p['p50']:>8.1f} {p['p95']:>8.1f} {p['p99']:>8.1f} {p['max']:>8.1f}")
    print(f"errors: {r['errors']} {r['errors_by_step'] or ''}; reconnects {r['reconnects']}; "
          f"server statuses {r['server_statuses']}")
    print(f"the {r['clients']} client threads used {r['client_cpu_s']} s of CPU ({r['client_cpu_s'] / r['elapsed_s']:.2f} cores)")
    print("in-app time per endpoint (LIS access log duration_ms):")
    for endpoint, p in r["server_in_app_ms"].items():
        print(f"  {endpoint:<40} {p['n']:>6} {p['p50']:>8.1f} {p['p95']:>8.1f} {p['p99']:>8.1f} {p['max']:>8.1f}")
    for sample in r["error_samples"][:3]:
        print(f"  {sample}")
    c = r["checks"]
    print(f"duplicates: {c['duplicates']}")
    for s in c["bill_series"]:
        print(f"bill series {s['branch']}/{s['doc_type']}/{s['fy']}: {s['bills']} bills, numbers {s['first']}…{s['last']}, "
              f"counter {s['counter']}: {'no gaps' if s['gap_free'] else 'GAPS OR REPEATS'}"
              f"{'' if s['prefix_ok'] else ', WRONG PREFIX'}")
    print(f"invalid check digits: {c['invalid_check_digits']}; stored: {c['stored']}")
    print(f"clients vs database: {c['clients_vs_database']}")
    print(f"Numbers unique and gap-free, nothing lost: {'yes' if c['ok'] else 'NO'}; "
          f"run without errors: {'yes' if not r['errors'] else 'NO'}")


if __name__ == "__main__":
    main()
