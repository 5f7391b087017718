"""Reception: the desk (search + today's orders), orders, payments, labels, receipts."""
from __future__ import annotations

import uuid

from flask import Response, current_app, flash, render_template, request, url_for
from flask_login import current_user

from app.extensions import db
from app.formatting import parse_rupees
from app.models import Branch, Organization, Patient
from app.portals import page_after_post, page_or_fragment
from app.portals.reception import bp
from app.security import get_or_404
from app.services import billing, catalogue, orders
from app.services import documents


def _desk_branch() -> Branch:
    """The branch the order belongs to: the user's own, else the main lab."""
    if current_user.branch_id:
        return db.session.get(Branch, current_user.branch_id)
    return catalogue.main_branch()


@bp.get("/", endpoint="dashboard")
def dashboard():  # type: ignore[no-untyped-def]
    return render_template("reception/desk.html", results=None, query="",
                           todays=orders.todays_orders(current_user.branch_id))


def _order_request(form) -> orders.OrderRequest:  # type: ignore[no-untyped-def]
    errors: dict[str, list[str]] = {}
    try:
        discount = parse_rupees(form.get("discount"))
    except ValueError as err:
        discount, errors["discount"] = 0, [str(err)]
    codes = [c for c in form.get("tests", "").replace(",", " ").split() if c][:100]
    return orders.OrderRequest(
        codes=codes, priority=form.get("priority", "routine"), referrer_id=form.get("referrer_id", type=int),
        client_id=form.get("client_id", type=int), clinical_notes=form.get("clinical_notes", "")[:4000],
        discount_paise=discount, discount_reason=form.get("discount_reason", "")[:400],
        idempotency_key=(form.get("idempotency_key") or "")[:64] or None, errors=errors)


def _order_form_context(patient: Patient, req: orders.OrderRequest | None = None, errors=None):  # type: ignore[no-untyped-def]
    req = req or orders.OrderRequest(codes=[], idempotency_key=uuid.uuid4().hex)
    clients = catalogue.list_clients()
    client = next((c for c in clients if c.id == req.client_id), None)
    items, unknown = orders.resolve(req.codes, client)
    return dict(patient=patient, req=req, items=items, unknown=unknown, errors=errors or {},
                gross=sum(i.price_paise for i in items), referrers=catalogue.list_referrers(), clients=clients,
                discount_limit=_discount_limit())


def _discount_limit() -> int:
    return int(current_app.config["LIS_DISCOUNT_LIMITS"].get(current_user.role, 0))


@bp.get("/patients/<mrn>/orders/new", endpoint="order_new")
def order_new(mrn: str):  # type: ignore[no-untyped-def]
    patient = get_or_404(Patient, mrn=mrn)
    return render_template("reception/order_new.html", **_order_form_context(patient))


@bp.get("/patients/<mrn>/orderables", endpoint="orderables")
def orderables(mrn: str):  # type: ignore[no-untyped-def]
    """Active search of tests and panels for the order form."""
    patient = get_or_404(Patient, mrn=mrn)
    return render_template("reception/_orderables.html", patient=patient,
                           found=orders.search_orderables(request.args.get("q", "")))


@bp.get("/patients/<mrn>/orders/lines", endpoint="order_lines")
def order_lines(mrn: str):  # type: ignore[no-untyped-def]
    """The selected tests, total and tube plan, re-rendered when a test is added or removed."""
    patient = get_or_404(Patient, mrn=mrn)
    codes = request.args.get("tests", "").replace(",", " ").split()
    if request.args.get("add"):
        codes.append(request.args["add"])
    if request.args.get("remove"):
        codes = [c for c in codes if c.upper() != request.args["remove"].upper()]
    req = orders.OrderRequest(codes=codes[:100])
    return render_template("reception/_order_lines.html", **_order_form_context(patient, req))


@bp.post("/patients/<mrn>/orders", endpoint="order_create")
def order_create(mrn: str):  # type: ignore[no-untyped-def]
    patient = get_or_404(Patient, mrn=mrn)
    req = _order_request(request.form)
    try:
        if req.errors:
            raise orders.OrderInvalid(req.errors)
        order, _bills = orders.create_order(patient, _desk_branch(), req, created_by_id=current_user.id,
                                            discount_limit_percent=_discount_limit())
        db.session.commit()
    except orders.OrderInvalid as err:
        db.session.rollback()
        return render_template(page_or_fragment("reception/order_new.html", "reception/_order_form.html"),
                               **_order_form_context(patient, req, err.errors)), 422
    order = orders.by_accession(order.accession)
    return page_after_post(url_for(".order", accession=order.accession), "reception/order.html",
                           **_order_page_context(order))


def _order_page_context(order, **extra):  # type: ignore[no-untyped-def]
    org = db.session.get(Organization, current_user.org_id)
    bills = orders.bills_of(order)
    return dict(order=order, bills=bills, org=org, upi={b.id: documents.upi_for_bill(org, b) for b in bills},
                payment_key=uuid.uuid4().hex, **extra)


@bp.get("/orders/<accession>", endpoint="order")
def order_view(accession: str):  # type: ignore[no-untyped-def]
    order = orders.by_accession(accession) or _not_found()
    return render_template("reception/order.html", **_order_page_context(order))


def _not_found():  # type: ignore[no-untyped-def]
    from flask import abort

    abort(404)


@bp.post("/bills/<path:number>/payments", endpoint="payment_create")
def payment_create(number: str):  # type: ignore[no-untyped-def]
    bill = billing.bill_by_number(number) or _not_found()
    try:
        amount = parse_rupees(request.form.get("amount"))
        billing.record_payment(bill, mode=request.form.get("mode", ""), amount_paise=amount,
                               reference=request.form.get("reference", "")[:64], received_by_id=current_user.id,
                               idempotency_key=(request.form.get("idempotency_key") or "")[:64] or None)
        db.session.commit()
    except (billing.PaymentInvalid, ValueError) as err:
        db.session.rollback()
        message = err.message if isinstance(err, billing.PaymentInvalid) else str(err)
        order = orders.by_accession(bill.order.accession)
        return render_template("reception/order.html",
                               **_order_page_context(order, payment_error=(bill.id, message))), 422
    flash(f"Payment recorded on {bill.number}.", "success")
    order = orders.by_accession(bill.order.accession)
    return page_after_post(url_for(".order", accession=order.accession), "reception/order.html",
                           **_order_page_context(order))


@bp.get("/orders/<accession>/labels.pdf", endpoint="labels")
def labels(accession: str):  # type: ignore[no-untyped-def]
    """Tube labels, 50×25 mm. Each print after the first is a reprint, and audited."""
    order = orders.by_accession(accession) or _not_found()
    only = request.args.get("barcode")
    samples = [s for s in order.samples if not only or s.barcode == only] or _not_found()
    pdf = documents.labels_pdf(order, samples)
    documents.record_label_print(order, samples)
    db.session.commit()
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="labels-{order.accession}.pdf"'})


@bp.get("/bills/<path:number>/receipt.pdf", endpoint="receipt")
def receipt(number: str):  # type: ignore[no-untyped-def]
    bill = billing.bill_by_number(number) or _not_found()
    size = request.args.get("size", "a5")
    if size not in documents.RECEIPT_SIZES:
        size = "a5"
    org = db.session.get(Organization, current_user.org_id)
    pdf = documents.receipt_pdf(org, bill, size)
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="receipt-{bill.number.replace("/", "-")}.pdf"'})
