"""Branches (main lab, collection centres) of an organization."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select

from app import audit
from app.extensions import db
from app.models import Branch
from app.services import ServiceError

# Branch codes go into document numbers, which allow only A-Z 0-9 / - (india.md §1.2).
CODE_RE = re.compile(r"^[A-Z][A-Z0-9]{0,7}$")
# GST state codes 01-38 and 97 (Other Territory); see ../shared/reference/india.md §2.1.
STATE_CODES = {f"{n:02d}" for n in range(1, 39)} | {"97"}
AUDITED = ("code", "name", "address", "state_code", "phone", "is_main_lab", "active")


def _clean(data: Mapping[str, Any]) -> dict[str, Any]:
    code = str(data.get("code", "")).strip().upper()
    if not CODE_RE.match(code):
        raise ServiceError("1–8 capital letters or digits, starting with a letter.", field="code")
    name = str(data.get("name", "")).strip()
    if not name:
        raise ServiceError("Enter the branch name.", field="name")
    state = str(data.get("state_code", "")).strip().zfill(2)
    if state not in STATE_CODES:
        raise ServiceError("Choose a GST state code.", field="state_code")
    return {
        "code": code, "name": name, "state_code": state,
        "address": str(data.get("address") or "").strip(), "phone": str(data.get("phone") or "").strip(),
        "is_main_lab": bool(data.get("is_main_lab")), "active": bool(data.get("active", True)),
    }


def create_branch(data: Mapping[str, Any]) -> Branch:
    values = _clean(data)
    exists = db.session.execute(select(func.count(Branch.id)).where(Branch.code == values["code"])).scalar_one()
    if exists:
        raise ServiceError("Another branch already uses this code.", field="code")
    return audit.add_created(Branch(**values), entity_type="branch", fields=AUDITED)


def update_branch(branch: Branch, data: Mapping[str, Any]) -> Branch:
    values = _clean(data)
    if values["code"] != branch.code:
        raise ServiceError("A branch code cannot change once documents may carry it.", field="code")
    audit.apply_changes(branch, values, entity_type="branch", fields=AUDITED)
    return branch


def list_branches() -> list[Branch]:
    return list(db.session.execute(select(Branch).order_by(Branch.code)).scalars())
