"""Staff users and API tokens. Patients log in separately (their own model, later)."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Protocol

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from app.models.base import Base, TenantScoped, Timestamped
from app.models.org import Branch, Organization


class Role(StrEnum):
    ADMIN = "admin"
    RECEPTION = "reception"
    TECHNICIAN = "technician"
    PATHOLOGIST = "pathologist"
    BILLING = "billing"

    @property
    def label(self) -> str:
        return self.value.capitalize()


class Actor(Protocol):
    """Who does something, as services need to know it: a User row or the request's
    auth.StaffUser snapshot both qualify."""
    id: int
    org_id: int
    role: str


ROLE_CHECK = "role IN ('admin','reception','technician','pathologist','billing')"


class User(TenantScoped, Timestamped, Base):
    __tablename__ = "app_user"
    __table_args__ = (CheckConstraint(ROLE_CHECK, name="role"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # Usernames are unique across the whole installation so the login form needs no lab code.
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    branch_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("branch.id", ondelete="RESTRICT"))
    password_hash: Mapped[str] = mapped_column(String(255))
    # Bumped on password change / deactivation so every existing session is logged out.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column()
    last_login_at: Mapped[datetime | None] = mapped_column()
    password_changed_at: Mapped[datetime | None] = mapped_column()
    # Professional details shown on signed reports (pathologists).
    qualification: Mapped[str] = mapped_column(String(200), default="")
    registration_number: Mapped[str] = mapped_column(String(64), default="")
    # A PNG of the signature printed on reports; deferred (users load on every request).
    signature_png: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))

    organization: Mapped[Organization] = relationship()
    branch: Mapped[Branch | None] = relationship()

    # Flask-Login protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    @property
    def role_enum(self) -> Role:
        return Role(self.role)


class ApiToken(TenantScoped, Timestamped, Base):
    """A bearer token for integrations; only its SHA-256 is stored."""

    __tablename__ = "api_token"
    __table_args__ = (CheckConstraint(ROLE_CHECK, name="role"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(12))  # shown in lists to tell tokens apart
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("app_user.id"))
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
