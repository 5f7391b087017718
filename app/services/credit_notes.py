"""Credit notes and bill cancellation. Money is integer paise; every change is audited.

A bill that money or GST has touched is never deleted or edited: part or all of its value is
taken back by a credit note that references it (CGST Act s.34), with the tax split in the
same proportion as the bill's own lines, and a cancellation is simply a credit note for
whatever is not yet credited plus the bill's status 'cancelled'. Money already collected is
then owed back (Bill.refund_owed_paise) and paid back by services/refunds.py.

Numbers: a series of their own per branch × FY (billing.next_counter, doc_type 'credit_note'),
'JNR/C26/000001', under the e-invoice DocDtls.No rule ^[A-Z1-9][A-Z0-9/-]{0,15}$ (at most 16
characters, CGST Rules 46/49; ../shared/reference/india.md §1.2)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from app import audit
from app.extensions import db
from app.models import Bill, Branch, CreditNote
from app.services import ServiceError, billing

CREDIT_NOTE_DOC_TYPE = "credit_note"
CREDIT_NOTE_LETTER = "C"  # beside billing.DOC_LETTER's B (bill of supply) and T (tax invoice)
DOC_NUMBER_RE = re.compile(r"^[A-Z1-9][A-Z0-9/-]{0,15}$")  # india.md §1.2
COMPONENTS = ("taxable_paise", "cgst_paise", "sgst_paise", "igst_paise")
MAX_REASON = 200


class CreditNoteInvalid(ServiceError):
    pass


def split_largest_remainder(amount: int, weights: list[int]) -> list[int]:
    """Split `amount` paise in proportion to `weights`, to the paisa: floors first, then the
    paise left over go to the largest remainders (as billing.allocate_discount), so the parts
    always add up to exactly `amount` and none exceeds its weight when amount ≤ sum(weights)."""
    total = sum(weights)
    if amount <= 0 or total <= 0:
        return [0] * len(weights)
    if amount >= total:
        return list(weights)
    shares = [Decimal(w) * amount / total for w in weights]
    floors = [int(s) for s in shares]
    left = amount - sum(floors)
    for i in sorted(range(len(weights)), key=lambda i: (shares[i] - floors[i], weights[i]), reverse=True)[:left]:
        floors[i] += 1
    return floors


@dataclass
class LineRemaining:
    """What is still creditable on one bill line, by component."""
    line_id: int
    position: int
    description: str
    sac_code: str
    gst_rate: Decimal
    parts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.parts.values())


def notes_of(bill: Bill) -> list[CreditNote]:
    return list(db.session.execute(select(CreditNote).where(CreditNote.bill_id == bill.id)
                                   .order_by(CreditNote.id)).scalars())


def remaining_by_line(bill: Bill) -> list[LineRemaining]:
    """Each line's value less what earlier credit notes took from it."""
    taken: dict[int, dict[str, int]] = {}
    for note in notes_of(bill):
        for entry in note.lines or []:
            acc = taken.setdefault(int(entry["bill_line_id"]), dict.fromkeys(COMPONENTS, 0))
            for key in COMPONENTS:
                acc[key] += int(entry.get(key, 0))
    result = []
    for line in bill.lines:
        used = taken.get(line.id, dict.fromkeys(COMPONENTS, 0))
        parts = {key: getattr(line, key) - used[key] for key in COMPONENTS}
        result.append(LineRemaining(line.id, line.position, line.description, line.sac_code, line.gst_rate, parts))
    return result


def creditable_paise(bill: Bill) -> int:
    return max(0, bill.total_paise - bill.credited_paise)


def _number(branch: Branch, fy: str) -> str:
    serial = billing.next_counter(branch, CREDIT_NOTE_DOC_TYPE, fy)
    number = f"{branch.code}/{CREDIT_NOTE_LETTER}{fy[2:4]}/{serial:06d}"
    if not DOC_NUMBER_RE.match(number):
        raise CreditNoteInvalid(f"Credit note series {branch.code} is exhausted for {fy} (numbers are at most "
                                "16 characters).")
    return number


def _clean_reason(reason: str | None) -> str:
    reason = " ".join((reason or "").split())
    if not reason:
        raise CreditNoteInvalid("Write the reason for the credit note (it is printed on it).", field="reason")
    if len(reason) > MAX_REASON:
        raise CreditNoteInvalid(f"Keep the reason under {MAX_REASON} characters.", field="reason")
    return reason


def issue_credit_note(bill: Bill, *, reason: str, actor_id: int | None, amount_paise: int | None = None,
                      line_ids: list[int] | None = None, _locked: Bill | None = None) -> CreditNote:
    """Credit part or all of a bill: `amount_paise` (tax included), or the whole remaining
    value of the chosen lines. The bill row is locked (billing.lock_bill), so two clerks
    cannot together credit more than the bill's total less what is already credited."""
    reason = _clean_reason(reason)
    locked = _locked or billing.lock_bill(bill.id)
    if locked.status == "cancelled":
        raise CreditNoteInvalid("This bill is cancelled: it is already fully credited.")
    available = creditable_paise(locked)
    if available <= 0:
        raise CreditNoteInvalid("Nothing is left to credit on this bill.")
    remaining = remaining_by_line(locked)
    if line_ids:
        wanted = {int(i) for i in line_ids}
        chosen = [r for r in remaining if r.line_id in wanted and r.total > 0]
        if len(chosen) != len(wanted):
            raise CreditNoteInvalid("Choose lines of this bill that still have value to credit.", field="lines")
        amount = sum(r.total for r in chosen)
    else:
        if amount_paise is None or amount_paise <= 0:
            raise CreditNoteInvalid("Enter the amount to credit, above zero.", field="amount")
        if amount_paise > available:
            raise CreditNoteInvalid(f"At most {available / 100:.2f} can still be credited on this bill "
                                    f"(total {locked.total_paise / 100:.2f}, already credited "
                                    f"{locked.credited_paise / 100:.2f}).", field="amount")
        chosen, amount = [r for r in remaining if r.total > 0], amount_paise
    # Tax in proportion to the bill: first across lines by what each still holds, then within
    # a line across taxable value and CGST/SGST/IGST (largest remainder both times, so the
    # note's totals are exactly the sums of its lines and no component goes below zero).
    entries: list[dict[str, Any]] = []
    for line, share in zip(chosen, split_largest_remainder(amount, [r.total for r in chosen])):
        if share <= 0:
            continue
        parts = dict(zip(COMPONENTS, split_largest_remainder(share, [line.parts[k] for k in COMPONENTS])))
        entries.append({"bill_line_id": line.line_id, "position": line.position, "description": line.description,
                        "sac_code": line.sac_code, "gst_rate": str(line.gst_rate), **parts, "total_paise": share})
    totals = {key: sum(e[key] for e in entries) for key in (*COMPONENTS, "total_paise")}
    assert totals["total_paise"] == amount  # the split above is exact by construction
    note_date = billing.today_in_india()
    fy = billing.financial_year(note_date)
    branch = db.session.get(Branch, locked.branch_id)
    note = CreditNote(bill_id=locked.id, branch_id=locked.branch_id, number=_number(branch, fy), fy=fy,
                      note_date=note_date, reason=reason, lines=entries, created_by_id=actor_id, **totals)
    db.session.add(note)
    before = {"credited_paise": locked.credited_paise, "status": locked.status}
    locked.credited_paise += amount
    if locked.credited_paise >= locked.total_paise:
        # Fully credited is cancelled (the bill stays, with its credit note beside it).
        _mark_cancelled(locked, reason)
    else:
        billing.settle_status(locked)
    db.session.flush()
    audit.record("credit_note.issued", entity_type="bill", entity_id=locked.number, before=before,
                 after={"credit_note": note.number, "credited_paise": locked.credited_paise, "status": locked.status,
                        "amount_paise": amount, "taxable_paise": note.taxable_paise, "cgst_paise": note.cgst_paise,
                        "sgst_paise": note.sgst_paise, "igst_paise": note.igst_paise, "reason": reason,
                        "refund_owed_paise": locked.refund_owed_paise})
    return note


def _mark_cancelled(locked: Bill, reason: str) -> None:
    locked.status = "cancelled"
    locked.cancelled_at = datetime.now(timezone.utc)
    locked.cancel_reason = reason[:200]


def cancel_bill(bill: Bill, *, reason: str, actor_id: int | None) -> CreditNote | None:
    """Cancel a bill: a credit note for everything not yet credited, status 'cancelled'. The
    bill is kept (Rule 46/49 numbers are never reused). Money collected stays on the bill as
    refund owed until refunds pay it back; returns the credit note (None when earlier notes
    had already credited it all, which cannot happen for a bill not yet cancelled)."""
    reason = _clean_reason(reason)
    locked = billing.lock_bill(bill.id)
    if locked.status == "cancelled":
        raise CreditNoteInvalid("This bill is already cancelled.")
    if creditable_paise(locked) <= 0:
        before = {"status": locked.status}
        _mark_cancelled(locked, reason)
        audit.record("bill.cancelled", entity_type="bill", entity_id=locked.number, before=before,
                     after={"status": "cancelled", "reason": reason})
        return None
    before = {"status": locked.status, "paid_paise": locked.paid_paise, "credited_paise": locked.credited_paise}
    note = issue_credit_note(locked, reason=reason, actor_id=actor_id, amount_paise=creditable_paise(locked),
                             _locked=locked)
    audit.record("bill.cancelled", entity_type="bill", entity_id=locked.number, before=before,
                 after={"status": locked.status, "credit_note": note.number, "reason": reason,
                        "refund_owed_paise": locked.refund_owed_paise})
    return note


def by_id(note_id: int) -> CreditNote | None:
    return db.session.execute(select(CreditNote).where(CreditNote.id == note_id)).scalar_one_or_none()
