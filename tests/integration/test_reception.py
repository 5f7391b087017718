"""The reception desk: patients, duplicates, search, orders, tube plan, bills, payments,
labels and receipts — through the pages, as a receptionist uses them."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from app.models import AuditEvent, Bill, Order, Patient, Payment, Sample
from app.services import identifiers
from tests.factories import PASSWORD

ASHA = {"name": "Asha Rao", "sex": "female", "dob": "1990-05-17", "mobile": "98765 43210", "pin_code": "560038",
        "state_code": "29"}


@pytest.fixture
def desk(client, auth, factory):
    org = factory.org()
    cat = factory.catalogue(org)
    user = factory.user(org, "reception", branch=org.branches[0])
    auth.login(user.username, PASSWORD)
    return {"org": org, "user": user, **cat}


def register(client, **changes):
    return client.post_form("/reception/patients/new", {**ASHA, **changes})


def count(session, model) -> int:
    return session.execute(select(func.count(model.id))).scalar_one()


def test_register_gives_an_mrn_with_a_check_digit_and_is_audited(client, desk, session):
    response = register(client, aadhaar="2341 2341 2346")
    assert response.status_code == 303
    mrn = response.headers["Location"].rsplit("/", 1)[1]
    assert len(mrn) == 7 and identifiers.has_valid_check_digit(mrn)
    patient = session.execute(select(Patient).where(Patient.mrn == mrn)).scalar_one()
    assert patient.mobile == "+919876543210" and patient.aadhaar_masked == "XXXX XXXX 2346"
    assert "234123412346" not in repr(patient.__dict__)  # never stored in full
    page = client.get(f"/reception/patients/{mrn}").get_data(as_text=True)
    assert "XXXX XXXX 2346" in page and "2341 2341 2346" not in page and mrn in page
    event = session.execute(select(AuditEvent).where(AuditEvent.action == "patient.registered",
                                                     AuditEvent.entity_id == mrn)).scalar_one()
    assert event.entity_id == mrn and "2346" in event.after["aadhaar_masked"]


def test_indian_script_names_are_stored_and_shown(client, desk, session):
    response = register(client, name="राम कुमार शर्मा", mobile="9812345678")
    assert response.status_code == 303
    assert "राम कुमार शर्मा" in client.get(response.headers["Location"]).get_data(as_text=True)
    found = client.get("/reception/patients", query_string={"q": "कुमार"}).get_data(as_text=True)
    assert "राम कुमार शर्मा" in found


def test_same_mobile_and_similar_name_is_a_likely_duplicate(client, desk, session):
    register(client)
    response = register(client, name="Aasha Rao", dob="1990-05-18")
    assert response.status_code == 409
    assert "may already be registered" in response.get_data(as_text=True)
    assert count(session, Patient) == 1
    confirmed = register(client, name="Aasha Rao", dob="1990-05-18", confirm_new="1")
    assert confirmed.status_code == 303 and count(session, Patient) == 2


def test_a_family_sharing_one_mobile_is_not_a_duplicate(client, desk, session):
    register(client)
    assert register(client, name="Vikram Rao", sex="male", dob="1962-01-01").status_code == 303
    assert register(client, name="Meenakshi Rao", dob="2015-08-09").status_code == 303


def test_same_aadhaar_or_same_name_and_dob_is_a_duplicate(client, desk):
    register(client, aadhaar="234123412346")
    assert register(client, name="Someone Else", mobile="9123456780", aadhaar="234123412346").status_code == 409
    assert register(client, mobile="9123456780").status_code == 409  # same name + DOB


@pytest.mark.parametrize("change,field_message", [
    ({"mobile": "12345"}, "valid mobile"), ({"aadhaar": "234123412347"}, "Aadhaar"), ({"abha_number": "1234"}, "14 digits"),
    ({"pin_code": "012345"}, "PIN code"), ({"dob": "2999-01-01"}, "future"), ({"dob": "", "age_years": "130"}, "between 0 and 120"),
    ({"name": ""}, "Enter the patient"), ({"name": "x" * 10000}, "Too long"), ({"abha_address": "ravi@gmail.com"}, "name@abdm"),
])
def test_bad_input_gets_its_message_and_saves_nothing(client, desk, session, change, field_message):
    response = register(client, **change)
    assert response.status_code == 422
    assert field_message in response.get_data(as_text=True)
    assert count(session, Patient) == 0


def test_html_in_fields_is_escaped(client, desk):
    response = register(client, name="<script>alert(1)</script> Rao", address="<b>bold</b>")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


@pytest.mark.parametrize("typed", ["98765 43210", "+91-98765-43210", "09876543210", "Asha", "asha rao", "Aasha", "rao",
                                   "As", "Aasha Rao", "rao asha", "Asha R", "Ahsa Rao"])
def test_search_finds_by_mobile_in_any_format_and_by_name_variants(client, desk, typed):
    register(client)
    html = client.get("/reception/patients", query_string={"q": typed}, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Asha Rao" in html, typed
    assert "<html" not in html  # a fragment for htmx


def test_search_by_mrn(client, desk):
    mrn = register(client).headers["Location"].rsplit("/", 1)[1]
    assert "Asha Rao" in client.get("/reception/patients", query_string={"q": mrn}).get_data(as_text=True)


def test_patient_edit_is_audited(client, desk, session):
    mrn = register(client).headers["Location"].rsplit("/", 1)[1]
    response = client.post_form(f"/reception/patients/{mrn}/edit", {**ASHA, "city": "Mysuru"})
    assert response.status_code == 303
    event = session.execute(select(AuditEvent).where(AuditEvent.action == "patient.updated",
                                                     AuditEvent.entity_id == mrn)).scalar_one()
    assert event.before == {"city": ""} and event.after == {"city": "Mysuru"}


# --- orders ------------------------------------------------------------------------


def new_order(client, mrn, tests="CBC GLUF CREA TSH", **extra):
    page = client.get(f"/reception/patients/{mrn}/orders/new").get_data(as_text=True)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page).group(1)
    data = {"tests": tests, "priority": "routine", "idempotency_key": key, **extra}
    return client.post_form(f"/reception/patients/{mrn}/orders", data), data


@pytest.fixture
def patient_mrn(client, desk):
    return register(client).headers["Location"].rsplit("/", 1)[1]


def test_order_makes_a_tube_plan_and_a_bill_of_supply(client, desk, session, patient_mrn):
    response, _ = new_order(client, patient_mrn)
    assert response.status_code == 303
    accession = response.headers["Location"].rsplit("/", 1)[1]
    assert len(accession) == 8 and identifiers.has_valid_check_digit(accession)
    order = session.execute(select(Order).where(Order.accession == accession)).scalar_one()
    tubes = {(s.container, s.specimen): sorted(t.test.code for t in s.tests) for s in order.samples}
    assert tubes == {("EDTA", "Whole blood"): ["HB", "PLT", "WBC"], ("Fluoride", "Plasma"): ["GLUF"],
                     ("Plain", "Serum"): ["CREA", "TSH"]}
    assert all(len(s.barcode) == 9 and identifiers.has_valid_check_digit(s.barcode) for s in order.samples)
    bill = session.execute(select(Bill).where(Bill.order_id == order.id)).scalar_one()
    assert bill.doc_type == "bill_of_supply" and re.fullmatch(r"MAIN/B\d\d/\d{6}", bill.number)
    assert bill.total_paise == 35000 + 8000 + 20000 + 35000 and bill.cgst_paise == bill.igst_paise == 0
    assert {l.sac_code for l in bill.lines} == {"999316"}
    page = client.get(f"/reception/orders/{accession}").get_data(as_text=True)
    assert "Bill of supply" in page and "<svg" in page  # UPI QR inline


def test_double_submit_creates_one_order(client, desk, session, patient_mrn):
    first, data = new_order(client, patient_mrn)
    second = client.post_form(f"/reception/patients/{patient_mrn}/orders", data)
    assert second.headers["Location"] == first.headers["Location"]
    assert count(session, Order) == 1 and count(session, Bill) == 1


@pytest.mark.parametrize("extra,message", [
    ({"tests": "CBC NOPE"}, "Unknown test or panel code: NOPE"), ({"tests": ""}, "Add at least one test"),
    ({"tests": "CBC HB"}, "repeats a test already in CBC"), ({"discount": "-10", "discount_reason": "x"}, "cannot be negative"),
    ({"discount": "50"}, "Say why"), ({"discount": "500", "discount_reason": "friend"}, "Your limit is 10%"),
    ({"discount": "abc", "discount_reason": "x"}, "Enter an amount"), ({"priority": "asap"}, "routine, urgent or STAT"),
])
def test_bad_orders_get_a_message_and_save_nothing(client, desk, session, patient_mrn, extra, message):
    response, _ = new_order(client, patient_mrn, **extra)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert count(session, Order) == 0 and count(session, Bill) == 0


def test_discount_within_limit_is_spread_over_lines_exactly(client, desk, session, patient_mrn):
    response, _ = new_order(client, patient_mrn, tests="GLUF CREA TSH", discount="31.33", discount_reason="senior citizen")
    bill = session.execute(select(Bill)).scalar_one()
    assert bill.discount_paise == 3133 and sum(l.discount_paise for l in bill.lines) == 3133
    assert bill.total_paise == 63000 - 3133


def test_taxable_items_go_on_a_separate_tax_invoice(client, desk, session, patient_mrn):
    response, _ = new_order(client, patient_mrn, tests="GLUF HOME")
    bills = session.execute(select(Bill).order_by(Bill.doc_type)).scalars().all()
    assert [b.doc_type for b in bills] == ["bill_of_supply", "tax_invoice"]
    invoice = bills[1]
    assert re.fullmatch(r"MAIN/T\d\d/000001", invoice.number)
    # within Karnataka (patient state 29, branch 29): CGST 9% + SGST 9% of ₹100
    assert (invoice.cgst_paise, invoice.sgst_paise, invoice.igst_paise, invoice.total_paise) == (900, 900, 0, 11800)


def test_interstate_patient_pays_igst(client, desk, session):
    mrn = register(client, state_code="27", mobile="9000000001").headers["Location"].rsplit("/", 1)[1]
    new_order(client, mrn, tests="HOME")
    invoice = session.execute(select(Bill)).scalar_one()
    assert invoice.place_of_supply == "27" and (invoice.cgst_paise, invoice.igst_paise) == (0, 1800)


def _bill_page(client, session):
    order = session.execute(select(Order)).scalar_one()
    bill = session.execute(select(Bill)).scalar_one()
    page = client.get(f"/reception/orders/{order.accession}").get_data(as_text=True)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.split('class="pay"')[1]).group(1)
    return bill, key


def test_partial_then_full_payment(client, desk, session, patient_mrn):
    new_order(client, patient_mrn, tests="GLUF")
    bill, key = _bill_page(client, session)
    assert client.post_form(f"/reception/bills/{bill.number}/payments",
                            {"mode": "cash", "amount": "30", "idempotency_key": key}).status_code == 303
    session.refresh(bill)
    assert (bill.paid_paise, bill.status, bill.due_paise) == (3000, "partly_paid", 5000)
    _, key2 = _bill_page(client, session)
    client.post_form(f"/reception/bills/{bill.number}/payments",
                     {"mode": "upi", "amount": "50", "reference": "412345678901", "idempotency_key": key2})
    session.refresh(bill)
    assert (bill.paid_paise, bill.status) == (8000, "paid")
    assert [p.mode for p in session.execute(select(Payment).order_by(Payment.id)).scalars()] == ["cash", "upi"]


def test_a_repeated_payment_submit_is_counted_once(client, desk, session, patient_mrn):
    new_order(client, patient_mrn, tests="GLUF")
    bill, key = _bill_page(client, session)
    for _ in range(2):
        client.post_form(f"/reception/bills/{bill.number}/payments", {"mode": "cash", "amount": "10", "idempotency_key": key})
    session.refresh(bill)
    assert bill.paid_paise == 1000 and count(session, Payment) == 1


@pytest.mark.parametrize("data,message", [
    ({"mode": "cash", "amount": "81"}, "more than the amount due"), ({"mode": "cash", "amount": "0"}, "above zero"),
    ({"mode": "upi", "amount": "10", "reference": "123"}, "12-digit UPI reference"),
    ({"mode": "card", "amount": "10"}, "terminal"), ({"mode": "cheque", "amount": "10"}, "cash, card or UPI"),
    ({"mode": "cash", "amount": "-5"}, "above zero"),
])
def test_bad_payments_are_refused_and_change_nothing(client, desk, session, patient_mrn, data, message):
    new_order(client, patient_mrn, tests="GLUF")
    bill, key = _bill_page(client, session)
    response = client.post_form(f"/reception/bills/{bill.number}/payments", {**data, "idempotency_key": key})
    assert response.status_code == 422 and message in response.get_data(as_text=True)
    session.refresh(bill)
    assert bill.paid_paise == 0 and count(session, Payment) == 0


def test_upi_qr_follows_the_npci_spec(client, desk, session, patient_mrn):
    from app.services import documents

    new_order(client, patient_mrn, tests="GLUF CREA")
    bill = session.execute(select(Bill)).scalar_one()
    upi = documents.upi_for_bill(desk["org"], bill)
    parts = urlsplit(upi.uri)
    assert parts.scheme == "upi" and parts.netloc == "pay"
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert params["pa"] == desk["org"].upi_vpa and params["tr"] == bill.number
    assert params["am"] == "280.00" and params["cu"] == "INR" and params["pn"] and params["tn"]


def test_labels_pdf_and_reprint_is_audited(client, desk, session, patient_mrn):
    response, _ = new_order(client, patient_mrn, tests="CBC GLUF")
    accession = response.headers["Location"].rsplit("/", 1)[1]
    first = client.get(f"/reception/orders/{accession}/labels.pdf")
    assert first.status_code == 200 and first.mimetype == "application/pdf" and first.data[:5] == b"%PDF-"
    assert session.execute(select(func.count(AuditEvent.id))
                           .where(AuditEvent.action == "sample.label_reprinted")).scalar_one() == 0
    client.get(f"/reception/orders/{accession}/labels.pdf")
    reprints = session.execute(select(AuditEvent).where(AuditEvent.action == "sample.label_reprinted")).scalars().all()
    assert len(reprints) == 2  # two tubes reprinted
    assert all(s.label_prints == 2 for s in session.execute(select(Sample)).scalars())


@pytest.mark.parametrize("size", ["a5", "80mm"])
def test_receipts_render(client, desk, session, patient_mrn, size):
    new_order(client, patient_mrn, tests="GLUF")
    bill = session.execute(select(Bill)).scalar_one()
    response = client.get(f"/reception/bills/{bill.number}/receipt.pdf", query_string={"size": size})
    assert response.status_code == 200 and response.data[:5] == b"%PDF-"


def test_other_organizations_orders_and_patients_answer_404(client, desk, factory, session):
    from app import security

    other = factory.org()
    factory.catalogue(other)
    security.use_tenant(session, other.id)
    from app.services import patients as patient_service

    stranger = patient_service.register({**ASHA, "mobile": "9000000009"}, branch_id=None, created_by_id=None)
    session.commit()
    assert client.get(f"/reception/patients/{stranger.mrn}").status_code == 404
    assert client.get(f"/reception/patients/{stranger.mrn}/orders/new").status_code == 404
    assert "Asha" not in client.get("/reception/patients", query_string={"q": "9000000009"}).get_data(as_text=True)


def test_technician_cannot_open_the_desk(client, auth, factory):
    org = factory.org()
    auth.login(factory.user(org, "technician").username, PASSWORD)
    assert client.get("/reception/patients/new").status_code == 403


def test_labels_embed_fonts_for_indian_scripts(client, desk, session):
    mrn = register(client, name="राम कुमार शर्मा", mobile="9812345678").headers["Location"].rsplit("/", 1)[1]
    response, _ = new_order(client, mrn, tests="GLUF")
    accession = response.headers["Location"].rsplit("/", 1)[1]
    pdf = client.get(f"/reception/orders/{accession}/labels.pdf").data
    assert b"Noto-Sans-Devanagari" in _inflated(pdf)  # the bundled font, not a box for every letter


def _inflated(pdf: bytes) -> bytes:
    """The PDF with its Flate streams decompressed (font names live in object streams)."""
    import zlib

    parts = [pdf]
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            parts.append(zlib.decompress(match.group(1)))
        except zlib.error:
            pass
    return b"".join(parts)


def test_panels_with_a_deactivated_test_and_inactive_price_lists_do_not_apply(desk, session):
    from app.models import Client, PriceList, PriceListItem
    from app.services import orders

    price_list = PriceList(name="Hospital rates", active=False)
    session.add(price_list)
    session.flush()
    session.add(PriceListItem(price_list_id=price_list.id, test_id=desk["tests"]["GLUF"].id, price_paise=1))
    hospital = Client(code="H1", name="Hospital", price_list_id=price_list.id)
    session.add(hospital)
    desk["tests"]["WBC"].active = False
    session.commit()
    found, unknown = orders.resolve(["CBC", "GLUF"], hospital)
    assert unknown == ["CBC"]  # CBC has a deactivated member test
    assert [(o.code, o.price_paise) for o in found] == [("GLUF", 8000)]  # inactive list: catalogue price


@pytest.mark.parametrize("typed", ["Infinity", "NaN", "1e400", "-sNaN"])
def test_non_numbers_are_not_amounts(typed):
    from app.formatting import parse_rupees

    with pytest.raises(ValueError):
        parse_rupees(typed)


HTMX = {"HX-Request": "true"}


def test_htmx_register_answers_with_the_patient_page_in_one_trip(client, desk):
    response = client.post_form("/reception/patients/new", ASHA, headers=HTMX)
    assert response.status_code == 200
    assert response.headers["HX-Retarget"] == "body" and response.headers["HX-Reswap"] == "innerHTML"
    url = response.headers["HX-Push-Url"]
    assert re.fullmatch(r"/reception/patients/\d{7}", url)
    assert "Asha Rao" in response.get_data(as_text=True) and "New order" in response.get_data(as_text=True)


def test_htmx_order_and_payment_answer_with_the_order_page(client, desk, session, patient_mrn):
    response, data = new_order(client, patient_mrn, tests="GLUF")  # plain form: 303
    assert response.status_code == 303
    order_page = client.post_form(f"/reception/patients/{patient_mrn}/orders", {**data, "idempotency_key": "htmx-1"},
                                  headers=HTMX)
    assert order_page.status_code == 200 and order_page.headers["HX-Push-Url"].startswith("/reception/orders/")
    bill = session.execute(select(Bill).order_by(Bill.id.desc())).scalars().first()
    paid = client.post_form(f"/reception/bills/{bill.number}/payments",
                            {"mode": "cash", "amount": "80", "idempotency_key": "pay-htmx-1"}, headers=HTMX)
    assert paid.status_code == 200 and "Payment recorded" in paid.get_data(as_text=True)
    refused = client.post_form(f"/reception/bills/{bill.number}/payments",
                               {"mode": "cash", "amount": "1", "idempotency_key": "pay-htmx-2"}, headers=HTMX)
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422 and body.count("more than the amount due") == 1  # once, in the form
