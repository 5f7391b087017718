"""The reception API: the round trip an integration partner codes against."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from app import security
from app.services import api_tokens


@pytest.fixture
def api(client, factory, session):
    org = factory.org()
    cat = factory.catalogue(org)
    security.use_tenant(session, org.id)
    _, raw = api_tokens.create_token(org.id, "reception", "hospital HIS")
    session.commit()
    headers = {"Authorization": f"Bearer {raw}"}

    class Api:
        def post(self, path, body, **extra):
            return client.post("/api/v1" + path, json=body, headers={**headers, **extra})

        def get(self, path, **params):
            return client.get("/api/v1" + path, query_string=params, headers=headers)

    return Api(), org, cat


PATIENT = {"name": "Ravi Kumar", "sex": "M", "dob": "1985-02-11", "mobile": "+91 98450 12345",
           "address": {"line": "12 MG Road", "city": "Bengaluru", "pin_code": "560001", "state_code": "29"}}


def test_register_patient_then_find_them(api):
    client, org, _ = api
    created = client.post("/patients", PATIENT)
    assert created.status_code == 201, created.json
    body = created.json
    assert body["mrn"] and body["mobile"] == "+919845012345" and body["sex"] == "male"
    assert "aadhaar" not in body
    for q in [body["mrn"], "9845012345", "ravi"]:
        found = client.get("/patients", q=q).json["items"]
        assert [p["id"] for p in found] == [body["id"]], q


def test_invalid_patient_is_422_with_errors_keyed_by_field(api):
    client, _, _ = api
    response = client.post("/patients", {**PATIENT, "mobile": "123", "dob": "2999-01-01", "aadhaar": "234123412347"})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert set(response.json["errors"]) >= {"mobile", "dob", "aadhaar"}


def test_unknown_fields_and_bad_json_are_refused(api, client, session):
    c, org, _ = api
    assert c.post("/patients", {**PATIENT, "is_admin": True}).status_code == 422
    _, raw = api_tokens.create_token(org.id, "reception", "raw")
    session.commit()
    bad = client.post("/api/v1/patients", data="{not json", content_type="application/json",
                      headers={"Authorization": f"Bearer {raw}"})
    assert bad.status_code == 400 and bad.mimetype == "application/problem+json"


def test_likely_duplicate_is_409_unless_confirmed(api):
    client, _, _ = api
    client.post("/patients", PATIENT)
    duplicate = client.post("/patients", {**PATIENT, "name": "Ravi Kumaar"})
    assert duplicate.status_code == 409 and duplicate.json["type"].endswith("/duplicate")
    assert client.post("/patients", {**PATIENT, "name": "Ravi Kumaar", "confirm_new": True}).status_code == 201


def test_catalogue_search(api):
    client, _, _ = api
    items = client.get("/tests", q="CBC").json["items"]
    assert items[0]["code"] == "CBC" and items[0]["kind"] == "panel" and items[0]["price_paise"] == 35000
    everything = client.get("/tests").json["items"]
    assert {"HB", "GLUF", "CBC"} <= {i["code"] for i in everything}
    glucose = next(i for i in everything if i["code"] == "GLUF")
    assert glucose["specimen"] == "Plasma" and glucose["unit"] == "mg/dL"


def test_order_round_trip(api):
    client, org, cat = api
    patient = client.post("/patients", PATIENT).json
    created = client.post("/orders", {"patient_id": patient["id"], "tests": ["CBC", "gluf", "CREA"], "priority": "stat",
                                      "referrer": "Dr. Kavita Menon"})
    assert created.status_code == 201, created.json
    order = created.json
    assert {(s["container"], tuple(sorted(s["tests"]))) for s in order["samples"]} == {
        ("EDTA", ("HB", "PLT", "WBC")), ("Fluoride", ("GLUF",)), ("Plain", ("CREA",))}
    bill = order["bill"]
    assert bill["document_type"] == "bill_of_supply" and bill["total_paise"] == 35000 + 8000 + 20000
    assert order["bills"] == [bill]
    upi = urlsplit(bill["upi_uri"])
    params = {k: v[0] for k, v in parse_qs(upi.query).items()}
    assert upi.scheme == "upi" and params["tr"] == bill["number"] and params["am"] == "630.00" and params["cu"] == "INR"
    fetched = client.get(f"/orders/{order['accession']}")
    assert fetched.status_code == 200
    assert fetched.json["priority"] == "stat" and fetched.json["patient"]["mrn"] == patient["mrn"]
    assert {r["test"] for r in fetched.json["results"]} == {"HB", "WBC", "PLT", "GLUF", "CREA"}
    assert all(r["status"] == "pending" and r["value"] is None for r in fetched.json["results"])


def test_taxable_item_adds_a_tax_invoice(api):
    client, _, _ = api
    patient = client.post("/patients", PATIENT).json
    order = client.post("/orders", {"patient_id": patient["id"], "tests": ["GLUF", "HOME"]}).json
    assert [b["document_type"] for b in order["bills"]] == ["bill_of_supply", "tax_invoice"]
    assert order["bills"][1]["total_paise"] == 11800


def test_idempotency_key_header_makes_retries_safe(api):
    client, _, _ = api
    patient = client.post("/patients", PATIENT).json
    body = {"patient_id": patient["id"], "tests": ["GLUF"]}
    first = client.post("/orders", body, **{"Idempotency-Key": "his-req-0001"})
    second = client.post("/orders", body, **{"Idempotency-Key": "his-req-0001"})
    assert first.json["accession"] == second.json["accession"]
    assert first.json["bill"]["number"] == second.json["bill"]["number"]


@pytest.mark.parametrize("body,field", [
    ({"tests": ["NOPE"]}, "tests"), ({"tests": []}, "tests"), ({"tests": ["GLUF"], "priority": "asap"}, "priority"),
    ({"tests": ["GLUF"], "referrer": "Dr. Nobody"}, "referrer"), ({"tests": ["GLUF"], "patient_id": 999999999}, "patient_id"),
])
def test_bad_orders_are_422(api, body, field):
    client, _, _ = api
    patient = client.post("/patients", PATIENT).json
    response = client.post("/orders", {"patient_id": patient["id"], **body})
    assert response.status_code == 422, response.json
    assert field in response.json["errors"]


def test_other_organizations_orders_are_404(api, factory, session):
    client, _, _ = api
    other = factory.org()
    factory.catalogue(other)
    security.use_tenant(session, other.id)
    from app.services import orders, patients

    stranger = patients.register({**PATIENT, "mobile": "9000000009", "address": None}, branch_id=None, created_by_id=None)
    order, _ = orders.create_order(stranger, other.branches[0], orders.OrderRequest(codes=["GLUF"]), created_by_id=None,
                                   discount_limit_percent=0)
    session.commit()
    assert client.get(f"/orders/{order.accession}").status_code == 404
    assert client.post("/orders", {"patient_id": stranger.id, "tests": ["GLUF"]}).status_code == 422
    assert client.get("/patients", q="9000000009").json["items"] == []


def test_technician_token_cannot_register_patients(client, factory, session):
    org = factory.org()
    security.use_tenant(session, org.id)
    _, raw = api_tokens.create_token(org.id, "technician", "lab device")
    session.commit()
    response = client.post("/api/v1/patients", json=PATIENT, headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 403
