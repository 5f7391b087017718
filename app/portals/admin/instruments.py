"""Admin: the instrument registry — analyzers, how to read their messages, and the map from
their test codes to the catalogue (with a unit factor). The rules are in
app/services/instruments.py; this parses the form (the profile is JSON text, the code map
three parallel columns) and shows the service's messages next to their fields."""
from __future__ import annotations

import json
from typing import Any

from flask import flash, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.validators import Length

from app.extensions import db
from app.models import Instrument
from app.portals import see_other, wants_fragment
from app.portals.admin import bp
from app.services import catalogue_admin, instruments
from app.security import get_or_404

FIELD = {"autocapitalize": "characters", "autocomplete": "off", "spellcheck": "false"}


def _id_or_none(value):  # type: ignore[no-untyped-def]
    text = str(value if value is not None else "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


class InstrumentForm(FlaskForm):
    name = StringField("Name", validators=[Length(max=100)])
    make = StringField("Make", validators=[Length(max=60)])
    model = StringField("Model", validators=[Length(max=60)])
    protocol = SelectField("Protocol", choices=[("hl7", "HL7 v2 over MLLP"), ("astm", "ASTM E1381/E1394 (LIS1/LIS2)")],
                           validate_choice=False)
    port = StringField("TCP port the listener opens", validators=[Length(max=5)],
                       render_kw={"inputmode": "numeric", "autocomplete": "off"})
    department_id = SelectField("Department (optional)", coerce=_id_or_none, validate_choice=False)
    sample_id_field = StringField("Sample id field", validators=[Length(max=20)],
                                  render_kw={**FIELD, "placeholder": "OBR-2 · OBR-3 · SPM-2 · O-3 · O-3.3 · O-4.3"})
    test_code_field = StringField("Test code field", validators=[Length(max=20)],
                                  render_kw={**FIELD, "placeholder": "OBX-3.1 · R-3.4 · R-3.5"})
    profile = TextAreaField("Profile (JSON: other vendor settings)", validators=[Length(max=8000)],
                            render_kw={"rows": 5, "spellcheck": "false", "placeholder": '{"encoding": "latin-1"}'})
    active = BooleanField("Active (the listener serves its port)", default=True)
    send_orders = BooleanField("Send orders to the analyzer when a tube is received (HL7)")


def _form(instrument: Instrument | None = None) -> InstrumentForm:
    data = None
    if instrument is not None and request.method == "GET":
        data = {"name": instrument.name, "make": instrument.make, "model": instrument.model,
                "protocol": instrument.protocol, "port": str(instrument.port),
                "department_id": instrument.department_id,
                "sample_id_field": instrument.sample_id_field, "test_code_field": instrument.test_code_field,
                "profile": json.dumps(instrument.profile, indent=2, ensure_ascii=False) if instrument.profile else "",
                "active": instrument.active, "send_orders": instrument.send_orders}
    form = InstrumentForm(data=data)
    form.department_id.choices = [("", "—")] + [(d.id, d.name) for d in catalogue_admin.list_departments()]
    return form


# --- the code map: three parallel columns of inputs -----------------------------------------

BLANK = {"code": "", "test": "", "factor": ""}


def _code_rows(source: Any, *, keep_blank: bool = False) -> list[dict[str, str]]:
    """Rows typed in the form (or sent by the add/remove buttons); blank rows dropped unless
    the editor is being re-rendered as typed."""
    columns = [source.getlist(name)[:500] for name in ("map_code", "map_test", "map_factor")]
    rows = [{"code": c.strip()[:40], "test": t.strip()[:32], "factor": f.strip()[:20]}
            for c, t, f in zip(*columns, strict=False)]
    return [r for r in rows if keep_blank or r["code"] or r["test"] or r["factor"]]


def _stored_rows(instrument: Instrument) -> list[dict[str, str]]:
    return [{"code": c.code, "test": c.test.code, "factor": catalogue_admin.plain_number(c.factor)}
            for c in instrument.codes]


def _codes(rows: list[dict[str, str]], errors: dict[str, list[str]]) -> dict[str, Any]:
    codes: dict[str, Any] = {}
    for row in rows:
        if row["code"] in codes:
            errors.setdefault("codes", []).append(f"Instrument code {row['code']} is listed twice.")
        codes[row["code"]] = {"test": row["test"], "factor": row["factor"] or "1"}
    return codes


def _data(form: InstrumentForm, rows: list[dict[str, str]]) -> tuple[instruments.InstrumentData, dict[str, list[str]]]:
    errors: dict[str, list[str]] = {}
    port_text = (form.port.data or "").strip()
    port = int(port_text) if port_text.isascii() and port_text.isdigit() and len(port_text) <= 5 else None
    profile: Any = {}
    if (form.profile.data or "").strip():
        try:
            profile = json.loads(form.profile.data)
        except ValueError as exc:
            errors["profile"] = [f"Not valid JSON: {exc}."]
            profile = {}
    if not isinstance(profile, dict):
        errors["profile"] = ['The profile is a JSON object: {"name": value, …}.']
        profile = {}
    data = instruments.InstrumentData(
        name=form.name.data or "", protocol=form.protocol.data or "", port=port, make=form.make.data or "",
        model=form.model.data or "", sample_id_field=form.sample_id_field.data or "",
        test_code_field=form.test_code_field.data or "", profile=profile, codes=_codes(rows, errors),
        department_id=form.department_id.data, send_orders=bool(form.send_orders.data), active=bool(form.active.data))
    return data, errors


def _save(form: InstrumentForm, rows: list[dict[str, str]], action: Any,  # type: ignore[no-untyped-def]
          instrument_id: int | None = None):
    """(instrument, None) once saved and committed, or (None, errors by field) after a rollback."""
    if not form.validate_on_submit():
        return None, {name: list(messages) for name, messages in form.errors.items()}
    data, errors = _data(form, rows)
    try:
        if errors:  # still run the service's checks so every problem shows at once
            try:
                instruments.validate(data, instrument_id=instrument_id)
            except instruments.InstrumentInvalid as invalid:
                for name, messages in invalid.errors.items():
                    errors.setdefault(name, []).extend(m for m in messages if m not in errors.get(name, []))
            raise instruments.InstrumentInvalid(errors)
        instrument = action(data)
        db.session.commit()
    except instruments.InstrumentInvalid as invalid:
        db.session.rollback()
        return None, invalid.errors
    return instrument, None


def _show(form: InstrumentForm, errors: dict[str, list[str]]) -> list[str]:
    """Put each message on its field; return those for the code map and the rest."""
    other: list[str] = []
    for name, messages in errors.items():
        field = getattr(form, name, None) if name not in ("codes", "csrf_token") else None
        if field is not None:
            field.errors = list(field.errors or []) + [m for m in messages if m not in (field.errors or [])]
        elif name == "csrf_token":
            form.form_errors.append("The form expired. Please submit it again.")
        else:
            other.extend(messages)
    return other


def _page(form: InstrumentForm, instrument: Instrument | None, rows: list[dict[str, str]], status: int = 200,
          code_errors: list[str] | None = None):  # type: ignore[no-untyped-def]
    template = "admin/_instrument_form.html" if wants_fragment() else "admin/instrument_form.html"
    rows = [*rows, dict(BLANK)]  # one empty row to type a new code into
    return render_template(template, form=form, instrument=instrument, rows=rows, code_errors=code_errors or [],
                           test_codes=catalogue_admin.lab_test_codes()), status


@bp.get("/instruments", endpoint="instruments")
def instruments_list():  # type: ignore[no-untyped-def]
    return render_template("admin/instruments.html", instruments=instruments.all_instruments())


@bp.route("/instruments/new", methods=["GET", "POST"], endpoint="instrument_new")
def instrument_new():  # type: ignore[no-untyped-def]
    form = _form()
    if request.method == "GET":
        return _page(form, None, [])
    rows = _code_rows(request.form)
    instrument, errors = _save(form, rows, instruments.create)
    if errors:
        return _page(form, None, rows, 422, _show(form, errors))
    flash(f"Added instrument {instrument.name} on port {instrument.port}.", "success")
    return see_other(url_for(".instruments"))


@bp.route("/instruments/<int:instrument_id>", methods=["GET", "POST"], endpoint="instrument_edit")
def instrument_edit(instrument_id: int):  # type: ignore[no-untyped-def]
    instrument = get_or_404(Instrument, id=instrument_id)
    form = _form(instrument)
    if request.method == "GET":
        return _page(form, instrument, _stored_rows(instrument))
    rows = _code_rows(request.form)
    saved, errors = _save(form, rows, lambda data: instruments.update(instrument, data), instrument.id)
    if errors:
        return _page(form, instrument, rows, 422, _show(form, errors))
    flash(f"Saved instrument {saved.name}.", "success")
    return see_other(url_for(".instruments"))


@bp.get("/instruments/codes", endpoint="instrument_codes")
def instrument_codes():  # type: ignore[no-untyped-def]
    """The code map editor re-rendered from what is typed, with a row added (?add=1) or one
    removed (?remove=<row number>): nothing is saved until the form is."""
    rows = _code_rows(request.args, keep_blank=True)
    remove = request.args.get("remove", type=int)
    if remove is not None and 0 <= remove < len(rows):
        rows.pop(remove)
    if request.args.get("add") == "1" or not rows:
        rows.append(dict(BLANK))
    return render_template("admin/_instrument_codes.html", rows=rows, code_errors=[],
                           test_codes=catalogue_admin.lab_test_codes())
