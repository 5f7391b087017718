"""Admin: the test catalogue — tests (list with active search, create, edit) and each test's
reference intervals (an htmx-editable table on the test's page). Panels, referrers, price
lists and clients live in the sibling catalogue_*.py modules."""
from __future__ import annotations

from typing import Any

from flask import flash, render_template, request, url_for
from flask_wtf import FlaskForm

from app.extensions import db
from app.models import LabTest, ReferenceInterval
from app.portals import attach_service_error, see_other, wants_fragment
from app.portals.admin import bp
from app.portals.admin.forms import CatalogueFilterForm, IntervalForm, LabTestForm
from app.security import get_or_404
from app.services import ServiceError
from app.services import catalogue_admin as catalogue

# Formatting helpers the catalogue templates share.
TEMPLATE_HELPERS = {"plain": catalogue.plain_number, "age_band": catalogue.age_band_label,
                    "rupees_text": catalogue.rupees_text}


def show_errors(form: FlaskForm, err: ServiceError) -> None:
    """Put every field's message from a service next to its field (or above the form)."""
    for field, message in getattr(err, "errors", {err.field: err.message}).items():
        attach_service_error(form, ServiceError(message, field=field))


def save(form: FlaskForm, action: Any) -> tuple[Any, ServiceError | None]:
    """Validate the form, run the service action and commit; on a broken rule roll back
    and show its messages on the form. Returns (result, None) or (None, the error)."""
    if not form.validate_on_submit():
        return None, ServiceError("The form has errors.")
    try:
        result = action(form.data)
        db.session.commit()
    except ServiceError as err:
        db.session.rollback()
        show_errors(form, err)
        return None, err
    return result, None


def render(page: str, fragment: str, status: int = 200, **context: Any) -> tuple[str, int]:
    """The whole page, or only its fragment for htmx: the same template either way."""
    return render_template(fragment if wants_fragment() else page, **TEMPLATE_HELPERS, **context), status


# --- tests ------------------------------------------------------------------------------


@bp.get("/catalogue", endpoint="catalogue")
def tests_list():  # type: ignore[no-untyped-def]
    departments = catalogue.list_departments()
    form = CatalogueFilterForm(request.args)
    form.department.choices = [("", "All departments")] + [(d.id, d.name) for d in departments]
    form.validate()
    tests = catalogue.list_tests(query=form.q.data or "", department_id=form.department.data,
                                 status=form.status.data or "")
    return render("admin/catalogue.html", "admin/_test_rows.html", form=form, tests=tests)


def _test_form(test: LabTest | None, *, from_request: bool = True) -> LabTestForm:
    """The test form; `from_request=False` when the request posted another form (an interval)."""
    data = catalogue.lab_test_form_data(test) if test else None
    form = LabTestForm(data=data) if from_request else LabTestForm(formdata=None, data=data)
    form.department_id.choices = [("", "— Choose —")] + [(d.id, d.name) for d in catalogue.list_departments()]
    return form


def _test_page(form: LabTestForm, test: LabTest | None, status: int = 200, **interval_context: Any):  # type: ignore[no-untyped-def]
    context = _intervals_context(test, **interval_context) if test else {"test": None}
    return render("admin/test_form.html", "admin/_test_form.html", status, form=form,
                  suggestions=catalogue.catalogue_choices(), **context)


@bp.route("/catalogue/tests/new", methods=["GET", "POST"])
def test_new():  # type: ignore[no-untyped-def]
    form = _test_form(None)
    if request.method == "GET":
        return _test_page(form, None)
    test, err = save(form, catalogue.create_test)
    if err:
        return _test_page(form, None, 422)
    flash(f"Added test {test.code}. Add its reference intervals below.", "success")
    return see_other(url_for(".test_edit", test_id=test.id))


@bp.route("/catalogue/tests/<int:test_id>", methods=["GET", "POST"])
def test_edit(test_id: int):  # type: ignore[no-untyped-def]
    test = get_or_404(LabTest, id=test_id)
    form = _test_form(test)
    if request.method == "GET":
        return _test_page(form, test, editing_id=request.args.get("edit_interval", type=int))
    _, err = save(form, lambda data: catalogue.update_test(test, data))
    if err:
        return _test_page(form, test, 422)
    flash(f"Saved test {test.code}.", "success")
    return see_other(url_for(".catalogue"))


# --- reference intervals ------------------------------------------------------------------


def _intervals_context(test: LabTest, *, editing_id: int | None = None, edit_form: IntervalForm | None = None,
                       add_form: IntervalForm | None = None, message: str = "") -> dict[str, Any]:
    intervals = catalogue.intervals_of(test)
    if editing_id is not None and edit_form is None:
        editing = next((i for i in intervals if i.id == editing_id), None)
        edit_form = IntervalForm(data=catalogue.interval_form_data(editing)) if editing else None
        editing_id = editing.id if editing else None
    return {"test": test, "intervals": intervals, "editing_id": editing_id, "edit_form": edit_form,
            "add_form": add_form or IntervalForm(formdata=None), "message": message}


def _intervals_answer(test: LabTest, status: int = 200, **context: Any):  # type: ignore[no-untyped-def]
    """The interval table (htmx) or the whole test page (a plain form post)."""
    if wants_fragment():
        return render_template("admin/_test_intervals.html", **TEMPLATE_HELPERS,
                               **_intervals_context(test, **context)), status
    return _test_page(_test_form(test, from_request=False), test, status, **context)


def _interval_saved(test: LabTest, message: str):  # type: ignore[no-untyped-def]
    if wants_fragment():
        return _intervals_answer(test, message=message)
    flash(message, "success")
    return see_other(url_for(".test_edit", test_id=test.id) + "#intervals")


@bp.get("/catalogue/tests/<int:test_id>/intervals")
def intervals_table(test_id: int):  # type: ignore[no-untyped-def]
    """The table, with one row open for editing when ?edit=<interval id>."""
    test = get_or_404(LabTest, id=test_id)
    return _intervals_answer(test, editing_id=request.args.get("edit", type=int))


@bp.post("/catalogue/tests/<int:test_id>/intervals")
def interval_add(test_id: int):  # type: ignore[no-untyped-def]
    test = get_or_404(LabTest, id=test_id)
    form = IntervalForm()
    _, err = save(form, lambda data: catalogue.add_interval(test, data))
    if err:
        return _intervals_answer(test, 422, add_form=form)
    return _interval_saved(test, "Added the interval.")


@bp.post("/catalogue/tests/<int:test_id>/intervals/<int:interval_id>")
def interval_edit(test_id: int, interval_id: int):  # type: ignore[no-untyped-def]
    test = get_or_404(LabTest, id=test_id)
    interval = get_or_404(ReferenceInterval, id=interval_id, test_id=test.id)
    form = IntervalForm()
    _, err = save(form, lambda data: catalogue.update_interval(interval, data))
    if err:
        return _intervals_answer(test, 422, editing_id=interval_id, edit_form=form)
    return _interval_saved(test, "Saved the interval.")


@bp.post("/catalogue/tests/<int:test_id>/intervals/<int:interval_id>/delete")
def interval_delete(test_id: int, interval_id: int):  # type: ignore[no-untyped-def]
    test = get_or_404(LabTest, id=test_id)
    interval = get_or_404(ReferenceInterval, id=interval_id, test_id=test.id)
    catalogue.delete_interval(interval)
    db.session.commit()
    return _interval_saved(test, "Deleted the interval.")
