"""The unmatched queue: analyzer results nobody could put on a received tube's ordered test.
A technician assigns each to a tube (and a test, when the code is not mapped) or discards it
with a reason; the service audits both."""
from __future__ import annotations

from flask import flash, render_template, request, url_for
from flask_login import current_user

from app.extensions import db
from app.models import UnmatchedResult
from app.portals import see_other, wants_fragment
from app.portals.technician import bp
from app.security import get_or_404
from app.services import ServiceError, catalogue, ingestion


def _context(**extra):  # type: ignore[no-untyped-def]
    return {"reasons": ingestion.UNMATCHED_REASONS, "tests": catalogue.list_tests(active_only=True), **extra}


@bp.get("/unmatched", endpoint="unmatched")
def unmatched_list():  # type: ignore[no-untyped-def]
    return render_template("technician/unmatched.html", items=ingestion.open_unmatched(), **_context())


def _answer(item: UnmatchedResult, status: int, **row):  # type: ignore[no-untyped-def]
    """The row (htmx) or the queue page (a plain post)."""
    if wants_fragment():
        return render_template("technician/_unmatched_row.html", u=item, **_context(**row)), status
    if status >= 400:
        return render_template("technician/unmatched.html", items=ingestion.open_unmatched(),
                               **_context(failed={item.id: row})), status
    flash(row["done"], "success")
    return see_other(url_for(".unmatched"))


def _test_id(raw: str | None) -> int | None:
    text = (raw or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


@bp.post("/unmatched/<int:unmatched_id>/assign", endpoint="unmatched_assign")
def unmatched_assign(unmatched_id: int):  # type: ignore[no-untyped-def]
    item = get_or_404(UnmatchedResult, id=unmatched_id)
    barcode = request.form.get("barcode", "").strip()[:32]
    test_id = _test_id(request.form.get("test_id"))
    try:
        ingestion.assign(item, barcode, test_id=test_id, user_id=current_user.id)
        db.session.commit()
    except ServiceError as err:
        db.session.rollback()
        return _answer(item, 422, errors={err.field or "barcode": [err.message]}, values={"barcode": barcode,
                                                                                             "test_id": test_id})
    return _answer(item, 200, done=f"Result {item.code} = {item.value} put on tube {barcode}.")


@bp.post("/unmatched/<int:unmatched_id>/discard", endpoint="unmatched_discard")
def unmatched_discard(unmatched_id: int):  # type: ignore[no-untyped-def]
    item = get_or_404(UnmatchedResult, id=unmatched_id)
    why = request.form.get("why", "")[:400]
    try:
        ingestion.discard(item, why, user_id=current_user.id)
        db.session.commit()
    except ServiceError as err:
        db.session.rollback()
        return _answer(item, 422, errors={err.field or "why": [err.message]}, values={"why": why})
    return _answer(item, 200, done=f"Result {item.code} = {item.value} discarded.")
