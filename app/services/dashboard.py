"""What each role's dashboard shows. One query each, kept small: dashboards are the
most-loaded pages of the day and are benchmarked (bench/run.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Row, func, select

from app.extensions import db
from app.models import AuditEvent, Branch, Department, LabTest, OrderTest, Result, Sample, UnmatchedResult, User


@dataclass
class Summary:
    counts: dict[str, int] = field(default_factory=dict)
    recent: list[Row] = field(default_factory=list)
    departments: list[tuple[str, int]] = field(default_factory=list)


def _recent_activity(user: User, *, mine: bool, limit: int = 8) -> list[Row]:
    """The newest audit rows, only the columns the table shows (before/after JSON stays in
    the database); served by ix_audit_event_org_at / ix_audit_event_org_actor_at."""
    stmt = select(AuditEvent.at, AuditEvent.actor_label, AuditEvent.action, AuditEvent.entity_type,
                  AuditEvent.entity_id).where(AuditEvent.org_id == user.org_id)
    if mine:
        stmt = stmt.where(AuditEvent.actor_user_id == user.id)
    return list(db.session.execute(stmt.order_by(AuditEvent.at.desc()).limit(limit)))


def admin_summary(user: User) -> Summary:
    # Three plain counts: entities inside scalar subqueries are out of reach of the tenant
    # criteria (app/security.py refuses such statements), so each count is its own query.
    counts = {
        "Active users": db.session.execute(select(func.count(User.id)).where(User.active.is_(True))).scalar_one(),
        "Branches": db.session.execute(select(func.count(Branch.id)).where(Branch.active.is_(True))).scalar_one(),
        "Tests in catalogue": db.session.execute(
            select(func.count(LabTest.id)).where(LabTest.active.is_(True))).scalar_one(),
    }
    return Summary(counts=counts, recent=_recent_activity(user, mine=False))


def staff_summary(user: User) -> Summary:
    departments = db.session.execute(
        select(Department.name, func.count(LabTest.id))
        .join(LabTest, LabTest.department_id == Department.id)
        .where(LabTest.active.is_(True))
        .group_by(Department.name).order_by(Department.name)
    ).all()
    return Summary(departments=[(name, count) for name, count in departments],
                   recent=_recent_activity(user, mine=True))


def floor_counts() -> dict[str, int]:
    """What waits on the laboratory floor: tubes to receive, tests without a result on
    received tubes, critical results not yet verified, unmatched analyzer results."""
    def count(stmt):  # type: ignore[no-untyped-def]
        return db.session.execute(stmt).scalar_one()

    return {
        "awaiting_receipt": count(select(func.count(Sample.id)).where(Sample.status.in_(("pending", "collected")))),
        # Sample is named in the select list so the tenant scoping covers the join.
        "pending_tests": sum(n for _, n in db.session.execute(
            select(Sample.status, func.count(OrderTest.id)).select_from(OrderTest).join(OrderTest.sample)
            .where(OrderTest.status == "pending", Sample.status.in_(("received", "in_process", "done")))
            .group_by(Sample.status))),
        "criticals": count(select(func.count(Result.id)).where(Result.is_current.is_(True), Result.critical.is_(True),
                                                                Result.status == "entered")),
        "open_unmatched": count(select(func.count(UnmatchedResult.id)).where(UnmatchedResult.status == "open")),
    }
