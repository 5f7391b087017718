"""RQ jobs for analyzer messages."""
from __future__ import annotations


def process_pending_messages() -> int:
    """Parse and match every stored analyzer message (woken by the listener after each
    commit, and swept by cron in case a wake-up was lost)."""
    from app.services import ingestion

    return ingestion.process_pending(limit=100_000)
