"""B2B accounts: on-account bills, credit limit, ageing, receipts allocated oldest first,
the monthly statement, advances; and the billing portal's accounts pages."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from app import audit, security
from app.models import AuditEvent, Bill, Branch, Client, ClientReceipt, CreditNote, Payment
from app.services import accounts, billing, orders
from tests.factories import PASSWORD


@pytest.fixture
def acme(factory, session):
    """An org with a catalogue, a billing clerk and a hospital client on 30-day terms."""
    org = factory.org()
    cat = factory.catalogue(org)
    clerk = factory.user(org, "billing")
    client = Client(org_id=org.id, code="APOLLO", name="Apollo Clinic", gstin="29AAGCA4735R1ZX", state_code="29",
                    credit_limit_paise=0, credit_days=30)
    session.add(client)
    session.commit()
    branch = session.execute(select(Branch).where(Branch.org_id == org.id)).scalar_one()
    return {"org": org, "clerk": clerk, "client": client, "branch": branch, **cat}


def acting(org, user=None):
    return audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id,
                                              actor_user_id=user.id if user else None))


def on_account_order(factory, session, env, codes, *, bill_date: date | None = None):
    """An order for the client (its price list applies), billed on account by ordering itself
    (billing.bills_for_order); bill_date backdates it, with its due date, for ageing."""
    org, client = env["org"], env["client"]
    patient = factory.patient(org)
    security.use_tenant(session, org.id)
    with acting(org):
        order, bills = orders.create_order(patient, env["branch"], orders.OrderRequest(codes=codes, client_id=client.id),
                                           created_by_id=None, discount_limit_percent=100)
        if bill_date is not None:
            for bill in bills:
                bill.bill_date = bill_date
                bill.due_date = bill_date + timedelta(days=client.credit_days)
    session.commit()
    return order, bills


def test_client_orders_are_billed_on_account_with_a_due_date(factory, session, acme):
    acme["client"].credit_days = 45
    _order, bills = on_account_order(factory, session, acme, ["CREA"])
    bill = bills[0]
    assert bill.client_id == acme["client"].id and bill.on_account
    assert bill.due_date == bill.bill_date + timedelta(days=45)
    assert bill.recipient_name == "Apollo Clinic"
    assert accounts.outstanding_paise(acme["client"]) == 20000
    assert session.execute(select(AuditEvent).where(AuditEvent.action == "bill.on_account",
                                                    AuditEvent.entity_id == bill.number)).scalar_one()


def test_credit_limit_refuses_an_order_past_the_limit(factory, session, acme):
    client = acme["client"]
    client.credit_limit_paise = 50000
    session.commit()
    on_account_order(factory, session, acme, ["CREA"])  # ₹200 outstanding
    accounts.check_credit(client, 30000)  # exactly at the limit: allowed
    with pytest.raises(accounts.CreditLimitExceeded) as refused:
        accounts.check_credit(client, 30001)
    assert "credit limit" in refused.value.message and "₹500.00" in refused.value.message
    assert refused.value.field == "client_id"
    client.credit_limit_paise = 0  # no limit agreed
    accounts.check_credit(client, 10**9)


def test_the_ordering_hook_checks_the_limit_before_billing_on_account(factory, session, acme):
    client = acme["client"]
    client.credit_limit_paise = 50000
    session.commit()
    _o, bills = on_account_order(factory, session, acme, ["TSH", "HOME"])  # 350 + 118 (GST) = 468
    assert all(b.on_account for b in bills) and accounts.outstanding_paise(client) == 46800
    with pytest.raises(orders.OrderInvalid) as refused:  # 80 more: 548 > 500
        on_account_order(factory, session, acme, ["GLUF"])
    assert "over its credit limit" in refused.value.errors["client"][0]
    session.rollback()
    security.use_tenant(session, acme["org"].id)
    assert accounts.outstanding_paise(client) == 46800
    assert session.execute(select(Bill).where(Bill.client_id == client.id)).scalars().all() == bills
    accounts.bill_on_account(bills, None)  # a walk-in patient's order: nothing to do


def test_unapplied_receipt_money_counts_against_exposure(factory, session, acme):
    client = acme["client"]
    client.credit_limit_paise = 30000
    with acting(acme["org"]):
        accounts.record_client_receipt(client, mode="neft", reference="UTIBN12345678901", amount_paise=25000,
                                       received_on=billing.today_in_india(), actor_id=None)
    session.commit()
    accounts.check_credit(client, 55000)  # ₹250 on account already paid in
    with pytest.raises(accounts.CreditLimitExceeded):
        accounts.check_credit(client, 55001)


def test_ageing_buckets_by_bill_date_and_overdue(factory, session, acme):
    today = billing.today_in_india()
    for days_ago, code in ((5, "GLUF"), (40, "CREA"), (75, "TSH"), (120, "HB")):
        on_account_order(factory, session, acme, [code], bill_date=today - timedelta(days=days_ago))
    [row] = [b for b in accounts.balances(today) if b.client.id == acme["client"].id]
    assert row.buckets == {"0-30": 8000, "31-60": 20000, "61-90": 35000, "90+": 15000}
    assert row.outstanding_paise == 78000 == sum(row.buckets.values())
    assert row.overdue_paise == 20000 + 35000 + 15000  # 30-day terms: the 5-day-old bill is not yet due
    assert row.open_bills == 4


def test_receipt_is_allocated_oldest_first_and_the_remainder_waits(factory, session, acme):
    today = billing.today_in_india()
    client = acme["client"]
    _o1, [old] = on_account_order(factory, session, acme, ["TSH"], bill_date=today - timedelta(days=20))  # 350
    _o2, [new] = on_account_order(factory, session, acme, ["CREA"], bill_date=today - timedelta(days=2))  # 200
    with acting(acme["org"], acme["clerk"]):
        receipt = accounts.record_client_receipt(client, mode="neft", reference="hdfc r5 2026 1122 0001",
                                                 amount_paise=60000, received_on=today, actor_id=acme["clerk"].id)
    session.commit()
    session.refresh(old), session.refresh(new)
    assert receipt.reference == "HDFCR5202611220001"
    assert (old.status, old.due_paise) == ("paid", 0)
    assert (new.status, new.due_paise) == ("paid", 0)
    assert receipt.allocated_paise == 55000  # ₹50 left on the receipt
    payments = session.execute(select(Payment).where(Payment.client_receipt_id == receipt.id)
                               .order_by(Payment.id)).scalars().all()
    assert [(p.bill_id, p.amount_paise, p.mode, p.counter) for p in payments] == [
        (old.id, 35000, "neft", "accounts"), (new.id, 20000, "neft", "accounts")]
    # the next on-account bill takes the ₹50 left over as soon as it is marked on account
    _o3, [third] = on_account_order(factory, session, acme, ["GLUF"])  # 80
    session.refresh(receipt)
    assert receipt.allocated_paise == 60000
    assert (third.paid_paise, third.status, third.due_paise) == (5000, "partly_paid", 3000)


def test_partial_receipt_pays_the_oldest_bill_first(factory, session, acme):
    today = billing.today_in_india()
    _o1, [old] = on_account_order(factory, session, acme, ["TSH"], bill_date=today - timedelta(days=20))
    _o2, [new] = on_account_order(factory, session, acme, ["CREA"], bill_date=today - timedelta(days=2))
    with acting(acme["org"]):
        accounts.record_client_receipt(acme["client"], mode="cheque", reference="004512", amount_paise=10000,
                                       received_on=today, actor_id=None)
    session.commit()
    assert (old.paid_paise, old.status) == (10000, "partly_paid")
    assert (new.paid_paise, new.status) == (0, "open")


def test_duplicate_receipt_reference_is_refused_and_nothing_changes(factory, session, acme):
    on_account_order(factory, session, acme, ["TSH"])
    today = billing.today_in_india()
    with acting(acme["org"]):
        accounts.record_client_receipt(acme["client"], mode="upi", reference="412345678901", amount_paise=1000,
                                       received_on=today, actor_id=None)
        session.commit()
        with pytest.raises(accounts.AccountError) as dup:
            accounts.record_client_receipt(acme["client"], mode="upi", reference="4123 4567 8901",
                                           amount_paise=1000, received_on=today, actor_id=None)
    assert dup.value.field == "reference" and "already recorded" in dup.value.message
    session.rollback()
    assert session.execute(select(func.count(ClientReceipt.id))).scalar_one() == 1
    assert session.execute(select(func.sum(Payment.amount_paise))).scalar_one() == 1000


@pytest.mark.parametrize("mode, reference, amount, received_on, field", [
    ("cash", "X", 100, 0, "mode"),
    ("upi", "12345", 100, 0, "reference"),
    ("cheque", "12AB56", 100, 0, "reference"),
    ("neft", "UTR1", 100, 0, "reference"),
    ("neft", "UTIBN12345678901", 0, 0, "amount"),
    ("neft", "UTIBN12345678901", 100, -1, "received_on"),
])
def test_bad_receipts_get_a_clear_message(session, acme, mode, reference, amount, received_on, field):
    day = billing.today_in_india() - timedelta(days=received_on)
    with pytest.raises(accounts.AccountError) as err:
        accounts.record_client_receipt(acme["client"], mode=mode, reference=reference, amount_paise=amount,
                                       received_on=day, actor_id=None)
    assert err.value.field == field
    assert session.execute(select(func.count(ClientReceipt.id))).scalar_one() == 0


def test_statement_balances_opening_plus_bills_less_credits_and_receipts(factory, session, acme):
    client = acme["client"]
    today = billing.today_in_india()
    this_month = today.replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    _o, [earlier] = on_account_order(factory, session, acme, ["TSH"], bill_date=last_month)  # 350 last month
    _o, [bill1] = on_account_order(factory, session, acme, ["CREA"], bill_date=this_month)  # 200
    _o, [bill2] = on_account_order(factory, session, acme, ["GLUF"], bill_date=this_month)  # 80
    with acting(acme["org"]):
        # ₹100 received last month (allocated to the earlier bill), ₹150 this month
        accounts.record_client_receipt(client, mode="neft", reference="UTIBN00000000001", amount_paise=10000,
                                       received_on=last_month, actor_id=None)
        accounts.record_client_receipt(client, mode="cheque", reference="000777", amount_paise=15000,
                                       received_on=this_month, actor_id=None)
        # a credit note of ₹30 on bill2 this month
        bill2 = billing.lock_bill(bill2.id)
        bill2.credited_paise += 3000
        session.add(CreditNote(bill_id=bill2.id, branch_id=bill2.branch_id, number="MAIN/C26/000001", fy=bill2.fy,
                               note_date=this_month, reason="Test not done", taxable_paise=3000, total_paise=3000))
        billing.settle_status(bill2)
    session.commit()
    st = accounts.statement(client, this_month.strftime("%Y-%m"))
    assert st.opening_paise == 35000 - 10000
    assert st.bills_paise == 28000 and st.credit_notes_paise == 3000 and st.receipts_paise == 15000
    assert st.closing_paise == st.opening_paise + st.bills_paise - st.credit_notes_paise - st.receipts_paise == 35000
    assert st.entries[-1].balance_paise == st.closing_paise
    assert {e.kind for e in st.entries} == {"bill", "credit_note", "receipt"}
    # the closing balance is what the client owes now, less receipt money not yet allocated
    outstanding = accounts.outstanding_paise(client) - accounts.unapplied_receipts_paise(client)
    assert st.closing_paise == outstanding
    # last month's statement closes where this one opens
    assert accounts.statement(client, last_month.strftime("%Y-%m")).closing_paise == st.opening_paise


def test_opening_balance_sums_every_kind_of_entry_like_the_ledger(factory, session, acme):
    """The opening balance is summed in the database; the month's entries are listed one by
    one. Entries of every kind dated last month must give the same figure both ways."""
    from datetime import datetime

    from app.models import Refund
    from app.services.billing import IST

    client = acme["client"]
    this_month = billing.today_in_india().replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    last_month_noon = datetime(last_month.year, last_month.month, 2, 12, 0, tzinfo=IST)
    _o, [bill] = on_account_order(factory, session, acme, ["TSH", "CREA"], bill_date=last_month)  # 550
    with acting(acme["org"]):
        cash = billing.record_payment(bill, mode="cash", amount_paise=10000, reference=None, received_by_id=None)
        cash.received_at = last_month_noon
        session.add(Refund(payment_id=cash.id, bill_id=bill.id, amount_paise=2500, mode="cash", status="processed",
                           reason="overpaid", processed_at=last_month_noon))
        session.add(CreditNote(bill_id=bill.id, branch_id=bill.branch_id, number="MAIN/C26/000009", fy=bill.fy,
                               note_date=last_month, reason="Test not done", taxable_paise=4000, total_paise=4000))
        deposit = accounts.take_advance(client=client, branch=acme["branch"], mode="neft", amount_paise=7000,
                                        reference="SBIN0000000999", actor_id=None)
        deposit.received_at = last_month_noon
        accounts.record_client_receipt(client, mode="cheque", reference="123456", amount_paise=3000,
                                       received_on=last_month, actor_id=None)
    session.commit()
    previous = accounts.statement(client, last_month.strftime("%Y-%m"))
    assert {e.kind for e in previous.entries} == {"bill", "payment", "refund", "credit_note", "advance", "receipt"}
    assert previous.closing_paise == 55000 - 10000 + 2500 - 4000 - 7000 - 3000
    assert accounts.statement(client, this_month.strftime("%Y-%m")).opening_paise == previous.closing_paise


def test_statement_month_is_validated(acme):
    with pytest.raises(accounts.AccountError):
        accounts.statement(acme["client"], "2026-13")


# --- advances ----------------------------------------------------------------------------

def test_advance_is_numbered_and_applied_within_balance_and_due(factory, session, acme):
    patient = factory.patient(acme["org"])
    security.use_tenant(session, acme["org"].id)
    with acting(acme["org"]):
        advance = accounts.take_advance(patient=patient, branch=acme["branch"], mode="cash", amount_paise=30000,
                                        reference=None, actor_id=acme["clerk"].id)
        second = accounts.take_advance(patient=patient, branch=acme["branch"], mode="upi", amount_paise=10000,
                                       reference="612345678901", actor_id=None)
        fy = billing.financial_year(billing.today_in_india())
        assert advance.number == f"MAIN/A{fy[2:4]}/000001" and second.number == f"MAIN/A{fy[2:4]}/000002"
        order, [bill] = orders.create_order(patient, acme["branch"], orders.OrderRequest(codes=["TSH"]),
                                            created_by_id=None, discount_limit_percent=0)  # ₹350
        with pytest.raises(accounts.AccountError, match="only ₹300.00 left"):
            accounts.apply_advance(advance, bill, 30001)
        payment = accounts.apply_advance(advance, bill, 30000, actor_id=acme["clerk"].id)
        assert (payment.mode, payment.advance_id, payment.amount_paise) == ("advance", advance.id, 30000)
        assert advance.used_paise == 30000 and advance.balance_paise == 0
        assert bill.due_paise == 5000
        with pytest.raises(accounts.AccountError, match="more than the amount due"):
            accounts.apply_advance(second, bill, 5001)
        accounts.apply_advance(second, bill, 5000)
        assert bill.status == "paid" and second.balance_paise == 5000
    session.commit()
    assert session.execute(select(func.count(AuditEvent.id)).where(AuditEvent.action == "advance.applied")).scalar_one() == 2


def test_an_advance_pays_only_its_own_patients_bills(factory, session, acme):
    alice, bob = factory.patient(acme["org"]), factory.patient(acme["org"])
    security.use_tenant(session, acme["org"].id)
    with acting(acme["org"]):
        advance = accounts.take_advance(patient=alice, branch=acme["branch"], mode="cash", amount_paise=10000,
                                        reference=None, actor_id=None)
        _order, [bill] = orders.create_order(bob, acme["branch"], orders.OrderRequest(codes=["GLUF"]),
                                             created_by_id=None, discount_limit_percent=0)
        with pytest.raises(accounts.AccountError, match="another patient"):
            accounts.apply_advance(advance, bill, 1000)
    assert bill.paid_paise == 0 and advance.used_paise == 0


def test_client_deposit_pays_client_bills_and_shows_on_the_statement(factory, session, acme):
    client = acme["client"]
    with acting(acme["org"]):
        deposit = accounts.take_advance(client=client, branch=acme["branch"], mode="neft", amount_paise=50000,
                                        reference="SBIN0000000123", actor_id=None)
    _o, [bill] = on_account_order(factory, session, acme, ["TSH"])
    with acting(acme["org"]):
        accounts.apply_advance(deposit, bill, 35000)
    session.commit()
    st = accounts.statement(client)
    assert st.closing_paise == 35000 - 50000  # the client is ₹150 in credit
    [row] = accounts.balances(client_id=client.id)
    assert row.advance_paise == 15000 and row.outstanding_paise == 0


# --- pages -------------------------------------------------------------------------------

def login(auth, user):
    auth.login(user.username, PASSWORD)


def test_accounts_pages_show_ageing_statement_and_take_a_receipt(client, auth, factory, session, acme):
    today = billing.today_in_india()
    on_account_order(factory, session, acme, ["TSH"], bill_date=today - timedelta(days=40))
    login(auth, acme["clerk"])
    page = client.get("/billing/accounts").get_data(as_text=True)
    assert "Apollo Clinic" in page and "₹350.00" in page
    cid = acme["client"].id
    assert "₹350.00" in client.get(f"/billing/accounts/{cid}").get_data(as_text=True)
    bad = client.post_form(f"/billing/accounts/{cid}/receipts", {"mode": "neft", "reference": "UTR1",
                                                                 "amount": "100", "received_on": today.isoformat()})
    assert bad.status_code == 422 and "8–22 letters" in bad.get_data(as_text=True)
    fragment = client.post_form(f"/billing/accounts/{cid}/receipts", {"mode": "upi", "reference": "12",
                                                                      "amount": "100"}, headers={"HX-Request": "true"})
    text = fragment.get_data(as_text=True)
    assert fragment.status_code == 422 and "12-digit" in text and 'id="receipt-form"' in text and "<html" not in text
    assert session.execute(select(func.count(ClientReceipt.id))).scalar_one() == 0
    bad_amount = client.post_form(f"/billing/accounts/{cid}/receipts", {
        "mode": "neft", "reference": "UTIBN12345678901", "amount": "12.345", "received_on": today.isoformat()})
    assert bad_amount.status_code == 422 and "two decimals" in bad_amount.get_data(as_text=True)
    ok = client.post_form(f"/billing/accounts/{cid}/receipts", {"mode": "neft", "reference": "UTIBN12345678901",
                                                                "amount": "400", "received_on": today.isoformat()})
    assert ok.status_code == 303
    receipt = session.execute(select(ClientReceipt)).scalar_one()
    assert (receipt.amount_paise, receipt.allocated_paise) == (40000, 35000)
    statement = client.get(f"/billing/accounts/{cid}/statement", query_string={"month": today.strftime("%Y-%m")})
    text = statement.get_data(as_text=True)
    assert statement.status_code == 200 and "UTIBN12345678901" in text and "Closing balance" in text
    pdf = client.get(f"/billing/accounts/{cid}/statement.pdf", query_string={"month": today.strftime("%Y-%m")})
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert client.get(f"/billing/accounts/{cid}/statement", query_string={"month": "junk"}).status_code == 422


def test_another_orgs_client_is_404_and_other_roles_are_refused(client, auth, factory, session, acme):
    other = factory.org()
    foreign = Client(org_id=other.id, code="XYZ", name="Other Lab Client")
    session.add(foreign)
    session.commit()
    login(auth, acme["clerk"])
    assert client.get(f"/billing/accounts/{foreign.id}").status_code == 404
    assert client.get(f"/billing/accounts/{foreign.id}/statement.pdf").status_code == 404
    assert client.post_form(f"/billing/accounts/{foreign.id}/receipts", {"mode": "neft"}).status_code == 404
    assert "Other Lab Client" not in client.get("/billing/accounts").get_data(as_text=True)
    auth.logout()
    security.use_tenant(session, acme["org"].id)
    desk = factory.user(acme["org"], "reception")
    login(auth, desk)
    assert client.get("/billing/accounts").status_code in (302, 403)


def test_advances_page_takes_and_applies_an_advance(client, auth, factory, session, acme):
    patient = factory.patient(acme["org"])
    security.use_tenant(session, acme["org"].id)
    with acting(acme["org"]):
        _order, [bill] = orders.create_order(patient, acme["branch"], orders.OrderRequest(codes=["CREA"]),
                                             created_by_id=None, discount_limit_percent=0)
    session.commit()
    login(auth, acme["clerk"])
    assert client.get("/billing/advances").status_code == 200
    bad = client.post_form("/billing/advances", {"holder": "patient", "mrn": patient.mrn, "mode": "upi",
                                                 "amount": "500", "reference": "123"})
    assert bad.status_code == 422 and "12-digit" in bad.get_data(as_text=True)
    ok = client.post_form("/billing/advances", {"holder": "patient", "mrn": patient.mrn, "mode": "cash",
                                                "amount": "500"})
    assert ok.status_code == 303
    advance = accounts.advances()[0][0]
    too_much = client.post_form(f"/billing/advances/{advance.id}/apply", {"bill": bill.number, "amount": "250"})
    assert too_much.status_code == 422 and "more than the amount due" in too_much.get_data(as_text=True)
    applied = client.post_form(f"/billing/advances/{advance.id}/apply", {"bill": bill.number, "amount": "200"})
    assert applied.status_code == 303
    session.expire_all()
    assert session.get(Bill, bill.id).status == "paid"


# --- concurrency: real commits from two connections ----------------------------------------

def test_two_clerks_drawing_one_advance_at_once_never_overdraw_it(app):
    """Each thread has its own connection and commits for real (an org made for this test):
    the advance row lock makes the second clerk see what the first one used."""
    import threading
    import uuid

    from app.extensions import db
    from app.models import Advance, Patient
    from tests.factories import Factory

    with app.app_context():
        f = Factory(db.session)
        org = f.org(code="adv" + uuid.uuid4().hex[:8])
        f.catalogue(org)
        patient = f.patient(org)
        branch = db.session.execute(select(Branch)).scalar_one()
        with acting(org):
            advance = accounts.take_advance(patient=patient, branch=branch, mode="cash", amount_paise=30000,
                                            reference=None, actor_id=None)
            bill_ids = [orders.create_order(patient, branch, orders.OrderRequest(codes=["TSH"]), created_by_id=None,
                                            discount_limit_percent=0)[1][0].id for _ in range(2)]
        db.session.commit()
        org_id, advance_id, patient_id = org.id, advance.id, patient.id
        db.session.remove()

    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def clerk(bill_id: int) -> None:
        with app.app_context():
            security.use_tenant(db.session, org_id)
            with audit.acting_as(audit.AuditContext(actor_label="test", org_id=org_id)):
                adv = db.session.get(Advance, advance_id)
                bill = db.session.get(Bill, bill_id)
                barrier.wait()
                try:
                    accounts.apply_advance(adv, bill, 20000)
                    db.session.commit()
                    outcomes.append("applied")
                except accounts.AccountError as err:
                    db.session.rollback()
                    outcomes.append(err.message)
            db.session.remove()

    threads = [threading.Thread(target=clerk, args=(bid,)) for bid in bill_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["The advance has only ₹100.00 left.", "applied"]
    with app.app_context():
        security.use_tenant(db.session, org_id)
        advance = db.session.get(Advance, advance_id)
        drawn = db.session.execute(select(func.sum(Payment.amount_paise)).where(Payment.advance_id == advance_id)).scalar()
        assert advance.used_paise == drawn == 20000
        assert db.session.get(Patient, patient_id) is not None
        db.session.remove()


def test_reception_bills_an_order_to_a_client_on_account_or_refuses_past_the_limit(client, auth, factory, session,
                                                                                   acme):
    """The desk's "Bill to" choice: the client's order goes on its account; past the credit
    limit the order form says so and nothing is created."""
    from tests.factories import PASSWORD

    desk = factory.user(acme["org"], "reception")
    patient = factory.patient(acme["org"])
    auth.login(desk.username, PASSWORD)
    form = client.get(f"/reception/patients/{patient.mrn}/orders/new").get_data(as_text=True)
    assert "Bill to" in form and "Apollo Clinic (on account)" in form
    ok = client.post_form(f"/reception/patients/{patient.mrn}/orders",
                          {"tests": "CREA", "priority": "routine", "client_id": str(acme["client"].id)})
    assert ok.status_code in (200, 303)
    security.use_tenant(session, acme["org"].id)
    [bill] = session.execute(select(Bill).where(Bill.client_id == acme["client"].id)).scalars().all()
    assert bill.on_account and bill.recipient_name == "Apollo Clinic"
    acme["client"].credit_limit_paise = 20100  # ₹200 used, ₹1 left
    session.commit()
    refused = client.post_form(f"/reception/patients/{patient.mrn}/orders",
                               {"tests": "CREA", "priority": "routine", "client_id": str(acme["client"].id)})
    assert refused.status_code == 422 and "over its credit limit" in refused.get_data(as_text=True)
    security.use_tenant(session, acme["org"].id)
    assert len(session.execute(select(Bill).where(Bill.client_id == acme["client"].id)).scalars().all()) == 1
    unknown = client.post_form(f"/reception/patients/{patient.mrn}/orders",
                               {"tests": "CREA", "priority": "routine", "client_id": "999999"})
    assert unknown.status_code == 422 and "Choose a client from the list" in unknown.get_data(as_text=True)
