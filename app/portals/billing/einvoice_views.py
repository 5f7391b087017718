"""Billing portal: GST e-invoices — the list of B2B tax invoices with their IRP status, sending
(and sending again), cancelling within 24 hours, one e-invoice's IRN/ack/QR, and the
organization's e-invoicing switch. The rules live in app/services/einvoicing.py."""
from __future__ import annotations

from flask import flash, render_template, request, url_for
from flask_login import current_user

from app.extensions import db
from app.integrations.irp import CANCEL_REASONS
from app.models import Bill, EInvoice, Organization
from app.portals import page_after_post, wants_fragment
from app.portals.billing import bp
from app.security import get_or_404
from app.services import ServiceError, einvoicing


@bp.app_template_global("einvoice_for")
def einvoice_for(bill: Bill) -> EInvoice | None:
    """For billing/einvoice/_bill_panel.html, included by the bill page with only `bill`."""
    return einvoicing.einvoice_for_bill(bill.id)


@bp.app_template_global("einvoice_ineligible")
def einvoice_ineligible(bill: Bill) -> str | None:
    return einvoicing.ineligible_reason(bill, db.session.get(Organization, bill.org_id))


def _list_context(**extra):  # type: ignore[no-untyped-def]
    status = request.args.get("status", "")
    org = db.session.get(Organization, current_user.org_id)
    return dict(org=org, rows=einvoicing.invoices(status if status in einvoicing.STATUS_LABELS or status == "none"
                                                  else ""),
                credit_notes=einvoicing.credit_note_rows(), status=status, labels=einvoicing.STATUS_LABELS,
                note=einvoicing.threshold_note(org), configured=einvoicing.client_for(org) is not None,
                threshold=einvoicing.THRESHOLD_PAISE, **extra)


@bp.get("/einvoices", endpoint="einvoices")
def einvoices_view():  # type: ignore[no-untyped-def]
    return render_template("billing/einvoice/list.html", **_list_context())


@bp.post("/einvoices/settings", endpoint="einvoice_settings")
def einvoice_settings():  # type: ignore[no-untyped-def]
    org = db.session.get(Organization, current_user.org_id)
    enabled = request.form.get("enabled") == "y"
    try:
        turnover = einvoicing.parse_turnover(request.form.get("turnover"))
        einvoicing.update_settings(org, enabled=enabled, turnover_paise=turnover)
        db.session.commit()
    except (ValueError, ServiceError) as err:
        db.session.rollback()
        message = err.message if isinstance(err, ServiceError) else str(err)
        return render_template("billing/einvoice/list.html",
                               **_list_context(settings_error=message, form=request.form)), 422
    flash("E-invoicing " + ("switched on." if enabled else "switched off."), "success")
    return page_after_post(url_for(".einvoices"), "billing/einvoice/list.html", **_list_context())


def _answer_row(bill: Bill, row: EInvoice | None, error: str | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    """htmx: the row (list) or the panel (bill page) re-rendered; a plain form: the page again."""
    if wants_fragment():
        template = "billing/einvoice/_bill_panel.html" if request.form.get("from") == "bill" \
            else "billing/einvoice/_row.html"
        return render_template(template, bill=bill, b=bill, e=row, error=error,
                               labels=einvoicing.STATUS_LABELS), status
    if error:
        return render_template("billing/einvoice/list.html", **_list_context(page_error=error)), status
    flash(f"{bill.number}: queued for the IRP.", "success")
    return page_after_post(url_for(".einvoices"), "billing/einvoice/list.html", **_list_context())


@bp.post("/einvoices/bills/<int:bill_id>/send", endpoint="einvoice_send")
def einvoice_send(bill_id: int):  # type: ignore[no-untyped-def]
    bill = get_or_404(Bill, id=bill_id)
    try:
        row = einvoicing.submit_bill(bill)
        db.session.commit()
    except ServiceError as err:
        db.session.rollback()
        return _answer_row(bill, einvoicing.einvoice_for_bill(bill_id), err.message, 422)
    return _answer_row(bill, row)


@bp.get("/einvoices/<int:einvoice_id>", endpoint="einvoice")
def einvoice_view(einvoice_id: int):  # type: ignore[no-untyped-def]
    return render_template("billing/einvoice/detail.html", **_detail_context(get_or_404(EInvoice, id=einvoice_id)))


def _detail_context(row: EInvoice, **extra):  # type: ignore[no-untyped-def]
    bill = db.session.get(Bill, row.bill_id) if row.bill_id else None
    return dict(e=row, bill=bill, qr_fields=einvoicing.decode_signed_qr(row.signed_qr),
                qr_svg=einvoicing.signed_qr_svg(row, scale=3), can_cancel=einvoicing.can_cancel(row),
                cancel_until=einvoicing.cancellable_until(row), reasons=CANCEL_REASONS, labels=einvoicing.STATUS_LABELS,
                **extra)


@bp.post("/einvoices/<int:einvoice_id>/retry", endpoint="einvoice_retry")
def einvoice_retry(einvoice_id: int):  # type: ignore[no-untyped-def]
    row = get_or_404(EInvoice, id=einvoice_id)
    try:
        einvoicing.retry(row)
        db.session.commit()
    except ServiceError as err:
        db.session.rollback()
        return render_template("billing/einvoice/detail.html",
                               **_detail_context(get_or_404(EInvoice, id=einvoice_id), page_error=err.message)), 422
    flash("Queued for the IRP.", "success")
    return page_after_post(url_for(".einvoice", einvoice_id=einvoice_id), "billing/einvoice/detail.html",
                           **_detail_context(get_or_404(EInvoice, id=einvoice_id)))


@bp.post("/einvoices/<int:einvoice_id>/cancel", endpoint="einvoice_cancel")
def einvoice_cancel(einvoice_id: int):  # type: ignore[no-untyped-def]
    row = get_or_404(EInvoice, id=einvoice_id)
    try:
        einvoicing.cancel(row, reason=request.form.get("reason", ""), remark=request.form.get("remark", "")[:200])
        db.session.commit()
    except ServiceError as err:
        db.session.rollback()
        return render_template("billing/einvoice/detail.html",
                               **_detail_context(get_or_404(EInvoice, id=einvoice_id), cancel_error=err.message,
                                                 form=request.form)), 422
    flash("The IRN is cancelled at the IRP. Cancel or credit the invoice itself as well.", "success")
    return page_after_post(url_for(".einvoice", einvoice_id=einvoice_id), "billing/einvoice/detail.html",
                           **_detail_context(get_or_404(EInvoice, id=einvoice_id)))
