"""The signed session cookie and the signed CSRF token, each worked out once per process.

Every page request opens the session cookie (a signature check, base64, zlib, JSON) and
every page carries a signed CSRF token (base.html). Both are pure functions of the session
and the secret key, so each answer is kept here and reused for as long as it would be the
same. Together they were ~13 % of a dashboard's CPU (docs/PERFORMANCE.md, "The fixed
per-request stack"). Nothing about what is accepted changes: an unknown cookie is verified
by Flask as before, expiry is checked on every request, and CSRF validation is Flask-WTF's.
"""
from __future__ import annotations

import time
from typing import Any

from flask import Flask, Request, current_app, g, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import generate_csrf
from itsdangerous import BadSignature

# A day's sessions at most; cleared whole when full (simpler than an LRU, and a miss only
# costs the work these save).
_MAX_ENTRIES = 4096
_SCALARS = frozenset({str, int, float, bool, type(None)})  # immutable: safe to share between requests


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session. A cookie whose signature has been verified is
    remembered (its JSON and when it was signed), so the browser sending the same cookie
    again costs a JSON parse, not a signature check and a decompression. Expiry
    (PERMANENT_SESSION_LIFETIME) is still checked on every request; a cookie never seen
    before, changed or expired goes through Flask's own check."""

    def __init__(self) -> None:
        # cookie → (its data, when it was signed). The data is kept decoded when every value
        # is a plain scalar (a logged-in session: ids, flags, the CSRF secret), so a request
        # copies a dict instead of parsing JSON; a session holding a list or dict (flashed
        # messages, which Flask appends to in place) is kept as JSON and parsed each time.
        self._verified: dict[str, tuple[dict[str, Any] | str, int]] = {}

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        value = request.cookies.get(self.get_cookie_name(app))
        if not value or not app.secret_key:
            return super().open_session(app, request)
        max_age = int(app.permanent_session_lifetime.total_seconds())
        known = self._verified.get(value)
        if known is not None:
            data, signed_at = known
            if 0 <= int(time.time()) - signed_at <= max_age:  # itsdangerous's own test of age
                return self.session_class(data if isinstance(data, dict) else self.serializer.loads(data))
            self._verified.pop(value, None)
        serializer = self.get_signing_serializer(app)
        try:
            data, signed = serializer.loads(value, max_age=max_age, return_timestamp=True)  # type: ignore[union-attr]
        except BadSignature:  # forged, damaged or expired: a new, empty session
            return self.session_class()
        if len(self._verified) >= _MAX_ENTRIES:
            self._verified.clear()
        scalars = all(type(item) in _SCALARS for item in data.values())
        self._verified[value] = (dict(data) if scalars else self.serializer.dumps(data), int(signed.timestamp()))
        return self.session_class(data)


_signed_csrf_tokens: dict[str, str] = {}


def csrf_token() -> str:
    """Flask-WTF's generate_csrf(), signed once per session instead of on every page.

    generate_csrf() signs the session's CSRF secret afresh on every request (JSON, a key
    derivation, an HMAC and a timestamp). The signature depends only on that secret, the
    key and the time, and the time does not matter here: tokens do not expire
    (WTF_CSRF_TIME_LIMIT is None, so a form left open all day still posts). So the first
    signature of each secret is reused. With a time limit configured it signs every time."""
    signed: str | None = g.get("csrf_token")
    if signed is not None:
        return signed
    if current_app.config.get("WTF_CSRF_TIME_LIMIT") is not None:
        return generate_csrf()
    secret: Any = session.get("csrf_token")
    signed = _signed_csrf_tokens.get(secret) if isinstance(secret, str) else None
    if signed is None:
        signed = generate_csrf()
        if len(_signed_csrf_tokens) >= _MAX_ENTRIES:
            _signed_csrf_tokens.clear()
        _signed_csrf_tokens[session["csrf_token"]] = signed
    g.csrf_token = signed  # what generate_csrf() returns for the rest of this request (forms)
    return signed
