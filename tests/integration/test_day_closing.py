"""Day-end closing: expected figures from real payments (each mode, two counters, two
branches), IST day boundaries, denominations, difference, one sign-off per counter-day,
what came in after closing; and the closing pages."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from app import audit, security
from app.models import AuditEvent, Branch, DayClosing, Payment, Refund
from app.services import accounts, billing, day_closing, orders
from app.services.billing import IST
from tests.factories import PASSWORD


@pytest.fixture
def lab(factory, session):
    org = factory.org()
    cat = factory.catalogue(org)
    clerk = factory.user(org, "billing")
    main = session.execute(select(Branch).where(Branch.org_id == org.id)).scalar_one()
    jnr = Branch(org_id=org.id, code="JNR", name="Jayanagar centre", state_code="29")
    session.add(jnr)
    session.commit()
    return {"org": org, "clerk": clerk, "main": main, "jnr": jnr, **cat}


def acting(org):
    return audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id))


def new_bill(factory, session, lab, branch, codes=("TSH",), discount=0):
    patient = factory.patient(lab["org"])
    security.use_tenant(session, lab["org"].id)
    with acting(lab["org"]):
        _order, [bill] = orders.create_order(patient, branch, orders.OrderRequest(
            codes=list(codes), discount_paise=discount, discount_reason="staff" if discount else ""),
            created_by_id=None, discount_limit_percent=100)
    session.commit()
    return bill


def pay(session, lab, bill, mode, amount, counter="main", at: datetime | None = None):
    reference = {"cash": None, "card": "AUTH01", "upi": "412345678901"}[mode]
    with acting(lab["org"]):
        payment = billing.record_payment(bill, mode=mode, amount_paise=amount, reference=reference,
                                         received_by_id=lab["clerk"].id, counter=counter)
        if at is not None:
            payment.received_at = at
    session.commit()
    return payment


def test_expected_figures_by_mode_counter_and_branch(factory, session, lab):
    main, jnr = lab["main"], lab["jnr"]
    b1 = new_bill(factory, session, lab, main, ("TSH", "CREA"), discount=5000)  # 550 − 50 = 500
    b2 = new_bill(factory, session, lab, main, ("TSH",))  # 350
    b3 = new_bill(factory, session, lab, jnr, ("TSH",))  # 350
    pay(session, lab, b1, "cash", 20000)
    pay(session, lab, b1, "card", 10000)
    pay(session, lab, b1, "upi", 20000)
    pay(session, lab, b2, "cash", 35000, counter="c2")
    pay(session, lab, b3, "cash", 15000)
    cash_payment = pay(session, lab, b3, "upi", 20000)
    patient = factory.patient(lab["org"])
    security.use_tenant(session, lab["org"].id)
    with acting(lab["org"]):
        accounts.take_advance(patient=patient, branch=main, mode="cash", amount_paise=100000, reference=None,
                              actor_id=None)
    # a cash refund paid out at main/main today
    first_cash = session.execute(select(Payment).where(Payment.bill_id == b1.id, Payment.mode == "cash")).scalar_one()
    session.add(Refund(payment_id=first_cash.id, bill_id=b1.id, amount_paise=3000, mode="cash", status="processed",
                       reason="test not done", branch_id=main.id, counter="main",
                       processed_at=datetime.now(timezone.utc)))
    session.commit()
    today = billing.today_in_india()

    main_main = day_closing.expected(main.id, "main", today)
    assert main_main.payments == {"cash": 20000, "card": 10000, "upi": 20000}
    assert main_main.advances == {"cash": 100000}
    assert main_main.refunds == {"cash": 3000}
    assert main_main.cash_paise == 20000 + 100000 - 3000
    assert (main_main.upi_paise, main_main.card_paise) == (20000, 10000)
    assert main_main.discounts_paise == 5000 and main_main.discount_bills == 1
    assert main_main.payment_count == 3

    main_c2 = day_closing.expected(main.id, "c2", today)
    assert main_c2.payments == {"cash": 35000} and main_c2.cash_paise == 35000 and main_c2.advances == {}

    jnr_main = day_closing.expected(jnr.id, "main", today)
    assert jnr_main.payments == {"cash": 15000, "upi": 20000} and jnr_main.discounts_paise == 0
    assert cash_payment.branch_id == jnr.id
    assert day_closing.counters(main.id, today) == ["c2", "main"]


def test_ist_day_boundaries(factory, session, lab):
    day = billing.today_in_india() - timedelta(days=1)
    bill = new_bill(factory, session, lab, lab["main"], ("TSH",))
    late = datetime(day.year, day.month, day.day, 23, 59, tzinfo=IST)
    next_morning = late + timedelta(minutes=2)  # 00:01 IST the next day
    pay(session, lab, bill, "cash", 10000, at=late)
    pay(session, lab, bill, "cash", 5000, at=next_morning)
    # 23:59 IST is 18:29 UTC: still the same Indian day although UTC says so too; 00:01 IST
    # is 18:31 UTC of the *previous* UTC date, and must count on the next Indian day.
    assert next_morning.astimezone(timezone.utc).date() == day
    assert day_closing.expected(lab["main"].id, "main", day).payments == {"cash": 10000}
    assert day_closing.expected(lab["main"].id, "main", day + timedelta(days=1)).payments == {"cash": 5000}


def test_denominations_arithmetic_and_bad_counts():
    counts, errors = day_closing.parse_denominations({"n2000": "1", "n500": "3", "n20": "2", "c20": "1", "c1": "7",
                                                      "n10": "", "c5": " 4 "})
    assert errors == {}
    assert day_closing.counted_paise(counts) == (2000 + 1500 + 40 + 20 + 7 + 20) * 100
    _counts, errors = day_closing.parse_denominations({"n500": "2.5", "n100": "-1", "c2": "१२", "c1": "999999"})
    assert set(errors) == {"n500", "n100", "c2", "c1"}


def test_sign_off_records_the_difference_once_and_shows_later_payments(factory, session, lab):
    main = lab["main"]
    bill = new_bill(factory, session, lab, main, ("TSH", "CREA"))  # 550
    pay(session, lab, bill, "cash", 25000)
    pay(session, lab, bill, "upi", 10000)
    today = billing.today_in_india()
    with acting(lab["org"]):
        closing = day_closing.sign_off(main, "main", today, denominations={"n100": 2, "n20": 2, "c2": 2},
                                       settled_upi_paise=10000, settled_card_paise=None, note="₹60 short, found later",
                                       actor_id=lab["clerk"].id)
    session.commit()
    assert closing.counted_cash_paise == 24400 and closing.difference_paise == -600
    assert closing.expected["cash_paise"] == 25000 and closing.settled == {"upi": 10000, "card": None}
    with acting(lab["org"]), pytest.raises(day_closing.AlreadyClosed):
        day_closing.sign_off(main, "main", today, denominations={}, settled_upi_paise=None, settled_card_paise=None,
                             note="", actor_id=lab["clerk"].id)
    session.rollback()
    assert session.execute(select(func.count(DayClosing.id))).scalar_one() == 1
    assert session.execute(select(AuditEvent).where(AuditEvent.action == "day_closing.signed_off")).scalar_one()
    # a payment after closing is still taken, and shows as the delta since closing
    pay(session, lab, bill, "cash", 5000)
    delta = day_closing.delta_since(closing)
    assert delta.payments == {"cash": 5000} and delta.cash_paise == 5000
    # another counter of the same branch closes on its own
    with acting(lab["org"]):
        day_closing.sign_off(main, "c2", today, denominations={}, settled_upi_paise=None, settled_card_paise=None,
                             note="", actor_id=lab["clerk"].id)


def test_a_future_day_cannot_be_closed(session, lab):
    with pytest.raises(day_closing.ClosingError):
        day_closing.sign_off(lab["main"], "main", billing.today_in_india() + timedelta(days=1), denominations={},
                             settled_upi_paise=None, settled_card_paise=None, note="", actor_id=lab["clerk"].id)


# --- pages -------------------------------------------------------------------------------

def test_closing_page_live_total_sign_off_and_summary(client, auth, factory, session, lab):
    bill = new_bill(factory, session, lab, lab["main"], ("TSH",))
    pay(session, lab, bill, "cash", 35000)
    auth.login(lab["clerk"].username, PASSWORD)
    page = client.get("/billing/closing", query_string={"branch_id": lab["main"].id})
    assert page.status_code == 200 and "₹350.00" in page.get_data(as_text=True)
    today = billing.today_in_india().isoformat()
    form = {"branch_id": lab["main"].id, "counter": "main", "date": today, "n200": "1", "n100": "1", "c20": "2"}
    live = client.post_form("/billing/closing/count", form, headers={"HX-Request": "true"})
    text = live.get_data(as_text=True)
    assert live.status_code == 200 and "₹340.00" in text and "-₹10.00" in text and "short" in text
    unconfirmed = client.post_form("/billing/closing", form)
    assert unconfirmed.status_code == 422 and "Tick the box" in unconfirmed.get_data(as_text=True)
    bad = client.post_form("/billing/closing", {**form, "n500": "x", "confirm": "yes"})
    assert bad.status_code == 422 and "whole number" in bad.get_data(as_text=True)
    assert session.execute(select(func.count(DayClosing.id))).scalar_one() == 0
    done = client.post_form("/billing/closing", {**form, "confirm": "yes", "settled_upi": "0", "note": "short ₹10"})
    assert done.status_code == 303
    closing = session.execute(select(DayClosing)).scalar_one()
    assert closing.difference_paise == -1000 and closing.counted_cash_paise == 34000
    again = client.post_form("/billing/closing", {**form, "confirm": "yes"})
    assert again.status_code == 422 and "already closed" in again.get_data(as_text=True)
    summary = client.get(f"/billing/closing/{closing.id}").get_data(as_text=True)
    assert "-₹10.00" in summary and "short ₹10" in summary
    pdf = client.get(f"/billing/closing/{closing.id}.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert "This day is closed" in client.get("/billing/closing", query_string={"branch_id": lab["main"].id}).get_data(as_text=True)


def test_another_orgs_closing_and_branch_are_404(client, auth, factory, session, lab):
    other = factory.org()
    other_clerk = factory.user(other, "billing")
    other_branch = session.execute(select(Branch).where(Branch.org_id == other.id)).scalar_one()
    with acting(other):
        closing = day_closing.sign_off(other_branch, "main", billing.today_in_india(), denominations={},
                                       settled_upi_paise=None, settled_card_paise=None, note="",
                                       actor_id=other_clerk.id)
    session.commit()
    security.use_tenant(session, lab["org"].id)
    auth.login(lab["clerk"].username, PASSWORD)
    assert client.get(f"/billing/closing/{closing.id}").status_code == 404
    assert client.get(f"/billing/closing/{closing.id}.pdf").status_code == 404
    assert client.get("/billing/closing", query_string={"branch_id": other_branch.id}).status_code == 404
    assert client.get("/billing/closing", query_string={"date": "yesterday"}).status_code == 422


def test_settled_upi_is_suggested_from_matched_statement_lines(factory, session, lab):
    from app.models import StatementImport, StatementLine

    bill = new_bill(factory, session, lab, lab["main"], ("TSH", "CREA"))
    matched = pay(session, lab, bill, "upi", 20000)
    pay(session, lab, bill, "upi", 5000)  # not on any statement yet
    imp = StatementImport(kind="bank_csv", filename="hdfc.csv", sha256="0" * 64, content="…", status="done")
    session.add(imp)
    session.flush()
    session.add(StatementLine(import_id=imp.id, source="bank_csv", line_no=1, fingerprint="f1",
                              txn_date=billing.today_in_india(), amount_paise=20000, reference=matched.rrn,
                              status="matched", payment_id=matched.id))
    session.commit()
    today = billing.today_in_india()
    assert day_closing.settled_from_statements(lab["main"].id, "main", today) == {"upi": 20000}
    assert day_closing.expected(lab["main"].id, "main", today).upi_paise == 25000
    assert day_closing.settled_from_statements(lab["main"].id, "c2", today) == {}
