"""The instrument registry (admin and API) and the status of each analyzer link."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app import audit
from app.extensions import db
from app.formatting import IST
from app.models import Instrument, InstrumentCode, InstrumentMessage, LabTest, UnmatchedResult
from app.models.instrument import DEFAULT_FIELDS, PROTOCOLS
from app.services import ServiceError, instrument_orders

AUDITED = ("name", "make", "model", "protocol", "port", "sample_id_field", "test_code_field", "profile",
           "send_orders", "active", "department_id")
PROFILE_KEYS = {"sample_id_fallbacks", "test_name_field", "qc_field", "qc_values", "skip_value_types",
                "encoding", "result_fields", "query_id_field", "qc_action_codes", "max_message_bytes",
                "read_timeout_seconds", "strip_dilution", "value_component"}
PROFILE_PATHS = ("test_name_field", "qc_field", "query_id_field")


class InstrumentInvalid(ServiceError):
    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("The instrument settings are not valid.")
        self.errors = errors


@dataclass
class InstrumentData:
    name: str
    protocol: str
    port: int | None
    make: str = ""
    model: str = ""
    sample_id_field: str = ""
    test_code_field: str = ""
    profile: dict[str, Any] = field(default_factory=dict)
    codes: dict[str, Any] = field(default_factory=dict)  # code -> "TESTCODE" | {"test": "TESTCODE", "factor": n}
    department_id: int | None = None
    send_orders: bool = False
    active: bool = True


def _field_path_error(path: str, protocol: str) -> str | None:
    from app.integrations.instruments.fields import parse_field_path
    try:
        parsed = parse_field_path(path)
    except ValueError as exc:
        return str(exc)
    segment = str(getattr(parsed, "segment", path.split("-")[0]))
    astm = len(segment) == 1
    if astm != (protocol == "astm"):
        return f"{path} is not a{'n ASTM record' if protocol == 'astm' else ' HL7 segment'} field."
    return None


def _resolve_codes(codes: dict[str, Any], errors: dict[str, list[str]]) -> list[tuple[str, int, Decimal]]:
    wanted: list[tuple[str, str, Any]] = []
    for code, target in codes.items():
        code = str(code).strip()
        test_code, factor = (target.get("test"), target.get("factor", 1)) if isinstance(target, dict) else (target, 1)
        if not code or len(code) > 40 or not isinstance(test_code, str):
            errors.setdefault("codes", []).append(f"Instrument code {code!r}: give a test code.")
            continue
        wanted.append((code, test_code.strip().upper(), factor))
    tests = {t.code: t.id for t in db.session.execute(
        select(LabTest).where(LabTest.code.in_([w[1] for w in wanted]))).scalars()}
    resolved = []
    for code, test_code, factor in wanted:
        try:
            factor_d = Decimal(str(factor))
            if not factor_d.is_finite() or factor_d <= 0:
                raise InvalidOperation
        except (InvalidOperation, ValueError):
            errors.setdefault("codes", []).append(f"Instrument code {code}: the factor must be a positive number.")
            continue
        if test_code not in tests:
            errors.setdefault("codes", []).append(f"Instrument code {code}: no test {test_code} in the catalogue.")
            continue
        resolved.append((code, tests[test_code], factor_d))
    return resolved


def validate(data: InstrumentData, *, instrument_id: int | None = None) -> list[tuple[str, int, Decimal]]:
    errors: dict[str, list[str]] = {}
    data.name = " ".join((data.name or "").split())
    if not data.name or len(data.name) > 100:
        errors["name"] = ["Give the instrument a name (up to 100 characters)."]
    if data.protocol not in PROTOCOLS:
        errors["protocol"] = ["Protocol is hl7 or astm."]
    if not isinstance(data.port, int) or not 1024 <= data.port <= 65535:
        errors["port"] = ["Port is a number from 1024 to 65535."]
    elif db.session.execute(select(Instrument.id).where(Instrument.port == data.port, Instrument.id != instrument_id)
                            .execution_options(all_tenants=True)).first():
        errors["port"] = ["Another instrument listens on this port."]
    if data.name and db.session.execute(select(Instrument.id).where(
            func.lower(Instrument.name) == data.name.lower(), Instrument.id != instrument_id)).first():
        errors.setdefault("name", []).append("Another instrument has this name.")
    if data.protocol in PROTOCOLS:
        defaults = DEFAULT_FIELDS[data.protocol]
        data.sample_id_field = (data.sample_id_field or defaults["sample_id_field"]).strip().upper()
        data.test_code_field = (data.test_code_field or defaults["test_code_field"]).strip().upper()
        for name in ("sample_id_field", "test_code_field"):
            problem = _field_path_error(getattr(data, name), data.protocol)
            if problem:
                errors[name] = [problem]
    if not isinstance(data.profile, dict) or set(data.profile) - PROFILE_KEYS:
        unknown = sorted(set(data.profile) - PROFILE_KEYS) if isinstance(data.profile, dict) else []
        errors["profile"] = [f"Unknown profile settings: {', '.join(unknown)}." if unknown
                             else "The profile is a set of named settings."]
    elif data.protocol in PROTOCOLS:
        for key in PROFILE_PATHS:
            if data.profile.get(key) and (problem := _field_path_error(str(data.profile[key]), data.protocol)):
                errors.setdefault("profile", []).append(f"{key}: {problem}")
        for path in data.profile.get("sample_id_fallbacks") or []:
            if problem := _field_path_error(str(path), data.protocol):
                errors.setdefault("profile", []).append(f"sample_id_fallbacks: {problem}")
    codes = _resolve_codes(data.codes if isinstance(data.codes, dict) else {}, errors)
    if errors:
        raise InstrumentInvalid(errors)
    return codes


def create(data: InstrumentData) -> Instrument:
    codes = validate(data)
    instrument = Instrument(name=data.name, make=data.make.strip()[:60], model=data.model.strip()[:60],
                            protocol=data.protocol, port=data.port, sample_id_field=data.sample_id_field,
                            test_code_field=data.test_code_field, profile=data.profile,
                            department_id=data.department_id, send_orders=data.send_orders, active=data.active)
    audit.add_created(instrument, entity_type="instrument", fields=AUDITED,
                      extra={"codes": {c: [t, str(f)] for c, t, f in codes}})
    for code, test_id, factor in codes:
        instrument.codes.append(InstrumentCode(code=code, test_id=test_id, factor=factor))
    db.session.flush()
    return instrument


def update(instrument: Instrument, data: InstrumentData) -> Instrument:
    codes = validate(data, instrument_id=instrument.id)
    audit.apply_changes(instrument, {
        "name": data.name, "make": data.make.strip()[:60], "model": data.model.strip()[:60],
        "protocol": data.protocol, "port": data.port, "sample_id_field": data.sample_id_field,
        "test_code_field": data.test_code_field, "profile": data.profile, "department_id": data.department_id,
        "send_orders": data.send_orders, "active": data.active}, entity_type="instrument", fields=AUDITED)
    set_codes(instrument, codes)
    return instrument


def set_codes(instrument: Instrument, codes: list[tuple[str, int, Decimal]]) -> None:
    before = {c.code: [c.test_id, str(c.factor)] for c in instrument.codes}
    after = {code: [test_id, str(factor)] for code, test_id, factor in codes}
    if before == after:
        return
    instrument.codes.clear()
    db.session.flush()
    for code, test_id, factor in codes:
        instrument.codes.append(InstrumentCode(code=code, test_id=test_id, factor=factor))
    db.session.flush()
    audit.record("instrument.codes", entity_type="instrument", entity_id=instrument.id, before=before, after=after)


def all_instruments() -> list[Instrument]:
    return list(db.session.execute(select(Instrument).order_by(Instrument.name)
                                   .options(selectinload(Instrument.codes).selectinload(InstrumentCode.test)))
                .scalars())


def messages(instrument_id: int, *, outcome: str | None = None, limit: int = 100,
             before_id: int | None = None) -> list[InstrumentMessage]:
    stmt = select(InstrumentMessage).where(InstrumentMessage.instrument_id == instrument_id)
    if outcome:
        stmt = stmt.where(InstrumentMessage.outcome == outcome)
    if before_id:
        stmt = stmt.where(InstrumentMessage.id < before_id)
    return list(db.session.execute(stmt.order_by(InstrumentMessage.id.desc()).limit(limit)).scalars())


@dataclass(frozen=True)
class LinkStatus:
    instrument: Instrument
    connected: bool
    counts: dict[str, int]
    open_unmatched: int
    orders: dict[str, int]  # pushed orders still queued / failed (instruments with send_orders)


def status(now: datetime | None = None) -> list[LinkStatus]:
    """Each instrument: connected or not, last message, today's messages by outcome."""
    now = now or datetime.now(IST)
    day_start = datetime.combine(now.astimezone(IST).date(), datetime.min.time(), tzinfo=IST)
    counts: dict[int, dict[str, int]] = {}
    for instrument_id, outcome, n in db.session.execute(
            select(InstrumentMessage.instrument_id, InstrumentMessage.outcome, func.count(InstrumentMessage.id))
            .where(InstrumentMessage.received_at >= day_start, InstrumentMessage.received_at < day_start + timedelta(days=1))
            .group_by(InstrumentMessage.instrument_id, InstrumentMessage.outcome)):
        counts.setdefault(instrument_id, {})[outcome] = n
    unmatched = dict(db.session.execute(
        select(UnmatchedResult.instrument_id, func.count(UnmatchedResult.id))
        .where(UnmatchedResult.status == "open").group_by(UnmatchedResult.instrument_id)).all())
    orders = instrument_orders.open_counts()
    out = []
    for instrument in all_instruments():
        by_outcome = counts.get(instrument.id, {})
        summary = {"stored": sum(by_outcome.values()), "matched": by_outcome.get("matched", 0) +
                   by_outcome.get("partly_matched", 0), "unmatched": by_outcome.get("unmatched", 0) +
                   by_outcome.get("partly_matched", 0), "rejected": by_outcome.get("rejected", 0),
                   "qc": by_outcome.get("qc", 0), "waiting": by_outcome.get("stored", 0)}
        out.append(LinkStatus(instrument, instrument.connections > 0, summary, unmatched.get(instrument.id, 0),
                              orders.get(instrument.id, {})))
    return out
