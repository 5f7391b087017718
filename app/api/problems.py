"""RFC 9457 problem details for the JSON API."""
from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from pydantic import ValidationError

PROBLEM_TYPE_BASE = "https://lis.example/problems/"  # stable identifiers, documented in the OpenAPI


def is_api_request() -> bool:
    return request.path.startswith("/api/")


def problem_response(
    status: int, title: str, detail: str = "", *, errors: dict[str, list[str]] | None = None,
    type_: str | None = None,
) -> tuple[Response, int]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + (type_ or str(status)),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.path,
    }
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.mimetype = "application/problem+json"
    return response, status


def field_errors(exc: ValidationError) -> dict[str, list[str]]:
    """Pydantic errors keyed by field name ("address.pin_code" for nested fields)."""
    errors: dict[str, list[str]] = {}
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "body"
        message = err["msg"].removeprefix("Value error, ")
        errors.setdefault(key, []).append(message)
    return errors


class ApiError(Exception):
    """Raised by API views (or services they call) to answer with a problem document."""

    def __init__(self, status: int, title: str, detail: str = "", *, errors: dict[str, list[str]] | None = None,
                 type_: str | None = None):
        super().__init__(title)
        self.status, self.title, self.detail, self.errors, self.type_ = status, title, detail, errors, type_
