"""Role-aware navigation, built from the same role table that guards the portals."""
from __future__ import annotations

import secrets

from flask import current_app, render_template
from flask.globals import request_ctx
from markupsafe import Markup, escape

from app.models import Role
from app.security import acting_user
from app.signing import csrf_token

MENUS: dict[Role, list[tuple[str, str]]] = {
    Role.ADMIN: [
        ("admin.dashboard", "Dashboard"), ("admin.users", "Users"), ("admin.branches", "Branches"),
        ("admin.catalogue", "Catalogue"), ("admin.referrers", "Referrers"), ("admin.price_lists", "Price lists"),
        ("admin.clients", "Clients"), ("admin.canned_comments", "Canned comments"),
        ("admin.instruments", "Instruments"), ("admin.report_settings", "Report settings"),
        ("admin.api_tokens", "API tokens"), ("admin.notifications", "Messages"),
        ("admin.audit", "Audit trail"),
    ],
    Role.RECEPTION: [("reception.dashboard", "Desk"), ("reception.collections", "Collections")],
    Role.TECHNICIAN: [
        ("technician.dashboard", "Lab floor"), ("technician.receipt", "Receipt"), ("technician.worklist", "Worklist"),
        ("technician.unmatched", "Unmatched"), ("technician.instruments", "Instruments"),
    ],
    Role.PATHOLOGIST: [("pathologist.queue", "Queue"), ("pathologist.criticals", "Criticals")],
    Role.BILLING: [
        ("billing.dashboard", "Billing"), ("billing.bills", "Bills"), ("billing.exceptions", "Exceptions"),
        ("billing.reconciliation", "Reconciliation"), ("billing.refunds", "Refunds"), ("billing.einvoices", "E-invoices"),
        ("billing.accounts", "Clients"), ("billing.advances", "Advances"), ("billing.day_closing", "Day closing"),
        ("billing.collections_report", "Collections"), ("billing.exports", "Exports"),
        ("billing.gateway_events", "Gateway"),
    ],
}

HOME_ENDPOINT = {role: items[0][0] for role, items in MENUS.items()}


_CHROME: dict[object, tuple[str, ...]] = {}
_MAX_CHROMES = 2048  # users × pages; cleared whole when full
# Rendered in place of the session's CSRF token, then split on: the cached parts are the
# same for every session of a user (and for every anonymous visitor), the token is not.
# Random per process, so no name or label a user can type can contain it.
_TOKEN_SLOT = "csrf-slot-" + secrets.token_hex(16)


def page_chrome() -> Markup:
    """The fixed part of every page's layout (base.html): the rest of <head> with the
    stylesheet and scripts, the <body> tag carrying the CSRF token for htmx, and the page
    header with the organization, the menu, who is signed in and the log-out form
    (_partials/chrome.html). It follows from the key below and the session's CSRF token,
    so it is rendered once per user and page, cut where the token goes, and reused with
    each session's token: it was a third of rendering a dashboard. A change of name, role
    or branch is a new key (the StaffUser snapshot, a frozen dataclass, holds them all);
    the laboratory floor's extra script follows from the endpoint. Debug mode renders
    every time, so edited templates show."""
    context = request_ctx._get_current_object()  # one proxy lookup, not three
    user = acting_user()
    endpoint = context.request.endpoint or ""
    key = (user if user.is_authenticated else None, endpoint, context.request.environ.get("SCRIPT_NAME", ""))
    parts = _CHROME.get(key)
    if parts is None:
        html = render_template("_partials/chrome.html", token=_TOKEN_SLOT, lab=endpoint.startswith("technician."),
                               nav_items=MENUS.get(user.role, []) if user.is_authenticated else [])
        parts = tuple(html.split(_TOKEN_SLOT))
        if not current_app.debug:
            if len(_CHROME) >= _MAX_CHROMES:
                _CHROME.clear()
            _CHROME[key] = parts
    return Markup(str(escape(csrf_token())).join(parts))  # the parts are the template's output, already escaped
