"""Property tests for reconciliation on the real database: random payments, and statements
built from them that are shuffled, duplicated, truncated, with wrong amounts and strangers'
credits, imported as two overlapping files. Whatever the mix, a payment is settled at most
once, each line ends in exactly one state, matched amounts agree, duplicates are flagged,
counts add up, and running or importing again changes nothing."""
from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime, time, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app import audit, security
from app.models import BankMapping, Bill, BillingException, Branch, Payment, StatementImport, StatementLine
from app.services import reconciliation

IST = timezone(timedelta(hours=5, minutes=30))
BASE = date(2026, 5, 4)
HEADER = "Date,Narration,Reference,Credit,Debit\n"

payment_st = st.fixed_dictionaries({
    # A few common amounts make amount-and-time matching meet ties.
    "amount": st.one_of(st.sampled_from([25000, 35000, 50000]), st.integers(100, 300_000)),
    "rrn": st.booleans(),
    "day": st.integers(0, 4),
    "copies": st.sampled_from([0, 1, 1, 1, 2]),  # 0: missing from the statement; 2: the bank repeated it
    "off_by": st.sampled_from([0, 0, 0, 0, 100]),  # a line whose amount differs from the payment
})
case_st = st.fixed_dictionaries({
    "payments": st.lists(payment_st, min_size=1, max_size=10),
    "strangers": st.lists(st.tuples(st.integers(100, 300_000), st.integers(0, 4)), max_size=3),
    "debits": st.integers(1, 2),  # never an empty statement
    "seed": st.integers(0, 2**32 - 1),
    "cut": st.tuples(st.floats(0, 1), st.floats(0, 1)),
})


def _setup_org(factory, session):  # type: ignore[no-untyped-def]
    org = factory.org()
    security.use_tenant(session, org.id)
    branch = session.execute(select(Branch)).scalar_one()
    bill = Bill(branch_id=branch.id, doc_type="bill_of_supply", number="P/B000001", fy="2026-27", bill_date=BASE,
                recipient_name="Test", place_of_supply="29", gross_paise=10**9, taxable_paise=10**9, total_paise=10**9)
    mapping = BankMapping(name="Property bank", date_column="Date", date_format="%Y-%m-%d", credit_column="Credit",
                          debit_column="Debit", reference_column="Reference", narration_column="Narration")
    session.add_all([bill, mapping])
    session.flush()
    return org, bill, mapping


def _statement(case, payments: list[Payment]) -> list[str]:
    """CSV rows (no header) for the case, shuffled with its seed."""
    rows = []
    for spec, payment in zip(case["payments"], payments):
        day = (BASE + timedelta(days=spec["day"])).isoformat()
        amount = spec["amount"] + spec["off_by"]
        for _ in range(spec["copies"]):
            if payment.rrn:
                rows.append(f"{day},UPI-PAYER-{payment.rrn}-LAB,{payment.rrn},{amount / 100:.2f},")
            else:
                rows.append(f"{day},POS SETTLEMENT {payment.id},,{amount / 100:.2f},")
    for i, (amount, offset) in enumerate(case["strangers"]):
        rows.append(f"{(BASE + timedelta(days=offset)).isoformat()},UPI-STRANGER-{i},{900000000000 + i},{amount / 100:.2f},")
    for i in range(case["debits"]):
        rows.append(f"{BASE.isoformat()},BANK CHARGES {i},,,{(i + 1) * 10:.2f}")
    random.Random(case["seed"]).shuffle(rows)
    return rows


def _import(content: str, name: str, mapping: BankMapping, session) -> StatementImport:  # type: ignore[no-untyped-def]
    imp = reconciliation.import_statement(kind="bank_csv", filename=name, content=content.encode(),
                                          bank_mapping_id=mapping.id, actor_id=None)
    session.commit()
    org_id = imp.org_id
    assert reconciliation.process_import(imp.id) == "done"
    security.use_tenant(session, org_id)
    session.expire_all()
    return session.get(StatementImport, imp.id)


def _snapshot(session):  # type: ignore[no-untyped-def]
    lines = sorted(session.execute(select(StatementLine.id, StatementLine.status, StatementLine.payment_id,
                                          StatementLine.match_rule)).all())
    exceptions = sorted(session.execute(select(BillingException.id, BillingException.kind, BillingException.status,
                                               BillingException.statement_line_id, BillingException.payment_id)).all())
    return lines, exceptions


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=case_st)
def test_reconciliation_invariants(factory, session, case):  # type: ignore[no-untyped-def]
    org, bill, mapping = _setup_org(factory, session)
    with audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id)):
        payments = []
        for i, spec in enumerate(case["payments"]):
            received = datetime.combine(BASE + timedelta(days=spec["day"]), time(11), tzinfo=IST)
            payments.append(Payment(bill_id=bill.id, mode="upi" if spec["rrn"] else "card", amount_paise=spec["amount"],
                                    reference=f"{700000000000 + i}" if spec["rrn"] else f"APPR{i}",
                                    rrn=f"{700000000000 + i}" if spec["rrn"] else None, received_at=received))
        session.add_all(payments)
        session.commit()

        rows = _statement(case, payments)
        # Two overlapping partial statements (truncated at both ends), imported one after the other.
        a, b = sorted(int(x * len(rows)) for x in case["cut"])
        first_rows, second_rows = rows[: max(b, 1)], rows[a:]
        first = _import(HEADER + "\n".join(first_rows) + "\n", "first.csv", mapping, session)
        # CRLF line ends: other bytes (so not refused as the same file) for the same rows.
        second = _import((HEADER + "\n".join(second_rows) + "\n").replace("\n", "\r\n"), "second.csv", mapping,
                         session) if second_rows else None

        lines = list(session.execute(select(StatementLine)).scalars())
        by_id = {p.id: p for p in payments}

        # Overlap: a line in both files is stored once (per key, the larger count of the two files).
        expected_total = sum(max(Counter(first_rows)[r], Counter(second_rows)[r]) for r in set(first_rows) | set(second_rows))
        assert len(lines) == expected_total

        # Each line in exactly one state; a payment only on matched/mismatch lines.
        states = Counter()
        for line in lines:
            assert line.status in reconciliation.LINE_STATES
            states[line.status] += 1
            assert (line.payment_id is not None) == (line.status in ("matched", "mismatch"))
            if line.status == "matched":
                assert line.amount_paise == by_id[line.payment_id].amount_paise
            if line.status == "mismatch":
                assert line.amount_paise != by_id[line.payment_id].amount_paise
            if line.payment_id and line.reference and by_id[line.payment_id].rrn:
                assert line.reference == by_id[line.payment_id].rrn  # never paired across two different RRNs
            assert (line.status == "debit") == (line.amount_paise <= 0)

        # A payment is settled at most once.
        settled = Counter(line.payment_id for line in lines if line.payment_id)
        assert all(n == 1 for n in settled.values())

        # Duplicates are flagged: a payment whose RRN is on the statement is settled exactly
        # once, and each other line quoting that RRN is a duplicate. (Within one import the RRN
        # line settles it; an earlier import may have settled it on amount and time alone.)
        for payment in payments:
            if not payment.rrn:
                continue
            mine = [ln for ln in lines if ln.reference == payment.rrn]
            if mine:
                assert settled[payment.id] == 1
                assert all(ln.payment_id == payment.id or ln.status == "duplicate" for ln in mine)
                assert sum(1 for ln in mine if ln.status == "duplicate") >= len(mine) - 1

        # Counts add up, per import and overall.
        imports = [i for i in (first, second) if i is not None]
        for imp in imports:
            c = imp.counts
            assert c["rows"] == c["new"] + c["already_present"]
            assert sum(c[s] for s in reconciliation.LINE_STATES) == c["new"]
            assert c["matched"] == c["by_reference"] + c["by_amount_time"]
        assert sum(i.counts["new"] for i in imports) == len(lines)
        assert sum(i.counts[s] for i in imports for s in reconciliation.LINE_STATES) == sum(states.values())

        # An exception for each line a clerk must look at, and one per payment flagged missing.
        open_lines = Counter(e.statement_line_id for e in session.execute(
            select(BillingException).where(BillingException.statement_line_id.is_not(None))).scalars())
        assert set(open_lines) == {ln.id for ln in lines if ln.status in ("unmatched", "mismatch", "duplicate")}
        assert all(n == 1 for n in open_lines.values())
        missing = session.execute(select(BillingException).where(BillingException.kind == "missing_from_statement",
                                                                 BillingException.status == "open")).scalars().all()
        assert all(p not in settled for p in (e.payment_id for e in missing))

        # Running the jobs again, or importing the same file again, changes nothing.
        before = _snapshot(session)
        for imp in imports:
            assert reconciliation.process_import(imp.id) == "done"
        security.use_tenant(session, org.id)
        with pytest.raises(reconciliation.ImportRefused, match="already imported"):
            reconciliation.import_statement(kind="bank_csv", filename="again.csv",
                                            content=(HEADER + "\n".join(first_rows) + "\n").encode(),
                                            bank_mapping_id=mapping.id, actor_id=None)
        session.rollback()
        security.use_tenant(session, org.id)
        assert _snapshot(session) == before
        assert session.execute(select(func.count(StatementImport.id))).scalar_one() == len(imports)
