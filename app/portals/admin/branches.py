"""Admin: branches (main lab, collection centres)."""
from __future__ import annotations

from flask import flash, render_template, request, url_for

from app.extensions import db
from app.models import Branch
from app.portals import attach_service_error, form_page, see_other
from app.portals.admin import bp
from app.portals.admin.forms import BranchForm
from app.security import get_or_404
from app.services import ServiceError, branches


@bp.get("/branches", endpoint="branches")
def branches_list():  # type: ignore[no-untyped-def]
    return render_template("admin/branches.html", branches=branches.list_branches())



def _save(form: BranchForm, branch: Branch | None):  # type: ignore[no-untyped-def]
    if form.validate_on_submit():
        try:
            saved = branches.update_branch(branch, form.data) if branch else branches.create_branch(form.data)
            db.session.commit()
        except ServiceError as err:
            db.session.rollback()
            attach_service_error(form, err)
        else:
            flash(f"Saved branch {saved.code}.", "success")
            return see_other(url_for(".branches"))
    return form_page("admin/branch_form.html", "admin/_branch_form.html", form, 422, branch=branch)


@bp.route("/branches/new", methods=["GET", "POST"])
def branch_new():  # type: ignore[no-untyped-def]
    form = BranchForm()
    if request.method == "POST":
        return _save(form, None)
    return render_template("admin/branch_form.html", form=form, branch=None)


@bp.route("/branches/<int:branch_id>", methods=["GET", "POST"])
def branch_edit(branch_id: int):  # type: ignore[no-untyped-def]
    branch = get_or_404(Branch, id=branch_id)
    form = BranchForm(obj=branch)
    if request.method == "POST":
        return _save(form, branch)
    return render_template("admin/branch_form.html", form=form, branch=branch)
