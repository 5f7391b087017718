"""GST e-invoicing against a local IRP-shaped server (tests/providers_irp.py): the INV-01 JSON,
the IRN cross-check, generate / validation error / 503 then success / duplicate 2150, cancel
inside and after 24 hours, the sweep, the clerk's page and its tenant scoping. Real PostgreSQL
and Redis; the IRP client is the real one, only the far end is local."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from rq import Queue
from sqlalchemy import select

from app import audit, security
from app.extensions import redis_client
from app.integrations import irp
from app.models import AuditEvent, Bill, Branch, Client, EInvoice, LabTest
from app.models.base import utcnow
from app.services import einvoicing, orders
from tests.factories import PASSWORD
from tests.providers_irp import CLIENT_ID, CLIENT_SECRET, PASSWORD as IRP_PASSWORD, USERNAME, IrpServer, error

SELLER_GSTIN = "29AAFCC9980M1ZR"  # Karnataka; valid check character (india.md §2.1)
LOCAL_BUYER = "29AAGCB7383J1Z4"  # Karnataka
FAR_BUYER = "27AAPFU0939F1ZV"  # Maharashtra


# ---------------------------------------------------------------- pure rules

@pytest.mark.parametrize("gstin, fy, typ, number, expected", [
    # GSTZen's worked example and the vectors of india.md §1.1
    ("29AAFCC9980M1ZR", "2019-20", "INV", "2019-20/KA/1", "23f498ee41441ecad30f72ba5b9907506c3df70a17b0e0dff46b76a786400662"),
    ("27AAPFU0939F1ZV", "2024-25", "INV", "LAB/24-25/0001", "e8eb5e92871af09ea35255b44610624b1e79184560ed5edc35e1228b18e09095"),
    ("27AAPFU0939F1ZV", "2024-25", "CRN", "CN/24-25/0001", "1718590f25942f0db7b3bf6aa658b2a4c1e5f64b3e09673ca9fb27c1a951dd35"),
])
def test_local_irn_matches_the_published_vectors(gstin, fy, typ, number, expected):
    assert einvoicing.compute_irn(gstin, fy, typ, number) == expected


def test_signed_qr_payload_is_decoded_to_its_ten_fields():
    from tests.providers_irp import jws

    data = {"SellerGstin": SELLER_GSTIN, "BuyerGstin": FAR_BUYER, "DocNo": "MAIN/T26/000001", "DocTyp": "INV",
            "DocDt": "28/03/2026", "TotInvVal": 118, "ItemCnt": 1, "MainHsnCode": "998599", "Irn": "ab" * 32,
            "IrnDt": "2026-03-28 12:10:17"}
    decoded = einvoicing.decode_signed_qr(jws({"data": json.dumps(data), "iss": "NIC"}))
    assert {k: v for k, v in decoded.items() if k != "_iss"} == data and decoded["_iss"] == "NIC"
    assert einvoicing.decode_signed_qr("not-a-jws") is None
    assert einvoicing.decode_signed_qr("a.!!!.c") is None


def test_turnover_is_parsed_in_rupees_to_paise_without_floats():
    assert einvoicing.parse_turnover("6,25,00,000.50") == 6_25_00_000_50
    assert einvoicing.parse_turnover("") == 0
    for bad in ("five crore", "-1", "1.234", "1e20"):
        with pytest.raises(ValueError):
            einvoicing.parse_turnover(bad)


# ---------------------------------------------------------------- fixtures

@pytest.fixture
def irp_server(app, monkeypatch):
    server = IrpServer()
    for key, value in {"IRP_API_BASE": server.url, "IRP_CLIENT_ID": CLIENT_ID, "IRP_CLIENT_SECRET": CLIENT_SECRET,
                       "IRP_USERNAME": USERNAME, "IRP_PASSWORD": IRP_PASSWORD, "IRP_GSTIN": "",
                       "LIS_PROVIDER_TIMEOUT": 5}.items():
        monkeypatch.setitem(app.config, key, value)
    irp.forget_tokens()
    yield server
    irp.forget_tokens()
    server.shutdown()
    server.server_close()


@pytest.fixture
def lab(factory, session):
    org = factory.org(gstin=SELLER_GSTIN, address_line1="14 Residency Road", city="Bengaluru", pin_code="560025",
                      einvoice_enabled=True, aggregate_turnover_paise=7 * 10**9)
    cat = factory.catalogue(org)
    # A second taxable line (a wellness add-on billed with GST) besides the home-collection charge.
    tsh = session.get(LabTest, cat["tests"]["TSH"].id)
    tsh.gst_rate, tsh.sac_code = Decimal("18"), "998599"
    local = Client(org_id=org.id, code="APL", name="Apollo Clinic Pvt Ltd", gstin=LOCAL_BUYER, state_code="29",
                   address="2nd floor, 80 Feet Road, Koramangala\nBengaluru 560034")
    far = Client(org_id=org.id, code="MUM", name="Mumbai Wellness LLP", gstin=FAR_BUYER, state_code="27",
                 address="Plot 4, MIDC, Andheri East\nMumbai 400093")
    session.add_all([local, far])
    session.commit()
    clerk = factory.user(org, "billing")
    token = audit.set_context(audit.AuditContext(actor_label="test", org_id=org.id))
    yield SimpleNamespace(org=org, local=local, far=far, clerk=clerk, factory=factory)
    audit._context.reset(token)


def b2b_bills(lab, session, client, codes=("HOME", "TSH", "GLUF"), discount_paise=0) -> dict[str, Bill]:
    patient = lab.factory.patient(lab.org)
    security.use_tenant(session, lab.org.id)
    branch = session.execute(select(Branch).where(Branch.code == "MAIN")).scalar_one()
    with audit.acting_as(audit.AuditContext(actor_label="test", org_id=lab.org.id)):
        _, bills = orders.create_order(patient, branch, orders.OrderRequest(
            codes=list(codes), client_id=client.id if client else None, discount_paise=discount_paise,
            discount_reason="corporate rate" if discount_paise else ""), created_by_id=None,
            discount_limit_percent=100)
    session.commit()
    return {b.doc_type: b for b in bills}


def paise(value) -> int:
    return int(Decimal(str(value)) * 100)


def einvoice_jobs() -> int:
    return Queue(einvoicing.QUEUE, connection=redis_client()).count


# ---------------------------------------------------------------- INV-01

def test_inv01_for_an_intra_state_invoice_has_the_required_fields_and_totals(lab, session):
    bill = b2b_bills(lab, session, lab.local, discount_paise=1000)["tax_invoice"]
    inv = einvoicing.build_inv01(bill)
    assert set(inv) >= {"Version", "TranDtls", "DocDtls", "SellerDtls", "BuyerDtls", "ItemList", "ValDtls"}
    assert inv["Version"] == "1.1" and inv["TranDtls"] == {"TaxSch": "GST", "SupTyp": "B2B", "RegRev": "N"}
    assert inv["DocDtls"] == {"Typ": "INV", "No": bill.number, "Dt": bill.bill_date.strftime("%d/%m/%Y")}
    assert inv["SellerDtls"] == {"Gstin": SELLER_GSTIN, "LglNm": lab.org.legal_name, "Addr1": "14 Residency Road",
                                 "Loc": "Bengaluru", "Pin": 560025, "Stcd": "29"}
    assert inv["BuyerDtls"] == {"Gstin": LOCAL_BUYER, "LglNm": "Apollo Clinic Pvt Ltd", "Pos": "29",
                                "Addr1": "2nd floor, 80 Feet Road, Koramangala", "Loc": "Bengaluru", "Pin": 560034,
                                "Stcd": "29"}
    items = inv["ItemList"]
    assert len(items) == 2 and [i["SlNo"] for i in items] == ["1", "2"]
    for item, line in zip(items, bill.lines):
        assert {"SlNo", "IsServc", "HsnCd", "UnitPrice", "TotAmt", "AssAmt", "GstRt", "TotItemVal"} <= set(item)
        assert item["IsServc"] == "Y" and item["HsnCd"] == "998599" and item["GstRt"] == 18
        assert paise(item["AssAmt"]) == line.taxable_paise and paise(item["Discount"]) == line.discount_paise
        assert paise(item["CgstAmt"]) == paise(item["SgstAmt"]) == line.cgst_paise and item["IgstAmt"] == 0
        assert paise(item["TotItemVal"]) == line.total_paise
    vals = inv["ValDtls"]
    assert paise(vals["AssVal"]) == sum(paise(i["AssAmt"]) for i in items) == bill.taxable_paise
    assert paise(vals["CgstVal"]) == sum(paise(i["CgstAmt"]) for i in items) == bill.cgst_paise
    assert paise(vals["TotInvVal"]) == sum(paise(i["TotItemVal"]) for i in items) == bill.total_paise
    assert bill.discount_paise > 0 and vals["Discount"] == 0  # the discount is inside each line's AssAmt
    # The wire form writes exact two-decimal numbers (no float noise).
    text = json.dumps(inv)
    assert all(len(str(i["AssAmt"]).split(".")[-1]) <= 2 for i in items) and "e-" not in text
    assert einvoicing.validate(inv) == []


def test_inv01_for_an_inter_state_invoice_carries_igst_only(lab, session):
    bill = b2b_bills(lab, session, lab.far)["tax_invoice"]
    inv = einvoicing.build_inv01(bill)
    assert inv["BuyerDtls"]["Pos"] == "27" and inv["BuyerDtls"]["Loc"] == "Mumbai"
    assert all(i["CgstAmt"] == 0 and i["SgstAmt"] == 0 and paise(i["IgstAmt"]) > 0 for i in inv["ItemList"])
    assert paise(inv["ValDtls"]["IgstVal"]) == bill.igst_paise > 0 and inv["ValDtls"]["CgstVal"] == 0
    assert einvoicing.validate(inv) == []
    # Local checks catch what the IRP would refuse, in words for the clerk.
    broken = json.loads(json.dumps(inv))
    broken["ItemList"][0]["CgstAmt"] = 1.0
    broken["BuyerDtls"]["Pin"] = None
    broken["DocDtls"]["No"] = "0LAB/1"
    fields = {e["field"] for e in einvoicing.validate(broken)}
    assert {"ItemList.1.CgstAmt", "BuyerDtls.Pin", "DocDtls.No"} <= fields


def test_a_bill_of_supply_is_never_e_invoiced(lab, session, client, auth):
    bills = b2b_bills(lab, session, lab.local, codes=("GLUF", "CREA"))
    assert set(bills) == {"bill_of_supply"}
    supply = bills["bill_of_supply"]
    assert einvoicing.queue_einvoice(supply) is None
    assert einvoicing.sweep()["created"] == 0
    security.use_tenant(session, lab.org.id)
    assert session.execute(select(EInvoice)).first() is None
    auth.login(lab.clerk.username, PASSWORD)
    response = client.post_form(f"/billing/einvoices/bills/{supply.id}/send", headers={"HX-Request": "true"})
    assert response.status_code == 422 and "never e-invoiced" in response.get_data(as_text=True)
    security.use_tenant(session, lab.org.id)
    assert session.execute(select(EInvoice)).first() is None


# ---------------------------------------------------------------- against the IRP

def test_e_invoices_a_taxable_b2b_invoice_against_an_irp_shaped_server(lab, session, irp_server):
    bill = b2b_bills(lab, session, lab.local)["tax_invoice"]
    before = (bill.status, bill.total_paise, bill.paid_paise)
    row = einvoicing.queue_einvoice(bill)
    assert einvoicing.queue_einvoice(bill).id == row.id  # idempotent
    session.commit()
    assert einvoice_jobs() == 1  # queued after commit
    assert einvoicing.submit(row.id) == "generated"
    assert einvoicing.submit(row.id) == "generated"  # a second run sends nothing
    assert len(irp_server.calls("/eicore/v1.03/Invoice")) == 1 and len(irp_server.calls("/eivital")) == 1
    security.use_tenant(session, lab.org.id)
    row = session.get(EInvoice, row.id, populate_existing=True)
    assert row.status == "generated" and row.irn == row.local_irn and len(row.irn) == 64
    assert row.ack_no and row.ack_dt and row.errors == [] and row.attempts == 1
    sent = irp_server.calls("/eicore/v1.03/Invoice")[0]
    assert sent["body"] == row.payload and sent["headers"]["Gstin"] == SELLER_GSTIN
    fields = einvoicing.decode_signed_qr(row.signed_qr)
    assert fields["Irn"] == row.irn and fields["DocNo"] == bill.number and fields["BuyerGstin"] == LOCAL_BUYER
    assert fields["ItemCnt"] == 2 and paise(fields["TotInvVal"]) == bill.total_paise
    svg = einvoicing.signed_qr_svg(row)
    assert svg.startswith("<svg") and "path" in svg
    bill = session.get(Bill, bill.id, populate_existing=True)
    assert (bill.status, bill.total_paise, bill.paid_paise) == before
    event = session.execute(select(AuditEvent).where(AuditEvent.action == "einvoice.generated")).scalar_one()
    assert event.entity_id == bill.number and event.after["irn_matches"] is True


def test_an_irp_validation_error_is_shown_and_changes_nothing_else(lab, session, irp_server, client, auth):
    bill = b2b_bills(lab, session, lab.local)["tax_invoice"]
    row = einvoicing.queue_einvoice(bill)
    session.commit()
    irp_server.script.append((200, error("2172", "For Pos state code, the GSTIN of buyer is not matching")))
    assert einvoicing.submit(row.id) == "rejected"
    security.use_tenant(session, lab.org.id)
    row = session.get(EInvoice, row.id, populate_existing=True)
    assert row.status == "rejected" and row.irn is None and row.signed_qr is None and row.next_attempt_at is None
    assert row.errors == [{"code": "2172", "message": "For Pos state code, the GSTIN of buyer is not matching"}]
    assert session.get(Bill, bill.id, populate_existing=True).status == "open"
    auth.login(lab.clerk.username, PASSWORD)
    page = client.get("/billing/einvoices").get_data(as_text=True)
    assert "the GSTIN of buyer is not matching" in page and "Send again" in page
    detail = client.get(f"/billing/einvoices/{row.id}").get_data(as_text=True)
    assert "Not accepted" in detail and "IRP 2172" in detail
    # Fixed at the IRP's end: the clerk sends it again and it goes through.
    response = client.post_form(f"/billing/einvoices/bills/{bill.id}/send", headers={"HX-Request": "true"})
    assert response.status_code == 200 and 'id="einv-bill-' in response.get_data(as_text=True)
    # The test's session opened a savepoint before the requests (reading the clerk's name);
    # release it, as a worker's session would have no transaction open.
    session.commit()
    outcome = einvoicing.submit(row.id)
    security.use_tenant(session, lab.org.id)
    assert outcome == "generated"


def test_a_missing_pin_is_caught_locally_before_the_irp_is_called(lab, session, irp_server):
    client_row = session.get(Client, lab.local.id)
    client_row.address = "80 Feet Road, Koramangala"
    session.commit()
    bill = b2b_bills(lab, session, lab.local)["tax_invoice"]
    row = einvoicing.queue_einvoice(bill)
    session.commit()
    assert einvoicing.submit(row.id) == "rejected"
    assert irp_server.calls("/eicore") == []
    security.use_tenant(session, lab.org.id)
    row = session.get(EInvoice, row.id, populate_existing=True)
    assert [e["field"] for e in row.errors] == ["BuyerDtls.Pin"]
    assert "PIN code" in row.errors[0]["message"]


def test_a_503_is_retried_with_backoff_then_succeeds(lab, session, irp_server):
    bill = b2b_bills(lab, session, lab.far)["tax_invoice"]
    row = einvoicing.queue_einvoice(bill)
    session.commit()
    irp_server.script.append((503, {"message": "Service Unavailable"}))
    assert einvoicing.submit(row.id) == "retry"
    security.use_tenant(session, lab.org.id)
    row = session.get(EInvoice, row.id, populate_existing=True)
    assert row.status == "retrying" and row.attempts == 1 and row.irn is None
    assert row.next_attempt_at > utcnow() + timedelta(seconds=50)
    assert "503" in row.errors[0]["message"]
    assert einvoicing.submit(row.id) == "not-due"
    assert len(irp_server.calls("/eicore/v1.03/Invoice")) == 1
    row.next_attempt_at = utcnow() - timedelta(minutes=2)
    session.commit()
    assert einvoicing.sweep()["queued"] == 1  # the sweep finds the due row
    assert einvoicing.submit(row.id) == "generated"
    security.use_tenant(session, lab.org.id)
    row = session.get(EInvoice, row.id, populate_existing=True)
    assert row.status == "generated" and row.attempts == 2 and row.errors == []


def test_backoff_doubles_and_gives_up_after_the_last_attempt(lab, session, irp_server):
    assert [einvoicing.backoff(n).total_seconds() for n in (1, 2, 3)] == [60, 120, 240]
    bill = b2b_bills(lab, session, lab.local)["tax_invoice"]
    row = einvoicing.queue_einvoice(bill)
    row.attempts = einvoicing.MAX_ATTEMPTS - 1
    session.commit()
    irp_server.script.append((500, {}))
    assert einvoicing.submit(row.id) == "rejected"
    security.use_tenant(session, lab.org.id)
    row = session.get(EInvoice, row.id, populate_existing=True)
    assert row.status == "rejected" and row.errors[-1]["code"] == "GAVE_UP"


def test_a_lost_answer_is_recovered_from_the_duplicate_irn_2150(lab, session, irp_server):
    bill = b2b_bills(lab, session, lab.local)["tax_invoice"]
    row = einvoicing.queue_einvoice(bill)
    session.commit()
    # The IRP generated the IRN but our worker never saw the answer (killed, timed out).
    first = json.loads(irp_server.generate(einvoicing.build_inv01(bill))["Data"])
    assert einvoicing.submit(row.id) == "generated"
    assert len(irp_server.calls("/eicore/v1.03/Invoice/irn/")) == 1  # fetched the signed QR
    security.use_tenant(session, lab.org.id)
    row = session.get(EInvoice, row.id, populate_existing=True)
    assert row.irn == first["Irn"] == row.local_irn and row.ack_no == str(first["AckNo"])
    assert row.signed_qr == first["SignedQRCode"]


def test_an_expired_token_is_renewed_once(lab, session, irp_server):
    bills = [b2b_bills(lab, session, lab.local)["tax_invoice"] for _ in range(2)]
    rows = [einvoicing.queue_einvoice(b) for b in bills]
    session.commit()
    assert einvoicing.submit(rows[0].id) == "generated"
    irp_server.tokens.clear()  # the IRP forgot the token before its stated expiry
    assert einvoicing.submit(rows[1].id) == "generated"
    assert len(irp_server.calls("/eivital/v1.04/auth")) == 2


def test_unconfigured_irp_leaves_the_invoice_waiting_visibly(lab, session, app, monkeypatch):
    monkeypatch.setitem(app.config, "IRP_CLIENT_ID", "")
    bill = b2b_bills(lab, session, lab.local)["tax_invoice"]
    row = einvoicing.queue_einvoice(bill)
    session.commit()
    assert einvoicing.submit(row.id) == "not-configured"
    security.use_tenant(session, lab.org.id)
    row = session.get(EInvoice, row.id, populate_existing=True)
    assert row.status == "queued" and row.attempts == 0 and row.errors[0]["code"] == "CONFIG"


# ---------------------------------------------------------------- cancel

def generated(lab, session, irp_server, client_row=None) -> EInvoice:
    bill = b2b_bills(lab, session, client_row or lab.local)["tax_invoice"]
    row = einvoicing.queue_einvoice(bill)
    session.commit()
    assert einvoicing.submit(row.id) == "generated"
    security.use_tenant(session, lab.org.id)
    return session.get(EInvoice, row.id, populate_existing=True)


def test_cancel_within_24_hours_through_the_portal(lab, session, irp_server, client, auth):
    row = generated(lab, session, irp_server)
    auth.login(lab.clerk.username, PASSWORD)
    page = client.get(f"/billing/einvoices/{row.id}").get_data(as_text=True)
    assert "Cancel the IRN" in page and row.irn in page and "<svg" in page and "MainHsnCode" in page
    bad = client.post_form(f"/billing/einvoices/{row.id}/cancel", {"reason": "9", "remark": "x"})
    assert bad.status_code == 422 and "Choose why" in bad.get_data(as_text=True)
    ok = client.post_form(f"/billing/einvoices/{row.id}/cancel", {"reason": "2", "remark": "Wrong client billed"})
    assert ok.status_code == 303
    sent = irp_server.calls("/eicore/v1.03/Invoice/Cancel")[0]["body"]
    assert sent == {"Irn": row.irn, "CnlRsn": "2", "CnlRem": "Wrong client billed"}
    security.use_tenant(session, lab.org.id)
    row = session.get(EInvoice, row.id, populate_existing=True)
    assert row.status == "cancelled" and row.cancelled_at and row.cancel_reason.startswith("2 Data entry mistake")
    assert session.execute(select(AuditEvent).where(AuditEvent.action == "einvoice.cancelled")).scalar_one()
    with pytest.raises(einvoicing.EInvoiceRefused):
        einvoicing.retry(row)  # a cancelled number is never reported again


def test_cancel_after_24_hours_is_refused_with_a_clear_message(lab, session, irp_server, client, auth):
    row = generated(lab, session, irp_server)
    row.ack_dt = (datetime.now(einvoicing.IST) - timedelta(hours=24, minutes=1)).strftime("%Y-%m-%d %H:%M:%S")
    session.commit()
    with pytest.raises(einvoicing.EInvoiceRefused, match="credit note"):
        einvoicing.cancel(row, reason="1", remark="Duplicate invoice")
    session.rollback()
    auth.login(lab.clerk.username, PASSWORD)
    response = client.post_form(f"/billing/einvoices/{row.id}/cancel", {"reason": "1", "remark": "Duplicate invoice"})
    assert response.status_code == 422 and "Issue a credit note instead" in response.get_data(as_text=True)
    assert irp_server.calls("/eicore/v1.03/Invoice/Cancel") == []
    security.use_tenant(session, lab.org.id)
    assert session.get(EInvoice, row.id, populate_existing=True).status == "generated"


def test_an_irp_refusal_to_cancel_changes_nothing(lab, session, irp_server):
    row = generated(lab, session, irp_server)
    irp_server.script.append((200, error("2270", "The allowed cancellation time limit is crossed")))
    with pytest.raises(einvoicing.EInvoiceRefused, match="2270"):
        einvoicing.cancel(row, reason="3", remark="Order cancelled by client")
    session.rollback()
    security.use_tenant(session, lab.org.id)
    assert session.get(EInvoice, row.id, populate_existing=True).status == "generated"


def test_a_credit_note_of_an_e_invoiced_invoice_is_reported_as_crn(lab, session, irp_server):
    from app.models import CreditNote

    row = generated(lab, session, irp_server)
    bill = session.get(Bill, row.bill_id)
    line = bill.lines[0]
    # The shape credit notes keep per bill line (services/credit_notes.py).
    entry = {"position": line.position, "description": line.description, "sac_code": line.sac_code,
             "gst_rate": str(line.gst_rate), "taxable_paise": line.taxable_paise, "cgst_paise": line.cgst_paise,
             "sgst_paise": line.sgst_paise, "igst_paise": line.igst_paise, "total_paise": line.total_paise}
    note = CreditNote(bill_id=bill.id, branch_id=bill.branch_id, number="MAIN/C26/000001", fy=bill.fy,
                      note_date=bill.bill_date, reason="Home visit not made", lines=[entry],
                      taxable_paise=line.taxable_paise, cgst_paise=line.cgst_paise, sgst_paise=line.sgst_paise,
                      igst_paise=line.igst_paise, total_paise=line.total_paise)
    session.add(note)
    session.commit()
    assert einvoicing.sweep()["created"] == 1  # the sweep enrols it
    security.use_tenant(session, lab.org.id)
    crn = einvoicing.einvoice_for_credit_note(note.id)
    assert crn.doc_type == "CRN"
    assert crn.local_irn == einvoicing.compute_irn(SELLER_GSTIN, bill.fy, "CRN", "MAIN/C26/000001")
    session.commit()
    assert einvoicing.submit(crn.id) == "generated"
    sent = irp_server.calls("/eicore/v1.03/Invoice")[-1]["body"]
    assert sent["DocDtls"]["Typ"] == "CRN" and sent["RefDtls"]["PrecDocDtls"][0]["InvNo"] == bill.number
    assert paise(sent["ValDtls"]["TotInvVal"]) == line.total_paise and einvoicing.validate(sent) == []
    security.use_tenant(session, lab.org.id)
    assert session.get(EInvoice, crn.id, populate_existing=True).irn == crn.local_irn


# ---------------------------------------------------------------- sweep, portal, scoping

def test_sweep_enrols_eligible_invoices_and_resends_interrupted_ones(lab, session, irp_server):
    bill = b2b_bills(lab, session, lab.local)["tax_invoice"]
    b2b_bills(lab, session, None)  # a walk-in patient's invoice: B2C, never e-invoiced
    security.use_tenant(session, lab.org.id)
    row = einvoicing.einvoice_for_bill(bill.id)
    assert row is not None and row.status == "queued"  # enrolled when the bill was made
    session.delete(row)  # as if that had been missed (a bill from before e-invoicing was switched on)
    session.commit()
    assert einvoicing.sweep()["created"] == 1
    assert einvoicing.sweep()["created"] == 0
    security.use_tenant(session, lab.org.id)
    row = einvoicing.einvoice_for_bill(bill.id)
    row.status, row.next_attempt_at = "submitting", utcnow() - timedelta(minutes=30)
    session.commit()
    assert einvoicing.sweep()["interrupted"] == 1
    assert einvoicing.submit(row.id) == "generated"


def test_settings_are_validated_and_audited(lab, session, client, auth):
    auth.login(lab.clerk.username, PASSWORD)
    page = client.get("/billing/einvoices").get_data(as_text=True)
    assert "₹5 crore" in page and "Notification 10/2023" in page
    bad = client.post_form("/billing/einvoices/settings", {"enabled": "y", "turnover": "five crore"})
    assert bad.status_code == 422 and "Enter the turnover in rupees" in bad.get_data(as_text=True)
    ok = client.post_form("/billing/einvoices/settings", {"turnover": "4,00,00,000"})
    assert ok.status_code == 303
    session.expire_all()
    assert (lab.org.einvoice_enabled, lab.org.aggregate_turnover_paise) == (False, 4 * 10**9)
    event = session.execute(select(AuditEvent).where(AuditEvent.action == "organization.einvoice_settings")).scalar_one()
    assert event.before["einvoice_enabled"] is True and event.after["einvoice_enabled"] is False


def test_the_bill_page_panel_and_list_send_an_invoice(lab, session, client, auth):
    bill = b2b_bills(lab, session, lab.local)["tax_invoice"]
    # Bills are enrolled when made; this one is as if made before e-invoicing was switched on.
    security.use_tenant(session, lab.org.id)
    session.delete(einvoicing.einvoice_for_bill(bill.id))
    session.commit()
    auth.login(lab.clerk.username, PASSWORD)
    page = client.get("/billing/einvoices?status=none").get_data(as_text=True)
    assert bill.number in page and "Send to IRP" in page
    bill_page = client.get(f"/billing/bills/{bill.number}").get_data(as_text=True)
    assert 'id="einvoice-panel"' in bill_page and "Not sent to the IRP yet" in bill_page
    jobs_before = einvoice_jobs()
    response = client.post_form(f"/billing/einvoices/bills/{bill.id}/send", {"from": "bill"},
                                headers={"HX-Request": "true"})
    assert response.status_code == 200 and 'id="einvoice-panel"' in response.get_data(as_text=True)
    security.use_tenant(session, lab.org.id)
    assert einvoicing.einvoice_for_bill(bill.id).status == "queued"
    assert einvoice_jobs() == jobs_before + 1


def test_another_labs_clerk_sees_none_of_it(lab, session, irp_server, client, auth, factory):
    row = generated(lab, session, irp_server)
    bill_id = row.bill_id
    other = factory.org(gstin="29AAGCB7383J1Z4")
    stranger = factory.user(other, "billing")
    auth.login(stranger.username, PASSWORD)
    assert client.get(f"/billing/einvoices/{row.id}").status_code == 404
    assert client.post_form(f"/billing/einvoices/{row.id}/cancel", {"reason": "1", "remark": "mine now"}).status_code == 404
    assert client.post_form(f"/billing/einvoices/bills/{bill_id}/send").status_code == 404
    assert row.irn not in client.get("/billing/einvoices").get_data(as_text=True)
    reception = factory.user(lab.org, "reception")
    auth.logout()
    auth.login(reception.username, PASSWORD)
    assert client.get("/billing/einvoices").status_code == 403
