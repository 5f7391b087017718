"""API for integration partners and hospital systems: patients, the catalogue, orders.
Same services as the reception desk, so the same rules and messages."""
from __future__ import annotations

from datetime import date
from typing import Any

from flask import request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from app.api import bp
from app.api.problems import ApiError
from app.api.registry import Endpoint, api_route
from app.extensions import db
from app.models import Organization, Patient, Referrer
from app.services import catalogue, documents, orders, patients
from app.services import results as result_service

DESK = ("reception", "admin")
ALL = ("admin", "reception", "technician", "pathologist", "billing")


class AddressIn(BaseModel):
    line: str | None = None
    city: str | None = None
    pin_code: str | None = None
    state_code: str | None = None


class PatientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    sex: str = Field(description="male | female | other (or M/F/O)")
    dob: date | None = None
    age_years: int | None = None
    mobile: str
    email: str | None = None
    aadhaar: str | None = Field(default=None, description="Validated, stored masked; never returned")
    abha_number: str | None = None
    abha_address: str | None = None
    address: AddressIn | str | None = None
    confirm_new: bool = Field(default=False, description="Register even if likely duplicates exist")


class PatientOut(BaseModel):
    id: int
    mrn: str
    name: str
    sex: str
    dob: date
    dob_estimated: bool
    mobile: str | None
    email: str | None
    aadhaar_masked: str | None
    abha_number: str | None
    abha_address: str | None


class PatientList(BaseModel):
    items: list[PatientOut]


class TestOut(BaseModel):
    code: str
    name: str
    kind: str
    loinc: str | None
    unit: str | None
    specimen: str | None
    price_paise: int


class TestList(BaseModel):
    items: list[TestOut]


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient_id: int
    tests: list[str] = Field(min_length=1, max_length=100, description="Test or panel codes")
    priority: str = "routine"
    referrer: int | str | None = Field(default=None, description="Referrer id or exact name")
    clinical_notes: str = ""


class SampleOut(BaseModel):
    barcode: str
    specimen: str
    container: str
    tests: list[str]
    status: str


class BillOut(BaseModel):
    number: str
    document_type: str
    total_paise: int
    paid_paise: int
    due_paise: int
    upi_uri: str | None


class OrderCreated(BaseModel):
    accession: str
    samples: list[SampleOut]
    bill: BillOut
    bills: list[BillOut]


class ResultOut(BaseModel):
    test: str
    name: str
    value: str | None
    unit: str | None
    flag: str | None
    status: str


class OrderOut(BaseModel):
    accession: str
    status: str
    priority: str
    patient: PatientOut
    samples: list[SampleOut]
    results: list[ResultOut]
    bills: list[BillOut]


def _patient_out(p: Patient) -> dict[str, Any]:
    return PatientOut(id=p.id, mrn=p.mrn, name=p.full_name, sex=p.sex, dob=p.date_of_birth, dob_estimated=p.dob_estimated,
                      mobile=p.mobile, email=p.email, aadhaar_masked=p.aadhaar_masked, abha_number=p.abha_number,
                      abha_address=p.abha_address).model_dump(mode="json")


def _bill_out(org: Organization, bill) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    upi = documents.upi_for_bill(org, bill)
    return BillOut(number=bill.number, document_type=bill.doc_type, total_paise=bill.total_paise,
                   paid_paise=bill.paid_paise, due_paise=bill.due_paise,
                   upi_uri=upi.uri if upi else None).model_dump()


def _samples_out(order) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return [SampleOut(barcode=s.barcode, specimen=s.specimen, container=s.container,
                      tests=[t.test.code for t in s.tests], status=s.status).model_dump() for s in order.samples]


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid JSON", "Send a JSON object with Content-Type: application/json.", type_="bad-json")
    return body


@api_route(bp, Endpoint("POST", "/patients", "Register a patient", DESK, request_model=PatientIn,
                        response_model=PatientOut, status=201, tags=("patients",)))
def create_patient():  # type: ignore[no-untyped-def]
    body = PatientIn.model_validate(_json_body())
    raw = body.model_dump(exclude={"address", "confirm_new"})
    if isinstance(body.address, AddressIn):
        raw.update(address=body.address.line, city=body.address.city, pin_code=body.address.pin_code,
                   state_code=body.address.state_code)
    elif isinstance(body.address, str):
        raw["address"] = body.address
    try:
        patient = patients.register(raw, branch_id=None, created_by_id=None, confirm_new=body.confirm_new)
        db.session.commit()
    except patients.PatientInvalid as err:
        db.session.rollback()
        raise ApiError(422, "Invalid patient", "Some fields are invalid.", errors=err.errors, type_="validation") from None
    except patients.LikelyDuplicates as dup:
        db.session.rollback()
        raise ApiError(409, "Likely duplicate", "Patients with matching details exist: "
                       + "; ".join(f"{c.patient.mrn} ({', '.join(c.reasons)})" for c in dup.candidates)
                       + ". Send confirm_new=true to register anyway.", type_="duplicate") from None
    return _patient_out(patient), 201


@api_route(bp, Endpoint("GET", "/patients", "Find patients by MRN, mobile or name", DESK,
                        response_model=PatientList, query={"q": "MRN, mobile (any format) or name"}, tags=("patients",)))
def find_patients():  # type: ignore[no-untyped-def]
    return {"items": [_patient_out(p) for p in patients.search(request.args.get("q", ""))]}


@api_route(bp, Endpoint("GET", "/tests", "Search the catalogue (tests and panels)", ALL, response_model=TestList,
                        query={"q": "code or name; empty lists everything"}, tags=("catalogue",)))
def list_tests():  # type: ignore[no-untyped-def]
    q = request.args.get("q", "").strip()
    found = orders.search_orderables(q, limit=50 if q else 1000, list_all=True)
    items = []
    tests = {t.id: t for t in catalogue.list_tests()}
    for o in found:
        test = tests.get(o.id) if o.kind == "test" else None
        items.append(TestOut(code=o.code, name=o.name, kind=o.kind, loinc=test.loinc if test else None,
                             unit=test.unit if test else None, specimen=test.specimen if test else None,
                             price_paise=o.price_paise).model_dump())
    return {"items": items}


def _referrer_id(value: int | str | None) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int):
        stmt = select(Referrer.id).where(Referrer.id == value)
    else:
        stmt = select(Referrer.id).where(func.lower(Referrer.name) == value.strip().lower())
    found = db.session.execute(stmt).scalars().first()
    if found is None:
        raise ApiError(422, "Invalid order", "Unknown referrer.", errors={"referrer": ["Unknown referrer."]},
                       type_="validation")
    return found


@api_route(bp, Endpoint("POST", "/orders", "Create an order with its tubes and bill(s)", DESK, request_model=OrderIn,
                        response_model=OrderCreated, status=201, tags=("orders",)))
def create_order():  # type: ignore[no-untyped-def]
    body = OrderIn.model_validate(_json_body())
    patient = db.session.execute(select(Patient).where(Patient.id == body.patient_id)).scalar_one_or_none()
    if patient is None:
        raise ApiError(422, "Invalid order", "Unknown patient.", errors={"patient_id": ["Unknown patient."]},
                       type_="validation")
    req = orders.OrderRequest(codes=body.tests, priority=body.priority, referrer_id=_referrer_id(body.referrer),
                              clinical_notes=body.clinical_notes,
                              idempotency_key=(request.headers.get("Idempotency-Key") or "")[:64] or None)
    try:
        order, bills = orders.create_order(patient, catalogue.main_branch(), req, created_by_id=None,
                                           discount_limit_percent=0)
        db.session.commit()
    except orders.OrderInvalid as err:
        db.session.rollback()
        raise ApiError(422, "Invalid order", "Some fields are invalid.", errors=err.errors, type_="validation") from None
    org = db.session.get(Organization, order.org_id)
    bills_out = [_bill_out(org, b) for b in bills]
    return {"accession": order.accession, "samples": _samples_out(order), "bill": bills_out[0], "bills": bills_out}, 201


@api_route(bp, Endpoint("GET", "/orders/{accession}", "An order with its samples, results and bills", ALL,
                        response_model=OrderOut, tags=("orders",)))
def get_order(accession: str):  # type: ignore[no-untyped-def]
    order = orders.by_accession(accession)
    if order is None:
        raise ApiError(404, "Not found", f"No order {accession} in this organization.", type_="not-found")
    org = db.session.get(Organization, order.org_id)
    current = result_service.currents_for([t.id for t in order.tests])
    results = [ResultOut(test=t.test.code, name=t.test.name,
                         value=current[t.id].value_text if t.id in current else None, unit=t.test.unit,
                         flag=current[t.id].flag if t.id in current else None, status=t.status).model_dump()
               for t in order.tests]
    return OrderOut(accession=order.accession, status=order.status, priority=order.priority,
                    patient=PatientOut(**_patient_out(order.patient)), samples=_samples_out(order), results=results,
                    bills=[_bill_out(org, b) for b in orders.bills_of(order)]).model_dump(mode="json")
