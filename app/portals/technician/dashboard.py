"""The laboratory floor at a glance: what waits for the technician, with links to it."""
from __future__ import annotations

from flask import render_template
from flask_login import current_user

from app.portals.technician import bp
from app.services import dashboard


@bp.get("/", endpoint="dashboard")
def dashboard_view():  # type: ignore[no-untyped-def]
    return render_template("technician/dashboard.html", counts=dashboard.floor_counts(),
                           recent=dashboard.recent_activity(current_user))
