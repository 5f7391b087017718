"""Protocol-neutral results of parsing an analyzer message.

The HL7 and ASTM parsers both fill these, so the result-storing service has one shape to read.
Nothing here knows about the database: sample ids and test codes are the instrument's own
text, mapped to orders and tests by the caller."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


class ProtocolError(ValueError):
    """The bytes cannot be understood as a message at all (no MSH, no H record...)."""


@dataclass
class ParsedResult:
    code: str                 # instrument test code, read from the profile's test_code_field, stripped
    value: str                # unescaped value text, stripped; '' for HL7 null "" or empty
    units: str = ""
    reference_range: str = ""
    flags: list[str] = field(default_factory=list)     # abnormal flags, e.g. ["H", "A"]; 'N' kept
    status: str = ""          # OBX-11 / R-9 result status
    comments: list[str] = field(default_factory=list)  # NTE after the OBX / C records after the R
    observed_at: datetime | None = None  # OBX-14, else OBX-19, else OBR-7 / R-13 (naive local time)
    value_type: str = ""      # OBX-2 (NM, ST, CE, IS, ED...), '' for ASTM
    name: str = ""            # test name when the message gives one (OBX-3.2, or OBX-4 for Mindray BS)


@dataclass
class ParsedSpecimen:
    sample_id: str            # from the profile's sample_id_field, whitespace-stripped; '' when absent
    results: list[ParsedResult] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    qc: bool = False          # QC/calibration material (ASTM O-12 'Q', Mindray BS MSH-16, SPM-11 Q/C)


@dataclass
class ParsedMessage:
    protocol: str             # "hl7" | "astm"
    kind: str                 # "results" | "qc" | "query" | "other"
    message_type: str         # "ORU^R01", "OUL^R22", "QRY^Q02", ...; "ASTM" for astm
    control_id: str = ""      # MSH-10 / H-3
    sender: str = ""          # MSH-3 (+ "^" + MSH-4 if present) / H-5 first component
    specimens: list[ParsedSpecimen] = field(default_factory=list)
    query_ids: list[str] = field(default_factory=list)  # sample ids asked about (ASTM Q, QRD-8, QPD-3)
    warnings: list[str] = field(default_factory=list)   # non-fatal problems; never message contents (PII)
