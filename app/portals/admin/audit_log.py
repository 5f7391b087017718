"""Admin: the audit trail, filterable (htmx active filter on a real GET form)."""
from __future__ import annotations

from datetime import datetime, time, timedelta

from flask import render_template, request
from flask_login import current_user

from app import audit
from app.extensions import db
from app.formatting import IST
from app.portals import page_or_fragment
from app.portals.admin import bp
from app.portals.admin.forms import AuditFilterForm

PAGE_SIZE = 50


def _local_midnight(day):  # type: ignore[no-untyped-def]
    return datetime.combine(day, time.min, tzinfo=IST)


@bp.get("/audit", endpoint="audit")
def audit_view():  # type: ignore[no-untyped-def]
    form = AuditFilterForm(request.args)
    form.validate()
    page = max(1, request.args.get("page", 1, type=int) or 1)
    stmt = audit.events_for_org(
        current_user.org_id,
        action=form.action.data or None, entity_type=form.entity_type.data or None,
        entity_id=form.entity_id.data or None, actor=form.actor.data or None,
        since=_local_midnight(form.since.data) if form.since.data and not form.since.errors else None,
        until=_local_midnight(form.until.data) + timedelta(days=1) if form.until.data and not form.until.errors else None,
    )
    events = db.session.execute(stmt.limit(PAGE_SIZE + 1).offset((page - 1) * PAGE_SIZE)).scalars().all()
    context = dict(form=form, events=events[:PAGE_SIZE], page=page, has_next=len(events) > PAGE_SIZE)
    return render_template(page_or_fragment("admin/audit.html", "admin/_audit_rows.html"), **context)

