"""Billing portal: Razorpay on a bill (payment link / UPI QR panel) and the gateway events page.

The panel (templates/billing/gateway/_bill_panel.html) takes only `bill`: what it lists comes
from `gateway_panel(bill)`, given to every billing template by the context processor below,
so the bill page can include it as it is. Its form posts here and gets the panel back."""
from __future__ import annotations

from typing import Any

import segno
from flask import abort, render_template, request, url_for
from flask_login import current_user

from app.extensions import db
from app.models import Bill
from app.portals import see_other, wants_fragment
from app.portals.billing import bp
from app.services import ServiceError, billing, gateway


def _panel_state(bill: Bill) -> dict[str, Any]:
    links = gateway.links_for(bill)
    qr = {link.id: segno.make(link.url, error="m").svg_data_uri(scale=4)
          for link in links if link.kind == "payment_link" and link.url and link.status in ("created", "partially_paid")}
    return {"configured": gateway.configured(), "links": links, "qr": qr}


@bp.context_processor
def _gateway_helpers() -> dict[str, Any]:
    return {"gateway_panel": _panel_state}


def _bill_or_404(number: str) -> Bill:
    return billing.bill_by_number(number) or abort(404)


@bp.get("/gateway/bills/<path:number>", endpoint="gateway_bill")
def gateway_bill(number: str):  # type: ignore[no-untyped-def]
    bill = _bill_or_404(number)
    template = "billing/gateway/_bill_panel.html" if wants_fragment() else "billing/gateway/bill.html"
    return render_template(template, bill=bill)


@bp.post("/gateway/bills/<path:number>/links", endpoint="gateway_link_create")
def gateway_link_create(number: str):  # type: ignore[no-untyped-def]
    bill = _bill_or_404(number)
    try:
        gateway.create_link(bill, kind=request.form.get("kind", "payment_link"), actor_id=current_user.id,
                            accept_partial=request.form.get("accept_partial") == "y")
        db.session.commit()
    except ServiceError as err:
        db.session.rollback()
        bill = _bill_or_404(number)
        template = "billing/gateway/_bill_panel.html" if wants_fragment() else "billing/gateway/bill.html"
        return render_template(template, bill=bill, gateway_error=err.message), 422
    if wants_fragment():
        return render_template("billing/gateway/_bill_panel.html", bill=_bill_or_404(number))
    return see_other(url_for(".gateway_bill", number=bill.number))


@bp.get("/gateway/events", endpoint="gateway_events")
def gateway_events():  # type: ignore[no-untyped-def]
    before = request.args.get("before", "")
    flt = gateway.EventFilter(event=request.args.get("event", "")[:48], valid=request.args.get("valid", ""),
                              q=request.args.get("q", "")[:64], before_id=int(before) if before.isdigit() else None)
    events, older = gateway.list_events(current_user.org_id, flt)
    template = "billing/gateway/_event_rows.html" if wants_fragment() else "billing/gateway/events.html"
    response = render_template(template, events=events, older=older, filters=flt,
                               names=gateway.event_names(current_user.org_id), body_of=gateway.redacted_body)
    return response, 200, {"Vary": "HX-Request"}
