"""The test catalogue (read side for now)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models import Branch, Client, Department, LabTest, Referrer


def list_tests(*, active_only: bool = False) -> list[LabTest]:
    stmt = (select(LabTest).join(LabTest.department).options(joinedload(LabTest.department))
            .order_by(Department.name, LabTest.name))
    if active_only:
        stmt = stmt.where(LabTest.active.is_(True))
    return list(db.session.execute(stmt).scalars())


def list_referrers() -> list[Referrer]:
    return list(db.session.execute(select(Referrer).where(Referrer.active.is_(True)).order_by(Referrer.name)).scalars())


def list_clients() -> list[Client]:
    """Active B2B accounts an order can be billed to."""
    return list(db.session.execute(select(Client).where(Client.active.is_(True)).order_by(Client.name)).scalars())


def main_branch() -> Branch:
    """The organization's main laboratory (or its first branch)."""
    return db.session.execute(select(Branch).order_by(Branch.is_main_lab.desc(), Branch.id)).scalars().first()
