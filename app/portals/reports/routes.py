"""Staff views of report versions. The PDF comes from storage, never from a new render."""
from __future__ import annotations

from flask import Response, abort, render_template, url_for

from app.extensions import db
from app.models import Order, Report, Role
from app.portals import page_or_fragment, see_other, wants_fragment
from app.portals.reports import bp
from app.security import get_or_404, requires_role
from app.services import reports


def download_name(report: Report) -> str:
    return f"{report.number.replace('/', '-')}-v{report.version}.pdf"


def pdf_response(report: Report) -> Response:
    """The stored bytes with their SHA-256 as the ETag (shared with the API)."""
    try:
        data = reports.pdf(report)
    except reports.ReportRefused as err:
        abort(409, err.message)
    response = Response(data, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="{download_name(report)}"'
    response.headers["ETag"] = f'"{report.sha256}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/<int:report_id>.pdf")
def download(report_id: int):  # type: ignore[no-untyped-def]
    report = reports.with_pdf(report_id)  # tenant-scoped: another lab's id finds nothing
    if report is None:
        abort(404)
    return pdf_response(report)


@bp.get("/orders/<accession>")
def versions(accession: str):  # type: ignore[no-untyped-def]
    """The versions of an order's report; the fragment polls itself while one renders (the
    pathologist's review page can include it: hx-get this URL)."""
    order = get_or_404(Order, accession=accession)
    rows = reports.for_order(order)
    return render_template(page_or_fragment("reports/versions.html", "reports/_versions.html"),
                           order=order, reports=rows, rendering=any(r.status == "rendering" for r in rows))


@bp.post("/<int:report_id>/retry")
@requires_role(Role.ADMIN, Role.PATHOLOGIST)
def retry(report_id: int):  # type: ignore[no-untyped-def]
    report = get_or_404(Report, id=report_id)
    try:
        reports.retry(report)
        db.session.commit()
    except reports.ReportRefused:
        db.session.rollback()
    order = db.session.get(Order, report.order_id)
    if not wants_fragment():
        return see_other(url_for(".versions", accession=order.accession))
    rows = reports.for_order(order)
    return render_template("reports/_versions.html", order=order, reports=rows,
                           rendering=any(r.status == "rendering" for r in rows))
