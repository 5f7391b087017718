"""Orders pushed to HL7 analyzers when a tube is received (issue 4, item 6).

An analyzer whose instrument has `send_orders` set gets an ORM^O01 for each received tube with
pending tests it has codes for. This module only queues: it writes an `instrument_order` row
(the outbox) in the caller's transaction, so the order exists exactly when the receipt does.
The listener process sends it on the analyzer's MLLP connection and records the ACK
(workers/listeners.py). Analyzers that ask instead (Mindray QRY^Q02, ASTM Q) are answered by
the listener from the same data and need nothing from here.
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime

from sqlalchemy import func, select

from app import audit
from app.extensions import db
from app.formatting import IST
from app.integrations.instruments import hl7
from app.models import Instrument, InstrumentCode, OrderTest, Sample
from app.models.base import utcnow
from app.models.instrument_order import InstrumentOrder
from app.services import ServiceError

ORDER_STYLE = "ORM^O01"  # the only order message built (hl7.build_order_message)
RECEIVED_STATES = ("received", "in_process")


def queue_orders_for_sample(sample: Sample) -> list[InstrumentOrder]:
    """Queue one ORM^O01 per instrument that wants this tube's pending tests; returns the rows
    added. Idempotent: nothing is added when an instrument's latest row for the tube carries the
    same tests. When the tests changed, a still-queued row is superseded (never sent) and a new
    one carries the whole current list. A tube that is not received gets nothing."""
    if sample.status not in RECEIVED_STATES:
        return []
    added = []
    for instrument, codes in _wanted_codes(sample).items():
        latest = db.session.execute(
            select(InstrumentOrder).where(InstrumentOrder.sample_id == sample.id,
                                          InstrumentOrder.instrument_id == instrument.id)
            .order_by(InstrumentOrder.id.desc()).limit(1)).scalar_one_or_none()
        if latest is not None and latest.test_codes == "~".join(codes):
            continue
        if latest is not None and latest.status == "queued":
            latest.status, latest.error = "superseded", "The tube's tests changed; a new order replaces it."
        added.append(_queue(sample, instrument, codes))
    return added


def _wanted_codes(sample: Sample) -> dict[Instrument, list[str]]:
    """Instrument -> its codes for the tube's pending tests (one code per test, the lowest,
    when an admin mapped two codes to one test), for active HL7 instruments with send_orders.
    Every tenant model read has a column selected, so the tenant filter applies to each."""
    rows = db.session.execute(
        select(Instrument, InstrumentCode.code, OrderTest.test_id)
        .join(InstrumentCode, InstrumentCode.instrument_id == Instrument.id)
        .join(OrderTest, OrderTest.test_id == InstrumentCode.test_id)
        .where(OrderTest.sample_id == sample.id, OrderTest.status == "pending", Instrument.send_orders,
               Instrument.active, Instrument.protocol == "hl7")).all()
    per_test: dict[Instrument, dict[int, str]] = defaultdict(dict)
    for instrument, code, test_id in rows:
        known = per_test[instrument].get(test_id)
        per_test[instrument][test_id] = code if known is None else min(known, code)
    return {instrument: sorted(codes.values()) for instrument, codes in per_test.items()}


def _queue(sample: Sample, instrument: Instrument, codes: list[str]) -> InstrumentOrder:
    order, patient = sample.order, sample.order.patient
    control_id = uuid.uuid4().hex[:20]
    payload = hl7.build_order_message(
        sample_id=sample.barcode, patient_name=patient.full_name, patient_id=patient.mrn, sex=patient.sex,
        dob=patient.date_of_birth, priority=order.priority, test_codes=codes, sender=("LIS", ""),
        receiver=(instrument.name, ""), control_id=control_id, now=datetime.now(IST), style=ORDER_STYLE)
    row = InstrumentOrder(instrument_id=instrument.id, sample_id=sample.id, control_id=control_id,
                          message_type=ORDER_STYLE, test_codes="~".join(codes), payload=payload)
    db.session.add(row)
    audit.record("instrument_order.queued", entity_type="sample", entity_id=sample.barcode,
                 after={"instrument": instrument.name, "tests": codes, "control_id": control_id})
    return row


def orders_for_sample(sample: Sample) -> list[InstrumentOrder]:
    """Every order row of a tube, oldest first (what was pushed, and what the analyzer said)."""
    return list(db.session.execute(select(InstrumentOrder).where(InstrumentOrder.sample_id == sample.id)
                                   .order_by(InstrumentOrder.id)).scalars())


# ---------------------------------------------------------------- what the floor sees

def recent(instrument_id: int, *, status: str | None = None, limit: int = 100) -> list[tuple[InstrumentOrder, str]]:
    """An instrument's latest order rows with their tube's barcode, newest first."""
    stmt = (select(InstrumentOrder, Sample.barcode).join(Sample, Sample.id == InstrumentOrder.sample_id)
            .where(InstrumentOrder.instrument_id == instrument_id))
    if status:
        stmt = stmt.where(InstrumentOrder.status == status)
    return [(row, barcode) for row, barcode in
            db.session.execute(stmt.order_by(InstrumentOrder.id.desc()).limit(limit)).all()]


def open_counts() -> dict[int, dict[str, int]]:
    """Per instrument: orders still waiting to go (queued) and orders that failed, for the
    status screen (a failed order needs a person: the analyzer refused it or never answered)."""
    counts: dict[int, dict[str, int]] = {}
    for instrument_id, status, n in db.session.execute(
            select(InstrumentOrder.instrument_id, InstrumentOrder.status, func.count(InstrumentOrder.id))
            .where(InstrumentOrder.status.in_(("queued", "failed")))
            .group_by(InstrumentOrder.instrument_id, InstrumentOrder.status)):
        counts.setdefault(instrument_id, {})[status] = n
    return counts


def retry(order: InstrumentOrder, *, user_id: int) -> None:
    """Send a failed order again (the same bytes: the analyzer can tell it is the same order),
    after someone fixed what made it fail (a code map, the analyzer's queue). Audited."""
    if order.status != "failed":
        raise ServiceError("Only a failed order can be sent again.")
    before = {"status": order.status, "attempts": order.attempts, "ack_code": order.ack_code, "error": order.error}
    order.status, order.attempts, order.next_attempt_at = "queued", 0, utcnow()
    order.ack_code, order.error, order.answered_at = "", "", None
    audit.record("instrument_order.retried", entity_type="instrument_order", entity_id=order.id, before=before,
                 after={"status": "queued", "by_user_id": user_id})
