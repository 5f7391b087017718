"""Display formatting: Indian time and rupees."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")


def format_local_datetime(value: datetime | None, fmt: str = "%d %b %Y, %H:%M") -> str:
    """Stored in UTC, shown in Asia/Kolkata."""
    if value is None:
        return ""
    return value.astimezone(IST).strftime(fmt)


def format_paise(paise: int | None) -> str:
    """₹1,23,456.78 — Indian digit grouping (lakh, crore)."""
    if paise is None:
        return ""
    sign = "-" if paise < 0 else ""
    rupees, fraction = divmod(abs(int(paise)), 100)
    digits = str(rupees)
    if len(digits) > 3:
        head, tail = digits[:-3], digits[-3:]
        groups = []
        while len(head) > 2:
            groups.insert(0, head[-2:])
            head = head[:-2]
        if head:
            groups.insert(0, head)
        digits = ",".join(groups) + "," + tail
    return f"{sign}₹{digits}.{fraction:02d}"


def format_amount(paise: int | None) -> str:
    """1234.50: plain rupees with two decimals for form fields and document columns, by integer
    arithmetic (money never passes through a float)."""
    if paise is None:
        return ""
    sign = "-" if paise < 0 else ""
    rupees, fraction = divmod(abs(int(paise)), 100)
    return f"{sign}{rupees}.{fraction:02d}"


def parse_rupees(text: str | None) -> int:
    """'1,250.50' or '₹ 1250.5' → 125050 paise. Raises ValueError with a message."""
    from decimal import Decimal, InvalidOperation

    cleaned = (text or "").replace("₹", "").replace(",", "").strip()
    if not cleaned:
        return 0
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError("Enter an amount in rupees, like 250 or 250.50.") from None
    if not value.is_finite():
        raise ValueError("Enter an amount in rupees, like 250 or 250.50.")
    if abs(value) > Decimal("10000000"):
        raise ValueError("That amount is too large.")
    if value != value.quantize(Decimal("0.01")):
        raise ValueError("At most two decimals (paise).")
    if abs(value) > Decimal("10000000"):
        raise ValueError("That amount is too large.")
    return int(value * 100)
