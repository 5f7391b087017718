"""Day-end closing per branch and counter: what the counter should hold (payments taken,
deposits taken, refunds paid out, discounts given on the branch's bills) against what the
clerk counted and what the UPI/card settlement shows; signed off once per
branch × counter × business day (IST). Money is integer paise."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app import audit
from app.extensions import db
from app.models import Advance, Bill, Branch, DayClosing, Payment, Refund, StatementLine, User
from app.services import ServiceError, billing
from app.services.accounts import ist_start

# Notes then coins in circulation (RBI): (form key, label, face value in rupees). ₹10 and ₹20
# exist as both note and coin, so the key says which.
DENOMINATIONS: tuple[tuple[str, str, int], ...] = (
    ("n2000", "₹2000 notes", 2000), ("n500", "₹500 notes", 500), ("n200", "₹200 notes", 200),
    ("n100", "₹100 notes", 100), ("n50", "₹50 notes", 50), ("n20", "₹20 notes", 20), ("n10", "₹10 notes", 10),
    ("c20", "₹20 coins", 20), ("c10", "₹10 coins", 10), ("c5", "₹5 coins", 5), ("c2", "₹2 coins", 2),
    ("c1", "₹1 coins", 1),
)
FACE = {key: face for key, _label, face in DENOMINATIONS}
MAX_PIECES = 100_000  # more than any till holds: a typo, not a count


class ClosingError(ServiceError):
    pass


class AlreadyClosed(ClosingError):
    pass


@dataclass
class Expected:
    """What one counter took and paid out on one day, by mode (paise)."""

    payments: dict[str, int] = field(default_factory=dict)  # counter + gateway + receipts + advance draws
    payment_count: int = 0
    advances: dict[str, int] = field(default_factory=dict)  # deposits taken
    refunds: dict[str, int] = field(default_factory=dict)  # processed refunds paid out
    discounts_paise: int = 0  # on bills dated that day at the branch
    discount_bills: int = 0

    def _net(self, mode: str) -> int:
        return self.payments.get(mode, 0) + self.advances.get(mode, 0) - self.refunds.get(mode, 0)

    @property
    def cash_paise(self) -> int:
        """Cash the drawer should hold: taken (payments + deposits) less cash refunds paid."""
        return self._net("cash")

    @property
    def upi_paise(self) -> int:
        return self._net("upi")

    @property
    def card_paise(self) -> int:
        return self._net("card")

    @property
    def refunds_paise(self) -> int:
        return sum(self.refunds.values())

    @property
    def collected_paise(self) -> int:
        """New money in (not draws on advances, which were counted when the deposit was taken)."""
        return sum(v for m, v in self.payments.items() if m != "advance") + sum(self.advances.values())

    def as_dict(self) -> dict[str, Any]:
        return {"payments": dict(self.payments), "payment_count": self.payment_count,
                "advances": dict(self.advances), "refunds": dict(self.refunds),
                "discounts_paise": self.discounts_paise, "discount_bills": self.discount_bills,
                "cash_paise": self.cash_paise, "upi_paise": self.upi_paise, "card_paise": self.card_paise}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Expected":
        return cls(payments=dict(data.get("payments", {})), payment_count=int(data.get("payment_count", 0)),
                   advances=dict(data.get("advances", {})), refunds=dict(data.get("refunds", {})),
                   discounts_paise=int(data.get("discounts_paise", 0)),
                   discount_bills=int(data.get("discount_bills", 0)))


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The business day in IST: [00:00 IST, next 00:00 IST). Times are stored in UTC, so a
    payment at 23:59 IST belongs to this day and one at 00:01 IST to the next."""
    return ist_start(day), ist_start(day + timedelta(days=1))


def expected(branch_id: int, counter: str, day: date) -> Expected:
    start, end = day_bounds(day)
    result = Expected()
    for mode, total, count in db.session.execute(
            select(Payment.mode, func.sum(Payment.amount_paise), func.count(Payment.id))
            .where(Payment.branch_id == branch_id, Payment.counter == counter,
                   Payment.received_at >= start, Payment.received_at < end)
            .group_by(Payment.mode)):
        result.payments[mode] = int(total)
        result.payment_count += int(count)
    for mode, total in db.session.execute(
            select(Advance.mode, func.sum(Advance.amount_paise))
            .where(Advance.branch_id == branch_id, Advance.counter == counter,
                   Advance.received_at >= start, Advance.received_at < end).group_by(Advance.mode)):
        result.advances[mode] = int(total)
    # Refunds are paid out where they are processed; a gateway refund leaves no till.
    for mode, total in db.session.execute(
            select(Refund.mode, func.sum(Refund.amount_paise))
            .where(Refund.branch_id == branch_id, Refund.counter == counter, Refund.status == "processed",
                   Refund.processed_at >= start, Refund.processed_at < end).group_by(Refund.mode)):
        result.refunds[mode] = int(total)
    # Bills carry no counter: the branch's discounts of the day are shown on each of its closings.
    discount, bills = db.session.execute(
        select(func.coalesce(func.sum(Bill.discount_paise), 0), func.count(Bill.id))
        .where(Bill.branch_id == branch_id, Bill.bill_date == day, Bill.discount_paise > 0)).one()
    result.discounts_paise, result.discount_bills = int(discount), int(bills)
    return result


def settled_from_statements(branch_id: int, counter: str, day: date) -> dict[str, int]:
    """UPI/card amounts of the day's payments that imported statement lines have matched:
    a suggestion for the 'settled' fields (the clerk may still type the settlement report)."""
    start, end = day_bounds(day)
    rows = db.session.execute(
        select(Payment.mode, func.sum(Payment.amount_paise), func.count(StatementLine.id))
        .join(StatementLine, StatementLine.payment_id == Payment.id)
        .where(Payment.branch_id == branch_id, Payment.counter == counter, StatementLine.status == "matched",
               Payment.mode.in_(("upi", "card")), Payment.received_at >= start, Payment.received_at < end)
        .group_by(Payment.mode))
    return {mode: int(total) for mode, total, _n in rows}


def parse_denominations(form: Mapping[str, Any]) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Piece counts from the form (blank = 0): whole numbers only."""
    counts: dict[str, int] = {}
    errors: dict[str, list[str]] = {}
    for key, label, _face in DENOMINATIONS:
        raw = str(form.get(key, "") or "").strip()
        if not raw:
            counts[key] = 0
            continue
        if not raw.isdigit() or not raw.isascii():
            errors[key] = [f"{label}: enter a whole number of pieces."]
            counts[key] = 0
            continue
        value = int(raw)
        if value > MAX_PIECES:
            errors[key] = [f"{label}: {value} pieces is more than a till holds; check the count."]
            value = 0
        counts[key] = value
    return counts, errors


def counted_paise(counts: Mapping[str, int]) -> int:
    """count × face value × 100, in integers."""
    return sum(int(counts.get(key, 0)) * face * 100 for key, face in FACE.items())


def closing_for(branch_id: int, counter: str, day: date) -> DayClosing | None:
    return db.session.execute(select(DayClosing).where(
        DayClosing.branch_id == branch_id, DayClosing.counter == counter,
        DayClosing.business_date == day)).scalar_one_or_none()


def sign_off(branch: Branch, counter: str, day: date, *, denominations: Mapping[str, int],
             settled_upi_paise: int | None, settled_card_paise: int | None, note: str,
             actor_id: int) -> DayClosing:
    """Record the signed-off closing: expected figures frozen as they are now, the counted
    cash and its difference, and the settled UPI/card totals. One per branch × counter × day;
    payments may still be taken after it (the page then shows what came in since)."""
    counter = (counter or "main").strip()[:32] or "main"
    if day > billing.today_in_india():
        raise ClosingError("A day cannot be closed before it starts.", field="business_date")
    if closing_for(branch.id, counter, day) is not None:
        raise AlreadyClosed(f"{branch.code} counter {counter} is already closed for {day:%d %b %Y}.")
    for key, count in denominations.items():
        if key not in FACE or int(count) < 0:
            raise ClosingError("Unknown denomination in the count.", field=key)
    if (settled_upi_paise or 0) < 0 or (settled_card_paise or 0) < 0:
        raise ClosingError("Settled amounts cannot be negative.", field="settled_upi")
    figures = expected(branch.id, counter, day)
    counted = counted_paise(denominations)
    settled = {"upi": settled_upi_paise, "card": settled_card_paise}
    closing = DayClosing(branch_id=branch.id, counter=counter, business_date=day, expected=figures.as_dict(),
                         counted_cash_paise=counted, denominations={k: int(v) for k, v in denominations.items() if v},
                         settled=settled, difference_paise=counted - figures.cash_paise,
                         note=(note or "").strip()[:2000], closed_by_id=actor_id,
                         closed_at=datetime.now(timezone.utc))
    savepoint = db.session.begin_nested()
    try:
        db.session.add(closing)
        db.session.flush()
    except IntegrityError:
        savepoint.rollback()  # another clerk signed the same counter off a moment ago
        raise AlreadyClosed(f"{branch.code} counter {counter} is already closed for {day:%d %b %Y}.") from None
    savepoint.commit()
    audit.record("day_closing.signed_off", entity_type="day_closing", entity_id=f"{branch.code}/{counter}/{day}",
                 after={"expected_cash_paise": figures.cash_paise, "counted_cash_paise": counted,
                        "difference_paise": closing.difference_paise, "settled": settled,
                        "expected_upi_paise": figures.upi_paise, "expected_card_paise": figures.card_paise,
                        "refunds_paise": figures.refunds_paise, "discounts_paise": figures.discounts_paise})
    return closing


def delta_since(closing: DayClosing) -> Expected:
    """What the counter took or paid out for that day after it was signed off."""
    now = expected(closing.branch_id, closing.counter, closing.business_date)
    frozen = Expected.from_dict(closing.expected)

    def diff(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
        return {k: a.get(k, 0) - b.get(k, 0) for k in set(a) | set(b) if a.get(k, 0) != b.get(k, 0)}

    return Expected(payments=diff(now.payments, frozen.payments),
                    payment_count=now.payment_count - frozen.payment_count,
                    advances=diff(now.advances, frozen.advances), refunds=diff(now.refunds, frozen.refunds),
                    discounts_paise=now.discounts_paise - frozen.discounts_paise,
                    discount_bills=now.discount_bills - frozen.discount_bills)


def counters(branch_id: int, day: date) -> list[str]:
    """Counters that took or paid money at the branch that day (plus 'main')."""
    start, end = day_bounds(day)
    found = {"main"}
    for model, column in ((Payment, Payment.received_at), (Advance, Advance.received_at)):
        found.update(db.session.execute(select(model.counter).where(
            model.branch_id == branch_id, column >= start, column < end).distinct()).scalars())
    return sorted(found)


def branches() -> list[Branch]:
    return list(db.session.execute(select(Branch).order_by(Branch.code)).scalars())


def recent(*, branch_id: int | None = None, limit: int = 30) -> list[tuple[DayClosing, str, str]]:
    """Past closings, newest first, with the branch code and who signed off."""
    stmt = (select(DayClosing, Branch.code, User.full_name)
            .join(Branch, Branch.id == DayClosing.branch_id).join(User, User.id == DayClosing.closed_by_id)
            .order_by(DayClosing.business_date.desc(), DayClosing.id.desc()).limit(limit))
    if branch_id:
        stmt = stmt.where(DayClosing.branch_id == branch_id)
    return [tuple(row) for row in db.session.execute(stmt)]  # type: ignore[misc]


def summary_pdf(context: Mapping[str, Any]) -> bytes:
    """The signed-off closing on A4 for the branch's cash file."""
    from flask import render_template

    from app.services import documents

    return documents._pdf(render_template("pdf/day_closing.html", **context))
