"""The patient portal: login by mobile OTP, the family behind one mobile, their reports and
bills. No Flask request here; the views pass the organization, mobile and client address.

OTP rules: 6 digits from `secrets`, valid 5 minutes, stored only as HMAC-SHA256 keyed with
SECRET_KEY over "org:mobile:code"; one active code per mobile (a new request invalidates the
older ones); a used code is consumed and refused when replayed; at most 5 wrong codes per
number in 15 minutes, counted over all its rows. A request for a number with no patients
behaves exactly like one with patients (a row is written, the same answer is given), except
that no message is sent: the portal never says which numbers are registered.
Neither mobile numbers nor codes are logged."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select, update

from app import audit
from app.extensions import db
from app.models import Bill, Order, Organization, Patient, PatientOtp, Report
from app.models.base import utcnow
from app.services import documents, notifications

OTP_LIFETIME = timedelta(minutes=5)
ATTEMPT_WINDOW = timedelta(minutes=15)
MAX_ATTEMPTS = 5
ISSUED = ("final", "partial", "amended")


def _key() -> bytes:
    return str(current_app.config["SECRET_KEY"]).encode()


def code_hash(org_id: int, mobile: str, code: str) -> str:
    return hmac.new(_key(), f"{org_id}:{mobile}:{code}".encode(), hashlib.sha256).hexdigest()


def ip_hash(ip: str | None) -> str | None:
    return hmac.new(_key(), f"ip:{ip}".encode(), hashlib.sha256).hexdigest() if ip else None


def new_code() -> str:
    return f"{secrets.randbelow(10 ** 6):06d}"


def organization_by_code(code: str) -> Organization | None:
    org = db.session.execute(select(Organization).where(Organization.code == code)).scalar_one_or_none()
    return org if org is not None and org.active else None


def has_patients(mobile: str) -> bool:
    return db.session.execute(select(Patient.id).where(Patient.mobile == mobile).limit(1)).first() is not None


def recent_failures(mobile: str) -> int:
    since = utcnow() - ATTEMPT_WINDOW
    return int(db.session.execute(select(func.coalesce(func.sum(PatientOtp.attempts), 0))
                                  .where(PatientOtp.mobile == mobile, PatientOtp.created_at >= since)).scalar_one())


def request_otp(org: Organization, mobile: str, *, ip: str | None) -> None:
    """Invalidate the number's older codes, store a new one and send it (only when patients
    are registered with the number). The session's tenant must be `org`. Commits."""
    session = db.session
    now = utcnow()
    session.execute(update(PatientOtp).where(PatientOtp.mobile == mobile, PatientOtp.consumed_at.is_(None),
                                             PatientOtp.invalidated_at.is_(None))
                    .values(invalidated_at=now).execution_options(synchronize_session=False))
    code = new_code()
    row = PatientOtp(org_id=org.id, mobile=mobile, code_hash=code_hash(org.id, mobile, code),
                     expires_at=now + OTP_LIFETIME, attempts=0, requested_ip_hash=ip_hash(ip))
    session.add(row)
    session.flush([row])
    if has_patients(mobile) and recent_failures(mobile) < MAX_ATTEMPTS:
        notifications.otp(mobile, code, key=f"patient-login:{row.id}", org_id=org.id)
    session.commit()


@dataclass(frozen=True)
class Verification:
    outcome: str  # ok | wrong | expired | used | locked | none
    remaining: int = 0

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def verify_otp(org: Organization, mobile: str, code: str) -> Verification:
    """Check a code against the number's active OTP. Only a wrong code against a live OTP
    changes anything (its attempt is counted); an expired, replayed or locked-out attempt is
    refused and changes nothing. Commits."""
    session = db.session
    if recent_failures(mobile) >= MAX_ATTEMPTS:
        session.rollback()
        return Verification("locked")
    now = utcnow()
    digest = code_hash(org.id, mobile, code.strip())
    latest = session.execute(select(PatientOtp).where(PatientOtp.mobile == mobile)
                             .order_by(PatientOtp.created_at.desc(), PatientOtp.id.desc()).limit(1)
                             .with_for_update()).scalar_one_or_none()
    if latest is None:
        session.rollback()
        return Verification("none")
    matches = hmac.compare_digest(latest.code_hash, digest)
    if latest.consumed_at is not None:
        session.rollback()
        return Verification("used" if matches else "none")
    if latest.invalidated_at is not None:
        session.rollback()
        return Verification("none")
    if latest.expires_at <= now:
        session.rollback()
        return Verification("expired")
    if not matches:
        latest.attempts += 1
        session.commit()
        remaining = MAX_ATTEMPTS - recent_failures(mobile)
        session.rollback()
        return Verification("locked" if remaining <= 0 else "wrong", max(remaining, 0))
    latest.consumed_at = now
    audit.record("patient_portal.login", entity_type="patient_otp", entity_id=latest.id, org_id=org.id)
    session.commit()
    return Verification("ok")


# ---------------------------------------------------------------- what a logged-in mobile sees

@dataclass
class BillView:
    bill: Bill
    upi: documents.UpiRequest | None


@dataclass
class Member:
    patient: Patient
    reports: list[Report] = field(default_factory=list)
    bills: list[BillView] = field(default_factory=list)


def family(org: Organization, mobile: str) -> list[Member]:
    """Every patient registered with the mobile, with their issued report versions (those with
    a PDF, newest first) and their bills (not cancelled). Tenant-scoped to `org`."""
    session = db.session
    patients = session.execute(select(Patient).where(Patient.mobile == mobile)
                               .order_by(Patient.full_name, Patient.id)).scalars().all()
    members = {p.id: Member(p) for p in patients}
    if not members:
        return []
    orders = {o.id: o for o in session.execute(select(Order).where(Order.patient_id.in_(members))).scalars()}
    if orders:
        for report in session.execute(select(Report).where(Report.order_id.in_(orders), Report.status.in_(ISSUED),
                                                           Report.pdf.is_not(None))
                                      .order_by(Report.released_at.desc(), Report.version.desc())).scalars():
            members[orders[report.order_id].patient_id].reports.append(report)
        for bill in session.execute(select(Bill).where(Bill.order_id.in_(orders), Bill.status != "cancelled")
                                    .order_by(Bill.bill_date.desc(), Bill.id.desc())).scalars():
            members[orders[bill.order_id].patient_id].bills.append(BillView(bill, documents.upi_for_bill(org, bill)))
    return list(members.values())


def _owner_mobile(order_id: int) -> str | None:
    row = db.session.execute(select(Patient.mobile, Order.id).join(Order, Order.patient_id == Patient.id)
                             .where(Order.id == order_id)).first()
    return None if row is None else row[0]


def report_for_mobile(report_id: int, mobile: str) -> Report | None:
    """One issued report version with its PDF, only if its patient has this mobile (and it is
    in the session's organization); None otherwise, whatever the reason."""
    from app.services import reports

    report = reports.with_pdf(report_id)
    if report is None or report.status not in ISSUED or report.pdf is None:
        return None
    owner = _owner_mobile(report.order_id)
    if owner is None or not hmac.compare_digest(owner, mobile):
        return None
    return report


def bill_for_mobile(bill_id: int, mobile: str) -> Bill | None:
    session = db.session
    bill = session.execute(select(Bill).where(Bill.id == bill_id)).scalar_one_or_none()
    if bill is None or bill.order_id is None or bill.status == "cancelled":
        return None
    owner = _owner_mobile(bill.order_id)
    if owner is None or not hmac.compare_digest(owner, mobile):
        return None
    return bill
