"""The reception desk. Every route here is reachable by the reception role only."""
from flask import Blueprint

from app.models import Role
from app.security import role_guard

bp = Blueprint("reception", __name__, url_prefix="/reception")
bp.before_request(role_guard([Role.RECEPTION]))

from app.portals.reception import collections, patients, routes  # noqa: E402,F401
