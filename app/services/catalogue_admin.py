"""The catalogue's write side (admin portal): tests and their reference intervals, panels
and their member tests, referrers, price lists with their item prices, and B2B clients.

Every function here checks all of its input first and reports every broken rule at once
(`InvalidInput`, one message per field), so nothing is half-applied; then it changes the
rows, records an audit event with the changed fields only (before/after), and leaves the
commit to the caller. Inputs are the strings a form or an API sends; money is typed in
rupees and stored in paise.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, or_, select
from sqlalchemy.orm import joinedload, selectinload
from stdnum import luhn
from stdnum.exceptions import InvalidChecksum, ValidationError
from stdnum.in_ import gstin as stdnum_gstin
from stdnum.in_ import pan as stdnum_pan

from app import audit
from app.extensions import db
from app.formatting import parse_rupees
from app.models import (Client, Department, LabTest, OrderItem, OrderTest, Panel, PanelItem, PriceList,
                        PriceListItem, ReferenceInterval, Referrer)
from app.models.catalogue import RESULT_TYPES
from app.services import ServiceError, identifiers
from app.services.branches import STATE_CODES


class InvalidInput(ServiceError):
    """One or more fields break a rule; `errors` maps each field to its message."""

    def __init__(self, errors: Mapping[str, str]):
        field, message = next(iter(errors.items()))
        super().__init__(message, field=field)
        self.errors = dict(errors)


class _Errors:
    """Collects one message per field so the user sees every problem in one answer."""

    def __init__(self) -> None:
        self.by_field: dict[str, str] = {}

    def add(self, field: str, message: str) -> None:
        self.by_field.setdefault(field, message)

    def has(self, *fields: str) -> bool:
        return any(f in self.by_field for f in fields)

    def raise_if_any(self) -> None:
        if self.by_field:
            raise InvalidInput(self.by_field)


# --- parsing helpers ------------------------------------------------------------------

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # PostgreSQL refuses NUL; none belong in a name


def _text(errors: _Errors, data: Mapping[str, Any], field: str, *, max_len: int,
          required: str | None = None) -> str:
    """A trimmed string; `required` is the message when it is empty."""
    value = str(data.get(field) or "").strip()
    if _CONTROL_RE.search(value):
        errors.add(field, "Remove the control characters.")
    elif required and not value:
        errors.add(field, required)
    elif len(value) > max_len:
        errors.add(field, f"At most {max_len} characters.")
    return value


def _whole_number(errors: _Errors, data: Mapping[str, Any], field: str, *, low: int, high: int,
                  default: int | None = None, message: str) -> int | None:
    raw = str(data.get(field) if data.get(field) is not None else "").strip()
    if not raw and default is not None:
        return default
    if not re.fullmatch(r"[0-9]{1,6}", raw) or not low <= int(raw) <= high:
        errors.add(field, message)
        return None
    return int(raw)


def _paise(errors: _Errors, data: Mapping[str, Any], field: str, *, required: str | None) -> int | None:
    """Rupees as typed ("1,250.50", "₹ 300") → paise, never negative."""
    raw = str(data.get(field) or "").strip()
    if not raw:
        if required:
            errors.add(field, required)
            return None
        return 0
    try:
        paise = parse_rupees(raw)
    except ValueError as err:
        errors.add(field, str(err))
        return None
    except ArithmeticError:  # "Infinity", "1e400": not an amount
        errors.add(field, "Enter an amount in rupees, like 250 or 250.50.")
        return None
    if paise < 0:
        errors.add(field, "The amount cannot be negative.")
        return None
    return paise


def _id(raw: Any) -> int | None:
    """A row id from a form value, or None (never an error for text or huge numbers)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    text = str(raw or "").strip()
    return int(text) if re.fullmatch(r"[0-9]{1,18}", text) else None


def _decimal(raw: Any) -> Decimal | None:
    """A finite decimal number, or None if the text is not one."""
    try:
        value = Decimal(str(raw).strip().replace(",", ""))
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def plain_number(value: Decimal | None) -> str:
    """13.5000 → "13.5", 100.0000 → "100" (how a limit is shown and put back in a form)."""
    if value is None:
        return ""
    return format(value.normalize(), "f")


def rupees_text(paise: int | None) -> str:
    """Paise → "1250.50", the way a price goes back into a form field."""
    if paise is None:
        return ""
    return f"{paise // 100}.{paise % 100:02d}"


# --- shared catalogue rules -------------------------------------------------------------

CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9-]*\Z")
CODE_MESSAGE = "Capital letters A–Z, digits and dashes only, e.g. HBA1C or LIPID-2."
SAC_RE = re.compile(r"^[0-9]{4,8}\Z")
GST_RATES = (0, 5, 12, 18, 28)
DEFAULT_SAC = "999316"  # medical laboratory services, GST exempt (india.md §1.6)


def _code(errors: _Errors, data: Mapping[str, Any], *, max_len: int, field: str = "code") -> str:
    code = str(data.get(field) or "").strip().upper()
    if not code:
        errors.add(field, "Enter a code.")
    elif len(code) > max_len:
        errors.add(field, f"At most {max_len} characters.")
    elif not CODE_RE.match(code):
        errors.add(field, CODE_MESSAGE)
    return code


def _sac_code(errors: _Errors, data: Mapping[str, Any]) -> str:
    sac = str(data.get("sac_code") or "").strip() or DEFAULT_SAC
    if not SAC_RE.match(sac):
        errors.add("sac_code", "A SAC code is 4 to 8 digits, e.g. 999316 for laboratory services.")
    return sac


def _gst_rate(errors: _Errors, data: Mapping[str, Any]) -> Decimal | None:
    raw = str(data.get("gst_rate") if data.get("gst_rate") is not None else "").strip().rstrip("%") or "0"
    rate = _decimal(raw)
    if rate is None or rate not in GST_RATES:
        errors.add("gst_rate", "The GST rate must be 0, 5, 12, 18 or 28 %.")
        return None
    return rate.quantize(Decimal("0.01"))


def _code_in_use(code: str) -> str | None:
    """What already answers to this code in the catalogue ("test" / "panel"), if anything.

    Tests and panels share one code space because reception orders by code."""
    if db.session.execute(select(LabTest.id).where(LabTest.code == code)).first():
        return "test"
    if db.session.execute(select(Panel.id).where(Panel.code == code)).first():
        return "panel"
    return None


def _check_new_code(errors: _Errors, code: str, *, current: str | None, ordered: bool) -> None:
    """A new or changed code must be free, and a code that orders carry cannot change."""
    if errors.has("code") or code == current:
        return
    if current is not None and ordered:
        errors.add("code", f"The code cannot change: orders already use {current}.")
        return
    taken_by = _code_in_use(code)
    if taken_by:
        errors.add("code", f"A {taken_by} with the code {code} already exists.")


# --- tests ------------------------------------------------------------------------------

LOINC_RE = re.compile(r"^([0-9]{1,7})-([0-9])\Z")
UCUM_RE = re.compile(r"^[!-~]+\Z")  # UCUM case-sensitive syntax: printable ASCII, no spaces
MAX_TAT_HOURS = 2160  # 90 days (mycobacterial cultures)
TEST_AUDITED = ("code", "name", "loinc", "department_id", "specimen", "container", "unit", "result_type", "choices",
                "decimals", "method", "tat_hours", "price_paise", "sac_code", "gst_rate", "orderable", "active",
                "autoverify", "delta_abs", "delta_pct")
DELTA_PCT_MAX = Decimal("10000")  # Numeric(6, 2)


def loinc_is_valid(code: str) -> bool:
    """LOINC codes end in a mod-10 check digit (the Luhn algorithm, loinc.org "LOINC check digit")."""
    match = LOINC_RE.match(code)
    return bool(match) and luhn.calc_check_digit(match.group(1)) == match.group(2)


def _ucum_is_plausible(unit: str) -> bool:
    return bool(UCUM_RE.match(unit)) and unit.count("{") == unit.count("}") and unit.count("[") == unit.count("]")


def _answers(errors: _Errors, data: Mapping[str, Any], result_type: str) -> str | None:
    """The answer list of a choice test, "Negative|Positive"; other result types have none."""
    raw = _text(errors, data, "choices", max_len=400)
    if result_type != "choice" or errors.has("choices"):
        return None
    answers = [a.strip() for a in raw.split("|") if a.strip()]
    if len(answers) < 2:
        errors.add("choices", "A choice result needs at least two answers separated by |, e.g. Negative|Positive.")
        return None
    folded = [a.casefold() for a in answers]
    if len(set(folded)) != len(folded):
        errors.add("choices", "Give each answer only once.")
        return None
    return "|".join(answers)


def _department_id(errors: _Errors, data: Mapping[str, Any]) -> int | None:
    raw = data.get("department_id")
    dept_id = _id(raw)
    if dept_id is None or db.session.execute(select(Department.id).where(Department.id == dept_id)).first() is None:
        errors.add("department_id", "Choose a department.")
        return None
    return dept_id


def _test_values(data: Mapping[str, Any], test: LabTest | None) -> dict[str, Any]:
    errors = _Errors()
    code = _code(errors, data, max_len=32)
    name = _text(errors, data, "name", max_len=200, required="Enter the test name.")
    loinc = _text(errors, data, "loinc", max_len=16)
    if loinc and not errors.has("loinc"):
        if not LOINC_RE.match(loinc):
            errors.add("loinc", "A LOINC code looks like 718-7: up to 7 digits, a dash, a check digit.")
        elif not loinc_is_valid(loinc):
            errors.add("loinc", "The LOINC check digit does not match; check the code for a typing mistake.")
    department_id = _department_id(errors, data)
    specimen = _text(errors, data, "specimen", max_len=40, required="Enter the specimen, e.g. Serum.")
    container = _text(errors, data, "container", max_len=40, required="Enter the container, e.g. Plain or EDTA.")
    unit = _text(errors, data, "unit", max_len=32)
    if unit and not errors.has("unit") and not _ucum_is_plausible(unit):
        errors.add("unit", "Write the unit in UCUM, without spaces: mg/dL, 10*3/uL, u[IU]/mL, %.")
    result_type = str(data.get("result_type") or "numeric")
    if result_type not in RESULT_TYPES:
        errors.add("result_type", "Choose numeric, choice or text.")
    choices = _answers(errors, data, result_type)
    decimals = _whole_number(errors, data, "decimals", low=0, high=4, default=0,
                             message="Decimals shown must be 0 to 4.")
    method = _text(errors, data, "method", max_len=100)
    tat_hours = _whole_number(errors, data, "tat_hours", low=1, high=MAX_TAT_HOURS, default=24,
                              message=f"The turnaround is a whole number of hours, 1 to {MAX_TAT_HOURS}.")
    price = _paise(errors, data, "price", required="Enter the price in rupees (0 if it is free).")
    sac_code = _sac_code(errors, data)
    gst_rate = _gst_rate(errors, data)
    delta_abs, delta_pct = _delta_limit(errors, data, "delta_abs"), _delta_limit(errors, data, "delta_pct")
    _check_new_code(errors, code, current=test.code if test else None,
                    ordered=test is not None and lab_test_is_ordered(test))
    errors.raise_if_any()
    return {
        "code": code, "name": name, "loinc": loinc or None, "department_id": department_id, "specimen": specimen,
        "container": container, "unit": unit or None, "result_type": result_type, "choices": choices,
        "decimals": decimals, "method": method, "tat_hours": tat_hours, "price_paise": price, "sac_code": sac_code,
        "gst_rate": gst_rate, "orderable": bool(data.get("orderable")), "active": bool(data.get("active")),
        "autoverify": bool(data.get("autoverify")), "delta_abs": delta_abs, "delta_pct": delta_pct,
    }


def _delta_limit(errors: _Errors, data: Mapping[str, Any], field: str) -> Decimal | None:
    """A delta-check limit: empty (no check), or a number above zero — in the test's unit for
    `delta_abs`, in percent of the previous value for `delta_pct`."""
    raw = str(data.get(field) if data.get(field) is not None else "").strip().rstrip("%").strip()
    if not raw:
        return None
    value = _decimal(raw)
    places, ceiling = (Decimal("0.01"), DELTA_PCT_MAX) if field == "delta_pct" else (Decimal("0.0001"), LIMIT_MAX)
    if value is None:
        errors.add(field, "Enter a number, like 2 or 2.5, or leave it empty for no delta check.")
    elif value <= 0:
        errors.add(field, "A delta limit must be above zero (leave it empty for no delta check).")
    elif value >= ceiling or value != value.quantize(places):
        errors.add(field, f"Below {plain_number(ceiling)}, with at most {len(str(places)) - 2} decimals.")
    else:
        return value.quantize(places)
    return None


def lab_test_is_ordered(test: LabTest) -> bool:
    """Whether any order carries this test (on its own or inside a panel)."""
    as_item = select(OrderItem.id).where(OrderItem.test_id == test.id).limit(1)
    as_test = select(OrderTest.id).where(OrderTest.test_id == test.id).limit(1)
    return db.session.execute(as_item).first() is not None or db.session.execute(as_test).first() is not None


def create_test(data: Mapping[str, Any]) -> LabTest:
    test = LabTest(**_test_values(data, None))
    audit.add_created(test, entity_type="lab_test", fields=TEST_AUDITED)
    return test


def update_test(test: LabTest, data: Mapping[str, Any]) -> LabTest:
    """Edit a test. Tests are never deleted (orders and results point at them): deactivate."""
    values = _test_values(data, test)
    audit.apply_changes(test, values, entity_type="lab_test", fields=TEST_AUDITED)
    return test


def lab_test_form_data(test: LabTest) -> dict[str, Any]:
    """A test as its edit form shows it (prices in rupees)."""
    data = {name: getattr(test, name) for name in TEST_AUDITED}
    data.update(price=rupees_text(test.price_paise), gst_rate=str(int(test.gst_rate)), decimals=str(test.decimals),
                tat_hours=str(test.tat_hours), loinc=test.loinc or "", unit=test.unit or "", choices=test.choices or "",
                delta_abs=plain_number(test.delta_abs), delta_pct=plain_number(test.delta_pct))
    return data


def list_departments() -> list[Department]:
    return list(db.session.execute(select(Department).order_by(Department.sort_order, Department.name)).scalars())


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def list_tests(*, query: str = "", department_id: int | None = None, status: str = "") -> list[LabTest]:
    """Tests for the admin list: search by code, name or LOINC; filter by department and status."""
    stmt = (select(LabTest).join(LabTest.department).options(joinedload(LabTest.department))
            .order_by(Department.sort_order, Department.name, LabTest.name))
    query = query.strip()[:60]
    if query:
        pattern = _like(query)
        stmt = stmt.where(or_(LabTest.code.ilike(pattern), LabTest.name.ilike(pattern), LabTest.loinc.ilike(pattern)))
    if department_id:
        stmt = stmt.where(LabTest.department_id == department_id)
    if status in ("active", "inactive"):
        stmt = stmt.where(LabTest.active.is_(status == "active"))
    return list(db.session.execute(stmt).scalars())


def catalogue_choices() -> dict[str, list[str]]:
    """Specimens and containers already in use, offered as suggestions on the test form."""
    specimens = db.session.execute(select(LabTest.specimen).distinct().order_by(LabTest.specimen)).scalars()
    containers = db.session.execute(select(LabTest.container).distinct().order_by(LabTest.container)).scalars()
    return {"specimens": list(specimens), "containers": list(containers)}


# --- reference intervals --------------------------------------------------------------

SEXES = ("any", "male", "female")
AGE_UNITS = ("years", "months", "days")
DAYS_PER_YEAR = 365  # the catalogue's convention (catalogue_data: a year is 365 days)
MAX_AGE_DAYS = 150 * DAYS_PER_YEAR
LIMIT_MAX = Decimal("100000000")  # Numeric(12, 4): eight digits before the point
INTERVAL_AUDITED = ("test_id", "sex", "age_min_days", "age_max_days", "low", "high", "critical_low",
                    "critical_high", "text", "source")


def age_in_days(value: int, unit: str) -> int:
    """An age typed as days, months or years → days. A month is a twelfth of 365 days,
    rounded half up (2 months = 61 days, 6 months = 183, as in catalogue_data)."""
    if unit == "years":
        return value * DAYS_PER_YEAR
    if unit == "months":
        return (value * DAYS_PER_YEAR + 6) // 12
    return value


def age_parts(days: int) -> tuple[int, str]:
    """Days → the largest unit that says it exactly: 6570 → (18, "years"), 61 → (2, "months")."""
    if days % DAYS_PER_YEAR == 0:
        return days // DAYS_PER_YEAR, "years"
    months = round(days * 12 / DAYS_PER_YEAR)
    if months and age_in_days(months, "months") == days:
        return months, "months"
    return days, "days"


def _age_text(days: int) -> str:
    value, unit = age_parts(days)
    return f"{value} {unit[:-1] if value == 1 else unit}"


def age_band_label(age_min_days: int, age_max_days: int) -> str:
    """"All ages", "18 years and over", "under 28 days", "1 year to 12 years"."""
    if age_min_days == 0 and age_max_days >= MAX_AGE_DAYS:
        return "All ages"
    if age_max_days >= MAX_AGE_DAYS:
        return f"{_age_text(age_min_days)} and over"
    if age_min_days == 0:
        return f"under {_age_text(age_max_days)}"
    return f"{_age_text(age_min_days)} to under {_age_text(age_max_days)}"


def _age(errors: _Errors, data: Mapping[str, Any], field: str, *, default: int) -> int | None:
    raw = str(data.get(field) if data.get(field) is not None else "").strip()
    unit = str(data.get(f"{field}_unit") or "years")
    if unit not in AGE_UNITS:
        errors.add(field, "Choose days, months or years.")
        return None
    if not raw:
        return default
    if not re.fullmatch(r"[0-9]{1,5}", raw):
        errors.add(field, "Enter a whole number of days, months or years.")
        return None
    return age_in_days(int(raw), unit)


def _limit(errors: _Errors, data: Mapping[str, Any], field: str) -> Decimal | None:
    raw = str(data.get(field) if data.get(field) is not None else "").strip()
    if not raw:
        return None
    value = _decimal(raw)
    if value is None:
        errors.add(field, "Enter a number, like 13.5.")
        return None
    if abs(value) >= LIMIT_MAX or value != value.quantize(Decimal("0.0001")):
        errors.add(field, "At most 8 digits before the decimal point and 4 after it.")
        return None
    return value.quantize(Decimal("0.0001"))


def _sexes_overlap(a: str, b: str) -> bool:
    return a == b or "any" in (a, b)


def _interval_values(test: LabTest, data: Mapping[str, Any], interval: ReferenceInterval | None) -> dict[str, Any]:
    errors = _Errors()
    sex = str(data.get("sex") or "any")
    if sex not in SEXES:
        errors.add("sex", "Choose any, male or female.")
    age_min = _age(errors, data, "age_from", default=0)
    age_max = _age(errors, data, "age_to", default=MAX_AGE_DAYS)
    if age_min is not None and age_max is not None:
        if age_max > MAX_AGE_DAYS:
            errors.add("age_to", "The band can end at 150 years at most.")
        elif age_max <= age_min:
            errors.add("age_to", "The band must end after it starts (the end age is not included).")
    low, high = _limit(errors, data, "low"), _limit(errors, data, "high")
    critical_low, critical_high = _limit(errors, data, "critical_low"), _limit(errors, data, "critical_high")
    if low is not None and high is not None and low >= high:
        errors.add("high", f"The high limit must be above the low limit ({plain_number(low)}).")
    floor = low if low is not None else high
    if critical_low is not None and floor is not None and critical_low >= floor:
        which = "low" if low is not None else "high"
        errors.add("critical_low", f"The critical low must be below the {which} limit ({plain_number(floor)}).")
    ceiling = high if high is not None else low
    if critical_high is not None and ceiling is not None and critical_high <= ceiling:
        which = "high" if high is not None else "low"
        errors.add("critical_high", f"The critical high must be above the {which} limit ({plain_number(ceiling)}).")
    if critical_low is not None and critical_high is not None and critical_low >= critical_high:
        errors.add("critical_high", "The critical high must be above the critical low.")
    text = _text(errors, data, "text", max_len=200)
    source = _text(errors, data, "source", max_len=300,
                   required="Name the source of the interval (insert, textbook, own study).")
    if low is None and high is None and not text and not errors.has("low", "high", "text"):
        errors.add("low", "Enter a low or high limit, or a text such as Negative.")
    if not errors.has("sex", "age_from", "age_to"):
        overlap = _overlapping_interval(test, sex, age_min, age_max, exclude_id=interval.id if interval else None)
        if overlap is not None:
            errors.add("age_from", f"Overlaps the {overlap.sex} interval for "
                       f"{age_band_label(overlap.age_min_days, overlap.age_max_days).lower()}; "
                       "bands of the same sex must not overlap (an “any” band overlaps both sexes).")
    errors.raise_if_any()
    return {"sex": sex, "age_min_days": age_min, "age_max_days": age_max, "low": low, "high": high,
            "critical_low": critical_low, "critical_high": critical_high, "text": text or None, "source": source}


def _overlapping_interval(test: LabTest, sex: str, age_min: int, age_max: int, *,
                          exclude_id: int | None) -> ReferenceInterval | None:
    stmt = select(ReferenceInterval).where(ReferenceInterval.test_id == test.id,
                                           ReferenceInterval.age_min_days < age_max,
                                           ReferenceInterval.age_max_days > age_min)
    if exclude_id is not None:
        stmt = stmt.where(ReferenceInterval.id != exclude_id)
    for other in db.session.execute(stmt.order_by(ReferenceInterval.age_min_days)).scalars():
        if _sexes_overlap(sex, other.sex):
            return other
    return None


def add_interval(test: LabTest, data: Mapping[str, Any]) -> ReferenceInterval:
    interval = ReferenceInterval(test_id=test.id, **_interval_values(test, data, None))
    audit.add_created(interval, entity_type="reference_interval", fields=INTERVAL_AUDITED)
    return interval


def update_interval(interval: ReferenceInterval, data: Mapping[str, Any]) -> ReferenceInterval:
    values = _interval_values(interval.test, data, interval)
    audit.apply_changes(interval, values, entity_type="reference_interval", fields=INTERVAL_AUDITED)
    return interval


def delete_interval(interval: ReferenceInterval) -> None:
    """Intervals may be deleted (results keep a snapshot of the interval they were flagged with)."""
    audit.record("reference_interval.deleted", entity_type="reference_interval", entity_id=interval.id,
                 before=audit.snapshot(interval, INTERVAL_AUDITED))
    db.session.delete(interval)
    db.session.flush()


def intervals_of(test: LabTest) -> list[ReferenceInterval]:
    return list(db.session.execute(
        select(ReferenceInterval).where(ReferenceInterval.test_id == test.id)
        .order_by(ReferenceInterval.age_min_days, ReferenceInterval.sex, ReferenceInterval.id)).scalars())


def interval_form_data(interval: ReferenceInterval) -> dict[str, Any]:
    """An interval as its edit row shows it (ages back in the unit that says them exactly)."""
    age_from, age_from_unit = age_parts(interval.age_min_days)
    age_to, age_to_unit = age_parts(interval.age_max_days)
    return {"sex": interval.sex, "age_from": str(age_from), "age_from_unit": age_from_unit, "age_to": str(age_to),
            "age_to_unit": age_to_unit, "low": plain_number(interval.low), "high": plain_number(interval.high),
            "critical_low": plain_number(interval.critical_low), "critical_high": plain_number(interval.critical_high),
            "text": interval.text or "", "source": interval.source}


# --- panels -----------------------------------------------------------------------------

PANEL_AUDITED = ("code", "name", "price_paise", "sac_code", "gst_rate", "is_package", "active")


def panel_is_ordered(panel: Panel) -> bool:
    return db.session.execute(select(OrderItem.id).where(OrderItem.panel_id == panel.id).limit(1)).first() is not None


def _panel_values(data: Mapping[str, Any], panel: Panel | None) -> tuple[dict[str, Any], _Errors]:
    errors = _Errors()
    code = _code(errors, data, max_len=32)
    name = _text(errors, data, "name", max_len=200, required="Enter the panel name.")
    price = _paise(errors, data, "price", required="Enter the price in rupees.")
    sac_code = _sac_code(errors, data)
    gst_rate = _gst_rate(errors, data)
    _check_new_code(errors, code, current=panel.code if panel else None,
                    ordered=panel is not None and panel_is_ordered(panel))
    return ({"code": code, "name": name, "price_paise": price, "sac_code": sac_code, "gst_rate": gst_rate,
             "is_package": bool(data.get("is_package")), "active": bool(data.get("active"))}, errors)


def _member_test(errors: _Errors, field: str, code: str) -> LabTest | None:
    """A test of this organization that may go into a panel (orderable on its own or not)."""
    test = db.session.execute(select(LabTest).where(LabTest.code == code)).scalar_one_or_none()
    if test is None:
        errors.add(field, f"There is no test with the code {code}.")
    elif not test.active:
        errors.add(field, f"{code} is inactive; activate it before adding it to a panel.")
    return test


def _member_codes(errors: _Errors, data: Mapping[str, Any]) -> list[LabTest]:
    raw = _text(errors, data, "test_codes", max_len=2000, required="List the panel's tests by code, e.g. HB, WBC, PLT.")
    codes = [c for c in re.split(r"[\s,;|]+", raw.upper()) if c]
    if errors.has("test_codes"):
        return []
    repeated = sorted({c for c in codes if codes.count(c) > 1})
    if repeated:
        errors.add("test_codes", f"A test can be in a panel only once: {', '.join(repeated)}.")
        return []
    tests = {t.code: t for t in db.session.execute(select(LabTest).where(LabTest.code.in_(codes))).scalars()}
    unknown = [c for c in codes if c not in tests]
    inactive = [c for c in codes if c in tests and not tests[c].active]
    if unknown:
        errors.add("test_codes", f"No test has the code {', '.join(unknown)}.")
    elif inactive:
        errors.add("test_codes", f"Inactive tests cannot be added: {', '.join(inactive)}.")
    return [tests[c] for c in codes if c in tests]


def _member_codes_of(panel: Panel) -> list[str]:
    return [item.test.code for item in sorted(panel.items, key=lambda i: (i.position, i.id or 0))]


def create_panel(data: Mapping[str, Any]) -> Panel:
    """A new panel with its member tests (codes in order)."""
    values, errors = _panel_values(data, None)
    members = _member_codes(errors, data)
    errors.raise_if_any()
    panel = Panel(**values)
    for position, test in enumerate(members, start=1):
        panel.items.append(PanelItem(test_id=test.id, test=test, position=position))
    db.session.add(panel)
    db.session.flush()
    audit.record("panel.created", entity_type="panel", entity_id=panel.id,
                 after={**audit.snapshot(panel, PANEL_AUDITED), "tests": [t.code for t in members]})
    return panel


def update_panel(panel: Panel, data: Mapping[str, Any]) -> Panel:
    values, errors = _panel_values(data, panel)
    errors.raise_if_any()
    audit.apply_changes(panel, values, entity_type="panel", fields=PANEL_AUDITED)
    return panel


def _ordered_items(panel: Panel) -> list[PanelItem]:
    return sorted(panel.items, key=lambda i: (i.position, i.id))


def _record_members(panel: Panel, action: str, before: list[str]) -> None:
    after = _member_codes_of(panel)
    audit.record(action, entity_type="panel", entity_id=panel.id, before={"tests": before}, after={"tests": after})


def add_panel_test(panel: Panel, data: Mapping[str, Any]) -> PanelItem:
    """Append a test (by code) to a panel; a test is in a panel at most once."""
    errors = _Errors()
    code = _code(errors, data, max_len=32, field="test_code")
    test = None if errors.has("test_code") else _member_test(errors, "test_code", code)
    if test is not None and any(item.test_id == test.id for item in panel.items):
        errors.add("test_code", f"{code} is already in this panel.")
    errors.raise_if_any()
    before = _member_codes_of(panel)
    items = _ordered_items(panel)
    item = PanelItem(test_id=test.id, test=test, position=(items[-1].position + 1) if items else 1)
    panel.items.append(item)
    db.session.flush()
    _record_members(panel, "panel.test_added", before)
    return item


def remove_panel_test(panel: Panel, item: PanelItem) -> None:
    if len(panel.items) <= 1:
        raise InvalidInput({"test_code": "A panel needs at least one test; deactivate the panel instead."})
    before = _member_codes_of(panel)
    panel.items.remove(item)
    db.session.flush()
    for position, remaining in enumerate(_ordered_items(panel), start=1):
        remaining.position = position
    _record_members(panel, "panel.test_removed", before)


def move_panel_test(panel: Panel, item: PanelItem, offset: int) -> None:
    """Move a member up (offset -1) or down (+1) in the panel's report order."""
    items = _ordered_items(panel)
    index = items.index(item)
    target = min(max(index + offset, 0), len(items) - 1)
    if target == index:
        return
    before = _member_codes_of(panel)
    items.insert(target, items.pop(index))
    for position, member in enumerate(items, start=1):
        member.position = position
    db.session.flush()
    _record_members(panel, "panel.tests_reordered", before)


def panel_members(panel: Panel) -> list[PanelItem]:
    return list(db.session.execute(
        select(PanelItem).where(PanelItem.panel_id == panel.id).options(joinedload(PanelItem.test))
        .order_by(PanelItem.position, PanelItem.id)).scalars())


def panel_form_data(panel: Panel) -> dict[str, Any]:
    data = {name: getattr(panel, name) for name in PANEL_AUDITED}
    data.update(price=rupees_text(panel.price_paise), gst_rate=str(int(panel.gst_rate)))
    return data


def list_panels() -> list[Panel]:
    return list(db.session.execute(
        select(Panel).options(selectinload(Panel.items).joinedload(PanelItem.test))
        .order_by(Panel.is_package, Panel.name)).scalars())


def lab_test_codes() -> list[str]:
    """Active test codes, offered as suggestions where a test is picked by code."""
    return list(db.session.execute(select(LabTest.code).where(LabTest.active.is_(True)).order_by(LabTest.code)).scalars())


# --- referrers ----------------------------------------------------------------------------

REFERRER_KINDS = ("doctor", "hospital", "self")
REFERRER_AUDITED = ("name", "kind", "qualification", "phone", "email", "active", "notify_reports")


def normalize_phone(raw: str) -> str:
    """A referrer's phone → E.164. A mobile as reception types it, or a landline with its
    STD code (080 2345 6789): doctors' clinics and hospitals often give a landline.
    Raises ValueError with a message for the user."""
    try:
        return identifiers.normalize_mobile(raw)
    except ValueError:
        pass
    text = (raw or "").strip()
    try:
        number = phonenumbers.parse(text, "IN")
    except phonenumbers.NumberParseException:
        raise ValueError("That is not a phone number.") from None
    if len(text) > 32 or not phonenumbers.is_valid_number(number):
        raise ValueError("That is not a valid phone number: a 10-digit mobile, or a landline with its STD code.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _email(errors: _Errors, data: Mapping[str, Any]) -> str | None:
    raw = _text(errors, data, "email", max_len=254)
    if not raw or errors.has("email"):
        return None
    try:
        return validate_email(raw, check_deliverability=False).normalized
    except EmailNotValidError:
        errors.add("email", "That is not a valid email address.")
        return None


def _referrer_values(data: Mapping[str, Any]) -> dict[str, Any]:
    errors = _Errors()
    name = _text(errors, data, "name", max_len=200, required="Enter the doctor's or hospital's name.")
    kind = str(data.get("kind") or "doctor")
    if kind not in REFERRER_KINDS:
        errors.add("kind", "Choose doctor, hospital or self.")
    qualification = _text(errors, data, "qualification", max_len=100)
    phone_raw = _text(errors, data, "phone", max_len=32)
    phone = None
    if phone_raw and not errors.has("phone"):
        try:
            phone = normalize_phone(phone_raw)
        except ValueError as err:
            errors.add("phone", str(err))
    email = _email(errors, data)
    errors.raise_if_any()
    return {"name": name, "kind": kind, "qualification": qualification, "phone": phone, "email": email,
            "active": bool(data.get("active")), "notify_reports": bool(data.get("notify_reports"))}


def create_referrer(data: Mapping[str, Any]) -> Referrer:
    referrer = Referrer(**_referrer_values(data))
    audit.add_created(referrer, entity_type="referrer", fields=REFERRER_AUDITED)
    return referrer


def update_referrer(referrer: Referrer, data: Mapping[str, Any]) -> Referrer:
    values = _referrer_values(data)
    audit.apply_changes(referrer, values, entity_type="referrer", fields=REFERRER_AUDITED)
    return referrer


def referrer_form_data(referrer: Referrer) -> dict[str, Any]:
    data = {name: getattr(referrer, name) for name in REFERRER_AUDITED}
    data.update(phone=identifiers.display_mobile(referrer.phone), email=referrer.email or "")
    return data


def list_referrers(*, query: str = "") -> list[Referrer]:
    stmt = select(Referrer).order_by(Referrer.active.desc(), Referrer.name)
    query = query.strip()[:60]
    if query:
        pattern = _like(query)
        digits = re.sub(r"\D", "", query)
        conditions = [Referrer.name.ilike(pattern), Referrer.email.ilike(pattern)]
        if len(digits) >= 4:
            conditions.append(Referrer.phone.contains(digits, autoescape=True))
        stmt = stmt.where(or_(*conditions))
    return list(db.session.execute(stmt).scalars())


# --- price lists ----------------------------------------------------------------------------

PRICE_LIST_AUDITED = ("name", "active")
PRICE_ITEM_AUDITED = ("price_list_id", "test_id", "panel_id", "price_paise")


@dataclass(frozen=True)
class PriceRow:
    """One override in a price list, with what it overrides."""

    item: PriceListItem
    kind: str  # "test" | "panel"
    code: str
    name: str
    catalogue_price_paise: int


def _price_list_values(data: Mapping[str, Any], price_list: PriceList | None) -> dict[str, Any]:
    errors = _Errors()
    name = _text(errors, data, "name", max_len=100, required="Name the price list, e.g. Corporate 2025.")
    if name and not errors.has("name"):
        same = select(PriceList.id).where(func.lower(PriceList.name) == name.lower())
        if price_list is not None:
            same = same.where(PriceList.id != price_list.id)
        if db.session.execute(same).first() is not None:
            errors.add("name", "Another price list already has this name.")
    errors.raise_if_any()
    return {"name": name, "active": bool(data.get("active"))}


def create_price_list(data: Mapping[str, Any]) -> PriceList:
    price_list = PriceList(**_price_list_values(data, None))
    audit.add_created(price_list, entity_type="price_list", fields=PRICE_LIST_AUDITED)
    return price_list


def update_price_list(price_list: PriceList, data: Mapping[str, Any]) -> PriceList:
    values = _price_list_values(data, price_list)
    audit.apply_changes(price_list, values, entity_type="price_list", fields=PRICE_LIST_AUDITED)
    return price_list


def _priced_target(errors: _Errors, code: str) -> tuple[str, int] | None:
    """The panel or test a code names. A panel wins when both share a code, as when
    reception orders by code (orders.resolve)."""
    panel_id = db.session.execute(select(Panel.id).where(Panel.code == code)).scalar()
    if panel_id is not None:
        return "panel", panel_id
    test_id = db.session.execute(select(LabTest.id).where(LabTest.code == code)).scalar()
    if test_id is not None:
        return "test", test_id
    errors.add("code", f"No test or panel has the code {code}.")
    return None


def add_price(price_list: PriceList, data: Mapping[str, Any]) -> PriceListItem:
    """Give a test or panel (by code) its own price in this list."""
    errors = _Errors()
    code = _code(errors, data, max_len=32)
    target = None if errors.has("code") else _priced_target(errors, code)
    price = _paise(errors, data, "price", required="Enter the price in rupees.")
    if target is not None:
        kind, target_id = target
        column = PriceListItem.test_id if kind == "test" else PriceListItem.panel_id
        listed = select(PriceListItem.id).where(PriceListItem.price_list_id == price_list.id, column == target_id)
        if db.session.execute(listed).first() is not None:
            errors.add("code", f"{code} is already in this list; change its price in the table.")
    errors.raise_if_any()
    kind, target_id = target
    item = PriceListItem(price_list_id=price_list.id, price_paise=price,
                         test_id=target_id if kind == "test" else None, panel_id=target_id if kind == "panel" else None)
    db.session.add(item)
    db.session.flush()
    audit.record("price_list_item.created", entity_type="price_list_item", entity_id=item.id,
                 after={**audit.snapshot(item, PRICE_ITEM_AUDITED), "code": code})
    return item


def change_price(item: PriceListItem, data: Mapping[str, Any]) -> PriceListItem:
    errors = _Errors()
    price = _paise(errors, data, "price", required="Enter the price in rupees.")
    errors.raise_if_any()
    before = audit.snapshot(item, PRICE_ITEM_AUDITED)
    item.price_paise = price
    old, new = audit.changes(before, audit.snapshot(item, PRICE_ITEM_AUDITED))
    if new:
        audit.record("price_list_item.updated", entity_type="price_list_item", entity_id=item.id, before=old, after=new)
    return item


def remove_price(item: PriceListItem) -> None:
    audit.record("price_list_item.deleted", entity_type="price_list_item", entity_id=item.id,
                 before=audit.snapshot(item, PRICE_ITEM_AUDITED))
    db.session.delete(item)
    db.session.flush()


def price_rows(price_list: PriceList) -> list[PriceRow]:
    items = list(db.session.execute(
        select(PriceListItem).where(PriceListItem.price_list_id == price_list.id)).scalars())
    tests = {t.id: t for t in db.session.execute(
        select(LabTest).where(LabTest.id.in_([i.test_id for i in items if i.test_id]))).scalars()}
    panels = {p.id: p for p in db.session.execute(
        select(Panel).where(Panel.id.in_([i.panel_id for i in items if i.panel_id]))).scalars()}
    rows = []
    for item in items:
        target, kind = (tests[item.test_id], "test") if item.test_id else (panels[item.panel_id], "panel")
        rows.append(PriceRow(item, kind, target.code, target.name, target.price_paise))
    return sorted(rows, key=lambda r: (r.kind != "panel", r.code))


def list_price_lists() -> list[tuple[PriceList, int]]:
    """Price lists with the number of prices each overrides."""
    counts = dict(db.session.execute(
        select(PriceListItem.price_list_id, func.count(PriceListItem.id)).group_by(PriceListItem.price_list_id)).all())
    lists = db.session.execute(select(PriceList).order_by(PriceList.active.desc(), PriceList.name)).scalars()
    return [(pl, counts.get(pl.id, 0)) for pl in lists]


def orderable_codes() -> list[str]:
    """Panel and test codes, offered as suggestions where a price is set by code."""
    panels = db.session.execute(select(Panel.code).order_by(Panel.code)).scalars()
    tests = db.session.execute(select(LabTest.code).order_by(LabTest.code)).scalars()
    return sorted(set(panels) | set(tests))


# --- clients ---------------------------------------------------------------------------------

CLIENT_AUDITED = ("code", "name", "gstin", "state_code", "address", "price_list_id", "credit_limit_paise",
                  "credit_days", "active")
_GSTIN_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# GST state codes stdnum 2.2 does not know yet. See ../shared/reference/india.md §2.1: its
# table stops at 37, but GSTINs are issued for 38 (Ladakh) and 97 (Other Territory).
GSTIN_STATES_BEYOND_STDNUM = ("38", "97")
GSTIN_RE = re.compile(r"^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][0-9A-Z]{3}\Z")  # as stdnum 2.2


def validate_gstin(raw: str) -> str:
    """A GSTIN → its compact form (upper case, no spaces). Raises ValueError with a message.

    python-stdnum checks length, format, state, the embedded PAN and the Luhn mod-36 check
    character. Its state table stops at 37, so for Ladakh (38) and Other Territory (97) the
    same checks run here, with stdnum's PAN and Luhn modules, instead of refusing a real
    GSTIN (../shared/reference/india.md §2.1)."""
    number = stdnum_gstin.compact(raw or "")
    if len(number) != 15:
        raise ValueError("A GSTIN has 15 characters.")
    if not GSTIN_RE.match(number):
        raise ValueError("A GSTIN is 2 digits of state, the 10-character PAN, 1 character, Z and a check character.")
    if number[:2] not in STATE_CODES:
        raise ValueError(f"{number[:2]} is not a GST state code.")
    if number[12] == "0" or number[13] != "Z":
        raise ValueError("The 13th character cannot be 0 and the 14th is always Z.")
    try:
        stdnum_pan.validate(number[2:12])
    except ValidationError:
        raise ValueError("The PAN inside the GSTIN (characters 3 to 12) is not valid.") from None
    try:
        if number[:2] in GSTIN_STATES_BEYOND_STDNUM:
            luhn.validate(number, _GSTIN_ALPHABET)
        else:
            stdnum_gstin.validate(number)
    except InvalidChecksum:
        raise ValueError("The GSTIN's check character does not match; check it for a typing mistake.") from None
    except ValidationError:
        raise ValueError("That is not a valid GSTIN.") from None
    return number


def _price_list_id(errors: _Errors, data: Mapping[str, Any], *, current: int | None) -> int | None:
    """A price list of this lab; an inactive one only if the client already has it."""
    raw = data.get("price_list_id")
    if raw in (None, "", "None"):
        return None
    list_id = _id(raw)
    active = None if list_id is None else db.session.execute(
        select(PriceList.active).where(PriceList.id == list_id)).scalar_one_or_none()
    if active is None:
        errors.add("price_list_id", "Choose one of the lab's price lists, or none.")
        return None
    if not active and list_id != current:
        errors.add("price_list_id", "This price list is inactive; activate it first or choose another.")
        return None
    return list_id


def _client_values(data: Mapping[str, Any], client: Client | None) -> dict[str, Any]:
    errors = _Errors()
    code = _code(errors, data, max_len=16)
    if code and not errors.has("code") and (client is None or code != client.code):
        if db.session.execute(select(Client.id).where(Client.code == code)).first() is not None:
            errors.add("code", "Another client already uses this code.")
    name = _text(errors, data, "name", max_len=200, required="Enter the client's name.")
    gstin_raw = _text(errors, data, "gstin", max_len=20)
    gstin = None
    if gstin_raw and not errors.has("gstin"):
        try:
            gstin = validate_gstin(gstin_raw)
        except ValueError as err:
            errors.add("gstin", str(err))
    state = str(data.get("state_code") or "").strip()
    state = state.zfill(2) if state.isdigit() else state
    if not state and gstin:
        state = gstin[:2]  # a registered client's state is the one its GSTIN was issued in
    if state not in STATE_CODES:
        errors.add("state_code", "Enter the two-digit GST state code, e.g. 29 for Karnataka.")
    elif gstin and gstin[:2] != state:
        errors.add("state_code", f"The GSTIN was issued in state {gstin[:2]}; the state code must match it.")
    address = _text(errors, data, "address", max_len=1000)
    price_list_id = _price_list_id(errors, data, current=client.price_list_id if client else None)
    credit_limit = _paise(errors, data, "credit_limit", required=None)
    credit_days = _whole_number(errors, data, "credit_days", low=0, high=365, default=30,
                                message="Credit days must be a whole number from 0 to 365.")
    errors.raise_if_any()
    return {"code": code, "name": name, "gstin": gstin, "state_code": state, "address": address,
            "price_list_id": price_list_id, "credit_limit_paise": credit_limit, "credit_days": credit_days,
            "active": bool(data.get("active"))}


def create_client(data: Mapping[str, Any]) -> Client:
    client = Client(**_client_values(data, None))
    audit.add_created(client, entity_type="client", fields=CLIENT_AUDITED)
    return client


def update_client(client: Client, data: Mapping[str, Any]) -> Client:
    values = _client_values(data, client)
    audit.apply_changes(client, values, entity_type="client", fields=CLIENT_AUDITED)
    return client


def client_form_data(client: Client) -> dict[str, Any]:
    data = {name: getattr(client, name) for name in CLIENT_AUDITED}
    data.update(credit_limit=rupees_text(client.credit_limit_paise), credit_days=str(client.credit_days),
                gstin=client.gstin or "", state_code=client.state_code or "")
    return data


def list_clients() -> list[Client]:
    return list(db.session.execute(
        select(Client).options(joinedload(Client.price_list)).order_by(Client.active.desc(), Client.name)).scalars())


def price_list_choices(*, include: Iterable[int] = ()) -> list[tuple[int, str]]:
    """Active price lists (and any already chosen) for a client's price list field."""
    keep = set(include)
    lists = db.session.execute(select(PriceList).order_by(PriceList.name)).scalars()
    return [(pl.id, pl.name if pl.active else f"{pl.name} (inactive)") for pl in lists if pl.active or pl.id in keep]
