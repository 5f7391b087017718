"""The pathologist portal: the verification queue, the review of one order (verify, send
back, critical-value calls, interpretive comments, release) and the criticals register.
Every route here is reachable by the pathologist role only."""
from flask import Blueprint

from app.models import Role
from app.security import role_guard

bp = Blueprint("pathologist", __name__, url_prefix="/pathologist")
bp.before_request(role_guard([Role.PATHOLOGIST]))

from app.portals.pathologist import criticals, queue, review  # noqa: E402,F401
