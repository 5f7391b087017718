"""The billing portal's own pages: home, bill list with filters, a bill's page and counter
payments in each mode, scoping across organizations."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app import security
from app.models import Bill, Payment
from tests.factories import PASSWORD


@pytest.fixture()
def lab(factory):  # type: ignore[no-untyped-def]
    org = factory.org()
    factory.standard_catalogue(org)
    clerk = factory.user(org, "billing")
    order = factory.order(org, ["CBC", "GLUF"], receive=False)
    return {"org": org, "clerk": clerk, "order": order}


def _bill(session, order) -> Bill:  # type: ignore[no-untyped-def]
    security.use_tenant(session, order.org_id)
    return session.execute(select(Bill).where(Bill.order_id == order.id)).scalars().first()


def test_home_lists_todays_collections_and_attention_counts(client, auth, lab, session):  # type: ignore[no-untyped-def]
    auth.login(lab["clerk"].username, PASSWORD)
    page = client.get("/billing/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "collected today" in text and "bills with money due" in text
    assert "exceptions to resolve" in text


def test_bill_list_filters_by_status_and_number(client, auth, lab, session):  # type: ignore[no-untyped-def]
    auth.login(lab["clerk"].username, PASSWORD)
    bill = _bill(session, lab["order"])
    listed = client.get("/billing/bills?status=due").get_data(as_text=True)
    assert bill.number in listed
    assert bill.number not in client.get("/billing/bills?status=paid").get_data(as_text=True)
    # the running number alone finds it (clerks type what is printed after the branch code)
    assert bill.number in client.get(f"/billing/bills?q={bill.number.split('/')[-1]}").get_data(as_text=True)
    fragment = client.get("/billing/bills?q=zzzz", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert fragment.lstrip().startswith('<table id="bill-rows"') and "No bills match" in fragment


@pytest.mark.parametrize("mode,reference", [("cash", ""), ("card", "AUTH77"), ("upi", "412345678901")])
def test_counter_payment_in_each_mode(client, auth, lab, session, mode, reference):  # type: ignore[no-untyped-def]
    auth.login(lab["clerk"].username, PASSWORD)
    bill = _bill(session, lab["order"])
    response = client.post_form(f"/billing/bills/{bill.number}/payments",
                           {"mode": mode, "amount": "100.00", "reference": reference, "counter": "desk-2",
                                 "idempotency_key": f"k-{mode}"})
    assert response.status_code == 303
    security.use_tenant(session, lab["org"].id)
    payment = session.execute(select(Payment).where(Payment.bill_id == bill.id)).scalar_one()
    assert (payment.mode, payment.amount_paise, payment.counter, payment.branch_id) == (mode, 10000, "desk-2",
                                                                                         bill.branch_id)
    assert payment.received_by_id == lab["clerk"].id
    assert payment.rrn == (reference if mode == "upi" else None)
    assert "lis_counter=desk-2" in response.headers.get("Set-Cookie", "")  # the desk's counter is remembered
    page = client.get(f"/billing/bills/{bill.number}").get_data(as_text=True)
    assert "desk-2" in page and lab["clerk"].username in page
    assert 'name="counter" value="desk-2"' in page


def test_bad_payment_is_refused_with_a_message_and_saves_nothing(client, auth, lab, session):  # type: ignore[no-untyped-def]
    auth.login(lab["clerk"].username, PASSWORD)
    bill = _bill(session, lab["order"])
    for data, message in [({"mode": "upi", "amount": "10", "reference": "12ab"}, "12-digit UPI reference"),
                          ({"mode": "cash", "amount": "abc"}, "Enter an amount in rupees"),
                          ({"mode": "cash", "amount": str(bill.total_paise / 100 + 1)}, "more than the amount due"),
                          ({"mode": "card", "amount": "10", "reference": ""}, "approval code")]:
        response = client.post_form(f"/billing/bills/{bill.number}/payments", data)
        assert response.status_code == 422
        assert message in response.get_data(as_text=True)
    assert session.execute(select(Payment).where(Payment.bill_id == bill.id)).first() is None


def test_other_organizations_bill_is_404(client, auth, lab, factory, session):  # type: ignore[no-untyped-def]
    other = factory.org()
    factory.standard_catalogue(other)
    factory.order(other, ["CBC"], receive=False)
    their_order = factory.order(other, ["CBC"], receive=False)  # MAIN/B26/000002: a number only they have
    their_bill = _bill(session, their_order)
    auth.login(lab["clerk"].username, PASSWORD)
    assert client.get(f"/billing/bills/{their_bill.number}").status_code in (404,)
    assert client.post_form(f"/billing/bills/{their_bill.number}/payments",
                            {"mode": "cash", "amount": "1"}).status_code == 404


def test_other_roles_cannot_open_the_billing_portal(client, auth, lab, factory):  # type: ignore[no-untyped-def]
    auth.login(factory.user(lab["org"], "technician").username, PASSWORD)
    assert client.get("/billing/bills").status_code in (403, 404)
