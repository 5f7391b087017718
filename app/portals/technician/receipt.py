"""Sample receipt: scan tubes in (receive, or collect), look a tube up, reject it with a reason."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.extensions import db
from app.models import Sample
from app.portals import page_or_fragment, see_other, wants_fragment
from app.portals.technician import bp
from app.security import get_or_404
from app.services import ServiceError, samples

ACTIONS = ("receive", "collect")
REJECTABLE = {state for state, action in samples.TRANSITIONS if action == "reject"}


def _words():  # type: ignore[no-untyped-def]
    return {"reasons": samples.REJECTION_REASONS, "rejectable": REJECTABLE}


@bp.get("/receipt", endpoint="receipt")
def receipt():  # type: ignore[no-untyped-def]
    return render_template("technician/receipt.html", batch=[], action="receive", **_words())


@bp.post("/receipt/scan", endpoint="scan")
def scan():  # type: ignore[no-untyped-def]
    """One scan: answers the batch line (an <li>) for htmx, the page with that line otherwise.
    A refused scan (unknown, wrong check digit, already received) is 422 and changes nothing."""
    action = request.form.get("action", "receive")
    action = action if action in ACTIONS else "receive"
    outcome = samples.scan(request.form.get("barcode", "")[:32], action, user_id=current_user.id)
    if outcome.ok:
        db.session.commit()
    else:
        db.session.rollback()
    status = 200 if outcome.ok else 422
    if wants_fragment():
        return render_template("technician/_scan_line.html", line=outcome, **_words()), status
    return render_template("technician/receipt.html", batch=[outcome], action=action, **_words()), status


@bp.get("/samples", endpoint="sample_lookup")
def sample_lookup():  # type: ignore[no-untyped-def]
    barcode = request.args.get("barcode", "").strip()[:32]
    if barcode and samples.by_barcode(barcode) is not None:
        return redirect(url_for(".sample", barcode=barcode))
    flash(f"No tube with barcode {barcode}." if barcode else "Scan or type a barcode to look a tube up.", "error")
    return redirect(url_for(".receipt"))


@bp.get("/samples/<barcode>", endpoint="sample")
def sample_view(barcode: str):  # type: ignore[no-untyped-def]
    sample = get_or_404(Sample, barcode=barcode)
    return render_template("technician/sample.html", sample=sample, errors={}, values={}, **_words())


@bp.post("/samples/<barcode>/reject", endpoint="sample_reject")
def sample_reject(barcode: str):  # type: ignore[no-untyped-def]
    """Reject from a batch line (`as=line`: answers the line) or from the tube page."""
    sample = samples.by_barcode(barcode, lock=True) or abort(404)
    values = {"reason": request.form.get("reason", "")[:40], "note": request.form.get("note", "")[:1000]}
    as_line = request.form.get("as") == "line"
    try:
        samples.reject(sample, values["reason"], values["note"], user_id=current_user.id)
        db.session.commit()
    except ServiceError as err:
        db.session.rollback()
        errors = {err.field or "reason": [err.message]}
        if as_line and wants_fragment():
            line = samples.ScanOutcome(sample.barcode, False, "Not rejected: " + err.message, sample)
            return render_template("technician/_scan_line.html", line=line, errors=errors, values=values,
                                   open_reject=True, **_words()), 422
        template = page_or_fragment("technician/sample.html", "technician/_tube.html")
        return render_template(template, sample=sample, errors=errors, values=values, **_words()), 422
    message = f"Rejected: {samples.REJECTION_REASONS[sample.rejection_reason]}."
    if as_line and wants_fragment():
        line = samples.ScanOutcome(sample.barcode, False, message, sample)
        return render_template("technician/_scan_line.html", line=line, **_words())
    if wants_fragment():
        return render_template("technician/_tube.html", sample=sample, errors={}, values={}, message=message,
                               **_words())
    flash(f"Tube {sample.barcode} — {message}", "success")
    return see_other(url_for(".sample", barcode=sample.barcode))


@bp.post("/samples/<barcode>/remark", endpoint="sample_remark")
def sample_remark(barcode: str):  # type: ignore[no-untyped-def]
    """A quality remark on the tube ("mildly lipaemic"); empty clears it. Answers the tube section."""
    sample = samples.by_barcode(barcode, lock=True) or abort(404)
    remark = request.form.get("remark", "")[:1000]
    try:
        samples.set_remark(sample, remark, user_id=current_user.id)
        db.session.commit()
    except ServiceError as err:
        db.session.rollback()
        template = page_or_fragment("technician/sample.html", "technician/_tube.html")
        return render_template(template, sample=sample, errors={"remark": [err.message]}, values={"remark": remark},
                               **_words()), 422
    message = f"Remark saved: {sample.remark}" if sample.remark else "Remark cleared."
    if wants_fragment():
        return render_template("technician/_tube.html", sample=sample, errors={}, values={}, message=message,
                               **_words())
    flash(f"Tube {sample.barcode} — {message}", "success")
    return see_other(url_for(".sample", barcode=sample.barcode))
