"""Billing portal: B2B client accounts (ageing, statement HTML/PDF, receipts), advances,
day-end closing, the collections report and the accountant's CSV exports.

Views parse and authorize, call app.services.accounts / day_closing / accounting_exports and
render. Refused input answers 422 with the message in place and nothing saved."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import Response, abort, current_app, flash, render_template, request, url_for
from flask_login import current_user

from app import security
from app.extensions import db
from app.formatting import parse_rupees
from app.models import Advance, Branch, Client, DayClosing, Organization, User
from app.portals import page_or_fragment, see_other
from app.portals.billing import bp
from app.security import get_or_404
from app.services import ServiceError, accounting_exports, accounts, billing, catalogue, day_closing


def _org() -> Organization:
    return db.session.get(Organization, current_user.org_id)


def _parse_date(value: str | None, field: str, default: date | None = None) -> date | None:
    value = (value or "").strip()
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ServiceError("Enter a date like 2026-11-22.", field=field) from None


def _pdf_response(pdf: bytes, filename: str) -> Response:
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{filename}"'})


def _csv_response(register: accounting_exports.Register) -> Response:
    """Streamed: rows are read and written as the client downloads them. The body is
    iterated after the view returns, so the generator opens its own app context and DB
    session, scoped to the same organization, rather than rely on the request's."""
    app, org_id = current_app._get_current_object(), security.current_tenant()  # type: ignore[attr-defined]

    def body():  # type: ignore[no-untyped-def]
        with app.app_context():
            security.use_tenant(db.session, org_id)
            yield from register.lines()

    response = Response(body(), mimetype="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{register.filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


# --- client accounts ---------------------------------------------------------------------

@bp.get("/accounts", endpoint="accounts")
def accounts_list():  # type: ignore[no-untyped-def]
    rows = accounts.balances()
    totals = {"outstanding": sum(r.outstanding_paise for r in rows), "overdue": sum(r.overdue_paise for r in rows),
              **{b: sum(r.buckets[b] for r in rows) for b in accounts.AGEING_BUCKETS}}
    return render_template("billing/accounts/list.html", rows=rows, totals=totals, buckets=accounts.AGEING_BUCKETS)


def _account_context(client: Client, **extra: Any) -> dict[str, Any]:
    [balance] = accounts.balances(client_id=client.id) or [accounts.ClientBalance(client=client)]
    context = dict(client=client, balance=balance, bills=accounts.open_bills(client),
                   receipts=accounts.receipts(client), modes=accounts.RECEIPT_MODES, buckets=accounts.AGEING_BUCKETS,
                   today=billing.today_in_india(), month=billing.today_in_india().strftime("%Y-%m"), errors={},
                   values={})
    context.update(extra)
    return context


@bp.get("/accounts/<int:client_id>", endpoint="account")
def account(client_id: int):  # type: ignore[no-untyped-def]
    client = get_or_404(Client, id=client_id)
    return render_template("billing/accounts/client.html", **_account_context(client))


@bp.post("/accounts/<int:client_id>/receipts", endpoint="account_receipt")
def account_receipt(client_id: int):  # type: ignore[no-untyped-def]
    client = get_or_404(Client, id=client_id)
    values = {k: request.form.get(k, "")[:64] for k in ("mode", "reference", "amount", "received_on")}
    try:
        try:
            amount = parse_rupees(values["amount"])
        except ValueError as err:
            raise ServiceError(str(err), field="amount") from None
        received_on = _parse_date(values["received_on"], "received_on", billing.today_in_india())
        receipt = accounts.record_client_receipt(client, mode=values["mode"], reference=values["reference"],
                                                 amount_paise=amount, received_on=received_on,
                                                 actor_id=current_user.id)
        left = receipt.amount_paise - receipt.allocated_paise
        db.session.commit()
    except ServiceError as err:
        db.session.rollback()
        client = get_or_404(Client, id=client_id)
        context = _account_context(client, errors={err.field or "form": err.message}, values=values)
        return render_template(page_or_fragment("billing/accounts/client.html", "billing/accounts/_receipt_form.html"),
                               **context), 422
    note = f" ₹{left // 100:,}.{left % 100:02d} is kept on account for the next bills." if left else ""
    flash(f"Receipt {receipt.reference} recorded and allocated oldest bill first.{note}", "success")
    return see_other(url_for(".account", client_id=client_id))


def _statement(client_id: int) -> tuple[Client, accounts.Statement]:
    client = get_or_404(Client, id=client_id)
    return client, accounts.statement(client, request.args.get("month", "")[:7])


@bp.get("/accounts/<int:client_id>/statement", endpoint="account_statement")
def account_statement(client_id: int):  # type: ignore[no-untyped-def]
    try:
        client, st = _statement(client_id)
    except accounts.AccountError as err:
        client = get_or_404(Client, id=client_id)
        return render_template("billing/accounts/statement.html", client=client, st=None, error=err.message,
                               month=request.args.get("month", "")[:7]), 422
    return render_template("billing/accounts/statement.html", client=client, st=st, error=None,
                           month=st.start.strftime("%Y-%m"))


@bp.get("/accounts/<int:client_id>/statement.pdf", endpoint="account_statement_pdf")
def account_statement_pdf(client_id: int):  # type: ignore[no-untyped-def]
    try:
        client, st = _statement(client_id)
    except accounts.AccountError:
        return account_statement(client_id)  # the page, with the message, 422
    return _pdf_response(accounts.statement_pdf(_org(), st), f"statement-{client.code}-{st.start:%Y-%m}.pdf")


# --- advances ------------------------------------------------------------------------------

def _advances_page(status: int = 200, **extra: Any):  # type: ignore[no-untyped-def]
    context = dict(advances=accounts.advances(), modes=accounts.ADVANCE_MODES, clients=accounts.active_clients(),
                   errors={}, values={}, apply_errors={})
    context.update(extra)
    return render_template("billing/accounts/advances.html", **context), status


def _desk_branch() -> Branch:
    if current_user.branch_id:
        return db.session.get(Branch, current_user.branch_id)
    return catalogue.main_branch()


@bp.get("/advances", endpoint="advances")
def advances_view():  # type: ignore[no-untyped-def]
    return _advances_page()


@bp.post("/advances", endpoint="advance_create")
def advance_create():  # type: ignore[no-untyped-def]
    values = {k: request.form.get(k, "")[:64] for k in ("holder", "mrn", "client_id", "mode", "amount", "reference",
                                                       "counter")}
    try:
        patient, client = accounts.find_holder(values["holder"], mrn=values["mrn"],
                                               client_id=request.form.get("client_id", type=int))
        try:
            amount = parse_rupees(values["amount"])
        except ValueError as err:
            raise ServiceError(str(err), field="amount") from None
        advance = accounts.take_advance(patient=patient, client=client, branch=_desk_branch(), mode=values["mode"],
                                        amount_paise=amount, reference=values["reference"], actor_id=current_user.id,
                                        counter=values["counter"].strip() or "main")
        number = advance.number
        db.session.commit()
    except ServiceError as err:
        db.session.rollback()
        return _advances_page(422, errors={err.field or "form": err.message}, values=values)
    flash(f"Advance {number} taken.", "success")
    return see_other(url_for(".advances"))


@bp.post("/advances/<int:advance_id>/apply", endpoint="advance_apply")
def advance_apply(advance_id: int):  # type: ignore[no-untyped-def]
    advance = get_or_404(Advance, id=advance_id)
    values = {k: request.form.get(k, "")[:64] for k in ("bill", "amount")}
    try:
        bill = billing.bill_by_number(values["bill"].strip().upper())
        if bill is None:
            raise ServiceError("No bill with that number.", field="bill")
        try:
            amount = parse_rupees(values["amount"])
        except ValueError as err:
            raise ServiceError(str(err), field="amount") from None
        accounts.apply_advance(advance, bill, amount, actor_id=current_user.id)
        message = f"₹{amount // 100:,}.{amount % 100:02d} of advance {advance.number} applied to {bill.number}."
        db.session.commit()
    except ServiceError as err:
        db.session.rollback()
        return _advances_page(422, apply_errors={advance_id: err.message}, values={"apply": {advance_id: values}})
    flash(message, "success")
    return see_other(url_for(".advances"))


# --- day-end closing -------------------------------------------------------------------------

def _closing_params() -> tuple[Branch, str, date]:
    """Branch, counter and business day from the query or the form (the user's branch,
    'main' and today by default). A malformed date in a posted form is a tampered form: 400."""
    branch_id = request.values.get("branch_id", type=int) or (_desk_branch().id)
    branch = get_or_404(Branch, id=branch_id)
    counter = (request.values.get("counter") or "main").strip()[:32] or "main"
    try:
        day = _parse_date(request.values.get("date"), "date", billing.today_in_india())
    except ServiceError:
        if request.method == "POST":
            abort(400)
        raise
    return branch, counter, day  # type: ignore[return-value]


def _closing_context(branch: Branch, counter: str, day: date, **extra: Any) -> dict[str, Any]:
    closing = day_closing.closing_for(branch.id, counter, day)
    figures = day_closing.expected(branch.id, counter, day)
    context = dict(branch=branch, counter=counter, day=day, closing=closing, figures=figures,
                   delta=day_closing.delta_since(closing) if closing else None,
                   settled_hint=day_closing.settled_from_statements(branch.id, counter, day),
                   branches=day_closing.branches(),
                   counters=day_closing.counters(branch.id, day), denominations=day_closing.DENOMINATIONS,
                   counts={}, counted=0, errors={}, values={},
                   recent=day_closing.recent(limit=20), today=billing.today_in_india())
    context.update(extra)
    return context


@bp.get("/closing", endpoint="day_closing")
def closing_view():  # type: ignore[no-untyped-def]
    try:
        branch, counter, day = _closing_params()
    except ServiceError as err:
        branch, counter, day = _desk_branch(), "main", billing.today_in_india()
        return render_template("billing/closing/page.html",
                               **_closing_context(branch, counter, day, errors={"date": err.message})), 422
    return render_template("billing/closing/page.html", **_closing_context(branch, counter, day))


@bp.post("/closing/count", endpoint="day_closing_count")
def closing_count():  # type: ignore[no-untyped-def]
    """htmx: the counted total and the difference, re-rendered as the clerk types counts."""
    branch, counter, day = _closing_params()
    counts, errors = day_closing.parse_denominations(request.form)
    figures = day_closing.expected(branch.id, counter, day)
    counted = day_closing.counted_paise(counts)
    return render_template("billing/closing/_count_total.html", counted=counted, figures=figures, errors=errors,
                           denominations=day_closing.DENOMINATIONS, counts=counts)


def _paise_field(name: str) -> int | None:
    raw = request.form.get(name, "")[:20]
    if not raw.strip():
        return None
    try:
        return parse_rupees(raw)
    except ValueError as err:
        raise ServiceError(str(err), field=name) from None


@bp.post("/closing", endpoint="day_closing_sign")
def closing_sign():  # type: ignore[no-untyped-def]
    branch, counter, day = _closing_params()
    counts, errors = day_closing.parse_denominations(request.form)
    values = {k: request.form.get(k, "")[:2000] for k in ("settled_upi", "settled_card", "note")}
    try:
        if errors:
            raise ServiceError("Check the counts marked below.", field="counts")
        if request.form.get("confirm") != "yes":
            raise ServiceError("Tick the box to sign off: a closing cannot be changed afterwards.", field="confirm")
        closing = day_closing.sign_off(branch, counter, day, denominations=counts,
                                       settled_upi_paise=_paise_field("settled_upi"),
                                       settled_card_paise=_paise_field("settled_card"), note=values["note"],
                                       actor_id=current_user.id)
        closing_id = closing.id
        db.session.commit()
    except ServiceError as err:
        db.session.rollback()
        errors = {**errors, (err.field or "form"): [err.message]}
        return render_template("billing/closing/page.html", **_closing_context(
            branch, counter, day, counts=counts, counted=day_closing.counted_paise(counts), errors=errors,
            values=values)), 422
    flash(f"{branch.code} counter {counter} closed for {day:%d %b %Y}.", "success")
    return see_other(url_for(".day_closing_summary", closing_id=closing_id))


def _summary_context(closing: DayClosing) -> dict[str, Any]:
    return dict(closing=closing, branch=db.session.get(Branch, closing.branch_id),
                closed_by=db.session.get(User, closing.closed_by_id),
                figures=day_closing.Expected.from_dict(closing.expected), delta=day_closing.delta_since(closing),
                denominations=day_closing.DENOMINATIONS, org=_org())


@bp.get("/closing/<int:closing_id>", endpoint="day_closing_summary")
def closing_summary(closing_id: int):  # type: ignore[no-untyped-def]
    closing = get_or_404(DayClosing, id=closing_id)
    return render_template("billing/closing/summary.html", **_summary_context(closing))


@bp.get("/closing/<int:closing_id>.pdf", endpoint="day_closing_pdf")
def closing_pdf(closing_id: int):  # type: ignore[no-untyped-def]
    closing = get_or_404(DayClosing, id=closing_id)
    pdf = day_closing.summary_pdf(_summary_context(closing))
    return _pdf_response(pdf, f"closing-{closing.business_date}-{closing.counter}.pdf")


# --- collections report and exports ----------------------------------------------------------

def _payment_filter() -> accounting_exports.PaymentFilter:
    today = billing.today_in_india()
    date_from = _parse_date(request.args.get("from"), "date_from", today)
    date_to = _parse_date(request.args.get("to"), "date_to", date_from)
    mode = request.args.get("mode", "")
    return accounting_exports.PaymentFilter(
        date_from=date_from, date_to=date_to, branch_id=request.args.get("branch_id", type=int),  # type: ignore[arg-type]
        user_id=request.args.get("user_id", type=int), mode=mode if mode in billing_modes() else "")


def billing_modes() -> tuple[str, ...]:
    from app.models.billing import PAYMENT_MODES

    return PAYMENT_MODES


@bp.get("/collections", endpoint="collections_report")
def collections_report():  # type: ignore[no-untyped-def]
    context: dict[str, Any] = dict(branches=accounting_exports.branch_choices(),
                                   users=accounting_exports.staff_choices(), modes=billing_modes(), error=None,
                                   report=None)
    try:
        f = _payment_filter()
        if request.args.get("format") == "csv":
            return _csv_response(accounting_exports.collections_csv(f))
        context.update(f=f, report=accounting_exports.collections(f))
    except ServiceError as err:
        today = billing.today_in_india()
        context.update(f=accounting_exports.PaymentFilter(today, today), error=err.message)
        return render_template("billing/accounts/collections.html", **context), 422
    return render_template("billing/accounts/collections.html", **context)


def _exports_page(error: str | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    today = billing.today_in_india()
    first = today.replace(day=1)
    last_month_end = first - timedelta(days=1)
    return render_template("billing/accounts/exports.html", registers=accounting_exports.REGISTERS,
                           branches=accounting_exports.branch_choices(), today=today, first=first,
                           last_from=last_month_end.replace(day=1), last_to=last_month_end, error=error), status


@bp.get("/exports", endpoint="exports")
def exports():  # type: ignore[no-untyped-def]
    return _exports_page()


@bp.get("/exports/<name>.csv", endpoint="export_csv")
def export_csv(name: str):  # type: ignore[no-untyped-def]
    if name not in accounting_exports.REGISTERS:
        abort(404)
    try:
        today = billing.today_in_india()
        date_from = _parse_date(request.args.get("from"), "date_from", today.replace(day=1))
        date_to = _parse_date(request.args.get("to"), "date_to", today)
        branch_id = request.args.get("branch_id", type=int)
        if branch_id:
            get_or_404(Branch, id=branch_id)
        register = accounting_exports.register(name, date_from, date_to, branch_id=branch_id)  # type: ignore[arg-type]
    except ServiceError as err:
        return _exports_page(err.message, 422)
    return _csv_response(register)

