"""Identifiers and their rules: MRN, accession and tube numbers with check digits; Indian
mobiles, PIN codes, Aadhaar, ABHA. Sources: ../shared/reference/india.md §2."""
from __future__ import annotations

import hashlib
import hmac
import re

import phonenumbers
from stdnum import verhoeff
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.in_ import aadhaar

# --- numbers with a Verhoeff check digit (catches every single-digit error and every
# adjacent transposition, the two mistakes people make typing a number) -----------------


def with_check_digit(number: int) -> str:
    digits = str(number)
    return digits + verhoeff.calc_check_digit(digits)


def has_valid_check_digit(value: str) -> bool:
    return value.isdigit() and len(value) >= 2 and verhoeff.is_valid(value)


# --- mobile numbers -----------------------------------------------------------------


def normalize_mobile(raw: str, region: str = "IN") -> str:
    """Any way a number is typed ("098765 43210", "+91-98765-43210", "9876543210") → E.164.

    Raises ValueError with a message for the user."""
    text = (raw or "").strip()
    if not text:
        raise ValueError("Enter a mobile number.")
    if len(text) > 32:
        raise ValueError("That is not a phone number.")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise ValueError("That is not a phone number.") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("That is not a valid mobile number (10 digits for India).")
    if number.country_code == 91 and phonenumbers.number_type(number) not in (
        phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        raise ValueError("Enter a mobile number (reports and OTPs are sent to it).")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def looks_like_phone(query: str) -> bool:
    return len(re.sub(r"\D", "", query)) >= 10 and re.fullmatch(r"[\d\s+()-]+", query.strip()) is not None


_INDIAN_E164 = re.compile(r"\+91\d{10}")


def _grouping_prefix_length() -> int | None:
    """How many leading digits of an Indian number decide how phonenumbers groups it in
    the international format: the widest leading-digits pattern of those formats (5 in
    today's metadata). None if some pattern is unbounded, or some format's grouping
    depends on more than the number's length: then every number goes to phonenumbers."""
    from re import _parser  # the regex parser: a pattern's minimum and maximum width

    metadata = phonenumbers.PhoneMetadata.metadata_for_region("IN")
    formats = metadata.intl_number_format or metadata.number_format
    widest = 0
    for fmt in formats:
        if not re.fullmatch(r"(\(\\d\{\d+(,\d+)?\}\))+", fmt.pattern):
            return None
        if fmt.leading_digits_pattern:
            width = _parser.parse(fmt.leading_digits_pattern[-1]).getwidth()[1]
            if width >= _parser.MAXREPEAT:
                return None
            widest = max(widest, width)
    return widest or None


_GROUPING_PREFIX = _grouping_prefix_length()
_GROUPINGS: dict[str, tuple[tuple[int, int], ...]] = {}  # leading digits -> digit groups (start, end)


_SHARED_GROUPS: dict[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]] = {}


def _groups_of(formatted: str) -> tuple[tuple[int, int], ...]:
    """(start, end) of each run of digits in "98765 43210", as offsets in the bare digits;
    one shared tuple per grouping (there are four), so the memo holds only its keys."""
    groups, at = [], 0
    for run in re.findall(r"\d+", formatted):
        groups.append((at, at + len(run)))
        at += len(run)
    return _SHARED_GROUPS.setdefault(tuple(groups), tuple(groups))


def display_mobile(e164: str | None) -> str:
    """"+91 98765 43210", as phonenumbers writes it. Lists show one per row. A stored
    Indian number (always E.164, see normalize_mobile) skips phonenumbers' parser, and its
    grouping (5-5, 4-3-3, 3-3-4 or 2-4-4, decided by its first few digits) is remembered
    per leading digits: formatting every row through phonenumbers was a tenth of a name
    search's server time. tests/unit/test_identifiers.py compares both for every
    five-digit Indian prefix."""
    if not e164:
        return ""
    if _GROUPING_PREFIX and _INDIAN_E164.fullmatch(e164):
        national = e164[3:]
        groups = _GROUPINGS.get(national[:_GROUPING_PREFIX])
        if groups is None:
            formatted = phonenumbers.format_number(
                phonenumbers.PhoneNumber(country_code=91, national_number=int(national)),
                phonenumbers.PhoneNumberFormat.INTERNATIONAL)
            if not formatted.startswith("+91 ") or re.sub(r"\D", "", formatted[4:]) != national \
                    or re.fullmatch(r"\d+( \d+)*", formatted[4:]) is None:
                return formatted  # not a plain digit grouping: leave it to phonenumbers every time
            groups = _groups_of(formatted[4:])
            if len(_GROUPINGS) < 40_000:  # at most the 40,000 five-digit mobile prefixes (6…–9…)
                _GROUPINGS[national[:_GROUPING_PREFIX]] = groups
        return "+91 " + " ".join(national[start:end] for start, end in groups)
    try:
        return phonenumbers.format_number(phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    except phonenumbers.NumberParseException:
        return e164


def mask_mobile(e164: str | None) -> str:
    """+91 98XXXXXX10: enough to recognise, not enough to misuse (shown where not needed)."""
    if not e164 or len(e164) < 8:
        return ""
    return e164[:5] + "X" * (len(e164) - 7) + e164[-2:]


# --- PIN code -----------------------------------------------------------------------

PIN_RE = re.compile(r"^[1-9][0-9]{5}$")


def validate_pin(raw: str) -> str:
    pin = re.sub(r"\s", "", raw or "")
    if not PIN_RE.match(pin):
        raise ValueError("A PIN code is 6 digits and does not start with 0.")
    return pin


# --- Aadhaar (stored masked + keyed hash only; india.md §2.3) -----------------------


def validate_aadhaar(raw: str) -> str:
    try:
        return aadhaar.validate(raw)
    except StdnumError:
        raise ValueError("That is not a valid Aadhaar number (12 digits; the last one is a check digit).") from None


def mask_aadhaar(number: str) -> str:
    return aadhaar.mask(number)  # "XXXX XXXX 2346", the MeitY masking


def aadhaar_hash(number: str, key: bytes) -> str:
    """HMAC-SHA256 with a server-side key: finds the same Aadhaar again without storing it.
    A plain hash would not do: 10^11 valid numbers are quickly enumerated."""
    return hmac.new(key, number.encode(), hashlib.sha256).hexdigest()


# --- ABHA (india.md §2.4: 14 digits, no official checksum; address rules) ----------


def validate_abha_number(raw: str) -> str:
    digits = re.sub(r"[\s-]", "", raw or "")
    if not re.fullmatch(r"\d{14}", digits):
        raise ValueError("An ABHA number has 14 digits (shown as XX-XXXX-XXXX-XXXX).")
    return digits


def format_abha_number(digits: str | None) -> str:
    if not digits:
        return ""
    return f"{digits[:2]}-{digits[2:6]}-{digits[6:10]}-{digits[10:]}"


ABHA_DOMAINS = ("abdm", "sbx")  # production and sandbox


def validate_abha_address(raw: str) -> str:
    """handle@abdm: at least 4 characters of letters, digits and '.', not starting with a
    digit or '.', not ending with '.'; all digits only for the 14-digit ABHA number form;
    a 10-digit mobile handle is not allowed."""
    value = (raw or "").strip().lower()
    handle, sep, domain = value.partition("@")
    if not sep or domain not in ABHA_DOMAINS:
        raise ValueError("An ABHA address looks like name@abdm.")
    if handle.isdigit():
        if len(handle) == 14:
            return value
        raise ValueError("A numeric ABHA address must be the 14-digit ABHA number.")
    if (len(handle) < 4 or not re.fullmatch(r"[a-z0-9.]+", handle) or handle[0].isdigit()
            or handle[0] == "." or handle[-1] == "."):
        raise ValueError("Use at least 4 letters, digits or dots, starting with a letter and not ending with a dot.")
    return value
