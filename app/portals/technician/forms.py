"""Technician forms. Posted forms here are hand-built inputs (the grid, the receipt box) that
carry the CSRF token themselves; this module has the GET filter of the worklist."""
from flask_wtf import FlaskForm
from wtforms import DateField, SelectField
from wtforms.validators import Optional


def _id_or_none(value):  # type: ignore[no-untyped-def]
    """A select's value → an id, or None for "any" / anything that is not an id."""
    text = str(value if value is not None else "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


STATUS_CHOICES = [("pending", "Waiting for a result"), ("entered", "Entered"), ("all", "All")]
PRIORITY_CHOICES = [("", "Any priority"), ("stat", "STAT"), ("urgent", "Urgent"), ("routine", "Routine")]


class WorklistFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET filter form

    department = SelectField("Department", coerce=_id_or_none, validate_choice=False)
    instrument = SelectField("Instrument", coerce=_id_or_none, validate_choice=False)
    status = SelectField("Status", choices=STATUS_CHOICES, default="pending", validate_choice=False)
    priority = SelectField("Priority", choices=PRIORITY_CHOICES, validate_choice=False)
    day = DateField("Received on", validators=[Optional()])
