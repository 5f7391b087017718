"""Work the request stack does once and then remembers, or skips when it cannot apply
(app/web.py, app/extensions.py): each must answer exactly what the full path would.
docs/PERFORMANCE.md, "Per-call costs", says what each saves."""
from __future__ import annotations

import gzip

import pytest
from flask import g, render_template_string, url_for
from flask_login.utils import _create_identifier
from jinja2 import pass_context
from werkzeug.routing import BuildError

from app import extensions
from tests.factories import PASSWORD


# --- url_for, remembered ---------------------------------------------------------------

def test_a_remembered_address_is_the_one_flask_builds(app):
    with app.test_request_context("/pathologist/"):
        assert url_for("pathologist.queue", page=2) == "/pathologist/?page=2"
        assert url_for("pathologist.queue", page=3) == "/pathologist/?page=3"  # arguments are part of the key
        assert url_for("pathologist.queue", page=2) == "/pathologist/?page=2"
        assert url_for("static", filename="css/app.css").startswith("/static/css/app.css?v=")


def test_addresses_follow_the_script_root(app):
    with app.test_request_context("/pathologist/"):
        at_root = url_for("pathologist.criticals")
    with app.test_request_context("/pathologist/", base_url="http://localhost/lab"):
        mounted = url_for("pathologist.criticals")
    assert (at_root, mounted) == ("/pathologist/criticals", "/lab/pathologist/criticals")


def test_relative_endpoints_follow_the_request_blueprint(app):
    with app.test_request_context("/pathologist/"):
        assert url_for(".criticals") == "/pathologist/criticals"
    with app.test_request_context("/technician/"):
        assert url_for(".worklist") == "/technician/worklist"


def test_patient_portal_addresses_take_each_request_organization(app):
    """The patient blueprint's URL defaults read the organization from the request: its
    addresses are never taken from another request."""
    for code in ("orga", "orgb", "orga"):
        with app.test_request_context(f"/p/{code}/login"):
            g.org_code = code
            assert url_for("patient.login") == f"/p/{code}/login"


def test_lists_anchors_and_external_addresses_are_built_every_time(app):
    with app.test_request_context("/pathologist/"):
        assert url_for("pathologist.queue", page=[1, 2]) == "/pathologist/?page=1&page=2"
        assert url_for("pathologist.queue", _anchor="queue") == "/pathologist/#queue"
        assert url_for("pathologist.queue", _external=True) == "http://localhost/pathologist/"
    with app.test_request_context("/pathologist/", base_url="https://lab.example"):
        assert url_for("pathologist.queue", _external=True) == "https://lab.example/pathologist/"


def test_an_unknown_endpoint_still_fails_to_build(app):
    with app.test_request_context("/"), pytest.raises(BuildError):
        url_for("no.such.endpoint")


# --- templates ---------------------------------------------------------------------------

def test_template_calls_pass_the_context_only_to_callables_that_ask(app):
    @pass_context
    def who(context):  # type: ignore[no-untyped-def]
        return context["name"]

    def plain(a, b=1):  # type: ignore[no-untyped-def]
        return f"{a}-{b}"

    def stops():  # type: ignore[no-untyped-def]
        raise StopIteration

    with app.test_request_context("/"):
        html = render_template_string(
            "{{ who() }} {{ plain(1) }} {{ plain(2, b=3) }} {{ items.count(1) }} [{{ stops() }}]"
            "{% for x in [1] %} {{ plain(x, b=x) }}{% endfor %}",
            who=who, plain=plain, stops=stops, name="asha", items=[1, 1, 2])
    assert html == "asha 1-1 2-3 2 [] 1-1"


def test_context_processors_apply_per_blueprint_and_given_values_win(app):
    probe = "{{ rejection_reasons is defined }} {{ request.blueprint }} {{ current_user.is_authenticated }}"
    with app.test_request_context("/reception/"):
        assert render_template_string(probe) == "True reception False"  # the reception portal's own processor ran
        assert render_template_string("{{ csrf_token }}", csrf_token="given") == "given"
    with app.test_request_context("/pathologist/"):
        assert render_template_string(probe) == "False pathologist False"


# --- answers -----------------------------------------------------------------------------

def test_compression_is_chosen_only_when_the_client_accepts_it(client, auth, factory):
    user = factory.user(factory.org(), "pathologist")
    assert auth.login(user.username, PASSWORD).status_code == 303
    plain = client.get("/pathologist/")
    packed = client.get("/pathologist/", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.data).startswith(b"<!doctype html>") and b"Verification queue" in plain.data
    for answer in (plain, packed):
        [vary] = answer.headers.get_all("Vary")
        tokens = [token.strip().lower() for token in vary.split(",")]
        assert tokens.count("accept-encoding") == 1 and "hx-request" in tokens


# --- Flask-Login -------------------------------------------------------------------------

def test_the_session_identifier_is_flask_logins_per_address_and_browser(app):
    seen = []
    for agent, forwarded in (("agent-a", None), ("agent-b", None), ("agent-a", "10.0.0.9"), ("agent-a", None)):
        headers = {"User-Agent": agent, **({"X-Forwarded-For": forwarded} if forwarded else {})}
        with app.test_request_context("/", headers=headers):
            ours = app.login_manager._session_identifier_generator()
            assert ours == _create_identifier()
            seen.append(ours)
    assert len(set(seen)) == 3 and seen[0] == seen[3]
    assert app.login_manager._session_identifier_generator is extensions._session_identifier


def test_a_session_seen_from_another_browser_is_no_longer_fresh(client, auth, factory):
    """Flask-Login's session protection still compares identifiers with the remembered
    one: the same cookie from another User-Agent loses its freshness. (Sessions are
    permanent, for which Flask-Login's "strong" mode acts as "basic".)"""
    user = factory.user(factory.org(), "reception")
    assert auth.login(user.username, PASSWORD).status_code == 303
    assert client.get("/reception/").status_code == 200
    with client.session_transaction() as session:
        assert session["_fresh"] is True
    client.get("/reception/", headers={"User-Agent": "another-browser/1"})
    with client.session_transaction() as session:
        assert session["_fresh"] is False


def test_flashed_messages_still_show_once(client):
    first = client.get("/reception/", follow_redirects=True).get_data(as_text=True)
    assert "Please log in to continue." in first
    assert "Please log in to continue." not in client.get("/login").get_data(as_text=True)


def test_the_layout_follows_the_session_the_page_and_the_floor(client, auth, factory):
    """The layout's fixed part (navigation.page_chrome) carries each session's own CSRF
    token, marks the current page in the menu, and loads the laboratory floor's keyboard
    script only on the floor."""
    org = factory.org()
    tech = factory.user(org, "technician")
    assert auth.login(tech.username, PASSWORD).status_code == 303
    floor = client.get("/technician/").get_data(as_text=True)
    worklist = client.get("/technician/worklist").get_data(as_text=True)
    token = _hx_token(floor)
    assert token and _hx_token(worklist) == token
    assert 'href="/technician/" aria-current="page"' in floor and 'aria-current="page">Worklist' in worklist
    assert "js/lab.js" in floor
    auth.logout()
    desk = factory.user(org, "reception")
    assert auth.login(desk.username, PASSWORD).status_code == 303
    page = client.get("/reception/").get_data(as_text=True)
    assert _hx_token(page) not in (None, token) and "js/lab.js" not in page


def _hx_token(page: str) -> str | None:
    import re

    match = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page)
    return match.group(1) if match else None


def test_anonymous_visitors_share_the_layout_but_not_the_token(app, db_conn):
    first, second = (app.test_client().get("/login").get_data(as_text=True) for _ in range(2))
    assert _hx_token(first) and _hx_token(second) and _hx_token(first) != _hx_token(second)
    assert first.count("<header") == 1 and "&lt;header" not in first  # the cached parts are not escaped twice
