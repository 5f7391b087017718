"""The audit trail. Append-only: a database trigger rejects UPDATE, DELETE and TRUNCATE."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, func
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class AuditEvent(Base):
    """Not TenantScoped on purpose: login failures happen before an organization is known.
    Queries filter org_id explicitly (app.audit.events_for_org)."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_org_at", "org_id", "at"),
        Index("ix_audit_event_entity", "entity_type", "entity_id"),
        # "Your recent activity" on every staff dashboard: without it, a scan of the whole trail.
        Index("ix_audit_event_org_actor_at", "org_id", "actor_user_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(server_default=func.now(), default=utcnow)
    org_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("organization.id"))
    actor_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("app_user.id"))
    # "user:asha.r", "api-token:lis_ab12", "system", "worker:reports" — kept even if the user is renamed
    actor_label: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(64), index=True)
    entity_type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    ip: Mapped[str | None] = mapped_column(INET)
    request_id: Mapped[str | None] = mapped_column(String(64))
