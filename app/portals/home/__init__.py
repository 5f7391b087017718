"""/ sends a logged-in user to their portal's home, anyone else to the login page."""
from flask import Blueprint, redirect, url_for
from flask_login import current_user

bp = Blueprint("home", __name__)


@bp.get("/")
def index():  # type: ignore[no-untyped-def]
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    from app.portals.auth.routes import home_url

    return redirect(home_url())
