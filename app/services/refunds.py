"""Refunds: money paid back against one payment. Money is integer paise; every change is audited.

Rules (issue 6):
- a refund never exceeds what is left of its payment: amount ≤ payment − already refunded −
  refunds waiting for approval. Checked under the bill's row lock (billing.lock_bill), so two
  clerks refunding the same payment at once are serialized, and again by the database
  (payment.refunded_paise ≤ amount_paise);
- above the organization's refund_approval_limit_paise a non-admin's refund waits for a
  second person (an admin, or another billing user: never the requester);
- gateway payments are refunded through Razorpay's refund API to the payer's own instrument
  (POST /v1/payments/{id}/refund, amount in paise; ../shared/reference/india.md §3.3); cash,
  UPI and NEFT refunds are paid at the desk and recorded with their reference (a UPI refund
  carries the 12-digit UTR, india.md §3.2);
- money moves when the refund starts: payment.refunded_paise grows and bill.paid_paise (net
  of refunds) shrinks; a refund that fails gives both back and opens a 'refund_failed'
  exception for the clerk.

The Razorpay call is made after the refund row is committed (submit_gateway_refund), never
inside the transaction that created it: a refund the lab has no record of cannot happen."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from app import audit
from app.extensions import db
from app.models import Bill, Organization, Payment, Refund, Role
from app.models.user import Actor
from app.security import use_tenant
from app.services import ServiceError, billing, billing_exceptions

REFUND_MODES = {"razorpay": "Razorpay (to the payer's card/UPI)", "cash": "Cash", "upi": "UPI", "neft": "NEFT/IMPS"}
DESK_MODES = ("cash", "upi", "neft")
STATUS_LABELS = {"pending_approval": "Waiting for approval", "rejected": "Rejected", "processing": "Processing",
                 "processed": "Processed", "failed": "Failed"}
UTR_RE = re.compile(r"^[0-9]{12}$")  # UPI / IMPS reference (india.md §3.2)
NEFT_REF_RE = re.compile(r"^[A-Z0-9]{12,22}$")  # 12-digit IMPS or 22-character NEFT/RTGS UTR
MAX_REASON = 200


class RefundInvalid(ServiceError):
    pass


class GatewayRefundError(Exception):
    """Razorpay refused the refund (definite: nothing was refunded)."""


# --- reading ---------------------------------------------------------------------------


def pending_paise(payment_id: int, *, excluding: int | None = None) -> int:
    """Refunds of a payment still waiting for approval: reserved, so approving them later
    can never take the payment past its amount."""
    stmt = select(func.coalesce(func.sum(Refund.amount_paise), 0)).where(
        Refund.payment_id == payment_id, Refund.status == "pending_approval")
    if excluding is not None:
        stmt = stmt.where(Refund.id != excluding)
    return int(db.session.execute(stmt).scalar_one())


def refundable_paise(payment: Payment) -> int:
    return max(0, payment.amount_paise - payment.refunded_paise - pending_paise(payment.id))


def refunds_of_bill(bill: Bill) -> list[Refund]:
    return list(db.session.execute(select(Refund).where(Refund.bill_id == bill.id).order_by(Refund.id)).scalars())


def list_refunds(status: str | None = None, limit: int = 200) -> list[Refund]:
    stmt = select(Refund).order_by(Refund.created_at.desc(), Refund.id.desc()).limit(limit)
    if status in STATUS_LABELS:
        stmt = stmt.where(Refund.status == status)
    return list(db.session.execute(stmt).scalars())


def pending_count() -> int:
    return int(db.session.execute(select(func.count(Refund.id)).where(Refund.status == "pending_approval"))
               .scalar_one())


def by_id(refund_id: int) -> Refund | None:
    return db.session.execute(select(Refund).where(Refund.id == refund_id)).scalar_one_or_none()


def can_decide(refund: Refund, user: Actor) -> bool:
    """Who may approve or reject a waiting refund: an admin, or a billing user other than
    the one who asked for it (four eyes on large refunds)."""
    return (refund.status == "pending_approval" and user.role in (Role.ADMIN, Role.BILLING)
            and user.id != refund.requested_by_id)


def gateway_configured() -> bool:
    return bool(current_app.config.get("RAZORPAY_KEY_ID") and current_app.config.get("RAZORPAY_KEY_SECRET"))


# --- requesting ------------------------------------------------------------------------


def _lock_payment(payment_id: int) -> Payment:
    locked = db.session.execute(select(Payment).where(Payment.id == payment_id).with_for_update()).scalar_one()
    db.session.refresh(locked)
    return locked


def _clean_reference(mode: str, reference: str | None) -> str | None:
    reference = re.sub(r"\s", "", reference or "").upper() or None
    if mode == "upi" and not (reference and UTR_RE.match(reference)):
        raise RefundInvalid("Enter the 12-digit UPI reference (UTR) of the refund you sent.", field="reference")
    if mode == "neft" and not (reference and NEFT_REF_RE.match(reference)):
        raise RefundInvalid("Enter the bank's UTR of the transfer (12 to 22 letters and digits).", field="reference")
    if reference and len(reference) > 64:
        raise RefundInvalid("That reference is too long.", field="reference")
    return reference


def request_refund(payment: Payment, *, amount_paise: int, reason: str, mode: str, actor: Actor,
                   idempotency_key: str | None = None, reference: str | None = None,
                   credit_note_id: int | None = None, counter: str = "main") -> Refund:
    """Ask for a refund of (part of) one payment. Within the requester's limit it starts at
    once (desk refunds are then done; gateway refunds are sent by submit_gateway_refund after
    the caller commits); above it, it waits for approval. A repeated idempotency key returns
    the refund already made (a double click refunds once)."""
    if idempotency_key:
        existing = db.session.execute(select(Refund).where(Refund.idempotency_key == idempotency_key)
                                      ).scalar_one_or_none()
        if existing is not None:
            return existing
    reason = " ".join((reason or "").split())
    if not reason:
        raise RefundInvalid("Write the reason for the refund.", field="reason")
    if len(reason) > MAX_REASON:
        raise RefundInvalid(f"Keep the reason under {MAX_REASON} characters.", field="reason")
    if not isinstance(amount_paise, int) or amount_paise <= 0:
        raise RefundInvalid("Enter an amount above zero.", field="amount")
    bill = billing.lock_bill(payment.bill_id)
    payment = _lock_payment(payment.id)
    if payment.status != "captured":
        raise RefundInvalid("Only a received payment can be refunded.")
    if payment.mode == "razorpay":
        # Razorpay returns the money to the instrument it came from; the desk cannot.
        if mode != "razorpay":
            raise RefundInvalid("An online payment is refunded through Razorpay, to the payer's own card or UPI.",
                                field="mode")
        if not payment.gateway_payment_id:
            raise RefundInvalid("This online payment has no Razorpay payment id to refund.")
        if not gateway_configured():
            raise RefundInvalid("Razorpay is not set up on this server (RAZORPAY_KEY_ID / RAZORPAY_KEY_SECRET): "
                                "ask your IT person.", field="mode")
    elif mode not in DESK_MODES:
        raise RefundInvalid("Choose cash, UPI or NEFT for the refund.", field="mode")
    reference = _clean_reference(mode, reference) if mode != "razorpay" else None
    available = payment.amount_paise - payment.refunded_paise - pending_paise(payment.id)
    if amount_paise > available:
        raise RefundInvalid(f"At most {available / 100:.2f} of this payment can be refunded (paid "
                            f"{payment.amount_paise / 100:.2f}, already refunded or waiting "
                            f"{(payment.amount_paise - available) / 100:.2f}).", field="amount")
    org = db.session.get(Organization, bill.org_id)
    needs_approval = actor.role != Role.ADMIN and amount_paise > org.refund_approval_limit_paise
    refund = Refund(payment_id=payment.id, bill_id=bill.id, credit_note_id=credit_note_id, amount_paise=amount_paise,
                    mode=mode, reference=reference, reason=reason, idempotency_key=idempotency_key,
                    branch_id=payment.branch_id or bill.branch_id, counter=(counter or "main")[:32],
                    requested_by_id=actor.id, status="pending_approval" if needs_approval else "processing")
    db.session.add(refund)
    db.session.flush()
    audit.record("refund.requested", entity_type="bill", entity_id=bill.number,
                 after={"refund_id": refund.id, "payment_id": payment.id, "amount_paise": amount_paise, "mode": mode,
                        "status": refund.status, "reason": reason, "limit_paise": org.refund_approval_limit_paise})
    if not needs_approval:
        _start(bill, payment, refund)
    return refund


def _start(bill: Bill, payment: Payment, refund: Refund) -> None:
    """Move the money (bill and payment already locked): refunded grows, paid shrinks. A desk
    refund is then done; a gateway refund waits for Razorpay."""
    before = {"paid_paise": bill.paid_paise, "status": bill.status, "payment_refunded_paise": payment.refunded_paise}
    payment.refunded_paise += refund.amount_paise
    bill.paid_paise -= refund.amount_paise
    billing.settle_status(bill)
    if refund.mode in DESK_MODES:
        refund.status, refund.processed_at = "processed", datetime.now(timezone.utc)
    else:
        refund.status = "processing"
    db.session.flush()
    audit.record("refund.started" if refund.status == "processing" else "refund.processed",
                 entity_type="bill", entity_id=bill.number, before=before,
                 after={"paid_paise": bill.paid_paise, "status": bill.status,
                        "payment_refunded_paise": payment.refunded_paise, "refund_id": refund.id,
                        "amount_paise": refund.amount_paise, "mode": refund.mode, "reference": refund.reference})


# --- approval --------------------------------------------------------------------------


def _lock_refund(refund_id: int) -> Refund:
    locked = db.session.execute(select(Refund).where(Refund.id == refund_id).with_for_update()).scalar_one()
    db.session.refresh(locked)
    return locked


def approve(refund: Refund, *, actor: Actor, reference: str | None = None) -> Refund:
    """Approve a waiting refund (not one's own). Locks bill, then payment, then refund: the
    same order as everywhere else, so approvals and new refunds cannot deadlock."""
    bill = billing.lock_bill(refund.bill_id)
    payment = _lock_payment(refund.payment_id)
    refund = _lock_refund(refund.id)
    if refund.status != "pending_approval":
        raise RefundInvalid(f"This refund is already {STATUS_LABELS[refund.status].lower()}.")
    if not can_decide(refund, actor):
        raise RefundInvalid("A refund you asked for must be approved by someone else.")
    if refund.mode in ("upi", "neft"):
        refund.reference = _clean_reference(refund.mode, reference or refund.reference)
    if refund.mode == "razorpay" and not gateway_configured():
        raise RefundInvalid("Razorpay is not set up on this server: the refund cannot be sent.")
    available = payment.amount_paise - payment.refunded_paise - pending_paise(payment.id, excluding=refund.id)
    if refund.amount_paise > available:
        raise RefundInvalid(f"Only {available / 100:.2f} of the payment is left to refund: reject this one.")
    refund.approved_by_id = actor.id
    audit.record("refund.approved", entity_type="bill", entity_id=bill.number,
                 after={"refund_id": refund.id, "amount_paise": refund.amount_paise,
                        "requested_by_id": refund.requested_by_id})
    _start(bill, payment, refund)
    return refund


def reject(refund: Refund, *, actor: Actor, note: str) -> Refund:
    """Turn down a waiting refund (the requester may withdraw their own). Nothing had moved."""
    note = " ".join((note or "").split())
    if not note:
        raise RefundInvalid("Write why the refund is rejected.", field="note")
    bill = billing.lock_bill(refund.bill_id)
    refund = _lock_refund(refund.id)
    if refund.status != "pending_approval":
        raise RefundInvalid(f"This refund is already {STATUS_LABELS[refund.status].lower()}.")
    if actor.role not in (Role.ADMIN, Role.BILLING):
        raise RefundInvalid("Only billing staff can reject refunds.")
    refund.status, refund.approved_by_id, refund.last_error = "rejected", actor.id, note[:1000]
    audit.record("refund.rejected", entity_type="bill", entity_id=bill.number, before={"status": "pending_approval"},
                 after={"refund_id": refund.id, "status": "rejected", "note": note[:500]})
    return refund


# --- the gateway -----------------------------------------------------------------------


def _gateway_refund(gateway_payment_id: str, amount_paise: int, *, notes: dict[str, str],
                    receipt: str) -> dict[str, Any]:
    """Razorpay's refund entity for a new refund ({id: 'rfnd_…', status, amount}), through the
    gateway client (app/integrations/razorpay_gateway.py: the official SDK at RAZORPAY_API_BASE,
    POST /v1/payments/{id}/refund, with the provider timeout)."""
    from app.integrations import razorpay_gateway

    gateway = razorpay_gateway.RazorpayGateway.from_config(current_app.config)
    if gateway is None:
        raise GatewayRefundError("Razorpay is not set up on this server.")
    return gateway.refund(gateway_payment_id, amount_paise=amount_paise, notes=notes, receipt=receipt)


def _is_definite_refusal(err: Exception) -> bool:
    """Razorpay answered and said no (nothing was refunded) — as opposed to no answer or a
    server error, after which the refund may or may not exist at Razorpay."""
    if isinstance(err, GatewayRefundError):
        return True
    return getattr(err, "retryable", None) is False  # razorpay_gateway.RazorpayError


def submit_gateway_refund(refund_id: int) -> Refund:
    """Send a started Razorpay refund (after the row that started it is committed). Safe to
    call twice: a refund that already has Razorpay's id, or is no longer processing, is left
    alone. Razorpay's answer decides: processed → done; pending → wait for its webhook
    (refund.processed, india.md §3.3); refused → failed, money restored, exception opened;
    no answer → stays processing with the error noted: it may exist at Razorpay, so it is
    not sent again blindly (sweep_stalled looks it up at Razorpay first).

    The bill stays locked during the call (at most LIS_PROVIDER_TIMEOUT): a sweep or a second
    click waits, then finds Razorpay's id and does nothing."""
    bill, refund = _lock_processing(refund_id)
    if refund is None:
        return by_id(refund_id)  # type: ignore[return-value]
    if refund.last_error.startswith(UNANSWERED):
        return refund  # the earlier attempt may have reached Razorpay: only the sweep's lookup resends
    return _send(bill, refund)


UNANSWERED = "No clear answer from Razorpay"


def _lock_processing(refund_id: int) -> tuple[Bill, Refund | None]:
    """Bill then refund locked; the refund only if it is a Razorpay refund not yet sent."""
    refund = by_id(refund_id)
    if refund is None:
        raise RefundInvalid("No such refund.")
    bill = billing.lock_bill(refund.bill_id)
    refund = _lock_refund(refund.id)
    if refund.mode != "razorpay" or refund.status != "processing" or refund.gateway_refund_id:
        return bill, None
    return bill, refund


def _send(bill: Bill, refund: Refund) -> Refund:
    payment = db.session.get(Payment, refund.payment_id)
    notes = {"lis_refund_id": str(refund.id), "bill": bill.number, "reason": refund.reason[:250]}
    try:
        entity = _gateway_refund(payment.gateway_payment_id, refund.amount_paise, notes=notes,
                                 receipt=f"lis-refund-{refund.id}")
    except Exception as err:  # noqa: BLE001 - every provider failure is classified and recorded
        message = (str(err) or type(err).__name__)[:900]
        if _is_definite_refusal(err):
            return _fail(bill, refund, f"Razorpay refused the refund: {message}")
        refund.last_error = f"{UNANSWERED} ({message}); waiting for its webhook or the next check."
        audit.record("refund.gateway_unanswered", entity_type="bill", entity_id=bill.number,
                     after={"refund_id": refund.id, "error": refund.last_error[:300]})
        return refund
    return _adopt(bill, refund, entity, "refund.sent")


def _adopt(bill: Bill, refund: Refund, entity: dict[str, Any], action: str) -> Refund:
    """Take Razorpay's refund entity as this refund's: its id, and its status if final."""
    refund.gateway_refund_id = str(entity.get("id") or "")[:40] or None
    status = entity.get("status")
    refund.last_error = ""
    if entity.get("amount") not in (None, refund.amount_paise):
        refund.last_error = f"Razorpay refunded {entity.get('amount')} paise, not {refund.amount_paise}."
    audit.record(action, entity_type="bill", entity_id=bill.number,
                 after={"refund_id": refund.id, "gateway_refund_id": refund.gateway_refund_id, "status": status})
    if status == "processed":
        _processed(bill, refund)
    elif status == "failed":
        return _fail(bill, refund, "Razorpay reports the refund failed.")
    return refund


def _gateway_refunds_of(gateway_payment_id: str) -> list[dict[str, Any]]:
    """The refunds Razorpay holds for one payment: GET /v1/payments/{id}/refunds."""
    import razorpay

    cfg = current_app.config
    client = razorpay.Client(auth=(cfg["RAZORPAY_KEY_ID"], cfg["RAZORPAY_KEY_SECRET"]),
                             base_url=cfg["RAZORPAY_API_BASE"])
    answer = client.payment.fetch_multiple_refund(gateway_payment_id, {"count": 100},
                                                  timeout=cfg.get("LIS_PROVIDER_TIMEOUT", 20))
    return list(answer.get("items") or []) if isinstance(answer, dict) else []


def check_stalled(refund_id: int) -> Refund | None:
    """A Razorpay refund still without Razorpay's id (the send got no clear answer, or the
    process died before sending): look for it at Razorpay by the lis_refund_id we put in its
    notes. Found → adopt it; not there → it was never made, so sending now cannot refund twice."""
    bill, refund = _lock_processing(refund_id)
    if refund is None:
        return None
    payment = db.session.get(Payment, refund.payment_id)
    try:
        items = _gateway_refunds_of(payment.gateway_payment_id)
    except Exception as err:  # noqa: BLE001 - Razorpay unreachable: try again on the next sweep
        refund.last_error = f"{UNANSWERED} when checking ({type(err).__name__}); will check again."
        return refund
    found = next((item for item in items
                  if str((item.get("notes") or {}).get("lis_refund_id", "")) == str(refund.id)), None)
    if found is not None:
        return _adopt(bill, refund, found, "refund.found_at_gateway")
    return _send(bill, refund)


def sweep_stalled(*, older_than: timedelta = timedelta(minutes=2)) -> dict[str, int]:
    """Periodic job: every organization's Razorpay refunds left processing without Razorpay's
    id for longer than `older_than` are checked at Razorpay (check_stalled), one commit each."""
    session = db.session
    use_tenant(session, None)
    cutoff = datetime.now(timezone.utc) - older_than
    rows = session.execute(select(Refund.id, Refund.org_id).where(
        Refund.mode == "razorpay", Refund.status == "processing", Refund.gateway_refund_id.is_(None),
        Refund.created_at < cutoff).order_by(Refund.id).limit(200).execution_options(all_tenants=True)).all()
    session.rollback()
    counts = {"checked": 0, "settled": 0, "errors": 0}
    for refund_id, org_id in rows:
        use_tenant(session, org_id)
        try:
            refund = check_stalled(refund_id)
            session.commit()
        except Exception:  # noqa: BLE001 - one refund's trouble must not stop the others
            session.rollback()
            counts["errors"] += 1
            continue
        counts["checked"] += 1
        if refund is not None and (refund.gateway_refund_id or refund.status != "processing"):
            counts["settled"] += 1
    use_tenant(session, None)
    return counts


def _processed(bill: Bill, refund: Refund) -> None:
    refund.status, refund.processed_at = "processed", datetime.now(timezone.utc)
    audit.record("refund.processed", entity_type="bill", entity_id=bill.number, before={"status": "processing"},
                 after={"refund_id": refund.id, "status": "processed", "gateway_refund_id": refund.gateway_refund_id})


def _fail(bill: Bill, refund: Refund, message: str) -> Refund:
    """Give the money back to the bill and payment (bill already locked) and put the failure
    in the clerk's exceptions queue."""
    payment = _lock_payment(refund.payment_id)
    before = {"paid_paise": bill.paid_paise, "status": bill.status, "payment_refunded_paise": payment.refunded_paise}
    payment.refunded_paise -= refund.amount_paise
    bill.paid_paise += refund.amount_paise
    billing.settle_status(bill)
    refund.status, refund.last_error = "failed", message[:1000]
    db.session.flush()
    audit.record("refund.failed", entity_type="bill", entity_id=bill.number, before=before,
                 after={"paid_paise": bill.paid_paise, "status": bill.status,
                        "payment_refunded_paise": payment.refunded_paise, "refund_id": refund.id,
                        "error": message[:300]})
    billing_exceptions.open_exception(
        bill.org_id, kind="refund_failed", source="refund", dedupe_key=f"refund_failed:{refund.id}",
        amount_paise=refund.amount_paise, reference=refund.gateway_refund_id or payment.gateway_payment_id,
        bill_id=bill.id, payment_id=payment.id, details={"refund_id": refund.id, "error": message[:500]})
    return refund


def apply_gateway_status(*, status: str, gateway_refund_id: str | None = None, lis_refund_id: int | None = None,
                         error: str = "") -> Refund | None:
    """For the Razorpay webhook (refund.processed / refund.failed): find the refund by
    Razorpay's id, or by the notes.lis_refund_id we sent (the webhook can arrive before our
    own call has stored Razorpay's id), and settle it. Idempotent: a repeated or late event
    changes nothing once the refund is processed or failed. None when no refund matches."""
    stmt = select(Refund.id, Refund.bill_id)
    if gateway_refund_id:
        found = db.session.execute(stmt.where(Refund.gateway_refund_id == gateway_refund_id)).first()
        if found is None and lis_refund_id:
            found = db.session.execute(stmt.where(Refund.id == lis_refund_id, Refund.mode == "razorpay")).first()
    elif lis_refund_id:
        found = db.session.execute(stmt.where(Refund.id == lis_refund_id, Refund.mode == "razorpay")).first()
    else:
        return None
    if found is None:
        return None
    bill = billing.lock_bill(found.bill_id)
    refund = _lock_refund(found.id)
    if gateway_refund_id and not refund.gateway_refund_id:
        refund.gateway_refund_id = gateway_refund_id[:40]
    if refund.status != "processing":
        return refund
    if status == "processed":
        _processed(bill, refund)
    elif status == "failed":
        _fail(bill, refund, f"Razorpay reports the refund failed{': ' + error if error else ''}.")
    return refund
