"""Messaging endpoints reached without logging in:

- /webhooks/whatsapp: the WhatsApp Cloud API webhook (../shared/reference/india.md §4.2).
  GET is the subscription handshake (hub.mode=subscribe, hub.verify_token, echo
  hub.challenge). POST carries statuses and inbound messages, signed
  `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(raw body, App Secret)>`: checked in constant
  time over the raw bytes before anything is read or stored; a bad signature is a 403 that
  changes nothing. A good one is stored first (durable before acknowledged), deduplicated by
  its hash, then applied. CSRF-exempt (Meta cannot send our token), rate-limited per client.
- /r/<token>: the expiring signed link to a report PDF sent by SMS (itsdangerous, LIS_PUBLIC_URL).
"""
from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, jsonify, render_template_string, request

from app.extensions import csrf, limiter
from app.services import notifications

bp = Blueprint("messaging", __name__)


def _webhook_rate() -> str:
    return current_app.config["LIS_WEBHOOK_RATE_LIMIT"]


def _refuse(status: int, detail: str) -> Response:
    response = jsonify({"type": "about:blank", "title": "Refused", "status": status, "detail": detail})
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


@bp.get("/webhooks/whatsapp")
@limiter.limit(_webhook_rate)
def whatsapp_verify():  # type: ignore[no-untyped-def]
    expected = current_app.config["LIS_WHATSAPP_VERIFY_TOKEN"]
    given = request.args.get("hub.verify_token", "")
    if (request.args.get("hub.mode") != "subscribe" or not expected
            or not hmac.compare_digest(expected.encode(), given.encode())):
        return _refuse(403, "The verify token does not match.")
    return Response(request.args.get("hub.challenge", ""), mimetype="text/plain")


@bp.post("/webhooks/whatsapp")
@csrf.exempt
@limiter.limit(_webhook_rate)
def whatsapp_webhook():  # type: ignore[no-untyped-def]
    raw = request.get_data(cache=False)
    if not current_app.config["LIS_WHATSAPP_APP_SECRET"]:
        return _refuse(403, "Webhook signatures cannot be checked: LIS_WHATSAPP_APP_SECRET is not set.")
    if not notifications.verify_whatsapp(raw, request.headers.get("X-Hub-Signature-256")):
        return _refuse(403, "The X-Hub-Signature-256 signature does not match this body.")
    outcome, delivery_id = notifications.record_whatsapp_webhook(raw)
    return jsonify({"outcome": outcome, "delivery": delivery_id})


_EXPIRED = """<!doctype html><title>Link expired</title><h1>This link has expired</h1>
<p>Please ask the laboratory for your report, or log in to the patient portal.</p>"""


@bp.get("/r/<token>")
def patient_report(token: str):  # type: ignore[no-untyped-def]
    state, report = notifications.report_for_link(token)
    if state == "expired":
        return render_template_string(_EXPIRED), 410
    if report is None:
        return render_template_string("<!doctype html><title>Not found</title><h1>Not found</h1>"), 404
    filename = f"Report-{report.number.replace('/', '-')}-v{report.version}.pdf"
    response = Response(report.pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


from app.portals.messaging import razorpay  # noqa: E402,F401  (the /webhooks/razorpay route)
