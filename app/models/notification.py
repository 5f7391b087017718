"""Notifications: an outbox row per message (WhatsApp, SMS, email, or the visible outbox when
the channel is not configured), the raw WhatsApp webhook deliveries, and the 24-hour
customer-service windows those webhooks open (../shared/reference/india.md §4.2).

The recipient (E.164 mobile or email address) is stored because the job needs it; it is
masked on screens and never written to logs.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantScoped, Timestamped, utcnow

CHANNELS = ("whatsapp", "sms", "email", "outbox")
STATUSES = ("queued", "sending", "sent", "delivered", "read", "failed", "outbox")


class Notification(TenantScoped, Timestamped, Base):
    __tablename__ = "notification"
    __table_args__ = (
        # A job or an event fired twice never makes a second message: one row per key per lab.
        UniqueConstraint("org_id", "idempotency_key"),
        CheckConstraint("channel IN ('whatsapp','sms','email','outbox')", name="channel"),
        CheckConstraint("status IN ('queued','sending','sent','delivered','read','failed','outbox')", name="status"),
        # The retry sweep reads due rows only: a small partial index.
        Index("ix_notification_due", "next_attempt_at", postgresql_where=text("status = 'queued'")),
        Index("ix_notification_org_created", "org_id", "created_at"),
        Index("ix_notification_provider_message_id", "provider_message_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    channel: Mapped[str] = mapped_column(String(10))
    event: Mapped[str] = mapped_column(String(32))  # report_released, otp, critical_value, payment_received
    template: Mapped[str] = mapped_column(String(80))  # WhatsApp template name / DLT template id / email subject key
    recipient: Mapped[str] = mapped_column(String(254))  # E.164 or email; masked on screens, never logged
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(10), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime | None] = mapped_column()
    delivered_at: Mapped[datetime | None] = mapped_column()
    read_at: Mapped[datetime | None] = mapped_column()
    failed_at: Mapped[datetime | None] = mapped_column()


class WebhookDelivery(Base):
    """A provider's webhook POST as received (after its signature checked), stored before it
    is answered (durable before acknowledged). Not tenant-scoped: a delivery names message
    ids, and the organizations are found through them. The body hash dedupes replays."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (UniqueConstraint("provider", "body_sha256"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    body_sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    outcome: Mapped[str] = mapped_column(Text, default="")


class WhatsAppWindow(Base):
    """When each WhatsApp user last wrote to the lab's number: free-form messages are allowed
    for 24 hours after it, approved templates only otherwise (india.md §4.2)."""

    __tablename__ = "whatsapp_window"

    wa_id: Mapped[str] = mapped_column(String(20), primary_key=True)  # E.164 digits, as WhatsApp sends them
    last_inbound_at: Mapped[datetime] = mapped_column()
