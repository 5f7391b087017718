"""Admin: API tokens for integrations."""
from __future__ import annotations

from flask import flash, render_template, request, url_for
from flask_login import current_user

from app.extensions import db
from app.models import ApiToken
from app.portals import form_page, see_other
from app.portals.admin import bp
from app.portals.admin.forms import ApiTokenForm
from app.security import get_or_404
from app.services import api_tokens


@bp.route("/api-tokens", methods=["GET", "POST"], endpoint="api_tokens")
def api_tokens_view():  # type: ignore[no-untyped-def]
    form = ApiTokenForm()
    if request.method == "POST":
        if form.validate_on_submit():
            token, raw = api_tokens.create_token(current_user.org_id, form.role.data, form.name.data,
                                                 created_by_id=current_user.id)
            db.session.commit()
            return render_template("admin/token_once.html", token=token, raw=raw)
        return form_page("admin/api_tokens.html", "admin/_token_form.html", form, 422,
                         tokens=api_tokens.list_tokens())
    return render_template("admin/api_tokens.html", form=form, tokens=api_tokens.list_tokens())



@bp.post("/api-tokens/<int:token_id>/revoke")
def api_token_revoke(token_id: int):  # type: ignore[no-untyped-def]
    token = get_or_404(ApiToken, id=token_id)
    api_tokens.revoke(token)
    db.session.commit()
    flash(f"Revoked token {token.prefix}…", "success")
    return see_other(url_for(".api_tokens"))
