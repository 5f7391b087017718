"""The criticals register: every critical result in a date range with the calls made for it
(who called whom, when, read back), and "NO CALL" where none was recorded."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

from flask import render_template, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.formatting import IST
from app.models import Order, OrderTest
from app.models.base import utcnow
from app.portals.pathologist import bp
from app.portals.pathologist.forms import CriticalsFilterForm
from app.services import users, verification

DEFAULT_DAYS = 7
MAX_DAYS = 92
EARLIEST = date(2000, 1, 1)


def load_order_tests(ids: set[int]) -> None:
    """Load these ordered tests by key, with their test, order and patient, into the session:
    the register's rows then find them there instead of one lazy load per row."""
    if ids:
        db.session.execute(select(OrderTest).where(OrderTest.id.in_(ids)).options(
            selectinload(OrderTest.test), selectinload(OrderTest.order).selectinload(Order.patient))).scalars().all()


def user_names() -> dict[int, str]:
    return {u.id: u.full_name for u in users.list_users()}


@bp.get("/criticals", endpoint="criticals")
def criticals_view():  # type: ignore[no-untyped-def]
    form = CriticalsFilterForm(request.args)
    form.validate()
    today = utcnow().astimezone(IST).date()

    def in_range(field) -> date | None:  # type: ignore[no-untyped-def]
        if field.data is not None and not EARLIEST <= field.data <= today:
            field.errors = [*field.errors, f"Choose a date from {EARLIEST:%d %b %Y} to today."]
            return None
        return field.data

    until = in_range(form.until) or today
    since = in_range(form.since) or until - timedelta(days=DEFAULT_DAYS - 1)
    if since > until:
        form.until.errors = [*form.until.errors, "The end date must not be before the start date."]
        since, until = today - timedelta(days=DEFAULT_DAYS - 1), today
    elif (until - since).days >= MAX_DAYS:
        form.since.errors = [*form.since.errors, f"Show at most {MAX_DAYS} days at a time."]
        since = until - timedelta(days=MAX_DAYS - 1)
    form.since.data, form.until.data = since, until  # shown in the form (typed text wins when refused)
    register = verification.criticals_register(datetime.combine(since, time.min, tzinfo=IST),
                                               datetime.combine(until + timedelta(days=1), time.min, tzinfo=IST))
    load_order_tests({result.order_test_id for result, _ in register})
    return render_template("pathologist/criticals.html", form=form, since=since, until=until, register=register,
                           names=user_names(), uncalled=sum(1 for _, calls in register if not calls))
