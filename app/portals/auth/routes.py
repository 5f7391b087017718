"""Staff login, logout and password change."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from app.extensions import limiter
from app.navigation import HOME_ENDPOINT
from app.models import Role
from app.portals import attach_service_error, form_page, see_other
from app.portals.auth import bp
from app.portals.auth.forms import LoginForm, PasswordChangeForm
from app.services import ServiceError
from app.services import auth as auth_service


def _policy() -> auth_service.LoginPolicy:
    cfg = current_app.config
    return auth_service.LoginPolicy(cfg["LIS_LOCKOUT_THRESHOLD"], cfg["LIS_LOCKOUT_MINUTES"],
                                    cfg["LIS_MIN_PASSWORD_LENGTH"])


def _login_rate() -> str:
    return current_app.config["LIS_LOGIN_RATE_LIMIT"]


def _account_key() -> str:
    return "login-account:" + request.form.get("username", "").strip().lower()[:64]


def _safe_next(target: str | None) -> str | None:
    """Only same-site relative paths: never an open redirect."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def home_url() -> str:
    return url_for(HOME_ENDPOINT[Role(current_user.role)])


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_rate, methods=["POST"])  # per client IP
@limiter.limit(_login_rate, key_func=_account_key, methods=["POST"])  # per account, whatever the IP
def login():  # type: ignore[no-untyped-def]
    if current_user.is_authenticated:
        return redirect(home_url())
    form = LoginForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            return form_page("auth/login.html", "auth/_login_form.html", form, 422)
        try:
            user = auth_service.authenticate(form.username.data, form.password.data, _policy())
        except auth_service.LoginFailed as err:
            form.form_errors.append(err.message)
            return form_page("auth/login.html", "auth/_login_form.html", form, 422)
        session.clear()  # a fresh session on login: no fixation
        login_user(user)
        session.permanent = True
        return see_other(_safe_next(request.args.get("next")) or home_url(), full_page=True)
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
def logout():  # type: ignore[no-untyped-def]
    logout_user()
    session.clear()
    flash("You have logged out.", "info")
    return see_other(url_for("auth.login"), full_page=True)


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():  # type: ignore[no-untyped-def]
    form = PasswordChangeForm()
    if request.method == "POST":
        if form.validate_on_submit():
            user = current_user.record()
            try:
                auth_service.change_password(user, form.current_password.data, form.new_password.data, _policy())
            except ServiceError as err:
                attach_service_error(form, err)
            else:
                login_user(user)  # the session id now carries the new session_version
                flash("Your password was changed. Other sessions were logged out.", "success")
                return see_other(home_url(), full_page=True)
        return form_page("auth/password.html", "auth/_password_form.html", form, 422)
    return render_template("auth/password.html", form=form)
