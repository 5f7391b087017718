"""The A4 GST documents: a bill of supply (Rule 49), a tax invoice (Rule 46) with CGST+SGST or
IGST and, once e-invoiced, its IRN, AckNo/AckDt and signed QR, and a credit note (Rule 53)
naming the bill it credits. Text is read back out of the PDF with pypdf."""
from __future__ import annotations

import base64
import io
import re
from decimal import Decimal

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from app import audit
from app.models import Bill, Branch, EInvoice, Organization
from app.services import bill_documents, billing, credit_notes
from tests.factories import PASSWORD

GSTIN = "29AAGCB7383J1Z4"  # valid check character (india.md §2.1)
IRN = "e8eb5e92871af09ea35255b44610624b1e79184560ed5edc35e1228b18e09095"


@pytest.fixture
def lab(factory, session):  # type: ignore[no-untyped-def]
    org = factory.org(gstin=GSTIN, address_line1="12 MG Road", city="Bengaluru", pin_code="560001",
                      phone="080 4000 1234")
    factory.catalogue(org)
    clerk = factory.user(org, "billing")
    with audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id, actor_user_id=clerk.id)):
        yield {"org": org, "clerk": clerk, "factory": factory, "session": session}


def _pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(data))
    return re.sub(r"\s+", " ", " ".join(page.extract_text() or "" for page in reader.pages))


def _bills(lab, codes):  # type: ignore[no-untyped-def]
    order = lab["factory"].order(lab["org"], codes)
    return {b.doc_type: b for b in lab["session"].execute(select(Bill).where(Bill.order_id == order.id)).scalars()}


def _login(client, auth, lab) -> None:  # type: ignore[no-untyped-def]
    auth.login(lab["clerk"].username, PASSWORD)


@pytest.mark.parametrize("amount,words", [
    (0, "Rupees Zero Only"),
    (125050, "Rupees One Thousand Two Hundred Fifty and Fifty Paise Only"),
    (1234567800, "Rupees One Crore Twenty Three Lakh Forty Five Thousand Six Hundred Seventy Eight Only"),
    (1100, "Rupees Eleven Only"),
    (10000000001, "Rupees Ten Crore and One Paise Only"),
])
def test_amount_in_words_uses_the_indian_system(amount, words):  # type: ignore[no-untyped-def]
    assert bill_documents.amount_in_words(amount) == words


def test_bill_of_supply_pdf_has_the_rule_49_fields(lab, client, auth):  # type: ignore[no-untyped-def]
    bill = _bills(lab, ["CBC", "TSH"])["bill_of_supply"]
    _login(client, auth, lab)
    response = client.get(f"/billing/bills/{bill.id}/pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert f'bill-{bill.number.replace("/", "-")}.pdf' in response.headers["Content-Disposition"]
    text = _pdf_text(response.data)
    for expected in ("Lab", "Pvt Ltd", "12 MG Road", "Bengaluru", GSTIN,  # supplier name, address, GSTIN
                     "BILL OF SUPPLY", bill.number, bill.bill_date.strftime("%d-%m-%Y"),  # serial, date
                     bill.recipient_name, "Unregistered",  # recipient (and GSTIN if registered)
                     "999316", "Complete blood count", "TSH",  # SAC and description
                     "Taxable value (after discount)", "700.00",  # value after discount
                     "Rupees Seven Hundred Only", "Authorised signatory", "Karnataka (29)",
                     "Notification 12/2017"):
        assert expected.lower() in text.lower(), expected
    # An exempt supply carries no tax lines (the only "CGST" is the Rule's name).
    assert "SGST" not in text and "IGST" not in text and text.count("CGST") == text.count("CGST Rule")


def test_tax_invoice_pdf_has_the_rule_46_fields_intra_state(lab, client, auth):  # type: ignore[no-untyped-def]
    invoice = _bills(lab, ["CBC", "HOME"])["tax_invoice"]
    assert (invoice.cgst_paise, invoice.sgst_paise, invoice.total_paise) == (900, 900, 11800)
    _login(client, auth, lab)
    text = _pdf_text(client.get(f"/billing/bills/{invoice.id}/pdf").data)
    for expected in ("TAX INVOICE", invoice.number, GSTIN, "Place of supply", "Karnataka (29)", "998599",
                     "Home collection", "Taxable value (after discount)", "100.00", "CGST", "SGST", "9%",
                     "9.00", "118.00", "reverse charge", "Rupees One Hundred Eighteen Only", "Authorised signatory"):
        assert expected.lower() in text.lower(), expected
    assert "IGST" not in text and "IRN" not in text  # not e-invoiced yet


def test_tax_invoice_across_states_shows_igst_and_the_e_invoice(lab, client, auth):  # type: ignore[no-untyped-def]
    session = lab["session"]
    order = lab["factory"].order(lab["org"], ["HB"])
    branch = session.execute(select(Branch).where(Branch.code == "MAIN")).scalar_one()
    invoice = billing.build_bill(order, branch, "tax_invoice",
                                 [billing.LineDraft("Home collection", "998599", 10000, Decimal("18"))], 0,
                                 pos="27", recipient_name="Acme Hospital Pvt Ltd", recipient_gstin="27AAPFU0939F1ZV")
    session.add(EInvoice(bill_id=invoice.id, doc_type="INV", status="generated", local_irn=IRN, irn=IRN,
                         ack_no="112010036563310", ack_dt="2026-11-20 12:10:17",
                         signed_qr="eyJhbGciOiJSUzI1NiJ9.eyJkYXRhIjoie30iLCJpc3MiOiJOSUMifQ.c2lnbmF0dXJl"))
    session.commit()
    org = session.get(Organization, lab["org"].id)
    html = bill_documents.bill_html(org, invoice)
    qr = re.search(r'<img src="data:image/svg\+xml;base64,([^"]+)" alt="Signed QR code">', html)
    assert qr, "the signed QR is printed"
    svg = base64.b64decode(qr.group(1)).decode()
    assert 'xmlns="http://www.w3.org/2000/svg"' in svg and "<path" in svg  # a drawable image, not a blank
    _login(client, auth, lab)
    text = _pdf_text(client.get(f"/billing/bills/{invoice.id}/pdf").data)
    for expected in ("TAX INVOICE", "Maharashtra (27)", "27AAPFU0939F1ZV", "Acme Hospital Pvt Ltd", "IGST", "18%",
                     "18.00", "118.00", "Ack No", "112010036563310", "2026-11-20 12:10:17"):
        assert expected.lower() in text.lower(), expected
    assert IRN in text.replace(" ", "")
    assert "CGST" not in text


def test_credit_note_pdf_names_the_bill_it_credits(lab, client, auth):  # type: ignore[no-untyped-def]
    session = lab["session"]
    invoice = _bills(lab, ["CBC", "HOME"])["tax_invoice"]
    note = credit_notes.issue_credit_note(invoice, amount_paise=5900, reason="Home collection not done",
                                          actor_id=lab["clerk"].id)
    session.commit()
    _login(client, auth, lab)
    response = client.get(f"/billing/credit-notes/{note.id}/pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = _pdf_text(response.data)
    for expected in ("CREDIT NOTE", note.number, note.note_date.strftime("%d-%m-%Y"), GSTIN, invoice.number,
                     invoice.bill_date.strftime("%d-%m-%Y"), "Home collection not done", "998599",
                     "Taxable value credited", "50.00", "CGST credited", "4.50", "59.00",
                     "Rupees Fifty Nine Only", "Authorised signatory", "Karnataka (29)"):
        assert expected.lower() in text.lower(), expected
    # The bill's own PDF now says it was credited.
    assert "Credited by credit note" in _pdf_text(client.get(f"/billing/bills/{invoice.id}/pdf").data)


def test_cancelled_bill_pdf_says_so_and_other_labs_documents_are_not_found(lab, client, auth):  # type: ignore[no-untyped-def]
    session, factory = lab["session"], lab["factory"]
    bill = _bills(lab, ["CBC"])["bill_of_supply"]
    note = credit_notes.cancel_bill(bill, reason="Duplicate", actor_id=lab["clerk"].id)
    session.commit()
    _login(client, auth, lab)
    text = _pdf_text(client.get(f"/billing/bills/{bill.id}/pdf").data)
    assert "CANCELLED" in text and note.number in text

    other = factory.org()
    factory.catalogue(other)
    with audit.acting_as(audit.AuditContext(actor_label="test", org_id=other.id)):
        foreign = _bills({**lab, "org": other}, ["HOME"])["tax_invoice"]
        foreign_note = credit_notes.issue_credit_note(foreign, amount_paise=100, reason="x", actor_id=None)
        session.commit()
        ids = (foreign.id, foreign_note.id)
    assert client.get(f"/billing/bills/{ids[0]}/pdf").status_code == 404
    assert client.get(f"/billing/credit-notes/{ids[1]}/pdf").status_code == 404
