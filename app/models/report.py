"""Reports: one row per issued version of an order's report, with its PDF and SHA-256.

Nothing is overwritten (ISO 15189 7.4.1.8 as summarised in ../shared/reference/india.md §5.1):
a later release or an amendment adds a version that references the one it supersedes, and
every earlier PDF stays in its row. The PDF lives in PostgreSQL, so it is backed up and
committed with the row that describes it.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (BigInteger, CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String, Text,
                        UniqueConstraint, text)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from app.models.base import Base, TenantScoped, Timestamped
from app.models.order import Order

REPORT_STATES = ("rendering", "final", "partial", "amended", "failed")


class Report(TenantScoped, Timestamped, Base):
    __tablename__ = "report"
    __table_args__ = (
        UniqueConstraint("org_id", "order_id", "version"),
        UniqueConstraint("token"),
        CheckConstraint("status IN ('rendering','final','partial','amended','failed')", name="status"),
        # An issued version has its bytes and their hash; only rendering/failed rows may lack them.
        CheckConstraint("status IN ('rendering','failed') OR (pdf IS NOT NULL AND sha256 IS NOT NULL)",
                        name="issued_has_pdf"),
        CheckConstraint("status <> 'amended' OR amendment_reason <> ''", name="amendment_has_reason"),
        # The sweep looks for rows stuck in 'rendering': a small partial index.
        Index("ix_report_rendering", "created_at", postgresql_where=text("status = 'rendering'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("lab_order.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per order
    # The lab's report number (one per order; every version carries it) and the optional
    # NABL ULR (india.md §5.2), both from the per-organization document counter.
    number: Mapped[str] = mapped_column(String(24))
    ulr: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(10), default="rendering")
    # Deferred: listing versions never drags the bytes along.
    pdf: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(Integer)
    pages: Mapped[int | None] = mapped_column(Integer)
    # The public verification link in the QR code: unguessable (secrets.token_urlsafe(24)).
    token: Mapped[str] = mapped_column(String(48))
    released_at: Mapped[datetime] = mapped_column()  # the date of issue printed on every page
    released_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("app_user.id"))
    # What the version contains, fixed when it is requested: rendering later (or again after a
    # failure) prints exactly these results, whatever has happened since.
    result_ids: Mapped[list[int]] = mapped_column(JSONB, default=list)
    departments_pending: Mapped[list[str]] = mapped_column(JSONB, default=list)
    supersedes_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("report.id"))
    amendment_reason: Mapped[str] = mapped_column(Text, default="")
    amended_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("app_user.id"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # render jobs started
    error: Mapped[str] = mapped_column(Text, default="")  # why the last render failed
    rendered_at: Mapped[datetime | None] = mapped_column()
    render_ms: Mapped[int | None] = mapped_column(Integer)

    order: Mapped[Order] = relationship()
    supersedes: Mapped["Report | None"] = relationship(remote_side="Report.id")

    @property
    def issued(self) -> bool:
        return self.status in ("final", "partial", "amended")

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "number": self.number, "version": self.version, "status": self.status,
                "sha256": self.sha256, "released_at": self.released_at}
