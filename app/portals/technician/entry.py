"""Result entry for one order: a grid with one small form per ordered test. A row saves on its
own through htmx and answers itself re-rendered (422 with the message when the value is
refused), plus the order's calculated rows out of band, since a saved input may change them."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import abort, flash, render_template, request, url_for
from flask_login import current_user
from app.extensions import db
from app.models import Order, OrderTest, Result
from app.models.base import utcnow
from app.portals import see_other, wants_fragment
from app.portals.technician import bp
from app.services import ServiceError, calculations, orders, results, samples, verification


@dataclass
class Row:
    """What one grid row shows: the ordered test, its current result, and what was typed
    when it was refused."""

    ot: OrderTest
    result: Result | None
    interval: dict[str, Any] | None
    error: str = ""
    raw: str | None = None
    comment: str | None = None
    rerun_reason: str = ""  # why the pathologist sent it back, while it waits for a new value

    @property
    def calculated(self) -> bool:
        return self.ot.test.code in calculations.FORMULAS

    @property
    def tube_ready(self) -> bool:
        return self.ot.sample is not None and self.ot.sample.status in results.ENTERABLE_SAMPLE_STATES

    @property
    def locked(self) -> bool:
        """Verified (or further): only the pathologist can send it back."""
        return self.result is not None and self.result.status != "entered"

    @property
    def enterable(self) -> bool:
        return self.tube_ready and not self.calculated and not self.locked

    @property
    def value(self) -> str:
        if self.raw is not None:
            return self.raw
        return self.result.value_text if self.result else ""

    @property
    def comment_value(self) -> str:
        if self.comment is not None:
            return self.comment
        return self.result.comment if self.result else ""

    @property
    def choices(self) -> list[str]:
        return [c for c in (self.ot.test.choices or "").split("|") if c]


def _plain(value: Any) -> str:
    """"13.5000" → "13.5" (limits are stored as Numeric and snapshotted as strings)."""
    try:
        return format(Decimal(str(value)).normalize(), "f")
    except (InvalidOperation, ValueError):
        return str(value)


def interval_text(iv: dict[str, Any] | None) -> str:
    if not iv:
        return ""
    low, high = iv.get("low"), iv.get("high")
    if low is not None and high is not None:
        return f"{_plain(low)} – {_plain(high)}"
    if high is not None:
        return f"≤ {_plain(high)}"
    if low is not None:
        return f"≥ {_plain(low)}"
    return iv.get("text") or ""


def _interval_for(ot: OrderTest, result: Result | None) -> dict[str, Any] | None:
    """The interval the result was flagged against (its snapshot), or the one that would apply."""
    if result is not None:
        return result.interval
    patient, sample = ot.order.patient, ot.sample
    at = (sample.collected_at or sample.received_at) if sample is not None else None
    iv = results.choose_interval(results.intervals_of(ot.test), patient.sex,
                                 results.age_in_days(patient.date_of_birth, at or utcnow()))
    return results.interval_snapshot(iv)


def _with_rerun_reasons(rows: list[Row]) -> list[Row]:
    """Rows sent back by the pathologist say why (no query when every row has a result)."""
    reasons = verification.rerun_reasons([r.ot.id for r in rows if r.result is None])
    for row in rows:
        row.rerun_reason = reasons.get(row.ot.id, "")
    return rows


def _rows(order: Order) -> list[Row]:
    tests = results.order_tests_for_entry(order.id)
    results.load_intervals(ot.test for ot in tests)  # one query for a cold process, none after
    currents = results.currents_for([ot.id for ot in tests])
    return _with_rerun_reasons([Row(ot, currents.get(ot.id), _interval_for(ot, currents.get(ot.id))) for ot in tests])


def _rows_for(order_id: int, ids: list[int]) -> list[Row]:
    """Only these rows: the answer to one save re-renders the saved row and the calculated
    rows it feeds, not the whole grid (a 60-test package would cost ~40 ms and ~11 KB)."""
    tests = results.order_tests_for_entry(order_id, ids)
    currents = results.currents_for([ot.id for ot in tests])
    return _with_rerun_reasons([Row(ot, currents.get(ot.id), _interval_for(ot, currents.get(ot.id))) for ot in tests])


def _order_or_404(accession: str) -> Order:
    return orders.by_accession(accession) or abort(404)


HELPERS = {"interval_text": interval_text, "reasons": samples.REJECTION_REASONS}


@bp.get("/orders/<accession>/results", endpoint="results")
def results_grid(accession: str):  # type: ignore[no-untyped-def]
    order = _order_or_404(accession)
    return render_template("technician/results.html", order=order, rows=_rows(order), accession=accession,
                           **HELPERS)


@bp.post("/orders/<accession>/results/<int:order_test_id>", endpoint="result_save")
def result_save(accession: str, order_test_id: int):  # type: ignore[no-untyped-def]
    raw, comment = request.form.get("value", "")[:400], request.form.get("comment", "")[:2000]
    try:
        saved = results.save_entry(accession, order_test_id, results.Entry(raw=raw, comment=comment),
                                   user_id=current_user.id) or abort(404)
    except ServiceError as err:
        db.session.rollback()
        ot = results.order_test_of(accession, order_test_id) or abort(404)
        return _refused(accession, ot.order_id, ot.id, err.message, raw, comment)
    if not wants_fragment():
        name = saved.order_test.test.name
        db.session.commit()
        flash(f"Saved {name}.", "success")
        return see_other(url_for(".results", accession=accession) + f"#ot-{order_test_id}")
    # Rendered from what the save returned, before the commit: the objects are fresh and
    # nothing is read again. If the commit fails the exception propagates and this page is
    # never sent.
    rows = _with_rerun_reasons([Row(ot, result, _interval_for(ot, result))
                                for ot, result in [(saved.order_test, saved.result), *saved.dependents]])
    page = render_template("technician/_result_saved.html", row=rows[0], calculated=rows[1:],
                           accession=accession, **HELPERS)
    db.session.commit()
    return page


def _refused(accession: str, order_id: int, ot_id: int, message: str, raw: str, comment: str):  # type: ignore[no-untyped-def]
    """The row again with the message and what was typed, 422; nothing was saved."""
    if not wants_fragment():
        full = _order_or_404(accession)
        rows = _rows(full)
        row = next(r for r in rows if r.ot.id == ot_id)
        row.error, row.raw, row.comment = message, raw, comment
        return render_template("technician/results.html", order=full, rows=rows, accession=accession,
                               **HELPERS), 422
    row = _rows_for(order_id, [ot_id])[0]
    row.error, row.raw, row.comment = message, raw, comment
    return render_template("technician/_result_row.html", row=row, accession=accession, **HELPERS), 422
