"""Reconciliation: import settlement and bank statements and match their lines to payments.

The flow (DESIGN.md "durable before acknowledged", "bad input changes nothing"):

1. `import_statement` stores the raw file as a StatementImport ('queued') and queues a job
   on the "recon" queue after the commit. The same file twice (same SHA-256) is refused; a
   file whose header lacks the mapped columns is refused at upload, nothing stored.
2. `process_import` (the job, safe to run twice) parses the whole file while COPYing the rows
   into a temp table; a bad row anywhere fails the import with the row and column named and
   no line inserted. Then one INSERT … SELECT … ON CONFLICT (org, fingerprint) DO NOTHING adds
   the lines (an overlapping statement's repeated lines are not added twice) and `_match`
   runs a handful of set-based statements:
     a. reference: the line's UTR/RRN/Razorpay id equals the payment's rrn, reference,
        gateway_payment_id or gateway_order_id → 'matched' (same amount) or 'mismatch';
        a second line for a payment already taken → 'duplicate';
     b. amount and time: same amount, payment received within ±window days of the line's
        date, and the ONLY candidate on both sides → 'matched' (rule amount_time);
     c. what is left → 'unmatched'; exceptions opened in bulk (INSERT … SELECT, idempotent
        on their dedupe key): unmatched_credit, amount_mismatch, duplicate, and
        missing_from_statement for UPI/card/Razorpay payments in the statement's date range
        that no line of that source has settled.
   Nothing here changes a bill: matching links evidence (a bank line) to money already
   applied. Exceptions wait for a clerk, who resolves each with a note (audited).

Row-by-row Python matching would not reconcile 100k lines in seconds (bench/reconcile.py).
Every raw statement names org_id explicitly: text() SQL is outside the ORM tenant filter.

Sources: ../shared/reference/india.md §3.2 (UTR/RRN formats, the Settlement Recon API fields
and the advice to match bank credits on settlement_utr / bills on order_receipt) and §3.3.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, time as dtime, timedelta, timezone
from typing import Any

from flask import current_app
from sqlalchemy import func, select, text
from sqlalchemy.orm import aliased

from app import audit
from app.extensions import db
from app.models import BankMapping, Bill, BillingException, Payment, StatementImport, StatementLine
from app.security import tenant_of_row, use_tenant
from app.services import ServiceError, billing_exceptions, jobs, statements

log = logging.getLogger(__name__)

QUEUE = "recon"
JOB = "workers.reconciliation.process"
JOB_TIMEOUT = 900
DEFAULT_WINDOW_DAYS = 2
MAX_WINDOW_DAYS = 10
KINDS = {"razorpay_settlement": "Razorpay settlement", "bank_csv": "Bank statement"}
LINE_STATES = {"matched": "Matched", "mismatch": "Amount differs", "duplicate": "Duplicate",
               "unmatched": "No payment", "ignored": "Ignored", "debit": "Not a payment credit"}
STATEMENT_KINDS = ("amount_mismatch", "unmatched_credit", "duplicate", "missing_from_statement")

# Which payments a source can settle. A bank statement shows UPI/NEFT/cheque credits one by
# one (card and Razorpay money arrives in batches, but a line quoting a payment's RRN still
# names it); a Razorpay recon file lists Razorpay payments.
REF_MODES = {"bank_csv": ["upi", "card", "neft", "cheque", "razorpay"], "razorpay_settlement": ["razorpay"]}
AMOUNT_MODES = {"bank_csv": ["upi", "card", "neft", "cheque"], "razorpay_settlement": ["razorpay"]}
# "payments missing from the statement": UPI/card/Razorpay payments (issue 6).
MISSING_MODES = {"bank_csv": ["upi", "card"], "razorpay_settlement": ["razorpay"]}
# How a line's reference can name a payment, per source: one equality join each (hash joins),
# never one OR join. Bank lines carry the UPI RRN / UTR (india.md §3.2); Razorpay rows carry
# the payment id (entity_id / payment_id, §3.2-3.3).
REF_JOINS = {
    "bank_csv": ["p.rrn = n.reference", "p.reference = n.reference", "p.gateway_order_id = n.reference"],
    "razorpay_settlement": ["p.gateway_payment_id = n.gateway_payment_id", "p.gateway_payment_id = n.reference",
                            "p.reference = n.reference"],
}
IST_OFFSET = timedelta(hours=5, minutes=30)  # Asia/Kolkata has no daylight saving


class ImportRefused(ServiceError):
    pass


def window_days() -> int:
    value = current_app.config.get("LIS_RECON_WINDOW_DAYS", DEFAULT_WINDOW_DAYS)
    return max(0, min(int(value), MAX_WINDOW_DAYS))


def _ist_midnight_utc(day: date) -> datetime:
    return datetime.combine(day, dtime.min, tzinfo=timezone.utc) - IST_OFFSET


# ---------------------------------------------------------------- bank mappings

MAPPING_FIELDS = ("name", "date_column", "date_format", "amount_column", "credit_column", "debit_column",
                  "reference_column", "narration_column", "currency_column", "skip_rows")


@dataclass
class MappingDraft:
    """What a mapping form sends; `validate()` answers {field: [messages]}."""

    name: str = ""
    date_column: str = ""
    date_format: str = "%d/%m/%Y"
    amount_column: str | None = None
    credit_column: str | None = None
    debit_column: str | None = None
    reference_column: str = ""
    narration_column: str | None = None
    currency_column: str | None = None
    skip_rows: int = 0

    @classmethod
    def from_form(cls, form: dict[str, Any]) -> tuple["MappingDraft", dict[str, list[str]]]:
        errors: dict[str, list[str]] = {}
        values: dict[str, Any] = {}
        for name in MAPPING_FIELDS[:-1]:
            value = (form.get(name) or "").strip()[:80]
            values[name] = value or (None if name.endswith("column") and name not in ("date_column", "reference_column")
                                     else "")
        raw_skip = (form.get("skip_rows") or "0").strip()
        if not raw_skip.isdigit() or int(raw_skip) > 50:
            errors["skip_rows"] = ["A whole number from 0 to 50."]
            values["skip_rows"] = 0
        else:
            values["skip_rows"] = int(raw_skip)
        draft = cls(**values)
        draft.date_format = draft.date_format or "%d/%m/%Y"
        for name, messages in draft.validate().items():
            errors.setdefault(name, []).extend(messages)
        return draft, errors

    def validate(self) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        if not self.name:
            errors["name"] = ["Name the mapping (e.g. the bank and account)."]
        if not self.date_column:
            errors["date_column"] = ["Which column holds the transaction date?"]
        if not self.reference_column:
            errors["reference_column"] = ["Which column holds the UTR / RRN / reference number?"]
        if not self.amount_column and not self.credit_column:
            errors["amount_column"] = ["Give one signed amount column, or a credit (deposit) column."]
        if self.amount_column and (self.credit_column or self.debit_column):
            errors["amount_column"] = ["Use either one amount column or credit/debit columns, not both."]
        if self.debit_column and not self.credit_column:
            errors["credit_column"] = ["A debit column needs its credit column."]
        try:
            sample = date(2026, 4, 1).strftime(self.date_format)
            if "%" not in self.date_format or datetime.strptime(sample, self.date_format).date() != date(2026, 4, 1):
                raise ValueError
        except ValueError:
            errors["date_format"] = ["A date format like %d/%m/%Y, %d-%b-%Y or %Y-%m-%d (day, month and year)."]
        named = [c for c in (self.date_column, self.amount_column, self.credit_column, self.debit_column,
                             self.reference_column, self.currency_column) if c]
        if len(named) != len(set(named)):
            errors.setdefault("date_column", []).append("Each column can be used for one thing only.")
        return errors


def list_mappings() -> list[BankMapping]:
    return list(db.session.execute(select(BankMapping).order_by(BankMapping.name)).scalars())


def save_mapping(mapping: BankMapping | None, draft: MappingDraft, *, sample: bytes | None = None) -> BankMapping:
    """Create or update a mapping; with a sample statement, every mapped column must be in
    its header row (after the rows to skip)."""
    errors = draft.validate()
    if errors:
        field, messages = next(iter(errors.items()))
        raise ServiceError(messages[0], field=field)
    if sample:
        statements.check_bank_header(statements.decode(sample), draft)
    clash = db.session.execute(select(BankMapping.id).where(func.lower(BankMapping.name) == draft.name.lower())
                               ).scalar_one_or_none()
    if clash is not None and (mapping is None or clash != mapping.id):
        raise ServiceError("Another mapping has this name.", field="name")
    values = {name: getattr(draft, name) for name in MAPPING_FIELDS}
    if mapping is None:
        return audit.add_created(BankMapping(**values), entity_type="bank_mapping", fields=MAPPING_FIELDS)
    audit.apply_changes(mapping, values, entity_type="bank_mapping", fields=MAPPING_FIELDS)
    return mapping


# ---------------------------------------------------------------- import (upload)

def _queue():  # type: ignore[no-untyped-def]
    return jobs.rq_queue(QUEUE)


def job_id(import_id: int) -> str:
    return f"recon-import-{import_id}"


def enqueue(import_id: int) -> None:
    """A fixed job id per import: the sweep can tell a queued job from a lost one."""
    _queue().enqueue(JOB, import_id, job_id=job_id(import_id), job_timeout=JOB_TIMEOUT, result_ttl=3600,
                     failure_ttl=7 * 86400, description=f"reconcile statement import {import_id}")


_after_commit = jobs.AfterCommit("recon", enqueue)


def import_statement(*, kind: str, filename: str, content: bytes, bank_mapping_id: int | None,
                     actor_id: int | None, window: int | None = None) -> StatementImport:
    """Store the file and queue its processing after the commit. Refuses an unknown source,
    an empty file, a header without the mapped columns, and a file imported before."""
    if kind not in KINDS:
        raise ImportRefused("Choose Razorpay settlement or a bank mapping.", field="source")
    mapping = None
    if kind == "bank_csv":
        mapping = db.session.get(BankMapping, bank_mapping_id) if bank_mapping_id else None
        if mapping is None or mapping.org_id != db.session.info.get("org_id"):
            raise ImportRefused("Choose the bank mapping this statement uses.", field="source")
    if not content or not content.strip():
        raise ImportRefused("The file is empty.", field="file")
    body = statements.decode(content)
    statements.check_header(body, kind, mapping)
    window = window_days() if window is None else window
    if not 0 <= window <= MAX_WINDOW_DAYS:
        raise ImportRefused(f"The matching window is 0 to {MAX_WINDOW_DAYS} days.", field="window")
    sha = hashlib.sha256(content).hexdigest()
    earlier = db.session.execute(select(StatementImport).where(StatementImport.sha256 == sha)
                                 .with_for_update()).scalar_one_or_none()
    if earlier is not None and earlier.status != "failed":
        raise ImportRefused(f"This file was already imported (import #{earlier.id}, {earlier.filename}, "
                            f"{earlier.status}); nothing was added.", field="file")
    if earlier is not None:
        # The same file failed before (say, a wrong mapping): try it again with what was chosen now.
        before = {"status": earlier.status, "error": earlier.error[:200], "bank_mapping_id": earlier.bank_mapping_id}
        earlier.kind, earlier.bank_mapping_id, earlier.status, earlier.error = kind, mapping.id if mapping else None, "queued", ""
        earlier.counts, earlier.imported_by_id, earlier.finished_at = {"window_days": window}, actor_id, None
        audit.record("statement_import.requeued", entity_type="statement_import", entity_id=earlier.id,
                     before=before, after={"status": "queued", "bank_mapping_id": earlier.bank_mapping_id})
        _after_commit.add(earlier.id)
        return earlier
    imp = StatementImport(kind=kind, bank_mapping_id=mapping.id if mapping else None, filename=(filename or "statement")[:200],
                          sha256=sha, content=body, status="queued", counts={"window_days": window}, error="",
                          imported_by_id=actor_id)
    db.session.add(imp)
    db.session.flush()
    audit.record("statement_import.created", entity_type="statement_import", entity_id=imp.id,
                 after={"kind": kind, "filename": imp.filename, "sha256": sha, "bytes": len(content),
                        "bank_mapping_id": imp.bank_mapping_id})
    _after_commit.add(imp.id)
    return imp


def retry_import(imp: StatementImport) -> StatementImport:
    if imp.status != "failed":
        raise ImportRefused("Only a failed import is run again.")
    imp.status, imp.error, imp.finished_at = "queued", "", None
    audit.record("statement_import.requeued", entity_type="statement_import", entity_id=imp.id,
                 before={"status": "failed"}, after={"status": "queued"})
    _after_commit.add(imp.id)
    return imp


# ---------------------------------------------------------------- the job

def _locked_import(import_id: int) -> StatementImport | None:
    return db.session.execute(select(StatementImport).where(StatementImport.id == import_id)
                              .with_for_update(skip_locked=True)
                              .execution_options(populate_existing=True)).scalar_one_or_none()


def process_import(import_id: int) -> str:
    """Parse, insert and match one import. Safe to run twice or in two workers at once (the
    row is locked, SKIP LOCKED; a finished import is left alone; lines and exceptions are
    inserted ON CONFLICT DO NOTHING). Returns 'done', 'failed' or why nothing was done."""
    session = db.session
    org_id = tenant_of_row(session, StatementImport, import_id)
    if org_id is None:
        return "missing"
    with audit.acting_as(audit.AuditContext(actor_label="system:recon", org_id=org_id)):
        imp = _locked_import(import_id)
        if imp is None or imp.status not in ("queued", "processing"):
            session.rollback()
            return "busy" if imp is None else imp.status
        # Durable before the work: the page shows 'processing', and the sweep can tell a
        # killed job's import (processing for long) from a queued one.
        imp.status = "processing"
        session.commit()
        imp = _locked_import(import_id)
        if imp is None or imp.status != "processing":
            session.rollback()
            return "busy" if imp is None else imp.status
        started = time.perf_counter()
        try:
            counts = _process(imp)
        except statements.StatementInvalid as err:
            session.rollback()
            return _mark_failed(import_id, err.message)
        except Exception as err:  # a bug or the database: keep it on the row; Retry runs it again
            session.rollback()
            log.exception("statement import %s failed", import_id)
            return _mark_failed(import_id, f"The import stopped on an internal error ({type(err).__name__}); "
                                           "nothing was added. Retry it, or tell the IT person.")
        counts["seconds"] = round(time.perf_counter() - started, 2)
        imp.counts, imp.status, imp.finished_at = counts, "done", datetime.now(timezone.utc)
        audit.record("statement_import.processed", entity_type="statement_import", entity_id=imp.id,
                     after=counts)
        session.commit()
        return "done"


def _mark_failed(import_id: int, error: str) -> str:
    imp = _locked_import(import_id)
    if imp is not None and imp.status in ("queued", "processing"):
        imp.status, imp.error, imp.finished_at = "failed", error[:4000], datetime.now(timezone.utc)
        audit.record("statement_import.failed", entity_type="statement_import", entity_id=imp.id,
                     after={"error": error[:400]})
    db.session.commit()
    return "failed"


STAGE_COLUMNS = ("line_no", "txn_date", "amount_paise", "credit", "reference", "gateway_payment_id",
                 "settlement_utr", "order_receipt", "fee_paise", "tax_paise", "narration", "entity", "raw")


def _stage(imp: StatementImport) -> dict[str, Any]:
    """COPY every parsed row into a temp table (one round trip per ~64 kB, not per row).
    The parser raises after the last row if any row was bad, before any line is inserted."""
    mapping = db.session.get(BankMapping, imp.bank_mapping_id) if imp.bank_mapping_id else None
    conn = db.session.connection()
    conn.execute(text("DROP TABLE IF EXISTS pg_temp.recon_stage"))
    conn.execute(text("""CREATE TEMP TABLE recon_stage (
        line_no int, txn_date date, amount_paise bigint, credit boolean, reference text, gateway_payment_id text,
        settlement_utr text, order_receipt text, fee_paise bigint, tax_paise bigint, narration text, entity text,
        raw jsonb) ON COMMIT DROP"""))
    raw_conn = conn.connection.driver_connection
    rows, low, high = 0, None, None
    dumps = json.JSONEncoder(ensure_ascii=False, default=str).encode
    with raw_conn.cursor() as cur:
        with cur.copy(f"COPY recon_stage ({', '.join(STAGE_COLUMNS)}) FROM STDIN") as copy:
            for line in statements.parse(imp.content, imp.kind, mapping):
                copy.write_row((line.line_no, line.txn_date, line.amount_paise, line.credit, line.reference,
                                line.gateway_payment_id, line.settlement_utr, line.order_receipt, line.fee_paise,
                                line.tax_paise, line.narration, line.raw.get("entity_id", ""),
                                dumps(line.raw) if line.raw else "{}"))
                rows += 1
                if line.credit:
                    low = line.txn_date if low is None or line.txn_date < low else low
                    high = line.txn_date if high is None or line.txn_date > high else high
    if rows == 0:
        raise statements.StatementInvalid(["The file has a header but no rows."])
    return {"rows": rows, "from": low, "to": high}


class _Clock:
    """Seconds per phase, kept in the import's counts: where a slow import spends its time."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now


def _process(imp: StatementImport) -> dict[str, Any]:
    clock = _Clock()
    params = {"org": imp.org_id, "imp": imp.id, "source": imp.kind}
    conn = db.session.connection()
    # One reconciliation at a time per organization: two imports matching at once could both
    # pick the same payment (the unique index would then fail one of them).
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('lis-recon'), CAST(:org AS int))"), params)
    # A batch job: sorts and hash joins of 100k rows stay in memory instead of spilling to disk.
    conn.execute(text("SET LOCAL work_mem = '64MB'"))
    staged = _stage(imp)
    clock.lap("parse_and_copy")
    # Fingerprint: source, date, amount, reference (or narration, or Razorpay's entity id)
    # and the occurrence of that key in this file — the same line in an overlapping
    # statement is the row already stored (left out here); a line repeated within one file
    # is kept (and flagged duplicate by matching). Matching then works on this temp table and
    # each new line is inserted once, in its final state: updating 100k indexed rows of
    # statement_line after inserting them cost more than the whole match.
    conn.execute(text("DROP TABLE IF EXISTS pg_temp.recon_new"))
    conn.execute(text("""
        CREATE TEMP TABLE recon_new ON COMMIT DROP AS
        SELECT f.* FROM (
            SELECT s.*, encode(sha256(convert_to(concat_ws('|', CAST(:source AS text), s.txn_date, s.amount_paise,
                          s.entity, coalesce(s.reference, ''), CASE WHEN s.reference IS NULL THEN s.narration ELSE '' END,
                          row_number() OVER (PARTITION BY s.txn_date, s.amount_paise, s.entity, s.reference,
                                             CASE WHEN s.reference IS NULL THEN s.narration END ORDER BY s.line_no)),
                          'UTF8')), 'hex') AS fingerprint
            FROM recon_stage s) f
        WHERE NOT EXISTS (SELECT 1 FROM statement_line t WHERE t.org_id = CAST(:org AS bigint)
                          AND t.fingerprint = f.fingerprint)"""), params)
    conn.execute(text("DROP TABLE IF EXISTS pg_temp.recon_stage"))
    conn.execute(text("ANALYZE pg_temp.recon_new"))  # temp tables are never auto-analyzed
    clock.lap("fingerprints")
    window = int((imp.counts or {}).get("window_days", window_days()))
    result = _match(imp, window=window, date_from=staged["from"], date_to=staged["to"], clock=clock)
    return {"rows": staged["rows"], "already_present": staged["rows"] - result["new"],
            "window_days": window, "date_from": staged["from"].isoformat() if staged["from"] else None,
            "date_to": staged["to"].isoformat() if staged["to"] else None, **result, "timings": clock.laps}


def _match(imp: StatementImport, *, window: int, date_from: date | None, date_to: date | None,
           clock: _Clock) -> dict[str, Any]:
    """Match the new lines (pg_temp.recon_new, keyed by line_no) and insert them, then open
    the exceptions. Set-based: a few statements whatever the number of lines."""
    conn = db.session.connection()
    params: dict[str, Any] = {"org": imp.org_id, "imp": imp.id, "source": imp.kind, "ref_modes": REF_MODES[imp.kind],
                              "amount_modes": AMOUNT_MODES[imp.kind], "missing_modes": MISSING_MODES[imp.kind],
                              "window": window}
    settled_earlier = """EXISTS (SELECT 1 FROM statement_line t WHERE t.org_id = CAST(:org AS bigint)
                                 AND t.source = CAST(:source AS text) AND t.payment_id = {payment})"""
    # a. By reference. Equality joins (each a hash join) instead of one OR join; per line the
    #    best candidate (not settled by an earlier line of this source, same amount, lowest
    #    id); per payment the first line wins and the other lines are duplicates.
    joins = " UNION ".join(
        f"""SELECT n.line_no, p.id AS payment_id FROM recon_new n JOIN payment p ON {condition}
            WHERE n.credit AND p.org_id = CAST(:org AS bigint) AND p.status <> 'failed'
              AND (p.mode = ANY(:ref_modes) OR (CAST(:source AS text) = 'razorpay_settlement'
                                                AND p.gateway_payment_id IS NOT NULL))"""
        for condition in REF_JOINS[imp.kind])
    conn.execute(text("DROP TABLE IF EXISTS pg_temp.recon_cand"))
    conn.execute(text(f"CREATE TEMP TABLE recon_cand ON COMMIT DROP AS {joins}"), params)
    conn.execute(text("ANALYZE pg_temp.recon_cand"))
    conn.execute(text("DROP TABLE IF EXISTS pg_temp.recon_ref"))
    conn.execute(text(f"""
        CREATE TEMP TABLE recon_ref ON COMMIT DROP AS
        WITH best AS (
            SELECT DISTINCT ON (c.line_no) c.line_no, c.payment_id, p.amount_paise AS payment_amount,
                   p.amount_paise = n.amount_paise AS same_amount,
                   {settled_earlier.format(payment="c.payment_id")} AS taken
            FROM recon_cand c JOIN payment p ON p.id = c.payment_id JOIN recon_new n ON n.line_no = c.line_no
            ORDER BY c.line_no, 5, 4 DESC, c.payment_id),
        ranked AS (
            SELECT b.*, row_number() OVER (PARTITION BY b.payment_id ORDER BY b.same_amount DESC, b.line_no) AS rn
            FROM best b)
        SELECT line_no, payment_id, payment_amount, same_amount, (taken OR rn > 1) AS duplicate FROM ranked"""), params)
    conn.execute(text("ANALYZE pg_temp.recon_ref"))
    clock.lap("by_reference")
    # b. By amount and time, unique candidates only. A line and a payment that both carry a
    #    strong reference (RRN / Razorpay id) that differ are never paired on amount alone.
    lo = _ist_midnight_utc(date_from - timedelta(days=window)) if date_from else None
    hi = _ist_midnight_utc(date_to + timedelta(days=window + 1)) if date_to else None
    conn.execute(text("DROP TABLE IF EXISTS pg_temp.recon_amount"))
    conn.execute(text(f"""
        CREATE TEMP TABLE recon_amount ON COMMIT DROP AS
        WITH lines AS (
            SELECT n.line_no, n.amount_paise, n.txn_date, n.reference FROM recon_new n
            WHERE n.credit AND NOT EXISTS (SELECT 1 FROM recon_ref r WHERE r.line_no = n.line_no)),
        pays AS (
            SELECT p.id, p.amount_paise, CAST(timezone('Asia/Kolkata', p.received_at) AS date) AS day,
                   p.rrn, p.gateway_payment_id FROM payment p
            WHERE p.org_id = CAST(:org AS bigint) AND p.status <> 'failed' AND p.mode = ANY(:amount_modes)
              AND p.received_at >= :lo AND p.received_at < :hi
              AND NOT {settled_earlier.format(payment="p.id")}
              AND NOT EXISTS (SELECT 1 FROM recon_ref r WHERE r.payment_id = p.id AND NOT r.duplicate)),
        pairs AS (
            SELECT l.line_no, p.id AS payment_id,
                   count(*) OVER (PARTITION BY l.line_no) AS per_line, count(*) OVER (PARTITION BY p.id) AS per_payment
            FROM lines l JOIN pays p ON p.amount_paise = l.amount_paise
             AND p.day BETWEEN l.txn_date - CAST(:window AS int) AND l.txn_date + CAST(:window AS int)
             AND (l.reference IS NULL OR (p.rrn IS NULL AND p.gateway_payment_id IS NULL)))
        SELECT line_no, payment_id FROM pairs WHERE per_line = 1 AND per_payment = 1"""),
        {**params, "lo": lo or datetime.max.replace(tzinfo=timezone.utc), "hi": hi or datetime.min.replace(tzinfo=timezone.utc)})
    clock.lap("by_amount_time")
    # c. Each new line, once, in its final state.
    new = conn.execute(text("""
        INSERT INTO statement_line (org_id, import_id, source, line_no, fingerprint, txn_date, amount_paise,
                                    fee_paise, tax_paise, reference, gateway_payment_id, settlement_utr,
                                    order_receipt, narration, raw, status, match_rule, payment_id)
        SELECT CAST(:org AS bigint), CAST(:imp AS bigint), CAST(:source AS text), n.line_no, n.fingerprint, n.txn_date,
               n.amount_paise, n.fee_paise, n.tax_paise, n.reference, n.gateway_payment_id, n.settlement_utr,
               n.order_receipt, n.narration, n.raw,
               CASE WHEN NOT n.credit THEN 'debit' WHEN r.duplicate THEN 'duplicate' WHEN r.same_amount THEN 'matched'
                    WHEN r.line_no IS NOT NULL THEN 'mismatch' WHEN a.line_no IS NOT NULL THEN 'matched'
                    ELSE 'unmatched' END,
               CASE WHEN r.line_no IS NOT NULL AND NOT r.duplicate THEN 'reference'
                    WHEN a.line_no IS NOT NULL THEN 'amount_time' END,
               CASE WHEN r.line_no IS NOT NULL AND NOT r.duplicate THEN r.payment_id ELSE a.payment_id END
        FROM recon_new n
        LEFT JOIN recon_ref r ON r.line_no = n.line_no AND n.credit
        LEFT JOIN recon_amount a ON a.line_no = n.line_no AND n.credit"""), params).rowcount
    # No ON CONFLICT here: recon_new already left out the fingerprints stored, and the advisory
    # lock keeps another import of this organization out until the commit (speculative
    # insertion cost a fifth of the insert; the unique index still guards).
    clock.lap("insert_lines")
    # d. Exceptions for the new lines that need a clerk (the bill from the payment, if any;
    #    a duplicate names the payment it repeats).
    conn.execute(text("""
        INSERT INTO billing_exception (org_id, kind, source, dedupe_key, amount_paise, reference, bill_id, payment_id,
                                       statement_line_id, details, status, note, created_at)
        SELECT CAST(:org AS bigint),
               CASE s.status WHEN 'unmatched' THEN 'unmatched_credit' WHEN 'mismatch' THEN 'amount_mismatch'
                             ELSE 'duplicate' END,
               'statement', 'line:' || s.id, s.amount_paise, s.reference, p.bill_id, p.id, s.id,
               jsonb_build_object('import_id', CAST(:imp AS bigint), 'line_no', s.line_no, 'txn_date', s.txn_date,
                                  'statement', CAST(:source AS text), 'payment_amount_paise', p.amount_paise,
                                  'narration', left(s.narration, 120)),
               'open', '', now()
        FROM statement_line s
        LEFT JOIN recon_ref r ON r.line_no = s.line_no
        LEFT JOIN payment p ON p.id = coalesce(s.payment_id, r.payment_id) AND p.org_id = CAST(:org AS bigint)
        WHERE s.org_id = CAST(:org AS bigint) AND s.import_id = CAST(:imp AS bigint)
          AND s.status IN ('unmatched', 'mismatch', 'duplicate')
        ON CONFLICT (org_id, dedupe_key) DO NOTHING"""), params)
    clock.lap("line_exceptions")
    missing = 0
    if lo is not None:
        range_params = {**params, "from": _ist_midnight_utc(date_from),
                        "to": _ist_midnight_utc(date_to + timedelta(days=1))}
        missing_sql = f"""
            FROM payment p
            WHERE p.org_id = CAST(:org AS bigint) AND p.status <> 'failed' AND p.mode = ANY(:missing_modes)
              AND p.received_at >= :from AND p.received_at < :to AND NOT {settled_earlier.format(payment="p.id")}"""
        conn.execute(text(f"""
            INSERT INTO billing_exception (org_id, kind, source, dedupe_key, amount_paise, reference, bill_id,
                                           payment_id, details, status, note, created_at)
            SELECT CAST(:org AS bigint), 'missing_from_statement', 'statement',
                   'missing:' || CAST(:source AS text) || ':' || p.id, p.amount_paise,
                   coalesce(p.rrn, p.gateway_payment_id, p.reference), p.bill_id, p.id,
                   jsonb_build_object('import_id', CAST(:imp AS bigint), 'statement', CAST(:source AS text),
                                      'mode', p.mode, 'received_at', p.received_at), 'open', '', now()
            {missing_sql}
            ON CONFLICT (org_id, dedupe_key) DO NOTHING"""), range_params)
        missing = conn.execute(text(f"SELECT count(*) {missing_sql}"), range_params).scalar_one()
    clock.lap("missing")
    found = _close_found_missing(imp)
    for table in ("recon_new", "recon_cand", "recon_ref", "recon_amount"):
        conn.execute(text(f"DROP TABLE IF EXISTS pg_temp.{table}"))
    states = dict(conn.execute(text("SELECT status, count(*) FROM statement_line WHERE org_id = CAST(:org AS bigint) "
                                    "AND import_id = CAST(:imp AS bigint) GROUP BY status"), params).all())
    by_amount = int(conn.execute(text("SELECT count(*) FROM statement_line WHERE org_id = CAST(:org AS bigint) "
                                      "AND import_id = CAST(:imp AS bigint) AND match_rule = 'amount_time'"),
                                 params).scalar_one())
    clock.lap("close_and_count")
    return {"new": new, **{state: int(states.get(state, 0)) for state in LINE_STATES},
            "by_reference": int(states.get("matched", 0)) - by_amount, "by_amount_time": by_amount,
            "missing": int(missing), "missing_found": found}


def _close_found_missing(imp: StatementImport) -> int:
    """A payment flagged missing from an earlier statement that this one shows (a T+1
    credit): its exception is closed as matched, audited per row (there are few)."""
    rows = db.session.connection().execute(text("""
        UPDATE billing_exception e SET status = 'resolved', resolution = 'matched', resolved_at = now(),
               note = 'Found on statement import #' || CAST(:imp AS bigint) || ', line ' || s.line_no || '.'
        FROM statement_line s
        WHERE e.org_id = CAST(:org AS bigint) AND e.kind = 'missing_from_statement' AND e.status = 'open'
          AND e.dedupe_key LIKE 'missing:' || CAST(:source AS text) || ':%'
          AND s.org_id = CAST(:org AS bigint) AND s.import_id = CAST(:imp AS bigint) AND s.payment_id = e.payment_id
        RETURNING e.id, e.amount_paise, e.payment_id"""),
        {"org": imp.org_id, "imp": imp.id, "source": imp.kind}).all()
    for exception_id, amount, payment_id in rows:
        audit.record("billing_exception.resolved", entity_type="billing_exception", entity_id=exception_id,
                     before={"status": "open"}, after={"kind": "missing_from_statement", "resolution": "matched",
                                                       "amount_paise": amount, "payment_id": payment_id,
                                                       "import_id": imp.id})
    return len(rows)


# ---------------------------------------------------------------- sweep (periodic)

STUCK_AFTER = timedelta(minutes=20)


def _job_alive(import_id: int) -> bool:
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    try:
        status = Job.fetch(job_id(import_id), connection=_queue().connection).get_status()
    except NoSuchJobError:
        return False
    return status in ("queued", "started", "deferred", "scheduled")


def sweep() -> dict[str, int]:
    """Periodic: queue again an import left 'queued' (Redis was away at the commit) or left
    'processing' long after its job died. process_import is idempotent, so a re-run is safe."""
    session = db.session
    use_tenant(session, None)
    now = datetime.now(timezone.utc)
    rows = session.execute(
        select(StatementImport.id, StatementImport.status, StatementImport.imported_at)
        .where(StatementImport.status.in_(("queued", "processing")))
        .order_by(StatementImport.id).limit(200).execution_options(all_tenants=True)).all()
    session.rollback()
    counts = {"requeued": 0, "alive": 0}
    for import_id, status, imported_at in rows:
        if now - imported_at < (timedelta(minutes=1) if status == "queued" else STUCK_AFTER):
            continue
        if _job_alive(import_id):
            counts["alive"] += 1
        else:
            enqueue(import_id)
            counts["requeued"] += 1
    return counts


# ---------------------------------------------------------------- pages

def list_imports(limit: int = 50) -> list[StatementImport]:
    # `content` is deferred: the list must not load megabytes of statements.
    from sqlalchemy.orm import defer

    return list(db.session.execute(select(StatementImport).options(defer(StatementImport.content))
                                   .order_by(StatementImport.id.desc()).limit(limit)).scalars())


def any_in_progress(imports: list[StatementImport]) -> bool:
    return any(i.status in ("queued", "processing") for i in imports)


PAGE_SIZE = 100


def import_lines(imp: StatementImport, *, status: str | None, query: str, page: int) -> tuple[list[Any], int]:
    """One page of an import's lines with their payment and bill, and the total found."""
    conditions = [StatementLine.import_id == imp.id]
    if status in LINE_STATES:
        conditions.append(StatementLine.status == status)
    query = (query or "").strip()[:64]
    if query:
        conditions.append((StatementLine.reference == query) | StatementLine.narration.ilike(f"%{_like(query)}%"))
    total = db.session.execute(select(func.count(StatementLine.id)).where(*conditions)).scalar_one()
    # Payment and Bill are named in the select list so the tenant filter covers the joins.
    stmt = (select(StatementLine, Payment.mode, Payment.amount_paise, Bill.number)
            .outerjoin(Payment, Payment.id == StatementLine.payment_id).outerjoin(Bill, Bill.id == Payment.bill_id)
            .where(*conditions))
    rows = db.session.execute(stmt.order_by(StatementLine.line_no).limit(PAGE_SIZE)
                              .offset(max(page - 1, 0) * PAGE_SIZE)).all()
    return rows, total


def _like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# ---------------------------------------------------------------- exceptions queue

@dataclass
class ExceptionFilters:
    kind: str = ""
    source: str = ""
    status: str = "open"
    date_from: date | None = None
    date_to: date | None = None
    query: str = ""


def list_exceptions(filters: ExceptionFilters, limit: int = 200) -> list[BillingException]:
    stmt = select(BillingException)
    if filters.kind in billing_exceptions.KIND_LABELS:
        stmt = stmt.where(BillingException.kind == filters.kind)
    if filters.source:
        stmt = stmt.where(BillingException.source == filters.source)
    if filters.status in ("open", "resolved"):
        stmt = stmt.where(BillingException.status == filters.status)
    if filters.date_from:
        stmt = stmt.where(BillingException.created_at >= _ist_midnight_utc(filters.date_from))
    if filters.date_to:
        stmt = stmt.where(BillingException.created_at < _ist_midnight_utc(filters.date_to + timedelta(days=1)))
    if filters.query:
        stmt = stmt.where(BillingException.reference == filters.query.strip()[:64])
    return list(db.session.execute(stmt.order_by(BillingException.created_at.desc(), BillingException.id.desc())
                                   .limit(limit)).scalars())


def bill_numbers(bill_ids: set[int]) -> dict[int, str]:
    if not bill_ids:
        return {}
    return dict(db.session.execute(select(Bill.id, Bill.number).where(Bill.id.in_(bill_ids))).all())


def _eligible_payments(line: StatementLine):  # type: ignore[no-untyped-def]
    """Payments this line's source could settle that no line of that source has settled.
    The settling line is outer-joined and named in the select list (tenant filter on both)."""
    settled = aliased(StatementLine)
    return (select(Payment, settled.id)
            .outerjoin(settled, (settled.payment_id == Payment.id) & (settled.source == line.source))
            .where(settled.id.is_(None), Payment.status != "failed", Payment.mode.in_(REF_MODES[line.source])))


def find_payment(line: StatementLine, wanted: str) -> Payment:
    """The payment a clerk names for a line: by UTR/RRN, terminal reference or Razorpay id,
    or by bill number (that bill's one unsettled payment of the line's amount)."""
    wanted = (wanted or "").strip()[:64]
    if not wanted:
        raise ServiceError("Enter the payment's reference (UTR/RRN) or the bill number.", field="reference")
    base = _eligible_payments(line)
    found = [p for p, _ in db.session.execute(base.where(
        (Payment.rrn == wanted) | (Payment.reference == wanted) | (Payment.gateway_payment_id == wanted)
        | (Payment.gateway_order_id == wanted)))]
    if not found:
        bill = db.session.execute(select(Bill).where(Bill.number == wanted).order_by(Bill.id.desc())).scalars().first()
        if bill is not None:
            found = [p for p, _ in db.session.execute(base.where(Payment.bill_id == bill.id,
                                                                 Payment.amount_paise == line.amount_paise))]
            if not found:
                raise ServiceError(f"Bill {wanted} has no unsettled payment of {line.amount_paise / 100:.2f}.",
                                   field="reference")
    if not found:
        raise ServiceError(f"No unsettled payment has the reference or bill number {wanted}.", field="reference")
    if len(found) > 1:
        raise ServiceError(f"{len(found)} payments fit {wanted}; enter the payment's own reference.", field="reference")
    return found[0]


def manual_match(line: StatementLine, wanted: str, *, actor_id: int | None, note: str) -> StatementLine:
    """Match a line to a payment by hand (an unmatched credit, or a duplicate that turns out
    to be its own payment). Amounts must agree: a difference is resolved as written off."""
    if not (note or "").strip():
        raise ServiceError("Write a note: what was checked and why this match.", field="note")
    locked = db.session.execute(select(StatementLine).where(StatementLine.id == line.id).with_for_update()
                                .execution_options(populate_existing=True)).scalar_one()
    if locked.status not in ("unmatched", "duplicate"):
        raise ServiceError(f"This line is already {LINE_STATES[locked.status].lower()}.")
    payment = find_payment(locked, wanted)
    if payment.amount_paise != locked.amount_paise:
        raise ServiceError(f"The line is {locked.amount_paise / 100:.2f} and the payment {payment.amount_paise / 100:.2f}; "
                           "resolve the difference as written off, with a note.", field="reference")
    before = {"status": locked.status, "payment_id": locked.payment_id}
    locked.status, locked.payment_id, locked.match_rule = "matched", payment.id, "manual"
    db.session.flush()
    audit.record("statement_line.matched", entity_type="statement_line", entity_id=locked.id, before=before,
                 after={"status": "matched", "payment_id": payment.id, "amount_paise": payment.amount_paise,
                        "reference": wanted, "rule": "manual", "note": note.strip()[:500]})
    # The payment may have been flagged missing from this source's statement: it is found now.
    for exc in db.session.execute(select(BillingException).where(
            BillingException.kind == "missing_from_statement", BillingException.status == "open",
            BillingException.payment_id == payment.id,
            BillingException.dedupe_key == f"missing:{locked.source}:{payment.id}")).scalars():
        billing_exceptions.resolve(exc, resolution="matched", note=f"Matched by hand to statement line {locked.id}. "
                                   + note.strip(), actor_id=actor_id)
    return locked


def resolve_exception(exception: BillingException, *, action: str, note: str, actor_id: int | None,
                      reference: str = "") -> BillingException:
    """The clerk's resolution of one exception. 'match' links its statement line to a
    payment; 'ignored' / 'written_off' close it with the note (an unmatched credit's line
    is then shown as ignored). Webhook kinds' apply/refund live in services/gateway.py."""
    if exception.status != "open":
        raise ServiceError("This exception is already resolved.")
    if not (note or "").strip():
        raise ServiceError("Write a note: what was checked and why this resolution.", field="note")
    line = db.session.get(StatementLine, exception.statement_line_id) if exception.statement_line_id else None
    if action == "match":
        if line is None or exception.kind not in ("unmatched_credit", "duplicate"):
            raise ServiceError("Only a credit with no payment (or a duplicate) is matched by hand.", field="action")
        manual_match(line, reference, actor_id=actor_id, note=note)
        return billing_exceptions.resolve(exception, resolution="matched", note=note, actor_id=actor_id)
    if action not in ("ignored", "written_off"):
        raise ServiceError("Choose how this was resolved.", field="action")
    if line is not None and line.status == "unmatched":
        before = {"status": line.status}
        line.status = "ignored"
        audit.record("statement_line.ignored", entity_type="statement_line", entity_id=line.id, before=before,
                     after={"status": "ignored", "amount_paise": line.amount_paise, "resolution": action})
    return billing_exceptions.resolve(exception, resolution=action, note=note, actor_id=actor_id)
