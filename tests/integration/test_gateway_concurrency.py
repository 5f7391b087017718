"""Concurrent deliveries of one payment (Razorpay retrying while the first delivery is still
being processed; payment.captured, order.paid and payment_link.paid racing): one Payment.

Real commits from many threads, each request on its own connection (not the rolled-back test
transaction), in an organization made for this test and switched off afterwards."""
from __future__ import annotations

import threading
import uuid

from sqlalchemy import select, update

from app import security
from app.extensions import db
from app.models import Bill, GatewayEvent, Organization, Payment
from tests import providers_razorpay as rp


def _setup(app):  # type: ignore[no-untyped-def]
    from tests.factories import Factory

    with app.app_context():
        factory = Factory(db.session)
        org = factory.org(code="gw" + uuid.uuid4().hex[:8])
        factory.catalogue(org)
        order = factory.order(org, ["CBC"], receive=False)
        security.use_tenant(db.session, org.id)
        bill = db.session.execute(select(Bill).where(Bill.order_id == order.id)).scalars().one()
        facts = {"org_id": org.id, "code": org.code, "bill_id": bill.id, "number": bill.number,
                 "total": bill.total_paise}
        db.session.remove()
    return facts


def test_racing_deliveries_apply_one_payment(app, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setitem(app.config, "RAZORPAY_WEBHOOK_SECRET", rp.WEBHOOK_SECRET)
    lab = _setup(app)
    try:
        notes = {"org": lab["code"], "bill": lab["number"]}
        pid, order_id = rp.new_id("pay"), rp.new_id("order")
        pay = rp.payment(pid, amount=lab["total"], order_id=order_id, notes=notes)
        same = rp.event("payment_link.paid", payment_entity=pay,
                        link=rp.link_entity(rp.new_id("plink"), amount=lab["total"], reference_id=lab["number"],
                                            notes=notes, order_id=order_id))
        others = [rp.event("payment.captured", payment_entity=pay),
                  rp.event("order.paid", payment_entity=pay,
                           order=rp.order_entity(order_id, amount=lab["total"], notes=notes))]
        jobs = [(same, "evt_RaceSame" + lab["code"])] * 8 + [(body, rp.new_id("evt")) for body in others for _ in (1, 2)]
        answers: list[int] = []
        start = threading.Barrier(len(jobs))

        def deliver(body: str, event_id: str) -> None:
            client = app.test_client()
            start.wait()
            answers.append(client.post("/webhooks/razorpay", data=body.encode(),
                                       headers=rp.headers(body, event_id=event_id)).status_code)

        threads = [threading.Thread(target=deliver, args=job) for job in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers == [200] * len(jobs)
        with app.app_context():
            security.use_tenant(db.session, lab["org_id"])
            payments = db.session.execute(select(Payment).where(Payment.gateway_payment_id == pid)).scalars().all()
            bill = db.session.get(Bill, lab["bill_id"])
            assert len(payments) == 1 and payments[0].amount_paise == lab["total"]
            assert bill.paid_paise == lab["total"] and bill.status == "paid"
            security.use_tenant(db.session, None)
            event = db.session.execute(select(GatewayEvent).where(
                GatewayEvent.event_id == "evt_RaceSame" + lab["code"])).scalar_one()
            assert event.deliveries == 8 and event.processed_at is not None
            db.session.remove()
    finally:
        with app.app_context():  # other tests count on one active organization in a single-lab install
            db.session.execute(update(Organization).where(Organization.id == lab["org_id"]).values(active=False))
            db.session.commit()
            db.session.remove()
