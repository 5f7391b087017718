"""Laboratory reports: a version per release or amendment, rendered to PDF by a job, stored
with its SHA-256 and served from storage afterwards (never rendered again for a download).

Content follows ISO 15189:2022 7.4.1.6–7.4.1.8 as summarised in
../shared/reference/india.md §5.1: the issuing laboratory; the patient's identification and
the date of issue on every page with "page x of y" and a clear end of the report; the
requester; sample type, quality remarks, collection and receipt times; examinations with
results, units, reference intervals and flags (criticals marked), the method where set;
interpretive comments; who authorised the release. Amended reports are identified as such,
say when, by whom and why, reference the original, and keep it (7.4.1.8). The NABL ULR number
is optional per lab (§5.2), and the QR code opens the public verification page (§5.2, NABL's
ask for a QR that verifies the authorised report).

Life of a version: request_report() adds the row ('rendering') in the caller's transaction
and, once that transaction commits, a job on the 'reports' queue renders it (render_report:
idempotent, a failure is kept on the row as 'failed'); sweep() re-queues a version whose job
was lost and gives up on one that kept killing its worker.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from types import SimpleNamespace
from typing import Any

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload, selectinload, undefer

from app import audit
from app.extensions import db
from app.formatting import IST
from app.models import Branch, LabTest, Order, OrderTest, Organization, Patient, Report, Result, Sample, User
from app.models.base import utcnow
from app.security import tenant_of_row, use_tenant
from app.services import ServiceError, billing, documents, jobs, notifications, patients
from app.services import results as results_service

log = logging.getLogger(__name__)

QUEUE = "reports"
JOB = "workers.reports.render"
STUCK_AFTER = timedelta(minutes=3)  # a 'rendering' row older than this without a live job is re-queued
MAX_ATTEMPTS = 3  # render jobs started for one version before it is marked failed
JOB_TIMEOUT = 300
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
MAX_LOGO_BYTES = 512 * 1024
MAX_SIGNATURE_BYTES = 256 * 1024
ISSUED = ("final", "partial", "amended")


class ReportRefused(ServiceError):
    pass


# ---------------------------------------------------------------- requesting a version

def _lock(order: Order) -> None:
    db.session.execute(select(Order.id).where(Order.id == order.id).with_for_update())


def _current_rows(order: Order) -> list[tuple[OrderTest, Result | None]]:
    """The order's tests (department order) with their current result, in two statements."""
    tests = list(db.session.execute(
        select(OrderTest).where(OrderTest.order_id == order.id).order_by(OrderTest.id)
        .options(joinedload(OrderTest.test).joinedload(LabTest.department))).scalars())
    ids = [ot.id for ot in tests]
    current = {r.order_test_id: r for r in db.session.execute(
        select(Result).where(Result.order_test_id.in_(ids), Result.is_current)).scalars()} if ids else {}
    tests.sort(key=lambda ot: (ot.test.department.sort_order, ot.test.department.name, ot.id))
    return [(ot, current.get(ot.id)) for ot in tests]


def latest(order: Order) -> Report | None:
    return db.session.execute(select(Report).where(Report.order_id == order.id)
                              .order_by(Report.version.desc()).limit(1)).scalar_one_or_none()


def _issuing_branch(order: Order) -> Branch:
    """The report series belongs to the lab that issues reports: the organization's main
    laboratory (collection centres send their tubes there), else the order's branch."""
    main = db.session.execute(select(Branch).where(Branch.is_main_lab).order_by(Branch.id).limit(1)
                              ).scalar_one_or_none()
    return main or db.session.get(Branch, order.branch_id)


def format_ulr(pattern: str, number: int) -> str:
    """'TC1234261########F' + 42 -> 'TC123426100000042F': the run of '#' becomes the running
    number, zero-padded to its length (india.md §5.2: the layout is the lab's to configure)."""
    match = re.search(r"#+", pattern)
    if match is None:
        raise ReportRefused("The ULR pattern needs a run of # for the running number.", field="ulr_pattern")
    digits = str(number).zfill(len(match.group()))
    if len(digits) > len(match.group()):
        raise ReportRefused("The ULR series is exhausted: lengthen the run of #.", field="ulr_pattern")
    return pattern[:match.start()] + digits + pattern[match.end():]


def _numbers(order: Order) -> tuple[str, str | None]:
    """(report number, ULR) for an order's first report, from the organization's document
    counter (billing.next_counter: INSERT … ON CONFLICT, so no two reports share a number and
    a rolled-back release leaves no gap). Every later version of the order keeps both."""
    branch = _issuing_branch(order)
    fy = billing.financial_year(billing.today_in_india())
    number = billing.next_document_number(branch, "report", fy)
    org = db.session.get(Organization, order.org_id)
    ulr = format_ulr(org.ulr_pattern, billing.next_counter(branch, "ulr", fy)) if org and org.ulr_pattern else None
    return number, ulr


def request_report(order: Order, *, user: User | None, amendment_reason: str = "") -> Report:
    """Add the next version of the order's report for its released results, in the caller's
    transaction; the render job is queued when that transaction commits. Departments with
    results still pending make it a partial report (they are named on it). Asking again when
    nothing released has changed returns the latest version instead of a duplicate."""
    _lock(order)
    rows = _current_rows(order)
    released = [r for _, r in rows if r is not None and r.status == "released"]
    if not released:
        raise ReportRefused("Nothing released to report.")
    pending: list[str] = []
    for ot, result in rows:
        if (result is None or result.status != "released") and ot.test.department.name not in pending:
            pending.append(ot.test.department.name)
    result_ids = sorted(r.id for r in released)
    previous = latest(order)
    if previous is not None and not amendment_reason and previous.status != "failed" \
            and sorted(previous.result_ids) == result_ids:
        return previous
    number, ulr = (previous.number, previous.ulr) if previous is not None else _numbers(order)
    report = Report(order_id=order.id, version=(previous.version + 1) if previous else 1, number=number, ulr=ulr,
                    status="rendering", token=secrets.token_urlsafe(24), released_at=utcnow(),
                    released_by_id=user.id if user else None, result_ids=result_ids, departments_pending=pending,
                    supersedes_id=previous.id if previous else None, amendment_reason=amendment_reason,
                    amended_by_id=user.id if (user and amendment_reason) else None)
    audit.add_created(report, entity_type="report",
                      fields=("order_id", "version", "number", "ulr", "departments_pending", "supersedes_id",
                              "amendment_reason"),
                      extra={"accession": order.accession, "results": result_ids})
    enqueue_after_commit(report.id)
    return report


# ---------------------------------------------------------------- queueing after commit

def enqueue_after_commit(report_id: int) -> None:
    """Queue the render job once the current transaction commits (app/services/jobs.py)."""
    _after_commit.add(report_id)


def _queue():  # type: ignore[no-untyped-def]
    return jobs.rq_queue(QUEUE)


def job_id(report_id: int) -> str:
    return f"report-{report_id}"


def enqueue(report_id: int) -> None:
    """One job per version (a fixed job id): the sweep can tell a queued job from a lost one."""
    _queue().enqueue(JOB, report_id, job_id=job_id(report_id), job_timeout=JOB_TIMEOUT, result_ttl=3600,
                     failure_ttl=7 * 86400, description=f"render report {report_id}")


_after_commit = jobs.AfterCommit("reports", enqueue)


def _job_alive(report_id: int) -> bool:
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    try:
        status = Job.fetch(job_id(report_id), connection=_queue().connection).get_status()
    except NoSuchJobError:
        return False
    return status in ("queued", "started", "deferred", "scheduled")


# ---------------------------------------------------------------- rendering (the job body)

def render_report(report_id: int) -> str:
    """Render one version and store its PDF and hash. Safe to run twice or in two workers at
    once: the row is locked while rendering (SKIP LOCKED: a second job leaves at once), and a
    version that is no longer 'rendering' is left alone. Returns what happened."""
    session = db.session
    org_id = tenant_of_row(session, Report, report_id)
    if org_id is None:
        return "missing"
    with audit.acting_as(audit.AuditContext(actor_label="system:reports", org_id=org_id)):
        # Count the attempt in a transaction of its own, so a worker killed while rendering
        # (out of memory, a timeout) still leaves a trace the sweep can act on.
        report = _locked(report_id)
        if report is None or report.status != "rendering":
            session.rollback()
            return "busy" if report is None else "done"
        report.attempts += 1
        session.commit()
        report = _locked(report_id)
        if report is None or report.status != "rendering":
            session.rollback()
            return "busy" if report is None else "done"
        started = time.perf_counter()
        try:
            pdf, pages = documents.pdf_and_pages(build_html(report))
        except Exception as exc:
            session.rollback()
            log.exception("report %s could not be rendered", report_id)
            _mark_failed(report_id, f"{type(exc).__name__}: {exc}")
            return "failed"
        report.pdf, report.sha256, report.size, report.pages = pdf, hashlib.sha256(pdf).hexdigest(), len(pdf), pages
        report.status = "amended" if report.amendment_reason else ("partial" if report.departments_pending else "final")
        report.rendered_at, report.render_ms, report.error = utcnow(), int((time.perf_counter() - started) * 1000), ""
        notifications.report_released(report)  # patient (and opted-in referrer) messages, queued after commit
        audit.record("report.issued", entity_type="report", entity_id=report.id,
                     after={"number": report.number, "version": report.version, "status": report.status,
                            "sha256": report.sha256, "pages": pages})
        session.commit()
        return report.status


def _locked(report_id: int) -> Report | None:
    return db.session.execute(select(Report).where(Report.id == report_id)
                              .with_for_update(skip_locked=True)).scalar_one_or_none()


def _mark_failed(report_id: int, error: str) -> None:
    report = _locked(report_id)
    if report is not None and report.status == "rendering":
        report.status, report.error = "failed", error[:2000]
        audit.record("report.failed", entity_type="report", entity_id=report.id, after={"error": error[:400]})
    db.session.commit()


def retry(report: Report) -> Report:
    """A failed version goes back to 'rendering' and is queued again after the commit."""
    if report.status != "failed":
        raise ReportRefused("Only a failed report is rendered again.")
    report.status, report.attempts = "rendering", 0
    audit.record("report.retried", entity_type="report", entity_id=report.id, after={"previous_error": report.error})
    enqueue_after_commit(report.id)
    return report


def sweep(*, older_than: timedelta = STUCK_AFTER) -> dict[str, int]:
    """Periodic (workers/schedule.py): queue again every version left 'rendering' whose job
    is gone (Redis lost it, or it was never queued), and mark failed a version whose jobs
    were started MAX_ATTEMPTS times without finishing (they kept killing the worker)."""
    session = db.session
    use_tenant(session, None)
    stuck = session.execute(
        select(Report.id, Report.org_id, Report.attempts)
        .where(Report.status == "rendering", Report.updated_at < utcnow() - older_than)
        .order_by(Report.id).limit(500).execution_options(all_tenants=True)).all()
    session.rollback()
    counts = {"requeued": 0, "failed": 0, "alive": 0}
    for report_id, org_id, attempts in stuck:
        if _job_alive(report_id):
            counts["alive"] += 1
        elif attempts >= MAX_ATTEMPTS:
            use_tenant(session, org_id)
            with audit.acting_as(audit.AuditContext(actor_label="system:reports", org_id=org_id)):
                _mark_failed(report_id, f"Rendering did not finish after {attempts} attempts.")
            counts["failed"] += 1
        else:
            enqueue(report_id)
            counts["requeued"] += 1
    use_tenant(session, None)
    return counts


# ---------------------------------------------------------------- what the PDF shows

def _dec(value: Any) -> str:
    try:
        return format(Decimal(str(value)).normalize(), "f")
    except (InvalidOperation, ValueError):
        return str(value)


def interval_text(interval: dict | None) -> str:
    """The reference interval as printed: '3.5 – 5.0', 'Up to 200', '40 or more', or its text."""
    if not interval:
        return ""
    low, high = interval.get("low"), interval.get("high")
    if low is not None and high is not None:
        text = f"{_dec(low)} – {_dec(high)}"
    elif high is not None:
        text = f"Up to {_dec(high)}"
    elif low is not None:
        text = f"{_dec(low)} or more"
    else:
        text = ""
    note = interval.get("text") or ""
    return f"{text} ({note})" if text and note else (text or note)


_UNIT_WORDS = (("{1.73_m2}", "1.73 m²"), ("u[IU]", "µIU"), ("[IU]", "IU"), ("[HPF]", "HPF"), ("[pH]", ""),
               ("10*", "10^"), ("uL", "µL"), ("ug", "µg"), ("umol", "µmol"))


def display_unit(unit: str | None) -> str:
    """A UCUM unit as a report prints it: '10*3/uL' -> '10^3/µL', 'u[IU]/mL' -> 'µIU/mL',
    'mL/min/{1.73_m2}' -> 'mL/min/1.73 m²'; annotations such as {ratio} and the unit '1' print
    nothing (the bundled Latin font has µ and ², not the superscript digits)."""
    text = (unit or "").strip()
    if text == "1":
        return ""
    for ucum, shown in _UNIT_WORDS:
        text = text.replace(ucum, shown)
    bare = re.sub(r"\{[^}]*\}", "", text)  # an annotation alone ({ratio}) is no unit at all
    text = re.sub(r"\{([^}]*)\}", lambda m: (" " + m.group(1).replace("_", " ")) if bare else "", text)
    return text.strip()


FLAG_WORDS = {"L": "Low", "H": "High", "LL": "Critical low", "HH": "Critical high", "A": "Abnormal"}


@dataclass
class Line:
    name: str
    value: str = ""
    flag: str | None = None
    critical: bool = False
    unit: str = ""
    interval: str = ""
    method: str = ""
    comment: str = ""
    interpretation: str = ""
    previous_value: str = ""  # the value this one amended
    pending: bool = False

    @property
    def flag_word(self) -> str:
        return FLAG_WORDS.get(self.flag or "", "")


@dataclass
class Section:
    name: str
    lines: list[Line] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        return any(line.pending for line in self.lines)


@dataclass
class Signatory:
    name: str
    qualification: str
    registration_number: str
    signature: str | None  # data URI
    role: str


def _png_uri(data: bytes | None, mime: str = "image/png") -> str | None:
    import base64

    return f"data:{mime};base64,{base64.b64encode(data).decode()}" if data else None


def verify_url(report: Report) -> str:
    return f"{current_app.config['LIS_PUBLIC_URL']}/verify/{report.token}"


def _sections(report: Report, order: Order) -> tuple[list[Section], list[int]]:
    included = {r.order_test_id: r for r in db.session.execute(
        select(Result).where(Result.id.in_(report.result_ids or [-1]))).scalars()}
    tests = list(db.session.execute(
        select(OrderTest).where(OrderTest.order_id == order.id)
        .options(joinedload(OrderTest.test).joinedload(LabTest.department))).scalars())
    tests.sort(key=lambda ot: (ot.test.department.sort_order, ot.test.department.name, ot.id))
    amended: dict[int, Result] = {}
    for old in db.session.execute(select(Result).where(
            Result.order_test_id.in_([ot.id for ot in tests] or [-1]), Result.status == "amended")
            .order_by(Result.id)).scalars():
        current = included.get(old.order_test_id)
        if current is not None and old.id < current.id:
            amended[old.order_test_id] = old  # the latest amended value before the one printed
    sections: dict[str, Section] = {}
    verifiers: list[int] = []
    for ot in tests:
        section = sections.setdefault(ot.test.department.name, Section(ot.test.department.name))
        result = included.get(ot.id)
        if result is None:
            section.lines.append(Line(name=ot.test.name, pending=True, method=ot.test.method or ""))
            continue
        if result.verified_by_id and result.verified_by_id not in verifiers:
            verifiers.append(result.verified_by_id)
        previous = amended.get(ot.id)
        section.lines.append(Line(
            name=ot.test.name, value=result.value_text, flag=result.flag, critical=result.critical,
            unit=display_unit(result.unit), interval=interval_text(result.interval), method=ot.test.method or "",
            comment=result.comment or "", interpretation=result.interpretation or "",
            previous_value=f"{previous.value_text} {display_unit(previous.unit)}".strip() if previous else ""))
    return list(sections.values()), verifiers


def _signatories(report: Report, verifiers: list[int]) -> list[Signatory]:
    ids = list(dict.fromkeys([*verifiers, *(i for i in (report.released_by_id, report.amended_by_id) if i)]))
    if not ids:
        return []
    users = {u.id: u for u in db.session.execute(
        select(User).where(User.id.in_(ids)).options(undefer(User.signature_png))).scalars()}
    out = []
    for user_id in ids:
        user = users.get(user_id)
        if user is None:
            continue
        roles = []
        if user_id in verifiers:
            roles.append("Verified")
        if user_id == report.released_by_id:
            roles.append("Released")
        if user_id == report.amended_by_id:
            roles.append("Amended")
        out.append(Signatory(user.full_name, user.qualification, user.registration_number,
                             _png_uri(user.signature_png), " · ".join(roles)))
    return out


def report_context(report: Report) -> dict[str, Any]:
    from app.integrations import upi  # the QR maker the UPI code uses (segno, SVG)

    order = db.session.execute(select(Order).where(Order.id == report.order_id).options(
        joinedload(Order.patient), joinedload(Order.referrer),
        selectinload(Order.samples).selectinload(Sample.tests))).scalar_one()
    org = db.session.execute(select(Organization).where(Organization.id == report.org_id)
                             .options(undefer(Organization.report_logo))).scalar_one()
    sections, verifiers = _sections(report, order)
    reported_tests = {line.name for s in sections for line in s.lines}
    samples = [s for s in order.samples if s.tests or s.status != "rejected"]
    supersedes = report.supersedes
    amended_by = db.session.get(User, report.amended_by_id) if report.amended_by_id else None
    patient = order.patient
    collected = min((s.collected_at for s in samples if s.collected_at), default=None)
    url = verify_url(report)
    return dict(
        report=report, order=order, org=org, patient=patient, sections=sections, samples=samples,
        age=patients.age_label(patient, (collected or report.released_at).astimezone(IST).date()),
        referrer=order.referrer.name if order.referrer else "Self",
        signatories=_signatories(report, verifiers), supersedes=supersedes, amended_by=amended_by,
        logo=_png_uri(org.report_logo, org.report_logo_type or "image/png"),
        qr=upi.qr_data_uri(url, scale=2), verify_url=url, collected_at=collected,
        received_at=min((s.received_at for s in samples if s.received_at), default=None),
        issued=report.released_at, tests_count=len(reported_tests),
        title=("Amended report" if report.amendment_reason else
               "Partial report" if report.departments_pending else "Laboratory report"),
    )


def build_html(report: Report) -> str:
    """The report's HTML. The template is rendered without Flask's context processors: a
    worker has no request (and no logged-in user for the menus)."""
    return current_app.jinja_env.get_template("pdf/report.html").render(**report_context(report))


# ---------------------------------------------------------------- amendments

def amend(result: Result, new_value: str, reason: str, *, user: User, interpretation: str | None = None,
          call: dict[str, Any] | None = None) -> Report:
    """Change a released result: the released row becomes 'amended' (kept, never edited), a
    new row becomes current and released, and a new version of the report says 'Amended' with
    the reason, the date and the person, and references the version it replaces (whose PDF
    stays). India.md §5.1 (ISO 15189 7.4.1.8). Released calculated results made from the
    amended one (MCHC from Hb, LDL from cholesterol…) are amended with it, recomputed."""
    reason = " ".join((reason or "").split())
    if not reason:
        raise ReportRefused("Say why the released result is being amended.", field="reason")
    order_test = result.order_test
    order = order_test.order
    _lock(order)
    db.session.refresh(result)
    if result.status != "released" or not result.is_current:
        raise ReportRefused("Only the current released result can be amended.")
    if result.source == "calculated":
        raise ReportRefused("A calculated result follows its inputs: amend the results it is made from.")
    test = order_test.test
    value = results_service.parse_value(test, new_value, strict=True)
    new_interpretation = result.interpretation if interpretation is None else interpretation.strip()[:4000]
    if value.text == result.value_text and new_interpretation == result.interpretation:
        raise ReportRefused("The amended value is the same as the released one.", field="value")
    # An amended value in the critical range is released at once, so the rule that no critical
    # result leaves the lab before a read-back call holds here too: the call comes with it.
    _, becomes_critical = results_service.flag_for(value, _interval_from_snapshot(result.interval))
    if becomes_critical and not (call and call.get("recipient_name")):
        raise ReportRefused("The corrected value is critical: record whom you called (with read-back) in this "
                            "form before the amended report is issued.", field="call_recipient_name")
    new = _replace(result, value, test.decimals, reason, user=user, source="manual",
                   interpretation=new_interpretation)
    if becomes_critical and call:
        from app.services import verification  # the call rules live there (verification imports nothing of ours)

        try:
            verification.record_call(new, recipient_kind=call.get("recipient_kind", ""),
                                     recipient_name=call.get("recipient_name", ""), phone=call.get("phone", ""),
                                     read_back=bool(call.get("read_back")), note=call.get("note", ""), user=user)
        except ServiceError as err:
            raise ReportRefused(err.message, field=f"call_{err.field}" if err.field else None) from None
    _amend_calculated(order, test.code, reason, user=user)
    return request_report(order, user=user, amendment_reason=reason)


def _replace(result: Result, value: Any, decimals: int, reason: str, *, user: User, source: str,
             interpretation: str) -> Result:
    """The released row steps aside as 'amended'; a new released row carries the new value,
    flagged against the interval the report printed (the old row's snapshot)."""
    number = value.number.quantize(Decimal(1).scaleb(-decimals)) if value.number is not None else None
    flag, critical = results_service.flag_for(value, _interval_from_snapshot(result.interval))
    now = utcnow()
    before = {"value_text": result.value_text, "flag": result.flag, "interpretation": result.interpretation}
    result.status, result.is_current = "amended", False
    db.session.flush([result])  # one current result per ordered test: the old row steps aside first
    order_test = result.order_test
    order_test.attempts = (order_test.attempts or 0) + 1
    new = Result(order_test_id=order_test.id, patient_id=result.patient_id, test_id=result.test_id,
                 attempt=order_test.attempts, is_current=True, value_text=value.text, value_num=number,
                 unit=result.unit, flag=flag, critical=critical, interval=result.interval, comment=result.comment,
                 source=source, status="released", entered_by_id=user.id, entered_at=now,
                 verified_by_id=user.id, verified_at=now, released_at=now, interpretation=interpretation)
    db.session.add(new)
    db.session.flush([new])
    audit.record("result.amended", entity_type="result", entity_id=new.id, before={**before, "result": result.id},
                 after={"value_text": new.value_text, "flag": new.flag, "interpretation": new.interpretation,
                        "reason": reason})
    return new


def _amend_calculated(order: Order, changed: str, reason: str, *, user: User) -> None:
    """Recompute the order's released calculated results that depend, directly or through
    another calculated test, on `changed`, and amend those whose value moves."""
    from app.services import calculations

    rows = _current_rows(order)
    by_code = {ot.test.code: (ot, r) for ot, r in rows}
    patient = order.patient
    ctx = calculations.Context(
        age_years=results_service.age_in_days(patient.date_of_birth, utcnow()) // 365, sex=patient.sex)
    todo, seen = [changed], {changed}
    while todo:
        code = todo.pop(0)
        for dependent in calculations.dependents(code):
            ot, current = by_code.get(dependent, (None, None))
            if ot is None or current is None or current.source != "calculated" or current.status != "released":
                continue
            values = {c: r.value_num for c, (_, r) in by_code.items() if r is not None and r.value_num is not None}
            number = calculations.compute(dependent, values, ctx)
            if number is None:
                continue
            text = results_service.format_number(number, ot.test.decimals)
            if text != current.value_text:
                new = _replace(current, results_service.ParsedValue(text, number), ot.test.decimals, reason,
                               user=user, source="calculated", interpretation=current.interpretation)
                by_code[dependent] = (ot, new)
            if dependent not in seen:
                seen.add(dependent)
                todo.append(dependent)


def _interval_from_snapshot(snapshot: dict | None) -> Any:
    """The interval the released result was judged by (copied into it), as flag_for wants it:
    an amendment is flagged against what the report said, not a later catalogue edit."""
    if not snapshot:
        return None

    def num(key: str) -> Decimal | None:
        value = snapshot.get(key)
        return None if value is None else Decimal(str(value))

    return SimpleNamespace(low=num("low"), high=num("high"), critical_low=num("critical_low"),
                           critical_high=num("critical_high"), text=snapshot.get("text"))


# ---------------------------------------------------------------- reading

def for_order(order: Order) -> list[Report]:
    """Every version of the order's report, newest first (without the PDF bytes)."""
    return list(db.session.execute(select(Report).where(Report.order_id == order.id)
                                   .order_by(Report.version.desc())).scalars())


def with_pdf(report_id: int) -> Report | None:
    """One version with its bytes, in one statement (a download's only query after the user's)."""
    return db.session.execute(select(Report).where(Report.id == report_id)
                              .options(undefer(Report.pdf))).scalar_one_or_none()


def pdf(report: Report) -> bytes:
    """The stored bytes, exactly as issued: a download never renders."""
    if not report.issued:
        raise ReportRefused("This report has not been issued yet." if report.status == "rendering"
                            else "This report could not be rendered.")
    return bytes(report.pdf or b"")


def newer_version(report: Report) -> Report | None:
    return db.session.execute(select(Report).where(Report.order_id == report.order_id,
                                                   Report.version > report.version, Report.status.in_(ISSUED))
                              .order_by(Report.version.desc()).limit(1)).scalar_one_or_none()


# ---------------------------------------------------------------- public verification

@dataclass(frozen=True)
class PublicFacts:
    """All the verification page may show: nothing more personal than initials."""
    lab: str
    number: str
    version: int
    status: str
    initials: str
    issued_on: datetime
    sha256: str
    superseded_by_version: int | None


def initials(name: str) -> str:
    words = [w for w in re.split(r"[\s.]+", name) if w]
    return " ".join(f"{w[0].upper()}." for w in words[:4])


def public_facts(token: str) -> PublicFacts | None:
    """The issued version behind a QR token, or None (unknown token, or not issued)."""
    if not token or len(token) > 64:
        return None
    session = db.session
    report = session.execute(select(Report).where(Report.token == token, Report.status.in_(ISSUED))
                             .execution_options(all_tenants=True)).scalar_one_or_none()
    if report is None:
        return None
    org = session.get(Organization, report.org_id)
    full_name = session.execute(select(Patient.full_name).join(Order, Order.patient_id == Patient.id)
                                .where(Order.id == report.order_id).execution_options(all_tenants=True)).scalar_one()
    newer = session.execute(select(func.max(Report.version)).where(
        Report.org_id == report.org_id, Report.order_id == report.order_id, Report.version > report.version,
        Report.status.in_(ISSUED)).execution_options(all_tenants=True)).scalar()
    return PublicFacts(lab=org.display_name if org else "", number=report.number, version=report.version,
                       status=report.status, initials=initials(full_name), issued_on=report.released_at,
                       sha256=report.sha256 or "", superseded_by_version=newer)


def hash_matches(facts: PublicFacts, *, pdf_bytes: bytes | None = None, sha256_hex: str | None = None) -> bool:
    if pdf_bytes is not None:
        presented = hashlib.sha256(pdf_bytes).hexdigest()
    else:
        presented = (sha256_hex or "").strip().lower()
        if not SHA256_HEX.match(presented):
            raise ReportRefused("Enter the 64 hexadecimal characters of the SHA-256, or upload the PDF.",
                                field="sha256")
    return hmac.compare_digest(presented, facts.sha256)


# ---------------------------------------------------------------- settings

def _image_type(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    return None


def update_settings(org: Organization, *, accreditation: str | None = None, ulr_pattern: str | None = None,
                    logo: bytes | None = None) -> None:
    """The letterhead: accreditation text, the optional ULR pattern, the logo (PNG or JPEG)."""
    values: dict[str, Any] = {}
    if accreditation is not None:
        values["report_accreditation"] = " ".join(accreditation.split())[:400]
    if ulr_pattern is not None:
        pattern = ulr_pattern.strip().upper() or None
        if pattern is not None:
            if not re.fullmatch(r"[A-Z0-9#]{1,32}", pattern):
                raise ReportRefused("Letters, digits and # only.", field="ulr_pattern")
            format_ulr(pattern, 1)
        values["ulr_pattern"] = pattern
    if logo is not None:
        mime = _image_type(logo)
        if mime is None or len(logo) > MAX_LOGO_BYTES:
            raise ReportRefused("The logo must be a PNG or JPEG under 512 KB.", field="logo")
        values["report_logo"], values["report_logo_type"] = logo, mime
    audit.apply_changes(org, values, entity_type="organization",
                        fields=[k for k in values if k != "report_logo"])
    if logo is not None:
        audit.record("organization.report_logo_set", entity_type="organization", entity_id=org.id,
                     after={"bytes": len(logo), "type": values["report_logo_type"]}, org_id=org.id)


def set_signature(user: User, png: bytes | None) -> None:
    """The signature image printed above a pathologist's name (PNG), or None to remove it."""
    if png is not None and (_image_type(png) != "image/png" or len(png) > MAX_SIGNATURE_BYTES):
        raise ReportRefused("The signature must be a PNG under 256 KB.", field="signature")
    user.signature_png = png
    audit.record("user.signature_set" if png else "user.signature_removed", entity_type="user", entity_id=user.id,
                 after={"bytes": len(png) if png else 0})
