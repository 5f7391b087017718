"""The verification queue (the pathologist's home): orders with results waiting, critical
first, then STAT, then oldest. The list refreshes itself every 30 s (htmx polls the fragment)."""
from __future__ import annotations

from datetime import datetime

from flask import render_template, request

from app.models.base import utcnow
from app.portals import page_or_fragment
from app.portals.pathologist import bp
from app.services import verification

PAGE_SIZE = 25
MAX_PAGE = 10_000


def age_text(since: datetime, now: datetime) -> str:
    """How long an order has waited: "8 min", "3 h 05 min", "2 d 4 h"."""
    minutes = max(int((now - since).total_seconds() // 60), 0)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min"


@bp.get("/", endpoint="queue")
def queue_view():  # type: ignore[no-untyped-def]
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), MAX_PAGE)
    items = verification.queue(limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    return render_template(page_or_fragment("pathologist/queue.html", "pathologist/_queue_rows.html"),
                           items=items[:PAGE_SIZE], page=page, has_next=len(items) > PAGE_SIZE, now=utcnow(),
                           age_text=age_text)
