"""Billing portal: the clerk's home page, the bill list and a bill's page (documents, payments
and, from the other back-office modules, links, refunds, credit notes and e-invoice panels)."""
from __future__ import annotations

import uuid
from datetime import date

from flask import abort, current_app, flash, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.extensions import db
from app.formatting import parse_rupees
from app.models import Branch, Organization
from app.portals import page_after_post, page_or_fragment
from app.portals.billing import bp
from app.services import billing, documents


def _date_arg(name: str) -> date | None:
    try:
        return date.fromisoformat(request.args.get(name, ""))
    except ValueError:
        return None


@bp.get("/", endpoint="dashboard")
def dashboard_view():  # type: ignore[no-untyped-def]
    counts = billing.home_counts()
    attention = {"exceptions": counts.exceptions, "refund_approvals": counts.refund_approvals,
                 "einvoice_problems": counts.einvoice_problems}
    collected = billing.collections_today(current_user.branch_id)
    return render_template("billing/home.html", collected=collected, collected_total=sum(collected.values()),
                           due_count=counts.due_count, due_total=counts.due_paise, attention=attention,
                           endpoints=current_app.view_functions)


@bp.get("/bills", endpoint="bills")
def bills_view():  # type: ignore[no-untyped-def]
    on_account = {"yes": True, "no": False}.get(request.args.get("on_account", ""))
    filters = billing.BillFilter(q=request.args.get("q", "")[:60], status=request.args.get("status", ""),
                                 doc_type=request.args.get("doc_type", ""),
                                 branch_id=request.args.get("branch_id", type=int), date_from=_date_arg("from"),
                                 date_to=_date_arg("to"), on_account=on_account)
    bills = billing.search_bills(filters)
    branches = db.session.execute(select(Branch).order_by(Branch.code)).scalars().all()
    return render_template(page_or_fragment("billing/bills.html", "billing/_bill_rows.html"), bills=bills,
                           filters=filters, branches=branches, doc_types=billing.DOCUMENT_TYPES_SHOWN,
                           statuses=billing.BILL_STATUSES)


def _bill_or_404(number: str):  # type: ignore[no-untyped-def]
    return billing.bill_by_number(number) or abort(404)


def _bill_context(bill, **extra):  # type: ignore[no-untyped-def]
    org = db.session.get(Organization, current_user.org_id)
    extra.setdefault("counter", _counter())
    return dict(bill=bill, org=org, upi=documents.upi_for_bill(org, bill), payment_key=uuid.uuid4().hex, **extra)


COUNTER_COOKIE = "lis_counter"


def _counter() -> str:
    """The counter (cash drawer) this clerk works at; day-end closing is per counter. Kept in a
    cookie of this browser (a desk's machine) once a payment names it; refunds read it too."""
    return (request.cookies.get(COUNTER_COOKIE) or "main")[:32]


def _remember_counter(response, counter: str):  # type: ignore[no-untyped-def]
    if counter and counter != request.cookies.get(COUNTER_COOKIE):
        response.set_cookie(COUNTER_COOKIE, counter, max_age=12 * 3600, httponly=True, samesite="Lax",
                            secure=current_app.config["SESSION_COOKIE_SECURE"])
    return response


@bp.get("/bills/<path:number>", endpoint="bill")
def bill_view(number: str):  # type: ignore[no-untyped-def]
    return render_template("billing/bill.html", **_bill_context(_bill_or_404(number)))


@bp.post("/bills/<path:number>/payments", endpoint="payment_create")
def payment_create(number: str):  # type: ignore[no-untyped-def]
    bill = _bill_or_404(number)
    counter = " ".join(request.form.get("counter", "").split())[:32] or _counter()
    try:
        amount = parse_rupees(request.form.get("amount"))
        billing.record_payment(bill, mode=request.form.get("mode", ""), amount_paise=amount,
                               reference=request.form.get("reference", "")[:64], received_by_id=current_user.id,
                               idempotency_key=(request.form.get("idempotency_key") or "")[:64] or None,
                               counter=counter)
        db.session.commit()
    except (billing.PaymentInvalid, ValueError) as err:
        db.session.rollback()
        message = err.message if isinstance(err, billing.PaymentInvalid) else str(err)
        bill = _bill_or_404(number)
        return render_template("billing/bill.html", **_bill_context(bill, payment_error=message)), 422
    flash(f"Payment recorded on {bill.number}.", "success")
    bill = _bill_or_404(number)
    return _remember_counter(page_after_post(url_for(".bill", number=bill.number), "billing/bill.html",
                                             **_bill_context(bill, counter=counter)), counter)
