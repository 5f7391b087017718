"""The technician portal. Every route here is reachable by the technician role only."""
from flask import Blueprint

from app.models import Role
from app.security import role_guard

bp = Blueprint("technician", __name__, url_prefix="/technician")
bp.before_request(role_guard([Role.TECHNICIAN]))

from app.portals.technician import dashboard, entry, instruments, receipt, unmatched, worklist  # noqa: E402,F401
