"""Payment-gateway intake (Razorpay): every webhook POST as received, and each gateway payment's
state as its events arrive (in any order, any number of times), plus the clerk's exceptions
queue shared with reconciliation. ../shared/reference/india.md §3.3 has the Razorpay facts."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantScoped, utcnow


class GatewayEvent(Base):
    """One webhook delivery, stored (raw body as text, as signed) before it is answered.

    Not tenant-scoped: the organization is found from the payload (notes.org / the bill
    number). A tampered or unsigned delivery is kept too, with signature_valid false, as the
    record of the attempt; only valid deliveries are de-duplicated on x-razorpay-event-id."""

    __tablename__ = "gateway_event"
    __table_args__ = (
        Index("uq_gateway_event_provider_event_id", "provider", "event_id", unique=True,
              postgresql_where=text("signature_valid")),
        Index("ix_gateway_event_received", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16), default="razorpay")
    event_id: Mapped[str | None] = mapped_column(String(64))
    event: Mapped[str | None] = mapped_column(String(48))
    signature_valid: Mapped[bool] = mapped_column(Boolean)
    body: Mapped[str] = mapped_column(Text)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    org_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("organization.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    deliveries: Mapped[int] = mapped_column(default=1)  # how many times this event id arrived
    processed_at: Mapped[datetime | None] = mapped_column()
    outcome: Mapped[str] = mapped_column(Text, default="")


GATEWAY_PAYMENT_STATUSES = ("created", "authorized", "failed", "captured", "refunded")


class GatewayPayment(TenantScoped, Base):
    """A Razorpay payment as the lab knows it, built up from events in whatever order they
    come: 'captured' is final (a later payment.failed for the same id is ignored, india.md
    §3.3). applied_payment_id is the Payment row on the bill, set exactly once."""

    __tablename__ = "gateway_payment"
    __table_args__ = (UniqueConstraint("org_id", "gateway_payment_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    gateway_payment_id: Mapped[str] = mapped_column(String(40))
    gateway_order_id: Mapped[str | None] = mapped_column(String(40))
    payment_link_id: Mapped[str | None] = mapped_column(String(40))
    qr_code_id: Mapped[str | None] = mapped_column(String(40))
    bill_number: Mapped[str | None] = mapped_column(String(40))
    amount_paise: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="INR")
    method: Mapped[str | None] = mapped_column(String(16))
    rrn: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(12))
    captured_at: Mapped[datetime | None] = mapped_column()
    applied_payment_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("payment.id"))
    last_event_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("gateway_event.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


EXCEPTION_KINDS = (
    "unknown_bill",  # a gateway payment whose bill cannot be found
    "already_paid",  # a gateway payment for a bill with nothing (or less) due
    "amount_mismatch",  # a statement credit whose amount differs from the matched payment
    "unmatched_credit",  # a statement credit with no payment
    "duplicate",  # a statement line (or gateway credit) seen twice
    "missing_from_statement",  # a payment the statement never showed
    "refund_failed",  # the gateway refused or failed a refund
)


class BillingException(TenantScoped, Base):
    """The clerk's exceptions queue: money that could not be applied or matched on its own.
    Nothing here changes a bill until a clerk resolves it, with a note (audited)."""

    __tablename__ = "billing_exception"
    __table_args__ = (
        CheckConstraint("status IN ('open','resolved')", name="status"),
        # One open exception per thing: re-processing the same event or line adds nothing.
        UniqueConstraint("org_id", "dedupe_key"),
        Index("ix_billing_exception_open", "org_id", "created_at", postgresql_where=text("status = 'open'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    source: Mapped[str] = mapped_column(String(16))  # webhook | statement | refund
    dedupe_key: Mapped[str] = mapped_column(String(120))
    amount_paise: Mapped[int | None] = mapped_column(BigInteger)
    reference: Mapped[str | None] = mapped_column(String(64))  # RRN / UTR / gateway id
    bill_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("bill.id"))
    payment_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("payment.id"))
    gateway_payment_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("gateway_payment.id"))
    statement_line_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("statement_line.id"))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    status: Mapped[str] = mapped_column(String(10), default="open")
    resolution: Mapped[str | None] = mapped_column(String(24))  # applied | matched | refunded | written_off | ignored
    note: Mapped[str] = mapped_column(Text, default="")
    resolved_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("app_user.id"))
    resolved_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
