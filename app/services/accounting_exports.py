"""What a chartered accountant asks for at month end: the bill register, payment register,
credit-note register and refund register as CSV, and the collections report by mode, user
and branch. CSVs are streamed row by row (a year's registers need not fit in memory), UTF-8
with a BOM so Excel reads ₹ and Indian names, amounts in rupees with two decimals formatted
from integer paise (no floats), and every text cell guarded against formula injection."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from app.extensions import db
from app.models import Bill, Branch, CreditNote, Payment, Refund, User
from app.services import ServiceError
from app.services.accounts import ist_start
from app.services.billing import IST

MAX_RANGE_DAYS = 400  # a financial year and a little: bigger exports go by year
REGISTERS = {
    "bills": "Bill register",
    "payments": "Payment register",
    "credit-notes": "Credit note register",
    "refunds": "Refund register",
}


class ExportError(ServiceError):
    pass


def rupees(paise: int | None) -> str:
    """12345 → '123.45', -5 → '-0.05': integer arithmetic only."""
    paise = int(paise or 0)
    sign = "-" if paise < 0 else ""
    whole, fraction = divmod(abs(paise), 100)
    return f"{sign}{whole}.{fraction:02d}"


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_text(value: object) -> str:
    """A text cell that a spreadsheet will not run as a formula (OWASP CSV injection): a
    leading = + - @ (or tab / carriage return) gets a leading apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def check_range(date_from: date | None, date_to: date | None) -> tuple[date, date]:
    if date_from is None or date_to is None:
        raise ExportError("Choose both dates.", field="date_from")
    if date_to < date_from:
        raise ExportError("The end date is before the start date.", field="date_to")
    if (date_to - date_from).days > MAX_RANGE_DAYS:
        raise ExportError(f"Export at most {MAX_RANGE_DAYS} days at a time.", field="date_to")
    return date_from, date_to


def _ist_dt(value) -> str:  # type: ignore[no-untyped-def]
    return value.astimezone(IST).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _day_range(column, date_from: date, date_to: date):  # type: ignore[no-untyped-def]
    return (column >= ist_start(date_from)) & (column < ist_start(date_to + timedelta(days=1)))


def stream_csv(header: list[str], rows: Iterable[list[str]]) -> Iterator[str]:
    """The BOM, the header, then one line per row; a generator for a streamed response."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush() -> str:
        value = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)
        return value

    writer.writerow(header)
    yield "\ufeff" + flush()
    for row in rows:
        writer.writerow(row)
        yield flush()


@dataclass
class Register:
    filename: str
    header: list[str]
    rows: Iterable[list[str]]

    def lines(self) -> Iterator[str]:
        return stream_csv(self.header, self.rows)


# --- registers ---------------------------------------------------------------------------

BILL_HEADER = ["Number", "Date", "Type", "Recipient", "Recipient GSTIN", "Place of supply", "Branch",
               "Taxable value", "CGST", "SGST", "IGST", "Total", "Status", "Credited", "Paid", "Due",
               "On account", "Due date"]


def bill_register(date_from: date, date_to: date, *, branch_id: int | None = None) -> Register:
    """Every bill dated in the range (cancelled ones too: GST wants the whole series), and a
    total line at the end."""
    date_from, date_to = check_range(date_from, date_to)
    stmt = (select(Bill, Branch.code).join(Branch, Branch.id == Bill.branch_id)
            .where(Bill.bill_date >= date_from, Bill.bill_date <= date_to)
            .order_by(Bill.bill_date, Bill.number).execution_options(yield_per=500))
    if branch_id:
        stmt = stmt.where(Bill.branch_id == branch_id)

    def rows() -> Iterator[list[str]]:
        sums = dict.fromkeys(("taxable", "cgst", "sgst", "igst", "total", "credited", "paid", "due"), 0)
        for bill, branch_code in db.session.execute(stmt):
            values = dict(taxable=bill.taxable_paise, cgst=bill.cgst_paise, sgst=bill.sgst_paise,
                          igst=bill.igst_paise, total=bill.total_paise, credited=bill.credited_paise,
                          paid=bill.paid_paise, due=bill.due_paise)
            for key, value in values.items():
                sums[key] += value
            yield [bill.number, bill.bill_date.isoformat(),
                   "Tax invoice" if bill.doc_type == "tax_invoice" else "Bill of supply",
                   safe_text(bill.recipient_name), safe_text(bill.recipient_gstin or ""), bill.place_of_supply,
                   branch_code, *(rupees(values[k]) for k in ("taxable", "cgst", "sgst", "igst", "total")),
                   bill.status, rupees(bill.credited_paise), rupees(bill.paid_paise), rupees(bill.due_paise),
                   "yes" if bill.on_account else "no", bill.due_date.isoformat() if bill.due_date else ""]
        yield ["TOTAL", "", "", "", "", "", "", *(rupees(sums[k]) for k in ("taxable", "cgst", "sgst", "igst", "total")),
               "", rupees(sums["credited"]), rupees(sums["paid"]), rupees(sums["due"]), "", ""]

    return Register(f"bill-register-{date_from}-{date_to}.csv", BILL_HEADER, rows())


PAYMENT_HEADER = ["Received (IST)", "Bill", "Bill date", "Recipient", "Mode", "Amount", "Reference", "UPI RRN",
                  "Gateway payment id", "Received by", "Branch", "Counter", "Refunded", "Net"]


@dataclass
class PaymentFilter:
    date_from: date
    date_to: date
    branch_id: int | None = None
    user_id: int | None = None
    mode: str = ""


def _payments_stmt(f: PaymentFilter):  # type: ignore[no-untyped-def]
    receiver = aliased(User)
    stmt = (select(Payment, Bill.number, Bill.bill_date, Bill.recipient_name, Branch.code, receiver.full_name)
            .join(Bill, Bill.id == Payment.bill_id)
            .outerjoin(Branch, Branch.id == Payment.branch_id)
            .outerjoin(receiver, receiver.id == Payment.received_by_id)
            .where(_day_range(Payment.received_at, f.date_from, f.date_to)))
    if f.branch_id:
        stmt = stmt.where(Payment.branch_id == f.branch_id)
    if f.user_id:
        stmt = stmt.where(Payment.received_by_id == f.user_id)
    if f.mode:
        stmt = stmt.where(Payment.mode == f.mode)
    return stmt


def payment_register(f: PaymentFilter) -> Register:
    check_range(f.date_from, f.date_to)
    stmt = _payments_stmt(f).order_by(Payment.received_at, Payment.id).execution_options(yield_per=500)

    def rows() -> Iterator[list[str]]:
        amount = refunded = 0
        for payment, number, bill_date, recipient, branch_code, user_name in db.session.execute(stmt):
            amount += payment.amount_paise
            refunded += payment.refunded_paise
            yield [_ist_dt(payment.received_at), number, bill_date.isoformat(), safe_text(recipient), payment.mode,
                   rupees(payment.amount_paise), safe_text(payment.reference or ""), safe_text(payment.rrn or ""),
                   safe_text(payment.gateway_payment_id or ""), safe_text(user_name or ""), branch_code or "",
                   safe_text(payment.counter), rupees(payment.refunded_paise),
                   rupees(payment.amount_paise - payment.refunded_paise)]
        yield ["TOTAL", "", "", "", "", rupees(amount), "", "", "", "", "", "", rupees(refunded),
               rupees(amount - refunded)]

    return Register(f"payment-register-{f.date_from}-{f.date_to}.csv", PAYMENT_HEADER, rows())


CREDIT_NOTE_HEADER = ["Number", "Date", "Against bill", "Bill date", "Recipient", "Recipient GSTIN", "Reason",
                      "Taxable value", "CGST", "SGST", "IGST", "Total"]


def credit_note_register(date_from: date, date_to: date, *, branch_id: int | None = None) -> Register:
    date_from, date_to = check_range(date_from, date_to)
    stmt = (select(CreditNote, Bill.number, Bill.bill_date, Bill.recipient_name, Bill.recipient_gstin)
            .join(Bill, Bill.id == CreditNote.bill_id)
            .where(CreditNote.note_date >= date_from, CreditNote.note_date <= date_to)
            .order_by(CreditNote.note_date, CreditNote.number).execution_options(yield_per=500))
    if branch_id:
        stmt = stmt.where(CreditNote.branch_id == branch_id)

    def rows() -> Iterator[list[str]]:
        sums = dict.fromkeys(("taxable", "cgst", "sgst", "igst", "total"), 0)
        for note, number, bill_date, recipient, gstin in db.session.execute(stmt):
            values = dict(taxable=note.taxable_paise, cgst=note.cgst_paise, sgst=note.sgst_paise,
                          igst=note.igst_paise, total=note.total_paise)
            for key, value in values.items():
                sums[key] += value
            yield [note.number, note.note_date.isoformat(), number, bill_date.isoformat(), safe_text(recipient),
                   safe_text(gstin or ""), safe_text(note.reason), *(rupees(v) for v in values.values())]
        yield ["TOTAL", "", "", "", "", "", "", *(rupees(v) for v in sums.values())]

    return Register(f"credit-note-register-{date_from}-{date_to}.csv", CREDIT_NOTE_HEADER, rows())


REFUND_HEADER = ["Requested (IST)", "Processed (IST)", "Bill", "Payment mode", "Refund mode", "Amount", "Status",
                 "Reference", "Gateway refund id", "Reason", "Branch", "Counter"]


def refund_register(date_from: date, date_to: date, *, branch_id: int | None = None) -> Register:
    """Refunds requested in the range, whatever their status (the status column says)."""
    date_from, date_to = check_range(date_from, date_to)
    stmt = (select(Refund, Bill.number, Payment.mode, Branch.code)
            .join(Bill, Bill.id == Refund.bill_id).join(Payment, Payment.id == Refund.payment_id)
            .outerjoin(Branch, Branch.id == Refund.branch_id)
            .where(_day_range(Refund.created_at, date_from, date_to))
            .order_by(Refund.created_at, Refund.id).execution_options(yield_per=500))
    if branch_id:
        stmt = stmt.where(Refund.branch_id == branch_id)

    def rows() -> Iterator[list[str]]:
        processed = 0
        for refund, number, payment_mode, branch_code in db.session.execute(stmt):
            if refund.status == "processed":
                processed += refund.amount_paise
            yield [_ist_dt(refund.created_at), _ist_dt(refund.processed_at), number, payment_mode, refund.mode,
                   rupees(refund.amount_paise), refund.status, safe_text(refund.reference or ""),
                   safe_text(refund.gateway_refund_id or ""), safe_text(refund.reason), branch_code or "",
                   safe_text(refund.counter)]
        yield ["TOTAL PROCESSED", "", "", "", "", rupees(processed), "", "", "", "", "", ""]

    return Register(f"refund-register-{date_from}-{date_to}.csv", REFUND_HEADER, rows())


# --- collections report ------------------------------------------------------------------

@dataclass
class CollectionRow:
    branch: str
    user: str
    mode: str
    count: int
    amount_paise: int
    refunded_paise: int

    @property
    def net_paise(self) -> int:
        return self.amount_paise - self.refunded_paise


@dataclass
class Collections:
    rows: list[CollectionRow]
    by_mode: dict[str, int] = field(default_factory=dict)
    by_user: dict[str, int] = field(default_factory=dict)
    by_branch: dict[str, int] = field(default_factory=dict)
    total_paise: int = 0
    refunded_paise: int = 0
    count: int = 0

    @property
    def net_paise(self) -> int:
        return self.total_paise - self.refunded_paise


def collections(f: PaymentFilter) -> Collections:
    """Payments received in the range grouped by branch, user and mode, with totals per
    mode, user and branch (amounts as received; refunded shown beside them)."""
    check_range(f.date_from, f.date_to)
    receiver = aliased(User)
    stmt = (select(func.coalesce(Branch.code, "—"), func.coalesce(receiver.full_name, "(online / system)"),
                   Payment.mode, func.count(Payment.id), func.sum(Payment.amount_paise),
                   func.sum(Payment.refunded_paise))
            .outerjoin(Branch, Branch.id == Payment.branch_id)
            .outerjoin(receiver, receiver.id == Payment.received_by_id)
            .where(_day_range(Payment.received_at, f.date_from, f.date_to))
            .group_by(Branch.code, receiver.full_name, Payment.mode)
            .order_by(Branch.code, receiver.full_name, Payment.mode))
    if f.branch_id:
        stmt = stmt.where(Payment.branch_id == f.branch_id)
    if f.user_id:
        stmt = stmt.where(Payment.received_by_id == f.user_id)
    if f.mode:
        stmt = stmt.where(Payment.mode == f.mode)
    result = Collections(rows=[])
    for branch, user, mode, count, amount, refunded in db.session.execute(stmt):
        row = CollectionRow(branch, user, mode, int(count), int(amount), int(refunded))
        result.rows.append(row)
        result.by_mode[mode] = result.by_mode.get(mode, 0) + row.amount_paise
        result.by_user[user] = result.by_user.get(user, 0) + row.amount_paise
        result.by_branch[branch] = result.by_branch.get(branch, 0) + row.amount_paise
        result.total_paise += row.amount_paise
        result.refunded_paise += row.refunded_paise
        result.count += row.count
    return result


COLLECTIONS_HEADER = ["Branch", "Received by", "Mode", "Payments", "Amount", "Refunded", "Net"]


def collections_csv(f: PaymentFilter) -> Register:
    report = collections(f)

    def rows() -> Iterator[list[str]]:
        for r in report.rows:
            yield [safe_text(r.branch), safe_text(r.user), r.mode, str(r.count), rupees(r.amount_paise),
                   rupees(r.refunded_paise), rupees(r.net_paise)]
        yield ["TOTAL", "", "", str(report.count), rupees(report.total_paise), rupees(report.refunded_paise),
               rupees(report.net_paise)]

    return Register(f"collections-{f.date_from}-{f.date_to}.csv", COLLECTIONS_HEADER, rows())


def register(name: str, date_from: date, date_to: date, *, branch_id: int | None = None) -> Register:
    if name == "bills":
        return bill_register(date_from, date_to, branch_id=branch_id)
    if name == "payments":
        return payment_register(PaymentFilter(date_from, date_to, branch_id=branch_id))
    if name == "credit-notes":
        return credit_note_register(date_from, date_to, branch_id=branch_id)
    if name == "refunds":
        return refund_register(date_from, date_to, branch_id=branch_id)
    raise ExportError("Unknown register.")


def staff_choices() -> list[tuple[int, str]]:
    """Users who can take money, for the report's filter."""
    return [(uid, name) for uid, name in db.session.execute(
        select(User.id, User.full_name).where(User.role.in_(("reception", "billing", "admin")))
        .order_by(User.full_name))]


def branch_choices() -> list[tuple[int, str]]:
    return [(bid, f"{code} · {name}") for bid, code, name in db.session.execute(
        select(Branch.id, Branch.code, Branch.name).order_by(Branch.code))]
