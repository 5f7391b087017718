"""Admin: the message log (WhatsApp, SMS, email and the outbox of unconfigured channels),
filterable by status, channel and event; one message's detail (recipient masked, OTPs
hidden), attempts and last error; Retry for a failed or outbox message (audited)."""
from __future__ import annotations

from flask import current_app, flash, render_template, request, url_for
from sqlalchemy import select

from app.extensions import db
from app.models import Notification
from app.models.notification import CHANNELS, STATUSES
from app.portals import page_or_fragment, see_other
from app.portals.admin import bp
from app.security import get_or_404
from app.services import notifications

PAGE_SIZE = 50


@bp.get("/notifications", endpoint="notifications")
def notifications_view():  # type: ignore[no-untyped-def]
    status, channel, event = (request.args.get(k, "") for k in ("status", "channel", "event"))
    page = max(1, request.args.get("page", 1, type=int) or 1)
    stmt = select(Notification).order_by(Notification.id.desc())
    if status in STATUSES:
        stmt = stmt.where(Notification.status == status)
    if channel in CHANNELS:
        stmt = stmt.where(Notification.channel == channel)
    if event in notifications.TEMPLATES:
        stmt = stmt.where(Notification.event == event)
    rows = db.session.execute(stmt.limit(PAGE_SIZE + 1).offset((page - 1) * PAGE_SIZE)).scalars().all()
    context = dict(rows=rows[:PAGE_SIZE], page=page, has_next=len(rows) > PAGE_SIZE, statuses=STATUSES,
                   channels=CHANNELS, events=list(notifications.TEMPLATES), selected={
                       "status": status, "channel": channel, "event": event},
                   configured=notifications.channel_status(), templates=notifications.TEMPLATES,
                   sms_ids=current_app.config.get("LIS_SMS_TEMPLATE_IDS", {}),
                   mask=notifications.mask)
    return render_template(page_or_fragment("admin/notifications.html", "admin/_notification_rows.html"), **context)


@bp.get("/notifications/<int:notification_id>", endpoint="notification")
def notification_view(notification_id: int):  # type: ignore[no-untyped-def]
    row = get_or_404(Notification, id=notification_id)
    return render_template("admin/notification.html", row=row, recipient=notifications.mask(row.recipient),
                           payload=notifications.shown_payload(row), max_attempts=notifications.MAX_ATTEMPTS,
                           preview=notifications.preview(row))


@bp.post("/notifications/<int:notification_id>/retry", endpoint="notification_retry")
def notification_retry(notification_id: int):  # type: ignore[no-untyped-def]
    row = get_or_404(Notification, id=notification_id)
    try:
        notifications.retry(row)
    except notifications.NotificationRefused as err:
        db.session.rollback()
        flash(err.message, "error")
        return render_template("admin/notification.html", row=row, recipient=notifications.mask(row.recipient),
                               payload=notifications.shown_payload(row), max_attempts=notifications.MAX_ATTEMPTS,
                               preview=notifications.preview(row)), 422
    db.session.commit()
    flash("The message is queued to be sent again.", "success")
    return see_other(url_for(".notification", notification_id=notification_id))
