"""Identifier rules (india.md §2) and name folding."""
from __future__ import annotations

from datetime import date

import phonenumbers
import pytest
from hypothesis import given, strategies as st

from app.services import identifiers as ids
from app.services import names
from app.services.patients import PatientInvalid, age_parts, validate


@given(st.integers(min_value=1, max_value=10**12))
def test_check_digit_round_trip_and_detects_single_digit_errors(n):
    value = ids.with_check_digit(n)
    assert ids.has_valid_check_digit(value)
    for i in range(len(value)):
        wrong = value[:i] + str((int(value[i]) + 1) % 10) + value[i + 1:]
        assert not ids.has_valid_check_digit(wrong)


def test_check_digit_detects_adjacent_transpositions():
    value = ids.with_check_digit(1234567)
    for i in range(len(value) - 1):
        if value[i] != value[i + 1]:
            swapped = value[:i] + value[i + 1] + value[i] + value[i + 2:]
            assert not ids.has_valid_check_digit(swapped)


@pytest.mark.parametrize("typed", ["9876543210", "098765 43210", "+91 98765-43210", "(+91) 98765 43210", "919876543210"])
def test_indian_mobiles_normalise_to_e164(typed):
    assert ids.normalize_mobile(typed) == "+919876543210"


@pytest.mark.parametrize("typed", ["12345", "1234567890", "98765432100", "abc", "", "+91 22 2345 6789"])
def test_invalid_mobiles_are_refused(typed):
    with pytest.raises(ValueError):
        ids.normalize_mobile(typed)


def test_aadhaar_is_validated_with_verhoeff_and_masked():
    assert ids.validate_aadhaar("2341 2341 2346") == "234123412346"
    assert ids.mask_aadhaar("234123412346") == "XXXX XXXX 2346"
    for bad in ["234123412347", "123412341234", "23412341234"]:
        with pytest.raises(ValueError):
            ids.validate_aadhaar(bad)


def test_aadhaar_hash_is_keyed():
    assert ids.aadhaar_hash("234123412346", b"k1") != ids.aadhaar_hash("234123412346", b"k2")
    assert len(ids.aadhaar_hash("234123412346", b"k1")) == 64


def test_abha_number_and_address_rules():
    assert ids.validate_abha_number("91-1234-5678-9012") == "91123456789012"
    assert ids.format_abha_number("91123456789012") == "91-1234-5678-9012"
    with pytest.raises(ValueError):
        ids.validate_abha_number("1234")
    assert ids.validate_abha_address("Ravi.Kumar@abdm") == "ravi.kumar@abdm"
    assert ids.validate_abha_address("91123456789012@abdm") == "91123456789012@abdm"
    for bad in ["ravi@gmail.com", "abc@abdm", "1ravi@abdm", ".ravi@abdm", "ravi.@abdm", "9876543210@abdm", "ra vi@abdm"]:
        with pytest.raises(ValueError):
            ids.validate_abha_address(bad)


@pytest.mark.parametrize("pin,ok", [("560038", True), ("560 038", True), ("060038", False), ("56003", False), ("ABCDEF", False)])
def test_pin_codes(pin, ok):
    if ok:
        assert ids.validate_pin(pin) == pin.replace(" ", "")
    else:
        with pytest.raises(ValueError):
            ids.validate_pin(pin)


@pytest.mark.parametrize("a,b", [("Lakshmi", "Laxmi"), ("Preeti Sharma", "Priti Sarma"), ("Shree Devi", "Sri Devi"),
                                 ("José", "Jose"), ("Dr. Meera Iyer", "MEERA  IYER"), ("D'Souza", "Dsouza"),
                                 ("Vijay", "Wijay"), ("Mohammad", "Muhammad")])
def test_spelling_variants_fold_together(a, b):
    assert names.fold(a) == names.fold(b)


def test_indian_scripts_keep_their_letters_and_vowel_signs():
    assert names.fold("राम कुमार") == "राम कुमार"
    assert names.fold("முருகன்") == "முருகன்"
    assert names.fold("সৌরভ গাঙ্গুলী") == "সৌরভ গাঙ্গুলী"


def test_display_name_keeps_script_and_drops_control_characters():
    assert names.clean_display_name("  राम\u0000  कुमार \n") == "राम कुमार"


VALID = {"name": "Asha Rao", "sex": "F", "dob": "1990-05-17", "mobile": "98765 43210"}


def test_valid_patient_data():
    data = validate(VALID)
    assert data.sex == "female" and data.mobile == "+919876543210" and not data.dob_estimated


def test_age_only_is_an_estimated_birth_date():
    data = validate({**VALID, "dob": "", "age_years": "34", "age_months": "2"})
    assert data.dob_estimated
    assert data.birth_date(today=date(2026, 11, 21)) == date(1992, 9, 21)
    days_only = validate({**VALID, "dob": "", "age_days": "10"})
    assert days_only.birth_date(today=date(2026, 11, 21)) == date(2026, 11, 11)


@pytest.mark.parametrize("change,field", [
    ({"name": "   "}, "name"), ({"name": "12345"}, "name"), ({"name": "x" * 201}, "name"),
    ({"sex": "unknown"}, "sex"), ({"dob": "2999-01-01"}, "dob"), ({"dob": "", "age_years": "121"}, "age_years"),
    ({"dob": ""}, "dob"), ({"mobile": "12345"}, "mobile"), ({"pin_code": "012345"}, "pin_code"),
    ({"aadhaar": "234123412347"}, "aadhaar"), ({"abha_number": "12"}, "abha_number"),
    ({"abha_address": "x@y"}, "abha_address"), ({"email": "not-an-email"}, "email"), ({"dob": "17/05/1990"}, "dob"),
    ({"address": "a" * 10000}, "address"), ({"state_code": "99"}, "state_code"),
])
def test_bad_input_names_the_field(change, field):
    with pytest.raises(PatientInvalid) as err:
        validate({**VALID, **change})
    assert field in err.value.errors, err.value.errors
    assert all(isinstance(m, str) and m for m in err.value.errors[field])


def test_age_parts():
    assert age_parts(date(1990, 5, 17), date(2026, 11, 21)) == (36, 6, 4)
    assert age_parts(date(2026, 11, 1), date(2026, 11, 21)) == (0, 0, 20)


@pytest.mark.parametrize("e164", ["+919876543210", "+917887612170", "+916295816825", "+916355349808",
                                  "+918105551234", "+14155552671", "+447911123456"])
def test_display_mobile_writes_what_phonenumbers_writes(e164):
    """The shortcut for Indian numbers must not change the text (some ranges group 3-3-4)."""
    expected = phonenumbers.format_number(phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    assert ids.display_mobile(e164) == expected


def test_remembered_indian_groupings_match_phonenumbers_for_every_five_digit_prefix():
    """The grouping is remembered per leading digits: for every Indian mobile prefix, 60000…
    to 99999…, first as it is learnt, then read from the memo for another number of that
    prefix, the text is exactly what phonenumbers writes."""
    def expected(e164: str) -> str:
        return phonenumbers.format_number(phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.INTERNATIONAL)

    assert ids._GROUPING_PREFIX == 5  # today's metadata; a change here means re-reading the memo's premise
    ids._GROUPINGS.clear()
    wrong = []
    for suffix in ("00000", "98761"):
        for prefix in range(60000, 100000):
            e164 = f"+91{prefix}{suffix}"
            if ids.display_mobile(e164) != expected(e164):
                wrong.append(e164)
    assert not wrong[:10]
    assert len(ids._GROUPINGS) == 40_000 and len(set(map(id, ids._GROUPINGS.values()))) == 4
