"""/webhooks/razorpay: Razorpay's payment, link, QR and refund events (india.md §3.3).

Reached without logging in and CSRF-exempt (Razorpay cannot send our token); rate-limited per
client like /webhooks/whatsapp. The body is read as TEXT, exactly as signed: the SDK's
verify_webhook_signature needs a str, and parsing first would change what was signed.
services.gateway stores every delivery (a refused one too) and commits before answering:
400 for a missing or wrong signature, 200 once stored and processed (or recognised as a
repeat), 500 when processing failed, so Razorpay delivers it again."""
from __future__ import annotations

from flask import jsonify, request

from app.extensions import csrf, limiter
from app.portals.messaging import _refuse, _webhook_rate, bp
from app.security import client_ip
from app.services import gateway


@bp.post("/webhooks/razorpay")
@csrf.exempt
@limiter.limit(_webhook_rate)
def razorpay_webhook():  # type: ignore[no-untyped-def]
    body = request.get_data(cache=False, as_text=True)
    result = gateway.receive_webhook(body, signature=request.headers.get("X-Razorpay-Signature"),
                                     event_id=request.headers.get("X-Razorpay-Event-Id"), remote_addr=client_ip())
    if result.status == 400:
        return _refuse(400, "The X-Razorpay-Signature does not match this body with the webhook secret.")
    if result.status >= 500:
        return _refuse(result.status, "The event is stored but could not be processed; deliver it again.")
    return jsonify({"outcome": result.outcome, "event": result.event_row_id})
