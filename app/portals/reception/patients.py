"""Reception: find, register and edit patients."""
from __future__ import annotations

from flask import flash, render_template, request, url_for
from flask_login import current_user

from app.extensions import db
from app.models import Patient
from app.portals import page_after_post, page_or_fragment, see_other
from app.portals.reception import bp
from app.portals.reception.forms import PatientForm, service_input, show_errors
from app.security import get_or_404
from app.services import orders, patients


@bp.get("/patients", endpoint="patient_search")
def patient_search():  # type: ignore[no-untyped-def]
    query = request.args.get("q", "")[:100]
    return render_template(page_or_fragment("reception/search.html", "reception/_search_results.html"),
                           results=patients.search(query), query=query)


@bp.route("/patients/new", methods=["GET", "POST"], endpoint="patient_new")
def patient_new():  # type: ignore[no-untyped-def]
    form = PatientForm()
    if request.method == "GET":
        # Carry over what was typed in the search box: a mobile or a name.
        typed = request.args.get("q", "")[:100]
        if typed and any(c.isdigit() for c in typed):
            form.mobile.data = typed
        elif typed:
            form.name.data = typed
        return render_template("reception/patient_new.html", form=form)
    if not form.validate_on_submit():
        return render_template(page_or_fragment("reception/patient_new.html", "reception/_patient_form.html"), form=form), 422
    try:
        patient = patients.register(service_input(form), branch_id=current_user.branch_id,
                                    created_by_id=current_user.id, confirm_new=form.confirm_new.data == "1")
        db.session.commit()
    except patients.PatientInvalid as err:
        db.session.rollback()
        show_errors(form, err.errors)
        return render_template(page_or_fragment("reception/patient_new.html", "reception/_patient_form.html"), form=form), 422
    except patients.LikelyDuplicates as dup:
        db.session.rollback()
        form.confirm_new.data = "1"
        return render_template(page_or_fragment("reception/patient_new.html", "reception/_patient_form.html"),
                               form=form, candidates=dup.candidates), 409
    flash(f"Registered {patient.full_name} — MRN {patient.mrn}.", "success")
    return page_after_post(url_for(".patient", mrn=patient.mrn), "reception/patient.html", patient=patient,
                           orders=orders.for_patient(patient))


@bp.get("/patients/<mrn>", endpoint="patient")
def patient_view(mrn: str):  # type: ignore[no-untyped-def]
    patient = get_or_404(Patient, mrn=mrn)
    return render_template("reception/patient.html", patient=patient, orders=orders.for_patient(patient))


@bp.route("/patients/<mrn>/edit", methods=["GET", "POST"], endpoint="patient_edit")
def patient_edit(mrn: str):  # type: ignore[no-untyped-def]
    patient = get_or_404(Patient, mrn=mrn)
    form = PatientForm(data=patients.as_form_data(patient)) if request.method == "GET" else PatientForm()
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                patients.update(patient, service_input(form))
                db.session.commit()
            except patients.PatientInvalid as err:
                db.session.rollback()
                show_errors(form, err.errors)
            else:
                flash("Saved.", "success")
                return see_other(url_for(".patient", mrn=patient.mrn))
        return render_template(page_or_fragment("reception/patient_edit.html", "reception/_patient_form.html"),
                               form=form, patient=patient), 422
    return render_template("reception/patient_edit.html", form=form, patient=patient)
