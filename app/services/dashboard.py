"""What each role's dashboard shows. Dashboards are the most-loaded pages of the day and
are benchmarked (bench/run.py), so each reads through a precompiled query
(app/queries.py: Core, compiled once, its own `org_id = :org_id` on every tenant table,
checked when defined) and its counts come in one statement rather than one each."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, select

from app.models import AuditEvent, Branch, LabTest, OrderTest, Result, Sample, UnmatchedResult, User
from app.models.user import Actor
from app.queries import Query, org, org_count


@dataclass
class Summary:
    counts: dict[str, int] = field(default_factory=dict)
    recent: list[Any] = field(default_factory=list)


_audit = AuditEvent.__table__


def _activity(*criteria: Any) -> Any:
    """The newest audit rows, only the columns the table shows (before/after JSON stays in
    the database); served by ix_audit_event_org_at / ix_audit_event_org_actor_at."""
    return (select(_audit.c.at, _audit.c.actor_label, _audit.c.action, _audit.c.entity_type, _audit.c.entity_id)
            .where(org(_audit), *criteria).order_by(_audit.c.at.desc()).limit(8))


_RECENT_ACTIVITY = Query("recent_activity", _activity())
_MY_RECENT_ACTIVITY = Query("my_recent_activity", _activity(_audit.c.actor_user_id == bindparam("user_id")))

_users, _branches, _tests = User.__table__, Branch.__table__, LabTest.__table__
_ADMIN_COUNTS = Query("admin_counts", select(
    org_count(_users, _users.c.active.is_(True)).label("users"),
    org_count(_branches, _branches.c.active.is_(True)).label("branches"),
    org_count(_tests, _tests.c.active.is_(True)).label("tests"),
))

_samples, _order_tests, _results, _unmatched = (Sample.__table__, OrderTest.__table__, Result.__table__,
                                                UnmatchedResult.__table__)
_FLOOR_COUNTS = Query("floor_counts", select(
    org_count(_samples, _samples.c.status.in_(("pending", "collected"))).label("awaiting_receipt"),
    select(func.count()).select_from(_order_tests.join(_samples, _samples.c.id == _order_tests.c.sample_id))
    .where(org(_order_tests), org(_samples), _order_tests.c.status == "pending",
           _samples.c.status.in_(("received", "in_process", "done"))).scalar_subquery().label("pending_tests"),
    org_count(_results, _results.c.is_current.is_(True), _results.c.critical.is_(True),
           _results.c.status == "entered").label("criticals"),
    org_count(_unmatched, _unmatched.c.status == "open").label("open_unmatched"),
))


def admin_summary(user: Actor) -> Summary:
    counts = _ADMIN_COUNTS.one()
    return Summary(counts={"Active users": counts.users, "Branches": counts.branches,
                           "Tests in catalogue": counts.tests},
                   recent=_RECENT_ACTIVITY.rows())


def recent_activity(user: Actor) -> list[Any]:
    """The user's own latest audit events (the staff dashboards' activity table)."""
    return _MY_RECENT_ACTIVITY.rows(user_id=user.id)


def floor_counts() -> dict[str, int]:
    """What waits on the laboratory floor: tubes to receive, tests without a result on
    received tubes, critical results not yet verified, unmatched analyzer results."""
    return _FLOOR_COUNTS.one()._asdict()
