"""Billing portal pages for reconciliation: upload and progress, a statement's lines with
filters, bank mappings, the exceptions queue with inline htmx resolution; role and tenant
scoping; bad input answers 422 and saves nothing."""
from __future__ import annotations

import io
from datetime import date

import pytest
from sqlalchemy import func, select

from app import audit, security
from app.models import AuditEvent, BankMapping, Bill, BillingException, StatementImport, StatementLine
from app.services import billing_exceptions, reconciliation
from tests.factories import PASSWORD
from tests.integration.test_reconciliation import Lab, fixture, hdfc_payments

HTMX = {"HX-Request": "true"}


@pytest.fixture
def lab(factory, session):  # type: ignore[no-untyped-def]
    return Lab(factory, session)


@pytest.fixture
def clerk(lab, auth):  # type: ignore[no-untyped-def]
    auth.login(lab.clerk.username, PASSWORD)
    return lab.clerk


def upload(client, name: str, source: str, content: bytes | None = None, **headers):  # type: ignore[no-untyped-def]
    data = {"source": source, "window": "2", "file": (io.BytesIO(content if content is not None else fixture(name)), name)}
    return client.post_form("/billing/reconciliation/imports", data, content_type="multipart/form-data", headers=headers)


def count_imports(lab) -> int:  # type: ignore[no-untyped-def]
    lab.use()
    return lab.session.execute(select(func.count(StatementImport.id))).scalar_one()


def test_pages_render_for_the_billing_clerk_only(client, auth, lab, factory, clerk):  # type: ignore[no-untyped-def]
    for url, text in (("/billing/reconciliation", "Upload a Razorpay settlement"), ("/billing/bank-mappings", "HDFC current account"),
                      ("/billing/bank-mappings/new", "Rows above the header"), ("/billing/exceptions", "No exceptions waiting")):
        page = client.get(url)
        assert page.status_code == 200, url
        assert text in page.get_data(as_text=True), url
    auth.logout()
    desk = factory.user(lab.org, "reception")
    auth.login(desk.username, PASSWORD)
    assert client.get("/billing/reconciliation").status_code == 403
    assert client.get("/billing/exceptions").status_code == 403


def test_upload_queues_the_import_and_the_page_polls_until_done(client, lab, clerk, session):  # type: ignore[no-untyped-def]
    pays = hdfc_payments(lab)
    response = upload(client, "bank_hdfc.csv", f"bank:{lab.mapping.id}")
    assert response.status_code == 303
    lab.use()
    imp = session.execute(select(StatementImport)).scalar_one()
    assert imp.status == "queued" and imp.imported_by_id == clerk.id
    # The test's session (one connection with the requests') ends its savepoint before the job
    # starts with a rollback, as a worker's separate session would see committed rows only.
    session.commit()
    listing = client.get("/billing/reconciliation?part=imports", headers=HTMX).get_data(as_text=True)
    assert listing.lstrip().startswith('<div id="imports"') and 'hx-trigger="every 2s"' in listing and "queued" in listing
    assert reconciliation.process_import(imp.id) == "done"
    listing = client.get("/billing/reconciliation?part=imports", headers=HTMX).get_data(as_text=True)
    assert "every 2s" not in listing and "done" in listing
    page = client.get(f"/billing/reconciliation/imports/{imp.id}").get_data(as_text=True)
    assert "7 lines read" in page and "3</strong> matched (2 by reference, 1 by amount within ±2 days)" in page
    assert "412345678901" in page and "Duplicate" in page
    dupes = client.get(f"/billing/reconciliation/imports/{imp.id}?status=duplicate&part=lines", headers=HTMX).get_data(as_text=True)
    assert dupes.lstrip().startswith('<div id="lines">') and "1 line<" in dupes and "Duplicate" in dupes and "No payment" not in dupes
    matched = client.get(f"/billing/reconciliation/imports/{imp.id}?status=matched").get_data(as_text=True)
    lab.use()
    bill = session.get(Bill, pays["p1"].bill_id)
    assert bill.number in matched and "3 lines" in matched


@pytest.mark.parametrize("name, source, expected", [
    ("bank_wrong_columns.csv", "bank", "has no column &#39;Date&#39;, &#39;Chq./Ref.No.&#39;"),
    ("bank_hdfc.csv", "nothing", "Choose Razorpay settlement or a bank mapping."),
    ("bank_hdfc.csv", "bank:999999999", "Choose the bank mapping this statement uses."),
    ("empty.csv", "bank", "The file is empty."),
])
def test_bad_uploads_answer_422_and_store_nothing(client, lab, clerk, name, source, expected):  # type: ignore[no-untyped-def]
    source = f"bank:{lab.mapping.id}" if source == "bank" else source
    response = upload(client, name, source, content=b"" if name == "empty.csv" else None, **HTMX)
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<form id="upload-form"') and expected in body and "Nothing was imported" in body
    assert count_imports(lab) == 0


def test_the_same_file_twice_is_refused_with_a_clear_message(client, lab, clerk):  # type: ignore[no-untyped-def]
    assert upload(client, "razorpay_recon.csv", "razorpay_settlement").status_code == 303
    again = upload(client, "razorpay_recon.csv", "razorpay_settlement")
    assert again.status_code == 422 and "This file was already imported (import #" in again.get_data(as_text=True)
    assert count_imports(lab) == 1


def test_a_failed_import_shows_its_error_and_can_be_run_again(client, lab, clerk, session):  # type: ignore[no-untyped-def]
    assert upload(client, "bank_bad_amount.csv", f"bank:{lab.mapping.id}").status_code == 303
    lab.use()
    imp = session.execute(select(StatementImport)).scalar_one()
    session.commit()
    assert reconciliation.process_import(imp.id) == "failed"
    page = client.get(f"/billing/reconciliation/imports/{imp.id}").get_data(as_text=True)
    assert "Row 6, column &#39;Deposit Amt.&#39;: &#39;3S0.00&#39; is not an amount in rupees." in page
    assert client.post_form(f"/billing/reconciliation/imports/{imp.id}/retry").status_code == 303
    session.expire_all()
    lab.use()
    assert session.get(StatementImport, imp.id).status == "queued"


def test_bank_mapping_form_validates_and_checks_a_sample(client, lab, clerk, session):  # type: ignore[no-untyped-def]
    bad = client.post_form("/billing/bank-mappings/new", {"name": "", "date_column": "Date", "reference_column": "",
                                                          "date_format": "%d/%m/%Y", "skip_rows": "x"}, headers=HTMX)
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    for message in ("Name the mapping", "UTR / RRN / reference number?", "one signed amount column", "A whole number from 0 to 50"):
        assert message in text
    values = {"name": "SBI current", "date_column": "Txn Date", "date_format": "%d/%m/%Y", "amount_column": "Amount",
              "reference_column": "UTR", "narration_column": "Description", "skip_rows": "0"}
    wrong_sample = client.post_form("/billing/bank-mappings/new", {
        **values, "sample": (io.BytesIO(fixture("bank_wrong_columns.csv")), "sample.csv")},
        content_type="multipart/form-data", headers=HTMX)
    assert wrong_sample.status_code == 422
    assert "Row 1 (the header) has no column &#39;UTR&#39;" in wrong_sample.get_data(as_text=True)
    lab.use()
    assert session.execute(select(func.count(BankMapping.id))).scalar_one() == 1
    saved = client.post_form("/billing/bank-mappings/new", {**values, "reference_column": "Description",
                                                            "narration_column": ""})
    assert saved.status_code == 303
    lab.use()
    mapping = session.execute(select(BankMapping).where(BankMapping.name == "SBI current")).scalar_one()
    edit = client.post_form(f"/billing/bank-mappings/{mapping.id}", {**values, "name": "SBI current a/c",
                                                                     "reference_column": "Description", "narration_column": ""})
    assert edit.status_code == 303
    session.refresh(mapping)
    assert mapping.name == "SBI current a/c"
    assert session.execute(select(AuditEvent).where(AuditEvent.action == "bank_mapping.updated")).scalar_one()


def test_exceptions_queue_filters_and_resolves_inline(client, lab, clerk, session):  # type: ignore[no-untyped-def]
    hdfc_payments(lab)
    imp = lab.run(lab.upload("bank_hdfc.csv"))
    page = client.get("/billing/exceptions").get_data(as_text=True)
    for label in ("Credit with no payment", "Amount differs from the payment", "Duplicate line", "Payment missing from the statement"):
        assert label in page
    only = client.get("/billing/exceptions?kind=unmatched_credit", headers=HTMX).get_data(as_text=True)
    assert only.lstrip().startswith('<tbody id="exception-rows">') and "Credit with no payment" in only and "Duplicate line" not in only
    exc = lab.exceptions(kind="unmatched_credit")[0]
    form = client.get(f"/billing/exceptions/{exc.id}?resolve=1", headers=HTMX).get_data(as_text=True)
    assert form.lstrip().startswith(f'<tr id="exception-{exc.id}">') and "Match to a payment" in form and "Apply to a bill" not in form
    no_note = client.post_form(f"/billing/exceptions/{exc.id}/resolve", {"action": "ignored", "note": ""}, headers=HTMX)
    assert no_note.status_code == 422 and "Write a note" in no_note.get_data(as_text=True)
    lab.use()
    session.refresh(exc)
    assert exc.status == "open"
    counter = lab.pay("upi", 999, reference="412300000000", day=date(2026, 4, 3))
    bill = session.get(Bill, counter.bill_id)
    done = client.post_form(f"/billing/exceptions/{exc.id}/resolve",
                            {"action": "match", "reference": bill.number, "note": "RRN mistyped at the desk."}, headers=HTMX)
    assert done.status_code == 200 and "matched" in done.get_data(as_text=True)
    lab.use()
    session.expire_all()
    line = session.get(StatementLine, exc.statement_line_id)
    assert (line.status, line.payment_id) == ("matched", counter.id)
    event = session.execute(select(AuditEvent).where(AuditEvent.action == "billing_exception.resolved",
                                                     AuditEvent.entity_id == str(exc.id))).scalar_one()
    assert event.actor_user_id == clerk.id
    assert lab.lines(imp)[10].match_rule == "manual"


def test_webhook_exceptions_offer_the_gateway_actions_and_ignore_works(client, lab, clerk, session):  # type: ignore[no-untyped-def]
    lab.use()
    exc = billing_exceptions.open_exception(lab.org.id, kind="unknown_bill", source="webhook", dedupe_key="gateway:pay_X",
                                            amount_paise=45000, reference="pay_X", details={"reason": "no bill B999"})
    session.commit()
    form = client.get(f"/billing/exceptions/{exc.id}?resolve=1", headers=HTMX).get_data(as_text=True)
    from app.services import gateway

    assert ("Apply to a bill" in form) == hasattr(gateway, "apply_exception")
    assert ("Refund to the payer" in form) == hasattr(gateway, "refund_exception")
    assert "Match to a payment" not in form
    done = client.post_form(f"/billing/exceptions/{exc.id}/resolve", {"action": "ignored", "note": "Test payment by IT."},
                            headers=HTMX)
    assert done.status_code == 200
    lab.use()
    session.refresh(exc)
    assert (exc.status, exc.resolution, exc.resolved_by_id) == ("resolved", "ignored", clerk.id)


def test_another_labs_rows_answer_404(client, lab, factory, session, auth):  # type: ignore[no-untyped-def]
    other = Lab(factory, session)
    imp = other.run(other.upload("bank_hdfc.csv"))
    theirs = other.exceptions()[0]
    auth.login(lab.clerk.username, PASSWORD)
    assert client.get(f"/billing/reconciliation/imports/{imp.id}").status_code == 404
    assert client.get(f"/billing/bank-mappings/{other.mapping.id}").status_code == 404
    assert client.get(f"/billing/exceptions/{theirs.id}?resolve=1", headers=HTMX).status_code == 404
    assert client.post_form(f"/billing/exceptions/{theirs.id}/resolve", {"action": "ignored", "note": "x"}).status_code == 404
    # and an upload naming their mapping is refused
    response = upload(client, "bank_hdfc_next.csv", f"bank:{other.mapping.id}", **HTMX)
    assert response.status_code == 422 and "Choose the bank mapping" in response.get_data(as_text=True)
    assert "bank_hdfc.csv" not in client.get("/billing/reconciliation").get_data(as_text=True)
    other.use()
    assert session.get(BillingException, theirs.id).status == "open"


def test_the_queue_works_without_javascript(client, lab, clerk, session):  # type: ignore[no-untyped-def]
    hdfc_payments(lab)
    lab.run(lab.upload("bank_hdfc.csv"))
    exc = lab.exceptions(kind="duplicate")[0]
    session.commit()
    page = client.get(f"/billing/exceptions/{exc.id}")
    assert page.status_code == 200 and "<!doctype html>" in page.get_data(as_text=True)
    assert "Back to the exceptions queue" in page.get_data(as_text=True)
    refused = client.post_form(f"/billing/exceptions/{exc.id}/resolve", {"action": "written_off", "note": ""})
    assert refused.status_code == 422 and "Write a note" in refused.get_data(as_text=True)
    done = client.post_form(f"/billing/exceptions/{exc.id}/resolve",
                            {"action": "ignored", "note": "The bank printed p1's credit twice."})
    assert done.status_code == 303 and done.headers["Location"].endswith("/billing/exceptions")
    lab.use()
    session.refresh(exc)
    assert (exc.status, exc.resolution) == ("resolved", "ignored")
