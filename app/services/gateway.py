"""Razorpay on a bill: payment links and UPI QR codes, webhook intake, and the clerk's way
out for gateway money that could not be applied on its own.

Webhook rules (../shared/reference/india.md §3.3):

- the signature is checked over the raw body text; a bad or missing one is stored as the
  record of the attempt (signature_valid false) and refused with 400;
- a valid delivery is stored and COMMITTED before anything else (durable before ACK), keyed
  on x-razorpay-event-id: Razorpay delivers the same event more than once, so a repeat only
  counts `deliveries` and is answered 200 without being processed again;
- events come in any order (payment.failed then payment.captured for a UPI retry; order.paid
  before payment.captured). Each gateway payment's state is one GatewayPayment row, locked
  FOR UPDATE, moving only forward: captured is final;
- a captured payment is applied to its bill exactly once (billing.apply_payment under the
  bill lock; Payment's unique (org, gateway_payment_id) is the last guard). Money for an
  unknown bill, or beyond what the bill still owes, goes to the exceptions queue, never onto
  a bill by guesswork.

A webhook is not tenant-scoped: the organization comes from `notes.org`, which every link and
QR made here carries (with `notes.bill`), then from our own link/payment rows, and in a
single-lab installation from the only active organization.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import current_app
from sqlalchemy import func, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from app import audit
from app.extensions import db
from app.integrations import razorpay_gateway as rz
from app.models import (Bill, BillingException, GatewayEvent, GatewayPayment, Organization, Payment, PaymentLink,
                        Refund)
from app.security import use_tenant
from app.services import ServiceError, billing, billing_exceptions

log = logging.getLogger(__name__)

PROVIDER = "razorpay"
MAX_INVALID_BODY = 16_000  # an unsigned body is kept as evidence, not as a way to fill the disk
LINK_DAYS = 7  # a payment link lasts a week; the due amount it asks for may change after that
QR_HOURS = 2  # a QR on the desk screen is for the patient standing there
DEFER_UNKNOWN_REFUND = timedelta(minutes=15)  # a refund.processed may beat the refund's own commit
GIVE_UP_AFTER = timedelta(hours=24)  # Razorpay itself stops retrying after 24 h (india.md §3.3)

# Events that carry a payment, and the state each one proves. order.paid, payment_link.paid,
# partially_paid and qr_code.credited are all sent once the payment is captured.
PAYMENT_EVENTS = {
    "payment.authorized": "authorized", "payment.failed": "failed", "payment.captured": "captured",
    "order.paid": "captured", "payment_link.paid": "captured", "payment_link.partially_paid": "captured",
    "qr_code.credited": "captured",
}
# Only forward: failed may still become authorized/captured (a UPI retry), captured is final.
STATUS_RANK = {"created": 0, "failed": 1, "authorized": 2, "captured": 3, "refunded": 4}
LINK_STATUS = {"payment_link.paid": "paid", "payment_link.partially_paid": "partially_paid",
               "payment_link.expired": "expired", "payment_link.cancelled": "cancelled",
               "qr_code.credited": "paid", "qr_code.closed": "closed"}
EXCEPTION_KINDS = ("unknown_bill", "already_paid")  # the ones this module opens and can resolve


class GatewayFailed(ServiceError):
    """Razorpay refused or could not be reached (the message says which)."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def client() -> rz.RazorpayGateway | None:
    return rz.RazorpayGateway.from_config(current_app.config)


def configured() -> bool:
    return client() is not None


# ---------------------------------------------------------------- links and QR codes

def links_for(bill: Bill) -> list[PaymentLink]:
    return list(db.session.execute(select(PaymentLink).where(PaymentLink.bill_id == bill.id)
                                   .order_by(PaymentLink.id.desc())).scalars())


def create_link(bill: Bill, *, kind: str = "payment_link", actor_id: int | None,
                accept_partial: bool = False) -> PaymentLink:
    """A Razorpay UPI payment link (or single-use UPI QR) for what the bill still owes.

    A repeated request (a double click, an API retry) while a link for the same amount is
    still open gets that link back rather than a second one. The caller commits."""
    if kind not in ("payment_link", "qr_code"):
        raise ServiceError("Choose a payment link or a UPI QR code.", field="kind")
    gateway = client()
    if gateway is None:
        raise ServiceError("The Razorpay gateway is not configured (RAZORPAY_KEY_ID and RAZORPAY_KEY_SECRET).")
    if bill.status == "cancelled":
        raise ServiceError("This bill is cancelled.")
    due = bill.due_paise
    if due <= 0:
        raise ServiceError("Nothing is due on this bill.")
    existing = db.session.execute(select(PaymentLink).where(
        PaymentLink.bill_id == bill.id, PaymentLink.kind == kind, PaymentLink.amount_paise == due,
        PaymentLink.status == "created").order_by(PaymentLink.id.desc())).scalars().first()
    if existing is not None and not _expired(existing):
        return existing
    org = db.session.get(Organization, bill.org_id)
    # Razorpay refuses a reference_id used before (india.md §3.3): the bill number for the
    # first link, then the number with a running suffix (still within 40 characters).
    earlier = db.session.execute(select(func.count(PaymentLink.id)).where(PaymentLink.bill_id == bill.id)).scalar_one()
    reference = bill.number if earlier == 0 else f"{bill.number}-{earlier + 1}"
    notes = {"org": org.code, "bill": bill.number}
    description = f"{org.display_name}: bill {bill.number}"
    try:
        if kind == "payment_link":
            answer = gateway.create_payment_link(amount_paise=due, reference_id=reference, description=description,
                                                 notes=notes, accept_partial=accept_partial,
                                                 expire_by=int(time.time()) + LINK_DAYS * 86400)
            url = answer.get("short_url") or ""
        else:
            answer = gateway.create_upi_qr(amount_paise=due, name=org.display_name, description=description,
                                           notes=notes, close_by=int(time.time()) + QR_HOURS * 3600)
            url = answer.get("image_url") or ""
    except rz.RazorpayError as err:
        raise GatewayFailed(err.message) from None
    link = PaymentLink(bill_id=bill.id, kind=kind, gateway_id=str(answer["id"])[:40], reference_id=reference[:40],
                       url=url[:400], amount_paise=due, status="created", created_by_id=actor_id, created_at=_now())
    db.session.add(link)
    db.session.flush()
    audit.record("payment_link.created", entity_type="bill", entity_id=bill.number,
                 after={"kind": kind, "gateway_id": link.gateway_id, "amount_paise": due, "url": link.url,
                        "accept_partial": accept_partial})
    return link


def _expired(link: PaymentLink) -> bool:
    hours = LINK_DAYS * 24 if link.kind == "payment_link" else QR_HOURS
    created = link.created_at if link.created_at.tzinfo else link.created_at.replace(tzinfo=timezone.utc)
    return _now() - created > timedelta(hours=hours) - timedelta(minutes=10)


# ---------------------------------------------------------------- webhook intake

@dataclass
class WebhookResult:
    status: int
    outcome: str
    event_row_id: int | None = None


_STORE_EVENT = text("""
    INSERT INTO gateway_event (provider, event_id, event, signature_valid, body, remote_addr, received_at,
                               deliveries, outcome)
    VALUES (:provider, :event_id, :event, true, :body, :remote_addr, :received_at, 1, 'stored')
    ON CONFLICT (provider, event_id) WHERE signature_valid DO UPDATE SET deliveries = gateway_event.deliveries + 1
    RETURNING id, processed_at, deliveries""")


def receive_webhook(body: str, *, signature: str | None, event_id: str | None,
                    remote_addr: str | None) -> WebhookResult:
    """Verify, store (committed), de-duplicate and process one delivery."""
    session = db.session
    use_tenant(session, None)
    secret = current_app.config.get("RAZORPAY_WEBHOOK_SECRET") or ""
    name = _event_name(body)
    if not rz.verify_webhook(body, signature, secret):
        reason = ("the webhook secret is not configured" if not secret
                  else "no X-Razorpay-Signature" if not signature else "the signature does not match the body")
        row = GatewayEvent(provider=PROVIDER, event_id=(event_id or "").strip()[:64] or None, event=name,
                           signature_valid=False, body=body[:MAX_INVALID_BODY], remote_addr=(remote_addr or "")[:64],
                           received_at=_now(), processed_at=_now(), outcome=f"rejected: {reason}")
        session.add(row)
        session.commit()
        log.warning("razorpay webhook refused: %s", reason)
        return WebhookResult(400, f"rejected: {reason}", row.id)
    key = (event_id or "").strip()[:64] or "sha256:" + hashlib.sha256(body.encode()).hexdigest()[:56]
    # Plain SQL: the ORM's INSERT … ON CONFLICT with a partial-index target is compiled anew
    # on every call (about 2 ms, a third of a repeated delivery's time).
    stored = session.execute(_STORE_EVENT, {
        "provider": PROVIDER, "event_id": key, "event": name, "body": body, "remote_addr": (remote_addr or "")[:64],
        "received_at": _now()}).one()
    session.commit()  # durable before acknowledged
    if stored.processed_at is not None:
        return WebhookResult(200, "duplicate", stored.id)
    # First delivery, or a repeat of one stored but not finished (a crash, a deferral): process.
    return process_event(stored.id, remote_addr=remote_addr)


def _event_name(body: str) -> str | None:
    try:
        name = json.loads(body).get("event")
    except (ValueError, AttributeError):
        return None
    return str(name)[:48] if name else None


def process_event(row_id: int, *, remote_addr: str | None = None) -> WebhookResult:
    """Apply one stored event. Safe to run again and concurrently: the event row is locked and
    its processed_at checked, the gateway payment and the bill are locked in that order."""
    session = db.session
    use_tenant(session, None)
    row = session.execute(select(GatewayEvent).where(GatewayEvent.id == row_id).with_for_update()
                          .execution_options(populate_existing=True)).scalar_one()
    if row.processed_at is not None:
        session.commit()  # nothing written: ends the transaction and its lock
        return WebhookResult(200, "duplicate", row_id)
    try:
        payload = json.loads(row.body)
        if not isinstance(payload, dict):
            raise ValueError("not an object")
        outcome, org_id, done = _dispatch(row, payload, remote_addr)
    except ValueError:
        outcome, org_id, done = "ignored: the body is not a JSON event", None, True
    except Exception as err:  # noqa: BLE001 - answered 500 so Razorpay retries; the row says why
        session.rollback()
        log.exception("razorpay event %s could not be processed", row_id)
        use_tenant(session, None)
        failed = session.get(GatewayEvent, row_id)
        failed.outcome = f"error (will be retried): {type(err).__name__}"
        session.commit()
        return WebhookResult(500, "error", row_id)
    use_tenant(session, None)
    row.outcome, row.org_id = outcome[:1000], org_id
    if done:
        row.processed_at = _now()
    session.commit()
    return WebhookResult(200, outcome, row_id)


def _entities(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for name, wrapper in (payload.get("payload") or {}).items():
        if isinstance(wrapper, dict) and isinstance(wrapper.get("entity"), dict):
            found[name] = wrapper["entity"]
    return found


def _notes(entity: dict[str, Any] | None) -> dict[str, Any]:
    notes = (entity or {}).get("notes")
    return notes if isinstance(notes, dict) else {}  # Razorpay sends [] for "no notes"


def _dispatch(row: GatewayEvent, payload: dict[str, Any], remote_addr: str | None) -> tuple[str, int | None, bool]:
    name = str(payload.get("event") or "")
    entities = _entities(payload)
    if name not in PAYMENT_EVENTS and name not in ("refund.processed", "refund.failed") and name not in LINK_STATUS:
        return f"ignored: {name or 'no event name'} is not used", None, True
    org = _find_org(entities)
    if org is None:
        return "ignored: no organization (no notes.org and more than one lab)", None, True
    use_tenant(db.session, org.id)
    with audit.acting_as(audit.AuditContext(actor_label="webhook:razorpay", org_id=org.id, ip=remote_addr)):
        if name in ("refund.processed", "refund.failed"):
            outcome, done = _refund_event(name, entities, payload)
            return outcome, org.id, done
        link_outcome = _link_event(name, entities)
        if name not in PAYMENT_EVENTS:
            return link_outcome, org.id, True
        return _payment_event(row, name, entities, org), org.id, True


def _find_org(entities: dict[str, dict[str, Any]]) -> Organization | None:
    session = db.session
    for entity in entities.values():
        code = _notes(entity).get("org")
        if code:
            org = session.execute(select(Organization).where(Organization.code == str(code)[:32],
                                                             Organization.active.is_(True))).scalar_one_or_none()
            if org is not None:
                return org
    # Our own rows know the organization of a link, a payment or a refund made here.
    ids = [str(e.get("id")) for e in entities.values() if e.get("id")]
    lookups = ((PaymentLink.org_id, PaymentLink.gateway_id), (GatewayPayment.org_id, GatewayPayment.gateway_payment_id),
               (Refund.org_id, Refund.gateway_refund_id))
    for org_col, id_col in lookups:
        if ids:
            org_id = session.execute(select(org_col).where(id_col.in_(ids)).limit(1)
                                     .execution_options(all_tenants=True)).scalar()
            if org_id is not None:
                return session.get(Organization, org_id)
    active = session.execute(select(Organization).where(Organization.active.is_(True)).limit(2)).scalars().all()
    return active[0] if len(active) == 1 else None


def _link_event(name: str, entities: dict[str, dict[str, Any]]) -> str:
    status = LINK_STATUS.get(name)
    entity = entities.get("payment_link") or entities.get("qr_code")
    if status is None or not entity or not entity.get("id"):
        return "no link to update"
    link = db.session.execute(select(PaymentLink).where(PaymentLink.gateway_id == str(entity["id"]))
                              .with_for_update()).scalar_one_or_none()
    if link is None:
        return f"link {entity['id']} is not one of ours"
    if link.status in ("paid",) and status in ("expired", "closed", "cancelled", "partially_paid"):
        return f"link {link.gateway_id} stays paid"
    if link.status != status:
        link.status = status
    return f"link {link.gateway_id} {status}"


def _payment_event(row: GatewayEvent, name: str, entities: dict[str, dict[str, Any]], org: Organization) -> str:
    pay = entities.get("payment")
    if not pay or not pay.get("id"):
        return f"ignored: {name} without a payment"
    pid = str(pay["id"])[:40]
    link, qr, order = entities.get("payment_link"), entities.get("qr_code"), entities.get("order")
    gp = _lock_gateway_payment(org.id, pid, int(pay.get("amount") or 0), str(pay.get("currency") or "INR")[:3])
    before = gp.status
    gp.gateway_order_id = gp.gateway_order_id or (str(pay.get("order_id") or (order or {}).get("id") or "")[:40] or None)
    gp.payment_link_id = gp.payment_link_id or (str(link["id"])[:40] if link and link.get("id") else None)
    gp.qr_code_id = gp.qr_code_id or (str(qr["id"])[:40] if qr and qr.get("id") else None)
    if pay.get("amount"):
        gp.amount_paise = int(pay["amount"])
    gp.method = gp.method or (str(pay.get("method") or "")[:16] or None)
    rrn = (pay.get("acquirer_data") or {}).get("rrn") if isinstance(pay.get("acquirer_data"), dict) else None
    gp.rrn = gp.rrn or (str(rrn)[:32] if rrn else None)  # the UPI RRN (india.md §3.2)
    gp.bill_number = gp.bill_number or _bill_reference(entities, gp)
    gp.last_event_id = row.id
    state = PAYMENT_EVENTS[name]
    if STATUS_RANK[state] > STATUS_RANK.get(gp.status, 0):
        gp.status = state
        if state == "captured":
            gp.captured_at = _now()
    if gp.status != "captured":
        return f"payment {pid} {gp.status}" + ("" if gp.status == before else f" (was {before})")
    return f"payment {pid}: " + _apply(gp, org)


def _lock_gateway_payment(org_id: int, pid: str, amount: int, currency: str) -> GatewayPayment:
    db.session.execute(pg_insert(GatewayPayment).values(
        org_id=org_id, gateway_payment_id=pid, amount_paise=amount, currency=currency, status="created",
        updated_at=_now()).on_conflict_do_nothing(index_elements=["org_id", "gateway_payment_id"]))
    return db.session.execute(select(GatewayPayment).where(GatewayPayment.gateway_payment_id == pid)
                              .with_for_update().execution_options(populate_existing=True)).scalar_one()


def _bill_reference(entities: dict[str, dict[str, Any]], gp: GatewayPayment) -> str | None:
    """The bill a payment is for: our own link row first, then notes.bill, then the link's
    reference_id (the bill number, or the number with a '-n' suffix for a later link)."""
    ids = [i for i in (gp.payment_link_id, gp.qr_code_id) if i]
    if ids:
        found = db.session.execute(select(Bill.number, PaymentLink.id).join(PaymentLink, PaymentLink.bill_id == Bill.id)
                                   .where(PaymentLink.gateway_id.in_(ids)).limit(1)).first()
        if found is not None:
            return found[0]
    for key in ("payment", "payment_link", "qr_code", "order"):
        bill = _notes(entities.get(key)).get("bill")
        if bill:
            return str(bill)[:40]
    ref = (entities.get("payment_link") or {}).get("reference_id")
    return str(ref)[:40] if ref else None


def _dedupe_key(pid: str) -> str:
    return f"gateway:{pid}"


def _apply(gp: GatewayPayment, org: Organization) -> str:
    if gp.applied_payment_id is not None:
        return f"already applied (payment #{gp.applied_payment_id})"
    pid = gp.gateway_payment_id
    existing = db.session.execute(select(Payment.id).where(Payment.gateway_payment_id == pid)).scalar()
    if existing is not None:  # applied by an earlier path that did not record it here
        gp.applied_payment_id = existing
        return f"already applied (payment #{existing})"
    queued = db.session.execute(select(BillingException.id).where(BillingException.dedupe_key == _dedupe_key(pid))
                                ).scalar()
    if queued is not None:
        return f"in the exceptions queue (#{queued})"
    if gp.currency != "INR" or gp.amount_paise <= 0:
        return f"not applied: {gp.amount_paise} {gp.currency} is not an INR amount"
    if not gp.bill_number:
        # A payment.captured alone names no bill; the link/order/QR event that does will come
        # (the sweep queues it as unknown if it never does).
        return "captured; no bill named yet"
    details = {"bill_number": gp.bill_number, "method": gp.method, "rrn": gp.rrn, "order_id": gp.gateway_order_id,
               "link_id": gp.payment_link_id or gp.qr_code_id}
    bill = billing.bill_by_number(gp.bill_number)
    if bill is None:
        exc = billing_exceptions.open_exception(org.id, kind="unknown_bill", source="webhook",
                                                dedupe_key=_dedupe_key(pid), amount_paise=gp.amount_paise,
                                                reference=pid, gateway_payment_id=gp.id, details=details)
        return f"no bill {gp.bill_number}: exceptions queue #{exc.id}"
    locked = billing.lock_bill(bill.id)
    due = 0 if locked.status == "cancelled" else locked.due_paise
    if due == 0:
        reason = "the bill is cancelled" if locked.status == "cancelled" else "nothing is due"
        exc = billing_exceptions.open_exception(org.id, kind="already_paid", source="webhook",
                                                dedupe_key=_dedupe_key(pid), amount_paise=gp.amount_paise,
                                                reference=pid, bill_id=locked.id, gateway_payment_id=gp.id,
                                                details={**details, "reason": reason})
        return f"bill {locked.number}: {reason}; exceptions queue #{exc.id}"
    amount = min(gp.amount_paise, due)
    payment = billing.apply_payment(locked, mode="razorpay", amount_paise=amount, gateway_payment_id=pid,
                                    gateway_order_id=gp.gateway_order_id, gateway_method=gp.method, rrn=gp.rrn,
                                    reference=(gp.rrn or pid)[:64], counter="razorpay", received_by_id=None)
    gp.applied_payment_id = payment.id
    outcome = f"applied {amount} paise to {locked.number}"
    if gp.amount_paise > amount:
        excess = gp.amount_paise - amount
        exc = billing_exceptions.open_exception(
            org.id, kind="already_paid", source="webhook", dedupe_key=_dedupe_key(pid), amount_paise=excess,
            reference=pid, bill_id=locked.id, payment_id=payment.id, gateway_payment_id=gp.id,
            details={**details, "reason": "paid more than was due", "applied_paise": amount, "excess_paise": excess})
        outcome += f"; {excess} paise beyond the due amount: exceptions queue #{exc.id}"
    return outcome


def _refund_event(name: str, entities: dict[str, dict[str, Any]], payload: dict[str, Any]) -> tuple[str, bool]:
    """refund.processed / refund.failed: settled by the refunds service, which finds the refund
    by Razorpay's id or by the lis_refund_id note we sent (the event can beat our own call's
    answer), and on failure gives the money back to the bill and payment and opens an
    exception. Repeated or late events change nothing."""
    from app.services import refunds  # refunds builds on the gateway client

    entity = entities.get("refund") or {}
    rid = str(entity.get("id") or "")[:40]
    if not rid:
        return f"ignored: {name} without a refund", True
    note = str((entity.get("notes") or {}).get("lis_refund_id", ""))
    status = name.split(".", 1)[1]
    refund = refunds.apply_gateway_status(status=status, gateway_refund_id=rid,
                                          lis_refund_id=int(note) if note.isdigit() else None)
    if refund is None:
        from_queue = db.session.execute(select(BillingException.id).where(
            BillingException.details["gateway_refund_id"].astext == rid)).scalar()
        if from_queue is not None:
            return f"refund {rid} (exceptions queue #{from_queue}) {status}", True
        created = entity.get("created_at") or payload.get("created_at") or 0
        if time.time() - float(created or 0) < DEFER_UNKNOWN_REFUND.total_seconds():
            # The refund service may not have committed the id Razorpay just gave it: leave the
            # event unprocessed, for the next delivery or the sweep.
            return f"deferred: refund {rid} not known yet", False
        return f"ignored: refund {rid} was not made here", True
    return f"refund {rid} {refund.status}", True


# ---------------------------------------------------------------- sweep (periodic job)

def sweep(*, settle_after: timedelta = timedelta(minutes=1), unrouted_after: timedelta = timedelta(hours=1)) -> dict:
    """Finish what a delivery left: events stored but not processed (the web process died
    between the commit and the answer, or an event was deferred), and captured payments that
    no event ever tied to a bill (they go to the exceptions queue as unknown_bill)."""
    session = db.session
    use_tenant(session, None)
    now = _now()
    pending = session.execute(select(GatewayEvent.id, GatewayEvent.received_at).where(
        GatewayEvent.signature_valid.is_(True), GatewayEvent.processed_at.is_(None),
        GatewayEvent.received_at < now - settle_after).order_by(GatewayEvent.id).limit(500)).all()
    session.commit()  # read only: ends the transaction (each event is processed in its own)
    counts = {"processed": 0, "given_up": 0, "unrouted": 0}
    for row_id, received in pending:
        result = process_event(row_id)
        counts["processed"] += 1
        if result.status == 200 and result.outcome.startswith("deferred") and now - received > GIVE_UP_AFTER:
            use_tenant(session, None)
            row = session.get(GatewayEvent, row_id)
            row.processed_at, row.outcome = _now(), "given up: " + row.outcome
            session.commit()
            counts["given_up"] += 1
    use_tenant(session, None)
    stale = session.execute(select(GatewayPayment.id, GatewayPayment.org_id).where(
        GatewayPayment.status == "captured", GatewayPayment.applied_payment_id.is_(None),
        GatewayPayment.bill_number.is_(None), GatewayPayment.updated_at < now - unrouted_after)
        .execution_options(all_tenants=True).limit(500)).all()
    session.commit()
    for gp_id, org_id in stale:
        use_tenant(session, org_id)
        gp = session.execute(select(GatewayPayment).where(GatewayPayment.id == gp_id).with_for_update()).scalar_one()
        if gp.applied_payment_id is None and gp.bill_number is None:
            billing_exceptions.open_exception(org_id, kind="unknown_bill", source="webhook",
                                              dedupe_key=_dedupe_key(gp.gateway_payment_id),
                                              amount_paise=gp.amount_paise, reference=gp.gateway_payment_id,
                                              gateway_payment_id=gp.id,
                                              details={"reason": "no event named a bill", "rrn": gp.rrn,
                                                       "method": gp.method, "order_id": gp.gateway_order_id})
            counts["unrouted"] += 1
        session.commit()
    use_tenant(session, None)
    return counts


# ---------------------------------------------------------------- exceptions queue resolutions

def _lock_exception(exception: BillingException) -> tuple[BillingException, GatewayPayment]:
    locked = db.session.execute(select(BillingException).where(BillingException.id == exception.id)
                                .with_for_update().execution_options(populate_existing=True)).scalar_one()
    if locked.status != "open":
        raise ServiceError("This exception is already resolved.")
    if locked.kind not in EXCEPTION_KINDS or locked.gateway_payment_id is None or not locked.amount_paise:
        raise ServiceError("This exception is not an unapplied gateway payment.")
    gp = db.session.execute(select(GatewayPayment).where(GatewayPayment.id == locked.gateway_payment_id)
                            .with_for_update().execution_options(populate_existing=True)).scalar_one()
    return locked, gp


def apply_exception(exception: BillingException, bill_number: str, actor_id: int | None, note: str) -> Payment:
    """Apply an unapplied gateway payment (or the part beyond a bill's due) to a bill the clerk
    chose, up to that bill's due; anything left stays in the queue as a new exception. The
    caller commits."""
    if not (note or "").strip():
        raise ServiceError("Write a note: what was checked and why this bill.", field="note")
    locked_exc, gp = _lock_exception(exception)
    bill = billing.bill_by_number((bill_number or "").strip().upper())
    if bill is None:
        raise ServiceError(f"There is no bill {bill_number.strip()!r} in this lab.", field="bill_number")
    locked = billing.lock_bill(bill.id)
    if locked.status == "cancelled":
        raise ServiceError(f"Bill {locked.number} is cancelled.", field="bill_number")
    if locked.due_paise <= 0:
        raise ServiceError(f"Nothing is due on bill {locked.number}.", field="bill_number")
    amount = min(locked_exc.amount_paise, locked.due_paise)
    pid = gp.gateway_payment_id
    # The gateway id goes on the first Payment made from this gateway payment (it is unique
    # per organization); the excess of a payment already on another bill keeps it as reference.
    first = gp.applied_payment_id is None and db.session.execute(
        select(Payment.id).where(Payment.gateway_payment_id == pid)).scalar() is None
    payment = billing.apply_payment(locked, mode="razorpay", amount_paise=amount,
                                    gateway_payment_id=pid if first else None, gateway_order_id=gp.gateway_order_id,
                                    gateway_method=gp.method, rrn=gp.rrn, reference=(gp.rrn or pid)[:64],
                                    counter="razorpay", received_by_id=actor_id)
    if first:
        gp.applied_payment_id, gp.bill_number = payment.id, locked.number
    left = locked_exc.amount_paise - amount
    if left > 0:
        billing_exceptions.open_exception(
            locked_exc.org_id, kind="already_paid", source="webhook", dedupe_key=f"gateway:{pid}:rest:{payment.id}",
            amount_paise=left, reference=pid, bill_id=locked.id, payment_id=payment.id, gateway_payment_id=gp.id,
            details={"reason": f"left over after applying {amount} paise to {locked.number}"})
    billing_exceptions.resolve(locked_exc, resolution="applied",
                               note=f"{note.strip()} [applied {amount} paise to {locked.number}]", actor_id=actor_id)
    return payment


def refund_exception(exception: BillingException, actor_id: int | None, note: str) -> dict[str, Any]:
    """Send an unapplied gateway payment (or its excess) back to the payer through Razorpay.
    The exception row stays locked across the call, so a double click cannot refund twice.
    Answers Razorpay's refund entity; the caller commits at once."""
    if not (note or "").strip():
        raise ServiceError("Write a note: why this money goes back.", field="note")
    locked_exc, gp = _lock_exception(exception)
    gateway = client()
    if gateway is None:
        raise ServiceError("The Razorpay gateway is not configured (RAZORPAY_KEY_ID and RAZORPAY_KEY_SECRET).")
    org = db.session.get(Organization, locked_exc.org_id)
    try:
        answer = gateway.refund(gp.gateway_payment_id, amount_paise=locked_exc.amount_paise,
                                notes={"org": org.code, "exception": str(locked_exc.id)},
                                receipt=f"EXC-{locked_exc.id}")
    except rz.RazorpayError as err:
        raise GatewayFailed(err.message) from None
    refund_id = str(answer["id"])[:40]
    locked_exc.details = {**(locked_exc.details or {}), "gateway_refund_id": refund_id,
                          "refund_status": str(answer.get("status") or "")}
    before = {"status": gp.status}
    if gp.applied_payment_id is None and locked_exc.amount_paise >= gp.amount_paise:
        gp.status = "refunded"
    audit.record("gateway_payment.refunded", entity_type="gateway_payment", entity_id=gp.gateway_payment_id,
                 before=before, after={"status": gp.status, "gateway_refund_id": refund_id,
                                       "amount_paise": locked_exc.amount_paise, "exception": locked_exc.id})
    billing_exceptions.resolve(locked_exc, resolution="refunded",
                               note=f"{note.strip()} [Razorpay refund {refund_id}]", actor_id=actor_id)
    return answer


# ---------------------------------------------------------------- gateway events page

@dataclass
class EventFilter:
    event: str = ""
    valid: str = ""  # "", "yes", "no"
    q: str = ""  # event id, payment/link id or bill number inside the body
    before_id: int | None = None


PAGE_SIZE = 50
PII_KEYS = {"email", "contact", "vpa", "phone", "mobile", "card", "card_id", "bank_account", "wallet", "customer_id",
            "token_id", "payer_name"}


def list_events(org_id: int, flt: EventFilter) -> tuple[list[GatewayEvent], int | None]:
    """Recent deliveries of this organization (and, in a single-lab installation, the ones no
    organization could be found for, refused deliveries included). Newest first."""
    session = db.session
    single = session.execute(select(func.count(Organization.id)).where(Organization.active.is_(True))).scalar_one() == 1
    mine = GatewayEvent.org_id == org_id
    stmt = select(GatewayEvent).where(or_(mine, GatewayEvent.org_id.is_(None)) if single else mine)
    if flt.event:
        stmt = stmt.where(GatewayEvent.event == flt.event[:48])
    if flt.valid in ("yes", "no"):
        stmt = stmt.where(GatewayEvent.signature_valid.is_(flt.valid == "yes"))
    q = flt.q.strip()[:64]
    if q:
        stmt = stmt.where(or_(GatewayEvent.event_id == q, GatewayEvent.body.contains(q, autoescape=True)))
    if flt.before_id:
        stmt = stmt.where(GatewayEvent.id < flt.before_id)
    rows = list(session.execute(stmt.order_by(GatewayEvent.id.desc()).limit(PAGE_SIZE + 1)).scalars())
    more = rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None
    return rows[:PAGE_SIZE], more


def event_names(org_id: int) -> list[str]:
    return list(db.session.execute(select(GatewayEvent.event).where(GatewayEvent.org_id == org_id,
                                                                    GatewayEvent.event.is_not(None))
                                   .distinct().order_by(GatewayEvent.event)).scalars())


def redacted_body(event: GatewayEvent) -> str:
    """The body for display: payer contact details (email, phone, VPA, card) masked; the ids,
    amounts, RRN and notes a clerk needs to trace money kept."""
    try:
        data = json.loads(event.body)
    except ValueError:
        return event.body[:2000]
    return json.dumps(_redact(data), indent=2, ensure_ascii=False)[:20000]


def _redact(value: Any, key: str = "") -> Any:
    if key in PII_KEYS and value not in (None, "", [], {}):
        if isinstance(value, str):
            return ("•" * max(0, min(len(value), 8) - 2)) + value[-2:] if len(value) > 4 else "••"
        return "[hidden]"
    if isinstance(value, dict):
        return {k: _redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value
