"""The /api/v1 base: bearer tokens, problem details, OpenAPI."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app import security
from app.models import ApiToken
from app.services import api_tokens


@pytest.fixture
def org(factory):
    return factory.org()


def _token(session, org, role="admin"):
    security.use_tenant(session, org.id)
    token, raw = api_tokens.create_token(org.id, role, "test")
    session.commit()
    return raw


def test_missing_token_is_401_problem(client):
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.json["status"] == 401 and response.json["title"] == "Authentication required"


@pytest.mark.parametrize("header", ["Bearer lis_nope", "Bearer ", "Basic abc", "Bearer " + "x" * 500])
def test_invalid_tokens_are_401(client, header):
    response = client.get("/api/v1/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"


def test_token_authenticates_to_its_org_and_role(client, session, org):
    raw = _token(session, org, "reception")
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 200
    assert response.json == {"organization": org.code, "role": "reception", "token_name": "test"}


def test_role_is_enforced(client, session, org):
    raw = _token(session, org, "technician")
    response = client.get("/api/v1/branches", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 403
    assert response.json["type"].endswith("/forbidden")


def test_token_sees_only_its_organization(client, session, factory):
    org_a, org_b = factory.org(), factory.org()
    raw = _token(session, org_a, "admin")
    response = client.get("/api/v1/branches", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 200
    assert [b["code"] for b in response.json["items"]] == ["MAIN"]  # org_b's MAIN is not listed twice


def test_revoked_token_is_refused_and_only_hash_is_stored(client, session, org):
    raw = _token(session, org)
    stored = session.execute(select(ApiToken)).scalar_one()
    assert raw not in (stored.token_hash, stored.prefix) and stored.prefix == raw[:12]
    api_tokens.revoke(stored)
    session.commit()
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {raw}"}).status_code == 401


def test_session_cookie_does_not_authenticate_the_api(client, auth, factory, org):
    from tests.factories import PASSWORD

    auth.login(factory.user(org, "admin").username, PASSWORD)
    assert client.get("/api/v1/me").status_code == 401


def test_unknown_api_path_is_problem_json(client, session, org):
    raw = _token(session, org)
    response = client.get("/api/v1/nope", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_openapi_documents_every_api_route(app, client):
    doc = client.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.1")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and rule.endpoint != "api.openapi":
            path = rule.rule.removeprefix("/api/v1").replace("<", "{").replace(">", "}")
            path = path.replace("{int:", "{").replace("{path:", "{")
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                routed.add((path, method))
    assert routed and routed == documented
    assert "Problem" in doc["components"]["schemas"]


def test_create_api_token_cli_prints_a_working_token_last(app, session, org, client):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["lis", "create-api-token", "--org", org.code, "--role", "admin"])
    assert result.exit_code == 0, result.output
    raw = result.output.strip().splitlines()[-1]
    assert raw.startswith("lis_")
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {raw}"}).json["role"] == "admin"


def test_create_api_token_cli_rejects_unknown_org(app, db_conn):
    result = app.test_cli_runner().invoke(args=["lis", "create-api-token", "--org", "nope", "--role", "admin"])
    assert result.exit_code != 0 and "no organization" in result.output
