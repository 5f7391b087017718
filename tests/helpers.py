"""Test client helpers: CSRF-aware posts and an `auth` helper, as in Flask's tutorial."""
from __future__ import annotations

import contextvars
import re

from flask.testing import FlaskClient

_TOKEN_RE = re.compile(r'"X-CSRFToken": "([^"]+)"|name="csrf_token" type="hidden" value="([^"]+)"')


class LisClient(FlaskClient):
    def open(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        """Each request runs in a fresh context, as in production: its own app context,
        `g`, DB session and audit context, not the test body's (which holds the app
        context open for factories). Sessions still share the test's rolled-back connection."""
        return contextvars.Context().run(super().open, *args, **kwargs)

    def csrf_token(self, page: str = "/login") -> str:
        """A valid token for this client's session, read from a rendered page."""
        html = self.get(page).get_data(as_text=True)
        match = _TOKEN_RE.search(html)
        assert match, f"no CSRF token on {page}"
        return match.group(1) or match.group(2)

    def post_form(self, url: str, data: dict | None = None, *, token_page: str = "/account/password", **kwargs):  # type: ignore[no-untyped-def]
        data = dict(data or {})
        data["csrf_token"] = self.csrf_token(token_page)
        return self.post(url, data=data, **kwargs)


class AuthActions:
    def __init__(self, client: LisClient):
        self.client = client

    def login(self, username: str, password: str):  # type: ignore[no-untyped-def]
        token = self.client.csrf_token("/login")
        return self.client.post("/login", data={"username": username, "password": password, "csrf_token": token})

    def logout(self):  # type: ignore[no-untyped-def]
        return self.client.post_form("/logout")


def audit_events(session, action: str) -> list:  # type: ignore[no-untyped-def]
    """The audit rows of one action written by this test, oldest first. A test's rows are
    rolled back with its transaction, which began at now(); a few tests commit for real
    (threads racing in an organization of their own) and their rows stay behind, older."""
    from sqlalchemy import func, select

    from app.models import AuditEvent

    session.expire_all()
    return list(session.execute(select(AuditEvent).where(AuditEvent.action == action, AuditEvent.at >= func.now())
                                .order_by(AuditEvent.id)).scalars())
