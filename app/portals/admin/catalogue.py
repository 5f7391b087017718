"""Admin: the test catalogue (read-only in the foundation; editing comes with reception)."""
from flask import render_template

from app.portals.admin import bp
from app.services import catalogue


@bp.get("/catalogue", endpoint="catalogue")
def catalogue_view():  # type: ignore[no-untyped-def]
    return render_template("admin/catalogue.html", tests=catalogue.list_tests())

