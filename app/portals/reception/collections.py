"""Reception: the phlebotomy list (tubes still to draw at this desk's branch, marked collected
one by one) and a new tube for a tube the lab rejected."""
from __future__ import annotations

from flask import abort, flash, render_template, url_for
from flask_login import current_user

from app.extensions import db
from app.portals import page_after_post, see_other, wants_fragment
from app.portals.reception import bp
from app.portals.reception.routes import _order_page_context
from app.services import orders, samples


@bp.context_processor
def _sample_words():  # type: ignore[no-untyped-def]
    """Rejection reasons in words, for the order page's tube table."""
    return {"rejection_reasons": samples.REJECTION_REASONS}


@bp.get("/collections", endpoint="collections")
def collections():  # type: ignore[no-untyped-def]
    return render_template("reception/collections.html", tubes=samples.pending_collection(current_user.branch_id))


@bp.post("/samples/<barcode>/collect", endpoint="sample_collect")
def sample_collect(barcode: str):  # type: ignore[no-untyped-def]
    """Answers the tube's row (htmx), or the list again (a plain post)."""
    sample = samples.by_barcode(barcode, lock=True) or abort(404)
    error = None
    try:
        samples.collect(sample, user_id=current_user.id)
        db.session.commit()
    except samples.TransitionRefused as refused:
        db.session.rollback()
        error = refused.message
    if wants_fragment():
        return render_template("reception/_collection_row.html", s=sample, error=error), 422 if error else 200
    if error:
        flash(f"Tube {sample.barcode}: {error}", "error")
        return render_template("reception/collections.html",
                               tubes=samples.pending_collection(current_user.branch_id)), 422
    flash(f"Tube {sample.barcode} collected.", "success")
    return see_other(url_for(".collections"))


@bp.post("/samples/<barcode>/recollect", endpoint="sample_recollect")
def sample_recollect(barcode: str):  # type: ignore[no-untyped-def]
    """A new tube (new barcode) for the tests of a rejected one; answers the order page, where
    the new tube's label can be printed."""
    sample = samples.by_barcode(barcode, lock=True) or abort(404)
    accession = sample.order.accession
    try:
        new = samples.recollect(sample, user_id=current_user.id)
        db.session.commit()
    except samples.TransitionRefused as refused:
        db.session.rollback()
        order = orders.by_accession(accession)
        return render_template("reception/order.html", **_order_page_context(
            order, sample_error=(sample.barcode, refused.message))), 422
    flash(f"New tube {new.barcode} replaces rejected tube {sample.barcode}: print its label and draw again.", "success")
    order = orders.by_accession(accession)
    return page_after_post(url_for(".order", accession=accession), "reception/order.html",
                           **_order_page_context(order, new_barcode=new.barcode))
