"""Declare an API endpoint once: it is routed and it appears in /api/v1/openapi.json."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from flask import Blueprint
from pydantic import BaseModel


@dataclass
class Endpoint:
    method: str
    path: str  # OpenAPI style: /patients/{id}
    summary: str
    roles: tuple[str, ...]
    request_model: type[BaseModel] | None = None
    response_model: type[BaseModel] | None = None
    status: int = 200
    query: dict[str, str] = field(default_factory=dict)  # name -> description
    tags: tuple[str, ...] = ()


ENDPOINTS: list[Endpoint] = []


def _flask_rule(path: str) -> str:
    return path.replace("{", "<").replace("}", ">")


def api_route(bp: Blueprint, endpoint: Endpoint) -> Callable[[Callable], Callable]:
    """Route a view and document it; the token's role is checked here against
    endpoint.roles, so no view can forget it and the document states what is enforced."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            from app.api.auth import require_api_role

            require_api_role(*endpoint.roles)
            return view(*args, **kwargs)

        ENDPOINTS.append(endpoint)
        bp.add_url_rule(_flask_rule(endpoint.path), view.__name__, guarded, methods=[endpoint.method])
        return guarded

    return decorator


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def openapi_document(version: str) -> dict[str, Any]:
    components: dict[str, Any] = {
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details; field errors under `errors`.",
            "properties": {
                "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                "detail": {"type": "string"}, "instance": {"type": "string"},
                "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
            },
            "required": ["type", "title", "status"],
        }
    }
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    paths: dict[str, Any] = {}
    for ep in ENDPOINTS:
        op: dict[str, Any] = {
            "summary": ep.summary,
            "operationId": f"{ep.method.lower()}_{ep.path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
            "tags": list(ep.tags),
            "description": f"Token roles allowed: {', '.join(ep.roles)}.",
            "responses": {
                "401": {"description": "Missing or invalid token", "content": problem},
                "403": {"description": "The token's role may not do this", "content": problem},
            },
        }
        params = [
            {"name": p.strip("{}"), "in": "path", "required": True, "schema": {"type": "string"}}
            for p in ep.path.split("/") if p.startswith("{")
        ]
        params += [
            {"name": n, "in": "query", "required": False, "schema": {"type": "string"}, "description": d}
            for n, d in ep.query.items()
        ]
        if params:
            op["parameters"] = params
        if ep.request_model:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _schema(ep.request_model, components)}}}
            op["responses"]["422"] = {"description": "Invalid input", "content": problem}
        ok: dict[str, Any] = {"description": "Success"}
        if ep.response_model:
            ok["content"] = {"application/json": {"schema": _schema(ep.response_model, components)}}
        op["responses"][str(ep.status)] = ok
        if "{" in ep.path:
            op["responses"]["404"] = {"description": "Not found in this organization", "content": problem}
        paths.setdefault(ep.path, {})[ep.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "LIS API", "version": version,
                 "description": "Laboratory information system API. Errors are RFC 9457 problem details."},
        "servers": [{"url": "/api/v1"}],
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
