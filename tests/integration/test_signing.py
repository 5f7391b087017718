"""The session cookie is verified, and the CSRF token signed, once per process
(app/signing.py). Reusing that work must never accept anything Flask or Flask-WTF would
refuse: a changed cookie, an expired one, or another session's token."""
from __future__ import annotations

import time

import pytest

from app import signing
from tests.factories import PASSWORD
from tests.helpers import _TOKEN_RE

COOKIE = "lis_session"


@pytest.fixture
def desk(client, auth, factory):
    """A logged-in reception client whose cookie has been seen (and remembered) once."""
    user = factory.user(factory.org(), "reception")
    assert auth.login(user.username, PASSWORD).status_code == 303
    assert client.get("/reception/").status_code == 200  # stores the CSRF secret: a new cookie
    assert client.get("/reception/").status_code == 200  # which is verified and remembered here
    return client


def _page_token(client, path: str = "/reception/") -> str:
    match = _TOKEN_RE.search(client.get(path).get_data(as_text=True))
    assert match
    return match.group(1) or match.group(2)


def test_a_remembered_cookie_still_expires(desk, app, monkeypatch):
    lifetime = app.permanent_session_lifetime.total_seconds()
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + lifetime + 5)
    assert desk.get("/reception/").status_code == 302  # to the login page, like any expired cookie


def test_a_cookie_from_the_future_is_refused_even_when_remembered(desk, monkeypatch):
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now - 3600)
    assert desk.get("/reception/").status_code == 302


@pytest.mark.parametrize("where", ["signature", "payload"])
def test_a_changed_cookie_is_not_taken_for_the_remembered_one(desk, where):
    value = desk.get_cookie(COOKIE).value
    at = len(value) - 2 if where == "signature" else 3
    changed = value[:at] + ("A" if value[at] != "A" else "B") + value[at + 1:]
    desk.set_cookie(COOKIE, changed)
    assert desk.get("/reception/").status_code == 302
    desk.set_cookie(COOKIE, value)
    assert desk.get("/reception/").status_code == 200


def test_each_request_gets_its_own_copy_of_a_remembered_session(desk, app):
    value = desk.get_cookie(COOKIE).value
    interface = app.session_interface
    assert isinstance(interface, signing.SessionInterface)
    with app.test_request_context("/reception/", headers={"Cookie": f"{COOKIE}={value}"}) as ctx:
        first = interface.open_session(app, ctx.request)
        first["_flashes"] = [("info", "only for this request")]
        first["csrf_token"] = "changed"
        second = interface.open_session(app, ctx.request)
    assert "_flashes" not in second and second["csrf_token"] != "changed"
    assert second["_user_id"] == first["_user_id"] and not second.modified


def test_the_csrf_token_is_signed_once_per_session_and_differs_between_sessions(desk, app, auth, factory, monkeypatch):
    token = _page_token(desk)
    signs = []
    real = signing.generate_csrf
    monkeypatch.setattr(signing, "generate_csrf", lambda: signs.append(1) or real())
    assert _page_token(desk) == token and _page_token(desk, "/reception/collections") == token
    assert signs == []
    other = app.test_client()
    user = factory.user(factory.org(), "reception")
    from tests.helpers import AuthActions

    AuthActions(other).login(user.username, PASSWORD)
    assert _page_token(other) != token


def test_the_reused_token_is_accepted_and_a_forged_one_is_not(desk):
    token = _page_token(desk)
    _page_token(desk)  # the second page reuses the signature
    ok = desk.post("/reception/patients/new", data={"csrf_token": token})
    assert ok.status_code != 400  # past CSRF (the empty form itself answers 422)
    forged = desk.post("/reception/patients/new", data={"csrf_token": token[:-3] + "abc"})
    assert forged.status_code == 400


def test_with_a_time_limit_the_token_is_signed_on_every_request(desk, app, monkeypatch):
    monkeypatch.setitem(app.config, "WTF_CSRF_TIME_LIMIT", 3600)
    signs = []
    real = signing.generate_csrf
    monkeypatch.setattr(signing, "generate_csrf", lambda: signs.append(1) or real())
    _page_token(desk)
    _page_token(desk)
    assert len(signs) == 2
