"""Role-aware navigation, built from the same role table that guards the portals."""
from __future__ import annotations

from flask.globals import request_ctx
from markupsafe import Markup

from app.models import Role
from app.security import acting_user
from app.signing import csrf_token
from app.web import render_once

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


_CHROME: dict[object, Markup] = {}


def page_chrome() -> Markup:
    """The fixed part of every page's layout (base.html): the rest of <head> with the
    stylesheet and scripts, the <body> tag carrying the CSRF token for htmx, and the page
    header with the organization, the menu, who is signed in and the log-out form
    (_partials/chrome.html). Everything in it follows from the key below, so it is
    rendered once per user, session and page and reused: it was a third of rendering a
    dashboard. A change of name, role or branch is a new key (the StaffUser snapshot, a
    frozen dataclass, holds them all); the laboratory floor's extra script follows from
    the endpoint."""
    context = request_ctx._get_current_object()  # one proxy lookup, not three
    user = acting_user()
    endpoint = context.request.endpoint or ""
    key = (user if user.is_authenticated else None, csrf_token(), endpoint,
           context.request.environ.get("SCRIPT_NAME", ""))
    return render_once(_CHROME, key, "_partials/chrome.html", max_entries=2048,
                       nav_items=MENUS.get(user.role, []) if user.is_authenticated else [],
                       lab=endpoint.startswith("technician."))
