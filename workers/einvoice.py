"""RQ jobs for GST e-invoicing (queue 'einvoice'): report one document to the IRP, and the
periodic sweep (new eligible invoices, lost jobs, interrupted sends). The rules are in
app/services/einvoicing.py; the job scopes itself to the row's organization there
(security.tenant_of_row)."""
from __future__ import annotations


def submit(einvoice_id: int) -> str:
    """Send one e-invoice (idempotent: see einvoicing.submit)."""
    from app.services import einvoicing

    return einvoicing.submit(einvoice_id)


def sweep() -> dict[str, int]:
    from app.services import einvoicing

    return einvoicing.sweep()
