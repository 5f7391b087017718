"""Admin: canned interpretive comments — list, add, edit, deactivate (the Active box)."""
from __future__ import annotations

from flask import flash, request, url_for

from app.models import CannedComment
from app.portals import see_other
from app.portals.admin import bp
from app.portals.admin.catalogue import render, save
from app.portals.admin.forms import CannedCommentForm
from app.security import get_or_404
from app.services import canned_comments
from app.services import catalogue_admin as catalogue


def _tests():  # type: ignore[no-untyped-def]
    return {t.id: t for t in catalogue.list_tests()}


@bp.get("/canned-comments", endpoint="canned_comments")
def canned_list():  # type: ignore[no-untyped-def]
    return render("admin/canned_comments.html", "admin/canned_comments.html", comments=canned_comments.list_all(),
                  tests=_tests())


def _form(comment: CannedComment | None) -> CannedCommentForm:
    form = CannedCommentForm(data=canned_comments.form_data(comment) if comment else None)
    tests = _tests()
    form.test_id.choices = [("", "— None (any test) —")] + [
        (t.id, f"{t.code} · {t.name}" + ("" if t.active else " (inactive)")) for t in tests.values()
        if t.active or (comment is not None and comment.test_id == t.id)]
    return form


def _page(form: CannedCommentForm, comment: CannedComment | None, status: int = 200):  # type: ignore[no-untyped-def]
    return render("admin/canned_comment_form.html", "admin/_canned_comment_form.html", status, form=form,
                  comment=comment)


@bp.route("/canned-comments/new", methods=["GET", "POST"])
def canned_new():  # type: ignore[no-untyped-def]
    form = _form(None)
    if request.method == "GET":
        return _page(form, None)
    comment, err = save(form, canned_comments.create)
    if err:
        return _page(form, None, 422)
    flash(f"Added canned comment {comment.code}.", "success")
    return see_other(url_for(".canned_comments"))


@bp.route("/canned-comments/<int:comment_id>", methods=["GET", "POST"])
def canned_edit(comment_id: int):  # type: ignore[no-untyped-def]
    comment = get_or_404(CannedComment, id=comment_id)
    form = _form(comment)
    if request.method == "GET":
        return _page(form, comment)
    _, err = save(form, lambda data: canned_comments.update(comment, data))
    if err:
        return _page(form, comment, 422)
    flash(f"Saved canned comment {comment.code}.", "success")
    return see_other(url_for(".canned_comments"))
