"""Analyzers, the codes they speak, every message they sent, and results nobody could match.

Nothing an analyzer sends is ever dropped: the raw bytes are an InstrumentMessage row,
committed before the analyzer gets its ACK, whatever happens to them afterwards.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, LargeBinary, Numeric,
                        String, Text, UniqueConstraint)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, TenantScoped, Timestamped, utcnow
from app.models.catalogue import Department, LabTest

PROTOCOLS = ("hl7", "astm")
MESSAGE_OUTCOMES = ("stored", "matched", "partly_matched", "unmatched", "qc", "query", "rejected", "other")
DEFAULT_FIELDS = {
    "hl7": {"sample_id_field": "OBR-2", "test_code_field": "OBX-3.1"},
    "astm": {"sample_id_field": "O-3", "test_code_field": "R-3.4"},
}


class Instrument(TenantScoped, Timestamped, Base):
    __tablename__ = "instrument"
    __table_args__ = (
        UniqueConstraint("org_id", "name"),
        # A TCP port belongs to one listener on the host, whichever lab configured it.
        UniqueConstraint("port"),
        CheckConstraint("protocol IN ('hl7','astm')", name="protocol"),
        CheckConstraint("port BETWEEN 1024 AND 65535", name="port"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    make: Mapped[str] = mapped_column(String(60), default="")
    model: Mapped[str] = mapped_column(String(60), default="")
    protocol: Mapped[str] = mapped_column(String(8))
    port: Mapped[int] = mapped_column(Integer)
    department_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("department.id"))
    sample_id_field: Mapped[str] = mapped_column(String(20))
    test_code_field: Mapped[str] = mapped_column(String(20))
    profile: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)  # other vendor quirks
    send_orders: Mapped[bool] = mapped_column(Boolean, default=False)  # HL7: push ORM^O01 on receipt
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Written by the listener process, read by the status screen.
    connections: Mapped[int] = mapped_column(Integer, default=0)
    last_connected_at: Mapped[datetime | None] = mapped_column()
    last_message_at: Mapped[datetime | None] = mapped_column()

    department: Mapped[Department | None] = relationship()
    codes: Mapped[list["InstrumentCode"]] = relationship(back_populates="instrument", order_by="InstrumentCode.code",
                                                         cascade="all, delete-orphan")

    def parser_profile(self) -> dict[str, Any]:
        # No fallback positions unless the admin sets them: a sample id is read from exactly
        # the configured field, never guessed from another one (Mindray BS's OBR-3 is a rack).
        return {"sample_id_fallbacks": [], **(self.profile or {}), "sample_id_field": self.sample_id_field,
                "test_code_field": self.test_code_field}


class InstrumentCode(TenantScoped, Base):
    """Instrument test code -> catalogue test; `factor` converts the analyzer's unit into the
    catalogue's (haemoglobin in g/L x 0.1 = g/dL)."""

    __tablename__ = "instrument_code"
    __table_args__ = (UniqueConstraint("instrument_id", "code"), CheckConstraint("factor > 0", name="factor"))

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    instrument_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("instrument.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(40))
    test_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("lab_test.id"))
    factor: Mapped[Decimal] = mapped_column(Numeric(12, 6), default=Decimal(1))

    instrument: Mapped[Instrument] = relationship(back_populates="codes")
    test: Mapped[LabTest] = relationship()


class InstrumentMessage(TenantScoped, Base):
    """One message as received, byte for byte. A resend of identical bytes (the analyzer did
    not get our ACK) is counted on the same row, so a message is stored exactly once."""

    __tablename__ = "instrument_message"
    __table_args__ = (
        UniqueConstraint("instrument_id", "sha256"),
        CheckConstraint("outcome IN ('stored','matched','partly_matched','unmatched','qc','query','rejected','other')",
                        name="outcome"),
        Index("ix_instrument_message_instrument_received", "instrument_id", "received_at"),
        # The ingestion job claims what is still only stored.
        Index("ix_instrument_message_pending", "id", postgresql_where="outcome = 'stored'"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    instrument_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("instrument.id", ondelete="RESTRICT"))
    protocol: Mapped[str] = mapped_column(String(8))
    peer: Mapped[str] = mapped_column(String(64), default="")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[bytes] = mapped_column(LargeBinary(32))
    resent: Mapped[int] = mapped_column(Integer, default=0)
    control_id: Mapped[str] = mapped_column(String(64), default="")
    message_type: Mapped[str] = mapped_column(String(32), default="")
    outcome: Mapped[str] = mapped_column(String(16), default="stored")
    detail: Mapped[str] = mapped_column(Text, default="")
    results_attached: Mapped[int] = mapped_column(Integer, default=0)
    results_unmatched: Mapped[int] = mapped_column(Integer, default=0)
    processed_at: Mapped[datetime | None] = mapped_column()

    instrument: Mapped[Instrument] = relationship()


class UnmatchedResult(TenantScoped, Base):
    """A result an analyzer sent that could not be put on a received sample's ordered test.
    It waits here for a technician; it is never attached to a guessed order."""

    __tablename__ = "unmatched_result"
    __table_args__ = (
        CheckConstraint("status IN ('open','assigned','discarded')", name="status"),
        Index("ix_unmatched_result_open", "org_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("instrument_message.id"), index=True)
    instrument_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("instrument.id"))
    sample_id: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(40))
    test_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("lab_test.id"))
    value: Mapped[str] = mapped_column(String(400))
    units: Mapped[str] = mapped_column(String(40), default="")
    flags: Mapped[str] = mapped_column(String(60), default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    observed_at: Mapped[datetime | None] = mapped_column()
    reason: Mapped[str] = mapped_column(String(24))  # unknown_sample, not_received, unknown_code, not_ordered...
    status: Mapped[str] = mapped_column(String(10), default="open")
    result_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("result.id"))
    resolved_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("app_user.id"))
    resolved_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    instrument: Mapped[Instrument] = relationship()
    test: Mapped[LabTest | None] = relationship()
