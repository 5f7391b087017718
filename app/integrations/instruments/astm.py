"""ASTM E1394 / CLSI LIS2-A2 records (instruments.md §3): parse a message received by the link
layer into :class:`ParsedMessage`, and build the reply to a host query.

Delimiters come from the H record, never assumed (Beckman DxH sends ``H|\\!~``). Where each
vendor puts the sample id, test code and result fields differs, so those are per-instrument
profile keys (defaults follow LIS2-A2; the vendor values are in §3 and §4).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .fields import (FieldPath, as_list, decode_hex, parse_field_path, parse_timestamp, repetitions, select,
                     unescape_sequences, usable_delimiter)
from .parsed import ParsedMessage, ParsedResult, ParsedSpecimen, ProtocolError


@dataclass(frozen=True)
class Delimiters:
    field: str = "|"
    repeat: str = "\\"
    component: str = "^"
    escape: str = "&"

    @property
    def definition(self) -> str:
        """H-2 as written in an outbound header: repeat, component, escape."""
        return self.repeat + self.component + self.escape


DEFAULT_DELIMITERS = Delimiters()
# R field numbers (LIS2-A2 §3); Beckman DxH shifts them: {"range": 7, "flag": 8, "status": 10, "completed": 14}
DEFAULT_RESULT_FIELDS = {"value": 4, "units": 5, "range": 6, "flag": 7, "status": 9, "completed": 13}
_KNOWN_RECORDS = frozenset("HPORCQLMS")
_DILUTION = re.compile(r"^(.+?)/[0-9.]*$")  # Roche ``989/`` or ``10/2``: code, then "/dilution"


def unescape(text: str, d: Delimiters = DEFAULT_DELIMITERS) -> str:
    """``&F& &S& &R& &E&`` and ``&Xhh&`` (§3: Sysmex ``PNG&R&2024...``); unknown sequences stay."""
    simple = {"F": d.field, "S": d.component, "R": d.repeat, "E": d.escape}

    def resolve(name: str) -> str | None:
        if name in simple:
            return simple[name]
        return decode_hex(name[1:]) if name[:1] == "X" else None

    return unescape_sequences(text, d.escape, resolve)


def escape(text: str, d: Delimiters = DEFAULT_DELIMITERS) -> str:
    """Escape one outbound value. ASTM has no line-break escape and CR ends a record, so line
    breaks become spaces."""
    codes = {d.escape: "E", d.field: "F", d.component: "S", d.repeat: "R"}
    flat = text.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    return "".join(f"{d.escape}{codes[ch]}{d.escape}" if ch in codes else ch for ch in flat)


def decode_text(data: bytes | str, encoding: str | None = None) -> str:
    """UTF-8, or Latin-1 when the bytes are not valid UTF-8 (8-bit instruments sending µ as
    0xB5); an explicit ``encoding`` is used with replacement characters. Never raises."""
    if isinstance(data, str):
        return data
    if encoding:
        try:
            return data.decode(encoding, errors="replace")
        except LookupError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def parse_records(text: bytes | str, *, encoding: str | None = None) -> tuple[Delimiters, list[list[str]]]:
    """Records as field lists (``record[n - 1]`` is field n). Records end with CR; CRLF and LF
    are tolerated. ProtocolError when the first record is not an H record."""
    decoded = decode_text(text, encoding)
    lines = [line.lstrip(" \t\x00\ufeff") for line in decoded.replace("\r\n", "\r").replace("\n", "\r").split("\r")]
    lines = [line for line in lines if line.strip()]
    if not lines or len(lines[0]) < 2 or lines[0][0] != "H" or not usable_delimiter(lines[0][1]):
        raise ProtocolError("the message does not start with an H record")
    d = _delimiters(lines[0])
    return d, [line.split(d.field) for line in lines]


def _delimiters(header: str) -> Delimiters:
    """H record characters 2-5: field, repeat, component, escape (§3). Missing ones default."""
    field_sep = header[1]
    definition = header[2:].split(field_sep, 1)[0][:3]
    chars = [definition[i] if i < len(definition) else default
             for i, default in enumerate((DEFAULT_DELIMITERS.repeat, DEFAULT_DELIMITERS.component, DEFAULT_DELIMITERS.escape))]
    return Delimiters(field_sep, chars[0], chars[1], chars[2])


def record_value(record: list[str], path: FieldPath, d: Delimiters) -> str:
    """Split-then-unescape read of field ``path.field`` (H-2 is returned raw, never split)."""
    index = path.field - 1
    if index >= len(record):
        return ""
    if record[0][:1] == "H" and path.field == 2:
        return record[1]
    raw = select(record[index], path, repeat=d.repeat, component=d.component, subcomponent=None)
    return unescape(raw, d)


def _rep_leaf(repetition: str, path: FieldPath, d: Delimiters) -> str:
    leaf = path.leaf()
    return unescape(select(repetition, leaf, repeat="", component=d.component, subcomponent=None), d)


# --- extraction ------------------------------------------------------------------------------


@dataclass
class _Profile:
    sample_id: FieldPath
    fallbacks: list[FieldPath]
    test_code: FieldPath
    strip_dilution: bool
    result_fields: dict[str, int]
    value_component: int
    query_id: FieldPath
    qc_action_codes: set[str]
    encoding: str | None


def _profile(raw: dict[str, Any] | None) -> _Profile:
    raw = raw or {}
    fields = dict(DEFAULT_RESULT_FIELDS)
    fields.update({k: int(v) for k, v in (raw.get("result_fields") or {}).items()})
    if any(n < 2 for n in fields.values()):
        raise ValueError("result field numbers start at 2 (field 1 is the record letter)")
    return _Profile(
        sample_id=parse_field_path(raw.get("sample_id_field") or "O-3"),
        fallbacks=[parse_field_path(p) for p in as_list(raw.get("sample_id_fallbacks"), [])],
        test_code=parse_field_path(raw.get("test_code_field") or "R-3.4"),
        strip_dilution=bool(raw.get("strip_dilution", True)),
        result_fields=fields,
        value_component=int(raw["value_component"]) if raw.get("value_component") is not None else 1,
        query_id=parse_field_path(raw.get("query_id_field") or "Q-3.2"),
        qc_action_codes={c.upper() for c in as_list(raw.get("qc_action_codes"), ["Q"])},
        encoding=raw.get("encoding") or None,
    )


class _State:
    """Where the next C record belongs: the last R, else the current O."""

    def __init__(self) -> None:
        self.specimen: ParsedSpecimen | None = None
        self.result: ParsedResult | None = None
        self.query = False
        self.in_patient = False  # after a P record and before its first O: patient comments


def extract(text: bytes | str, profile: dict[str, Any] | None = None) -> ParsedMessage:
    """Parse one E1394 message. Profile keys (all optional):

    * ``sample_id_field`` "O-3" (Sysmex "O-4.3", space-padded: stripped), ``sample_id_fallbacks`` [];
    * ``test_code_field`` "R-3.4" (Sysmex "R-3.5"); ``strip_dilution`` True cuts Roche's
      ``989/`` or ``10/2`` at the "/" (only when a number or nothing follows, so "A/G" stays);
    * ``result_fields`` overrides R field numbers (DxH ``{"range": 7, "flag": 8, "status": 10,
      "completed": 14}``); ``value_component`` 1 (the part of R-4 before the component delimiter,
      DxH ``value!flag``; 0 = the whole field);
    * ``query_id_field`` "Q-3.2" (Roche "Q-3.3"); ``qc_action_codes`` ["Q"] (O-12);
    * ``encoding``: None = UTF-8, else Latin-1 (see :func:`decode_text`).
    Only :class:`ProtocolError` is raised for bad bytes; a bad profile raises ValueError."""
    prof = _profile(profile)
    d, records = parse_records(text, encoding=prof.encoding)
    header = records[0]
    parsed = ParsedMessage(protocol="astm", kind="other", message_type="ASTM",
                           control_id=record_value(header, FieldPath("H", 3), d).strip(),
                           sender=record_value(header, FieldPath("H", 5, 1), d).strip())
    state = _State()
    for number, record in enumerate(records[1:], start=2):
        _record(record, number, d, prof, parsed, state)
    parsed.kind = _kind(parsed, state)
    return parsed


def _record(record: list[str], number: int, d: Delimiters, prof: _Profile, parsed: ParsedMessage,
            state: _State) -> None:
    kind = record[0][:1].upper()
    state.in_patient = kind == "P" or (state.in_patient and kind == "C")
    if kind == "O":
        state.specimen, state.result = _order(record, d, prof, parsed.warnings), None
        parsed.specimens.append(state.specimen)
    elif kind == "R":
        _result_record(record, number, d, prof, parsed, state)
    elif kind == "C":
        _comment_record(record, number, d, parsed, state)
    elif kind == "Q":
        state.query = True
        _query(record, d, prof, parsed)
    elif kind == "P":
        state.specimen, state.result = None, None
    elif kind == "H":
        parsed.warnings.append(f"record {number}: a second H record; read as part of the same message")
    elif kind in ("M", "S"):
        parsed.warnings.append(f"record {number}: {kind} record ignored")
    elif kind != "L":
        parsed.warnings.append(f"record {number}: unknown record type ignored")


def _kind(parsed: ParsedMessage, state: _State) -> str:
    if state.query:
        return "query"
    if not parsed.specimens:
        return "other"
    return "qc" if all(s.qc for s in parsed.specimens) else "results"


def _order(record: list[str], d: Delimiters, prof: _Profile, warnings: list[str]) -> ParsedSpecimen:
    sample_id = record_value(record, prof.sample_id.leaf(), d).strip()
    if not sample_id:
        for path in prof.fallbacks:
            sample_id = record_value(record, path.leaf(), d).strip()
            if sample_id:
                warnings.append(f"sample id taken from {path} ({prof.sample_id} is empty)")
                break
        else:
            warnings.append("an O record has no sample id")
    action = record_value(record, FieldPath("O", 12, 1), d).strip().upper()
    return ParsedSpecimen(sample_id=sample_id, qc=bool(action) and action in prof.qc_action_codes)


def _result_record(record: list[str], number: int, d: Delimiters, prof: _Profile, parsed: ParsedMessage,
                   state: _State) -> None:
    if state.specimen is None:
        parsed.warnings.append(f"record {number}: R record before any O record; read as its own specimen")
        state.specimen = ParsedSpecimen(sample_id="")
        parsed.specimens.append(state.specimen)
    f = prof.result_fields
    code = record_value(record, prof.test_code.leaf(), d).strip()
    if prof.strip_dilution:
        match = _DILUTION.match(code)
        code = match.group(1).strip() if match else code
    value_path = FieldPath("R", f["value"], prof.value_component or None)
    result = ParsedResult(
        code=code,
        value=record_value(record, value_path, d).strip(),
        units=record_value(record, FieldPath("R", f["units"]), d).strip(),
        reference_range=record_value(record, FieldPath("R", f["range"]), d).strip(),
        flags=_flags(record, f["flag"], d),
        status=record_value(record, FieldPath("R", f["status"], 1), d).strip(),
        observed_at=_timestamp(record, f["completed"], d, number, parsed.warnings),
    )
    if not code:
        parsed.warnings.append(f"record {number}: R record without a test code")
    state.specimen.results.append(result)
    state.result = result


def _flags(record: list[str], number: int, d: Delimiters) -> list[str]:
    if number - 1 >= len(record):
        return []
    flags = [_rep_leaf(r, FieldPath("R", number), d).strip() for r in repetitions(record[number - 1], d.repeat)]
    return [f for f in flags if f]


def _timestamp(record: list[str], number: int, d: Delimiters, rec_no: int, warnings: list[str]) -> datetime | None:
    try:
        return parse_timestamp(record_value(record, FieldPath("R", number, 1), d))
    except ValueError:
        warnings.append(f"record {rec_no}: R-{number} is not a valid timestamp")
        return None


def _comment_record(record: list[str], number: int, d: Delimiters, parsed: ParsedMessage, state: _State) -> None:
    """C-4 text: non-empty components joined by a space, repetitions one per line. A C belongs to
    the record before it (§3): the last R, else the current O; elsewhere it is dropped."""
    raw = record[3] if len(record) > 3 else ""
    lines = []
    for rep in repetitions(raw, d.repeat):
        parts = [unescape(c, d).strip() for c in rep.split(d.component)]
        lines.append(" ".join(p for p in parts if p))
    text = "\n".join(line for line in lines if line)
    if not text:
        return
    if state.result is not None:
        state.result.comments.append(text)
    elif state.specimen is not None:
        state.specimen.comments.append(text)
    elif not state.in_patient:  # a patient comment is not stored: ParsedMessage has no patient
        parsed.warnings.append(f"record {number}: C record outside an order ignored")


def _query(record: list[str], d: Delimiters, prof: _Profile, parsed: ParsedMessage) -> None:
    """Q-3 starting range id, possibly a repeat list; the id is in the profile's component
    (Roche: component 3, space-padded, §3). ``ALL`` is not a sample id."""
    index = prof.query_id.field - 1
    raw = record[index] if index < len(record) else ""
    for rep in repetitions(raw, d.repeat):
        value = _rep_leaf(rep, prof.query_id, d).strip()
        if rep.strip().upper() == "ALL" or value.upper() == "ALL":
            parsed.warnings.append("query for ALL samples is not supported")
        elif value and value not in parsed.query_ids:
            parsed.query_ids.append(value)
    if not parsed.query_ids:
        parsed.warnings.append("query without a sample id")


# --- query reply -----------------------------------------------------------------------------


def query_echoes(text: bytes | str, profile: dict[str, Any] | None = None) -> tuple[Delimiters, dict[str, str]]:
    """For each sample id asked about: the components of Q-3 that follow the id, to be echoed
    in the reply's O-4. Roche sends ``^^<id>^<seq>^<rack>^<pos>^^S1^SC`` and expects its own
    ``<seq>^<rack>^<pos>^^S1^SC`` back (§3). Also returns the query's delimiters, which the
    reply must use (Beckman DxH: ``|\\!~``)."""
    d, records = parse_records(text)
    prof = _profile(profile)
    echoes: dict[str, str] = {}
    for record in records:
        if not record or record[0].upper() != "Q":
            continue
        index = prof.query_id.field - 1
        raw = record[index] if index < len(record) else ""
        for rep in repetitions(raw, d.repeat):
            value = _rep_leaf(rep, prof.query_id, d).strip()
            if value and value.upper() != "ALL":
                after = rep.split(d.component)[prof.query_id.component or 1:]
                echoes.setdefault(value, d.component.join(after))
    return d, echoes


def query_reply(*, query_message: ParsedMessage, sample_id: str, test_codes: list[str], patient_name: str = "",
                sender_id: str = "LIS", delimiters: Delimiters | None = None, now: datetime,
                instrument_specimen_id: str = "", encoding: str = "utf-8") -> bytes:
    """The host's answer to a Q record (§3): ``H``, ``P|1``, ``O|1|<id>||^^^C1\\^^^C2|R||||||A|...|O``
    (O-26 report type O), ``L|1|N``; with no test codes ``H``, ``L|1|I`` (no information).

    ``instrument_specimen_id`` goes to O-4 raw (already in ASTM syntax): Roche expects its own
    ``seq^rack^pos^^S1^SC`` echoed there (§3). ``query_message`` is accepted for symmetry with the
    other builders; its fields are not needed for the generic reply."""
    del query_message
    d = delimiters or DEFAULT_DELIMITERS
    stamp = now.strftime("%Y%m%d%H%M%S")
    header = _join(d, ["H", d.definition, "", "", escape(sender_id, d)] + [""] * 6 + ["P", "1", stamp])
    if not test_codes:
        records = [header, _join(d, ["L", "1", "I"])]
    else:
        tests = d.repeat.join(d.component * 3 + escape(code, d) for code in test_codes)
        patient = _join(d, ["P", "1"] + ([""] * 3 + [escape(patient_name, d)] if patient_name else []))
        order = ["O", "1", escape(sample_id, d), instrument_specimen_id, tests, "R"] + [""] * 5 + ["A"]
        order += [""] * 13 + ["O"]
        records = [header, patient, _join(d, order), _join(d, ["L", "1", "N"])]
    return "".join(r + "\r" for r in records).encode(encoding, errors="replace")


def _join(d: Delimiters, fields: list[str]) -> str:
    return d.field.join(fields)
