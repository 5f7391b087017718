"""One order under review: the patient, the tubes, every result with its flag, interval,
previous value and delta, and the pathologist's actions. "Verify selected" posts the version
of each result the page showed, so a result changed since is refused, not verified blind.

htmx swaps only what an action changed: a result's rows (send back, comment, call) or the
results section (verify, release). A refusal answers 422 (409 when someone else changed the
results meanwhile) with the message in place; without JavaScript every form still posts."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.orm.exc import StaleDataError

from app.extensions import db
from app.models import Order, Result, User
from app.portals import page_or_fragment, see_other, wants_fragment
from app.portals.pathologist import bp
from app.portals.pathologist.criticals import user_names
from app.portals.technician.entry import interval_text
from app.security import get_or_404
from app.services import ServiceError, orders, reports, samples, verification
from app.services.verification import ReviewRow

STALE = "Someone changed these results at the same moment. Nothing was saved; review them again."
READ_BACK_VALUES = ("y", "on", "1", "true", "yes")


def _user() -> User:
    return current_user.record()  # type: ignore[no-any-return]


def _order_or_404(accession: str) -> Order:
    return orders.by_accession(accession[:16]) or abort(404)


def _result_or_404(order: Order, result_id: int) -> Result:
    """A result of this order (and so of this organization), or 404."""
    if result_id >= 2**63:
        abort(404)
    result = get_or_404(Result, id=result_id)
    if result.order_test.order_id != order.id:
        abort(404)
    return result


def _as_id(raw: Any) -> int | None:
    text = str(raw or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def _seen(form: Any) -> dict[int, int]:
    """{result id: version shown} from the checked boxes and their hidden versions."""
    seen: dict[int, int] = {}
    for raw in form.getlist("result")[:500]:
        result_id = _as_id(raw)
        if result_id is not None:
            version = _as_id(form.get(f"version-{result_id}"))
            seen[result_id] = version if version is not None and version < 2**31 else -1
    return seen


def plain(value: Any) -> str:
    """"2.0000" → "2" (limits are stored as Numeric and snapshotted as strings)."""
    try:
        return format(Decimal(str(value)).normalize(), "f")
    except (InvalidOperation, ValueError):
        return str(value)


def _by_department(rows: list[ReviewRow]) -> list[tuple[Any, list[ReviewRow]]]:
    groups: dict[int, tuple[Any, list[ReviewRow]]] = {}
    for row in rows:
        department = row.order_test.test.department
        groups.setdefault(department.id, (department, []))[1].append(row)
    return sorted(groups.values(), key=lambda g: (g[0].sort_order, g[0].name))


def _context(order: Order, **extra: Any) -> dict[str, Any]:
    rows = verification.review(order)
    current = [r.result for r in rows if r.result is not None]
    return {
        "order": order, "patient": order.patient, "rows": rows, "groups": _by_department(rows),
        "canned": verification.canned_comments(), "names": user_names(), "interval_text": interval_text,
        "plain": plain, "reasons": samples.REJECTION_REASONS,
        "waiting": sum(1 for r in current if r.status == "entered"),
        "releasable": sum(1 for r in current if r.status == "verified"),
        "released": sum(1 for r in current if r.status == "released"),
        "uncalled": [r.order_test.test.name for r in rows
                     if r.result is not None and r.result.critical and r.result.status != "released" and not r.calls],
        "row_states": {}, **extra,
    }


def _section(order: Order, status: int = 200, **extra: Any):  # type: ignore[no-untyped-def]
    """The results section for htmx, the whole page otherwise."""
    template = page_or_fragment("pathologist/review.html", "pathologist/_review.html")
    return render_template(template, **_context(order, **extra)), status


def _section_done(order: Order, message: str):  # type: ignore[no-untyped-def]
    if wants_fragment():
        return _section(order, message=message)
    flash(message, "success")
    return see_other(url_for(".review", accession=order.accession))


def _row(order: Order, order_test_id: int, status: int = 200, **state: Any):  # type: ignore[no-untyped-def]
    """One result's rows for htmx (with its form errors or message), the whole page otherwise."""
    context = _context(order, row_states={order_test_id: state})
    if not wants_fragment():
        return render_template("pathologist/review.html", **context), status
    row = next(r for r in context["rows"] if r.order_test.id == order_test_id)
    return render_template("pathologist/_review_row.html", row=row, state=state, **context), status


def _row_done(order: Order, order_test_id: int, message: str):  # type: ignore[no-untyped-def]
    if wants_fragment():
        return _row(order, order_test_id, message=message)
    flash(message, "success")
    return see_other(url_for(".review", accession=order.accession) + f"#r-{order_test_id}")


def _with_canned(text: str, canned_id: Any, test_id: int) -> str:
    """The comment box after picking a canned comment: filled with it when empty or holding
    another canned text (so moving through the list shows each), added below typed text."""
    chosen_id = _as_id(canned_id)
    options = verification.canned_comments(test_id) if chosen_id is not None else []
    chosen = next((c for c in options if c.id == chosen_id), None)
    if chosen is None or chosen.text in text:
        return text
    if not text.strip() or text.strip() in {c.text for c in options}:
        return chosen.text
    return f"{text.rstrip()}\n{chosen.text}"


@bp.get("/orders/<accession>", endpoint="review")
def review(accession: str):  # type: ignore[no-untyped-def]
    order = _order_or_404(accession)
    return render_template("pathologist/review.html", **_context(order))


@bp.post("/orders/<accession>/verify", endpoint="verify")
def verify(accession: str):  # type: ignore[no-untyped-def]
    order = _order_or_404(accession)
    try:
        done = verification.verify(order, _seen(request.form), user=_user())
        db.session.commit()
    except verification.ChangedMeanwhile as err:
        db.session.rollback()
        return _section(order, 409, error=f"{err.message} Nothing was verified; the results below are current.")
    except StaleDataError:
        db.session.rollback()
        return _section(order, 409, error=STALE)
    except ServiceError as err:
        db.session.rollback()
        return _section(order, 422, error=err.message)
    return _section_done(order, f"Verified {len(done)} result{'' if len(done) == 1 else 's'}.")


@bp.post("/orders/<accession>/release", endpoint="release")
def release(accession: str):  # type: ignore[no-untyped-def]
    order = _order_or_404(accession)
    try:
        done = verification.release(order, user=_user())
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        return _section(order, 409, error=STALE)
    except ServiceError as err:
        db.session.rollback()
        return _section(order, 422, error=f"Not released. {err.message}")
    return _report_requested(_section_done(order, f"Released {len(done)} result{'' if len(done) == 1 else 's'}."))


def _report_requested(response):  # type: ignore[no-untyped-def]
    """A new report version was asked for: the versions panel on the page reloads on this event."""
    if not wants_fragment():
        return response
    body, status = response
    return body, status, {"HX-Trigger": "report-requested"}


def _row_action(order: Order, order_test_id: int, act: Any, *, values: dict[str, Any], open_: str,
                default_field: str = "form"):  # type: ignore[no-untyped-def]
    """Run one result's action and commit; on refusal, that result's rows again with the
    message on its field and what was typed kept (422), or 409 when someone changed it meanwhile.
    Returns None when it succeeded."""
    try:
        act()
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        return _row(order, order_test_id, 409, errors={"form": [STALE]})
    except ServiceError as err:
        db.session.rollback()
        field = err.field if err.field in values else default_field
        return _row(order, order_test_id, 422, errors={field: [err.message]}, values=values, open=open_)
    return None


@bp.post("/orders/<accession>/results/<int:result_id>/amend", endpoint="amend")
def amend(accession: str, result_id: int):  # type: ignore[no-untyped-def]
    """Change a released result: a new version of the result and of the report (the service
    keeps the released ones and says why)."""
    order = _order_or_404(accession)
    result = _result_or_404(order, result_id)
    order_test_id = result.order_test_id
    values = {"value": request.form.get("value", "")[:400], "reason": request.form.get("reason", "")[:400],
              **{f"call_{k}": request.form.get(f"call_{k}", "")[:200]
                 for k in ("recipient_kind", "recipient_name", "phone", "note", "read_back")}}
    call = {k: values[f"call_{k}"] for k in ("recipient_kind", "recipient_name", "phone", "note", "read_back")}
    refused = _row_action(order, order_test_id, lambda: reports.amend(result, values["value"], values["reason"],
                                                                      user=_user(), call=call),
                          values=values, open_="amend")
    return refused or _report_requested(_row_done(order, order_test_id,
                                                  "Amended: a new version of the report is being made."))


@bp.post("/orders/<accession>/results/<int:result_id>/send-back", endpoint="send_back")
def send_back(accession: str, result_id: int):  # type: ignore[no-untyped-def]
    order = _order_or_404(accession)
    result = _result_or_404(order, result_id)
    order_test_id, name = result.order_test_id, result.order_test.test.name
    values = {"reason": request.form.get("reason", "")[:400]}
    refused = _row_action(order, order_test_id,
                          lambda: verification.send_back(order, result.id, values["reason"], user=_user()),
                          values=values, open_="send_back")
    return refused or _row_done(order, order_test_id, f"{name} sent back for a rerun.")


@bp.post("/orders/<accession>/results/<int:result_id>/calls", endpoint="record_call")
def record_call(accession: str, result_id: int):  # type: ignore[no-untyped-def]
    order = _order_or_404(accession)
    result = _result_or_404(order, result_id)
    order_test_id = result.order_test_id
    values: dict[str, Any] = {name: request.form.get(name, "")[:400]
                              for name in ("recipient_kind", "recipient_name", "phone", "note")}
    values["read_back"] = request.form.get("read_back", "").lower() in READ_BACK_VALUES
    refused = _row_action(order, order_test_id, lambda: verification.record_call(
        result, recipient_kind=values["recipient_kind"], recipient_name=values["recipient_name"],
        phone=values["phone"][:32], read_back=values["read_back"], note=values["note"], user=_user()),
        values=values, open_="call")
    return refused or _row_done(order, order_test_id, "Call recorded.")


@bp.post("/orders/<accession>/results/<int:result_id>/interpretation", endpoint="interpretation")
def interpretation(accession: str, result_id: int):  # type: ignore[no-untyped-def]
    order = _order_or_404(accession)
    result = _result_or_404(order, result_id)
    order_test_id = result.order_test_id
    text = _with_canned(request.form.get("interpretation", "")[:4000], request.form.get("canned"), result.test_id)
    refused = _row_action(order, order_test_id, lambda: verification.set_interpretation(result, text, user=_user()),
                          values={"interpretation": text}, open_="interpretation", default_field="interpretation")
    return refused or _row_done(order, order_test_id, "Comment saved." if text.strip() else "Comment removed.")


@bp.get("/orders/<accession>/results/<int:result_id>/interpretation", endpoint="canned_fill")
def canned_fill(accession: str, result_id: int):  # type: ignore[no-untyped-def]
    """The comment box with a canned comment put in (htmx, when one is picked from the list)."""
    order = _order_or_404(accession)
    result = _result_or_404(order, result_id)
    if not wants_fragment():
        return redirect(url_for(".review", accession=order.accession) + f"#r-{result.order_test_id}")
    text = _with_canned(request.args.get("interpretation", "")[:4000], request.args.get("canned"), result.test_id)
    return render_template("pathologist/_interpretation_field.html", r=result, text=text, errors={})
