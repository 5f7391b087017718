"""API endpoints of the foundation: who am I, the organization's branches, the document."""
from __future__ import annotations

from flask import g, jsonify
from pydantic import BaseModel
from sqlalchemy import select

from app.api import bp
from app.api.registry import Endpoint, api_route, openapi_document
from app.extensions import db
from app.models import Branch, Organization

API_VERSION = "1.0.0"
ALL_ROLES = ("admin", "reception", "technician", "pathologist", "billing")


class MeOut(BaseModel):
    organization: str
    role: str
    token_name: str


class BranchOut(BaseModel):
    code: str
    name: str
    state_code: str
    is_main_lab: bool


class BranchList(BaseModel):
    items: list[BranchOut]


@bp.get("/openapi.json")
def openapi():  # type: ignore[no-untyped-def]
    return jsonify(openapi_document(API_VERSION))


@api_route(bp, Endpoint("GET", "/me", "The calling token's organization and role", ALL_ROLES,
                        response_model=MeOut, tags=("meta",)))
def me():  # type: ignore[no-untyped-def]
    org = db.session.get(Organization, g.api_token.org_id)
    return MeOut(organization=org.code, role=g.api_token.role, token_name=g.api_token.name).model_dump()


@api_route(bp, Endpoint("GET", "/branches", "Branches of the organization", ("admin",),
                        response_model=BranchList, tags=("admin",)))
def branches():  # type: ignore[no-untyped-def]
    rows = db.session.execute(select(Branch).order_by(Branch.code)).scalars()
    return BranchList(items=[BranchOut.model_validate(b, from_attributes=True) for b in rows]).model_dump()
