"""RQ jobs for reconciliation (queue 'recon'): process one statement import (parse, insert
its lines, match them to payments), and the periodic sweep that re-queues lost imports."""
from __future__ import annotations


def process(import_id: int) -> str:
    """Parse, insert and match one import (idempotent: see reconciliation.process_import)."""
    from app.services import reconciliation

    return reconciliation.process_import(import_id)


def sweep() -> dict[str, int]:
    """Queue again imports left 'queued' (Redis away at the commit) or 'processing' by a dead job."""
    from app.services import reconciliation

    return reconciliation.sweep()
