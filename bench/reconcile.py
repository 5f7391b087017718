"""Reconcile 100,000 bank statement lines against 100,000 payments (issue 6: ≤ 10 s and
≤ 300 MB peak on this machine).

A fresh database (lis_bench_recon), migrated and seeded with the demo lab. 100,000 payments
are made in SQL: 80 % UPI with a 12-digit RRN, 10 % Razorpay (gateway id and the acquirer's
RRN), 10 % card with no RRN (only amount and time can match those), received over 30 days.
A 100,000-line bank CSV (HDFC-like: three banner rows, Deposit/Withdrawal columns, the RRN
zero-padded in the reference column or only inside the narration) is written from them:
3 % of payments missing, 2 % of their lines repeated (the next day), 1 % with a wrong amount,
and the rest up to 100,000 lines credits from strangers and withdrawals (2:1); shuffled.

Measured: the real service end to end — reconciliation.import_statement (store the file)
then the job body workers.reconciliation.process (parse and validate every row, COPY, insert
with fingerprints, match by reference, then amount and time, open exceptions) — in a child
process of its own, so its peak RSS (VmHWM) is the reconciliation's and the app's, not the
generator's. PostgreSQL's own memory is the server's and not counted.

Baselines, same run, same data: (1) the plain SQL join of the stored lines to payments on the
reference; (2) COPY of the raw CSV into a text table plus that join (no parsing, no checks).

    .venv/bin/python bench/reconcile.py [--payments 100000] [--keep]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

PASSWORD = "bench passphrase 2026"
IST = timezone(timedelta(hours=5, minutes=30))
START = date(2026, 4, 1)
DAYS = 30
HEADER = ("HDFC BANK LTD\nStatement of account 50100012345678\nCurrency: INR\n"
          "Date,Narration,Chq./Ref.No.,Value Dt,Withdrawal Amt.,Deposit Amt.,Closing Balance\n")


def vm_hwm_mb() -> float:
    """Peak resident set size of this process (VmHWM), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def vm_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def make_app(env: dict[str, str]):  # type: ignore[no-untyped-def]
    from app import create_app
    from config import Config

    return create_app(Config.from_env(dict(os.environ, **env, LIS_LOG_LEVEL="WARNING")))


def make_payments(app, n: int, seed: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """One big bill and n payments on it, in SQL (the matching never reads bills)."""
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context():
        conn = db.session.connection()
        org_id, branch_id = conn.execute(text(
            "SELECT o.id, b.id FROM organization o JOIN branch b ON b.org_id = o.id AND b.code = 'MAIN' "
            "WHERE o.code = 'demo'")).one()
        bill_id = conn.execute(text("""
            INSERT INTO bill (org_id, branch_id, doc_type, number, fy, bill_date, recipient_name, place_of_supply,
                              gross_paise, discount_paise, taxable_paise, cgst_paise, sgst_paise, igst_paise,
                              total_paise, paid_paise, status, credited_paise, on_account, created_at, updated_at)
            VALUES (:org, :branch, 'bill_of_supply', 'BENCH/B0000001', '2026-27', :day, 'Bench', '29',
                    100000000000, 0, 100000000000, 0, 0, 0, 100000000000, 0, 'open', 0, false, now(), now())
            RETURNING id"""), {"org": org_id, "branch": branch_id, "day": START}).scalar_one()
        conn.execute(text("SELECT setseed(:s)"), {"s": (seed % 1000) / 1000})
        # mode by n % 10: 0 → card (no RRN), 1 → razorpay, else UPI. Amounts ₹1–₹5,000 in paise.
        conn.execute(text("""
            INSERT INTO payment (org_id, bill_id, mode, amount_paise, reference, status, received_at, branch_id,
                                 counter, gateway_payment_id, gateway_order_id, gateway_method, rrn, refunded_paise)
            SELECT :org, :bill,
                   CASE WHEN g % 10 = 0 THEN 'card' WHEN g % 10 = 1 THEN 'razorpay' ELSE 'upi' END,
                   100 + floor(random() * 499900)::bigint,
                   CASE WHEN g % 10 = 0 THEN 'APPR' || g WHEN g % 10 = 1 THEN 'pay_BENCH' || g
                        ELSE (600000000000 + g)::text END,
                   'captured',
                   (CAST(:start AS timestamp) + random() * interval '30 days') AT TIME ZONE 'Asia/Kolkata',
                   :branch, 'main',
                   CASE WHEN g % 10 = 1 THEN 'pay_BENCH' || g END,
                   CASE WHEN g % 10 = 1 THEN 'order_BENCH' || g END,
                   CASE WHEN g % 10 = 1 THEN 'upi' END,
                   CASE WHEN g % 10 = 0 THEN NULL ELSE (600000000000 + g)::text END,
                   0
            FROM generate_series(1, :n) AS g"""), {"org": org_id, "bill": bill_id, "branch": branch_id, "n": n,
                                                  "start": datetime.combine(START, datetime.min.time())})
        conn.execute(text("ANALYZE payment"))
        db.session.commit()
        return {"org_id": org_id, "bill_id": bill_id}


def make_statement(app, lines_wanted: int, seed: int) -> tuple[bytes, dict[str, int]]:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    from app.extensions import db

    rng = random.Random(seed)
    with app.app_context():
        payments = db.session.connection().execute(text(
            "SELECT id, amount_paise, rrn, CAST(timezone('Asia/Kolkata', received_at) AS date) FROM payment "
            "ORDER BY id")).all()
    mix = {"payments_on_statement": 0, "missing": 0, "repeated": 0, "wrong_amount": 0, "strangers": 0, "withdrawals": 0}
    rows: list[str] = []
    for _pid, amount, rrn, day in payments:
        if rng.random() < 0.03:
            mix["missing"] += 1
            continue
        mix["payments_on_statement"] += 1
        if rng.random() < 0.01:
            amount += rng.choice((-100, 100, 1000))
            mix["wrong_amount"] += 1
        rows.append(_row(rng, day, amount, rrn))
        if rng.random() < 0.02:
            rows.append(rows[-1].replace(day.strftime("%d/%m/%Y"), (day + timedelta(days=1)).strftime("%d/%m/%Y"), 1))
            mix["repeated"] += 1
    n = 0
    while len(rows) < lines_wanted:
        n += 1
        day = START + timedelta(days=rng.randrange(DAYS))
        if n % 3:
            rows.append(_row(rng, day, rng.randint(100, 500000), str(800000000000 + n)))
            mix["strangers"] += 1
        else:
            rows.append(f"{day:%d/%m/%Y},NEFT CHG {n},,{day:%d/%m/%Y},{rng.randint(1, 500)}.00,,0.00")
            mix["withdrawals"] += 1
    rows = rows[:lines_wanted]
    rng.shuffle(rows)
    return (HEADER + "\n".join(rows) + "\n").encode(), mix


def _row(rng: random.Random, day: date, amount: int, rrn: str | None) -> str:
    rupees = f"{amount // 100}.{amount % 100:02d}"
    shown = f'"{int(rupees.split(".")[0]):,}.{rupees.split(".")[1]}"' if amount >= 100000 else rupees
    if rrn is None:  # card money: the bank shows a settlement line without the RRN
        return f"{day:%d/%m/%Y},POS SETTLEMENT MID 0045 {rng.randrange(10**6)},,{day:%d/%m/%Y},,{shown},0.00"
    if rng.random() < 0.5:
        return f"{day:%d/%m/%Y},UPI-PAYER-payer@okaxis-HDFC0000001-{rrn}-LAB,{rrn.zfill(16)},{day:%d/%m/%Y},,{shown},0.00"
    return f"{day:%d/%m/%Y},UPI/{rrn}/Payment from PhonePe,,{day:%d/%m/%Y},,{shown},0.00"


# ---------------------------------------------------------------- the measured child

def child(env_json: str, path: str) -> None:
    """Run in its own process: store the file, then the job body; print JSON figures."""
    env = json.loads(env_json)
    app = make_app(env)
    from app import audit, security
    from app.extensions import db
    from app.services import reconciliation
    from sqlalchemy import select, text

    from app.models import BankMapping
    from workers import reconciliation as recon_jobs

    content = Path(path).read_bytes()
    with app.app_context():
        org_id = db.session.execute(text("SELECT id FROM organization WHERE code = 'demo'")).scalar_one()
        security.use_tenant(db.session, org_id)
        with audit.acting_as(audit.AuditContext(actor_label="system:bench", org_id=org_id)):
            mapping = db.session.execute(select(BankMapping).where(BankMapping.name == "HDFC bench")).scalars().first() \
                or reconciliation.save_mapping(
                None, reconciliation.MappingDraft(name="HDFC bench", date_column="Date", credit_column="Deposit Amt.",
                                                  debit_column="Withdrawal Amt.", reference_column="Chq./Ref.No.",
                                                  narration_column="Narration", skip_rows=3))
            db.session.commit()
            rss_ready = vm_rss_mb()
            started = time.perf_counter()
            imp = reconciliation.import_statement(kind="bank_csv", filename=Path(path).name, content=content,
                                                  bank_mapping_id=mapping.id, actor_id=None)
            db.session.commit()
            stored = time.perf_counter()
        import_id = imp.id
        del content, imp
        db.session.remove()
        outcome = recon_jobs.process(import_id)  # what the RQ worker runs
        finished = time.perf_counter()
        again_started = time.perf_counter()
        again = recon_jobs.process(import_id)
        again_seconds = time.perf_counter() - again_started
        security.use_tenant(db.session, org_id)
        counts = db.session.execute(text("SELECT counts FROM statement_import WHERE id = :i"), {"i": import_id}).scalar_one()
        reconciliation._queue().empty()  # the job import_statement queued: already run here
    print(json.dumps({"outcome": outcome, "rerun_outcome": again, "rerun_seconds": round(again_seconds, 3),
                      "store_seconds": round(stored - started, 2), "process_seconds": round(finished - stored, 2),
                      "total_seconds": round(finished - started, 2), "rss_after_app_start_mb": round(rss_ready, 1),
                      "peak_rss_mb": round(vm_hwm_mb(), 1), "counts": counts, "import_id": import_id}))


def baselines(url: str, path: Path, import_id: int) -> dict[str, float]:
    import psycopg

    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        matched = conn.execute("SELECT count(*) FROM statement_line l JOIN payment p ON p.org_id = l.org_id "
                               "AND p.rrn = l.reference WHERE l.import_id = %s", (import_id,)).fetchone()[0]
        join_seconds = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute("CREATE TEMP TABLE raw_line (d text, narration text, ref text, value_date text, wd text, "
                     "dep text, bal text)")
        with conn.cursor().copy("COPY raw_line FROM STDIN WITH (FORMAT csv)") as copy:
            with open(path, "rb") as f:
                for _ in range(4):
                    f.readline()
                while chunk := f.read(1 << 16):
                    copy.write(chunk)
        raw_matched = conn.execute(
            "SELECT count(*) FROM raw_line r JOIN payment p ON p.rrn = coalesce(nullif(ltrim(r.ref, '0'), ''), "
            "substring(r.narration from '(\\d{12})'))").fetchone()[0]
        copy_join_seconds = time.perf_counter() - started
        conn.rollback()
    return {"join_seconds": round(join_seconds, 3), "join_matches": matched,
            "copy_and_join_seconds": round(copy_join_seconds, 3), "copy_and_join_matches": raw_matched}


def main() -> None:
    from bench.database import fresh_database, migrate_and_seed, server_urls

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--lines", type=int, default=None, help="statement lines (default: as many as payments)")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--keep", action="store_true", help="keep lis_bench_recon afterwards (to EXPLAIN)")
    args = parser.parse_args()
    lines = args.lines or args.payments
    pg, redis_url = server_urls()
    with fresh_database(pg, name="lis_bench_recon", keep=args.keep) as url:
        env = {"DATABASE_URL": url, "REDIS_URL": redis_url, "SECRET_KEY": "bench-" + "k" * 40}
        migrate_and_seed(env, PASSWORD)
        app = make_app(env)
        t0 = time.perf_counter()
        made = make_payments(app, args.payments, args.seed)
        content, mix = make_statement(app, lines, args.seed)
        path = Path(f"/tmp/lis_bench_recon_{os.getpid()}.csv")
        path.write_bytes(content)
        generated = time.perf_counter() - t0
        from app.extensions import db

        with app.app_context():
            db.engine.dispose()
        del content
        proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(env), str(path)], capture_output=True,
                              text=True, cwd=ROOT, check=False)
        if proc.returncode != 0:
            print(proc.stderr[-4000:], file=sys.stderr)
            raise SystemExit(proc.returncode)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        base = baselines(url, path, result["import_id"])
        size_mb = round(path.stat().st_size / 1e6, 1)
        path.unlink()
        report = {"payments": args.payments, "lines": lines, "file_mb": size_mb, "statement_mix": mix, "generate_seconds": round(generated, 1),
                  "service": result, "baseline": base,
                  "ratio_total_to_join": round(result["total_seconds"] / max(base["join_seconds"], 1e-6), 1),
                  "ratio_total_to_copy_and_join": round(result["total_seconds"] / max(base["copy_and_join_seconds"], 1e-6), 1),
                  "load_average": os.getloadavg(), "org": made["org_id"]}
        print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
