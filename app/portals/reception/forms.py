"""Reception forms. They render and carry the CSRF token; the rules live in the services
(app/services/patients.py), so the API gives the same messages."""
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import Optional

from app.services.branches import STATE_CODES

STATES = [("", "—")] + [(code, code) for code in sorted(STATE_CODES)]


class PatientForm(FlaskForm):
    name = StringField("Full name", render_kw={"autocomplete": "off", "maxlength": 200})
    sex = SelectField("Sex", choices=[("", "—"), ("female", "Female"), ("male", "Male"), ("other", "Other")])
    dob = StringField("Date of birth", render_kw={"type": "date"})
    age_years = StringField("Age: years", render_kw={"inputmode": "numeric", "size": 3, "maxlength": 3})
    age_months = StringField("months", render_kw={"inputmode": "numeric", "size": 2, "maxlength": 2})
    age_days = StringField("days", render_kw={"inputmode": "numeric", "size": 2, "maxlength": 2})
    mobile = StringField("Mobile", render_kw={"inputmode": "tel", "autocomplete": "off", "maxlength": 20})
    email = StringField("Email (optional)", render_kw={"type": "email", "maxlength": 254})
    address = TextAreaField("Address (optional)", render_kw={"rows": 2, "maxlength": 400})
    city = StringField("City (optional)", render_kw={"maxlength": 100})
    pin_code = StringField("PIN code (optional)", render_kw={"inputmode": "numeric", "maxlength": 7})
    state_code = SelectField("State (GST code, optional)", choices=STATES, validators=[Optional()])
    aadhaar = StringField("Aadhaar (optional, stored masked)", render_kw={"inputmode": "numeric", "autocomplete": "off", "maxlength": 14})
    abha_number = StringField("ABHA number (optional)", render_kw={"inputmode": "numeric", "maxlength": 17})
    abha_address = StringField("ABHA address (optional)", render_kw={"maxlength": 100})
    confirm_new = HiddenField(default="")


def service_input(form: PatientForm) -> dict:
    return {name: field.data for name, field in form._fields.items() if name not in {"csrf_token", "confirm_new"}}


def show_errors(form: PatientForm, errors: dict[str, list[str]]) -> None:
    for name, messages in errors.items():
        field = getattr(form, name, None)
        if field is None:
            form.form_errors.extend(messages)
        else:
            field.errors = list(field.errors or []) + messages


class ConfirmForm(FlaskForm):
    """An empty form: just the CSRF token for a one-button POST."""

    confirm = BooleanField(default=True)
