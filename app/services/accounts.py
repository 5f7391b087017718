"""B2B accounts: bills on account for a client (hospital, corporate, referring lab), its
credit limit, outstanding and ageing, the monthly statement, receipts against it (NEFT,
cheque, UPI) and advances/deposits. Money is integer paise; every change is audited.

Every rupee that reaches a bill goes through billing.lock_bill + billing.apply_payment (one
locked path), so a receipt allocated here and a counter payment taken at the same moment can
never pay a bill twice."""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError

from app import audit
from app.extensions import db
from app.formatting import format_paise
from app.models import Advance, Bill, Branch, Client, ClientReceipt, CreditNote, Order, Patient, Payment, Refund
from app.services import ServiceError, billing
from app.services.billing import IST

RECEIPT_MODES = {"neft": "NEFT / RTGS / IMPS", "cheque": "Cheque", "upi": "UPI"}
ADVANCE_MODES = {"cash": "Cash", "card": "Card", "upi": "UPI", "neft": "NEFT / RTGS", "cheque": "Cheque"}
# Receipts against a statement are taken by the accounts desk, not at a reception counter:
# their payments carry this counter so a desk's day-end UPI figures are not inflated by them.
ACCOUNTS_COUNTER = "accounts"
OPEN_STATUSES = ("open", "partly_paid")
AGEING_BUCKETS = ("0-30", "31-60", "61-90", "90+")


class AccountError(ServiceError):
    pass


class CreditLimitExceeded(AccountError):
    pass


# --- on-account billing ----------------------------------------------------------------

def mark_on_account(bills: list[Bill], client: Client | None) -> None:
    """An order placed for a client is billed on account: the client pays it against its
    monthly statement, due `credit_days` after the bill date. Any receipt money the client
    has not yet had allocated is applied to these bills straight away."""
    if client is None:
        return
    for bill in bills:
        if bill.on_account and bill.client_id == client.id:
            continue
        bill.client_id = client.id
        bill.on_account = True
        bill.due_date = bill.bill_date + timedelta(days=client.credit_days or 0)
        audit.record("bill.on_account", entity_type="bill", entity_id=bill.number,
                     after={"client": client.code, "due_date": bill.due_date, "total_paise": bill.total_paise})
    db.session.flush()
    allocate_unapplied(client)


def bill_on_account(bills: list[Bill], client: Client | None) -> None:
    """The hook for billing.bills_for_order: refuse bills past the client's credit limit
    (checked before they count as outstanding), then put them on the client's account."""
    if client is None:
        return
    check_credit(client, sum(b.total_paise for b in bills))
    mark_on_account(bills, client)


def _dues_expr():  # type: ignore[no-untyped-def]
    return func.greatest(Bill.total_paise - Bill.credited_paise - Bill.paid_paise, 0)


def outstanding_paise(client: Client) -> int:
    """What the client owes on its on-account bills now (paise)."""
    return int(db.session.execute(
        select(func.coalesce(func.sum(_dues_expr()), 0))
        .where(Bill.client_id == client.id, Bill.on_account.is_(True), Bill.status.in_(OPEN_STATUSES))).scalar_one())


def unapplied_receipts_paise(client: Client) -> int:
    return int(db.session.execute(
        select(func.coalesce(func.sum(ClientReceipt.amount_paise - ClientReceipt.allocated_paise), 0))
        .where(ClientReceipt.client_id == client.id)).scalar_one())


def check_credit(client: Client, new_amount_paise: int) -> None:
    """Refuse new on-account billing that would take the client past its credit limit:
    outstanding dues − money received but not yet allocated + this order ≤ limit.
    A limit of 0 means no limit was agreed (as in the admin's client form, where 0 is the
    default), so nothing is refused for it."""
    limit = client.credit_limit_paise or 0
    if limit <= 0 or new_amount_paise <= 0:
        return
    exposure = outstanding_paise(client) - unapplied_receipts_paise(client)
    if exposure + new_amount_paise > limit:
        available = max(0, limit - exposure)
        raise CreditLimitExceeded(
            f"{client.name} is over its credit limit: {format_paise(max(exposure, 0))} outstanding + "
            f"{format_paise(new_amount_paise)} for this order is more than the limit of {format_paise(limit)} "
            f"(available {format_paise(available)}). Take payment now or ask accounts to raise the limit.",
            field="client_id")


# --- outstanding and ageing ------------------------------------------------------------

@dataclass
class ClientBalance:
    client: Client
    outstanding_paise: int = 0
    overdue_paise: int = 0
    buckets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(AGEING_BUCKETS, 0))
    open_bills: int = 0
    unapplied_paise: int = 0
    advance_paise: int = 0

    @property
    def credit_used_percent(self) -> int | None:
        limit = self.client.credit_limit_paise
        return None if not limit else (self.outstanding_paise * 100) // limit


def balances(as_of: date | None = None, *, client_id: int | None = None) -> list[ClientBalance]:
    """Outstanding and ageing per client, aged by days since the bill date (0–30, 31–60,
    61–90, 90+), and what is overdue past each bill's due date; one query for the bills."""
    as_of = as_of or billing.today_in_india()
    age = as_of - Bill.bill_date  # date − date is an integer number of days in PostgreSQL
    due = _dues_expr()

    def bucket(low: int, high: int | None):  # type: ignore[no-untyped-def]
        cond = age >= low if high is None else (age >= low) & (age <= high)
        return func.coalesce(func.sum(case((cond, due), else_=0)), 0)

    stmt = (select(Client, func.coalesce(func.sum(due), 0), bucket(-100000, 30), bucket(31, 60), bucket(61, 90),
                   bucket(91, None),
                   func.coalesce(func.sum(case((Bill.due_date < as_of, due), else_=0)), 0),
                   func.count(Bill.id))
            .outerjoin(Bill, (Bill.client_id == Client.id) & Bill.on_account.is_(True)
                       & Bill.status.in_(OPEN_STATUSES))
            .group_by(Client.id).order_by(Client.name))
    if client_id is not None:
        stmt = stmt.where(Client.id == client_id)
    unapplied = dict(db.session.execute(
        select(ClientReceipt.client_id, func.sum(ClientReceipt.amount_paise - ClientReceipt.allocated_paise))
        .group_by(ClientReceipt.client_id)).all())
    advances = dict(db.session.execute(
        select(Advance.client_id, func.sum(Advance.amount_paise - Advance.used_paise))
        .where(Advance.client_id.is_not(None)).group_by(Advance.client_id)).all())
    rows = []
    for client, total, b1, b2, b3, b4, overdue, count in db.session.execute(stmt):
        if not client.active and not total and client_id is None:
            continue
        rows.append(ClientBalance(client=client, outstanding_paise=int(total), overdue_paise=int(overdue),
                                  buckets=dict(zip(AGEING_BUCKETS, (int(b1), int(b2), int(b3), int(b4)))),
                                  open_bills=int(count), unapplied_paise=int(unapplied.get(client.id) or 0),
                                  advance_paise=int(advances.get(client.id) or 0)))
    return rows


def open_bills(client: Client) -> list[Bill]:
    """The client's on-account bills with money due, oldest first (the allocation order)."""
    return list(db.session.execute(
        select(Bill).where(Bill.client_id == client.id, Bill.on_account.is_(True), Bill.status.in_(OPEN_STATUSES))
        .order_by(Bill.bill_date, Bill.id)).scalars())


def receipts(client: Client, *, limit: int = 50) -> list[ClientReceipt]:
    return list(db.session.execute(
        select(ClientReceipt).where(ClientReceipt.client_id == client.id)
        .order_by(ClientReceipt.received_on.desc(), ClientReceipt.id.desc()).limit(limit)).scalars())


# --- monthly statement -----------------------------------------------------------------

@dataclass
class StatementEntry:
    day: date
    kind: str  # bill | credit_note | receipt | payment | refund | advance
    number: str
    description: str
    debit_paise: int = 0
    credit_paise: int = 0
    balance_paise: int = 0


@dataclass
class Statement:
    client: Client
    start: date
    end: date  # inclusive
    opening_paise: int
    entries: list[StatementEntry]
    bills_paise: int
    credit_notes_paise: int
    receipts_paise: int  # receipts, other payments and deposits, net of refunds
    closing_paise: int

    @property
    def label(self) -> str:
        return self.start.strftime("%B %Y")


def month_bounds(month: str | None) -> tuple[date, date]:
    """'2026-11' → (1 Nov 2026, 30 Nov 2026); the current month (IST) when empty."""
    today = billing.today_in_india()
    if not month:
        year, mon = today.year, today.month
    else:
        match = re.fullmatch(r"(\d{4})-(\d{1,2})", month.strip())
        if not match or not 1 <= int(match.group(2)) <= 12 or not 2000 <= int(match.group(1)) <= 2100:
            raise AccountError("Choose a month like 2026-11.", field="month")
        year, mon = int(match.group(1)), int(match.group(2))
    return date(year, mon, 1), date(year, mon, calendar.monthrange(year, mon)[1])


def ist_start(day: date) -> datetime:
    """Midnight at the start of an Indian calendar day, as an aware datetime (UTC compares)."""
    return datetime.combine(day, time.min, tzinfo=IST)


def _ledger(client: Client, start: date | None, end: date) -> list[StatementEntry]:
    """The client's account entries dated in [start, end] (all before `end` when start is None).

    Debits: on-account bills (by bill date) and refunds paid back on them. Credits: credit
    notes, receipts (whole amount, allocated or not), other payments taken on those bills
    (counter cash/UPI…), and deposits (advances) the client paid. A payment drawn from an
    advance or a receipt moves money inside the account and is not a second credit."""
    def day_range(column, *, is_datetime: bool):  # type: ignore[no-untyped-def]
        upper = ist_start(end + timedelta(days=1)) if is_datetime else end
        cond = column < upper if is_datetime else column <= upper
        if start is not None:
            cond = cond & (column >= (ist_start(start) if is_datetime else start))
        return cond

    on_account = (Bill.client_id == client.id) & Bill.on_account.is_(True)
    entries: list[StatementEntry] = []
    # The order and patient come in the same query: a month of a hospital's bills is hundreds of rows.
    for bill, accession, patient_name in db.session.execute(
            select(Bill, Order.accession, Patient.full_name).outerjoin(Order, Order.id == Bill.order_id)
            .outerjoin(Patient, Patient.id == Order.patient_id)
            .where(on_account, day_range(Bill.bill_date, is_datetime=False)).order_by(Bill.bill_date, Bill.id)):
        kind = "Bill of supply" if bill.doc_type == "bill_of_supply" else "Tax invoice"
        entries.append(StatementEntry(bill.bill_date, "bill", bill.number, kind + (
            f" · order {accession} · {patient_name}" if accession else ""), debit_paise=bill.total_paise))
    for note, bill_number in db.session.execute(
            select(CreditNote, Bill.number).join(Bill, Bill.id == CreditNote.bill_id)
            .where(on_account, day_range(CreditNote.note_date, is_datetime=False))
            .order_by(CreditNote.note_date, CreditNote.id)):
        entries.append(StatementEntry(note.note_date, "credit_note", note.number,
                                      f"Credit note on {bill_number}: {note.reason}", credit_paise=note.total_paise))
    for receipt in db.session.execute(
            select(ClientReceipt).where(ClientReceipt.client_id == client.id,
                                        day_range(ClientReceipt.received_on, is_datetime=False))
            .order_by(ClientReceipt.received_on, ClientReceipt.id)).scalars():
        entries.append(StatementEntry(receipt.received_on, "receipt", receipt.reference,
                                      f"Receipt · {RECEIPT_MODES.get(receipt.mode, receipt.mode)}",
                                      credit_paise=receipt.amount_paise))
    for payment, bill_number in db.session.execute(
            select(Payment, Bill.number).join(Bill, Bill.id == Payment.bill_id)
            .where(on_account, Payment.client_receipt_id.is_(None), Payment.mode != "advance",
                   day_range(Payment.received_at, is_datetime=True))
            .order_by(Payment.received_at, Payment.id)):
        entries.append(StatementEntry(payment.received_at.astimezone(IST).date(), "payment",
                                      payment.reference or bill_number,
                                      f"Paid on {bill_number} · {payment.mode.upper()}",
                                      credit_paise=payment.amount_paise))
    for refund, bill_number in db.session.execute(
            select(Refund, Bill.number).join(Bill, Bill.id == Refund.bill_id)
            .where(on_account, Refund.status == "processed", Refund.processed_at.is_not(None),
                   day_range(Refund.processed_at, is_datetime=True))
            .order_by(Refund.processed_at, Refund.id)):
        entries.append(StatementEntry(refund.processed_at.astimezone(IST).date(), "refund",
                                      refund.reference or bill_number, f"Refund on {bill_number}",
                                      debit_paise=refund.amount_paise))
    for advance in db.session.execute(
            select(Advance).where(Advance.client_id == client.id, day_range(Advance.received_at, is_datetime=True))
            .order_by(Advance.received_at, Advance.id)).scalars():
        entries.append(StatementEntry(advance.received_at.astimezone(IST).date(), "advance", advance.number,
                                      f"Deposit · {ADVANCE_MODES.get(advance.mode, advance.mode)}",
                                      credit_paise=advance.amount_paise))
    order = {"bill": 0, "credit_note": 1, "refund": 2, "payment": 3, "receipt": 4, "advance": 5}
    entries.sort(key=lambda e: (e.day, order[e.kind]))
    return entries


def _balance_before(client: Client, start: date) -> int:
    """The balance of every entry dated before `start`, by sums in the database (a client's
    history is years of bills; the statement needs only its total). Same rules as _ledger."""
    on_account = (Bill.client_id == client.id) & Bill.on_account.is_(True)
    before = ist_start(start)

    def total(amount, *where, via=None) -> int:  # type: ignore[no-untyped-def]
        # count(Bill.id) names the joined bill table for the tenant guard (app/security.py).
        stmt = select(func.coalesce(func.sum(amount), 0), func.count(Bill.id) if via is not None else func.count())
        if via is not None:
            stmt = stmt.select_from(via.class_).join(Bill, Bill.id == via)
        return int(db.session.execute(stmt.where(*where)).one()[0])

    debits = (total(Bill.total_paise, on_account, Bill.bill_date < start)
              + total(Refund.amount_paise, on_account, Refund.status == "processed", Refund.processed_at < before,
                      via=Refund.bill_id))
    credits = (total(CreditNote.total_paise, on_account, CreditNote.note_date < start, via=CreditNote.bill_id)
               + total(ClientReceipt.amount_paise, ClientReceipt.client_id == client.id,
                       ClientReceipt.received_on < start)
               + total(Payment.amount_paise, on_account, Payment.client_receipt_id.is_(None), Payment.mode != "advance",
                       Payment.received_at < before, via=Payment.bill_id)
               + total(Advance.amount_paise, Advance.client_id == client.id, Advance.received_at < before))
    return debits - credits


def statement(client: Client, month: str | None = None) -> Statement:
    """Opening balance, the month's bills, credit notes and receipts with a running
    balance, and the closing balance (opening + bills − credits − receipts)."""
    start, end = month_bounds(month)
    opening = _balance_before(client, start)
    entries = _ledger(client, start, end)
    balance = opening
    for entry in entries:
        balance += entry.debit_paise - entry.credit_paise
        entry.balance_paise = balance
    bills_total = sum(e.debit_paise for e in entries if e.kind == "bill")
    notes_total = sum(e.credit_paise for e in entries if e.kind == "credit_note")
    received = sum(e.credit_paise - e.debit_paise for e in entries if e.kind not in ("bill", "credit_note"))
    return Statement(client=client, start=start, end=end, opening_paise=opening, entries=entries,
                     bills_paise=bills_total, credit_notes_paise=notes_total, receipts_paise=received,
                     closing_paise=balance)


# --- receipts against the statement ----------------------------------------------------

def _check_reference(mode: str, reference: str) -> str:
    reference = re.sub(r"\s+", "", reference or "").upper()
    if mode == "upi":
        # The 12-digit UTR/RRN the payer's UPI app shows (../shared/reference/india.md §3.2).
        if not re.fullmatch(r"\d{12}", reference):
            raise AccountError("Enter the 12-digit UPI reference (UTR).", field="reference")
    elif mode == "cheque":
        # Indian (CTS-2010) cheques carry a 6-digit serial number.
        if not re.fullmatch(r"\d{6}", reference):
            raise AccountError("Enter the 6-digit cheque number.", field="reference")
    elif not re.fullmatch(r"[A-Z0-9]{8,22}", reference):
        # NEFT UTRs are 16 characters, RTGS 22, IMPS 12 digits: letters and digits only.
        raise AccountError("Enter the UTR from the bank advice (8–22 letters and digits).", field="reference")
    return reference


def record_client_receipt(client: Client, *, mode: str, reference: str, amount_paise: int, received_on: date,
                          actor_id: int | None) -> ClientReceipt:
    """A payment the client sent against its statement, allocated to its open on-account
    bills oldest first; what is left stays on the receipt for the next bills. The reference
    (UTR / cheque number) is unique per client, so the same advice is never entered twice."""
    if mode not in RECEIPT_MODES:
        raise AccountError("Choose NEFT, cheque or UPI.", field="mode")
    reference = _check_reference(mode, reference)
    if amount_paise <= 0:
        raise AccountError("Enter an amount above zero.", field="amount")
    if received_on > billing.today_in_india():
        raise AccountError("The date received cannot be in the future.", field="received_on")
    if received_on < billing.today_in_india() - timedelta(days=366):
        raise AccountError("That date is more than a year ago; check it.", field="received_on")
    duplicate = db.session.execute(select(ClientReceipt.id).where(
        ClientReceipt.client_id == client.id, ClientReceipt.reference == reference)).scalar()
    if duplicate is not None:
        raise AccountError(f"A receipt with reference {reference} is already recorded for {client.name}.",
                           field="reference")
    receipt = ClientReceipt(client_id=client.id, mode=mode, reference=reference, amount_paise=amount_paise,
                            allocated_paise=0, received_on=received_on, received_by_id=actor_id)
    savepoint = db.session.begin_nested()
    try:
        db.session.add(receipt)
        db.session.flush()
    except IntegrityError:
        # Two clerks entered the same advice at the same moment: the other one won.
        savepoint.rollback()
        raise AccountError(f"A receipt with reference {reference} is already recorded for {client.name}.",
                           field="reference") from None
    savepoint.commit()
    audit.record("client_receipt.recorded", entity_type="client", entity_id=client.code,
                 after={"receipt_id": receipt.id, "mode": mode, "reference": reference,
                        "amount_paise": amount_paise, "received_on": received_on})
    _allocate(receipt, client, actor_id=actor_id)
    return receipt


def _allocate(receipt: ClientReceipt, client: Client, *, actor_id: int | None) -> int:
    """Apply what is left on a (locked or new) receipt to the client's open bills, oldest first."""
    applied = 0
    for bill in open_bills(client):
        remaining = receipt.amount_paise - receipt.allocated_paise
        if remaining <= 0:
            break
        locked = billing.lock_bill(bill.id)
        if locked.status not in OPEN_STATUSES or locked.due_paise <= 0:
            continue
        amount = min(remaining, locked.due_paise)
        billing.apply_payment(locked, mode=receipt.mode, amount_paise=amount, notify=False,
                              client_receipt_id=receipt.id, reference=receipt.reference,
                              rrn=receipt.reference if receipt.mode == "upi" else None,
                              received_by_id=actor_id, counter=ACCOUNTS_COUNTER)
        receipt.allocated_paise += amount
        applied += amount
    if applied:
        db.session.flush()
        audit.record("client_receipt.allocated", entity_type="client", entity_id=client.code,
                     after={"receipt_id": receipt.id, "applied_paise": applied,
                            "allocated_paise": receipt.allocated_paise, "amount_paise": receipt.amount_paise})
    return applied


def allocate_unapplied(client: Client, *, actor_id: int | None = None) -> int:
    """Apply receipts' unallocated money to the client's open bills (oldest receipt first).
    The receipt rows are locked, so two allocations at once never spend the same money."""
    applied = 0
    unapplied = db.session.execute(
        select(ClientReceipt).where(ClientReceipt.client_id == client.id,
                                    ClientReceipt.allocated_paise < ClientReceipt.amount_paise)
        .order_by(ClientReceipt.received_on, ClientReceipt.id).with_for_update()).scalars().all()
    for receipt in unapplied:
        db.session.refresh(receipt)
        applied += _allocate(receipt, client, actor_id=actor_id)
    return applied


# --- advances / deposits ---------------------------------------------------------------

def next_advance_number(branch: Branch, day: date) -> str:
    """'JNR/A26/000001': the advance's own consecutive series per branch and FY."""
    fy = billing.financial_year(day)
    number = f"{branch.code}/A{fy[2:4]}/{billing.next_counter(branch, 'advance', fy):06d}"
    if len(number) > billing.MAX_DOC_NUMBER_LENGTH:
        raise AccountError(f"Advance series {branch.code} is exhausted for {fy}.")
    return number


def take_advance(*, patient: Patient | None = None, client: Client | None = None, branch: Branch,
                 mode: str, amount_paise: int, reference: str | None, actor_id: int | None,
                 counter: str = "main") -> Advance:
    """A deposit before billing, from a patient (e.g. a health package paid ahead) or a
    client; numbered, audited, and counted in the day's collections of its counter."""
    if (patient is None) == (client is None):
        raise AccountError("Choose either a patient or a client.", field="holder")
    if mode not in ADVANCE_MODES:
        raise AccountError("Choose how the deposit was paid.", field="mode")
    if amount_paise <= 0:
        raise AccountError("Enter an amount above zero.", field="amount")
    reference = re.sub(r"\s+", "", reference or "").upper() or None
    if mode == "upi" and not (reference and re.fullmatch(r"\d{12}", reference)):
        raise AccountError("Enter the 12-digit UPI reference (UTR).", field="reference")
    if mode in ("card", "neft", "cheque") and not reference:
        raise AccountError("Enter the reference (card approval code, UTR or cheque number).", field="reference")
    if reference and len(reference) > 64:
        raise AccountError("That reference is too long.", field="reference")
    advance = Advance(number=next_advance_number(branch, billing.today_in_india()),
                      patient_id=patient.id if patient else None, client_id=client.id if client else None,
                      branch_id=branch.id, counter=(counter or "main")[:32], mode=mode, reference=reference,
                      amount_paise=amount_paise, used_paise=0, received_by_id=actor_id,
                      received_at=datetime.now(timezone.utc))
    db.session.add(advance)
    db.session.flush()
    audit.record("advance.taken", entity_type="advance", entity_id=advance.number,
                 after={"holder": f"patient {patient.mrn}" if patient else f"client {client.code}",
                        "mode": mode, "amount_paise": amount_paise, "reference": reference})
    return advance


def _holder_matches(advance: Advance, bill: Bill) -> bool:
    if advance.client_id is not None:
        return bill.client_id == advance.client_id
    if bill.order_id is None:
        return False
    patient_id = db.session.execute(select(Order.patient_id).where(Order.id == bill.order_id)).scalar()
    return patient_id == advance.patient_id


def apply_advance(advance: Advance, bill: Bill, amount_paise: int, *, actor_id: int | None = None) -> Payment:
    """Draw on a deposit to pay a bill of the same patient or client: never more than the
    advance's balance nor the bill's due. The advance and then the bill are locked (always
    in that order, so two clerks cannot deadlock) before either amount is read."""
    locked_advance = db.session.execute(
        select(Advance).where(Advance.id == advance.id).with_for_update()).scalar_one()
    db.session.refresh(locked_advance)
    locked = billing.lock_bill(bill.id)
    if locked.status == "cancelled":
        raise AccountError("This bill is cancelled.", field="bill")
    if not _holder_matches(locked_advance, locked):
        raise AccountError("This advance belongs to another patient or client.", field="bill")
    if amount_paise <= 0:
        raise AccountError("Enter an amount above zero.", field="amount")
    if amount_paise > locked_advance.balance_paise:
        raise AccountError(f"The advance has only {format_paise(locked_advance.balance_paise)} left.",
                           field="amount")
    if amount_paise > locked.due_paise:
        raise AccountError(f"That is more than the amount due on {locked.number} ({format_paise(locked.due_paise)}).",
                           field="amount")
    before = {"used_paise": locked_advance.used_paise}
    payment = billing.apply_payment(locked, mode="advance", amount_paise=amount_paise, notify=False,
                                    advance_id=locked_advance.id, reference=locked_advance.number,
                                    received_by_id=actor_id, counter=locked_advance.counter)
    locked_advance.used_paise += amount_paise
    db.session.flush()
    audit.record("advance.applied", entity_type="advance", entity_id=locked_advance.number, before=before,
                 after={"used_paise": locked_advance.used_paise, "bill": locked.number, "amount_paise": amount_paise,
                        "payment_id": payment.id})
    return payment


def advances(*, open_only: bool = False, limit: int = 100) -> list[tuple[Advance, str]]:
    """Recent advances with the holder's name, newest first."""
    stmt = (select(Advance, func.coalesce(Patient.full_name, Client.name), Patient.mrn, Client.code)
            .outerjoin(Patient, Patient.id == Advance.patient_id).outerjoin(Client, Client.id == Advance.client_id)
            .order_by(Advance.received_at.desc(), Advance.id.desc()).limit(limit))
    if open_only:
        stmt = stmt.where(Advance.used_paise < Advance.amount_paise)
    return [(a, name) for a, name, _mrn, _code in db.session.execute(stmt)]


def active_clients() -> list[Client]:
    return list(db.session.execute(select(Client).where(Client.active.is_(True)).order_by(Client.name)).scalars())


def find_holder(kind: str, *, mrn: str = "", client_id: int | None = None) -> tuple[Patient | None, Client | None]:
    """The patient (by MRN) or client an advance is taken from, or a clear refusal."""
    if kind == "client":
        client = db.session.execute(select(Client).where(Client.id == (client_id or 0))).scalar_one_or_none()
        if client is None:
            raise AccountError("Choose the client.", field="client_id")
        return None, client
    patient = db.session.execute(select(Patient).where(Patient.mrn == (mrn or "").strip().upper())).scalar_one_or_none()
    if patient is None:
        raise AccountError("No patient with that MRN.", field="mrn")
    return patient, None


def advance_by_number(number: str) -> Advance | None:
    return db.session.execute(select(Advance).where(Advance.number == number)).scalar_one_or_none()


def statement_pdf(org, st: Statement) -> bytes:  # type: ignore[no-untyped-def]
    """The month's statement on A4, as the client's accounts department files it."""
    from flask import render_template

    from app.services import documents

    return documents._pdf(render_template("pdf/client_statement.html", org=org, st=st,
                                          modes=RECEIPT_MODES, printed=billing.today_in_india()))
