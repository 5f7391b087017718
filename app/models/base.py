"""Declarative base, naming convention and the mixins every table shares."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import BigInteger, DateTime, ForeignKey, MetaData, func
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column, registry

# Named constraints keep Alembic migrations deterministic and reviewable.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """All times are stored in UTC (shown in Asia/Kolkata)."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    # Every datetime column is timezone-aware (timestamptz): times are UTC in the database.
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: DateTime(timezone=True)},
    )


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        server_default=func.now(), default=utcnow, onupdate=utcnow
    )


class TenantScoped:
    """A row that belongs to one organization.

    Every SELECT/UPDATE/DELETE of a TenantScoped model is filtered to the organization set
    on the session (app.security.tenant scoping), and a session with no organization set
    refuses to query these tables at all unless told `all_tenants=True`. See security.py.
    """

    @declared_attr
    def org_id(cls) -> Mapped[int]:  # noqa: N805 - SQLAlchemy declared_attr signature
        return mapped_column(
            BigInteger, ForeignKey("organization.id", ondelete="RESTRICT"), index=True, nullable=False
        )
