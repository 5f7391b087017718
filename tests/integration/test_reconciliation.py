"""Reconciliation (issue 6): statement imports stored then processed by an RQ job (a real
SimpleWorker), matching by reference then amount and time, the exceptions it opens, bad
files that change nothing, re-imports and overlapping statements, manual resolution."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest
from rq import Queue, SimpleWorker
from sqlalchemy import func, select

from app import audit, security
from app.extensions import redis_client
from app.models import AuditEvent, BankMapping, BillingException, Payment, StatementImport, StatementLine
from app.services import ServiceError, billing, orders, reconciliation, statements

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "statements"
IST = timezone(timedelta(hours=5, minutes=30))
ALL_TESTS = ["HB", "WBC", "PLT", "GLUF", "CREA", "TSH", "HOME"]  # ₹1,480 + GST: room for any payment here


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def ist(day: date, hour: int = 11) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=IST)


class Lab:
    """An organization with a billing clerk, a bank mapping, and a helper to take payments."""

    def __init__(self, factory, session):  # type: ignore[no-untyped-def]
        self.factory, self.session = factory, session
        self.org = factory.org()
        factory.catalogue(self.org)
        self.clerk = factory.user(self.org, "billing")
        security.use_tenant(session, self.org.id)
        self.mapping = self.add_mapping()
        session.commit()

    def use(self) -> None:
        security.use_tenant(self.session, self.org.id)

    def add_mapping(self, name: str = "HDFC current account") -> BankMapping:
        self.use()
        with audit.acting_as(audit.AuditContext(actor_label="test", org_id=self.org.id)):
            mapping = reconciliation.save_mapping(None, reconciliation.MappingDraft(
                name=name, date_column="Date", date_format="%d/%m/%Y", credit_column="Deposit Amt.",
                debit_column="Withdrawal Amt.", reference_column="Chq./Ref.No.", narration_column="Narration",
                skip_rows=3))
        self.session.commit()
        return mapping

    def bill(self):  # type: ignore[no-untyped-def]
        order = self.factory.order(self.org, ALL_TESTS, receive=False)
        self.use()
        return max(orders.bills_of(order), key=lambda b: b.due_paise)  # the bill of supply (₹1,080)

    def pay(self, mode: str, rupees: int | float, *, reference: str | None = None, day: date | None = None,
            bill=None, **gateway) -> Payment:  # type: ignore[no-untyped-def]
        bill = bill or self.bill()
        amount = int(round(rupees * 100))
        with audit.acting_as(audit.AuditContext(actor_label="test", org_id=self.org.id)):
            if mode in billing.COUNTER_MODES:
                payment = billing.record_payment(bill, mode=mode, amount_paise=amount, reference=reference,
                                                 received_by_id=None)
            else:  # Razorpay / NEFT money reaches a bill through the same locked path
                payment = billing.apply_payment(billing.lock_bill(bill.id), mode=mode, amount_paise=amount,
                                                notify=False, reference=reference, **gateway)
        if day is not None:
            payment.received_at = ist(day)
        self.session.commit()
        return payment

    def upload(self, name: str, *, kind: str = "bank_csv", content: bytes | None = None, mapping=None,
               window: int | None = None) -> StatementImport:  # type: ignore[no-untyped-def]
        self.use()
        with audit.acting_as(audit.AuditContext(actor_label="test", actor_user_id=self.clerk.id, org_id=self.org.id)):
            imp = reconciliation.import_statement(
                kind=kind, filename=name, content=content if content is not None else fixture(name),
                bank_mapping_id=(mapping or self.mapping).id if kind == "bank_csv" else None,
                actor_id=self.clerk.id, window=window)
        self.session.commit()
        return imp

    def run(self, imp: StatementImport) -> StatementImport:
        assert reconciliation.process_import(imp.id) in ("done", "failed")
        self.use()
        self.session.expire_all()
        return self.session.get(StatementImport, imp.id)

    def lines(self, imp: StatementImport) -> dict[int, StatementLine]:
        self.use()
        return {line.line_no: line for line in self.session.execute(
            select(StatementLine).where(StatementLine.import_id == imp.id)).scalars()}

    def exceptions(self, **filters) -> list[BillingException]:  # type: ignore[no-untyped-def]
        self.use()
        return list(self.session.execute(select(BillingException).filter_by(**filters)
                                         .order_by(BillingException.id)).scalars())


@pytest.fixture
def lab(factory, session):  # type: ignore[no-untyped-def]
    return Lab(factory, session)


def hdfc_payments(lab: Lab) -> dict[str, Payment]:
    """The payments bank_hdfc.csv speaks of (see the fixture's rows)."""
    return {
        "p1": lab.pay("upi", 500, reference="412345678901", day=date(2026, 4, 1)),
        "p2": lab.pay("upi", 350, reference="412345678902", day=date(2026, 4, 1)),
        "p3": lab.pay("card", 1000, reference="APPR77", day=date(2026, 4, 2)),  # no RRN: amount and time
        "p4": lab.pay("upi", 260, reference="412345678904", day=date(2026, 4, 2)),  # the bank shows 250
        "p5": lab.pay("upi", 300, reference="412345678905", day=date(2026, 4, 2)),  # not on the statement
        "cash": lab.pay("cash", 100, day=date(2026, 4, 2)),  # cash never reaches a bank statement
    }


# ---------------------------------------------------------------- parsers (pure)

def test_bank_parser_reads_the_mapping_and_finds_the_rrn_in_the_narration():
    mapping = reconciliation.MappingDraft(name="x", date_column="Date", credit_column="Deposit Amt.",
                                          debit_column="Withdrawal Amt.", reference_column="Chq./Ref.No.",
                                          narration_column="Narration", skip_rows=3)
    lines = list(statements.parse(statements.decode(fixture("bank_hdfc.csv")), "bank_csv", mapping))
    assert [ln.line_no for ln in lines] == [5, 6, 7, 8, 9, 10, 11]  # spreadsheet row numbers
    first, second, third = lines[0], lines[1], lines[2]
    assert (first.txn_date, first.amount_paise, first.reference, first.credit) == (date(2026, 4, 1), 50000, "412345678901", True)
    assert second.reference == "412345678902"  # no reference column value: the 12-digit RRN of the narration
    assert third.amount_paise == 100000 and third.reference == "N092261234567890"
    assert lines[-1].amount_paise == -10000 and lines[-1].credit is False


def test_razorpay_csv_and_api_json_parse_to_the_same_lines():
    from_csv = list(statements.parse(fixture("razorpay_recon.csv").decode(), "razorpay_settlement", None))
    from_json = list(statements.parse(fixture("razorpay_recon.json").decode(), "razorpay_settlement", None))
    key = lambda ln: (ln.txn_date, ln.amount_paise, ln.credit, ln.reference, ln.gateway_payment_id,  # noqa: E731
                      ln.settlement_utr, ln.fee_paise, ln.tax_paise)
    assert [key(ln) for ln in from_csv] == [key(ln) for ln in from_json]
    pay, refund = from_json[0], from_json[3]
    assert (pay.amount_paise, pay.fee_paise, pay.tax_paise, pay.gateway_payment_id, pay.order_receipt) == (
        50000, 1180, 180, "pay_RZPtest0000001", "MAIN/2026-27/B000001")
    assert pay.txn_date == date(2026, 4, 1) and pay.settlement_utr == "1568176960vxp0rj"
    assert refund.amount_paise == -10000 and refund.credit is False and refund.reference == "pay_RZPtest0000001"


@pytest.mark.parametrize("text, expected", [
    ("1,250.50", 125050), ("₹ 1250.5", 125050), ("1250.50 Cr", 125050), ("250.00 Dr", -25000), ("(99.99)", -9999),
])
def test_rupees_in_bank_formats(text, expected):
    assert statements.rupees_to_paise(text) == expected


@pytest.mark.parametrize("text", ["12x", "1.005", "", "1e3x", "NaN"])
def test_rupees_refuses_what_is_not_an_amount(text):
    with pytest.raises(ValueError):
        statements.rupees_to_paise(text)


def test_a_bad_razorpay_row_is_named_by_row_and_column():
    body = fixture("razorpay_recon.csv").decode().replace(",50000,INR,", ",500.00,INR,").replace(",35000,INR,", ",35000,USD,")
    with pytest.raises(statements.StatementInvalid) as err:
        list(statements.parse(body, "razorpay_settlement", None))
    assert "Row 2, column 'amount': '500.00' is not a whole number of paise" in err.value.message
    assert "Row 3, column 'currency': USD" in err.value.message


# ---------------------------------------------------------------- bank statement end to end

def test_bank_statement_through_a_real_worker_matches_and_opens_exceptions(lab, session):
    pays = hdfc_payments(lab)
    imp = lab.upload("bank_hdfc.csv")
    assert imp.status == "queued" and imp.content.startswith("HDFC BANK LTD")
    conn = redis_client()
    queue = Queue("recon", connection=conn)
    assert queue.job_ids == [reconciliation.job_id(imp.id)]  # queued after the commit
    SimpleWorker([queue], connection=conn).work(burst=True)
    lab.use()
    session.expire_all()
    imp = session.get(StatementImport, imp.id)
    assert imp.status == "done", imp.error
    lines = lab.lines(imp)
    states = {no: (ln.status, ln.match_rule, ln.payment_id) for no, ln in lines.items()}
    assert states == {
        5: ("matched", "reference", pays["p1"].id),
        6: ("matched", "reference", pays["p2"].id),  # RRN read from the narration
        7: ("matched", "amount_time", pays["p3"].id),  # ₹1,000 card, the only candidate within ±2 days
        8: ("mismatch", "reference", pays["p4"].id),  # bank ₹250, payment ₹260
        9: ("duplicate", None, None),  # p1's RRN again, another day
        10: ("unmatched", None, None),
        11: ("debit", None, None),  # bank charges
    }
    c = imp.counts
    assert (c["rows"], c["new"], c["matched"], c["mismatch"], c["duplicate"], c["unmatched"], c["debit"]) == (7, 7, 3, 1, 1, 1, 1)
    assert (c["by_reference"], c["by_amount_time"], c["missing"]) == (2, 1, 1)
    found = {(e.kind, e.statement_line_id or e.payment_id) for e in lab.exceptions(status="open")}
    assert found == {("amount_mismatch", lines[8].id), ("duplicate", lines[9].id), ("unmatched_credit", lines[10].id),
                     ("missing_from_statement", pays["p5"].id)}
    mismatch = lab.exceptions(kind="amount_mismatch")[0]
    assert mismatch.payment_id == pays["p4"].id and mismatch.bill_id == pays["p4"].bill_id
    assert mismatch.details["payment_amount_paise"] == 26000 and mismatch.amount_paise == 25000
    dup = lab.exceptions(kind="duplicate")[0]
    assert dup.payment_id == pays["p1"].id  # the payment it repeats
    assert session.execute(select(AuditEvent).where(AuditEvent.action == "statement_import.processed",
                                                    AuditEvent.entity_id == str(imp.id))).scalar_one()


def test_running_the_job_again_changes_nothing_and_the_same_file_is_refused(lab, session):
    hdfc_payments(lab)
    imp = lab.run(lab.upload("bank_hdfc.csv"))
    snapshot = lambda: (  # noqa: E731
        sorted((ln.id, ln.status, ln.payment_id) for ln in lab.lines(imp).values()),
        sorted((e.id, e.kind, e.status) for e in lab.exceptions()))
    before = snapshot()
    assert reconciliation.process_import(imp.id) == "done"
    assert snapshot() == before
    with pytest.raises(reconciliation.ImportRefused, match=f"already imported \\(import #{imp.id}"):
        lab.upload("bank_hdfc.csv")
    session.rollback()
    lab.use()
    assert session.execute(select(func.count(StatementImport.id))).scalar_one() == 1


def test_an_overlapping_statement_adds_only_its_new_lines_and_finds_the_missing_payment(lab, session):
    pays = hdfc_payments(lab)
    first = lab.run(lab.upload("bank_hdfc.csv"))
    missing = lab.exceptions(kind="missing_from_statement")[0]
    assert missing.payment_id == pays["p5"].id and missing.status == "open"
    second = lab.run(lab.upload("bank_hdfc_next.csv"))
    assert second.status == "done", second.error
    c = second.counts
    assert (c["rows"], c["new"], c["already_present"]) == (3, 1, 2)
    (line,) = lab.lines(second).values()
    assert (line.status, line.payment_id, line.txn_date) == ("matched", pays["p5"].id, date(2026, 4, 4))
    # p5 was flagged missing by the first statement; the next one shows it (T+2): closed, audited.
    session.refresh(missing)
    assert (missing.status, missing.resolution) == ("resolved", "matched")
    assert f"import #{second.id}" in missing.note and c["missing_found"] == 1
    assert len(lab.lines(first)) == 7  # the overlapping lines stay with the first import


def test_amount_matching_needs_a_single_candidate_on_both_sides(lab):
    a = lab.pay("card", 700, reference="APPR1", day=date(2026, 4, 2))
    b = lab.pay("card", 700, reference="APPR2", day=date(2026, 4, 3))
    far = lab.pay("card", 640, reference="APPR3", day=date(2026, 4, 20))  # outside ±2 days
    body = ("\n\n\nDate,Narration,Chq./Ref.No.,Value Dt,Withdrawal Amt.,Deposit Amt.,Closing Balance\n"
            "02/04/2026,POS SETTLEMENT,,02/04/2026,,700.00,0\n"
            "03/04/2026,POS SETTLEMENT 2,,03/04/2026,,640.00,0\n").encode()
    imp = lab.run(lab.upload("ambiguous.csv", content=body))
    states = {ln.amount_paise: (ln.status, ln.payment_id) for ln in lab.lines(imp).values()}
    assert states == {70000: ("unmatched", None), 64000: ("unmatched", None)}
    assert {a.id, b.id, far.id}.isdisjoint({e.payment_id for e in lab.exceptions(kind="unmatched_credit")})
    # With a wider window (chosen at upload) the far payment is the one candidate.
    wide = lab.run(lab.upload("ambiguous_wide.csv", content=body + b"\n", window=10))
    assert wide.counts["new"] == 0  # the same lines: nothing is added twice, and nothing re-matched


def test_a_payment_of_another_lab_is_never_matched(lab, factory, session):
    other = Lab(factory, session)
    theirs = other.pay("upi", 500, reference="412345678901", day=date(2026, 4, 1))
    imp = lab.run(lab.upload("bank_hdfc.csv"))
    lines = lab.lines(imp)
    assert lines[5].status == "unmatched" and lines[5].payment_id is None
    other.use()
    assert session.execute(select(func.count(StatementLine.id))).scalar_one() == 0
    assert session.get(Payment, theirs.id) is not None and other.exceptions() == []


# ---------------------------------------------------------------- bad files change nothing

def test_a_file_without_the_mapped_columns_is_refused_at_upload(lab, session):
    with pytest.raises(statements.StatementInvalid) as err:
        lab.upload("bank_wrong_columns.csv")
    assert "Row 4 (the header) has no column 'Date', 'Chq./Ref.No.', 'Deposit Amt.'" in err.value.message
    session.rollback()
    lab.use()
    assert session.execute(select(func.count(StatementImport.id))).scalar_one() == 0


def test_a_non_numeric_amount_fails_the_import_naming_row_and_column_and_adds_no_line(lab, session):
    lab.pay("upi", 500, reference="412345678901", day=date(2026, 4, 1))
    imp = lab.run(lab.upload("bank_bad_amount.csv"))
    assert imp.status == "failed"
    assert "Row 6, column 'Deposit Amt.': '3S0.00' is not an amount in rupees." in imp.error
    assert lab.lines(imp) == {} and lab.exceptions() == []
    assert imp.content  # the raw file is kept


def test_another_currency_fails_the_import(lab, session):
    lab.use()
    with audit.acting_as(audit.AuditContext(actor_label="test", org_id=lab.org.id)):
        usd = reconciliation.save_mapping(None, reconciliation.MappingDraft(
            name="ICICI USD", date_column="Value Date", date_format="%Y-%m-%d", amount_column="Amount",
            reference_column="UTR", narration_column="Details", currency_column="Currency"))
    session.commit()
    imp = lab.run(lab.upload("bank_usd.csv", mapping=usd))
    assert imp.status == "failed" and "Row 2, column 'Currency': USD — only INR" in imp.error
    assert lab.lines(imp) == {}


def test_a_failed_file_uploaded_again_with_a_fixed_mapping_is_processed(lab, session):
    lab.use()
    with audit.acting_as(audit.AuditContext(actor_label="test", org_id=lab.org.id)):
        wrong = reconciliation.save_mapping(None, reconciliation.MappingDraft(
            name="Wrong date format", date_column="Date", date_format="%Y-%m-%d", credit_column="Deposit Amt.",
            debit_column="Withdrawal Amt.", reference_column="Chq./Ref.No.", skip_rows=3))
    session.commit()
    failed = lab.run(lab.upload("bank_hdfc.csv", mapping=wrong))
    assert failed.status == "failed" and "Row 5, column 'Date': '01/04/2026' is not a date in the format %Y-%m-%d" in failed.error
    again = lab.run(lab.upload("bank_hdfc.csv"))
    assert again.id == failed.id and again.status == "done" and again.counts["rows"] == 7


def test_mapping_validation():
    draft = reconciliation.MappingDraft(name="", date_column="Date", date_format="%Q", reference_column="Ref",
                                        amount_column="Amt", credit_column="Cr")
    errors = draft.validate()
    assert set(errors) == {"name", "date_format", "amount_column"}


# ---------------------------------------------------------------- Razorpay settlement

def test_razorpay_settlement_matches_gateway_payments_by_payment_id(lab):
    a = lab.pay("razorpay", 500, day=date(2026, 4, 1), gateway_payment_id="pay_RZPtest0000001",
                gateway_order_id="order_RZPtest00001", gateway_method="upi", rrn="512345678901")
    b = lab.pay("razorpay", 350, day=date(2026, 4, 1), gateway_payment_id="pay_RZPtest0000002",
                gateway_order_id="order_RZPtest00002", gateway_method="card")
    lost = lab.pay("razorpay", 90, day=date(2026, 4, 2), gateway_payment_id="pay_RZPnotsettled")
    imp = lab.run(lab.upload("razorpay_recon.json", kind="razorpay_settlement"))
    assert imp.status == "done", imp.error
    by_ref = {ln.reference: ln for ln in lab.lines(imp).values()}
    assert (by_ref["pay_RZPtest0000001"].status, by_ref["pay_RZPtest0000001"].payment_id) == ("matched", a.id)
    assert by_ref["pay_RZPtest0000001"].fee_paise == 1180 and by_ref["pay_RZPtest0000001"].settlement_utr == "1568176960vxp0rj"
    assert by_ref["pay_RZPtest0000002"].payment_id == b.id
    assert by_ref["pay_RZPtest0000009"].status == "unmatched"  # settled by Razorpay, unknown here
    refund = next(ln for ln in lab.lines(imp).values() if ln.amount_paise < 0)
    assert refund.status == "debit" and refund.payment_id is None
    assert {e.payment_id for e in lab.exceptions(kind="missing_from_statement")} == {lost.id}
    # The CSV export of the same rows is another file, but the same lines: nothing is added.
    again = lab.run(lab.upload("razorpay_recon.csv", kind="razorpay_settlement"))
    assert again.counts["new"] == 0 and again.counts["already_present"] == 4


# ---------------------------------------------------------------- clerk's resolutions

def _resolve(lab, exc, **kwargs):  # type: ignore[no-untyped-def]
    lab.use()
    with audit.acting_as(audit.AuditContext(actor_label="clerk", actor_user_id=lab.clerk.id, org_id=lab.org.id)):
        result = reconciliation.resolve_exception(exc, actor_id=lab.clerk.id, **kwargs)
    lab.session.commit()
    return result


def test_clerk_matches_an_unmatched_credit_by_bill_number(lab, session):
    hdfc_payments(lab)
    imp = lab.run(lab.upload("bank_hdfc.csv"))
    exc = lab.exceptions(kind="unmatched_credit")[0]
    counter = lab.pay("upi", 999, reference="412300000000", day=date(2026, 4, 3))  # the RRN was mistyped at the desk
    bill = session.get(billing.Bill, counter.bill_id)
    with pytest.raises(ServiceError, match="Write a note"):
        _resolve(lab, exc, action="match", reference=bill.number, note="  ")
    session.rollback()
    _resolve(lab, exc, action="match", reference=bill.number, note="Payer's app shows 499999999999; desk typo.")
    line = lab.lines(imp)[10]
    assert (line.status, line.payment_id, line.match_rule) == ("matched", counter.id, "manual")
    session.refresh(exc)
    assert (exc.status, exc.resolution, exc.resolved_by_id) == ("resolved", "matched", lab.clerk.id)
    actions = set(session.execute(select(AuditEvent.action).where(AuditEvent.actor_user_id == lab.clerk.id)).scalars())
    assert {"statement_line.matched", "billing_exception.resolved"} <= actions


def test_manual_match_refuses_a_taken_payment_or_a_different_amount(lab, session):
    pays = hdfc_payments(lab)
    lab.run(lab.upload("bank_hdfc.csv"))
    exc = lab.exceptions(kind="unmatched_credit")[0]
    with pytest.raises(ServiceError, match="No unsettled payment"):
        _resolve(lab, exc, action="match", reference="412345678901", note="try p1")  # already matched
    session.rollback()
    with pytest.raises(ServiceError, match="The line is 999.00 and the payment 300.00"):
        _resolve(lab, exc, action="match", reference="412345678905", note="try p5")
    session.rollback()
    assert lab.exceptions(kind="unmatched_credit")[0].status == "open"
    assert pays["p5"].id in {e.payment_id for e in lab.exceptions(kind="missing_from_statement", status="open")}


def test_written_off_and_ignored_close_with_a_note(lab, session):
    hdfc_payments(lab)
    imp = lab.run(lab.upload("bank_hdfc.csv"))
    unmatched = lab.exceptions(kind="unmatched_credit")[0]
    mismatch = lab.exceptions(kind="amount_mismatch")[0]
    _resolve(lab, unmatched, action="ignored", note="Owner's own transfer, not a patient payment.")
    _resolve(lab, mismatch, action="written_off", note="₹10 short; patient paid cash difference, receipt 88.")
    assert lab.lines(imp)[10].status == "ignored"
    assert lab.lines(imp)[8].status == "mismatch"  # the evidence stays as it was
    with pytest.raises(ServiceError, match="already resolved"):
        _resolve(lab, mismatch, action="ignored", note="again")
    session.rollback()
    assert {(e.kind, e.resolution) for e in lab.exceptions(status="resolved")} == {
        ("unmatched_credit", "ignored"), ("amount_mismatch", "written_off")}


def test_sweep_requeues_a_lost_import(lab, session):
    imp = lab.upload("bank_hdfc.csv")
    queue = Queue("recon", connection=redis_client())
    queue.empty()  # Redis lost the job
    imp.imported_at = datetime.now(timezone.utc) - timedelta(minutes=5)
    session.commit()
    assert reconciliation.sweep() == {"requeued": 1, "alive": 0}
    assert reconciliation.sweep() == {"requeued": 0, "alive": 1}
