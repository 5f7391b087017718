"""Display formatting: Indian time and rupees."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")


_FORMATTED: dict[tuple[float, str], str] = {}


def format_local_datetime(value: datetime | None, fmt: str = "%d %b %Y, %H:%M") -> str:
    """Stored in UTC, shown in Asia/Kolkata. Each (second, format) is formatted once per
    process: pages show the same times on every refresh (a queue, an activity table), and
    converting and formatting costs ~3 µs a cell. Keyed on the whole second, so a page's
    "as of" clock is formatted once a second, not once a request; a format showing
    fractions of a second (%f) is keyed on the exact instant."""
    if value is None:
        return ""
    instant = value.timestamp()
    key = (instant if "%f" in fmt else instant // 1, fmt)
    text = _FORMATTED.get(key)
    if text is None:
        text = value.astimezone(IST).strftime(fmt)
        if len(_FORMATTED) >= 8192:
            _FORMATTED.clear()
        _FORMATTED[key] = text
    return text


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


def parse_rupees(text: str | None, *, what: str = "an amount", example: str = "250 or 250.50",
                 maximum: int = 10_000_000, negative: bool = True) -> int:
    """'1,250.50' or '₹ 1250.5' → 125050 paise. Raises ValueError with a message naming `what`
    is asked for; `maximum` is in rupees (the check comes before quantizing, so '1e999' is
    refused rather than expanded)."""
    from decimal import Decimal, InvalidOperation

    cleaned = (text or "").replace("₹", "").replace(",", "").strip()
    if not cleaned:
        return 0
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or (value < 0 and not negative):
        raise ValueError(f"Enter {what} in rupees, like {example}.")
    if abs(value) > maximum:
        raise ValueError(f"That {what.split()[-1]} is too large.")
    if value != value.quantize(Decimal("0.01")):
        raise ValueError("At most two decimals (paise).")
    return int(value * 100)
