"""Patients. Identity data is personal data (DPDP Act 2023, ../shared/reference/india.md §6):
Aadhaar is never stored in full, only masked plus a keyed hash for duplicate detection."""
from __future__ import annotations

from datetime import date

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, Date, ForeignKey, Index, PrimaryKeyConstraint, Sequence,
                        String, UniqueConstraint)
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


class NameWord(TenantScoped, Base):
    """The organization's dictionary of folded name words, with how many patients have each.

    Name search finds the dictionary words nearest to each typed word (trigram KNN: fast on
    a table of short single words, unlike on whole names) and uses the counts to start from
    the rarest typed word. Kept in step with patients by services/patients.py."""

    __tablename__ = "name_word"
    __table_args__ = (
        Index("ix_name_word_knn", "org_id", "word", postgresql_using="gist",
              postgresql_ops={"word": "gist_trgm_ops"}),
    )

    # The primary key (org_id, word) is also the B-tree for words beginning with 1–2 letters.
    org_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("organization.id", ondelete="RESTRICT"),
                                        primary_key=True)
    word: Mapped[str] = mapped_column(String(200), primary_key=True)
    patients: Mapped[int] = mapped_column(BigInteger)


class PatientWord(TenantScoped, Base):
    """One row per distinct word of a patient's folded name (name_search split on spaces).

    The primary key (org_id, word, patient_id) is the B-tree search reads: a word's patients,
    newest first (scanned backwards). It carries the whole folded name (INCLUDE), so that
    search intersects words and ranks names from this index alone, without visiting
    thousands of patient rows; services/patients.py rewrites a patient's rows on a rename."""

    __tablename__ = "patient_word"
    __table_args__ = (
        PrimaryKeyConstraint("org_id", "word", "patient_id", postgresql_include=["name_search"]),
    )

    org_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("organization.id", ondelete="RESTRICT"))
    word: Mapped[str] = mapped_column(String(200))
    patient_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("patient.id", ondelete="CASCADE"))
    name_search: Mapped[str] = mapped_column(String(200))  # = patient.name_search
