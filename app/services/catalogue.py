"""The test catalogue (read side for now)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models import Department, LabTest


def list_tests(*, active_only: bool = False) -> list[LabTest]:
    stmt = (select(LabTest).join(LabTest.department).options(joinedload(LabTest.department))
            .order_by(Department.name, LabTest.name))
    if active_only:
        stmt = stmt.where(LabTest.active.is_(True))
    return list(db.session.execute(stmt).scalars())
