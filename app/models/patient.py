"""Patients. Identity data is personal data (DPDP Act 2023, ../shared/reference/india.md §6):
Aadhaar is never stored in full, only masked plus a keyed hash for duplicate detection."""
from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Date, ForeignKey, Index, Sequence, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantScoped, Timestamped

# One sequence for every organization: MRNs are unique installation-wide, collision-free
# under concurrent registration (never max()+1), and a check digit is appended.
MRN_SEQUENCE = Sequence("patient_mrn_seq", start=100001)


class Patient(TenantScoped, Timestamped, Base):
    __tablename__ = "patient"
    __table_args__ = (
        UniqueConstraint("org_id", "mrn"),
        CheckConstraint("sex IN ('male','female','other')", name="sex"),
        Index("ix_patient_org_mobile", "org_id", "mobile"),
        Index("ix_patient_org_aadhaar_hash", "org_id", "aadhaar_hash"),
        # GiST trigram index with org_id (btree_gist): nearest-neighbour search by word
        # similarity (<<->) returns the best 20 of a million names without sorting them all.
        Index("ix_patient_name_knn", "org_id", "name_search", postgresql_using="gist",
              postgresql_ops={"name_search": "gist_trgm_ops(siglen=64)"}),
        Index("ix_patient_org_name_dob", "org_id", "name_search", "date_of_birth"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    mrn: Mapped[str] = mapped_column(String(16))
    full_name: Mapped[str] = mapped_column(String(200))
    # Lower-cased, accents and punctuation removed, spelling variants folded (services/names.py).
    name_search: Mapped[str] = mapped_column(String(200))
    sex: Mapped[str] = mapped_column(String(8))
    date_of_birth: Mapped[date] = mapped_column(Date)
    dob_estimated: Mapped[bool] = mapped_column(Boolean, default=False)  # age given, not a birth date
    mobile: Mapped[str | None] = mapped_column(String(16))  # E.164
    email: Mapped[str | None] = mapped_column(String(254))
    address: Mapped[str] = mapped_column(String(400), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    pin_code: Mapped[str | None] = mapped_column(String(6))
    state_code: Mapped[str | None] = mapped_column(String(2))
    aadhaar_masked: Mapped[str | None] = mapped_column(String(14))  # XXXX XXXX 1234
    aadhaar_hash: Mapped[str | None] = mapped_column(String(64))  # HMAC-SHA256 with a server key
    abha_number: Mapped[str | None] = mapped_column(String(14))  # 14 digits, shown XX-XXXX-XXXX-XXXX
    abha_address: Mapped[str | None] = mapped_column(String(100))
    registered_branch_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("branch.id"))
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("app_user.id"))
