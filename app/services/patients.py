"""Patients: validation, duplicate detection, registration, edits, search.

One validator (PatientData) serves the reception form, the API and imports, so every entry
point gives the same messages for the same mistakes."""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from flask import current_app
from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError, field_validator, model_validator
from sqlalchemy import BigInteger, Integer, String, Text, any_, bindparam, delete, exists, func, insert, or_, select, text
from sqlalchemy import update as update_statement
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from app import audit
from app.extensions import db
from app.models import NameWord, Patient, PatientWord
from app.queries import Query, TextQuery, org
from app.services import ServiceError, identifiers, names
from app.services.branches import STATE_CODES

MAX_AGE_YEARS = 120
AUDITED = ("full_name", "sex", "date_of_birth", "dob_estimated", "mobile", "email", "address", "city",
           "pin_code", "state_code", "aadhaar_masked", "abha_number", "abha_address")


class PatientInvalid(ServiceError):
    """Field errors keyed by field name, for a 422 in the form or the API."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("Some fields are invalid.")
        self.errors = errors


class LikelyDuplicates(ServiceError):
    def __init__(self, candidates: list["DuplicateCandidate"]):
        super().__init__("This patient may already be registered.")
        self.candidates = candidates


@dataclass(frozen=True)
class DuplicateCandidate:
    patient: Patient
    reasons: tuple[str, ...]


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


class PatientData(BaseModel):
    """What a patient registration or edit may contain, with India's rules."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    name: str = Field(max_length=200)
    sex: str
    dob: date | None = None
    age_years: int | None = Field(default=None, ge=0, le=MAX_AGE_YEARS)
    age_months: int | None = Field(default=None, ge=0, le=11)
    age_days: int | None = Field(default=None, ge=0, le=31)
    mobile: str = Field(max_length=32)
    email: EmailStr | None = Field(default=None, max_length=254)
    address: str | None = Field(default=None, max_length=400)
    city: str | None = Field(default=None, max_length=100)
    pin_code: str | None = None
    state_code: str | None = None
    aadhaar: str | None = Field(default=None, max_length=20)
    abha_number: str | None = Field(default=None, max_length=20)
    abha_address: str | None = Field(default=None, max_length=100)

    _blanks = field_validator("dob", "age_years", "age_months", "age_days", "email", "address", "city",
                              "pin_code", "state_code", "aadhaar", "abha_number", "abha_address",
                              mode="before")(_blank_to_none)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        cleaned = names.clean_display_name(value)
        if not cleaned or not any(c.isalpha() for c in cleaned):
            raise ValueError("Enter the patient's name.")
        return cleaned

    @field_validator("sex", mode="before")
    @classmethod
    def _sex(cls, value: Any) -> str:
        aliases = {"m": "male", "male": "male", "f": "female", "female": "female", "o": "other", "other": "other"}
        sex = aliases.get(str(value or "").strip().lower())
        if sex is None:
            raise ValueError("Choose male, female or other.")
        return sex

    @field_validator("dob")
    @classmethod
    def _dob(cls, value: date | None) -> date | None:
        if value is None:
            return value
        if value > date.today():
            raise ValueError("The date of birth cannot be in the future.")
        if value < date.today() - timedelta(days=365.25 * MAX_AGE_YEARS):
            raise ValueError(f"That is more than {MAX_AGE_YEARS} years ago.")
        return value

    @field_validator("mobile")
    @classmethod
    def _mobile(cls, value: str) -> str:
        return identifiers.normalize_mobile(value)

    @field_validator("pin_code")
    @classmethod
    def _pin(cls, value: str | None) -> str | None:
        return None if value is None else identifiers.validate_pin(value)

    @field_validator("state_code")
    @classmethod
    def _state(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.zfill(2) not in STATE_CODES:
            raise ValueError("Choose a state.")
        return value.zfill(2)

    @field_validator("aadhaar")
    @classmethod
    def _aadhaar(cls, value: str | None) -> str | None:
        return None if value is None else identifiers.validate_aadhaar(value)

    @field_validator("abha_number")
    @classmethod
    def _abha_number(cls, value: str | None) -> str | None:
        return None if value is None else identifiers.validate_abha_number(value)

    @field_validator("abha_address")
    @classmethod
    def _abha_address(cls, value: str | None) -> str | None:
        return None if value is None else identifiers.validate_abha_address(value)

    @model_validator(mode="after")
    def _birth(self) -> "PatientData":
        if self.dob is None and self.age_years is None and self.age_months is None and self.age_days is None:
            raise ValueError("Enter the date of birth, or the age.")
        return self

    @property
    def dob_estimated(self) -> bool:
        return self.dob is None

    def birth_date(self, today: date | None = None) -> date:
        """The date of birth, or one estimated from the age in years, months and days."""
        if self.dob is not None:
            return self.dob
        today = today or date.today()
        years, months, days = self.age_years or 0, self.age_months or 0, self.age_days or 0
        month_index = today.year * 12 + today.month - 1 - years * 12 - months
        year, month = divmod(month_index, 12)
        day = min(today.day, [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28,
                              31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month])
        return date(year, month + 1, day) - timedelta(days=days)


def validate(raw: dict[str, Any]) -> PatientData:
    """Validate raw input; raises PatientInvalid with messages keyed by field."""
    try:
        return PatientData.model_validate(raw)
    except ValidationError as exc:
        errors: dict[str, list[str]] = {}
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "dob"
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "string_too_long":
                message = f"Too long (at most {err['ctx']['max_length']} characters)."
            elif err["type"] in {"less_than_equal", "greater_than_equal"} and field.startswith("age"):
                message = f"Age must be between 0 and {MAX_AGE_YEARS} years."
            elif err["type"] in {"date_from_datetime_parsing", "date_parsing", "date_type"}:
                message = "Enter a date as YYYY-MM-DD."
            elif err["type"] == "value_error" and field == "email":
                message = "That is not a valid email address."
            errors.setdefault(field, []).append(message)
        raise PatientInvalid(errors) from None


def _identity_key() -> bytes:
    key = current_app.config.get("LIS_IDENTITY_HASH_KEY") or current_app.config["SECRET_KEY"]
    return ("aadhaar:" + key).encode()


def _values(data: PatientData) -> dict[str, Any]:
    values: dict[str, Any] = {
        "full_name": data.name, "name_search": names.fold(data.name), "sex": data.sex,
        "date_of_birth": data.birth_date(), "dob_estimated": data.dob_estimated, "mobile": data.mobile,
        "email": str(data.email) if data.email else None, "address": data.address or "", "city": data.city or "",
        "pin_code": data.pin_code, "state_code": data.state_code,
        "abha_number": data.abha_number, "abha_address": data.abha_address,
    }
    if data.aadhaar:
        values["aadhaar_masked"] = identifiers.mask_aadhaar(data.aadhaar)
        values["aadhaar_hash"] = identifiers.aadhaar_hash(data.aadhaar, _identity_key())
    return values


def find_duplicates(values: dict[str, Any], *, exclude_id: int | None = None) -> list[DuplicateCandidate]:
    """Likely duplicates: the same Aadhaar; the same mobile with a similar name (a family
    sharing a phone is normal: different names are not duplicates); the same name and DOB."""
    conditions = [
        (Patient.name_search == values["name_search"]) & (Patient.date_of_birth == values["date_of_birth"]),
        (Patient.mobile == values["mobile"])
        & (func.similarity(Patient.name_search, values["name_search"]) >= 0.5),
    ]
    if values.get("aadhaar_hash"):
        conditions.append(Patient.aadhaar_hash == values["aadhaar_hash"])
    stmt = select(Patient).where(or_(*conditions)).limit(10)
    if exclude_id:
        stmt = stmt.where(Patient.id != exclude_id)
    found = []
    for patient in db.session.execute(stmt).scalars():
        reasons = []
        if values.get("aadhaar_hash") and patient.aadhaar_hash == values["aadhaar_hash"]:
            reasons.append("same Aadhaar")
        if patient.mobile == values["mobile"]:
            reasons.append("same mobile, similar name")
        if patient.name_search == values["name_search"] and patient.date_of_birth == values["date_of_birth"]:
            reasons.append("same name and date of birth")
        found.append(DuplicateCandidate(patient, tuple(reasons)))
    return found


def next_mrn() -> str:
    return identifiers.with_check_digit(db.session.execute(text("SELECT nextval('patient_mrn_seq')")).scalar_one())


def register(raw: dict[str, Any], *, branch_id: int | None, created_by_id: int | None,
             confirm_new: bool = False) -> Patient:
    """Register a patient. Raises PatientInvalid, or LikelyDuplicates unless confirm_new."""
    data = validate(raw)
    values = _values(data)
    if not confirm_new:
        candidates = find_duplicates(values)
        if candidates:
            raise LikelyDuplicates(candidates)
    patient = Patient(mrn=next_mrn(), registered_branch_id=branch_id, created_by_id=created_by_id, **values)
    db.session.add(patient)
    db.session.flush()
    _index_words(patient, before="")
    audit.record("patient.registered", entity_type="patient", entity_id=patient.mrn,
                 after=audit.snapshot(patient, AUDITED) | {"confirmed_despite_duplicates": confirm_new})
    return patient


def update(patient: Patient, raw: dict[str, Any]) -> Patient:
    """Edit a patient (audited, only changed fields). An empty Aadhaar keeps the stored one."""
    data = validate(raw)
    values = _values(data)
    before = patient.name_search
    audit.apply_changes(patient, values, entity_type="patient", fields=AUDITED, key="mrn")
    _index_words(patient, before=before)
    return patient


# --- the name-word index search uses --------------------------------------------------


def _words(name_search: str) -> set[str]:
    """The words of a folded name: what the migration takes as string_to_array(name_search, ' ')."""
    return set(name_search.split())


def _index_words(patient: Patient, *, before: str) -> None:
    """Keep patient_word and the dictionary's counts (name_word) in step with a patient's
    folded name (`before`: the name it replaces, "" on registration), in the caller's
    transaction. The patient's patient_word rows are rewritten (each carries the whole
    name); counts change only for the words gained or lost, and a word no patient has
    any more leaves the dictionary, so search never offers it. Words go in sorted order:
    two desks saving names with the same words lock dictionary rows in the same order."""
    after = patient.name_search
    if after == before:
        return
    old, new = _words(before), _words(after)
    if old:
        db.session.execute(delete(PatientWord).where(PatientWord.patient_id == patient.id,
                                                     PatientWord.word.in_(sorted(old))))
    if new:
        db.session.execute(insert(PatientWord), [
            {"org_id": patient.org_id, "word": w, "patient_id": patient.id, "name_search": after}
            for w in sorted(new)])
    if gone := sorted(old - new):
        db.session.execute(update_statement(NameWord).where(NameWord.word.in_(gone))
                           .values(patients=NameWord.patients - 1).execution_options(synchronize_session=False))
        db.session.execute(delete(NameWord).where(NameWord.word.in_(gone), NameWord.patients <= 0)
                           .execution_options(synchronize_session=False))
    if added := sorted(new - old):
        upsert = pg_insert(NameWord).values([{"org_id": patient.org_id, "word": w, "patients": 1} for w in added])
        db.session.execute(upsert.on_conflict_do_update(index_elements=[NameWord.org_id, NameWord.word],
                                                        set_={"patients": NameWord.patients + 1}))


def as_form_data(patient: Patient) -> dict[str, Any]:
    """A patient as the edit form shows it (Aadhaar is never shown again)."""
    return {
        "name": patient.full_name, "sex": patient.sex,
        "dob": patient.date_of_birth if not patient.dob_estimated else None,
        "age_years": age_parts(patient.date_of_birth)[0] if patient.dob_estimated else None,
        "mobile": identifiers.display_mobile(patient.mobile), "email": patient.email, "address": patient.address,
        "city": patient.city, "pin_code": patient.pin_code, "state_code": patient.state_code,
        "abha_number": patient.abha_number, "abha_address": patient.abha_address,
    }


# --- search -----------------------------------------------------------------------

MRN_RE = re.compile(r"^\d{7,12}$")


# ---------------------------------------------------------------- the search box
# The desk's most frequent request (active search, a request per pause in typing). Its
# patient reads are precompiled (app/queries.py) and return only what a list of matches
# shows (Match rows: the columns below, as attributes), not Patient objects: loading 20
# whole rows through the ORM was most of a search's server time (docs/PERFORMANCE.md).
_patient = Patient.__table__
_MATCH_COLUMNS = (_patient.c.id, _patient.c.org_id, _patient.c.mrn, _patient.c.full_name, _patient.c.sex,
                  _patient.c.date_of_birth, _patient.c.dob_estimated, _patient.c.mobile, _patient.c.email,
                  _patient.c.aadhaar_masked, _patient.c.abha_number, _patient.c.abha_address)
Match = Any  # a named tuple (queries.Query rows): a patient as a list of matches shows it (id, org_id, mrn, full_name, sex, date_of_birth, mobile...)


def _matches(name: str, *criteria: Any, order_by: Any = (), limit: bool = True) -> Query:
    stmt = select(*_MATCH_COLUMNS).where(org(_patient), *criteria).order_by(*order_by)
    return Query(name, stmt.limit(bindparam("limit", type_=Integer)) if limit else stmt)


_BY_MRN = _matches("patient_by_mrn", _patient.c.mrn == bindparam("mrn", type_=String), limit=False)
_BY_MOBILE = _matches("patients_by_mobile", _patient.c.mobile == bindparam("mobile", type_=String),
                      order_by=[_patient.c.full_name])
_NAME_CONTAINS = _matches("patients_name_contains", _patient.c.name_search.like(bindparam("pattern", type_=String)),
                          order_by=[_patient.c.name_search])
# A range scan of ix_patient_org_name_dob, stopped after `limit` rows, in the index's order
# (left() re-checks the range in case the collation is not C; a LIKE there would tempt the
# planner into the trigram index).
_NAME_BEGINS = _matches("patients_name_begins", _patient.c.name_search >= bindparam("key", type_=String),
                        _patient.c.name_search < bindparam("upper", type_=String),
                        func.left(_patient.c.name_search, bindparam("length", type_=Integer)) == bindparam("key"),
                        order_by=[_patient.c.name_search, _patient.c.date_of_birth])
_BY_IDS = _matches("patients_by_ids", _patient.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger))), limit=False)


def search(query: str, *, limit: int = 20) -> list[Match]:
    """One box for MRN, mobile (any format) and name (partial, accent- and variant-tolerant,
    typing slips forgiven; matched word by word, below). Match rows, best first."""
    q = (query or "").strip()[:100]
    if len(q) < 2:
        return []
    if MRN_RE.match(q) and identifiers.has_valid_check_digit(q):
        found = _BY_MRN.rows(mrn=q)
        if found:
            return found
    if identifiers.looks_like_phone(q):
        try:
            mobile = identifiers.normalize_mobile(q)
        except ValueError:
            return []
        return _BY_MOBILE.rows(mobile=mobile, limit=limit)
    key = names.fold(q)
    if not key:
        return []
    if not key.isascii():
        # Indian scripts: substring match (trigrams of non-Latin letters depend on the
        # database locale, so no similarity ranking is relied on here).
        escaped = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return _NAME_CONTAINS.rows(pattern=f"%{escaped}%", limit=limit)
    words = key.split()
    if len(q) < 3 or (len(words) > 1 and all(len(w) < 3 for w in words)):
        # Two letters typed ("Ka"), or initials only ("K R"). What was typed counts, not
        # its fold: "Jha" and "Iyer" fold to "ja" and "ir" and are whole surnames.
        return _names_beginning(key, limit)
    return _names_by_words(key, words, limit, q)


# Names are searched by word, not as whole strings: a trigram nearest-neighbour scan over a
# million whole names reads most of its index (docs/PERFORMANCE.md, "Why names miss"),
# while the organization's dictionary of distinct name words (name_word) is small and its
# trigram index tells which words look like a typed word in well under a millisecond.
# Patients are then found, and ranked, in patient_word's primary key, which carries each
# patient's folded name: only the 20 patients shown are read from the patient table.
WORD_MATCH = 0.3  # how similar a dictionary word must be to a typed word (typing slips: 0.4–0.6)
WORD_BAND = 0.15  # a typed word with no word one slip away: its best words by trigrams and those this close
NEAREST_WORDS = 8  # dictionary words considered per typed word
NEWEST_PER_WORD = 20  # one typed word: the newest patients of each matching word are ranked
MIN_WORD_SIMILARITY = 0.45  # when a typed word matches no word of the name: how close the name must be
SLIP_MIN_LETTERS = 4  # shorter typed words are one slip away from too many names

# Hand-written SQL (a LATERAL per typed word), precompiled; both filter org_id themselves.
_NEAREST_WORDS = TextQuery("name_words_nearest", """
    SELECT t.n, d.word, d.similarity, d.patients
    FROM unnest(CAST(:typed AS text[])) WITH ORDINALITY AS t(word, n)
    CROSS JOIN LATERAL (
        SELECT word, patients, word_similarity(t.word, word) AS similarity FROM name_word
        WHERE org_id = CAST(:org_id AS bigint) ORDER BY t.word <<-> word LIMIT :scan) d
    WHERE d.similarity >= :min_similarity""")
_NEWEST_OF_WORDS = TextQuery("patients_newest_of_words", """
    SELECT hit.patient_id FROM unnest(CAST(:words AS text[])) AS c(word)
    CROSS JOIN LATERAL (
        SELECT patient_id, name_search FROM patient_word
        WHERE org_id = CAST(:org_id AS bigint) AND word = c.word
        ORDER BY patient_id DESC LIMIT :per_word) hit
    GROUP BY hit.patient_id, hit.name_search
    ORDER BY word_similarity(:key, hit.name_search) DESC, hit.patient_id DESC LIMIT :limit""")


_name_word = NameWord.__table__
# How many patients have each of these dictionary words (the words one slip from a typed word).
_WORD_COUNTS = Query("name_word_counts", select(_name_word.c.word, _name_word.c.patients).where(
    org(_name_word), _name_word.c.word == any_(bindparam("words", type_=ARRAY(Text)))))
# Dictionary words beginning with 1-2 letters: the word itself first, then the commonest (a
# range of the primary key).
_WORDS_BEGINNING = Query("name_words_beginning", select(_name_word.c.word).where(
    org(_name_word), _name_word.c.word >= bindparam("short", type_=String), _name_word.c.word < bindparam("upper", type_=String))
    .order_by((_name_word.c.word == bindparam("short")).desc(), _name_word.c.patients.desc())
    .limit(bindparam("limit", type_=Integer)))


def _names_beginning(key: str, limit: int) -> list[Match]:
    """Names beginning with the key, in name order. Similarity means nothing for two
    letters, and no trigram index helps with them."""
    upper = key[:-1] + chr(ord(key[-1]) + 1)
    return _NAME_BEGINS.rows(key=key, upper=upper, length=len(key), limit=limit)


@dataclass(frozen=True)
class _Typed:
    """A typed word (3 letters or more) and the dictionary words that may be meant by it."""

    word: str
    near: dict[str, float]  # its nearest words by trigrams, {word: similarity}, best first
    slips: frozenset[str]  # words one typing slip away: a letter dropped, extra, wrong or swapped


def _one_slip_away(word: str, typed: str) -> set[str]:
    """The folded words one typing slip from a typed word (what a spelling checker tries:
    trigrams rank "Narseen" no nearer to "Nasreen" than to a dozen other names). Slips of
    the folded word; and slips of the word as typed, then folded ("Rsahid" and "Praksah"
    are one swap from Rashid and Prakash, but two edits from their folds "rasid" and
    "prakas"): swaps, and a dropped vowel or h."""
    slips: set[str] = set()
    if len(word) >= SLIP_MIN_LETTERS:
        splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
        slips |= {a + b[1:] for a, b in splits if b} | {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
        slips |= {a + c + b[1:] for a, b in splits if b for c in string.ascii_lowercase}
        slips |= {a + c + b for a, b in splits for c in string.ascii_lowercase}
    if len(typed) >= SLIP_MIN_LETTERS and typed.isascii() and typed.isalpha():
        splits = [(typed[:i], typed[i:]) for i in range(len(typed) + 1)]
        slips |= {names.fold_word(a + b[1] + b[0] + b[2:]) for a, b in splits if len(b) > 1}
        slips |= {names.fold_word(a + c + b) for a, b in splits for c in "aeiouh"}
    return slips


def _look_up(typed: list[str], as_typed: dict[str, str]) -> tuple[list[_Typed], dict[str, int]]:
    """The dictionary words each typed word may mean, and how many patients have each: a
    KNN scan of ix_name_word_knn per typed word (NEAREST_WORDS at least WORD_MATCH similar,
    the commonest first among equals; ordered by distance alone in SQL, or PostgreSQL sorts
    the whole dictionary), then one primary-key lookup of the words one slip away from
    those that are not dictionary words themselves."""
    rows: list[list[tuple[float, int, str]]] = [[] for _ in typed]
    for n, word, similarity, count in _NEAREST_WORDS.rows(typed=typed, scan=2 * NEAREST_WORDS,
                                                          min_similarity=WORD_MATCH):
        rows[n - 1].append((similarity, count, word))
    patients_with = {w: c for found in rows for _, c, w in found}
    near = [{w: s for s, _, w in sorted(found, reverse=True)[:NEAREST_WORDS]} for found in rows]
    slips = {t: _one_slip_away(t, as_typed.get(t, t)) for t, n in zip(typed, near) if t not in n}
    if slips:
        patients_with |= {word: count for word, count in _WORD_COUNTS.rows(words=sorted(set().union(*slips.values())))}
    found = [_Typed(t, n, frozenset(slips.get(t, set()) & patients_with.keys())) for t, n in zip(typed, near)]
    return found, patients_with


def _spellings(typed: _Typed, others: list[str]) -> list[str]:
    """The dictionary words one of several typed words stands for: itself when some
    patient has it ("Gowramma", not also the 12,000 "Gowda"s that share its first
    trigrams); otherwise (a slip, a beginning: "Praksah", "Kavi") the words one slip away
    and the words it begins, or when no word is one slip away, its best words by trigrams
    and those within WORD_BAND of them. Never another typed word: one word of a name
    answers for one typed word."""
    near = {w: similarity for w, similarity in typed.near.items() if w not in others}
    if typed.word in near:
        return [typed.word]
    best = max(near.values(), default=0.0)
    close = {w for w, similarity in near.items() if similarity >= best - WORD_BAND or w.startswith(typed.word)}
    slips = typed.slips - set(others)
    return sorted(slips | {w for w in close if w.startswith(typed.word)} if slips else close)


def _words_beginning(short: str) -> list[str]:
    """A word of 1–2 letters after folding ("Jha" → "ja"): itself if some patient has it,
    then the commonest words beginning with it (the dictionary's primary key, a range)."""
    upper = short[:-1] + chr(ord(short[-1]) + 1)
    return [row.word for row in _WORDS_BEGINNING.rows(short=short, upper=upper, limit=NEAREST_WORDS)]


def _patients(ids: list[int]) -> list[Match]:
    """The patients of these ids (of this organization only), in that order."""
    if not ids:
        return []
    by_id = {row.id: row for row in _BY_IDS.rows(ids=ids)}
    return [by_id[i] for i in ids if i in by_id]


def _names_by_words(key: str, words: list[str], limit: int, q: str) -> list[Match]:
    """Every typed word of 3 letters or more must match one of its dictionary words (so
    spelling variants fold() does not join, and typing slips, still match); a shorter one
    must begin a word of the name ("K Ramesh"). Ranked by word similarity to all that was
    typed."""
    long = list(dict.fromkeys(w for w in words if len(w) >= 3))
    short = [w for w in words if len(w) < 3]
    as_typed = {names.fold(t): t.lower() for t in q.split()}  # "rasid": "rsahid"
    looked_up, patients_with = _look_up(long, as_typed)

    if len(words) == 1:
        # One word (a surname, the beginning of a given name): the newest patients of each
        # of its words, ranked; at most NEAREST_WORDS × NEWEST_PER_WORD index entries read,
        # however many thousand patients share the surname.
        candidates = sorted(looked_up[0].near.keys() | looked_up[0].slips) if long else _words_beginning(words[0])
        return _patients([row.patient_id for row in _NEWEST_OF_WORDS.rows(
            words=candidates, per_word=NEWEST_PER_WORD, key=key, limit=limit)])

    # Several words: the names having a spelling of every typed word.
    spellings = [_spellings(t, [o for o in long if o != t.word]) for t in looked_up]
    found = [words for words in spellings if words]
    if not found:
        return []
    slips = sorted(set().union(*(t.slips for t in looked_up)))
    rows = _having_every_word(key, spellings, short, patients_with, limit, slips) if len(found) == len(long) else []
    if not rows:
        # Some typed word is in no such name (a middle name the patient was registered
        # without, a slip too far from every word): the patients of the rarest typed word
        # whose names are closest to all that was typed.
        rarest = min(found, key=lambda words: sum(patients_with[w] for w in words))
        rows = [row for row in _having_every_word(key, [rarest], [], patients_with, limit, [])
                if row[1] >= MIN_WORD_SIMILARITY]
    return _patients([patient_id for patient_id, _ in rows])


def _having_every_word(key: str, spellings: list[list[str]], short: list[str], patients_with: dict[str, int],
                       limit: int, slips: list[str]) -> list[tuple[int, float]]:
    """(patient id, similarity) of the best `limit` patients having a word of every list
    of spellings, and a word beginning with each short typed word. All from patient_word's
    index: the rarest list's patients are read ("Gowramma Gowda": the ~1,000 Gowrammas, not
    12,000 Gowdas), the other lists only probed (semi-joins), names ranked on the folded
    name the index carries: a name with a word one slip from a typed word first ("Niramla"
    meant Nirmala more likely than Nirav, however trigrams score them), then by similarity."""
    rarest = min(spellings, key=lambda ws: sum(patients_with[w] for w in ws))
    others = [other for other in spellings if other is not rarest]
    query = _having_every_word_query(len(others), len(short), bool(slips))
    params: dict[str, Any] = {"key": key, "rarest": rarest, "limit": limit}
    params |= {f"other_{n}": other for n, other in enumerate(others)}
    params |= {f"short_{n}": f"% {w}%" for n, w in enumerate(short)}  # letters and digits only
    if slips:
        params["slips"] = slips
    return [(patient_id, score) for patient_id, score in query.rows(**params)]


_HAVING_EVERY_WORD: dict[tuple[int, int, bool], Query] = {}


def _having_every_word_query(others: int, short: int, slips: bool) -> Query:
    """The statement of _having_every_word for this many other lists and short words, with
    or without slips: compiled on first use and kept (a handful of shapes in practice,
    at most 64 kept)."""
    shape = (others, short, slips)
    query = _HAVING_EVERY_WORD.get(shape)
    if query is not None:
        return query
    words = ARRAY(Text)
    hit = PatientWord.__table__.alias("hit")
    score = func.word_similarity(bindparam("key", type_=Text), hit.c.name_search)
    stmt = select(hit.c.patient_id, score.label("score")).where(
        org(hit), hit.c.word == any_(bindparam("rarest", type_=words)))
    for n in range(others):
        also = PatientWord.__table__.alias(f"also_{n}")
        stmt = stmt.where(exists().where(org(also), also.c.word == any_(bindparam(f"other_{n}", type_=words)),
                                         also.c.patient_id == hit.c.patient_id))
    stmt = stmt.where(*[(" " + hit.c.name_search).like(bindparam(f"short_{n}", type_=Text)) for n in range(short)])
    # The best first; among equals the shorter name (no extra words), then the newest.
    order = [score.desc(), func.length(hit.c.name_search), hit.c.patient_id.desc()]
    if slips:
        name_words = func.string_to_array(hit.c.name_search, " ", type_=words)
        order.insert(0, name_words.overlap(bindparam("slips", type_=words)).desc())
    stmt = (stmt.group_by(hit.c.patient_id, hit.c.name_search)  # a name with two of the words, once
            .order_by(*order).limit(bindparam("limit", type_=Integer)))
    query = Query(f"patients_having_every_word_{others}_{short}_{int(slips)}", stmt)
    if len(_HAVING_EVERY_WORD) < 64:  # a box of 100 characters allows many shapes; people type a few
        _HAVING_EVERY_WORD[shape] = query
    return query


def age_parts(dob: date, on: date | None = None) -> tuple[int, int, int]:
    on = on or date.today()
    years = on.year - dob.year - ((on.month, on.day) < (dob.month, dob.day))
    months = (on.year - dob.year) * 12 + on.month - dob.month - (on.day < dob.day)
    months -= years * 12
    anchor_month = dob.month + years * 12 + months
    y, m = divmod(anchor_month - 1, 12)
    try:
        anchor = date(dob.year + y, m + 1, dob.day)
    except ValueError:
        anchor = date(dob.year + y, m + 1, 28)
    return years, months, (on - anchor).days


def age_label(patient: Patient, on: date | None = None) -> str:
    """"34 Y", "8 M", "12 D" — the way labels and reports show age; "~" when estimated."""
    years, months, days = age_parts(patient.date_of_birth, on)
    label = f"{years} Y" if years else (f"{months} M" if months else f"{days} D")
    return ("~" if patient.dob_estimated else "") + label
