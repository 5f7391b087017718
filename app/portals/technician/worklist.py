"""The worklist: tests on received tubes, STAT first, then criticals, filterable as you type."""
from __future__ import annotations

from flask import render_template, request

from app.portals import page_or_fragment
from app.portals.technician import bp
from app.portals.technician.forms import WorklistFilterForm
from app.services import catalogue_admin, instruments, results


@bp.get("/worklist", endpoint="worklist")
def worklist():  # type: ignore[no-untyped-def]
    form = WorklistFilterForm(request.args)
    form.department.choices = [("", "All departments")] + [(d.id, d.name) for d in catalogue_admin.list_departments()]
    form.instrument.choices = [("", "Any instrument")] + [(i.id, i.name) for i in instruments.all_instruments()]
    if not form.validate():
        form.day.data = None  # a malformed date filters nothing; the field shows why
    status = form.status.data if form.status.data in ("pending", "entered", "all") else "pending"
    items = results.worklist(results.WorklistFilter(
        department_id=form.department.data, instrument_id=form.instrument.data, status=status,
        priority=form.priority.data or None, day=form.day.data))
    return render_template(page_or_fragment("technician/worklist.html", "technician/_worklist_rows.html"),
                           form=form, items=items, currents=results.currents_for([ot.id for ot in items]))
