"""Billing portal: refund_views (routes attach to the billing blueprint)."""
from app.portals.billing import bp  # noqa: F401
