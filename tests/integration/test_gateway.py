"""Razorpay: links and QR codes through the real SDK against a local server speaking
Razorpay's API, webhooks with real HMACs (tampered, unsigned, duplicated, out of order,
partial, unknown bill, already paid, overpaid, refunds), the exceptions-queue resolutions,
the API and the portal pages. Real PostgreSQL and Redis; nothing of our own is mocked."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, update

from app import audit, security
from app.integrations import razorpay_gateway as rz
from app.models import (AuditEvent, Bill, BillingException, GatewayEvent, GatewayPayment, Organization, Payment,
                        PaymentLink, Refund)
from app.services import api_tokens, billing, gateway
from tests import providers_razorpay as rp
from tests.factories import PASSWORD


@pytest.fixture
def rzp(app, monkeypatch):  # type: ignore[no-untyped-def]
    server = rp.RazorpayServer()
    for key, value in {"RAZORPAY_API_BASE": server.url, "RAZORPAY_KEY_ID": rp.KEY_ID,
                       "RAZORPAY_KEY_SECRET": rp.KEY_SECRET, "RAZORPAY_WEBHOOK_SECRET": rp.WEBHOOK_SECRET,
                       "LIS_PROVIDER_TIMEOUT": 5}.items():
        monkeypatch.setitem(app.config, key, value)
    yield server
    server.close()


@pytest.fixture
def lab(factory, session):  # type: ignore[no-untyped-def]
    # Webhooks without notes fall back to the only active lab. Organizations that other tests
    # committed (real-commit concurrency tests) would make that depend on test order, so they
    # are set inactive inside this test's transaction (rolled back with it).
    session.execute(update(Organization).values(active=False))
    org = factory.org()
    factory.catalogue(org)
    clerk = factory.user(org, "billing")
    order = factory.order(org, ["CBC", "GLUF"], receive=False)
    bill = session.execute(select(Bill).where(Bill.order_id == order.id)).scalars().one()
    return {"org": org, "clerk": clerk, "bill": bill, "order": order}


def _new_bill(factory, session, org) -> Bill:  # type: ignore[no-untyped-def]
    order = factory.order(org, ["TSH"], receive=False)
    security.use_tenant(session, org.id)
    return session.execute(select(Bill).where(Bill.order_id == order.id)).scalars().one()


def _deliver(client, body: str, *, event_id: str | None = None, secret: str = rp.WEBHOOK_SECRET):  # type: ignore[no-untyped-def]
    return client.post("/webhooks/razorpay", data=body.encode(), headers=rp.headers(body, event_id=event_id,
                                                                                      secret=secret))


def _fresh(session, bill: Bill) -> Bill:  # type: ignore[no-untyped-def]
    session.expire_all()
    security.use_tenant(session, bill.org_id)
    return session.execute(select(Bill).where(Bill.id == bill.id)).scalar_one()


def _payments(session, org_id: int) -> list[Payment]:  # type: ignore[no-untyped-def]
    session.expire_all()
    security.use_tenant(session, org_id)
    return list(session.execute(select(Payment).where(Payment.mode == "razorpay").order_by(Payment.id)).scalars())


def _exceptions(session, org_id: int) -> list[BillingException]:  # type: ignore[no-untyped-def]
    session.expire_all()
    security.use_tenant(session, org_id)
    return list(session.execute(select(BillingException).order_by(BillingException.id)).scalars())


def _notes(org, bill) -> dict:  # type: ignore[no-untyped-def]
    return {"org": org.code, "bill": bill.number}


def _link_paid(org, bill, *, amount: int | None = None, pid: str | None = None, name: str = "payment_link.paid",
               link_id: str | None = None) -> tuple[str, str]:
    amount = bill.due_paise if amount is None else amount
    pid = pid or rp.new_id("pay")
    order_id = rp.new_id("order")
    body = rp.event(name, payment_entity=rp.payment(pid, amount=amount, order_id=order_id, rrn="412345678901"),
                    link=rp.link_entity(link_id or rp.new_id("plink"), amount=amount, reference_id=bill.number,
                                        notes=_notes(org, bill), order_id=order_id))
    return body, pid


# ---------------------------------------------------------------- client and signatures

def test_signature_reference_vector_and_tampering():
    body = '{"entity":"event","event":"payment.captured"}'
    vector = "14026b4f55f7195cf5fabf2ce57f1344fa969faf1d2cb4352740beb936dd5c18"
    assert rp.sign(body, "whsec_test") == vector
    assert rz.verify_webhook(body, vector, "whsec_test") is True
    assert rz.verify_webhook(body + " ", vector, "whsec_test") is False
    assert rz.verify_webhook(body, vector, "whsec_other") is False
    assert rz.verify_webhook(body, None, "whsec_test") is False
    assert rz.verify_webhook(body, vector, "") is False
    assert rz.verify_webhook(body, "ü" * 64, "whsec_test") is False


def test_client_creates_link_qr_and_refund_with_basic_auth(rzp, app):  # type: ignore[no-untyped-def]
    client = rz.RazorpayGateway.from_config(app.config)
    link = client.create_payment_link(amount_paise=45000, reference_id="MAIN/B26/000001", description="Bill",
                                      notes={"org": "lab", "bill": "MAIN/B26/000001"})
    assert link["id"].startswith("plink_") and link["short_url"].startswith("https://rzp.io/")
    sent = rzp.bodies("/v1/payment_links")[0]
    assert sent["amount"] == 45000 and sent["upi_link"] is True and sent["currency"] == "INR"
    assert sent["notes"] == {"org": "lab", "bill": "MAIN/B26/000001"} and "accept_partial" not in sent
    qr = client.create_upi_qr(amount_paise=45000, name="Lab", description="Bill", notes={}, close_by=2_000_000_000)
    assert qr["id"].startswith("qr_")
    assert rzp.bodies("/qr_codes")[0]["usage"] == "single_use"
    rzp.captured["pay_Refundable0001"] = 45000
    refund = client.refund("pay_Refundable0001", amount_paise=1000)
    assert refund["id"].startswith("rfnd_") and refund["amount"] == 1000
    with pytest.raises(rz.RazorpayError) as refused:
        client.refund("pay_Refundable0001", amount_paise=45000)
    assert not refused.value.retryable and "greater than amount captured" in refused.value.message
    wrong = rz.RazorpayGateway(rp.KEY_ID, "not-the-secret", rzp.url, 5)
    with pytest.raises(rz.RazorpayError):
        wrong.create_payment_link(amount_paise=100, reference_id="X", description="", notes={})
    rzp.script.append((503, {"error": {"code": "SERVER_ERROR", "description": "try later"}}))
    with pytest.raises(rz.RazorpayError) as outage:
        client.create_payment_link(amount_paise=100, reference_id="Y", description="", notes={})
    assert outage.value.retryable


def test_unreachable_gateway_is_a_retryable_error(app):  # type: ignore[no-untyped-def]
    client = rz.RazorpayGateway(rp.KEY_ID, rp.KEY_SECRET, "http://127.0.0.1:9", 2)
    with pytest.raises(rz.RazorpayError) as err:
        client.create_payment_link(amount_paise=100, reference_id="Z", description="", notes={})
    assert err.value.retryable


# ---------------------------------------------------------------- API

def _token(session, org, role="billing"):  # type: ignore[no-untyped-def]
    security.use_tenant(session, org.id)
    _, raw = api_tokens.create_token(org.id, role, "test")
    session.commit()
    return {"Authorization": f"Bearer {raw}"}


def test_api_payment_link_for_the_due_amount(client, session, lab, rzp):  # type: ignore[no-untyped-def]
    bill, org = lab["bill"], lab["org"]
    auth = _token(session, org)
    answer = client.post(f"/api/v1/bills/{bill.number}/payment-link", headers=auth)
    assert answer.status_code == 201, answer.json
    assert answer.json["id"].startswith("plink_") and answer.json["amount_paise"] == bill.due_paise
    assert answer.json["short_url"].startswith("https://rzp.io/")
    sent = rzp.bodies("/v1/payment_links")[0]
    assert sent["reference_id"] == bill.number and sent["upi_link"] is True
    assert sent["notes"] == {"org": org.code, "bill": bill.number} and sent["amount"] == bill.due_paise
    # A retry gets the same link back, not a second one.
    again = client.post(f"/api/v1/bills/{bill.number.replace('/', '%2F')}/payment-link", headers=auth)
    assert again.status_code == 201 and again.json["id"] == answer.json["id"]
    assert len(rzp.bodies("/v1/payment_links")) == 1
    security.use_tenant(session, org.id)
    assert session.execute(select(func.count(PaymentLink.id))).scalar_one() == 1
    assert session.execute(select(AuditEvent).where(AuditEvent.action == "payment_link.created",
                                                    AuditEvent.org_id == lab["org"].id)).scalars().first()


def test_api_refusals(client, session, lab, rzp, factory, app, monkeypatch):  # type: ignore[no-untyped-def]
    bill, org = lab["bill"], lab["org"]
    auth = _token(session, org)
    assert client.post("/api/v1/bills/MAIN/B26/999999/payment-link", headers=auth).status_code == 404
    bad = client.post(f"/api/v1/bills/{bill.number}/payment-link", headers=auth, json={"kind": "cheque"})
    assert bad.status_code == 422 and "kind" in bad.json["errors"]
    extra = client.post(f"/api/v1/bills/{bill.number}/payment-link", headers=auth, json={"amount": 5})
    assert extra.status_code == 422
    rzp.script.append((500, {"error": {"code": "SERVER_ERROR", "description": "We are facing some trouble"}}))
    outage = client.post(f"/api/v1/bills/{bill.number}/payment-link", headers=auth)
    assert outage.status_code == 502 and outage.mimetype == "application/problem+json"
    technician = _token(session, org, "technician")
    assert client.post(f"/api/v1/bills/{bill.number}/payment-link", headers=technician).status_code == 403
    other = factory.org()
    assert client.get(f"/api/v1/bills/{bill.number}", headers=_token(session, other)).status_code == 404
    security.use_tenant(session, org.id)
    assert session.execute(select(func.count(PaymentLink.id))).scalar_one() == 0
    monkeypatch.setitem(app.config, "RAZORPAY_KEY_ID", "")
    assert client.post(f"/api/v1/bills/{bill.number}/payment-link", headers=auth).status_code == 503


def test_api_bill_with_gateway_payment(client, session, lab, rzp):  # type: ignore[no-untyped-def]
    bill, org = lab["bill"], lab["org"]
    body, pid = _link_paid(org, bill)
    assert _deliver(client, body).status_code == 200
    answer = client.get(f"/api/v1/bills/{bill.number}", headers=_token(session, org, "reception"))
    assert answer.status_code == 200
    data = answer.json
    assert data["number"] == bill.number and data["status"] == "paid" and data["due_paise"] == 0
    assert data["paid_paise"] == data["total_paise"] == bill.total_paise
    [payment] = data["payments"]
    assert payment["mode"] == "razorpay" and payment["gateway_payment_id"] == pid
    assert payment["rrn"] == "412345678901" and payment["gateway_method"] == "upi"
    assert payment["received_by_id"] is None and payment["gateway_order_id"].startswith("order_")


# ---------------------------------------------------------------- webhooks

def test_link_paid_applies_once_and_repeats_are_counted(client, session, lab, rzp):  # type: ignore[no-untyped-def]
    bill, org = lab["bill"], lab["org"]
    body, pid = _link_paid(org, bill)
    first = _deliver(client, body, event_id="evt_Same0000000001")
    assert first.status_code == 200 and "applied" in first.json["outcome"]
    repeat = _deliver(client, body, event_id="evt_Same0000000001")
    assert repeat.status_code == 200 and repeat.json["outcome"] == "duplicate"
    # The same payment announced by another event (payment.captured) is not applied again.
    captured = rp.event("payment.captured", payment_entity=rp.payment(pid, amount=bill.total_paise,
                                                                       notes=_notes(org, bill)))
    assert _deliver(client, captured).status_code == 200
    [payment] = _payments(session, org.id)
    assert payment.amount_paise == bill.total_paise and payment.gateway_payment_id == pid
    assert payment.rrn == "412345678901" and payment.counter == "razorpay"
    assert _fresh(session, bill).status == "paid"
    security.use_tenant(session, None)
    event = session.execute(select(GatewayEvent).where(GatewayEvent.event_id == "evt_Same0000000001")).scalar_one()
    assert event.deliveries == 2 and event.signature_valid and event.org_id == org.id and event.processed_at
    security.use_tenant(session, org.id)
    gp = session.execute(select(GatewayPayment)).scalar_one()
    assert gp.status == "captured" and gp.applied_payment_id == payment.id and gp.bill_number == bill.number
    audited = session.execute(select(AuditEvent).where(AuditEvent.action == "payment.received",
                                                       AuditEvent.org_id == org.id,
                                                       AuditEvent.entity_id == bill.number)).scalar_one()
    assert audited.actor_label == "webhook:razorpay" and audited.after["mode"] == "razorpay"


@pytest.mark.parametrize("how", ["tampered", "unsigned", "wrong_secret", "no_secret_configured"])
def test_bad_signatures_are_refused_and_recorded(client, session, lab, rzp, how, app, monkeypatch):  # type: ignore[no-untyped-def]
    bill, org = lab["bill"], lab["org"]
    body, _ = _link_paid(org, bill)
    headers = rp.headers(body, event_id="evt_Refused00000001")
    if how == "tampered":
        body = body.replace(str(bill.total_paise), str(bill.total_paise + 100), 1)
    elif how == "unsigned":
        del headers["X-Razorpay-Signature"]
    elif how == "wrong_secret":
        headers = rp.headers(body, event_id="evt_Refused00000001", secret="whsec_guess")
    else:
        monkeypatch.setitem(app.config, "RAZORPAY_WEBHOOK_SECRET", "")
    answer = client.post("/webhooks/razorpay", data=body.encode(), headers=headers)
    assert answer.status_code == 400 and answer.mimetype == "application/problem+json"
    security.use_tenant(session, None)
    session.expire_all()
    [row] = session.execute(select(GatewayEvent).where(GatewayEvent.event_id == "evt_Refused00000001")).scalars()
    assert row.signature_valid is False and row.outcome.startswith("rejected") and row.body == body
    assert _payments(session, org.id) == [] and _fresh(session, bill).paid_paise == 0
    # The genuine delivery of the same event id is still accepted afterwards.
    monkeypatch.setitem(app.config, "RAZORPAY_WEBHOOK_SECRET", rp.WEBHOOK_SECRET)
    genuine, _ = _link_paid(org, bill)
    assert _deliver(client, genuine, event_id="evt_Refused00000001").status_code == 200
    assert _fresh(session, bill).status == "paid"


def test_failed_then_captured_and_captured_then_failed(client, session, lab, rzp, factory):  # type: ignore[no-untyped-def]
    bill, org = lab["bill"], lab["org"]
    pid = rp.new_id("pay")
    failed = rp.event("payment.failed", payment_entity=rp.payment(pid, amount=bill.total_paise, status="failed",
                                                                   notes=_notes(org, bill)))
    assert "failed" in _deliver(client, failed).json["outcome"]
    assert _fresh(session, bill).paid_paise == 0
    captured = rp.event("payment.captured", payment_entity=rp.payment(pid, amount=bill.total_paise,
                                                                       notes=_notes(org, bill)))
    assert "applied" in _deliver(client, captured).json["outcome"]
    assert _fresh(session, bill).status == "paid"
    # Another bill: captured first, then a late payment.failed for the same payment id.
    other = _new_bill(factory, session, org)
    pid2 = rp.new_id("pay")
    assert _deliver(client, rp.event("payment.captured", payment_entity=rp.payment(
        pid2, amount=other.total_paise, notes=_notes(org, other)))).status_code == 200
    late = _deliver(client, rp.event("payment.failed", payment_entity=rp.payment(
        pid2, amount=other.total_paise, status="failed", notes=_notes(org, other))))
    assert late.status_code == 200 and "already applied" in late.json["outcome"]
    security.use_tenant(session, org.id)
    assert session.execute(select(GatewayPayment.status).where(GatewayPayment.gateway_payment_id == pid2)).scalar_one() \
        == "captured"
    assert len(_payments(session, org.id)) == 2 and _fresh(session, other).status == "paid"


def test_order_paid_before_payment_captured_and_capture_without_bill_waits(client, session, lab, rzp):  # type: ignore[no-untyped-def]
    bill, org = lab["bill"], lab["org"]
    pid, order_id = rp.new_id("pay"), rp.new_id("order")
    # payment.captured alone, with no notes: it names no bill yet, so nothing is applied or queued.
    bare = rp.event("payment.captured", payment_entity=rp.payment(pid, amount=bill.total_paise, order_id=order_id))
    assert "no bill named yet" in _deliver(client, bare).json["outcome"]
    assert _exceptions(session, org.id) == [] and _payments(session, org.id) == []
    paid = rp.event("order.paid", payment_entity=rp.payment(pid, amount=bill.total_paise, order_id=order_id),
                    order=rp.order_entity(order_id, amount=bill.total_paise, notes=_notes(org, bill)))
    assert "applied" in _deliver(client, paid).json["outcome"]
    [payment] = _payments(session, org.id)
    assert payment.gateway_order_id == order_id and _fresh(session, bill).status == "paid"


def test_partial_payments_on_one_link(client, session, lab, rzp):  # type: ignore[no-untyped-def]
    bill, org = lab["bill"], lab["org"]
    link_id = rp.new_id("plink")
    first_part = bill.total_paise // 3
    body, _ = _link_paid(org, bill, amount=first_part, name="payment_link.partially_paid", link_id=link_id)
    assert _deliver(client, body).status_code == 200
    assert _fresh(session, bill).status == "partly_paid" and _fresh(session, bill).paid_paise == first_part
    rest = bill.total_paise - first_part
    body2, _ = _link_paid(org, bill, amount=rest, name="payment_link.paid", link_id=link_id)
    assert _deliver(client, body2).status_code == 200
    fresh = _fresh(session, bill)
    assert fresh.status == "paid" and fresh.paid_paise == bill.total_paise
    assert sorted(p.amount_paise for p in _payments(session, org.id)) == sorted([first_part, rest])


def test_unknown_bill_is_queued_then_applied_by_a_clerk(client, session, lab, rzp):  # type: ignore[no-untyped-def]
    bill, org = lab["bill"], lab["org"]
    pid = rp.new_id("pay")
    body = rp.event("payment.captured", payment_entity=rp.payment(
        pid, amount=5000, notes={"org": org.code, "bill": "MAIN/B26/999999"}))
    answer = _deliver(client, body, event_id="evt_Unknown0000001")
    assert answer.status_code == 200 and "exceptions queue" in answer.json["outcome"]
    assert _deliver(client, body, event_id="evt_Unknown0000001").json["outcome"] == "duplicate"
    assert "in the exceptions queue" in _deliver(client, body).json["outcome"]  # same payment, another event
    [exc] = _exceptions(session, org.id)
    assert exc.kind == "unknown_bill" and exc.amount_paise == 5000 and exc.reference == pid
    assert _payments(session, org.id) == []
    with pytest.raises(gateway.ServiceError) as no_note:
        gateway.apply_exception(exc, bill.number, lab["clerk"].id, " ")
    assert no_note.value.field == "note"
    with pytest.raises(gateway.ServiceError) as no_bill:
        gateway.apply_exception(exc, "MAIN/B26/123456", lab["clerk"].id, "phoned the patient")
    assert no_bill.value.field == "bill_number"
    with audit.acting_as(audit.AuditContext(actor_label="test", actor_user_id=lab["clerk"].id, org_id=org.id)):
        payment = gateway.apply_exception(exc, bill.number.lower(), lab["clerk"].id, "Patient sent the SMS receipt")
    session.commit()
    assert payment.amount_paise == 5000 and payment.gateway_payment_id == pid and payment.received_by_id == lab["clerk"].id
    [exc] = _exceptions(session, org.id)
    assert exc.status == "resolved" and exc.resolution == "applied" and "Patient sent" in exc.note
    assert _fresh(session, bill).paid_paise == 5000
    # A later event for the same payment changes nothing.
    assert "already applied" in _deliver(client, rp.event("payment.captured", payment_entity=rp.payment(
        pid, amount=5000, notes={"org": org.code, "bill": "MAIN/B26/999999"}))).json["outcome"]
    assert len(_payments(session, org.id)) == 1


def test_already_paid_is_queued_then_refunded_through_razorpay(client, session, lab, rzp):  # type: ignore[no-untyped-def]
    bill, org = lab["bill"], lab["org"]
    security.use_tenant(session, org.id)
    with audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id)):
        billing.record_payment(bill, mode="cash", amount_paise=bill.total_paise, reference=None, received_by_id=None)
    session.commit()
    body, pid = _link_paid(org, bill, amount=bill.total_paise)
    answer = _deliver(client, body)
    assert "nothing is due" in answer.json["outcome"]
    [exc] = _exceptions(session, org.id)
    assert exc.kind == "already_paid" and exc.amount_paise == bill.total_paise and exc.bill_id == bill.id
    assert _payments(session, org.id) == [] and _fresh(session, bill).paid_paise == bill.total_paise
    rzp.captured[pid] = bill.total_paise
    security.use_tenant(session, org.id)
    with audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id)):
        refund = gateway.refund_exception(exc, lab["clerk"].id, "Paid twice: cash at the desk and the link")
    session.commit()
    assert rzp.bodies(f"/v1/payments/{pid}/refund")[0]["amount"] == bill.total_paise
    [exc] = _exceptions(session, org.id)
    assert exc.status == "resolved" and exc.resolution == "refunded" and exc.details["gateway_refund_id"] == refund["id"]
    assert session.execute(select(GatewayPayment.status).where(GatewayPayment.gateway_payment_id == pid)).scalar_one() \
        == "refunded"
    with pytest.raises(gateway.ServiceError):  # a second click refunds nothing
        gateway.refund_exception(exc, lab["clerk"].id, "again")
    assert len(rzp.bodies("/refund")) == 1
    done = rp.event("refund.processed", refund=rp.refund_entity(refund["id"], payment_id=pid, amount=bill.total_paise),
                    payment_entity=rp.payment(pid, amount=bill.total_paise, notes=_notes(org, bill)))
    assert "exceptions queue" in _deliver(client, done).json["outcome"]


def test_overpayment_applies_the_due_and_queues_the_excess(client, session, lab, rzp):  # type: ignore[no-untyped-def]
    bill, org = lab["bill"], lab["org"]
    qr_id, pid = rp.new_id("qr"), rp.new_id("pay")
    paid = bill.total_paise + 2500
    body = rp.event("qr_code.credited", payment_entity=rp.payment(pid, amount=paid),
                    qr=rp.qr_entity(qr_id, amount=paid, notes=_notes(org, bill)))
    answer = _deliver(client, body)
    assert answer.status_code == 200 and "2500 paise beyond" in answer.json["outcome"]
    [payment] = _payments(session, org.id)
    assert payment.amount_paise == bill.total_paise and _fresh(session, bill).status == "paid"
    [exc] = _exceptions(session, org.id)
    assert exc.kind == "already_paid" and exc.amount_paise == 2500 and exc.payment_id == payment.id
    # The clerk refunds just the excess.
    rzp.captured[pid] = paid
    security.use_tenant(session, org.id)
    with audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id)):
        gateway.refund_exception(exc, None, "Patient paid Rs 25 too much")
    session.commit()
    assert rzp.bodies("/refund")[0]["amount"] == 2500


def test_refund_events_update_the_refund_row(client, session, lab, rzp):  # type: ignore[no-untyped-def]
    bill, org = lab["bill"], lab["org"]
    body, pid = _link_paid(org, bill)
    _deliver(client, body)
    [payment] = _payments(session, org.id)
    security.use_tenant(session, org.id)
    ok = Refund(payment_id=payment.id, bill_id=bill.id, amount_paise=1000, mode="razorpay", status="processing",
                gateway_refund_id="rfnd_Processed0001", reason="test")
    bad = Refund(payment_id=payment.id, bill_id=bill.id, amount_paise=500, mode="razorpay", status="processing",
                 gateway_refund_id="rfnd_Failed000001", reason="test")
    session.add_all([ok, bad])
    # as the refunds service does when it sends them: the money is off the payment and the bill
    payment.refunded_paise += 1500
    session.get(Bill, bill.id).paid_paise -= 1500
    session.commit()
    processed = rp.event("refund.processed", refund=rp.refund_entity("rfnd_Processed0001", payment_id=pid, amount=1000),
                         payment_entity=rp.payment(pid, amount=bill.total_paise))
    assert "processed" in _deliver(client, processed).json["outcome"]
    failed = rp.event("refund.failed", refund=rp.refund_entity("rfnd_Failed000001", payment_id=pid, amount=500,
                                                               status="failed"),
                      payment_entity=rp.payment(pid, amount=bill.total_paise))
    assert "failed" in _deliver(client, failed).json["outcome"]
    late = rp.event("refund.failed", refund=rp.refund_entity("rfnd_Processed0001", payment_id=pid, amount=1000,
                                                             status="failed"))
    assert _deliver(client, late).json["outcome"] == "refund rfnd_Processed0001 processed"  # stays processed
    session.expire_all()
    security.use_tenant(session, org.id)
    assert session.get(Refund, ok.id).status == "processed" and session.get(Refund, ok.id).processed_at
    assert session.get(Refund, bad.id).status == "failed"
    # the failed refund's money is back on the payment and the bill; the processed one stays off
    assert session.get(Payment, payment.id).refunded_paise == 1000
    assert session.get(Bill, bill.id).paid_paise == bill.total_paise - 1000
    kinds = [e.kind for e in _exceptions(session, org.id)]
    assert kinds == ["refund_failed"]
    # A refund no one here made, long ago: ignored; a fresh one: left for a later delivery.
    stranger = rp.refund_entity("rfnd_Stranger00001", payment_id=pid, amount=100)
    answer = _deliver(client, rp.event("refund.processed", refund=stranger,
                                       payment_entity=rp.payment(pid, amount=bill.total_paise)))
    assert answer.status_code == 200 and answer.json["outcome"].startswith("deferred")
    stranger["created_at"] = 1_600_000_000
    answer = _deliver(client, rp.event("refund.processed", refund=stranger,
                                       payment_entity=rp.payment(pid, amount=bill.total_paise)))
    assert answer.json["outcome"].startswith("ignored")


def test_org_routing_without_notes_and_events_not_used(client, session, lab, rzp, factory):  # type: ignore[no-untyped-def]
    bill, org = lab["bill"], lab["org"]
    factory.org()  # two labs: a payment without notes.org cannot be placed by guessing
    body = rp.event("payment.captured", payment_entity=rp.payment(amount=100))
    assert "no organization" in _deliver(client, body).json["outcome"]
    assert _deliver(client, rp.event("settlement.processed")).json["outcome"].startswith("ignored")
    unreadable = "not json at all"
    assert _deliver(client, unreadable).json["outcome"].startswith("ignored")
    # A link made here is found by its id even without notes.
    security.use_tenant(session, org.id)
    session.add(PaymentLink(bill_id=bill.id, kind="payment_link", gateway_id="plink_OwnLink000001",
                            reference_id=bill.number, url="https://rzp.io/i/own", amount_paise=bill.total_paise))
    session.commit()
    pid = rp.new_id("pay")
    body = rp.event("payment_link.paid", payment_entity=rp.payment(pid, amount=bill.total_paise),
                    link=rp.link_entity("plink_OwnLink000001", amount=bill.total_paise, reference_id="x", notes={}))
    assert "applied" in _deliver(client, body).json["outcome"]
    session.expire_all()
    security.use_tenant(session, org.id)
    assert session.execute(select(PaymentLink.status)).scalar_one() == "paid"
    assert _fresh(session, bill).status == "paid"


def test_sweep_finishes_stored_events_and_queues_unrouted_payments(app, client, session, lab, rzp):  # type: ignore[no-untyped-def]
    bill, org = lab["bill"], lab["org"]
    body, pid = _link_paid(org, bill)
    security.use_tenant(session, None)
    # As if the web process died between storing the event and processing it.
    session.add(GatewayEvent(provider="razorpay", event_id="evt_Stored00000001", event="payment_link.paid",
                             signature_valid=True, body=body, outcome="stored"))
    lonely = rp.new_id("pay")
    session.commit()
    alone = _deliver(client, rp.event("payment.captured", payment_entity=rp.payment(lonely, amount=700,
                                                                                     notes={"org": org.code})))
    assert "no bill named yet" in alone.json["outcome"]
    from datetime import timedelta
    counts = gateway.sweep(settle_after=timedelta(0), unrouted_after=timedelta(0))

    assert counts["processed"] >= 1 and counts["unrouted"] == 1
    assert _fresh(session, bill).status == "paid"
    [exc] = _exceptions(session, org.id)
    assert exc.kind == "unknown_bill" and exc.reference == lonely and exc.amount_paise == 700


# ---------------------------------------------------------------- portal

def test_panel_creates_link_and_qr_and_says_when_not_configured(client, auth, session, lab, rzp, app, monkeypatch):  # type: ignore[no-untyped-def]
    bill = lab["bill"]
    auth.login(lab["clerk"].username, PASSWORD)
    page = client.get(f"/billing/gateway/bills/{bill.number}")
    assert page.status_code == 200 and "Create UPI payment link" in page.get_data(as_text=True)
    rzp.script.append((400, {"error": {"code": "BAD_REQUEST_ERROR", "description": "Merchant account is blocked"}}))
    refused = client.post_form(f"/billing/gateway/bills/{bill.number}/links", {"kind": "qr_code"},
                               headers={"HX-Request": "true"})
    assert refused.status_code == 422 and "Merchant account is blocked" in refused.get_data(as_text=True)
    assert client.post_form(f"/billing/gateway/bills/{bill.number}/links", {"kind": "cash"}).status_code == 422
    made = client.post_form(f"/billing/gateway/bills/{bill.number}/links", {"kind": "payment_link"},
                            headers={"HX-Request": "true"})
    html = made.get_data(as_text=True)
    assert made.status_code == 200 and "https://rzp.io/i/" in html and "data:image/svg+xml" in html
    assert 'data-copy="https://rzp.io/i/' in html
    qr = client.post_form(f"/billing/gateway/bills/{bill.number}/links", {"kind": "qr_code"})
    assert qr.status_code == 303
    assert "Show the UPI QR" in client.get(qr.headers["Location"]).get_data(as_text=True)
    assert rzp.bodies("/qr_codes")[0]["payment_amount"] == bill.due_paise
    asked = len(rzp.bodies("/qr_codes"))
    again = client.post_form(f"/billing/gateway/bills/{bill.number}/links", {"kind": "qr_code"})
    assert again.status_code == 303 and len(rzp.bodies("/qr_codes")) == asked  # the open QR is shown again
    security.use_tenant(session, bill.org_id)
    session.expire_all()
    assert session.execute(select(func.count(PaymentLink.id))).scalar_one() == 2
    monkeypatch.setitem(app.config, "RAZORPAY_KEY_ID", "")
    assert "not configured" in client.get(f"/billing/gateway/bills/{bill.number}").get_data(as_text=True)


def test_other_organizations_bill_and_other_roles(client, auth, session, lab, rzp, factory):  # type: ignore[no-untyped-def]
    other = factory.org()
    factory.catalogue(other)
    _new_bill(factory, session, other)
    other_bill = _new_bill(factory, session, other)  # a number this lab's series has not reached
    auth.login(lab["clerk"].username, PASSWORD)
    assert client.get(f"/billing/gateway/bills/{other_bill.number}").status_code == 404
    assert client.post_form(f"/billing/gateway/bills/{other_bill.number}/links",
                            {"kind": "payment_link"}).status_code == 404
    auth.logout()
    auth.login(factory.user(lab["org"], "reception").username, PASSWORD)
    assert client.get("/billing/gateway/events").status_code == 403


def test_events_page_lists_filters_and_escapes(client, auth, session, lab, rzp):  # type: ignore[no-untyped-def]
    bill, org = lab["bill"], lab["org"]
    body, _ = _link_paid(org, bill)
    _deliver(client, body, event_id="evt_Listed00000001")
    script = rp.event("payment.captured", payment_entity=rp.payment(
        amount=100, notes={"org": org.code, "bill": "<script>alert(1)</script>"}))
    _deliver(client, script, event_id="evt_Script00000001")
    client.post("/webhooks/razorpay", data=b'{"event":"payment.captured"}',
                headers={"X-Razorpay-Signature": "0" * 64, "X-Razorpay-Event-Id": "evt_Forged00000001"})
    auth.login(lab["clerk"].username, PASSWORD)
    page = client.get("/billing/gateway/events").get_data(as_text=True)
    assert "evt_Listed00000001" in page and "<script>alert(1)" not in page and "&lt;script&gt;" in page
    assert "patient@example.com" not in page and "+919812345678" not in page  # masked
    assert "412345678901" in page  # the RRN a clerk needs is kept
    refused = client.get("/billing/gateway/events?valid=no", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "evt_Forged00000001" in refused and "evt_Listed00000001" not in refused  # single lab: unattributed shown
    found = client.get("/billing/gateway/events?q=evt_Listed00000001").get_data(as_text=True)
    assert "evt_Listed00000001" in found and "evt_Script00000001" not in found
    by_event = client.get("/billing/gateway/events?event=payment_link.paid").get_data(as_text=True)
    assert "evt_Listed00000001" in by_event and "evt_Script00000001" not in by_event
