"""Organization (a lab company, the tenant) and its branches."""
from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from app.models.base import Base, TenantScoped, Timestamped


class Organization(Timestamped, Base):
    __tablename__ = "organization"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    legal_name: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str] = mapped_column(String(200))
    gstin: Mapped[str | None] = mapped_column(String(15))
    pan: Mapped[str | None] = mapped_column(String(10))
    address_line1: Mapped[str] = mapped_column(String(200), default="")
    address_line2: Mapped[str] = mapped_column(String(200), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    state_code: Mapped[str] = mapped_column(String(2))  # GST state code, e.g. "29" Karnataka
    pin_code: Mapped[str] = mapped_column(String(6), default="")
    phone: Mapped[str] = mapped_column(String(20), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    nabl_certificate: Mapped[str | None] = mapped_column(String(40))
    # UPI: the VPA patients pay to, and the name their app shows (NPCI pa / pn).
    upi_vpa: Mapped[str | None] = mapped_column(String(100))
    upi_payee_name: Mapped[str | None] = mapped_column(String(100))
    # Report letterhead (india.md §5.1: the issuing laboratory identified on the report).
    # The logo is deferred: the organization is loaded with the user on every request.
    report_accreditation: Mapped[str] = mapped_column(String(400), default="")
    report_logo: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    report_logo_type: Mapped[str | None] = mapped_column(String(16))  # image/png | image/jpeg
    # NABL ULR layout, optional (india.md §5.2: layout unverified, so the lab configures it):
    # a run of '#' is replaced by the zero-padded running number, e.g. "TC1234261########F".
    ulr_pattern: Mapped[str | None] = mapped_column(String(32))
    # GST e-invoicing (india.md §1.5): required when aggregate turnover in any FY since 2017-18
    # exceeds Rs 5 crore (Notification 10/2023-CT). The lab switches it on; the turnover is kept
    # so the settings page can say whether it must.
    einvoice_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    aggregate_turnover_paise: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Refunds above this need a second person's approval (admin may approve up to any amount).
    refund_approval_limit_paise: Mapped[int] = mapped_column(BigInteger, default=200000, server_default="200000")
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    branches: Mapped[list["Branch"]] = relationship(back_populates="organization", order_by="Branch.code")


class Branch(TenantScoped, Timestamped, Base):
    """A main lab or collection centre; each has its own document-number series."""

    __tablename__ = "branch"
    __table_args__ = (UniqueConstraint("org_id", "code"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(8))  # used in document numbers: A-Z 0-9 only
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(400), default="")
    state_code: Mapped[str] = mapped_column(String(2))
    phone: Mapped[str] = mapped_column(String(20), default="")
    is_main_lab: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    organization: Mapped[Organization] = relationship(back_populates="branches")
