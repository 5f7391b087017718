"""Results: one row per attempt at a test on a tube, never overwritten.

A re-run or an amendment adds a row and moves `is_current` to it; the old row stays, so the
report history and the audit trail can always show what was there before.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, Numeric, String, Text,
                        UniqueConstraint, text)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, TenantScoped, utcnow
from app.models.order import OrderTest

RESULT_STATES = ("entered", "verified", "released", "rerun", "amended")
RESULT_SOURCES = ("manual", "instrument", "calculated")
FLAGS = ("L", "H", "LL", "HH", "A")


class Result(TenantScoped, Base):
    __tablename__ = "result"
    __table_args__ = (
        CheckConstraint("status IN ('entered','verified','released','rerun','amended')", name="status"),
        CheckConstraint("source IN ('manual','instrument','calculated')", name="source"),
        CheckConstraint("flag IS NULL OR flag IN ('L','H','LL','HH','A')", name="flag"),
        # At most one current result per ordered test: the database, not the code, guarantees it.
        Index("uq_result_current", "order_test_id", unique=True, postgresql_where=text("is_current")),
        # The delta check and the cumulative report read a patient's history of one test.
        Index("ix_result_patient_test", "org_id", "patient_id", "test_id", "entered_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_test_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("order_test.id", ondelete="CASCADE"))
    patient_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("patient.id"))
    test_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("lab_test.id"))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    value_text: Mapped[str] = mapped_column(String(400))
    value_num: Mapped[Decimal | None] = mapped_column(Numeric(18, 6))
    unit: Mapped[str | None] = mapped_column(String(32))
    flag: Mapped[str | None] = mapped_column(String(2))
    critical: Mapped[bool] = mapped_column(Boolean, default=False)
    # The reference interval that produced the flag, copied: later catalogue edits do not
    # change what a signed report said.
    interval: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    delta: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # {previous, previous_at, change, limit}
    instrument_flags: Mapped[str] = mapped_column(String(60), default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(12), default="manual")
    instrument_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("instrument.id"))
    message_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("instrument_message.id"))
    status: Mapped[str] = mapped_column(String(10), default="entered")
    entered_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("app_user.id"))
    entered_at: Mapped[datetime] = mapped_column(default=utcnow)
    verified_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("app_user.id"))
    verified_at: Mapped[datetime | None] = mapped_column()
    autoverified: Mapped[bool] = mapped_column(Boolean, default=False)
    interpretation: Mapped[str] = mapped_column(Text, default="")  # the pathologist's comment on the report
    rerun_reason: Mapped[str] = mapped_column(String(400), default="")  # why it was sent back
    released_at: Mapped[datetime | None] = mapped_column()
    # Optimistic locking: every UPDATE checks and bumps it, so two pathologists acting on the
    # same result at once cannot both succeed (the second gets StaleDataError).
    version: Mapped[int] = mapped_column(Integer, default=1)

    order_test: Mapped[OrderTest] = relationship()

    __mapper_args__ = {"version_id_col": version}

    @property
    def delta_failed(self) -> bool:
        return bool(self.delta and self.delta.get("failed"))


CALL_RECIPIENTS = ("doctor", "patient", "ward", "other")


class CriticalCall(TenantScoped, Base):
    """A critical value telephoned to someone who can act on it, with read-back: a critical
    result is not released without one (CAP / ISO 15189 7.4.1.3; OpenELIS's critical callback)."""

    __tablename__ = "critical_call"
    __table_args__ = (
        CheckConstraint("recipient_kind IN ('doctor','patient','ward','other')", name="recipient_kind"),
        Index("ix_critical_call_org_called", "org_id", "called_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    result_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("result.id"), index=True)
    recipient_kind: Mapped[str] = mapped_column(String(8))
    recipient_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(20))
    read_back: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str] = mapped_column(String(400), default="")
    called_by_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("app_user.id"))
    called_at: Mapped[datetime] = mapped_column(default=utcnow)

    result: Mapped[Result] = relationship()


class CannedComment(TenantScoped, Base):
    """An interpretive comment a pathologist picks instead of typing (per test, or general)."""

    __tablename__ = "canned_comment"
    __table_args__ = (UniqueConstraint("org_id", "code"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    test_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("lab_test.id"))
    text: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
