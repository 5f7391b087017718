"""Logging the demo users in, and checking that a page answers what the bench expects.

Plain http.client without redirect following: a dashboard that answers 302 to /login
(an expired or rejected session) must be caught, not silently measured as "fast".
"""
from __future__ import annotations

import http.client
import re
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

COOKIE_NAME = "lis_session"
# Flask-Login's "strong" session protection ties a session to the client's address and
# User-Agent: wrk must send the same User-Agent as the login did.
USER_AGENT = "lis-bench/1"
CSRF_INPUT = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: str

    def session_cookie(self) -> str | None:
        for header in self.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie(header)
            if COOKIE_NAME in cookie:
                return cookie[COOKIE_NAME].value
        return None


def request(base_url: str, method: str, path: str, cookie: str | None = None,
            form: dict[str, str] | None = None) -> Answer:
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    headers = {"User-Agent": USER_AGENT}
    if cookie:
        headers["Cookie"] = f"{COOKIE_NAME}={cookie}"
    body = None
    if form is not None:
        body = urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return Answer(resp.status, resp.headers, resp.read().decode("utf-8", "replace"))
    finally:
        conn.close()


def login(base_url: str, username: str, password: str, home: str) -> str:
    """Log in through the real form (CSRF token and all) and return the session cookie
    value after one visit to the user's home page, as a browser would hold it."""
    page = request(base_url, "GET", "/login")
    match = CSRF_INPUT.search(page.body)
    if page.status != 200 or not match or not page.session_cookie():
        raise RuntimeError(f"GET /login answered {page.status} without a form and session")
    answer = request(base_url, "POST", "/login", cookie=page.session_cookie(),
                     form={"csrf_token": match.group(1), "username": username, "password": password})
    cookie = answer.session_cookie()
    if answer.status != 303 or not cookie:
        raise RuntimeError(f"login of {username} answered {answer.status}: {answer.body[:300]}")
    # The first page after login stores the page's CSRF token in the session; a browser
    # keeps that cookie, so the measured requests should carry it too.
    first = request(base_url, "GET", home, cookie=cookie)
    return first.session_cookie() or cookie


def expect_page(base_url: str, path: str, cookie: str | None, marker: str) -> int:
    """Fetch a page as wrk will and fail unless it is a 200 containing `marker`.
    Returns the body size in bytes."""
    answer = request(base_url, "GET", path, cookie=cookie)
    if answer.status != 200 or marker not in answer.body:
        raise RuntimeError(f"{base_url}{path} answered {answer.status} without {marker!r}: "
                           f"{answer.body[:300]}")
    return len(answer.body.encode())
