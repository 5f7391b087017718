"""The patient portal's one-time passwords (login by mobile OTP).

Only an HMAC-SHA256 of the code (keyed with SECRET_KEY, bound to the organization and the
mobile number) is stored. One active code per mobile: a new request invalidates the older
ones; a used code is marked consumed and refused if presented again. `attempts` counts wrong
codes; the service refuses verification once the number has had 5 wrong codes in 15 minutes
(summed over its rows, so asking for a new code does not reset the count)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantScoped, Timestamped


class PatientOtp(TenantScoped, Timestamped, Base):
    __tablename__ = "patient_otp"
    __table_args__ = (Index("ix_patient_otp_org_mobile_created", "org_id", "mobile", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    mobile: Mapped[str] = mapped_column(String(16))  # E.164; never logged
    code_hash: Mapped[str] = mapped_column(String(64))  # HMAC-SHA256(SECRET_KEY, org:mobile:code)
    expires_at: Mapped[datetime] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # wrong codes entered against this row
    consumed_at: Mapped[datetime | None] = mapped_column()  # a successful login used it
    invalidated_at: Mapped[datetime | None] = mapped_column()  # a newer code was requested
    requested_ip_hash: Mapped[str | None] = mapped_column(String(64))  # HMAC of the client address
