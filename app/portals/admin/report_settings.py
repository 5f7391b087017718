"""Admin: what every report carries from settings (india.md §5.1): the accreditation line, the
optional NABL ULR pattern, the letterhead logo, and each pathologist's signature image."""
from __future__ import annotations

from flask import Response, abort, flash, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.extensions import db
from app.models import Organization, Role, User
from app.portals import see_other
from app.portals.admin import bp
from app.security import get_or_404
from app.services import reports

MAX_UPLOAD = 1024 * 1024  # the services refuse anything bigger than their own limits anyway


def _upload(name: str) -> bytes | None:
    file = request.files.get(name)
    if file is None or not file.filename:
        return None
    return file.read(MAX_UPLOAD + 1)


def _page(status: int = 200, **extra):  # type: ignore[no-untyped-def]
    org = db.session.get(Organization, current_user.org_id)
    pathologists = db.session.execute(select(User).where(User.role == Role.PATHOLOGIST.value)
                                      .order_by(User.full_name)).scalars().all()
    return render_template("admin/report_settings.html", org=org, pathologists=pathologists, **extra), status


@bp.get("/report-settings", endpoint="report_settings")
def report_settings():  # type: ignore[no-untyped-def]
    return _page()


@bp.post("/report-settings", endpoint="report_settings_save")
def report_settings_save():  # type: ignore[no-untyped-def]
    org = db.session.get(Organization, current_user.org_id)
    try:
        reports.update_settings(org, accreditation=request.form.get("accreditation", ""),
                                ulr_pattern=request.form.get("ulr_pattern", ""), logo=_upload("logo"))
        db.session.commit()
    except reports.ReportRefused as err:
        db.session.rollback()
        return _page(422, errors={err.field or "form": err.message}, form=request.form)
    flash("Report settings saved. Reports rendered from now on carry them.", "success")
    return see_other(url_for(".report_settings"))


@bp.get("/report-settings/logo", endpoint="report_logo")
def report_logo():  # type: ignore[no-untyped-def]
    org = db.session.get(Organization, current_user.org_id)
    if not org.report_logo:
        abort(404)
    return Response(org.report_logo, mimetype=org.report_logo_type or "image/png",
                    headers={"Cache-Control": "private, no-cache"})


@bp.post("/report-settings/signatures/<int:user_id>", endpoint="signature_save")
def signature_save(user_id: int):  # type: ignore[no-untyped-def]
    user = get_or_404(User, id=user_id)
    if user.role != Role.PATHOLOGIST.value:
        abort(404)
    png = None if request.form.get("remove") else _upload("signature")
    if png is None and not request.form.get("remove"):
        return _page(422, errors={f"signature-{user.id}": "Choose a PNG file of the signature."})
    try:
        reports.set_signature(user, png)
        db.session.commit()
    except reports.ReportRefused as err:
        db.session.rollback()
        return _page(422, errors={f"signature-{user.id}": err.message})
    flash(f"Signature {'removed' if png is None else 'saved'} for {user.full_name}.", "success")
    return see_other(url_for(".report_settings"))


@bp.get("/report-settings/signatures/<int:user_id>.png", endpoint="signature_image")
def signature_image(user_id: int):  # type: ignore[no-untyped-def]
    user = get_or_404(User, id=user_id)
    if not user.signature_png:
        abort(404)
    return Response(user.signature_png, mimetype="image/png", headers={"Cache-Control": "private, no-cache"})
