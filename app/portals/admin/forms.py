from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from app.models import Role

ROLE_CHOICES = [(r.value, r.label) for r in Role]


class UserForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)],
                           render_kw={"autocapitalize": "none", "autocomplete": "off"})
    full_name = StringField("Full name", validators=[DataRequired(), Length(max=200)])
    role = SelectField("Role", choices=ROLE_CHOICES, validators=[DataRequired()])
    branch_id = SelectField("Branch", coerce=lambda v: int(v) if v not in (None, "", "None") else None,
                            validators=[Optional()])
    qualification = StringField("Qualification (shown on signed reports)", validators=[Optional(), Length(max=200)])
    registration_number = StringField("Medical council registration number", validators=[Optional(), Length(max=64)])
    active = BooleanField("Active", default=True)


class BranchForm(FlaskForm):
    code = StringField("Code (used in bill numbers)", validators=[DataRequired(), Length(max=8)],
                       render_kw={"autocapitalize": "characters"})
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    address = StringField("Address", validators=[Optional(), Length(max=400)])
    state_code = StringField("GST state code", validators=[DataRequired(), Length(min=1, max=2)],
                             render_kw={"inputmode": "numeric"})
    phone = StringField("Phone", validators=[Optional(), Length(max=20)], render_kw={"inputmode": "tel"})
    is_main_lab = BooleanField("Main laboratory")
    active = BooleanField("Active", default=True)


class ApiTokenForm(FlaskForm):
    name = StringField("Name (who uses it)", validators=[DataRequired(), Length(max=100)])
    role = SelectField("Role", choices=ROLE_CHOICES, validators=[DataRequired()])


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET filter form

    action = StringField("Action", validators=[Optional(), Length(max=64)])
    entity_type = StringField("Entity", validators=[Optional(), Length(max=64)])
    entity_id = StringField("Entity id", validators=[Optional(), Length(max=64)])
    actor = StringField("Actor", validators=[Optional(), Length(max=120)])
    since = DateField("From", validators=[Optional()])
    until = DateField("To", validators=[Optional()])
