"""Admin: staff users of the organization."""
from __future__ import annotations

from flask import flash, render_template, request, url_for
from flask_login import current_user

from app.extensions import db
from app.models import User
from app.portals import attach_service_error, form_page, see_other
from app.portals.admin import bp
from app.portals.admin.forms import UserForm
from app.security import get_or_404
from app.services import ServiceError, branches, users


def _with_branches(form: UserForm) -> UserForm:
    form.branch_id.choices = [(None, "— Whole organization —")] + [
        (b.id, f"{b.code} · {b.name}") for b in branches.list_branches()
    ]
    return form


@bp.get("/users", endpoint="users")
def users_list():  # type: ignore[no-untyped-def]
    return render_template("admin/users.html", users=users.list_users())



@bp.route("/users/new", methods=["GET", "POST"])
def user_new():  # type: ignore[no-untyped-def]
    form = _with_branches(UserForm())
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                user, password = users.create_user(current_user.org_id, form.data)
                db.session.commit()
            except ServiceError as err:
                db.session.rollback()
                attach_service_error(form, err)
            else:
                return render_template("admin/password_once.html", user=user, password=password)
        return form_page("admin/user_form.html", "admin/_user_form.html", form, 422, user=None)
    return render_template("admin/user_form.html", form=form, user=None)


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
def user_edit(user_id: int):  # type: ignore[no-untyped-def]
    user = get_or_404(User, id=user_id)
    form = _with_branches(UserForm(obj=user))
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                users.update_user(user, form.data, acting_user_id=current_user.id)
                db.session.commit()
            except ServiceError as err:
                db.session.rollback()
                attach_service_error(form, err)
            else:
                flash(f"Saved {user.username}.", "success")
                return see_other(url_for(".users"))
        return form_page("admin/user_form.html", "admin/_user_form.html", form, 422, user=user)
    return render_template("admin/user_form.html", form=form, user=user)


@bp.post("/users/<int:user_id>/reset-password")
def user_reset_password(user_id: int):  # type: ignore[no-untyped-def]
    user = get_or_404(User, id=user_id)
    password = users.reset_password(user)
    db.session.commit()
    return render_template("admin/password_once.html", user=user, password=password)


@bp.post("/users/<int:user_id>/unlock")
def user_unlock(user_id: int):  # type: ignore[no-untyped-def]
    user = get_or_404(User, id=user_id)
    users.unlock(user)
    db.session.commit()
    flash(f"Unlocked {user.username}.", "success")
    return see_other(url_for(".users"))
