from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, SelectField, StringField, TextAreaField
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


# --- Catalogue. The services check every rule and word the messages; these forms carry
# the fields, their labels and their maximum lengths (rendered as maxlength).

def _id_or_none(value):  # type: ignore[no-untyped-def]
    """A select's value → an id, or None for "none" / anything that is not an id."""
    text = str(value if value is not None else "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


GST_RATE_CHOICES = [("0", "0 % (exempt health care)"), ("5", "5 %"), ("12", "12 %"), ("18", "18 %"), ("28", "28 %")]
RESULT_TYPE_CHOICES = [("numeric", "Numeric"), ("choice", "Choice from a list"), ("text", "Free text")]
MONEY = {"inputmode": "decimal", "autocomplete": "off"}
WHOLE = {"inputmode": "numeric", "autocomplete": "off"}
CODE = {"autocapitalize": "characters", "autocomplete": "off", "spellcheck": "false"}
LIMIT = {"autocomplete": "off"}  # no inputmode: phone keypads may hide the minus of a negative limit


class CatalogueFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET filter form

    q = StringField("Search code, name or LOINC", validators=[Optional(), Length(max=60)],
                    render_kw={"type": "search", "autocomplete": "off"})
    department = SelectField("Department", coerce=_id_or_none, validate_choice=False)
    status = SelectField("Status", choices=[("", "Active and inactive"), ("active", "Active"),
                                            ("inactive", "Inactive")], validate_choice=False)


class LabTestForm(FlaskForm):
    code = StringField("Code", validators=[Length(max=32)], render_kw=CODE)
    name = StringField("Name", validators=[Length(max=200)])
    loinc = StringField("LOINC code (optional)", validators=[Length(max=16)], render_kw={"autocomplete": "off"})
    department_id = SelectField("Department", coerce=_id_or_none, validate_choice=False)
    specimen = StringField("Specimen", validators=[Length(max=40)], render_kw={"list": "specimens"})
    container = StringField("Container", validators=[Length(max=40)], render_kw={"list": "containers"})
    unit = StringField("Unit (UCUM)", validators=[Length(max=32)], render_kw={"spellcheck": "false"})
    result_type = SelectField("Result type", choices=RESULT_TYPE_CHOICES, validate_choice=False)
    choices = StringField("Answers (choice results)", validators=[Length(max=400)])
    decimals = SelectField("Decimals shown", choices=[(str(n), str(n)) for n in range(5)], validate_choice=False)
    method = StringField("Method", validators=[Length(max=100)])
    tat_hours = StringField("Turnaround (hours)", default="24", validators=[Length(max=6)], render_kw=WHOLE)
    price = StringField("Price (₹)", validators=[Length(max=20)], render_kw=MONEY)
    sac_code = StringField("SAC code", default="999316", validators=[Length(max=8)], render_kw=WHOLE)
    gst_rate = SelectField("GST rate", choices=GST_RATE_CHOICES, default="0", validate_choice=False)
    orderable = BooleanField("Can be ordered on its own", default=True)
    active = BooleanField("Active", default=True)
    autoverify = BooleanField("Autoverify: a result within its interval, with no flag, delta failure, comment or "
                              "tube remark, is verified by rule")
    delta_abs = StringField("Delta check: largest change (in the test's unit)", validators=[Length(max=20)],
                            render_kw=LIMIT)
    delta_pct = StringField("Delta check: largest change (% of the previous value)", validators=[Length(max=20)],
                            render_kw=LIMIT)


AGE_UNIT_CHOICES = [("years", "years"), ("months", "months"), ("days", "days")]


class IntervalForm(FlaskForm):
    sex = SelectField("Sex", choices=[("any", "Any"), ("male", "Male"), ("female", "Female")], validate_choice=False)
    age_from = StringField("Age from", default="0", validators=[Length(max=5)], render_kw=WHOLE)
    age_from_unit = SelectField("Unit of age from", choices=AGE_UNIT_CHOICES, validate_choice=False)
    age_to = StringField("Age up to (not included)", default="150", validators=[Length(max=5)], render_kw=WHOLE)
    age_to_unit = SelectField("Unit of age up to", choices=AGE_UNIT_CHOICES, validate_choice=False)
    low = StringField("Low", validators=[Length(max=20)], render_kw=LIMIT)
    high = StringField("High", validators=[Length(max=20)], render_kw=LIMIT)
    critical_low = StringField("Critical low", validators=[Length(max=20)], render_kw=LIMIT)
    critical_high = StringField("Critical high", validators=[Length(max=20)], render_kw=LIMIT)
    text = StringField("Text (e.g. Negative)", validators=[Length(max=200)])
    source = StringField("Source", validators=[Length(max=300)])


class PanelForm(FlaskForm):
    code = StringField("Code", validators=[Length(max=32)], render_kw=CODE)
    name = StringField("Name", validators=[Length(max=200)])
    price = StringField("Price (₹)", validators=[Length(max=20)], render_kw=MONEY)
    sac_code = StringField("SAC code", default="999316", validators=[Length(max=8)], render_kw=WHOLE)
    gst_rate = SelectField("GST rate", choices=GST_RATE_CHOICES, default="0", validate_choice=False)
    is_package = BooleanField("Health package (not a profile)")
    active = BooleanField("Active", default=True)


class NewPanelForm(PanelForm):
    test_codes = StringField("Tests, by code in report order", validators=[Length(max=2000)],
                             render_kw={**CODE, "placeholder": "HB, WBC, PLT"})


class PanelTestForm(FlaskForm):
    test_code = StringField("Test code", validators=[Length(max=32)], render_kw={**CODE, "list": "test-codes"})


class ReferrerFilterForm(FlaskForm):
    class Meta:
        csrf = False

    q = StringField("Search name, phone or email", validators=[Optional(), Length(max=60)],
                    render_kw={"type": "search", "autocomplete": "off"})


class ReferrerForm(FlaskForm):
    name = StringField("Name", validators=[Length(max=200)])
    kind = SelectField("Kind", choices=[("doctor", "Doctor"), ("hospital", "Hospital"), ("self", "Self")],
                       validate_choice=False)
    qualification = StringField("Qualification (e.g. MBBS, MD)", validators=[Length(max=100)])
    phone = StringField("Phone (mobile or landline with STD code)", validators=[Length(max=32)],
                        render_kw={"inputmode": "tel", "autocomplete": "off"})
    email = StringField("Email", validators=[Length(max=254)], render_kw={"type": "email", "autocomplete": "off"})
    active = BooleanField("Active", default=True)
    notify_reports = BooleanField("Send this referrer their patients' reports when released", default=False)


class PriceListForm(FlaskForm):
    name = StringField("Name", validators=[Length(max=100)])
    active = BooleanField("Active", default=True)


class PriceForm(FlaskForm):
    code = StringField("Test or panel code", validators=[Length(max=32)], render_kw={**CODE, "list": "orderable-codes"})
    price = StringField("Price (₹)", validators=[Length(max=20)], render_kw=MONEY)


class ClientForm(FlaskForm):
    code = StringField("Code", validators=[Length(max=16)], render_kw=CODE)
    name = StringField("Name", validators=[Length(max=200)])
    gstin = StringField("GSTIN (if registered)", validators=[Length(max=20)], render_kw=CODE)
    state_code = StringField("GST state code", validators=[Length(max=2)], render_kw=WHOLE)
    address = TextAreaField("Address", validators=[Length(max=1000)], render_kw={"rows": 3})
    price_list_id = SelectField("Price list", coerce=_id_or_none, validate_choice=False)
    credit_limit = StringField("Credit limit (₹)", default="0", validators=[Length(max=20)], render_kw=MONEY)
    credit_days = StringField("Credit days", default="30", validators=[Length(max=3)], render_kw=WHOLE)
    active = BooleanField("Active", default=True)


class CannedCommentForm(FlaskForm):
    code = StringField("Code", validators=[Length(max=32)], render_kw=CODE)
    test_id = SelectField("Test (none: offered for every test)", coerce=_id_or_none, validate_choice=False)
    text = TextAreaField("Comment text", validators=[Length(max=4000)], render_kw={"rows": 4})
    active = BooleanField("Active (untick to stop offering it)", default=True)
