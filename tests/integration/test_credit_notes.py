"""Credit notes and cancellation: numbering per branch × FY, the tax split to the paisa, never
crediting more than the bill, a cancelled paid bill owing its money back, and the portal's
forms (clear messages, nothing saved on bad input, other labs' bills are 404)."""
from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app import audit
from app.models import AuditEvent, Bill, Branch, CreditNote
from app.services import billing, credit_notes
from tests.factories import PASSWORD


@pytest.fixture
def lab(factory, session):  # type: ignore[no-untyped-def]
    org = factory.org(gstin="29AAGCB7383J1Z4", address_line1="12 MG Road", city="Bengaluru", pin_code="560001")
    factory.catalogue(org)
    clerk = factory.user(org, "billing")
    ctx = audit.AuditContext(actor_label="test", org_id=org.id, actor_user_id=clerk.id)
    with audit.acting_as(ctx):
        yield {"org": org, "clerk": clerk, "factory": factory, "session": session}


def _branch(session) -> Branch:  # type: ignore[no-untyped-def]
    return session.execute(select(Branch).where(Branch.code == "MAIN")).scalar_one()


def _tax_invoice(lab, *, pos: str = "29", discount: int = 777) -> Bill:  # type: ignore[no-untyped-def]
    """A tax invoice with awkward figures: three lines at 18 %, 12 % and 5 %, and a discount."""
    order = lab["factory"].order(lab["org"], ["HB"])
    lines = [billing.LineDraft("Home collection", "998599", 12345, Decimal("18")),
             billing.LineDraft("Courier of sample", "996812", 9999, Decimal("12")),
             billing.LineDraft("Report copy", "998599", 5001, Decimal("5"))]
    bill = billing.build_bill(order, _branch(lab["session"]), "tax_invoice", lines, discount, pos=pos,
                              recipient_name="Acme Hospital", recipient_gstin=None)
    lab["session"].commit()
    return bill


def _count_notes(session) -> int:  # type: ignore[no-untyped-def]
    return session.execute(select(func.count(CreditNote.id))).scalar_one()


def test_numbers_run_in_their_own_series_per_branch_and_financial_year(lab, monkeypatch):  # type: ignore[no-untyped-def]
    session, clerk = lab["session"], lab["clerk"]
    bill = _tax_invoice(lab)
    first = credit_notes.issue_credit_note(bill, amount_paise=1000, reason="Overcharged", actor_id=clerk.id)
    second = credit_notes.issue_credit_note(bill, amount_paise=1000, reason="Overcharged again", actor_id=clerk.id)
    session.commit()
    fy = billing.financial_year(billing.today_in_india())
    assert first.number == f"MAIN/C{fy[2:4]}/000001" and second.number == f"MAIN/C{fy[2:4]}/000002"
    assert first.fy == fy
    for number in (first.number, second.number):
        assert re.fullmatch(r"[A-Z1-9][A-Z0-9/-]{0,15}", number)  # e-invoice DocDtls.No (india.md §1.2)
    # The series is not the bills' series: the bill numbers carry B/T, not C.
    assert "/C" not in bill.number

    # 31 March and 1 April are in different financial years: the series starts again.
    monkeypatch.setattr(billing, "today_in_india", lambda: date(2031, 3, 31))
    march = credit_notes.issue_credit_note(bill, amount_paise=100, reason="FY end", actor_id=clerk.id)
    monkeypatch.setattr(billing, "today_in_india", lambda: date(2031, 4, 1))
    april = credit_notes.issue_credit_note(bill, amount_paise=100, reason="FY start", actor_id=clerk.id)
    session.commit()
    assert (march.fy, march.number) == ("2030-31", "MAIN/C30/000001")
    assert (april.fy, april.number) == ("2031-32", "MAIN/C31/000001")
    assert april.note_date == date(2031, 4, 1)


@pytest.mark.parametrize("pos", ["29", "27"])  # CGST+SGST within Karnataka; IGST to Maharashtra
def test_tax_is_split_like_the_bill_to_the_paisa_and_never_beyond_it(lab, pos):  # type: ignore[no-untyped-def]
    session, clerk = lab["session"], lab["clerk"]
    bill = _tax_invoice(lab, pos=pos)
    assert (bill.igst_paise > 0) == (pos == "27")
    notes = []
    for amount in (3333, 1, 7919):  # odd partial credits, then the rest
        notes.append(credit_notes.issue_credit_note(bill, amount_paise=amount, reason="Partial", actor_id=clerk.id))
    rest = bill.total_paise - bill.credited_paise
    notes.append(credit_notes.issue_credit_note(bill, amount_paise=rest, reason="The rest", actor_id=clerk.id))
    session.commit()
    for note in notes:
        for key in ("taxable_paise", "cgst_paise", "sgst_paise", "igst_paise", "total_paise"):
            assert getattr(note, key) == sum(line[key] for line in note.lines), key
            assert all(isinstance(line[key], int) and line[key] >= 0 for line in note.lines)
        assert note.total_paise == note.taxable_paise + note.cgst_paise + note.sgst_paise + note.igst_paise
    assert [n.total_paise for n in notes[:3]] == [3333, 1, 7919]
    # All the notes together credit exactly the bill, component by component and line by line.
    for key in ("taxable_paise", "cgst_paise", "sgst_paise", "igst_paise", "total_paise"):
        assert sum(getattr(n, key) for n in notes) == getattr(bill, key), key
    for line in bill.lines:
        credited = sum(e["total_paise"] for n in notes for e in n.lines if e["bill_line_id"] == line.id)
        assert credited == line.total_paise
    # A small credit on a taxed bill carries tax in proportion: 3333 of a bill with ~14 % tax.
    first = notes[0]
    assert 0 < first.cgst_paise + first.sgst_paise + first.igst_paise < first.total_paise
    assert session.get(Bill, bill.id).status == "cancelled"  # fully credited


def test_crediting_more_than_is_left_is_refused_and_changes_nothing(lab):  # type: ignore[no-untyped-def]
    session, clerk = lab["session"], lab["clerk"]
    bill = _tax_invoice(lab)
    credit_notes.issue_credit_note(bill, amount_paise=5000, reason="Part", actor_id=clerk.id)
    session.commit()
    before = (bill.credited_paise, bill.status, _count_notes(session))
    with pytest.raises(credit_notes.CreditNoteInvalid, match="can still be credited"):
        credit_notes.issue_credit_note(bill, amount_paise=bill.total_paise - 5000 + 1, reason="Too much",
                                       actor_id=clerk.id)
    session.rollback()
    with pytest.raises(credit_notes.CreditNoteInvalid, match="reason"):
        credit_notes.issue_credit_note(bill, amount_paise=100, reason="   ", actor_id=clerk.id)
    session.rollback()
    with pytest.raises(credit_notes.CreditNoteInvalid, match="above zero"):
        credit_notes.issue_credit_note(bill, amount_paise=0, reason="Zero", actor_id=clerk.id)
    session.rollback()
    bill = session.get(Bill, bill.id)
    assert (bill.credited_paise, bill.status, _count_notes(session)) == before


def test_whole_lines_can_be_credited(lab):  # type: ignore[no-untyped-def]
    session, clerk = lab["session"], lab["clerk"]
    bill = _tax_invoice(lab)
    line = bill.lines[1]
    note = credit_notes.issue_credit_note(bill, line_ids=[line.id], reason="Courier not used", actor_id=clerk.id)
    session.commit()
    assert note.total_paise == line.total_paise and note.taxable_paise == line.taxable_paise
    assert (note.cgst_paise, note.sgst_paise) == (line.cgst_paise, line.sgst_paise)
    with pytest.raises(credit_notes.CreditNoteInvalid, match="still have value"):
        credit_notes.issue_credit_note(bill, line_ids=[line.id], reason="Twice", actor_id=clerk.id)
    session.rollback()


def test_cancelling_a_paid_bill_credits_it_in_full_and_owes_the_money_back(lab):  # type: ignore[no-untyped-def]
    session, clerk, factory = lab["session"], lab["clerk"], lab["factory"]
    order = factory.order(lab["org"], ["CBC"])
    bill = session.execute(select(Bill).where(Bill.order_id == order.id)).scalar_one()
    billing.record_payment(bill, mode="cash", amount_paise=bill.total_paise, reference=None, received_by_id=clerk.id)
    session.commit()
    assert bill.status == "paid"
    note = credit_notes.cancel_bill(bill, reason="Patient left before collection", actor_id=clerk.id)
    session.commit()
    bill = session.get(Bill, bill.id)
    assert bill.status == "cancelled" and bill.cancelled_at is not None
    assert bill.cancel_reason == "Patient left before collection"
    assert note.total_paise == bill.total_paise == bill.credited_paise and note.bill_id == bill.id
    assert bill.refund_owed_paise == bill.paid_paise == bill.total_paise
    assert bill.due_paise == 0
    actions = set(session.execute(select(AuditEvent.action).where(AuditEvent.entity_id == bill.number)).scalars())
    assert {"credit_note.issued", "bill.cancelled"} <= actions
    with pytest.raises(credit_notes.CreditNoteInvalid, match="already cancelled"):
        credit_notes.cancel_bill(bill, reason="Again", actor_id=clerk.id)
    session.rollback()
    with pytest.raises(billing.PaymentInvalid):
        billing.record_payment(bill, mode="cash", amount_paise=100, reference=None, received_by_id=clerk.id)
    session.rollback()


# --- the portal ------------------------------------------------------------------------


def _login(client, auth, user):  # type: ignore[no-untyped-def]
    auth.login(user.username, PASSWORD)


def test_portal_refuses_a_bad_credit_with_a_message_and_saves_nothing(lab, client, auth):  # type: ignore[no-untyped-def]
    session = lab["session"]
    bill = _tax_invoice(lab)
    _login(client, auth, lab["clerk"])
    url = f"/billing/bills/{bill.id}/credit-notes"
    response = client.post_form(url, {"amount": "99999", "reason": "Too much"}, headers={"HX-Request": "true"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "can still be credited" in html and f'id="refund-panel-{bill.id}"' in html
    assert "<html" not in html  # the panel alone, for htmx to swap
    response = client.post_form(url, {"amount": "12.345", "reason": "Paise"})
    assert response.status_code == 422 and "At most two decimals" in response.get_data(as_text=True)
    assert _count_notes(session) == 0
    response = client.post_form(url, {"amount": "10.50", "reason": "Goodwill"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    # The whole bill page comes back (its totals changed), pushed as the bill's URL.
    assert response.headers["HX-Push-Url"] == f"/billing/bills/{bill.number}"
    assert "Credit note MAIN/C" in response.get_data(as_text=True)
    note = session.execute(select(CreditNote)).scalar_one()
    assert note.total_paise == 1050 and note.reason == "Goodwill"


def test_portal_cancel_needs_confirmation_and_other_labs_bills_are_not_found(lab, client, auth):  # type: ignore[no-untyped-def]
    session, factory = lab["session"], lab["factory"]
    bill = _tax_invoice(lab)
    _login(client, auth, lab["clerk"])
    response = client.post_form(f"/billing/bills/{bill.id}/cancel", {"reason": "Duplicate bill"})
    assert response.status_code == 422 and "Tick the box" in response.get_data(as_text=True)
    assert session.get(Bill, bill.id).status == "open"
    response = client.post_form(f"/billing/bills/{bill.id}/cancel", {"reason": "Duplicate bill", "confirm": "yes"})
    assert response.status_code == 303
    session.expire_all()
    assert session.get(Bill, bill.id).status == "cancelled"
    page = client.get(f"/billing/bills/{bill.id}/adjustments").get_data(as_text=True)
    assert "cancelled" in page and "MAIN/C" in page

    other = factory.org()
    factory.catalogue(other)
    with audit.acting_as(audit.AuditContext(actor_label="test", org_id=other.id)):
        foreign = factory.order(other, ["HOME"])
        foreign_bill = session.execute(select(Bill).where(Bill.order_id == foreign.id)).scalars().first()
        foreign_id = foreign_bill.id
    for url in (f"/billing/bills/{foreign_id}/adjustments", f"/billing/bills/{foreign_id}/pdf"):
        assert client.get(url).status_code == 404
    assert client.post_form(f"/billing/bills/{foreign_id}/cancel",
                            {"reason": "x", "confirm": "yes"}).status_code == 404
