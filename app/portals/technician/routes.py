from flask import render_template
from flask_login import current_user

from app.portals.technician import bp
from app.services import dashboard


@bp.get("/", endpoint="dashboard")
def dashboard_view():  # type: ignore[no-untyped-def]
    return render_template("portal/dashboard.html", title="Laboratory floor",
                           summary=dashboard.staff_summary(current_user))
