"""Factories that build rows through the services (so audit and rules apply)."""
from __future__ import annotations

import itertools

from app import audit, security
from app.models import Branch, Organization, User
from app.services import users

_seq = itertools.count(1)
PASSWORD = "correct horse battery"


class Factory:
    def __init__(self, session):  # type: ignore[no-untyped-def]
        self.session = session

    def org(self, code: str | None = None, **values) -> Organization:  # type: ignore[no-untyped-def]
        n = next(_seq)
        org = Organization(code=code or f"org{n}", legal_name=f"Lab {n} Pvt Ltd", display_name=f"Lab {n}",
                           state_code="29", **values)
        self.session.add(org)
        self.session.flush()
        security.use_tenant(self.session, org.id)
        branch = Branch(org_id=org.id, code="MAIN", name="Main lab", state_code="29", is_main_lab=True)
        self.session.add(branch)
        self.session.commit()
        return org

    def user(self, org: Organization, role: str = "admin", *, username: str | None = None,
             password: str = PASSWORD, branch: Branch | None = None) -> User:
        security.use_tenant(self.session, org.id)
        with audit.acting_as(audit.AuditContext(actor_label="test", org_id=org.id)):
            user, _ = users.create_user(org.id, {
                "username": username or f"{role}{next(_seq)}", "full_name": f"Test {role.title()}",
                "role": role, "branch_id": branch.id if branch else None,
            }, password=password)
        self.session.commit()
        return user
