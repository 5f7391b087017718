from flask import Blueprint

from app.models import Role
from app.security import role_guard

bp = Blueprint("admin", __name__, url_prefix="/admin")
bp.before_request(role_guard([Role.ADMIN]))

from app.portals.admin import (audit_log, branches, canned_comments, catalogue, catalogue_panels,  # noqa: E402,F401
                               catalogue_prices, catalogue_referrers, dashboard, instruments, notifications,
                               report_settings, tokens, users)
