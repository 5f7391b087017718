"""Billing portal: credit notes, cancellation, refunds and their approvals, and the A4 GST
documents (bill of supply / tax invoice / credit note PDFs).

The bill page includes templates/billing/refunds/_bill_panel.html with only `bill` in its
context: the panel asks `refund_panel(bill)` (a template global registered here) for the
rest. Every form in the panel posts here and, for htmx, gets the panel back (422 with the
messages in place when a rule is broken; nothing is saved then)."""
from __future__ import annotations

import uuid
from typing import Any

from flask import Response, flash, g, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.extensions import db
from app.formatting import parse_rupees
from app.models import Bill, CreditNote, Organization, Payment, Refund, User
from app.portals import page_after_post, see_other, wants_fragment
from app.portals.billing import bp
from app.security import get_or_404
from app.services import ServiceError, bill_documents, credit_notes, refunds

PANEL = "billing/refunds/_bill_panel.html"
PAGE = "billing/refunds/bill.html"


@bp.app_template_global("refund_panel")
def refund_panel(bill: Bill) -> dict[str, Any]:
    """What the bill panel shows besides the bill: its credit notes, refunds, each payment's
    refundable amount, and the messages of a form that was just refused (set on g)."""
    bill_refunds = refunds.refunds_of_bill(bill)
    return {
        "notes": credit_notes.notes_of(bill),
        "refunds": bill_refunds,
        "payments": [(p, refunds.refundable_paise(p)) for p in bill.payments if p.status == "captured"],
        "remaining_lines": [r for r in credit_notes.remaining_by_line(bill) if r.total > 0],
        "creditable": credit_notes.creditable_paise(bill),
        "names": _user_names({r.requested_by_id for r in bill_refunds} | {r.approved_by_id for r in bill_refunds}),
        "modes": refunds.REFUND_MODES, "statuses": refunds.STATUS_LABELS,
        "can_decide": lambda r: refunds.can_decide(r, current_user),
        "errors": getattr(g, "panel_errors", {}), "entered": getattr(g, "panel_values", {}),
        "key": uuid.uuid4().hex,
    }


def _user_names(ids: set[int | None]) -> dict[int, str]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return dict(db.session.execute(select(User.id, User.full_name).where(User.id.in_(ids))).tuples().all())


def _bill(bill_id: int) -> Bill:
    return get_or_404(Bill, id=bill_id)


def _panel_response(bill_id: int, status: int = 200) -> Any:
    """The panel for htmx, else the bill's adjustments page, re-read after commit/rollback."""
    bill = db.session.get(Bill, bill_id)
    db.session.refresh(bill)
    template = PANEL if wants_fragment() else PAGE
    return render_template(template, bill=bill), status


def _refused(bill_id: int, form: str, err: ServiceError | ValueError, values: dict[str, Any]) -> Any:
    db.session.rollback()
    message = err.message if isinstance(err, ServiceError) else str(err)
    field = getattr(err, "field", None) or "form"
    g.panel_errors = {form: {field: message}}
    g.panel_values = {form: values}
    return _panel_response(bill_id, 422)


def _done(bill_id: int, message: str) -> Any:
    """After a change the whole bill page is out of date (totals, status, payments): htmx gets
    the bill page itself in one round trip (page_after_post), a plain form a 303 to it."""
    flash(message, "success")
    bill = db.session.get(Bill, bill_id)
    db.session.refresh(bill)
    url = url_for(".bill", number=bill.number)
    if wants_fragment():
        from app.portals.billing import routes as bill_page  # the bill page's own context

        return page_after_post(url, "billing/bill.html", **bill_page._bill_context(bill))
    return see_other(url)


@bp.get("/bills/<int:bill_id>/adjustments", endpoint="bill_adjustments")
def bill_adjustments(bill_id: int):  # type: ignore[no-untyped-def]
    """Credit notes, cancellation and refunds of one bill (the panel on a page of its own)."""
    bill = _bill(bill_id)
    return render_template(PAGE, bill=bill)


@bp.post("/bills/<int:bill_id>/credit-notes", endpoint="credit_note_create")
def credit_note_create(bill_id: int):  # type: ignore[no-untyped-def]
    bill = _bill(bill_id)
    values = {"amount": request.form.get("amount", "")[:20], "reason": request.form.get("reason", "")[:300],
              "lines": request.form.getlist("lines", type=int)}
    try:
        amount = parse_rupees(values["amount"]) if not values["lines"] else None
        note = credit_notes.issue_credit_note(bill, amount_paise=amount, line_ids=values["lines"] or None,
                                              reason=values["reason"], actor_id=current_user.id)
        number = note.number
        db.session.commit()
    except ValueError as err:
        return _refused(bill_id, "credit", ServiceError(str(err), field="amount"), values)
    except ServiceError as err:
        return _refused(bill_id, "credit", err, values)
    return _done(bill_id, f"Credit note {number} issued.")


@bp.post("/bills/<int:bill_id>/cancel", endpoint="bill_cancel")
def bill_cancel(bill_id: int):  # type: ignore[no-untyped-def]
    bill = _bill(bill_id)
    values = {"reason": request.form.get("reason", "")[:300]}
    try:
        if request.form.get("confirm") != "yes":
            raise ServiceError("Tick the box to confirm: a cancelled bill cannot be reopened.", field="confirm")
        note = credit_notes.cancel_bill(bill, reason=values["reason"], actor_id=current_user.id)
        db.session.commit()
    except ServiceError as err:
        return _refused(bill_id, "cancel", err, values)
    bill = db.session.get(Bill, bill_id)
    owed = f" Refund owed: ₹{bill.refund_owed_paise / 100:,.2f}." if bill.refund_owed_paise else ""
    return _done(bill_id, f"Bill {bill.number} cancelled{' by credit note ' + note.number if note else ''}.{owed}")


@bp.post("/payments/<int:payment_id>/refunds", endpoint="refund_create")
def refund_create(payment_id: int):  # type: ignore[no-untyped-def]
    payment = get_or_404(Payment, id=payment_id)
    bill_id = payment.bill_id
    form = f"refund-{payment_id}"
    values = {key: request.form.get(key, "")[:300] for key in ("amount", "reason", "mode", "reference")}
    try:
        amount = parse_rupees(values["amount"])
        refund = refunds.request_refund(
            payment, amount_paise=amount, reason=values["reason"], mode=values["mode"], actor=current_user,
            reference=values["reference"], idempotency_key=(request.form.get("idempotency_key") or "")[:64] or None,
            credit_note_id=request.form.get("credit_note_id", type=int),
            counter=(request.cookies.get("lis_counter") or "main")[:32])  # the drawer it is paid from
        refund_id = refund.id
        db.session.commit()
    except ValueError as err:
        return _refused(bill_id, form, ServiceError(str(err), field="amount"), values)
    except ServiceError as err:
        return _refused(bill_id, form, err, values)
    refund = refunds.submit_gateway_refund(refund_id)  # Razorpay only; a desk refund is already done
    db.session.commit()
    return _done(bill_id, _refund_message(refund))


def _refund_message(refund: Refund) -> str:
    amount = f"₹{refund.amount_paise / 100:,.2f}"
    if refund.status == "pending_approval":
        return f"Refund of {amount} is waiting for approval (above the refund limit)."
    if refund.status == "failed":
        return f"Refund of {amount} failed: {refund.last_error} The amount is back on the bill."
    if refund.status == "processing":
        return f"Refund of {amount} sent to Razorpay; it completes when Razorpay confirms it."
    return f"Refund of {amount} recorded."


# --- the refunds page ------------------------------------------------------------------


def _rows_context(status: str) -> dict[str, Any]:
    rows = refunds.list_refunds(status or None)
    ids = {r.requested_by_id for r in rows} | {r.approved_by_id for r in rows}
    return {"rows": rows, "status": status, "statuses": refunds.STATUS_LABELS, "modes": refunds.REFUND_MODES,
            "names": _user_names(ids), "pending": refunds.pending_count()}


@bp.get("/refunds", endpoint="refunds")
def refunds_page():  # type: ignore[no-untyped-def]
    status = request.args.get("status", "pending_approval")
    status = status if status in refunds.STATUS_LABELS or status == "" else "pending_approval"
    template = "billing/refunds/_rows.html" if wants_fragment() else "billing/refunds/list.html"
    response = Response(render_template(template, **_rows_context(status)))
    response.headers["Vary"] = "HX-Request"
    return response


def _decided_row(refund_id: int, error: str | None = None, status: int = 200) -> Any:
    refund = db.session.get(Refund, refund_id)
    db.session.refresh(refund)
    names = _user_names({refund.requested_by_id, refund.approved_by_id})
    if wants_fragment():
        return render_template("billing/refunds/_row.html", r=refund, names=names, statuses=refunds.STATUS_LABELS,
                               modes=refunds.REFUND_MODES, row_error=error), status
    if error:
        return render_template("billing/refunds/list.html", row_error_for=refund_id, row_error=error,
                               **_rows_context("pending_approval")), status
    return see_other(url_for(".refunds"))


@bp.post("/refunds/<int:refund_id>/approve", endpoint="refund_approve")
def refund_approve(refund_id: int):  # type: ignore[no-untyped-def]
    refund = get_or_404(Refund, id=refund_id)
    try:
        refunds.approve(refund, actor=current_user)
        db.session.commit()
    except ServiceError as err:
        db.session.rollback()
        return _decided_row(refund_id, err.message, 422)
    refunds.submit_gateway_refund(refund_id)
    db.session.commit()
    return _decided_row(refund_id)


@bp.post("/refunds/<int:refund_id>/reject", endpoint="refund_reject")
def refund_reject(refund_id: int):  # type: ignore[no-untyped-def]
    refund = get_or_404(Refund, id=refund_id)
    try:
        refunds.reject(refund, actor=current_user, note=request.form.get("note", "")[:1000])
        db.session.commit()
    except ServiceError as err:
        db.session.rollback()
        return _decided_row(refund_id, err.message, 422)
    return _decided_row(refund_id)


# --- documents -------------------------------------------------------------------------


def _pdf(body: bytes, name: str) -> Response:
    return Response(body, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "private, no-store"})


@bp.get("/bills/<int:bill_id>/pdf", endpoint="bill_pdf")
def bill_pdf(bill_id: int):  # type: ignore[no-untyped-def]
    """The A4 bill of supply or tax invoice, whichever the bill is."""
    bill = _bill(bill_id)
    org = db.session.get(Organization, current_user.org_id)
    prefix = "invoice" if bill.doc_type == "tax_invoice" else "bill"
    return _pdf(bill_documents.bill_pdf(org, bill), bill_documents.filename(bill.number, prefix))


@bp.get("/credit-notes/<int:note_id>/pdf", endpoint="credit_note_pdf")
def credit_note_pdf(note_id: int):  # type: ignore[no-untyped-def]
    note = get_or_404(CreditNote, id=note_id)
    org = db.session.get(Organization, current_user.org_id)
    return _pdf(bill_documents.credit_note_pdf(org, note), bill_documents.filename(note.number, "credit-note"))


