"""Settlement and bank statements imported for reconciliation, and the saved column mapping of
each bank's CSV. ../shared/reference/india.md §3.2 (UTR/RRN) and §3.3 (Razorpay recon fields)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantScoped, utcnow


class BankMapping(TenantScoped, Base):
    """Which column of one bank's statement CSV holds what. Either one signed amount column,
    or separate credit and debit columns."""

    __tablename__ = "bank_mapping"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    date_column: Mapped[str] = mapped_column(String(80))
    date_format: Mapped[str] = mapped_column(String(32), default="%d/%m/%Y")
    amount_column: Mapped[str | None] = mapped_column(String(80))
    credit_column: Mapped[str | None] = mapped_column(String(80))
    debit_column: Mapped[str | None] = mapped_column(String(80))
    reference_column: Mapped[str] = mapped_column(String(80))
    narration_column: Mapped[str | None] = mapped_column(String(80))
    currency_column: Mapped[str | None] = mapped_column(String(80))
    skip_rows: Mapped[int] = mapped_column(Integer, default=0)  # banner lines above the header row
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StatementImport(TenantScoped, Base):
    """One imported file. The same file twice (same SHA-256) is refused as already imported."""

    __tablename__ = "statement_import"
    __table_args__ = (
        UniqueConstraint("org_id", "sha256"),
        CheckConstraint("kind IN ('razorpay_settlement','bank_csv')", name="kind"),
        CheckConstraint("status IN ('queued','processing','done','failed')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    bank_mapping_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("bank_mapping.id"))
    filename: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)  # the file as uploaded: the raw input is kept
    status: Mapped[str] = mapped_column(String(12), default="queued")
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)  # lines, matched, exceptions…
    error: Mapped[str] = mapped_column(Text, default="")
    imported_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("app_user.id"))
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class StatementLine(TenantScoped, Base):
    """One credit (or debit) line of a statement. The fingerprint (source, date, amount,
    reference and its occurrence number) makes an overlapping statement's repeated lines
    land on the rows already there."""

    __tablename__ = "statement_line"
    __table_args__ = (
        UniqueConstraint("org_id", "fingerprint"),
        CheckConstraint("status IN ('matched','unmatched','mismatch','duplicate','ignored','debit')", name="status"),
        # One statement line settles one payment, and one payment is settled by one line.
        Index("uq_statement_line_payment", "org_id", "payment_id", "source", unique=True,
              postgresql_where=text("payment_id IS NOT NULL")),
        Index("ix_statement_line_import", "import_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # A statement writes 100k lines in one INSERT, so this table carries only what that write
    # needs (migration 0014). org_id has no index of its own (the unique (org_id, fingerprint)
    # index serves lookups by organization) and, like import_id and payment_id, no foreign
    # key: each key was a per-row trigger (about 0.9 s per key per 100k lines; on payment it
    # also rewrote every matched payment's tuple). The only writer is reconciliation's INSERT,
    # whose org and import are the locked import row's own and whose payment ids it has just
    # read from payment; organizations, imports and payments are never deleted.
    org_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    import_id: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(24))  # razorpay_settlement | bank_csv
    line_no: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))
    txn_date: Mapped[date] = mapped_column(Date)
    amount_paise: Mapped[int] = mapped_column(BigInteger)  # credit positive, debit negative
    fee_paise: Mapped[int] = mapped_column(BigInteger, default=0)
    tax_paise: Mapped[int] = mapped_column(BigInteger, default=0)
    reference: Mapped[str | None] = mapped_column(String(64))  # UTR / RRN / Razorpay payment id
    gateway_payment_id: Mapped[str | None] = mapped_column(String(40))
    settlement_utr: Mapped[str | None] = mapped_column(String(40))
    order_receipt: Mapped[str | None] = mapped_column(String(40))
    narration: Mapped[str] = mapped_column(String(400), default="")
    raw: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    status: Mapped[str] = mapped_column(String(10))
    match_rule: Mapped[str | None] = mapped_column(String(16))  # reference | amount_time | manual
    payment_id: Mapped[int | None] = mapped_column(BigInteger)
