"""Field addressing shared by HL7 v2 and ASTM E1394: paths such as ``OBR-3``, ``SPM-2.1.1``,
``O-4.3`` or ``R-3.5``, splitting a field into repetition/component/subcomponent, escape-sequence
scanning and timestamps.

Paths are typed by admins into instrument profiles, so ``parse_field_path`` validates them with
a message a person can act on. Numbering (instruments.md §1.3 and §3):

* HL7 ``MSH``: MSH-1 is the field separator itself, MSH-2 the encoding characters, so
  MSH-n = ``line.split(sep)[n - 1]``; other HL7 segments: ``line.split(sep)[n]``.
* ASTM records: field 1 is the record letter, so field n = ``line.split(sep)[n - 1]`` (H-2 is the
  delimiter definition).

Both parsers store a segment/record as a list ``fields`` where ``fields[n]`` is HL7 field n or
``fields[n - 1]`` is ASTM field n; :func:`select` does the rest. Components and subcomponents are
1-based; the first repetition is used unless a caller asks for all of them.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

_PATH_RE = re.compile(r"^([A-Z][A-Z0-9]{2}|[A-Z])-(\d{1,3})(?:\.(\d{1,3})(?:\.(\d{1,3}))?)?$")
_PATH_HELP = "expected SEGMENT-FIELD[.COMPONENT[.SUBCOMPONENT]], such as OBR-3, SPM-2.1.1, O-4.3 or R-3.5"


@dataclass(frozen=True)
class FieldPath:
    """One address inside a message. ``component``/``subcomponent`` None means "the whole"."""

    segment: str
    field: int
    component: int | None = None
    subcomponent: int | None = None

    def __str__(self) -> str:
        text = f"{self.segment}-{self.field}"
        if self.component is not None:
            text += f".{self.component}"
            if self.subcomponent is not None:
                text += f".{self.subcomponent}"
        return text

    def leaf(self) -> FieldPath:
        """The same path narrowed to a single leaf: component 1 / subcomponent 1 when not given.

        Identifiers (sample ids, test codes, query ids) are always one leaf, so "SPM-2" applied to
        Roche's ``24061177&BARCODE`` gives ``24061177`` (instruments.md §1.3, SPM-2 is an EIP)."""
        return FieldPath(self.segment, self.field, self.component or 1, self.subcomponent or 1)


def parse_field_path(text: str) -> FieldPath:
    """Parse ``"OBR-3"``/``"SPM-2.1.1"``/``"R-3.4"``; ValueError with a clear message otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"field path must be text, {_PATH_HELP}")
    cleaned = text.strip().upper()
    match = _PATH_RE.match(cleaned)
    if not match:
        raise ValueError(f"bad field path {text!r}: {_PATH_HELP}")
    segment, fld, comp, sub = match.groups()
    numbers = [int(n) for n in (fld, comp, sub) if n is not None]
    if any(n < 1 for n in numbers):
        raise ValueError(f"bad field path {text!r}: field, component and subcomponent numbers start at 1")
    return FieldPath(segment, int(fld), int(comp) if comp else None, int(sub) if sub else None)


def as_path(path: FieldPath | str) -> FieldPath:
    return path if isinstance(path, FieldPath) else parse_field_path(path)


def usable_delimiter(char: str) -> bool:
    """Delimiters are printable ASCII punctuation (``|^~\\&``, DxH ``!``); anything else means
    the bytes are not a message, and echoing them into an ACK would make an unreadable one."""
    return len(char) == 1 and "!" <= char <= "~" and not char.isalnum()


def as_list(value: Any, default: list[str]) -> list[str]:
    """A profile list setting: a list, or text separated by commas as typed in a form."""
    if value is None:
        return list(default)
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part).strip() for part in value]


def select(raw_field: str, path: FieldPath, *, repeat: str, component: str, subcomponent: str | None) -> str:
    """The raw (still escaped) text at ``path``'s component/subcomponent of the first repetition.

    Split first, unescape later (instruments.md §1.4), so an escaped ``\\S\\`` never becomes a
    component boundary. ASTM has no subcomponent delimiter (``subcomponent=None``): subcomponent
    1 is then the whole component and any other subcomponent is empty."""
    first = raw_field.split(repeat, 1)[0] if repeat else raw_field
    if path.component is None:
        return first
    parts = first.split(component) if component else [first]
    if path.component > len(parts):
        return ""
    chosen = parts[path.component - 1]
    if path.subcomponent is None:
        return chosen
    if not subcomponent:
        return chosen if path.subcomponent == 1 else ""
    subs = chosen.split(subcomponent)
    return subs[path.subcomponent - 1] if path.subcomponent <= len(subs) else ""


def repetitions(raw_field: str, repeat: str) -> list[str]:
    return raw_field.split(repeat) if repeat else [raw_field]


def unescape_sequences(text: str, esc: str, resolve: Callable[[str], str | None]) -> str:
    """Replace ``<esc>NAME<esc>`` by ``resolve(NAME)``; an unknown or unterminated sequence keeps
    its escape character literally (never raises, whatever the input)."""
    if not esc or esc not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        j = text.find(esc, i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        k = text.find(esc, j + 1)
        replacement = resolve(text[j + 1:k]) if k > j + 1 else None
        if replacement is None:
            out.append(esc)
            i = j + 1
        else:
            out.append(replacement)
            i = k + 1
    return "".join(out)


def decode_hex(digits: str) -> str | None:
    """``\\Xhh..\\`` payload: UTF-8 when it is valid UTF-8, else Latin-1 (one char per byte)."""
    if not digits or len(digits) % 2 or not re.fullmatch(r"[0-9A-Fa-f]+", digits):
        return None
    data = bytes.fromhex(digits)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


_TS_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,6})\d*)?)?)?)?\s*(?:[+-]\d{2,4}|Z)?$")


def parse_timestamp(text: str) -> datetime | None:
    """HL7 DTM / ASTM ``YYYYMMDD[HH[MM[SS[.ffff]]]][+ZZZZ]`` -> naive datetime as sent.

    The offset is dropped on purpose: results are stored as the lab's local wall time, which is
    what the analyzer clock shows. ``None`` for empty text; ValueError for text that is not a
    date, so the caller can add a warning instead of guessing."""
    cleaned = text.strip()
    if not cleaned:
        return None
    match = _TS_RE.match(cleaned)
    if not match:
        raise ValueError("not a timestamp")
    year, month, day, hour, minute, second, frac = match.groups()
    micro = int(frac.ljust(6, "0")) if frac else 0
    return datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro)
