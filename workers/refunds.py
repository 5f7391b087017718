"""RQ jobs for refunds (run inside the app context by the worker)."""
from __future__ import annotations


def sweep() -> dict[str, int]:
    """Razorpay refunds left 'processing' without Razorpay's id (no clear answer, or the web
    process died before sending): looked up at Razorpay, adopted or sent once."""
    from app.services import refunds

    return refunds.sweep_stalled()
