"""The accountant's CSV registers and the collections report: totals equal the lines (and the
database), amounts from integer paise, formula injection guarded, another org's data never
appears; and the export pages."""
from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app import audit, security
from app.models import Bill, Branch, Client, CreditNote, Payment, Refund
from app.services import accounting_exports as ex
from app.services import billing, orders
from tests.factories import PASSWORD


def acting(org):
    return audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id))


def make_lab(factory, session, *, evil_client=False):
    org = factory.org()
    factory.catalogue(org)
    clerk = factory.user(org, "billing")
    branch = session.execute(select(Branch).where(Branch.org_id == org.id)).scalar_one()
    client = None
    if evil_client:
        client = Client(org_id=org.id, code="EVIL", name="=HYPERLINK(\"http://x\")", gstin="29AAGCA4735R1ZX",
                        state_code="27")
        session.add(client)
        session.commit()
    return {"org": org, "clerk": clerk, "branch": branch, "client": client}


def order_and_pay(factory, session, lab, codes, payments, *, client=None):
    patient = factory.patient(lab["org"])
    security.use_tenant(session, lab["org"].id)
    with acting(lab["org"]):
        _order, bills = orders.create_order(patient, lab["branch"], orders.OrderRequest(
            codes=codes, client_id=client.id if client else None), created_by_id=None, discount_limit_percent=100)
        for mode, amount in payments:
            reference = {"cash": None, "card": "-2+3", "upi": "412345678901"}[mode]
            billing.record_payment(bills[0], mode=mode, amount_paise=amount, reference=reference,
                                   received_by_id=lab["clerk"].id)
    session.commit()
    return bills


def read(register: ex.Register) -> list[list[str]]:
    text = "".join(register.lines())
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def paise(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    whole, fraction = text.lstrip("-").split(".")
    return sign * (int(whole) * 100 + int(fraction))


@pytest.mark.parametrize("value, text", [(0, "0.00"), (5, "0.05"), (-5, "-0.05"), (123456, "1234.56"),
                                         (10**12 + 1, "10000000000.01"), (None, "0.00")])
def test_rupees_from_paise_by_integer_arithmetic(value, text):
    assert ex.rupees(value) == text


@pytest.mark.parametrize("value, safe", [("=1+2", "'=1+2"), ("+91", "'+91"), ("-x", "'-x"), ("@SUM(A1)", "'@SUM(A1)"),
                                         ("\tcmd", "'\tcmd"), ("Asha", "Asha"), (None, ""), ("a=b", "a=b")])
def test_formula_cells_are_guarded(value, safe):
    assert ex.safe_text(value) == safe


def test_bill_register_totals_equal_lines_and_database_and_skip_other_orgs(factory, session):
    other = make_lab(factory, session)
    order_and_pay(factory, session, other, ["TSH"], [("cash", 35000)])  # must never show
    lab = make_lab(factory, session, evil_client=True)
    order_and_pay(factory, session, lab, ["TSH", "HOME"], [("cash", 10000)])  # bill of supply + tax invoice
    order_and_pay(factory, session, lab, ["CREA"], [("upi", 20000)], client=lab["client"])  # IGST (state 27)
    order_and_pay(factory, session, lab, ["HOME"], [], client=lab["client"])
    security.use_tenant(session, lab["org"].id)
    today = billing.today_in_india()
    rows = read(ex.bill_register(today, today))
    header, lines, total = rows[0], rows[1:-1], rows[-1]
    assert header == ex.BILL_HEADER and total[0] == "TOTAL"
    assert len(lines) == session.execute(select(func.count(Bill.id))).scalar_one() == 4
    for column in ("Taxable value", "CGST", "SGST", "IGST", "Total", "Credited", "Paid", "Due"):
        i = header.index(column)
        assert paise(total[i]) == sum(paise(line[i]) for line in lines), column
    db_total, db_igst = session.execute(select(func.sum(Bill.total_paise), func.sum(Bill.igst_paise))).one()
    assert paise(total[header.index("Total")]) == db_total and paise(total[header.index("IGST")]) == db_igst > 0
    recipients = {line[header.index("Recipient")] for line in lines}
    assert "'=HYPERLINK(\"http://x\")" in recipients and not any(r.startswith("=") for r in recipients)
    assert all(line[0].startswith("MAIN/") for line in lines)
    assert len(read(ex.bill_register(today + timedelta(days=1), today + timedelta(days=2)))) == 2  # header + TOTAL


def test_payment_register_and_collections_agree(factory, session):
    other = make_lab(factory, session)
    order_and_pay(factory, session, other, ["TSH"], [("cash", 35000)])
    lab = make_lab(factory, session)
    order_and_pay(factory, session, lab, ["TSH"], [("cash", 15000), ("card", 20000)])
    order_and_pay(factory, session, lab, ["CREA"], [("upi", 20000)])
    security.use_tenant(session, lab["org"].id)
    today = billing.today_in_india()
    f = ex.PaymentFilter(today, today)
    rows = read(ex.payment_register(f))
    header, lines, total = rows[0], rows[1:-1], rows[-1]
    amount = header.index("Amount")
    assert len(lines) == 3 and paise(total[amount]) == sum(paise(l[amount]) for l in lines) == 55000
    assert {l[header.index("Received by")] for l in lines} == {"Test Billing"}
    card = next(l for l in lines if l[header.index("Mode")] == "card")
    assert card[header.index("Reference")] == "'-2+3"  # a reference typed as a formula is guarded
    report = ex.collections(f)
    assert report.by_mode == {"cash": 15000, "card": 20000, "upi": 20000}
    assert report.total_paise == 55000 == sum(r.amount_paise for r in report.rows) == sum(report.by_user.values())
    assert report.by_branch == {"MAIN": 55000} and report.count == 3
    only_cash = ex.collections(ex.PaymentFilter(today, today, mode="cash", user_id=lab["clerk"].id))
    assert only_cash.total_paise == 15000
    csv_rows = read(ex.collections_csv(f))
    assert paise(csv_rows[-1][4]) == sum(paise(r[4]) for r in csv_rows[1:-1]) == 55000


def test_credit_note_and_refund_registers(factory, session):
    lab = make_lab(factory, session)
    [bill] = order_and_pay(factory, session, lab, ["TSH"], [("cash", 35000)])
    payment = session.execute(select(Payment).where(Payment.bill_id == bill.id)).scalar_one()
    today = billing.today_in_india()
    session.add_all([
        CreditNote(bill_id=bill.id, branch_id=bill.branch_id, number="MAIN/C26/000001", fy=bill.fy, note_date=today,
                   reason="+ wrong test", taxable_paise=10000, total_paise=10000),
        CreditNote(bill_id=bill.id, branch_id=bill.branch_id, number="MAIN/C26/000002", fy=bill.fy, note_date=today,
                   reason="duplicate", taxable_paise=5000, total_paise=5000),
        Refund(payment_id=payment.id, bill_id=bill.id, amount_paise=10000, mode="cash", status="processed",
               reason="wrong test", branch_id=bill.branch_id, counter="main"),
        Refund(payment_id=payment.id, bill_id=bill.id, amount_paise=2000, mode="cash", status="pending_approval",
               reason="@later", branch_id=bill.branch_id, counter="main"),
    ])
    session.commit()
    notes = read(ex.credit_note_register(today, today))
    assert [n[0] for n in notes[1:-1]] == ["MAIN/C26/000001", "MAIN/C26/000002"]
    assert notes[1][notes[0].index("Reason")] == "'+ wrong test"
    assert paise(notes[-1][notes[0].index("Total")]) == 15000
    refunds = read(ex.refund_register(today, today))
    assert len(refunds) == 4 and paise(refunds[-1][refunds[0].index("Amount")]) == 10000  # processed only
    assert refunds[2][refunds[0].index("Reason")] == "'@later"


def test_range_is_checked():
    today = billing.today_in_india()
    with pytest.raises(ex.ExportError):
        ex.bill_register(today, today - timedelta(days=1))
    with pytest.raises(ex.ExportError):
        ex.bill_register(today - timedelta(days=500), today)


# --- pages -------------------------------------------------------------------------------

def test_export_pages_stream_csv_and_refuse_bad_input(client, auth, factory, session):
    # buffered=True: LisClient runs each request in a fresh contextvars.Context, and werkzeug
    # reads the first chunk of a streamed body inside it and the rest outside; a WSGI server
    # iterates the whole body in one context.
    other = make_lab(factory, session)
    other_branch = other["branch"]
    lab = make_lab(factory, session)
    order_and_pay(factory, session, lab, ["TSH"], [("cash", 35000)])
    auth.login(lab["clerk"].username, PASSWORD)
    assert client.get("/billing/exports").status_code == 200
    today = billing.today_in_india().isoformat()
    for name in ("bills", "payments", "credit-notes", "refunds"):
        response = client.get(f"/billing/exports/{name}.csv", query_string={"from": today, "to": today},
                              buffered=True)
        assert response.status_code == 200 and response.mimetype == "text/csv", name
        assert response.data.startswith("\ufeff".encode()) and "attachment" in response.headers["Content-Disposition"]
    bills_csv = client.get("/billing/exports/bills.csv", query_string={"from": today, "to": today},
                           buffered=True).get_data(as_text=True)
    assert "350.00" in bills_csv
    assert client.get("/billing/exports/bills.csv", query_string={"from": "junk"}).status_code == 422
    assert client.get("/billing/exports/bills.csv", query_string={"from": today, "to": "2000-01-01"}).status_code == 422
    assert client.get("/billing/exports/secrets.csv").status_code == 404
    assert client.get("/billing/exports/bills.csv", query_string={"branch_id": other_branch.id}).status_code == 404
    report = client.get("/billing/collections", query_string={"from": today, "to": today})
    assert report.status_code == 200 and "₹350.00" in report.get_data(as_text=True)
    as_csv = client.get("/billing/collections", query_string={"from": today, "to": today, "format": "csv"},
                        buffered=True)
    assert as_csv.mimetype == "text/csv" and "TOTAL" in as_csv.get_data(as_text=True)
    assert client.get("/billing/collections", query_string={"from": "31-12-2026"}).status_code == 422
