"""The laboratory API: tube life cycle for sample-tracking devices, and the instrument registry."""
from __future__ import annotations

import hashlib

import pytest

from app import audit, security
from app.models import InstrumentMessage
from app.services import api_tokens


@pytest.fixture
def lab_api(client, factory, session):
    org = factory.org()
    factory.standard_catalogue(org)
    security.use_tenant(session, org.id)
    tokens = {role: api_tokens.create_token(org.id, role, f"{role} device")[1]
              for role in ("technician", "admin", "reception", "billing")}
    session.commit()

    class Api:
        def __init__(self, role: str):
            self.headers = {"Authorization": f"Bearer {tokens[role]}"}

        def post(self, path, body=None):
            return client.post("/api/v1" + path, json=body if body is not None else {}, headers=self.headers)

        def get(self, path, **params):
            return client.get("/api/v1" + path, query_string=params, headers=self.headers)

    return {role: Api(role) for role in tokens}, org


def test_collect_receive_reject_over_the_api(lab_api, factory):
    api, org = lab_api
    order = factory.order(org, ["CBC"], receive=False)
    barcode = order.samples[0].barcode
    collected = api["reception"].post(f"/samples/{barcode}/collect")
    assert collected.status_code == 200 and collected.json["status"] == "collected"
    assert api["reception"].post(f"/samples/{barcode}/receive").status_code == 403  # a lab action
    received = api["technician"].post(f"/samples/{barcode}/receive")
    assert received.status_code == 200 and received.json["received_at"]
    again = api["technician"].post(f"/samples/{barcode}/receive")
    assert again.status_code == 409 and "already" in again.json["detail"]
    bad = api["technician"].post(f"/samples/{barcode}/reject", {"reason": "fell over"})
    assert bad.status_code == 422 and "reason" in bad.json["errors"]
    rejected = api["technician"].post(f"/samples/{barcode}/reject", {"reason": "clotted", "note": "micro-clots"})
    assert rejected.status_code == 200 and rejected.json["rejection_reason"] == "clotted"
    assert api["technician"].post("/samples/999999999/receive").status_code == 404


def test_another_labs_tube_is_not_found(lab_api, factory, session):
    api, _ = lab_api
    other = factory.org()
    factory.standard_catalogue(other)
    theirs = factory.order(other, ["GLUF"], receive=False).samples[0].barcode
    assert api["technician"].post(f"/samples/{theirs}/receive").status_code == 404


INSTRUMENT = {"name": "Sysmex XN-550", "protocol": "astm", "port": 41001, "sample_id_field": "O-4.3",
              "test_code_field": "R-3.5", "codes": {"WBC": "WBC", "HGB": {"test": "HB", "factor": 1}}}


def test_register_an_instrument_and_list_its_messages(lab_api, session):
    api, org = lab_api
    created = api["admin"].post("/instruments", INSTRUMENT)
    assert created.status_code == 201, created.json
    body = created.json
    assert body["sample_id_field"] == "O-4.3" and {c["code"]: c["test"] for c in body["codes"]} == {
        "WBC": "WBC", "HGB": "HB"}
    assert api["technician"].post("/instruments", {**INSTRUMENT, "port": 41002, "name": "x"}).status_code == 403
    taken = api["admin"].post("/instruments", {**INSTRUMENT, "name": "Second"})
    assert taken.status_code == 409 and "port" in taken.json["errors"]
    raw = b"H|\\^&|||XN-550\rL|1|N\r"
    with audit.acting_as(audit.AuditContext(org_id=org.id)):
        session.add(InstrumentMessage(org_id=org.id, instrument_id=body["id"], protocol="astm", raw=raw,
                                      sha256=hashlib.sha256(raw).digest(), outcome="other", detail="no results"))
    session.commit()
    listed = api["technician"].get(f"/instruments/{body['id']}/messages")
    assert listed.status_code == 200
    assert [(m["outcome"], m["size"]) for m in listed.json["items"]] == [("other", len(raw))]
    assert api["technician"].get(f"/instruments/{body['id']}/messages", outcome="nonsense").status_code == 422
    assert api["technician"].get("/instruments/abc/messages").status_code == 404


@pytest.mark.parametrize("bad,field", [
    ({"protocol": "dicom"}, "protocol"),
    ({"port": 80}, "port"),
    ({"sample_id_field": "OBR-2"}, "sample_id_field"),  # an HL7 field for an ASTM analyzer
    ({"test_code_field": "R-x"}, "test_code_field"),
    ({"codes": {"WBC": "NOPE"}}, "codes"),
    ({"codes": {"HGB": {"test": "HB", "factor": -1}}}, "codes"),
    ({"profile": {"colour": "blue"}}, "profile"),
])
def test_invalid_instruments_are_422_by_field(lab_api, bad, field):
    api, _ = lab_api
    response = api["admin"].post("/instruments", {**INSTRUMENT, **bad})
    assert response.status_code == 422, response.json
    assert field in response.json["errors"]


def test_another_labs_instrument_messages_are_not_found(lab_api, factory, session, client):
    api, _ = lab_api
    created = api["admin"].post("/instruments", {**INSTRUMENT, "port": 41010, "name": "Ours"})
    assert created.status_code == 201
    other = factory.org()
    security.use_tenant(session, other.id)
    _, their_token = api_tokens.create_token(other.id, "admin", "other lab's admin")
    session.commit()
    response = client.get(f"/api/v1/instruments/{created.json['id']}/messages",
                          headers={"Authorization": f"Bearer {their_token}"})
    assert response.status_code == 404
