"""Role-aware navigation, built from the same role table that guards the portals."""
from __future__ import annotations

from flask import current_app, render_template, request
from flask_login import current_user
from markupsafe import Markup

from app.models import Role
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


_RENDERED: dict[tuple[str, str | None, str], Markup] = {}
_HEADERS: dict[tuple[object, ...], Markup] = {}
_MAX_HEADERS = 2048


def main_nav() -> Markup:
    """The menu of the signed-in user's role, with the current page marked (a Jinja global,
    called by base.html). It depends only on the role, the page and the script root, so
    each combination is rendered once per process (_partials/nav.html): a menu was a
    quarter of the layout's rendering time. Debug mode renders it every time."""
    user = current_user._get_current_object()
    if not user.is_authenticated:
        return Markup("")
    key = (user.role, request.endpoint, request.script_root)
    html = _RENDERED.get(key)
    if html is None:
        html = Markup(render_template("_partials/nav.html", items=MENUS.get(user.role, []), current=request.endpoint))
        if not current_app.debug:
            _RENDERED[key] = html
    return html


def page_header() -> Markup:
    """The page header: the organization, the menu, who is signed in and the log-out form
    (a Jinja global, called by base.html; _partials/header.html). Everything in it comes
    from the key below, so it is rendered once per user, session and page and reused: it
    was a third of rendering a dashboard. A change of name, role or branch is a new key."""
    user = current_user._get_current_object()
    if user.is_authenticated:
        branch = user.branch.code if user.branch else None
        key: tuple[object, ...] = (user.id, user.session_version, user.organization.display_name, user.full_name,
                                   user.role, branch, csrf_token(), request.endpoint, request.script_root)
    else:
        key = (None, request.script_root)
    html = _HEADERS.get(key)
    if html is None:
        html = Markup(render_template("_partials/header.html"))
        if not current_app.debug:
            if len(_HEADERS) >= _MAX_HEADERS:
                _HEADERS.clear()
            _HEADERS[key] = html
    return html
