"""GST e-invoices: a taxable B2B tax invoice (or its credit note) reported to the IRP, with what
the IRP returned. ../shared/reference/india.md §1.1–§1.5."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantScoped, utcnow

EINVOICE_STATUSES = ("queued", "submitting", "generated", "retrying", "rejected", "cancelled")


class EInvoice(TenantScoped, Base):
    __tablename__ = "einvoice"
    __table_args__ = (
        CheckConstraint("(bill_id IS NULL) <> (credit_note_id IS NULL)", name="one_document"),
        CheckConstraint("doc_type IN ('INV','CRN','DBN')", name="doc_type"),
        CheckConstraint("status IN ('queued','submitting','generated','retrying','rejected','cancelled')",
                        name="status"),
        Index("uq_einvoice_bill", "bill_id", unique=True, postgresql_where=text("bill_id IS NOT NULL")),
        Index("uq_einvoice_credit_note", "credit_note_id", unique=True,
              postgresql_where=text("credit_note_id IS NOT NULL")),
        Index("ix_einvoice_due", "next_attempt_at", postgresql_where=text("status IN ('queued','retrying')")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    bill_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("bill.id"))
    credit_note_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("credit_note.id"))
    doc_type: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(12), default="queued")
    local_irn: Mapped[str] = mapped_column(String(64))  # SHA-256(GSTIN+FY+type+number): the cross-check
    irn: Mapped[str | None] = mapped_column(String(64))
    ack_no: Mapped[str | None] = mapped_column(String(20))
    ack_dt: Mapped[str | None] = mapped_column(String(19))  # yyyy-MM-dd HH:mm:ss as the IRP sends it
    signed_qr: Mapped[str | None] = mapped_column(Text)
    signed_invoice: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)  # the INV-01 JSON sent
    response: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)  # the IRP's last answer
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)  # validation errors for the clerk
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    generated_at: Mapped[datetime | None] = mapped_column()
    cancelled_at: Mapped[datetime | None] = mapped_column()
    cancel_reason: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
