from flask import render_template
from flask_login import current_user

from app.portals.admin import bp
from app.services import dashboard


@bp.get("/", endpoint="dashboard")
def dashboard_view():  # type: ignore[no-untyped-def]
    return render_template("admin/dashboard.html", summary=dashboard.admin_summary(current_user))

