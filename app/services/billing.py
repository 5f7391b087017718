"""Counter billing: bills of supply and tax invoices for an order, document numbers,
payments. Money is integer paise; every change is audited.

GST facts (../shared/reference/india.md §1): diagnostic services by a clinical establishment
are exempt (Notification 12/2017-CT(Rate) entry 74, SAC 999316) and go on a *bill of supply*
(Rule 49) with no tax lines; items marked taxable go on a separate *tax invoice* (Rule 46)
with CGST+SGST within the state or IGST across states, by place of supply."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, DateTime, bindparam, func, select, text

from app import audit
from app.extensions import db
from app.models import Bill, BillLine, Branch, Order, Organization, Payment
from app.queries import Query, org, org_count
from app.services import ServiceError, notifications

IST = ZoneInfo("Asia/Kolkata")
DOC_LETTER = {"bill_of_supply": "B", "tax_invoice": "T", "report": "R"}  # reports reuse the counter
MAX_DOC_NUMBER_LENGTH = 16  # e-invoice schema v1.1 DocDtls.No (india.md §1.2)


def financial_year(day: date) -> str:
    """April–March, written 2026-27 (computed from the document date, india.md §1.1)."""
    start = day.year if day.month >= 4 else day.year - 1
    return f"{start}-{str(start + 1)[-2:]}"


def today_in_india() -> date:
    return datetime.now(IST).date()


def next_document_number(branch: Branch, doc_type: str, fy: str) -> str:
    """The next consecutive number in the series branch × type × FY: 'JNR/B26/000123'.

    INSERT … ON CONFLICT DO UPDATE locks the counter row until this transaction ends, so
    concurrent bills never share a number, and a rolled-back bill leaves no gap."""
    number = next_counter(branch, doc_type, fy)
    formatted = f"{branch.code}/{DOC_LETTER[doc_type]}{fy[2:4]}/{number:06d}"
    if len(formatted) > MAX_DOC_NUMBER_LENGTH:
        raise ServiceError(f"Document series {branch.code} is exhausted for {fy}.")
    return formatted


def next_counter(branch: Branch, doc_type: str, fy: str) -> int:
    """The next value of one document_counter series, locked until this transaction ends."""
    return db.session.execute(
        text("""
            INSERT INTO document_counter (org_id, branch_id, doc_type, fy, last_number)
            VALUES (:org, :branch, :doc_type, :fy, 1)
            ON CONFLICT (org_id, branch_id, doc_type, fy)
            DO UPDATE SET last_number = document_counter.last_number + 1
            RETURNING last_number
        """),
        {"org": branch.org_id, "branch": branch.id, "doc_type": doc_type, "fy": fy},
    ).scalar_one()


@dataclass
class LineDraft:
    description: str
    sac_code: str
    gross_paise: int
    gst_rate: Decimal


def allocate_discount(amounts: list[int], discount: int) -> list[int]:
    """Split a discount across lines in proportion to their amounts, to the paisa
    (largest remainder), so the line discounts add up to exactly the total discount."""
    total = sum(amounts)
    if discount <= 0 or total <= 0:
        return [0] * len(amounts)
    discount = min(discount, total)
    shares = [Decimal(a) * discount / total for a in amounts]
    floors = [int(s) for s in shares]
    remainder = discount - sum(floors)
    order = sorted(range(len(amounts)), key=lambda i: shares[i] - floors[i], reverse=True)
    for i in order[:remainder]:
        floors[i] += 1
    return floors


def _paise(value: Decimal) -> int:
    return int(value.quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def place_of_supply(org: Organization, branch: Branch, *, recipient_state: str | None,
                    recipient_registered: bool) -> str:
    """IGST Act s.12(2): to a registered recipient, the recipient's location; otherwise the
    recipient's location where an address is on record, else the supplier's location."""
    if recipient_state:
        return recipient_state
    return branch.state_code or org.state_code


def build_bill(order: Order, branch: Branch, doc_type: str, lines: list[LineDraft], discount_paise: int, *,
               pos: str, recipient_name: str, recipient_gstin: str | None) -> Bill:
    bill_date = today_in_india()
    fy = financial_year(bill_date)
    discounts = allocate_discount([l.gross_paise for l in lines], discount_paise)
    intra_state = pos == branch.state_code
    bill = Bill(order_id=order.id, branch_id=branch.id, doc_type=doc_type, fy=fy, bill_date=bill_date,
                number=next_document_number(branch, doc_type, fy), recipient_name=recipient_name,
                recipient_gstin=recipient_gstin, place_of_supply=pos)
    totals = dict(gross=0, discount=0, taxable=0, cgst=0, sgst=0, igst=0, total=0)
    for position, (draft, discount) in enumerate(zip(lines, discounts), start=1):
        taxable = draft.gross_paise - discount
        cgst = sgst = igst = 0
        if doc_type == "tax_invoice" and draft.gst_rate > 0:
            if intra_state:
                cgst = sgst = _paise(Decimal(taxable) * draft.gst_rate / 200)
            else:
                igst = _paise(Decimal(taxable) * draft.gst_rate / 100)
        line_total = taxable + cgst + sgst + igst
        bill.lines.append(BillLine(position=position, description=draft.description, sac_code=draft.sac_code,
                                   gross_paise=draft.gross_paise, discount_paise=discount, taxable_paise=taxable,
                                   gst_rate=draft.gst_rate, cgst_paise=cgst, sgst_paise=sgst, igst_paise=igst,
                                   total_paise=line_total))
        for key, value in (("gross", draft.gross_paise), ("discount", discount), ("taxable", taxable),
                           ("cgst", cgst), ("sgst", sgst), ("igst", igst), ("total", line_total)):
            totals[key] += value
    bill.gross_paise, bill.discount_paise, bill.taxable_paise = totals["gross"], totals["discount"], totals["taxable"]
    bill.cgst_paise, bill.sgst_paise, bill.igst_paise = totals["cgst"], totals["sgst"], totals["igst"]
    bill.total_paise = totals["total"]
    bill.paid_paise = 0
    bill.status = "open" if bill.total_paise > 0 else "paid"
    db.session.add(bill)
    db.session.flush()
    audit.record("bill.created", entity_type="bill", entity_id=bill.number,
                 after={"doc_type": doc_type, "order": order.accession, "total_paise": bill.total_paise,
                        "discount_paise": bill.discount_paise, "cgst_paise": bill.cgst_paise,
                        "sgst_paise": bill.sgst_paise, "igst_paise": bill.igst_paise, "place_of_supply": pos})
    if doc_type == "tax_invoice" and recipient_gstin:
        # A taxable B2B invoice goes to the IRP as soon as it is committed, when the lab
        # e-invoices (india.md §1.5); the einvoice sweep catches any that were missed.
        from app.services import einvoicing  # einvoicing builds on this module

        einvoicing.queue_einvoice(bill)
    return bill


def bills_for_order(order: Order, branch: Branch, org: Organization) -> list[Bill]:
    """A bill of supply for exempt items; a separate tax invoice for taxable ones. The
    order's discount is shared between them in proportion to their value."""
    exempt = [LineDraft(f"{i.name} ({i.code})", i.sac_code, i.price_paise, i.gst_rate) for i in order.items
              if i.gst_rate == 0]
    taxable = [LineDraft(f"{i.name} ({i.code})", i.sac_code, i.price_paise, i.gst_rate) for i in order.items
               if i.gst_rate > 0]
    groups = [("bill_of_supply", exempt), ("tax_invoice", taxable)]
    groups = [(t, lines) for t, lines in groups if lines]
    split = allocate_discount([sum(l.gross_paise for l in lines) for _, lines in groups], order.discount_paise)
    client = order.client
    recipient_name = client.name if client else order.patient.full_name
    recipient_gstin = client.gstin if client else None
    pos = place_of_supply(org, branch, recipient_state=(client.state_code if client else order.patient.state_code),
                          recipient_registered=bool(recipient_gstin))
    bills = [build_bill(order, branch, doc_type, lines, discount, pos=pos, recipient_name=recipient_name,
                        recipient_gstin=recipient_gstin)
             for (doc_type, lines), discount in zip(groups, split)]
    # A client's order is billed on its account (credit limit checked first); none for a patient.
    from app.services import accounts  # accounts builds on this module

    accounts.bill_on_account(bills, client)
    return bills


# --- payments -----------------------------------------------------------------------

COUNTER_MODES = ("cash", "card", "upi")  # taken at a desk; gateway, NEFT/cheque and advance have their own paths
PAYMENT_MODES = COUNTER_MODES


class PaymentInvalid(ServiceError):
    pass


def lock_bill(bill_id: int) -> Bill:
    """The bill row, locked until the transaction ends, and fresh from the database: every
    change of paid/credited amounts goes through this, so concurrent clerks, webhooks and
    receipts are serialized per bill and never apply money past what is due."""
    locked = db.session.execute(select(Bill).where(Bill.id == bill_id).with_for_update()).scalar_one()
    db.session.refresh(locked)
    return locked


def settle_status(bill: Bill) -> None:
    if bill.status == "cancelled":
        return
    if bill.due_paise == 0:
        bill.status = "paid"
    elif bill.paid_paise > 0:
        bill.status = "partly_paid"
    else:
        bill.status = "open"


def apply_payment(locked: Bill, *, mode: str, amount_paise: int, notify: bool = True, **fields) -> Payment:
    """Add a payment to a bill already locked by lock_bill() and checked by the caller: the
    one place paid_paise grows. Audited; the patient's receipt message is queued."""
    if amount_paise <= 0 or amount_paise > locked.due_paise:
        raise PaymentInvalid(f"That is more than the amount due ({locked.due_paise / 100:.2f}).", field="amount")
    fields.setdefault("branch_id", locked.branch_id)
    fields.setdefault("received_at", datetime.now(timezone.utc))
    payment = Payment(bill_id=locked.id, mode=mode, amount_paise=amount_paise, **fields)
    db.session.add(payment)
    before = {"paid_paise": locked.paid_paise, "status": locked.status}
    locked.paid_paise += amount_paise
    settle_status(locked)
    db.session.flush()
    audit.record("payment.received", entity_type="bill", entity_id=locked.number, before=before,
                 after={"paid_paise": locked.paid_paise, "status": locked.status, "mode": mode,
                        "amount_paise": amount_paise, "payment_id": payment.id,
                        "reference": payment.reference or payment.gateway_payment_id})
    if notify:
        notifications.payment_received(payment)  # the patient's receipt message, queued after commit
    return payment


def record_payment(bill: Bill, *, mode: str, amount_paise: int, reference: str | None,
                   received_by_id: int | None, idempotency_key: str | None = None,
                   counter: str = "main") -> Payment:
    """Take a counter payment. The bill row is locked, so two clerks (or a double click)
    cannot both apply a payment past the amount due; a repeated idempotency key returns
    the payment already taken."""
    if idempotency_key:
        existing = db.session.execute(
            select(Payment).where(Payment.idempotency_key == idempotency_key)).scalar_one_or_none()
        if existing is not None:
            return existing
    locked = lock_bill(bill.id)
    if locked.status == "cancelled":
        raise PaymentInvalid("This bill is cancelled.", field="amount")
    if mode not in COUNTER_MODES:
        raise PaymentInvalid("Choose cash, card or UPI.", field="mode")
    if amount_paise <= 0:
        raise PaymentInvalid("Enter an amount above zero.", field="amount")
    if amount_paise > locked.due_paise:
        raise PaymentInvalid(f"That is more than the amount due ({locked.due_paise / 100:.2f}).", field="amount")
    reference = (reference or "").strip() or None
    if mode == "card" and not reference:
        raise PaymentInvalid("Enter the card terminal's reference (approval code).", field="reference")
    rrn = None
    if mode == "upi":
        # The 12-digit UTR/RRN the patient's UPI app shows (india.md §3.2); it is what
        # reconciliation matches against the bank statement.
        if not reference or not reference.isdigit() or len(reference) != 12:
            raise PaymentInvalid("Enter the 12-digit UPI reference (UTR) from the payer's app.", field="reference")
        rrn = reference
    return apply_payment(locked, mode=mode, amount_paise=amount_paise, reference=reference, rrn=rrn,
                         received_by_id=received_by_id, idempotency_key=idempotency_key,
                         counter=(counter or "main")[:32])


def bill_by_number(number: str) -> Bill | None:
    return db.session.execute(select(Bill).where(Bill.number == number).order_by(Bill.id.desc())).scalars().first()


# --- the billing portal's bill list ----------------------------------------------------

BILL_STATUSES = ("open", "partly_paid", "paid", "cancelled")


@dataclass
class BillFilter:
    q: str = ""  # bill number, patient or client name (prefix)
    status: str = ""
    doc_type: str = ""
    branch_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    on_account: bool | None = None
    limit: int = 100


def search_bills(f: BillFilter) -> list[Bill]:
    """Bills for the clerk's list, newest first. The number is matched as a prefix (also
    without the branch code), names as a case-insensitive prefix."""
    stmt = select(Bill).order_by(Bill.bill_date.desc(), Bill.id.desc()).limit(min(max(f.limit, 1), 500))
    q = (f.q or "").strip()
    if q:
        upper = q.upper()
        stmt = stmt.where((Bill.number.startswith(upper, autoescape=True))
                          | (Bill.number.contains("/" + upper, autoescape=True))
                          | (Bill.recipient_name.istartswith(q, autoescape=True)))
    if f.status in BILL_STATUSES:
        stmt = stmt.where(Bill.status == f.status)
    elif f.status == "due":
        stmt = stmt.where(Bill.status.in_(("open", "partly_paid")))
    if f.doc_type in DOCUMENT_TYPES_SHOWN:
        stmt = stmt.where(Bill.doc_type == f.doc_type)
    if f.branch_id:
        stmt = stmt.where(Bill.branch_id == f.branch_id)
    if f.date_from:
        stmt = stmt.where(Bill.bill_date >= f.date_from)
    if f.date_to:
        stmt = stmt.where(Bill.bill_date <= f.date_to)
    if f.on_account is not None:
        stmt = stmt.where(Bill.on_account.is_(f.on_account))
    return list(db.session.execute(stmt).scalars())


DOCUMENT_TYPES_SHOWN = {"bill_of_supply": "Bill of supply", "tax_invoice": "Tax invoice"}


# ---------------------------------------------------------------- the billing home page
# The most-loaded billing page: two precompiled statements (app/queries.py), not six ORM ones.

def _home_counts_query() -> Query:
    from app.models import BillingException, EInvoice, Refund

    bills, exceptions, refunds, einvoices = (Bill.__table__, BillingException.__table__, Refund.__table__,
                                             EInvoice.__table__)

    due = select(func.count().label("n"),
                 func.coalesce(func.sum(bills.c.total_paise - bills.c.credited_paise - bills.c.paid_paise), 0)
                 .label("paise")).where(org(bills), bills.c.status.in_(("open", "partly_paid"))).subquery("due")
    return Query("billing_home_counts", select(
        due.c.n.label("due_count"), due.c.paise.label("due_paise"),
        org_count(exceptions, exceptions.c.status == "open").label("exceptions"),
        org_count(refunds, refunds.c.status == "pending_approval").label("refund_approvals"),
        org_count(einvoices, einvoices.c.status.in_(("rejected", "retrying"))).label("einvoice_problems"),
    ).select_from(due))


def _collections_query(*, one_branch: bool) -> Query:
    payments = Payment.__table__
    stmt = (select(payments.c.mode, func.coalesce(func.sum(payments.c.amount_paise), 0).label("paise"))
            .where(org(payments), payments.c.received_at >= bindparam("since", type_=DateTime(timezone=True)))
            .group_by(payments.c.mode))
    if one_branch:
        stmt = stmt.where(payments.c.branch_id == bindparam("branch_id", type_=BigInteger))
    return Query("collections_today_branch" if one_branch else "collections_today", stmt)


_HOME_COUNTS = _home_counts_query()
_COLLECTIONS, _COLLECTIONS_OF_BRANCH = _collections_query(one_branch=False), _collections_query(one_branch=True)


def collections_today(branch_id: int | None = None) -> dict[str, int]:
    """Paise taken today (IST) by mode: the billing home page's first figures."""
    since = datetime.combine(today_in_india(), datetime.min.time(), tzinfo=IST)
    rows = (_COLLECTIONS_OF_BRANCH.rows(since=since, branch_id=branch_id) if branch_id
            else _COLLECTIONS.rows(since=since))
    return {mode: int(total) for mode, total in rows}


@dataclass(frozen=True)
class HomeCounts:
    due_count: int  # bills with money due
    due_paise: int  # and how much
    exceptions: int  # open billing exceptions
    refund_approvals: int  # refunds waiting for a second person
    einvoice_problems: int  # e-invoices rejected or retrying


def home_counts() -> HomeCounts:
    return HomeCounts(*(int(value) for value in _HOME_COUNTS.one()))
