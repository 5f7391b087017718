"""Role-aware navigation, built from the same role table that guards the portals."""
from __future__ import annotations

from typing import Any

from flask_login import current_user

from app.models import Role

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


def nav_context() -> dict[str, Any]:
    user = current_user._get_current_object()
    if not user.is_authenticated:
        return {"nav": []}
    return {"nav": MENUS.get(user.role, [])}  # a StrEnum key matches its plain string
