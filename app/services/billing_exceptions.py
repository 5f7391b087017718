"""The clerk's exceptions queue: money the system would not apply or match on its own.

Webhook intake (services/gateway.py) and reconciliation (services/reconciliation.py) open
exceptions here; nothing in this queue has changed a bill. Opening is idempotent (one row
per dedupe key, so the same event or statement line processed again adds nothing), and
every resolution carries a clerk's note and is audited."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from app import audit
from app.extensions import db
from app.models import BillingException
from app.services import ServiceError

RESOLUTIONS = ("applied", "matched", "refunded", "written_off", "ignored")
KIND_LABELS = {
    "unknown_bill": "Payment for an unknown bill",
    "already_paid": "Payment for a bill already paid",
    "amount_mismatch": "Amount differs from the payment",
    "unmatched_credit": "Credit with no payment",
    "duplicate": "Duplicate line",
    "missing_from_statement": "Payment missing from the statement",
    "refund_failed": "Refund failed at the gateway",
}


def open_exception(org_id: int, *, kind: str, source: str, dedupe_key: str, amount_paise: int | None = None,
                   reference: str | None = None, bill_id: int | None = None, payment_id: int | None = None,
                   gateway_payment_id: int | None = None, statement_line_id: int | None = None,
                   details: dict[str, Any] | None = None) -> BillingException:
    """Open (or find the already open) exception for one thing. Safe to call repeatedly and
    from concurrent workers: INSERT … ON CONFLICT DO NOTHING on (org, dedupe_key)."""
    if kind not in KIND_LABELS:
        raise ValueError(f"unknown exception kind {kind}")
    db.session.execute(insert(BillingException).values(
        org_id=org_id, kind=kind, source=source, dedupe_key=dedupe_key[:120], amount_paise=amount_paise,
        reference=reference, bill_id=bill_id, payment_id=payment_id, gateway_payment_id=gateway_payment_id,
        statement_line_id=statement_line_id, details=details or {}, status="open",
        created_at=datetime.now(timezone.utc),
    ).on_conflict_do_nothing(index_elements=["org_id", "dedupe_key"]))
    return db.session.execute(select(BillingException).where(
        BillingException.org_id == org_id, BillingException.dedupe_key == dedupe_key[:120])).scalar_one()


def resolve(exception: BillingException, *, resolution: str, note: str, actor_id: int | None) -> BillingException:
    """Close an exception with a clerk's note. The caller has already done whatever the
    resolution means (applied the money, matched the line, refunded); this records it."""
    note = (note or "").strip()
    if resolution not in RESOLUTIONS:
        raise ServiceError("Choose how this was resolved.", field="resolution")
    if not note:
        raise ServiceError("Write a note: what was checked and why this resolution.", field="note")
    locked = db.session.execute(select(BillingException).where(BillingException.id == exception.id)
                                .with_for_update()).scalar_one()
    if locked.status != "open":
        raise ServiceError("This exception is already resolved.")
    locked.status, locked.resolution, locked.note = "resolved", resolution, note[:2000]
    locked.resolved_by_id, locked.resolved_at = actor_id, datetime.now(timezone.utc)
    audit.record("billing_exception.resolved", entity_type="billing_exception", entity_id=str(locked.id),
                 before={"status": "open"}, after={"kind": locked.kind, "resolution": resolution, "note": note[:500],
                                                   "amount_paise": locked.amount_paise})
    return locked


def open_count() -> int:
    return db.session.execute(select(func.count(BillingException.id))
                              .where(BillingException.status == "open")).scalar_one()
