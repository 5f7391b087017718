"""API for sample-tracking devices, partner systems and instrument set-up: the tube life
cycle and the instrument registry. Same services (and messages) as the technician portal."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import request
from pydantic import BaseModel, ConfigDict, Field

from app.api import bp
from app.api.problems import ApiError
from app.api.reception import _json_body
from app.api.registry import Endpoint, api_route
from app.extensions import db
from app.models import Instrument
from app.models.instrument import MESSAGE_OUTCOMES
from app.security import get_or_404
from app.services import ServiceError, instruments, samples

LAB = ("technician", "admin")
COLLECTORS = ("technician", "reception", "admin")


class SampleState(BaseModel):
    barcode: str
    status: str
    specimen: str
    container: str
    accession: str
    collected_at: datetime | None
    received_at: datetime | None
    rejection_reason: str | None
    rejection_note: str | None


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(description="haemolysed | clotted | insufficient | wrong_container | mislabelled | "
                                    "leaked | delayed")
    note: str = ""


def _sample_out(s: Any) -> dict[str, Any]:
    return SampleState(barcode=s.barcode, status=s.status, specimen=s.specimen, container=s.container,
                       accession=s.order.accession, collected_at=s.collected_at, received_at=s.received_at,
                       rejection_reason=s.rejection_reason, rejection_note=s.rejection_note).model_dump(mode="json")


def _transition(barcode: str, action: str, **kwargs: Any) -> tuple[dict[str, Any], int]:
    sample = samples.by_barcode(barcode, lock=True)
    if sample is None:
        raise ApiError(404, "Not found", f"No tube {barcode} in this organization.", type_="not-found")
    try:
        getattr(samples, action)(sample, user_id=None, **kwargs)
        db.session.commit()
    except samples.TransitionRefused as refused:
        db.session.rollback()
        raise ApiError(409, "Not allowed now", refused.message, type_="transition") from None
    except ServiceError as err:
        db.session.rollback()
        raise ApiError(422, "Invalid", err.message, errors={err.field or "body": [err.message]},
                       type_="validation") from None
    return _sample_out(sample), 200


@api_route(bp, Endpoint("POST", "/samples/{barcode}/collect", "Mark a tube collected", COLLECTORS,
                        response_model=SampleState, tags=("samples",)))
def collect_sample(barcode: str):  # type: ignore[no-untyped-def]
    return _transition(barcode, "collect")


@api_route(bp, Endpoint("POST", "/samples/{barcode}/receive", "Receive a tube at the lab", LAB,
                        response_model=SampleState, tags=("samples",)))
def receive_sample(barcode: str):  # type: ignore[no-untyped-def]
    return _transition(barcode, "receive")


@api_route(bp, Endpoint("POST", "/samples/{barcode}/reject", "Reject a tube with a standard reason", LAB,
                        request_model=RejectIn, response_model=SampleState, tags=("samples",)))
def reject_sample(barcode: str):  # type: ignore[no-untyped-def]
    body = RejectIn.model_validate(_json_body())
    return _transition(barcode, "reject", reason=body.reason, note=body.note)


class InstrumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    protocol: str = Field(description="hl7 | astm")
    port: int = Field(description="TCP port the listener binds for this instrument (1024-65535)")
    make: str = ""
    model: str = ""
    sample_id_field: str | None = Field(default=None, description="e.g. OBR-2, OBR-3, SPM-2; ASTM O-3, O-3.3, O-4.3")
    test_code_field: str | None = Field(default=None, description="e.g. OBX-3.1, OBX-3.2; ASTM R-3.4, R-3.5")
    profile: dict[str, Any] = Field(default_factory=dict, description="Other vendor quirks (see docs)")
    codes: dict[str, str | dict[str, Any]] = Field(
        default_factory=dict, description='instrument code -> test code, or {"test": code, "factor": number}')
    send_orders: bool = False


class CodeOut(BaseModel):
    code: str
    test: str
    factor: str


class InstrumentOut(BaseModel):
    id: int
    name: str
    protocol: str
    port: int
    make: str
    model: str
    sample_id_field: str
    test_code_field: str
    profile: dict[str, Any]
    codes: list[CodeOut]
    active: bool


class MessageOut(BaseModel):
    id: int
    received_at: datetime
    protocol: str
    peer: str
    control_id: str
    message_type: str
    outcome: str
    detail: str
    results_attached: int
    results_unmatched: int
    resent: int
    size: int


class MessageList(BaseModel):
    items: list[MessageOut]


def _instrument_out(i: Instrument) -> dict[str, Any]:
    return InstrumentOut(id=i.id, name=i.name, protocol=i.protocol, port=i.port, make=i.make, model=i.model,
                         sample_id_field=i.sample_id_field, test_code_field=i.test_code_field, profile=i.profile,
                         codes=[CodeOut(code=c.code, test=c.test.code, factor=str(c.factor.normalize()))
                                for c in i.codes], active=i.active).model_dump(mode="json")


@api_route(bp, Endpoint("POST", "/instruments", "Register an analyzer and its code map", ("admin",),
                        request_model=InstrumentIn, response_model=InstrumentOut, status=201, tags=("instruments",)))
def create_instrument():  # type: ignore[no-untyped-def]
    body = InstrumentIn.model_validate(_json_body())
    data = instruments.InstrumentData(**body.model_dump(exclude={"sample_id_field", "test_code_field"}),
                                      sample_id_field=body.sample_id_field or "",
                                      test_code_field=body.test_code_field or "")
    try:
        instrument = instruments.create(data)
        db.session.commit()
    except instruments.InstrumentInvalid as err:
        db.session.rollback()
        status = 409 if err.errors.get("port", [""])[0].startswith("Another") else 422
        raise ApiError(status, "Invalid instrument", "Some fields are invalid.", errors=err.errors,
                       type_="validation" if status == 422 else "conflict") from None
    return _instrument_out(instrument), 201


@api_route(bp, Endpoint("GET", "/instruments/{id}/messages", "Messages received from an analyzer, newest first",
                        LAB, response_model=MessageList, tags=("instruments",),
                        query={"outcome": "stored | matched | partly_matched | unmatched | qc | query | rejected | other",
                               "before_id": "page: messages older than this id", "limit": "1-500, default 100"}))
def instrument_messages(id: int):  # type: ignore[no-untyped-def]  # noqa: A002 - the path says {id}
    if not str(id).isdigit():
        raise ApiError(404, "Not found", "No such instrument.", type_="not-found")
    instrument = get_or_404(Instrument, id=int(id))
    outcome = request.args.get("outcome") or None
    if outcome is not None and outcome not in MESSAGE_OUTCOMES:
        raise ApiError(422, "Invalid filter", f"Unknown outcome {outcome!r}.", type_="validation")
    try:
        limit = min(500, max(1, int(request.args.get("limit", 100))))
        before_id = int(request.args["before_id"]) if request.args.get("before_id") else None
    except ValueError:
        raise ApiError(422, "Invalid filter", "limit and before_id are numbers.", type_="validation") from None
    items = [MessageOut(id=m.id, received_at=m.received_at, protocol=m.protocol, peer=m.peer, control_id=m.control_id,
                        message_type=m.message_type, outcome=m.outcome, detail=m.detail,
                        results_attached=m.results_attached, results_unmatched=m.results_unmatched, resent=m.resent,
                        size=len(m.raw)).model_dump(mode="json")
             for m in instruments.messages(instrument.id, outcome=outcome, limit=limit, before_id=before_id)]
    return {"items": items}
