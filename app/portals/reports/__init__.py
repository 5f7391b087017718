"""Report versions for staff: the list for an order (polling while a version renders),
the stored PDF of any version, and a retry for a failed render. Any staff role may read;
reads are tenant-scoped (another lab's report is a 404)."""
from flask import Blueprint

from app.models import Role
from app.security import role_guard

bp = Blueprint("reports", __name__, url_prefix="/reports")
bp.before_request(role_guard(list(Role)))

from app.portals.reports import routes  # noqa: E402,F401
