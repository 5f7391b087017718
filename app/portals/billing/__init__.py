"""The billing portal. Every route here is reachable by the billing role only."""
from flask import Blueprint

from app.models import Role
from app.security import role_guard

bp = Blueprint("billing", __name__, url_prefix="/billing")
bp.before_request(role_guard([Role.BILLING]))

# One module per area of the back office.
from app.portals.billing import (accounts_views, einvoice_views, gateway_views,  # noqa: E402,F401
                                 reconciliation_views, refund_views, routes)
