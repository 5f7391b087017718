"""Orders, the tests they ask for, and the tubes (samples) that carry them."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (BigInteger, CheckConstraint, Computed, ForeignKey, Index, Integer, Numeric, Sequence, String, Text,
                        SmallInteger, UniqueConstraint, text)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, TenantScoped, Timestamped
from app.models.catalogue import Client, LabTest, Referrer
from app.models.org import Branch
from app.models.patient import Patient

ACCESSION_SEQUENCE = Sequence("order_accession_seq", start=5000001)  # 8 digits with check digit
BARCODE_SEQUENCE = Sequence("sample_barcode_seq", start=10000001)  # 9 digits with check digit

PRIORITIES = ("routine", "urgent", "stat")
SAMPLE_STATES = ("pending", "collected", "received", "in_process", "done", "rejected")


# The queue's order: orders with a critical result first, then STAT, urgent, routine.
VERIFY_RANK_SQL = ("CASE WHEN verify_criticals > 0 THEN 0 ELSE 10 END"
                   " + CASE priority WHEN 'stat' THEN 0 WHEN 'urgent' THEN 1 ELSE 2 END")


class Order(TenantScoped, Timestamped, Base):
    __tablename__ = "lab_order"
    __table_args__ = (
        UniqueConstraint("org_id", "accession"),
        # A double-clicked submit carries the same form token: the second insert conflicts.
        UniqueConstraint("org_id", "idempotency_key"),
        CheckConstraint("priority IN ('routine','urgent','stat')", name="priority"),
        CheckConstraint("discount_paise >= 0", name="discount"),
        Index("ix_lab_order_org_created", "org_id", "created_at"),
        # The verification queue reads only orders with results waiting: a small partial index.
        # in queue order (critical, STAT, urgent, routine, then oldest), so a page is an index
        # range read with no sort however long the backlog.
        Index("ix_lab_order_verification_queue", "org_id", "verify_rank", "created_at",
              postgresql_where=text("verify_waiting > 0")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    accession: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("patient.id"), index=True)
    branch_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("branch.id"))
    referrer_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("referrer.id"))
    client_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("client.id"))
    priority: Mapped[str] = mapped_column(String(8), default="routine")
    clinical_notes: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="registered")
    discount_paise: Mapped[int] = mapped_column(BigInteger, default=0)
    discount_reason: Mapped[str] = mapped_column(String(200), default="")
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("app_user.id"))
    # What waits for a pathologist on this order: current results 'entered', how many are
    # critical, how many failed a delta check. Kept by a database trigger on result (migration
    # 0013), never written by the application, so every path that changes a result (grid,
    # analyzer ingestion, verification, send back, amendment) keeps the queue right.
    verify_waiting: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    verify_criticals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    verify_deltas: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    verify_rank: Mapped[int] = mapped_column(SmallInteger, Computed(VERIFY_RANK_SQL, persisted=True))

    patient: Mapped[Patient] = relationship()
    branch: Mapped[Branch] = relationship()
    referrer: Mapped[Referrer | None] = relationship()
    client: Mapped[Client | None] = relationship()
    items: Mapped[list["OrderItem"]] = relationship(back_populates="order", order_by="OrderItem.id",
                                                    cascade="all, delete-orphan")
    tests: Mapped[list["OrderTest"]] = relationship(back_populates="order", order_by="OrderTest.id",
                                                    cascade="all, delete-orphan")
    samples: Mapped[list["Sample"]] = relationship(back_populates="order", order_by="Sample.id",
                                                   cascade="all, delete-orphan")


class OrderItem(TenantScoped, Base):
    """What was sold: a test or a panel, with its price and tax snapshot at order time."""

    __tablename__ = "order_item"
    __table_args__ = (CheckConstraint("(test_id IS NULL) <> (panel_id IS NULL)", name="one_target"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("lab_order.id", ondelete="CASCADE"), index=True)
    test_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("lab_test.id"))
    panel_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("panel.id"))
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    price_paise: Mapped[int] = mapped_column(BigInteger)
    sac_code: Mapped[str] = mapped_column(String(8))
    gst_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2))

    order: Mapped[Order] = relationship(back_populates="items")


class Sample(TenantScoped, Timestamped, Base):
    """One tube: a barcode, a specimen type and a container."""

    __tablename__ = "sample"
    __table_args__ = (
        UniqueConstraint("org_id", "barcode"),
        CheckConstraint("status IN ('pending','collected','received','in_process','done','rejected')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("lab_order.id", ondelete="CASCADE"), index=True)
    barcode: Mapped[str] = mapped_column(String(16))
    specimen: Mapped[str] = mapped_column(String(40))
    container: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    collected_at: Mapped[datetime | None] = mapped_column()
    collected_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("app_user.id"))
    received_at: Mapped[datetime | None] = mapped_column()
    received_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("app_user.id"))
    rejection_reason: Mapped[str | None] = mapped_column(String(40))
    rejection_note: Mapped[str | None] = mapped_column(String(400))
    label_prints: Mapped[int] = mapped_column(Integer, default=0)
    # A quality remark that does not reject the tube ("mildly lipaemic"): shown to the
    # pathologist, printed on the report, and it stops autoverification.
    remark: Mapped[str] = mapped_column(String(400), default="")
    # A recollection is a new tube for the tests of a rejected one; this points back to it.
    recollect_of_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("sample.id"))

    order: Mapped[Order] = relationship(back_populates="samples")
    tests: Mapped[list["OrderTest"]] = relationship(back_populates="sample", order_by="OrderTest.id",
                                                    foreign_keys="OrderTest.sample_id")


class OrderTest(TenantScoped, Base):
    """One test to perform (a panel expands into several), on one tube. Results attach here."""

    __tablename__ = "order_test"
    __table_args__ = (UniqueConstraint("order_id", "test_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("lab_order.id", ondelete="CASCADE"), index=True)
    order_item_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("order_item.id", ondelete="CASCADE"))
    test_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("lab_test.id"))
    sample_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("sample.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # results made for it so far (reruns add one)

    order: Mapped[Order] = relationship(back_populates="tests")
    test: Mapped[LabTest] = relationship()
    sample: Mapped[Sample | None] = relationship(back_populates="tests")
