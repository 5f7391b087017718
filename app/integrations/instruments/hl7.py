"""HL7 v2 (ER7) for analyzers: a tolerant split-then-unescape parser, result extraction into
:class:`ParsedMessage`, ACKs, the Mindray QCK^Q02 + DSR^Q03 query answer and ORM^O01 orders.

Why not a library: python-hl7 turns ``\\.br\\`` into CR and loses a backslash in ``\\E\\R\\``;
hl7apy's strict validation rejects real analyzer output (instruments-libraries.md). Analyzer
messages are small and flat, so a list of segments, each a list of raw field strings, is enough.
Values are unescaped only at the leaf, after splitting (instruments.md §1.4).
"""
from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from .fields import (FieldPath, as_list, as_path, decode_hex, parse_field_path, parse_timestamp, repetitions,
                     select, unescape_sequences, usable_delimiter)
from .parsed import ParsedMessage, ParsedResult, ParsedSpecimen, ProtocolError

Segment = tuple[str, list[str]]

_SEGMENT_NAME = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_KNOWN_SEGMENTS = frozenset(
    "MSH SFT UAC PID PD1 PV1 PV2 NK1 ORC OBR OBX NTE SPM SAC INV TQ1 TQ2 TCD CTI CTD FT1 DG1 AL1 "
    "IN1 GT1 PRT EVN QRD QRF QPD QAK RCP MSA ERR DSC DSP EQU ECD".split())
_ENHANCED_ACK_VALUES = frozenset({"AL", "NE", "ER", "SU"})  # HL7 table 0155
_LEADING_NOISE = b" \t\r\n\x00\x0b\xef\xbb\xbf"  # whitespace, a stray VT, a UTF-8 BOM


@dataclass(frozen=True)
class Hl7Delimiters:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def encoding_characters(self) -> str:
        """MSH-2 as written in an outbound message."""
        return self.component + self.repetition + self.escape + self.subcomponent


DEFAULT_DELIMITERS = Hl7Delimiters()


# --- escaping --------------------------------------------------------------------------------


def escape(text: str, delimiters: Hl7Delimiters = DEFAULT_DELIMITERS) -> str:
    """Escape a value for one leaf of an outbound message (instruments.md §1.4).

    Single pass, so the escape character is escaped first by construction; line breaks become
    ``\\.br\\`` because a raw CR would end the segment."""
    d = delimiters
    codes = {d.escape: "E", d.field: "F", d.component: "S", d.subcomponent: "T", d.repetition: "R"}
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    out = []
    for ch in normalized:
        if ch == "\n":
            out.append(f"{d.escape}.br{d.escape}")
        elif ch in codes:
            out.append(f"{d.escape}{codes[ch]}{d.escape}")
        else:
            out.append(ch)
    return "".join(out)


def unescape(text: str, delimiters: Hl7Delimiters = DEFAULT_DELIMITERS) -> str:
    """Resolve escape sequences in one already-split leaf. ``\\.br\\`` -> "\\n" (not CR, which
    would break a re-serialised message); unknown sequences stay as sent."""
    d = delimiters
    simple = {"F": d.field, "S": d.component, "T": d.subcomponent, "R": d.repetition, "E": d.escape,
              "H": "", "N": "", ".br": "\n", ".sp": "\n"}

    def resolve(name: str) -> str | None:
        if name in simple:
            return simple[name]
        if name[:1] == "X":
            return decode_hex(name[1:])
        if name[:1] == "." and name[1:3].isalpha():  # other formatting commands (.fi .nf .in...)
            return ""
        return None

    return unescape_sequences(text, d.escape, resolve)


def _leaf_text(raw: str, delimiters: Hl7Delimiters) -> str:
    """A leaf value: the HL7 null ``""`` is empty, everything else unescaped."""
    return "" if raw == '""' else unescape(raw, delimiters)


def _rep_leaf(repetition: str, path: FieldPath, d: Hl7Delimiters) -> str:
    """The leaf at path's component/subcomponent of one given repetition."""
    leaf = path.leaf()
    return _leaf_text(select(repetition, leaf, repeat="", component=d.component, subcomponent=d.subcomponent), d)


# --- parsing ---------------------------------------------------------------------------------


class Hl7Message:
    """Tolerant ER7 structure. ``segments[i] = (name, fields)`` with ``fields[n]`` = field n
    (for MSH too: ``fields[1]`` is the field separator, ``fields[2]`` the encoding characters)."""

    def __init__(self, segments: list[Segment], delimiters: Hl7Delimiters, raw_text: str,
                 encoding: str, warnings: list[str]) -> None:
        self.segments = segments
        self.delimiters = delimiters
        self.raw_text = raw_text
        self.encoding = encoding
        self.warnings = warnings

    def segments_named(self, name: str) -> list[list[str]]:
        return [fields for seg, fields in self.segments if seg == name]

    def get(self, path: FieldPath | str, segment_index: int = 0) -> str:
        """Unescaped text at ``path`` in the ``segment_index``-th segment of that name ('' if absent)."""
        p = as_path(path)
        found = self.segments_named(p.segment)
        if segment_index >= len(found):
            return ""
        return field_value(found[segment_index], p, self.delimiters)

    def raw(self, path: FieldPath | str, segment_index: int = 0) -> str:
        """The raw (still escaped) field text, e.g. to copy it into a reply unchanged."""
        p = as_path(path)
        found = self.segments_named(p.segment)
        if segment_index >= len(found) or p.field >= len(found[segment_index]):
            return ""
        return found[segment_index][p.field]

    @property
    def control_id(self) -> str:
        return self.get("MSH-10").strip()

    @property
    def message_type(self) -> str:
        """``ORU^R01``: MSH-9 code and trigger; the message structure (component 3) is left out."""
        code, trigger = self.get("MSH-9.1").strip(), self.get("MSH-9.2").strip()
        return f"{code}^{trigger}" if trigger else code

    @property
    def version(self) -> str:
        return self.get("MSH-12.1").strip()


def field_value(fields: list[str], path: FieldPath, delimiters: Hl7Delimiters) -> str:
    """Split-then-unescape read of one segment's field list (see :class:`Hl7Message`)."""
    if fields and fields[0] == "MSH" and path.field in (1, 2):
        return fields[path.field] if path.field < len(fields) else ""  # never split the delimiters
    if path.field >= len(fields):
        return ""
    d = delimiters
    raw = select(fields[path.field], path, repeat=d.repetition, component=d.component, subcomponent=d.subcomponent)
    return _leaf_text(raw, d)


def parse_message(payload: bytes, *, encoding: str | None = None) -> Hl7Message:
    """Parse one HL7 message. Raises :class:`ProtocolError` only when there is no usable MSH.

    The charset comes from MSH-18 unless ``encoding`` is given (instruments.md §1.1: Mindray
    ``UNICODE`` is UTF-8 in practice). Decoding never fails: undeclared/ASCII text that is not
    UTF-8 is read as Latin-1 (a µ from an 8-bit device), declared UTF-8 uses replacement chars.
    CR, LF and CRLF all end a segment."""
    data = bytes(payload).lstrip(_LEADING_NOISE)
    if not data.startswith(b"MSH") or len(data) < 5:
        raise ProtocolError("the message does not start with an MSH segment")
    sep = chr(data[3])
    if not usable_delimiter(sep):
        raise ProtocolError("MSH has no usable field separator")
    warnings: list[str] = []
    codec = _choose_codec(data, sep, encoding, warnings)
    text, codec = _decode(data, codec, warnings)
    lines = [line for line in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if line.strip()]
    if not lines or not lines[0].lstrip("\ufeff").startswith("MSH" + sep):
        raise ProtocolError("the message does not start with an MSH segment")
    lines[0] = lines[0].lstrip("\ufeff")
    delimiters = _delimiters(lines[0], sep)
    if not all(usable_delimiter(c) for c in delimiters.encoding_characters):
        raise ProtocolError("MSH-2 encoding characters are not usable")
    segments = [_split_segment(line, delimiters, warnings) for line in lines]
    return Hl7Message(segments, delimiters, text, codec, warnings)


def _delimiters(msh_line: str, sep: str) -> Hl7Delimiters:
    enc = msh_line[4:].split(sep, 1)[0][:4]
    default = DEFAULT_DELIMITERS
    chars = [enc[i] if i < len(enc) else fallback
             for i, fallback in enumerate((default.component, default.repetition, default.escape, default.subcomponent))]
    return Hl7Delimiters(sep, chars[0], chars[1], chars[2], chars[3])


def _split_segment(line: str, d: Hl7Delimiters, warnings: list[str]) -> Segment:
    if line.startswith("MSH"):
        parts = line.split(d.field)
        return "MSH", ["MSH", d.field] + parts[1:]
    fields = line.split(d.field)
    name = fields[0].strip()
    if not _SEGMENT_NAME.match(name):
        warnings.append("a line that is not a segment was ignored")
    elif name not in _KNOWN_SEGMENTS and not name.startswith("Z"):
        warnings.append(f"unknown segment {name} ignored")
    fields[0] = name
    return name, fields


_CHARSETS = {"": None, "ASCII": None, "UNICODE": "utf-8", "UNICODE UTF-8": "utf-8", "UTF-8": "utf-8",
             "UTF8": "utf-8", "8859/1": "latin-1", "8859/15": "iso8859-15"}


def _choose_codec(data: bytes, sep: str, explicit: str | None, warnings: list[str]) -> str:
    """The codec to decode with; "" means "UTF-8, else Latin-1" (nothing reliable declared)."""
    if explicit:
        return _known_codec(explicit, warnings)
    first_line = re.split(rb"[\r\n]", data, maxsplit=1)[0].decode("latin-1")
    fields = first_line.split(sep)
    declared = fields[17].split("~")[0].strip().upper() if len(fields) > 17 else ""
    if declared in _CHARSETS:
        return _CHARSETS[declared] or ""
    if re.fullmatch(r"8859/\d{1,2}", declared):
        return _known_codec("iso" + declared.replace("/", "-"), warnings)
    warnings.append("MSH-18 character set not recognised; read as UTF-8")
    return "utf-8"


def _known_codec(name: str, warnings: list[str]) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        warnings.append("unknown character set; read as UTF-8")
        return "utf-8"


def _decode(data: bytes, codec: str, warnings: list[str]) -> tuple[str, str]:
    """The text and the codec actually used (replies are encoded with it)."""
    if not codec:
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            warnings.append("text is not UTF-8; read as Latin-1")
            return data.decode("latin-1"), "latin-1"
    text = data.decode(codec, errors="replace")
    if "\ufffd" in text and codec.replace("_", "-") in ("utf-8", "utf8"):
        warnings.append("invalid bytes for the declared character set were replaced")
    return text, codec


# --- extraction ------------------------------------------------------------------------------


@dataclass
class _Profile:
    sample_id: FieldPath
    fallbacks: list[FieldPath]
    test_code: FieldPath
    test_name: FieldPath
    qc_field: FieldPath | None
    qc_values: set[str]
    skip_value_types: set[str]
    query_id: FieldPath | None


def _profile(raw: dict[str, Any] | None) -> _Profile:
    raw = raw or {}
    sample_id = parse_field_path(raw.get("sample_id_field") or "OBR-2")
    default_fallbacks = [p for p in ("OBR-3", "SPM-2", "PID-3") if parse_field_path(p) != sample_id]
    qc_field = raw.get("qc_field")
    query_id = raw.get("query_id_field")
    return _Profile(
        sample_id=sample_id,
        fallbacks=[parse_field_path(p) for p in as_list(raw.get("sample_id_fallbacks"), default_fallbacks)],
        test_code=parse_field_path(raw.get("test_code_field") or "OBX-3.1"),
        test_name=parse_field_path(raw.get("test_name_field") or "OBX-3.2"),
        qc_field=parse_field_path(qc_field) if qc_field else None,
        qc_values=set(as_list(raw.get("qc_values"), [])),
        skip_value_types={v.upper() for v in as_list(raw.get("skip_value_types"), ["ED"])},
        query_id=parse_field_path(query_id) if query_id else None,
    )


def extract(msg: Hl7Message, profile: dict[str, Any] | None = None) -> ParsedMessage:
    """Results (ORU^*, OUL^*), queries (QRY^*, QBP^*) or "other", per instruments.md §1.3/§1.5.

    Profile keys (all optional; paths as in :mod:`.fields`):

    * ``sample_id_field`` "OBR-2" (Mindray BC "OBR-3", Roche "SPM-2"), always read as one leaf;
      ``sample_id_fallbacks`` tried in turn when it is empty, default OBR-3, SPM-2, PID-3 minus
      the primary. Each fallback used adds a warning. Set ``[]`` for Mindray BS, whose OBR-3 is
      the rack position, so a missing barcode never turns into a guessed id;
    * ``test_code_field`` "OBX-3.1"; ``test_name_field`` "OBX-3.2" (Mindray BS "OBX-4");
    * ``qc_field`` + ``qc_values`` (Mindray BS "MSH-16", ["1", "2"]): a match marks the group QC;
      SPM-11 role Q/C does too. A message whose specimens are all QC is kind "qc";
    * ``skip_value_types`` ["ED"]: Base64 histograms are not results (a warning says so);
    * ``query_id_field``: default QPD-3 when there is a QPD, else QRD-8.
    A malformed path raises ValueError (configuration error, validated at input time)."""
    prof = _profile(profile)
    parsed = ParsedMessage(protocol="hl7", kind="other", message_type=msg.message_type,
                           control_id=msg.control_id, sender=_sender(msg), warnings=list(msg.warnings))
    family = msg.get("MSH-9.1").strip().upper()
    if family in ("ORU", "OUL"):
        _extract_results(msg, prof, parsed)
    elif family in ("QRY", "QBP"):
        _extract_query(msg, prof, parsed)
    return parsed


def _sender(msg: Hl7Message) -> str:
    app, facility = msg.get("MSH-3.1").strip(), msg.get("MSH-4.1").strip()
    return f"{app}^{facility}" if facility else app


@dataclass
class _Group:
    """The segments of one specimen (from its OBR, or SPM for OUL) and the header before it."""

    segments: list[Segment]
    context: list[Segment]

    def find(self, name: str) -> list[str] | None:
        for seg, fields in self.segments + self.context:
            if seg == name:
                return fields
        return None


def _groups(msg: Hl7Message, warnings: list[str]) -> list[_Group]:
    """Cut the message into specimen groups. The group starts at whichever of OBR/SPM comes
    first: OBR for ORU^R01 (its SPM follows the OBXs), SPM for OUL^R22 (``SPM SAC OBR ORC TQ1
    OBX``). A PID starts a new patient context for the groups after it."""
    names = [name for name, _ in msg.segments]
    starters = [n for n in names if n in ("OBR", "SPM")]
    starter = starters[0] if starters else "OBR"
    groups: list[_Group] = []
    context: list[Segment] = []
    current: _Group | None = None
    for seg in msg.segments:
        name = seg[0]
        if name == "PID":
            context, current = [c for c in context if c[0] == "MSH"] + [seg], None
        elif name == starter:
            current = _Group([seg], list(context))
            groups.append(current)
        elif current is not None:
            current.segments.append(seg)
        elif name == "OBX":
            warnings.append("OBX before any OBR/SPM: read as its own specimen")
            current = _Group([seg], list(context))
            groups.append(current)
        else:
            context.append(seg)
    return groups


def _extract_results(msg: Hl7Message, prof: _Profile, parsed: ParsedMessage) -> None:
    parsed.kind = "results"
    for group in _groups(msg, parsed.warnings):
        parsed.specimens.append(_specimen(group, msg.delimiters, prof, parsed.warnings))
    if not parsed.specimens:
        parsed.warnings.append("no OBR/SPM/OBX in a results message")
    elif all(s.qc for s in parsed.specimens):
        parsed.kind = "qc"


def _read(group: _Group, path: FieldPath, d: Hl7Delimiters) -> str:
    fields = group.find(path.segment)
    return "" if fields is None else field_value(fields, path, d)


def _specimen(group: _Group, d: Hl7Delimiters, prof: _Profile, warnings: list[str]) -> ParsedSpecimen:
    """One specimen. An NTE belongs to the OBX or OBR right before it (instruments.md §1.3); the
    notes of a skipped OBX (an ED histogram) are dropped with it."""
    specimen = ParsedSpecimen(sample_id=_sample_id(group, d, prof, warnings), qc=_is_qc(group, d, prof))
    current_obr: list[str] | None = None
    notes: list[str] | None = specimen.comments  # where the next NTE goes
    for name, fields in group.segments:
        if name in ("OBR", "SPM"):
            current_obr = fields if name == "OBR" else current_obr
            notes = specimen.comments
        elif name == "OBX":
            result = _result(fields, current_obr, d, prof, warnings)
            if result is not None:
                specimen.results.append(result)
            notes = result.comments if result is not None else None
        elif name == "NTE":
            text = _comment(fields, d)
            if text and notes is not None:
                notes.append(text)
    return specimen


def _sample_id(group: _Group, d: Hl7Delimiters, prof: _Profile, warnings: list[str]) -> str:
    value = _read(group, prof.sample_id.leaf(), d).strip()
    if value:
        return value
    for path in prof.fallbacks:
        value = _read(group, path.leaf(), d).strip()
        if value:
            warnings.append(f"sample id taken from {path} ({prof.sample_id} is empty)")
            return value
    warnings.append("a specimen has no sample id")
    return ""


def _is_qc(group: _Group, d: Hl7Delimiters, prof: _Profile) -> bool:
    """Profile rule (e.g. Mindray BS MSH-16 = 1 calibration / 2 QC, instruments.md §1.3), or
    SPM-11 specimen role Q (control) / C (calibrator), HL7 table 0369."""
    if prof.qc_field is not None and _read(group, prof.qc_field, d).strip() in prof.qc_values:
        return True
    spm = group.find("SPM")
    if spm is None or len(spm) <= 11:
        return False
    roles = {_rep_leaf(r, FieldPath("SPM", 11), d).strip().upper() for r in repetitions(spm[11], d.repetition)}
    return bool(roles & {"Q", "C"})


def _result(obx: list[str], obr: list[str] | None, d: Hl7Delimiters, prof: _Profile,
            warnings: list[str]) -> ParsedResult | None:
    set_id = field_value(obx, FieldPath("OBX", 1), d).strip() or "?"
    value_type = field_value(obx, FieldPath("OBX", 2, 1), d).strip().upper()
    if value_type in prof.skip_value_types:
        warnings.append(f"OBX {set_id}: value type {value_type} is not a result; skipped")
        return None
    result = ParsedResult(
        code=field_value(obx, prof.test_code.leaf(), d).strip(),
        value=_value(obx, value_type, d),
        units=field_value(obx, FieldPath("OBX", 6, 1), d).strip(),
        reference_range=field_value(obx, FieldPath("OBX", 7), d).strip(),
        flags=_flags(obx, d),
        status=field_value(obx, FieldPath("OBX", 11, 1), d).strip(),
        value_type=value_type,
        name=field_value(obx, prof.test_name, d).strip(),
    )
    result.observed_at = _observed_at(obx, obr, d, set_id, warnings)
    if not result.code:
        warnings.append(f"OBX {set_id}: no test code")
    return result


def _value(obx: list[str], value_type: str, d: Hl7Delimiters) -> str:
    """OBX-5 as text. CE/CWE: the code (component 1, else the text); SN: its parts joined
    (``<^20`` -> ``<20``); TX/FT: all repetitions, one per line; others: the first repetition.
    Comma decimals are left as sent (the service normalises, instruments.md §1.3)."""
    if len(obx) <= 5:
        return ""
    reps = repetitions(obx[5], d.repetition)
    if value_type in ("TX", "FT"):
        return "\n".join(_leaf_text(r, d) for r in reps).strip()
    parts = [_leaf_text(c, d) for c in reps[0].split(d.component)]
    if value_type in ("CE", "CWE", "CNE"):
        return (parts[0].strip() or (parts[1].strip() if len(parts) > 1 else ""))
    if value_type == "SN":
        return "".join(p.strip() for p in parts).strip()
    return d.component.join(parts).strip()


def _flags(obx: list[str], d: Hl7Delimiters) -> list[str]:
    """OBX-8 repetitions (Mindray ``H~A``, ``~N``), component 1 of each (Roche ``N^^HL70078``)."""
    if len(obx) <= 8:
        return []
    flags = [_rep_leaf(r, FieldPath("OBX", 8), d).strip() for r in repetitions(obx[8], d.repetition)]
    return [f for f in flags if f]


def _observed_at(obx: list[str], obr: list[str] | None, d: Hl7Delimiters, set_id: str,
                 warnings: list[str]) -> datetime | None:
    """OBX-14, else OBX-19 (Roche leaves OBX-14 empty, instruments.md §1.3), else OBR-7."""
    candidates = [(obx, 14), (obx, 19)] + ([(obr, 7)] if obr is not None else [])
    for fields, number in candidates:
        text = field_value(fields, FieldPath(fields[0], number, 1), d)
        try:
            stamp = parse_timestamp(text)
        except ValueError:
            warnings.append(f"OBX {set_id}: {fields[0]}-{number} is not a valid timestamp")
            continue
        if stamp is not None:
            return stamp
    return None


def _comment(nte: list[str], d: Hl7Delimiters) -> str:
    """NTE-3, repetitions one per line (FT text)."""
    if len(nte) <= 3:
        return ""
    return "\n".join(_leaf_text(r, d) for r in repetitions(nte[3], d.repetition)).strip()


def _extract_query(msg: Hl7Message, prof: _Profile, parsed: ParsedMessage) -> None:
    """Mindray QRY^Q02: QRD-8 holds the barcode(s); IHE QBP^Q11: QPD-3 (instruments.md §1.5)."""
    parsed.kind = "query"
    path = prof.query_id or (FieldPath("QPD", 3) if msg.segments_named("QPD") else FieldPath("QRD", 8))
    fields = msg.segments_named(path.segment)
    if not fields:
        parsed.warnings.append(f"query without {path.segment} segment")
        return
    raw = fields[0][path.field] if path.field < len(fields[0]) else ""
    for rep in repetitions(raw, msg.delimiters.repetition):
        value = _rep_leaf(rep, path, msg.delimiters).strip()
        if value and value not in parsed.query_ids:
            parsed.query_ids.append(value)
    if not parsed.query_ids:
        parsed.warnings.append("query without a sample id")


# --- replies ---------------------------------------------------------------------------------


def _timestamp(now: datetime) -> str:
    return now.strftime("%Y%m%d%H%M%S")


def _reply_msh(msg: Hl7Message | None, message_type: str, control_id: str, now: datetime) -> str:
    """MSH of a reply: sender/receiver swapped, MSH-11/12 copied raw (instruments.md §1.2)."""
    d = msg.delimiters if msg is not None else DEFAULT_DELIMITERS
    raw = msg.raw if msg is not None else (lambda _path: "")
    fields = ["MSH", d.encoding_characters, raw("MSH-5"), raw("MSH-6"), raw("MSH-3"), raw("MSH-4"),
              _timestamp(now), "", message_type, escape(control_id, d),
              raw("MSH-11") or "P", raw("MSH-12") or "2.5.1"]
    return d.field.join(fields)


def _ack_type(msg: Hl7Message) -> str:
    """``ACK^R01``, or ``ACK^R22^ACK`` when the sender used a 3-component MSH-9."""
    d = msg.delimiters
    parts = msg.raw("MSH-9").split(d.repetition, 1)[0].split(d.component)
    trigger = parts[1] if len(parts) > 1 else ""
    text = f"ACK{d.component}{trigger}" if trigger else "ACK"
    return text + f"{d.component}ACK" if len(parts) >= 3 and trigger else text


def _version_at_least_25(msg: Hl7Message | None) -> bool:
    match = re.match(r"(\d+)\.(\d+)", (msg.version if msg is not None else "") or "2.5.1")
    return bool(match) and (int(match.group(1)), int(match.group(2))) >= (2, 5)


def _err_segment(msg: Hl7Message | None, code: str, text: str) -> str:
    """ERR with an HL7 table 0357 code: ERR-3 + severity ERR-4 in v2.5+, ERR-1 (CM with the code
    in its 4th component, as subcomponents) before that."""
    d = msg.delimiters if msg is not None else DEFAULT_DELIMITERS
    if _version_at_least_25(msg):
        return d.field.join(["ERR", "", "", d.component.join([code, text, "HL70357"]), "E"])
    return d.field.join(["ERR", d.component * 3 + d.subcomponent.join([code, text, "HL70357"])])


def _one_ack(msg: Hl7Message | None, code: str, *, error_text: str, now: datetime, control_id: str,
             err: tuple[str, str] = ("207", "Application internal error")) -> bytes:
    d = msg.delimiters if msg is not None else DEFAULT_DELIMITERS
    msh9 = _ack_type(msg) if msg is not None else "ACK"
    msa = ["MSA", code, msg.raw("MSH-10") if msg is not None else ""]
    if error_text:
        msa.append(escape(error_text, d))
    segments = [_reply_msh(msg, msh9, control_id, now), d.field.join(msa)]
    if code[1] != "A":
        segments.append(_err_segment(msg, *err))
    return _encode(segments, msg)


def _encode(segments: list[str], msg: Hl7Message | None) -> bytes:
    """Every segment ends with CR, the HL7 segment terminator; the charset is the message's."""
    codec = msg.encoding if msg is not None else "utf-8"
    return "".join(s + "\r" for s in segments).encode(codec, errors="replace")


def _wants(ack_type: str, success: bool) -> bool:
    return ack_type == "AL" or (ack_type == "ER" and not success) or (ack_type == "SU" and success)


def ack_messages(msg: Hl7Message | None, payload: bytes, *, accepted: bool, error_text: str = "",
                 reject: bool = False, now: datetime, control_id: str) -> list[bytes]:
    """The ACK payload(s) to send, unframed, per instruments.md §1.2.

    * Original mode (MSH-15 and MSH-16 empty, or not table 0155 values: Mindray BS puts its result
      type 0/1/2 in MSH-16): one ACK, AA / AE (``accepted=False``) / AR (``reject=True``).
    * Enhanced mode: a commit ACK (CA/CE/CR) when MSH-15 asks for it, then an application ACK
      (AA/AE/AR) when MSH-16 does (AL always, ER on error, SU on success, NE never; an empty
      field asks for nothing). The second ACK gets MSH-10 ``control_id + "-2"`` so both are unique.
    * ``msg`` None (unparseable): one AR; if an MSH can be found further in ``payload`` its header
      is used (MSA-2 right), else default delimiters and an empty MSA-2. ERR code 100.
    An ERR segment (code 207, severity E) goes with every non-accept code."""
    success = accepted and not reject
    suffix = "R" if reject else ("A" if accepted else "E")
    if msg is None:
        salvaged = _salvage(payload)
        return [_one_ack(salvaged, "AR", error_text=error_text, now=now, control_id=control_id,
                         err=("100", "Segment sequence error"))]
    accept_type, app_type = msg.get("MSH-15").strip().upper(), msg.get("MSH-16").strip().upper()
    enhanced = accept_type in _ENHANCED_ACK_VALUES or app_type in _ENHANCED_ACK_VALUES
    if not enhanced:
        return [_one_ack(msg, "A" + suffix, error_text=error_text, now=now, control_id=control_id)]
    codes = []
    if _wants(accept_type, success):
        codes.append("C" + suffix)
    if _wants(app_type, success):
        codes.append("A" + suffix)
    return [_one_ack(msg, code, error_text=error_text, now=now, control_id=control_id + ("-2" if i else ""))
            for i, code in enumerate(codes)]


def _salvage(payload: bytes) -> Hl7Message | None:
    """Best effort for a NACK: the MSH that garbage in front of it made unparseable."""
    index = bytes(payload).find(b"MSH")
    if index < 0:
        return None
    try:
        return parse_message(bytes(payload)[index:])
    except ProtocolError:
        return None


def query_response(msg: Hl7Message, *, found: bool, now: datetime, control_id: str) -> bytes:
    """Mindray BS ``QCK^Q02`` reply to ``QRY^Q02`` (instruments.md §1.5): ``MSA|AA|<id>|Message
    accepted|||0``, ``ERR|0``, ``QAK|SR|OK`` (orders follow as DSR^Q03) or ``QAK|SR|NF``."""
    d = msg.delimiters
    segments = [
        _reply_msh(msg, f"QCK{d.component}Q02", control_id, now),
        d.field.join(["MSA", "AA", msg.raw("MSH-10"), "Message accepted", "", "", "0"]),
        d.field.join(["ERR", "0"]),
        d.field.join(["QAK", "SR", "OK" if found else "NF"]),
    ]
    return _encode(segments, msg)


@dataclass(frozen=True)
class QueriedSample:
    """What the host tells a Mindray analyzer about one queried tube (DSR^Q03)."""

    barcode: str
    patient_id: str
    patient_name: str
    dob: date | None
    sex: str
    collected_at: datetime | None  # local time, as the analyzer shows it
    urgent: bool
    specimen: str
    test_codes: list[str]


# DSR^Q03 display lines 1-28 (Mindray BS host interface, fixtures citing the BS-200 manual pp. 24-28,
# instruments.md §1.5 [S13]); tests follow from line 29, one per DSP, as ``code^name^unit^range``.
_DSP_PATIENT_ID, _DSP_NAME, _DSP_DOB, _DSP_SEX = 1, 3, 4, 5
_DSP_BARCODE, _DSP_SAMPLE_TIME, _DSP_EMERGENCY, _DSP_SAMPLE_TYPE = 21, 23, 24, 26
_DSP_FIXED_LINES = 28


def query_orders(msg: Hl7Message, sample: QueriedSample, *, now: datetime, control_id: str,
                 continuation: str = "") -> bytes:
    """Mindray ``DSR^Q03``: the orders of one queried barcode, sent after ``QCK^Q02 ... QAK|SR|OK``
    (instruments.md §1.5). MSA/ERR/QAK as in the QCK, the query's QRD and QRF echoed as received,
    28 DSP lines of patient and sample, one DSP per test code, then ``DSC|<continuation>``
    (empty in the last DSR of an answer). Each line is ``DSP|n||value|||`` as the fixtures write
    it. Every value is escaped; test codes are the instrument's."""
    d = msg.delimiters
    lines = {_DSP_PATIENT_ID: sample.patient_id, _DSP_NAME: sample.patient_name,
             _DSP_DOB: sample.dob.strftime("%Y%m%d") + "000000" if sample.dob else "",
             _DSP_SEX: _SEXES.get((sample.sex or "").strip().upper(), ""), _DSP_BARCODE: sample.barcode,
             _DSP_SAMPLE_TIME: _timestamp(sample.collected_at) if sample.collected_at else "",
             _DSP_EMERGENCY: "Y" if sample.urgent else "N", _DSP_SAMPLE_TYPE: (sample.specimen or "").lower()}
    texts = [escape(lines.get(n, ""), d) for n in range(1, _DSP_FIXED_LINES + 1)]
    texts += [escape(code, d) + d.component * 3 for code in sample.test_codes]
    segments = [
        _reply_msh(msg, f"DSR{d.component}Q03", control_id, now),
        d.field.join(["MSA", "AA", msg.raw("MSH-10"), "Message accepted", "", "", "0"]),
        d.field.join(["ERR", "0"]),
        d.field.join(["QAK", "SR", "OK"]),
        *(d.field.join(fields) for name in ("QRD", "QRF") for fields in msg.segments_named(name)[:1]),
        *(d.field.join(["DSP", str(n), "", text, "", "", ""]) for n, text in enumerate(texts, start=1)),
        d.field.join(["DSC", escape(continuation, d)]),
    ]
    return _encode(segments, msg)


def read_ack(msg: Hl7Message) -> tuple[str, str, str]:
    """An analyzer's answer to a message we sent: (MSA-1 code, MSA-2 = our MSH-10, why), where
    why is MSA-3, else the ERR text (ERR-3.2 in v2.5+, ERR-1.4.2 before), else ''."""
    code, acked = msg.get("MSA-1").strip().upper(), msg.get("MSA-2").strip()
    why = msg.get("MSA-3").strip() or msg.get("ERR-3.2").strip()
    if not why and msg.segments_named("ERR"):
        raw = msg.raw("ERR-1").split(msg.delimiters.component)
        why = unescape(raw[3].split(msg.delimiters.subcomponent)[1], msg.delimiters) if len(raw) > 3 and \
            msg.delimiters.subcomponent in raw[3] else ""
    return code, acked, why


_SEXES = {"M": "M", "MALE": "M", "F": "F", "FEMALE": "F", "O": "O", "OTHER": "O", "A": "A", "N": "N"}
_PRIORITIES = {"S": "S", "STAT": "S", "A": "A", "ASAP": "A", "URGENT": "S", "R": "R", "ROUTINE": "R"}


def build_order_message(*, sample_id: str, patient_name: str, patient_id: str, sex: str, dob: date | None,
                        priority: str, test_codes: list[str], sender: tuple[str, str],
                        receiver: tuple[str, str], control_id: str, now: datetime,
                        style: str = "ORM^O01") -> bytes:
    """An ORM^O01 new order (v2.3.1, the version analyzers that take ORM speak):
    ``MSH PID {ORC(NW) OBR}``, one ORC/OBR pair per test (the ORM_O01 ORDER group). Sex is
    mapped to table 0001 (unknown -> U), priority to S/A/R (unknown -> R). Everything is escaped;
    non-ASCII text makes the message UTF-8 with MSH-18 ``UNICODE UTF-8``."""
    if style != "ORM^O01":
        raise ValueError(f"unsupported order style {style!r}; only ORM^O01 is built")
    if not test_codes:
        raise ValueError("an order needs at least one test code")
    d = DEFAULT_DELIMITERS

    def e(text: str) -> str:
        return escape(text or "", d)

    stamp = _timestamp(now)
    prio = _PRIORITIES.get((priority or "").strip().upper(), "R")
    texts = [sample_id, patient_name, patient_id, *test_codes, *sender, *receiver, control_id]
    charset = "" if all(t.isascii() for t in texts) else "UNICODE UTF-8"
    msh = ["MSH", d.encoding_characters, e(sender[0]), e(sender[1]), e(receiver[0]), e(receiver[1]), stamp, "",
           f"ORM{d.component}O01", e(control_id), "P", "2.3.1"] + ([""] * 5 + [charset] if charset else [])
    pid = ["PID", "1", "", e(patient_id), "", e(patient_name), "", dob.strftime("%Y%m%d") if dob else "",
           _SEXES.get((sex or "").strip().upper(), "U")]
    segments = [d.field.join(msh), d.field.join(pid)]
    for number, code in enumerate(test_codes, start=1):
        segments.append(d.field.join(["ORC", "NW", e(sample_id), "", "", "", "", "", "", stamp]))
        segments.append(d.field.join(["OBR", str(number), e(sample_id), "", e(code), prio, stamp]))
    return "".join(s + "\r" for s in segments).encode("utf-8")
