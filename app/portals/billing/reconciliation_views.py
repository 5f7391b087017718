"""Billing portal: reconciliation — statement uploads and their progress, a statement's lines,
bank column mappings, and the exceptions queue with inline (htmx) resolution.

Views parse and authorize, call app.services.reconciliation, and render; every page works
as plain forms and links, htmx only makes it lighter on a slow line."""
from __future__ import annotations

from datetime import date
from typing import Any

from flask import Response, flash, render_template, request, url_for
from flask_login import current_user

from app.extensions import db
from app.models import BankMapping, BillingException, StatementImport
from app.portals import page_or_fragment, see_other, wants_fragment
from app.portals.billing import bp
from app.security import get_or_404
from app.services import ServiceError, billing_exceptions, reconciliation, statements


def _errors(err: ServiceError) -> dict[str, list[str]]:
    return {err.field or "form": [err.message]}


# ---------------------------------------------------------------- statements

def _upload_context(**extra: Any) -> dict[str, Any]:
    imports = reconciliation.list_imports()
    return dict(imports=imports, polling=reconciliation.any_in_progress(imports), mappings=reconciliation.list_mappings(),
                kinds=reconciliation.KINDS, window_default=reconciliation.window_days(),
                max_window=reconciliation.MAX_WINDOW_DAYS, errors={}, chosen="", **extra)


@bp.get("/reconciliation", endpoint="reconciliation")
def reconciliation_page():  # type: ignore[no-untyped-def]
    """The upload form and the imports list; htmx polls the list while one is processing."""
    if wants_fragment() and request.args.get("part") == "imports":
        return _vary(render_template("billing/recon/_imports.html", **_upload_context()))
    return _vary(render_template("billing/recon/index.html", **_upload_context()))


def _vary(body: str) -> Response:
    response = Response(body)
    response.headers["Vary"] = "HX-Request"
    return response


@bp.post("/reconciliation/imports", endpoint="recon_upload")
def recon_upload():  # type: ignore[no-untyped-def]
    source = request.form.get("source", "")
    kind, mapping_id = ("bank_csv", int(source[5:])) if source.startswith("bank:") and source[5:].isdigit() else (source, None)
    upload = request.files.get("file")
    window_text = (request.form.get("window") or "").strip()
    try:
        if upload is None or not upload.filename:
            raise ServiceError("Choose the statement file.", field="file")
        if window_text and not window_text.isdigit():
            raise ServiceError(f"A whole number of days, 0 to {reconciliation.MAX_WINDOW_DAYS}.", field="window")
        imp = reconciliation.import_statement(
            kind=kind, filename=upload.filename, content=upload.read(statements.MAX_BYTES + 1),
            bank_mapping_id=mapping_id, actor_id=current_user.id, window=int(window_text) if window_text else None)
        db.session.commit()
    except ServiceError as err:
        db.session.rollback()
        template = page_or_fragment("billing/recon/index.html", "billing/recon/_upload_form.html")
        return render_template(template, **{**_upload_context(), "errors": _errors(err), "chosen": source}), 422
    flash(f"{imp.filename} is queued (import #{imp.id}); its lines are matched in a moment.", "success")
    return see_other(url_for(".reconciliation"))


@bp.get("/reconciliation/imports/<int:import_id>", endpoint="recon_import")
def recon_import(import_id: int):  # type: ignore[no-untyped-def]
    imp = get_or_404(StatementImport, id=import_id)
    status = request.args.get("status", "")
    query = request.args.get("q", "")
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    rows, total = reconciliation.import_lines(imp, status=status, query=query, page=page)
    context = dict(imp=imp, rows=rows, total=total, status=status, query=query, page=page,
                   pages=max((total + reconciliation.PAGE_SIZE - 1) // reconciliation.PAGE_SIZE, 1),
                   states=reconciliation.LINE_STATES, kinds=reconciliation.KINDS,
                   mapping=db.session.get(BankMapping, imp.bank_mapping_id) if imp.bank_mapping_id else None)
    part = request.args.get("part")
    if wants_fragment() and part in ("lines", "summary"):
        return _vary(render_template(f"billing/recon/_{part}.html", **context))
    return _vary(render_template("billing/recon/import.html", **context))


@bp.post("/reconciliation/imports/<int:import_id>/retry", endpoint="recon_retry")
def recon_retry(import_id: int):  # type: ignore[no-untyped-def]
    imp = get_or_404(StatementImport, id=import_id)
    try:
        reconciliation.retry_import(imp)
        db.session.commit()
        flash(f"Import #{imp.id} is queued again.", "success")
    except ServiceError as err:
        db.session.rollback()
        flash(err.message, "error")
    return see_other(url_for(".recon_import", import_id=import_id))


# ---------------------------------------------------------------- bank mappings

@bp.get("/bank-mappings", endpoint="bank_mappings")
def bank_mappings():  # type: ignore[no-untyped-def]
    return render_template("billing/recon/mappings.html", mappings=reconciliation.list_mappings())


def _mapping_page(mapping: BankMapping | None, draft: Any, errors: dict[str, list[str]], status: int = 200):  # type: ignore[no-untyped-def]
    template = page_or_fragment("billing/recon/mapping_form.html", "billing/recon/_mapping_form.html")
    return render_template(template, mapping=mapping, draft=draft, errors=errors), status


@bp.route("/bank-mappings/new", methods=["GET", "POST"], endpoint="bank_mapping_new")
def bank_mapping_new():  # type: ignore[no-untyped-def]
    return _save_mapping(None)


@bp.route("/bank-mappings/<int:mapping_id>", methods=["GET", "POST"], endpoint="bank_mapping_edit")
def bank_mapping_edit(mapping_id: int):  # type: ignore[no-untyped-def]
    return _save_mapping(get_or_404(BankMapping, id=mapping_id))


def _save_mapping(mapping: BankMapping | None):  # type: ignore[no-untyped-def]
    if request.method == "GET":
        return _mapping_page(mapping, mapping or reconciliation.MappingDraft(), {})
    draft, errors = reconciliation.MappingDraft.from_form(request.form)
    if errors:
        return _mapping_page(mapping, draft, errors, 422)
    sample = request.files.get("sample")
    try:
        saved = reconciliation.save_mapping(mapping, draft, sample=sample.read(statements.MAX_BYTES + 1)
                                            if sample and sample.filename else None)
        db.session.commit()
    except ServiceError as err:
        db.session.rollback()
        return _mapping_page(mapping, draft, {("sample" if isinstance(err, statements.StatementInvalid) else
                                               err.field or "form"): [err.message]}, 422)
    flash(f"Saved the mapping {saved.name}.", "success")
    return see_other(url_for(".bank_mappings"))


# ---------------------------------------------------------------- exceptions queue

def _gateway_actions() -> dict[str, Any]:
    """services/gateway.py's apply/refund for webhook exceptions, when that module has them
    (it is built alongside this one): hidden rather than broken when absent."""
    try:
        from app.services import gateway
    except ImportError:
        return {}
    return {name: getattr(gateway, name) for name in ("apply_exception", "refund_exception") if hasattr(gateway, name)}


def _filters() -> reconciliation.ExceptionFilters:
    def day(name: str) -> date | None:
        try:
            return date.fromisoformat(request.args.get(name, "").strip())
        except ValueError:
            return None

    return reconciliation.ExceptionFilters(
        kind=request.args.get("kind", ""), source=request.args.get("source", ""),
        status=request.args.get("status", "open"), date_from=day("from"), date_to=day("to"),
        query=request.args.get("q", "")[:64])


def _row_context(exceptions: list[BillingException]) -> dict[str, Any]:
    return dict(labels=billing_exceptions.KIND_LABELS, gateway=_gateway_actions(),
                bills=reconciliation.bill_numbers({e.bill_id for e in exceptions if e.bill_id}))


@bp.get("/exceptions", endpoint="exceptions")
def exceptions_page():  # type: ignore[no-untyped-def]
    filters = _filters()
    rows = reconciliation.list_exceptions(filters)
    context = dict(exceptions=rows, filters=filters, sources=("statement", "webhook", "refund"),
                   open_count=billing_exceptions.open_count(), **_row_context(rows))
    template = "billing/recon/_exception_rows.html" if wants_fragment() else "billing/recon/exceptions.html"
    return _vary(render_template(template, **context))


def _exception(exception_id: int) -> BillingException:
    return get_or_404(BillingException, id=exception_id)


@bp.get("/exceptions/<int:exception_id>", endpoint="exception_row")
def exception_row(exception_id: int):  # type: ignore[no-untyped-def]
    """One row: with its resolution form (?resolve=1) or without (after Cancel)."""
    exc = _exception(exception_id)
    template = "billing/recon/_exception_row.html" if wants_fragment() else "billing/recon/exception.html"
    return render_template(template, e=exc, open_form=bool(request.args.get("resolve")) or not wants_fragment(),
                           errors={}, form={}, **_row_context([exc]))


@bp.post("/exceptions/<int:exception_id>/resolve", endpoint="exception_resolve")
def exception_resolve(exception_id: int):  # type: ignore[no-untyped-def]
    exc = _exception(exception_id)
    action = request.form.get("action", "")
    note = request.form.get("note", "")[:2000]
    gateway = _gateway_actions()
    try:
        if action == "apply" and "apply_exception" in gateway and exc.kind in ("unknown_bill", "already_paid"):
            gateway["apply_exception"](exc, request.form.get("bill_number", ""), current_user.id, note)
        elif action == "refund" and "refund_exception" in gateway and exc.kind in ("unknown_bill", "already_paid"):
            gateway["refund_exception"](exc, current_user.id, note)
        else:
            reconciliation.resolve_exception(exc, action=action, note=note, actor_id=current_user.id,
                                             reference=request.form.get("reference", ""))
        db.session.commit()
    except ServiceError as err:
        db.session.rollback()
        exc = _exception(exception_id)
        template = "billing/recon/_exception_row.html" if wants_fragment() else "billing/recon/exception.html"
        return render_template(template, e=exc, open_form=True, errors=_errors(err), form=request.form,
                               **_row_context([exc])), 422
    if not wants_fragment():
        flash("Resolved.", "success")
        return see_other(url_for(".exceptions"))
    exc = _exception(exception_id)
    return render_template("billing/recon/_exception_row.html", e=exc, open_form=False, errors={}, form={},
                           just_resolved=True, **_row_context([exc]))
