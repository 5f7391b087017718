"""Bills (bill of supply or tax invoice), their lines, and payments. Money is integer paise."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, Numeric, String,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, TenantScoped, Timestamped, utcnow
from app.models.order import Order

DOCUMENT_TYPES = ("bill_of_supply", "tax_invoice")
PAYMENT_MODES = ("cash", "card", "upi")


class DocumentCounter(TenantScoped, Base):
    """The last number used in one series (branch × document type × financial year).

    GST wants consecutive serial numbers (Rule 46/49; ../shared/reference/india.md §1.2), so
    numbers come from a row locked by UPDATE … RETURNING in the bill's own transaction: a
    rolled-back bill gives its number back, unlike a sequence, which would leave a gap."""

    __tablename__ = "document_counter"
    __table_args__ = (UniqueConstraint("org_id", "branch_id", "doc_type", "fy"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    branch_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("branch.id"))
    doc_type: Mapped[str] = mapped_column(String(16))
    fy: Mapped[str] = mapped_column(String(7))  # "2026-27"
    last_number: Mapped[int] = mapped_column(BigInteger, default=0)


class Bill(TenantScoped, Timestamped, Base):
    __tablename__ = "bill"
    __table_args__ = (
        UniqueConstraint("org_id", "number", "fy"),
        CheckConstraint("doc_type IN ('bill_of_supply','tax_invoice')", name="doc_type"),
        CheckConstraint("status IN ('open','partly_paid','paid','cancelled')", name="status"),
        # DocDtls.No pattern of e-invoice schema v1.1 (india.md §1.2)
        CheckConstraint("number ~ '^[A-Z1-9][A-Z0-9/-]{0,15}$'", name="number_format"),
        CheckConstraint("paid_paise >= 0 AND paid_paise <= total_paise", name="paid_within_total"),
        Index("ix_bill_org_date", "org_id", "bill_date"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("lab_order.id"), index=True)
    branch_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("branch.id"))
    doc_type: Mapped[str] = mapped_column(String(16))
    number: Mapped[str] = mapped_column(String(16))
    fy: Mapped[str] = mapped_column(String(7))
    bill_date: Mapped[date] = mapped_column(Date)
    recipient_name: Mapped[str] = mapped_column(String(200))
    recipient_gstin: Mapped[str | None] = mapped_column(String(15))
    place_of_supply: Mapped[str] = mapped_column(String(2))  # GST state code
    gross_paise: Mapped[int] = mapped_column(BigInteger)  # before discount
    discount_paise: Mapped[int] = mapped_column(BigInteger, default=0)
    taxable_paise: Mapped[int] = mapped_column(BigInteger)  # value after discount
    cgst_paise: Mapped[int] = mapped_column(BigInteger, default=0)
    sgst_paise: Mapped[int] = mapped_column(BigInteger, default=0)
    igst_paise: Mapped[int] = mapped_column(BigInteger, default=0)
    total_paise: Mapped[int] = mapped_column(BigInteger)
    paid_paise: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="open")

    order: Mapped[Order | None] = relationship()
    lines: Mapped[list["BillLine"]] = relationship(back_populates="bill", order_by="BillLine.position",
                                                   cascade="all, delete-orphan")
    payments: Mapped[list["Payment"]] = relationship(back_populates="bill", order_by="Payment.id")

    @property
    def due_paise(self) -> int:
        return self.total_paise - self.paid_paise


class BillLine(TenantScoped, Base):
    __tablename__ = "bill_line"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    bill_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bill.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(200))
    sac_code: Mapped[str] = mapped_column(String(8))
    gross_paise: Mapped[int] = mapped_column(BigInteger)
    discount_paise: Mapped[int] = mapped_column(BigInteger, default=0)
    taxable_paise: Mapped[int] = mapped_column(BigInteger)
    gst_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal("0"))
    cgst_paise: Mapped[int] = mapped_column(BigInteger, default=0)
    sgst_paise: Mapped[int] = mapped_column(BigInteger, default=0)
    igst_paise: Mapped[int] = mapped_column(BigInteger, default=0)
    total_paise: Mapped[int] = mapped_column(BigInteger)

    bill: Mapped[Bill] = relationship(back_populates="lines")


class Payment(TenantScoped, Base):
    __tablename__ = "payment"
    __table_args__ = (
        CheckConstraint("mode IN ('cash','card','upi')", name="mode"),
        CheckConstraint("amount_paise > 0", name="amount_positive"),
        UniqueConstraint("org_id", "idempotency_key"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    bill_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bill.id"), index=True)
    mode: Mapped[str] = mapped_column(String(8))
    amount_paise: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str | None] = mapped_column(String(64))  # card terminal ref / UPI RRN (12 digits)
    status: Mapped[str] = mapped_column(String(16), default="captured")
    idempotency_key: Mapped[str | None] = mapped_column(String(64))
    received_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("app_user.id"))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)

    bill: Mapped[Bill] = relationship(back_populates="payments")
