"""API: bills and payment links (/api/v1/bills/…)."""
from app.api import bp  # noqa: F401
