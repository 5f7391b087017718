"""API: a bill with its payments, and a Razorpay UPI payment link for what it still owes.

Bill numbers contain '/' (BR/B26/000123, the GST series of india.md §1.2), so these routes
use Flask's path converter; the OpenAPI document still shows /bills/{number}. A client may
send the slashes as they are or as %2F. Tenant-scoped by the token's organization."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from flask import request

from app.api import bp
from app.api.auth import require_api_role
from app.api.problems import ApiError
from app.api.registry import ENDPOINTS, Endpoint
from app.extensions import db
from app.models import Bill
from app.services import ServiceError, billing, gateway

READ = ("admin", "reception", "billing")
COLLECT = ("admin", "reception", "billing")


class PaymentOut(BaseModel):
    id: int
    mode: str
    amount_paise: int
    status: str
    reference: str | None
    rrn: str | None = Field(description="UPI RRN (12 digits) when known")
    gateway_payment_id: str | None
    gateway_order_id: str | None
    gateway_method: str | None
    refunded_paise: int
    received_at: datetime
    received_by_id: int | None = Field(description="The staff user who took it; null for a gateway webhook")
    counter: str


class BillDetail(BaseModel):
    number: str
    document_type: str
    status: str
    total_paise: int
    paid_paise: int
    due_paise: int
    payments: list[PaymentOut]


class PaymentLinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(default="payment_link", description="payment_link | qr_code (single-use UPI QR)")
    accept_partial: bool = Field(default=False, description="Let the payer pay in parts (a standard link)")


class PaymentLinkOut(BaseModel):
    id: str
    short_url: str
    amount_paise: int


def _bill_route(endpoint: Endpoint) -> Callable[[Callable], Callable]:
    """api_route with <path:number>: documented the same way, role checked the same way."""
    rule = endpoint.path.replace("{number}", "<path:number>")

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            require_api_role(*endpoint.roles)
            return view(*args, **kwargs)

        ENDPOINTS.append(endpoint)
        bp.add_url_rule(rule, view.__name__, guarded, methods=[endpoint.method])
        return guarded

    return decorator


def _bill(number: str) -> Bill:
    bill = billing.bill_by_number(number.strip().upper())
    if bill is None:
        raise ApiError(404, "Not found", f"No bill {number} in this organization.", type_="not-found")
    return bill


@_bill_route(Endpoint("GET", "/bills/{number}", "A bill with its payments", READ, response_model=BillDetail,
                      tags=("billing",)))
def get_bill(number: str):  # type: ignore[no-untyped-def]
    bill = _bill(number)
    payments = [PaymentOut(id=p.id, mode=p.mode, amount_paise=p.amount_paise, status=p.status, reference=p.reference,
                           rrn=p.rrn, gateway_payment_id=p.gateway_payment_id, gateway_order_id=p.gateway_order_id,
                           gateway_method=p.gateway_method, refunded_paise=p.refunded_paise, received_at=p.received_at,
                           received_by_id=p.received_by_id, counter=p.counter) for p in bill.payments]
    return BillDetail(number=bill.number, document_type=bill.doc_type, status=bill.status,
                      total_paise=bill.total_paise, paid_paise=bill.paid_paise, due_paise=bill.due_paise,
                      payments=payments).model_dump(mode="json")


@_bill_route(Endpoint("POST", "/bills/{number}/payment-link", "A Razorpay UPI payment link for the amount due",
                      COLLECT, request_model=PaymentLinkIn, response_model=PaymentLinkOut, status=201,
                      tags=("billing",)))
def create_payment_link(number: str):  # type: ignore[no-untyped-def]
    raw = request.get_json(silent=True) if request.content_length else {}
    if not isinstance(raw, dict):
        raise ApiError(400, "Invalid JSON", "Send a JSON object (or no body).", type_="bad-json")
    body = PaymentLinkIn.model_validate(raw)
    bill = _bill(number)
    if not gateway.configured():
        raise ApiError(503, "Gateway not configured", "The Razorpay gateway is not configured for this lab.",
                       type_="gateway-not-configured")
    try:
        link = gateway.create_link(bill, kind=body.kind, actor_id=None, accept_partial=body.accept_partial)
        db.session.commit()
    except gateway.GatewayFailed as err:
        db.session.rollback()
        raise ApiError(502, "Gateway error", err.message, type_="gateway-error") from None
    except ServiceError as err:
        db.session.rollback()
        if err.field:
            raise ApiError(422, "Invalid request", err.message, errors={err.field: [err.message]},
                           type_="validation") from None
        raise ApiError(409, "Cannot take a payment", err.message, type_="conflict") from None
    return PaymentLinkOut(id=link.gateway_id, short_url=link.url, amount_paise=link.amount_paise).model_dump(), 201
