"""Bearer-token authentication for the API. Tokens are org- and role-scoped."""
from __future__ import annotations

from flask import g, request
from pydantic import ValidationError

from app import audit, security
from app.api import bp
from app.api.problems import ApiError, field_errors, problem_response
from app.extensions import db, limiter
from app.services import api_tokens


@bp.before_request
def authenticate() -> None:
    if request.endpoint in {"api.openapi"}:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise ApiError(401, "Authentication required", "Send 'Authorization: Bearer <token>'.",
                       type_="unauthenticated")
    token = api_tokens.authenticate(raw.strip())
    if token is None:
        raise ApiError(401, "Invalid token", "The token is unknown or revoked.", type_="unauthenticated")
    g.api_token = token
    security.use_tenant(db.session, token.org_id)
    audit.set_context(audit.AuditContext(
        actor_label=f"api-token:{token.prefix}", org_id=token.org_id,
        ip=request.remote_addr, request_id=g.get("request_id"),
    ))


def require_api_role(*roles: str) -> None:
    if g.api_token.role not in roles:
        raise ApiError(403, "Forbidden", f"This token's role ({g.api_token.role}) cannot do this.",
                       type_="forbidden")


@bp.errorhandler(ApiError)
def _api_error(err: ApiError):  # type: ignore[no-untyped-def]
    return problem_response(err.status, err.title, err.detail, errors=err.errors, type_=err.type_)


@bp.errorhandler(ValidationError)
def _validation_error(err: ValidationError):  # type: ignore[no-untyped-def]
    return problem_response(422, "Invalid request", "Some fields are invalid.", errors=field_errors(err),
                            type_="validation")


# API clients are machines: a generous limit per token guards the database from a runaway loop.
limiter.limit("600 per minute", key_func=lambda: "api:" + request.headers.get("Authorization", "")[-16:])(bp)
