"""The pathologist's work: the verification queue, verifying (by hand or by rule), sending a
result back for a rerun, critical-value calls, interpretive comments and release.

Result states (one table, tested as a table): entered -> verified -> released; entered or
verified -> rerun (sent back: a new attempt follows). Every change is audited. Two people
acting on the same result at once cannot both succeed: the order row is locked and each
result carries a version checked on every UPDATE (optimistic locking), and the page's
versions must still be current.
"""
from __future__ import annotations

import logging

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Integer, bindparam, select
from sqlalchemy.orm import selectinload

from app import audit
from app.extensions import db
from app.models import (CannedComment, CriticalCall, LabTest, Order, OrderTest, Patient, Result, Sample, User)
from app.models.base import utcnow
from app.models.result import CALL_RECIPIENTS
from app.queries import Query, org
from app.services import ServiceError, calculations, identifiers

log = logging.getLogger(__name__)

# (state, action) -> new state
TRANSITIONS: dict[tuple[str, str], str] = {
    ("entered", "verify"): "verified",
    ("entered", "autoverify"): "verified",
    ("verified", "release"): "released",
    ("entered", "send_back"): "rerun",
    ("verified", "send_back"): "rerun",
}
RESULT_STATES = ("entered", "verified", "released", "rerun", "amended")


class VerificationRefused(ServiceError):
    pass


class ChangedMeanwhile(VerificationRefused):
    """Someone else changed or verified a result after this page was opened."""


def next_state(state: str, action: str) -> str:
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        words = {"verify": "verified", "autoverify": "verified", "release": "released", "send_back": "sent back"}
        raise VerificationRefused(f"A result that is {state} cannot be {words.get(action, action)}.") from None


# ---------------------------------------------------------------- autoverification

@dataclass(frozen=True)
class AutoverifyDecision:
    verify: bool
    reasons: tuple[str, ...]  # why not, when not


def autoverify_decision(*, enabled: bool, flag: str | None, critical: bool, delta_failed: bool,
                        instrument_flags: str, comment: str, sample_remark: str, has_interval: bool,
                        numeric: bool) -> AutoverifyDecision:
    """The one rule. Verified by rule only when every condition holds; otherwise a person
    verifies it, and the reasons say why it was held."""
    checks = (
        (enabled, "autoverification is off for this test"),
        (has_interval, "no reference interval"),
        (flag is None, f"flagged {flag}" if flag else ""),
        (not critical, "critical value"),
        (not delta_failed, "delta check failed"),
        (not instrument_flags.strip(" ~N"), f"instrument flags {instrument_flags}"),
        (not comment.strip(), "has a comment"),
        (not sample_remark.strip(), "the tube has a remark"),
        (numeric, "not a numeric result"),
    )
    reasons = tuple(why for ok, why in checks if not ok)
    return AutoverifyDecision(not reasons, reasons)


def try_autoverify(result: Result, order_test: OrderTest, test: LabTest, sample: Sample | None) -> AutoverifyDecision:
    decision = autoverify_decision(
        enabled=test.autoverify, flag=result.flag, critical=result.critical, delta_failed=result.delta_failed,
        instrument_flags=result.instrument_flags or "", comment=result.comment or "",
        sample_remark=sample.remark if sample is not None else "", has_interval=result.interval is not None,
        numeric=result.value_num is not None)
    if decision.verify and result.status == "entered" and result.source != "calculated":
        result.status = next_state(result.status, "autoverify")
        result.autoverified, result.verified_at, result.verified_by_id = True, utcnow(), None
        order_test.status = "verified"
        audit.record("result.autoverified", entity_type="result", entity_id=result.id,
                     before={"status": "entered"}, after={"status": "verified", "value_text": result.value_text,
                                                          "rule": "within interval, no flags"})
    return decision


# ---------------------------------------------------------------- the queue

@dataclass(frozen=True)
class QueueItem:
    order_id: int
    accession: str
    patient_name: str
    mrn: str
    priority: str
    created_at: datetime
    waiting: int
    criticals: int
    delta_failures: int


def _queue_query() -> Query:
    orders, patients = Order.__table__, Patient.__table__
    return Query("verification_queue", select(
        orders.c.id, orders.c.accession, patients.c.full_name, patients.c.mrn, orders.c.priority, orders.c.created_at,
        orders.c.verify_waiting, orders.c.verify_criticals, orders.c.verify_deltas,
    ).select_from(orders.join(patients, patients.c.id == orders.c.patient_id))
        .where(org(orders), org(patients), orders.c.verify_waiting > 0)
        .order_by(orders.c.verify_rank, orders.c.created_at)
        .limit(bindparam("limit", type_=Integer)).offset(bindparam("offset", type_=Integer)))


_QUEUE = _queue_query()


def queue(*, limit: int = 100, offset: int = 0) -> list[QueueItem]:
    """Orders with results waiting for verification: critical first, then STAT, then oldest.

    Reads the per-order counts a trigger on result keeps (migration 0013) instead of
    aggregating every waiting result on each load: the cost follows the orders waiting,
    through a partial index, not the results. The pathologist's home page: a precompiled
    query (app/queries.py)."""
    return [QueueItem(*row) for row in _QUEUE.rows(limit=limit, offset=offset)]


# ---------------------------------------------------------------- one order

@dataclass
class ReviewRow:
    order_test: OrderTest
    result: Result | None
    previous: Result | None  # the patient's last current result of this test in an earlier order
    calls: list[CriticalCall] = field(default_factory=list)
    rerun_reason: str = ""


def review(order: Order) -> list[ReviewRow]:
    tests = list(db.session.execute(
        select(OrderTest).where(OrderTest.order_id == order.id).order_by(OrderTest.id)
        .options(selectinload(OrderTest.test).selectinload(LabTest.department), selectinload(OrderTest.sample)))
        .scalars())
    ids = [ot.id for ot in tests]
    current = {r.order_test_id: r for r in db.session.execute(
        select(Result).where(Result.order_test_id.in_(ids), Result.is_current)).scalars()} if ids else {}
    reruns = dict(db.session.execute(
        select(Result.order_test_id, Result.rerun_reason).where(Result.order_test_id.in_(ids), Result.status == "rerun")
        .order_by(Result.id)).all()) if ids else {}
    previous = _previous_results(order, [ot.test_id for ot in tests])
    calls: dict[int, list[CriticalCall]] = {}
    result_ids = [r.id for r in current.values()]
    if result_ids:
        for call in db.session.execute(select(CriticalCall).where(CriticalCall.result_id.in_(result_ids))
                                       .order_by(CriticalCall.called_at)).scalars():
            calls.setdefault(call.result_id, []).append(call)
    rows = []
    for ot in tests:
        result = current.get(ot.id)
        rows.append(ReviewRow(ot, result, previous.get(ot.test_id), calls.get(result.id, []) if result else [],
                              reruns.get(ot.id, "") if result is None else ""))
    return rows


def _previous_results(order: Order, test_ids: list[int]) -> dict[int, Result]:
    """For each test, the patient's most recent current result from an earlier order."""
    if not test_ids:
        return {}
    # DISTINCT ON keeps the newest row per test (PostgreSQL), in one statement.
    rows = db.session.execute(
        select(Result, OrderTest.id).join(OrderTest, Result.order_test_id == OrderTest.id)
        .where(Result.patient_id == order.patient_id, Result.test_id.in_(test_ids), Result.is_current,
               OrderTest.order_id != order.id)
        .distinct(Result.test_id).order_by(Result.test_id, Result.entered_at.desc())).scalars()
    return {r.test_id: r for r in rows}


# ---------------------------------------------------------------- acting

def _lock(order: Order) -> None:
    db.session.execute(select(Order.id).where(Order.id == order.id).with_for_update())


def _current(order: Order, result_ids: list[int]) -> list[Result]:
    return list(db.session.execute(
        select(Result, OrderTest.id).join(OrderTest, Result.order_test_id == OrderTest.id)
        .where(OrderTest.order_id == order.id, Result.id.in_(result_ids))).scalars())


def verify(order: Order, seen: dict[int, int], *, user: User) -> list[Result]:
    """Verify the results the pathologist had on screen: `seen` maps result id -> the version
    shown. A result changed, re-entered, sent back or verified by someone else since then is
    refused with a message, and nothing is applied."""
    if not seen:
        raise VerificationRefused("Choose the results to verify.")
    _lock(order)
    found = {r.id: r for r in _current(order, list(seen))}
    problems = []
    for result_id, version in seen.items():
        result = found.get(result_id)
        if result is None:
            problems.append("A result on the page is not part of this order.")
        elif result.status != "entered" or not result.is_current:
            who = db.session.get(User, result.verified_by_id) if result.verified_by_id else None
            by = f" by {who.full_name}" if who else (" by rule" if result.autoverified else "")
            problems.append(f"{result.order_test.test.name} was already {result.status}{by}.")
        elif result.version != version:
            problems.append(f"{result.order_test.test.name} changed after you opened the order; review it again.")
    if problems:
        raise ChangedMeanwhile(" ".join(problems))
    now = utcnow()
    for result in found.values():
        result.status = next_state(result.status, "verify")
        result.verified_by_id, result.verified_at = user.id, now
        result.order_test.status = "verified"
        audit.record("result.verified", entity_type="result", entity_id=result.id, before={"status": "entered"},
                     after={"status": "verified", "value_text": result.value_text, "flag": result.flag})
    db.session.flush()  # the version check happens here: a concurrent change raises StaleDataError
    from app.services import notifications  # a verified critical value also goes to the referring doctor
    for result in found.values():
        if result.critical:
            try:  # queued after commit; the phone call stays the rule, a message never blocks verifying
                with db.session.begin_nested():
                    notifications.critical_value(result)
            except Exception:
                log.exception("the critical-value message for result %s could not be queued", result.id)
    return list(found.values())


def send_back(order: Order, result_id: int, reason: str, *, user: User) -> Result:
    """Back to the bench for a rerun: the result stays in the history with the reason, the
    test waits for a new value, and the technician's grid shows why. The calculated results
    made from it (LDL from cholesterol) go back with it, so nothing computed from the old
    value can be verified or released; they are recomputed when the new value is saved."""
    reason = " ".join(reason.split())
    if not reason:
        raise VerificationRefused("Say why the test should be rerun.", field="reason")
    _lock(order)
    result = next(iter(_current(order, [result_id])), None)
    if result is None or not result.is_current:
        raise VerificationRefused("This result is no longer current.")
    if result.source == "calculated":
        raise VerificationRefused(f"{result.order_test.test.name} is calculated from other results: send back "
                                  "the result it is calculated from.")
    _send_back_one(result, reason[:400])
    dependents = calculations.dependents(result.order_test.test.code)
    if dependents:
        for derived in db.session.execute(
                select(Result, OrderTest.id, LabTest.id).join(OrderTest, Result.order_test_id == OrderTest.id)
                .join(LabTest, OrderTest.test_id == LabTest.id)
                .where(OrderTest.order_id == order.id, LabTest.code.in_(dependents), Result.is_current,
                       Result.source == "calculated", Result.status.in_(("entered", "verified")))).scalars():
            _send_back_one(derived, f"Recalculated when {result.order_test.test.name} is rerun ({reason})"[:400])
    db.session.flush()
    return result


def _send_back_one(result: Result, reason: str) -> None:
    before = result.status
    result.status = next_state(result.status, "send_back")
    result.is_current, result.rerun_reason = False, reason
    result.order_test.status = "pending"
    audit.record("result.sent_back", entity_type="result", entity_id=result.id, before={"status": before},
                 after={"status": "rerun", "reason": reason})


def record_call(result: Result, *, recipient_kind: str, recipient_name: str, phone: str, read_back: bool,
                note: str = "", user: User) -> CriticalCall:
    """A critical value telephoned, with read-back. Needed before a critical result is released."""
    errors = {}
    if not result.critical:
        errors["result"] = "Only a critical result needs a call."
    if recipient_kind not in CALL_RECIPIENTS:
        errors["recipient_kind"] = "Say whom you called: doctor, patient, ward or other."
    name = " ".join(recipient_name.split())
    if not name:
        errors["recipient_name"] = "Give the name of the person you spoke to."
    try:
        phone = identifiers.normalize_mobile(phone) if phone.strip() else ""
    except ValueError:
        phone = phone.strip()
    if not phone or len(phone) > 20:
        errors["phone"] = "Give the number you called."
    if not read_back:
        errors["read_back"] = "The value must be read back by the person called before the call counts."
    if errors:
        first = next(iter(errors.items()))
        raise VerificationRefused(first[1], field=first[0])
    call = CriticalCall(result_id=result.id, recipient_kind=recipient_kind, recipient_name=name[:200], phone=phone,
                        read_back=True, note=note.strip()[:400], called_by_id=user.id)
    audit.add_created(call, entity_type="critical_call",
                      fields=("result_id", "recipient_kind", "recipient_name", "phone", "read_back"),
                      extra={"value": result.value_text, "flag": result.flag})
    return call


def set_interpretation(result: Result, text: str, *, user: User) -> None:
    if result.status not in ("entered", "verified"):
        raise VerificationRefused("A released result is changed by amendment, not here.")
    audit.apply_changes(result, {"interpretation": text.strip()[:4000]}, entity_type="result",
                        fields=("interpretation",))


def release(order: Order, *, user: User) -> list[Result]:
    """Release the order's verified results (the report is made from them). A critical result
    without a read-back call is refused, and so nothing is released."""
    _lock(order)
    verified = list(db.session.execute(
        select(Result, OrderTest.id).join(OrderTest, Result.order_test_id == OrderTest.id)
        .where(OrderTest.order_id == order.id, Result.is_current, Result.status == "verified")).scalars())
    if not verified:
        raise VerificationRefused("Nothing verified to release.")
    called = set(db.session.execute(select(CriticalCall.result_id).where(
        CriticalCall.result_id.in_([r.id for r in verified if r.critical]))).scalars())
    missing = [r.order_test.test.name for r in verified if r.critical and r.id not in called]
    if missing:
        raise VerificationRefused(f"Record the critical-value call first: {', '.join(missing)}.")
    now = utcnow()
    for result in verified:
        result.status = next_state(result.status, "release")
        result.released_at = now
        result.order_test.status = "released"
    audit.record("order.released", entity_type="order", entity_id=order.accession,
                 after={"results": [r.id for r in verified], "by": user.id})
    db.session.flush()
    from app.services import reports  # the report version for what was released, queued after commit
    reports.request_report(order, user=user)
    return verified


def criticals_register(since: datetime, until: datetime) -> list[tuple[Result, list[CriticalCall]]]:
    results = list(db.session.execute(
        select(Result).where(Result.critical, Result.entered_at >= since, Result.entered_at < until)
        .order_by(Result.entered_at.desc())).scalars())
    calls: dict[int, list[CriticalCall]] = {}
    if results:
        for call in db.session.execute(select(CriticalCall).where(
                CriticalCall.result_id.in_([r.id for r in results]))).scalars():
            calls.setdefault(call.result_id, []).append(call)
    return [(r, calls.get(r.id, [])) for r in results]


def canned_comments(test_id: int | None = None) -> list[CannedComment]:
    stmt = select(CannedComment).where(CannedComment.active).order_by(CannedComment.code)
    if test_id is not None:
        stmt = stmt.where((CannedComment.test_id == test_id) | CannedComment.test_id.is_(None))
    return list(db.session.execute(stmt).scalars())


def rerun_reasons(order_test_ids: list[int]) -> dict[int, str]:
    """For ordered tests waiting again after a send-back: the latest reason given, so the
    technician's grid can say why the test is back on the bench."""
    if not order_test_ids:
        return {}
    rows = db.session.execute(
        select(Result.order_test_id, Result.rerun_reason, OrderTest.id)
        .join(OrderTest, Result.order_test_id == OrderTest.id)
        .where(Result.order_test_id.in_(order_test_ids), Result.status == "rerun", Result.rerun_reason != "",
               OrderTest.status == "pending")
        .distinct(Result.order_test_id).order_by(Result.order_test_id, Result.id.desc()))
    return {order_test_id: reason for order_test_id, reason, _ in rows}
