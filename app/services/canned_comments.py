"""Canned interpretive comments: texts a pathologist picks instead of typing ("Suggest repeat
after 12 h fasting"), for one test or for any. Kept by the administrator; never deleted
(a report may have used one), deactivated instead. Every change is audited; the caller commits."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from app import audit
from app.extensions import db
from app.models import CannedComment, LabTest
from app.services.catalogue_admin import CODE_MESSAGE, CODE_RE, InvalidInput

AUDITED = ("code", "test_id", "text", "active")
MAX_TEXT = 4000
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # line breaks are allowed in a comment


def _id(raw: Any) -> int | None:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    text = str(raw or "").strip()
    return int(text) if re.fullmatch(r"[0-9]{1,18}", text) else None


def _values(data: Mapping[str, Any], comment: CannedComment | None) -> dict[str, Any]:
    """Every field checked at once; InvalidInput carries one message per broken field."""
    errors: dict[str, str] = {}
    code = str(data.get("code") or "").strip().upper()
    if not code:
        errors["code"] = "Enter a code, e.g. FASTING."
    elif len(code) > 32:
        errors["code"] = "At most 32 characters."
    elif not CODE_RE.match(code):
        errors["code"] = CODE_MESSAGE
    elif (comment is None or code != comment.code) and db.session.execute(
            select(CannedComment.id).where(CannedComment.code == code)).first():
        errors["code"] = f"A canned comment with the code {code} already exists."
    test_id = _id(data.get("test_id"))
    if str(data.get("test_id") or "").strip() and (
            test_id is None or db.session.execute(select(LabTest.id).where(LabTest.id == test_id)).first() is None):
        errors["test_id"] = "Choose a test from the list, or none for a general comment."
    text = str(data.get("text") or "").replace("\r\n", "\n").strip()
    if _CONTROL_RE.search(text):
        errors["text"] = "Remove the control characters."
    elif not text:
        errors["text"] = "Enter the comment's text."
    elif len(text) > MAX_TEXT:
        errors["text"] = f"At most {MAX_TEXT} characters."
    if errors:
        raise InvalidInput(errors)
    return {"code": code, "test_id": test_id, "text": text, "active": bool(data.get("active"))}


def create(data: Mapping[str, Any]) -> CannedComment:
    comment = CannedComment(**_values(data, None))
    audit.add_created(comment, entity_type="canned_comment", fields=AUDITED)
    return comment


def update(comment: CannedComment, data: Mapping[str, Any]) -> CannedComment:
    """Edit, or deactivate (active false): an inactive comment is no longer offered."""
    audit.apply_changes(comment, _values(data, comment), entity_type="canned_comment", fields=AUDITED)
    return comment


def form_data(comment: CannedComment) -> dict[str, Any]:
    return {"code": comment.code, "test_id": comment.test_id, "text": comment.text, "active": comment.active}


def list_all() -> list[CannedComment]:
    """Active ones first, then by code (the admin list)."""
    return list(db.session.execute(
        select(CannedComment).order_by(CannedComment.active.desc(), CannedComment.code)).scalars())
