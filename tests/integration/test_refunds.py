"""Refunds: never more than was paid (also under concurrency), approval above the lab's limit
by someone other than the requester, Razorpay refunds through a local server speaking its
API, and a failed refund giving the money back and opening an exception."""
from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from app import audit, security
from app.extensions import db
from app.models import AuditEvent, Bill, BillingException, Organization, Payment, Refund
from app.services import billing, credit_notes, refunds
from tests.factories import PASSWORD

KEY_ID, KEY_SECRET = "rzp_test_refunds01", "refund_secret"


@pytest.fixture
def lab(factory, session):  # type: ignore[no-untyped-def]
    org = factory.org()
    factory.catalogue(org)
    clerk = factory.user(org, "billing")
    other_clerk = factory.user(org, "billing")
    admin = factory.user(org, "admin")
    with audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id, actor_user_id=clerk.id)):
        yield {"org": org, "clerk": clerk, "other": other_clerk, "admin": admin, "factory": factory,
               "session": session}


def _paid_bill(lab, codes=("CBC", "TSH"), mode="cash", **payment_fields) -> tuple[Bill, Payment]:  # type: ignore[no-untyped-def]
    """A bill of supply paid in full by one payment (₹700 for CBC + TSH)."""
    session = lab["session"]
    order = lab["factory"].order(lab["org"], list(codes))
    bill = session.execute(select(Bill).where(Bill.order_id == order.id)).scalar_one()
    if mode in billing.COUNTER_MODES:
        payment = billing.record_payment(bill, mode=mode, amount_paise=bill.total_paise,
                                         reference="123456789012" if mode == "upi" else None,
                                         received_by_id=lab["clerk"].id)
    else:
        payment = billing.apply_payment(billing.lock_bill(bill.id), mode=mode, amount_paise=bill.total_paise,
                                        notify=False, **payment_fields)
    session.commit()
    return bill, payment


def _state(session, bill: Bill, payment: Payment) -> tuple:  # type: ignore[no-untyped-def]
    session.expire_all()
    bill, payment = session.get(Bill, bill.id), session.get(Payment, payment.id)
    count = session.execute(select(func.count(Refund.id)).where(Refund.payment_id == payment.id)).scalar_one()
    return bill.paid_paise, bill.status, payment.refunded_paise, count


def test_a_refund_above_what_was_paid_is_refused_and_changes_nothing(lab):  # type: ignore[no-untyped-def]
    session, clerk = lab["session"], lab["clerk"]
    bill, payment = _paid_bill(lab)
    before = _state(session, bill, payment)
    with pytest.raises(refunds.RefundInvalid, match="At most 700.00 of this payment can be refunded"):
        refunds.request_refund(payment, amount_paise=payment.amount_paise + 1, reason="Overpaid", mode="cash",
                               actor=clerk)
    session.rollback()
    assert _state(session, bill, payment) == before
    for kwargs, message in [(dict(amount_paise=0), "above zero"), (dict(amount_paise=100, reason=""), "reason"),
                            (dict(amount_paise=100, mode="razorpay"), "cash, UPI or NEFT"),
                            (dict(amount_paise=100, mode="upi", reference="12345"), "12-digit")]:
        args = {"reason": "Test", "mode": "cash", **kwargs}
        with pytest.raises(refunds.RefundInvalid, match=message):
            refunds.request_refund(payment, actor=clerk, **args)
        session.rollback()
    assert _state(session, bill, payment) == before


def test_partial_refunds_add_up_to_the_payment_and_then_nothing_more(lab):  # type: ignore[no-untyped-def]
    session, clerk = lab["session"], lab["clerk"]
    bill, payment = _paid_bill(lab)
    credit_notes.cancel_bill(bill, reason="Tests not done", actor_id=clerk.id)
    session.commit()
    assert session.get(Bill, bill.id).refund_owed_paise == 70000
    first = refunds.request_refund(payment, amount_paise=25050, reason="Part", mode="cash", actor=clerk)
    second = refunds.request_refund(payment, amount_paise=44950, reason="Rest", mode="upi",
                                    reference="9876 5432 1098", actor=clerk)
    session.commit()
    assert (first.status, second.status) == ("processed", "processed")
    assert second.reference == "987654321098"
    paid, status, refunded, count = _state(session, bill, payment)
    assert (paid, status, refunded, count) == (0, "cancelled", 70000, 2)
    assert session.get(Bill, bill.id).refund_owed_paise == 0
    with pytest.raises(refunds.RefundInvalid, match="At most 0.00"):
        refunds.request_refund(payment, amount_paise=1, reason="One paisa more", mode="cash", actor=clerk)
    session.rollback()
    assert _state(session, bill, payment) == (0, "cancelled", 70000, 2)
    events = session.execute(select(AuditEvent).where(AuditEvent.entity_id == bill.number,
                                                      AuditEvent.action == "refund.processed")).scalars().all()
    assert len(events) == 2 and events[0].before["paid_paise"] == 70000 and events[0].after["paid_paise"] == 44950


def test_the_same_idempotency_key_refunds_once(lab):  # type: ignore[no-untyped-def]
    session, clerk = lab["session"], lab["clerk"]
    bill, payment = _paid_bill(lab)
    key = uuid.uuid4().hex
    one = refunds.request_refund(payment, amount_paise=10000, reason="Once", mode="cash", actor=clerk,
                                 idempotency_key=key)
    session.commit()
    two = refunds.request_refund(payment, amount_paise=10000, reason="Once", mode="cash", actor=clerk,
                                 idempotency_key=key)
    session.commit()
    assert one.id == two.id
    assert _state(session, bill, payment)[2:] == (10000, 1)


def test_above_the_limit_a_second_person_approves(lab):  # type: ignore[no-untyped-def]
    session, clerk, other, admin = lab["session"], lab["clerk"], lab["other"], lab["admin"]
    org = session.get(Organization, lab["org"].id)
    org.refund_approval_limit_paise = 20000  # ₹200
    session.commit()
    bill, payment = _paid_bill(lab)
    big = refunds.request_refund(payment, amount_paise=50000, reason="Large", mode="cash", actor=clerk)
    session.commit()
    assert big.status == "pending_approval"
    assert _state(session, bill, payment)[:3] == (70000, "paid", 0)  # nothing moved yet
    # The waiting refund is reserved: another may not take the payment past its amount.
    with pytest.raises(refunds.RefundInvalid, match="At most 200.00"):
        refunds.request_refund(payment, amount_paise=20001, reason="More", mode="cash", actor=other)
    session.rollback()
    with pytest.raises(refunds.RefundInvalid, match="someone else"):
        refunds.approve(refunds.by_id(big.id), actor=clerk)
    session.rollback()
    assert refunds.by_id(big.id).status == "pending_approval"
    assert not refunds.can_decide(refunds.by_id(big.id), clerk)
    assert refunds.can_decide(refunds.by_id(big.id), other)
    refunds.approve(refunds.by_id(big.id), actor=other)
    session.commit()
    big = refunds.by_id(big.id)
    assert (big.status, big.approved_by_id, big.requested_by_id) == ("processed", other.id, clerk.id)
    assert _state(session, bill, payment)[:3] == (20000, "partly_paid", 50000)
    # Within the limit no approval is needed; an admin needs none at any amount.
    small = refunds.request_refund(payment, amount_paise=5000, reason="Small", mode="cash", actor=clerk)
    large_by_admin = refunds.request_refund(payment, amount_paise=15000, reason="Admin", mode="cash", actor=admin)
    session.commit()
    assert (small.status, large_by_admin.status) == ("processed", "processed")
    # A rejected refund moves nothing and cannot then be approved.
    bill2, payment2 = _paid_bill(lab)
    asked = refunds.request_refund(payment2, amount_paise=30000, reason="Large", mode="cash", actor=clerk)
    session.commit()
    with pytest.raises(refunds.RefundInvalid, match="why"):
        refunds.reject(asked, actor=other, note=" ")
    session.rollback()
    refunds.reject(refunds.by_id(asked.id), actor=other, note="Patient was not charged twice")
    session.commit()
    with pytest.raises(refunds.RefundInvalid, match="already rejected"):
        refunds.approve(refunds.by_id(asked.id), actor=admin)
    session.rollback()
    assert _state(session, bill2, payment2)[:3] == (70000, "paid", 0)


# --- Razorpay ---------------------------------------------------------------------------


class _Razorpay(BaseHTTPRequestHandler):
    """Speaks POST /v1/payments/{id}/refund as Razorpay does (basic auth key id : secret,
    JSON body {amount, notes…}, the refund entity or {"error": {code, description}})."""

    def log_message(self, *args):  # type: ignore[no-untyped-def]
        pass

    def do_GET(self):  # type: ignore[no-untyped-def]  # noqa: N802
        """GET /v1/payments/{id}/refunds: the refunds made for one payment."""
        payment_id = self.path.split("?")[0].split("/")[3]
        self.server.lookups.append(self.path)  # type: ignore[attr-defined]
        items = self.server.made.get(payment_id, [])  # type: ignore[attr-defined]
        self._reply(200, {"entity": "collection", "count": len(items), "items": items})

    def do_POST(self):  # type: ignore[no-untyped-def]  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        expected = "Basic " + base64.b64encode(f"{KEY_ID}:{KEY_SECRET}".encode()).decode()
        self.server.requests.append({"path": self.path, "body": body,  # type: ignore[attr-defined]
                                     "auth_ok": self.headers.get("Authorization") == expected})
        status, answer = self.server.answer(self.path, body)  # type: ignore[attr-defined]
        self._reply(status, answer)

    def _reply(self, status, answer):  # type: ignore[no-untyped-def]
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def razorpay_server(app, monkeypatch):  # type: ignore[no-untyped-def]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Razorpay)
    server.requests, server.lookups, server.made = [], [], {}  # type: ignore[attr-defined]
    server.refund_status = "processed"  # type: ignore[attr-defined]

    def answer(path, body):  # type: ignore[no-untyped-def]
        payment_id = path.split("/")[3]
        if server.refund_status == "refused":  # type: ignore[attr-defined]
            return 400, {"error": {"code": "BAD_REQUEST_ERROR",
                                   "description": "The refund amount provided is greater than amount captured."}}
        if server.refund_status == "down":  # type: ignore[attr-defined]
            return 502, {"error": {"code": "SERVER_ERROR", "description": "We are facing some trouble"}}
        lost = server.refund_status == "lost"  # type: ignore[attr-defined]
        entity = {"id": f"rfnd_T{len(server.requests):013d}", "entity": "refund", "amount": body["amount"],
                  "currency": "INR", "payment_id": payment_id, "notes": body.get("notes", {}),
                  "receipt": body.get("receipt"), "status": "processed" if lost else server.refund_status,  # type: ignore[attr-defined]
                  "speed_processed": "normal", "created_at": 1700000000}
        server.made.setdefault(payment_id, []).append(entity)  # type: ignore[attr-defined]
        if lost:  # Razorpay made the refund, but its answer never reached us
            return 504, {"error": {"code": "SERVER_ERROR", "description": "Gateway timeout"}}
        return 200, entity

    server.answer = answer  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setitem(app.config, "RAZORPAY_API_BASE", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setitem(app.config, "RAZORPAY_KEY_ID", KEY_ID)
    monkeypatch.setitem(app.config, "RAZORPAY_KEY_SECRET", KEY_SECRET)
    yield server
    server.shutdown()
    server.server_close()


def _gateway_paid_bill(lab) -> tuple[Bill, Payment]:  # type: ignore[no-untyped-def]
    return _paid_bill(lab, mode="razorpay", gateway_payment_id=f"pay_{uuid.uuid4().hex[:14]}",
                      gateway_method="upi", rrn="301234567890")


def test_a_gateway_payment_is_refunded_through_razorpay(lab, razorpay_server):  # type: ignore[no-untyped-def]
    session, clerk = lab["session"], lab["clerk"]
    bill, payment = _gateway_paid_bill(lab)
    with pytest.raises(refunds.RefundInvalid, match="through Razorpay"):
        refunds.request_refund(payment, amount_paise=1000, reason="Cash?", mode="cash", actor=clerk)
    session.rollback()
    refund = refunds.request_refund(payment, amount_paise=30000, reason="Test not done", mode="razorpay",
                                    actor=clerk)
    session.commit()
    assert refund.status == "processing" and not razorpay_server.requests  # nothing sent before the commit
    refund = refunds.submit_gateway_refund(refund.id)
    session.commit()
    [sent] = razorpay_server.requests
    assert sent["path"] == f"/v1/payments/{payment.gateway_payment_id}/refund" and sent["auth_ok"]
    assert sent["body"]["amount"] == 30000 and sent["body"]["notes"]["lis_refund_id"] == str(refund.id)
    assert refund.status == "processed" and refund.gateway_refund_id.startswith("rfnd_")
    assert _state(session, bill, payment)[:3] == (40000, "partly_paid", 30000)
    # Sending again does nothing: the refund already has Razorpay's id.
    refunds.submit_gateway_refund(refund.id)
    session.commit()
    assert len(razorpay_server.requests) == 1

    # Razorpay may answer 'pending': the refund completes when its webhook says processed.
    razorpay_server.refund_status = "pending"
    later = refunds.request_refund(payment, amount_paise=10000, reason="More", mode="razorpay", actor=clerk)
    session.commit()
    later = refunds.submit_gateway_refund(later.id)
    session.commit()
    assert later.status == "processing" and later.gateway_refund_id
    refunds.apply_gateway_status(status="processed", gateway_refund_id=later.gateway_refund_id)
    session.commit()
    assert refunds.by_id(later.id).status == "processed"
    assert _state(session, bill, payment)[:3] == (30000, "partly_paid", 40000)


def test_a_refused_refund_restores_the_money_and_opens_an_exception(lab, razorpay_server):  # type: ignore[no-untyped-def]
    session, clerk = lab["session"], lab["clerk"]
    bill, payment = _gateway_paid_bill(lab)
    razorpay_server.refund_status = "refused"
    refund = refunds.request_refund(payment, amount_paise=70000, reason="Cancelled", mode="razorpay", actor=clerk)
    session.commit()
    assert _state(session, bill, payment)[:3] == (0, "open", 70000)  # moved while it is processing
    refund = refunds.submit_gateway_refund(refund.id)
    session.commit()
    assert refund.status == "failed" and "greater than amount captured" in refund.last_error
    assert _state(session, bill, payment)[:3] == (70000, "paid", 0)
    exc = session.execute(select(BillingException).where(BillingException.bill_id == bill.id)).scalar_one()
    assert (exc.kind, exc.status, exc.amount_paise, exc.payment_id) == ("refund_failed", "open", 70000, payment.id)

    # No clear answer (Razorpay down): the refund may exist there, so it stays processing,
    # the money stays moved, and the webhook settles it; refund.failed gives the money back.
    razorpay_server.refund_status = "down"
    unsure = refunds.request_refund(payment, amount_paise=20000, reason="Again", mode="razorpay", actor=clerk)
    session.commit()
    unsure = refunds.submit_gateway_refund(unsure.id)
    session.commit()
    assert unsure.status == "processing" and "No clear answer" in unsure.last_error
    assert _state(session, bill, payment)[:3] == (50000, "partly_paid", 20000)
    refunds.apply_gateway_status(status="failed", lis_refund_id=unsure.id, gateway_refund_id="rfnd_UNSEEN000001")
    session.commit()
    assert refunds.by_id(unsure.id).status == "failed"
    assert _state(session, bill, payment)[:3] == (70000, "paid", 0)


def test_a_stalled_refund_is_found_at_razorpay_or_sent_exactly_once(lab, razorpay_server):  # type: ignore[no-untyped-def]
    session, clerk = lab["session"], lab["clerk"]
    bill, payment = _gateway_paid_bill(lab)
    razorpay_server.refund_status = "lost"  # Razorpay makes it; the answer is lost on the way
    lost = refunds.request_refund(payment, amount_paise=20000, reason="Lost answer", mode="razorpay", actor=clerk)
    session.commit()
    lost = refunds.submit_gateway_refund(lost.id)
    session.commit()
    assert lost.status == "processing" and lost.gateway_refund_id is None
    refunds.submit_gateway_refund(lost.id)  # a second click does not send it again
    session.commit()
    assert len(razorpay_server.requests) == 1
    # Another refund whose process died between its commit and the call: never sent.
    never_sent = refunds.request_refund(payment, amount_paise=10000, reason="Never sent", mode="razorpay",
                                        actor=clerk)
    session.commit()
    razorpay_server.refund_status = "processed"

    counts = refunds.sweep_stalled(older_than=timedelta(0))
    security.use_tenant(session, lab["org"].id)
    assert counts["checked"] >= 2 and counts["errors"] == 0
    lost, never_sent = refunds.by_id(lost.id), refunds.by_id(never_sent.id)
    made = razorpay_server.made[payment.gateway_payment_id]
    assert lost.gateway_refund_id == made[0]["id"] and lost.status == "processed"  # adopted, not sent twice
    assert never_sent.gateway_refund_id == made[1]["id"] and never_sent.status == "processed"
    assert len(razorpay_server.requests) == 2 and len(made) == 2  # one refund at Razorpay per refund here
    assert _state(session, bill, payment)[:3] == (40000, "partly_paid", 30000)
    # Nothing is left to check: the next sweep asks Razorpay nothing.
    lookups = len(razorpay_server.lookups)
    refunds.sweep_stalled(older_than=timedelta(0))
    security.use_tenant(session, lab["org"].id)
    assert len(razorpay_server.lookups) == lookups


def test_razorpay_unconfigured_refuses_before_anything_moves(lab, app, monkeypatch):  # type: ignore[no-untyped-def]
    session, clerk = lab["session"], lab["clerk"]
    monkeypatch.setitem(app.config, "RAZORPAY_KEY_ID", "")
    bill, payment = _gateway_paid_bill(lab)
    with pytest.raises(refunds.RefundInvalid, match="not set up"):
        refunds.request_refund(payment, amount_paise=100, reason="x", mode="razorpay", actor=clerk)
    session.rollback()
    assert _state(session, bill, payment) == (70000, "paid", 0, 0)


# --- the portal ------------------------------------------------------------------------


def test_portal_refund_form_and_approvals(lab, client, auth):  # type: ignore[no-untyped-def]
    session, clerk, other = lab["session"], lab["clerk"], lab["other"]
    org = session.get(Organization, lab["org"].id)
    org.refund_approval_limit_paise = 20000
    session.commit()
    bill, payment = _paid_bill(lab)
    auth.login(clerk.username, PASSWORD)
    url = f"/billing/payments/{payment.id}/refunds"
    hx = {"HX-Request": "true"}
    response = client.post_form(url, {"amount": "700.01", "reason": "Too much", "mode": "cash"}, headers=hx)
    assert response.status_code == 422
    assert "At most 700.00 of this payment can be refunded" in response.get_data(as_text=True)
    response = client.post_form(url, {"amount": "abc", "reason": "Bad", "mode": "cash"}, headers=hx)
    assert response.status_code == 422 and "Enter an amount in rupees" in response.get_data(as_text=True)
    assert _state(session, bill, payment) == (70000, "paid", 0, 0)
    response = client.post_form(url, {"amount": "100", "reason": "Small", "mode": "cash",
                                      "idempotency_key": "k1"}, headers=hx)
    assert response.status_code == 200 and "Refund of ₹100.00 recorded" in response.get_data(as_text=True)
    response = client.post_form(url, {"amount": "300", "reason": "Large", "mode": "cash",
                                      "idempotency_key": "k2"}, headers=hx)
    assert "waiting for approval" in response.get_data(as_text=True)
    assert _state(session, bill, payment) == (60000, "partly_paid", 10000, 2)
    waiting = session.execute(select(Refund).where(Refund.status == "pending_approval")).scalar_one()

    page = client.get("/billing/refunds").get_data(as_text=True)
    assert "Large" in page and "Needs another person" in page
    response = client.post_form(f"/billing/refunds/{waiting.id}/approve", headers=hx)
    assert response.status_code == 422 and "someone else" in response.get_data(as_text=True)

    auth.logout()
    auth.login(other.username, PASSWORD)
    response = client.post_form(f"/billing/refunds/{waiting.id}/approve", headers=hx)
    assert response.status_code == 200 and "Processed" in response.get_data(as_text=True)
    assert _state(session, bill, payment) == (30000, "partly_paid", 40000, 2)
    rows = client.get("/billing/refunds?status=processed", headers=hx).get_data(as_text=True)
    assert rows.startswith('<tbody id="refund-rows">') and rows.count("<tr id=") == 2


def test_portal_other_labs_payments_and_refunds_are_not_found(lab, client, auth):  # type: ignore[no-untyped-def]
    session, factory = lab["session"], lab["factory"]
    auth.login(lab["clerk"].username, PASSWORD)
    other = factory.org()
    factory.catalogue(other)
    other_clerk = factory.user(other, "billing")
    with audit.acting_as(audit.AuditContext(actor_label="test", org_id=other.id)):
        order = factory.order(other, ["CBC"])
        bill = session.execute(select(Bill).where(Bill.order_id == order.id)).scalar_one()
        payment = billing.record_payment(bill, mode="cash", amount_paise=1000, reference=None, received_by_id=None)
        refund = refunds.request_refund(payment, amount_paise=500, reason="x", mode="cash", actor=other_clerk)
        session.commit()
        ids = (payment.id, refund.id)
    assert client.post_form(f"/billing/payments/{ids[0]}/refunds",
                            {"amount": "1", "reason": "x", "mode": "cash"}).status_code == 404
    assert client.post_form(f"/billing/refunds/{ids[1]}/approve").status_code == 404
    assert client.post_form(f"/billing/refunds/{ids[1]}/reject", {"note": "x"}).status_code == 404


# --- concurrency --------------------------------------------------------------------------


def test_two_refunds_of_one_payment_at_once_cannot_exceed_it(app):  # type: ignore[no-untyped-def]
    """Real commits from two threads, each with its own connection, in an organization made
    for this test: each asks for 60 % of the payment; exactly one may succeed."""
    from tests.factories import Factory

    with app.app_context():
        factory = Factory(db.session)
        org = factory.org(code="rfc" + uuid.uuid4().hex[:8])
        factory.catalogue(org)
        clerks = [factory.user(org, "billing"), factory.user(org, "billing")]
        with audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id)):
            order = factory.order(org, ["CBC", "TSH"])
            bill = db.session.execute(select(Bill).where(Bill.order_id == order.id)).scalar_one()
            payment = billing.record_payment(bill, mode="cash", amount_paise=bill.total_paise, reference=None,
                                             received_by_id=None)
            db.session.commit()
        org_id, payment_id, clerk_ids, bill_id = org.id, payment.id, [c.id for c in clerks], bill.id
        db.session.remove()

    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def desk(n: int) -> None:
        try:
            with app.app_context():
                security.use_tenant(db.session, org_id)
                with audit.acting_as(audit.AuditContext(actor_label=f"test:desk{n}", org_id=org_id)):
                    from app.models import User

                    actor = db.session.get(User, clerk_ids[n])
                    pay = db.session.get(Payment, payment_id)
                    barrier.wait(timeout=10)
                    try:
                        refunds.request_refund(pay, amount_paise=42000, reason=f"desk {n}", mode="cash", actor=actor)
                        db.session.commit()
                        outcomes.append("refunded")
                    except refunds.RefundInvalid:
                        db.session.rollback()
                        outcomes.append("refused")
                db.session.remove()
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            outcomes.append(repr(exc))

    threads = [threading.Thread(target=desk, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["refunded", "refused"]
    with app.app_context():
        security.use_tenant(db.session, org_id)
        pay = db.session.get(Payment, payment_id)
        bill = db.session.get(Bill, bill_id)
        total = db.session.execute(select(func.coalesce(func.sum(Refund.amount_paise), 0))
                                   .where(Refund.payment_id == payment_id)).scalar_one()
        assert pay.refunded_paise == total == 42000 <= pay.amount_paise
        assert bill.paid_paise == pay.amount_paise - 42000
        db.session.remove()
