"""The test catalogue: departments, tests with reference intervals, panels, referrers,
B2B clients and price lists."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, ForeignKey, Integer, Numeric, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, TenantScoped, Timestamped

RESULT_TYPES = ("numeric", "choice", "text")


class Department(TenantScoped, Timestamped, Base):
    __tablename__ = "department"
    __table_args__ = (UniqueConstraint("org_id", "code"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    sort_order: Mapped[int] = mapped_column(Integer, default=0)


class LabTest(TenantScoped, Timestamped, Base):
    __tablename__ = "lab_test"
    __table_args__ = (
        UniqueConstraint("org_id", "code"),
        CheckConstraint("result_type IN ('numeric','choice','text')", name="result_type"),
        CheckConstraint("price_paise >= 0", name="price"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    loinc: Mapped[str | None] = mapped_column(String(16))
    department_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("department.id"))
    specimen: Mapped[str] = mapped_column(String(40))  # Whole blood, Serum, Plasma, Urine, Stool...
    container: Mapped[str] = mapped_column(String(40))  # EDTA, Plain, Fluoride, Citrate, Urine container...
    unit: Mapped[str | None] = mapped_column(String(32))  # UCUM
    result_type: Mapped[str] = mapped_column(String(16), default="numeric")
    choices: Mapped[str | None] = mapped_column(String(400))  # "Negative|Positive" for choice tests
    decimals: Mapped[int] = mapped_column(Integer, default=0)
    method: Mapped[str] = mapped_column(String(100), default="")
    tat_hours: Mapped[int] = mapped_column(Integer, default=24)
    price_paise: Mapped[int] = mapped_column(BigInteger)  # money is integer paise
    sac_code: Mapped[str] = mapped_column(String(8), default="999316")
    gst_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal("0"))  # 0 = exempt health care
    orderable: Mapped[bool] = mapped_column(Boolean, default=True)  # False for calculated/component-only tests
    # Delta check: flag for the pathologist when a result moves this much from the patient's
    # previous one (absolute in the test's unit, or percent of the previous value).
    delta_abs: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
    delta_pct: Mapped[Decimal | None] = mapped_column(Numeric(6, 2))
    # Autoverification (off by default): a result inside its interval, not critical, without
    # delta failure, instrument flag or comment, on a tube without remarks, is verified by
    # rule (app/services/verification.py autoverify_decision) and marked as such.
    autoverify: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    department: Mapped[Department] = relationship()
    intervals: Mapped[list["ReferenceInterval"]] = relationship(
        back_populates="test", order_by="ReferenceInterval.sex, ReferenceInterval.age_min_days",
        cascade="all, delete-orphan")

    @property
    def taxable(self) -> bool:
        return self.gst_rate > 0


class ReferenceInterval(TenantScoped, Base):
    """A reference interval for a sex and an age band (in days, lower bound inclusive,
    upper bound exclusive), with critical limits where they exist."""

    __tablename__ = "reference_interval"
    __table_args__ = (
        CheckConstraint("sex IN ('any','male','female')", name="sex"),
        CheckConstraint("age_min_days >= 0 AND age_max_days > age_min_days", name="age_band"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    test_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("lab_test.id", ondelete="CASCADE"), index=True)
    sex: Mapped[str] = mapped_column(String(8), default="any")
    age_min_days: Mapped[int] = mapped_column(Integer, default=0)
    age_max_days: Mapped[int] = mapped_column(Integer, default=54750)  # 150 years
    low: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
    high: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
    critical_low: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
    critical_high: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
    text: Mapped[str | None] = mapped_column(String(200))  # "Negative", "< 200 desirable"...
    source: Mapped[str] = mapped_column(String(300), default="")  # where the interval comes from

    test: Mapped[LabTest] = relationship(back_populates="intervals")


class Panel(TenantScoped, Timestamped, Base):
    """A profile or package (CBC, LFT, a health check) sold at its own price."""

    __tablename__ = "panel"
    __table_args__ = (UniqueConstraint("org_id", "code"), CheckConstraint("price_paise >= 0", name="price"))

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    price_paise: Mapped[int] = mapped_column(BigInteger)
    sac_code: Mapped[str] = mapped_column(String(8), default="999316")
    gst_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal("0"))
    is_package: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    items: Mapped[list["PanelItem"]] = relationship(back_populates="panel", order_by="PanelItem.position",
                                                    cascade="all, delete-orphan")

    @property
    def taxable(self) -> bool:
        return self.gst_rate > 0


class PanelItem(TenantScoped, Base):
    __tablename__ = "panel_item"
    __table_args__ = (UniqueConstraint("panel_id", "test_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    panel_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("panel.id", ondelete="CASCADE"), index=True)
    test_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("lab_test.id"))
    position: Mapped[int] = mapped_column(Integer, default=0)

    panel: Mapped[Panel] = relationship(back_populates="items")
    test: Mapped[LabTest] = relationship()


class Referrer(TenantScoped, Timestamped, Base):
    """A referring doctor or hospital."""

    __tablename__ = "referrer"
    __table_args__ = (CheckConstraint("kind IN ('doctor','hospital','self')", name="kind"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="doctor")
    qualification: Mapped[str] = mapped_column(String(100), default="")
    phone: Mapped[str | None] = mapped_column(String(16))
    email: Mapped[str | None] = mapped_column(String(254))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Opted in to receive their patients' released reports (app/services/notifications.py).
    notify_reports: Mapped[bool] = mapped_column(Boolean, default=False)


class PriceList(TenantScoped, Timestamped, Base):
    __tablename__ = "price_list"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    items: Mapped[list["PriceListItem"]] = relationship(back_populates="price_list", cascade="all, delete-orphan")


class PriceListItem(TenantScoped, Base):
    """A price that overrides the catalogue price of one test or one panel."""

    __tablename__ = "price_list_item"
    __table_args__ = (
        UniqueConstraint("price_list_id", "test_id"),
        UniqueConstraint("price_list_id", "panel_id"),
        CheckConstraint("(test_id IS NULL) <> (panel_id IS NULL)", name="one_target"),
        CheckConstraint("price_paise >= 0", name="price"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    price_list_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("price_list.id", ondelete="CASCADE"), index=True)
    test_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("lab_test.id"))
    panel_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("panel.id"))
    price_paise: Mapped[int] = mapped_column(BigInteger)

    price_list: Mapped[PriceList] = relationship(back_populates="items")


class Client(TenantScoped, Timestamped, Base):
    """A B2B account (hospital, corporate, referring lab) with its own price list."""

    __tablename__ = "client"
    __table_args__ = (UniqueConstraint("org_id", "code"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    gstin: Mapped[str | None] = mapped_column(String(15))
    state_code: Mapped[str | None] = mapped_column(String(2))
    address: Mapped[str] = mapped_column(Text, default="")
    price_list_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("price_list.id"))
    credit_limit_paise: Mapped[int] = mapped_column(BigInteger, default=0)
    credit_days: Mapped[int] = mapped_column(Integer, default=30)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    price_list: Mapped[PriceList | None] = relationship()
