"""The laboratory floor at a glance: what waits for the technician, with links to it."""
from __future__ import annotations

from flask import render_template
from flask_login import current_user
from sqlalchemy import func, select

from app.extensions import db
from app.models import OrderTest, Result, Sample, UnmatchedResult
from app.portals.technician import bp
from app.services import dashboard


def floor_counts() -> dict[str, int]:
    """Four plain counts (each its own statement: the tenant criteria reach entities only).
    They belong in app/services/dashboard.py next to the other summaries; they live here
    until that module takes them."""
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


@bp.get("/", endpoint="dashboard")
def dashboard_view():  # type: ignore[no-untyped-def]
    return render_template("technician/dashboard.html", counts=floor_counts(),
                           summary=dashboard.staff_summary(current_user))
