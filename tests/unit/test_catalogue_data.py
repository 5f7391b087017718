"""Integrity of the standard catalogue data (app.services.catalogue_data): codes, LOINC check
digits, reference-interval coverage, units, choices, panels and package prices."""
from __future__ import annotations

import re
from collections import defaultdict

import pytest

from app.models.catalogue import RESULT_TYPES
from app.services import catalogue_data as data

TESTS = data.TESTS
BY_CODE = data.tests_by_code()
DEPARTMENT_CODES = {d.code for d in data.DEPARTMENTS}
NUMERIC = [t for t in TESTS if t.result_type == "numeric"]


# --- LOINC check digit ------------------------------------------------------------------

def loinc_check_digit(number: str) -> int:
    """The LOINC mod-10 check digit, as the LOINC Users' Guide describes it: the digits in
    odd positions counted from the right are read right to left as one number and doubled,
    the digits in even positions are put in front, and the check digit brings the sum of
    all those digits up to a multiple of ten."""
    reversed_digits = number[::-1]
    odd = reversed_digits[0::2]  # 1st, 3rd, 5th... from the right
    even = reversed_digits[1::2]
    combined = even + str(int(odd) * 2)
    total = sum(int(c) for c in combined)
    return (10 - total % 10) % 10


def loinc_is_valid(code: str) -> bool:
    match = re.fullmatch(r"(\d{1,7})-(\d)", code)
    return bool(match) and loinc_check_digit(match.group(1)) == int(match.group(2))


def luhn_check_digit(number: str) -> int:
    total = 0
    for i, c in enumerate(reversed(number)):
        d = int(c)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return (10 - total % 10) % 10


@pytest.mark.parametrize("code", ["718-7", "1558-6", "2160-0", "3016-3", "6690-2", "4548-4", "24356-8",
                                  "98979-8", "62292-8", "14979-9"])
def test_known_loinc_codes_pass_the_check_digit(code):
    assert loinc_is_valid(code)


@pytest.mark.parametrize("code", ["718-8", "1558-5", "3255-5", "5196-2", "2160", "ABC-1", "718-77"])
def test_wrong_or_malformed_loinc_codes_fail(code):
    assert not loinc_is_valid(code)


def test_loinc_algorithm_agrees_with_luhn():
    for n in range(1, 20000):
        assert loinc_check_digit(str(n)) == luhn_check_digit(str(n))


@pytest.mark.parametrize("test", [t for t in TESTS if t.loinc], ids=lambda t: t.code)
def test_every_loinc_code_has_a_valid_check_digit(test):
    assert loinc_is_valid(test.loinc), f"{test.code}: LOINC {test.loinc} fails the mod-10 check"


def test_loinc_codes_are_not_shared_between_tests():
    seen: dict[str, str] = {}
    for t in TESTS:
        if t.loinc:
            assert t.loinc not in seen, f"{t.code} and {seen[t.loinc]} both use LOINC {t.loinc}"
            seen[t.loinc] = t.code


# --- Tests: shape ---------------------------------------------------------------------------

def test_catalogue_has_at_least_80_tests():
    assert len(TESTS) >= 80


def test_test_codes_are_unique_short_and_upper_case():
    codes = [t.code for t in TESTS]
    assert len(codes) == len(set(codes))
    for code in codes:
        assert re.fullmatch(r"[A-Z0-9][A-Z0-9-]{0,15}", code), code


def test_departments_are_unique_and_every_test_belongs_to_one():
    assert len(DEPARTMENT_CODES) == len(data.DEPARTMENTS) == 5
    assert len({d.sort_order for d in data.DEPARTMENTS}) == len(data.DEPARTMENTS)
    for t in TESTS:
        assert t.department in DEPARTMENT_CODES, t.code
    assert {t.department for t in TESTS} == DEPARTMENT_CODES


@pytest.mark.parametrize("test", TESTS, ids=lambda t: t.code)
def test_fields_fit_the_model(test):
    assert test.result_type in RESULT_TYPES
    assert test.name and len(test.name) <= 200
    assert test.specimen and len(test.specimen) <= 40
    assert test.container and len(test.container) <= 40
    assert test.method and len(test.method) <= 100
    assert test.unit is None or len(test.unit) <= 32
    assert test.choices is None or len(test.choices) <= 400
    assert 0 <= test.decimals <= 4
    assert 1 <= test.tat_hours <= 24 * 7
    assert test.rupees > 0 and test.price_paise == test.rupees * 100


def test_gst_is_exempt_under_the_diagnostic_services_sac():
    assert data.SAC_CODE == "999316"
    assert data.GST_RATE == 0


@pytest.mark.parametrize("code", ["HB", "WBC", "PLT", "GLUF", "GLUPP", "GLUR", "HBA1C", "CREA", "UREA", "TSH",
                                  "FT4", "ESR", "VITD", "B12", "CRP", "HBSAG", "HIV", "DENNS1", "PT", "APTT"])
def test_commonly_single_ordered_tests_are_orderable(code):
    assert BY_CODE[code].orderable


@pytest.mark.parametrize("code", ["IBIL", "GLOB", "AGR", "LDL", "VLDL", "NHDL", "TCHDL", "EGFR", "BUN", "TSAT",
                                  "INR", "UACR", "MCH", "MCHC", "ANC"])
def test_calculated_and_component_tests_are_not_orderable_alone(code):
    assert not BY_CODE[code].orderable


def test_every_component_only_test_is_reachable_through_a_panel():
    in_panels = {code for p in data.PANELS for code in p.items}
    for t in TESTS:
        if not t.orderable:
            assert t.code in in_panels, f"{t.code} can be ordered neither alone nor in a panel"


def test_containers_follow_indian_practice():
    containers = {t.code: t.container for t in TESTS}
    for code in ("HB", "WBC", "PLT", "MCV", "ESR", "HBA1C", "BLGRP"):
        assert containers[code] == "EDTA", code
    for code in ("GLUF", "GLUPP", "GLUR"):
        assert containers[code] == "Fluoride", code
        assert BY_CODE[code].specimen == "Plasma"
    for code in ("PT", "INR", "APTT", "FIB", "DDIM"):
        assert containers[code] == "Citrate", code
        assert BY_CODE[code].department == "COAG"
    for code in ("CREA", "UREA", "NA", "K", "ALT", "CHOL", "TSH", "FERR", "HBSAG"):
        assert containers[code] == "Plain", code
        assert BY_CODE[code].specimen == "Serum"
    for t in TESTS:
        if t.code.startswith("U") and t.department == "CLIN":
            assert (t.specimen, t.container) == ("Urine", "Urine container"), t.code


# --- Choices and units -----------------------------------------------------------------------

@pytest.mark.parametrize("test", [t for t in TESTS if t.result_type == "choice"], ids=lambda t: t.code)
def test_choice_tests_have_distinct_choices(test):
    assert test.choices, test.code
    options = test.choices.split("|")
    assert len(options) >= 2
    assert all(o.strip() == o and o for o in options)
    assert len(options) == len(set(options))
    for ref in test.intervals:  # the expected result is one of the choices (or explains it)
        assert ref.text and ref.text.split(" (")[0] in options, (test.code, ref.text)


def test_only_choice_tests_have_choices():
    for t in TESTS:
        if t.result_type != "choice":
            assert t.choices is None, t.code


def test_urine_protein_uses_the_indian_dipstick_grades():
    assert BY_CODE["UPRO"].choices == "Nil|Trace|+|++|+++|++++"


_UCUM_PREFIX = "(?:da|[YZEPTGMkhdcmunpfazy])?"
_UCUM_ATOM = r"(?:g|L|l|m|s|min|h|d|mol|U|eq|%|\[IU\]|\[iU\]|\[pH\]|\[HPF\]|\[LPF\]|\{[^{}]+\})"
_UCUM_TERM = re.compile(rf"(?:10\*\d+|1|{_UCUM_PREFIX}{_UCUM_ATOM}(?:\d+)?(?:\{{[^{{}}]+\}})?|\{{[^{{}}]+\}})")


def ucum_is_plausible(unit: str) -> bool:
    """A small UCUM check: terms joined by '/' or '.', each a (prefixed) atom from the set a
    clinical lab uses, a power of ten, the unity 1 or an annotation like {ratio}."""
    if not unit or unit != unit.strip() or " " in unit:
        return False
    # Annotations may contain dots ({1.73_m2}); replace them before splitting into terms.
    plain = re.sub(r"\{[^{}]*\}", "{x}", unit)
    parts = re.split(r"[./]", plain[1:] if plain.startswith("/") else plain)
    return all(_UCUM_TERM.fullmatch(p) for p in parts)


@pytest.mark.parametrize("unit", ["g/dL", "10*3/uL", "10*6/uL", "%", "fL", "pg", "mg/dL", "U/L", "mmol/L",
                                  "ng/mL", "ug/dL", "u[IU]/mL", "m[IU]/L", "pg/mL", "mm/h", "s", "{ratio}",
                                  "{INR}", "mL/min/{1.73_m2}", "/[HPF]", "[pH]", "ug/mL{FEU}", "[IU]/mL", "mg/g"])
def test_ucum_checker_accepts_lab_units(unit):
    assert ucum_is_plausible(unit)


@pytest.mark.parametrize("unit", ["", "uIU/mL", "mg / dL", "x10^3/uL", "mcg/dL", "sec", "lakh/cumm", "IU/mL"])
def test_ucum_checker_rejects_non_ucum_spellings(unit):
    assert not ucum_is_plausible(unit)


@pytest.mark.parametrize("test", NUMERIC, ids=lambda t: t.code)
def test_numeric_tests_have_a_ucum_unit(test):
    assert test.unit, f"{test.code} is numeric but has no unit"
    assert ucum_is_plausible(test.unit), f"{test.code}: {test.unit!r} is not UCUM"


def test_dimensionless_results_use_annotations():
    assert BY_CODE["INR"].unit == "{INR}"
    assert BY_CODE["AGR"].unit == "{ratio}"
    assert BY_CODE["TCHDL"].unit == "{ratio}"


def test_units_of_other_tests_are_ucum_when_present():
    for t in TESTS:
        if t.unit is not None:
            assert ucum_is_plausible(t.unit), t.code


# --- Reference intervals -------------------------------------------------------------------

def _all_intervals():
    return [(t, ref) for t in TESTS for ref in t.intervals]


def test_every_interval_has_a_source_and_a_valid_band():
    for t, ref in _all_intervals():
        assert ref.source.strip(), f"{t.code}: interval without a source"
        assert len(ref.source) <= 300, t.code
        assert ref.text is None or len(ref.text) <= 200, t.code
        assert ref.sex in ("any", "male", "female"), t.code
        assert 0 <= ref.age_min_days < ref.age_max_days <= data.MAX_AGE, t.code


def test_limits_are_ordered():
    for t, ref in _all_intervals():
        if ref.low is not None and ref.high is not None:
            assert ref.low < ref.high, (t.code, ref)
        if ref.critical_low is not None:
            assert ref.low is not None and ref.critical_low < ref.low, (t.code, ref)
        if ref.critical_high is not None:
            assert ref.high is not None and ref.critical_high > ref.high, (t.code, ref)


def test_every_interval_says_something():
    for t, ref in _all_intervals():
        assert ref.low is not None or ref.high is not None or ref.text, (t.code, ref)


def test_numeric_limits_fit_the_column():
    for t, ref in _all_intervals():
        for value in (ref.low, ref.high, ref.critical_low, ref.critical_high):
            assert value is None or abs(value) < 10**8, t.code


def _coverage(test, sex):
    """The age bands that apply to one sex, sorted: 'any' bands count for both sexes."""
    return sorted((r.age_min_days, r.age_max_days) for r in test.intervals if r.sex in ("any", sex))


@pytest.mark.parametrize("test", NUMERIC, ids=lambda t: t.code)
def test_numeric_intervals_cover_every_age_once_for_both_sexes(test):
    assert test.intervals, f"{test.code} is numeric but has no reference interval"
    for sex in ("male", "female"):
        bands = _coverage(test, sex)
        assert bands, (test.code, sex)
        assert bands[0][0] == 0, f"{test.code}/{sex}: no interval from birth"
        for (_, prev_end), (start, _) in zip(bands, bands[1:]):
            assert start >= prev_end, f"{test.code}/{sex}: overlap at day {start}"
            assert start <= prev_end, f"{test.code}/{sex}: gap from day {prev_end} to {start}"
        assert bands[-1][1] == data.MAX_AGE, f"{test.code}/{sex}: no interval up to {data.MAX_AGE} days"


@pytest.mark.parametrize("test", [t for t in TESTS if t.intervals and t.result_type != "numeric"],
                         ids=lambda t: t.code)
def test_qualitative_intervals_do_not_overlap_and_are_text(test):
    for sex in ("male", "female"):
        bands = _coverage(test, sex)
        for (_, prev_end), (start, _) in zip(bands, bands[1:]):
            assert start >= prev_end, (test.code, sex)
    for ref in test.intervals:
        assert ref.text and ref.low is None and ref.high is None, test.code


@pytest.mark.parametrize("code", ["HB", "WBC", "PLT", "ALP", "CREA"])
def test_paediatric_bands_exist(code):
    bands = {(r.age_min_days, r.age_max_days) for r in BY_CODE[code].intervals}
    assert any(start == 0 and end <= data.D28 for start, end in bands), f"{code}: no newborn band"
    assert any(start == data.D28 and end <= data.Y2 for start, end in bands), f"{code}: no infant band"
    assert any(start >= data.Y1 and end <= data.Y18 for start, end in bands), f"{code}: no child band"
    assert any(start == data.Y18 and end == data.MAX_AGE for start, end in bands), f"{code}: no adult band"


@pytest.mark.parametrize("code", ["HB", "PLT", "WBC", "GLUF", "NA", "K", "CA", "CREA", "INR"])
def test_critical_limits_exist_where_labs_commonly_phone_them(code):
    adult = [r for r in BY_CODE[code].intervals if r.age_max_days == data.MAX_AGE]
    assert adult and all(r.critical_low is not None or r.critical_high is not None for r in adult), code


def test_sex_specific_adult_intervals_where_physiology_differs():
    for code in ("HB", "HCT", "RBC", "CREA", "URIC", "FERR", "ALP"):
        sexes = {r.sex for r in BY_CODE[code].intervals if r.age_max_days == data.MAX_AGE}
        assert sexes == {"male", "female"}, code


def test_glucose_and_hba1c_follow_ada():
    adult_fbs = [r for r in BY_CODE["GLUF"].intervals if r.age_min_days == data.Y18][0]
    assert (adult_fbs.low, adult_fbs.high) == (70, 99)
    assert "ADA" in adult_fbs.source
    hba1c = BY_CODE["HBA1C"].intervals[0]
    assert hba1c.high == 5.6 and "6.5" in hba1c.text and "ADA" in hba1c.source


def test_module_tells_labs_to_verify_intervals():
    doc = data.__doc__ or ""
    assert "ISO 15189" in doc and "verify" in doc


# --- Panels and packages -----------------------------------------------------------------------

def test_panel_codes_are_unique():
    codes = [p.code for p in data.PANELS]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize("panel", data.PANELS, ids=lambda p: p.code)
def test_panel_items_exist_and_are_not_repeated(panel):
    assert panel.items
    assert len(panel.items) == len(set(panel.items)), panel.code
    for code in panel.items:
        assert code in BY_CODE, f"{panel.code} refers to unknown test {code}"
    assert panel.rupees > 0 and panel.price_paise == panel.rupees * 100
    assert len(panel.name) <= 200 and len(panel.code) <= 32


def test_required_profiles_exist():
    panels = data.panels_by_code()
    for code in ("CBC", "LFT", "KFT", "LIPID", "TFT", "URINE-RE", "STOOL-RE", "COAG", "IRON"):
        assert code in panels and not panels[code].is_package, code
    assert panels["TFT"].items == ("T3", "T4", "TSH")
    assert panels["COAG"].items == ("PT", "INR", "APTT")
    assert panels["CBC"].items[0] == "HB"


def test_three_packages_each_cheaper_than_its_tests():
    packages = [p for p in data.PANELS if p.is_package]
    assert len(packages) >= 3
    for p in packages:
        total = sum(BY_CODE[code].rupees for code in p.items)
        assert p.rupees < total, f"{p.code}: ₹{p.rupees} is not below the sum of its tests (₹{total})"


def test_profiles_are_not_dearer_than_their_tests():
    for p in data.PANELS:
        assert p.rupees <= sum(BY_CODE[code].rupees for code in p.items), p.code


def test_each_interval_set_is_deduplicated():
    for t in TESTS:
        keys = defaultdict(int)
        for r in t.intervals:
            keys[(r.sex, r.age_min_days, r.age_max_days)] += 1
        assert all(n == 1 for n in keys.values()), t.code
