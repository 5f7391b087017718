"""Admin: referring doctors and hospitals — list with active search, create, edit."""
from __future__ import annotations

from flask import flash, request, url_for

from app.models import Referrer
from app.portals import see_other
from app.portals.admin import bp
from app.portals.admin.catalogue import render, save
from app.portals.admin.forms import ReferrerFilterForm, ReferrerForm
from app.security import get_or_404
from app.services import catalogue_admin as catalogue


@bp.get("/referrers", endpoint="referrers")
def referrers_list():  # type: ignore[no-untyped-def]
    form = ReferrerFilterForm(request.args)
    form.validate()
    referrers = catalogue.list_referrers(query=form.q.data or "")
    return render("admin/referrers.html", "admin/_referrer_rows.html", form=form, referrers=referrers)


def _referrer_page(form: ReferrerForm, referrer: Referrer | None, status: int = 200):  # type: ignore[no-untyped-def]
    return render("admin/referrer_form.html", "admin/_referrer_form.html", status, form=form, referrer=referrer)


@bp.route("/referrers/new", methods=["GET", "POST"])
def referrer_new():  # type: ignore[no-untyped-def]
    form = ReferrerForm()
    if request.method == "GET":
        return _referrer_page(form, None)
    referrer, err = save(form, catalogue.create_referrer)
    if err:
        return _referrer_page(form, None, 422)
    flash(f"Added {referrer.name}.", "success")
    return see_other(url_for(".referrers"))


@bp.route("/referrers/<int:referrer_id>", methods=["GET", "POST"])
def referrer_edit(referrer_id: int):  # type: ignore[no-untyped-def]
    referrer = get_or_404(Referrer, id=referrer_id)
    form = ReferrerForm(data=catalogue.referrer_form_data(referrer))
    if request.method == "GET":
        return _referrer_page(form, referrer)
    _, err = save(form, lambda data: catalogue.update_referrer(referrer, data))
    if err:
        return _referrer_page(form, referrer, 422)
    flash(f"Saved {referrer.name}.", "success")
    return see_other(url_for(".referrers"))
