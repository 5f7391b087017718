"""RQ jobs for the Razorpay gateway (run inside the app context by the worker)."""
from __future__ import annotations


def sweep() -> dict[str, int]:
    """Finish webhook events stored but never processed (the web process died between the
    commit and the answer, or a refund event came before its refund was committed), and send
    captured payments that no event ever tied to a bill to the exceptions queue."""
    from app.services import gateway

    return gateway.sweep()
