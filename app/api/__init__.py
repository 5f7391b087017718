"""JSON API /api/v1 for integrations: bearer tokens scoped to an organization and a role,
RFC 9457 problem details, and an OpenAPI document built from the same declarations that
register the routes (app.api.registry), so the document cannot drift from the code."""
from __future__ import annotations

from flask import Blueprint

from app.extensions import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# Token auth, never cookies: CSRF does not apply, and a browser session cannot call the API.
csrf.exempt(bp)

from app.api import auth, billing, laboratory, reception, reports, routes  # noqa: E402,F401  (routes attach to bp)
