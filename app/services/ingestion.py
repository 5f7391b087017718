"""From a stored analyzer message to results on the right tubes.

The listener has already committed the raw bytes (and ACKed them). Here, in a worker, each
stored message is parsed with its instrument's profile and every result is put on the ordered
test of the *received* tube whose barcode is exactly the sample id the analyzer sent. Anything
else - an unknown or unreceived tube, an unmapped code, a test not ordered on that tube - goes
to the unmatched queue for a technician. Nothing is attached to a guessed order, and QC or
calibration messages never become patient results.

Each message is processed in its own transaction under a row lock taken with SKIP LOCKED,
and its outcome moves off 'stored' in that same transaction: two workers, or a worker
restarted halfway, never attach a result twice.
"""
from __future__ import annotations

import logging
from decimal import Decimal

from sqlalchemy import select

from app import audit
from app.extensions import db
from app.integrations.instruments import astm, hl7
from app.integrations.instruments.parsed import ParsedMessage, ParsedResult, ProtocolError
from app.models import Instrument, InstrumentCode, InstrumentMessage, OrderTest, Sample, UnmatchedResult
from app.models.base import utcnow
from app.security import use_tenant
from app.services import ServiceError, results, samples

log = logging.getLogger("lis.ingestion")


def parse(message: InstrumentMessage, instrument: Instrument) -> ParsedMessage:
    profile = instrument.parser_profile()
    if message.protocol == "hl7":
        return hl7.extract(hl7.parse_message(message.raw, encoding=profile.get("encoding")), profile)
    return astm.extract(message.raw, profile)


def process_pending(limit: int = 100) -> int:
    """Process up to `limit` stored messages of any lab, one transaction each. Returns how
    many were processed. Safe to run in several workers at once."""
    done = 0
    while done < limit:
        session = db.session
        use_tenant(session, None)
        row = session.execute(
            select(InstrumentMessage.id, InstrumentMessage.org_id).where(InstrumentMessage.outcome == "stored")
            .order_by(InstrumentMessage.id).limit(1).with_for_update(skip_locked=True)
            .execution_options(all_tenants=True)).first()
        if row is None:
            session.rollback()
            break
        use_tenant(session, row.org_id)
        with audit.acting_as(audit.AuditContext(actor_label="instrument", org_id=row.org_id)):
            try:
                process(session.get(InstrumentMessage, row.id))
                session.commit()
            except Exception:  # one bad message must not stop the others; it stays 'stored' for a retry
                session.rollback()
                log.exception("instrument message %s could not be processed", row.id)
                _mark_failed(row.id, row.org_id)
        done += 1
    return done


def _mark_failed(message_id: int, org_id: int) -> None:
    use_tenant(db.session, org_id)
    message = db.session.get(InstrumentMessage, message_id)
    if message is not None and message.outcome == "stored":
        message.outcome, message.detail, message.processed_at = "rejected", "Processing failed; see the logs.", utcnow()
        db.session.commit()


def process(message: InstrumentMessage) -> InstrumentMessage:
    instrument = db.session.get(Instrument, message.instrument_id)
    try:
        parsed = parse(message, instrument)
    except ProtocolError as exc:
        return _finish(message, "rejected", f"Not a readable message: {exc}")
    message.control_id, message.message_type = parsed.control_id[:64], parsed.message_type[:32]
    notes = list(parsed.warnings)
    if parsed.kind == "qc" or (parsed.specimens and all(s.qc for s in parsed.specimens)):
        return _finish(message, "qc", "Quality control or calibration: kept for QC, not patient results.")
    if parsed.kind == "query":
        return _finish(message, "query", f"Host query for {', '.join(parsed.query_ids) or 'no id'}.")
    if parsed.kind != "results":
        return _finish(message, "other", f"{parsed.message_type or 'Message'} stored; no results in it.")
    codes = {c.code: c for c in db.session.execute(
        select(InstrumentCode).where(InstrumentCode.instrument_id == instrument.id)).scalars()}
    attached = unmatched = 0
    for specimen in parsed.specimens:
        if specimen.qc:
            notes.append(f"QC specimen {specimen.sample_id} skipped.")
            continue
        sample = _received_sample(specimen.sample_id)
        numeric_codes = {r.code for r in specimen.results if r.value_type in ("NM", "SN")}
        for item in specimen.results:
            # IHE LAW analyzers (Roche cobas pro/pure) send a coded CE row next to the NM row of the
            # same test (instruments.md §1.5, §4). It is not a second value: saved, it became a new
            # attempt that replaced the number (0,93 -> "1.00") and marked the real value 'rerun'.
            if item.value_type in ("CE", "CWE", "CNE") and item.code in numeric_codes:
                notes.append(f"{item.value_type} row of {item.code} kept in the message only (it goes with "
                             f"the numeric result).")
                continue
            reason = _attach(message, instrument, sample, specimen.sample_id, item, codes)
            if reason is None:
                attached += 1
            else:
                unmatched += 1
                _to_unmatched(message, instrument, specimen.sample_id, item, codes.get(item.code), reason)
    message.results_attached, message.results_unmatched = attached, unmatched
    outcome = "matched" if attached and not unmatched else "partly_matched" if attached else "unmatched"
    if not attached and not unmatched:
        outcome = "other"
        notes.append("No results in the message.")
    return _finish(message, outcome, "; ".join(notes))


def _finish(message: InstrumentMessage, outcome: str, detail: str) -> InstrumentMessage:
    message.outcome, message.detail, message.processed_at = outcome, detail[:4000], utcnow()
    return message


def _received_sample(sample_id: str) -> Sample | None:
    if not sample_id:
        return None
    return db.session.execute(select(Sample).where(Sample.barcode == sample_id)).scalar_one_or_none()


def _attach(message: InstrumentMessage, instrument: Instrument, sample: Sample | None, sample_id: str,
            item: ParsedResult, codes: dict[str, InstrumentCode]) -> str | None:
    """Put one result on its ordered test; return why not when it cannot be."""
    if sample is None:
        return "unknown_sample"
    if sample.status == "rejected":
        return "sample_rejected"
    if sample.status not in results.ENTERABLE_SAMPLE_STATES:
        return "not_received"
    mapping = codes.get(item.code)
    if mapping is None:
        return "unknown_code"
    order_test = db.session.execute(select(OrderTest).where(
        OrderTest.sample_id == sample.id, OrderTest.test_id == mapping.test_id)).scalar_one_or_none()
    if order_test is None:
        return "not_ordered"
    if not item.value:
        return "empty_value"
    entry = results.Entry(raw=item.value, comment="\n".join(item.comments), source="instrument",
                          instrument_id=instrument.id, message_id=message.id,
                          instrument_flags="~".join(item.flags), factor=mapping.factor)
    savepoint = db.session.begin_nested()
    try:
        results.save(order_test, entry, user_id=None)
    except ServiceError as refused:
        savepoint.rollback()
        return "already_verified" if "already" in refused.message else "invalid_value"
    savepoint.commit()
    return None


def _to_unmatched(message: InstrumentMessage, instrument: Instrument, sample_id: str, item: ParsedResult,
                  mapping: InstrumentCode | None, reason: str) -> None:
    db.session.add(UnmatchedResult(
        message_id=message.id, instrument_id=instrument.id, sample_id=sample_id[:64], code=item.code[:40],
        test_id=mapping.test_id if mapping else None, value=item.value[:400], units=item.units[:40],
        flags="~".join(item.flags)[:60], comment="\n".join(item.comments)[:4000],
        observed_at=item.observed_at if item.observed_at and item.observed_at.tzinfo else None, reason=reason))


# ---------------------------------------------------------------- the technician's queue

UNMATCHED_REASONS = {
    "unknown_sample": "No tube with this id",
    "not_received": "Tube not received yet",
    "sample_rejected": "Tube was rejected",
    "unknown_code": "Instrument code not mapped",
    "not_ordered": "Test not ordered on this tube",
    "empty_value": "No value",
    "already_verified": "Result already verified",
    "invalid_value": "Value not accepted",
}


def open_unmatched(limit: int = 200) -> list[UnmatchedResult]:
    return list(db.session.execute(select(UnmatchedResult).where(UnmatchedResult.status == "open")
                                   .order_by(UnmatchedResult.id.desc()).limit(limit)).scalars())


def assign(unmatched: UnmatchedResult, barcode: str, *, test_id: int | None, user_id: int) -> None:
    """A technician puts an unmatched result on a tube they name (audited). The same rules as
    automatic matching apply: a received tube, and the test ordered on it."""
    if unmatched.status != "open":
        raise ServiceError("This result has already been dealt with.")
    sample = samples.by_barcode(barcode)
    if sample is None:
        raise ServiceError("No tube with this barcode.", field="barcode")
    if sample.status not in results.ENTERABLE_SAMPLE_STATES:
        raise ServiceError("Receive the tube first: results need a received tube.", field="barcode")
    test_id = test_id or unmatched.test_id
    if test_id is None:
        raise ServiceError("Choose the test this value is for.", field="test_id")
    order_test = db.session.execute(select(OrderTest).where(OrderTest.sample_id == sample.id,
                                                            OrderTest.test_id == test_id)).scalar_one_or_none()
    if order_test is None:
        raise ServiceError("That test is not ordered on this tube.", field="test_id")
    mapping = db.session.execute(select(InstrumentCode).where(
        InstrumentCode.instrument_id == unmatched.instrument_id, InstrumentCode.code == unmatched.code,
        InstrumentCode.test_id == test_id)).scalar_one_or_none()
    result = results.save(order_test, results.Entry(
        raw=unmatched.value, comment=unmatched.comment, source="instrument", instrument_id=unmatched.instrument_id,
        message_id=unmatched.message_id, instrument_flags=unmatched.flags,
        factor=mapping.factor if mapping else Decimal(1)), user_id=user_id)
    before = {"status": unmatched.status}
    unmatched.status, unmatched.result_id = "assigned", result.id
    unmatched.resolved_by_id, unmatched.resolved_at = user_id, utcnow()
    audit.record("unmatched_result.assigned", entity_type="unmatched_result", entity_id=unmatched.id, before=before,
                 after={"status": "assigned", "barcode": sample.barcode, "sent_id": unmatched.sample_id,
                        "result_id": result.id})


def discard(unmatched: UnmatchedResult, why: str, *, user_id: int) -> None:
    why = why.strip()
    if not why:
        raise ServiceError("Say why this result is discarded.", field="why")
    if unmatched.status != "open":
        raise ServiceError("This result has already been dealt with.")
    unmatched.status, unmatched.resolved_by_id, unmatched.resolved_at = "discarded", user_id, utcnow()
    audit.record("unmatched_result.discarded", entity_type="unmatched_result", entity_id=unmatched.id,
                 before={"status": "open"}, after={"status": "discarded", "why": why[:400]})


