"""Portals: one blueprint package per role. Views parse and authorize, call a service,
and render; they never build SQL beyond loading by key."""
from __future__ import annotations

from typing import Any

from flask import Response, redirect, render_template, request
from flask_wtf import FlaskForm

from app.services import ServiceError


def see_other(url: str, *, full_page: bool = False) -> Response:
    """After a successful POST: 303 for a plain form; for htmx, HX-Location (no full reload)
    or, when the session changed (login, logout, password), HX-Redirect: a full page load,
    so <body hx-headers> carries the new session's CSRF token."""
    if getattr(request, "htmx", False):
        response = Response(status=204)
        response.headers["HX-Redirect" if full_page else "HX-Location"] = url
        return response
    return redirect(url, code=303)


def page_after_post(url: str, template: str, **context: Any) -> Response:
    """After a successful POST, answer htmx with the next page itself (swapped into <body>,
    its URL pushed) instead of a redirect the browser must then fetch: one round trip
    fewer on a 400 ms line. A plain form still gets 303 (post/redirect/get)."""
    if not getattr(request, "htmx", False):
        return redirect(url, code=303)
    response = Response(render_template(template, **context))
    response.headers.update({"HX-Retarget": "body", "HX-Reswap": "innerHTML", "HX-Push-Url": url})
    return response


def wants_fragment() -> bool:
    """An htmx request that swaps part of a page (a history restore needs the whole page).
    Read from the environ as htmx-flask reads the headers (HX-Request: true), without its
    header lookups, which raise and catch a KeyError inside Werkzeug for a plain request."""
    environ = request.environ
    return (environ.get("HTTP_HX_REQUEST", "").lower() == "true"
            and environ.get("HTTP_HX_HISTORY_RESTORE_REQUEST", "").lower() != "true")


def page_or_fragment(page: str, fragment: str) -> str:
    return fragment if wants_fragment() else page


def form_page(page: str, fragment: str, form: FlaskForm, status: int = 200, **context: Any) -> tuple[str, int]:
    """The whole page for a plain request, only the form fragment for htmx (same template)."""
    template = page_or_fragment(page, fragment)
    return render_template(template, form=form, **context), status


def attach_service_error(form: FlaskForm, err: ServiceError) -> None:
    """Show a service's rule violation on its field, or at the top of the form."""
    field = getattr(form, err.field, None) if err.field else None
    if field is not None:
        field.errors = list(field.errors) + [err.message]
    else:
        form.form_errors.append(err.message)
