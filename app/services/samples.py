"""The life of a tube: collected, received at the lab, in process, done, or rejected.

Every transition is one row of TRANSITIONS, so the whole state machine can be read (and is
tested) as a table. Anything not in the table is refused with a message a technician can act
on; every accepted transition is audited with who and when.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app import audit
from app.extensions import db
from app.models import Order, OrderTest, Sample
from app.models.base import utcnow
from app.services import ServiceError, identifiers, instrument_orders

# Standard rejection reasons (CLSI GP33 / NABL 112 pre-examination nonconformities).
REJECTION_REASONS: dict[str, str] = {
    "haemolysed": "Haemolysed",
    "clotted": "Clotted",
    "insufficient": "Insufficient quantity",
    "wrong_container": "Wrong container",
    "mislabelled": "Unlabelled or mislabelled",
    "leaked": "Leaked",
    "delayed": "Delayed transport",
}

SAMPLE_STATES_ALL = ("pending", "collected", "received", "in_process", "done", "rejected")

# (state, action) -> new state. "receive" from pending covers a tube drawn at the lab itself:
# collection and receipt are recorded together.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("pending", "collect"): "collected",
    ("pending", "receive"): "received",
    ("collected", "receive"): "received",
    ("received", "start"): "in_process",
    ("in_process", "complete"): "done",
    ("received", "complete"): "done",
    ("pending", "reject"): "rejected",
    ("collected", "reject"): "rejected",
    ("received", "reject"): "rejected",
    ("in_process", "reject"): "rejected",
}

_WHY_NOT: dict[str, str] = {
    "collect": "Only a tube waiting for collection can be marked collected.",
    "receive": "This tube is already at the lab.",
    "start": "Only a received tube can go into processing.",
    "complete": "Only a tube in the lab can be completed.",
    "reject": "A tube that is done or already rejected cannot be rejected.",
}
_STATE_WORDS = {"pending": "waiting for collection", "collected": "collected", "received": "received",
                "in_process": "in process", "done": "done", "rejected": "rejected"}


class TransitionRefused(ServiceError):
    pass


@dataclass(frozen=True)
class ScanOutcome:
    barcode: str
    ok: bool
    message: str
    sample: Sample | None = None


def next_state(state: str, action: str) -> str:
    """The state after `action`, or TransitionRefused saying why not."""
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise TransitionRefused(f"{_WHY_NOT.get(action, 'Not allowed.')} "
                                f"It is {_STATE_WORDS.get(state, state)}.") from None


def by_barcode(barcode: str, *, lock: bool = False) -> Sample | None:
    stmt = select(Sample).where(Sample.barcode == barcode.strip()).options(
        selectinload(Sample.order).selectinload(Order.patient))
    if lock:
        stmt = stmt.with_for_update(of=Sample)
    return db.session.execute(stmt).scalar_one_or_none()


def _transition(sample: Sample, action: str, **fields: object) -> Sample:
    before = {"status": sample.status}
    sample.status = next_state(sample.status, action)
    for name, value in fields.items():
        setattr(sample, name, value)
    audit.record(f"sample.{action}", entity_type="sample", entity_id=sample.barcode,
                 before=before, after={"status": sample.status, **{k: v for k, v in fields.items()
                                                                    if not k.endswith("_id")}})
    return sample


def collect(sample: Sample, *, user_id: int | None, at: datetime | None = None) -> Sample:
    return _transition(sample, "collect", collected_at=at or utcnow(), collected_by_id=user_id)


def receive(sample: Sample, *, user_id: int | None, at: datetime | None = None) -> Sample:
    now = at or utcnow()
    extra: dict[str, object] = {}
    if sample.collected_at is None:
        extra = {"collected_at": now, "collected_by_id": user_id}
    received = _transition(sample, "receive", received_at=now, received_by_id=user_id, **extra)
    # In the receipt's own transaction: an analyzer that takes pushed orders gets one exactly
    # when the tube is in the lab (the listener sends it; workers/listeners.py).
    instrument_orders.queue_orders_for_sample(received)
    return received


def reject(sample: Sample, reason: str, note: str = "", *, user_id: int | None) -> Sample:
    if reason not in REJECTION_REASONS:
        raise ServiceError("Choose a rejection reason from the list.", field="reason")
    note = note.strip()
    if len(note) > 400:
        raise ServiceError("Keep the note under 400 characters.", field="note")
    return _transition(sample, "reject", rejection_reason=reason, rejection_note=note)


def start_processing(sample: Sample) -> None:
    """First result on a received tube: it is now in process (silently, no audit noise)."""
    if sample.status == "received":
        sample.status = "in_process"


def complete_if_done(sample: Sample, *, entered: OrderTest, others_waiting: int | None = None) -> None:
    """The tube is done when none of its tests but the one just `entered` waits for a result:
    one small query, not a load of every test on the tube (none when the caller counted
    `others_waiting` under the order's lock). The test just entered is left out by id, so
    the answer does not depend on whether its new status has been flushed yet, and the query
    does not flush the save's pending audit rows (they go with the commit)."""
    if sample.status not in ("received", "in_process"):
        return
    if others_waiting is not None:
        if others_waiting == 0:
            sample.status = "done"
        return
    with db.session.no_autoflush:
        waiting = db.session.execute(select(OrderTest.id).where(
            OrderTest.sample_id == sample.id, OrderTest.status == "pending", OrderTest.id != entered.id,
        ).limit(1)).first()
    if waiting is None:
        sample.status = "done"


def recollect(sample: Sample, *, user_id: int | None) -> Sample:
    """A new tube (new barcode) for the tests of a rejected one; the rejected tube is kept."""
    if sample.status != "rejected":
        raise TransitionRefused("Only a rejected tube can be recollected.")
    if db.session.execute(select(Sample.id).where(Sample.recollect_of_id == sample.id)).first():
        raise TransitionRefused("A new tube has already been made for this one.")
    # Only tests still waiting move to the new tube; a result already entered from this tube
    # stays with it (the pathologist decides whether to rerun it).
    waiting = list(db.session.execute(select(OrderTest).where(OrderTest.sample_id == sample.id,
                                                              OrderTest.status == "pending")).scalars())
    if not waiting:
        raise TransitionRefused("Every test on this tube already has a result: nothing to recollect.")
    from app.services.orders import next_barcode  # the order owns the number series
    new = Sample(order_id=sample.order_id, barcode=next_barcode(), specimen=sample.specimen,
                 container=sample.container, status="pending", recollect_of_id=sample.id)
    db.session.add(new)
    db.session.flush()
    for order_test in waiting:
        order_test.sample_id = new.id
    audit.record("sample.recollect", entity_type="sample", entity_id=sample.barcode,
                 after={"new_barcode": new.barcode})
    return new


def scan(barcode: str, action: str, *, user_id: int | None) -> ScanOutcome:
    """One scan at the receipt desk (keyboard-wedge scanner + Enter). Never raises for bad
    input: the outcome says what happened so the next tube can be scanned at once."""
    code = barcode.strip()
    if not code:
        return ScanOutcome(code, False, "Scan or type a barcode.")
    if not code.isdigit() or not identifiers.has_valid_check_digit(code):
        return ScanOutcome(code, False, "Not one of our barcodes (check digit wrong): scan again.")
    sample = by_barcode(code, lock=True)
    if sample is None:
        return ScanOutcome(code, False, "No tube with this barcode.")
    try:
        (collect if action == "collect" else receive)(sample, user_id=user_id)
    except TransitionRefused as refused:
        return ScanOutcome(code, False, refused.message, sample)
    return ScanOutcome(code, True, "Collected." if action == "collect" else "Received.", sample)


def pending_collection(branch_id: int | None = None, *, limit: int = 200) -> list[Sample]:
    """The phlebotomy list: tubes still to draw, oldest order first, STAT first."""
    # Order is named in the select list so tenant scoping covers the join (as in results.worklist).
    stmt = (select(Sample, Order.id).join(Order).where(Sample.status == "pending")
            .options(selectinload(Sample.order).selectinload(Order.patient), selectinload(Sample.tests)
                     .selectinload(OrderTest.test))
            .order_by((Order.priority == "stat").desc(), Order.created_at).limit(limit))
    if branch_id is not None:
        stmt = stmt.where(Order.branch_id == branch_id)
    return list(db.session.execute(stmt).scalars())


def set_remark(sample: Sample, text: str, *, user_id: int | None) -> Sample:
    """A quality remark that does not reject the tube ("mildly lipaemic"): the pathologist sees
    it, and results saved from the tube are not verified by rule. An empty text clears it."""
    printable = "".join(ch if ch.isprintable() else " " for ch in text or "")
    remark = " ".join(printable.split())
    if len(remark) > 400:
        raise ServiceError("Keep the remark under 400 characters.", field="remark")
    audit.apply_changes(sample, {"remark": remark}, entity_type="sample", fields=("remark",), key="barcode")
    return sample
