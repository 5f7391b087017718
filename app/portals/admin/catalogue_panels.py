"""Admin: panels and packages — list, create (with their tests), edit, and the member
tests of a panel (add, remove, move up or down) as an htmx table on the panel's page."""
from __future__ import annotations

from typing import Any

from flask import flash, render_template, request, url_for

from app.extensions import db
from app.models import Panel, PanelItem
from app.portals import see_other
from app.portals.admin import bp
from app.portals.admin.catalogue import TEMPLATE_HELPERS, render, save, show_errors, wants_fragment
from app.portals.admin.forms import NewPanelForm, PanelForm, PanelTestForm
from app.security import get_or_404
from app.services import ServiceError
from app.services import catalogue_admin as catalogue


@bp.get("/catalogue/panels", endpoint="panels")
def panels_list():  # type: ignore[no-untyped-def]
    return render_template("admin/panels.html", panels=catalogue.list_panels())


def _panel_page(form: PanelForm, panel: Panel | None, status: int = 200, **members: Any):  # type: ignore[no-untyped-def]
    context = _members_context(panel, **members) if panel else {"panel": None}
    return render("admin/panel_form.html", "admin/_panel_form.html", status, form=form,
                  test_codes=catalogue.lab_test_codes(), **context)


@bp.route("/catalogue/panels/new", methods=["GET", "POST"])
def panel_new():  # type: ignore[no-untyped-def]
    form = NewPanelForm()
    if request.method == "GET":
        return _panel_page(form, None)
    panel, err = save(form, catalogue.create_panel)
    if err:
        return _panel_page(form, None, 422)
    flash(f"Added panel {panel.code}.", "success")
    return see_other(url_for(".panel_edit", panel_id=panel.id))


@bp.route("/catalogue/panels/<int:panel_id>", methods=["GET", "POST"])
def panel_edit(panel_id: int):  # type: ignore[no-untyped-def]
    panel = get_or_404(Panel, id=panel_id)
    form = PanelForm(data=catalogue.panel_form_data(panel))
    if request.method == "GET":
        return _panel_page(form, panel)
    _, err = save(form, lambda data: catalogue.update_panel(panel, data))
    if err:
        return _panel_page(form, panel, 422)
    flash(f"Saved panel {panel.code}.", "success")
    return see_other(url_for(".panels"))


# --- member tests -------------------------------------------------------------------------


def _members_context(panel: Panel, *, member_form: PanelTestForm | None = None, message: str = "") -> dict[str, Any]:
    return {"panel": panel, "members": catalogue.panel_members(panel),
            "member_form": member_form or PanelTestForm(formdata=None), "message": message}


def _members_answer(panel: Panel, status: int = 200, **context: Any):  # type: ignore[no-untyped-def]
    if wants_fragment():
        return render_template("admin/_panel_tests.html", **TEMPLATE_HELPERS,
                               test_codes=catalogue.lab_test_codes(), **_members_context(panel, **context)), status
    if status >= 400:
        return _panel_page(PanelForm(formdata=None, data=catalogue.panel_form_data(panel)), panel, status, **context)
    flash(context.get("message", "Saved."), "success")
    return see_other(url_for(".panel_edit", panel_id=panel.id) + "#panel-tests")


@bp.post("/catalogue/panels/<int:panel_id>/tests")
def panel_test_add(panel_id: int):  # type: ignore[no-untyped-def]
    panel = get_or_404(Panel, id=panel_id)
    form = PanelTestForm()
    item, err = save(form, lambda data: catalogue.add_panel_test(panel, data))
    if err:
        return _members_answer(panel, 422, member_form=form)
    return _members_answer(panel, message=f"Added {item.test.code}.")


@bp.post("/catalogue/panels/<int:panel_id>/tests/<int:item_id>/delete")
def panel_test_remove(panel_id: int, item_id: int):  # type: ignore[no-untyped-def]
    panel = get_or_404(Panel, id=panel_id)
    item = get_or_404(PanelItem, id=item_id, panel_id=panel.id)
    code = item.test.code
    try:
        catalogue.remove_panel_test(panel, item)
        db.session.commit()
    except ServiceError as err:
        db.session.rollback()
        form = PanelTestForm(formdata=None)
        show_errors(form, err)
        return _members_answer(panel, 422, member_form=form)
    return _members_answer(panel, message=f"Removed {code}.")


@bp.post("/catalogue/panels/<int:panel_id>/tests/<int:item_id>/move")
def panel_test_move(panel_id: int, item_id: int):  # type: ignore[no-untyped-def]
    panel = get_or_404(Panel, id=panel_id)
    item = get_or_404(PanelItem, id=item_id, panel_id=panel.id)
    offset = -1 if request.form.get("direction") == "up" else 1
    catalogue.move_panel_test(panel, item, offset)
    db.session.commit()
    return _members_answer(panel, message=f"Moved {item.test.code} {'up' if offset < 0 else 'down'}.")
