"""Public pages, reached without logging in: the report verification page behind the QR
code printed on every report. They show nothing more personal than a patient's initials,
and they are rate-limited per client (tokens are unguessable; the limit keeps it so)."""
from flask import Blueprint

bp = Blueprint("public", __name__)

from app.portals.public import verify  # noqa: E402,F401
