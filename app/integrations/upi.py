"""UPI payment links and QR codes, to the NPCI deep-link spec (../shared/reference/india.md §3.1).

A dynamic QR for a bill: pa (payee VPA), pn (payee name), tr (= bill number, mandatory for
merchant dynamic QR), am (two decimals), cu=INR, tn (note); values percent-encoded."""
from __future__ import annotations

import functools
import re
from urllib.parse import quote

import segno

VPA_RE = re.compile(r"^[A-Za-z0-9.\-_]{2,256}@[A-Za-z][A-Za-z0-9]{1,63}$")


def payment_uri(*, vpa: str, payee_name: str, reference: str, amount_paise: int, note: str) -> str:
    if not VPA_RE.match(vpa):
        raise ValueError(f"not a UPI address: {vpa!r}")
    if amount_paise <= 0:
        raise ValueError("amount must be positive")
    rupees, paise = divmod(amount_paise, 100)
    params = [("pa", vpa), ("pn", payee_name), ("tr", reference), ("am", f"{rupees}.{paise:02d}"),
              ("cu", "INR"), ("tn", note[:50])]
    return "upi://pay?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in params)


# The order page re-renders the same bill's QR on every swap; generating it in pure Python
# costs tens of milliseconds, so the last few hundred are kept (the URI includes the amount).
@functools.lru_cache(maxsize=256)
def qr_svg(uri: str, *, scale: int = 4) -> str:
    """An inline SVG QR code (a few KB, no image request on a slow line)."""
    return segno.make(uri, error="m").svg_inline(scale=scale, border=2)


@functools.lru_cache(maxsize=256)
def qr_data_uri(uri: str, *, scale: int = 4) -> str:
    return segno.make(uri, error="m").svg_data_uri(scale=scale, border=2)
