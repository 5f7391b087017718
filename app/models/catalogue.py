"""The test catalogue (first cut: departments and tests; intervals and panels come with reception)."""
from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, TenantScoped, Timestamped


class Department(TenantScoped, Timestamped, Base):
    __tablename__ = "department"
    __table_args__ = (UniqueConstraint("org_id", "code"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))


class LabTest(TenantScoped, Timestamped, Base):
    __tablename__ = "lab_test"
    __table_args__ = (UniqueConstraint("org_id", "code"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    loinc: Mapped[str | None] = mapped_column(String(16))
    department_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("department.id"))
    specimen: Mapped[str] = mapped_column(String(40))
    container: Mapped[str] = mapped_column(String(40))
    unit: Mapped[str | None] = mapped_column(String(32))  # UCUM
    result_type: Mapped[str] = mapped_column(String(16), default="numeric")
    decimals: Mapped[int] = mapped_column(Integer, default=0)
    method: Mapped[str] = mapped_column(String(100), default="")
    tat_hours: Mapped[int] = mapped_column(Integer, default=24)
    price_paise: Mapped[int] = mapped_column(BigInteger)  # money is integer paise
    sac_code: Mapped[str] = mapped_column(String(8), default="999316")
    gst_rate: Mapped[float] = mapped_column(Numeric(5, 2), default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    department: Mapped[Department] = relationship()
