"""Bills (bill of supply or tax invoice), their lines, and payments. Money is integer paise."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from typing import Any

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, Numeric, String,
                        Text, UniqueConstraint)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, TenantScoped, Timestamped, utcnow
from app.models.order import Order

DOCUMENT_TYPES = ("bill_of_supply", "tax_invoice")
# cash/card/upi at the counter; razorpay = applied from a verified gateway webhook; neft and
# cheque = a B2B client's receipt against its statement; advance = drawn from a deposit.
PAYMENT_MODES = ("cash", "card", "upi", "razorpay", "neft", "cheque", "advance")


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
        CheckConstraint("credited_paise >= 0 AND credited_paise <= total_paise", name="credited_within_total"),
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
    # Reduced by credit notes (a cancellation credits the whole total). Paid is net of refunds.
    credited_paise: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # A B2B client's bill, billed on account: paid by the client against its monthly statement.
    client_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("client.id"), index=True)
    on_account: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    due_date: Mapped[date | None] = mapped_column(Date)
    cancelled_at: Mapped[datetime | None] = mapped_column()
    cancel_reason: Mapped[str | None] = mapped_column(String(200))

    order: Mapped[Order | None] = relationship()
    lines: Mapped[list["BillLine"]] = relationship(back_populates="bill", order_by="BillLine.position",
                                                   cascade="all, delete-orphan")
    payments: Mapped[list["Payment"]] = relationship(back_populates="bill", order_by="Payment.id")

    @property
    def due_paise(self) -> int:
        """What is still owed: the total less credit notes and net payments (never negative)."""
        return max(0, self.total_paise - self.credited_paise - self.paid_paise)

    @property
    def refund_owed_paise(self) -> int:
        """Money collected beyond what is now owed (after a credit note), to be refunded."""
        return max(0, self.paid_paise + self.credited_paise - self.total_paise)


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
        CheckConstraint("mode IN ('cash','card','upi','razorpay','neft','cheque','advance')", name="mode"),
        CheckConstraint("amount_paise > 0", name="amount_positive"),
        CheckConstraint("refunded_paise >= 0 AND refunded_paise <= amount_paise", name="refund_within_amount"),
        UniqueConstraint("org_id", "idempotency_key"),
        # The last guard against a double credit: one gateway payment is applied at most once.
        UniqueConstraint("org_id", "gateway_payment_id"),
        Index("ix_payment_org_received", "org_id", "received_at"),
        Index("ix_payment_org_rrn", "org_id", "rrn"),
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
    # Where it was taken: day-end closing is per branch and counter.
    branch_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("branch.id"))
    counter: Mapped[str] = mapped_column(String(32), default="main", server_default="main")
    # Gateway payments: Razorpay's ids and the UPI RRN (acquirer_data.rrn, india.md §3.2/§3.3).
    gateway_payment_id: Mapped[str | None] = mapped_column(String(40))
    gateway_order_id: Mapped[str | None] = mapped_column(String(40))
    gateway_method: Mapped[str | None] = mapped_column(String(16))
    rrn: Mapped[str | None] = mapped_column(String(32))
    refunded_paise: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    advance_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("advance.id"))
    client_receipt_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("client_receipt.id"))

    bill: Mapped[Bill] = relationship(back_populates="payments")
    received_by: Mapped["User | None"] = relationship(foreign_keys=[received_by_id])  # noqa: F821


class PaymentLink(TenantScoped, Base):
    """A Razorpay payment link or UPI QR code made for a bill's due amount."""

    __tablename__ = "payment_link"
    __table_args__ = (UniqueConstraint("gateway_id"),
                      CheckConstraint("kind IN ('payment_link','qr_code')", name="kind"))

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    bill_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bill.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    gateway_id: Mapped[str] = mapped_column(String(40))  # plink_… / qr_…
    reference_id: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(String(400))  # short_url / image_url
    amount_paise: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="created")
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("app_user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Advance(TenantScoped, Base):
    """A deposit taken before billing (a patient's advance, a client's deposit), drawn down by
    payments of mode 'advance'."""

    __tablename__ = "advance"
    __table_args__ = (CheckConstraint("amount_paise > 0", name="amount_positive"),
                      CheckConstraint("used_paise >= 0 AND used_paise <= amount_paise", name="used_within_amount"),
                      CheckConstraint("(patient_id IS NULL) <> (client_id IS NULL)", name="one_holder"),
                      CheckConstraint("mode IN ('cash','card','upi','neft','cheque')", name="mode"))

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    number: Mapped[str] = mapped_column(String(16))
    patient_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("patient.id"), index=True)
    client_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("client.id"), index=True)
    branch_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("branch.id"))
    counter: Mapped[str] = mapped_column(String(32), default="main")
    mode: Mapped[str] = mapped_column(String(8))
    reference: Mapped[str | None] = mapped_column(String(64))
    amount_paise: Mapped[int] = mapped_column(BigInteger)
    used_paise: Mapped[int] = mapped_column(BigInteger, default=0)
    received_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("app_user.id"))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def balance_paise(self) -> int:
        return self.amount_paise - self.used_paise


class ClientReceipt(TenantScoped, Base):
    """A B2B client's payment against its statement (NEFT, cheque…), allocated to its open
    on-account bills oldest first; each allocation is a Payment row."""

    __tablename__ = "client_receipt"
    __table_args__ = (CheckConstraint("amount_paise > 0", name="amount_positive"),
                      CheckConstraint("allocated_paise >= 0 AND allocated_paise <= amount_paise",
                                      name="allocated_within_amount"),
                      UniqueConstraint("org_id", "client_id", "reference"))

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    client_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("client.id"), index=True)
    mode: Mapped[str] = mapped_column(String(8))
    reference: Mapped[str] = mapped_column(String(64))  # UTR / cheque number
    amount_paise: Mapped[int] = mapped_column(BigInteger)
    allocated_paise: Mapped[int] = mapped_column(BigInteger, default=0)
    received_on: Mapped[date] = mapped_column(Date)
    received_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("app_user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CreditNote(TenantScoped, Base):
    """A credit note against one bill (CGST Act s.34): part or all of its value, with the tax
    split in the same proportion. A cancelled bill is cancelled by a full credit note; the
    bill itself is never deleted."""

    __tablename__ = "credit_note"
    __table_args__ = (UniqueConstraint("org_id", "number", "fy"),
                      CheckConstraint("number ~ '^[A-Z1-9][A-Z0-9/-]{0,15}$'", name="number_format"),
                      CheckConstraint("total_paise > 0", name="total_positive"))

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    bill_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bill.id"), index=True)
    branch_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("branch.id"))
    number: Mapped[str] = mapped_column(String(16))
    fy: Mapped[str] = mapped_column(String(7))
    note_date: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(200))
    taxable_paise: Mapped[int] = mapped_column(BigInteger)
    cgst_paise: Mapped[int] = mapped_column(BigInteger, default=0)
    sgst_paise: Mapped[int] = mapped_column(BigInteger, default=0)
    igst_paise: Mapped[int] = mapped_column(BigInteger, default=0)
    total_paise: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)  # per bill line, for the PDF / CRN
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("app_user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    bill: Mapped[Bill] = relationship()


REFUND_STATUSES = ("pending_approval", "rejected", "processing", "processed", "failed")


class Refund(TenantScoped, Base):
    """Money paid back against one payment. Above the requester's role limit it waits for an
    approver; gateway payments are refunded through Razorpay, others by cash or UPI."""

    __tablename__ = "refund"
    __table_args__ = (CheckConstraint("amount_paise > 0", name="amount_positive"),
                      CheckConstraint("status IN ('pending_approval','rejected','processing','processed','failed')",
                                      name="status"),
                      CheckConstraint("mode IN ('razorpay','cash','upi','neft')", name="mode"),
                      UniqueConstraint("gateway_refund_id"),
                      UniqueConstraint("org_id", "idempotency_key"))

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    payment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("payment.id"), index=True)
    bill_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bill.id"), index=True)
    credit_note_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("credit_note.id"))
    amount_paise: Mapped[int] = mapped_column(BigInteger)
    mode: Mapped[str] = mapped_column(String(8))
    reference: Mapped[str | None] = mapped_column(String(64))  # UTR of a UPI/NEFT refund
    gateway_refund_id: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(64))
    branch_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("branch.id"))
    counter: Mapped[str] = mapped_column(String(32), default="main")
    requested_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("app_user.id"))
    approved_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("app_user.id"))
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column()

    payment: Mapped[Payment] = relationship()
    bill: Mapped[Bill] = relationship()


class DayClosing(TenantScoped, Base):
    """One counter's signed-off day: cash counted by denomination against the expected cash,
    UPI and card expected against settled, discounts and refunds given."""

    __tablename__ = "day_closing"
    __table_args__ = (UniqueConstraint("org_id", "branch_id", "counter", "business_date"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    branch_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("branch.id"))
    counter: Mapped[str] = mapped_column(String(32))
    business_date: Mapped[date] = mapped_column(Date)
    expected: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)  # paise by mode, discounts, refunds
    counted_cash_paise: Mapped[int] = mapped_column(BigInteger)
    denominations: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)  # {"500": 3, "100": 7, …}
    settled: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)  # upi/card as settled
    difference_paise: Mapped[int] = mapped_column(BigInteger)  # counted − expected cash
    note: Mapped[str] = mapped_column(Text, default="")
    closed_by_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("app_user.id"))
    closed_at: Mapped[datetime] = mapped_column(default=utcnow)
