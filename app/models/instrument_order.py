"""Orders pushed to HL7 analyzers that want them (instrument `send_orders`): an outbox.

A row is written in the same transaction as the tube's receipt (services.instrument_orders),
with the ORM^O01 bytes already built, so a resend is byte-identical (same MSH-10: the analyzer
can tell a resend from a new order). The listener process sends it on the analyzer's open MLLP
connection and records the ACK (workers/listeners.py): nothing is lost when the analyzer is
away or the listener restarts, and a row is never sent again once it was answered.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantScoped, utcnow

ORDER_STATUSES = ("queued", "acked", "failed", "superseded")


class InstrumentOrder(TenantScoped, Base):
    __tablename__ = "instrument_order"
    __table_args__ = (
        CheckConstraint("status IN ('queued','acked','failed','superseded')", name="status"),
        # The listener's poll reads due rows of connected instruments only: a small partial index.
        Index("ix_instrument_order_due", "instrument_id", "next_attempt_at",
              postgresql_where=text("status = 'queued'")),
        # queue_orders_for_sample looks at the latest row of a tube on an instrument.
        Index("ix_instrument_order_sample", "sample_id", "instrument_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    instrument_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("instrument.id", ondelete="RESTRICT"))
    sample_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sample.id", ondelete="CASCADE"))
    control_id: Mapped[str] = mapped_column(String(32), unique=True)  # MSH-10 of the payload
    message_type: Mapped[str] = mapped_column(String(16), default="ORM^O01")
    test_codes: Mapped[str] = mapped_column(Text)  # instrument codes, sorted, "~"-joined: what was ordered
    payload: Mapped[bytes] = mapped_column(LargeBinary)  # the HL7 message, unframed
    status: Mapped[str] = mapped_column(String(12), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column()
    answered_at: Mapped[datetime | None] = mapped_column()
    ack_code: Mapped[str] = mapped_column(String(2), default="")  # MSA-1 of the analyzer's answer
    error: Mapped[str] = mapped_column(Text, default="")  # why it failed, or why the last attempt did
    ack_message_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("instrument_message.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
